"""Repeated looks at one experiment: O'Brien-Fleming-type alpha spending by information (Lan & DeMets 1983).

Every weekly read of an experiment is a new look at the same data. Reading each look at the fixed
one-sided 2.5 % level lets the chance of a good-side read under no effect grow with the number of
looks (4.2 % with 2 looks, 6.3 % with 4). Alpha spending fixes the total: the one-sided alpha is
spent by the information fraction t (information now / information the plan was sized for) with

    alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)),   t in (0, 1],

(Lan & DeMets 1983, O'Brien-Fleming type), and the critical value c_j of look j solves

    P(Z_1 < c_1, ..., Z_{j-1} < c_{j-1}, Z_j >= c_j) = alpha(t_j) - alpha(t_{j-1})

under no effect, where the look statistics are jointly normal with corr(Z_i, Z_j) = sqrt(I_i / I_j)
(canonical joint distribution, Jennison & Turnbull 2000, ch. 3 and 7). The looks are measured, not
counted: t_j is the information actually read at look j. A read that adds no information (exposure
stopped and no unit matured since the last look) spends nothing; the final look (the review date the
plan powered, or the look at which the information reaches the plan's) spends what is left,
alpha(1) - alpha(t_{j-1}), with the correlation of the information actually reached (Jennison &
Turnbull 2000, 7.2.2: "the final analysis spends the remaining alpha").

Why O'Brien-Fleming-type spending rather than an always-valid confidence sequence: the playbook reads
a few weekly looks, and the OBF boundary spends almost nothing early (a keep at 25 % of the
information needs z >= 4.33, overwhelming evidence) and keeps the last look's critical value close to
the fixed-sample 1.96 (about 2.0 with four looks), so the plan's power is barely lowered. A confidence
sequence is valid for any number of looks but pays for it with a much wider interval at every look.

Published values checked in the tests (gsDesign ``sfLDOF``, one-sided 0.025, equally spaced):
m = 2: 2.963, 1.969; m = 3: 3.710, 2.511, 1.993; m = 4: 4.333, 2.963, 2.359, 2.014. (The
classical O'Brien-Fleming boundaries, 2.797 and 1.977 for m = 2, are not those of the spending
function: an earlier version of this docstring quoted them by mistake.) The same recursion gives
the power of a design (:func:`design_power`), which the plan uses, so that the plan and the verdict
read one rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import optimize, stats

__all__ = ["DEFAULT_ONE_SIDED_ALPHA", "LookBoundary", "design_power", "keep_critical_value", "look_boundary",
           "obf_boundaries", "obf_spending", "spending_boundaries"]

#: One-sided alpha of a keep: the good side of a two-sided 95 % interval.
DEFAULT_ONE_SIDED_ALPHA = 0.025

#: A boundary no statistic reaches (a look with nothing left to spend).
NO_BOUNDARY = math.inf


def obf_spending(t: float | np.ndarray, alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> np.ndarray:
    """Cumulative one-sided alpha spent by information fraction ``t`` (O'Brien-Fleming type)."""
    t = np.clip(np.asarray(t, dtype=float), 1e-12, 1.0)
    return 2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / np.sqrt(t))


_GRID_STEP = 0.05  # grid step on the score scale S = Z sqrt(t); boundaries within 2e-4 of published values
_FAR = 9.0  # |z| beyond which nothing is integrated (and a boundary no statistic reaches)


def _grid(upper: float, lower: float = -_FAR) -> np.ndarray:
    """Integration grid from far below zero up to ``upper`` (trapezoid weights added by the caller)."""
    upper = min(upper, _FAR)
    n = max(int(math.ceil((upper - lower) / _GRID_STEP)), 2)
    return np.linspace(lower, upper, n + 1)


def _trapezoid_weights(x: np.ndarray) -> np.ndarray:
    w = np.full(x.size, x[1] - x[0])
    w[[0, -1]] /= 2.0
    return w


