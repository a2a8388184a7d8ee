"""Data-quality warnings: what is worth reporting but does not stop the run.

Reason codes outside the taxonomy (counted as ``other``), orders not delivered, contacts without
a cost or pointing at an unknown order, optional tables missing or empty, and columns of a contract
table that the contract does not know (ignored, never silently: a misspelt optional column such as
``planned_look`` would otherwise vanish without a word).
"""
from __future__ import annotations

import difflib
from functools import partial

import ibis

from playbook.data.contract import ALL_TABLES, OPTIONAL_TABLES, TABLES
from playbook.data.validation import engine
from playbook.data.validation.engine import Count, Handler, Run, count_flag, scalar_int
from playbook.data.validation.findings import N_EXAMPLES, WarningOrder, count_noun, fmt

#: Unknown reason codes listed one by one in the warnings (the rest are grouped).
MAX_REASON_CODE_WARNINGS = 10
#: The rule of the warning about columns the contract does not know.
UNKNOWN_COLUMN_RULE = "column not in the contract"
#: How close a column's name must be to a contract column's for a "did you mean" hint (difflib's ratio).
HINT_CUTOFF = 0.75


def table_counts(run: Run, name: str) -> list[tuple[ibis.Value, Handler]]:
    """The warnings counted in the table's own aggregate (with its single-table rules)."""
    conv, v = run.conv[name], run.values[name]
    counts: list[tuple[ibis.Value, Handler]] = []
    if name == "orders" and "delivered_ts" in conv:
        counts.append((count_flag(~conv["delivered_ts"].present), partial(_on_not_delivered, run)))
    if name == "contacts" and "cost" in conv:
        counts.append((count_flag(~conv["cost"].present), partial(_on_empty_cost, run)))
    if name == "returns" and "reason_code" in conv:
        code = conv["reason_code"]
        unknown = code.present & (v["reason_code"] == "other") & (code.value.lower() != "other")
        counts.append((count_flag(unknown), partial(_on_unknown_reason_codes, run)))
    return counts


def contacts_rule(run: Run) -> Count | None:
    """Contacts whose order_id is not in orders (a warning: the contact still counts); counted in the pass
    over orders (``cross_rules.check_order_pass``)."""
    if not (run.has("contacts", "order_id") and run.has("orders", "order_id")):
        return None
    c = run.view("contacts", "order_id")
    orders = run.view("orders", ref_key_="order_id").select("ref_key_")
    c = c.filter(c.order_id.notnull())
    orphans = c.anti_join(orders, c.order_id == orders.ref_key_)

    def handler(n: int) -> None:
        if n:
            _, ex = run.examples_of(orphans, "contacts", "order_id")
            run.warn(WarningOrder.CONTACT_ORDER, "contacts", "contact order_id not in orders", n,
                     f"{count_noun(n, 'contact')} with an order_id that is not in orders", ex)

    return Count.rows_of(orphans, handler)


