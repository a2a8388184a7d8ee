"""Funnel limits, overdispersion and the weak-cohort table (playbook.stats.funnel).

Expected values are computed independently in each test: binomial probabilities from
``math.comb``, quantiles with the R type-7 formula written out, Benjamini-Hochberg by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.funnel import NO_UNITS_NOTE, funnel_limits, funnel_table, level_tag, overdispersion


def binom_cdf(r: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(0, r + 1))


def spiegelhalter_limit(q: float, n: int, p: float) -> float:
    """Appendix A.1.1 of Spiegelhalter (2005), written from the paper with math.comb."""
    r = next(r for r in range(n + 1) if binom_cdf(r, n, p) >= q)
    f_r = binom_cdf(r, n, p)
    f_prev = binom_cdf(r - 1, n, p) if r > 0 else 0.0
    alpha = (f_r - q) / (f_r - f_prev)
    return max(0.0, (r - alpha) / n)


def type7_quantile(x: np.ndarray, prob: float) -> float:
    """R's default quantile (Hyndman & Fan type 7), written out."""
    xs = np.sort(x)
    h = (len(xs) - 1) * prob
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (h - lo) * (xs[hi] - xs[lo]))


# ----------------------------------------------------------------------------- limits


@pytest.mark.parametrize("n,p", [(8, 0.10), (50, 0.12), (400, 0.03)])
def test_exact_limits_follow_spiegelhalter_interpolation_computed_by_hand(n, p):
    lim = funnel_limits(p, [n], levels=(0.95, 0.998), method="exact")
    for level in (0.95, 0.998):
        row = lim[lim["level"] == level].iloc[0]
        assert row["upper"] == pytest.approx(spiegelhalter_limit((1 + level) / 2, n, p), abs=1e-9)
        assert row["lower"] == pytest.approx(spiegelhalter_limit((1 - level) / 2, n, p), abs=1e-9)


def test_exact_upper_limit_for_8_units_at_10_percent_is_about_30_and_48_percent():
    # By hand: Bin(8, 0.1): F(2)=0.9619, F(3)=0.9950, P(3)=0.0331 -> r=3,
    # alpha=(0.9950-0.975)/0.0331=0.605, limit=(3-0.605)/8=0.2995; 99.8%: r=4 -> 0.4845.
    lim = funnel_limits(0.10, 8).set_index("level")
    assert lim.loc[0.95, "upper"] == pytest.approx(0.2995, abs=5e-4)
    assert lim.loc[0.998, "upper"] == pytest.approx(0.4845, abs=5e-4)


def test_normal_limits_are_p0_plus_minus_z_sqrt_binomial_variance_plus_tau2():
    p0, n, tau2 = 0.2, np.array([25.0, 400.0]), 0.0004
    lim = funnel_limits(p0, n, levels=(0.95,), method="normal", tau2=tau2)
    half = 1.959963984540054 * np.sqrt(p0 * (1 - p0) / n + tau2)
    np.testing.assert_allclose(lim["upper"], p0 + half)
    np.testing.assert_allclose(lim["lower"], p0 - half)


def test_multiplicative_phi_widens_normal_limits_by_sqrt_phi():
    base = funnel_limits(0.1, [1000], levels=(0.95,), method="normal")
    wide = funnel_limits(0.1, [1000], levels=(0.95,), method="normal", phi=4.0)
    assert (wide["upper"] - 0.1).iloc[0] == pytest.approx(2 * (base["upper"] - 0.1).iloc[0])


def test_exact_limits_approach_normal_limits_for_large_units():
    exact = funnel_limits(0.05, [1e6], method="exact")
    normal = funnel_limits(0.05, [1e6], method="normal")
    np.testing.assert_allclose(exact["upper"], normal["upper"], atol=2e-5)
    np.testing.assert_allclose(exact["lower"], normal["lower"], atol=2e-5)


def test_limits_are_vectorised_and_narrow_as_units_grow():
    units = np.geomspace(10, 1e5, 50)
    lim = funnel_limits(0.1, units)
    up = lim[lim["level"] == 0.998]["upper"].to_numpy()
    assert len(lim) == 100
    assert np.all(np.diff(up) <= 1e-12)


