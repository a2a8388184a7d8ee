"""Step 4: guardrail breaches, which experiments are due, the exposure of a randomized test and its
comparisons on a small shop whose numbers are known by construction, and the error paths."""
from __future__ import annotations

import datetime as dt

import pytest
from conftest import write_shop

from playbook.config.loader import load_config
from playbook.data.dataset import open_dataset
from playbook.report.rendering import comparison_checks
from playbook.stats.results import Estimate
from playbook.steps.experiments import (
    MetricComparison,
    compare_due,
    comparison_table,
    conclusion,
    due_for_review,
    exposure_lines,
)

# --- guardrail states (hand-computed intervals; 95 % two-sided = one-sided 2.5 % bounds) ------------


def guardrail(estimate, lo, hi, good, tolerance, role="guardrail"):
    return MetricComparison("g", Estimate(estimate, lo, hi, "delta", 100), good, role, tolerance=tolerance)


@pytest.mark.parametrize("estimate, lo, hi, good, tol, state", [
    # lower-is-good guardrail (harm = a rise), tolerance +1 point
    (0.002, -0.004, 0.008, "lower", 0.01, "safe"),              # upper bound 0.008 < 0.01
    (0.001, -0.034, 0.032, "lower", 0.01, "not_shown_safe"),     # the contact rate [-3.4, +3.2] pts
    (0.02, 0.005, 0.035, "lower", 0.01, "harm_likely"),          # estimate past, lower bound 0.005 is not
    (0.02, -0.001, 0.041, "lower", 0.01, "not_shown_safe"),      # estimate past, but harm not shown (interval includes 0)
    (0.03, 0.015, 0.045, "lower", 0.01, "breached"),             # whole interval past +0.01
    (-0.05, -0.07, -0.03, "lower", 0.01, "safe"),                # a fall is no harm
    # higher-is-good guardrail (harm = a drop), tolerance 2.0
    (-0.5, -1.5, 0.5, "higher", 2.0, "safe"),                    # lowest plausible -1.5 > -2
    (-1.5, -2.5, -0.5, "higher", 2.0, "not_shown_safe"),         # reaches -2.5, estimate -1.5 inside
    (-3.0, -5.0, -1.0, "higher", 2.0, "harm_likely"),
    (-4.0, -5.5, -2.5, "higher", 2.0, "breached"),
    (3.0, 1.0, 5.0, "higher", 2.0, "safe"),
])
def test_guardrail_state_per_case(estimate, lo, hi, good, tol, state):
    assert guardrail(estimate, lo, hi, good, tol).state.value == state


def test_only_a_breached_guardrail_reads_breached():
    assert guardrail(0.03, 0.015, 0.045, "lower", 0.01).breached
    assert not guardrail(0.02, 0.005, 0.035, "lower", 0.01).breached  # harm likely, not breached


def test_a_guardrail_without_an_interval_is_not_measured_with_why():
    m = MetricComparison("g", Estimate.unavailable("delta", 0, "empty arm"), "lower", "guardrail", tolerance=0.01)
    assert m.state.value == "not_measured" and not m.breached
    assert "empty arm" in m.to_dict()["state_why"]


def test_a_guardrail_without_tolerance_is_breached_by_any_significant_harm():
    assert guardrail(0.001, 0.0005, 0.0015, "lower", None).state.value == "breached"


def test_the_state_is_read_at_the_plans_alpha():
    # 95 % interval [-0.011, 0.011]: se = 0.011 / 1.95996 = 0.005612; one-sided 5 % bound 1.64485 x se = 0.00923
    from playbook.steps.verdict import guardrail_state

    kw = dict(tolerance=0.01, bad_direction="higher")
    assert guardrail_state(0.0, -0.011, 0.011, alpha=0.025, **kw).value == "not_shown_safe"
    assert guardrail_state(0.0, -0.011, 0.011, alpha=0.05, **kw).value == "safe"


def test_a_primary_metric_has_no_guardrail_state():
    assert guardrail(0.02, 0.005, 0.035, "lower", 0.01, role="primary").state is None


def test_the_state_and_breach_are_written_into_the_guardrails_dict():
    d = guardrail(0.03, 0.015, 0.045, "lower", 0.01).to_dict()
    assert d["state"] == "breached" and d["breached"] is True and d["tolerance"] == 0.01 and "expected_low" not in d


def test_a_not_shown_safe_guardrail_gets_a_follow_up_date_from_the_power_for_its_tolerance():
    # se = 0.066 / 3.91993 = 0.016837; se needed = 0.01 / (1.95996 + 0.84162) = 0.0035694;
    # 7 days so far x (0.016837 / 0.0035694)^2 = 155.75 -> 156 days after the start
    from playbook.steps.experiments import guardrail_follow_up_date

    start = dt.date(2026, 11, 2)
    m = guardrail(0.001, -0.034, 0.032, "lower", 0.01)
    assert guardrail_follow_up_date(m, start, start + dt.timedelta(days=7)) == start + dt.timedelta(days=156)


