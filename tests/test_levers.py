"""Step 3: the lever plan for a weak cohort, on the tiny shop (volumes counted by hand)."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY_SHOP, write_shop
from section_examples import candidate, read, weak_cohort

from playbook.config.loader import load_config
from playbook.core.settings import MetricSettings
from playbook.core.vocabulary import Design
from playbook.core.weeks import IsoWeek
from playbook.data.contract import DESIGNS, PLAN_COLUMNS, SELECTION_COLUMNS, TABLES, parse_cohort
from playbook.data.dataset import open_dataset
from playbook.journal.under_test import CohortInTest
from playbook.stats.power import k_day_read_plan
from playbook.stats.sequential import spending_boundaries
from playbook.steps.levers import (
    MAX_PLANNED_LOOKS,
    analyse,
    cohort_clustering,
    cohort_volume,
    conclusion,
    design_lever,
    experiments_table,
    guardrail_powers,
    journal_entry,
    options_table,
    write_experiments_row,
)

W45, W46 = dt.date(2026, 11, 2), dt.date(2026, 11, 9)
WEAK = read("weak_cohort", weak_cohort(filters={"category": "knitwear", "reason_code": "size_too_small"},
                                       return_rate=0.30, expected_rate=0.10, window_weeks=["2026-11-02"]))


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("tiny") / "shop")).as_of("2026-W47")


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def plan(snap, config):
    return design_lever(WEAK, snap, config)


# the sample shop's weak cohort (notebook 02 on 2026-W47): knitwear x size_too_small
SAMPLE_WEAK = read("weak_cohort", weak_cohort(
    filters={"category": "knitwear", "reason_code": "size_too_small"}, return_rate=0.0972, expected_rate=0.0401,
    window_weeks=["2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02"],
    baseline_weeks=[(dt.date(2026, 8, 17) + dt.timedelta(days=7 * i)).isoformat() for i in range(8)]))
#: the experiments table's columns a plan writes: the contract's, then the weeks step 2 read
ROW_COLUMNS = [*TABLES["experiments"].column_names, *SELECTION_COLUMNS, *PLAN_COLUMNS]


@pytest.fixture(scope="module")
def sample_snap():
    return open_dataset(REPO_ROOT / "data_samples").as_of("2026-W47")


@pytest.fixture(scope="module")
def ready(sample_snap, config):
    """A lever bold enough for its cohort: -10 to -30 points is detected within the 8 weeks."""
    return design_lever(SAMPLE_WEAK, sample_snap, config, expected_low=-0.30, expected_high=-0.10)


def test_the_default_expected_range_removes_30_to_70_percent_of_the_excess_rate(plan):
    excess = 0.30 - 0.10
    assert plan.expected_low == pytest.approx(-0.7 * excess)
    assert plan.expected_high == pytest.approx(-0.3 * excess)


def test_a_range_given_by_the_analyst_is_kept_and_put_in_order(snap, config):
    p = design_lever(WEAK, snap, config, expected_low=-0.02, expected_high=-0.05)
    assert (p.expected_low, p.expected_high) == (-0.05, -0.02)


def test_a_cohort_below_its_norm_gets_an_empty_range_not_a_positive_one(snap, config):
    p = design_lever(dataclasses.replace(WEAK, return_rate=0.05), snap, config)
    assert p.expected_low == 0 and p.expected_high == 0


def test_the_lever_defaults_to_the_configured_lever_of_the_reason(plan, config):
    assert plan.lever == "fit_size_message"
    assert plan.lever_description == config.levers["size_too_small"]["description"]


def test_a_lever_named_by_the_analyst_replaces_the_default(snap, config):
    p = design_lever(WEAK, snap, config, lever="size chart v2")
    assert p.lever == p.lever_description == "size chart v2"
    assert p.experiment_id.endswith("-SIZE-CHART-V2")


def test_the_test_starts_the_monday_after_the_week_with_a_first_look_at_j7(plan):
    assert plan.start_date == dt.date(2026, 11, 23) and plan.start_date.isoweekday() == 1
    assert plan.first_look_date == plan.start_date + dt.timedelta(days=7)


def test_the_review_is_the_first_weekly_review_whose_k_day_read_has_80_percent_power(ready):
    assert ready.ready and ready.chosen_option == "as_planned"
    assert ready.review_date == ready.start_date + dt.timedelta(days=7 * ready.weeks_needed)
    weeks = k_day_read_plan(ready.base_rate, ready.expected_high, ready.weekly_units / 2, 14,
                            ready.design_effect).by_week
    assert weeks[ready.weeks_needed - 1].power >= 0.8 > weeks[ready.weeks_needed - 2].power
    assert ready.first_look_date < ready.review_date


def test_at_the_review_only_units_delivered_k_days_before_count(ready):
    run_days = 7 * ready.weeks_needed
    assert ready.mature_share_at_review == pytest.approx((run_days - 14) / run_days)


# a modest lever on the sample shop: -2 to -3 points reach 80 % power in 21 weeks as planned, 11 at the stronger end
MODEST = dict(expected_low=-0.03, expected_high=-0.02)


def test_a_plan_that_cannot_reach_power_writes_no_row(sample_snap, config, tmp_path):
    p = design_lever(SAMPLE_WEAK, sample_snap, config, **MODEST)
    assert p.underpowered and not p.ready and p.experiments_row() is None
    assert p.weeks_needed > config.experiments.max_weeks
    stale = tmp_path / "experiments_plan.csv"
    stale.write_text("left by an earlier run\n")
    written = write_experiments_row(p, tmp_path)
    assert written.path is None and not stale.exists()
    assert "cannot reach 80% power within 8 weeks" in written.message
    assert experiments_table(p).empty and "No experiment is ready this week" in conclusion(p)


def test_every_alternative_carries_its_power_and_duration(sample_snap, config):
    p = design_lever(SAMPLE_WEAK, sample_snap, config, **MODEST)
    kinds = [o.kind for o in p.options]
    assert kinds == ["as_planned", "widened", "bigger_lever", "longer_run"]
    assert all(o.power is not None and 0 < o.power < 0.8 for o in p.options)
    widened = p.options[1]
    assert widened.cohort == "" and widened.weekly_units > p.weekly_units
    longer = p.options[-1]
    assert longer.weeks_uncapped == p.weeks_needed > 8 and not longer.reaches_power
    assert list(options_table(p)["option"]) == kinds


def test_a_plan_that_misses_power_takes_the_bigger_lever_when_that_reaches_it(sample_snap, config):
    p = design_lever(SAMPLE_WEAK, sample_snap, config, expected_low=-0.04, expected_high=-0.02)
    assert p.underpowered and p.ready and p.chosen_option == "bigger_lever"
    chosen = next(o for o in p.options if o.kind == "bigger_lever")
    assert chosen.expected_change == -0.04 and chosen.power >= 0.8
    assert p.review_date == p.start_date + dt.timedelta(days=7 * chosen.weeks)
    assert p.experiments_row()["review_date"] == p.review_date.isoformat()


def test_a_longer_maximum_duration_lets_the_plan_run_as_planned(sample_snap, config):
    longer = dataclasses.replace(config, experiments=dataclasses.replace(config.experiments, max_weeks=24))
    p = design_lever(SAMPLE_WEAK, sample_snap, longer, **MODEST)
    assert p.chosen_option == "as_planned" and 8 < p.weeks_needed <= 24


def test_pooling_takes_the_next_flagged_cohort_of_the_same_lever_and_dimension(sample_snap, config):
    candidates = read("weak_cohort_candidates", [
        candidate(filters=SAMPLE_WEAK.filters, excess_cost=5000.0),
        candidate(filters={"customer_type": "first_time", "reason_code": "size_too_small"}, excess_cost=3000.0),
        candidate(filters={"category": "shoes", "reason_code": "size_too_large"}, excess_cost=1000.0)])
    p = design_lever(SAMPLE_WEAK, sample_snap, config, candidates=candidates)
    pooled = next(o for o in p.options if o.kind == "pooled")
    assert pooled.cohort == "category=knitwear + category=shoes" and not pooled.can_be_a_row
    assert pooled.weekly_units > p.options[0].weekly_units


def test_cohort_clustering_on_the_tiny_shop_by_hand(snap):
    # knitwear delivered in W45: C1 has L1 (2 units, 1 returned within 14 days), C2 has L3 (1 unit, R2 too late).
    # R = 1/3; sum (r - R u)^2 = 2/9; x G/(G-1) = 4/9; over R(1-R) sum u = 2/3: raw design effect 2/3.
    c = cohort_clustering(snap, 14, {"category": "knitwear"}, [W45])
    assert (c.customers, c.units, c.returned) == (2, 3.0, 1.0)
    assert c.details["raw_design_effect"] == pytest.approx(2 / 3) and c.design_effect == 1.0
    assert c.units_per_customer == pytest.approx(5 / 3) and c.icc == pytest.approx(-0.5)


def test_the_design_effect_of_the_sample_cohort_exceeds_one(ready):
    assert ready.design_effect > 1.05 and ready.icc > 0


def test_the_experiment_id_names_the_start_week_the_cohort_and_the_lever(plan):
    assert plan.experiment_id == "EXP-2026-W48-KNITWEAR-FIT-SIZE-MESSAGE"


def test_the_primary_metric_is_the_return_rate_of_the_configured_window(snap, config, plan):
    assert plan.primary_metric == "return_rate_14d" and plan.good_direction == "lower"
    seven = dataclasses.replace(config, metrics=MetricSettings(return_window_days=7))
    assert design_lever(WEAK, snap, seven).primary_metric == "return_rate_7d"


def test_the_cohort_is_the_slice_without_the_reason(plan):
    assert plan.cohort == "category=knitwear" and plan.reason_code == "size_too_small"


def test_cohort_volume_counts_units_per_week_and_their_return_rate_on_the_tiny_shop(snap):
    # knitwear delivered in W45: L1 (2 units, 1 returned within 14 days by R1) and L3 (1 unit; R2 after the cut)
    assert cohort_volume(snap, 14, {"category": "knitwear"}, [W45]) == (3.0, pytest.approx(1 / 3))
    # W45 + W46 adds L4 (1 unit, returned by R4 two days after delivery): 4 units over 2 weeks, 2 returned
    assert cohort_volume(snap, 14, {"category": "knitwear"}, [W45, W46]) == (2.0, pytest.approx(0.5))


def test_cohort_volume_of_an_empty_cohort_has_no_rate(snap):
    units, rate = cohort_volume(snap, 14, {"category": "swimwear"}, [W45])
    assert units == 0 and rate != rate  # NaN


def test_the_plan_records_the_cohort_volume(plan):
    assert plan.weekly_units == 3.0 and plan.base_rate == pytest.approx(1 / 3)


def test_the_experiment_row_has_exactly_the_contract_columns_in_order(ready):
    assert list(ready.experiments_row()) == ROW_COLUMNS
    assert list(experiments_table(ready).columns) == ROW_COLUMNS


def test_the_experiment_row_records_the_weeks_step_2_read(ready):
    # step 2's baseline 2026-08-17 (W34) to 2026-10-05 (W41), its window 2026-10-12 (W42) to 2026-11-02 (W45)
    row = ready.experiments_row()
    assert [row[c] for c in SELECTION_COLUMNS] == ["2026-W34", "2026-W42", "2026-W45"]


def test_a_plan_from_a_summary_without_step_2s_baseline_records_no_selection_weeks(sample_snap, config):
    older = dataclasses.replace(SAMPLE_WEAK, baseline_weeks=None)
    p = design_lever(older, sample_snap, config, expected_low=-0.30, expected_high=-0.10)
    assert p.selection is None and list(p.experiments_row()) == [*TABLES["experiments"].column_names, *PLAN_COLUMNS]


def test_the_journal_entry_of_a_plan_names_the_weeks_step_2_read(ready):
    assert "chosen on delivery weeks 2026-W34 to 2026-W45, window from 2026-W42" in journal_entry(ready, "2026-W47").why


def test_the_experiment_row_values_follow_the_contract(ready):
    row = ready.experiments_row()
    assert row["design"] in DESIGNS
    assert parse_cohort(row["cohort"]) == {"category": "knitwear"}
    assert (row["start_date"], row["review_date"]) == ("2026-11-23", ready.review_date.isoformat())
    assert row["expected_low"] == pytest.approx(-0.30) and row["expected_high"] == pytest.approx(-0.10)
    assert row["primary_metric"] == "return_rate_14d"


def test_a_ready_plan_writes_its_row(ready, tmp_path):
    written = write_experiments_row(ready, tmp_path)
    assert written.path == tmp_path / "experiments_plan.csv"
    assert written.path.read_text().splitlines()[0].split(",") == ROW_COLUMNS


def test_the_experiment_row_passes_validation_when_added_to_the_data(ready, tmp_path):
    folder = write_shop(tmp_path / "shop", TINY_SHOP)
    write_experiments_row(ready, tmp_path).path.replace(folder / "experiments.csv")  # the plan CSV, as written
    ds = open_dataset(folder)
    e = ds.tables["experiments"].to_pandas()
    assert list(e["experiment_id"]) == [ready.experiment_id]
    assert list(e.loc[0, list(SELECTION_COLUMNS)]) == ["2026-W34", "2026-W42", "2026-W45"]
    assert not [w for w in ds.warnings if w.table == "experiments" and "missing" not in w.rule]


def test_guardrails_follow_the_design(snap, config, plan):
    assert plan.guardrails == config.experiments.guardrails["randomized"]
    pp = design_lever(WEAK, snap, config, design="pre_post")
    assert pp.guardrails == config.experiments.guardrails["pre_post"] and pp.design == "pre_post"


def test_a_pre_post_plan_counts_the_whole_cohort_per_week_and_a_randomized_one_half(sample_snap, config, ready):
    pp = design_lever(SAMPLE_WEAK, sample_snap, config, design="pre_post", expected_low=-0.06, expected_high=-0.04)
    ab = design_lever(SAMPLE_WEAK, sample_snap, config, expected_low=-0.06, expected_high=-0.04)
    assert pp.weekly_units == ab.weekly_units == ready.weekly_units
    # half the units per arm in a randomized test: it needs more weeks for the same change
    assert ab.weeks_needed > pp.weeks_needed


def test_a_tiny_cohort_reports_no_mde_and_is_not_ready(plan):
    assert plan.mde_at_max_weeks is None and not plan.ready
    assert "not reachable within 8 weeks" in plan.power_message


def test_the_plan_becomes_a_journal_entry_of_kind_plan(plan):
    e = journal_entry(plan, "2026-W47")
    assert (e.kind, e.week, e.experiment_id, e.expected_low) == ("plan", "2026-W47", plan.experiment_id, plan.expected_low)


def test_the_conclusion_states_the_range_in_points_and_that_j7_never_keeps(ready):
    assert "-30.0 to -10.0 points" in conclusion(ready)
    assert "never keeps" in conclusion(ready)
    assert conclusion(None).startswith("No weak cohort this week")


def test_the_summary_section_is_json_safe(ready, plan, tmp_path):
    import json

    from playbook.report.summary import read_section, summary_path, update_summary

    update_summary(tmp_path, lever=ready.summary_section())
    s = json.loads(summary_path(tmp_path).read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert s["lever"]["experiments_row"] == ready.experiments_row()
    assert (s["lever"]["first_look_date"], s["lever"]["review_date"]) == (ready.first_look_date.isoformat(),
                                                                          ready.review_date.isoformat())
    assert read_section(tmp_path, "lever") == ready.summary_section()
    update_summary(tmp_path, lever=plan.summary_section())
    assert json.loads(summary_path(tmp_path).read_text())["lever"]["experiments_row"] is None


def test_without_baseline_weeks_the_design_effect_comes_from_the_window_not_from_independence(sample_snap, config):
    from playbook.steps.levers import baseline_weeks

    # the first deliveries of the sample shop are in the week of 2026-05-25: no baseline week before this window
    window = ["2026-05-25", "2026-06-01", "2026-06-08", "2026-06-15"]
    early = [dt.date.fromisoformat(d) for d in window]
    assert not cohort_clustering(sample_snap, 14, {"category": "knitwear"}, baseline_weeks(early, 8)).ok
    from_window = cohort_clustering(sample_snap, 14, {"category": "knitwear"}, early)
    assert from_window.ok and from_window.design_effect > 1.0
    p = design_lever(dataclasses.replace(SAMPLE_WEAK, window_weeks=tuple(early)), sample_snap, config,
                     expected_low=-0.30, expected_high=-0.10)
    assert p.design_effect > 1.0


def test_a_cohort_chosen_by_the_analyst_is_read_over_step_2s_window_for_the_weak_cohorts_reason(snap, config):
    from playbook.steps.levers import chosen_cohort

    # web deliveries of W45: L1 (2 knitwear units, 1 returned as size_too_small by R1 within 6 days) and L2
    # (1 shoe unit, returned as changed_mind): 1 of 3 units; no delivery week before W45 (no normal known)
    web = chosen_cohort(snap, config, WEAK, "channel=web")
    assert web.filters == {"channel": "web", "reason_code": "size_too_small"}
    assert (web.units, web.return_rate, web.expected_rate) == (3, pytest.approx(1 / 3), pytest.approx(1 / 3))
    # L2 (1 shoe unit) came back as changed_mind 16 days after delivery: not within 14 days
    shoes = chosen_cohort(snap, config, WEAK, "category=shoes;reason_code=changed_mind")
    assert (shoes.units, shoes.return_rate) == (1, 0.0)


def test_the_plan_for_a_chosen_cohort_says_it_was_the_analysts_choice(snap, config):
    from playbook.steps.levers import analyse

    plan = analyse(snap, config, WEAK, cohort="channel=web", lever="size_guide", expected_low=-0.2,
                   expected_high=-0.1).plan
    assert plan.cohort == "channel=web" and plan.lever == "size_guide"
    assert plan.chosen_by_analyst == "cohort=channel=web; lever=size_guide; expected_low=-0.2; expected_high=-0.1"
    assert journal_entry(plan, "2026-W47").chosen_by_analyst == plan.chosen_by_analyst


def test_a_chosen_cohort_on_an_unknown_column_is_refused_naming_the_columns(snap, config):
    from playbook.steps.levers import chosen_cohort

    with pytest.raises(ValueError, match="unknown: colour"):
        chosen_cohort(snap, config, WEAK, "colour=red")


def test_the_weak_cohort_chosen_again_reads_the_rates_step_2_found(sample_snap, config):
    """The chosen-cohort path (lines and returns in the engine) meets step 2's own counts of the sample."""
    from playbook.steps.levers import chosen_cohort

    again = chosen_cohort(sample_snap, config, SAMPLE_WEAK, "category=knitwear")
    assert again.return_rate == pytest.approx(SAMPLE_WEAK.return_rate, abs=5e-5)
    assert again.expected_rate == pytest.approx(SAMPLE_WEAK.expected_rate, abs=5e-5)


