"""Seeded simulations of randomized return experiments as exposure_lines() returns them (no database),
for the verdict-level calibration tests. Each unit returns with its customer's propensity
(Beta(2, 8), mean 0.2: lines of one customer are correlated), after a lag uniform on [0, max_lag]
days; a treatment may multiply the propensity (a true cut) or the lag (a delay only)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

BASE = pd.Timestamp("2026-11-02")


def experiment(k: int = 7, days: int = 14, planned_looks: int = 1, expected=(-0.08, 0.0)) -> dict:
    return {"experiment_id": "SIM", "lever": "sim", "cohort": "all", "design": "randomized", "control_cohort": "",
            "primary_metric": f"return_rate_{k}d", "expected_low": expected[0], "expected_high": expected[1],
            "start_date": BASE.date(), "review_date": (BASE + pd.Timedelta(days=days - 1)).date(),
            "planned_looks": planned_looks}


def simulate(rng: np.random.Generator, *, customers: int = 300, order_days: float = 14.0, max_lag: float = 4.5,
             cut: float = 1.0, delay: float = 0.0) -> pd.DataFrame:
    """Every line of the experiment (all orders, all eventual returns); ``at`` cuts it at a look."""
    n_c = 2 * customers
    arm = np.repeat(np.array(["control", "treatment"]), customers)
    propensity = rng.beta(2.0, 8.0, n_c) * np.where(arm == "treatment", cut, 1.0)
    per = 1 + rng.poisson(1.5, n_c)
    cust = np.repeat(np.arange(n_c), per)
    n = cust.size
    order = rng.uniform(0.0, order_days, n)
    delivered = order + rng.uniform(1.0, 3.0, n)
    returns = rng.uniform(size=n) < propensity[cust]
    lag = rng.uniform(0.0, max_lag, n) * np.where(arm[cust] == "treatment", 1.0 + delay, 1.0)
    day = pd.Timedelta(days=1)
    return pd.DataFrame({
        "line_id": np.arange(n).astype(str), "order_id": np.arange(n).astype(str),
        "customer_id": np.char.add("c", cust.astype(str)), "arm": arm[cust],
        "order_ts": BASE + order * day, "delivered_ts": BASE + delivered * day,
        "returned_ts": pd.Series(BASE + (delivered + lag) * day).where(returns),
        "units": 1, "returned_units": returns.astype(int), "discount_amount": 0.0, "gross": 50.0, "net": 50.0,
        "return_cost_k": 0.0,
    })


def at(lines: pd.DataFrame, day: float) -> tuple[pd.DataFrame, dt.datetime]:
    """The lines as a snapshot at the end of ``day`` days after the start would show them."""
    as_of = BASE + pd.Timedelta(days=day)
    seen = lines[lines.order_ts <= as_of].copy()
    late = seen.returned_ts > as_of
    seen.loc[late, "returned_ts"] = pd.NaT
    seen.loc[late, "returned_units"] = 0
    return seen.drop(columns="order_ts"), as_of.to_pydatetime()
