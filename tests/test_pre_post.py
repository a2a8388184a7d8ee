"""Step 4, pre/post designs: which weeks the difference in differences reads, and when it blocks a keep.

A shop with one order per cell (web/north, app/south), cohort (knitwear, the treated one) and week;
every line is 100.00 gross, so a cell's discount depth in a week is its discount amount in points.
The control (shoes) always gives 10 points. Knitwear gives 10 + a weekly wobble with no trend, +3
in the weeks step 2 read when it chose the cohort (its baseline and window) and the weeks after,
and 6 (a cut of 4 points against the control) from the start week 2026-W46.

With the default configuration (14-day return window), step 2 ran in 2026-W45 (the week before
the start): its window is the 4 latest delivery weeks with 14 days of follow-up by then, 2026-W40
to 2026-W43 (W43's Sunday + 14 days = W45's Sunday), and its baseline the 8 before, 2026-W32 to
2026-W39. The pre-period is the 8 weeks before 2026-W32: 2026-W24 to 2026-W31.
"""
from __future__ import annotations

import datetime as dt

import pytest
from conftest import write_shop

from playbook.config.loader import load_config
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import open_dataset
from playbook.steps.experiments import compare_due, pre_post_panel

START = dt.date(2026, 11, 9)  # 2026-W46
WOBBLE = [0.0, 1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.0]  # 8-week cycle, no trend
CELLS = [("web", "north"), ("app", "south")]


def knitwear_discount(monday: dt.date, index: int, drift: float) -> float:
    if monday >= START:
        return 6.0
    selected = 3.0 if monday >= IsoWeek.parse("2026-W32").monday else 0.0
    return 10.0 + WOBBLE[index % 8] + drift * index + selected


def shop(first_monday: dt.date, drift: float = 0.0) -> dict[str, list[tuple]]:
    orders, lines = [], []
    monday, i = first_monday, 0
    while monday <= IsoWeek.parse("2026-W47").monday:
        for category, discount in (("knitwear", knitwear_discount(monday, i, drift)), ("shoes", 10.0)):
            for channel, region in CELLS:
                oid = f"O{len(orders):05d}"
                ts = dt.datetime.combine(monday + dt.timedelta(days=1), dt.time(10))
                orders.append((oid, str(ts), f"C{len(orders)}", channel, region, str((ts + dt.timedelta(days=3)).date()),
                               str(ts + dt.timedelta(days=1)), 4.0))
                lines.append((f"L{oid}", oid, "SKU", category, 1, 100.0, round(discount, 6), 40.0))
        monday += dt.timedelta(days=7)
        i += 1
    experiments = [("EXP-PP", "tighten_promo_eligibility", "category=knitwear", "pre_post", "", "discount_depth",
                    -5.0, -2.0, START.isoformat(), "2026-11-16")]
    first_ts = dt.datetime.fromisoformat(orders[0][1]) + dt.timedelta(days=5)
    returns = [("R1", lines[0][0], str(first_ts), 1, "changed_mind", "", 60.0, 5.0, 2.0, "refund")]  # the contract needs one
    return {"orders": orders, "order_lines": lines, "returns": returns, "experiments": experiments}


def compare(tmp_path, first_monday: dt.date, drift: float = 0.0):
    folder = write_shop(tmp_path / "shop", shop(first_monday, drift))
    snap = open_dataset(folder).as_of("2026-W47")
    (comparison,) = compare_due(snap, load_config())
    return snap, comparison


def weeks(first: str, last: str) -> set[dt.date]:
    out, w = set(), IsoWeek.parse(first)
    while w <= IsoWeek.parse(last):
        out.add(w.monday)
        w = w.shift(1)
    return out


@pytest.fixture(scope="module")
def long_history(tmp_path_factory):
    return compare(tmp_path_factory.mktemp("long"), IsoWeek.parse("2026-W19").monday)


