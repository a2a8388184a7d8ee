"""Return-lag comparisons (playbook.stats.lag).

Reference data: the Gehan (1965) leukaemia remission times (6-MP vs placebo), the
textbook example of Kaplan-Meier, log-rank and Cox (Kleinbaum & Klein, *Survival
Analysis*, 3rd ed., ch. 2-3; Collett, *Modelling Survival Data*, 3rd ed., §2.1).
Published values used below: 6-MP Kaplan-Meier S(t) = 0.857, 0.807, 0.753, 0.690, 0.627,
0.538, 0.448 at t = 6, 7, 10, 13, 16, 22, 23 with Greenwood standard errors 0.0764,
0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346; log-rank chi-square 16.79 with
observed/expected 9/19.25 for 6-MP; Cox (Breslow ties) coefficient of 6-MP -1.509.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg

from playbook.stats.lag import (
    _breslow_score_residuals,
    _prepare,
    choose_follow_up_days,
    cox_hazard_ratio,
    kaplan_meier_by_arm,
    log_rank_test,
    return_within_k_difference,
)

AS_OF = pd.Timestamp("2024-06-01")
DAY = pd.Timedelta(days=1)

# (time, returned?) for each unit
SIX_MP = [(6, 1), (6, 1), (6, 1), (6, 0), (7, 1), (9, 0), (10, 1), (10, 0), (11, 0), (13, 1),
          (16, 1), (17, 0), (19, 0), (20, 0), (22, 1), (23, 1), (25, 0), (32, 0), (32, 0),
          (34, 0), (35, 0)]
PLACEBO = [(t, 1) for t in (1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22,
                            23)]


def units_frame(rows: list[tuple[str, str, float, float | None]]) -> pd.DataFrame:
    """rows: (arm, customer, days delivered before AS_OF, return lag in days or None)."""
    out = []
    for arm, cust, ago, lag in rows:
        delivered = AS_OF - ago * DAY
        returned = delivered + lag * DAY if lag is not None else pd.NaT
        out.append((arm, cust, delivered, returned))
    return pd.DataFrame(out, columns=["arm", "customer_id", "delivered_ts", "returned_ts"])


def gehan() -> pd.DataFrame:
    rows = []
    for arm, data in (("treatment", SIX_MP), ("control", PLACEBO)):
        for i, (t, status) in enumerate(data):
            # an event at t: delivered 40 days ago, returned t days later;
            # censored at t: delivered t days before AS_OF, not returned.
            rows.append((arm, f"{arm}{i}", 40 if status else t, t if status else None))
    return units_frame(rows)


# ----------------------------------------------------------------------------- Kaplan-Meier


def test_kaplan_meier_matches_the_published_gehan_6mp_curve():
    curves = kaplan_meier_by_arm(gehan(), AS_OF, k=10).curves
    six = curves[curves["arm"] == "treatment"].set_index("days")
    published = {6: (0.857, 0.0764), 7: (0.807, 0.0869), 10: (0.753, 0.0963),
                 13: (0.690, 0.1068), 16: (0.627, 0.1141), 22: (0.538, 0.1282),
                 23: (0.448, 0.1346)}
    for t, (s, se) in published.items():
        assert six.loc[t, "not_returned_share"] == pytest.approx(s, abs=5e-4)
        assert six.loc[t, "return_share"] == pytest.approx(1 - s, abs=5e-4)
        assert six.loc[t, "std_error"] == pytest.approx(se, abs=5e-4)


def test_kaplan_meier_product_limit_by_hand():
    curves = kaplan_meier_by_arm(gehan(), AS_OF, k=10).curves
    six = curves[curves["arm"] == "treatment"].set_index("days")
    # S(13) = (18/21)(16/17)(14/15)(11/12), risk sets counted by hand from SIX_MP
    assert six.loc[13, "not_returned_share"] == pytest.approx(
        (18 / 21) * (16 / 17) * (14 / 15) * (11 / 12), rel=1e-12)
    assert six.loc[13, "at_risk"] == 12


def test_km_difference_at_k_is_the_difference_of_the_curves():
    res = kaplan_meier_by_arm(gehan(), AS_OF, k=10)
    s_6mp = (18 / 21) * (16 / 17) * (14 / 15)
    # placebo at 10: no censoring before 10, 13 of 21 returned by day 8 (counted by hand)
    s_placebo = 8 / 21
    assert res.difference.method == "km"
    assert res.difference.estimate == pytest.approx((1 - s_6mp) - (1 - s_placebo), rel=1e-12)
    assert res.difference.ci_low < res.difference.estimate < res.difference.ci_high


def test_km_clustered_variance_equals_greenwood_when_each_customer_has_one_unit():
    rng = np.random.default_rng(4)
    n = 4000
    ago = rng.uniform(0, 40, n)
    lag = np.where(rng.random(n) < 0.2, rng.gamma(2, 4, n), None)
    rows = [("treatment" if i % 2 else "control", f"c{i}", ago[i], lag[i]) for i in range(n)]
    res = kaplan_meier_by_arm(units_frame(rows), AS_OF, k=14).difference
    assert res.details["std_error"] == pytest.approx(res.details["greenwood_std_error"],
                                                     rel=0.03)


def test_km_clustered_interval_is_wider_than_greenwood_when_customers_cluster():
    rng = np.random.default_rng(5)
    rows = []
    for c in range(1500):
        arm = "treatment" if c % 2 else "control"
        p = 0.6 if rng.random() < 0.25 else 0.02  # a few serial returners
        for _ in range(5):
            lag = rng.gamma(2, 4) if rng.random() < p else None
            rows.append((arm, f"c{c}", rng.uniform(0, 40), lag))
    res = kaplan_meier_by_arm(units_frame(rows), AS_OF, k=14).difference
    assert res.details["std_error"] > 1.5 * res.details["greenwood_std_error"]


def test_return_after_as_of_is_censored_not_counted():
    df = units_frame([("control", "a", 3, 5), ("control", "b", 30, 2),
                      ("treatment", "c", 30, None), ("treatment", "d", 30, 1)])
    curves = kaplan_meier_by_arm(df, AS_OF, k=2).curves
    control = curves[curves["arm"] == "control"]
    assert control["returned"].sum() == 1  # only b's return is seen by AS_OF
    u = _prepare(df, AS_OF, "arm", "customer_id", "delivered_ts", "returned_ts", None,
                 "control", "treatment")
    assert u.counts["returns_after_as_of_censored"] == 1
    assert u.time[0] == pytest.approx(3.0) and not u.event[0]


# ----------------------------------------------------------------------------- log-rank, Cox


def test_log_rank_matches_the_published_gehan_statistic():
    res = log_rank_test(gehan(), AS_OF)
    assert res.method == "logrank"
    assert res.details["chisq"] == pytest.approx(16.79, abs=0.01)
    assert res.details["returns_treatment"] == 9
    # O - E = 9 - 19.25 for 6-MP (published expected count 19.25)
    assert res.details["observed_minus_expected_treatment"] == pytest.approx(9 - 19.25, abs=0.01)
    assert res.p_value == pytest.approx(4.17e-5, rel=0.02)
    # Peto's hazard ratio exp((O - E) / V)
    assert res.estimate == pytest.approx(
        math.exp(res.details["observed_minus_expected_treatment"] / res.details["variance"]))


def hand_log_rank(time, event, group):
    """Mantel's statistic written out time by time (no vectorisation)."""
    o_e, v = 0.0, 0.0
    for t in sorted(set(time[event == 1])):
        at_risk = time >= t
        n, n1 = at_risk.sum(), (at_risk & (group == 1)).sum()
        d = ((time == t) & (event == 1)).sum()
        d1 = ((time == t) & (event == 1) & (group == 1)).sum()
        if n < 2:
            continue
        o_e += d1 - d * n1 / n
        v += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return o_e**2 / v


