"""Seeded simulations of randomized return experiments as exposure_lines() returns them (no database),
for the verdict-level calibration tests. Each unit returns with its customer's propensity
(Beta(2, 8), mean 0.2: lines of one customer are correlated), after a lag uniform on [0, max_lag]
days; a treatment may multiply the propensity (a true cut) or the lag (a delay only).

``simulate`` / ``at``: a fixed set of customers read at one day (the single-read tests).

The whole path (issue 19, ``Shop`` ... ``read_many``): a shop whose customers keep ordering week after
week; the test is planned by ``k_day_read_plan`` on inputs measured on the shop's simulated history
(as step 3 measures them), its exposure grows weekly and stops at the end of the review date, and it is
read at every weekly look the code takes (``experiments.due_for_review``: the plan's looks before the
review date's week, that week's read, then every week while undecided), each read through
``compare_exposed`` (SRM, the K-day read, the delay check, guardrails) and ``review.verdict_for`` after
the earlier verdicts. Each replication's lines are drawn once and cut at each weekly read.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from playbook.core.vocabulary import KEEP, STOP, Decision, Direction
from playbook.core.weeks import IsoWeek
from playbook.journal.store import EarlierLook
from playbook.stats.delay import historical_return_window
from playbook.stats.power import KDayPlan, customer_clustering, k_day_read_plan
from playbook.stats.results import Estimate
from playbook.steps.experiments import (
    CONFIRM_SHARE,
    SETTLED_SHARE,
    Comparison,
    ComparisonSection,
    MetricComparison,
    ReturnWindows,
    compare_exposed,
    planned_looks,
)
from playbook.steps.review import ExperimentVerdict, verdict_for
from playbook.steps.verdict import _z

BASE = pd.Timestamp("2026-11-02")  # a Monday, as a plan's start date


def experiment(k: int = 7, days: int = 14, planned_looks: int = 1, expected=(-0.08, 0.0)) -> dict:
    return {"experiment_id": "SIM", "lever": "sim", "cohort": "all", "design": "randomized", "control_cohort": "",
            "primary_metric": f"return_rate_{k}d", "expected_low": expected[0], "expected_high": expected[1],
            "start_date": BASE.date(), "review_date": (BASE + pd.Timedelta(days=days - 1)).date(),
            "planned_looks": planned_looks}


def simulate(rng: np.random.Generator, *, customers: int = 300, order_days: float = 14.0, max_lag: float = 4.5,
             cut: float = 1.0, delay: float = 0.0) -> pd.DataFrame:
    """Every line of the experiment (all orders, all eventual returns); ``at`` cuts it at a look."""
    n_c = 2 * customers
    arm = np.repeat(np.array(["control", "treatment"]), customers)
    propensity = rng.beta(2.0, 8.0, n_c) * np.where(arm == "treatment", cut, 1.0)
    per = 1 + rng.poisson(1.5, n_c)
    cust = np.repeat(np.arange(n_c), per)
    n = cust.size
    order = rng.uniform(0.0, order_days, n)
    delivered = order + rng.uniform(1.0, 3.0, n)
    returns = rng.uniform(size=n) < propensity[cust]
    lag = rng.uniform(0.0, max_lag, n) * np.where(arm[cust] == "treatment", 1.0 + delay, 1.0)
    day = pd.Timedelta(days=1)
    return pd.DataFrame({
        "line_id": np.arange(n).astype(str), "order_id": np.arange(n).astype(str),
        "customer_id": np.char.add("c", cust.astype(str)), "arm": arm[cust],
        "order_ts": BASE + order * day, "delivered_ts": BASE + delivered * day,
        "returned_ts": pd.Series(BASE + (delivered + lag) * day).where(returns),
        "units": 1, "returned_units": returns.astype(int), "discount_amount": 0.0, "gross": 50.0, "net": 50.0,
        "return_cost_k": 0.0,
    })


def at(lines: pd.DataFrame, day: float) -> tuple[pd.DataFrame, dt.datetime]:
    """The lines as a snapshot at the end of ``day`` days after the start would show them."""
    as_of = BASE + pd.Timedelta(days=day)
    seen = lines[lines.order_ts <= as_of].copy()
    late = seen.returned_ts > as_of
    seen.loc[late, "returned_ts"] = pd.NaT
    seen.loc[late, "returned_units"] = 0
    return seen.drop(columns="order_ts"), as_of.to_pydatetime()


# --- the whole path: plan, weekly exposure, every look the code takes (issue 19) -----------------------------

DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min


def week_end_days(week: IsoWeek) -> float:
    """The end of ``week`` (``IsoWeek.end``, what the weekly run reads to) in days after the start."""
    return (pd.Timestamp(week.end) - BASE) / pd.Timedelta(days=1)


@dataclass(frozen=True)
class Shop:
    """A shop's customers as a randomized test meets them, week after week.

    ``customers`` (both arms) each assigned to an arm by a fair coin at the start (all of them: the
    assigned split's SRM check has its nominal level); each customer's orders are a Poisson process of
    ``orders_per_week``, with 1 + Poisson(``lines_extra``) lines delivered together 1-3 days after the
    order (uniform); a customer's return propensity is Beta(2, 8) (mean 0.2: a customer's lines move
    together), each line returns with it independently, after a lag uniform on [0, ``lag_max``] days
    or, with ``lag_shape``, Gamma(shape, mean ``lag_mean``). Exposure grows weekly: a customer not yet
    ordering is not exposed.
    """

    customers: int = 1500
    orders_per_week: float = 0.3
    lines_extra: float = 1.5
    beta: tuple[float, float] = (2.0, 8.0)
    lag_max: float = 4.5
    lag_shape: float | None = None
    lag_mean: float = 10.0

    def lags(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.lag_shape is None:
            return rng.uniform(0.0, self.lag_max, n)
        return rng.gamma(self.lag_shape, self.lag_mean / self.lag_shape, n)

    def returned_by(self, k: float) -> float:
        """P(lag <= k) of a returned line."""
        if self.lag_shape is None:
            return min(k / self.lag_max, 1.0)
        return float(stats.gamma.cdf(k, self.lag_shape, scale=self.lag_mean / self.lag_shape))

    @property
    def mean_propensity(self) -> float:
        a, b = self.beta
        return a / (a + b)

    def base_rate(self, k: int) -> float:
        """The K-day return rate of a unit (control): mean propensity x P(lag <= K)."""
        return self.mean_propensity * self.returned_by(k)

    def lines(self, rng: np.random.Generator, first_day: float, last_day: float, treated: np.ndarray | None = None,
              cut: float = 1.0, delay: float = 1.0) -> dict[str, np.ndarray]:
        """Every line ordered in [first_day, last_day) days after the start, with its eventual return:
        ``cust``, ``order``, ``ordered``, ``delivered``, ``returned`` (days; NaN: never returned). A
        treated customer's propensity is multiplied by ``cut``, a treated line's lag by ``delay``."""
        a, b = self.beta
        n = self.customers
        p = rng.beta(a, b, n)
        if treated is not None:
            p = p * np.where(treated, cut, 1.0)
        orders = rng.poisson(self.orders_per_week * (last_day - first_day) / 7.0, n)
        cust_of_order = np.repeat(np.arange(n), orders)
        ordered = rng.uniform(first_day, last_day, cust_of_order.size)
        delivered = ordered + rng.uniform(1.0, 3.0, cust_of_order.size)
        order = np.repeat(np.arange(cust_of_order.size), 1 + rng.poisson(self.lines_extra, cust_of_order.size))
        cust = cust_of_order[order]
        returns = rng.random(order.size) < p[cust]
        lag = self.lags(rng, order.size)
        if treated is not None and delay != 1.0:
            lag = lag * np.where(treated[cust], delay, 1.0)
        return {"cust": cust, "order": order, "ordered": ordered[order], "delivered": delivered[order],
                "returned": np.where(returns, delivered[order] + lag, np.nan)}

    # --- exact plan inputs (the simulation's parameters; the plan itself reads them measured) ----------------

    def weekly_units_per_arm(self) -> float:
        return self.customers / 2 * self.orders_per_week * (1 + self.lines_extra)

    def exact_design_effect(self, k: int, weeks: int) -> float:
        """The customer design effect of ``weeks`` weeks of deliveries: 1 + (m - 1) q^2 var(p) / (R (1 - R)),
        m = E[u^2] / E[u] the size-weighted lines per customer (Kish 1965), q = P(lag <= K)."""
        a, b = self.beta
        var_p = a * b / ((a + b) ** 2 * (a + b + 1))
        q, rate = self.returned_by(k), self.base_rate(k)
        mean_l, mean_l2 = 1 + self.lines_extra, self.lines_extra + (1 + self.lines_extra) ** 2
        m = mean_l2 / mean_l + self.orders_per_week * weeks * mean_l
        return 1 + (m - 1) * q * q * var_p / (rate * (1 - rate))

    def exact_customers_per_unit(self, weeks: int) -> float:
        mu = self.orders_per_week * weeks
        return (1 - math.exp(-mu)) / (mu * (1 + self.lines_extra))

    def exposed_per_arm(self, days: float) -> float:
        """Expected customers per arm with an order in the first ``days`` days."""
        return self.customers / 2 * (1 - math.exp(-self.orders_per_week * max(days, 0.0) / 7.0))


@dataclass(frozen=True)
class PlanInputs:
    """What the plan reads of the shop (``levers._population``): the base K-day rate and the weekly units
    per arm of the cohort's 4 window weeks, the design effect and customers per unit of the last
    ceil(read_days / 7) of its 8 baseline weeks, and the confirm window of the delay check."""

    base_rate: float
    weekly_units_per_arm: float
    design_effects: tuple[float, ...]  # by weeks of deliveries 1..8
    customers_per_unit: tuple[float, ...]
    confirm_days: int
    settled_days: int

    @property
    def windows(self) -> ReturnWindows:
        """The confirm and settled windows as step 4 takes them (``experiments.return_windows``)."""
        return ReturnWindows(self.confirm_days, self.settled_days)

    @staticmethod
    def _weeks(read_days: float, cap: int) -> int:
        return min(max(math.ceil(read_days / 7), 1), cap)

    def design_effect(self, read_days: float) -> float:
        return self.design_effects[self._weeks(read_days, len(self.design_effects)) - 1]

    def customers_per_unit_at(self, read_days: float) -> float:
        return self.customers_per_unit[self._weeks(read_days, len(self.customers_per_unit)) - 1]


def measured_inputs(shop: Shop, k: int, seed: int, window_weeks: int = 4, baseline_weeks: int = 8) -> PlanInputs:
    """The plan's inputs measured on a simulated history of the same shop, as the real plan measures them
    (``levers.cohort_volume``, ``levers._design_effect_by_read_length`` with ``stats.power.customer_clustering``,
    ``experiments.return_windows`` with ``stats.delay.historical_return_window``), every lag followed to its end."""
    rng = np.random.default_rng(seed)
    weeks = baseline_weeks + window_weeks
    x = shop.lines(rng, -3.0, 7.0 * weeks)  # orders from 3 days before, so that the first week's deliveries are whole
    delivered = (x["delivered"] >= 0) & (x["delivered"] < 7.0 * weeks)
    week = np.floor(x["delivered"] / 7.0).astype(int)
    within = np.nan_to_num(x["returned"] - x["delivered"], nan=np.inf) <= k
    window = delivered & (week >= baseline_weeks)
    units = float(window.sum())
    effects, per_unit = [], []
    for n in range(1, baseline_weeks + 1):
        sel = delivered & (week >= baseline_weeks - n) & (week < baseline_weeks)
        u = np.bincount(x["cust"][sel], minlength=shop.customers)
        r = np.bincount(x["cust"][sel], weights=within[sel], minlength=shop.customers)
        c = customer_clustering(u, r)
        effects.append(c.design_effect)
        per_unit.append(c.customers / c.units)
    lags = (x["returned"] - x["delivered"])[np.isfinite(x["returned"])]
    held = historical_return_window(lags, k, CONFIRM_SHARE).days_holding_share or 0
    confirm = int(max(2 * k, held))
    settled = int(max(confirm, historical_return_window(lags, k, SETTLED_SHARE).days_holding_share or 0))
    return PlanInputs(float(within[window].sum()) / units, units / window_weeks * 0.5, tuple(effects), tuple(per_unit),
                      confirm, settled)


def exact_inputs(shop: Shop, k: int, baseline_weeks: int = 8) -> PlanInputs:
    """The same inputs computed from the simulation's parameters (for comparison with the measured ones)."""
    n = range(1, baseline_weeks + 1)
    return PlanInputs(shop.base_rate(k), shop.weekly_units_per_arm(), tuple(shop.exact_design_effect(k, w) for w in n),
                      tuple(shop.exact_customers_per_unit(w) for w in n), 0, 0)