def test_a_follow_up_beyond_half_a_year_has_no_date():
    from playbook.steps.experiments import guardrail_follow_up_date

    start = dt.date(2026, 11, 2)
    m = guardrail(0.001, -0.07, 0.072, "lower", 0.01)  # se 0.0362: ~720 days
    assert guardrail_follow_up_date(m, start, start + dt.timedelta(days=7)) is None


# --- a small randomized shop -------------------------------------------------------------------------

TREAT = [f"T{i:02d}" for i in range(1, 21)]
CTRL = [f"C{i:02d}" for i in range(1, 21)]
D_T = [5 + (i % 11) for i in range(20)]  # discount on a 100.0 line, treatment
D_C = [15 + (i % 11) for i in range(20)]  # control


def exp_row(eid, cohort, design, metric, lo, hi, start, review):
    return (eid, f"lever {eid}", cohort, design, "", metric, lo, hi, start, review)


def experiment_shop(with_assignments: bool = True) -> dict[str, list[tuple]]:
    """40 customers assigned 20/20 on 2026-11-16 (T04 only on 11-18), one knitwear order each on 11-17,
    plus orders that must stay outside the exposure; experiments due in 2026-W47 and others."""
    orders, lines, returns, contacts, assignments = [], [], [], [], []

    def order(oid, cust, ts, cat, disc, delivered=True):
        t = dt.datetime.fromisoformat(ts)
        orders.append((oid, ts, cust, "web", "north", str((t + dt.timedelta(days=2)).date()),
                       str(t + dt.timedelta(days=1)) if delivered else "", 4.0))
        lines.append((f"L{oid}", oid, "SKU", cat, 1, 100.0, float(disc), 40.0))

    for i, c in enumerate(TREAT):
        order(f"OT{i:02d}", c, "2026-11-17 10:00:00", "knitwear", D_T[i])
    for i, c in enumerate(CTRL):
        order(f"OC{i:02d}", c, "2026-11-17 10:00:00", "knitwear", D_C[i])
    order("OX1", "T01", "2026-11-15 10:00:00", "knitwear", 0)  # before the start and the assignment
    order("OX2", "T02", "2026-11-21 10:00:00", "knitwear", 0)  # after EXP-D's review date
    order("OX3", "T03", "2026-11-17 11:00:00", "shoes", 0)  # outside the cohort
    order("OX4", "U01", "2026-11-17 10:00:00", "knitwear", 0)  # never assigned
    order("OLAST", "U02", "2026-11-22 20:00:00", "bags", 0, delivered=False)
    returns.append(("R1", "LOC00", "2026-11-20 10:00:00", 1, "size_too_small", "", 80.0, 5.0, 2.0, "refund"))
    for i in (4, 5, 6):  # three contacts, on treatment orders
        contacts.append((f"K{i}", "2026-11-19 10:00:00", f"OT{i:02d}", "product_question", 3.0))
    experiments = [
        exp_row("EXP-D", "category=knitwear", "randomized", "discount_depth", -5, -1, "2026-11-16", "2026-11-20"),
        exp_row("EXP-U", "category=knitwear", "randomized", "conversion_rate", 0.001, 0.01, "2026-11-16", "2026-11-22"),
        exp_row("EXP-S", "category=shoes", "randomized", "discount_depth", -5, -1, "2026-11-16", "2026-11-22"),
        exp_row("EXP-P", "category=knitwear", "pre_post", "wismo_share", -0.01, -0.001, "2026-11-16", "2026-11-22"),
        exp_row("EXP-LATER", "channel=app", "randomized", "return_rate_14d", -0.1, -0.02, "2026-11-16", "2026-12-04"),
        exp_row("EXP-OLD", "region=south", "randomized", "return_rate_14d", -0.1, -0.02, "2026-10-26", "2026-11-08"),
    ]
    for eid in ("EXP-D", "EXP-U"):
        for c in TREAT:
            assignments.append((eid, c, "treatment", "2026-11-18 08:00:00" if c == "T04" else "2026-11-16 08:00:00"))
        assignments += [(eid, c, "control", "2026-11-16 08:00:00") for c in CTRL]
    assignments += [("EXP-S", f"S{i:02d}", "treatment" if i < 35 else "control", "2026-11-16 08:00:00") for i in range(40)]
    tables = {"orders": orders, "order_lines": lines, "returns": returns, "contacts": contacts, "experiments": experiments}
    if with_assignments:
        tables["assignments"] = assignments
    return tables


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("exp") / "shop", experiment_shop())).as_of("2026-W47")


