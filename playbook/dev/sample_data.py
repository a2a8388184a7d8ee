"""The seeded synthetic sample shop: nine contract tables with planted, documented facts.

``generate_shop(seed)`` builds 26 ISO weeks (2026-W22 .. 2026-W47) of a mid-size fashion
shop as it looked in an export taken at 2026-11-22 23:59:59 (the cut): nothing is
time-stamped after the cut, a delivery after the cut is empty (not delivered yet) and a
return requested after the cut does not exist yet. ``write_shop`` writes the tables as
byte-reproducible ``<table>.csv.gz`` files. The planted facts the analysis must find are
listed in ``data_samples/README.md`` and checked by ``tests/test_sample_data.py``:

1. ``knitwear x size_too_small`` triples for orders from 2026-W41 on (the weak cohort);
2. the tiny category ``swimwear`` (3-7 units a week) has a high but noisy return rate;
3. a shop-wide promotion adds 3 points of discount depth in 2026-W47;
4. orders placed in 2026-W46 and 2026-W47 arrive late more often (on-time below 90 %);
5. the randomized experiment ``EXP-2026-W46-SHOES-FIT`` cuts size returns of shoes by 60 %;
6. the pre/post change ``EXP-2026-W46-OUTERWEAR-PROMO`` cuts outerwear discount depth by
   4 points from 2026-11-09;
7. an older experiment ``EXP-2026-W41-DRESSES-PHOTOS`` (no effect, stopped) for history;
9. a size guide on dresses, ``EXP-2026-W43-DRESSES-SIZE-GUIDE`` (randomized), cancels 80 % of the size
   returns of its treated customers; planned for three weekly looks, its review date falls in 2026-W47,
   where it is read with the whole of its planned information (a keep at its review date);
10. a fit-photo test on jeans, ``EXP-2026-W45-JEANS-FIT-PHOTOS`` (randomized, no effect), planned for
   three weekly looks up to its review on 2026-11-30: on 2026-W47 it is read at its first look, a third of
   its planned information, and is not conclusive yet (continue).

Facts 9 and 10 draw from generators of their own (their assignments and the size guide's cut), so every
other table is the same shop draw for draw as without them.
8. app customers buy knitwear far more often (45 % of app lines are turned into knitwear), so the
   app channel's size returns rise with the knitwear spike: step 2 must name knitwear and show
   the app channel as explained by it.

``planted_effects=False`` gives the A/A variant: the same shop draw for draw, except that
facts 5, 6 and 9 have no effect.

CLI: ``python -m playbook.dev.sample_data --out data_samples [--aa] [--seed N]``.

Everything is vectorized with one seeded ``numpy.random.Generator``; every random draw is
taken whatever ``planted_effects`` says, so the two variants differ only where an effect
is applied.
"""
from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from playbook.core import atomic
from playbook.core.paths import DATA_SAMPLES_DIR, resolve
from playbook.data.contract import ALL_TABLES, TABLES

DEFAULT_SEED = 20261122

# --- calendar ---------------------------------------------------------------------------
START = np.datetime64("2026-05-25", "s")  # Monday of 2026-W22
N_WEEKS = 26
N_DAYS = 7 * N_WEEKS  # up to Sunday 2026-11-22 (2026-W47)
FIRST_ISO_WEEK = 22
CUT = np.datetime64("2026-11-22T23:59:59", "s")  # the export was taken here
DAY = 86_400
_START_S = START.astype("int64")
_CUT_S = CUT.astype("int64")

# Day index (0 = 2026-05-25) of the dates the story turns on.
def _day(date: str) -> int:
    return int((np.datetime64(date, "D") - START.astype("datetime64[D]")).astype(int))


KNIT_SPIKE_FROM = _day("2026-10-05")  # Monday of 2026-W41
OLD_EXP_START, OLD_EXP_END = _day("2026-10-05"), _day("2026-10-12")  # inclusive
EXP_START, EXP_END = _day("2026-11-09"), _day("2026-11-16")  # inclusive (W46 Mon .. W47 Mon)
LATE_DIP_FROM = _day("2026-11-09")  # orders of 2026-W46 and 2026-W47
PROMO_WEEK = N_WEEKS - 1  # 2026-W47 (week index 25)

# --- shop parameters --------------------------------------------------------------------
ORDERS_PER_WEEK = 1480.0
N_CUSTOMER_POOL = 50_000
CHANNELS = ("web", "app", "marketplace", "store")
CHANNEL_P = np.array([0.46, 0.29, 0.15, 0.10])
REGIONS = ("north", "south", "east", "west", "international")
REGION_P = np.array([0.24, 0.26, 0.20, 0.22, 0.08])

CATEGORIES = ("shoes", "dresses", "knitwear", "jeans", "tops", "outerwear", "accessories", "swimwear")
SHOES, DRESSES, KNITWEAR, JEANS, TOPS, OUTERWEAR, ACCESSORIES, SWIMWEAR = range(8)
# Line share of the seven main categories at week 0 and at week 25 (linear in between):
# autumn moves demand from dresses and tops to knitwear and outerwear.
CAT_SHARE_W0 = np.array([0.22, 0.16, 0.08, 0.13, 0.21, 0.05, 0.15])
CAT_SHARE_W25 = np.array([0.22, 0.10, 0.14, 0.13, 0.15, 0.11, 0.15])
SWIM_UNITS_PER_WEEK = (3, 7)  # inclusive bounds; one unit per swimwear line

SKU_PREFIX = ("SHO", "DRS", "KNT", "JNS", "TOP", "OUT", "ACC", "SWM")
N_PRODUCTS = (120, 140, 90, 70, 180, 60, 150, 12)
PRICE_MEDIAN = (79.0, 59.0, 65.0, 69.0, 29.0, 139.0, 24.0, 39.0)
SIZES = {
    SHOES: (("36", "37", "38", "39", "40", "41", "42", "43", "44", "45"),
            (0.04, 0.08, 0.12, 0.14, 0.14, 0.14, 0.13, 0.10, 0.07, 0.04)),
    JEANS: (("26", "28", "30", "32", "34", "36"), (0.10, 0.20, 0.25, 0.22, 0.15, 0.08)),
    ACCESSORIES: (("OS",), (1.0,)),
}
APPAREL_SIZES = (("XS", "S", "M", "L", "XL"), (0.10, 0.27, 0.32, 0.21, 0.10))
# Outbound shipping cost added per line, by category (weight and volume).
SHIP_PER_LINE = np.array([0.90, 0.30, 0.50, 0.50, 0.20, 1.20, 0.10, 0.10])

