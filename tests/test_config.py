"""The YAML configuration: the default loads and is consistent; broken files fail with a ConfigError
that names the file and the offending key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from playbook.config.loader import for_source, load_config, shop_file, shop_note
from playbook.core.paths import DEFAULT_CONFIG
from playbook.core.settings import ConfigError, MetricSettings
from playbook.metrics.dictionary import definitions
from playbook.metrics.rules import RULES


@pytest.fixture(scope="module")
def default_text() -> str:
    return DEFAULT_CONFIG.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str, name: str = "my_config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def edited(default_text: str, old: str, new: str) -> str:
    assert old in default_text, f"the default configuration no longer contains {old!r}"
    return default_text.replace(old, new, 1)


# --- the default ------------------------------------------------------------------------------

def test_the_default_configuration_loads_with_its_documented_settings():
    c = load_config()
    assert c.path == DEFAULT_CONFIG
    assert c.metrics == MetricSettings(14, 7, 8, 4.5, ("category", "channel", "region", "customer_type"))
    assert c.default_rule.rule == "baseline_deviation"
    assert c.default_rule.params == {"amber_z": 2.0, "red_z": 3.0}


def test_every_decision_table_metric_of_the_default_exists_in_the_metric_dictionary():
    c = load_config()
    names = set(definitions(c.metrics))
    assert c.decision_table, "the default decision table is empty"
    assert [r.metric for r in c.decision_table if r.metric not in names] == []


def test_every_decision_table_rule_of_the_default_is_a_known_rule():
    c = load_config()
    assert {r.rule for r in c.decision_table} <= set(RULES)


def test_the_flat_while_other_rises_row_points_to_an_existing_metric():
    c = load_config()
    names = set(definitions(c.metrics))
    others = [r.params["other_metric"] for r in c.decision_table if r.rule == "flat_while_other_rises"]
    assert others and set(others) <= names


def test_the_default_configuration_parses_to_the_same_values_as_plain_yaml(default_text):
    raw = yaml.safe_load(default_text)
    c = load_config()
    default = raw["default_rule"]
    assert [(r.zone, r.metric, r.rule, r.action, r.params, r.owner) for r in c.decision_table] == [
        (r["zone"], r["metric"], r.get("rule", default["rule"]), r["action"], r.get("params", default["params"]), r["owner"])
        for r in raw["decision_table"]
    ]
    assert c.levers == raw["levers"]


def test_row_for_finds_the_row_of_a_metric_and_none_for_a_metric_without_row():
    c = load_config()
    assert c.row_for("closure_rate").params == {"red_below": 0.80, "amber_below": 0.90}
    assert c.row_for("conversion_rate") is None


def test_lever_for_an_unknown_reason_falls_back_to_the_other_lever():
    c = load_config()
    assert c.lever_for("size_too_small")["lever"] == "fit_size_message"
    assert c.lever_for("no_such_reason")["lever"] == "reason_capture"


def test_a_relative_path_is_resolved_against_the_repository_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("playbook/config/playbook.yaml").path == DEFAULT_CONFIG


def test_a_metrics_section_with_only_some_keys_keeps_the_other_defaults(tmp_path):
    c = load_config(write(tmp_path, "metrics: {return_window_days: 7}\ndecision_table: []\n"))
    assert c.metrics == MetricSettings(return_window_days=7)
    assert c.default_rule.rule == "baseline_deviation" and c.levers == {}


# --- broken files ---------------------------------------------------------------------------

def test_a_missing_file_is_a_config_error_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="nowhere.yaml") as e:
        load_config(missing)
    assert "does not exist" in str(e.value)


def test_invalid_yaml_is_a_config_error_naming_the_file(tmp_path):
    p = write(tmp_path, "metrics: {return_window_days: 14\ndecision_table: [\n")
    with pytest.raises(ConfigError, match="my_config.yaml") as e:
        load_config(p)
    assert "not valid YAML" in str(e.value)


def test_an_unknown_top_level_key_is_a_config_error_naming_file_and_key(tmp_path, default_text):
    p = write(tmp_path, default_text + "\nthresholds: {x: 1}\n")
    with pytest.raises(ConfigError, match="my_config.yaml") as e:
        load_config(p)
    assert "'thresholds'" in str(e.value)


def test_an_unknown_metrics_key_is_a_config_error_naming_file_and_key(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "  baseline_weeks: 8", "  baseline_weeks: 8\n  baseline_wekes: 6"))
    with pytest.raises(ConfigError, match="my_config.yaml: metrics") as e:
        load_config(p)
    assert "'baseline_wekes'" in str(e.value)


def test_an_unknown_key_in_a_decision_row_is_a_config_error_naming_the_row_and_key(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "    action: tighten eligibility",
                               "    action: tighten eligibility\n    ownr: ana"))
    with pytest.raises(ConfigError, match=r"my_config.yaml: decision_table\[2\]") as e:
        load_config(p)
    assert "'ownr'" in str(e.value)


def test_an_unknown_rule_is_a_config_error_naming_the_row_and_the_rule(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "rule: week_over_week_rise", "rule: week_over_week_jump"))
    with pytest.raises(ConfigError, match=r"my_config.yaml: decision_table\[2\]") as e:
        load_config(p)
    assert "unknown rule 'week_over_week_jump'" in str(e.value)


def test_an_unknown_default_rule_is_a_config_error_naming_default_rule(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "  rule: baseline_deviation", "  rule: zscore"))
    with pytest.raises(ConfigError, match="my_config.yaml: default_rule") as e:
        load_config(p)
    assert "'zscore'" in str(e.value)


def test_a_decision_row_without_its_action_is_a_config_error_naming_the_key(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "    action: review promise calculation\n", ""))
    with pytest.raises(ConfigError, match=r"decision_table\[5\]: missing key\(s\) \['action'\]"):
        load_config(p)


def test_a_file_without_decision_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"my_config.yaml: missing key\(s\) \['decision_table'\]"):
        load_config(write(tmp_path, "metrics: {}\n"))


@pytest.mark.parametrize("k", [0, 121, 7.5, "14"])
def test_a_return_window_outside_1_to_120_whole_days_is_a_config_error(tmp_path, default_text, k):
    p = write(tmp_path, edited(default_text, "return_window_days: 14", f"return_window_days: {k!r}"))
    with pytest.raises(ConfigError, match="my_config.yaml: metrics.return_window_days"):
        load_config(p)


# --- bugs found by these tests, now fixed -------------------------------------------------

def test_a_yaml_document_that_is_not_a_mapping_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="my_config.yaml"):
        load_config(write(tmp_path, "42\n"))


def test_decision_params_that_are_not_a_mapping_are_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "params: {weeks: 2}", "params: [2]"))
    with pytest.raises(ConfigError, match=r"decision_table\[4\]"):
        load_config(p)


def test_a_lever_entry_that_is_not_a_mapping_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(
        default_text, 'other: {lever: reason_capture, description: "better return-reason capture to find the cause"}',
        "other: reason_capture"))
    with pytest.raises(ConfigError, match="my_config.yaml: levers"):
        load_config(p)


def test_slices_given_as_a_single_string_are_refused_or_kept_whole(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "slices: [category, channel, region, customer_type]", "slices: category"))
    try:
        c = load_config(p)
    except ConfigError:
        return
    assert c.metrics.slices == ("category",)


def test_a_non_numeric_baseline_weeks_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "baseline_weeks: 8", "baseline_weeks: eight"))
    with pytest.raises(ConfigError, match="baseline_weeks"):
        load_config(p)


def test_a_decision_row_naming_an_unknown_metric_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "metric: discount_depth", "metric: discount_dept"))
    with pytest.raises(ConfigError, match="discount_dept"):
        load_config(p)


# --- the parameters of each rule, the slices ----------------------------------------------------

def test_every_rule_has_a_parameter_schema():
    from playbook.metrics.rules import RULE_PARAMS

    assert set(RULE_PARAMS) == set(RULES)


def test_a_misspelt_required_parameter_is_a_config_error_naming_the_row_and_the_parameter(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "{red_below: 0.80, amber_below: 0.90}", "{red_belw: 0.80, amber_below: 0.90}"))
    with pytest.raises(ConfigError, match=r"my_config.yaml: decision_table\[3\]") as e:
        load_config(p)
    assert "missing required parameter(s) ['red_below']" in str(e.value) and "'red_belw'" in str(e.value)


def test_an_unknown_parameter_is_a_config_error_naming_the_row_and_the_parameter(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "{red_below: 0.80, amber_below: 0.90}",
                               "{red_below: 0.80, amber_below: 0.90, red_zz: 1}"))
    with pytest.raises(ConfigError, match=r"my_config.yaml: decision_table\[3\]") as e:
        load_config(p)
    assert "unknown parameter(s) ['red_zz']" in str(e.value)


def test_an_unknown_parameter_of_the_default_rule_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "{amber_z: 2.0, red_z: 3.0}", "{amber_z: 2.0, red_zed: 3.0}"))
    with pytest.raises(ConfigError, match=r"my_config.yaml: default_rule.params: unknown parameter\(s\) \['red_zed'\]"):
        load_config(p)


def test_a_threshold_that_is_not_a_number_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "{red_below: 0.80, amber_below: 0.90}", "{red_below: high, amber_below: 0.90}"))
    with pytest.raises(ConfigError, match=r"decision_table\[3\].params.red_below: expected a number"):
        load_config(p)


def test_an_other_metric_that_does_not_exist_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "other_metric: conversion_rate", "other_metric: conversion"))
    with pytest.raises(ConfigError, match=r"decision_table\[0\].params.other_metric: unknown metric 'conversion'"):
        load_config(p)


def test_a_spike_slice_the_metric_is_not_cut_by_is_a_config_error(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "slices: [category, channel, region, customer_type]",
                               "slices: [channel, region, customer_type]"))
    with pytest.raises(ConfigError, match=r"decision_table\[1\].params.slice: 'category'"):
        load_config(p)


def test_an_unknown_slice_column_is_a_config_error_naming_it(tmp_path, default_text):
    p = write(tmp_path, edited(default_text, "slices: [category, channel, region, customer_type]",
                               "slices: [category, colour]"))
    with pytest.raises(ConfigError, match=r"my_config.yaml: metrics.slices: unknown slice column\(s\) \['colour'\]"):
        load_config(p)


# --- experiments: split, pre-period and guardrails live in the YAML --------------------------------

def _with_experiments(default_text: str, block: dict) -> str:
    data = yaml.safe_load(default_text)
    data["experiments"] = block
    return yaml.safe_dump(data)


def test_the_default_config_declares_the_planned_split_and_the_guardrails():
    config = load_config()
    assert config.experiments.planned_split == {"control": 0.5, "treatment": 0.5}
    assert {g.metric for g in config.experiments.guardrails["randomized"]} == {"contact_rate", "net_revenue_per_customer"}


def test_a_planned_90_10_split_is_normalised_and_kept(tmp_path, default_text):
    text = _with_experiments(default_text, {"planned_split": {"control": 9, "treatment": 1}})
    assert load_config(write(tmp_path, text)).experiments.planned_split == {"control": 0.9, "treatment": 0.1}


def test_a_guardrail_that_cannot_be_computed_per_arm_is_a_config_error(tmp_path, default_text):
    text = _with_experiments(default_text, {"guardrails": {"randomized": [
        {"metric": "wismo_share", "tolerance": 1, "bad_direction": "higher"}]}})
    with pytest.raises(ConfigError, match=r"guardrails.randomized\[0\]: 'wismo_share' is not computable for randomized "
                                          r"designs; computable: \[.*'discount_depth'"):
        load_config(write(tmp_path, text))


def test_a_negative_guardrail_tolerance_is_a_config_error(tmp_path, default_text):
    text = _with_experiments(default_text, {"guardrails": {"pre_post": [
        {"metric": "contact_rate", "tolerance": -1, "bad_direction": "higher"}]}})
    with pytest.raises(ConfigError, match="tolerance"):
        load_config(write(tmp_path, text))


def test_a_guardrail_needing_sessions_is_optional_in_the_default_configuration():
    optional = {g.metric: g.optional for g in load_config().experiments.guardrails["pre_post"]}
    assert optional == {"contact_rate": False, "conversion_rate": True}


def test_the_optional_flag_of_a_guardrail_must_be_true_or_false(tmp_path):
    base = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    base["experiments"]["guardrails"]["pre_post"][0]["optional"] = "yes"
    with pytest.raises(ConfigError, match=r"guardrails.pre_post\[0\].optional: expected true or false"):
        load_config(write(tmp_path, yaml.safe_dump(base)))


def test_the_currency_of_the_default_is_euro_and_a_shop_can_set_its_own(default_text, tmp_path):
    assert load_config().currency == "EUR"
    assert load_config(write(tmp_path, edited(default_text, "currency: EUR", "currency: GBP"))).currency == "GBP"


@pytest.mark.parametrize("bad", ["euro", "€", "US", "'123'"])
def test_a_currency_that_is_not_an_iso_code_is_refused_with_the_key_named(default_text, tmp_path, bad):
    with pytest.raises(ConfigError, match="currency: expected a three-letter ISO 4217 code"):
        load_config(write(tmp_path, edited(default_text, "currency: EUR", f"currency: {bad}")))


def test_every_metric_the_baseline_can_turn_red_has_an_action_and_an_owner_in_the_default():
    """Issue 10: a red without a row reads "no rule: investigate"; the default table leaves no
    metric with a red line of its own (a bad-side rule) without someone to act."""
    c = load_config()
    without = {"conversion_rate", "revenue_per_visitor", "reason_mix"}  # read beside others, no action of their own
    for name in set(definitions(c.metrics)) - without:
        if not definitions(c.metrics)[name].weekly_reported:
            continue
        row = c.row_for(name)
        assert row is not None and row.action and row.owner, name


def test_an_owner_is_read_from_the_row_and_empty_when_not_given(default_text, tmp_path):
    text = edited(default_text, "    owner: marketing lead\n", "")
    rows = {r.metric: r.owner for r in load_config(write(tmp_path, text)).decision_table}
    assert rows["discount_depth"] == "" and rows["closure_rate"] == "head of e-commerce"


def test_a_row_without_a_rule_reads_its_metric_with_the_default_rule(default_text):
    row = load_config().row_for("contact_rate")
    default = yaml.safe_load(default_text)["default_rule"]
    assert (row.rule, row.params, row.owner) == (default["rule"], default["params"], "customer service lead")


def test_thresholds_without_a_rule_are_refused_as_ambiguous(default_text, tmp_path):
    text = edited(default_text, "    metric: wismo_share\n", "    metric: wismo_share\n    params: {red_z: 2.5}\n")
    with pytest.raises(ConfigError, match=r"decision_table\[9\]: 'params' without 'rule'"):
        load_config(write(tmp_path, text))


# --- the data source's shop.yaml: its name, currency and time zone win ---------------------------

def test_a_sources_shop_file_replaces_the_configurations_currency_and_time_zone_and_names_the_shop(tmp_path):
    (tmp_path / "shop.yaml").write_text("name: Online Retail (UCI)\ncurrency: GBP\ntimezone: Europe/London\n")
    config = for_source(load_config(), tmp_path)
    assert (config.shop_name, config.currency, config.timezone) == ("Online Retail (UCI)", "GBP", "Europe/London")
    assert config.shop_file == tmp_path / "shop.yaml"
    assert shop_note(config) == (f"Online Retail (UCI): amounts in GBP, weeks on the Europe/London clock "
                                 f"(from {tmp_path / 'shop.yaml'})")
    # the rest of the configuration is the configuration's
    assert config.decision_table == load_config().decision_table


def test_a_shop_file_may_give_some_keys_only_and_a_source_without_one_keeps_the_configuration(tmp_path):
    (tmp_path / "with").mkdir()
    (tmp_path / "with" / "shop.yaml").write_text("currency: USD\n")
    config = for_source(load_config(), tmp_path / "with")
    assert (config.shop_name, config.currency, config.timezone) == ("", "USD", "UTC")
    assert for_source(load_config(), tmp_path) == load_config()  # no shop.yaml
    assert for_source(load_config(), "postgresql://ana@db/shop") == load_config()  # a database names none
    assert shop_file(f"pyspark://{tmp_path / 'with'}?spark.master=local[2]") == tmp_path / "with" / "shop.yaml"


@pytest.mark.parametrize("text, key, message", [
    ("currency: pounds\n", "currency", "expected a three-letter ISO 4217 code"),
    ("currency: gbp\n", "currency", "expected a three-letter ISO 4217 code"),
    ("timezone: London\n", "timezone", "unknown time zone 'London'"),
    ("name: ''\n", "name", "expected the shop's name on one line"),
    ("name: [a, b]\n", "name", "expected the shop's name on one line"),
])
def test_a_broken_shop_file_stops_with_the_file_and_the_key_named(tmp_path, text, key, message):
    (tmp_path / "shop.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        for_source(load_config(), tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'shop.yaml'}: {key}: ") and message in str(err.value)


def test_a_shop_file_with_an_unknown_key_or_not_a_mapping_is_refused(tmp_path):
    (tmp_path / "shop.yaml").write_text("currency: GBP\ncurrencies: [EUR]\n")
    with pytest.raises(ConfigError, match=r"shop.yaml: unknown key\(s\) \['currencies'\]; allowed: "
                                          r"\['currency', 'name', 'timezone'\]"):
        for_source(load_config(), tmp_path)
    (tmp_path / "shop.yaml").write_text("- GBP\n")
    with pytest.raises(ConfigError, match="shop.yaml: expected a mapping"):
        for_source(load_config(), tmp_path)
