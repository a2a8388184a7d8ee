"""Data access: open a source, load it once, validate it, cut it at the end of a week.

A source is a folder of ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet`` files, or
a database URL that ``ibis.connect`` understands (``postgres://user@host/db``,
``duckdb:///file.db``...), or a Spark source (``pyspark://<folder>?spark.master=local[4]``, a
Spark Connect ``sc://host:port``: ``connect_spark``). All further work happens in the engine
through ibis, so the same code runs on DuckDB (embedded default), PostgreSQL, Spark and
warehouses; pandas only ever sees aggregates.

A database password never travels as a parameter: papermill keeps the ``data`` parameter in the
executed notebooks kept under ``reports/<WEEK>/executed/``. A URL that carries one (``user:password@``
or a secret-looking query parameter) is refused; the password is read from the environment
variable ``PLAYBOOK_DB_PASSWORD``.
"""
from __future__ import annotations

import datetime as dt
import gc
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import ibis
import pandas as pd

from playbook.core.weeks import IsoWeek, completeness_note, latest_complete_week
from playbook.data import contract, csv_files, parquet_types
from playbook.data.contract import OPTIONAL_TABLES
from playbook.data.validation import DataQualityWarning, KnownMetrics, validate

PASSWORD_ENV = "PLAYBOOK_DB_PASSWORD"
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


class SourceError(ValueError):
    """The source itself cannot be opened (missing folder, ambiguous files, bad URL)."""


def is_url(source: str) -> bool:
    return bool(_URL_RE.match(str(source)))


def redact(source: str | os.PathLike) -> str:
    """The source as it may appear in a report: a URL loses its password and secret-looking query values."""
    text = str(source)
    if not is_url(text):
        return text
    scheme, rest = text.split("://", 1)
    if "@" in rest and not rest.startswith("/"):
        # The user info ends at the last '@': a password pasted without escaping may hold '/', '?',
        # '#' or '@', which end the netloc of a standard parse and would leave the password in view.
        userinfo, host = rest.rsplit("@", 1)
        user = re.split(r"[:/?#]", userinfo, maxsplit=1)[0]
        text = f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    # Rebuilt by hand: urlunsplit would turn 'duckdb:///file.db' into 'duckdb:/file.db'.
    head, mark, tail = text.partition("?")
    query, hash_, fragment = tail.partition("#")
    # any parameter whose name contains a secret word: password, api_key, access_token, client_secret...
    query = re.sub(r"(?i)([^&=]*(?:password|passwd|pwd|secret|token|key)[^&=]*)=[^&]*", lambda m: f"{m.group(1)}=***", query)
    # Spark Connect's parameters follow '/;', separated by ';': sc://host:15002/;token=...
    head = re.sub(r"(?i)(;[^;=/]*(?:password|passwd|pwd|secret|token|key)[^;=/]*)=[^;]*", lambda m: f"{m.group(1)}=***", head)
    return f"{head}{mark}{query}{hash_}{fragment}"


_SECRET_NAME_RE = re.compile(r"(?i)password|passwd|pwd|secret|token|key")


def _secrets_in_url(url: str) -> list[str]:
    """Where ``url`` carries a secret: 'a password after the user name', 'query parameter NAME'.

    Read like ``redact`` reads it: the user info ends at the last '@', so that a password pasted
    without escaping ('/', '?', '#' or '@' in it) is found too.
    """
    found: list[str] = []
    scheme, rest = url.split("://", 1)
    if "@" in rest and not rest.startswith("/"):
        userinfo = rest.rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        # 'ana@host:5432/db?x=a@b': the ':' is the port's, after the host, not a password's
        if colon and password and not re.search(r"[@/?#]", user):
            found.append("a password after the user name")
    query = url.partition("?")[2].partition("#")[0]
    items = query.split("&")
    if scheme.lower() == "sc":  # Spark Connect: sc://host:port/;token=...;user_id=...
        items += rest.partition("/;")[2].split(";")
    for item in items:
        name = item.partition("=")[0]
        if _SECRET_NAME_RE.search(name):
            found.append(f"query parameter {name!r}")
    return found


def refuse_secrets(url: str) -> None:
    """Refuse a database URL that carries a password; the message never shows it."""
    found = _secrets_in_url(url) if is_url(url) else []
    if found:
        raise SourceError(
            f"the database URL {redact(url)} carries a secret ({', '.join(found)}): a URL is a notebook "
            f"parameter, and papermill keeps it in the executed notebooks under reports/<WEEK>/executed/. "
            f"Remove it from the URL and put the password in the environment variable {PASSWORD_ENV}"
        )


