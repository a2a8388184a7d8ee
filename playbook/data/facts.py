"""Shared facts every step reads: order lines and orders with their returns within k days of delivery.

One home for "returned within k days of delivery, with its cost", for the cohort filter and for
maturity, so that the baseline, the weak cohort, the lever plan and the comparison count a return
the same way. The facts are ibis expressions materialised once per snapshot and k
(``Snapshot.derived``); nothing line-level is pulled into pandas here.
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum

import ibis

from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Snapshot


class Maturity(StrEnum):
    """Which follow-up a weekly cohort needs before its value means anything."""

    NONE = "none"          # counted when it happens (orders, sessions, contacts)
    DELIVERY = "delivery"  # k days after the delivery week: every unit had its return window
    ORDER = "order"        # k days plus the delivery allowance after the order week


def week_of(ts: ibis.Value) -> ibis.Value:
    """The Monday of a timestamp's ISO week, as a date."""
    return ts.truncate("W").cast("date")


def return_cost(r: ibis.Table) -> ibis.Value:
    """What one return costs: refund + return shipping + processing."""
    return r.refund_amount + r.return_shipping_cost + r.processing_cost


def returned_within(r: ibis.Table, k: int) -> ibis.Value:
    """A return (joined to its line's ``delivered_ts``) requested within k days of the delivery.

    A line not delivered yet has no window: its returns are never "within k days".
    """
    return r.delivered_ts.notnull() & (r.requested_ts <= r.delivered_ts + ibis.interval(days=k))


def matches(table: ibis.Table, filters: dict[str, str]) -> ibis.Value:
    """The engine condition "row belongs to the cohort" for a filter such as {"category": "knitwear"}."""
    cond = ibis.literal(True)
    for col, value in filters.items():
        cond &= table[col].cast("string") == value
    return cond


def is_mature(week_start: dt.date, maturity: Maturity, snap_week: IsoWeek, settings: MetricSettings) -> bool:
    """Whether every unit of this weekly cohort has had the follow-up the metric needs by the cut."""
    if maturity == Maturity.NONE:
        return week_start <= snap_week.monday
    wait = settings.return_window_days + (settings.delivery_allowance_days if maturity == Maturity.ORDER else 0)
    return week_start + dt.timedelta(days=6 + wait) <= snap_week.sunday


def orders_with_weeks(snap: Snapshot) -> ibis.Table:
    """Orders with their order and delivery weeks and whether the customer is new (first order)."""
    o = snap.tables["orders"]
    first = ibis.row_number().over(group_by=o.customer_id, order_by=[o.order_ts, o.order_id])
    return o.mutate(
        customer_type=ibis.ifelse(first == 0, "first_time", "repeat"),
        order_week=week_of(o.order_ts),
        delivery_week=week_of(o.delivered_ts),
    )


def line_facts(snap: Snapshot, k: int) -> ibis.Table:
    """One row per order line with its order's attributes and its returns within k days of delivery.

    Materialized once per snapshot and k (``Snapshot.derived``), then shared by every step.
    """
    return snap.derived(("line_facts", k), lambda: _line_facts(snap, k))


def order_facts(snap: Snapshot, k: int) -> ibis.Table:
    """One row per order: value, costs, whether fully returned within k days, delivery timing."""
    return snap.derived(("order_facts", k), lambda: _order_facts(snap, k))


def returns_of_lines(snap: Snapshot, lines: ibis.Table, k: int) -> ibis.Table:
    """The returns of ``lines`` (which carry ``line_id`` and ``delivered_ts``) requested within k days
    of delivery, with their ``cost``; the lines' other columns come along."""
    r = snap.tables["returns"].join(lines, "line_id")
    r = r.filter(returned_within(r, k))
    return r.mutate(cost=return_cost(r))


def _line_facts(snap: Snapshot, k: int) -> ibis.Table:
    o = orders_with_weeks(snap)
    lines = snap.tables["order_lines"].join(o, "order_id")
    # a return needs only its line's delivery: joined without the orders' customer_type window, which
    # the engine would otherwise evaluate a second time (docs/benchmarks.md)
    orders = snap.tables["orders"].select("order_id", "delivered_ts")
    delivery = snap.tables["order_lines"].select("line_id", "order_id").join(orders, "order_id")
    r = snap.tables["returns"].join(delivery.select("line_id", "delivered_ts"), "line_id")
    within = returned_within(r, k)
    per_line = r.group_by("line_id").agg(
        returned_units_k=ibis.ifelse(within, r.quantity, 0).sum(),
        return_cost_k=ibis.ifelse(within, return_cost(r), 0.0).sum(),
    )
    f = lines.left_join(per_line, "line_id").drop("line_id_right")
    gross = f.quantity * f.unit_price
    return f.mutate(
        units=f.quantity,
        gross=gross,
        net=gross - f.discount_amount,
        goods_cost=f.quantity * f.unit_cost,
        returned_units_k=f.returned_units_k.fill_null(0),
        return_cost_k=f.return_cost_k.fill_null(0.0),
    )