# Discounts: a line is discounted with probability base / mean level; the level is drawn
# from DISCOUNT_LEVELS. Depth = discount_amount / (unit_price * quantity).
BASE_DEPTH = np.array([0.090, 0.100, 0.090, 0.085, 0.100, 0.100, 0.070, 0.090])
DISCOUNT_LEVELS = np.array([0.10, 0.15, 0.20, 0.25, 0.30, 0.40])
DISCOUNT_LEVEL_P = np.array([0.20, 0.20, 0.25, 0.15, 0.12, 0.08])
MEAN_LEVEL = float(DISCOUNT_LEVELS @ DISCOUNT_LEVEL_P)
PROMO_EXTRA_DEPTH = 0.03  # 2026-W47: extra 3 % off every line, shop-wide
OUTERWEAR_DEPTH_DROP = 0.04
SWIMWEAR_MARKDOWN = 0.10  # every swimwear line carries the same end-of-season markdown

# Delivery: promise of 3-4 days; on time with these probabilities.
ON_TIME_P = 0.965
ON_TIME_P_DIP = 0.83  # orders placed in 2026-W46 and 2026-W47
LOST_P = 0.005

# Returns. Reasons in the order their probabilities are stacked on one uniform draw: the
# variable ones (late_delivery, size_too_small) come last so that raising them adds
# returns without moving any other reason.
STACK = ("not_as_described", "damaged_defective", "wrong_item", "changed_mind", "quality",
         "other", "size_too_large", "late_delivery", "size_too_small")
R_IDX = {r: i for i, r in enumerate(STACK)}
# Per-line return probability (%) by category (rows, CATEGORIES order) and reason (STACK order).
RETURN_PCT = np.array([
    # nad  dmg  wrong chg  qual other large late small
    [2.0, 0.8, 0.5, 2.0, 0.8, 0.4, 12.0, 0.4, 13.0],  # shoes        ~32 %
    [4.5, 0.5, 0.4, 3.5, 1.5, 0.4, 4.5, 0.3, 4.5],   # dresses      ~20 %
    [2.0, 0.4, 0.3, 2.0, 2.5, 0.5, 2.5, 0.3, 3.0],   # knitwear     ~13.5 %
    [1.5, 0.3, 0.3, 1.8, 1.0, 0.3, 5.5, 0.3, 5.5],   # jeans        ~16.5 %
    [2.0, 0.3, 0.3, 2.5, 1.0, 0.3, 2.0, 0.2, 2.0],   # tops         ~10.6 %
    [2.5, 0.5, 0.3, 2.0, 1.5, 0.3, 2.5, 0.3, 2.5],   # outerwear    ~12.4 %
    [1.0, 1.0, 0.3, 1.2, 0.4, 0.2, 0.0, 0.1, 0.0],   # accessories  ~4.2 %
    [6.0, 1.0, 0.5, 7.0, 2.0, 1.0, 10.0, 0.5, 12.0],  # swimwear    ~40 %
]) / 100.0
LATE_EXTRA_P = 0.04  # extra late_delivery returns when the parcel arrived late
APP = CHANNELS.index("app")
APP_KNITWEAR_EXTRA = 0.45  # share of app lines turned into knitwear (fact 8: correlated dimensions)
KNIT_SMALL_SPIKE_P = 0.10  # knitwear size_too_small from 2026-W41 orders on (was 0.03)
SHOES_FIT_CUT = 0.60  # EXP-2026-W46-SHOES-FIT: treatment cancels 60 % of size returns
# Days from delivery to the return request: truncated lognormal (median, sigma) per reason.
DELAY = {
    "not_as_described": (10.0, 0.55), "damaged_defective": (3.0, 0.5), "wrong_item": (3.0, 0.5),
    "changed_mind": (13.0, 0.5), "quality": (14.0, 0.55), "other": (12.0, 0.6),
    "size_too_large": (6.5, 0.55), "late_delivery": (3.0, 0.5), "size_too_small": (6.5, 0.55),
}
SHOES_SIZE_DELAY_MEDIAN = 3.5  # shoes are tried on at once: size returns come fastest
DELAY_MIN, DELAY_MAX = 1.0, 30.0

N_OFF_TAXONOMY = 15
OFF_TAXONOMY_CODES = ("too_big", "SIZE", "wrong-size", "defect", "fit", "not_needed", "Colour")
N_MARKUP_TEXTS = 12
MARKUP_TEXTS = (  # (text, the reason it is written on, the category or None for any)
    ("<b>way too small</b>", "size_too_small", None),
    ('<script>alert("x")</script>', "other", None),
    ('Fits "small" & tight', "size_too_small", None),
    ("<i>colour</i> not as <u>pictured</u>", "not_as_described", None),
    ("size 38 -> 39 <= still small & narrow", "size_too_small", SHOES),
    ("<img src=x onerror=alert(1)>", "quality", None),
)
REASON_TEXTS = {
    "size_too_small": ("too small", "runs small, need one size up", "tight at the shoulders",
                       "Größe fällt klein aus", "pinches at the toes", "sleeves too short"),
    "size_too_large": ("too big", "runs large", "loose around the waist", "size down needed",
                       "heel slips out", "way too long"),
    "not_as_described": ("colour differs from the photo", "fabric not as described",
                         "looks different online", "thinner than expected"),
    "damaged_defective": ("arrived with a hole", "broken zip", "stain on the front",
                          "sole coming off"),
    "wrong_item": ("received the wrong size", "wrong colour sent", "not what I ordered"),
    "late_delivery": ("arrived too late for the event", "took far too long",
                      "needed it last week"),
    "changed_mind": ("changed my mind", "don't need it anymore", "found a better one",
                     "ordered two, keeping one"),
    "quality": ("poor stitching", "pilled after one wash", "cheap material"),
    "other": ("other", "gift, not wanted", "see email"),
}
TEXT_EMPTY_P = 0.35

CONTACT_BASE_P = 0.065
CONTACT_LATE_P = 0.28
CONTACT_LOST_P = 0.60
CONTACT_CAUSE_P = {"wismo": 0.20, "return": 0.30, "product_question": 0.18, "damaged": 0.10,
                   "billing": 0.10, "other": 0.12}
CONTACT_NO_COST_P = 0.20
CONVERSION = {"web": 0.032, "app": 0.041, "marketplace": 0.037, "store": 0.030}
SPEND_BASE = {"web": 1150.0, "app": 640.0, "marketplace": 380.0, "store": 160.0}
DOW_FACTOR = np.array([1.08, 1.00, 0.97, 0.95, 0.92, 0.94, 1.14])

