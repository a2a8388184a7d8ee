"""What an engine reads in a Parquet file, from its schema, before the engine opens it.

pandas and pyarrow write timestamps in nanoseconds by default (``DataFrame.to_parquet`` of a
``datetime64[ns]`` column: ``INT64 (TIMESTAMP(NANOS, ...))``), which DuckDB reads and Spark 4 refuses
(``[PARQUET_TYPE_ILLEGAL] Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false))``) unless its session reads
them as longs (``spark.sql.legacy.parquet.nanosAsLong``); the data layer then turns those longs back into
timestamps (``nanos_columns``). A few other types written by pyarrow have no Spark type at all: a time of
day, a half float, a UUID, a decimal of more than 38 digits (``spark_unreadable``, measured on Spark
4.0.5 with pyarrow 26). Strings (large, views, dictionary-encoded: pandas categories) and unsigned integers
are read by both engines.

Only the schema is read (the footer of the file, or of a folder's first part file), never the rows.

Once an engine has opened a file: a contract column of a type the engine does not know is refused in words
(``check_types``), and an engine's error is told in one line (``first_line``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ibis
import pyarrow.parquet as pq

from playbook.data import contract
from playbook.data.errors import SourceError

#: the widest decimal a Spark column holds
SPARK_MAX_DECIMAL_DIGITS = 38


@dataclass(frozen=True)
class ParquetColumn:
    """One leaf column of a Parquet schema: its top-level column, its physical type and logical type."""

    column: str  # the table's column it belongs to (a nested leaf: its top-level column)
    physical: str  # INT64, BYTE_ARRAY...
    logical: dict  # the logical type as pyarrow states it: {"Type": "Timestamp", "timeUnit": "nanoseconds", ...}
    precision: int
    nested: bool

    @property
    def kind(self) -> str:
        return str(self.logical.get("Type", "None"))

    def type_text(self) -> str:
        """The type as Spark names it in its error: ``INT64 (TIMESTAMP(NANOS,false))``."""
        if self.kind in ("None", ""):
            return self.physical
        details = []
        if "timeUnit" in self.logical:
            details.append({"milliseconds": "MILLIS", "microseconds": "MICROS", "nanoseconds": "NANOS"}.get(
                self.logical["timeUnit"], str(self.logical["timeUnit"]).upper()))
        if "isAdjustedToUTC" in self.logical:
            details.append(str(self.logical["isAdjustedToUTC"]).lower())
        if "precision" in self.logical:
            details += [str(self.logical["precision"]), str(self.logical.get("scale", 0))]
        return f"{self.physical} ({self.kind.upper()}{'(' + ','.join(details) + ')' if details else ''})"


@dataclass(frozen=True)
class Unreadable:
    """A column an engine cannot read: which, its type, and what to write instead."""

    column: str
    type_text: str
    advice: str


def parquet_file_of(path: str | Path) -> Path | None:
    """The file whose footer states the schema: ``path`` itself, or the first part file of a folder
    (Spark's ``part-*.parquet``; ``_SUCCESS`` and hidden ``.crc`` files skipped); None when there is none."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    parts = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))
    preferred = [p for p in parts if p.name.endswith(".parquet")]
    return (preferred or parts or [None])[0]


def parquet_columns(path: str | Path) -> list[ParquetColumn]:
    """The leaf columns of the Parquet file (or folder) at ``path``; empty when there is no file to read."""
    file = parquet_file_of(path)
    if file is None:
        return []
    parquet = pq.ParquetFile(file)
    tops = list(parquet.schema_arrow.names)
    found = []
    for i in range(len(parquet.schema)):
        leaf = parquet.schema.column(i)
        nested = leaf.path != leaf.name or leaf.path not in tops
        top = leaf.path if not nested else next((t for t in tops if leaf.path.startswith(f"{t}.")), leaf.path)
        found.append(ParquetColumn(top, str(leaf.physical_type), json.loads(leaf.logical_type.to_json()),
                                   int(leaf.precision or 0), nested))
    return found


def nanos_columns(columns: list[ParquetColumn]) -> list[tuple[str, bool]]:
    """The top-level timestamp columns in nanoseconds, each with whether it is an instant (adjusted to UTC)."""
    return [(c.column, bool(c.logical.get("isAdjustedToUTC"))) for c in columns
            if c.kind == "Timestamp" and c.logical.get("timeUnit") == "nanoseconds" and not c.nested]


def spark_unreadable(columns: list[ParquetColumn]) -> list[Unreadable]:
    """The columns Spark 4.0 cannot read (it stops the whole table at them), each with what to write instead."""
    found = []
    for c in columns:
        if c.kind == "Time":
            advice = ("a time of day without its date: write it as a timestamp (date and time together, "
                      "pandas: pd.to_datetime(...)) or as text 'HH:MM:SS'")
        elif c.kind == "Float16":
            advice = "write it as a 64-bit float (pandas: df[column].astype('float64'))"
        elif c.kind == "UUID":
            advice = "write it as text (pandas: df[column].astype(str))"
        elif c.kind == "Decimal" and c.precision > SPARK_MAX_DECIMAL_DIGITS:
            advice = (f"a decimal of {c.precision} digits (Spark holds {SPARK_MAX_DECIMAL_DIGITS} at most): write it "
                      "with fewer digits or as a 64-bit float (pandas: df[column].astype('float64'))")
        else:
            continue
        found.append(Unreadable(c.column, c.type_text(), advice))
    return found


def first_line(exc: BaseException) -> str:
    """An engine's error in one line: its first, without the Java stack trace (the exception's name when empty)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


#: what a contract column of each kind should be written as, when its type cannot be read
_KIND_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "date": "a date",
               "timestamp": "a timestamp (date and time)", "isoweek": "text such as 2026-W47"}


def check_types(name: str, table: ibis.Table, path: Path, engine: str) -> ibis.Table:
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
