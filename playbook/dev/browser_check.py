"""The week's report pages opened in a real browser (headless Chromium driven by Selenium).

Every HTML page of a week's report folder (the index, the brief, every step page: found by walking the
folder, not listed by hand) is opened over ``file://``, the way a manager opens a report on disk, in one
browser session, with a 390-pixel-wide layout viewport (a phone). For each page:

* **links**: every ``a[href]``, ``img[src]``, ``link[href]``, ``script[src]`` resolves to an existing file
  (a link may reach the report root, one folder up, where the list of past weeks lives; what a page
  loads must stay inside the week's folder) and a ``#fragment`` to an element of that id or name; a
  link to an ``http(s)`` address is a problem too (none are expected: the report works offline);
* **images**: every ``<img>`` has a natural width above zero (it was found and decoded);
* **console**: the browser console has no SEVERE entry (script error, ``console.error``, failed load);
* **overflow**: no visible element reaches beyond the 390-pixel window horizontally, unless it sits
  inside a scrollable container (computed ``overflow-x`` auto or scroll; ``html`` and ``body`` do not
  count, or a page could hide everything in a scrolling body) or a clipped one (``clip``/``clip-path``:
  text for screen readers only), or lies wholly off to the left (a skip link); only the outermost
  overflowing elements are listed;
* **cells** (the index and the brief, at 390 and at 1280 pixels, every ``<details>`` opened): no cell
  (``td``, ``th``) of any table lies beyond the window or beyond a box around it that cuts its content
  (computed ``overflow-x`` other than visible: a scroller shows it only when scrolled to). There a table
  must fit: cards on a phone, every column on a laptop; the step pages' wide tables may scroll in their
  box (the overflow check covers them). A header kept for screen readers only (inside a clipped box)
  is not seen, so not measured;
* **offline**: no request the page makes (scripts, stylesheets, fonts, images, frames, fetches: every
  ``Network.requestWillBeSent`` of Chrome's performance log) leaves the week's folder;
* **headline**: every element carrying ``data-summary="<dotted path>"`` shows the value of that path in
  ``summary.json`` times ``data-scale`` (1 for money and counts, 100 for percentages and points),
  rounded to the decimals shown (see :func:`parse_shown_number` for what the text may contain).

Screenshots (``screenshots`` given): the index and the brief, full page at a desktop width
(``index.png``, ``brief.png``), and the index at 390 pixels (``index-390.png``).

Degenerate input (no folder, no page) gives a report carrying its error; a missing browser, driver or
Selenium raises :class:`BrowserUnavailable` (the test skips on it, and fails under ``CI``).

Chromium flags: the ones a root user in a container needs (no sandbox, no GPU, no /dev/shm) and the ones
that stop it from calling home (background networking, component updates, sync): without them a
closed network refuses its connections and the console fills with errors the report did not cause.

By hand: ``python -m playbook.dev.browser_check reports/2026-W47 --screenshots reports/2026-W47/screenshots``
(or ``reports`` for the latest week); exit 1 when a page has a problem.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

PHONE_WIDTH = 390
DESKTOP_WIDTH = 1280
WINDOW_HEIGHT = 900
#: Chromium refuses textures taller than this: a longer page is cut in its screenshot
MAX_SCREENSHOT_HEIGHT = 16_000
CHECKS = ("links", "images", "console", "overflow", "cells", "offline", "headline")
#: the widths the cells of the index and the brief are measured at: a phone, a laptop
TABLE_WIDTHS = (390, 1280)
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",  # the scrollbar would take part of the 390 pixels and differ between machines
)
MAX_PER_CHECK = 12  # problems listed per page and check (the rest counted), so one bad page stays readable


class BrowserUnavailable(RuntimeError):
    """Chromium, its driver or Selenium cannot be had (the reason is the message)."""


@dataclass(frozen=True)
class PageReport:
    """The problems of one page, per check (each a sentence naming the element or address)."""

    page: str  # path relative to the report folder, with forward slashes
    links: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    console: tuple[str, ...] = ()
    overflow: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    headline_numbers: int = 0  # elements carrying data-summary (checked or not)

    def problems(self, check: str | None = None) -> tuple[str, ...]:
        names = CHECKS if check is None else (check,)
        return tuple(f"{self.page}: {name}: {p}" for name in names for p in getattr(self, name))


@dataclass(frozen=True)
class BrowserReport:
    """Every page of a week's report as a browser saw it; ``ok`` when no page has a problem."""

    report_dir: Path
    pages: tuple[PageReport, ...] = ()
    screenshots: tuple[Path, ...] = ()
    seconds: float = 0.0
    error: str | None = None

    def problems(self, check: str | None = None) -> tuple[str, ...]:
        """``page: check: problem`` lines, of one check or all; the error first when there is one."""
        head = (f"report: {self.error}",) if self.error else ()
        return head + tuple(p for page in self.pages for p in page.problems(check))

    @property
    def ok(self) -> bool:
        return not self.problems()

    @property
    def headline_numbers(self) -> int:
        return sum(p.headline_numbers for p in self.pages)

    def page(self, name: str) -> PageReport:
        return next(p for p in self.pages if p.page == name)


