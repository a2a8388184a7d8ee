"""Decisions: metric statuses from the decision table, and the keep / adjust / stop rule.

The thresholds come from the YAML configuration; this module holds the rule vocabulary (each
rule a small function) and turns numbers into a status with its reason in words.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from playbook.config import Config, DecisionRow
from playbook.metrics import SHOP, MetricDefinition, MetricResults, definitions
from playbook.stats.results import clean_number
from playbook.weeks import IsoWeek

GREEN, AMBER, RED, UNAVAILABLE = "green", "amber", "red", "not available"


def format_value(value: float | None, fmt: str) -> str:
    """A metric value as a person reads it (percent, points, days, currency)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if fmt == "percent":
        return f"{value * 100:.1f} %"
    if fmt == "points":
        return f"{value:.1f} pts"
    if fmt == "days":
        return f"{value:.1f} days"
    if fmt == "currency":
        return f"{value:,.2f}"
    return f"{value:.3g}"


def format_change(delta: float, fmt: str) -> str:
    if fmt == "percent":
        return f"{delta * 100:+.1f} points"
    if fmt == "points":
        return f"{delta:+.1f} points"
    if fmt == "days":
        return f"{delta:+.1f} days"
    return f"{delta:+,.2f}"


@dataclass
class MetricStatus:
    """The week's value of one metric against its trailing baseline, with a status and why."""

    metric: str
    title: str
    week: str | None
    value: float | None
    baseline: float | None
    status: str
    why: str
    zone: str | None = None
    action: str | None = None
    format: str = "number"
    baseline_weeks: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def triggered(self) -> bool:
        return self.status == RED

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("value", "baseline"):
            d[k] = clean_number(d[k])
        return d


@dataclass
class _Context:
    results: MetricResults
    defn: MetricDefinition
    row: DecisionRow
    weekly: pd.DataFrame  # shop-wide mature weekly values, oldest first, up to the week shown

    @property
    def current(self) -> pd.Series:
        return self.weekly.iloc[-1]

    @property
    def baseline(self) -> pd.DataFrame:
        n = self.results.settings.baseline_weeks
        return self.weekly.iloc[-1 - n : -1]

    def fmt(self, v: float | None) -> str:
        return format_value(v, self.defn.format)

    def worse(self, delta: float) -> float:
        """``delta`` signed so that positive means worse."""
        return delta if self.defn.good_direction == "lower" else -delta


def _points(ctx: _Context, points: float) -> float:
    """A threshold in points in the metric's own unit (fractions for percent metrics)."""
    return points / 100.0 if ctx.defn.format == "percent" else points


def rule_bands(ctx: _Context) -> tuple[str, str]:
    p, v = ctx.row.params, ctx.current["value"]
    red, amber = float(p["red_below"]), float(p.get("amber_below", p["red_below"]))
    if v < red:
        return RED, f"{ctx.fmt(v)} is below the red line of {ctx.fmt(red)}"
    if v < amber:
        return AMBER, f"{ctx.fmt(v)} is between {ctx.fmt(red)} and {ctx.fmt(amber)}"
    return GREEN, f"{ctx.fmt(v)} is at or above {ctx.fmt(amber)}"


def _previous(ctx: _Context) -> pd.Series | None:
    return ctx.weekly.iloc[-2] if len(ctx.weekly) >= 2 else None


def rule_week_over_week_rise(ctx: _Context) -> tuple[str, str]:
    prev = _previous(ctx)
    if prev is None:
        return GREEN, "no previous week to compare with"
    p, v = ctx.row.params, ctx.current["value"]
    delta = v - prev["value"]
    text = f"{ctx.fmt(v)} vs {ctx.fmt(prev['value'])} the week before ({format_change(delta, ctx.defn.format)})"
    if delta >= _points(ctx, float(p["red_points"])):
        return RED, f"up {text}: at least {p['red_points']} points in a week"
    if delta >= _points(ctx, float(p.get("amber_points", p["red_points"]))):
        return AMBER, f"up {text}"
    return GREEN, f"{text}"


def rule_down_consecutive_weeks(ctx: _Context) -> tuple[str, str]:
    n = int(ctx.row.params.get("weeks", 2))
    values = ctx.weekly["value"].tolist()
    downs = 0
    for a, b in zip(values[-2::-1], values[::-1]):  # walk back over consecutive pairs
        if b < a:
            downs += 1
        else:
            break
    text = f"{ctx.fmt(values[-1])}, down {downs} week(s) in a row"
    if downs >= n:
        return RED, text
    if downs >= 1:
        return AMBER, text
    return GREEN, f"{ctx.fmt(values[-1])}, not down on the week before"


