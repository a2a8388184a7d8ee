"""Degenerate inputs real exports carry (issue 13): the run completes and says in words what cannot
be computed, never a traceback, an infinity or a number standing for nothing.

The shops are cut from the seeded sample shop (``playbook.dev.sample_data.generate_shop``): a few
weeks and a few hundred orders, so that each step runs in seconds; the experiments are hand-made
rows of the ``experiments`` table beside a well-formed one, whose read shows that the shop is
readable and the degenerate ones fail for their own reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from playbook.config.loader import load_config
from playbook.core.vocabulary import Decision
from playbook.data.dataset import open_dataset
from playbook.dev import sample_data
from playbook.journal.store import read_journal
from playbook.steps import baseline, cohorts, experiments, review

WEEK = "2026-W47"
COMPLETE = pd.DataFrame({"complete_through": ["2026-11-22 23:59:59"]})


@pytest.fixture(scope="module")
def sample() -> dict[str, pd.DataFrame]:
    return sample_data.generate_shop()


def cut_shop(tables: dict[str, pd.DataFrame], folder: Path, since: str, n_orders: int, *, seed: int = 1,
             **extra: pd.DataFrame) -> Path:
    """The sample shop's orders from ``since`` on, ``n_orders`` of them drawn, with their lines,
    returns and contacts, the sessions, spend and actions of those days, and ``extra`` tables."""
    start = pd.Timestamp(since)
    o = tables["orders"]
    o = o[o.order_ts >= start].sample(n=n_orders, random_state=seed).sort_values("order_ts")
    lines = tables["order_lines"][tables["order_lines"].order_id.isin(o.order_id)]
    out = {
        "orders": o, "order_lines": lines,
        "returns": tables["returns"][tables["returns"].line_id.isin(lines.line_id)],
        "contacts": tables["contacts"][tables["contacts"].order_id.isin(o.order_id)],
        "sessions": tables["sessions"][tables["sessions"].date >= start],
        "marketing_spend": tables["marketing_spend"][tables["marketing_spend"].date >= start],
        "actions": tables["actions"], **extra,
    }
    sample_data.write_shop(out, folder)
    COMPLETE.to_csv(folder / "export.csv", index=False)  # the export says the week is complete
    return folder


def week_snapshot(folder: Path):
    config = load_config(None)
    ds = open_dataset(folder, timezone=config.timezone)
    return ds.as_of(WEEK), config


# --- experiments that cannot be compared -------------------------------------------------------------

def _experiment(row: pd.Series, experiment_id: str, cohort: str) -> pd.Series:
    out = row.copy()
    out["experiment_id"], out["cohort"] = experiment_id, cohort
    out["start_date"], out["review_date"] = pd.Timestamp("2026-10-05"), pd.Timestamp("2026-11-16")
    return out


@pytest.fixture(scope="module")
def degenerate_experiments(sample, tmp_path_factory) -> dict[str, experiments.Comparison]:
    """Ten weeks, 3,000 orders; shoes randomized for every customer (OK), one arm only (ONE-ARM),
    no assignment at all (NO-ASSIGN), a cohort no line belongs to (NO-MATCH)."""
    shoes = sample["experiments"][sample["experiments"].experiment_id == "EXP-2026-W46-SHOES-FIT"].iloc[0]
    outerwear = sample["experiments"][sample["experiments"].experiment_id == "EXP-2026-W46-OUTERWEAR-PROMO"].iloc[0]
    rows = [_experiment(shoes, "EXP-OK", "category=shoes"), _experiment(shoes, "EXP-ONE-ARM", "category=shoes"),
            _experiment(shoes, "EXP-NO-ASSIGN", "category=shoes"),
            _experiment(shoes, "EXP-NO-MATCH", "category=no_such_category"),
            _experiment(outerwear, "EXP-PRE-POST-NO-MATCH", "category=no_such_category")]
    folder = tmp_path_factory.mktemp("experiments") / "shop"
    since = "2026-09-14"
    customers = sorted(set(sample["orders"][sample["orders"].order_ts >= pd.Timestamp(since)].customer_id))
    arms = np.where(np.random.default_rng(7).random(len(customers)) < 0.5, "control", "treatment")
    at = pd.Timestamp("2026-10-04 12:00:00")
    assignments = pd.concat([
        pd.DataFrame({"experiment_id": eid, "customer_id": customers, "variant": variants, "assigned_ts": at})
        for eid, variants in [("EXP-OK", arms), ("EXP-ONE-ARM", "control"), ("EXP-NO-MATCH", arms)]
    ], ignore_index=True)
    cut_shop(sample, folder, since, 3000, experiments=pd.DataFrame(rows), assignments=assignments)
    snap, config = week_snapshot(folder)
    return {c.experiment_id: c for c in experiments.analyse(snap, config).comparisons}


def test_the_well_formed_experiment_of_the_degenerate_shop_is_read(degenerate_experiments):
    ok = degenerate_experiments["EXP-OK"].primary.estimate
    assert ok.ok, ok.error


@pytest.mark.parametrize("experiment_id, words", [
    ("EXP-NO-ASSIGN", "no customer is assigned"),
    ("EXP-ONE-ARM", "the treatment arm has no customer assigned"),
    ("EXP-NO-MATCH", "matches no order line"),
    ("EXP-PRE-POST-NO-MATCH", "matches no order line"),
])
def test_an_experiment_that_cannot_be_compared_says_why_and_is_not_kept(degenerate_experiments, experiment_id, words):
    c = degenerate_experiments[experiment_id]
    est = c.primary.estimate
    assert est.estimate is None and est.ci_low is None and est.ci_high is None
    assert words in est.error, est.error
    assert words in experiments.conclusion([c])
    assert review.verdict_for(c.section()).verdict.decision != Decision.KEEP



# --- a slice with zero sessions --------------------------------------------------------------------

SESSION_METRICS = ("conversion_rate", "revenue_per_visitor")


@pytest.fixture(scope="module")
def no_sessions_this_week(sample, tmp_path_factory):
    """Two weeks, 300 orders; the sessions rows of the requested week all say 0."""
    sessions = sample["sessions"].copy()
    sessions.loc[sessions.date >= pd.Timestamp("2026-11-16"), "sessions"] = 0
    folder = cut_shop({**sample, "sessions": sessions}, tmp_path_factory.mktemp("sessions") / "shop",
                      "2026-11-09", 300)
    snap, config = week_snapshot(folder)
    return baseline.analyse(snap, config)


def test_the_shop_of_the_zero_sessions_test_has_orders_in_its_week(no_sessions_this_week):
    frame = no_sessions_this_week.results.frame
    week = frame[(frame.metric == "conversion_rate") & (frame.slice == "all") & (frame.week == WEEK)]
    assert float(week.numerator.iloc[0]) > 0 and float(week.denominator.iloc[0]) == 0


@pytest.mark.parametrize("metric", SESSION_METRICS)
def test_a_rate_over_zero_sessions_is_not_available_in_words(no_sessions_this_week, metric):
    status = next(s for s in no_sessions_this_week.statuses if s.metric == metric)
    shown = baseline.status_table(no_sessions_this_week.statuses).set_index("metric").loc[status.title]
    assert shown["status"] == "not available" and "no sessions in week 2026-W47" in shown["why"], shown.to_dict()
    assert status.value is None, status.value


def test_no_slice_value_over_zero_sessions_is_infinite(no_sessions_this_week):
    frame = no_sessions_this_week.results.frame
    over_zero = frame[frame.metric.isin(SESSION_METRICS) & (frame.denominator == 0)]
    assert len(over_zero) and over_zero.value.isna().all()



# --- a young shop, an empty week ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def young_shop(sample, tmp_path_factory):
    """Two weeks of history, 300 orders."""
    return week_snapshot(cut_shop(sample, tmp_path_factory.mktemp("young") / "shop", "2026-11-09", 300))


@pytest.fixture(scope="module")
def empty_week(sample, tmp_path_factory):
    """300 orders in 2026-W46, none in the requested 2026-W47 (sessions, contacts and actions go on)."""
    orders = sample["orders"][sample["orders"].order_ts < pd.Timestamp("2026-11-16")]
    return week_snapshot(cut_shop({**sample, "orders": orders}, tmp_path_factory.mktemp("empty") / "shop",
                                  "2026-11-09", 300))


def test_a_young_shop_baseline_says_its_baseline_is_not_full_yet(young_shop):
    step = baseline.analyse(*young_shop)
    assert "Only 1 week(s) of data before 2026-W47: the 8-week baseline is not full yet" in step.conclusion


def test_a_young_shop_names_no_weak_cohort_and_says_why(young_shop):
    step = cohorts.analyse(*young_shop, 4, 8)
    assert step.weak is None
    assert "not enough history yet" in step.conclusion, step.conclusion


def test_a_week_without_orders_is_said_in_the_baseline_conclusion(empty_week):
    step = baseline.analyse(*empty_week)
    assert "Week 2026-W47 has no order in the data" in step.conclusion, step.conclusion
    depth = next(s for s in step.statuses if s.metric == "discount_depth")
    assert depth.value is None and depth.status == "not available"


def test_conversion_in_a_week_with_sessions_and_no_order_is_red_not_green(sample, empty_week):
    sessions = sample["sessions"]
    in_week = int(sessions[(sessions.date >= pd.Timestamp("2026-11-16")) & (sessions.date < pd.Timestamp("2026-11-23"))]
                  .sessions.sum())
    conv = next(s for s in baseline.analyse(*empty_week).statuses if s.metric == "conversion_rate")
    assert (conv.week, conv.value, conv.details["denominator"]) == (WEEK, 0.0, float(in_week))
    assert conv.status == "red" and f"no orders placed over {in_week:,} sessions" in conv.why, conv.why


@pytest.fixture(scope="module")
def empty_week_after_history(sample, tmp_path_factory):
    """Ten weeks of orders (2,000), none in the requested 2026-W47; sessions go on."""
    orders = sample["orders"][sample["orders"].order_ts < pd.Timestamp("2026-11-16")]
    return week_snapshot(cut_shop({**sample, "orders": orders}, tmp_path_factory.mktemp("empty_after") / "shop",
                                  "2026-09-14", 2000))


def test_conversion_in_a_week_with_sessions_and_no_order_is_red_by_its_rule_after_a_full_baseline(
        empty_week_after_history):
    conv = next(s for s in baseline.analyse(*empty_week_after_history).statuses if s.metric == "conversion_rate")
    assert (conv.value, conv.baseline_weeks) == (0.0, 8)
    assert conv.status == "red" and "standard deviations worse than its baseline" in conv.why, conv.why


def test_a_week_with_orders_has_no_empty_week_note(young_shop):
    assert "has no order" not in baseline.analyse(*young_shop).conclusion


# --- the whole weekly run on all of it at once ---------------------------------------------------------

@pytest.fixture(scope="module")
def degenerate_week(sample, tmp_path_factory):
    """One full weekly run (papermill, HTML, journal) of a shop with every case above: two weeks of
    history, 300 orders all in 2026-W46 and none in the requested 2026-W47, swimwear with zero
    sessions, and three experiments due this week: no assignment, one arm, a cohort matching nothing."""
    from playbook.run.weekly import run_week

    base = tmp_path_factory.mktemp("degenerate_week")
    shoes = sample["experiments"][sample["experiments"].experiment_id == "EXP-2026-W46-SHOES-FIT"].iloc[0]
    rows = []
    for eid, cohort in [("EXP-NO-ASSIGN", "category=shoes"), ("EXP-ONE-ARM", "category=shoes"),
                        ("EXP-NO-MATCH", "category=no_such_category")]:
        row = _experiment(shoes, eid, cohort)
        row["start_date"] = pd.Timestamp("2026-11-09")
        rows.append(row)
    orders = sample["orders"][sample["orders"].order_ts < pd.Timestamp("2026-11-16")]
    sessions = sample["sessions"].copy()
    sessions.loc[sessions.category == "swimwear", "sessions"] = 0
    folder = cut_shop({**sample, "orders": orders, "sessions": sessions}, base / "shop", "2026-11-09", 300,
                      experiments=pd.DataFrame(rows))
    customers = sorted(set(pd.read_csv(folder / "orders.csv.gz").customer_id))
    at = pd.Timestamp("2026-11-09 00:00:01")
    arms = np.where(np.arange(len(customers)) % 2, "control", "treatment")
    sample_data.write_shop({"assignments": pd.concat([
        pd.DataFrame({"experiment_id": eid, "customer_id": customers, "variant": variants, "assigned_ts": at})
        for eid, variants in [("EXP-ONE-ARM", "control"), ("EXP-NO-MATCH", arms)]], ignore_index=True)}, folder)
    report = run_week(WEEK, folder, base / "reports", journal=base / "journal", log=lambda _: None)
    return report, read_journal(base / "journal")


def _page(report: Path, name: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", " ", (report / f"{name}.html").read_text(encoding="utf-8")))


@pytest.mark.notebooks
def test_the_weekly_run_of_a_degenerate_week_completes_and_says_what_it_cannot_compute(degenerate_week):
    report, _ = degenerate_week
    assert "Week 2026-W47 has no order in the data" in _page(report, "01_baseline")
    assert "the 8-week baseline is not full yet" in _page(report, "01_baseline")
    assert "not enough history yet" in _page(report, "02_weak_cohort")
    comparison = _page(report, "04_comparison")
    for words in ("no customer is assigned to EXP-NO-ASSIGN", "the treatment arm has no customer assigned",
                  "matches no order line"):
        assert words in comparison


@pytest.mark.notebooks
def test_the_weekly_run_of_a_degenerate_week_keeps_no_experiment_and_writes_no_non_number(degenerate_week):
    import json

    report, journal = degenerate_week
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"),
                         parse_constant=lambda name: pytest.fail(f"summary.json holds {name}"))
    assert {r["experiment_id"]: r["decision"] for r in summary["review"]} == {
        "EXP-NO-ASSIGN": "adjust", "EXP-ONE-ARM": "adjust", "EXP-NO-MATCH": "adjust"}
    verdicts = journal[journal["kind"] == "verdict"]
    assert len(verdicts) == 3 and Decision.KEEP not in set(verdicts["decision"])
    for name in ("01_baseline", "02_weak_cohort", "04_comparison", "05_j7_review"):
        words = _page(report, name).lower().split()
        assert not {"inf", "-inf", "nan", "infinity"} & set(words), name
