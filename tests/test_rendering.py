"""Rendering of untrusted text: every value from the data reaches HTML escaped, never as markup."""
from __future__ import annotations

import html

import pandas as pd
import pytest
import section_examples as examples

from playbook.core.jsonmodel import FieldError
from playbook.report.rendering import escape, html_table, index_page, quote_block

SCRIPT = "<script>alert('x')</script>"
BOLD = "<b>tiny</b>"
SCRIPT_ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
BOLD_ESCAPED = "&lt;b&gt;tiny&lt;/b&gt;"


def assert_inert(page: str, *payloads: str) -> None:
    for p in payloads:
        assert p not in page, f"raw {p!r} reached the HTML"
        # quotes need escaping only inside attributes; pandas leaves them as text in cells
        assert html.escape(p, quote=True) in page or html.escape(p, quote=False) in page, \
            f"escaped {p!r} missing from the HTML"


# --- escape -----------------------------------------------------------------------------------

def test_escape_turns_a_script_tag_into_text():
    assert escape(SCRIPT) == SCRIPT_ESCAPED


def test_escape_turns_bold_markup_into_text():
    assert escape(BOLD) == BOLD_ESCAPED


def test_escape_quotes_both_kinds_of_quotes_and_ampersands():
    assert escape("a \"b\" & 'c'") == "a &quot;b&quot; &amp; &#x27;c&#x27;"


def test_escape_of_none_is_empty_and_of_a_number_is_its_text():
    assert escape(None) == ""
    assert escape(3.5) == "3.5"


# --- html_table -------------------------------------------------------------------------------

def test_html_table_escapes_cells():
    page = html_table(pd.DataFrame({"comment": [SCRIPT, BOLD]}))
    assert_inert(page, SCRIPT, BOLD)


def test_html_table_escapes_column_names():
    page = html_table(pd.DataFrame({BOLD: [1]}))
    assert_inert(page, BOLD)


def test_html_table_shows_at_most_max_rows():
    page = html_table(pd.DataFrame({"x": [f"row{i}" for i in range(10)]}), max_rows=3)
    assert "row2" in page and "row3" not in page


def test_html_table_formats_floats_and_leaves_missing_values_empty():
    page = html_table(pd.DataFrame({"x": [1234.5678, None]}))
    assert "<td>1,235</td>" in page and "<td></td>" in page


# --- quote_block ------------------------------------------------------------------------------

def test_quote_block_escapes_customer_comments():
    block = quote_block([SCRIPT, BOLD])
    assert_inert(block, SCRIPT, BOLD)
    assert block.count("<li>") == 2


def test_quote_block_skips_blank_and_missing_comments():
    assert quote_block(["  ", None, "ok"]).count("<li>") == 1


def test_quote_block_keeps_only_the_first_limit_comments():
    block = quote_block([f"c{i}" for i in range(5)], limit=2)
    assert "c1" in block and "c2" not in block


def test_quote_block_without_comments_says_so():
    assert quote_block([]) == "<p><em>no comment</em></p>"


# --- index_page -------------------------------------------------------------------------------

@pytest.fixture
def hostile_summary() -> dict:
    """A summary.json whose every text from the data carries markup (complete sections, as written)."""
    status = {"value": 0.3, "baseline": 0.1, "status": "red", "why": BOLD + " went up", "week": "W",
              "zone": None, "action": None}
    warning = {"table": "returns", "rule": "r", "n_rows": 1, "examples": []}
    return {
        "week": "2026-W47" + BOLD,
        "data_source": SCRIPT,
        "as_of": "2026-11-22",
        "baseline": examples.baseline(
            metrics={"return_rate_14d" + SCRIPT: status},
            triggers=[{"zone": SCRIPT, "metric": BOLD, "action": "act " + SCRIPT, "why": ""}]),
        "weak_cohort": examples.weak_cohort(filters={"category": BOLD, "reason_code": SCRIPT}, return_rate=0.3,
                                            expected_rate=0.1, units=1200, excess_cost=4321.0, q_value=0.0012),
        "review": [examples.review(experiment_id="EXP-" + BOLD, decision="keep", why=SCRIPT)],
        "next_action": examples.next_action(action=BOLD, cohort=SCRIPT, excess_cost=99.0),
        "data_quality": examples.data_quality(warnings=[dict(warning, message=SCRIPT), dict(warning, message=BOLD)]),
    }


