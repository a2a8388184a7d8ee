"""Calibration by simulation: do the 95% intervals miss the true value about 5% of the time?

Each test simulates seeded A/A (or planted-effect) experiments, runs the public estimator on
every one and counts how often its 95% interval misses the true value. With 2,000 simulations
the standard error of a 5% miss rate is 0.49 points, so the acceptance band 3.5%-6.5% is about
±3 standard errors. The naive line-level interval is run on the same clustered data and must
FAIL the same check (miss rate well above 6.5%).

The ``slow`` variants (``pytest -m slow``) rerun the key checks with 20,000 simulations and a
tighter band (4.0%-6.0%, ±4 standard errors).

The measured miss rates for these seeds are reported in docs/statistics.md.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from playbook.stats.cuped import cuped_mean_difference
from playbook.stats.means import mean_difference
from playbook.stats.proportions import proportion_difference, proportion_relative_lift
from playbook.stats.ratio import (
    naive_line_level_proportion_difference,
    ratio_difference,
    ratio_relative_difference,
)

N_SIMS = 2_000
N_SIMS_SLOW = 20_000
BAND = (0.035, 0.065)
BAND_SLOW = (0.040, 0.060)

# Clustered return data: customers order a geometric number of units (mean 3, from 1 to 20+)
# and each customer has their own return propensity ~ Beta(0.6, 2.4): mean 0.20,
# intra-customer correlation 1 / (0.6 + 2.4 + 1) = 0.25.
CUSTOMERS_PER_ARM = 600
MEAN_PROPENSITY = 0.20
BETA_A = 0.6
BETA_B = BETA_A * (1 - MEAN_PROPENSITY) / MEAN_PROPENSITY


def miss_rate(estimates, truth: float) -> float:
    """Share of intervals not containing ``truth``; every estimate must have an interval."""
    estimates = list(estimates)
    broken = [e for e in estimates if not e.ok]
    assert not broken, f"{len(broken)} simulations without interval, e.g. {broken[0]}"
    misses = sum(1 for e in estimates if not (e.ci_low <= truth <= e.ci_high))
    return misses / len(estimates)


def clustered_chunks(
    seed: int, sims: int, factor_treatment: float = 1.0, chunk: int = 1_000
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per-customer (returned, delivered) sums for both arms, ``chunk`` simulations at a time.

    ``factor_treatment`` multiplies every treatment customer's propensity (true ratio
    ``MEAN_PROPENSITY * factor``, since units and propensity are independent).
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < sims:
        k = min(chunk, sims - done)
        shape = (k, CUSTOMERS_PER_ARM)
        out = []
        for factor in (factor_treatment, 1.0):
            delivered = rng.geometric(1 / 3, shape)
            propensity = rng.beta(BETA_A, BETA_B, shape) * factor
            returned = rng.binomial(delivered, propensity)
            out += [returned.astype(float), delivered.astype(float)]
        yield tuple(out)  # type: ignore[misc]
        done += k


def run_ratio(func, seed: int, sims: int, factor: float = 1.0):
    for yt, xt, yc, xc in clustered_chunks(seed, sims, factor):
        for i in range(yt.shape[0]):
            yield func(yt[i], xt[i], yc[i], xc[i])


def assert_in_band(rate: float, band: tuple[float, float], label: str) -> None:
    print(f"\n{label}: miss rate {rate:.4f}")
    assert band[0] <= rate <= band[1], f"{label}: miss rate {rate:.4f} outside {band}"


# --- (a) proportions, independent units -----------------------------------------------------

PROPORTION_SEED = 20250101
PROPORTION_N, PROPORTION_P = 600, 0.12


def binomial_aa(seed: int, sims: int):
    rng = np.random.default_rng(seed)
    return (
        rng.binomial(PROPORTION_N, PROPORTION_P, sims),
        rng.binomial(PROPORTION_N, PROPORTION_P, sims),
    )


def proportion_difference_miss_rate(seed: int, sims: int) -> float:
    st, sc = binomial_aa(seed, sims)
    n = PROPORTION_N
    return miss_rate((proportion_difference(a, n, b, n) for a, b in zip(st, sc)), 0.0)


def test_newcombe_difference_misses_about_5_percent_in_aa():
    rate = proportion_difference_miss_rate(PROPORTION_SEED, N_SIMS)
    assert_in_band(rate, BAND, "newcombe A/A, 600 per arm, p=0.12")


def test_delta_log_lift_misses_about_5_percent_in_aa():
    st, sc = binomial_aa(PROPORTION_SEED + 1, N_SIMS)
    n = PROPORTION_N
    rate = miss_rate((proportion_relative_lift(a, n, b, n) for a, b in zip(st, sc)), 0.0)
    assert_in_band(rate, BAND, "delta-log lift A/A, 600 per arm, p=0.12")


@pytest.mark.slow
def test_newcombe_difference_misses_about_5_percent_in_aa_slow():
    rate = proportion_difference_miss_rate(PROPORTION_SEED, N_SIMS_SLOW)
    assert_in_band(rate, BAND_SLOW, "newcombe A/A (20k sims)")


# --- (b) ratio metrics with clustered customers, and (c) the naive interval on the same data --

CLUSTER_SEED = 20250202


def test_delta_ratio_difference_misses_about_5_percent_with_clustered_customers():
    rate = miss_rate(run_ratio(ratio_difference, CLUSTER_SEED, N_SIMS), 0.0)
    assert_in_band(rate, BAND, "delta ratio difference A/A, clustered")


def test_delta_log_ratio_relative_misses_about_5_percent_with_clustered_customers():
    rate = miss_rate(run_ratio(ratio_relative_difference, CLUSTER_SEED, N_SIMS), 0.0)
    assert_in_band(rate, BAND, "delta-log ratio relative A/A, clustered")


def test_naive_line_level_interval_fails_coverage_on_the_same_clustered_data():
    rate = miss_rate(run_ratio(naive_line_level_proportion_difference, CLUSTER_SEED, N_SIMS), 0.0)
    print(f"\nnaive line-level binomial A/A, clustered: miss rate {rate:.4f}")
    assert rate > 0.10, f"naive interval should under-cover clearly, miss rate {rate:.4f}"


def test_delta_ratio_difference_covers_a_planted_15_percent_reduction():
    # treatment propensity × 0.85: true difference = 0.20 · (0.85 − 1) = −0.03
    truth = MEAN_PROPENSITY * (0.85 - 1.0)
    rate = miss_rate(run_ratio(ratio_difference, CLUSTER_SEED + 1, N_SIMS, factor=0.85), truth)
    assert_in_band(rate, BAND, "delta ratio difference, planted -15%, clustered")


@pytest.mark.slow
def test_delta_ratio_difference_misses_about_5_percent_with_clustered_customers_slow():
    rate = miss_rate(run_ratio(ratio_difference, CLUSTER_SEED, N_SIMS_SLOW), 0.0)
    assert_in_band(rate, BAND_SLOW, "delta ratio difference A/A, clustered (20k sims)")


@pytest.mark.slow
def test_naive_line_level_interval_fails_coverage_on_clustered_data_slow():
    rate = miss_rate(run_ratio(naive_line_level_proportion_difference, CLUSTER_SEED, N_SIMS_SLOW), 0.0)
    print(f"\nnaive line-level binomial A/A, clustered (20k sims): miss rate {rate:.4f}")
    assert rate > 0.10


# --- means and CUPED on skewed per-customer costs -------------------------------------------

COST_SEED = 20250303
COST_N = 500


def skewed_costs(rng, shape):
    """Per-customer return cost: 70% of customers return nothing, the rest lognormal."""
    returns = rng.random(shape) < 0.3
    return returns * rng.lognormal(3.0, 1.0, shape)


def test_welch_mean_difference_misses_about_5_percent_with_skewed_costs():
    rng = np.random.default_rng(COST_SEED)
    yt, yc = skewed_costs(rng, (N_SIMS, COST_N)), skewed_costs(rng, (N_SIMS, COST_N))
    rate = miss_rate((mean_difference(yt[i], yc[i]) for i in range(N_SIMS)), 0.0)
    assert_in_band(rate, BAND, "welch A/A, zero-inflated lognormal costs")


def test_cuped_adjusted_interval_misses_about_5_percent_in_aa():
    rng = np.random.default_rng(COST_SEED + 1)
    habit = rng.gamma(2.0, 5.0, (N_SIMS, 2 * COST_N))
    x = habit + rng.normal(0, 4.0, habit.shape)
    y = habit + rng.normal(0, 4.0, habit.shape)
    t, c = slice(0, COST_N), slice(COST_N, 2 * COST_N)
    rate = miss_rate(
        (cuped_mean_difference(y[i, t], x[i, t], y[i, c], x[i, c]).adjusted for i in range(N_SIMS)),
        0.0,
    )
    assert_in_band(rate, BAND, "CUPED welch A/A")
