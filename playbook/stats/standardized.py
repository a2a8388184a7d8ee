"""Indirectly standardised funnel: each slice against its *own* baseline rate.

The weekly question is "what got worse", not "what is structurally high": shoes always have
more size returns than accessories, and a funnel against the shop-wide rate would flag them
every week (or, once adjusted for that overdispersion, flag nothing). Here each slice i has an
expected count E_i = n_i p_i, where p_i is the slice's own rate over a baseline period with
m_i units, and O_i events in the recent window with n_i units (Spiegelhalter 2005, section 3.3,
indirectly standardised ratios; the baseline's own sampling error is added to the variance):

    z_i = (O_i - n_i p_i) / sqrt(n_i p_i (1 - p_i) (1 + n_i / m_i))

Overdispersion: phi = mean of the squared z-scores winsorized at 10 % / 90 % (over the slices with
at least one event in either period); when n phi exceeds the chi-square (n - 1 df) 95 % quantile,
every z is divided by sqrt(phi). With fewer than ``min_slices_for_phi`` (10) informative slices phi
is not estimated and the limits stay binomial
(multiplicative adjustment, Spiegelhalter 2005 section 3.4). Two-sided p-values from the
normal, Benjamini-Hochberg q-values across all slices of the call (statsmodels
``multipletests``). Limits for the funnel plot are drawn on the O/E scale:
1 +/- z_alpha sqrt(phi (1 - p) (1 + n/m) / (n p)). A baseline with no event gets p = 0.5 / m
(half an event, a continuity floor) for the expected count and the variance.

Written by hand: statsmodels has no funnel plot for standardised ratios.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
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


def standardized_funnel(
    df: pd.DataFrame,
    *,
    events: str = "events",
    units: str = "units",
    baseline_events: str = "baseline_events",
    baseline_units: str = "baseline_units",
    cost_per_event: str | None = "cost_per_event",
    levels: Sequence[float] = (0.95, 0.998),
    fdr: float = 0.05,
    winsor: float = 0.1,
    adjust: str = "auto",
    min_slices_for_phi: int = 10,
) -> pd.DataFrame:
    """One row per slice: observed vs expected from its own baseline, z, q-value, excess cost.

    Returns the input columns plus ``rate``, ``baseline_rate``, ``expected_events``, ``ratio``
    (O/E), ``excess_events`` (O - E, signed), ``z``, ``z_adjusted``, ``p_value``, ``q_value``,
    ``upper_95``/``upper_998`` (O/E limits), ``flagged`` (q < fdr and O/E above the 95 %
    limit), ``excess_cost`` (max(O - E, 0) x cost per event), ``rank`` (flagged by excess cost)
    and ``note`` explaining rows without statistics. Run facts in ``attrs``: ``phi``,
    ``phi_applied``, ``n_slices``.

    Assumes units independent within a slice given its rate, and a baseline period long
    enough to estimate the slice's normal rate (its error is included in the variance).
    """
    out = df.reset_index(drop=True).copy()
    o = out[events].to_numpy(float)
    n = out[units].to_numpy(float)
    bo = out[baseline_events].to_numpy(float)
    m = out[baseline_units].to_numpy(float)
    note = np.array([""] * len(out), dtype=object)
    note[~(m > 0)] = NO_BASELINE
    note[~(n > 0)] = NO_UNITS
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(m > 0, bo / m, np.nan)
    # a baseline of zero events gives no variance: borrow half an event (a continuity floor)
    p_floor = np.where((m > 0) & (bo == 0), 0.5 / np.maximum(m, 1), p)
    valid = (n > 0) & (m > 0)
    out["rate"] = np.where(n > 0, o / np.where(n > 0, n, 1), np.nan)
    out["baseline_rate"] = p
    # the floor also gives the expected count, so a slice with no returns in its baseline and many now
    # is compared with half a return's worth, not with zero (O/E would be undefined and never flagged)
    expected = np.where(valid, n * p_floor, np.nan)
    out["expected_events"] = expected
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(valid & (expected > 0), o / expected, np.nan)
    out["excess_events"] = np.where(valid, o - expected, np.nan)
    var = n * p_floor * (1 - p_floor) * (1 + n / np.where(m > 0, m, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(valid & (var > 0), (o - expected) / np.sqrt(var), np.nan)
    out["z"] = z
    k = int(np.isfinite(z).sum())
    # rows with no event in either period carry no information on the spread between slices; their
    # z of about 0 would pull phi down and hide real overdispersion (seen on the Online Retail data)
    informative = np.isfinite(z) & ((o + bo) > 0)
    # winsorizing at 10 %/90 % needs enough slices: with a handful, phi is driven by the very outlier
    # we look for, and the adjustment would hide it
    phi = winsorized_phi(z[informative], winsor) if informative.sum() >= max(min_slices_for_phi, 3) else float("nan")
    k_inf = int(informative.sum())
    threshold = stats.chi2.ppf(0.95, k_inf - 1) / k_inf if k_inf >= 3 else np.inf
    applied = adjust == "always" or (adjust == "auto" and np.isfinite(phi) and phi > max(threshold, 1.0))
    scale = phi if applied else 1.0
    za = z / np.sqrt(scale)
    out["z_adjusted"] = za
    pv = np.where(np.isfinite(za), 2 * stats.norm.sf(np.abs(za)), np.nan)
    out["p_value"] = pv
    q = np.full(len(out), np.nan)
    if k:
        q[np.isfinite(pv)] = multipletests(pv[np.isfinite(pv)], method="fdr_bh")[1]
    out["q_value"] = q
    for level in levels:
        zq = stats.norm.ppf(0.5 + level / 2)
        tag = f"{level * 100:g}".replace(".", "")
        with np.errstate(divide="ignore", invalid="ignore"):
            half = zq * np.sqrt(scale * (1 - p_floor) * (1 + n / np.where(m > 0, m, 1)) / (n * p_floor))
        out[f"upper_{tag}"] = np.where(valid, 1 + half, np.nan)
        out[f"lower_{tag}"] = np.where(valid, np.maximum(1 - half, 0), np.nan)
    low_tag = f"{min(levels) * 100:g}".replace(".", "")
    out["flagged"] = (q < fdr) & (out["ratio"].to_numpy(float) > out[f"upper_{low_tag}"].to_numpy(float))
    cost = out[cost_per_event].to_numpy(float) if cost_per_event and cost_per_event in out else np.ones(len(out))
    out["excess_cost"] = np.where(valid, np.maximum(o - expected, 0) * np.nan_to_num(cost), np.nan)
    order = out["excess_cost"].where(out["flagged"]).rank(ascending=False, method="first")
    out["rank"] = order.astype("Int64")
    out["note"] = note
    out.attrs.update(phi=phi, phi_applied=bool(applied), n_slices=k, fdr=fdr)
    return out.sort_values(["rank", "z_adjusted"], ascending=[True, False], na_position="last").reset_index(drop=True)


def excess_p_value(observed, units, baseline_events, baseline_units, divisor=1.0) -> np.ndarray:
    """One-sided p of the conditional test O | O + B ~ Binomial(O + B, n / (n + m)) (interim version)."""
    from scipy.special import betainc

    o, n, b, m, d = (np.asarray(x, dtype=float) for x in (observed, units, baseline_events, baseline_units, divisor))
    o, total = o / d, (o + b) / d
    pi = n / (n + m)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(o <= 0, 1.0, betainc(np.maximum(o, 1e-12), np.maximum(total - o + 1, 1e-12), pi))
    return np.where((n > 0) & (m > 0), np.where(total > 0, p, 1.0), np.nan)