def _url_with_password(url: str) -> str:
    """``url`` with the password of ``PLAYBOOK_DB_PASSWORD`` (URL-encoded) after its user name."""
    refuse_secrets(url)
    password = os.environ.get(PASSWORD_ENV)
    parts = urlsplit(url)
    if not password or "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    userinfo = userinfo.split(":", 1)[0]  # 'ana:@host': an empty password is no password
    return urlunsplit((parts.scheme, f"{userinfo}:{quote(password, safe='')}@{host}", *parts[2:]))


# --- the embedded engine's own limits ---------------------------------------------------------
MEMORY_LIMIT_ENV = "PLAYBOOK_DUCKDB_MEMORY_LIMIT"  # e.g. "4GiB" (DuckDB's units); default DEFAULT_MEMORY_LIMIT_MIB
#: DuckDB's memory limit unless ``MEMORY_LIMIT_ENV`` says otherwise (or half the usable memory, if that is
#: less): the ten-million-line weekly run within 2 GiB per process, its tables on disk (docs/benchmarks.md)
DEFAULT_MEMORY_LIMIT_MIB = 1024
TEMP_DIR_ENV = "PLAYBOOK_DUCKDB_TEMP_DIR"  # the folder under which each connection spills
THREADS_ENV = "PLAYBOOK_DUCKDB_THREADS"  # default: the cores this process may run on
_TEMP_SERIAL = itertools.count()


def _usable_memory_bytes() -> int | None:
    """Physical memory, or the cgroup's limit when a container sets a lower one (None when unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def duckdb_settings() -> dict[str, str | int]:
    """The limits of an embedded DuckDB connection: ``memory_limit``, ``temp_directory``, ``threads``.

    Defaults sized for a laptop shared with a browser and a notebook server: 1 GiB
    (``DEFAULT_MEMORY_LIMIT_MIB``; half the usable memory when that is less; DuckDB's own default is
    80 %), spilling under the system's temporary folder, one thread per core this process may run on.
    The weekly run keeps its tables on disk (the source's files, the snapshot file) and DuckDB's
    buffer pool holds what a query needs: at ten million order lines the runner peaks at 1.7 GiB
    with it, against 3 GiB at half of 23.5 GiB, for about a fifth more time (docs/benchmarks.md).
    Each overrides through its environment variable (``MEMORY_LIMIT_ENV``, ``TEMP_DIR_ENV``,
    ``THREADS_ENV``). Each connection spills into a folder of its own under the
    temporary folder (process id and a serial): DuckDB names its spill files alike in every instance
    and removes the folder when it closes, so two kernels sharing one folder would corrupt or delete
    each other's files (duckdb/duckdb#15173, #5878).
    """
    settings: dict[str, str | int] = {}
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    usable = _usable_memory_bytes()
    if limit:
        settings["memory_limit"] = limit
    else:
        half = usable // 2 // 2**20 if usable else DEFAULT_MEMORY_LIMIT_MIB
        settings["memory_limit"] = f"{min(half, DEFAULT_MEMORY_LIMIT_MIB)}MiB"
    base = os.environ.get(TEMP_DIR_ENV, "").strip() or tempfile.gettempdir()
    settings["temp_directory"] = str(Path(base) / f"playbook-duckdb-{os.getpid()}-{next(_TEMP_SERIAL)}")
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads and not (threads.isdigit() and int(threads) > 0):
        raise SourceError(f"{THREADS_ENV}={threads!r}: give a whole number of threads, 1 or more")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    settings["threads"] = int(threads) if threads else cores
    return settings


def connect_duckdb() -> ibis.BaseBackend:
    """An in-memory DuckDB connection with the playbook's limits (``duckdb_settings``)."""
    return ibis.duckdb.connect(**duckdb_settings())


# --- Apache Spark: a local session over a folder of Parquet, or a Spark Connect server ------------
#
# ``pyspark://<folder>?spark.master=local[4]&<spark.conf>=<value>...``: a Spark session started in this
# process (a JVM; Java 17 or newer), whose warehouse is ``<folder>``. The contract tables are those
# of the session's catalog, else ``<folder>/<table>.parquet`` (a file, or a folder of part files as
# Spark writes one) or ``<folder>/<table>/``. ``sc://host:port``: a Spark Connect server (a cluster);
# the tables are those of its catalog's current database. The same ibis expressions run on both.
SPARK_SCHEMES = ("pyspark", "sc")
#: conf every session gets unless the URL says otherwise; the session's time zone is always UTC
#: (timestamps are naive, the shop's clock, read as DuckDB reads them)
_SPARK_DEFAULTS = {
    "spark.master": "local[*]",
    "spark.app.name": "returns-playbook",
    # pandas 3 through Arrow: without it, a NULL of a string or a float column sent from pandas
    # arrives as the text 'NaN' or as NaN (not NULL), and results come back row by row
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",  # progress bars would fill the notebooks' logs
    "spark.log.level": "ERROR",
    # pandas and pyarrow write timestamps in nanoseconds, which Spark 4 refuses ([PARQUET_TYPE_ILLEGAL]) unless
    # it reads them as longs; the folder's tables turn them back into timestamps (``_read_parquet_spark``)
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}
#: a local session listens on loopback only and serves no UI (no port opened to the network)
_SPARK_LOCAL_DEFAULTS = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
}


