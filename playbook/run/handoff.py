"""Starting a planned test and closing one: ``playbook experiments add`` and ``playbook experiments close``.

Step 3 writes ``reports/<WEEK>/experiments_plan.csv``, one row in the format of the ``experiments`` table (data
contract). The playbook reads the shop's data and changes nothing there on its own; this module is the one place
where a person's command writes to a source, and only to a folder source's ``experiments`` table:

* :func:`add_plan` appends the plan's row to the table, in the table's own file format (a CSV file keeps its
  separator, byte-order mark, line ends and gzip compression, a Parquet file stays Parquet with its column types)
  and with its own columns: the optional contract columns the plan gives and the table lacks are added (empty for
  the earlier rows), and the table's columns the plan lacks are left empty in the new row. The earlier rows keep
  their values (a CSV file's earlier records keep their bytes). A folder without an experiments table gets
  ``experiments.csv``. It refuses a plan file that is missing, empty, not one row or not a valid row of the
  table, an ``experiment_id`` already in the table, and a start while an open test runs on an overlapping cohort
  (:func:`open_conflicts`).
* :func:`close_experiment` sets ``closed_on`` and ``closed_reason`` of one row (an overdue or abandoned test),
  adding the two columns when the table lacks them; it refuses an unknown id and a row already closed.
* A database source is never written: :func:`insert_statement` and :func:`update_statement` give the SQL the
  analyst runs there.

Every refusal raises :class:`HandoffError` before anything is written. The table as it would be written is first
read back through the reader a weekly run uses (``data.csv_files`` or DuckDB's Parquet scan) and checked by the
contract's rules of that table (``validation.validate_table``); the write itself is atomic
(``core.atomic.write_bytes``). Text comes from the data (a lever, a cohort named after a category) and is
untrusted: in a CSV file, a value a spreadsheet would run as a formula is written behind a quote
(``core.csvsafe``, as step 3 writes the plan, whose quotes are taken off when it is read); Parquet and SQL get the
text as it is (SQL as quoted literals).
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import tempfile
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from playbook.core.atomic import write_bytes
from playbook.core.csvsafe import neutralise, restore
from playbook.core.vocabulary import Decision
from playbook.core.weeks import IsoWeek
from playbook.data import csv_files
from playbook.data.contract import CLOSE_COLUMNS, EXTENSION_COLUMNS, TABLES, cohorts_overlap
from playbook.data.errors import SourceError
from playbook.data.source import table_file
from playbook.data.url_secrets import is_url, redact
from playbook.data.validation import ContractError, KnownMetrics, validate_table
from playbook.data.validation.quality import closest_column
from playbook.journal.entry import VERDICT
from playbook.journal.store import read_journal

EXPERIMENTS = "experiments"
SPEC = TABLES[EXPERIMENTS]
#: the file a folder without an experiments table gets
NEW_TABLE_FILE = "experiments.csv"
#: the latest verdicts that leave a test running: the words of an undecided read (read again next week)
OPEN_VERDICTS: tuple[str, ...] = tuple(d.value for d in Decision if d.undecided)
#: SQL types of the contract's kinds, for the ALTER TABLE a database needs before the optional columns
SQL_TYPES = {"str": "TEXT", "int": "BIGINT", "float": "DOUBLE PRECISION", "date": "DATE", "isoweek": "TEXT"}
#: Arrow types of the contract's kinds, for a column added to a Parquet table
ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32(),
               "isoweek": pa.string()}


class HandoffError(ValueError):
    """A refused add or close: the message says why and what to do. Nothing was written."""


# --- the plan's row ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanRow:
    """The plan's row, valid for the contract: contract column -> value (text, int, float, date or None) for the
    columns the plan gives, in the contract's order. Text is as the data had it (the quote step 3 put before
    formula-like text is taken off)."""

    values: dict[str, Any]
    source: str

    @property
    def experiment_id(self) -> str:
        return self.values["experiment_id"]

    @property
    def cohort(self) -> str | None:
        return self.values.get("cohort")

    @property
    def start_date(self) -> dt.date:
        return self.values["start_date"]

    @property
    def review_date(self) -> dt.date:
        return self.values["review_date"]

    def starting(self, start: dt.date) -> PlanRow:
        """The plan launched on ``start``: ``start_date`` and ``review_date`` moved by the same number of days (the
        run the plan was powered for keeps its length); the selection weeks, which say what step 2 read, stay."""
        shift = start - self.start_date
        return replace(self, values={**self.values, "start_date": start, "review_date": self.review_date + shift})


def read_plan(path: str | os.PathLike, timezone: str = "UTC",
              known_metrics: KnownMetrics | Collection[str] | None = None) -> PlanRow:
    """The one row of a plan file (``experiments_plan.csv``), checked by the experiments table's contract rules.

    Refused (:class:`HandoffError`): a missing or empty file, a file that is not UTF-8, a header without a row or
    with several, a column the contract does not know (with a "did you mean" hint), and a row that breaks a rule
    (types, empties, design, cohort filters, dates, expected range, selection weeks, plan and close columns; the
    primary metric too when ``known_metrics`` is given), each named as validation names it.
    """
    path = Path(path)
    if not path.is_file():
        raise HandoffError(f"plan file not found: {path} (step 3 writes reports/<WEEK>/experiments_plan.csv "
                           "when the plan reaches power)")
    text = _utf8(path.read_bytes(), path)
    if not text.strip():
        raise HandoffError(f"the plan file {path} is empty: it should hold the experiments table's header and one row")
    separator = csv_files.sniff(path, EXPERIMENTS).separator
    records = [r for r in _records(text, separator, path) if r.fields]
    header, rows = [name.strip() for name in records[0].fields], records[1:]
    if len(rows) != 1:
        raise HandoffError(f"the plan file {path} has {'no row' if not rows else f'{len(rows)} rows'} under its "
                           "header: a plan is one row of the experiments table")
    (row,) = rows
    if len(row.fields) != len(header):
        raise HandoffError(f"the plan file {path}: its row has {len(row.fields)} fields and its header "
                           f"{len(header)} (line {row.line})")
    given = [(name, value) for name, value in zip(header, row.fields) if name or value.strip()]
    twice = sorted({name for name, _ in given if [n.lower() for n, _ in given].count(name.lower()) > 1})
    if twice:
        raise HandoffError(f"the plan file {path} names {', '.join(repr(n) for n in twice)} more than once")
    named = dict(given)
    _refuse_unknown_columns(path, list(named))
    table = pa.table({name: pa.array([value if value.strip() else None], pa.string()) for name, value in named.items()})
    try:
        checked = validate_table(EXPERIMENTS, table, timezone, known_metrics, decimal_comma=separator == ";")
    except ContractError as err:
        raise HandoffError(f"the plan file {path} breaks the data contract (docs/data_contract.md):\n"
                           + "\n".join(str(v) for v in err.violations)) from None
    (validated,) = checked.tables[EXPERIMENTS].to_pyarrow().to_pylist()
    values = {c: restore(validated[c]) if SPEC.column(c).kind == "str" else validated[c] for c in validated}
    return PlanRow(values, str(path))


def _refuse_unknown_columns(path: Path, names: list[str]) -> None:
    known = {c.name for c in SPEC.all_columns}
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        hints = [f"did you mean {hint} for {name!r}?" for name in unknown
                 if (hint := closest_column(name, sorted(c for c in known if c not in names)))]
        raise HandoffError(f"the plan file {path} has columns the data contract does not know: "
                           f"{', '.join(repr(n) for n in unknown)}" + (f" ({' '.join(hints)})" if hints else "")
                           + "; they would be lost: rename or remove them")


# --- the rows already in the table, and which of them are open ------------------------------------------

@dataclass(frozen=True)
class Experiment:
    """A row of the experiments table, as the checks of an add or a close read it."""

    experiment_id: str
    cohort: str | None
    start_date: dt.date | None
    review_date: dt.date | None
    closed_on: dt.date | None = None
    closed_reason: str | None = None
    primary_metric: str | None = None
    planned_information: float | None = None
    original_review_date: dt.date | None = None
    original_planned_information: float | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Experiment:
        return cls(row["experiment_id"], row.get("cohort"), row.get("start_date"), row.get("review_date"),
                   row.get("closed_on"), row.get("closed_reason"), row.get("primary_metric"),
                   row.get("planned_information"), row.get("original_review_date"),
                   row.get("original_planned_information"))


@dataclass(frozen=True)
class Conflict:
    """An open test whose cohort overlaps the new one's: two changes on one cohort cannot be told apart."""

    experiment: Experiment
    latest_verdict: str | None

    def describe(self) -> str:
        e = self.experiment
        cohort = e.cohort or "(empty: the whole shop)"
        verdict = f", latest verdict {self.latest_verdict}" if self.latest_verdict else ", no verdict yet"
        return f"{e.experiment_id} (cohort {cohort}, review date {e.review_date}{verdict})"


