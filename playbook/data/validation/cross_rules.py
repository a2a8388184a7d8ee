"""The rules between tables, and the experiments' own register rules.

References (anti-joins), a return not before its order and not more than its line, one variant
per experiment and customer, the experiments' cohort filters and (when the caller names the known
metrics) their primary metric. The rules between orders, lines and returns are counted in one pass
(``check_order_pass``), those of the assignments in another; each rule also keeps its own query,
run only when the pass finds it broken (its exact count, its examples).
"""
from __future__ import annotations

import ibis

from playbook.data.contract import ALL_TABLES, TABLES, parse_cohort
from playbook.data.validation import engine, quality
from playbook.data.validation.engine import Count, Run, Screen, count_flag
from playbook.data.validation.findings import N_EXAMPLES, Order, Violation, fmt

#: Columns an experiment's cohort / control_cohort filter may name.
SLICE_COLUMNS: tuple[str, ...] = ("category", "channel", "region", "customer_type", "sku")


#: the references counted in a pass (``check_order_pass``, ``check_assignments_pass``), not by their own query
PASS_REFERENCES = frozenset({("order_lines", "order_id"), ("returns", "line_id"), ("assignments", "experiment_id")})
#: the columns the pass over orders, order lines and returns joins on and compares
ORDER_PASS_COLUMNS = {
    "orders": ("order_id", "order_ts"),
    "order_lines": ("line_id", "order_id", "quantity"),
    "returns": ("line_id", "requested_ts", "quantity"),
}


def check_foreign_keys(run: Run) -> None:
    """Every reference of the contract not counted in a pass points at an existing row (its own query)."""
    for name in ALL_TABLES:
        if name not in run.out:
            continue
        for col in TABLES[name].columns:
            if col.references and (name, col.name) not in PASS_REFERENCES:
                _add(run, reference_rule(run, name, col.name))


def _add(run: Run, *counts: Count | None) -> None:
    """Rules counted each by its own query (a pass cannot be formed: a column it needs is missing)."""
    for count in counts:
        if count is not None:
            run.add_count(count)


def reference_rule(run: Run, name: str, column: str) -> Count | None:
    """``name.column`` points at an existing row of the table it references (which must be given);
    None when there is nothing to check (a table or column is missing, reported already)."""
    ref_table, ref_col = TABLES[name].column(column).references
    if not run.has(name, column):
        return None
    child = run.view(name, column)
    child = child.filter(child[column].notnull())
    rule = f"references {ref_table}.{ref_col}"
    if ref_table not in run.raw:
        if TABLES[ref_table].required:  # a missing required table is reported already
            return None
        return run.rows_rule(Order.FOREIGN_KEY, name, column, rule, child, extra=column,
                             detail=f"the table {ref_table} is missing")
    if not run.has(ref_table, ref_col):
        return None
    parent = run.view(ref_table, ref_key_=ref_col).select("ref_key_")
    orphans = child.anti_join(parent, child[column] == parent.ref_key_)
    return run.rows_rule(Order.FOREIGN_KEY, name, column, rule, orphans, extra=column)


def requested_rule(run: Run) -> Count | None:
    """A return is not requested before its order was placed."""
    if not (run.has("returns", "line_id", "requested_ts") and run.has("order_lines", "line_id", "order_id")
            and run.has("orders", "order_id", "order_ts")):
        return None
    r = run.view("returns", "line_id", "requested_ts")
    lines = run.view("order_lines", line_order_id_="order_id")
    orders = run.view("orders", order_id_="order_id", order_ts_="order_ts").select("order_id_", "order_ts_")
    j = r.join(lines, "line_id")
    j = j.join(orders, j.line_order_id_ == orders.order_id_)
    early = j.requested_ts < j.order_ts_

    def handler(n: int) -> None:
        if n:
            label, ex = run.examples_of(j.filter(early), "returns", "requested_ts")
            run.violate(Order.REQUESTED, Violation("returns", "requested_ts", "not before the order's order_ts",
                                                   n, ex, label))

    # counted as a flag over the equi-join: a filter on the join lets DuckDB plan an inequality
    # join of orders x returns (66 million rows on the Online Retail data, 20-40 s instead of 1 s)
    return Count(j, count_flag(early), handler)


