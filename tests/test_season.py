"""A season of the loop (issue 20): the truth table, the season's shop, the team's actions, and seasons end to end.

* unit tests (no notebooks, a second or two): the truth table and its YAML form, the shop's weeks (one shop: an
  export holds the earlier exports; a lever changes only the units it treats), the team's actions, right and
  wrong;
* ``test_a_season_in_process_reads_its_plan_at_its_looks``: six weeks with the steps' ``analyse`` in the notebooks'
  order (the calibration's engine): the plan of week 1 is started, read at its numbered looks and decided by its
  review date or continued, and the team acts on the verdict;
* ``test_four_weeks_of_the_weekly_habit``: four weeks of the real weekly run (notebooks, report, journal): the plan
  becomes an experiment whose row validates, the past-weeks list and the track record grow, and the reveal names
  each plan and decision with the truth. With the 14-day return window a plan's first read comes three weeks after
  its start, so a plan of week 1 is not read within four weeks: the reading at looks is proven in process above and
  through the notebooks by the slow ``test_six_weeks_of_notebooks_read_the_plan``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from playbook.core.weeks import IsoWeek
from playbook.data.dataset import open_dataset
from playbook.dev import sample_data as sd
from playbook.journal.store import read_journal
from playbook.sim import team
from playbook.sim.cli import build_parser
from playbook.sim.reveal import judge, season_facts, truly, write_reveal
from playbook.sim.season import SeasonSettings, run_season
from playbook.sim.shop import Intervention, SeasonShop, true_contact_rise, true_saving_per_week, write_tables
from playbook.sim.truth import (
    Effect,
    Spike,
    Truth,
    TruthEntry,
    TruthError,
    default_truth,
    dump_truth,
    load_truth,
    random_truth,
)

START = dt.date(2026, 5, 25)
#: a weak cohort strong enough that step 3's plan is ready on a small shop in the season's first week
STRONG = dataclasses.replace(default_truth(), spikes=(Spike("knitwear", "size_too_small", 6.0, 10),))


# --- the truth table --------------------------------------------------------------------------------------------

def test_the_truth_table_reads_back_from_its_yaml(tmp_path):
    truth = default_truth()
    path = tmp_path / "truth.yaml"
    path.write_text(dump_truth(truth), encoding="utf-8")
    again = load_truth(path)
    assert again == truth
    assert again.effect("knitwear", "size_too_small", "fit_size_message") == Effect("works", 0.45)
    assert again.effect("tops", "quality", "fit_size_message").kind == "nothing"  # no entry: does nothing
    assert again.is_spike("knitwear", "size_too_small") and not again.is_spike("tops", "size_too_small")


@pytest.mark.parametrize("entry, says", [
    ({"category": "hats", "reason": "quality", "lever": "x", "kind": "works", "share": 0.2}, "unknown category"),
    ({"category": "shoes", "reason": "too_big", "lever": "x", "kind": "works", "share": 0.2}, "unknown reason"),
    ({"category": "shoes", "reason": "quality", "lever": "x", "kind": "magic"}, "effect kind"),
    ({"category": "shoes", "reason": "quality", "lever": "x", "kind": "works", "share": 1.5}, "share"),
    ({"category": "shoes", "reason": "quality", "lever": "x", "kind": "delays", "lag": 0.5}, "lag"),
])
def test_a_truth_table_that_does_not_read_names_its_entry(tmp_path, entry, says):
    path = tmp_path / "truth.yaml"
    path.write_text(dump_truth(Truth("t")).replace("entries: []", f"entries: [{json.dumps(entry)}]"), encoding="utf-8")
    with pytest.raises(TruthError, match=says):
        load_truth(path)


def test_a_random_truth_table_is_seeded_and_has_every_kind():
    a, b = random_truth(3), random_truth(3)
    assert a == b and a != random_truth(4)
    kinds = {e.effect.kind for s in range(5) for e in random_truth(s).entries}
    assert kinds == {"works", "nothing", "delays", "contacts", "harms"}
    assert all(1 <= len(random_truth(s).spikes) <= 2 for s in range(20))


# --- the season's shop -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shop():
    return SeasonShop(7, START, 12, 3, 2000, STRONG)


def _sunday(shop: SeasonShop, i: int) -> dt.date:
    return shop.season_week(i) + dt.timedelta(days=6)


def test_an_export_holds_the_earlier_exports_and_nothing_after_its_sunday(shop):
    w1, w2 = shop.tables(_sunday(shop, 0)), shop.tables(_sunday(shop, 1))
    cut = pd.Timestamp(_sunday(shop, 0)) + pd.Timedelta(hours=23, minutes=59, seconds=59)
    assert w1["orders"].order_ts.max() <= cut and w1["orders"].delivered_ts.max() <= cut
    assert w1["returns"].requested_ts.max() <= cut and w1["contacts"].contact_ts.max() <= cut
    for name, key, ts in (("orders", "order_id", "order_ts"), ("returns", "return_id", "requested_ts"),
                          ("contacts", "contact_id", "contact_ts")):
        later = w2[name][w2[name][ts] <= cut].set_index(key).sort_index()
        earlier = w1[name].set_index(key).sort_index()
        cols = [c for c in earlier.columns if c != "delivered_ts"]
        pd.testing.assert_frame_equal(later[cols], earlier[cols])
    assert len(w2["orders"]) > len(w1["orders"])


def test_a_lever_changes_only_the_units_it_treats(shop):
    start = shop.season_week(0)
    iv = Intervention("fit_size_message", "category=knitwear", start, None, "EXP-T")
    base, _, _ = shop.outcomes([])
    after, lag, _ = shop.outcomes([iv])
    treated = shop.treated(iv)
    assert treated.any() and (base[~treated] == after[~treated]).all()
    size_small = sd.R_IDX["size_too_small"]
    cut = (base == size_small) & treated
    prevented = (after[cut] == len(sd.STACK)).mean()
    assert 0.35 < prevented < 0.55  # the truth: 45 % of these returns never happen
    assert (lag[treated & (base == sd.R_IDX["size_too_large"])] == 1.6).all()  # only delayed
    # the arm is 50/50 and the control arm is never treated
    arm = shop.arm("EXP-T")
    assert abs(arm.mean() - 0.5) < 0.03
    assert not treated[arm[shop.o_cust[shop.l_order]] == 0].any()


def test_the_assignments_are_drawn_50_50_from_the_cohorts_customers_and_validate(shop, tmp_path):
    start = shop.season_week(1)
    exp = pd.DataFrame([{"experiment_id": "EXP-T", "lever": "fit_size_message", "cohort": "category=knitwear",
                         "design": "randomized", "control_cohort": "", "primary_metric": "return_rate_14d",
                         "expected_low": -0.05, "expected_high": -0.02, "start_date": start,
                         "review_date": start + dt.timedelta(weeks=3)}])
    exp["start_date"] = pd.to_datetime(exp["start_date"]).astype("datetime64[s]")
    exp["review_date"] = pd.to_datetime(exp["review_date"]).astype("datetime64[s]")
    iv = Intervention("fit_size_message", "category=knitwear", start, None, "EXP-T")
    tables = shop.tables(_sunday(shop, 2), [iv], exp)
    a = tables["assignments"]
    assert set(a.variant) == {"treatment", "control"} and abs((a.variant == "treatment").mean() - 0.5) < 0.06
    assert a.assigned_ts.min() >= pd.Timestamp(start)
    write_tables(tables, tmp_path, skip=())
    dataset = open_dataset(str(tmp_path))  # the contract's rules, cross-table ones included
    dataset.close()


def test_a_kept_lever_really_saves_and_a_delay_saves_nothing(shop):
    first = shop.season_week(0)
    assert true_saving_per_week(shop, "fit_size_message", "category=knitwear", first, 3) > 0
    assert true_saving_per_week(shop, "promise_recalculation", "category=outerwear", first, 3) == 0
    assert true_saving_per_week(shop, "supplier_review", "category=knitwear", first, 3) < 0  # harms


def test_a_levers_contact_rise_is_the_contacts_its_exports_gain_per_order_of_the_cohort(shop):
    """Sturdier packaging raises knitwear's contacts by 5 % of its orders (default truth): counted on two exports
    taken after every contact of the first week's orders, with and without the lever on that week."""
    first = shop.season_week(0)
    lever = Intervention("packaging_upgrade", "category=knitwear", first, first + dt.timedelta(weeks=1))
    late = _sunday(shop, 2)
    with_lever, without = shop.tables(late, [lever]), shop.tables(late)
    lines = with_lever["order_lines"]
    week1 = with_lever["orders"].order_ts.between(pd.Timestamp(first), pd.Timestamp(first) + pd.Timedelta(days=7))
    orders = set(lines.order_id[lines.category == "knitwear"]) & set(with_lever["orders"].order_id[week1])
    gained = (with_lever["contacts"].order_id.isin(orders).sum() - without["contacts"].order_id.isin(orders).sum())
    rise = true_contact_rise(shop, "packaging_upgrade", "category=knitwear", first, 1)
    assert rise == pytest.approx(gained / len(orders))
    assert 0.03 < rise < 0.05  # 5 % of the orders that had no other contact


