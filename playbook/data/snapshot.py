"""The stored snapshot: one open and one validation per weekly run.

The runner opens and validates the source once, cuts it at the end of the week and stores the
cut tables with the shared facts (``Snapshot.derived``) where the data live: a DuckDB file for a
folder source, tables in a schema the user names (``PLAYBOOK_SNAPSHOT_SCHEMA``) for a database.
Every notebook then attaches it instead of re-opening and re-validating the source.
(The ``Snapshot`` itself, the cut, lives beside the ``Dataset`` it cuts: ``dataset.py``.)
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ibis
import pandas as pd

from playbook.core.weeks import IsoWeek
from playbook.data import contract
from playbook.data.contract import EXPORT_TABLE
from playbook.data.dataset import Dataset, Snapshot, derived_name
from playbook.data.engines.duckdb import connect_duckdb
from playbook.data.engines.postgres import gather_statistics
from playbook.data.engines.spark import connect_spark, is_spark
from playbook.data.errors import SourceError
from playbook.data.source import connect_url, table_files
from playbook.data.url_secrets import is_url, redact, refuse_secrets
from playbook.data.validation import DataQualityWarning

SNAPSHOT_SCHEMA_ENV = "PLAYBOOK_SNAPSHOT_SCHEMA"
_SNAPSHOT_META = "playbook_snapshot_meta"
_SNAPSHOT_LAYOUT = "1"  # bump when the stored tables or the metadata change shape
#: the column whose latest value tells that a database table changed (besides its row count)
_TIME_COLUMNS = {
    "orders": "order_ts", "returns": "requested_ts", "contacts": "contact_ts", "assignments": "assigned_ts",
    "sessions": "date", "marketing_spend": "date", "experiments": "start_date", "actions": "closed_ts",
    EXPORT_TABLE: "complete_through",
}


def snapshot_version() -> str:
    """What a stored snapshot depends on besides the data: the contract, the cut, validation, the facts
    (``data/facts.py`` builds the stored line and order facts).

    The hash of those modules' source (the contract is v1 in words, but its rules live in code): a
    changed rule or fact must never be served from a snapshot built by the previous code.
    """
    digest = hashlib.sha256(_SNAPSHOT_LAYOUT.encode())
    package = Path(__file__).resolve().parents[1]
    for module in ("data/contract.py", "data/validation", "data/errors.py", "data/url_secrets.py", "data/engines/duckdb.py",
                   "data/engines/spark.py", "data/engines/postgres.py", "data/engines/parquet_types.py", "data/source.py",
                   "data/dataset.py", "data/snapshot.py", "data/csv_files.py", "data/facts.py",
                   "metrics/dictionary.py",
                   "core/weeks.py", "core/settings.py"):
        path = package / module
        if not path.exists():  # a moved module must never silently stop counting
            raise RuntimeError(f"snapshot_version: {path} does not exist; update the list of modules it hashes")
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(source: str | os.PathLike) -> str:
    """A cheap identity of the source's content, without reading it.

    A folder: each table file's name, size and modification time (nanoseconds). A database: each
    contract table's row count and latest timestamp (one aggregate per table). A file rewritten
    with the same size within the same nanosecond, or a database row updated in place without a
    newer timestamp, would go unseen: the week's report is then rebuilt only by ``make weekly``,
    which never reuses a snapshot.
    """
    text = str(source)
    parts: list[str] = []
    if is_url(text):
        con = connect_url(text)
        present = set(con.list_tables())
        for name in (*contract.ALL_TABLES, EXPORT_TABLE):
            if name not in present:
                continue
            t = con.table(name)
            column = _TIME_COLUMNS.get(name)
            aggs = {"n": t.count()}
            if column in t.columns:
                aggs["last"] = t[column].cast("string").max()
            row = t.agg(**aggs).to_pyarrow().to_pylist()[0]
            parts.append(f"{name}:{row['n']}:{row.get('last')}")
    else:
        folder = Path(text)
        files = list(table_files(folder).values()) if folder.is_dir() else []
        export = folder / f"{EXPORT_TABLE}.csv"
        for path in sorted([*files, *([export] if export.is_file() else [])]):
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SnapshotLocation:
    """Where a stored snapshot lives: a DuckDB file, a table prefix in a schema of a database, or a
    folder of Parquet tables read by the local Spark session of a URL.

    As a notebook parameter it is one string (``text()``/``parse``): ``file:<path>``,
    ``db:<schema>:<prefix>:<url>`` or ``parquet:<folder>|<url>``. The URL carries no password
    (refused upstream), so the string may be kept in the executed notebooks.
    """

    target: str  # the DuckDB file's path, or the database URL
    schema: str = ""  # empty for a file
    prefix: str = ""
    #: a folder of Parquet tables (a local Spark source: the kernels read it through the run's served session)
    folder: str = ""

    @property
    def is_file(self) -> bool:
        return not self.schema and not self.folder

    def text(self) -> str:
        if self.folder:
            return f"parquet:{self.folder}|{self.target}"
        return f"file:{self.target}" if self.is_file else f"db:{self.schema}:{self.prefix}:{self.target}"

    @classmethod
    def parse(cls, text: str) -> "SnapshotLocation":
        kind, _, rest = text.partition(":")
        if kind == "file" and rest:
            return cls(rest)
        if kind == "db":
            schema, prefix, url = (rest.split(":", 2) + ["", ""])[:3]
            if schema and prefix and is_url(url):
                return cls(url, schema, prefix)
        if kind == "parquet":
            folder, _, url = rest.rpartition("|")  # a URL holds no bare '|'
            if folder and is_spark(url):
                return cls(url, folder=folder)
        raise SourceError(f"snapshot {text!r}: expected 'file:<path>', 'db:<schema>:<prefix>:<url>' "
                          f"or 'parquet:<folder>|<spark url>'")

    def table_name(self, name: str) -> str:
        return f"{self.prefix}{name}"


@dataclass(frozen=True)
class SnapshotMeta:
    """What a notebook needs besides the tables: the dataset's identity, warnings and the week."""

    week: str
    fingerprint: str
    version: str
    source_label: str
    warnings: tuple[DataQualityWarning, ...]
    missing_tables: tuple[str, ...]
    empty_tables: tuple[str, ...]
    complete_through: str  # ISO date or timestamp, empty when the source says nothing
    tables: tuple[str, ...]
    derived: tuple[tuple, ...]  # the keys of Snapshot.derived stored with it, e.g. ("line_facts", 14)

    def to_json(self) -> str:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["warnings"] = [w.to_dict() for w in self.warnings]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "SnapshotMeta":
        data = json.loads(text)
        data["warnings"] = tuple(DataQualityWarning(**{**w, "examples": tuple(w["examples"])}) for w in data["warnings"])
        data["derived"] = tuple(tuple(k) for k in data["derived"])
        for key in ("missing_tables", "empty_tables", "tables"):
            data[key] = tuple(data[key])
        return cls(**data)

    def complete_through_value(self) -> dt.datetime | dt.date | None:
        if not self.complete_through:
            return None
        value = dt.datetime.fromisoformat(self.complete_through)
        return value.date() if len(self.complete_through) == 10 else value