def test_exact_overdispersed_limits_use_beta_binomial_with_variance_tau2():
    # Beta(p0 c, (1-p0) c) with c = p0(1-p0)/tau2 - 1 has variance tau2; for huge n the
    # rate is the beta variable itself, so the limits tend to its quantiles.
    p0, tau2 = 0.1, 0.0009
    c = p0 * (1 - p0) / tau2 - 1
    lim = funnel_limits(p0, [1_000_000], levels=(0.95,), tau2=tau2).iloc[0]
    assert lim["upper"] == pytest.approx(stats.beta.ppf(0.975, p0 * c, (1 - p0) * c), abs=2e-4)
    assert lim["method"] == "exact-overdispersed"


def test_funnel_limits_rejects_invalid_parameters():
    with pytest.raises(ValueError):
        funnel_limits(1.5, [10])
    with pytest.raises(ValueError):
        funnel_limits(0.1, [0])
    with pytest.raises(ValueError):
        funnel_limits(0.1, [10], method="exact", phi=2.0)


def test_level_tag_names_columns():
    assert level_tag(0.95) == "95"
    assert level_tag(0.998) == "99_8"


# ----------------------------------------------------------------------------- overdispersion


def _od_frame() -> pd.DataFrame:
    units = np.array([120, 340, 560, 800, 1000, 1500, 2100, 2600, 3300, 5000], dtype=float)
    events = np.array([10, 45, 50, 70, 140, 150, 260, 240, 330, 640], dtype=float)
    return pd.DataFrame({"units": units, "events": events})


def test_phi_is_mean_squared_z_winsorised_at_10_and_90_percent_by_hand():
    df = _od_frame()
    y, n = df["events"].to_numpy(), df["units"].to_numpy()
    p0 = y.sum() / n.sum()
    z = (y / n - p0) / np.sqrt(p0 * (1 - p0) / n)
    lo, hi = type7_quantile(z, 0.1), type7_quantile(z, 0.9)
    z_w = [min(max(v, lo), hi) for v in z]
    phi = sum(v * v for v in z_w) / len(z_w)
    od = overdispersion(df)
    assert od.phi == pytest.approx(phi, rel=1e-12)
    assert od.overall_rate == pytest.approx(p0)
    assert od.df == 9
    assert od.threshold == pytest.approx(stats.chi2.ppf(0.95, 9))


def test_tau2_is_the_dersimonian_laird_form_of_phi_by_hand():
    df = _od_frame()
    od = overdispersion(df)
    p0 = od.overall_rate
    w = df["units"].to_numpy() / (p0 * (1 - p0))
    k = len(df)
    tau2 = (k * od.phi - (k - 1)) / (w.sum() - (w**2).sum() / w.sum())
    assert od.applied  # this data is clearly overdispersed
    assert od.tau2 == pytest.approx(max(tau2, 0.0), rel=1e-12)


def test_binomial_slices_show_no_overdispersion_and_nothing_is_applied():
    rng = np.random.default_rng(7)
    units = rng.integers(200, 3000, 40)
    df = pd.DataFrame({"units": units, "events": rng.binomial(units, 0.1)})
    od = overdispersion(df)
    assert not od.applied
    assert od.tau2 == 0.0
    assert 0.5 < od.phi < 1.5


def test_overdispersion_with_one_slice_returns_error_not_exception():
    od = overdispersion(pd.DataFrame({"units": [100], "events": [5]}))
    assert od.error is not None and not od.applied and od.phi is None


# ----------------------------------------------------------------------------- table


def _shop_slices(seed: int = 3) -> pd.DataFrame:
    """30 ordinary slices around 12 %, a tiny 3/8 slice and a big slice 5 points above."""
    rng = np.random.default_rng(seed)
    units = rng.integers(300, 4000, 30)
    events = rng.binomial(units, 0.12 + rng.normal(0, 0.005, 30))
    df = pd.DataFrame({
        "category": [f"cat{i:02d}" for i in range(30)],
        "reason": "size",
        "units": units,
        "events": events,
        "cost_per_event": 12.0,
    })
    extra = pd.DataFrame({
        "category": ["tiny", "big"], "reason": "size", "units": [8, 12000],
        "events": [3, int(0.17 * 12000)], "cost_per_event": [12.0, 12.0],
    })
    return pd.concat([df, extra], ignore_index=True)


