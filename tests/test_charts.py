"""The charts state the week's finding (issue 10): titles computed from the inputs, colour-blind palette,
units and % axes, the decision table's lines, shared forest scales, the power curve and the money record.

Every input is built here, small, with the finding known by construction (no weekly run).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib import cbook
from matplotlib.text import Text
from matplotlib.ticker import PercentFormatter

from playbook.config.loader import load_config
from playbook.core.settings import MetricSettings
from playbook.core.vocabulary import Design, Direction
from playbook.core.weeks import IsoWeek
from playbook.journal.entry import COLUMNS
from playbook.journal.track_record import track_record
from playbook.metrics.dictionary import MetricResults, definitions
from playbook.metrics.rules import metric_statuses
from playbook.report import charts
from playbook.stats.power import k_day_read_plan
from playbook.stats.results import Estimate
from playbook.steps.experiments import Comparison, MetricComparison
from playbook.steps.levers import LeverPlan, PowerOption

matplotlib.use("Agg")
CONFIG = load_config()
SETTINGS = MetricSettings()
WEEK = IsoWeek.parse("2026-W47")
MONDAYS = [WEEK.monday - dt.timedelta(days=7 * i) for i in range(11, -1, -1)]  # 12 weeks up to W47
RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


# --- inputs -----------------------------------------------------------------------------------

def _frame(series: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"metric": name, "week": str(IsoWeek.of(d)), "week_start": d, "slice": "all", "slice_value": "all",
             "numerator": v, "denominator": 1.0, "value": v, "mature": True}
            for name, values in series.items() for d, v in zip(MONDAYS, values)]
    return pd.DataFrame(rows)


# four shop-wide metrics, three of them red this week by construction:
#   delivery promise 85 % under its red line of 90 %; contact rate 16 % far above its usual 8 %
#   (default rule: 3 sd); discount depth +3 points on the week before (red from +2);
#   closure rate alternates 100 % / 80 % (its +2 sd band would pass 100 %) and ends at 95 %: green
SERIES = {
    "delivery_promise_kept": [0.96 + 0.005 * RNG.standard_normal() for _ in range(11)] + [0.85],
    "contact_rate": [0.08 + 0.004 * RNG.standard_normal() for _ in range(11)] + [0.16],
    "discount_depth": [9.0 + 0.1 * RNG.standard_normal() for _ in range(11)] + [12.0],
    "closure_rate": [1.0, 0.8] * 5 + [1.0, 0.95],
}
RED_TITLES = {"Delivery promise kept", "Contact rate", "Discount depth"}


def _mix(shop_now: dict[str, float], shop_usual: dict[str, float], by_category: dict[str, dict[str, float]]):
    rows = []
    for i, d in enumerate(MONDAYS[-9:]):
        shop = shop_now if i == 8 else shop_usual
        rows += [{"week_start": d, "reason_code": r, "slice_value": "all", "units": u, "slice": "all"}
                 for r, u in shop.items()]
        rows += [{"week_start": d, "reason_code": r, "slice_value": c, "units": u, "slice": "category"}
                 for c, mix in by_category.items() for r, u in mix.items()]
    mix = pd.DataFrame(rows)
    mix["share"] = mix["units"] / mix.groupby(["week_start", "slice", "slice_value"])["units"].transform("sum")
    mix["mature"] = True
    return mix


SHOP_USUAL = {"size_too_small": 20.0, "changed_mind": 50.0, "quality": 30.0}
SHOP_NOW = {"size_too_small": 40.0, "changed_mind": 35.0, "quality": 25.0}  # size: 20 % -> 40 %
BY_CATEGORY = {"knitwear": {"size_too_small": 30.0, "changed_mind": 10.0, "quality": 10.0},
               "$5 off$": {"size_too_small": 5.0, "changed_mind": 40.0, "quality": 5.0}}


def _results(series=SERIES, mix=None) -> MetricResults:
    defs = definitions(SETTINGS)
    names = list(series)
    if mix is not None:
        names.append("reason_mix")
    empty_mix = pd.DataFrame(columns=["week_start", "reason_code", "slice_value", "units", "slice", "share", "mature"])
    return MetricResults(_frame(series), {}, {n: defs[n] for n in names},
                         mix if mix is not None else empty_mix, WEEK, SETTINGS)


@pytest.fixture(scope="module")
def trends():
    results = _results()
    statuses = metric_statuses(results, CONFIG)
    return charts.metric_trends(results, CONFIG, statuses), results


def _panel(fig, title: str):
    return next(ax for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left").endswith(title))


def _lines(ax, gid: str):
    return [line for line in ax.lines if (line.get_gid() or "") == gid]


# --- theme ------------------------------------------------------------------------------------

def test_the_palette_is_seaborns_colorblind_and_the_theme_cycles_through_it():
    expected = sns.color_palette("colorblind").as_hex()
    assert charts.PALETTE.as_hex() == expected
    cycle = [matplotlib.colors.to_hex(c["color"]) for c in matplotlib.rcParams["axes.prop_cycle"]]
    assert cycle == expected


def test_a_status_is_told_by_marker_and_word_not_by_colour_alone():
    markers = {m for _, m, _ in charts.STATUS_STYLE.values()}
    labels = {w.lower() for _, _, w in charts.STATUS_STYLE.values()}
    assert len(markers) == 3 and labels == {"red", "amber", "green"}


# --- step 1: trends ---------------------------------------------------------------------------

def test_the_trend_title_counts_and_names_the_red_metrics_of_the_week(trends):
    fig, _ = trends
    title = fig._suptitle.get_text().replace("\n", " ")
    assert title.startswith(f"{len(RED_TITLES)} of {len(SERIES)} metrics are red this week")
    assert all(name in title for name in RED_TITLES)
    assert "Action closure rate" not in title


def test_the_trend_panels_use_the_dictionary_titles_never_the_ids(trends):
    fig, _ = trends
    titles = " ".join(ax.get_title(loc="left") for ax in fig.axes)
    assert not any(name in titles for name in SERIES)


def test_exactly_the_red_metrics_are_marked_red_in_word_and_marker(trends):
    fig, _ = trends
    marked = {ax.get_title(loc="left").removeprefix("RED: ") for ax in fig.axes if _lines(ax, "status:red")}
    assert marked == RED_TITLES
    assert all(_panel(fig, t).get_title(loc="left").startswith("RED") for t in RED_TITLES)


def test_rate_axes_are_formatted_as_percentages(trends):
    fig, _ = trends
    for title in ("Delivery promise kept", "Contact rate", "Action closure rate"):
        assert isinstance(_panel(fig, title).yaxis.get_major_formatter(), PercentFormatter)
    assert not isinstance(_panel(fig, "Discount depth").yaxis.get_major_formatter(), PercentFormatter)


def test_a_rates_band_never_passes_100_percent(trends):
    fig, _ = trends
    ax = _panel(fig, "Action closure rate")
    band = next(p for p in ax.patches if p.get_gid() == "band")
    top = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1].max()
    assert top <= 100.0
    assert ax.get_ylim()[1] <= 100.0


def test_the_bands_rule_draws_its_red_and_amber_lines_in_percent(trends):
    fig, _ = trends
    ax = _panel(fig, "Delivery promise kept")
    assert [line.get_ydata()[0] for line in _lines(ax, "threshold:red")] == pytest.approx([90.0])
    assert [line.get_ydata()[0] for line in _lines(ax, "threshold:amber")] == pytest.approx([95.0])


def test_the_default_rule_draws_its_lines_3_and_2_sd_above_the_usual_rate(trends):
    fig, _ = trends
    base = np.array(SERIES["contact_rate"][-9:-1]) * 100  # the 8 weeks before this one
    mu, sd = base.mean(), base.std(ddof=1)
    ax = _panel(fig, "Contact rate")
    assert _lines(ax, "threshold:red")[0].get_ydata()[0] == pytest.approx(mu + 3 * sd)
    assert _lines(ax, "threshold:amber")[0].get_ydata()[0] == pytest.approx(mu + 2 * sd)


def test_the_week_over_week_rule_draws_its_line_from_the_week_before(trends):
    fig, _ = trends
    line = _lines(_panel(fig, "Discount depth"), "threshold:red")[0]
    assert line.get_ydata()[0] == pytest.approx(SERIES["discount_depth"][-2] + 2.0)
    assert line.get_xdata()[0] == MONDAYS[-2]


def test_every_panel_with_a_decision_rule_shows_it():
    results = _results({"return_cost_ratio": [0.17] * 12, "contribution_per_100_sessions": [80.0] * 12})
    fig = charts.metric_trends(results, CONFIG, metric_statuses(results, CONFIG))
    for title in ("Return cost ratio", "Contribution per 100 sessions"):
        ax = _panel(fig, title)
        assert ax.xaxis.label.get_gid() == "rule-words" and "red:" in ax.get_xlabel(), f"{title}: rule not shown"


# --- step 1: reason mix -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mix_fig():
    results = _results({"closure_rate": SERIES["closure_rate"]}, _mix(SHOP_NOW, SHOP_USUAL, BY_CATEGORY))
    return charts.reason_mix_by(results, "category")


def test_the_reason_mix_title_names_the_reason_that_rose_with_its_shares(mix_fig):
    title = mix_fig.axes[0].get_title(loc="left").replace("\n", " ")
    now = SHOP_NOW["size_too_small"] / sum(SHOP_NOW.values())
    usual = SHOP_USUAL["size_too_small"] / sum(SHOP_USUAL.values())
    knit = BY_CATEGORY["knitwear"]
    assert title.startswith(f"Size too small: {now:.0%}".replace("%", " %"))
    assert f"vs {usual * 100:.0f} % usual" in title
    assert f"knitwear ({knit['size_too_small'] / sum(knit.values()) * 100:.0f} %)" in title


def test_the_weak_reason_is_highlighted_in_a_strong_colour_not_grey(mix_fig):
    ax = mix_fig.axes[0]
    strong = [p for p in ax.patches if p.get_gid() == "reason:size_too_small"]
    others = [p for p in ax.patches if (p.get_gid() or "").startswith("reason:") and p not in strong]
    assert strong and all(matplotlib.colors.to_hex(p.get_facecolor()) == charts.VERMILLION for p in strong)
    assert all(p.get_hatch() for p in strong) and not any(p.get_hatch() for p in others)
    palette = set(sns.color_palette("colorblind").as_hex())
    assert {matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches if p.get_gid()} <= palette
    assert charts.GREY not in {matplotlib.colors.to_hex(p.get_facecolor()) for p in strong}


def test_the_reason_mix_axis_is_a_percentage_up_to_100(mix_fig):
    ax = mix_fig.axes[0]
    assert isinstance(ax.xaxis.get_major_formatter(), PercentFormatter) and ax.get_xlim() == (0, 100)


def test_a_category_with_dollar_signs_is_drawn_as_text(mix_fig):
    labels = [t.get_text() for t in mix_fig.axes[0].get_yticklabels()]
    assert any("5 off" in t for t in labels) and not any(cbook.is_math_text(t) for t in labels)
    mix_fig.savefig(io.BytesIO(), format="png")


# --- step 2: funnel ---------------------------------------------------------------------------

def _analysis(n_flagged: int = 6):
    n = 40
    expected = np.r_[np.full(n_flagged, 100.0) * (1 + 0.02 * np.arange(n_flagged)), np.geomspace(1, 300, n)]
    ratio = np.r_[np.full(n_flagged, 1.6) + 0.01 * np.arange(n_flagged), np.ones(n)]
    table = pd.DataFrame({
        "dimension": "category", "slice_value": [f"cat{i}" for i in range(n_flagged)] + ["$x$"] * n,
        "reason_code": "size_too_small", "expected_events": expected, "ratio": ratio,
        "flagged": [True] * n_flagged + [False] * n, "units": 1000.0, "baseline_units": 2000.0,
        "excess_cost": np.r_[np.arange(n_flagged, 0, -1) * 100.0, np.zeros(n)],
    })
    weak = SimpleNamespace(label="category=cat0 x size_too_small", dimension="category", slice_value="cat0",
                           reason_code="size_too_small", return_rate=0.16, expected_rate=0.10)
    return SimpleNamespace(table=table, weak=weak, note=None)


def test_the_funnel_labels_only_the_top_flagged_slices_and_they_do_not_overlap():
    fig = charts.funnel_plot(_analysis(), label_top=4)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == "point-label"]
    assert [t.get_text() for t in labels] == [f"cat{i} x size too small" for i in range(4)]
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, without its arrow
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_the_funnel_title_states_the_weak_cohort_and_its_ratio():
    title = charts.funnel_plot(_analysis()).axes[0].get_title(loc="left").replace("\n", " ")
    assert title.startswith(f'Weak cohort: cat0 returned as "size too small", at {0.16 / 0.10:.1f} times its own baseline')


# --- step 4: forest plot ----------------------------------------------------------------------

def _est(estimate, low, high, null=0.0):
    return Estimate(estimate, low, high, "delta", 500, null_value=null)


def _comparison(eid: str, primary: float, contact: float, revenue: float) -> Comparison:
    p = MetricComparison("return_rate_14d", _est(primary, primary - 0.01, primary + 0.01), Direction.LOWER,
                         "primary", expected_low=-0.06, expected_high=-0.02)
    g1 = MetricComparison("contact_rate", _est(contact, contact - 0.005, contact + 0.005), Direction.LOWER,
                          "guardrail", tolerance=0.01)
    g2 = MetricComparison("net_revenue_per_customer", _est(revenue, revenue - 1, revenue + 1), Direction.HIGHER,
                          "guardrail", tolerance=2.0)
    return Comparison({"experiment_id": eid}, Design.RANDOMIZED, p, [g1, g2])


# A: primary -4 points (inside -6..-2), contact +2 points (past its +1 tolerance); B: primary -1 (outside)
FOREST = [_comparison("EXP-A", -0.04, 0.02, 0.5), _comparison("EXP-$B$", -0.01, -0.001, -0.3)]


@pytest.fixture(scope="module")
def forest():
    return charts.forest_plot(FOREST, CONFIG)


def _forest_panels(fig, title: str):
    return [ax for ax in fig.axes if ax.get_title(loc="left").endswith(title)]


def test_a_metrics_forest_panels_share_one_x_scale(forest):
    for title in ("Return rate within 14 days of delivery", "Contact rate", "Net revenue per assigned customer"):
        panels = _forest_panels(forest, title)
        assert len(panels) == 2 and panels[0].get_xlim() == panels[1].get_xlim()


def test_forest_axes_carry_units_points_for_rates_and_the_currency_for_money(forest):
    assert "(points)" in _forest_panels(forest, "Contact rate")[0].get_xlabel()
    assert f"({CONFIG.currency})" in _forest_panels(forest, "Net revenue per assigned customer")[0].get_xlabel()


def test_the_better_side_is_marked_by_the_metrics_good_direction(forest):
    def better(ax):
        return next(t.get_text() for t in ax.texts if t.get_gid() == "better")
    assert better(_forest_panels(forest, "Contact rate")[0]) == "← better"
    assert better(_forest_panels(forest, "Net revenue per assigned customer")[0]) == "better →"


def test_the_expected_range_and_the_harm_beyond_the_tolerance_are_shaded_in_the_panels_unit(forest):
    primary = _forest_panels(forest, "Return rate within 14 days of delivery")[0]
    band = next(p for p in primary.patches if p.get_gid() == "expected")
    xs = band.get_path().transformed(band.get_patch_transform()).vertices[:, 0]
    assert (xs.min(), xs.max()) == pytest.approx((-6.0, -2.0))
    guard = _forest_panels(forest, "Contact rate")[0]
    harm = next(p for p in guard.patches if p.get_gid() == "tolerance")
    xs = harm.get_path().transformed(harm.get_patch_transform()).vertices[:, 0]
    assert xs.min() == pytest.approx(1.0) and xs.max() == pytest.approx(guard.get_xlim()[1])


def test_the_forest_title_counts_primaries_inside_their_range_and_guardrails_past_tolerance(forest):
    inside = sum(-0.06 <= c.primary.estimate.estimate <= -0.02 for c in FOREST)
    harmed = sum(g.estimate.estimate > g.tolerance for c in FOREST for g in c.guardrails[:1])
    title = forest._suptitle.get_text().replace("\n", " ")
    assert f"{inside} inside the expected range" in title and f"{harmed} guardrail(s) past their tolerance" in title


def test_an_experiment_id_with_dollar_signs_is_drawn_as_text(forest):
    assert not any(cbook.is_math_text(ax.get_title(loc="left")) for ax in forest.axes)
    forest.savefig(io.BytesIO(), format="png")


# --- step 3: power curve ----------------------------------------------------------------------

def _plan(kplan, weekly_units: float) -> LeverPlan:
    option = PowerOption("as_planned", "as planned", "category=knitwear", -0.05, -0.02, kplan.expected_change,
                         kplan.base_rate, weekly_units, 1.2, kplan.weeks, kplan.weeks_uncapped, kplan.achieved_power,
                         0.5, kplan.reachable, power_by_week=tuple(r.power for r in kplan.by_week))
    start = dt.date(2026, 11, 23)
    weeks = kplan.weeks or kplan.max_weeks
    return LeverPlan("EXP-1", "fit_size_message", "", "category=knitwear", "size_too_small", Design.RANDOMIZED, "",
                     "return_rate_14d", Direction.LOWER, -0.05, -0.02, start, start + dt.timedelta(days=7 * weeks),
                     kplan.base_rate, weekly_units, None, kplan.weeks or kplan.weeks_uncapped, kplan.message,
                     underpowered=not kplan.reachable, options=(option,),
                     chosen_option="as_planned" if kplan.reachable else None)


def test_the_power_curve_rises_with_the_weeks_and_crosses_80_percent_at_the_plans_review():
    kplan = k_day_read_plan(0.10, -0.02, 1200.0, 14, 1.2, max_weeks=8)
    assert kplan.reachable and 2 < kplan.weeks < 8  # an input where the crossing is inside the chart
    plan = _plan(kplan, 2400.0)
    ax = charts.power_curve(plan).axes[0]
    curve = _lines(ax, "power:as_planned")[0]
    weeks, power = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    assert np.all(np.diff(power) >= 0) and power[-1] > power[0]
    assert weeks[np.argmax(power >= 80.0)] == kplan.weeks
    assert _lines(ax, "review")[0].get_xdata()[0] == kplan.weeks
    assert f"after {kplan.weeks} week(s)" in ax.get_title(loc="left").replace("\n", " ")
    assert isinstance(ax.yaxis.get_major_formatter(), PercentFormatter)


def test_a_plan_that_cannot_reach_power_says_so_in_its_title():
    kplan = k_day_read_plan(0.10, -0.005, 200.0, 14, 1.2, max_weeks=8)
    assert not kplan.reachable
    title = charts.power_curve(_plan(kplan, 400.0)).axes[0].get_title(loc="left").replace("\n", " ")
    assert title.startswith(f"Not ready: {kplan.achieved_power:.0%} power after the longest run of 8 weeks")


# --- step 5: track record in money ------------------------------------------------------------

def _journal(tmp_path, rows: list[dict]) -> None:
    frame = pd.DataFrame([{c: r.get(c, "") for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    frame.to_csv(tmp_path / "decisions.csv", index=False)


VERDICTS = [  # week, id, decision, money per week, its interval
    ("2026-W44", "EXP-K1", "keep", 300.0, 100.0, 500.0),
    ("2026-W45", "EXP-S1", "stop", -120.0, -200.0, -40.0),
    ("2026-W46", "EXP-K2", "keep", 200.0, 50.0, 350.0),
    ("2026-W47", "EXP-A1", "adjust", 40.0, -60.0, 140.0),
]


@pytest.fixture
def record(tmp_path):
    _journal(tmp_path, [{"week": w, "kind": "verdict", "experiment_id": e, "decision": d, "money_per_week": m,
                         "money_ci_low": lo, "money_ci_high": hi, "recorded_at": "2026-11-20T09:00:00Z"}
                        for w, e, d, m, lo, hi in VERDICTS])
    return track_record(tmp_path, "2026-W47")


def test_the_track_record_title_states_the_kept_levers_saving_with_the_currency(record):
    kept = sum(m for _, _, d, m, _, _ in VERDICTS if d == "keep")
    title = charts.track_record_chart(record, "CHF").axes[0].get_title(loc="left").replace("\n", " ")
    assert title.startswith(f"Kept levers save about CHF {kept:,.0f} a week (CHF ")
    assert "2 kept, 1 adjusted, 1 stopped" in title


def test_the_running_total_adds_each_kept_levers_saving_from_its_week(record):
    ax = charts.track_record_chart(record, "EUR").axes[0]
    total = _lines(ax, "kept-total")[0]
    assert list(total.get_ydata()) == pytest.approx([300.0, 300.0, 500.0, 500.0])
    assert ax.yaxis.get_major_formatter()(500.0, 0).startswith("EUR")


def test_money_ticks_read_like_the_pages_cents_only_on_an_axis_of_small_amounts(record):
    ax = charts.track_record_chart(record, "EUR").axes[0]
    fmt = ax.yaxis.get_major_formatter()
    ax.set_ylim(-250, 600)  # amounts of hundreds: whole euros, a loss with its minus first
    assert (fmt(500.0, 0), fmt(-200.0, 0), fmt(2.5, 0)) == ("EUR 500", "-EUR 200", "EUR 2")
    ax.set_ylim(0, 8)  # a few euros: the cents matter
    assert (fmt(2.5, 0), fmt(0.0, 0)) == ("EUR 2.50", "EUR 0.00")


def test_a_stopped_lever_is_drawn_with_its_own_marker(record):
    ax = charts.track_record_chart(record, "EUR").axes[0]
    stopped = [c for c in ax.containers if c.get_label() == "stopped"]
    kept = [c for c in ax.containers if c.get_label() == "kept"]
    assert stopped and kept and stopped[0].lines[0].get_marker() != kept[0].lines[0].get_marker()


def test_an_empty_record_draws_and_says_so(tmp_path):
    _journal(tmp_path, [])
    fig = charts.track_record_chart(track_record(tmp_path, "2026-W47"), "EUR")
    assert fig.axes[0].get_title(loc="left").startswith("No lever reviewed")
    fig.savefig(io.BytesIO(), format="png")


def test_a_plan_dataclass_field_for_the_curve_is_kept_out_of_summary_json():
    from playbook.core.jsonmodel import to_json

    option = dataclasses.replace(_plan(k_day_read_plan(0.1, -0.02, 800.0, 14), 1600.0).options[0])
    assert "power_by_week" not in to_json(option) and option.power_by_week