def closest_column(column: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """The contract column ``column`` was most likely meant to be (difflib), or None when none is close."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(column.strip().lower(), list(lowered), n=1, cutoff=HINT_CUTOFF)
    return lowered[found[0]] if found else None


def unknown_columns_message(table: str, columns: list[str], hints: dict[str, str]) -> str:
    """``column 'planned_look' of the experiments table is not in the data contract: ignored (did you mean
    planned_looks?)``, or the same for several columns, each hint naming its column."""
    names = ", ".join(repr(c) for c in columns)
    if len(columns) == 1:
        text = f"column {names} of the {table} table is not in the data contract: ignored"
        return text + (f" (did you mean {hints[columns[0]]}?)" if hints else "")
    text = f"columns {names} of the {table} table are not in the data contract: ignored"
    if hints:
        text += " (" + "; ".join(f"{c}: did you mean {hints[c]}?" for c in columns if c in hints) + ")"
    return text


def warn_unknown_columns(run: Run) -> None:
    """A column of a contract table that the contract does not know: one warning per table naming the columns,
    with a "did you mean" hint when a contract column not given is close (``planned_look`` -> ``planned_looks``)."""
    for name in ALL_TABLES:
        if name not in run.colmap:
            continue
        used = set(run.colmap[name].values())
        unknown = [c for c in run.raw[name].columns if c not in used]
        if not unknown:
            continue
        left = [c.name for c in TABLES[name].all_columns if c.name not in run.colmap[name]]
        hints = {c: hint for c in unknown if (hint := closest_column(c, left))}
        run.warn(WarningOrder.UNKNOWN_COLUMN, name, UNKNOWN_COLUMN_RULE, 0,
                 unknown_columns_message(name, unknown, hints), tuple(unknown))


def warn_optional_tables(run: Run) -> None:
    """An optional table missing or given empty: its analyses say 'not available'."""
    for name in OPTIONAL_TABLES:
        if name not in run.raw:
            run.warn(WarningOrder.MISSING, name, "optional table missing", 0, f"not available (no {name} table)")
        elif run.row_counts.get(name) == 0:
            run.warn(WarningOrder.EMPTY, name, "optional table empty", 0,
                     f"the {name} table is empty: analyses needing it show 'not available (no {name} rows)'")


def _on_not_delivered(run: Run, n: int) -> None:
    if n:
        run.warn(WarningOrder.DELIVERY, "orders", "not delivered", n,
                 f"{count_noun(n, 'order')} without delivered_ts: counted as not delivered (yet)")


def _on_empty_cost(run: Run, n: int) -> None:
    if n:
        c = run.out["contacts"]
        _, ex = run.examples_of(c.filter(c.cost.isnull()), "contacts")
        run.warn(WarningOrder.COST, "contacts", "contact cost empty", n,
                 f"{count_noun(n, 'contact')} without cost: the default cost per contact is used", ex)


def _unknown_codes(run: Run) -> ibis.Table:
    r = run.out["returns"]
    return r.filter(r.reason_code_raw.notnull() & (r.reason_code == "other")
                    & (r.reason_code_raw.strip().lower() != "other"))


def _code_examples(run: Run, unknown: ibis.Table, code: str) -> tuple[str, ...]:
    key = "return_id" if "return_id" in run.colmap["returns"] else None
    if not key:
        return ()
    sub = unknown.filter(unknown.reason_code_raw == code)
    return tuple(fmt(x[key]) for x in engine.rows(sub.select(key).order_by(key).limit(N_EXAMPLES)))


def _on_unknown_reason_codes(run: Run, n: int) -> None:
    """One warning per unknown code (the most frequent first), the rest grouped in one."""
    if not n:
        return
    unknown = _unknown_codes(run)
    per_code = unknown.group_by(code_="reason_code_raw").aggregate(n_=ibis._.count())
    codes = engine.rows(per_code.order_by([ibis.desc("n_"), "code_"]).limit(MAX_REASON_CODE_WARNINGS + 5))
    n_codes = scalar_int(per_code.count())
    shown = 0
    for row in codes[:MAX_REASON_CODE_WARNINGS]:
        shown += row["n_"]
        run.warn(WarningOrder.REASON, "returns", "reason code outside the taxonomy", row["n_"],
                 f"{count_noun(row['n_'], 'return')} with reason_code {row['code_']!r}, outside the taxonomy:"
                 " counted as 'other'", _code_examples(run, unknown, row["code_"]))
    if n > shown:
        rest = codes[MAX_REASON_CODE_WARNINGS:]
        run.warn(WarningOrder.REASON, "returns", "reason code outside the taxonomy", n - shown,
                 f"{count_noun(n - shown, 'return')} with one of {n_codes - MAX_REASON_CODE_WARNINGS} more codes"
                 f" outside the taxonomy ({', '.join(repr(x['code_']) for x in rest)}, ...):"
                 " counted as 'other'")
