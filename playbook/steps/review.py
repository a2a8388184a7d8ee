"""Step 5 of the loop: the J+7 review, keep / adjust / stop by a written rule, and the next action.

The verdict rule lives in ``playbook.steps.verdict.decide``; this module applies it to the week's
comparisons (the ``comparisons`` section written by notebook 04), answers the weekly review
script from the data (what moved, why, what we decide, what we do next) and prepares the
decision-journal entries.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import pandas as pd
from scipy.stats import norm

from playbook.core.formats import money_text
from playbook.core.jsonmodel import OMIT_IF_NONE, from_json
from playbook.core.settings import Config
from playbook.core.vocabulary import (
    CONTINUE,
    DECISIONS,
    PROVISIONAL,
    STOP,
    Decision,
    Design,
    Direction,
    GuardrailState,
    Status,
)
from playbook.core.weeks import IsoWeek
from playbook.data.contract import parse_cohort
from playbook.data.dataset import Snapshot
from playbook.journal.entry import JournalEntry
from playbook.journal.store import EarlierLook, earlier_looks
from playbook.journal.under_test import CohortInTest, cohorts_in_test, holding_test
from playbook.metrics.dictionary import cohort_week, metric_named
from playbook.metrics.display import cohort_words, metric_title, plain
from playbook.stats.results import jsonable
from playbook.stats.sequential import LookBoundary, look_boundary
from playbook.steps.baseline import BaselineSection
from playbook.steps.cohorts import CandidateEntry, WeakCohortSection
from playbook.steps.experiments import (
    ComparisonSection,
    DelayEntry,
    GuardrailEntry,
    PrimaryEntry,
    SettledEntry,
)
from playbook.steps.levers import LeverSection
from playbook.steps.verdict import (
    CATCH_UP_ALPHA,
    CATCH_UP_SHARE,
    DelayRead,
    GuardrailRead,
    Verdict,
    WindowRead,
    decide,
    one_sided_bound,
)


@dataclass(frozen=True)
class ExperimentVerdict:
    experiment_id: str
    design: Design
    lever: str
    cohort: str
    primary_metric: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    expected_low: float | None
    expected_high: float | None
    verdict: Verdict
    guardrails: tuple[GuardrailRead, ...] = ()
    #: the effect as money saved per week on the whole cohort, with its interval (None: no money value)
    money: tuple[float, float, float] | None = None
    #: the read the money is valued on when longer than K (step 4's ``settled``); None: the K-day read
    settled: SettledEntry | None = None
    #: the return window (days) of the read the money was valued on (None: no money, or not a return rate)
    money_window_days: int | None = None

    def summary_row(self) -> dict[str, Any]:
        v = self.verdict
        return {"experiment_id": self.experiment_id, "decision": v.decision, "why": v.why,
                "next_step": v.next_step, "estimate": self.estimate, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "primary_metric": self.primary_metric, "k_read": v.k_read,
                "look": v.look, "planned_looks": v.planned_looks,
                "information_fraction": v.information_fraction, "boundary": v.boundary,
                "readable_on": v.readable_on.isoformat() if v.readable_on else None,
                "flags": list(v.flags), "follow_ups": list(v.follow_ups), "reasons": list(v.reasons),
                "money_per_week": self.money[0] if self.money else None,
                "money_ci": list(self.money[1:]) if self.money else None,
                "money_window_days": self.money_window_days if self.money else None,
                "guardrails": [{"metric": g.metric, "state": g.state.value, "why": g.why,
                                "follow_up_on": g.follow_up_on.isoformat() if g.follow_up_on else None}
                               for g in self.guardrails]}

    def journal_entry(self, week: str) -> JournalEntry:
        v = self.verdict
        why = v.why + "".join(f"; FLAG {f}" for f in v.flags)
        return JournalEntry(
            week=week, kind="verdict", experiment_id=self.experiment_id, lever=self.lever, cohort=self.cohort,
            primary_metric=self.primary_metric, design=self.design, expected_low=self.expected_low,
            expected_high=self.expected_high, estimate=self.estimate, ci_low=self.ci_low, ci_high=self.ci_high,
            decision=v.decision, why=why, look=v.look, k_read=v.k_read, follow_ups="; ".join(v.follow_ups),
            money_per_week=self.money[0] if self.money else None,
            money_ci_low=self.money[1] if self.money else None, money_ci_high=self.money[2] if self.money else None,
            money_window_days=self.money_window_days if self.money else None,
            information_fraction=v.information_fraction, boundary=v.boundary,
        )


@dataclass(frozen=True)
class ReviewGuardrail:
    """A guardrail's state in a ``review`` entry."""

    metric: str
    state: GuardrailState
    why: str
    follow_up_on: dt.date | None


