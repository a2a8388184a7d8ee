"""Which notebook waits for which: the cycle's declarations, checked against the notebooks' own text."""
from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import nbformat
import pytest
import section_examples as examples
from nbformat.v4 import new_code_cell, new_notebook

from playbook.core.paths import NOTEBOOKS_DIR
from playbook.core.step import CYCLE, step_io
from playbook.report import summary
from playbook.run.graph import JOBS_ENV, cores, describe, jobs_from_env, step_graph
from playbook.run.kernels import warm_code, warm_imports
from playbook.run.weekly import cycle_notebooks

#: how a notebook reads what other notebooks left in the run folder (every other way is refused below)
READ_CALLS = re.compile(r"\b(require_section|read_section|load_summary|read_summary|track_record_with_staged)\(")


def text_of(stem: str) -> str:
    return (NOTEBOOKS_DIR / f"{stem}.py").read_text(encoding="utf-8")


def reads_in_text(text: str) -> set[str]:
    """The summary sections a notebook's text reads: named in require/read_section, or attributes of the
    summary it loads (``week_summary = summary.load_summary(run.run_dir)``)."""
    found = set(re.findall(r"(?:require_section|read_section)\(run\.run_dir, \"(\w+)\"", text))
    loaded = re.findall(r"(\w+) = summary\.load_summary\(run\.run_dir\)", text)
    for name in loaded:
        found |= set(re.findall(rf"\b{name}\.(\w+)", text))
    return found


@pytest.mark.parametrize("io", CYCLE, ids=lambda io: io.notebook)
def test_each_notebook_declares_exactly_the_sections_and_staged_entries_its_text_reads(io):
    text = text_of(io.notebook)
    calls = READ_CALLS.findall(text)
    recognised = (len(re.findall(r"(?:require_section|read_section)\(run\.run_dir, \"\w+\"", text))
                  + len(re.findall(r"\w+ = summary\.load_summary\(run\.run_dir\)", text))
                  + text.count("track_record_with_staged(run.journal_dir, run.week, run.run_dir)"))
    assert len(calls) == recognised, f"{io.notebook} reads the run folder in a way this test does not know: {calls}"
    assert reads_in_text(text) == set(io.reads)
    staged_by_others = {kind for other in CYCLE if other is not io for kind in other.stages}
    expected_staged = staged_by_others if "track_record_with_staged(" in text else set()
    assert set(io.reads_staged) == expected_staged
    assert set(re.findall(r"decision_journal\.stage\(.*kind=\"(\w+)\"\)", text)) == set(io.stages)


def test_every_section_has_one_writer_and_every_read_is_written_by_an_earlier_notebook():
    writers = [name for io in CYCLE for name in io.writes]
    assert len(writers) == len(set(writers)) and set(writers) == set(summary.SECTIONS)
    for i, io in enumerate(CYCLE):
        earlier = {name for other in CYCLE[:i] for name in other.writes}
        staged = {kind for other in CYCLE[:i] for kind in other.stages}
        assert set(io.reads) <= earlier and set(io.reads_staged) <= staged, io.notebook


def test_the_cycle_is_declared_for_exactly_the_numbered_notebooks():
    assert [io.notebook for io in CYCLE] == [p.stem for p in cycle_notebooks()]


def test_steps_1_2_and_4_run_at_once_3_after_2_and_5_after_all_the_others():
    graph = {node.stem: set(node.after) for node in step_graph(cycle_notebooks())}
    assert graph == {
        "01_baseline": set(), "02_weak_cohort": set(), "04_comparison": set(),
        "03_lever_design": {"02_weak_cohort"},
        # 05 reads the baseline (01), the cohort (02), the lever and its staged plan (03), the comparisons (04)
        "05_j7_review": {"01_baseline", "02_weak_cohort", "03_lever_design", "04_comparison"},
    }
    assert describe(step_graph(cycle_notebooks())) == (
        "01_baseline, 02_weak_cohort, 04_comparison at once; 03_lever_design after 02_weak_cohort; "
        "05_j7_review after 01_baseline, 02_weak_cohort, 03_lever_design, 04_comparison")


def test_a_notebook_the_cycle_does_not_declare_waits_for_every_earlier_one_and_every_later_one_waits_for_it():
    paths = [Path(f"/x/{stem}.ipynb") for stem in ("01_baseline", "01b_team_step", "02_weak_cohort", "04_comparison")]
    graph = {node.stem: node.after for node in step_graph(paths)}
    assert step_io("01b_team_step") is None
    assert graph == {"01_baseline": (), "01b_team_step": ("01_baseline",), "02_weak_cohort": ("01b_team_step",),
                     "04_comparison": ("01b_team_step",)}
    assert [node.number for node in step_graph(paths)] == [1, 2, 3, 4]