@dataclass(frozen=True, eq=False)
class Setup:
    """One planned test: the shop, its K-day primary, the expected range, the plan and the two rows of the
    experiments table (plan-made: with the plan's looks and information; hand-entered: neither)."""

    shop: Shop
    k: int
    expected: tuple[float, float]
    inputs: PlanInputs
    plan: KDayPlan
    plan_row: dict
    hand_row: dict

    @property
    def weaker_end(self) -> float:
        return max(self.expected)  # a lower return rate is better: the end closest to no effect

    @property
    def review_date(self) -> dt.date:
        return self.plan_row["review_date"]

    @property
    def exposure_days(self) -> float:
        """Orders from the start to the end of the review date (``experiments.exposure_lines``)."""
        return float((pd.Timestamp(self.review_date) - BASE).days + 1)

    @property
    def stated_power(self) -> float:
        return float(self.plan.achieved_power)

    @functools.cached_property
    def exact_power(self) -> float:
        """The power of this plan's design (same review week, same looks) with the shop's exact inputs
        instead of the measured ones: what the stated power would be without the history's noise."""
        e = exact_inputs(self.shop, self.k)
        plan = k_day_read_plan(e.base_rate, self.weaker_end, e.weekly_units_per_arm, self.k, e.design_effect,
                               max_weeks=self.plan.weeks, max_looks=self.plan.planned_looks,
                               customers_per_unit=e.customers_per_unit_at)
        return float(plan.power_by_week[self.plan.weeks - 1])

    def cut_for(self, change: float) -> float:
        """The propensity multiplier that moves the K-day rate by ``change`` (absolute)."""
        return 1.0 + change / self.shop.base_rate(self.k)


