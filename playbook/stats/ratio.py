"""Ratio metrics: customers are randomised, the metric is counted per line or per order.

Examples: returned units / delivered units, return costs / net revenue, contacts / orders.
The lines of one customer are not independent (a customer who returns a lot returns a lot on
every order), so a binomial interval on the line totals is too narrow. The unit of analysis
stays the randomised customer: each customer contributes a numerator sum ``y_i`` and a
denominator sum ``x_i``, and the metric is the ratio of means ``R = mean(y) / mean(x) =
sum(y) / sum(x)``. Its standard error comes from the delta method (Deng, Knoblich & Lu 2018,
"Applying the Delta Method in Metric Analytics: A Practical Guide with Novel Ideas", KDD).

Functions
---------
ratio_inputs_from_lines                 line-level frame -> per-customer (numerator, denominator).
ratio_metric                            R with its delta-method interval.
ratio_difference                        R_t - R_c, delta method, method "delta".
ratio_relative_difference               R_t / R_c - 1, delta method on log(R_t/R_c), "delta-log".
naive_line_level_proportion_difference  binomial interval on line totals: kept only to show
                                        that it under-covers on clustered data. Do not use.

Small samples and heavy-tailed baskets
--------------------------------------
The delta-method interval is a large-sample result. Below ``SMALL_SAMPLE_CUSTOMERS`` (300)
customers in an arm, or when one customer holds more than ``DOMINANT_CUSTOMER_SHARE`` (5 %) of
an arm's denominator (one heavy basket drives the ratio), ``small_sample="auto"`` replaces it
by the customer jackknife: the variance of each arm's ratio from its leave-one-customer-out
ratios, ``v_J = (G−1)/G · Σ (R_(−i) − mean R_(−·))²`` (Efron & Stein 1981; Quenouille–Tukey
jackknife, the HC3 analogue for a ratio), with a Student t quantile on G−1 degrees of freedom
for one arm and Welch–Satterthwaite degrees of freedom (per-arm G_a − 1) for a difference.
Method names gain ``-jackknife-t``; ``details["small_sample"]`` says why it was used.
Measured on a Pareto-basket A/A at 150 customers per arm (tests/stats/test_ratio_small_samples.py):
the delta-method interval misses 9 % of the time, the jackknife-t about 5 %.

statsmodels has no delta-method ratio-of-means estimator, so the formulas are written by hand
(tea-tasting's ``RatioOfMeans`` implements the same formulas; the tests compare both).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from playbook.stats.means import as_float_array, check_confidence
from playbook.stats.proportions import proportion_difference
from playbook.stats.results import Estimate

__all__ = [
    "ratio_inputs_from_lines",
    "ratio_metric",
    "ratio_difference",
    "ratio_relative_difference",
    "naive_line_level_proportion_difference",
    "SMALL_SAMPLE_CUSTOMERS",
    "DOMINANT_CUSTOMER_SHARE",
]

#: below this many customers in an arm the delta-method normal interval is replaced (``small_sample="auto"``)
SMALL_SAMPLE_CUSTOMERS = 300
#: ... and also when one customer holds more than this share of an arm's denominator
DOMINANT_CUSTOMER_SHARE = 0.05

SmallSample = Literal["auto", "jackknife-t", "normal"]


def ratio_inputs_from_lines(
    lines: pd.DataFrame,
    customer: str,
    numerator: str,
    denominator: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer sums from a line-level frame (one row per order line).

    ``denominator=None`` counts lines (e.g. numerator = 1 if the line was returned, giving
    returned lines / delivered lines). Returns ``(numerator_sums, denominator_sums)`` aligned
    by customer, ready for :func:`ratio_metric` and friends. Call it once per arm.
    """
    grouped = lines.groupby(customer, sort=True)
    num = grouped[numerator].sum()
    den = grouped.size() if denominator is None else grouped[denominator].sum()
    return num.to_numpy(dtype=float), den.reindex(num.index).to_numpy(dtype=float)


