"""A run whose independent notebooks run at the same time writes the report and the journal of a sequential run.

The session's sample week (``conftest.sample_week``) ran two notebooks at once; this module renders the
same week with ``jobs=1`` and compares every word and number of summary.json, the journal and the pages.

What may differ between any two runs, and is left out of the comparison (the only things left out):

* the journal's ``recorded_at`` (the time the run recorded its entries);
* the ids pandas draws for each styled table of a page (``<table id="T_1a2b3">``, random per render);
* the last digits of a float: each run stores its own snapshot of the week, whose rows DuckDB writes
  with several threads, so a sum of floats is added in another order (seen: 88.73384317823061 and
  88.7338431782307 for the same metric, between two sequential runs). Floats are compared to a relative
  1e-9; text, integers, booleans, the order of keys and of list items exactly.
"""
from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from conftest import render_sample_week

#: the journal's columns that say when the run wrote, not what it found
RUN_COLUMNS = ("recorded_at",)
#: pandas Styler's per-render table id (``pandas.io.formats.style.Styler``, uuid)
STYLER_ID = re.compile(r"T_[0-9a-f]{5}")
FLOAT_REL = 1e-9


@pytest.fixture(scope="module")
def sequential_week(tmp_path_factory) -> dict:
    return render_sample_week(tmp_path_factory.mktemp("sequential_week"), jobs=1)


def differences(a, b, where: str = "") -> list[str]:
    """Every place where ``a`` and ``b`` (parsed JSON, or CSV cells) differ in a word, a number or an order."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} != {list(b)}"]
        return [d for key in a for d in differences(a[key], b[key], f"{where}/{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = math.isclose(a, b, rel_tol=FLOAT_REL) or (math.isnan(a) and math.isnan(b))
        return [] if same else [f"{where}: {a!r} != {b!r}"]
    return [] if (type(a), a) == (type(b), b) else [f"{where}: {a!r} != {b!r}"]


def test_the_comparison_sees_a_changed_word_a_changed_number_and_a_changed_order():
    base = {"a": 1, "b": [{"x": 0.5, "y": "keep"}]}
    assert differences(base, {"a": 1, "b": [{"x": 0.5 * (1 + 1e-12), "y": "keep"}]}) == []
    assert differences(base, {"a": 1, "b": [{"x": 0.5, "y": "stop"}]}) == ["/b[0]/y: 'keep' != 'stop'"]
    assert differences(base, {"a": 1, "b": [{"x": 0.5001, "y": "keep"}]}) == ["/b[0]/x: 0.5 != 0.5001"]
    assert differences(base, {"b": base["b"], "a": 1}) == [": keys ['a', 'b'] != ['b', 'a']"]
    assert differences(base, {"a": 1.0, "b": base["b"]}) == ["/a: 1 != 1.0"]


def test_the_parallel_run_ran_independent_notebooks_at_the_same_time(sample_week):
    log = sample_week["log"]
    start = {m.group(1): i for i, line in enumerate(log) if (m := re.fullmatch(r"\[\d/5\] (\w+) \.\.\.", line))}
    end = {m.group(1): i for i, line in enumerate(log) if (m := re.fullmatch(r"\[\d/5\] (\w+) ok \(.*\)", line))}
    assert set(start) == set(end) == {"01_baseline", "02_weak_cohort", "03_lever_design", "04_comparison",
                                      "05_j7_review"}
    # steps 1 and 2 read nothing from each other: both started before either ended
    assert max(start["01_baseline"], start["02_weak_cohort"]) < min(end["01_baseline"], end["02_weak_cohort"])
    # step 3 reads step 2's cohort; step 5 reads the sections of steps 1 to 4
    assert start["03_lever_design"] > end["02_weak_cohort"]
    assert start["05_j7_review"] > max(end[s] for s in ("01_baseline", "02_weak_cohort", "03_lever_design",
                                                        "04_comparison"))


def test_the_sequential_run_runs_the_notebooks_one_after_the_other_in_their_order(sequential_week):
    steps = [line for line in sequential_week["log"] if re.fullmatch(r"\[\d/5\] \w+ (\.\.\.|ok \(.*\))", line)]
    assert [line.split(" ")[1] + (" ..." if line.endswith("...") else " ok") for line in steps] == [
        f"{stem} {what}" for stem in ("01_baseline", "02_weak_cohort", "03_lever_design", "04_comparison",
                                      "05_j7_review") for what in ("...", "ok")]


def test_summary_json_is_that_of_the_sequential_run(sample_week, sequential_week):
    assert differences(sequential_week["summary"], sample_week["summary"]) == []


def test_the_journal_is_that_of_the_sequential_run(sample_week, sequential_week):
    sequential = sequential_week["journal_after"].drop(columns=list(RUN_COLUMNS))
    parallel = sample_week["journal_after"].drop(columns=list(RUN_COLUMNS))
    assert list(parallel.columns) == list(sequential.columns)
    assert differences(rows(sequential), rows(parallel)) == []


def rows(frame) -> list[list]:
    """The journal's rows as lists of cells, an empty cell (NaN, NA) as None."""
    return [[None if pd.isna(cell) else cell for cell in row] for row in frame.itertuples(index=False)]


def test_the_pages_are_those_of_the_sequential_run(sample_week, sequential_week):
    pages = sorted(p.relative_to(sequential_week["report"]) for p in sequential_week["report"].rglob("*.html"))
    assert pages == sorted(p.relative_to(sample_week["report"]) for p in sample_week["report"].rglob("*.html"))
    assert len(pages) > 10
    changed = [str(page) for page in pages
               if STYLER_ID.sub("T_", (sequential_week["report"] / page).read_text(encoding="utf-8"))
               != STYLER_ID.sub("T_", (sample_week["report"] / page).read_text(encoding="utf-8"))]
    assert changed == []
