"""Verdict-level calibration: randomized experiments simulated as exposure_lines() returns them, read by
compare_exposed (SRM, the primary at its pre-registered window, keep blockers) and judged by the
written rule (review.verdict_for -> decisions.decide). One-sided: only keeps are counted; the band is
2.5 % + 3 binomial standard errors at the replication count used. Seeds are fixed.

Regimes (tests/verdict_sim.py): 300 customers per arm, 1 + Poisson(1.5) lines each, orders spread over
the test, delivery 1-3 days after the order, customer propensity Beta(2, 8) (mean 0.2), return lag
uniform on [0, 4.5] days. A lever that only delays returns (lag x 1.1 .. 1.5) leaves every lag under
7 days, so it does not change the 7-day return rate: a keep on it is a false keep.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import ibis
import numpy as np
import pandas as pd
import pytest
from verdict_sim import (
    BASE,
    HAND_ENTERED,
    PLAN_MADE,
    Replication,
    Shop,
    SimulatedGuardrails,
    at,
    exact_inputs,
    experiment,
    read_many,
    setup,
    simulate,
    week_end_days,
)

from playbook.config.loader import load_config
from playbook.core.vocabulary import Design
from playbook.core.weeks import IsoWeek
from playbook.journal.store import EarlierLook
from playbook.metrics.forms import ArmData
from playbook.steps.experiments import _guardrails_randomized, compare_exposed, due_for_review
from playbook.steps.review import verdict_for

ASSIGNED = {"control": 300, "treatment": 300}


@pytest.fixture(scope="module")
def config():
    return load_config()


def band(reps: int, rate: float = 0.025) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / reps)


def read(config, lines, day, exp, look=1):
    seen, as_of = at(lines, day)
    c = compare_exposed(exp, seen, ASSIGNED, as_of, config, [], secondary_views=False)
    return c, verdict_for(c.section(), look)


def keep_rate(config, reps, seed, *, day, exp, **sim) -> float:
    rng = np.random.default_rng(seed)
    keeps = sum(read(config, simulate(rng, **sim), day, exp)[1].verdict.decision == "keep" for _ in range(reps))
    return keeps / reps


# --- a lever that only delays returns ------------------------------------------------------------

@pytest.mark.parametrize("delay", [0.1, 0.2, 0.3, 0.5])
def test_a_lever_that_only_delays_returns_is_never_kept_at_j7_with_a_7_day_metric(config, delay):
    # at J+7 no unit has had 7 days since delivery: the 7-day rate cannot be read, the verdict is provisional
    rng = np.random.default_rng(11)
    decisions = {read(config, simulate(rng, order_days=7, delay=delay), 7, experiment(days=7))[1].verdict.decision
                 for _ in range(20)}
    assert decisions == {"provisional"}


@pytest.mark.parametrize("reps", [150, pytest.param(10_000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("delay", [0.1, 0.2, 0.3, 0.5])
def test_a_lever_that_only_delays_returns_is_kept_at_most_at_the_one_sided_rate_when_read_at_k(config, delay, reps):
    # J+14 review of a 14-day test: the 7-day rate is readable (units delivered in the first week)
    rate = keep_rate(config, reps, 100 + int(delay * 10), day=14, exp=experiment(), delay=delay)
    assert rate <= band(reps), rate


def test_a_lever_that_truly_cuts_7_day_returns_is_read_at_7_days(config):
    # propensity x 0.6: 7-day return share 0.20 -> 0.12 (every lag is under 4.5 days), a true cut of 0.08
    rng = np.random.default_rng(5)
    c, v = read(config, simulate(rng, customers=600, cut=0.6), 14, experiment())
    e = c.primary.estimate
    assert c.primary.window.k_read == 7 and c.follow_up_days == 7
    assert abs(e.estimate - (-0.08)) <= 3 * e.details["std_error"]
    assert v.verdict.decision == "keep" and v.verdict.k_read == 7
    assert v.journal_entry("2026-W46").k_read == 7


def test_while_the_window_is_not_readable_a_shorter_view_carries_its_own_k_not_the_registered_name(config):
    rng = np.random.default_rng(5)
    c, v = read(config, simulate(rng, order_days=7, cut=0.6), 8, experiment(days=7))  # J+8: k = 3 readable, 7 not
    short = c.views.get("shorter_window")
    assert v.verdict.decision == "provisional" and c.primary.estimate.estimate is None
    assert short is not None and short["metric"] != "return_rate_7d" and short["k"] < 7
    assert v.journal_entry("2026-W45").estimate is None


# --- A/A through the randomized path ---------------------------------------------------------------

@pytest.mark.parametrize("reps", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_an_aa_experiment_is_kept_at_most_at_the_one_sided_rate(config, reps):
    rate = keep_rate(config, reps, 2026, day=21, exp=experiment())
    assert rate <= band(reps), rate


@pytest.mark.parametrize("reps", [100, pytest.param(10_000, marks=pytest.mark.slow)])
def test_an_aa_experiment_read_at_four_weekly_looks_is_kept_at_most_at_the_one_sided_rate(config, reps):
    # 28-day test, looks at J+7 (7-day window not readable yet), J+14, J+21 and J+28, each judged after the earlier
    # verdicts as the journal gives them (EarlierLook: a provisional look spends nothing) until one decides
    rng = np.random.default_rng(4)
    exp = experiment(days=28, planned_looks=4)
    keeps = 0
    for _ in range(reps):
        lines = simulate(rng, order_days=28)
        earlier = []
        for j in (1, 2, 3, 4):
            v = read(config, lines, 7 * j, exp, look=earlier)[1].verdict
            earlier.append(EarlierLook(IsoWeek.of((BASE + pd.Timedelta(days=7 * j - 1)).date()), str(v.decision),
                                       v.information_fraction, v.boundary))
            if not v.decision.undecided:  # keep, stop or adjust: the test is not read again
                keeps += v.decision == "keep"
                break
    assert keeps / reps <= band(reps), keeps / reps


# --- the whole path: plan, weekly looks, K-day read, guardrails, decide (issue 19) ------------------------------
#
# The shop (verdict_sim.Shop): 1,500 customers assigned by a fair coin, each ordering as a Poisson process of
# 0.3 orders a week, 1 + Poisson(1.5) lines per order delivered together 1-3 days after it, a Beta(2, 8)
# propensity per customer; lags uniform on [0, 4.5] days (SHOP: the 7- and 14-day rates are both 20 %) or
# Gamma(shape 2, mean 10 days) (DELAY_SHOP: the 28-day rate is 19.5 %). Expected range [-8, -4] points (a cut
# of 20 to 40 % of returns): the plan is sized for its weaker end, -4 points, on the base rate, weekly units
# per arm, design effect and customers per unit MEASURED on 12 simulated weeks of the shop's history as
# step 3 measures them (4 window weeks for the rate and volume, the last ceil(read_days / 7) of 8 baseline
# weeks for the clustering; test_the_plan_inputs_... checks them against their exact values). The plan
# gives 5 weeks and 4 looks for the 7-day metric, 6 weeks for the 14-day one, 8 weeks for the 28-day one.
# Each replication is read at every week the code reads it, from planned_looks - 1 weeks before the review
# date's week (a hand-entered row: that week only) and then while undecided, at most two weeks past the
# review date's week; reads stop at keep, stop or adjust. Default run: 500 replications, 4-SE bands;
# `make test-slow`: 2,000, 3-SE bands. Profiled: compare_exposed is about 80 % of the time (its pandas work on
# 3,000-10,000 lines per read, 20-130 ms), the verdicts' spending boundaries about 10 %, drawing and cutting the
# lines under 10 %; the default run of this file takes about 5 CPU-minutes (8 minutes on a shared 2-core
# machine), the whole-path tests 4 of them. Nothing is parallelised.

SHOP = Shop()
DELAY_SHOP = Shop(lag_shape=2.0, lag_mean=10.0)
EXPECTED = (-0.08, -0.04)
DELAY = 1.6  # every treated lag x 1.6: the 28-day rate falls by 2.2 points, nothing is prevented
ROWS = (PLAN_MADE, HAND_ENTERED)
RUNS = [pytest.param((500, 4), id="500reps-4se"), pytest.param((2_000, 3), id="2000reps-3se", marks=pytest.mark.slow)]
SEEDS = {"effect": 1901, "null": 1902, "delay": 1903}


@functools.lru_cache(maxsize=None)
def whole_path(kind: str, k: int, reps: int):
    """(setup, tallies by (row, with guardrails)) of ``reps`` seeded replications; cached, so that the tests of
    one regime (both rows, with and without guardrails) read the same replications once."""
    config = load_config()
    s = setup(DELAY_SHOP if kind == "delay" else SHOP, k, EXPECTED)
    kwargs = {"effect": {"cut": s.cut_for(s.weaker_end),
                         "guardrails": config.experiments.guardrails[Design.RANDOMIZED]},
              "null": {}, "delay": {"delay": DELAY}}[kind]
    return s, read_many(s, reps, SEEDS[kind] + 1000 * k + reps, config, **kwargs)


def binomial_se(rate: float, reps: int) -> float:
    return math.sqrt(rate * (1 - rate) / reps)


def at_least(measured: float, target: float, reps: int, n_se: int, what: str) -> None:
    se = binomial_se(target, reps)
    low = target - n_se * se
    text = (f"{what}: measured {measured:.2%} of {reps} replications (SE {binomial_se(measured, reps):.2%}); "
            f"target >= {target:.2%}, SE at the target {se:.2%}, one-sided {n_se}-SE band >= {low:.2%}")
    print(text)
    assert measured >= low, text


def at_most(measured: float, reps: int, n_se: int, what: str, target: float = 0.025) -> None:
    se = binomial_se(target, reps)
    high = target + n_se * se
    text = (f"{what}: measured {measured:.2%} of {reps} replications (SE {binomial_se(measured, reps):.2%}); "
            f"target <= {target:.1%}, SE at the target {se:.2%}, one-sided {n_se}-SE band <= {high:.2%}")
    print(text)
    assert measured <= high, text


def describe(s, t) -> str:
    reads = np.bincount(t.reads)
    return (f"[plan: {s.plan.weeks} weeks, looks at weeks {s.plan.look_weeks}, planned information "
            f"{s.plan.planned_information:.0f} customers per arm, stated power {s.stated_power:.1%} ({s.exact_power:.1%} "
            f"with the shop's exact inputs); final decisions "
            f"{dict(sorted(t.finals.items()))}; reads per test {dict(enumerate(reads)) if reads.size else {}}; "
            f"z past the boundary at some read {t.shown / t.reps:.1%}; undecided at the end {t.undecided_at_end}]")


def test_the_plan_inputs_measured_on_the_simulated_history_are_the_shops_own():
    for shop, k, weeks in ((SHOP, 7, 5), (SHOP, 14, 6), (DELAY_SHOP, 28, 8)):
        s, exact = setup(shop, k, EXPECTED), exact_inputs(shop, k)
        got = s.inputs
        # one 12-week history of 1,500 customers: the measured design effect is 1-9 % above the exact one (a
        # shop 20 times larger measures it within 2 %), so the stated power is a little below the exact one
        assert got.base_rate == pytest.approx(exact.base_rate, abs=0.01)
        assert got.weekly_units_per_arm == pytest.approx(exact.weekly_units_per_arm, rel=0.03)
        assert got.design_effects == pytest.approx(exact.design_effects, rel=0.12)
        assert got.customers_per_unit == pytest.approx(exact.customers_per_unit, rel=0.05)
        assert s.stated_power == pytest.approx(s.exact_power, abs=0.05)
        assert got.confirm_days == 2 * k  # 90 % of the shop's returns come back within 2K days
        assert (s.plan.weeks, s.plan.planned_looks) == (weeks, 4) and 0.8 <= s.stated_power < 0.86
        assert s.plan_row["review_date"] == s.hand_row["review_date"] == (BASE + pd.Timedelta(days=7 * weeks)).date()
        assert "planned_looks" not in s.hand_row and s.plan_row["planned_looks"] == 4
    # the true cut at the weaker end moves the K-day rate by the weaker end exactly
    s = setup(SHOP, 7, EXPECTED)
    assert SHOP.base_rate(7) * (s.cut_for(s.weaker_end) - 1) == pytest.approx(-0.04)
    # a pure delay lowers the 28-day rate by 2.2 points (stats.delay's example) and prevents nothing
    assert DELAY_SHOP.mean_propensity * (Shop(lag_shape=2.0, lag_mean=16.0).returned_by(28)
                                         - DELAY_SHOP.returned_by(28)) == pytest.approx(-0.022, abs=5e-4)


class _Snap:
    """What due_for_review reads of a snapshot: its week and the experiments table."""

    def __init__(self, rows, week):
        self.week = week
        self.tables = {"experiments": ibis.memtable(pd.DataFrame(rows))}

    def has(self, table):
        return table in self.tables


def test_the_simulation_reads_the_weeks_due_for_review_reads():
    # without a journal: the plan-made row from planned_looks - 1 weeks before the review date's week to it,
    # the hand-entered row in that week only (the reads after it, while undecided, need the journal's verdicts)
    for k in (7, 14):
        s = setup(SHOP, k, EXPECTED)
        plan = dict(s.plan_row, experiment_id="PLAN")
        hand = dict(s.hand_row, experiment_id="HAND", planned_looks=None, planned_information=None)
        review = IsoWeek.of(s.review_date)
        due = {}
        for i in range(12):
            week = IsoWeek.of(BASE.date()).shift(i)
            for exp_id in due_for_review(_Snap([plan, hand], week))["experiment_id"]:
                due.setdefault(exp_id, []).append(week)
        assert due["PLAN"] == [review.shift(-j) for j in (3, 2, 1, 0)]
        assert due["HAND"] == [review]


def test_a_read_with_the_hand_entered_row_or_without_guardrails_is_the_one_compare_exposed_gives():
    config = load_config()
    s = setup(SHOP, 7, EXPECTED)
    rng = np.random.default_rng(3)
    rep = Replication(rng, s, s.cut_for(-0.04))
    guards = SimulatedGuardrails(rng, s, config.experiments.guardrails[Design.RANDOMIZED])
    for week in (IsoWeek.of(s.review_date).shift(-2), IsoWeek.of(s.review_date)):
        days = week_end_days(week)
        lines = rep.lines(days)

        def read(row, g):
            return compare_exposed(row, lines, rep.assigned, week.end, config, g, secondary_views=False,
                                   windows=s.inputs.windows)

        both = read(s.plan_row, guards.at(days))
        assert dataclasses.replace(both, experiment=s.hand_row).section() == read(s.hand_row, guards.at(days)).section()
        assert dataclasses.replace(both, guardrails=[]).section() == read(s.plan_row, []).section()
        assert both.section().planned_looks == 4 and read(s.hand_row, []).section().planned_looks == 1


def test_the_configured_guardrails_need_tables_beyond_the_lines_so_their_reads_are_simulated():
    # contact_rate reads contacts, net_revenue_per_customer reads assignments: on the lines alone (no snapshot)
    # step 4 measures neither, so the simulation draws their estimates (SimulatedGuardrails)
    config = load_config()
    s = setup(SHOP, 7, EXPECTED)
    rng = np.random.default_rng(5)
    rep = Replication(rng, s)
    days = week_end_days(IsoWeek.of(s.review_date))
    configured = config.experiments.guardrails[Design.RANDOMIZED]
    real = _guardrails_randomized(ArmData(None, "SIM", rep.lines(days), IsoWeek.of(s.review_date).end), configured,
                                  config)
    assert [g.metric for g in real] == ["contact_rate", "net_revenue_per_customer"]
    assert all(not g.estimate.ok and "no data given" in g.estimate.error for g in real)
    drawn = SimulatedGuardrails(rng, s, configured).at(days)
    assert [(g.metric, g.tolerance, g.good_direction, g.role) for g in drawn] == \
        [(g.metric, g.tolerance, g.good_direction, g.role) for g in real]
    for g, c in zip(drawn, configured):
        assert g.estimate.details["std_error"] == pytest.approx(c.tolerance / 2.8)
    # before the review date, fewer customers are exposed: a wider interval
    early = SimulatedGuardrails(rng, s, configured).at(days - 21)
    assert all(e.estimate.details["std_error"] > g.estimate.details["std_error"] for e, g in zip(early, drawn))


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("k", [7, 14])
def test_a_true_cut_at_the_weaker_end_is_kept_by_the_review_date_at_the_plans_power(k, row, run):
    # (a) propensity x 0.8: the K-day rate falls by exactly the weaker end (-4 points from 20 %)
    reps, n_se = run
    s, tallies = whole_path("effect", k, reps)
    t = tallies[(row, False)]
    at_least(t.kept_by_review / reps, s.stated_power, reps, n_se,
             f"(a) {k}-day metric, {row} row, true cut at the weaker end: kept by the review date {describe(s, t)}")


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("k", [7, 14])
def test_with_two_guardrails_of_no_effect_the_true_cut_is_still_kept_at_the_plans_power(k, row, run):
    # (b) the same replications with the configured guardrails (contact_rate, tolerance 0.01; net revenue per
    # customer, tolerance 2.00), no true effect, standard error tolerance / 2.8 at the review date
    reps, n_se = run
    s, tallies = whole_path("effect", k, reps)
    t = tallies[(row, True)]
    at_least(t.kept_by_review / reps, s.stated_power, reps, n_se,
             f"(b) {k}-day metric, {row} row, true cut, two guardrails of no effect: kept by the review date "
             f"{describe(s, t)}")


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("k", [7, 14])
def test_no_effect_read_at_every_look_is_kept_and_stopped_at_most_at_the_one_sided_rate(k, row, run):
    # (c) A/A: every look the code takes, up to two weeks past the review date
    reps, n_se = run
    s, tallies = whole_path("null", k, reps)
    t = tallies[(row, False)]
    what = f"(c) {k}-day metric, {row} row, no effect"
    at_most(t.kept / reps, reps, n_se, f"{what}: kept {describe(s, t)}")
    at_most(t.stopped / reps, reps, n_se, f"{what}: stopped {describe(s, t)}")


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("row", ROWS)
def test_a_lever_that_only_delays_returns_is_kept_at_most_at_the_one_sided_rate_through_the_whole_path(row, run):
    # (d) Gamma lags (shape 2, mean 10 days) x 1.6 in treatment, 28-day metric: the 28-day rate falls by 2.2
    # points, the 56-day rate by 0.2 (the 2K read holds 99.3 % of the treated returns). The delay check flags it
    # and holds a keep (continue) until the 56-day read is readable, by the review date's week here (reads
    # continue while undecided up to two weeks past it)
    reps, n_se = run
    s, tallies = whole_path("delay", 28, reps)
    t = tallies[(row, False)]
    at_most(t.kept / reps, reps, n_se, f"(d) 28-day metric, {row} row, a delay only: kept {describe(s, t)}")


def test_a_delay_that_reaches_past_the_2k_confirm_read_is_kept_at_most_at_the_one_sided_rate():
    # Gamma lags (shape 2, mean 10 days) x 2.5 in treatment, nothing prevented: the 28-day rate falls by 6.4
    # points (the delay check flags it: p < 0.0001), the 56-day rate by 1.2 (the 56-day window holds 93.8 % of
    # the treated returns, 100 % of control's): the 56-day read shows that residual gap often enough to have
    # confirmed the keep in about 18 % of the tests when the gap alone confirmed it; the catch-up test (the
    # treated units returned between day 28 and 56 exceed control's, which no prevention can do) blocks it.
    # Hand-entered row: one read, at the nominal 1.96
    reps = 150
    s = setup(DELAY_SHOP, 28, EXPECTED)
    t = read_many(s, reps, 1904, load_config(), delay=2.5, rows=(HAND_ENTERED,))[(HAND_ENTERED, False)]
    at_most(t.kept / reps, reps, 3, f"a delay x 2.5, 28-day metric, hand-entered row: kept {describe(s, t)}")
