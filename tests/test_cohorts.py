"""Step 2: the windows compared, the counts in the engine, and the weak cohort on a shop with a
planted spike whose numbers are known by construction."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import write_shop

from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.contract import REASON_CODES
from playbook.data.dataset import Snapshot, open_dataset
from playbook.stats.standardized import NO_BASELINE
from playbook.steps.cohorts import (
    Windows,
    analyse_weak_cohorts,
    candidates_section,
    choose_windows,
    cohort_trend,
    conclusion,
    slice_reason_counts,
    weak_cohort_section,
    weak_cohort_table,
)

W44, W45, W46 = dt.date(2026, 10, 26), dt.date(2026, 11, 2), dt.date(2026, 11, 9)


def mondays_before(last: dt.date, n: int) -> tuple[dt.date, ...]:
    return tuple(last - dt.timedelta(weeks=i) for i in range(n - 1, -1, -1))


# --- choose_windows -------------------------------------------------------------------------------

def test_the_window_ends_at_the_latest_delivery_week_with_k_days_of_follow_up():
    # cut at the end of 2026-W47 (Sunday 11-22); with k = 14 a delivery week is mature when its Sunday
    # plus 14 days is on or before 11-22: W45 (Sunday 11-08 + 14 = 11-22) is, W46 is not
    w = choose_windows(Snapshot(None, IsoWeek(2026, 47)), MetricSettings())
    assert w.window == mondays_before(W45, 4)
    assert w.baseline == mondays_before(W45 - dt.timedelta(weeks=4), 8)


def test_a_shorter_return_window_makes_a_later_week_mature():
    w = choose_windows(Snapshot(None, IsoWeek(2026, 47)), MetricSettings(return_window_days=7))
    assert w.window[-1] == W46


def test_every_week_chosen_is_mature_and_the_baseline_comes_right_before_the_window():
    settings = MetricSettings(return_window_days=30)
    cut = IsoWeek(2026, 2)  # across the year boundary
    w = choose_windows(Snapshot(None, cut), settings, window_weeks=3, baseline_weeks=5)
    weeks = w.baseline + w.window
    assert len(set(weeks)) == 8
    assert all(d.isoweekday() == 1 for d in weeks)
    assert all(d + dt.timedelta(days=6 + 30) <= cut.sunday for d in weeks)
    assert [b - a for a, b in zip(weeks, weeks[1:])] == [dt.timedelta(weeks=1)] * 7
    nxt = w.window[-1] + dt.timedelta(weeks=1)
    assert nxt + dt.timedelta(days=6 + 30) > cut.sunday  # the week after the window is not mature


def test_windows_describe_themselves_by_iso_week():
    w = Windows((W45, W46), (W44,))
    assert w.describe() == "delivery weeks 2026-W45 to 2026-W46 (window) against 2026-W44 to 2026-W44 (baseline)"


# --- counts on the tiny shop ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("tiny") / "shop")).as_of("2026-W47")


@pytest.fixture(scope="module")
def tiny_counts(tiny):
    return slice_reason_counts(tiny, MetricSettings(), Windows((W45, W46), (W44,)), ["category", "channel"])


def count(counts, dim, value, reason, period="window"):
    r = counts[(counts.dimension == dim) & (counts.slice_value == value) & (counts.reason_code == reason)
               & (counts.period == period)]
    assert len(r) == 1
    return r.iloc[0]


def test_units_are_counted_per_slice_over_the_window_weeks(tiny_counts):
    # W45-W46 deliveries: L1 (2, knitwear, web), L2 (1, shoes, web), L3 (1, knitwear, app), L4 (1, knitwear, web)
    assert count(tiny_counts, "category", "knitwear", "quality")["units"] == 4
    assert count(tiny_counts, "category", "shoes", "quality")["units"] == 1
    assert count(tiny_counts, "channel", "web", "quality")["units"] == 4
    assert count(tiny_counts, "channel", "app", "quality")["units"] == 1


def test_returns_are_counted_by_reason_within_k_days_with_their_cost(tiny_counts):
    # R1 (L1, size_too_small, 20+5+2) and R4 (L4, TOO_BIG -> other, 45+5+2) are within 14 days;
    # R3 comes 16 days after delivery; R2 after the cut
    r1 = count(tiny_counts, "category", "knitwear", "size_too_small")
    r4 = count(tiny_counts, "category", "knitwear", "other")
    assert (r1["events"], r1["cost"]) == (1, 27.0)
    assert (r4["events"], r4["cost"]) == (1, 52.0)
    assert count(tiny_counts, "category", "shoes", "changed_mind")["events"] == 0


def test_every_slice_gets_a_row_for_every_reason_code(tiny_counts):
    per_slice = tiny_counts.groupby(["dimension", "slice_value", "period"])["reason_code"].apply(set)
    assert all(s == set(REASON_CODES) for s in per_slice)


def test_a_baseline_week_without_deliveries_gives_no_baseline_rows(tiny_counts):
    assert set(tiny_counts.period) == {"window"}


def test_the_tiny_shop_has_no_weak_cohort_and_says_so(tiny):
    a = analyse_weak_cohorts(tiny, MetricSettings())
    assert a.weak is None and a.n_slices == 0
    assert (a.table["note"] == NO_BASELINE).all()
    assert weak_cohort_section(a) is None and candidates_section(a) == []
    assert conclusion(a).startswith("No weak cohort can be named this week: not enough history")


# --- weak_cohort_table on hand-made counts ------------------------------------------------------------

def hand_counts() -> pd.DataFrame:
    rows = []
    for cat, (w_units, w_events, w_cost, b_units, b_events) in {
        "knitwear": (400, 100, 3700.0, 800, 80),  # 25 % against its own 10 %
        "shoes": (400, 40, 0.0, 800, 80),  # 10 % against 10 %, costs unknown
        "bags": (400, 0, 0.0, 800, 80),  # no return in the window: no own cost
        **{f"c{i}": (400, 40, 400.0, 800, 80) for i in range(8)},
    }.items():
        rows.append(("category", cat, "window", w_units, "size_too_small", w_events, w_cost))
        rows.append(("category", cat, "baseline", b_units, "size_too_small", b_events, 0.0))
    rows.append(("category", "new", "window", 50, "size_too_small", 5, 50.0))  # no baseline at all
    return pd.DataFrame(rows, columns=["dimension", "slice_value", "period", "units", "reason_code", "events", "cost"])


@pytest.fixture(scope="module")
def hand_table():
    return weak_cohort_table(hand_counts()).set_index("slice_value")


def test_the_cost_per_event_is_the_slices_own_average(hand_table):
    assert hand_table.loc["knitwear", "cost_per_event"] == pytest.approx(3700 / 100)


def test_a_slice_without_returns_borrows_the_reasons_shop_wide_cost(hand_table):
    shop_wide = (3700 + 0 + 8 * 400 + 50) / (100 + 40 + 8 * 40 + 5)
    assert hand_table.loc["bags", "cost_per_event"] == pytest.approx(shop_wide)


def test_the_planted_slice_is_ranked_first_with_its_excess_cost(hand_table):
    k = hand_table.loc["knitwear"]
    assert k["flagged"] and k["rank"] == 1
    assert k["expected_events"] == pytest.approx(40) and k["excess_cost"] == pytest.approx(60 * 37.0)


def test_a_slice_without_baseline_is_kept_with_a_note(hand_table):
    assert hand_table.loc["new", "note"] == NO_BASELINE and not hand_table.loc["new", "flagged"]


def test_the_table_carries_shrunk_rates_between_the_raw_rate_and_the_mean(hand_table):
    k = hand_table.loc["knitwear"]
    assert 0.10 <= k["shrunk_rate"] <= 0.25 and k["shrunk_ci_low"] <= k["shrunk_rate"] <= k["shrunk_ci_high"]


# --- the weak cohort on a shop with a planted spike -------------------------------------------------

WINDOW_WEEKS = mondays_before(W45, 4)
ALL_WEEKS = mondays_before(W45, 12)
UNITS_PER_WEEK = 100  # per category
COST = (30.0, 5.0, 2.0)  # refund, return shipping, processing


def spike_shop() -> dict[str, list[tuple]]:
    """3 categories x 12 delivery weeks x 100 one-unit orders, half web half app. knitwear returns 10 %
    for size_too_small in the 8 baseline weeks and 25 % in the 4 window weeks; everything else 10 % quality."""
    orders, lines, returns = [], [], []
    for monday in ALL_WEEKS:
        in_window = monday in WINDOW_WEEKS
        for cat in ("knitwear", "shoes", "bags"):
            returned = 25 if (cat == "knitwear" and in_window) else 10
            reason = "size_too_small" if cat == "knitwear" else "quality"
            for i in range(UNITS_PER_WEEK):
                oid = f"O{monday:%m%d}{cat[:2]}{i:03d}"
                ordered = dt.datetime.combine(monday, dt.time(9))
                delivered = ordered + dt.timedelta(days=1)
                orders.append((oid, f"{ordered}", f"C{oid}", "web" if i % 2 else "app", "north",
                               f"{delivered.date()}", f"{delivered}", 4.0))
                lines.append((f"L{oid}", oid, cat[:3].upper(), cat, 1, 50.0, 0.0, 20.0))
                if i < returned:
                    returns.append((f"R{oid}", f"L{oid}", f"{delivered + dt.timedelta(days=3)}", 1, reason,
                                    "<b>too small</b>", *COST, "refund"))
    # an order on the last Sunday so that the data reach the cut
    orders.append(("OLAST", "2026-11-22 10:00:00", "CLAST", "web", "north", "2026-11-25", "", 4.0))
    lines.append(("LLAST", "OLAST", "KNI", "knitwear", 1, 50.0, 0.0, 20.0))
    return {"orders": orders, "order_lines": lines, "returns": returns}


@pytest.fixture(scope="module")
def spike(tmp_path_factory):
    snap = open_dataset(write_shop(tmp_path_factory.mktemp("spike") / "shop", spike_shop())).as_of("2026-W47")
    return snap, analyse_weak_cohorts(snap, MetricSettings(), dimensions=["category", "channel"])


def test_the_planted_cohort_is_the_weak_cohort(spike):
    _, a = spike
    assert a.weak is not None
    assert a.weak.filters == {"category": "knitwear", "reason_code": "size_too_small"}


def test_the_weak_cohort_numbers_match_the_construction(spike):
    w = spike[1].weak
    assert w.units == 4 * UNITS_PER_WEEK
    assert w.return_rate == pytest.approx(0.25)
    assert w.expected_rate == pytest.approx(0.10)
    assert w.excess_events == pytest.approx(60)
    assert w.excess_cost == pytest.approx(60 * sum(COST))


def test_a_slice_containing_the_cohort_only_partly_ranks_after_it(spike):
    _, a = spike
    flagged = a.flagged()
    assert flagged.iloc[0]["slice_value"] == "knitwear"
    # the channels share the planted excess: returns i < 25 of 100 are 13 app (even i) and 12 web per week,
    # against 5 and 5 in the baseline: 52 - 20 and 48 - 20 excess events over the window
    t = a.table[(a.table.dimension == "channel") & (a.table.reason_code == "size_too_small")].set_index("slice_value")
    assert t.loc["app", "excess_events"] == pytest.approx(32) and t.loc["web", "excess_events"] == pytest.approx(28)
    assert (t["rank"].dropna() > 1).all()


def test_slices_at_their_own_norm_are_not_flagged(spike):
    t = spike[1].table
    assert not t[t.slice_value.isin(["shoes", "bags"])]["flagged"].any()


def test_candidates_are_the_flagged_cohorts_by_excess_cost(spike):
    c = candidates_section(spike[1])
    assert c[0].filters == {"category": "knitwear", "reason_code": "size_too_small"}
    assert [x.excess_cost for x in c] == sorted((x.excess_cost for x in c), reverse=True)


def test_the_trend_of_the_weak_cohort_shows_the_spike_in_the_window(spike):
    snap, a = spike
    t = cohort_trend(snap, MetricSettings(), a.weak).set_index("week_start")
    assert t.loc[list(WINDOW_WEEKS), "rate"].tolist() == pytest.approx([0.25] * 4)
    assert t.loc[list(ALL_WEEKS[:8]), "rate"].tolist() == pytest.approx([0.10] * 8)
    assert t.loc[list(WINDOW_WEEKS), "mature"].all()
