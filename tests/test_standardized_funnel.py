"""The indirectly standardised funnel (each slice against its own baseline): the exact one-sided
conditional test checked against scipy, the flags, the overdispersion divisor, and seeded null
simulations of whole funnels."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.stats import mstats
from statsmodels.stats.multitest import multipletests

from playbook.stats.standardized import (
    NO_BASELINE,
    NO_UNITS,
    binomial_upper_tail,
    conditional_limits,
    excess_p_value,
    standardized_funnel,
)


def frame(rows: list[tuple], cost: bool = True) -> pd.DataFrame:
    """rows: (id, events, units, baseline_events, baseline_units[, cost_per_event])."""
    cols = ["id", "events", "units", "baseline_events", "baseline_units"] + (["cost_per_event"] if cost else [])
    return pd.DataFrame(rows, columns=cols)


def by_id(out: pd.DataFrame) -> pd.DataFrame:
    return out.set_index("id")


def scipy_p(o: int, n: float, b: int, m: float) -> float:
    """One-sided exact conditional p-value from scipy: O | O + B ~ Binomial(O + B, n / (n + m))."""
    if o + b == 0:
        return 1.0
    return stats.binomtest(int(o), int(o + b), n / (n + m), alternative="greater").pvalue


def score_z(o: float, n: float, b: float, m: float) -> float:
    pi = n / (n + m)
    return (o - (o + b) * pi) / math.sqrt((o + b) * pi * (1 - pi))


def slice_at(ident: str, n: int, m: int, p: float, z_target: float) -> tuple:
    """A slice whose window count sits about ``z_target`` score residuals from its own baseline."""
    total = round(p * (n + m))  # returns of both periods, split between window and baseline
    pi = n / (n + m)
    o = round(total * pi + z_target * math.sqrt(total * pi * (1 - pi)))
    bo = total - o
    return (ident, o, n, bo, m, 10.0)


# --- the test: exact, one-sided, conditional on the returns of both periods ------------------------

HAND = [("a", 30, 200, 100, 1000, 10.0), ("b", 12, 300, 60, 1000, 10.0),
        ("c", 45, 400, 80, 800, 10.0), ("d", 5, 50, 25, 500, 10.0)]


def test_p_values_are_scipys_one_sided_binomial_test_of_the_window_share_of_returns():
    out = by_id(standardized_funnel(frame(HAND)))
    # a: 30 of the 130 returns fell in the window, which holds 200 / 1200 of the units
    assert out.loc["a", "p_value"] == pytest.approx(stats.binom.sf(29, 130, 200 / 1200), rel=1e-12)
    for ident, o, n, b, m, _ in HAND:
        assert out.loc[ident, "p_value"] == pytest.approx(scipy_p(o, n, b, m), rel=1e-10), ident


def test_excess_p_value_equals_scipy_on_many_integer_counts():
    rng = np.random.default_rng(3)
    n, m = rng.integers(1, 5000, 2000), rng.integers(1, 20000, 2000)
    o, b = rng.integers(0, 80, 2000), rng.integers(0, 160, 2000)
    expected = stats.binom.sf(o - 1, o + b, n / (n + m))
    np.testing.assert_allclose(excess_p_value(o, n, b, m), np.where(o + b > 0, expected, 1.0), rtol=1e-10)


def test_excess_p_value_with_a_divisor_is_the_binomial_tail_of_the_divided_counts():
    # divisor 2.5: 20 of 60 returns -> 8 of 24 effective returns (integers, so scipy's binomial applies)
    assert excess_p_value(20, 1000, 40, 3000, divisor=2.5) == pytest.approx(stats.binom.sf(7, 24, 0.25), rel=1e-12)


def test_the_continuous_tail_is_the_beta_cdf_between_integers():
    # P(X >= x) = I_pi(x, N - x + 1) = Beta(x, N - x + 1).cdf(pi), scipy's beta distribution as reference
    x, size, pi = np.array([0.5, 3.3, 7.9, 12.25]), np.array([10.2, 10.2, 20.7, 30.0]), 0.3
    np.testing.assert_allclose(binomial_upper_tail(x, size, pi), stats.beta.cdf(pi, x, size - x + 1), rtol=1e-10)


def test_the_divided_tail_is_close_to_the_beta_binomial_tail_of_the_same_variance():
    # quasi-likelihood scaling vs an explicit beta-binomial with variance d N pi (1 - pi): the tails
    # agree within 25 % (relative) between p = 1e-4 and 5 % (measured: 0.86 to 1.24)
    for size, pi, d in [(40, 1 / 3, 2.0), (200, 1 / 3, 2.0), (1000, 0.25, 3.0)]:
        rho = (d - 1) / (size - 1)
        a, b = pi * (1 / rho - 1), (1 - pi) * (1 / rho - 1)
        o = np.arange(size + 1)
        reference = stats.betabinom.sf(o - 1, size, a, b)
        mid = (reference > 1e-4) & (reference < 0.05)
        assert mid.sum() >= 5  # guard: the range is covered
        ratio = excess_p_value(o[mid], 1, size - o[mid], 1 / pi - 1, divisor=d) / reference[mid]
        assert (0.75 < ratio).all() and (ratio < 1.25).all(), (size, ratio.min(), ratio.max())


def test_a_baseline_without_returns_needs_no_floor_in_the_test():
    # 6 returns now, none in the 8 baseline weeks, window a third of the units: p = (1/3)^6
    assert excess_p_value(6, 1000, 0, 2000) == pytest.approx((1 / 3) ** 6, rel=1e-12)


def test_no_return_in_either_period_gives_p_one_and_no_units_gives_nan():
    p = excess_p_value([0, 3, 3, 3], [100, 0, 100, 100], [0, 1, 1, 1], [200, 200, 0, 200], [1, 1, 1, 0])
    assert p[0] == 1.0
    assert np.isnan(p[1:]).all()  # no window units, no baseline units, a divisor of 0


def test_score_z_and_its_scaled_version_are_reported_for_display():
    out = by_id(standardized_funnel(frame(HAND)))
    for ident, o, n, b, m, _ in HAND:
        assert out.loc[ident, "z"] == pytest.approx(score_z(o, n, b, m)), ident
    np.testing.assert_allclose(out["z_adjusted"], out["z"] / np.sqrt(out["divisor"]))


def test_expected_events_ratio_and_excess_use_the_slices_own_rate():
    out = by_id(standardized_funnel(frame(HAND)))
    # c: own rate 80/800 = 0.1, 400 units -> 40 expected, 45 observed
    assert out.loc["c", "baseline_rate"] == pytest.approx(0.1)
    assert out.loc["c", "expected_events"] == pytest.approx(40.0)
    assert out.loc["c", "ratio"] == pytest.approx(45 / 40)
    assert out.loc["c", "excess_events"] == pytest.approx(5.0)
    assert out.loc["c", "rate"] == pytest.approx(45 / 400)


def test_excess_cost_counts_only_returns_above_expected_valued_at_the_cost_per_event():
    out = by_id(standardized_funnel(frame(HAND)))
    assert out.loc["a", "excess_cost"] == pytest.approx((30 - 20) * 10.0)
    assert out.loc["b", "excess_cost"] == 0.0  # 12 observed < 18 expected: no negative cost


def test_without_a_cost_column_the_excess_cost_is_the_excess_events():
    out = by_id(standardized_funnel(frame([r[:5] for r in HAND], cost=False), cost_per_event=None))
    assert out.loc["a", "excess_cost"] == pytest.approx(10.0)


def calm(k: int) -> list[tuple]:
    """k slices spread between -1 and 1 score residual of their own baseline (no overdispersion)."""
    return [slice_at(f"null{i}", 1000, 4000, 0.08, z) for i, z in enumerate(np.linspace(-1, 1, k))]


def test_q_values_are_benjamini_hochberg_of_the_one_sided_p_values():
    rows = HAND + [("e", 70, 500, 100, 1000, 1.0), ("f", 20, 100, 150, 1000, 1.0)] + calm(10)
    out = standardized_funnel(frame(rows))
    assert not out.attrs["phi_applied"]  # guard: without phi the p-values are the plain exact ones
    ids = [r[0] for r in rows]
    p = np.array([scipy_p(*r[1:5]) for r in rows])
    got = by_id(out).loc[ids]
    np.testing.assert_allclose(got["p_value"], p, rtol=1e-10)
    np.testing.assert_allclose(got["q_value"], multipletests(p, method="fdr_bh")[1], rtol=1e-10)


# --- the funnel-plot limits agree with the test -----------------------------------------------------

def test_the_upper_95_limit_is_where_scipys_one_sided_p_crosses_2_5_percent():
    for o, n, b, m in [(30, 200, 100, 1000), (5, 50, 25, 500), (3, 8, 1, 8), (0, 100, 4, 300)]:
        r = by_id(standardized_funnel(frame([("s", o, n, b, m, 1.0)]))).loc["s"]
        limit = r["upper_95"] * r["expected_events"]  # the window count at the limit, same O + B
        pi = n / (n + m)
        # smallest integer count with p < 2.5 % (scipy) is the first integer above the limit
        first = next(x for x in range(o + b + 1) if stats.binom.sf(x - 1, o + b, pi) < 0.025) \
            if stats.binom.sf(o + b - 1, o + b, pi) < 0.025 else None
        if first is None:
            assert limit > o + b  # no count at this O + B can be flagged
        else:
            assert first - 1 <= limit < first, (o, n, b, m)


def test_a_slice_is_above_its_limit_exactly_when_its_p_value_is_below_the_limits_tail():
    rng = np.random.default_rng(5)
    n, m = rng.integers(50, 5000, 3000), rng.integers(100, 10000, 3000)
    rate = rng.uniform(0.005, 0.05, 3000)
    df = pd.DataFrame({"events": rng.binomial(n, rate * rng.uniform(0.5, 3, 3000)), "units": n,
                       "baseline_events": rng.binomial(m, rate), "baseline_units": m})
    out = standardized_funnel(df, adjust="never")  # the planted spread would also widen both by phi
    for level, tail in [(95, 0.025), (998, 0.001)]:
        above = out["ratio"] > out[f"upper_{level}"]
        assert 100 < above.sum() < 2900  # guard: both sides populated
        np.testing.assert_array_equal(above, out["p_value"] < tail)


def test_conditional_limits_lower_limit_is_where_the_lower_tail_crosses_alpha():
    low, _ = conditional_limits(np.array([120.0]), np.array([0.25]), np.array([1.0]), 0.025)
    first = next(x for x in range(121) if stats.binom.cdf(x, 120, 0.25) >= 0.025)
    assert first - 1 <= low[0] < first + 1 and stats.binom.cdf(math.floor(low[0]), 120, 0.25) <= 0.025 + 1e-12


# --- flags ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_and_tiny() -> pd.DataFrame:
    rows = calm(20) + [
        ("big", 750, 5000, 2000, 20000, 10.0),  # 15 % against its own 10 %
        ("tiny", 3, 8, 1, 8, 10.0),  # 3/8 against its own 1/8
    ]
    return by_id(standardized_funnel(frame(rows)))


def test_a_big_slice_five_points_above_its_own_baseline_is_flagged(big_and_tiny):
    assert big_and_tiny.loc["big", "flagged"]
    assert big_and_tiny.loc["big", "rank"] == 1


def test_a_tiny_slice_at_three_in_eight_against_one_in_eight_is_not_flagged(big_and_tiny):
    assert big_and_tiny.loc["tiny", "ratio"] == pytest.approx(3.0)  # a large ratio ...
    assert big_and_tiny.loc["tiny", "p_value"] == pytest.approx(0.3125)  # ... 3 of 4 returns at pi = 1/2
    assert not big_and_tiny.loc["tiny", "flagged"]  # ... on too few units


def test_slices_near_their_own_baseline_are_not_flagged(big_and_tiny):
    assert not big_and_tiny.filter(like="null", axis=0)["flagged"].any()


def test_a_slice_far_below_its_own_baseline_gets_a_p_value_near_one_and_no_flag():
    rows = calm(20)
    rows.append(("low", 250, 5000, 2000, 20000, 10.0))  # 5 % against its own 10 %: far, but on the good side
    r = by_id(standardized_funnel(frame(rows))).loc["low"]
    assert r["p_value"] > 0.999  # one-sided: getting better is not evidence of getting worse
    assert not r["flagged"]


def test_flagged_slices_are_ranked_by_excess_cost_not_by_z():
    rows = calm(30) + [("sharp_cheap", 900, 5000, 2000, 20000, 1.0),  # 400 excess events at 1 each
             ("mild_dear", 600, 5000, 2000, 20000, 50.0)]  # 100 excess events at 50 each
    out = standardized_funnel(frame(rows))
    t = by_id(out)
    assert not out.attrs["phi_applied"]  # guard on the construction
    assert t.loc["sharp_cheap", "z_adjusted"] > t.loc["mild_dear", "z_adjusted"]
    assert t.loc["mild_dear", "rank"] == 1 and t.loc["sharp_cheap", "rank"] == 2
    assert list(out["id"][:2]) == ["mild_dear", "sharp_cheap"]  # flagged first, by rank


def test_a_slice_whose_baseline_had_no_returns_and_now_has_many_is_flagged():
    rows = calm(20)
    rows.append(("new_problem", 50, 250, 0, 1000, 10.0))
    r = by_id(standardized_funnel(frame(rows))).loc["new_problem"]
    assert r["p_value"] == pytest.approx(0.2 ** 50)  # all 50 returns in the window, a fifth of the units
    assert r["flagged"]


# --- the divisor: customer design effect x overdispersion ---------------------------------------------

def test_a_design_effect_column_divides_the_counts_of_its_row():
    df = frame(HAND)
    df["design_effect"] = [2.0, 1.0, 1.0, 1.0]
    out = by_id(standardized_funnel(df))
    # a: 30 of 130 returns -> 15 of 65 effective returns
    assert out.loc["a", "p_value"] == pytest.approx(stats.binom.sf(14, 65, 200 / 1200), rel=1e-12)
    assert out.loc["b", "p_value"] == pytest.approx(scipy_p(12, 300, 60, 1000), rel=1e-10)
    assert out.loc["a", "divisor"] == 2.0


def test_a_bulk_return_by_one_customer_is_not_flagged_once_its_design_effect_is_given():
    # 60 window returns against 20 expected, but 40 of them by one customer: design effect
    # (40^2 + 20 x 1^2 + 20 x 1^2) / 80 = 20.5 over window and baseline pooled
    rows = calm(20) + [("bulk", 60, 2000, 40, 4000, 10.0)]
    plain = by_id(standardized_funnel(frame(rows))).loc["bulk"]
    df = frame(rows)
    df["design_effect"] = [1.0] * 20 + [20.5]
    clustered = by_id(standardized_funnel(df)).loc["bulk"]
    assert plain["flagged"]  # guard: as units, a clear excess
    assert not clustered["flagged"] and clustered["p_value"] > 0.05


def test_a_design_effect_below_one_or_missing_counts_as_one():
    df = frame(HAND)
    df["design_effect"] = [0.5, np.nan, 1.0, 1.0]
    out = by_id(standardized_funnel(df))
    assert (out["divisor"] == 1.0).all()


def phi_by_hand(z: np.ndarray) -> float:
    """Spiegelhalter's phi with scipy's winsorize (11 slices: one value clipped at each end)."""
    return float(np.mean(np.asarray(mstats.winsorize(z, limits=(0.1, 0.1))) ** 2))


def eleven(z_targets) -> pd.DataFrame:
    return frame([slice_at(f"s{i}", 2000, 4000, 0.1, z) for i, z in enumerate(z_targets)])


def hand_z(df: pd.DataFrame) -> np.ndarray:
    return np.array([score_z(*r[1:5]) for r in df.itertuples(index=False)])


def test_phi_is_not_applied_when_the_slices_vary_as_chance_predicts():
    df = eleven([-1.1, -0.9, -0.6, -0.3, 0.0, 0.2, 0.4, 0.7, 1.0, 1.2, 1.5])
    out = standardized_funnel(df)
    assert not out.attrs["phi_applied"]
    assert (out["divisor"] == 1.0).all()


def test_phi_above_one_but_below_the_chi_square_threshold_is_not_applied():
    df = eleven([-1.3, -1.2, -1.1, -1.0, 1.0, 1.1, 1.2, 1.3, -1.25, 1.15, 1.2])
    phi = phi_by_hand(hand_z(df))
    assert 1.0 < phi < stats.chi2.ppf(0.95, 10) / 11  # guard on the construction
    out = standardized_funnel(df)
    assert out.attrs["phi"] == pytest.approx(phi)
    assert not out.attrs["phi_applied"]


def test_phi_is_applied_when_the_slices_are_overdispersed_and_divides_the_counts():
    df = eleven([-4.0, -3.5, -3.0, -2.5, -2.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0])
    phi = phi_by_hand(hand_z(df))
    assert phi > stats.chi2.ppf(0.95, 10) / 11  # guard on the construction
    out = standardized_funnel(df)
    assert out.attrs["phi_applied"] and out.attrs["phi"] == pytest.approx(phi)
    got = by_id(out).loc[df["id"]]
    # effective counts O / phi of N / phi, through scipy's beta distribution (the continuous binomial tail)
    o, total = got["events"].to_numpy(float), (got["events"] + got["baseline_events"]).to_numpy(float)
    expected = stats.beta.cdf(2000 / 6000, o / phi, (total - o) / phi + 1)
    np.testing.assert_allclose(got["p_value"], expected, rtol=1e-10)
    np.testing.assert_allclose(got["z_adjusted"], hand_z(df) / math.sqrt(phi), rtol=1e-10)


def test_phi_is_estimated_on_residuals_already_divided_by_the_design_effect():
    df = eleven([-4.0, -3.5, -3.0, -2.5, -2.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0])
    df["design_effect"] = 9.0
    out = standardized_funnel(df)
    assert out.attrs["phi"] == pytest.approx(phi_by_hand(hand_z(df) / 3.0))
    assert not out.attrs["phi_applied"]  # the spread is what the clustering predicts


def test_phi_widens_the_limits_when_applied():
    df = eleven([-4.0, -3.5, -3.0, -2.5, -2.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0])
    out = by_id(standardized_funnel(df))
    plain = by_id(standardized_funnel(df, adjust="never"))
    assert (out["upper_95"] > plain["upper_95"]).all()


def test_fewer_than_three_slices_give_no_phi():
    out = standardized_funnel(frame(HAND[:2]))
    assert math.isnan(out.attrs["phi"]) and not out.attrs["phi_applied"]
    assert out.attrs["n_slices"] == 2


# --- rows without statistics -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def with_empty_rows() -> pd.DataFrame:
    rows = HAND + [("no_units", 0, 0, 30, 300, 10.0), ("no_baseline", 4, 40, 0, 0, 10.0)]
    return standardized_funnel(frame(rows))


def test_a_slice_without_units_gets_a_note_and_no_flag(with_empty_rows):
    r = by_id(with_empty_rows).loc["no_units"]
    assert r["note"] == NO_UNITS
    assert not r["flagged"] and math.isnan(r["z"]) and math.isnan(r["q_value"])


def test_a_slice_without_baseline_units_gets_a_note_and_no_flag(with_empty_rows):
    r = by_id(with_empty_rows).loc["no_baseline"]
    assert r["note"] == NO_BASELINE
    assert not r["flagged"] and math.isnan(r["z"]) and math.isnan(r["expected_events"])


def test_rows_without_statistics_are_left_out_of_the_count_and_of_bh(with_empty_rows):
    assert with_empty_rows.attrs["n_slices"] == 4
    valid = by_id(with_empty_rows).loc[[r[0] for r in HAND]]
    np.testing.assert_allclose(valid["q_value"], multipletests(valid["p_value"], method="fdr_bh")[1])


def test_a_frame_with_only_empty_slices_returns_rows_without_raising():
    out = standardized_funnel(frame([("x", 0, 0, 3, 30, 1.0), ("y", 2, 20, 0, 0, 1.0)]))
    assert out.attrs["n_slices"] == 0 and not out["flagged"].any()
    assert set(out["note"]) == {NO_UNITS, NO_BASELINE}


# --- calibration: whole funnels of null slices -------------------------------------------------------
# CALLS funnel calls of SLICES null slices each (window and baseline drawn from the slice's own rate,
# 0.5-3 % per slice, 300-6,000 baseline units, window 0.3-1 x the baseline): the regime of one
# reason across many slices. One-sided bands: nominal + 3 binomial SE at the number of slices.

CALLS, SLICES = 40, 2_000  # 80,000 null slices in 40 funnels


@pytest.fixture(scope="module")
def null_funnels():
    """p-values, q-values and phi of CALLS seeded null funnels of SLICES slices each."""
    rng = np.random.default_rng(20261116)
    p_values, any_discovery, phi = [], [], []
    for _ in range(CALLS):
        m = rng.integers(300, 6000, SLICES)
        n = np.maximum((m * rng.uniform(0.3, 1.0, SLICES)).astype(int), 1)
        rate = rng.uniform(0.005, 0.03, SLICES)
        df = pd.DataFrame({"events": rng.binomial(n, rate), "units": n,
                           "baseline_events": rng.binomial(m, rate), "baseline_units": m})
        out = standardized_funnel(df)
        p_values.append(out["p_value"].to_numpy())
        any_discovery.append(bool(out["flagged"].any()))
        phi.append(out.attrs["phi"])
    return np.concatenate(p_values), np.array(any_discovery), np.array(phi)


def at_most(level: float, count: int) -> float:
    return level + 3 * math.sqrt(level * (1 - level) / count)


def test_null_slices_reach_p_below_5_percent_at_most_5_percent_of_the_time(null_funnels):
    p = null_funnels[0]
    assert len(p) == CALLS * SLICES and np.isfinite(p).all()
    assert np.mean(p < 0.05) <= at_most(0.05, p.size)


@pytest.mark.parametrize("level", [1e-3, 1e-4])
def test_null_slices_reach_the_levels_where_bh_decides_at_most_twice_nominal(null_funnels, level):
    # BH at 5 % over 2,000 slices rejects first below 2.5e-5: the tail, not p < 0.05, is what matters
    p = null_funnels[0]
    assert np.mean(p < level) <= at_most(2 * level, p.size)


def test_null_funnels_flag_a_slice_in_at_most_5_percent_of_calls(null_funnels):
    assert np.mean(null_funnels[1]) <= at_most(0.05, CALLS)


def winsorized_mean_square_of_a_normal(winsor: float = 0.1) -> float:
    """E[min(Z^2, c^2)], c the (1 - winsor) quantile: what winsorized phi estimates without overdispersion."""
    c = stats.norm.isf(winsor)
    return integrate.quad(lambda z: min(z * z, c * c) * stats.norm.pdf(z), -np.inf, np.inf)[0]


def test_phi_of_null_funnels_is_the_winsorized_mean_square_of_unit_residuals():
    # large counts (rate 2 %, 20,000 + 40,000 units) so the residuals are close to normal; variance
    # of the score residual under binomial units: (1 - rate) of the Poisson one
    rng = np.random.default_rng(20261117)
    phis = []
    for _ in range(10):
        n, m = np.full(SLICES, 20_000), np.full(SLICES, 40_000)
        df = pd.DataFrame({"events": rng.binomial(n, 0.02), "units": n,
                           "baseline_events": rng.binomial(m, 0.02), "baseline_units": m})
        phis.append(standardized_funnel(df).attrs["phi"])
    expected = winsorized_mean_square_of_a_normal() * 0.98  # 0.665
    assert np.mean(phis) == pytest.approx(expected, abs=0.02)


def test_phi_is_applied_in_every_funnel_with_planted_overdispersion():
    # each slice's window rate moves by a random factor exp(N(0, 0.3)): true extra-binomial spread
    rng = np.random.default_rng(20261118)
    applied = []
    for _ in range(10):
        n, m = np.full(500, 20_000), np.full(500, 40_000)
        window_rate = 0.02 * np.exp(rng.normal(0, 0.3, 500))
        df = pd.DataFrame({"events": rng.binomial(n, window_rate), "units": n,
                           "baseline_events": rng.binomial(m, 0.02), "baseline_units": m})
        applied.append(standardized_funnel(df).attrs["phi_applied"])
    assert all(applied)
