"""The settings every layer reads: metric windows, decision rows, guardrails, experiments, the config.

Plain frozen dataclasses with no logic beyond lookups; ``playbook.config.loader`` builds them from
the YAML file and checks them against the metrics and rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbook.core.vocabulary import Design, Direction

#: The columns metrics can be sliced by (``metrics.slices`` names some of them).
SLICE_COLUMNS: tuple[str, ...] = ("category", "channel", "region", "customer_type")


class ConfigError(ValueError):
    """The configuration file breaks its own schema; the message names the file and the key."""


@dataclass(frozen=True)
class MetricSettings:
    return_window_days: int = 14
    delivery_allowance_days: int = 7
    baseline_weeks: int = 8
    default_contact_cost: float = 4.5
    slices: tuple[str, ...] = ("category", "channel", "region", "customer_type")


@dataclass(frozen=True)
class DecisionRow:
    zone: str
    metric: str
    rule: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    #: who acts when the row turns red (a role: "logistics lead"); empty when the table names nobody
    owner: str = ""


@dataclass(frozen=True)
class Guardrail:
    """A metric that must not get worse beyond ``tolerance`` (in its own unit) while a lever runs."""

    metric: str
    tolerance: float
    bad_direction: Direction  # the metric's good direction reversed (the loader checks it)
    description: str = ""
    #: the plan accepts a keep without this guardrail measured (else an unmeasured guardrail blocks a keep)
    optional: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "bad_direction", Direction(self.bad_direction))  # "higher" reads as the enum

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "tolerance": self.tolerance, "bad_direction": self.bad_direction,
                "description": self.description, "optional": self.optional}


@dataclass(frozen=True)
class ExperimentSettings:
    planned_split: dict[str, float]
    pre_weeks: int
    guardrails: dict[str, tuple[Guardrail, ...]]
    max_weeks: int = 8  # longest run a plan may ask for (step 3); beyond it no experiment row is written


DEFAULT_EXPERIMENTS = ExperimentSettings(
    planned_split={"control": 0.5, "treatment": 0.5},
    pre_weeks=8,
    guardrails={
        Design.RANDOMIZED: (
            Guardrail("contact_rate", 0.01, Direction.HIGHER, "contacts per exposed order (+1 point is harm)"),
            Guardrail("net_revenue_per_customer", 2.0, Direction.LOWER, "net revenue per assigned customer (-2.00 is harm)"),
        ),
        Design.PRE_POST: (
            Guardrail("contact_rate", 0.01, Direction.HIGHER, "contacts per order (+1 point is harm)"),
            Guardrail("conversion_rate", 0.002, Direction.LOWER, "orders per session (-0.2 point is harm)"),
        ),
    },
)


@dataclass(frozen=True)
class Config:
    path: Path
    metrics: MetricSettings
    decision_table: tuple[DecisionRow, ...]
    default_rule: DecisionRow
    levers: dict[str, dict[str, str]]
    experiments: ExperimentSettings = DEFAULT_EXPERIMENTS
    #: the shop's IANA time zone: weeks are counted on its clock, timestamps with an offset are converted to it
    timezone: str = "UTC"
    #: the ISO 4217 code the shop's money columns are in, shown beside every amount of the report
    currency: str = "EUR"
    #: the shop's name, from the data source's ``shop.yaml`` (empty when the source names none)
    shop_name: str = ""
    #: the data source's ``shop.yaml`` whose name, currency and time zone replaced the configuration's, if any
    shop_file: Path | None = None

    def row_for(self, metric: str) -> DecisionRow | None:
        for row in self.decision_table:
            if row.metric == metric:
                return row
        return None

    def lever_for(self, reason_code: str) -> dict[str, str]:
        return self.levers.get(reason_code) or self.levers.get("other") or {"lever": "reason_capture", "description": ""}
