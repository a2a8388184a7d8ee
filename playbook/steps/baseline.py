"""Step 1 of the loop: the week's baseline, its statuses and red triggers, as a summary section."""
from __future__ import annotations

from typing import Any

import pandas as pd

from playbook.core.settings import Config
from playbook.data.dataset import Dataset, Snapshot
from playbook.metrics.dictionary import MetricResults, compute_metrics
from playbook.metrics.rules import MetricStatus, format_value, metric_statuses, triggers


def capture_baseline(snap: Snapshot, config: Config) -> tuple[MetricResults, list[MetricStatus]]:
    """Compute every metric of the dictionary and its status for the snapshot's week."""
    results = compute_metrics(snap, config.metrics)
    return results, metric_statuses(results, config)


def status_table(statuses: list[MetricStatus]) -> pd.DataFrame:
    """The statuses as a table a person reads: value and baseline formatted in the metric's unit."""
    rows = []
    for s in statuses:
        if s.metric == "reason_mix":
            value = baseline = "see the chart"
        else:
            value, baseline = format_value(s.value, s.format), format_value(s.baseline, s.format)
        rows.append({"metric": s.metric, "week": s.week or "", "value": value,
                     "baseline": baseline, "status": s.status, "why": s.why, "action": s.action or ""})
    return pd.DataFrame(rows)


def baseline_section(statuses: list[MetricStatus]) -> dict[str, Any]:
    """The ``baseline`` section of summary.json."""
    metrics = {}
    for s in statuses:
        metrics[s.metric] = {"value": s.value, "baseline": s.baseline, "status": s.status, "why": s.why,
                             "week": s.week, "zone": s.zone, "action": s.action}
    return {"metrics": metrics, "triggers": triggers(statuses)}


def data_quality_section(dataset: Dataset) -> dict[str, Any]:
    return {
        "warnings": [w.to_dict() for w in dataset.warnings],
        "missing_tables": list(dataset.missing_tables),
    }


def conclusion(statuses: list[MetricStatus]) -> str:
    """One sentence the data fill in."""
    triggered = [s for s in statuses if s.status == "red" and s.zone]
    drifting = [s.metric for s in statuses if s.status == "red" and not s.zone]
    amber = [s.metric for s in statuses if s.status == "amber"]
    text = (f"{len(triggered)} red trigger(s) of the decision table this week"
            + (": " + "; ".join(f"{s.metric} ({s.zone}: {s.action})" for s in triggered) if triggered else ""))
    if drifting:
        text += f"; far from their own baseline: {', '.join(drifting)}"
    if amber:
        text += f"; amber: {', '.join(amber)}"
    return text + "."


def warnings_table(dataset: Dataset) -> pd.DataFrame:
    """The data-quality warnings, one row each (empty when there are none)."""
    rows = [{"table": w.table, "rule": w.rule, "rows": w.n_rows, "message": w.message} for w in dataset.warnings]
    return pd.DataFrame(rows, columns=["table", "rule", "rows", "message"])
