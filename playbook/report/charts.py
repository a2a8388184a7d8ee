"""Charts for the notebooks (seaborn / matplotlib). They draw; they compute nothing new.

Text from the data (categories, experiment ids, slice labels) goes through :func:`plain` on its way to a
label: matplotlib reads a text with two ``$`` as TeX (mathtext), so a category named ``$\\frac{x$`` would
fail the notebook and ``$5 off$`` would be drawn in italics.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from playbook.core.settings import Config
from playbook.metrics.dictionary import MetricResults
from playbook.stats.standardized import conditional_limits

_PERCENT_SCALE = {"percent": 100.0}


def plain(text: object) -> str:
    """Data text as a literal matplotlib label: every ``$`` escaped, so nothing is parsed as mathtext."""
    return str(text).replace("$", r"\$")


def _scale(fmt: str) -> float:
    return _PERCENT_SCALE.get(fmt, 1.0)


def metric_trends(results: MetricResults, config: Config, metrics: list[str] | None = None, cols: int = 3):
    """Weekly shop-wide trend of each metric, with its trailing-baseline band and decision thresholds.

    Weeks not mature yet (returns still arriving) are drawn hollow and labelled, never as a low value.
    """
    names = [m for m in (metrics or results.definitions)
             if not results.definitions[m].shares and m not in results.unavailable]
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        defn = results.definitions[name]
        s = results.series(name)
        k = _scale(defn.format)
        mature, young = s[s.mature], s[~s.mature]
        ax.plot(mature["week_start"], mature["value"] * k, marker="o", ms=3, color="#2b6cb0")
        if not young.empty:
            ax.plot(young["week_start"], young["value"] * k, marker="o", ms=4, ls="none", mfc="white", color="#a0aec0",
                    label="not mature yet")
        base = mature.tail(results.settings.baseline_weeks + 1).head(results.settings.baseline_weeks)
        if len(base) >= 3:
            mu, sd = base["value"].mean() * k, base["value"].std(ddof=1) * k
            ax.axhspan(mu - 2 * sd, mu + 2 * sd, color="#bee3f8", alpha=0.5, lw=0, label="baseline ±2 sd")
        row = config.row_for(name)
        if row and row.rule == "bands":
            ax.axhline(float(row.params["red_below"]) * k, color="#c53030", lw=1, ls="--", label="red below")
            if "amber_below" in row.params:
                ax.axhline(float(row.params["amber_below"]) * k, color="#b7791f", lw=1, ls=":", label="amber below")
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylabel({"percent": "%", "points": "points", "days": "days", "currency": "money"}.get(defn.format, ""), fontsize=8)
        if not young.empty or row:
            ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def reason_mix_by(results: MetricResults, slice_col: str = "category", weeks: int = 8):
    """Share of returned units per reason code for each value of ``slice_col`` over the last mature weeks."""
    mix = results.reason_mix
    mix = mix[(mix.slice == slice_col) & mix.mature]
    last = sorted(mix.week_start.unique())[-weeks:]
    mix = mix[mix.week_start.isin(last)]
    table = mix.pivot_table(index="slice_value", columns="reason_code", values="units", aggfunc="sum", fill_value=0)
    shares = table.div(table.sum(axis=1), axis=0) * 100
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(shares), 3) + 1.2))
    left = np.zeros(len(shares))
    palette = sns.color_palette("tab10", n_colors=len(shares.columns))
    labels = [plain(v) for v in shares.index]
    for colour, reason in zip(palette, shares.columns):
        ax.barh(labels, shares[reason], left=left, color=colour, label=plain(reason))
        left += shares[reason].to_numpy()
    ax.set_xlabel(f"% of returned units (mature delivery weeks {len(last)})")
    ax.legend(fontsize=7, ncol=3, bbox_to_anchor=(0, 1.02, 1, 0.2), loc="lower left")
    fig.tight_layout()
    return fig


def _funnel_finding(analysis) -> str:
    w = analysis.weak
    if w is None:
        return "No slice rose beyond chance that a cohort lever could fix"
    ratio = w.return_rate / w.expected_rate if w.expected_rate else float("nan")
    return f"{w.label}: {ratio:.1f} times its own baseline, the largest excess cost that nothing else explains"


def funnel_plot(analysis, label_top: int = 4):
    """Observed / expected returns of every slice x reason against its expected count (log scale).

    Each point is a slice compared with its own baseline; the curves are where the exact conditional
    test (one-sided, no clustering) crosses p = 2.5 % and 0.1 % for a typical window/baseline ratio
    (the flags use each slice's own limit, widened by its customer design effect). Small slices sit on
    the left, where the funnel is wide: a high ratio there is noise.
    """

    t = analysis.table[analysis.table.expected_events.astype(float) > 0]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    if t.empty:
        ax.text(0.5, 0.5, plain(analysis.note or "no slice to plot"), ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    other = t[~t.flagged]
    ax.scatter(other.expected_events, other.ratio, s=14, color="#a0aec0", label="within its usual range")
    flagged = t[t.flagged]
    ax.scatter(flagged.expected_events, flagged.ratio, s=40, color="#c53030",
               label="flagged (q < 5 %, customers counted)")
    e = np.geomspace(max(t.expected_events.min(), 0.1), t.expected_events.max() * 1.5, 200)
    ratio = float(np.nanmedian(t.units / t.baseline_units.where(t.baseline_units > 0)))
    share = ratio / (1 + ratio)  # window share of the units: O | O + B ~ Binomial(O + B, share)
    for alpha, style, name in ((0.025, "--", "p = 2.5 %"), (0.001, ":", "p = 0.1 %")):
        low, up = conditional_limits(e / share, np.full(e.size, share), np.ones(e.size), alpha)
        ax.plot(e, up / e, color="#2d3748", ls=style, lw=1, label=f"exact limit, {name}")
        ax.plot(e, low / e, color="#2d3748", ls=style, lw=1)
    ax.axhline(1, color="#2d3748", lw=0.8)
    for _, r in t.sort_values("excess_cost", ascending=False).head(label_top).iterrows():
        ax.annotate(plain(f"{r.slice_value} x {r.reason_code}"), (r.expected_events, r.ratio), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_title(plain(_funnel_finding(analysis)), fontsize=10)
    ax.set_xlabel("returns expected from the slice's own baseline (window)")
    ax.set_ylabel("observed / expected")
    ax.set_ylim(0, max(3.0, float(np.nanmax(t.ratio.clip(upper=6))) * 1.05))
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def cohort_trend_chart(trend: pd.DataFrame, title: str):
    """Weekly rate of the weak cohort; weeks still collecting returns drawn hollow."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    m, y = trend[trend.mature], trend[~trend.mature]
    ax.plot(m.week_start, m.rate * 100, marker="o", ms=3, color="#c53030")
    ax.plot(y.week_start, y.rate * 100, marker="o", ms=4, ls="none", mfc="white", color="#a0aec0", label="not mature yet")
    ax.set_ylabel("% of units")
    ax.set_title(plain(title), fontsize=10)
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    return fig


def forest_plot(comparisons):
    """Primary and guardrail metrics of each experiment with their intervals.

    The pre-registered expected range is drawn as a green band beside the primary metric; a
    guardrail's tolerance as a red tick on its harmful side. Each row has its own scale (metrics
    have different units), so the rows are separate panels.
    """
    rows = [(c, m) for c in comparisons for m in [c.primary, *c.guardrails]]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 0.9 * len(rows) + 0.6), squeeze=False)
    for ax, (c, m) in zip(axes[:, 0], rows):
        e = m.estimate
        ax.axvline(e.null_value, color="#2d3748", lw=0.8)
        if m.role == "primary":
            ax.axvspan(min(m.expected_low, m.expected_high), max(m.expected_low, m.expected_high), color="#c6f6d5",
                       label="expected range")
        elif m.tolerance:
            harm = e.null_value + m.good_direction.opposite.signed(m.tolerance)
            ax.axvline(harm, color="#c53030", ls="--", lw=1, label="tolerance")
        if e.ok:
            colour = "#c53030" if m.breached else "#2b6cb0"
            ax.errorbar([e.estimate], [0], xerr=[[e.estimate - e.ci_low], [e.ci_high - e.estimate]], fmt="o",
                        color=colour, capsize=4)
        else:
            ax.text(0.5, 0.5, plain(f"no interval: {e.error}"), transform=ax.transAxes, ha="center", va="center", fontsize=7)
        ax.set_yticks([])
        ax.set_ylabel(plain(f"{c.experiment_id}\n{m.role}: {m.metric}"), rotation=0, ha="right", va="center", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def kaplan_meier_chart(comparison):
    """Share of units returned by day since delivery, per arm (censored at the end of the week)."""
    km = comparison.views.get("kaplan_meier")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if km is None or km.curves.empty:
        ax.text(0.5, 0.5, "no return curve for this experiment", ha="center", transform=ax.transAxes)
        return fig
    for arm, g in km.curves.groupby("arm"):
        ax.step(g["days"], g["return_share"] * 100, where="post", label=plain(arm))
        ax.fill_between(g["days"], g["ci_low"] * 100, g["ci_high"] * 100, step="post", alpha=0.15)
    if comparison.follow_up_days:
        ax.axvline(comparison.follow_up_days, color="#718096", ls=":", lw=1, label=f"k = {comparison.follow_up_days:g} days")
    ax.set_xlabel("days since delivery")
    ax.set_ylabel("% of units returned")
    ax.set_title(plain(f"{comparison.experiment_id}: returns by day since delivery (Kaplan-Meier)"), fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def event_study_chart(comparison):
    """Treated-minus-control difference per week relative to the start, with intervals."""
    es = comparison.views.get("event_study")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if es is None or not isinstance(es, pd.DataFrame) or es.empty:
        ax.text(0.5, 0.5, "no event study for this experiment", ha="center", transform=ax.transAxes)
        return fig
    colours = es["period"].map({"pre": "#718096", "reference": "#2d3748", "post": "#2b6cb0"}).fillna("#2b6cb0")
    ax.axhline(0, color="#2d3748", lw=0.8)
    ax.axvline(-0.5, color="#a0aec0", ls=":", lw=1)
    for (_, r), colour in zip(es.iterrows(), colours):
        if pd.notna(r.get("ci_low")) and pd.notna(r.get("ci_high")):
            ax.plot([r.relative_week, r.relative_week], [r.ci_low, r.ci_high], color=colour, lw=1.5)
        ax.plot(r.relative_week, r.estimate, "o", color=colour, ms=4)
    ax.set_xlabel("weeks since the change (pre-period in grey: should hover around 0)")
    ax.set_ylabel(f"{comparison.primary.metric}\ncohort - control")
    ax.set_title(plain(f"{comparison.experiment_id}: event study"), fontsize=10)
    fig.tight_layout()
    return fig