# --------------------------------------------------------------------------- finding the pages


def find_pages(report_dir: Path) -> list[Path]:
    """Every ``*.html`` of the report folder, the index first, then the brief, then by name."""
    pages = sorted(p for p in report_dir.rglob("*.html") if p.is_file())
    first = {report_dir / "index.html": 0, brief_page(report_dir): 1}
    return sorted(pages, key=lambda p: (first.get(p, 2), p.relative_to(report_dir).as_posix()))


def brief_page(report_dir: Path) -> Path | None:
    """The brief: ``brief/index.html`` (one folder per edition) or ``brief.html`` (one page)."""
    for candidate in (report_dir / "brief" / "index.html", report_dir / "brief.html"):
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- headline numbers

_CURRENCY = re.compile(r"\b[A-Z]{3}\b|[€$£¥]")
_UNITS = re.compile(r"\b(?:percentage points|points|point|pts|pp|days|day)\b|%", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009,]")  # thousands separators: comma, (narrow) no-break space


def parse_shown_number(text: str) -> tuple[Decimal, bool] | None:
    """The number a headline element shows, and whether it carries an explicit sign; None if none.

    Strips a 3-letter currency code (or a currency symbol), thousands commas and spaces, ``%``,
    ``points`` and ``days``; reads ``+``, ``-`` and the unicode minus (U+2212) as the sign; keeps the decimals as
    written (``Decimal``), so the comparison knows how many were shown. Scientific notation
    (``6.9e-16``) is read as such.
    """
    bare = _SPACES.sub("", _UNITS.sub("", _CURRENCY.sub("", text))).replace("\u2212", "-")
    signed = bare[:1] in "+-" and bare != ""
    try:
        number = Decimal(bare)
    except InvalidOperation:
        return None
    return (number, signed) if number.is_finite() else None


def summary_value(summary: Any, path: str) -> Any:
    """The value at a dotted path (keys and list indexes: ``review.0.estimate``); KeyError if absent."""
    node = summary
    for part in path.split("."):
        if isinstance(node, list):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                raise KeyError(path)
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def check_headline_number(summary: Any, path: str, scale: str | None, text: str) -> str | None:
    """None when ``text`` shows summary[path] * scale rounded to its decimals, else the problem.

    The tolerance is half a unit of the last digit shown (either way of rounding a tie passes). A text
    without a sign is compared with the magnitude ("down 6.5 points" for -0.065 reads as 6.5); a text
    with a sign must carry the right one.
    """
    where = f"data-summary={path!r} shows {text.strip()!r}"
    try:
        value = summary_value(summary, path)
    except KeyError:
        return f"{where}: summary.json has no {path}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{where}: summary.json's {path} is {value!r}, not a number"
    try:
        factor = Decimal(scale) if scale is not None else None
    except InvalidOperation:
        factor = None
    if factor is None:
        return f"{where}: data-scale {scale!r} is not a number"
    shown = parse_shown_number(text)
    if shown is None:
        return f"{where}: no number can be read from the text"
    number, signed = shown
    expected = Decimal(repr(float(value))) * factor
    if not signed:
        expected = abs(expected)
    half_unit = Decimal(5) * Decimal(10) ** (number.as_tuple().exponent - 1)
    if abs(number - expected) > half_unit:
        return f"{where}: summary.json gives {value!r} x {scale} = {expected.normalize():f}"
    return None