def store_snapshot(snap: Snapshot, location: SnapshotLocation, source_fingerprint: str,
                   shared: Callable[[Snapshot], None] | None = None) -> SnapshotMeta:
    """Write ``snap``'s cut tables and its derived tables at ``location``.

    ``shared(snapshot)`` builds the derived tables to be shared (``metrics.line_facts`` and
    ``order_facts``, through ``Snapshot.derived``); derived tables the caller materialized already
    are stored too. Into a DuckDB file, the cut is written first and the facts are then built from
    the written tables straight into the file (``_store_file``): nothing of the shop is held in
    memory. Elsewhere ``shared`` builds them in the engine first (a database's temporary tables)
    and they are copied. A DuckDB file is written under a temporary name and renamed, so that a
    reader never attaches half a snapshot; database tables are replaced whole, metadata last.
    """
    if location.is_file:
        return _store_file(snap, shared, source_fingerprint, Path(location.target))
    if shared is not None:
        shared(snap)
    ds = snap.dataset
    meta = _snapshot_meta(snap, source_fingerprint, tuple(snap._derived))
    items = {**snap.tables, **{derived_name(k): t for k, t in snap._derived.items()}}
    if location.folder:
        _store_parquet(ds.con, items, meta, Path(location.folder))
    else:
        if location.schema not in ds.con.list_databases():
            ds.con.create_database(location.schema, force=True)
        for name, table in items.items():
            gather_statistics(ds.con, ds.con.create_table(location.table_name(name), table,
                                                          database=location.schema, overwrite=True))
        ds.con.create_table(location.table_name(_SNAPSHOT_META), pd.DataFrame({"meta": [meta.to_json()]}),
                            database=location.schema, overwrite=True)
    return meta


