"""Metric values on the tiny shop, each checked against a value computed by hand."""
from __future__ import annotations

import datetime as dt

import pytest

from playbook.core.settings import MetricSettings
from playbook.data.dataset import open_dataset
from playbook.metrics.dictionary import cohort_week, compute_metrics, definitions
from playbook.metrics.metric import CohortWeek

W45, W46, W47 = dt.date(2026, 11, 2), dt.date(2026, 11, 9), dt.date(2026, 11, 16)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from conftest import write_shop

    shop = write_shop(tmp_path_factory.mktemp("tiny") / "shop")
    return compute_metrics(open_dataset(shop).as_of("2026-W47"), MetricSettings())


def value(results, metric, week, slice_col="all", slice_value="all"):
    s = results.series(metric, slice_col, slice_value)
    row = s[s.week_start == week]
    assert len(row) == 1, f"{metric} {week} {slice_col}={slice_value}: {len(row)} rows"
    return row.iloc[0]


def test_return_rate_counts_units_returned_within_k_days_of_delivery(results):
    # W45 deliveries: L1 (2 units), L2 (1), L3 (1); only R1 (1 unit, 6 days after delivery) is within 14 days;
    # R3 comes 16 days after delivery and R2 after the cut.
    row = value(results, "return_rate_14d", W45)
    assert (row.numerator, row.denominator) == (1, 4)
    assert row.value == pytest.approx(0.25)
    assert row.mature


def test_return_rate_of_a_week_without_full_follow_up_is_marked_not_mature(results):
    row = value(results, "return_rate_14d", W46)
    assert row.value == pytest.approx(1.0)  # R4 within 2 days of delivery; the rate is shown as not mature
    assert not row.mature


def test_return_rate_by_category_slices_the_same_units(results):
    row = value(results, "return_rate_14d", W45, "category", "knitwear")
    assert (row.numerator, row.denominator) == (1, 3)


def test_return_cost_ratio_divides_return_costs_by_net_revenue_of_the_same_units(results):
    # costs of R1: 20 + 5 + 2; net revenue of W45 deliveries: (100-10) + 80 + (40-4)
    assert value(results, "return_cost_ratio", W45).value == pytest.approx(27 / 206)


def test_discount_depth_is_in_points_of_gross_value(results):
    assert value(results, "discount_depth", W45).value == pytest.approx(100 * 14 / 220)
    assert value(results, "discount_depth", W46).value == pytest.approx(10.0)


def test_delivery_promise_kept_is_the_share_of_delivered_orders_on_time(results):
    assert value(results, "delivery_promise_kept", W45).value == pytest.approx(0.5)


def test_click_to_possession_is_the_median_days_from_order_to_delivery(results):
    o1 = (dt.datetime(2026, 11, 4, 9) - dt.datetime(2026, 11, 2, 10)).total_seconds() / 86400
    assert value(results, "click_to_possession_days", W45).value == pytest.approx((o1 + 5.0) / 2)


def test_conversion_rate_is_orders_over_sessions(results):
    assert value(results, "conversion_rate", W45).value == pytest.approx(2 / 150)


def test_contacts_use_the_default_cost_when_empty(results):
    assert value(results, "contact_rate", W45).value == pytest.approx(1 / 2)
    assert value(results, "wismo_share", W45).value == pytest.approx(1.0)
    assert value(results, "contact_cost", W45).value == pytest.approx(4.5)


def test_closure_rate_counts_only_actions_closed_by_the_end_of_their_week(results):
    # A1 closed in W45; A2 closed the week after; A3 open
    assert value(results, "closure_rate", W45).value == pytest.approx(1 / 3)


def test_an_action_closed_after_the_cut_is_still_open(results):
    assert value(results, "closure_rate", W47).value == pytest.approx(0.0)


def test_customer_type_separates_first_orders_from_repeat_orders(results):
    assert value(results, "discount_depth", W46, "customer_type", "repeat").value == pytest.approx(10.0)
    s = results.series("discount_depth", "customer_type", "first_time")
    assert W46 not in set(s.week_start)


def test_net_cac_divides_spend_by_new_customers_not_fully_returned(results):
    assert value(results, "net_cac", W45).value == pytest.approx(150 / 2)


def test_reason_mix_maps_unknown_codes_to_other(results):
    mix = results.reason_mix
    w46 = mix[(mix.slice == "all") & (mix.week_start == W46)]
    assert set(w46.reason_code) == {"other"}


def test_a_missing_optional_table_makes_its_metrics_not_available(tmp_path):
    from conftest import write_shop

    folder = write_shop(tmp_path / "nosessions", drop=("sessions",))
    r = compute_metrics(open_dataset(folder).as_of("2026-W47"), MetricSettings())
    assert r.unavailable["conversion_rate"] == "not available (no sessions table)"
    assert "conversion_rate" not in set(r.frame.metric)


def test_a_past_week_gives_the_same_numbers_whatever_was_added_since(tiny_shop, tmp_path):
    from conftest import TINY_SHOP, write_shop

    before = compute_metrics(open_dataset(tiny_shop).as_of("2026-W46"), MetricSettings()).frame
    more = {k: list(v) for k, v in TINY_SHOP.items()}
    more["orders"].append(("O5", "2026-11-30 09:00:00", "C4", "web", "north", "2026-12-03", "", 3.0))
    more["order_lines"].append(("L6", "O5", "A", "knitwear", 1, 50.0, 0.0, 20.0))
    more["returns"].append(("R5", "L1", "2026-11-28 10:00:00", 1, "quality", "", 20.0, 5.0, 2.0, "refund"))
    after = compute_metrics(open_dataset(write_shop(tmp_path / "more", more)).as_of("2026-W46"), MetricSettings()).frame
    assert before.equals(after)


