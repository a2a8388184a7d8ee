"""The brief's step-page tables speak as the index does (issue 21 item 7): metric titles, changes and
intervals in their unit, money in the shop's currency, methods and chance in words, changes tested as
their lever's description on their cohort. Expected texts are written out by hand from the inputs."""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re

import pandas as pd
import pytest
import section_examples as examples

from playbook.config.loader import load_config
from playbook.core.jsonmodel import from_json
from playbook.core.vocabulary import Decision, Design
from playbook.journal.track_record import TrackRecord
from playbook.metrics.display import Display, method_words, metric_title
from playbook.report import brief_tables
from playbook.report.pages import table_html
from playbook.stats.results import Estimate
from playbook.steps.experiments import Comparison, ComparisonSection, MetricComparison
from playbook.steps.review import verdict_for
from playbook.steps.verdict import WindowRead

CONFIG = dataclasses.replace(load_config(), currency="GBP")


def cells(table) -> list[dict[str, str]]:
    """A table's rows as {column label: the text a reader sees} (a Markup cell without its tags)."""
    return [{c.label: html.unescape(re.sub(r"<[^>]+>", "", str(cell))) for c, cell in zip(table.columns, row)}
            for row in table.rows]


def randomized() -> Comparison:
    """The size guide on dresses: return rate 14 d -5.068 points [-9.371, -0.7643] read by Kaplan-Meier
    (p 0.021), contact rate +1.714 points [-1.746, +5.174] against a +1 point tolerance (a rise is harm),
    net revenue per customer +0.026 [-3.618, +3.67] against a tolerance of 2 (a fall is harm)."""
    primary = MetricComparison("return_rate_14d", Estimate(-0.05068, -0.09371, -0.007643, "km", 979, p_value=0.02099),
                               "lower", "primary", expected_low=-0.07, expected_high=-0.03,
                               window=WindowRead(14, 14, True))
    contact = MetricComparison("contact_rate", Estimate(0.01714, -0.01746, 0.05174, "delta", 983, p_value=0.3316),
                               "lower", "guardrail", tolerance=0.01)
    revenue = MetricComparison("net_revenue_per_customer", Estimate(0.02611, -3.618, 3.67, "welch", 3899,
                                                                    p_value=0.9888), "higher", "guardrail",
                               tolerance=2.0, follow_up_on=dt.date(2027, 2, 6))
    return Comparison({"experiment_id": "EXP-2026-W43-DRESSES-SIZE-GUIDE", "lever": "size_guide",
                       "cohort": "category=dresses"}, Design.RANDOMIZED, primary, [contact, revenue])


def pre_post() -> Comparison:
    """Promotions on outerwear: discount depth -3.786 points [-5.542, -2.029] by difference in differences
    over cohort-weeks, p 0.001092."""
    primary = MetricComparison("discount_depth", Estimate(-3.786, -5.542, -2.029, "did-cohort-week-t", 10,
                                                          p_value=0.001092),
                               "lower", "primary", expected_low=-5.0, expected_high=-2.0)
    return Comparison({"experiment_id": "EXP-PROMO", "lever": "tighten_promo_eligibility",
                       "cohort": "category=outerwear"}, Design.PRE_POST, primary, [],
                      views={"pre_period": "pre-period 2026-W24 to 2026-W31"})


def test_a_randomized_comparison_reads_in_points_with_its_interval_chance_and_method_in_words():
    primary, contact, revenue = cells(brief_tables.comparison_table([randomized()], CONFIG))
    size_guide = brief_tables.change_tested("size_guide", "category=dresses", CONFIG)
    assert size_guide.endswith(" on dresses") and "size_guide" not in size_guide
    assert primary == {
        "change tested": size_guide, "metric": "Return rate within 14 days of delivery", "read as": "main metric",
        # -0.05068 is -5.068 points; the interval -9.371 to -0.7643 points rounds to one decimal
        "effect": "-5.1 points", "95 % interval": "-9.4 to -0.8 points",
        "chance": "probably not chance",  # 0.01 <= p 0.021 < 0.05
        "expected": "-7.0 to -3.0 points", "result": "read at 14 days",
        "method": "return curves (Kaplan-Meier), per customer", "note": ""}
    # a rise of the contact rate is harm: its +0.01 tolerance reads as +1.0 points
    assert (contact["metric"], contact["read as"], contact["effect"], contact["95 % interval"]) == (
        "Contact rate", "guardrail", "+1.7 points", "-1.7 to +5.2 points")
    assert (contact["expected"], contact["chance"], contact["method"]) == (
        "harm beyond +1.0 points", "likely chance", "difference of per-customer totals")
    assert contact["result"] == "not shown safe yet"
    # money in the shop's currency, cents below 100; a fall of revenue is harm: -GBP 2.00
    assert (revenue["effect"], revenue["95 % interval"], revenue["expected"]) == (
        "+GBP 0.03", "-GBP 3.62 to +GBP 3.67", "harm beyond -GBP 2.00")
    assert revenue["result"] == "not shown safe yet (read again on 2027-02-06)"


def test_a_pre_post_comparison_names_its_method_in_words_and_its_chance_never_its_p_value():
    (row,) = cells(brief_tables.comparison_table([pre_post()], CONFIG))
    assert row["method"] == "difference in differences, cohort-weeks"
    assert row["chance"] == "unlikely to be chance"  # 0.001 <= p 0.001092 < 0.01
    assert (row["effect"], row["95 % interval"], row["expected"]) == ("-3.8 points", "-5.5 to -2.0 points",
                                                                        "-5.0 to -2.0 points")
    assert row["note"] == "pre-period 2026-W24 to 2026-W31" and row["result"] == "read"


