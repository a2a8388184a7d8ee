"""Difference in differences for a pre/post policy change on a cohort of slices.

When a lever cannot be randomised (a new size guide on one category, a stricter return
policy in some countries), the playbook compares the slices that got it (``treated``) with
those that did not, before and after ``start_week``. The estimate is the two-way fixed
effects (TWFE) regression::

    value_st = beta * treated_s * post_t + alpha_s + gamma_t + e_st

weighted by ``weight`` (e.g. units delivered), with standard errors clustered by slice
(the slice's weeks share shocks; Bertrand, Duflo & Mullainathan 2004, QJE 119:249).
Assumption: parallel trends (without the lever, treated slices would have moved like the
others) and no anticipation; a single common start date (no staggered adoption, for which
TWFE is biased: Goodman-Bacon 2021).

Functions
---------
difference_in_differences  beta with cluster-robust (CRV1) or wild-cluster-bootstrap inference.
event_study                treated x week coefficients relative to the last pre week.
pre_trend_check            joint Wald test that the pre-period coefficients are zero.
cohort_week_did            beta with inference on the weekly treated-minus-control gaps: sees
                           weekly shocks common to a whole cohort (the pre/post step uses it).
cohort_week_pre_trend      linear drift of those weekly gaps before the start.

Input: one row per slice and week with columns ``slice``, ``week`` (ordinal or dates),
``treated`` (bool, constant within a slice), ``value`` (the metric, e.g. return rate) and
``weight`` (volume). Rows with a missing value or a non-positive weight are dropped and
counted in ``details``.

References
----------
- Cameron A.C., Gelbach J.B., Miller D.L. (2008). Bootstrap-based improvements for
  inference with clustered errors. Review of Economics and Statistics 90:414-427.
- Cameron A.C., Miller D.L. (2015). A practitioner's guide to cluster-robust inference.
  Journal of Human Resources 50:317-372 (few clusters: under ~30-50, CRV1 over-rejects).
- MacKinnon J.G., Webb M.D. (2017). Wild bootstrap inference for wildly different cluster
  sizes. Journal of Applied Econometrics 32:233-254 (few *treated* clusters).
- Webb M.D. (2023). Reworking wild bootstrap-based inference for clustered errors.
  Canadian Journal of Economics 56:839-858 (six-point weights).
- Roodman D., MacKinnon J.G., Nielsen M.O., Webb M.D. (2019). Fast and wild: bootstrap
  inference in Stata using boottest. Stata Journal 19:4-60 (the algebra used below).
- Roth J. (2022). Pretest with caution: event-study estimates after testing for parallel
  trends. AER: Insights 4:305-322.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, TypedDict, Unpack

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from playbook.stats.results import Estimate, _clean

__all__ = [
    "PanelColumns",
    "PreTrendCheck",
    "cohort_week_did",
    "cohort_week_pre_trend",
    "difference_in_differences",
    "event_study",
    "pre_trend_check",
]

#: Below this many slices (clusters), CRV1 t-tests over-reject (Cameron & Miller 2015).
MIN_CLUSTERS = 30
#: Below this many treated (or control) slices, CRV1 over-rejects badly (MacKinnon & Webb 2017).
MIN_TREATED_CLUSTERS = 10
#: With fewer treated (or control) slices even the wild bootstrap is unreliable.
MIN_WILD_TREATED_CLUSTERS = 5




# --------------------------------------------------------------------------------------
# Panel preparation
# --------------------------------------------------------------------------------------


class PanelColumns(TypedDict, total=False):
    """The keyword arguments every public function here takes to read the slice panel (defaults: ``_prepare``).

    ``slice_col`` ("slice"), ``week_col`` ("week"), ``treated_col`` ("treated"), ``value_col`` ("value"):
    column names; ``weight_col`` ("weight"; None: every row weighs 1): the rows' weights.
    """

    slice_col: str
    week_col: str
    treated_col: str
    value_col: str
    weight_col: str | None


@dataclass
class _Panel:
    y: np.ndarray
    w: np.ndarray
    slice_code: np.ndarray
    week_code: np.ndarray
    weeks: np.ndarray           # sorted unique weeks
    treated_slice: np.ndarray   # bool per slice code
    treated: np.ndarray         # bool per row
    post: np.ndarray            # bool per row
    start_pos: int              # index in weeks of the first post week
    details: dict[str, Any]
    error: str | None = None

    @property
    def n_slices(self) -> int:
        return int(self.treated_slice.size)


def _prepare(
    df: pd.DataFrame,
    start_week: Any,
    slice_col: str = "slice",
    week_col: str = "week",
    treated_col: str = "treated",
    value_col: str = "value",
    weight_col: str | None = "weight",
) -> _Panel:
    """The panel of ``df`` kept for the fit, in the columns of ``PanelColumns`` (defaults here), or why it cannot be fitted."""
    data = df[[c for c in (slice_col, week_col, treated_col, value_col, weight_col) if c]].copy()
    y_all = pd.to_numeric(data[value_col], errors="coerce").to_numpy(dtype=float)
    w_all = (np.ones(len(data)) if weight_col is None
             else pd.to_numeric(data[weight_col], errors="coerce").to_numpy(dtype=float))
    keep = np.isfinite(y_all) & np.isfinite(w_all) & (w_all > 0) & data[week_col].notna().to_numpy()
    details: dict[str, Any] = {"rows": int(len(data)), "rows_dropped": int(np.sum(~keep))}
    data = data.loc[keep]
    week = data[week_col]
    if pd.api.types.is_datetime64_any_dtype(week):
        start = pd.Timestamp(start_week)
    else:
        start = start_week
    weeks, week_code = np.unique(week.to_numpy(), return_inverse=True)
    slice_code, slices = pd.factorize(data[slice_col], sort=True)
    treated_rows = data[treated_col].astype(bool).to_numpy()
    g = len(slices)
    t_sum = np.bincount(slice_code, weights=treated_rows, minlength=g)
    n_rows = np.bincount(slice_code, minlength=g)
    treated_slice = t_sum > 0
    error = None
    if np.any((t_sum > 0) & (t_sum < n_rows)):
        bad = [str(s) for s in np.asarray(slices)[(t_sum > 0) & (t_sum < n_rows)][:5]]
        error = f"treated must be constant within a slice; it changes in {', '.join(bad)}"
    post_week = np.asarray(weeks >= start)
    start_pos = int(np.argmax(post_week)) if post_week.any() else len(weeks)
    post = post_week[week_code]
    details.update(
        n_slices=g,
        n_treated_slices=int(treated_slice.sum()),
        n_control_slices=int((~treated_slice).sum()),
        n_weeks=int(len(weeks)),
        n_pre_weeks=int(start_pos),
        n_post_weeks=int(len(weeks) - start_pos),
        n_obs=int(keep.sum()),
    )
    if error is None:
        if len(data) == 0:
            error = "no usable row (missing values or non-positive weights)"
        elif g < 2:
            error = f"{g} slice: clustered inference needs at least 2 slices (clusters)"
        elif not treated_slice.any():
            error = "no treated slice: nothing to compare"
        elif treated_slice.all():
            error = "every slice is treated: no control slice to compare with"
        elif start_pos == 0:
            error = f"no week before start_week={start_week!r}: no pre-period"
        elif start_pos == len(weeks):
            error = f"no week on or after start_week={start_week!r}: no post-period"
        else:
            tr = treated_slice[slice_code]
            for cond, msg in (
                (tr & ~post, "treated slices have no pre-period row"),
                (tr & post, "treated slices have no post-period row"),
                (~tr & ~post, "control slices have no pre-period row"),
                (~tr & post, "control slices have no post-period row"),
            ):
                if not cond.any():
                    error = msg
                    break
    return _Panel(
        y=y_all[keep], w=w_all[keep], slice_code=slice_code.astype(np.int64),
        week_code=week_code.astype(np.int64), weeks=weeks, treated_slice=treated_slice,
        treated=treated_slice[slice_code], post=post, start_pos=start_pos, details=details,
        error=error,
    )


def _fixed_effects(panel: _Panel) -> np.ndarray:
    """Intercept + slice dummies + week dummies (first level of each dropped)."""
    n = panel.y.size
    g, t = panel.n_slices, len(panel.weeks)
    fe = np.zeros((n, 1 + (g - 1) + (t - 1)))
    fe[:, 0] = 1.0
    rows = np.arange(n)
    s = panel.slice_code
    fe[rows[s > 0], s[s > 0]] = 1.0
    wk = panel.week_code
    fe[rows[wk > 0], (g - 1) + wk[wk > 0]] = 1.0
    return fe


def _no_residual_variance(res: Any, panel: _Panel) -> bool:
    """True when the fixed effects (and regressors) reproduce every value up to rounding."""
    ybar = np.average(panel.y, weights=panel.w)
    tss = float(np.sum(panel.w * (panel.y - ybar) ** 2))
    return float(res.ssr) <= 1e-20 * max(tss, 1e-300) or tss == 0.0


def _fit_cluster(y: np.ndarray, x: np.ndarray, w: np.ndarray, groups: np.ndarray):
    """statsmodels WLS with CRV1 cluster-robust covariance and t(G - 1) inference."""
    model = sm.WLS(y, x, weights=w)
    res = model.fit(cov_type="cluster",
                    cov_kwds={"groups": groups, "use_correction": True, "df_correction": True},
                    use_t=True)
    # An exact fit leaves rounding-negative variances whose square root is NaN: the callers read NaN
    # as "no variation" (_no_residual_variance). Computed once here, quietly (statsmodels caches it),
    # so that no RuntimeWarning reaches a notebook's output.
    with np.errstate(invalid="ignore"):
        res.bse  # noqa: B018
    return res


# --------------------------------------------------------------------------------------
# Wild cluster bootstrap (restricted, WCR), in Frisch-Waugh-Lovell form
# --------------------------------------------------------------------------------------


def _bootstrap_weights(kind: str, b: int, g: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=(b, g))
    if kind == "webb":
        pts = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0,
                        math.sqrt(1.5)])
        return rng.choice(pts, size=(b, g))
    raise ValueError(f"unknown bootstrap weights {kind!r}")


def _residual_maker(x: np.ndarray, sw: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """M: v -> v minus its least-squares projection on the columns of ``x`` scaled by ``sw`` (sqrt of the weights).

    Columns collinear with earlier ones are dropped through the QR decomposition's diagonal, so that M
    partials out the span of ``x`` whatever its rank (the Frisch-Waugh-Lovell form of both bootstraps).
    """
    q, r = np.linalg.qr(x * sw[:, None])
    keep = np.abs(np.diag(r)) > 1e-10 * max(1.0, np.abs(np.diag(r)).max())
    q = q[:, keep]

    def resid(v):
        return v - q @ (q.T @ v)

    return resid


class _WildClusterBootstrap:
    """Restricted wild cluster bootstrap-t for one coefficient (WCR; CGM 2008).

    Work in the sqrt(weight)-scaled, fixed-effect-partialled space (Frisch-Waugh-Lovell):
    d = M D, y = M Y with M the residual maker of the fixed effects. For a null value b0 the
    restricted residuals are u(b0) = y - b0 d; a bootstrap sample is
    Y* = fitted(b0) + v_g u(b0) with one weight v_g per cluster. Because everything is
    linear (Roodman et al. 2019):

        beta* - b0      = sum_g v_g a_g / d'd,            a_g = sum_{i in g} d_i u_i
        score*_g        = sum_h C_gh v_h - (beta* - b0) sum_{i in g} d_i^2,
        C_gh            = sum_{i in g} d_i [M (u 1_h)]_i
        t*              = (beta* - b0) / sqrt(c sum_g score*_g^2 / (d'd)^2)

    with c the CRV1 factor G/(G-1) (N-1)/(N-K). C and a are linear in b0, so the p-value
    p(b0) = share of |t*| >= |t(b0)| is cheap for any b0 and the interval is found by
    inverting it (bisection). The same draws v are used for every b0.
    Written by hand because statsmodels has no wild cluster bootstrap.
    """

    def __init__(self, y, d_raw, fe, w, groups, n_groups, k_params, weights_kind, b, seed):
        sw = np.sqrt(w)
        resid = _residual_maker(fe, sw)
        self.d = resid(d_raw * sw)
        self.y = resid(y * sw)
        self.dd = float(self.d @ self.d)
        n = y.size
        self.g = n_groups
        onehot = np.zeros((n, n_groups))
        onehot[np.arange(n), groups] = 1.0
        self.groups = groups
        self.c = n_groups / (n_groups - 1) * (n - 1) / (n - k_params)
        dg = self.d[:, None] * onehot
        self.dg2 = np.bincount(groups, weights=self.d**2, minlength=n_groups)
        # C(b0) = C_y - b0 C_d
        self.c_y = dg.T @ resid(self.y[:, None] * onehot)
        self.c_d = dg.T @ resid(self.d[:, None] * onehot)
        self.a_y = self.c_y.sum(axis=1)
        self.a_d = self.c_d.sum(axis=1)
        self.beta = float(self.d @ self.y) / self.dd
        e = self.y - self.d * self.beta
        score = np.bincount(groups, weights=self.d * e, minlength=n_groups)
        self.se = math.sqrt(self.c * float(score @ score)) / self.dd
        rng = np.random.default_rng(seed)
        self.v = _bootstrap_weights(weights_kind, b, n_groups, rng)

    def t_stats(self, b0: float) -> np.ndarray:
        cmat = self.c_y - b0 * self.c_d
        a = self.a_y - b0 * self.a_d
        delta = self.v @ a / self.dd
        scores = self.v @ cmat.T - delta[:, None] * self.dg2[None, :]
        var = self.c * np.sum(scores**2, axis=1) / self.dd**2
        with np.errstate(divide="ignore", invalid="ignore"):
            return delta / np.sqrt(var)

    def p_value(self, b0: float) -> float:
        t_obs = (self.beta - b0) / self.se
        t_star = self.t_stats(b0)
        return float(np.mean(np.abs(t_star) >= abs(t_obs) - 1e-12))

    def interval(self, alpha: float) -> tuple[float | None, float | None]:
        bounds = []
        for sign in (-1.0, 1.0):
            inner = self.beta
            step = self.se
            outer = self.beta + sign * step
            tries = 0
            while self.p_value(outer) > alpha and tries < 40:
                inner = outer
                step *= 2
                outer = self.beta + sign * step
                tries += 1
            if tries >= 40:
                bounds.append(None)
                continue
            for _ in range(60):
                mid = 0.5 * (inner + outer)
                if self.p_value(mid) > alpha:
                    inner = mid
                else:
                    outer = mid
                if abs(outer - inner) < 1e-7 * max(self.se, 1e-12):
                    break
            bounds.append(0.5 * (inner + outer))
        return bounds[0], bounds[1]


class _WildClusterWald:
    """Restricted wild cluster bootstrap of a joint cluster-robust Wald statistic.

    H0: the q coefficients of ``x_test`` are all 0. In FWL form (sqrt(weight)-scaled, the
    other regressors partialled out by M): Z = M X_test, y = M Y, beta = A Z'y with
    A = (Z'Z)^-1, CRV1 covariance V = c A (sum_g s_g s_g') A with s_g = Z_g' e_g, and
    W = beta' V^-1 beta. Under H0 the restricted residuals are u = y; a bootstrap sample
    Y* = fitted_0 + v_g u gives (Roodman et al. 2019, extended to q restrictions)::

        beta*   = A sum_g v_g Z_g' u_g
        s*_g    = sum_h v_h C_g,h - (Z_g' Z_g) beta*,   C_g,h = Z_g' [M (u 1_h)]_g

    and W* from the same CRV1 formula; p = share of W* >= W (Cameron, Gelbach & Miller
    2008 recommend exactly this restricted bootstrap for Wald tests with few clusters).
    Written by hand because statsmodels has no wild cluster bootstrap.
    """

    def __init__(self, y, x_test, x_keep, w, groups, n_groups, k_params, weights_kind, b,
                 seed):
        sw = np.sqrt(w)
        resid = _residual_maker(x_keep, sw)
        n = y.size
        z = resid(x_test * sw[:, None])
        u = resid(y * sw)
        onehot = np.zeros((n, n_groups))
        onehot[np.arange(n), groups] = 1.0
        self.c = n_groups / (n_groups - 1) * (n - 1) / (n - k_params)
        self.a = np.linalg.inv(z.T @ z)
        self.beta = self.a @ (z.T @ u)
        e = u - z @ self.beta
        s = onehot.T @ (z * e[:, None])                       # G x q
        self.cov = self.c * self.a @ (s.T @ s) @ self.a
        self.wald = float(self.beta @ np.linalg.solve(self.cov, self.beta))
        self.zu = onehot.T @ (z * u[:, None])                  # G x q: Z_g' u_g
        mu = resid(u[:, None] * onehot)                        # N x G: M(u 1_h)
        q = z.shape[1]
        self.cmat = np.stack([(onehot * z[:, j:j + 1]).T @ mu for j in range(q)])  # q x G x G
        self.zz = (onehot.T @ (z[:, :, None] * z[:, None, :]).reshape(n, q * q)).reshape(
            n_groups, q, q)                                    # G x q x q
        rng = np.random.default_rng(seed)
        self.v = _bootstrap_weights(weights_kind, b, n_groups, rng)

    def p_value(self) -> float:
        b = self.v.shape[0]
        q, g = self.cmat.shape[0], self.cmat.shape[1]
        beta_star = (self.v @ self.zu) @ self.a                # B x q
        first = (self.v @ self.cmat.reshape(q * g, g).T).reshape(b, q, g).transpose(0, 2, 1)
        second = (beta_star @ self.zz.reshape(g * q, q).T).reshape(b, g, q)
        scores = first - second                                # B x G x q
        meat = np.matmul(scores.transpose(0, 2, 1), scores)   # B x q x q
        cov = self.c * np.matmul(np.matmul(self.a, meat), self.a)
        sol = np.linalg.solve(cov, beta_star[:, :, None])[:, :, 0]
        w_star = np.sum(beta_star * sol, axis=1)
        return float(np.mean(w_star >= self.wald - 1e-12))


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def difference_in_differences(
    df: pd.DataFrame,
    start_week: Any,
    confidence: float = 0.95,
    *,
    inference: Literal["auto", "cluster", "wild"] = "auto",
    bootstrap_weights: Literal["auto", "rademacher", "webb"] = "auto",
    n_boot: int = 1999,
    seed: int | None = 0,
    min_clusters: int = MIN_CLUSTERS,
    min_treated_clusters: int = MIN_TREATED_CLUSTERS,
    **columns: Unpack[PanelColumns],
) -> Estimate:
    """TWFE difference-in-differences with slice-clustered inference.

    Model: WLS of ``value ~ treated:post + C(slice) + C(week)`` weighted by ``weight``
    (post = week >= ``start_week``); the estimate is the coefficient of treated x post. On
    a balanced 2 x 2 design it equals (mean_T,post - mean_T,pre) - (mean_C,post - mean_C,pre).

    Inference:

    - ``"cluster"``: ``statsmodels`` ``cov_type="cluster"`` (CRV1, small-sample factor
      G/(G-1) (N-1)/(N-K) with K counting every dummy), t distribution with G - 1 degrees of
      freedom. Method ``"did-twfe-cluster"``.
    - ``"wild"``: restricted wild cluster bootstrap-t (WCR, Cameron, Gelbach & Miller
      2008), ``n_boot`` draws, Rademacher weights or Webb's six-point weights (default when
      fewer than 12 slices); p-value for beta = 0 and interval by test inversion (see
      ``_WildClusterBootstrap``). Method ``"did-twfe-wild-bootstrap"``; the CRV1 numbers are
      kept in ``details``.
    - ``"auto"`` (default): ``"cluster"`` when there are at least ``min_clusters`` slices
      and at least ``min_treated_clusters`` treated and control slices, else ``"wild"``.

    ``details["inference"]`` says which was used and ``details["warning"]`` why, when the
    design is thin (few clusters, fewer than 5 treated or control slices: even the wild
    bootstrap is unreliable there, MacKinnon & Webb 2017). Never raises on data: a single
    slice, no treated or control slice, no pre or post week, or zero residual variance give
    an ``error``.
    """
    method = "did-twfe-cluster"
    if not (0.0 < confidence < 1.0):
        return Estimate.unavailable(method, 0, f"confidence must lie in (0, 1), got {confidence!r}")
    panel = _prepare(df, start_week, **columns)
    details = dict(panel.details)
    if panel.error:
        return Estimate.unavailable(method, panel.n_slices, panel.error, **details)
    g = panel.n_slices
    n_tr, n_co = details["n_treated_slices"], details["n_control_slices"]
    warnings = []
    if g < min_clusters:
        warnings.append(f"only {g} slices (clusters): CRV1 standard errors are too small below "
                        f"about {min_clusters} clusters")
    if min(n_tr, n_co) < min_treated_clusters:
        warnings.append(f"{n_tr} treated and {n_co} control slices: CRV1 over-rejects when "
                        f"either is below about {min_treated_clusters}")
    if min(n_tr, n_co) < MIN_WILD_TREATED_CLUSTERS:
        warnings.append(f"fewer than {MIN_WILD_TREATED_CLUSTERS} treated or control slices: "
                        "even the wild cluster bootstrap is unreliable (MacKinnon & Webb 2017); "
                        "treat the interval as indicative")
    if inference == "auto":
        inference = "wild" if (g < min_clusters or min(n_tr, n_co) < min_treated_clusters) \
            else "cluster"
    if inference not in ("cluster", "wild"):
        return Estimate.unavailable(method, g, f"unknown inference {inference!r}", **details)

    d_raw = (panel.treated & panel.post).astype(float)
    fe = _fixed_effects(panel)
    x = np.column_stack([d_raw, fe])
    res = _fit_cluster(panel.y, x, panel.w, panel.slice_code)
    beta = float(res.params[0])
    se = float(res.bse[0])
    # Is treated x post identified (not collinear with the fixed effects)?
    boot = _WildClusterBootstrap(panel.y, d_raw, fe, panel.w, panel.slice_code, g, x.shape[1],
                                 "rademacher", 1, seed)
    if boot.dd <= 1e-12 * max(1.0, float(np.sum(panel.w * d_raw**2))):
        return Estimate.unavailable(method, g, "treated x post is collinear with the slice and "
                                    "week effects: not identified", **details)
    ci = res.conf_int(alpha=1 - confidence)[0]
    details.update(inference=inference, std_error=se, df=int(g - 1),
                   cluster_ci_low=float(ci[0]), cluster_ci_high=float(ci[1]),
                   cluster_p_value=float(res.pvalues[0]))
    if warnings:
        details["warning"] = "; ".join(warnings)
    if not (math.isfinite(se) and se > 0) or _no_residual_variance(res, panel):
        return Estimate(beta, None, None, method, g, confidence=confidence,
                        error="zero residual variance: the fixed effects fit every value "
                        "exactly; no interval", details=details)
    if inference == "cluster":
        return Estimate(beta, float(ci[0]), float(ci[1]), method, g,
                        p_value=float(res.pvalues[0]), confidence=confidence, details=details)

    method = "did-twfe-wild-bootstrap"
    kind = bootstrap_weights if bootstrap_weights != "auto" else (
        "webb" if g < 12 else "rademacher")
    wb = _WildClusterBootstrap(panel.y, d_raw, fe, panel.w, panel.slice_code, g, x.shape[1],
                               kind, int(n_boot), seed)
    p = wb.p_value(0.0)
    lo, hi = wb.interval(1 - confidence)
    details.update(bootstrap="restricted wild cluster bootstrap-t (WCR)", bootstrap_weights=kind,
                   n_boot=int(n_boot), seed=seed)
    err = None if (lo is not None and hi is not None) else \
        "the bootstrap interval is unbounded on one side (too few clusters)"
    return Estimate(beta, lo, hi, method, g, p_value=p, confidence=confidence, error=err,
                    details=details)


def _event_design(panel: _Panel):
    """Treated x week dummies for every week except the reference (last pre week)."""
    ref = panel.start_pos - 1
    cols = [t for t in range(len(panel.weeks)) if t != ref]
    x_ev = np.zeros((panel.y.size, len(cols)))
    for j, t in enumerate(cols):
        x_ev[:, j] = (panel.treated & (panel.week_code == t)).astype(float)
    return x_ev, cols, ref


def event_study(
    df: pd.DataFrame,
    start_week: Any,
    confidence: float = 0.95,
    **columns: Unpack[PanelColumns],
) -> pd.DataFrame:
    """Dynamic DiD: one treated x week coefficient per week, relative to the last pre week.

    WLS ``value ~ sum_{t != ref} treated:1{week = t} + C(slice) + C(week)`` weighted by
    ``weight``, ref = the last week before ``start_week``; CRV1 by slice, t(G - 1)
    intervals (statsmodels ``cov_type="cluster"``). Pre-period coefficients show whether
    the treated slices were already drifting before the lever (parallel-trends check);
    post-period ones show how the effect builds up.

    Returns a DataFrame with columns ``week, relative_week, period, estimate, std_error,
    ci_low, ci_high, p_value, note``: ``relative_week`` = position relative to the first
    post week (reference = -1), ``period`` in {"pre", "reference", "post"}; the reference
    row has estimate 0 by construction and no interval (said in ``note``). When the design
    cannot be estimated the frame is empty and ``attrs["error"]`` says why; ``attrs`` also
    hold ``n_slices`` and a ``warning`` when there are fewer than 30 slices.
    """
    cols_out = ["week", "relative_week", "period", "estimate", "std_error", "ci_low", "ci_high",
                "p_value", "note"]
    panel = _prepare(df, start_week, **columns)
    if panel.error:
        out = pd.DataFrame(columns=cols_out)
        out.attrs.update(error=panel.error, **panel.details)
        return out
    x_ev, cols, ref = _event_design(panel)
    fe = _fixed_effects(panel)
    x = np.column_stack([x_ev, fe])
    res = _fit_cluster(panel.y, x, panel.w, panel.slice_code)
    ci = res.conf_int(alpha=1 - confidence)
    rows = []
    for t in range(len(panel.weeks)):
        rel = t - panel.start_pos
        if t == ref:
            rows.append([panel.weeks[t], rel, "reference", 0.0, np.nan, np.nan, np.nan, np.nan,
                         "reference week: coefficient set to 0, no interval"])
            continue
        j = cols.index(t)
        se = float(res.bse[j])
        note = "" if (math.isfinite(se) and se > 0) else "no variation: standard error undefined"
        rows.append([panel.weeks[t], rel, "pre" if t < panel.start_pos else "post",
                     float(res.params[j]), se, float(ci[j, 0]), float(ci[j, 1]),
                     float(res.pvalues[j]), note])
    out = pd.DataFrame(rows, columns=cols_out)
    if _no_residual_variance(res, panel):
        est = out["period"] != "reference"
        out.loc[est, ["std_error", "ci_low", "ci_high", "p_value"]] = np.nan
        out.loc[est, "note"] = "zero residual variance: no interval"
    out.attrs.update(panel.details, confidence=confidence, inference="cluster (CRV1, t(G-1))")
    if panel.n_slices < MIN_CLUSTERS:
        out.attrs["warning"] = (f"only {panel.n_slices} slices (clusters): CRV1 intervals are "
                                "too narrow below about 30 clusters")
    return out


@dataclass(frozen=True)
class PreTrendCheck:
    """Joint test that all pre-period event-study coefficients are zero.

    Attributes:
        statistic: Wald statistic b' V^-1 b (method "wald-cluster-wild-bootstrap", p-value
            from the bootstrap, df_denom None) or F = that / q (method "wald-cluster-F",
            p-value from F(df_num, df_denom = G - 1)); df_num = number of pre coefficients.
        warning: set when p_value < alpha: the treated slices were already drifting,
            parallel trends are doubtful and the DiD estimate may be biased.
        note: the limits of the check (low power; Roth 2022).
        error: why the test could not be run.
    """

    statistic: float | None
    df_num: int | None
    df_denom: int | None
    p_value: float | None
    n_pre_coefficients: int
    alpha: float
    warning: str | None
    method: str = "wald-cluster-F"
    note: str = ("a non-significant pre-trend test does not prove parallel trends: it has low "
                 "power with few weeks or slices, and conditioning on passing it biases the "
                 "estimate (Roth 2022); look at the event-study plot")
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def pre_trend_check(
    df: pd.DataFrame,
    start_week: Any,
    alpha: float = 0.05,
    *,
    inference: Literal["wild", "F"] = "wild",
    bootstrap_weights: Literal["auto", "rademacher", "webb"] = "auto",
    n_boot: int = 999,
    seed: int | None = 0,
    **columns: Unpack[PanelColumns],
) -> PreTrendCheck:
    """Joint test of H0: every pre-period treated x week coefficient is 0.

    Fits the :func:`event_study` model and tests its q = (pre weeks - 1) pre-period
    coefficients b jointly with the slice-clustered covariance V (CRV1):
    W = b' V^-1 b.

    - ``inference="wild"`` (default): p-value from the restricted wild cluster bootstrap of
      W (``_WildClusterWald``; Cameron, Gelbach & Miller 2008), ``n_boot`` draws,
      Rademacher weights (Webb's six-point weights below 12 slices).
    - ``inference="F"``: F = W / q against F(q, G - 1), as ``statsmodels``
      ``wald_test(use_f=True)`` does. It over-rejects: in our A/A simulation (40 slices,
      20 weeks, AR(1) noise, 9 pre coefficients) it rejected 19 % of the time at 5 %,
      because V is estimated from only G clusters; it is always reported in ``details``.

    With q > G - 1 the clustered covariance is singular and the test is not run. Returns
    :class:`PreTrendCheck`; ``warning`` is set when p < ``alpha``.
    """
    panel = _prepare(df, start_week, **columns)
    method = "wald-cluster-wild-bootstrap" if inference == "wild" else "wald-cluster-F"
    if panel.error:
        return PreTrendCheck(None, None, None, None, 0, alpha, None, method=method,
                             error=panel.error, details=panel.details)
    x_ev, cols, ref = _event_design(panel)
    pre_idx = [j for j, t in enumerate(cols) if t < panel.start_pos]
    post_idx = [j for j, t in enumerate(cols) if t >= panel.start_pos]
    q, g = len(pre_idx), panel.n_slices
    if q == 0:
        return PreTrendCheck(None, None, None, None, 0, alpha, None, method=method,
                             error="only one pre-period week (the reference): no pre-trend to "
                             "test", details=panel.details)
    if q > g - 1:
        return PreTrendCheck(None, None, None, None, q, alpha, None, method=method,
                             error=f"{q} pre-period coefficients but only {g} slices: the "
                             "clustered covariance is singular, the joint test is undefined",
                             details=panel.details)
    fe = _fixed_effects(panel)
    x = np.column_stack([x_ev, fe])
    res = _fit_cluster(panel.y, x, panel.w, panel.slice_code)
    r = np.zeros((q, x.shape[1]))
    r[np.arange(q), pre_idx] = 1.0
    wt = res.wald_test(r, use_f=True, scalar=True)
    f_stat = float(np.squeeze(wt.statistic))
    f_p = float(np.squeeze(wt.pvalue))
    details = dict(panel.details, cluster_F=f_stat, cluster_F_p_value=f_p,
                   cluster_F_df=[q, int(g - 1)])
    if not (math.isfinite(f_stat) and math.isfinite(f_p)) or _no_residual_variance(res, panel):
        return PreTrendCheck(None, q, int(g - 1), None, q, alpha, None, method=method,
                             error="zero residual variance, or a singular clustered covariance "
                             "of the pre-period coefficients: nothing to test",
                             details=details)
    if inference == "F":
        stat, p, df_num, df_denom = f_stat, f_p, q, int(g - 1)
    elif inference == "wild":
        kind = bootstrap_weights if bootstrap_weights != "auto" else (
            "webb" if g < 12 else "rademacher")
        boot = _WildClusterWald(panel.y, x_ev[:, pre_idx],
                                np.column_stack([x_ev[:, post_idx], fe]), panel.w,
                                panel.slice_code, g, x.shape[1], kind, int(n_boot), seed)
        stat, p, df_num, df_denom = boot.wald, boot.p_value(), q, None
        details.update(bootstrap="restricted wild cluster bootstrap of the Wald statistic",
                       bootstrap_weights=kind, n_boot=int(n_boot), seed=seed)
    else:
        return PreTrendCheck(None, None, None, None, q, alpha, None, method=str(inference),
                             error=f"unknown inference {inference!r}", details=details)
    warning = None
    if p < alpha:
        warning = (f"pre-period coefficients differ jointly from zero (Wald={stat:.2f}, "
                   f"p={p:.3g}): the treated slices were already drifting before the lever; "
                   "parallel trends are doubtful and the DiD estimate may be biased")
    return PreTrendCheck(stat, df_num, df_denom, p, q, alpha, warning, method=method,
                         details=details)


# --------------------------------------------------------------------------------------
# Cohort x week inference: weekly shocks common to a whole cohort
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WeeklyGaps:
    """The treated-minus-control gap of each week, split into pre and post weeks."""

    weeks: np.ndarray
    gap: np.ndarray
    post: np.ndarray
    details: dict[str, Any]
    error: str | None = None


def _weekly_gaps(df: pd.DataFrame, start_week: Any, **columns: Unpack[PanelColumns]) -> _WeeklyGaps:
    """Collapse the slice panel to one value per arm and week (weighted by ``weight``).

    The treated (control) value of a week is sum(value x weight) / sum(weight) over its
    slices, i.e. the cohort's own ratio that week when value = num / weight.
    """
    panel = _prepare(df, start_week, **columns)
    details = dict(panel.details)
    empty = np.array([])
    if panel.error:
        return _WeeklyGaps(empty, empty, empty.astype(bool), details, panel.error)
    n_weeks = len(panel.weeks)
    arm = panel.treated.astype(np.int64)
    key = panel.week_code * 2 + arm
    num = np.bincount(key, weights=panel.y * panel.w, minlength=2 * n_weeks).reshape(n_weeks, 2)
    den = np.bincount(key, weights=panel.w, minlength=2 * n_weeks).reshape(n_weeks, 2)
    both = np.all(den > 0, axis=1)  # a week missing one arm tells nothing about the gap
    with np.errstate(invalid="ignore", divide="ignore"):
        value = num / den
    gap = value[both, 1] - value[both, 0]
    post = np.arange(n_weeks)[both] >= panel.start_pos
    details.update(n_weeks_with_both_arms=int(both.sum()), n_pre_weeks=int((~post).sum()),
                   n_post_weeks=int(post.sum()))
    error = None
    if (~post).sum() < 2:
        error = (f"{int((~post).sum())} pre-period week(s) with both cohorts: at least 2 are needed "
                 "to see how much the weekly gap moves without the lever")
    elif post.sum() < 1:
        error = "no post-period week with both cohorts"
    return _WeeklyGaps(panel.weeks[both], gap, post, details, error)


def cohort_week_did(
    df: pd.DataFrame,
    start_week: Any,
    confidence: float = 0.95,
    **columns: Unpack[PanelColumns],
) -> Estimate:
    """Difference in differences with inference at the cohort x week level.

    The slice panel is collapsed to the treated cohort's and the control cohort's value of
    each week (weighted by ``weight``), and to their gap g_t = treated_t - control_t. The
    estimate is mean(g, post weeks) - mean(g, pre weeks), each week counting once; its
    standard error is s sqrt(1/n_pre + 1/n_post), with s the pooled standard deviation of
    the weekly gaps around their pre and post means, and the interval and two-sided
    p-value come from t with n_pre + n_post - 2 degrees of freedom. Method
    ``"did-cohort-week-t"``.

    Why not cluster by slice: a shock common to every slice of the treated cohort in a
    week (a promotion, a carrier problem, the weather) moves all its slices together, so
    clustering by slice sees it as part of the effect; with one treated cohort the
    treated cohort's own error cannot be learnt from its slices (Conley & Taber 2011,
    Review of Economics and Statistics 93:113; Bertrand, Duflo & Mullainathan 2004, QJE
    119:249). Aggregating to group x period cells and using t with few degrees of freedom
    is Donald & Lang (2007, Review of Economics and Statistics 89:221); here the
    replications that teach how far the gap moves without the lever are the pre-period
    weeks themselves, i.e. every pre week is a placebo start week.

    Assumption: the weekly gaps are independent with a common variance before and after
    the start, and their mean would not have changed without the lever (parallel trends);
    approximately normal (sums of many units). Serially correlated gaps make the interval
    too narrow. Never raises on data: fewer than 2 pre weeks or no post week with both
    cohorts gives an ``error``.
    """
    method = "did-cohort-week-t"
    if not (0.0 < confidence < 1.0):
        return Estimate.unavailable(method, 0, f"confidence must lie in (0, 1), got {confidence!r}")
    gaps = _weekly_gaps(df, start_week, **columns)
    n_weeks = int(gaps.gap.size)
    if gaps.error:
        return Estimate.unavailable(method, n_weeks, gaps.error, **gaps.details)
    pre, post = gaps.gap[~gaps.post], gaps.gap[gaps.post]
    n_pre, n_post = pre.size, post.size
    beta = float(post.mean() - pre.mean())
    dof = n_pre + n_post - 2
    ss = float(np.sum((pre - pre.mean()) ** 2) + np.sum((post - post.mean()) ** 2))
    sd = math.sqrt(ss / dof)
    se = sd * math.sqrt(1.0 / n_pre + 1.0 / n_post)
    details = dict(gaps.details, std_error=se, df=int(dof), weekly_gap_sd=sd,
                   pre_gap_mean=float(pre.mean()), post_gap_mean=float(post.mean()),
                   inference="cohort x week: t on the weekly treated-minus-control gaps")
    if not (se > 0 and math.isfinite(se)):
        return Estimate(beta, None, None, method, n_weeks, confidence=confidence,
                        error="the weekly gap never moves: no interval", details=details)
    q = float(stats.t.ppf(0.5 + confidence / 2, dof))
    p = float(2 * stats.t.sf(abs(beta) / se, dof))
    if n_pre < 4:
        details["warning"] = (f"only {n_pre} pre-period weeks: the interval is wide and the "
                              "pre-trend check has almost no power")
    return Estimate(beta, beta - q * se, beta + q * se, method, n_weeks, p_value=p,
                    confidence=confidence, details=details)


def cohort_week_pre_trend(
    df: pd.DataFrame,
    start_week: Any,
    alpha: float = 0.05,
    **columns: Unpack[PanelColumns],
) -> PreTrendCheck:
    """Test for a linear drift of the weekly treated-minus-control gap before the start.

    OLS of the pre-period gaps g_t on the week's position; F = t^2 of the slope against
    F(1, n_pre - 2) (the same cohort x week level as :func:`cohort_week_did`: a joint test
    of one coefficient per pre week has nothing left to estimate its noise with once a
    week is the unit). ``warning`` is set when p < ``alpha``: the gap was already moving,
    so parallel trends are doubtful. ``n_pre_coefficients`` counts the pre weeks the slope
    is fitted on. Needs at least 3 pre weeks. A quiet test does not prove parallel trends
    (Roth 2022, AER: Insights 4:305).
    """
    method = "gap-linear-trend-F"
    gaps = _weekly_gaps(df, start_week, **columns)
    pre_weeks = gaps.weeks[~gaps.post] if gaps.weeks.size else gaps.weeks
    pre = gaps.gap[~gaps.post] if gaps.gap.size else gaps.gap
    n = int(pre.size)
    if n < 3:
        return PreTrendCheck(None, None, None, None, n, alpha, None, method=method,
                             error=gaps.error if gaps.error and n < 2 else
                             f"{n} pre-period weeks: a trend needs at least 3",
                             details=gaps.details)
    x = _week_position(pre_weeks)
    fit = stats.linregress(x, pre)
    dof = n - 2
    if not (math.isfinite(fit.stderr) and fit.stderr > 0):
        return PreTrendCheck(None, 1, dof, None, n, alpha, None, method=method,
                             error="the pre-period gap lies exactly on a line: nothing to test",
                             details=gaps.details)
    f_stat = float((fit.slope / fit.stderr) ** 2)
    p = float(stats.f.sf(f_stat, 1, dof))
    details = dict(gaps.details, slope_per_week=float(fit.slope), slope_std_error=float(fit.stderr))
    warning = None
    if p < alpha:
        warning = (f"the weekly gap between the cohort and its control was already drifting before "
                   f"the start ({fit.slope:+.3g} per week, p = {p:.3g}): parallel trends are doubtful "
                   "and the difference in differences may be biased")
    return PreTrendCheck(f_stat, 1, dof, p, n, alpha, warning, method=method, details=details)


def _week_position(weeks: np.ndarray) -> np.ndarray:
    """Weeks as numbers 0, 1, ... (dates in 7-day steps, so a missing week keeps its place)."""
    w = pd.Series(weeks)
    if pd.api.types.is_numeric_dtype(w):
        return w.to_numpy(dtype=float) - float(w.iloc[0])
    days = (pd.to_datetime(w) - pd.to_datetime(w.iloc[0])).dt.days.to_numpy(dtype=float)
    return days / 7.0
