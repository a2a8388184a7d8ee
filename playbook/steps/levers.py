"""Step 3 of the loop: one lever, one cohort, one primary metric, an expected range set in advance.

The plan is written before acting so that the review cannot move the goalposts: the lever
(by default the decision table's lever for the cohort's dominant reason), the primary metric and
its expected impact range, the guardrails with their tolerances, and the power of the read the
review will actually make: ``return_rate_{K}d`` read at the review date on the units delivered at
least K days before it, customers as clusters (design effect measured on the cohort's baseline
weeks). The review date is the first weekly review at which that read reaches 80 % power; J+7
stays a first look (split, guardrails, early trend) that can stop a harmful change, never keep one.
A plan that cannot reach power within ``experiments.max_weeks`` proposes its alternatives (the
parent slice, pooled with the next flagged cohort, a bigger lever, a longer run) and the ready
experiments row takes the first that reaches power; when none does, no row is written.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import ibis
import numpy as np
import pandas as pd
from scipy.stats import norm

from playbook.core.atomic import write_text
from playbook.core.csvsafe import neutralise_row
from playbook.core.jsonmodel import NOT_IN_JSON, OMIT_IF_NONE, from_json
from playbook.core.settings import SLICE_COLUMNS, Config, Guardrail
from playbook.core.vocabulary import Design, Direction
from playbook.core.weeks import IsoWeek
from playbook.data.contract import SELECTION_COLUMNS, TABLES, format_cohort, parse_cohort
from playbook.data.dataset import Snapshot
from playbook.data.facts import (
    EXPOSURE_COLUMNS,
    line_facts,
    matches,
    return_lag_histogram,
    returns_of_lines,
    with_first_return,
)
from playbook.journal.entry import JournalEntry
from playbook.journal.under_test import CohortInTest, holding_test
from playbook.metrics.dictionary import metric_named, return_rate
from playbook.metrics.display import Display, cohort_words, metric_title, plain
from playbook.metrics.forms import ArmData
from playbook.stats.delay import return_window_from_histogram
from playbook.stats.power import (
    CustomerClustering,
    KDayPlan,
    clustering_from_sums,
    k_day_read_mde,
    k_day_read_plan,
)
from playbook.stats.results import jsonable
from playbook.steps.cohorts import CandidateEntry, WeakCohortSection

PLANNED_POWER = 0.8
#: The weekly reads a plan counts on, the last at its review date: alpha is spent across them by information
#: (``stats.sequential``), so a strong effect can be kept early and the review's read needs about z >= 2.0.
MAX_PLANNED_LOOKS = 4
FIRST_LOOK_DAYS = 7  # J+7: split, guardrails and early trend; it can stop a harmful change, never keep one


@dataclass(frozen=True)
class SelectionWeeks:
    """The delivery weeks step 2 read when it chose the cohort, as ISO weeks: from ``first`` (its
    baseline's first week; the window's first when it had no baseline) to ``last`` (its window's last),
    the window from ``window``.

    The plan writes them into its experiments row (``contract.SELECTION_COLUMNS``): the window is high
    and the baseline low by selection, so step 4's pre/post pre-period must end before ``first``
    (``experiments._pre_period``); step 2's windows are the analyst's choice, so step 4 cannot rebuild
    them from the start date alone.
    """

    first: str
    window: str
    last: str

    @classmethod
    def of(cls, weak: WeakCohortSection) -> SelectionWeeks | None:
        """The weeks of step 2's summary section (None when it did not record its baseline, or read nothing)."""
        if weak.baseline_weeks is None or not weak.window_weeks:
            return None
        read = sorted([*weak.baseline_weeks, *weak.window_weeks])
        return cls(str(IsoWeek.of(read[0])), str(IsoWeek.of(min(weak.window_weeks))), str(IsoWeek.of(read[-1])))

    def row(self) -> dict[str, str]:
        """The experiments row's optional columns."""
        return dict(zip(SELECTION_COLUMNS, (self.first, self.window, self.last)))

    def describe(self) -> str:
        return f"{self.first} to {self.last}, window from {self.window}"


@dataclass(frozen=True)
class PowerOption:
    """One way to run the lever, with the power of the review's K-day read and the weeks it needs.

    Attributes:
        kind: ``as_planned``, ``widened`` (the parent slice), ``pooled`` (with the next flagged
            cohort of the same lever), ``bigger_lever`` (powered for the stronger end of the range)
            or ``longer_run`` (the planned cohort and change, run as long as needed).
        expected_change: the change the option is powered for (absolute, signed).
        weeks: weeks from the start to the review at which the read reaches 80 % power, when
            within the configured maximum; ``weeks_uncapped`` without the maximum.
        power: the read's power at ``weeks`` (or at the maximum duration when not reached).
        can_be_a_row: False when the option cannot be written as one experiments row (``note``).
        power_by_week: the read's power at each weekly review 1..max_weeks (the power curve of
            step 3's chart; not in summary.json, so not compared: a section read back equals its plan's).
    """

    kind: str
    description: str
    cohort: str
    expected_low: float
    expected_high: float
    expected_change: float
    base_rate: float
    weekly_units: float
    design_effect: float | None
    weeks: int | None
    weeks_uncapped: int | None
    power: float | None
    mature_share: float | None
    reaches_power: bool
    can_be_a_row: bool = True
    note: str = ""
    power_by_week: tuple[float | None, ...] = field(default=(), compare=False, metadata=NOT_IN_JSON)
    #: the looks of the design at ``weeks`` and the information (mature customers per arm) of its review read
    planned_looks: int = field(default=1, compare=False, metadata=NOT_IN_JSON)
    planned_information: float | None = field(default=None, compare=False, metadata=NOT_IN_JSON)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class GuardrailPower:
    """A guardrail as the plan sizes it: the standard error its read will have at the review and the power
    to show it safe (non-inferiority at its tolerance, one-sided 2.5 %, no true effect).

    Measured on the cohort's baseline weeks split A/A by customer and read by the guardrail's own per-arm
    form (the function the verdict reads), scaled to the review's customers per arm (standard errors shrink
    as 1 / sqrt(customers)). ``powered``: at least the plan's power; when not, ``note`` says what it means
    (a keep will carry a dated follow-up read of it). With no true effect a guardrail blocks a keep at most
    2.5 % of the time (harm must be shown), so two such guardrails cost at most about 5 points of power.
    """

    metric: str
    tolerance: float
    std_error: float | None
    power: float | None
    powered: bool
    note: str


@dataclass(frozen=True)
class LeverPlan:
    experiment_id: str
    lever: str
    lever_description: str
    cohort: str
    reason_code: str
    design: Design
    control_cohort: str
    primary_metric: str
    good_direction: Direction
    expected_low: float
    expected_high: float
    start_date: dt.date
    review_date: dt.date
    base_rate: float
    weekly_units: float
    mde_at_max_weeks: float | None  # smallest change the K-day read detects with 80 % power at the longest run
    weeks_needed: int | None
    power_message: str
    underpowered: bool = False  # the plan as designed cannot reach power within max_weeks
    guardrails: tuple[Guardrail, ...] = field(default_factory=tuple)
    first_look_date: dt.date | None = None  # J+7: can stop a harmful change, never keep one
    max_weeks: int = 8
    k_days: int = 14
    design_effect: float | None = None
    icc: float | None = None
    power_at_review: float | None = None
    mature_share_at_review: float | None = None
    options: tuple[PowerOption, ...] = field(default_factory=tuple)
    chosen_option: str | None = None  # the kind of the option the ready row takes; None: no row
    no_row_reason: str | None = None
    #: the analyst's choices that differ from the defaults ("lever=size_guide; design=pre_post"), journaled
    chosen_by_analyst: str = ""
    #: the delivery weeks step 2 read when it chose the cohort (None: its summary did not record its baseline)
    selection: SelectionWeeks | None = None
    #: the sequential design of the ready row: its weekly looks (the last at the review date) and the
    #: information its review read was sized for (mature customers per arm), written in the row
    planned_looks: int = 1
    planned_information: float | None = None
    #: each guardrail's read at the review: its power to be shown safe at its tolerance
    guardrail_powers: tuple[GuardrailPower, ...] = ()
    #: the plan's warning when K holds less than 90 % of the shop's historical returns (None: it holds them)
    window_warning: str | None = None

    @property
    def ready(self) -> bool:
        """True when an option reaches 80 % power within ``max_weeks`` and can be written as a row."""
        return self.chosen_option is not None

    def experiments_row(self) -> dict[str, Any] | None:
        """The plan as a ready row of the ``experiments`` table (data contract), with the weeks step 2 read
        in its optional columns when known; None when not ready."""
        if not self.ready:
            return None
        row = {
            "experiment_id": self.experiment_id, "lever": self.lever, "cohort": self.cohort, "design": self.design,
            "control_cohort": self.control_cohort, "primary_metric": self.primary_metric,
            "expected_low": round(self.expected_low, 6), "expected_high": round(self.expected_high, 6),
            "start_date": self.start_date.isoformat(), "review_date": self.review_date.isoformat(),
        }
        row |= self.selection.row() if self.selection is not None else {}
        return row | {"planned_looks": self.planned_looks,
                      "planned_information": round(self.planned_information, 1) if self.planned_information else None}

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def summary_section(self) -> LeverSection:
        row = self.experiments_row()
        return LeverSection(
            lever=self.lever, cohort=self.cohort, primary_metric=self.primary_metric,
            expected_low=self.expected_low, expected_high=self.expected_high, mde=self.mde_at_max_weeks,
            weeks_needed=self.weeks_needed, underpowered=self.underpowered, ready=self.ready,
            experiment_id=self.experiment_id, design=self.design,
            reason_code=self.reason_code, base_rate=self.base_rate, weekly_units=self.weekly_units,
            guardrails=self.guardrails, power=self.power_message,
            start_date=self.start_date, first_look_date=self.first_look_date, review_date=self.review_date,
            max_weeks=self.max_weeks, k_days=self.k_days, design_effect=self.design_effect, icc=self.icc,
            power_at_review=self.power_at_review, mature_share_at_review=self.mature_share_at_review,
            options=self.options, chosen_option=self.chosen_option,
            no_row_reason=self.no_row_reason,
            experiments_row=from_json(ExperimentsRow, row, "lever.experiments_row") if row is not None else None,
            guardrail_powers=self.guardrail_powers or None, window_warning=self.window_warning,
        )


@dataclass(frozen=True)
class ExperimentsRow:
    """The ready row of the ``experiments`` table (data contract) the plan proposes."""
    experiment_id: str
    lever: str
    cohort: str
    design: Design
    control_cohort: str
    primary_metric: str
    expected_low: float
    expected_high: float
    start_date: dt.date
    review_date: dt.date
    #: the weeks step 2 read (``SelectionWeeks``), absent when its summary did not record them
    selection_first_week: str | None = field(default=None, metadata=OMIT_IF_NONE)
    selection_window_week: str | None = field(default=None, metadata=OMIT_IF_NONE)
    selection_last_week: str | None = field(default=None, metadata=OMIT_IF_NONE)
    #: the plan's sequential design (``contract.PLAN_COLUMNS``)
    planned_looks: int | None = field(default=None, metadata=OMIT_IF_NONE)
    planned_information: float | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class LeverSection:
    """The ``lever`` section of summary.json: the plan written before acting (see :class:`LeverPlan`).

    ``mde``: the smallest change the K-day read detects with 80 % power at the longest run; ``power``:
    the power message in words; ``experiments_row``: None when no option is ready.
    """

    lever: str
    cohort: str
    primary_metric: str
    expected_low: float
    expected_high: float
    mde: float | None
    weeks_needed: int | None
    underpowered: bool
    ready: bool
    experiment_id: str
    design: Design
    reason_code: str
    base_rate: float
    weekly_units: float
    guardrails: tuple[Guardrail, ...]
    power: str
    start_date: dt.date
    first_look_date: dt.date | None
    review_date: dt.date
    max_weeks: int
    k_days: int
    design_effect: float | None
    icc: float | None
    power_at_review: float | None
    mature_share_at_review: float | None
    options: tuple[PowerOption, ...]
    chosen_option: str | None
    no_row_reason: str | None
    experiments_row: ExperimentsRow | None
    guardrail_powers: tuple[GuardrailPower, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    window_warning: str | None = field(default=None, metadata=OMIT_IF_NONE)


def _cohort_lines(snap: Snapshot, k: int, filters: dict[str, str], weeks: list[dt.date]) -> ibis.Table:
    lf = line_facts(snap, k)
    return lf.filter(lf.delivered_ts.notnull() & lf.delivery_week.isin(weeks) & matches(lf, filters))


def cohort_volume(snap: Snapshot, k: int, filters: dict[str, str], weeks: list[dt.date]) -> tuple[float, float]:
    """Units delivered per week and return rate within k days of the cohort over ``weeks``."""
    lf = _cohort_lines(snap, k, filters, weeks)
    row = lf.agg(units=lf.units.sum(), returned=lf.returned_units_k.sum()).to_pandas().iloc[0]
    units = float(row["units"] or 0)
    return units / max(len(weeks), 1), (float(row["returned"]) / units if units else float("nan"))


def cohort_clustering(snap: Snapshot, k: int, filters: dict[str, str], weeks: list[dt.date]) -> CustomerClustering:
    """How much the cohort's units move together within a customer over ``weeks`` (delivery weeks).

    Computed in the engine: per-customer sums of units and of units returned within k days,
    then one row of moments (customers, Σu, Σr, Σu², Σr², Σur); no line leaves the database.
    A line without a customer id is its order's own cluster.
    """
    lf = _cohort_lines(snap, k, filters, weeks)
    cluster = lf.customer_id.cast("string").fill_null("order:" + lf.order_id.cast("string"))
    per = lf.group_by(cluster.name("cluster")).agg(u=lf.units.sum().cast("float64"),
                                                   r=lf.returned_units_k.sum().cast("float64"))
    row = per.agg(g=per.count(), su=per.u.sum(), sr=per.r.sum(), suu=(per.u * per.u).sum(),
                  srr=(per.r * per.r).sum(), sur=(per.u * per.r).sum()).to_pandas().iloc[0]
    val = {c: (0.0 if row[c] is None or row[c] != row[c] else float(row[c])) for c in row.index}
    return clustering_from_sums(int(val["g"]), val["su"], val["sr"], val["suu"], val["srr"], val["sur"])


def baseline_weeks(window_weeks: list[dt.date], n: int) -> list[dt.date]:
    """The ``n`` delivery weeks just before the cohort's window (the cohort's own normal)."""
    first = min(window_weeks)
    return [first - dt.timedelta(days=7 * i) for i in range(n, 0, -1)]


def _design_effect_by_read_length(snap: Snapshot, k: int, filters: dict[str, str], weeks: list[dt.date],
                                  fallback: list[dt.date]) -> tuple[Callable[[float], float], CustomerClustering]:
    """Design effect for a read of ``read_days`` of deliveries, measured on the last baseline weeks
    of that length (customers accumulate lines over a longer read, so the effect grows with it).
    Without baseline data (a young shop) the ``fallback`` weeks (the cohort's window) are used
    rather than assuming independent lines."""

    @functools.lru_cache(maxsize=None)
    def measured(n_weeks: int) -> CustomerClustering:
        c = cohort_clustering(snap, k, filters, weeks[-n_weeks:])
        return c if c.ok else cohort_clustering(snap, k, filters, fallback[-n_weeks:])

    def deff(read_days: float) -> float:
        c = measured(min(max(math.ceil(read_days / 7), 1), len(weeks)))
        return c.design_effect if c.ok else 1.0

    deff.customers_per_unit = lambda read_days: _customers_per_unit(measured(min(max(math.ceil(read_days / 7), 1),
                                                                                  len(weeks))))
    return deff, measured(len(weeks))


def _customers_per_unit(c: CustomerClustering) -> float:
    """Customers per delivered unit over a read of that length (1 when nothing was measured)."""
    return c.customers / c.units if c.units > 0 and c.customers > 0 else 1.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "-", text.upper()).strip("-")


@dataclass(frozen=True)
class _Population:
    """A population the lever could run on: its filter, volume, rate and design effect by read length."""
    cohort: str
    weekly_units: float
    base_rate: float
    deff: Callable[[float], float]
    clustering: CustomerClustering


def _population(snap: Snapshot, k: int, filters: dict[str, str], window: list[dt.date],
                baseline: list[dt.date]) -> _Population:
    weekly, rate = cohort_volume(snap, k, filters, window)
    deff, clustering = _design_effect_by_read_length(snap, k, filters, baseline, window)
    return _Population(format_cohort(filters), weekly, rate, deff, clustering)


def _option(kind: str, description: str, pop: _Population, low: float, high: float, change: float,
            per_arm_share: float, k: int, max_weeks: int, power: float, *, can_be_a_row: bool = True,
            note: str = "") -> PowerOption:
    plan = _read_plan(pop, change, per_arm_share, k, max_weeks, power)
    at = plan.at_review if plan is not None and not plan.error else None
    return PowerOption(
        kind=kind, description=description, cohort=pop.cohort, expected_low=low, expected_high=high,
        expected_change=change, base_rate=pop.base_rate, weekly_units=pop.weekly_units,
        design_effect=at.design_effect if at else None,
        weeks=plan.weeks if plan else None, weeks_uncapped=plan.weeks_uncapped if plan else None,
        power=plan.achieved_power if plan else None, mature_share=at.mature_share if at else None,
        reaches_power=bool(plan and plan.reachable), can_be_a_row=can_be_a_row,
        note=note or (plan.message if plan else _no_power_reason(pop, change)),
        power_by_week=plan.power_by_week if plan else (),
        planned_looks=plan.planned_looks if plan else 1,
        planned_information=plan.planned_information if plan else None,
    )


def _no_power_reason(pop: _Population, change: float) -> str:
    if not pop.weekly_units > 0:
        return "no power: the cohort had no delivered unit in its window"
    if not 0 < pop.base_rate < 1:
        return f"no power: the cohort's return rate is {pop.base_rate:.0%}"
    if change == 0:
        return "no power: the expected change is 0"
    return f"no power: a change of {change * 100:+.1f} points takes the rate {pop.base_rate:.1%} outside 0-100 %"


def _read_plan(pop: _Population, change: float, per_arm_share: float, k: int, max_weeks: int,
               power: float) -> KDayPlan | None:
    if not (pop.weekly_units > 0 and 0 < pop.base_rate < 1 and change != 0):
        return None
    plan = k_day_read_plan(pop.base_rate, change, pop.weekly_units * per_arm_share, k, pop.deff,
                           power=power, max_weeks=max_weeks, max_looks=MAX_PLANNED_LOOKS,
                           customers_per_unit=getattr(pop.deff, "customers_per_unit", 1.0))
    return None if plan.error else plan


def _next_candidate(weak: WeakCohortSection, candidates: list[CandidateEntry], lever: str,
                    config: Config) -> dict[str, str] | None:
    """The next flagged cohort on the same dimension whose reason calls for the same lever."""
    keys = set(weak.filters)
    for c in sorted(candidates or [], key=lambda c: -c.excess_cost):
        f = c.filters
        if f == weak.filters or set(f) != keys:
            continue
        if config.lever_for(f.get("reason_code", "other"))["lever"] == lever:
            return {k: v for k, v in f.items() if k != "reason_code"}
    return None


def design_lever(
    weak: WeakCohortSection, snap: Snapshot, config: Config, *,
    lever: str = "", design: Design | str = Design.RANDOMIZED, expected_low: float | None = None,
    expected_high: float | None = None, share_of_excess: tuple[float, float] = (0.7, 0.3),
    power: float = PLANNED_POWER,
    candidates: list[CandidateEntry] | None = None,
) -> LeverPlan:
    """Plan the lever for the weak cohort ``weak`` (the ``weak_cohort`` summary section).

    Default expected range: the lever removes between 30 % and 70 % of the cohort's excess rate
    (its reason's rate above its own baseline), as an absolute change of the slice's return rate.
    ``candidates`` (summary.json's ``weak_cohort_candidates``) gives the cohort to pool with.
    Power: :func:`playbook.stats.power.k_day_read_plan` for the weaker end of the range, with the
    design effect of the cohort's baseline weeks; the alternatives when it does not reach
    ``power`` within ``config.experiments.max_weeks`` are described in :class:`PowerOption`.
    """
    if design not in set(Design):
        raise ValueError(f"unknown design {design!r}; known designs: {', '.join(Design)}")
    design = Design(design)
    k = config.metrics.return_window_days
    primary = return_rate(k)
    max_weeks = config.experiments.max_weeks
    reason = weak.filters["reason_code"]
    slice_filter = {c: v for c, v in weak.filters.items() if c != "reason_code"}
    chosen = config.lever_for(reason)
    lever_name = lever or chosen["lever"]
    description = chosen.get("description", "") if not lever or lever == chosen["lever"] else lever
    excess_rate = max(weak.return_rate - weak.expected_rate, 0.0)
    lo = expected_low if expected_low is not None else -share_of_excess[0] * excess_rate
    hi = expected_high if expected_high is not None else -share_of_excess[1] * excess_rate
    lo, hi = sorted((float(lo), float(hi)))
    weaker_end = hi if hi < 0 else lo  # the change closest to zero that we still want to see
    stronger_end = lo if hi < 0 else hi
    # the same delivery weeks in which step 2 found the cohort (recorded in its summary section)
    window = list(weak.window_weeks)
    base_weeks = baseline_weeks(window, config.metrics.baseline_weeks)
    share = 0.5 if design == Design.RANDOMIZED else 1.0
    pop = _population(snap, k, slice_filter, window, base_weeks)
    options = _options(snap, config, weak, candidates, lever_name, pop, slice_filter, window, base_weeks,
                       lo, hi, weaker_end, stronger_end, share, k, max_weeks, power)
    as_planned = options[0]
    pick = next((o for o in options if o.reaches_power and o.can_be_a_row), None)
    start = snap.week.sunday + dt.timedelta(days=1)
    run = pick or as_planned
    cohort = run.cohort
    review = start + dt.timedelta(days=7 * (pick.weeks if pick else max_weeks))
    mde = (k_day_read_mde(pop.base_rate, pop.weekly_units * share, k, 7 * max_weeks, pop.deff, power=power)
           if pop.weekly_units > 0 and 0 < pop.base_rate < 1 else None)
    no_row = None if pick else (
        f"No experiment is ready this week: {lever_name} on {as_planned.cohort or 'the whole shop'} cannot reach "
        f"{power:.0%} power within {max_weeks} weeks, nor can any alternative, so no experiments row was written.")
    return LeverPlan(
        experiment_id=f"EXP-{snap.week.shift(1)}-{_slug(cohort.split('=', 1)[-1]) or 'ALL'}-{_slug(lever_name)}",
        lever=lever_name, lever_description=description, cohort=cohort, reason_code=reason, design=design,
        control_cohort="", primary_metric=primary.name, good_direction=primary.good_direction,
        expected_low=run.expected_low, expected_high=run.expected_high, start_date=start, review_date=review,
        base_rate=run.base_rate, weekly_units=run.weekly_units, mde_at_max_weeks=mde,
        weeks_needed=run.weeks if pick else as_planned.weeks_uncapped,
        underpowered=not as_planned.reaches_power, power_message=_power_message(as_planned, pick, k),
        guardrails=tuple(config.experiments.guardrails[design]),
        first_look_date=start + dt.timedelta(days=FIRST_LOOK_DAYS), max_weeks=max_weeks, k_days=k,
        design_effect=run.design_effect, icc=pop.clustering.icc, power_at_review=run.power,
        mature_share_at_review=run.mature_share, options=tuple(options),
        chosen_option=pick.kind if pick else None, no_row_reason=no_row, selection=SelectionWeeks.of(weak),
        planned_looks=run.planned_looks, planned_information=run.planned_information,
        guardrail_powers=guardrail_powers(snap, config, parse_cohort(run.cohort), base_weeks or window, design,
                                          run.planned_information, power),
        window_warning=_window_warning(snap, k),
    )


def guardrail_powers(snap: Snapshot, config: Config, filters: dict[str, str], weeks: list[dt.date], design: Design,
                     customers_per_arm: float | None, power: float = PLANNED_POWER) -> tuple[GuardrailPower, ...]:
    """Each guardrail's power to be shown safe at the review (:class:`GuardrailPower`); a pre/post design's
    guardrails are read by difference in differences on weekly cells and are not sized here (said so)."""
    guards = config.experiments.guardrails[design]
    if design != Design.RANDOMIZED:
        return tuple(GuardrailPower(g.metric, g.tolerance, None, None, False, "not sized: a pre/post design reads its "
                                    "guardrails against the control cohort's weeks, whose noise the plan cannot split")
                     for g in guards)
    data = _baseline_aa(snap, config.metrics.return_window_days, filters, weeks)
    out = []
    for g in guards:
        out.append(_guardrail_power(g, data, snap, config, customers_per_arm, power))
    return tuple(out)


def _baseline_aa(snap: Snapshot, k: int, filters: dict[str, str], weeks: list[dt.date]) -> ArmData | None:
    """The cohort's baseline lines split A/A by customer (a stable hash of the id), as an exposure."""
    lf = _cohort_lines(snap, k, filters, weeks)
    lines = with_first_return(snap, lf).select(*EXPOSURE_COLUMNS).to_pandas()
    if lines.empty:
        return None
    lines["returned_units"] = lines["returned_units"].fillna(0).clip(upper=lines["units"])
    customers = lines["customer_id"].astype(str)
    lines["arm"] = np.where(pd.util.hash_pandas_object(customers, index=False).to_numpy() % 2 == 0,
                            "control", "treatment")
    assigned = lines[["customer_id", "arm"]].drop_duplicates("customer_id").rename(columns={"arm": "variant"})
    return ArmData(snap, "A/A", lines, snap.cutoff, assigned=assigned)


def _guardrail_power(g: Guardrail, data: ArmData | None, snap: Snapshot, config: Config,
                     customers_per_arm: float | None, power: float) -> GuardrailPower:
    def unsized(why: str) -> GuardrailPower:
        return GuardrailPower(g.metric, g.tolerance, None, None, False, f"not sized: {why}")

    metric = metric_named(g.metric, config.metrics)
    if metric is None or metric.per_arm is None:
        return unsized(f"{g.metric} has no per-arm form")
    if data is None or not customers_per_arm:
        return unsized("the cohort has no baseline line to measure its noise on")
    missing = [t for t in metric.per_arm.needs if t != "assignments" and not snap.has(t)]
    if missing:
        return unsized(snap.missing(missing[0]))
    est = metric.per_arm.compare(metric, data)
    se = est.details.get("std_error") if est.ok else None
    if se is None and est.ok:
        se = (est.ci_high - est.ci_low) / (2 * float(norm.ppf(0.5 + est.confidence / 2)))
    if not se or not math.isfinite(se):
        return unsized(est.error or "no standard error on the baseline")
    base = float(data.lines.groupby("arm")["customer_id"].nunique().mean())
    planned_se = float(se) * math.sqrt(base / customers_per_arm)
    p = float(norm.cdf(g.tolerance / planned_se - norm.ppf(0.975)))
    # the tolerance in the metric's unit ("0.2 points", "EUR 2"), as the brief reads it
    tolerance = Display(config.currency, config.metrics).change(g.metric, abs(g.tolerance)).lstrip("+")
    if p >= power:
        return GuardrailPower(g.metric, g.tolerance, planned_se, p, True,
                              f"{p:.0%} power to show it within its tolerance ({tolerance}) at the review")
    needed = base * (float(se) * (norm.ppf(0.975) + norm.ppf(power)) / g.tolerance) ** 2
    return GuardrailPower(g.metric, g.tolerance, planned_se, p, False, (
        f"only {p:.0%} power to show it within its tolerance ({tolerance}) at the review (about "
        f"{needed:,.0f} customers per arm would give {power:.0%}): a keep will carry a dated follow-up read of it; "
        "harm is still blocked when it is shown"))


def _window_warning(snap: Snapshot, k: int, share: float = 0.9) -> str | None:
    """A warning when the K-day window holds less than ``share`` of the shop's historical returns."""
    window = return_window_from_histogram(return_lag_histogram(snap).to_pandas(), k, share)
    if window.error is not None or window.holds_share:
        return None
    return (f"{window.why}: a lever that only delays returns can look like one that prevents them; the verdict "
            "checks the timing of the returns and waits for a longer read before a keep")


def _options(snap, config, weak, candidates, lever_name, pop, slice_filter, window, base_weeks,
             lo, hi, weaker_end, stronger_end, share, k, max_weeks, power) -> list[PowerOption]:
    """The planned run first, then the alternatives in the order the ready row considers them."""
    opt = functools.partial(_option, per_arm_share=share, k=k, max_weeks=max_weeks, power=power)
    options = [opt("as_planned", f"as planned, powered for the weaker end ({weaker_end * 100:+.1f} points)",
                   pop, lo, hi, weaker_end)]
    if slice_filter:
        parent_filter = dict(list(slice_filter.items())[:-1])
        parent = _population(snap, k, parent_filter, window, base_weeks)
        # the lever removes the cohort's excess only: the same returns avoided, spread over more units
        dilution = pop.weekly_units / parent.weekly_units if parent.weekly_units > 0 else 0.0
        options.append(opt("widened", f"widened to the parent slice ({parent.cohort or 'the whole shop'}), "
                           f"the cohort's effect diluted to {dilution:.0%}", parent, lo * dilution, hi * dilution,
                           weaker_end * dilution))
    other = _next_candidate(weak, candidates or [], lever_name, config)
    if other:
        pooled = _population(snap, k, other, window, base_weeks)
        both = _Population(f"{pop.cohort} + {pooled.cohort}", pop.weekly_units + pooled.weekly_units,
                           (pop.base_rate * pop.weekly_units + pooled.base_rate * pooled.weekly_units)
                           / max(pop.weekly_units + pooled.weekly_units, 1e-12),
                           lambda d: max(pop.deff(d), pooled.deff(d)), pop.clustering)
        options.append(opt("pooled", f"pooled with the next flagged cohort of the same lever ({pooled.cohort}), "
                           "assuming the same change there", both, lo, hi, weaker_end, can_be_a_row=False,
                           note="two slices are not one experiments-table cohort (a cohort is one filter): "
                                "write it as two experiments with the same plan"))
    options.append(opt("bigger_lever", f"a bigger lever, powered for the stronger end ({stronger_end * 100:+.1f} points)",
                       pop, lo, hi, stronger_end))
    planned = options[0]
    if not planned.reaches_power:
        longer = planned.weeks_uncapped
        options.append(replace(planned, kind="longer_run", description=(
            f"a longer run: {longer} weeks" if longer else "a longer run: more than two years"),
            note=f"beyond the maximum of {max_weeks} weeks"))
    return options


def _power_message(planned: PowerOption, pick: PowerOption | None, k: int) -> str:
    text = f"As planned: {planned.note}"
    if pick is None or pick.kind == "as_planned":
        return text
    return f"{text}. Ready row: {pick.description}, {pick.weeks} week(s) at {pick.power:.0%} power"


def journal_entry(plan: LeverPlan, week: str):
    """The plan as a decision-journal entry (kind ``plan``)."""
    ready = (f"review {plan.review_date} (first look {plan.first_look_date}: can stop, never keep)" if plan.ready
             else "not ready: no experiments row")
    selected = f" (chosen on delivery weeks {plan.selection.describe()})" if plan.selection else ""
    return JournalEntry(
        week=week, kind="plan", experiment_id=plan.experiment_id, lever=plan.lever, cohort=plan.cohort,
        primary_metric=plan.primary_metric, design=plan.design, expected_low=plan.expected_low,
        expected_high=plan.expected_high,
        why=f"weak cohort {plan.cohort} x {plan.reason_code}{selected}; {ready}; {plan.power_message}",
        chosen_by_analyst=plan.chosen_by_analyst,
    )


def conclusion(plan: LeverPlan | None) -> str:
    if plan is None:
        return "No weak cohort this week, so no new lever: the team keeps its capacity for the running tests."
    text = (f"Plan {plan.experiment_id}: {_lever_text(plan)} on {cohort_words(plan.cohort)} ({Design(plan.design).words}), "
            f"expecting {metric_title(plan.primary_metric)} to change by {plan.expected_low * 100:+.1f} to "
            f"{plan.expected_high * 100:+.1f} points")
    if not plan.ready:
        return (f"{plan.no_row_reason} As planned it would need "
                f"{f'about {plan.weeks_needed} weeks' if plan.weeks_needed else 'more than two years'}: "
                f"find a bolder lever or a bigger cohort before running it.")
    first = (f"the J+7 look on {plan.first_look_date} checks the split and the guardrails and can stop a harmful "
             f"change, but never keeps one")
    if plan.chosen_option != "as_planned":
        return (f"{text}. As planned it could not reach 80 % power within {plan.max_weeks} weeks, so the ready row takes "
                f"the alternative '{_chosen_words(plan)}': review on {plan.review_date}, after {plan.weeks_needed} "
                f"week(s), when the {plan.k_days}-day read has {plan.power_at_review:.0%} power; {first}.")
    return (f"{text}; review on {plan.review_date}, after {plan.weeks_needed} week(s), when the {plan.k_days}-day "
            f"read has {plan.power_at_review:.0%} power; {first}.")


def guardrail_table(plan: LeverPlan):

    return pd.DataFrame([{"guardrail": g.metric, "harm is": g.bad_direction, "tolerance": g.tolerance,
                          "what it watches": g.description} for g in plan.guardrails])


def options_table(plan: LeverPlan):
    """The planned run and its alternatives: power of the review's read and the weeks each needs."""
    return pd.DataFrame([{
        "option": o.kind, "what": o.description, "cohort": o.cohort or "(whole shop)",
        "powered for (points)": round(o.expected_change * 100, 2),
        "weeks to 80 % power": o.weeks_uncapped, f"power within {plan.max_weeks} weeks": o.power,
        "design effect": o.design_effect, "reaches power": o.reaches_power,
        "ready row": o.kind == plan.chosen_option, "note": o.note,
    } for o in plan.options])


def experiments_table(plan: LeverPlan):
    """The ready row for the ``experiments`` table, to paste into the source (empty when not ready)."""


    row = plan.experiments_row()
    return pd.DataFrame([row] if row else [], columns=list(row or TABLES["experiments"].column_names))


def describe(plan: LeverPlan) -> list[tuple[str, str]]:
    """The plan in sentences (title, text) for the notebook."""
    when = (f"from {plan.start_date}, first look on {plan.first_look_date} (split, guardrails, early trend: it can "
            f"stop a harmful change, never keep one), review on {plan.review_date}" if plan.ready
            else f"not ready to run ({plan.no_row_reason.rstrip('.')})")
    return [
        ("Lever.", f"{_lever_text(plan)} on {cohort_words(plan.cohort)} (dominant reason \"{plain(plan.reason_code)}\"), "
                   f"design {Design(plan.design).words}, {when}."),
        ("Primary metric.", f"{metric_title(plan.primary_metric)}, base rate {plan.base_rate:.1%} on "
                            f"{plan.weekly_units:,.0f} units a week; expected change {plan.expected_low * 100:+.1f} to "
                            f"{plan.expected_high * 100:+.1f} points; "
                            f"read at the review on the units delivered at least {plan.k_days} days before it, "
                            f"customers as clusters (design effect {_num(plan.design_effect)})."),
        *([("Looks.", f"{plan.planned_looks} weekly reads, the last on the review date; alpha is spent by the "
                      f"information each read holds (about {plan.planned_information:,.0f} customers per arm with a "
                      f"{plan.k_days}-day read at the review), so a strong effect can be kept early and the review "
                      "needs about z >= 2.0.")] if plan.ready and plan.planned_looks > 1 and plan.planned_information
          else []),
        *([("Guardrails.", "; ".join(f"{metric_title(g.metric)}: {g.note}" for g in plan.guardrail_powers) + ".")]
          if plan.guardrail_powers else []),
        *([("Return window.", plan.window_warning + ".")] if plan.window_warning else []),
    ]


def _lever_text(plan: LeverPlan) -> str:
    """The lever as the configuration describes it (its id when it has no description)."""
    return plan.lever_description or plain(plan.lever)


def _chosen_words(plan: LeverPlan) -> str:
    """The option the ready row takes, by its description ("a bigger lever, powered for the stronger end")."""
    return next((o.description for o in plan.options if o.kind == plan.chosen_option), plain(plan.chosen_option or ""))


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


@dataclass(frozen=True)
class ExperimentsRowFile:
    """What :func:`write_experiments_row` did: the file written, or why none was."""
    path: Path | None
    message: str


def write_experiments_row(plan: LeverPlan, run_dir) -> ExperimentsRowFile:
    """``experiments_plan.csv`` in the week's folder: the plan as a row to append to the experiments table.

    A plan that cannot reach power writes nothing (and removes a row left by an earlier run of the
    same folder, which would otherwise still look ready); the message says why.
    """



    target = Path(run_dir) / "experiments_plan.csv"
    row = plan.experiments_row()
    if row is None:
        target.unlink(missing_ok=True)
        return ExperimentsRowFile(None, plan.no_row_reason or "No experiments row written.")
    buffer = io.StringIO()
    # people open it in a spreadsheet: a lever or cohort such as "=HYPERLINK(...)" is written as text
    pd.DataFrame([neutralise_row(row)]).to_csv(buffer, index=False)
    path = write_text(target, buffer.getvalue())
    return ExperimentsRowFile(path, f"Ready row for the experiments table written to {path.name} in this week's "
                                    f"report folder.")


@dataclass(frozen=True)
class LeverResult:
    """Step 3's result (``core.step.StepResult``): the plan written before acting, or None with ``note``
    saying why an analyst's choice could not be planned."""

    plan: LeverPlan | None
    note: str = ""

    @property
    def sections(self) -> dict[str, object]:
        return {"lever": self.plan.summary_section() if self.plan is not None else None}

    @property
    def conclusion(self) -> str:
        return f"{self.note} {conclusion(self.plan)}" if self.note else conclusion(self.plan)


def analyse(snapshot: Snapshot, config: Config, weak: WeakCohortSection | None,
            candidates: list[CandidateEntry] | None = None, *, lever: str = "",
            design: Design | str = Design.RANDOMIZED, expected_low: float | None = None,
            expected_high: float | None = None, cohort: str = "",
            under_way: list[CohortInTest] | None = None) -> LeverResult:
    """Step 3: the lever for step 2's weak cohort, its expected range, power and the experiments row.

    ``lever``, ``design``, the expected range and ``cohort`` are the analyst's choices (empty / None:
    the decision table's lever, a randomized design, 30-70 % of the cohort's excess, and step 2's
    weak cohort). ``cohort`` is any slice (``channel=app``, ``category=shoes;region=north``), with
    ``reason_code=...`` to name the reason the lever acts on (default: the weak cohort's); it is read
    over the same delivery weeks as step 2's window and needs its expected range (step 2 did not test
    it). A choice that cannot be planned gives no plan and a ``note`` saying why, never a failed run.

    ``under_way`` (``experiments.cohorts_in_test``): one test per cohort. When step 2's weak cohort overlaps
    a test still open (or just kept), the plan goes to the next flagged candidate free of every test (the
    one step 5 names as the next action), and the note says which test holds the weak cohort.
    """
    if cohort and weak is None:
        return LeverResult(None, f"The chosen cohort {cohort} was not planned: step 2 flagged no cohort this week, "
                                 "and a chosen cohort is read over the weak cohort's window and reason.")
    if cohort and (expected_low is None or expected_high is None):
        # step 2 tested and flagged its cohort; a chosen one is untested, so 30-70 % of its raw rise could
        # be noise: the plan would be powered for an effect nobody showed
        return LeverResult(None, f"The chosen cohort {cohort} was not planned: give its expected range "
                                 "(expected_low and expected_high), since step 2 did not test it.")
    if weak is None:
        return LeverResult(None)
    held_note = ""
    if not cohort and under_way:
        weak, held_note = _free_cohort(snapshot, config, weak, candidates or [], under_way)
        if weak is None:
            return LeverResult(None, held_note)
    target = chosen_cohort(snapshot, config, weak, cohort) if cohort else weak
    plan = design_lever(target, snapshot, config, lever=lever, design=design, expected_low=expected_low,
                        expected_high=expected_high, candidates=None if cohort else candidates)
    chosen = {"cohort": cohort or None, "lever": lever or None,
              "design": None if design == Design.RANDOMIZED else str(design),
              "expected_low": expected_low, "expected_high": expected_high}
    said = "; ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in chosen.items() if value is not None)
    return LeverResult(replace(plan, chosen_by_analyst=said), held_note)


def _free_cohort(snap: Snapshot, config: Config, weak: WeakCohortSection, candidates: list[CandidateEntry],
                 under_way: list[CohortInTest]) -> tuple[WeakCohortSection | None, str]:
    """Step 2's weak cohort when no test holds it; else the flagged candidate with the largest excess cost
    that no test holds, read as a weak cohort over step 2's window (None when every one is held)."""
    slice_of = lambda filters: format_cohort({k: v for k, v in filters.items() if k != "reason_code"})
    held = holding_test(slice_of(weak.filters), under_way)
    if held is None:
        return weak, ""
    note = f"{held.words(slice_of(weak.filters))}: no second test is planned on it."
    for c in sorted(candidates, key=lambda c: -c.excess_cost):
        if holding_test(slice_of(c.filters), under_way) is None:
            free = chosen_cohort(snap, config, weak, format_cohort(c.filters))
            return replace(free, excess_cost=c.excess_cost, q_value=c.q_value), \
                f"{note} The plan goes to the next flagged cohort not under test, {slice_of(c.filters)}."
    return None, f"{note} Every other flagged cohort is under test too, so no new lever this week."


def chosen_cohort(snap: Snapshot, config: Config, weak: WeakCohortSection, cohort: str) -> WeakCohortSection:
    """The analyst's cohort as step 3 reads a weak cohort: its reason's rate over step 2's window and over
    the weeks before it (its own normal), so the default expected range is a share of its own excess."""
    filters = parse_cohort(cohort)
    unknown = sorted(set(filters) - {*SLICE_COLUMNS, "reason_code"})
    if not filters or unknown:
        raise ValueError(f"cohort {cohort!r}: expected column=value pairs on {', '.join(SLICE_COLUMNS)} "
                         f"(and reason_code), separated by ';'" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    filters.setdefault("reason_code", weak.filters["reason_code"])
    k = config.metrics.return_window_days
    window = list(weak.window_weeks)
    before = baseline_weeks(window, config.metrics.baseline_weeks)
    slice_filter = {c: v for c, v in filters.items() if c != "reason_code"}
    now, normal = (_reason_rate(snap, k, slice_filter, filters["reason_code"], weeks) for weeks in (window, before))
    if now.units == 0:
        raise ValueError(f"cohort {cohort!r} has no delivered unit in step 2's window "
                         f"({window[0]} to {window[-1]}): nothing to plan on")
    return replace(weak, filters=filters, units=int(now.units), return_rate=now.rate,
                   expected_rate=normal.rate if normal.units else now.rate, excess_cost=0.0, q_value=1.0,
                   excess_events=max(now.rate - normal.rate, 0.0) * now.units if normal.units else 0.0,
                   explains=(), also_real=(), concentration=None)


@dataclass(frozen=True)
class _ReasonRate:
    units: float
    rate: float


def _reason_rate(snap: Snapshot, k: int, filters: dict[str, str], reason: str, weeks: list[dt.date]) -> _ReasonRate:
    """Units delivered in ``weeks`` and the share returned for ``reason`` within k days (in the engine)."""
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull() & lf.delivery_week.isin(weeks) & matches(lf, filters))
    units = float(lf.agg(n=lf.units.sum()).to_pandas().iloc[0]["n"] or 0)
    r = returns_of_lines(snap, lf.select("line_id", "delivered_ts"), k)
    returned = float(r.filter(r.reason_code == reason).agg(n=r.quantity.sum()).to_pandas().iloc[0]["n"] or 0)
    return _ReasonRate(units, returned / units if units else 0.0)