@pytest.mark.parametrize("rise, nature", [(0.004, "works"), (0.012, "harmful")])
def test_a_contact_rise_makes_a_lever_harmful_only_beyond_the_guardrails_tolerance(rise, nature):
    """The plan accepts a guardrail's move within its tolerance (+1 point of contacts): such a lever that saves
    money works; beyond it, it is harmful whatever it saves."""
    truth = Truth("t", (TruthEntry("shoes", "size_too_small", "fit_size_message", Effect("works", 0.3)),
                        TruthEntry("shoes", "size_too_large", "fit_size_message", Effect("contacts", 0.02))))
    assert truly(truth, "fit_size_message", "category=shoes", 1200.0, rise, 0.01) == nature


# --- the team --------------------------------------------------------------------------------------------------

def test_the_team_rolls_out_a_keep_rolls_back_a_stop_and_lets_a_continue_run():
    sunday = dt.date(2026, 10, 11)
    ivs = team.on_start([], "EXP-A", "fit_size_message", "category=knitwear", dt.date(2026, 9, 21), "randomized")
    ivs = team.on_start(ivs, "EXP-B", "clearer_description", "category=dresses", dt.date(2026, 9, 21), "randomized")
    same, what = team.on_verdict(ivs, "EXP-A", "continue", sunday)
    assert same == ivs and what == "continue"
    kept, what = team.on_verdict(ivs, "EXP-A", "keep", sunday)
    assert what == "keep"
    assert Intervention("fit_size_message", "category=knitwear", dt.date(2026, 9, 21), dt.date(2026, 10, 12),
                        "EXP-A") in kept
    assert Intervention("fit_size_message", "category=knitwear", dt.date(2026, 10, 12)) in kept  # everyone
    stopped, what = team.on_verdict(kept, "EXP-B", "stop", sunday)
    assert what == "roll back" and not any(iv.on(dt.date(2026, 10, 12)) for iv in stopped if iv.experiment_id == "EXP-B")
    closed = team.on_close(ivs, "EXP-B", sunday)
    assert [iv.end for iv in closed if iv.experiment_id == "EXP-B"] == [dt.date(2026, 10, 12)]
    pre_post = team.on_start([], "EXP-C", "x", "category=tops", dt.date(2026, 9, 21), "pre_post")
    assert pre_post[0].whole_cohort


