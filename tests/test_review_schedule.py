"""Which experiments are read this week: first looks, open ones read again, and skipped reviews listed.

The shop of tests/test_experiments.py, cut at the end of 2026-W47: EXP-OLD's review date (2026-11-08,
W45) passed; what the journal says about it decides whether it is read again, listed as overdue, or left.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import write_shop
from section_examples import overdue as overdue_json
from section_examples import review
from test_experiments import experiment_shop

from playbook.config.loader import load_config
from playbook.data.dataset import open_dataset
from playbook.journal.entry import JournalEntry
from playbook.journal.store import record_week
from playbook.report.pages import index_page
from playbook.steps.experiments import due_for_review, overdue, overdue_section, running

FIRST_LOOKS = ["EXP-D", "EXP-P", "EXP-S", "EXP-U"]  # review date in 2026-W47


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("sched") / "shop", experiment_shop())).as_of("2026-W47")


def journal_with(tmp_path, *verdicts: tuple[str, str]):
    """A journal holding one verdict on EXP-OLD per (week, decision)."""
    for week, decision in verdicts:
        record_week(tmp_path, week, [JournalEntry(week, "verdict", "EXP-OLD", decision=decision)], "verdict")
    return tmp_path


def due(snap, journal_dir):
    return list(due_for_review(snap, journal_dir)["experiment_id"])


def test_without_a_journal_only_the_weeks_review_dates_are_due(snap):
    assert due(snap, None) == FIRST_LOOKS


def test_a_provisional_verdict_is_read_again_the_next_week(snap, tmp_path):
    j = journal_with(tmp_path, ("2026-W46", "provisional"))
    table = due_for_review(snap, j).set_index("experiment_id")
    assert "EXP-OLD" in table.index
    assert table.loc["EXP-OLD", "due"] == "still open after look 1 (provisional)"
    assert table.loc["EXP-D", "due"] == "review date this week"


def test_a_continue_verdict_is_read_again_the_next_week(snap, tmp_path):
    j = journal_with(tmp_path, ("2026-W45", "continue"))
    assert "EXP-OLD" in due(snap, j)


@pytest.mark.parametrize("decision", ["keep", "stop", "adjust"])
def test_a_kept_or_stopped_experiment_is_never_read_again(snap, tmp_path, decision):
    assert "EXP-OLD" not in due(snap, journal_with(tmp_path, ("2026-W46", decision)))


def test_a_review_date_passed_without_any_verdict_is_overdue(snap, tmp_path):
    late = overdue(snap, tmp_path)
    assert list(late["experiment_id"]) == ["EXP-OLD"]
    (item,) = overdue_section(late, load_config())
    assert item.review_date == dt.date(2026, 11, 8)
    assert item.text.startswith("EXP-OLD (lever EXP-OLD on south): review date 2026-11-08 passed without")


def test_an_experiment_with_a_verdict_is_not_overdue(snap, tmp_path):
    assert overdue(snap, journal_with(tmp_path, ("2026-W45", "stop"))).empty


def test_the_index_shows_the_state_of_each_verdict_and_the_overdue_reviews():
    def guard(state):
        return [{"metric": "contact_rate", "state": state, "why": "", "follow_up_on": None}]
    summary = {"week": "2026-W47", "review": [
        review(experiment_id="EXP-A", decision="provisional", readable_on="2026-11-25", look=1, planned_looks=4,
               why="14-day window not readable yet", guardrails=guard("not_shown_safe")),
        review(experiment_id="<b>EXP-B</b>", decision="keep", look=2, planned_looks=4, why="improved",
               flags=["far outside the registered range"], follow_ups=["read contact_rate again on 2026-12-09"],
               guardrails=guard("safe")),
    ], "overdue": [overdue_json(experiment_id="EXP-OLD", text="EXP-OLD (x on y): review date 2026-11-08 passed")]}
    page = index_page(summary, [], load_config())
    assert "too early to read (readable on 2026-11-25)" in page
    assert "Contact rate: not shown safe yet" in page and "Contact rate: safe" in page
    assert "<b>Check before rolling out:</b> far outside the registered range" in page
    assert "<b>Follow-up:</b> read contact_rate again on 2026-12-09" in page
    assert "&lt;b&gt;EXP-B&lt;/b&gt;" in page and "<b>EXP-B</b>" not in page
    overdue_part = page.split('id="overdue"', 1)[1].split("</ul>", 1)[0]
    assert "<li>EXP-OLD (x on y): review date 2026-11-08 passed</li>" in overdue_part


# --- a plan's looks before its review date, and a closed test ---------------------------------------------

@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The same shop with three more rows: a plan of 3 looks reviewed next week (W48), one reviewed in W50,
    and a test closed on 2026-11-18 whose review date is this week."""
    folder = write_shop(tmp_path_factory.mktemp("looks") / "shop", experiment_shop())
    table = pd.read_csv(folder / "experiments.csv")
    base = table[table.experiment_id == "EXP-LATER"].iloc[0]
    rows = [base.to_dict() | {"experiment_id": "EXP-3-LOOKS", "review_date": "2026-11-30", "planned_looks": 3},
            base.to_dict() | {"experiment_id": "EXP-3-LOOKS-LATE", "review_date": "2026-12-14", "planned_looks": 3},
            base.to_dict() | {"experiment_id": "EXP-CLOSED", "review_date": "2026-11-20", "closed_on": "2026-11-18",
                              "closed_reason": "the page was redesigned"}]
    pd.concat([table, pd.DataFrame(rows)], ignore_index=True).to_csv(folder / "experiments.csv", index=False)
    return open_dataset(folder).as_of("2026-W47")


def test_a_plan_of_three_looks_is_read_from_two_weeks_before_its_review_date(planned):
    table = due_for_review(planned).set_index("experiment_id")
    assert table.loc["EXP-3-LOOKS", "due"] == "planned look before the review date of 2026-11-30"
    assert "EXP-3-LOOKS-LATE" not in table.index  # its looks are W48, W49 and W50


def test_a_closed_test_is_neither_read_nor_overdue_nor_running(planned, tmp_path):
    assert "EXP-CLOSED" not in due(planned, None)
    assert "EXP-CLOSED" not in list(overdue(planned, tmp_path)["experiment_id"])
    assert "EXP-CLOSED" not in [r.experiment_id for r in running(planned)]
