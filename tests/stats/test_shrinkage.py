"""Empirical-Bayes beta-binomial shrinkage (playbook.stats.shrinkage)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from playbook.stats.shrinkage import MAX_CONCENTRATION, BetaPrior, beta_binomial_shrinkage, fit_beta_prior


def test_posterior_mean_and_interval_follow_the_beta_posterior_by_hand():
    prior = BetaPrior(alpha=4.0, beta=36.0, method="given", n_slices=3)
    out = beta_binomial_shrinkage([3, 30, 0], [8, 200, 5], prior=prior, credible=0.9)
    # (a + y) / (a + b + n)
    np.testing.assert_allclose(out["shrunk_rate"], [7 / 48, 34 / 240, 4 / 45])
    np.testing.assert_allclose(out["shrink_weight"], [8 / 48, 200 / 240, 5 / 45])
    assert out.loc[0, "shrunk_ci_low"] == pytest.approx(stats.beta.ppf(0.05, 7, 41))
    assert out.loc[0, "shrunk_ci_high"] == pytest.approx(stats.beta.ppf(0.95, 7, 41))


def test_small_slice_is_pulled_further_to_the_mean_than_a_large_one():
    prior = BetaPrior(alpha=10.0, beta=90.0, method="given", n_slices=2)
    out = beta_binomial_shrinkage([3, 375], [8, 1000], prior=prior)
    raw = np.array([3 / 8, 375 / 1000])
    pulled = np.abs(raw - out["shrunk_rate"].to_numpy())
    assert pulled[0] > 5 * pulled[1]


def test_mle_maximises_the_beta_binomial_likelihood_against_a_grid_search():
    rng = np.random.default_rng(1)
    n = rng.integers(50, 800, 60)
    y = rng.binomial(n, rng.beta(6, 44, 60))
    prior = fit_beta_prior(y, n, method="mle")

    def loglik(a, b):  # scipy's beta-binomial, independent of the module's betaln form
        return stats.betabinom.logpmf(y, n, a, b).sum()

    best = loglik(prior.alpha, prior.beta)
    m0, c0 = prior.mean, prior.concentration
    for dm in np.linspace(-0.01, 0.01, 9):
        for fc in np.geomspace(0.5, 2, 9):
            m, c = m0 + dm, c0 * fc
            assert loglik(m * c, (1 - m) * c) <= best + 1e-6


def test_both_estimators_recover_a_known_prior_on_many_slices():
    rng = np.random.default_rng(2)
    k = 3000
    n = rng.integers(100, 1000, k)
    y = rng.binomial(n, rng.beta(20, 180, k))  # mean 0.10, concentration 200
    for method in ("mle", "moments"):
        prior = fit_beta_prior(y, n, method=method)
        assert prior.ok
        assert prior.mean == pytest.approx(0.10, abs=0.003)
        assert prior.concentration == pytest.approx(200, rel=0.2)


def test_no_between_slice_variation_shrinks_every_slice_to_the_mean():
    rng = np.random.default_rng(3)
    n = rng.integers(100, 1000, 80)
    y = rng.binomial(n, 0.1)
    prior = fit_beta_prior(y, n, method="moments")
    out = beta_binomial_shrinkage(y, n, prior=prior)
    assert prior.concentration > 1e4 or prior.at_boundary
    assert out["shrunk_rate"].std() < 0.005


def test_moments_estimator_reaches_the_bound_when_slices_are_underdispersed():
    n = np.full(20, 1000)
    y = np.full(20, 100)
    prior = fit_beta_prior(y, n, method="moments")
    assert prior.at_boundary and prior.concentration == pytest.approx(MAX_CONCENTRATION)


def test_prior_with_one_slice_has_an_error_and_rows_explain_it():
    prior = fit_beta_prior([3], [8])
    assert not prior.ok and "at least 2" in prior.error
    out = beta_binomial_shrinkage([3], [8])
    assert out.loc[0, "note"].startswith("shrinkage unavailable")
    assert np.isnan(out.loc[0, "shrunk_rate"])


def test_all_zero_rates_give_a_degenerate_prior_error():
    prior = fit_beta_prior([0, 0, 0], [10, 20, 30])
    assert not prior.ok and "degenerate" in prior.error


def test_slice_without_units_gets_a_note_and_is_left_out_of_the_fit():
    out = beta_binomial_shrinkage([5, 20, 0, 9], [50, 200, 0, 100])
    assert out.loc[2, "note"] == "no units: nothing to shrink"
    assert np.isnan(out.loc[2, "shrunk_rate"])
    assert out.attrs["prior"]["n_slices"] == 3


def test_prior_to_dict_is_json_safe():
    d = fit_beta_prior([5, 20, 9], [50, 200, 100]).to_dict()
    assert set(d) >= {"alpha", "beta", "mean", "concentration", "between_sd", "error"}
