"""A real, messy export through the playbook with no code change: UCI Online Retail.

``playbook.adapters.online_retail`` (``playbook adapt online-retail``) maps the 541,909 transaction rows (cancellations as
returns) onto the contract; the adapted folder is then opened, validated and run through the
metrics and the weak-cohort step exactly as a shop's export would be. Return rates are
recomputed by hand with pandas from the adapted tables and must equal the engine's.

The first test runs on a handcrafted file (no real data needed) and pins the adapter's
rules one by one; every other test needs ``../shared/data/online_retail.csv.xz`` and skips
when it is absent.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from playbook.adapters.online_retail import SHOP, categorize, parquet_bytes, to_contract, write_tables
from playbook.config.loader import for_source, load_config
from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.contract import OPTIONAL_TABLES, REASON_CODES, TABLES
from playbook.data.dataset import open_dataset
from playbook.metrics.dictionary import compute_metrics
from playbook.steps.cohorts import analyse_weak_cohorts

REPO_ROOT = Path(__file__).resolve().parent.parent
WEEK = "2011-W48"  # the snapshot: delivery weeks up to 2011-W46 are mature (14 days + the week)
TABLE_NAMES = ("orders", "order_lines", "returns")

TINY_EXPORT = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
100001,10001,RED MUG,5,2011-01-03 10:00:00,2.0,1,United Kingdom
100001,POST,POSTAGE,1,2011-01-03 10:00:00,18.0,1,United Kingdom
100001,10002,CHRISTMAS CANDLE,1,2011-01-03 10:00:00,0.0,1,United Kingdom
100002,10001,RED MUG,3,2011-01-10 10:00:00,2.5,1,United Kingdom
100002,10001,RED MUG,3,2011-01-10 10:00:00,2.5,1,United Kingdom
100003,10003,JUMBO BAG,2,2011-01-11 09:00:00,1.0,,United Kingdom
C200001,10001,RED MUG,-8,2011-01-12 10:00:00,2.5,1,United Kingdom
C200002,10001,RED MUG,-5,2011-01-13 10:00:00,2.0,1,United Kingdom
C200003,10004,BLUE BOWL,-1,2011-01-13 10:00:00,3.0,1,United Kingdom
100004,10005,PINK TEA CUP,1,2011-01-20 10:00:00,1.5,2,France
C200004,10005,PINK TEA CUP,-1,2011-01-19 10:00:00,1.5,2,France
C200005,10001,RED MUG,-1,2011-01-14 10:00:00,2.0,2,France
"""


def test_adapter_rules_on_a_handcrafted_export(tmp_path):
    src = tmp_path / "tiny.csv"
    src.write_text(TINY_EXPORT)
    t = to_contract(src)
    assert list(t) == list(TABLE_NAMES)
    for name in TABLE_NAMES:
        assert list(t[name].columns) == list(TABLES[name].column_names)
    rep = t.report
    assert rep.source_rows == 12
    assert rep.dropped["no CustomerID"] == 1
    assert rep.dropped_non_product_codes == {"POST": 1}
    assert rep.dropped["UnitPrice zero or negative"] == 1
    assert rep.duplicate_rows_summed == 1

    o = t["orders"].set_index("order_id")
    assert list(o.index) == ["100001", "100002", "100004"]  # 100003 has no customer
    assert o.loc["100001", "customer_id"] == "1" and o.loc["100004", "region"] == "France"
    assert set(o["channel"]) == {"web"} and (o["shipping_cost"] == 0).all()
    assert o.loc["100001", "delivered_ts"] == pd.Timestamp("2011-01-05 10:00:00")
    assert str(o.loc["100001", "promised_delivery_date"]) == "2011-01-06"

    lines = t["order_lines"].set_index("line_id")
    assert lines["quantity"].to_dict() == {"100001-10001": 5, "100002-10001": 6, "100004-10005": 1}
    assert lines.loc["100002-10001", "unit_price"] == 2.5
    assert set(lines["category"]) == {"kitchen_dining"}
    assert (lines["discount_amount"] == 0).all() and (lines["unit_cost"] == 0).all()

    # C200001 (8) takes the most recent purchase first (6 from 100002), then 2 from 100001;
    # C200002 (5) finds 3 left on 100001: partly matched; C200003 (never bought), C200004
    # (before its purchase) and C200005 (another customer's item) are unmatched.
    r = t["returns"]
    assert r[["return_id", "line_id", "quantity", "refund_amount"]].values.tolist() == [
        ["C200001-10001-1", "100002-10001", 6, 15.0],
        ["C200001-10001-2", "100001-10001", 2, 5.0],
        ["C200002-10001-1", "100001-10001", 3, 6.0],
    ]
    assert set(r["reason_code"]) == {"other"} and set(r["resolution"]) == {"refund"}
    assert (rep.cancellation_lines, rep.cancellation_lines_matched_fully, rep.cancellation_lines_matched_partly,
            rep.cancellation_lines_unmatched) == (5, 1, 1, 3)
    assert (rep.units_cancelled, rep.units_matched, rep.units_unmatched) == (16, 11, 5)

    # and it is a valid source as it stands
    write_tables(t, tmp_path / "out")
    ds = open_dataset(tmp_path / "out")
    assert ds.missing_tables == list(OPTIONAL_TABLES)


