"""Indirectly standardised funnel: each slice against its *own* baseline, with an exact test.

The weekly question is "what got worse", not "what is structurally high": shoes always have
more size returns than accessories, and a funnel against the shop-wide rate would flag them
every week (or, once adjusted for that overdispersion, flag nothing). Here each slice has O
returned units out of n units in the recent window and B out of m units in the baseline.

The test (one-sided, "did this slice get worse"): under "no change" the slice's rate is the same
in both periods, and conditional on the returns of both periods, N = O + B, the window's count is
binomial, O | N ~ Binomial(N, pi) with pi = n / (n + m): the conditional test of two Poisson rates
(Przyborowski & Wilenski 1940, Biometrika 31:313; Lehmann & Romano 2005, section 4.5). It needs no
continuity floor (B = 0 is fine) and no normal approximation: at 0.5-2 % per reason and a few
thousand units the normal z had a tail many times too heavy (issue 7). Exact for Poisson counts;
for units returned at most once it is conservative by the factor (1 - rate) on the variance,
negligible at the rates of one reason.

Clustering and overdispersion enter as a divisor d >= 1 of the counts (quasi-likelihood; Rao &
Scott 1992, Biometrics 48:577): effective counts O / d and N / d, and the tail of the continuous
extension of the binomial, P(X >= x) = I_pi(x, N - x + 1) (regularised incomplete beta), equal to
the binomial tail for integer counts. Per row d = design_effect x phi: ``design_effect`` is an
optional column (customer-level design effect, sum of squared returned units per customer over
returned units; absent -> 1), phi the between-slice overdispersion of the call, estimated as
Spiegelhalter's winsorised mean of squared standardised residuals (2005, section 3.4) over the
slices with at least one return in either period, when there are at least ``min_slices_for_phi``
(10), and applied when k phi exceeds the chi-square (k - 1 df) 95 % quantile. Without
overdispersion this winsorised phi estimates E[min(Z^2, z_0.9^2)] = 0.68, not 1: it is applied
only beyond about 1.5 times the binomial spread and then under-corrects (kept as published).

Benjamini-Hochberg q-values over every row with a p-value (statsmodels ``multipletests``);
flagged when q < fdr and O > E. Funnel-plot limits on the O/E scale invert the same conditional
tail at the slice's own N: a slice lies above ``upper_95`` exactly when its one-sided p is below
2.5 % (above ``upper_998``: below 0.1 %), so the picture keeps the two-sided 95 % / 99.8 %
convention and agrees with the test.

Written by hand: statsmodels has no funnel plot for standardised ratios; the tail is checked
against ``scipy.stats.binom`` / ``binomtest`` in the tests.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

NO_BASELINE = "no baseline events or units: no expected rate for this slice"
NO_UNITS = "no units in the recent window"


def winsorized_phi(z: np.ndarray, winsor: float = 0.1) -> float:
    """Spiegelhalter's multiplicative overdispersion: mean of squared winsorized z-scores."""
    z = np.asarray(z, dtype=float)
    z = z[np.isfinite(z)]
    if z.size == 0:
        return float("nan")
    lo, hi = np.quantile(z, [winsor, 1 - winsor])
    return float(np.mean(np.clip(z, lo, hi) ** 2))


def binomial_upper_tail(x: np.ndarray, size: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """P(X >= x) for X ~ Binomial(size, prob), continued to real x and size: I_prob(x, size - x + 1).

    Equal to ``scipy.stats.binom.sf(x - 1, size, prob)`` for integers; 1 at x <= 0, 0 above size.
    """
    x, size, prob = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (x, size, prob)))
    b = size - x + 1
    with np.errstate(invalid="ignore"):
        tail = special.betainc(np.where(x > 0, x, 1.0), np.where(b > 0, b, 1.0), prob)
    return np.where(x <= 0, 1.0, np.where(b <= 0, 0.0, tail))


