"""Each numbered notebook is paired with its py:percent text form, the file reviews read (issue 11).

``notebooks/jupytext.toml`` pairs ``NN_name.ipynb`` with ``NN_name.py``; JupyterLab (rooted at ``notebooks/``
by ``make lab``) saves both, ``jupytext --sync notebooks/[0-9][0-9]_*.ipynb`` does it from a shell. These
tests fail when a pair disagrees, when JupyterLab would not find the pairing, and when the notebooks do not
name the kernel that ``make lab`` registers.
"""
from __future__ import annotations

import re
import shutil

import jupytext
import nbformat
import papermill
import pytest
from jupytext import TextFileContentsManager
from jupytext.compare import NotebookDifference, compare_notebooks
from jupytext.config import find_jupytext_configuration_file, load_jupytext_config

from playbook.core.paths import NOTEBOOKS_DIR, REPO_ROOT
from playbook.run.weekly import COMMON_PARAMETERS, cycle_notebooks

NOTEBOOKS = cycle_notebooks()
SYNC = "jupytext --sync notebooks/[0-9][0-9]_*.ipynb"


def _text_form(path):
    return path.with_suffix(".py")


def _assert_same_notebook(ipynb, text) -> None:
    """The pair holds the same cells (type, source, metadata) and the same kernel, or NotebookDifference."""
    nb, twin = jupytext.read(ipynb), jupytext.read(text)
    compare_notebooks(twin, nb, fmt="py:percent", allow_expected_differences=False)
    if twin.metadata.get("kernelspec") != nb.metadata.get("kernelspec"):
        raise NotebookDifference(f"kernelspec {twin.metadata.get('kernelspec')} != {nb.metadata.get('kernelspec')}")


def _makefile_kernel_name() -> str:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return re.search(r"^KERNEL_NAME\s*:?=\s*(\S+)", makefile, re.MULTILINE).group(1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_py_percent_text_form(path):
    text = _text_form(path)
    assert text.is_file(), f"{path.name} has no text form {text.name}: run {SYNC}"
    header = jupytext.read(text).metadata["jupytext"]["text_representation"]
    assert header["format_name"] == "percent"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_pair_holds_the_same_notebook(path):
    try:
        _assert_same_notebook(path, _text_form(path))
    except NotebookDifference as diff:
        pytest.fail(f"{path.name} and {_text_form(path).name} disagree (edit one, then run {SYNC}):\n{diff}")


def test_a_text_form_edited_alone_is_caught(tmp_path):
    source = NOTEBOOKS[0]
    shutil.copy(source, tmp_path / source.name)
    text = tmp_path / _text_form(source).name
    original = _text_form(source).read_text(encoding="utf-8")
    edited = original.replace("# %% [markdown]\n# ## ", "# %% [markdown]\n# ## Edited ", 1)
    assert edited != original
    text.write_text(edited, encoding="utf-8")
    with pytest.raises(NotebookDifference):
        _assert_same_notebook(tmp_path / source.name, text)


def test_jupyterlab_rooted_at_notebooks_finds_the_pairing():
    # the Lab contents manager looks for its configuration from the notebook's folder up to its root only,
    # and make lab roots it at notebooks/: a pyproject.toml at the repository root would not be seen
    found = find_jupytext_configuration_file(NOTEBOOKS_DIR, search_parent_dirs=False)
    assert found == str(NOTEBOOKS_DIR / "jupytext.toml")
    config = load_jupytext_config(str(NOTEBOOKS[0]))
    groups = config.formats if isinstance(config.formats, list) else [config.formats]
    assert set(",".join(groups).split(",")) == {"ipynb", "py:percent"}


def test_saving_an_unchanged_notebook_in_jupyterlab_changes_no_file(tmp_path):
    # the committed files are in the form JupyterLab writes: opening and saving a notebook makes no diff
    folder = shutil.copytree(NOTEBOOKS_DIR, tmp_path / "notebooks")
    manager = TextFileContentsManager(root_dir=str(folder))
    for path in NOTEBOOKS:
        model = manager.get(path.name)
        manager.save({"type": "notebook", "content": model["content"]}, path.name)
        for name in (path.name, _text_form(path).name):
            assert (folder / name).read_text(encoding="utf-8") == (NOTEBOOKS_DIR / name).read_text(encoding="utf-8"), name


def test_saving_a_notebook_in_jupyterlab_rewrites_its_text_form(tmp_path):
    folder = shutil.copytree(NOTEBOOKS_DIR, tmp_path / "notebooks")
    manager = TextFileContentsManager(root_dir=str(folder))
    name = NOTEBOOKS[0].name
    nb = manager.get(name)["content"]
    nb.cells[0].source += "\n\nA sentence added in JupyterLab."
    manager.save({"type": "notebook", "content": nb}, name)
    assert "# A sentence added in JupyterLab." in (folder / _text_form(NOTEBOOKS[0]).name).read_text(encoding="utf-8")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_notebook_names_the_kernel_make_lab_registers(path):
    spec = nbformat.read(str(path), as_version=4).metadata["kernelspec"]
    assert (spec["name"], spec["language"]) == (_makefile_kernel_name(), "python")


def test_make_lab_starts_with_the_kernel_the_install_registered_in_the_environment():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "REGISTER_KERNEL = $(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME)" in makefile
    assert "$(KERNEL_SPEC)" in recipe.splitlines()[0]  # an older environment gets the kernel registered once
    assert "jupyter lab notebooks/ --MappingKernelManager.default_kernel_name=$(KERNEL_NAME)" in recipe


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_still_reads_the_parameters_under_the_project_kernel_name(path):
    # the weekly run passes its own kernel (python3) to papermill; inspecting the parameters goes by the
    # notebook's kernelspec, whose language (python) picks papermill's translator
    assert set(COMMON_PARAMETERS) <= set(papermill.inspect_notebook(str(path)))
