"""Charts for the notebooks (seaborn / matplotlib). They draw; they compute nothing new.

Every chart states its finding in its title (computed from the data it draws), names metrics by their
dictionary title (never their id), puts units on its axes (percentages as %, money with the config's
currency) and uses one theme with seaborn's colour-blind-safe ``colorblind`` palette. A status is
never told by colour alone: red, amber and green also differ by marker and are written in words.

Text from the data (categories, reasons, experiment ids, slice labels) goes through :func:`plain` on
its way to a label: matplotlib reads a text with two ``$`` as TeX (mathtext), so a category named
``$\\frac{x$`` would fail the notebook and ``$5 off$`` would be drawn in italics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

from playbook.core.formats import date_text, money_text
from playbook.core.settings import Config, DecisionRow
from playbook.core.vocabulary import (
    ADJUST,
    AMBER,
    CONTINUE,
    GREEN,
    KEEP,
    PROVISIONAL,
    RED,
    STOP,
    Direction,
    GuardrailState,
    Status,
)
from playbook.metrics.dictionary import MetricResults, metric_named
from playbook.metrics.display import value_text
from playbook.metrics.metric import Metric
from playbook.metrics.rules import MetricStatus, metric_statuses, reason_mix_status
from playbook.report.story import cohort_words, parse_cohort
from playbook.stats.standardized import conditional_limits

#: seaborn's colour-blind-safe palette (Okabe-Ito-like), the only colours the charts use
PALETTE_NAME = "colorblind"
PALETTE = sns.color_palette(PALETTE_NAME)
BLUE, ORANGE, TEAL, VERMILLION, PINK, BROWN, LILAC, GREY, YELLOW, SKY = PALETTE.as_hex()
INK = "#222222"
STATUS_STYLE = {  # colour, marker and word: a status reads without colour
    RED: (VERMILLION, "X", "RED"),
    AMBER: (ORANGE, "D", "amber"),
    GREEN: (TEAL, "o", "green"),
}
_UNIT_WORDS = {"points": "points", "days": "days"}


def apply_theme() -> None:
    """The one theme of every chart: seaborn's whitegrid with the colour-blind palette."""
    sns.set_theme(style="whitegrid", palette=PALETTE_NAME, font_scale=0.9,
                  rc={"axes.titlesize": 10, "axes.titleweight": "bold", "legend.fontsize": 8,
                      "figure.titlesize": 12, "figure.titleweight": "bold", "axes.edgecolor": "#999999"})


apply_theme()


def plain(text: object) -> str:
    """Data text as a literal matplotlib label: every ``$`` escaped, so nothing is parsed as mathtext."""
    return str(text).replace("$", r"\$")


def words(code: object) -> str:
    """A code from the data (``size_too_small``) as words for a label (``size too small``), escaped."""
    return plain(str(code).replace("_", " "))


def _scale(fmt: str) -> float:
    """Factor from a metric's stored value to its displayed one (fractions to %)."""
    return 100.0 if fmt == "percent" else 1.0


def _unit_label(defn: Metric, currency: str) -> str:
    if defn.format == "percent":
        what = defn.denominator.split("(")[0].strip()
        return f"% of {what}" if len(what) <= 24 else "%"
    if defn.format == "currency":
        return currency
    return _UNIT_WORDS.get(defn.format, "")


def _change_unit(fmt: str, currency: str) -> str:
    """The unit of a change of a metric: a rate moves in percentage points."""
    return {"percent": "points", "points": "points", "days": "days", "currency": currency}.get(fmt, "")


def _wrap(text: str, width: int = 110) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _percent_axis(axis) -> None:
    axis.set_major_formatter(PercentFormatter(xmax=100, decimals=None))


def _money_axis(axis, currency: str) -> None:
    """Amounts as every page writes them (``core.formats.money_text``): the currency, and its minor units only
    on an axis of small amounts (its ends decide, so every tick of one axis has the same decimals)."""
    def label(v: float, _pos) -> str:
        return money_text(v, currency, beside=tuple(axis.get_view_interval()))

    axis.set_major_formatter(FuncFormatter(label))


# --- step 1: trends -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Threshold:
    """A line of the decision table on a trend panel, in the panel's displayed unit.

    ``since``: the x position it starts from (a rule relative to the week before starts there);
    None: across the whole panel.
    """

    y: float
    level: Status
    label: str
    since: object = None


def _trend_values(results: MetricResults, name: str) -> pd.DataFrame:
    s = results.series(name)
    return s[s["value"].notna()]


def _baseline(mature: pd.DataFrame, n: int) -> pd.Series:
    """The rule's baseline: the ``n`` mature weeks before the latest mature week (rules._Context)."""
    return mature["value"].iloc[-1 - n: -1]