def test_a_read_of_a_section_written_later_in_the_order_is_refused_naming_both():
    paths = [Path("/x/03_lever_design.ipynb"), Path("/x/02_weak_cohort.ipynb")]
    with pytest.raises(ValueError, match=r"03_lever_design.ipynb reads weak_cohort, weak_cohort_candidates, which "
                                         r"02_weak_cohort.ipynb writes after it"):
        step_graph(paths)


def test_a_notebook_run_without_the_notebooks_it_reads_from_waits_for_nothing():
    assert [node.after for node in step_graph([Path("/x/03_lever_design.ipynb")])] == [()]


@pytest.mark.parametrize(("value", "jobs"), [("1", 1), ("3", 3), (" 2 ", 2), ("", None)])
def test_playbook_jobs_is_the_number_of_notebooks_at_once_and_defaults_to_the_cores(value, jobs):
    assert jobs_from_env({JOBS_ENV: value}) == (jobs or cores())
    assert jobs_from_env({}) == cores() >= 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_playbook_jobs_that_is_not_a_positive_whole_number_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=rf"{JOBS_ENV}='{re.escape(value)}': give a whole number"):
        jobs_from_env({JOBS_ENV: value})


def test_the_warm_up_imports_the_modules_of_every_code_cell_in_order(tmp_path):
    nb = new_notebook()
    nb.cells = [new_code_cell("week = ''"), new_code_cell("import json, os.path as p\nfrom pathlib import Path, PurePath"),
                new_code_cell("%matplotlib inline"), new_code_cell("def f():\n    import csv\nfrom . import x\nimport json")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    # a function's own import is not run ahead; a relative import has no module to name; a magic is not Python
    assert warm_imports(path) == ["json", "os.path", "pathlib", "pathlib.Path", "pathlib.PurePath"]


def test_the_warm_up_binds_no_name_and_survives_a_module_that_does_not_import():
    namespace: dict = {}
    sys.modules.pop("colorsys", None)
    exec(warm_code(["colorsys", "no_such_module_for_the_warm_up"]), namespace)
    assert set(namespace) == {"__builtins__"}
    assert "colorsys" in sys.modules


def test_a_summary_write_waits_for_another_notebooks_write_of_the_same_summary(tmp_path):
    from playbook.core.atomic import exclusive_lock

    with exclusive_lock(summary._lock_path(tmp_path), what="another notebook's write", wait=0):
        writer = threading.Thread(target=summary.update_summary, args=(tmp_path,), kwargs={"week": "2026-W47"})
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive() and not summary.summary_path(tmp_path).exists()
    writer.join(timeout=30)
    assert summary.read_summary(tmp_path) == {"schema_version": summary.SCHEMA_VERSION, "week": "2026-W47"}


def test_sections_written_in_the_order_notebooks_finished_are_put_in_the_sequential_order(tmp_path):
    identity = {"week": "2026-W47", "data_source": "shop", "as_of": "2026-11-22 23:59:59"}
    summary.update_summary(tmp_path, choices=[examples.choice()])  # the runner writes them before any notebook
    # step 4 ended first, then step 2, then step 1 (each notebook writes the run's identity, then its sections)
    summary.update_summary(tmp_path, **identity, comparisons=[], overdue=[examples.overdue()], running=[])
    summary.update_summary(tmp_path, **identity, weak_cohort=examples.weak_cohort(),
                           weak_cohort_candidates=[examples.candidate()], weak_cohort_set_aside=[])
    summary.update_summary(tmp_path, **identity, baseline=examples.baseline(), data_quality=examples.data_quality())
    written = summary.read_summary(tmp_path)
    summary.in_cycle_order(tmp_path, ["01_baseline", "02_weak_cohort", "04_comparison"])
    ordered = summary.read_summary(tmp_path)
    assert list(ordered) == ["schema_version", "choices", "week", "data_source", "as_of", "baseline", "data_quality",
                             "weak_cohort", "weak_cohort_candidates", "weak_cohort_set_aside", "comparisons",
                             "overdue", "running"]
    assert ordered == written  # the same sections, only their order changed
    assert not summary._lock_path(tmp_path).exists()  # the writes' lock file does not travel with the report
