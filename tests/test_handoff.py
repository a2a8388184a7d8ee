"""The hand-off of step 3's plan to the source's experiments table, and the close of a test
(``playbook experiments add`` / ``close``, ``playbook.run.handoff``).

The plan file is written here as step 3 writes it (``levers.write_experiments_row``: pandas, formula-like
text behind a quote) with the columns of its ``ExperimentsRow`` plus the plan's sequential columns. Most tests
use a folder holding an experiments table only (the command reads and checks that table alone); the tests
that say the source validates run ``playbook validate`` on a copy of the sample shop.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import shutil
import stat
import subprocess
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO_ROOT

from playbook.core.csvsafe import neutralise_row
from playbook.data import csv_files
from playbook.data.contract import TABLES, cohorts_overlap
from playbook.data.validation import validate_table
from playbook.run import cli, handoff
from playbook.run.handoff import Experiment, HandoffError

HEADER = list(TABLES["experiments"].column_names)
#: two tests already in the table (the sample shop's two of week 46): reviewed on 2026-11-16
EARLIER = [
    ["EXP-2026-W46-SHOES-FIT", "fit_size_message", "category=shoes", "randomized", "", "return_rate_14d",
     "-0.06", "-0.02", "2026-11-09", "2026-11-16"],
    ["EXP-2026-W46-OUTERWEAR-PROMO", "tighten_promo_eligibility", "category=outerwear", "pre_post", "",
     "discount_depth", "-5.00", "-2.00", "2026-11-09", "2026-11-16"],
]
PLAN_ID = "EXP-2026-W47-KNITWEAR-FIT-SIZE-MESSAGE"


def plan_row(**changes) -> dict:
    """The sample week's plan as step 3's ExperimentsRow writes it, with the plan's sequential columns."""
    row = {"experiment_id": PLAN_ID, "lever": "fit_size_message", "cohort": "category=knitwear", "design": "pre_post",
           "control_cohort": "", "primary_metric": "return_rate_14d", "expected_low": -0.04, "expected_high": -0.017,
           "start_date": dt.date(2026, 11, 23), "review_date": dt.date(2027, 1, 18),
           "selection_first_week": "2026-W32", "selection_window_week": "2026-W43", "selection_last_week": "2026-W46",
           "planned_looks": 4, "planned_information": 1250.0}
    row.update(changes)
    return row


