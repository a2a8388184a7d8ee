"""Decisions: the keep / adjust / stop rule, the status rules of the decision table on small
hand-built MetricResults, and value formatting."""
from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

import pandas as pd
import pytest

from playbook.core.settings import Config, DecisionRow, MetricSettings
from playbook.core.vocabulary import ADJUST, AMBER, CONTINUE, GREEN, KEEP, RED, STOP, UNAVAILABLE
from playbook.core.weeks import IsoWeek
from playbook.metrics.dictionary import SHOP, MetricResults, definitions
from playbook.metrics.rules import metric_statuses, reason_mix_status, triggers
from playbook.stats.sequential import look_boundary
from playbook.steps.verdict import decide

SETTINGS = MetricSettings()  # 8 baseline weeks
DEFS = definitions(SETTINGS)
FIRST = dt.date(2026, 9, 7)  # a Monday (2026-W37)
DEFAULT_RULE = DecisionRow(zone="", metric="", rule="baseline_deviation", action="", params={"amber_z": 2.0, "red_z": 3.0})


# --- building MetricResults by hand -----------------------------------------------------------

def rows(metric: str, values, *, slice_col: str = SHOP, slice_value: str = SHOP, mature=True,
         first: dt.date = FIRST) -> list[dict]:
    """One row per week from ``first``; ``mature`` is one flag for all weeks or one per week."""
    flags = [mature] * len(values) if isinstance(mature, bool) else list(mature)
    out = []
    for i, (v, m) in enumerate(zip(values, flags)):
        monday = first + dt.timedelta(weeks=i)
        out.append({"metric": metric, "week": str(IsoWeek.of(monday)), "week_start": monday, "slice": slice_col,
                    "slice_value": slice_value, "numerator": v * 100, "denominator": 100.0, "value": v, "mature": m})
    return out


def status_of(metric: str, frame_rows: list[dict], row: DecisionRow | None = None, week: IsoWeek | None = None,
              unavailable: dict[str, str] | None = None):
    frame = pd.DataFrame(frame_rows, columns=["metric", "week", "week_start", "slice", "slice_value", "numerator",
                                              "denominator", "value", "mature"])
    if week is None:
        week = IsoWeek.of(max(frame.week_start)) if len(frame) else IsoWeek(2026, 47)
    results = MetricResults(frame, unavailable or {}, {metric: DEFS[metric]}, pd.DataFrame(), week, SETTINGS)
    config = Config(Path("test.yaml"), SETTINGS, (row,) if row else (), DEFAULT_RULE, {})
    (status,) = metric_statuses(results, config)
    return status


def table_row(metric: str, rule: str, **params) -> DecisionRow:
    return DecisionRow(zone=f"zone of {metric}", metric=metric, rule=rule, action=f"act on {metric}", params=params)


# --- decide: keep / adjust / stop ------------------------------------------------------------------

LOWER = dict(good_direction="lower", expected_low=-0.03, expected_high=-0.01)  # e.g. a return rate
HIGHER = dict(good_direction="higher", expected_low=0.01, expected_high=0.03)  # e.g. a conversion rate


def mirror(estimate: float, lo: float, hi: float) -> tuple[float, float, float]:
    return -estimate, -hi, -lo


CASES = {  # in the lower-is-good frame: (estimate, ci_low, ci_high)
    "within": (-0.02, -0.03, -0.01),
    "beyond": (-0.05, -0.07, -0.03),
    "inconclusive": (-0.01, -0.03, 0.01),
    "weaker": (-0.005, -0.009, -0.001),
    "bad": (0.02, 0.01, 0.03),
}


@pytest.fixture(params=["lower", "higher"])
def direction(request):
    """(decide kwargs, case transform) for each good direction."""
    if request.param == "lower":
        return LOWER, lambda c: c
    return HIGHER, lambda c: mirror(*c)


def test_keep_when_the_interval_is_on_the_good_side_and_within_the_expected_range(direction):
    kw, t = direction
    v = decide(*t(CASES["within"]), **kw)
    assert v.decision == KEEP
    assert "within the expected range" in v.why


def test_keep_and_say_so_when_the_effect_is_beyond_the_expected_range(direction):
    kw, t = direction
    v = decide(*t(CASES["beyond"]), **kw)
    assert v.decision == KEEP
    assert "beyond the expected range" in v.why