def _other_format(ctx: _Context, other: str) -> str:
    defn = ctx.results.definitions.get(other) or definitions(ctx.results.settings).get(other)
    return defn.format if defn else "number"


def rule_flat_while_other_rises(ctx: _Context) -> tuple[str, str]:
    other = str(ctx.row.params["other_metric"])
    points = float(ctx.row.params.get("flat_within_points", 0.5))
    other_fmt = _other_format(ctx, other)
    # "flat within 0.5 points": in each metric's own unit (fractions for a percent metric)
    flat = _points(ctx, points)
    flat_other = points / 100.0 if other_fmt == "percent" else points
    o = ctx.results.series(other)
    weeks = ctx.weekly["week_start"].iloc[-2:].tolist()
    o = o[o["week_start"].isin(weeks)]
    if len(ctx.weekly) < 2 or len(o) < 2:
        return GREEN, "fewer than two comparable weeks"
    d_self = ctx.current["value"] - ctx.weekly["value"].iloc[-2]
    d_other = o["value"].iloc[-1] - o["value"].iloc[-2]
    text = (
        f"{ctx.defn.title.lower()} {format_change(d_self, ctx.defn.format)} while {other} "
        f"{format_change(d_other, other_fmt)} week over week ({ctx.current['week']})"
    )
    if d_other > flat_other and abs(d_self) <= flat:
        return RED, f"flat: {text}"
    if d_other > flat_other and d_self < -flat:
        return AMBER, f"falling: {text}"
    return GREEN, text


def rule_slice_spike_vs_own_baseline(ctx: _Context) -> tuple[str, str]:
    p = ctx.row.params
    slice_col, z_red, min_gap = str(p.get("slice", "category")), float(p.get("z", 3.0)), _points(ctx, float(p.get("min_points", 1.0)))
    f = ctx.results.frame
    f = f[(f.metric == ctx.defn.name) & (f.slice == slice_col) & f.mature]
    week = ctx.current["week_start"]
    spikes = []
    for value, g in f.groupby("slice_value"):
        g = g.sort_values("week_start")
        now = g[g.week_start == week]
        base = g[g.week_start < week].tail(ctx.results.settings.baseline_weeks)
        if now.empty or len(base) < 3:
            continue
        v, mu, sd = float(now["value"].iloc[0]), float(base["value"].mean()), float(base["value"].std(ddof=1))
        gap = ctx.worse(v - mu)
        z = gap / sd if sd > 0 else (math.inf if gap > 0 else 0.0)
        if gap >= min_gap and z >= z_red:
            spikes.append((gap, f"{value} {ctx.fmt(v)} vs its baseline {ctx.fmt(mu)} (z = {z:.1f})"))
    if spikes:
        spikes.sort(reverse=True)
        return RED, f"spike in {len(spikes)} {slice_col}(s): " + "; ".join(t for _, t in spikes)
    return GREEN, f"no {slice_col} above its own {ctx.results.settings.baseline_weeks}-week baseline by z >= {z_red:g}"


def rule_baseline_deviation(ctx: _Context) -> tuple[str, str]:
    p, v = ctx.row.params, ctx.current["value"]
    base = ctx.baseline["value"]
    if len(base) < 3:
        return GREEN, f"{ctx.fmt(v)}; fewer than 3 baseline weeks to compare with"
    mu, sd = float(base.mean()), float(base.std(ddof=1))
    gap = ctx.worse(v - mu)
    z = gap / sd if sd > 0 else (math.inf if gap > 0 else 0.0)
    text = f"{ctx.fmt(v)} vs baseline {ctx.fmt(mu)} ({format_change(v - mu, ctx.defn.format)})"
    if z >= float(p.get("red_z", 3.0)):
        return RED, f"{text}: {z:.1f} standard deviations worse than its baseline"
    if z >= float(p.get("amber_z", 2.0)):
        return AMBER, f"{text}: {z:.1f} standard deviations worse than its baseline"
    return GREEN, f"{text}: within its usual range"


RULES: dict[str, Callable[[_Context], tuple[str, str]]] = {
    "bands": rule_bands,
    "week_over_week_rise": rule_week_over_week_rise,
    "down_consecutive_weeks": rule_down_consecutive_weeks,
    "flat_while_other_rises": rule_flat_while_other_rises,
    "slice_spike_vs_own_baseline": rule_slice_spike_vs_own_baseline,
    "baseline_deviation": rule_baseline_deviation,
}