def test_a_chosen_cohort_without_its_expected_range_is_not_planned_and_says_why(snap, config):
    from playbook.steps.levers import analyse

    result = analyse(snap, config, WEAK, cohort="channel=web")
    assert result.plan is None and "give its expected range" in result.conclusion


def test_a_chosen_cohort_in_a_week_without_a_weak_cohort_is_not_planned_and_says_why(snap, config):
    from playbook.steps.levers import analyse

    result = analyse(snap, config, None, cohort="channel=web", expected_low=-0.2, expected_high=-0.1)
    assert result.plan is None and "step 2 flagged no cohort this week" in result.conclusion


# --- the power curve of step 3's chart against an independent power computation -------------------
# A generated shop: every week from 2026-W34 to 2026-W45, 200 new customers each buy one knitwear line of
# 2 units (Tuesday, delivered Wednesday); 2 customers in 5 return one of the 2 units 3 days after delivery.
# The K-day rate is 0.2 in every week, and a customer returns at most one of its 2 units, so the returns of
# one customer are less alike than independent units would be: the design effect is 1 (its floor).
CURVE_CUSTOMERS = 200


def curve_shop() -> dict[str, list[tuple]]:
    orders, lines, returns = [], [], []
    week = IsoWeek.parse("2026-W34")
    while week <= IsoWeek.parse("2026-W45"):
        ts = dt.datetime.combine(week.monday + dt.timedelta(days=1), dt.time(10))
        for i in range(CURVE_CUSTOMERS):
            oid = f"O{len(orders):06d}"
            delivered = ts + dt.timedelta(days=1)
            orders.append((oid, str(ts), f"C{oid}", "web", "north", str(delivered.date()), str(delivered), 4.0))
            lines.append((f"L{oid}", oid, "SKU", "knitwear", 2, 50.0, 0.0, 20.0))
            if i % 5 < 2:
                returns.append((f"R{oid}", f"L{oid}", str(delivered + dt.timedelta(days=3)), 1, "size_too_small", "",
                                50.0, 5.0, 2.0, "refund"))
        week = week.shift(1)
    return {"orders": orders, "order_lines": lines, "returns": returns}