def test_the_team_forgets_only_a_review_never_read():
    assert team.forgets(0.01, 0.15, ["EXP-A"], set())
    assert not team.forgets(0.01, 0.15, ["EXP-A"], {"EXP-A"})  # read before: it is read again, not overdue
    assert not team.forgets(0.5, 0.15, ["EXP-A"], set())
    assert not team.forgets(0.01, 0.15, [], set())


@pytest.mark.parametrize("decision, nature, right", [
    ("keep", "works", True), ("keep", "does nothing", False), ("keep", "harmful", False),
    ("stop", "works", False), ("adjust", "does nothing", True), ("stop", "harmful", True),
    ("continue", "works", None), ("provisional", "does nothing", None),
])
def test_right_and_wrong(decision, nature, right):
    assert judge(decision, nature).right is right


def test_playbook_season_is_a_command_with_every_run_command():
    args = build_parser().parse_args(["season", "--weeks", "3", "--seed", "5", "--out", "x"])
    assert (args.command, args.weeks, args.seed, args.out) == ("season", 3, 5, "x")
    assert build_parser().parse_args(["weekly", "--week", "2026-W47"]).command == "weekly"


# --- seasons end to end ----------------------------------------------------------------------------------------

def _verdicts(out):
    j = read_journal(out / "journal")
    return j[j["kind"] == "verdict"]