NOTEBOOKS = [("01 Baseline", "01_baseline.html"), ("02 Weak cohort", "02_weak_cohort.html")]


def test_index_page_lists_a_link_to_every_notebook(hostile_summary):
    page = index_page(hostile_summary, NOTEBOOKS)
    for title, href in NOTEBOOKS:
        assert f"<a href='{href}'>{title}</a>" in page


def test_index_page_links_the_brief_and_the_summary():
    page = index_page({"week": "2026-W47"}, NOTEBOOKS)
    assert "<a href='brief/index.html'>" in page and "<a href='summary.json'>" in page
    assert "brief/index.html" not in index_page({"week": "2026-W47"}, NOTEBOOKS, brief_dir=None)


def test_index_page_escapes_the_week_and_the_data_source(hostile_summary):
    page = index_page({k: hostile_summary[k] for k in ("week", "data_source", "as_of")}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)


def test_index_page_escapes_metric_names_and_reasons(hostile_summary):
    page = index_page({"week": "W", "baseline": dict(hostile_summary["baseline"], triggers=[])}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)


def test_index_page_escapes_trigger_fields(hostile_summary):
    page = index_page({"week": "W", "baseline": dict(hostile_summary["baseline"], metrics={})}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)


def test_index_page_escapes_the_weak_cohort_filters_and_formats_its_numbers(hostile_summary):
    page = index_page({"week": "W", "weak_cohort": hostile_summary["weak_cohort"]}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)
    assert "30.0 %" in page and "10.0 %" in page and "4,321" in page and "0.0012" in page


def test_index_page_fails_naming_the_section_and_field_a_summary_lacks(hostile_summary):
    weak = dict(hostile_summary["weak_cohort"])
    del weak["excess_cost"]
    with pytest.raises(FieldError, match="weak_cohort has no field 'excess_cost'"):
        index_page({"week": "W", "weak_cohort": weak}, NOTEBOOKS)


def test_index_page_says_when_no_cohort_stands_out():
    assert "No cohort stands out this week." in index_page({"week": "W", "weak_cohort": None}, NOTEBOOKS)


def test_index_page_escapes_verdicts(hostile_summary):
    page = index_page({"week": "W", "review": hostile_summary["review"]}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)


def test_index_page_escapes_the_next_action(hostile_summary):
    page = index_page({"week": "W", "next_action": hostile_summary["next_action"]}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)


def test_index_page_escapes_data_quality_warnings(hostile_summary):
    page = index_page({"week": "W", "data_quality": hostile_summary["data_quality"]}, NOTEBOOKS)
    assert_inert(page, SCRIPT, BOLD)


def test_index_page_escapes_notebook_titles_and_file_names():
    page = index_page({"week": "W"}, [(BOLD, "x.html' onmouseover='alert(1)")])
    assert_inert(page, BOLD)
    assert "onmouseover='alert" not in page


def test_index_page_of_a_whole_hostile_summary_contains_no_raw_payload(hostile_summary):
    page = index_page(hostile_summary, NOTEBOOKS)
    assert "<script>" not in page
    assert BOLD not in page


# --- say: sentences built from data ----------------------------------------------------------------

LINK = "[x](javascript:alert(1))"
IMAGE = "![](http://evil.example/pixel.png)"