def test_keep_when_the_estimate_sits_exactly_on_the_weaker_end(direction):
    kw, t = direction
    v = decide(*t((-0.01, -0.015, -0.005)), **kw)
    assert v.decision == KEEP


def test_adjust_when_the_final_look_does_not_show_the_effect(direction):
    kw, t = direction
    v = decide(*t(CASES["inconclusive"]), **kw)
    assert v.decision == ADJUST
    assert v.why.startswith("no effect shown at the planned review")


def test_continue_when_an_interim_look_is_not_conclusive_with_the_next_read(direction):
    kw, t = direction
    look = look_boundary([], 0.4, final=False)
    v = decide(*t(CASES["inconclusive"]), **kw, look=look, next_read=dt.date(2026, 11, 29))
    assert v.decision == CONTINUE and v.readable_on == dt.date(2026, 11, 29)
    assert "not conclusive yet at 40% of the planned information" in v.why


def test_a_real_effect_smaller_than_the_weaker_end_is_kept_with_a_flag(direction):
    # the one rule: the plan powers "past no effect at the boundary"; the estimate reaching the weaker end
    # is not a second condition (it halved the keep rate of a lever exactly at the weaker end)
    kw, t = direction
    v = decide(*t(CASES["weaker"]), **kw)
    assert v.decision == KEEP
    assert any(f.startswith("smaller than planned: check the money case") for f in v.flags)


def test_adjust_on_a_sample_ratio_mismatch_even_with_a_good_interval(direction):
    kw, t = direction
    v = decide(*t(CASES["within"]), **kw, srm=True)
    assert v.decision == ADJUST
    assert "sample ratio mismatch" in v.why


def test_stop_when_the_interval_lies_entirely_on_the_bad_side(direction):
    kw, t = direction
    v = decide(*t(CASES["bad"]), **kw)
    assert v.decision == STOP
    assert "wrong way" in v.why


def test_stop_when_a_guardrail_is_breached_even_with_a_good_primary(direction):
    kw, t = direction
    v = decide(*t(CASES["within"]), **kw, breached_guardrails=["contact_rate"])
    assert v.decision == STOP
    assert "Contact rate" in v.why  # the metric by its name, as the pages say it


def test_adjust_when_no_interval_could_be_computed(direction):
    kw, _ = direction
    v = decide(None, None, None, **kw)
    assert v.decision == ADJUST
    assert "no interval" in v.why


def test_the_bad_side_stops_even_under_a_sample_ratio_mismatch():
    assert decide(*CASES["bad"], **LOWER, srm=True).decision == STOP


def test_the_expected_range_may_be_given_in_either_order():
    swapped = dict(LOWER, expected_low=-0.01, expected_high=-0.03)
    assert decide(*CASES["weaker"], **swapped).flags == decide(*CASES["weaker"], **LOWER).flags
    assert decide(*CASES["within"], **swapped).decision == KEEP


def test_a_ratio_metric_is_judged_against_a_null_of_one():
    kw = dict(good_direction="lower", expected_low=0.7, expected_high=0.9, null_value=1.0)
    assert decide(0.8, 0.7, 0.9, **kw).decision == KEEP
    assert decide(1.2, 1.1, 1.3, **kw).decision == STOP
    assert decide(0.98, 0.95, 1.01, **kw).decision == ADJUST  # the interval reaches no effect (1)


def test_a_verdict_turns_into_a_plain_dict():
    d = decide(*CASES["within"], **LOWER).to_dict()
    assert set(d) == {"decision", "why", "next_step", "flags", "follow_ups", "readable_on", "look", "planned_looks",
                      "k_read", "reasons", "information_fraction", "boundary"}
    assert d["decision"] == "keep" and d["flags"] == [] and d["readable_on"] is None


def test_a_window_that_cannot_be_read_gives_a_provisional_verdict_with_its_date():
    import datetime as dt

    from playbook.core.vocabulary import PROVISIONAL
    from playbook.steps.verdict import WindowRead

    w = WindowRead(14, None, False, dt.date(2026, 12, 6), "too few customers followed 14 days")
    v = decide(*CASES["within"], **LOWER, window=w)
    assert v.decision == PROVISIONAL and v.readable_on == dt.date(2026, 12, 6) and v.k_read is None