#: The parameters of each rule: (required, optional). ``load_config`` refuses a decision row that
#: lacks a required parameter or names one its rule does not read (a typo must not fall back to a default).
RULE_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bands": (("red_below",), ("amber_below",)),
    "week_over_week_rise": (("red_points",), ("amber_points",)),
    "down_consecutive_weeks": ((), ("weeks",)),
    "flat_while_other_rises": (("other_metric",), ("flat_within_points",)),
    "slice_spike_vs_own_baseline": ((), ("slice", "z", "min_points")),
    "baseline_deviation": ((), ("amber_z", "red_z")),
}

#: What each parameter holds: number, whole (a whole number >= 1), metric (a metric name) or slice (a slice column).
PARAM_KINDS: dict[str, str] = {
    "red_below": "number", "amber_below": "number", "red_points": "number", "amber_points": "number",
    "weeks": "whole", "other_metric": "metric", "flat_within_points": "number", "slice": "slice",
    "z": "number", "min_points": "number", "amber_z": "number", "red_z": "number",
}


def _status_of(results: MetricResults, defn: MetricDefinition, config: Config) -> MetricStatus:
    title = defn.title
    if defn.name in results.unavailable:
        return MetricStatus(defn.name, title, None, None, None, UNAVAILABLE, results.unavailable[defn.name], format=defn.format)
    row = config.row_for(defn.name) or DecisionRow(zone="", metric=defn.name, rule=config.default_rule.rule,
                                                  action="", params=config.default_rule.params)
    zone, action = row.zone or None, row.action or None
    series = results.series(defn.name)
    series = series[series["value"].notna()]
    weekly = series[series["mature"]]
    if series.empty:
        return MetricStatus(defn.name, title, None, None, None, UNAVAILABLE,
                            f"no data up to week {results.week}", zone, action, defn.format)
    if weekly.empty:  # rows, but none of them has had the follow-up the metric waits for
        return MetricStatus(defn.name, title, None, None, None, UNAVAILABLE,
                            f"no week with enough follow-up yet (last data: week {series['week'].iloc[-1]})",
                            zone, action, defn.format)
    latest = weekly["week"].iloc[-1]
    if defn.maturity == "none" and latest != str(results.week):
        # an immediate metric has no reason to lag: an older value is stale, not this week's status
        return MetricStatus(defn.name, title, None, None, None, UNAVAILABLE,
                            f"no data for week {results.week} (last data: {latest})", zone, action, defn.format)
    ctx = _Context(results, defn, row, weekly.reset_index(drop=True))
    status, why = RULES[row.rule](ctx)
    cur = ctx.current
    if defn.maturity != "none" and cur["week"] != str(results.week):
        why = f"{why} (week {cur['week']}: the latest with full follow-up)"
    base = ctx.baseline["value"]
    return MetricStatus(
        defn.name, title, cur["week"], float(cur["value"]), float(base.mean()) if len(base) else None,
        status, why, zone, action, defn.format, len(base),
        {"numerator": clean_number(float(cur["numerator"])), "denominator": clean_number(float(cur["denominator"]))},
    )


def metric_statuses(results: MetricResults, config: Config) -> list[MetricStatus]:
    """A status (green / amber / red / not available) with its reason for every metric of the dictionary."""
    out = []
    for name, defn in results.definitions.items():
        if name == "reason_mix":
            out.append(reason_mix_status(results))
        else:
            out.append(_status_of(results, defn, config))
    return out


def reason_mix_status(results: MetricResults, amber_points: float = 5.0) -> MetricStatus:
    """Shop-wide reason mix of the latest mature week against the baseline mix (shares)."""
    mix = results.reason_mix
    mix = mix[(mix.slice == SHOP) & mix.mature]
    if mix.empty:
        return MetricStatus("reason_mix", "Reason mix", None, None, None, UNAVAILABLE, "no mature delivery week yet")
    weeks = sorted(mix.week_start.unique())
    week = weeks[-1]
    base_weeks = weeks[-1 - results.settings.baseline_weeks : -1]
    now = mix[mix.week_start == week].set_index("reason_code")["share"]
    label = str(IsoWeek.of(week))
    if not base_weeks:
        return MetricStatus("reason_mix", "Reason mix", label, {k: float(v) for k, v in now.items()}, None, GREEN,
                            "no mature baseline week to compare the mix with yet", format="percent")
    base = (mix[mix.week_start.isin(base_weeks)].groupby("reason_code")["units"].sum())
    base = base / base.sum() if base.sum() > 0 else base
    gaps = (now.reindex(base.index.union(now.index), fill_value=0) - base.reindex(now.index.union(base.index), fill_value=0))
    top = gaps.idxmax() if len(gaps) else None
    status = AMBER if top is not None and gaps[top] * 100 >= amber_points else GREEN
    why = (f"{top} share {now.get(top, 0) * 100:.1f} % vs {base.get(top, 0) * 100:.1f} % in the baseline"
           if top is not None else "no returns")
    return MetricStatus(
        "reason_mix", "Reason mix", label, {k: float(v) for k, v in now.items()},
        {k: float(v) for k, v in base.items()}, status, why, format="percent", baseline_weeks=len(base_weeks),
    )


