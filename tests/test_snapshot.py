"""One open and one validation per weekly run: the runner stores the week's snapshot, the notebooks attach it.

A notebook kernel is another process: what it did is written by the test notebook into kernel.json
and read back here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_shop
from test_weekly_runner import make_notebook

import playbook.data.dataset as pdata
import playbook.data.snapshot as psnapshot
import playbook.run.session as psession
from playbook.config.loader import load_config
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import open_dataset
from playbook.data.errors import SourceError
from playbook.data.facts import line_facts, order_facts
from playbook.data.snapshot import SnapshotLocation, attach_snapshot
from playbook.metrics.dictionary import compute_metrics
from playbook.run import session
from playbook.run.weekly import run_week

#: the notebook of the test: start like the five notebooks, count the validations in its own kernel
COUNTING = (
    "import playbook.data.dataset as pdata\n"
    "from playbook.run import session\n"
    "calls = []\n"
    "real = pdata.validate\n"
    "pdata.validate = lambda raw: calls.append(1) or real(raw)\n"
    "run = session.start(week, data, config, run_dir, journal, snapshot)\n"
    "import json\n"
    "(run.run_dir / 'kernel.json').write_text(json.dumps(dict(kernel_validations=len(calls),\n"
    "    snapshot_parameter=snapshot, orders=int(run.snapshot.tables['orders'].count().execute()))))\n"
)


def count_opens(mp: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the opens and validations of the source in this process."""
    calls = {"open": 0, "validate": 0}
    real_load, real_validate = pdata.load_source, pdata.validate

    def load(source):
        calls["open"] += 1
        return real_load(source)

    def validate(raw, **options):
        calls["validate"] += 1
        return real_validate(raw, **options)

    mp.setattr(pdata, "load_source", load)
    mp.setattr(pdata, "validate", validate)
    return calls


