"""Does the lever prevent returns or only delay them? Read the timing of the returns, not only their number.

The verdict on a return-rate experiment reads the K-day return rate: the share of units returned
within K days of delivery, among units delivered at least K days before the read
(:func:`playbook.stats.lag.read_at_window`). A lever that only *delays* returns (customers return
later, not less) lowers that rate too: with Gamma lags (shape 2, mean 10 days) and a treatment that
multiplies every lag by 1.6 and prevents nothing, the 28-day rate falls by about 2.2 points from
20 %. Two checks here:

1. :func:`delay_check`: among the returns requested within K days of delivery (units delivered at
   least K days before ``as_of``), are the treated ones later than the control ones? A one-sided
   rank test (Mann-Whitney's P(treated lag > control lag), with customers as clusters). A flag
   (``possible_delay``) blocks a keep until a longer read (``confirm_days``, default 2K) shows that
   the gap holds.

   Stratified by return reason (``stratum="return_reason"``): the lag depends much on the reason
   (a damaged or wrong item comes back in ~3 days, a wrong size in ~6.5, "not as described" in ~10,
   a changed mind or poor quality in ~13-14). Pooled, that spread between reasons (a) drowns a delay
   that hits one reason (a lever delaying only the "not as described" returns of one category by
   x1.73: pooled p = 0.14, stratified p = 0.013 in the project's season simulator) and (b) flags a
   lever that truly *prevents* returns of a fast reason (fewer size returns leave relatively more
   slow-reason returns in treatment: the pooled treated lags look later though no lag changed). Compared within
   each reason and combined with van Elteren's (1960) weights, the test reads only the timing
   within a reason: a prevention of any reason, with the same lags, passes.
2. :func:`historical_return_window` and :func:`return_window_from_histogram`: how much of the shop's
   returns a K-day window holds (the plan's warning "K holds less than 90 % of the shop's historical
   returns"), from the lags of the shop's past returns or from the per-day histogram the database
   computes (:func:`playbook.data.facts.return_lag_histogram`).

Results are frozen dataclasses carrying an ``error`` on degenerate input (gbstats style): nothing
here raises on bad data.

References: Mann & Whitney 1947 (Ann. Math. Statist. 18:50); van Elteren 1960 ("On the combination
of independent two-sample tests of Wilcoxon", Bull. Int. Stat. Inst. 37:351-361) and Lehmann 1975
(Nonparametrics, ch. 3), the stratified Wilcoxon test; DeLong, DeLong & Clarke-Pearson 1988
(Biometrics 44:837), the placement (structural component) variance of the Mann-Whitney statistic;
Obuchowski 1997 (Biometrics 53:567), the same with clustered observations (here: a customer's
units); Kaplan & Meier 1958 for the cumulative return shares.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from playbook.core.formats import date_text
from playbook.stats.lag import _km_curve, _prepare, _surv_at, _Units
from playbook.stats.results import _clean

__all__ = [
    "DelayCheck",
    "MIN_RETURNING_CUSTOMERS",
    "ReturnWindow",
    "delay_check",
    "historical_return_window",
    "return_window_from_histogram",
]

#: Each arm needs at least this many customers with a return within K days for the timing test: the
#: clustered variance and the normal approximation rest on the number of customers, not of units.
MIN_RETURNING_CUSTOMERS = 20
_ARMS = ("control", "treatment")
#: How many of the strata left out of a stratified check (an arm without return) ``details`` names.
_LISTED_LEFT_OUT = 20


# --------------------------------------------------------------------------------------
# The delay check
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DelayCheck:
    """Whether the treated returns come back later than the control ones, among returns within k days.

    Attributes:
        k: the window of the read (days).
        possible_delay: True when the treated lags are later at level ``alpha`` (one-sided). It
            blocks a keep until the ``confirm_days`` read shows that the gap holds. Never True with
            an ``error``.
        p_value: one-sided p-value of "treated returns are later" (customer-clustered Mann-Whitney;
            None with an ``error``).
        alpha: the level of the flag.
        prob_later: P(treated lag > control lag) + P(equal) / 2 among returns within k days (the
            Mann-Whitney U divided by its maximum; 0.5 = same timing). Stratified: the van Elteren
            weighted mean of that probability within each stratum (pairs of the same reason).
        returns: returned units within k days per arm (units delivered at least k days before
            ``as_of``).
        returning_customers: customers with such a return per arm (the independent units).
        median_lag: median days from delivery to return request among those returns, per arm.
        km_return_share_half_k, km_return_share_k: Kaplan-Meier cumulative share of units returned
            by day k/2 and k per arm (every unit, censored at ``as_of``; None when no unit of the arm
            is followed that long). A delay shows as a lower share at k/2 than at k would suggest.
        confirm_days: the longer read that must confirm the gap (default 2k).
        readable_on: the date (UTC) at whose end the last exposed delivery (latest ``delivered_ts``
            by ``as_of``, both arms) has ``confirm_days`` days of follow-up, so that the confirm read
            covers every exposed unit; None when nothing was delivered.
        why: one sentence in plain words.
        error: why the check could not be made (then ``possible_delay`` is False).
        details: whether the test is ``stratified``, the U statistic (summed over strata), z,
            standard error, the unit-level (unclustered) Mann-Whitney p-value for comparison (van
            Elteren's when stratified), mature units and data-cleaning counts. Stratified besides:
            the ``stratum_column``, per stratum used (``strata``) its prob_later, U, van Elteren
            weight and share of the weight, returns and returning customers per arm; the number of
            strata used and left out (an arm without return there) and the first left-out labels.
    """

    k: float
    possible_delay: bool
    p_value: float | None
    alpha: float
    prob_later: float | None
    returns: dict[str, float]
    returning_customers: dict[str, int]
    median_lag: dict[str, float | None]
    km_return_share_half_k: dict[str, float | None]
    km_return_share_k: dict[str, float | None]
    confirm_days: float
    readable_on: dt.date | None
    why: str
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _clean({
            "k": self.k, "possible_delay": self.possible_delay, "p_value": self.p_value,
            "alpha": self.alpha, "prob_later": self.prob_later, "returns": self.returns,
            "returning_customers": self.returning_customers, "median_lag": self.median_lag,
            "km_return_share_half_k": self.km_return_share_half_k,
            "km_return_share_k": self.km_return_share_k, "confirm_days": self.confirm_days,
            "readable_on": self.readable_on, "why": self.why, "error": self.error,
            "details": self.details,
        })


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float | None:
    """The median of ``x`` with frequency weights ``w`` (the midpoint when the weights split in two
    exact halves: ``np.median`` of the values repeated ``w`` times, for whole-number weights)."""
    if x.size == 0:
        return None
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    half = cw[-1] / 2.0
    i = int(np.searchsorted(cw, half, side="left"))
    if math.isclose(cw[i], half, rel_tol=1e-12) and i + 1 < xs.size:
        return float((xs[i] + xs[i + 1]) / 2.0)
    return float(xs[i])


def _mid_cdf(sorted_x: np.ndarray, cum_w: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Weighted share of ``sorted_x`` strictly below ``at`` plus half the share equal to it."""
    total = cum_w[-1]
    padded = np.concatenate([[0.0], cum_w])
    below = padded[np.searchsorted(sorted_x, at, side="left")]
    up_to = padded[np.searchsorted(sorted_x, at, side="right")]
    return (below + up_to) / (2.0 * total)


@dataclass(frozen=True)
class _Stratum:
    """One stratum's share of the comparison: its theta and van Elteren's weight."""

    label: str
    theta: float                    # P(treated lag > control lag) + ties / 2 within the stratum
    weight: float                   # van Elteren's n_t n_c / (N + 1), returned units weighted by quantity
    u_statistic: float              # theta n_t n_c, the stratum's Mann-Whitney U
    returns: tuple[float, float]    # returned units (control, treatment)
    customers: tuple[int, int]      # customers with such a return (control, treatment)
    ties: np.ndarray                # units tied at each distinct lag (for the unit-level variance)

    def to_dict(self, total_weight: float) -> dict[str, Any]:
        return {"stratum": self.label, "prob_later": self.theta, "u_statistic": self.u_statistic,
                "van_elteren_weight": self.weight, "share_of_weight": self.weight / total_weight,
                "returns": dict(zip(_ARMS, self.returns)),
                "returning_customers": dict(zip(_ARMS, self.customers))}


@dataclass(frozen=True)
class _RankComparison:
    """The (stratified) Mann-Whitney comparison: combined theta, its clustered variance, the strata used."""

    theta: float
    var: float
    customers: tuple[int, int]      # G per arm: customers with a return in a stratum used
    strata: list[_Stratum]
    left_out: list[str]             # strata where an arm has no return (no information on timing)


def _clustered_mann_whitney(
    lag: np.ndarray, arm: np.ndarray, cust: np.ndarray, w: np.ndarray, n_customers: int,
    stratum: np.ndarray | None = None, labels: Sequence[str] = ("all",),
) -> _RankComparison:
    """theta = P(treated lag > control lag) + ties / 2, combined over strata, and its customer-clustered variance.

    Within stratum s (``stratum``: codes into ``labels``; None = one stratum),
    theta_s = sum_{i in t} sum_{j in c} w_i w_j H(x_i - x_j) / (W_ts W_cs), H = 1, 1/2, 0 for >, =, <:
    the Mann-Whitney U / (n_t n_c) with units repeated by quantity. Its linearisation (Hajek
    projection) through the placements V_i = F_cs(x_i) (treated unit i: the stratum's control share
    below it, ties halved) and Q_j = 1 - F_ts(x_j) (control unit j: treated share above it) is

        theta_s_hat - theta_s ~ sum_{i in t} w_i (V_i - theta_s) / W_ts + sum_{j in c} w_j (Q_j - theta_s) / W_cs

    (DeLong et al. 1988). The strata are combined with van Elteren's (1960) weights
    w_s = W_ts W_cs / (W_ts + W_cs + 1): T = sum_s w_s theta_s / sum_s w_s, the weights taken as fixed
    (conditional on the returns per stratum, as in van Elteren's test). Each unit's influence,
    multiplied by w_s / sum w, is summed within its customer across strata (a customer may return in
    several), squared with the small-sample factor G / (G - 1) per arm (G = customers with a return in
    the arm, in the strata used), giving the variance with customers as independent clusters
    (Obuchowski 1997; the same construction as ``lag._clustered_ratio_difference``). A customer in
    both arms adds its covariance term. A stratum where one arm has no return is left out (listed in
    ``left_out``; one without any return is ignored); with one stratum this is the plain clustered
    Mann-Whitney statistic.
    """
    codes = np.zeros(lag.size, dtype=np.int64) if stratum is None else stratum
    pieces = []
    left_out: list[str] = []
    for s, label in enumerate(labels):
        t, c = (codes == s) & (arm == 1), (codes == s) & (arm == 0)
        if not (np.any(t) and np.any(c)):
            if np.any(t) or np.any(c):   # a stratum without any return here is no stratum of the comparison
                left_out.append(label)
            continue
        oc, ot = np.argsort(lag[c], kind="stable"), np.argsort(lag[t], kind="stable")
        xc, cwc = lag[c][oc], np.cumsum(w[c][oc])
        xt, cwt = lag[t][ot], np.cumsum(w[t][ot])
        v = _mid_cdf(xc, cwc, lag[t])          # treated placements
        q = 1.0 - _mid_cdf(xt, cwt, lag[c])    # control placements
        theta = float(np.sum(w[t] * v) / cwt[-1])
        n_c, n_t = float(cwc[-1]), float(cwt[-1])
        ties = np.bincount(np.unique(lag[t | c], return_inverse=True)[1], weights=w[t | c])
        part = _Stratum(label, theta, n_t * n_c / (n_t + n_c + 1.0), theta * n_t * n_c, (n_c, n_t),
                        (int(np.unique(cust[c]).size), int(np.unique(cust[t]).size)), ties)
        pieces.append((part, t, c, v, q))
    if not pieces:
        return _RankComparison(math.nan, 0.0, (0, 0), [], left_out)
    psi = np.zeros((n_customers, 2))
    present = np.zeros((n_customers, 2), dtype=bool)
    total = sum(part.weight for part, *_ in pieces)
    combined = 0.0
    for part, t, c, v, q in pieces:
        share = part.weight / total   # exactly 1.0 with one stratum: the pooled statistic unchanged
        combined += share * part.theta
        n_c, n_t = part.returns
        psi[:, 1] += np.bincount(cust[t], weights=w[t] * (v - part.theta) / n_t * share, minlength=n_customers)
        psi[:, 0] += np.bincount(cust[c], weights=w[c] * (q - part.theta) / n_c * share, minlength=n_customers)
        present[:, 1] |= np.bincount(cust[t], minlength=n_customers) > 0
        present[:, 0] |= np.bincount(cust[c], minlength=n_customers) > 0
    g = present.sum(axis=0)
    psi *= np.sqrt(g / np.maximum(g - 1, 1))[None, :]
    var = float(np.sum((psi[:, 0] + psi[:, 1]) ** 2))
    return _RankComparison(combined, var, (int(g[0]), int(g[1])), [p for p, *_ in pieces], left_out)


def _units_mann_whitney_p(strata: list[_Stratum]) -> float | None:
    """The textbook one-sided (van Elteren) Mann-Whitney p-value with units as independent observations.

    For comparison with the clustered test. One stratum: the normal approximation with the tie and
    continuity corrections, as scipy ``mannwhitneyu(method="asymptotic", alternative="greater")`` on
    the units repeated by quantity: z = (U - n_t n_c / 2 - 1/2) / sqrt(n_t n_c / 12 ((N + 1) -
    sum(t^3 - t) / (N (N - 1)))), t = units tied at one lag (Mann & Whitney 1947; Lehmann 1975, ch. 1).
    Several strata: van Elteren's (1960) statistic sum_s U_s / (N_s + 1), its null mean
    sum_s n_ts n_cs / (2 (N_s + 1)) and variance sum_s var(U_s) / (N_s + 1)^2, var(U_s) as above
    within the stratum, without continuity correction (the sum is not on a lattice of step 1).
    Written without the repetition so that it costs nothing at any quantity.
    """
    num, var = 0.0, 0.0
    continuity = 0.5 if len(strata) == 1 else 0.0
    for s in strata:
        n_c, n_t = s.returns
        n = n_t + n_c
        var_u = n_t * n_c / 12.0 * ((n + 1) - float(np.sum(s.ties**3 - s.ties)) / (n * (n - 1)))
        num += (s.u_statistic - n_t * n_c / 2.0 - continuity) / (n + 1)
        var += var_u / (n + 1) ** 2
    if not var > 0:
        return None
    return float(stats.norm.sf(num / math.sqrt(var)))


def _prepare_by_stratum(
    units: pd.DataFrame, column: str, prepare: Callable[[pd.DataFrame], _Units]
) -> tuple[_Units, np.ndarray, list[str]]:
    """The units ``prepare`` keeps from ``units``, and each one's stratum (codes into the returned labels).

    A missing value of ``column`` is the stratum "unknown". ``lag._prepare`` keeps or drops each row on
    that row's values alone and keeps the kept rows in their order, so ``units`` sorted by stratum gives
    its units grouped by stratum, as many in each group as ``prepare`` keeps from the group alone.
    """
    values = units[column].astype(object)
    codes, labels = pd.factorize(values.where(values.notna(), "unknown").astype(str), sort=True)
    order = np.argsort(codes, kind="stable")
    grouped = units.iloc[order]
    u = prepare(grouped)
    bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
    kept = [prepare(grouped.iloc[a:b]).arm.size for a, b in zip(bounds[:-1], bounds[1:])]
    if sum(kept) != u.arm.size:   # a broken premise (lag._prepare changed), not bad data: never mislabel units
        raise RuntimeError(f"the rows kept per {column} ({sum(kept)}) differ from those kept in all ({u.arm.size})")
    return u, np.repeat(np.arange(len(labels)), kept), [str(x) for x in labels]


def _format_p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def _days(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _km_shares(u: _Units, days: tuple[float, ...]) -> list[dict[str, float | None]]:
    """Kaplan-Meier share of units returned by each of ``days`` per arm (None when no unit of the arm is
    still followed then and some were censored before: the curve is undefined there)."""
    out: list[dict[str, float | None]] = [{} for _ in days]
    for a, name in enumerate(_ARMS):
        m = u.arm == a
        curve = _km_curve(u.time[m], u.event[m], u.w[m]) if np.any(m) else None
        for i, at in enumerate(days):
            # defined up to the last time seen, and after it when every unit of the arm has returned
            if curve is None or not (np.any(u.time[m] >= at) or curve[4][-1] <= 0.0):
                out[i][name] = None
            else:
                out[i][name] = 1.0 - _surv_at(curve[0], curve[4], at)
    return out


def delay_check(
    units: pd.DataFrame,
    as_of: Any,
    k: float,
    *,
    alpha: float = 0.01,
    confirm_days: float | None = None,
    arm: str = "arm",
    quantity: str | None = "quantity",
    customer: str = "customer_id",
    delivered: str = "delivered_ts",
    returned: str = "returned_ts",
    control: Any = "control",
    treatment: Any = "treatment",
    min_returning_customers: int = MIN_RETURNING_CUSTOMERS,
    stratum: str | None = None,
) -> DelayCheck:
    """Flag a lever that may only delay returns: are the treated returns within k days later?

    ``units``: the per-unit frame the K-day read uses (``playbook.metrics.forms.as_units``: ``arm``,
    ``customer_id``, ``delivered_ts``, ``returned_ts`` NaT when not returned, ``quantity``), cleaned
    as :mod:`playbook.stats.lag` does (a return after ``as_of`` is not seen yet, one before its
    delivery counts at day 0; counts in ``details``). Among units delivered at least k days before
    ``as_of`` (the units of the K-day read), the returns requested within k days of delivery and
    their lag (days from delivery to request) in each arm are compared by a one-sided Mann-Whitney
    test of "treated lags are later": theta = P(treated lag > control lag) + ties / 2, units
    weighted by ``quantity``, z = (theta - 1/2) / se with the customer-clustered variance of
    ``_clustered_mann_whitney`` (DeLong et al. 1988; Obuchowski 1997), p = P(N(0, 1) > z).
    ``possible_delay`` when p <= ``alpha``.

    Why the test is valid. Null hypothesis: among returns within k days, the lag has the same
    distribution in both arms. Customers are randomised, every unit counted was followed the full k
    days in both arms (so the two arms' returns are truncated at the same k), and under the null
    theta = 1/2 and z is asymptotically standard normal as the number of returning customers grows,
    however a customer's returns are correlated (one parcel for several units, one household's
    habits): the variance sums each customer's placements before squaring. The textbook
    unit-level Mann-Whitney test (``details["p_value_units"]``, the p-value of scipy ``mannwhitneyu``
    on the units repeated by quantity) assumes independent units and is too small when customers
    return several units together (simulated in tests/stats/test_delay.py).

    What passes and what is flagged. A prevention that scales every customer's return propensity
    (each customer returns less, with the same timing) removes returns at random with respect to
    their lag and leaves the lag distribution among returns unchanged: it is flagged at most
    ``alpha`` of the time. A pure delay (every lag stretched) makes the treated lags stochastically
    later even when truncated at k, and is flagged. A prevention that removes mostly the *early*
    returns (e.g. the wrong-size returns sent back at once) also shifts the lags: the flag says
    *possible* delay and asks for the longer read, which tells the two apart (a prevention keeps its
    gap at 2k, a delay closes it).

    ``stratum`` (e.g. ``"return_reason"``; default None = pooled): compare the lags within each value of
    that column (a missing value is the stratum "unknown"; the column missing gives an ``error``).
    theta_s is the Mann-Whitney probability among the stratum's returns within k days, and the test
    reads T = sum_s w_s theta_s / sum_s w_s with van Elteren's weights w_s = n_ts n_cs / (N_s + 1)
    (n = returned units of each arm in the stratum, weighted by quantity; van Elteren 1960, Lehmann
    1975 ch. 3: the locally most powerful such combination against a shift common to all strata,
    whatever their sizes). Its variance is customer-clustered: each customer's placement
    influences summed across the strata (weighted by w_s / sum w) before squaring, a customer may
    return in several. A stratum where an arm has no return says nothing about timing and is left
    out (counted in ``details``); ``min_returning_customers`` applies to the totals. Null
    hypothesis: within each stratum the lag has the same distribution in both arms. A lever that
    prevents returns of one reason changes the reasons' shares among the treated returns, not the
    lags within a reason: the pooled test may flag it (fewer fast size returns make the pooled
    treated lags later), the stratified one passes it; a delay of one reason is not drowned by the
    spread between reasons. What it cannot tell: a lever that prevents the early returns *within* a
    reason. With one stratum the result is exactly the pooled one.

    Assumptions: customers independent and randomised; the lag does not depend on the delivery date
    within the test; enough returning customers per arm (``min_returning_customers``, default 20;
    fewer gives an ``error`` and no flag) for the normal approximation.

    ``confirm_days`` (default 2k, must exceed k): the read that must show the gap holds before a keep;
    ``readable_on``: the last exposed delivery (latest ``delivered_ts`` by ``as_of``) + ``confirm_days``,
    the day from whose end every exposed unit has that follow-up. Reported besides: returned units and
    returning customers per arm, median lags, and the Kaplan-Meier share returned by day k/2 and k per
    arm (``lag.py``'s estimator on every unit, censored at ``as_of``).
    """
    nan_shares: dict[str, float | None] = {a: None for a in _ARMS}
    zeros: dict[str, float] = {a: 0.0 for a in _ARMS}
    details: dict[str, Any] = {
        "method": "mann-whitney-clustered-one-sided" if stratum is None else "van-elteren-clustered-one-sided",
        "stratified": stratum is not None}
    noun = "" if stratum is None else stratum.replace("_", " ")   # "return_reason" -> "each return reason"

    def fail(why: str, k_: float = k, confirm: float = math.nan, readable: dt.date | None = None,
             **known: Any) -> DelayCheck:
        fields: dict[str, Any] = dict(
            prob_later=None, returns=dict(zeros), returning_customers={a: 0 for a in _ARMS},
            median_lag=dict(nan_shares), km_return_share_half_k=dict(nan_shares),
            km_return_share_k=dict(nan_shares))
        fields.update(known)
        return DelayCheck(k_, False, None, alpha, confirm_days=confirm, readable_on=readable, why=why,
                          error=why, details=details, **fields)

    if not (isinstance(k, (int, float)) and not isinstance(k, bool) and math.isfinite(k) and k > 0):
        return fail(f"k must be a number of days > 0, got {k!r}", k_=math.nan)
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        return fail(f"alpha must lie in (0, 1), got {alpha!r}")
    confirm = 2 * k if confirm_days is None else confirm_days
    if not (isinstance(confirm, (int, float)) and math.isfinite(confirm) and confirm > k):
        return fail(f"confirm_days must be a number of days longer than k = {k:g}, got {confirm_days!r}")
    if not isinstance(units, pd.DataFrame):
        return fail(f"units must be a DataFrame, got {type(units).__name__}", confirm=confirm)
    needed = ([arm, customer, delivered, returned] + ([quantity] if quantity is not None else [])
              + ([stratum] if stratum is not None else []))
    missing = [c for c in needed if c not in units.columns]
    if missing:
        return fail(f"units lacks the column(s) {', '.join(missing)}", confirm=confirm)
    try:
        if pd.isna(as_of) or pd.isna(pd.Timestamp(as_of)):
            return fail(f"as_of must be a date, got {as_of!r}", confirm=confirm)
        def prepare(frame: pd.DataFrame) -> _Units:
            return _prepare(frame, as_of, arm, customer, delivered, returned, quantity, control, treatment)

        if stratum is None:
            u, unit_stratum, labels = prepare(units), None, ["all"]
        else:
            u, unit_stratum, labels = _prepare_by_stratum(units, stratum, prepare)
        as_of_ts = pd.Timestamp(as_of)
    except (ValueError, TypeError, OverflowError) as exc:
        return fail(f"units or as_of cannot be read as dates: {exc}", confirm=confirm)
    if as_of_ts.tzinfo is not None:
        as_of_ts = as_of_ts.tz_convert("UTC").tz_localize(None)
    details.update(u.counts)
    details["confirm_rule"] = "latest delivered_ts by as_of (both arms) + confirm_days"

    readable_on = None
    if u.follow.size:
        last_delivery = as_of_ts - pd.Timedelta(days=float(u.follow.min()))
        readable_on = (last_delivery + pd.Timedelta(days=float(confirm))).date()
    km_half, km_k = _km_shares(u, (k / 2.0, k))
    mature = u.follow >= k
    within = mature & u.event & (u.lag <= k)
    returns = {name: float(u.w[within & (u.arm == a)].sum()) for a, name in enumerate(_ARMS)}
    returning = {name: int(np.unique(u.cust[within & (u.arm == a)]).size) for a, name in enumerate(_ARMS)}
    medians = {name: _weighted_median(u.lag[within & (u.arm == a)], u.w[within & (u.arm == a)])
               for a, name in enumerate(_ARMS)}
    for a, name in enumerate(_ARMS):
        details[f"mature_units_{name}"] = float(u.w[mature & (u.arm == a)].sum())
    known = dict(returns=returns, returning_customers=returning, median_lag=medians,
                 km_return_share_half_k=km_half, km_return_share_k=km_k)
    ctx = dict(confirm=confirm, readable=readable_on)

    empty = [name for a, name in enumerate(_ARMS) if not np.any(u.arm == a)]
    if empty:
        return fail(f"no delay check: no {' or '.join(empty)} unit delivered by as_of", **ctx, **known)
    unripe = [name for a, name in enumerate(_ARMS) if details[f"mature_units_{name}"] == 0]
    if unripe:
        return fail(f"no delay check: no {' or '.join(unripe)} unit was delivered at least {k:g} days "
                    "before as_of", **ctx, **known)
    if min(returning.values()) < min_returning_customers:
        counts = ", ".join(f"{name}: {returning[name]}" for name in _ARMS)
        return fail(f"too few returns within {k:g} days to compare their timing (customers with a return: "
                    f"{counts}; at least {min_returning_customers} per arm needed): no delay check",
                    **ctx, **known)

    lag, arm01, cust, w = u.lag[within], u.arm[within].astype(int), u.cust[within], u.w[within]
    comp = _clustered_mann_whitney(lag, arm01, cust, w, u.n_customers,
                                   None if unit_stratum is None else unit_stratum[within], labels)
    theta, var = comp.theta, comp.var
    if stratum is not None:
        details.update(stratum_column=stratum, strata_used=len(comp.strata), strata_left_out=len(comp.left_out),
                       strata_left_out_labels=comp.left_out[:_LISTED_LEFT_OUT],
                       strata=[s.to_dict(sum(x.weight for x in comp.strata)) for s in comp.strata])
    if not comp.strata:
        return fail(f"no {noun} has returns within {k:g} days in both arms: the timing "
                    "cannot be compared within one, no delay check", **ctx, **known)
    details.update(u_statistic=sum(s.u_statistic for s in comp.strata))
    details["p_value_units"] = _units_mann_whitney_p(comp.strata)
    if not var > 0:
        why = (f"no spread in the timing of the returns within {k:g} days (median {_days(medians['treatment'])} "
               f"days in treatment vs {_days(medians['control'])} in control, every return of an arm after "
               "the same lag): the test is undefined, no delay check")
        return fail(why, prob_later=theta, **ctx, **known)
    se = math.sqrt(var)
    z = (theta - 0.5) / se
    p = float(stats.norm.sf(z))
    details.update(z=z, std_error=se)
    flag = p <= alpha
    mt, mc = _days(medians["treatment"]), _days(medians["control"])
    if stratum is None:
        where, timing = "", f"median {mt} days in treatment vs {mc} in control"
    else:
        # the pooled medians mix the reasons (their shares differ when a lever prevents one): say the
        # within-reason comparison the test makes instead
        where = f" within each {noun}"
        timing = f"a treated return is the later of two with the same {noun} {theta:.0%} of the time"
    if flag:
        lead = (f"treated returns come back later: median {mt} days vs {mc} among returns within {k:g} days"
                if stratum is None else
                f"treated returns come back later{where}: {timing}, among returns within {k:g} days")
        why = (f"{lead} ({_format_p(p)}); a delay can lower the {k:g}-day rate without preventing any return, "
               f"so a keep waits for the {confirm:g}-day read"
               + (f" (readable on {date_text(readable_on)})" if readable_on else ""))
    else:
        why = f"no sign of a delay{where}: among returns within {k:g} days, {timing} ({_format_p(p)})"
    return DelayCheck(k, flag, p, alpha, theta, returns, returning, medians, km_half, km_k, confirm,
                      readable_on, why, None, details)


# --------------------------------------------------------------------------------------
# How much of the shop's returns a K-day window holds
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnWindow:
    """How much of the shop's historical returns a k-day window holds.

    Attributes:
        k: the window (days).
        share: the target share (default 0.9).
        share_within_k: returned units requested within k days of delivery / all returned units
            counted (None with an ``error``).
        days_holding_share: the smallest whole number of days d with at least ``share`` of the
            returned units requested within d days of delivery; None when more than the last day of
            the histogram is needed (see ``why``) or with an ``error``.
        returns: returned units counted.
        holds_share: ``share_within_k >= share`` (False with an ``error``).
        why: one sentence, e.g. "K = 28 days holds 84 % of the shop's historical returns; 90 % need
            35 days".
        error: why nothing could be said.
    """

    k: float
    share: float
    share_within_k: float | None
    days_holding_share: int | None
    returns: float
    holds_share: bool
    why: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _clean({"k": self.k, "share": self.share, "share_within_k": self.share_within_k,
                       "days_holding_share": self.days_holding_share, "returns": self.returns,
                       "holds_share": self.holds_share, "why": self.why, "error": self.error})


def return_window_from_histogram(
    histogram: pd.DataFrame,
    k: float,
    share: float = 0.9,
    *,
    day: str = "lag_day",
    weight: str = "units",
) -> ReturnWindow:
    """The share of returns within k days and the whole days holding ``share``, from a per-day histogram.

    ``histogram``: one row per whole day d (column ``day``) with the returned units (column ``weight``)
    whose lag lies in (d - 1, d] days (day 0: requested by the delivery instant); a row with a missing
    day holds the returns later than the histogram's last day (the
    :func:`playbook.data.facts.return_lag_histogram` output). A lag within k days (the K-day read's
    rule ``requested_ts <= delivered_ts + k days``) is exactly a day d <= k for whole k.

    share_within_k = units with d <= k / all units; days_holding_share = the smallest whole d with
    (units with day <= d) >= ``share`` x all units, the ``inverted_cdf`` quantile of the lags rounded up
    to a whole day. Assumption: the histogram's lines were followed long enough that their lags are
    not truncated (see ``return_lag_histogram``); returns later than its last day are a lower bound
    (seen only for the oldest lines), so the share within k is then an upper bound and a warning
    "less than 90 %" is sure.
    """
    def fail(why: str, total: float = 0.0) -> ReturnWindow:
        return ReturnWindow(k, share, None, None, total, False, why, why)

    if not (isinstance(share, (int, float)) and 0.0 < share <= 1.0):
        return fail(f"share must lie in (0, 1], got {share!r}")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k >= 0):
        return fail(f"k must be a number of days >= 0, got {k!r}")
    if not isinstance(histogram, pd.DataFrame) or day not in histogram or weight not in histogram:
        return fail(f"the histogram needs the columns {day!r} and {weight!r}")
    days = pd.to_numeric(histogram[day], errors="coerce").to_numpy(dtype=float)
    units = pd.to_numeric(histogram[weight], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(units) & (units > 0)
    days, units = days[ok], units[ok]
    total = float(units.sum())
    if not total > 0:
        return fail("no historical return to measure the window on")
    later = ~np.isfinite(days)
    days_known = np.maximum(days[~later], 0.0)
    by_day = pd.Series(units[~later]).groupby(days_known).sum().sort_index()
    within = float(by_day[by_day.index <= k].sum()) / total
    cum = by_day.cumsum().to_numpy()
    reach = np.nonzero(cum >= share * total * (1 - 1e-12))[0]
    holding = int(math.ceil(by_day.index[reach[0]])) if reach.size else None
    last = int(by_day.index.max()) if by_day.size else 0
    need = (f"{share:.0%} need {holding} days" if holding is not None
            else f"{share:.0%} need more than {last} days")
    holds = within >= share
    why = (f"K = {k:g} days holds {within:.0%} of the shop's historical returns"
           + ("" if holds else f" (less than {share:.0%})") + f"; {need}")
    return ReturnWindow(k, share, within, holding, total, holds, why)


def historical_return_window(
    lags_days: Sequence[float] | np.ndarray | pd.Series,
    k: float,
    share: float = 0.9,
    weights: Sequence[float] | np.ndarray | pd.Series | None = None,
) -> ReturnWindow:
    """The share of the shop's historical returns within k days, and the whole days holding ``share``.

    ``lags_days``: days from delivery to return request of the shop's past returns, among lines
    delivered long enough ago that the lag distribution is not truncated (e.g. 90 days before the
    cut); ``weights``: returned units per return (default 1). A negative lag (a return stamped
    before its delivery) counts at day 0, as in :mod:`playbook.stats.lag`; missing lags are left out.
    Each lag is put in its whole day ceil(lag) and read by :func:`return_window_from_histogram`, so
    the two agree: share_within_k = share of lags <= k; days_holding_share = ceil of the
    ``inverted_cdf`` ``share``-quantile of the lags (the smallest whole d with at least ``share`` of
    the lags <= d).
    """
    lags = pd.to_numeric(pd.Series(np.asarray(lags_days, dtype=object).ravel()), errors="coerce")
    lags = lags.to_numpy(dtype=float)
    w = (np.ones(lags.size) if weights is None
         else pd.to_numeric(pd.Series(np.asarray(weights, dtype=object).ravel()), errors="coerce")
         .to_numpy(dtype=float))
    if w.size != lags.size:
        why = f"weights ({w.size}) and lags ({lags.size}) differ in length"
        return ReturnWindow(k, share, None, None, 0.0, False, why, why)
    ok = np.isfinite(lags)
    hist = pd.DataFrame({"lag_day": np.ceil(np.maximum(lags[ok], 0.0)), "units": w[ok]})
    return return_window_from_histogram(hist, k, share)
