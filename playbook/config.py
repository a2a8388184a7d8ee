"""Read and check the editable YAML configuration (metric windows, decision table, levers)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from playbook.paths import DEFAULT_CONFIG, resolve


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


@dataclass(frozen=True)
class Config:
    path: Path
    metrics: MetricSettings
    decision_table: tuple[DecisionRow, ...]
    default_rule: DecisionRow
    levers: dict[str, dict[str, str]]

    def row_for(self, metric: str) -> DecisionRow | None:
        for row in self.decision_table:
            if row.metric == metric:
                return row
        return None

    def lever_for(self, reason_code: str) -> dict[str, str]:
        return self.levers.get(reason_code) or self.levers.get("other") or {"lever": "reason_capture", "description": ""}


def _require_keys(where: str, data: dict, allowed: set[str], required: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(data)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {sorted(missing)}")


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load the YAML configuration (default ``playbook/config/playbook.yaml``)."""
    from playbook.decisions import RULES  # the rule vocabulary lives with the rules

    file = resolve(path, DEFAULT_CONFIG)
    if not file.is_file():
        raise ConfigError(f"configuration file {file} does not exist")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    _require_keys(str(file), raw, {"metrics", "decision_table", "default_rule", "levers"}, {"metrics", "decision_table"})

    m = raw.get("metrics") or {}
    _require_keys(f"{file}: metrics", m, set(MetricSettings.__dataclass_fields__), set())
    settings = MetricSettings(**{k: (tuple(v) if k == "slices" else v) for k, v in m.items()})
    if not (isinstance(settings.return_window_days, int) and 1 <= settings.return_window_days <= 120):
        raise ConfigError(f"{file}: metrics.return_window_days must be a whole number of days in 1..120")

    def row(where: str, item: dict, need_metric: bool = True) -> DecisionRow:
        keys = {"zone", "metric", "rule", "params", "action"}
        _require_keys(where, item, keys, {"rule"} | ({"zone", "metric", "action"} if need_metric else set()))
        if item["rule"] not in RULES:
            raise ConfigError(f"{where}: unknown rule {item['rule']!r}; known rules: {sorted(RULES)}")
        return DecisionRow(
            zone=str(item.get("zone", "")),
            metric=str(item.get("metric", "")),
            rule=item["rule"],
            action=str(item.get("action", "")),
            params=dict(item.get("params") or {}),
        )

    table = tuple(row(f"{file}: decision_table[{i}]", it) for i, it in enumerate(raw.get("decision_table") or []))
    default = row(f"{file}: default_rule", raw.get("default_rule") or {"rule": "baseline_deviation"}, need_metric=False)
    levers = {str(k): dict(v) for k, v in (raw.get("levers") or {}).items()}
    return Config(file, settings, table, default, levers)