@pytest.fixture(scope="module")
def curve_plan(tmp_path_factory, config):
    snap = open_dataset(write_shop(tmp_path_factory.mktemp("curve") / "shop", curve_shop())).as_of("2026-W47")
    window = ["2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02"]  # 2026-W42 to W45, 14 days mature by W47
    weak = read("weak_cohort", weak_cohort(filters={"category": "knitwear", "reason_code": "size_too_small"},
                                           return_rate=0.2, expected_rate=0.1, window_weeks=window))
    return design_lever(weak, snap, config, expected_low=-0.10, expected_high=-0.05)


@pytest.mark.parametrize("week", [3, 4, 6, 8])
def test_the_power_curve_is_the_power_of_a_two_sample_test_on_the_mature_units_of_each_week(curve_plan, week):
    from statsmodels.stats.power import NormalIndPower

    option = curve_plan.options[0]
    assert (option.kind, option.expected_change, option.base_rate) == ("as_planned", -0.05, pytest.approx(0.2))
    # per arm: half of 400 units a week; the 14-day read after `week` weeks holds the units delivered in the
    # first week - 2 weeks: 200 (week - 2) per arm. Unpooled two-sample z test of 0.20 against 0.15, two-sided
    # 5 %, written as statsmodels' one-sided test at 2.5 % on the standardised effect (the far tail left out).
    effect = 0.05 / ((0.2 * 0.8 + 0.15 * 0.85) / 2) ** 0.5
    looks = list(range(max(3, week - MAX_PLANNED_LOOKS + 1), week + 1))  # the weekly reads with mature units
    if len(looks) == 1:
        expected = NormalIndPower().power(effect, nobs1=CURVE_CUSTOMERS * (week - 2), alpha=0.025, alternative="larger")
    else:  # the design's looks, integrated by gsDesign's own routines at the boundaries the verdict reads
        info = [CURVE_CUSTOMERS * (w - 2) for w in looks]
        bounds = spending_boundaries([i / info[-1] for i in info[:-1]] + [1.0], info)
        expected = _gsdesign_power(bounds, info, theta=effect / 2 ** 0.5)
    assert option.power_by_week[week - 1] == pytest.approx(expected, abs=2e-4)