@dataclass(frozen=True)
class ReviewEntry:
    """One entry of the ``review`` section of summary.json: a verdict, its look and its reasons.

    ``money_per_week``: the effect as money saved per week on the whole cohort, ``money_ci`` its interval
    (both None: no money value).
    """

    experiment_id: str
    decision: Decision
    why: str
    next_step: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    primary_metric: str
    k_read: int | None
    look: int
    planned_looks: int
    readable_on: dt.date | None
    flags: tuple[str, ...]
    follow_ups: tuple[str, ...]
    money_per_week: float | None
    money_ci: tuple[float, ...] | None
    guardrails: tuple[ReviewGuardrail, ...]
    #: every reason that applies (evidence, each guardrail, SRM, delay, blockers); the look's information
    #: fraction and its boundary (None: the look spent nothing)
    reasons: tuple[str, ...]
    information_fraction: float | None = field(default=None, metadata=OMIT_IF_NONE)
    boundary: float | None = field(default=None, metadata=OMIT_IF_NONE)
    #: the return window (days) the money was valued on (``ExperimentVerdict.money_window_days``)
    money_window_days: int | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class NextAction:
    """The ``next_action`` section: the flagged cohort with the largest excess cost not under test, and its lever."""

    cohort: str
    reason_code: str | None
    action: str
    description: str
    excess_cost: float


def _guardrail_read(g: GuardrailEntry) -> GuardrailRead:
    """A guardrail entry of the summary as the verdict sees it (its state as notebook 04 wrote it)."""
    return GuardrailRead(g.metric, GuardrailState(g.state), g.state_why, g.optional, g.follow_up_on)


def _window(p: PrimaryEntry) -> WindowRead | None:
    if p.k_registered is None:
        return None
    return WindowRead(p.k_registered, p.k_read, bool(p.readable), p.readable_on, p.window_why or "", p.information)


def _delay(comparison: ComparisonSection, look: LookBoundary) -> DelayRead | None:
    """The timing check as the verdict reads it, once the longer read is readable. A prevention never makes
    the treated returns catch up after day K, a delay does (``stats.lag.catch_up_difference``); so a possible
    delay is

    * **confirmed** when the longer read's bound is past no effect at this look's boundary (the keep's own test)
      and the catch-up's one-sided upper bound (``verdict.CATCH_UP_ALPHA``) shows that at most
      ``verdict.CATCH_UP_SHARE`` of the K-day gap comes back by the longer day: most of the gap stays;
    * **not confirmed** when the longer read shows no gap, or when the treated returns are shown to catch up
      (one-sided p <= ``CATCH_UP_ALPHA``): the K-day gap is at least partly a delay;
    * **open** (None, read again next week) while neither is shown: more customers reach the longer follow-up
      every week; not confirmed once every exposed unit has been followed that long (``readable_on`` of the
      check) and it is still not shown.

    A gap alone at the longer day does not confirm: a delay whose stretched lags reach past that day leaves a
    real gap there. None: no timing check (too few returns)."""
    d, p = comparison.delay, comparison.primary
    if d is None:
        return None
    confirmed, detail, readable_on = None, "", d.readable_on
    if d.confirm_estimate is not None and d.confirm_ci_low is not None and d.confirm_ci_high is not None:
        c = look.boundary if math.isfinite(look.boundary) else 1.959964
        side = "upper" if p.good_direction == Direction.LOWER else "lower"
        bound = one_sided_bound(d.confirm_estimate, d.confirm_ci_low, d.confirm_ci_high, side=side,
                                confidence=p.confidence, alpha=float(norm.sf(c)))
        gap_holds = bool(bound < p.null_value if p.good_direction == Direction.LOWER else bound > p.null_value)
        confirmed = gap_holds and _most_of_the_gap_stays(d, p)
        if d.catch_up_p_value is not None and d.catch_up_p_value <= CATCH_UP_ALPHA:
            confirmed = False
            detail = (f"the treated returns catch up after day {p.k_registered}: {d.catch_up * 100:.1f} points more "
                      f"of the treated units than of control's were returned between day {p.k_registered} and day "
                      f"{d.confirm_days} (p = {d.catch_up_p_value:.2g}): the {p.k_registered}-day gap is at least "
                      "partly a delay")
        elif gap_holds and not confirmed:
            complete = d.readable_on is not None and comparison.read_on is not None and comparison.read_on >= d.readable_on
            between = f"the returns between day {p.k_registered} and day {d.confirm_days}"
            if complete:  # every exposed unit followed that long: waiting adds nothing
                confirmed = False
                detail = (f"with every exposed unit followed {d.confirm_days} days, {between} do not show that most "
                          "of the gap stays")
            else:  # neither shown yet: next week's read follows more customers that long
                confirmed = None
                detail = (f"no keep before the {d.confirm_days}-day read shows that most of the gap stays ({between} "
                          "are not known well enough yet)")
                readable_on = comparison.read_on + dt.timedelta(days=7) if comparison.read_on else None
    return DelayRead(d.possible_delay, d.why, d.confirm_days, confirmed, readable_on, detail)


