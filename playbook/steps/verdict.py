"""The written rule of the review: keep / adjust / stop / continue / provisional, guardrail states, looks.

The verdict words and guardrail states are in ``playbook.core.vocabulary``; the statistics the rule
reads come from step 4 (``playbook.steps.experiments``).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from scipy import stats

from playbook.core.formats import date_text
from playbook.core.vocabulary import ADJUST, CONTINUE, KEEP, PROVISIONAL, STOP, Decision, Direction, GuardrailState
from playbook.metrics.display import metric_title
from playbook.stats.sequential import LookBoundary, look_boundary

# --- keep / adjust / stop / provisional ----------------------------------------------------


def one_sided_bound(estimate: float, ci_low: float, ci_high: float, *, side: str, confidence: float = 0.95,
                    alpha: float = 0.025) -> float:
    """The one-sided (1 - alpha) bound on ``side`` ('upper' or 'lower') implied by a ``confidence`` interval.

    At alpha = (1 - confidence) / 2 it is the interval's own end, whatever its shape (t, bootstrap,
    Fieller). At another alpha, that side's half-width is scaled by z_{1-alpha} / z_{(1+confidence)/2},
    which is exact for a normal (Wald) interval and keeps the side's asymmetry otherwise.
    """
    end, sign = (ci_high, 1.0) if side == "upper" else (ci_low, -1.0)
    z_interval = float(stats.norm.ppf(0.5 + confidence / 2.0))
    z = float(stats.norm.ppf(1.0 - alpha))
    if math.isclose(z, z_interval, rel_tol=1e-12):
        return float(end)
    return estimate + sign * abs(end - estimate) * z / z_interval


def guardrail_state(estimate: float | None, ci_low: float | None, ci_high: float | None, *, tolerance: float | None,
                    bad_direction: Direction, null_value: float = 0.0, confidence: float = 0.95,
                    alpha: float = 0.025) -> GuardrailState:
    """The state of one guardrail: a non-inferiority test at one-sided ``alpha`` against its tolerance.

    Harm is a move in ``bad_direction`` beyond ``null_value + tolerance`` (Chow, Shao & Wang 2008,
    ch. 3: non-inferiority with margin = tolerance). Safe when the one-sided (1 - alpha) bound on the
    harm side stays inside the tolerance; breached when even the bound on the other side is past it.
    Harm likely when the estimate is past the tolerance AND the bound on the other side is past no
    effect: harm is shown at one-sided ``alpha``, so a guardrail that does not move is called harm likely
    at most ``alpha`` of the time whatever its noise (the point estimate alone called it up to half the
    time when its standard error was near its tolerance). This is the guardrail half of a risk-aware
    decision rule (Schultzberg, Kjellin & Rydberg 2024): a keep is blocked on evidence with a stated error
    rate, and a guardrail not yet shown safe gets a dated follow-up read instead.
    """
    if estimate is None or ci_low is None or ci_high is None or not all(
            math.isfinite(float(v)) for v in (estimate, ci_low, ci_high)):
        return GuardrailState.NOT_MEASURED
    tol = float(tolerance or 0.0)
    sign = 1.0 if bad_direction == Direction.HIGHER else -1.0
    harm = sign * (float(estimate) - null_value)
    upper = one_sided_bound(estimate, ci_low, ci_high, side="upper", confidence=confidence, alpha=alpha)
    lower = one_sided_bound(estimate, ci_low, ci_high, side="lower", confidence=confidence, alpha=alpha)
    harm_far, harm_near = (upper, lower) if sign > 0 else (lower, upper)
    harm_far, harm_near = sign * (harm_far - null_value), sign * (harm_near - null_value)
    if harm_near > tol:
        return GuardrailState.BREACHED
    if harm > tol and harm_near > 0:
        return GuardrailState.HARM_LIKELY
    if harm_far >= tol:
        return GuardrailState.NOT_SHOWN_SAFE
    return GuardrailState.SAFE


@dataclass(frozen=True)
class GuardrailRead:
    """One guardrail as the verdict sees it: its state, why, and (when not shown safe) the dated follow-up read."""

    metric: str
    state: GuardrailState
    why: str = ""
    optional: bool = False
    follow_up_on: dt.date | None = None  # when a read of this guardrail can show it safe (power for the tolerance)


@dataclass(frozen=True)
class WindowRead:
    """How the primary metric's pre-registered window was read: k read, K registered, when K can be read."""

    k_registered: int
    k_read: int | None
    readable: bool
    readable_on: dt.date | None = None
    why: str = ""
    #: the read's information: customers per arm with a unit mature at K (``stats.sequential``)
    information: float | None = None