def test_a_main_metric_not_readable_yet_says_when_and_a_shorter_view_says_it_is_not_the_registered_one():
    c = randomized()
    c.primary = dataclasses.replace(c.primary, estimate=Estimate.unavailable("km", 0, "fewer than 30 customers"),
                                    window=WindowRead(14, None, False, dt.date(2026, 11, 25)))
    c.views["shorter_window"] = {"metric": "return_rate_3d", "note": "shorter",
                                 "estimate": Estimate(-0.06268, -0.08639, -0.03898, "return-within-k-delta-cluster",
                                                      1568, p_value=2.181e-07)}
    rows = cells(brief_tables.comparison_table([c], CONFIG))
    assert (rows[0]["effect"], rows[0]["95 % interval"], rows[0]["chance"]) == ("not available",) * 3
    assert rows[0]["result"] == "not readable at 14 days yet (readable on 2026-11-25)"
    assert rows[0]["note"] == "fewer than 30 customers"
    assert rows[-1]["metric"] == "Return rate within 3 days of delivery"
    assert rows[-1]["read as"] == "shorter-window view, not the registered metric"
    assert (rows[-1]["effect"], rows[-1]["chance"]) == ("-6.3 points", "very unlikely to be chance")
    assert rows[-1]["method"] == "share returned within the window, per customer"


def test_the_verdicts_read_as_the_index_money_in_the_shops_currency_and_guardrails_by_their_titles():
    section = from_json(ComparisonSection, examples.comparison(), "comparisons[0]")
    verdict = dataclasses.replace(verdict_for(section), money=(1331.8, 500.0, 2100.0))
    (row,) = cells(brief_tables.verdict_table([verdict], [section], CONFIG))
    assert row["decision"].startswith("keep: roll it out")
    assert row["money"] == "GBP 1,332 per week saved on the cohort"
    # -0.03 [-0.05, -0.01] of a percent metric: -3.0 points (-5.0 to -1.0), expected -4.0 to -1.0 points
    assert "Return rate within 14 days of delivery: -3.0 points (-5.0 to -1.0)" in row["effect (95 % interval)"]
    assert "Contact rate: safe" in row["guardrails"] and "contact_rate" not in row["guardrails"]
    assert row["change tested"].startswith(brief_tables.change_tested("fit_size_message", "category=knitwear", CONFIG))


def test_the_track_record_reads_each_change_its_decision_effect_and_money_with_the_currency():
    verdicts = pd.DataFrame([{"week": "2026-W47", "experiment_id": "EXP-PROMO", "lever": "tighten_promo_eligibility",
                              "cohort": "category=outerwear", "primary_metric": "discount_depth", "expected_low": -5.0,
                              "expected_high": -2.0, "estimate": -3.786, "ci_low": -5.542, "ci_high": -2.029,
                              "decision": Decision.KEEP, "money_per_week": 1331.8}])
    record = TrackRecord("2026-W47", 8, "2026-W40", verdicts, {"keep": 1, "adjust": 0, "stop": 0}, 1331.8, (500.0, 2100.0))
    (row,) = cells(brief_tables.track_record_table(record, CONFIG))
    assert row == {"week": "2026-W47",
                   "change tested": brief_tables.change_tested("tighten_promo_eligibility", "category=outerwear", CONFIG),
                   "decision": "keep", "effect (95 % interval)": "Discount depth: -3.8 points (-5.5 to -2.0)",
                   "expected": "-5.0 to -2.0 points", "money per week": "GBP 1,332"}
    assert record.summary("GBP").endswith("The kept levers save about GBP 1,332 a week (GBP 500 to GBP 2,100) "
                                          "in return costs and discounts.")


def test_the_reason_mix_names_each_reason_in_words_with_its_shares_in_percent():
    mix = pd.DataFrame([{"reason": "size_too_small", "window %": 58.72, "baseline %": 34.11, "window rate %": 9.72,
                         "baseline rate %": 4.01}])
    (row,) = cells(brief_tables.reason_mix_table(mix))
    assert list(row.values()) == ["size too small", "58.7 %", "34.1 %", "9.7 %", "4.0 %"]


def test_a_brief_table_is_drawn_as_the_index_draws_it_with_every_cell_labelled_and_escaped():
    c = randomized()
    c.experiment["cohort"] = "category=<b>x</b>"
    html = table_html(brief_tables.comparison_table([c], CONFIG))
    assert 'class="data cards"' in html and 'data-label="95 % interval"' in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


@pytest.mark.parametrize("code, words", [
    ("km", "return curves (Kaplan-Meier), per customer"),
    ("did-cohort-week-t", "difference in differences, cohort-weeks"),
    ("did-twfe-cluster", "difference in differences, slice-weeks"),
    ("cuped-delta", "difference per customer, adjusted for their earlier orders"),
    ("a-new-code", "see the full page"),
])
def test_a_method_code_reads_in_words_and_an_unknown_one_never_leaks(code, words):
    assert method_words(code) == words


def test_a_metric_reads_by_its_title_without_the_configuration_and_an_unknown_one_by_its_id():
    assert metric_title("return_rate_7d") == "Return rate within 7 days of delivery"
    assert metric_title("contact_rate") == "Contact rate" and metric_title("nope") == "nope"


def test_a_span_writes_its_unit_once_and_money_with_its_currency():
    d = Display("EUR")
    assert d.span("contact_rate", -0.031, -0.004) == "-3.1 to -0.4 points"
    assert d.span("contact_cost", -120.0, 805.0) == "-EUR 120 to +EUR 805"
    assert d.span("contact_rate", None, 0.1) == "not available"
