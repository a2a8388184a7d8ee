"""The written rule of the J+7 review: keep / adjust / stop / provisional, guardrail states, looks.

The verdict words and guardrail states are in ``playbook.core.vocabulary``; the statistics the rule
reads come from step 4 (``playbook.steps.experiments``).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from scipy import stats

from playbook.core.vocabulary import ADJUST, KEEP, PROVISIONAL, STOP, Decision, Direction, GuardrailState
from playbook.stats.sequential import keep_critical_value

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
    if harm > tol:
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


@dataclass(frozen=True)
class LookPlan:
    """Which look this is (1-based, counted in the journal) out of the planned number (alpha spending)."""

    look: int = 1
    planned_looks: int = 1
    alpha: float = 0.025  # one-sided alpha of a keep, spent across the looks (O'Brien-Fleming type)


@dataclass(frozen=True)
class Verdict:
    """The decision, why, what to do next, and what a keep is conditional on.

    ``flags``: a keep to check before rolling out (result far outside the registered range);
    ``follow_ups``: dated reads the keep depends on (guardrails not yet shown safe);
    ``readable_on``: for a provisional verdict, when the pre-registered window can be read.
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"], d["follow_ups"] = list(self.flags), list(self.follow_ups)
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


def _keep_gate(guardrails: Sequence[GuardrailRead], keep_blockers: Sequence[str]) -> tuple[list[str], list[str]]:
    """(what blocks a keep, the dated follow-ups a keep depends on)."""
    blocks, follow_ups = list(keep_blockers), []
    for g in guardrails:
        if g.state == GuardrailState.HARM_LIKELY:
            blocks.append(f"guardrail {g.metric} is likely harmed ({g.why})")
        elif g.state == GuardrailState.NOT_MEASURED and not g.optional:
            blocks.append(f"guardrail {g.metric} was not measured ({g.why})")
        elif g.state == GuardrailState.NOT_SHOWN_SAFE:
            if g.follow_up_on is None:
                blocks.append(f"guardrail {g.metric} is not shown safe and no follow-up read can show it ({g.why})")
            else:
                follow_ups.append(f"read guardrail {g.metric} again on {g.follow_up_on:%Y-%m-%d}: not shown safe yet ({g.why})")
    return blocks, follow_ups


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
    looks: LookPlan = LookPlan(),
    confidence: float = 0.95,
) -> Verdict:
    """The written rule of the J+7 review.

    stop: a guardrail is breached (its whole interval past its tolerance), or the primary interval
    lies entirely on the bad side of no effect. provisional: the pre-registered window K cannot be
    read yet (``window.readable`` false): no keep before ``window.readable_on``. keep: the primary's
    one-sided bound at the look's alpha-spending critical value (``looks``; O'Brien-Fleming-type
    Lan-DeMets, see ``playbook.stats.sequential``) is on the good side, the estimate is at least as
    strong as the registered range's weaker end, no SRM, no keep blocker (a guardrail likely harmed
    or not measured, a warning that makes the read untrustworthy) and every guardrail not yet shown
    safe has a dated follow-up read. A keep far outside the registered range carries a flag to check
    before rolling out. adjust: everything else.
    """

    base = dict(look=looks.look, planned_looks=looks.planned_looks, k_read=window.k_read if window else None)
    breached = list(breached_guardrails) + [g.metric for g in guardrails if g.state == GuardrailState.BREACHED
                                             and g.metric not in breached_guardrails]
    if breached:
        return Verdict(STOP, f"guardrail breached: {', '.join(breached)} (the whole interval is past the tolerance)",
                       "roll back and rethink the lever; the harm outweighs the gain", **base)
    if window is not None and not window.readable:
        when = f"on {window.readable_on:%Y-%m-%d}" if window.readable_on else "once enough units have had the window"
        return Verdict(PROVISIONAL, f"the pre-registered {window.k_registered}-day window cannot be read yet: {window.why}",
                       f"no keep before the {window.k_registered}-day read: review again {when}",
                       readable_on=window.readable_on, **base)
    side = _side(ci_low, ci_high, null_value, good_direction)
    interval = "no interval" if side == "none" else f"[{ci_low:.4g}, {ci_high:.4g}]"
    if side == "bad":
        return Verdict(STOP, f"the primary metric moved the wrong way: {estimate:.4g}, interval {interval} "
                             f"entirely on the bad side of {null_value:g}",
                       "roll back the change", **base)
    if side == "none":
        return Verdict(ADJUST, "no interval could be computed for the primary metric",
                       "fix the data or the exposure and review again", **base)
    if srm:
        return Verdict(ADJUST, "sample ratio mismatch: the split differs from the plan, the comparison cannot be trusted",
                       "fix the assignment and rerun the test", **base)
    c = keep_critical_value(looks.look, looks.planned_looks, looks.alpha)
    at_look = f"look {looks.look} of {looks.planned_looks}"
    if not math.isfinite(c):
        return Verdict(ADJUST, f"{at_look}: the planned looks are used up, no alpha is left for a keep",
                       "plan a new test (with its own looks) if the lever is still worth it", **base)
    good_bound = one_sided_bound(estimate, ci_low, ci_high, side="upper" if good_direction == Direction.LOWER else "lower",
                                 confidence=confidence, alpha=float(stats.norm.sf(c)))
    shown = good_bound < null_value if good_direction == Direction.LOWER else good_bound > null_value
    if not shown:
        return Verdict(ADJUST, f"inconclusive at {at_look}: estimate {estimate:.4g}, interval {interval}; a keep at this "
                               f"look needs z >= {c:.2f} (alpha spent across the planned looks), the bound {good_bound:.4g} "
                               f"still includes no effect ({null_value:g})",
                       "run longer or on a larger cohort (see the power step) and read at the next planned look", **base)
    flags: tuple[str, ...] = ()
    extra = "; no expected range was registered to compare it with"
    if expected_low is not None and expected_high is not None:
        lo, hi = sorted((expected_low, expected_high))
        weaker_end = hi if good_direction == Direction.LOWER else lo
        weaker = estimate > weaker_end if good_direction == Direction.LOWER else estimate < weaker_end
        if weaker:
            return Verdict(ADJUST, f"real but weaker than planned: {estimate:.4g} {interval} is closer to no effect "
                                   f"than the expected range's weaker end {weaker_end:g}",
                           "strengthen the lever (wording, placement) or narrow the cohort, then retest", **base)
        far = far_outside_range(estimate, lo, hi, null_value)
        stronger_end = lo if good_direction == Direction.LOWER else hi
        beyond = estimate < stronger_end if good_direction == Direction.LOWER else estimate > stronger_end
        extra = f", beyond the expected range [{lo:g}, {hi:g}]" if beyond else f", within the expected range [{lo:g}, {hi:g}]"
        if far:
            flags = (f"check before rolling out: {far}; likely reasons: " + "; ".join(FAR_OUTSIDE_REASONS),)
    blocks, follow_ups = _keep_gate(guardrails, keep_blockers)
    improved = f"the primary metric improved: {estimate:.4g}, interval {interval} entirely on the good side{extra}"
    if blocks:
        return Verdict(ADJUST, f"{improved}, but no keep: " + "; ".join(blocks),
                       "resolve what blocks the keep, then review again", **base)
    why = f"{improved} ({at_look}); no guardrail breached or likely harmed, no SRM"
    step = "roll out to the whole cohort and log it"
    if flags:
        step = "check before rolling out (see the flag), then roll out and log it"
    if follow_ups:
        why += "; kept on condition: " + "; ".join(follow_ups)
        step += "; " + "; ".join(f.split(":")[0] for f in follow_ups)
    return Verdict(KEEP, why, step, flags, tuple(follow_ups), **base)
