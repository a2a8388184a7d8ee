"""The week in plain words, from the typed summary: what the index and the brief say, built once.

Every sentence here is for a manager: metric names instead of ids, units and currency, no method names.
A number that comes from summary.json is wrapped by :func:`num` with the JSON path it comes from
(``data-summary``) and its display scale (``data-scale``), so the browser test can check that what a
reader sees is what the file says. Texts are :class:`markupsafe.Markup`: data values are escaped
where they enter, never later.
"""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from playbook.core.formats import date_text
from playbook.core.settings import Config
from playbook.core.vocabulary import Decision, Design, GuardrailState, Status
from playbook.metrics.display import Display, chance_words, cohort_words, lever_words, parse_cohort, plain, value_text
from playbook.report.summary import Summary
from playbook.steps.baseline import MetricStatusEntry
from playbook.steps.experiments import ComparisonSection
from playbook.steps.review import ReviewEntry

#: the order a reader meets the statuses in: what needs action first
STATUS_ORDER = (Status.RED, Status.AMBER, Status.UNAVAILABLE, Status.GREEN)
NO_RULE = "no rule: investigate"

#: a verdict as a manager reads it: the decision, then what it means
DECISION_WORDS = {
    Decision.KEEP: ("keep", "roll it out"),
    Decision.ADJUST: ("adjust", "change the lever or its scope"),
    Decision.STOP: ("stop", "roll it back"),
    Decision.CONTINUE: ("continue", "not conclusive yet"),
    Decision.PROVISIONAL: ("too early to read", ""),
}


def decision_words(decision: Decision | str, short: bool = False) -> str:
    """"keep: roll it out" ("keep" when ``short``); an unknown word as it is."""
    word, meaning = DECISION_WORDS.get(decision, (str(decision), ""))
    return word if short or not meaning else f"{word}: {meaning}"


def num(text: str, path: str, scale: int = 1) -> Markup:
    """A number as shown, tagged with its summary.json path and the factor from stored to shown value."""
    return Markup('<span class="num" data-summary="{}" data-scale="{}">{}</span>').format(path, scale, text)


@dataclass(frozen=True)
class StatusLine:
    """One metric's status for people: its name, the week against its usual level, and who acts."""

    metric: str
    title: str
    status: Status
    now: Markup
    usual: str
    why: str
    action: str
    owner: str
    zone: str


def status_lines(s: Summary, d: Display) -> dict[Status, list[StatusLine]]:
    """The statuses grouped in reading order; a red without a decision-table row says so."""
    metrics = s.baseline.metrics if s.baseline is not None else {}
    grouped: dict[Status, list[StatusLine]] = {st: [] for st in STATUS_ORDER}
    for name, m in metrics.items():
        grouped.setdefault(m.status, []).append(_status_line(name, m, d))
    return grouped


def _status_line(name: str, m: MetricStatusEntry, d: Display) -> StatusLine:
    numeric = isinstance(m.value, (int, float))
    now = (num(d.value(name, m.value), f"baseline.metrics.{name}.value", d.scale_of(name)) if numeric
           else Markup(escape("see the reason-mix chart" if isinstance(m.value, dict) else "not available")))
    usual = d.value(name, m.baseline) if isinstance(m.baseline, (int, float)) else ""
    action = m.action or (NO_RULE if m.status == Status.RED else "")
    return StatusLine(name, m.title or d.title(name), m.status, now, usual, m.why, action, m.owner or "", m.zone or "")


def status_count(s: Summary) -> str:
    """"6 red, 1 amber, 8 green"."""
    metrics = s.baseline.metrics if s.baseline is not None else {}
    counts = [(st, sum(1 for m in metrics.values() if m.status == st)) for st in STATUS_ORDER]
    return ", ".join(f"{n} {st}" for st, n in counts if n)