def exported(display_object) -> str:
    """The HTML export (nbconvert, as the weekly run does it) of a cell displaying ``display_object``."""
    from IPython.core.formatters import DisplayFormatter
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from playbook.report.rendering import _exporter

    data, _ = DisplayFormatter().format(display_object)
    cell = new_code_cell("display(say(...))")
    cell.outputs = [new_output("display_data", data=data)]
    nb = new_notebook()
    nb.cells = [cell]
    return _exporter(no_input=False).from_notebook_node(nb)[0]


def test_say_returns_html_with_the_prefix_in_bold_and_both_parts_escaped():
    from IPython.display import HTML

    from playbook.report.rendering import say

    out = say(BOLD, "Cohort " + SCRIPT)
    assert isinstance(out, HTML)
    assert out.data == f"<p><b>Cohort {SCRIPT_ESCAPED}</b> {BOLD_ESCAPED}</p>"


def test_say_without_prefix_is_one_escaped_paragraph():
    from playbook.report.rendering import say

    assert say(BOLD).data == f"<p>{BOLD_ESCAPED}</p>"


def test_a_markdown_link_in_data_is_no_live_link_in_the_html_export():
    from playbook.report.rendering import say

    page = exported(say(f"category {LINK} stands out", "Conclusion."))
    assert 'href="javascript:' not in page and "href='javascript:" not in page
    assert LINK in page  # shown as the text it is


def test_a_markdown_image_in_data_loads_nothing_in_the_html_export():
    from playbook.report.rendering import say

    page = exported(say(f"category {IMAGE}"))
    assert 'src="http://evil.example' not in page and IMAGE in page


def test_every_report_page_links_the_reports_own_copy_of_the_method_guide(tmp_path):
    import nbformat

    from playbook.report.rendering import method_page, notebook_to_html

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "See the [method guide](../docs/method.md#step-1) and its [glossary](../docs/method.md#glossary).")])
    full = notebook_to_html(nb, tmp_path / "01.html").read_text(encoding="utf-8")
    brief = notebook_to_html(nb, tmp_path / "brief" / "01.html", no_input=True).read_text(encoding="utf-8")
    assert 'href="method.html#step-1"' in full and "docs/method.md" not in full
    assert 'href="../method.html#glossary"' in brief and "docs/method.md" not in brief
    guide = method_page()
    assert '<a id="glossary"></a>' in guide and "<table>" in guide  # anchors kept, tables rendered
    assert index_page({"week": "2026-W47"}, []).count("href='method.html") == 2
    assert "href='../method.html'" in index_page({"week": "2026-W47"}, [], brief_dir=None)


def test_the_index_links_its_terms_to_the_guides_glossary():
    import re

    from section_examples import summary as whole_week

    from playbook.core.paths import METHOD_GUIDE

    page = index_page(whole_week(), [])
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', METHOD_GUIDE.read_text(encoding="utf-8")))
    linked = set(re.findall(r"href='method\.html#([a-z0-9-]+)'", page))
    assert {"weak-cohort", "j7", "guardrail", "the-decision-table"} <= linked <= anchors


def test_the_index_counts_the_statuses_puts_reds_first_with_their_action_and_folds_the_greens():
    from section_examples import baseline

    week = baseline()
    week["metrics"]["contact_cost"] = {"value": 1449.2, "baseline": 644.6, "status": "red", "why": "5.3 sd worse",
                                       "week": "2026-W47", "zone": None, "action": None, "title": "Contact cost",
                                       "format": "currency"}
    week["metrics"]["closure_rate"]["title"] = "Action closure rate"
    page = index_page({"week": "2026-W47", "baseline": week}, [])
    assert "Statuses: 2 red, 3 green" in page  # return rate, reason mix and contact rate are green
    table, folded = page.split("<details>")
    # the red ones in the table, by their names, each with an action: the decision table's, or none written
    assert "Action closure rate" in table and "reduce scope, name an owner (execution)" in table
    assert "Contact cost" in table and "no rule: investigate" in table
    assert "return_rate_14d" not in table and "3 green: within their usual range" in folded