@functools.lru_cache(maxsize=None)
def setup(shop: Shop, k: int, expected: tuple[float, float], seed: int = 19) -> Setup:
    """Plan the test as step 3 does (``levers._read_plan``): ``k_day_read_plan`` for the weaker end of the
    expected range, at 80 % power, at most ``max_weeks`` weeks and 4 looks, with the inputs measured on the
    shop's simulated history; the plan-made row carries its looks and information, the start is BASE
    (a Monday) and the review date the start + 7 x weeks, as the plan writes it."""
    from playbook.config.loader import load_config
    from playbook.steps.levers import MAX_PLANNED_LOOKS, PLANNED_POWER

    inputs = measured_inputs(shop, k, seed)
    weaker = max(expected)
    plan = k_day_read_plan(inputs.base_rate, weaker, inputs.weekly_units_per_arm, k, inputs.design_effect,
                           power=PLANNED_POWER, max_weeks=load_config().experiments.max_weeks,
                           max_looks=MAX_PLANNED_LOOKS, customers_per_unit=inputs.customers_per_unit_at)
    if not plan.reachable:
        raise ValueError(f"the simulated shop cannot power this plan: {plan.message}")
    hand = {"experiment_id": "SIM", "lever": "sim", "cohort": "all", "design": "randomized", "control_cohort": "",
            "primary_metric": f"return_rate_{k}d", "expected_low": float(min(expected)),
            "expected_high": float(max(expected)), "start_date": BASE.date(),
            "review_date": (BASE + pd.Timedelta(days=7 * plan.weeks)).date()}
    made = hand | {"planned_looks": plan.planned_looks, "planned_information": round(plan.planned_information, 1)}
    return Setup(shop, k, tuple(expected), inputs, plan, made, hand)


