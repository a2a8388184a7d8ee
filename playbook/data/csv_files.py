"""Reading one CSV file of a folder source: the dialect real exports carry, read right or refused.

What is read correctly: a UTF-8 byte-order mark (dropped), comma, semicolon, tab or pipe separators
(the one the header line uses), a separator ending every line (the empty unnamed column is dropped), Windows
line endings, quoted fields holding separators, quotes or
line breaks, and in a semicolon-separated file numbers with a decimal comma (``12,5``: the
spreadsheet convention of the locales that separate fields with ``;``).

What is refused, with the table, the column, the rule, the count and examples: a file whose rows do
not parse into the header's fields (DuckDB's message names the line); a file that is not
UTF-8 (Latin-1 / Windows-1252 exports): the bytes alone cannot tell Latin-1 from Windows-1252 or
other code pages, so the playbook never guesses an encoding (a wrong guess reads text wrong
silently); and, through validation, numbers whose decimal mark does not fit the file's separator.

Columns of the time kinds (``timestamp``, ``date``) are always read as text and parsed by
validation (``playbook.data.validation.convert``): DuckDB's type detection samples the first rows
only, and a timestamp with an offset read as a naive timestamp would silently lose its offset. In a
semicolon-separated file the number columns are read as text too, for their decimal comma. A value
that defeats DuckDB's sampled detection later in the file (a word in a number column) makes the file
read again as text, so that validation names it instead of a parser error.
"""
from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import duckdb
import ibis

from playbook.data.contract import TABLES
from playbook.data.validation import ContractError, Violation
from playbook.data.validation.findings import N_EXAMPLES

#: the separators a header line may use, the most frequent one wins (a contract header holds none of them otherwise)
SEPARATORS = (",", ";", "\t", "|")
#: the rule a file that is not UTF-8 breaks
UTF8_RULE = "text encoded as UTF-8"
#: the rule a file breaks when its rows do not parse (a row with more or fewer fields, an open quote)
CSV_RULE = "a CSV file whose rows have the header's fields"
_TEXT_KINDS = ("timestamp", "date")
_NUMBER_KINDS = ("int", "float")


@dataclass(frozen=True)
class CsvDialect:
    """How one CSV file is written: its separator and its header's column names."""

    separator: str
    header: tuple[str, ...]

    @property
    def decimal_comma(self) -> bool:
        """Numbers take a decimal comma: the file separates its fields with semicolons."""
        return self.separator == ";"


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _header_line(path: Path) -> bytes:
    with _open_bytes(path) as fh:
        return fh.readline()


def sniff(path: Path, table: str) -> CsvDialect:
    """The separator and the column names of ``path``'s header line (a byte-order mark is dropped).

    Raises ContractError when the header line itself is not UTF-8.
    """
    raw = _header_line(path)
    try:
        line = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ContractError([Violation(table, None, UTF8_RULE, 1, ("header",), "row",
                                       detail=_encoding_detail(path))]) from None
    counts = {sep: line.count(sep) for sep in SEPARATORS}
    separator = max(SEPARATORS, key=lambda sep: counts[sep]) if any(counts.values()) else ","
    header = next(csv.reader([line], delimiter=separator), [])
    return CsvDialect(separator, tuple(name.strip() for name in header))


def text_columns(dialect: CsvDialect, table: str) -> dict[str, str]:
    """The header's columns read as text (``{name: 'VARCHAR'}``): the time kinds, and the numbers after a decimal comma."""
    kinds = _TEXT_KINDS + (_NUMBER_KINDS if dialect.decimal_comma else ())
    wanted = {c.name for c in TABLES[table].columns if c.kind in kinds}
    return {name: "VARCHAR" for name in dialect.header if name.lower() in wanted}


def read_csv(con: ibis.BaseBackend, path: Path, table: str) -> tuple[ibis.Table, CsvDialect]:
    """Load ``path`` once into the temporary table ``table`` (a CSV view would be parsed by every query).

    Returns the table and the file's dialect. Raises ContractError for a file that is not UTF-8.
    """
    dialect = sniff(path, table)
    types = text_columns(dialect, table)
    options = {"types": types} if types else {}  # DuckDB refuses an empty types mapping
    try:
        try:
            loaded = _load(con, path, table, dialect, **options)
        except duckdb.ConversionException:
            # a value past DuckDB's sample defeats the detected type: read it all as text, validation names it
            loaded = _load(con, path, table, dialect, all_varchar=True)
    except duckdb.InvalidInputException as exc:
        if "unicode" in str(exc).lower():
            raise encoding_error(path, table, dialect) from None
        raise parse_error(path, table, str(exc)) from None
    except duckdb.BinderException:  # the sniffer found other column names than the header's
        raise header_error(path, table, dialect) from None
    contract = set(TABLES[table].column_names)
    if any(name not in loaded.columns for name in dialect.header if name.lower() in contract):
        raise header_error(path, table, dialect)
    return _without_empty_unnamed(con, table, loaded, dialect), dialect


