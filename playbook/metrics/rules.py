"""Metric statuses from the decision table: each rule a small function, a status with its reason in words.

The thresholds come from the YAML configuration; this module holds the rule vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import pandas as pd

from playbook.core.settings import Config, DecisionRow
from playbook.core.vocabulary import AMBER, GREEN, RED, UNAVAILABLE, Direction, Status
from playbook.core.weeks import IsoWeek
from playbook.metrics.dictionary import SHOP, MetricResults, definitions
from playbook.metrics.display import change_text, plain, value_text
from playbook.metrics.metric import Metric
from playbook.stats.results import clean_number


@dataclass
class MetricStatus:
    """The week's value of one metric against its trailing baseline, with a status and why."""

    metric: str
    title: str
    week: str | None
    value: float | None
    baseline: float | None
    status: Status
    why: str
    zone: str | None = None
    action: str | None = None
    format: str = "number"
    baseline_weeks: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: who acts on it (the decision table row's owner), None when the table names nobody
    owner: str | None = None

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
    defn: Metric
    row: DecisionRow
    weekly: pd.DataFrame  # shop-wide mature weekly values, oldest first, up to the week shown
    currency: str = ""

    @property
    def current(self) -> pd.Series:
        return self.weekly.iloc[-1]

    @property
    def baseline(self) -> pd.DataFrame:
        n = self.results.settings.baseline_weeks
        return self.weekly.iloc[-1 - n : -1]

    def fmt(self, v: float | None, *beside: float | None) -> str:
        """``v`` in the metric's format; amounts of one sentence (``beside``) share their decimals."""
        return value_text(v, self.defn.format, self.currency, beside)

    def change(self, delta: float, fmt: str | None = None, beside: tuple[float | None, ...] = ()) -> str:
        return change_text(delta, fmt or self.defn.format, self.currency, beside)

    def versus(self, v: float, other: float, before: str = "", after: str = "") -> str:
        """"EUR 1,449 vs baseline EUR 645 (+EUR 805)": both values and their difference with one number of
        decimals; ``before`` and ``after`` name the other value ("baseline ", " the week before")."""
        change = self.change(v - other, beside=(v, other))
        return f"{self.fmt(v, other)} vs {before}{self.fmt(other, v)}{after} ({change})"

    def worse(self, delta: float) -> float:
        """``delta`` signed so that positive means worse."""
        return -self.defn.good_direction.signed(delta)


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
    text = ctx.versus(v, prev["value"], after=" the week before")
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


def _other(ctx: _Context, other: str) -> Metric | None:
    return ctx.results.definitions.get(other) or definitions(ctx.results.settings).get(other)


def rule_flat_while_other_rises(ctx: _Context) -> tuple[str, str]:
    other = str(ctx.row.params["other_metric"])
    points = float(ctx.row.params.get("flat_within_points", 0.5))
    other_defn = _other(ctx, other)
    other_fmt = other_defn.format if other_defn else "number"
    other_title = other_defn.title.lower() if other_defn else other
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
        f"{ctx.defn.title.lower()} {ctx.change(d_self)} while {other_title} "
        f"{ctx.change(d_other, other_fmt)} week over week ({ctx.current['week']})"
    )
    if d_other > flat_other and abs(d_self) <= flat:
        return RED, f"flat: {text}"
    if d_other > flat_other and d_self < -flat:
        return AMBER, f"falling: {text}"
    return GREEN, text


def rule_slice_spike_vs_own_baseline(ctx: _Context) -> tuple[str, str]:
    p = ctx.row.params
    slice_col, z_red = str(p.get("slice", "category")), float(p.get("z", 3.0))
    min_gap = _points(ctx, float(p.get("min_points", 1.0)))
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
            spikes.append((gap, f"{value} {ctx.fmt(v, mu)} vs its baseline {ctx.fmt(mu, v)} (z = {z:.1f})"))
    if spikes:
        spikes.sort(reverse=True)
        return RED, f"spike in {len(spikes)} {slice_col}(s): " + "; ".join(t for _, t in spikes)
    return GREEN, f"no {slice_col} above its own {ctx.results.settings.baseline_weeks}-week baseline by z >= {z_red:g}"


