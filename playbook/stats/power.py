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
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from playbook.stats.results import _clean

__all__ = [
    "MinimumDetectableEffect",
    "WeeksNeeded",
    "minimum_detectable_effect",
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