def test_categories_come_from_description_keywords():
    assert categorize("WHITE HANGING HEART T-LIGHT HOLDER") == "candles_lighting"
    assert categorize("JUMBO BAG RED RETROSPOT") == "bags"
    assert categorize("PAPER CHAIN KIT 50'S CHRISTMAS") == "seasonal"
    assert categorize("PACK OF 72 RETROSPOT CAKE CASES") == "kitchen_dining"
    assert categorize("SOMETHING UNHEARD OF") == "other"
    assert categorize(None) == "other"


# --------------------------------------------------------------------------- the real export


@pytest.fixture(scope="module")
def adapted(online_retail_path, tmp_path_factory):
    tables = to_contract(online_retail_path)
    folder = tmp_path_factory.mktemp("online_retail")
    write_tables(tables, folder)
    return tables, folder


@pytest.fixture(scope="module")
def dataset(adapted):
    return open_dataset(adapted[1])  # raises ContractError listing every violation, if any


@pytest.fixture(scope="module")
def snapshot(dataset):
    return dataset.as_of(WEEK)


@pytest.fixture(scope="module")
def results(snapshot):
    return compute_metrics(snapshot, MetricSettings())


def test_adapter_counts_add_up(adapted):
    tables, _ = adapted
    rep = tables.report
    assert rep.source_rows == 541_909
    kept = rep.sale_rows_kept + rep.cancellation_rows_kept
    assert kept + sum(rep.dropped.values()) == rep.source_rows
    assert rep.dropped["no CustomerID"] == 135_080  # the anonymous quarter of the file
    assert sum(rep.dropped_non_product_codes.values()) == rep.dropped[
        "non-product StockCode (fees, postage, adjustments, vouchers)"]
    assert {"POST", "M", "D", "C2", "BANK CHARGES"} <= set(rep.dropped_non_product_codes)
    assert not tables["order_lines"]["sku"].isin(list(rep.dropped_non_product_codes)).any()
    assert (rep.orders, rep.order_lines, rep.returns) == tuple(len(tables[n]) for n in TABLE_NAMES)
    assert rep.units_matched + rep.units_unmatched == rep.units_cancelled
    assert rep.units_matched == tables["returns"]["quantity"].sum()
    assert (rep.cancellation_lines_matched_fully + rep.cancellation_lines_matched_partly
            + rep.cancellation_lines_unmatched) == rep.cancellation_lines
    # The README: most cancellations can be matched, median lag about 9 days.
    assert rep.cancellation_lines_unmatched < 0.2 * rep.cancellation_lines
    assert 7 <= rep.median_lag_days <= 12
    assert rep.seconds < 60


