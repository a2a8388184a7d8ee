"""Reading one raw column as its contract kind: the regular expressions, the casts, the time zone.

Text is cast to a number, date or timestamp only after a regular expression has accepted it, so a
backend whose ``try_cast`` is a plain ``CAST`` (PostgreSQL) does not fail the whole query on one bad
value. The expressions use a POSIX ERE subset understood by RE2/DuckDB and PostgreSQL alike.

Time: a timestamp written without an offset is the shop's local clock time and is kept as written;
one written with an offset (``+01:00``, ``+0100``, ``+01``) or ``Z`` is an instant, converted to the
shop's time zone and kept as the local clock time there; a column typed with a time zone by its
source (Parquet, a ``timestamptz`` database column) is converted the same way. Every validated
timestamp is therefore naive shop-local time, the clock in which weeks are counted.
"""
from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt

from playbook.data.contract import TableSpec

# They accept only text the cast will take: on PostgreSQL ``try_cast`` is a plain CAST
# and one impossible date ('2024-02-30') or overflowing number would fail the query.
NUMBER_RE = r"^[-+]?([0-9]{1,30}([.][0-9]*)?|[.][0-9]{1,30})([eE][-+]?[0-9]{1,2})?$"
#: a number written with a decimal comma (a semicolon-separated export): ``12,5``; a dot is refused there,
#: since ``1.000`` is a thousand in that convention and 1 in the other
NUMBER_COMMA_RE = r"^[-+]?([0-9]{1,30}(,[0-9]*)?|,[0-9]{1,30})([eE][-+]?[0-9]{1,2})?$"
_M31 = r"(0?[13578]|1[02])-(0?[1-9]|[12][0-9]|3[01])"
_M30 = r"(0?[469]|11)-(0?[1-9]|[12][0-9]|30)"
_FEB = r"0?2-(0?[1-9]|1[0-9]|2[0-8])"
_LEAP_YEAR = r"([1-9][0-9](0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26])00)"
_DATE_PART = rf"([1-9][0-9]{{3}}-({_M31}|{_M30}|{_FEB})|{_LEAP_YEAR}-0?2-29)"
_TIME_PART = r"([ T]([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,9})?)?)?"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
TIMESTAMP_RE = f"^{_DATE_PART}{_TIME_PART}{_OFFSET}?$"
#: a timestamp with a time and an offset (checked only on text ``TIMESTAMP_RE`` accepted)
WITH_OFFSET_RE = rf":[0-5][0-9]([.][0-9]{{1,9}})?{_OFFSET}$"
ISOWEEK_RE = r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$"
#: a text of white space only: the six characters ibis' ``strip`` removes, written as themselves (not as
#: escapes, which the regular-expression dialects read differently); testing it costs a fraction of
#: a TRIM with a character set, which takes DuckDB about half a microsecond a value
BLANK_RE = "^[ \t\n\r\x0b\x0c]*$"
# Beyond this a float is not safely an integer (and casting it could overflow).
_MAX_SAFE_INT = 2.0**53

#: the type rule of each kind, in words (``str`` has none: any text is a string)
KIND_RULE = {
    "int": "value is an integer",
    "float": "value is a number",
    "date": "value is a date (YYYY-MM-DD)",
    "timestamp": "value is a timestamp (YYYY-MM-DD HH:MM:SS)",
    "isoweek": "value is an ISO week (YYYY-Www, week 01-53)",
}
#: the type rule of the number kinds in a table whose numbers take a decimal comma
KIND_RULE_COMMA = {
    "int": "value is an integer (no thousands separator)",
    "float": "value is a number with a decimal comma (12,5), no thousands separator",
}
#: the engine type of each kind once validated
KIND_DTYPE = {
    "str": dt.string,
    "int": dt.int64,
    "float": dt.float64,
    "date": dt.date,
    "timestamp": dt.Timestamp(),
    "isoweek": dt.string,
}


@ibis.udf.scalar.builtin(name="timezone")
def _local_clock(zone: str, instant: dt.Timestamp(timezone="UTC")) -> dt.Timestamp():
    """``timezone(zone, timestamptz)``: the wall-clock time of an instant in ``zone`` (DuckDB and PostgreSQL)."""


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Paris``, ``UTC``), else a ValueError saying so."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Paris' or 'UTC'") from None
    return name


@dataclass
class Converted:
    """One column read as its kind."""

    value: ibis.Value  # the value in the contract type, NULL when empty or invalid
    present: ibis.BooleanValue  # the raw value is not NULL and not an empty string
    bad_type: ibis.BooleanValue | None  # non-empty raw value that is not of the kind


def _whole(f: ibis.Value) -> ibis.BooleanValue:
    """A float64 value is a whole number (false for NULL, NaN, inf and huge values)."""
    in_range = (f >= -_MAX_SAFE_INT) & (f <= _MAX_SAFE_INT)
    return ibis.ifelse(in_range, f.floor().cast("float64") == f, False)