def _order_facts(snap: Snapshot, k: int) -> ibis.Table:
    lf = line_facts(snap, k)
    per_order = lf.group_by("order_id").agg(
        units=lf.units.sum(),
        net=lf.net.sum(),
        goods_cost=lf.goods_cost.sum(),
        returned_units_k=lf.returned_units_k.sum(),
        return_cost_k=lf.return_cost_k.sum(),
    )
    o = orders_with_weeks(snap).join(per_order, "order_id")
    seconds = o.delivered_ts.epoch_seconds().cast("int64") - o.order_ts.epoch_seconds().cast("int64")
    return o.mutate(
        fully_returned_k=(o.returned_units_k >= o.units) & (o.units > 0),
        on_time=o.delivered_ts.cast("date") <= o.promised_delivery_date,
        days_to_delivery=seconds.cast("float64") / 86400.0,
    )


#: The columns of an exposure's order lines, as every per-arm form reads them (``metrics.forms.ArmData``).
EXPOSURE_COLUMNS = ("line_id", "order_id", "customer_id", "delivered_ts", "returned_ts", "units", "returned_units",
                    "return_reason", "discount_amount", "gross", "net", "return_cost_k")


def with_first_return(snap: Snapshot, lines: ibis.Table) -> ibis.Table:
    """``lines`` (line facts) with each line's first return request, its returned units and its return reason
    (step 4's exposure and step 3's A/A reading of the baseline read lines the same way).

    ``return_reason``: the reason code of the line's returns (the smallest code when one line was returned in
    requests of different reasons, which is rare and must not split a line): the timing check compares lags
    within each reason, since reasons have their own timing (``stats.delay``)."""
    r = snap.tables["returns"]
    first = r.group_by("line_id").agg(returned_ts=r.requested_ts.min(), returned_units=r.quantity.sum(),
                                      return_reason=r.reason_code.min())
    return lines.left_join(first, "line_id").drop("line_id_right")


def assigned_customers(snap: Snapshot, experiment_id: str) -> ibis.Table:
    """One row per customer assigned to the experiment, with the arm and the first assignment time
    (a repeated assignment row must not count twice)."""
    a = snap.tables["assignments"]
    a = a.filter(a.experiment_id == experiment_id)
    return a.group_by(["customer_id", "variant"]).agg(assigned_ts=a.assigned_ts.min())


def return_lag_histogram(snap: Snapshot, horizon_days: int = 90) -> ibis.Table:
    """The shop's returns per whole day of lag, for lines delivered at least ``horizon_days`` before the cut.

    One row per whole day d = ceil(days from delivery to return request) from 0 (requested by the
    delivery instant, or stamped before it, as ``stats.lag`` counts it) to ``horizon_days``, with
    ``returns`` (return rows) and ``units`` (returned quantity); the returns requested more than
    ``horizon_days`` after delivery are one row with a null ``lag_day``. A lag within k days
    (``returned_within``: requested_ts <= delivered_ts + k days) is a day d <= k for whole k.

    Only lines delivered at least ``horizon_days`` before the snapshot's cutoff count: each of them has
    had the whole horizon to be returned, so the days 0 to ``horizon_days`` are not truncated (a recent
    line's late returns are not seen yet and would make returns look earlier than they are); the
    null-day row is a lower bound (seen only for the older lines). The aggregation runs in the
    database and at most ``horizon_days`` + 2 rows leave it; ``stats.delay.return_window_from_histogram``
    turns it into the share within k and the days holding 90 % of the returns. Portable expressions
    only (epoch seconds, ceil, comparisons: DuckDB, PostgreSQL, Spark).
    """
    orders = snap.tables["orders"]
    since = ibis.literal(snap.cutoff - dt.timedelta(days=horizon_days))
    old = orders.filter(orders.delivered_ts.notnull() & (orders.delivered_ts <= since))
    delivery = snap.tables["order_lines"].select("line_id", "order_id").join(
        old.select("order_id", "delivered_ts"), "order_id")
    r = snap.tables["returns"].join(delivery.select("line_id", "delivered_ts"), "line_id")
    seconds = r.requested_ts.epoch_seconds().cast("int64") - r.delivered_ts.epoch_seconds().cast("int64")
    day = (seconds.cast("float64") / 86400.0).ceil().cast("int64")
    day = ibis.ifelse(day < 0, 0, day)
    r = r.mutate(lag_day=ibis.ifelse(day > horizon_days, ibis.null("int64"), day))
    return r.group_by("lag_day").agg(returns=r.count(), units=r.quantity.sum()).order_by("lag_day")
