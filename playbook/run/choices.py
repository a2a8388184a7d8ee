"""The analyst's choices for a weekly run: a parameters file (papermill's convention), checked and recorded.

``make weekly PARAMS=choices.yaml`` (``playbook weekly --params choices.yaml``) sets parameters the
notebooks declare beyond the run's own (week, data, ...): the lever, the design, the expected range,
the windows of step 2... Each key must be declared by at least one notebook of the cycle; it is
passed to the notebooks that declare it, written at the top of summary.json (``choices``) so the
report says "chosen by the analyst: X instead of the default Y", and the plan records it in the
decision journal (``chosen_by_analyst``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import papermill
import yaml


class ChoicesError(ValueError):
    """The parameters file cannot be used: the message names the file, the key and what is accepted."""


@dataclass(frozen=True)
class Choice:
    """One parameter the analyst set: its value, the notebook's default, and the notebooks it reaches."""

    name: str
    value: Any
    default: str
    notebooks: tuple[str, ...]


def read_choices(path: str | Path) -> dict[str, Any]:
    """The parameters file: a YAML mapping of parameter names to values."""
    file = Path(path)
    if not file.is_file():
        raise ChoicesError(f"parameters file {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ChoicesError(f"{file}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ChoicesError(f"{file}: expected a mapping of parameter names to values, such as 'lever: size_guide'")
    return data


def resolve_choices(choices: dict[str, Any], notebooks: list[Path], reserved: tuple[str, ...],
                    source: str = "the parameters file") -> list[Choice]:
    """Each choice with the notebooks that declare it; an unknown or reserved key stops the run before any notebook."""
    declared = {nb.stem: papermill.inspect_notebook(str(nb)) for nb in notebooks}
    known = sorted({name for params in declared.values() for name in params} - set(reserved))
    out = []
    for name, value in choices.items():
        if name in reserved:
            raise ChoicesError(f"{source}: {name!r} is set by the run itself (its option --{name.replace('_', '-')}), "
                               f"not by a choice; choices: {', '.join(known)}")
        where = tuple(stem for stem, params in declared.items() if name in params)
        if not where:
            raise ChoicesError(f"{source}: {name!r} is not a parameter of any notebook; choices: {', '.join(known)}")
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ChoicesError(f"{source}: {name!r} must be a text, a number, true/false or null, got {value!r}")
        out.append(Choice(name, value, declared[where[0]][name]["default"], where))
    return out


def for_notebook(choices: list[Choice], stem: str) -> dict[str, Any]:
    """The choices a notebook declares, as papermill parameters."""
    return {c.name: c.value for c in choices if stem in c.notebooks}
