"""The report's pages in a real browser (headless Chromium via Selenium, playbook/dev/browser_check.py).

Two reports, one browser session each:

* the sample week, rendered once through the notebooks: every check finds nothing, the index carries
  headline numbers tied to summary.json, the screenshots are written;
* a hand-made two-page report with one planted fault per check (a broken link, a missing image, a
  console error, a 600-pixel block, a script from a CDN, a headline number that is not the summary's):
  each check catches its fault, and the clean page beside them passes every check, so neither a check
  that finds nothing nor one that flags everything can pass.

Skipped when Chromium, chromedriver or Selenium is missing (Debian: chromium, chromium-driver; Selenium is
in the test extra); a failure when CI is set (.ci/run installs them, CI must not silently stop checking).
"""
from __future__ import annotations

import json
import os
import re
import struct
import zlib
from decimal import Decimal
from pathlib import Path

import pytest
import section_examples as examples

from playbook.config.loader import load_config
from playbook.dev.browser_check import (
    BrowserReport,
    BrowserUnavailable,
    check_headline_number,
    check_report,
    chromium_paths,
    latest_week,
    parse_shown_number,
)
from playbook.report.pages import CSS, STEP_LABELS, Step, brief_page, index_page, stylesheet

WEEK = "2026-W47"
STEPS = ["01_baseline", "02_weak_cohort", "03_lever_design", "04_comparison", "05_j7_review"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def browser() -> None:
    """Chromium, its driver and Selenium are here, else skip (or fail under CI) before any rendering."""
    try:
        import selenium  # noqa: F401

        chromium_paths()
    except (ImportError, BrowserUnavailable) as exc:
        if in_ci():
            pytest.fail(f"CI is set and the browser test cannot run: {exc}", pytrace=False)
        pytest.skip(f"no headless browser: {exc}")


def checked(report_dir: Path, screenshots: Path | None = None) -> BrowserReport:
    try:
        return check_report(report_dir, screenshots)
    except BrowserUnavailable as exc:
        if in_ci():
            pytest.fail(f"CI is set and Chromium did not run: {exc}", pytrace=False)
        pytest.skip(f"Chromium did not run: {exc}")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (read by hand: no imaging library needed)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


# --------------------------------------------------------------------------- the sample week


@pytest.fixture(scope="module")
def sample(browser, sample_week) -> BrowserReport:
    """The session's sample week (tests/conftest.py), its screenshots beside its report."""
    week = sample_week["report"]
    return checked(week, week / "screenshots")


def no_problems(report: BrowserReport, check: str) -> None:
    problems = report.problems(check)
    assert not problems, f"{len(problems)} {check} problems:\n" + "\n".join(problems)


@pytest.mark.notebooks
def test_the_index_the_brief_and_every_step_page_are_opened(sample):
    names = {p.page for p in sample.pages}
    assert sample.error is None
    assert "index.html" in names and ({"brief/index.html", "brief.html"} & names)
    assert all(any(Path(name).stem == step and not name.startswith("brief/") for name in names) for step in STEPS)


@pytest.mark.notebooks
def test_every_link_of_the_sample_week_resolves_inside_the_report(sample):
    no_problems(sample, "links")


@pytest.mark.notebooks
def test_every_image_of_the_sample_week_is_drawn(sample):
    no_problems(sample, "images")


@pytest.mark.notebooks
def test_no_page_of_the_sample_week_writes_an_error_to_the_console(sample):
    no_problems(sample, "console")


@pytest.mark.notebooks
def test_nothing_overflows_a_phone_wide_window_outside_scrollable_containers(sample):
    no_problems(sample, "overflow")


@pytest.mark.notebooks
def test_every_cell_of_the_index_and_the_brief_is_seen_whole_on_a_phone_and_a_laptop(sample):
    no_problems(sample, "cells")


@pytest.mark.notebooks
def test_the_sample_week_requests_nothing_outside_its_folder(sample):
    no_problems(sample, "offline")


@pytest.mark.notebooks
def test_every_headline_number_equals_the_summary(sample):
    no_problems(sample, "headline")


@pytest.mark.notebooks
def test_the_index_headline_carries_numbers_tied_to_the_summary(sample):
    assert sample.page("index.html").headline_numbers >= 1


@pytest.mark.notebooks
def test_screenshots_of_the_index_and_the_brief_are_written_beside_the_report(sample):
    shots = {p.name: p for p in sample.screenshots}
    assert set(shots) == {"index.png", "brief.png", "index-390.png"}
    assert all(p.parent == sample.report_dir / "screenshots" and p.is_file() for p in shots.values())
    assert png_size(shots["index.png"])[0] == 1280 and png_size(shots["brief.png"])[0] == 1280
    assert png_size(shots["index-390.png"])[0] == 390
    assert all(png_size(p)[1] > 0 and p.stat().st_size > 1000 for p in shots.values())


# --------------------------------------------------------------------------- each check can fail


def one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1 x 1, 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x33\x66\x99"))
            + chunk(b"IEND", b""))


