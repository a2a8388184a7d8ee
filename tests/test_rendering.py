"""Rendering of untrusted text: every value from the data reaches HTML escaped, never as markup."""
from __future__ import annotations

import html
import re

import markupsafe
import pandas as pd

from playbook.report.rendering import escape, html_table, quote_block

SCRIPT = "<script>alert('x')</script>"
BOLD = "<b>tiny</b>"
SCRIPT_ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
BOLD_ESCAPED = "&lt;b&gt;tiny&lt;/b&gt;"


def assert_inert(page: str, *payloads: str) -> None:
    for p in payloads:
        assert p not in page, f"raw {p!r} reached the HTML"
        # quotes need escaping only inside attributes; pandas leaves them as text in cells
        escaped = {html.escape(p, quote=True), html.escape(p, quote=False), str(markupsafe.escape(p))}
        assert any(e in page for e in escaped), f"escaped {p!r} missing from the HTML"


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
    assert re.search(r"<td[^>]*>1,235</td>", page) and re.search(r"<td[^>]*></td>", page)


def test_html_table_shows_booleans_as_words_and_classes_status_cells_keeping_the_word():
    page = html_table(pd.DataFrame({"status": ["red", "not available"], "flagged": [True, False]}))
    assert re.search(r'<td[^>]*class="[^"]*status red"[^>]*>red</td>', page)
    assert re.search(r'class="[^"]*status not-available"[^>]*>not available</td>', page)
    assert re.search(r">yes</td>", page) and re.search(r">no</td>", page) and "True" not in page


def test_html_table_formats_a_column_as_asked():
    page = html_table(pd.DataFrame({"share": [0.1234], "cost": [5161.4]}), formats={"share": "{:.1%}"})
    assert re.search(r">12.3%</td>", page) and re.search(r">5,161</td>", page)


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


# --- say: sentences built from data ----------------------------------------------------------------

LINK = "[x](javascript:alert(1))"
IMAGE = "![](http://evil.example/pixel.png)"


def exported(display_object) -> str:
    """The HTML export (nbconvert, as the weekly run does it) of a cell displaying ``display_object``."""
    from IPython.core.formatters import DisplayFormatter
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from playbook.report.pages import _exporter

    data, _ = DisplayFormatter().format(display_object)
    cell = new_code_cell("display(say(...))")
    cell.outputs = [new_output("display_data", data=data)]
    nb = new_notebook()
    nb.cells = [cell]
    return _exporter(brief=False).from_notebook_node(nb)[0]


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
