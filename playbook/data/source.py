"""Opening a source: a folder of files loaded once, or a database or Spark URL connected.

A source is a folder of ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet`` files, or
a database URL that ``ibis.connect`` understands (``postgres://user@host/db``,
``duckdb:///file.db``...), or a Spark source (``pyspark://<folder>?spark.master=local[4]``, a
Spark Connect ``sc://host:port``: ``connect_spark``). All further work happens in the engine
through ibis, so the same code runs on DuckDB (embedded default), PostgreSQL, Spark and
warehouses; pandas only ever sees aggregates.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import ibis

from playbook.data import contract, csv_files
from playbook.data.engines.duckdb import connect_duckdb
from playbook.data.engines.parquet_types import check_types, first_line
from playbook.data.engines.spark import connect_spark, is_spark
from playbook.data.errors import SourceError
from playbook.data.url_secrets import is_url, redact, refuse_secrets, url_with_password

_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def table_file(folder: Path, name: str) -> Path | None:
    """The file of table ``name`` in a folder source (``<name>.parquet``, ``<name>.csv`` or ``<name>.csv.gz``),
    None when there is none; a SourceError when there are several."""
    candidates = [folder / f"{name}{suffix}" for suffix in _FILE_SUFFIXES]
    present = [p for p in candidates if p.is_file()]
    if len(present) > 1:
        raise SourceError(f"table {name}: several files in {folder} ({', '.join(p.name for p in present)}); keep one")
    return present[0] if present else None


def table_files(folder: Path) -> dict[str, Path]:
    """The file of each contract table a folder source holds (``table_file``)."""
    found = {name: table_file(folder, name) for name in contract.ALL_TABLES}
    return {name: path for name, path in found.items() if path is not None}


@dataclass
class LoadedSource:
    """A source opened, its raw contract tables (not yet validated), and how its files write numbers."""

    con: ibis.BaseBackend
    tables: dict[str, ibis.Table]
    #: tables read from semicolon-separated files, whose numbers take a decimal comma
    decimal_comma: frozenset[str] = frozenset()
    #: tables scanned in place from columnar files (Parquet): reading them again is cheap
    in_place: frozenset[str] = frozenset()


def load_source(source: str | os.PathLike) -> LoadedSource:
    """Open ``source``: a database URL, or a folder of files.

    CSV files are loaded once into temporary tables (a CSV view would be re-parsed by every
    query), in the dialect their header shows (``playbook.data.csv_files``); Parquet files are
    scanned in place.
    """
    text = str(source)
    if is_url(text):
        con = connect_url(text)  # a URL carrying a password is refused before anything else
        present = set(con.list_tables())
        return LoadedSource(con, {name: con.table(name) for name in contract.ALL_TABLES if name in present})
    folder = Path(text)
    if not folder.is_dir():
        raise SourceError(f"data source {text!r} is neither a folder nor a database URL")
    con = connect_duckdb()
    tables: dict[str, ibis.Table] = {}
    comma: set[str] = set()
    in_place: set[str] = set()
    for name, path in table_files(folder).items():
        if path.suffix == ".parquet":
            try:
                tables[name] = check_types(name, con.read_parquet(path, table_name=name), path, "DuckDB")
            except SourceError:
                raise
            except Exception as exc:  # a file DuckDB cannot open or read: its words, with the table
                raise SourceError(f"table {name}: DuckDB cannot read {path}: {first_line(exc)}") from None
            in_place.add(name)
            continue
        tables[name], dialect = csv_files.read_csv(con, path, name)
        if dialect.decimal_comma:
            comma.add(name)
    return LoadedSource(con, tables, frozenset(comma), frozenset(in_place))


def load_tables(source: str | os.PathLike) -> tuple[ibis.BaseBackend, dict[str, ibis.Table]]:
    """Open ``source`` and return the connection and its raw contract tables (not yet validated)."""
    loaded = load_source(source)
    return loaded.con, loaded.tables


def connect_url(url: str) -> ibis.BaseBackend:
    """An ibis connection on a database or Spark URL; a URL carrying a secret is refused, the password comes
    from ``PLAYBOOK_DB_PASSWORD``, and an error never shows the URL unredacted."""
    refuse_secrets(url)  # before anything else: the URL would be kept in the executed notebooks
    try:
        return connect_spark(url) if is_spark(url) else ibis.connect(url_with_password(url))
    except SourceError:
        raise
    except Exception as exc:  # the message may echo the URL: never let the password through
        raise SourceError(f"cannot open {redact(url)}: {type(exc).__name__}") from None


def drop_loaded_csv(con: ibis.BaseBackend, raw: dict[str, ibis.Table]) -> None:
    """Free the raw copies of CSV tables once their validated copies are materialized.

    Only the embedded DuckDB of a folder source is touched (never a user's database): without this
    every CSV table is held twice in memory (docs/benchmarks.md).
    """
    present = set(con.list_tables())
    for name in raw:
        if name in present and f"_csv_{name}" in present:
            con.drop_table(name, force=True)
            con.drop_view(f"_csv_{name}", force=True)