def _snapshot_meta(snap: Snapshot, source_fingerprint: str, derived: tuple[tuple, ...]) -> SnapshotMeta:
    ds = snap.dataset
    complete = ds.complete_through.isoformat() if ds.complete_through is not None else ""
    if isinstance(ds.complete_through, dt.datetime):
        complete = ds.complete_through.isoformat(sep=" ")
    return SnapshotMeta(str(snap.week), source_fingerprint, snapshot_version(), ds.source_label,
                        tuple(ds.warnings), tuple(ds.missing_tables), tuple(ds.empty_tables), complete,
                        tuple(snap.tables), derived)


def _store_file(snap: Snapshot, shared: Callable[[Snapshot], None] | None, source_fingerprint: str,
                path: Path) -> SnapshotMeta:
    """The snapshot as a DuckDB file: each table written by ``CREATE TABLE <file>.x AS <query>``.

    The cut tables first; then ``shared`` builds the facts from those written tables, each one
    written into the file as it is built (``Snapshot._write``), never materialized in the
    in-memory database: DuckDB streams them to disk through its bounded buffer pool (at ten
    million lines, 7.7 GiB of memory when the facts were cached first and copied,
    docs/benchmarks.md).
    """
    con = snap.dataset.con
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    alias = "playbook_snapshot_out"
    con.raw_sql(f"ATTACH '{_sql_text(partial)}' AS {alias}")

    def write(name: str, table: ibis.Table) -> ibis.Table:
        con.raw_sql(f'CREATE TABLE {alias}.main."{name}" AS {con.compile(table)}')
        return con.table(name, database=(alias, "main"))

    try:
        written: dict[str, ibis.Table] = {}
        stored: dict = {}  # a cut table's expression -> its written copy
        for name, table in snap.tables.items():
            # the cut's lines semi-join its orders and its returns its lines: they read the copies just
            # written, not the source's views again (10M lines: 32 -> 23 s and 21 -> 9 s, docs/benchmarks.md)
            written[name] = write(name, table.op().replace(stored).to_expr() if stored else table)
            stored[table.op()] = written[name].op()
        # the facts the caller built already; ``shared`` adds its own to this same dict
        derived = {key: write(derived_name(key), table) for key, table in snap._derived.items()}
        if shared is not None:
            # the facts read the written cut (plain tables on disk), not the source's views again
            shared(Snapshot(snap.dataset, snap.week, written, derived, _cut_cached=True, _write=write))
        meta = _snapshot_meta(snap, source_fingerprint, tuple(derived))
        con.con.execute(f"CREATE TABLE {alias}.main.{_SNAPSHOT_META} AS SELECT ? AS meta", [meta.to_json()])
    except BaseException:
        con.raw_sql(f"DETACH {alias}")
        # a store that failed (the facts are built in it: out of memory or disk) leaves no shop's rows behind
        for leftover in (partial, partial.with_name(partial.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    con.raw_sql(f"DETACH {alias}")
    os.replace(partial, path)
    return meta


_META_FILE = f"{_SNAPSHOT_META}.json"


def _store_parquet(con: ibis.BaseBackend, items: dict[str, ibis.Table], meta: SnapshotMeta, folder: Path) -> None:
    """Each table a Parquet folder written by the engine (Spark), the metadata a JSON file, swapped in whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name, table in items.items():
        con.to_parquet(table, partial / name, mode="overwrite")
    (partial / _META_FILE).write_text(meta.to_json(), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def read_snapshot_meta(location: SnapshotLocation, con: ibis.BaseBackend | None = None) -> SnapshotMeta | None:
    """The metadata of the snapshot at ``location``, or None when there is none (or it is unreadable)."""
    try:
        if location.folder:  # a file beside the tables: read without starting a session
            return SnapshotMeta.from_json((Path(location.folder) / _META_FILE).read_text(encoding="utf-8"))
        con = con or _attach_connection(location)
        table = _snapshot_table(con, location, _SNAPSHOT_META)
        return SnapshotMeta.from_json(table.to_pyarrow().to_pylist()[0]["meta"])
    except SourceError:
        raise
    except Exception:  # missing, half-written or from an older layout: not a usable snapshot
        return None


_ATTACHED = "playbook_snapshot"


def _attach_connection(location: SnapshotLocation) -> ibis.BaseBackend:
    if location.folder:
        if not Path(location.folder).is_dir():
            raise SourceError(f"snapshot folder {location.folder} does not exist (the weekly run removes it when it ends)")
        refuse_secrets(location.target)
        return connect_spark(location.target, source_tables=False)
    if not location.is_file:
        return connect_url(location.target)
    path = Path(location.target)
    if not path.is_file():
        raise SourceError(f"snapshot file {path} does not exist (the weekly run removes it when it ends)")
    # an in-memory engine with the file attached read-only: the steps' own cached tables live in
    # memory, and several kernels may attach the same file at once
    con = connect_duckdb()
    con.attach(str(path), name=_ATTACHED, read_only=True)
    return con


def _snapshot_table(con: ibis.BaseBackend, location: SnapshotLocation, name: str) -> ibis.Table:
    if location.is_file:
        return con.table(name, database=(_ATTACHED, "main"))
    if location.folder:
        return con.read_parquet(str(Path(location.folder) / name), table_name=f"{_ATTACHED}_{name}")
    return con.table(location.table_name(name), database=location.schema)


def attach_snapshot(location: SnapshotLocation | str) -> Snapshot:
    """The stored snapshot at ``location``, attached without reading, validating or cutting the source.

    The returned ``Snapshot.dataset`` carries the source's label, warnings and missing tables as
    validated by whoever stored it; its ``tables`` are the cut tables (the full history is not
    stored), so it answers for the stored week only.
    """
    loc = SnapshotLocation.parse(location) if isinstance(location, str) else location
    con = _attach_connection(loc)
    meta = read_snapshot_meta(loc, con)
    if meta is None:
        raise SourceError(f"no readable snapshot at {redact(loc.text())}")
    if meta.version != snapshot_version():
        raise SourceError(f"the snapshot at {redact(loc.text())} was built by other code "
                          f"(version {meta.version}, this code {snapshot_version()}); rebuild it")
    tables = {name: _snapshot_table(con, loc, name) for name in meta.tables}
    dataset = Dataset(con, tables, list(meta.warnings), list(meta.missing_tables), meta.source_label,
                      list(meta.empty_tables), meta.complete_through_value())
    derived = {key: _snapshot_table(con, loc, derived_name(key)) for key in meta.derived}
    return Snapshot(dataset, IsoWeek.parse(meta.week), tables, derived, _cut_cached=True)


def drop_snapshot(location: SnapshotLocation) -> None:
    """Remove a stored snapshot (the file, or its tables in the schema); nothing when it is gone."""
    if location.is_file:
        Path(location.target).unlink(missing_ok=True)
        return
    if location.folder:
        shutil.rmtree(location.folder, ignore_errors=True)
        return
    con = connect_url(location.target)
    meta = read_snapshot_meta(location, con)
    names = [*(meta.tables if meta else ()), *(derived_name(k) for k in (meta.derived if meta else ()))]
    for name in [*names, _SNAPSHOT_META]:
        con.drop_table(location.table_name(name), database=location.schema, force=True)
