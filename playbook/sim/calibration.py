"""The method measured as a whole: many seasons with randomised truth tables and shop sizes (issue 20).

Each season (``sim.season.run_season`` with the in-process engine: the steps' ``analyse`` in the notebooks' order
on the same snapshot and configuration, looks numbered from the season's journal) has its own random truth table
(``truth.random_truth``), a shop of 2,000 to 40,000 units a week (log-uniform) and a team that never forgets a
review. Per test the team started whose review date falls inside the season, it records the lever's true nature
on its cohort (``reveal.truly``: works, does nothing, only delays, or harmful: more returns, or contacts raised
beyond the contact guardrail's tolerance, ``sim.shop.true_contact_rise``), the power its plan stated at the
review, and the verdicts (kept by the review date, stopped, adjusted, still open); per week, whether step 2's weak
cohort was real (a spike of the truth); per kept lever, the money the verdict claimed and what it really saves.

``python -m playbook.sim.calibration --seasons 200 --out calibration.jsonl`` appends one JSON line per season (a
partial run is usable) and prints the summary: the share of working levers kept by their review date beside the
plans' mean stated power, the share of null levers kept (target <= 2.5 %), of harmful levers stopped, of weak
cohorts named that were not real, and money claimed against truly saved, each with its replications and standard
error.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta

from playbook.core.vocabulary import Decision
from playbook.core.weeks import IsoWeek
from playbook.journal.entry import MONEY_COLUMNS, VERDICT
from playbook.journal.store import read_journal
from playbook.sim.reveal import contact_tolerance, truly
from playbook.sim.season import SeasonSettings, run_season
from playbook.sim.shop import true_contact_rise, true_saving_per_week
from playbook.sim.truth import random_truth

UNITS_RANGE = (2_000.0, 40_000.0)


def season_settings(i: int, base_seed: int = 1000, weeks: int = 12) -> tuple[SeasonSettings, Any]:
    """The i-th calibration season: its seed, its shop size (log-uniform in UNITS_RANGE) and its truth table."""
    seed = base_seed + i
    rng = np.random.default_rng([seed, 99])
    units = float(np.exp(rng.uniform(*np.log(UNITS_RANGE))))
    return SeasonSettings(weeks=weeks, seed=seed, units_per_week=round(units), forget_share=0.0), random_truth(seed)


def one_season(i: int, base_seed: int = 1000, weeks: int = 12) -> dict[str, Any]:
    """Live the i-th season in a scratch folder and return what it measured (module docstring)."""
    settings, truth = season_settings(i, base_seed, weeks)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="season-") as tmp:
        season = run_season(tmp, settings, truth, in_process=True, csv_gzip=False,
                            log=lambda text: None)
        journal = read_journal(Path(tmp) / "journal")
    verdicts = journal[journal["kind"] == VERDICT]
    last_week = IsoWeek.of(season.shop.season_week(settings.weeks - 1))
    first = season.shop.season_week(0)
    tolerance = contact_tolerance(settings)
    tests = []
    for eid, plan in season.plans.items():
        review_week = IsoWeek.of(dt.date.fromisoformat(plan["review_date"]))
        mine = verdicts[verdicts["experiment_id"] == eid]
        decisions = [(IsoWeek.parse(w), str(d)) for w, d in zip(mine["week"], mine["decision"])]
        decided = [(w, d) for w, d in decisions if not Decision(d).undecided]
        final = decided[0] if decided else None
        saving = true_saving_per_week(season.shop, plan["lever"], plan["cohort"], first, settings.weeks)
        contact_rise = true_contact_rise(season.shop, plan["lever"], plan["cohort"], first, settings.weeks)
        claimed = claimed_low = claimed_high = None
        if final and final[1] == Decision.KEEP:
            row = mine[(mine["decision"] == Decision.KEEP)].iloc[0]
            claimed, claimed_low, claimed_high = (_number(row.get(c)) for c in MONEY_COLUMNS)
        tests.append({
            "experiment_id": eid, "lever": plan["lever"], "cohort": plan["cohort"],
            "nature": truly(truth, plan["lever"], plan["cohort"], saving, contact_rise, tolerance),
            "true_contact_rise": contact_rise,
            "stated_power": plan.get("power_at_review"), "review_week": str(review_week),
            "review_in_season": review_week <= last_week,
            "decision": final[1] if final else None, "decided_week": str(final[0]) if final else None,
            "by_review": bool(final and final[0] <= review_week), "looks": len(decisions),
            "claimed_per_week": claimed, "claimed_ci": [claimed_low, claimed_high], "true_per_week": saving,
        })
    return {"season": i, "seed": settings.seed, "units_per_week": settings.units_per_week,
            "seconds": round(time.monotonic() - started, 1), "tests": tests,
            "weak_named": [{"week": w["week"], "real": w["real"]} for w in season.weak_named],
            "truth_spikes": [f"{s.category} x {s.reason}" for s in truth.spikes]}


def _number(value: Any) -> float | None:
    """A journal cell as a number (None when empty or not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _share(hits: int, n: int) -> dict[str, Any]:
    """A share with its binomial standard error and its exact (Clopper-Pearson) 95 % interval, which still says
    something when few replications give a share of 0 or 1 (standard error 0)."""
    p = hits / n if n else None
    low = float(beta.ppf(0.025, hits, n - hits + 1)) if n and hits else 0.0
    high = float(beta.ppf(0.975, hits + 1, n - hits)) if n and hits < n else 1.0
    return {"share": p, "n": n, "hits": hits, "se": math.sqrt(p * (1 - p) / n) if n else None,
            "ci95": [low, high] if n else None}


def summarise(seasons: list[dict[str, Any]]) -> dict[str, Any]:
    """The calibration's numbers over ``seasons`` (each a line of ``one_season``)."""
    tests = [t for s in seasons for t in s["tests"] if t["review_in_season"]]
    works = [t for t in tests if t["nature"] == "works"]
    null = [t for t in tests if t["nature"] in ("does nothing", "only delays")]
    harmful = [t for t in tests if t["nature"] == "harmful"]
    powers = [t["stated_power"] for t in works if t["stated_power"] is not None]
    weak = [w for s in seasons for w in s["weak_named"]]
    kept = [t for t in tests if t["decision"] == Decision.KEEP]
    per_season = [(sum(t["claimed_per_week"] or 0 for t in s["tests"] if t["decision"] == Decision.KEEP),
                   sum(t["true_per_week"] for t in s["tests"] if t["decision"] == Decision.KEEP)) for s in seasons]
    diffs = np.array([c - r for c, r in per_season])
    # the track record's promise: each kept lever's money interval holds what it truly saves (95 % nominal)
    with_interval = [t for t in kept if None not in (t.get("claimed_ci") or [None])]
    covered = sum(t["claimed_ci"][0] <= t["true_per_week"] <= t["claimed_ci"][1] for t in with_interval)
    claimed, really = sum(c for c, _ in per_season), sum(r for _, r in per_season)
    return {
        "seasons": len(seasons), "tests_read_by_review": len(tests),
        "seconds_per_season": float(np.mean([s["seconds"] for s in seasons])) if seasons else None,
        "working_kept_by_review": _share(sum(t["decision"] == Decision.KEEP and t["by_review"] for t in works),
                                         len(works)),
        "working_mean_stated_power": float(np.mean(powers)) if powers else None,
        "null_kept": _share(sum(t["decision"] == Decision.KEEP for t in null), len(null)),
        "harmful_stopped": _share(sum(t["decision"] == Decision.STOP for t in harmful), len(harmful)),
        "harmful_kept": _share(sum(t["decision"] == Decision.KEEP for t in harmful), len(harmful)),
        "weak_named_not_real": _share(sum(not w["real"] for w in weak), len(weak)),
        "kept": len(kept),
        "money_claimed_per_week": claimed, "money_truly_saved_per_week": really,
        "money_interval_covers_truth": _share(covered, len(with_interval)),
        "money_claimed_minus_saved_per_season": {
            "mean": float(diffs.mean()) if diffs.size else None,
            "se": float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else None,
            "n": int(diffs.size)},
    }


def _percent(share: dict[str, Any]) -> str:
    if not share["n"]:
        return "no test"
    low, high = share["ci95"]
    return (f"{share['share']:.1%} ({share['hits']}/{share['n']}, SE {share['se']:.1%}, "
            f"exact 95 % {low:.1%}-{high:.1%})")


def markdown(summary: dict[str, Any]) -> str:
    """The calibration's numbers as the table docs/statistics.md carries (copied from here, never typed)."""
    s = summary
    money = s["money_claimed_minus_saved_per_season"]
    gap = (f"{money['mean']:+,.0f} a week per season (SE {money['se']:,.0f}, {money['n']} seasons)"
           if money["se"] is not None else "too few seasons")
    power = s["working_mean_stated_power"]
    rows = [
        ("working levers kept by their review date", _percent(s["working_kept_by_review"]),
         f"the plans' stated power, {power:.1%} on average" if power is not None else "no plan stated a power"),
        ("null levers kept (no effect, or only a delay)", _percent(s["null_kept"]), "at most 2.5 %"),
        ("harmful levers stopped", _percent(s["harmful_stopped"]), "most"),
        ("harmful levers kept", _percent(s["harmful_kept"]), "none"),
        ("weak cohorts named that were not a real spike", _percent(s["weak_named_not_real"]), "few"),
        ("kept levers whose money interval holds the true saving", _percent(s["money_interval_covers_truth"]),
         "95 %"),
        ("money claimed minus truly saved", gap, "about 0"),
    ]
    head = (f"{s['seasons']} seasons, {s['tests_read_by_review']} tests read by their review date, "
            f"{s['seconds_per_season']:.0f} s a season\n\n| measure | measured | promise |\n|---|---|---|\n")
    return head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows) + "\n"


