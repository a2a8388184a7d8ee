"""The index page says, first, when this week's plan cannot reach power (no experiments row)."""
from __future__ import annotations

from section_examples import lever

from playbook.report.rendering import index_page

REASON = ("No experiment is ready this week: fit_size_message on category=<b>knitwear</b> cannot reach 80% power "
          "within 8 weeks, nor can any alternative, so no experiments row was written.")


def test_an_unreachable_plan_is_the_first_sentence_of_the_index_escaped():
    page = index_page({"week": "2026-W47", "lever": lever(ready=False, no_row_reason=REASON)}, [])
    body = page.split("<body>", 1)[1]
    first_paragraphs = body.split("<h2>", 1)[0]
    assert "No experiment is ready this week" in first_paragraphs
    assert "category=&lt;b&gt;knitwear&lt;/b&gt;" in first_paragraphs and "<b>knitwear" not in page


def test_a_ready_plan_adds_nothing_to_the_index():
    page = index_page({"week": "2026-W47", "lever": lever(ready=True, no_row_reason=None)}, [])
    assert "No experiment is ready" not in page
