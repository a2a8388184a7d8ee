"""Step 2 of the loop: isolate the weak cohort of the week.

Slices (category, channel, region, customer type) crossed with return reasons are compared,
over the latest mature delivery weeks (the *window*), with their own rate over the weeks before
(the *baseline*): an indirectly standardised funnel (``playbook.stats.standardized``) with
overdispersion, Benjamini-Hochberg across every slice tested, empirical-Bayes shrunk rates for
the ranking display, and the excess cost (returns above the slice's own norm, valued at its
return cost). The weak cohort is the flagged slice with the largest excess cost; when nothing
is flagged, the step says so.

All counting runs in the engine; pandas receives one row per (slice, reason, period).
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from playbook.core.jsonmodel import OMIT_IF_NONE, from_json
from playbook.core.settings import Config, MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.contract import REASON_CODES
from playbook.data.dataset import Snapshot
from playbook.data.facts import Maturity, is_mature, line_facts, matches, returns_of_lines
from playbook.metrics.display import chance_words, cohort_words, money_text
from playbook.stats.discrete_fdr import attainable, discrete_bh_adjusted
from playbook.stats.funnel import funnel_table
from playbook.stats.results import jsonable
from playbook.stats.shrinkage import beta_binomial_shrinkage
from playbook.stats.standardized import excess_p_value, standardized_funnel

#: the false discovery rate over every slice x reason tested in one run. 4 %, not 5 %: with weekly rates that wobble
#: by 10 % (a real shop's do) 5 % flagged 6.2 % of 500 null shops of 10,000 units a week, 4 % flags 4.6 %, and finds
#: a doubled reason in 76.8 % of 500 such shops against 79.2 % (docs/statistics.md, "Small shops")
FDR = 0.04
#: how the q-values control it (``q_values``): "discrete" (Döhler, Durand & Roquain 2018) or "bh"
FDR_PROCEDURE = "discrete"


@dataclass(frozen=True)
class Windows:
    """The delivery weeks compared: the recent window and the baseline just before it."""

    window: tuple[dt.date, ...]
    baseline: tuple[dt.date, ...]

    def describe(self) -> str:
        if not self.window:
            return "no delivery week with full follow-up yet"
        w = f"{IsoWeek.of(self.window[0])} to {IsoWeek.of(self.window[-1])}"
        b = f"{IsoWeek.of(self.baseline[0])} to {IsoWeek.of(self.baseline[-1])}" if self.baseline else "none"
        return f"delivery weeks {w} (window) against {b} (baseline)"


FEW_CUSTOMERS = 3  # at most this many customers holding 80 % of an excess: an account problem, not a cohort
EXCESS_SHARE = 0.8


@dataclass(frozen=True)
class Concentration:
    """How many customers carry a candidate's excess returned units in the window.

    ``top_customer_share`` is the largest customer's returned units over the excess (above 1 when one
    customer returned more than the whole excess); ``customers_for_80`` is the fewest customers whose
    returned units reach 80 % of the excess.
    """

    returning_customers: int
    top_customer: str
    top_customer_units: float
    top_customer_share: float
    customers_for_80: int

    @property
    def concentrated(self) -> bool:
        return self.customers_for_80 <= FEW_CUSTOMERS

    def describe(self) -> str:
        share = "more than all" if self.top_customer_share > 1 else f"{self.top_customer_share:.0%}"
        top = f"{self.top_customer_units:,.0f} returned units, {share} of the excess"
        if self.customers_for_80 == 1:
            return f"one customer ({self.top_customer}) holds {top}: check this account"
        if self.concentrated:
            return (f"{self.customers_for_80} customers hold 80 % of the excess (the largest, {self.top_customer}, "
                    f"{top}): check these accounts")
        return (f"spread over customers: {self.customers_for_80} of {self.returning_customers:,} returning customers "
                f"make 80 % of the excess; the largest holds {top}")


@dataclass(frozen=True)
class Explanation:
    """Candidate ``by`` explains this one: without ``by``'s units its excess is no longer flagged."""

    by: str
    excess_points_without: float
    q_without: float
    rule: str  # "survives only inside": the other survives without it; "sharper rise": neither survives alone

    def describe(self, label: str) -> str:
        why = ("" if self.rule == "survives only inside"
               else " (neither stands without the other; the rise is sharper there)")
        return (f"{label}: explained by {self.by}; without it the excess is {self.excess_points_without * 100:+.1f} "
                f"points, q = {self.q_without:.2g}{why}")


@dataclass(frozen=True)
class Candidate:
    """A slice x reason whose returns rose above its own baseline (flagged), with what explains it."""

    dimension: str
    slice_value: str
    reason_code: str
    units: int
    return_rate: float
    expected_rate: float
    excess_events: float
    excess_cost: float
    q_value: float
    flagged: bool  # at the customer level; False: flagged only with every unit independent
    concentration: Concentration | None = None
    explained_by: tuple[Explanation, ...] = ()
    also_real: tuple[str, ...] = ()  # candidates of other dimensions that survive without this one and vice versa

    @property
    def filters(self) -> dict[str, str]:
        return {self.dimension: self.slice_value, "reason_code": self.reason_code}

    @property
    def slice_filter(self) -> dict[str, str]:
        """The filter without the reason: the population a lever acts on."""
        return {self.dimension: self.slice_value}

    @property
    def label(self) -> str:
        return f"{self.dimension}={self.slice_value} x {self.reason_code}"

    @property
    def actionable(self) -> bool:
        """A cohort lever fits: flagged, not explained by another candidate, not a few accounts."""
        concentrated = self.concentration is not None and self.concentration.concentrated
        return self.flagged and not self.explained_by and not concentrated

    def to_dict(self) -> dict[str, Any]:
        d = jsonable(asdict(self))
        d.update(filters=self.filters, label=self.label, actionable=self.actionable,
                 concentrated=bool(self.concentration and self.concentration.concentrated))
        return d