#: The level of the catch-up tests that tell a confirmed gap from a delay (one-sided, ``stats.lag.catch_up_difference``)
CATCH_UP_ALPHA = 0.05
#: The most of the K-day gap that may come back by the confirm window for a keep: at least half must stay
CATCH_UP_SHARE = 0.5


@dataclass(frozen=True)
class DelayRead:
    """Whether the treated arm's returns come back later than control's (``stats.delay``), and what a
    longer read says: ``confirmed`` True when the gap holds at ``confirm_days``, False when it does not,
    None when that read is not readable yet or does not settle it yet (``readable_on``: when to read again).
    ``detail``: the words of that state when the longer read gave them (the treated returns catch up; most of
    the gap not yet shown to stay), empty otherwise."""

    possible_delay: bool
    why: str
    confirm_days: int | None = None
    confirmed: bool | None = None
    readable_on: dt.date | None = None
    detail: str = ""


#: A row with one review date and nothing else: one look, at the nominal level.
SINGLE_LOOK = look_boundary([], 1.0, final=True)


@dataclass(frozen=True)
class Verdict:
    """The decision, every reason that applies, what to do next, and what a keep is conditional on.

    ``reasons``: the evidence, each guardrail's state, SRM, delay and blockers, in words (``why`` is the
    first, the one that decided); ``flags``: a keep to check before rolling out (smaller than planned,
    far outside the registered range); ``follow_ups``: dated reads the keep depends on (guardrails not
    yet shown safe); ``readable_on``: the date of the next read of an undecided verdict (continue,
    provisional); ``information_fraction`` and ``boundary``: the look as the spending read it (the
    boundary is None when the look spends nothing).
    """

    decision: Decision
    why: str
    next_step: str
    flags: tuple[str, ...] = ()
    follow_ups: tuple[str, ...] = ()
    readable_on: dt.date | None = None
    look: int | None = None
    planned_looks: int | None = None
    k_read: int | None = None
    reasons: tuple[str, ...] = ()
    information_fraction: float | None = None
    boundary: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"], d["follow_ups"], d["reasons"] = list(self.flags), list(self.follow_ups), list(self.reasons)
        d["readable_on"] = self.readable_on.isoformat() if self.readable_on else None
        return d


def _side(ci_low: float | None, ci_high: float | None, null: float, good: Direction) -> str:
    """Where the interval lies relative to no effect: 'good', 'bad' or 'straddles'."""
    if ci_low is None or ci_high is None:
        return "none"
    if ci_high < null:
        return "good" if good == Direction.LOWER else "bad"
    if ci_low > null:
        return "good" if good == Direction.HIGHER else "bad"
    return "straddles"


FAR_OUTSIDE_REASONS = (
    "an assignment or exposure bug (customers counted in the wrong arm, a filter applied to one arm only)",
    "another change in the shop during the test (price, stock, delivery, season) hitting one arm",
    "a novelty effect that fades once customers get used to the change",
    "a few customers with very large baskets carrying the difference",
)