def _most_of_the_gap_stays(d: DelayEntry, p: PrimaryEntry) -> bool:
    """The catch-up's one-sided upper bound is below ``CATCH_UP_SHARE`` of the K-day gap (a return rate: the
    gap is the estimate's distance below no effect)."""
    if None in (d.catch_up, d.catch_up_ci_low, d.catch_up_ci_high) or p.estimate is None:
        return False
    upper = one_sided_bound(d.catch_up, d.catch_up_ci_low, d.catch_up_ci_high, side="upper", confidence=0.95,
                            alpha=CATCH_UP_ALPHA)
    return upper < CATCH_UP_SHARE * abs(p.estimate - p.null_value)


def look_for(comparison: ComparisonSection, earlier: Sequence[EarlierLook] = ()) -> LookBoundary:
    """This read as a look of the experiment's sequential design (``stats.sequential.look_boundary``).

    Its information fraction is the read's information over the plan's (``planned_information``), or,
    for a row that declares looks but no information, the looks counted (look j of m at j/m). The read in
    the week of the review date (or later) is final and spends what is left; after a final look nothing
    is left, except for the read that confirms a keep held back by a possible delay, which is judged at
    the final look's boundary. ``earlier``: the experiment's verdicts of earlier weeks (the journal). An extended
    test (``playbook experiments extend``, before its first review date's read) counts its earlier looks'
    information against the new plan: they keep the alpha they spent, and the new review date's read is final.
    """
    spent = [e for e in earlier if e.boundary is not None and e.information_fraction is not None]
    rescale = (comparison.original_planned_information / comparison.planned_information
               if comparison.original_planned_information and comparison.planned_information else 1.0)
    if rescale != 1.0:  # an extended test: its earlier looks' information counted against the new plan
        spent = [replace(e, information_fraction=e.information_fraction * rescale) for e in spent]
    p = comparison.primary
    if comparison.planned_information and p.information is not None:
        fraction = p.information / comparison.planned_information
    else:
        fraction = (len(spent) + 1) / comparison.planned_looks
    review = comparison.review_date
    final = review is not None and comparison.read_on is not None and comparison.read_on >= review
    past_final = [e for e in spent if (review is not None and e.week >= IsoWeek.of(review))
                  or e.information_fraction >= 1]
    if past_final:
        last = spent[-1]
        held_for_delay = last is past_final[-1] and last.decision == CONTINUE
        boundary = last.boundary if held_for_delay else math.inf
        return LookBoundary(len(spent) + 1, fraction, 1.0, boundary, 0.025, True)
    return look_boundary([e.information_fraction for e in spent], fraction, final=final)


def verdict_for(comparison: ComparisonSection, earlier: Sequence[EarlierLook] | int = ()) -> ExperimentVerdict:
    """Apply the written rule to one entry of the ``comparisons`` summary section, at its look of the
    experiment's design given the ``earlier`` verdicts (the journal's; an int is the look number of a
    design without earlier information, kept for callers that count looks)."""
    if isinstance(earlier, int):
        earlier = [EarlierLook(IsoWeek.parse("2000-W01"), "", (i + 1) / comparison.planned_looks, 1.0)
                   for i in range(earlier - 1)]
    p = comparison.primary
    guards = tuple(_guardrail_read(g) for g in comparison.guardrails)
    window = _window(p)
    look = look_for(comparison, earlier)
    if window is not None and not window.readable:  # a read that cannot be made spends nothing
        look = replace(look, boundary=math.inf)
    v = decide(
        p.estimate, p.ci_low, p.ci_high, delay=_delay(comparison, look),
        good_direction=p.good_direction,
        expected_low=p.expected_low, expected_high=p.expected_high,
        null_value=p.null_value,
        srm=comparison.srm_mismatch or comparison.srm_exposed_mismatch,
        guardrails=guards, keep_blockers=comparison.keep_blockers,
        window=window, look=look, planned_looks=comparison.planned_looks,
        next_read=comparison.read_on + dt.timedelta(days=7) if comparison.read_on else None, confidence=p.confidence,
    )
    if p.error and v.decision not in (STOP, PROVISIONAL):
        v = replace(v, why=f"{v.why} ({p.error})")
    return ExperimentVerdict(
        comparison.experiment_id, comparison.design, comparison.lever or "", comparison.cohort or "",
        p.metric, p.estimate, p.ci_low, p.ci_high, p.expected_low, p.expected_high,
        v, guards, settled=comparison.settled,
    )