def test_a_guardrail_read_as_breached_stops_and_one_likely_harmed_blocks_the_keep():
    from playbook.core.vocabulary import GuardrailState
    from playbook.steps.verdict import GuardrailRead

    breached = GuardrailRead("contact_rate", GuardrailState.BREACHED, "whole interval past +1 point")
    likely = GuardrailRead("contact_rate", GuardrailState.HARM_LIKELY, "estimate past +1 point")
    assert decide(*CASES["within"], **LOWER, guardrails=[breached]).decision == STOP
    assert decide(*CASES["within"], **LOWER, guardrails=[likely]).decision == ADJUST


def test_a_keep_blocker_turns_a_keep_into_adjust_and_says_why():
    v = decide(*CASES["within"], **LOWER, keep_blockers=["few clusters: 12 customers in treatment"])
    assert v.decision == ADJUST and "few clusters" in v.why


# --- rule: bands ------------------------------------------------------------------------------

BANDS = table_row("closure_rate", "bands", red_below=0.80, amber_below=0.90)


@pytest.mark.parametrize("value,expected", [(0.70, RED), (0.79999, RED), (0.80, AMBER), (0.85, AMBER),
                                            (0.90, GREEN), (1.0, GREEN)])
def test_bands_red_below_the_red_line_amber_below_the_amber_line(value, expected):
    assert status_of("closure_rate", rows("closure_rate", [0.95, 0.95, value]), BANDS).status == expected


def test_bands_say_the_value_and_the_line_in_words():
    s = status_of("closure_rate", rows("closure_rate", [0.95, 0.70]), BANDS)
    assert s.why == "70.0 % is below the red line of 80.0 %"
    assert (s.zone, s.action) == ("zone of closure_rate", "act on closure_rate")


# --- rule: week-over-week rise ----------------------------------------------------------------------

RISE = table_row("discount_depth", "week_over_week_rise", red_points=2.0, amber_points=1.0)


@pytest.mark.parametrize("now,expected", [(12.5, RED), (12.0, RED), (11.2, AMBER), (10.5, GREEN), (7.0, GREEN)])
def test_week_over_week_rise_in_points_of_a_points_metric(now, expected):
    assert status_of("discount_depth", rows("discount_depth", [9.0, 10.0, now]), RISE).status == expected


def test_week_over_week_rise_converts_points_to_fractions_for_a_percent_metric():
    row = table_row("return_rate_14d", "week_over_week_rise", red_points=2.0, amber_points=1.0)
    assert status_of("return_rate_14d", rows("return_rate_14d", [0.100, 0.125]), row).status == RED
    assert status_of("return_rate_14d", rows("return_rate_14d", [0.100, 0.112]), row).status == AMBER
    assert status_of("return_rate_14d", rows("return_rate_14d", [0.100, 0.105]), row).status == GREEN


def test_week_over_week_rise_with_a_single_week_has_nothing_to_compare():
    s = status_of("discount_depth", rows("discount_depth", [30.0]), RISE)
    assert s.status == GREEN and "no previous week" in s.why


# --- rule: down consecutive weeks -------------------------------------------------------------------

DOWN = table_row("contribution_per_100_sessions", "down_consecutive_weeks", weeks=2)


@pytest.mark.parametrize("values,expected", [
    ([10.0, 9.0, 8.0], RED),  # down twice in a row
    ([12.0, 10.0, 9.0, 8.0], RED),  # three times
    ([10.0, 11.0, 10.5], AMBER),  # down once
    ([11.0, 9.0, 10.0], GREEN),  # up on the week before, whatever came earlier
    ([10.0, 9.0, 9.0], GREEN),  # equal is not down
])
def test_down_consecutive_weeks_counts_the_latest_run_of_drops(values, expected):
    metric = "contribution_per_100_sessions"
    assert status_of(metric, rows(metric, values), DOWN).status == expected


def test_down_consecutive_weeks_says_how_many_weeks():
    metric = "contribution_per_100_sessions"
    assert "down 3 week(s) in a row" in status_of(metric, rows(metric, [12.0, 10.0, 9.0, 8.0]), DOWN).why


# --- rule: flat while the other rises -------------------------------------------------------------