@dataclass
class WeakCohortAnalysis:
    table: pd.DataFrame
    windows: Windows
    weak: Candidate | None  # the weak cohort: the first actionable candidate
    phi: dict[str, float]  # overdispersion per "dimension x reason" (NaN: too few slices to estimate)
    phi_applied: list[str]  # the "dimension x reason" groups whose limits were widened
    n_slices: int
    settings: MetricSettings = field(repr=False, default=None)
    note: str | None = None  # why nothing could be analysed (too little history), in words
    #: flagged slices x reasons (customer level) and those flagged only unit by unit, by excess cost
    candidates: list[Candidate] = field(default_factory=list)
    #: the shop's currency, for the amounts of the conclusion (set by :func:`analyse` from the configuration)
    currency: str = ""

    def flagged(self) -> pd.DataFrame:
        return self.table[self.table.flagged.astype(bool)].sort_values("rank")

    @property
    def sections(self) -> dict[str, object]:
        """Step 2's summary sections (``core.step.StepResult``)."""
        return {"weak_cohort": weak_cohort_section(self), "weak_cohort_candidates": candidates_section(self),
                "weak_cohort_set_aside": set_aside_section(self)}

    @property
    def conclusion(self) -> str:
        return conclusion(self)


def choose_windows(snap: Snapshot, settings: MetricSettings, window_weeks: int = 4, baseline_weeks: int = 8,
                   first_week: IsoWeek | None = None) -> Windows:
    """The latest ``window_weeks`` mature delivery weeks, and up to ``baseline_weeks`` before them.

    With ``first_week`` (the data's first week), no week before the data is used: early in the
    history the baseline is shorter, or empty when there are not enough mature weeks yet.
    """
    return windows_of_week(snap.week, settings, window_weeks, baseline_weeks, first_week)


def windows_of_week(snap_week: IsoWeek, settings: MetricSettings, window_weeks: int = 4, baseline_weeks: int = 8,
                    first_week: IsoWeek | None = None) -> Windows:
    """:func:`choose_windows` of a snapshot taken at ``snap_week`` (what a simulated shop reads without one)."""
    mondays, week = [], snap_week
    while len(mondays) < window_weeks + baseline_weeks and (first_week is None or week >= first_week):
        if is_mature(week.monday, Maturity.DELIVERY, snap_week, settings):
            mondays.append(week.monday)
        week = week.shift(-1)
    mondays.sort()
    window = mondays[-window_weeks:]
    return Windows(tuple(window), tuple(mondays[: len(mondays) - len(window)]))


def _period(lf: ibis.Table, windows: Windows) -> ibis.Value:
    return ibis.cases(
        (lf.delivery_week.isin(list(windows.window)), "window"),
        (lf.delivery_week.isin(list(windows.baseline)), "baseline"),
        else_=ibis.null("string"),
    )


def _returns_in_periods(snap: Snapshot, settings: MetricSettings, windows: Windows,
                        columns: list[str]) -> tuple[ibis.Table, ibis.Table]:
    """The delivered lines of the compared weeks, and their returns within k days of delivery.

    The returns are materialized (a temporary table, returns-sized): every dimension's query groups
    them, and a database would otherwise join returns to the line facts again for each one.
    """
    k = settings.return_window_days
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull())
    lf = lf.mutate(period=_period(lf, windows))
    lf = lf.filter(lf.period.notnull())
    r = returns_of_lines(snap, lf.select("line_id", "delivered_ts", "delivery_week", "period", "customer_id",
                                         *columns), k)
    return lf, r.cache()


def _returns_by_customer(r: ibis.Table, keys: list[ibis.Value]) -> ibis.Table:
    """Returned units and cost per customer within each group, then per group with the sum of squares.

    ``events_sq`` (the sum over customers of their returned units squared) gives the customer-level
    design effect: units bought and returned by one customer are one cluster, not independent trials.
    """
    per_customer = r.group_by([*keys, r.customer_id]).agg(y=r.quantity.sum(), cost=r.cost.sum())
    names = [k.get_name() for k in keys]
    y = per_customer.y.cast("float64")
    return per_customer.group_by(names).agg(
        events=per_customer.y.sum(), cost=per_customer.cost.sum(), events_sq=(y * y).sum(),
        customers=per_customer.count(),
    )


def slice_reason_counts(snap: Snapshot, settings: MetricSettings, windows: Windows, dimensions: list[str]) -> pd.DataFrame:
    """Units delivered and units returned (within k days) per dimension, slice, reason and period.

    Besides ``events`` and ``cost``, each row has ``events_sq`` (sum over customers of their returned
    units squared) and ``customers`` (customers with a return), for the customer-level test.
    """
    lf, r = _returns_in_periods(snap, settings, windows, dimensions)
    frames = []
    for dim in dimensions:
        weekly_units = lf.group_by([lf[dim].cast("string").name("slice_value"), "period",
                                    lf.delivery_week.name("week")]).agg(units=lf.units.sum()).to_pandas()
        ev = _returns_by_customer(r, [r[dim].cast("string").name("slice_value"), r.period, r.reason_code]).to_pandas()
        weekly_events = r.group_by([r[dim].cast("string").name("slice_value"), r.period, r.reason_code,
                                    r.delivery_week.name("week")]).agg(events=r.quantity.sum()).to_pandas()
        frames.append(counts_frame(dim, weekly_units, ev, weekly_events))
    return pd.concat(frames, ignore_index=True)


def counts_frame(dimension: str, weekly_units: pd.DataFrame, events: pd.DataFrame,
                 weekly_events: pd.DataFrame) -> pd.DataFrame:
    """One dimension's rows of :func:`slice_reason_counts` from its grouped counts.

    ``weekly_units``: units per slice, period and delivery week; ``events``: per slice, period and reason the
    returned units, cost, sum of the customers' squared returned units and customers; ``weekly_events``:
    returned units per slice, period, reason and week. Besides the period's totals, each row has ``weeks``
    (delivery weeks with units), ``units_sq`` (sum over them of the week's units squared) and ``weekly_sq``
    (sum over them of the week's returned units squared over its units), what :func:`week_to_week_spread`
    reads.
    """
    per_week = weekly_units.assign(units_sq=weekly_units["units"].astype(float) ** 2)
    units = per_week.groupby(["slice_value", "period"], as_index=False).agg(
        units=("units", "sum"), weeks=("units", "size"), units_sq=("units_sq", "sum"))
    sq = weekly_events.merge(weekly_units, on=["slice_value", "period", "week"])
    sq = sq.assign(weekly_sq=sq["events"].astype(float) ** 2 / sq["units"].astype(float))
    sq = sq.groupby(["slice_value", "period", "reason_code"], as_index=False)["weekly_sq"].sum()
    grid = units.merge(pd.DataFrame({"reason_code": list(REASON_CODES)}), how="cross")
    g = grid.merge(events, on=["slice_value", "period", "reason_code"], how="left").merge(
        sq, on=["slice_value", "period", "reason_code"], how="left").fillna(
        {"events": 0, "cost": 0.0, "events_sq": 0.0, "customers": 0, "weekly_sq": 0.0})
    g.insert(0, "dimension", dimension)
    return g


