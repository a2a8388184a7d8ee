"""The discrete Benjamini-Hochberg step-down procedure against a brute-force reading of its definition.

The reference here never uses the module's formula: the supports come from ``scipy.stats.binom`` (exact one-sided
binomial tests), F_i(t) is found by scanning each support, and the step-down is run as its definition reads
(Döhler, Durand & Roquain 2018, section 3: reject the smallest p-values while sum_i F_i(p_(k)) / (1 - F_i(p_(k)))
stays at or below k alpha, stop at the first k where it does not).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from playbook.stats.discrete_fdr import attainable_p_values, discrete_bh_adjusted
from playbook.stats.standardized import excess_p_value


def binomial_supports(sizes, probs):
    """Every one-sided p-value P(X >= k) of Binomial(N, pi), k = 0..N, from scipy, sorted."""
    return [np.sort(np.unique(np.append(stats.binom.sf(np.arange(n + 1) - 1, n, pr), 1.0)))
            for n, pr in zip(sizes, probs)]


def brute_force_step_down(p, supports, alpha):
    """Rejections of [HSD] by its definition: loops, no vectorisation."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for k, i in enumerate(order, start=1):
        t = p[i]
        total = 0.0
        for s in supports:
            below = [v for v in s if v <= t * (1 + 1e-12)]
            f = max(below) if below else 0.0
            total += f / (1 - f) if f < 1 else float("inf")
        if total > k * alpha:
            break
        rejected.add(i)
    return rejected


def random_family(rng, tests=40):
    sizes = rng.integers(0, 60, tests)
    probs = rng.uniform(0.2, 0.5, tests)
    lift = np.where(rng.random(tests) < 0.25, 2.2, 1.0)
    x = rng.binomial(sizes, np.minimum(probs * lift, 0.95))
    p = stats.binom.sf(x - 1, sizes, probs)
    return p, binomial_supports(sizes, probs)


@pytest.mark.parametrize("seed", range(12))
def test_discrete_bh_rejects_exactly_what_the_brute_force_step_down_rejects(seed):
    rng = np.random.default_rng(seed)
    p, supports = random_family(rng)
    for alpha in (0.05, 0.1, 0.2):
        q = discrete_bh_adjusted(p, supports)
        assert set(np.flatnonzero(q < alpha)) == brute_force_step_down(list(p), supports, alpha)


def test_the_families_compared_have_rejections_and_non_rejections():
    # guard on the test above: it compares families where some tests are rejected and some are not
    counts = [int((discrete_bh_adjusted(*random_family(np.random.default_rng(s))) < 0.1).sum()) for s in range(12)]
    assert sum(counts) > 0 and all(c < 40 for c in counts)


def test_a_test_that_cannot_reach_a_small_p_does_not_count_against_the_others():
    # 20 tests with 2 returns each (smallest attainable p: 0.5 ** 2) and one strong test: BH divides alpha by
    # 21, the discrete procedure by about 1 (the 20 weak ones have F(t) = 0 below 0.25)
    sizes, probs = [2] * 20 + [30], [0.5] * 21
    supports = binomial_supports(sizes, probs)
    p = np.append(np.ones(20), stats.binom.sf(21, 30, 0.5))  # 22 of 30: p = 0.008
    assert multipletests(p, alpha=0.05, method="fdr_bh")[0][-1] == False  # noqa: E712 (numpy bool)
    assert discrete_bh_adjusted(p, supports)[-1] == pytest.approx(p[-1] / (1 - p[-1]))


def test_attainable_p_values_of_the_exact_test_are_the_binomial_tails_of_scipy():
    n, m, total = 400.0, 800.0, 25
    s = attainable_p_values(lambda i, k: excess_p_value(k, n, total - k, m), [total])[0]
    np.testing.assert_allclose(s, binomial_supports([total], [n / (n + m)])[0], rtol=1e-10)


def test_nan_p_values_are_left_out_of_the_family():
    p = np.array([np.nan, 0.01, 0.5])
    supports = binomial_supports([5, 10, 10], [0.3, 0.3, 0.3])
    q = discrete_bh_adjusted(p, supports)
    assert np.isnan(q[0])
    np.testing.assert_allclose(q[1:], discrete_bh_adjusted(p[1:], supports[1:]))


def test_a_test_with_more_returns_than_the_limit_is_counted_as_continuous_and_lists_no_support():
    from playbook.stats.discrete_fdr import CONTINUOUS_ABOVE, attainable

    called = []
    assert attainable(lambda k: called.append(k) or k, CONTINUOUS_ABOVE + 1) is None and not called
    assert attainable(lambda k: np.ones_like(k), 3).tolist() == [1.0]


def test_a_family_of_continuous_tests_is_never_less_conservative_than_benjamini_hochberg():
    # F(t) = t for every test: the step-down sums t / (1 - t) >= t per test, so each adjusted p is at least
    # statsmodels' (step-up) Benjamini-Hochberg one
    rng = np.random.default_rng(7)
    for _ in range(20):
        p = np.concatenate([rng.uniform(0, 0.002, 5), rng.uniform(0, 1, 40)])
        q = discrete_bh_adjusted(p, [None] * p.size)
        assert np.all(q >= multipletests(p, method="fdr_bh")[1] - 1e-12)


def test_the_q_values_of_step_2_are_unchanged_when_a_rows_support_comes_from_the_runs_cache():
    import pandas as pd

    from playbook.steps import cohorts

    table = pd.DataFrame({"events": [9.0, 2.0, 30.0], "baseline_events": [6.0, 4.0, 40.0],
                          "units": [400.0, 300.0, 2000.0], "baseline_units": [800.0, 600.0, 4000.0],
                          "divisor": [1.0, 1.0, 1.3]})
    table["p_value"] = [float(excess_p_value(r.events, r.units, r.baseline_events, r.baseline_units, r.divisor))
                        for r in table.itertuples()]
    cohorts._support.cache_clear()
    first = cohorts.q_values(table, procedure="discrete")
    again = cohorts.q_values(table, procedure="discrete")  # every support now read from the cache
    supports = attainable_p_values(lambda i, k: excess_p_value(k, table.units[i], table.events[i]
                                                               + table.baseline_events[i] - k,
                                                               table.baseline_units[i], table.divisor[i]),
                                   (table.events + table.baseline_events).to_numpy())
    assert cohorts._support.cache_info().hits == 3
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, discrete_bh_adjusted(table.p_value.to_numpy(), supports), rtol=1e-12)