def test_log_rank_with_quantity_weights_equals_survdiff_on_expanded_units():
    rng = np.random.default_rng(6)
    n = 60
    rows = [("treatment" if i % 2 else "control", f"c{i}", float(rng.integers(1, 30)),
             float(rng.integers(0, 20)) if rng.random() < 0.5 else None) for i in range(n)]
    df = units_frame(rows)
    df["quantity"] = rng.integers(1, 4, n)
    weighted = log_rank_test(df, AS_OF, quantity="quantity")
    expanded = df.loc[df.index.repeat(df["quantity"])].drop(columns="quantity")
    plain = log_rank_test(expanded, AS_OF)
    assert plain.details["computed_by"] == "statsmodels survdiff"
    assert weighted.details["chisq"] == pytest.approx(plain.details["chisq"], rel=1e-10)
    u = _prepare(expanded, AS_OF, "arm", "customer_id", "delivered_ts", "returned_ts", None,
                 "control", "treatment")
    assert plain.details["chisq"] == pytest.approx(
        hand_log_rank(u.time, u.event.astype(int), u.arm), rel=1e-10)


def test_log_rank_warns_that_it_ignores_customer_clustering():
    df = units_frame([("control", "a", 30, 2), ("control", "a", 30, None),
                      ("treatment", "b", 30, 5), ("treatment", "b", 30, None)])
    assert "warning" in log_rank_test(df, AS_OF).details


