"""The week's ``summary.json``: one typed section per notebook, written and read through this module.

Every notebook of the cycle adds its own sections (``baseline``, ``weak_cohort``, ``lever``,
``comparisons``, ``review``, ``next_action``...), so the file is the machine-readable result of
the week and the way later notebooks read what earlier ones found. Each section is a frozen
dataclass (declared next to the step that builds it); :data:`SECTIONS` lists them, and
``playbook.core.jsonmodel`` is the one (de)serialiser: a section is checked against its model when it
is written and read back as that model, so a renamed field fails loudly where it is read.

``python -m playbook.report.summary`` prints the JSON Schema of summary.json (``docs/summary.schema.json``,
for the people who load the file elsewhere, such as BI tools).
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from playbook.core.atomic import exclusive_lock, write_json
from playbook.core.jsonmodel import NOT_IN_JSON, OMIT_IF_NONE, FieldError, from_json, json_schema, to_json
from playbook.core.step import CYCLE
from playbook.journal.track_record import TrackRecordSection
from playbook.stats.results import jsonable
from playbook.steps.baseline import BaselineSection, DataQualitySection
from playbook.steps.cohorts import CandidateEntry, SetAsideEntry, WeakCohortSection
from playbook.steps.experiments import ComparisonSection, OverdueEntry, RunningEntry
from playbook.steps.levers import LeverSection
from playbook.steps.review import NextAction, ReviewEntry

SUMMARY_NAME = "summary.json"
#: bumped when a section's fields change in a way a reader of an older file must know about
SCHEMA_VERSION = 1
#: seconds a write waits for another notebook's write of the same summary (each takes milliseconds)
LOCK_WAIT = 60.0


@dataclass(frozen=True)
class ChoiceEntry:
    """A parameter the analyst set for the run (``make weekly PARAMS=choices.yaml``), with the notebook's
    default (as written in its parameters cell) and the notebooks it reached."""

    name: str
    value: str | float | int | bool | None
    default: str
    notebooks: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    """The week's summary.json: the run's identity, then one section per step.

    A section absent from the file (its notebook has not run) reads as None and is not in
    ``present``; ``weak_cohort`` and ``lever`` are written as null when no cohort stands out
    (``present`` tells the two apart).
    """

    schema_version: int | None = field(default=None, metadata=OMIT_IF_NONE)
    week: str | None = field(default=None, metadata=OMIT_IF_NONE)
    data_source: str | None = field(default=None, metadata=OMIT_IF_NONE)
    as_of: str | None = field(default=None, metadata=OMIT_IF_NONE)
    choices: tuple[ChoiceEntry, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    baseline: BaselineSection | None = field(default=None, metadata=OMIT_IF_NONE)
    data_quality: DataQualitySection | None = field(default=None, metadata=OMIT_IF_NONE)
    weak_cohort: WeakCohortSection | None = field(default=None, metadata=OMIT_IF_NONE)
    weak_cohort_candidates: tuple[CandidateEntry, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    weak_cohort_set_aside: tuple[SetAsideEntry, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    lever: LeverSection | None = field(default=None, metadata=OMIT_IF_NONE)
    comparisons: tuple[ComparisonSection, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    review: tuple[ReviewEntry, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    next_action: NextAction | None = field(default=None, metadata=OMIT_IF_NONE)
    track_record: TrackRecordSection | None = field(default=None, metadata=OMIT_IF_NONE)
    overdue: tuple[OverdueEntry, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    running: tuple[RunningEntry, ...] | None = field(default=None, metadata=OMIT_IF_NONE)
    #: the top-level keys found in the file (not itself in the JSON)
    present: frozenset[str] = field(default=frozenset(), metadata=NOT_IN_JSON)

    def to_json(self) -> dict[str, Any]:
        """The summary as written: the keys read from the file (``present``) and every section set."""
        return jsonable(_ordered({f.name: to_json(getattr(self, f.name)) for f in _section_fields()
                                  if f.name in self.present or getattr(self, f.name) is not None}))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        """The summary read from parsed JSON; a section that does not match its model raises FieldError."""
        if not isinstance(data, dict):
            raise FieldError(f"{SUMMARY_NAME} is {type(data).__name__}, expected an object")
        known = {f.name for f in _section_fields()}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FieldError(f"{SUMMARY_NAME} has unknown section(s) {', '.join(unknown)}")
        values = {name: read_section_value(name, value) for name, value in data.items()}
        return cls(**values, present=frozenset(data))


def _section_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Summary) if f.metadata.get("json", True)]


#: the type of every top-level key of the file
_TYPES = {f.name: typing.get_type_hints(Summary)[f.name] for f in _section_fields()}


#: the sections and the notebook that writes each (the identity keys are written by every notebook), from the
#: cycle's declarations (``core.step.CYCLE``)
SECTIONS: dict[str, str] = {name: step.notebook for step in CYCLE for name in step.writes}


def read_section_value(name: str, value: Any) -> Any:
    """Parsed JSON ``value`` of section ``name`` as its model (FieldError naming the section and field)."""
    if name not in _TYPES:
        raise FieldError(f"{SUMMARY_NAME} has no section '{name}' in its schema (known: {', '.join(_TYPES)})")
    return from_json(_TYPES[name], value, name)


def _ordered(summary: dict[str, Any]) -> dict[str, Any]:
    """``schema_version`` first, the other keys in the order they were written."""
    return {"schema_version": SCHEMA_VERSION, **{k: v for k, v in summary.items() if k != "schema_version"}}


def summary_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / SUMMARY_NAME


def _lock_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / f".{SUMMARY_NAME}.lock"


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The raw JSON of the week's summary (an empty dict when no notebook has written it yet)."""
    path = summary_path(run_dir)
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def load_summary(run_dir: str | os.PathLike) -> Summary:
    """The week's summary as typed sections; a section that does not match its model raises FieldError."""
    return Summary.from_json(read_summary(run_dir))