FLAT = table_row("qualified_conversion_rate", "flat_while_other_rises", other_metric="conversion_rate",
                 flat_within_points=0.5)


def flat_case(qcr, conv, qcr_mature=True):
    return rows("qualified_conversion_rate", qcr, mature=qcr_mature) + rows("conversion_rate", conv)


def test_flat_while_the_other_rises_is_red():
    s = status_of("qualified_conversion_rate", flat_case([0.015, 0.016], [0.020, 0.030]), FLAT)
    assert s.status == RED and s.why.startswith("flat")


def test_falling_while_the_other_rises_is_amber():
    assert status_of("qualified_conversion_rate", flat_case([0.015, 0.005], [0.020, 0.030]), FLAT).status == AMBER


def test_both_flat_is_green():
    assert status_of("qualified_conversion_rate", flat_case([0.015, 0.015], [0.020, 0.021]), FLAT).status == GREEN


def test_rising_with_the_other_is_green():
    assert status_of("qualified_conversion_rate", flat_case([0.015, 0.025], [0.020, 0.030]), FLAT).status == GREEN


def test_flat_compares_the_same_two_weeks_of_both_metrics_when_the_latest_are_not_mature():
    # qualified conversion waits for returns: only its first 3 weeks are mature. Conversion rose between
    # weeks 2 and 3 and stayed flat since; qualified conversion stayed flat between weeks 2 and 3.
    qcr = [0.015, 0.015, 0.0152, 0.030, 0.030]
    conv = [0.020, 0.020, 0.030, 0.030, 0.030]
    s = status_of("qualified_conversion_rate", flat_case(qcr, conv, [True, True, True, False, False]), FLAT)
    assert s.status == RED
    assert s.week == str(IsoWeek.of(FIRST + dt.timedelta(weeks=2)))
    assert "the latest with full follow-up" in s.why


def test_flat_with_one_mature_week_has_nothing_to_compare():
    s = status_of("qualified_conversion_rate", flat_case([0.015, 0.015], [0.02, 0.03], [True, False]), FLAT)
    assert s.status == GREEN and "fewer than two" in s.why


# --- rule: slice spike vs its own baseline -------------------------------------------------------

SPIKE = table_row("return_cost_ratio", "slice_spike_vs_own_baseline", slice="category", z=3.0, min_points=1.0)
CALM = [0.10, 0.11, 0.10, 0.09, 0.10, 0.11, 0.10, 0.09, 0.10]  # 9 weeks; the last 8 are the baseline


def spike_case(knitwear_now, shoes_now=0.05, knit_base=CALM, shoes_base=None, knit_mature=True):
    shoes_base = shoes_base or [0.05] * len(knit_base)
    m = "return_cost_ratio"
    return (rows(m, [0.08] * (len(knit_base) + 1))
            + rows(m, knit_base + [knitwear_now], slice_col="category", slice_value="knitwear", mature=knit_mature)
            + rows(m, shoes_base + [shoes_now], slice_col="category", slice_value="shoes"))


def test_a_slice_far_above_its_own_baseline_is_red_and_named():
    s = status_of("return_cost_ratio", spike_case(0.20), SPIKE)
    assert s.status == RED
    assert "knitwear" in s.why and "shoes" not in s.why


def test_the_spike_z_is_measured_on_the_last_baseline_weeks_of_the_slice():
    s = status_of("return_cost_ratio", spike_case(0.20), SPIKE)
    base = CALM[-8:]
    z = (0.20 - statistics.mean(base)) / statistics.stdev(base)
    assert f"(z = {z:.1f})" in s.why


def test_a_gap_that_is_large_in_points_but_not_in_z_is_green():
    noisy = [0.05, 0.15, 0.02, 0.18, 0.06, 0.16, 0.03, 0.17, 0.08]
    s = status_of("return_cost_ratio", spike_case(0.16, knit_base=noisy), SPIKE)
    assert s.status == GREEN


def test_a_gap_under_the_minimum_points_is_green_even_with_a_flat_baseline():
    # a constant baseline makes any rise infinitely many sd away; 0.5 point is still under the 1-point minimum
    s = status_of("return_cost_ratio", spike_case(0.055, knit_base=[0.05] * 9), SPIKE)
    assert s.status == GREEN


