"""The rules within one table: presence, columns, types, empties, keys, allowed values, minimums,
and the rules between columns of one row (discount, delivery after order, experiment dates/range, an
experiment's optional selection weeks and close columns).

All single-table rules of a table are counted in one aggregate over it (with the table's
data-quality counts from ``quality.table_counts``); examples are read from the raw table, so that
a bad value shows as it was given.
"""
from __future__ import annotations

import functools
import operator
from functools import partial

import ibis

from playbook.data.contract import (
    CLOSE_COLUMNS,
    EXTENSION_COLUMNS,
    REASON_CODES,
    REQUIRED_TABLES,
    SELECTION_COLUMNS,
    TABLES,
    Column,
)
from playbook.data.validation import engine, quality
from playbook.data.validation.convert import KIND_DTYPE, KIND_RULE, KIND_RULE_COMMA, Converted, convert, resolve_columns
from playbook.data.validation.engine import Check, Handler, Run, count_flag
from playbook.data.validation.findings import N_EXAMPLES, Order, Violation, fmt

#: Tolerance of the rule ``discount_amount <= quantity * unit_price``.
DISCOUNT_TOLERANCE = 1e-9


def check_presence(run: Run) -> None:
    """Every required table is given."""
    given = ", ".join(run.given_names) or "none"
    for name in REQUIRED_TABLES:
        if name not in run.raw:
            run.violate(Order.TABLE, Violation(
                name, None, "required table present", 0,
                detail=f"no table '{name}' in the source (tables found: {given})",
            ))


def _reason_codes(raw: ibis.Table, column: str, code: ibis.Value) -> dict[str, ibis.Value]:
    """``reason_code`` mapped into the taxonomy (outside it: ``other``), and ``reason_code_raw`` as given."""
    lowered = code.lower()
    mapped = ibis.ifelse(lowered.isin(REASON_CODES), lowered,
                         ibis.ifelse(lowered.isnull(), ibis.null("string"), "other"))
    return {"reason_code": mapped, "reason_code_raw": raw[column].cast("string")}


def prepare_table(run: Run, name: str) -> None:
    """Contract columns found, converted; the validated table (a lazy projection)."""
    spec = TABLES[name]
    raw = run.raw[name]
    found, missing = resolve_columns(raw, spec)
    run.colmap[name] = found
    if missing:
        unknown = [c for c in raw.columns if c not in found.values()]
        hints = [f"did you mean {m} for {u!r}?" for m in missing if (u := quality.closest_column(m, unknown))]
        run.violate(Order.COLUMNS, Violation(
            name, None, "has the contract columns", 0,
            detail=f"missing {', '.join(missing)} (columns present: {', '.join(raw.columns) or 'none'})"
                   + (f"; {' '.join(hints)}" if hints else ""),
        ))
    comma = name in run.decimal_comma
    conv = {c: convert(raw[found[c]], spec.column(c).kind, run.timezone, comma) for c in found}
    run.conv[name] = conv
    values = {c: conv[c].value.cast(KIND_DTYPE[spec.column(c).kind]) for c in conv}
    if name == "returns" and "reason_code" in values:
        values.update(_reason_codes(raw, found["reason_code"], values["reason_code"]))
    run.values[name] = values
    run.out[name] = raw.select(**values)


def _column_checks(col: Column, c: Converted, value: ibis.Value, decimal_comma: bool) -> list[Check]:
    """Type, not empty, allowed values, minimum: the rules one column states by itself."""
    checks: list[Check] = []
    if c.bad_type is not None:
        rule = KIND_RULE_COMMA.get(col.kind) if decimal_comma else None
        checks.append(Check(Order.TYPE, col.name, rule or KIND_RULE[col.kind], c.bad_type, "raw"))
    if not col.nullable:
        checks.append(Check(Order.NULL, col.name, "not empty", ~c.present))
    if col.allowed:
        checks.append(Check(Order.ALLOWED, col.name, f"one of {', '.join(col.allowed)}",
                            c.value.notnull() & ~c.value.isin(col.allowed), "value"))
    if col.minimum is not None:
        checks.append(Check(Order.MINIMUM, col.name, f"at least {fmt(float(col.minimum))}",
                            value < col.minimum, "value"))
    return checks


def _row_checks(name: str, v: dict[str, ibis.Value]) -> list[Check]:
    """The rules between columns of one row."""
    checks: list[Check] = []
    if name == "order_lines" and {"discount_amount", "quantity", "unit_price"} <= v.keys():
        checks.append(Check(
            Order.DISCOUNT, "discount_amount", "at most quantity x unit_price",
            v["discount_amount"] > v["quantity"] * v["unit_price"] + DISCOUNT_TOLERANCE, "value"))
    if name == "orders" and {"delivered_ts", "order_ts"} <= v.keys():
        checks.append(Check(Order.DELIVERED, "delivered_ts", "not before order_ts",
                            v["delivered_ts"] < v["order_ts"], "value"))
    if name == "experiments":
        if {"review_date", "start_date"} <= v.keys():
            checks.append(Check(Order.EXPERIMENT, "review_date", "not before start_date",
                                v["review_date"] < v["start_date"], "value"))
        if {"expected_low", "expected_high"} <= v.keys():
            checks.append(Check(Order.EXPERIMENT, "expected_low", "at most expected_high",
                                v["expected_low"] > v["expected_high"], "value"))
    return checks


