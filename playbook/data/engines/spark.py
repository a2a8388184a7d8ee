"""Apache Spark: a local session over a folder of Parquet, or a Spark Connect server.

``pyspark://<folder>?spark.master=local[4]&<spark.conf>=<value>...``: a Spark session started in this
process (a JVM; Java 17 or newer), whose warehouse is ``<folder>``. The contract tables are those
of the session's catalog, else ``<folder>/<table>.parquet`` (a file, or a folder of part files as
Spark writes one) or ``<folder>/<table>/``. ``sc://host:port``: a Spark Connect server (a cluster);
the tables are those of its catalog's current database. The same ibis expressions run on both.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import ibis

from playbook.data import contract
from playbook.data.contract import EXPORT_TABLE
from playbook.data.engines import parquet_types
from playbook.data.engines.parquet_types import check_types, first_line
from playbook.data.errors import SourceError
from playbook.data.url_secrets import PASSWORD_ENV, is_url

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
        raise SourceError(f"table {name}: Spark cannot read {path}: {first_line(exc)}. Rewrite the file with the "
                          f"types of the data contract (docs/data_contract.md), or give the folder itself as the "
                          f"source (DuckDB reads it)") from None
    return check_types(name, table, path, "Spark")


def _parquet_schema(path: Path, name: str) -> list[parquet_types.ParquetColumn]:
    try:
        return parquet_types.parquet_columns(path)
    except Exception as exc:  # not a Parquet file, a truncated one...
        raise SourceError(f"table {name}: {path} is not a readable Parquet file: {first_line(exc)}") from None
