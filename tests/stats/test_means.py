"""Reference tests for playbook.stats.means: scipy, hand formulas and tea-tasting on fixed data."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.means import mean_difference, mean_relative_difference


@pytest.fixture(scope="module")
def costs():
    """Skewed per-customer return costs (many zeros), fixed seed."""
    rng = np.random.default_rng(20240601)
    treat = rng.exponential(12.0, 400) * (rng.random(400) < 0.35)
    ctrl = rng.exponential(15.0, 450) * (rng.random(450) < 0.35)
    return treat, ctrl


def strict_json(est) -> str:
    return json.dumps(est.to_dict(), allow_nan=False)


def test_welch_matches_scipy_ttest_ind_unequal_var(costs):
    t, c = costs
    ref = stats.ttest_ind(t, c, equal_var=False)
    ci = ref.confidence_interval(0.95)
    res = mean_difference(t, c)
    assert res.method == "welch"
    assert res.estimate == pytest.approx(t.mean() - c.mean(), rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert res.n == t.size + c.size


def test_welch_matches_hand_formula(costs):
    t, c = costs
    vt, vc = t.var(ddof=1) / t.size, c.var(ddof=1) / c.size
    se = math.sqrt(vt + vc)
    df = (vt + vc) ** 2 / (vt**2 / (t.size - 1) + vc**2 / (c.size - 1))
    q = stats.t.ppf(0.95, df)  # 90% interval
    d = t.mean() - c.mean()
    res = mean_difference(t, c, confidence=0.90)
    assert (res.ci_low, res.ci_high) == pytest.approx((d - q * se, d + q * se), rel=1e-9)
    assert res.details["df"] == pytest.approx(df, rel=1e-9)


def test_welch_matches_tea_tasting_mean(costs):
    tt = pytest.importorskip("tea_tasting")
    t, c = costs
    data = pd.DataFrame({"variant": [0] * c.size + [1] * t.size, "cost": np.r_[c, t]})
    ref = tt.Experiment(m=tt.Mean("cost", use_t=True, equal_var=False)).analyze(data)["m"]
    res = mean_difference(t, c)
    assert res.estimate == pytest.approx(ref.effect_size, rel=1e-10)
    assert res.ci_low == pytest.approx(ref.effect_size_ci_lower, rel=1e-8)
    assert res.ci_high == pytest.approx(ref.effect_size_ci_upper, rel=1e-8)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-8)


def test_relative_difference_matches_tea_tasting_relative_interval(costs):
    tt = pytest.importorskip("tea_tasting")
    t, c = costs
    data = pd.DataFrame({"variant": [0] * c.size + [1] * t.size, "cost": np.r_[c, t]})
    ref = tt.Experiment(m=tt.Mean("cost", use_t=True, equal_var=False)).analyze(data)["m"]
    res = mean_relative_difference(t, c)
    assert res.method == "delta-log"
    assert res.estimate == pytest.approx(ref.rel_effect_size, rel=1e-10)
    assert res.ci_low == pytest.approx(ref.rel_effect_size_ci_lower, rel=1e-8)
    assert res.ci_high == pytest.approx(ref.rel_effect_size_ci_upper, rel=1e-8)


def test_relative_difference_matches_hand_delta_formula(costs):
    t, c = costs
    mt, mc = t.mean(), c.mean()
    vt = t.var(ddof=1) / t.size / mt**2
    vc = c.var(ddof=1) / c.size / mc**2
    se = math.sqrt(vt + vc)
    df = (vt + vc) ** 2 / (vt**2 / (t.size - 1) + vc**2 / (c.size - 1))
    q = stats.t.ppf(0.975, df)
    res = mean_relative_difference(t, c)
    assert res.ci_low == pytest.approx(mt / mc * math.exp(-q * se) - 1, rel=1e-10)
    assert res.ci_high == pytest.approx(mt / mc * math.exp(q * se) - 1, rel=1e-10)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(math.log(mt / mc)) / se, df), rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 1.5, 3.0, 6.0])
def test_relative_difference_p_value_agrees_with_its_interval(costs, shift):
    t, c = costs
    res = mean_relative_difference(t + shift, c)
    assert res.excludes_null() == (res.p_value < 0.05)


def test_accepts_pandas_series_and_lists(costs):
    t, c = costs
    a = mean_difference(pd.Series(t), list(c))
    b = mean_difference(t, c)
    assert (a.estimate, a.ci_low, a.ci_high) == pytest.approx((b.estimate, b.ci_low, b.ci_high))


# --- degenerate input -----------------------------------------------------------------------

DEGENERATE = [
    pytest.param([], [1.0, 2.0, 3.0], id="empty-treatment"),
    pytest.param([1.0, 2.0], [5.0], id="single-control"),
    pytest.param([1.0, np.nan, 2.0], [1.0, 2.0], id="nan"),
    pytest.param([1.0, np.inf, 2.0], [1.0, 2.0], id="inf"),
    pytest.param(["a", "b"], [1.0, 2.0], id="text"),
]


@pytest.mark.parametrize(("t", "c"), DEGENERATE)
@pytest.mark.parametrize("func", [mean_difference, mean_relative_difference])
def test_degenerate_arms_return_error_not_exception(func, t, c):
    res = func(t, c)
    assert res.error
    assert res.estimate is None and not res.ok
    strict_json(res)


@pytest.mark.parametrize("func", [mean_difference, mean_relative_difference])
def test_zero_variance_in_both_arms_gives_estimate_without_interval(func):
    res = func([2.0, 2.0, 2.0], [1.0, 1.0])
    assert res.estimate == pytest.approx(1.0)
    assert res.ci_low is None and res.ci_high is None
    assert "zero variance" in res.error
    strict_json(res)


def test_zero_variance_in_one_arm_still_gives_interval():
    res = mean_difference([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert res.ok


def test_relative_difference_needs_positive_control_mean():
    res = mean_relative_difference([1.0, 2.0], [0.0, 0.0, 0.0])
    assert res.estimate is None
    assert "control mean" in res.error
    strict_json(res)


def test_relative_difference_with_zero_treatment_mean_has_no_interval():
    res = mean_relative_difference([0.0, 0.0], [1.0, 2.0, 3.0])
    assert res.estimate == pytest.approx(-1.0)
    assert res.ci_low is None and res.error
    strict_json(res)


def test_invalid_confidence_is_an_error(costs):
    t, c = costs
    assert "confidence" in mean_difference(t, c, confidence=0).error
