"""Empirical-Bayes shrinkage of many slice rates (beta-binomial).

A slice with 3 returns out of 8 units has a raw rate of 37.5 %, but that number says more
about luck than about the slice. Empirical Bayes borrows strength from all the slices: the
true rates of the slices are modelled as draws from one Beta(a, b) distribution, fitted on
the slices themselves, and each slice's rate is pulled towards the common mean in
proportion to how little data it has.

Model (Efron & Morris 1975; Gelman et al., *Bayesian Data Analysis*, 3rd ed., §5.3)::

    theta_i ~ Beta(a, b)                      true rate of slice i
    y_i | theta_i ~ Binomial(n_i, theta_i)    returned units out of delivered units

Marginally y_i is beta-binomial. The posterior of theta_i is Beta(a + y_i, b + n_i - y_i),
so the shrunk rate is ``(a + y_i) / (a + b + n_i)`` and a ``credible`` interval comes
from the Beta quantiles. ``n_i / (a + b + n_i)`` is the weight of the slice's own data.

Functions
---------
fit_beta_prior             fit (a, b) by maximum marginal likelihood or method of moments.
beta_binomial_shrinkage    posterior mean and credible interval for every slice.

Written by hand because statsmodels has no empirical-Bayes beta-binomial; the likelihood is
maximised with ``scipy.optimize.minimize``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from playbook.stats.results import _clean

__all__ = ["BetaPrior", "fit_beta_prior", "beta_binomial_shrinkage"]

#: Upper bound of the prior concentration a + b. Reaching it means the slices show no
#: detectable extra-binomial variation: every slice is shrunk (almost) fully to the mean.
MAX_CONCENTRATION = 1e8
_MIN_CONCENTRATION = 1e-3


@dataclass(frozen=True)
class BetaPrior:
    """A fitted Beta(alpha, beta) prior for slice rates.

    Attributes:
        alpha, beta: Beta parameters (None when the fit failed; see ``error``).
        method: ``"mle"`` (maximum beta-binomial marginal likelihood) or ``"moments"``.
        n_slices: slices used in the fit.
        at_boundary: True when the concentration hit ``MAX_CONCENTRATION`` (no detectable
            between-slice variation: the shrunk rates all equal the mean).
        error: why no prior could be fitted, in words.
        details: log-likelihood, starting values, optimiser message.
    """

    alpha: float | None
    beta: float | None
    method: str
    n_slices: int
    at_boundary: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.alpha is not None and self.beta is not None

    @property
    def mean(self) -> float | None:
        """Prior mean a / (a + b)."""
        return None if not self.ok else self.alpha / (self.alpha + self.beta)

    @property
    def concentration(self) -> float | None:
        """Prior 'sample size' a + b: a slice with that many units gets half weight."""
        return None if not self.ok else self.alpha + self.beta

    @property
    def between_sd(self) -> float | None:
        """Standard deviation of the true slice rates, sqrt(m (1 - m) / (a + b + 1))."""
        if not self.ok:
            return None
        m = self.mean
        return math.sqrt(m * (1 - m) / (self.alpha + self.beta + 1))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(mean=self.mean, concentration=self.concentration, between_sd=self.between_sd)
        return _clean(out)




def _as_float_arrays(events: Any, units: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(events, dtype=float).ravel()
    n = np.asarray(units, dtype=float).ravel()
    if y.shape != n.shape:
        raise ValueError(f"events and units differ in length: {y.shape[0]} vs {n.shape[0]}")
    return y, n


def _valid_mask(y: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.isfinite(y) & np.isfinite(n) & (n > 0) & (y >= 0) & (y <= n)


def _moments_rho(y: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Weighted method of moments for the mean and the intra-slice correlation rho.

    With mu = sum y / sum n, p_i = y_i / n_i and S = sum n_i (p_i - mu)^2, the beta-binomial
    model gives E[S] = mu (1 - mu) [(I - 1) + rho (N - sum n_i^2 / N - (I - 1))], with
    N = sum n_i, I = number of slices and rho = 1 / (a + b + 1) (Kleinman 1973, Biometrics
    29:213, weighted by n_i). Solved for rho and clipped to [0, 1).
    """
    big_n = n.sum()
    mu = y.sum() / big_n
    k = y.size
    s = np.sum(n * (y / n - mu) ** 2)
    denom = big_n - np.sum(n**2) / big_n - (k - 1)
    if mu <= 0 or mu >= 1 or denom <= 0:
        return mu, 0.0
    rho = (s / (mu * (1 - mu)) - (k - 1)) / denom
    return mu, float(min(max(rho, 0.0), 0.999))


def _neg_loglik(params: np.ndarray, y: np.ndarray, n: np.ndarray) -> float:
    """Minus the beta-binomial log-likelihood (without the binomial coefficients).

    log L = sum_i [ln B(a + y_i, b + n_i - y_i) - ln B(a, b)], parameterised by
    (logit mean, log concentration) so the optimiser is unconstrained. ``betaln`` accepts
    non-integer y_i, so weighted counts are allowed.
    """
    mean = special.expit(params[0])
    conc = math.exp(params[1])
    a, b = mean * conc, (1 - mean) * conc
    return -float(np.sum(special.betaln(a + y, b + n - y) - special.betaln(a, b)))