def is_spark(source: str | os.PathLike) -> bool:
    """``source`` is a Spark source (``pyspark://...`` or ``sc://...``)."""
    return str(source).split("://", 1)[0].lower() in SPARK_SCHEMES if is_url(source) else False


def spark_conf(url: str) -> tuple[Path | None, dict[str, str]]:
    """The warehouse folder and the session conf of a ``pyspark://`` URL (defaults filled in).

    ``pyspark:///abs/folder?spark.master=local[2]``: everything between ``://`` and ``?`` is the
    folder (absolute with a third slash; ibis's own parser would read it relative to the working
    folder), every query parameter a Spark conf entry.
    """
    rest = str(url).split("://", 1)[1]
    path, _, query = rest.partition("?")
    conf = dict(_SPARK_DEFAULTS)
    conf.update(parse_qsl(query.partition("#")[0], keep_blank_values=True))
    if conf["spark.master"].startswith("local"):
        conf = {**_SPARK_LOCAL_DEFAULTS, **conf}
    if conf["spark.master"].startswith("local"):
        # Spark's 200 shuffle partitions are sized for a cluster: on one machine each query then
        # schedules hundreds of tiny tasks (2 instead of 200 at local[2]: the baseline metrics of the
        # sample week 25-33 % faster)
        cores = re.fullmatch(r"local\[(\d+)(?:,\d+)?\]", conf["spark.master"])
        conf.setdefault("spark.sql.shuffle.partitions", cores.group(1) if cores else str(os.cpu_count() or 2))
    folder = Path(unquote(path)).expanduser().absolute() if path else None
    if folder is not None:
        conf.setdefault("spark.sql.warehouse.dir", str(folder))
    conf["spark.sql.session.timeZone"] = "UTC"
    return folder, conf


def is_local_spark(source: str | os.PathLike) -> bool:
    """A ``pyspark://`` source whose master is local: its driver's disk is the executors' disk."""
    text = str(source)
    return is_spark(text) and text.lower().startswith("pyspark") and spark_conf(text)[1]["spark.master"].startswith("local")


def connect_spark(url: str, source_tables: bool = True) -> ibis.BaseBackend:
    """An ibis connection on the Spark session of ``url`` (started, or the one this process has).

    A session is one per process: a second connection in the same process gets the same session
    (``getOrCreate``), with the conf it was started with. Its folder's Parquet tables that the
    catalog does not know are registered as temporary views under their contract names (unless
    ``source_tables`` is false: a kernel that reads the stored snapshot needs none of them).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SourceError("a Spark source needs PySpark: pip install -e '.[spark]' (and Java 17 or newer)") from None
    if url.lower().startswith("sc://"):
        token = os.environ.get(PASSWORD_ENV)
        remote = url + (f"{'' if '/;' in url else '/'};token={token}" if token else "")
        try:
            session = SparkSession.builder.remote(remote).getOrCreate()
        except ImportError:
            raise SourceError("a Spark Connect source needs PySpark's Connect client: pip install -e '.[spark]'") from None
        return _prepare_spark(ibis.pyspark.connect(session))
    folder, conf = spark_conf(url)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    con = _prepare_spark(ibis.pyspark.connect(builder.getOrCreate()))
    if folder is not None and source_tables:
        _register_parquet(con, folder)
    return con


def _spark_compiler():
    """ibis's PySpark compiler with ``strip()`` rendered so that Spark trims whitespace, not letters.

    ibis 12 renders ``strip()`` as ``TRIM(' \\t\\n\\r\\v\\f' FROM x)``; Spark's parser reads ``\\v`` and
    ``\\f`` as the letters v and f, so 'fit_size_message' lost its 'f' (seen in the parity test). The
    same whitespace set, with those two characters given by their codes.
    """
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    class Compiler(PySparkCompiler):
        def visit_Strip(self, op, *, arg):
            return self.f.trim(arg, self.f.concat(" \t\n\r", self.f.char(11), self.f.char(12)))

    return Compiler()


_SPARK_COMPILER: list = []  # built once per process


def _prepare_spark(con: ibis.BaseBackend) -> ibis.BaseBackend:
    """The connection with our compiler (``_spark_compiler``) and DuckDB's ``timezone(zone, instant)`` (a Spark 4 SQL function).

    Validation reads a timestamp written with an offset as the shop's clock through that builtin
    (``validation.convert._local_clock``); Spark names it ``from_utc_timestamp``. One temporary
    function keeps the expression the same on every engine.
    """
    if not _SPARK_COMPILER:
        _SPARK_COMPILER.append(_spark_compiler())
    con.compiler = _SPARK_COMPILER[0]  # this connection only: the class's compiler stays ibis's own
    con.raw_sql("CREATE OR REPLACE TEMPORARY FUNCTION timezone(zone STRING, instant TIMESTAMP) RETURNS TIMESTAMP_NTZ "
                "RETURN CAST(from_utc_timestamp(instant, zone) AS TIMESTAMP_NTZ)")
    return con


def _register_parquet(con: ibis.BaseBackend, folder: Path) -> None:
    """Register ``folder``'s Parquet tables the catalog does not know; a CSV file there is refused."""
    present = set(con.list_tables())
    for name in (*contract.ALL_TABLES, EXPORT_TABLE):
        if name in present:
            continue
        found = [p for p in (folder / f"{name}.parquet", folder / name) if p.exists()]
        if len(found) > 1:
            raise SourceError(f"table {name}: both {found[0]} and {found[1]} in {folder}; keep one")
        if found:
            _read_parquet_spark(con, found[0], name)
            continue
        csv = [p.name for p in (folder / f"{name}.csv", folder / f"{name}.csv.gz") if p.is_file()]
        if csv:
            raise SourceError(f"table {name}: a Spark source reads Parquet, not {csv[0]} ({folder}); convert it "
                              f"to {name}.parquet, or open the folder itself (DuckDB)")


