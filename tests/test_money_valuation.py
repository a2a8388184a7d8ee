"""The money a verdict claims is what the lever saves in the end, not what its K-day read shows
(``experiments.settled_read``, ``review.valued``).

Simulated randomized tests: 1,500 customers per arm, each with a return propensity ~ Beta(2, 8) (mean
20 %) and 1 + Poisson(1.5) units delivered together on a day uniform over the test's first 35 days,
each unit returned with the customer's propensity after a Gamma(shape 2, mean 10 days) lag; read on
day 70 at K = 14 days, the settled window being the 33 days that hold 99 % of the control returns.
The expected values are computed from the Gamma distribution with scipy, not from the code read.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.metrics.forms import as_units
from playbook.stats import lag
from playbook.steps.experiments import settled_read

START = pd.Timestamp("2026-01-05")
AS_OF = START + pd.Timedelta(days=70)
K = 14
SETTLED = int(math.ceil(stats.gamma(2.0, scale=5.0).ppf(0.99)))  # 34 days
REPS = 120


def simulate(rng: np.random.Generator, *, delay: float = 1.0, prevent: float = 1.0, n: int = 1500,
             exposure_days: float = 35.0) -> pd.DataFrame:
    """One test's exposed lines as step 4 reads them (``returned_units`` of each line)."""
    arm = np.repeat([0, 1], n)
    propensity = rng.beta(2, 8, 2 * n) * np.where(arm == 1, prevent, 1.0)
    units = 1 + rng.poisson(1.5, 2 * n)
    cust = np.repeat(np.arange(2 * n), units)
    delivered = START + pd.to_timedelta(rng.uniform(0, exposure_days, 2 * n)[cust], unit="D")
    returned = rng.random(cust.size) < propensity[cust]
    days = rng.gamma(2.0, 5.0, cust.size) * np.where(arm[cust] == 1, delay, 1.0)
    returned_ts = pd.Series(delivered + pd.to_timedelta(days, unit="D")).where(returned)
    return pd.DataFrame({"arm": np.where(arm[cust] == 1, "treatment", "control"), "customer_id": cust,
                         "delivered_ts": delivered, "returned_ts": returned_ts, "units": 1,
                         "returned_units": returned.astype(int)})


def k_day_read(lines: pd.DataFrame):
    return lag.read_at_window(as_units(lines), AS_OF, K, quantity="quantity").difference


def test_the_settled_window_of_the_simulation_holds_99_percent_of_the_returns():
    assert stats.gamma(2.0, scale=5.0).cdf(SETTLED) >= 0.99 > stats.gamma(2.0, scale=5.0).cdf(SETTLED - 1)


def test_a_lever_that_only_delays_returns_is_valued_at_a_fraction_of_its_k_day_read():
    """Every treated lag x 1.6, nothing prevented: the 14-day read shows 0.2 x (F(14) - F(14 / 1.6)) = 4.9 points
    fewer returns; read at 34 days the gap is 0.2 x (F(34) - F(34 / 1.6)) = 1.5 points: the money claims a third."""
    g = stats.gamma(2.0, scale=5.0)
    at_k = 0.2 * (g.cdf(K) - g.cdf(K / 1.6))
    at_settled = 0.2 * (g.cdf(SETTLED) - g.cdf(SETTLED / 1.6))
    rng = np.random.default_rng(20261208)
    k_reads, settled = [], []
    for _ in range(40):
        lines = simulate(rng, delay=1.6)
        k_reads.append(k_day_read(lines).estimate)
        settled.append(settled_read(as_units(lines), AS_OF, K, SETTLED).estimate)
    assert np.mean(k_reads) == pytest.approx(-at_k, abs=0.004)
    assert np.mean(settled) == pytest.approx(-at_settled, abs=0.004)
    assert abs(np.mean(settled)) < abs(np.mean(k_reads)) / 2.5


def test_a_prevention_is_valued_on_every_return_it_prevents_with_a_calibrated_interval():
    """A 20 % prevention removes 0.2 x 20 % = 4 points of returns in the end; the K-day read sees only those
    before day 14 (F(14) = 77 % of them); the settled read's 95 % interval holds the 34-day truth in at least
    95 % - 3 binomial SE of the tests (one-sided: an interval that misses too often is the failure)."""
    g = stats.gamma(2.0, scale=5.0)
    truth = -0.2 * 0.2 * g.cdf(SETTLED)
    rng = np.random.default_rng(20261209)
    reads = [settled_read(as_units(simulate(rng, prevent=0.8)), AS_OF, K, SETTLED) for _ in range(REPS)]
    assert all(r is not None and r.days == SETTLED for r in reads)
    covered = np.mean([r.ci_low <= truth <= r.ci_high for r in reads])
    assert covered >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / REPS), covered
    assert np.mean([r.estimate for r in reads]) == pytest.approx(truth, abs=0.003)


def test_before_the_settled_window_is_readable_the_longest_readable_window_is_read():
    # read on day 20, nobody is followed the 20 days of the shortest window longer than K (34, 27, 20 days);
    # on day 27, the first week's customers are followed 20 days: that window is read, not K and not 34 days
    units = as_units(simulate(np.random.default_rng(5), prevent=0.8))
    assert settled_read(units, START + pd.Timedelta(days=20), K, SETTLED) is None
    read = settled_read(units, START + pd.Timedelta(days=27), K, SETTLED)
    assert read is not None and read.days == SETTLED - 14 and read.settled_days == SETTLED
    assert f"settled {SETTLED}-day window is not readable yet" in read.why


def test_a_flagged_delay_dates_its_longer_read_as_the_verdict_reads_it_and_drops_the_date_once_read():
    from playbook.core.formats import date_text
    from playbook.steps.experiments import timing_check

    units = as_units(simulate(np.random.default_rng(7), delay=1.6))
    # on day 28.3 only the customers delivered in the first 0.3 days are followed 28 days: too few to read
    waiting = timing_check(units, START + pd.Timedelta(days=28.3), K, confirm_days=28)
    assert waiting.possible_delay and waiting.confirm_estimate is None
    assert f"readable on {date_text(waiting.readable_on)}" in waiting.why and waiting.why.count("readable on") == 1
    read = timing_check(units, AS_OF, K, confirm_days=28)
    assert read.possible_delay and read.confirm_estimate is not None and "readable on" not in read.why
    assert read.catch_up > 0  # the treated returns missing at day 14 come back by day 28
