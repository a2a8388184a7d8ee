"""The discrete Benjamini-Hochberg procedure: FDR control that knows each test's p-value can take few values.

Step 2 tests every slice x reason with an exact conditional test (``standardized.excess_p_value``). Given the
returns of both periods, N = O + B, a test's p-value can only take the N + 1 values p(0) >= ... >= p(N), and a
slice with few returns can never reach a small p: p(N) = pi^N with pi = n / (n + m) (a slice with 4 returns and
a baseline twice the window never goes below 1/81). Benjamini-Hochberg counts such a test as if it could, so in a
small shop, where most slices x reasons have few returns, it demands from the one that matters a p-value the
others never compete for.

The discrete Benjamini-Hochberg step-down procedure [HSD] of Döhler, Durand & Roquain (2018, "New FDR bounds for
discrete and heterogeneous tests", Electronic Journal of Statistics 12:1867-1900, section 3; R package
DiscreteFDR, ``DBH(direction = "sd")``) replaces BH's m t by the sum over the tests of F_i(t) / (1 - F_i(t)),
where F_i(t) = P(p_i <= t) under the test's null is the largest value its p can take at or below t (0 when it
cannot get that low; for an exact test P(p_i <= p_i(k)) = p_i(k)). With p_(1) <= ... <= p_(m) sorted, the
adjusted p-value of the j-th smallest is

    q_(j) = max over k <= j of min(1, sum_i F_i(p_(k)) / (1 - F_i(p_(k))) / k),

and a test is rejected when q < alpha. The FDR is controlled at alpha for independent tests (their Theorem 3.1;
BH's own positive-dependence argument does not carry over, and step 2's overlapping slices are positively
dependent: the calibration is measured on simulated shops, docs/statistics.md "Small shops").

Written by hand: no Python library implements it; the tests check it against a brute-force reading of the
definition over scipy's binomial supports.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: a test with more returns than this is counted as continuous, F(t) = t (Benjamini-Hochberg's own count of it):
#: its N + 1 attainable values are so dense that the discreteness gains nothing, while listing them would cost
#: memory and time in proportion to the shop (a large shop's slices hold hundreds of thousands of returns).
#: Conservative: for a valid p-value F(t) = P(p <= t) <= t.
CONTINUOUS_ABOVE = 20_000


def attainable(p_of_count, total: float) -> np.ndarray | None:
    """Every p-value a conditional test can return given its total N: ``p_of_count(k)`` at k = 0..N (vectorised
    over k), sorted increasingly; None above :data:`CONTINUOUS_ABOVE` (counted as continuous). N = 0: only 1."""
    n = int(round(float(total)))
    if n > CONTINUOUS_ABOVE:
        return None
    k = np.arange(n + 1, dtype=float)
    return np.sort(np.unique(np.concatenate([np.asarray(p_of_count(k), dtype=float), [1.0]])))


def attainable_p_values(p_of_count, totals: np.ndarray) -> list[np.ndarray | None]:
    """Per test i, :func:`attainable` of ``p_of_count(i, k)`` at its total N."""
    return [attainable(lambda k, i=i: p_of_count(i, k), total) for i, total in enumerate(np.asarray(totals))]


def _cdf_at(supports: Sequence[np.ndarray | None], t: np.ndarray) -> np.ndarray:
    """F_i(t) for every test i (rows) and threshold t (columns): the largest attainable p at or below t (t itself
    for a test counted as continuous)."""
    t = np.asarray(t, dtype=float)
    rows = []
    for s in supports:
        if s is None:
            rows.append(t)
            continue
        j = np.searchsorted(s, t * (1 + 1e-12), side="right")  # a p equal to t up to rounding counts as reached
        rows.append(np.where(j > 0, s[np.maximum(j - 1, 0)], 0.0))
    return np.vstack(rows) if rows else np.zeros((0, t.size))


def discrete_bh_adjusted(p_values: np.ndarray, supports: Sequence[np.ndarray]) -> np.ndarray:
    """Adjusted p-values of the discrete Benjamini-Hochberg step-down procedure [HSD] (module docstring).

    ``p_values[i]`` is test i's observed p-value and ``supports[i]`` the sorted values its p can take under
    its null (:func:`attainable_p_values`). NaN p-values are left out (and returned NaN). Reject at level
    alpha where the result is below alpha.
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return q
    if len(supports) != p.size:
        raise ValueError(f"{p.size} p-values but {len(supports)} supports: one support per test")
    order = ok[np.argsort(p[ok], kind="stable")]
    f = _cdf_at([supports[i] for i in ok], p[order])  # (tests, sorted thresholds)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(f < 1, f / (1 - f), np.inf)
    crit = ratio.sum(axis=0) / np.arange(1, order.size + 1)
    q[order] = np.minimum(np.maximum.accumulate(crit), 1.0)
    return q