@pytest.fixture(scope="module")
def compared(snap, config):
    return {c.experiment_id: c for c in compare_due(snap, config)}


def test_only_experiments_reviewed_in_the_week_are_due(snap):
    assert list(due_for_review(snap)["experiment_id"]) == ["EXP-D", "EXP-P", "EXP-S", "EXP-U"]


def test_due_for_review_gives_dates_and_an_empty_control_cohort_as_text(snap):
    row = due_for_review(snap).set_index("experiment_id").loc["EXP-D"]
    assert (row["start_date"], row["review_date"]) == (dt.date(2026, 11, 16), dt.date(2026, 11, 20))
    assert row["control_cohort"] == ""


def test_the_exposure_is_the_cohorts_lines_of_assigned_customers_after_assignment_within_the_test(snap):
    exp = due_for_review(snap).set_index("experiment_id").loc["EXP-D"].to_dict() | {"experiment_id": "EXP-D"}
    lines = exposure_lines(snap, exp, 14)
    expected = {f"LOT{i:02d}" for i in range(20) if i != 3} | {f"LOC{i:02d}" for i in range(20)}  # T04 = index 3
    assert set(lines["line_id"]) == expected
    assert dict(lines.groupby("arm").size()) == {"control": 20, "treatment": 19}


def test_discount_depth_is_compared_as_a_difference_of_ratios_of_customer_sums(compared):
    e = compared["EXP-D"].primary.estimate
    t = [d for i, d in enumerate(D_T) if i != 3]  # T04 ordered before being assigned
    by_hand = 100 * sum(t) / (100 * len(t)) - 100 * sum(D_C) / (100 * len(D_C))
    assert e.ok and e.estimate == pytest.approx(by_hand)
    assert e.ci_low < e.estimate < e.ci_high and e.n == 39


def test_the_contact_guardrail_counts_contacts_per_exposed_order(compared):
    g = {m.metric: m for m in compared["EXP-D"].guardrails}["contact_rate"]
    # 3 contacts on 19 exposed treatment orders (K4 on T05, K5 on T06, K6 on T07), none in control
    assert g.estimate.estimate == pytest.approx(3 / 19)


def test_net_revenue_per_customer_counts_every_assigned_customer_even_without_exposure(compared):
    g = {m.metric: m for m in compared["EXP-D"].guardrails}["net_revenue_per_customer"]
    t = sum(100 - d for i, d in enumerate(D_T) if i != 3) / 20  # T04 counts as 0
    c = sum(100 - d for d in D_C) / 20
    assert g.estimate.estimate == pytest.approx(t - c)


def test_a_balanced_split_is_not_a_sample_ratio_mismatch(compared):
    c = compared["EXP-D"]
    assert c.srm is not None and not c.srm.mismatch
    assert not any("sample ratio mismatch" in w for w in c.warnings)


def test_a_35_to_5_split_is_a_sample_ratio_mismatch_with_a_warning(compared):
    c = compared["EXP-S"]
    assert c.srm.mismatch
    assert any("sample ratio mismatch" in w for w in c.warnings)
    assert c.to_dict()["srm_mismatch"] is True


def test_an_unsupported_randomized_primary_metric_gives_an_error_text_not_an_exception(compared):
    e = compared["EXP-U"].primary.estimate
    assert not e.ok and e.estimate is None
    assert "'conversion_rate' is not computable for randomized designs" in e.error


def test_an_unsupported_pre_post_primary_metric_gives_an_error_text_not_an_exception(compared):
    e = compared["EXP-P"].primary.estimate
    assert not e.ok
    assert "'wismo_share' is not computable for pre/post designs (computable: " in e.error


def test_every_comparison_serialises_with_its_error_and_the_table_lists_primary_and_guardrails(compared):
    d = compared["EXP-U"].to_dict()
    assert d["primary"]["error"].startswith("primary metric 'conversion_rate'")
    table = comparison_table(list(compared.values()))
    assert len(table) == sum(1 + len(c.guardrails) for c in compared.values())
    assert set(table["role"]) == {"primary", "guardrail"}


def test_the_conclusion_says_which_comparisons_have_no_interval(compared):
    text = conclusion(list(compared.values()))
    assert text.startswith("4 experiment(s) compared")
    assert "EXP-U: no interval" in text
    assert conclusion([]) == "No experiment is due for review this week."


def test_describe_checks_mentions_the_split_and_the_warnings(compared):
    text = comparison_checks(compared["EXP-S"])
    assert "mismatch" in text and "Warning:" in text


