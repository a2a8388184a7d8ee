"""The ``playbook`` command: the weekly run, its alerts, and the checks a scheduler or a person needs.

``playbook weekly`` renders a week (what ``make weekly`` and every scheduler call), ``playbook adapt online-retail
SOURCE OUT`` maps a real export onto the contract (``playbook.adapters``), ``playbook validate
DATA`` checks a source against the data contract without rendering, ``playbook weeks DATA`` lists the
weeks a run accepts, ``playbook journal`` prints the team's track record, and ``playbook experiments add
PLAN_CSV DATA`` / ``playbook experiments close ID DATA --reason TEXT`` start a planned test and close one in
the source's experiments table (``playbook.run.handoff``; exit 0 done, 2 refused with nothing written; a
database source gets the SQL to run, never a write). ``python -m playbook.run.cli`` is the same command,
without ``playbook season``: the console script is ``playbook.sim.cli``, which adds it (the run layer cannot
import the simulator).
A relative path given on the command line is read from the working directory, as any command reads it
(``cd ~/exports && playbook validate mydata``); what is not given keeps its default in the repository
(``data_samples/``, ``reports/``, ``journal/``, ``playbook/config/playbook.yaml``). The functions below, called
from Python, read relative paths from the repository root like the runner (``playbook.core.paths``).

Exit codes of ``playbook weekly``: 0 a complete report (red triggers included), 1 the run failed (the
previous complete report of the week is untouched), 2 refused before any notebook (data, configuration,
source or week), 3 a complete report with red triggers under ``--fail-on-red`` (for schedulers that
alert on exit codes). Alerts (``playbook.run.alerts``) are written and sent after the run, here and not
inside the runner, and never change the exit code.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from playbook.adapters import online_retail
from playbook.config.loader import for_source, load_config, shop_note
from playbook.core.formats import date_text
from playbook.core.paths import DATA_SAMPLES_DIR, DEFAULT_CONFIG, REPO_ROOT, journal_dir_for, reports_dir_for, resolve
from playbook.core.settings import Config, ConfigError
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Dataset, open_dataset
from playbook.data.validation import ContractError
from playbook.journal.entry import JournalError
from playbook.journal.store import read_journal
from playbook.journal.track_record import track_record
from playbook.metrics.dictionary import known_metrics
from playbook.report.summary import load_summary
from playbook.run import alerts as week_alerts
from playbook.run import handoff
from playbook.run.choices import read_choices
from playbook.run.weekly import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_RED, EXIT_REFUSED, classify, run_week, source_text

#: the name of the failure folder of a run refused before its week was known (no --week given)
LATEST = "latest"
#: the distribution ``pip install -e .`` installs (pyproject.toml's ``[project] name``)
DISTRIBUTION = "returns-playbook"


def _write(text: str) -> None:
    print(text, flush=True)


class Progress:
    """The run's log callback: every line stamped with the time since the start, then a total.

    ``run_week`` logs each notebook as it starts and when it ends, with that notebook's own seconds;
    the stamp shows where the run is in the whole, and :meth:`total` closes the log with the run's time.
    """

    def __init__(self, write: Callable[[str], None] = _write, clock: Callable[[], float] = time.monotonic):
        self.write, self.clock = write, clock
        self.started = clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def __call__(self, text: str) -> None:
        self.write(f"[{self.elapsed():7.1f} s] {text}")

    def total(self, outcome: str) -> None:
        self.write(f"Total: {self.elapsed():.1f} s ({outcome})")


# --- playbook weekly -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WeeklyResult:
    """What ``playbook weekly`` did: its exit code, the report (None unless complete), the alerts written."""

    code: int
    report: Path | None
    alerts: week_alerts.Alerts | None


def _failure_folder(out_dir: Path, week: str, since: float) -> tuple[str, Path]:
    """The week and the ``<WEEK>.failed/`` folder of a failed run.

    With ``--week`` it is that week's; without, the one the runner has just marked (the newest
    ``error.txt`` written since the run started), else ``latest.failed/`` (refused before the week was known).
    """
    try:
        iso = str(IsoWeek.parse(week)) if week else None
    except ValueError:
        iso = None
    if iso is None and not week:
        fresh = [p for p in out_dir.glob("*.failed/error.txt") if p.stat().st_mtime >= since]
        if fresh:
            folder = max(fresh, key=lambda p: p.stat().st_mtime).parent
            return folder.name.removesuffix(".failed"), folder
    name = iso or LATEST
    return name, out_dir / f"{name}.failed"


def _alert(alerts: week_alerts.Alerts, folder: Path, send: bool, log: Callable[[str], None]) -> week_alerts.Alerts:
    """Write the alerts, send them, rewrite ``alerts.json`` with the deliveries; nothing here fails the run."""
    try:
        path = week_alerts.write_alerts(folder, alerts)
        log(f"Alerts: {alerts.subject()} -> {path}")
        if send:
            alerts = week_alerts.deliver(alerts, log=log)
            week_alerts.write_alerts(folder, alerts)
    except Exception as exc:  # an alert that cannot be written or sent is reported; the report stands
        log(f"Alerts could not be written or sent: {type(exc).__name__}: {exc}")
    return alerts


def weekly(week: str = "", data: str = "", out: str = "", config: str = "", journal: str = "",
           timeout: int = 900, fail_on_red: bool = False, send: bool = True,
           log: Callable[[str], None] | None = None, notebooks: list[Path] | None = None,
           wait: float = 0.0, params: str = "") -> WeeklyResult:
    """Render ``week`` with the runner, then write and send its alerts; the exit code as the module says.

    ``send=False`` writes the alerts without sending them. ``notebooks``: the runner's notebooks (tests).
    """
    progress = Progress(log) if log else Progress()
    out_dir = resolve(out or None, reports_dir_for(source_text(data or None)))  # where the runner writes
    started = time.time() - 1  # file times may be rounded down to the second
    try:
        report = run_week(week or None, data or None, out or None, config or None, journal or None,
                          notebooks=notebooks, timeout=timeout, log=progress, lock_wait=wait,
                          choices=read_choices(params) if params else None)
    except Exception as exc:
        known = classify(exc)
        # an error the runner does not know is still a failed run to alert on; then it propagates
        code, message = known or (EXIT_FAILED, f"The weekly run failed unexpectedly: {type(exc).__name__}: {exc}")
        print(f"\n{message}", file=sys.stderr, flush=True)
        progress.total("refused" if code in (EXIT_REFUSED, EXIT_BUSY) else "failed")
        name, folder = _failure_folder(out_dir, week, started)
        page = "error.txt" if (folder / "error.txt").is_file() else week_alerts.ALERTS_MD
        alerts = _alert(week_alerts.failure_alerts(name, message, week_alerts.report_link(folder, page)),
                        folder, send, progress)
        if known is None:
            raise
        return WeeklyResult(code, None, alerts)
    progress.total("complete")
    if not week:
        shutil.rmtree(out_dir / f"{LATEST}.failed", ignore_errors=True)  # a run without --week now succeeded
    alerts = _complete_alerts(report, send, progress, config, data)
    if alerts is not None and alerts.reds and fail_on_red:
        return WeeklyResult(EXIT_RED, report, alerts)
    return WeeklyResult(EXIT_OK, report, alerts)


def _complete_alerts(report: Path, send: bool, log: Callable[[str], None], config: str = "",
                     data: str = "") -> week_alerts.Alerts | None:
    """The alerts of a complete week, worded with the run's configuration and its data's shop.yaml (currency)."""
    try:
        shop = for_source(load_config(config or None), source_text(data or None))
        found = week_alerts.week_alerts(load_summary(report), week_alerts.report_link(report), shop)
    except Exception as exc:  # the report is complete and published; a summary that does not read is logged
        log(f"Alerts not computed: {report / 'summary.json'} does not read: {type(exc).__name__}: {exc}")
        return None
    if not found.items:
        log("No alert this week: no red trigger, no overdue review, no verdict.")
        return found
    return _alert(found, report, send, log)


# --- playbook validate / weeks / journal -----------------------------------------------------------

def _open(data: str, config: str) -> tuple[Dataset, Config]:
    """Open and validate ``data`` as a weekly run does (the time zone of its shop.yaml or the configuration's,
    the metric names); the configuration for that source beside it."""
    source = data if "://" in data else str(resolve(data or None, DATA_SAMPLES_DIR))
    cfg = for_source(load_config(resolve(config or None, DEFAULT_CONFIG)), source)
    return open_dataset(source, timezone=cfg.timezone, known_metrics=known_metrics(cfg.metrics)), cfg


def validate(data: str, config: str = "") -> int:
    """Check ``data`` against the contract; print the verdict and the data-quality warnings."""
    dataset, cfg = _open(data, config)
    try:
        print(f"{dataset.source_label}: the data satisfy the contract. {dataset.completeness_note()}.")
        print(f"Shop: {shop_note(cfg)}.")
        print(f"Weeks available: {dataset.first_week()} .. {dataset.latest_complete_week()}.")
        if dataset.missing_tables:
            print(f"Optional tables not given: {', '.join(dataset.missing_tables)}.")
        for w in dataset.warnings:
            print(f"warning: {w.table}: {w.message}")
    finally:
        dataset.close()
    return EXIT_OK


def weeks(data: str, config: str = "") -> int:
    """Print the weeks a run accepts (first week of the data .. latest complete week), one a line."""
    dataset, _ = _open(data, config)
    try:
        first, last = dataset.first_week(), dataset.latest_complete_week()
        note = dataset.completeness_note()
    finally:
        dataset.close()
    week = first
    while week <= last:
        print(f"{week}  {date_text(week.monday)} .. {date_text(week.sunday)}")
        week = week.shift(1)
    print(f"# {note}.", file=sys.stderr)
    return EXIT_OK


def journal(journal_dir: str = "", week: str = "", weeks_back: int = 8, data: str = "") -> int:
    """Print the track record over ``weeks_back`` weeks up to ``week`` (default: the journal's latest week).

    The journal: ``journal_dir``, else the default one of the source ``data`` (the sample's: ``journal/``).
    """
    folder = resolve(journal_dir or None, journal_dir_for(source_text(data or None)))
    if not week:
        known = read_journal(folder)["week"]
        week = str(max(map(IsoWeek.parse, known))) if len(known) else str(IsoWeek.of(dt.date.today()))
    record = track_record(folder, week, weeks_back)
    print(record.summary())
    if record.n_reviewed:
        print()
        print(record.table().to_string(index=False))
    return EXIT_OK


# --- playbook experiments add / close -------------------------------------------------------------

def _source(data: str) -> str:
    """A database URL as given; a folder read from the repository root when relative."""
    return data if handoff.is_url(data) else str(resolve(data, DATA_SAMPLES_DIR))


def _handoff_done(result: handoff.HandoffResult) -> int:
    if result.sql is not None:  # a database source: the statement on stdout (it pipes into a client), a note beside
        print(result.sql, end="", flush=True)
        print(result.message, file=sys.stderr)
    else:
        print(result.message)
    return EXIT_OK


def experiments_add(plan: str, data: str, start: dt.date | None = None, journal_dir: str = "",
                    config: str = "") -> int:
    """Append the plan's row to ``data``'s experiments table (``handoff.add_plan``); exit 2 with why when refused."""
    try:
        cfg = for_source(load_config(resolve(config or None, DEFAULT_CONFIG)), _source(data))
        result = handoff.add_plan(resolve(plan, reports_dir_for(_source(data))), _source(data), start,
                                  resolve(journal_dir or None, journal_dir_for(_source(data))), cfg.timezone,
                                  known_metrics(cfg.metrics))
    except (handoff.HandoffError, JournalError, ConfigError) as exc:
        print(f"Cannot add the plan: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return _handoff_done(result)


def experiments_close(experiment_id: str, data: str, reason: str, on: dt.date | None = None,
                      config: str = "") -> int:
    """Close one test of ``data``'s experiments table (``handoff.close_experiment``); exit 2 with why when refused."""
    try:
        cfg = for_source(load_config(resolve(config or None, DEFAULT_CONFIG)), _source(data))
        result = handoff.close_experiment(experiment_id, _source(data), reason, on, cfg.timezone,
                                          known_metrics(cfg.metrics))
    except (handoff.HandoffError, ConfigError) as exc:
        print(f"Cannot close {experiment_id}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return _handoff_done(result)


def experiments_extend(experiment_id: str, data: str, to: dt.date, information: float | None = None,
                       journal_dir: str = "", config: str = "") -> int:
    """Extend one test before its review (``handoff.extend_experiment``); exit 2 with why when refused."""
    try:
        cfg = for_source(load_config(resolve(config or None, DEFAULT_CONFIG)), _source(data))
        result = handoff.extend_experiment(experiment_id, _source(data), to, information,
                                           resolve(journal_dir or None, journal_dir_for(_source(data))), cfg.timezone,
                                           known_metrics(cfg.metrics))
    except (handoff.HandoffError, JournalError, ConfigError) as exc:
        print(f"Cannot extend {experiment_id}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return _handoff_done(result)


# --- playbook adapt -------------------------------------------------------------------------------

#: the adapters ``playbook adapt NAME SOURCE OUT`` runs: each writes a folder source (tables and shop.yaml)
ADAPTERS: dict[str, Callable[[str, str], int]] = {"online-retail": online_retail.adapt}


def adapt(name: str, source: str, out: str) -> int:
    """Map the export ``source`` onto the contract into the folder ``out`` with adapter ``name``; then say what next."""
    code = ADAPTERS[name](source, out)
    if code == EXIT_OK:
        folder = Path(out).resolve()
        print(f"Next: playbook weekly --data {out} (renders its latest complete week into "
              f"{reports_dir_for(str(folder))}/<WEEK>/, records into {journal_dir_for(str(folder))}/)")
    return code


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


# --- the parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="playbook", description="The returns playbook: render a week, check a source, list weeks, read the journal, "
                                     "start or close a test.",
        epilog="Relative paths are read from the working directory; what is not given keeps its default in the "
               "repository (data_samples/, reports/, journal/, playbook/config/playbook.yaml). See README.md, "
               "'Scheduling the weekly run'.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="print the version of the returns playbook and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("weekly", help="render a week's report, then write and send its alerts",
                       description="Render a week's report into OUT/WEEK/, then write alerts.md and alerts.json "
                                   "beside it and send them (e-mail and chat webhook, from the environment).",
                       epilog="Exit codes: 0 complete (reds included), 1 failed run, 2 refused before any notebook, "
                              "3 reds with --fail-on-red, 4 another run of the week in progress. "
                              "Alert delivery, from the environment only: "
                              + ", ".join(week_alerts.ENVIRONMENT) + ".")
    w.add_argument("--week", default="", help="ISO week such as 2026-W47 (default: the latest complete week)")
    _data_argument(w, "--data")
    w.add_argument("--out", default="", help="reports folder; the week goes to OUT/WEEK/ (default: reports/<source name>/, "
                                             "reports/ for data_samples/)")
    _config_argument(w)
    w.add_argument("--journal", default="", help="decision journal folder, never inside OUT (default: journal/<source "
                                                 "name>/, journal/ for data_samples/)")
    w.add_argument("--timeout", type=int, default=900, help="seconds allowed per notebook cell (default: 900)")
    w.add_argument("--params", default="",
                   help="YAML file of the analyst's choices (papermill's parameters file), e.g. 'lever: size_guide' "
                        "and 'design: pre_post'; each must be a parameter a notebook declares")
    w.add_argument("--wait", type=float, default=0.0,
                   help="seconds to wait for another run of the same week to finish (default: stop at once, exit 4)")
    w.add_argument("--fail-on-red", action="store_true",
                   help="exit 3 when the complete report has red triggers (default: exit 0)")
    w.add_argument("--no-send", action="store_true", help="write alerts.md and alerts.json but send nothing")

    v = sub.add_parser("validate", help="check a source against the data contract without rendering",
                       description="Open and validate DATA as a weekly run does; print its data-quality warnings. "
                                   "Exit 2 with the contract's message when the source breaks it.")
    _data_argument(v, "data")
    _config_argument(v)

    k = sub.add_parser("weeks", help="list the weeks of a source a run accepts",
                       description="List the weeks from the first of DATA to its latest complete week (the data "
                                   "reach its Sunday 23:00, or the export table says so), one per line.")
    _data_argument(k, "data")
    _config_argument(k)

    j = sub.add_parser("journal", help="print the track record from the decision journal",
                       description="Print the verdicts of the last weeks, counted, and the kept levers in money per week.")
    j.add_argument("--journal", default="",
                   help="decision journal folder (default: the journal of --data: journal/, or journal/<source name>/)")
    j.add_argument("--data", default="",
                   help="the source whose default journal to read (journal/<source name>/; default: data_samples/, "
                        "whose journal is journal/)")
    j.add_argument("--week", default="", help="last week of the record (default: the latest week in the journal)")
    j.add_argument("--weeks", type=int, default=8, help="number of weeks in the record (default: 8)")

    d = sub.add_parser("adapt", help="map a real export onto the data contract (a folder the other commands read)",
                       description="Read an export in its own shape and write the contract's tables as Parquet into OUT, "
                                   "with OUT/shop.yaml (the shop's name, currency and time zone); print what was kept "
                                   "and dropped, and why. Exit 2 with the reason when SOURCE is not a file.",
                       epilog="Then: playbook weekly --data OUT (into reports/<name of OUT>/<WEEK>/).")
    d.add_argument("adapter", choices=sorted(ADAPTERS), metavar="ADAPTER",
                   help=f"the export's kind: {', '.join(sorted(ADAPTERS))} (the UCI Online Retail transactions)")
    d.add_argument("source", metavar="SOURCE", help="the export file, e.g. ../shared/data/online_retail.csv.xz")
    d.add_argument("out", metavar="OUT", help="the folder to write into (created if needed), e.g. exports/online_retail")

    e = sub.add_parser("experiments", help="start a planned test or close one in the source's experiments table",
                       description="Add step 3's plan row to a folder source's experiments table, or close a test "
                                   "(overdue or abandoned). A database source is never written: the SQL to run "
                                   "there is printed. Exit 2 with the reason when refused; nothing is written then.")
    actions = e.add_subparsers(dest="action", required=True, metavar="ACTION", help="add, close or extend")
    a = actions.add_parser("add", help="append a plan's row to the experiments table",
                           description="Append the row of PLAN_CSV (reports/<WEEK>/experiments_plan.csv) to DATA's "
                                       "experiments table, in the table's own format and columns (experiments.csv is "
                                       "created when there is none). Refused: a plan that is not one valid row, an "
                                       "experiment_id already there, an open test on an overlapping cohort.")
    a.add_argument("plan", metavar="PLAN_CSV", help="the plan's row written by step 3: reports/<WEEK>/experiments_plan.csv")
    _data_argument(a, "data")
    a.add_argument("--start", type=_date, default=None, metavar="YYYY-MM-DD",
                   help="the day the change went live, when the launch slipped: start_date and review_date move by "
                        "the same number of days (the selection weeks stay)")
    a.add_argument("--journal", default="",
                   help="decision journal folder, whose latest verdicts say which tests are still open (default: "
                        "the source's: journal/<source name>/, journal/ for data_samples/)")
    _config_argument(a)
    c = actions.add_parser("close", help="close a test (overdue or abandoned): closed_on and closed_reason",
                           description="Set closed_on and closed_reason of experiment ID in DATA's experiments table "
                                       "(the two columns are added when the table lacks them). Refused: an unknown "
                                       "ID, a test already closed, a date before its start.")
    c.add_argument("experiment_id", metavar="ID", help="the experiment_id of the test to close")
    _data_argument(c, "data")
    c.add_argument("--reason", required=True, help="why the test ended, in words (overdue, abandoned, rolled back...)")
    c.add_argument("--on", type=_date, default=None, metavar="YYYY-MM-DD", help="the day it ended (default: today)")
    _config_argument(c)
    x = actions.add_parser("extend", help="move a test's review date later, before its review, and re-plan it",
                           description="Set a later review_date and the planned_information of the new plan for "
                                       "experiment ID (the first review date and information are kept in "
                                       "original_review_date and original_planned_information). Refused once the "
                                       "review date's read is in the journal: that read spent what was left of the "
                                       "alpha. A folder source only.")
    x.add_argument("experiment_id", metavar="ID", help="the experiment_id of the test to extend")
    _data_argument(x, "data")
    x.add_argument("--to", type=_date, required=True, metavar="YYYY-MM-DD", help="the new review date")
    x.add_argument("--information", type=float, default=None,
                   help="customers per arm with a unit followed for the window at the new review (default: the "
                        "planned information scaled by the days of exposure)")
    x.add_argument("--journal", default="", help="decision journal folder (default: journal/)")
    _config_argument(x)
    return parser


def _data_argument(parser: argparse.ArgumentParser, name: str) -> None:
    text = ("folder of CSV/Parquet files or database URL (password from PLAYBOOK_DB_PASSWORD, never in the URL)"
            + ("; default: data_samples/" if name.startswith("--") else ""))
    if name.startswith("--"):
        parser.add_argument(name, default="", help=text)
    else:
        parser.add_argument(name, metavar="DATA", help=text)


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="", help="YAML configuration (default: playbook/config/playbook.yaml)")


def package_version() -> str:
    """The installed distribution's version (``pyproject.toml``'s), or the file's when the package is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout on PYTHONPATH, never installed
        text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8") if (REPO_ROOT / "pyproject.toml").is_file() else ""
        found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        return found.group(1) if found else "unknown"


#: the arguments that name files or folders (a URL among them is left as it is)
_PATH_ARGUMENTS = ("data", "out", "config", "journal", "params", "plan", "source")


def from_working_directory(path: str) -> str:
    """A path typed on the command line, absolute against the working directory; empty and URLs unchanged.

    The functions it feeds read a relative path from the repository root (``core.paths.resolve``); the
    command makes it absolute first, so that ``cd ~/exports && playbook validate mydata`` reads ``~/exports/mydata``.
    """
    if not path or handoff.is_url(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in _PATH_ARGUMENTS:
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, from_working_directory(getattr(args, name)))
    try:
        if args.command == "weekly":
            return weekly(args.week, args.data, args.out, args.config, args.journal, args.timeout,
                          args.fail_on_red, send=not args.no_send, wait=args.wait, params=args.params).code
        if args.command == "validate":
            return validate(args.data, args.config)
        if args.command == "weeks":
            return weeks(args.data, args.config)
        if args.command == "adapt":
            return adapt(args.adapter, args.source, args.out)
        if args.command == "experiments" and args.action == "add":
            return experiments_add(args.plan, args.data, args.start, args.journal, args.config)
        if args.command == "experiments" and args.action == "extend":
            return experiments_extend(args.experiment_id, args.data, args.to, args.information, args.journal,
                                      args.config)
        if args.command == "experiments":
            return experiments_close(args.experiment_id, args.data, args.reason, args.on, args.config)
        return journal(args.journal, args.week, args.weeks, args.data)
    except (ContractError, ConfigError, JournalError, ValueError) as exc:
        print(str(exc) if isinstance(exc, ContractError) else f"Cannot {args.command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED

if __name__ == "__main__":
    sys.exit(main())
