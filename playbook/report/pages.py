"""The report's pages: Jinja2 templates (playbook/report/templates), one stylesheet, one top bar.

A week's report folder holds the index (the headline for managers, then the detail), the brief (one
page for stakeholders, built from the typed summary, never from the notebooks), the five step pages
(executed notebooks through nbconvert's ``playbook`` template: the lab page with the report's title,
top bar and stylesheet, nothing fetched from the network), their brief editions (no code, no
analyst-only cell), the method guide and the metric definitions. The reports folder's own
``index.html`` lists every rendered week with its headline.

Every value from the data is escaped by the templates' autoescaping (numbers and sentences built
in :mod:`playbook.report.story` arrive as Markup whose data parts were escaped there).
"""
from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import mistune
import nbformat
from markupsafe import Markup, escape
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from playbook.core.atomic import write_text
from playbook.core.jsonmodel import FieldError
from playbook.core.paths import METHOD_GUIDE, METHOD_PAGE, REPO_ROOT
from playbook.core.settings import Config
from playbook.core.vocabulary import Status
from playbook.metrics.display import Display
from playbook.report import story
from playbook.report.summary import Summary

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSS = "report.css"
METRICS_GUIDE = REPO_ROOT / "docs" / "metrics.md"
METRICS_PAGE = "metrics.html"
#: the project's guides copied into each report (the method guide links the others), by page name
GUIDES = {
    "method": (METHOD_GUIDE, "The returns playbook: method guide"),
    "metrics": (METRICS_GUIDE, "The returns playbook: metric definitions"),
    "statistics": (REPO_ROOT / "docs" / "statistics.md", "The returns playbook: statistical methods"),
    "data_contract": (REPO_ROOT / "docs" / "data_contract.md", "The returns playbook: data contract"),
}
BRIEF_DIR = "brief"
#: cells tagged so are the analyst's (checks, candidate tables, run details): left out of the brief edition
ANALYST_TAG = "analyst-only"
#: cells tagged so are the brief's (a table in plain words beside the analyst's raw one): left out of the full page
BRIEF_TAG = "brief-only"
INJECTED_TAG = "injected-parameters"
#: the steps' short names in the top bar (a notebook outside the cycle keeps its title)
STEP_LABELS = {"01_baseline": "1 Baseline", "02_weak_cohort": "2 Weak cohort", "03_lever_design": "3 Lever",
               "04_comparison": "4 Comparison", "05_j7_review": "5 J+7 review"}
WEEK_FOLDER = re.compile(r"^\d{4}-W\d{2}$")


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    here: bool = False


@dataclass(frozen=True)
class Step:
    """A step page of the week: its notebook's file stem and title."""

    stem: str
    title: str

    @property
    def label(self) -> str:
        return STEP_LABELS.get(self.stem, self.title)


@dataclass(frozen=True)
class Nav:
    """What a page links to: ``root`` leads from the page to the week's folder ("" or "../")."""

    root: str
    links: tuple[Link, ...]
    weeks: str
    previous: Link | None = None
    next: Link | None = None


def nav_for(page: str, steps: list[Step], brief: bool = False) -> Nav:
    """The top bar and the previous/next links of ``page`` ("index", "brief", a step's stem, "method",
    "metrics"). A brief edition's step pages link to each other, full pages to full pages."""
    root = "../" if brief else ""
    here = (lambda name: name == page)
    index = Link("Week index", f"{root}index.html", here("index"))
    brief_link = Link("Brief", "index.html" if brief else f"{BRIEF_DIR}/index.html", here("brief"))
    step_links = [Link(s.label, f"{s.stem}.html", here(s.stem)) for s in steps]
    links = (index, brief_link, *step_links, Link("Method", f"{root}{METHOD_PAGE}", here("method")),
             Link("Metrics", f"{root}{METRICS_PAGE}", here("metrics")), Link("Past weeks", f"{root}../index.html"))
    previous = nxt = None
    stems = [s.stem for s in steps]
    if page in stems:
        i = stems.index(page)
        previous = step_links[i - 1] if i > 0 else index
        nxt = step_links[i + 1] if i + 1 < len(steps) else None
    elif page == "index" and step_links:
        nxt = step_links[0]
    return Nav(root, tuple(links), f"{root}../index.html", _plain_link(previous), _plain_link(nxt))