_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


def _read_parquet_spark(con: ibis.BaseBackend, path: Path, name: str) -> ibis.Table:
    """Register the Parquet file (or folder) ``path`` as the temporary view ``name`` of the Spark session.

    A column Spark cannot read stops here, named with its type and what to write instead, before Spark
    reads anything (``parquet_types.spark_unreadable``). Timestamps in nanoseconds (pandas' and pyarrow's
    default) are read as longs (``spark.sql.legacy.parquet.nanosAsLong``) and turned back into timestamps,
    floored to the microsecond as Spark and DuckDB count them: naive ones (the shop's clock) into
    ``TIMESTAMP_NTZ`` as Spark reads a naive timestamp in microseconds, instants into ``TIMESTAMP``.
    """
    columns = _parquet_schema(path, name)
    unreadable = parquet_types.spark_unreadable(columns)
    if unreadable:
        raise SourceError(f"table {name}: Spark cannot read {path}: " + "; ".join(
            f"column {u.column} is {u.type_text}, {u.advice}" for u in unreadable)
            + ". Spark stops at the whole table, even on a column the contract does not read: rewrite the file, or "
              "give the folder itself as the source (DuckDB reads it)")
    nanos = parquet_types.nanos_columns(columns)
    session = con._session
    try:
        if nanos and session.conf.get(_NANOS_AS_LONG, "false").lower() != "true":
            session.conf.set(_NANOS_AS_LONG, "true")  # a session started before, or told otherwise by the URL
        frame = session.read.parquet(str(path))
        if nanos:
            from pyspark.sql import functions as F

            def timestamp(column: str, instant: bool):
                quoted = "`" + column.replace("`", "``") + "`"
                micros = F.expr(f"timestamp_micros(({quoted} - pmod({quoted}, 1000)) div 1000)")
                return micros if instant else micros.cast("timestamp_ntz")

            frame = frame.withColumns({column: timestamp(column, instant) for column, instant in nanos})
        frame.createOrReplaceTempView(name)
        table = con.table(name)
    except Exception as exc:  # a type or a file the checks above do not know: Spark's own words, never a stack trace
        raise SourceError(f"table {name}: Spark cannot read {path}: {_first_line(exc)}. Rewrite the file with the "
                          f"types of the data contract (docs/data_contract.md), or give the folder itself as the "
                          f"source (DuckDB reads it)") from None
    return _check_types(name, table, path, "Spark")


def _parquet_schema(path: Path, name: str) -> list[parquet_types.ParquetColumn]:
    try:
        return parquet_types.parquet_columns(path)
    except Exception as exc:  # not a Parquet file, a truncated one...
        raise SourceError(f"table {name}: {path} is not a readable Parquet file: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """An engine's error in one line: its first, without the Java stack trace (the exception's name when empty)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


