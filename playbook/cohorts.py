"""Step 2 of the loop: isolate the weak cohort of the week.

Slices (category, channel, region, customer type) crossed with return reasons are compared,
over the latest mature delivery weeks (the *window*), with their own rate over the weeks before
(the *baseline*): an indirectly standardised funnel (``playbook.stats.standardized``) with
overdispersion, Benjamini-Hochberg across every slice tested, empirical-Bayes shrunk rates for
the ranking display, and the excess cost (returns above the slice's own norm, valued at its
return cost). The weak cohort is the flagged slice with the largest excess cost; when nothing
is flagged, the step says so.

All counting runs in the engine; pandas receives one row per (slice, reason, period).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd

from playbook.config import MetricSettings
from playbook.contract import REASON_CODES
from playbook.data import Snapshot
from playbook.metrics import is_mature, line_facts
from statsmodels.stats.multitest import multipletests

from playbook.stats.funnel import funnel_table
from playbook.stats.results import jsonable
from playbook.stats.shrinkage import beta_binomial_shrinkage
from playbook.stats.standardized import standardized_funnel
from playbook.weeks import IsoWeek

FDR = 0.05  # false discovery rate over every slice x reason tested in one run


@dataclass(frozen=True)
class Windows:
    """The delivery weeks compared: the recent window and the baseline just before it."""

    window: tuple[dt.date, ...]
    baseline: tuple[dt.date, ...]

    def describe(self) -> str:
        if not self.window:
            return "no delivery week with full follow-up yet"
        w = f"{IsoWeek.of(self.window[0])} to {IsoWeek.of(self.window[-1])}"
        b = f"{IsoWeek.of(self.baseline[0])} to {IsoWeek.of(self.baseline[-1])}" if self.baseline else "none"
        return f"delivery weeks {w} (window) against {b} (baseline)"


@dataclass(frozen=True)
class WeakCohort:
    """The weak cohort of the week: which slice, how bad, how sure, what it costs."""

    filters: dict[str, str]
    units: int
    return_rate: float
    expected_rate: float
    excess_events: float
    excess_cost: float
    q_value: float
    z_adjusted: float
    dimension: str
    windows: str

    @property
    def label(self) -> str:
        return " x ".join(f"{k}={v}" for k, v in self.filters.items())

    @property
    def slice_filter(self) -> dict[str, str]:
        """The filter without the reason: the population a lever acts on."""
        return {k: v for k, v in self.filters.items() if k != "reason_code"}

    @property
    def reason_code(self) -> str:
        return self.filters["reason_code"]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass
class WeakCohortAnalysis:
    table: pd.DataFrame
    windows: Windows
    weak: WeakCohort | None
    phi: dict[str, float]  # overdispersion per "dimension x reason" (NaN: too few slices to estimate)
    phi_applied: list[str]  # the "dimension x reason" groups whose limits were widened
    n_slices: int
    settings: MetricSettings = field(repr=False, default=None)
    note: str | None = None  # why nothing could be analysed (too little history), in words

    def flagged(self) -> pd.DataFrame:
        return self.table[self.table.flagged.astype(bool)].sort_values("rank")


def choose_windows(snap: Snapshot, settings: MetricSettings, window_weeks: int = 4, baseline_weeks: int = 8,
                   first_week: IsoWeek | None = None) -> Windows:
    """The latest ``window_weeks`` mature delivery weeks, and up to ``baseline_weeks`` before them.

    With ``first_week`` (the data's first week), no week before the data is used: early in the
    history the baseline is shorter, or empty when there are not enough mature weeks yet.
    """
    mondays, week = [], snap.week
    while len(mondays) < window_weeks + baseline_weeks and (first_week is None or week >= first_week):
        if is_mature(week.monday, "delivery", snap.week, settings):
            mondays.append(week.monday)
        week = week.shift(-1)
    mondays.sort()
    window = mondays[-window_weeks:]
    return Windows(tuple(window), tuple(mondays[: len(mondays) - len(window)]))


def first_data_week(snap: Snapshot) -> IsoWeek:
    first = snap.tables["orders"].order_ts.min().to_pyarrow().as_py()
    return IsoWeek.of(first) if first is not None else snap.week


def _period(lf: ibis.Table, windows: Windows) -> ibis.Value:
    return ibis.cases(
        (lf.delivery_week.isin(list(windows.window)), "window"),
        (lf.delivery_week.isin(list(windows.baseline)), "baseline"),
        else_=ibis.null("string"),
    )


def slice_reason_counts(snap: Snapshot, settings: MetricSettings, windows: Windows, dimensions: list[str]) -> pd.DataFrame:
    """Units delivered and units returned (within k days) per dimension, slice, reason and period."""
    k = settings.return_window_days
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull())
    lf = lf.mutate(period=_period(lf, windows))
    lf = lf.filter(lf.period.notnull())
    r = snap.tables["returns"].join(lf.select("line_id", "delivered_ts", "period", *dimensions), "line_id")
    r = r.filter(r.requested_ts <= r.delivered_ts + ibis.interval(days=k))
    cost = r.refund_amount + r.return_shipping_cost + r.processing_cost
    frames = []
    for dim in dimensions:
        units = lf.group_by([lf[dim].cast("string").name("slice_value"), "period"]).agg(units=lf.units.sum()).to_pandas()
        ev = (
            r.group_by([r[dim].cast("string").name("slice_value"), "period", "reason_code"])
            .agg(events=r.quantity.sum(), cost=cost.sum())
            .to_pandas()
        )
        grid = units.merge(pd.DataFrame({"reason_code": list(REASON_CODES)}), how="cross")
        g = grid.merge(ev, on=["slice_value", "period", "reason_code"], how="left").fillna({"events": 0, "cost": 0.0})
        g.insert(0, "dimension", dim)
        frames.append(g)
    return pd.concat(frames, ignore_index=True)


def weak_cohort_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Window vs baseline per (dimension, slice, reason), through the standardised funnel."""
    keys = ["dimension", "slice_value", "reason_code"]
    w = counts[counts.period == "window"].set_index(keys)
    b = counts[counts.period == "baseline"].set_index(keys)
    t = pd.DataFrame({
        "units": w["units"], "events": w["events"], "cost": w["cost"],
    }).join(b[["units", "events"]].rename(columns={"units": "baseline_units", "events": "baseline_events"}), how="left")
    t = t.fillna({"baseline_units": 0, "baseline_events": 0}).reset_index()
    # cost of one returned unit: the slice's own average, else the reason's shop-wide average
    reason_cost = t.groupby("reason_code")[["cost", "events"]].sum()
    fallback = (reason_cost["cost"] / reason_cost["events"].where(reason_cost["events"] > 0)).fillna(0.0)
    own = t["cost"] / t["events"].where(t["events"] > 0)
    t["cost_per_event"] = own.fillna(t["reason_code"].map(fallback)).fillna(0.0)
    # one funnel per dimension x reason: its slices partition the same units, so their spread measures
    # overdispersion (slices of different dimensions overlap and share one spike); the false discovery
    # rate is then controlled over all of them
    parts, phi, applied = [], {}, []
    for (dim, reason), g in t.groupby(["dimension", "reason_code"], sort=True):
        f = standardized_funnel(g)
        phi[f"{dim} x {reason}"] = f.attrs["phi"]
        if f.attrs["phi_applied"]:
            applied.append(f"{dim} x {reason}")
        parts.append(f)
    table = pd.concat(parts, ignore_index=True)
    p = table["p_value"].to_numpy(float)
    q = np.full(len(table), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    table["q_value"] = q
    table["flagged"] = (q < FDR) & (table["ratio"].to_numpy(float) > table["upper_95"].to_numpy(float))
    table["rank"] = table["excess_cost"].where(table["flagged"]).rank(ascending=False, method="first").astype("Int64")
    shrunk = []
    for _, g in table.groupby(["dimension", "reason_code"], sort=False):
        s = beta_binomial_shrinkage(g["events"].to_numpy(), g["units"].to_numpy())
        s.index = g.index
        shrunk.append(s[["shrunk_rate", "shrunk_ci_low", "shrunk_ci_high"]])
    table = table.join(pd.concat(shrunk))
    table = table.sort_values(["rank", "z_adjusted"], ascending=[True, False], na_position="last").reset_index(drop=True)
    table.attrs.update(phi=phi, phi_applied=applied, n_slices=int(ok.sum()))
    return table


_EMPTY_TABLE = pd.DataFrame(columns=[
    "dimension", "slice_value", "reason_code", "units", "events", "cost", "baseline_units", "baseline_events",
    "cost_per_event", "rate", "baseline_rate", "expected_events", "ratio", "excess_events", "z", "z_adjusted",
    "p_value", "q_value", "upper_95", "lower_95", "upper_998", "lower_998", "flagged", "excess_cost", "rank", "note",
    "shrunk_rate", "shrunk_ci_low", "shrunk_ci_high",
])


def analyse_weak_cohorts(
    snap: Snapshot, settings: MetricSettings, window_weeks: int = 4, baseline_weeks: int = 8,
    dimensions: list[str] | None = None,
) -> WeakCohortAnalysis:
    """The whole step: windows, counts in the engine, funnel, and the weak cohort (or None)."""
    dims = dimensions or list(settings.slices)
    windows = choose_windows(snap, settings, window_weeks, baseline_weeks, first_data_week(snap))
    if len(windows.window) < window_weeks or not windows.baseline:
        note = (f"not enough history yet: {len(windows.window) + len(windows.baseline)} delivery week(s) with "
                f"{settings.return_window_days} days of follow-up, {window_weeks} + at least 1 needed")
        return WeakCohortAnalysis(_EMPTY_TABLE.copy(), windows, None, {}, [], 0, settings, note)
    table = weak_cohort_table(slice_reason_counts(snap, settings, windows, dims))
    weak = None
    top = table[table["rank"] == 1]
    if not top.empty:
        row = top.iloc[0]
        weak = WeakCohort(
            filters={row.dimension: row.slice_value, "reason_code": row.reason_code},
            units=int(row.units), return_rate=float(row.rate), expected_rate=float(row.baseline_rate),
            excess_events=float(row.excess_events), excess_cost=float(row.excess_cost),
            q_value=float(row.q_value), z_adjusted=float(row.z_adjusted), dimension=row.dimension,
            windows=windows.describe(),
        )
    return WeakCohortAnalysis(table, windows, weak, table.attrs["phi"], table.attrs["phi_applied"],
                              table.attrs["n_slices"], settings)


def describe(analysis: WeakCohortAnalysis) -> str:
    """What was compared, how many slices, and where overdispersion widened the limits."""
    if analysis.note:
        return f"Nothing compared: {analysis.note}."
    applied = ", ".join(f"{r} (phi {analysis.phi[r]:.1f})" for r in analysis.phi_applied) or "none"
    return (f"Compared {analysis.windows.describe()}; {analysis.n_slices} slices x reasons tested, false discovery "
            f"rate {FDR:.0%}; limits widened for overdispersion in: {applied}.")


def ranking_display(analysis: WeakCohortAnalysis, top: int = 12) -> pd.DataFrame:
    """The slices ranked for a person: flagged first by excess cost, then the most extreme."""
    t = analysis.table.head(top)
    return pd.DataFrame({
        "slice": t.dimension + "=" + t.slice_value,
        "reason": t.reason_code,
        "units": t.units.astype(int),
        "rate %": (t.rate * 100).round(2),
        "own baseline %": (t.baseline_rate * 100).round(2),
        "shrunk %": (t.shrunk_rate * 100).round(2),
        "z (adj.)": t.z_adjusted.round(2),
        "q": t.q_value.round(4),
        "flagged": t.flagged,
        "excess cost": t.excess_cost.round(0),
    })


def matches(table: ibis.Table, filters: dict[str, str]) -> ibis.Value:
    """The engine condition "row belongs to the cohort" for a filter such as {"category": "knitwear"}."""
    cond = ibis.literal(True)
    for col, value in filters.items():
        cond &= table[col].cast("string") == value
    return cond


def structural_view(analysis: WeakCohortAnalysis) -> pd.DataFrame:
    """The weak cohort's reason across its dimension against the *shop* norm (funnel vs overall rate).

    A context view: it shows which slices are structurally high for this reason (with the
    overdispersion adjustment of Spiegelhalter 2005), whereas the weak cohort is chosen on change
    against each slice's own baseline.
    """
    weak = analysis.weak
    t = analysis.table
    t = t[(t.dimension == weak.dimension) & (t.reason_code == weak.reason_code)]
    ft = funnel_table(t[["slice_value", "units", "events", "cost_per_event"]], by=["slice_value"])
    od = ft.attrs.get("overdispersion")
    view = pd.DataFrame({
        weak.dimension: ft.slice_value, "units": ft.units.astype(int), "rate %": (ft.rate * 100).round(2),
        "shop norm %": round(ft.attrs["overall_rate"] * 100, 2), "shrunk %": (ft.shrunk_rate * 100).round(2),
        "z (adj.)": ft.z_adjusted.round(2), "q": ft.q_value.round(4), "above 95 % (adj.)": ft.above_95,
        "above 95 % (binomial only)": ft.above_95_unadjusted,
    })
    view.attrs["phi"] = (od or {}).get("phi")
    return view


def cohort_trend(snap: Snapshot, settings: MetricSettings, weak: WeakCohort) -> pd.DataFrame:
    """Weekly rate of the cohort's reason within its slice, by delivery week (mature or not)."""
    k = settings.return_window_days
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull() & matches(lf, weak.slice_filter))
    units = lf.group_by(lf.delivery_week.name("week_start")).agg(units=lf.units.sum()).to_pandas()
    r = snap.tables["returns"].join(lf.select("line_id", "delivered_ts", "delivery_week"), "line_id")
    r = r.filter((r.reason_code == weak.reason_code) & (r.requested_ts <= r.delivered_ts + ibis.interval(days=k)))
    ev = r.group_by(r.delivery_week.name("week_start")).agg(events=r.quantity.sum()).to_pandas()
    t = units.merge(ev, on="week_start", how="left").fillna({"events": 0})
    t["week_start"] = pd.to_datetime(t["week_start"]).dt.date
    t["rate"] = t["events"] / t["units"]
    t["mature"] = [is_mature(w, "delivery", snap.week, settings) for w in t["week_start"]]
    t["week"] = [str(IsoWeek.of(w)) for w in t["week_start"]]
    return t.sort_values("week_start").reset_index(drop=True)


def cohort_reason_mix(analysis: WeakCohortAnalysis) -> pd.DataFrame:
    """Reason mix of the cohort's slice, window against baseline (shares of returned units)."""
    weak = analysis.weak
    t = analysis.table
    t = t[(t.dimension == weak.dimension) & (t.slice_value == weak.filters[weak.dimension])]
    mix = pd.DataFrame({
        "reason": t.reason_code,
        "window %": t.events / t.events.sum() * 100,
        "baseline %": t.baseline_events / t.baseline_events.sum() * 100,
        "window rate %": t.rate * 100,
        "baseline rate %": t.baseline_rate * 100,
    })
    return mix.sort_values("window %", ascending=False).round(2).reset_index(drop=True)


def top_comments(snap: Snapshot, settings: MetricSettings, analysis: WeakCohortAnalysis, limit: int = 10) -> pd.DataFrame:
    """The most frequent free-text comments of the cohort's returns in the window (untrusted text)."""
    weak = analysis.weak
    k = settings.return_window_days
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull() & lf.delivery_week.isin(list(analysis.windows.window))
                   & matches(lf, weak.slice_filter))
    r = snap.tables["returns"].semi_join(lf, "line_id")
    r = r.filter((r.reason_code == weak.reason_code) & r.reason_text.notnull())
    text = r.reason_text.strip()
    r = r.mutate(comment=text).filter(text != "")
    out = r.group_by("comment").agg(returns=r.count()).order_by([ibis.desc("returns"), "comment"]).limit(limit)
    return out.to_pandas()


