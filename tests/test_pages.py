"""The report's pages for people (issue 10): the index as a headline, the brief in plain words, the
navigation, the guides, the list of weeks; every value from the data escaped."""
from __future__ import annotations

import html
import json
import re

import markupsafe
import nbformat
import pytest
import section_examples as examples

from playbook.config.loader import load_config
from playbook.core.jsonmodel import FieldError
from playbook.report.pages import (
    GUIDES,
    STEP_LABELS,
    Step,
    brief_page,
    guide_page,
    index_page,
    nav_for,
    notebook_to_html,
    write_weeks_index,
)

SCRIPT = "<script>alert('x')</script>"
BOLD = "<b>tiny</b>"
CONFIG = load_config()
STEPS = [Step(stem, f"Step {label}") for stem, label in STEP_LABELS.items()]


def text_of(page: str) -> str:
    """What a reader sees: the page without tags, entities decoded, spaces collapsed."""
    body = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S)
    body = re.sub(r"</?(span|b|a|small)\b[^>]*>", "", body)  # inline: no space of their own
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def assert_inert(page: str, *payloads: str) -> None:
    for p in payloads:
        assert p not in page, f"raw {p!r} reached the HTML"
        escaped = {html.escape(p, quote=True), html.escape(p, quote=False), str(markupsafe.escape(p))}
        assert any(e in page for e in escaped), f"escaped {p!r} missing"


@pytest.fixture
def week() -> dict:
    return examples.summary()


@pytest.fixture
def hostile() -> dict:
    """A summary.json whose every text from the data carries markup."""
    status = {"value": 0.3, "baseline": 0.1, "status": "red", "why": BOLD + " went up", "week": "W",
              "zone": None, "action": None}
    warning = {"table": "returns", "rule": "r", "n_rows": 1, "examples": []}
    return examples.summary(
        week="2026-W47" + BOLD, data_source=SCRIPT,
        baseline=examples.baseline(metrics={"return_rate_14d" + SCRIPT: status},
                                   triggers=[{"zone": SCRIPT, "metric": BOLD, "action": "act " + SCRIPT, "why": ""}],
                                   open_actions=[{"action_id": "A1", "week": "2026-W40", "owner": SCRIPT,
                                                  "description": BOLD}]),
        weak_cohort=examples.weak_cohort(filters={"category": BOLD, "reason_code": SCRIPT}),
        review=[examples.review(why=SCRIPT, next_step=BOLD, flags=[SCRIPT])],
        comparisons=[examples.comparison(lever=BOLD, cohort="category=" + SCRIPT)],
        next_action=examples.next_action(description=BOLD, cohort=SCRIPT),
        data_quality=examples.data_quality(warnings=[dict(warning, message=SCRIPT)]),
        overdue=[examples.overdue(text=SCRIPT)],
    )


# --- the index: a headline for managers ---------------------------------------------------------

def test_the_index_opens_with_one_sentence_saying_what_is_red_where_money_goes_and_what_comes_next(week):
    headline = re.search(r"<p class=\"lead\" id=\"headline\">(.*?)</p>", index_page(week, STEPS, CONFIG), re.S)
    said = text_of(headline.group(1))
    assert said.startswith("Week 2026-W47: 1 metric is red (Action closure rate)")
    assert 'the weak cohort is knitwear returned as "size too small"' in said
    assert "1 experiment reviewed (1 keep)" in said and "next: fit/size message block on the product page" in said


def test_metrics_read_by_their_names_and_units_never_their_ids(week):
    page = text_of(index_page(week, STEPS, CONFIG))
    assert "Action closure rate" in page and "66.7 %" in page and "95.4 %" in page
    assert "closure_rate" not in page and "return_rate_14d" not in page