def test_a_slice_with_fewer_than_three_baseline_weeks_is_not_judged():
    s = status_of("return_cost_ratio", spike_case(0.50, knit_base=[0.10, 0.11], shoes_base=[0.05, 0.05]), SPIKE)
    assert s.status == GREEN


def test_an_immature_slice_week_is_not_read_as_a_spike():
    s = status_of("return_cost_ratio", spike_case(0.50, knit_mature=[True] * 9 + [False]), SPIKE)
    assert s.status == GREEN


def test_for_a_higher_is_good_metric_the_spike_is_a_drop():
    row = table_row("delivery_promise_kept", "slice_spike_vs_own_baseline", slice="channel", z=3.0, min_points=1.0)
    m = "delivery_promise_kept"
    base = [0.95, 0.96, 0.95, 0.94, 0.95, 0.96, 0.95, 0.94, 0.95]
    drop = rows(m, [0.9] * 10) + rows(m, base + [0.80], slice_col="channel", slice_value="web")
    rise = rows(m, [0.9] * 10) + rows(m, base + [0.999], slice_col="channel", slice_value="web")
    assert status_of(m, drop, row).status == RED
    assert status_of(m, rise, row).status == GREEN


# --- rule: baseline deviation (the default rule) ---------------------------------------------------

BASE8 = [0.10, 0.12, 0.11, 0.09, 0.10, 0.11, 0.12, 0.09]
MU, SD = statistics.mean(BASE8), statistics.stdev(BASE8)


@pytest.mark.parametrize("k,expected", [(3.5, RED), (2.5, AMBER), (1.0, GREEN), (-5.0, GREEN)])
def test_baseline_deviation_counts_standard_deviations_on_the_bad_side(k, expected):
    # contact_rate has no row here: the default rule applies; lower is better
    assert status_of("contact_rate", rows("contact_rate", BASE8 + [MU + k * SD])).status == expected


def test_baseline_deviation_of_a_higher_is_good_metric_is_red_on_a_drop():
    m = "delivery_promise_kept"
    assert status_of(m, rows(m, BASE8 + [MU - 3.5 * SD])).status == RED
    assert status_of(m, rows(m, BASE8 + [MU + 3.5 * SD])).status == GREEN


def test_the_baseline_is_the_eight_weeks_before_the_week_shown():
    s = status_of("contact_rate", rows("contact_rate", [0.90] + BASE8 + [MU + 3.5 * SD]))  # 0.90: too old to count
    assert s.baseline == pytest.approx(MU)
    assert s.baseline_weeks == 8
    assert s.status == RED


def test_baseline_deviation_needs_three_baseline_weeks():
    s = status_of("contact_rate", rows("contact_rate", [0.10, 0.11, 0.90]))
    assert s.status == GREEN and "fewer than 3 baseline weeks" in s.why


def test_baseline_deviation_on_a_constant_baseline_is_red_for_any_worsening():
    assert status_of("contact_rate", rows("contact_rate", [0.10] * 8 + [0.1001])).status == RED
    assert status_of("contact_rate", rows("contact_rate", [0.10] * 9)).status == GREEN


# --- metric_statuses plumbing -------------------------------------------------------------------

def test_a_metric_without_its_table_is_not_available_with_the_reason():
    s = status_of("conversion_rate", [], unavailable={"conversion_rate": "not available (no sessions table)"})
    assert (s.status, s.why) == (UNAVAILABLE, "not available (no sessions table)")


def test_a_metric_without_any_mature_week_is_not_available():
    s = status_of("return_rate_14d", rows("return_rate_14d", [0.1, 0.2], mature=False))
    assert s.status == UNAVAILABLE and "enough follow-up" in s.why


def test_the_status_is_read_on_the_latest_mature_week_and_says_so():
    values = BASE8 + [MU + 3.5 * SD, 0.0]  # the last week is not mature: its 0.0 must not count
    s = status_of("return_rate_14d", rows("return_rate_14d", values, mature=[True] * 9 + [False]))
    assert s.status == RED
    assert s.week == str(IsoWeek.of(FIRST + dt.timedelta(weeks=8)))
    assert s.value == pytest.approx(MU + 3.5 * SD)
    assert f"(week {s.week}: the latest with full follow-up)" in s.why