def weak_cohort_sentence(s: Summary, d: Display) -> Markup | None:
    """Where money is lost: the weak cohort, its return rate against the expected one, its excess cost."""
    wc = s.weak_cohort
    if wc is None:
        return None
    weeks = len(wc.window_weeks)
    return Markup("{who}: {rate} of units returned against {expected} expected, on {units} units delivered; "
                  "{money} of return costs above expected over {weeks} weeks of deliveries ({chance}).").format(
        who=_first_upper(cohort_words(wc.filters)),
        rate=num(value_text(wc.return_rate, "percent"), "weak_cohort.return_rate", 100),
        expected=num(value_text(wc.expected_rate, "percent"), "weak_cohort.expected_rate", 100),
        units=num(f"{wc.units:,}", "weak_cohort.units"),
        money=num(d.money(wc.excess_cost), "weak_cohort.excess_cost"),
        weeks=weeks, chance=chance_words(wc.q_value))


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def explained_candidates(s: Summary) -> list[str]:
    """The other slices that rose, which the weak cohort explains (they are not separate problems)."""
    wc = s.weak_cohort
    if wc is None:
        return []
    aside = {c.label: c for c in s.weak_cohort_set_aside or ()}
    return [cohort_words(aside[label].filters) if label in aside else cohort_words(label) for label in wc.explains]


@dataclass(frozen=True)
class VerdictLine:
    """A J+7 verdict for people: what was changed where, the decision, the effect against the range
    expected, the money, the guardrails, what to check and what happens next."""

    experiment_id: str
    change: str
    decision: Decision
    decision_words: str
    effect: Markup
    expected: str
    money: Markup
    guardrails: tuple[str, ...]
    flags: tuple[str, ...]
    follow_ups: tuple[str, ...]
    next_step: str
    why: str
    #: every reason that applies (evidence, each guardrail, SRM, delay, blockers), the first the deciding one
    reasons: tuple[str, ...] = ()


def verdict_lines(s: Summary, d: Display, config: Config) -> list[VerdictLine]:
    compared = {c.experiment_id: c for c in s.comparisons or ()}
    return [verdict_line(i, r, compared.get(r.experiment_id), d, config) for i, r in enumerate(s.review or ())]


def money_words(decision: Decision | str, amount: float) -> str:
    """How a verdict's money per week reads ("{}" the amount): saved (or lost) only when the lever is kept; an
    estimate of a test still running, or of a lever stopped or adjusted, is said to be one."""
    decision = Decision(decision)
    if decision == Decision.KEEP:
        return "{} per week saved on the cohort" if amount >= 0 else "{} per week lost on the cohort"
    if decision.undecided:
        return "{} per week on the cohort if the estimate holds (not decided yet)"
    return "{} per week on the cohort by the estimate (not rolled out)"


def verdict_line(i: int, r: ReviewEntry, c: ComparisonSection | None, d: Display, config: Config) -> VerdictLine:
    """The ``i``-th verdict of the ``review`` section for people (its numbers tagged with their summary path)."""
    metric = r.primary_metric
    change = (f"{lever_words(c.lever, config)} on {cohort_words(c.cohort)}" if c is not None else r.experiment_id)
    effect = (Markup("{}: {} {}").format(d.title(metric), num(d.change(metric, r.estimate), f"review.{i}.estimate",
                                                               d.scale_of(metric)), d.bounds(metric, r.ci_low, r.ci_high))
              if r.estimate is not None else Markup(escape(f"{d.title(metric)}: not readable yet")))
    expected = ""
    if c is not None and c.primary.expected_low is not None and c.primary.expected_high is not None:
        expected = (f"expected {d.change(metric, c.primary.expected_low)} to {d.change(metric, c.primary.expected_high)}")
    money = (Markup(money_words(r.decision, r.money_per_week)).format(
        num(d.money(r.money_per_week), f"review.{i}.money_per_week")) if r.money_per_week is not None else Markup(""))
    if money and r.money_window_days and r.k_read and r.money_window_days != r.k_read:
        money += Markup(" (counting the returns within {} days of delivery, not only {})").format(
            r.money_window_days, r.k_read)
    guards = tuple(f"{d.title(g.metric)}: {GuardrailState(g.state).words}" for g in r.guardrails)
    decision = decision_words(r.decision)
    if r.decision == Decision.PROVISIONAL and r.readable_on:
        decision += f" (readable on {date_text(r.readable_on)})"
    elif r.decision == Decision.CONTINUE and r.information_fraction is not None:
        decision += (f" at {r.information_fraction:.0%} of the planned information"
                     + (f"; next read on {date_text(r.readable_on)}" if r.readable_on else ""))
    elif r.information_fraction is not None and r.boundary is not None:
        decision += f" (look {r.look}, {min(r.information_fraction, 1):.0%} of the planned information)"
    elif r.look and r.planned_looks:
        decision += f" (look {r.look} of {r.planned_looks})"
    return VerdictLine(r.experiment_id, change, r.decision, decision, effect, expected, money, guards, r.flags,
                       r.follow_ups, r.next_step, r.why, tuple(r.reasons) or (r.why,))