class Replication:
    """One simulated experiment: every line of the exposure (orders from the start to the end of the
    review date) with its eventual return, drawn once and cut at each weekly read."""

    def __init__(self, rng: np.random.Generator, s: Setup, cut: float = 1.0, delay: float = 1.0):
        shop = s.shop
        treated = rng.random(shop.customers) < 0.5
        x = shop.lines(rng, 0.0, s.exposure_days, treated, cut, delay)
        self.assigned = {"control": int((~treated).sum()), "treatment": int(treated.sum())}
        self.ordered, self.delivered, self.returned = x["ordered"], x["delivered"], x["returned"]
        self.delivered_ns = BASE.value + np.round(self.delivered * DAY_NS).astype(np.int64)
        self.returned_ns = BASE.value + np.round(np.nan_to_num(self.returned) * DAY_NS).astype(np.int64)
        self.customer = np.char.add("c", x["cust"].astype(str)).astype(object)
        self.arm = np.where(treated[x["cust"]], "treatment", "control").astype(object)
        self.order = x["order"]

    def lines(self, as_of_days: float) -> pd.DataFrame:
        """The exposure as a snapshot cut at ``as_of_days`` shows it (``exposure_lines``): lines ordered by
        then; a delivery after the cut not yet delivered, a return after it not yet returned."""
        m = self.ordered <= as_of_days
        delivered = self.delivered[m] <= as_of_days
        returned = self.returned[m] <= as_of_days  # NaN (never) compares False
        n = int(m.sum())
        return pd.DataFrame({
            "line_id": np.arange(n), "order_id": self.order[m], "customer_id": self.customer[m], "arm": self.arm[m],
            "delivered_ts": np.where(delivered, self.delivered_ns[m], _NAT).view("M8[ns]"),
            "returned_ts": np.where(returned, self.returned_ns[m], _NAT).view("M8[ns]"),
            "units": np.ones(n, dtype=np.int64), "returned_units": returned.astype(np.int64),
            "discount_amount": 0.0, "gross": 50.0, "net": 50.0, "return_cost_k": 0.0})


