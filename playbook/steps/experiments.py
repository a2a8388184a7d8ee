"""Step 4 of the loop: compare treatment and control for every experiment due for review this week.

Randomized experiments (A/B by customer): the exposure is the cohort's order lines placed by
assigned customers from ``start_date`` to ``review_date`` (after their assignment), followed up to
the end of the analysed week. The assignment split is checked first (sample ratio mismatch). A
return-rate primary metric is compared on units with k days of follow-up in both arms (returns
arrive days after delivery; a unit not yet mature is never counted as "not returned"), with
Kaplan-Meier, log-rank and Cox views beside it; ratio metrics use the delta method on
per-customer sums, because customers, not lines, were randomized.

Pre/post changes (not randomized): weekly slice-level data (channel x region cells of the cohort
and of its control cohort), two-way fixed-effects difference-in-differences with cluster-robust
errors by slice, an event study of the pre-period and a pre-trend warning.

The engine does the joins and the sums; pandas receives per-line rows of one experiment's
exposure (bounded by the experiment's size) or per-slice weekly aggregates.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from dataclasses import dataclass, field
from typing import Any

import ibis
import pandas as pd
from scipy import stats as st

from playbook.core.formats import date_text
from playbook.core.jsonmodel import OMIT_IF_NONE, from_json, omitted_with
from playbook.core.settings import Config, Guardrail
from playbook.core.vocabulary import Decision, Design, Direction, GuardrailState
from playbook.core.weeks import IsoWeek
from playbook.data.contract import SELECTION_COLUMNS, parse_cohort
from playbook.data.dataset import Snapshot
from playbook.data.facts import (
    EXPOSURE_COLUMNS,
    Maturity,
    assigned_customers,
    is_mature,
    line_facts,
    matches,
    return_lag_histogram,
    with_first_return,
)
from playbook.journal.under_test import closed, experiments_table, latest_verdicts
from playbook.metrics.dictionary import computable_in, metric_named
from playbook.metrics.display import Display, cohort_words, lever_words
from playbook.metrics.forms import ArmData, PanelInputs, ReturnsWithinWindow, as_units
from playbook.metrics.metric import Metric
from playbook.stats import did, lag
from playbook.stats.delay import delay_check, return_window_from_histogram
from playbook.stats.results import Estimate, jsonable
from playbook.stats.srm import SrmResult, sample_ratio_mismatch
from playbook.steps.verdict import GuardrailRead, WindowRead, guardrail_state


@dataclass
class MetricComparison:
    """One metric compared between arms: the estimate and what it means.

    A guardrail carries its state (``core.vocabulary.GuardrailState``: a non-inferiority reading of its
    interval against its tolerance) and, when not shown safe, the date of the follow-up read that
    could show it (``follow_up_on``). The primary carries how its pre-registered window was read
    (``window``).
    """

    metric: str
    estimate: Estimate
    good_direction: Direction
    role: str  # primary | guardrail
    tolerance: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None
    optional: bool = False
    follow_up_on: dt.date | None = None
    window: WindowRead | None = None

    def __post_init__(self) -> None:
        self.good_direction = Direction(self.good_direction)  # "lower" from a table reads as the enum

    @property
    def state(self) -> GuardrailState | None:
        """The guardrail's state (None for the primary)."""
        if self.role != "guardrail":
            return None
        e = self.estimate
        return guardrail_state(e.estimate if e.ok else None, e.ci_low, e.ci_high, tolerance=self.tolerance,
                               bad_direction=self.good_direction.opposite, null_value=e.null_value,
                               confidence=e.confidence)

    @property
    def breached(self) -> bool:
        """A guardrail is breached when its whole interval lies past the tolerance on the bad side."""
        return self.state == GuardrailState.BREACHED

    def read(self) -> GuardrailRead:
        """The guardrail as the verdict sees it."""
        return GuardrailRead(self.metric, self.state, state_why(self), self.optional, self.follow_up_on)

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        d = {"metric": self.metric, "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
             "null_value": e.null_value, "good_direction": self.good_direction, "p_value": e.p_value,
             "method": e.method, "n": e.n, "error": e.error, "confidence": e.confidence,
             "std_error": e.details.get("std_error")}
        if self.role == "guardrail":
            d.update(tolerance=self.tolerance, state=self.state.value, breached=self.breached,
                     state_why=state_why(self), optional=self.optional,
                     follow_up_on=self.follow_up_on.isoformat() if self.follow_up_on else None)
        else:
            d.update(expected_low=self.expected_low, expected_high=self.expected_high)
            if self.window is not None:
                w = self.window
                d.update(k_registered=w.k_registered, k_read=w.k_read, readable=w.readable,
                         readable_on=w.readable_on.isoformat() if w.readable_on else None, window_why=w.why,
                         information=w.information)
        return jsonable(d)


_STATE_WORDS = {
    GuardrailState.SAFE: "shown safe: the interval rules out harm beyond the tolerance",
    GuardrailState.NOT_SHOWN_SAFE: "not shown safe: the interval reaches past the tolerance, the estimate does not",
    GuardrailState.HARM_LIKELY: "harm likely: the estimate is past the tolerance",
    GuardrailState.BREACHED: "breached: the whole interval is past the tolerance",
}


def state_why(m: MetricComparison) -> str:
    if m.state == GuardrailState.NOT_MEASURED:
        return f"not measured: {m.estimate.error or 'no interval'}"
    e = m.estimate
    return f"{_STATE_WORDS[m.state]} ({e.estimate:+.4g} [{e.ci_low:+.4g}, {e.ci_high:+.4g}], tolerance {m.tolerance:g})"


def guardrail_follow_up_date(m: MetricComparison, start: dt.date, as_of: dt.date, *, alpha: float = 0.025,
                             power: float = 0.8, max_days: int = 182) -> dt.date | None:
    """When a read of a not-shown-safe guardrail has ``power`` to show it safe (None beyond ``max_days``).

    Non-inferiority power for margin = tolerance, true harm 0, one-sided ``alpha`` (Chow, Shao &
    Wang 2008, 3.2): the standard error must fall to tolerance / (z_{1-alpha} + z_{power}). The
    standard error shrinks as 1 / sqrt(information) and information grows with the days of
    exposure at a steady inflow, so the days needed are the days so far times (se / se_needed)^2.
    """

    e = m.estimate
    if not e.ok or not m.tolerance or m.tolerance <= 0:
        return None
    se = (e.ci_high - e.ci_low) / (2 * float(st.norm.ppf(0.5 + e.confidence / 2)))
    needed = m.tolerance / (float(st.norm.ppf(1 - alpha)) + float(st.norm.ppf(power)))
    elapsed = max((as_of - start).days, 1)
    days = math.ceil(elapsed * (se / needed) ** 2)
    if days > max_days:
        return None
    return max(start + dt.timedelta(days=days), as_of + dt.timedelta(days=7))


