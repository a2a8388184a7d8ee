"""Reference tests for playbook.stats.ratio (delta method for ratio metrics)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.proportions import proportion_difference
from playbook.stats.ratio import (
    naive_line_level_proportion_difference,
    ratio_difference,
    ratio_inputs_from_lines,
    ratio_metric,
    ratio_relative_difference,
)

Z95 = stats.norm.ppf(0.975)


def clustered_arm(rng, n_customers: int, mean_propensity: float = 0.2):
    """Returned units / delivered units per customer, with customer-level propensity."""
    delivered = rng.geometric(1 / 3, n_customers)
    a = 0.6
    propensity = rng.beta(a, a * (1 - mean_propensity) / mean_propensity, n_customers)
    returned = rng.binomial(delivered, propensity)
    return returned.astype(float), delivered.astype(float)


@pytest.fixture(scope="module")
def arms():
    rng = np.random.default_rng(7)
    yt, xt = clustered_arm(rng, 900, 0.17)
    yc, xc = clustered_arm(rng, 1000, 0.20)
    return yt, xt, yc, xc


def delta_var_by_hand(y: np.ndarray, x: np.ndarray) -> float:
    """Deng, Knoblich & Lu (2018) eq. for var(mean(y)/mean(x)), explicit sums."""
    n = y.size
    my, mx = y.sum() / n, x.sum() / n
    syy = ((y - my) ** 2).sum() / (n - 1)
    sxx = ((x - mx) ** 2).sum() / (n - 1)
    sxy = ((y - my) * (x - mx)).sum() / (n - 1)
    return (syy / mx**2 - 2 * my * sxy / mx**3 + my**2 * sxx / mx**4) / n


def strict_json(est) -> str:
    return json.dumps(est.to_dict(), allow_nan=False)


def test_ratio_metric_matches_hand_delta_formula(arms):
    yt, xt, _, _ = arms
    se = math.sqrt(delta_var_by_hand(yt, xt))
    r = yt.sum() / xt.sum()
    res = ratio_metric(yt, xt)
    assert res.method == "delta"
    assert res.estimate == pytest.approx(r, rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((r - Z95 * se, r + Z95 * se), rel=1e-10)
    assert res.n == yt.size


def test_ratio_metric_with_unit_denominators_is_the_plain_mean_interval():
    y = np.array([0.0, 1.0, 3.0, 0.0, 2.0, 5.0, 1.0, 0.0])
    res = ratio_metric(y, np.ones_like(y), small_sample="normal")
    se = y.std(ddof=1) / math.sqrt(y.size)
    assert (res.ci_low, res.ci_high) == pytest.approx((y.mean() - Z95 * se, y.mean() + Z95 * se))


def test_a_small_ratio_with_unit_denominators_is_the_one_sample_t_interval():
    # the jackknife variance of a mean is s²/n exactly, so the small-sample interval is scipy's t interval
    y = np.array([0.0, 1.0, 3.0, 0.0, 2.0, 5.0, 1.0, 0.0])
    res = ratio_metric(y, np.ones_like(y))
    low, high = stats.t.interval(0.95, y.size - 1, loc=y.mean(), scale=stats.sem(y))
    assert res.method == "delta-jackknife-t" and res.details["df"] == y.size - 1
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), rel=1e-12)


def test_ratio_difference_matches_hand_formula(arms):
    yt, xt, yc, xc = arms
    d = yt.sum() / xt.sum() - yc.sum() / xc.sum()
    se = math.sqrt(delta_var_by_hand(yt, xt) + delta_var_by_hand(yc, xc))
    res = ratio_difference(yt, xt, yc, xc)
    assert res.estimate == pytest.approx(d, rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((d - Z95 * se, d + Z95 * se), rel=1e-10)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(d) / se), rel=1e-9)
    assert res.n == yt.size + yc.size


def _tea_tasting_ratio(arms):
    tt = pytest.importorskip("tea_tasting")
    yt, xt, yc, xc = arms
    data = pd.DataFrame({
        "variant": [0] * yc.size + [1] * yt.size,
        "returned": np.r_[yc, yt],
        "delivered": np.r_[xc, xt],
    })
    metric = tt.RatioOfMeans("returned", "delivered", use_t=False, equal_var=False)
    return tt.Experiment(r=metric).analyze(data)["r"]


def test_ratio_difference_matches_tea_tasting_ratio_of_means(arms):
    ref = _tea_tasting_ratio(arms)
    res = ratio_difference(*arms)
    assert res.estimate == pytest.approx(ref.effect_size, rel=1e-10)
    assert res.ci_low == pytest.approx(ref.effect_size_ci_lower, rel=1e-8)
    assert res.ci_high == pytest.approx(ref.effect_size_ci_upper, rel=1e-8)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-8)


def test_ratio_relative_difference_matches_tea_tasting_relative_interval(arms):
    ref = _tea_tasting_ratio(arms)
    res = ratio_relative_difference(*arms)
    assert res.method == "delta-log"
    assert res.estimate == pytest.approx(ref.rel_effect_size, rel=1e-10)
    assert res.ci_low == pytest.approx(ref.rel_effect_size_ci_lower, rel=1e-8)
    assert res.ci_high == pytest.approx(ref.rel_effect_size_ci_upper, rel=1e-8)


def test_ratio_relative_difference_matches_hand_log_delta(arms):
    yt, xt, yc, xc = arms
    rt, rc = yt.sum() / xt.sum(), yc.sum() / xc.sum()
    se = math.sqrt(delta_var_by_hand(yt, xt) / rt**2 + delta_var_by_hand(yc, xc) / rc**2)
    res = ratio_relative_difference(yt, xt, yc, xc, confidence=0.9)
    q = stats.norm.ppf(0.95)
    assert res.ci_low == pytest.approx(rt / rc * math.exp(-q * se) - 1, rel=1e-10)
    assert res.ci_high == pytest.approx(rt / rc * math.exp(q * se) - 1, rel=1e-10)
    assert res.excludes_null() == (res.p_value < 0.1)


def test_naive_line_level_equals_newcombe_on_line_totals(arms):
    yt, xt, yc, xc = arms
    ref = proportion_difference(yt.sum(), xt.sum(), yc.sum(), xc.sum())
    res = naive_line_level_proportion_difference(yt, xt, yc, xc)
    assert res.method == "naive-binomial-lines"
    assert (res.estimate, res.ci_low, res.ci_high) == pytest.approx(
        (ref.estimate, ref.ci_low, ref.ci_high)
    )
    assert res.n == int(xt.sum() + xc.sum())
    assert "warning" in res.details


def test_naive_line_level_interval_is_narrower_than_delta_on_clustered_data(arms):
    naive = naive_line_level_proportion_difference(*arms)
    delta = ratio_difference(*arms)
    assert naive.estimate == pytest.approx(delta.estimate)
    assert (naive.ci_high - naive.ci_low) < 0.85 * (delta.ci_high - delta.ci_low)


def test_ratio_inputs_from_lines_sums_per_customer():
    lines = pd.DataFrame({
        "customer": ["b", "a", "b", "c", "a", "a"],
        "returned": [1, 0, 1, 0, 1, 0],
        "revenue": [10.0, 20.0, 5.0, 8.0, 2.0, 1.0],
    })
    num, den = ratio_inputs_from_lines(lines, "customer", "returned")
    np.testing.assert_array_equal(num, [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(den, [3.0, 2.0, 1.0])
    num, den = ratio_inputs_from_lines(lines, "customer", "returned", "revenue")
    np.testing.assert_array_equal(den, [23.0, 15.0, 8.0])


# --- degenerate input -----------------------------------------------------------------------

TWO_ARM_FUNCS = [ratio_difference, ratio_relative_difference]
DEGENERATE = [
    pytest.param(([], [], [1.0, 2.0], [3.0, 4.0]), "empty arm", id="empty-treatment"),
    pytest.param(([1.0], [2.0], [1.0, 2.0], [3.0, 4.0]), "1 customer", id="single-customer"),
    pytest.param(([0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [3.0, 4.0]), "denominator", id="zero-denominators"),
    pytest.param(([1.0, 2.0, 3.0], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0]), "lengths differ", id="length-mismatch"),
    pytest.param(([1.0, np.nan], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0]), "non-finite", id="nan"),
]


@pytest.mark.parametrize(("inputs", "message"), DEGENERATE)
@pytest.mark.parametrize("func", TWO_ARM_FUNCS)
def test_degenerate_arms_return_error_not_exception(func, inputs, message):
    res = func(*inputs)
    assert res.estimate is None
    assert message in res.error
    strict_json(res)


@pytest.mark.parametrize("func", TWO_ARM_FUNCS)
def test_zero_variance_in_both_arms_gives_estimate_without_interval(func):
    res = func([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [1.0, 1.0], [4.0, 4.0])
    assert res.estimate is not None
    assert res.ci_low is None and "zero variance" in res.error
    strict_json(res)


def test_ratio_metric_zero_variance_gives_estimate_without_interval():
    res = ratio_metric([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])  # every customer returns half
    assert res.estimate == pytest.approx(0.5)
    assert res.ci_low is None and "zero variance" in res.error
    strict_json(res)


def test_ratio_metric_empty_is_unavailable():
    res = ratio_metric([], [])
    assert res.estimate is None and "empty" in res.error


def test_customers_with_zero_denominator_are_kept():
    # a customer without delivered units still counts as a randomised unit
    res = ratio_metric([0.0, 1.0, 2.0, 0.0], [0.0, 2.0, 3.0, 1.0])
    assert res.estimate == pytest.approx(3 / 6)
    assert res.n == 4 and res.ok


def test_relative_difference_with_zero_control_ratio_is_unavailable():
    res = ratio_relative_difference([1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [3.0, 4.0])
    assert res.estimate is None and "control ratio" in res.error
    strict_json(res)


def test_relative_difference_with_zero_treatment_ratio_has_no_interval():
    res = ratio_relative_difference([0.0, 0.0], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0])
    assert res.estimate == pytest.approx(-1.0)
    assert res.ci_low is None and res.error
    strict_json(res)


def test_naive_with_more_returns_than_units_is_an_error():
    res = naive_line_level_proportion_difference([5.0], [2.0], [1.0], [2.0])
    assert res.error and res.estimate is None
    strict_json(res)