def test_cox_breslow_coefficient_matches_the_published_gehan_value():
    res = cox_hazard_ratio(gehan(), AS_OF)
    assert res.method == "cox-clustered"
    assert res.details["log_hazard_ratio"] == pytest.approx(-1.509, abs=0.002)
    assert res.estimate == pytest.approx(math.exp(-1.509), abs=0.001)
    assert res.null_value == 1.0 and res.p_value < 0.001


def test_cox_clustered_se_equals_statsmodels_phreg_groups():
    # Gehan: every unit is at risk at the first return, so statsmodels' own robust
    # covariance has no NaN; customers with 2 units each make the clustering matter.
    df = gehan()
    df["customer_id"] = [f"k{i // 2}" for i in range(len(df))]
    res = cox_hazard_ratio(df, AS_OF)
    u = _prepare(df, AS_OF, "arm", "customer_id", "delivered_ts", "returned_ts", None,
                 "control", "treatment")
    model = PHReg(u.time, u.arm.astype(float)[:, None], status=u.event.astype(float),
                  ties="breslow")
    ref = model.fit(groups=u.cust)
    assert res.details["std_error"] == pytest.approx(float(ref.bse[0]), rel=1e-8)


def test_vectorised_score_residuals_equal_statsmodels_loop():
    rng = np.random.default_rng(8)
    n = 200
    time = rng.exponential(5, n).round(1)  # ties on purpose
    event = (rng.random(n) < 0.7).astype(float)
    x = rng.normal(size=(n, 2))
    model = PHReg(time, x, status=event, ties="breslow")
    params = model.fit().params
    ref = model.score_residuals(params)
    mine = _breslow_score_residuals(time, event, x, np.asarray(params))
    ok = np.isfinite(ref[:, 0])
    np.testing.assert_allclose(mine[ok], ref[ok], atol=1e-10)
    assert np.allclose(mine[~ok], 0.0)  # statsmodels leaves these NaN; their score is 0


def test_cox_with_all_returns_in_one_arm_explains_instead_of_failing():
    df = units_frame([("control", "a", 30, 2), ("control", "b", 30, 3),
                      ("treatment", "c", 30, None), ("treatment", "d", 30, None)])
    res = cox_hazard_ratio(df, AS_OF)
    assert res.estimate is None and "one arm" in res.error


# ----------------------------------------------------------------------------- within k


def small_experiment() -> pd.DataFrame:
    return units_frame([
        ("control", "A", 20, 3), ("control", "A", 20, None), ("control", "A", 2, None),
        ("control", "B", 10, 9), ("control", "B", 8, 1),
        ("control", "F", 14, 2),
        ("treatment", "C", 30, 5), ("treatment", "C", 15, 6.5),
        ("treatment", "D", 9, None), ("treatment", "D", 3, 1),
        ("treatment", "E", 12, None),
    ])


