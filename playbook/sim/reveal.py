"""The reveal: a season's decision journal beside its truth, ``<out>/index.html`` (one offline page, every data text
escaped by the template engine's autoescaping).

For each verdict in the journal: the test in words (lever on cohort), the week and look, the decision, what was
really true (the truth table's effects of that lever on that cohort, and what rolling it out really saves), right
or wrong, and the weeks from the start to a decision. Then the money the kept levers really save per week beside
what the track record claimed, the levers that worked but were never kept, and the weak cohorts step 2 named that
were not real. ``judge`` is the rule for right and wrong, shared with the calibration (``sim.calibration``).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from playbook.config.loader import load_config
from playbook.core.atomic import write_text
from playbook.core.paths import DEFAULT_CONFIG, resolve
from playbook.core.vocabulary import Decision, Design
from playbook.core.weeks import IsoWeek
from playbook.data.contract import parse_cohort
from playbook.journal.entry import VERDICT
from playbook.journal.store import read_journal
from playbook.metrics.display import cohort_words, plain
from playbook.report.pages import TEMPLATES
from playbook.sim.season import SEASON_FILE, Season, SeasonSettings, make_shop, true_effects
from playbook.sim.shop import SeasonShop, true_contact_rise, true_saving_per_week
from playbook.sim.truth import Truth, truth_from_dict

TEMPLATE = "season.html.j2"


def lever_words(lever: str) -> str:
    return plain(lever)


def test_words(lever: str, cohort: str) -> str:
    return f"{lever_words(lever)} on {cohort_words(cohort)}"


@dataclass(frozen=True)
class Judged:
    """What a verdict was, given the truth: ``right`` True/False, None when it decided nothing yet."""

    truly: str  # works | harmful | does nothing | only delays
    right: bool | None
    words: str


def contact_tolerance(settings: SeasonSettings) -> float:
    """The tolerance of the season configuration's randomized contact-rate guardrail (infinite without one)."""
    config = load_config(resolve(settings.config or None, DEFAULT_CONFIG))
    return next((float(g.tolerance) for g in config.experiments.guardrails[Design.RANDOMIZED]
                 if g.metric == "contact_rate" and g.tolerance is not None), math.inf)


def truly(truth: Truth, lever: str, cohort: str, saving: float, contact_rise: float,
          contact_tolerance: float) -> str:
    """The lever's true nature on the cohort, by the method's own definitions: harmful when it raises the cohort's
    contact rate beyond the guardrail's tolerance (``contact_rise``, ``sim.shop.true_contact_rise``) or adds
    returns and saves nothing; works when it really saves money; only delays; or does nothing. A rise of
    contacts within the tolerance is what the plan accepts (a guardrail is a non-inferiority margin), so it does
    not make a lever harmful."""
    effects = true_effects(truth, lever, cohort)
    if contact_rise > contact_tolerance or (saving < 0 and any(e["kind"] == "harms" for e in effects)):
        return "harmful"
    if saving > 0 and any(e["kind"] == "works" for e in effects):
        return "works"
    if any(e["kind"] == "delays" for e in effects):
        return "only delays"
    return "does nothing"


def judge(decision: str, nature: str) -> Judged:
    """Right or wrong: keeping a lever that works is right, keeping any other is wrong; stopping or adjusting one
    that works is wrong (a saving given up), stopping any other is right; continue and provisional decide nothing."""
    d = Decision(decision)
    if d.undecided:
        return Judged(nature, None, "not decided yet")
    if d == Decision.KEEP:
        return Judged(nature, nature == "works", "right: kept a lever that works" if nature == "works"
                      else f"wrong: kept a lever that {'is harmful' if nature == 'harmful' else nature}")
    if nature == "works":
        return Judged(nature, False, f"wrong: {d.value} on a lever that works")
    return Judged(nature, True, f"right: {d.value} on a lever that {'is harmful' if nature == 'harmful' else nature}")