SUMMARY = {"baseline": {"metrics": {"return_rate_14d": {"value": 0.149}}, "excess_cost": 5161.4},
           "review": [{"estimate": -0.0645}]}
PAGE = "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>"
CLEAN = """<p id='top'><a href='brief/index.html'>brief</a> <a href='#top'>top</a> <a href='../index.html'>weeks</a>
<img src='dot.png' alt='dot'></p>
<p><span data-summary='baseline.excess_cost' data-scale='1'>EUR 5,161</span>
<span data-summary='baseline.metrics.return_rate_14d.value' data-scale='100'>14.9 %</span>
<span data-summary='review.0.estimate' data-scale='100'>&minus;6.5 points</span></p>
<a href='#top' style='position: absolute; left: -9999px'>skip link, off screen on purpose</a>
<span style='position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0)'>
<b style='display: inline-block; width: 800px'>for screen readers only</b></span>"""
#: a step page may have a wide table that scrolls in its box (the index and the brief may not: cells check)
CLEAN_STEP = """<div style='overflow-x: auto'><table><tr><td style='min-width: 900px'>a wide table that scrolls</td></tr>
</table></div>"""
FAULTY = """<p><a href='../missing.html'>gone</a> <a href='../index.html#top'>up</a></p>
<img src='nowhere.png' alt='nowhere'>
<script>console.error('planted error')</script>
<div id='wide' style='width: 600px'>six hundred pixels</div>
<script src='https://cdn.example.com/lib.js'></script>
<span data-summary='baseline.metrics.return_rate_14d.value' data-scale='100'>15.9 %</span>"""


@pytest.fixture(scope="module")
def planted(browser, tmp_path_factory) -> BrowserReport:
    week = tmp_path_factory.mktemp("planted") / "2026-W01"
    (week / "brief").mkdir(parents=True)
    (week / "dot.png").write_bytes(one_pixel_png())
    (week / "summary.json").write_text(json.dumps(SUMMARY), encoding="utf-8")
    (week / "index.html").write_text(PAGE.format(title="index", body=CLEAN), encoding="utf-8")
    (week / "01_baseline.html").write_text(PAGE.format(title="step", body=CLEAN_STEP), encoding="utf-8")
    (week / "brief" / "index.html").write_text(PAGE.format(title="brief", body=FAULTY), encoding="utf-8")
    (week.parent / "index.html").write_text(PAGE.format(title="weeks", body="<a href='2026-W01/'>W01</a>"))
    return checked(week)


def test_the_clean_pages_pass_every_check(planted):
    assert planted.page("index.html").problems() == ()
    assert planted.page("01_baseline.html").problems() == ()
    assert planted.page("index.html").headline_numbers == 3


def test_a_link_to_a_missing_file_is_caught(planted):
    assert any("missing.html" in p for p in planted.page("brief/index.html").links)


def test_a_link_to_an_existing_page_is_not_caught(planted):
    assert not any("#top" in p for p in planted.page("brief/index.html").links)


def test_an_image_that_does_not_load_is_caught(planted):
    assert [p for p in planted.page("brief/index.html").images if "nowhere.png" in p]


def test_a_console_error_is_caught(planted):
    assert any("planted error" in p for p in planted.page("brief/index.html").console)


def test_a_600_pixel_block_is_caught_and_a_wide_table_in_a_scroller_is_not(planted):
    overflow = planted.page("brief/index.html").overflow
    assert len(overflow) == 1 and overflow[0].startswith("div#wide")


def test_a_script_from_a_cdn_is_caught_as_a_request_and_as_a_link(planted):
    page = planted.page("brief/index.html")
    assert page.offline == ("requests https://cdn.example.com/lib.js",)
    assert any("cdn.example.com" in p for p in page.links)


def test_a_headline_number_that_is_not_the_summary_is_caught(planted):
    (problem,) = planted.page("brief/index.html").headline
    assert "15.9" in problem and "14.9" in problem


# --------------------------------------------------------------------------- the index's tables fit the window

#: the rule that cut the index off (issue 21): a table as wide as the page's own box, padding not counted
OLD_WIDE_TABLE = ".playbook table.data.cards { min-width: 62rem; }"


