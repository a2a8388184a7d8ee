"""Tests for playbook.stats.power: closed forms, statsmodels round trips and a power simulation."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from playbook.stats.power import minimum_detectable_effect, weeks_needed
from playbook.stats.proportions import proportion_difference


def test_mde_cohens_h_matches_closed_form():
    # |h| = (z_{1-α/2} + z_power) · sqrt(2/n); the far tail is negligible at this size
    res = minimum_detectable_effect(0.2, 3000, alpha=0.05, power=0.8)
    closed = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(2 / 3000)
    assert res.cohens_h == pytest.approx(closed, rel=1e-4)


def test_mde_inverts_cohens_h_back_to_a_rate():
    res = minimum_detectable_effect(0.2, 3000)
    h = 2 * math.asin(math.sqrt(res.target_rate)) - 2 * math.asin(math.sqrt(0.2))
    assert h == pytest.approx(-res.cohens_h, rel=1e-9)
    assert res.absolute_change == pytest.approx(res.target_rate - 0.2)
    assert res.absolute_change < 0
    assert res.relative_change == pytest.approx(res.target_rate / 0.2 - 1)


def test_mde_has_the_planned_power_in_statsmodels():
    res = minimum_detectable_effect(0.12, 5000, alpha=0.05, power=0.9)
    es = proportion_effectsize(0.12 + res.absolute_change, 0.12)
    assert NormalIndPower().power(es, nobs1=5000, alpha=0.05) == pytest.approx(0.9, abs=1e-4)


def test_increase_direction_gives_positive_change():
    res = minimum_detectable_effect(0.2, 3000, direction="increase")
    assert res.absolute_change > 0
    assert res.cohens_h == pytest.approx(minimum_detectable_effect(0.2, 3000).cohens_h)


def test_design_effect_is_the_same_as_fewer_units():
    a = minimum_detectable_effect(0.2, 6000, design_effect=2.0)
    b = minimum_detectable_effect(0.2, 3000)
    assert a.absolute_change == pytest.approx(b.absolute_change, rel=1e-6)


@pytest.mark.parametrize(
    ("base_rate", "n_per_arm", "planted_seed"),
    [(0.20, 3000, 11), (0.05, 5000, 12)],
)
def test_planted_mde_is_detected_at_the_planned_power_by_simulation(base_rate, n_per_arm, planted_seed):
    """2,000 simulated tests with the true change equal to the MDE: ~80% are detected."""
    mde = minimum_detectable_effect(base_rate, n_per_arm, power=0.8)
    rng = np.random.default_rng(planted_seed)
    treat = rng.binomial(n_per_arm, mde.target_rate, 2000)
    ctrl = rng.binomial(n_per_arm, base_rate, 2000)
    detected = np.mean([
        proportion_difference(t, n_per_arm, c, n_per_arm).ci_high < 0 for t, c in zip(treat, ctrl)
    ])
    assert 0.76 <= detected <= 0.84, f"detected {detected:.3f}"


def test_too_small_volume_has_no_mde_and_says_why():
    res = minimum_detectable_effect(0.01, 5)
    assert res.error and "volume too small" in res.error
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_rate": 0.0, "n_per_arm": 100},
        {"base_rate": 1.2, "n_per_arm": 100},
        {"base_rate": 0.2, "n_per_arm": 0},
        {"base_rate": 0.2, "n_per_arm": 100, "power": 1.0},
        {"base_rate": 0.2, "n_per_arm": 100, "alpha": 0.0},
        {"base_rate": 0.2, "n_per_arm": 100, "design_effect": 0.5},
        {"base_rate": 0.2, "n_per_arm": 100, "direction": "sideways"},
        {"base_rate": float("nan"), "n_per_arm": 100},
    ],
)
def test_invalid_mde_input_returns_error(kwargs):
    res = minimum_detectable_effect(**kwargs)
    assert res.error and res.absolute_change is None
    json.dumps(res.to_dict(), allow_nan=False)


# --- weeks_needed -----------------------------------------------------------------------------


def test_weeks_needed_is_the_smallest_whole_number_of_weeks():
    res = weeks_needed(0.2, -0.02, 1500)
    assert res.reachable and res.weeks is not None
    h = abs(proportion_effectsize(0.18, 0.2))
    power = NormalIndPower().power
    assert power(h, nobs1=res.weeks * 1500, alpha=0.05) >= 0.8
    assert power(h, nobs1=(res.weeks - 1) * 1500, alpha=0.05) < 0.8
    assert res.achieved_power == pytest.approx(power(h, nobs1=res.weeks * 1500, alpha=0.05))


def test_weeks_needed_counts_an_exact_fit_as_one_week():
    mde = minimum_detectable_effect(0.2, 3000)
    res = weeks_needed(0.2, mde.absolute_change, 3000)
    assert res.weeks == 1


def test_weeks_needed_matches_statsmodels_sample_size():
    res = weeks_needed(0.1, -0.01, 2000, max_weeks=52)
    n = NormalIndPower().solve_power(abs(proportion_effectsize(0.09, 0.1)), alpha=0.05, power=0.8)
    assert res.n_per_arm_needed == pytest.approx(n, rel=1e-6)
    assert res.weeks == math.ceil(n / 2000)


def test_unreachable_plan_says_so_with_power_at_the_cap():
    res = weeks_needed(0.2, -0.002, 2000, max_weeks=8)
    assert not res.reachable and res.weeks is None
    assert res.error is None
    assert "not reachable within 8 weeks" in res.message
    assert res.achieved_power < 0.8
    assert res.units_per_arm == 16000
    json.dumps(res.to_dict(), allow_nan=False)


def test_weeks_needed_doubles_units_with_design_effect_two():
    a = weeks_needed(0.2, -0.02, 1000, design_effect=2.0, max_weeks=52)
    b = weeks_needed(0.2, -0.02, 1000, max_weeks=52)
    assert a.n_per_arm_needed == pytest.approx(2 * b.n_per_arm_needed)


@pytest.mark.parametrize(
    "args",
    [(0.2, 0.0, 1000), (0.2, -0.3, 1000), (0.2, -0.02, 0), (1.0, -0.02, 1000), (0.2, float("inf"), 100)],
)
def test_invalid_weeks_input_returns_error(args):
    res = weeks_needed(*args)
    assert res.error and not res.reachable and res.weeks is None
    json.dumps(res.to_dict(), allow_nan=False)


# --- the review's K-day read, customers as clusters ---------------------------------------------

from playbook.stats.power import (  # noqa: E402
    clustering_from_sums,
    customer_clustering,
    k_day_read_mde,
    k_day_read_plan,
    k_day_read_power,
)


def test_k_day_read_power_is_statsmodels_one_sided_normal_power_on_the_mature_units():
    """Reference for the normal power function; the variance model itself is validated by simulation."""
    p0, change, weekly, k, days, deff = 0.18, -0.03, 700, 14, 35, 1.4
    res = k_day_read_power(p0, change, weekly, k, days, design_effect=deff)
    n = weekly / 7 * (days - k)
    p1 = p0 + change
    # control: deff x binomial; treatment: binomial + the customer-level part scaled by (p1/p0)²
    sd = math.sqrt((deff * p0 * (1 - p0) + p1 * (1 - p1) + (deff - 1) * p0 * (1 - p0) * (p1 / p0) ** 2) / 2)
    expected = NormalIndPower().power(abs(change) / sd, nobs1=n, alpha=0.025, ratio=1.0, alternative="larger")
    assert res.mature_units_per_arm == pytest.approx(n) and res.mature_share == pytest.approx(21 / 35)
    assert res.power == pytest.approx(expected, rel=1e-9)


def test_a_read_before_k_days_has_no_mature_unit_and_no_power():
    res = k_day_read_power(0.2, -0.05, 1000, 14, 7)
    assert res.mature_units_per_arm == 0 and res.power == 0


def test_the_plan_reviews_at_the_first_week_that_reaches_power():
    plan = k_day_read_plan(0.2, -0.03, 800, 14, design_effect=1.3)
    powers = [r.power for r in plan.by_week]
    assert plan.weeks == next(w for w, p in enumerate(powers, start=1) if p >= 0.8)
    assert plan.achieved_power == pytest.approx(powers[plan.weeks - 1], rel=1e-12)  # one look: the read's power


def test_an_unreachable_plan_reports_its_uncapped_weeks_and_its_power_at_the_cap():
    plan = k_day_read_plan(0.2, -0.01, 800, 14, design_effect=1.3, max_weeks=8)
    assert plan.weeks is None and not plan.reachable and plan.weeks_uncapped > 8
    assert plan.achieved_power == plan.by_week[7].power < 0.8
    json.dumps(plan.to_dict(), allow_nan=False)


def test_the_design_effect_may_grow_with_the_read_length():
    flat = k_day_read_plan(0.2, -0.03, 800, 14, design_effect=1.2)
    growing = k_day_read_plan(0.2, -0.03, 800, 14, design_effect=lambda days: 1.2 + days / 70)
    assert growing.weeks_uncapped > flat.weeks_uncapped


def test_k_day_read_mde_has_the_planned_power():
    change = k_day_read_mde(0.15, 900, 14, 28, design_effect=1.25)
    assert change < 0
    assert k_day_read_power(0.15, change, 900, 14, 28, 1.25).power == pytest.approx(0.8, abs=1e-9)


def test_one_unit_per_customer_has_no_design_effect():
    # independent Bernoulli units: the delta variance is the binomial one times G/(G-1)
    rng = np.random.default_rng(3)
    returned = rng.random(5000) < 0.2
    c = customer_clustering(np.ones(5000), returned)
    assert c.details["raw_design_effect"] == pytest.approx(5000 / 4999) and c.icc is None


def test_customers_who_return_all_or_nothing_have_a_design_effect_of_their_size():
    # Kish: deff = 1 + (m - 1) ICC with ICC = 1 -> m
    rng = np.random.default_rng(4)
    units = np.full(4000, 3.0)
    returned = units * (rng.random(4000) < 0.2)
    c = customer_clustering(units, returned)
    assert c.design_effect == pytest.approx(3.0, rel=1e-3) and c.icc == pytest.approx(1.0, rel=1e-3)


def test_clustering_without_returns_says_why():
    c = clustering_from_sums(10, 30.0, 0.0, 100.0, 0.0, 0.0)
    assert c.error and c.design_effect is None
    json.dumps(c.to_dict(), allow_nan=False)


def test_without_clustering_the_k_day_read_is_the_two_proportion_z_test_power():
    # deff = 1: the unpooled two-proportion z-test on the mature units (statsmodels' normal power)
    p0, p1, n = 0.2, 0.17, 2000
    res = k_day_read_power(p0, p1 - p0, n * 7 / 21, 14, 35)
    sd = math.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / 2)
    expected = NormalIndPower().power(0.03 / sd, nobs1=n, alpha=0.025, alternative="larger")
    assert res.mature_units_per_arm == pytest.approx(n) and res.power == pytest.approx(expected, rel=1e-9)
