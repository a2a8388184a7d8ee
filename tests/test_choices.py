"""The analyst's choices (``make weekly PARAMS=choices.yaml``): checked, passed on, said in the report, journaled."""
from __future__ import annotations

import json

import pytest
from test_weekly_runner import PARAMS, make_notebook

from playbook.journal.entry import JournalEntry
from playbook.run.choices import ChoicesError, read_choices, resolve_choices
from playbook.run.weekly import COMMON_PARAMETERS, run_week

LEVER_STEP = (
    "from pathlib import Path\n"
    "from playbook.report.summary import update_summary\n"
    "update_summary(run_dir, week=week)\n"
    "Path(run_dir, 'seen.txt').write_text(f'{lever}|{design}')\n"
)


@pytest.fixture
def notebooks(tmp_path):
    step = make_notebook(tmp_path / "03_lever.ipynb", LEVER_STEP, PARAMS + 'lever = ""\ndesign = "randomized"\n')
    other = make_notebook(tmp_path / "04_other.ipynb", "print(week)")
    return [step, other]


def test_a_choice_no_notebook_declares_stops_the_run_naming_the_known_ones(notebooks):
    with pytest.raises(ChoicesError, match=r"'levr' is not a parameter of any notebook; choices: design, lever"):
        resolve_choices({"levr": "size_guide"}, notebooks, COMMON_PARAMETERS)


def test_the_runs_own_parameters_are_not_choices(notebooks):
    with pytest.raises(ChoicesError, match=r"'week' is set by the run itself \(its option --week\)"):
        resolve_choices({"week": "2026-W40"}, notebooks, COMMON_PARAMETERS)


def test_a_parameters_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "choices.yaml"
    path.write_text("- lever\n- design\n", encoding="utf-8")
    with pytest.raises(ChoicesError, match="expected a mapping of parameter names to values"):
        read_choices(path)


def test_a_choice_reaches_the_notebooks_that_declare_it_and_the_top_of_the_report(tiny_shop, tmp_path, notebooks):
    path = tmp_path / "choices.yaml"
    path.write_text("lever: size_guide\ndesign: pre_post\n", encoding="utf-8")
    report = run_week("2026-W46", tiny_shop, tmp_path / "reports", journal=tmp_path / "j", notebooks=notebooks,
                      choices=read_choices(path))
    assert (report / "seen.txt").read_text() == "size_guide|pre_post"
    chosen = {c["name"]: c for c in json.loads((report / "summary.json").read_text())["choices"]}
    assert chosen["lever"] == {"name": "lever", "value": "size_guide", "default": '""', "notebooks": ["03_lever"]}
    index = (report / "index.html").read_text(encoding="utf-8")
    assert "Chosen by the analyst for this run:</b>" in index and "lever = size_guide instead of the default" in index


def test_a_plan_records_the_analysts_choices_in_the_journal():
    entry = JournalEntry("2026-W47", "plan", "EXP-1", lever="size_guide", chosen_by_analyst="lever=size_guide")
    assert entry.to_dict()["chosen_by_analyst"] == "lever=size_guide"
