"""A season of the loop: N weeks of the method lived by a simulated team on a simulated shop (issue 20).

Week by week, ``run_season``:

1. writes the shop's export as of that week's Sunday 23:59:59 into ``<out>/data`` (``sim.shop``: nothing
   time-stamped after it; the levers the team runs applied to the units they treat);
2. runs the real weekly run on it (``run.weekly.run_week``: the same notebooks, report and journal as production,
   nothing mocked) into ``<out>/reports`` with the season's journal ``<out>/journal``; or, for the many-season
   calibration, the steps' ``analyse`` functions in-process in the notebooks' order on the same snapshot and
   configuration (``InProcessWeek``), with the journal written the same way (entries staged, then recorded);
3. acts as the team would (``sim.team``): starts a ready plan with ``playbook experiments add`` (the hand-off's
   ``add_plan``) on the season's data folder, draws its assignments 50/50 from the cohort's customers, rolls a kept
   lever out to the whole cohort from the next Monday, rolls back a stopped or adjusted one, leaves a continued or
   provisional one running, and sometimes (seeded) skips the week a review falls due, then closes that test with
   ``playbook experiments close`` once it shows as overdue;
4. writes the week's true state beside the report, ``<out>/truth/<WEEK>.json`` (which levers run, on whom, and
   their true effects), which the run never reads.

``<out>/season.json`` keeps the settings, the truth table and the team's actions; the reveal (``sim.reveal``, which
``playbook season`` calls after the season) writes ``<out>/index.html`` from it, the journal and the shop.
"""
from __future__ import annotations

import datetime as dt
import gc
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from playbook.config.loader import load_config
from playbook.core.atomic import write_text
from playbook.core.paths import DEFAULT_CONFIG, resolve
from playbook.core.settings import Config
from playbook.core.weeks import IsoWeek
from playbook.data.contract import parse_cohort
from playbook.data.dataset import Snapshot, open_dataset
from playbook.data.snapshot import SnapshotLocation, attach_snapshot, drop_snapshot, fingerprint
from playbook.journal import store as decision_journal
from playbook.journal.entry import VERDICT
from playbook.journal.store import read_journal
from playbook.journal.under_test import cohorts_in_test
from playbook.metrics.dictionary import known_metrics
from playbook.run import handoff
from playbook.run.session import store_week
from playbook.run.weekly import run_week
from playbook.sim import team
from playbook.sim.shop import Intervention, SeasonShop, write_tables
from playbook.sim.truth import Truth, default_truth
from playbook.steps import baseline, cohorts, experiments, levers, review

SEASON_FILE = "season.json"
SEED = 20261122
#: the week the sample shop starts (2026-W22): a season's history starts there by default
START = dt.date(2026, 5, 25)


class SeasonError(ValueError):
    """A season that cannot start: the message says why."""


@dataclass(frozen=True)
class SeasonSettings:
    """A season's shape: its weeks, seed and shop (size, history before the first week), and the team's habits."""

    weeks: int = 12
    seed: int = SEED
    units_per_week: float = 2800.0
    history_weeks: int = 16
    start: dt.date = START
    forget_share: float = 0.15  # the share of weeks with a first review due that the team skips
    config: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "start": self.start.isoformat()}

    @classmethod
    def of(cls, data: dict[str, Any]) -> SeasonSettings:
        return cls(**{**data, "start": dt.date.fromisoformat(data["start"])})


@dataclass(frozen=True)
class Verdict:
    experiment_id: str
    decision: str
    look: int | None
    money_per_week: float | None


@dataclass
class WeekOutcome:
    """What a week's run produced that the team reads: the report folder, step 3's plan file (when ready) and its
    plan, step 2's weak cohort, the week's verdicts, the overdue tests."""

    week: str
    report: Path | None
    plan_path: Path | None = None
    plan: dict[str, Any] | None = None
    weak: dict[str, str] | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    seconds: float = 0.0


