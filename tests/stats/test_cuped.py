"""Reference tests for playbook.stats.cuped against hand formulas and tea-tasting."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from playbook.stats.cuped import cuped_mean_difference, cuped_ratio_difference
from playbook.stats.means import mean_difference
from playbook.stats.ratio import ratio_difference


@pytest.fixture(scope="module")
def costs():
    """Per-customer return cost in the test weeks (y) and in the weeks before (x), corr ≈ 0.7."""
    rng = np.random.default_rng(314)

    def arm(n, effect):
        habit = rng.gamma(2.0, 5.0, n)
        x = habit + rng.normal(0, 4.0, n)
        y = habit * (1 + effect) + rng.normal(0, 4.0, n)
        return y, x

    yt, xt = arm(800, -0.08)
    yc, xc = arm(850, 0.0)
    return yt, xt, yc, xc


@pytest.fixture(scope="module")
def ratio_frames():
    rng = np.random.default_rng(2718)

    def arm(n, factor):
        propensity = rng.beta(0.8, 3.2, n)
        pre_units = rng.geometric(1 / 3, n)
        units = rng.geometric(1 / 3, n)
        return pd.DataFrame({
            "returned": rng.binomial(units, np.clip(propensity * factor, 0, 1)),
            "delivered": units,
            "pre_returned": rng.binomial(pre_units, propensity),
            "pre_delivered": pre_units,
        }).astype(float)

    return arm(900, 0.9), arm(950, 1.0)


def test_theta_is_the_pooled_least_squares_slope(costs):
    yt, xt, yc, xc = costs
    slope = np.polyfit(np.r_[xt, xc], np.r_[yt, yc], 1)[0]
    assert cuped_mean_difference(yt, xt, yc, xc).theta == pytest.approx(slope, rel=1e-9)


def test_adjusted_estimate_is_welch_on_hand_adjusted_values(costs):
    yt, xt, yc, xc = costs
    x_all = np.r_[xt, xc]
    theta = np.cov(np.r_[yt, yc], x_all)[0, 1] / x_all.var(ddof=1)
    ref = mean_difference(yt - theta * (xt - x_all.mean()), yc - theta * (xc - x_all.mean()))
    res = cuped_mean_difference(yt, xt, yc, xc)
    assert res.adjusted.method == "cuped-welch"
    assert (res.adjusted.estimate, res.adjusted.ci_low, res.adjusted.ci_high) == pytest.approx(
        (ref.estimate, ref.ci_low, ref.ci_high), rel=1e-10
    )
    assert res.unadjusted.method == "welch"


def test_cuped_mean_matches_tea_tasting_mean_with_covariate(costs):
    tt = pytest.importorskip("tea_tasting")
    yt, xt, yc, xc = costs
    data = pd.DataFrame({
        "variant": [0] * yc.size + [1] * yt.size,
        "y": np.r_[yc, yt],
        "x": np.r_[xc, xt],
    })
    ref = tt.Experiment(m=tt.Mean("y", "x", use_t=True, equal_var=False)).analyze(data)["m"]
    res = cuped_mean_difference(yt, xt, yc, xc).adjusted
    assert res.estimate == pytest.approx(ref.effect_size, rel=1e-9)
    assert res.ci_low == pytest.approx(ref.effect_size_ci_lower, rel=1e-8)
    assert res.ci_high == pytest.approx(ref.effect_size_ci_upper, rel=1e-8)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-7)


def test_width_reduction_is_close_to_one_minus_sqrt_one_minus_rho_squared(costs):
    yt, xt, yc, xc = costs
    res = cuped_mean_difference(yt, xt, yc, xc)
    rho = res.details["corr_y_x"]
    assert res.width_reduction == pytest.approx(1 - np.sqrt(1 - rho**2), abs=0.03)
    assert res.width_reduction > 0.2


def test_constant_covariate_leaves_estimate_unchanged(costs):
    yt, _, yc, _ = costs
    res = cuped_mean_difference(yt, np.ones_like(yt), yc, np.ones_like(yc))
    assert res.theta == 0.0
    assert res.adjusted.ci == pytest.approx(res.unadjusted.ci)
    assert res.width_reduction == pytest.approx(0.0)
    assert "constant" in res.details["note"]


def test_cuped_ratio_matches_tea_tasting_ratio_of_means_with_covariates(ratio_frames):
    tt = pytest.importorskip("tea_tasting")
    treat, ctrl = ratio_frames
    data = pd.concat([ctrl.assign(variant=0), treat.assign(variant=1)], ignore_index=True)
    metric = tt.RatioOfMeans(
        "returned", "delivered", "pre_returned", "pre_delivered", use_t=False, equal_var=False
    )
    ref = tt.Experiment(r=metric).analyze(data)["r"]
    res = cuped_ratio_difference(
        treat, ctrl, "returned", "delivered", "pre_returned", "pre_delivered"
    )
    assert res.adjusted.method == "cuped-delta"
    assert res.adjusted.estimate == pytest.approx(ref.effect_size, rel=1e-9)
    assert res.adjusted.ci_low == pytest.approx(ref.effect_size_ci_lower, rel=1e-8)
    assert res.adjusted.ci_high == pytest.approx(ref.effect_size_ci_upper, rel=1e-8)
    assert res.adjusted.p_value == pytest.approx(ref.pvalue, rel=1e-7)


def test_cuped_ratio_unadjusted_is_plain_delta_ratio_difference(ratio_frames):
    treat, ctrl = ratio_frames
    res = cuped_ratio_difference(treat, ctrl, "returned", "delivered", "pre_returned", "pre_delivered")
    ref = ratio_difference(treat.returned, treat.delivered, ctrl.returned, ctrl.delivered)
    assert res.unadjusted.ci == pytest.approx(ref.ci)
    assert res.width_reduction > 0.0


# --- degenerate input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]), "one value per customer"),
        (([1.0], [1.0], [1.0, 2.0], [1.0, 2.0]), "fewer than 2"),
        (([1.0, 2.0], [np.nan, 2.0], [1.0, 2.0], [1.0, 2.0]), "non-finite"),
    ],
)
def test_cuped_mean_degenerate_input_returns_error(args, message):
    res = cuped_mean_difference(*args)
    assert res.error and message in res.error
    assert res.adjusted.estimate is None and res.width_reduction is None
    json.dumps(res.to_dict(), allow_nan=False)


def test_cuped_ratio_missing_column_returns_error(ratio_frames):
    treat, ctrl = ratio_frames
    res = cuped_ratio_difference(treat, ctrl, "returned", "delivered", "pre_x", "pre_delivered")
    assert res.error and "missing columns" in res.error
    json.dumps(res.to_dict(), allow_nan=False)


def test_cuped_ratio_without_pre_period_units_returns_error(ratio_frames):
    treat, ctrl = ratio_frames
    res = cuped_ratio_difference(
        treat.assign(pre_delivered=0.0), ctrl, "returned", "delivered", "pre_returned", "pre_delivered"
    )
    assert res.error and "pre-period denominator" in res.error
    assert res.unadjusted.ok  # the plain estimate is still there
    json.dumps(res.to_dict(), allow_nan=False)
