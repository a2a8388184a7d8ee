"""Rates where every unit is an independent success/failure: return rate per order or per customer.

Use these functions only when the unit counted in ``n`` is the unit that was randomised (one
order per customer, or customers as the unit). When customers are randomised and the rate is
counted per line or per order, lines of the same customer are correlated: use
:mod:`playbook.stats.ratio` instead (the binomial interval here would be too narrow).

Functions
---------
proportion_interval       one rate, Wilson score interval.
proportion_difference     p_t - p_c, Newcombe hybrid score interval (Newcombe 1998, method 10).
proportion_relative_lift  p_t / p_c - 1, delta method on log(p_t / p_c) (or Fieller).

Every function returns an :class:`~playbook.stats.results.Estimate` and never raises on
degenerate data (empty arm, zero successes in the control...): the result carries ``error``.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    score_test_proportions_2indep,
    test_proportions_2indep,
)

from playbook.stats.results import Estimate

__all__ = [
    "proportion_interval",
    "proportion_difference",
    "proportion_relative_lift",
]


def _check_confidence(confidence: float) -> str | None:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        return f"confidence must lie strictly between 0 and 1, got {confidence!r}"
    return None


def _check_count(successes: float, n: float, arm: str) -> str | None:
    """Return an error message when (successes, n) is not a valid binomial count."""
    try:
        s, m = float(successes), float(n)
    except (TypeError, ValueError):
        return f"{arm}: successes and n must be numbers, got {successes!r} and {n!r}"
    if not (math.isfinite(s) and math.isfinite(m)):
        return f"{arm}: successes and n must be finite, got {successes!r} and {n!r}"
    if m <= 0:
        return f"{arm}: no units (n={n!r}); a rate needs at least one unit"
    if s < 0 or s > m:
        return f"{arm}: successes={successes!r} must lie between 0 and n={n!r}"
    return None


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """One rate ``successes / n`` with its Wilson score interval.

    Formula (Wilson 1927)::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)

    Assumption: ``n`` independent Bernoulli trials with a common probability.
    Computed by ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.
    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0 and 1
    (Newcombe 1998, Stat Med 17:857, "Two-sided confidence intervals for the single
    proportion").
    """
    method = "wilson"
    err = _check_confidence(confidence) or _check_count(successes, n, "rate")
    if err:
        return Estimate.unavailable(method, int(n) if _is_number(n) else 0, err)
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return Estimate(
        estimate=successes / n,
        ci_low=float(low),
        ci_high=float(high),
        method=method,
        n=int(n),
        confidence=confidence,
        details={"successes": successes},
    )


def _is_number(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _arm_details(st: float, nt: float, sc: float, nc: float) -> dict:
    return {
        "successes_treatment": st,
        "n_treatment": nt,
        "rate_treatment": st / nt,
        "successes_control": sc,
        "n_control": nc,
        "rate_control": sc / nc,
    }


def _validate_two_arms(st, nt, sc, nc, confidence) -> tuple[str | None, int]:
    n = int(nt) + int(nc) if _is_number(nt) and _is_number(nc) else 0
    err = (
        _check_confidence(confidence)
        or _check_count(st, nt, "treatment")
        or _check_count(sc, nc, "control")
    )
    return err, n


def proportion_difference(
    successes_treatment: int,
    n_treatment: int,
    successes_control: int,
    n_control: int,
    confidence: float = 0.95,
) -> Estimate:
    """Difference of two independent rates ``p_t - p_c`` with Newcombe's hybrid score interval.

    Formula (Newcombe 1998, Stat Med 17:873, method 10): with Wilson intervals
    ``[l_t, u_t]`` and ``[l_c, u_c]`` of each rate and ``d = p_t - p_c``::

        low  = d - sqrt((p_t - l_t)² + (u_c - p_c)²)
        high = d + sqrt((u_t - p_t)² + (p_c - l_c)²)

    computed by ``statsmodels.stats.proportion.confint_proportions_2indep(compare="diff",
    method="newcomb")``. It behaves well for small counts and rates near 0 (Fagerland,
    Lydersen & Laake 2015 recommend it), where the Wald interval under-covers.

    p-value: the Newcombe interval has no matching test, so the p-value is the score test of
    ``p_t = p_c`` (``score_test_proportions_2indep(compare="diff", correction=False)``), i.e.
    the classical pooled two-proportion z-test, identical to Pearson's chi-square test without
    continuity correction. In rare borderline cases the p-value and the interval disagree on
    the 5% side; the playbook decides on the interval.

    Assumption: two independent binomial samples; every unit counted in ``n`` is a randomised
    unit (or independent of the others). Null value 0.
    """
    method = "newcombe"
    err, n = _validate_two_arms(
        successes_treatment, n_treatment, successes_control, n_control, confidence
    )
    if err:
        return Estimate.unavailable(method, n, err)
    st, nt, sc, nc = successes_treatment, n_treatment, successes_control, n_control
    low, high = confint_proportions_2indep(
        st, nt, sc, nc, method="newcomb", compare="diff", alpha=1 - confidence
    )
    details = _arm_details(st, nt, sc, nc)
    details["p_value_method"] = "pooled score z-test (Pearson chi-square, no correction)"
    p_value = None
    if 0 < st + sc < nt + nc:
        res = score_test_proportions_2indep(
            st, nt, sc, nc, value=0, compare="diff", correction=False, return_results=True
        )
        p_value = float(res.pvalue)
        details["z"] = float(res.statistic)
    else:
        details["p_value_note"] = (
            "no p-value: every unit has the same outcome in both arms, the test has no variance"
        )
    return Estimate(
        estimate=st / nt - sc / nc,
        ci_low=float(low),
        ci_high=float(high),
        method=method,
        n=n,
        p_value=p_value,
        null_value=0.0,
        confidence=confidence,
        details=details,
    )


def _fieller_ratio_interval(
    mean_t: float, var_t: float, mean_c: float, var_c: float, z: float
) -> tuple[float, float] | None:
    """Fieller (1954) interval for ``mean_t / mean_c`` of two independent estimates.

    Solves ``(m_t - r m_c)² = z² (v_t + r² v_c)`` for r, where v are the variances of the
    estimated means. Returns None when the interval is unbounded (m_c not significantly
    different from 0: ``m_c² <= z² v_c``). Written by hand because statsmodels has no
    Fieller interval.
    """
    a = mean_c**2 - z**2 * var_c
    if a <= 0:
        return None
    b = -2.0 * mean_t * mean_c
    c = mean_t**2 - z**2 * var_t
    disc = b * b - 4 * a * c
    if disc < 0:  # cannot happen when a > 0 and var_t >= 0, guard against rounding
        disc = 0.0
    root = math.sqrt(disc)
    return ((-b - root) / (2 * a), (-b + root) / (2 * a))


def proportion_relative_lift(
    successes_treatment: int,
    n_treatment: int,
    successes_control: int,
    n_control: int,
    confidence: float = 0.95,
    method: Literal["delta-log", "fieller"] = "delta-log",
) -> Estimate:
    """Relative lift ``p_t / p_c - 1`` with its own interval (never the absolute one / p_c).

    ``method="delta-log"`` (default): delta method on the log of the risk ratio (Katz log
    interval)::

        se(log(p_t/p_c)) = sqrt((1-p_t)/(n_t p_t) + (1-p_c)/(n_c p_c))
        interval = exp(log(p_t/p_c) ± z·se) - 1

    computed by ``statsmodels.stats.proportion.confint_proportions_2indep(compare="ratio",
    method="log")``. The p-value is the matching Wald test on the log scale
    (``test_proportions_2indep(compare="ratio", method="log")``), so interval and p-value
    always agree. The interval is asymmetric around the estimate and never goes below -100%.

    ``method="fieller"``: Fieller's theorem on ``p_t / p_c`` with binomial variances
    ``p(1-p)/n``, solved by hand (statsmodels has no Fieller interval); p-value from the
    same log-scale Wald test.

    Assumption: two independent binomial samples; enough successes in both arms for the
    normal approximation on the log scale (a few dozen). Null value 0 (no lift).
    Undefined when the control rate is 0; no delta-log interval when the treatment has 0
    successes (the estimate is then -100% and ``error`` says why).
    """
    name = method
    if method not in ("delta-log", "fieller"):
        return Estimate.unavailable(
            str(method), 0, f"unknown method {method!r}; use 'delta-log' or 'fieller'"
        )
    err, n = _validate_two_arms(
        successes_treatment, n_treatment, successes_control, n_control, confidence
    )
    if err:
        return Estimate.unavailable(name, n, err)
    st, nt, sc, nc = successes_treatment, n_treatment, successes_control, n_control
    details = _arm_details(st, nt, sc, nc)
    if sc == 0:
        return Estimate.unavailable(
            name, n, "control rate is 0: a relative lift is undefined", **details
        )
    pt, pc = st / nt, sc / nc
    lift = pt / pc - 1.0
    if st == 0:
        return Estimate(
            lift, None, None, name, n, confidence=confidence,
            error="treatment has 0 successes: no interval on the log scale; "
            "report the absolute difference instead",
            details=details,
        )
    alpha = 1 - confidence
    stat, p_value = test_proportions_2indep(
        st, nt, sc, nc, compare="ratio", method="log", return_results=False
    )
    details["z_log"] = float(stat)
    if method == "delta-log":
        low, high = confint_proportions_2indep(
            st, nt, sc, nc, compare="ratio", method="log", alpha=alpha
        )
        details["se_log_ratio"] = math.sqrt(1 / st - 1 / nt + 1 / sc - 1 / nc)
    else:
        z = float(stats.norm.isf(alpha / 2))
        bounds = _fieller_ratio_interval(pt, pt * (1 - pt) / nt, pc, pc * (1 - pc) / nc, z)
        if bounds is None:
            return Estimate(
                lift, None, None, name, n, p_value=float(p_value), confidence=confidence,
                error="Fieller interval is unbounded: the control rate is not "
                "distinguishable from 0 at this confidence",
                details=details,
            )
        low, high = bounds
    return Estimate(
        estimate=lift,
        ci_low=float(np.asarray(low)) - 1.0,
        ci_high=float(np.asarray(high)) - 1.0,
        method=name,
        n=n,
        p_value=float(p_value),
        null_value=0.0,
        confidence=confidence,
        details=details,
    )
