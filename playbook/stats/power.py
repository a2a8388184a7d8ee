"""Planning a two-proportion test: what change can we see, and how many weeks do we need?

Both functions use the normal approximation on Cohen's arcsine-transformed effect size
``h = 2·asin(sqrt(p1)) − 2·asin(sqrt(p0))`` (Cohen 1988, "Statistical Power Analysis for the
Behavioral Sciences", ch. 6), through ``statsmodels.stats.proportion.proportion_effectsize``
and ``statsmodels.stats.power.NormalIndPower``: two-sided test at level ``alpha``, equal arms.
For large arms the arcsine test and the Newcombe interval used in the analysis
(:func:`playbook.stats.proportions.proportion_difference`) have practically the same power;
``tests/stats/test_power.py`` checks it by simulation.

Clustered metrics (lines of randomised customers, see :mod:`playbook.stats.ratio`) need more
units than a binomial calculation says: pass ``design_effect = var(delta) / var(binomial)``
(≈ ``1 + (m − 1)·ICC``) and the effective sample size ``n / design_effect`` is used.

Power for the read the review actually makes (:func:`k_day_read_power`, :func:`k_day_read_plan`):
the primary metric ``return_rate_{K}d`` is read at the review date on the units delivered at
least K days before it (:func:`playbook.stats.lag.return_within_k_difference`), so a run of D
days gives only ``D − K`` days of mature deliveries; lines are clustered in customers, so the
variance of the customer-clustered difference is the binomial one times the design effect
measured from the per-customer sums of the cohort's baseline weeks (:func:`customer_clustering`).
``tests/stats/test_power_k_day_read.py`` plans for 80 % and reads seeded simulated experiments
the way the review does.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from playbook.stats.results import _clean
from playbook.stats.sequential import design_power, spending_boundaries

__all__ = [
    "CustomerClustering",
    "KDayPlan",
    "KDayReadPower",
    "MinimumDetectableEffect",
    "SequentialRead",
    "WeeksNeeded",
    "clustering_from_sums",
    "customer_clustering",
    "k_day_read_mde",
    "k_day_read_plan",
    "k_day_read_power",
    "minimum_detectable_effect",
    "sequential_read",
    "weeks_needed",
]


@dataclass(frozen=True)
class MinimumDetectableEffect:
    """Smallest absolute change in a rate detected with the planned power.

    Attributes:
        base_rate: current rate p0 (e.g. weekly return rate of the cohort).
        n_per_arm: units per arm (before the design effect).
        alpha, power: two-sided level and planned power.
        direction: ``decrease`` (p1 < p0, the usual goal) or ``increase``.
        absolute_change: signed ``p1 − p0`` at the MDE (negative for a decrease).
        relative_change: ``p1 / p0 − 1``.
        target_rate: p1.
        cohens_h: |h| solved by ``NormalIndPower``.
        design_effect: variance inflation applied (1 for independent units).
        error: why no MDE exists (volume too small, invalid input), else None.
    """

    base_rate: float
    n_per_arm: float
    alpha: float
    power: float
    direction: str
    absolute_change: float | None
    relative_change: float | None
    target_rate: float | None
    cohens_h: float | None
    design_effect: float = 1.0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))

    def __str__(self) -> str:
        if self.error:
            return f"MDE not available: {self.error}"
        return (
            f"MDE at {self.power:.0%} power, alpha={self.alpha}: {self.absolute_change:+.4f} "
            f"({self.relative_change:+.1%}) from {self.base_rate:.4f} with "
            f"{self.n_per_arm:,.0f} per arm"
        )


@dataclass(frozen=True)
class WeeksNeeded:
    """Whole number of weeks needed to reach the planned power for an expected change.

    Attributes:
        weeks: smallest whole number of weeks reaching ``power`` (None when not reachable
            within ``max_weeks``).
        reachable: True when ``weeks <= max_weeks``.
        n_per_arm_needed: exact units per arm needed (after the design effect).
        units_per_arm: units per arm after ``weeks`` weeks (or after ``max_weeks``).
        achieved_power: power after ``weeks`` weeks (or after ``max_weeks``).
        message: one sentence for the notebook.
        error: invalid input, else None (an unreachable plan is not an error).
    """

    base_rate: float
    expected_change: float
    weekly_units_per_arm: float
    alpha: float
    power: float
    max_weeks: int
    weeks: int | None
    reachable: bool
    n_per_arm_needed: float | None
    units_per_arm: float | None
    achieved_power: float | None
    message: str
    design_effect: float = 1.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))

    def __str__(self) -> str:
        return self.message


def _finite(*values: Any) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def _check_common(base_rate, alpha, power, design_effect) -> str | None:
    if not _finite(base_rate, alpha, power, design_effect):
        return "base_rate, alpha, power and design_effect must be finite numbers"
    if not 0.0 < base_rate < 1.0:
        return f"base_rate must lie strictly between 0 and 1, got {base_rate!r}"
    if not 0.0 < alpha < 1.0:
        return f"alpha must lie strictly between 0 and 1, got {alpha!r}"
    if not alpha < power < 1.0:
        return f"power must lie between alpha and 1, got {power!r}"
    if design_effect < 1.0:
        return f"design_effect must be >= 1, got {design_effect!r}"
    return None


def _power(h: float, n_per_arm: float, alpha: float) -> float:
    return float(NormalIndPower().power(abs(h), nobs1=n_per_arm, alpha=alpha, ratio=1.0))


def minimum_detectable_effect(
    base_rate: float,
    n_per_arm: float,
    alpha: float = 0.05,
    power: float = 0.8,
    direction: Literal["decrease", "increase"] = "decrease",
    design_effect: float = 1.0,
) -> MinimumDetectableEffect:
    """Smallest absolute change of a rate detectable with ``power`` at two-sided ``alpha``.

    Formula (Cohen 1988; normal approximation, equal arms of ``n = n_per_arm / design_effect``)::

        |h| = (z_{1−α/2} + z_{power}) · sqrt(2 / n)     (solved by NormalIndPower.solve_power,
                                                          which also counts the far tail)
        p1  = sin(asin(sqrt(p0)) ∓ |h|/2)²              (− for a decrease, + for an increase)
        MDE = p1 − p0

    Assumption: independent units (else pass ``design_effect``); two-sided test; normal
    approximation (fine when n·p0 is at least a few dozen).
    """
    def failed(msg: str) -> MinimumDetectableEffect:
        return MinimumDetectableEffect(
            base_rate, n_per_arm, alpha, power, str(direction), None, None, None, None,
            design_effect, error=msg,
        )

    err = _check_common(base_rate, alpha, power, design_effect)
    if err:
        return failed(err)
    if direction not in ("decrease", "increase"):
        return failed(f"direction must be 'decrease' or 'increase', got {direction!r}")
    if not _finite(n_per_arm) or n_per_arm < 2:
        return failed(f"n_per_arm must be at least 2, got {n_per_arm!r}")
    n_eff = n_per_arm / design_effect
    try:
        h = float(
            NormalIndPower().solve_power(
                effect_size=None, nobs1=n_eff, alpha=alpha, power=power, ratio=1.0
            )
        )
    except Exception as exc:  # statsmodels root finding can fail for absurd inputs
        return failed(f"power equation could not be solved: {exc}")
    h = abs(h)
    phi0 = math.asin(math.sqrt(base_rate))
    phi1 = phi0 - h / 2 if direction == "decrease" else phi0 + h / 2
    if not math.isfinite(h) or phi1 <= 0.0 or phi1 >= math.pi / 2:
        bound = "0" if direction == "decrease" else "1"
        return failed(
            f"volume too small: even a move of the rate to {bound} is not detected with "
            f"{power:.0%} power at {n_per_arm:,.0f} units per arm"
        )
    p1 = math.sin(phi1) ** 2
    return MinimumDetectableEffect(
        base_rate=base_rate,
        n_per_arm=n_per_arm,
        alpha=alpha,
        power=power,
        direction=direction,
        absolute_change=p1 - base_rate,
        relative_change=p1 / base_rate - 1.0,
        target_rate=p1,
        cohens_h=h,
        design_effect=design_effect,
        details={"effective_n_per_arm": n_eff,
                 "check_h": float(proportion_effectsize(p1, base_rate))},
    )


def weeks_needed(
    base_rate: float,
    expected_change: float,
    weekly_units_per_arm: float,
    alpha: float = 0.05,
    power: float = 0.8,
    max_weeks: int = 8,
    design_effect: float = 1.0,
) -> WeeksNeeded:
    """Smallest whole number of weeks for the test to reach ``power`` on ``expected_change``.

    ``expected_change`` is absolute and signed: ``-0.01`` means the return rate is expected
    to fall by one point (0.20 -> 0.19). Formula::

        h = proportion_effectsize(p0 + change, p0)                  (Cohen's h)
        n = NormalIndPower().solve_power(h, alpha=alpha, power=power)  units per arm
        weeks = ceil(n · design_effect / weekly_units_per_arm)

    Assumption: the weekly volume and the base rate stay roughly constant over the weeks
    and units are independent (else pass ``design_effect``). When ``weeks > max_weeks``
    the plan is marked not reachable with the power reached at ``max_weeks`` in
    ``achieved_power`` and a message saying so: pick a bigger cohort or a bigger lever.
    """
    def failed(msg: str) -> WeeksNeeded:
        return WeeksNeeded(
            base_rate, expected_change, weekly_units_per_arm, alpha, power, max_weeks,
            None, False, None, None, None, f"weeks needed not available: {msg}",
            design_effect, error=msg,
        )

    err = _check_common(base_rate, alpha, power, design_effect)
    if err:
        return failed(err)
    if not _finite(expected_change, weekly_units_per_arm):
        return failed("expected_change and weekly_units_per_arm must be finite numbers")
    if expected_change == 0:
        return failed("expected_change is 0: no test can detect a null effect")
    target = base_rate + expected_change
    if not 0.0 < target < 1.0:
        return failed(f"base_rate + expected_change = {target:.4g} lies outside (0, 1)")
    if weekly_units_per_arm <= 0:
        return failed(f"weekly_units_per_arm must be positive, got {weekly_units_per_arm!r}")
    if not (isinstance(max_weeks, int) and max_weeks >= 1):
        return failed(f"max_weeks must be a positive integer, got {max_weeks!r}")
    h = abs(float(proportion_effectsize(target, base_rate)))
    try:
        n_eff = float(
            NormalIndPower().solve_power(
                effect_size=h, nobs1=None, alpha=alpha, power=power, ratio=1.0
            )
        )
    except Exception as exc:
        return failed(f"power equation could not be solved: {exc}")
    n_needed = n_eff * design_effect
    weeks = max(1, math.ceil(n_needed / weekly_units_per_arm))
    # solve_power is a numerical root: n can come out a hair above an exact number of weeks
    if weeks > 1 and _power(h, (weeks - 1) * weekly_units_per_arm / design_effect, alpha) >= power - 1e-6:
        weeks -= 1
    change = f"{expected_change:+.4f} ({expected_change / base_rate:+.1%})"
    if weeks <= max_weeks:
        units = weeks * weekly_units_per_arm
        achieved = _power(h, units / design_effect, alpha)
        message = (
            f"{weeks} week(s): {units:,.0f} units per arm give {achieved:.0%} power to detect "
            f"{change} from a base rate of {base_rate:.4f}"
        )
        return WeeksNeeded(
            base_rate, expected_change, weekly_units_per_arm, alpha, power, max_weeks,
            weeks, True, n_needed, units, achieved, message, design_effect,
        )
    units = max_weeks * weekly_units_per_arm
    achieved = _power(h, units / design_effect, alpha)
    message = (
        f"not reachable within {max_weeks} weeks: {n_needed:,.0f} units per arm are needed "
        f"({weeks} weeks at {weekly_units_per_arm:,.0f} per week); after {max_weeks} weeks "
        f"the power is only {achieved:.0%}. Widen the cohort or test a bigger lever."
    )
    return WeeksNeeded(
        base_rate, expected_change, weekly_units_per_arm, alpha, power, max_weeks,
        None, False, n_needed, units, achieved, message, design_effect,
    )


# --------------------------------------------------------------------------------------
# Power of the K-day read, customers as clusters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerClustering:
    """How much the units of one customer move together, from per-customer sums.

    Attributes:
        customers: customers with at least one unit (the clusters).
        units, returned: totals (returned within K days).
        rate: returned / units.
        design_effect: variance of the customer-clustered (delta-method) rate over the
            binomial variance of as many independent units, ``Σ(r_i − R u_i)² · G/(G−1) /
            (R (1 − R) Σu_i)`` (Kish 1965; the delta method of Deng, Knoblich & Lu 2018),
            floored at 1 for planning (``details["raw_design_effect"]`` keeps the measured value).
        units_per_customer: size-weighted mean cluster size ``Σu_i² / Σu_i``.
        icc: intra-customer correlation implied, ``(deff − 1) / (m − 1)`` with m the size-weighted
            cluster size (None when every customer has one unit).
        error: why nothing could be measured (no unit, no return, one customer).
    """

    customers: int
    units: float
    returned: float
    rate: float | None
    design_effect: float | None
    units_per_customer: float | None
    icc: float | None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def clustering_from_sums(customers: int, sum_u: float, sum_r: float, sum_uu: float, sum_rr: float,
                         sum_ur: float) -> CustomerClustering:
    """:class:`CustomerClustering` from the moments of the per-customer sums (u_i units, r_i returned).

    Takes the sums an engine aggregates in one row (G, Σu, Σr, Σu², Σr², Σur), so that the lines
    never leave the database. Assumption: the lines of different customers are independent.
    """
    def failed(msg: str) -> CustomerClustering:
        return CustomerClustering(int(customers), float(sum_u), float(sum_r), None, None, None, None, error=msg)

    if customers < 2 or sum_u <= 0:
        return failed(f"{int(customers)} customer(s) with {sum_u:g} units: no clustering can be measured")
    rate = sum_r / sum_u
    if not 0.0 < rate < 1.0:
        return failed(f"return rate {rate:.4g}: the binomial variance is zero, no design effect")
    residual = max(sum_rr - 2 * rate * sum_ur + rate**2 * sum_uu, 0.0)
    raw = residual * customers / (customers - 1) / (rate * (1 - rate) * sum_u)
    m = sum_uu / sum_u
    deff = max(raw, 1.0)
    icc = (raw - 1.0) / (m - 1.0) if m > 1.0 else None
    return CustomerClustering(int(customers), float(sum_u), float(sum_r), float(rate), float(deff), float(m),
                              None if icc is None else float(icc), details={"raw_design_effect": float(raw)})


def customer_clustering(units: Any, returned: Any) -> CustomerClustering:
    """:func:`clustering_from_sums` from per-customer arrays (one entry per customer)."""
    u = np.asarray(units, dtype=float)
    r = np.asarray(returned, dtype=float)
    keep = u > 0
    u, r = u[keep], r[keep]
    return clustering_from_sums(int(u.size), float(u.sum()), float(r.sum()), float(u @ u), float(r @ r),
                                float(u @ r))


DesignEffect = float | Callable[[float], float]


def _deff_at(design_effect: DesignEffect, read_days: float) -> float:
    return float(design_effect(read_days) if callable(design_effect) else design_effect)


@dataclass(frozen=True)
class KDayReadPower:
    """Power of the customer-clustered K-day read after ``run_days`` days of the test.

    Attributes:
        mature_units_per_arm: units delivered at least ``k_days`` before the read
            (``weekly_units_per_arm / 7 · (run_days − k_days)``, deliveries spread evenly).
        mature_share: mature units over all units delivered by the read.
        design_effect: the customer design effect used for this read length.
        power: probability that the read's two-sided ``alpha`` interval excludes 0 on the side of
            ``expected_change`` (the far side is not a detection).
    """

    base_rate: float
    expected_change: float
    weekly_units_per_arm: float
    k_days: int
    run_days: int
    alpha: float
    mature_units_per_arm: float
    mature_share: float
    design_effect: float
    power: float | None
    error: str | None = None
    #: standard error of the difference of K-day rates at this read (None when nothing is mature)
    std_error: float | None = None
    #: customers per arm with a mature unit: the read's information (``stats.sequential``)
    mature_customers_per_arm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def k_day_read_power(
    base_rate: float, expected_change: float, weekly_units_per_arm: float, k_days: int, run_days: int,
    design_effect: DesignEffect = 1.0, alpha: float = 0.05, customers_per_unit: DesignEffect = 1.0,
) -> KDayReadPower:
    """Power of the review's read of ``return_rate_{K}d`` after ``run_days`` days.

    Formula (normal approximation of the customer-clustered difference of K-day rates,
    Deng, Knoblich & Lu 2018 for the delta method, Kish 1965 for the design effect)::

        n    = weekly_units_per_arm / 7 · max(run_days − K, 0)      mature units per arm
        se²  = [deff · p0(1 − p0) + p1(1 − p1) + (deff − 1) · p0(1 − p0) · (p1/p0)²] / n,  p1 = p0 + change
        power = Φ(|change| / se − z_{1−α/2})

    The control arm has the measured design effect; in the treated arm the binomial part is
    p1(1 − p1) and the between-customer part (``(deff − 1) · p0(1 − p0)``) is scaled by (p1/p0)²:
    the lever is assumed to scale every customer's K-day return propensity by the same factor.
    (Applying the control's design effect to both arms is conservative for a lever that lowers
    returns: 81.2 % measured for 80 % planned in the simulation of the tests, 80.4 % with the scaling.)

    Assumptions: deliveries spread evenly over the run; the lag of returns does not change
    with the delivery date; the design effect of the read window is the one measured on
    baseline weeks of the same length (``design_effect`` may be a function of the read
    length in days); customers independent.
    """
    args = (base_rate, expected_change, weekly_units_per_arm, int(k_days), int(run_days), alpha)
    mature = max(weekly_units_per_arm / 7.0 * (run_days - k_days), 0.0) if _finite(weekly_units_per_arm) else 0.0
    share = mature / (weekly_units_per_arm / 7.0 * run_days) if run_days > 0 and weekly_units_per_arm > 0 else 0.0
    read_days = max(run_days - k_days, 0)
    deff = _deff_at(design_effect, read_days) if read_days > 0 else float("nan")
    # the planned power plays no part here: check the inputs with a neutral one
    err = _check_common(base_rate, alpha, (1 + alpha) / 2, deff if read_days > 0 else 1.0)
    target = base_rate + expected_change
    if err is None and not (_finite(expected_change) and 0.0 < target < 1.0 and expected_change != 0):
        err = f"base_rate + expected_change = {target:.4g} must lie in (0, 1) and differ from base_rate"
    if err is None and (k_days < 0 or weekly_units_per_arm <= 0):
        err = "k_days must be >= 0 and weekly_units_per_arm positive"
    if err:
        return KDayReadPower(*args, mature, share, deff, None, error=err)
    if mature <= 0:
        return KDayReadPower(*args, 0.0, 0.0, deff, 0.0, mature_customers_per_arm=0.0)
    between = (deff - 1.0) * base_rate * (1 - base_rate)  # customer-level part of the control variance
    var_unit = base_rate * (1 - base_rate) + between + target * (1 - target) + between * (target / base_rate) ** 2
    se = math.sqrt(var_unit / mature)
    power = float(stats.norm.cdf(abs(expected_change) / se - stats.norm.ppf(1 - alpha / 2)))
    customers = mature * _deff_at(customers_per_unit, read_days)
    return KDayReadPower(*args, mature, share, deff, power, std_error=se, mature_customers_per_arm=customers)


@dataclass(frozen=True)
class KDayPlan:
    """Weekly reviews until the K-day read reaches the planned power.

    Attributes:
        weeks: whole weeks from the start to the first weekly review whose read reaches
            ``power`` (None when not within ``max_weeks``).
        weeks_uncapped: the same without the cap (None when never).
        reachable: ``weeks`` is not None.
        achieved_power: power of the read at ``weeks`` (or at ``max_weeks`` when not reachable).
        by_week: the read's power at each weekly review 1..max_weeks.
        message: one sentence for the plan.
    """

    base_rate: float
    expected_change: float
    weekly_units_per_arm: float
    k_days: int
    alpha: float
    power: float
    max_weeks: int
    weeks: int | None
    weeks_uncapped: int | None
    reachable: bool
    achieved_power: float | None
    by_week: tuple[KDayReadPower, ...]
    message: str
    error: str | None = None
    #: the sequential design at the review (``weeks``, else ``max_weeks``): its looks, the weeks they fall
    #: in (from the start), and the information (mature customers per arm) the review's read was sized for
    planned_looks: int = 1
    look_weeks: tuple[int, ...] = ()
    planned_information: float | None = None
    #: the design's power at each weekly review 1..max_weeks (the power ``by_week`` of a single look when
    #: the plan reads once)
    power_by_week: tuple[float | None, ...] = ()

    @property
    def at_review(self) -> KDayReadPower | None:
        week = self.weeks or self.max_weeks
        return self.by_week[week - 1] if self.by_week else None

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


@dataclass(frozen=True)
class SequentialRead:
    """The design of a review after ``weeks`` weeks: the weekly looks it reads, their information
    (mature customers per arm) and the power of the whole design (a keep at any look)."""

    weeks: int
    look_weeks: tuple[int, ...]
    information: tuple[float, ...]
    power: float


def sequential_read(reads: list[KDayReadPower], weeks: int, max_looks: int,
                    alpha: float = 0.025) -> SequentialRead | None:
    """The design whose last look is the review after ``weeks`` weeks and whose earlier looks are the
    weekly reads before it with mature units (at most ``max_looks`` in all), and its power.

    Power by :func:`playbook.stats.sequential.design_power` with the boundaries the verdict reads
    (:func:`playbook.stats.sequential.spending_boundaries`, the final look spending what is left), the
    drift being the expected change over the review read's standard error: the plan and the verdict
    read one rule. None when the review read has nothing mature.
    """
    review = reads[weeks - 1]
    if not review.std_error or not review.mature_customers_per_arm:
        return None
    readable = [w for w in range(1, weeks + 1) if (reads[w - 1].mature_customers_per_arm or 0) > 0]
    looks = tuple(readable[-max_looks:])
    info = tuple(float(reads[w - 1].mature_customers_per_arm) for w in looks)
    final = info[-1]
    spent = tuple(min(i / final, 1.0) for i in info[:-1]) + (1.0,)
    bounds = spending_boundaries(spent, info, alpha)
    drift = abs(review.expected_change) / review.std_error
    return SequentialRead(weeks, looks, info, design_power(bounds, info, drift))


def k_day_read_plan(
    base_rate: float, expected_change: float, weekly_units_per_arm: float, k_days: int,
    design_effect: DesignEffect = 1.0, alpha: float = 0.05, power: float = 0.8, max_weeks: int = 8,
    horizon_weeks: int = 104, max_looks: int = 1, customers_per_unit: DesignEffect = 1.0,
) -> KDayPlan:
    """The first weekly review (a whole number of weeks after the start) whose design has ``power``.

    The review's read and the weekly reads before it with mature units, at most ``max_looks`` in all,
    are the design's looks (:func:`sequential_read`): with one look the power is that of the review's
    read at two-sided ``alpha`` (:func:`k_day_read_power`); with more, alpha is spent across them by
    information and the power is the chance of a keep at any look. ``weeks_uncapped`` searches up to
    ``horizon_weeks`` so that a plan that needs 40 weeks says 40, not "more than 8".
    """
    if not (isinstance(max_weeks, int) and max_weeks >= 1):
        raise ValueError(f"max_weeks must be a positive integer, got {max_weeks!r}")
    reads = [k_day_read_power(base_rate, expected_change, weekly_units_per_arm, k_days, 7 * w, design_effect, alpha,
                              customers_per_unit) for w in range(1, max(max_weeks, horizon_weeks) + 1)]
    by_week = tuple(reads[:max_weeks])
    if reads[-1].error:
        return KDayPlan(base_rate, expected_change, weekly_units_per_arm, int(k_days), alpha, power, max_weeks,
                        None, None, False, None, by_week, f"power not available: {reads[-1].error}",
                        error=reads[-1].error)

    @functools.lru_cache(maxsize=None)
    def design(w: int) -> SequentialRead | None:
        return sequential_read(reads, w, max_looks, alpha / 2)

    def design_power_at(w: int) -> float:
        d = design(w)
        if d is None:
            return 0.0
        return reads[w - 1].power if len(d.look_weeks) == 1 else d.power  # one look: the read's own power

    # a design with earlier looks has at most the power of its review read alone: start where that one reaches it
    single = next((w for w, r in enumerate(reads, start=1) if r.power >= power), None)
    first = None if single is None else next((w for w in range(single, len(reads) + 1) if design_power_at(w) >= power),
                                             None)
    weeks = first if first is not None and first <= max_weeks else None
    at = reads[(weeks or max_weeks) - 1]
    chosen = design(weeks or max_weeks)
    achieved = design_power_at(weeks or max_weeks)
    looks = f" over {len(chosen.look_weeks)} looks" if chosen is not None and len(chosen.look_weeks) > 1 else ""
    change = f"{expected_change * 100:+.2f} points from {base_rate:.1%}"
    if weeks is not None:
        message = (f"{weeks} week(s): the {k_days}-day read at the review uses {at.mature_units_per_arm:,.0f} mature "
                   f"units per arm ({at.mature_share:.0%} of those delivered; design effect {at.design_effect:.2f}) "
                   f"and the design has {achieved:.0%} power{looks} to detect {change}")
    else:
        needed = f"{first} weeks" if first is not None else f"more than {horizon_weeks} weeks"
        message = (f"not reachable within {max_weeks} weeks: {change} needs {needed}; after {max_weeks} weeks the "
                   f"{k_days}-day read has {achieved:.1%} power{looks} ({at.mature_units_per_arm:,.0f} mature units per "
                   f"arm, design effect {at.design_effect:.2f})")
    return KDayPlan(base_rate, expected_change, weekly_units_per_arm, int(k_days), alpha, power, max_weeks, weeks,
                    first, weeks is not None, achieved, by_week, message,
                    planned_looks=len(chosen.look_weeks) if chosen else 1,
                    look_weeks=chosen.look_weeks if chosen else (),
                    planned_information=chosen.information[-1] if chosen else None,
                    power_by_week=tuple(design_power_at(w) for w in range(1, max_weeks + 1)))


def k_day_read_mde(
    base_rate: float, weekly_units_per_arm: float, k_days: int, run_days: int,
    design_effect: DesignEffect = 1.0, alpha: float = 0.05, power: float = 0.8,
    direction: Literal["decrease", "increase"] = "decrease",
) -> float | None:
    """The smallest signed change the K-day read after ``run_days`` detects with ``power``
    (root of :func:`k_day_read_power`; None when even a move to 0 or 1 is not enough)."""
    sign = -1.0 if direction == "decrease" else 1.0
    limit = base_rate if direction == "decrease" else 1.0 - base_rate

    def gap(size: float) -> float:
        res = k_day_read_power(base_rate, sign * size, weekly_units_per_arm, k_days, run_days, design_effect, alpha)
        return (res.power or 0.0) - power

    hi = limit * (1 - 1e-9)
    if gap(hi) < 0:
        return None
    return sign * float(optimize.brentq(gap, 1e-12, hi, xtol=1e-12))
