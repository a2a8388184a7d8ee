"""The rules between tables, and the experiments' own register rules.

References (anti-joins), a return not before its order and not more than its line, one variant
per experiment and customer, the experiments' cohort filters and (when the caller names the known
metrics) their primary metric.
"""
from __future__ import annotations

import ibis

from playbook.data.contract import ALL_TABLES, TABLES, parse_cohort
from playbook.data.validation import engine
from playbook.data.validation.engine import Run, count_flag
from playbook.data.validation.findings import N_EXAMPLES, Order, Violation, fmt

#: Columns an experiment's cohort / control_cohort filter may name.
SLICE_COLUMNS: tuple[str, ...] = ("category", "channel", "region", "customer_type", "sku")


def check_foreign_keys(run: Run) -> None:
    """Every reference of the contract points at an existing row (its table must be given)."""
    for name in ALL_TABLES:
        if name not in run.out:
            continue
        for col in TABLES[name].columns:
            if col.references and col.name in run.colmap[name]:
                _check_reference(run, name, col.name, *col.references)


def _check_reference(run: Run, name: str, column: str, ref_table: str, ref_col: str) -> None:
    child = run.view(name, column)
    child = child.filter(child[column].notnull())
    rule = f"references {ref_table}.{ref_col}"
    if ref_table not in run.raw:
        if not TABLES[ref_table].required:  # a missing required table is reported already
            run.count_rows(Order.FOREIGN_KEY, name, column, rule, child, extra=column,
                           detail=f"the table {ref_table} is missing")
        return
    if not run.has(ref_table, ref_col):
        return
    parent = run.view(ref_table, ref_key_=ref_col).select("ref_key_")
    orphans = child.anti_join(parent, child[column] == parent.ref_key_)
    run.count_rows(Order.FOREIGN_KEY, name, column, rule, orphans, extra=column)


def check_returns_vs_orders(run: Run) -> None:
    """A return is not requested before its order was placed."""
    if not (run.has("returns", "line_id", "requested_ts") and run.has("order_lines", "line_id", "order_id")
            and run.has("orders", "order_id", "order_ts")):
        return
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
    run.add_counts(j, [(count_flag(early), handler)])


def check_returns_vs_lines(run: Run) -> None:
    """A return's quantity is at most its line's, and so is the total returned per line."""
    if not (run.has("returns", "line_id", "quantity") and run.has("order_lines", "line_id", "quantity")):
        return
    r = run.view("returns", "line_id", "quantity")
    lines = run.view("order_lines", line_qty_="quantity")
    j = r.join(lines, "line_id")
    run.count_rows(Order.RETURN_QUANTITY, "returns", "quantity", "at most the line's quantity",
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

    run.add_row_count(over_total, handler)


def check_assignments(run: Run) -> None:
    """A customer gets one variant per experiment (a repeated row with the same variant is fine)."""
    if not run.has("assignments", "experiment_id", "customer_id", "variant"):
        return
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

    run.add_row_count(multi, handler)


def check_experiment_metrics(run: Run) -> None:
    """Each experiment's primary metric is one the caller knows (skipped when the caller names none).

    The data layer cannot read the metric dictionary (it sits above data): the caller passes a
    :class:`~playbook.data.validation.findings.KnownMetrics` (``metrics.dictionary.known_metrics``).
    """
    if run.known_metrics is None or not run.has("experiments", "primary_metric"):
        return
    e = run.view("experiments", "primary_metric")
    # the experiments table is small: its distinct metric names are tested client-side
    names = e.select(name=e.primary_metric.cast("string")).distinct().to_pandas()["name"].dropna()
    strangers = sorted(n for n in names if not run.known_metrics.accepts(str(n)))
    if not strangers:
        return
    unknown = e.filter(e.primary_metric.cast("string").isin(strangers))
    run.count_rows(Order.EXPERIMENT, "experiments", "primary_metric", "a known metric", unknown,
                   extra="primary_metric", detail=f"known metrics: {run.known_metrics.described}")


def check_experiment_cohorts(run: Run) -> None:
    """``cohort`` and ``control_cohort`` are filters ``column=value;...`` on the slice columns.

    A small table: parsed client-side with the contract's own parser (after ``flush``: the row
    count is known).
    """
    present = [c for c in ("cohort", "control_cohort") if run.has("experiments", c)]
    if not present or not run.row_counts.get("experiments"):
        return
    key = "experiment_id" if "experiment_id" in run.colmap["experiments"] else None
    rows = engine.rows(run.out["experiments"].select(*([key] if key else []), *present))
    for column in present:
        bad = [f"{fmt(row[key]) if key else '?'} ({row[column]!r})" for row in rows if not _valid_filter(row[column])]
        if bad:
            run.violate(Order.EXPERIMENT, Violation(
                "experiments", column, f"a filter column=value;... on {', '.join(SLICE_COLUMNS)}",
                len(bad), tuple(sorted(bad)[:N_EXAMPLES]), key,
            ))


def _valid_filter(text: str | None) -> bool:
    """Empty (the 'not empty' rule reports it where required), or a filter on known slice columns."""
    if text is None:
        return True
    try:
        filters = parse_cohort(text)
    except ValueError:
        return False
    return all(k in SLICE_COLUMNS for k in filters)
