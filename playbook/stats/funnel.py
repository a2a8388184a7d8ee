"""Weak-cohort isolation among many slices: funnel plots, overdispersion, FDR, shrinkage.

A weekly baseline cuts returns into many slices (category x reason code, country x carrier,
...). Which slice is *really* worse than the norm, and which one costs the most? Raw rates
mislead both ways: a slice with 3 returns out of 8 units looks terrible by chance, while a
large slice only 5 points above the norm hides a lot of money. This module compares every
slice with the overall rate at its own size (funnel plot, Spiegelhalter 2005), widens the
limits when the slices vary more than chance allows (overdispersion, Spiegelhalter 2005 §6
and Spiegelhalter et al. 2012), controls the false discovery rate across all slices
(Benjamini & Hochberg 1995; Jones, Ohlssen & Spiegelhalter 2008, J Clin Epidemiol 61:232),
and ranks the significant slices by excess cost.

Functions
---------
funnel_limits     control limits of a proportion around the overall rate, at any size.
overdispersion    multiplicative phi and additive tau^2 from winsorised z-scores.
funnel_table      one row per slice: rate, z, p, q, limits, flags, shrunk rate, excess cost.

References
----------
- Spiegelhalter D.J. (2005). Funnel plots for comparing institutional performance.
  Statistics in Medicine 24:1185-1202 (exact limits: appendix A.1.1; overdispersion: §6).
- Spiegelhalter D.J., Sherlaw-Johnson C., Bardsley M., Blunt I., Wood C., Grigg O. (2012).
  Statistical methods for healthcare regulation: rating, screening and surveillance.
  JRSS A 175:1-47 (winsorised z-scores, additive random-effects tau^2).
- Benjamini Y., Hochberg Y. (1995). Controlling the false discovery rate. JRSS B 57:289.

The limits, z-scores and overdispersion are written by hand (statsmodels has no funnel
plot); q-values come from ``statsmodels.stats.multitest.multipletests(method="fdr_bh")`` and
the shrinkage from :mod:`playbook.stats.shrinkage`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from playbook.stats.results import _clean, clean_number
from playbook.stats.shrinkage import beta_binomial_shrinkage, fit_beta_prior

__all__ = ["Overdispersion", "funnel_limits", "overdispersion", "funnel_table", "level_tag"]

NO_UNITS_NOTE = (
    "no units delivered: rate undefined; slice left out of the overall rate, the "
    "overdispersion estimate and the q-values"
)




def level_tag(level: float) -> str:
    """Column suffix of a limit level: 0.95 -> ``"95"``, 0.998 -> ``"99_8"``."""
    return f"{level * 100:.10g}".replace(".", "_")


# --------------------------------------------------------------------------------------
# Control limits
# --------------------------------------------------------------------------------------


def _interpolated_quantile(dist: Any, q: float, n: np.ndarray) -> np.ndarray:
    """Spiegelhalter (2005) appendix A.1.1: smooth quantile of a discrete count.

    r_q = smallest r with F(r) >= q; alpha = (F(r_q) - q) / (F(r_q) - F(r_q - 1));
    limit = (r_q - alpha) / n. Interpolating between the steps makes the funnel smooth
    and its coverage close to nominal (the plain quantile is conservative).
    """
    r = dist.ppf(q)
    return _interpolate(r, dist.cdf(r), dist.pmf(r), q, n)


def _interpolate(r: np.ndarray, cdf: np.ndarray, pmf: np.ndarray, q: float,
                 n: np.ndarray) -> np.ndarray:
    alpha = np.divide(cdf - q, pmf, out=np.zeros_like(r, dtype=float), where=pmf > 0)
    return (r - alpha) / n


class _BetaBinomialWindow:
    """Beta-binomial pmf on a window of +-15 sd around the mean, one array per size n.

    scipy's generic ``betabinom.ppf`` / ``cdf`` sum the pmf from 0 in Python loops and take
    seconds for n in the hundreds of thousands. Here the pmf is evaluated on the window only
    (mass outside it is below 1e-12 for the shapes met in practice): one closed-form
    ``betabinom.logpmf`` at the window's start, then the ratio recursion
    P(k+1) / P(k) = (n - k)(k + a) / ((k + 1)(n - k - 1 + b)) summed in logs; quantiles
    and tails come from cumulative sums.
    """

    def __init__(self, n: np.ndarray, a: float, b: float, width: float = 15.0):
        self.n = np.asarray(n, dtype=float)
        self.tables = {}
        for m in np.unique(self.n):
            mean = m * a / (a + b)
            sd = math.sqrt(m * a * b * (a + b + m) / ((a + b) ** 2 * (a + b + 1)))
            lo = int(max(0.0, math.floor(mean - width * sd - 5)))
            hi = int(min(m, math.ceil(mean + width * sd + 5)))
            k = np.arange(lo, hi, dtype=float)
            log_ratio = (np.log(m - k) + np.log(k + a) - np.log(k + 1) - np.log(m - k - 1 + b))
            log_pmf = float(stats.betabinom.logpmf(lo, m, a, b)) + np.concatenate(
                ([0.0], np.cumsum(log_ratio)))
            pmf = np.exp(log_pmf)
            self.tables[m] = (lo, pmf, np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1])

    def ppf(self, q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r, F(r), P(R = r)) with r the smallest count with F(r) >= q, per size."""
        r, cdf_r, pmf_r = (np.empty(self.n.size) for _ in range(3))
        for i, m in enumerate(self.n):
            lo, pmf, cdf, _ = self.tables[m]
            j = min(int(np.searchsorted(cdf, q, side="left")), cdf.size - 1)
            r[i], cdf_r[i], pmf_r[i] = lo + j, cdf[j], pmf[j]
        return r, cdf_r, pmf_r

    def tails(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(R <= y), P(R >= y)) per size."""
        low, up = np.empty(self.n.size), np.empty(self.n.size)
        for i, (m, v) in enumerate(zip(self.n, y)):
            lo, _, cdf, rev = self.tables[m]
            j = int(v) - lo
            low[i] = 0.0 if j < 0 else (1.0 if j >= cdf.size else cdf[j])
            up[i] = 1.0 if j <= 0 else (0.0 if j >= rev.size else rev[j])
        return low, up


@lru_cache(maxsize=8)
def _window(n: tuple[float, ...], a: float, b: float) -> _BetaBinomialWindow:
    return _BetaBinomialWindow(np.asarray(n), a, b)


def funnel_limits(
    overall_rate: float,
    units: float | Iterable[float],
    levels: Sequence[float] = (0.95, 0.998),
    method: Literal["exact", "normal"] = "exact",
    tau2: float = 0.0,
    phi: float = 1.0,
) -> pd.DataFrame:
    """Two-sided control limits for an observed proportion y / n around ``overall_rate``.

    A slice of size n lies inside the ``level`` limits with probability ``level`` when its
    true rate equals ``overall_rate`` (p0). Vectorised over ``units`` (pass e.g.
    ``np.geomspace(10, 1e5, 200)`` to draw the funnel curve).

    ``method="exact"`` (default; Spiegelhalter 2005 appendix A.1.1): the (1 - level)/2 and
    (1 + level)/2 quantiles r of Binomial(n, p0), interpolated between the integer steps,
    limit = (r - alpha) / n with alpha = (F(r) - q) / P(R = r). With overdispersion
    (``tau2 > 0``) the binomial is replaced by the beta-binomial whose true-rate
    distribution has mean p0 and variance tau2, i.e. Beta(p0 c, (1 - p0) c) with
    c = p0 (1 - p0) / tau2 - 1 (our exact analogue of Spiegelhalter's normal random-effects
    limits). Non-integer ``units`` are rounded to the nearest unit for this method.

    ``method="normal"``: p0 +- z sqrt(phi p0 (1 - p0) / n + tau2) with z the normal
    quantile; ``phi`` (multiplicative, Spiegelhalter 2005 §6.3) and ``tau2`` (additive
    random effects, §6.4) widen the limits. Poor for small n p0 (it can go below 0; limits
    are clipped to [0, 1]).

    Returns a long DataFrame with columns ``units, level, lower, upper, method``
    (one row per unit size and level, levels in the given order).

    Raises ValueError on invalid *parameters* (rate outside [0, 1], units <= 0, level
    outside (0, 1), phi used with the exact method): this function draws curves; slices
    with zero units are handled by :func:`funnel_table`.
    """
    p0 = float(overall_rate)
    n = np.atleast_1d(np.asarray(units, dtype=float))
    if not (0.0 <= p0 <= 1.0):
        raise ValueError(f"overall_rate must lie in [0, 1], got {overall_rate!r}")
    if np.any(~np.isfinite(n)) or np.any(n <= 0):
        raise ValueError("units must be finite and > 0 to draw a control limit")
    if any(not (0.0 < lv < 1.0) for lv in levels):
        raise ValueError(f"levels must lie strictly between 0 and 1, got {levels!r}")
    if tau2 < 0 or phi <= 0:
        raise ValueError(f"tau2 must be >= 0 and phi > 0, got tau2={tau2!r}, phi={phi!r}")
    if method not in ("exact", "normal"):
        raise ValueError(f"method must be 'exact' or 'normal', got {method!r}")
    if method == "exact" and phi != 1.0:
        raise ValueError("a multiplicative phi has no exact version: use method='normal'")

    frames = []
    for level in levels:
        q_lo, q_hi = (1 - level) / 2, (1 + level) / 2
        if method == "exact":
            n_int = np.maximum(np.rint(n), 1.0)
            if tau2 > 0 and 0 < p0 < 1:
                conc = p0 * (1 - p0) / tau2 - 1
                if conc <= 0:
                    raise ValueError(
                        f"tau2={tau2:.4g} is at least p0(1-p0)={p0 * (1 - p0):.4g}: no "
                        "beta-binomial has that spread; use method='normal'"
                    )
                window = _window(tuple(n_int), p0 * conc, (1 - p0) * conc)
                lower, upper = (_interpolate(*window.ppf(q), q, n_int) for q in (q_lo, q_hi))
            else:
                dist = stats.binom(n_int, p0)
                lower = _interpolated_quantile(dist, q_lo, n_int)
                upper = _interpolated_quantile(dist, q_hi, n_int)
        else:
            z = stats.norm.ppf(q_hi)
            half = z * np.sqrt(phi * p0 * (1 - p0) / n + tau2)
            lower, upper = p0 - half, p0 + half
        frames.append(
            pd.DataFrame(
                {
                    "units": n,
                    "level": float(level),
                    "lower": np.clip(lower, 0.0, 1.0),
                    "upper": np.clip(upper, 0.0, 1.0),
                    "method": method if tau2 == 0 and phi == 1.0 else f"{method}-overdispersed",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------
# Overdispersion
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overdispersion:
    """Extra-binomial variation between slices (Spiegelhalter 2005 §6; 2012 §3.4).

    Attributes:
        phi: multiplicative overdispersion, mean of the squared winsorised z-scores.
        tau2: additive between-slice variance of the true rates (DerSimonian-Laird form,
            computed from the winsorised phi); 0 when ``applied`` is False.
        tau2_estimate: the tau2 formula's value whether or not it is applied.
        applied: True when n_slices * phi exceeds the chi-square(df) quantile at
            ``test_level``: only then should limits and z-scores be widened.
        statistic: n_slices * phi; df: its chi-square degrees of freedom;
        threshold: the chi-square quantile; p_value: P(chi2_df > statistic).
        overall_rate: the target rate p0 used for the z-scores.
        error: why nothing could be estimated, in words.
    """

    phi: float | None
    tau2: float
    tau2_estimate: float | None
    applied: bool
    n_slices: int
    overall_rate: float | None
    statistic: float | None
    df: int | None
    threshold: float | None
    p_value: float | None
    winsor: float
    test_level: float
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _overdispersion_arrays(
    y: np.ndarray,
    n: np.ndarray,
    overall_rate: float | None,
    winsor: float,
    test_level: float,
) -> Overdispersion:
    k = int(y.size)
    p0 = float(y.sum() / n.sum()) if overall_rate is None and k > 0 else overall_rate
    base = dict(winsor=winsor, test_level=test_level, n_slices=k, overall_rate=p0)
    if k < 2:
        return Overdispersion(None, 0.0, None, False, statistic=None, df=None, threshold=None,
                              p_value=None, error=f"{k} usable slice(s): need at least 2",
                              **base)
    if not (0.0 < p0 < 1.0):
        return Overdispersion(None, 0.0, None, False, statistic=None, df=None, threshold=None,
                              p_value=None,
                              error=f"overall rate is {p0:g}: binomial variance is zero, "
                              "z-scores are undefined", **base)
    s2 = p0 * (1 - p0) / n
    z = (y / n - p0) / np.sqrt(s2)
    lo, hi = np.quantile(z, [winsor, 1 - winsor])
    z_w = np.clip(z, lo, hi)
    phi = float(np.mean(z_w**2))
    dof = k - 1 if overall_rate is None else k
    statistic = k * phi
    threshold = float(stats.chi2.ppf(test_level, dof))
    p_value = float(stats.chi2.sf(statistic, dof))
    w = 1.0 / s2
    tau2_est = max(0.0, float((k * phi - (k - 1)) / (w.sum() - np.sum(w**2) / w.sum())))
    applied = bool(statistic > threshold)
    return Overdispersion(
        phi=phi,
        tau2=tau2_est if applied else 0.0,
        tau2_estimate=tau2_est,
        applied=applied,
        statistic=statistic,
        df=dof,
        threshold=threshold,
        p_value=p_value,
        details={"winsor_low_z": float(lo), "winsor_high_z": float(hi),
                 "phi_unwinsorised": float(np.mean(z**2))},
        **base,
    )


def overdispersion(
    df: pd.DataFrame,
    *,
    events: str = "events",
    units: str = "units",
    overall_rate: float | None = None,
    winsor: float = 0.1,
    test_level: float = 0.95,
) -> Overdispersion:
    """Multiplicative phi and additive tau^2 across slices (Spiegelhalter 2005, 2012).

    With p0 the overall rate (sum events / sum units unless given), y_i = events / units and
    s_i^2 = p0 (1 - p0) / n_i::

        z_i   = (y_i - p0) / s_i
        z_w   = z winsorised at its ``winsor`` and 1 - ``winsor`` quantiles (10 % / 90 %)
        phi   = mean(z_w^2)
        tau^2 = max(0, (I phi - (I - 1)) / (sum w_i - sum w_i^2 / sum w_i)),  w_i = 1 / s_i^2

    Test: under "no overdispersion" I phi is approximately chi-square with I - 1 degrees of
    freedom (I when p0 is given, not estimated). tau^2 is *applied* (``applied=True``,
    ``tau2`` > 0) only when I phi exceeds the ``test_level`` quantile; otherwise the
    binomial limits stand. Winsorising keeps the few truly deviant slices from inflating
    phi and hiding themselves. Assumption: slices exchangeable apart from the random effect;
    the random-effects z-score is then (y_i - p0) / sqrt(s_i^2 + tau^2).

    Slices with no units or invalid counts are ignored; fewer than 2 usable slices or an
    overall rate of 0 or 1 give a result with ``error`` set and nothing applied.
    """
    y = pd.to_numeric(df[events], errors="coerce").to_numpy(dtype=float)
    n = pd.to_numeric(df[units], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y) & np.isfinite(n) & (n > 0) & (y >= 0) & (y <= n)
    return _overdispersion_arrays(y[ok], n[ok], overall_rate, winsor, test_level)


# --------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------


def _exact_two_sided_p(y: np.ndarray, n: np.ndarray, dist: Any) -> np.ndarray:
    """Doubled smaller tail, the p-value matching equal-tailed exact limits."""
    lower_tail = dist.cdf(y)
    upper_tail = dist.sf(y - 1)
    return np.minimum(1.0, 2 * np.minimum(lower_tail, upper_tail))


def funnel_table(
    df: pd.DataFrame,
    *,
    by: Sequence[str] | None = None,
    events: str = "events",
    units: str = "units",
    cost_per_event: str | None = "cost_per_event",
    overall_rate: float | None = None,
    levels: Sequence[float] = (0.95, 0.998),
    method: Literal["exact", "normal"] = "exact",
    adjust: Literal["auto", "always", "never"] = "auto",
    fdr: float = 0.05,
    winsor: float = 0.1,
    test_level: float = 0.95,
    prior_method: Literal["mle", "moments"] = "mle",
    credible: float = 0.95,
) -> pd.DataFrame:
    """One row per slice: how far above the norm it is, how sure we are, what it costs.

    Per slice i with n_i units and y_i events, p0 = overall rate (sum y / sum n over slices
    with units, unless given)::

        rate            = y_i / n_i
        expected_events = p0 n_i
        excess_events   = y_i - p0 n_i                         (signed)
        z               = (rate - p0) / sqrt(p0 (1 - p0) / n_i)
        z_adjusted      = (rate - p0) / sqrt(p0 (1 - p0) / n_i + tau^2)
        excess_cost     = max(excess_events, 0) * cost_per_event

    tau^2 comes from :func:`overdispersion` and is used when ``adjust="always"``, or with
    ``adjust="auto"`` when the overdispersion test rejects (``"never"``: binomial only).

    ``p_value`` (two-sided) follows ``method``: "exact" uses the doubled smaller tail of
    Binomial(n_i, p0), or of the beta-binomial with mean p0 and between-slice variance
    tau^2 when overdispersion is applied (needs whole-number events; otherwise it falls back
    to the normal); "normal" uses 2 (1 - Phi(|z_adjusted|)). ``q_value``: Benjamini-Hochberg
    across *all* slices with units in this call (``multipletests(method="fdr_bh")``).

    Limits (``lower_<tag>``, ``upper_<tag>`` for each level, tag = :func:`level_tag`) are the
    overdispersion-adjusted limits of :func:`funnel_limits` at the slice's size;
    ``above_<tag>`` compares the rate with them, ``above_<tag>_unadjusted`` with the binomial
    limits. ``band`` names the outermost limit crossed.

    ``flagged`` = q_value < ``fdr`` and rate above the adjusted upper limit of the lowest
    level. Flagged slices get ``rank`` 1, 2, ... by ``excess_cost`` (by excess events when
    there is no cost column), largest first; other slices have no rank (<NA>).

    ``shrunk_rate, shrunk_ci_low, shrunk_ci_high``: empirical-Bayes beta-binomial posterior
    mean and ``credible`` interval (:func:`playbook.stats.shrinkage.beta_binomial_shrinkage`);
    ``excess_events_shrunk`` = max(0, shrunk_rate - p0) n_i, a conservative excess.

    A slice with zero (or missing) units, or events outside [0, units], gets a row with an
    explanation in ``note`` and no statistics (it never raises). Output order: flagged
    slices by rank, then the others by decreasing z_adjusted, then unusable rows. Run-level
    facts are in ``DataFrame.attrs``: ``overall_rate``, ``overdispersion``, ``prior``,
    ``p_value_method``, ``ranked_by``, ``flag_rule``.

    Assumptions: units within a slice independent given the slice's true rate (clustered
    orders make every limit too narrow: aggregate by order or customer first, or rely on
    the overdispersion adjustment), slices comparable to one common norm.
    """
    data = df.reset_index(drop=True).copy()
    reserved = {events, units} | ({cost_per_event} if cost_per_event else set())
    by = [c for c in data.columns if c not in reserved] if by is None else list(by)
    has_cost = bool(cost_per_event) and cost_per_event in data.columns
    levels = tuple(float(lv) for lv in levels)
    if not levels:
        raise ValueError("levels must hold at least one level")
    tags = [level_tag(lv) for lv in levels]
    low_tag = tags[int(np.argmin(levels))]

    y = pd.to_numeric(data[events], errors="coerce").to_numpy(dtype=float)
    n = pd.to_numeric(data[units], errors="coerce").to_numpy(dtype=float)
    cost = (pd.to_numeric(data[cost_per_event], errors="coerce").to_numpy(dtype=float)
            if has_cost else None)
    k_all = len(data)
    has_units = np.isfinite(n) & (n > 0)
    valid = has_units & np.isfinite(y) & (y >= 0) & (y <= n)
    note = np.array([""] * k_all, dtype=object)
    note[~has_units] = NO_UNITS_NOTE
    bad_events = has_units & ~valid
    note[bad_events] = "events missing or outside [0, units]: slice left out of every statistic"

    p0 = overall_rate if overall_rate is not None else (
        float(y[valid].sum() / n[valid].sum()) if valid.any() else float("nan"))
    od = _overdispersion_arrays(y[valid], n[valid], overall_rate, winsor, test_level)
    use_tau = adjust == "always" or (adjust == "auto" and od.applied)
    tau2 = float(od.tau2_estimate or 0.0) if use_tau else 0.0

    out = data[by].copy()
    out["units"] = n
    out["events"] = y
    nan = np.full(k_all, np.nan)
    rate = np.divide(y, n, out=nan.copy(), where=valid)
    out["rate"] = rate
    out["expected_events"] = np.where(valid, p0 * n, np.nan)
    out["excess_events"] = np.where(valid, y - p0 * n, np.nan)

    cols_num = ["z", "z_adjusted", "p_value", "q_value"]
    for c in cols_num:
        out[c] = nan.copy()
    for tag in tags:
        out[f"lower_{tag}"] = nan.copy()
        out[f"upper_{tag}"] = nan.copy()
    p_method = "none"
    degenerate = valid.any() and not (0.0 < p0 < 1.0)
    if degenerate:
        note[valid] = (f"overall rate is {p0:g}: every slice has the same binomial variance of "
                       "zero, no slice can differ significantly")
    if valid.any() and not degenerate:
        yv, nv = y[valid], n[valid]
        s2 = p0 * (1 - p0) / nv
        z = (yv / nv - p0) / np.sqrt(s2)
        z_adj = (yv / nv - p0) / np.sqrt(s2 + tau2)
        out.loc[valid, "z"] = z
        out.loc[valid, "z_adjusted"] = z_adj
        integer_events = bool(np.all(np.isclose(yv, np.rint(yv))))
        conc = p0 * (1 - p0) / tau2 - 1 if tau2 > 0 else math.inf
        lim_method = method
        if method == "exact" and integer_events and conc > 0:
            n_int = np.rint(nv)
            if tau2 > 0:
                window = _window(tuple(n_int), p0 * conc, (1 - p0) * conc)
                lower_tail, upper_tail = window.tails(np.rint(yv))
                p = np.minimum(1.0, 2 * np.minimum(lower_tail, upper_tail))
                p_method = "exact-beta-binomial"
            else:
                p = _exact_two_sided_p(np.rint(yv), n_int, stats.binom(n_int, p0))
                p_method = "exact-binomial"
        else:
            p = 2 * stats.norm.sf(np.abs(z_adj))
            p_method = "normal"
            if method == "exact" and conc <= 0:
                lim_method = "normal"
        out.loc[valid, "p_value"] = p
        out.loc[valid, "q_value"] = multipletests(p, alpha=fdr, method="fdr_bh")[1]
        lim_adj = funnel_limits(p0, nv, levels, method=lim_method, tau2=tau2)
        lim_raw = (funnel_limits(p0, nv, levels, method=method) if tau2 > 0 else lim_adj)
        m = len(nv)
        for i, tag in enumerate(tags):
            block = lim_adj.iloc[i * m:(i + 1) * m]
            block_raw = lim_raw.iloc[i * m:(i + 1) * m]
            out.loc[valid, f"lower_{tag}"] = block["lower"].to_numpy()
            out.loc[valid, f"upper_{tag}"] = block["upper"].to_numpy()
            out[f"above_{tag}"] = False
            out.loc[valid, f"above_{tag}"] = yv / nv > block["upper"].to_numpy()
            out[f"above_{tag}_unadjusted"] = False
            out.loc[valid, f"above_{tag}_unadjusted"] = yv / nv > block_raw["upper"].to_numpy()
    for tag in tags:
        if f"above_{tag}" not in out:
            out[f"above_{tag}"] = False
            out[f"above_{tag}_unadjusted"] = False
        out[f"above_{tag}"] = out[f"above_{tag}"].astype(bool)
        out[f"above_{tag}_unadjusted"] = out[f"above_{tag}_unadjusted"].astype(bool)

    # band: outermost limit crossed
    band = np.array(["within"] * k_all, dtype=object)
    for lv, tag in sorted(zip(levels, tags)):
        up = out[f"upper_{tag}"].to_numpy(dtype=float)
        lo = out[f"lower_{tag}"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            band[rate > up] = f"above {lv:.1%}"
            band[rate < lo] = f"below {lv:.1%}"
    band[~has_units] = "no units"
    band[bad_events] = "invalid"
    if degenerate:
        band[valid] = "not comparable"
    out["band"] = band

    # shrinkage
    prior = fit_beta_prior(y[valid], n[valid], method=prior_method)
    shrunk = beta_binomial_shrinkage(y, n, prior=prior, credible=credible)
    for c in ("shrunk_rate", "shrunk_ci_low", "shrunk_ci_high"):
        out[c] = shrunk[c].to_numpy()
    if not prior.ok and valid.any():
        note[valid] = np.where(note[valid] == "", f"shrinkage unavailable: {prior.error}",
                               note[valid])
    out["excess_events_shrunk"] = np.where(
        valid & np.isfinite(out["shrunk_rate"].to_numpy()),
        np.maximum(out["shrunk_rate"].to_numpy() - p0, 0.0) * n, np.nan)

    # cost and ranking
    excess_pos = np.maximum(out["excess_events"].to_numpy(dtype=float), 0.0)
    if has_cost:
        out["cost_per_event"] = cost
        out["excess_cost"] = np.where(valid, excess_pos * cost, np.nan)
        missing_cost = valid & ~np.isfinite(cost)
        note[missing_cost] = np.where(note[missing_cost] == "",
                                      "no cost_per_event: excess cost unknown, ranked last",
                                      note[missing_cost])
        rank_key = out["excess_cost"].to_numpy(dtype=float)
        ranked_by = "excess_cost"
    else:
        rank_key = np.where(valid, excess_pos, np.nan)
        ranked_by = "excess_events (no cost_per_event column)"
    with np.errstate(invalid="ignore"):
        flagged = (valid & (out["q_value"].to_numpy() < fdr)
                   & out[f"above_{low_tag}"].to_numpy(dtype=bool))
    out["flagged"] = flagged
    rank = pd.Series(pd.NA, index=out.index, dtype="Int64")
    if flagged.any():
        idx = np.flatnonzero(flagged)
        key = np.nan_to_num(rank_key[idx], nan=-np.inf)
        order = np.lexsort((-out["z_adjusted"].to_numpy()[idx], -key))
        rank.iloc[idx[order]] = np.arange(1, len(idx) + 1)
    out["rank"] = rank
    out["note"] = note

    # order: flagged by rank, then by z_adjusted, unusable rows last
    sort_rank = out["rank"].astype("Float64").fillna(np.inf).to_numpy(dtype=float)
    sort_z = -np.nan_to_num(out["z_adjusted"].to_numpy(dtype=float), nan=-np.inf)
    order = np.lexsort((sort_z, sort_rank, ~valid))
    out = out.iloc[order].reset_index(drop=True)

    out.attrs.update(
        overall_rate=clean_number(p0),
        overdispersion=od.to_dict(),
        tau2_used=tau2,
        prior=prior.to_dict(),
        p_value_method=p_method,
        ranked_by=ranked_by,
        flag_rule=f"q_value < {fdr:g} and rate above the adjusted {min(levels):.1%} upper limit",
        levels=list(levels),
    )
    return out