def pair_counts(snap: Snapshot, settings: MetricSettings, windows: Windows, dim_a: str, dim_b: str,
                reasons: list[str]) -> pd.DataFrame:
    """Counts per slice of ``dim_a`` x slice of ``dim_b`` x period (x reason for the returns).

    Columns ``a_value, b_value, period, reason_code, units, events, cost, events_sq``: what the
    attribution step subtracts from a candidate to see whether its excess survives without another.
    """
    lf, r = _returns_in_periods(snap, settings, windows, [dim_a, dim_b])
    a, b = lf[dim_a].cast("string").name("a_value"), lf[dim_b].cast("string").name("b_value")
    units = lf.group_by([a, b, "period"]).agg(units=lf.units.sum()).to_pandas()
    r = r.filter(r.reason_code.isin(list(reasons)))
    ev = _returns_by_customer(r, [r[dim_a].cast("string").name("a_value"), r[dim_b].cast("string").name("b_value"),
                                  r.period, r.reason_code]).to_pandas()
    grid = units.merge(pd.DataFrame({"reason_code": list(reasons)}), how="cross")
    return grid.merge(ev.drop(columns="customers"), on=["a_value", "b_value", "period", "reason_code"], how="left").fillna(
        {"events": 0, "cost": 0.0, "events_sq": 0.0})


def _design_effect(events: pd.Series, events_sq: pd.Series) -> pd.Series:
    """Customer-level design effect of returned units: sum of y_c^2 / sum of y_c (at least 1).

    With every returned unit from a different customer it is 1; one customer returning 500 units
    makes it about 500 (Rao & Scott 1992: divide the counts by it before a binomial test).
    """
    d = events_sq / events.where(events > 0)
    return d.fillna(1.0).clip(lower=1.0)


def slice_tests(counts: pd.DataFrame) -> pd.DataFrame:
    """Window against baseline per (dimension, slice, reason): the counts each test reads and its divisor.

    Columns ``units, events, cost, events_sq`` (window), ``baseline_units, baseline_events,
    baseline_events_sq``, ``cost_per_event``, ``design_effect`` (customer level, Rao & Scott 1992),
    ``week_to_week`` (tau^2, the variance the weekly wobble of the rates adds to the log of window over
    baseline, :func:`week_to_week_spread`; 0 without weekly columns), and the divisors of the exact test:
    ``test_divisor`` = design effect + N pi (1 - pi) tau^2 and ``test_divisor_units`` = 1 + N pi (1 - pi) tau^2
    (N = O + B, pi = n / (n + m)): the conditional count O | N has variance d N pi (1 - pi) from binomial
    noise in customer clusters plus (N pi (1 - pi))^2 tau^2 from the rates' wobble (delta method), and
    dividing the counts by variance / (N pi (1 - pi)) keeps the test's variance right (quasi-likelihood).
    """
    keys = ["dimension", "slice_value", "reason_code"]
    if "events_sq" not in counts:  # counts without customers: every returned unit its own customer
        counts = counts.assign(events_sq=counts["events"].astype(float))
    weekly = [c for c in WEEKLY_COLUMNS if c in counts]
    w = counts[counts.period == "window"].set_index(keys)
    b = counts[counts.period == "baseline"].set_index(keys)
    t = pd.DataFrame({
        "units": w["units"], "events": w["events"], "cost": w["cost"], "events_sq": w["events_sq"],
        **{c: w[c] for c in weekly},
    }).join(b[["units", "events", "events_sq", *weekly]].rename(columns={
        "units": "baseline_units", "events": "baseline_events", "events_sq": "baseline_events_sq",
        **{c: f"baseline_{c}" for c in weekly}}), how="left")
    t = t.fillna({"baseline_units": 0, "baseline_events": 0, "baseline_events_sq": 0.0,
                  **{f"baseline_{c}": 0 for c in weekly}}).reset_index()
    # cost of one returned unit: the slice's own average, else the reason's shop-wide average
    reason_cost = t.groupby("reason_code")[["cost", "events"]].sum()
    fallback = (reason_cost["cost"] / reason_cost["events"].where(reason_cost["events"] > 0)).fillna(0.0)
    own = t["cost"] / t["events"].where(t["events"] > 0)
    t["cost_per_event"] = own.fillna(t["reason_code"].map(fallback)).fillna(0.0)
    t["design_effect"] = _design_effect(t["events"] + t["baseline_events"], t["events_sq"] + t["baseline_events_sq"])
    spread = week_to_week_spread(t) if len(weekly) == len(WEEKLY_COLUMNS) else {}
    sigma2 = t["dimension"].map(spread).fillna(0.0).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = sigma2 * (1 / t.get("weeks", pd.Series(np.inf, index=t.index)).to_numpy(float)
                         + 1 / t.get("baseline_weeks", pd.Series(np.inf, index=t.index)).to_numpy(float))
        n, m = t["units"].to_numpy(float), t["baseline_units"].to_numpy(float)
        pi = np.where((n > 0) & (m > 0), n / (n + m), 0.0)
    tau2 = np.nan_to_num(tau2, nan=0.0, posinf=0.0)
    extra = (t["events"] + t["baseline_events"]).to_numpy(float) * pi * (1 - pi) * tau2
    t["week_to_week"] = tau2
    t["test_divisor"] = t["design_effect"].to_numpy(float) + extra
    t["test_divisor_units"] = 1.0 + extra
    t.attrs["week_to_week_spread"] = spread
    return t


WEEKLY_COLUMNS = ("weeks", "units_sq", "weekly_sq")


