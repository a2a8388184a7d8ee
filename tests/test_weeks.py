"""ISO weeks: parsing, boundaries, the latest complete week and shifts, checked against datetime."""
from __future__ import annotations

import datetime as dt

import pytest

from playbook.core.weeks import IsoWeek, completeness_note, latest_complete_week


def iso_weeks_in(year: int) -> int:
    """Independent count: 28 December always lies in the last ISO week of its year."""
    return dt.date(year, 12, 28).isocalendar()[1]


def test_parse_and_format_round_trip():
    w = IsoWeek.parse("2026-W47")
    assert (w.year, w.week) == (2026, 47)
    assert str(w) == "2026-W47"
    assert str(IsoWeek.parse("2026-W05")) == "2026-W05"


def test_parse_accepts_an_isoweek_and_surrounding_spaces():
    w = IsoWeek(2026, 47)
    assert IsoWeek.parse(w) is w
    assert IsoWeek.parse(" 2026-W47 ") == w


@pytest.mark.parametrize("text", ["2026-47", "2026-W7", "26-W47", "2026W47", "2026-W047", "", "W47-2026"])
def test_parse_refuses_text_not_of_the_form_yyyy_www_and_names_the_form(text):
    with pytest.raises(ValueError, match="YYYY-Www"):
        IsoWeek.parse(text)


def test_week_54_never_exists():
    with pytest.raises(ValueError, match="does not exist"):
        IsoWeek.parse("2026-W54")


def test_week_00_never_exists():
    with pytest.raises(ValueError, match="does not exist"):
        IsoWeek.parse("2026-W00")


@pytest.mark.parametrize("year", [2020, 2021, 2026, 2027])
def test_week_53_exists_only_in_years_that_have_53_iso_weeks(year):
    text = f"{year}-W53"
    if iso_weeks_in(year) == 53:
        assert IsoWeek.parse(text).monday.isocalendar()[:2] == (year, 53)
    else:
        with pytest.raises(ValueError, match="does not exist"):
            IsoWeek.parse(text)


def test_the_years_checked_include_one_with_and_one_without_week_53():
    # guard on the parametrisation above: 2020 and 2026 have 53 ISO weeks, 2021 and 2027 have 52
    assert [iso_weeks_in(y) for y in (2020, 2021, 2026, 2027)] == [53, 52, 53, 52]


def test_week_boundaries_are_monday_to_sunday_end_of_day():
    w = IsoWeek.parse("2026-W47")
    assert w.monday == dt.date(2026, 11, 16) and w.monday.isoweekday() == 1
    assert w.sunday == dt.date(2026, 11, 22) and w.sunday.isoweekday() == 7
    assert w.start == dt.datetime(2026, 11, 16, 0, 0, 0)
    assert w.end == dt.datetime(2026, 11, 22, 23, 59, 59, 999999)


def test_week_one_can_start_in_the_previous_calendar_year():
    # 1 January 2026 is a Thursday, so 2026-W01 starts on Monday 29 December 2025
    assert IsoWeek.parse("2026-W01").monday == dt.date(2025, 12, 29)


def test_of_a_day_uses_the_iso_year_not_the_calendar_year():
    assert IsoWeek.of(dt.date(2027, 1, 1)) == IsoWeek(2026, 53)  # a Friday of 2026-W53
    assert IsoWeek.of(dt.date(2025, 12, 30)) == IsoWeek(2026, 1)
    assert IsoWeek.of(dt.datetime(2026, 11, 22, 23, 59)) == IsoWeek(2026, 47)


def test_data_running_to_sunday_23_00_complete_that_week():
    assert latest_complete_week(dt.datetime(2026, 11, 22, 23, 0)) == IsoWeek(2026, 47)
    assert latest_complete_week(dt.datetime(2026, 11, 22, 23, 59, 59)) == IsoWeek(2026, 47)


@pytest.mark.parametrize("hour", [0, 12, 22])
def test_a_sunday_export_before_23_00_makes_the_previous_week_the_latest_complete_one(hour):
    assert latest_complete_week(dt.datetime(2026, 11, 22, hour, 30)) == IsoWeek(2026, 46)


def test_a_complete_through_date_completes_its_week_when_it_is_the_sunday():
    assert latest_complete_week(dt.date(2026, 11, 22)) == IsoWeek(2026, 47)
    assert latest_complete_week(dt.date(2026, 11, 21)) == IsoWeek(2026, 46)


def test_the_completeness_note_says_which_week_and_why():
    assert completeness_note(dt.datetime(2026, 11, 22, 12, 0)) == (
        "the data run to Sunday 2026-11-22 12:00, before Sunday 23:00 of that week: 2026-W46 is the latest complete week")
    assert completeness_note(dt.datetime(2026, 11, 22, 23, 41)) == (
        "the data run to Sunday 2026-11-22 23:41: 2026-W47 is the latest complete week")


@pytest.mark.parametrize("day", [16, 17, 18, 19, 20, 21])  # Monday .. Saturday of 2026-W47
def test_latest_complete_week_of_data_ending_before_sunday_is_the_week_before(day):
    assert latest_complete_week(dt.datetime(2026, 11, day, 23, 0)) == IsoWeek(2026, 46)


def test_latest_complete_week_crosses_the_year_boundary():
    # Monday 4 January 2027 is in 2027-W01, so the complete week is 2026-W53
    assert latest_complete_week(dt.date(2027, 1, 4)) == IsoWeek(2026, 53)


def test_shift_forward_across_a_53_week_year():
    assert IsoWeek(2026, 52).shift(1) == IsoWeek(2026, 53)
    assert IsoWeek(2026, 53).shift(1) == IsoWeek(2027, 1)


def test_shift_backward_across_a_year_boundary():
    assert IsoWeek(2027, 1).shift(-1) == IsoWeek(2026, 53)
    assert IsoWeek(2022, 1).shift(-1) == IsoWeek(2021, 52)  # 2021 has no W53
    assert IsoWeek(2026, 47).shift(-52) == IsoWeek.of(dt.date(2026, 11, 16) - dt.timedelta(weeks=52))


def test_shift_by_zero_is_the_same_week():
    assert IsoWeek(2026, 47).shift(0) == IsoWeek(2026, 47)


def test_weeks_order_chronologically_across_years():
    assert IsoWeek(2026, 53) < IsoWeek(2027, 1) < IsoWeek(2027, 2)


