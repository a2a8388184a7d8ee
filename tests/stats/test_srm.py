"""Tests for playbook.stats.srm (sample ratio mismatch)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy import stats

from playbook.stats.srm import chi2_log_sf, sample_ratio_mismatch

HALF = {"control": 0.5, "treatment": 0.5}


def test_exact_50_50_split_is_no_mismatch():
    res = sample_ratio_mismatch({"control": 5000, "treatment": 5000}, HALF)
    assert res.ok
    assert res.statistic == 0.0
    assert res.p_value == pytest.approx(1.0)
    assert not res.mismatch


def test_5000_vs_5400_is_a_mismatch():
    res = sample_ratio_mismatch({"control": 5000, "treatment": 5400}, HALF)
    # X² = 2 · 200² / 5200 = 15.38, p ≈ 8.8e-5 < 0.001
    assert res.statistic == pytest.approx(2 * 200**2 / 5200)
    assert res.p_value == pytest.approx(stats.chi2.sf(2 * 200**2 / 5200, 1))
    assert res.p_value < 0.001
    assert res.mismatch


def test_small_random_looking_imbalance_is_no_mismatch():
    res = sample_ratio_mismatch({"control": 5000, "treatment": 5090}, HALF)
    assert 0.001 < res.p_value < 0.5
    assert not res.mismatch


def test_large_imbalance_gives_tiny_but_nonzero_p_value():
    res = sample_ratio_mismatch({"control": 5000, "treatment": 6500}, HALF)
    assert 0.0 < res.p_value < 1e-40
    assert not res.p_value_floored
    assert res.log10_p_value == pytest.approx(math.log10(res.p_value), rel=1e-9)
    assert res.mismatch


def test_huge_imbalance_floors_p_value_and_keeps_exact_log():
    res = sample_ratio_mismatch({"control": 5000, "treatment": 20000}, HALF)
    assert res.p_value_floored
    assert res.p_value > 0.0
    # df=1: P(χ²₁ > X²) = 2·Φ(−√X²), and scipy's norm.logsf stays exact in the far tail
    exact = (math.log(2) + stats.norm.logsf(math.sqrt(res.statistic))) / math.log(10)
    assert res.log10_p_value == pytest.approx(exact, rel=1e-9)
    assert res.mismatch


@pytest.mark.parametrize("df", [1, 2, 4, 9])
@pytest.mark.parametrize("statistic", [50.0, 400.0, 1300.0])
def test_chi2_log_sf_matches_scipy_where_scipy_is_finite(df, statistic):
    assert chi2_log_sf(statistic, df) == pytest.approx(stats.chi2.logsf(statistic, df), rel=1e-10)


def test_statistic_matches_scipy_chisquare_for_three_arms():
    observed = {"A": 3300, "B": 3350, "C": 6600}
    res = sample_ratio_mismatch(observed, {"A": 1, "B": 1, "C": 2})
    ref = stats.chisquare([3300, 3350, 6600], [13250 / 4, 13250 / 4, 13250 / 2])
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.df == 2
    assert res.expected_shares == pytest.approx({"A": 0.25, "B": 0.25, "C": 0.5})


def test_two_arm_p_value_matches_tea_tasting_sample_ratio():
    tt = pytest.importorskip("tea_tasting")
    data = pd.DataFrame({"variant": [0] * 5000 + [1] * 5150})
    ref = tt.Experiment(s=tt.SampleRatio(method="norm", correction=False)).analyze(data)["s"]
    res = sample_ratio_mismatch({"0": 5000, "1": 5150}, {"0": 0.5, "1": 0.5})
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_unequal_planned_split_uses_expected_shares():
    res = sample_ratio_mismatch({"control": 2000, "treatment": 8000}, {"control": 0.2, "treatment": 0.8})
    assert res.statistic == pytest.approx(0.0)
    assert not res.mismatch
    assert res.expected == {"control": 2000.0, "treatment": 8000.0}


def test_threshold_is_a_parameter():
    counts = {"control": 5000, "treatment": 5200}  # p ≈ 0.047
    assert not sample_ratio_mismatch(counts, HALF).mismatch
    assert sample_ratio_mismatch(counts, HALF, threshold=0.05).mismatch


@pytest.mark.parametrize(
    ("observed", "shares", "message"),
    [
        ({"control": 10, "treatment": 12}, {"control": 0.5, "B": 0.5}, "arms differ"),
        ({"control": 0, "treatment": 0}, HALF, "no units"),
        ({"control": 10, "treatment": 12}, {"control": 0.0, "treatment": 1.0}, "positive"),
        ({"control": -1, "treatment": 12}, HALF, "non-negative"),
        ({"control": 10}, {"control": 1.0}, "two arms"),
        ({"control": float("nan"), "treatment": 12}, HALF, "finite"),
    ],
)
def test_invalid_input_returns_error_not_exception(observed, shares, message):
    res = sample_ratio_mismatch(observed, shares)
    assert not res.ok and message in res.error
    assert res.p_value is None and not res.mismatch
    json.dumps(res.to_dict(), allow_nan=False)


def test_result_serialises_to_strict_json():
    res = sample_ratio_mismatch({"control": 5000, "treatment": 5400}, HALF)
    out = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert out["mismatch"] is True and out["observed"] == {"control": 5000, "treatment": 5400}