def verdicts_of_week(journal_dir: Path, week: str) -> list[Verdict]:
    j = read_journal(journal_dir)
    j = j[(j["kind"] == VERDICT) & (j["week"] == week)]
    out = []
    for r in j.to_dict("records"):
        look = pd.to_numeric(r.get("look"), errors="coerce")
        money = pd.to_numeric(r.get("money_per_week"), errors="coerce")
        out.append(Verdict(str(r["experiment_id"]), str(r["decision"]), None if pd.isna(look) else int(look),
                           None if pd.isna(money) else float(money)))
    return out


# --- the two ways to run a week ---------------------------------------------------------------------------------

class NotebookWeek:
    """The real weekly run (``run_week``): notebooks, report and journal as in production."""

    def __init__(self, reports: Path, journal: Path, config: Path, log: Callable[[str], None]):
        self.reports, self.journal, self.config, self.log = reports, journal, config, log

    def __call__(self, week: IsoWeek, data: Path) -> WeekOutcome:
        started = time.monotonic()
        report = run_week(str(week), str(data), str(self.reports), str(self.config), str(self.journal),
                          log=lambda text: self.log(f"    {text}"))
        summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
        plan_path = report / "experiments_plan.csv"
        lever = summary.get("lever")
        weak = summary.get("weak_cohort")
        return WeekOutcome(
            str(week), report, plan_path if plan_path.is_file() else None,
            lever if lever and lever.get("ready") else None, (weak or {}).get("filters"),
            verdicts_of_week(self.journal, str(week)),
            [o["experiment_id"] for o in summary.get("overdue") or []], time.monotonic() - started)


class InProcessWeek:
    """The steps' ``analyse`` in the notebooks' order on one snapshot (for the many-season calibration): step 1,
    step 2, step 3 (on the free cohort, its plan row written as step 3's notebook writes it), step 4 (the due
    tests, open ones read again, given the journal), step 5 (looks numbered from the journal); the plan and the
    verdicts staged in the week's folder and recorded in the journal after, as the runner does."""

    def __init__(self, reports: Path, journal: Path, config: Config):
        self.reports, self.journal, self.config = reports, journal, config

    def __call__(self, week: IsoWeek, data: Path) -> WeekOutcome:
        started = time.monotonic()
        cfg = self.config
        run_dir = self.reports / str(week)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        dataset = open_dataset(str(data), timezone=cfg.timezone, known_metrics=known_metrics(cfg.metrics))
        # the runner's path: the week's cut and shared facts stored once, then attached by the steps (a cut
        # left as a view over the export would be rebuilt inside every query of the steps)
        location = SnapshotLocation(str(run_dir / "snapshot.duckdb"))
        try:
            store_week(dataset, week, cfg.metrics.return_window_days, location, fingerprint(data))
        finally:
            dataset.close()
        snap = attach_snapshot(location)
        try:
            plan_path, plan_dict, weak, overdue = self._analyse(snap, week, run_dir)
        finally:
            gc.collect()  # the snapshot's cached tables go while the connection still answers
            snap.dataset.close()
            drop_snapshot(location)
        decision_journal.apply_staged(run_dir, self.journal)
        return WeekOutcome(str(week), run_dir, plan_path, plan_dict, weak, verdicts_of_week(self.journal, str(week)),
                           overdue, time.monotonic() - started)

    def _analyse(self, snap: Snapshot, week: IsoWeek, run_dir: Path):
        cfg = self.config
        base = baseline.analyse(snap, cfg)
        weak = cohorts.analyse(snap, cfg).sections
        step3 = levers.analyse(snap, cfg, weak["weak_cohort"], weak["weak_cohort_candidates"],
                               under_way=cohorts_in_test(snap, self.journal))
        plan = step3.plan
        plan_path = levers.write_experiments_row(plan, run_dir).path if plan is not None else None
        decision_journal.stage(run_dir, week, [levers.journal_entry(plan, str(week))] if plan else [], kind="plan")
        step4 = experiments.analyse(snap, cfg, self.journal)
        step5 = review.analyse(snap, cfg, step4.sections["comparisons"], baseline=base.sections["baseline"],
                               weak=weak["weak_cohort"], candidates=weak["weak_cohort_candidates"],
                               lever=step3.sections["lever"], journal_dir=self.journal, week=week)
        decision_journal.stage(run_dir, week, [v.journal_entry(str(week)) for v in step5.verdicts], kind="verdict")
        plan_dict = None
        if plan is not None and plan.ready:
            plan_dict = {"experiment_id": plan.experiment_id, "lever": plan.lever, "cohort": plan.cohort,
                         "reason_code": plan.reason_code, "design": str(plan.design),
                         "review_date": str(plan.review_date), "start_date": str(plan.start_date),
                         "planned_looks": plan.planned_looks, "power_at_review": plan.power_at_review}
        section = weak["weak_cohort"]
        return (plan_path, plan_dict, dict(section.filters) if section else None,
                [o.experiment_id for o in step4.overdue])