def quantity_rules(run: Run) -> tuple[Count, Count] | None:
    """A return's quantity is at most its line's, and so is the total returned per line."""
    if not (run.has("returns", "line_id", "quantity") and run.has("order_lines", "line_id", "quantity")):
        return None
    r = run.view("returns", "line_id", "quantity")
    lines = run.view("order_lines", line_qty_="quantity")
    j = r.join(lines, "line_id")
    per_return = run.rows_rule(Order.RETURN_QUANTITY, "returns", "quantity", "at most the line's quantity",
                               j.filter(j.quantity > j.line_qty_), extra="quantity")
    totals = (
        r.filter(r.quantity.notnull())
        .group_by("line_id")
        .aggregate(returned_=ibis._.quantity.sum(), largest_=ibis._.quantity.max())
        .join(lines, "line_id")
    )
    # lines whose returns each fit but whose total does not (single ones are reported above)
    over_total = totals.filter((totals.returned_ > totals.line_qty_) & (totals.largest_ <= totals.line_qty_))

    def handler(n: int) -> None:
        if not n:
            return
        ex = tuple(
            f"{fmt(x['line_id'])} ({x['returned_']} > {x['line_qty_']})"
            for x in engine.rows(over_total.order_by("line_id").limit(N_EXAMPLES))
        )
        run.violate(Order.RETURN_QUANTITY, Violation(
            "returns", "quantity", "total returned per line at most the line's quantity",
            n, ex, "line_id", unit="lines",
        ))

    return per_return, Count.rows_of(over_total, handler)


def check_order_pass(run: Run) -> None:
    """The rules between orders, order lines and returns, and contacts' orders (a warning), in one pass.

    Order lines point at orders, returns at lines; a return is not before its order, nor more than its
    line, alone or summed per line; a contact's order exists. Each used to join the large tables
    again (five joins of the lines or orders, most of the validation of a large shop: docs/benchmarks.md,
    "Validation in a few scans"). Here returns and contacts are first reduced to one row per line and per
    order (their count, earliest request, largest and total quantity), then orders, contacts, lines and
    returns are joined once by full outer joins, so that a row of any table without its match stays: the
    references are its orphans, counted exactly; the other rules are screens over the matched rows
    (a return earlier than its order exists exactly when a line's earliest request is), recounted by the
    rule's own query when broken.
    """
    fk_lines = reference_rule(run, "order_lines", "order_id")
    fk_returns = reference_rule(run, "returns", "line_id")
    requested = requested_rule(run)
    per_return, per_line = quantity_rules(run) or (None, None)
    contacts = quality.contacts_rule(run)
    if not all(run.has(name, *columns) for name, columns in ORDER_PASS_COLUMNS.items()):
        _add(run, fk_lines, fk_returns, requested, per_return, per_line, contacts)
        return
    assert fk_lines and fk_returns and requested and per_return and per_line  # every column is there
    o = run.view("orders", o_key_="order_id", o_ts_="order_ts").select("o_key_", "o_ts_")
    if contacts is not None:
        c = run.view("contacts", c_order_="order_id").select("c_order_")
        c = c.filter(c.c_order_.notnull()).group_by("c_order_").aggregate(c_n_=ibis._.count())
        o = o.outer_join(c, o.o_key_ == c.c_order_)
    lines = run.view("order_lines", l_key_="line_id", l_order_="order_id", l_qty_="quantity").select(
        "l_key_", "l_order_", "l_qty_")
    r = run.view("returns", r_line_="line_id", r_ts_="requested_ts", r_qty_="quantity").select(
        "r_line_", "r_ts_", "r_qty_")
    r = r.filter(r.r_line_.notnull()).group_by("r_line_").aggregate(
        r_n_=ibis._.count(), r_first_=ibis._.r_ts_.min(), r_largest_=ibis._.r_qty_.max(),
        r_returned_=ibis._.r_qty_.sum())
    lr = lines.outer_join(r, lines.l_key_ == r.r_line_)
    j = o.outer_join(lr, o.o_key_ == lr.l_order_)
    screens = [
        Screen(count_flag(j.l_order_.notnull() & j.o_key_.isnull()), fk_lines, exact=True),
        Screen(_orphans(j.r_line_, j.l_key_, j.r_n_), fk_returns, exact=True),
        Screen(count_flag(j.r_first_ < j.o_ts_), requested),
        Screen(count_flag(j.r_largest_ > j.l_qty_), per_return),
        Screen(count_flag((j.r_returned_ > j.l_qty_) & (j.r_largest_ <= j.l_qty_)), per_line),
    ]
    if contacts is not None:
        screens.append(Screen(_orphans(j.c_order_, j.o_key_, j.c_n_), contacts, exact=True))
    run.add_pass(j, screens)


