"""Rendering: executed notebooks to HTML, the week's index page, and safe display of customer text.

Customer text (return comments) is untrusted: it is always HTML-escaped, never rendered as markup.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterable

import mistune
import nbformat
import pandas as pd
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from playbook.core.atomic import write_text
from playbook.core.paths import METHOD_GUIDE, METHOD_PAGE
from playbook.core.vocabulary import Decision, Status
from playbook.report.summary import Summary
from playbook.steps.baseline import MetricStatusEntry
from playbook.steps.experiments import Comparison, state_why
from playbook.steps.review import ReviewEntry

INJECTED_TAG = "injected-parameters"


def escape(text: Any) -> str:
    """Untrusted text as inert HTML (``<script>`` shows as text, never runs)."""
    return html.escape("" if text is None else str(text), quote=True)


def html_table(frame: pd.DataFrame, float_format: str = "{:,.4g}", max_rows: int = 50) -> str:
    """A DataFrame as an HTML table with every cell escaped (pandas escapes too; this says so)."""
    return frame.head(max_rows).to_html(index=False, escape=True, na_rep="", float_format=float_format.format, border=0)


def quote_block(texts: Iterable[str], limit: int = 10) -> str:
    """Customer comments as an escaped list, for notebooks (``IPython.display.HTML``)."""
    items = [f"<li><q>{escape(t)}</q></li>" for t in list(texts)[:limit] if t is not None and str(t).strip()]
    return "<ul class='customer-text'>" + "".join(items) + "</ul>" if items else "<p><em>no comment</em></p>"


def _exporter(no_input: bool) -> HTMLExporter:
    exporter = HTMLExporter(template_name="lab")
    remover = TagRemovePreprocessor(remove_cell_tags={INJECTED_TAG}, enabled=True)
    exporter.register_preprocessor(remover, enabled=True)
    if no_input:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    return exporter


def notebook_to_html(notebook: str | os.PathLike | nbformat.NotebookNode, target: str | os.PathLike,
                     no_input: bool = False) -> Path:
    """Export an executed notebook to HTML without its injected-parameters cell.

    The injected cell is removed because papermill prints every parameter there, and
    ``--report-mode`` does not hide it from nbconvert. The notebooks' links to the method guide
    (``../docs/method.md``) point to the report's own copy (``method_page``): the full pages sit
    beside it, the brief pages one folder below.
    """
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    body, _ = _exporter(no_input).from_notebook_node(nb)
    guide = f"../{METHOD_PAGE}" if no_input else METHOD_PAGE
    return write_text(target, body.replace(f'href="../docs/{METHOD_GUIDE.name}', f'href="{guide}'))


def method_page(guide: Path = METHOD_GUIDE) -> str:
    """The method guide (docs/method.md, the project's own text, not data) as a page of the report."""
    html = mistune.create_markdown(escape=False, plugins=["table", "task_lists", "strikethrough"])
    return _PAGE.format(title="The returns playbook: method guide", body=html(guide.read_text(encoding="utf-8")))


_STATUS_COLOURS = {"green": "#1a7f37", "amber": "#b7791f", "red": "#c53030", "not available": "#718096"}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1a202c; }}
table {{ border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; }}
th, td {{ text-align: left; padding: 0.3rem 0.6rem; border-bottom: 1px solid #e2e8f0; vertical-align: top; }}
.status {{ font-weight: 600; }}
.muted {{ color: #718096; }}
</style></head><body>
{body}
</body></html>
"""


def _status_cell(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#1a202c")
    return f"<td class='status' style='color:{colour}'>{escape(status)}</td>"


_GUARDRAIL_WORDS = {"safe": "safe", "not_shown_safe": "not shown safe yet", "harm_likely": "harm likely",
                    "breached": "breached", "not_measured": "not measured"}


def _verdict_row(r: ReviewEntry) -> str:
    """One verdict for a manager: the decision (with its look and date), why, flags, follow-ups, guardrails."""
    decision = str(r.decision)
    if r.decision == Decision.PROVISIONAL and r.readable_on:
        decision += f" until {r.readable_on.isoformat()}"
    if r.look:
        decision += f" (look {r.look} of {r.planned_looks or '?'})"
    extra = "".join(f"<br><b>Check before rolling out:</b> {escape(f)}" for f in r.flags)
    extra += "".join(f"<br><b>Follow-up:</b> {escape(f)}" for f in r.follow_ups)
    guards = "; ".join(f"{g.metric} {_GUARDRAIL_WORDS.get(g.state, g.state)}" for g in r.guardrails)
    return (f"<tr><td>{escape(r.experiment_id)}</td><td class='status'>{escape(decision)}</td>"
            f"<td>{escape(r.why)}{extra}</td><td>{escape(guards)}</td></tr>")


def index_page(summary: Summary | dict[str, Any], notebooks: list[tuple[str, str]], brief_dir: str | None = "brief") -> str:
    """The week's headline page: statuses, weak cohort, verdicts, next action, then the links.

    ``summary`` is the typed summary (a parsed summary.json is read through its models first, so a
    section that does not match its model fails here, loudly). ``notebooks`` is a list of
    (title, html file name). Every value from the data is escaped.
    """
    s = summary if isinstance(summary, Summary) else Summary.from_json(summary)
    week = escape(s.week or "")
    guide = METHOD_PAGE if brief_dir else f"../{METHOD_PAGE}"

    def term(words: str, anchor: str) -> str:  # a term of the page, linked to the guide's glossary
        return f"<a href='{guide}#{anchor}'>{words}</a>"

    parts = [f"<h1>Returns playbook, week {week}</h1>",
             f"<p class='muted'>Data: {escape(s.data_source or '')}; "
             f"known up to {escape(s.as_of or '')}.</p>"]
    if s.choices:
        said = "; ".join(f"{c.name} = {c.value!r} instead of the default {c.default} ({', '.join(c.notebooks)})"
                         for c in s.choices)
        parts.append(f"<p><b>Chosen by the analyst:</b> {escape(said)}.</p>")
    lever = s.lever
    if lever is not None and not lever.ready and lever.no_row_reason:  # said first: no experiment starts this week
        parts.append(f"<p><b>{escape(lever.no_row_reason)}</b></p>")
    metrics = s.baseline.metrics if s.baseline is not None else {}
    if metrics:
        parts.append(_statuses(metrics, term('decision table', 'the-decision-table')))
    trig = s.baseline.triggers if s.baseline is not None else ()
    if trig:
        items = "".join(f"<li><b>{escape(t.zone)}</b> ({escape(t.metric)}): {escape(t.action)}</li>" for t in trig)
        parts.append(f"<h2>Red triggers and their actions</h2><ul>{items}</ul>")
    if "weak_cohort" in s.present:
        wc = s.weak_cohort
        if wc:
            filters = ", ".join(f"{k} = {v}" for k, v in wc.filters.items())
            parts.append(
                f"<h2>{term('Weak cohort', 'weak-cohort')}</h2><p>{escape(filters)}: return rate {escape(_pct(wc.return_rate))} "
                f"vs {escape(_pct(wc.expected_rate))} expected on {escape(wc.units)} units; "
                f"excess cost {escape(_money(wc.excess_cost))} (q = {escape(_num(wc.q_value))}).</p>"
            )
        else:
            parts.append(f"<h2>{term('Weak cohort', 'weak-cohort')}</h2><p>No cohort stands out this week.</p>")
        aside = [c.why for c in s.weak_cohort_set_aside or ()]
        if aside:
            items = "".join(f"<li>{escape(why)}</li>" for why in aside)
            parts.append(f"<p>Rose too, but not a cohort to act on:</p><ul>{items}</ul>")
    if s.review:
        rows = "".join(_verdict_row(r) for r in s.review)
        parts.append(f"<h2>{term('J+7', 'j7')} verdicts</h2><table><tr><th>experiment</th><th>decision</th><th>why</th>"
                     f"<th>{term('guardrails', 'guardrail')}</th></tr>{rows}</table>")
    if s.overdue:
        items = "".join(f"<li>{escape(item.text)}</li>" for item in s.overdue)
        parts.append(f"<h2>Overdue reviews</h2><ul>{items}</ul>")
    nxt = s.next_action
    if nxt:
        parts.append(
            f"<h2>Next action</h2><p>{escape(nxt.action)} on {escape(nxt.cohort)} "
            f"(excess cost {escape(_money(nxt.excess_cost))}).</p>"
        )
    warnings = s.data_quality.warnings if s.data_quality is not None else ()
    if warnings:
        items = "".join(f"<li>{escape(w.message)}</li>" for w in warnings)
        parts.append(f"<h2>Data quality</h2><ul>{items}</ul>")
    links = "".join(f"<li><a href='{escape(href)}'>{escape(title)}</a></li>" for title, href in notebooks)
    parts.append(f"<h2>Notebooks</h2><ol>{links}</ol>")
    parts.append(f"<p>New to the method? <a href='{guide}'>The method guide</a> explains the weekly loop, the "
                 f"decision table and every term (<a href='{guide}#glossary'>glossary</a>).</p>")
    if brief_dir:
        parts.append(f"<p><a href='{escape(brief_dir)}/index.html'>Stakeholder edition (no code)</a> · "
                     f"<a href='summary.json'>summary.json</a></p>")
    return _PAGE.format(title=f"Returns playbook {week}", body="\n".join(parts))


_STATUS_ORDER = (Status.RED, Status.AMBER, Status.UNAVAILABLE, Status.GREEN)


def _statuses(metrics: dict[str, MetricStatusEntry], table_link: str) -> str:
    """The week's statuses counted, the red and amber ones first with their action (a red without a
    rule of the decision table says so), the green ones folded; metrics by their names."""
    by = {status: [(name, m) for name, m in metrics.items() if m.status == status] for status in _STATUS_ORDER}
    count = ", ".join(f"{len(by[st])} {st}" for st in _STATUS_ORDER if by[st])
    rows = ""
    for status in _STATUS_ORDER[:3]:
        for name, m in by[status]:
            action = m.action or ("no rule: investigate" if status == Status.RED else "")
            where = f" ({m.zone})" if m.zone else ""
            rows += (f"<tr><td>{escape(m.title or name)}</td>{_status_cell(m.status)}<td>{escape(m.why)}</td>"
                     f"<td>{escape(action)}{escape(where)}</td></tr>")
    greens = "".join(f"<li>{escape(m.title or name)}: {escape(m.why)}</li>" for name, m in by[Status.GREEN])
    folded = (f"<details><summary>{len(by[Status.GREEN])} green: within their usual range</summary>"
              f"<ul>{greens}</ul></details>") if greens else ""
    table = (f"<table><tr><th>metric</th><th>status</th><th>why</th><th>action</th></tr>{rows}</table>"
             if rows else "")
    return f"<h2>Statuses: {escape(count)} <small>({table_link})</small></h2>{table}{folded}"


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{float(v) * 100:.1f} %"


def _money(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):,.0f}"


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3g}"


def say(text: str, bold_prefix: str | None = None):
    """A sentence built from data, as HTML (``IPython.display.HTML``): every part escaped.

    Category names, customer text and ids come from the source and are untrusted. HTML, not
    Markdown: escaping keeps ``<img onerror=...>`` inert, but Markdown would still turn a value such
    as ``[x](javascript:alert(1))`` or ``![](http://...)`` into a live link or a remote image,
    in the notebook and in the HTML export; HTML-escaped text inside a ``<p>`` stays text.
    """
    from IPython.display import HTML

    prefix = f"<b>{escape(bold_prefix)}</b> " if bold_prefix else ""
    return HTML(f"<p>{prefix}{escape(text)}</p>")


def comparison_checks(c: Comparison) -> str:
    """HTML (every data value escaped) on the checks behind one comparison: split, follow-up, warnings."""
    items = []
    for label, srm in (("all assigned customers", c.srm), ("exposed customers analysed", c.srm_exposed)):
        if srm is None:
            continue
        if srm.p_value is None:
            items.append(f"Split of {label}: {escape(srm.observed)}; no test possible ({escape(srm.error)}).")
        else:
            verdict = "<b>mismatch: no keep possible</b>" if srm.mismatch else "consistent with the planned split"
            items.append(f"Split of {label}: {escape(srm.observed)}, p = {srm.p_value:.3g}: {verdict}.")
    if c.primary.window is not None:
        items.append(f"Pre-registered window: {escape(c.primary.window.why)}.")
    for g in c.guardrails:
        items.append(f"Guardrail {escape(g.metric)}: {escape(state_why(g))}"
                     + (f"; read again on {g.follow_up_on:%Y-%m-%d}" if g.follow_up_on else "") + ".")
    items += [f"<b>Blocks a keep</b>: {escape(b)}" for b in c.keep_blockers]
    choice = c.views.get("follow_up")
    if choice is not None:
        items.append(f"Follow-up window: {escape(choice.reason)}.")
    for name in ("log_rank", "cox"):
        if name in c.views:
            items.append(f"{name.replace('_', '-')}: {escape(c.views[name])}")
    trend = c.views.get("pre_trend")
    if trend is not None:
        if trend.error:
            items.append(f"Pre-trend check not run: {escape(trend.error)}")
        else:
            items.append(f"Pre-trend check ({escape(trend.method)}): p = {trend.p_value:.3g} over "
                         f"{trend.n_pre_coefficients} pre-period weeks; "
                         f"{escape(trend.warning or 'no sign of diverging pre-trends')} (note: {escape(trend.note)}).")
    items += [f"Warning: {escape(w)}" for w in c.warnings if w not in c.keep_blockers]
    title = (f"{escape(c.experiment_id)} ({escape(c.design)}, lever {escape(c.experiment.get('lever'))} "
             f"on {escape(c.experiment.get('cohort'))})")
    return f"<h3>{title}</h3><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