def _arm_moments(num: Any, den: Any, arm: str) -> tuple[dict[str, float] | None, str | None]:
    """Sample moments of one arm and the delta-method variance of its ratio of means.

    ``var(R) ≈ (1/n) [s_y²/μ_x² − 2 μ_y s_xy/μ_x³ + μ_y² s_x²/μ_x⁴]`` (Deng et al. 2018, eq. 3),
    sample (co)variances with ddof=1.
    """
    y, err_y = as_float_array(num, f"{arm} numerator")
    x, err_x = as_float_array(den, f"{arm} denominator")
    if err_y or err_x:
        return None, err_y or err_x
    if y.size != x.size:
        return None, f"{arm}: numerator ({y.size}) and denominator ({x.size}) lengths differ"
    n = int(y.size)
    if n == 0:
        return None, f"{arm}: empty arm, no customers"
    if n < 2:
        return None, f"{arm}: 1 customer only, no variance can be estimated"
    mx, my = float(x.mean()), float(y.mean())
    if mx <= 0:
        return None, (
            f"{arm}: denominator total is {x.sum():.6g}; a ratio needs a positive denominator "
            "(no delivered units / orders / revenue in this arm?)"
        )
    cov = np.cov(y, x, ddof=1)
    syy, sxx, sxy = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    ratio = my / mx
    var_unit = (syy - 2 * ratio * sxy + ratio**2 * sxx) / mx**2  # variance of linearised unit
    var_unit = max(var_unit, 0.0)  # rounding can push an exact 0 slightly negative
    total_x = float(x.sum())
    return {
        "n": n,
        "ratio": ratio,
        "mean_numerator": my,
        "mean_denominator": mx,
        "var_ratio": var_unit / n,
        "sum_numerator": float(y.sum()),
        "sum_denominator": total_x,
        "var_jackknife": _jackknife_variance(y, x),
        "max_customer_share": float(x.max() / total_x),
    }, None


def _jackknife_variance(y: np.ndarray, x: np.ndarray) -> float | None:
    """Leave-one-customer-out jackknife variance of sum(y)/sum(x) (Efron & Stein 1981).

    None when removing one customer leaves no denominator (that customer is the whole arm).
    """
    rest = x.sum() - x
    if np.any(rest <= 0):
        return None
    loo = (y.sum() - y) / rest
    g = y.size
    return float((g - 1) / g * np.sum((loo - loo.mean()) ** 2))


def _small_sample_reason(arms: list[dict], small_sample: str) -> str | None:
    """Why the jackknife-t interval replaces the delta-method normal one (None: it does not)."""
    if small_sample == "normal":
        return None
    if small_sample == "jackknife-t":
        return "requested"
    few = [m["n"] for m in arms if m["n"] < SMALL_SAMPLE_CUSTOMERS]
    if few:
        return f"{min(few)} customers in an arm (< {SMALL_SAMPLE_CUSTOMERS})"
    share = max(m["max_customer_share"] for m in arms)
    if share > DOMINANT_CUSTOMER_SHARE:
        return f"one customer holds {share:.1%} of an arm's denominator (> {DOMINANT_CUSTOMER_SHARE:.0%})"
    return None