@pytest.fixture(scope="module")
def no_contacts(tmp_path_factory):
    """The tiny shop with a contacts.csv holding only its header."""
    from conftest import TINY_SHOP, write_shop

    folder = write_shop(tmp_path_factory.mktemp("empty") / "shop", {**TINY_SHOP, "contacts": []})
    return compute_metrics(open_dataset(folder).as_of("2026-W46"), MetricSettings())


def test_an_empty_optional_table_makes_its_metrics_not_available_for_want_of_rows(no_contacts):
    assert no_contacts.unavailable["contact_rate"] == "not available (no contacts rows)"
    assert no_contacts.unavailable["wismo_share"] == "not available (no contacts rows)"
    assert no_contacts.unavailable["contact_cost"] == "not available (no contacts rows)"


def test_an_empty_optional_table_is_never_computed_as_zero(no_contacts):
    assert not {"contact_rate", "wismo_share", "contact_cost"} & set(no_contacts.frame.metric)


# --- what a change is worth in money -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_snapshot(tmp_path_factory):
    from conftest import write_shop

    return open_dataset(write_shop(tmp_path_factory.mktemp("tiny_money") / "shop")).as_of("2026-W47")


def test_a_cohort_week_averages_its_mature_delivery_weeks_since_the_data_began(tiny_snapshot):
    # knitwear delivered in W45 (the only mature week since the first order): L1 (2 units x 50) and L3 (1 x 40);
    # within 14 days only R1 came back (1 unit, 20 + 5 + 2); W46 is not mature at the end of W47
    week = cohort_week(tiny_snapshot, MetricSettings(), {"category": "knitwear"})
    assert week == CohortWeek(units=3.0, gross=140.0, cost_per_return=27.0, weeks=(dt.date(2026, 11, 2),))


def test_a_return_rate_change_is_worth_the_returns_avoided_at_the_cohorts_cost():
    d = definitions(MetricSettings())
    week = CohortWeek(units=500.0, gross=20_000.0, cost_per_return=40.0, weeks=())
    assert d["return_rate_14d"].money_per_week(-0.02, week) == pytest.approx(0.02 * 500 * 40)
    assert d["discount_depth"].money_per_week(-3.0, week) == pytest.approx(0.03 * 20_000)  # points of gross
    assert d["conversion_rate"].money_per_week(0.01, week) is None
    assert d["return_rate_14d"].money_per_week(None, week) is None


# --- a week with sessions and no order: conversion 0 is a value to judge ------------------------------

def _statuses_without(tmp_path, orders: tuple[str, ...], week: str = "2026-W47"):
    """The tiny shop without ``orders`` (and their lines and returns), its baseline statuses in ``week``."""
    from conftest import TINY_SHOP, write_shop

    from playbook.config.loader import load_config
    from playbook.steps.baseline import capture_baseline

    lines = [line for line in TINY_SHOP["order_lines"] if line[1] not in orders]
    kept = {line[0] for line in lines}
    shop = dict(TINY_SHOP, orders=[o for o in TINY_SHOP["orders"] if o[0] not in orders], order_lines=lines,
                returns=[r for r in TINY_SHOP["returns"] if r[1] in kept])
    _, statuses = capture_baseline(open_dataset(write_shop(tmp_path / "shop", shop)).as_of(week), load_config())
    return {s.metric: s for s in statuses}


def test_a_week_with_sessions_and_no_order_is_red_against_a_short_baseline(tmp_path):
    # W47: 40 sessions, its only order (O4) removed; W45 2 orders / 150 sessions, W46 1 / 80: baseline 1.29 %
    conv = _statuses_without(tmp_path, ("O4",))["conversion_rate"]
    assert (conv.week, conv.value, conv.details["denominator"]) == ("2026-W47", 0.0, 40.0)
    assert conv.baseline == pytest.approx((2 / 150 + 1 / 80) / 2)
    assert conv.status == "red", conv.why
    assert "no orders placed over 40 sessions" in conv.why and "collapsed to zero" in conv.why


def test_a_first_week_with_sessions_and_no_order_is_flagged_not_green(tmp_path):
    # read in W45, the data's first week, without its two orders: 150 sessions, no order, nothing before
    conv = _statuses_without(tmp_path, ("O1", "O2"), week="2026-W45")["conversion_rate"]
    assert (conv.week, conv.value, conv.baseline_weeks) == ("2026-W45", 0.0, 0)
    assert conv.status == "amber" and "no orders placed over 150 sessions" in conv.why, conv.why


def test_revenue_per_visitor_of_a_week_with_sessions_and_no_order_is_red_too(tmp_path):
    # the same 40 sessions without revenue, against (100 - 10 + 80 + 40 - 4) / 150 and (50 - 5) / 80 per session
    rpv = _statuses_without(tmp_path, ("O4",))["revenue_per_visitor"]
    assert (rpv.value, rpv.baseline) == (0.0, pytest.approx((206 / 150 + 45 / 80) / 2))
    assert rpv.status == "red" and "collapsed to zero" in rpv.why, rpv.why
