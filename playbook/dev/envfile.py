"""Write ``environment.yml`` from ``pyproject.toml``, the single source of the dependency set.

Conda users get the same pinned-at-minimum requirements as the pip install of the Makefile:
they are installed by pip inside the conda environment (no conda channel is needed beyond
Python itself). ``tests/test_environment.py`` checks that the committed file agrees.
"""
from __future__ import annotations

import sys
import tomllib

from playbook.core.paths import REPO_ROOT


def requirements(extras: tuple[str, ...] = ("test",)) -> list[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return reqs


def python_minimum() -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["requires-python"].removeprefix(">=")


def render() -> str:
    lines = [
        "# Generated from pyproject.toml by `make environment.yml`; do not edit by hand.",
        "name: returns-playbook",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={python_minimum()}",
        "  - pip",
        "  - pip:",
    ]
    lines += [f'    - "{r}"' for r in requirements()]
    lines += ["    - --editable ."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