def test_returns_point_at_an_earlier_purchase_of_the_same_customer_and_item(adapted, online_retail_path):
    tables, _ = adapted
    r, lines, orders = tables["returns"], tables["order_lines"], tables["orders"]
    j = r.merge(lines, on="line_id", suffixes=("", "_line")).merge(orders, on="order_id")
    assert len(j) == len(r)
    assert (j["requested_ts"] >= j["order_ts"]).all()
    assert (j.groupby("line_id")["quantity"].sum() <= j.groupby("line_id")["quantity_line"].first()).all()
    # the cancellation's own customer and StockCode, read back from the source
    raw = pd.read_csv(online_retail_path, dtype={"InvoiceNo": str, "StockCode": str},
                      usecols=["InvoiceNo", "StockCode", "CustomerID"])
    raw = raw[raw["InvoiceNo"].str.startswith("C") & raw["CustomerID"].notna()].drop_duplicates(
        ["InvoiceNo", "StockCode"])
    raw["customer"] = raw["CustomerID"].astype("int64").astype(str)
    j["InvoiceNo"] = j["return_id"].str.split("-").str[0]
    j["StockCode"] = j["return_id"].str.split("-").str[1]
    k = j.merge(raw, on=["InvoiceNo", "StockCode"], how="left")
    assert len(k) == len(j)
    assert (k["customer"] == k["customer_id"]).all()
    assert (k["StockCode"] == k["sku"]).all()


def test_the_adapted_folder_validates_with_no_violation(dataset):
    assert dataset.missing_tables == list(OPTIONAL_TABLES)
    rules = {(w.table, w.rule) for w in dataset.warnings}
    assert rules == {(name, "optional table missing") for name in OPTIONAL_TABLES}
    assert set(dataset.tables) == set(TABLE_NAMES)


def _hand_return_rates(tables: dict[str, pd.DataFrame], week: str, k: int, by: str | None = None) -> pd.DataFrame:
    """Units returned within k days of delivery / units delivered, per delivery week, as known at the week's end."""
    cutoff = pd.Timestamp(IsoWeek.parse(week).end)
    o = tables["orders"]
    o = o[o["order_ts"] <= cutoff].assign(delivered=lambda d: d["delivered_ts"].where(d["delivered_ts"] <= cutoff))
    keys = ["order_id", "delivered"] + ([by] if by else [])
    lines = tables["order_lines"].merge(o[keys], on="order_id")
    lines = lines[lines["delivered"].notna()]
    day = lines["delivered"].dt.normalize()
    lines["week_start"] = (day - pd.to_timedelta(day.dt.day_of_week, unit="D")).dt.date
    r = tables["returns"]
    r = r[r["requested_ts"] <= cutoff].merge(
        lines[["line_id", "delivered", "week_start"] + ([by] if by else [])], on="line_id")
    r = r[r["requested_ts"] <= r["delivered"] + pd.Timedelta(days=k)]
    group = ["week_start"] + ([by] if by else [])
    out = pd.DataFrame({"units": lines.groupby(group)["quantity"].sum(),
                        "returned": r.groupby(group)["quantity"].sum()}).fillna({"returned": 0})
    out["rate"] = out["returned"] / out["units"]
    return out.reset_index()


def test_return_rate_equals_a_hand_computation(adapted, results):
    tables, _ = adapted
    k = MetricSettings().return_window_days
    hand = _hand_return_rates(tables, WEEK, k).set_index("week_start")
    engine = results.series(f"return_rate_{k}d").set_index("week_start")
    assert list(engine.index) == list(hand.index)
    assert (engine["numerator"] == hand["returned"]).all() and (engine["denominator"] == hand["units"]).all()
    assert (engine["value"] - hand["rate"]).abs().max() < 1e-9

    w40 = IsoWeek.parse("2011-W40").monday  # delivery week 2011-W40: orders of 1 to 7 October
    assert abs(engine.loc[w40, "value"] - hand.loc[w40, "rate"]) < 1e-9
    assert engine.loc[w40, "mature"]
    mature = engine[engine["mature"]]
    assert str(IsoWeek.of(mature.index.max())) == "2011-W46"  # W47 and W48 not mature at the end of W48
    # plausible: a wholesale shop whose cancellations are a few percent of units ...
    assert 0.002 < mature["value"].median() < 0.03
    assert (mature["value"] >= 0).all() and (mature["value"] <= 1).all()
    # ... except delivery week 2011-W03, one 74,215-unit order cancelled 16 minutes later
    assert str(IsoWeek.of(mature["value"].idxmax())) == "2011-W03" and mature["value"].max() > 0.5

    # and per region, for W40
    hand_r = _hand_return_rates(tables, WEEK, k, by="region")
    hand_r = hand_r[hand_r["week_start"] == w40].set_index("region")["rate"]
    f = results.frame
    eng_r = f[(f.metric == f"return_rate_{k}d") & (f.slice == "region") & (f.week_start == w40)]
    eng_r = eng_r.set_index("slice_value")["value"]
    assert set(eng_r.index) == set(hand_r.index)
    assert (eng_r - hand_r.reindex(eng_r.index)).abs().max() < 1e-9