def _plain_link(link: Link | None) -> Link | None:
    return None if link is None else Link(link.label, link.href)


@dataclass(frozen=True)
class Column:
    """A column of a table of the index: ``label`` names its cells on a phone (their ``data-label``),
    ``header`` is its heading when it carries more than the label (a link to the method guide)."""

    label: str
    header: Markup | str | None = None
    number: bool = False

    def __post_init__(self) -> None:
        if self.header is None:
            object.__setattr__(self, "header", self.label)


@dataclass(frozen=True)
class Table:
    """A table of the index or the brief (``table.html.j2``): its columns and its rows of cells, each
    cell text or Markup whose data parts were escaped where they were built."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Markup | str, ...], ...]


def _status_word(status: Status | str) -> Markup:
    """A status as a word with its mark (the mark is the span's, the cell's label is the cell's)."""
    return Markup('<span class="status {}">{}</span>').format(str(status).replace(" ", "-"), status)


def status_table(lines: list[story.StatusLine], full: bool = True) -> Table:
    """The statuses as a table: with why, action, owner and zone (``full``), or the metric, its status
    and its value against the usual one (the greens)."""
    columns = [Column("metric"), Column("status"), Column("this week", number=True), Column("usual", number=True)]
    if full:
        columns += [Column("why"), Column("action"), Column("owner"), Column("zone")]
    rows = []
    for line in lines:
        row: tuple = (line.title, _status_word(line.status), line.now, line.usual)
        rows.append(row + ((line.why, line.action, line.owner, line.zone) if full else ()))
    return Table(tuple(columns), tuple(rows))


def verdict_table(verdicts: list[story.VerdictLine], root: str) -> Table:
    """The J+7 verdicts: the change tested (its experiment id under it), the decision, the effect against
    the range expected, the money, the guardrails and the next step with what to check first."""
    guardrails = Markup('<a href="{}method.html#guardrail">guardrails</a>').format(root)
    columns = (Column("change tested"), Column("decision"), Column("effect (95 % interval)"), Column("money"),
               Column("guardrails", guardrails), Column("next step"))
    rows = []
    for v in verdicts:
        change = Markup('{}<br><small class="muted">{}</small>').format(v.change, v.experiment_id)
        effect = Markup('{}<br><small class="muted">{}</small>').format(v.effect, v.expected) if v.expected else v.effect
        nxt = Markup(escape(v.next_step))
        nxt += Markup("").join(Markup("<br><b>Check before rolling out:</b> {}").format(f) for f in v.flags)
        nxt += Markup("").join(Markup("<br><b>Follow-up:</b> {}").format(f) for f in v.follow_ups)
        rows.append((change, Markup('<span class="decision">{}</span>').format(v.decision_words), effect, v.money,
                     "; ".join(v.guardrails), nxt))
    return Table(columns, tuple(rows))


def table_html(table: Table) -> Markup:
    """A table as the index draws it (``table.html.j2``: a card per row on a phone), for a notebook's cell."""
    return Markup(_render("table.html.j2", table=table))


def actions_table(actions: tuple) -> Table:
    """The open actions: since when, who owns each, what it is."""
    return Table((Column("since"), Column("owner"), Column("action")),
                 tuple((a.week, a.owner, a.description) for a in actions))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["css"] = lambda status: str(status).replace(" ", "-")
    env.globals.update(Status=Status, css=CSS, no_rule=story.NO_RULE, zip=zip, status_table=status_table,
                       verdict_table=verdict_table, actions_table=actions_table)
    return env


_ENV = _environment()


def _render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)


def _typed(summary: Summary | dict[str, Any]) -> Summary:
    return summary if isinstance(summary, Summary) else Summary.from_json(summary)


def data_label(source: str | None) -> str:
    """The data source as a reader needs it: a folder's name or a database's address, never a server path."""
    if not source:
        return "(unknown source)"
    if "://" in source:
        return source
    return Path(source).name or source


def _closure(s: Summary, d: Display) -> str:
    entry = s.baseline.metrics.get("closure_rate") if s.baseline is not None else None
    return d.value("closure_rate", entry.value) if entry is not None and isinstance(entry.value, (int, float)) else ""