def test_a_red_without_a_rule_says_investigate_and_a_red_with_one_names_its_action_and_owner(week):
    metrics = week["baseline"]["metrics"]
    metrics["contact_cost"] = {"value": 1449.2, "baseline": 644.6, "status": "red", "why": "5.3 sd worse",
                               "week": "2026-W47", "zone": None, "action": None, "title": "Contact cost",
                               "format": "currency"}
    metrics["closure_rate"]["owner"] = "head of e-commerce"
    page = index_page(week, STEPS, CONFIG)
    table, folded = page.split("<details>", 1)
    assert "What is red: 2 red, 3 green" in text_of(table)
    rows = {text_of(r).split(" red ")[0]: text_of(r) for r in re.findall(r"<tr>.*?</tr>", table, re.S) if "red" in r}
    assert "no rule: investigate" in rows["Contact cost"] and "EUR 1,449" in rows["Contact cost"]
    assert "reduce scope, name an owner head of e-commerce execution" in rows["Action closure rate"]
    assert "3 green: within their usual range" in text_of(folded)


def test_every_status_is_a_word_with_a_mark_never_a_colour_alone(week):
    page = index_page(week, STEPS, CONFIG)
    assert re.search(r'<td data-label="status"><span class="status red">red</span></td>', page)
    assert re.search(r'<td data-label="status"><span class="status green">green</span></td>', page)


def test_the_weak_cohort_reads_in_words_with_its_money_over_its_weeks_and_its_chance_in_words(week):
    week["weak_cohort"].update(excess_cost=5161.4, q_value=6.91e-16)
    said = text_of(index_page(week, STEPS, CONFIG))
    weeks = len(week["weak_cohort"]["window_weeks"])
    assert f"EUR 5,161 of return costs above expected over {weeks} weeks" in said
    assert "(very unlikely to be chance)" in said and "6.9e-16" not in said and "q =" not in said


def test_a_verdict_shows_its_decision_effect_in_points_expected_range_money_guardrails_and_next_step(week):
    said = text_of(index_page(week, STEPS, CONFIG))
    assert "fit/size message block on the product page on knitwear" in said
    assert "keep: roll it out (look 1 of 4)" in said
    assert "Return rate within 14 days of delivery: -3.0 points (-5.0 to -1.0)" in said
    assert "expected -4.0 points to -1.0 points" in said
    assert "EUR 1,332 per week saved on the cohort" in said
    assert "Contact rate: safe" in said and "roll out" in said


def test_a_provisional_verdict_says_when_it_becomes_readable_and_its_follow_ups(week):
    week["review"] = [examples.review(decision="provisional", readable_on="2026-11-25", estimate=None, ci_low=None,
                                      ci_high=None, follow_ups=["read contact_rate again on 2026-12-09"])]
    said = text_of(index_page(week, STEPS, CONFIG))
    assert "too early to read (readable on 2026-11-25)" in said
    assert "Return rate within 14 days of delivery: not readable yet" in said
    assert "Follow-up: read contact_rate again on 2026-12-09" in said


def test_experiments_still_running_are_listed_with_their_dates(week):
    week["running"] = [{"experiment_id": "EXP-9", "lever": "clearer_description", "cohort": "category=dresses",
                        "design": "pre_post", "start_date": "2026-11-16", "review_date": "2026-12-07"}]
    for page in (index_page(week, STEPS, CONFIG), brief_page(week, STEPS, CONFIG)):
        assert ("clearer description and photos on dresses (pre/post), since 2026-11-16, review on 2026-12-07"
                in text_of(page))


def test_the_next_action_carries_its_plans_power_caveat(week):
    said = text_of(index_page(week, STEPS, CONFIG))
    assert 'Test a fit/size message block on the product page on knitwear returned as "size too small"' in said
    assert "review on 2027-01-11 with 84 % power" in said
    assert "weaker end of the expected range (-1.7 points) would need 28 weeks" in said


def test_an_unreachable_plan_is_said_before_the_statuses(week):
    week["lever"] = examples.lever(ready=False, no_row_reason="No experiment is ready this week: " + BOLD)
    page = index_page(week, STEPS, CONFIG)
    assert page.index("No experiment starts this week") < page.index('id="statuses"')
    assert_inert(page, BOLD)