def _continuation(bounds: Sequence[float], t: np.ndarray, drift: float) -> tuple[np.ndarray, np.ndarray]:
    """Density of the score S_j = Z_j sqrt(t_j) on {no crossing up to look j} (recursive integration,
    Armitage, McPherson & Rowe 1969): S has independent normal increments of mean drift (t_j - t_{j-1})
    and variance t_j - t_{j-1}, with t the information relative to the last look's."""
    lo = drift * t[0] - _FAR * math.sqrt(t[0])
    x = _grid(bounds[0] * math.sqrt(t[0]), lo)
    dens = stats.norm.pdf(x, loc=drift * t[0], scale=math.sqrt(t[0]))
    for j in range(1, len(bounds)):
        step = t[j] - t[j - 1]
        sd = math.sqrt(step)
        y = _grid(bounds[j] * math.sqrt(t[j]), float(x[0]) + drift * step - _FAR * sd)
        kernel = stats.norm.pdf((y[:, None] - x[None, :] - drift * step) / sd) / sd
        dens, x = kernel @ (dens * _trapezoid_weights(x)), y
    return x, dens


def _cross(prior: tuple[np.ndarray, np.ndarray] | None, j: int, c: float, t: np.ndarray, drift: float) -> float:
    """P(no crossing before look j, Z_j >= c) from the continuation density of looks 1..j-1."""
    if prior is None:
        return float(stats.norm.sf(c * math.sqrt(t[0]), loc=drift * t[0], scale=math.sqrt(t[0])))
    x, dens = prior
    step = t[j] - t[j - 1]
    mean = x + drift * step
    return float(np.sum(dens * _trapezoid_weights(x) * stats.norm.sf((c * math.sqrt(t[j]) - mean) / math.sqrt(step))))


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")


def _relative(information: Sequence[float]) -> np.ndarray:
    info = np.asarray(information, dtype=float)
    if info.size == 0 or not np.all(np.isfinite(info)) or np.any(info <= 0) or np.any(np.diff(info) <= 0):
        raise ValueError(f"information levels must be positive and increasing, got {list(information)!r}")
    return info / info[-1]


