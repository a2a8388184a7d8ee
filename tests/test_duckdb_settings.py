"""The embedded DuckDB connection carries the playbook's limits (issue 12: memory, spilling, threads)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pytest

from playbook.data import snapshot
from playbook.data.engines import duckdb as engine
from playbook.data.engines.duckdb import MEMORY_LIMIT_ENV, TEMP_DIR_ENV, THREADS_ENV
from playbook.data.errors import SourceError
from playbook.data.snapshot import SnapshotLocation
from playbook.data.source import load_source

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples"


def _setting(con, name: str) -> str:
    return str(con.raw_sql(f"SELECT current_setting('{name}')").fetchone()[0])


def _gib(text: str) -> float:
    """DuckDB's display of a size ('1.5 GiB', '768.0 MiB') in GiB."""
    number, unit = re.fullmatch(r"([\d.]+) (KiB|MiB|GiB|TiB)", text).groups()
    return float(number) * {"KiB": 2**-20, "MiB": 2**-10, "GiB": 1.0, "TiB": 2**10}[unit]


@pytest.fixture
def no_overrides(monkeypatch):
    for name in (MEMORY_LIMIT_ENV, TEMP_DIR_ENV, THREADS_ENV):
        monkeypatch.delenv(name, raising=False)


def test_folder_source_gets_a_laptop_sized_memory_limit_the_cores_and_a_private_spill_folder(no_overrides, tmp_path):
    con = load_source(SAMPLE).con
    usable_gib = engine._usable_memory_bytes() / 2**30
    assert _gib(_setting(con, "memory_limit")) == pytest.approx(min(1.0, usable_gib / 2), rel=0.01)
    assert int(_setting(con, "threads")) == len(os.sched_getaffinity(0))
    temp = Path(_setting(con, "temp_directory"))
    assert temp.parent == Path(engine.tempfile.gettempdir())
    assert temp.name.startswith(f"playbook-duckdb-{os.getpid()}-")


def test_environment_variables_set_the_limits(monkeypatch, tmp_path):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1536MiB")
    monkeypatch.setenv(THREADS_ENV, "1")
    monkeypatch.setenv(TEMP_DIR_ENV, str(tmp_path))
    con = load_source(SAMPLE).con
    assert _setting(con, "memory_limit") == "1.5 GiB"
    assert _setting(con, "threads") == "1"
    assert Path(_setting(con, "temp_directory")).parent == tmp_path


def test_two_connections_of_one_process_never_share_a_spill_folder(no_overrides):
    a, b = load_source(SAMPLE).con, load_source(SAMPLE).con
    assert _setting(a, "temp_directory") != _setting(b, "temp_directory")


def test_an_attached_snapshot_gets_the_same_limits(monkeypatch, tmp_path):
    path = tmp_path / "snap.duckdb"
    duckdb.connect(str(path)).close()
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1GiB")
    monkeypatch.setenv(THREADS_ENV, "1")
    con = snapshot._attach_connection(SnapshotLocation(str(path)))
    assert _setting(con, "memory_limit") == "1.0 GiB"
    assert _setting(con, "threads") == "1"


def test_a_thread_count_that_is_not_a_whole_number_is_refused(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(SourceError, match=THREADS_ENV):
        load_source(SAMPLE)


def test_a_machine_with_little_memory_gets_half_of_it(no_overrides, monkeypatch):
    monkeypatch.setattr(engine, "_usable_memory_bytes", lambda: 1536 * 2**20)
    assert engine.duckdb_settings()["memory_limit"] == "768MiB"


def test_a_limit_above_the_default_is_taken_from_the_environment(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "6GiB")
    assert _setting(load_source(SAMPLE).con, "memory_limit") == "6.0 GiB"
