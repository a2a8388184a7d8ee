"""Reference tests for playbook.stats.proportions: published tables, hand formulas, scipy, tea-tasting."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.proportions import proportion_difference, proportion_interval, proportion_relative_lift

Z95 = stats.norm.ppf(0.975)


def wilson_by_hand(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927) score interval, straight from the formula."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def newcombe_by_hand(k1, n1, k2, n2, z: float = Z95) -> tuple[float, float]:
    """Newcombe (1998) method 10, from the two Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_hand(k1, n1, z)
    l2, u2 = wilson_by_hand(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def strict_json(est) -> str:
    """Serialises with NaN forbidden: proves the result carries no NaN/inf."""
    return json.dumps(est.to_dict(), allow_nan=False)


# --- proportion_difference -------------------------------------------------------------------

# Newcombe R.G. (1998) Stat Med 17:873-890, Table II, method 10 (score, no continuity
# correction), 95% limits printed to 4 decimals. Examples (a)-(h).
NEWCOMBE_1998_METHOD_10 = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_1998_METHOD_10)
def test_difference_reproduces_newcombe_1998_table_ii_method_10(counts, expected):
    res = proportion_difference(*counts)
    assert res.method == "newcombe"
    # the table is rounded to 4 decimals
    assert res.ci_low == pytest.approx(expected[0], abs=5.1e-5)
    assert res.ci_high == pytest.approx(expected[1], abs=5.1e-5)


def test_difference_of_first_newcombe_example_is_0_2():
    res = proportion_difference(56, 70, 48, 80)
    assert res.estimate == pytest.approx(56 / 70 - 48 / 80)
    assert res.estimate == pytest.approx(0.2)
    assert res.n == 150


def test_difference_matches_fagerland_2015_newcombe_example():
    # Fagerland, Lydersen & Laake (2015) SMMR 24:224, 7/34 vs 1/34, Newcombe hybrid score
    # interval printed as 0.019 to 0.34.
    res = proportion_difference(7, 34, 1, 34)
    assert res.ci_low == pytest.approx(0.019, abs=5e-4)
    assert res.ci_high == pytest.approx(0.34, abs=5e-3)


@pytest.mark.parametrize("counts", [(130, 1000, 160, 1000), (3, 40, 11, 35), (480, 2500, 455, 2400)])
def test_difference_matches_hand_computed_newcombe_formula(counts):
    res = proportion_difference(*counts)
    low, high = newcombe_by_hand(*counts)
    assert res.ci_low == pytest.approx(low, rel=1e-10)
    assert res.ci_high == pytest.approx(high, rel=1e-10)


def test_difference_at_90_percent_matches_hand_formula():
    res = proportion_difference(130, 1000, 160, 1000, confidence=0.90)
    low, high = newcombe_by_hand(130, 1000, 160, 1000, z=stats.norm.ppf(0.95))
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert res.confidence == 0.90


def test_difference_p_value_equals_pearson_chi_square_without_correction():
    table = np.array([[130, 870], [160, 840]])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    res = proportion_difference(130, 1000, 160, 1000)
    assert res.p_value == pytest.approx(expected, rel=1e-10)


def test_difference_matches_tea_tasting_pooled_z_test_p_value():
    tt = pytest.importorskip("tea_tasting")
    data = pd.DataFrame({
        "variant": [0] * 1000 + [1] * 1000,
        "returned": [1] * 160 + [0] * 840 + [1] * 130 + [0] * 870,
    })
    ref = tt.Experiment(
        r=tt.Proportion("returned", method="norm", correction=False, equal_var=True)
    ).analyze(data)["r"]
    res = proportion_difference(130, 1000, 160, 1000)
    assert res.estimate == pytest.approx(ref.effect_size, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_difference_with_no_success_anywhere_keeps_interval_but_has_no_p_value():
    res = proportion_difference(0, 70, 0, 80)
    assert res.ok
    assert res.p_value is None
    assert "p_value_note" in res.details
    strict_json(res)


# --- proportion_relative_lift ---------------------------------------------------------------


def test_relative_lift_delta_log_matches_hand_formula():
    st, nt, sc, nc = 130, 1000, 160, 1000
    pt, pc = st / nt, sc / nc
    se = math.sqrt((1 - pt) / (nt * pt) + (1 - pc) / (nc * pc))
    low = math.exp(math.log(pt / pc) - Z95 * se) - 1
    high = math.exp(math.log(pt / pc) + Z95 * se) - 1
    res = proportion_relative_lift(st, nt, sc, nc)
    assert res.method == "delta-log"
    assert res.estimate == pytest.approx(pt / pc - 1, rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(math.log(pt / pc) / se)), rel=1e-9)
    assert res.null_value == 0.0


def test_relative_lift_matches_tea_tasting_relative_interval():
    tt = pytest.importorskip("tea_tasting")
    data = pd.DataFrame({
        "variant": [0] * 1000 + [1] * 1000,
        "returned": [1] * 160 + [0] * 840 + [1] * 130 + [0] * 870,
    })
    ref = tt.Experiment(
        r=tt.Proportion("returned", method="norm", correction=False, equal_var=False)
    ).analyze(data)["r"]
    res = proportion_relative_lift(130, 1000, 160, 1000)
    assert res.estimate == pytest.approx(ref.rel_effect_size, rel=1e-12)
    assert res.ci_low == pytest.approx(ref.rel_effect_size_ci_lower, rel=1e-9)
    assert res.ci_high == pytest.approx(ref.rel_effect_size_ci_upper, rel=1e-9)