def weak_cohort_section(analysis: WeakCohortAnalysis) -> dict[str, Any] | None:
    """The ``weak_cohort`` section of summary.json (None when no cohort stands out)."""
    if analysis.weak is None:
        return None
    w = analysis.weak
    return {"filters": w.filters, "units": w.units, "return_rate": w.return_rate, "expected_rate": w.expected_rate,
            "excess_cost": w.excess_cost, "q_value": w.q_value, "excess_events": w.excess_events,
            "windows": w.windows, "window_weeks": [d.isoformat() for d in analysis.windows.window],
            "phi": analysis.phi.get(f"{w.dimension} x {w.reason_code}"),
            "phi_applied": f"{w.dimension} x {w.reason_code}" in analysis.phi_applied}


def candidates_section(analysis: WeakCohortAnalysis, limit: int = 10) -> list[dict[str, Any]]:
    """The flagged cohorts by excess cost (later steps pick the next one not already under test)."""
    rows = []
    for _, r in analysis.flagged().head(limit).iterrows():
        rows.append({"filters": {r.dimension: r.slice_value, "reason_code": r.reason_code},
                     "excess_cost": float(r.excess_cost), "q_value": float(r.q_value), "units": int(r.units)})
    return jsonable(rows)


def conclusion(analysis: WeakCohortAnalysis) -> str:
    if analysis.note:
        return f"No weak cohort can be named this week: {analysis.note}."
    if analysis.weak is None:
        return (f"No slice stands out this week ({analysis.n_slices} slices tested over {analysis.windows.describe()}, "
                f"none above its own baseline at a false discovery rate of 5 %): no new lever is warranted by the data.")
    w = analysis.weak
    return (f"The weak cohort of the week is {w.label}: {w.return_rate:.1%} of {w.units:,} units returned against "
            f"{w.expected_rate:.1%} normally, about {w.excess_cost:,.0f} of excess return cost over the window "
            f"(q = {w.q_value:.2g}).")
