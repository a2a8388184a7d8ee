"""How a metric is computed in each setting: its weekly form, its per-arm form, its pre/post panel form.

Each form computes one metric from the shared facts (:mod:`playbook.data.facts`) and hands the
statistics an aggregate: per-customer sums for a randomized comparison (customers, not lines, were
randomized), weekly slice-cell sums for a difference in differences. A metric names its forms in
:mod:`playbook.metrics.dictionary`; the steps ask the metric, never the metric's name.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Callable, Protocol

import ibis
import numpy as np
import pandas as pd

from playbook.core.formats import date_text
from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Snapshot
from playbook.data.facts import Maturity, assigned_customers, is_mature, line_facts, matches
from playbook.stats import lag
from playbook.stats.means import mean_difference
from playbook.stats.ratio import ratio_difference
from playbook.stats.results import Estimate


class Metric(Protocol):
    """What a form reads of its metric (``playbook.metrics.metric.Metric`` has it): the forms sit
    below the metric in the imports, so a metric can name its forms."""

    name: str
    scale: float
    return_window_days: int | None


# --- weekly (step 1) ------------------------------------------------------------------------------

@dataclass(frozen=True)
class WeeklyInputs:
    """What a weekly form reads: the snapshot, the settings, and the line and order facts at k."""

    snap: Snapshot
    settings: MetricSettings
    lines: ibis.Table
    orders: ibis.Table


#: The weekly numerator and denominator of a metric for one slice column (None: the whole shop):
#: a frame with ``week_start``, ``slice_value``, ``numerator`` and ``denominator``.
WeeklyParts = Callable[[WeeklyInputs, "str | None"], pd.DataFrame]


@dataclass(frozen=True)
class WeeklyForm:
    """A metric's weekly value per slice: ``numerator / denominator x scale``, or the numerator itself
    (``value_is_numerator``: a median or a total, whose denominator is only the count behind it)."""

    parts: WeeklyParts
    value_is_numerator: bool = False

    def compute(self, metric: Metric, inputs: WeeklyInputs, slice_col: str | None) -> pd.DataFrame:
        parts = self.parts(inputs, slice_col).copy()
        parts["metric"] = metric.name
        parts["slice"] = slice_col or "all"
        if self.value_is_numerator:
            parts["value"] = parts["numerator"].astype(float)
        else:
            den = parts["denominator"].astype(float)
            parts["value"] = parts["numerator"].astype(float) / den.where(den > 0) * metric.scale
        return parts


# --- per arm (randomized, notebook 04) --------------------------------------------------------------------

@dataclass(frozen=True)
class ArmData:
    """One randomized experiment's exposure, as every per-arm form reads it.

    ``lines``: one row per exposed order line (``line_id, order_id, customer_id, arm, delivered_ts,
    returned_ts, units, returned_units, discount_amount, gross, net, return_cost_k``), bounded by the
    experiment's size; ``as_of``: the end of the analysed week (every unit is censored there).
    """

    snap: Snapshot | None  # None in a simulation: forms that read other tables say so
    experiment_id: str
    lines: pd.DataFrame
    as_of: dt.datetime
    #: the assigned customers (``customer_id``, ``variant``) when they are not the experiment's rows of the
    #: assignments table: step 3's A/A reading of the baseline splits the cohort's customers itself
    assigned: pd.DataFrame | None = None


class ArmForm(Protocol):
    """A metric's treatment-versus-control comparison; ``needs`` are the tables it reads beyond the lines."""

    method: str
    needs: tuple[str, ...]

    def compare(self, metric: Metric, data: ArmData) -> Estimate: ...


def as_units(lines: pd.DataFrame) -> pd.DataFrame:
    """Split each line into its returned units and its kept units (a line of 2 with 1 returned is both)."""
    returned = lines[lines.returned_units > 0].assign(quantity=lambda d: d.returned_units)
    kept = lines[lines.units > lines.returned_units].assign(
        quantity=lambda d: d.units - d.returned_units, returned_ts=pd.NaT)
    return pd.concat([returned, kept], ignore_index=True)


def per_customer_sums(df: pd.DataFrame, num: str, den: str) -> tuple[np.ndarray, ...]:
    """Numerator and denominator summed per customer, treatment then control (the delta method's input)."""
    g = df.groupby(["arm", "customer_id"])[[num, den]].sum()
    arms = set(g.index.get_level_values(0))
    t = g.loc["treatment"] if "treatment" in arms else g.iloc[:0]
    c = g.loc["control"] if "control" in arms else g.iloc[:0]
    return t[num].to_numpy(float), t[den].to_numpy(float), c[num].to_numpy(float), c[den].to_numpy(float)