def verdicts(comparisons: list[ComparisonSection], journal_dir: Any = None, week: Any = None) -> list[ExperimentVerdict]:
    """The week's verdicts; with a journal and a week, each look follows the experiment's earlier looks."""

    def earlier(c: ComparisonSection) -> list[EarlierLook]:
        return earlier_looks(journal_dir, c.experiment_id, week) if journal_dir is not None and week is not None else []
    return [verdict_for(c, earlier(c)) for c in comparisons]


def valued(items: list[ExperimentVerdict], snap: Snapshot, config: Config) -> list[ExperimentVerdict]:
    """Each verdict with its effect in money per week on the whole cohort (``Metric.money_per_week``).

    Money is the one unit in which effects on different cohorts and metrics add up in the track record;
    the interval's ends are the interval of the metric turned into money (a saving is positive). A return
    rate is valued on its longest readable window (step 4's ``settled`` read, up to the days holding 99 % of
    the shop's returns), not on the K-day read that decides: returns prevented are counted whenever they
    would have come, and a lever that only delays them is not valued as preventing them.
    """
    out = []
    for item in items:
        metric = metric_named(item.primary_metric, config.metrics)
        # the cohort's week is valued at the configured window: a plan read at another k has no money here
        other_k = metric is not None and metric.return_window_days not in (None, config.metrics.return_window_days)
        if metric is None or item.estimate is None or other_k:
            out.append(item)
            continue
        read = item.settled
        changes = (read.estimate, read.ci_low, read.ci_high) if read else (item.estimate, item.ci_low, item.ci_high)
        week = cohort_week(snap, config.metrics, parse_cohort(item.cohort))
        values = [metric.money_per_week(x, week) for x in changes]
        if any(v is None for v in values):
            out.append(item)
            continue
        days = read.days if read else item.verdict.k_read or metric.return_window_days
        out.append(replace(item, money=(values[0], min(values[1:]), max(values[1:])), money_window_days=days))
    return out


def _look_words(row: dict[str, Any]) -> str:
    fraction, boundary = row.get("information_fraction"), row.get("boundary")
    if fraction is None:
        return f"{row['look']} of {row['planned_looks']}"
    needs = f", keep needs z >= {boundary:.2f}" if boundary is not None else ", spends nothing"
    return f"{row['look']} ({fraction:.0%} of the planned information{needs})"


def verdict_table(items: list[ExperimentVerdict]) -> pd.DataFrame:
    """One row per verdict, in words: decision, look, window read, guardrail states, flags and follow-ups."""
    rows = []
    for i in items:
        r = i.summary_row()
        rows.append({"experiment": r["experiment_id"], "decision": r["decision"],
                     "look": _look_words(r), "primary_metric": r["primary_metric"],
                     "read at": f"{r['k_read']} days" if r["k_read"] else "",
                     "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                     "guardrails": "; ".join(f"{g['metric']}: {g['state'].replace('_', ' ')}" for g in r["guardrails"]),
                     "why": r["why"], "next step": r["next_step"],
                     "flags": "; ".join(r["flags"]), "follow-ups": "; ".join(r["follow_ups"]),
                     "saved per week": r["money_per_week"]})
    return pd.DataFrame(rows)


def next_action(candidates: list[CandidateEntry], under_way: list[CohortInTest], config: Config,
                plan: LeverSection | None = None) -> NextAction | None:
    """The weak cohort with the largest excess cost that no test holds (``experiments.cohorts_in_test``,
    the list step 3 plans around), with its lever."""
    for c in sorted(candidates, key=lambda c: -c.excess_cost):
        filters = c.filters
        cohort = ";".join(f"{k}={v}" for k, v in filters.items() if k != "reason_code")
        if holding_test(cohort, under_way) is not None:
            continue
        lever = config.lever_for(filters.get("reason_code", "other"))
        action = lever["lever"]
        if plan and plan.cohort == cohort:
            action = plan.lever
        return NextAction(cohort, filters.get("reason_code"), action, lever.get("description", ""),
                          float(c.excess_cost))
    return None