CAMPAIGN_SHOES_ORDERS_PER_DAY = 150.0  # extra shoes-led orders a day, 2026-11-09 .. 11-16
ASSIGNED_NON_BUYER_SHARE = 0.35  # logged-in visitors who did not order, relative to buyers

SIZE_GUIDE_START, SIZE_GUIDE_REVIEW = _day("2026-10-19"), _day("2026-11-16")
SIZE_GUIDE_CUT = 0.80  # EXP-2026-W43-DRESSES-SIZE-GUIDE: treatment cancels 80 % of dresses' size returns
JEANS_START, JEANS_REVIEW = _day("2026-11-02"), _day("2026-11-30")
LOOKS_SEED_OFFSET = 4401  # facts 9 and 10 draw from their own generator: the rest of the shop keeps every draw

#: The experiments table. Each row carries the weeks step 2 read when it chose the cohort (the selection
#: columns) and its plan's looks; a randomized row carries the information (customers per arm with a unit
#: followed for its window) its plan was sized for, filled in by ``_planned_information``.
EXPERIMENTS = (
    dict(experiment_id="EXP-2026-W41-DRESSES-PHOTOS", lever="better_product_photos",
         cohort="category=dresses", design="randomized", control_cohort=None,
         primary_metric="return_rate_14d", expected_low=-0.03, expected_high=-0.01,
         start_date="2026-10-05", review_date="2026-10-12", selection_first_week="2026-W27",
         selection_window_week="2026-W35", selection_last_week="2026-W38", planned_looks=1),
    dict(experiment_id="EXP-2026-W43-DRESSES-SIZE-GUIDE", lever="size_guide",
         cohort="category=dresses", design="randomized", control_cohort=None,
         primary_metric="return_rate_14d", expected_low=-0.07, expected_high=-0.03,
         start_date="2026-10-19", review_date="2026-11-16", selection_first_week="2026-W29",
         selection_window_week="2026-W37", selection_last_week="2026-W40", planned_looks=3),
    dict(experiment_id="EXP-2026-W45-JEANS-FIT-PHOTOS", lever="fit_photos",
         cohort="category=jeans", design="randomized", control_cohort=None,
         primary_metric="return_rate_14d", expected_low=-0.05, expected_high=-0.02,
         start_date="2026-11-02", review_date="2026-11-30", selection_first_week="2026-W31",
         selection_window_week="2026-W39", selection_last_week="2026-W42", planned_looks=3),
    dict(experiment_id="EXP-2026-W46-SHOES-FIT", lever="fit_size_message",
         cohort="category=shoes", design="randomized", control_cohort=None,
         primary_metric="return_rate_14d", expected_low=-0.06, expected_high=-0.02,
         start_date="2026-11-09", review_date="2026-11-16", selection_first_week="2026-W32",
         selection_window_week="2026-W40", selection_last_week="2026-W43", planned_looks=1),
    dict(experiment_id="EXP-2026-W46-OUTERWEAR-PROMO", lever="tighten_promo_eligibility",
         cohort="category=outerwear", design="pre_post", control_cohort=None,
         primary_metric="discount_depth", expected_low=-5.0, expected_high=-2.0,
         start_date="2026-11-09", review_date="2026-11-16", selection_first_week="2026-W32",
         selection_window_week="2026-W40", selection_last_week="2026-W43", planned_looks=1),
)

OWNERS = ("amira.cx", "ben.ops", "chloe.buying", "dario.data", "elif.marketing", "femi.logistics")
GENERIC_ACTIONS = (
    "Review top-10 returned SKUs with buying",
    "Check carrier SLA report for the region with most late parcels",
    "Refresh size guide links on product pages",
    "Audit return reason free texts for new patterns",
    "Follow up damaged parcels with the warehouse",
    "Update packaging instructions for knitwear",
    "Check marketplace listing photos against the catalogue",
    "Reconcile refunds with finance",
    "Review contact-centre macros for return questions",
    "Clean up SKUs with missing size attributes",
    "Check promo code eligibility rules",
    "Share weekly return dashboard with category leads",
    "Investigate wrong-item picks at the warehouse",
    "Review exchange vs refund mix with customer care",
)
STORY_ACTIONS = {
    41: ("Launch EXP-2026-W41-DRESSES-PHOTOS (new product photos, dresses)",),
    42: ("Review EXP-2026-W41-DRESSES-PHOTOS at J+7: no effect, stop",),
    45: ("Investigate knitwear size_too_small returns rising since W41 orders",),
    46: ("Launch EXP-2026-W46-SHOES-FIT (fit message on shoes product pages)",
         "Tighten promo eligibility on outerwear (EXP-2026-W46-OUTERWEAR-PROMO)",
         "Ask carrier for recovery plan on late deliveries"),
    47: ("Prepare J+7 review of EXP-2026-W46-SHOES-FIT",
         "Prepare J+7 review of EXP-2026-W46-OUTERWEAR-PROMO",
         "Contact knitwear supplier about sizing of the autumn collection",
         "Brief warehouse on promotion-week volumes"),
}


# --- helpers ----------------------------------------------------------------------------
def _ts(seconds: np.ndarray) -> np.ndarray:
    """int64 epoch seconds (with a -1 sentinel for missing) -> datetime64[s] with NaT."""
    out = np.asarray(seconds, dtype="int64").astype("datetime64[s]")
    out[np.asarray(seconds) < 0] = np.datetime64("NaT")
    return out


