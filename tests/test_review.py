"""Step 5: the J+7 verdict on comparison entries, the cohorts under test and the next action."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from conftest import TINY_SHOP, write_shop
from playbook.config import load_config
from playbook.data import Snapshot, open_dataset
from playbook.experiments import compare_randomized
from playbook.review import cohorts_under_test, conclusion, next_action, review_script, verdict_for, verdicts
from playbook.weeks import IsoWeek


@pytest.fixture(scope="module")
def config():
    return load_config()


def comparison(estimate=-0.03, ci=(-0.05, -0.01), expected=(-0.04, -0.01), good="lower", **extra) -> dict:
    """A ``comparisons`` entry as notebook 04 writes it."""
    c = {
        "experiment_id": "EXP-1", "design": "randomized", "lever": "fit_size_message", "cohort": "category=knitwear",
        "srm_p_value": 0.6, "srm_mismatch": False,
        "primary": {"metric": "return_rate_14d", "estimate": estimate, "ci_low": ci[0], "ci_high": ci[1],
                    "null_value": 0.0, "good_direction": good, "p_value": 0.01, "method": "return-within-k", "n": 900,
                    "error": None, "expected_low": expected[0], "expected_high": expected[1]},
        "guardrails": [
            {"metric": "contact_rate", "estimate": 0.001, "ci_low": -0.002, "ci_high": 0.004, "breached": False},
            {"metric": "net_revenue_per_customer", "estimate": 0.5, "ci_low": -1.0, "ci_high": 2.0, "breached": False},
        ],
    }
    c.update(extra)
    return c


# --- verdict_for ------------------------------------------------------------------------------------

def test_a_good_interval_within_the_range_is_kept():
    v = verdict_for(comparison())
    assert v.verdict.decision == "keep"
    assert (v.experiment_id, v.primary_metric, v.estimate, v.ci_low, v.ci_high) == ("EXP-1", "return_rate_14d", -0.03, -0.05, -0.01)


def test_a_breached_guardrail_stops_and_is_named():
    c = comparison()
    c["guardrails"][0]["breached"] = True
    v = verdict_for(c).verdict
    assert v.decision == "stop" and "contact_rate" in v.why and "net_revenue" not in v.why


def test_a_sample_ratio_mismatch_prevents_keep():
    assert verdict_for(comparison(srm_mismatch=True)).verdict.decision == "adjust"


def test_an_interval_on_the_bad_side_stops():
    assert verdict_for(comparison(0.03, (0.01, 0.05))).verdict.decision == "stop"


def test_the_good_direction_is_read_from_the_entry():
    c = comparison(0.03, (0.01, 0.05), (0.01, 0.04), good="higher")
    assert verdict_for(c).verdict.decision == "keep"


def test_the_good_direction_defaults_to_lower():
    c = comparison()
    del c["primary"]["good_direction"]
    assert verdict_for(c).verdict.decision == "keep"


def test_a_ratio_entry_is_judged_against_its_null_of_one():
    c = comparison(0.8, (0.7, 0.9), (0.7, 0.9))
    c["primary"]["null_value"] = 1.0
    assert verdict_for(c).verdict.decision == "keep"
    c["primary"]["null_value"] = None  # a missing null means 0: the same interval is then on the bad side
    assert verdict_for(c).verdict.decision == "stop"


def test_the_primary_error_is_appended_to_the_reason_when_not_stopping():
    c = comparison(None, (None, None))
    c["primary"]["error"] = "no follow-up window with enough mature units"
    v = verdict_for(c).verdict
    assert v.decision == "adjust"
    assert v.why.endswith("(no follow-up window with enough mature units)")


def test_an_entry_without_guardrails_or_srm_fields_is_judged_on_its_primary():
    c = comparison()
    for k in ("guardrails", "srm_mismatch", "srm_p_value", "lever", "cohort"):
        del c[k]
    v = verdict_for(c)
    assert v.verdict.decision == "keep" and v.lever == "" and v.cohort == ""


def test_verdict_for_does_not_modify_its_input():
    c = comparison(srm_mismatch=True)
    before = copy.deepcopy(c)
    verdict_for(c)
    assert c == before


def test_a_verdict_becomes_a_journal_entry_and_a_summary_row():
    v = verdict_for(comparison())
    e = v.journal_entry("2026-W47")
    assert (e.kind, e.decision, e.estimate, e.expected_low) == ("verdict", "keep", -0.03, -0.04)
    assert v.summary_row()["decision"] == "keep"


def test_verdicts_keep_the_order_of_the_comparisons():
    c2 = comparison(0.03, (0.01, 0.05), experiment_id="EXP-2")
    assert [v.experiment_id for v in verdicts([comparison(), c2])] == ["EXP-1", "EXP-2"]


def test_a_randomized_experiment_without_assignments_gets_an_adjust_verdict(config):
    exp = {"experiment_id": "EXP-NA", "lever": "x", "cohort": "category=knitwear", "design": "randomized",
           "control_cohort": "", "primary_metric": "return_rate_14d", "expected_low": -0.05, "expected_high": -0.01,
           "start_date": dt.date(2026, 11, 16), "review_date": dt.date(2026, 11, 22)}
    entry = compare_randomized(Snapshot(None, IsoWeek(2026, 47), {}), exp, config).to_dict()
    v = verdict_for(entry).verdict
    assert v.decision == "adjust" and "no assignments table" in v.why


# --- next_action ------------------------------------------------------------------------------------

CANDIDATES = [
    {"filters": {"category": "knitwear", "reason_code": "size_too_small"}, "excess_cost": 500.0},
    {"filters": {"channel": "app", "reason_code": "changed_mind"}, "excess_cost": 900.0},
    {"filters": {"region": "north", "reason_code": "quality"}, "excess_cost": 100.0},
]


def test_the_next_action_is_the_largest_excess_cost(config):
    nxt = next_action(CANDIDATES, [], config)
    assert (nxt["cohort"], nxt["reason_code"], nxt["excess_cost"]) == ("channel=app", "changed_mind", 900.0)
    assert nxt["action"] == config.levers["changed_mind"]["lever"]


def test_the_next_action_skips_cohorts_already_under_test(config):
    nxt = next_action(CANDIDATES, [{"channel": "app"}], config)
    assert nxt["cohort"] == "category=knitwear" and nxt["action"] == "fit_size_message"


def test_a_test_on_a_narrower_cohort_does_not_cover_the_wider_one(config):
    nxt = next_action(CANDIDATES, [{"channel": "app", "region": "north"}], config)
    assert nxt["cohort"] == "channel=app"


def test_no_next_action_when_every_candidate_is_under_test(config):
    under = [{"category": "knitwear"}, {"channel": "app"}, {"region": "north"}]
    assert next_action(CANDIDATES, under, config) is None
    assert next_action([], [], config) is None


def test_the_plan_of_the_week_names_the_action_for_its_cohort(config):
    nxt = next_action(CANDIDATES, [], config, plan={"cohort": "channel=app", "lever": "promo rules v2"})
    assert nxt["action"] == "promo rules v2"


def test_an_unknown_reason_gets_the_other_lever(config):
    nxt = next_action([{"filters": {"category": "bags", "reason_code": "mystery"}, "excess_cost": 1}], [], config)
    assert nxt["action"] == "reason_capture"


# --- cohorts under test, from the experiments table ---------------------------------------------------

def experiment(eid, cohort, start, review):
    return (eid, "lever", cohort, "randomized", "", "return_rate_14d", -0.05, -0.01, start, review)


@pytest.fixture(scope="module")
def with_experiments(tmp_path_factory):
    tables = dict(TINY_SHOP, experiments=[
        experiment("EXP-OLD", "region=south", "2026-10-26", "2026-11-06"),  # reviewed in W45: over
        experiment("EXP-NOW", "category=shoes", "2026-11-09", "2026-11-20"),  # reviewed this week
        experiment("EXP-RUN", "channel=app;region=north", "2026-11-16", "2026-12-04"),  # still running
        experiment("EXP-NEXT", "category=bags", "2026-11-30", "2026-12-07"),  # starts after the cut
    ])
    return open_dataset(write_shop(tmp_path_factory.mktemp("exp") / "shop", tables))


def test_cohorts_under_test_are_those_running_or_reviewed_this_week(with_experiments):
    under = cohorts_under_test(with_experiments.as_of("2026-W47"))
    assert sorted(under, key=str) == sorted([{"category": "shoes"}, {"channel": "app", "region": "north"}], key=str)


def test_no_experiments_table_means_nothing_under_test(tmp_path):
    snap = open_dataset(write_shop(tmp_path / "shop")).as_of("2026-W47")
    assert cohorts_under_test(snap) == []


# --- the weekly review script --------------------------------------------------------------------------

def test_the_review_script_answers_the_four_questions_from_the_summary(config):
    summary = {
        "baseline": {"metrics": {"closure_rate": {"status": "red", "why": "70.0 % is below the red line"},
                                 "contact_rate": {"status": "green", "why": "fine"}}},
        "weak_cohort": {"filters": {"category": "knitwear", "reason_code": "size_too_small"}, "return_rate": 0.25,
                        "expected_rate": 0.1, "excess_cost": 2220.0},
    }
    items = [verdict_for(comparison())]
    nxt = next_action(CANDIDATES, [], config)
    answers = dict(review_script(summary, items, nxt))
    assert list(answers) == ["What moved?", "Why?", "Keep, adjust or stop?", "Next highest-impact action?"]
    assert "closure_rate" in answers["What moved?"] and "contact_rate" not in answers["What moved?"]
    assert "25.0% returned against 10.0% normally" in answers["Why?"]
    assert answers["Keep, adjust or stop?"].startswith("EXP-1: keep")
    assert "channel=app" in answers["Next highest-impact action?"]


def test_the_review_script_of_a_quiet_week_says_so():
    answers = dict(review_script({}, [], None))
    assert answers["What moved?"] == "nothing left its usual range"
    assert answers["Keep, adjust or stop?"] == "no experiment was due for review"


def test_the_conclusion_counts_the_decisions():
    items = [verdict_for(comparison()), verdict_for(comparison(0.03, (0.01, 0.05)))]
    assert conclusion(items, None) == "2 experiment(s) reviewed: 1 kept, 0 to adjust, 1 stopped; no new cohort to act on."
