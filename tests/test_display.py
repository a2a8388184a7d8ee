"""The report's numbers read with their names, units and currency (playbook/report/display.py)."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from playbook.core.formats import date_text, money_text
from playbook.metrics.display import NOT_AVAILABLE, Display, chance_words, change_text, value_text

EUR = Display("EUR")


def test_a_rate_reads_as_a_percentage_with_one_decimal():
    assert EUR.value("return_rate_14d", 0.1494) == "14.9 %"


def test_a_difference_of_rates_reads_in_points_with_its_interval():
    assert EUR.interval("return_rate_14d", -0.0645, -0.08786, -0.04114) == "-6.5 points (-8.8 to -4.1)"


def test_a_metric_already_in_points_is_not_multiplied_again():
    assert EUR.interval("discount_depth", -3.79, -5.54, -2.03) == "-3.8 points (-5.5 to -2.0)"


def test_money_carries_the_currency_and_its_period():
    assert EUR.money(5161.4, "over 4 weeks") == "EUR 5,161 over 4 weeks"
    assert Display("GBP").value("net_cac", 37.624) == "GBP 37.62"


def test_a_signed_money_change_puts_the_sign_before_the_currency():
    assert EUR.change("contact_cost", 804.61) == "+EUR 805"
    assert EUR.change("contact_cost", 1804.6) == "+EUR 1,805"
    assert EUR.change("contact_cost", 5.33) == "+EUR 5.33"
    assert EUR.interval("net_revenue_per_customer", -1.5, -3.6, 0.6) == "-EUR 1.50 (-EUR 3.60 to +EUR 0.60)"


def test_days_read_as_days():
    assert EUR.value("click_to_possession_days", 2.806) == "2.8 days"


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_a_missing_or_infinite_number_reads_as_not_available(missing):
    assert EUR.value("return_rate_14d", missing) == NOT_AVAILABLE
    assert EUR.interval("return_rate_14d", missing, -0.1, 0.1) == NOT_AVAILABLE
    assert chance_words(missing) == NOT_AVAILABLE


def test_the_metric_title_replaces_its_id_and_an_unknown_id_is_kept():
    assert EUR.title("return_rate_7d") == "Return rate within 7 days of delivery"
    assert EUR.title("wismo_share") == "WISMO share"
    assert EUR.title("made_up_metric") == "made_up_metric"


@pytest.mark.parametrize("q, words", [
    (1.37e-14, "very unlikely to be chance"),
    (0.0076, "unlikely to be chance"),
    (0.03, "probably not chance"),
    (0.12, "could well be chance"),
    (1.0, "likely chance"),
])
def test_a_q_value_reads_in_words_only(q, words):
    assert chance_words(q) == words


@pytest.mark.parametrize("value,fmt,text", [
    (0.1234, "percent", "12.3 %"), (10.0, "points", "10.0 points"), (2.26, "days", "2.3 days"),
    (1234.5, "currency", "1,234"), (644.6, "currency", "645"), (12.5, "currency", "12.50"), (0.012345, "number", "0.0123"),
    (None, "percent", NOT_AVAILABLE), (float("nan"), "currency", NOT_AVAILABLE), (math.inf, "days", NOT_AVAILABLE),
])
def test_a_value_reads_in_its_format(value, fmt, text):
    assert value_text(value, fmt) == text


@pytest.mark.parametrize("delta,fmt,text", [
    (0.025, "percent", "+2.5 points"), (-1.25, "points", "-1.2 points"), (0.5, "days", "+0.5 days"),
    (-1234.5, "currency", "-1,234"),
])
def test_a_change_is_signed_and_a_rate_changes_in_points(delta, fmt, text):
    assert change_text(delta, fmt) == text


def test_the_rules_sentences_carry_the_shops_currency():
    assert value_text(644.6, "currency", "EUR") == "EUR 645" and change_text(804.61, "currency", "EUR") == "+EUR 805"


def test_cents_show_only_below_100_and_never_beside_a_larger_amount():
    # issue 21: "EUR 1,449 vs baseline EUR 644.60" mixed two formats in one sentence
    assert money_text(644.6, "EUR") == "EUR 645" and money_text(88.731, "EUR") == "EUR 88.73"
    assert money_text(95.5, "EUR", beside=(120.0,)) == "EUR 96"
    assert money_text(3.8, "EUR", beside=(3.68, None, float("nan"))) == "EUR 3.80"


def test_the_currency_s_own_minor_units_are_used():
    assert money_text(12.5, "JPY") == "JPY 12" and money_text(12.5, "KWD") == "KWD 12.500"
    assert money_text(12.5, "gbp") == "gbp 12.50"


def test_a_negative_amount_that_rounds_to_zero_has_no_sign():
    assert money_text(-0.2, "JPY") == "JPY 0" and money_text(-0.2, "JPY", sign=True) == "JPY 0"


@pytest.mark.parametrize("day", [dt.date(2026, 11, 25), dt.datetime(2026, 11, 25, 13, 5), "2026-11-25",
                                 "2026-11-25T13:05:00"])
def test_a_day_reads_in_one_format_whatever_it_came_as(day):
    assert date_text(day) == "2026-11-25"


def test_a_metric_value_beside_its_baseline_shares_its_decimals():
    assert EUR.value("contact_cost", 644.6, (1449.2,)) == "EUR 645"
    assert EUR.interval("contact_cost", 80.5, 40.25, 120.75) == "+EUR 80 (+EUR 40 to +EUR 121)"