def _orphans(key: ibis.Value, match: ibis.Value, n: ibis.Value) -> ibis.Value:
    """The rows of a side reduced to one row per ``key`` (``n`` rows each) that found no ``match``."""
    return ibis.ifelse(key.notnull() & match.isnull(), n, 0).sum()


def assignment_rule(run: Run) -> Count | None:
    """A customer gets one variant per experiment (a repeated row with the same variant is fine)."""
    if not run.has("assignments", "experiment_id", "customer_id", "variant"):
        return None
    a = run.view("assignments", "experiment_id", "customer_id", "variant")
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
            f"{fmt(x['customer_id'])} ({fmt(x['experiment_id'])})"
            for x in engine.rows(multi.order_by(["customer_id", "experiment_id"]).limit(N_EXAMPLES))
        )
        run.violate(Order.ASSIGNMENT, Violation(
            "assignments", "variant", "one variant per experiment and customer", n, ex,
            "customer_id", unit="customers",
        ))

    return Count.rows_of(multi, handler)


def check_assignments_pass(run: Run) -> None:
    """Assignments point at experiments and give a customer one variant per experiment: one pass over the
    assignments grouped by experiment and customer, joined to the experiments. (Two variants show as a
    smallest and a largest that differ: cheaper than counting distinct variants per group.)"""
    fk = reference_rule(run, "assignments", "experiment_id")
    multi = assignment_rule(run)
    if fk is None or multi is None or not run.has("experiments", "experiment_id"):
        _add(run, fk, multi)
        return
    a = run.view("assignments", a_exp_="experiment_id", a_cust_="customer_id", a_var_="variant").select(
        "a_exp_", "a_cust_", "a_var_")
    g = a.group_by(["a_exp_", "a_cust_"]).aggregate(a_n_=ibis._.count(), a_first_=ibis._.a_var_.min(),
                                                      a_last_=ibis._.a_var_.max())
    e = run.view("experiments", e_key_="experiment_id").select("e_key_")
    j = g.left_join(e, g.a_exp_ == e.e_key_)
    run.add_pass(j, [Screen(_orphans(j.a_exp_, j.e_key_, j.a_n_), fk, exact=True),
                     Screen(count_flag(j.a_first_ != j.a_last_), multi)])


def check_experiments(run: Run) -> None:
    """The experiments' own register rules, read client-side from one fetch of the small table.

    ``cohort`` and ``control_cohort`` are filters ``column=value;...`` on the slice columns (parsed with the
    contract's own parser); each experiment's primary metric is one the caller knows (skipped when the
    caller names none: the data layer cannot read the metric dictionary, which sits above data; the
    caller passes a :class:`~playbook.data.validation.findings.KnownMetrics`,
    ``metrics.dictionary.known_metrics``).
    """
    if "experiments" not in run.out:
        return
    filters = [c for c in ("cohort", "control_cohort") if run.has("experiments", c)]
    metric = run.known_metrics is not None and run.has("experiments", "primary_metric")
    if not (filters or metric):
        return
    key = "experiment_id" if "experiment_id" in run.colmap["experiments"] else None
    rows = engine.rows(run.out["experiments"].select(*([key] if key else []), *filters,
                                                     *(["primary_metric"] if metric else [])))
    if metric:
        _check_metrics(run, {row["primary_metric"] for row in rows} - {None})
    for column in filters:
        bad = [f"{fmt(row[key]) if key else '?'} ({row[column]!r})" for row in rows if not _valid_filter(row[column])]
        if bad:
            run.violate(Order.EXPERIMENT, Violation(
                "experiments", column, f"a filter column=value;... on {', '.join(SLICE_COLUMNS)}",
                len(bad), tuple(sorted(bad)[:N_EXAMPLES]), key,
            ))


def _check_metrics(run: Run, names: set[str]) -> None:
    """The experiments whose primary metric the caller does not know (counted, with examples, by a query)."""
    assert run.known_metrics is not None
    strangers = sorted(n for n in names if not run.known_metrics.accepts(str(n)))
    if not strangers:
        return
    e = run.view("experiments", "primary_metric")
    unknown = e.filter(e.primary_metric.cast("string").isin(strangers))
    run.count_rows(Order.EXPERIMENT, "experiments", "primary_metric", "a known metric", unknown,
                   extra="primary_metric", detail=f"known metrics: {run.known_metrics.described}")


def _valid_filter(text: str | None) -> bool:
    """Empty (the 'not empty' rule reports it where required), or a filter on known slice columns."""
    if text is None:
        return True
    try:
        filters = parse_cohort(text)
    except ValueError:
        return False
    return all(k in SLICE_COLUMNS for k in filters)
