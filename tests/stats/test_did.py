"""Difference in differences, event study and pre-trend check (playbook.stats.did)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.did import (
    _fixed_effects,
    _prepare,
    _WildClusterBootstrap,
    cohort_week_did,
    cohort_week_pre_trend,
    difference_in_differences,
    event_study,
    pre_trend_check,
)


def panel(n_slices=40, n_weeks=12, start=6, effect=0.0, rho=0.5, drift=0.0, n_treated=None,
          seed=0, weights=True) -> pd.DataFrame:
    """Slices with slice and week effects and AR(1) noise; ``drift``: treated pre-trend."""
    rng = np.random.default_rng(seed)
    n_treated = n_slices // 2 if n_treated is None else n_treated
    treated = np.arange(n_slices) < n_treated
    a = rng.normal(0, 1, n_slices)
    g = rng.normal(0, 1, n_weeks)
    e = np.zeros((n_slices, n_weeks))
    e[:, 0] = rng.normal(0, 1, n_slices)
    for t in range(1, n_weeks):
        e[:, t] = rho * e[:, t - 1] + math.sqrt(1 - rho**2) * rng.normal(0, 1, n_slices)
    weeks = np.arange(n_weeks)
    y = (a[:, None] + g[None, :] + e
         + effect * (treated[:, None] & (weeks[None, :] >= start))
         + drift * treated[:, None] * (weeks[None, :] - start))
    w = rng.integers(50, 500, n_slices) if weights else np.ones(n_slices)
    return pd.DataFrame({
        "slice": np.repeat([f"s{i:02d}" for i in range(n_slices)], n_weeks),
        "week": np.tile(weeks, n_slices),
        "treated": np.repeat(treated, n_weeks),
        "value": y.ravel(),
        "weight": np.repeat(w, n_weeks).astype(float),
    })


def group_means(df: pd.DataFrame, start) -> pd.Series:
    post = df["week"] >= start
    return df.groupby([df["treated"], post])["value"].mean()


# ----------------------------------------------------------------------------- reference


def test_balanced_2x2_estimate_is_the_difference_of_the_four_means():
    df = panel(n_slices=8, n_weeks=2, start=1, effect=0.7, weights=False)
    m = group_means(df, 1)
    expected = (m[(True, True)] - m[(True, False)]) - (m[(False, True)] - m[(False, False)])
    res = difference_in_differences(df, 1, inference="cluster")
    assert res.estimate == pytest.approx(expected, abs=1e-12)


def test_weighted_2x2_is_the_difference_of_weighted_mean_changes():
    # Two weeks, weights constant within a slice: TWFE = WLS of the slice change on treated.
    df = panel(n_slices=10, n_weeks=2, start=1, effect=0.3, seed=3)
    wide = df.pivot(index="slice", columns="week", values="value")
    change = wide[1] - wide[0]
    info = df.groupby("slice")[["treated", "weight"]].first()
    tr = info["treated"]
    expected = (np.average(change[tr], weights=info["weight"][tr])
                - np.average(change[~tr], weights=info["weight"][~tr]))
    res = difference_in_differences(df, 1, inference="cluster")
    assert res.estimate == pytest.approx(expected, abs=1e-12)


def test_cluster_robust_standard_error_is_the_crv1_sandwich_by_hand():
    df = panel(n_slices=40, seed=1)
    res = difference_in_differences(df, 6)
    assert res.method == "did-twfe-cluster"
    # full dummy design written out with pandas, sandwich with numpy
    x = pd.get_dummies(df[["slice", "week"]].astype(str), drop_first=True).astype(float)
    x.insert(0, "const", 1.0)
    x.insert(0, "d", (df["treated"] & (df["week"] >= 6)).astype(float))
    X, y, w = x.to_numpy(), df["value"].to_numpy(), df["weight"].to_numpy()
    xtwx_inv = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = xtwx_inv @ X.T @ (w * y)
    e = y - X @ beta
    n, k, g = len(y), X.shape[1], df["slice"].nunique()
    meat = np.zeros((k, k))
    for _, idx in df.groupby("slice").indices.items():
        s = X[idx].T @ (w[idx] * e[idx])
        meat += np.outer(s, s)
    cov = g / (g - 1) * (n - 1) / (n - k) * xtwx_inv @ meat @ xtwx_inv
    se = math.sqrt(cov[0, 0])
    assert res.estimate == pytest.approx(beta[0], rel=1e-10)
    assert res.details["std_error"] == pytest.approx(se, rel=1e-8)
    tq = stats.t.ppf(0.975, g - 1)
    assert res.ci_low == pytest.approx(beta[0] - tq * se, rel=1e-8)
    assert res.details["df"] == g - 1


def test_event_study_coefficient_is_the_2x2_between_that_week_and_the_reference():
    df = panel(n_slices=12, n_weeks=8, start=4, effect=0.5, weights=False, seed=2)
    es = event_study(df, 4).set_index("week")
    ref = 3
    m = df.groupby(["treated", "week"])["value"].mean()
    for t in (0, 1, 5, 7):
        expected = (m[(True, t)] - m[(True, ref)]) - (m[(False, t)] - m[(False, ref)])
        assert es.loc[t, "estimate"] == pytest.approx(expected, abs=1e-10)
    assert es.loc[ref, "period"] == "reference" and es.loc[ref, "estimate"] == 0.0
    assert es.loc[ref, "relative_week"] == -1 and es.loc[4, "relative_week"] == 0
    assert "reference" in es.loc[ref, "note"]
    assert list(es.columns) == ["relative_week", "period", "estimate", "std_error", "ci_low",
                                "ci_high", "p_value", "note"]


def test_weeks_can_be_dates():
    df = panel(n_slices=40, n_weeks=10, start=5)
    df["week"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(df["week"] * 7, unit="D")
    by_date = difference_in_differences(df, "2024-02-05")  # week 5
    by_int = difference_in_differences(panel(n_slices=40, n_weeks=10, start=5), 5)
    assert by_date.estimate == pytest.approx(by_int.estimate)


# ----------------------------------------------------------------------------- wild bootstrap


def test_bootstrap_fwl_algebra_reproduces_the_statsmodels_fit():
    df = panel(n_slices=40, seed=4)
    res = difference_in_differences(df, 6, inference="cluster")
    p = _prepare(df, 6, "slice", "week", "treated", "value", "weight")
    d = (p.treated & p.post).astype(float)
    fe = _fixed_effects(p)
    wb = _WildClusterBootstrap(p.y, d, fe, p.w, p.slice_code, p.n_slices, fe.shape[1] + 1,
                               "rademacher", 99, 0)
    assert wb.beta == pytest.approx(res.estimate, rel=1e-10)
    assert wb.se == pytest.approx(res.details["std_error"], rel=1e-8)
    assert wb.p_value(wb.beta) == 1.0  # at the estimate the test cannot reject


def test_wild_bootstrap_interval_is_close_to_crv1_with_many_clusters():
    df = panel(n_slices=40, effect=0.8, seed=5)
    cl = difference_in_differences(df, 6, inference="cluster")
    wild = difference_in_differences(df, 6, inference="wild", n_boot=1999)
    assert wild.method == "did-twfe-wild-bootstrap"
    assert wild.estimate == cl.estimate
    width_ratio = (wild.ci_high - wild.ci_low) / (cl.ci_high - cl.ci_low)
    assert 0.85 < width_ratio < 1.15
    assert wild.ci_low < wild.estimate < wild.ci_high


def test_wild_bootstrap_is_reproducible_with_its_seed():
    df = panel(n_slices=10, seed=6)
    a = difference_in_differences(df, 6, seed=42)
    b = difference_in_differences(df, 6, seed=42)
    assert (a.p_value, a.ci_low, a.ci_high) == (b.p_value, b.ci_low, b.ci_high)


def test_auto_uses_the_wild_bootstrap_with_few_clusters_and_says_so():
    res = difference_in_differences(panel(n_slices=10, seed=7), 6)
    assert res.method == "did-twfe-wild-bootstrap"
    assert res.details["inference"] == "wild"
    assert res.details["bootstrap_weights"] == "webb"
    assert "only 10 slices" in res.details["warning"]
    assert res.ok


def test_auto_uses_crv1_with_enough_clusters_and_no_warning():
    res = difference_in_differences(panel(n_slices=40, seed=8), 6)
    assert res.method == "did-twfe-cluster" and res.details["inference"] == "cluster"
    assert "warning" not in res.details


def test_few_treated_slices_warn_even_with_many_clusters():
    res = difference_in_differences(panel(n_slices=40, n_treated=3, seed=9), 6)
    assert res.details["inference"] == "wild"
    assert "even the wild cluster bootstrap is unreliable" in res.details["warning"]


# ----------------------------------------------------------------------------- pre-trends


def test_pre_trend_check_warns_when_treated_slices_drift_before_the_start():
    chk = pre_trend_check(panel(n_slices=40, drift=0.4, seed=10), 6)
    assert chk.warning is not None and chk.p_value < 0.05


def test_pre_trend_check_is_quiet_under_parallel_trends():
    chk = pre_trend_check(panel(n_slices=40, seed=11), 6)
    assert chk.warning is None and chk.p_value > 0.05
    assert chk.method == "wald-cluster-wild-bootstrap"


def test_bootstrap_wald_statistic_equals_statsmodels_wald_times_q():
    chk = pre_trend_check(panel(n_slices=40, seed=12), 6)
    assert chk.n_pre_coefficients == 5
    assert chk.statistic == pytest.approx(chk.details["cluster_F"] * 5, rel=1e-8)
    f = pre_trend_check(panel(n_slices=40, seed=12), 6, inference="F")
    assert f.method == "wald-cluster-F" and f.df_denom == 39
    assert f.p_value == pytest.approx(stats.f.sf(f.statistic, 5, 39))


def test_pre_trend_check_with_a_single_pre_week_has_nothing_to_test():
    chk = pre_trend_check(panel(n_slices=40, n_weeks=6, start=1), 1)
    assert chk.statistic is None and "only one pre-period week" in chk.error


def test_pre_trend_check_with_more_coefficients_than_clusters_refuses():
    chk = pre_trend_check(panel(n_slices=4, n_weeks=12, start=8), 8)
    assert chk.statistic is None and "singular" in chk.error


# ----------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d[d["slice"] == "s00"], "1 slice"),
    (lambda d: d.assign(treated=False), "no treated slice"),
    (lambda d: d.assign(treated=True), "every slice is treated"),
    (lambda d: d[d["week"] >= 6], "no pre-period"),
    (lambda d: d[d["week"] < 6], "no post-period"),
    (lambda d: d.assign(value=np.nan), "no usable row"),
])
def test_degenerate_designs_return_an_error_not_an_exception(mutate, message):
    res = difference_in_differences(mutate(panel(n_slices=10)), 6)
    assert res.estimate is None and message in res.error
    es = event_study(mutate(panel(n_slices=10)), 6)
    assert es.empty and message in es.attrs["error"]


def test_treated_changing_within_a_slice_is_refused():
    df = panel(n_slices=10)
    df.loc[0, "treated"] = not df.loc[0, "treated"]
    res = difference_in_differences(df, 6)
    assert "constant within a slice" in res.error


def test_zero_residual_variance_gives_the_estimate_without_interval():
    df = panel(n_slices=40)
    codes = df["slice"].str[1:].astype(int)
    df["value"] = codes * 0.1 + df["week"] * 0.05 + 0.2 * (df["treated"] & (df["week"] >= 6))
    res = difference_in_differences(df, 6)
    assert res.estimate == pytest.approx(0.2)
    assert res.ci_low is None and "zero residual variance" in res.error
    es = event_study(df, 6)
    assert es.loc[es["period"] == "post", "note"].str.contains("zero residual").all()
    assert "zero residual variance" in pre_trend_check(df, 6).error


def test_missing_values_are_dropped_and_counted():
    df = panel(n_slices=40)
    df.loc[[3, 50], "value"] = np.nan
    df.loc[7, "weight"] = 0.0
    res = difference_in_differences(df, 6)
    assert res.details["rows_dropped"] == 3 and res.ok


# ----------------------------------------------------------------------------- cohort x week


def weekly_gaps(df: pd.DataFrame) -> pd.Series:
    """Treated minus control weighted mean of each week, written independently of did.py."""
    num = (df["value"] * df["weight"]).groupby([df["week"], df["treated"]]).sum()
    den = df["weight"].groupby([df["week"], df["treated"]]).sum()
    m = (num / den).unstack()
    return m[True] - m[False]


def test_cohort_week_did_is_the_pooled_two_sample_t_test_of_the_weekly_gaps():
    df = panel(n_slices=10, n_weeks=12, start=9, effect=0.4, seed=3)
    gap = weekly_gaps(df)
    post, pre = gap[gap.index >= 9].to_numpy(), gap[gap.index < 9].to_numpy()
    ref = stats.ttest_ind(post, pre, equal_var=True)
    ci = ref.confidence_interval(0.95)
    res = cohort_week_did(df, 9)
    assert res.method == "did-cohort-week-t" and res.n == 12
    assert res.estimate == pytest.approx(post.mean() - pre.mean(), rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert res.details["df"] == 10


def test_a_shock_shared_by_every_treated_slice_widens_the_cohort_week_interval_not_the_slice_clustered_one():
    calm = panel(n_slices=40, n_weeks=12, start=10, seed=4, rho=0.0)
    shaken = calm.copy()
    rng = np.random.default_rng(5)
    shock = dict(zip(range(12), rng.normal(0, 1.5, 12)))
    shaken.loc[shaken.treated, "value"] += shaken.loc[shaken.treated, "week"].map(shock)
    width = lambda e: e.ci_high - e.ci_low
    assert width(cohort_week_did(shaken, 10)) > 3 * width(cohort_week_did(calm, 10))
    slice_ratio = width(difference_in_differences(shaken, 10, inference="cluster")) / \
        width(difference_in_differences(calm, 10, inference="cluster"))
    assert slice_ratio < 1.5


def test_cohort_week_did_needs_two_pre_weeks_with_both_cohorts():
    df = panel(n_slices=6, n_weeks=4, start=2, seed=6)
    df = df[~((df.week == 0) & df.treated)]  # week 0 has no treated slice: it tells nothing about the gap
    res = cohort_week_did(df, 2)
    assert not res.ok and "1 pre-period week(s)" in res.error


def test_the_gap_trend_check_is_the_ols_slope_test_of_the_pre_period_gaps():
    import statsmodels.api as sm

    df = panel(n_slices=10, n_weeks=12, start=9, drift=0.05, seed=7)
    gap = weekly_gaps(df)
    pre = gap[gap.index < 9]
    fit = sm.OLS(pre.to_numpy(), sm.add_constant(pre.index.to_numpy(dtype=float))).fit()
    check = cohort_week_pre_trend(df, 9)
    assert check.method == "gap-linear-trend-F" and check.df_denom == 7 and check.n_pre_coefficients == 9
    assert check.p_value == pytest.approx(fit.pvalues[1], rel=1e-9)
    assert check.statistic == pytest.approx(fit.tvalues[1] ** 2, rel=1e-9)


def test_a_steady_drift_of_the_treated_cohort_sets_the_trend_warning():
    df = panel(n_slices=10, n_weeks=12, start=9, drift=0.5, seed=8)
    assert cohort_week_pre_trend(df, 9).warning is not None


def test_the_gap_trend_check_needs_three_pre_weeks():
    check = cohort_week_pre_trend(panel(n_slices=6, n_weeks=4, start=2, seed=9), 2)
    assert check.p_value is None and "at least 3" in check.error