def week_to_week_spread(t: pd.DataFrame) -> dict[str, float]:
    """Per dimension, sigma^2: the variance of the weekly factor that moves every slice x reason rate.

    Read from the baseline weeks only (the window may hold the very rise step 2 looks for). Per row with
    baseline returns, the Pearson statistic of its weekly counts y_w against u_w r (r = B / m, the
    baseline rate), divided by the design effect d, is X = (sum_w y_w^2 / u_w / r - B) / d; without wobble
    E[X] = W - 1 (W weeks), with a factor of variance sigma^2 on the rate each week E[X] = W - 1 +
    sigma^2 r (m - sum_w u_w^2 / m) / d. The method-of-moments estimate pools every row of the dimension,
    sigma^2 = max(0, sum (X - (W - 1)) / sum r (m - sum u_w^2 / m) / d) (DerSimonian & Laird 1986 for
    the same moment equation between studies; McCullagh & Nelder 1989, section 4.5, for the Pearson
    statistic of overdispersed counts). Assumption: the weekly factors are independent from week to week
    and have one variance within a dimension; a rate that drifts steadily also counts as spread.
    """
    b = t[(t["baseline_events"] > 0) & (t["baseline_weeks"] >= 2) & (t["baseline_units"] > 0)]
    out: dict[str, float] = {}
    for dim, g in b.groupby("dimension", sort=True):
        m, events = g["baseline_units"].to_numpy(float), g["baseline_events"].to_numpy(float)
        r, d = events / m, g["design_effect"].to_numpy(float)
        pearson = (g["baseline_weekly_sq"].to_numpy(float) / r - events) / d
        excess = pearson - (g["baseline_weeks"].to_numpy(float) - 1)
        scale = r * (m - g["baseline_units_sq"].to_numpy(float) / m) / d
        out[str(dim)] = float(max(0.0, excess.sum() / scale.sum())) if scale.sum() > 0 else 0.0
    return out