@dataclass(frozen=True)
class ReturnsWithinWindow:
    """A return rate within k days: the Kaplan-Meier share returned by day k per arm, customers as
    clusters (``stats.lag.read_at_window``); nothing under the k-day name before day k is readable."""

    k: int
    method: str = "km"
    needs: tuple[str, ...] = ()

    def read(self, data: ArmData) -> lag.WindowReadResult:
        return lag.read_at_window(as_units(data.lines), data.as_of, self.k, quantity="quantity")

    def compare(self, metric: Metric, data: ArmData) -> Estimate:
        return self.read(data).difference


@dataclass(frozen=True)
class RatioOfCustomerSums:
    """A ratio of sums over the exposed lines (``numerator`` / ``denominator`` columns of
    :class:`ArmData` lines, times the metric's scale), compared by the delta method on per-customer
    sums (Deng, Knoblich & Lu 2018)."""

    numerator: str
    denominator: str
    method: str = "delta"
    needs: tuple[str, ...] = ()

    def compare(self, metric: Metric, data: ArmData) -> Estimate:
        lines = data.lines.assign(_num=data.lines[self.numerator] * metric.scale)
        return ratio_difference(*per_customer_sums(lines, "_num", self.denominator))


@dataclass(frozen=True)
class ContactsPerExposedOrder:
    """Customer contacts per exposed order, by the delta method on per-customer sums."""

    method: str = "delta"
    needs: tuple[str, ...] = ("contacts",)

    def compare(self, metric: Metric, data: ArmData) -> Estimate:
        c = data.snap.tables["contacts"]
        orders = data.lines[["order_id", "customer_id", "arm"]].drop_duplicates("order_id")
        ids = ibis.memtable(orders[["order_id"]])
        n = c.semi_join(ids, "order_id").group_by("order_id").agg(contacts=ibis._.count()).to_pandas()
        per = orders.merge(n, on="order_id", how="left").fillna({"contacts": 0}).assign(orders=1)
        return ratio_difference(*per_customer_sums(per, "contacts", "orders"))


@dataclass(frozen=True)
class MeanPerAssignedCustomer:
    """A line column summed per *assigned* customer (zero for those who did not order), compared by
    Welch's t: every assigned customer counts, so a lever that stops people ordering shows."""

    column: str
    method: str = "welch"
    needs: tuple[str, ...] = ("assignments",)

    def compare(self, metric: Metric, data: ArmData) -> Estimate:
        assigned = (data.assigned.copy() if data.assigned is not None
                     else assigned_customers(data.snap, data.experiment_id).to_pandas())
        per = data.lines.groupby("customer_id")[self.column].sum()
        assigned["value"] = assigned["customer_id"].map(per).fillna(0.0)
        return mean_difference(assigned.loc[assigned.variant == "treatment", "value"],
                               assigned.loc[assigned.variant == "control", "value"])


# --- pre/post panel (notebook 04) -------------------------------------------------------------------------

@dataclass(frozen=True)
class PanelInputs:
    """A pre/post comparison's cohort, control and weeks: ``first`` <= week < ``end`` (pre-period) and
    week >= ``start`` (post-period); the weeks between are left out (they selected the cohort)."""

    snap: Snapshot
    settings: MetricSettings
    cohort: dict[str, str]
    control: dict[str, str]
    first: dt.date
    end: dt.date
    start: dt.date

    def keeps(self, week: dt.date) -> bool:
        return self.first <= week and (week < self.end or week >= self.start)


@dataclass(frozen=True)
class Panel:
    """Weekly values per slice cell of the cohort (``treated``) and of its control, or why not."""

    frame: pd.DataFrame | None
    error: str | None = None


class PanelForm(Protocol):
    needs: tuple[str, ...]

    def build(self, metric: Metric, inputs: PanelInputs) -> Panel: ...


def _finish(g: pd.DataFrame, inputs: PanelInputs) -> pd.DataFrame:
    g["week"] = pd.to_datetime(g["week"]).dt.date
    g = g[[inputs.keeps(w) for w in g["week"]]].copy()
    g["value"] = g["num"] / g["weight"].where(g["weight"] > 0)
    g["slice"] = np.where(g["treated"], "cohort:", "control:") + g["cell"].astype(str)
    return g.dropna(subset=["value"])


def _cohort_and_control(t: ibis.Table, inputs: PanelInputs) -> tuple[ibis.Value, ibis.Value]:
    in_cohort = matches(t, inputs.cohort)
    in_control = matches(t, inputs.control) & ~in_cohort if inputs.control else ~in_cohort
    return in_cohort, in_control


def _channel_region(t: ibis.Table) -> ibis.Value:
    return t.channel.cast("string").concat("/", t.region.cast("string"))


