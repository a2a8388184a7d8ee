"""Data-quality warnings: what is worth reporting but does not stop the run.

Reason codes outside the taxonomy (counted as ``other``), orders not delivered, contacts without
a cost or pointing at an unknown order, optional tables missing or empty.
"""
from __future__ import annotations

from functools import partial

import ibis

from playbook.data.contract import OPTIONAL_TABLES
from playbook.data.validation import engine
from playbook.data.validation.engine import Handler, Run, count_flag, scalar_int
from playbook.data.validation.findings import N_EXAMPLES, WarningOrder, count_noun, fmt

#: Unknown reason codes listed one by one in the warnings (the rest are grouped).
MAX_REASON_CODE_WARNINGS = 10


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


def check_contacts(run: Run) -> None:
    """Contacts whose order_id is not in orders (a warning: the contact still counts)."""
    if not (run.has("contacts", "order_id") and run.has("orders", "order_id")):
        return
    c = run.view("contacts", "order_id")
    orders = run.view("orders", ref_key_="order_id").select("ref_key_")
    c = c.filter(c.order_id.notnull())
    orphans = c.anti_join(orders, c.order_id == orders.ref_key_)

    def handler(n: int) -> None:
        if n:
            _, ex = run.examples_of(orphans, "contacts", "order_id")
            run.warn(WarningOrder.CONTACT_ORDER, "contacts", "contact order_id not in orders", n,
                     f"{count_noun(n, 'contact')} with an order_id that is not in orders", ex)

    run.add_row_count(orphans, handler)


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