def far_outside_range(estimate: float, expected_low: float, expected_high: float, null_value: float = 0.0) -> str | None:
    """Why a result is far outside the pre-registered range (None when it is not).

    Far outside: more than twice as far from no effect as the range's far end, or on the other
    side of no effect from the range. Such results are more often a bug or a confounded test than a
    lever twice as good as planned (the 'Twyman's law' of experimentation, Kohavi, Tang & Xu 2020, ch. 3).
    """
    lo, hi = sorted((expected_low - null_value, expected_high - null_value))
    d = estimate - null_value
    if lo >= 0 > d or hi <= 0 < d:
        return (f"the estimate {estimate:.4g} is on the other side of no effect from the expected range "
                f"[{expected_low:g}, {expected_high:g}]")
    far = hi if d > 0 else lo
    if far != 0 and abs(d) > 2 * abs(far):
        return f"the estimate {estimate:.4g} is more than twice the expected range's far end {far + null_value:g}"
    return None


def _keep_blocks(guardrails: Sequence[GuardrailRead], keep_blockers: Sequence[str], srm: bool,
                 delay: DelayRead | None) -> tuple[list[str], list[str]]:
    """(what blocks a keep, the dated follow-ups a keep depends on)."""
    blocks, follow_ups = [], []
    if srm:
        blocks.append("sample ratio mismatch: the split differs from the plan, the comparison cannot be trusted")
    blocks += list(keep_blockers)
    for g in guardrails:
        name = metric_title(g.metric)
        if g.state == GuardrailState.HARM_LIKELY:
            blocks.append(f"guardrail {name} is likely harmed ({g.why})")
        elif g.state == GuardrailState.NOT_MEASURED and not g.optional:
            blocks.append(f"guardrail {name} was not measured ({g.why})")
        elif g.state == GuardrailState.NOT_SHOWN_SAFE:
            # not a block: harm is not shown (a noisy guardrail would otherwise block most working levers);
            # the keep carries the read that can show it safe, or a watch when no read within half a year can
            # the guardrail's numbers are in its own reason: the follow-up says only what to do and when
            if g.follow_up_on is None:
                follow_ups.append(f"watch guardrail {name} weekly after the roll-out: not shown safe, and no read "
                                  "within half a year at this volume can show it")
            else:
                follow_ups.append(f"read guardrail {name} again on {date_text(g.follow_up_on)}: not shown safe yet")
    if delay is not None and delay.possible_delay and delay.confirmed is not True:
        blocks.append(f"possible delay: {delay.why}" + (
            f"; {delay.detail}" if delay.detail else
            f"; the {delay.confirm_days}-day read does not hold the gap" if delay.confirmed is False else
            f"; no keep before the {delay.confirm_days}-day read shows the gap holds"))
    return blocks, follow_ups


def _guardrail_words(guardrails: Sequence[GuardrailRead]) -> list[str]:
    return [f"guardrail {metric_title(g.metric)}: {g.state.words}" + (f" ({g.why})" if g.why else "") for g in guardrails]


def _smaller_than_planned(estimate: float, expected_low: float | None, expected_high: float | None,
                          good_direction: Direction) -> str | None:
    if expected_low is None or expected_high is None:
        return None
    lo, hi = sorted((expected_low, expected_high))
    weaker_end = hi if good_direction == Direction.LOWER else lo
    if (estimate > weaker_end) if good_direction == Direction.LOWER else (estimate < weaker_end):
        return (f"smaller than planned: check the money case (the estimate {estimate:.4g} is closer to no effect "
                f"than the expected range's weaker end {weaker_end:g})")
    return None


def _range_words(estimate: float, expected_low: float | None, expected_high: float | None,
                 good_direction: Direction) -> str:
    if expected_low is None or expected_high is None:
        return "no expected range was registered to compare it with"
    lo, hi = sorted((expected_low, expected_high))
    if lo <= estimate <= hi:
        return f"within the expected range [{lo:g}, {hi:g}]"
    stronger = estimate < lo if good_direction == Direction.LOWER else estimate > hi
    return f"{'beyond' if stronger else 'short of'} the expected range [{lo:g}, {hi:g}]"


