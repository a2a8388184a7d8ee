"""A metric is one object: the dictionary, the config, the experiments and the docs all read it."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from playbook.config.loader import load_config
from playbook.core.paths import DEFAULT_CONFIG
from playbook.core.settings import DEFAULT_EXPERIMENTS, ConfigError, MetricSettings
from playbook.core.vocabulary import Design, Direction
from playbook.data.dataset import open_dataset
from playbook.metrics import dictionary
from playbook.metrics.dictionary import compute_metrics, definitions, dictionary_markdown, known_metrics, metric_named
from playbook.metrics.forms import ReturnsWithinWindow, WeeklyForm, WeeklyInputs
from playbook.metrics.metric import Metric

W45 = dt.date(2026, 11, 2)


def test_a_return_rate_with_its_own_window_is_the_same_metric_read_at_that_window():
    seven = metric_named("return_rate_7d", MetricSettings())
    assert seven is not None and seven.name == "return_rate_7d" and seven.return_window_days == 7
    assert seven.per_arm == ReturnsWithinWindow(7)
    assert seven.good_direction == Direction.LOWER
    assert metric_named("return_rate_soon", MetricSettings()) is None


def test_every_default_guardrail_is_computable_in_its_design_and_harm_is_the_dictionarys_bad_side():
    settings = MetricSettings()
    for design, guards in DEFAULT_EXPERIMENTS.guardrails.items():
        for g in guards:
            metric = metric_named(g.metric, settings)
            assert metric is not None and metric.computable_in(Design(design)), (design, g.metric)
            assert g.bad_direction == metric.good_direction.opposite


def test_an_experiment_only_metric_has_no_weekly_value_in_the_baseline(tiny_shop):
    results = compute_metrics(open_dataset(tiny_shop).as_of("2026-W47"), MetricSettings())
    assert "net_revenue_per_customer" in definitions(MetricSettings())
    assert "net_revenue_per_customer" not in set(results.frame.metric)
    assert "net_revenue_per_customer" not in results.unavailable


def test_a_new_metric_is_one_object_with_a_weekly_form(tiny_shop, monkeypatch):
    """Adding a metric to the dictionary is enough for the baseline to compute it."""
    def parts(i: WeeklyInputs, s: str | None) -> pd.DataFrame:
        return dictionary._by_week(i.lines, "order_week", s, numerator=i.lines.net.sum(),
                                   denominator=i.lines.order_id.nunique())

    aov = Metric("average_order_value", "Average order value", "net revenue", "orders", "order week", "order",
                 "currency", Direction.HIGHER, ("orders", "order_lines"), ("channel",), weekly=WeeklyForm(parts))
    original = dictionary.definitions
    monkeypatch.setattr(dictionary, "definitions", lambda settings: {**original(settings), aov.name: aov})
    results = compute_metrics(open_dataset(tiny_shop).as_of("2026-W47"), MetricSettings())
    row = results.series("average_order_value").set_index("week_start").loc[W45]
    # W45 orders: O1 (L1 100 - 10, L2 80) and O2 (L3 40 - 4): net 206 over 2 orders
    assert (row.numerator, row.denominator, row.value) == (pytest.approx(206.0), 2, pytest.approx(103.0))
    web = results.series("average_order_value", "channel", "web").set_index("week_start").loc[W45]
    assert web.value == pytest.approx(170.0)


def test_a_guardrail_whose_bad_direction_contradicts_the_dictionary_stops_the_config(tmp_path):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    broken = text.replace("{metric: contact_rate, tolerance: 0.01, bad_direction: higher",
                          "{metric: contact_rate, tolerance: 0.01, bad_direction: lower", 1)
    assert broken != text
    path = tmp_path / "playbook.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="bad_direction: 'lower' contradicts the metric dictionary"):
        load_config(path)


def test_a_guardrail_without_bad_direction_takes_the_dictionarys_bad_side(tmp_path):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    path = tmp_path / "playbook.yaml"
    path.write_text(text.replace("{metric: contact_rate, tolerance: 0.01, bad_direction: higher,",
                                 "{metric: contact_rate, tolerance: 0.01,"), encoding="utf-8")
    guards = load_config(path).experiments.guardrails[Design.RANDOMIZED]
    assert next(g for g in guards if g.metric == "contact_rate").bad_direction == Direction.HIGHER


def test_the_metric_page_says_where_each_metric_is_computed():
    page = dictionary_markdown(MetricSettings())
    row = next(line for line in page.splitlines() if line.startswith("| net_revenue_per_customer "))
    assert row.rstrip(" |").endswith("per arm")
    rate = next(line for line in page.splitlines() if line.startswith("| return_rate_14d "))
    assert rate.rstrip(" |").endswith("weekly, per arm, pre/post, money")


def test_the_contract_accepts_a_dictionary_metric_or_a_return_rate_window_and_names_the_rest():
    known = known_metrics(MetricSettings())
    assert known.accepts("discount_depth") and known.accepts("return_rate_7d")
    assert not known.accepts("damage_rte") and not known.accepts("return_rate_d")
    assert "return_rate_<k>d" in known.described and "discount_depth" in known.described


def test_the_weekly_run_opens_the_data_in_the_shops_time_zone_with_the_known_metrics(tmp_path, monkeypatch):
    from playbook.run import weekly

    config = tmp_path / "playbook.yaml"
    config.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace("timezone: UTC", "timezone: Europe/Paris"),
                      encoding="utf-8")
    seen = {}

    def opened(source, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop after the open")

    monkeypatch.setattr(weekly, "open_dataset", opened)
    with pytest.raises(RuntimeError, match="stop after the open"):
        weekly.run_week("2026-W47", out=tmp_path / "reports", config=config, journal=tmp_path / "journal")
    assert seen["timezone"] == "Europe/Paris" and seen["known_metrics"].accepts("return_rate_7d")


def test_a_return_metric_that_does_not_wait_for_returns_cannot_guard_an_ab_test(tmp_path):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    path = tmp_path / "playbook.yaml"
    path.write_text(text.replace("{metric: contact_rate, tolerance: 0.01, bad_direction: higher,",
                                 "{metric: return_cost_ratio, tolerance: 0.01, bad_direction: higher,", 1),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="return_cost_ratio counts returns, and its per-arm form does not wait"):
        load_config(path)
    path.write_text(text.replace("{metric: contact_rate, tolerance: 0.01, bad_direction: higher,",
                                 "{metric: return_rate_14d, tolerance: 0.01, bad_direction: higher,", 1),
                    encoding="utf-8")
    assert "return_rate_14d" in {g.metric for g in load_config(path).experiments.guardrails[Design.RANDOMIZED]}