def test_a_season_in_process_reads_its_plan_at_its_looks(tmp_path):
    out = tmp_path / "season"
    season = run_season(out, SeasonSettings(weeks=6, units_per_week=2800, forget_share=0.0), STRONG,
                        in_process=True, log=lambda text: None)
    write_reveal(out, season)
    (eid, plan), *_ = season.plans.items()
    assert plan["week"] == "2026-W38" and plan["cohort"] == "category=knitwear"
    experiments = pd.read_csv(out / "data" / "experiments.csv")
    assert eid in set(experiments.experiment_id)
    v = _verdicts(out)
    mine = v[v.experiment_id == eid].sort_values("week")
    review_week = str(IsoWeek.of(dt.date.fromisoformat(plan["review_date"])))
    assert len(mine) >= 1 and list(mine.look.astype(int)) == list(range(1, len(mine) + 1))  # looks numbered
    assert (mine.week <= review_week).all()
    last = mine.iloc[-1]
    assert last.decision in ("keep", "adjust", "stop") or last.week < review_week or last.decision in (
        "continue", "provisional")
    # the team acted on it: a keep is rolled out to the whole cohort, a stop or adjust rolled back
    did = {a.what for a in season.actions if a.experiment_id == eid}
    assert "start" in did and ({"keep", "roll back", "continue"} & did)
    if last.decision == "keep":
        assert any(iv.rolled_out and iv.lever == plan["lever"] for iv in season.interventions)
    facts = season_facts(out)
    judged = [d for d in facts["decisions"] if d["experiment_id"] == eid]
    assert judged and all(d["test"] == "fit size message on knitwear" for d in judged)
    assert "prevents 45% of these returns" in judged[0]["truth"]
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "fit size message on knitwear" in html and "what was really true" in html
    if facts["kept"]:  # the headline's money: what the track record claimed, what the kept levers really save
        assert f"really save EUR {facts['truly_saved']:,.0f} a week" in html and facts["truly_saved"] > 0
    truth_files = sorted(p.name for p in (out / "truth").glob("*.json"))
    assert truth_files == [f"2026-W{w}.json" for w in range(38, 44)]


