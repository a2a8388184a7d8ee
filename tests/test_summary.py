"""summary.json: every section is a typed model written and read through playbook.report.summary, and
docs/summary.schema.json is the schema those models generate."""
from __future__ import annotations

import dataclasses
import json

import pytest
import section_examples as examples
from conftest import REPO_ROOT

from playbook.core.jsonmodel import FieldError, from_json, to_json
from playbook.report import summary
from playbook.stats.results import jsonable

SCHEMA_FILE = REPO_ROOT / "docs" / "summary.schema.json"
#: what the run writes itself, beside the notebooks' sections (choices: the analyst's parameters file)
IDENTITY = ("schema_version", "week", "data_source", "as_of", "choices")


def test_the_examples_cover_every_section_of_the_summary():
    assert set(examples.summary()) == set(IDENTITY) | set(summary.SECTIONS)
    assert {f.name for f in dataclasses.fields(summary.Summary) if f.metadata.get("json", True)} == \
        set(IDENTITY) | set(summary.SECTIONS)


@pytest.mark.parametrize("name", sorted(summary.SECTIONS))
def test_a_section_read_from_json_writes_the_same_json_back(name):
    written = examples.summary()[name]
    model = summary.read_section_value(name, written)
    assert jsonable(to_json(model)) == written


@pytest.mark.parametrize("name", sorted(summary.SECTIONS))
def test_a_section_model_survives_the_round_trip_through_json(name):
    model = summary.read_section_value(name, examples.summary()[name])
    again = summary.read_section_value(name, json.loads(json.dumps(jsonable(to_json(model)))))
    assert again == model


def test_a_primary_metric_without_a_window_read_writes_no_window_keys():
    entry = examples.comparison()
    assert "k_registered" not in jsonable(to_json(summary.read_section_value("comparisons", [entry])[0]))["primary"]
    entry["primary"].update(k_registered=14, k_read=None, readable=False, readable_on="2026-12-06", window_why="w")
    back = jsonable(to_json(summary.read_section_value("comparisons", [entry])[0]))["primary"]
    assert (back["k_read"], back["readable_on"]) == (None, "2026-12-06")  # a null k_read stays written


def test_a_whole_summary_reads_and_writes_back_unchanged():
    written = examples.summary()
    assert summary.Summary.from_json(written).to_json() == written


def test_reading_a_section_with_a_missing_field_fails_naming_the_section_and_the_field(tmp_path):
    weak = examples.weak_cohort()
    del weak["expected_rate"]  # as if notebook 02 had renamed it
    summary.summary_path(tmp_path).write_text(json.dumps({"weak_cohort": weak}))
    with pytest.raises(FieldError, match="weak_cohort has no field 'expected_rate'"):
        summary.require_section(tmp_path, "weak_cohort", "02_weak_cohort")


def test_a_nested_missing_field_is_named_with_its_path():
    lever = examples.lever()
    del lever["options"][0]["weeks_uncapped"]
    with pytest.raises(FieldError, match=r"lever\.options\[0\] has no field 'weeks_uncapped'"):
        summary.read_section_value("lever", lever)


def test_a_renamed_field_fails_when_the_section_is_written(tmp_path):
    entry = examples.next_action()
    entry["lever"] = entry.pop("action")
    with pytest.raises(FieldError, match="next_action has unknown field"):
        summary.update_summary(tmp_path, next_action=entry)
    assert not summary.summary_path(tmp_path).exists()


def test_a_wrong_type_fails_naming_the_field():
    with pytest.raises(FieldError, match=r"weak_cohort\.units is 'many'"):
        summary.read_section_value("weak_cohort", examples.weak_cohort(units="many"))


def test_a_missing_section_names_the_notebook_to_run(tmp_path):
    summary.update_summary(tmp_path, week="2026-W47")
    with pytest.raises(LookupError, match="run 02_weak_cohort"):
        summary.require_section(tmp_path, "weak_cohort", "02_weak_cohort")


def test_a_section_written_as_null_reads_as_none(tmp_path):
    summary.update_summary(tmp_path, weak_cohort=None)
    assert summary.require_section(tmp_path, "weak_cohort", "02_weak_cohort") is None
    assert "weak_cohort" in summary.load_summary(tmp_path).present


def test_written_sections_come_back_as_their_models_with_the_schema_version_first(tmp_path):
    model = summary.read_section_value("lever", examples.lever())
    summary.update_summary(tmp_path, week="2026-W47", lever=model)
    summary.update_summary(tmp_path, overdue=summary.read_section_value("overdue", [examples.overdue()]))
    raw = json.loads(summary.summary_path(tmp_path).read_text())
    assert list(raw) == ["schema_version", "week", "lever", "overdue"]
    assert raw["schema_version"] == summary.SCHEMA_VERSION
    assert summary.read_section(tmp_path, "lever") == model


def test_the_schema_in_docs_is_the_one_the_models_generate():
    """Regenerate with `make docs/summary.schema.json` (python -m playbook.report.summary) when this fails."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == summary.schema_text()


def test_a_whole_summary_validates_against_the_schema_in_docs():
    jsonschema = pytest.importorskip("jsonschema")  # installed with nbformat
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(examples.summary(), schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_rejects_a_summary_with_a_missing_field():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    broken = examples.summary()
    del broken["review"][0]["decision"]
    with pytest.raises(jsonschema.ValidationError, match="'decision' is a required property"):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_dates_are_read_as_dates_and_written_as_iso_strings():
    lever = summary.read_section_value("lever", examples.lever())
    assert lever.review_date.isoformat() == "2027-01-11"
    assert to_json(lever)["review_date"] == "2027-01-11"
    assert from_json(type(lever), to_json(lever), "lever") == lever