def test_tiny_slice_3_of_8_is_not_flagged_but_large_slice_5_points_above_is():
    t = funnel_table(_shop_slices()).set_index("category")
    assert not t.loc["tiny", "flagged"]
    assert t.loc["big", "flagged"]
    assert t.loc["big", "rank"] == 1
    # the tiny slice has the higher raw rate but shrinks towards the norm
    assert t.loc["tiny", "rate"] > t.loc["big", "rate"]
    assert t.loc["tiny", "shrunk_rate"] < t.loc["big", "shrunk_rate"]


def test_z_scores_and_expected_events_follow_the_formulas():
    t = funnel_table(_shop_slices())
    p0 = t.attrs["overall_rate"]
    tau2 = t.attrs["tau2_used"]
    ok = t["units"] > 0
    n, y = t.loc[ok, "units"], t.loc[ok, "events"]
    np.testing.assert_allclose(t.loc[ok, "expected_events"], p0 * n)
    np.testing.assert_allclose(t.loc[ok, "excess_events"], y - p0 * n)
    np.testing.assert_allclose(t.loc[ok, "z"], (y / n - p0) / np.sqrt(p0 * (1 - p0) / n))
    np.testing.assert_allclose(t.loc[ok, "z_adjusted"],
                               (y / n - p0) / np.sqrt(p0 * (1 - p0) / n + tau2))
    assert p0 == pytest.approx(t["events"].sum() / t["units"].sum())


def test_exact_p_value_is_the_doubled_binomial_tail_by_hand():
    df = pd.DataFrame({"s": ["a", "b", "c", "d"], "units": [20, 30, 25, 40],
                       "events": [6, 2, 3, 4]})
    t = funnel_table(df, adjust="never").set_index("s")
    p0 = 15 / 115
    upper = 1 - binom_cdf(5, 20, p0)          # P(X >= 6)
    lower = binom_cdf(6, 20, p0)
    assert t.loc["a", "p_value"] == pytest.approx(min(1.0, 2 * min(upper, lower)), rel=1e-9)
    assert t.attrs["p_value_method"] == "exact-binomial"


def test_q_values_are_benjamini_hochberg_across_all_slices_by_hand():
    t = funnel_table(_shop_slices(), method="normal")
    p = t["p_value"].to_numpy()
    m = len(p)
    order = np.argsort(p)
    q_sorted = np.minimum(1, p[order] * m / np.arange(1, m + 1))
    q_sorted = np.minimum.accumulate(q_sorted[::-1])[::-1]
    q = np.empty(m)
    q[order] = q_sorted
    np.testing.assert_allclose(t["q_value"], q, rtol=1e-12)
    np.testing.assert_allclose(t["p_value"], 2 * stats.norm.sf(np.abs(t["z_adjusted"])))


def test_flagged_slices_are_ranked_by_excess_cost_not_by_z():
    # "dear": fewer excess events but each return costs 10x more.
    rng = np.random.default_rng(5)
    df = pd.DataFrame({
        "slice": ["cheap", "dear"] + [f"s{i}" for i in range(40)],
        "units": [20000, 2000] + [3000] * 40,
        "events": [3000, 340] + list(rng.binomial(3000, 0.12, 40)),
        "cost_per_event": [5.0, 50.0] + [10.0] * 40,
    })
    t = funnel_table(df).set_index("slice")
    assert t.loc["cheap", "flagged"] and t.loc["dear", "flagged"]
    assert t.loc["cheap", "z"] > t.loc["dear", "z"]
    assert t.loc["cheap", "excess_events"] > t.loc["dear", "excess_events"]
    p0 = t.attrs["overall_rate"]
    assert t.loc["dear", "excess_cost"] == pytest.approx((340 - p0 * 2000) * 50.0)
    assert t.loc["dear", "rank"] == 1 and t.loc["cheap", "rank"] == 2
    assert pd.isna(t.loc["s0", "rank"])


def test_negative_excess_costs_nothing():
    t = funnel_table(_shop_slices())
    below = t["excess_events"] < 0
    assert below.any()
    assert (t.loc[below, "excess_cost"] == 0).all()