def thresholds(row: DecisionRow | None, defn: Metric, mature: pd.DataFrame, baseline_weeks: int) -> list[Threshold]:
    """The decision-table lines a trend panel can draw for ``row`` (empty when the rule has no level).

    In the displayed unit (% for a rate); a rule in points relative to the week before is drawn from
    that week; ``baseline_deviation`` at its z lines on the bad side of the baseline mean.
    """
    if row is None or mature.empty:
        return []
    k, p = _scale(defn.format), row.params
    if row.rule == "bands":
        out = [Threshold(float(p["red_below"]) * k, RED, f"red below {value_text(float(p['red_below']), defn.format)}")]
        if "amber_below" in p:
            out.append(Threshold(float(p["amber_below"]) * k, AMBER,
                                 f"amber below {value_text(float(p['amber_below']), defn.format)}"))
        return out
    if row.rule == "week_over_week_rise" and len(mature) >= 2:
        prev = mature.iloc[-2]
        out = [Threshold(float(prev["value"]) * k + float(p["red_points"]), RED,
                         f"red: +{float(p['red_points']):g} points on the week before", prev["week_start"])]
        if "amber_points" in p:
            out.append(Threshold(float(prev["value"]) * k + float(p["amber_points"]), AMBER,
                                 f"amber: +{float(p['amber_points']):g} points", prev["week_start"]))
        return out
    if row.rule == "baseline_deviation":
        base = _baseline(mature, baseline_weeks)
        if len(base) < 3:
            return []
        mu, sd = float(base.mean()) * k, float(base.std(ddof=1)) * k
        sign = 1.0 if defn.good_direction is Direction.LOWER else -1.0  # the bad side
        out = []
        for level, key, default in ((RED, "red_z", 3.0), (AMBER, "amber_z", 2.0)):
            z = float(p.get(key, default))
            y = mu + sign * z * sd
            if defn.format == "percent" and not 0.0 <= y <= 100.0:
                continue  # a rate cannot cross a line outside 0-100 %
            out.append(Threshold(y, level, f"{level}: {z:g} sd {'above' if sign > 0 else 'below'} usual"))
        return out
    return []


def rule_words(row: DecisionRow | None) -> str | None:
    """A rule without a level to draw, in words for its panel (None when it has a level)."""
    if row is None:
        return None
    p = row.params
    if row.rule == "down_consecutive_weeks":
        return f"red: down {int(p.get('weeks', 2))} weeks in a row"
    if row.rule == "flat_while_other_rises":
        return f"red: flat (within {float(p.get('flat_within_points', 0.5)):g} points) while {words(p['other_metric'])} rises"
    if row.rule == "slice_spike_vs_own_baseline":
        return (f"red: a {words(p.get('slice', 'category'))} {float(p.get('z', 3.0)):g} sd above its own baseline"
                f" (and {float(p.get('min_points', 1.0)):g} points)")
    return None


def trends_finding(statuses: list[MetricStatus]) -> str:
    """The trend grid's title: how many metrics are red this week, named."""
    rated = [s for s in statuses if s.status in (RED, AMBER, GREEN)]
    red = [s.title for s in rated if s.status == RED]
    amber = [s.title for s in rated if s.status == AMBER]
    text = f"{len(red)} of {len(rated)} metrics are red this week"
    if red:
        text += ": " + ", ".join(red)
    if amber:
        text += f"; {len(amber)} amber: " + ", ".join(amber)
    return text


def _status_of(statuses: list[MetricStatus], name: str) -> MetricStatus | None:
    return next((s for s in statuses if s.metric == name), None)


def _trend_panel(ax, results: MetricResults, config: Config, name: str, status: MetricStatus | None) -> None:
    defn = results.definitions[name]
    k = _scale(defn.format)
    s = _trend_values(results, name)
    mature, young = s[s.mature], s[~s.mature]
    ax.plot(mature["week_start"], mature["value"] * k, marker="o", ms=3, lw=1.2, color=BLUE, gid="series")
    if not young.empty:
        ax.plot(young["week_start"], young["value"] * k, marker="o", ms=4, ls="none", mfc="white", color=GREY,
                gid="not-mature")
    base = _baseline(mature, results.settings.baseline_weeks)
    if len(base) >= 3:
        mu, sd = base.mean() * k, base.std(ddof=1) * k
        low, high = mu - 2 * sd, mu + 2 * sd
        if defn.format == "percent":
            low, high = max(low, 0.0), min(high, 100.0)  # a rate lives in 0-100 %
        ax.axhspan(low, high, color=SKY, alpha=0.18, lw=0, gid="band")
    row = config.row_for(name) or config.default_rule
    for t in thresholds(row, defn, mature, results.settings.baseline_weeks):
        colour = STATUS_STYLE[t.level][0]
        style = "--" if t.level == RED else ":"
        if t.since is None:
            ax.axhline(t.y, color=colour, ls=style, lw=1.3, gid=f"threshold:{t.level}")
        else:
            ax.plot([t.since, mature["week_start"].iloc[-1]], [t.y, t.y], color=colour, ls=style, lw=1.6,
                    gid=f"threshold:{t.level}")
    note = rule_words(row)
    if note:  # under the panel, where the date axis needs no label: never over the data
        ax.set_xlabel(note, fontsize=7, color=INK)
        ax.xaxis.label.set_gid("rule-words")
    state = status.status if status is not None else None
    if state in STATUS_STYLE and not mature.empty:
        colour, marker, word = STATUS_STYLE[state]
        ax.plot([mature["week_start"].iloc[-1]], [mature["value"].iloc[-1] * k], marker=marker, ms=9, color=colour,
                mec=INK, mew=0.6, ls="none", gid=f"status:{state}")
        if state == RED:
            for spine in ax.spines.values():
                spine.set_edgecolor(VERMILLION)
                spine.set_linewidth(2.0)
        ax.set_title(f"{word}: {plain(defn.title)}" if state != GREEN else plain(defn.title),
                     color=INK, fontsize=9, loc="left")
    else:
        ax.set_title(f"{plain(defn.title)} (no status)", fontsize=9, loc="left")
    ax.set_ylabel(_unit_label(defn, config.currency), fontsize=8)
    if defn.format == "percent":
        _percent_axis(ax.yaxis)
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 100.0))
    elif defn.format == "currency":
        _money_axis(ax.yaxis, config.currency)
    _date_axis(ax)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=5)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    ax.tick_params(axis="both", labelsize=7)