@pytest.fixture()
def counted(monkeypatch):
    return count_opens(monkeypatch)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(psession.CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    """A two-notebook weekly run of the tiny shop, with the runner's opens and validations counted."""
    tmp = tmp_path_factory.mktemp("weekly")
    shop = write_shop(tmp / "shop")
    nbs = [make_notebook(tmp / f"0{i}_count.ipynb", COUNTING) for i in (1, 2)]
    mp = pytest.MonkeyPatch()
    calls = count_opens(mp)
    try:
        report = run_week("2026-W46", shop, tmp / "reports", journal=tmp / "j", notebooks=nbs)
    finally:
        mp.undo()
    return {"report": report, "out": tmp / "reports", "calls": dict(calls),
            "summary": json.loads((report / "kernel.json").read_text())}


def test_the_runner_opens_and_validates_the_source_once(weekly):
    assert weekly["calls"] == {"open": 1, "validate": 1}


def test_the_notebooks_attach_the_snapshot_without_validating_again(weekly):
    assert weekly["summary"]["kernel_validations"] == 0
    assert weekly["summary"]["snapshot_parameter"].startswith("file:")


def test_the_attached_snapshot_is_the_cut_of_the_week(weekly):
    # the tiny shop has 4 orders; O4 (20 Nov) is after the end of 2026-W46 (15 Nov)
    assert weekly["summary"]["orders"] == 3


def test_nothing_of_the_snapshot_remains_beside_or_inside_the_report(weekly):
    stored = Path(weekly["summary"]["snapshot_parameter"].removeprefix("file:"))
    assert not stored.exists()
    assert weekly["report"] not in stored.parents  # never stored inside the folder a manager downloads
    assert [p for p in weekly["out"].rglob("*") if "duckdb" in p.name or "snapshot" in p.name] == []


def test_a_failed_run_removes_its_snapshot_too(tiny_shop, tmp_path):
    nb = make_notebook(tmp_path / "01_fail.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(Exception, match="boom"):
        run_week("2026-W46", tiny_shop, tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    assert [p.name for p in (tmp_path / "reports").rglob("*") if "duckdb" in p.name] == []


def frames(snap, settings) -> dict[str, pd.DataFrame]:
    m = compute_metrics(snap, settings)
    return {"metrics": m.frame, "reason_mix": m.reason_mix,
            "line_facts": line_facts(snap, settings.return_window_days).to_pandas().sort_values("line_id", ignore_index=True),
            "order_facts": order_facts(snap, settings.return_window_days).to_pandas().sort_values("order_id", ignore_index=True)}


def test_the_metrics_are_identical_from_the_stored_snapshot_and_from_the_source(tiny_shop, tmp_path):
    settings = load_config(None).metrics
    direct = frames(open_dataset(tiny_shop).as_of("2026-W47"), settings)
    location = SnapshotLocation(str(tmp_path / "s.duckdb"))
    session.store_week(open_dataset(tiny_shop), IsoWeek.parse("2026-W47"), settings.return_window_days,
                       location, psnapshot.fingerprint(tiny_shop))
    stored = frames(attach_snapshot(location), settings)
    for name, frame in direct.items():
        pd.testing.assert_frame_equal(stored[name], frame, check_dtype=False, obj=name)
    assert len(direct["metrics"]) > 0


def test_a_snapshot_file_is_written_without_caching_the_facts_in_memory(tiny_shop, tmp_path, monkeypatch):
    cached = []
    monkeypatch.setattr(pdata.Snapshot, "_materialize_cut", lambda self: cached.append("cut"))
    real_cache = pdata.ibis.Table.cache
    monkeypatch.setattr(pdata.ibis.Table, "cache", lambda self: cached.append("cache") or real_cache(self))
    dataset = open_dataset(tiny_shop)  # a CSV source: its validated tables are cached by the open
    cached.clear()
    location = SnapshotLocation(str(tmp_path / "s.duckdb"))
    session.store_week(dataset, IsoWeek.parse("2026-W47"), 14, location, "x")
    assert cached == []
    assert attach_snapshot(location).derived(("line_facts", 14), lambda: None).count().execute() > 0


def test_a_store_that_fails_leaves_no_file_behind(tiny_shop, tmp_path):
    def failing(snap):
        line_facts(snap, 14)
        raise RuntimeError("out of disk")

    snap = open_dataset(tiny_shop).as_of("2026-W47")
    with pytest.raises(RuntimeError, match="out of disk"):
        psnapshot.store_snapshot(snap, SnapshotLocation(str(tmp_path / "out" / "s.duckdb")), "x", shared=failing)
    assert list((tmp_path / "out").iterdir()) == []


def test_the_attached_snapshot_keeps_the_dataset_warnings_and_missing_tables(tmp_path):
    folder = write_shop(tmp_path / "shop", drop=("contacts",))
    dataset = open_dataset(folder)
    location = SnapshotLocation(str(tmp_path / "s.duckdb"))
    session.store_week(dataset, IsoWeek.parse("2026-W47"), 14, location, psnapshot.fingerprint(folder))
    attached = attach_snapshot(location).dataset
    assert (attached.warnings, attached.missing_tables, attached.source_label) == (
        dataset.warnings, dataset.missing_tables, dataset.source_label)
    assert attached.warnings  # the tiny shop carries an unknown reason code: something to keep


def test_an_interactive_session_reuses_its_snapshot_while_the_files_are_unchanged(tiny_shop, tmp_path, cache, counted):
    session.start("2026-W46", str(tiny_shop), run_dir=str(tmp_path / "run"))
    session.start("2026-W46", str(tiny_shop), run_dir=str(tmp_path / "run"))
    assert counted["validate"] == 1
    assert len(list(cache.glob("*.duckdb"))) == 1


def test_an_interactive_session_with_an_empty_week_reuses_its_snapshot_too(tiny_shop, tmp_path, cache, counted):
    first = session.start("", str(tiny_shop), run_dir=str(tmp_path / "run"))
    second = session.start("", str(tiny_shop), run_dir=str(tmp_path / "run"))
    assert (counted["validate"], second.week) == (1, first.week)


def test_a_changed_source_file_invalidates_the_interactive_snapshot(tmp_path, cache, counted):
    folder = write_shop(tmp_path / "shop")
    before = session.start("2026-W46", str(folder), run_dir=str(tmp_path / "run"))
    n_before = before.snapshot.tables["orders"].count().execute()
    orders = pd.read_csv(folder / "orders.csv", dtype=str, keep_default_na=False)
    extra = orders.iloc[[0]].assign(order_id="O9")  # same day as O1: inside the week
    pd.concat([orders, extra]).to_csv(folder / "orders.csv", index=False)
    after = session.start("2026-W46", str(folder), run_dir=str(tmp_path / "run"))
    assert counted["validate"] == 2
    assert after.snapshot.tables["orders"].count().execute() == n_before + 1


def test_a_file_touched_without_change_of_size_invalidates_it_too(tiny_shop, tmp_path, cache, counted):
    session.start("2026-W46", str(tiny_shop), run_dir=str(tmp_path / "run"))
    stamp = psnapshot.fingerprint(tiny_shop)
    path = tiny_shop / "returns.csv"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert psnapshot.fingerprint(tiny_shop) != stamp
    session.start("2026-W46", str(tiny_shop), run_dir=str(tmp_path / "run"))
    assert counted["validate"] == 2


def test_a_snapshot_of_another_source_is_refused(tiny_shop, tmp_path):
    location = SnapshotLocation(str(tmp_path / "s.duckdb"))
    session.store_week(open_dataset(tiny_shop), IsoWeek.parse("2026-W46"), 14, location, "x")
    with pytest.raises(SourceError, match="built from"):
        session.start("2026-W46", str(tmp_path), run_dir=str(tmp_path / "run"), snapshot=location.text())


def test_a_snapshot_of_another_week_is_refused(tiny_shop, tmp_path):
    location = SnapshotLocation(str(tmp_path / "s.duckdb"))
    session.store_week(open_dataset(tiny_shop), IsoWeek.parse("2026-W46"), 14, location, "x")
    with pytest.raises(ValueError, match="of week 2026-W46"):
        session.start("2026-W47", str(tiny_shop), run_dir=str(tmp_path / "run"), snapshot=location.text())


def test_a_database_snapshot_location_reads_back_from_its_parameter():
    loc = SnapshotLocation("postgresql://ana@db:5432/shop", "analytics", "pb_run_1234_")
    assert SnapshotLocation.parse(loc.text()) == loc


def test_a_database_source_stores_its_snapshot_in_the_named_schema(tiny_shop, tmp_path, cache, counted, monkeypatch):
    import duckdb

    db = tmp_path / "shop.db"
    with duckdb.connect(str(db)) as con:
        for path in tiny_shop.glob("*.csv"):
            con.execute(f"CREATE TABLE {path.stem} AS SELECT * FROM read_csv('{path}')")
    monkeypatch.setenv(psnapshot.SNAPSHOT_SCHEMA_ENV, "playbook_snapshots")
    url = f"duckdb:///{db}"
    first = session.start("2026-W46", url, run_dir=str(tmp_path / "run"))
    n_first = first.snapshot.tables["orders"].count().execute()
    first.dataset.con.disconnect()
    second = session.start("2026-W46", url, run_dir=str(tmp_path / "run"))
    assert (counted["validate"], second.snapshot.tables["orders"].count().execute()) == (1, n_first)
    assert any(t.endswith("orders") for t in second.dataset.con.list_tables(database="playbook_snapshots"))


def test_a_database_run_stores_its_snapshot_in_the_named_schema_and_drops_it(tiny_shop, tmp_path, monkeypatch):
    import duckdb

    db = tmp_path / "shop.db"
    with duckdb.connect(str(db)) as con:
        for path in tiny_shop.glob("*.csv"):
            con.execute(f"CREATE TABLE {path.stem} AS SELECT * FROM read_csv('{path}')")
    monkeypatch.setenv(psnapshot.SNAPSHOT_SCHEMA_ENV, "playbook_snapshots")
    nb = make_notebook(tmp_path / "01_count.ipynb", COUNTING)
    report = run_week("2026-W46", f"duckdb:///{db}", tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    summary = json.loads((report / "kernel.json").read_text())
    assert (summary["kernel_validations"], summary["snapshot_parameter"].split(":")[:2]) == (0, ["db", "playbook_snapshots"])
    with duckdb.connect(str(db), read_only=True) as con:
        left = con.execute("SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema = 'playbook_snapshots'").fetchall()
    assert left == []