def read_lines(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The seasons of one or more JSON-lines files (a season seen twice, by its index, counts once)."""
    seasons: dict[int, dict[str, Any]] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                season = json.loads(line)
                seasons[int(season["season"])] = season
    return [seasons[i] for i in sorted(seasons)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbook.sim.calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--seasons", type=int, default=200, help="seasons to live (default: 200)")
    parser.add_argument("--first", type=int, default=0, help="index of the first season (to continue a run)")
    parser.add_argument("--weeks", type=int, default=12, help="weeks per season (default: 12)")
    parser.add_argument("--out", default="calibration.jsonl", help="JSON lines, one per season (appended)")
    parser.add_argument("--report", nargs="+", metavar="JSONL",
                        help="live nothing: print the summary of these files' seasons and its table for the docs")
    args = parser.parse_args(argv)
    if args.report:
        missing = [p for p in args.report if not Path(p).is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)}")
        summary = summarise(read_lines(args.report))
        print(json.dumps(summary, indent=2))
        print(markdown(summary))
        return 0
    out = Path(args.out)
    for i in range(args.first, args.first + args.seasons):
        line = one_season(i, weeks=args.weeks)
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")
        print(f"season {i}: {line['units_per_week']:.0f} units a week, {len(line['tests'])} tests, "
              f"{line['seconds']:.0f} s", flush=True)
    seasons = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]
    print(json.dumps(summarise(seasons), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