def latest_verdicts(journal_dir: str | os.PathLike) -> dict[str, str]:
    """experiment_id -> its latest verdict's decision in the decision journal (the latest week; in one week the
    later row). An absent journal gives none; a corrupt one raises ``JournalError``."""
    journal = read_journal(journal_dir)
    best: dict[str, tuple[IsoWeek, int]] = {}
    out: dict[str, str] = {}
    for order, record in enumerate(journal[journal["kind"] == VERDICT].to_dict("records")):
        key = (IsoWeek.parse(record["week"]), order)
        eid = str(record["experiment_id"])
        if eid not in best or key >= best[eid]:
            best[eid], out[eid] = key, str(record["decision"]).strip().lower()
    return out


def is_open(experiment: Experiment, start: dt.date, latest_verdict: str | None) -> bool:
    """Still running when a test starts on ``start``: not closed, and either its review date is on or after
    ``start`` or its latest verdict is an undecided read (``OPEN_VERDICTS``: read again next week)."""
    if experiment.closed_on is not None:
        return False
    reviewing = experiment.review_date is not None and experiment.review_date >= start
    return reviewing or latest_verdict in OPEN_VERDICTS


def open_conflicts(plan: PlanRow, experiments: Sequence[Experiment], verdicts: dict[str, str]) -> list[Conflict]:
    """The open tests (:func:`is_open` at the plan's start) on a cohort that overlaps the plan's."""
    return [Conflict(e, verdicts.get(e.experiment_id)) for e in experiments
            if is_open(e, plan.start_date, verdicts.get(e.experiment_id)) and cohorts_overlap(e.cohort, plan.cohort)]