def _gsdesign_power(bounds, information, theta):
    """P(cross an upper bound at some look) by gsDesign's recursion (gsdesign's h1 / hupdate)."""
    gs = pytest.importorskip("gsdesign")
    total, prev, prev_info = 0.0, None, None
    for b, info in zip(bounds, information):
        if prev is None:
            total += float(gs.h1(32, theta, info, b, float("inf"))[2].sum())
            prev = gs.h1(32, theta, info, float("-inf"), b)
        else:
            total += float(gs.hupdate(32, theta, info, b, float("inf"), theta, prev_info, prev)[2].sum())
            prev = gs.hupdate(32, theta, info, float("-inf"), b, theta, prev_info, prev)
        prev_info = info
    return total


def test_the_power_curve_is_near_cohens_h_for_the_same_read(curve_plan):
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = proportion_effectsize(0.2, 0.15)  # arcsine effect size: another approximation of the same test
    curve = [r.power for r in k_day_read_plan(0.2, -0.05, CURVE_CUSTOMERS, 14, max_weeks=8).by_week]  # the read alone
    for week in (3, 5, 8):
        assert curve[week - 1] == pytest.approx(NormalIndPower().power(h, nobs1=CURVE_CUSTOMERS * (week - 2),
                                                                       alpha=0.05), abs=0.02)