def _next_words(nxt: NextAction) -> str:
    """The next action as the index says it: the lever's description on the cohort in words."""
    where = cohort_words({**parse_cohort(nxt.cohort), **({"reason_code": nxt.reason_code} if nxt.reason_code else {})})
    return f"{nxt.description or plain(nxt.action)} on {where}"


def review_script(baseline: BaselineSection | None, weak: WeakCohortSection | None, items: list[ExperimentVerdict],
                  nxt: NextAction | None, currency: str = "") -> list[tuple[str, str]]:
    """The weekly review questions, answered from the week's ``baseline`` and ``weak_cohort`` sections in the
    index's words: metrics by their names, cohorts and levers in words, money in the shop's ``currency``."""
    metrics = baseline.metrics if baseline is not None else {}
    moved = [f"{m.title or metric_title(name)} ({m.status}: {m.why})" for name, m in metrics.items()
             if m.status in (Status.RED, Status.AMBER)]
    why = (f"the weak cohort is {cohort_words(weak.filters)}: "
           f"{weak.return_rate:.1%} returned against {weak.expected_rate:.1%} normally, "
           f"excess cost {money_text(weak.excess_cost, currency)}" if weak else "no cohort stands out against its own baseline")
    decided = ("; ".join(f"{i.experiment_id}: {i.verdict.decision}, {i.verdict.next_step}" for i in items)
               or "no experiment was due for review")
    nxt_text = (f"{_next_words(nxt)}, excess cost {money_text(nxt.excess_cost, currency)}"
                if nxt else "no flagged cohort outside the running tests: keep capacity for the running ones")
    return [
        ("What moved?", "; ".join(moved) or "nothing left its usual range"),
        ("Why?", why),
        ("Keep, adjust or stop?", decided),
        ("Next highest-impact action?", nxt_text),
    ]


def conclusion(items: list[ExperimentVerdict], nxt: NextAction | None) -> str:
    counts = {d: sum(i.verdict.decision == d for i in items) for d in DECISIONS}
    text = (f"{len(items)} experiment(s) reviewed: {counts['keep']} kept, {counts['adjust']} to adjust, "
            f"{counts['stop']} stopped, {counts['continue']} continuing, {counts['provisional']} provisional")
    flagged = [i.experiment_id for i in items if i.verdict.flags]
    if flagged:
        text += f" ({', '.join(flagged)}: check before rolling out)"
    return text + (f"; next action: {_next_words(nxt)}." if nxt else "; no new cohort to act on.")


def review_section(items: list[ExperimentVerdict]) -> list[ReviewEntry]:
    """The ``review`` section of summary.json."""
    return [from_json(ReviewEntry, jsonable(i.summary_row()), f"review[{i.experiment_id}]") for i in items]


@dataclass(frozen=True)
class ReviewResult:
    """Step 5's result (``core.step.StepResult``): the verdicts, the review script and the next action.

    The track record is not part of it: it reads the journal with this run's staged verdicts, so the
    notebook computes it after staging them.
    """

    verdicts: list[ExperimentVerdict]
    next_action: NextAction | None
    script: list[tuple[str, str]]

    @property
    def sections(self) -> dict[str, object]:
        return {"review": review_section(self.verdicts), "next_action": self.next_action}

    @property
    def conclusion(self) -> str:
        return conclusion(self.verdicts, self.next_action)


def analyse(snapshot: Snapshot, config: Config, comparisons: list[ComparisonSection], *,
            baseline: BaselineSection | None = None, weak: WeakCohortSection | None = None,
            candidates: list[CandidateEntry] | None = None, lever: LeverSection | None = None,
            journal_dir: Any = None, week: Any = None) -> ReviewResult:
    """Step 5: the written rule applied to step 4's comparisons (looks numbered from the journal), each
    effect in money per week, the review questions answered, and the next highest-impact action."""
    items = valued(verdicts(comparisons, journal_dir, week), snapshot, config)
    nxt = next_action(candidates or [], cohorts_in_test(snapshot, journal_dir), config, lever)
    return ReviewResult(items, nxt, review_script(baseline, weak, items, nxt, config.currency))