def test_the_pre_period_ends_before_the_weeks_step_2_read_and_skips_them_up_to_the_start(long_history):
    snap, c = long_history
    exp = c.experiment
    panel = pre_post_panel(snap, exp, "discount_depth", load_config().metrics, pre_weeks=8)
    assert set(panel["week"]) == weeks("2026-W24", "2026-W31") | weeks("2026-W46", "2026-W47")


def test_the_estimate_is_the_post_gap_minus_the_clean_pre_gap(long_history):
    _, c = long_history
    e = c.primary.estimate
    # pre gaps W24..W31 are the wobble at indices 5..12 (mean 0); post gaps are 6 - 10 = -4
    assert e.method == "did-cohort-week-t"
    assert e.estimate == pytest.approx(-4.0 - sum(WOBBLE[i % 8] for i in range(5, 13)) / 8)
    assert "2026-W32 to 2026-W45 left out" in c.views["pre_period"]


def test_a_flat_pre_trend_does_not_block_a_keep(long_history):
    _, c = long_history
    assert c.views["pre_trend"].warning is None and c.views["pre_trend"].p_value > 0.05
    assert c.keep_blockers == []


def test_a_cohort_drifting_before_the_start_blocks_a_keep(tmp_path):
    _, c = compare(tmp_path, IsoWeek.parse("2026-W19").monday, drift=0.5)
    assert c.views["pre_trend"].warning is not None
    assert len(c.keep_blockers) == 1 and "already drifting" in c.keep_blockers[0]


def test_with_a_short_history_the_pre_period_is_step_2s_baseline_and_a_warning_says_so(tmp_path):
    snap, c = compare(tmp_path, IsoWeek.parse("2026-W36").monday)
    panel = pre_post_panel(snap, c.experiment, "discount_depth", load_config().metrics, pre_weeks=8)
    assert set(panel["week"]) == weeks("2026-W36", "2026-W39") | weeks("2026-W46", "2026-W47")
    assert any("step 2's baseline" in w for w in c.warnings)


def test_too_few_pre_weeks_for_a_trend_block_a_keep(tmp_path):
    _, c = compare(tmp_path, IsoWeek.parse("2026-W38").monday)
    # pre-period W38..W39 only: the difference in differences has an interval, the trend cannot be checked
    assert c.views["pre_trend"].error is not None
    assert len(c.keep_blockers) == 1 and "could not be checked" in c.keep_blockers[0]


# --- the weeks step 2 read travel with the plan ----------------------------------------------------
# Step 2 run in 2026-W45 with windows of the analyst's choosing: 6 window weeks against 12 baseline weeks.
# Computed by hand: the latest delivery week with 14 days of follow-up by W45's Sunday (2026-11-08) is
# 2026-W43 (its Sunday 2026-10-25 + 14 days); the window is W38-W43 and the baseline the 12 weeks before,
# W26-W37. The pre-period is the 8 weeks before W26 that the data hold (they start in W19): W19-W25.


def _plan_with_chosen_windows(folder, window_weeks: int = 6, baseline_weeks: int = 12):
    from section_examples import read, weak_cohort

    from playbook.steps.cohorts import choose_windows
    from playbook.steps.levers import design_lever

    config = load_config()
    snap = open_dataset(folder).as_of("2026-W45")
    windows = choose_windows(snap, config.metrics, window_weeks, baseline_weeks, snap.first_week())
    weak = read("weak_cohort", weak_cohort(
        filters={"category": "knitwear", "reason_code": "changed_mind"},
        window_weeks=[d.isoformat() for d in windows.window], baseline_weeks=[d.isoformat() for d in windows.baseline]))
    return design_lever(weak, snap, config, design="pre_post")


def _with_row(folder, extra: dict[str, str]):
    import pandas as pd

    from playbook.data.contract import TABLES

    path = folder / "experiments.csv"
    e = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, value in extra.items():
        e[column] = value
    assert list(e.columns[: len(TABLES["experiments"].column_names)]) == list(TABLES["experiments"].column_names)
    e.to_csv(path, index=False)
    return folder


