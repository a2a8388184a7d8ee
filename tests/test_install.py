"""The install the Makefile does: `make weekly` the runtime only (`pip install -e .`) with the notebooks' kernel
registered in the environment, `make test` the test extra on top (once), Spark an extra of its own (`make spark`),
`make lab` as root, and `make screenshots` writing into the report folder only (`make docs-screenshots` refreshes
the README's pictures).

The Makefile's recipes are read with `make -n` on a copy of the Makefile and pyproject.toml in a temporary folder,
with the environment's stamp files made by hand: nothing is installed, nothing in the project changes.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from playbook.core.paths import REPO_ROOT

MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="no make on this machine")

KERNEL = "returns-playbook"
KERNEL_JSON = Path(".venv/share/jupyter/kernels") / KERNEL / "kernel.json"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile and pyproject.toml in a folder of their own, pyproject.toml an hour old."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "pyproject.toml", (hour_ago, hour_ago))
    return tmp_path


def made(project: Path, *paths: str | Path, age: float = 60) -> None:
    """Files of the environment as an earlier make left them, ``age`` seconds old."""
    when = time.time() - age
    for path in paths:
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
        os.utime(target, (when, when))


def dry_run(project: Path, *args: str) -> list[str]:
    """The commands `make` would run (`make -n`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run([MAKE, "-n", "-C", str(project), *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    """What pip would install, in order: the arguments after ``pip install --quiet``."""
    return [line.split("pip install --quiet", 1)[1].strip() for line in lines if "pip install" in line]


def registers_kernel(line: str) -> bool:
    return bool(re.search(rf"-m ipykernel install --sys-prefix --name {KERNEL}\b", line))


# --- a light install ----------------------------------------------------------------------------------

@needs_make
def test_make_weekly_on_a_fresh_machine_installs_the_runtime_only_and_registers_the_kernel(project):
    lines = dry_run(project, "weekly")
    assert installs(lines) == ["--upgrade pip", "-e ."]
    assert not any("[test]" in line or "spark" in line or "selenium" in line for line in lines)
    # the registration is part of the install (before its stamp), so an environment made by
    # `make .venv/.installed` alone (the README's CI recipes) has the kernel too
    register = next(i for i, line in enumerate(lines) if registers_kernel(line))
    assert register < lines.index("touch .venv/.installed") < next(i for i, x in enumerate(lines) if "playbook weekly" in x)


@needs_make
def test_make_test_after_make_weekly_adds_the_test_extra_once(project):
    made(project, ".venv/.installed", KERNEL_JSON)
    assert installs(dry_run(project, "test")) == ["-e '.[test]'"]
    made(project, ".venv/.installed-test", age=30)
    assert installs(dry_run(project, "test")) == []
    assert installs(dry_run(project, "weekly")) == []


@needs_make
def test_a_changed_pyproject_reinstalls_the_runtime_and_then_the_extras(project):
    made(project, ".venv/.installed", ".venv/.installed-test", KERNEL_JSON, age=7200)  # older than pyproject.toml
    assert installs(dry_run(project, "test")) == ["--upgrade pip", "-e .", "-e '.[test]'"]
    assert installs(dry_run(project, "weekly")) == ["--upgrade pip", "-e ."]


@needs_make
def test_spark_is_an_extra_of_its_own_with_a_make_target(project):
    made(project, ".venv/.installed", KERNEL_JSON)
    assert installs(dry_run(project, "spark")) == ["-e '.[spark]'"]


def test_the_runtime_dependencies_leave_spark_selenium_and_the_test_tools_to_the_extras():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for heavy in ("pyspark", "selenium", "pytest", "ruff", "tea-tasting", "aiosmtpd"):
        assert heavy not in runtime
    extras = project["optional-dependencies"]
    # CI runs `make test` only: the test extra holds what the Spark and browser tests need
    assert set(extras["spark"]) | set(extras["browser"]) <= set(extras["test"])


# the top-level modules of the test extra's distributions, made unimportable for the check below
TEST_ONLY_MODULES = {"pytest": "pytest", "tea-tasting": "tea_tasting", "ruff": "ruff", "aiosmtpd": "aiosmtpd",
                     "selenium": "selenium", "ibis-framework": None, "pyspark": "pyspark", "gsdesign": "gsdesign",
                     "pytest-xdist": "xdist"}

IMPORT_ALL = textwrap.dedent("""\
    import importlib, importlib.abc, pkgutil, sys
    blocked = set(sys.argv[1].split(","))

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (a test extra's, not the runtime's)", name=name)

    sys.meta_path.insert(0, Absent())
    import playbook
    for module in pkgutil.walk_packages(playbook.__path__, "playbook."):
        importlib.import_module(module.name)
    for statement in sys.argv[2:]:  # the notebooks' imports
        exec(statement, {})
    print("ok")
""")


def test_the_package_and_the_notebooks_import_without_the_test_extra():
    """`make weekly` installs no test extra: no module of the package, nor a notebook, may need one to import."""
    extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    names = {re.split(r"[\[<>=;\s]", req, maxsplit=1)[0].lower() for req in extra["test"]}
    assert names <= set(TEST_ONLY_MODULES), f"a new test dependency: add its module to TEST_ONLY_MODULES: {names}"
    blocked = sorted(m for n, m in TEST_ONLY_MODULES.items() if m and n in names)
    statements = []
    for notebook in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        for node in ast.walk(ast.parse(notebook.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                statements.append(ast.unparse(node))
    assert statements
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL, ",".join(blocked), *statements], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# --- JupyterLab ---------------------------------------------------------------------------------------

@needs_make
def test_an_environment_installed_before_gets_the_kernel_registered_once_without_a_reinstall(project):
    made(project, ".venv/.installed")
    lines = dry_run(project, "weekly")
    assert installs(lines) == [] and sum(registers_kernel(line) for line in lines) == 1
    made(project, KERNEL_JSON)
    assert not any(registers_kernel(line) for line in dry_run(project, "weekly"))


@needs_make
def test_make_lab_adds_allow_root_for_root_only_and_passes_lab_args(project):
    made(project, ".venv/.installed", KERNEL_JSON)

    def lab(*args: str) -> str:
        [line] = [x for x in dry_run(project, "lab", *args) if "jupyter lab" in x]
        return line

    assert "--allow-root" in lab("USER_ID=0")
    assert "--allow-root" not in lab("USER_ID=1000")
    assert ("--allow-root" in lab()) == (os.geteuid() == 0)  # who runs this test: `id -u`
    line = lab("LAB_ARGS=--no-browser --port 8899")
    assert line.endswith("--no-browser --port 8899") and f"default_kernel_name={KERNEL}" in line


def test_the_install_registered_the_kernel_inside_the_projects_environment():
    """After `make weekly` (or `make test`), `.venv/bin/jupyter kernelspec list` shows the notebooks' kernel,
    from the environment's own share/jupyter/kernels, running the environment's python."""
    venv = REPO_ROOT / ".venv"
    if not (venv / ".installed").exists() or not (venv / "bin" / "jupyter").exists():
        pytest.skip(f"no environment made by `make weekly` at {venv} (these tests run from another interpreter)")
    proc = subprocess.run([str(venv / "bin" / "jupyter"), "kernelspec", "list", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    specs = json.loads(proc.stdout)["kernelspecs"]
    assert KERNEL in specs, f"{KERNEL} is not among {sorted(specs)}"
    spec_dir = venv / "share" / "jupyter" / "kernels" / KERNEL
    assert os.path.samefile(specs[KERNEL]["resource_dir"], spec_dir)
    argv = json.loads((spec_dir / "kernel.json").read_text(encoding="utf-8"))["argv"]
    assert os.path.samefile(Path(argv[0]).parent, venv / "bin")


# --- screenshots ---------------------------------------------------------------------------------------

@needs_make
def test_make_screenshots_writes_into_the_report_folder_only(project):
    made(project, ".venv/.installed", KERNEL_JSON)
    lines = dry_run(project, "screenshots", "WEEK=2026-W47")
    assert installs(lines) == ["-e '.[browser]'"]  # Selenium, not the whole test extra
    [check] = [line for line in lines if "playbook.dev.browser_check" in line]
    assert '"reports/2026-W47"' in check and "--copy-to" not in check  # default: <report>/screenshots/
    assert not any("docs/screenshots" in line or "docs/" in line for line in lines)


@needs_make
def test_make_docs_screenshots_refreshes_the_readmes_pictures(project):
    made(project, ".venv/.installed", ".venv/.installed-browser", KERNEL_JSON)
    [check] = [line for line in dry_run(project, "docs-screenshots") if "playbook.dev.browser_check" in line]
    assert check.endswith("--copy-to docs/screenshots")


def test_the_browser_check_saves_its_screenshots_beside_the_report_by_default(tmp_path, monkeypatch):
    from playbook.dev import browser_check

    week = tmp_path / "2026-W47"
    week.mkdir()
    (week / "index.html").write_text("<html></html>")
    (week / "summary.json").write_text("{}")
    seen = {}

    def check_report(report, screenshots):
        seen.update(report=report, screenshots=screenshots)
        raise browser_check.BrowserUnavailable("not needed here")

    monkeypatch.setattr(browser_check, "check_report", check_report)
    assert browser_check.main([str(tmp_path)]) == 2
    assert seen == {"report": week, "screenshots": week / "screenshots"}