def _without_empty_unnamed(con: ibis.BaseBackend, table: str, loaded: ibis.Table, dialect: CsvDialect) -> ibis.Table:
    """The table without the columns the header leaves unnamed and no row fills (a separator ending every
    line): nothing is lost, and validation does not warn about a column DuckDB named ``column9``. An unnamed
    column holding values is kept, and validation names it among the columns the contract does not know."""
    if len(dialect.header) != len(loaded.columns):
        return loaded
    unnamed = [actual for name, actual in zip(dialect.header, loaded.columns) if name == ""]
    if not unnamed:
        return loaded
    filled = loaded.aggregate(**{f"n{i}_": loaded[c].count() for i, c in enumerate(unnamed)}).to_pyarrow().to_pylist()[0]
    empty = [c for i, c in enumerate(unnamed) if not filled[f"n{i}_"]]
    if not empty or len(empty) == len(loaded.columns):
        return loaded
    for column in empty:  # (DuckDB's raw_sql returns the connection itself: not a cursor to close)
        con.raw_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    return con.table(table)


def header_error(path: Path, table: str, dialect: CsvDialect) -> ContractError:
    """DuckDB's sniffer gave up on the header (ragged rows in a small file): such a guess is never read."""
    return ContractError([Violation(table, None, CSV_RULE, 0, detail=(
        f"{path.name}: the header names {', '.join(dialect.header)} but the rows do not parse into those "
        f"fields (some rows have more or fewer fields, or a quote is not closed)"))])


def _load(con: ibis.BaseBackend, path: Path, table: str, dialect: CsvDialect, **options) -> ibis.Table:
    view = f"_csv_{table}"
    con.drop_view(view, force=True)
    raw = con.read_csv(path, table_name=view, delim=dialect.separator, **options)
    return con.create_table(table, raw, temp=True, overwrite=True)


def parse_error(path: Path, table: str, message: str) -> ContractError:
    """DuckDB's parser stopped on a row: the line and what was wrong, from its message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    where = next((line for line in lines if "CSV Error on Line" in line), "")
    what = next((line for line in lines if "Expected Number of Columns" in line or "unterminated" in line),
                lines[0] if lines else "")
    examples = (f"line {where.rsplit(':', 1)[-1].strip()}",) if where else ()
    return ContractError([Violation(table, None, CSV_RULE, 0, examples, detail=f"{path.name}: {what}")])


def _encoding_detail(path: Path) -> str:
    return (f"the file {path.name} is not UTF-8 (it reads as Latin-1 / Windows-1252 text); the playbook does not "
            "guess an encoding: export the file as UTF-8 (in a spreadsheet: 'CSV UTF-8')")


def encoding_error(path: Path, table: str, dialect: CsvDialect) -> ContractError:
    """One violation per column holding text that is not UTF-8: how many rows, and examples.

    The examples are the rows' keys (or row numbers, counted from 1 after the header) with the value
    as Latin-1 would read it, so that the person who exported the file recognises it.
    """
    key = TABLES[table].key
    key_at = dialect.header.index(key) if key in dialect.header else None
    bad: dict[str, list[str]] = {}
    for number, row in _latin1_rows(path, dialect):
        for name, value in zip(dialect.header, row):
            if not _is_utf8(value):
                known = key_at is not None and key_at < len(row) and _is_utf8(row[key_at])
                ident = row[key_at] if known else f"row {number}"
                bad.setdefault(name, []).append(f"{ident} ({value!r})")
    label = key if key_at is not None else "row"
    violations = [Violation(table, column, UTF8_RULE, len(found), tuple(found[:N_EXAMPLES]), label,
                            detail=_encoding_detail(path)) for column, found in bad.items()]
    return ContractError(violations or [Violation(table, None, UTF8_RULE, 0, detail=_encoding_detail(path))])


def _latin1_rows(path: Path, dialect: CsvDialect):
    """(row number, fields) of every data row, the bytes read as Latin-1 (every byte is a character)."""
    with _open_bytes(path) as fh:
        text = io.TextIOWrapper(fh, encoding="latin-1", newline="")
        rows = csv.reader(text, delimiter=dialect.separator)
        next(rows, None)
        yield from enumerate(rows, 1)


def _is_utf8(value: str) -> bool:
    try:
        value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