@pytest.fixture(scope="module")
def chosen_windows(tmp_path_factory):
    folder = write_shop(tmp_path_factory.mktemp("chosen") / "shop", shop(IsoWeek.parse("2026-W19").monday))
    plan = _plan_with_chosen_windows(folder)
    snap = open_dataset(_with_row(folder, plan.selection.row())).as_of("2026-W47")
    (comparison,) = compare_due(snap, load_config())
    return plan, snap, comparison


def test_a_plan_records_the_first_week_step_2_read_its_window_and_its_last_week(chosen_windows):
    plan, _, _ = chosen_windows
    assert (plan.selection.first, plan.selection.window, plan.selection.last) == ("2026-W26", "2026-W38", "2026-W43")


def test_a_plan_made_on_chosen_windows_is_compared_on_the_weeks_before_them(chosen_windows):
    _, snap, c = chosen_windows
    panel = pre_post_panel(snap, c.experiment, "discount_depth", load_config().metrics, pre_weeks=8)
    # the reconstruction from step 2's defaults would read W24-W31, inside the baseline step 2 chose on
    assert set(panel["week"]) == weeks("2026-W19", "2026-W25") | weeks("2026-W46", "2026-W47")
    assert "2026-W26 to 2026-W45 left out" in c.views["pre_period"]
    assert "as recorded in the experiments row" in c.views["pre_period"]


def test_the_estimate_reads_the_recorded_pre_period(chosen_windows):
    _, _, c = chosen_windows
    # pre gaps W19..W25 are the wobble at indices 0..6; post gaps are 6 - 10 = -4
    assert c.primary.estimate.estimate == pytest.approx(-4.0 - sum(WOBBLE[:7]) / 7)


def test_a_row_without_the_weeks_step_2_read_has_them_reconstructed_and_its_note_says_so(long_history):
    from playbook.steps.experiments import comparison_table

    _, c = long_history
    note = comparison_table([c]).query("role == 'primary'")["note"].iloc[0]
    assert "reconstructed from the start date" in note and "does not record the weeks step 2 read" in note


def test_a_row_with_empty_selection_weeks_is_reconstructed_like_a_row_without_the_columns(tmp_path):
    folder = write_shop(tmp_path / "shop", shop(IsoWeek.parse("2026-W19").monday))
    snap = open_dataset(_with_row(folder, dict.fromkeys(
        ("selection_first_week", "selection_window_week", "selection_last_week"), ""))).as_of("2026-W47")
    (c,) = compare_due(snap, load_config())
    panel = pre_post_panel(snap, c.experiment, "discount_depth", load_config().metrics, pre_weeks=8)
    assert set(panel["week"]) == weeks("2026-W24", "2026-W31") | weeks("2026-W46", "2026-W47")
    assert "reconstructed" in c.views["pre_period"]


def test_recorded_weeks_with_too_little_history_before_them_fall_back_to_the_recorded_baseline(tmp_path):
    # data from W30: 12 baseline weeks from W26 leave nothing before them; the pre-period is the recorded
    # baseline, W30 (the data's first) to W37 (before the recorded window W38)
    folder = write_shop(tmp_path / "shop", shop(IsoWeek.parse("2026-W30").monday))
    snap = open_dataset(_with_row(folder, {"selection_first_week": "2026-W26", "selection_window_week": "2026-W38",
                                           "selection_last_week": "2026-W43"})).as_of("2026-W47")
    (c,) = compare_due(snap, load_config())
    panel = pre_post_panel(snap, c.experiment, "discount_depth", load_config().metrics, pre_weeks=8)
    assert set(panel["week"]) == weeks("2026-W30", "2026-W37") | weeks("2026-W46", "2026-W47")
    assert any("step 2's baseline" in w for w in c.warnings)