def test_before_any_unit_has_its_k_days_the_power_curve_is_zero(curve_plan):
    assert curve_plan.options[0].power_by_week[:2] == (0.0, 0.0)  # weeks 1 and 2: no unit 14 days old yet
    assert len(curve_plan.options[0].power_by_week) == curve_plan.max_weeks


# --- one test per cohort -------------------------------------------------------------------------------

def _held(*cohorts: str) -> list[CohortInTest]:
    return [CohortInTest(f"EXP-HELD-{i}", c, dt.date(2026, 12, 7), "open") for i, c in enumerate(cohorts)]


SAMPLE_CANDIDATES = read("weak_cohort_candidates", [
    candidate(filters={"category": "knitwear", "reason_code": "size_too_small"}, excess_cost=9000.0),
    candidate(filters={"category": "shoes", "reason_code": "size_too_small"}, excess_cost=4000.0),
])


def test_step_3_plans_no_second_test_on_a_cohort_under_test_and_goes_to_the_next_free_one(sample_snap, config):
    result = analyse(sample_snap, config, SAMPLE_WEAK, SAMPLE_CANDIDATES, under_way=_held("category=knitwear"))
    assert result.plan is not None and result.plan.cohort == "category=shoes"
    assert "category=knitwear is being tested by EXP-HELD-0, read on 2026-12-07" in result.note
    assert result.plan.reason_code == "size_too_small"


