"""Repeated looks at one experiment: O'Brien-Fleming-type alpha spending (Lan & DeMets 1983).

Every J+7 review, every "run longer" and every re-review next week is a new look at the same
experiment. Reading each look at the fixed one-sided 2.5 % level lets the chance of a good-side
read under no effect grow with the number of looks (4.2 % with 2 looks, 6.3 % with 4). Alpha
spending fixes the total: the one-sided alpha is spent across the planned looks by the spending
function

    alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)),   t = information fraction in (0, 1],

(Lan & DeMets 1983, O'Brien-Fleming type), and the critical value c_j of look j solves

    P(Z_1 < c_1, ..., Z_{j-1} < c_{j-1}, Z_j >= c_j) = alpha(t_j) - alpha(t_{j-1})

under no effect, where the look statistics are jointly normal with corr(Z_i, Z_j) =
sqrt(t_i / t_j) (canonical joint distribution, Jennison & Turnbull 2000, ch. 3).

Why O'Brien-Fleming-type spending rather than an always-valid confidence sequence: the playbook
plans a small, known number of weekly looks (J+7, then a few weekly re-reads), and for a fixed
number of looks the OBF boundary spends almost nothing early (a J+7 keep needs overwhelming
evidence, which is what a manager wants from a first look) and keeps the last look's critical
value close to the fixed-sample 1.96, so the plan's power is barely lowered. A confidence
sequence is valid for any number of looks but pays for it with a much wider interval at every
look, the planned one included.

Information fractions: the looks are taken as equally spaced (t_j = j / m). Weekly looks at a
steady inflow are roughly equally spaced in information; with unequal spacing the spending
function still bounds the total (Lan & DeMets), with slightly different per-look levels. A look
beyond the planned number has no alpha left: it cannot keep.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

__all__ = ["DEFAULT_PLANNED_LOOKS", "obf_spending", "obf_boundaries", "keep_critical_value"]

#: Planned looks when the experiment's plan does not say: the J+7 look and three weekly re-reads
#: (J+14, J+21, J+28), which covers a 14-day return window read at K with a week of margin.
DEFAULT_PLANNED_LOOKS = 4

#: One-sided alpha of a keep: the good side of a two-sided 95 % interval.
DEFAULT_ONE_SIDED_ALPHA = 0.025


def obf_spending(t: float | np.ndarray, alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> np.ndarray:
    """Cumulative one-sided alpha spent by information fraction ``t`` (O'Brien-Fleming type)."""
    t = np.clip(np.asarray(t, dtype=float), 1e-12, 1.0)
    return 2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / np.sqrt(t))


_GRID_STEP = 0.01  # grid step on the score scale S = Z sqrt(t); boundaries within 1e-3 of published values


def _grid(upper: float) -> np.ndarray:
    """Integration grid from far below zero up to ``upper`` (trapezoid weights added by the caller)."""
    n = max(int(math.ceil((upper + 9.0) / _GRID_STEP)), 2)
    return np.linspace(-9.0, upper, n + 1)


def _trapezoid_weights(x: np.ndarray) -> np.ndarray:
    w = np.full(x.size, x[1] - x[0])
    w[[0, -1]] /= 2.0
    return w


def _continuation_density(bounds: list[float], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density of the score S_j = Z_j sqrt(t_j) on {no crossing up to look j} (recursive integration,
    Armitage, McPherson & Rowe 1969): S has independent normal increments of variance t_j - t_{j-1}."""
    x = _grid(bounds[0] * math.sqrt(t[0]))
    dens = stats.norm.pdf(x, scale=math.sqrt(t[0]))
    for j in range(1, len(bounds)):
        sd = math.sqrt(t[j] - t[j - 1])
        y = _grid(bounds[j] * math.sqrt(t[j]))
        kernel = stats.norm.pdf((y[:, None] - x[None, :]) / sd) / sd
        dens, x = kernel @ (dens * _trapezoid_weights(x)), y
    return x, dens


def _cross_probability(x: np.ndarray | None, dens: np.ndarray | None, j: int, c: float, t: np.ndarray) -> float:
    """P(Z_1 < c_1, ..., Z_{j-1} < c_{j-1}, Z_j >= c) under no effect, from the continuation density."""
    if x is None:
        return float(stats.norm.sf(c))
    sd = math.sqrt(t[j] - t[j - 1])
    return float(np.sum(dens * _trapezoid_weights(x) * stats.norm.sf((c * math.sqrt(t[j]) - x) / sd)))


@lru_cache(maxsize=64)
def obf_boundaries(planned_looks: int, alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> tuple[float, ...]:
    """One-sided z critical values c_1..c_m of an O'Brien-Fleming-type Lan-DeMets design.

    Equally spaced looks (t_j = j/m). Checked against published values (gsDesign ``sfLDOF``,
    one-sided 0.025: m = 2: 2.797, 1.977; m = 4: 4.333, 2.963, 2.359, 2.014).
    """
    if isinstance(planned_looks, bool) or not isinstance(planned_looks, int) or planned_looks < 1:
        raise ValueError(f"planned_looks must be a whole number >= 1, got {planned_looks!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
    t = np.arange(1, planned_looks + 1) / planned_looks
    spent = np.diff(np.concatenate([[0.0], obf_spending(t, alpha)]))
    bounds: list[float] = []
    x = dens = None
    for j in range(planned_looks):
        if j > 0:
            x, dens = _continuation_density(bounds, t)
        target = float(spent[j])
        if target <= 1e-15:  # nothing to spend at this look: a boundary no statistic reaches
            bounds.append(12.0)
            continue
        f = lambda c: _cross_probability(x, dens, j, c, t) - target
        bounds.append(float(optimize.brentq(f, 0.0, 12.0, xtol=1e-7)))
    return tuple(bounds)


def keep_critical_value(look: int, planned_looks: int, alpha: float = DEFAULT_ONE_SIDED_ALPHA) -> float:
    """The z a keep must reach at ``look`` (1-based) of ``planned_looks``; inf beyond the plan."""
    if isinstance(look, bool) or not isinstance(look, int) or look < 1:
        raise ValueError(f"look must be a whole number >= 1, got {look!r}")
    if look > planned_looks:
        return math.inf
    return obf_boundaries(planned_looks, alpha)[look - 1]