#: what a contract column of each kind should be written as, when its type cannot be read
_KIND_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "date": "a date",
               "timestamp": "a timestamp (date and time)", "isoweek": "text such as 2026-W47"}


def _check_types(name: str, table: ibis.Table, path: Path, engine: str) -> ibis.Table:
    """``table``, unless a contract column has a type the engine does not know (DuckDB's TIME_NS, say):
    then a SourceError naming the table, the column, the type and what to write instead."""
    spec = contract.TABLES.get(name)
    if spec is None:
        return table
    kinds = {c.name.lower(): c.kind for c in spec.all_columns}
    bad = [(column, dtype) for column, dtype in table.schema().items()
           if dtype.is_unknown() and column.strip().lower() in kinds]
    if bad:
        raise SourceError(f"table {name}: {engine} cannot read " + "; ".join(
            f"column {column} of {path} (type {dtype}): write it as {_KIND_WORDS[kinds[column.strip().lower()]]}"
            for column, dtype in bad))
    return table


def table_file(folder: Path, name: str) -> Path | None:
    """The file of table ``name`` in a folder source (``<name>.parquet``, ``<name>.csv`` or ``<name>.csv.gz``),
    None when there is none; a SourceError when there are several."""
    candidates = [folder / f"{name}{suffix}" for suffix in _FILE_SUFFIXES]
    present = [p for p in candidates if p.is_file()]
    if len(present) > 1:
        raise SourceError(f"table {name}: several files in {folder} ({', '.join(p.name for p in present)}); keep one")
    return present[0] if present else None


def _table_files(folder: Path) -> dict[str, Path]:
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
        con = _connect(text)  # a URL carrying a password is refused before anything else
        present = set(con.list_tables())
        return LoadedSource(con, {name: con.table(name) for name in contract.ALL_TABLES if name in present})
    folder = Path(text)
    if not folder.is_dir():
        raise SourceError(f"data source {text!r} is neither a folder nor a database URL")
    con = connect_duckdb()
    tables: dict[str, ibis.Table] = {}
    comma: set[str] = set()
    in_place: set[str] = set()
    for name, path in _table_files(folder).items():
        if path.suffix == ".parquet":
            try:
                tables[name] = _check_types(name, con.read_parquet(path, table_name=name), path, "DuckDB")
            except SourceError:
                raise
            except Exception as exc:  # a file DuckDB cannot open or read: its words, with the table
                raise SourceError(f"table {name}: DuckDB cannot read {path}: {_first_line(exc)}") from None
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


def unavailable(table: str, empty_tables: list[str] | tuple[str, ...] = ()) -> str:
    """Why a metric needing ``table`` is not shown: the table was not given, or it has no rows."""
    return f"not available (no {table} {'rows' if table in empty_tables else 'table'})"


@dataclass
class Dataset:
    """A validated source: contract tables typed and cleaned, plus its data-quality warnings.

    ``missing_tables``: optional tables not given. ``empty_tables``: optional tables given without
    a row; they are left out of ``tables`` so that nothing computes a 0 from them.
    """

    con: ibis.BaseBackend
    tables: dict[str, ibis.Table]
    warnings: list[DataQualityWarning]
    missing_tables: list[str]
    source_label: str
    empty_tables: list[str] = field(default_factory=list)
    #: the source's own statement of how far it is complete (``export`` table), else None
    complete_through: dt.datetime | dt.date | None = None

    def has(self, table: str) -> bool:
        return table in self.tables

    def missing(self, table: str) -> str:
        return unavailable(table, self.empty_tables)

    def first_timestamp(self) -> dt.datetime:
        return self.tables["orders"].order_ts.min().to_pyarrow().as_py()

    def last_timestamp(self) -> dt.datetime:
        """The latest order of the data (orders arrive all day long; returns and contacts lag behind)."""
        return self.tables["orders"].order_ts.max().to_pyarrow().as_py()

    def completeness(self) -> dt.datetime | dt.date:
        """How far the data are complete: the source's ``complete_through``, else the latest event."""
        return self.complete_through if self.complete_through is not None else self.last_timestamp()

    def first_week(self) -> IsoWeek:
        """The ISO week of the first order."""
        return IsoWeek.of(self.first_timestamp())

    def latest_complete_week(self) -> IsoWeek:
        """The latest week the data run to the end of (Sunday 23:00, or the source's ``complete_through``)."""
        return latest_complete_week(self.completeness())

    def completeness_note(self) -> str:
        """The latest complete week and why, in words (the first line of a weekly run)."""
        source = "the export says the data are complete through" if self.complete_through is not None else "the data run to"
        text = completeness_note(self.completeness(), source)
        return text[0].upper() + text[1:]

    def check_week(self, week: IsoWeek | str) -> IsoWeek:
        """``week`` if the data cover it (first week .. latest complete week), else a ValueError saying the range."""
        iso = IsoWeek.parse(week)
        first, last = self.first_week(), self.latest_complete_week()
        if iso < first:
            raise ValueError(f"week {iso} is before the data: they start in week {first}; "
                             f"weeks available: {first} .. {last}")
        if iso > last:
            raise ValueError(f"week {iso} is after the latest complete week of the data ({last}: the data "
                             f"end on {self.last_timestamp():%Y-%m-%d}); weeks available: {first} .. {last}")
        return iso

    def as_of(self, week: IsoWeek | str) -> "Snapshot":
        return Snapshot.cut(self, IsoWeek.parse(week))

    def close(self, disconnect: bool = True) -> None:
        """Drop the cached tables and disconnect (a DuckDB database file stays locked while open).

        The tables are released first so that ibis drops its cached copies while the connection
        still answers (left to the garbage collector, they fail at exit on a closed connection).
        ``disconnect=False`` keeps the connection for its owner (a Spark session the run serves).
        """
        self.tables.clear()
        gc.collect()
        if disconnect:
            self.con.disconnect()


