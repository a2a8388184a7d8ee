"""A real export in its own terms: the shop's currency, name and clock come from its ``shop.yaml``, and each
source renders into its own reports and journal folders (the repository's sample keeps ``reports/`` and
``journal/``), so that the list of rendered weeks never mixes two shops.

The recipe the README and the data contract print for the real Online Retail export (``make retail``, or
``playbook adapt online-retail`` then ``playbook weekly``) is run as printed in a fresh copy of the repository
(its tracked files), with the data beside it; it skips when ``../shared/data/online_retail.csv.xz`` is absent.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, write_shop
from test_weekly_runner import make_notebook

import playbook.core.paths as paths
from playbook.core.paths import DATA_SAMPLES_DIR, journal_dir_for, reports_dir_for, source_name
from playbook.journal.entry import JournalEntry
from playbook.journal.store import record_week
from playbook.run import cli
from playbook.run import session as psession
from playbook.run.weekly import run_week

#: a step that reads its run as every notebook does and writes what it saw: the currency, the shop, its folders
SEEN = ("from playbook.run.session import start\n"
        "from playbook.report.summary import update_summary\n"
        "import json, pathlib\n"
        "run = start(week, data, config, run_dir, journal, snapshot)\n"
        "update_summary(run_dir, week=week, data_source=run.data_source)\n"
        "pathlib.Path(run_dir, 'seen.json').write_text(json.dumps({'currency': run.config.currency, "
        "'shop': run.config.shop_name, 'timezone': run.config.timezone, 'journal': str(run.journal_dir)}))\n")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The repository's reports/ and journal/ moved to a temporary folder (the sample stays the repository's)."""
    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    monkeypatch.setattr(paths, "JOURNAL_DIR", tmp_path / "journal")
    monkeypatch.setenv(psession.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path


def acme(folder, text: str = "name: Acme Ltd\ncurrency: GBP\ntimezone: Europe/London\n"):
    write_shop(folder)
    (folder / "shop.yaml").write_text(text, encoding="utf-8")
    return folder


# --- the source's folders --------------------------------------------------------------------------

def test_a_source_is_named_after_its_folder_or_its_database_and_the_sample_has_no_name(tmp_path):
    assert source_name(DATA_SAMPLES_DIR) is None and source_name("data_samples") is None and source_name("") is None
    assert source_name(tmp_path / "online_retail") == "online_retail"
    assert source_name("postgresql://ana@db.example.com:5432/shop") == "shop"
    assert source_name("duckdb:///srv/data/shop.duckdb") == "shop"
    assert source_name("pyspark:///lake/big_shop?spark.master=local[8]") == "big_shop"
    assert source_name("sc://spark.example.com:15002") == "spark.example.com"
    assert source_name(tmp_path / "my shop (2)") == "my_shop__2_"
    # never one of the sample's own folders in reports/
    assert source_name(tmp_path / "2026-W47") == "source-2026-W47"
    assert source_name(tmp_path / "interactive") == "source-interactive"


def test_the_sample_keeps_reports_and_journal_and_another_source_gets_its_own(tmp_path):
    assert reports_dir_for(DATA_SAMPLES_DIR) == paths.REPORTS_DIR and journal_dir_for(None) == paths.JOURNAL_DIR
    assert reports_dir_for(tmp_path / "online_retail") == paths.REPORTS_DIR / "online_retail"
    assert journal_dir_for(tmp_path / "online_retail") == paths.JOURNAL_DIR / "online_retail"


def test_two_sources_render_into_their_own_folders_and_lists_of_weeks_in_their_own_currency(home):
    """The sample into reports/ and journal/ in EUR, the export with a shop.yaml into reports/acme/ in GBP."""
    nb = make_notebook(home / "01_seen.ipynb", SEEN)
    shop = acme(home / "exports" / "acme")
    logged: list[str] = []
    mine = run_week("2026-W46", shop, notebooks=[nb], log=logged.append)
    sample = run_week("2026-W47", DATA_SAMPLES_DIR, notebooks=[nb], log=lambda _: None)

    assert mine == home / "reports" / "acme" / "2026-W46" and sample == home / "reports" / "2026-W47"
    assert json.loads((mine / "seen.json").read_text()) == {"currency": "GBP", "shop": "Acme Ltd",
                                                              "timezone": "Europe/London",
                                                              "journal": str(home / "journal" / "acme")}
    assert json.loads((sample / "seen.json").read_text()) == {"currency": "EUR", "shop": "", "timezone": "UTC",
                                                                "journal": str(home / "journal")}
    assert "Amounts in GBP." in (mine / "index.html").read_text()
    assert "Amounts in EUR." in (sample / "index.html").read_text()
    # the step pages, full and brief, carry the shop's name too
    for page in (mine / "01_seen.html", mine / "brief" / "01_seen.html"):
        assert re.search(r"<title>Acme Ltd: ", page.read_text()), page
    assert "<title>Acme Ltd" not in (sample / "01_seen.html").read_text()
    assert f"Shop: Acme Ltd: amounts in GBP, weeks on the Europe/London clock (from {shop / 'shop.yaml'})." in logged
    # each list of weeks has its own shop's weeks only
    listed = lambda folder: re.findall(r'href="(\d{4}-W\d{2})/index.html"', (folder / "index.html").read_text())
    assert listed(home / "reports") == ["2026-W47"] and listed(home / "reports" / "acme") == ["2026-W46"]


def test_explicit_out_and_journal_still_win(home):
    nb = make_notebook(home / "01_seen.ipynb", SEEN)
    report = run_week("2026-W46", acme(home / "acme"), home / "elsewhere", journal=home / "j", notebooks=[nb],
                      log=lambda _: None)
    assert report == home / "elsewhere" / "2026-W46"
    assert not (home / "reports").exists()


def test_an_interactive_session_of_a_source_works_in_its_own_scratch_folder_and_journal(home):
    shop = acme(home / "acme")
    run = psession.start("2026-W46", str(shop))
    assert run.run_dir == home / "reports" / "acme" / "interactive" / "2026-W46"
    assert run.journal_dir == home / "journal" / "acme"
    assert (run.config.currency, run.config.shop_name) == ("GBP", "Acme Ltd")


def test_a_refused_run_of_a_source_marks_its_own_reports_folder(home):
    shop = acme(home / "acme", "currency: pounds\n")
    result = cli.weekly("", str(shop), send=False, log=lambda _: None)
    assert result.code == cli.EXIT_REFUSED
    alerts = (home / "reports" / "acme" / "latest.failed" / "alerts.md").read_text()
    assert f"{shop / 'shop.yaml'}: currency: expected a three-letter ISO 4217 code" in alerts
    assert not (home / "reports" / "latest.failed").exists()


def test_playbook_journal_reads_the_journal_of_the_source_it_is_given(home, capsys):
    shop = acme(home / "acme")
    entry = JournalEntry("2026-W46", "verdict", "E1", lever="size chart", cohort="knitwear",
                         primary_metric="return_rate", design="A/B 50/50", estimate=-0.01, decision="keep",
                         why="J+7 review")
    record_week(home / "journal" / "acme", "2026-W46", [entry], "verdict")
    assert cli.main(["journal", "--data", str(shop)]) == 0
    assert "size chart" in capsys.readouterr().out
    assert cli.main(["journal"]) == 0  # the sample's journal/ has none of it
    assert "size chart" not in capsys.readouterr().out


def test_validate_says_whose_data_and_in_which_currency(home, capsys):
    shop = acme(home / "acme")
    assert cli.main(["validate", str(shop)]) == 0
    assert "Shop: Acme Ltd: amounts in GBP, weeks on the Europe/London clock" in capsys.readouterr().out


# --- the printed recipe for the real export, from a fresh clone ----------------------------------

RECIPE_DOCS = (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "data_contract.md")
RETAIL_WEEK = "2011-W48"  # the latest complete week of the export (it ends on Friday 2011-12-09)


def recipe_blocks(path: Path) -> list[list[str]]:
    """The code blocks of ``path`` that adapt or render the real export, as their command lines."""
    blocks = re.findall(r"^```\n(.*?)^```$", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    found = [block.strip().splitlines() for block in blocks]
    return [lines for lines in found if any(line.startswith("make retail") or "playbook adapt online-retail" in line
                                            for line in lines)]


def test_the_readme_and_the_data_contract_print_the_same_recipe_and_name_files_that_exist():
    readme, contract = (recipe_blocks(doc) for doc in RECIPE_DOCS)
    assert readme == contract == [
        ["make retail"],
        [".venv/bin/playbook adapt online-retail ../shared/data/online_retail.csv.xz exports/online_retail",
         ".venv/bin/playbook weekly --data exports/online_retail"]]
    for doc in RECIPE_DOCS:
        text = doc.read_text(encoding="utf-8")
        named = set(re.findall(r"playbook/[A-Za-z0-9_/]+\.py", text))
        assert "playbook/adapters/online_retail.py" in named
        assert [n for n in sorted(named) if not (REPO_ROOT / n).is_file()] == [], doc.name
        assert "python -m playbook" not in text  # a bare interpreter lacks the environment's pandas


@pytest.fixture(scope="module")
def fresh_clone(online_retail_path, tmp_path_factory) -> Path:
    """The repository's files (tracked, and new ones not ignored) copied into ``<tmp>/returns-playbook``, the
    export at ``<tmp>/shared/data/`` beside it, and a stand-in for the environment ``make`` would build there
    (this interpreter, reading the copy: ``.venv/bin/python`` and ``.venv/bin/playbook``), made after
    pyproject.toml so that ``make`` installs nothing."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip(f"{REPO_ROOT} is not a git checkout: its files cannot be listed as a clone has them")
    base = tmp_path_factory.mktemp("fresh")
    root = base / "returns-playbook"
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (base / "shared" / "data").mkdir(parents=True)
    (base / "shared" / "data" / online_retail_path.name).symlink_to(online_retail_path)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (("python", f'"{sys.executable}"'), ("playbook", f'"{sys.executable}" -m playbook.run.cli')):
        (bin_dir / name).write_text(f'#!/bin/sh\nPYTHONPATH="{root}" exec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    kernel = root / ".venv" / "share" / "jupyter" / "kernels" / "returns-playbook" / "kernel.json"
    kernel.parent.mkdir(parents=True)
    later = time.time() + 60
    for stamp in (root / ".venv" / ".installed", kernel):
        stamp.touch()
        os.utime(stamp, (later, later))
    return root


def run_printed(root: Path, lines: list[str]) -> str:
    """Run each command line as printed, in the clone; their output (a failure shows it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "PYTHONPATH"}
    out = []
    for line in lines:
        done = subprocess.run(line, shell=True, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
        out.append(f"$ {line}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, "\n".join(out)[-4000:]
    return "\n".join(out)


def check_rendered(root: Path, output: str) -> None:
    week = root / "reports" / "online_retail" / RETAIL_WEEK
    assert f"Report: {week / 'index.html'}" in output
    assert {p.name for p in (root / "exports" / "online_retail").iterdir()} == {
        "orders.parquet", "order_lines.parquet", "returns.parquet", "shop.yaml"}
    assert "Amounts in GBP." in (week / "index.html").read_text(encoding="utf-8")
    assert "Shop: Online Retail (UCI): amounts in GBP" in output
    listed = re.findall(r'href="(\d{4}-W\d{2})/index.html"',
                        (root / "reports" / "online_retail" / "index.html").read_text(encoding="utf-8"))
    assert listed == [RETAIL_WEEK]
    # the sample's folders are not touched: no week, no list of weeks, no journal of its own
    assert not (root / "reports" / RETAIL_WEEK).exists() and not (root / "reports" / "index.html").exists()
    assert (root / "journal" / "online_retail").is_dir() and not (root / "journal" / "decisions.csv").exists()
    assert "pip install" not in output  # the environment was there: nothing installed


@pytest.mark.notebooks
def test_make_retail_as_printed_renders_the_exports_latest_week_into_its_own_folders(fresh_clone):
    (make_retail,) = recipe_blocks(REPO_ROOT / "README.md")[:1]
    check_rendered(fresh_clone, run_printed(fresh_clone, make_retail))


@pytest.mark.notebooks
def test_the_step_by_step_commands_as_printed_do_the_same(fresh_clone):
    for folder in ("exports", "reports", "journal"):
        shutil.rmtree(fresh_clone / folder, ignore_errors=True)
    check_rendered(fresh_clone, run_printed(fresh_clone, recipe_blocks(REPO_ROOT / "README.md")[1]))