def test_a_status_carries_the_numerator_and_denominator_of_its_week():
    s = status_of("closure_rate", rows("closure_rate", [0.95, 0.70]), BANDS)
    assert s.details == {"numerator": pytest.approx(70.0), "denominator": 100.0}


def test_triggers_list_red_statuses_of_decision_table_rows_with_their_action():
    red_row = status_of("closure_rate", rows("closure_rate", [0.95, 0.70]), BANDS)
    red_default = status_of("contact_rate", rows("contact_rate", BASE8 + [MU + 4 * SD]))
    amber_row = status_of("closure_rate", rows("closure_rate", [0.95, 0.85]), BANDS)
    assert red_default.status == RED and amber_row.status == AMBER
    assert triggers([red_row, red_default, amber_row]) == [
        {"zone": "zone of closure_rate", "metric": "closure_rate", "action": "act on closure_rate", "why": red_row.why,
         "owner": None}
    ]


def test_a_status_dict_turns_nan_into_none():
    s = status_of("closure_rate", rows("closure_rate", [0.70]), BANDS)
    s.value = float("nan")
    assert s.to_dict()["value"] is None and s.to_dict()["baseline"] is None


# --- reason mix -----------------------------------------------------------------------------------

def mix_results(weeks: list[dict[str, int]]) -> MetricResults:
    """Shop-wide returned units per reason for consecutive mature delivery weeks from FIRST."""
    rows = []
    for i, units in enumerate(weeks):
        total = sum(units.values())
        rows += [{"week_start": FIRST + dt.timedelta(weeks=i), "reason_code": r, "slice": SHOP, "slice_value": SHOP,
                  "units": u, "share": u / total, "mature": True} for r, u in units.items()]
    return MetricResults(pd.DataFrame(), {}, {}, pd.DataFrame(rows), IsoWeek(2026, 47), SETTINGS)


EVEN = {"size_too_small": 50, "quality": 50}


def test_reason_mix_is_amber_when_a_reason_gains_five_points_on_the_baseline_mix():
    s = reason_mix_status(mix_results([EVEN] * 8 + [{"size_too_small": 60, "quality": 40}]))
    assert s.status == AMBER
    assert s.why == '"size too small" share 60.0 % vs 50.0 % in the baseline'
    assert s.baseline == {"size_too_small": 0.5, "quality": 0.5} and s.baseline_weeks == 8


def test_reason_mix_is_green_when_shares_move_less_than_five_points():
    assert reason_mix_status(mix_results([EVEN] * 8 + [{"size_too_small": 52, "quality": 48}])).status == GREEN


def test_reason_mix_baseline_pools_units_over_the_baseline_weeks():
    # 10 size + 90 quality units, then 90 + 10: pooled 100 / 200 each
    s = reason_mix_status(mix_results([{"size_too_small": 10, "quality": 90}, {"size_too_small": 90, "quality": 10},
                                       EVEN]))
    assert s.baseline == {"size_too_small": 0.5, "quality": 0.5} and s.status == GREEN


def test_reason_mix_without_any_baseline_week_is_not_amber():
    s = reason_mix_status(mix_results([{"size_too_small": 60, "quality": 40}]))
    assert s.status != AMBER


# --- stale series, no data, formats of the flat rule ----------------------------------------------

def test_an_immediate_metric_without_a_value_for_the_week_is_not_available_not_stale():
    # closure_rate needs no follow-up: its last value (W39) is not the status of W41
    s = status_of("closure_rate", rows("closure_rate", [0.95, 0.95, 0.70]), BANDS, week=IsoWeek(2026, 41))
    assert (s.status, s.why) == (UNAVAILABLE, "no data for week 2026-W41 (last data: 2026-W39)")
    assert s.value is None and s.week is None


def test_a_metric_without_any_row_says_no_data_not_follow_up():
    s = status_of("return_rate_14d", [], week=IsoWeek(2026, 47))
    assert (s.status, s.why) == (UNAVAILABLE, "no data up to week 2026-W47")


def test_a_maturity_metric_with_rows_but_no_mature_week_says_follow_up_and_its_last_data():
    s = status_of("return_rate_14d", rows("return_rate_14d", [0.1, 0.2], mature=False))
    assert s.why == "no week with enough follow-up yet (last data: week 2026-W38)"