def next_action_sentence(s: Summary, d: Display) -> Markup | None:
    nxt = s.next_action
    if nxt is None:
        return None
    target = cohort_words({**parse_cohort(nxt.cohort), **({"reason_code": nxt.reason_code} if nxt.reason_code else {})})
    return Markup("Test a {what} on {target} ({money} of excess return costs).").format(
        what=nxt.description or plain(nxt.action), target=target,
        money=num(d.money(nxt.excess_cost), "next_action.excess_cost"))


def plan_caveat(s: Summary, d: Display) -> str | None:
    """What the plan can and cannot show: its length, its review date, its power and the catch."""
    lever = s.lever
    if lever is None:
        return None
    if not lever.ready:
        return lever.no_row_reason or "No experiment can be planned this week."
    chosen = next((o for o in lever.options if o.kind == lever.chosen_option), None)
    metric = lever.primary_metric
    text = (f"Planned: {chosen.description if chosen else 'as planned'}, review on {date_text(lever.review_date)}"
            + (f" with {lever.power_at_review * 100:.0f} % power" if lever.power_at_review is not None else "") + ".")
    planned = next((o for o in lever.options if o.kind == "as_planned"), None)
    if lever.underpowered and planned is not None and not planned.reaches_power:
        need = f"{planned.weeks_uncapped} weeks" if planned.weeks_uncapped else "longer than any run"
        text += (f" Caveat: a change at the weaker end of the expected range ({d.change(metric, lever.expected_high)})"
                 f" would need {need} to show; a smaller effect may not be shown by the review date (adjust).")
    return text


def running_lines(s: Summary, config: Config) -> list[str]:
    """What is being tested and not yet due: the change, where, since when, and when it is read."""
    def design(word: str) -> str:
        return Design(word).words if word in set(Design) else word

    return [f"{lever_words(r.lever, config)} on {cohort_words(r.cohort)} ({design(r.design)}), "
            f"since {date_text(r.start_date)}, review on {date_text(r.review_date)}" for r in s.running or ()]


def overdue_lines(s: Summary) -> list[str]:
    return [item.text for item in s.overdue or ()]


def headline(s: Summary, d: Display, config: Config) -> Markup:
    """The week in one sentence: what is red, where money is lost, what was decided, what comes next."""
    parts: list[Markup] = []
    if s.baseline is not None:
        red = [line.title for line in status_lines(s, d)[Status.RED]]
        parts.append(Markup(escape(f"{len(red)} metric{'s are' if len(red) != 1 else ' is'} red"
                                   + (f" ({', '.join(red[:3])}{', ...' if len(red) > 3 else ''})" if red else ""))))
    wc = s.weak_cohort
    if wc is not None:
        parts.append(Markup("the weak cohort is {} ({} above expected over {} weeks)").format(
            cohort_words(wc.filters), num(d.money(wc.excess_cost), "weak_cohort.excess_cost"), len(wc.window_weeks)))
    elif "weak_cohort" in s.present:
        parts.append(Markup("no cohort stands out"))
    if s.review:
        counted = {}
        for r in s.review:
            counted[r.decision] = counted.get(r.decision, 0) + 1
        said = ", ".join(f"{n} {decision_words(dec, short=True)}" for dec, n in counted.items())
        parts.append(Markup(escape(f"{len(s.review)} experiment{'s' if len(s.review) != 1 else ''} reviewed ({said})")))
    nxt = s.next_action
    if nxt is not None:
        parts.append(Markup(escape(f"next: {nxt.description or plain(nxt.action)} on {cohort_words(nxt.cohort)}")))
    if not parts:
        return Markup(escape(f"Week {s.week}: nothing to report yet."))
    return Markup("Week {}: ").format(s.week) + Markup("; ").join(parts) + Markup(".")