class SimulatedGuardrails:
    """The configured randomized guardrails as step 4 builds them (``experiments._guardrails_randomized``:
    MetricComparison(metric, estimate, bad direction reversed, "guardrail", tolerance, optional)), with
    an estimate drawn from its sampling distribution under no true effect, because their per-arm forms
    read tables beyond the lines (contacts, assignments). The standard error is tolerance / 2.8 at the
    review date's exposure and grows as 1 / sqrt(exposed customers) before it (frozen after it: no
    exposure is added); the reads of one test are one Brownian path in that information, so that
    successive looks are correlated as real reads are (corr = sqrt(n_i / n_j))."""

    def __init__(self, rng: np.random.Generator, s: Setup, guardrails, se_factor: float = 2.8):
        self.setup, self.guardrails, self.factor = s, tuple(guardrails), se_factor
        self.rng = rng
        self.path: dict[float, np.ndarray] = {}
        self.last = (0.0, np.zeros(len(self.guardrails)))

    def _score(self, info: float) -> np.ndarray:
        """W(info) per guardrail, drawn in increasing info (reads go forward in time)."""
        if info not in self.path:
            at, w = self.last
            if info < at:
                raise ValueError("guardrail reads must go forward in time")
            w = w + self.rng.normal(0.0, math.sqrt(info - at), len(self.guardrails))
            self.path[info], self.last = w, (info, w)
        return self.path[info]

    def at(self, as_of_days: float) -> list[MetricComparison]:
        s = self.setup
        info = s.shop.exposed_per_arm(min(as_of_days, s.exposure_days))
        review = s.shop.exposed_per_arm(s.exposure_days)
        out = []
        for g, w in zip(self.guardrails, self._score(info)):
            se = g.tolerance / self.factor * math.sqrt(review / info)
            est = float(w) / info * math.sqrt(review) * g.tolerance / self.factor
            z = stats.norm.ppf(0.975)
            e = Estimate(est, est - z * se, est + z * se, "simulated-normal", int(round(info)),
                         p_value=float(2 * stats.norm.sf(abs(est) / se)), details={"std_error": se})
            out.append(MetricComparison(g.metric, e, g.bad_direction.opposite, "guardrail", tolerance=g.tolerance,
                                        optional=g.optional))
        return out


@dataclass
class Path:
    """The reads of one experiments row in one replication, in week order: (week, verdict)."""

    reads: list[tuple[IsoWeek, ExperimentVerdict]]
    review_week: IsoWeek

    @property
    def decisions(self) -> list[str]:
        return [str(v.verdict.decision) for _, v in self.reads]

    @property
    def final(self) -> str:
        return self.decisions[-1]

    def kept(self, by: IsoWeek | None = None) -> bool:
        return any(v.verdict.decision == KEEP and (by is None or w <= by) for w, v in self.reads)

    @property
    def stopped(self) -> bool:
        return any(v.verdict.decision == STOP for _, v in self.reads)

    @property
    def shown(self) -> bool:
        """Some read's z reached its look's boundary (a keep were nothing blocking it)."""
        return any(v.verdict.boundary is not None and v.estimate is not None and v.ci_low is not None
                   and _z(v.estimate, v.ci_low, v.ci_high, 0.0, Direction.LOWER, 0.95) >= v.verdict.boundary
                   for _, v in self.reads)


