"""Shared fixtures: a tiny shop whose metric values are computed by hand in the tests."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

# the throwaway PostgreSQL server for tests marked `postgres` (skipped locally without PostgreSQL, an error in CI)
pytest_plugins = ["pg_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent
ONLINE_RETAIL = REPO_ROOT.parent / "shared" / "data" / "online_retail.csv.xz"

TINY_SHOP = {
    "orders": [
        # order_id, order_ts, customer_id, channel, region, promised_delivery_date, delivered_ts, shipping_cost
        ("O1", "2026-11-02 10:00:00", "C1", "web", "north", "2026-11-05", "2026-11-04 09:00:00", 5.0),
        ("O2", "2026-11-03 12:00:00", "C2", "app", "south", "2026-11-06", "2026-11-08 12:00:00", 4.0),
        ("O3", "2026-11-10 09:00:00", "C1", "web", "north", "2026-11-13", "2026-11-12 10:00:00", 5.0),
        ("O4", "2026-11-20 09:00:00", "C3", "web", "south", "2026-11-23", "", 3.0),
    ],
    "order_lines": [
        # line_id, order_id, sku, category, quantity, unit_price, discount_amount, unit_cost
        ("L1", "O1", "A", "knitwear", 2, 50.0, 10.0, 20.0),
        ("L2", "O1", "B", "shoes", 1, 80.0, 0.0, 30.0),
        ("L3", "O2", "C", "knitwear", 1, 40.0, 4.0, 15.0),
        ("L4", "O3", "A", "knitwear", 1, 50.0, 5.0, 20.0),
        ("L5", "O4", "B", "shoes", 1, 80.0, 8.0, 30.0),
    ],
    "returns": [
        # return_id, line_id, requested_ts, quantity, reason_code, reason_text, refund, ship, processing, resolution
        ("R1", "L1", "2026-11-10 10:00:00", 1, "size_too_small", "<b>tiny</b>", 20.0, 5.0, 2.0, "refund"),
        ("R2", "L3", "2026-11-25 10:00:00", 1, "quality", "", 36.0, 5.0, 2.0, "refund"),
        ("R3", "L2", "2026-11-20 12:00:00", 1, "changed_mind", "meh", 80.0, 5.0, 2.0, "store_credit"),
        ("R4", "L4", "2026-11-14 08:00:00", 1, "TOO_BIG", "too big", 45.0, 5.0, 2.0, "exchange"),
    ],
    "sessions": [
        ("2026-11-03", "web", "knitwear", 100), ("2026-11-03", "app", "knitwear", 50),
        ("2026-11-11", "web", "knitwear", 80), ("2026-11-19", "web", "shoes", 40),
    ],
    "contacts": [
        ("K1", "2026-11-05 10:00:00", "O1", "wismo", ""),
        ("K2", "2026-11-09 10:00:00", "O2", "return", 3.0),
    ],
    "actions": [
        ("A1", "2026-W45", "ana", "fix size chart", "closed", "2026-11-06 10:00:00"),
        ("A2", "2026-W45", "bo", "new photos", "closed", "2026-11-10 10:00:00"),
        ("A3", "2026-W45", "cy", "carrier review", "open", ""),
        ("A4", "2026-W47", "ana", "promo rules", "closed", "2026-11-25 10:00:00"),
    ],
    "marketing_spend": [("2026-11-03", "web", 100.0), ("2026-11-03", "app", 50.0), ("2026-11-11", "web", 60.0)],
}


def write_shop(folder: Path, tables: dict[str, list[tuple]] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """Write the tiny shop (or a variant) as CSV files following the contract's column order."""
    from playbook.data.contract import TABLES

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (tables or TINY_SHOP).items():
        if name in drop:
            continue
        pd.DataFrame(rows, columns=list(TABLES[name].column_names)).to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def tiny_shop(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop")


@pytest.fixture(scope="session")
def online_retail_path() -> Path:
    if not ONLINE_RETAIL.is_file():
        pytest.skip(f"real data absent: {ONLINE_RETAIL} (the shared/ folder beside the repository)")
    return ONLINE_RETAIL


# --- the sample week, rendered once per test session ---------------------------------------------
# The weekly-loop tests and the browser test read the same report: rendering it costs minutes.

SAMPLE_WEEK = "2026-W47"
#: a verdict of an older week in the journal before the run: the run must keep it byte for byte
HISTORY = ("week,kind,experiment_id,lever,cohort,primary_metric,design,expected_low,expected_high,estimate,"
           "ci_low,ci_high,decision,why,recorded_at\n"
           "2026-W41,verdict,EXP-OLD,photos,category=dresses,return_rate_14d,randomized,-0.03,-0.01,0.004,-0.01,0.02,"
           "adjust,\"inconclusive, kept for the record\",2026-10-12T09:00:00Z\n")


def render_sample_week(base: Path, jobs: int) -> dict:
    """The sample shop's week rendered by the weekly runner, ``jobs`` notebooks at once, into ``base``, with a
    journal holding HISTORY: the report folder, its summary.json, the journal right after the run and the
    run's progress lines."""
    import json

    from playbook.core.paths import DATA_SAMPLES_DIR
    from playbook.journal.store import read_journal
    from playbook.run.weekly import run_week

    journal = base / "journal"
    journal.mkdir()
    (journal / "decisions.csv").write_text(HISTORY, encoding="utf-8")
    lines: list[str] = []
    report = run_week(SAMPLE_WEEK, DATA_SAMPLES_DIR, base / "reports", journal=journal, jobs=jobs, log=lines.append)
    return {"report": report, "summary": json.loads((report / "summary.json").read_text()),
            "journal_after": read_journal(journal), "journal": journal, "base": base, "log": lines}


@pytest.fixture(scope="session")
def sample_week(tmp_path_factory) -> dict:
    """The sample shop's week rendered by the weekly runner into a journal holding HISTORY (tests must not
    modify it), two notebooks at once whatever the machine's cores: every test of the report reads a run
    whose independent steps ran at the same time (``tests/test_parallel_run.py`` compares it with a
    sequential run)."""
    return render_sample_week(tmp_path_factory.mktemp("sample_week"), jobs=2)
