"""How often step 2 names a cohort that really went bad, and how often it names one in a shop where nothing did.

Each replication is one shop of the season's generator (``sim.shop.SeasonShop``, the sample shop's code) with
``history_weeks`` weeks of orders, read at its last week as the weekly run reads it: the window is the latest
4 delivery weeks with 14 days of follow-up, the baseline the 8 weeks before (``cohorts.windows_of_week``). A
*null* shop has no spike; a *spiked* shop has one category x reason propensity multiplied by ``factor`` for the
orders from the window's first Monday. ``wobble`` moves every category x reason propensity from week to week
(``SeasonShop``'s weekly log-normal factor), which binomial noise alone does not cover.

The counts step 2 tests (``cohorts.slice_reason_counts``: units, returned units, cost, the customers' squared
returned units and the weekly columns per dimension x slice x reason x period) are taken here from the shop's
arrays by the export's rules, not through the engine (seconds a shop there; ``tests/test_cohort_power.py`` checks
them equal to the engine's on the written export), and go through step 2's own tests and flag rule
(:func:`step2_flags`, the flags of ``cohorts.weak_cohort_table``). A *false alarm* is any slice x reason flagged
in a null shop; a spike is *found* when its category x reason is flagged.

``python -m playbook.sim.cohort_power --reps 500`` prints the rates of docs/statistics.md ("Small shops").
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from playbook.config.loader import load_config
from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.dev import sample_data as sd
from playbook.sim.shop import SeasonShop
from playbook.sim.truth import Spike, Truth
from playbook.stats.standardized import excess_p_value
from playbook.steps.cohorts import FDR, Windows, counts_frame, q_values, slice_tests, windows_of_week

START = dt.date(2026, 5, 4)  # a Monday (2026-W19): 15 weeks reach a full window and baseline by 2026-W33
HISTORY_WEEKS = 15
#: the planted spike: jeans (13 % of lines, the middle of the seven main categories), a reason of 1.5 %
CATEGORY, REASON = "jeans", "not_as_described"


@dataclass(frozen=True)
class Setting:
    """One simulated situation: the shop's size, its weekly wobble, and the spike (factor 1: a null shop)."""

    units_per_week: float
    wobble: float = 0.0
    factor: float = 1.0
    category: str = CATEGORY
    reason: str = REASON

    @property
    def null(self) -> bool:
        return self.factor == 1.0

    def describe(self) -> str:
        spike = "null shops" if self.null else f"{self.category} x {self.reason} x {self.factor:g}"
        wobble = f", weekly wobble {self.wobble:.0%}" if self.wobble else ""
        return f"{self.units_per_week:,.0f} units a week{wobble}: {spike}"


@dataclass(frozen=True)
class Rate:
    """A share of replications with its binomial standard error."""

    hits: int
    reps: int

    @property
    def share(self) -> float:
        return self.hits / self.reps

    @property
    def se(self) -> float:
        return math.sqrt(self.share * (1 - self.share) / self.reps)

    def upper(self, k: float = 3.0) -> float:
        """The measured share plus k standard errors (the one-sided band of a false-alarm rate)."""
        return self.share + k * self.se

    def __str__(self) -> str:
        return f"{self.share:.1%} (SE {self.se:.1%}, {self.hits}/{self.reps})"


def shop_for(seed: int, setting: Setting, history_weeks: int = HISTORY_WEEKS) -> SeasonShop:
    """The replication's shop: the spike, when there is one, from the orders of the window's first Monday."""
    spikes = () if setting.null else (Spike(setting.category, setting.reason, setting.factor, history_weeks - 6),)
    return SeasonShop(seed, START, history_weeks, 0, setting.units_per_week, Truth("power", spikes=spikes),
                      wobble=setting.wobble)


