"""environment.yml (conda users) and the Makefile's pip install come from one source: pyproject.toml."""
from __future__ import annotations

import re

import yaml

from playbook.core.paths import REPO_ROOT
from playbook.dev import envfile


def _pip_section() -> list[str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [r for r in pip if not r.startswith("--")]


def test_environment_yml_lists_exactly_the_pyproject_requirements():
    assert _pip_section() == envfile.requirements()


def test_environment_yml_is_what_make_environment_yml_would_write():
    assert (REPO_ROOT / "environment.yml").read_text(encoding="utf-8") == envfile.render()


def test_every_requirement_has_a_minimum_version():
    for req in envfile.requirements():
        assert re.search(r">=\s*\d", req), f"{req} has no minimum version"


def test_sqlglot_is_capped_below_the_release_that_breaks_ibis_12():
    sqlglot = next(r for r in envfile.requirements() if r.startswith("sqlglot"))
    assert "<30.18" in sqlglot


def test_the_makefile_installs_from_pyproject():
    """The runtime from pyproject.toml's dependencies, each extra from its extra (tests/test_install.py: which, when)."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -e .\n" in makefile
    assert "pip install --quiet -e '.[$*]'" in makefile


def test_the_metric_dictionary_page_is_generated_from_the_code():
    from playbook.core.settings import MetricSettings
    from playbook.metrics.dictionary import dictionary_markdown

    assert (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8") == dictionary_markdown(MetricSettings())