def _weeks_between(a: str, b: str) -> int:
    wa, wb = IsoWeek.parse(a), IsoWeek.parse(b)
    return int((wb.monday - wa.monday).days // 7)


def season_facts(out: Path, shop: SeasonShop | None = None) -> dict[str, Any]:
    """Everything the reveal shows, as plain data (also what the tests and the calibration read)."""
    data = json.loads((out / SEASON_FILE).read_text(encoding="utf-8"))
    settings = SeasonSettings.of(data["settings"])
    truth = truth_from_dict(data["truth"])
    shop = shop or make_shop(settings, truth)
    plans: dict[str, dict[str, Any]] = data["plans"]
    table = out / "data" / "experiments.csv"
    if table.is_file():  # the looks each plan counts on, as the season's experiments table has them
        looks = {r["experiment_id"]: r.get("planned_looks") or "1"
                 for r in csv.DictReader(table.read_text(encoding="utf-8").splitlines())}
        plans = {eid: {**p, "planned_looks": p.get("planned_looks") or looks.get(eid, "1")} for eid, p in plans.items()}
    first = shop.season_week(0)
    savings: dict[tuple[str, str], float] = {}
    tolerance = contact_tolerance(settings)

    def saving(lever: str, cohort: str) -> float:
        key = (lever, cohort)
        if key not in savings:
            savings[key] = true_saving_per_week(shop, lever, cohort, first, settings.weeks)
        return savings[key]

    def nature(lever: str, cohort: str) -> str:
        return truly(truth, lever, cohort, saving(lever, cohort),
                     true_contact_rise(shop, lever, cohort, first, settings.weeks), tolerance)

    journal = read_journal(out / "journal")
    verdicts = journal[journal["kind"] == VERDICT].to_dict("records")
    decisions, kept = [], []
    decided_at: dict[str, str] = {}
    for v in verdicts:
        eid = str(v["experiment_id"])
        lever, cohort = str(v["lever"]), str(v["cohort"])
        plan = plans.get(eid, {})
        s = saving(lever, cohort)
        j = judge(str(v["decision"]), nature(lever, cohort))
        start_week = str(IsoWeek.of(dt.date.fromisoformat(plan["start_date"]))) if plan.get("start_date") else None
        weeks_to = None
        if j.right is not None and eid not in decided_at and start_week:
            decided_at[eid] = str(v["week"])
            weeks_to = _weeks_between(start_week, str(v["week"]))
        claimed = _number(v.get("money_per_week"))
        row = {"week": str(v["week"]), "experiment_id": eid, "test": test_words(lever, cohort),
               "look": _int(v.get("look")), "decision": str(v["decision"]),
               "truth": "; ".join(e["words"] + f" ({e['reason'].replace('_', ' ')} returns of {e['category']})"
                                  for e in true_effects(truth, lever, cohort)) or "does nothing",
               "nature": j.truly, "right": j.right, "verdict_words": j.words, "weeks_to_decision": weeks_to,
               "claimed_per_week": claimed, "true_per_week": s}
        decisions.append(row)
        if str(v["decision"]) == Decision.KEEP:
            kept.append(row)
    kept_keys = {(r["test"]) for r in kept}
    never_kept = []
    for e in truth.entries:
        if e.effect.kind != "works" or e.effect.share <= 0:
            continue
        cohort = f"category={e.category}"
        if test_words(e.lever, cohort) in kept_keys:
            continue
        tested = any(p.get("lever") == e.lever and parse_cohort(p.get("cohort", "")).get("category") == e.category
                     for p in plans.values())
        never_kept.append({"test": test_words(e.lever, cohort), "reason": e.reason.replace("_", " "),
                           "words": e.effect.words(), "tested": tested,
                           "true_per_week": saving(e.lever, cohort)})
    never_kept.sort(key=lambda r: -r["true_per_week"])
    weak = {}
    for w in data.get("weak_named", []):
        key = (w.get("category"), w.get("reason_code"))
        name = " x ".join(str(x) for x in (w.get("category") or w.get("channel") or w.get("region") or "?",
                                            str(w.get("reason_code", "")).replace("_", " ")))
        weak.setdefault(key, {"cohort": name, "weeks": [], "real": bool(w.get("real"))})["weeks"].append(w["week"])
    decided = [d for d in decisions if d["right"] is not None]
    return {
        "settings": settings, "truth": truth, "weeks": data["weeks"],
        # the team's log in words, its paths inside the season's folder relative to it
        "actions": [{**a, "text": a["text"].replace(f"{out.resolve()}{os.sep}", "")} for a in data["actions"]],
        "decisions": decisions, "kept": kept, "never_kept": never_kept, "weak": list(weak.values()),
        "n_right": sum(1 for d in decided if d["right"]), "n_wrong": sum(1 for d in decided if not d["right"]),
        "n_open": len(decisions) - len(decided),
        "claimed": sum(r["claimed_per_week"] or 0.0 for r in kept),
        "truly_saved": sum(r["true_per_week"] for r in kept),
        "plans": plans,
    }


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _int(value: Any) -> int | None:
    v = _number(value)
    return None if v is None else int(v)


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def reveal_page(facts: dict[str, Any], currency: str = "EUR", reports_link: bool = True) -> str:
    """The page; ``reports_link=False`` for a copy outside the season's folder (its reports are not beside it)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = _money
    env.filters["words"] = lambda s: str(s).replace("_", " ")
    return env.get_template(TEMPLATE).render(**facts, currency=currency, test_words=test_words,
                                             reports_link=reports_link)


def write_reveal(out: str | Path, season: Season | None = None, currency: str = "EUR", target: Path | None = None
                 ) -> Path:
    """``<out>/index.html`` (or ``target``, a copy without the link to the reports) from ``<out>/season.json``, the
    season's journal and its shop."""
    out = Path(out)
    facts = season_facts(out, season.shop if season is not None else None)
    return write_text(target or out / "index.html", reveal_page(facts, currency, reports_link=target is None))
