"""Step 1 of the loop: the week's baseline, its statuses and red triggers, as a summary section."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from playbook.core.jsonmodel import OMIT_IF_NONE
from playbook.core.settings import Config
from playbook.core.vocabulary import Status
from playbook.data.dataset import Dataset, Snapshot
from playbook.data.validation import DataQualityWarning
from playbook.metrics.dictionary import MetricResults, compute_metrics
from playbook.metrics.display import value_text
from playbook.metrics.rules import MetricStatus, metric_statuses, triggers


def capture_baseline(snap: Snapshot, config: Config) -> tuple[MetricResults, list[MetricStatus]]:
    """Compute every metric of the dictionary and its status for the snapshot's week."""
    results = compute_metrics(snap, config.metrics)
    return results, metric_statuses(results, config)


def status_table(statuses: list[MetricStatus], currency: str = "") -> pd.DataFrame:
    """The statuses as a table a person reads: the metric's title, value and baseline in its unit (money in
    the shop's ``currency``), who acts."""
    rows = []
    for s in statuses:
        if s.metric == "reason_mix":
            value = baseline = "see the chart"
        else:
            value, baseline = (value_text(v, s.format, currency, (s.value, s.baseline)) for v in (s.value, s.baseline))
        rows.append({"metric": s.title, "week": s.week or "", "value": value, "baseline": baseline,
                     "status": str(s.status), "why": s.why, "action": s.action or "", "owner": s.owner or ""})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class MetricStatusEntry:
    """One metric's status in the ``baseline`` section (``value``/``baseline``: a number, or shares by
    reason for ``reason_mix``; None when not computable). ``title`` and ``format`` come from the metric
    dictionary, for pages that show names and units instead of ids."""

    value: float | dict[str, float | None] | None
    baseline: float | dict[str, float | None] | None
    status: Status
    why: str
    week: str | None
    zone: str | None
    action: str | None
    title: str | None = field(default=None, metadata=OMIT_IF_NONE)
    format: str | None = field(default=None, metadata=OMIT_IF_NONE)
    owner: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class Trigger:
    """A red trigger of the decision table: its zone, metric and action."""

    zone: str
    metric: str
    action: str | None
    why: str
    owner: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class OpenAction:
    """An action of the journal still open at the end of the week: who owns it, since which week."""

    action_id: str
    week: str
    owner: str
    description: str


@dataclass(frozen=True)
class BaselineSection:
    """The ``baseline`` section of summary.json: every metric's status, the red triggers, and the
    actions still open at the end of the week (None: the shop keeps no actions table)."""

    metrics: dict[str, MetricStatusEntry]
    triggers: tuple[Trigger, ...]
    open_actions: tuple[OpenAction, ...] | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True)
class DataQualitySection:
    """The ``data_quality`` section: the warnings that did not stop the run, the optional tables missing."""

    warnings: tuple[DataQualityWarning, ...]
    missing_tables: tuple[str, ...]


def baseline_section(statuses: list[MetricStatus], actions: tuple[OpenAction, ...] | None = None) -> BaselineSection:
    """The ``baseline`` section of summary.json."""
    metrics = {s.metric: MetricStatusEntry(s.value, s.baseline, s.status, s.why, s.week, s.zone, s.action,
                                           s.title, s.format, s.owner) for s in statuses}
    return BaselineSection(metrics, tuple(Trigger(**t) for t in triggers(statuses)), actions)


def open_actions(snapshot: Snapshot) -> tuple[OpenAction, ...] | None:
    """The actions decided up to the week and not closed by its end (the snapshot already reopens an
    action closed after the cut), oldest first; None when the shop keeps no actions table."""
    if not snapshot.has("actions"):
        return None
    a = snapshot.tables["actions"]
    rows = (a.filter(a.status == "open").select("action_id", "week", "owner", "description")
            .order_by(["week", "action_id"]).to_pyarrow().to_pylist())
    return tuple(OpenAction(str(r["action_id"]), str(r["week"]), str(r["owner"] or ""), str(r["description"] or ""))
                 for r in rows)


def data_quality_section(dataset: Dataset) -> DataQualitySection:
    return DataQualitySection(tuple(dataset.warnings), tuple(dataset.missing_tables))


def conclusion(statuses: list[MetricStatus]) -> str:
    """One sentence the data fill in, metrics by their names."""
    triggered = [s for s in statuses if s.status == Status.RED and s.zone]
    drifting = [s.title for s in statuses if s.status == Status.RED and not s.zone]
    amber = [s.title for s in statuses if s.status == Status.AMBER]
    text = (f"{len(triggered)} red trigger(s) of the decision table this week"
            + (": " + "; ".join(f"{s.title} ({s.zone}: {s.action})" for s in triggered) if triggered else ""))
    if drifting:
        text += f"; far from their own baseline: {', '.join(drifting)}"
    if amber:
        text += f"; amber: {', '.join(amber)}"
    return text + "."


def warnings_table(dataset: Dataset) -> pd.DataFrame:
    """The data-quality warnings, one row each (empty when there are none)."""
    rows = [{"table": w.table, "rule": w.rule, "rows": w.n_rows, "message": w.message} for w in dataset.warnings]
    return pd.DataFrame(rows, columns=["table", "rule", "rows", "message"])


@dataclass(frozen=True)
class BaselineResult:
    """Step 1's result (``core.step.StepResult``): every metric's weekly values and status."""

    results: MetricResults
    statuses: list[MetricStatus]
    dataset: Dataset
    #: what the week's history cannot support yet, in words (an empty week, a baseline not full yet)
    notes: tuple[str, ...] = ()
    #: the actions still open at the end of the week (None: no actions table)
    actions: tuple[OpenAction, ...] | None = None

    @property
    def sections(self) -> dict[str, object]:
        return {"baseline": baseline_section(self.statuses, self.actions),
                "data_quality": data_quality_section(self.dataset)}

    @property
    def conclusion(self) -> str:
        return " ".join((*self.notes, conclusion(self.statuses)))


def history_notes(snapshot: Snapshot, config: Config) -> tuple[str, ...]:
    """Sentences saying what the data cannot support yet: no order in the week (an export gap or a
    closed shop: the order-week metrics have no value for it), fewer weeks before it than the
    trailing baseline takes (a young shop: statuses compare with the weeks there are)."""
    week, notes = snapshot.week, []
    orders = snapshot.tables["orders"]
    if orders.filter((orders.order_ts >= week.start) & (orders.order_ts <= week.end)).count().to_pyarrow().as_py() == 0:
        notes.append(f"Week {week} has no order in the data (an export gap, or the shop was closed): the metrics "
                     "counted from its orders have no value for it.")
    before = (week.monday - snapshot.first_week().monday).days // 7
    wanted = config.metrics.baseline_weeks
    if before < wanted:
        notes.append(f"Only {before} week(s) of data before {week}: the {wanted}-week baseline is not full yet, so "
                     "statuses compare with the weeks there are, and those that need more say so.")
    return tuple(notes)


def analyse(snapshot: Snapshot, config: Config) -> BaselineResult:
    """Step 1: every metric of the dictionary for the snapshot's week, with its status and red triggers."""
    results, statuses = capture_baseline(snapshot, config)
    return BaselineResult(results, statuses, snapshot.dataset, history_notes(snapshot, config), open_actions(snapshot))