def fit_beta_prior(
    events: Any,
    units: Any,
    method: Literal["mle", "moments"] = "mle",
) -> BetaPrior:
    """Fit the Beta(a, b) prior of slice rates from ``events`` out of ``units`` per slice.

    ``method="moments"``: weighted method of moments (see ``_moments_rho``): mean
    mu = sum y / sum n, rho from the weighted spread, a + b = 1 / rho - 1.

    ``method="mle"`` (default): maximises the beta-binomial marginal likelihood
    ``sum ln B(a + y_i, b + n_i - y_i) - ln B(a, b)`` with L-BFGS-B over
    (logit mean, log(a + b)), started at the moments solution; a + b is bounded by
    ``MAX_CONCENTRATION`` (reaching it means no between-slice variation was detected).

    Slices with no units, missing values or events outside [0, units] are ignored. Never
    raises on data: fewer than 2 usable slices, or all rates 0 (or all 1), give a prior
    with ``error`` set.
    """
    y_all, n_all = _as_float_arrays(events, units)
    mask = _valid_mask(y_all, n_all)
    y, n = y_all[mask], n_all[mask]
    k = int(y.size)
    if method not in ("mle", "moments"):
        return BetaPrior(None, None, str(method), k, error=f"unknown method {method!r}")
    if k < 2:
        return BetaPrior(None, None, method, k,
                         error=f"{k} usable slice(s): a prior needs at least 2 slices with units")
    mu, rho = _moments_rho(y, n)
    if mu <= 0 or mu >= 1:
        return BetaPrior(
            None, None, method, k,
            error=f"every usable slice has a rate of {mu:.0f}: the prior is degenerate "
            "(no events to spread, nothing to shrink)",
        )
    conc_mom = MAX_CONCENTRATION if rho <= 0 else min(1.0 / rho - 1.0, MAX_CONCENTRATION)
    conc_mom = max(conc_mom, _MIN_CONCENTRATION)
    details: dict[str, Any] = {"moments_mean": mu, "moments_concentration": conc_mom}
    if method == "moments":
        at_boundary = conc_mom >= MAX_CONCENTRATION
        return BetaPrior(mu * conc_mom, (1 - mu) * conc_mom, "moments", k,
                         at_boundary=at_boundary, details=details)

    start = np.array([special.logit(mu), math.log(min(conc_mom, 1e6))])
    bounds = [(-30.0, 30.0), (math.log(_MIN_CONCENTRATION), math.log(MAX_CONCENTRATION))]
    res = optimize.minimize(_neg_loglik, start, args=(y, n), method="L-BFGS-B", bounds=bounds)
    mean = float(special.expit(res.x[0]))
    conc = float(math.exp(res.x[1]))
    at_boundary = res.x[1] >= bounds[1][1] - 1e-6
    details.update(loglik=-float(res.fun), converged=bool(res.success), message=str(res.message))
    if not np.isfinite(res.fun):
        return BetaPrior(None, None, "mle", k, error="beta-binomial likelihood is not finite",
                         details=details)
    return BetaPrior(mean * conc, (1 - mean) * conc, "mle", k, at_boundary=bool(at_boundary),
                     details=details)


def beta_binomial_shrinkage(
    events: Any,
    units: Any,
    prior: BetaPrior | None = None,
    method: Literal["mle", "moments"] = "mle",
    credible: float = 0.95,
) -> pd.DataFrame:
    """Shrunk (posterior-mean) rate and equal-tailed credible interval for every slice.

    Posterior of slice i: Beta(a + y_i, b + n_i - y_i), so::

        shrunk_rate   = (a + y_i) / (a + b + n_i)
        shrink_weight = n_i / (a + b + n_i)        (weight of the slice's own rate)
        shrunk_ci_*   = Beta quantiles at (1 - credible) / 2 and (1 + credible) / 2

    Assumption: exchangeable slices (true rates drawn from one Beta distribution) and
    independent units within a slice. The prior is plugged in (fitted by ``fit_beta_prior``
    unless given), so the interval ignores the prior's own uncertainty: slightly too narrow
    with few slices (Morris 1983, JASA 78:47).

    Returns a DataFrame aligned with the inputs (same length, index 0..n-1) with columns
    ``shrunk_rate, shrunk_ci_low, shrunk_ci_high, shrink_weight, note``. Rows that cannot be
    shrunk (no units, invalid counts, prior unavailable) carry NaN with the reason in
    ``note``; the fitted prior is in ``DataFrame.attrs["prior"]``.
    """
    y, n = _as_float_arrays(events, units)
    if prior is None:
        prior = fit_beta_prior(y, n, method=method)
    out = pd.DataFrame(
        {
            "shrunk_rate": np.full(y.size, np.nan),
            "shrunk_ci_low": np.full(y.size, np.nan),
            "shrunk_ci_high": np.full(y.size, np.nan),
            "shrink_weight": np.full(y.size, np.nan),
            "note": [""] * y.size,
        }
    )
    out.attrs["prior"] = prior.to_dict()
    if not (0.0 < credible < 1.0):
        out["note"] = f"credible must lie strictly between 0 and 1, got {credible!r}"
        return out
    if not prior.ok:
        out["note"] = f"shrinkage unavailable: {prior.error}"
        return out
    mask = _valid_mask(y, n)
    a_post = prior.alpha + y[mask]
    b_post = prior.beta + n[mask] - y[mask]
    lo_q, hi_q = (1 - credible) / 2, (1 + credible) / 2
    out.loc[mask, "shrunk_rate"] = a_post / (a_post + b_post)
    out.loc[mask, "shrunk_ci_low"] = stats.beta.ppf(lo_q, a_post, b_post)
    out.loc[mask, "shrunk_ci_high"] = stats.beta.ppf(hi_q, a_post, b_post)
    out.loc[mask, "shrink_weight"] = n[mask] / (prior.alpha + prior.beta + n[mask])
    bad_units = ~(np.isfinite(n) & (n > 0))
    bad_events = ~bad_units & ~mask
    out.loc[bad_units, "note"] = "no units: nothing to shrink"
    out.loc[bad_events, "note"] = "events missing or outside [0, units]: not shrunk"
    return out