def binomial_lower_tail(x: np.ndarray, size: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """P(X <= x), continued to real x and size: I_{1-prob}(size - x, x + 1) (1 at x >= size, 0 below 0)."""
    return binomial_upper_tail(np.asarray(size, dtype=float) - x, size, 1 - np.asarray(prob, dtype=float))


def excess_p_value(
    observed: np.ndarray | float,
    units: np.ndarray | float,
    baseline_events: np.ndarray | float,
    baseline_units: np.ndarray | float,
    divisor: np.ndarray | float = 1.0,
) -> np.ndarray:
    """One-sided p-value that a slice's rate rose from the baseline to the window (exact, conditional).

    Under "no change", O | O + B ~ Binomial(O + B, n / (n + m)); with a divisor d (design effect x
    overdispersion) the effective counts O / d and (O + B) / d enter the continuous binomial tail.
    p = 1 when O + B = 0 (no return in either period: nothing can be concluded). NaN where the
    test is undefined: no units in the window (n <= 0) or in the baseline (m <= 0), a divisor
    that is not positive, or any input NaN. Arrays broadcast; a 0-d array for scalars.
    """
    o, n, b, m, d = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (observed, units, baseline_events, baseline_units, divisor)))
    ok = (n > 0) & (m > 0) & (d > 0) & np.isfinite(o + n + b + m + d)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.where(ok, n / (n + m), 0.5)
        dd = np.where(ok, d, 1.0)
        p = binomial_upper_tail(np.where(ok, o, 0.0) / dd, np.where(ok, o + b, 0.0) / dd, pi)
    return np.where(ok, p, np.nan)