def _welch_df(variances: list[float], customers: list[int]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of per-arm variances on G_a − 1 df each."""
    num = sum(variances) ** 2
    den = sum(v**2 / (g - 1) for v, g in zip(variances, customers))
    return float(num / den) if den > 0 else float(min(customers) - 1)


def _check_small_sample(small_sample: Any) -> str | None:
    if small_sample not in ("auto", "jackknife-t", "normal"):
        return f"small_sample must be 'auto', 'jackknife-t' or 'normal', got {small_sample!r}"
    return None


def _z(confidence: float) -> float:
    return float(stats.norm.ppf((1 + confidence) / 2))


def ratio_metric(numerator: Any, denominator: Any, confidence: float = 0.95,
                 small_sample: SmallSample = "auto") -> Estimate:
    """Ratio of means ``R = sum(y) / sum(x)`` over customers with a delta-method interval.

    Formula (Deng et al. 2018, KDD, section 3)::

        var(R) ≈ (1/n) [s_y²/μ_x² − 2 μ_y s_xy/μ_x³ + μ_y² s_x²/μ_x⁴]
        interval = R ± z_{1-α/2} · sqrt(var(R))

    Assumption: customers independent (the randomisation unit); lines within a customer may
    be arbitrarily correlated. Needs enough customers for the central limit theorem on
    (mean y, mean x): a few hundred. No p-value (no natural null for a single ratio).
    Below 300 customers, or when one customer holds more than 5 % of the denominator,
    ``small_sample="auto"`` uses the customer-jackknife variance with t on G−1 degrees of
    freedom instead (method ``delta-jackknife-t``; see the module docstring).
    """
    method = "delta"
    err = check_confidence(confidence) or _check_small_sample(small_sample)
    m, err_m = _arm_moments(numerator, denominator, "sample")
    if err or err_m:
        n = 0 if m is None else m["n"]
        return Estimate.unavailable(method, n, err or err_m)
    details = {k: m[k] for k in ("sum_numerator", "sum_denominator", "mean_denominator")}
    var, quantile, method, extra = _variance_and_quantile([m], [m["var_ratio"]], confidence, small_sample, method)
    details.update(extra)
    if var is None:
        return Estimate(m["ratio"], None, None, method, m["n"], confidence=confidence,
                        error=extra["small_sample_error"], details=details)
    se = math.sqrt(var)
    details["se"] = se
    if se == 0:
        return Estimate(
            m["ratio"], None, None, method, m["n"], confidence=confidence,
            error="zero variance: every customer has the same ratio profile, no interval",
            details=details,
        )
    return Estimate(
        m["ratio"], m["ratio"] - quantile * se, m["ratio"] + quantile * se, method, m["n"],
        confidence=confidence, details=details,
    )


def _variance_and_quantile(arms: list[dict], delta_vars: list[float], confidence: float,
                           small_sample: str, method: str):
    """(variance, quantile, method, details) of the sum of the arms' variances.

    Large samples: the delta-method variances and the normal quantile. Small samples or a
    dominant customer (``_small_sample_reason``): the jackknife variances and Student t on
    G−1 (one arm) or Welch–Satterthwaite (two arms) degrees of freedom. Variance None when
    the jackknife is undefined (one customer holds a whole arm).
    """
    reason = _small_sample_reason(arms, small_sample)
    if reason is None:
        return sum(delta_vars), _z(confidence), method, {"small_sample": None}
    method = f"{method}-jackknife-t"
    jk = [m["var_jackknife"] for m in arms]
    if any(v is None for v in jk):
        return None, None, method, {"small_sample": reason, "small_sample_error":
                                    "one customer holds the whole denominator of an arm: no jackknife variance"}
    customers = [m["n"] for m in arms]
    df = float(customers[0] - 1) if len(arms) == 1 else _welch_df(jk, customers)
    return sum(jk), float(stats.t.ppf((1 + confidence) / 2, df)), method, {
        "small_sample": reason, "df": df, "var_delta": sum(delta_vars)}


def _two_arm_moments(num_t, den_t, num_c, den_c, confidence, method, small_sample="auto"):
    err = check_confidence(confidence) or _check_small_sample(small_sample)
    mt, err_t = _arm_moments(num_t, den_t, "treatment")
    mc, err_c = _arm_moments(num_c, den_c, "control")
    n = (0 if mt is None else mt["n"]) + (0 if mc is None else mc["n"])
    if err or err_t or err_c:
        return None, None, Estimate.unavailable(method, n, err or err_t or err_c)
    return mt, mc, None


def _two_arm_details(mt: dict, mc: dict) -> dict[str, Any]:
    return {
        "ratio_treatment": mt["ratio"],
        "ratio_control": mc["ratio"],
        "n_treatment": mt["n"],
        "n_control": mc["n"],
        "sum_numerator_treatment": mt["sum_numerator"],
        "sum_denominator_treatment": mt["sum_denominator"],
        "sum_numerator_control": mc["sum_numerator"],
        "sum_denominator_control": mc["sum_denominator"],
    }


def ratio_difference(
    numerator_treatment: Any,
    denominator_treatment: Any,
    numerator_control: Any,
    denominator_control: Any,
    confidence: float = 0.95,
    small_sample: SmallSample = "auto",
) -> Estimate:
    """Difference of two ratio metrics ``R_t - R_c``, customers randomised.

    Formula: arms independent, so ``var(R_t - R_c) = var(R_t) + var(R_c)`` with each variance
    from the delta method (see :func:`ratio_metric`)::

        interval = (R_t - R_c) ± z_{1-α/2} · sqrt(var(R_t) + var(R_c))
        p-value  = 2 · Φ(−|R_t − R_c| / se)

    Inputs are per-customer sums (one entry per customer, numerator and denominator
    aligned). Deng et al. 2018, KDD. Assumption: customers independent, a few hundred per
    arm. Null value 0. Below 300 customers in an arm, or when one customer holds more than
    5 % of an arm's denominator, ``small_sample="auto"`` uses the customer-jackknife variances
    with Welch–Satterthwaite t (method ``delta-jackknife-t``, module docstring).
    """
    method = "delta"
    mt, mc, bad = _two_arm_moments(
        numerator_treatment, denominator_treatment, numerator_control, denominator_control,
        confidence, method, small_sample,
    )
    if bad is not None:
        return bad
    n = mt["n"] + mc["n"]
    details = _two_arm_details(mt, mc)
    diff = mt["ratio"] - mc["ratio"]
    var, quantile, method, extra = _variance_and_quantile(
        [mt, mc], [mt["var_ratio"], mc["var_ratio"]], confidence, small_sample, method)
    details.update(extra)
    if var is None:
        return Estimate(diff, None, None, method, n, confidence=confidence,
                        error=extra["small_sample_error"], details=details)
    se = math.sqrt(var)
    details["se"] = se
    if se == 0:
        return Estimate(
            diff, None, None, method, n, confidence=confidence,
            error="zero variance in both arms: no interval can be computed",
            details=details,
        )
    stat = diff / se
    details["z"] = stat
    return Estimate(
        diff, diff - quantile * se, diff + quantile * se, method, n,
        p_value=_two_sided_p(stat, extra.get("df")), null_value=0.0,
        confidence=confidence, details=details,
    )


def _two_sided_p(stat: float, df: float | None) -> float:
    return float(2 * (stats.norm.sf(abs(stat)) if df is None else stats.t.sf(abs(stat), df)))


def ratio_relative_difference(
    numerator_treatment: Any,
    denominator_treatment: Any,
    numerator_control: Any,
    denominator_control: Any,
    confidence: float = 0.95,
    small_sample: SmallSample = "auto",
) -> Estimate:
    """Relative difference of two ratio metrics ``R_t / R_c - 1``, delta method on the log scale.

    Formula::

        se_log   = sqrt(var(R_t)/R_t² + var(R_c)/R_c²)
        interval = exp(log(R_t/R_c) ± z_{1-α/2} · se_log) − 1
        p-value  = 2 · Φ(−|log(R_t/R_c)| / se_log)

    with var(R) from :func:`ratio_metric`. Same construction as tea-tasting's
    ``RatioOfMeans(..., use_t=False)`` relative effect; never the absolute interval divided by
    ``R_c``. Deng et al. 2018, KDD. Assumption: as :func:`ratio_difference`, and both ratios
    strictly positive. The p-value is the log-scale test so it agrees with the interval.
    Null value 0. Small samples (as :func:`ratio_difference`): jackknife variances of R_t and
    R_c on the log scale, Welch–Satterthwaite t (method ``delta-log-jackknife-t``).
    """
    method = "delta-log"
    mt, mc, bad = _two_arm_moments(
        numerator_treatment, denominator_treatment, numerator_control, denominator_control,
        confidence, method, small_sample,
    )
    if bad is not None:
        return bad
    n = mt["n"] + mc["n"]
    details = _two_arm_details(mt, mc)
    rt, rc = mt["ratio"], mc["ratio"]
    if rc <= 0:
        return Estimate.unavailable(
            method, n, f"control ratio is {rc:.6g}: a relative difference needs a positive "
            "control ratio", **details,
        )
    lift = rt / rc - 1.0
    if rt <= 0:
        return Estimate(
            lift, None, None, method, n, confidence=confidence,
            error=f"treatment ratio is {rt:.6g}: no log-scale interval; report the absolute "
            "difference instead",
            details=details,
        )
    # the log-scale variance of each arm is var(R_a) / R_a²: scale both arms' moments before summing
    scaled = [dict(m, var_jackknife=None if m["var_jackknife"] is None else m["var_jackknife"] / m["ratio"] ** 2)
              for m in (mt, mc)]
    var, quantile, method, extra = _variance_and_quantile(
        scaled, [mt["var_ratio"] / rt**2, mc["var_ratio"] / rc**2], confidence, small_sample, method)
    details.update(extra)
    if var is None:
        return Estimate(lift, None, None, method, n, confidence=confidence,
                        error=extra["small_sample_error"], details=details)
    se_log = math.sqrt(var)
    details["se_log_ratio"] = se_log
    if se_log == 0:
        return Estimate(
            lift, None, None, method, n, confidence=confidence,
            error="zero variance in both arms: no interval can be computed",
            details=details,
        )
    log_ratio = math.log(rt / rc)
    stat = log_ratio / se_log
    details["z_log"] = stat
    return Estimate(
        lift, math.exp(log_ratio - quantile * se_log) - 1.0, math.exp(log_ratio + quantile * se_log) - 1.0,
        method, n, p_value=_two_sided_p(stat, extra.get("df")), null_value=0.0,
        confidence=confidence, details=details,
    )


def naive_line_level_proportion_difference(
    numerator_treatment: Any,
    denominator_treatment: Any,
    numerator_control: Any,
    denominator_control: Any,
    confidence: float = 0.95,
) -> Estimate:
    """WRONG ON PURPOSE: line-level binomial interval that ignores clustering by customer.

    Adds the per-customer sums up to line totals and runs :func:`proportion_difference`
    (Newcombe) as if every line were an independent Bernoulli trial. The point estimate is
    the same as :func:`ratio_difference`; the interval is too narrow whenever customers
    differ in their return propensity, by roughly the square root of the design effect
    ``1 + (m − 1)·ICC`` (Kish 1965; m = lines per customer, ICC = intra-customer
    correlation). Kept only so the calibration tests and the methods page can show the
    under-coverage; method ``naive-binomial-lines``.

    Numerators must be counts between 0 and the denominator (returned units out of
    delivered units); ``n`` of the result counts lines, the unit this method wrongly
    treats as independent.
    """
    method = "naive-binomial-lines"
    arrays = []
    for values, name in (
        (numerator_treatment, "treatment numerator"),
        (denominator_treatment, "treatment denominator"),
        (numerator_control, "control numerator"),
        (denominator_control, "control denominator"),
    ):
        arr, err = as_float_array(values, name)
        if err:
            return Estimate.unavailable(method, 0, err)
        arrays.append(arr)
    st, nt, sc, nc = (float(a.sum()) for a in arrays)
    res = proportion_difference(st, nt, sc, nc, confidence=confidence)
    details = dict(res.details)
    details["customers_treatment"] = int(arrays[0].size)
    details["customers_control"] = int(arrays[2].size)
    details["warning"] = (
        "treats lines as independent; under-covers when customers are randomised"
    )
    return Estimate(
        res.estimate, res.ci_low, res.ci_high, method, res.n, p_value=res.p_value,
        null_value=0.0, confidence=confidence, error=res.error, details=details,
    )
