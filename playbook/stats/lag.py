"""Returns arrive days after delivery: compare arms without counting immature units as kept.

At a J+7 review most units delivered during the test cannot have been returned *yet*. The
naive "returned / delivered" rate counts them as kept and biases every arm towards zero
(and towards the arm with older deliveries). Two honest ways out, both here:

1. a fixed window: the share of units returned within k days of delivery, counted only
   among units delivered at least k days before ``as_of`` (:func:`return_within_k_difference`,
   with k chosen from the data by :func:`choose_follow_up_days`);
2. time-to-return with right censoring at ``as_of``: Kaplan-Meier curves per arm
   (:func:`kaplan_meier_by_arm`), the log-rank test (:func:`log_rank_test`) and a Cox
   hazard ratio with customer-clustered errors (:func:`cox_hazard_ratio`).

Input: one row per unit (or per line, with a ``quantity`` column of whole-number weights):
``arm`` ("control" / "treatment"), ``customer_id``, ``delivered_ts``, ``returned_ts`` (NaT
when not returned). Time is measured in days (float) from delivery. A return stamped after
``as_of`` is treated as not yet seen (censored at ``as_of``), a return stamped before its
delivery is counted at day 0, units delivered after ``as_of`` or without delivery date are
dropped; a unit without customer id is its own cluster; all of these are counted in
``details``. Time-zone-aware timestamps are compared in UTC (naive ones are taken as UTC).

Units of one customer are correlated (same habits, same household): every interval here is
clustered by customer except the log-rank test (statsmodels ``survdiff`` assumes
independent units, said in its ``details``). Customers should be the randomised unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, TypedDict, Unpack

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from playbook.core.formats import date_text
from playbook.stats.results import Estimate, _clean

__all__ = [
    "FollowUpChoice",
    "KaplanMeierResult",
    "choose_follow_up_days",
    "return_within_k_difference",
    "kaplan_meier_by_arm",
    "log_rank_test",
    "cox_hazard_ratio",
    "MIN_CUSTOMERS_AT_K",
    "WindowReadResult",
    "read_at_window",
    "catch_up_difference",
    "UnitColumns",
]

DEFAULT_CANDIDATES: tuple[int, ...] = (3, 7, 14, 21, 28, 30, 45, 60, 90)
_DAY_NS = 86_400 * 10**9




# --------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------


class UnitColumns(TypedDict, total=False):
    """The keyword arguments every public function here takes to read the unit table (defaults: ``_prepare``).

    ``arm`` ("arm"), ``customer`` ("customer_id"), ``delivered`` ("delivered_ts"), ``returned``
    ("returned_ts"): column names; ``quantity`` (None: every row one unit): the column of whole-number
    unit weights; ``control``, ``treatment`` ("control", "treatment"): the arm column's labels.
    """

    arm: str
    customer: str
    delivered: str
    returned: str
    quantity: str | None
    control: Any
    treatment: Any


@dataclass
class _Units:
    arm: np.ndarray       # 0 control, 1 treatment
    cust: np.ndarray      # customer codes 0..G-1
    n_customers: int
    follow: np.ndarray    # days from delivery to as_of
    event: np.ndarray     # returned by as_of
    lag: np.ndarray       # days delivery -> return (NaN when no event)
    time: np.ndarray      # lag if event else follow (censoring time)
    w: np.ndarray         # unit weights (quantity)
    counts: dict[str, int]
    weighted: bool        # a quantity column gives the weights (else every unit weighs 1)


def _to_utc_ns(values: pd.Series) -> np.ndarray:
    s = pd.to_datetime(values)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[ns]").astype("int64", copy=False)


def _prepare(
    df: pd.DataFrame,
    as_of: Any,
    arm: str = "arm",
    customer: str = "customer_id",
    delivered: str = "delivered_ts",
    returned: str = "returned_ts",
    quantity: str | None = None,
    control: Any = "control",
    treatment: Any = "treatment",
) -> _Units:
    """The units of ``df`` kept for the analysis, in the columns and arm labels of ``UnitColumns`` (defaults here)."""
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    as_of_ns = ts.as_unit("ns").value
    nat = np.iinfo(np.int64).min
    arm_values = df[arm].to_numpy()
    arm01 = np.full(len(df), -1, dtype=np.int8)
    arm01[arm_values == control] = 0
    arm01[arm_values == treatment] = 1
    d_ns = _to_utc_ns(df[delivered])
    r_ns = _to_utc_ns(df[returned])
    d_missing = d_ns == nat
    r_missing = r_ns == nat
    w = (np.ones(len(df)) if quantity is None
         else pd.to_numeric(df[quantity], errors="coerce").to_numpy(dtype=float))
    follow_all = np.where(d_missing, np.nan, (as_of_ns - d_ns) / _DAY_NS)
    w_ok = np.isfinite(w) & (w > 0)
    keep = (arm01 >= 0) & ~d_missing & (follow_all >= 0) & w_ok
    counts = {
        "rows": int(len(df)),
        "rows_other_arm": int(np.sum(arm01 < 0)),
        "rows_missing_delivery": int(np.sum(d_missing & (arm01 >= 0))),
        "rows_delivered_after_as_of": int(np.sum((arm01 >= 0) & ~d_missing & (follow_all < 0))),
        "rows_without_positive_quantity": int(np.sum((arm01 >= 0) & ~w_ok)),
    }
    d_k, r_k, miss_k = d_ns[keep], r_ns[keep], r_missing[keep]
    follow = follow_all[keep]
    returned_seen = ~miss_k & (r_k <= as_of_ns)
    lag = np.where(returned_seen, (r_k - d_k) / _DAY_NS, np.nan)
    before = returned_seen & (lag < 0)
    counts["returns_after_as_of_censored"] = int(np.sum(~miss_k & (r_k > as_of_ns)))
    counts["returns_before_delivery_set_to_day_0"] = int(np.sum(before))
    lag = np.where(before, 0.0, lag)
    time = np.where(returned_seen, lag, follow)
    cust_codes, uniques = pd.factorize(df[customer].to_numpy()[keep])
    cust_codes = cust_codes.astype(np.int64)
    anonymous = cust_codes < 0
    counts["units_without_customer_as_own_cluster"] = int(anonymous.sum())
    cust_codes[anonymous] = len(uniques) + np.arange(int(anonymous.sum()))
    return _Units(
        arm=arm01[keep].astype(np.int8),
        cust=cust_codes,
        n_customers=len(uniques) + int(anonymous.sum()),
        follow=follow,
        event=returned_seen,
        lag=lag,
        time=time,
        w=w[keep],
        counts=counts,
        weighted=quantity is not None,
    )


def _units_in_both_arms(method: str, df: pd.DataFrame, as_of: Any,
                        columns: UnitColumns) -> tuple[_Units, dict[str, Any], Estimate | None]:
    """The units, their data-cleaning counts as ``details``, and the refusal of ``method`` when an arm has no
    unit delivered by ``as_of`` (None when both arms have units)."""
    u = _prepare(df, as_of, **columns)
    details: dict[str, Any] = dict(u.counts)
    for a, name in ((0, "control"), (1, "treatment")):
        if not np.any(u.arm == a):
            return u, details, Estimate.unavailable(method, 0, f"empty arm: no {name} unit delivered by as_of",
                                                    **details)
    return u, details, None


# --------------------------------------------------------------------------------------
# Clustered ratio-of-sums difference
# --------------------------------------------------------------------------------------


def _clustered_ratio_difference(
    num: np.ndarray, den: np.ndarray, present: np.ndarray
) -> tuple[float, float, float, float, list[int]]:
    """Delta method for R_t - R_c with R_a = sum_c num[c, a] / sum_c den[c, a].

    ``num``, ``den``: (customers, 2) per-customer sums in control (column 0) and treatment
    (column 1); ``present[c, a]``: customer c has units in arm a. The linearisation
    (influence) of R_a for customer c is psi[c, a] = (num - R_a den) / D_a with
    D_a = sum den; scaled by sqrt(G_a / (G_a - 1)) (G_a = customers in arm a) it reproduces
    the textbook delta-method variance of a ratio of cluster totals,
    [s_num^2 - 2 R s_num,den + R^2 s_den^2] / (G_a mean_den^2)
    (Deng, Knoblich & Lu 2018, "Applying the delta method in metric analytics", KDD).
    Var(R_t - R_c) = sum_c (psi[c, 1] - psi[c, 0])^2, which also covers customers seen in
    both arms (their covariance term). Written by hand (statsmodels has no ratio-of-sums
    delta method).

    Returns (R_c, R_t, difference, variance, [G_c, G_t]).
    """
    g = present.sum(axis=0).astype(int)
    big_d = den.sum(axis=0)
    r = num.sum(axis=0) / big_d
    psi = (num - r[None, :] * den) / big_d[None, :]
    psi = psi * np.sqrt(g / np.maximum(g - 1, 1))[None, :]
    psi = np.where(present, psi, 0.0)
    var = float(np.sum((psi[:, 1] - psi[:, 0]) ** 2))
    return float(r[0]), float(r[1]), float(r[1] - r[0]), var, [int(g[0]), int(g[1])]


# --------------------------------------------------------------------------------------
# Follow-up choice
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpChoice:
    """The return window k chosen from the data.

    Attributes:
        k: chosen window in days (None when no candidate qualifies; see ``error``).
        table: one row per candidate: ``k, mature_share_control, mature_share_treatment,
            mature_units_control, mature_units_treatment, km_return_share, eligible``
            (``km_return_share``: pooled Kaplan-Meier share of units returned within k
            days, to see how much of the return curve the window captures).
        reason: the rule and the numbers behind the choice, in words.
        error: why no k could be chosen.
    """

    k: int | None
    table: pd.DataFrame
    reason: str
    min_share: float
    min_units: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _clean({"k": self.k, "table": self.table, "reason": self.reason,
                       "min_share": self.min_share, "min_units": self.min_units,
                       "error": self.error})


def _km_curve(time: np.ndarray, event: np.ndarray, w: np.ndarray):
    """Unique times, risk set, event counts and KM survival (weights = frequencies)."""
    ut, inv = np.unique(time, return_inverse=True)
    dm = np.bincount(inv, weights=w * event, minlength=ut.size)
    nm = np.bincount(inv, weights=w, minlength=ut.size)
    y = np.cumsum(nm[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - np.where(y > 0, dm / y, 0.0))
    return ut, inv, dm, y, surv


def _surv_at(ut: np.ndarray, surv: np.ndarray, k: float) -> float:
    i = np.searchsorted(ut, k, side="right") - 1
    return 1.0 if i < 0 else float(surv[i])


def choose_follow_up_days(
    df: pd.DataFrame,
    as_of: Any,
    min_share: float = 0.5,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    min_units: int = 100,
    **columns: Unpack[UnitColumns],
) -> FollowUpChoice:
    """Largest window k (days) that enough units in *both* arms have fully lived through.

    For each candidate k: mature share of arm a = (units of a delivered at least k days
    before ``as_of``) / (units of a delivered by ``as_of``). Chosen: the largest k with a
    mature share >= ``min_share`` and at least ``min_units`` mature units in each arm.

    Trade-off (say it in the review): a longer window captures more of the returns (see
    ``km_return_share``) but keeps fewer units, and only the *earliest* deliveries of the
    test, which may differ from later ones (novelty, seasonality). Never raises on data:
    an empty arm or no qualifying candidate gives ``k=None`` with ``error``.
    """
    u = _prepare(df, as_of, **columns)
    rows = []
    if u.event.size:
        ut, _, _, _, surv = _km_curve(u.time, u.event, u.w)
    for k in sorted({int(c) for c in candidates}):
        row: dict[str, Any] = {"k": k}
        for a, name in ((0, "control"), (1, "treatment")):
            in_arm = u.arm == a
            total = float(u.w[in_arm].sum())
            mature = float(u.w[in_arm & (u.follow >= k)].sum())
            row[f"mature_share_{name}"] = mature / total if total > 0 else math.nan
            row[f"mature_units_{name}"] = mature
        row["km_return_share"] = (1.0 - _surv_at(ut, surv, k)) if u.event.size else math.nan
        row["eligible"] = bool(
            all(row[f"mature_share_{a}"] >= min_share and row[f"mature_units_{a}"] >= min_units
                for a in ("control", "treatment"))
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=["k", "mature_share_control", "mature_share_treatment",
                                        "mature_units_control", "mature_units_treatment",
                                        "km_return_share", "eligible"])
    empty = [name for a, name in ((0, "control"), (1, "treatment")) if not np.any(u.arm == a)]
    if empty:
        msg = f"no unit delivered by as_of in arm(s) {', '.join(empty)}"
        return FollowUpChoice(None, table, msg, min_share, min_units, error=msg)
    ok = table[table["eligible"]]
    if ok.empty:
        msg = (f"no candidate k in {sorted(set(int(c) for c in candidates))} has at least "
               f"{min_share:.0%} of units and {min_units} units in both arms delivered k days "
               "before as_of: wait for more follow-up")
        return FollowUpChoice(None, table, msg, min_share, min_units, error=msg)
    best = ok.iloc[-1]
    k = int(best["k"])
    reason = (f"k={k}: largest candidate with >= {min_share:.0%} of units (and >= {min_units} "
              f"units) in both arms delivered at least {k} days before as_of "
              f"({best['mature_share_control']:.0%} of control, "
              f"{best['mature_share_treatment']:.0%} of treatment); pooled Kaplan-Meier: "
              f"{best['km_return_share']:.1%} of units returned within {k} days")
    return FollowUpChoice(k, table, reason, min_share, min_units)


# --------------------------------------------------------------------------------------
# Return within k days
# --------------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def return_within_k_difference(
    df: pd.DataFrame,
    as_of: Any,
    k: float,
    confidence: float = 0.95,
    **columns: Unpack[UnitColumns],
) -> Estimate:
    """Difference (treatment - control) in the share of units returned within k days.

    Only *mature* units count: delivered at least k days before ``as_of`` (a unit with less
    follow-up is never counted as "not returned"). Per arm a::

        R_a = sum over mature units of quantity * 1{returned within k days}
              / sum over mature units of quantity

    Interval: ratio-of-sums delta method on per-customer totals (customers are the
    independent clusters; see ``_clustered_ratio_difference``), normal quantile,
    two-sided p-value against 0. Assumptions: customers independent, enough customers per
    arm for the normal approximation (a few hundred), the return-lag distribution does not
    depend on the delivery date within the test.

    ``details``: k, rate_control, rate_treatment, relative_difference, mature and immature
    units, customers per arm, customers_in_both_arms, data-cleaning counts. Degenerate data
    (empty arm, no mature unit, one customer, zero variance) give an ``error``, not an
    exception. Method name: ``"return-within-k-delta-cluster"``.
    """
    method = "return-within-k-delta-cluster"
    if not (0.0 < confidence < 1.0):
        return Estimate.unavailable(method, 0, f"confidence must lie in (0, 1), got {confidence!r}")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k >= 0):
        return Estimate.unavailable(method, 0, f"k must be a number of days >= 0, got {k!r}")
    u = _prepare(df, as_of, **columns)
    mature = u.follow >= k
    hit = mature & u.event & (u.lag <= k)
    details: dict[str, Any] = {"k": k, **u.counts}
    for a, name in ((0, "control"), (1, "treatment")):
        in_arm = u.arm == a
        details[f"units_{name}"] = float(u.w[in_arm].sum())
        details[f"mature_units_{name}"] = float(u.w[in_arm & mature].sum())
        details[f"immature_units_excluded_{name}"] = float(u.w[in_arm & ~mature].sum())
    for name in ("control", "treatment"):
        if details[f"units_{name}"] == 0:
            return Estimate.unavailable(method, 0, f"empty arm: no {name} unit delivered by as_of",
                                        **details)
        if details[f"mature_units_{name}"] == 0:
            return Estimate.unavailable(
                method, 0, f"no mature unit in {name}: no unit was delivered at least {k:g} days "
                "before as_of; wait, or choose a smaller k", **details)
    g = u.n_customers
    idx = u.cust * 2 + u.arm
    num = np.bincount(idx, weights=u.w * hit, minlength=2 * g).reshape(g, 2)
    den = np.bincount(idx, weights=u.w * mature, minlength=2 * g).reshape(g, 2)
    present = den > 0
    r_c, r_t, diff, var, g_arm = _clustered_ratio_difference(num, den, present)
    n = int(np.sum(present.any(axis=1)))
    details.update(rate_control=r_c, rate_treatment=r_t,
                   relative_difference=(diff / r_c) if r_c > 0 else None,
                   customers_control=g_arm[0], customers_treatment=g_arm[1],
                   customers_in_both_arms=int(np.sum(present.all(axis=1))))
    if min(g_arm) < 2:
        return Estimate(diff, None, None, method, n,
                        error="only one customer with mature units in an arm: the "
                        "customer-clustered variance is undefined", details=details)
    if not var > 0:
        return Estimate(diff, None, None, method, n,
                        error="zero variance: every customer has the same within-k return "
                        "share in both arms (e.g. no return at all); no interval",
                        details=details)
    se = math.sqrt(var)
    z = _z(confidence)
    details["std_error"] = se
    return Estimate(diff, diff - z * se, diff + z * se, method, n,
                    p_value=float(2 * stats.norm.sf(abs(diff) / se)), confidence=confidence,
                    details=details)


# --------------------------------------------------------------------------------------
# Kaplan-Meier
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KaplanMeierResult:
    """Kaplan-Meier return curves per arm and their difference at day k.

    Attributes:
        curves: tidy table, one row per arm and distinct return day: ``arm, days, at_risk,
            returned, not_returned_share, return_share, std_error, ci_low, ci_high``
            (``return_share`` = 1 - KM survival from statsmodels ``SurvfuncRight``;
            Greenwood standard error S(t) sqrt(sum d / (Y (Y - d))) recomputed from its risk
            sets, because with ``freq_weights`` statsmodels reports the standard error of
            the cumulative hazard instead; pointwise log-log interval; units independent).
        difference: :class:`Estimate` (method ``"km"``) of return_share_treatment(k) -
            return_share_control(k) with a customer-clustered interval.
    """

    curves: pd.DataFrame
    difference: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"curves": _clean(self.curves), "difference": self.difference.to_dict()}


def _km_influence(time: np.ndarray, event: np.ndarray, w: np.ndarray, k: float):
    """KM return share F(k) = 1 - S(k) and each unit's influence on it.

    Infinitesimal-jackknife influence of unit j (weight w_j) on log S(k), derived from
    log S = sum_m log(1 - d_m / Y_m)::

        U_j = - delta_j 1{t_j <= k} / (Y(t_j) - d(t_j))
              + sum_{t_m <= min(t_j, k)} d_m / (Y_m (Y_m - d_m))

    and on F(k): -S(k) U_j. Summing w_j * influence over a customer's units and squaring
    gives the customer-clustered (robust) variance, as R ``survfit(..., id=, robust=TRUE)``
    does (Therneau & Grambsch 2000, §2.2 / §8). Written by hand because statsmodels
    ``SurvfuncRight`` only gives the Greenwood variance for independent units.
    """
    ut, inv, dm, y, surv = _km_curve(time, event, w)
    s_k = _surv_at(ut, surv, k)
    ik = np.searchsorted(ut, k, side="right") - 1
    left = y - dm
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(left > 0, dm / (y * left), 0.0)
        jump = np.where(left[inv] > 0, 1.0 / left[inv], 0.0)
    cum_h = np.cumsum(h)
    pos = np.minimum(inv, ik)
    h_at = np.where(pos >= 0, cum_h[np.maximum(pos, 0)], 0.0)
    u_log = -np.where(event & (time <= k), jump, 0.0) + h_at
    # Greenwood variance for comparison (independent units)
    greenwood = s_k**2 * float(np.sum(h[: ik + 1])) if ik >= 0 else 0.0
    return 1.0 - s_k, -s_k * u_log, greenwood


def _clustered_km_at(u: _Units, k: float, since: float | None = None,
                     ) -> tuple[list[float], list[float], np.ndarray, float, int]:
    """KM return share at day ``k`` per arm, Greenwood variances, customers per arm, and the variance of the
    difference from customer-summed influence values (infinitesimal jackknife, small-sample factor G/(G-1)
    per arm), and the number of customers. With ``since``: the share returned after day ``since`` and by day
    ``k``, F(k) - F(since), whose influence is the difference of the two influences (same units, same curve);
    its Greenwood entries are NaN (no such formula for a difference)."""
    g = u.n_customers
    infl = np.zeros((g, 2))
    present = np.zeros((g, 2), dtype=bool)
    shares, greenwood = [0.0, 0.0], [0.0, 0.0]
    for a in (0, 1):
        m = u.arm == a
        shares[a], ifl, greenwood[a] = _km_influence(u.time[m], u.event[m], u.w[m], k)
        if since is not None:
            before, ifl_before, _ = _km_influence(u.time[m], u.event[m], u.w[m], since)
            shares[a], ifl, greenwood[a] = shares[a] - before, ifl - ifl_before, math.nan
        infl[:, a] = np.bincount(u.cust[m], weights=u.w[m] * ifl, minlength=g)
        present[:, a] = np.bincount(u.cust[m], minlength=g) > 0
    g_arm = present.sum(axis=0)
    infl *= np.sqrt(g_arm / np.maximum(g_arm - 1, 1))[None, :]
    var = float(np.sum((infl[:, 1] - infl[:, 0]) ** 2))
    return shares, greenwood, g_arm, var, int(np.sum(present.any(axis=1)))


def kaplan_meier_by_arm(
    df: pd.DataFrame,
    as_of: Any,
    k: float | None = None,
    confidence: float = 0.95,
    **columns: Unpack[UnitColumns],
) -> KaplanMeierResult:
    """Kaplan-Meier share of units returned by day t, per arm, censored at ``as_of``.

    time = days from delivery to return, or to ``as_of`` for units not returned yet
    (right-censored). Curves: ``statsmodels.duration.survfunc.SurvfuncRight`` (quantities
    as ``freq_weights``), KM estimator S(t) = prod_{t_m <= t} (1 - d_m / Y_m) with Greenwood
    standard errors (Greenwood 1926). Unlike :func:`return_within_k_difference` it uses
    every unit, including those with less than k days of follow-up. Assumption: censoring
    (the delivery date) independent of the return time.

    ``difference``: F_t(k) - F_c(k), F = 1 - S, at ``k`` days (default: the k of
    :func:`choose_follow_up_days`), with a normal interval from the customer-clustered
    infinitesimal-jackknife variance (see ``_km_influence``); method ``"km"``; ``details``
    give both return shares and the Greenwood (unclustered) standard error for comparison.
    """
    method = "km"
    u = _prepare(df, as_of, **columns)
    z = _z(confidence) if 0 < confidence < 1 else float("nan")
    frames = []
    for a, name in ((0, "control"), (1, "treatment")):
        m = u.arm == a
        if not m.any():
            continue
        sf = SurvfuncRight(u.time[m], u.event[m].astype(float), freq_weights=u.w[m])
        s = np.asarray(sf.surv_prob)
        n_risk, n_ev = np.asarray(sf.n_risk, dtype=float), np.asarray(sf.n_events, dtype=float)
        # Greenwood from statsmodels' risk sets: with freq_weights, SurvfuncRight's
        # surv_prob_se is the Tsiatis standard error of the cumulative hazard, not of S.
        with np.errstate(divide="ignore", invalid="ignore"):
            gw = np.cumsum(np.where(n_risk > n_ev, n_ev / (n_risk * (n_risk - n_ev)), 0.0))
        se = s * np.sqrt(gw)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_s = np.log(s)
            se_ll = se / (s * np.abs(log_s))
            theta = np.log(-log_s)
            s_lo = np.exp(-np.exp(theta + z * se_ll))
            s_hi = np.exp(-np.exp(theta - z * se_ll))
        point = (s >= 1) | (s <= 0) | ~np.isfinite(se_ll)
        s_lo = np.where(point, s, s_lo)
        s_hi = np.where(point, s, s_hi)
        frames.append(pd.DataFrame({
            "arm": name, "days": sf.surv_times, "at_risk": sf.n_risk, "returned": sf.n_events,
            "not_returned_share": s, "return_share": 1 - s, "std_error": se,
            "ci_low": 1 - s_hi, "ci_high": 1 - s_lo,
        }))
    curves = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["arm", "days", "at_risk", "returned", "not_returned_share", "return_share",
                 "std_error", "ci_low", "ci_high"]))

    details: dict[str, Any] = dict(u.counts)
    chosen = None
    if k is None:
        chosen = choose_follow_up_days(df, as_of, **columns)
        k = chosen.k
        details["k_choice"] = chosen.reason
    if k is None:
        return KaplanMeierResult(curves, Estimate.unavailable(
            method, 0, f"no horizon k: {chosen.error if chosen else 'not given'}", **details))
    details["k"] = k
    for a, name in ((0, "control"), (1, "treatment")):
        m = u.arm == a
        if not m.any():
            return KaplanMeierResult(curves, Estimate.unavailable(
                method, 0, f"empty arm: no {name} unit delivered by as_of", **details))
        if not np.any(u.time[m] >= k):
            return KaplanMeierResult(curves, Estimate.unavailable(
                method, 0, f"no {name} unit is still followed at day {k:g}: the KM curve is "
                "undefined there", **details))
    shares, greenwood, g_arm, var, n = _clustered_km_at(u, k)
    diff = shares[1] - shares[0]
    details.update(return_share_control=shares[0], return_share_treatment=shares[1],
                   customers_control=int(g_arm[0]), customers_treatment=int(g_arm[1]),
                   greenwood_std_error=math.sqrt(greenwood[0] + greenwood[1]),
                   variance="customer-clustered infinitesimal jackknife")
    if min(g_arm) < 2:
        est = Estimate(diff, None, None, method, n, error="only one customer in an arm: the "
                       "customer-clustered variance is undefined", details=details)
    elif not var > 0:
        est = Estimate(diff, None, None, method, n, error="zero variance (no return before day "
                       "k in either arm, or every unit returned): no interval", details=details)
    elif not (0 < confidence < 1):
        est = Estimate(diff, None, None, method, n, error="confidence must lie in (0, 1)",
                       details=details)
    else:
        se = math.sqrt(var)
        details["std_error"] = se
        est = Estimate(diff, diff - z * se, diff + z * se, method, n,
                       p_value=float(2 * stats.norm.sf(abs(diff) / se)),
                       confidence=confidence, details=details)
    return KaplanMeierResult(curves, est)


# --------------------------------------------------------------------------------------
# Log-rank and Cox
# --------------------------------------------------------------------------------------


def _logrank_o_e_v(time: np.ndarray, event: np.ndarray, arm: np.ndarray, w: np.ndarray):
    """Observed - expected treatment returns and the hypergeometric variance (weighted).

    At each distinct time m with Y_m units at risk (Y_1m in treatment) and d_m returns::

        E_1 = sum_m d_m Y_1m / Y_m
        V   = sum_m d_m (Y_1m / Y_m) (1 - Y_1m / Y_m) (Y_m - d_m) / (Y_m - 1)

    over times with Y_m > 1 (as statsmodels ``survdiff`` does). Mantel 1966; Peto & Peto 1972.
    """
    ut, inv = np.unique(time, return_inverse=True)
    nt = ut.size
    d_all = np.bincount(inv, weights=w * event, minlength=nt)
    d_1 = np.bincount(inv, weights=w * event * (arm == 1), minlength=nt)
    n_all = np.bincount(inv, weights=w, minlength=nt)
    n_1 = np.bincount(inv, weights=w * (arm == 1), minlength=nt)
    y_all = np.cumsum(n_all[::-1])[::-1]
    y_1 = np.cumsum(n_1[::-1])[::-1]
    ix = y_all > 1
    r = y_1[ix] / y_all[ix]
    o_minus_e = float(np.sum(d_1[ix] - r * d_all[ix]))
    v = float(np.sum(r * (1 - r) * d_all[ix] * (y_all[ix] - d_all[ix]) / (y_all[ix] - 1)))
    return o_minus_e, v, float(d_1.sum()), float(d_all.sum() - d_1.sum())


def log_rank_test(
    df: pd.DataFrame,
    as_of: Any,
    confidence: float = 0.95,
    **columns: Unpack[UnitColumns],
) -> Estimate:
    """Log-rank test of equal return-time distributions, with Peto's hazard ratio.

    chi^2 = (O_t - E_t)^2 / V (1 degree of freedom) from ``statsmodels`` ``survdiff``
    (without ``quantity``); with ``quantity`` weights the same formula is computed by hand
    (``survdiff`` has no case weights; see ``_logrank_o_e_v``). The estimate is Peto's
    one-step hazard ratio exp((O_t - E_t) / V) with interval exp(+-z / sqrt(V)) (good
    near HR = 1, biased far from it; Yusuf et al. 1985). ``p_value`` is the log-rank one.

    Assumption: units independent. Several units per customer make the test too liberal
    (``details["warning"]``); prefer :func:`cox_hazard_ratio` with clustered errors.
    Method ``"logrank"``, null value 1.
    """
    method = "logrank"
    u, details, refused = _units_in_both_arms(method, df, as_of, columns)
    if refused is not None:
        return refused
    n = u.n_customers
    if not np.any(u.event):
        return Estimate.unavailable(method, n, "no return observed by as_of in either arm: "
                                    "nothing to compare", **details)
    o_e, v, o_t, o_c = _logrank_o_e_v(u.time, u.event, u.arm, u.w)
    if not u.weighted:
        chisq, p = survdiff(u.time, u.event.astype(float), u.arm)
        chisq, p = float(chisq), float(p)
        details["computed_by"] = "statsmodels survdiff"
    else:
        chisq = o_e**2 / v if v > 0 else float("nan")
        p = float(stats.chi2.sf(chisq, 1)) if v > 0 else None
        details["computed_by"] = "by hand with quantity weights (survdiff has no weights)"
    units_per_customer = float(u.w.sum() / max(n, 1))
    details.update(chisq=chisq, observed_minus_expected_treatment=o_e, variance=v,
                   returns_treatment=o_t, returns_control=o_c,
                   units_per_customer=units_per_customer)
    if units_per_customer > 1.0:
        details["warning"] = ("log-rank treats units as independent; customers have "
                              f"{units_per_customer:.2f} units on average, so the p-value is "
                              "too small: prefer cox_hazard_ratio (customer-clustered)")
    if not v > 0:
        return Estimate(None, None, None, method, n, error="zero log-rank variance",
                        null_value=1.0, details=details)
    z = _z(confidence)
    log_hr, se = o_e / v, 1.0 / math.sqrt(v)
    return Estimate(math.exp(log_hr), math.exp(log_hr - z * se), math.exp(log_hr + z * se),
                    method, n, p_value=p, null_value=1.0, confidence=confidence,
                    details=details)


def _breslow_score_residuals(time: np.ndarray, event: np.ndarray, x: np.ndarray,
                             beta: np.ndarray) -> np.ndarray:
    """Score residuals of the Cox partial likelihood (Breslow ties), vectorised.

    For unit j with linear predictor eta_j = x_j beta, at the distinct times t_m with
    S0_m = sum_{t_i >= t_m} exp(eta_i), xbar_m = sum_{t_i >= t_m} x_i exp(eta_i) / S0_m and
    dLambda_m = d_m / S0_m::

        r_j = delta_j (x_j - xbar(t_j)) - exp(eta_j) sum_{t_m <= t_j} (x_j - xbar_m) dLambda_m

    (Therneau & Grambsch 2000, §4.6). Written by hand because statsmodels
    ``PHReg.score_residuals`` loops in Python over every return time (too slow beyond a few
    thousand units) and returns NaN for units censored before the first return.
    """
    ut, inv = np.unique(time, return_inverse=True)
    nt = ut.size
    eta = x @ beta
    e = np.exp(eta - eta.max())
    d = np.bincount(inv, weights=event, minlength=nt)
    s0 = np.cumsum(np.bincount(inv, weights=e, minlength=nt)[::-1])[::-1]
    s1 = np.column_stack([
        np.cumsum(np.bincount(inv, weights=e * x[:, j], minlength=nt)[::-1])[::-1]
        for j in range(x.shape[1])
    ])
    xbar = s1 / s0[:, None]
    dlam = d / s0
    a_cum = np.cumsum(dlam)
    b_cum = np.cumsum(xbar * dlam[:, None], axis=0)
    return (event[:, None] * (x - xbar[inv])
            - e[:, None] * (x * a_cum[inv][:, None] - b_cum[inv]))


def cox_hazard_ratio(
    df: pd.DataFrame,
    as_of: Any,
    confidence: float = 0.95,
    *,
    max_expanded_rows: int = 2_000_000,
    **columns: Unpack[UnitColumns],
) -> Estimate:
    """Hazard ratio of return (treatment vs control), Cox model, customer-clustered errors.

    h(t | arm) = h0(t) exp(beta * 1{treatment}); HR = exp(beta). beta is fitted by
    ``statsmodels.duration.hazard_regression.PHReg(time, arm, status, ties="breslow")``.
    Its variance is the robust sandwich of Lin & Wei (1989, JASA 84:1074) summing score
    residuals within customers, H^-1 (sum_c U_c U_c') H^-1, the estimator of
    ``PHReg.fit(groups=customer)`` (same formula, no small-sample factor), with the
    score residuals computed by the vectorised ``_breslow_score_residuals`` and H =
    ``PHReg.hessian``. Interval exp(beta +- z se), Wald p-value.

    ``quantity`` weights must be whole numbers: rows are repeated (PHReg has no case
    weights). Assumption: proportional hazards (crossing KM curves mean the HR averages
    opposite effects), censoring independent of return time; with timestamps, ties are rare
    and Breslow equals Efron. Method ``"cox-clustered"``, null value 1.
    """
    method = "cox-clustered"
    u, details, refused = _units_in_both_arms(method, df, as_of, columns)
    if refused is not None:
        return refused
    n = u.n_customers
    if n < 2:
        return Estimate.unavailable(method, n, "one customer: clustered standard errors are "
                                    "undefined", **details)
    ev_arm = [float(u.w[(u.arm == a) & u.event].sum()) for a in (0, 1)]
    details.update(returns_control=ev_arm[0], returns_treatment=ev_arm[1])
    if sum(ev_arm) == 0:
        return Estimate.unavailable(method, n, "no return observed by as_of: hazard ratio "
                                    "undefined", **details)
    if min(ev_arm) == 0:
        return Estimate.unavailable(method, n, "all returns are in one arm: the hazard ratio "
                                    "is 0 or infinite", **details)
    time, event, x, grp = u.time, u.event.astype(float), u.arm.astype(float), u.cust
    if u.weighted:
        reps = np.rint(u.w).astype(np.int64)
        if not np.allclose(u.w, reps):
            return Estimate.unavailable(method, n, "quantity must be whole numbers for the Cox "
                                        "model (rows are repeated)", **details)
        if reps.sum() > max_expanded_rows:
            return Estimate.unavailable(method, n, f"{int(reps.sum())} units after expanding "
                                        f"quantities exceed max_expanded_rows", **details)
        time, event, x, grp = (np.repeat(v, reps) for v in (time, event, x, grp))
    exog = x[:, None]
    model = PHReg(time, exog, status=event, ties="breslow")
    res = model.fit()
    params = np.asarray(res.params, dtype=float)
    resid = _breslow_score_residuals(time, event, exog, params)
    scores = np.column_stack([np.bincount(grp, weights=resid[:, j], minlength=n)
                              for j in range(exog.shape[1])])
    hess_inv = np.linalg.inv(model.hessian(params))
    cov = hess_inv @ (scores.T @ scores) @ hess_inv
    beta = float(params[0])
    se = float(np.sqrt(cov[0, 0])) if cov[0, 0] >= 0 else float("nan")
    details.update(log_hazard_ratio=beta, std_error=se, ties="breslow",
                   model_std_error=float(np.asarray(res.bse)[0]), units=float(u.w.sum()))
    if not (math.isfinite(beta) and math.isfinite(se) and se > 0):
        return Estimate(None, None, None, method, n, null_value=1.0,
                        error="Cox fit did not give a finite coefficient and standard error",
                        details=details)
    z = _z(confidence)
    return Estimate(math.exp(beta), math.exp(beta - z * se), math.exp(beta + z * se), method, n,
                    p_value=float(2 * stats.norm.sf(abs(beta) / se)), null_value=1.0,
                    confidence=confidence, details=details)


# --------------------------------------------------------------------------------------
# The pre-registered window: read at K or say when it can be
# --------------------------------------------------------------------------------------

#: A K-day read needs, in each arm, at least this many customers with a unit followed for K days.
#: Below it the Kaplan-Meier tail at K rests on a handful of customers and its customer-clustered
#: (jackknife) variance is unreliable (it needs tens of clusters: Cameron & Miller 2015, section VI).
MIN_CUSTOMERS_AT_K = 30


@dataclass(frozen=True)
class WindowReadResult:
    """The primary return rate read at its pre-registered window K, or why not yet.

    Attributes:
        k: the pre-registered window (days).
        readable: True when each arm has at least ``min_customers`` customers with a unit
            followed for k days (then ``difference`` is the Kaplan-Meier read at k).
        difference: :class:`Estimate` (method ``"km"``) of F_t(k) - F_c(k), customer-clustered
            (``kaplan_meier_by_arm``'s jackknife variance); unavailable when not readable.
        customers_at_k: per arm, customers with a unit followed for k days.
        readable_on: the first date at which the rule can hold with the units already delivered
            (the ``min_customers``-th customer's first delivery + k days, the later arm); None
            when an arm has fewer delivered customers than that.
        why: the rule and the numbers, in words.
    """

    k: int
    readable: bool
    difference: Estimate
    customers_at_k: dict[str, int]
    readable_on: Any
    why: str
    min_customers: int = MIN_CUSTOMERS_AT_K

    def to_dict(self) -> dict[str, Any]:
        return _clean({"k": self.k, "readable": self.readable, "difference": self.difference.to_dict(),
                       "customers_at_k": self.customers_at_k,
                       "readable_on": None if self.readable_on is None else str(self.readable_on),
                       "why": self.why, "min_customers": self.min_customers})


def _km_difference_at(u: _Units, k: float, confidence: float, details: dict[str, Any]) -> Estimate:
    """F_t(k) - F_c(k) with the customer-clustered infinitesimal-jackknife interval (see ``_km_influence``)."""
    method = "km"
    z = _z(confidence)
    shares, _, g_arm, var, n = _clustered_km_at(u, k)
    diff = shares[1] - shares[0]
    details = {**details, "k": k, "return_share_control": shares[0], "return_share_treatment": shares[1],
               "customers_control": int(g_arm[0]), "customers_treatment": int(g_arm[1]),
               "variance": "customer-clustered infinitesimal jackknife"}
    if not var > 0:
        return Estimate(diff, None, None, method, n, error="zero variance (no return before day k in either arm, "
                        "or every unit returned): no interval", details=details)
    se = math.sqrt(var)
    details["std_error"] = se
    return Estimate(diff, diff - z * se, diff + z * se, method, n, p_value=float(2 * stats.norm.sf(abs(diff) / se)),
                    confidence=confidence, details=details)


def read_at_window(
    df: pd.DataFrame,
    as_of: Any,
    k: int,
    min_customers: int = MIN_CUSTOMERS_AT_K,
    confidence: float = 0.95,
    **columns: Unpack[UnitColumns],
) -> WindowReadResult:
    """The k-day return rate difference read at the pre-registered k, censoring-aware.

    Kaplan-Meier cumulative return share at day k per arm, every unit censored at ``as_of``
    (Kaplan & Meier 1958), customers as clusters for the variance. Readable rule: each arm has at
    least ``min_customers`` customers with a unit followed for k days (delivered k days or more
    before ``as_of``); otherwise nothing is estimated under the k-day name and ``readable_on``
    says when the read becomes possible. Assumption: the delivery date (censoring) is independent
    of the return lag (early and late deliveries of the test return alike).
    """
    u = _prepare(df, as_of, **columns)
    as_of_day = pd.Timestamp(as_of).tz_localize(None) if pd.Timestamp(as_of).tzinfo is None else \
        pd.Timestamp(as_of).tz_convert("UTC").tz_localize(None)
    at_k, ready = {}, []
    for a, name in ((0, "control"), (1, "treatment")):
        m = u.arm == a
        at_k[name] = int(np.unique(u.cust[m & (u.follow >= k)]).size)
        # each customer's longest follow-up; the min_customers-th longest sets the date
        longest = np.sort(pd.Series(u.follow[m]).groupby(u.cust[m]).max().to_numpy())[::-1]
        if longest.size >= min_customers:
            wait = max(0.0, k - float(longest[min_customers - 1]))
            ready.append((as_of_day + pd.Timedelta(days=wait)).date())
        else:
            ready.append(None)
    readable_on = None if None in ready else max(ready)
    short = [f"{name}: {n}" for name, n in at_k.items()]
    if min(at_k.values()) < min_customers:
        when = f"readable on {date_text(readable_on)}" if readable_on else \
            f"not yet datable (fewer than {min_customers} customers with a delivery in an arm)"
        why = (f"customers with a unit followed for {k} days ({', '.join(short)}) are fewer than {min_customers} "
               f"in an arm; {when}")
        return WindowReadResult(k, False, Estimate.unavailable("km", 0, why, **u.counts), at_k, readable_on, why,
                                min_customers)
    est = _km_difference_at(u, k, confidence, dict(u.counts))
    why = (f"read at the pre-registered k = {k} days (Kaplan-Meier, censored at the end of the week; "
           f"customers followed {k} days: {', '.join(short)})")
    return WindowReadResult(k, True, est, at_k, readable_on, why, min_customers)


def catch_up_difference(
    df: pd.DataFrame,
    as_of: Any,
    k: float,
    longer: float,
    confidence: float = 0.95,
    **columns: Unpack[UnitColumns],
) -> Estimate:
    """Do the treated returns catch up after day k? The difference (treatment - control) of the share of units
    returned after day ``k`` and by day ``longer``: [F_t(longer) - F_t(k)] - [F_c(longer) - F_c(k)].

    Why it tells a delay from a prevention: write G(t) = F_c(t) - F_t(t), the returns the lever removed by day t.
    A lever that prevents returns (whichever returns, early or late) removes more of them as t grows: G is
    non-decreasing, and this difference, G(k) - G(longer), is <= 0. A lever that only delays returns removes
    none in the end (G -> 0): the treated returns missing at day k come later, and the difference is > 0. A
    one-sided test of "> 0" is therefore valid at its level against every pure prevention (the worst case, a
    lever that prevents no return after day k, sits at 0) and finds delays, whatever the lag distributions.

    Kaplan-Meier shares per arm, every unit censored at ``as_of`` (``read_at_window``'s estimator), the
    variance from the customer-summed influence of F(longer) - F(k) (infinitesimal jackknife, Therneau &
    Grambsch 2000 §8): the same customers enter both days, so the two reads' covariance is counted.
    ``p_value``: one-sided, P(N(0, 1) > z) for "the treated returns catch up". Unavailable (with its reason)
    when an arm has fewer than ``MIN_CUSTOMERS_AT_K`` customers followed ``longer`` days.
    """
    method = "km-catch-up"
    if not longer > k:
        return Estimate.unavailable(method, 0, f"the longer read ({longer:g} days) must exceed k = {k:g} days")
    u = _prepare(df, as_of, **columns)
    followed = {name: int(np.unique(u.cust[(u.arm == a) & (u.follow >= longer)]).size)
                for a, name in ((0, "control"), (1, "treatment"))}
    if min(followed.values()) < MIN_CUSTOMERS_AT_K:
        return Estimate.unavailable(method, 0, f"customers followed {longer:g} days ({followed}) are fewer than "
                                    f"{MIN_CUSTOMERS_AT_K} in an arm", **u.counts)
    shares, _, g_arm, var, n = _clustered_km_at(u, longer, since=k)
    diff = shares[1] - shares[0]
    details = {**u.counts, "k": k, "longer": longer, "returned_between_control": shares[0],
               "returned_between_treatment": shares[1], "customers_control": int(g_arm[0]),
               "customers_treatment": int(g_arm[1]), "variance": "customer-clustered infinitesimal jackknife"}
    if not var > 0:
        return Estimate(diff, None, None, method, n, error="zero variance: no return between the two days in "
                        "either arm", details=details)
    se, z = math.sqrt(var), _z(confidence)
    details["std_error"] = se
    return Estimate(diff, diff - z * se, diff + z * se, method, n, p_value=float(stats.norm.sf(diff / se)),
                    confidence=confidence, details=details)