def _invert_tail(tail, target: float, lo: np.ndarray, hi: np.ndarray, decreasing: bool) -> np.ndarray:
    """Vectorised root of tail(x, index) = target on the bracket [lo, hi] (tail monotone in x).

    Regula falsi with the Illinois modification (Dowell & Jarratt 1971): the bracket is kept and
    the convergence is superlinear; only the elements not yet converged are evaluated again.
    """
    sign = 1.0 if decreasing else -1.0
    a, b = lo.astype(float).copy(), hi.astype(float).copy()
    every = np.arange(a.size)
    fa, fb = sign * (tail(a, every) - target), sign * (tail(b, every) - target)  # fa >= 0 >= fb
    side = np.zeros_like(a)
    active = every
    for _ in range(200):
        if active.size == 0:
            break
        aa, bb, ffa, ffb = a[active], b[active], fa[active], fb[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(ffa != ffb, (aa * ffb - bb * ffa) / (ffb - ffa), (aa + bb) / 2)
        x = np.where((x > aa) & (x < bb), x, (aa + bb) / 2)
        fx = sign * (tail(x, active) - target)
        right = fx > 0  # the root lies above x
        a[active], fa[active] = np.where(right, x, aa), np.where(right, fx, ffa)
        b[active], fb[active] = np.where(right, bb, x), np.where(right, ffb, fx)
        # Illinois: halve the value of the end kept twice in a row, so that it moves too
        fb[active] = np.where(right & (side[active] > 0), fb[active] / 2, fb[active])
        fa[active] = np.where(~right & (side[active] < 0), fa[active] / 2, fa[active])
        side[active] = np.where(right, 1.0, -1.0)
        done = (np.abs(fx) <= 1e-10 * target) | (b[active] - a[active] <= 1e-10 * (1 + np.abs(x)))
        a[active[done]] = b[active[done]] = x[done]
        active = active[~done]
    return (a + b) / 2


def conditional_limits(
    total: np.ndarray, prob: np.ndarray, divisor: np.ndarray, alpha: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Window counts (lower, upper) outside which the one-sided conditional test has p < alpha.

    total = O + B, prob = n / (n + m): the upper limit u solves P(X >= u / d) = alpha and the lower
    l solves P(X <= l / d) = alpha on the continuous tail with N / d trials, so O > u iff the
    upper-tail p < alpha. The upper limit can exceed O + B: the slice cannot be flagged at its size.
    """
    size, prob, divisor = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=float))
                                                 for a in (total, prob, divisor)))
    size = size / divisor

    def upper(x: np.ndarray, i: np.ndarray | slice = slice(None)) -> np.ndarray:
        return binomial_upper_tail(x, size[i], prob[i])

    def lower(x: np.ndarray, i: np.ndarray | slice = slice(None)) -> np.ndarray:
        return binomial_lower_tail(x, size[i], prob[i])

    # start from a bracket around the normal approximation (the tails are flat far from the root),
    # widened to the whole range where it does not hold the root
    mean, sd = size * prob, np.sqrt(size * prob * (1 - prob))
    reach = 1.5 * stats.norm.isf(alpha) * sd + 2 * np.log(1 / alpha) + 1
    lo_u, hi_u = np.maximum(mean - 1, 0), np.minimum(mean + reach, size + 1)
    ok = (upper(lo_u) >= alpha) & (upper(hi_u) <= alpha)
    up = _invert_tail(upper, alpha, np.where(ok, lo_u, 0), np.where(ok, hi_u, size + 1), True)
    lo_l, hi_l = np.maximum(mean - reach, -1), np.minimum(mean + 1, size)
    ok = (lower(lo_l) <= alpha) & (lower(hi_l) >= alpha)
    low = _invert_tail(lower, alpha, np.where(ok, lo_l, -1), np.where(ok, hi_l, size), False)
    return np.maximum(low, 0) * divisor, up * divisor


def standardized_residuals(o, n, b, m, design_effect) -> np.ndarray:
    """(O - N pi) / sqrt(N pi (1 - pi) de): the conditional test's score residual (mean 0, variance 1)."""
    total = o + b
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = n / (n + m)
        z = (o - total * pi) / np.sqrt(total * pi * (1 - pi) * design_effect)
    return np.where(total > 0, z, 0.0)


def _design_effect(out: pd.DataFrame, column: str | None) -> np.ndarray:
    if not column or column not in out:
        return np.ones(len(out))
    de = out[column].to_numpy(float)
    # below 1 (fractional quantities) or undefined (no return): clustering never makes units more informative
    return np.where(np.isfinite(de) & (de > 1), de, 1.0)


def _overdispersion(z: np.ndarray, informative: np.ndarray, winsor: float, adjust: str,
                    min_slices: int) -> tuple[float, bool]:
    k = int(informative.sum())
    # winsorizing at 10 %/90 % needs enough slices: with a handful, phi is driven by the very outlier
    # we look for, and the adjustment would hide it
    phi = winsorized_phi(z[informative], winsor) if k >= max(min_slices, 3) else float("nan")
    threshold = stats.chi2.ppf(0.95, k - 1) / k if k >= 3 else np.inf
    applied = adjust == "always" or (adjust == "auto" and np.isfinite(phi) and phi > max(threshold, 1.0))
    return phi, bool(applied and np.isfinite(phi))


def standardized_funnel(
    df: pd.DataFrame,
    *,
    events: str = "events",
    units: str = "units",
    baseline_events: str = "baseline_events",
    baseline_units: str = "baseline_units",
    cost_per_event: str | None = "cost_per_event",
    design_effect: str | None = "design_effect",
    levels: Sequence[float] = (0.95, 0.998),
    fdr: float = 0.05,
    winsor: float = 0.1,
    adjust: str = "auto",
    min_slices_for_phi: int = 10,
) -> pd.DataFrame:
    """One row per slice: observed vs expected from its own baseline, exact one-sided p, q, excess cost.

    Returns the input columns plus ``rate``, ``baseline_rate``, ``expected_events`` (E = n B / m;
    half a baseline return, 0.5 n / m, when B = 0, for the ratio and the cost only: the test
    needs no floor), ``ratio`` (O/E), ``excess_events`` (O - E, signed), ``z`` (score residual
    (O - N pi) / sqrt(N pi (1 - pi)), N = O + B, pi = n / (n + m)), ``z_adjusted`` (z / sqrt(d),
    for sorting and display), ``divisor`` (d = design effect x applied phi), ``p_value`` (exact
    one-sided conditional test, ``excess_p_value``), ``q_value`` (Benjamini-Hochberg),
    ``lower_95``/``upper_95``/``lower_998``/``upper_998`` (O/E limits from ``conditional_limits``
    at the slice's N: one-sided 2.5 % and 0.1 % in each direction), ``flagged`` (q < fdr and
    O > E), ``excess_cost`` (max(O - E, 0) x cost per event), ``rank`` (flagged by excess cost)
    and ``note`` for rows without statistics. Run facts in ``attrs``: ``phi``, ``phi_applied``,
    ``n_slices``, ``fdr``.

    Assumes returns independent between the clusters the design effect counts (units, or
    customers) given the slice's rate, and the baseline weeks representing the slice's normal.
    """
    out = df.reset_index(drop=True).copy()
    o = out[events].to_numpy(float)
    n = out[units].to_numpy(float)
    bo = out[baseline_events].to_numpy(float)
    m = out[baseline_units].to_numpy(float)
    de = _design_effect(out, design_effect)
    note = np.array([""] * len(out), dtype=object)
    note[~(m > 0)] = NO_BASELINE
    note[~(n > 0)] = NO_UNITS
    valid = (n > 0) & (m > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_base = np.where(m > 0, bo / m, np.nan)
        out["rate"] = np.where(n > 0, o / n, np.nan)
    out["baseline_rate"] = p_base
    # descriptive expected count; a baseline without returns counts half a return so that O/E stays finite
    expected = np.where(valid, n * np.where(bo > 0, p_base, 0.5 / np.where(m > 0, m, 1)), np.nan)
    out["expected_events"] = expected
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(valid, o / expected, np.nan)
    out["excess_events"] = np.where(valid, o - expected, np.nan)
    z = np.where(valid, standardized_residuals(o, n, bo, m, 1.0), np.nan)
    out["z"] = z
    # rows with no return in either period carry no information on the spread between slices; their
    # residual of 0 would pull phi down and hide real overdispersion (seen on the Online Retail data)
    informative = valid & ((o + bo) > 0)
    phi, applied = _overdispersion(z / np.sqrt(de), informative, winsor, adjust, min_slices_for_phi)
    divisor = de * (phi if applied else 1.0)
    out["z_adjusted"] = z / np.sqrt(divisor)
    out["divisor"] = np.where(valid, divisor, np.nan)
    pv = excess_p_value(o, n, bo, m, divisor)
    out["p_value"] = pv
    q = np.full(len(out), np.nan)
    ok = np.isfinite(pv)
    if ok.any():
        q[ok] = multipletests(pv[ok], method="fdr_bh")[1]
    out["q_value"] = q
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.where(valid, n / (n + m), 0.5)
    total = np.where(valid, o + bo, 0.0)
    for level in levels:
        tag = f"{level * 100:g}".replace(".", "")
        low, up = conditional_limits(total, pi, divisor, (1 - level) / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"upper_{tag}"] = np.where(valid, up / expected, np.nan)
            out[f"lower_{tag}"] = np.where(valid, low / expected, np.nan)
    out["flagged"] = (q < fdr) & (o > np.nan_to_num(expected, nan=np.inf))
    cost = out[cost_per_event].to_numpy(float) if cost_per_event and cost_per_event in out else np.ones(len(out))
    out["excess_cost"] = np.where(valid, np.maximum(o - expected, 0) * np.nan_to_num(cost), np.nan)
    out["rank"] = out["excess_cost"].where(out["flagged"]).rank(ascending=False, method="first").astype("Int64")
    out["note"] = note
    out.attrs.update(phi=phi, phi_applied=applied, n_slices=int(ok.sum()), fdr=fdr)
    return out.sort_values(["rank", "z_adjusted"], ascending=[True, False], na_position="last").reset_index(drop=True)

