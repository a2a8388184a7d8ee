"""The season's shop: the sample shop's generator, with the season as its time dimension.

``SeasonShop(seed, start, history_weeks, season_weeks, units_per_week, truth, wobble=0)`` is a fashion shop over any
start date, number of weeks and size (units a week), its return propensities steady or moving from week to week
(``wobble``: the standard deviation of a weekly factor of mean 1 per category x reason), drawn with the sample
shop's own code (``playbook.dev.sample_data``): its building blocks ``draw_catalogue`` (products, sizes, prices,
costs, SKUs), ``draw_delivery`` (shipping cost, promise, lateness, delivery time), ``stacked_reasons`` (a line's
return reason from one uniform stacked over its category's propensities) and ``return_delay_days`` (the lag of each
reason), which ``generate_shop`` calls too, and its parameters (categories and their seasonal shares, the app
channel's knitwear, discount levels, the return propensities RETURN_PCT by category x reason, costs, contact rates,
the time of day), and its writer (``write_shop``: byte-reproducible gzip CSV). ``tables(as_of, interventions)`` is
the export taken on a week's Sunday 23:59:59: nothing time-stamped after it, a delivery after it empty, a return
requested after it absent.

What is not shared (and why): ``generate_shop`` is the sample's 26 dated weeks with their planted story (its
experiments, promotion, campaign, late-delivery dip, swimwear, odd reason codes, markup texts, and the sessions,
marketing and actions tables), drawn from one stream in an order that must stay byte for byte; the season draws its
orders and lines per week from its own size and calendar, and its story is its truth table (``sim.truth``): the
spikes (the cohorts that really go bad) and the real effects of the levers the team puts under test. Every random
stream is keyed by the seed and its purpose, never by what the team did, so the weeks of one season are one shop:
an export of week w+1 holds the export of week w unchanged (orders, lines, returns and contacts up to its Sunday)
plus the new week; a lever changes only the units it treats.

An intervention (:class:`Intervention`) is a lever applied to a cohort (``category=...;channel=...``) from a day:
under test it treats the customers of its treatment arm (drawn 50/50 per customer, seeded by the experiment id)
until it is decided; kept, it treats every unit of the cohort from its roll-out; rolled back, it ends.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from playbook.data.contract import parse_cohort
from playbook.dev import sample_data as sd
from playbook.sim.truth import Truth

DAY = sd.DAY
CONTACT_CAUSES = ("return", "product_question", "billing", "other")
CONTACT_CAUSE_P = np.array([0.40, 0.30, 0.12, 0.18])
#: units per order in the sample shop (1.64 lines of 1.08 units)
UNITS_PER_ORDER = 1.64 * 1.08


def _seconds(day: dt.date) -> int:
    return int(np.datetime64(day.isoformat(), "s").astype("int64"))


def _stream(seed: int, *purpose: int | str) -> np.random.Generator:
    """A generator keyed by the seed and a purpose: what the team does never moves another stream's draws."""
    key = [int(seed)] + [p if isinstance(p, int) else int(hashlib.sha256(p.encode()).hexdigest()[:8], 16)
                         for p in purpose]
    return np.random.default_rng(key)