def open_dataset(source: str | os.PathLike, timezone: str = "UTC",
                 known_metrics: KnownMetrics | Collection[str] | None = None) -> Dataset:
    """Load and validate ``source``; raises ``ContractError`` (from validation) on a broken contract.

    ``timezone``: the shop's IANA time zone (the configuration's ``timezone``); timestamps with an
    offset are converted to its clock, naive ones are its clock already. ``known_metrics``: the
    metric names an experiment's ``primary_metric`` may take (None: not checked here).
    """
    loaded = load_source(source)
    con, raw = loaded.con, loaded.tables
    checked = validate(raw, timezone=timezone, known_metrics=known_metrics, decimal_comma=loaded.decimal_comma)
    # The validated tables are cast and cleaned views over the raw ones; materialize them once in
    # the engine so that every metric query does not redo the casts. Not a Parquet file's: its
    # columns are typed already and a scan of it costs little, while a copy in memory is the whole
    # shop (2.5 GiB at ten million lines, docs/benchmarks.md); the weekly run reads it once more,
    # to store the week's cut in the snapshot file.
    # An optional table given without a row is treated as a missing one (validation warned about it):
    # a metric needing it is "not available (no <table> rows)", never computed as 0.
    empty = [n for n in OPTIONAL_TABLES if n in checked.tables and checked.row_counts.get(n) == 0]
    tables = {name: table if name in loaded.in_place else table.cache()
              for name, table in checked.tables.items() if name not in empty}
    if not is_url(str(source)):
        _drop_loaded_csv(con, raw)
    return Dataset(con, tables, checked.warnings, checked.missing_tables, redact(source), empty,
                   read_complete_through(source, con))


EXPORT_TABLE = "export"  # optional metadata: one row, column complete_through (date or timestamp)


def read_complete_through(source: str | os.PathLike, con: ibis.BaseBackend) -> dt.datetime | dt.date | None:
    """The source's own ``complete_through`` (table or file ``export``), or None when it says nothing.

    An export taken on Sunday at noon can say it is complete through the Saturday, or through
    the Sunday 23:59:59 if nothing happens in the afternoon; without it, the latest event decides.
    """
    text = str(source)
    if is_url(text):
        if EXPORT_TABLE not in con.list_tables():
            return None
        values = con.table(EXPORT_TABLE).to_pandas()
    else:
        path = Path(text) / f"{EXPORT_TABLE}.csv"
        if not path.is_file():
            return None
        values = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return _parse_complete_through(values)


def _parse_complete_through(values: pd.DataFrame) -> dt.datetime | dt.date:
    rule = f"table {EXPORT_TABLE}, column complete_through"
    if "complete_through" not in values.columns:
        raise SourceError(f"{rule}: column missing (columns: {', '.join(map(str, values.columns))})")
    cells = [str(v).strip() for v in values["complete_through"] if str(v).strip() not in ("", "None", "NaT", "nan")]
    if len(cells) != 1:
        raise SourceError(f"{rule}: exactly one value expected, {len(cells)} given "
                          f"(examples: {', '.join(repr(c) for c in cells[:3]) or 'none'})")
    try:
        stamp = pd.Timestamp(cells[0])
    except (ValueError, TypeError):
        raise SourceError(f"{rule}: {cells[0]!r} is not a date (YYYY-MM-DD) or a timestamp (YYYY-MM-DD HH:MM:SS)") from None
    if stamp.tzinfo is not None or pd.isna(stamp):
        raise SourceError(f"{rule}: {cells[0]!r}: give the shop's local time without a time zone")
    return stamp.date() if len(cells[0]) == 10 else stamp.to_pydatetime()