def test_a_test_on_a_wider_cohort_holds_the_weak_cohort_too(sample_snap, config):
    result = analyse(sample_snap, config, SAMPLE_WEAK, SAMPLE_CANDIDATES, under_way=_held("", "category=shoes"))
    assert result.plan is None
    assert "Every other flagged cohort is under test too" in result.note


def test_a_cohort_no_test_holds_is_planned_as_step_2_found_it(sample_snap, config):
    result = analyse(sample_snap, config, SAMPLE_WEAK, SAMPLE_CANDIDATES, under_way=_held("category=dresses"))
    assert result.plan.cohort == "category=knitwear" and result.note == ""


# --- guardrails sized with the primary ----------------------------------------------------------------

def test_a_guardrails_planned_error_shrinks_as_one_over_the_root_of_the_customers(sample_snap, config):
    weeks = list(SAMPLE_WEAK.baseline_weeks)
    one = guardrail_powers(sample_snap, config, {"category": "knitwear"}, weeks, Design.RANDOMIZED, 1000.0)
    four = guardrail_powers(sample_snap, config, {"category": "knitwear"}, weeks, Design.RANDOMIZED, 4000.0)
    assert [g.metric for g in one] == ["contact_rate", "net_revenue_per_customer"]
    for a, b in zip(one, four):
        assert b.std_error == pytest.approx(a.std_error / 2, rel=1e-9)