def test_flat_while_other_rises_writes_the_other_change_in_its_own_format():
    row = table_row("qualified_conversion_rate", "flat_while_other_rises", other_metric="revenue_per_visitor",
                    flat_within_points=0.5)
    frame = rows("qualified_conversion_rate", [0.015, 0.015]) + rows("revenue_per_visitor", [3.00, 4.50])
    s = status_of("qualified_conversion_rate", frame, row)
    assert "while revenue per visitor +EUR 1.50 week over week" in s.why and "150.0" not in s.why


def test_flat_while_other_rises_writes_its_own_change_in_its_own_format():
    row = table_row("discount_depth", "flat_while_other_rises", other_metric="conversion_rate", flat_within_points=0.5)
    frame = rows("discount_depth", [10.0, 10.2]) + rows("conversion_rate", [0.020, 0.030])
    s = status_of("discount_depth", frame, row)
    assert s.why.startswith("flat: discount depth +0.2 points while conversion rate +1.0 points")


def test_flat_while_other_rises_reads_the_flat_threshold_in_each_metrics_own_unit():
    # discount depth (points) flat within 0.5 points; conversion (percent) up 1 point = 0.01 as a fraction
    row = table_row("discount_depth", "flat_while_other_rises", other_metric="conversion_rate", flat_within_points=0.5)
    frame = rows("discount_depth", [10.0, 10.2]) + rows("conversion_rate", [0.020, 0.030])
    assert status_of("discount_depth", frame, row).status == RED


# --- looks, harm stops and delays (issue 19) ---------------------------------------------------------

def test_a_harm_stop_before_the_review_date_needs_the_looks_mirrored_boundary():
    # z = 0.02 / (0.01 / 1.96) = 3.92 on the bad side: past 1.96 but not past an early look's 4.33
    early = look_boundary([], 0.25, final=False)
    assert decide(0.02, 0.01, 0.03, **LOWER, look=early).decision == CONTINUE
    assert decide(0.02, 0.01, 0.03, **LOWER).decision == STOP  # the review date's look: z <= -1.96


def test_a_keep_at_an_early_look_needs_overwhelming_evidence():
    early = look_boundary([], 0.25, final=False)  # O'Brien-Fleming: z >= 4.33 at a quarter of the information
    assert decide(-0.02, -0.03, -0.01, **LOWER, look=early).decision == CONTINUE  # z = 3.92
    assert decide(-0.025, -0.03, -0.02, **LOWER, look=early).decision == KEEP  # z = 9.8


def test_a_possible_delay_waits_for_its_longer_read_then_keeps_only_if_the_gap_holds():
    from playbook.steps.verdict import DelayRead

    pending = DelayRead(True, "treated returns come back later", 28, None, dt.date(2026, 12, 20))
    v = decide(*CASES["within"], **LOWER, delay=pending)
    assert v.decision == CONTINUE and v.readable_on == dt.date(2026, 12, 20) and "28-day window" in v.next_step
    assert decide(*CASES["within"], **LOWER, delay=replace_delay(pending, True)).decision == KEEP
    held = decide(*CASES["within"], **LOWER, delay=replace_delay(pending, False))
    assert held.decision == ADJUST and any("does not hold the gap" in r for r in held.reasons)


def replace_delay(d, confirmed):
    import dataclasses

    return dataclasses.replace(d, confirmed=confirmed)


def test_every_reason_that_applies_is_listed_not_only_the_first():
    from playbook.core.vocabulary import GuardrailState
    from playbook.steps.verdict import GuardrailRead

    guards = (GuardrailRead("contact_rate", GuardrailState.HARM_LIKELY, "harm shown"),
              GuardrailRead("net_revenue_per_customer", GuardrailState.NOT_SHOWN_SAFE, "wide",
                            follow_up_on=dt.date(2027, 1, 4)))
    v = decide(*CASES["within"], **LOWER, srm=True, guardrails=guards)
    assert v.decision == ADJUST
    text = " | ".join(v.reasons)
    assert "sample ratio mismatch" in text and "Contact rate is likely harmed" in text
    assert "Net revenue per assigned customer: not shown safe yet" in text and text.startswith("the primary metric improved")
