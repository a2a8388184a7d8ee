"""Notebook hygiene (after bob-emploi's lint): one parameters cell, clean outputs, thin cells, package imports."""
from __future__ import annotations

import ast

import nbformat
import pytest

from playbook.run.weekly import COMMON_PARAMETERS, cycle_notebooks

NOTEBOOKS = cycle_notebooks()
MAX_LOGIC_LINES = 15


def _logic_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_exactly_one_parameters_cell_declaring_the_common_parameters(path):
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    declared = {t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert set(COMMON_PARAMETERS) <= declared


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_is_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: a code cell carries outputs"


#: Metadata a run leaves behind: papermill's, the cell timings of JupyterLab and of the ExecuteTime extension,
#: and saved widget state. A committed notebook is the source of a run, never the record of one.
RUN_TRACES = ("papermill", "execution", "ExecuteTime", "widgets")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_carries_no_trace_of_a_run_in_its_metadata(path):
    nb = nbformat.read(str(path), as_version=4)
    found = [f"notebook: {k}" for k in RUN_TRACES if k in nb.metadata]
    found += [f"cell {i}: {k}" for i, cell in enumerate(nb.cells) for k in RUN_TRACES if k in cell.metadata]
    assert not found, f"{path.name} was committed after a run ({found}): clear it before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_thin(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert _logic_lines(cell.source) <= MAX_LOGIC_LINES, (
                f"{path.name}: move this cell's logic to playbook/:\n{cell.source}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_defines_no_function_or_class_and_imports_only_from_the_package_or_display(path):
    nb = nbformat.read(str(path), as_version=4)
    allowed = ("playbook", "IPython")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef)), f"{path.name}: logic belongs in playbook/"
            if isinstance(node, ast.ImportFrom):
                assert node.module.split(".")[0] in allowed, f"{path.name}: imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in allowed, f"{path.name}: imports {alias.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_an_explanation_and_closes_with_a_conclusion(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "Why this step exists" in nb.cells[0].source and "How to read it" in nb.cells[0].source
    assert "Conclusion" in [c for c in nb.cells if c.cell_type == "code"][-1].source  # then the "Try it" cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_ends_with_a_try_it_cell_naming_only_its_own_parameters(path):
    """The "Try it" cell says which parameter to change and what changes; a renamed parameter fails here."""
    import re

    import papermill

    last = nbformat.read(str(path), as_version=4).cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Try it"), path.name
    named = set(re.findall(r"`([a-z_]+) = ", last.source))
    assert named and named <= set(papermill.inspect_notebook(str(path))), named


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_first_use_of_each_glossary_term_on_a_page_links_to_the_guide(path):
    """``python -m playbook.dev.glossary_links`` would change nothing, and every link reaches a glossary anchor."""
    import re

    from playbook.core.paths import METHOD_GUIDE
    from playbook.dev.glossary_links import TERMS, link_py_notebook

    text = path.with_suffix(".py").read_text(encoding="utf-8")
    assert link_py_notebook(text) == text, "run python -m playbook.dev.glossary_links, then jupytext --sync"
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', METHOD_GUIDE.read_text(encoding="utf-8")))
    assert set(TERMS) <= anchors
    assert set(re.findall(r"\(\.\./docs/method\.md#([a-z0-9-]+)\)", text)) <= anchors