# --- what a command did ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HandoffResult:
    """What an add or a close did: the table file written (None for a database source, whose statement is
    ``sql``), whether the file was created, the columns added to it, and the message for the analyst."""

    experiment_id: str
    message: str
    path: Path | None = None
    created: bool = False
    added_columns: tuple[str, ...] = ()
    sql: str | None = None


# --- SQL for a database source --------------------------------------------------------------------------------

def sql_identifier(name: str) -> str:
    """A quoted SQL identifier (``"closed_on"``; a double quote in the name doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A value as an SQL literal: NULL, a number, or quoted text (a date as ``'2026-11-23'``; a single quote doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError("no boolean in the experiments table")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    if "\x00" in text:
        raise HandoffError(f"the value {text!r} holds a NUL character, which no SQL text can hold")
    return "'" + text.replace("'", "''") + "'"


_NEVER_WRITES = ("-- The playbook never writes to a database source: run this statement in the source's database,\n"
                 "-- on the experiments table (or the table behind the view the export reads).\n")


def _alter_note(columns: Sequence[str]) -> str:
    optional = [c for c in columns if c in {o.name for o in SPEC.optional_columns}]
    if not optional:
        return ""
    lines = "".join(f"-- ALTER TABLE {sql_identifier(EXPERIMENTS)} ADD COLUMN {sql_identifier(c)} "
                    f"{SQL_TYPES[SPEC.column(c).kind]};\n" for c in optional)
    return f"-- The optional columns of the data contract this statement fills, if the table lacks them:\n{lines}"


def insert_statement(plan: PlanRow) -> str:
    """The INSERT of the plan's row into a database's experiments table, with what was not checked."""
    columns = list(plan.values)
    names = ", ".join(sql_identifier(c) for c in columns)
    values = ", ".join(sql_literal(plan.values[c]) for c in columns)
    return (_NEVER_WRITES
            + "-- Not checked against the table's rows (an experiment_id already there, an open test on an overlapping\n"
            + "-- cohort): the playbook does not read the database here. Check them before running it.\n"
            + _alter_note(columns)
            + f"INSERT INTO {sql_identifier(EXPERIMENTS)} ({names})\nVALUES ({values});\n")


def update_statement(experiment_id: str, on: dt.date, reason: str) -> str:
    """The UPDATE that closes a test in a database's experiments table (a row already closed is left as it is)."""
    closed_on, closed_reason = (sql_identifier(c) for c in CLOSE_COLUMNS)
    return (_NEVER_WRITES + _alter_note(CLOSE_COLUMNS)
            + f"UPDATE {sql_identifier(EXPERIMENTS)}\nSET {closed_on} = {sql_literal(on)}, "
              f"{closed_reason} = {sql_literal(reason)}\n"
              f"WHERE {sql_identifier('experiment_id')} = {sql_literal(experiment_id)} AND {closed_on} IS NULL;\n")


# --- a table file: CSV as it is written, or Parquet ------------------------------------------------------

@dataclass
class _Record:
    raw: str  # the record's text in the file, its line end included
    fields: list[str]
    line: int  # its first line in the file (1: the header)