def triggers(statuses: list[MetricStatus]) -> list[dict[str, str]]:
    """The red triggers of the week, each with its zone and the decision table's action."""
    return [
        {"zone": s.zone, "metric": s.metric, "action": s.action, "why": s.why}
        for s in statuses
        if s.status == RED and s.zone
    ]


# --- keep / adjust / stop / provisional ----------------------------------------------------


class Decision(str, Enum):
    """The verdict words of the J+7 review: the one home of this vocabulary (the journal uses it)."""

    KEEP = "keep"
    ADJUST = "adjust"
    STOP = "stop"
    PROVISIONAL = "provisional"  # the pre-registered window cannot be read yet: no keep, a date to read it


KEEP, ADJUST, STOP, PROVISIONAL = (d.value for d in Decision)
DECISIONS: tuple[str, ...] = tuple(d.value for d in Decision)


class GuardrailState(str, Enum):
    """What a guardrail's interval says about harm beyond its tolerance (non-inferiority reading)."""

    SAFE = "safe"                      # the one-sided bound rules out harm beyond the tolerance
    NOT_SHOWN_SAFE = "not_shown_safe"  # the bound reaches past the tolerance, the estimate does not
    HARM_LIKELY = "harm_likely"        # the estimate is past the tolerance
    BREACHED = "breached"              # the whole interval is past the tolerance
    NOT_MEASURED = "not_measured"      # no interval (the reason goes with it)


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
                    bad_direction: str, null_value: float = 0.0, confidence: float = 0.95,
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
    sign = 1.0 if bad_direction == "higher" else -1.0
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

    decision: str
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


def _side(ci_low: float | None, ci_high: float | None, null: float, good: str) -> str:
    """Where the interval lies relative to no effect: 'good', 'bad' or 'straddles'."""
    if ci_low is None or ci_high is None:
        return "none"
    if ci_high < null:
        return "good" if good == "lower" else "bad"
    if ci_low > null:
        return "good" if good == "higher" else "bad"
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
    good_direction: str,
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
    from playbook.stats.sequential import keep_critical_value

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
        return Verdict(STOP, f"the primary metric moved the wrong way: {estimate:.4g}, interval {interval} entirely on the bad side of {null_value:g}",
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
    good_bound = one_sided_bound(estimate, ci_low, ci_high, side="upper" if good_direction == "lower" else "lower",
                                 confidence=confidence, alpha=float(stats.norm.sf(c)))
    shown = good_bound < null_value if good_direction == "lower" else good_bound > null_value
    if not shown:
        return Verdict(ADJUST, f"inconclusive at {at_look}: estimate {estimate:.4g}, interval {interval}; a keep at this "
                               f"look needs z >= {c:.2f} (alpha spent across the planned looks), the bound {good_bound:.4g} "
                               f"still includes no effect ({null_value:g})",
                       "run longer or on a larger cohort (see the power step) and read at the next planned look", **base)
    flags: tuple[str, ...] = ()
    extra = "; no expected range was registered to compare it with"
    if expected_low is not None and expected_high is not None:
        lo, hi = sorted((expected_low, expected_high))
        weaker_end = hi if good_direction == "lower" else lo
        weaker = estimate > weaker_end if good_direction == "lower" else estimate < weaker_end
        if weaker:
            return Verdict(ADJUST, f"real but weaker than planned: {estimate:.4g} {interval} is closer to no effect than the expected range's weaker end {weaker_end:g}",
                           "strengthen the lever (wording, placement) or narrow the cohort, then retest", **base)
        far = far_outside_range(estimate, lo, hi, null_value)
        stronger_end = lo if good_direction == "lower" else hi
        beyond = estimate < stronger_end if good_direction == "lower" else estimate > stronger_end
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