def weak_cohort_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Window vs baseline per (dimension, slice, reason), through the standardised funnel.

    Tested at the customer level when ``counts`` has ``events_sq`` (see :func:`slice_reason_counts`):
    the column ``design_effect`` divides the counts (Rao & Scott 1992), and with the weekly columns of
    :func:`slice_reason_counts` the rates' week-to-week wobble widens the test too (:func:`slice_tests`).
    ``flagged_units`` is the same test with every returned unit independent: a slice flagged that way but
    not at the customer level owes its rise to a few customers.
    """
    keys = ["dimension", "slice_value", "reason_code"]
    t = slice_tests(counts)
    # one funnel per dimension x reason: its slices partition the same units, so their spread measures
    # overdispersion (slices of different dimensions overlap and share one spike); the false discovery
    # rate is then controlled over all of them
    parts, unit_level, phi, applied = [], [], {}, []
    for (dim, reason), g in t.groupby(["dimension", "reason_code"], sort=True):
        f = standardized_funnel(g, design_effect="test_divisor")
        phi[f"{dim} x {reason}"] = f.attrs["phi"]
        if f.attrs["phi_applied"]:
            applied.append(f"{dim} x {reason}")
        parts.append(f)
        u = standardized_funnel(g, design_effect="test_divisor_units")
        unit_level.append(u[[*keys, "p_value", "divisor"]].rename(
            columns={"p_value": "p_value_units", "divisor": "divisor_units"}))
    table = pd.concat(parts, ignore_index=True).merge(pd.concat(unit_level, ignore_index=True), on=keys, how="left")
    table["q_value"] = q_values(table)
    above = table["excess_events"].to_numpy(float) > 0
    table["flagged"] = (table["q_value"].to_numpy(float) < FDR) & above
    table["flagged_units"] = (q_values(table, "p_value_units", "divisor_units") < FDR) & above
    table["rank"] = table["excess_cost"].where(table["flagged"]).rank(ascending=False, method="first").astype("Int64")
    shrunk = []
    for _, g in table.groupby(["dimension", "reason_code"], sort=False):
        s = beta_binomial_shrinkage(g["events"].to_numpy(), g["units"].to_numpy())
        s.index = g.index
        shrunk.append(s[["shrunk_rate", "shrunk_ci_low", "shrunk_ci_high"]])
    table = table.join(pd.concat(shrunk))
    table = table.sort_values(["rank", "z_adjusted"], ascending=[True, False], na_position="last").reset_index(drop=True)
    table.attrs.update(phi=phi, phi_applied=applied, n_slices=int(np.isfinite(table["p_value"].to_numpy(float)).sum()),
                       week_to_week_spread=t.attrs["week_to_week_spread"])
    return table


def _bh(p: pd.Series) -> pd.Series:
    """Benjamini-Hochberg q-values over the finite p-values (NaN elsewhere)."""
    p = p.to_numpy(float)
    q = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return pd.Series(q)


def q_values(table: pd.DataFrame, p_column: str = "p_value", divisor_column: str = "divisor",
             procedure: str | None = None) -> np.ndarray:
    """The run's q-values over every row with a p-value: the flag rule's one home (flagged: q < FDR and O > E).

    ``procedure`` (default :data:`FDR_PROCEDURE`): "discrete", the discrete Benjamini-Hochberg step-down of
    Döhler, Durand & Roquain 2018 (``playbook.stats.discrete_fdr``) over the p-values each row's exact test
    can take given its returns N = O + B (``events``, ``baseline_events``, ``units``, ``baseline_units`` and
    the row's divisor); "bh", Benjamini-Hochberg as if every p could reach 0.
    """
    procedure = procedure or FDR_PROCEDURE
    p = table[p_column].to_numpy(float)
    if procedure == "bh":
        return _bh(pd.Series(p)).to_numpy(float)
    if procedure != "discrete":
        raise ValueError(f"FDR procedure {procedure!r}: expected 'discrete' or 'bh'")
    o, b, n, m = (table[c].to_numpy(float) for c in ("events", "baseline_events", "units", "baseline_units"))
    d = table[divisor_column].to_numpy(float)
    total = np.where(np.isfinite(p), o + b, 0.0)
    supports = [_support(*(float(x[i]) for x in (total, n, m, d))) for i in range(p.size)]
    return discrete_bh_adjusted(p, supports)


@functools.lru_cache(maxsize=4096)
def _support(total: float, units: float, baseline_units: float, divisor: float) -> np.ndarray | None:
    """The p-values a row's test can take given its returns N (``discrete_fdr.attainable``), kept for the run:
    the attribution recomputes the q-values once per candidate removed, and most rows keep their counts."""
    return attainable(lambda k: excess_p_value(k, units, total - k, baseline_units, divisor), total)


# --- concentration: how many customers carry an excess ------------------------------------------

def concentration(snap: Snapshot, settings: MetricSettings, windows: Windows,
                  rows: pd.DataFrame) -> dict[tuple[str, str, str], Concentration]:
    """Per (dimension, slice, reason) of ``rows``: how many customers make its excess in the window.

    Customers are ranked by returned units in the engine (a running sum over the customers of each
    slice); pandas receives one row per slice.
    """
    out: dict[tuple[str, str, str], Concentration] = {}
    wanted = rows[rows["excess_events"] > 0]
    if wanted.empty:
        return out
    _, r = _returns_in_periods(snap, settings, windows, sorted(set(wanted["dimension"])))
    r = r.filter(r.period == "window")
    for dim, g in wanted.groupby("dimension"):
        targets = ibis.memtable(pd.DataFrame({
            "slice_value": g["slice_value"].astype(str), "reason_code": g["reason_code"].astype(str),
            "target": EXCESS_SHARE * g["excess_events"].astype(float)}))
        c = r.group_by([r[dim].cast("string").name("slice_value"), r.reason_code, r.customer_id]).agg(
            y=r.quantity.sum().cast("float64"))
        c = c.join(targets, ["slice_value", "reason_code"])
        w = ibis.cumulative_window(group_by=[c.slice_value, c.reason_code], order_by=[ibis.desc(c.y), c.customer_id])
        c = c.mutate(before=c.y.sum().over(w) - c.y, first=ibis.row_number().over(w))
        agg = c.group_by(["slice_value", "reason_code"]).agg(
            returning_customers=c.count(),
            needed=(c.before < c.target).sum(),
            top_units=c.y.max(),
            # one row has first == 0: max picks it on every engine (arbitrary compiles to FIRST, absent from PostgreSQL)
            top_customer=c.customer_id.cast("string").max(where=c.first == 0),
        ).to_pandas()
        excess = g.set_index(["slice_value", "reason_code"])["excess_events"]
        for row in agg.itertuples(index=False):
            e = float(excess.loc[(row.slice_value, row.reason_code)])
            out[(dim, row.slice_value, row.reason_code)] = Concentration(
                int(row.returning_customers), str(row.top_customer), float(row.top_units),
                float(row.top_units) / e, int(row.needed))
    return out


# --- attribution: the slice that explains the rise ---------------------------------------------------

@dataclass(frozen=True)
class _Without:
    """A candidate's counts with another candidate's units taken out, and its test."""

    points: float  # window rate - baseline rate, in fraction
    q_value: float
    flagged: bool


def _phi_divisor(table: pd.DataFrame, dimension: str, reason: str) -> float:
    key = f"{dimension} x {reason}"
    phi = table.attrs.get("phi", {}).get(key)
    return float(phi) if key in table.attrs.get("phi_applied", []) and phi and np.isfinite(phi) else 1.0


def _without(table: pd.DataFrame, index: int, cells: pd.DataFrame) -> _Without:
    """The test of row ``index`` of ``table`` on the counts ``cells`` (its units outside the other slice).

    Same test and same false discovery rate as the run: its p-value replaces the row's own among all
    the run's p-values before Benjamini-Hochberg.
    """
    row = table.loc[index]
    w, b = cells[cells.period == "window"], cells[cells.period == "baseline"]
    n, o, m, bo = (float(x) for x in (w.units.sum(), w.events.sum(), b.units.sum(), b.events.sum()))
    if n <= 0 or m <= 0:
        return _Without(float("nan"), 1.0, False)
    divisor = _design_effect(pd.Series([o + bo]), pd.Series([float(cells.events_sq.sum())])).iloc[0]
    pi = n / (n + m)  # the rates' weekly wobble, as in slice_tests, at the counts without the other slice
    divisor += (o + bo) * pi * (1 - pi) * float(row.get("week_to_week", 0.0))
    divisor *= _phi_divisor(table, row.dimension, row.reason_code)
    p = float(np.asarray(excess_p_value(o, n, bo, m, divisor)).reshape(-1)[0])
    alone = table[["events", "baseline_events", "units", "baseline_units", "divisor", "p_value"]].copy()
    alone.loc[index] = [o, bo, n, m, divisor, p]
    q = float(q_values(alone.reset_index(drop=True))[table.index.get_loc(index)])
    return _Without(o / n - bo / m, q, bool(q < FDR and o > n * bo / m))


def _pair_cells(pairs: pd.DataFrame, a: str, b: str, swap: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts of A without B and of B without A (A in the pair frame's first dimension unless ``swap``)."""
    first, second = ("b_value", "a_value") if swap else ("a_value", "b_value")
    in_a, in_b = pairs[first] == a, pairs[second] == b
    return pairs[in_a & ~in_b], pairs[in_b & ~in_a]


def _reason_cells(cells: pd.DataFrame, reason: str) -> pd.DataFrame:
    """Units per period (once per cell) with the reason's returns."""
    return cells[cells.reason_code == reason]


def attribute(snap: Snapshot, settings: MetricSettings, windows: Windows,
              table: pd.DataFrame) -> dict[int, tuple[list[Explanation], list[str]]]:
    """Which flagged candidates explain which (Adtributor's explanatory power and succinctness).

    For two flagged candidates A and B of different dimensions and the same reason, B is explained by A
    when B's excess without A's units is no longer flagged while A's without B's still is; when neither
    is flagged without the other, the one with the sharper rise (larger observed / expected) explains
    the other. When both survive, both are real. Counts per pair of slices come from the engine
    (:func:`pair_counts`). Returns, per table index, its explanations and the candidates that are
    also real beside it.
    """
    flagged = table[table["flagged"].astype(bool)]
    result: dict[int, tuple[list[Explanation], list[str]]] = {i: ([], []) for i in flagged.index}
    label = lambda r: f"{r.dimension}={r.slice_value} x {r.reason_code}"  # noqa: E731
    dims = sorted(set(flagged["dimension"]))
    for i, d1 in enumerate(dims):
        for d2 in dims[i + 1:]:
            c1, c2 = flagged[flagged.dimension == d1], flagged[flagged.dimension == d2]
            reasons = sorted(set(c1.reason_code) & set(c2.reason_code))
            if not reasons:
                continue
            pairs = pair_counts(snap, settings, windows, d1, d2, reasons)
            for ia, ra in c1.iterrows():
                for ib, rb in c2[c2.reason_code == ra.reason_code].iterrows():
                    cells = _reason_cells(pairs, ra.reason_code)
                    a_out, b_out = _pair_cells(cells, ra.slice_value, rb.slice_value, swap=False)
                    a_wo, b_wo = _without(table, ia, a_out), _without(table, ib, b_out)
                    if a_wo.flagged and b_wo.flagged:
                        result[ia][1].append(label(rb))
                        result[ib][1].append(label(ra))
                    elif a_wo.flagged or b_wo.flagged:
                        (lost, lost_wo, keeper) = (ib, b_wo, ra) if a_wo.flagged else (ia, a_wo, rb)
                        result[lost][0].append(Explanation(label(keeper), lost_wo.points, lost_wo.q_value,
                                                           "survives only inside"))
                    else:
                        sharper = ra.ratio >= rb.ratio
                        (lost, lost_wo, keeper) = (ib, b_wo, ra) if sharper else (ia, a_wo, rb)
                        result[lost][0].append(Explanation(label(keeper), lost_wo.points, lost_wo.q_value,
                                                           "sharper rise"))
    return _by_roots(result, {i: label(r) for i, r in flagged.iterrows()})


def _by_roots(result: dict[int, tuple[list[Explanation], list[str]]],
              labels: dict[int, str]) -> dict[int, tuple[list[Explanation], list[str]]]:
    """Keep the explanations by candidates that nothing explains (the causes).

    Two slices lifted by the same cause (the app channel and repeat customers, both buying the spiking
    category) also explain each other; naming the cause is what a team needs. A candidate explained
    only by candidates that are themselves explained keeps its explanations as they are.
    """
    roots = {labels[i] for i, (by, _) in result.items() if not by}
    out = {}
    for i, (by, real) in result.items():
        direct = [e for e in by if e.by in roots]
        out[i] = (direct or by, [r for r in real if r in roots])
    return out


def _candidates(snap: Snapshot, settings: MetricSettings, windows: Windows, table: pd.DataFrame,
                limit: int = 30) -> list[Candidate]:
    """The flagged rows (customer level) and the rows flagged only unit by unit, with their explanations."""
    rows = table[table["flagged"].astype(bool) | table["flagged_units"].astype(bool)]
    rows = rows.sort_values("excess_cost", ascending=False).head(limit)
    conc = concentration(snap, settings, windows, rows)
    explained = attribute(snap, settings, windows, table)
    out = []
    for i, r in rows.iterrows():
        by, real = explained.get(i, ([], []))
        out.append(Candidate(
            dimension=r.dimension, slice_value=r.slice_value, reason_code=r.reason_code, units=int(r.units),
            return_rate=float(r.rate), expected_rate=float(r.baseline_rate), excess_events=float(r.excess_events),
            excess_cost=float(r.excess_cost), q_value=float(r.q_value), flagged=bool(r.flagged),
            concentration=conc.get((r.dimension, r.slice_value, r.reason_code)),
            explained_by=tuple(by), also_real=tuple(real)))
    return sorted(out, key=lambda c: (not c.flagged, -c.excess_cost))


_EMPTY_TABLE = pd.DataFrame(columns=[
    "dimension", "slice_value", "reason_code", "units", "events", "cost", "baseline_units", "baseline_events",
    "cost_per_event", "rate", "baseline_rate", "expected_events", "ratio", "excess_events", "z", "z_adjusted",
    "p_value", "q_value", "upper_95", "lower_95", "upper_998", "lower_998", "flagged", "excess_cost", "rank", "note",
    "shrunk_rate", "shrunk_ci_low", "shrunk_ci_high", "events_sq", "baseline_events_sq", "design_effect",
    "p_value_units", "flagged_units",
])


def analyse_weak_cohorts(
    snap: Snapshot, settings: MetricSettings, window_weeks: int = 4, baseline_weeks: int = 8,
    dimensions: list[str] | None = None,
) -> WeakCohortAnalysis:
    """The whole step: windows, counts in the engine, funnel, and the weak cohort (or None)."""
    dims = dimensions or list(settings.slices)
    windows = choose_windows(snap, settings, window_weeks, baseline_weeks, snap.first_week())
    if len(windows.window) < window_weeks or not windows.baseline:
        note = (f"not enough history yet: {len(windows.window) + len(windows.baseline)} delivery week(s) with "
                f"{settings.return_window_days} days of follow-up, {window_weeks} + at least 1 needed")
        return WeakCohortAnalysis(_EMPTY_TABLE.copy(), windows, None, {}, [], 0, settings, note)
    table = weak_cohort_table(slice_reason_counts(snap, settings, windows, dims))
    candidates = _candidates(snap, settings, windows, table)
    weak = next((c for c in candidates if c.actionable), None)
    return WeakCohortAnalysis(table, windows, weak, table.attrs["phi"], table.attrs["phi_applied"],
                              table.attrs["n_slices"], settings, candidates=candidates)


def describe(analysis: WeakCohortAnalysis) -> str:
    """What was compared, how many slices, and where overdispersion widened the limits."""
    if analysis.note:
        return f"Nothing compared: {analysis.note}."
    applied = ", ".join(f"{r} (phi {analysis.phi[r]:.1f})" for r in analysis.phi_applied) or "none"
    return (f"Compared {analysis.windows.describe()}; {analysis.n_slices} slices x reasons tested, false discovery "
            f"rate {FDR:.0%}; limits widened for overdispersion in: {applied}.")


def ranking_display(analysis: WeakCohortAnalysis, top: int = 12) -> pd.DataFrame:
    """The slices ranked for a person: flagged first by excess cost, then the most extreme."""
    t = analysis.table.head(top)
    return pd.DataFrame({
        "slice": t.dimension + "=" + t.slice_value,
        "reason": t.reason_code,
        "units": t.units.astype(int),
        "rate %": (t.rate * 100).round(2),
        "own baseline %": (t.baseline_rate * 100).round(2),
        "shrunk %": (t.shrunk_rate * 100).round(2),
        "z (adj.)": t.z_adjusted.round(2),
        "q": t.q_value.map(lambda q: f"{q:.2g}"),
        "flagged": t.flagged.map({True: "yes", False: "no"}),
        "excess cost": t.excess_cost.round(0),
    })


def structural_view(analysis: WeakCohortAnalysis) -> pd.DataFrame:
    """The weak cohort's reason across its dimension against the *shop* norm (funnel vs overall rate).

    A context view: it shows which slices are structurally high for this reason (with the
    overdispersion adjustment of Spiegelhalter 2005), whereas the weak cohort is chosen on change
    against each slice's own baseline.
    """
    weak = analysis.weak
    t = analysis.table
    t = t[(t.dimension == weak.dimension) & (t.reason_code == weak.reason_code)]
    ft = funnel_table(t[["slice_value", "units", "events", "cost_per_event"]], by=["slice_value"])
    od = ft.attrs.get("overdispersion")
    view = pd.DataFrame({
        weak.dimension: ft.slice_value, "units": ft.units.astype(int), "rate %": (ft.rate * 100).round(2),
        "shop norm %": round(ft.attrs["overall_rate"] * 100, 2), "shrunk %": (ft.shrunk_rate * 100).round(2),
        "z (adj.)": ft.z_adjusted.round(2), "q": ft.q_value.round(4), "above 95 % (adj.)": ft.above_95,
        "above 95 % (binomial only)": ft.above_95_unadjusted,
    })
    view.attrs["phi"] = (od or {}).get("phi")
    return view


def cohort_trend(snap: Snapshot, settings: MetricSettings, weak: Candidate) -> pd.DataFrame:
    """Weekly rate of the cohort's reason within its slice, by delivery week (mature or not)."""
    k = settings.return_window_days
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull() & matches(lf, weak.slice_filter))
    units = lf.group_by(lf.delivery_week.name("week_start")).agg(units=lf.units.sum()).to_pandas()
    r = returns_of_lines(snap, lf.select("line_id", "delivered_ts", "delivery_week"), k)
    r = r.filter(r.reason_code == weak.reason_code)
    ev = r.group_by(r.delivery_week.name("week_start")).agg(events=r.quantity.sum()).to_pandas()
    t = units.merge(ev, on="week_start", how="left").fillna({"events": 0})
    t["week_start"] = pd.to_datetime(t["week_start"]).dt.date
    t["rate"] = t["events"] / t["units"]
    t["mature"] = [is_mature(w, "delivery", snap.week, settings) for w in t["week_start"]]
    t["week"] = [str(IsoWeek.of(w)) for w in t["week_start"]]
    return t.sort_values("week_start").reset_index(drop=True)