def _records(text: str, separator: str, path: Path) -> list[_Record]:
    """Every record of a CSV text with its raw text (a quoted field may span lines; a blank line has no field)."""
    consumed: list[str] = []

    def feed() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    out, line = [], 1
    try:
        for fields in csv.reader(feed(), delimiter=separator):
            lines, raw = len(consumed), "".join(consumed)
            consumed.clear()
            out.append(_Record(raw, fields, line))
            line += lines
    except csv.Error as exc:
        raise HandoffError(f"{path} does not read as CSV (after line {line}): {exc}") from None
    return out


def _utf8(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HandoffError(f"{path} is not UTF-8 text: the playbook does not guess an encoding; export it as "
                           "UTF-8 (in a spreadsheet: 'CSV UTF-8')") from None


def _line_end(raw: str) -> str:
    return raw[len(raw.rstrip("\r\n")):]


def _positions(header: Sequence[str]) -> dict[str, int]:
    """contract column -> its position in ``header``: the exact name, else the only one equal ignoring case and
    surrounding spaces (as validation matches columns)."""
    lowered: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        lowered.setdefault(name.strip().lower(), []).append(i)
    out = {}
    for col in SPEC.all_columns:
        if col.name in header:
            out[col.name] = list(header).index(col.name)
        elif len(lowered.get(col.name.lower(), [])) == 1:
            out[col.name] = lowered[col.name.lower()][0]
    return out


def _csv_text(value: Any, kind: str, decimal_comma: bool) -> str:
    """A value as a CSV field of the table: a number with the file's decimal mark, formula-like text quoted."""
    if value is None:
        return ""
    if kind == "float":
        text = repr(float(value))
        return text.replace(".", ",") if decimal_comma else text
    if kind == "int":
        return str(int(value))
    if kind == "date":
        return value.isoformat()
    return neutralise(str(value)) if kind == "str" else str(value)


class _TableFile:
    """The experiments table of a folder source, as its file holds it."""

    path: Path
    header: list[str]

    def ids(self) -> list[str | None]:
        """Each row's experiment_id as the file has it (text a spreadsheet would run taken out of its quote)."""
        raise NotImplementedError

    def add_columns(self, names: Sequence[str]) -> None:
        raise NotImplementedError

    def append(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def set(self, row: int, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @property
    def positions(self) -> dict[str, int]:
        return _positions(self.header)

    @property
    def n_rows(self) -> int:
        return len(self.ids())


class _CsvTable(_TableFile):
    """A CSV (or gzip-compressed CSV) table: earlier records are kept byte for byte; a record added or changed is
    written in the file's separator, line end and decimal mark; a byte-order mark stays."""

    def __init__(self, path: Path, header: list[str], separator: str = ",", newline: str = "\n", bom: str = "",
                 records: list[_Record] | None = None):
        self.path, self.header, self.separator, self.newline, self.bom = path, header, separator, newline, bom
        self.records = records if records is not None else [_Record(self._line(header), header, 1)]

    @classmethod
    def read(cls, path: Path) -> _CsvTable:
        data = path.read_bytes()
        text = _utf8(gzip.decompress(data) if path.name.endswith(".gz") else data, path)
        bom = "\ufeff" if text.startswith("\ufeff") else ""
        text = text[len(bom):]
        if not text.strip():
            raise HandoffError(f"{path} is empty (not even a header line): delete it, or give it the experiments "
                               "table's header")
        separator = csv_files.sniff(path, EXPERIMENTS).separator
        records = _records(text, separator, path)
        header = records[0].fields
        for r in records[1:]:
            if r.fields and len(r.fields) != len(header):
                raise HandoffError(f"{path}: line {r.line} has {len(r.fields)} fields and the header {len(header)}: "
                                   "fix the file first (playbook validate names what is wrong)")
        return cls(path, header, separator, _line_end(records[0].raw) or "\n", bom, records)

    @property
    def decimal_comma(self) -> bool:
        return self.separator == ";"

    def _rows(self) -> list[_Record]:
        return [r for r in self.records[1:] if r.fields]

    def ids(self) -> list[str | None]:
        at = self.positions.get("experiment_id")
        return [restore(r.fields[at].strip()) if at is not None else None for r in self._rows()]

    def _line(self, fields: Sequence[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.separator, lineterminator=self.newline,
                   quoting=csv.QUOTE_MINIMAL).writerow(fields)
        return buffer.getvalue()

    def _insert_at(self) -> int:
        """Where new columns go: before the unnamed columns a separator ending every line leaves, when no row
        fills them (then appending empty fields to a record reads the same), else at the end."""
        at = len(self.header)
        while at > 0 and not self.header[at - 1].strip():
            at -= 1
        if any(any(f.strip() for f in r.fields[at:]) for r in self._rows()):
            return len(self.header)
        return at

    def add_columns(self, names: Sequence[str]) -> None:
        if not names:
            return
        at = self._insert_at()
        header = self.header[:at] + list(names) + self.header[at:]
        head = self.records[0]
        if at == len(self.header):
            raw = head.raw[: len(head.raw) - len(_line_end(head.raw))] + self.separator + self.separator.join(names)
            head = _Record(raw + (_line_end(head.raw) or self.newline), header, 1)
        else:
            head = _Record(self._line(header), header, 1)
        extra = self.separator * len(names)
        records = [head]
        for r in self.records[1:]:
            if r.fields:  # empty fields added; the record's values and bytes otherwise unchanged
                end = _line_end(r.raw)
                r = _Record(r.raw[: len(r.raw) - len(end)] + extra + end, r.fields[:at] + [""] * len(names)
                            + r.fields[at:], r.line)
            records.append(r)
        self.header, self.records = header, records

    def _fields(self, values: dict[str, Any], fields: list[str]) -> list[str]:
        positions = self.positions
        out = list(fields)
        for name, value in values.items():
            out[positions[name]] = _csv_text(value, SPEC.column(name).kind, self.decimal_comma)
        return out

    def append(self, values: dict[str, Any]) -> None:
        """The new record goes after the last record (blank lines at the end of the file stay at the end)."""
        at = max(i for i, r in enumerate(self.records) if r.fields or i == 0)
        last = self.records[at]
        if not _line_end(last.raw):
            self.records[at] = replace(last, raw=last.raw + self.newline)
        fields = self._fields(values, [""] * len(self.header))
        self.records.insert(at + 1, _Record(self._line(fields), fields, 0))

    def set(self, row: int, values: dict[str, Any]) -> None:
        target = self._rows()[row]
        fields = self._fields(values, target.fields)
        end = _line_end(target.raw)
        raw = self._line(fields)
        raw = raw[: len(raw) - len(self.newline)] + end  # the record keeps its own line end
        i = self.records.index(target)
        self.records[i] = _Record(raw, fields, target.line)

    def to_bytes(self) -> bytes:
        data = (self.bom + "".join(r.raw for r in self.records)).encode("utf-8")
        return gzip.compress(data) if self.path.name.endswith(".gz") else data


def _arrow_value(value: Any, kind: str, dtype: pa.DataType, timezone: str) -> pa.Array:
    """A one-value array of ``dtype`` (the column's own type in the Parquet file) holding ``value``."""
    if value is None:
        return pa.nulls(1, dtype)
    if kind == "date" and pa.types.is_timestamp(dtype):
        zone = zoneinfo.ZoneInfo(timezone) if dtype.tz is not None else None
        value = dt.datetime.combine(value, dt.time(), tzinfo=zone)  # midnight on the shop's clock
    elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        value = value.isoformat() if isinstance(value, dt.date) else str(value)
    try:
        return pa.array([value], dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        try:
            return pa.array([value]).cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise HandoffError(f"the value {value!r} does not fit the Parquet column's type {dtype}: {exc}") from None


#: the compressions a Parquet file keeps when it is written again (another one gets pyarrow's default, snappy)
_PARQUET_COMPRESSIONS = ("snappy", "gzip", "brotli", "zstd", "lz4", "uncompressed")


class _ParquetTable(_TableFile):
    """A Parquet table: its columns keep their types (a new row's values are cast to them), a column added gets
    the contract kind's type, and the file its compression. Text is written as it is (no spreadsheet opens it)."""

    def __init__(self, path: Path, table: pa.Table, timezone: str, compression: str | None = None):
        self.path, self.table, self.timezone, self.compression = path, table, timezone, compression
        self.header = list(table.column_names)

    @classmethod
    def read(cls, path: Path, timezone: str) -> _ParquetTable:
        meta = pq.ParquetFile(path).metadata
        compression = None
        if meta.num_row_groups and meta.num_columns:
            compression = str(meta.row_group(0).column(0).compression).lower()
            compression = compression if compression in _PARQUET_COMPRESSIONS else None  # else pyarrow's default
        return cls(path, pq.read_table(path), timezone, compression)

    def ids(self) -> list[str | None]:
        at = self.positions.get("experiment_id")
        values = self.table.column(at).to_pylist() if at is not None else [None] * self.table.num_rows
        return [None if v is None else str(v).strip() for v in values]

    def add_columns(self, names: Sequence[str]) -> None:
        for name in names:
            dtype = ARROW_TYPES[SPEC.column(name).kind]
            self.table = self.table.append_column(pa.field(name, dtype), pa.nulls(self.table.num_rows, dtype))
        self.header = list(self.table.column_names)

    def _value(self, name: str, value: Any) -> pa.Array:
        i = self.positions[name]
        return _arrow_value(value, SPEC.column(name).kind, self.table.schema.field(i).type, self.timezone)

    def append(self, values: dict[str, Any]) -> None:
        by_position = {self.positions[name]: self._value(name, value) for name, value in values.items()}
        schema = self.table.schema
        arrays = [by_position.get(i, pa.nulls(1, f.type)) for i, f in enumerate(schema)]
        self.table = pa.concat_tables([self.table, pa.Table.from_arrays(arrays, schema=schema)])

    def set(self, row: int, values: dict[str, Any]) -> None:
        for name, value in values.items():
            i = self.positions[name]
            column = self.table.column(i).to_pylist()
            column[row] = self._value(name, value).to_pylist()[0]
            f = self.table.schema.field(i)
            self.table = self.table.set_column(i, f, pa.array(column, f.type))

    def to_bytes(self) -> bytes:
        sink = pa.BufferOutputStream()
        compression = "none" if self.compression == "uncompressed" else self.compression
        pq.write_table(self.table, sink, **({"compression": compression} if compression else {}))
        return sink.getvalue().to_pybytes()


# --- reading a table back as a weekly run reads it -----------------------------------------------------

@dataclass(frozen=True)
class _Checked:
    experiments: list[Experiment]
    warnings: list[str] = field(default_factory=list)


def _check_file(path: Path, timezone: str, known_metrics: KnownMetrics | Collection[str] | None,
                csv_quotes: bool) -> _Checked:
    """Read ``path`` as a folder source's experiments table is read (CSV dialect, Parquet types) and check it by
    the table's contract rules; its rows for the checks (text out of its spreadsheet quote for a CSV file)."""
    con = ibis.duckdb.connect()
    try:
        if path.suffix == ".parquet":
            table, comma = con.read_parquet(path, table_name=EXPERIMENTS), False
        else:
            table, dialect = csv_files.read_csv(con, path, EXPERIMENTS)
            comma = dialect.decimal_comma
        checked = validate_table(EXPERIMENTS, table, timezone, known_metrics, decimal_comma=comma)
        rows = checked.tables[EXPERIMENTS].to_pyarrow().to_pylist()
    finally:
        con.disconnect()
    if csv_quotes:
        rows = [{c: restore(v) if isinstance(v, str) else v for c, v in row.items()} for row in rows]
    return _Checked([Experiment.of(row) for row in rows], [f"{w.table}: {w.message}" for w in checked.warnings])


def _check_bytes(path: Path, data: bytes, timezone: str, known_metrics: KnownMetrics | Collection[str] | None,
                 what: str) -> _Checked:
    """The table as it would be written, read back and checked in a temporary folder; a refusal if it breaks a rule."""
    with tempfile.TemporaryDirectory(prefix="playbook-handoff-") as tmp:
        target = Path(tmp) / path.name
        target.write_bytes(data)
        try:
            return _check_file(target, timezone, known_metrics, path.suffix != ".parquet")
        except ContractError as err:
            raise HandoffError(f"{what}: {path} would break the data contract, so nothing was written:\n"
                               + "\n".join(str(v) for v in err.violations)) from None


def _open_table(folder: Path, timezone: str, known_metrics: KnownMetrics | Collection[str] | None,
                create: bool) -> tuple[_TableFile | None, _Checked]:
    """The folder's experiments table and its rows, checked; (None, no rows) when it has none and ``create`` is false."""
    if not folder.is_dir():
        raise HandoffError(f"data source {str(folder)!r} is neither a folder nor a database URL")
    try:
        path = table_file(folder, EXPERIMENTS)
    except SourceError as err:
        raise HandoffError(str(err)) from None
    if path is None:
        if not create:
            return None, _Checked([])
        return _CsvTable(folder / NEW_TABLE_FILE, list(SPEC.column_names)), _Checked([])
    file = _ParquetTable.read(path, timezone) if path.suffix == ".parquet" else _CsvTable.read(path)
    try:
        checked = _check_file(path, timezone, known_metrics, isinstance(file, _CsvTable))
    except ContractError as err:
        raise HandoffError(f"the experiments table {path} breaks the data contract already; fix it first "
                           "(playbook validate DATA lists every rule broken):\n"
                           + "\n".join(str(v) for v in err.violations)) from None
    return file, checked


def _file_mode(path: Path) -> int:
    """The permission bits the written file keeps: its own, else a sibling table file's, else the umask's."""
    for candidate in [path, *sorted(path.parent.glob("orders.*"))]:
        if candidate.is_file():
            return candidate.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _source(data: str | os.PathLike) -> Path | None:
    """The folder of a folder source, None for a database source (a URL)."""
    return None if is_url(str(data)) else Path(data)


# --- the two commands ------------------------------------------------------------------------------------

def add_plan(plan_path: str | os.PathLike, data: str | os.PathLike, start: dt.date | None = None,
             journal_dir: str | os.PathLike | None = None, timezone: str = "UTC",
             known_metrics: KnownMetrics | Collection[str] | None = None) -> HandoffResult:
    """Append the plan's row to ``data``'s experiments table (module docstring), starting on ``start`` when the
    launch slipped; for a database source, the INSERT to run there. ``journal_dir``: the decision journal whose
    latest verdicts say which tests are still open (None: no journal read)."""
    plan = read_plan(plan_path, timezone, known_metrics)
    if start is not None:
        plan = plan.starting(start)
    folder = _source(data)
    if folder is None:
        sql = insert_statement(plan)
        return HandoffResult(plan.experiment_id, f"{redact(data)} is a database source: nothing written.", sql=sql)
    file, checked = _open_table(folder, timezone, known_metrics, create=True)
    assert file is not None
    created = not file.path.exists()
    if plan.experiment_id in file.ids():
        raise HandoffError(f"{plan.experiment_id} is already in {file.path}: a plan is added once (a test run again "
                           "gets a new experiment_id)")
    verdicts = latest_verdicts(journal_dir) if journal_dir is not None else {}
    conflicts = open_conflicts(plan, checked.experiments, verdicts)
    if conflicts:
        raise HandoffError(
            f"{plan.experiment_id} (cohort {plan.cohort or '(empty: the whole shop)'}) cannot start on "
            f"{plan.start_date}: {'a test is' if len(conflicts) == 1 else 'tests are'} still open on an overlapping "
            f"cohort: {'; '.join(c.describe() for c in conflicts)}. Two changes on one cohort cannot be told apart. "
            "When that test has ended, close it (playbook experiments close ID DATA --reason TEXT), or start this "
            "plan after its review (--start YYYY-MM-DD).")
    before = file.n_rows
    added = tuple(c for c in plan.values if c not in file.positions)
    file.add_columns(added)
    file.append(plan.values)
    payload = file.to_bytes()
    _check_bytes(file.path, payload, timezone, known_metrics, f"adding {plan.experiment_id}")
    write_bytes(file.path, payload, mode=_file_mode(file.path))
    if created:
        message = f"Created {file.path} with {plan.experiment_id} (the folder had no experiments table)."
    else:
        message = f"Added {plan.experiment_id} to {file.path} ({before + 1} rows)."
        if added:
            message += (f" Columns added to the table: {', '.join(added)} (empty for the {before} earlier "
                        f"row{'s' if before != 1 else ''}).")
    message += f" Start {plan.start_date}, review {plan.review_date}."
    return HandoffResult(plan.experiment_id, message, file.path, created, () if created else added)


def close_experiment(experiment_id: str, data: str | os.PathLike, reason: str, on: dt.date | None = None,
                     timezone: str = "UTC", known_metrics: KnownMetrics | Collection[str] | None = None
                     ) -> HandoffResult:
    """Close one test of ``data``'s experiments table on ``on`` (default today) for ``reason``: its ``closed_on``
    and ``closed_reason`` set, the two columns added when the table lacks them; for a database source, the
    UPDATE to run there. Refused: an empty reason, an unknown id, a row already closed, a date before its start."""
    experiment_id, reason = experiment_id.strip(), reason.strip()
    on = on or dt.date.today()
    if not experiment_id:
        raise HandoffError("the experiment_id to close is empty")
    if not reason:
        raise HandoffError("--reason is empty: a closed test says why it ended (overdue, abandoned, rolled back...)")
    folder = _source(data)
    if folder is None:
        return HandoffResult(experiment_id, f"{redact(data)} is a database source: nothing written.",
                             sql=update_statement(experiment_id, on, reason))
    file, checked = _open_table(folder, timezone, known_metrics, create=False)
    if file is None:
        raise HandoffError(f"{folder} has no experiments table: there is no test to close")
    ids = file.ids()
    if experiment_id not in ids:
        known = ", ".join(i for i in ids if i) or "none"
        raise HandoffError(f"{experiment_id} is not in {file.path} (its experiments: {known})")
    row = ids.index(experiment_id)
    (experiment,) = [e for e in checked.experiments if e.experiment_id == experiment_id]
    if experiment.closed_on is not None:
        raise HandoffError(f"{experiment_id} is already closed: on {experiment.closed_on} "
                           f"({experiment.closed_reason or 'no reason given'})")
    if experiment.start_date is not None and on < experiment.start_date:
        raise HandoffError(f"{experiment_id} cannot be closed on {on}: it starts on {experiment.start_date}")
    added = tuple(c for c in CLOSE_COLUMNS if c not in file.positions)
    file.add_columns(added)
    file.set(row, dict(zip(CLOSE_COLUMNS, (on, reason))))
    payload = file.to_bytes()
    _check_bytes(file.path, payload, timezone, known_metrics, f"closing {experiment_id}")
    write_bytes(file.path, payload, mode=_file_mode(file.path))
    message = f"Closed {experiment_id} on {on} in {file.path}: {reason}."
    if added:
        message += f" Columns added to the table: {', '.join(added)}."
    return HandoffResult(experiment_id, message, file.path, False, added)


def extend_experiment(experiment_id: str, data: str | os.PathLike, to: dt.date, information: float | None = None,
                      journal_dir: str | os.PathLike | None = None, timezone: str = "UTC",
                      known_metrics: KnownMetrics | Collection[str] | None = None) -> HandoffResult:
    """Move a test's review date later, before its review, and re-plan the information it reads there.

    The final look spends what is left of the alpha (``stats.sequential``), so a test can be extended only
    before its review date's read: once that read is in the journal, or the test is decided or closed, the
    extension is refused (plan a new test instead). ``information`` is the new plan's information (customers
    per arm with a unit followed for the window at the new review); without it the old one is scaled by the
    days of exposure, (to - start) / (review - start): the inflow is taken as steady. The first review date and
    planned information are kept in ``original_review_date`` and ``original_planned_information`` (the looks
    read before keep the alpha they spent, their information counted against the new plan).
    """
    experiment_id = experiment_id.strip()
    folder = _source(data)
    if folder is None:
        raise HandoffError(f"{redact(data)} is a database source: extend the row there (playbook experiments extend "
                           "needs the row's dates and planned information; run it on a folder export)")
    file, checked = _open_table(folder, timezone, known_metrics, create=False)
    ids = file.ids() if file is not None else []
    if experiment_id not in ids:
        raise HandoffError(f"{experiment_id} is not in the experiments table of {folder}")
    row = ids.index(experiment_id)
    (e,) = [x for x in checked.experiments if x.experiment_id == experiment_id]
    if e.closed_on is not None:
        raise HandoffError(f"{experiment_id} was closed on {e.closed_on}: a closed test cannot be extended")
    if e.review_date is None or to <= e.review_date:
        raise HandoffError(f"{experiment_id}: the new review date {to} must come after its review date {e.review_date}")
    final = _final_read(journal_dir, experiment_id, e.review_date) if journal_dir is not None else None
    if final is not None:
        raise HandoffError(f"{experiment_id} was read at its review date ({final}) and that read spent what was left "
                           "of its alpha: it cannot be extended; plan a new test if the lever is still worth it")
    if information is None:
        if not e.planned_information or e.start_date is None:
            raise HandoffError(f"{experiment_id} has no planned_information to scale: give --information")
        information = float(e.planned_information) * (to - e.start_date).days / (e.review_date - e.start_date).days
    if not information > 0:
        raise HandoffError(f"--information must be positive, got {information}")
    values = {"review_date": to, "planned_information": round(float(information), 1),
              "original_review_date": e.original_review_date or e.review_date,
              "original_planned_information": e.original_planned_information or e.planned_information}
    added = tuple(c for c in ("planned_information", *EXTENSION_COLUMNS) if c not in file.positions)
    file.add_columns(added)
    file.set(row, values)
    payload = file.to_bytes()
    _check_bytes(file.path, payload, timezone, known_metrics, f"extending {experiment_id}")
    write_bytes(file.path, payload, mode=_file_mode(file.path))
    return HandoffResult(experiment_id, f"Extended {experiment_id} in {file.path}: review on {to} (was "
                                        f"{e.review_date}), planned information {information:,.0f} customers per arm.",
                         file.path, False, added)


def _final_read(journal_dir: str | os.PathLike, experiment_id: str, review_date: dt.date) -> str | None:
    """The week of the experiment's read at or after its review date's week that spent alpha (None: not read)."""
    journal = read_journal(journal_dir)
    mine = journal[(journal["kind"] == VERDICT) & (journal["experiment_id"] == experiment_id)]
    review_week = IsoWeek.of(review_date)
    for record in mine.to_dict("records"):
        spent = "boundary" in record and pd.notna(record["boundary"])
        if IsoWeek.parse(record["week"]) >= review_week and (spent or record["decision"] in ("keep", "adjust", "stop")):
            return str(record["week"])
    return None