def test_unadjusted_limits_flag_more_slices_than_overdispersion_adjusted_ones():
    rng = np.random.default_rng(11)
    units = rng.integers(2000, 20000, 40)
    true = np.clip(rng.normal(0.1, 0.02, 40), 0.01, None)
    t = funnel_table(pd.DataFrame({"units": units, "events": rng.binomial(units, true),
                                   "g": range(40)}))
    assert t.attrs["overdispersion"]["applied"]
    assert t["above_99_8_unadjusted"].sum() > t["above_99_8"].sum()


def test_slice_with_zero_units_gets_a_row_with_an_explanation():
    df = _shop_slices()
    df.loc[len(df)] = ["ghost", "size", 0, 0, 12.0]
    t = funnel_table(df)
    row = t[t["category"] == "ghost"].iloc[0]
    assert row["note"] == NO_UNITS_NOTE
    assert row["band"] == "no units"
    assert not row["flagged"] and pd.isna(row["rank"])
    assert pd.isna(row["z"])
    # and the other rows are unaffected
    assert t.attrs["overall_rate"] == pytest.approx(df["events"].sum() / df["units"].sum())


def test_events_above_units_get_a_row_with_an_explanation():
    df = pd.DataFrame({"s": ["ok1", "ok2", "bad"], "units": [100, 200, 10],
                       "events": [10, 25, 12]})
    t = funnel_table(df).set_index("s")
    assert "outside [0, units]" in t.loc["bad", "note"]
    assert t.loc["bad", "band"] == "invalid"


def test_overall_rate_of_zero_explains_that_nothing_can_differ():
    t = funnel_table(pd.DataFrame({"s": ["a", "b"], "units": [10, 20], "events": [0, 0]}))
    assert (t["band"] == "not comparable").all()
    assert t["note"].str.contains("overall rate is 0").all()
    assert not t["flagged"].any()


def test_table_without_cost_ranks_by_excess_events():
    df = _shop_slices().drop(columns="cost_per_event")
    t = funnel_table(df)
    assert "excess_cost" not in t.columns
    assert t.attrs["ranked_by"].startswith("excess_events")
    assert t.loc[0, "category"] == "big"


def test_table_columns_are_documented():
    t = funnel_table(_shop_slices())
    expected = ["category", "reason", "units", "events", "rate", "expected_events",
                "excess_events", "z", "z_adjusted", "p_value", "q_value", "lower_95",
                "upper_95", "lower_99_8", "upper_99_8", "above_95", "above_95_unadjusted",
                "above_99_8", "above_99_8_unadjusted", "band", "shrunk_rate", "shrunk_ci_low",
                "shrunk_ci_high", "excess_events_shrunk", "cost_per_event", "excess_cost",
                "flagged", "rank", "note"]
    assert list(t.columns) == expected


def test_overdispersed_exact_p_value_is_the_doubled_beta_binomial_tail_from_scipy():
    df = pd.DataFrame({"s": list("abcdefgh"), "units": [40, 90, 150, 300, 500, 800, 1200, 60],
                       "events": [9, 8, 30, 20, 70, 60, 150, 2]})
    t = funnel_table(df, adjust="always").set_index("s")
    p0, tau2 = t.attrs["overall_rate"], t.attrs["tau2_used"]
    assert tau2 > 0 and t.attrs["p_value_method"] == "exact-beta-binomial"
    c = p0 * (1 - p0) / tau2 - 1
    for s_, n, y in zip(df["s"], df["units"], df["events"]):
        dist = stats.betabinom(n, p0 * c, (1 - p0) * c)
        expected = min(1.0, 2 * min(dist.cdf(y), dist.sf(y - 1)))
        assert t.loc[s_, "p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-14)
    lim = funnel_limits(p0, [300], levels=(0.95,), tau2=tau2).iloc[0]
    dist = stats.betabinom(300, p0 * c, (1 - p0) * c)
    r = dist.ppf(0.975)
    expected_upper = (r - (dist.cdf(r) - 0.975) / dist.pmf(r)) / 300
    assert lim["upper"] == pytest.approx(expected_upper, rel=1e-9)