def cohort_reason_mix(analysis: WeakCohortAnalysis) -> pd.DataFrame:
    """Reason mix of the cohort's slice, window against baseline (shares of returned units)."""
    weak = analysis.weak
    t = analysis.table
    t = t[(t.dimension == weak.dimension) & (t.slice_value == weak.filters[weak.dimension])]
    mix = pd.DataFrame({
        "reason": t.reason_code,
        "window %": t.events / t.events.sum() * 100,
        "baseline %": t.baseline_events / t.baseline_events.sum() * 100,
        "window rate %": t.rate * 100,
        "baseline rate %": t.baseline_rate * 100,
    })
    return mix.sort_values("window %", ascending=False).round(2).reset_index(drop=True)


def top_comments(snap: Snapshot, settings: MetricSettings, analysis: WeakCohortAnalysis, limit: int = 10) -> pd.DataFrame:
    """The most frequent free-text comments of the cohort's returns in the window (untrusted text)."""
    weak = analysis.weak
    k = settings.return_window_days
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull() & lf.delivery_week.isin(list(analysis.windows.window))
                   & matches(lf, weak.slice_filter))
    r = snap.tables["returns"].semi_join(lf, "line_id")
    r = r.filter((r.reason_code == weak.reason_code) & r.reason_text.notnull())
    text = r.reason_text.strip()
    r = r.mutate(comment=text).filter(text != "")
    out = r.group_by("comment").agg(returns=r.count()).order_by([ibis.desc("returns"), "comment"]).limit(limit)
    return out.to_pandas()