def _z(estimate: float, ci_low: float, ci_high: float, null_value: float, good: Direction, confidence: float) -> float:
    """The signed z of the estimate against no effect, positive on the good side (its interval's half-width on
    the side of no effect as the standard error)."""
    z_interval = float(stats.norm.ppf(0.5 + confidence / 2.0))
    toward_null = (ci_high - estimate) if estimate < null_value else (estimate - ci_low)
    se = abs(toward_null) / z_interval
    if se <= 0:
        return math.inf if good.signed(estimate - null_value) > 0 else -math.inf if estimate != null_value else 0.0
    return good.signed(estimate - null_value) / se


def decide(
    estimate: float | None,
    ci_low: float | None,
    ci_high: float | None,
    *,
    good_direction: Direction,
    expected_low: float | None,
    expected_high: float | None,
    null_value: float = 0.0,
    breached_guardrails: list[str] | tuple[str, ...] = (),
    srm: bool = False,
    guardrails: Sequence[GuardrailRead] = (),
    keep_blockers: Sequence[str] = (),
    window: WindowRead | None = None,
    look: LookBoundary = SINGLE_LOOK,
    planned_looks: int | None = None,
    next_read: dt.date | None = None,
    delay: DelayRead | None = None,
    confidence: float = 0.95,
) -> Verdict:
    """The written rule of the review, the one the plan powers.

    The look (``look``, from :func:`playbook.stats.sequential.look_boundary`) gives the boundary c of
    this read: O'Brien-Fleming-type spending by the information read over the information planned, the
    final look (the review date) spending what is left, about z >= 2.0 for a plan at its size.

    stop: a guardrail is breached (its whole interval past its tolerance), or the primary moved the wrong
    way past the mirrored boundary (z <= -c: harm stops spend alpha too, so a change with no effect is
    stopped at most 2.5 % of the time over all looks). provisional: the pre-registered window K cannot be
    read yet. keep: z >= c (the test the plan powered), no SRM, no keep blocker (a guardrail with harm
    shown or not measured, a warning that makes the read untrustworthy, a possible delay not confirmed
    by a longer read), every guardrail not yet shown safe with a dated follow-up; an estimate smaller than
    the registered range's weaker end, or far outside it, is kept with a flag. continue: not conclusive,
    or blocked, before the final look (read again on ``next_read``), or a possible delay whose longer
    read is not readable yet. adjust: the final look did not show the effect, or showed it with a
    blocker: change the lever or its scope. Every reason that applies is listed in ``reasons``.
    """
    good_direction = Direction(good_direction)
    info = None if look.fraction is None or not math.isfinite(look.fraction) else look.fraction
    base = dict(look=look.look, planned_looks=planned_looks, k_read=window.k_read if window else None,
                information_fraction=info, boundary=look.boundary if math.isfinite(look.boundary) else None)
    guard_words = _guardrail_words(guardrails)
    breached = [metric_title(m) for m in list(breached_guardrails) + [
        g.metric for g in guardrails if g.state == GuardrailState.BREACHED and g.metric not in breached_guardrails]]
    if breached:
        why = f"guardrail breached: {', '.join(breached)} (the whole interval is past the tolerance)"
        return Verdict(STOP, why, "roll back and rethink the lever; the harm outweighs the gain",
                       reasons=(why, *guard_words), **base)
    if window is not None and not window.readable:
        when = f"on {date_text(window.readable_on)}" if window.readable_on else "once enough units have had the window"
        why = f"the pre-registered {window.k_registered}-day window cannot be read yet: {window.why}"
        return Verdict(PROVISIONAL, why, f"no keep before the {window.k_registered}-day read: review again {when}",
                       readable_on=window.readable_on, reasons=(why, *guard_words), **(base | {"boundary": None}))
    side = _side(ci_low, ci_high, null_value, good_direction)
    if side == "none":
        why = "no interval could be computed for the primary metric"
        return Verdict(ADJUST, why, "fix the data or the exposure and review again", reasons=(why, *guard_words), **base)
    c = look.boundary
    z = _z(estimate, ci_low, ci_high, null_value, good_direction, confidence)
    interval = f"[{ci_low:.4g}, {ci_high:.4g}]"
    where = f"at {look.words}" if info is not None else f"at look {look.look}"
    need = f"z >= {c:.2f}" if math.isfinite(c) else "nothing: this look adds no information and spends no alpha"
    evidence = f"estimate {estimate:.4g}, interval {interval}, z = {z:+.2f} {where} (a keep needs {need})"
    blocks, follow_ups = _keep_blocks(guardrails, keep_blockers, srm, delay)
    reasons = (evidence, *guard_words, *blocks)
    if math.isfinite(c) and z <= -c:
        harm = evidence.replace("a keep needs", "a stop needs").replace("z >= ", "z <= -")
        why = f"the primary metric moved the wrong way past the harm boundary: {harm}"
        return Verdict(STOP, why, "roll back the change", reasons=(why, *reasons[1:]), **base)
    shown = math.isfinite(c) and z >= c
    if shown and not blocks:
        flags = tuple(f for f in (_smaller_than_planned(estimate, expected_low, expected_high, good_direction),) if f)
        far = far_outside_range(estimate, *sorted((expected_low, expected_high)), null_value) \
            if expected_low is not None and expected_high is not None else None
        if far:
            flags += (f"check before rolling out: {far}; likely reasons: " + "; ".join(FAR_OUTSIDE_REASONS),)
        why = (f"the primary metric improved: {evidence}, "
               f"{_range_words(estimate, expected_low, expected_high, good_direction)}; no guardrail breached or "
               "shown harmed, no SRM")
        step = "check before rolling out (see the flags), then roll out and log it" if flags else \
            "roll out to the whole cohort and log it"
        if follow_ups:
            why += "; kept on condition: " + "; ".join(follow_ups)
            step += "; " + "; ".join(f.split(":")[0] for f in follow_ups)
        return Verdict(KEEP, why, step, flags, tuple(follow_ups), reasons=(why, *reasons[1:]), **base)
    delay_pending = (shown and delay is not None and delay.possible_delay and delay.confirmed is None
                     and not [b for b in blocks if not b.startswith("possible delay")])
    if delay_pending:
        when = f"on {date_text(delay.readable_on)}" if delay.readable_on else "when it can be read"
        why = f"the primary metric improved ({evidence}), but {blocks[-1]}"
        return Verdict(CONTINUE, why, f"keep the test running; read the {delay.confirm_days}-day window {when}",
                       readable_on=delay.readable_on, reasons=(why, *reasons[1:]), **base)
    if not look.final:
        when = f"on {date_text(next_read)}" if next_read else "at the next weekly review"
        state = "not conclusive yet" if not shown else "improved but not keepable yet: " + "; ".join(blocks)
        why = f"{state} {where}: {evidence}"
        return Verdict(CONTINUE, why, f"keep the test running; next read {when}", readable_on=next_read,
                       reasons=(why, *reasons[1:]), **base)
    if not math.isfinite(c):
        why = f"the planned looks are used up: no alpha is left for a keep ({evidence})"
        return Verdict(ADJUST, why, "plan a new test (with its own looks) if the lever is still worth it",
                       reasons=(why, *reasons[1:]), **base)
    if shown:
        why = f"the primary metric improved ({evidence}), but no keep: " + "; ".join(blocks)
        return Verdict(ADJUST, why, "resolve what blocks the keep (or change the lever or its scope), then retest",
                       reasons=(why, *reasons[1:]), **base)
    why = f"no effect shown at the planned review: {evidence}"
    return Verdict(ADJUST, why, "change the lever or its scope (a bolder lever, a narrower cohort), then retest",
                   reasons=(why, *reasons[1:]), **base)
