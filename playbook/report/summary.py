"""The week's ``summary.json``: one section per notebook, written atomically.

Every notebook of the cycle adds its own section (``baseline``, ``weak_cohort``, ``lever``,
``comparisons``, ``review``, ``next_action``...), so the file is the machine-readable result of
the week and the way later notebooks read what earlier ones found.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from playbook.core.atomic import write_json
from playbook.stats.results import jsonable

SUMMARY_NAME = "summary.json"


def summary_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / SUMMARY_NAME


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = summary_path(run_dir)
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def update_summary(run_dir: str | os.PathLike, **sections: Any) -> dict[str, Any]:
    """Set top-level sections of the summary (other sections are kept) and write it atomically."""
    summary = read_summary(run_dir)
    summary.update(jsonable(sections))
    write_json(summary_path(run_dir), summary)
    return summary


def require_section(run_dir: str | os.PathLike, name: str, producer: str) -> Any:
    """A section written by an earlier notebook; a clear error when that notebook has not run."""
    summary = read_summary(run_dir)
    if name not in summary:
        raise LookupError(
            f"{summary_path(run_dir)} has no '{name}' section: run {producer} for this week first"
        )
    return summary[name]
