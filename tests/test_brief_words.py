"""The brief's step pages and the alerts speak the index's words (issue 21 item 7): no metric id, no
column id, no method code, no raw p-value, no money without its currency.

``jargon`` is the check; the sample week's rendered brief (``sample_week``, one papermill run per session)
is what it reads. The check itself is tested on sentences the analyst's pages really wrote before the
brief got its own tables, so a check that finds nothing cannot pass for a clean page.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from playbook.core.settings import MetricSettings
from playbook.metrics.dictionary import definitions
from playbook.report.summary import Summary
from playbook.run import alerts as al

#: what only an analyst reads, each with the name the failure gives it
JARGON = {
    "metric id": re.compile(r"\b(?:" + "|".join(sorted(definitions(MetricSettings()), key=len, reverse=True))
                            + r"|return_rate_\d+d)\b"),
    "column id": re.compile(r"\b(?:ci_low|ci_high|p_value|primary_metric|experiment_id|money_per_week|expected_low|"
                            r"expected_high|estimate_low)\b"),
    "method code": re.compile(r"\b(?:km|welch|did-[a-z-]+|cuped-[a-z]+|return-within-k[a-z-]*|[a-z]+-jackknife-t|"
                              r"logrank|cox-clustered|delta)\b"),
    "raw p-value": re.compile(r"(?<![\d.,])(?:0\.\d{4,}|\d(?:\.\d+)?e-\d+)\b|\b[pq] ?= ?\d"),
    "money without currency": re.compile(r"\b(?:saved per week|saves?|cost|costs)(?: about)?:? -?(?!\d{4}-W)\d"),
}


def jargon(text: str) -> list[tuple[str, str]]:
    """Every (kind, words) of ``text`` a stakeholder should not meet, with a few words around it."""
    return [(kind, text[max(m.start() - 30, 0):m.end() + 30]) for kind, rx in JARGON.items() for m in rx.finditer(text)]


def visible_text(page: str) -> str:
    """What a reader sees of a page: no style, script or image data, tags removed, spaces collapsed."""
    body = re.sub(r"<(style|script|svg)\b.*?</\1>", " ", page, flags=re.S)
    body = re.sub(r'<img\b[^>]*>', " ", body)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.mark.parametrize("said, kind", [
    ("EXP-2026-W43 | primary | return_rate_14d | km | -0.05068", "metric id"),
    ("| estimate | ci_low | ci_high | p_value | n |", "column id"),
    ("| discount_depth | did-cohort-week-t | -3.786 |", "method code"),
    ("| -2.029 | 0.001092 | 10 |", "raw p-value"),
    ("shorter-window view | 2.181e-07 | 1568", "raw p-value"),
    ("| follow-ups | saved per week 1332", "money without currency"),
    ("excess cost 9,738 (q = 1.4e-14)", "money without currency"),
    ("watch guardrail contact_rate weekly after the roll-out", "metric id"),
])
def test_the_check_finds_what_the_analysts_pages_wrote(said, kind):
    assert kind in {k for k, _ in jargon(said)}


@pytest.mark.parametrize("said", [
    "Return rate within 14 days of delivery | -5.1 points | -9.4 to -0.8 points | probably not chance",
    "difference in differences, cohort-weeks | unlikely to be chance",
    "GBP 1,332 per week saved on the cohort; excess cost EUR 9,738; week 2026-W47; 66.7 %; 1,646 units",
    "return curves (Kaplan-Meier), per customer; harm beyond -EUR 2.00",
])
def test_the_check_lets_plain_words_pass(said):
    assert jargon(said) == []


@pytest.mark.notebooks
def test_the_briefs_step_pages_and_the_alerts_speak_the_index_words(sample_week):
    report: Path = sample_week["report"]
    pages = sorted((report / "brief").glob("0*.html"))
    assert len(pages) == 5
    found = {page.name: jargon(visible_text(page.read_text(encoding="utf-8"))) for page in pages}
    # alerts.md as the weekly command writes it (run_week leaves the alerts to the command)
    alerts = al.render(al.week_alerts(Summary.from_json(sample_week["summary"]), str(report)))
    found["alerts.md"] = jargon(alerts)
    assert {name: hits for name, hits in found.items() if hits} == {}


@pytest.mark.notebooks
def test_the_analysts_full_page_keeps_the_raw_table(sample_week):
    """The brief's table replaces the raw one on the brief only: the analyst still reads ids and p-values."""
    full = visible_text((sample_week["report"] / "04_comparison.html").read_text(encoding="utf-8"))
    assert "ci_low" in full and "p_value" in full and "did-cohort-week-t" in full
    assert "difference in differences, cohort-weeks" not in full