def shop_counts(shop: SeasonShop, week: IsoWeek, windows: Windows, k: int) -> pd.DataFrame:
    """``cohorts.slice_reason_counts`` of the shop's export taken at the end of ``week``, from its arrays.

    The export's rules (``SeasonShop.tables``: nothing after the cut, a return requested ``return_delay_days``
    after its delivery, returned quantity and cost) read without building its string tables, which would take
    most of a replication; the test checks the result equal to the engine's counts of the written export.
    """
    cut = shop.cut_seconds(week.sunday)
    n_o = int((shop.o_s <= cut).sum())  # orders are sorted by time
    lines = np.flatnonzero(shop.l_order < n_o)
    order = shop.l_order[lines]
    deliv = shop.deliv_s[order]
    delivered = (deliv >= 0) & (deliv <= cut)
    week_index = np.where(delivered, (deliv - shop.start_s) // (7 * sd.DAY), -1)
    mondays = {w: i for i, w in enumerate(shop.week_monday(j) for j in range(shop.n_weeks))}
    period = np.full(lines.size, -1)
    for code, weeks in enumerate((windows.window, windows.baseline)):
        period[np.isin(week_index, [mondays[w] for w in weeks if w in mondays])] = code
    keep = period >= 0
    lines, order, deliv, week_index, period = (a[keep] for a in (lines, order, deliv, week_index, period))
    reason = shop.reason[lines]
    request = deliv + np.round(sd.return_delay_days(shop.delay_u[lines], reason, shop.l_cat[lines])
                               * sd.DAY).astype(np.int64)
    returned = (reason < len(sd.STACK)) & (request <= cut) & (request <= deliv + k * sd.DAY)
    qty = np.where(returned, shop.ret_qty[lines], 0)
    net_unit = (shop.gross[lines] - shop.l_disc[lines]) / shop.l_qty[lines]
    cost = np.where(returned, np.round(net_unit * qty, 2) + shop.ret_ship[lines] + shop.proc[lines], 0.0)
    values = {
        "category": (shop.l_cat[lines], sd.CATEGORIES),
        "channel": (shop.o_channel[order], sd.CHANNELS),
        "region": (shop.o_region[order], sd.REGIONS),
        "customer_type": (np.where(shop.o_first[order], 0, 1), ("first_time", "repeat")),
    }
    # grouped on integer codes (strings in pandas cost most of a replication), labelled once grouped
    monday = np.array([shop.week_monday(int(w)) for w in range(shop.n_weeks)], dtype=object)
    period_name = np.array(["window", "baseline"], dtype=object)
    reason_name = np.asarray(sd.STACK, dtype=object)
    frames = []
    for dim, (code, labels) in values.items():
        slice_name = np.asarray(labels, dtype=object)

        def labelled(df: pd.DataFrame) -> pd.DataFrame:
            out = df.assign(slice_value=slice_name[df["slice_value"].to_numpy()],
                            period=period_name[df["period"].to_numpy()])
            if "week" in out:
                out["week"] = monday[out["week"].to_numpy()]
            if "reason_code" in out:
                out["reason_code"] = reason_name[out["reason_code"].to_numpy()]
            return out

        units = pd.DataFrame({"slice_value": code, "period": period, "week": week_index,
                              "units": shop.l_qty[lines]}).groupby(["slice_value", "period", "week"], as_index=False).units.sum()
        r = pd.DataFrame({"slice_value": code, "period": period, "week": week_index, "reason_code": reason,
                          "customer_id": shop.o_cust[order], "y": qty, "cost": cost})[returned]
        per_customer = r.groupby(["slice_value", "period", "reason_code", "customer_id"], as_index=False).agg(
            y=("y", "sum"), cost=("cost", "sum"))
        events = per_customer.assign(y2=per_customer.y.astype(float) ** 2).groupby(
            ["slice_value", "period", "reason_code"], as_index=False).agg(
            events=("y", "sum"), cost=("cost", "sum"), events_sq=("y2", "sum"), customers=("y", "size"))
        weekly = r.groupby(["slice_value", "period", "reason_code", "week"], as_index=False).agg(events=("y", "sum"))
        frames.append(counts_frame(dim, labelled(units), labelled(events), labelled(weekly)))
    return pd.concat(frames, ignore_index=True)


def shop_week(shop: SeasonShop) -> IsoWeek:
    """The week the shop is read at: its last."""
    return IsoWeek.of(shop.week_monday(shop.n_weeks - 1))


def replication_counts(seed: int, setting: Setting, settings: MetricSettings) -> tuple[pd.DataFrame, Windows]:
    """One shop's counts as step 2 takes them, read at the shop's last week."""
    shop = shop_for(seed, setting)
    week = shop_week(shop)
    windows = windows_of_week(week, settings, first_week=IsoWeek.of(START))
    return shop_counts(shop, week, windows, settings.return_window_days), windows


Flagger = Callable[[pd.DataFrame], pd.DataFrame]


def step2_flags(counts: pd.DataFrame, procedure: str | None = None, fdr: float = FDR,
                week_to_week: bool = True) -> pd.DataFrame:
    """Step 2's flags without its display (funnel limits, shrinkage: seconds a shop): ``cohorts.slice_tests``,
    the exact test at each row's divisor and ``cohorts.q_values``. The same flags as ``weak_cohort_table``
    while no dimension has the 10 slices that overdispersion needs (phi is then never applied; checked).
    ``procedure``, ``fdr`` and ``week_to_week=False`` (the divisor without the weekly wobble) give the
    variants docs/statistics.md compares."""
    t = slice_tests(counts)
    if t.groupby(["dimension", "reason_code"]).size().max() >= 10:
        raise ValueError("a dimension with 10 slices or more: phi may apply, use weak_cohort_table")
    o, n, b, m = (t[c].to_numpy(float) for c in ("events", "units", "baseline_events", "baseline_units"))
    t["divisor"] = t["test_divisor"] if week_to_week else t["design_effect"]
    t["p_value"] = excess_p_value(o, n, b, m, t["divisor"].to_numpy(float))
    t["q_value"] = q_values(t, procedure=procedure)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = n * np.where(b > 0, b, 0.5) / m
    t["flagged"] = (t["q_value"].to_numpy(float) < fdr) & (o > np.nan_to_num(expected, nan=np.inf))
    return t


def outcome(table: pd.DataFrame, setting: Setting) -> bool:
    """A false alarm (null shop: any slice flagged) or a find (spiked shop: its category x reason flagged)."""
    flagged = table[table.flagged.astype(bool)]
    if setting.null:
        return bool(len(flagged))
    return bool(((flagged.dimension == "category") & (flagged.slice_value == setting.category)
                 & (flagged.reason_code == setting.reason)).any())


def measure(setting: Setting, reps: int, seed: int, flaggers: dict[str, Flagger] | None = None,
            settings: MetricSettings | None = None) -> dict[str, Rate]:
    """Share of ``reps`` shops (seeds ``seed``, ``seed + 1``...) with a false alarm or a find, per flag rule
    (default: step 2's, :func:`step2_flags`), each rule on the same shops."""
    settings = settings or load_config().metrics
    flaggers = flaggers or {"step 2": step2_flags}
    hits = dict.fromkeys(flaggers, 0)
    for i in range(reps):
        counts, _ = replication_counts(seed + i, setting, settings)
        for name, flag in flaggers.items():
            hits[name] += outcome(flag(counts), setting)
    return {name: Rate(h, reps) for name, h in hits.items()}


SETTINGS = tuple(Setting(units, wobble, factor) for units in (2_000, 10_000) for wobble in (0.0, 0.1)
                 for factor in (1.0, 2.0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261220)
    args = parser.parse_args(argv)
    for i, setting in enumerate(SETTINGS):
        rates = measure(setting, args.reps, args.seed + 10_000 * i)
        print(f"{setting.describe()}: " + "; ".join(f"{k} {v}" for k, v in rates.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