# --- the season -----------------------------------------------------------------------------------------------

@dataclass
class Season:
    """A season's folders and state while it runs."""

    out: Path
    settings: SeasonSettings
    truth: Truth
    shop: SeasonShop
    interventions: list[Intervention] = field(default_factory=list)
    actions: list[team.Action] = field(default_factory=list)
    weeks: list[dict[str, Any]] = field(default_factory=list)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    weak_named: list[dict[str, Any]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def reports(self) -> Path:
        return self.out / "reports"

    @property
    def journal(self) -> Path:
        return self.out / "journal"

    @property
    def truth_dir(self) -> Path:
        return self.out / "truth"

    def experiments_table(self) -> pd.DataFrame | None:
        found = sorted(self.data.glob("experiments.*"))
        if not found:
            return None
        return pd.read_csv(found[0], dtype=str, keep_default_na=False)

    def act(self, what: str, week: str, eid: str, text: str, log: Callable[[str], None]) -> None:
        self.actions.append(team.Action(week, what, eid, text))
        log(f"  team: {text}")


def make_shop(settings: SeasonSettings, truth: Truth) -> SeasonShop:
    return SeasonShop(settings.seed, settings.start, settings.history_weeks, settings.weeks,
                      settings.units_per_week, truth)


def run_season(out: str | Path, settings: SeasonSettings = SeasonSettings(), truth: Truth | None = None,
               in_process: bool = False, log: Callable[[str], None] = print, csv_gzip: bool = True) -> Season:
    """Live ``settings.weeks`` weeks of the method into ``out`` (module docstring); returns the season (the reveal,
    ``sim.reveal.write_reveal``, reads it)."""
    truth = truth or default_truth()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / SEASON_FILE).is_file():  # never empty a folder that is not a season's (a real journal...)
            raise SeasonError(f"{out} is not empty and holds no {SEASON_FILE}: a season starts in a new folder or "
                              "replaces an earlier season's")
        for sub in ("data", "reports", "journal", "truth"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    config_path = resolve(settings.config or None, DEFAULT_CONFIG)
    cfg = load_config(config_path)
    season = Season(out, settings, truth, make_shop(settings, truth))
    for folder in (season.data, season.reports, season.journal, season.truth_dir):
        folder.mkdir(parents=True, exist_ok=True)
    engine = (InProcessWeek(season.reports, season.journal, cfg) if in_process
              else NotebookWeek(season.reports, season.journal, config_path, log))
    rng = np.random.default_rng([settings.seed, 77])
    reviewed: set[str] = set()
    for i in range(settings.weeks):
        monday = season.shop.season_week(i)
        sunday = monday + dt.timedelta(days=6)
        week = IsoWeek.of(monday)
        log(f"Week {i + 1}/{settings.weeks}: {week} (export as of {sunday} 23:59:59)")
        experiments_df = season.experiments_table()
        tables = season.shop.tables(sunday, season.interventions, experiments_df)
        _write_export(tables, season.data, csv_gzip)
        due = _reviews_due(experiments_df, week)
        if i > 0 and team.forgets(float(rng.random()), settings.forget_share, due, reviewed):
            season.act("skip run", str(week), ",".join(due), f"away this week: the weekly run of {week} was not done, "
                       f"so the review of {', '.join(due)} is missed", log)
            season.weeks.append({"week": str(week), "ran": False})
            _write_truth(season, week, monday, sunday, ran=False)
            continue
        outcome = engine(week, season.data)
        log(f"  run of {week}: {outcome.seconds:.0f} s; verdicts {[(v.experiment_id, v.decision) for v in outcome.verdicts]}"
            f"; plan {outcome.plan['experiment_id'] if outcome.plan else None}; overdue {outcome.overdue}")
        season.weeks.append({"week": str(week), "ran": True, "seconds": round(outcome.seconds, 1),
                             "weak": outcome.weak, "plan": outcome.plan and outcome.plan.get("experiment_id")})
        if outcome.weak:
            season.weak_named.append({"week": str(week), **outcome.weak,
                                      "real": truth.is_spike(outcome.weak.get("category"), outcome.weak.get("reason_code"))})
        _act(season, outcome, sunday, cfg, reviewed, log)
        _write_truth(season, week, monday, sunday, ran=True)
    _write_season(season)
    return season


def _write_export(tables: dict[str, pd.DataFrame], folder: Path, csv_gzip: bool) -> None:
    """The export: the sample's gzip CSV files (what a new hire opens), or Parquet for the many-season calibration
    (twenty times faster to write; the experiments table stays the hand-off's CSV)."""
    if csv_gzip:
        write_tables(tables, folder)
        return
    for name, df in tables.items():
        if name != "experiments":
            df.to_parquet(folder / f"{name}.parquet", index=False)


def _reviews_due(experiments_df: pd.DataFrame | None, week: IsoWeek) -> list[str]:
    """The tests whose review date falls in ``week`` and that are not closed."""
    if experiments_df is None:
        return []
    out = []
    for r in experiments_df.to_dict("records"):
        if str(r.get("closed_on") or "").strip():
            continue
        if IsoWeek.of(dt.date.fromisoformat(r["review_date"])) == week:
            out.append(r["experiment_id"])
    return out


def _act(season: Season, outcome: WeekOutcome, sunday: dt.date, cfg: Config, reviewed: set[str],
         log: Callable[[str], None]) -> None:
    week = outcome.week
    for v in outcome.verdicts:
        reviewed.add(v.experiment_id)
        season.interventions, what = team.on_verdict(season.interventions, v.experiment_id, v.decision, sunday)
        monday = sunday + dt.timedelta(days=1)
        words = {"keep": f"keep {v.experiment_id}: its lever is rolled out to the whole cohort from {monday}",
                 "roll back": f"{v.decision} {v.experiment_id}: its lever is rolled back from {monday}",
                 "continue": f"{v.decision} {v.experiment_id} (look {v.look}): the test goes on"}[what]
        season.act(what, week, v.experiment_id, words, log)
    for eid in outcome.overdue:
        result = handoff.close_experiment(eid, season.data, "review forgotten: shown as overdue, closed without a verdict",
                                          sunday, cfg.timezone, known_metrics(cfg.metrics))
        season.interventions = team.on_close(season.interventions, eid, sunday)
        season.act("close overdue", week, eid, f"close {eid} (overdue: its review was missed): {result.message}", log)
    if outcome.plan_path is not None and outcome.plan is not None:
        row = handoff.read_plan(outcome.plan_path, cfg.timezone)
        lever, cohort = str(row.values["lever"]), str(row.values.get("cohort") or "")
        if any(iv.rolled_out and iv.end is None and (iv.lever, iv.cohort) == (lever, cohort)
               for iv in season.interventions):
            season.act("not started", week, row.experiment_id, f"{row.experiment_id} not started: {lever} is already "
                       f"rolled out on {cohort} (a kept lever is not tested again)", log)
            return
        tried = [a.experiment_id for a in season.actions if a.what == "roll back"
                 and (season.plans.get(a.experiment_id, {}).get("lever"), season.plans.get(a.experiment_id, {}).get(
                     "cohort")) == (lever, cohort)]
        if tried:
            season.act("not started", week, row.experiment_id, f"{row.experiment_id} not started: {lever} on {cohort} "
                       f"was already adjusted or stopped ({', '.join(tried)}); the same lever is not run again "
                       "unchanged (an analyst would choose another lever or scope)", log)
            return
        try:
            result = handoff.add_plan(outcome.plan_path, season.data, None, season.journal, cfg.timezone,
                                      known_metrics(cfg.metrics))
        except handoff.HandoffError as exc:
            season.act("refused", week, outcome.plan["experiment_id"], f"the plan could not start: {exc}", log)
            return
        eid = row.experiment_id
        season.interventions = team.on_start(season.interventions, eid, lever, cohort, row.start_date,
                                             str(row.values["design"]))
        season.plans[eid] = {**outcome.plan, "week": week, "lever": lever, "cohort": cohort,
                             "start_date": str(row.start_date), "review_date": str(row.review_date),
                             "planned_looks": row.values.get("planned_looks") or 1}
        season.act("start", week, eid, f"start {eid} ({lever} on {cohort}, 50/50 from {row.start_date}, review "
                                       f"{row.review_date}): {result.message}", log)


def true_effects(truth: Truth, lever: str, cohort: str) -> list[dict[str, Any]]:
    """The truth table's entries of ``lever`` on the cohort's category (every category when it names none)."""
    category = parse_cohort(cohort or "").get("category")
    return [{"category": e.category, "reason": e.reason, **asdict(e.effect), "words": e.effect.words()}
            for e in truth.effects(lever, category)]


def _write_truth(season: Season, week: IsoWeek, monday: dt.date, sunday: dt.date, ran: bool) -> None:
    """``<out>/truth/<WEEK>.json``: the week's true state (never read by the run)."""
    levers_on = []
    for iv in season.interventions:
        if not (iv.on(monday) or iv.on(sunday) or iv.start > sunday):
            continue
        state = ("starts " + iv.start.isoformat() if iv.start > sunday else
                 "rolled out to the whole cohort" if iv.rolled_out else
                 "under test on the whole cohort (pre/post)" if iv.whole_cohort else "under test on its treatment arm")
        levers_on.append({"experiment_id": iv.experiment_id, "lever": iv.lever, "cohort": iv.cohort, "state": state,
                          "start": iv.start.isoformat(), "end": iv.end.isoformat() if iv.end else None,
                          "true_effects": true_effects(season.truth, iv.lever, iv.cohort)})
    state = {"week": str(week), "as_of": f"{sunday} 23:59:59", "weekly_run": "done" if ran else "skipped (team away)",
             "levers": levers_on, "spikes": [asdict(s) for s in season.truth.spikes],
             "team_actions": [asdict(a) for a in season.actions if a.week == str(week)]}
    write_text(season.truth_dir / f"{week}.json", json.dumps(state, indent=2, default=str) + "\n")


def _write_season(season: Season) -> None:
    data = {"settings": season.settings.to_dict(), "truth": season.truth.to_dict(),
            "actions": [asdict(a) for a in season.actions], "weeks": season.weeks, "plans": season.plans,
            "weak_named": season.weak_named,
            "interventions": [{**asdict(iv), "start": iv.start.isoformat(), "end": iv.end and iv.end.isoformat()}
                              for iv in season.interventions]}
    write_text(season.out / SEASON_FILE, json.dumps(data, indent=2, default=str) + "\n")


def scratch_season(settings: SeasonSettings, truth: Truth, **kwargs) -> Season:
    """A season in a temporary folder, removed after (the calibration keeps only the numbers)."""
    with tempfile.TemporaryDirectory(prefix="season-") as tmp:
        return run_season(tmp, settings, truth, in_process=True, **kwargs)