def walk(row: dict, section_at: Callable[[IsoWeek], ComparisonSection], last_week: IsoWeek) -> Path:
    """The weekly reads the code takes of one row (``experiments.due_for_review``): every week from
    planned_looks - 1 weeks before the review date's week to it, then every week while the latest verdict
    is undecided (continue, provisional), up to ``last_week``; a keep, stop or adjust ends the test. Each
    read is judged after the earlier ones (``review.verdict_for`` with the journal's ``EarlierLook`` of
    every earlier verdict: its week, decision, information fraction and boundary)."""
    review_week = IsoWeek.of(row["review_date"])
    week = review_week.shift(-(planned_looks(row) - 1))
    earlier: list[EarlierLook] = []
    reads = []
    while True:
        v = verdict_for(section_at(week), earlier)
        reads.append((week, v))
        earlier.append(EarlierLook(week, str(v.verdict.decision), v.verdict.information_fraction, v.verdict.boundary))
        if not Decision(v.verdict.decision).undecided or week >= last_week:
            return Path(reads, review_week)
        week = week.shift(1)


#: the row variants read on each replication: (row, with the guardrails)
PLAN_MADE, HAND_ENTERED = "plan-made", "hand-entered"


def replicate_paths(s: Setup, rng: np.random.Generator, config, *, cut: float = 1.0, delay: float = 1.0,
                    guardrails=(), weeks_after_review: int = 2,
                    rows: tuple[str, ...] = (PLAN_MADE, HAND_ENTERED)) -> dict[tuple[str, bool], Path]:
    """One replication read through the whole path for each of ``rows`` (plan-made, hand-entered), without and
    (when ``guardrails`` are given) with them. compare_exposed runs once per week read, on the plan-made row with
    the guardrails; the other variants' comparisons are that one with the hand-entered row or without the
    guardrails (``dataclasses.replace``): compare_exposed only stores the row's plan columns and the
    guardrails it is given, so the result is the one a call with them gives (tested)."""
    rep = Replication(rng, s, cut, delay)
    guards = SimulatedGuardrails(rng, s, guardrails) if guardrails else None
    comparisons: dict[IsoWeek, Comparison] = {}

    def comparison(week: IsoWeek) -> Comparison:
        if week not in comparisons:
            as_of_days = week_end_days(week)
            g = guards.at(as_of_days) if guards else []
            comparisons[week] = compare_exposed(s.plan_row, rep.lines(as_of_days), rep.assigned, week.end, config, g,
                                                secondary_views=False, windows=s.inputs.windows)
        return comparisons[week]

    last_week = IsoWeek.of(s.review_date).shift(weeks_after_review)
    out = {}
    for name, row in ((PLAN_MADE, s.plan_row), (HAND_ENTERED, s.hand_row)):
        if name not in rows:
            continue
        for with_guards in ((False, True) if guardrails else (False,)):
            def section_at(week: IsoWeek, row=row, with_guards=with_guards) -> ComparisonSection:
                c = comparison(week)
                return dataclasses.replace(c, experiment=row, guardrails=c.guardrails if with_guards else []).section()
            out[(name, with_guards)] = walk(row, section_at, last_week)
    return out


@dataclass
class Tally:
    """Counts over replications of one variant."""

    reps: int = 0
    kept_by_review: int = 0
    kept: int = 0
    stopped: int = 0
    shown: int = 0
    undecided_at_end: int = 0
    reads: list[int] = field(default_factory=list)
    finals: dict[str, int] = field(default_factory=dict)
    review_fractions: list[float] = field(default_factory=list)

    def add(self, p: Path) -> None:
        self.reps += 1
        self.kept_by_review += p.kept(by=p.review_week)
        self.kept += p.kept()
        self.stopped += p.stopped
        self.shown += p.shown
        self.undecided_at_end += Decision(p.final).undecided
        self.reads.append(len(p.reads))
        self.finals[p.final] = self.finals.get(p.final, 0) + 1
        review = [v for w, v in p.reads if w == p.review_week]
        if review and review[0].verdict.information_fraction is not None:
            self.review_fractions.append(review[0].verdict.information_fraction)

    def rate(self, what: str) -> float:
        return getattr(self, what) / self.reps


def read_many(s: Setup, reps: int, seed: int, config, **kwargs) -> dict[tuple[str, bool], Tally]:
    """``reps`` seeded replications through ``replicate_paths``, tallied per row variant."""
    rng = np.random.default_rng(seed)
    tallies: dict[tuple[str, bool], Tally] = {}
    for _ in range(reps):
        for key, p in replicate_paths(s, rng, config, **kwargs).items():
            tallies.setdefault(key, Tally()).add(p)
    return tallies