def _text_number(stripped: ibis.Value, decimal_comma: bool) -> ibis.Value:
    """Text -> float64, NULL unless the whole text is a number (with the table's decimal mark)."""
    if decimal_comma:
        return ibis.ifelse(stripped.re_search(NUMBER_COMMA_RE), stripped.replace(",", ".").try_cast("float64"),
                           ibis.null("float64"))
    return ibis.ifelse(stripped.re_search(NUMBER_RE), stripped.try_cast("float64"), ibis.null("float64"))


def _number(raw: ibis.Value, stripped: ibis.Value, present: ibis.BooleanValue, kind: str,
            decimal_comma: bool) -> Converted:
    dtype = raw.type()
    target = KIND_DTYPE[kind]
    if dtype.is_integer():
        return Converted(raw.cast(target), present, None)
    if dtype.is_numeric():
        f = raw.cast("float64")
    elif dtype.is_string():
        f = _text_number(stripped, decimal_comma)
    else:  # boolean, dates...: never a number
        return Converted(ibis.null(target), present, present)
    if kind == "int":
        ok = _whole(f)
        return Converted(ibis.ifelse(ok, f.cast("int64"), ibis.null("int64")), present, present & ~ok)
    if dtype.is_floating() or dtype.is_string():
        finite = f.notnull() & ~f.isnan() & ~f.isinf()
        return Converted(ibis.ifelse(finite, f, ibis.null("float64")), present, present & ~finite)
    return Converted(f, present, None)  # decimal


def _text_timestamp(stripped: ibis.Value, timezone: str) -> ibis.Value:
    """Text -> naive shop-local timestamp: as written without an offset, converted with one.

    Each regular expression appears once in the compiled CASE (they cost more than the casts).
    """
    instant = _local_clock(timezone, stripped.try_cast(dt.Timestamp(timezone="UTC")))
    parsed = ibis.ifelse(stripped.re_search(WITH_OFFSET_RE), instant, stripped.try_cast("timestamp"))
    return ibis.ifelse(stripped.re_search(TIMESTAMP_RE), parsed, ibis.null("timestamp"))


def _time(raw: ibis.Value, stripped: ibis.Value, present: ibis.BooleanValue, kind: str, timezone: str) -> Converted:
    dtype = raw.type()
    target = KIND_DTYPE[kind]
    if dtype.is_timestamp():  # (a date column written by pandas from datetime64 values is a timestamp column)
        ts = _local_clock(timezone, raw) if dtype.timezone is not None else raw.cast(dt.Timestamp())
        return Converted(ts.date() if kind == "date" else ts, present, None)
    if dtype.is_date():
        return Converted(raw if kind == "date" else raw.cast(target), present, None)
    if not dtype.is_string():
        return Converted(ibis.null(target), present, present)
    ts = _text_timestamp(stripped, timezone)
    value = ts.date() if kind == "date" else ts
    return Converted(value, present, present & value.isnull())


def convert(raw: ibis.Value, kind: str, timezone: str = "UTC", decimal_comma: bool = False) -> Converted:
    """Cast one raw column (any type, as read) to the contract ``kind``.

    Times are read on ``timezone``'s clock (see the module's docstring); numbers written as text
    take a decimal comma when ``decimal_comma`` (the table came from a semicolon-separated file).
    """
    dtype = raw.type()
    text = raw if dtype.is_string() else raw.cast("string")
    stripped = text.strip()
    # (empty once stripped, tested without stripping: a value kept as text, a key, is stripped only where read)
    present = (raw.notnull() & ~raw.re_search(BLANK_RE)) if dtype.is_string() else raw.notnull()
    if kind == "str":
        return Converted(stripped.nullif(""), present, None)
    if kind == "isoweek":
        ok = stripped.re_search(ISOWEEK_RE)
        return Converted(ibis.ifelse(ok, stripped, ibis.null(dt.string)), present, present & ~ok)
    if kind in ("int", "float"):
        return _number(raw, stripped, present, kind, decimal_comma)
    if kind in ("date", "timestamp"):
        return _time(raw, stripped, present, kind, timezone)
    raise ValueError(f"unknown column kind {kind!r}")


def resolve_columns(table: ibis.Table, spec: TableSpec) -> tuple[dict[str, str], list[str]]:
    """Contract column -> actual column (exact name first, then case-insensitive; optional columns when
    given), and the missing required ones."""
    actual = list(table.columns)
    lowered: dict[str, list[str]] = {}
    for name in actual:
        lowered.setdefault(name.strip().lower(), []).append(name)
    found: dict[str, str] = {}
    missing: list[str] = []
    for col in (c.name for c in spec.all_columns):
        if col in actual:
            found[col] = col
        elif len(lowered.get(col.lower(), [])) == 1:
            found[col] = lowered[col.lower()][0]
        elif col in spec.column_names:  # an optional column left out is not missing
            missing.append(col)
    return found, missing