def update_summary(run_dir: str | os.PathLike, **sections: Any) -> dict[str, Any]:
    """Set top-level sections of the summary (other sections are kept) and write it atomically.

    Each value is a section model (or a list of them, or None); a plain dict is accepted only if it
    reads as its model, so what is written always matches ``docs/summary.schema.json``.
    """
    written = {}
    for name, value in sections.items():
        data = jsonable(to_json(value))
        read_section_value(name, data)  # the written JSON must read back as the section's model
        written[name] = data
    # notebooks of one run may write at the same time (the weekly runner runs independent steps together):
    # one read-modify-write at a time, or a section written by one would be lost by the other's write
    with exclusive_lock(_lock_path(run_dir), what=f"a write of {SUMMARY_NAME}", wait=LOCK_WAIT):
        summary = _ordered({**read_summary(run_dir), **written})
        write_json(summary_path(run_dir), summary)
    return summary


def in_cycle_order(run_dir: str | os.PathLike, notebooks: Sequence[str]) -> None:
    """Put the sections of ``run_dir``'s summary.json in the order a sequential run of ``notebooks`` writes them.

    The file keeps its keys in the order they were written; notebooks that ran at the same time wrote
    theirs in the order they finished. The run's identity and choices stay first (every run writes them
    before any section), then each notebook's sections (:data:`SECTIONS`) in the order of ``notebooks``,
    keeping the order in which that notebook wrote them. Also removes the lock file of the writes: the
    run's notebooks have ended.
    """
    summary = read_summary(run_dir)
    rank = {stem: i for i, stem in enumerate(notebooks)}

    def place(key: str) -> tuple[int, int]:
        producer = SECTIONS.get(key)
        return (1, rank[producer]) if producer in rank else (0, 0)

    ordered = dict(sorted(summary.items(), key=lambda item: place(item[0])))  # sorted() is stable
    if list(ordered) != list(summary):
        write_json(summary_path(run_dir), _ordered(ordered))
    _lock_path(run_dir).unlink(missing_ok=True)


def read_section(run_dir: str | os.PathLike, name: str) -> Any:
    """Section ``name`` as its model; None when absent (its notebook has not run) or written as null."""
    value = read_summary(run_dir).get(name)
    return None if value is None else read_section_value(name, value)


def require_section(run_dir: str | os.PathLike, name: str, producer: str | None = None) -> Any:
    """A section written by an earlier notebook, as its model; a clear error when that notebook has not run.

    ``producer``: the notebook to name in that error (default: the one :data:`SECTIONS` lists).
    """
    summary = read_summary(run_dir)
    if name not in summary:
        raise LookupError(
            f"{summary_path(run_dir)} has no '{name}' section: run {producer or SECTIONS.get(name, 'its notebook')} "
            "for this week first"
        )
    return None if summary[name] is None else read_section_value(name, summary[name])


def json_schema_document() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of summary.json, generated from the section models."""
    defs: dict[str, Any] = {}
    root = json_schema(Summary, defs)["$ref"].rsplit("/", 1)[-1]
    body = defs.pop(root)
    body["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Returns playbook weekly summary.json",
        **body,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """The schema as written to ``docs/summary.schema.json`` (stable key order, trailing newline)."""
    return json.dumps(json_schema_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
