"""Step 5: the J+7 verdict on comparison entries, the cohorts under test and the next action."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from conftest import TINY_SHOP, write_shop
from scipy.stats import norm
from section_examples import baseline, candidate, comparison, read, weak_cohort
from section_examples import lever as lever_json

from playbook.config.loader import load_config
from playbook.core.jsonmodel import FieldError
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Snapshot, open_dataset
from playbook.journal.under_test import CohortInTest, cohorts_in_test
from playbook.stats.sequential import look_boundary
from playbook.steps import review
from playbook.steps.experiments import compare_randomized
from playbook.steps.review import conclusion, look_for, next_action, review_script, valued


@pytest.fixture(scope="module")
def config():
    return load_config()


def verdict_for(entry: dict, look: int = 1):
    """The rule applied to a ``comparisons`` entry (JSON as notebook 04 writes it), read as notebook 05 reads it."""
    return review.verdict_for(read("comparisons", [entry])[0], look)


def verdicts(entries: list[dict], journal_dir=None, week=None):
    return review.verdicts(list(read("comparisons", entries)), journal_dir, week)


# --- verdict_for ------------------------------------------------------------------------------------

def test_a_good_interval_within_the_range_is_kept():
    v = verdict_for(comparison())
    assert v.verdict.decision == "keep"
    assert (v.experiment_id, v.primary_metric, v.estimate, v.ci_low, v.ci_high) == (
        "EXP-1", "return_rate_14d", -0.03, -0.05, -0.01)


def test_a_breached_guardrail_stops_and_is_named():
    c = comparison()
    c["guardrails"][0].update(breached=True, state="breached")
    v = verdict_for(c).verdict
    assert v.decision == "stop" and "Contact rate" in v.why and "Net revenue" not in v.why.split("(")[0]


def test_a_sample_ratio_mismatch_prevents_keep():
    assert verdict_for(comparison(srm_mismatch=True)).verdict.decision == "adjust"


def test_an_interval_on_the_bad_side_stops():
    assert verdict_for(comparison(0.03, (0.01, 0.05))).verdict.decision == "stop"


def test_the_good_direction_is_read_from_the_entry():
    c = comparison(0.03, (0.01, 0.05), (0.01, 0.04), good="higher")
    assert verdict_for(c).verdict.decision == "keep"


def test_an_entry_without_its_good_direction_fails_naming_the_section_and_the_field():
    c = comparison()
    del c["primary"]["good_direction"]
    with pytest.raises(FieldError, match=r"comparisons\[0\]\.primary has no field 'good_direction'"):
        verdict_for(c)


def test_a_ratio_entry_is_judged_against_its_null_of_one():
    c = comparison(0.8, (0.7, 0.9), (0.7, 0.9))
    c["primary"]["null_value"] = 1.0
    assert verdict_for(c).verdict.decision == "keep"
    c["primary"]["null_value"] = 0.0  # against a null of 0 the same interval is on the bad side
    assert verdict_for(c).verdict.decision == "stop"


def test_the_primary_error_is_appended_to_the_reason_when_not_stopping():
    c = comparison(None, (None, None))
    c["primary"]["error"] = "no follow-up window with enough mature units"
    v = verdict_for(c).verdict
    assert v.decision == "adjust"
    assert v.why.endswith("(no follow-up window with enough mature units)")


def test_an_entry_without_guardrails_or_srm_read_is_judged_on_its_primary():
    c = comparison(guardrails=[], srm_p_value=None, srm_assigned=None, lever=None, cohort=None)
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
    entry = compare_randomized(Snapshot(None, IsoWeek(2026, 47), {}), exp, config).section()
    v = review.verdict_for(entry).verdict
    assert v.decision == "adjust" and "no assignments table" in v.why


# --- the rest of the rule: states, blockers, provisional, looks, flags ----------------------------


def with_guardrail(state: str, **extra) -> dict:
    c = comparison()
    c["guardrails"][0].update(state=state, state_why=f"{state} by hand", **extra)
    return c


def test_a_guardrail_with_harm_likely_blocks_a_keep_and_is_named():
    v = verdict_for(with_guardrail("harm_likely")).verdict
    assert v.decision == "adjust" and "Contact rate is likely harmed" in v.why


def test_a_guardrail_not_shown_safe_allows_a_keep_with_its_dated_follow_up():
    kept = verdict_for(with_guardrail("not_shown_safe", follow_up_on="2027-04-07")).verdict
    assert kept.decision == "keep" and "2027-04-07" in kept.why and "2027-04-07" in kept.follow_ups[0]


def test_a_guardrail_no_read_can_show_safe_is_watched_after_the_roll_out_not_a_block():
    # harm is not shown: blocking on noise would refuse most working levers of a small shop
    kept = verdict_for(with_guardrail("not_shown_safe")).verdict
    assert kept.decision == "keep"
    assert kept.follow_ups[0].startswith("watch guardrail Contact rate weekly after the roll-out")


def test_the_follow_up_read_goes_to_the_journal():
    e = verdict_for(with_guardrail("not_shown_safe", follow_up_on="2027-04-07")).journal_entry("2026-W47")
    assert "Contact rate" in e.follow_ups and "2027-04-07" in e.follow_ups


def test_an_unmeasured_guardrail_blocks_a_keep_unless_the_plan_made_it_optional():
    assert verdict_for(with_guardrail("not_measured")).verdict.decision == "adjust"
    assert verdict_for(with_guardrail("not_measured", optional=True)).verdict.decision == "keep"


def test_a_keep_blocker_of_the_comparison_blocks_a_keep():
    v = verdict_for(comparison(keep_blockers=["pre-trend failure: p = 0.01"])).verdict
    assert v.decision == "adjust" and "pre-trend failure" in v.why


def test_a_mismatch_among_the_exposed_customers_prevents_a_keep():
    assert verdict_for(comparison(srm_exposed_mismatch=True)).verdict.decision == "adjust"


def test_a_primary_not_readable_at_its_window_is_provisional_with_the_date():
    c = comparison(None, (None, None))
    c["primary"].update(error="fewer than 30 customers followed 14 days", k_registered=14, k_read=None,
                        readable=False, readable_on="2026-12-06", window_why="too few followed 14 days")
    v = verdict_for(c)
    assert v.verdict.decision == "provisional" and v.verdict.readable_on == dt.date(2026, 12, 6)
    assert "2026-12-06" in v.verdict.next_step
    e = v.journal_entry("2026-W47")
    assert e.decision == "provisional" and e.k_read is None and e.estimate is None


def test_a_breached_guardrail_stops_even_while_the_window_is_provisional():
    c = with_guardrail("breached")
    c["primary"].update(k_registered=14, readable=False, readable_on="2026-12-06")
    assert verdict_for(c).verdict.decision == "stop"


def test_the_k_read_is_recorded_in_the_journal():
    c = comparison()
    c["primary"].update(k_registered=14, k_read=14, readable=True)
    assert verdict_for(c).journal_entry("2026-W47").k_read == 14


def test_the_same_interval_keeps_at_the_last_planned_look_not_at_the_first():
    # interval (-0.05, -0.01): z = 0.03 / (0.04 / 3.92) = 2.94; O'Brien-Fleming 4 looks need 4.33, 2.96, 2.36, 2.01
    c = comparison(planned_looks=4)
    assert [verdict_for(c, look).verdict.decision for look in (1, 2, 3, 4)] == ["continue", "continue", "keep", "keep"]
    assert verdict_for(c, 5).verdict.decision == "adjust"  # no alpha left beyond the plan


def test_looks_are_numbered_from_the_journal(tmp_path):
    from playbook.journal.store import record_week

    first = verdicts([comparison()], tmp_path, "2026-W47")[0]
    record_week(tmp_path, "2026-W47", [first.journal_entry("2026-W47")], "verdict")
    again = verdicts([comparison()], tmp_path, "2026-W48")[0]
    assert (first.verdict.look, again.verdict.look) == (1, 2)
    assert again.journal_entry("2026-W48").look == 2


@pytest.mark.parametrize("estimate, ci, expected", [
    (-0.09, (-0.12, -0.06), (-0.04, -0.01)),   # more than twice the far end -0.04
    (-0.03, (-0.05, -0.01), (0.01, 0.04)),     # on the other side of no effect from the range
])
def test_a_keep_far_outside_the_registered_range_is_flagged_with_likely_reasons(estimate, ci, expected):
    v = verdict_for(comparison(estimate, ci, expected)).verdict
    assert v.decision == "keep" and v.flags and v.flags[0].startswith("check before rolling out")
    assert "assignment or exposure bug" in v.flags[0]


def test_a_keep_inside_twice_the_range_is_not_flagged():
    assert verdict_for(comparison(-0.07, (-0.1, -0.04), (-0.04, -0.01))).verdict.flags == ()


# --- next_action ------------------------------------------------------------------------------------

CANDIDATES = read("weak_cohort_candidates", [
    candidate(filters={"category": "knitwear", "reason_code": "size_too_small"}, excess_cost=500.0),
    candidate(filters={"channel": "app", "reason_code": "changed_mind"}, excess_cost=900.0),
    candidate(filters={"region": "north", "reason_code": "quality"}, excess_cost=100.0),
])


def test_the_next_action_is_the_largest_excess_cost(config):
    nxt = next_action(CANDIDATES, [], config)
    assert (nxt.cohort, nxt.reason_code, nxt.excess_cost) == ("channel=app", "changed_mind", 900.0)
    assert nxt.action == config.levers["changed_mind"]["lever"]


def held(*cohorts: str) -> list[CohortInTest]:
    return [CohortInTest(f"EXP-{i}", c, dt.date(2026, 11, 30), "open") for i, c in enumerate(cohorts)]


def test_the_next_action_skips_cohorts_already_under_test(config):
    nxt = next_action(CANDIDATES, held("channel=app"), config)
    assert nxt.cohort == "category=knitwear" and nxt.action == "fit_size_message"


def test_a_test_on_a_narrower_cohort_holds_the_wider_one_too(config):
    # one test per cohort: a cohort containing a tested one shares its customers (and so does one inside it)
    assert next_action(CANDIDATES, held("channel=app;region=north"), config).cohort == "category=knitwear"
    assert next_action(CANDIDATES, held(""), config) is None  # a test on the whole shop holds every cohort


def test_no_next_action_when_every_candidate_is_under_test(config):
    under = held("category=knitwear", "channel=app", "region=north")
    assert next_action(CANDIDATES, under, config) is None
    assert next_action([], [], config) is None


def test_the_plan_of_the_week_names_the_action_for_its_cohort(config):
    plan = read("lever", lever_json(cohort="channel=app", lever="promo rules v2"))
    nxt = next_action(CANDIDATES, [], config, plan=plan)
    assert nxt.action == "promo rules v2"


def test_an_unknown_reason_gets_the_other_lever(config):
    unknown = read("weak_cohort_candidates", [candidate(filters={"category": "bags", "reason_code": "mystery"})])
    nxt = next_action(unknown, [], config)
    assert nxt.action == "reason_capture"


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
    under = cohorts_in_test(with_experiments.as_of("2026-W47"))
    assert sorted((t.experiment_id, t.cohort) for t in under) == [("EXP-NOW", "category=shoes"),
                                                                   ("EXP-RUN", "channel=app;region=north")]


def test_a_test_decided_before_the_week_no_longer_holds_its_cohort_but_one_kept_last_week_does(with_experiments,
                                                                                                tmp_path):
    from playbook.journal.entry import JournalEntry
    from playbook.journal.store import record_week

    entries = [JournalEntry(week="2026-W46", kind="verdict", experiment_id="EXP-NOW", decision="keep"),
               JournalEntry(week="2026-W46", kind="verdict", experiment_id="EXP-RUN", decision="stop")]
    record_week(tmp_path, "2026-W46", entries, "verdict")
    under = cohorts_in_test(with_experiments.as_of("2026-W47"), tmp_path)
    assert [(t.experiment_id, t.state) for t in under] == [("EXP-NOW", "kept")]


def test_no_experiments_table_means_nothing_under_test(tmp_path):
    snap = open_dataset(write_shop(tmp_path / "shop")).as_of("2026-W47")
    assert cohorts_in_test(snap) == []


# --- the weekly review script --------------------------------------------------------------------------

def test_the_review_script_answers_the_four_questions_from_the_summary(config):
    week = read("baseline", baseline())
    weak = read("weak_cohort", weak_cohort(return_rate=0.25, expected_rate=0.1, excess_cost=2220.0))
    items = [verdict_for(comparison())]
    nxt = next_action(CANDIDATES, [], config)
    answers = dict(review_script(week, weak, items, nxt, "GBP"))
    assert list(answers) == ["What moved?", "Why?", "Keep, adjust or stop?", "Next highest-impact action?"]
    assert "excess cost GBP 2,220" in answers["Why?"]  # the amount carries the shop's currency
    assert "Action closure rate" in answers["What moved?"] and "Contact rate" not in answers["What moved?"]
    assert "closure_rate" not in answers["What moved?"]  # metrics by their names, never their ids
    assert "25.0% returned against 10.0% normally" in answers["Why?"]
    assert answers["Keep, adjust or stop?"].startswith("EXP-1: keep")
    assert " on app" in answers["Next highest-impact action?"] and "=" not in answers["Next highest-impact action?"]


def test_the_review_script_of_a_quiet_week_says_so():
    answers = dict(review_script(None, None, [], None))
    assert answers["What moved?"] == "nothing left its usual range"
    assert answers["Keep, adjust or stop?"] == "no experiment was due for review"


def test_the_conclusion_counts_the_decisions():
    items = [verdict_for(comparison()), verdict_for(comparison(0.03, (0.01, 0.05)))]
    assert conclusion(items, None) == (
        "2 experiment(s) reviewed: 1 kept, 0 to adjust, 1 stopped, 0 continuing, 0 provisional; no new cohort to act on.")


# --- a possible delay and its longer read ----------------------------------------------------------------

def delayed(catch_up, catch_up_ci, read_on="2026-11-22", complete_on="2026-12-20"):
    """A 14-day gap of -3 points [-5, -1] flagged as a possible delay, whose 28-day read holds a gap of -2 points
    [-3.5, -0.5], with the catch-up between day 14 and 28 given (treatment minus control)."""
    c = comparison()
    c["primary"].update(k_registered=14, k_read=14, readable=True, readable_on=None, window_why="read at K")
    c["read_on"], c["review_date"] = read_on, "2026-11-16"
    c["delay"] = {"possible_delay": True, "why": "treated returns come back later (p = 0.01)", "p_value": 0.01,
                  "confirm_days": 28, "readable_on": complete_on, "confirm_estimate": -0.02,
                  "confirm_ci_low": -0.035, "confirm_ci_high": -0.005, "catch_up": catch_up,
                  "catch_up_ci_low": catch_up_ci[0], "catch_up_ci_high": catch_up_ci[1],
                  "catch_up_p_value": float(norm.sf(catch_up / ((catch_up_ci[1] - catch_up_ci[0]) / 3.92)))}
    return c


def test_a_gap_that_stays_at_the_longer_read_confirms_the_keep():
    # catch-up 0.2 points [-0.4, +0.8]: its one-sided upper bound (0.70) is below half the 3-point gap
    assert verdict_for(delayed(0.002, (-0.004, 0.008))).verdict.decision == "keep"


def test_treated_returns_that_catch_up_after_k_block_the_keep_even_with_a_gap_at_the_longer_read():
    # catch-up +1.2 points [+0.4, +2.0] (p < 0.01): part of the 14-day gap comes back by day 28
    v = verdict_for(delayed(0.012, (0.004, 0.020))).verdict
    assert v.decision != "keep" and "catch up after day 14" in v.why and "1.2 points" in v.why


def test_a_catch_up_not_known_well_enough_yet_is_read_again_next_week():
    # catch-up +0.5 points [-1.5, +2.5]: neither shown to stay nor to come back; the next read follows more customers
    v = verdict_for(delayed(0.005, (-0.015, 0.025))).verdict
    assert v.decision == "continue" and v.readable_on == dt.date(2026, 11, 29)
    assert "not known well enough yet" in v.why


def test_once_every_exposed_unit_is_followed_that_long_an_unsettled_catch_up_does_not_confirm():
    v = verdict_for(delayed(0.005, (-0.015, 0.025), read_on="2026-12-20")).verdict
    assert v.decision != "keep" and "with every exposed unit followed 28 days" in v.why


# --- the effect in money --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_snap(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("money") / "shop")).as_of("2026-W47")


def test_a_verdict_is_valued_in_money_per_week_on_its_whole_cohort(tiny_snap, config):
    # tiny shop, knitwear: 3 units a week (W45), 27 per returned unit; -5 points [-8, -2] on the return rate
    (item,) = valued([verdict_for(comparison(estimate=-0.05, ci=(-0.08, -0.02)))], tiny_snap, config)
    assert item.money == pytest.approx((0.05 * 3 * 27, 0.02 * 3 * 27, 0.08 * 3 * 27))
    entry = item.journal_entry("2026-W47")
    assert (entry.money_per_week, entry.money_ci_low, entry.money_ci_high) == pytest.approx(item.money)
    assert item.summary_row()["money_per_week"] == pytest.approx(4.05)


def test_a_return_rate_is_valued_on_its_settled_read_not_on_the_k_day_read_that_decides(tiny_snap, config):
    # the K-day read decides (-5 points); the 28-day read (returns after day 14 counted) says -2 points [-4, 0]
    c = comparison(estimate=-0.05, ci=(-0.08, -0.02))
    c["settled"] = {"days": 28, "settled_days": 28, "estimate": -0.02, "ci_low": -0.04, "ci_high": 0.0,
                    "why": "valued on the returns within 28 days of delivery"}
    (item,) = valued([verdict_for(c)], tiny_snap, config)
    assert item.verdict.decision == "keep"  # the decision is still the K-day read's
    assert item.money == pytest.approx((0.02 * 3 * 27, 0.0, 0.04 * 3 * 27))
    entry = item.journal_entry("2026-W47")
    assert entry.money_window_days == 28 and entry.k_read == item.verdict.k_read
    assert item.summary_row()["money_window_days"] == 28


def test_without_a_longer_readable_window_the_money_is_valued_at_k_and_says_so(tiny_snap, config):
    (item,) = valued([verdict_for(comparison(estimate=-0.05, ci=(-0.08, -0.02)))], tiny_snap, config)
    assert item.money_window_days == 14  # the return rate's own window


def test_a_metric_without_a_money_value_stays_unvalued(tiny_snap, config):
    c = comparison(estimate=0.01, ci=(0.002, 0.02), expected=(0.001, 0.02), good="higher")
    c["primary"]["metric"] = "conversion_rate"
    (item,) = valued([verdict_for(c)], tiny_snap, config)
    assert item.money is None and item.journal_entry("2026-W47").money_per_week is None


def test_a_return_rate_read_at_another_window_than_the_configured_one_stays_unvalued(tiny_snap, config):
    """The cohort's week is valued with returns within the configured k: a 7-day change is not priced with it."""
    c = comparison(estimate=-0.05, ci=(-0.08, -0.02))
    c["primary"]["metric"] = "return_rate_7d"
    (item,) = valued([verdict_for(c)], tiny_snap, config)
    assert item.money is None


def test_an_extended_test_counts_its_earlier_looks_against_the_new_plan():
    from playbook.journal.store import EarlierLook

    # planned 400 customers per arm, extended to 800 before the review: a look read at 50 % of the first plan
    # is at 25 % of the new one, and a read now at 600 customers is at 75 %, not final
    c = read("comparisons", [comparison(planned_information=800.0, original_planned_information=400.0,
                                        review_date="2026-12-14", read_on="2026-11-29",
                                        primary={**comparison()["primary"], "information": 600.0})])[0]
    earlier = [EarlierLook(IsoWeek.parse("2026-W47"), "continue", 0.5, 2.96)]
    look = look_for(c, earlier)
    assert (look.fraction, look.final) == (0.75, False)
    assert look.boundary == pytest.approx(look_boundary([0.25], 0.75, final=False).boundary)
