"""The decision journal: replace-by-week, byte-for-byte history, quoting, track record, crashes, locks."""
from __future__ import annotations

import csv
import datetime as dt
import math
import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest

from playbook.journal import entry as journal_entry
from playbook.journal import store as journal
from playbook.journal.entry import COLUMNS, JournalEntry, JournalError
from playbook.journal.store import read_journal, record_week
from playbook.journal.track_record import track_record

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)
HEADER = ",".join(COLUMNS) + "\n"
#: a journal written before looks were counted (hand-built files below use it: they must stay readable)
LEGACY_HEADER = ",".join(journal_entry.BASE_COLUMNS) + "\n"


def plan(week: str, exp: str, low: float = -0.02, high: float = -0.005, **kw) -> JournalEntry:
    return JournalEntry(week, "plan", exp, lever=kw.pop("lever", f"lever {exp}"), cohort="knitwear",
                        primary_metric=kw.pop("metric", "return_rate"), design="A/B 50/50",
                        expected_low=low, expected_high=high, why=kw.pop("why", "size chart fix"), **kw)


def verdict(week: str, exp: str, decision: str, estimate: float | None = -0.01, **kw) -> JournalEntry:
    return JournalEntry(week, "verdict", exp, lever=f"lever {exp}", cohort="knitwear",
                        primary_metric=kw.pop("metric", "return_rate"), design="A/B 50/50",
                        estimate=estimate, ci_low=kw.pop("ci_low", None), ci_high=kw.pop("ci_high", None),
                        decision=decision, why=kw.pop("why", "J+7 review"), **kw)


def rows_of(path: Path, week: str) -> list[bytes]:
    """The raw lines of one week (tests whose `why` has no newline)."""
    return [line for line in path.read_bytes().splitlines(keepends=True) if line.startswith(week.encode())]