def spending_boundaries(spent_fractions: Sequence[float], information: Sequence[float] | None = None,
                        alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> tuple[float, ...]:
    """One-sided z critical values of looks that spend ``alpha(t)`` at ``spent_fractions`` (O'Brien-Fleming
    type), the looks' statistics correlated by their ``information`` (default: the fractions themselves).

    ``spent_fractions`` are non-decreasing in (0, 1]; a look whose fraction does not exceed the previous
    one spends nothing (its boundary is ``inf``). The final analysis passes 1 whatever the information it
    reached, and so spends what is left (Jennison & Turnbull 2000, 7.2.2).
    """
    _check_alpha(alpha)
    spent_at = np.asarray(spent_fractions, dtype=float)
    if spent_at.size == 0 or np.any(spent_at <= 0) or np.any(spent_at > 1 + 1e-12) or np.any(np.diff(spent_at) < 0):
        raise ValueError(f"spent fractions must be non-decreasing in (0, 1], got {list(spent_fractions)!r}")
    t = _relative(spent_at if information is None else information)
    spent = np.diff(np.concatenate([[0.0], obf_spending(spent_at, alpha)]))
    bounds: list[float] = []
    for j in range(spent_at.size):
        prior = _continuation(bounds, t, 0.0) if j > 0 else None
        target = float(spent[j])
        if target <= 1e-15:  # nothing to spend at this look: a boundary no statistic reaches
            bounds.append(NO_BOUNDARY)
            continue
        if prior is None:  # the first look's statistic is standard normal: its boundary in closed form
            bounds.append(float(stats.norm.isf(target)))
            continue
        f = lambda c: _cross(prior, j, c, t, 0.0) - target
        bounds.append(float(optimize.brentq(f, -_FAR, _FAR, xtol=1e-7)) if f(_FAR) < 0 else NO_BOUNDARY)
    return tuple(bounds)


def design_power(bounds: Sequence[float], information: Sequence[float], drift: float) -> float:
    """P(Z_j >= c_j at some look) when the final look's expected z is ``drift``.

    Z_j has mean ``drift * sqrt(I_j / I_final)`` (canonical joint distribution, Jennison & Turnbull
    2000, 3.1); ``bounds`` from :func:`spending_boundaries`. With one look it is Phi(drift - c).
    """
    t = _relative(information)
    if len(bounds) != t.size:
        raise ValueError("one boundary per look is needed")
    total, finite = 0.0, [min(b, _FAR) for b in bounds]
    for j in range(t.size):
        if math.isinf(bounds[j]):
            continue
        prior = _continuation(finite[:j], t, drift) if j > 0 else None
        total += _cross(prior, j, finite[j], t, drift)
    return float(min(total, 1.0))


@lru_cache(maxsize=64)
def obf_boundaries(planned_looks: int, alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> tuple[float, ...]:
    """Critical values c_1..c_m of ``planned_looks`` equally spaced looks (t_j = j/m): the design of a
    row that declares its looks but not its information."""
    if isinstance(planned_looks, bool) or not isinstance(planned_looks, int) or planned_looks < 1:
        raise ValueError(f"planned_looks must be a whole number >= 1, got {planned_looks!r}")
    return spending_boundaries(tuple(np.arange(1, planned_looks + 1) / planned_looks), alpha=alpha)


def keep_critical_value(look: int, planned_looks: int, alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> float:
    """The z a keep must reach at ``look`` (1-based) of ``planned_looks`` equally spaced ones; inf beyond."""
    if isinstance(look, bool) or not isinstance(look, int) or look < 1:
        raise ValueError(f"look must be a whole number >= 1, got {look!r}")
    if look > planned_looks:
        return NO_BOUNDARY
    return obf_boundaries(planned_looks, alpha)[look - 1]


@dataclass(frozen=True)
class LookBoundary:
    """One look as the spending sees it.

    ``fraction``: the information read now over the information the plan was sized for (may exceed 1);
    ``spent_fraction``: the t at which alpha is spent (1 at the final look); ``boundary``: the z a keep
    must reach (and, mirrored, a harm stop), ``inf`` when this look spends nothing; ``alpha_spent``: the
    cumulative one-sided alpha after this look; ``final``: this look spends what is left.
    """

    look: int
    fraction: float
    spent_fraction: float
    boundary: float
    alpha_spent: float
    final: bool

    @property
    def alpha(self) -> float:
        """The one-sided level of this look's own bound (``Phi(-boundary)``; 0 when it spends nothing)."""
        return float(stats.norm.sf(self.boundary)) if math.isfinite(self.boundary) else 0.0

    @property
    def words(self) -> str:
        return f"{self.fraction:.0%} of the planned information" + (" (final look)" if self.final else "")


def look_boundary(earlier: Sequence[float], fraction: float, *, final: bool,
                  alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> LookBoundary:
    """The boundary of a look at information ``fraction`` after looks at the ``earlier`` fractions.

    ``earlier`` are the fractions of the looks that spent alpha before (each > the one before). A look
    that adds no information (``fraction`` not above the last earlier one), or comes after a final look
    (an earlier fraction at or above 1), spends nothing. ``final``: the review date's read, which spends
    what is left; a look whose fraction reaches 1 is final too.
    """
    _check_alpha(alpha)
    earlier = [float(f) for f in earlier]
    look = len(earlier) + 1
    spent_before = float(obf_spending(min(earlier[-1], 1.0), alpha)) if earlier else 0.0
    if (earlier and (fraction <= earlier[-1] or earlier[-1] >= 1.0)) or not fraction > 0:
        return LookBoundary(look, float(fraction), min(earlier[-1], 1.0) if earlier else 0.0, NO_BOUNDARY,
                            spent_before, False)
    final = final or fraction >= 1.0
    spent_at = [min(f, 1.0) for f in earlier] + [1.0 if final else fraction]
    bounds = _cached_boundaries(tuple(round(f, 6) for f in spent_at),
                                tuple(round(f, 6) for f in [*earlier, fraction]), alpha)
    return LookBoundary(look, float(fraction), spent_at[-1], bounds[-1], float(obf_spending(spent_at[-1], alpha)), final)


@lru_cache(maxsize=4096)
def _cached_boundaries(spent_at: tuple[float, ...], information: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    return spending_boundaries(spent_at, information, alpha)
