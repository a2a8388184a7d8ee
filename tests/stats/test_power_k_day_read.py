"""Plan, then read the way the review does: does a plan for 80 % power detect 80 % of the time?

The experiment is simulated as the review meets it: customers randomised 50/50, several orders
each over the run (baskets of 1 + Poisson(0.5) units delivered together), a customer return
propensity ~ Beta(1.5, 6) (lines of one customer move together), return lags ~ Gamma(2.5, 3.5)
days. The plan (:func:`k_day_read_mde` / :func:`k_day_read_plan`) is fed the weekly units per
arm and the design effect measured on simulated baseline weeks of the same length as the read;
the read at the review date is the customer-clustered difference of 14-day return rates among
units delivered at least 14 days before it (``return_within_k_difference``), a detection being
an interval wholly below 0. Acceptance: three binomial standard errors around 80 % at the count.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.lag import return_within_k_difference
from playbook.stats.power import customer_clustering, k_day_read_mde, k_day_read_plan, k_day_read_power

K = 14
WEEKS = 4
CUSTOMERS = 1000          # per arm
ORDERS_PER_WEEK = 0.6     # per customer
BASKET_EXTRA = 0.5        # units per order = 1 + Poisson(0.5)
BETA_A, BETA_B = 1.5, 6.0
LAG_SHAPE, LAG_SCALE = 2.5, 3.5
RETURNED_BY_K = float(stats.gamma.cdf(K, LAG_SHAPE, scale=LAG_SCALE))
BASE_RATE = BETA_A / (BETA_A + BETA_B) * RETURNED_BY_K   # the 14-day return rate of control
WEEKLY_UNITS_PER_ARM = CUSTOMERS * ORDERS_PER_WEEK * (1 + BASKET_EXTRA)


def simulate_units(rng, reps: int, days: float, customers: int, multiplier: float = 1.0):
    """Units of ``reps`` arms: (rep, customer, delivery day, returned within K, lag)."""
    orders = rng.poisson(ORDERS_PER_WEEK * days / 7, (reps, customers))
    propensity = np.minimum(rng.beta(BETA_A, BETA_B, (reps, customers)) * multiplier, 1.0)
    rep_of_order = np.repeat(np.repeat(np.arange(reps), customers), orders.ravel())
    cust_of_order = np.repeat(np.tile(np.arange(customers), reps), orders.ravel())
    basket = 1 + rng.poisson(BASKET_EXTRA, rep_of_order.size)
    day_of_order = rng.uniform(0, days, rep_of_order.size)
    rep = np.repeat(rep_of_order, basket)
    cust = np.repeat(cust_of_order, basket)
    day = np.repeat(day_of_order, basket)
    returned = rng.random(rep.size) < propensity[rep, cust]
    lag = np.where(returned, rng.gamma(LAG_SHAPE, LAG_SCALE, rep.size), np.nan)
    return rep, cust, day, lag


@functools.lru_cache(maxsize=None)
def baseline_design_effect(read_days: float) -> float:
    """The design effect of ``read_days`` of deliveries, measured like the plan does on baseline weeks."""
    rng = np.random.default_rng(int(read_days) + 1000)
    rep, cust, _, lag = simulate_units(rng, 1, read_days, 40_000)
    units = np.bincount(cust, minlength=40_000)
    returned = np.bincount(cust, weights=lag <= K, minlength=40_000)
    return customer_clustering(units, returned).design_effect


def clustered_reads(rng, reps: int, change: float, run_days: int, confidence: float = 0.95):
    """Vectorised replica of the review's read: (difference, upper bound) per simulated experiment."""
    sums = []
    for multiplier in (1.0, 1.0 + change / BASE_RATE):  # control, treatment
        rep, cust, day, lag = simulate_units(rng, reps, run_days, CUSTOMERS, multiplier)
        mature = day <= run_days - K
        idx = rep * CUSTOMERS + cust
        den = np.bincount(idx, weights=mature, minlength=reps * CUSTOMERS).reshape(reps, CUSTOMERS)
        num = np.bincount(idx, weights=mature & (lag <= K), minlength=reps * CUSTOMERS).reshape(reps, CUSTOMERS)
        sums.append((num, den))
    diff, var = 0.0, 0.0
    for sign, (num, den) in zip((-1, 1), sums):
        rate = num.sum(1) / den.sum(1)
        g = (den > 0).sum(1)
        psi = (num - rate[:, None] * den) / den.sum(1)[:, None]
        diff = diff + sign * rate
        var = var + (psi**2).sum(1) * g / (g - 1)
    return diff, diff + stats.norm.ppf((1 + confidence) / 2) * np.sqrt(var)