def test_open_actions_are_listed_with_their_owners_and_the_closure_rate(week):
    week["baseline"]["open_actions"] = [{"action_id": "A1", "week": "2026-W40", "owner": "ben.ops",
                                         "description": "Clean up size attributes"}]
    said = text_of(index_page(week, STEPS, CONFIG))
    assert "1 action still open; 66.7 % of the week's planned actions were closed" in said
    assert "2026-W40 ben.ops Clean up size attributes" in said


def test_every_cell_of_the_index_tables_is_labelled_by_its_column_for_a_phone(week):
    week["baseline"]["open_actions"] = [{"action_id": "A1", "week": "2026-W40", "owner": "ben.ops",
                                         "description": "Clean up size attributes"}]
    page = index_page(week, STEPS, CONFIG)
    for table in re.findall(r'<table class="data cards">.*?</table>', page, re.S):
        headers = [text_of(h) for h in re.findall(r"<th\b.*?</th>", table, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S):
            assert re.findall(r'<td data-label="([^"]*)"', row) == headers
    assert page.count('<table class="data cards">') == 4  # the reds, the greens, the verdicts, the actions


def test_a_cells_label_is_escaped_like_data():
    from playbook.report.pages import Column, Table, _render
    table = Table((Column('x" onmouseover="alert(1)'),), (("cell",),))
    html_text = _render("table.html.j2", table=table)
    assert 'data-label="x&#34; onmouseover=&#34;alert(1)"' in html_text and 'onmouseover="' not in html_text


def test_the_shops_name_leads_the_titles_of_the_index_the_brief_the_weeks_and_the_step_pages(week, tmp_path):
    import dataclasses
    shop = dataclasses.replace(CONFIG, shop_name="Acme <Ltd>")
    for page in (index_page(week, STEPS, shop), brief_page(week, STEPS, shop)):
        title = re.search(r"<title>(.*?)</title>", page).group(1)
        heading = re.search(r"<h1>(.*?)</h1>", page).group(1)
        assert title.startswith("Acme &lt;Ltd&gt;: Returns") and heading.startswith("Acme &lt;Ltd&gt;: Returns")
    (tmp_path / "2026-W47").mkdir()
    write_weeks_index(tmp_path, shop)
    assert "<h1>Acme &lt;Ltd&gt;: Returns playbook" in (tmp_path / "index.html").read_text(encoding="utf-8")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Step")])
    step = notebook_to_html(nb, tmp_path / "01_baseline.html", STEPS[0], STEPS, "2026-W47", shop="Acme <Ltd>")
    assert "<title>Acme &lt;Ltd&gt;: Week 2026-W47" in step.read_text(encoding="utf-8")
    assert re.search(r"<title>Returns playbook, week", index_page(week, STEPS, CONFIG))  # no name: none shown


def test_the_header_names_the_data_folder_not_its_server_path(week):
    week["data_source"] = "/srv/shops/acme/data_samples"
    said = text_of(index_page(week, STEPS, CONFIG))
    assert "Data data_samples, known up to" in said and "/srv/shops" not in said


def test_amounts_carry_the_configured_currency(week, tmp_path):
    text = CONFIG.path.read_text(encoding="utf-8").replace("currency: EUR", "currency: GBP")
    (tmp_path / "gbp.yaml").write_text(text, encoding="utf-8")
    said = text_of(index_page(week, STEPS, load_config(tmp_path / "gbp.yaml")))
    assert "GBP 1,332 per week" in said and "EUR" not in said


def test_headline_numbers_carry_the_summary_path_they_come_from(week):
    page = index_page(week, STEPS, CONFIG)
    tagged = re.findall(r'data-summary="([^"]+)" data-scale="(\d+)">([^<]+)<', page)
    paths = {p for p, _, _ in tagged}
    assert {"weak_cohort.excess_cost", "review.0.money_per_week", "baseline.metrics.closure_rate.value"} <= paths
    for path, scale, shown in tagged:
        value = week
        for key in path.split("."):
            value = value[int(key)] if isinstance(value, list) else value[key]
        number = float(re.sub(r"[^0-9.\-]", "", shown.split("(")[0].replace("EUR", "")))
        assert number == pytest.approx(value * int(scale), abs=0.051 * (1 if "." in shown else 10)), path


def test_a_summary_missing_a_field_fails_naming_the_section_and_field(week):
    del week["weak_cohort"]["excess_cost"]
    with pytest.raises(FieldError, match="weak_cohort has no field 'excess_cost'"):
        index_page(week, STEPS, CONFIG)


def test_no_cohort_standing_out_is_said(week):
    week["weak_cohort"] = None
    assert "No cohort stands out this week." in text_of(index_page(week, STEPS, CONFIG))


def test_every_text_from_the_data_is_escaped_on_the_index_and_the_brief(hostile):
    for page in (index_page(hostile, STEPS, CONFIG), brief_page(hostile, STEPS, CONFIG)):
        assert "<script>" not in page and BOLD not in page
    assert_inert(index_page(hostile, STEPS, CONFIG), SCRIPT, BOLD)


# --- the brief: one page in plain words ------------------------------------------------------

def test_the_brief_speaks_plain_words_without_ids_method_names_or_paths(week):
    week["data_source"] = "/srv/shops/acme/data_samples"
    said = text_of(brief_page(week, STEPS, CONFIG))
    for jargon in ("closure_rate", "return_rate_14d", "EXP-1", "Benjamini", "Kaplan", "CRV1", "did-", "True",
                   "False", "/srv/", "summary.json", "experiments_plan.csv"):
        assert jargon not in said, jargon
    assert "Action closure rate is red (66.7 %, usually 95.4 %)" in said
    assert "The full report has every number" in said


@pytest.mark.parametrize("cohort, words", [
    ("category=knitwear", "knitwear"),
    ("category=knitwear;channel=web", "knitwear, web"),
    ("channel=app x size_too_small", 'app returned as "size too small"'),
    ("", "the whole shop"),
])
def test_a_cohort_reads_in_words_from_the_experiments_table_form_or_a_candidate_label(cohort, words):
    from playbook.report.story import cohort_words

    assert cohort_words(cohort) == words


def test_the_brief_links_the_full_report(week):
    assert '<a href="../index.html">The full report</a>' in brief_page(week, STEPS, CONFIG)


# --- navigation, titles, guides ----------------------------------------------------------------

def test_every_step_page_links_index_brief_all_steps_and_its_neighbours():
    nav = nav_for("02_weak_cohort", STEPS)
    hrefs = [link.href for link in nav.links]
    assert hrefs[:2] == ["index.html", "brief/index.html"]
    assert [f"{s.stem}.html" for s in STEPS] == hrefs[2:7]
    assert "../index.html" in hrefs  # the list of past weeks
    assert (nav.previous.href, nav.next.href) == ("01_baseline.html", "03_lever_design.html")
    assert [link.here for link in nav.links].count(True) == 1


def test_a_brief_edition_page_links_its_sibling_brief_pages_and_the_full_report():
    nav = nav_for("03_lever_design", STEPS, brief=True)
    hrefs = {link.label: link.href for link in nav.links}
    assert hrefs["Week index"] == "../index.html" and hrefs["Brief"] == "index.html"
    assert hrefs["Method"] == "../method.html" and hrefs["Past weeks"] == "../../index.html"


def test_a_step_page_has_its_own_title_the_top_bar_and_no_script_from_the_network(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "See the [method guide](../docs/method.md#step-1) and the [metrics](../docs/metrics.md).")])
    step = STEPS[0]
    full = notebook_to_html(nb, tmp_path / "01_baseline.html", step, STEPS, "2026-W47").read_text(encoding="utf-8")
    brief = notebook_to_html(nb, tmp_path / "brief" / "01_baseline.html", step, STEPS, "2026-W47",
                             brief=True).read_text(encoding="utf-8")
    assert "<title>Week 2026-W47 · Step 1 Baseline · Returns playbook</title>" in full
    assert 'href="method.html#step-1"' in full and 'href="metrics.html"' in full
    assert 'href="../method.html#step-1"' in brief
    for page in (full, brief):
        assert 'class="topbar"' in page and 'rel="next"' in page
        assert not re.search(r"""<script[^>]+src=|https?://[^"']*\.(js|css)""", page)


