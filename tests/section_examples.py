"""summary.json sections as the notebooks write them (complete JSON), for the tests of their readers.

Each function returns a fresh, complete JSON value of one section (values taken from a weekly run of
the sample shop, shortened); keyword arguments replace top-level fields. ``read`` turns one into its
typed model the way the next notebook reads it.
"""
from __future__ import annotations

import copy
from typing import Any

from playbook.report.summary import read_section_value


def read(name: str, value: Any) -> Any:
    """A section's JSON as its model, read through ``playbook.report.summary`` like a notebook reads it."""
    return read_section_value(name, value)


def _with(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(extra)
    return out


def baseline(**extra) -> dict[str, Any]:
    return _with({
        "metrics": {
            "return_rate_14d": {"value": 0.151, "baseline": 0.142, "status": "green", "why": "within its usual range",
                                "week": "2026-W45", "zone": None, "action": None},
            "reason_mix": {"value": {"size_too_small": 0.42, "other": 0.58},
                           "baseline": {"size_too_small": 0.38, "other": 0.62}, "status": "green",
                           "why": "size_too_small share 41.9 % vs 38.1 %", "week": "2026-W45", "zone": None,
                           "action": None},
            "contact_rate": {"value": 0.08, "baseline": 0.076, "status": "green", "why": "fine", "week": "2026-W47",
                             "zone": None, "action": None},
            "closure_rate": {"value": 0.667, "baseline": 0.954, "status": "red", "why": "70.0 % is below the red line",
                             "week": "2026-W47", "zone": "execution", "action": "reduce scope, name an owner"},
        },
        "triggers": [{"zone": "execution", "metric": "closure_rate", "action": "reduce scope, name an owner",
                      "why": "70.0 % is below the red line"}],
    }, extra)


def data_quality(**extra) -> dict[str, Any]:
    return _with({
        "warnings": [{"table": "returns", "rule": "reason code outside the taxonomy", "n_rows": 3,
                      "message": "3 returns with reason_code 'too_big', outside the taxonomy: counted as 'other'",
                      "examples": ["RET-000219", "RET-003044", "RET-008278"]}],
        "missing_tables": [],
    }, extra)


def concentration() -> dict[str, Any]:
    return {"returning_customers": 230, "top_customer": "CUS-04892", "top_customer_units": 3.0,
            "top_customer_share": 0.0199, "customers_for_80": 95}


def weak_cohort(**extra) -> dict[str, Any]:
    return _with({
        "filters": {"category": "knitwear", "reason_code": "size_too_small"}, "units": 2633, "return_rate": 0.0972,
        "expected_rate": 0.0401, "excess_cost": 9737.73, "q_value": 1.37e-14, "excess_events": 150.37,
        "windows": "delivery weeks 2026-W42 to 2026-W45 (window) against 2026-W34 to 2026-W41 (baseline)",
        "window_weeks": ["2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02"], "phi": None, "phi_applied": False,
        "explains": ["channel=app x size_too_small"], "also_real": [], "concentration": concentration(),
    }, extra)


def candidate(**extra) -> dict[str, Any]:
    return _with({"filters": {"category": "knitwear", "reason_code": "size_too_small"}, "excess_cost": 9737.73,
                  "q_value": 1.37e-14, "units": 2633}, extra)


def set_aside(**extra) -> dict[str, Any]:
    return _with({
        "dimension": "channel", "slice_value": "app", "reason_code": "size_too_small", "units": 3058,
        "return_rate": 0.0733, "expected_rate": 0.0461, "excess_events": 82.96, "excess_cost": 5953.98,
        "q_value": 0.000287, "flagged": True, "concentration": concentration(),
        "explained_by": [{"by": "category=knitwear x size_too_small", "excess_points_without": -0.003,
                          "q_without": 1.0, "rule": "survives only inside"}],
        "also_real": [], "filters": {"channel": "app", "reason_code": "size_too_small"},
        "label": "channel=app x size_too_small", "actionable": False, "concentrated": False,
        "why": "channel=app x size_too_small: explained by category=knitwear x size_too_small",
    }, extra)


def lever(**extra) -> dict[str, Any]:
    row = {"experiment_id": "EXP-2026-W48-KNITWEAR-FIT-SIZE-MESSAGE", "lever": "fit_size_message",
           "cohort": "category=knitwear", "design": "randomized", "control_cohort": "",
           "primary_metric": "return_rate_14d", "expected_low": -0.039977, "expected_high": -0.017133,
           "start_date": "2026-11-23", "review_date": "2027-01-11"}
    return _with({
        "lever": "fit_size_message", "cohort": "category=knitwear", "primary_metric": "return_rate_14d",
        "expected_low": -0.03997, "expected_high": -0.01713, "mde": -0.0345, "weeks_needed": 7,
        "underpowered": True, "ready": True, "experiment_id": row["experiment_id"], "design": "randomized",
        "reason_code": "size_too_small", "base_rate": 0.1656, "weekly_units": 658.25,
        "guardrails": [{"metric": "contact_rate", "tolerance": 0.01, "bad_direction": "higher",
                        "description": "contacts per exposed order (+1 point is harm)", "optional": False}],
        "power": "As planned: not reachable within 8 weeks", "start_date": "2026-11-23",
        "first_look_date": "2026-11-30", "review_date": "2027-01-11", "max_weeks": 8, "k_days": 14,
        "design_effect": 1.234, "icc": 0.208, "power_at_review": 0.843, "mature_share_at_review": 0.714,
        "options": [{"kind": "as_planned", "description": "as planned, powered for the weaker end (-1.7 points)",
                     "cohort": "category=knitwear", "expected_low": -0.03997, "expected_high": -0.01713,
                     "expected_change": -0.01713, "base_rate": 0.1656, "weekly_units": 658.25,
                     "design_effect": 1.2086, "weeks": None, "weeks_uncapped": 28, "power": 0.272,
                     "mature_share": 0.75, "reaches_power": False, "can_be_a_row": True,
                     "note": "not reachable within 8 weeks"}],
        "chosen_option": "bigger_lever", "no_row_reason": None, "experiments_row": row,
    }, extra)


def comparison(estimate=-0.03, ci=(-0.05, -0.01), expected=(-0.04, -0.01), good="lower", **extra) -> dict[str, Any]:
    """A ``comparisons`` entry as notebook 04 writes it (randomized, two safe guardrails)."""
    def guardrail(metric, estimate, ci_low, ci_high, tolerance, good_direction):
        return {"metric": metric, "estimate": estimate, "ci_low": ci_low, "ci_high": ci_high, "null_value": 0.0,
                "good_direction": good_direction, "p_value": 0.5, "method": "difference-in-means", "n": 900,
                "error": None, "confidence": 0.95, "std_error": 0.0015, "tolerance": tolerance, "state": "safe",
                "breached": False, "state_why": "shown safe", "optional": False, "follow_up_on": None}
    return _with({
        "experiment_id": "EXP-1", "design": "randomized", "lever": "fit_size_message", "cohort": "category=knitwear",
        "due": "review date this week", "srm_p_value": 0.6, "srm_mismatch": False,
        "srm_assigned": {"control": 450, "treatment": 450}, "srm_exposed_p_value": None,
        "srm_exposed_mismatch": False, "srm_exposed": None, "follow_up_days": 14.0, "planned_looks": 1,
        "primary": {"metric": "return_rate_14d", "estimate": estimate, "ci_low": ci[0], "ci_high": ci[1],
                    "null_value": 0.0, "good_direction": good, "p_value": 0.01, "method": "return-within-k", "n": 900,
                    "error": None, "confidence": 0.95, "std_error": 0.01, "expected_low": expected[0],
                    "expected_high": expected[1]},
        "guardrails": [guardrail("contact_rate", 0.001, -0.002, 0.004, 0.01, "lower"),
                       guardrail("net_revenue_per_customer", 0.5, -1.0, 2.0, 2.0, "higher")],
        "warnings": [], "keep_blockers": [], "views": {},
    }, extra)


def review(**extra) -> dict[str, Any]:
    return _with({
        "experiment_id": "EXP-1", "decision": "keep", "why": "the interval is inside the expected range",
        "next_step": "roll out", "estimate": -0.03, "ci_low": -0.05, "ci_high": -0.01,
        "primary_metric": "return_rate_14d", "k_read": 14, "look": 1, "planned_looks": 4, "readable_on": None,
        "flags": [], "follow_ups": [], "money_per_week": 1331.8, "money_ci": [500.0, 2100.0],
        "guardrails": [{"metric": "contact_rate", "state": "safe", "why": "shown safe", "follow_up_on": None}],
        "reasons": ["the interval is inside the expected range", "guardrail contact_rate: safe"],
    }, extra)


def next_action(**extra) -> dict[str, Any]:
    return _with({"cohort": "category=knitwear", "reason_code": "size_too_small", "action": "fit_size_message",
                  "description": "fit/size message block on the product page", "excess_cost": 9737.73}, extra)


def track_record(**extra) -> dict[str, Any]:
    return _with({
        "week": "2026-W47", "weeks": 8, "first_week": "2026-W40", "n_reviewed": 1,
        "counts": {"keep": 0, "adjust": 0, "stop": 0, "provisional": 1}, "money_per_week": None, "money_ci": None,
        "kept_without_money": [],
        "verdicts": [{"week": "2026-W47", "experiment_id": "EXP-2026-W46-SHOES-FIT", "lever": "fit_size_message",
                      "cohort": "category=shoes", "primary_metric": "return_rate_14d", "expected_low": -0.06,
                      "expected_high": -0.02, "estimate": None, "ci_low": None, "ci_high": None,
                      "decision": "provisional", "money_per_week": None}],
    }, extra)


def overdue(**extra) -> dict[str, Any]:
    return _with({"experiment_id": "EXP-2026-W41-DRESSES-PHOTOS", "review_date": "2026-10-12",
                  "text": "EXP-2026-W41-DRESSES-PHOTOS: review date 2026-10-12 passed without a verdict"}, extra)


def running(**extra) -> dict[str, Any]:
    return _with({"experiment_id": "EXP-2026-W47-DRESSES-DESCRIPTION", "lever": "clearer_description",
                  "cohort": "category=dresses", "design": "pre_post", "start_date": "2026-11-16",
                  "review_date": "2026-12-07"}, extra)


def choice(**extra) -> dict[str, Any]:
    return _with({"name": "lever", "value": "size_guide", "default": '""', "notebooks": ["03_lever_design"]}, extra)


def summary(**sections) -> dict[str, Any]:
    """A whole summary.json: every section of a week, then ``sections`` replacing some."""
    return {"schema_version": 1, "week": "2026-W47", "data_source": "data_samples", "as_of": "2026-11-22 23:59:59",
            "choices": [choice()], "baseline": baseline(), "data_quality": data_quality(), "weak_cohort": weak_cohort(),
            "weak_cohort_candidates": [candidate()], "weak_cohort_set_aside": [set_aside()], "lever": lever(),
            "comparisons": [comparison()], "review": [review()], "next_action": next_action(),
            "track_record": track_record(), "overdue": [overdue()], "running": [running()],
            **sections}