def _trend_legend() -> list:
    return [
        Line2D([], [], color=BLUE, marker="o", ms=3, label="week (returns complete)"),
        Line2D([], [], color=GREY, marker="o", mfc="white", ls="none", label="returns still arriving"),
        Patch(color=SKY, alpha=0.3, label="usual range (baseline ± 2 sd)"),
        Line2D([], [], color=VERMILLION, ls="--", label="red line"),
        Line2D([], [], color=ORANGE, ls=":", label="amber line"),
        *[Line2D([], [], color=c, marker=m, mec=INK, ls="none", ms=8, label=f"this week: {w}")
          for c, m, w in STATUS_STYLE.values()],
    ]


def metric_trends(results: MetricResults, config: Config, statuses: list[MetricStatus] | None = None,
                  metrics: list[str] | None = None, cols: int = 3):
    """Weekly shop-wide trend of each metric with its usual range, the decision table's lines and its status.

    The title counts the red metrics of ``statuses`` (step 1's, computed by the rules when None) and
    names them; a red panel has a red frame and an X on its week, written "RED" in its title. Weeks
    not mature yet (returns still arriving) are drawn hollow, never as a low value.
    """
    statuses = statuses if statuses is not None else metric_statuses(results, config)
    names = [m for m in (metrics or results.definitions)
             if not results.definitions[m].shares and m not in results.unavailable]
    order = {RED: 0, AMBER: 1}  # red first, then amber: the reader starts with what needs action
    names.sort(key=lambda m: order.get(getattr(_status_of(statuses, m), "status", None), 2))
    rows = max(math.ceil(len(names) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.7 * rows + 1.2), squeeze=False)
    for ax, name in zip(axes.flat, names):
        _trend_panel(ax, results, config, name, _status_of(statuses, name))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(_wrap(plain(trends_finding(statuses)), 120), x=0.01, ha="left")
    fig.legend(handles=_trend_legend(), loc="lower center", ncol=4, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


# --- step 1: reason mix ---------------------------------------------------------------------------

def reason_shares(results: MetricResults, slice_col: str, weeks: int) -> tuple[pd.DataFrame, int]:
    """% of returned units per reason (columns) for each value of ``slice_col`` over the last mature weeks."""
    mix = results.reason_mix
    mix = mix[(mix.slice == slice_col) & mix.mature]
    last = sorted(mix.week_start.unique())[-weeks:]
    mix = mix[mix.week_start.isin(last)]
    table = mix.pivot_table(index="slice_value", columns="reason_code", values="units", aggfunc="sum", fill_value=0)
    return table.div(table.sum(axis=1), axis=0) * 100, len(last)


def weak_reason(results: MetricResults) -> tuple[str | None, float | None, float | None, str | None]:
    """The reason whose shop-wide share rose most this week (the reason-mix rule's), with its share now,
    its usual share (fractions) and the week."""
    st = reason_mix_status(results)
    if not isinstance(st.value, dict) or not isinstance(st.baseline, dict):
        top = max(st.value, key=st.value.get) if isinstance(st.value, dict) and st.value else None
        return top, (st.value or {}).get(top) if top else None, None, st.week
    keys = set(st.value) | set(st.baseline)
    top = max(sorted(keys), key=lambda r: st.value.get(r, 0.0) - st.baseline.get(r, 0.0))
    return top, st.value.get(top, 0.0), st.baseline.get(top, 0.0), st.week


def reason_mix_finding(shares: pd.DataFrame, reason: str | None, now: float | None, usual: float | None,
                       week: str | None, slice_col: str) -> str:
    if reason is None or shares.empty:
        return "No returned unit in a mature week yet"
    name = words(reason)
    text = f"{name[:1].upper()}{name[1:]}: {now * 100:.0f} % of returned units in {week}"
    if usual is not None:
        text += f" vs {usual * 100:.0f} % usual"
    if reason in shares.columns:
        top = shares[reason].idxmax()
        text += f"; highest in {words(slice_col)} {plain(top)} ({shares[reason].max():.0f} %)"
    return text


def reason_mix_by(results: MetricResults, slice_col: str = "category", weeks: int = 8, highlight: str | None = None):
    """Share of returned units per reason for each value of ``slice_col`` over the last mature weeks.

    The highlighted reason (default: the one whose shop-wide share rose most this week, by the
    reason-mix rule) is drawn first, in a strong colour with a hatch and its share written on the bar;
    the other reasons are paler. Rows sorted by the highlighted reason's share.
    """
    shares, n_weeks = reason_shares(results, slice_col, weeks)
    top, now, usual, week = weak_reason(results)
    reason = highlight or top
    if highlight is not None and highlight != top:
        now, usual = None, None
    fig, ax = plt.subplots(figsize=(9.5, 0.42 * max(len(shares), 3) + 1.8))
    if shares.empty:
        ax.text(0.5, 0.5, "no returned unit in a mature week yet", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    others = [c for c in shares.columns if c != reason]
    columns = ([reason] if reason in shares.columns else []) + others
    shares = shares[columns].sort_values(columns[0], ascending=True)
    # vermillion is kept for the weak reason, grey for "nothing to see": the other reasons share the rest
    rest = [c for c in PALETTE.as_hex() if c not in (VERMILLION, GREY)]
    colours = {col: rest[i % len(rest)] for i, col in enumerate(others)}
    left = np.zeros(len(shares))
    labels = [plain(v) for v in shares.index]
    for col in columns:
        strong = col == reason
        ax.barh(labels, shares[col], left=left, color=VERMILLION if strong else colours.get(col, GREY),
                alpha=1.0 if strong else 0.55, hatch="//" if strong else None, edgecolor=INK if strong else "white",
                lw=0.8 if strong else 0.4, label=words(col) + (" (this week's weak reason)" if strong else ""),
                gid=f"reason:{col}")
        if strong:
            for y, (x0, w) in enumerate(zip(left, shares[col])):
                if w >= 4:
                    ax.text(x0 + w / 2, y, f"{w:.0f} %", ha="center", va="center", fontsize=7, color="white",
                            fontweight="bold", bbox={"fc": VERMILLION, "ec": "none", "pad": 0.5})
        left += shares[col].to_numpy()
    ax.set_xlim(0, 100)
    _percent_axis(ax.xaxis)
    ax.set_xlabel(f"% of returned units, last {n_weeks} weeks with complete returns")
    ax.set_title(_wrap(reason_mix_finding(shares, reason, now, usual, week, slice_col), 85), loc="left")
    ax.legend(fontsize=7, ncol=4, bbox_to_anchor=(0, -0.18 - 0.6 / max(len(shares), 3), 1, 0.1), loc="upper left",
              frameon=False)
    fig.tight_layout()
    return fig


# --- step 2: funnel and cohort trend --------------------------------------------------------------

def cohort_label(label: str) -> str:
    """A cohort as a point's label, where room is short: ``category=knitwear x size_too_small`` reads
    ``knitwear x size too small`` (escaped). Parsed as the brief parses it (``story.parse_cohort``)."""
    filters = parse_cohort(label)
    reason = filters.pop("reason_code", "")
    where = ", ".join(str(v) for v in filters.values()) or "the whole shop"
    return f"{plain(where)} x {words(reason)}" if reason else plain(where)


def cohort_sentence(label: str) -> str:
    """A cohort in a title, in the brief's words (``story.cohort_words``), escaped for matplotlib."""
    return plain(cohort_words(label))


def funnel_finding(analysis) -> str:
    w = analysis.weak
    if w is None:
        flagged = int(analysis.table["flagged"].sum()) if "flagged" in analysis.table else 0
        return (f"No weak cohort this week: {flagged} slice(s) rose beyond chance, none that a cohort lever fits"
                if flagged else "No slice rose beyond chance this week")
    ratio = w.return_rate / w.expected_rate if w.expected_rate else float("nan")
    return (f"Weak cohort: {cohort_sentence(w.label)}, at {ratio:.1f} times its own baseline, "
            f"the largest excess cost that nothing else explains")


def _spread(ys: list[float], gap: float) -> list[float]:
    """Label heights moved apart to at least ``gap`` (display pixels), order kept, mean kept."""
    order = np.argsort(ys)
    placed = np.array(ys, float)[order]
    for _ in range(50):
        moved = False
        for i in range(1, len(placed)):
            if placed[i] - placed[i - 1] < gap:
                push = (gap - (placed[i] - placed[i - 1])) / 2
                placed[i - 1] -= push
                placed[i] += push
                moved = True
        if not moved:
            break
    out = np.empty(len(ys))
    out[order] = placed
    return list(out)


def funnel_plot(analysis, label_top: int = 4):
    """Observed / expected returns of every slice x reason against its expected count (log scale).

    Each point is a slice compared with its own baseline; the curves are where the exact conditional
    test (one-sided, no clustering) crosses p = 2.5 % and 0.1 % for a typical window/baseline ratio
    (the flags use each slice's own limit, widened by its customer design effect). Small slices sit on
    the left, where the funnel is wide: a high ratio there is noise. Only the ``label_top`` flagged
    slices with the largest excess cost are labelled, moved apart so labels never overlap.
    """
    from playbook.steps.cohorts import FDR  # the flag rule's own rate (the steps import the report, not the reverse)
    t = analysis.table[analysis.table.expected_events.astype(float) > 0]
    fig, ax = plt.subplots(figsize=(9.5, 5.8))
    if t.empty:
        ax.text(0.5, 0.5, plain(analysis.note or "no slice to plot"), ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(plain(funnel_finding(analysis)), loc="left")
        return fig
    other = t[~t.flagged]
    ax.scatter(other.expected_events, other.ratio, s=14, color=GREY, alpha=0.7, label="within its usual range")
    flagged = t[t.flagged]
    ax.scatter(flagged.expected_events, flagged.ratio, s=46, marker="D", color=VERMILLION, edgecolor=INK, lw=0.5,
               label=f"flagged (q < {FDR:.0%}, customers counted)")
    weak = analysis.weak
    if weak is not None:
        w = t[(t.dimension == weak.dimension) & (t.slice_value == weak.slice_value) & (t.reason_code == weak.reason_code)]
        ax.scatter(w.expected_events, w.ratio, s=180, marker="*", color=YELLOW, edgecolor=INK, lw=0.8, zorder=5,
                   label="the weak cohort")
    e = np.geomspace(max(t.expected_events.min(), 0.1), t.expected_events.max() * 1.5, 200)
    ratio = float(np.nanmedian(t.units / t.baseline_units.where(t.baseline_units > 0)))
    share = ratio / (1 + ratio)  # window share of the units: O | O + B ~ Binomial(O + B, share)
    for alpha, style, name in ((0.025, "--", "p = 2.5 %"), (0.001, ":", "p = 0.1 %")):
        low, up = conditional_limits(e / share, np.full(e.size, share), np.ones(e.size), alpha)
        ax.plot(e, up / e, color=INK, ls=style, lw=1, label=f"chance limit, {name}")
        ax.plot(e, low / e, color=INK, ls=style, lw=1)
    ax.axhline(1, color=INK, lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, max(3.0, float(np.nanmax(t.ratio.clip(upper=6))) * 1.08))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_title(_wrap(plain(funnel_finding(analysis)), 88), loc="left")
    ax.set_xlabel("returns expected from the slice's own baseline, over the window (log scale)")
    ax.set_ylabel("observed / expected returns")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()  # before the labels: their spacing is set in the final layout's pixels
    _label_points(fig, ax, flagged.sort_values("excess_cost", ascending=False).head(label_top))
    return fig


def _label_points(fig, ax, rows: pd.DataFrame) -> None:
    """Label points to their right (left near the right edge), heights spread so labels never overlap."""
    if rows.empty:
        return
    fig.canvas.draw()  # the axes' final transform (limits, log scale)
    xy = ax.transData.transform(np.column_stack([rows.expected_events.astype(float), rows.ratio.astype(float)]))
    px = fig.dpi / 72.0
    ys = _spread(list(xy[:, 1]), 16 * px)
    right = ax.get_window_extent().x1
    for (_, r), (x, y), y_new in zip(rows.iterrows(), xy, ys):
        to_left = x > right - 200 * px
        text = cohort_label(f"{r.dimension}={r.slice_value} x {r.reason_code}")
        ax.annotate(text, (r.expected_events, r.ratio), xytext=(-30 if to_left else 30, (y_new - y) / px),
                    textcoords="offset points", ha="right" if to_left else "left", va="center", fontsize=8,
                    arrowprops={"arrowstyle": "-", "color": INK, "lw": 0.6},
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": GREY, "alpha": 0.9}, gid="point-label")


def cohort_trend_chart(trend: pd.DataFrame, title: str, usual_rate: float | None = None,
                       window_weeks: tuple | list = ()):
    """Weekly rate of the weak cohort's reason within its slice; weeks still collecting returns hollow.

    ``usual_rate`` (the cohort's baseline rate, a fraction) is drawn as a line and ``window_weeks``
    (step 2's window) shaded; the title (data text, escaped) should state the finding.
    """
    fig, ax = plt.subplots(figsize=(9.5, 3.4))
    m, y = trend[trend.mature], trend[~trend.mature]
    ax.plot(m.week_start, m.rate * 100, marker="o", ms=3, color=VERMILLION, label="weekly rate (returns complete)")
    ax.plot(y.week_start, y.rate * 100, marker="o", ms=4, ls="none", mfc="white", color=GREY,
            label="returns still arriving")
    if usual_rate is not None:
        ax.axhline(usual_rate * 100, color=BLUE, ls="--", lw=1.2, label=f"usual rate ({usual_rate:.1%})")
    if len(window_weeks):
        import datetime as dt

        ax.axvspan(min(window_weeks), max(window_weeks) + dt.timedelta(days=6), color=ORANGE, alpha=0.15,
                   label="window compared")
    ax.set_ylabel("% of the slice's units")
    _percent_axis(ax.yaxis)
    ax.set_ylim(bottom=0)
    ax.set_title(_wrap(plain(title), 88), loc="left")
    ax.legend(fontsize=7, loc="upper left")
    _date_axis(ax)
    fig.tight_layout()
    return fig


def cohort_trend_title(weak) -> str:
    """The cohort trend's finding: its rate over the window against its usual rate."""
    return (f"{cohort_sentence(weak.label)}: {weak.return_rate:.1%} of units returned for this reason over the "
            f"window vs {weak.expected_rate:.1%} usual")


# --- step 3: power curve --------------------------------------------------------------------------

def power_finding(plan) -> str:
    k = plan.k_days
    if plan.ready:
        opt = _chosen(plan)
        return (f"The {k}-day read reaches {opt.power:.0%} power after {opt.weeks} week(s): "
                f"review on {date_text(plan.review_date)}")
    planned = plan.options[0] if plan.options else None
    at_max = f"{planned.power:.0%}" if planned is not None and planned.power is not None else "no"
    need = f"it needs {plan.weeks_needed} weeks" if plan.weeks_needed else "it needs more than two years"
    return f"Not ready: {at_max} power after the longest run of {plan.max_weeks} weeks ({need})"


def _chosen(plan):
    return next((o for o in plan.options if o.kind == plan.chosen_option), None)


def power_curve(plan, target: float | None = None):
    """Power of the review's K-day read against weeks of running (step 3), with the plan's review marked.

    Draws the ready option's curve (the powers :func:`playbook.stats.power.k_day_read_plan` computed
    for the plan, ``PowerOption.power_by_week``) and, when the ready row takes an alternative, the
    plan as designed; the target power (80 %) as a line; the review date at its week.
    """
    from playbook.steps.levers import PLANNED_POWER

    target = PLANNED_POWER if target is None else target
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    shown = [o for o in plan.options if o.power_by_week and (o.kind == "as_planned" or o.kind == plan.chosen_option)]
    styles = {"as_planned": (BLUE, "o", "-"), None: (TEAL, "s", "-")}
    for o in shown:
        colour, marker, ls = styles["as_planned"] if o.kind == "as_planned" else styles[None]
        weeks = np.arange(1, len(o.power_by_week) + 1)
        power = np.array([np.nan if p is None else p for p in o.power_by_week]) * 100
        name = "as planned" if o.kind == "as_planned" else f"ready row: {words(o.kind)}"
        ax.plot(weeks, power, marker=marker, ms=4, color=colour, ls=ls, label=f"{name} ({o.expected_change * 100:+.1f} points)",
                gid=f"power:{o.kind}")
    ax.axhline(target * 100, color=INK, ls="--", lw=1, label=f"target power {target:.0%}", gid="target")
    review_week = (_chosen(plan).weeks if plan.ready else plan.max_weeks)
    ax.axvline(review_week, color=VERMILLION if not plan.ready else TEAL, ls=":", lw=1.6, gid="review")
    ax.annotate(f"review on {date_text(plan.review_date)}" + ("" if plan.ready else " (not ready)"),
                (review_week, 97), xytext=(-4, 0), textcoords="offset points", fontsize=8, ha="right", va="top",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.9})
    ax.set_xlim(0.5, plan.max_weeks + 0.5)
    ax.set_xticks(range(1, plan.max_weeks + 1))
    ax.set_ylim(0, 100)
    _percent_axis(ax.yaxis)
    ax.set_xlabel(f"weeks of running from {date_text(plan.start_date)}")
    ax.set_ylabel("power of the review's read")
    ax.set_title(_wrap(plain(power_finding(plan)), 88), loc="left")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# --- step 4: forest plot, return curves, event study ----------------------------------------------

def _metric(name: str, config: Config | None) -> Metric | None:
    return metric_named(name, config.metrics) if config is not None else None


def _inside_expected(m) -> bool:
    e = m.estimate
    return bool(e.ok and m.expected_low is not None and m.expected_high is not None
                and min(m.expected_low, m.expected_high) <= e.estimate <= max(m.expected_low, m.expected_high))


_HARM = (GuardrailState.HARM_LIKELY, GuardrailState.BREACHED)


def forest_finding(comparisons) -> str:
    n = len(comparisons)
    readable = sum(1 for c in comparisons if c.primary.estimate.ok)
    inside = sum(1 for c in comparisons if _inside_expected(c.primary))
    harm = sum(1 for c in comparisons for g in c.guardrails if g.state in _HARM)
    return (f"{n} experiment(s) due: {readable} primary effect(s) readable, {inside} inside the expected range; "
            f"{harm} guardrail(s) past their tolerance")


def _forest_limits(rows, k_of) -> dict[str, tuple[float, float]]:
    """x-limits shared by every panel of the same metric (estimates, intervals, ranges, tolerances)."""
    spans: dict[str, list[float]] = {}
    for _, m in rows:
        k, e = k_of(m.metric), m.estimate
        vals = [e.null_value * k]
        if e.ok:
            vals += [e.ci_low * k, e.ci_high * k]
        if m.role == "primary" and m.expected_low is not None and m.expected_high is not None:
            vals += [m.expected_low * k, m.expected_high * k]
        if m.role == "guardrail" and m.tolerance:
            vals.append((e.null_value + m.good_direction.opposite.signed(m.tolerance)) * k)
        spans.setdefault(m.metric, []).extend(v for v in vals if v is not None and np.isfinite(v))
    out = {}
    for name, vals in spans.items():
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.12 or 1.0
        out[name] = (lo - pad, hi + pad)
    return out


_STATE_STYLE = {  # colour and marker; the word is the vocabulary's (GuardrailState.words)
    GuardrailState.SAFE: (TEAL, "o"),
    GuardrailState.NOT_SHOWN_SAFE: (ORANGE, "D"),
    GuardrailState.HARM_LIKELY: (VERMILLION, "X"),
    GuardrailState.BREACHED: (VERMILLION, "X"),
    GuardrailState.NOT_MEASURED: (GREY, "o"),
}


def forest_plot(comparisons, config: Config | None = None):
    """Primary and guardrail metrics of each experiment with their intervals, one panel each.

    Panels of the same metric share one x-scale (in its unit: a rate's change in points, money in the
    config's currency). The primary's expected range (the plan's) is shaded with a hatch; a guardrail's
    side beyond its tolerance is shaded as harm; an arrow says which way is better; a guardrail's
    state is written beside its estimate and told by its marker too.
    """
    currency = config.currency if config is not None else ""
    rows = [(c, m) for c in comparisons for m in [c.primary, *c.guardrails]]
    fmt_of = {m.metric: (getattr(_metric(m.metric, config), "format", "number")) for _, m in rows}
    k_of = lambda name: _scale(fmt_of[name])  # noqa: E731
    limits = _forest_limits(rows, k_of)
    fig, axes = plt.subplots(len(rows), 1, figsize=(9.5, 1.25 * len(rows) + 1.0), squeeze=False)
    for ax, (c, m) in zip(axes[:, 0], rows):
        _forest_panel(ax, c, m, _metric(m.metric, config), k_of(m.metric), limits[m.metric], currency)
    fig.suptitle(_wrap(plain(forest_finding(comparisons)), 85), x=0.01, ha="left")
    fig.legend(handles=[Patch(fc=TEAL, alpha=0.25, hatch="//", label="expected range (plan)"),
                        Patch(fc=VERMILLION, alpha=0.15, label="harm beyond the tolerance"),
                        Line2D([], [], color=INK, lw=0.8, label="no change")],
               loc="lower center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return fig


def _forest_panel(ax, c, m, defn: Metric | None, k: float, xlim: tuple[float, float], currency: str) -> None:
    e = m.estimate
    fmt = defn.format if defn is not None else "number"
    unit = _change_unit(fmt, currency)
    ax.set_xlim(*xlim)
    ax.axvline(e.null_value * k, color=INK, lw=0.8)
    if m.role == "primary" and m.expected_low is not None and m.expected_high is not None:
        lo, hi = sorted((m.expected_low * k, m.expected_high * k))
        ax.axvspan(lo, hi, fc=TEAL, alpha=0.25, hatch="//", ec=TEAL, lw=0, gid="expected")
    elif m.role == "guardrail" and m.tolerance:
        harm = (e.null_value + m.good_direction.opposite.signed(m.tolerance)) * k
        far = xlim[1] if m.good_direction is Direction.LOWER else xlim[0]
        ax.axvspan(min(harm, far), max(harm, far), fc=VERMILLION, alpha=0.15, lw=0, gid="tolerance")
        ax.axvline(harm, color=VERMILLION, ls="--", lw=1)
    if m.role == "guardrail":
        colour, marker = _STATE_STYLE.get(m.state, (BLUE, "o"))
        state = GuardrailState(m.state).words if m.state in set(GuardrailState) else ""
    else:
        colour, marker = BLUE, "o"
        state = ("inside the expected range" if _inside_expected(m) else "outside the expected range") if e.ok else ""
    if e.ok:
        ax.errorbar([e.estimate * k], [0], xerr=[[(e.estimate - e.ci_low) * k], [(e.ci_high - e.estimate) * k]],
                    fmt=marker, color=colour, mec=INK, ms=8, capsize=4, lw=1.6, gid="estimate")
        ax.annotate(f"{e.estimate * k:+.2f} {unit} ({e.ci_low * k:+.2f} to {e.ci_high * k:+.2f}): {state}",
                    (e.estimate * k, 0), xytext=(0, 10), textcoords="offset points", ha="center", fontsize=7)
    else:
        ax.text(0.5, 0.5, _wrap(plain(f"not readable yet: {e.error}"), 120), transform=ax.transAxes, ha="center",
                va="center", fontsize=7)
    better_right = (m.good_direction is Direction.HIGHER)
    ax.text(0.99 if better_right else 0.01, 0.9, "better →" if better_right else "← better", transform=ax.transAxes,
            ha="right" if better_right else "left", va="top", fontsize=8, color=TEAL, fontweight="bold", gid="better")
    title = plain(defn.title) if defn is not None else plain(m.metric)
    ax.set_title(f"{plain(c.experiment_id)} · {m.role}: {title}", fontsize=8, loc="left")
    ax.set_yticks([])
    ax.set_ylim(-1, 1.4)
    ax.set_xlabel(f"change, {'treated - control' if str(c.design) == 'randomized' else 'cohort - control'} ({unit})",
                  fontsize=7)
    ax.tick_params(axis="x", labelsize=7)


def kaplan_meier_chart(comparison):
    """Share of units returned by day since delivery, per arm (censored at the end of the week)."""
    km = comparison.views.get("kaplan_meier")
    fig, ax = plt.subplots(figsize=(8.5, 3.4))
    if km is None or km.curves.empty:
        ax.text(0.5, 0.5, "no return curve for this experiment", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for (arm, g), colour in zip(km.curves.groupby("arm"), (BLUE, ORANGE, TEAL, PINK)):
        ax.step(g["days"], g["return_share"] * 100, where="post", color=colour, label=plain(arm))
        ax.fill_between(g["days"], g["ci_low"] * 100, g["ci_high"] * 100, step="post", alpha=0.15, color=colour)
    if comparison.follow_up_days:
        ax.axvline(comparison.follow_up_days, color=INK, ls=":", lw=1, label=f"k = {comparison.follow_up_days:g} days")
    ax.set_xlabel("days since delivery")
    ax.set_ylabel("% of units returned")
    _percent_axis(ax.yaxis)
    ax.set_ylim(bottom=0)
    ax.set_title(_wrap(plain(km_finding(comparison, km.curves)), 88), loc="left")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def km_finding(comparison, curves: pd.DataFrame) -> str:
    """Share returned per arm at the last day both arms reach (the curves' common follow-up)."""
    last = curves.groupby("arm")["days"].max()
    day = float(math.floor(last.min()))
    at = {arm: float(g.loc[g["days"] <= day, "return_share"].iloc[-1]) if (g["days"] <= day).any() else 0.0
          for arm, g in curves.groupby("arm")}
    shares = ", ".join(f"{plain(a)} {v:.1%}" for a, v in at.items())
    return f"{comparison.experiment_id}: units returned by day {day:g} after delivery: {shares}"


def event_study_chart(comparison, config: Config | None = None):
    """Treated-minus-control difference per week relative to the start, with intervals."""
    es = comparison.views.get("event_study")
    fig, ax = plt.subplots(figsize=(8.5, 3.4))
    if es is None or not isinstance(es, pd.DataFrame) or es.empty:
        ax.text(0.5, 0.5, "no event study for this experiment", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    defn = _metric(comparison.primary.metric, config)
    k = _scale(defn.format) if defn is not None else 1.0
    unit = _change_unit(defn.format, config.currency) if defn is not None else ""
    styles = {"pre": (GREY, "o"), "reference": (INK, "s"), "post": (BLUE, "D")}
    ax.axhline(0, color=INK, lw=0.8)
    ax.axvline(-0.5, color=GREY, ls=":", lw=1)
    for _, r in es.iterrows():
        colour, marker = styles.get(r.get("period"), styles["post"])
        if pd.notna(r.get("ci_low")) and pd.notna(r.get("ci_high")):
            ax.plot([r.relative_week, r.relative_week], [r.ci_low * k, r.ci_high * k], color=colour, lw=1.5)
        ax.plot(r.relative_week, r.estimate * k, marker, color=colour, ms=5)
    ax.legend(handles=[Line2D([], [], color=c, marker=mk, ls="none", label=f"{p} week") for p, (c, mk) in styles.items()],
              fontsize=7, loc="best")
    ax.set_xlabel("weeks since the change (before it, points should hover around 0)")
    name = plain(defn.title) if defn is not None else plain(comparison.primary.metric)
    ax.set_ylabel(f"cohort - control ({unit})" if unit else "cohort - control")
    post = es[es["period"] == "post"] if "period" in es else es.iloc[:0]
    gap = (f"after the change the gap averages {post.estimate.mean() * k:+.2f} {unit}" if len(post)
           else "no week after the change yet")
    ax.set_title(_wrap(f"{plain(comparison.experiment_id)}, {name}: {gap}", 88), loc="left")
    fig.tight_layout()
    return fig


# --- step 5: track record in money ----------------------------------------------------------------

def track_record_finding(record, currency: str) -> str:
    c = record.counts
    window = f"{record.first_week} to {record.week}"
    if not record.n_reviewed:
        return f"No lever reviewed from {window} yet"
    text = (f"{record.n_reviewed} lever(s) reviewed from {window}: {c.get(KEEP, 0)} kept, {c.get(ADJUST, 0)} adjusted, "
            f"{c.get(STOP, 0)} stopped")
    if record.money_per_week is not None:
        text = f"Kept levers save {record.money_words(currency)}; " + text
    return text


_DECISION_STYLE = {KEEP: (TEAL, "o", "kept"), STOP: (VERMILLION, "X", "stopped"), ADJUST: (ORANGE, "D", "adjusted"),
                   CONTINUE: (GREY, "^", "continuing"), PROVISIONAL: (GREY, "s", "provisional")}


def track_record_chart(record, currency: str):
    """Money per week of every reviewed lever by the week of its latest verdict, with its interval, and
    the running total of the kept levers (what they save each week from then on). Positive: saved."""
    fig, ax = plt.subplots(figsize=(9.5, 3.8))
    v = record.verdicts
    ax.axhline(0, color=INK, lw=0.8)
    valued = v[v["money_per_week"].notna()].copy() if len(v) else v
    if valued is None or valued.empty:
        ax.text(0.5, 0.5, "no reviewed lever with a money value yet", ha="center", va="center", transform=ax.transAxes)
    else:
        from playbook.core.weeks import IsoWeek

        weeks = sorted({*valued["week"]}, key=IsoWeek.parse)
        x_of = {w: i for i, w in enumerate(weeks)}
        offsets = valued.groupby("week").cumcount() * 0.12
        for decision, g in valued.groupby("decision"):
            colour, marker, word = _DECISION_STYLE.get(decision, (BLUE, "o", str(decision)))
            xs = g["week"].map(x_of) + offsets[g.index]
            low = (g["money_per_week"] - g["money_ci_low"]).fillna(0).clip(lower=0)
            high = (g["money_ci_high"] - g["money_per_week"]).fillna(0).clip(lower=0)
            ax.errorbar(xs, g["money_per_week"], yerr=[low, high], fmt=marker, color=colour, mec=INK, ms=7,
                        capsize=3, ls="none", label=word, gid=f"decision:{decision}")
            for x, (_, r) in zip(xs, g.iterrows()):
                ax.annotate(plain(r["experiment_id"]), (x, r["money_per_week"]), xytext=(6, 0),
                            textcoords="offset points", fontsize=6, va="center")
        kept = valued[valued["decision"] == KEEP].groupby("week")["money_per_week"].sum()
        running = np.cumsum([kept.get(w, 0.0) for w in weeks])
        ax.step(range(len(weeks)), running, where="post", color=BLUE, lw=1.5, label="kept levers, total per week",
                gid="kept-total")
        ax.set_xticks(range(len(weeks)), [plain(w) for w in weeks])
        ax.set_xlim(-0.5, len(weeks) - 0.5 + 0.4)
        ax.legend(fontsize=7, loc="best")
    _money_axis(ax.yaxis, currency)
    ax.set_ylabel(f"{currency} per week (+ saved, - lost)")
    ax.set_xlabel("week of the latest verdict")
    ax.set_title(_wrap(plain(track_record_finding(record, currency)), 88), loc="left")
    fig.tight_layout()
    return fig