def test_analyst_only_cells_are_left_out_of_the_brief_edition(tmp_path):
    check = nbformat.v4.new_markdown_cell("Checks for the analyst")
    check.metadata["tags"] = ["analyst-only"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("For everyone"), check])
    brief = notebook_to_html(nb, tmp_path / "brief" / "x.html", brief=True).read_text(encoding="utf-8")
    full = notebook_to_html(nb, tmp_path / "x.html").read_text(encoding="utf-8")
    assert "For everyone" in brief and "Checks for the analyst" not in brief
    assert "Checks for the analyst" in full


def test_the_notebooks_tag_their_run_details_and_candidate_tables_as_analyst_only():
    from playbook.core.paths import REPO_ROOT

    tagged = {}
    for path in sorted((REPO_ROOT / "notebooks").glob("0*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        tagged[path.stem] = [c.source for c in nb.cells if "analyst-only" in c.metadata.get("tags", [])]
    assert all(any("run.describe()" in src for src in cells) for cells in tagged.values())
    assert any("candidates_display" in src for src in tagged["02_weak_cohort"])
    assert any("write_experiments_row" in src for src in tagged["03_lever_design"])
    assert not any("run.write(" in src for cells in tagged.values() for src in cells)  # conclusions stay


def test_each_guide_page_links_the_other_guides_pages_not_their_markdown():
    for page in GUIDES:
        body = guide_page(page, STEPS)
        assert not re.search(r'href="[^"]*\.md', body), page  # every .md link became a page or plain text
    assert 'href="statistics.html' in guide_page("method", STEPS)


# --- the list of weeks -------------------------------------------------------------------------

def test_the_reports_folder_lists_every_week_newest_first_with_its_headline(tmp_path, week):
    for name in ("2026-W46", "2026-W47"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(dict(week, week=name)), encoding="utf-8")
    (tmp_path / "2026-W45").mkdir()  # a failed week without summary: not listed
    page = write_weeks_index(tmp_path, CONFIG).read_text(encoding="utf-8")
    said = text_of(page)
    assert said.index("2026-W47") < said.index("2026-W46") and "2026-W45" not in said
    assert "Week 2026-W46: 1 metric is red" in said and '<a href="2026-W47/brief/index.html">' in page
    assert (tmp_path / "report.css").is_file()


def test_an_unreadable_summary_is_listed_with_a_reason_not_a_crash(tmp_path):
    (tmp_path / "2026-W47").mkdir()
    (tmp_path / "2026-W47" / "summary.json").write_text('{"weak_cohort": {"units": 1}}', encoding="utf-8")
    assert "summary.json unreadable" in text_of(write_weeks_index(tmp_path, CONFIG).read_text(encoding="utf-8"))


@pytest.mark.parametrize("decision,amount,says", [
    ("keep", 1332.0, "{} per week saved on the cohort"),
    ("keep", -40.0, "{} per week lost on the cohort"),
    ("continue", 1157.0, "{} per week on the cohort if the estimate holds (not decided yet)"),
    ("provisional", 10.0, "{} per week on the cohort if the estimate holds (not decided yet)"),
    ("stop", -300.0, "{} per week on the cohort by the estimate (not rolled out)"),
    ("adjust", 200.0, "{} per week on the cohort by the estimate (not rolled out)"),
])
def test_money_is_said_saved_only_for_a_kept_lever(decision, amount, says):
    from playbook.report.story import money_words
    assert money_words(decision, amount) == says
