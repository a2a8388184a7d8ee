"""Link the first use of each glossary term on a notebook's page to the method guide.

``python -m playbook.dev.glossary_links`` rewrites the notebooks' text forms (``notebooks/NN_*.py``)
so that, on each page, the first use of a term of the guide's glossary (``docs/method.md``) in a
markdown cell links to its anchor; ``jupytext --sync`` then carries it to the ``.ipynb``. A test
runs :func:`link_first_uses` on the committed notebooks and fails when it would change anything.
Headings, inline code and existing links are left alone; the rendered report points the links at
its own copy of the guide (``report.rendering.notebook_to_html``).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

GUIDE = "../docs/method.md"

#: glossary anchor -> the words that name it on a page (the longest is tried first)
TERMS: dict[str, tuple[str, ...]] = {
    "qualified-conversion": ("qualified conversion",),
    "conversion": ("conversion rate",),
    "return-cost-ratio": ("return cost ratio",),
    "return-rate": ("return rate",),
    "reason-mix": ("reason mix",),
    "contribution-per-100-sessions": ("contribution per 100 sessions",),
    "discount-depth": ("discount depth",),
    "closure-rate": ("closure rate",),
    "delivery-promise-kept": ("delivery promise",),
    "click-to-possession": ("click to possession", "click-to-possession"),
    "contact-rate": ("contact rate",),
    "wismo": ("WISMO",),
    "net-cac": ("net CAC",),
    "revenue-per-visitor": ("revenue per visitor",),
    "maturity": ("not mature", "maturity", "mature"),
    "j7": ("J+7",),
    "confidence-interval": ("confidence intervals", "confidence interval"),
    "p-value": ("p-values", "p-value"),
    "q-value": ("q-values", "q-value"),
    "false-discovery-rate": ("false discovery rate",),
    "mde": ("minimum detectable effect", "MDE"),
    "srm": ("sample ratio mismatch", "SRM"),
    "guardrail": ("guardrails", "guardrail"),
    "tolerance": ("tolerance",),
    "difference-in-differences": ("difference in differences", "difference-in-differences"),
    "cuped": ("CUPED",),
    "censoring": ("censoring", "censored"),
    "weak-cohort": ("weak cohort",),
    "primary-metric": ("primary metric",),
    "expected-range": ("expected impact range", "expected range"),
    "control-cohort": ("control cohort",),
    "design-effect": ("design effect",),
    "alpha-spending": ("O'Brien-Fleming", "alpha spending"),
    "decision-journal": ("decision journal",),
    "track-record": ("track record",),
}

_WORDS = sorted(((w, a) for a, words in TERMS.items() for w in words), key=lambda wa: -len(wa[0]))
_TERM = re.compile("|".join(rf"(?<![\w+-]){re.escape(w)}(?![\w+-])" for w, _ in _WORDS), re.IGNORECASE)
_ANCHOR = {w.lower(): a for w, a in _WORDS}
#: spans a link may not be put in: inline code, a markdown link, an HTML tag
_PROTECTED = re.compile(r"`[^`]*`|\[[^\]]*\]\([^)]*\)|<[^>]+>")
_LINKED = re.compile(rf"\[[^\]]*\]\({re.escape(GUIDE)}#([a-z0-9-]+)\)")


def _link_line(line: str, seen: set[str]) -> str:
    seen.update(_LINKED.findall(line))
    out, pos = [], 0
    for protected in [*_PROTECTED.finditer(line), None]:
        end = protected.start() if protected else len(line)
        out.append(_link_text(line[pos:end], seen))
        if protected:
            out.append(protected.group(0))
            pos = protected.end()
    return "".join(out)


def _link_text(text: str, seen: set[str]) -> str:
    def link(match: re.Match) -> str:
        anchor = _ANCHOR[match.group(0).lower()]
        if anchor in seen:
            return match.group(0)
        seen.add(anchor)
        return f"[{match.group(0)}]({GUIDE}#{anchor})"

    return _TERM.sub(link, text)


def link_first_uses(markdown_cells: list[str]) -> list[str]:
    """The cells with the first use of each term on the page linked (headings and code left alone)."""
    seen: set[str] = set()
    return ["\n".join(line if _is_heading(line) else _link_line(line, seen) for line in cell.split("\n"))
            for cell in markdown_cells]


def _is_heading(line: str) -> bool:
    return bool(re.match(r"#{1,6} ", line))


def _py_markdown_cells(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the markdown cells' bodies in a py:percent file."""
    spans = []
    for m in re.finditer(r"^# %% \[markdown\]\n((?:#.*\n?)*)", text, re.MULTILINE):
        spans.append((m.start(1), m.end(1)))
    return spans


def link_py_notebook(text: str) -> str:
    """A py:percent notebook with its markdown cells linked (each line of a cell is ``# ...``)."""
    spans = _py_markdown_cells(text)
    cells = ["\n".join(line[2:] if line.startswith("# ") else line[1:] for line in text[s:e].rstrip("\n").split("\n"))
             for s, e in spans]
    linked = link_first_uses(cells)
    out, pos = [], 0
    for (s, e), cell in zip(spans, linked):
        trailing = text[s:e][len(text[s:e].rstrip("\n")):]
        out += [text[pos:s], "\n".join(f"# {line}" if line else "#" for line in cell.split("\n")), trailing]
        pos = e
    return "".join(out) + text[pos:]


def main(paths: list[str]) -> int:
    from playbook.core.paths import NOTEBOOKS_DIR

    for path in [Path(p) for p in paths] or sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")):
        text = path.read_text(encoding="utf-8")
        linked = link_py_notebook(text)
        if linked != text:
            path.write_text(linked, encoding="utf-8")
            print(f"linked {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