@dataclass(frozen=True)
class WeakCohortSection:
    """The ``weak_cohort`` section of summary.json: the cohort step 3 designs a lever for.

    ``window_weeks`` are the delivery weeks (Mondays) in which it was found; ``phi`` the overdispersion of
    its "dimension x reason" group (None: too few slices to estimate), ``phi_applied`` whether it widened
    the limits; ``explains`` the candidates it explains.
    """

    filters: dict[str, str]
    units: int
    return_rate: float
    expected_rate: float
    excess_cost: float
    q_value: float
    excess_events: float
    windows: str
    window_weeks: tuple[dt.date, ...]
    phi: float | None
    phi_applied: bool
    explains: tuple[str, ...]
    also_real: tuple[str, ...]
    concentration: Concentration | None
    #: the baseline's delivery weeks (Mondays) before ``window_weeks`` (empty: none; None: not recorded,
    #: an older summary); step 3's plan records the weeks step 2 read, so step 4's pre-period avoids them
    baseline_weeks: tuple[dt.date, ...] | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class CandidateEntry:
    """One entry of ``weak_cohort_candidates``: a cohort a lever can target (flagged, actionable)."""

    filters: dict[str, str]
    excess_cost: float
    q_value: float
    units: int


@dataclass(frozen=True)
class SetAsideEntry:
    """One entry of ``weak_cohort_set_aside``: a candidate no lever should target, with ``why``."""

    dimension: str
    slice_value: str
    reason_code: str
    units: int
    return_rate: float
    expected_rate: float
    excess_events: float
    excess_cost: float
    q_value: float
    flagged: bool
    concentration: Concentration | None
    explained_by: tuple[Explanation, ...]
    also_real: tuple[str, ...]
    filters: dict[str, str]
    label: str
    actionable: bool
    concentrated: bool
    why: str