@dataclass(frozen=True)
class Intervention:
    """A lever on a cohort: from ``start`` (a date) until ``end`` (exclusive; None: still on). ``experiment_id``
    set: under test, treating its treatment arm only; None: rolled out to every unit of the cohort."""

    lever: str
    cohort: str
    start: dt.date
    end: dt.date | None = None
    experiment_id: str | None = None
    whole_cohort: bool = False  # a pre/post test treats the whole cohort

    @property
    def rolled_out(self) -> bool:
        return self.experiment_id is None

    def on(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


class SeasonShop:
    """The shop of a season (module docstring). The draws that do not depend on the team are made once."""

    def __init__(self, seed: int, start: dt.date, history_weeks: int, season_weeks: int, units_per_week: float,
                 truth: Truth, wobble: float = 0.0):
        if start.weekday() != 0:
            raise ValueError(f"a shop starts on a Monday, not on {start:%A %Y-%m-%d}")
        if not 0.0 <= wobble < 1.0:
            raise ValueError(f"wobble {wobble}: the weekly spread of the return propensities is a share in [0, 1)")
        self.seed, self.start, self.truth = seed, start, truth
        self.history_weeks, self.season_weeks = history_weeks, season_weeks
        self.n_weeks = history_weeks + season_weeks
        self.units_per_week = float(units_per_week)
        self.wobble = float(wobble)
        self.start_s = _seconds(start)
        self._draw()

    # --- the calendar ---------------------------------------------------------------------------------------
    def week_monday(self, index: int) -> dt.date:
        """The Monday of week ``index`` (0 = the first week of history)."""
        return self.start + dt.timedelta(weeks=index)

    def season_week(self, i: int) -> dt.date:
        """The Monday of the season's week ``i`` (0 = its first week)."""
        return self.week_monday(self.history_weeks + i)

    def cut_seconds(self, sunday: dt.date) -> int:
        return _seconds(sunday) + DAY - 1

    # --- the draws that do not depend on the team -------------------------------------------------------------
    def _draw(self) -> None:
        seed, T = self.seed, self.n_weeks
        orders_pw = self.units_per_week / UNITS_PER_ORDER
        rng = _stream(seed, "shop")
        n_pool = max(2_000, int(round(sd.N_CUSTOMER_POOL * orders_pw / sd.ORDERS_PER_WEEK)))
        activity = rng.gamma(0.6, 1.0, size=n_pool)
        activity /= activity.sum()
        cust_region = rng.choice(len(sd.REGIONS), size=n_pool, p=sd.REGION_P)
        cust_channel = rng.choice(len(sd.CHANNELS), size=n_pool, p=sd.CHANNEL_P)
        days = np.arange(7 * T)
        week = days // 7
        lam = orders_pw / 7 * sd.DOW_FACTOR[days % 7] / sd.DOW_FACTOR.mean() * (1 + 0.05 * week / max(T - 1, 1))
        o_day = np.repeat(days, rng.poisson(lam))
        o_s = self.start_s + o_day * DAY + sd._time_of_day(rng, o_day.size)
        o_cust = rng.choice(n_pool, size=o_day.size, p=activity)
        own = rng.random(o_day.size) < 0.75
        o_channel = np.where(own, cust_channel[o_cust], rng.choice(len(sd.CHANNELS), size=o_day.size, p=sd.CHANNEL_P))
        sort = np.lexsort((o_cust, o_s))
        o_day, o_s, o_cust, o_channel = (a[sort] for a in (o_day, o_s, o_cust, o_channel))
        o_region = cust_region[o_cust]
        n_o = o_day.size
        o_first = np.zeros(n_o, bool)  # the customer's first order (customer_type first_time, else repeat)
        o_first[np.unique(o_cust, return_index=True)[1]] = True

        n_lines = rng.choice([1, 2, 3, 4], size=n_o, p=[0.56, 0.29, 0.10, 0.05])
        l_order = np.repeat(np.arange(n_o), n_lines)
        n_l = l_order.size
        t = (np.arange(T) / max(T - 1, 1))[:, None]
        share = sd.CAT_SHARE_W0 * (1 - t) + sd.CAT_SHARE_W25 * t
        cum = np.cumsum(share / share.sum(axis=1, keepdims=True), axis=1)
        l_day = o_day[l_order]
        l_cat = sd._choice_rows(rng, cum[l_day // 7])
        to_knit = rng.random(n_l) < sd.APP_KNITWEAR_EXTRA
        l_cat[to_knit & (o_channel[l_order] == sd.APP)] = sd.KNITWEAR
        l_qty = rng.choice([1, 2, 3], size=n_l, p=[0.93, 0.06, 0.01])

        l_prod, l_size, l_price, l_ucost, sku = sd.draw_catalogue(rng, l_cat)
        p_disc = sd.BASE_DEPTH[l_cat] / sd.MEAN_LEVEL
        level = sd.DISCOUNT_LEVELS[rng.choice(len(sd.DISCOUNT_LEVELS), size=n_l, p=sd.DISCOUNT_LEVEL_P)]
        depth = np.where(rng.random(n_l) < p_disc, level, 0.0)
        gross = l_price * l_qty
        l_disc = np.round(gross * depth, 2)

        ship, promise, late, deliv_s = sd.draw_delivery(rng, o_day, o_region, l_order, l_cat,
                                                        np.full(n_o, sd.ON_TIME_P), self.start_s)
        lost = rng.random(n_o) < sd.LOST_P
        deliv_s = np.where(lost, -1, deliv_s)

        # the return propensities by category x reason, with the truth's spikes
        rates = sd.RETURN_PCT[l_cat].copy()
        rates[:, sd.R_IDX["late_delivery"]] += np.where(late[l_order], sd.LATE_EXTRA_P, 0.0)
        for s in self.truth.spikes:
            on = (l_cat == sd.CATEGORIES.index(s.category)) & (l_day >= 7 * s.from_week)
            rates[on, sd.R_IDX[s.reason]] *= s.factor
        if self.wobble > 0:
            # a real shop's propensities move from week to week (weather, batches, campaigns) beyond binomial
            # noise: a log-normal factor of mean 1 and spread ``wobble`` per order week x category x reason,
            # from a stream of its own so that a shop without wobble keeps every draw
            z = _stream(seed, "wobble").standard_normal((T, len(sd.CATEGORIES), len(sd.STACK)))
            s2 = np.log1p(self.wobble ** 2)  # the log-normal whose factor has standard deviation ``wobble``
            rates *= np.exp(np.sqrt(s2) * z - s2 / 2)[l_day // 7, l_cat]
        rng_r = _stream(seed, "returns")
        ret_u = rng_r.random(n_l)
        self.reason = sd.stacked_reasons(rates, ret_u)  # len(STACK): no return
        self.rates = rates
        self.harm_u = rng_r.random(n_l)
        self.delay_u = rng_r.random(n_l)
        part_u = rng_r.random(n_l)
        partial = (l_qty > 1) & (part_u < 0.3)
        self.ret_qty = np.where(partial, 1 + np.floor(part_u / 0.3 * (l_qty - 1)).astype(np.int64), l_qty)
        self.res_u = rng_r.random(n_l)
        self.ret_ship = np.round(rng_r.uniform(4.0, 7.0, n_l), 2)
        self.proc = np.round(rng_r.uniform(1.5, 3.0, n_l), 2)
        self.text_u = rng_r.random(n_l)
        self.text_pick = rng_r.integers(0, 1_000_000, n_l)

        rng_c = _stream(seed, "contacts")
        self.contact_u = rng_c.random(n_o)
        self.contact_lever_u = rng_c.random(n_o)
        self.contact_after = rng_c.random(n_o)
        self.contact_cause = rng_c.choice(len(CONTACT_CAUSES), size=n_o, p=CONTACT_CAUSE_P)
        self.contact_cost = np.round(4.5 + rng_c.uniform(-1.0, 3.0, n_o), 2)

        self.n_pool = n_pool
        self.o_day, self.o_s, self.o_cust, self.o_channel, self.o_region = o_day, o_s, o_cust, o_channel, o_region
        self.o_first = o_first
        self.ship, self.promise, self.deliv_s, self.late, self.lost = ship, promise, deliv_s, late, lost
        self.l_order, self.l_day, self.l_cat, self.l_qty = l_order, l_day, l_cat, l_qty
        self.sku, self.l_price, self.l_ucost, self.l_disc, self.gross = sku, l_price, l_ucost, l_disc, gross
        self.order_ids = sd._ids("ORD-", n_o, 7)
        self.line_ids = sd._ids("LN-", n_l, 7)

    # --- the team's levers ------------------------------------------------------------------------------------
    def arm(self, experiment_id: str) -> np.ndarray:
        """1 for the customers of the treatment arm of ``experiment_id``, 0 for control (50/50, seeded)."""
        return (_stream(self.seed, "arm", experiment_id).random(self.n_pool) < 0.5).astype(np.int8)

    def cohort_lines(self, cohort: str) -> np.ndarray:
        """The lines of a cohort (``category=...``, ``channel=...``, ``region=...``, ``customer_type=first_time`` or
        ``repeat``, ``sku=...``; empty: every line), as step 2 slices them."""
        mask = np.ones(self.l_order.size, bool)
        for col, value in parse_cohort(cohort or "").items():
            if col == "category":
                mask &= self.l_cat == (sd.CATEGORIES.index(value) if value in sd.CATEGORIES else -1)
            elif col == "channel":
                mask &= self.o_channel[self.l_order] == (sd.CHANNELS.index(value) if value in sd.CHANNELS else -1)
            elif col == "region":
                mask &= self.o_region[self.l_order] == (sd.REGIONS.index(value) if value in sd.REGIONS else -1)
            elif col == "customer_type":
                first = self.o_first[self.l_order]
                mask &= first if value == "first_time" else ~first if value == "repeat" else False
            elif col == "sku":
                mask &= self.sku == value
            elif col != "reason_code":
                mask &= False
        return mask

    def treated(self, iv: Intervention) -> np.ndarray:
        """The lines ``iv`` treats."""
        first = (iv.start - self.start).days
        last = (iv.end - self.start).days if iv.end is not None else 10**9
        mask = self.cohort_lines(iv.cohort) & (self.l_day >= first) & (self.l_day < last)
        if not iv.rolled_out and not iv.whole_cohort:
            mask &= self.arm(iv.experiment_id)[self.o_cust[self.l_order]] == 1
        return mask

    def outcomes(self, interventions: list[Intervention]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reason per line, len(STACK) for none; lag factor per line; extra contact probability per order)."""
        reason = self.reason.copy()
        lag = np.ones(reason.size)
        extra_contact = np.zeros(self.o_day.size)
        none = len(sd.STACK)
        for i, iv in enumerate(interventions):
            on = self.treated(iv)
            if not on.any():
                continue
            u = _stream(self.seed, "effect", iv.experiment_id or f"rollout:{iv.lever}:{iv.cohort}", i).random(reason.size)
            for entry in self.truth.effects(iv.lever):
                e, r = entry.effect, sd.R_IDX[entry.reason]
                here = on & (self.l_cat == sd.CATEGORIES.index(entry.category))
                if e.kind == "works":
                    reason[here & (reason == r) & (u < e.share)] = none
                elif e.kind == "harms":
                    p = self.rates[:, r] * e.share / np.maximum(1 - self.rates.sum(axis=1), 0.05)
                    reason[here & (reason == none) & (self.harm_u < p)] = r
                elif e.kind == "delays":
                    lag[here & (self.reason == r)] *= e.lag
                elif e.kind == "contacts":
                    orders = np.unique(self.l_order[here])
                    extra_contact[orders] = np.maximum(extra_contact[orders], e.share)
        return reason, lag, extra_contact

    # --- the export of a week -------------------------------------------------------------------------------
    def tables(self, sunday: dt.date, interventions: list[Intervention] = (),
               experiments: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
        """The export taken on ``sunday`` 23:59:59 with the team's levers applied: orders, order_lines,
        returns, contacts, and the assignments of the experiments under test (``experiments``: the
        experiments table, whose rows are written as they are)."""
        cut = self.cut_seconds(sunday)
        reason, lag, extra_contact = self.outcomes(list(interventions))
        keep_o = self.o_s <= cut
        n_o = int(keep_o.sum())  # orders are sorted by time: the first n_o
        keep_l = self.l_order < n_o
        n_l = int(keep_l.sum())
        deliv = np.where(self.deliv_s <= cut, self.deliv_s, -1)[:n_o]
        orders = pd.DataFrame({
            "order_id": self.order_ids[:n_o],
            "order_ts": sd._ts(self.o_s[:n_o]),
            "customer_id": sd._customer_ids(self.o_cust[:n_o]),
            "channel": np.asarray(sd.CHANNELS)[self.o_channel[:n_o]],
            "region": np.asarray(sd.REGIONS)[self.o_region[:n_o]],
            "promised_delivery_date": (self.start_s + (self.o_day[:n_o] + self.promise[:n_o]) * DAY).astype("datetime64[s]"),
            "delivered_ts": sd._ts(deliv),
            "shipping_cost": self.ship[:n_o],
        })
        order_lines = pd.DataFrame({
            "line_id": self.line_ids[:n_l],
            "order_id": self.order_ids[self.l_order[:n_l]],
            "sku": self.sku[:n_l].astype(str),
            "category": np.asarray(sd.CATEGORIES)[self.l_cat[:n_l]],
            "quantity": self.l_qty[:n_l].astype("int64"),
            "unit_price": np.round(self.l_price[:n_l], 2),
            "discount_amount": self.l_disc[:n_l],
            "unit_cost": self.l_ucost[:n_l],
        })
        # returns: the lag of each reason (sample_data.DELAY), stretched by a lever that only delays
        r = reason[:n_l]
        delivered = self.deliv_s[self.l_order[:n_l]] >= 0
        returned = (r < len(sd.STACK)) & delivered
        delay_days = sd.return_delay_days(self.delay_u[:n_l], r, self.l_cat[:n_l]) * lag[:n_l]
        req_s = self.deliv_s[self.l_order[:n_l]] + np.round(delay_days * DAY).astype(np.int64)
        r_line = np.flatnonzero(returned & (req_s <= cut))
        r_line = r_line[np.lexsort((r_line, req_s[r_line]))]
        r_reason = np.asarray(sd.STACK, dtype=object)[r[r_line]]
        qty = self.ret_qty[r_line]
        net_unit = (self.gross[r_line] - self.l_disc[r_line]) / self.l_qty[r_line]
        is_size = np.isin(r[r_line], [sd.R_IDX["size_too_small"], sd.R_IDX["size_too_large"]])
        p_refund = np.where(is_size, 0.55, 0.75)
        ru = self.res_u[r_line]
        texts = np.empty(r_line.size, dtype=object)
        for name in sd.STACK:
            m = r_reason == name
            opts = np.asarray(sd.REASON_TEXTS[name], dtype=object)
            texts[m] = opts[self.text_pick[r_line][m] % len(opts)]
        texts[self.text_u[r_line] < sd.TEXT_EMPTY_P] = np.nan
        returns = pd.DataFrame({
            "return_id": np.char.add("RET-", self.line_ids[r_line].astype(str)),
            "line_id": self.line_ids[r_line],
            "requested_ts": sd._ts(req_s[r_line]),
            "quantity": qty.astype("int64"),
            "reason_code": r_reason.astype(str),
            "reason_text": pd.Series(texts, dtype="str"),
            "refund_amount": np.round(net_unit * qty, 2),
            "return_shipping_cost": self.ret_ship[r_line],
            "processing_cost": self.proc[r_line],
            "resolution": np.where(ru < p_refund, "refund", np.where(ru < p_refund + 0.3, "exchange", "store_credit")),
        })
        contacts = self._contacts(cut, n_o, extra_contact)
        tables = {"orders": orders, "order_lines": order_lines, "returns": returns, "contacts": contacts}
        if experiments is not None and len(experiments):
            tables["experiments"] = experiments
            tables["assignments"] = self.assignments(experiments, interventions, cut)
        return tables

    def contact_kinds(self, n_o: int, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which of the first ``n_o`` orders lead to a base contact, a where-is-my-order contact (late or lost
        parcels) and a contact the levers cause (``extra``: their added probability per order)."""
        late, lost = self.late[:n_o], self.lost[:n_o]
        u = self.contact_u[:n_o]
        base = u < sd.CONTACT_BASE_P
        wismo = ~base & (u < sd.CONTACT_BASE_P + np.where(lost, sd.CONTACT_LOST_P, np.where(late, sd.CONTACT_LATE_P, 0)))
        return base, wismo, ~base & ~wismo & (self.contact_lever_u[:n_o] < extra[:n_o])

    def _contacts(self, cut: int, n_o: int, extra: np.ndarray) -> pd.DataFrame:
        """Contacts: a base share of orders (sample_data.CONTACT_BASE_P), far more for late or lost parcels
        (where is my order), and the extra ones a lever causes, a few days after the delivery."""
        base, wismo, lever = self.contact_kinds(n_o, extra)
        deliv = self.deliv_s[:n_o]
        after = self.contact_after[:n_o]
        promised_s = self.start_s + (self.o_day[:n_o] + self.promise[:n_o]) * DAY
        ts = np.where(wismo, promised_s + 8 * 3600 + after * 2.5 * DAY,
                      np.where(deliv >= 0, deliv + 1800 + after * 6 * DAY, self.o_s[:n_o] + 1800 + after * 5 * DAY))
        ts = ts.astype(np.int64)
        cause = np.where(wismo, "wismo", np.asarray(CONTACT_CAUSES, dtype=object)[self.contact_cause[:n_o]])
        cause = np.where(lever, "product_question", cause)
        pick = np.flatnonzero((base | wismo | lever) & (ts <= cut))
        pick = pick[np.argsort(ts[pick], kind="stable")]
        return pd.DataFrame({
            "contact_id": np.char.add("CT-", self.order_ids[pick].astype(str)),
            "contact_ts": sd._ts(ts[pick]),
            "order_id": self.order_ids[pick],
            "cause": cause[pick].astype(str),
            "cost": np.where(cause[pick] == "wismo", 3.2, self.contact_cost[pick]),
        })

    def assignments(self, experiments: pd.DataFrame, interventions, cut: int) -> pd.DataFrame:
        """50/50 assignments of each randomized experiment under test: every customer who ordered a unit of
        its cohort from its start (and before its exposure ended and the cut), assigned a few minutes before
        that first order, in the arm :meth:`arm` drew."""
        rows = []
        ends = {iv.experiment_id: iv.end for iv in interventions if iv.experiment_id}
        lead = _stream(self.seed, "assign-lead").integers(60, 90 * 60, size=self.n_pool)
        for exp in experiments.to_dict("records"):
            eid = str(exp["experiment_id"])
            if str(exp.get("design")) != "randomized" or eid not in ends:
                continue
            start = pd.Timestamp(exp["start_date"]).date()
            first = (start - self.start).days
            end = ends[eid]
            last = (end - self.start).days if end is not None else 10**9
            lines = np.flatnonzero(self.cohort_lines(str(exp.get("cohort") or "")) & (self.l_day >= first)
                                   & (self.l_day < last) & (self.o_s[self.l_order] <= cut))
            if not lines.size:
                continue
            o = self.l_order[lines]
            cust, idx = np.unique(self.o_cust[o], return_index=True)
            first_s = self.o_s[o][idx]  # lines are in time order: the first is the first order
            ts = np.maximum(first_s - lead[cust], self.start_s + first * DAY)
            arm = self.arm(eid)[cust]
            order = np.lexsort((cust, ts))
            rows.append(pd.DataFrame({
                "experiment_id": eid,
                "customer_id": sd._customer_ids(cust[order]),
                "variant": np.where(arm[order] == 1, "treatment", "control"),
                "assigned_ts": sd._ts(ts[order]),
            }))
        if not rows:
            return pd.DataFrame({"experiment_id": pd.Series(dtype=str), "customer_id": pd.Series(dtype=str),
                                 "variant": pd.Series(dtype=str), "assigned_ts": pd.Series(dtype="datetime64[s]")})
        return pd.concat(rows, ignore_index=True)


def write_tables(tables: dict[str, pd.DataFrame], folder: str | Path, skip: tuple[str, ...] = ("experiments",)) -> None:
    """The export as the sample's gzip CSV files (``sample_data.write_shop``); the experiments table is the team's
    (``playbook experiments add/close`` write it), so it is not rewritten here."""
    sd.write_shop({k: v for k, v in tables.items() if k not in skip}, folder)


def true_saving_per_week(shop: SeasonShop, lever: str, cohort: str, first: dt.date, weeks: int) -> float:
    """What ``lever`` rolled out to the whole ``cohort`` really saves per week, in return costs (refund, return
    shipping and processing of the returns it prevents, less those it adds), over ``weeks`` weeks of orders from
    ``first``: the shop's own counterfactual, every return counted whenever it comes (a lever that only delays
    returns saves nothing)."""
    base = shop.outcomes([])[0]
    after = shop.outcomes([Intervention(lever, cohort, first, first + dt.timedelta(weeks=weeks))])[0]
    none = len(sd.STACK)
    delivered = shop.deliv_s[shop.l_order] >= 0
    cost = ((shop.gross - shop.l_disc) / shop.l_qty * shop.ret_qty + shop.ret_ship + shop.proc)
    prevented = delivered & (base < none) & (after == none)
    added = delivered & (base == none) & (after < none)
    return float(cost[prevented].sum() - cost[added].sum()) / weeks


def true_contact_rise(shop: SeasonShop, lever: str, cohort: str, first: dt.date, weeks: int) -> float:
    """How much ``lever`` rolled out to the whole ``cohort`` raises its contact rate (contacts per order of the
    cohort, the randomized guardrail's unit), over ``weeks`` weeks of orders from ``first``: the contacts it
    causes on the shop's own draws, divided by the cohort's orders."""
    iv = Intervention(lever, cohort, first, first + dt.timedelta(weeks=weeks))
    orders = np.unique(shop.l_order[shop.treated(iv)])
    if not orders.size:
        return 0.0
    _, _, extra = shop.outcomes([iv])
    _, _, caused = shop.contact_kinds(shop.o_day.size, extra)
    return float(caused[orders].mean())
