"""The ``playbook`` command: exit codes, alerts after the run, progress, validate / weeks / journal, help."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO_ROOT, TINY_SHOP, write_shop
from test_weekly_runner import make_notebook

from playbook.journal.entry import JournalEntry
from playbook.journal.store import record_week
from playbook.report.summary import update_summary
from playbook.run import alerts as al
from playbook.run import cli

RED = ("from playbook.report.summary import update_summary\n"
       "update_summary(run_dir, week=week, baseline={'metrics': {}, 'triggers': [{'zone': 'execution', "
       "'metric': 'closure_rate', 'action': 'name an owner', 'why': 'below 80 %'}]})")


def run(tmp_path, shop, body: str, **kw) -> tuple[cli.WeeklyResult, list[str]]:
    lines: list[str] = []
    nb = make_notebook(tmp_path / "01_step.ipynb", body)
    result = cli.weekly(kw.pop("week", "2026-W46"), str(shop), str(tmp_path / "reports"), journal=str(tmp_path / "j"),
                        send=False, log=lines.append, notebooks=[nb], **kw)
    return result, lines


# --- playbook weekly -------------------------------------------------------------------------------

def test_a_complete_week_with_reds_exits_0_with_its_alerts_beside_the_report(tiny_shop, tmp_path):
    result, lines = run(tmp_path, tiny_shop, RED)
    assert result.code == cli.EXIT_OK and result.report == tmp_path / "reports" / "2026-W46"
    written = json.loads((result.report / al.ALERTS_JSON).read_text())
    assert written["reds"] == 1 and written["report"] == (result.report / "index.html").as_uri()
    assert "- Action closure rate: below 80 %" in (result.report / al.ALERTS_MD).read_text()  # its name, not its id


def test_reds_exit_3_with_fail_on_red(tiny_shop, tmp_path):
    result, _ = run(tmp_path, tiny_shop, RED, fail_on_red=True)
    assert result.code == cli.EXIT_RED and (result.report / "index.html").is_file()


def test_progress_shows_each_notebook_with_its_time_and_a_total(tiny_shop, tmp_path):
    _, lines = run(tmp_path, tiny_shop, RED)
    assert any(line.startswith("[") and "] [1/1] 01_step ok (" in line and line.endswith(" s)") for line in lines)
    (total,) = [line for line in lines if line.startswith("Total: ")]
    assert total.endswith(" s (complete)")


def test_a_failed_run_exits_1_with_its_alerts_in_the_weeks_failed_folder(tiny_shop, tmp_path):
    result, _ = run(tmp_path, tiny_shop, "raise ValueError('planted failure')", week="")  # the latest complete week
    failed = tmp_path / "reports" / "2026-W46.failed"
    assert result.code == cli.EXIT_FAILED and result.report is None
    written = json.loads((failed / al.ALERTS_JSON).read_text())
    assert written["outcome"] == "failed" and written["week"] == "2026-W46"
    assert "planted failure" in (failed / al.ALERTS_MD).read_text()
    assert not (tmp_path / "reports" / "2026-W46").exists()


def test_a_refused_run_exits_2_and_alerts_without_running_a_notebook(tmp_path):
    broken = {k: list(v) for k, v in TINY_SHOP.items()}
    broken["order_lines"].append(("L9", "O-unknown", "A", "knitwear", 1, 50.0, 0.0, 20.0))
    result, lines = run(tmp_path, write_shop(tmp_path / "broken", broken), "print(1)", week="")
    assert result.code == cli.EXIT_REFUSED
    assert "order_lines.order_id" in (tmp_path / "reports" / "latest.failed" / al.ALERTS_MD).read_text()
    assert [line for line in lines if line.startswith("Total: ")][0].endswith(" s (refused)")


def test_a_failed_send_leaves_the_run_complete_and_is_recorded(tmp_path, monkeypatch):
    report = tmp_path / "2026-W47"
    update_summary(report, week="2026-W47", baseline={"metrics": {}, "triggers": [
        {"zone": "execution", "metric": "closure_rate", "action": "name an owner", "why": "below 80 %"}]})
    monkeypatch.setenv(al.WEBHOOK_URL_ENV, "http://127.0.0.1:9/hooks/T0KEN-s3cr3t-abcdef")  # nothing listens
    lines: list[str] = []
    alerts = cli._complete_alerts(report, send=True, log=lines.append)
    (delivery,) = json.loads((report / al.ALERTS_JSON).read_text())["deliveries"]
    assert alerts.reds == 1 and not delivery["sent"] and delivery["error"]
    assert any("NOT sent" in line for line in lines) and not any("T0KEN" in line for line in lines)


def test_a_quiet_week_writes_no_alert(tmp_path):
    report = tmp_path / "2026-W47"
    update_summary(report, week="2026-W47", baseline={"metrics": {}, "triggers": []})
    lines: list[str] = []
    assert cli._complete_alerts(report, send=True, log=lines.append).items == ()
    assert not (report / al.ALERTS_MD).exists() and lines == [
        "No alert this week: no red trigger, no overdue review, no verdict."]


def test_progress_stamps_each_line_with_the_time_since_the_start():
    ticks = iter([100.0, 102.5, 105.0])
    lines: list[str] = []
    progress = cli.Progress(lines.append, clock=lambda: next(ticks))
    progress("[1/5] 01_baseline ok (2.5 s)")
    progress.total("complete")
    assert lines == ["[    2.5 s] [1/5] 01_baseline ok (2.5 s)", "Total: 5.0 s (complete)"]


# --- playbook validate / weeks / journal -----------------------------------------------------------

def test_validate_exits_2_with_the_contracts_message_on_a_broken_source(tmp_path):
    broken = {k: list(v) for k, v in TINY_SHOP.items()}
    broken["order_lines"].append(("L9", "O-unknown", "A", "knitwear", 1, 50.0, 0.0, 20.0))
    folder = write_shop(tmp_path / "broken", broken)
    done = subprocess.run([sys.executable, "-m", "playbook.run.cli", "validate", str(folder)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith("The input data break the data contract") and "order_lines.order_id" in done.stderr


def test_validate_accepts_a_source_that_keeps_the_contract(tiny_shop, capsys):
    assert cli.main(["validate", str(tiny_shop)]) == 0
    assert "the data satisfy the contract" in capsys.readouterr().out


def test_weeks_lists_the_weeks_a_run_accepts(tiny_shop, capsys):
    assert cli.main(["weeks", str(tiny_shop)]) == 0
    assert capsys.readouterr().out.splitlines() == ["2026-W45  2026-11-02 .. 2026-11-08",
                                                    "2026-W46  2026-11-09 .. 2026-11-15"]


def test_journal_prints_the_track_record_up_to_the_journals_latest_week(tmp_path, capsys):
    entry = JournalEntry("2026-W46", "verdict", "E1", lever="size chart", cohort="knitwear",
                         primary_metric="return_rate", design="A/B 50/50", estimate=-0.01, decision="keep",
                         why="J+7 review")
    record_week(tmp_path, "2026-W46", [entry], "verdict")
    assert cli.main(["journal", "--journal", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("From 2026-W39 to 2026-W46: 1 lever(s) reviewed, 1 kept") and "size chart" in out


# --- the command itself ----------------------------------------------------------------------------

def test_help_documents_every_option_of_every_command():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert sorted(sub.choices) == ["adapt", "experiments", "journal", "validate", "weekly", "weeks"]
    (actions,) = [a for a in sub.choices["experiments"]._actions if a.dest == "action"]
    assert sorted(actions.choices) == ["add", "close", "extend"]
    commands = {**sub.choices, **{f"experiments {k}": v for k, v in actions.choices.items()}}
    for name, command in commands.items():
        text = command.format_help()
        for action in command._actions:
            assert action.help, f"{name} {action.dest} has no help"
            assert (action.option_strings[-1] if action.option_strings else action.metavar) in text


def test_pyproject_declares_the_console_script_and_make_weekly_calls_it():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # the simulator adds `playbook season` to the run's commands (the run layer cannot import it)
    assert project["scripts"]["playbook"] == "playbook.sim.cli:main"
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\t$(VENV)/bin/playbook weekly --week" in makefile.split("\nweekly:", 1)[1].split("\n\n", 1)[0]


# --- a console script that behaves like one: paths from the working directory, --version --------

def test_a_relative_data_path_is_read_from_the_working_directory_not_the_repository(tmp_path, monkeypatch, capsys):
    write_shop(tmp_path / "exports" / "mydata")
    monkeypatch.chdir(tmp_path / "exports")
    assert cli.main(["validate", "mydata"]) == 0
    assert f"{tmp_path / 'exports' / 'mydata'}: the data satisfy the contract" in capsys.readouterr().out
    # the repository's own folder is not looked up from elsewhere
    assert cli.main(["weeks", "data_samples"]) == cli.EXIT_REFUSED
    assert f"{tmp_path / 'exports' / 'data_samples'}" in capsys.readouterr().err


def test_the_installed_command_reads_a_relative_path_from_where_it_is_run(tmp_path):
    write_shop(tmp_path / "mydata")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "playbook.run.cli", "weeks", "mydata"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["2026-W45  2026-11-02 .. 2026-11-08", "2026-W46  2026-11-09 .. 2026-11-15"]


def test_every_path_of_a_weekly_run_is_read_from_the_working_directory_and_defaults_stay(tmp_path, monkeypatch):
    seen = {}

    def fake_run(week, data, out, config, journal, **kw):
        seen.update(data=data, out=out, config=config, journal=journal, choices=kw["choices"])
        raise ValueError("stop here")

    (tmp_path / "choices.yaml").write_text("lever: size_guide\n")
    monkeypatch.setattr(cli, "run_week", fake_run)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["weekly", "--data", "shop", "--out", "out", "--journal", "j", "--config", "my.yaml",
                     "--params", "choices.yaml", "--no-send"])
    assert code == cli.EXIT_REFUSED
    assert seen == {"data": str(tmp_path / "shop"), "out": str(tmp_path / "out"), "config": str(tmp_path / "my.yaml"),
                    "journal": str(tmp_path / "j"), "choices": {"lever": "size_guide"}}
    # nothing given: the runner's defaults (the repository's sample, reports/, journal/, the configuration)
    seen.clear()
    assert cli.main(["weekly", "--no-send", "--out", "out"]) == cli.EXIT_REFUSED
    assert (seen["data"], seen["config"], seen["journal"]) == (None, None, None)
    # a database URL is never taken for a path
    assert cli.from_working_directory("postgresql://ana@db/shop") == "postgresql://ana@db/shop"


def test_version_prints_the_packages_version(capsys):
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"playbook {project['version']}"
