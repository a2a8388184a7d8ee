"""Validation of the input tables against the data contract (``playbook.data.contract``).

Every check is an ibis expression aggregated in the backend: one pass per table for the
single-table rules (types, empties, uniqueness, allowed values, minimums, ordering of
dates...), one aggregate per cross-table rule (anti-joins, joins), and ``.limit(5)`` queries
for the example ids of the rules that are broken. Nothing fetches a whole table to the client,
except three columns of the small experiments table, whose cohort filters are parsed in
Python with ``contract.parse_cohort``.

The same code runs on DuckDB (files) and on PostgreSQL / warehouses through ibis: it only
uses portable operations (casts guarded by a regular expression, ``re_search``,
``isnull``, ``isin``, anti-joins, group-by/aggregate). Text is cast to a number, date or
timestamp only after a regular expression has accepted it, so a backend whose
``try_cast`` is a plain ``CAST`` (PostgreSQL) does not fail the whole query on one bad
value.

Usage::

    from playbook.data.validation import validate, ContractError

    try:
        data = validate(tables)          # tables: dict[str, ibis.Table] as read
    except ContractError as err:
        print(err)                       # one line per broken rule, with counts and ids
        raise
    data.tables["returns"]               # contract columns, contract types
    data.warnings                        # data-quality warnings for the report
    data.missing_tables                  # optional tables not given
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import ibis
import ibis.expr.datatypes as dt

from playbook.data.contract import (
    ALL_TABLES,
    OPTIONAL_TABLES,
    REASON_CODES,
    REQUIRED_TABLES,
    TABLES,
    TableSpec,
    parse_cohort,
)

__all__ = [
    "ContractError",
    "DataQualityWarning",
    "SLICE_COLUMNS",
    "ValidatedData",
    "Violation",
    "validate",
]

#: Columns an experiment's cohort / control_cohort filter may name.
SLICE_COLUMNS: tuple[str, ...] = ("category", "channel", "region", "customer_type", "sku")

#: How many example ids an error or warning lists.
N_EXAMPLES = 5
#: Tolerance of the rule ``discount_amount <= quantity * unit_price``.
DISCOUNT_TOLERANCE = 1e-9
#: Unknown reason codes listed one by one in the warnings (the rest are grouped).
MAX_REASON_CODE_WARNINGS = 10

# Regular expressions (POSIX ERE subset: understood by RE2/DuckDB and PostgreSQL alike).
# They accept only text the cast will take: on PostgreSQL ``try_cast`` is a plain CAST
# and one impossible date ('2024-02-30') or overflowing number would fail the query.
_NUMBER_RE = r"^[-+]?([0-9]{1,30}([.][0-9]*)?|[.][0-9]{1,30})([eE][-+]?[0-9]{1,2})?$"
_M31 = r"(0?[13578]|1[02])-(0?[1-9]|[12][0-9]|3[01])"
_M30 = r"(0?[469]|11)-(0?[1-9]|[12][0-9]|30)"
_FEB = r"0?2-(0?[1-9]|1[0-9]|2[0-8])"
_LEAP_YEAR = r"([1-9][0-9](0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26])00)"
_DATE_PART = rf"([1-9][0-9]{{3}}-({_M31}|{_M30}|{_FEB})|{_LEAP_YEAR}-0?2-29)"
_TIME_PART = r"([ T]([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,9})?)?)?"
_OFFSET_PART = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?"
_TIMESTAMP_RE = f"^{_DATE_PART}{_TIME_PART}{_OFFSET_PART}$"
_ISOWEEK_RE = r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$"
# Beyond this a float is not safely an integer (and casting it could overflow).
_MAX_SAFE_INT = 2.0**53

_KIND_RULE = {
    "int": "value is an integer",
    "float": "value is a number",
    "date": "value is a date (YYYY-MM-DD)",
    "timestamp": "value is a timestamp (YYYY-MM-DD HH:MM:SS)",
    "isoweek": "value is an ISO week (YYYY-Www, week 01-53)",
}
_KIND_DTYPE = {
    "str": dt.string,
    "int": dt.int64,
    "float": dt.float64,
    "date": dt.date,
    "timestamp": dt.Timestamp(),
    "isoweek": dt.string,
}

# Order of the checks in the error message (the order of the contract's rule list).
_O_TABLE, _O_COLUMNS, _O_ROWS, _O_TYPE, _O_NULL, _O_UNIQUE, _O_ALLOWED, _O_MIN = range(8)
_O_DISCOUNT, _O_FK, _O_REQUESTED, _O_RETURN_QTY, _O_DELIVERED, _O_EXPERIMENT = range(8, 14)
_O_ASSIGNMENT = 14


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Violation:
    """One broken contract rule.

    Attributes:
        table, column: where (column is None for a table-level rule).
        rule: the rule in words, e.g. ``"at most the line's quantity"``.
        n_rows: how many rows (or ``unit``) break it (0 for structural rules).
        examples: up to 5 example ids (the table's key) or compact row values.
        example_key: what the examples are (``"return_id"``, ``"date|channel|spend"``...).
        unit: what ``n_rows`` counts (``rows`` unless said otherwise, e.g. ``lines``).
        detail: free text (missing table / columns, number of duplicated values...).
        n_ids: how many distinct example ids exist when not one per counted row
            (duplicated values, lines); None means ``n_rows``.
    """

    table: str
    column: str | None
    rule: str
    n_rows: int
    examples: tuple[str, ...] = ()
    example_key: str | None = None
    unit: str = "rows"
    detail: str = ""
    n_ids: int | None = None

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def __str__(self) -> str:
        text = f"{self.where}: rule '{self.rule}' broken"
        if self.n_rows:
            unit = self.unit[:-1] if self.n_rows == 1 and self.unit.endswith("s") else self.unit
            text += f" by {self.n_rows} {unit}"
        if self.examples:
            sep = "; " if self.example_key and "|" in self.example_key else ", "
            total = self.n_rows if self.n_ids is None else self.n_ids
            more = f"{sep}..." if total > len(self.examples) else ""
            label = f"{self.example_key}: " if self.example_key else ""
            text += f" ({label}{sep.join(self.examples)}{more})"
        if self.detail:
            text += f": {self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["examples"] = list(self.examples)
        d["message"] = str(self)
        return d


class ContractError(ValueError):
    """The input data break the contract. Raised once, with every violation found.

    ``violations`` lists them in the order of the checks; ``warnings`` holds the
    data-quality warnings computed before the error (possibly empty).
    """

    def __init__(
        self,
        violations: list[Violation],
        warnings: list["DataQualityWarning"] | None = None,
    ):
        self.violations = list(violations)
        self.warnings = list(warnings or [])
        tables = sorted({v.table for v in self.violations}, key=_table_order)
        n = len(self.violations)
        head = (
            f"The input data break the data contract: {n} violation{'s' if n != 1 else ''}"
            f" in {', '.join(tables)} (see docs/data_contract.md)."
        )
        super().__init__("\n".join([head, *(str(v) for v in self.violations)]))


@dataclass(frozen=True)
class DataQualityWarning:
    """Something worth reporting that does not stop the run."""

    table: str
    rule: str
    n_rows: int
    message: str
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rule": self.rule,
            "n_rows": int(self.n_rows),
            "message": self.message,
            "examples": list(self.examples),
        }

    def __str__(self) -> str:
        return f"{self.table}: {self.message}"


@dataclass
class ValidatedData:
    """The tables, reduced to the contract columns and cast to the contract types.

    ``tables`` holds the required tables and the optional tables that were given (an
    empty optional table is kept, with its warning). ``returns`` has one more column,
    ``reason_code_raw``: the code as given; ``reason_code`` is mapped into the taxonomy.
    """

    tables: dict[str, ibis.Table]
    warnings: list[DataQualityWarning] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.tables

    def warnings_as_dicts(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self.warnings]


# --------------------------------------------------------------------------- helpers


def _table_order(name: str) -> int:
    return ALL_TABLES.index(name) if name in ALL_TABLES else len(ALL_TABLES)


def _column_order(table: str, column: str | None) -> int:
    if column is None or table not in TABLES:
        return -1
    names = TABLES[table].column_names
    return names.index(column) if column in names else len(names)


def _fmt(value: Any) -> str:
    """A value as it should appear in a message."""
    if value is None:
        return "<empty>"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
    if hasattr(value, "isoformat"):
        text = value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
        return text.replace(" 00:00:00", "") if text.endswith(" 00:00:00") else text
    return str(value)


def _count(n: int, noun: str) -> str:
    """``3 returns``, ``1 return``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _quoted(value: Any) -> str:
    if value is None:
        return "<empty>"
    return repr(value) if isinstance(value, str) else _fmt(value)


def _rows(expr: ibis.Table) -> list[dict[str, Any]]:
    return expr.to_pyarrow().to_pylist()


def _scalar_int(expr: ibis.Expr) -> int:
    value = expr.to_pyarrow().as_py()
    return int(value or 0)


def _count_flag(cond: ibis.BooleanValue) -> ibis.Expr:
    """Number of rows where ``cond`` is true (NULL counts as false); portable."""
    return ibis.ifelse(cond, 1, 0).sum()


def _whole(f: ibis.Value) -> ibis.BooleanValue:
    """A float64 value is a whole number (false for NULL, NaN, inf and huge values)."""
    in_range = (f >= -_MAX_SAFE_INT) & (f <= _MAX_SAFE_INT)
    return ibis.ifelse(in_range, f.floor().cast("float64") == f, False)


@dataclass
class _Converted:
    value: ibis.Value  # the value in the contract type, NULL when empty or invalid
    present: ibis.BooleanValue  # the raw value is not NULL and not an empty string
    bad_type: ibis.BooleanValue | None  # non-empty raw value that is not of the kind


def _convert(raw: ibis.Value, kind: str) -> _Converted:
    """Cast one raw column (any type, as read) to the contract ``kind``."""
    dtype = raw.type()
    text = raw if dtype.is_string() else raw.cast("string")
    stripped = text.strip()
    present = (raw.notnull() & (stripped != "")) if dtype.is_string() else raw.notnull()
    target = _KIND_DTYPE[kind]

    if kind == "str":
        return _Converted(stripped.nullif(""), present, None)

    if kind == "isoweek":
        ok = stripped.re_search(_ISOWEEK_RE)
        return _Converted(ibis.ifelse(ok, stripped, ibis.null(target)), present, present & ~ok)

    if kind in ("int", "float"):
        if dtype.is_integer():
            return _Converted(raw.cast(target), present, None)
        if dtype.is_numeric():
            f = raw.cast("float64")
        elif dtype.is_string():
            f = ibis.ifelse(
                stripped.re_search(_NUMBER_RE), stripped.try_cast("float64"), ibis.null("float64")
            )
        else:  # boolean, dates...: never a number
            return _Converted(ibis.null(target), present, present)
        if kind == "int":
            ok = _whole(f)
            return _Converted(ibis.ifelse(ok, f.cast("int64"), ibis.null("int64")), present, present & ~ok)
        if dtype.is_floating() or dtype.is_string():
            finite = f.notnull() & ~f.isnan() & ~f.isinf()
            return _Converted(ibis.ifelse(finite, f, ibis.null("float64")), present, present & ~finite)
        return _Converted(f, present, None)  # decimal

    if kind in ("date", "timestamp"):
        if dtype.is_timestamp():
            value = raw.date() if kind == "date" else raw.cast(target)
            return _Converted(value, present, None)
        if dtype.is_date():
            return _Converted(raw if kind == "date" else raw.cast(target), present, None)
        if not dtype.is_string():
            return _Converted(ibis.null(target), present, present)
        ts = ibis.ifelse(
            stripped.re_search(_TIMESTAMP_RE),
            stripped.try_cast("timestamp"),
            ibis.null("timestamp"),
        )
        value = ts.date() if kind == "date" else ts
        return _Converted(value, present, present & value.isnull())

    raise ValueError(f"unknown column kind {kind!r}")


def _resolve_columns(table: ibis.Table, spec: TableSpec) -> tuple[dict[str, str], list[str]]:
    """Contract column -> actual column (exact name first, then case-insensitive)."""
    actual = list(table.columns)
    lowered: dict[str, list[str]] = {}
    for name in actual:
        lowered.setdefault(name.strip().lower(), []).append(name)
    found: dict[str, str] = {}
    missing: list[str] = []
    for col in spec.column_names:
        if col in actual:
            found[col] = col
        elif len(lowered.get(col.lower(), [])) == 1:
            found[col] = lowered[col.lower()][0]
        else:
            missing.append(col)
    return found, missing


@dataclass
class _Check:
    """A single-table rule: ``bad`` flags the rows breaking it."""

    order: int
    column: str
    rule: str
    bad: ibis.BooleanValue
    show: str | None = None  # print next to the id the value "raw" (as given) or "value" (validated)


# --------------------------------------------------------------------------- validator

# Order of the warnings in the report.
_W_REASON, _W_DELIVERY, _W_EMPTY, _W_MISSING, _W_COST, _W_CONTACT_ORDER = range(6)

_Handler = Callable[[int], None]


class _Validator:
    """One validation run.

    Counting happens first: every rule contributes a metric to a one-row aggregate (one
    aggregate per table for all its single-table rules, one per cross-table rule). Only the
    rules with a non-zero count then run a second, small query for their examples.
    """

    def __init__(self, tables: Mapping[str, Any]):
        self.raw: dict[str, ibis.Table] = {}
        for name, table in tables.items():
            if name not in TABLES:
                continue  # an extra table: not part of the contract, ignored
            self.raw[name] = table if isinstance(table, ibis.Table) else ibis.memtable(table)
        self.given_names = sorted(str(n) for n in tables)
        self.violations: list[tuple[tuple, Violation]] = []
        self.warnings: list[tuple[tuple, DataQualityWarning]] = []
        self.colmap: dict[str, dict[str, str]] = {}  # contract column -> actual column
        self.conv: dict[str, dict[str, _Converted]] = {}
        self.values: dict[str, dict[str, ibis.Value]] = {}  # validated columns, over the raw table
        self.out: dict[str, ibis.Table] = {}
        self.row_counts: dict[str, int] = {}
        self._aggs: list[ibis.Table] = []
        self._handlers: list[tuple[str, _Handler]] = []

    # ---- recording

    def violate(self, order: int, v: Violation) -> None:
        key = (order, _table_order(v.table), _column_order(v.table, v.column), len(self.violations))
        self.violations.append((key, v))

    def warn(self, order: int, table: str, rule: str, n_rows: int, message: str, examples=()) -> None:
        key = (order, _table_order(table), len(self.warnings))
        self.warnings.append((key, DataQualityWarning(table, rule, int(n_rows), message, tuple(examples))))

    def has(self, table: str, *columns: str) -> bool:
        return table in self.out and all(c in self.colmap[table] for c in columns)

    def view(self, table: str, *columns: str, **renamed: str) -> ibis.Table:
        """The validated table reduced to ``columns`` (plus ``new_name=column``) and its key.

        Cross-table rules use these narrow projections: smaller expressions compile faster.
        """
        v = self.values[table]
        key = TABLES[table].key
        cols = list(dict.fromkeys(([key] if key in v else []) + list(columns)))
        if key not in v:
            cols = list(dict.fromkeys(cols + [c for c in TABLES[table].column_names if c in v][:4]))
        return self.raw[table].select(**{c: v[c] for c in cols}, **{k: v[c] for k, c in renamed.items()})

    # ---- counting first, examples after

    def add_counts(self, source: ibis.Table, metrics: list[tuple[ibis.Value, _Handler]]) -> None:
        """Aggregate ``metrics`` over ``source``; each handler gets its count after :meth:`flush`."""
        named = {}
        for metric, handler in metrics:
            name = f"n{len(self._handlers)}_"
            self._handlers.append((name, handler))
            named[name] = metric
        if named:
            self._aggs.append(source.aggregate(**named))

    def add_row_count(self, rows: ibis.Table, handler: _Handler) -> None:
        self.add_counts(rows, [(rows.count(), handler)])

    def flush(self) -> None:
        """Run the registered aggregates (one query each) and hand each count to its handler.

        (One query per aggregate rather than a cross join of all of them: ibis compiles the
        pieces as fast as the whole, and a failing piece names its own SQL.)
        """
        if not self._aggs:
            return
        values: dict[str, Any] = {}
        for agg in self._aggs:
            values.update(_rows(agg)[0])
        handlers, self._aggs, self._handlers = self._handlers, [], []
        for name, handler in handlers:
            handler(int(values[name] or 0))

    # ---- examples

    def _example_spec(self, table: str, about: str | None = None) -> tuple[str, list[str]]:
        """(label, contract columns used as example ids): the key, or the first columns."""
        spec = TABLES[table]
        if spec.key and spec.key in self.colmap[table] and spec.key != about:
            return spec.key, [spec.key]
        cols = [c for c in spec.column_names if c in self.colmap[table]][:4]
        return "|".join(cols), cols

    def examples_raw(self, table: str, bad: ibis.BooleanValue, column: str, show: str | None,
                     about: str | None) -> tuple[str, tuple[str, ...]]:
        """Examples for a single-table rule, read from the raw table (bad values visible)."""
        raw = self.raw[table]
        label, cols = self._example_spec(table, about)
        key = TABLES[table].key
        sel: dict[str, ibis.Value] = {}
        for i, c in enumerate(cols):
            sel[f"e{i}_"] = self.values[table][c] if c == key and len(cols) == 1 else raw[self.colmap[table][c]]
        if show == "raw":
            sel["v_"] = raw[self.colmap[table][column]]
        elif show == "value":
            sel["v_"] = self.values[table][column]
        q = raw.filter(bad).select(**sel).order_by(list(sel)[: len(cols)]).limit(N_EXAMPLES)
        out = []
        for row in _rows(q):
            ident = "|".join(_fmt(row[f"e{i}_"]) for i in range(len(cols)))
            out.append(f"{ident} ({_quoted(row['v_'])})" if show else ident)
        return label, tuple(out)

    def examples_of(self, rows: ibis.Table, table: str, extra: str | None = None) -> tuple[str, tuple[str, ...]]:
        """Examples from a table carrying the validated columns of ``table``."""
        label, cols = self._example_spec(table)
        q = rows.select(*cols, *([extra] if extra else [])).order_by(cols).limit(N_EXAMPLES)
        out = []
        for row in _rows(q):
            ident = "|".join(_fmt(row[c]) for c in cols)
            out.append(f"{ident} ({_fmt(row[extra])})" if extra else ident)
        return label, tuple(out)

    def count_rows(self, order: int, table: str, column: str, rule: str, rows: ibis.Table,
                   extra: str | None = None, detail: str = "") -> None:
        """A rule broken by every row of ``rows`` (validated columns of ``table``)."""

        def handler(n: int) -> None:
            if n:
                label, ex = self.examples_of(rows, table, extra)
                self.violate(order, Violation(table, column, rule, n, ex, label, detail=detail))

        self.add_row_count(rows, handler)

    # ---- steps

    def run(self) -> ValidatedData:
        self.check_presence()
        for name in ALL_TABLES:
            if name in self.raw:
                self.prepare_table(name)
        for name in ALL_TABLES:
            if name in self.out:
                self.check_single_table(name)
        self.check_foreign_keys()
        self.check_returns_vs_lines()
        self.check_assignments()
        self.check_contacts()
        self.flush()
        self.check_experiment_cohorts()
        self.warn_optional_tables()

        violations = [v for _, v in sorted(self.violations, key=lambda kv: kv[0])]
        warnings = [w for _, w in sorted(self.warnings, key=lambda kv: kv[0])]
        if violations:
            raise ContractError(violations, warnings)
        missing = [n for n in OPTIONAL_TABLES if n not in self.raw]
        return ValidatedData(dict(self.out), warnings, missing, dict(self.row_counts))

    def check_presence(self) -> None:
        given = ", ".join(self.given_names) or "none"
        for name in REQUIRED_TABLES:
            if name not in self.raw:
                self.violate(_O_TABLE, Violation(
                    name, None, "required table present", 0,
                    detail=f"no table '{name}' in the source (tables found: {given})",
                ))

    def prepare_table(self, name: str) -> None:
        """Contract columns found, converted; the validated table (a lazy projection)."""
        spec = TABLES[name]
        raw = self.raw[name]
        found, missing = _resolve_columns(raw, spec)
        self.colmap[name] = found
        if missing:
            self.violate(_O_COLUMNS, Violation(
                name, None, "has the contract columns", 0,
                detail=f"missing {', '.join(missing)} (columns present: {', '.join(raw.columns) or 'none'})",
            ))
        conv = {c: _convert(raw[found[c]], spec.column(c).kind) for c in spec.column_names if c in found}
        self.conv[name] = conv
        values = {c: conv[c].value.cast(_KIND_DTYPE[spec.column(c).kind]) for c in conv}
        if name == "returns" and "reason_code" in values:
            code = values["reason_code"].lower()
            values["reason_code"] = ibis.ifelse(
                code.isin(REASON_CODES), code, ibis.ifelse(code.isnull(), ibis.null("string"), "other")
            )
            values["reason_code_raw"] = raw[found["reason_code"]].cast("string")
        self.values[name] = values
        self.out[name] = raw.select(**values)

    def check_single_table(self, name: str) -> None:
        """Types, empties, allowed values, minimums and the rules within one row: one aggregate."""
        spec = TABLES[name]
        raw = self.raw[name]
        conv = self.conv[name]
        v = self.values[name]
        checks: list[_Check] = []
        for col in spec.columns:
            if col.name not in conv:
                continue
            c = conv[col.name]
            if c.bad_type is not None:
                checks.append(_Check(_O_TYPE, col.name, _KIND_RULE[col.kind], c.bad_type, "raw"))
            if not col.nullable:
                checks.append(_Check(_O_NULL, col.name, "not empty", ~c.present))
            if col.allowed:
                checks.append(_Check(_O_ALLOWED, col.name, f"one of {', '.join(col.allowed)}",
                                     c.value.notnull() & ~c.value.isin(col.allowed), "value"))
            if col.minimum is not None:
                checks.append(_Check(_O_MIN, col.name, f"at least {_fmt(float(col.minimum))}",
                                     v[col.name] < col.minimum, "value"))
        if name == "order_lines" and {"discount_amount", "quantity", "unit_price"} <= v.keys():
            checks.append(_Check(
                _O_DISCOUNT, "discount_amount", "at most quantity x unit_price",
                v["discount_amount"] > v["quantity"] * v["unit_price"] + DISCOUNT_TOLERANCE, "value"))
        if name == "orders" and {"delivered_ts", "order_ts"} <= v.keys():
            checks.append(_Check(_O_DELIVERED, "delivered_ts", "not before order_ts",
                                 v["delivered_ts"] < v["order_ts"], "value"))
        if name == "experiments":
            if {"review_date", "start_date"} <= v.keys():
                checks.append(_Check(_O_EXPERIMENT, "review_date", "not before start_date",
                                     v["review_date"] < v["start_date"], "value"))
            if {"expected_low", "expected_high"} <= v.keys():
                checks.append(_Check(_O_EXPERIMENT, "expected_low", "at most expected_high",
                                     v["expected_low"] > v["expected_high"], "value"))

        metrics: list[tuple[ibis.Value, _Handler]] = [(raw.count(), partial(self._on_row_count, name))]
        for chk in checks:
            metrics.append((_count_flag(chk.bad), partial(self._on_single_rule, name, chk)))
        for col in spec.columns:
            if col.unique and col.name in v:
                # more non-empty values than distinct values: some appear twice or more
                extra = v[col.name].count() - v[col.name].nunique()
                metrics.append((extra, partial(self._on_duplicates, name, col.name)))
        if name == "orders" and "delivered_ts" in conv:
            metrics.append((_count_flag(~conv["delivered_ts"].present), self._on_not_delivered))
        if name == "contacts" and "cost" in conv:
            metrics.append((_count_flag(~conv["cost"].present), self._on_empty_cost))
        if name == "returns" and "reason_code" in conv:
            unknown = conv["reason_code"].present & (v["reason_code"] == "other") & (
                conv["reason_code"].value.lower() != "other")
            metrics.append((_count_flag(unknown), self._on_unknown_reason_codes))
        self.add_counts(raw, metrics)

    def _on_row_count(self, name: str, n: int) -> None:
        self.row_counts[name] = n
        if n == 0 and TABLES[name].required:
            self.violate(_O_ROWS, Violation(name, None, "has rows", 0, detail="the table is empty"))

    def _on_single_rule(self, name: str, chk: _Check, n: int) -> None:
        if not n:
            return
        about = chk.column if (chk.order == _O_NULL and chk.column == TABLES[name].key) else None
        label, ex = self.examples_raw(name, chk.bad, chk.column, chk.show, about)
        self.violate(chk.order, Violation(name, chk.column, chk.rule, n, ex, label))

    def _on_duplicates(self, name: str, column: str, n_extra: int) -> None:
        if not n_extra:
            return
        t = self.out[name]
        dup = (
            t.filter(t[column].notnull())
            .group_by(column)
            .aggregate(n_=ibis._.count())
            .filter(ibis._.n_ > 1)
        )
        stats = _rows(dup.aggregate(rows_=dup.n_.sum(), values_=dup.count()))[0]
        ex = tuple(f"{_fmt(r[column])} (x{r['n_']})" for r in _rows(dup.order_by(column).limit(N_EXAMPLES)))
        n_values = int(stats["values_"] or 0)
        self.violate(_O_UNIQUE, Violation(
            name, column, "unique", int(stats["rows_"] or 0), ex, column, n_ids=n_values,
            detail=f"{n_values} value{'s' if n_values != 1 else ''} appear{'' if n_values != 1 else 's'}"
            " more than once",
        ))

    def check_foreign_keys(self) -> None:
        for name in ALL_TABLES:
            if name not in self.out:
                continue
            for col in TABLES[name].columns:
                if not col.references or col.name not in self.colmap[name]:
                    continue
                ref_table, ref_col = col.references
                child = self.view(name, col.name)
                child = child.filter(child[col.name].notnull())
                rule = f"references {ref_table}.{ref_col}"
                if ref_table not in self.raw:
                    if not TABLES[ref_table].required:  # a missing required table is reported already
                        self.count_rows(_O_FK, name, col.name, rule, child, extra=col.name,
                                        detail=f"the table {ref_table} is missing")
                    continue
                if not self.has(ref_table, ref_col):
                    continue
                parent = self.view(ref_table, ref_key_=ref_col).select("ref_key_")
                orphans = child.anti_join(parent, child[col.name] == parent.ref_key_)
                self.count_rows(_O_FK, name, col.name, rule, orphans, extra=col.name)

    def check_returns_vs_lines(self) -> None:
        if (self.has("returns", "line_id", "requested_ts") and self.has("order_lines", "line_id", "order_id")
                and self.has("orders", "order_id", "order_ts")):
            r = self.view("returns", "line_id", "requested_ts")
            lines = self.view("order_lines", line_order_id_="order_id")
            orders = self.view("orders", order_id_="order_id", order_ts_="order_ts").select(
                "order_id_", "order_ts_")
            j = r.join(lines, "line_id")
            j = j.join(orders, j.line_order_id_ == orders.order_id_)
            early = j.requested_ts < j.order_ts_

            def handler(n: int, joined: ibis.Table = j, flag: ibis.Value = early) -> None:
                if n:  # (defaults bind now: `j` is reassigned below before the handler runs)
                    label, ex = self.examples_of(joined.filter(flag), "returns", "requested_ts")
                    self.violate(_O_REQUESTED, Violation("returns", "requested_ts", "not before the order's order_ts",
                                                         n, ex, label))

            # counted as a flag over the equi-join: a filter on the join lets DuckDB plan an inequality
            # join of orders x returns (66 million rows on the Online Retail data, 20-40 s instead of 1 s)
            self.add_counts(j, [(_count_flag(early), handler)])

        if self.has("returns", "line_id", "quantity") and self.has("order_lines", "line_id", "quantity"):
            r = self.view("returns", "line_id", "quantity")
            lines = self.view("order_lines", line_qty_="quantity")
            j = r.join(lines, "line_id")
            over = j.filter(j.quantity > j.line_qty_)
            self.count_rows(_O_RETURN_QTY, "returns", "quantity", "at most the line's quantity", over,
                            extra="quantity")
            totals = (
                r.filter(r.quantity.notnull())
                .group_by("line_id")
                .aggregate(returned_=ibis._.quantity.sum(), largest_=ibis._.quantity.max())
                .join(lines, "line_id")
            )
            # lines whose returns each fit but whose total does not (single ones are reported above)
            over_total = totals.filter(
                (totals.returned_ > totals.line_qty_) & (totals.largest_ <= totals.line_qty_)
            )

            def handler(n: int) -> None:
                if not n:
                    return
                ex = tuple(
                    f"{_fmt(x['line_id'])} ({x['returned_']} > {x['line_qty_']})"
                    for x in _rows(over_total.order_by("line_id").limit(N_EXAMPLES))
                )
                self.violate(_O_RETURN_QTY, Violation(
                    "returns", "quantity", "total returned per line at most the line's quantity",
                    n, ex, "line_id", unit="lines",
                ))

            self.add_row_count(over_total, handler)

    def check_assignments(self) -> None:
        if not self.has("assignments", "experiment_id", "customer_id", "variant"):
            return
        a = self.view("assignments", "experiment_id", "customer_id", "variant")
        multi = (
            a.filter(a.variant.notnull())
            .group_by(["experiment_id", "customer_id"])
            .aggregate(variants_=ibis._.variant.nunique())
            .filter(ibis._.variants_ > 1)
        )

        def handler(n: int) -> None:
            if not n:
                return
            ex = tuple(
                f"{_fmt(x['customer_id'])} ({_fmt(x['experiment_id'])})"
                for x in _rows(multi.order_by(["customer_id", "experiment_id"]).limit(N_EXAMPLES))
            )
            self.violate(_O_ASSIGNMENT, Violation(
                "assignments", "variant", "one variant per experiment and customer", n, ex,
                "customer_id", unit="customers",
            ))

        self.add_row_count(multi, handler)

    def check_experiment_cohorts(self) -> None:
        present = [c for c in ("cohort", "control_cohort") if self.has("experiments", c)]
        if not present or not self.row_counts.get("experiments"):
            return
        e = self.out["experiments"]
        key = "experiment_id" if "experiment_id" in self.colmap["experiments"] else None
        # a small table: parsed client-side with the contract's own parser
        rows = _rows(e.select(*([key] if key else []), *present))
        for column in present:
            bad: list[str] = []
            for row in rows:
                text = row[column]
                if text is None:
                    continue  # empty: the 'not empty' rule reports it when the column is required
                try:
                    filters = parse_cohort(text)
                except ValueError:
                    filters = None
                if filters is None or any(k not in SLICE_COLUMNS for k in filters):
                    bad.append(f"{_fmt(row[key]) if key else '?'} ({text!r})")
            if bad:
                self.violate(_O_EXPERIMENT, Violation(
                    "experiments", column, f"a filter column=value;... on {', '.join(SLICE_COLUMNS)}",
                    len(bad), tuple(sorted(bad)[:N_EXAMPLES]), key,
                ))

    # ---- warnings

    def check_contacts(self) -> None:
        if not (self.has("contacts", "order_id") and self.has("orders", "order_id")):
            return
        c = self.view("contacts", "order_id")
        orders = self.view("orders", ref_key_="order_id").select("ref_key_")
        c = c.filter(c.order_id.notnull())
        orphans = c.anti_join(orders, c.order_id == orders.ref_key_)

        def handler(n: int) -> None:
            if n:
                _, ex = self.examples_of(orphans, "contacts", "order_id")
                self.warn(_W_CONTACT_ORDER, "contacts", "contact order_id not in orders", n,
                          f"{_count(n, 'contact')} with an order_id that is not in orders", ex)

        self.add_row_count(orphans, handler)

    def _on_not_delivered(self, n: int) -> None:
        if n:
            self.warn(_W_DELIVERY, "orders", "not delivered", n,
                      f"{_count(n, 'order')} without delivered_ts: counted as not delivered (yet)")

    def _on_empty_cost(self, n: int) -> None:
        if n:
            c = self.out["contacts"]
            _, ex = self.examples_of(c.filter(c.cost.isnull()), "contacts")
            self.warn(_W_COST, "contacts", "contact cost empty", n,
                      f"{_count(n, 'contact')} without cost: the default cost per contact is used", ex)

    def _on_unknown_reason_codes(self, n: int) -> None:
        if not n:
            return
        r = self.out["returns"]
        unknown = r.filter(r.reason_code_raw.notnull() & (r.reason_code == "other")
                           & (r.reason_code_raw.strip().lower() != "other"))
        per_code = unknown.group_by(code_="reason_code_raw").aggregate(n_=ibis._.count())
        codes = _rows(per_code.order_by([ibis.desc("n_"), "code_"]).limit(MAX_REASON_CODE_WARNINGS + 5))
        n_codes = _scalar_int(per_code.count())
        key = "return_id" if "return_id" in self.colmap["returns"] else None
        shown = 0
        for row in codes[:MAX_REASON_CODE_WARNINGS]:
            ex: tuple[str, ...] = ()
            if key:
                sub = unknown.filter(unknown.reason_code_raw == row["code_"])
                ex = tuple(_fmt(x[key]) for x in _rows(sub.select(key).order_by(key).limit(N_EXAMPLES)))
            shown += row["n_"]
            self.warn(_W_REASON, "returns", "reason code outside the taxonomy", row["n_"],
                      f"{_count(row['n_'], 'return')} with reason_code {row['code_']!r}, outside the taxonomy:"
                      " counted as 'other'", ex)
        if n > shown:
            rest = codes[MAX_REASON_CODE_WARNINGS:]
            self.warn(_W_REASON, "returns", "reason code outside the taxonomy", n - shown,
                      f"{_count(n - shown, 'return')} with one of {n_codes - MAX_REASON_CODE_WARNINGS} more codes"
                      f" outside the taxonomy ({', '.join(repr(x['code_']) for x in rest)}, ...):"
                      " counted as 'other'")

    def warn_optional_tables(self) -> None:
        for name in OPTIONAL_TABLES:
            if name not in self.raw:
                self.warn(_W_MISSING, name, "optional table missing", 0, f"not available (no {name} table)")
            elif self.row_counts.get(name) == 0:
                self.warn(_W_EMPTY, name, "optional table empty", 0,
                          f"the {name} table is empty: analyses needing it show "
                          f"'not available (no {name} rows)'")


def validate(tables: Mapping[str, ibis.Table]) -> ValidatedData:
    """Check ``tables`` (name -> ibis table, as read) against the data contract.

    Returns the validated tables (contract columns, contract order, contract types) and
    the data-quality warnings. Raises :class:`ContractError` listing every violation.
    Tables not named in the contract are ignored; extra columns are dropped.
    """
    return _Validator(tables).run()