def test_metrics_needing_a_missing_table_are_not_available(results):
    assert results.unavailable["conversion_rate"] == "not available (no sessions table)"
    assert results.unavailable["contact_rate"] == "not available (no contacts table)"
    assert results.unavailable["net_cac"] == "not available (no marketing_spend table)"
    assert "conversion_rate" not in set(results.frame["metric"])
    # the assumed delivery (order + 2 days, promised + 3) makes the promise metric constant
    kept = results.series("delivery_promise_kept")
    assert (kept["value"] == 1.0).all()
    assert set(results.reason_mix["reason_code"]) == {"other"}


def test_weak_cohort_analysis_by_region_runs(snapshot):
    a = analyse_weak_cohorts(snapshot, MetricSettings(), dimensions=["region"])
    t = a.table
    assert {"dimension", "slice_value", "reason_code", "units", "events", "baseline_units", "baseline_events",
            "rate", "baseline_rate", "z_adjusted", "q_value", "flagged", "excess_cost", "rank",
            "shrunk_rate"} <= set(t.columns)
    assert set(t["dimension"]) == {"region"} and set(t["reason_code"]) == set(REASON_CODES)
    assert len(t) == t["slice_value"].nunique() * len(REASON_CODES)
    assert a.windows.describe() == "delivery weeks 2011-W43 to 2011-W46 (window) against 2011-W35 to 2011-W42 (baseline)"
    flagged = a.flagged()
    assert (flagged["q_value"] < 0.05).all()
    assert set(flagged["reason_code"]) <= {"other"}  # the only code with returns
    if a.weak is not None:
        assert a.weak.filters == next(c for c in a.candidates if c.actionable).filters


def test_one_wholesale_account_is_not_a_weak_cohort(snapshot):
    # week 2011-W48: candles_lighting x other rose from 0.5 % to 4.9 %, most of it one customer's bulk
    # cancellation; counted by customers, that rise is within chance, and it is reported as accounts to check
    a = analyse_weak_cohorts(snapshot, MetricSettings())
    candles = next(c for c in a.candidates if c.label == "category=candles_lighting x other")
    assert not candles.flagged and not candles.actionable
    assert candles.concentration.customers_for_80 <= 3
    assert candles.concentration.top_customer_share > 0.5
    assert a.weak is None or a.weak.filters.get("category") != "candles_lighting"


def test_the_cli_rebuilds_identical_tables_with_the_shops_currency(adapted, tmp_path):
    tables, _ = adapted
    out = tmp_path / "again"
    run = subprocess.run(
        [sys.executable, "-m", "playbook.run.cli", "adapt", "online-retail", str(Path(tables.report.source)), str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "cancellation lines" in run.stdout and "no CustomerID" in run.stdout
    assert f"Next: playbook weekly --data {out}" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{n}.parquet" for n in TABLE_NAMES), "shop.yaml"])
    shop = for_source(load_config(), out)
    assert (shop.shop_name, shop.currency, shop.timezone) == (SHOP["name"], "GBP", "Europe/London") == (
        "Online Retail (UCI)", "GBP", "Europe/London")
    for name in TABLE_NAMES:
        again = pd.read_parquet(out / f"{name}.parquet")
        pd.testing.assert_frame_equal(again, pd.read_parquet(adapted[1] / f"{name}.parquet"))
        assert (out / f"{name}.parquet").read_bytes() == parquet_bytes(tables[name])


def test_the_former_module_path_still_runs_the_adapter():
    from playbook.dev.adapters import online_retail as former

    assert former.to_contract is to_contract and former.main.__module__ == "playbook.adapters.online_retail"


def test_adapt_refuses_a_source_that_is_not_a_file_and_writes_nothing(tmp_path, capsys):
    from playbook.run import cli

    assert cli.main(["adapt", "online-retail", str(tmp_path / "missing.csv.xz"), str(tmp_path / "out")]) == 2
    assert "is not a file" in capsys.readouterr().err and not (tmp_path / "out").exists()
