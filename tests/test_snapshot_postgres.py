"""The stored snapshot of a PostgreSQL source lives in the schema PLAYBOOK_SNAPSHOT_SCHEMA of that database."""
from __future__ import annotations

import json
import uuid

import ibis
import pandas as pd
import pytest
from conftest import write_shop
from test_snapshot import COUNTING, count_opens
from test_weekly_runner import make_notebook

import playbook.data.snapshot as psnapshot
import playbook.data.source as psource
from playbook.core.atomic import exclusive_lock
from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import open_dataset
from playbook.data.indexes import create_recommended_indexes
from playbook.metrics.dictionary import compute_metrics
from playbook.run import session
from playbook.run.weekly import run_tables_prefix, run_week

pytestmark = pytest.mark.postgres
SCHEMA = "playbook_snapshots"


@pytest.fixture(scope="module")
def pg_shop(postgres_server, tmp_path_factory):
    """The tiny shop copied into a fresh database (public schema), and its folder."""
    db = f"playbook_snap_{uuid.uuid4().hex[:10]}"
    with postgres_server.connect() as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    folder = write_shop(tmp_path_factory.mktemp("pgsnap") / "shop")
    try:
        _, raw = psource.load_tables(folder)
        pg = ibis.connect(postgres_server.url_for(db))
        for name, table in raw.items():
            pg.create_table(name, table.to_pyarrow())
        create_recommended_indexes(pg, "public")  # as docs/data_contract.md asks a user to
        pg.disconnect()
        yield {"url": postgres_server.url_for(db), "folder": folder}
    finally:
        with postgres_server.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def snapshot_tables(url: str) -> list[str]:
    con = ibis.connect(url)
    try:
        return con.list_tables(database=SCHEMA) if SCHEMA in con.list_databases() else []
    finally:
        con.disconnect()


def test_an_interactive_session_stores_and_reuses_its_snapshot_in_the_schema(pg_shop, tmp_path, monkeypatch):
    monkeypatch.setenv(psnapshot.SNAPSHOT_SCHEMA_ENV, SCHEMA)
    calls = count_opens(monkeypatch)
    session.start("2026-W46", pg_shop["url"], run_dir=str(tmp_path / "run")).dataset.con.disconnect()
    run = session.start("2026-W46", pg_shop["url"], run_dir=str(tmp_path / "run"))
    stored = compute_metrics(run.snapshot, MetricSettings()).frame
    run.dataset.con.disconnect()
    assert calls["validate"] == 1  # before the folder below is opened (and validated) for the comparison
    direct = compute_metrics(open_dataset(pg_shop["folder"]).as_of("2026-W46"), MetricSettings()).frame
    pd.testing.assert_frame_equal(stored, direct, check_dtype=False)


def test_a_weekly_run_attaches_its_schema_snapshot_and_drops_it(pg_shop, tmp_path, monkeypatch):
    monkeypatch.setenv(psnapshot.SNAPSHOT_SCHEMA_ENV, SCHEMA)
    before = snapshot_tables(pg_shop["url"])
    nb = make_notebook(tmp_path / "01_count.ipynb", COUNTING)
    report = run_week("2026-W46", pg_shop["url"], tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    summary = json.loads((report / "kernel.json").read_text())
    assert (summary["kernel_validations"], summary["orders"]) == (0, 3)
    assert snapshot_tables(pg_shop["url"]) == before


def _plant(url: str, names: list[str]) -> None:
    con = ibis.connect(url)
    try:
        if SCHEMA not in con.list_databases():
            con.create_database(SCHEMA)
        for name in names:
            con.create_table(name, pd.DataFrame({"order_id": ["o-1"]}), database=SCHEMA, overwrite=True)
    finally:
        con.disconnect()


def test_the_tables_a_killed_run_left_in_the_schema_are_dropped_by_the_next_run_of_the_folder(pg_shop, tmp_path,
                                                                                              monkeypatch):
    monkeypatch.setenv(psnapshot.SNAPSHOT_SCHEMA_ENV, SCHEMA)
    reports, elsewhere = tmp_path / "reports", tmp_path / "other_team"
    reports.mkdir()
    elsewhere.mkdir()
    this_week = run_tables_prefix(reports, IsoWeek.parse("2026-W46"))
    other_week = run_tables_prefix(reports, IsoWeek.parse("2026-W45"))
    other_team = run_tables_prefix(elsewhere, IsoWeek.parse("2026-W46"))
    dead = [f"{this_week}dead0001_orders", f"{this_week}dead0001_meta", f"{other_week}dead0002_orders"]
    kept = [f"{other_team}live0003_orders"]  # another reports folder's run: not this folder's to judge
    _plant(pg_shop["url"], dead + kept)
    lines: list[str] = []
    nb = make_notebook(tmp_path / "01_count.ipynb", COUNTING)
    run_week("2026-W46", pg_shop["url"], reports, journal=tmp_path / "j", notebooks=[nb], log=lines.append)
    left = snapshot_tables(pg_shop["url"])
    assert not set(dead) & set(left)
    assert set(kept) <= set(left)
    assert any("killed run of 2026-W46" in line for line in lines)
    con = ibis.connect(pg_shop["url"])
    con.drop_table(kept[0], database=SCHEMA, force=True)
    con.disconnect()


def test_a_dead_run_of_another_week_whose_lock_is_held_keeps_its_tables(pg_shop, tmp_path, monkeypatch):
    monkeypatch.setenv(psnapshot.SNAPSHOT_SCHEMA_ENV, SCHEMA)
    reports = tmp_path / "reports"
    reports.mkdir()
    busy = f"{run_tables_prefix(reports, IsoWeek.parse('2026-W45'))}live0004_orders"
    _plant(pg_shop["url"], [busy])
    nb = make_notebook(tmp_path / "01_count.ipynb", COUNTING)
    with exclusive_lock(reports / ".2026-W45.lock", what="a live run of 2026-W45", wait=0):
        run_week("2026-W46", pg_shop["url"], reports, journal=tmp_path / "j", notebooks=[nb], log=lambda _: None)
        assert busy in snapshot_tables(pg_shop["url"])
    con = ibis.connect(pg_shop["url"])
    con.drop_table(busy, database=SCHEMA, force=True)
    con.disconnect()