# --- without assignments -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def without_assignments(tmp_path_factory, config):
    folder = write_shop(tmp_path_factory.mktemp("noassign") / "shop", experiment_shop(with_assignments=False))
    return compare_due(open_dataset(folder).as_of("2026-W47"), config)


def test_compare_due_without_assignments_returns_results_with_an_error(without_assignments):
    randomized = [c for c in without_assignments if c.design == "randomized"]
    assert {c.experiment_id for c in randomized} == {"EXP-D", "EXP-S", "EXP-U"}
    for c in randomized:
        assert c.primary.estimate.error == "not available (no assignments table)"
        assert c.srm is None and c.guardrails == []


def test_the_no_assignment_results_still_serialise(without_assignments):
    d = next(c for c in without_assignments if c.experiment_id == "EXP-D").to_dict()
    assert d["primary"]["error"] == "not available (no assignments table)" and d["srm_mismatch"] is False


def test_compare_due_without_an_experiments_table_is_empty(tmp_path, config):
    snap = open_dataset(write_shop(tmp_path / "shop")).as_of("2026-W47")
    assert due_for_review(snap).empty
    assert compare_due(snap, config) == []


def test_an_asymmetric_interval_is_read_at_its_own_ends():
    # a DiD interval [+0.0013, +0.0239] around +0.0082 (not centred): conversion up, harm is a drop beyond -0.002;
    # its lower end +0.0013 rules that out (a symmetric rebuild, 0.0082 - 1.96 x 0.00576 = -0.0031, would not)
    assert guardrail(0.008209, 0.001265, 0.02385, "higher", 0.002).state.value == "safe"


# --- the optional selection weeks of the experiments table ------------------------------------------

def _shop_with_selection(tmp_path, weeks_by_row: dict[str, tuple[str, str, str]]):
    """The randomized shop whose experiments CSV carries the optional selection-week columns."""
    import pandas as pd

    from playbook.data.contract import SELECTION_COLUMNS, TABLES

    folder = write_shop(tmp_path / "shop", experiment_shop())
    e = pd.DataFrame(experiment_shop()["experiments"], columns=list(TABLES["experiments"].column_names))
    for i, col in enumerate(SELECTION_COLUMNS):
        e[col] = [weeks_by_row.get(eid, ("", "", ""))[i] for eid in e["experiment_id"]]
    e.to_csv(folder / "experiments.csv", index=False)
    return folder


def _violation(tmp_path, weeks_by_row):
    from playbook.data.validation import ContractError

    with pytest.raises(ContractError) as info:
        open_dataset(_shop_with_selection(tmp_path, weeks_by_row))
    (v,) = info.value.violations
    return v, str(info.value)


def test_selection_weeks_given_in_order_pass_and_reach_the_experiment(tmp_path):
    snap = open_dataset(_shop_with_selection(tmp_path, {"EXP-P": ("2026-W30", "2026-W38", "2026-W43")})).as_of("2026-W47")
    row = snap.tables["experiments"].filter(lambda t: t.experiment_id == "EXP-P").to_pandas().iloc[0]
    assert (row.selection_first_week, row.selection_window_week, row.selection_last_week) == (
        "2026-W30", "2026-W38", "2026-W43")


def test_a_selection_week_that_is_not_an_iso_week_is_refused_naming_table_column_rule_rows_and_examples(tmp_path):
    v, msg = _violation(tmp_path, {"EXP-P": ("2026-W30", "2026-09-14", "2026-W43"),
                                   "EXP-D": ("2026-W30", "W38", "2026-W43")})
    assert (v.table, v.column, v.n_rows) == ("experiments", "selection_window_week", 2)
    assert "ISO week" in v.rule and set(v.examples) >= {"EXP-D ('W38')", "EXP-P ('2026-09-14')"}
    assert "experiments.selection_window_week" in msg and "broken by 2 rows" in msg


def test_selection_weeks_given_in_part_are_refused(tmp_path):
    v, msg = _violation(tmp_path, {"EXP-P": ("2026-W30", "", "2026-W43")})
    assert (v.table, v.column, v.n_rows) == ("experiments", "selection_first_week", 1)
    assert "given together" in v.rule and v.examples[0].startswith("EXP-P")


def test_selection_weeks_out_of_order_are_refused(tmp_path):
    v, _ = _violation(tmp_path, {"EXP-P": ("2026-W40", "2026-W38", "2026-W43"),
                                 "EXP-D": ("2026-W30", "2026-W44", "2026-W43")})
    assert (v.table, v.column, v.n_rows) == ("experiments", "selection_window_week", 2)
    assert "selection_first_week <= selection_window_week <= selection_last_week" in v.rule