# --------------------------------------------------------------------------- links


class _Anchors(HTMLParser):
    """The ids and names (``<a name>``) of a page: what a ``#fragment`` may point at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value is not None and (key == "id" or (key == "name" and tag == "a")):
                self.names.add(value)


def anchors_of(page: Path, cache: dict[Path, set[str]]) -> set[str]:
    if page not in cache:
        parser = _Anchors()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        parser.close()
        cache[page] = parser.names
    return cache[page]


def check_link(page: Path, tag: str, attribute: str, raw: str, report_dir: Path, root: Path,
               cache: dict[Path, set[str]]) -> str | None:
    """None when the link resolves, else the problem.

    An anchor (``a``) may reach ``root`` (the folder of every week: the list of past weeks); what a
    page loads (``img``, ``link``, ``script``) must stay inside ``report_dir``. ``data:`` sources are
    inline and ``mailto:`` leaves the browser, both fine; any other scheme (``http``, ``https``,
    ``//host``, ``file:``, ``javascript:``) is a problem: the report is a folder of relative links.
    """
    what = f"<{tag} {attribute}={raw!r}>"
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme == "data" or (parts.scheme == "mailto" and tag == "a"):
        return None
    if parts.scheme or parts.netloc:
        return f"{what} leaves the report (the pages must work offline, with relative links only)"
    if value == "#" and tag == "a":  # the top of the page (a script's handle)
        return None
    if value in ("", "#"):
        return f"{what} points nowhere"
    page = page.resolve()
    target = page if parts.path == "" else (page.parent / unquote(parts.path)).resolve()
    if parts.path.endswith("/") or target.is_dir():
        target = target / "index.html"
    fence = root if tag == "a" else report_dir
    if not target.is_relative_to(fence.resolve()):
        return f"{what} points outside {'the reports' if tag == 'a' else 'the report'} folder"
    if not target.is_file():
        return f"{what}: no file {target.relative_to(root.resolve()).as_posix()}"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors_of(target, cache):
        return f"{what}: no element with id {unquote(parts.fragment)!r} in {target.name}"
    return None


# --------------------------------------------------------------------------- the browser

_DESCRIBE = r"""
const describe = el => {
  let s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  if (typeof el.className === 'string' && el.className.trim()) s += '.' + el.className.trim().split(/\s+/).join('.');
  const text = (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ');
  return text ? s + ' "' + text.slice(0, 40) + '"' : s;
};
const clipped = st => (st.clip && st.clip !== 'auto') || (st.clipPath && st.clipPath !== 'none');
"""

_PAGE_FACTS = _DESCRIBE + r"""
const width = arguments[0];
const raw = (el, a) => el.getAttribute(a);
const links = [];
for (const [sel, attr] of [['a[href]', 'href'], ['img[src]', 'src'], ['link[href]', 'href'],
                           ['script[src]', 'src']]) {
  for (const el of document.querySelectorAll(sel)) links.push([el.tagName.toLowerCase(), attr, raw(el, attr)]);
}
const images = [...document.images].map(im => [im.getAttribute('src') || '', im.complete, im.naturalWidth,
                                                im.getAttribute('alt') || '']);
// inside a scrollable container (the reader scrolls it), or a clipped one (text for screen readers only)
const excused = el => {
  for (let up = el.parentElement; up && up !== document.body && up !== document.documentElement;
       up = up.parentElement) {
    const st = getComputedStyle(up);
    if (st.overflowX === 'auto' || st.overflowX === 'scroll') return true;
    if (clipped(st)) return true;
  }
  return false;
};
const over = new Set();
for (const el of document.body ? document.body.querySelectorAll('*') : []) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden' || st.display === 'contents') continue;
  if (r.right <= 0) continue;  // wholly off to the left: out of reach on purpose (a skip link), no scrollbar
  if ((r.right > width + 0.5 || r.left < -0.5) && !excused(el)) over.add(el);
}
// only the outermost overflowing elements: their children overflow with them
const overflow = [...over].filter(el => !over.has(el.parentElement)).map(el => {
  const r = el.getBoundingClientRect();
  return describe(el) + ' spans ' + Math.round(r.left) + ' to ' + Math.round(r.right) + ' px';
});
const page = document.documentElement.scrollWidth;
const numbers = [...document.querySelectorAll('[data-summary]')].map(el =>
  [el.getAttribute('data-summary'), el.getAttribute('data-scale'), el.innerText || el.textContent || '']);
return {links, images, overflow, page_width: page, numbers};
"""

#: every table cell of the page that a reader cannot see whole without scrolling sideways (details opened)
_CELL_FACTS = _DESCRIBE + r"""
const width = arguments[0];
const closed = [...document.querySelectorAll('details:not([open])')];
closed.forEach(d => { d.open = true; });
const where = r => Math.round(r.left) + ' to ' + Math.round(r.right) + ' px';
const out = [];
for (const cell of document.querySelectorAll('table td, table th')) {
  const r = cell.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (getComputedStyle(cell).visibility === 'hidden') continue;
  const boxes = [];
  let hidden = false;
  for (let up = cell.parentElement; up && up !== document.documentElement; up = up.parentElement) {
    const st = getComputedStyle(up);
    if (clipped(st)) { hidden = true; break; }  // for screen readers only: not seen, not measured
    if (st.overflowX !== 'visible') boxes.push(up);
  }
  if (hidden) continue;
  if (r.left < -0.5 || r.right > width + 0.5) {
    out.push(describe(cell) + ' spans ' + where(r) + ', beyond the ' + width + ' px window');
    continue;
  }
  const box = boxes.find(b => { const br = b.getBoundingClientRect();
                                return r.left < br.left - 0.5 || r.right > br.right + 0.5; });
  if (box) out.push(describe(cell) + ' spans ' + where(r) + ', clipped by its box ' + describe(box).split(' "')[0]
                    + ' (' + where(box.getBoundingClientRect()) + ')');
}
closed.forEach(d => { d.open = false; });
return out;
"""


def chromium_paths() -> tuple[str, str]:
    """Chromium and its driver: Debian's places first, then PATH; BrowserUnavailable if either lacks."""
    browser = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                                shutil.which("google-chrome")) if p and os.path.isfile(p)), None)
    driver = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver")) if p and os.path.isfile(p)),
                  None)
    if browser is None:
        raise BrowserUnavailable("Chromium not found (Debian: apt-get install chromium)")
    if driver is None:
        raise BrowserUnavailable("chromedriver not found (Debian: apt-get install chromium-driver)")
    return browser, driver


