"""A real export in its own terms: the shop's currency, name and clock come from its ``shop.yaml``, and each
source renders into its own reports and journal folders (the repository's sample keeps ``reports/`` and
``journal/``), so that the list of rendered weeks never mixes two shops.
"""
from __future__ import annotations

import json
import re

import pytest
from conftest import write_shop
from test_weekly_runner import make_notebook

import playbook.core.paths as paths
from playbook.core.paths import DATA_SAMPLES_DIR, journal_dir_for, reports_dir_for, source_name
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


def test_validate_says_whose_data_and_in_which_currency(home, capsys):
    shop = acme(home / "acme")
    assert cli.main(["validate", str(shop)]) == 0
    assert "Shop: Acme Ltd: amounts in GBP, weeks on the Europe/London clock" in capsys.readouterr().out