@dataclass(frozen=True)
class MetricEntry:
    """The fields every metric read of a ``comparisons`` entry carries (estimate, interval, method)."""

    metric: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    null_value: float
    good_direction: Direction
    p_value: float | None
    method: str
    n: int | None
    error: str | None
    confidence: float
    std_error: float | None


@dataclass(frozen=True)
class PrimaryEntry(MetricEntry):
    """The primary metric of a ``comparisons`` entry, with its expected range and (when registered)
    its K-day window read: ``k_registered`` ... ``window_why`` are present together or not at all."""

    expected_low: float | None
    expected_high: float | None
    k_registered: int | None = field(default=None, metadata=OMIT_IF_NONE)
    k_read: int | None = field(default=None, metadata=omitted_with("k_registered"))
    readable: bool | None = field(default=None, metadata=omitted_with("k_registered"))
    readable_on: dt.date | None = field(default=None, metadata=omitted_with("k_registered"))
    window_why: str | None = field(default=None, metadata=omitted_with("k_registered"))
    #: customers per arm with a unit mature at K: the read's information (None: not measured)
    information: float | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class DelayEntry:
    """Whether the treated returns come back later than control's (``stats.delay.delay_check``) and, when
    they do, the longer read that must confirm the gap (``confirm_*``: None until it can be read)."""

    possible_delay: bool
    why: str
    p_value: float | None
    confirm_days: int
    readable_on: dt.date | None
    confirm_estimate: float | None = None
    confirm_ci_low: float | None = None
    confirm_ci_high: float | None = None
    #: treatment minus control share returned after day K and by the confirm window (> 0: the treated returns
    #: catch up, ``stats.lag.catch_up_difference``), its interval and one-sided p-value; None until readable
    catch_up: float | None = None
    catch_up_ci_low: float | None = None
    catch_up_ci_high: float | None = None
    catch_up_p_value: float | None = None


@dataclass(frozen=True)
class SettledEntry:
    """The primary return rate read at the longest window the test can already read, up to the shop's settled
    window (the days holding 99 % of its historical returns): what the money of a verdict is valued on.

    The K-day read decides (the plan powered it); it does not say how many returns a lever prevents in the
    end: a lever that only delays returns lowers the K-day rate without preventing any, and a lever that
    prevents returns also prevents those that would have come after day K. The read closest to "every return
    counted" tells both apart. ``days``: the window read; ``settled_days``: the window it aims at (equal when
    the settled window is readable).
    """

    days: int
    settled_days: int
    estimate: float
    ci_low: float
    ci_high: float
    why: str


@dataclass(frozen=True)
class GuardrailEntry(MetricEntry):
    """A guardrail of a ``comparisons`` entry with its state as step 4 read it."""

    tolerance: float | None
    state: GuardrailState
    breached: bool
    state_why: str
    optional: bool
    follow_up_on: dt.date | None


@dataclass(frozen=True)
class ComparisonSection:
    """One entry of the ``comparisons`` section of summary.json (written by step 4, read by step 5).

    ``views``: the secondary estimates (KM, log-rank, Cox, event study, pre-trend) as compact JSON,
    shown to people, never read by a later step.
    """

    experiment_id: str
    design: Design
    lever: str | None
    cohort: str | None
    due: str
    srm_p_value: float | None
    srm_mismatch: bool
    srm_assigned: dict[str, int] | None
    srm_exposed_p_value: float | None
    srm_exposed_mismatch: bool
    srm_exposed: dict[str, int] | None
    follow_up_days: float | None
    planned_looks: int
    primary: PrimaryEntry
    guardrails: tuple[GuardrailEntry, ...]
    warnings: tuple[str, ...]
    keep_blockers: tuple[str, ...]
    views: dict[str, Any]
    #: the information the plan was sized for (customers per arm at the review date; None: not recorded)
    planned_information: float | None = field(default=None, metadata=OMIT_IF_NONE)
    #: an extended test's information planned before its extension (``contract.EXTENSION_COLUMNS``)
    original_planned_information: float | None = field(default=None, metadata=OMIT_IF_NONE)
    review_date: dt.date | None = field(default=None, metadata=OMIT_IF_NONE)
    #: the day the data were read to (the snapshot's cutoff): the read is final from the review date on
    read_on: dt.date | None = field(default=None, metadata=OMIT_IF_NONE)
    #: a return-rate primary's timing check (delay told from prevention); None for other metrics
    delay: DelayEntry | None = field(default=None, metadata=OMIT_IF_NONE)
    #: a return-rate primary read at its longest readable window (what its money is valued on); None: only K
    settled: SettledEntry | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class OverdueEntry:
    """One entry of the ``overdue`` section: an experiment whose review date passed without a verdict."""

    experiment_id: str
    review_date: dt.date
    text: str


@dataclass(frozen=True)
class RunningEntry:
    """One entry of the ``running`` section: an experiment live during the week and not yet due for review."""

    experiment_id: str
    lever: str
    cohort: str
    design: str
    start_date: dt.date
    review_date: dt.date


@dataclass
class Comparison:
    """Everything step 4 knows about one experiment.

    ``keep_blockers``: warnings that make the read untrustworthy (few clusters, pre-trend
    failure, ...): the verdict cannot be keep while any is present. ``srm`` checks all assigned
    customers, ``srm_exposed`` the exposed customers that are analysed.
    """

    experiment: dict[str, Any]
    design: Design
    primary: MetricComparison
    guardrails: list[MetricComparison]
    srm: SrmResult | None = None
    follow_up_days: float | None = None
    views: dict[str, Any] = field(default_factory=dict)  # secondary estimates (KM, log-rank, Cox, event study)
    warnings: list[str] = field(default_factory=list)
    keep_blockers: list[str] = field(default_factory=list)
    srm_exposed: SrmResult | None = None

    @property
    def experiment_id(self) -> str:
        return str(self.experiment["experiment_id"])

    @property
    def planned_looks(self) -> int:
        return planned_looks(self.experiment)

    read_on: dt.date | None = field(default=None, metadata=OMIT_IF_NONE)
    delay: DelayEntry | None = None
    settled: SettledEntry | None = None

    def to_dict(self) -> dict[str, Any]:
        exposed = self.srm_exposed
        return jsonable({
            "experiment_id": self.experiment_id, "design": self.design, "lever": self.experiment.get("lever"),
            "cohort": self.experiment.get("cohort"), "due": self.experiment.get("due") or "review date this week",
            "srm_p_value": self.srm.p_value if self.srm is not None else None,
            "srm_mismatch": bool(self.srm.mismatch) if self.srm is not None else False,
            "srm_assigned": dict(self.srm.observed) if self.srm is not None else None,
            "srm_exposed_p_value": exposed.p_value if exposed is not None else None,
            "srm_exposed_mismatch": bool(exposed.mismatch) if exposed is not None else False,
            "srm_exposed": dict(exposed.observed) if exposed is not None else None,
            "follow_up_days": self.follow_up_days,
            "planned_looks": self.planned_looks,
            "planned_information": planned_information(self.experiment),
            "original_planned_information": planned_information(self.experiment, "original_planned_information"),
            "review_date": pd.Timestamp(self.experiment["review_date"]).date().isoformat(),
            "read_on": (self.read_on or pd.Timestamp(self.experiment["review_date"]).date()).isoformat(),
            "delay": dataclasses.asdict(self.delay) if self.delay is not None else None,
            "settled": dataclasses.asdict(self.settled) if self.settled is not None else None,
            "primary": self.primary.to_dict(),
            "guardrails": [g.to_dict() for g in self.guardrails],
            "warnings": self.warnings,
            "keep_blockers": self.keep_blockers,
            "views": {k: _compact(v) for k, v in self.views.items()},
        })

    def section(self) -> ComparisonSection:
        """This comparison as its entry of the ``comparisons`` summary section."""
        return from_json(ComparisonSection, self.to_dict(), f"comparisons[{self.experiment_id}]")


