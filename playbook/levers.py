"""Step 3 of the loop: one lever, one cohort, one primary metric, an expected range set in advance.

The plan is written before acting so that the J+7 review cannot move the goalposts: the lever
(by default the decision table's lever for the cohort's dominant reason), the primary metric and
its expected impact range, the guardrails with their tolerances, and the power of the test for
the cohort's volume (how small an effect one week can detect, how many weeks the expected range
needs).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis

from playbook.cohorts import matches
from playbook.config import Config, Guardrail
from playbook.contract import format_cohort
from playbook.data import Snapshot
from playbook.metrics import line_facts, return_rate_name
from playbook.stats.power import minimum_detectable_effect, weeks_needed
from playbook.stats.results import jsonable


@dataclass(frozen=True)
class LeverPlan:
    experiment_id: str
    lever: str
    lever_description: str
    cohort: str
    reason_code: str
    design: str
    control_cohort: str
    primary_metric: str
    good_direction: str
    expected_low: float
    expected_high: float
    start_date: dt.date
    review_date: dt.date
    base_rate: float
    weekly_units: float
    mde_one_week: float | None
    weeks_needed: int | None
    power_message: str
    underpowered: bool = False  # the expected range cannot be detected within the weeks' cap
    guardrails: tuple[Guardrail, ...] = field(default_factory=tuple)

    def experiments_row(self) -> dict[str, Any]:
        """The plan as a ready row of the ``experiments`` table (data contract)."""
        return {
            "experiment_id": self.experiment_id, "lever": self.lever, "cohort": self.cohort, "design": self.design,
            "control_cohort": self.control_cohort, "primary_metric": self.primary_metric,
            "expected_low": round(self.expected_low, 6), "expected_high": round(self.expected_high, 6),
            "start_date": self.start_date.isoformat(), "review_date": self.review_date.isoformat(),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start_date"], d["review_date"] = self.start_date.isoformat(), self.review_date.isoformat()
        return jsonable(d)

    def summary_section(self) -> dict[str, Any]:
        return jsonable({
            "lever": self.lever, "cohort": self.cohort, "primary_metric": self.primary_metric,
            "expected_low": self.expected_low, "expected_high": self.expected_high, "mde": self.mde_one_week,
            "weeks_needed": self.weeks_needed, "underpowered": self.underpowered,
            "experiment_id": self.experiment_id, "design": self.design,
            "reason_code": self.reason_code, "base_rate": self.base_rate, "weekly_units": self.weekly_units,
            "guardrails": [g.to_dict() for g in self.guardrails], "power": self.power_message,
            "experiments_row": self.experiments_row(),
        })


def cohort_volume(snap: Snapshot, k: int, filters: dict[str, str], weeks: list[dt.date]) -> tuple[float, float]:
    """Units delivered per week and return rate within k days of the cohort over ``weeks``."""
    lf = line_facts(snap, k)
    lf = lf.filter(lf.delivered_ts.notnull() & lf.delivery_week.isin(weeks) & matches(lf, filters))
    row = lf.agg(units=lf.units.sum(), returned=lf.returned_units_k.sum()).to_pandas().iloc[0]
    units = float(row["units"] or 0)
    return units / max(len(weeks), 1), (float(row["returned"]) / units if units else float("nan"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "-", text.upper()).strip("-")


def design_lever(
    weak: dict[str, Any], snap: Snapshot, config: Config, *,
    lever: str = "", design: str = "randomized", expected_low: float | None = None,
    expected_high: float | None = None, share_of_excess: tuple[float, float] = (0.7, 0.3), power: float = 0.8,
) -> LeverPlan:
    """Plan the lever for the weak cohort ``weak`` (the ``weak_cohort`` summary section).

    Default expected range: the lever removes between 30 % and 70 % of the cohort's excess rate
    (its reason's rate above its own baseline), as an absolute change of the slice's return rate.
    """
    k = config.metrics.return_window_days
    reason = weak["filters"]["reason_code"]
    slice_filter = {c: v for c, v in weak["filters"].items() if c != "reason_code"}
    chosen = config.lever_for(reason)
    lever_name = lever or chosen["lever"]
    description = chosen.get("description", "") if not lever or lever == chosen["lever"] else lever
    excess_rate = max(float(weak["return_rate"]) - float(weak["expected_rate"]), 0.0)
    lo = expected_low if expected_low is not None else -share_of_excess[0] * excess_rate
    hi = expected_high if expected_high is not None else -share_of_excess[1] * excess_rate
    lo, hi = sorted((float(lo), float(hi)))
    # the same delivery weeks in which step 2 found the cohort (recorded in its summary section)
    window_weeks = [dt.date.fromisoformat(d) for d in weak["window_weeks"]]
    weekly_units, base_rate = cohort_volume(snap, k, slice_filter, window_weeks)
    per_arm = weekly_units / 2 if design == "randomized" else weekly_units
    mde = minimum_detectable_effect(base_rate, per_arm, power=power)
    weaker_end = hi if hi < 0 else lo  # the change closest to zero that we still want to see
    need = weeks_needed(base_rate, weaker_end, per_arm, power=power)
    start = snap.week.sunday + dt.timedelta(days=1)
    cohort = format_cohort(slice_filter)
    weeks = need.weeks if need.weeks is not None else _uncapped_weeks(need, per_arm)
    # review when the test can answer: J+7 when one week is enough, else after the weeks it needs; an
    # underpowered plan keeps J+7 and says so (widen the cohort or make the lever bolder)
    review = start + dt.timedelta(days=7 * (need.weeks or 1))
    return LeverPlan(
        experiment_id=f"EXP-{snap.week.shift(1)}-{_slug(cohort.split('=', 1)[-1])}-{_slug(lever_name)}",
        lever=lever_name, lever_description=description, cohort=cohort, reason_code=reason, design=design,
        control_cohort="", primary_metric=return_rate_name(k), good_direction="lower",
        expected_low=lo, expected_high=hi, start_date=start, review_date=review,
        base_rate=base_rate, weekly_units=weekly_units,
        mde_one_week=mde.absolute_change if mde.ok else None,
        weeks_needed=weeks, underpowered=need.weeks is None,
        power_message=f"{mde}; {need.message}",
        guardrails=tuple(config.experiments.guardrails[design]),
    )


def _uncapped_weeks(need, per_arm: float) -> int | None:
    """Weeks the plan would need without the cap (reported rather than hidden behind 'not reachable')."""
    n = getattr(need, "n_per_arm_needed", None)
    if n is None or not per_arm or per_arm <= 0:
        return None
    return int(-(-float(n) // per_arm))


def journal_entry(plan: LeverPlan, week: str):
    """The plan as a decision-journal entry (kind ``plan``)."""
    from playbook.journal import JournalEntry

    return JournalEntry(
        week=week, kind="plan", experiment_id=plan.experiment_id, lever=plan.lever, cohort=plan.cohort,
        primary_metric=plan.primary_metric, design=plan.design, expected_low=plan.expected_low,
        expected_high=plan.expected_high, why=f"weak cohort {plan.cohort} x {plan.reason_code}; {plan.power_message}",
    )


def conclusion(plan: LeverPlan | None) -> str:
    if plan is None:
        return "No weak cohort this week, so no new lever: the team keeps its capacity for the running tests."
    text = (f"Plan {plan.experiment_id}: {plan.lever} on {plan.cohort} ({plan.design}), expecting "
            f"{plan.primary_metric} to change by {plan.expected_low * 100:+.1f} to {plan.expected_high * 100:+.1f} points")
    if plan.underpowered:
        needed = f"about {plan.weeks_needed} weeks" if plan.weeks_needed else "more weeks than the data can say"
        return (f"{text}; at this volume the weaker end of that range needs {needed} to detect with 80 % power: "
                f"widen the cohort or make the lever bolder before running it (review kept at J+7, {plan.review_date}).")
    return f"{text}; review on {plan.review_date}, after the {plan.weeks_needed} week(s) the test needs at 80 % power."


def guardrail_table(plan: LeverPlan):
    import pandas as pd

    return pd.DataFrame([{"guardrail": g.metric, "harm is": g.bad_direction, "tolerance": g.tolerance,
                          "what it watches": g.description} for g in plan.guardrails])


def experiments_table(plan: LeverPlan):
    """The ready row for the ``experiments`` table, to paste into the source."""
    import pandas as pd

    return pd.DataFrame([plan.experiments_row()])


def describe(plan: LeverPlan) -> list[tuple[str, str]]:
    """The plan in sentences (title, text) for the notebook."""
    return [
        ("Lever.", f"{plan.lever}: {plan.lever_description} on {plan.cohort} (dominant reason {plan.reason_code}), "
                   f"design {plan.design}, from {plan.start_date} to the review on {plan.review_date}."),
        ("Primary metric.", f"{plan.primary_metric}, base rate {plan.base_rate:.1%} on {plan.weekly_units:,.0f} units a "
                            f"week; expected change {plan.expected_low * 100:+.1f} to {plan.expected_high * 100:+.1f} points."),
    ]


def write_experiments_row(plan: LeverPlan, run_dir) -> "Path":
    """``experiments_plan.csv`` in the week's folder: the plan as a row to append to the experiments table."""
    import io
    from pathlib import Path

    import pandas as pd

    from playbook.atomic import write_text

    buffer = io.StringIO()
    pd.DataFrame([plan.experiments_row()]).to_csv(buffer, index=False)
    return write_text(Path(run_dir) / "experiments_plan.csv", buffer.getvalue())
