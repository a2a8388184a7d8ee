"""Sample ratio mismatch (SRM): did the randomisation deliver the planned split?

A test whose arms do not have the planned sizes is broken (a redirect that drops customers,
a bot filter applied to one arm...), and its effect estimate is not trustworthy whatever the
interval says. Check it before reading any result (Fabijan et al. 2019, "Diagnosing Sample
Ratio Mismatch in Online Controlled Experiments", KDD).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from playbook.stats.results import _clean

__all__ = ["SrmResult", "sample_ratio_mismatch", "chi2_log_sf"]


@dataclass(frozen=True)
class SrmResult:
    """Result of a sample-ratio-mismatch check.

    Attributes:
        statistic: Pearson chi-square goodness-of-fit statistic (None on invalid input).
        df: degrees of freedom (number of arms - 1).
        p_value: ``chi2.sf(statistic, df)``; floored at the smallest positive float when it
            underflows (only for astronomically large imbalances, see ``p_value_floored``).
        log10_p_value: base-10 log of the tail probability (:func:`chi2_log_sf` / ln 10):
            exact even when ``p_value`` underflows, tells "1e-300" from "1e-3000".
        p_value_floored: True when ``p_value`` is the floor, not the real value.
        observed: counts per arm.
        expected: expected counts per arm (total × share).
        expected_shares: planned shares, normalised to sum to 1.
        threshold: p-value under which ``mismatch`` is flagged.
        mismatch: True when ``p_value < threshold``: stop and find the cause.
        error: why the check could not run (None when all is well).
    """

    statistic: float | None
    df: int
    p_value: float | None
    log10_p_value: float | None
    p_value_floored: bool
    observed: dict[str, int]
    expected: dict[str, float]
    expected_shares: dict[str, float]
    threshold: float
    mismatch: bool
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))

    def __str__(self) -> str:
        if self.error:
            return f"SRM check not available: {self.error}"
        verdict = "MISMATCH" if self.mismatch else "no mismatch"
        return (
            f"SRM {verdict}: chi2={self.statistic:.3g} (df={self.df}), "
            f"p={self.p_value:.3g}, observed={self.observed}"
        )


def chi2_log_sf(statistic: float, df: int) -> float:
    """Natural log of the chi-square upper tail, finite even where ``chi2.sf`` underflows.

    Uses ``scipy.stats.chi2.logsf`` while it is finite. scipy computes it as ``log(sf)``, which
    gives -inf once ``sf`` underflows (X² > ~1,400 for df=1), so beyond that the upper
    incomplete gamma function is expanded asymptotically (Abramowitz & Stegun 6.5.32)::

        Γ(a, y) ≈ y^(a-1) e^(-y) Σ_k (a-1)(a-2)...(a-k) / y^k,   a = df/2, y = X²/2

    Written by hand because scipy has no log upper incomplete gamma function.
    """
    log_p = float(stats.chi2.logsf(statistic, df))
    if math.isfinite(log_p):
        return log_p
    a, y = df / 2.0, statistic / 2.0
    total, term = 1.0, 1.0
    for k in range(1, 100):
        new = term * (a - k) / y
        if abs(new) >= abs(term):  # asymptotic series starts diverging: stop before
            break
        term = new
        total += term
        if abs(term) < 1e-17:
            break
    return (a - 1) * math.log(y) - y + math.log(total) - float(special.gammaln(a))


def _failed(observed, shares, threshold, error) -> SrmResult:
    return SrmResult(
        statistic=None, df=max(len(observed) - 1, 0), p_value=None, log10_p_value=None,
        p_value_floored=False, observed=dict(observed), expected={},
        expected_shares=dict(shares), threshold=threshold, mismatch=False, error=error,
    )


def sample_ratio_mismatch(
    observed_counts: Mapping[str, int],
    expected_shares: Mapping[str, float],
    threshold: float = 0.001,
) -> SrmResult:
    """Chi-square goodness-of-fit test of the arm sizes against the planned shares.

    Formula (Pearson)::

        E_k = N · share_k,   X² = Σ_k (O_k − E_k)² / E_k,   df = K − 1
        p   = P(χ²_df > X²)

    The statistic is ``scipy.stats.chisquare(observed, expected)``; the p-value is taken from
    ``scipy.stats.chi2.sf`` (upper tail computed directly, so it does not round to 0 the way
    ``1 − cdf`` does; it stays a positive float down to about 1e-308, i.e. X² ≈ 1,400 for two
    arms). Beyond that ``p_value`` is floored at the smallest positive normal float
    (``p_value_floored=True``) and ``log10_p_value`` (:func:`chi2_log_sf`, from ``chi2.logsf``
    with an asymptotic expansion where that underflows) keeps the exact magnitude.

    The default threshold 0.001 is the usual SRM alarm level (Fabijan et al. 2019): strict
    because the check runs every week on every test, and a real SRM is usually huge.

    Shares are normalised to sum to 1 (``{"A": 1, "B": 1}`` means 50/50). Arms must be the
    same keys in both mappings. Assumption: units assigned independently with the planned
    probabilities (no cluster assignment).
    """
    observed = {str(k): v for k, v in observed_counts.items()}
    shares = {str(k): v for k, v in expected_shares.items()}
    if not (0.0 < threshold < 1.0):
        return _failed(observed, shares, threshold, f"threshold must lie in (0, 1), got {threshold!r}")
    if set(observed) != set(shares):
        return _failed(
            observed, shares, threshold,
            f"arms differ: observed {sorted(observed)} vs expected {sorted(shares)}",
        )
    if len(observed) < 2:
        return _failed(observed, shares, threshold, "need at least two arms")
    keys = list(observed)
    try:
        obs = np.array([float(observed[k]) for k in keys])
        shr = np.array([float(shares[k]) for k in keys])
    except (TypeError, ValueError):
        return _failed(observed, shares, threshold, "counts and shares must be numbers")
    if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(shr))):
        return _failed(observed, shares, threshold, "counts and shares must be finite")
    if np.any(obs < 0):
        return _failed(observed, shares, threshold, "counts must be non-negative")
    if np.any(shr <= 0):
        return _failed(
            observed, shares, threshold,
            "every expected share must be positive (drop arms planned at 0%)",
        )
    total = obs.sum()
    if total == 0:
        return _failed(observed, shares, threshold, "no units observed in any arm")
    shr = shr / shr.sum()
    exp = total * shr
    statistic = float(stats.chisquare(obs, exp).statistic)
    df = len(keys) - 1
    p = float(stats.chi2.sf(statistic, df))
    log_p = chi2_log_sf(statistic, df)
    floored = p == 0.0
    if floored:
        p = float(np.finfo(float).tiny)
    return SrmResult(
        statistic=statistic,
        df=df,
        p_value=p,
        log10_p_value=log_p / math.log(10),
        p_value_floored=floored,
        observed={k: int(v) if float(v).is_integer() else float(v) for k, v in zip(keys, obs)},
        expected={k: float(e) for k, e in zip(keys, exp)},
        expected_shares={k: float(s) for k, s in zip(keys, shr)},
        threshold=threshold,
        mismatch=p < threshold,
        details={"total": int(total) if float(total).is_integer() else float(total)},
    )