@dataclass(frozen=True)
class LinePanel:
    """A ratio of sums over order lines per channel x region cell and week.

    ``basis`` DELIVERY: counted by delivery week on delivered units, and only for delivery weeks
    whose units have all had the return window by the end of the analysed week (a post week still
    collecting returns would look better than it is); NONE: counted by order week.
    """

    numerator: Callable[[ibis.Table], ibis.Value]
    denominator: Callable[[ibis.Table], ibis.Value]
    basis: Maturity = Maturity.NONE
    needs: tuple[str, ...] = ()

    def build(self, metric: Metric, inputs: PanelInputs) -> Panel:
        k = metric.return_window_days or inputs.settings.return_window_days
        by_delivery = self.basis == Maturity.DELIVERY
        week_col = "delivery_week" if by_delivery else "order_week"
        lf = line_facts(inputs.snap, k)
        week = lf[week_col]
        lf = lf.filter((week >= inputs.first) & ((week < inputs.end) | (week >= inputs.start))
                       & (lf.delivered_ts.notnull() if by_delivery else ibis.literal(True)))
        in_cohort, in_control = _cohort_and_control(lf, inputs)
        lf = lf.mutate(treated=in_cohort, cell=_channel_region(lf)).filter(in_cohort | in_control)
        g = lf.group_by(["treated", "cell", lf[week_col].name("week")]).agg(
            num=self.numerator(lf) * metric.scale, weight=self.denominator(lf)).to_pandas()
        g["week"] = pd.to_datetime(g["week"]).dt.date
        if by_delivery:
            settings_k = replace(inputs.settings, return_window_days=k)
            g = g[[is_mature(w, Maturity.DELIVERY, inputs.snap.week, settings_k) for w in g["week"]]]
            if not (g["week"] >= inputs.start).any():
                ready = inputs.start + dt.timedelta(days=6 + k)
                return Panel(None, f"no post-period delivery week has {k} days of follow-up yet: the first one "
                                   f"({IsoWeek.of(inputs.start)}) is complete on {date_text(ready)}; review again then")
        return Panel(_finish(g, inputs))


@dataclass(frozen=True)
class ContactsPerOrderPanel:
    """Customer contacts per order, per channel x region cell and order week (an order is in the
    cohort when any of its lines is)."""

    needs: tuple[str, ...] = ("contacts",)

    def build(self, metric: Metric, inputs: PanelInputs) -> Panel:
        lf = line_facts(inputs.snap, inputs.settings.return_window_days)
        in_cohort, in_control = _cohort_and_control(lf, inputs)
        lf = lf.filter((lf.order_week >= inputs.first) & (in_cohort | in_control)).mutate(treated=in_cohort)
        orders = lf.group_by(["order_id", "channel", "region", "order_week"]).agg(treated=lf.treated.max())
        c = inputs.snap.tables["contacts"]
        per_order = c.group_by("order_id").agg(contacts=c.count())
        o = orders.left_join(per_order, "order_id").drop("order_id_right")
        g = o.group_by(["treated", _channel_region(o).name("cell"), o.order_week.name("week")]).agg(
            num=o.contacts.fill_null(0).sum(), weight=o.count()).to_pandas()
        return Panel(_finish(g, inputs))


@dataclass(frozen=True)
class SessionsConversionPanel:
    """Orders per session per channel and week; the cohort and its control must be defined by the
    sessions table's columns (category, channel), or conversion cannot be split between them."""

    needs: tuple[str, ...] = ("sessions",)
    columns: tuple[str, ...] = ("category", "channel")

    def build(self, metric: Metric, inputs: PanelInputs) -> Panel:
        for what, filters in (("cohort", inputs.cohort), ("control cohort", inputs.control)):
            if set(filters) - set(self.columns):
                return Panel(None, f"conversion needs a {what} defined by category or channel "
                                   "(the sessions table's columns)")
        s = inputs.snap.tables["sessions"]
        s_cohort, s_control = _cohort_and_control(s, inputs)
        s = s.mutate(week=s.date.cast("timestamp").truncate("W").cast("date"), treated=s_cohort)
        s = s.filter((s.week >= inputs.first) & (s_cohort | s_control))
        sess = s.group_by(["treated", s.channel.cast("string").name("cell"), "week"]).agg(
            weight=s.sessions.sum()).to_pandas()
        lf = line_facts(inputs.snap, inputs.settings.return_window_days)
        in_cohort, in_control = _cohort_and_control(lf, inputs)
        lf = lf.filter((lf.order_week >= inputs.first) & (in_cohort | in_control)).mutate(treated=in_cohort)
        n = lf.group_by(["treated", lf.channel.cast("string").name("cell"), lf.order_week.name("week")]).agg(
            num=lf.order_id.nunique()).to_pandas()
        g = sess.merge(n, on=["treated", "cell", "week"], how="left").fillna({"num": 0})
        return Panel(_finish(g, inputs))
