"""The package's folders are its layers, and imports flow one way (core <- ... <- run <- dev <- sim).

``adapters`` (a real export mapped onto the contract) reads only the contract and the core; ``playbook adapt`` runs them.

Inside ``data`` the rooms flow one way too (``DATA_ROOMS``): errors and URL secrets <- engines <- source <- dataset <-
snapshot.

Every import of a playbook module is read from the source (function-level imports included, so a
late import cannot hide a loop).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "playbook"
#: lowest first: a module may import from its own layer and the layers before it
LAYERS = ("core", "stats", "data", "adapters", "metrics", "config", "journal", "steps", "report", "run", "dev", "sim")
#: the one module of a step layer every step may use: the written verdict rule
SHARED_STEP = "playbook.steps.verdict"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The playbook modules ``path`` imports (``from playbook.x import y`` counts ``playbook.x.y`` if it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("playbook")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("playbook"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    assert sorted(m for m in MODULES if m != "playbook" and layer(m) is None) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m)))
def test_imports_flow_from_higher_layers_to_lower_ones(module):
    mine = LAYERS.index(layer(module))
    upward = sorted(m for m in GRAPH[module] if LAYERS.index(layer(m)) > mine)
    assert upward == [], f"{module} ({layer(module)}) imports from higher layers: {upward}"


#: the data layer's rooms, lowest first: a source's error and its URL's secrets, the engines, the source opened,
#: the validated dataset and its cut, the facts shared by the steps, the stored snapshot of a week
DATA_ROOMS = ("errors", "contract", "validation", "url_secrets", "engines", "csv_files", "source", "dataset", "facts",
              "snapshot", "indexes")


def data_room(module: str) -> str:
    return module.split(".")[2]


def test_every_data_module_lives_in_a_room():
    assert sorted(m for m in MODULES if layer(m) == "data" and m != "playbook.data" and data_room(m) not in DATA_ROOMS) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "data" and m != "playbook.data"))
def test_the_data_layer_imports_flow_from_higher_rooms_to_lower_ones(module):
    """``source`` opens through the engines, ``dataset`` validates what ``source`` opened, ``snapshot`` stores the
    ``dataset``'s cut: never the other way round."""
    mine = DATA_ROOMS.index(data_room(module))
    upward = sorted(m for m in GRAPH[module] if layer(m) == "data" and m != "playbook.data"
                    and DATA_ROOMS.index(data_room(m)) > mine)
    assert upward == [], f"{module} ({data_room(module)}) imports from higher rooms: {upward}"


#: the steps in the order of the loop: a step reads what the steps before it wrote
LOOP = ("baseline", "cohorts", "levers", "experiments", "review")


def step_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every name a step imports from another step module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("playbook.steps."):
            found += [(node.module, a.name) for a in node.names]
    return found


def is_section_model(module: str, name: str) -> bool:
    """A typed summary section (or an entry of one): a dataclass the step writes to summary.json."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    return cls is not None and (name.endswith(("Section", "Entry")) or name in ("NextAction",))


@pytest.mark.parametrize("step", LOOP)
def test_a_step_reads_only_the_typed_sections_of_earlier_steps(step):
    """Steps share typed objects, never functions: shared logic lives in a lower layer."""
    me = f"playbook.steps.{step}"
    wrong = []
    for module, name in step_imports(MODULES[me]):
        other = module.rsplit(".", 1)[-1]
        if module == SHARED_STEP:
            continue
        if other not in LOOP or LOOP.index(other) >= LOOP.index(step) or not is_section_model(module, name):
            wrong.append(f"{module}.{name}")
    assert wrong == []


def test_there_is_no_import_loop():
    state: dict[str, int] = {}
    loops = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                loops.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert loops == []


@pytest.mark.parametrize("step", LOOP)
def test_every_step_has_the_one_entry_shape(step):
    """``analyse(snapshot, config, ...) -> result`` whose ``sections`` are summary sections and which concludes."""
    import importlib
    import inspect
    import typing

    from playbook.report.summary import SECTIONS

    analyse = importlib.import_module(f"playbook.steps.{step}").analyse
    assert list(inspect.signature(analyse).parameters)[:2] == ["snapshot", "config"]
    result_type = typing.get_type_hints(analyse)["return"]
    assert isinstance(inspect.getattr_static(result_type, "sections"), property)
    assert isinstance(inspect.getattr_static(result_type, "conclusion"), property)
    # the sections a step writes are sections summary.json knows (read from the result's source)
    source = inspect.getsource(inspect.getattr_static(result_type, "sections").fget)
    written = set(re.findall(r'"([a-z_]+)": ', source))
    assert written and written <= set(SECTIONS), written - set(SECTIONS)
