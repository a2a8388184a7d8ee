"""Per-customer averages compared between two arms: return cost per customer, refunds per order...

One value per randomised unit (customer) and arm; the functions compare the arm means.

Functions
---------
mean_difference           mean_t - mean_c, Welch t interval (unequal variances).
mean_relative_difference  mean_t / mean_c - 1, delta method on log(mean_t / mean_c).

Every function returns an :class:`~playbook.stats.results.Estimate`; degenerate input
(an arm with fewer than two values, no variance at all, NaN) gives a result with ``error``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from playbook.stats.results import Estimate

__all__ = ["mean_difference", "mean_relative_difference"]


def as_float_array(values: Any, name: str) -> tuple[np.ndarray | None, str | None]:
    """1-d float array of ``values`` (list, numpy array, pandas Series), or an error message.

    Non-finite values (NaN, inf) are refused rather than silently dropped: a missing
    return cost is a data problem the analyst must see.
    """
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        return None, f"{name}: values must be numbers"
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        return None, f"{name}: {bad} non-finite value(s) (NaN or inf); clean the data first"
    return arr, None


def check_confidence(confidence: float) -> str | None:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        return f"confidence must lie strictly between 0 and 1, got {confidence!r}"
    return None


def _two_arms(x_treatment: Any, x_control: Any, confidence: float, method: str):
    """Validated arrays, or an unavailable Estimate."""
    xt, err_t = as_float_array(x_treatment, "treatment")
    xc, err_c = as_float_array(x_control, "control")
    n = (0 if xt is None else xt.size) + (0 if xc is None else xc.size)
    err = check_confidence(confidence) or err_t or err_c
    if err is None:
        small = [arm for arm, a in (("treatment", xt), ("control", xc)) if a.size < 2]
        if small:
            err = f"{' and '.join(small)}: fewer than 2 units, no variance can be estimated"
    if err is not None:
        return None, None, Estimate.unavailable(method, n, err)
    return xt, xc, None


def _arm_details(xt: np.ndarray, xc: np.ndarray) -> dict[str, Any]:
    return {
        "mean_treatment": float(xt.mean()),
        "mean_control": float(xc.mean()),
        "sd_treatment": float(xt.std(ddof=1)),
        "sd_control": float(xc.std(ddof=1)),
        "n_treatment": int(xt.size),
        "n_control": int(xc.size),
    }


def mean_difference(x_treatment: Any, x_control: Any, confidence: float = 0.95) -> Estimate:
    """Difference of means ``mean_t - mean_c`` with Welch's t interval and test.

    Formula::

        se = sqrt(s_t²/n_t + s_c²/n_c)          (sample variances, ddof=1)
        df = se⁴ / ((s_t²/n_t)²/(n_t-1) + (s_c²/n_c)²/(n_c-1))   (Welch-Satterthwaite)
        interval = d ± t_{df, 1-α/2} · se

    computed by ``statsmodels.stats.weightstats.CompareMeans`` with ``usevar="unequal"``
    (``tconfint_diff`` and ``ttest_ind``); same numbers as ``scipy.stats.ttest_ind(...,
    equal_var=False)``. Welch 1947, Biometrika 34:28.

    Assumption: independent units; the sample means are close to normal (central limit
    theorem: fine for a few hundred customers per arm even with skewed costs, less so for
    heavy tails with a handful of huge values). Null value 0.
    """
    method = "welch"
    xt, xc, bad = _two_arms(x_treatment, x_control, confidence, method)
    if bad is not None:
        return bad
    n = int(xt.size + xc.size)
    details = _arm_details(xt, xc)
    diff = float(xt.mean() - xc.mean())
    if details["sd_treatment"] == 0 and details["sd_control"] == 0:
        return Estimate(
            diff, None, None, method, n, confidence=confidence,
            error="both arms have zero variance: no interval can be computed",
            details=details,
        )
    cm = CompareMeans(DescrStatsW(xt), DescrStatsW(xc))
    low, high = cm.tconfint_diff(alpha=1 - confidence, usevar="unequal")
    t_stat, p_value, df = cm.ttest_ind(usevar="unequal")
    details.update({"t": float(t_stat), "df": float(df), "se": float(cm.std_meandiff_separatevar)})
    return Estimate(
        estimate=diff,
        ci_low=float(low),
        ci_high=float(high),
        method=method,
        n=n,
        p_value=float(p_value),
        null_value=0.0,
        confidence=confidence,
        details=details,
    )


def mean_relative_difference(
    x_treatment: Any, x_control: Any, confidence: float = 0.95
) -> Estimate:
    """Relative difference ``mean_t / mean_c - 1`` with a delta-method interval on the log scale.

    Formula (delta method: ``var(log m) ≈ var(m) / m²``)::

        se_log = sqrt(s_t²/(n_t m_t²) + s_c²/(n_c m_c²))
        df     = Welch-Satterthwaite df computed on the log-scale variances
        interval = exp(log(m_t/m_c) ± t_{df, 1-α/2} · se_log) - 1
        p-value  = 2 · P(T_df > |log(m_t/m_c)| / se_log)

    Same construction as tea-tasting's ``Mean`` metric (relative effect size); written by hand
    because statsmodels has no interval for a ratio of two means. Never the absolute interval
    divided by the control mean, which ignores the uncertainty of the control mean.
    Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD.

    Assumption: as :func:`mean_difference`, and both means strictly positive (costs, counts)
    and several standard errors away from 0. The p-value is the log-scale test, so it always
    agrees with the interval. Null value 0.
    """
    method = "delta-log"
    xt, xc, bad = _two_arms(x_treatment, x_control, confidence, method)
    if bad is not None:
        return bad
    n = int(xt.size + xc.size)
    details = _arm_details(xt, xc)
    mt, mc = details["mean_treatment"], details["mean_control"]
    if mc <= 0:
        return Estimate.unavailable(
            method, n, f"control mean is {mc:.6g}: a relative difference needs a positive "
            "control mean", **details
        )
    lift = mt / mc - 1.0
    if mt <= 0:
        return Estimate(
            lift, None, None, method, n, confidence=confidence,
            error=f"treatment mean is {mt:.6g}: no log-scale interval; report the absolute "
            "difference instead",
            details=details,
        )
    vt = details["sd_treatment"] ** 2 / xt.size / mt**2
    vc = details["sd_control"] ** 2 / xc.size / mc**2
    if vt + vc == 0:
        return Estimate(
            lift, None, None, method, n, confidence=confidence,
            error="both arms have zero variance: no interval can be computed",
            details=details,
        )
    se_log = math.sqrt(vt + vc)
    df = (vt + vc) ** 2 / (vt**2 / (xt.size - 1) + vc**2 / (xc.size - 1))
    q = float(stats.t.ppf((1 + confidence) / 2, df))
    log_ratio = math.log(mt / mc)
    t_stat = log_ratio / se_log
    p_value = float(2 * stats.t.sf(abs(t_stat), df))
    details.update({"se_log_ratio": se_log, "df": df, "t_log": t_stat})
    return Estimate(
        estimate=lift,
        ci_low=math.exp(log_ratio - q * se_log) - 1.0,
        ci_high=math.exp(log_ratio + q * se_log) - 1.0,
        method=method,
        n=n,
        p_value=p_value,
        null_value=0.0,
        confidence=confidence,
        details=details,
    )
