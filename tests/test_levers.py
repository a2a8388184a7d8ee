"""Step 3: the lever plan for a weak cohort, on the tiny shop (volumes counted by hand)."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from conftest import TINY_SHOP, write_shop
from playbook.config import MetricSettings, load_config
from playbook.contract import DESIGNS, TABLES, parse_cohort
from playbook.data import open_dataset
from playbook.levers import cohort_volume, conclusion, design_lever, experiments_table, journal_entry

W45, W46 = dt.date(2026, 11, 2), dt.date(2026, 11, 9)
WEAK = {"filters": {"category": "knitwear", "reason_code": "size_too_small"}, "return_rate": 0.30, "expected_rate": 0.10,
        "window_weeks": ["2026-11-02"]}


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("tiny") / "shop")).as_of("2026-W47")


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def plan(snap, config):
    return design_lever(WEAK, snap, config)


def test_the_default_expected_range_removes_30_to_70_percent_of_the_excess_rate(plan):
    excess = 0.30 - 0.10
    assert plan.expected_low == pytest.approx(-0.7 * excess)
    assert plan.expected_high == pytest.approx(-0.3 * excess)


def test_a_range_given_by_the_analyst_is_kept_and_put_in_order(snap, config):
    p = design_lever(WEAK, snap, config, expected_low=-0.02, expected_high=-0.05)
    assert (p.expected_low, p.expected_high) == (-0.05, -0.02)


def test_a_cohort_below_its_norm_gets_an_empty_range_not_a_positive_one(snap, config):
    p = design_lever(dict(WEAK, return_rate=0.05), snap, config)
    assert p.expected_low == 0 and p.expected_high == 0


def test_the_lever_defaults_to_the_configured_lever_of_the_reason(plan, config):
    assert plan.lever == "fit_size_message"
    assert plan.lever_description == config.levers["size_too_small"]["description"]


def test_a_lever_named_by_the_analyst_replaces_the_default(snap, config):
    p = design_lever(WEAK, snap, config, lever="size chart v2")
    assert p.lever == p.lever_description == "size chart v2"
    assert p.experiment_id.endswith("-SIZE-CHART-V2")


def test_the_test_starts_the_monday_after_the_week_and_is_reviewed_seven_days_later(plan):
    assert plan.start_date == dt.date(2026, 11, 23) and plan.start_date.isoweekday() == 1
    assert plan.review_date == plan.start_date + dt.timedelta(days=7)


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


def test_the_experiment_row_has_exactly_the_contract_columns_in_order(plan):
    assert list(plan.experiments_row()) == list(TABLES["experiments"].column_names)
    assert list(experiments_table(plan).columns) == list(TABLES["experiments"].column_names)


def test_the_experiment_row_values_follow_the_contract(plan):
    row = plan.experiments_row()
    assert row["design"] in DESIGNS
    assert parse_cohort(row["cohort"]) == {"category": "knitwear"}
    assert (row["start_date"], row["review_date"]) == ("2026-11-23", "2026-11-30")
    assert row["expected_low"] == pytest.approx(-0.14) and row["expected_high"] == pytest.approx(-0.06)
    assert row["primary_metric"] == "return_rate_14d"


def test_the_experiment_row_passes_validation_when_added_to_the_data(plan, tmp_path):
    tables = dict(TINY_SHOP, experiments=[tuple(plan.experiments_row().values())])
    ds = open_dataset(write_shop(tmp_path / "shop", tables))
    e = ds.tables["experiments"].to_pandas()
    assert list(e["experiment_id"]) == [plan.experiment_id]
    assert not [w for w in ds.warnings if w.table == "experiments" and "missing" not in w.rule]


def test_guardrails_follow_the_design(snap, config, plan):
    assert plan.guardrails == config.experiments.guardrails["randomized"]
    pp = design_lever(WEAK, snap, config, design="pre_post")
    assert pp.guardrails == config.experiments.guardrails["pre_post"] and pp.design == "pre_post"


def test_a_pre_post_plan_counts_the_whole_cohort_per_week_and_a_randomized_one_half(snap, config, plan):
    pp = design_lever(WEAK, snap, config, design="pre_post")
    assert pp.weekly_units == plan.weekly_units == 3.0
    # half the units per arm in a randomized test: it needs at least as many weeks
    assert plan.weeks_needed >= pp.weeks_needed


def test_a_tiny_cohort_reports_no_one_week_mde_and_a_power_message(plan):
    assert plan.mde_one_week is None
    assert "MDE not available" in plan.power_message


def test_the_plan_becomes_a_journal_entry_of_kind_plan(plan):
    e = journal_entry(plan, "2026-W47")
    assert (e.kind, e.week, e.experiment_id, e.expected_low) == ("plan", "2026-W47", plan.experiment_id, plan.expected_low)


def test_the_conclusion_states_the_range_in_points(plan):
    assert "-14.0 to -6.0 points" in conclusion(plan)
    assert conclusion(None).startswith("No weak cohort this week")


def test_the_summary_section_is_json_safe(plan):
    import json

    s = plan.summary_section()
    assert json.loads(json.dumps(s))["experiments_row"] == plan.experiments_row()