def planned_looks(exp: dict[str, Any]) -> int:
    """The looks the experiment's plan counts on (``contract.PLAN_COLUMNS``), the last at its review date;
    1 when the row does not say: one planned look at the review date, at the nominal level."""
    value = exp.get("planned_looks")
    try:
        n = int(value)
    except (TypeError, ValueError):
        return 1
    return n if n >= 1 and n == value else 1


def planned_information(exp: dict[str, Any], column: str = "planned_information") -> float | None:
    """The information the plan was sized for (customers per arm of the K-day read at the review date);
    None when the row does not say (the looks are then counted: look j of m is at j/m). ``column``:
    ``original_planned_information`` for the plan an extension replaced."""
    value = exp.get(column)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _compact(view: Any) -> Any:
    """A view as it goes into summary.json: curves stay in the notebook, their difference goes in."""
    if hasattr(view, "difference"):
        return view.difference.to_dict()
    if isinstance(view, dict):
        return {k: _compact(v) for k, v in view.items()}
    if isinstance(view, pd.DataFrame):
        return jsonable(view.to_dict("records"))
    if hasattr(view, "to_dict"):
        d = view.to_dict()
        d.pop("table", None)
        d.pop("coefficients", None)
        return d
    return view


def due_for_review(snap: Snapshot, journal_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Experiments to read this week (empty without an experiments table).

    A plan of m looks is read every week from the week m - 1 weeks before its review date's to the
    review date's (its looks; one look at the review date for a row that declares none); given the
    decision journal, a test already decided at an earlier look (keep, adjust, stop) is not read again,
    and one still undecided after its review date (the latest verdict is provisional or continue) is
    read again. A closed test (``closed_on``) is never read. Column ``due`` says why.
    """
    if not snap.has("experiments"):
        return pd.DataFrame()
    out = experiments_table(snap)
    week = snap.week
    latest = latest_verdicts(journal_dir, week) if journal_dir is not None else {}
    due = []
    for _, row in out.iterrows():
        exp = row.to_dict()
        seen = latest.get(str(exp["experiment_id"]))
        review_week = IsoWeek.of(exp["review_date"])
        first_week = review_week.shift(-(planned_looks(exp) - 1))
        if closed(exp, week.sunday) or (seen is not None and not Decision(seen[0]).undecided):
            due.append("")
        elif week == review_week:
            due.append("review date this week")
        elif first_week <= week < review_week:
            due.append(f"planned look before the review date of {date_text(exp['review_date'])}")
        elif week > review_week and seen is not None:
            due.append(f"still open after look {seen[1]} ({seen[0]})")
        else:
            due.append("")
    out["due"] = due
    return out[out["due"] != ""].reset_index(drop=True)


def overdue(snap: Snapshot, journal_dir: str | os.PathLike) -> pd.DataFrame:
    """Experiments whose review date passed before this week without any verdict in the journal.

    They are listed, not read: a review the team skipped is theirs to run (set its review date to
    this week in the experiments table) or to close.
    """
    if not snap.has("experiments"):
        return pd.DataFrame(columns=["experiment_id", "lever", "cohort", "review_date"])
    out = experiments_table(snap)
    latest = latest_verdicts(journal_dir, snap.week.shift(1))
    is_closed = out.apply(lambda r: closed(r.to_dict(), snap.week.sunday), axis=1).astype(bool)
    late = out[(out["review_date"] < snap.week.monday) & ~out["experiment_id"].astype(str).isin(latest) & ~is_closed]
    return late[["experiment_id", "lever", "cohort", "review_date"]].reset_index(drop=True)


def running(snap: Snapshot) -> list[RunningEntry]:
    """Experiments started by the end of the week whose review date comes after it: what is being
    tested now (those due this week are compared instead; a later review date cannot have a verdict)."""
    if not snap.has("experiments"):
        return []
    out = experiments_table(snap)
    is_closed = out.apply(lambda r: closed(r.to_dict(), snap.week.sunday), axis=1).astype(bool)
    live = out[(out["start_date"] <= snap.week.sunday) & (out["review_date"] > snap.week.sunday) & ~is_closed]
    return [RunningEntry(str(r.experiment_id), str(r.lever), str(r.cohort), str(r.design), r.start_date, r.review_date)
            for r in live.itertuples(index=False)]


def _window(exp: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(exp["start_date"], dt.time.min)
    end = dt.datetime.combine(exp["review_date"], dt.time.max)
    return start, end


# --- randomized ---------------------------------------------------------------------------

def exposure_lines(snap: Snapshot, exp: dict[str, Any], k: int) -> pd.DataFrame:
    """One row per exposed order line with its arm, delivery and first return request."""
    start, end = _window(exp)
    lf = line_facts(snap, k)
    lf = lf.filter(matches(lf, parse_cohort(exp["cohort"])) & (lf.order_ts >= start) & (lf.order_ts <= end))
    a = assigned_customers(snap, exp["experiment_id"])
    x = with_first_return(snap, lf.join(a, "customer_id").filter(lambda t: t.order_ts >= t.assigned_ts))
    df = x.select(*EXPOSURE_COLUMNS[:3], "variant", *EXPOSURE_COLUMNS[3:]).to_pandas()
    df["returned_units"] = df["returned_units"].fillna(0).clip(upper=df["units"])
    return df.rename(columns={"variant": "arm"})


def _read_window(metric: Metric, settings_k: int) -> int:
    """The k of the exposure's line facts: the metric's own return window, else the configured one."""
    return metric.return_window_days if metric is not None and metric.return_window_days else settings_k


#: Customers per arm under which a randomized read is not trusted for a keep (the customer-clustered
#: variance needs tens of clusters; Cameron & Miller 2015, section VI).
MIN_CUSTOMERS_PER_ARM = lag.MIN_CUSTOMERS_AT_K


#: The level of the timing check's flag (one-sided): a flag only holds a keep until the confirm read, so a false
#: one costs a few weeks, a missed delay a kept lever that prevents nothing. Within each return reason, 5 % flags
#: 5 % of preventions and finds 76 % of a x 1.7 delay of one reason at 500 customers per arm (1 %: 53 %;
#: tests/stats/test_delay.py).
DELAY_ALPHA = 0.05
#: The exposure lines' column the timing check compares lags within (``facts.with_first_return``)
TIMING_STRATUM = "return_reason"


def timing_check(units: pd.DataFrame, as_of: Any, k: int, confirm_days: int | None = None) -> DelayEntry | None:
    """Delay told from prevention: the arms' return timing within each return reason among returns within k
    days (``stats.delay.delay_check``), and, when the treated ones come later, the ``confirm_days`` read
    (default 2k) that must show the gap holds before a keep, with the catch-up test (``lag.catch_up_difference``)
    that says whether the treated returns missing at day k come later (None: too few returns to check)."""
    stratum = TIMING_STRATUM if TIMING_STRATUM in units.columns else None
    check = delay_check(units, as_of, k, alpha=DELAY_ALPHA, confirm_days=confirm_days, stratum=stratum)
    if check.error:
        return None
    entry = DelayEntry(bool(check.possible_delay), check.why, check.p_value, int(check.confirm_days),
                       check.readable_on)
    if not check.possible_delay:
        return entry
    longer = lag.read_at_window(units, as_of, check.confirm_days, quantity="quantity")
    # the confirm read is made as soon as enough customers are followed that long (the K read's rule), often
    # before every exposed unit is (the check's own date): the words give that date, or none once it is read
    own = f" (readable on {date_text(check.readable_on)})" if check.readable_on else None
    if not longer.readable or not longer.difference.ok:
        readable = longer.readable_on or check.readable_on
        why = entry.why.replace(own, f" (readable on {date_text(readable)})") if own and readable else entry.why
        return dataclasses.replace(entry, why=why, readable_on=readable)
    entry = dataclasses.replace(entry, why=entry.why.replace(own, "") if own else entry.why)
    e = longer.difference
    late = lag.catch_up_difference(units, as_of, k, check.confirm_days, quantity="quantity")
    return dataclasses.replace(entry, confirm_estimate=e.estimate, confirm_ci_low=e.ci_low, confirm_ci_high=e.ci_high,
                               **({"catch_up": late.estimate, "catch_up_ci_low": late.ci_low,
                                   "catch_up_ci_high": late.ci_high, "catch_up_p_value": late.p_value}
                                  if late.ok else {}))


def _return_rate_read(data: ArmData, form: ReturnsWithinWindow, metric: str, mc,
                      secondary_views: bool = True, windows: ReturnWindows | None = None,
                      ) -> tuple[MetricComparison, int | None, dict, list[str]]:
    """The primary return rate at its pre-registered window K (Kaplan-Meier at K), or provisional.

    No rescaled range and no shorter window under the K-day name: when K cannot be read yet, the
    primary carries no estimate (the verdict is provisional with the date K becomes readable) and
    a shorter-window view, labelled with its own k, goes to ``views['shorter_window']``.
    """
    views: dict[str, Any] = {}
    warnings: list[str] = []
    k_registered, as_of = form.k, data.as_of
    units = as_units(data.lines)
    read = form.read(data)
    views["window_read"] = read
    window = WindowRead(k_registered, k_registered if read.readable else None, read.readable,
                        read.readable_on, read.why, mature_customers_per_arm(data.lines, as_of, k_registered))
    comparison = mc(read.difference)
    comparison.window = window
    if read.readable:
        views["delay"] = timing_check(units, as_of, k_registered, windows.confirm if windows else None)
        views["settled"] = settled_read(units, as_of, k_registered,
                                        windows.settled if windows else 2 * k_registered)
    if not read.readable:
        warnings.append(f"{metric} cannot be read at its pre-registered {k_registered} days yet: {read.why}")
        choice = lag.choose_follow_up_days(units, as_of, quantity="quantity")
        if getattr(choice, "k", None) is not None and choice.k < k_registered:
            short = lag.return_within_k_difference(units, as_of, choice.k, quantity="quantity")
            views["shorter_window"] = {"metric": f"return_rate_{choice.k}d", "k": choice.k,
                                       "note": f"shorter-window view, not the pre-registered {k_registered}-day metric",
                                       "estimate": short}
    if secondary_views:  # curves, log-rank and Cox are shown, never decided on
        views["kaplan_meier"] = lag.kaplan_meier_by_arm(units, as_of, k_registered, quantity="quantity")
        views["log_rank"] = lag.log_rank_test(units, as_of, quantity="quantity")
        views["cox"] = lag.cox_hazard_ratio(units, as_of, quantity="quantity")
    return comparison, (k_registered if read.readable else None), views, warnings


def mature_customers_per_arm(lines: pd.DataFrame, as_of: Any, k: int) -> float | None:
    """The information of a K-day read: customers per arm (the mean of the arms) with a unit delivered at
    least ``k`` days before ``as_of``; the plan sizes the test in the same unit (``stats.power``)."""
    if lines is None or not len(lines):
        return None
    mature = lines[pd.to_datetime(lines["delivered_ts"]) <= pd.Timestamp(as_of) - pd.Timedelta(days=k)]
    per_arm = mature.groupby("arm")["customer_id"].nunique()
    return float(per_arm.mean()) if len(per_arm) else 0.0


def _not_computable(name: str, design: Design, role: str, settings) -> Estimate:
    known = ", ".join(sorted(computable_in(design, settings)))
    return Estimate.unavailable("none", 0, f"{role} metric {name!r} is not computable for {design.words} designs "
                                           f"(computable: {known}, return_rate_<k>d)")


def _primary_randomized(data: ArmData, exp: dict, config: Config, secondary_views: bool = True,
                        windows: ReturnWindows | None = None) -> tuple[MetricComparison, int | None, dict, list[str]]:
    name = str(exp["primary_metric"])
    metric = metric_named(name, config.metrics)
    good = metric.good_direction if metric else Direction.LOWER
    mc = lambda est: MetricComparison(name, est, good, "primary", expected_low=float(exp["expected_low"]),
                                      expected_high=float(exp["expected_high"]))
    if metric is None or metric.per_arm is None:
        return mc(_not_computable(name, Design.RANDOMIZED, "primary", config.metrics)), None, {}, []
    if isinstance(metric.per_arm, ReturnsWithinWindow):
        return _return_rate_read(data, metric.per_arm, name, mc, secondary_views, windows)
    return mc(_arm_estimate(metric, data)), None, {}, []


def _arm_estimate(metric: Metric, data: ArmData) -> Estimate:
    form = metric.per_arm
    if form.needs and data.snap is None:
        return Estimate.unavailable(form.method, 0, f"{metric.name} per arm reads {', '.join(form.needs)}: no data given")
    missing = [t for t in form.needs if not data.snap.has(t)]
    if missing:
        return Estimate.unavailable(form.method, 0, data.snap.missing(missing[0]))
    return form.compare(metric, data)


def _guardrails_randomized(data: ArmData, guardrails: list[Guardrail], config: Config) -> list[MetricComparison]:
    out = []
    for g in guardrails:
        metric = metric_named(g.metric, config.metrics)
        if metric is None or metric.per_arm is None:
            est = _not_computable(g.metric, Design.RANDOMIZED, "guardrail", config.metrics)
        else:
            est = _arm_estimate(metric, data)
        out.append(MetricComparison(g.metric, est, g.bad_direction.opposite, "guardrail", tolerance=g.tolerance,
                                    optional=g.optional))
    return out


def compare_exposed(exp: dict[str, Any], lines: pd.DataFrame, assigned: dict[str, int], as_of: dt.datetime,
                    config: Config, guardrails: list[MetricComparison] | None = None, *,
                    secondary_views: bool = True, snap: Snapshot | None = None,
                    windows: ReturnWindows | None = None) -> Comparison:
    """The randomized read on the exposed lines: SRM (all assigned and exposed), the primary at its
    pre-registered window, the guardrails' states with their follow-up dates, and the keep blockers.

    Without ``snap`` it is pure (no data access), so that a verdict-level simulation can run the path
    without a database; a primary metric whose per-arm form reads another table then has no estimate.
    ``windows``: the confirm and settled windows of a return-rate primary (``return_windows``; default 2K both).
    """
    split = config.experiments.planned_split
    srm = sample_ratio_mismatch({arm: 0 for arm in split} | dict(assigned), split)
    exposed_counts = lines.groupby("arm")["customer_id"].nunique().to_dict() if len(lines) else {}
    exposed = {arm: int(exposed_counts.get(arm, 0)) for arm in split}
    srm_exposed = sample_ratio_mismatch(exposed, split)
    data = ArmData(snap, str(exp["experiment_id"]), lines, as_of)
    primary, follow_up, views, warnings = _primary_randomized(data, exp, config, secondary_views, windows)
    delay, settled = views.pop("delay", None), views.pop("settled", None)
    guards = list(guardrails or [])
    start, today = exp["start_date"], pd.Timestamp(as_of).date()
    for g in guards:
        if g.state == GuardrailState.NOT_SHOWN_SAFE:
            g.follow_up_on = guardrail_follow_up_date(g, start, today)
    blockers: list[str] = []
    if srm.mismatch:
        warnings.append(f"sample ratio mismatch among all assigned customers (p = {srm.p_value:.2g}): the split "
                        f"differs from the planned {split}; no 'keep' is possible")
    if srm_exposed.mismatch:
        warnings.append(f"sample ratio mismatch among the exposed customers that are analysed (p = "
                        f"{srm_exposed.p_value:.2g}, {exposed}): the lever may change who orders, or exposure is "
                        "logged differently per arm; no 'keep' is possible")
    few = [arm for arm, n in exposed.items() if n < MIN_CUSTOMERS_PER_ARM]
    if few:
        blockers.append(f"few clusters: fewer than {MIN_CUSTOMERS_PER_ARM} exposed customers in {', '.join(few)} "
                        f"({exposed}); the customer-clustered interval is not trusted")
    warnings += [b for b in blockers if b not in warnings]
    if delay is not None and delay.possible_delay:
        warnings.append(f"possible delay: {delay.why}")
    return Comparison(exp, Design.RANDOMIZED, primary, guards, srm, follow_up, views, warnings, blockers, srm_exposed,
                      read_on=pd.Timestamp(as_of).date(), delay=delay, settled=settled)


def compare_randomized(snap: Snapshot, exp: dict[str, Any], config: Config) -> Comparison:
    metric = metric_named(str(exp["primary_metric"]), config.metrics)
    if not snap.has("assignments"):
        est = Estimate.unavailable("none", 0, snap.missing("assignments"))
        good = metric.good_direction if metric else Direction.LOWER
        primary = MetricComparison(str(exp["primary_metric"]), est, good, "primary",
                                   expected_low=float(exp["expected_low"]), expected_high=float(exp["expected_high"]))
        return Comparison(exp, Design.RANDOMIZED, primary, [])
    counts = assigned_customers(snap, exp["experiment_id"]).group_by("variant").agg(n=ibis._.count()).to_pandas()
    assigned = dict(zip(counts.variant, counts.n.astype(int)))
    lines = exposure_lines(snap, exp, _read_window(metric, config.metrics.return_window_days))
    data = ArmData(snap, str(exp["experiment_id"]), lines, snap.cutoff)
    guards = _guardrails_randomized(data, list(config.experiments.guardrails[Design.RANDOMIZED]), config)
    k = _read_window(metric, config.metrics.return_window_days)
    comparison = compare_exposed(exp, lines, assigned, snap.cutoff, config, guards, snap=snap,
                                 windows=return_windows(snap, k))
    problem = (_assignment_problem(str(exp["experiment_id"]), assigned, list(config.experiments.planned_split))
               or _cohort_problem(snap, exp, config.metrics.return_window_days))
    return _uncomparable(comparison, problem) if problem else comparison


@dataclass(frozen=True)
class ReturnWindows:
    """The windows a K-day return-rate test is read at besides K, from the shop's historical return lags
    (``facts.return_lag_histogram``, measured in the engine):

    * ``confirm``: the read that must show a gap holds when the treated returns come later (possible delay):
      2K days, or the days holding ``CONFIRM_SHARE`` of the shop's returns when that is longer;
    * ``settled``: the days holding ``SETTLED_SHARE`` of the shop's returns, at least ``confirm``: the window in
      which "returns prevented" means prevented, on which the money is valued (``SettledEntry``).
    """

    confirm: int
    settled: int


#: the share of the shop's historical returns the confirm read holds (with 2K as a floor)
CONFIRM_SHARE = 0.9
#: the share of the shop's historical returns the settled window holds
SETTLED_SHARE = 0.99


def return_windows(snap: Snapshot, k: int) -> ReturnWindows:
    """The confirm and settled windows of a K-day test on this shop (``ReturnWindows``)."""
    histogram = return_lag_histogram(snap).to_pandas()

    def holding(share: float) -> int:
        window = return_window_from_histogram(histogram, k, share)
        return window.days_holding_share if window.error is None and window.days_holding_share else 0
    confirm = int(max(2 * k, holding(CONFIRM_SHARE)))
    return ReturnWindows(confirm, int(max(confirm, holding(SETTLED_SHARE))))


def settled_read(units: pd.DataFrame, as_of: Any, k: int, settled_days: int) -> SettledEntry | None:
    """The return-rate difference at the longest window the test can read, from ``settled_days`` down by weeks
    to just above K (Kaplan-Meier at that window, customers as clusters: ``stats.lag.read_at_window``'s rule
    of readability); None when no window longer than K is readable yet (the money is then valued at K)."""
    days = settled_days
    while days > k:
        read = lag.read_at_window(units, as_of, days, quantity="quantity")
        e = read.difference
        if read.readable and e.ok:
            aim = "" if days == settled_days else f" (the settled {settled_days}-day window is not readable yet)"
            why = (f"valued on the returns within {days} days of delivery{aim}: a return that comes after day {k} "
                   "counts, so a lever that only delays returns is not counted as preventing them")
            return SettledEntry(days, settled_days, e.estimate, e.ci_low, e.ci_high, why)
        days -= 7
    return None


def _assignment_problem(experiment_id: str, assigned: dict[str, int], arms: list[str]) -> str | None:
    """No customer assigned, or an arm without one, in words (None: every arm has customers)."""
    if not any(assigned.values()):
        return f"no customer is assigned to {experiment_id}: the assignments table has no row for it"
    empty = [arm for arm in arms if not assigned.get(arm)]
    if empty:
        counts = ", ".join(f"{arm}: {assigned.get(arm, 0)}" for arm in arms)
        return f"the {' and '.join(empty)} arm has no customer assigned ({counts}): there is nothing to compare with"
    return None


def _cohort_problem(snap: Snapshot, exp: dict[str, Any], k: int) -> str | None:
    """A cohort filter no order line of the data matches (a typo in the experiments table, or a value
    the export spells otherwise), in words; None when some line matches."""
    lf = line_facts(snap, k)
    if lf.filter(matches(lf, parse_cohort(exp["cohort"]))).count().to_pyarrow().as_py() == 0:
        return f"the cohort filter {exp['cohort']!r} of {exp['experiment_id']} matches no order line in the data"
    return None


def _uncomparable(comparison: Comparison, problem: str) -> Comparison:
    """The comparison of an experiment that has nothing to compare: its primary carries ``problem`` as
    its error (gbstats style) and it blocks a keep; said as such, not as "not readable yet", since
    waiting would not fix it."""
    p = comparison.primary
    comparison.primary = MetricComparison(p.metric, Estimate.unavailable("none", 0, problem), p.good_direction,
                                          "primary", expected_low=p.expected_low, expected_high=p.expected_high)
    comparison.follow_up_days = None
    comparison.views = {}
    comparison.warnings.insert(0, problem)
    comparison.keep_blockers.append(problem)
    return comparison


# --- pre/post -----------------------------------------------------------------------------

def _panel_inputs(snap: Snapshot, exp: dict[str, Any], settings, period: _PrePeriod) -> PanelInputs:
    return PanelInputs(snap, settings, parse_cohort(exp["cohort"]), parse_cohort(exp.get("control_cohort") or ""),
                       period.first, period.end, period.start)


def _panel(snap: Snapshot, exp: dict[str, Any], name: str, settings, period: _PrePeriod,
           role: str = "primary") -> tuple[pd.DataFrame | None, str | None]:
    """The metric's weekly cell panel (its ``panel`` form), or why it cannot be built."""
    metric = metric_named(name, settings)
    if metric is None or metric.panel is None:
        return None, _not_computable(name, Design.PRE_POST, role, settings).error
    missing = [t for t in metric.panel.needs if not snap.has(t)]
    if missing:
        return None, snap.missing(missing[0])
    panel = metric.panel.build(metric, _panel_inputs(snap, exp, settings, period))
    return panel.frame, panel.error


def pre_post_panel(snap: Snapshot, exp: dict[str, Any], metric: str, settings, pre_weeks: int = 8) -> pd.DataFrame:
    """Weekly slice-level values of ``metric`` for the cohort and its control cohort.

    The metric's panel form decides how it is counted (``metrics.forms``): discount depth by order
    week; return metrics by *delivery* week, on delivered units only, and only for delivery weeks
    whose units have all had the return window by the end of the analysed week (a post week still
    collecting returns would look better than it is, and the weak cohort's higher normal rate would
    turn that bias into a false effect).

    The pre-period is ``pre_weeks`` weeks that end before the weeks step 2 read when it chose the
    cohort (``_pre_period``): those weeks and every week up to the start are left out, so that the
    rise that selected the cohort is not read as the lever's effect (regression to the mean). The
    rule is in ``attrs["pre_period"]``. Raises ValueError with the reason when no panel can be built.
    """
    period = _pre_period(snap, exp, settings, pre_weeks)
    frame, error = _panel(snap, exp, metric, settings, period)
    if frame is None:
        raise ValueError(error)
    frame.attrs["pre_period"] = period
    return frame


def compare_pre_post(snap: Snapshot, exp: dict[str, Any], config: Config) -> Comparison:
    """Difference in differences of the cohort against its control cohort, before and after the start.

    Inference at the cohort x week level (``did.cohort_week_did``), so that weekly shocks shared by
    every slice of the cohort widen the interval; the pre-period ends before the weeks that selected
    the cohort (``_pre_period``). A pre-trend warning, or a pre-trend that cannot be checked, blocks
    a keep (``keep_blockers``). The slice-clustered TWFE estimate and its event study are kept as views.
    """
    name = str(exp["primary_metric"])
    metric = metric_named(name, config.metrics)
    good = metric.good_direction if metric else Direction.LOWER
    start = IsoWeek.of(exp["start_date"]).monday
    warnings: list[str] = []
    blockers: list[str] = []
    views: dict[str, Any] = {}
    try:
        panel = pre_post_panel(snap, exp, name, config.metrics, config.experiments.pre_weeks)
    except ValueError as exc:
        est = Estimate.unavailable("did-cohort-week-t", 0, str(exc))
    else:
        period = panel.attrs["pre_period"]
        views["pre_period"] = period.describe()
        if period.warning:
            warnings.append(period.warning)
        est = did.cohort_week_did(panel, start)
        views["twfe_by_slice"] = did.difference_in_differences(panel, start)
        views["event_study"] = did.event_study(panel, start)
        trend = did.cohort_week_pre_trend(panel, start)
        views["pre_trend"] = trend
        blockers += _trend_blockers(trend)
        if trend.warning:
            warnings.append(str(trend.warning))
        if est.details.get("warning"):
            warnings.append(str(est.details["warning"]))
    primary = MetricComparison(name, est, good, "primary", expected_low=float(exp["expected_low"]),
                               expected_high=float(exp["expected_high"]))
    guards = _guardrails_pre_post(snap, exp, config, start)
    for g in guards:
        if g.estimate.details.get("warning"):
            warnings.append(f"guardrail {g.metric}: {g.estimate.details['warning']}")
    return Comparison(exp, Design.PRE_POST, primary, guards, None, None, views, warnings, keep_blockers=blockers)


def _guardrails_pre_post(snap: Snapshot, exp: dict, config: Config, start: dt.date) -> list[MetricComparison]:
    period = _pre_period(snap, exp, config.metrics, config.experiments.pre_weeks)
    out = []
    for g in config.experiments.guardrails[Design.PRE_POST]:
        panel, error = _panel(snap, exp, g.metric, config.metrics, period, role="guardrail")
        est = did.cohort_week_did(panel, start) if error is None else Estimate.unavailable("did-cohort-week-t", 0, error)
        out.append(MetricComparison(g.metric, est, g.bad_direction.opposite, "guardrail", tolerance=g.tolerance,
                                    optional=g.optional))
    return out


#: Step 2's defaults (``cohorts.analyse_weak_cohorts``, notebook 02): the latest 4 mature delivery
#: weeks (the window) against up to 8 weeks before them (the baseline). Used only for an experiment
#: whose row does not record the weeks step 2 read (``contract.SELECTION_COLUMNS``).
_SELECTION_WINDOW_WEEKS, _SELECTION_BASELINE_WEEKS = 4, 8
#: Fewer clean weeks than this before step 2's baseline: the pre-period falls back to the baseline.
_MIN_CLEAN_PRE_WEEKS = 4


@dataclass(frozen=True)
class _PrePeriod:
    """The pre-period of a pre/post comparison: weeks ``first`` <= week < ``end``; the weeks from
    ``end`` to ``start`` (exclusive) are left out."""

    first: dt.date
    end: dt.date
    start: dt.date
    selection: tuple[dt.date, dt.date]  # first and last week step 2 read when it chose the cohort
    window_start: dt.date
    warning: str | None = None
    #: the experiments row did not record step 2's weeks: they were rebuilt from its start date
    reconstructed: bool = False

    def describe(self) -> str:
        how = ("reconstructed from the start date and step 2's default windows "
               f"({_SELECTION_WINDOW_WEEKS} + {_SELECTION_BASELINE_WEEKS} weeks): the experiments row does not "
               "record the weeks step 2 read" if self.reconstructed else "as recorded in the experiments row")
        text = (f"pre-period {IsoWeek.of(self.first)} to {IsoWeek.of(self.end - dt.timedelta(days=7))}; "
                f"weeks {IsoWeek.of(self.end)} to {IsoWeek.of(self.start - dt.timedelta(days=7))} left out "
                f"(step 2 chose the cohort on {IsoWeek.of(self.selection[0])} to {IsoWeek.of(self.selection[1])}, "
                f"window from {IsoWeek.of(self.window_start)}, {how})")
        return f"{text}; {self.warning}" if self.warning else text


def _selection_weeks(exp: dict[str, Any], settings) -> list[dt.date]:
    """The delivery weeks step 2 read when it chose the cohort, found from the start date.

    A plan's start is the Monday after the week step 2 ran (``levers.design_lever``), so that week
    is the one before the start's week; step 2 read the latest ``_SELECTION_WINDOW_WEEKS`` delivery
    weeks mature by then (``data.facts.is_mature`` with the configured return window) and up to
    ``_SELECTION_BASELINE_WEEKS`` mature weeks before them (``cohorts.choose_windows``).
    """
    plan_week = IsoWeek.of(exp["start_date"]).shift(-1)
    mondays, week = [], plan_week
    while len(mondays) < _SELECTION_WINDOW_WEEKS + _SELECTION_BASELINE_WEEKS and week.shift(104) >= plan_week:
        if is_mature(week.monday, Maturity.DELIVERY, plan_week, settings):
            mondays.append(week.monday)
        week = week.shift(-1)
    return sorted(mondays)


def recorded_selection(exp: dict[str, Any]) -> tuple[dt.date, dt.date, dt.date] | None:
    """The Mondays of the first week step 2 read, its window's first and the last week it read, as the
    experiments row records them (``contract.SELECTION_COLUMNS``, written by step 3's plan); None when
    the row leaves them empty or the table has no such columns (a hand-entered or older experiment)."""
    values = [exp.get(c) for c in SELECTION_COLUMNS]
    if any(v is None or pd.isna(v) or not str(v).strip() for v in values):
        return None
    first, window, last = (IsoWeek.parse(str(v)).monday for v in values)
    return first, window, last


def _pre_period(snap: Snapshot, exp: dict[str, Any], settings, pre_weeks: int) -> _PrePeriod:
    """``pre_weeks`` weeks ending before the first week step 2 read (its baseline included).

    Step 2 flags a cohort whose window rose against its baseline, so the window is high and the
    baseline low by selection; a pre-period in either biases the difference in differences (the
    window towards a false keep, the baseline towards a false harm). The weeks step 2 read are the
    ones the experiments row records (``recorded_selection``); a row without them has them rebuilt
    from its start date with step 2's default windows (``_selection_weeks``), and the pre-period says
    so. When the data hold fewer than ``_MIN_CLEAN_PRE_WEEKS`` weeks before the baseline, the
    pre-period ends before the window instead and a warning says the estimate leans towards harm.
    """

    recorded = recorded_selection(exp)
    if recorded is not None:
        first_read, window_start, last_read = recorded
    else:
        weeks = _selection_weeks(exp, settings)
        first_read, window_start, last_read = weeks[0], weeks[-_SELECTION_WINDOW_WEEKS], weeks[-1]
    start = IsoWeek.of(exp["start_date"]).monday
    end, warning = first_read, None
    data_first = snap.first_week().monday
    if (end - data_first).days // 7 < _MIN_CLEAN_PRE_WEEKS:
        end = window_start
        warning = (f"fewer than {_MIN_CLEAN_PRE_WEEKS} weeks of data before the weeks that selected the cohort: "
                   "the pre-period is step 2's baseline, which was low by selection, so the estimate leans "
                   "towards harm (a keep is harder, not easier)")
    first = max(end - dt.timedelta(days=7 * pre_weeks), data_first)
    return _PrePeriod(first, end, start, (first_read, last_read), window_start, warning,
                      reconstructed=recorded is None)


def _trend_blockers(trend: did.PreTrendCheck) -> list[str]:
    """A drifting or unverifiable pre-trend blocks a keep: the estimate may be the drift."""
    if trend.warning:
        return [f"The cohort was already drifting away from its control before the start "
                f"(pre-trend p = {trend.p_value:.2g}), so the change cannot be credited to the lever."]
    if trend.error:
        return [f"The pre-trend could not be checked ({trend.error}), so the change cannot be credited to the lever."]
    return []


# --- entry point --------------------------------------------------------------------------

def compare_experiment(snap: Snapshot, exp: dict[str, Any], config: Config) -> Comparison:
    if exp["design"] == Design.RANDOMIZED:
        return compare_randomized(snap, exp, config)
    c = compare_pre_post(snap, exp, config)
    problem = _cohort_problem(snap, exp, config.metrics.return_window_days)
    if problem:
        c = _uncomparable(c, problem)
    today = pd.Timestamp(snap.cutoff).date()
    c.read_on = today
    for g in c.guardrails:  # a not-shown-safe guardrail gets its dated follow-up read in every design
        if g.state == GuardrailState.NOT_SHOWN_SAFE and g.follow_up_on is None:
            g.follow_up_on = guardrail_follow_up_date(g, exp["start_date"], today)
    return c


def compare_due(snap: Snapshot, config: Config, journal_dir: str | os.PathLike | None = None) -> list[Comparison]:
    """A comparison for every experiment due for review in the week (and still open, given the journal)."""
    return [compare_experiment(snap, row, config) for row in due_for_review(snap, journal_dir).to_dict("records")]


def _expected_text(m: MetricComparison) -> str:
    if m.role == "guardrail":
        return f"{m.tolerance:g}"
    if m.expected_low is None or m.expected_high is None:
        return "none registered"
    return f"[{m.expected_low:.4g}, {m.expected_high:.4g}]"


def _pre_period_note(c: Comparison, m: MetricComparison) -> str:
    """A pre/post primary's note: the weeks its pre-period reads, and whether step 2's weeks were recorded
    in the experiments row or reconstructed from the start date."""
    return str(c.views.get("pre_period", "")) if c.design == Design.PRE_POST and m.role == "primary" else ""


def comparison_table(comparisons: list[Comparison]) -> pd.DataFrame:
    """One row per metric: the primary under its pre-registered name (empty until K can be read),
    each guardrail with its state in words."""
    rows = []
    for c in comparisons:
        for m in [c.primary, *c.guardrails]:
            e = m.estimate
            if m.role == "guardrail":
                state = m.state.value.replace("_", " ")
                if m.follow_up_on:
                    state += f" (read again on {date_text(m.follow_up_on)})"
            else:
                w = m.window
                state = "" if w is None else (f"read at {w.k_read} days" if w.readable else
                                              f"not readable at {w.k_registered} days yet" +
                                              (f" (readable on {date_text(w.readable_on)})" if w.readable_on else ""))
            rows.append({"experiment": c.experiment_id, "role": m.role, "metric": m.metric, "method": e.method,
                         "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value,
                         "n": e.n, "expected / tolerance": _expected_text(m), "state": state,
                         "note": e.error or _pre_period_note(c, m)})
        short = c.views.get("shorter_window")
        if short is not None:
            e = short["estimate"]
            rows.append({"experiment": c.experiment_id, "role": "shorter-window view", "metric": short["metric"],
                         "method": e.method, "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
                         "p_value": e.p_value, "n": e.n, "expected / tolerance": "not compared",
                         "state": short["note"], "note": e.error or ""})
    return pd.DataFrame(rows)


def conclusion(comparisons: list[Comparison], d: Display | None = None) -> str:
    """The step's finding: each experiment's main metric by its name, its change and interval in its unit
    (``d``: the shop's display; none: numbers without a currency)."""
    if not comparisons:
        return "No experiment is due for review this week."
    d = d or Display(currency="")
    parts = []
    for c in comparisons:
        e, w, name = c.primary.estimate, c.primary.window, d.title(c.primary.metric)
        if w is not None and not w.readable:
            when = f"readable on {date_text(w.readable_on)}" if w.readable_on else "not yet datable"
            parts.append(f"{c.experiment_id}: {name} cannot be read at {w.k_registered} days yet ({when})")
        elif e.ok:
            parts.append(f"{c.experiment_id}: {name} {d.interval(c.primary.metric, e.estimate, e.ci_low, e.ci_high)}")
        else:
            parts.append(f"{c.experiment_id}: no interval ({e.error})")
    return f"{len(comparisons)} experiment(s) compared: " + "; ".join(parts) + "."


def overdue_section(table: pd.DataFrame, config: Config) -> list[OverdueEntry]:
    """The ``overdue`` section of summary.json: one sentence per experiment whose review was skipped, its
    change and cohort in words (the configuration's description of the lever)."""
    return [OverdueEntry(str(r.experiment_id), dt.date.fromisoformat(r.review_date.isoformat()[:10]),
                         f"{r.experiment_id} ({lever_words(r.lever, config)} on {cohort_words(r.cohort)}): review date "
                         f"{date_text(r.review_date)} passed without a verdict; set its review date to this week to "
                         "read it, or close it")
            for r in table.itertuples(index=False)]


@dataclass
class ComparisonResult:
    """Step 4's result (``core.step.StepResult``): a comparison per experiment due for review, and the
    experiments whose review date passed without a verdict (overdue)."""

    comparisons: list[Comparison]
    overdue: list[OverdueEntry] = field(default_factory=list)
    #: the experiments live this week and not yet due: what is being tested
    running: list[RunningEntry] = field(default_factory=list)
    #: the shop's display (currency, metric names) the conclusion is written in
    display: Display = field(default_factory=lambda: Display(currency=""))

    @property
    def sections(self) -> dict[str, object]:
        return {"comparisons": [c.section() for c in self.comparisons], "overdue": self.overdue,
                "running": self.running}

    @property
    def conclusion(self) -> str:
        return conclusion(self.comparisons, self.display)


def analyse(snapshot: Snapshot, config: Config, journal_dir: str | os.PathLike | None = None) -> ComparisonResult:
    """Step 4: compare treatment and control for every experiment due this week, and every open one
    read again; list the overdue ones (both given the journal)."""
    late = overdue_section(overdue(snapshot, journal_dir), config) if journal_dir is not None else []
    return ComparisonResult(compare_due(snapshot, config, journal_dir), late, running(snapshot),
                            Display(config.currency, config.metrics))