def write_plan(folder: Path, **changes) -> Path:
    """``experiments_plan.csv`` as ``levers.write_experiments_row`` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "experiments_plan.csv"
    pd.DataFrame([neutralise_row(plan_row(**changes))]).to_csv(path, index=False)
    return path


def write_table(folder: Path, rows=EARLIER, header=HEADER, sep: str = ",", newline: str = "\n", bom: bool = False,
                name: str = "experiments.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")
    path = folder / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def journal_with(folder: Path, *verdicts: tuple[str, str, str]) -> Path:
    """A decision journal holding verdicts (week, experiment_id, decision), in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["week,kind,experiment_id,lever,cohort,primary_metric,design,expected_low,expected_high,estimate,"
             "ci_low,ci_high,decision,why,recorded_at"]
    lines += [f"{week},verdict,{eid},x,c,m,randomized,,,,,,{decision},read,2026-11-30T09:00:00Z"
              for week, eid, decision in verdicts]
    (folder / "decisions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def add(tmp_path: Path, data: Path | str, start=None, journal: Path | None = None, **changes) -> handoff.HandoffResult:
    plan = write_plan(tmp_path / "reports", **changes)
    return handoff.add_plan(plan, data, start, journal or tmp_path / "no-journal")


def refused_add(tmp_path: Path, data: Path, **kw) -> str:
    with pytest.raises(HandoffError) as info:
        add(tmp_path, data, **kw)
    return str(info.value)


def rows(path: Path) -> list[dict]:
    """The experiments table file read as a folder source reads it and validated by its own rules, in file order."""
    con = ibis.duckdb.connect()
    try:
        if path.suffix == ".parquet":
            table, comma = con.read_parquet(path, table_name="experiments"), False
        else:
            table, dialect = csv_files.read_csv(con, path, "experiments")
            comma = dialect.decimal_comma
        return validate_table("experiments", table, decimal_comma=comma).tables["experiments"].to_pyarrow().to_pylist()
    finally:
        con.disconnect()


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    shutil.copytree(REPO_ROOT / "data_samples", folder)
    return folder


# --- the plan file --------------------------------------------------------------------------------------

def test_the_plan_row_is_read_with_its_types_and_its_formula_like_text_unquoted(tmp_path):
    plan = handoff.read_plan(write_plan(tmp_path, lever='=HYPERLINK("http://x","y")'))
    assert plan.values["lever"] == '=HYPERLINK("http://x","y")'
    assert (plan.start_date, plan.review_date) == (dt.date(2026, 11, 23), dt.date(2027, 1, 18))
    assert (plan.values["planned_looks"], plan.values["planned_information"]) == (4, 1250.0)
    assert plan.values["control_cohort"] is None and plan.values["selection_window_week"] == "2026-W43"


def test_a_missing_plan_file_is_refused(tmp_path):
    with pytest.raises(HandoffError, match="plan file not found"):
        handoff.read_plan(tmp_path / "experiments_plan.csv")


def test_an_empty_plan_file_is_refused(tmp_path):
    (tmp_path / "experiments_plan.csv").write_text("\n")
    with pytest.raises(HandoffError, match="is empty"):
        handoff.read_plan(tmp_path / "experiments_plan.csv")


def test_a_plan_with_a_header_and_no_row_is_refused(tmp_path):
    path = write_plan(tmp_path)
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(HandoffError, match="has no row under its header"):
        handoff.read_plan(path)


def test_a_plan_with_two_rows_is_refused(tmp_path):
    path = write_plan(tmp_path)
    path.write_text(path.read_text() + path.read_text().splitlines()[1] + "\n")
    with pytest.raises(HandoffError, match="has 2 rows under its header: a plan is one row"):
        handoff.read_plan(path)


def test_a_plan_row_breaking_the_contract_is_refused_naming_each_rule(tmp_path):
    with pytest.raises(HandoffError) as info:
        handoff.read_plan(write_plan(tmp_path, design="ab_test", planned_looks="four"))
    text = str(info.value)
    assert "breaks the data contract" in text
    assert f"experiments.design: rule 'one of randomized, pre_post' broken by 1 row ({'experiment_id'}: {PLAN_ID} " \
           "('ab_test'))" in text
    assert f"experiments.planned_looks: rule 'value is an integer' broken by 1 row (experiment_id: {PLAN_ID} ('four'))" \
           in text


def test_a_plan_whose_cohort_is_not_a_filter_is_refused(tmp_path):
    with pytest.raises(HandoffError, match=r"experiments.cohort: rule 'a filter column=value;\.\.\."):
        handoff.read_plan(write_plan(tmp_path, cohort="knitwear"))


def test_a_plan_column_the_contract_does_not_know_is_refused_with_a_hint(tmp_path):
    path = write_plan(tmp_path)
    path.write_text(path.read_text().replace("planned_looks", "planned_look", 1))
    with pytest.raises(HandoffError) as info:
        handoff.read_plan(path)
    assert "'planned_look'" in str(info.value) and "did you mean planned_looks" in str(info.value)


def test_a_plan_primary_metric_unknown_to_the_configuration_is_refused(tmp_path):
    with pytest.raises(HandoffError, match="a known metric"):
        handoff.read_plan(write_plan(tmp_path, primary_metric="return_rte"), known_metrics={"return_rate_14d"})


def test_start_moves_start_and_review_by_the_same_days_and_keeps_the_selection_weeks(tmp_path):
    plan = handoff.read_plan(write_plan(tmp_path)).starting(dt.date(2026, 12, 7))
    assert (plan.start_date, plan.review_date) == (dt.date(2026, 12, 7), dt.date(2027, 2, 1))
    assert [plan.values[c] for c in ("selection_first_week", "selection_window_week", "selection_last_week")] == [
        "2026-W32", "2026-W43", "2026-W46"]


# --- adding to a folder source ----------------------------------------------------------------------

def test_adding_the_sample_weeks_plan_to_the_sample_shop_keeps_it_valid(tmp_path, sample_copy, capsys):
    plan = write_plan(tmp_path / "reports" / "2026-W47")
    assert cli.main(["experiments", "add", str(plan), str(sample_copy), "--journal", str(tmp_path / "j")]) == 0
    assert cli.main(["validate", str(sample_copy)]) == 0
    out = capsys.readouterr().out
    assert "the data satisfy the contract" in out and "not in the data contract" not in out
    (added,) = [r for r in rows(sample_copy / "experiments.csv.gz") if r["experiment_id"] == PLAN_ID]
    assert (added["planned_looks"], added["selection_last_week"], str(added["start_date"])) == (4, "2026-W46", "2026-11-23")


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """The table's number columns (every contract column of kind float or int it has) as numbers."""
    kinds = {c.name: c.kind for c in TABLES["experiments"].all_columns}
    out = frame.replace({"": None})
    for name in out.columns:
        if kinds.get(name) == "float":
            out[name] = pd.to_numeric(out[name]).astype(float)
        elif kinds.get(name) == "int":
            out[name] = pd.to_numeric(out[name]).astype("Int64")
    return out


def _as_spreadsheet_csv(frame: pd.DataFrame, folder: Path) -> Path:
    """Excel's 'CSV UTF-8' in a semicolon locale: byte-order mark, semicolons, decimal commas, CRLF."""
    frame = _numbers(frame)
    text = frame.to_csv(index=False, sep=";", decimal=",", lineterminator="\r\n")
    (folder / "experiments.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return folder / "experiments.csv"


def _as_pandas_parquet(frame: pd.DataFrame, folder: Path) -> Path:
    frame = _numbers(frame)
    frame["start_date"] = pd.to_datetime(frame["start_date"])
    frame["review_date"] = pd.to_datetime(frame["review_date"]).dt.date
    frame.to_parquet(folder / "experiments.parquet")
    return folder / "experiments.parquet"


@pytest.mark.parametrize("write", [_as_spreadsheet_csv, _as_pandas_parquet], ids=["spreadsheet-csv", "pandas-parquet"])
def test_the_sample_shop_with_its_experiments_in_another_format_keeps_it_and_stays_valid(tmp_path, sample_copy, write):
    gz = sample_copy / "experiments.csv.gz"
    frame = pd.read_csv(gz, dtype=str, keep_default_na=False)
    gz.unlink()
    path = write(frame, sample_copy)
    types = {f.name: f.type for f in pq.read_schema(path)} if path.suffix == ".parquet" else {}
    plan = write_plan(tmp_path / "reports" / "2026-W47")
    assert cli.main(["experiments", "add", str(plan), str(sample_copy), "--journal", str(tmp_path / "j")]) == 0
    assert sorted(p.name for p in sample_copy.glob("experiments*")) == [path.name]
    assert cli.main(["validate", str(sample_copy)]) == 0
    if path.suffix == ".csv":
        assert path.read_bytes().startswith(b"\xef\xbb\xbfexperiment_id;") and b";-0,04;-0,017;" in path.read_bytes()
    else:
        assert pa.types.is_timestamp(types["start_date"]) and all(pq.read_schema(path).field(n).type == t
                                                                   for n, t in types.items())
    assert [r["experiment_id"] for r in rows(path)][-1] == PLAN_ID


def test_a_gzip_csv_table_stays_gzip_and_its_earlier_records_keep_their_bytes(tmp_path):
    path = write_table(tmp_path / "shop", name="experiments.csv.gz")
    before = gzip.decompress(path.read_bytes()).decode().splitlines()
    result = add(tmp_path, path.parent)
    after = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert result.path == path and sorted(p.name for p in path.parent.iterdir()) == ["experiments.csv.gz"]
    assert [line[: len(old)] for line, old in zip(after[1:3], before[1:3])] == before[1:3]  # -5.00 stays -5.00
    assert after[1].endswith(",-0.06,-0.02,2026-11-09,2026-11-16,,,,,")
    assert after[0].split(",") == HEADER + ["selection_first_week", "selection_window_week", "selection_last_week",
                                            "planned_looks", "planned_information"]
    assert result.added_columns == tuple(after[0].split(",")[10:])


def test_the_new_row_leaves_empty_the_tables_columns_the_plan_lacks(tmp_path):
    path = write_table(tmp_path / "shop", header=HEADER + ["owner", "closed_on", "closed_reason"],
                       rows=[r + ["ana", "", ""] for r in EARLIER])
    add(tmp_path, path.parent)
    last = next(csv.DictReader(io.StringIO(path.read_text().splitlines()[0] + "\n" + path.read_text().splitlines()[-1])))
    assert (last["experiment_id"], last["owner"], last["closed_on"], last["closed_reason"]) == (PLAN_ID, "", "", "")


def test_a_spreadsheet_csv_keeps_its_bom_semicolons_decimal_commas_and_windows_line_ends(tmp_path):
    comma = [[v.replace(".", ",") if v[:1] in "-0123456789" and "-" not in v[1:] else v for v in r] for r in EARLIER]
    path = write_table(tmp_path / "shop", rows=comma, sep=";", newline="\r\n", bom=True)
    add(tmp_path, path.parent)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfexperiment_id;lever;") and data.endswith(b"\r\n")
    last = data.decode("utf-8-sig").split("\r\n")[-2]
    assert last.startswith(f"{PLAN_ID};fit_size_message;category=knitwear;pre_post;;return_rate_14d;-0,04;-0,017;")
    assert {r["experiment_id"]: r["expected_low"] for r in rows(path)} == {
        "EXP-2026-W46-OUTERWEAR-PROMO": -5.0, "EXP-2026-W46-SHOES-FIT": -0.06, PLAN_ID: -0.04}


def test_a_separator_ending_every_line_stays_at_the_end_of_every_line(tmp_path):
    path = write_table(tmp_path / "shop", header=HEADER + [""], rows=[r + [""] for r in EARLIER])
    add(tmp_path, path.parent)
    lines = path.read_text().splitlines()
    assert lines[0].endswith(",planned_looks,planned_information,") and all(line.endswith(",") for line in lines)
    assert [r["experiment_id"] for r in rows(path)][-1] == PLAN_ID


def test_a_table_without_a_final_line_end_gets_one_before_the_new_row(tmp_path):
    path = write_table(tmp_path / "shop")
    path.write_text(path.read_text().rstrip("\n"))
    add(tmp_path, path.parent)
    assert [r["experiment_id"] for r in rows(path)] == [EARLIER[0][0], EARLIER[1][0], PLAN_ID]


def test_blank_lines_at_the_end_of_a_table_stay_after_the_new_row(tmp_path):
    path = write_table(tmp_path / "shop")
    path.write_text(path.read_text() + "\n\n")
    add(tmp_path, path.parent)
    text = path.read_text()
    assert text.endswith("\n\n\n") and text.rstrip("\n").splitlines()[-1].startswith(PLAN_ID)


def test_a_formula_like_lever_is_quoted_in_a_csv_table(tmp_path):
    path = write_table(tmp_path / "shop")
    add(tmp_path, path.parent, lever="=HYPERLINK(\"http://evil\",\"click\")")
    (new,) = [r for r in csv.DictReader(io.StringIO(path.read_text())) if r["experiment_id"] == PLAN_ID]
    assert new["lever"] == "'=HYPERLINK(\"http://evil\",\"click\")"


def test_a_parquet_table_written_by_pandas_stays_parquet_with_its_types_and_unquoted_text(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    frame = pd.DataFrame(EARLIER, columns=HEADER).replace("", None)
    frame[["expected_low", "expected_high"]] = frame[["expected_low", "expected_high"]].astype(float)
    frame["start_date"] = pd.to_datetime(frame["start_date"])  # datetime64: a timestamp column in the file
    frame["review_date"] = pd.to_datetime(frame["review_date"]).dt.date  # dates: a date32 column
    frame.to_parquet(folder / "experiments.parquet")
    schema = pq.read_schema(folder / "experiments.parquet")
    add(tmp_path, folder, lever="=HYPERLINK(\"http://evil\")")
    table = pq.read_table(folder / "experiments.parquet")
    assert [p.name for p in folder.iterdir()] == ["experiments.parquet"]
    assert all(table.schema.field(f.name).type == f.type for f in schema)
    assert table.schema.field("planned_looks").type == pa.int64() and table.num_rows == 3
    last = table.slice(2).to_pylist()[0]
    assert last["lever"] == "=HYPERLINK(\"http://evil\")" and last["start_date"] == dt.datetime(2026, 11, 23)
    assert last["review_date"] == dt.date(2027, 1, 18) and last["planned_information"] == 1250.0
    assert len(pd.read_parquet(folder / "experiments.parquet")) == 3
    assert [r["experiment_id"] for r in rows(folder / "experiments.parquet")][-1] == PLAN_ID


def test_a_folder_without_experiments_table_gets_experiments_csv_with_the_contract_and_plan_columns(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    result = add(tmp_path, folder)
    assert result.created and result.path == folder / "experiments.csv"
    header = (folder / "experiments.csv").read_text().splitlines()[0].split(",")
    assert header == HEADER + ["selection_first_week", "selection_window_week", "selection_last_week",
                               "planned_looks", "planned_information"]
    assert [r["experiment_id"] for r in rows(folder / "experiments.csv")] == [PLAN_ID]


def test_the_table_file_keeps_its_permissions(tmp_path):
    path = write_table(tmp_path / "shop")
    path.chmod(0o640)
    add(tmp_path, path.parent)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_an_experiment_id_already_in_the_table_is_refused_and_nothing_is_written(tmp_path):
    path = write_table(tmp_path / "shop")
    before = path.read_bytes()
    message = refused_add(tmp_path, path.parent, experiment_id="EXP-2026-W46-SHOES-FIT", cohort="category=bags")
    assert "EXP-2026-W46-SHOES-FIT is already in" in message
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["experiments.csv"]


def test_a_table_that_already_breaks_the_contract_is_refused_before_adding(tmp_path):
    path = write_table(tmp_path / "shop", rows=[EARLIER[0][:3] + ["ab_test"] + EARLIER[0][4:]])
    assert "breaks the data contract already" in refused_add(tmp_path, path.parent)


# --- open tests on overlapping cohorts ------------------------------------------------------------------

def test_an_open_test_on_the_same_cohort_is_refused_naming_it_its_cohort_and_review_date(tmp_path):
    path = write_table(tmp_path / "shop")
    before = path.read_bytes()
    message = refused_add(tmp_path, path.parent, cohort="category=shoes", start_date=dt.date(2026, 11, 16),
                          review_date=dt.date(2026, 12, 14))
    assert "EXP-2026-W46-SHOES-FIT (cohort category=shoes, review date 2026-11-16, no verdict yet)" in message
    assert "still open on an overlapping cohort" in message and path.read_bytes() == before


@pytest.mark.parametrize("a, b, overlap", [
    ("category=shoes", "category=shoes", True),
    ("category=shoes", "category=shoes;channel=web", True),  # the narrower one is inside the wider
    ("channel=web;category=shoes", "category=shoes", True),
    ("", "category=shoes", True),  # the whole shop overlaps every cohort
    ("category=shoes", "", True),
    ("category=shoes", "category=bags", False),
    ("category=shoes;channel=web", "category=shoes;channel=app", False),
])
def test_cohorts_overlap_when_one_filter_holds_the_others_conditions(a, b, overlap):
    assert cohorts_overlap(a, b) is overlap


def test_an_open_test_on_a_wider_cohort_is_refused(tmp_path):
    path = write_table(tmp_path / "shop", rows=[EARLIER[0][:9] + ["2026-12-21"]])
    message = refused_add(tmp_path, path.parent, cohort="channel=web;category=shoes")
    assert "EXP-2026-W46-SHOES-FIT (cohort category=shoes, review date 2026-12-21" in message


def test_an_open_test_on_a_narrower_cohort_is_refused(tmp_path):
    path = write_table(tmp_path / "shop", rows=[EARLIER[0][:2] + ["category=knitwear;region=north"] + EARLIER[0][3:]])
    assert "cohort category=knitwear;region=north" in refused_add(tmp_path, path.parent, start_date=dt.date(2026, 11, 16))


def test_an_open_test_on_another_cohort_does_not_block(tmp_path):
    path = write_table(tmp_path / "shop", rows=[EARLIER[0][:9] + ["2026-12-21"]])
    assert add(tmp_path, path.parent, cohort="category=knitwear").path == path


@pytest.mark.parametrize("review, verdict, expected", [
    (dt.date(2026, 11, 23), None, True),   # reviewed on the new start: still running
    (dt.date(2026, 11, 16), None, False),  # its review is past, no undecided read: not running any more
    (dt.date(2026, 11, 16), "provisional", True),
    (dt.date(2026, 11, 16), "continue", True),
    (dt.date(2026, 11, 16), "keep", False),
])
def test_a_test_is_open_while_its_review_is_ahead_or_its_latest_read_is_undecided(review, verdict, expected):
    e = Experiment("E", "category=shoes", dt.date(2026, 11, 9), review)
    assert handoff.is_open(e, dt.date(2026, 11, 23), verdict) is expected


def test_a_closed_test_is_not_open_even_with_its_review_ahead():
    e = Experiment("E", "category=shoes", dt.date(2026, 11, 9), dt.date(2026, 12, 21), dt.date(2026, 11, 20), "abandoned")
    assert not handoff.is_open(e, dt.date(2026, 11, 23), "provisional")


def test_a_test_past_its_review_whose_latest_verdict_is_provisional_blocks_its_cohort(tmp_path):
    path = write_table(tmp_path / "shop")
    journal = journal_with(tmp_path / "journal", ("2026-W47", "EXP-2026-W46-SHOES-FIT", "provisional"))
    message = refused_add(tmp_path, path.parent, journal=journal, cohort="category=shoes")
    assert "review date 2026-11-16, latest verdict provisional" in message


def test_the_latest_verdict_decides_an_earlier_provisional_one_does_not(tmp_path):
    path = write_table(tmp_path / "shop")
    journal = journal_with(tmp_path / "journal", ("2026-W48", "EXP-2026-W46-SHOES-FIT", "keep"),
                           ("2026-W47", "EXP-2026-W46-SHOES-FIT", "provisional"))
    assert handoff.latest_verdicts(journal) == {"EXP-2026-W46-SHOES-FIT": "keep"}
    assert add(tmp_path, path.parent, journal=journal, cohort="category=shoes").path == path


def test_a_closed_test_does_not_block_its_cohort(tmp_path):
    path = write_table(tmp_path / "shop", header=HEADER + ["closed_on", "closed_reason"],
                       rows=[EARLIER[0][:9] + ["2026-12-21", "2026-11-20", "abandoned"]])
    assert add(tmp_path, path.parent, cohort="category=shoes").path == path


def test_a_later_start_clears_a_test_whose_review_comes_before_it(tmp_path):
    path = write_table(tmp_path / "shop", rows=[EARLIER[0][:9] + ["2026-11-30"]])
    refused_add(tmp_path, path.parent, cohort="category=shoes")
    result = add(tmp_path, path.parent, start=dt.date(2026, 12, 7), cohort="category=shoes")
    assert "Start 2026-12-07, review 2027-02-01." in result.message


# --- the command --------------------------------------------------------------------------------------

def test_a_refused_add_exits_2_with_the_reason(tmp_path, capsys):
    path = write_table(tmp_path / "shop")
    code = cli.main(["experiments", "add", str(tmp_path / "nowhere.csv"), str(path.parent)])
    assert code == 2 and capsys.readouterr().err.startswith("Cannot add the plan: plan file not found")


def test_a_database_source_gets_the_insert_statement_and_nothing_is_written(tmp_path, capsys):
    plan = write_plan(tmp_path, lever="size guide 'v2'", control_cohort="")
    code = cli.main(["experiments", "add", str(plan), "postgresql://analyst@db.example.com/shop",
                     "--start", "2026-11-30"])
    out, err = capsys.readouterr()
    assert code == 0 and "never writes to a database source" in out and "nothing written" in err
    assert 'INSERT INTO "experiments" ("experiment_id", "lever", "cohort", "design", "control_cohort",' in out
    assert (f"VALUES ('{PLAN_ID}', 'size guide ''v2''', 'category=knitwear', 'pre_post', NULL, 'return_rate_14d', "
            "-0.04, -0.017, '2026-11-30', '2027-01-25', '2026-W32', '2026-W43', '2026-W46', 4, 1250.0);") in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments_plan.csv"]


@pytest.mark.parametrize("value, literal", [
    (None, "NULL"), (4, "4"), (-0.017, "-0.017"), (dt.date(2026, 11, 23), "'2026-11-23'"),
    ("O'Brien", "'O''Brien'"), ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")'"),
])
def test_sql_literals_are_quoted_text_plain_numbers_or_null(value, literal):
    assert handoff.sql_literal(value) == literal


def test_sql_identifiers_are_double_quoted():
    assert handoff.sql_identifier('odd"name') == '"odd""name"'


# --- closing a test --------------------------------------------------------------------------------------

def test_closing_a_test_sets_its_date_and_reason_adds_the_columns_and_the_sample_shop_stays_valid(sample_copy, capsys):
    code = cli.main(["experiments", "close", "EXP-2026-W46-SHOES-FIT", str(sample_copy), "--reason",
                     "overdue: never read", "--on", "2026-11-30"])
    assert code == 0 and "Closed EXP-2026-W46-SHOES-FIT on 2026-11-30" in capsys.readouterr().out
    assert cli.main(["validate", str(sample_copy)]) == 0
    by_id = {r["experiment_id"]: r for r in rows(sample_copy / "experiments.csv.gz")}
    assert (str(by_id["EXP-2026-W46-SHOES-FIT"]["closed_on"]), by_id["EXP-2026-W46-SHOES-FIT"]["closed_reason"]) == (
        "2026-11-30", "overdue: never read")
    assert by_id["EXP-2026-W41-DRESSES-PHOTOS"]["closed_on"] is None


def test_closing_changes_only_that_record_when_the_columns_exist(tmp_path):
    path = write_table(tmp_path / "shop", header=HEADER + ["closed_on", "closed_reason"], rows=[r + ["", ""] for r in EARLIER])
    before = path.read_text().splitlines()
    handoff.close_experiment("EXP-2026-W46-OUTERWEAR-PROMO", path.parent, "abandoned", dt.date(2026, 11, 20))
    after = path.read_text().splitlines()
    assert after[:2] == before[:2] and after[2] == before[2][:-2] + ",2026-11-20,abandoned"


def test_closing_defaults_to_today(tmp_path):
    path = write_table(tmp_path / "shop")
    handoff.close_experiment("EXP-2026-W46-SHOES-FIT", path.parent, "abandoned")
    assert path.read_text().splitlines()[1].endswith(f",{dt.date.today()},abandoned")


def test_a_formula_like_reason_is_quoted_in_a_csv_table(tmp_path):
    path = write_table(tmp_path / "shop")
    handoff.close_experiment("EXP-2026-W46-SHOES-FIT", path.parent, "=cmd|'/c calc'!A1", dt.date(2026, 11, 30))
    assert path.read_text().splitlines()[1].endswith(",2026-11-30,'=cmd|'/c calc'!A1")


def test_closing_an_unknown_id_is_refused_naming_the_tables_ids(tmp_path):
    path = write_table(tmp_path / "shop")
    before = path.read_bytes()
    code = cli.main(["experiments", "close", "EXP-NOPE", str(path.parent), "--reason", "x", "--on", "2026-11-30"])
    assert code == 2 and path.read_bytes() == before
    with pytest.raises(HandoffError, match="EXP-NOPE is not in .* \\(its experiments: EXP-2026-W46-SHOES-FIT, "):
        handoff.close_experiment("EXP-NOPE", path.parent, "x", dt.date(2026, 11, 30))


def test_closing_a_closed_test_is_refused_with_its_date_and_reason(tmp_path):
    path = write_table(tmp_path / "shop")
    handoff.close_experiment("EXP-2026-W46-SHOES-FIT", path.parent, "abandoned", dt.date(2026, 11, 20))
    with pytest.raises(HandoffError, match=r"already closed: on 2026-11-20 \(abandoned\)"):
        handoff.close_experiment("EXP-2026-W46-SHOES-FIT", path.parent, "again", dt.date(2026, 11, 30))


def test_closing_before_the_start_is_refused(tmp_path):
    path = write_table(tmp_path / "shop")
    with pytest.raises(HandoffError, match="cannot be closed on 2026-11-01: it starts on 2026-11-09"):
        handoff.close_experiment("EXP-2026-W46-SHOES-FIT", path.parent, "abandoned", dt.date(2026, 11, 1))


def test_closing_without_a_reason_is_refused(tmp_path):
    path = write_table(tmp_path / "shop")
    with pytest.raises(HandoffError, match="--reason is empty"):
        handoff.close_experiment("EXP-2026-W46-SHOES-FIT", path.parent, "  ")


def test_closing_in_a_parquet_table_keeps_its_types(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    frame = pd.DataFrame(EARLIER, columns=HEADER).replace("", None)
    frame[["expected_low", "expected_high"]] = frame[["expected_low", "expected_high"]].astype(float)
    frame.to_parquet(folder / "experiments.parquet")
    handoff.close_experiment("EXP-2026-W46-OUTERWEAR-PROMO", folder, "rolled back", dt.date(2026, 11, 20))
    table = pq.read_table(folder / "experiments.parquet")
    assert table.schema.field("closed_on").type == pa.date32() and table.schema.field("expected_low").type == pa.float64()
    assert table.column("closed_on").to_pylist() == [None, dt.date(2026, 11, 20)]
    assert table.column("closed_reason").to_pylist() == [None, "rolled back"]


def test_closing_on_a_database_source_prints_the_update(capsys):
    code = cli.main(["experiments", "close", "EXP-1", "postgresql://analyst@db.example.com/shop", "--reason",
                     "it's overdue", "--on", "2026-11-30"])
    out = capsys.readouterr().out
    assert code == 0 and "never writes to a database source" in out
    assert ('UPDATE "experiments"\nSET "closed_on" = \'2026-11-30\', "closed_reason" = \'it\'\'s overdue\'\n'
            'WHERE "experiment_id" = \'EXP-1\' AND "closed_on" IS NULL;') in out


# --- make ---------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_experiment_add_needs_data_given_and_passes_the_plan_and_start():
    def dry(*args: str):
        return subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    refused = dry("experiment-add", "PLAN=reports/2026-W47/experiments_plan.csv")
    assert refused.returncode != 0 and "give DATA=folder-or-url" in refused.stderr  # never data_samples/ by default
    done = dry("experiment-add", "PLAN=p.csv", "DATA=/srv/shop", "START=2026-11-30")
    # JOURNAL not given: the command's default, the source's own journal (journal/shop/ here)
    assert 'playbook experiments add "p.csv" "/srv/shop" --journal "" --config "" --start "2026-11-30"' in done.stdout
    close = dry("experiment-close", "ID=E1", "DATA=/srv/shop", "REASON=gone")
    assert 'playbook experiments close "E1" "/srv/shop" --reason "gone"' in close.stdout


# --- extend: a later review date, re-planned, before the review --------------------------------------------

def _jeans(folder: Path) -> dict:
    (row,) = [r for r in rows(folder / "experiments.csv.gz") if r["experiment_id"] == "EXP-2026-W45-JEANS-FIT-PHOTOS"]
    return row


def test_an_extension_moves_the_review_date_and_keeps_the_first_plan_beside_it(sample_copy, tmp_path):
    result = handoff.extend_experiment("EXP-2026-W45-JEANS-FIT-PHOTOS", sample_copy, dt.date(2026, 12, 14),
                                       journal_dir=tmp_path / "journal")
    row = _jeans(sample_copy)
    assert str(row["review_date"]) == "2026-12-14" and str(row["original_review_date"]) == "2026-11-30"
    # steady inflow: 42 days of exposure instead of 28, so 1.5 times the information
    assert row["planned_information"] == pytest.approx(393 * 42 / 28, abs=0.1)
    assert row["original_planned_information"] == pytest.approx(393.0)
    assert "review on 2026-12-14 (was 2026-11-30)" in result.message
    assert cli.main(["validate", str(sample_copy)]) == 0


def test_a_test_read_at_its_review_date_cannot_be_extended(sample_copy, tmp_path):
    journal = journal_with(tmp_path / "journal", ("2026-W49", "EXP-2026-W45-JEANS-FIT-PHOTOS", "adjust"))
    before = (sample_copy / "experiments.csv.gz").read_bytes()
    with pytest.raises(handoff.HandoffError, match="spent what was left of its alpha"):
        handoff.extend_experiment("EXP-2026-W45-JEANS-FIT-PHOTOS", sample_copy, dt.date(2026, 12, 14),
                                  journal_dir=journal)
    assert (sample_copy / "experiments.csv.gz").read_bytes() == before


def test_an_extension_must_move_the_review_later(sample_copy, tmp_path):
    with pytest.raises(handoff.HandoffError, match="must come after its review date"):
        handoff.extend_experiment("EXP-2026-W45-JEANS-FIT-PHOTOS", sample_copy, dt.date(2026, 11, 23),
                                  journal_dir=tmp_path / "journal")