def delta_by_hand(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Textbook delta method for a ratio of cluster means (Deng et al. 2018, eq. 3)."""
    n = len(num)
    r = num.sum() / den.sum()
    s_nn, s_dd = np.var(num, ddof=1), np.var(den, ddof=1)
    s_nd = np.cov(num, den, ddof=1)[0, 1]
    return r, (s_nn - 2 * r * s_nd + r**2 * s_dd) / (n * den.mean() ** 2)


def test_return_within_k_counts_only_mature_units_by_hand():
    res = return_within_k_difference(small_experiment(), AS_OF, k=7)
    # control mature units: A 2 (1 within 7 days), B 2 (the 1-day one), F 1 -> 3/5
    # treatment mature units: C 2 (both), D 1 (none; D's 3-day-old unit is immature), E 1
    assert res.details["rate_control"] == pytest.approx(3 / 5)
    assert res.details["rate_treatment"] == pytest.approx(2 / 4)
    assert res.estimate == pytest.approx(-0.1)
    assert res.details["immature_units_excluded_control"] == 1
    assert res.details["immature_units_excluded_treatment"] == 1


def test_return_within_k_interval_is_the_customer_delta_method_by_hand():
    res = return_within_k_difference(small_experiment(), AS_OF, k=7)
    r_c, v_c = delta_by_hand(np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 1.0]))  # A, B, F
    r_t, v_t = delta_by_hand(np.array([2.0, 0.0, 0.0]), np.array([2.0, 1.0, 1.0]))  # C, D, E
    se = math.sqrt(v_c + v_t)
    assert res.details["std_error"] == pytest.approx(se, rel=1e-12)
    assert res.ci_low == pytest.approx(-0.1 - 1.959963984540054 * se, rel=1e-9)
    assert res.method == "return-within-k-delta-cluster"
    assert res.n == 6


def test_immature_units_never_count_as_not_returned():
    rng = np.random.default_rng(9)
    rows = []
    for c in range(400):
        arm = "treatment" if c % 2 else "control"
        # treatment delivered its units later: half of them are too recent to judge
        ago = rng.uniform(0, 5) if (arm == "treatment" and rng.random() < 0.5) \
            else rng.uniform(20, 40)
        lag = rng.uniform(3, 12) if rng.random() < 0.3 else None
        rows.append((arm, f"c{c}", ago, lag))
    df = units_frame(rows)
    res = return_within_k_difference(df, AS_OF, k=14)
    mature = df[(AS_OF - df["delivered_ts"]) >= 14 * DAY]
    hit = (mature["returned_ts"] - mature["delivered_ts"]) <= 14 * DAY
    by_arm = hit.groupby(mature["arm"]).mean()
    assert res.details["rate_treatment"] == pytest.approx(by_arm["treatment"])
    assert res.details["rate_control"] == pytest.approx(by_arm["control"])
    naive = (df["returned_ts"] <= AS_OF).groupby(df["arm"]).mean()  # returns seen by AS_OF
    assert naive["treatment"] < by_arm["treatment"] - 0.05  # the bias the function avoids


def test_quantity_weights_equal_repeated_rows():
    df = small_experiment()
    df["quantity"] = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 4]
    weighted = return_within_k_difference(df, AS_OF, k=7, quantity="quantity")
    expanded = df.loc[df.index.repeat(df["quantity"])].drop(columns="quantity")
    plain = return_within_k_difference(expanded, AS_OF, k=7)
    assert weighted.estimate == pytest.approx(plain.estimate)
    assert weighted.ci_low == pytest.approx(plain.ci_low)
    km_w = kaplan_meier_by_arm(df, AS_OF, k=7, quantity="quantity").difference
    km_p = kaplan_meier_by_arm(expanded, AS_OF, k=7).difference
    assert km_w.estimate == pytest.approx(km_p.estimate)
    assert km_w.ci_high == pytest.approx(km_p.ci_high)


def test_follow_up_choice_is_the_largest_k_with_half_the_units_mature():
    # 10 units a day delivered 1..30 days before AS_OF in each arm: share with >= k days
    # of follow-up is (31 - k) / 30: 17/30 at k=14, 10/30 at k=21.
    rows = [(arm, f"{arm}{d}-{i}", float(d), None)
            for arm in ("control", "treatment") for d in range(1, 31) for i in range(10)]
    choice = choose_follow_up_days(units_frame(rows), AS_OF, min_share=0.5,
                                   candidates=(7, 14, 21, 28))
    assert choice.k == 14
    row = choice.table.set_index("k").loc[14]
    assert row["mature_share_control"] == pytest.approx(17 / 30)
    assert "k=14" in choice.reason


def test_follow_up_choice_without_enough_follow_up_returns_an_error():
    rows = [("control", "a", 1.0, None), ("treatment", "b", 2.0, None)]
    choice = choose_follow_up_days(units_frame(rows), AS_OF)
    assert choice.k is None and "wait" in choice.error


# ----------------------------------------------------------------------------- degenerate


def test_empty_arm_gives_errors_not_exceptions():
    df = units_frame([("control", "a", 30, 2), ("control", "b", 30, None)])
    for res in (return_within_k_difference(df, AS_OF, 7), log_rank_test(df, AS_OF),
                cox_hazard_ratio(df, AS_OF), kaplan_meier_by_arm(df, AS_OF, k=7).difference):
        assert res.estimate is None and "empty arm" in res.error


def test_no_mature_unit_gives_an_error():
    df = units_frame([("control", "a", 3, 1), ("treatment", "b", 2, None)])
    res = return_within_k_difference(df, AS_OF, k=7)
    assert res.estimate is None and "no mature unit" in res.error
    km = kaplan_meier_by_arm(df, AS_OF, k=7).difference
    assert km.estimate is None and "still followed" in km.error


def test_zero_variance_gives_estimate_without_interval_and_says_why():
    df = units_frame([("control", "a", 30, None), ("control", "b", 30, None),
                      ("treatment", "c", 30, None), ("treatment", "d", 30, None)])
    res = return_within_k_difference(df, AS_OF, k=7)
    assert res.estimate == 0.0 and res.ci_low is None and "zero variance" in res.error
    assert "no return" in log_rank_test(df, AS_OF).error
    assert "no return" in cox_hazard_ratio(df, AS_OF).error


def test_one_customer_per_arm_cannot_have_a_clustered_interval():
    df = units_frame([("control", "a", 30, 2), ("control", "a", 30, None),
                      ("treatment", "b", 30, None), ("treatment", "b", 30, 1)])
    res = return_within_k_difference(df, AS_OF, k=7)
    assert res.ci_low is None and "one customer" in res.error


def test_delivered_after_as_of_is_dropped_and_counted():
    df = units_frame([("control", "a", -3, None), ("control", "b", 30, 2),
                      ("control", "c", 30, None), ("treatment", "d", 30, None),
                      ("treatment", "e", 30, 1)])
    res = return_within_k_difference(df, AS_OF, k=7)
    assert res.details["rows_delivered_after_as_of"] == 1
    assert res.details["mature_units_control"] == 2


def test_units_without_customer_id_are_their_own_clusters():
    df = units_frame([("control", None, 30, 2), ("control", None, 30, None),
                      ("treatment", "b", 30, None), ("treatment", "c", 30, 1)])
    res = return_within_k_difference(df, AS_OF, k=7)
    assert res.details["units_without_customer_as_own_cluster"] == 2
    assert res.details["customers_control"] == 2 and res.ok


# --- the pre-registered window: read at K or say when ---------------------------------------------

from playbook.stats.lag import MIN_CUSTOMERS_AT_K, read_at_window  # noqa: E402


def _window_rows(n: int, ago: float, returned_every: int, lag: float = 2.0, arm_names=("control", "treatment")):
    """n customers per arm, one unit each, delivered ``ago`` days before AS_OF; every ``returned_every``-th returns."""
    return [(arm, f"{arm[0]}{i}", ago, lag if i % returned_every == 0 else None)
            for arm in arm_names for i in range(n)]


def test_read_at_window_on_fully_followed_units_is_the_plain_share_returned_within_k():
    # 40 customers per arm, all followed 20 days: control 1 in 4 returned (0.25), treatment 1 in 5 (0.20)
    rows = [r for r in _window_rows(40, 20, 4) if r[0] == "control"] + \
           [r for r in _window_rows(40, 20, 5) if r[0] == "treatment"]
    r = read_at_window(units_frame(rows), AS_OF, 14)
    assert r.readable and r.difference.estimate == pytest.approx(0.20 - 0.25)


def test_read_at_window_equals_the_kaplan_meier_difference_at_k():
    rows = _window_rows(40, 20, 4) + _window_rows(40, 5, 3)  # half the customers followed 5 days only
    rows = [(a, c + str(j), ago, lag) for j, (a, c, ago, lag) in enumerate(rows)]
    r = read_at_window(units_frame(rows), AS_OF, 14)
    km = kaplan_meier_by_arm(units_frame(rows), AS_OF, 14).difference
    assert r.difference.estimate == pytest.approx(km.estimate)
    assert (r.difference.ci_low, r.difference.ci_high) == pytest.approx((km.ci_low, km.ci_high))


def test_read_at_window_is_not_readable_below_the_minimum_customers_followed_k_days():
    rows = _window_rows(MIN_CUSTOMERS_AT_K - 1, 20, 4) + [
        (a, f"late{a}{i}", 3.0, None) for a in ("control", "treatment") for i in range(100)]
    r = read_at_window(units_frame(rows), AS_OF, 14)
    assert not r.readable and r.difference.estimate is None
    assert r.customers_at_k == {"control": MIN_CUSTOMERS_AT_K - 1, "treatment": MIN_CUSTOMERS_AT_K - 1}


def test_read_at_window_dates_the_read_when_the_30th_customer_reaches_k_days():
    # per arm: 10 customers delivered 13 days ago, 40 delivered 6 days ago: the 30th longest follow-up is 6 days,
    # so 14 days are reached 8 days after AS_OF
    rows = [(a, f"{a}{i}", 13.0 if i < 10 else 6.0, None) for a in ("control", "treatment") for i in range(50)]
    r = read_at_window(units_frame(rows), AS_OF, 14)
    assert not r.readable and r.readable_on == (AS_OF + pd.Timedelta(days=8)).date()


def test_read_at_window_without_enough_delivered_customers_has_no_date():
    rows = [(a, f"{a}{i}", 2.0, None) for a in ("control", "treatment") for i in range(10)]
    r = read_at_window(units_frame(rows), AS_OF, 14)
    assert not r.readable and r.readable_on is None and "not yet datable" in r.why