def test_relative_lift_interval_is_not_the_absolute_interval_over_the_control_rate():
    # 30/200 vs 45/200: the shortcut Newcombe/p_c gives [-0.671, 0.008], the log-scale
    # delta interval [-0.561, 0.013]; the two differ by far more than rounding.
    res = proportion_relative_lift(30, 200, 45, 200)
    diff = proportion_difference(30, 200, 45, 200)
    shortcut = (diff.ci_low / 0.225, diff.ci_high / 0.225)
    assert abs(res.ci_low - shortcut[0]) > 0.05
    # symmetric on the log scale, hence longer above the estimate than below it
    assert res.estimate - res.ci_low < res.ci_high - res.estimate


@pytest.mark.parametrize("counts", [(130, 1000, 160, 1000), (56, 70, 48, 80)])
def test_relative_lift_p_value_agrees_with_its_interval(counts):
    res = proportion_relative_lift(*counts)
    assert res.excludes_null() == (res.p_value < 0.05)


def test_fieller_lift_bounds_solve_fieller_equation():
    st, nt, sc, nc = 130, 1000, 160, 1000
    pt, pc = st / nt, sc / nc
    vt, vc = pt * (1 - pt) / nt, pc * (1 - pc) / nc
    res = proportion_relative_lift(st, nt, sc, nc, method="fieller")
    assert res.method == "fieller"
    for bound in (res.ci_low, res.ci_high):
        r = bound + 1
        assert (pt - r * pc) ** 2 == pytest.approx(Z95**2 * (vt + r * r * vc), rel=1e-9)


def test_fieller_and_delta_log_agree_for_large_arms():
    a = proportion_relative_lift(1900, 10000, 2100, 10000, method="fieller")
    b = proportion_relative_lift(1900, 10000, 2100, 10000, method="delta-log")
    assert a.ci_low == pytest.approx(b.ci_low, abs=2e-3)
    assert a.ci_high == pytest.approx(b.ci_high, abs=2e-3)


def test_fieller_unbounded_when_control_not_distinguishable_from_zero():
    res = proportion_relative_lift(2, 10, 1, 10, method="fieller")
    assert res.estimate == pytest.approx(1.0)
    assert res.ci_low is None and res.error and "unbounded" in res.error
    strict_json(res)


# --- proportion_interval ----------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(5, 20), (0, 15), (15, 15), (1234, 5000)])
def test_wilson_interval_matches_scipy_binomtest(k, n):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    res = proportion_interval(k, n)
    assert res.method == "wilson"
    assert res.estimate == pytest.approx(k / n)
    assert res.ci_low == pytest.approx(ref.low, abs=1e-12)
    assert res.ci_high == pytest.approx(ref.high, abs=1e-12)


def test_wilson_interval_matches_hand_formula():
    res = proportion_interval(37, 410)
    assert (res.ci_low, res.ci_high) == pytest.approx(wilson_by_hand(37, 410), rel=1e-10)


# --- degenerate input -----------------------------------------------------------------------

DEGENERATE_TWO_ARMS = [
    pytest.param((5, 0, 3, 50), id="empty-treatment"),
    pytest.param((5, 50, 0, 0), id="empty-control"),
    pytest.param((60, 50, 3, 50), id="more-successes-than-units"),
    pytest.param((-1, 50, 3, 50), id="negative-successes"),
    pytest.param((float("nan"), 50, 3, 50), id="nan-count"),
    pytest.param(("a", 50, 3, 50), id="not-a-number"),
]


@pytest.mark.parametrize("counts", DEGENERATE_TWO_ARMS)
@pytest.mark.parametrize("func", [proportion_difference, proportion_relative_lift])
def test_degenerate_counts_return_error_not_exception(func, counts):
    res = func(*counts)
    assert res.error
    assert res.estimate is None and res.ci_low is None and res.ci_high is None
    assert not res.ok
    strict_json(res)


@pytest.mark.parametrize("func", [proportion_difference, proportion_relative_lift])
def test_invalid_confidence_returns_error(func):
    res = func(10, 100, 12, 100, confidence=1.5)
    assert res.error and "confidence" in res.error


def test_relative_lift_with_zero_control_rate_is_unavailable():
    res = proportion_relative_lift(5, 70, 0, 80)
    assert res.estimate is None
    assert "control rate is 0" in res.error
    strict_json(res)


def test_relative_lift_with_zero_treatment_successes_has_estimate_but_no_interval():
    res = proportion_relative_lift(0, 70, 48, 80)
    assert res.estimate == pytest.approx(-1.0)
    assert res.ci_low is None and res.ci_high is None
    assert res.error
    strict_json(res)


def test_relative_lift_unknown_method_is_an_error():
    res = proportion_relative_lift(10, 100, 12, 100, method="bootstrap")  # type: ignore[arg-type]
    assert res.error and "unknown method" in res.error


@pytest.mark.parametrize(("k", "n"), [(1, 0), (5, 3), (float("inf"), 10)])
def test_wilson_degenerate_returns_error(k, n):
    res = proportion_interval(k, n)
    assert res.error
    strict_json(res)