def _collapse_to_zero(ctx: _Context, base: pd.Series) -> tuple[str, str] | None:
    """A week whose value fell to 0 on its worse side while its denominator was there (sessions but no
    order): a value to judge, never "nothing to compare with". Red when the baseline weeks were above
    it (a fall to nothing is beyond any spread the weeks could show), amber without any baseline week;
    None when the value is not such a zero."""
    v, den = ctx.current["value"], ctx.current.get("denominator")
    if v != 0 or not (den is not None and den == den and den > 0):
        return None
    what = f"{ctx.fmt(v)}: no {ctx.defn.numerator} over {den:,.0f} {ctx.defn.denominator}"
    if len(base):
        mu = float(base.mean())
        if ctx.worse(v - mu) > 0:
            return RED, (f"{what}, against {ctx.fmt(mu)} in its {len(base)} baseline week(s): collapsed to zero "
                         "(too few weeks to measure its spread, and a fall to nothing is beyond any)")
        return None
    if ctx.defn.good_direction == Direction.HIGHER:  # zero is as bad as it gets
        return AMBER, f"{what}, and no earlier week to compare with: check that it is real"
    return None


def rule_baseline_deviation(ctx: _Context) -> tuple[str, str]:
    p, v = ctx.row.params, ctx.current["value"]
    base = ctx.baseline["value"]
    if len(base) < 3:
        return _collapse_to_zero(ctx, base) or (GREEN, f"{ctx.fmt(v)}; fewer than 3 baseline weeks to compare with")
    mu, sd = float(base.mean()), float(base.std(ddof=1))
    gap = ctx.worse(v - mu)
    z = gap / sd if sd > 0 else (math.inf if gap > 0 else 0.0)
    text = ctx.versus(v, mu, before="baseline ")
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


def _status_of(results: MetricResults, defn: Metric, config: Config) -> MetricStatus:
    title = defn.title
    if defn.name in results.unavailable:
        return MetricStatus(defn.name, title, None, None, None, UNAVAILABLE, results.unavailable[defn.name], format=defn.format)
    row = config.row_for(defn.name) or DecisionRow(zone="", metric=defn.name, rule=config.default_rule.rule,
                                                  action="", params=config.default_rule.params)
    zone, action = row.zone or None, row.action or None
    every = results.series(defn.name)
    series = every[every["value"].notna()]
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
        this_week = every[every["week"] == str(results.week)]
        why = (f"not available: no {defn.denominator} in week {results.week}, and a rate over zero is no number "
               f"(last value: {latest})" if len(this_week) and (this_week["denominator"] == 0).all()
               else f"no data for week {results.week} (last data: {latest})")
        return MetricStatus(defn.name, title, None, None, None, UNAVAILABLE, why, zone, action, defn.format)
    ctx = _Context(results, defn, row, weekly.reset_index(drop=True), config.currency)
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
        status = reason_mix_status(results) if defn.shares else _status_of(results, defn, config)
        row = config.row_for(name)
        out.append(replace(status, owner=row.owner or None) if row is not None else status)
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
    why = (f'"{plain(top)}" share {now.get(top, 0) * 100:.1f} % vs {base.get(top, 0) * 100:.1f} % in the baseline'
           if top is not None else "no returns")
    return MetricStatus(
        "reason_mix", "Reason mix", label, {k: float(v) for k, v in now.items()},
        {k: float(v) for k, v in base.items()}, status, why, format="percent", baseline_weeks=len(base_weeks),
    )


def triggers(statuses: list[MetricStatus]) -> list[dict[str, str]]:
    """The red triggers of the week, each with its zone and the decision table's action."""
    return [
        {"zone": s.zone, "metric": s.metric, "action": s.action, "why": s.why, "owner": s.owner}
        for s in statuses
        if s.status == RED and s.zone
    ]
