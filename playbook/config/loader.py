"""Read and check the editable YAML configuration (metric windows, decision table, levers, experiments).

Whose data they are belongs to the data: a folder source may hold a ``shop.yaml`` beside its tables
(``name``, ``currency``, ``timezone``), and its values replace the configuration's for that source
(``for_source``), so that one configuration serves several shops and a shop's export carries its own
currency and clock wherever it is rendered.
"""
from __future__ import annotations

import dataclasses
import os
import zoneinfo
from pathlib import Path
from typing import Any

import yaml

from playbook.core.paths import DEFAULT_CONFIG, resolve
from playbook.core.settings import (
    DEFAULT_EXPERIMENTS,
    SLICE_COLUMNS,
    Config,
    ConfigError,
    DecisionRow,
    ExperimentSettings,
    Guardrail,
    MetricSettings,
)
from playbook.core.vocabulary import Design, Direction
from playbook.data.engines.spark import is_spark, spark_conf
from playbook.data.facts import Maturity
from playbook.data.url_secrets import is_url
from playbook.metrics.dictionary import computable_in, definitions, metric_named
from playbook.metrics.forms import ReturnsWithinWindow
from playbook.metrics.rules import PARAM_KINDS, RULE_PARAMS, RULES


def _require_keys(where: str, data: dict, allowed: set[str], required: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(data)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {sorted(missing)}")


def _mapping(where: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of key: value, got {type(value).__name__} {value!r}")
    return value


def _metric_settings(where: str, m: dict) -> MetricSettings:
    _require_keys(where, m, set(MetricSettings.__dataclass_fields__), set())
    values: dict[str, Any] = {}
    for key, value in m.items():
        if key == "slices":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.slices: expected a list of column names such as [category, channel]")
            unknown = [v for v in value if v not in SLICE_COLUMNS]
            if unknown:
                raise ConfigError(f"{where}.slices: unknown slice column(s) {unknown}; "
                                  f"known slice columns: {list(SLICE_COLUMNS)}")
            values[key] = tuple(value)
        elif key == "default_contact_cost":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}.default_contact_cost: expected a number >= 0, got {value!r}")
            values[key] = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{key}: expected a whole number >= 1, got {value!r}")
            values[key] = value
    settings = MetricSettings(**values)
    if settings.return_window_days > 120:
        raise ConfigError(f"{where}.return_window_days: must be a whole number of days in 1..120")
    return settings


def _check_params(where: str, rule: str, params: dict, settings: MetricSettings, metrics: dict,
                  metric: str | None) -> None:
    """The parameters of a decision row against its rule's schema (``playbook.metrics.rules.RULE_PARAMS``)."""
    required, optional = RULE_PARAMS[rule]
    schema = ", ".join([f"{n} (required)" for n in required] + list(optional)) or "none"
    problems = []
    unknown = sorted(set(params) - set(required) - set(optional), key=str)
    if unknown:
        problems.append(f"unknown parameter(s) {unknown} for rule {rule!r}")
    missing = [n for n in required if n not in params]
    if missing:
        problems.append(f"missing required parameter(s) {missing} of rule {rule!r}")
    if problems:
        raise ConfigError(f"{where}.params: {'; '.join(problems)}; the parameters of {rule!r}: {schema}")
    for name, value in params.items():
        kind = PARAM_KINDS.get(name, "number")
        at = f"{where}.params.{name}"
        if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{at}: expected a number, got {value!r}")
        if kind == "whole" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{at}: expected a whole number >= 1, got {value!r}")
        if kind == "metric" and value not in metrics:
            raise ConfigError(f"{at}: unknown metric {value!r}; known metrics: {sorted(metrics)}")
        if kind == "slice":
            if value not in settings.slices:
                raise ConfigError(f"{at}: {value!r} is not one of the slices of metrics.slices {list(settings.slices)}")
            if metric and value not in metrics[metric].slices:
                raise ConfigError(f"{at}: metric {metric!r} is not cut by {value!r} "
                                  f"(its slices: {list(metrics[metric].slices) or 'none'})")


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load the YAML configuration (default ``playbook/config/playbook.yaml``).

    Every mistake is a ``ConfigError`` naming the file and the key: a typo in a threshold file
    must stop the run, not silently fall back to a default rule.
    """
    file = resolve(path, DEFAULT_CONFIG)
    if not file.is_file():
        raise ConfigError(f"configuration file {file} does not exist")
    try:
        raw = _mapping(str(file), yaml.safe_load(file.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    _require_keys(str(file), raw, {"metrics", "decision_table", "default_rule", "levers", "experiments", "timezone",
                                        "currency"},
                  {"metrics", "decision_table"})
    settings = _metric_settings(f"{file}: metrics", _mapping(f"{file}: metrics", raw.get("metrics")))
    known_metrics = definitions(settings)

    def row(where: str, item: Any, need_metric: bool = True, default: DecisionRow | None = None) -> DecisionRow:
        item = _mapping(where, item)
        keys = {"zone", "metric", "rule", "params", "action", "owner"}
        required = {"zone", "metric", "action"} if need_metric else {"rule"}
        _require_keys(where, item, keys, required)
        if "rule" not in item:  # a row naming only its action and owner: read with the default rule
            if "params" in item:
                raise ConfigError(f"{where}: 'params' without 'rule'; name the rule the thresholds are for")
            item = {**item, "rule": default.rule, "params": default.params}
        if not isinstance(item["rule"], str) or item["rule"] not in RULES:
            raise ConfigError(f"{where}: unknown rule {item['rule']!r}; known rules: {sorted(RULES)}")
        if need_metric and (not isinstance(item["metric"], str) or item["metric"] not in known_metrics):
            raise ConfigError(f"{where}: unknown metric {item['metric']!r}; known metrics: {sorted(known_metrics)}")
        params = dict(_mapping(f"{where}.params", item.get("params")))
        _check_params(where, item["rule"], params, settings, known_metrics, item["metric"] if need_metric else None)
        return DecisionRow(
            zone=str(item.get("zone", "")),
            metric=str(item.get("metric", "")),
            rule=item["rule"],
            action=str(item.get("action", "")),
            params=params,
            owner=str(item.get("owner") or ""),
        )

    default = row(f"{file}: default_rule", raw.get("default_rule") or {"rule": "baseline_deviation"}, need_metric=False)
    table_raw = raw.get("decision_table") or []
    if not isinstance(table_raw, list):
        raise ConfigError(f"{file}: decision_table: expected a list of rows")
    table = tuple(row(f"{file}: decision_table[{i}]", it, default=default) for i, it in enumerate(table_raw))
    levers = {}
    for reason, entry in _mapping(f"{file}: levers", raw.get("levers")).items():
        entry = _mapping(f"{file}: levers.{reason}", entry)
        if "lever" not in entry:
            raise ConfigError(f"{file}: levers.{reason}: missing key 'lever'")
        levers[str(reason)] = {str(k): str(v) for k, v in entry.items()}
    experiments = _experiment_settings(f"{file}: experiments", raw.get("experiments"), settings)
    timezone = _timezone(f"{file}: timezone", raw.get("timezone", "UTC"))
    currency = _currency(f"{file}: currency", raw.get("currency", "EUR"))
    return Config(file, settings, table, default, levers, experiments, timezone, currency)


#: the file of a folder source that says whose data they are; its keys replace the configuration's
SHOP_FILE = "shop.yaml"
#: the keys of ``shop.yaml``: the shop's name (shown with its reports), its currency, its time zone
SHOP_KEYS = ("name", "currency", "timezone")
_SHOP_NAME_MAX = 100


def shop_file(source: str | os.PathLike | None) -> Path | None:
    """The ``shop.yaml`` of a folder source (or of a local Spark source's folder), None when it has none.

    A database says nothing here: its shop's settings are the configuration's.
    """
    if source is None or str(source) == "":
        return None
    text = str(source)
    if is_url(text):
        folder = spark_conf(text)[0] if is_spark(text) and text.lower().startswith("pyspark") else None
    else:
        folder = Path(text)
    path = folder / SHOP_FILE if folder is not None else None
    return path if path is not None and path.is_file() else None


def read_shop(path: str | os.PathLike) -> dict[str, str]:
    """The checked values of a ``shop.yaml``: some of ``name``, ``currency`` (ISO 4217), ``timezone`` (IANA).

    Every mistake is a ``ConfigError`` naming the file and the key.
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from None
    raw = _mapping(str(file), raw)
    _require_keys(str(file), raw, set(SHOP_KEYS), set())
    shop: dict[str, str] = {}
    if "name" in raw:
        name = raw["name"]
        if not isinstance(name, str) or not name.strip() or "\n" in name.strip() or len(name.strip()) > _SHOP_NAME_MAX:
            raise ConfigError(f"{file}: name: expected the shop's name on one line (1 to {_SHOP_NAME_MAX} "
                              f"characters), got {name!r}")
        shop["name"] = name.strip()
    if "currency" in raw:
        shop["currency"] = _currency(f"{file}: currency", raw["currency"])
    if "timezone" in raw:
        shop["timezone"] = _timezone(f"{file}: timezone", raw["timezone"])
    return shop


def for_source(config: Config, source: str | os.PathLike | None) -> Config:
    """``config`` for the data ``source``: the values of its ``shop.yaml`` (name, currency, time zone) win.

    Without a ``shop.yaml`` the configuration is returned as it is. A broken one stops the run
    (``ConfigError`` naming the file and the key), as a broken configuration does.
    """
    path = shop_file(source)
    if path is None:
        return config
    shop = read_shop(path)
    return dataclasses.replace(config, shop_name=shop.get("name", config.shop_name),
                               currency=shop.get("currency", config.currency),
                               timezone=shop.get("timezone", config.timezone), shop_file=path)


def shop_note(config: Config) -> str:
    """The shop's name, currency and clock in words, and where they come from (a run's log, ``playbook validate``)."""
    name = f"{config.shop_name}: " if config.shop_name else ""
    where = f" (from {config.shop_file})" if config.shop_file is not None else " (from the configuration)"
    return f"{name}amounts in {config.currency}, weeks on the {config.timezone} clock{where}"


def _currency(where: str, value: Any) -> str:
    """An ISO 4217 code (three capital letters: EUR, USD, GBP), shown beside every amount of the report."""
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isupper() or not value.isalpha():
        raise ConfigError(f"{where}: expected a three-letter ISO 4217 code such as EUR, USD or GBP, got {value!r}")
    return value


def _timezone(where: str, value: Any) -> str:
    """An IANA time zone name (``Europe/Paris``, ``UTC``), checked against the system's zone database."""
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {value!r}; expected an IANA name such as Europe/Paris or UTC") from None
    return str(value)


def _experiment_settings(where: str, value: Any, settings: MetricSettings) -> ExperimentSettings:
    if value is None:
        return DEFAULT_EXPERIMENTS
    e = _mapping(where, value)
    _require_keys(where, e, {"planned_split", "pre_weeks", "guardrails", "max_weeks"}, set())
    split = _mapping(f"{where}.planned_split", e.get("planned_split")) or DEFAULT_EXPERIMENTS.planned_split
    if set(split) != {"control", "treatment"} or not all(isinstance(v, (int, float)) and v > 0 for v in split.values()):
        raise ConfigError(f"{where}.planned_split: expected positive shares for control and treatment, got {split!r}")
    total = sum(split.values())
    split = {k: float(v) / total for k, v in split.items()}
    pre = e.get("pre_weeks", DEFAULT_EXPERIMENTS.pre_weeks)
    if isinstance(pre, bool) or not isinstance(pre, int) or pre < 2:
        raise ConfigError(f"{where}.pre_weeks: expected a whole number of weeks >= 2, got {pre!r}")
    max_weeks = e.get("max_weeks", DEFAULT_EXPERIMENTS.max_weeks)
    if isinstance(max_weeks, bool) or not isinstance(max_weeks, int) or max_weeks < 1:
        raise ConfigError(f"{where}.max_weeks: expected a whole number of weeks >= 1, got {max_weeks!r}")
    guardrails = dict(DEFAULT_EXPERIMENTS.guardrails)
    for design_name, rows in _mapping(f"{where}.guardrails", e.get("guardrails")).items():
        if design_name not in set(Design):
            raise ConfigError(f"{where}.guardrails: unknown design {design_name!r}; known: {', '.join(Design)}")
        design = Design(design_name)
        if not isinstance(rows, list):
            raise ConfigError(f"{where}.guardrails.{design}: expected a list of guardrails")
        parsed = []
        for i, row in enumerate(rows):
            at = f"{where}.guardrails.{design}[{i}]"
            row = _mapping(at, row)
            _require_keys(at, row, {"metric", "tolerance", "bad_direction", "description", "optional"},
                          {"metric", "tolerance"})
            metric = metric_named(str(row["metric"]), settings)
            if metric is None or not metric.computable_in(design):
                raise ConfigError(f"{at}: {row['metric']!r} is not computable for {design.words} designs; "
                                  f"computable: {sorted(computable_in(design, settings))}")
            if design == Design.RANDOMIZED and metric.maturity != Maturity.NONE \
                    and not isinstance(metric.per_arm, ReturnsWithinWindow):
                raise ConfigError(f"{at}: {metric.name} counts returns, and its per-arm form does not wait for them "
                                  "(units delivered days ago would count as kept); a return rate, read at its "
                                  "window, can be a guardrail")
            bad = row.get("bad_direction", str(metric.good_direction.opposite))
            if bad not in set(Direction):
                raise ConfigError(f"{at}.bad_direction: expected higher or lower, got {bad!r}")
            if bad == metric.good_direction:
                raise ConfigError(f"{at}.bad_direction: {bad!r} contradicts the metric dictionary, where "
                                  f"{metric.name} is better when {metric.good_direction}; harm is "
                                  f"{metric.good_direction.opposite} (or leave bad_direction out)")
            tol = row["tolerance"]
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0:
                raise ConfigError(f"{at}.tolerance: expected a number >= 0 in the metric's unit, got {tol!r}")
            optional = row.get("optional", False)
            if not isinstance(optional, bool):
                raise ConfigError(f"{at}.optional: expected true or false, got {optional!r}")
            parsed.append(Guardrail(metric.name, float(tol), Direction(bad), str(row.get("description", "")),
                                    optional))
        guardrails[design] = tuple(parsed)
    return ExperimentSettings(split, pre, guardrails, max_weeks)
