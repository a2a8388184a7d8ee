"""Step 5 of the loop: the J+7 review, keep / adjust / stop by a written rule, and the next action.

The verdict rule lives in ``playbook.decisions.decide``; this module applies it to the week's
comparisons (the ``comparisons`` section written by notebook 04), answers the weekly review
script from the data (what moved, why, what we decide, what we do next) and prepares the
decision-journal entries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from playbook.config import Config
from playbook.contract import parse_cohort
from playbook.data import Snapshot
from playbook.decisions import Verdict, decide
from playbook.journal import JournalEntry


@dataclass(frozen=True)
class ExperimentVerdict:
    experiment_id: str
    design: str
    lever: str
    cohort: str
    primary_metric: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    expected_low: float | None
    expected_high: float | None
    verdict: Verdict

    def summary_row(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "decision": self.verdict.decision, "why": self.verdict.why,
                "next_step": self.verdict.next_step, "estimate": self.estimate, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "primary_metric": self.primary_metric}

    def journal_entry(self, week: str) -> JournalEntry:
        return JournalEntry(
            week=week, kind="verdict", experiment_id=self.experiment_id, lever=self.lever, cohort=self.cohort,
            primary_metric=self.primary_metric, design=self.design, expected_low=self.expected_low,
            expected_high=self.expected_high, estimate=self.estimate, ci_low=self.ci_low, ci_high=self.ci_high,
            decision=self.verdict.decision, why=self.verdict.why,
        )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def verdict_for(comparison: dict[str, Any]) -> ExperimentVerdict:
    """Apply the written rule to one entry of the ``comparisons`` summary section."""
    p = comparison["primary"]
    breached = [g["metric"] for g in comparison.get("guardrails", []) if g.get("breached")]
    v = decide(
        p.get("estimate"), p.get("ci_low"), p.get("ci_high"),
        good_direction=p.get("good_direction", "lower"),
        expected_low=_number(p.get("expected_low")), expected_high=_number(p.get("expected_high")),
        null_value=float(p.get("null_value") or 0.0), breached_guardrails=breached,
        srm=bool(comparison.get("srm_mismatch")),
    )
    if p.get("error") and v.decision != "stop":
        v = Verdict(v.decision, f"{v.why} ({p['error']})", v.next_step)
    unmeasured = [f"{g['metric']} ({g['error']})" for g in comparison.get("guardrails", []) if g.get("error")]
    if unmeasured:  # "no guardrail breached" must not hide guardrails that could not be measured
        v = Verdict(v.decision, f"{v.why}; guardrail(s) not measured: {'; '.join(unmeasured)}", v.next_step)
    return ExperimentVerdict(
        comparison["experiment_id"], comparison["design"], comparison.get("lever") or "", comparison.get("cohort") or "",
        p["metric"], p.get("estimate"), p.get("ci_low"), p.get("ci_high"), p.get("expected_low"), p.get("expected_high"), v,
    )


def verdicts(comparisons: list[dict[str, Any]]) -> list[ExperimentVerdict]:
    return [verdict_for(c) for c in comparisons]


def verdict_table(items: list[ExperimentVerdict]) -> pd.DataFrame:
    return pd.DataFrame([{**{k: v for k, v in i.summary_row().items()}} for i in items])


def cohorts_under_test(snap: Snapshot) -> list[dict[str, str]]:
    """Cohort filters of experiments still running or due for review this week (or later)."""
    if not snap.has("experiments"):
        return []
    e = snap.tables["experiments"]
    live = e.filter(e.review_date >= snap.week.monday).select("cohort").to_pandas()
    return [parse_cohort(c) for c in live["cohort"]]


def _covered(candidate: dict[str, str], under_test: list[dict[str, str]]) -> bool:
    slice_filter = {k: v for k, v in candidate.items() if k != "reason_code"}
    return any(t and all(slice_filter.get(k) == v for k, v in t.items()) for t in under_test)


def next_action(candidates: list[dict[str, Any]], under_test: list[dict[str, str]], config: Config,
                plan: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The weak cohort with the largest excess cost not already under test, with its lever."""
    for c in sorted(candidates, key=lambda c: -float(c.get("excess_cost") or 0)):
        if _covered(c["filters"], under_test):
            continue
        filters = c["filters"]
        cohort = ";".join(f"{k}={v}" for k, v in filters.items() if k != "reason_code")
        lever = config.lever_for(filters.get("reason_code", "other"))
        action = lever["lever"]
        if plan and plan.get("cohort") == cohort:
            action = plan["lever"]
        return {"cohort": cohort, "reason_code": filters.get("reason_code"), "action": action,
                "description": lever.get("description", ""), "excess_cost": float(c.get("excess_cost") or 0.0)}
    return None


def review_script(summary: dict[str, Any], items: list[ExperimentVerdict], nxt: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The weekly review questions, answered from the week's summary."""
    metrics = (summary.get("baseline") or {}).get("metrics") or {}
    moved = [f"{name} ({m['status']}: {m['why']})" for name, m in metrics.items() if m.get("status") in ("red", "amber")]
    weak = summary.get("weak_cohort")
    why = (f"the weak cohort is {', '.join(f'{k}={v}' for k, v in weak['filters'].items())}: "
           f"{weak['return_rate']:.1%} returned against {weak['expected_rate']:.1%} normally, "
           f"excess cost {weak['excess_cost']:,.0f}" if weak else "no cohort stands out against its own baseline")
    decided = "; ".join(f"{i.experiment_id}: {i.verdict.decision} ({i.verdict.why})" for i in items) or "no experiment was due for review"
    nxt_text = (f"{nxt['action']} on {nxt['cohort']} ({nxt['reason_code']}), excess cost {nxt['excess_cost']:,.0f}"
                if nxt else "no flagged cohort outside the running tests: keep capacity for the running ones")
    return [
        ("What moved?", "; ".join(moved) or "nothing left its usual range"),
        ("Why?", why),
        ("Keep, adjust or stop?", decided),
        ("Next highest-impact action?", nxt_text),
    ]


def conclusion(items: list[ExperimentVerdict], nxt: dict[str, Any] | None) -> str:
    counts = {d: sum(i.verdict.decision == d for i in items) for d in ("keep", "adjust", "stop")}
    text = (f"{len(items)} experiment(s) reviewed: {counts['keep']} kept, {counts['adjust']} to adjust, "
            f"{counts['stop']} stopped")
    return text + (f"; next action: {nxt['action']} on {nxt['cohort']}." if nxt else "; no new cohort to act on.")


def as_dicts(items: list[ExperimentVerdict]) -> list[dict[str, Any]]:
    return [i.summary_row() for i in items]