def keys(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    return list(zip(frame["week"], frame["kind"], frame["experiment_id"]))


# --- replace by (week, kind) ---------------------------------------------------------------

def test_rerecording_a_week_replaces_its_entries_and_leaves_the_other_week_byte_identical(tmp_path):
    record_week(tmp_path, "2026-W45", [plan("2026-W45", "E1"), plan("2026-W45", "E2")], "plan", now=NOW)
    path = record_week(tmp_path, "2026-W46", [plan("2026-W46", "E3", why="second, week")], "plan", now=NOW)
    w46_before = rows_of(path, "2026-W46")
    assert len(w46_before) == 1

    record_week(tmp_path, "2026-W45", [plan("2026-W45", "E9")], "plan",
                now=NOW + dt.timedelta(days=1))

    assert rows_of(path, "2026-W46") == w46_before
    assert keys(read_journal(tmp_path)) == [("2026-W45", "plan", "E9"), ("2026-W46", "plan", "E3")]


def test_plans_and_verdicts_of_the_same_week_coexist(tmp_path):
    record_week(tmp_path, "2026-W47", [plan("2026-W47", "E5")], "plan", now=NOW)
    record_week(tmp_path, "2026-W47", [verdict("2026-W47", "E1", "keep")], "verdict", now=NOW)
    record_week(tmp_path, "2026-W47", [plan("2026-W47", "E6")], "plan", now=NOW)  # re-run of notebook 03

    assert keys(read_journal(tmp_path)) == [("2026-W47", "plan", "E6"), ("2026-W47", "verdict", "E1")]


def test_rerunning_the_same_week_twice_gives_no_duplicates(tmp_path):
    entries = [verdict("2026-W47", "E1", "keep"), verdict("2026-W47", "E2", "stop", estimate=0.01)]
    record_week(tmp_path, "2026-W47", entries, "verdict", now=NOW)
    first = read_journal(tmp_path)
    record_week(tmp_path, "2026-W47", entries, "verdict", now=NOW)
    second = read_journal(tmp_path)

    assert len(second) == 2
    pd.testing.assert_frame_equal(first, second)


def test_an_empty_rerun_removes_that_week_and_kind_only(tmp_path):
    record_week(tmp_path, "2026-W47", [plan("2026-W47", "E5")], "plan", now=NOW)
    record_week(tmp_path, "2026-W47", [verdict("2026-W47", "E1", "adjust")], "verdict", now=NOW)
    record_week(tmp_path, "2026-W47", [], "plan", now=NOW)

    assert keys(read_journal(tmp_path)) == [("2026-W47", "verdict", "E1")]


def test_a_backfilled_week_is_inserted_in_chronological_order(tmp_path):
    record_week(tmp_path, "2026-W44", [plan("2026-W44", "E1")], "plan", now=NOW)
    record_week(tmp_path, "2026-W46", [plan("2026-W46", "E3")], "plan", now=NOW)
    record_week(tmp_path, "2026-W45", [verdict("2026-W45", "E1", "keep")], "verdict", now=NOW)

    assert list(read_journal(tmp_path)["week"]) == ["2026-W44", "2026-W45", "2026-W46"]


def test_hand_edited_rows_of_other_weeks_are_kept_byte_for_byte(tmp_path):
    # quoted everywhere, CRLF line ends, a number written "-1.0E-2" and no final line end:
    # a re-format (pandas or csv writer) would change every one of those bytes
    hand = ('"2026-W40","verdict","E0","old lever","all","return_rate","before/after",,,"-1.0E-2",,,'
            '"keep","kept, by hand",,"1",,\r\n'
            '2026-W41,plan,E7,x,all,return_rate,A/B,-0.01,0,,,,,"why ""quoted""",2026-10-06T08:00:00Z')  # no look fields
    path = tmp_path / journal.JOURNAL_FILE
    path.write_bytes((HEADER + hand).encode())

    record_week(tmp_path, "2026-W47", [plan("2026-W47", "E8")], "plan", now=NOW)

    text = path.read_bytes().decode()
    assert text.startswith(HEADER + hand + "\n")
    assert keys(read_journal(tmp_path)) == [("2026-W40", "verdict", "E0"), ("2026-W41", "plan", "E7"),
                                            ("2026-W47", "plan", "E8")]
    assert read_journal(tmp_path)["estimate"].iloc[0] == -0.01


# --- validation of entries -----------------------------------------------------------------

def test_an_entry_of_another_week_is_refused_naming_the_week(tmp_path):
    with pytest.raises(ValueError, match="week is 2026-W46, but this run records 2026-W47"):
        record_week(tmp_path, "2026-W47", [plan("2026-W46", "E1")], "plan", now=NOW)
    assert not (tmp_path / journal.JOURNAL_FILE).exists()


def test_an_entry_of_another_kind_is_refused_naming_the_kind(tmp_path):
    with pytest.raises(ValueError, match="kind is 'plan', but this call records 'verdict'"):
        record_week(tmp_path, "2026-W47", [plan("2026-W47", "E1")], "verdict", now=NOW)


def test_a_verdict_without_keep_adjust_or_stop_is_refused_naming_the_decision():
    words = "keep, adjust, stop, continue, provisional"
    with pytest.raises(ValueError, match=f"decision of a verdict must be one of {words}, got 'pause'"):
        verdict("2026-W47", "E1", "pause")
    with pytest.raises(ValueError, match="decision"):
        verdict("2026-W47", "E1", "")


def test_two_entries_with_the_same_experiment_in_one_call_are_refused(tmp_path):
    with pytest.raises(ValueError, match="experiment_id 'E1' appears twice"):
        record_week(tmp_path, "2026-W47", [plan("2026-W47", "E1"), plan("2026-W47", "E1")], "plan", now=NOW)


def test_a_journal_inside_the_reports_folder_is_refused(monkeypatch, tmp_path):
    import playbook.core.paths

    monkeypatch.setattr(playbook.core.paths, "REPORTS_DIR", tmp_path / "reports")
    with pytest.raises(ValueError, match="inside the reports folder"):
        record_week(tmp_path / "reports" / "2026-W47" / "journal", "2026-W47", [], "plan", now=NOW)


# --- the CSV text --------------------------------------------------------------------------

def test_a_why_with_comma_quote_and_newline_round_trips(tmp_path):
    why = 'size "runs small", per reviews;\nsecond line,\r\nthird "line"'
    path = record_week(tmp_path, "2026-W47", [plan("2026-W47", "E1", why=why)], "plan", now=NOW)

    assert read_journal(tmp_path)["why"].tolist() == [why]
    # an ordinary CSV reader (not only ours) reads the same text back
    with open(path, newline="", encoding="utf-8") as fh:
        assert [row["why"] for row in csv.DictReader(fh)] == [why]
    # and so does pandas with everything as text
    assert pd.read_csv(path, dtype=str, keep_default_na=False)["why"].tolist() == [why]


def test_read_journal_types_numbers_as_floats_and_empty_numbers_as_nan(tmp_path):
    record_week(tmp_path, "2026-W47", [plan("2026-W47", "E1", low=-0.03, high=0.0)], "plan", now=NOW)
    row = read_journal(tmp_path).iloc[0]

    assert row["expected_low"] == -0.03 and row["expected_high"] == 0.0
    assert math.isnan(row["estimate"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert row["decision"] == ""
    assert row["recorded_at"] == pd.Timestamp("2026-11-23 09:30:00", tz="UTC")


def test_reading_a_journal_that_does_not_exist_gives_an_empty_table_with_the_columns(tmp_path):
    frame = read_journal(tmp_path / "nowhere")
    assert frame.empty and list(frame.columns) == list(COLUMNS)


# --- track record --------------------------------------------------------------------------

HAND_BUILT = LEGACY_HEADER + "\n".join([
    # week, kind, experiment, lever, cohort, metric, design, exp_low, exp_high, estimate, ci_low, ci_high, decision, why, at
    "2026-W40,plan,E1,size chart,knitwear,return_rate,A/B,-0.02,-0.005,,,,,,2026-10-02T10:00:00Z",
    "2026-W41,verdict,E1,size chart,knitwear,return_rate,A/B,,,-0.012,-0.02,-0.004,keep,,2026-10-09T10:00:00Z",
    "2026-W42,verdict,E2,photos,shoes,return_rate,A/B,,,-0.004,-0.01,0.002,adjust,,2026-10-16T10:00:00Z",
    "2026-W44,verdict,E2,photos,shoes,return_rate,A/B,,,-0.008,-0.012,-0.003,keep,re-run,2026-10-30T10:00:00Z",
    "2026-W44,verdict,E3,free returns off,all,cost_per_order,A/B,,,-1.5,-2.5,-0.5,keep,,2026-10-30T10:00:00Z",
    "2026-W45,verdict,E4,carrier swap,south,return_rate,A/B,,,0.01,0.002,0.018,stop,worse,2026-11-06T10:00:00Z",
    "2026-W46,verdict,E5,fit quiz,knitwear,cost_per_order,A/B,,,-0.5,-1.2,0.2,adjust,,2026-11-13T10:00:00Z",
    "2026-W47,plan,E6,bundle,all,return_rate,A/B,-0.01,0,,,,,,2026-11-20T10:00:00Z",
]) + "\n"


def test_track_record_counts_latest_verdicts_and_never_sums_changes_of_different_metrics(tmp_path):
    (tmp_path / journal.JOURNAL_FILE).write_text(HAND_BUILT, encoding="utf-8")
    record = track_record(tmp_path, "2026-W47")

    # E2 was reviewed twice: its latest verdict (keep, W44) counts, not the adjust of W42
    assert record.counts == {"keep": 3, "adjust": 1, "stop": 1, "continue": 0, "provisional": 0}
    # a journal written before the money columns: the kept levers have no money value, nothing is summed
    assert record.money_per_week is None and set(record.kept_without_money) == {"E1", "E2", "E3"}
    assert "no money value (not summed)" in record.summary()
    assert list(record.table()["experiment_id"]) == ["E5", "E4", "E3", "E2", "E1"]  # newest first
    payload = record.to_dict()
    assert payload["n_reviewed"] == 5 and payload["first_week"] == "2026-W40"
    assert "3 kept, 1 adjusted, 1 stopped" in record.summary()


def test_track_record_counts_only_the_last_8_weeks(tmp_path):
    (tmp_path / journal.JOURNAL_FILE).write_text(HAND_BUILT, encoding="utf-8")
    # up to W49, the 8 weeks are W42..W49: E1's keep (W41) falls out, E2's W42 adjust is superseded
    record = track_record(tmp_path, "2026-W49")
    assert record.first_week == "2026-W42"
    assert record.counts == {"keep": 2, "adjust": 1, "stop": 1, "continue": 0, "provisional": 0}
    assert set(record.kept_without_money) == {"E2", "E3"}
    # a window of 2 weeks up to W46 holds only W45 and W46
    assert track_record(tmp_path, "2026-W46", weeks=2).counts == {"keep": 0, "adjust": 1, "stop": 1, "continue": 0,
                                                                  "provisional": 0}


def test_track_record_ignores_verdicts_after_the_week(tmp_path):
    (tmp_path / journal.JOURNAL_FILE).write_text(HAND_BUILT, encoding="utf-8")
    record = track_record(tmp_path, "2026-W43")  # W36..W43: E1 keep (W41), E2 adjust (W42)
    assert record.counts == {"keep": 1, "adjust": 1, "stop": 0, "continue": 0, "provisional": 0}
    assert record.kept_without_money == ("E1",)


def test_track_record_of_an_empty_journal_is_zero_everywhere(tmp_path):
    record = track_record(tmp_path, "2026-W47")
    assert record.counts == {"keep": 0, "adjust": 0, "stop": 0, "continue": 0, "provisional": 0} and record.money_per_week is None
    assert record.table().empty and "No lever reviewed" in record.summary()


# --- crashes, corruption, concurrency ------------------------------------------------------

def test_a_crash_during_replace_leaves_the_previous_file_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = record_week(tmp_path, "2026-W46", [plan("2026-W46", "E1")], "plan", now=NOW)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        record_week(tmp_path, "2026-W47", [plan("2026-W47", "E2")], "plan", now=NOW)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [journal.JOURNAL_FILE, journal.LOCK_FILE]


@pytest.mark.parametrize("text, problem", [
    (HEADER + '2026-W46,plan,E1,"unterminated,x\n', "not a valid CSV file"),
    ("week,kind,experiment_id,lever\n2026-W46,plan,E1,x\n", "lacks the column(s) cohort, primary_metric"),
    (HEADER + "2026-W46,plan,E1,too,few\n", "line 2: 5 fields where the header has 25"),
    (LEGACY_HEADER + HAND_BUILT.splitlines()[2].replace("keep", "maybe") + "\n", "line 2: decision 'maybe'"),
    (LEGACY_HEADER + HAND_BUILT.splitlines()[2].replace("-0.012", "twelve") + "\n", "line 2: estimate 'twelve'"),
    (HEADER + "2026-W46,plan,E1,x,all,m,A/B,,,,,,,,,0,,\n", "line 2: look '0'"),
])
def test_a_corrupt_journal_raises_a_clear_error_and_is_never_overwritten(tmp_path, text, problem):
    path = tmp_path / journal.JOURNAL_FILE
    path.write_bytes(text.encode())

    with pytest.raises(JournalError) as read_error:
        read_journal(tmp_path)
    assert str(path) in str(read_error.value) and problem in str(read_error.value)

    with pytest.raises(JournalError, match="left untouched"):
        record_week(tmp_path, "2026-W47", [plan("2026-W47", "E2")], "plan", now=NOW)
    assert path.read_bytes() == text.encode()


def _record_many(folder: str, weeks: list[str], start) -> None:
    start.wait()
    for week in weeks:
        record_week(folder, week, [JournalEntry(week, "plan", f"E-{week}", why=f"plan of {week}")], "plan")


def test_two_processes_recording_different_weeks_at_the_same_time_both_land(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    first = [f"2026-W{w:02d}" for w in range(1, 16)]
    second = [f"2026-W{w:02d}" for w in range(16, 31)]
    workers = [ctx.Process(target=_record_many, args=(str(tmp_path), weeks, start)) for weeks in (first, second)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
    assert [p.exitcode for p in workers] == [0, 0]

    frame = read_journal(tmp_path)
    assert sorted(frame["week"]) == sorted(first + second)  # no row lost, none duplicated
    assert list(frame["experiment_id"]) == [f"E-{w}" for w in sorted(first + second)]


# --- staging: entries land with the report ------------------------------------------------------

def _verdict(week="2026-W47", exp="E1", decision="keep", estimate=-0.02):
    return JournalEntry(week=week, kind="verdict", experiment_id=exp, primary_metric="return_rate_14d",
                        estimate=estimate, decision=decision, why="test")


def test_staged_entries_are_not_in_the_journal_until_applied(tmp_path):
    from playbook.journal.store import apply_staged, stage

    run_dir, journal = tmp_path / "run", tmp_path / "journal"
    stage(run_dir, "2026-W47", [_verdict()], "verdict")
    assert read_journal(journal).empty
    apply_staged(run_dir, journal)
    j = read_journal(journal)
    assert list(j.experiment_id) == ["E1"] and list(j.decision) == ["keep"]


def test_applying_the_same_staged_week_twice_leaves_one_entry(tmp_path):
    from playbook.journal.store import apply_staged, stage

    run_dir, journal = tmp_path / "run", tmp_path / "journal"
    stage(run_dir, "2026-W47", [_verdict()], "verdict")
    apply_staged(run_dir, journal)
    apply_staged(run_dir, journal)
    assert len(read_journal(journal)) == 1


def test_the_track_record_with_staged_entries_counts_them_without_writing_the_journal(tmp_path):
    from playbook.journal.store import stage
    from playbook.journal.track_record import track_record_with_staged

    run_dir, journal = tmp_path / "run", tmp_path / "journal"
    record_week(journal, "2026-W46", [_verdict("2026-W46", "E0", "stop", 0.01)], "verdict")
    before = (journal / "decisions.csv").read_bytes()
    stage(run_dir, "2026-W47", [_verdict()], "verdict")
    record = track_record_with_staged(journal, "2026-W47", run_dir)
    assert record.counts["keep"] == 1 and record.counts["stop"] == 1
    assert (journal / "decisions.csv").read_bytes() == before


def test_staging_refuses_an_entry_of_another_week(tmp_path):
    from playbook.journal.store import stage

    with pytest.raises(ValueError, match="differ"):
        stage(tmp_path, "2026-W47", [_verdict(week="2026-W46")], "verdict")


# --- counted looks ----------------------------------------------------------------------------

def test_the_verdict_words_have_one_home():
    from playbook.core import vocabulary

    assert journal.DECISIONS is vocabulary.DECISIONS
    assert vocabulary.DECISIONS == tuple(d.value for d in vocabulary.Decision) == (
        "keep", "adjust", "stop", "continue", "provisional")


def test_a_provisional_verdict_is_recorded_with_the_look_and_the_k_read(tmp_path):
    record_week(tmp_path, "2026-W47", [verdict("2026-W47", "E1", "provisional", None, look=1)], "verdict", now=NOW)
    record_week(tmp_path, "2026-W48", [verdict("2026-W48", "E1", "keep", -0.02, look=2, k_read=14)], "verdict",
                now=NOW)
    frame = read_journal(tmp_path)
    assert list(frame["decision"]) == ["provisional", "keep"]
    assert list(frame["look"]) == [1, 2] and frame["k_read"].isna().iloc[0] and frame["k_read"].iloc[1] == 14


def test_looks_are_numbered_per_experiment_by_earlier_review_weeks(tmp_path):
    assert journal.next_look(tmp_path, "E1", "2026-W47") == 1
    record_week(tmp_path, "2026-W47", [verdict("2026-W47", "E1", "adjust"), verdict("2026-W47", "E2", "adjust")],
                "verdict", now=NOW)
    record_week(tmp_path, "2026-W48", [verdict("2026-W48", "E1", "provisional", None)], "verdict", now=NOW)
    assert journal.next_look(tmp_path, "E1", "2026-W49") == 3
    assert journal.next_look(tmp_path, "E2", "2026-W49") == 2
    # a re-run of week 48 is the same look, not a new one
    assert journal.next_look(tmp_path, "E1", "2026-W48") == 2


def test_a_journal_written_before_looks_is_migrated_keeping_its_values(tmp_path):
    path = tmp_path / journal.JOURNAL_FILE
    path.write_text(HAND_BUILT, encoding="utf-8")
    before = read_journal(tmp_path)
    record_week(tmp_path, "2026-W49", [verdict("2026-W49", "E9", "adjust", look=1, k_read=7)], "verdict", now=NOW)
    after = read_journal(tmp_path)
    assert path.read_text().splitlines()[0] == HEADER.strip()
    assert path.read_text().startswith(HEADER + HAND_BUILT[len(LEGACY_HEADER):])  # old rows byte for byte
    pd.testing.assert_frame_equal(after.iloc[: len(before)].reset_index(drop=True), before)
    assert after["look"].iloc[-1] == 1 and after["k_read"].iloc[-1] == 7


def test_the_track_record_adds_the_kept_levers_in_money_per_week_with_their_interval(tmp_path):
    entries = [
        JournalEntry("2026-W46", "verdict", "E1", primary_metric="return_rate_14d", decision="keep",
                     money_per_week=120.0, money_ci_low=40.0, money_ci_high=200.0),
        JournalEntry("2026-W46", "verdict", "E2", primary_metric="discount_depth", decision="keep",
                     money_per_week=80.0, money_ci_low=20.0, money_ci_high=140.0),
        JournalEntry("2026-W46", "verdict", "E3", primary_metric="return_rate_14d", decision="stop",
                     money_per_week=-50.0, money_ci_low=-90.0, money_ci_high=-10.0),
        JournalEntry("2026-W46", "verdict", "E4", primary_metric="conversion_rate", decision="keep"),
    ]
    record_week(tmp_path, "2026-W46", entries, "verdict")
    record = track_record(tmp_path, "2026-W47")
    # kept: 120 + 80; half-widths 80 and 60 below, 80 and 60 above: sqrt(80^2 + 60^2) = 100 each side
    assert record.money_per_week == pytest.approx(200.0)
    assert record.money_ci == pytest.approx((100.0, 300.0))
    assert record.kept_without_money == ("E4",)
    # the saving and its interval in the shop's currency, whole units beside amounts of 100 or more
    assert "save about GBP 200 a week (GBP 100 to GBP 300) in return costs" in record.summary("GBP")


def test_a_journal_with_look_columns_gains_the_money_columns_and_keeps_its_rows(tmp_path):
    old_header = ",".join(journal_entry.BASE_COLUMNS + journal_entry.LOOK_COLUMNS)
    row = "2026-W45,verdict,E1,fit,knitwear,return_rate_14d,randomized,,,-0.01,-0.02,0.0,adjust,,2026-11-06T10:00:00Z,1,14,"
    (tmp_path / journal.JOURNAL_FILE).write_text(old_header + "\n" + row + "\n", encoding="utf-8")
    record_week(tmp_path, "2026-W46", [JournalEntry("2026-W46", "verdict", "E2", decision="keep",
                                                    money_per_week=10.0)], "verdict")
    lines = (tmp_path / journal.JOURNAL_FILE).read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(journal_entry.COLUMNS) and lines[1] == row
    table = journal.read_journal(tmp_path).set_index("experiment_id")
    assert table.loc["E2", "money_per_week"] == 10.0 and pd.isna(table.loc["E1", "money_per_week"])