def _drop_loaded_csv(con: ibis.BaseBackend, raw: dict[str, ibis.Table]) -> None:
    """Free the raw copies of CSV tables once their validated copies are materialized.

    Only the embedded DuckDB of a folder source is touched (never a user's database): without this
    every CSV table is held twice in memory (docs/benchmarks.md).
    """
    present = set(con.list_tables())
    for name in raw:
        if name in present and f"_csv_{name}" in present:
            con.drop_table(name, force=True)
            con.drop_view(f"_csv_{name}", force=True)


def gather_statistics(con: ibis.BaseBackend | None, table: ibis.Table) -> ibis.Table:
    """``table`` (a table just materialized in the engine), after the engine has counted it.

    PostgreSQL never analyzes a temporary table and analyzes a new one only later: until then its
    planner assumes 200 distinct keys and a handful of matching rows, and nests the join of a
    filtered table (an experiment's lines) around a scan of returns repeated once per line
    (tests/test_postgres_plans.py found it). ``ANALYZE`` samples the table (a fraction of a second
    for 600,000 lines). Other engines plan from the data they read: nothing to do.
    """
    if con is None or con.name != "postgres":
        return table
    op = table.op()
    schema = getattr(getattr(op, "namespace", None), "database", None)
    name = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, op.name) if part)
    cursor = con.raw_sql(f"ANALYZE {name}")
    cursor.close()
    return table


@dataclass
class Snapshot:
    """The dataset as it was known at the end of ``week``.

    Rows time-stamped after the cut are dropped; a delivery or an action closure after the
    cut is treated as not happened yet.
    """

    dataset: Dataset
    week: IsoWeek
    tables: dict[str, ibis.Table] = field(default_factory=dict)
    #: derived tables materialized once in the engine and shared by every step (see ``derived``)
    _derived: dict = field(default_factory=dict, repr=False)
    #: whether the cut's large tables are materialized (``_materialize_cut``); a stored one needs not
    _cut_cached: bool = field(default=False, repr=False)
    #: where ``derived`` writes its tables instead of the engine's memory: (name, expression) -> the
    #: written table (``_store_file`` writes them straight into the snapshot file); None: ``.cache()``
    _write: Callable[[str, ibis.Table], ibis.Table] | None = field(default=None, repr=False)

    def derived(self, key: tuple, build) -> ibis.Table:
        """``build()`` materialized in the engine once per snapshot (e.g. the line facts for k days).

        Every step queries the same facts many times; rebuilding them from the raw tables in each
        query cost most of the weak-cohort and comparison time (see docs/benchmarks.md).
        """
        if key not in self._derived:
            if self._write is not None:
                self._derived[key] = self._write(_derived_name(key), build())
                return self._derived[key]
            self._materialize_cut()
            con = self.dataset.con if self.dataset is not None else None  # None: a snapshot built by hand (tests)
            self._derived[key] = gather_statistics(con, build().cache())
        return self._derived[key]

    #: the event tables every shared fact joins: materialized once before the first fact is built
    _CUT_MATERIALIZED = ("orders", "order_lines", "returns")

    def _materialize_cut(self) -> None:
        """Cache the cut's large tables once (a database's temporary tables) before the facts are built.

        The cut is a filter and two semi-joins over the source; left as sub-selects, a database re-plans
        them inside every fact (line facts nest the orders three times) and, without statistics on
        them, picks sort-merge joins that spill (PostgreSQL: line facts of 600,000 lines in 20-29 s,
        10 s from cached cut tables; docs/benchmarks.md, "PostgreSQL"). DuckDB plans the nested cut as
        one pipeline and holds its tables in memory: a cached copy would only double that memory, so
        it keeps the cut as a view. A stored snapshot's tables are plain tables already.
        """
        if self._cut_cached or self.dataset is None or self.dataset.con.name == "duckdb":
            return
        for name in self._CUT_MATERIALIZED:
            if name in self.tables:
                self.tables[name] = gather_statistics(self.dataset.con, self.tables[name].cache())
        self._cut_cached = True

    @property
    def cutoff(self) -> dt.datetime:
        return self.week.end

    def first_week(self) -> IsoWeek:
        """The ISO week of the snapshot's first order (its own week when it has no order)."""
        first = self.tables["orders"].order_ts.min().to_pyarrow().as_py()
        return IsoWeek.of(first) if first is not None else self.week

    def has(self, table: str) -> bool:
        return table in self.tables

    def missing(self, table: str) -> str:
        """Why a metric needing ``table`` is not shown ('no contacts table', or 'no contacts rows' if empty)."""
        if self.dataset is None:  # a snapshot built by hand (tests) has no dataset to ask
            return f"not available (no {table} table)"
        return self.dataset.missing(table)

    @classmethod
    def cut(cls, dataset: Dataset, week: IsoWeek) -> "Snapshot":
        end = ibis.literal(week.end)
        last_day = ibis.literal(week.sunday)
        src = dataset.tables
        out: dict[str, ibis.Table] = {}

        orders = src["orders"].filter(src["orders"].order_ts <= end)
        orders = orders.mutate(
            delivered_ts=ibis.ifelse(orders.delivered_ts <= end, orders.delivered_ts, ibis.null("timestamp"))
        )
        out["orders"] = orders
        lines = src["order_lines"]
        out["order_lines"] = lines.semi_join(orders, lines.order_id == orders.order_id)
        returns = src["returns"].filter(src["returns"].requested_ts <= end)
        out["returns"] = returns.semi_join(out["order_lines"], returns.line_id == out["order_lines"].line_id)
        for name, column in (("sessions", "date"), ("marketing_spend", "date"), ("experiments", "start_date")):
            if name in src:
                out[name] = src[name].filter(src[name][column] <= last_day)
        if "contacts" in src:
            out["contacts"] = src["contacts"].filter(src["contacts"].contact_ts <= end)
        if "assignments" in src:
            out["assignments"] = src["assignments"].filter(src["assignments"].assigned_ts <= end)
        if "actions" in src:
            actions = src["actions"].filter(src["actions"].week <= str(week))
            # An action closed after the cut was still open at the end of the week; a closed
            # action with no closure time cannot be dated and keeps its status.
            late = actions.closed_ts.notnull() & (actions.closed_ts > end)
            out["actions"] = actions.mutate(
                closed_ts=ibis.ifelse(late, ibis.null("timestamp"), actions.closed_ts),
                status=ibis.ifelse((actions.status == "closed") & late, ibis.literal("open"), actions.status),
            )
        return cls(dataset, week, out)


