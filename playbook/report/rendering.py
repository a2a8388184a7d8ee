"""Safe display inside the notebooks: data text as escaped HTML, tables, the checks of a comparison.

The report's pages (index, brief, step pages) are built in :mod:`playbook.report.pages`.

Customer text (return comments) is untrusted: it is always HTML-escaped, never rendered as markup.
"""
from __future__ import annotations

import html
from typing import Any, Iterable

import pandas as pd

from playbook.core.formats import date_text
from playbook.steps.experiments import Comparison, state_why


def escape(text: Any) -> str:
    """Untrusted text as inert HTML (``<script>`` shows as text, never runs)."""
    return html.escape("" if text is None else str(text), quote=True)


#: columns whose cells are a status word: coloured by class, the word itself always shown
STATUS_COLUMNS = ("status", "decision", "state")


def html_table(frame: pd.DataFrame, float_format: str = "{:,.4g}", max_rows: int = 50,
               formats: dict[str, str] | None = None) -> str:
    """A DataFrame as a table for people: every cell and header escaped, numbers formatted per column
    (``formats`` by column, ``float_format`` for the other float columns), True/False as yes/no,
    missing values empty, status words classed (colour and a mark, the word kept), inside a box that
    scrolls sideways on a narrow screen. Built with pandas' Styler."""
    shown = frame.head(max_rows).copy()
    for column in shown.columns:
        if pd.api.types.is_bool_dtype(shown[column]):
            shown[column] = shown[column].map({True: "yes", False: "no"})
    shown.columns = [str(c) for c in shown.columns]
    floats = [c for c in shown.columns if pd.api.types.is_float_dtype(shown[c]) and c not in (formats or {})]
    styler = shown.style.hide(axis="index").format(na_rep="", escape="html")
    if floats:
        styler = styler.format(float_format, subset=floats, na_rep="", escape="html")
    for column, fmt in (formats or {}).items():
        if column in shown.columns:
            styler = styler.format(fmt, subset=[column], na_rep="", escape="html")
    styler = styler.format_index(escape="html", axis=1)
    classes = pd.DataFrame("", index=shown.index, columns=shown.columns)
    for column in shown.columns:
        if column.lower() in STATUS_COLUMNS:
            word = shown[column].astype(str).str.split(r"[:(]", regex=True).str[0].str.strip().str.lower()
            classes[column] = "status " + word.str.replace(" ", "-", regex=False)
    styler = styler.set_td_classes(classes).set_table_attributes('class="data"')
    return f'<div class="table-scroll">{styler.to_html()}</div>'


def quote_block(texts: Iterable[str], limit: int = 10) -> str:
    """Customer comments as an escaped list, for notebooks (``IPython.display.HTML``)."""
    items = [f"<li><q>{escape(t)}</q></li>" for t in list(texts)[:limit] if t is not None and str(t).strip()]
    return "<ul class='customer-text'>" + "".join(items) + "</ul>" if items else "<p><em>no comment</em></p>"


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
                     + (f"; read again on {date_text(g.follow_up_on)}" if g.follow_up_on else "") + ".")
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
