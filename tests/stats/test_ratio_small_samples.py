"""Small-sample intervals of the customer-clustered ratio (playbook.stats.ratio).

The delta-method normal interval is too liberal with few customers and heavy-tailed baskets;
below 300 customers per arm, or when one customer holds more than 5 % of an arm's lines, the
customer jackknife with Welch t replaces it. References: scipy's Welch t-test (a ratio whose
denominators are all 1 is a mean, and the jackknife variance of a mean is s²/n exactly), and
a seeded Pareto-basket A/A simulation with acceptance bands of three binomial standard errors
around 5 % at the simulation count used.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from playbook.stats.ratio import ratio_difference, ratio_relative_difference

CUSTOMERS = 150          # per arm
PARETO_SHAPE = 1.5       # units per customer = 1 + floor(Lomax(1.5)): infinite variance, heavy baskets
BETA_A, BETA_B = 0.6, 2.4  # customer return propensity, mean 20 %


def pareto_baskets(rng, sims: int, customers: int = CUSTOMERS):
    """(sims, 2, customers) delivered and returned units, both arms from the same law (A/A)."""
    units = np.floor(rng.pareto(PARETO_SHAPE, (sims, 2, customers)) + 1.0)
    propensity = rng.beta(BETA_A, BETA_B, units.shape)
    returned = rng.binomial(units.astype(np.int64), propensity).astype(float)
    return returned, units


def jackknife_t_rejects(returned, units, confidence=0.95):
    """Vectorised replica of the jackknife-t interval: does it exclude the true difference 0?"""
    g = units.shape[-1]
    y, x = returned.sum(-1), units.sum(-1)
    loo = (y[..., None] - returned) / (x[..., None] - units)
    v = (g - 1) / g * ((loo - loo.mean(-1, keepdims=True)) ** 2).sum(-1)
    df = v.sum(-1) ** 2 / (v**2 / (g - 1)).sum(-1)
    diff = y[:, 1] / x[:, 1] - y[:, 0] / x[:, 0]
    return np.abs(diff) / np.sqrt(v.sum(-1)) > stats.t.ppf((1 + confidence) / 2, df)


def delta_normal_rejects(returned, units, confidence=0.95):
    g = units.shape[-1]
    y, x = returned.sum(-1), units.sum(-1)
    r = y / x
    psi = (returned - r[..., None] * units) / x[..., None]
    var = (psi**2).sum(-1) * g / (g - 1)
    diff = r[:, 1] - r[:, 0]
    return np.abs(diff) / np.sqrt(var.sum(-1)) > stats.norm.ppf((1 + confidence) / 2)


def band(sims: int, rate: float = 0.05) -> tuple[float, float]:
    se = math.sqrt(rate * (1 - rate) / sims)
    return rate - 3 * se, rate + 3 * se


def test_the_replica_is_the_public_function():
    returned, units = pareto_baskets(np.random.default_rng(1), 25)
    replica = jackknife_t_rejects(returned, units)
    for i in range(25):
        est = ratio_difference(returned[i, 1], units[i, 1], returned[i, 0], units[i, 0])
        assert est.method == "delta-jackknife-t"
        assert (not (est.ci_low <= 0 <= est.ci_high)) == replica[i]


def test_small_ratio_difference_with_unit_denominators_is_scipys_welch_test():
    rng = np.random.default_rng(3)
    yt, yc = rng.poisson(1.3, 40).astype(float), rng.poisson(1.0, 55).astype(float)
    est = ratio_difference(yt, np.ones_like(yt), yc, np.ones_like(yc))
    welch = stats.ttest_ind(yt, yc, equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert est.p_value == pytest.approx(welch.pvalue, rel=1e-10)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), rel=1e-10)


def test_pareto_basket_aa_at_150_customers_per_arm_misses_about_5_percent():
    sims = 4000
    returned, units = pareto_baskets(np.random.default_rng(20261201), sims)
    rate = jackknife_t_rejects(returned, units).mean()
    low, high = band(sims)
    assert low <= rate <= high, f"jackknife-t miss rate {rate:.2%} outside [{low:.2%}, {high:.2%}]"


def test_the_delta_normal_interval_fails_the_same_check():
    """The check can fail: the large-sample interval is too liberal on the same data."""
    sims = 4000
    returned, units = pareto_baskets(np.random.default_rng(20261201), sims)
    rate = delta_normal_rejects(returned, units).mean()
    assert rate > band(sims)[1], f"delta-normal miss rate {rate:.2%}"


@pytest.mark.slow
def test_pareto_basket_aa_misses_about_5_percent_slow():
    sims, chunk, misses = 10_000, 2_000, 0
    rng = np.random.default_rng(20261202)
    for _ in range(sims // chunk):
        returned, units = pareto_baskets(rng, chunk)
        misses += int(jackknife_t_rejects(returned, units).sum())
    low, high = band(sims)
    assert low <= misses / sims <= high, f"jackknife-t miss rate {misses / sims:.2%}"


def test_large_arms_keep_the_delta_normal_interval():
    rng = np.random.default_rng(5)
    units = rng.geometric(1 / 3, (2, 800)).astype(float)
    returned = rng.binomial(units.astype(int), 0.2).astype(float)
    est = ratio_difference(returned[1], units[1], returned[0], units[0])
    assert est.method == "delta" and est.details["small_sample"] is None


def test_one_customer_with_more_than_5_percent_of_the_lines_switches_to_jackknife_t():
    rng = np.random.default_rng(6)
    units = rng.geometric(1 / 3, (2, 800)).astype(float)
    units[0, 0] = 0.06 * units[0].sum() / 0.94  # this customer now holds 6 % of the control lines
    returned = rng.binomial(units.astype(int), 0.2).astype(float)
    est = ratio_difference(returned[1], units[1], returned[0], units[0])
    assert est.method == "delta-jackknife-t" and "6.0%" in est.details["small_sample"]


def test_relative_difference_uses_the_same_small_sample_rule():
    returned, units = pareto_baskets(np.random.default_rng(8), 1)
    est = ratio_relative_difference(returned[0, 1], units[0, 1], returned[0, 0], units[0, 0])
    assert est.method == "delta-log-jackknife-t" and est.ok and est.details["df"] > 1


def test_a_customer_holding_a_whole_arm_gives_no_small_sample_interval():
    est = ratio_difference([1.0, 0.0], [3.0, 0.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0])
    assert est.ci_low is None and "whole denominator" in est.error