# --- the stored snapshot: one open and one validation per weekly run ------------------------------
#
# The runner opens and validates the source once, cuts it at the end of the week and stores the
# cut tables with the shared facts (``Snapshot.derived``) where the data live: a DuckDB file for a
# folder source, tables in a schema the user names (``PLAYBOOK_SNAPSHOT_SCHEMA``) for a database.
# Every notebook then attaches it instead of re-opening and re-validating the source.

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
    for module in ("data/contract.py", "data/validation", "data/dataset.py", "data/csv_files.py", "data/facts.py",
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
        con = _connect(text)
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
        files = list(_table_files(folder).values()) if folder.is_dir() else []
        export = folder / f"{EXPORT_TABLE}.csv"
        for path in sorted([*files, *([export] if export.is_file() else [])]):
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _connect(url: str) -> ibis.BaseBackend:
    refuse_secrets(url)  # before anything else: the URL would be kept in the executed notebooks
    try:
        return connect_spark(url) if is_spark(url) else ibis.connect(_url_with_password(url))
    except SourceError:
        raise
    except Exception as exc:  # the message may echo the URL: never let the password through
        raise SourceError(f"cannot open {redact(url)}: {type(exc).__name__}") from None


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


def _derived_name(key: tuple) -> str:
    return "derived__" + "__".join(str(part) for part in key)


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
    items = {**snap.tables, **{_derived_name(k): t for k, t in snap._derived.items()}}
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
        derived = {key: write(_derived_name(key), table) for key, table in snap._derived.items()}
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
        return _connect(location.target)
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
    derived = {key: _snapshot_table(con, loc, _derived_name(key)) for key in meta.derived}
    return Snapshot(dataset, IsoWeek.parse(meta.week), tables, derived, _cut_cached=True)


def drop_snapshot(location: SnapshotLocation) -> None:
    """Remove a stored snapshot (the file, or its tables in the schema); nothing when it is gone."""
    if location.is_file:
        Path(location.target).unlink(missing_ok=True)
        return
    if location.folder:
        shutil.rmtree(location.folder, ignore_errors=True)
        return
    con = _connect(location.target)
    meta = read_snapshot_meta(location, con)
    names = [*(meta.tables if meta else ()), *(_derived_name(k) for k in (meta.derived if meta else ()))]
    for name in [*names, _SNAPSHOT_META]:
        con.drop_table(location.table_name(name), database=location.schema, force=True)