@dataclass
class _Session:
    """One headless Chromium for every page (starting one takes seconds)."""

    profile: Path
    driver: Any = None
    seen: list[str] = field(default_factory=list)

    def start(self) -> None:
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as exc:
            raise BrowserUnavailable(f"Selenium is not installed ({exc}); pip install -e '.[test]'") from None
        browser, driver = chromium_paths()
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")  # a fresh profile: no state from another run
        options.add_argument(f"--window-size={DESKTOP_WIDTH},{WINDOW_HEIGHT}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        try:
            self.driver = webdriver.Chrome(service=Service(driver), options=options)
        except Exception as exc:  # noqa: BLE001 - any start failure means no browser to test with
            raise BrowserUnavailable(f"Chromium did not start: {str(exc).strip().splitlines()[0]}") from None
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Network.enable", {})

    def viewport(self, width: int, height: int = WINDOW_HEIGHT) -> None:
        """The layout viewport, exactly ``width`` CSS pixels (the window's frame does not count)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def open(self, url: str) -> tuple[list[str], list[str]]:
        """Load a page; the SEVERE console entries and every requested URL since the last call."""
        self.drain()
        self.driver.get(url)
        self.driver.execute_script("return document.fonts ? document.fonts.ready.then(() => true) : true")
        return self.drain()

    def drain(self) -> tuple[list[str], list[str]]:
        console = [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        requests = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        return console, requests

    def facts(self, width: int) -> dict:
        return self.driver.execute_script(_PAGE_FACTS, width)

    def cells(self, widths: tuple[int, ...] = TABLE_WIDTHS) -> list[str]:
        """The table cells not seen whole at each of ``widths``, each problem prefixed with its width
        (at most :data:`MAX_PER_CHECK` per width, the rest counted: one width cannot hide the other's)."""
        problems: list[str] = []
        for width in widths:
            self.viewport(width)
            problems += [f"at {width} px: {p}" for p in _limited(self.driver.execute_script(_CELL_FACTS, width))]
        self.viewport(PHONE_WIDTH)
        return problems

    def screenshot(self, target: Path, width: int) -> Path:
        """The whole page at ``width`` CSS pixels (as tall as its content, up to a limit)."""
        self.viewport(width)
        height = int(self.driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)"))
        height = max(1, min(height, MAX_SCREENSHOT_HEIGHT))
        self.viewport(width, height)
        # clipped to the window's width: what overflows is cut off, as a reader's screen cuts it
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True, "clip": clip})
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(shot["data"]))
        self.viewport(PHONE_WIDTH)
        return target

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None