def _selection_checks(conv: dict[str, Converted], v: dict[str, ibis.Value]) -> list[Check]:
    """The optional selection weeks of an experiment (``contract.SELECTION_COLUMNS``), when given: all
    three or none in a row (an absent column counts as empty), in order (ISO week texts sort as weeks)."""
    given = [c for c in SELECTION_COLUMNS if c in v]
    if not given:
        return []
    first, window, last = SELECTION_COLUMNS
    present = [conv[c].present if c in conv else ibis.literal(False) for c in SELECTION_COLUMNS]
    some = functools.reduce(operator.or_, present)
    every = functools.reduce(operator.and_, present)
    checks = [Check(Order.EXPERIMENT, given[0], f"{', '.join(SELECTION_COLUMNS[:-1])} and {last} given together "
                    "(all three or none)", some & ~every, "value")]
    if {first, window, last} <= v.keys():
        checks.append(Check(Order.EXPERIMENT, window, f"from {first} to {last} ({first} <= {window} <= {last})",
                            every & ((v[first] > v[window]) | (v[window] > v[last])), "value"))
    return checks


def _close_checks(conv: dict[str, Converted], v: dict[str, ibis.Value]) -> list[Check]:
    """The optional close columns of an experiment (``contract.CLOSE_COLUMNS``), when given: both or neither in
    a row (an absent column counts as empty), and a test is not closed before it started."""
    given = [c for c in CLOSE_COLUMNS if c in v]
    if not given:
        return []
    closed_on, reason = CLOSE_COLUMNS
    present = [conv[c].present if c in conv else ibis.literal(False) for c in CLOSE_COLUMNS]
    some = functools.reduce(operator.or_, present)
    every = functools.reduce(operator.and_, present)
    checks = [Check(Order.EXPERIMENT, given[0], f"{closed_on} and {reason} given together (both or neither)",
                    some & ~every, "value")]
    if {closed_on, "start_date"} <= v.keys():
        checks.append(Check(Order.EXPERIMENT, closed_on, "not before start_date",
                            v[closed_on] < v["start_date"], "value"))
    return checks


def _extension_checks(conv: dict[str, Converted], v: dict[str, ibis.Value]) -> list[Check]:
    """The optional extension columns (``contract.EXTENSION_COLUMNS``), when given: both or neither in a row,
    and the original review date before the review date it was extended to."""
    given = [c for c in EXTENSION_COLUMNS if c in v]
    if not given:
        return []
    original, information = EXTENSION_COLUMNS
    present = [conv[c].present if c in conv else ibis.literal(False) for c in EXTENSION_COLUMNS]
    some = functools.reduce(operator.or_, present)
    every = functools.reduce(operator.and_, present)
    checks = [Check(Order.EXPERIMENT, given[0], f"{original} and {information} given together (both or neither)",
                    some & ~every, "value")]
    if {original, "review_date"} <= v.keys():
        checks.append(Check(Order.EXPERIMENT, original, "before review_date (an extension moves the review later)",
                            v[original] >= v["review_date"], "value"))
    return checks


def check_single_table(run: Run, name: str) -> None:
    """Types, empties, allowed values, minimums, uniqueness and the rules within one row: one aggregate."""
    spec = TABLES[name]
    v = run.values[name]
    checks = [chk for col in spec.all_columns if col.name in run.conv[name]
              for chk in _column_checks(col, run.conv[name][col.name], v[col.name], name in run.decimal_comma)]
    checks += _row_checks(name, v)
    if name == "experiments":
        checks += _selection_checks(run.conv[name], v)
        checks += _close_checks(run.conv[name], v)
        checks += _extension_checks(run.conv[name], v)
    metrics: list[tuple[ibis.Value, Handler]] = [(run.raw[name].count(), partial(_on_row_count, run, name))]
    metrics += [(count_flag(chk.bad), partial(_on_single_rule, run, name, chk)) for chk in checks]
    for col in spec.columns:
        if col.unique and col.name in v:
            # more non-empty values than distinct values: some appear twice or more
            extra = v[col.name].count() - v[col.name].nunique()
            metrics.append((extra, partial(_on_duplicates, run, name, col.name)))
    metrics += quality.table_counts(run, name)
    run.add_counts(run.raw[name], metrics)


def _on_row_count(run: Run, name: str, n: int) -> None:
    run.row_counts[name] = n
    if n == 0 and TABLES[name].required:
        run.violate(Order.ROWS, Violation(name, None, "has rows", 0, detail="the table is empty"))


def _on_single_rule(run: Run, name: str, chk: Check, n: int) -> None:
    if not n:
        return
    about = chk.column if (chk.order == Order.NULL and chk.column == TABLES[name].key) else None
    label, ex = run.examples_raw(name, chk.bad, chk.column, chk.show, about)
    run.violate(chk.order, Violation(name, chk.column, chk.rule, n, ex, label))


def _on_duplicates(run: Run, name: str, column: str, n_extra: int) -> None:
    if not n_extra:
        return
    t = run.out[name]
    dup = t.filter(t[column].notnull()).group_by(column).aggregate(n_=ibis._.count()).filter(ibis._.n_ > 1)
    stats = engine.rows(dup.aggregate(rows_=dup.n_.sum(), values_=dup.count()))[0]
    ex = tuple(f"{fmt(r[column])} (x{r['n_']})" for r in engine.rows(dup.order_by(column).limit(N_EXAMPLES)))
    n_values = int(stats["values_"] or 0)
    run.violate(Order.UNIQUE, Violation(
        name, column, "unique", int(stats["rows_"] or 0), ex, column, n_ids=n_values,
        detail=f"{n_values} value{'s' if n_values != 1 else ''} appear{'' if n_values != 1 else 's'} more than once",
    ))
