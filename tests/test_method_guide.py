"""The method guide (docs/method.md) for new hires: its glossary, its quotes of the configuration, its links.

The guide explains the decision table in words, so it quotes the configuration rather than restating it:
these tests fail when a trigger, a lever or a guardrail of ``playbook/config/playbook.yaml`` is missing from
the guide or quoted differently, when a term of the glossary has no anchor, or when a link goes nowhere.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from playbook.config.loader import load_config
from playbook.core.paths import DEFAULT_CONFIG, REPO_ROOT
from playbook.run.weekly import cycle_notebooks

GUIDE = REPO_ROOT / "docs" / "method.md"

#: The glossary of issue 11, one anchor per term (notebooks and reports link to ``method.md#<anchor>``).
GLOSSARY_ANCHORS = (
    "conversion", "qualified-conversion", "return-cost-ratio", "reason-mix", "contribution-per-100-sessions",
    "discount-depth", "closure-rate", "delivery-promise-kept", "click-to-possession", "contact-rate", "wismo",
    "net-cac", "revenue-per-visitor", "return-lag", "maturity", "j7", "d7", "confidence-interval", "p-value",
    "q-value", "false-discovery-rate", "mde", "power", "srm", "guardrail", "tolerance",
    "difference-in-differences", "cuped", "censoring",
)

#: The seven steps of the weekly loop, each with its own section.
STEP_ANCHORS = tuple(f"step-{i}" for i in range(1, 8))

_ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _anchors(text: str) -> list[str]:
    return _ANCHOR.findall(text)


def _section(text: str, anchor: str) -> str:
    """The text from ``<a id="anchor">`` to the next level-2 heading."""
    start = text.index(f'<a id="{anchor}"></a>')
    heading = text.index("\n## ", start)  # the section's own heading follows its anchor
    end = text.find("\n## ", heading + 1)
    return text[start:] if end == -1 else text[start:end]


def _table_rows(section: str, first_header: str) -> list[list[str]]:
    """The body rows of the markdown table whose header starts with ``| first_header |``, as cells."""
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _code(cell: str) -> str:
    """A cell quoted as `code`, without its backticks."""
    assert cell.startswith("`") and cell.endswith("`"), f"expected a `quoted` value, got {cell!r}"
    return cell[1:-1]


def test_the_glossary_has_an_anchor_for_every_term():
    glossary = _section(_text(), "glossary")
    missing = [a for a in GLOSSARY_ANCHORS if f'<a id="{a}"></a>' not in glossary]
    assert not missing, f"docs/method.md#glossary lacks the anchors {missing}"


def test_every_step_of_the_loop_has_its_own_section():
    anchors = _anchors(_text())
    assert [a for a in anchors if a.startswith("step-")] == list(STEP_ANCHORS)


def test_no_anchor_is_defined_twice():
    anchors = _anchors(_text())
    assert sorted({a for a in anchors if anchors.count(a) > 1}) == []


def test_every_link_inside_the_guide_reaches_an_anchor_or_a_file():
    text = _text()
    anchors = set(_anchors(text))
    broken = []
    for target in _LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, fragment = target.partition("#")
        if path and not (GUIDE.parent / path).exists():
            broken.append(target)
        elif not path and fragment not in anchors:
            broken.append(target)
    assert not broken, f"links going nowhere in docs/method.md: {broken}"


def test_the_decision_table_quotes_every_trigger_of_the_configuration():
    config = load_config(DEFAULT_CONFIG)
    rows = _table_rows(_section(_text(), "the-decision-table"), "zone")
    quoted = {(r[0], _code(r[1])): (_code(r[2]), yaml.safe_load(_code(r[3])), r[4], r[5]) for r in rows
              if not r[0].startswith("(")}
    configured = {(row.zone, row.metric): (row.rule, dict(row.params), row.action, row.owner)
                  for row in config.decision_table}
    assert quoted == configured


def test_the_decision_table_quotes_the_default_rule():
    config = load_config(DEFAULT_CONFIG)
    rows = _table_rows(_section(_text(), "the-decision-table"), "zone")
    default = [r for r in rows if r[0].startswith("(")]
    assert len(default) == 1
    assert (_code(default[0][2]), yaml.safe_load(_code(default[0][3]))) == (
        config.default_rule.rule, dict(config.default_rule.params))


def test_every_trigger_is_explained_in_words_with_its_action():
    config = load_config(DEFAULT_CONFIG)
    explained = _section(_text(), "the-decision-table").split("What each trigger means", 1)[1]
    bullets = explained.split("\n* ")[1:]
    for row in config.decision_table:
        of_zone = [" ".join(b.lower().split()) for b in bullets if b.lower().startswith(f"**{row.zone}:")]
        assert of_zone, f"no explanation for the zone {row.zone!r}"
        assert any(row.action.lower() in b for b in of_zone), f"{row.zone}: the action {row.action!r} is not named"


def test_the_levers_table_quotes_the_configuration():
    config = load_config(DEFAULT_CONFIG)
    rows = _table_rows(_section(_text(), "the-decision-table"), "reason")
    quoted = {_code(r[0]): {"lever": _code(r[1]), "description": r[2]} for r in rows}
    assert quoted == {reason: dict(lever) for reason, lever in config.levers.items()}


def test_the_guardrails_table_quotes_the_configuration():
    config = load_config(DEFAULT_CONFIG)
    rows = _table_rows(_section(_text(), "the-decision-table"), "design")
    quoted = sorted((r[0], _code(r[1]), r[2], float(r[3]), r[4] == "yes", r[5]) for r in rows)
    configured = sorted((design, g.metric, g.bad_direction, g.tolerance, g.optional, g.description)
                        for design, guards in config.experiments.guardrails.items() for g in guards)
    assert quoted == configured


def test_the_readme_links_the_guide_right_after_the_setup_commands():
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    closing = lines.index("```", 1)  # the end of the two setup commands, which stay the README's first lines
    assert [line.split()[:2] for line in lines[1:closing]] == [["make", "weekly"], ["make", "test"]]
    head = "\n".join(lines[closing + 1: closing + 4])
    assert "(docs/method.md)" in head


def _guide_links(source: str, notebook: Path) -> list[tuple[Path, str]]:
    out = []
    for target in _LINK.findall(source):
        path, _, fragment = target.partition("#")
        if path and (notebook.parent / path).resolve() == GUIDE.resolve():
            out.append((GUIDE, fragment))
    return out


@pytest.mark.parametrize("path", cycle_notebooks(), ids=lambda p: p.name)
def test_the_first_cell_of_every_notebook_links_to_the_guide(path):
    first = nbformat.read(str(path), as_version=4).cells[0]
    links = _guide_links(first.source, path)
    assert first.cell_type == "markdown" and links, f"{path.name}: its first cell does not link to docs/method.md"
    anchors = set(_anchors(_text()))
    assert all(not fragment or fragment in anchors for _, fragment in links), (
        f"{path.name}: a link to docs/method.md names an anchor the guide does not have: {links}")
