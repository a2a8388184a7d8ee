"""The metric dictionary: every metric one :class:`~playbook.metrics.metric.Metric`, defined in this file.

Each metric states its numerator, denominator, time window (which weekly cohort a row belongs
to), unit of analysis and good direction, and names its forms: weekly per slice (step 1), per arm
(randomized experiments), per slice cell and week (pre/post), and its money value. Computation
happens in the engine through ibis; what comes back to pandas is one row per (metric, week, slice
value) with numerator, denominator and value.

Maturity: returns arrive days after delivery, so a metric that counts returns is only shown for
weeks whose units have had the full return window (``return_window_days``, k). A week that is
not mature yet is reported as such, never as a low rate.

Adding a metric: write its weekly parts function and its ``Metric(...)`` entry in
:func:`definitions` (and a test); the config, the experiments table checks and docs/metrics.md
read it from here.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import ibis
import pandas as pd

from playbook.core.settings import SLICE_COLUMNS, MetricSettings
from playbook.core.vocabulary import Design, Direction
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Snapshot
from playbook.data.facts import (
    Maturity,
    is_mature,
    line_facts,
    matches,
    order_facts,
    returns_of_lines,
    week_of,
)
from playbook.data.validation import KnownMetrics
from playbook.metrics.forms import (
    ContactsPerExposedOrder,
    ContactsPerOrderPanel,
    LinePanel,
    MeanPerAssignedCustomer,
    RatioOfCustomerSums,
    ReturnsWithinWindow,
    SessionsConversionPanel,
    WeeklyForm,
    WeeklyInputs,
)
from playbook.metrics.metric import CohortWeek, Metric, discount_money, returned_units_money

SHOP = "all"  # the slice column value meaning "the whole shop"
HIGHER, LOWER = Direction.HIGHER, Direction.LOWER
_RETURN_RATE = re.compile(r"return_rate_(\d+)d")


def return_rate_name(k: int) -> str:
    return f"return_rate_{k}d"


def return_rate(k: int) -> Metric:
    """The return rate within k days of delivery: the family ``return_rate_<k>d`` (a plan may register
    its own k, read by :func:`metric_named`)."""
    return Metric(
        return_rate_name(k), f"Return rate within {k} days of delivery",
        f"units whose return was requested within {k} days of delivery",
        "units delivered", "delivery week (units delivered that week)", "order line unit",
        "percent", LOWER, ("orders", "order_lines", "returns"), SLICE_COLUMNS, Maturity.DELIVERY,
        weekly=WeeklyForm(lambda i, s: _return_rate(i, s)),
        per_arm=ReturnsWithinWindow(k),
        panel=LinePanel(lambda lf: lf.returned_units_k.sum(), lambda lf: lf.units.sum(), Maturity.DELIVERY),
        money=returned_units_money, return_window_days=k,
    )


def definitions(settings: MetricSettings) -> dict[str, Metric]:
    """The metric dictionary for these settings (the return window k names the return rate)."""
    k = settings.return_window_days
    line_slices = SLICE_COLUMNS
    order_slices = ("channel", "region", "customer_type")
    defs = [
        return_rate(k),
        Metric(
            "return_cost_ratio", "Return cost ratio",
            f"refunds + return shipping + processing costs of returns requested within {k} days of delivery",
            "net revenue (gross - discount) of the same delivered units", "delivery week",
            "order line", "percent", LOWER, ("orders", "order_lines", "returns"), line_slices, Maturity.DELIVERY,
            weekly=WeeklyForm(_return_cost_ratio),
            per_arm=RatioOfCustomerSums("return_cost_k", "net"),
            panel=LinePanel(lambda lf: lf.return_cost_k.sum(), lambda lf: lf.net.sum(), Maturity.DELIVERY),
            return_window_days=k,
        ),
        Metric(
            "reason_mix", "Reason mix",
            f"returned units of each reason code (returns within {k} days of delivery)",
            "all returned units of the slice", "delivery week", "returned unit", "percent", LOWER,
            ("orders", "order_lines", "returns"), line_slices, Maturity.DELIVERY, shares=True,  # see reason_mix()
        ),
        Metric(
            "conversion_rate", "Conversion rate", "orders placed", "sessions", "order week",
            "order / session", "percent", HIGHER, ("orders", "order_lines", "sessions"), ("channel", "category"),
            weekly=WeeklyForm(_conversion), panel=SessionsConversionPanel(),
        ),
        Metric(
            "qualified_conversion_rate", "Qualified conversion rate",
            f"orders not fully returned within {k} days of delivery", "sessions", "order week",
            "order / session", "percent", HIGHER, ("orders", "order_lines", "returns", "sessions"),
            ("channel", "category"), Maturity.ORDER, weekly=WeeklyForm(_qualified_conversion),
        ),
        Metric(
            "discount_depth", "Discount depth", "discount amount", "gross line value (quantity x unit price)",
            "order week", "order line", "points", LOWER, ("orders", "order_lines"), line_slices, scale=100.0,
            weekly=WeeklyForm(_discount_depth),
            per_arm=RatioOfCustomerSums("discount_amount", "gross"),
            panel=LinePanel(lambda lf: lf.discount_amount.sum(), lambda lf: lf.gross.sum()),
            money=discount_money,
        ),
        Metric(
            "contribution_per_100_sessions", "Contribution per 100 sessions",
            f"net revenue - unit costs - shipping - return costs (within {k} days) - marketing spend",
            "sessions / 100", "order week", "session", "currency", HIGHER,
            ("orders", "order_lines", "returns", "sessions", "marketing_spend"), ("channel",), Maturity.ORDER, 100.0,
            weekly=WeeklyForm(_contribution),
        ),
        Metric(
            "delivery_promise_kept", "Delivery promise kept",
            "orders delivered on or before the promised date", "orders delivered", "delivery week",
            "order", "percent", HIGHER, ("orders",), order_slices, weekly=WeeklyForm(_promise),
        ),
        Metric(
            "click_to_possession_days", "Click to possession (median days)",
            "median of days from order to delivery", "(median, no denominator)", "delivery week", "order",
            "days", LOWER, ("orders",), order_slices, weekly=WeeklyForm(_possession, value_is_numerator=True),
        ),
        Metric(
            "contact_rate", "Contact rate", "customer contacts", "orders placed", "contact week / order week",
            "contact / order", "percent", LOWER, ("orders", "contacts"), (),
            weekly=WeeklyForm(_contact_rate), per_arm=ContactsPerExposedOrder(), panel=ContactsPerOrderPanel(),
        ),
        Metric(
            "wismo_share", "WISMO share", "contacts with cause wismo (where is my order)", "contacts",
            "contact week", "contact", "percent", LOWER, ("contacts",), (), weekly=WeeklyForm(_wismo),
        ),
        Metric(
            "contact_cost", "Contact cost",
            f"sum of contact costs (empty cost = default {settings.default_contact_cost:g})", "(total, no denominator)",
            "contact week", "contact", "currency", LOWER, ("contacts",), (),
            weekly=WeeklyForm(_contact_cost, value_is_numerator=True),
        ),
        Metric(
            "closure_rate", "Action closure rate", "actions planned for the week closed by the week's end",
            "actions planned for the week", "planned week", "action", "percent", HIGHER, ("actions",), (),
            weekly=WeeklyForm(_closure),
        ),
        Metric(
            "net_cac", "Net CAC after returns", "marketing spend",
            f"new customers whose first order was not fully returned within {k} days of delivery", "order week",
            "new customer", "currency", LOWER, ("orders", "order_lines", "returns", "marketing_spend"),
            ("channel",), Maturity.ORDER, weekly=WeeklyForm(_net_cac),
        ),
        Metric(
            "revenue_per_visitor", "Revenue per visitor", "net revenue (gross - discount)", "sessions",
            "order week", "session", "currency", HIGHER, ("orders", "order_lines", "sessions"), ("channel", "category"),
            weekly=WeeklyForm(_revenue_per_visitor),
        ),
        Metric(
            "net_revenue_per_customer", "Net revenue per assigned customer",
            "net revenue (gross - discount) of the exposed lines", "customers assigned to the arm (zero if no order)",
            "experiment window", "assigned customer", "currency", HIGHER, ("orders", "order_lines", "assignments"), (),
            per_arm=MeanPerAssignedCustomer("net"),  # an experiment's guardrail: no weekly value
        ),
    ]
    return {d.name: d for d in defs}


def metric_named(name: str, settings: MetricSettings) -> Metric | None:
    """The metric called ``name``: a dictionary entry, or a return rate with its own k (``return_rate_7d``)."""
    found = definitions(settings).get(name)
    if found is None and (family := _RETURN_RATE.fullmatch(name)):
        found = return_rate(int(family.group(1)))
    return found


def known_metrics(settings: MetricSettings) -> KnownMetrics:
    """What the data contract accepts as an experiment's ``primary_metric``: a dictionary name or a
    return rate with its own window (whether the design can compute it is the comparison's say)."""
    names = sorted(definitions(settings))
    return KnownMetrics(lambda name: metric_named(name, settings) is not None,
                        ", ".join(names) + ", or return_rate_<k>d for another window of k days")


def computable_in(design: Design, settings: MetricSettings) -> list[str]:
    """The dictionary's metrics that can be compared in an experiment of ``design`` (a return rate with
    another window, ``return_rate_<k>d``, too: :func:`metric_named` builds it)."""
    return [m.name for m in definitions(settings).values() if m.computable_in(design)]


# --- weekly parts, one function per metric -------------------------------------------------------

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


def _join_parts(num: pd.DataFrame, den: pd.DataFrame) -> pd.DataFrame:
    out = num.merge(den, on=["week_start", "slice_value"], how="outer")
    out["numerator"] = out["numerator"].fillna(0.0)
    return out


def _delivered(i: WeeklyInputs) -> ibis.Table:
    return i.lines.filter(i.lines.delivered_ts.notnull())


def _return_rate(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    d = _delivered(i)
    return _by_week(d, "delivery_week", s, numerator=d.returned_units_k.sum(), denominator=d.units.sum())


def _return_cost_ratio(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    d = _delivered(i)
    return _by_week(d, "delivery_week", s, numerator=d.return_cost_k.sum(), denominator=d.net.sum())


def _sessions_by_week(snap: Snapshot, s: str | None) -> pd.DataFrame:
    ss = snap.tables["sessions"]
    ss = ss.mutate(week_start=week_of(ss.date.cast("timestamp")))
    return _by_week(ss, "week_start", s, denominator=ss.sessions.sum())


def _conversion(i: WeeklyInputs, s: str | None, qualified: bool = False) -> pd.DataFrame:
    lf, of = i.lines, i.orders
    if s == "category":  # an order counts once in each category it bought from
        src = lf
        if qualified:
            src = lf.semi_join(of.filter(~of.fully_returned_k).select("order_id"), "order_id")
        num = _by_week(src, "order_week", s, numerator=src.order_id.nunique())
    else:
        src = of.filter(~of.fully_returned_k) if qualified else of
        num = _by_week(src, "order_week", s, numerator=src.count())
    return _join_parts(num, _sessions_by_week(i.snap, s))


def _qualified_conversion(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    return _conversion(i, s, qualified=True)


def _discount_depth(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    lf = i.lines
    return _by_week(lf, "order_week", s, numerator=lf.discount_amount.sum(), denominator=lf.gross.sum())


def _spend_by_week(snap: Snapshot, s: str | None) -> pd.DataFrame:
    sp = snap.tables["marketing_spend"]
    sp = sp.mutate(week_start=week_of(sp.date.cast("timestamp")))
    return _by_week(sp, "week_start", s, spend=sp.spend.sum())


def _contribution(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    of = i.orders
    money = _by_week(of, "order_week", s, margin=(of.net - of.goods_cost - of.shipping_cost - of.return_cost_k).sum())
    parts = money.merge(_spend_by_week(i.snap, s), on=["week_start", "slice_value"], how="outer")
    parts = parts.merge(_sessions_by_week(i.snap, s), on=["week_start", "slice_value"], how="outer")
    parts["numerator"] = parts["margin"].fillna(0.0) - parts["spend"].fillna(0.0)
    return parts[["week_start", "slice_value", "numerator", "denominator"]]


def _delivered_orders(i: WeeklyInputs) -> ibis.Table:
    return i.orders.filter(i.orders.delivered_ts.notnull())


def _promise(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    d = _delivered_orders(i)
    return _by_week(d, "delivery_week", s, numerator=ibis.ifelse(d.on_time, 1, 0).sum(), denominator=d.count())


def _possession(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    d = _delivered_orders(i)
    return _by_week(d, "delivery_week", s, numerator=d.days_to_delivery.median(), denominator=d.count())


def _contacts(snap: Snapshot) -> ibis.Table:
    c = snap.tables["contacts"]
    return c.mutate(week_start=week_of(c.contact_ts))


def _contact_rate(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    c = _contacts(i.snap)
    num = _by_week(c, "week_start", s, numerator=c.count())
    return _join_parts(num, _by_week(i.orders, "order_week", s, denominator=i.orders.count()))


def _wismo(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    c = _contacts(i.snap)
    return _by_week(c, "week_start", s, numerator=ibis.ifelse(c.cause == "wismo", 1, 0).sum(), denominator=c.count())


def _contact_cost(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    c = _contacts(i.snap)
    cost = c.cost.fill_null(float(i.settings.default_contact_cost))
    return _by_week(c, "week_start", s, numerator=cost.sum(), denominator=c.count())


def _closure(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    a = i.snap.tables["actions"]
    counts = (
        a.group_by(["week", "status", a.closed_ts.truncate("D").cast("date").name("closed_day")])
        .agg(n=a.count())
        .to_pandas()
    )
    if counts.empty:
        return pd.DataFrame(columns=["week_start", "slice_value", "numerator", "denominator"])
    counts["week_start"] = counts["week"].map(lambda w: IsoWeek.parse(w).monday)
    sunday = counts["week_start"].map(lambda d: d + dt.timedelta(days=6))
    closed_day = pd.to_datetime(counts["closed_day"]).dt.date
    in_time = (counts["status"] == "closed") & (closed_day.isna() | (closed_day <= sunday))
    counts["closed"] = counts["n"].where(in_time, 0)
    parts = counts.groupby("week_start", as_index=False).agg(numerator=("closed", "sum"), denominator=("n", "sum"))
    parts["slice_value"] = SHOP
    return parts


def _net_cac(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    of = i.orders
    new = of.filter((of.customer_type == "first_time") & ~of.fully_returned_k)
    den = _by_week(new, "order_week", s, denominator=new.count())
    spend = _spend_by_week(i.snap, s).rename(columns={"spend": "numerator"})
    return _join_parts(spend, den)


def _revenue_per_visitor(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
    num = _by_week(i.lines, "order_week", s, numerator=i.lines.net.sum())
    return _join_parts(num, _sessions_by_week(i.snap, s))


# --- the week's values ----------------------------------------------------------------------------

@dataclass
class MetricResults:
    """All weekly values of one run: ``frame`` (long) plus metrics that could not be computed."""

    frame: pd.DataFrame
    unavailable: dict[str, str]
    definitions: dict[str, Metric]
    reason_mix: pd.DataFrame
    week: IsoWeek
    settings: MetricSettings

    def series(self, metric: str, slice_col: str = SHOP, slice_value: str = SHOP) -> pd.DataFrame:
        f = self.frame
        out = f[(f.metric == metric) & (f.slice == slice_col) & (f.slice_value == slice_value)]
        return out.sort_values("week_start").reset_index(drop=True)


def reason_mix(snap: Snapshot, settings: MetricSettings, lf: ibis.Table | None = None) -> pd.DataFrame:
    """Returned units within k days of delivery per delivery week, slice and reason code, with shares."""
    k = settings.return_window_days
    lf = line_facts(snap, k) if lf is None else lf
    # materialized once (returns-sized): each slice groups it, where a database would join again per slice
    r = returns_of_lines(snap, lf.select("line_id", "delivered_ts", "delivery_week", *settings.slices), k).cache()
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


def compute_metrics(snap: Snapshot, settings: MetricSettings) -> MetricResults:
    """Every metric the baseline reports, per ISO week (up to the snapshot's week) and per slice.

    ``MetricResults.definitions`` holds those metrics only (experiment-only metrics are left out).
    """
    defs = {name: m for name, m in definitions(settings).items() if m.weekly_reported}
    k = settings.return_window_days
    inputs = WeeklyInputs(snap, settings, line_facts(snap, k), order_facts(snap, k))
    frames, unavailable = [], {}
    for name, metric in defs.items():
        missing = [t for t in metric.needs if not snap.has(t)]
        if missing:
            unavailable[name] = snap.missing(missing[0])  # "no contacts table", or "no contacts rows" if empty
            continue
        if metric.weekly is not None:  # a distribution is computed by reason_mix(), below
            slices = [None] + [s for s in metric.slices if s in settings.slices]
            frames += [metric.weekly.compute(metric, inputs, s) for s in slices]
    frame = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    frame = frame[frame["week_start"] <= snap.week.monday].copy()
    maturity = frame["metric"].map(lambda m: defs[m].maturity)
    frame["mature"] = [is_mature(w, m, snap.week, settings) for w, m in zip(frame["week_start"], maturity)]
    frame["week"] = frame["week_start"].map(lambda d: str(IsoWeek.of(d)))
    cols = ["metric", "week", "week_start", "slice", "slice_value", "numerator", "denominator", "value", "mature"]
    frame = frame[cols].sort_values(["metric", "slice", "slice_value", "week_start"]).reset_index(drop=True)
    mix = reason_mix(snap, settings, inputs.lines)
    mix = mix[mix["week_start"] <= snap.week.monday].reset_index(drop=True)
    mix["mature"] = [is_mature(w, Maturity.DELIVERY, snap.week, settings) for w in mix["week_start"]]
    return MetricResults(frame, unavailable, defs, mix, snap.week, settings)


# --- what a change is worth ------------------------------------------------------------------------

def cohort_week(snap: Snapshot, settings: MetricSettings, filters: dict[str, str], n_weeks: int = 4) -> CohortWeek:
    """The cohort's average over its ``n_weeks`` latest delivery weeks with k days of follow-up (in the engine)."""
    oldest = max(snap.week.shift(-(n_weeks + 8)), snap.first_week())
    weeks, week = [], snap.week
    while len(weeks) < n_weeks and week >= oldest:
        if is_mature(week.monday, Maturity.DELIVERY, snap.week, settings):
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


# --- the dictionary as documentation ---------------------------------------------------------------

def _forms(m: Metric) -> str:
    forms = [name for name, form in (("weekly", m.weekly_reported), ("per arm", m.per_arm),
                                     ("pre/post", m.panel), ("money", m.money)) if form]
    return ", ".join(forms)


def dictionary_frame(settings: MetricSettings) -> pd.DataFrame:
    """The metric dictionary as a table (name, numerator, denominator, window, unit, slices, forms)."""
    k, allowance = settings.return_window_days, settings.delivery_allowance_days
    maturity = {Maturity.NONE: "immediate", Maturity.DELIVERY: f"{k} days after the delivery week",
                Maturity.ORDER: f"{k + allowance} days after the order week"}
    return pd.DataFrame([
        {"metric": d.name, "title": d.title, "numerator": d.numerator, "denominator": d.denominator,
         "weekly cohort": d.window, "unit of analysis": d.unit, "better when": str(d.good_direction),
         "maturity": maturity[d.maturity], "needs tables": ", ".join(d.needs),
         "slices": ", ".join(d.slices) or "shop only", "computed": _forms(d)}
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