def test_four_weeks_of_the_weekly_habit(tmp_path):
    """Four weeks of the real weekly run on a small shop (about a minute a week here)."""
    out = tmp_path / "season"
    truth = tmp_path / "truth.yaml"
    truth.write_text(dump_truth(STRONG), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "playbook.sim.cli", "season", "--weeks", "4", "--units", "2000",
                           "--seed", "11", "--truth", str(truth), "--out", str(out), "--forget", "0"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    weeks = [f"2026-W{w}" for w in range(38, 42)]
    # every week rendered as in production, in the past-weeks list, each with its track record
    listing = (out / "reports" / "index.html").read_text(encoding="utf-8")
    for week in weeks:
        assert (out / "reports" / week / "index.html").is_file() and f'href="{week}/index.html"' in listing
        summary = json.loads((out / "reports" / week / "summary.json").read_text(encoding="utf-8"))
        assert "track_record" in summary and summary["week"] == week
        assert not (out / "reports" / week / "truth").exists()
    # the plan of week 1 became an experiment: its row in the season's table, which validates with its assignments
    season = json.loads((out / "season.json").read_text(encoding="utf-8"))
    (eid, plan), *_ = season["plans"].items()
    assert plan["week"] == weeks[0]
    assert eid in set(pd.read_csv(out / "data" / "experiments.csv").experiment_id)
    check = subprocess.run([sys.executable, "-m", "playbook.sim.cli", "validate", str(out / "data")],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    assignments = pd.read_csv(out / "data" / "assignments.csv.gz")
    assert set(assignments[assignments.experiment_id == eid].variant) == {"treatment", "control"}
    journal = read_journal(out / "journal")
    assert eid in set(journal[journal.kind == "plan"].experiment_id)
    # the week's truth beside the reports: the lever under test and its true effect
    state = json.loads((out / "truth" / f"{weeks[1]}.json").read_text(encoding="utf-8"))
    (lever,) = [x for x in state["levers"] if x["experiment_id"] == eid]
    assert lever["state"] == "under test on its treatment arm" and lever["true_effects"][0]["kind"] == "works"
    # the reveal names the test in words, with its truth
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "fit size message on knitwear" in html and eid in html
    assert "<script" not in html and "http" not in html.replace('href="reports/index.html"', "")


@pytest.mark.slow
def test_six_weeks_of_notebooks_read_the_plan(tmp_path):
    """Six weeks of the real weekly run: the plan of week 1 is read at its looks (weeks 5 and 6), each look numbered in
    the journal, and the reveal names each decision with what was really true."""
    out = tmp_path / "season"
    season = run_season(out, SeasonSettings(weeks=6, units_per_week=2800, forget_share=0.0), STRONG,
                        log=lambda text: None)
    write_reveal(out, season)
    (eid, plan), *_ = season.plans.items()
    v = _verdicts(out)
    mine = v[v.experiment_id == eid].sort_values("week")
    assert len(mine) >= 1 and list(mine.look.astype(int)) == list(range(1, len(mine) + 1))
    html = (out / "index.html").read_text(encoding="utf-8")
    for d in season_facts(out)["decisions"]:
        assert d["test"] in html and d["verdict_words"] in html
    # the track record grows: the last week counts the reads the first could not
    first, last = (json.loads((out / "reports" / w / "summary.json").read_text(encoding="utf-8"))["track_record"]
                   for w in ("2026-W38", "2026-W43"))
    assert first["n_reviewed"] == 0 and last["n_reviewed"] >= 1


def test_the_season_shop_uses_the_sample_generators_numbers():
    """One generator of shops: the season's return propensities and lags are the sample's own."""
    shop = SeasonShop(1, START, 2, 1, 2000, Truth("none"))
    assert np.allclose(shop.rates[~shop.late[shop.l_order]], sd.RETURN_PCT[shop.l_cat[~shop.late[shop.l_order]]])


def test_the_team_starts_a_ready_plan_and_closes_a_test_shown_overdue(tmp_path):
    """The team's hand-off, without notebooks: a ready plan is added with `playbook experiments add` (its lever on the
    treatment arm from its start), and a test the run lists as overdue is closed with `playbook experiments close`
    (its lever rolled back)."""
    from playbook.config.loader import load_config
    from playbook.sim.season import Season, WeekOutcome, _act, make_shop

    settings = SeasonSettings(weeks=2, units_per_week=2000, history_weeks=2)
    season = Season(tmp_path, settings, STRONG, make_shop(settings, STRONG))
    season.data.mkdir(parents=True)
    season.journal.mkdir()
    plan = tmp_path / "experiments_plan.csv"
    plan.write_text("experiment_id,lever,cohort,design,control_cohort,primary_metric,expected_low,expected_high,"
                    "start_date,review_date,planned_looks\nEXP-2026-W24-KNITWEAR,fit_size_message,category=knitwear,"
                    "randomized,,return_rate_14d,-0.06,-0.02,2026-06-15,2026-06-22,1\n", encoding="utf-8")
    cfg = load_config(None)
    _act(season, WeekOutcome("2026-W24", None, plan, {"experiment_id": "EXP-2026-W24-KNITWEAR"}),
         dt.date(2026, 6, 14), cfg, set(), lambda text: None)
    table = pd.read_csv(season.data / "experiments.csv")
    assert list(table.experiment_id) == ["EXP-2026-W24-KNITWEAR"]
    assert season.interventions == [Intervention("fit_size_message", "category=knitwear", dt.date(2026, 6, 15), None,
                                                 "EXP-2026-W24-KNITWEAR")]
    _act(season, WeekOutcome("2026-W26", None, overdue=["EXP-2026-W24-KNITWEAR"]), dt.date(2026, 6, 28), cfg, set(),
         lambda text: None)
    table = pd.read_csv(season.data / "experiments.csv")
    assert table.closed_on.tolist() == ["2026-06-28"] and "overdue" in table.closed_reason[0]
    assert season.interventions[0].end == dt.date(2026, 6, 29)
    assert [a.what for a in season.actions] == ["start", "close overdue"]


def test_every_slice_step_2_names_is_a_cohort_the_shop_can_treat(shop):
    """A plan may name any slice of step 2 (category, channel, region, customer_type, sku): its lines are found."""
    lines = shop.cohort_lines
    assert lines("channel=app").any() and lines("region=north").any()
    first, repeat = lines("customer_type=first_time"), lines("customer_type=repeat")
    assert first.any() and repeat.any() and not (first & repeat).any() and (first | repeat).all()
    assert (lines("category=knitwear;channel=app") == (lines("category=knitwear") & lines("channel=app"))).all()
    assert lines(f"sku={shop.sku[0]}").sum() >= 1 and not lines("customer_type=vip").any()


def test_a_season_never_empties_a_folder_that_is_not_a_seasons(tmp_path):
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "decisions.csv").write_text("week,kind\n", encoding="utf-8")
    from playbook.sim.cli import main

    # refused with exit 2 before anything is written: the folder is left as it was
    assert main(["season", "--weeks", "1", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "journal" / "decisions.csv").read_text(encoding="utf-8") == "week,kind\n"


def test_the_team_does_not_run_a_rolled_back_lever_again_unchanged(tmp_path):
    from playbook.config.loader import load_config
    from playbook.sim.season import Season, WeekOutcome, _act, make_shop

    settings = SeasonSettings(weeks=2, units_per_week=2000, history_weeks=2)
    season = Season(tmp_path, settings, STRONG, make_shop(settings, STRONG))
    season.data.mkdir(parents=True)
    season.journal.mkdir()
    season.plans["EXP-OLD"] = {"lever": "fit_size_message", "cohort": "category=knitwear"}
    season.actions.append(team.Action("2026-W24", "roll back", "EXP-OLD", "adjust EXP-OLD"))
    plan = tmp_path / "experiments_plan.csv"
    plan.write_text("experiment_id,lever,cohort,design,control_cohort,primary_metric,expected_low,expected_high,"
                    "start_date,review_date\nEXP-NEW,fit_size_message,category=knitwear,randomized,,return_rate_14d,"
                    "-0.06,-0.02,2026-06-22,2026-06-29\n", encoding="utf-8")
    _act(season, WeekOutcome("2026-W25", None, plan, {"experiment_id": "EXP-NEW"}), dt.date(2026, 6, 21),
         load_config(None), set(), lambda text: None)
    assert not (season.data / "experiments.csv").exists() and season.interventions == []
    assert season.actions[-1].what == "not started"