def weak_cohort_section(analysis: WeakCohortAnalysis) -> WeakCohortSection | None:
    """The ``weak_cohort`` section of summary.json (None when no cohort stands out)."""
    if analysis.weak is None:
        return None
    w = analysis.weak
    phi = analysis.phi.get(f"{w.dimension} x {w.reason_code}")
    return WeakCohortSection(
        filters=w.filters, units=int(w.units), return_rate=float(w.return_rate), expected_rate=float(w.expected_rate),
        excess_cost=float(w.excess_cost), q_value=float(w.q_value), excess_events=float(w.excess_events),
        windows=analysis.windows.describe(), window_weeks=tuple(analysis.windows.window),
        phi=None if phi is None or phi != phi else float(phi),  # NaN: too few slices, written as null
        phi_applied=f"{w.dimension} x {w.reason_code}" in analysis.phi_applied,
        explains=tuple(c.label for c in explained_by(analysis, w)),
        also_real=tuple(w.also_real),
        concentration=w.concentration, baseline_weeks=tuple(analysis.windows.baseline),
    )


def explained_by(analysis: WeakCohortAnalysis, cohort: Candidate) -> list[Candidate]:
    """The candidates whose excess ``cohort`` explains."""
    return [c for c in analysis.candidates if any(e.by == cohort.label for e in c.explained_by)]


def candidates_section(analysis: WeakCohortAnalysis, limit: int = 10) -> list[CandidateEntry]:
    """The cohorts a lever can target, by excess cost: flagged, not explained by another, not a few accounts.

    Later steps pick the next one not already under test.
    """
    rows = [CandidateEntry(c.filters, float(c.excess_cost), float(c.q_value), int(c.units))
            for c in analysis.candidates if c.actionable]
    return rows[:limit]


def set_aside_section(analysis: WeakCohortAnalysis) -> list[SetAsideEntry]:
    """The slices that rose but that no lever should target, each with why: explained by another, or a few
    accounts (slices flagged only unit by unit and spread over many customers are within chance, not listed)."""
    aside = [c for c in analysis.candidates
             if c.explained_by or (c.concentration is not None and c.concentration.concentrated)]
    return [from_json(SetAsideEntry, dict(c.to_dict(), why=why_set_aside(c)), f"weak_cohort_set_aside[{i}]")
            for i, c in enumerate(aside)]


def why_set_aside(c: Candidate) -> str:
    """In words: why a candidate is not a cohort to act on."""
    if c.explained_by:
        return "; ".join(e.describe(c.label) for e in c.explained_by)
    if c.concentration is not None and c.concentration.concentrated:
        return f"{c.label}: {c.concentration.describe()}, not a cohort lever"
    return f"{c.label}: flagged only when every returned unit counts as independent; not at the customer level"


def candidates_display(analysis: WeakCohortAnalysis) -> pd.DataFrame:
    """Every candidate for a person: its rise, its cost, who carries it, and whether a lever fits."""
    return pd.DataFrame({
        "cohort": [c.label for c in analysis.candidates],
        "rate %": [round(c.return_rate * 100, 2) for c in analysis.candidates],
        "own baseline %": [round(c.expected_rate * 100, 2) for c in analysis.candidates],
        "excess cost": [round(c.excess_cost) for c in analysis.candidates],
        "chance": [chance_words(c.q_value) for c in analysis.candidates],
        "customers making 80 % of the excess": [
            c.concentration.customers_for_80 if c.concentration else None for c in analysis.candidates],
        "largest customer's share %": [
            round(c.concentration.top_customer_share * 100) if c.concentration else None for c in analysis.candidates],
        "lever fits": ["yes" if c.actionable else "no" for c in analysis.candidates],
    })


def candidates_in_words(analysis: WeakCohortAnalysis) -> list[str]:
    """One sentence per candidate: explained by the weak cohort, real beside it, or a few accounts."""
    lines = []
    for c in analysis.candidates:
        if c.actionable:
            real = f"; also real beside it: {', '.join(c.also_real)}" if c.also_real else ""
            conc = f" ({c.concentration.describe()})" if c.concentration else ""
            lines.append(f"{c.label}: stands on its own{conc}{real}.")
        else:
            lines.append(why_set_aside(c) + ".")
    return lines


def conclusion(analysis: WeakCohortAnalysis) -> str:
    if analysis.note:
        return f"No weak cohort can be named this week: {analysis.note}."
    aside = [c for c in analysis.candidates if not c.actionable]
    if analysis.weak is None:
        why = (f" {len(aside)} slice(s) rose but none is a cohort to act on: " + " ".join(candidates_in_words(analysis))
               if aside else "")
        return (f"No slice stands out this week ({analysis.n_slices} slices tested over {analysis.windows.describe()}, "
                f"none above its own baseline at a false discovery rate of {FDR:.0%} that a cohort lever could fix)."
                f"{why} No new lever is warranted by the data.")
    w = analysis.weak
    explains = explained_by(analysis, w)
    tail = (f" It explains the rise of {', '.join(cohort_words(c.filters) for c in explains)} (without it theirs "
            "is within chance)." if explains else "")
    if w.also_real:
        tail += (f" Also real, independently: {', '.join(cohort_words(label) for label in w.also_real)} (the next "
                 "candidate for a lever).")
    return (f"The weak cohort of the week is {cohort_words(w.filters)}: {w.return_rate:.1%} of {w.units:,} units "
            f"returned against {w.expected_rate:.1%} normally, about {money_text(w.excess_cost, analysis.currency)} of "
            f"excess return cost over the window ({chance_words(w.q_value)}).{tail}")


def analyse(snapshot: Snapshot, config: Config, window_weeks: int = 4, baseline_weeks: int = 8) -> WeakCohortAnalysis:
    """Step 2: the weak cohort of the latest ``window_weeks`` mature delivery weeks against up to
    ``baseline_weeks`` before them (``core.step.StepResult``: its ``sections`` and ``conclusion``)."""
    analysis = analyse_weak_cohorts(snapshot, config.metrics, window_weeks, baseline_weeks)
    analysis.currency = config.currency
    return analysis