def _dates(days: np.ndarray) -> np.ndarray:
    """Day index since START -> datetime64[s] at midnight."""
    return (_START_S + np.asarray(days, dtype="int64") * DAY).astype("datetime64[s]")


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _choice_rows(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a cumulative-probability matrix."""
    u = rng.random(cum.shape[0])
    return np.minimum((u[:, None] > cum).sum(axis=1), cum.shape[1] - 1)


def _stratified(rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
    """Uniforms stratified within each group: in a group of n rows, exactly one falls in each
    of [0, 1/n), [1/n, 2/n), ... in random order. Keeps the share of discounted lines of a
    category-week close to plan, as a promotion calendar would."""
    key = rng.random(group.size)
    order = np.lexsort((key, group))
    g = group[order]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    size = np.diff(np.r_[start, g.size])
    rank = np.arange(g.size) - np.repeat(start, size)
    u = np.empty(group.size)
    u[order] = (rank + rng.random(group.size)) / np.repeat(size, size)
    return u


def _trunc_lognormal(u: np.ndarray, median: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    mu = np.log(median)
    lo = ndtr((np.log(DELAY_MIN) - mu) / sigma)
    hi = ndtr((np.log(DELAY_MAX) - mu) / sigma)
    return np.exp(mu + sigma * ndtri(lo + u * (hi - lo)))


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds after midnight, shaped like online shopping (evening peak, quiet nights)."""
    w = np.array([1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4.2, 4.6, 4.8,
                  5.2, 5.0, 4.6, 4.5, 4.6, 5.0, 5.8, 6.8, 7.4, 7.0, 5.0, 2.6])
    hours = rng.choice(24, size=n, p=w / w.sum())
    return hours * 3600 + rng.integers(0, 3600, size=n)


def _assign(rng: np.random.Generator, order_cust: np.ndarray, order_s: np.ndarray,
            order_day: np.ndarray, first_day: int, last_day: int, n_pool: int,
            experiment_id: str) -> tuple[pd.DataFrame, np.ndarray]:
    """50/50 assignment at each visitor's first visit in the window [first_day, last_day].

    Buyers are assigned shortly before their first order of the window; a further set of
    logged-in visitors who did not order in the window is assigned at a random time in it.
    Returns the assignments table and the arm per pool customer (-1 unassigned, 0, 1).
    """
    in_win = (order_day >= first_day) & (order_day <= last_day)
    cust, first_idx = np.unique(order_cust[in_win], return_index=True)  # unique needs sorted ts
    first_s = order_s[in_win][first_idx]  # orders are sorted by time: first occurrence = first order
    win_start = _START_S + first_day * DAY
    win_end = _START_S + (last_day + 1) * DAY - 1
    lead = rng.integers(60, 90 * 60, size=cust.size)
    buyer_ts = np.maximum(first_s - lead, win_start)
    others = np.setdiff1d(np.arange(n_pool), cust)
    n_non = int(round(ASSIGNED_NON_BUYER_SHARE * cust.size))
    non = np.sort(rng.choice(others, size=n_non, replace=False))
    non_ts = rng.integers(win_start, win_end + 1, size=n_non)
    all_cust = np.concatenate([cust, non])
    all_ts = np.concatenate([buyer_ts, non_ts])
    arm = (rng.random(all_cust.size) < 0.5).astype(np.int8)
    arm_of = np.full(n_pool, -1, dtype=np.int8)
    arm_of[all_cust] = arm
    order = np.lexsort((all_cust, all_ts))
    table = pd.DataFrame({
        "experiment_id": experiment_id,
        "customer_id": _customer_ids(all_cust[order]),
        "variant": np.where(arm[order] == 1, "treatment", "control"),
        "assigned_ts": _ts(all_ts[order]),
    })
    return table, arm_of


def _customer_ids(idx: np.ndarray) -> np.ndarray:
    return np.char.add("CUS-", np.char.zfill((np.asarray(idx) + 1).astype(str), 5))


# --- the shop's building blocks (shared with the season's shop, playbook.sim.shop) -------------------------------
def draw_catalogue(rng: np.random.Generator, l_cat: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each line's product (Zipf-like popularity within its category), size, unit price and unit cost, and its SKU."""
    n_l = l_cat.size
    l_prod = np.zeros(n_l, dtype=np.int64)
    l_size = np.empty(n_l, dtype=object)
    l_price = np.zeros(n_l)
    l_ucost = np.zeros(n_l)
    prod_u = rng.random(n_l)
    size_u = rng.random(n_l)
    for c, name in enumerate(CATEGORIES):
        k = N_PRODUCTS[c]
        price = np.floor(PRICE_MEDIAN[c] * np.exp(rng.normal(0, 0.3, size=k))) + 0.95
        ucost = np.round(price * rng.uniform(0.32, 0.48, size=k), 2)
        pop = 1.0 / np.arange(1, k + 1) ** 0.8
        pop_cum = np.cumsum(pop / pop.sum())
        labels, sp = SIZES.get(c, APPAREL_SIZES)
        size_cum = np.cumsum(sp)
        idx = np.flatnonzero(l_cat == c)
        prod = np.minimum(np.searchsorted(pop_cum, prod_u[idx]), k - 1)
        l_prod[idx] = prod
        l_price[idx] = price[prod]
        l_ucost[idx] = ucost[prod]
        l_size[idx] = np.asarray(labels, dtype=object)[np.minimum(np.searchsorted(size_cum, size_u[idx]), len(labels) - 1)]
    sku = (pd.Series(np.asarray(SKU_PREFIX, dtype=object)[l_cat]) + "-"
           + pd.Series(l_prod + 1).astype(str).str.zfill(3) + "-" + pd.Series(l_size)).to_numpy(dtype=object)
    return l_prod, l_size, l_price, l_ucost, sku


def draw_delivery(rng: np.random.Generator, o_day: np.ndarray, o_region: np.ndarray, l_order: np.ndarray,
                  l_cat: np.ndarray, p_on: np.ndarray, start_s: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each order's shipping cost (by region, plus each line's category), promise (3-4 days), lateness (on time
    with probability ``p_on``) and delivery time in epoch seconds (day index ``o_day`` from ``start_s``), before
    any cut and before the lost parcels."""
    n_orders = o_day.size
    intl = o_region == REGIONS.index("international")
    ship = np.where(intl, rng.uniform(9.0, 13.0, n_orders), rng.uniform(3.8, 5.6, n_orders))
    ship = np.round(ship + np.bincount(l_order, weights=SHIP_PER_LINE[l_cat], minlength=n_orders), 2)
    promise = np.where(intl, 4, np.where(rng.random(n_orders) < 0.65, 3, 4))
    late = rng.random(n_orders) > p_on
    early = rng.choice([0, 1, 2], size=n_orders, p=[0.30, 0.50, 0.20])
    over = rng.choice([1, 2], size=n_orders, p=[0.75, 0.25])
    d = np.where(late, promise + over, np.maximum(promise - early, 1))
    deliv_s = start_s + (o_day + d) * DAY + rng.integers(8 * 3600, 20 * 3600, size=n_orders)
    return ship, promise, late, deliv_s


def stacked_reasons(rates: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each line's return reason (index in STACK; len(STACK) for no return) from one uniform stacked over its
    reasons' probabilities (rows of ``rates``)."""
    return (u[:, None] >= np.cumsum(rates, axis=1)).sum(axis=1)


def return_delay_days(u: np.ndarray, reason: np.ndarray, l_cat: np.ndarray) -> np.ndarray:
    """Days from delivery to the return request: the reason's truncated lognormal (DELAY), shoes' size returns
    fastest."""
    size_reason = (reason == R_IDX["size_too_small"]) | (reason == R_IDX["size_too_large"])
    med = np.array([DELAY[r][0] for r in STACK] + [1.0])[reason]
    med = np.where((l_cat == SHOES) & size_reason, SHOES_SIZE_DELAY_MEDIAN, med)
    sig = np.array([DELAY[r][1] for r in STACK] + [1.0])[reason]
    return _trunc_lognormal(u, med, sig)


# --- the generator ----------------------------------------------------------------------
def generate_shop(seed: int = DEFAULT_SEED, planted_effects: bool = True) -> dict[str, pd.DataFrame]:
    """All nine contract tables of the sample shop, as pandas DataFrames.

    Timestamps and dates are ``datetime64[s]`` (NaT when missing), strings are ``str`` (NaN
    when missing), counts ``int64`` and money ``float64`` rounded to cents. ``write_shop``
    turns them into the contract's text formats.
    """
    rng = np.random.default_rng(seed)
    n_pool = N_CUSTOMER_POOL

    # Customers: activity weights (many one-off buyers, a loyal core), home region and
    # preferred channel.
    activity = rng.gamma(0.6, 1.0, size=n_pool)
    activity /= activity.sum()
    cust_region = rng.choice(len(REGIONS), size=n_pool, p=REGION_P)
    cust_channel = rng.choice(len(CHANNELS), size=n_pool, p=CHANNEL_P)

    # Orders per day: weekday pattern, mild growth, +8 % in the promotion week, and the
    # shoes campaign of 2026-11-09 .. 11-16 on top (shoes-led orders).
    days = np.arange(N_DAYS)
    week = days // 7
    lam = ORDERS_PER_WEEK / 7 * DOW_FACTOR[days % 7] / DOW_FACTOR.mean() * (1 + 0.05 * week / (N_WEEKS - 1))
    lam = lam * np.where(week == PROMO_WEEK, 1.08, 1.0)
    n_base = rng.poisson(lam)
    camp_days = (days >= EXP_START) & (days <= EXP_END)
    n_camp = rng.poisson(np.where(camp_days, CAMPAIGN_SHOES_ORDERS_PER_DAY * DOW_FACTOR[days % 7], 0.0))
    o_day = np.concatenate([np.repeat(days, n_base), np.repeat(days, n_camp)])
    o_camp = np.concatenate([np.zeros(n_base.sum(), bool), np.ones(n_camp.sum(), bool)])
    o_s = _START_S + o_day * DAY + _time_of_day(rng, o_day.size)
    o_cust = rng.choice(n_pool, size=o_day.size, p=activity)
    own = rng.random(o_day.size) < 0.75
    o_channel = np.where(own, cust_channel[o_cust], rng.choice(len(CHANNELS), size=o_day.size, p=CHANNEL_P))
    o_region = cust_region[o_cust]
    sort = np.lexsort((o_cust, o_s))
    o_day, o_camp, o_s, o_cust, o_channel, o_region = (
        a[sort] for a in (o_day, o_camp, o_s, o_cust, o_channel, o_region))
    n_orders = o_day.size
    o_week = o_day // 7

    # Experiments' assignments (the arm is a property of the customer, decided at their
    # first visit in the window).
    old_assign, _old_arm = _assign(rng, o_cust, o_s, o_day, OLD_EXP_START, OLD_EXP_END, n_pool,
                                   "EXP-2026-W41-DRESSES-PHOTOS")  # no effect, in both variants
    fit_assign, fit_arm = _assign(rng, o_cust, o_s, o_day, EXP_START, EXP_END, n_pool,
                                  "EXP-2026-W46-SHOES-FIT")
    looks_rng = np.random.default_rng(seed + LOOKS_SEED_OFFSET)  # facts 9 and 10: their own draws
    guide_assign, guide_arm = _assign(looks_rng, o_cust, o_s, o_day, SIZE_GUIDE_START, SIZE_GUIDE_REVIEW, n_pool,
                                      "EXP-2026-W43-DRESSES-SIZE-GUIDE")
    jeans_assign, _jeans_arm = _assign(looks_rng, o_cust, o_s, o_day, JEANS_START, N_DAYS - 1, n_pool,
                                       "EXP-2026-W45-JEANS-FIT-PHOTOS")

    # Lines: 1-4 per order, categories by season; campaign orders start with a shoes line.
    n_lines = rng.choice([1, 2, 3, 4], size=n_orders, p=[0.56, 0.29, 0.10, 0.05])
    l_order = np.repeat(np.arange(n_orders), n_lines)
    l_first = np.ones(l_order.size, bool)
    l_first[1:] = l_order[1:] != l_order[:-1]
    n_l = l_order.size
    t = (np.arange(N_WEEKS) / (N_WEEKS - 1))[:, None]
    share = CAT_SHARE_W0 * (1 - t) + CAT_SHARE_W25 * t
    cum = np.cumsum(share / share.sum(axis=1, keepdims=True), axis=1)
    l_week = o_week[l_order]
    l_cat = _choice_rows(rng, cum[l_week])
    l_cat[l_first & o_camp[l_order]] = SHOES
    # Dimensions overlap as in real shops: app customers buy knitwear far more often, so the app
    # channel rises with the knitwear spike (fact 8). A separate stream keeps every other draw as it was.
    to_knit = np.random.default_rng([seed, 8]).random(n_l) < APP_KNITWEAR_EXTRA
    l_cat[to_knit & (o_channel[l_order] == APP) & ~(l_first & o_camp[l_order])] = KNITWEAR
    l_qty = rng.choice([1, 2, 3], size=n_l, p=[0.93, 0.06, 0.01])
    # The tiny category: 3-7 swimwear lines (one unit each) a week, on ordinary orders.
    swim_n = rng.integers(SWIM_UNITS_PER_WEEK[0], SWIM_UNITS_PER_WEEK[1] + 1, size=N_WEEKS)
    pick_u = rng.random(n_l)
    eligible = ~o_camp[l_order]
    for w in range(N_WEEKS):
        idx = np.flatnonzero(eligible & (l_week == w))
        chosen = idx[np.argsort(pick_u[idx], kind="stable")[: swim_n[w]]]
        l_cat[chosen] = SWIMWEAR
        l_qty[chosen] = 1

    # Catalogue: products with a price and a unit cost; popularity is Zipf-like.
    l_prod, l_size, l_price, l_ucost, sku = draw_catalogue(rng, l_cat)

    # Discounts (depth = discount / gross). Outerwear from 2026-11-09: fewer lines get a
    # discount (tightened eligibility); 2026-W47: +3 % on every line (shop-wide promotion).
    l_day = o_day[l_order]
    p_disc = BASE_DEPTH[l_cat] / MEAN_LEVEL
    outer_post = (l_cat == OUTERWEAR) & (l_day >= EXP_START)
    if planted_effects:
        p_disc = np.where(outer_post, p_disc * (BASE_DEPTH[OUTERWEAR] - OUTERWEAR_DEPTH_DROP) / BASE_DEPTH[OUTERWEAR], p_disc)
    group = l_cat * N_WEEKS + l_week  # promotions are planned per category and week
    disc_u = _stratified(rng, group)
    level_u = _stratified(rng, group)
    level = DISCOUNT_LEVELS[np.minimum(np.searchsorted(np.cumsum(DISCOUNT_LEVEL_P), level_u), len(DISCOUNT_LEVELS) - 1)]
    depth = np.where(disc_u < p_disc, level, 0.0)
    depth = np.where(l_cat == SWIMWEAR, SWIMWEAR_MARKDOWN, depth)  # end-of-season markdown
    depth = depth + np.where(l_week == PROMO_WEEK, PROMO_EXTRA_DEPTH, 0.0)
    gross = l_price * l_qty
    l_disc = np.round(gross * depth, 2)

    # Shipping, promise and delivery.
    p_on = np.where(o_day >= LATE_DIP_FROM, ON_TIME_P_DIP, ON_TIME_P)
    ship, promise, late, deliv_s = draw_delivery(rng, o_day, o_region, l_order, l_cat, p_on, _START_S)
    lost = rng.random(n_orders) < LOST_P
    delivered = ~lost & (deliv_s <= _CUT_S)
    deliv_s = np.where(delivered, deliv_s, -1)
    promised_day = o_day + promise

    # Returns: one uniform per line stacked over the reasons of its category.
    rates = RETURN_PCT[l_cat].copy()
    rates[:, R_IDX["late_delivery"]] += np.where(late[l_order], LATE_EXTRA_P, 0.0)
    knit_spike = (l_cat == KNITWEAR) & (l_day >= KNIT_SPIKE_FROM)
    rates[:, R_IDX["size_too_small"]] = np.where(knit_spike, KNIT_SMALL_SPIKE_P, rates[:, R_IDX["size_too_small"]])
    ret_u = rng.random(n_l)
    reason = stacked_reasons(rates, ret_u)  # len(STACK) = no return
    returned = (reason < len(STACK)) & delivered[l_order]
    size_reason = (reason == R_IDX["size_too_small"]) | (reason == R_IDX["size_too_large"])
    treated = (l_cat == SHOES) & (l_day >= EXP_START) & (fit_arm[o_cust[l_order]] == 1)
    fit_u = rng.random(n_l)
    if planted_effects:
        returned &= ~(treated & size_reason & (fit_u < SHOES_FIT_CUT))
    guided = (l_cat == DRESSES) & (l_day >= SIZE_GUIDE_START) & (guide_arm[o_cust[l_order]] == 1)
    guide_u = looks_rng.random(n_l)
    if planted_effects:
        returned &= ~(guided & size_reason & (guide_u < SIZE_GUIDE_CUT))
    delay_days = return_delay_days(rng.random(n_l), reason, l_cat)
    req_s = deliv_s[l_order] + np.round(delay_days * DAY).astype(np.int64)
    part_u = rng.random(n_l)
    partial = (l_qty > 1) & (part_u < 0.3)  # some multi-unit lines come back in part
    ret_qty = np.where(partial, 1 + np.floor(part_u / 0.3 * (l_qty - 1)).astype(np.int64), l_qty)
    res_u = rng.random(n_l)
    ret_ship_u = rng.uniform(4.0, 7.0, n_l)
    proc_u = rng.uniform(1.5, 3.0, n_l)
    text_u = rng.random(n_l)
    text_pick = rng.integers(0, 1_000_000, n_l)
    odd_u = rng.random(n_l)  # picks the returns that get markup texts or odd reason codes
    keep = returned & (req_s <= _CUT_S)
    r_line = np.flatnonzero(keep)
    r_line = r_line[np.lexsort((r_line, req_s[r_line]))]
    n_r = r_line.size
    r_reason = np.asarray(STACK, dtype=object)[reason[r_line]]
    net_unit = (gross[r_line] - l_disc[r_line]) / l_qty[r_line]
    refund = np.round(net_unit * ret_qty[r_line], 2)
    is_size = size_reason[r_line]
    is_fault = np.isin(reason[r_line], [R_IDX["damaged_defective"], R_IDX["wrong_item"]])
    p_refund = np.where(is_size, 0.55, np.where(is_fault, 0.60, 0.75))
    p_exch = np.where(is_size, 0.35, np.where(is_fault, 0.32, 0.10))
    ru = res_u[r_line]
    resolution = np.where(ru < p_refund, "refund", np.where(ru < p_refund + p_exch, "exchange", "store_credit"))
    texts = np.empty(n_r, dtype=object)
    for r in STACK:
        m = r_reason == r
        opts = np.asarray(REASON_TEXTS[r], dtype=object)
        texts[m] = opts[text_pick[r_line][m] % len(opts)]
    texts[text_u[r_line] < TEXT_EMPTY_P] = np.nan
    # Planted oddities: untrusted markup in a few texts, and reason codes outside the
    # taxonomy on returns that do not touch any planted fact (not knitwear, not shoes,
    # ordered before 2026-W41).
    r_cat = l_cat[r_line]
    # Both pick among returns of lines ordered before 2026-11-09, by per-line random keys, so
    # that the A/A variant plants them on the same returns.
    r_early = l_day[r_line] < EXP_START
    markup_key = odd_u[r_line].copy()
    for i in range(N_MARKUP_TEXTS):
        text, why, cat = MARKUP_TEXTS[i % len(MARKUP_TEXTS)]
        cand = np.flatnonzero(r_early & (r_reason == why) & ((r_cat == cat) if cat is not None else True))
        at = cand[np.argmin(markup_key[cand])]
        texts[at] = text
        markup_key[at] = 2.0  # not picked twice
    ok = np.flatnonzero((r_cat != KNITWEAR) & (r_cat != SHOES) & (r_cat != SWIMWEAR) & (l_day[r_line] < KNIT_SPIKE_FROM))
    odd_at = np.sort(ok[np.argsort(1.0 - odd_u[r_line][ok], kind="stable")[:N_OFF_TAXONOMY]])
    r_reason[odd_at] = np.asarray(OFF_TAXONOMY_CODES, dtype=object)[np.arange(N_OFF_TAXONOMY) % len(OFF_TAXONOMY_CODES)]

    order_ids = _ids("ORD-", n_orders, 6)
    line_ids = _ids("LN-", n_l, 6)
    orders = pd.DataFrame({
        "order_id": order_ids,
        "order_ts": _ts(o_s),
        "customer_id": _customer_ids(o_cust),
        "channel": np.asarray(CHANNELS)[o_channel],
        "region": np.asarray(REGIONS)[o_region],
        "promised_delivery_date": _dates(promised_day),
        "delivered_ts": _ts(deliv_s),
        "shipping_cost": ship,
    })
    order_lines = pd.DataFrame({
        "line_id": line_ids,
        "order_id": order_ids[l_order],
        "sku": sku.astype(str),
        "category": np.asarray(CATEGORIES)[l_cat],
        "quantity": l_qty.astype("int64"),
        "unit_price": np.round(l_price, 2),
        "discount_amount": l_disc,
        "unit_cost": l_ucost,
    })
    returns = pd.DataFrame({
        "return_id": _ids("RET-", n_r, 6),
        "line_id": line_ids[r_line],
        "requested_ts": _ts(req_s[r_line]),
        "quantity": ret_qty[r_line].astype("int64"),
        "reason_code": r_reason.astype(str),
        "reason_text": pd.Series(texts, dtype="str"),
        "refund_amount": refund,
        "return_shipping_cost": np.round(ret_ship_u[r_line], 2),
        "processing_cost": np.round(proc_u[r_line], 2),
        "resolution": resolution,
    })

    contacts = _contacts(rng, o_s, o_day, deliv_s, promised_day, late, lost, order_ids)
    sessions = _sessions(rng, o_day, o_camp, o_channel, l_cat[l_first], o_week)
    marketing = _marketing(rng)
    actions = _actions(rng)
    assignments = pd.concat([old_assign, guide_assign, jeans_assign, fit_assign], ignore_index=True)
    experiments = pd.DataFrame(list(EXPERIMENTS))
    for col in ("start_date", "review_date"):
        experiments[col] = pd.to_datetime(experiments[col]).astype("datetime64[s]")
    experiments["control_cohort"] = experiments["control_cohort"].astype("str")
    experiments["planned_information"] = [
        _planned_information(e, assignments, orders, order_lines) for e in EXPERIMENTS]

    tables = {
        "orders": orders, "order_lines": order_lines, "returns": returns, "sessions": sessions,
        "contacts": contacts, "actions": actions, "marketing_spend": marketing,
        "experiments": experiments, "assignments": assignments,
    }
    return {name: tables[name] for name in ALL_TABLES}


def _planned_information(exp: dict, assignments: pd.DataFrame, orders: pd.DataFrame,
                         order_lines: pd.DataFrame, k: int = 14) -> float:
    """What a randomized row's plan was sized for: customers per arm with a cohort unit, ordered from the start
    to the review date, delivered at least ``k`` days before the end of the review date's week (the review's
    read, as ``stats.power`` counts it); for a review before any unit can be read at k (the older rows), the
    customers of the whole exposure, whose read comes when it can be made. NaN for a pre/post row (it is not
    read at a K-day window)."""
    if exp["design"] != "randomized":
        return float("nan")
    category = exp["cohort"].split("=", 1)[1]
    start, review = pd.Timestamp(exp["start_date"]), pd.Timestamp(exp["review_date"])
    read_on = review + pd.Timedelta(days=7 - review.day_of_week)  # the Monday after the review week
    placed = orders[(orders.order_ts >= start) & (orders.order_ts < review + pd.Timedelta(days=1))]
    lines = order_lines[order_lines.category == category].merge(
        placed[["order_id", "customer_id", "delivered_ts"]], on="order_id")
    mine = assignments[assignments.experiment_id == exp["experiment_id"]]

    def per_arm(rows: pd.DataFrame) -> float:
        return float(mine[mine.customer_id.isin(rows.customer_id)].groupby("variant").customer_id.nunique().mean())

    mature = per_arm(lines[lines.delivered_ts <= read_on - pd.Timedelta(days=k)])
    return round(mature if mature > 0 else per_arm(lines))


def _contacts(rng, o_s, o_day, deliv_s, promised_day, late, lost, order_ids) -> pd.DataFrame:
    """About 8 % of orders lead to a contact; late and lost parcels far more often (wismo)."""
    n = o_s.size
    promised_s = _START_S + promised_day * DAY
    overdue = late | lost  # includes parcels still on their way, late, at the cut
    u_base, u_late, u_cause = rng.random(n), rng.random(n), rng.random(n)
    causes = np.asarray(list(CONTACT_CAUSE_P), dtype=object)
    cause_cum = np.cumsum(list(CONTACT_CAUSE_P.values()))
    base = u_base < CONTACT_BASE_P
    wismo = ~base & (u_late < np.where(lost, CONTACT_LOST_P, np.where(late, CONTACT_LATE_P, 0.0)))
    cause = np.where(base, causes[np.minimum(np.searchsorted(cause_cum, u_cause), len(causes) - 1)], "wismo")
    after_u = rng.random(n)
    has_deliv = deliv_s >= 0
    ts = np.where(
        cause == "wismo",
        np.where(overdue, promised_s + 8 * 3600 + after_u * 2.5 * DAY, o_s + 3600 + after_u * 2 * DAY),
        np.where(np.isin(cause, ["return", "damaged"]) & has_deliv,
                 deliv_s + 1800 + after_u * np.where(cause == "damaged", 3, 12) * DAY,
                 o_s + 1800 + after_u * 8 * DAY),
    ).astype(np.int64)
    pick = np.flatnonzero((base | wismo) & (ts <= _CUT_S))
    # A few contacts are about no order in particular.
    n_free = int(round(0.03 * pick.size))
    free_ts = rng.integers(_START_S, _CUT_S + 1, size=n_free)
    free_cause = rng.choice(["product_question", "billing", "other"], size=n_free, p=[0.5, 0.2, 0.3])
    all_ts = np.concatenate([ts[pick], free_ts])
    all_order = np.concatenate([order_ids[pick].astype(object), np.full(n_free, np.nan, dtype=object)])
    all_cause = np.concatenate([cause[pick].astype(object), free_cause.astype(object)])
    cost = np.round(np.where(all_cause == "wismo", 3.2, 4.5) + rng.uniform(-1.0, 3.0, all_ts.size), 2)
    cost = np.where(rng.random(all_ts.size) < CONTACT_NO_COST_P, np.nan, cost)
    order = np.argsort(all_ts, kind="stable")
    return pd.DataFrame({
        "contact_id": _ids("CT-", all_ts.size, 5),
        "contact_ts": _ts(all_ts[order]),
        "order_id": pd.Series(all_order[order], dtype="str"),
        "cause": all_cause[order].astype(str),
        "cost": cost[order],
    })


def _sessions(rng, o_day, o_camp, o_channel, o_first_cat, o_week) -> pd.DataFrame:
    """Sessions per day x channel x category, at ~3-4 % conversion of the expected orders.

    An order counts for the category of its first line. The expected number of orders of a
    cell is the week's ordinary orders of that channel x category spread over the days by the
    weekday pattern, plus that day's campaign orders.
    """
    n_ch, n_cat = len(CHANNELS), len(CATEGORIES)
    weekly = np.zeros((N_WEEKS, n_ch, n_cat))
    np.add.at(weekly, (o_week[~o_camp], o_channel[~o_camp], o_first_cat[~o_camp]), 1.0)
    daily_camp = np.zeros((N_DAYS, n_ch, n_cat))
    np.add.at(daily_camp, (o_day[o_camp], o_channel[o_camp], o_first_cat[o_camp]), 1.0)
    days = np.arange(N_DAYS)
    share = DOW_FACTOR[days % 7] / DOW_FACTOR.sum()
    expected = weekly[days // 7] * share[:, None, None] + daily_camp
    conv = np.array([CONVERSION[c] for c in CHANNELS])[None, :, None]
    lam = np.maximum(expected, 0.15) / conv * rng.lognormal(0.0, 0.08, size=expected.shape)
    sess = rng.poisson(lam)
    dd, cc, kk = np.meshgrid(days, np.arange(n_ch), np.arange(n_cat), indexing="ij")
    return pd.DataFrame({
        "date": _dates(dd.ravel()),
        "channel": np.asarray(CHANNELS)[cc.ravel()],
        "category": np.asarray(CATEGORIES)[kk.ravel()],
        "sessions": sess.ravel().astype("int64"),
    })


def _marketing(rng) -> pd.DataFrame:
    days = np.arange(N_DAYS)
    week = days // 7
    camp = (days >= EXP_START) & (days <= EXP_END)
    base = np.array([SPEND_BASE[c] for c in CHANNELS])[None, :]
    mult = (DOW_FACTOR[days % 7] / DOW_FACTOR.mean())[:, None] * rng.lognormal(0.0, 0.12, size=(N_DAYS, len(CHANNELS)))
    mult = mult * np.where(camp[:, None] & (np.arange(len(CHANNELS)) < 3)[None, :], 1.6, 1.0)
    mult = mult * np.where((week == PROMO_WEEK)[:, None], 1.35, 1.0)
    spend = np.round(base * mult, 2)
    dd, cc = np.meshgrid(days, np.arange(len(CHANNELS)), indexing="ij")
    return pd.DataFrame({
        "date": _dates(dd.ravel()),
        "channel": np.asarray(CHANNELS)[cc.ravel()],
        "spend": spend.ravel(),
    })


def _actions(rng) -> pd.DataFrame:
    """3-6 actions a week, closed within their week; the latest week closes only 4 of 6.

    In earlier weeks at most one action stays open or is dropped, and only in weeks with
    five or six actions, so every earlier week closes at least 80 %. ``closed_ts`` is set
    for closed actions only.
    """
    rows = []
    n_week = rng.integers(3, 7, size=N_WEEKS)
    n_week[-1] = 6
    for w in range(N_WEEKS):
        iso = FIRST_ISO_WEEK + w
        story = STORY_ACTIONS.get(iso, ())
        n = max(int(n_week[w]), len(story))
        generic = rng.choice(len(GENERIC_ACTIONS), size=n - len(story), replace=False)
        descs = list(story) + [GENERIC_ACTIONS[i] for i in generic]
        owners = rng.choice(len(OWNERS), size=n)
        close_s = _START_S + (7 * w) * DAY + rng.integers(DAY, 7 * DAY - 3600, size=n)
        status = np.full(n, "closed", dtype=object)
        if w == N_WEEKS - 1:
            status[[2, 5]] = "open"  # 4 of 6 closed: closure 67 %
        elif n >= 5 and rng.random() < 0.5:
            status[n - 1] = "dropped" if rng.random() < 0.5 else "open"
        for i in range(n):
            rows.append((f"ACT-2026-W{iso:02d}-{i + 1}", f"2026-W{iso:02d}", OWNERS[owners[i]],
                         descs[i], status[i], close_s[i] if status[i] == "closed" else -1))
    df = pd.DataFrame(rows, columns=["action_id", "week", "owner", "description", "status", "closed_s"])
    closed = df.pop("closed_s").to_numpy(dtype=np.int64)
    closed = np.where(closed > _CUT_S, -1, closed)
    df["closed_ts"] = _ts(closed)
    return df


# --- writing ----------------------------------------------------------------------------
def _to_text(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Timestamps as ``YYYY-MM-DD HH:MM:SS``, dates as ``YYYY-MM-DD``, missing as empty;
    floats stay floats (``to_csv`` writes them with two decimals)."""
    spec = TABLES[name]
    out = {}
    columns = [c for c in spec.all_columns if c.name in df.columns]
    for col in columns:
        s = df[col.name]
        if col.kind in ("timestamp", "date"):
            values = s.to_numpy(dtype="datetime64[s]")
            text = np.datetime_as_string(values, unit="s" if col.kind == "timestamp" else "D")
            text = np.char.replace(text, "T", " ") if col.kind == "timestamp" else text
            out[col.name] = np.where(np.isnat(values), "", text).astype(object)
        elif col.kind == "float":
            out[col.name] = s.astype("float64")
        elif col.kind == "int":
            out[col.name] = s.astype("int64")
        else:
            out[col.name] = s
    return pd.DataFrame(out, columns=[c.name for c in columns])


def table_bytes(df: pd.DataFrame, name: str) -> bytes:
    """The gzip-compressed CSV of one table, byte for byte reproducible (mtime 0)."""
    text = _to_text(df, name).to_csv(index=False, lineterminator="\n", na_rep="", float_format="%.2f")
    buf = io.BytesIO()
    with gzip.GzipFile(filename=f"{name}.csv", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def write_shop(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each table as ``<out_dir>/<table>.csv.gz`` atomically; returns the paths."""
    out = Path(out_dir)
    paths = []
    for name in ALL_TABLES:
        if name in tables:
            paths.append(atomic.write_bytes(out / f"{name}.csv.gz", table_bytes(tables[name], name)))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbook.dev.sample_data", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None,
                        help="output folder; a relative path is taken from the repository root (default: data_samples)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default: {DEFAULT_SEED})")
    parser.add_argument("--aa", action="store_true", help="A/A variant: the W46 experiments and the size guide have no effect")
    args = parser.parse_args(argv)
    tables = generate_shop(seed=args.seed, planted_effects=not args.aa)
    for path in write_shop(tables, resolve(args.out, DATA_SAMPLES_DIR)):
        rows = len(tables[path.name.split(".")[0]])
        print(f"{path}  {rows:>7} rows  {path.stat().st_size:>9} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