def index_week(folder: Path, extra_css: str = "") -> Path:
    """A week with the index and the brief of the pages' test summary, under the report's stylesheet
    (plus ``extra_css``); the step pages they link are not there (only the cells are looked at)."""
    week = folder / "2026-W47"
    (week / "brief").mkdir(parents=True)
    steps = [Step(stem, f"Step {label}") for stem, label in STEP_LABELS.items()]
    summary = examples.summary(review=[examples.review(), examples.review(experiment_id="EXP-2", decision="continue")])
    (week / CSS).write_text(stylesheet() + extra_css, encoding="utf-8")
    (week / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (week / "index.html").write_text(index_page(summary, steps, load_config()), encoding="utf-8")
    (week / "brief" / "index.html").write_text(brief_page(summary, steps, load_config()), encoding="utf-8")
    return week


@pytest.fixture(scope="module")
def index_tables(browser, tmp_path_factory) -> tuple[BrowserReport, BrowserReport]:
    """The same index under today's stylesheet and under today's plus the old wide-table rule."""
    return (checked(index_week(tmp_path_factory.mktemp("fits"))),
            checked(index_week(tmp_path_factory.mktemp("cut"), OLD_WIDE_TABLE)))


def test_the_index_tables_fit_a_phone_as_cards_and_a_laptop_whole(index_tables):
    fits, _ = index_tables
    assert fits.page("index.html").cells == ()
    assert fits.page("index.html").overflow == ()


@pytest.mark.parametrize(("width", "cut_off"), [
    (390, [r'td "Action closure rate" spans 20 to 991 px, beyond the 390 px window']),  # the whole card
    # the last columns: the table ends at 160 + 992 = 1152 px, its box at 1280 - 160 px (the page's margin)
    (1280, [r'th "zone" spans \d+ to 1152 px, clipped by its box div.table-scroll \(160 to 1120 px\)',
            r'th "next step" spans \d+ to 1152 px, clipped by its box div.table-scroll \(160 to 1120 px\)']),
])
def test_the_old_wide_table_rule_is_caught_cutting_cells_off(index_tables, width, cut_off):
    # the planted 62rem (992 px) makes a phone's card run from its padding to 992 px further; on a laptop the
    # table runs from the page's box at 160 px to 1152 px, past its scrolling box (the page less its padding)
    cells = [p for p in index_tables[1].page("index.html").cells if p.startswith(f"at {width} px:")]
    assert cells, f"nothing caught at {width} px"
    for problem in cut_off:
        assert any(re.search(problem, p) for p in cells), f"{problem!r} not in {cells}"


def test_no_screenshot_is_taken_unless_asked(planted):
    assert planted.screenshots == ()


def test_the_command_line_takes_the_latest_week_of_a_reports_folder(tmp_path):
    for week in ("2025-W52", "2026-W02", "2026-W10"):
        (tmp_path / week).mkdir()
    (tmp_path / "2026-W11.failed").mkdir()
    assert latest_week(tmp_path) == tmp_path / "2026-W10"


def test_a_missing_report_folder_is_the_reports_error(tmp_path):
    report = check_report(tmp_path / "nothing")
    assert report.error and not report.ok and report.pages == ()


# --------------------------------------------------------------------------- reading a shown number


@pytest.mark.parametrize(("text", "number", "signed"), [
    ("EUR 5,161", Decimal("5161"), False),
    ("14.9 %", Decimal("14.9"), False),
    ("\u22126.5 points", Decimal("-6.5"), True),
    ("+0.40 points", Decimal("0.40"), True),
    ("1,234,567.0 USD", Decimal("1234567.0"), False),
    ("6.9e-16", Decimal("6.9e-16"), False),
])
def test_a_shown_number_is_read_without_its_currency_separators_and_unit(text, number, signed):
    assert parse_shown_number(text) == (number, signed)
    assert parse_shown_number(text)[0].as_tuple().exponent == number.as_tuple().exponent  # decimals kept


def test_text_without_a_number_is_not_read():
    assert parse_shown_number("not available") is None


def test_a_number_rounded_either_way_at_a_tie_passes():
    # -0.0645 x 100 = -6.45: -6.5 (half away from zero) and -6.4 (half to even) are both honest roundings
    assert check_headline_number(SUMMARY, "review.0.estimate", "100", "-6.5") is None
    assert check_headline_number(SUMMARY, "review.0.estimate", "100", "-6.4") is None
    assert check_headline_number(SUMMARY, "review.0.estimate", "100", "-6.3") is not None


def test_a_wrong_sign_is_caught_and_a_magnitude_in_words_is_not():
    assert check_headline_number(SUMMARY, "review.0.estimate", "100", "+6.45") is not None
    assert check_headline_number(SUMMARY, "review.0.estimate", "100", "6.45") is None


def test_more_decimals_shown_need_more_precision():
    assert check_headline_number(SUMMARY, "baseline.excess_cost", "1", "EUR 5,161") is None
    assert check_headline_number(SUMMARY, "baseline.excess_cost", "1", "EUR 5,161.0") is not None


@pytest.mark.parametrize(("path", "scale", "why"), [
    ("baseline.nothing", "1", "has no baseline.nothing"),
    ("review.3.estimate", "1", "has no review.3.estimate"),
    ("baseline.metrics", "1", "not a number"),
    ("baseline.excess_cost", None, "data-scale None"),
])
def test_a_path_or_scale_that_cannot_be_read_is_a_problem(path, scale, why):
    assert why in check_headline_number(SUMMARY, path, scale, "5,161")