def test_a_guardrails_power_is_the_one_sided_non_inferiority_power_of_its_read(sample_snap, config):
    from statsmodels.stats.power import NormalIndPower

    n = 3000.0
    for g in guardrail_powers(sample_snap, config, {"category": "knitwear"}, list(SAMPLE_WEAK.baseline_weeks),
                              Design.RANDOMIZED, n):
        sd = g.std_error * (n / 2) ** 0.5  # the per-customer spread of a difference of two arms of n
        expected = NormalIndPower().power(g.tolerance / sd, nobs1=n, alpha=0.025, alternative="larger")
        assert g.power == pytest.approx(expected, rel=1e-6)
        assert g.powered is (g.power >= 0.8) and ("follow-up" in g.note) is (not g.powered)


def test_a_guardrails_note_gives_its_tolerance_in_the_metrics_unit(sample_snap, config):
    notes = {g.metric: g.note for g in guardrail_powers(sample_snap, config, {"category": "knitwear"},
                                                        list(SAMPLE_WEAK.baseline_weeks), Design.RANDOMIZED, 3000.0)}
    tolerances = {g.metric: g.tolerance for g in config.experiments.guardrails[Design.RANDOMIZED]}
    assert (tolerances, config.currency) == ({"contact_rate": 0.01, "net_revenue_per_customer": 2.0}, "EUR")
    # a rate's tolerance in percentage points, an amount per customer in the shop's currency
    assert "within its tolerance (1.0 points)" in notes["contact_rate"]
    assert "within its tolerance (EUR 2.00)" in notes["net_revenue_per_customer"]


def test_a_pre_post_plan_says_its_guardrails_are_not_sized(sample_snap, config):
    out = guardrail_powers(sample_snap, config, {"category": "knitwear"}, list(SAMPLE_WEAK.baseline_weeks),
                           Design.PRE_POST, 1000.0)
    assert out and all(not g.powered and g.note.startswith("not sized: a pre/post design") for g in out)


def test_the_plan_warns_when_k_holds_less_than_90_percent_of_the_shops_returns(sample_snap, config):
    # the sample shop's lags: the 14-day window holds about 85 % of its returns (measured independently)
    from playbook.data.facts import line_facts

    lf = line_facts(sample_snap, 14).select("line_id", "delivered_ts").to_pandas()
    r = sample_snap.tables["returns"].select("line_id", "requested_ts", "quantity").to_pandas().merge(lf, on="line_id")
    cut = pd.Timestamp(sample_snap.cutoff) - pd.Timedelta(days=90)
    r = r[pd.to_datetime(r.delivered_ts) <= cut]
    lag = (pd.to_datetime(r.requested_ts) - pd.to_datetime(r.delivered_ts)).dt.total_seconds() / 86400
    share = float((r.quantity * (lag <= 14)).sum() / r.quantity.sum())
    plan = design_lever(SAMPLE_WEAK, sample_snap, config)
    assert share < 0.9 and plan.window_warning is not None
    assert f"holds {share:.0%} of the shop's historical returns" in plan.window_warning
