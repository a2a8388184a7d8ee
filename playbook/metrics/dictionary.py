"""The metric dictionary: every metric a named, documented definition, computed per ISO week and slice.

Each definition states its numerator, denominator, time window (which weekly cohort a row
belongs to) and unit of analysis. Computation happens in the engine through ibis; what comes
back to pandas is one row per (metric, week, slice value) with numerator, denominator and value.

Maturity: returns arrive days after delivery, so a metric that counts returns is only shown for
weeks whose units have had the full return window (``return_window_days``, k). A week that is
not mature yet is reported as such, never as a low rate.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import ibis
import pandas as pd

from playbook.core.settings import SLICE_COLUMNS, MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Snapshot

SHOP = "all"  # the slice column value meaning "the whole shop"


@dataclass(frozen=True)
class MetricDefinition:
    """A documented metric: what is divided by what, over which weekly cohort, for which units."""

    name: str
    title: str
    numerator: str
    denominator: str
    window: str
    unit: str
    format: str  # percent | points | days | currency | number
    good_direction: str  # higher | lower
    needs: tuple[str, ...]
    slices: tuple[str, ...]
    maturity: str = "none"  # none | delivery | order
    scale: float = 1.0

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def return_rate_name(k: int) -> str:
    return f"return_rate_{k}d"


def definitions(settings: MetricSettings) -> dict[str, MetricDefinition]:
    """The metric dictionary for these settings (the return window k names the return rate)."""
    k = settings.return_window_days
    line_slices = SLICE_COLUMNS
    order_slices = ("channel", "region", "customer_type")
    defs = [
        MetricDefinition(
            return_rate_name(k), f"Return rate within {k} days of delivery",
            f"units whose return was requested within {k} days of delivery",
            "units delivered", "delivery week (units delivered that week)", "order line unit",
            "percent", "lower", ("orders", "order_lines", "returns"), line_slices, "delivery",
        ),
        MetricDefinition(
            "return_cost_ratio", "Return cost ratio",
            f"refunds + return shipping + processing costs of returns requested within {k} days of delivery",
            "net revenue (gross - discount) of the same delivered units", "delivery week",
            "order line", "percent", "lower", ("orders", "order_lines", "returns"), line_slices, "delivery",
        ),
        MetricDefinition(
            "reason_mix", "Reason mix",
            f"returned units of each reason code (returns within {k} days of delivery)",
            "all returned units of the slice", "delivery week", "returned unit", "percent", "lower",
            ("orders", "order_lines", "returns"), line_slices, "delivery",
        ),
        MetricDefinition(
            "conversion_rate", "Conversion rate", "orders placed", "sessions", "order week",
            "order / session", "percent", "higher", ("orders", "order_lines", "sessions"), ("channel", "category"),
        ),
        MetricDefinition(
            "qualified_conversion_rate", "Qualified conversion rate",
            f"orders not fully returned within {k} days of delivery", "sessions", "order week",
            "order / session", "percent", "higher", ("orders", "order_lines", "returns", "sessions"),
            ("channel", "category"), "order",
        ),
        MetricDefinition(
            "discount_depth", "Discount depth", "discount amount", "gross line value (quantity x unit price)",
            "order week", "order line", "points", "lower", ("orders", "order_lines"), line_slices, scale=100.0,
        ),
        MetricDefinition(
            "contribution_per_100_sessions", "Contribution per 100 sessions",
            f"net revenue - unit costs - shipping - return costs (within {k} days) - marketing spend",
            "sessions / 100", "order week", "session", "currency", "higher",
            ("orders", "order_lines", "returns", "sessions", "marketing_spend"), ("channel",), "order", 100.0,
        ),
        MetricDefinition(
            "delivery_promise_kept", "Delivery promise kept",
            "orders delivered on or before the promised date", "orders delivered", "delivery week",
            "order", "percent", "higher", ("orders",), order_slices,
        ),
        MetricDefinition(
            "click_to_possession_days", "Click to possession (median days)",
            "median of days from order to delivery", "(median, no denominator)", "delivery week", "order",
            "days", "lower", ("orders",), order_slices,
        ),
        MetricDefinition(
            "contact_rate", "Contact rate", "customer contacts", "orders placed", "contact week / order week",
            "contact / order", "percent", "lower", ("orders", "contacts"), (),
        ),
        MetricDefinition(
            "wismo_share", "WISMO share", "contacts with cause wismo (where is my order)", "contacts",
            "contact week", "contact", "percent", "lower", ("contacts",), (),
        ),
        MetricDefinition(
            "contact_cost", "Contact cost",
            f"sum of contact costs (empty cost = default {settings.default_contact_cost:g})", "(total, no denominator)",
            "contact week", "contact", "currency", "lower", ("contacts",), (),
        ),
        MetricDefinition(
            "closure_rate", "Action closure rate", "actions planned for the week closed by the week's end",
            "actions planned for the week", "planned week", "action", "percent", "higher", ("actions",), (),
        ),
        MetricDefinition(
            "net_cac", "Net CAC after returns", "marketing spend",
            f"new customers whose first order was not fully returned within {k} days of delivery", "order week",
            "new customer", "currency", "lower", ("orders", "order_lines", "returns", "marketing_spend"),
            ("channel",), "order",
        ),
        MetricDefinition(
            "revenue_per_visitor", "Revenue per visitor", "net revenue (gross - discount)", "sessions",
            "order week", "session", "currency", "higher", ("orders", "order_lines", "sessions"), ("channel", "category"),
        ),
    ]
    return {d.name: d for d in defs}


# --- facts in the engine -------------------------------------------------------------------

def _week(ts: ibis.Value) -> ibis.Value:
    return ts.truncate("W").cast("date")


def _orders(snap: Snapshot) -> ibis.Table:
    o = snap.tables["orders"]
    first = ibis.row_number().over(group_by=o.customer_id, order_by=[o.order_ts, o.order_id])
    return o.mutate(
        customer_type=ibis.ifelse(first == 0, "first_time", "repeat"),
        order_week=_week(o.order_ts),
        delivery_week=_week(o.delivered_ts),
    )


def line_facts(snap: Snapshot, k: int) -> ibis.Table:
    """One row per order line with its order's attributes and its returns within k days of delivery.

    Materialized once per snapshot and k (``Snapshot.derived``), then shared by every step.
    """
    return snap.derived(("line_facts", k), lambda: _line_facts(snap, k))


def order_facts(snap: Snapshot, k: int) -> ibis.Table:
    """One row per order: value, costs, whether fully returned within k days, delivery timing."""
    return snap.derived(("order_facts", k), lambda: _order_facts(snap, k))


def _line_facts(snap: Snapshot, k: int) -> ibis.Table:
    o = _orders(snap)
    lines = snap.tables["order_lines"].join(o, "order_id")
    r = snap.tables["returns"].join(lines.select("line_id", "delivered_ts"), "line_id")
    within = r.delivered_ts.notnull() & (r.requested_ts <= r.delivered_ts + ibis.interval(days=k))
    cost = r.refund_amount + r.return_shipping_cost + r.processing_cost
    per_line = r.group_by("line_id").agg(
        returned_units_k=ibis.ifelse(within, r.quantity, 0).sum(),
        return_cost_k=ibis.ifelse(within, cost, 0.0).sum(),
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
    o = _orders(snap).join(per_order, "order_id")
    seconds = o.delivered_ts.epoch_seconds().cast("int64") - o.order_ts.epoch_seconds().cast("int64")
    return o.mutate(
        fully_returned_k=(o.returned_units_k >= o.units) & (o.units > 0),
        on_time=o.delivered_ts.cast("date") <= o.promised_delivery_date,
        days_to_delivery=seconds.cast("float64") / 86400.0,
    )


# --- weekly aggregation ---------------------------------------------------------------------

def _by_week(table: ibis.Table, week: str, slice_col: str | None, **aggs: ibis.Value) -> pd.DataFrame:
    keys = [table[week].name("week_start")]
    if slice_col:
        keys.append(table[slice_col].cast("string").name("slice_value"))
    df = table.group_by(keys).agg(**aggs).to_pandas()
    df = df[df["week_start"].notna()].copy()  # e.g. orders not delivered yet have no delivery week
    if not slice_col:
        df["slice_value"] = SHOP
    df["week_start"] = pd.to_datetime(df["week_start"]).dt.date
    return df


def _slices(defn: MetricDefinition, settings: MetricSettings) -> list[str | None]:
    return [None] + [s for s in defn.slices if s in settings.slices]


@dataclass
class MetricResults:
    """All weekly values of one run: ``frame`` (long) plus metrics that could not be computed."""

    frame: pd.DataFrame
    unavailable: dict[str, str]
    definitions: dict[str, MetricDefinition]
    reason_mix: pd.DataFrame
    week: IsoWeek
    settings: MetricSettings

    def series(self, metric: str, slice_col: str = SHOP, slice_value: str = SHOP) -> pd.DataFrame:
        f = self.frame
        out = f[(f.metric == metric) & (f.slice == slice_col) & (f.slice_value == slice_value)]
        return out.sort_values("week_start").reset_index(drop=True)


def _ratio_rows(defn, parts: pd.DataFrame, slice_col: str | None) -> pd.DataFrame:
    parts = parts.copy()
    parts["metric"] = defn.name
    parts["slice"] = slice_col or SHOP
    den = parts["denominator"].astype(float)
    parts["value"] = (parts["numerator"].astype(float) / den.where(den > 0)) * defn.scale
    return parts


def _join_parts(num: pd.DataFrame, den: pd.DataFrame) -> pd.DataFrame:
    out = num.merge(den, on=["week_start", "slice_value"], how="outer")
    out["numerator"] = out["numerator"].fillna(0.0)
    return out


def _compute_one(name: str, defn: MetricDefinition, snap: Snapshot, settings: MetricSettings,
                 lf: ibis.Table, of: ibis.Table) -> pd.DataFrame:
    rows = []
    for s in _slices(defn, settings):
        rows.append(_COMPUTE[name if not name.startswith("return_rate_") else "return_rate"](snap, settings, lf, of, s, defn))
    return pd.concat(rows, ignore_index=True)


def _return_rate(snap, settings, lf, of, s, defn):
    d = lf.filter(lf.delivered_ts.notnull())
    parts = _by_week(d, "delivery_week", s, numerator=d.returned_units_k.sum(), denominator=d.units.sum())
    return _ratio_rows(defn, parts, s)


def _return_cost_ratio(snap, settings, lf, of, s, defn):
    d = lf.filter(lf.delivered_ts.notnull())
    parts = _by_week(d, "delivery_week", s, numerator=d.return_cost_k.sum(), denominator=d.net.sum())
    return _ratio_rows(defn, parts, s)


def _sessions_by_week(snap, s):
    ss = snap.tables["sessions"]
    ss = ss.mutate(week_start=_week(ss.date.cast("timestamp")))
    return _by_week(ss, "week_start", s, denominator=ss.sessions.sum())


def _conversion(snap, settings, lf, of, s, defn, qualified=False):
    if s == "category":
        src = lf
        if qualified:
            q = of.filter(~of.fully_returned_k).select("order_id")
            src = lf.semi_join(q, "order_id")
        num = _by_week(src, "order_week", s, numerator=src.order_id.nunique())
    else:
        src = of.filter(~of.fully_returned_k) if qualified else of
        num = _by_week(src, "order_week", s, numerator=src.count())
    return _ratio_rows(defn, _join_parts(num, _sessions_by_week(snap, s)), s)


def _qualified_conversion(snap, settings, lf, of, s, defn):
    return _conversion(snap, settings, lf, of, s, defn, qualified=True)


def _discount_depth(snap, settings, lf, of, s, defn):
    parts = _by_week(lf, "order_week", s, numerator=lf.discount_amount.sum(), denominator=lf.gross.sum())
    return _ratio_rows(defn, parts, s)


def _spend_by_week(snap, s):
    sp = snap.tables["marketing_spend"]
    sp = sp.mutate(week_start=_week(sp.date.cast("timestamp")))
    return _by_week(sp, "week_start", s, spend=sp.spend.sum())


def _contribution(snap, settings, lf, of, s, defn):
    money = _by_week(
        of, "order_week", s,
        margin=(of.net - of.goods_cost - of.shipping_cost - of.return_cost_k).sum(),
    )
    parts = money.merge(_spend_by_week(snap, s), on=["week_start", "slice_value"], how="outer")
    parts = parts.merge(_sessions_by_week(snap, s), on=["week_start", "slice_value"], how="outer")
    parts["numerator"] = parts["margin"].fillna(0.0) - parts["spend"].fillna(0.0)
    return _ratio_rows(defn, parts[["week_start", "slice_value", "numerator", "denominator"]], s)


def _promise(snap, settings, lf, of, s, defn):
    d = of.filter(of.delivered_ts.notnull())
    parts = _by_week(d, "delivery_week", s, numerator=ibis.ifelse(d.on_time, 1, 0).sum(), denominator=d.count())
    return _ratio_rows(defn, parts, s)


def _possession(snap, settings, lf, of, s, defn):
    d = of.filter(of.delivered_ts.notnull())
    parts = _by_week(d, "delivery_week", s, numerator=d.days_to_delivery.median(), denominator=d.count())
    out = _ratio_rows(defn, parts, s)
    out["value"] = out["numerator"].astype(float)
    return out


def _contacts(snap):
    c = snap.tables["contacts"]
    return c.mutate(week_start=_week(c.contact_ts))


def _contact_rate(snap, settings, lf, of, s, defn):
    c = _contacts(snap)
    num = _by_week(c, "week_start", s, numerator=c.count())
    den = _by_week(of, "order_week", s, denominator=of.count())
    return _ratio_rows(defn, _join_parts(num, den), s)


def _wismo(snap, settings, lf, of, s, defn):
    c = _contacts(snap)
    parts = _by_week(c, "week_start", s, numerator=ibis.ifelse(c.cause == "wismo", 1, 0).sum(), denominator=c.count())
    return _ratio_rows(defn, parts, s)


def _contact_cost(snap, settings, lf, of, s, defn):
    c = _contacts(snap)
    parts = _by_week(
        c, "week_start", s,
        numerator=c.cost.fill_null(float(settings.default_contact_cost)).sum(), denominator=c.count(),
    )
    out = _ratio_rows(defn, parts, s)
    out["value"] = out["numerator"].astype(float)
    return out


def _closure(snap, settings, lf, of, s, defn):
    a = snap.tables["actions"]
    counts = (
        a.group_by(["week", "status", a.closed_ts.truncate("D").cast("date").name("closed_day")])
        .agg(n=a.count())
        .to_pandas()
    )
    if counts.empty:
        return pd.DataFrame(columns=["week_start", "slice_value", "numerator", "denominator", "metric", "slice", "value"])
    counts["week_start"] = counts["week"].map(lambda w: IsoWeek.parse(w).monday)
    sunday = counts["week_start"].map(lambda d: d + dt.timedelta(days=6))
    closed_day = pd.to_datetime(counts["closed_day"]).dt.date
    in_time = (counts["status"] == "closed") & (closed_day.isna() | (closed_day <= sunday))
    counts["closed"] = counts["n"].where(in_time, 0)
    parts = counts.groupby("week_start", as_index=False).agg(numerator=("closed", "sum"), denominator=("n", "sum"))
    parts["slice_value"] = SHOP
    return _ratio_rows(defn, parts, s)


def _net_cac(snap, settings, lf, of, s, defn):
    new = of.filter((of.customer_type == "first_time") & ~of.fully_returned_k)
    den = _by_week(new, "order_week", s, denominator=new.count())
    spend = _spend_by_week(snap, s).rename(columns={"spend": "numerator"})
    return _ratio_rows(defn, _join_parts(spend, den), s)


def _revenue_per_visitor(snap, settings, lf, of, s, defn):
    num = _by_week(lf, "order_week", s, numerator=lf.net.sum())
    return _ratio_rows(defn, _join_parts(num, _sessions_by_week(snap, s)), s)


_COMPUTE: dict[str, Callable] = {
    "return_rate": _return_rate,
    "return_cost_ratio": _return_cost_ratio,
    "conversion_rate": _conversion,
    "qualified_conversion_rate": _qualified_conversion,
    "discount_depth": _discount_depth,
    "contribution_per_100_sessions": _contribution,
    "delivery_promise_kept": _promise,
    "click_to_possession_days": _possession,
    "contact_rate": _contact_rate,
    "wismo_share": _wismo,
    "contact_cost": _contact_cost,
    "closure_rate": _closure,
    "net_cac": _net_cac,
    "revenue_per_visitor": _revenue_per_visitor,
}


def reason_mix(snap: Snapshot, settings: MetricSettings, lf: ibis.Table | None = None) -> pd.DataFrame:
    """Returned units within k days of delivery per delivery week, slice and reason code, with shares."""
    k = settings.return_window_days
    lf = line_facts(snap, k) if lf is None else lf
    r = snap.tables["returns"].join(
        lf.select("line_id", "delivered_ts", "delivery_week", *settings.slices), "line_id"
    )
    r = r.filter(r.delivered_ts.notnull() & (r.requested_ts <= r.delivered_ts + ibis.interval(days=k)))
    frames = []
    for s in [None, *settings.slices]:
        keys = [r.delivery_week.name("week_start"), r.reason_code]
        if s:
            keys.append(r[s].cast("string").name("slice_value"))
        df = r.group_by(keys).agg(units=r.quantity.sum()).to_pandas()
        if not s:
            df["slice_value"] = SHOP
        df["slice"] = s or SHOP
        frames.append(df)
    mix = pd.concat(frames, ignore_index=True)
    mix["week_start"] = pd.to_datetime(mix["week_start"]).dt.date
    total = mix.groupby(["week_start", "slice", "slice_value"])["units"].transform("sum")
    mix["share"] = mix["units"] / total
    return mix.sort_values(["slice", "slice_value", "week_start", "reason_code"]).reset_index(drop=True)


def is_mature(week_start: dt.date, maturity: str, snap_week: IsoWeek, settings: MetricSettings) -> bool:
    """Whether every unit of this weekly cohort has had the follow-up the metric needs by the cut."""
    if maturity == "none":
        return week_start <= snap_week.monday
    wait = settings.return_window_days + (settings.delivery_allowance_days if maturity == "order" else 0)
    return week_start + dt.timedelta(days=6 + wait) <= snap_week.sunday


def matches(table: ibis.Table, filters: dict[str, str]) -> ibis.Value:
    """The engine condition "row belongs to the cohort" for a filter such as {"category": "knitwear"}."""
    cond = ibis.literal(True)
    for col, value in filters.items():
        cond &= table[col].cast("string") == value
    return cond


# --- what a change is worth ------------------------------------------------------------------------

@dataclass(frozen=True)
class CohortWeek:
    """One average recent week of a cohort: units delivered, their gross value, cost per returned unit."""

    units: float
    gross: float
    cost_per_return: float | None
    weeks: tuple[dt.date, ...]


def cohort_week(snap: Snapshot, settings: MetricSettings, filters: dict[str, str], n_weeks: int = 4) -> CohortWeek:
    """The cohort's average over its ``n_weeks`` latest delivery weeks with k days of follow-up (in the engine)."""
    oldest = max(snap.week.shift(-(n_weeks + 8)), snap.first_week())
    weeks, week = [], snap.week
    while len(weeks) < n_weeks and week >= oldest:
        if is_mature(week.monday, "delivery", snap.week, settings):
            weeks.append(week.monday)
        week = week.shift(-1)
    lf = line_facts(snap, settings.return_window_days)
    lf = lf.filter(lf.delivery_week.isin(weeks) & matches(lf, filters))
    row = lf.agg(units=lf.units.sum(), gross=lf.gross.sum(), returned=lf.returned_units_k.sum(),
                 cost=lf.return_cost_k.sum()).to_pandas().iloc[0]
    n = max(len(weeks), 1)
    returned = float(row["returned"] or 0)
    return CohortWeek(float(row["units"] or 0) / n, float(row["gross"] or 0) / n,
                      float(row["cost"]) / returned if returned else None, tuple(sorted(weeks)))