def _limited(problems: list[str]) -> tuple[str, ...]:
    if len(problems) <= MAX_PER_CHECK:
        return tuple(problems)
    return tuple(problems[:MAX_PER_CHECK]) + (f"... and {len(problems) - MAX_PER_CHECK} more",)


_INTERNAL_SCHEMES = ("data", "blob", "about", "chrome", "chrome-untrusted", "chrome-error", "devtools")


def _offline_problems(requests: list[str], report_dir: Path) -> list[str]:
    """Requests that leave the week's folder (``data:``, ``blob:`` and ``about:`` stay in the page).

    The browser's own pages (``chrome://``: its new-tab page loads in the background) are not the
    report's: a ``file://`` page cannot request them.
    """
    problems = []
    inside = report_dir.resolve()
    for url in dict.fromkeys(requests):  # once each, in order
        parts = urlsplit(url)
        if parts.scheme in _INTERNAL_SCHEMES:
            continue
        if parts.scheme == "file" and Path(unquote(parts.path)).resolve().is_relative_to(inside):
            continue
        problems.append(f"requests {url[:120]}" + (" (outside the report folder)" if parts.scheme == "file" else ""))
    return problems


def _image_problems(images: list) -> list[str]:
    return [f"<img src={src[:80]!r}{f' alt={alt[:40]!r}' if alt else ''}> "
            f"{'did not finish loading' if not complete else 'has no natural width (missing or undecodable)'}"
            for src, complete, width, alt in images if not complete or not width]


def _check_page(session: _Session, page: Path, report_dir: Path, root: Path, summary: Any | None,
                anchors: dict[Path, set[str]], tables: bool = False) -> PageReport:
    """Every check on one page; ``tables``: its table cells must fit the window too (the index, the brief)."""
    session.viewport(PHONE_WIDTH)
    console, requests = session.open(page.resolve().as_uri())
    facts = session.facts(PHONE_WIDTH)
    links = [p for tag, attr, raw in facts["links"]
             if (p := check_link(page, tag, attr, raw or "", report_dir, root, anchors)) is not None]
    overflow = list(facts["overflow"])
    if not overflow and facts["page_width"] > PHONE_WIDTH:
        overflow.append(f"the page is {facts['page_width']} px wide in a {PHONE_WIDTH} px window")
    cells = session.cells() if tables else ()
    headline = []
    for path, scale, text in facts["numbers"]:
        if summary is None:
            headline.append(f"data-summary={path!r}: the report has no readable summary.json")
        elif (problem := check_headline_number(summary, path, scale, text)) is not None:
            headline.append(problem)
    return PageReport(
        page=page.relative_to(report_dir).as_posix(),
        links=_limited(links), images=_limited(_image_problems(facts["images"])), console=_limited(console),
        overflow=_limited(overflow), cells=tuple(cells), offline=_limited(_offline_problems(requests, report_dir)),
        headline=_limited(headline), headline_numbers=len(facts["numbers"]))