def _week_context(s: Summary, d: Display, config: Config) -> dict[str, Any]:
    actions = s.baseline.open_actions if s.baseline is not None else None
    return {
        "s": s, "d": d, "headline": story.headline(s, d, config), "lines": story.status_lines(s, d),
        "count": story.status_count(s), "weak": story.weak_cohort_sentence(s, d),
        "explained": story.explained_candidates(s), "verdicts": story.verdict_lines(s, d, config),
        "overdue": story.overdue_lines(s), "running": story.running_lines(s, config),
        "next_action": story.next_action_sentence(s, d),
        "caveat": story.plan_caveat(s, d), "actions": actions, "closure": _closure(s, d),
        "owners": sorted({a.owner for a in actions or () if a.owner}),
        "warnings": s.data_quality.warnings if s.data_quality is not None else (),
    }


def page_title(text: str, shop: str = "") -> str:
    """A page's title or heading, the shop's name first when one is known (``shop_name``: the data's
    ``shop.yaml`` or the configuration): a reader with several shops' reports open tells them apart."""
    return f"{shop}: {text}" if shop else text


def display_for(config: Config) -> Display:
    return Display(config.currency, config.metrics)


#: the files of a week's report a reader may open, with their names for people
REPORT_FILES = {"experiments_plan.csv": "experiments plan (CSV)", "journal_entries/plan.json": "journal entry: the plan",
                "journal_entries/verdict.json": "journal entry: the verdicts"}


def report_files(folder: Path) -> list[Link]:
    """The files of :data:`REPORT_FILES` present in a week's report folder, as links."""
    return [Link(label, name) for name, label in REPORT_FILES.items() if (folder / name).is_file()]


def index_page(summary: Summary | dict[str, Any], steps: list[Step], config: Config, files: list[Link] = ()) -> str:
    """The week's index: the headline sentence, what is red with its action and owner, the weak cohort
    and its money, the verdicts, what happens next, open actions; then the steps, the guides and the
    report's ``files`` (:func:`report_files`).

    A parsed summary.json is read through its models first: a section that does not match fails here.
    """
    s = _typed(summary)
    d = display_for(config)
    plan = next((f.href for f in files if f.href == "experiments_plan.csv"), None)
    return _render("index.html.j2", title=page_title(f"Returns playbook, week {s.week}", config.shop_name),
                   nav=nav_for("index", steps),
                   steps=[Link(st.title, f"{st.stem}.html") for st in steps], data_label=data_label(s.data_source),
                   files=list(files), plan_csv=plan, **_week_context(s, d, config))


def brief_page(summary: Summary | dict[str, Any], steps: list[Step], config: Config) -> str:
    """The brief: one page in plain words for stakeholders, from the typed summary; no method names,
    no code, no paths; the full report one link away."""
    s = _typed(summary)
    d = display_for(config)
    return _render("brief.html.j2", title=page_title(f"Returns, week {s.week}: the brief", config.shop_name),
                   heading=page_title(f"Returns: the week {s.week} in brief", config.shop_name),
                   nav=nav_for("brief", steps, brief=True), **_week_context(s, d, config))


def guide_page(page: str, steps: list[Step] = ()) -> str:
    """A guide of the project's own docs (trusted text, not data) as a page of the report; its links to
    the other guides point to their pages."""
    markdown, title = GUIDES[page]
    to_html = mistune.create_markdown(escape=False, plugins=["table", "task_lists", "strikethrough"])
    body = _DOC_LINK.sub(_guide_link, _heading_ids(to_html(markdown.read_text(encoding="utf-8"))))
    return _render("doc.html.j2", title=title, nav=nav_for(page, list(steps)), body=Markup(body))


_DOC_LINK = re.compile(r'<a href="([\w.-]+)\.md(#[^"]*)?">(.*?)</a>', re.S)


def _guide_link(match: re.Match) -> str:
    """A link between the docs: to the guide's page when the report carries it, else its text and where
    the file is in the repository (a report works offline: no link may lead out of it)."""
    name, anchor, text = match.group(1), match.group(2) or "", match.group(3)
    if name in GUIDES:
        return f'<a href="{name}.html{anchor}">{text}</a>'
    return text if f"{name}.md" in text else f"{text} (docs/{name}.md in the repository)"


_HEADING = re.compile(r"<h([1-6])>(.*?)</h\1>", re.S)