@functools.lru_cache(maxsize=None)
def planned_change() -> float:
    """The change the plan says a 4-week run detects with 80 % power (a hair above, so 4 weeks suffice)."""
    return k_day_read_mde(BASE_RATE, WEEKLY_UNITS_PER_ARM, K, 7 * WEEKS, baseline_design_effect) * 1.0001


def test_the_plan_needs_the_four_weeks_it_is_simulated_for():
    plan = k_day_read_plan(BASE_RATE, planned_change(), WEEKLY_UNITS_PER_ARM, K, baseline_design_effect,
                           horizon_weeks=WEEKS + 1)
    assert plan.weeks == WEEKS and 0.8 <= plan.achieved_power < 0.801
    assert plan.at_review.mature_share == pytest.approx((7 * WEEKS - K) / (7 * WEEKS))


def test_the_replica_is_the_reviews_read():
    change, days = planned_change(), 7 * WEEKS
    for seed in range(3):
        frames = []
        for arm, mult in (("control", 1.0), ("treatment", 1.0 + change / BASE_RATE)):
            rep, cust, day, lag = simulate_units(np.random.default_rng(seed), 1, days, CUSTOMERS, mult)
            start = pd.Timestamp("2026-11-02")
            delivered = start + pd.to_timedelta(day, unit="D")
            frames.append(pd.DataFrame({"arm": arm, "customer_id": [f"{arm}{c}" for c in cust],
                                        "delivered_ts": delivered,
                                        "returned_ts": delivered + pd.to_timedelta(lag, unit="D")}))
        df = pd.concat(frames, ignore_index=True)
        est = return_within_k_difference(df, pd.Timestamp("2026-11-02") + pd.Timedelta(days=days), K)
        # the same units through the replica (one rep per arm drawn with the same seeds)
        sums = {}
        for arm, mult in (("control", 1.0), ("treatment", 1.0 + change / BASE_RATE)):
            rep, cust, day, lag = simulate_units(np.random.default_rng(seed), 1, days, CUSTOMERS, mult)
            mature = day <= days - K
            den = np.bincount(cust, weights=mature, minlength=CUSTOMERS)
            num = np.bincount(cust, weights=mature & (lag <= K), minlength=CUSTOMERS)
            sums[arm] = (num, den)
        rate = {a: n.sum() / d.sum() for a, (n, d) in sums.items()}
        var = sum((((n - rate[a] * d) / d.sum()) ** 2).sum() * (d > 0).sum() / ((d > 0).sum() - 1)
                  for a, (n, d) in sums.items())
        assert est.estimate == pytest.approx(rate["treatment"] - rate["control"], abs=1e-12)
        assert est.ci_high == pytest.approx(est.estimate + stats.norm.ppf(0.975) * math.sqrt(var), abs=1e-12)


def measured_power(seed: int, reps: int, chunk: int = 250) -> float:
    rng = np.random.default_rng(seed)
    change, hits = planned_change(), 0
    for _ in range(reps // chunk):
        _, upper = clustered_reads(rng, chunk, change, 7 * WEEKS)
        hits += int(np.sum(upper < 0))
    return hits / reps


def band(reps: int, rate: float = 0.8) -> tuple[float, float]:
    se = math.sqrt(rate * (1 - rate) / reps)
    return rate - 3 * se, rate + 3 * se


def test_a_plan_for_80_percent_power_detects_the_planned_change_about_80_percent_of_the_time():
    reps = 1500
    power = measured_power(20261203, reps)
    low, high = band(reps)
    assert low <= power <= high, f"measured power {power:.1%} outside [{low:.1%}, {high:.1%}]"


def test_ignoring_maturity_and_clustering_promises_power_the_read_does_not_have():
    """The old plan (all delivered units, independent lines) says far more than the read delivers."""
    naive = k_day_read_power(BASE_RATE, planned_change(), WEEKLY_UNITS_PER_ARM, 0, 7 * WEEKS)
    assert naive.power > 0.95 and baseline_design_effect(7 * WEEKS - K) > 1.2


@pytest.mark.slow
def test_plan_then_read_power_slow():
    reps = 10_000
    power = measured_power(20261204, reps)
    low, high = band(reps)
    assert low <= power <= high, f"measured power {power:.1%} outside [{low:.1%}, {high:.1%}]"