def money_per_week(defn: MetricDefinition, change: float | None, week: CohortWeek) -> float | None:
    """Money saved per week on the whole cohort by ``change`` of the metric (in its reported unit).

    A return rate: returned units avoided x the cohort's cost per returned unit; discount depth:
    the discount avoided on the cohort's gross. Other metrics have no money value here (None): their
    changes are never added to money.
    """
    if change is None or change != change:
        return None
    fraction = change / defn.scale
    if defn.name.startswith("return_rate_") and week.cost_per_return is not None:
        return -fraction * week.units * week.cost_per_return
    if defn.name == "discount_depth":
        return -fraction * week.gross
    return None


def compute_metrics(snap: Snapshot, settings: MetricSettings) -> MetricResults:
    """Every metric of the dictionary, per ISO week (up to the snapshot's week) and per slice."""
    defs = definitions(settings)
    k = settings.return_window_days
    lf = line_facts(snap, k)
    of = order_facts(snap, k)
    frames, unavailable = [], {}
    for name, defn in defs.items():
        missing = [t for t in defn.needs if not snap.has(t)]
        if missing:
            unavailable[name] = snap.missing(missing[0])  # "no contacts table", or "no contacts rows" if empty
            continue
        if name == "reason_mix":  # a distribution, not one ratio: computed by reason_mix() below
            continue
        frames.append(_compute_one(name, defn, snap, settings, lf, of))
    frame = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    frame = frame[frame["week_start"] <= snap.week.monday].copy()
    maturity = frame["metric"].map(lambda m: defs[m].maturity)
    frame["mature"] = [is_mature(w, m, snap.week, settings) for w, m in zip(frame["week_start"], maturity)]
    frame["week"] = frame["week_start"].map(lambda d: str(IsoWeek.of(d)))
    cols = ["metric", "week", "week_start", "slice", "slice_value", "numerator", "denominator", "value", "mature"]
    frame = frame[cols].sort_values(["metric", "slice", "slice_value", "week_start"]).reset_index(drop=True)
    mix = reason_mix(snap, settings, lf)
    mix = mix[mix["week_start"] <= snap.week.monday].reset_index(drop=True)
    mix["mature"] = [is_mature(w, "delivery", snap.week, settings) for w in mix["week_start"]]
    return MetricResults(frame, unavailable, defs, mix, snap.week, settings)