def _heading_ids(body: str) -> str:
    """Headings get the ids GitHub gives them (the guides link their sections by those anchors)."""
    seen: dict[str, int] = {}

    def with_id(match: re.Match) -> str:
        text = re.sub(r"<[^>]+>", "", match.group(2))
        slug = re.sub(r"[^\w\- ]", "", html.unescape(text).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchor = slug if n == 0 else f"{slug}-{n}"
        return f'<h{match.group(1)} id="{anchor}">{match.group(2)}</h{match.group(1)}>'

    return _HEADING.sub(with_id, body)


def write_guides(folder: Path, steps: list[Step]) -> None:
    """Every guide's page in the report folder (``method.html``, ``metrics.html``...)."""
    for page in GUIDES:
        write_text(folder / f"{page}.html", guide_page(page, steps))


@dataclass(frozen=True)
class WeekEntry:
    week: str
    headline: Any


def weeks_page(reports: Path, config: Config) -> str:
    """The reports folder's index: every rendered week, newest first, with its headline sentence."""
    entries = []
    d = display_for(config)
    for folder in sorted((p for p in reports.iterdir() if p.is_dir() and WEEK_FOLDER.match(p.name)), reverse=True):
        path = folder / "summary.json"
        if not path.is_file():
            continue
        try:
            headline = story.headline(Summary.from_json(json.loads(path.read_text(encoding="utf-8"))), d, config)
        except (FieldError, ValueError) as exc:
            headline = f"summary.json unreadable with this version ({type(exc).__name__}): open the week's report"
        entries.append(WeekEntry(folder.name, headline))
    nav = Nav("", (Link("Past weeks", "index.html", True),), "index.html")
    return _render("weeks.html.j2", title=page_title("Returns playbook: every week", config.shop_name),
                   heading=page_title("Returns playbook: every week rendered", config.shop_name), nav=nav,
                   weeks=entries, css=CSS)


def write_weeks_index(reports: Path, config: Config) -> Path:
    """The reports folder's index.html and its stylesheet, rewritten after each run."""
    write_text(reports / CSS, stylesheet())
    return write_text(reports / "index.html", weeks_page(reports, config))


def stylesheet() -> str:
    return (TEMPLATES / CSS).read_text(encoding="utf-8")


def _exporter(brief: bool) -> HTMLExporter:
    exporter = HTMLExporter(template_name="playbook", extra_template_basedirs=[str(TEMPLATES / "nbconvert")])
    removed = {INJECTED_TAG, ANALYST_TAG} if brief else {INJECTED_TAG, BRIEF_TAG}
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=removed, enabled=True), enabled=True)
    if brief:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    return exporter


def notebook_to_html(notebook: str | os.PathLike | nbformat.NotebookNode, target: str | os.PathLike,
                     step: Step | None = None, steps: list[Step] = (), week: str = "", brief: bool = False,
                     shop: str = "") -> Path:
    """An executed notebook as a step page of the report (or its brief edition, ``brief``).

    The injected-parameters cell is removed (papermill prints every parameter there); the brief edition
    also drops the code and the cells tagged ``analyst-only``, the full page the cells tagged ``brief-only``
    (the plain-words tables of :mod:`playbook.report.brief_tables`). Links to the guides (``../docs/*.md``)
    point to the report's own copies. ``shop``: the shop's name, first in the page's title.
    """
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    nb = nbformat.from_dict(nb)  # the title below is the page's, not the file's
    step = step or Step(Path(str(target)).stem, Path(str(target)).stem)
    edition = " (brief)" if brief else ""
    title = f"Week {week} · {step.title}{edition} · Returns playbook" if week else f"{step.title}{edition}"
    nb.metadata["title"] = page_title(title, shop)
    nav = nav_for(step.stem, list(steps) or [step], brief=brief)
    resources = {"playbook": {"root": nav.root, "css": CSS, "topbar": _render("topbar.html.j2", nav=nav),
                              "prevnext": _render("prevnext.html.j2", nav=nav)}}
    body, _ = _exporter(brief).from_notebook_node(nb, resources=resources)
    for page, (path, _) in GUIDES.items():
        body = body.replace(f'href="../docs/{path.name}', f'href="{nav.root}{page}.html')
    return write_text(target, body)