def _read_summary(report_dir: Path) -> Any | None:
    try:
        return json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_report(report_dir: Path, screenshots: Path | None = None) -> BrowserReport:
    """Open every page of a week's report in headless Chromium and list what a reader would meet.

    ``report_dir`` is one week's folder (``reports/<WEEK>``); links may reach its parent (the list of
    past weeks). With ``screenshots`` (the week's ``screenshots/`` folder), the index and the brief are
    saved there full page at a desktop width and the index at 390 pixels. Raises BrowserUnavailable
    when Chromium, its driver or Selenium is missing; a missing folder or page is the report's error.
    """
    started = time.perf_counter()
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        return BrowserReport(report_dir, error=f"no report folder {report_dir}")
    pages = find_pages(report_dir)
    if not pages:
        return BrowserReport(report_dir, error=f"no HTML page in {report_dir}")
    summary = _read_summary(report_dir)
    index, brief = report_dir / "index.html", brief_page(report_dir)
    session = _Session(Path(tempfile.mkdtemp(prefix="playbook-chromium-")))
    anchors: dict[Path, set[str]] = {}
    shots: list[Path] = []
    try:
        session.start()
        results = []
        for page in pages:
            results.append(_check_page(session, page, report_dir, report_dir.parent, summary, anchors,
                                       tables=page in (index, brief)))
            if screenshots is not None and page in (index, brief):
                name = "index" if page == index else "brief"
                shots.append(session.screenshot(Path(screenshots) / f"{name}.png", DESKTOP_WIDTH))
                if page == index:
                    shots.append(session.screenshot(Path(screenshots) / "index-390.png", PHONE_WIDTH))
    finally:
        session.stop()
        shutil.rmtree(session.profile, ignore_errors=True)
    missing = [] if index.is_file() else ["no index.html"]
    missing += [] if brief is not None else ["no brief (brief/index.html or brief.html)"]
    return BrowserReport(report_dir, tuple(results), tuple(shots), round(time.perf_counter() - started, 2),
                         error="; ".join(missing) or None)


# --------------------------------------------------------------------------- command line


def latest_week(folder: Path) -> Path:
    """``folder`` itself when it is a week's report, else its latest ``<YYYY>-W<ww>`` subfolder."""
    if (folder / "index.html").is_file() and (folder / "summary.json").is_file():
        return folder
    weeks = sorted(p for p in folder.glob("[0-9][0-9][0-9][0-9]-W[0-9][0-9]") if p.is_dir())
    if not weeks:
        raise SystemExit(f"no week's report in {folder} (run make weekly first)")
    return weeks[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a week's report folder, or the reports folder (latest week)")
    parser.add_argument("--screenshots", type=Path, help="where to save them (default <report>/screenshots)")
    parser.add_argument("--copy-to", type=Path, help="also copy index.png and brief.png there (docs/screenshots)")
    args = parser.parse_args(argv)
    week = latest_week(args.report)
    try:
        report = check_report(week, args.screenshots or week / "screenshots")
    except BrowserUnavailable as exc:
        print(f"no browser: {exc}", file=sys.stderr)
        return 2
    for shot in report.screenshots:
        print(f"screenshot {shot}")
        if args.copy_to is not None and shot.name in ("index.png", "brief.png"):
            args.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, args.copy_to / shot.name)
            print(f"copied to {args.copy_to / shot.name}")
    problems = report.problems()
    print(f"{week}: {len(report.pages)} pages, {report.headline_numbers} headline numbers checked, "
          f"{len(problems)} problems, {report.seconds:.1f} s")
    for line in problems:
        print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