def dictionary_frame(settings: MetricSettings) -> pd.DataFrame:
    """The metric dictionary as a table (name, numerator, denominator, window, unit, slices)."""
    return pd.DataFrame([
        {"metric": d.name, "title": d.title, "numerator": d.numerator, "denominator": d.denominator,
         "weekly cohort": d.window, "unit of analysis": d.unit, "better when": d.good_direction,
         "maturity": {"none": "immediate", "delivery": f"{settings.return_window_days} days after the delivery week",
                      "order": f"{settings.return_window_days + settings.delivery_allowance_days} days "
                               "after the order week"}[d.maturity],
         "needs tables": ", ".join(d.needs), "slices": ", ".join(d.slices) or "shop only"}
        for d in definitions(settings).values()
    ])


def dictionary_markdown(settings: MetricSettings) -> str:
    """``docs/metrics.md``, generated from the definitions so the page cannot drift from the code."""
    frame = dictionary_frame(settings)
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    rows = "".join("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |\n" for row in frame.itertuples(index=False))
    return (
        "# Metric dictionary\n\n"
        "Generated from `playbook/metrics/dictionary.py` by `make docs/metrics.md` (a test checks it is current), with the\n"
        f"default settings (return window k = {settings.return_window_days} days). Every metric is computed per ISO\n"
        "week in the engine, shop-wide and per slice. A metric whose table is missing is reported as\n"
        "\"not available (no ... table)\", never as zero; a week that is not mature yet is reported as such.\n\n"
        + head + rows
    )


if __name__ == "__main__":
    import sys

    sys.stdout.write(dictionary_markdown(MetricSettings()))
