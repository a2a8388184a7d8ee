"""Do the treated returns catch up after day K? (``stats.lag.catch_up_difference``)

A prevention can only remove more returns as the days pass, a delay's missing returns come back later: the
difference of the shares returned between day K and a longer day tells them apart. Simulated randomized tests:
600 customers per arm, propensity ~ Beta(2, 8) (mean 20 %), 1 + Poisson(1.5) units delivered together over
the test's first 35 days, each returned after a Gamma(2, mean 10 days) lag; read on day 84 at K = 14 and 28
days. Bands: alpha + 3 binomial standard errors, one-sided (a test that flags a prevention too often fails).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.lag import catch_up_difference

START = pd.Timestamp("2026-02-02")
AS_OF = START + pd.Timedelta(days=84)
K, LONGER = 14, 28
ALPHA = 0.05
REPS = 300


def simulate(rng: np.random.Generator, *, delay: float = 1.0, prevent: float = 1.0,
             prevent_before: float = math.inf, n: int = 600) -> pd.DataFrame:
    """Units (quantity 1) of a randomized test; a treated return is prevented with probability 1 - ``prevent``
    when its lag is below ``prevent_before`` days (the fast returns only, when finite)."""
    arm = np.repeat([0, 1], n)
    units = 1 + rng.poisson(1.5, 2 * n)
    cust = np.repeat(np.arange(2 * n), units)
    treated = arm[cust] == 1
    lag = rng.gamma(2.0, 5.0, cust.size)
    returned = rng.random(cust.size) < rng.beta(2, 8, 2 * n)[cust]
    returned &= ~(treated & (lag < prevent_before) & (rng.random(cust.size) >= prevent))
    lag = lag * np.where(treated, delay, 1.0)
    delivered = START + pd.to_timedelta(rng.uniform(0, 35, 2 * n)[cust], unit="D")
    return pd.DataFrame({"arm": np.where(treated, "treatment", "control"), "customer_id": cust,
                         "delivered_ts": delivered,
                         "returned_ts": pd.Series(delivered + pd.to_timedelta(lag, unit="D")).where(returned),
                         "quantity": 1})


def flag_rate(seed: int, reps: int = REPS, **scenario) -> float:
    rng = np.random.default_rng(seed)
    p = [catch_up_difference(simulate(rng, **scenario), AS_OF, K, LONGER).p_value for _ in range(reps)]
    return float(np.mean([x <= ALPHA for x in p]))


def band(reps: int = REPS) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


def test_a_lever_that_prevents_returns_of_every_lag_is_not_taken_for_a_delay():
    assert flag_rate(1, prevent=0.8) <= band()  # measured: 0.0 % of 1,000


def test_the_hardest_prevention_one_that_removes_only_returns_before_day_k_is_flagged_at_most_alpha():
    # it removes no return after day K: the two arms return alike between K and the longer day (the null's edge)
    assert flag_rate(2, prevent=0.5, prevent_before=K) <= band()  # measured: 5.8 % of 1,000 (band 7.1 %)


def test_a_lever_that_only_delays_returns_is_found_to_catch_up():
    # lags x 1.6: between day 14 and 28, control returns 0.2 x (F(28) - F(14)) = 4.3 % of its units, treatment
    # 0.2 x (F(17.5) - F(8.75)) = 8.1 %: a 3.8-point catch-up. Measured: 99.3 % of 300 tests at 1,000 customers
    # per arm (93.8 % at 600)
    assert flag_rate(3, reps=100, delay=1.6, n=1000) >= 0.95


def test_followed_to_the_end_the_estimate_is_the_plain_difference_of_shares_between_the_two_days():
    df = simulate(np.random.default_rng(4), delay=1.3)
    late = START + pd.Timedelta(days=400)  # every unit followed far past the longer day: no censoring
    lag_days = (df.returned_ts - df.delivered_ts).dt.total_seconds() / 86400
    between = (lag_days > K) & (lag_days <= LONGER)
    share = between.groupby(df.arm).mean()
    got = catch_up_difference(df, late, K, LONGER)
    assert got.estimate == pytest.approx(share["treatment"] - share["control"], abs=1e-12)


def test_with_one_unit_per_customer_the_interval_is_the_two_proportions_one():
    rng = np.random.default_rng(5)
    df = simulate(rng, n=3000).drop_duplicates("customer_id")
    late = START + pd.Timedelta(days=400)
    lag_days = (df.returned_ts - df.delivered_ts).dt.total_seconds() / 86400
    between = ((lag_days > K) & (lag_days <= LONGER)).groupby(df.arm)
    p, n = between.mean(), between.size()
    se = math.sqrt(sum(p[a] * (1 - p[a]) / n[a] for a in p.index))  # Wald, units independent
    got = catch_up_difference(df, late, K, LONGER)
    assert (got.ci_high - got.ci_low) / (2 * stats.norm.ppf(0.975)) == pytest.approx(se, rel=0.01)


def test_too_few_customers_followed_to_the_longer_day_gives_a_reason_and_no_estimate():
    df = simulate(np.random.default_rng(6))
    got = catch_up_difference(df, START + pd.Timedelta(days=LONGER - 1), K, LONGER)
    assert got.estimate is None and "followed 28 days" in got.error
    assert "must exceed" in catch_up_difference(df, AS_OF, K, K).error
