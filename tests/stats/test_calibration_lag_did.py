"""Calibration by simulation of the return-lag and difference-in-differences intervals.

Seeded A/A simulations: the true difference is 0, so a 95 % interval should miss it 5 % of
the time. With 2,000 simulations the standard error of a 5 % miss rate is 0.49 points and
the acceptance band 3.5 %-6.5 % is about +-3 standard errors. The ``slow`` variants
(``pytest -m slow``) use 20,000 simulations and the band 4.0 %-6.0 %, and add checks too
slow for every run (KM with clustered variance, wild bootstrap with 10 slices, pre-trend
test size).

To stay fast, each default test computes the estimator for all simulations with a
vectorised numpy replica of the formula and runs the public function on a subset of the
same simulated data sets, asserting that both agree to 1e-9: the miss rate measured is
the function's. The measured miss rates for these seeds are in docs/statistics.md.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from playbook.stats.did import difference_in_differences, pre_trend_check
from playbook.stats.lag import kaplan_meier_by_arm, return_within_k_difference

N_SIMS = 2_000
N_SIMS_SLOW = 20_000
BAND = (0.035, 0.065)
BAND_SLOW = (0.040, 0.060)
Z95 = stats.norm.ppf(0.975)

# ----------------------------------------------------------------------------- return lag
# Each simulated test: 1,200 customers randomised 50/50; each has 1 + Poisson(1.2) units
# (mean 2.2) and a return propensity ~ Beta(1.2, 6) (mean 0.17, intra-customer correlation
# 0.12); units delivered uniformly over the 35 days before as_of; return lag ~ Gamma(shape
# 2.5, scale 3.5) days (mean 8.75, 90 % between 2.5 and 16.5); a return is seen only if it
# happened by as_of (censoring). Window k = 14 days.
LAG_SEED = 20240601
CUSTOMERS = 1_200
K_DAYS = 14.0
HORIZON = 35.0
AS_OF = pd.Timestamp("2024-06-01")


def simulate_lag(rng: np.random.Generator, n_sims: int) -> dict[str, np.ndarray]:
    """Units of ``n_sims`` independent A/A tests, flattened, with a simulation index."""
    g = CUSTOMERS
    cust_arm = rng.integers(0, 2, (n_sims, g))
    cust_p = rng.beta(1.2, 6.0, (n_sims, g))
    n_units = 1 + rng.poisson(1.2, (n_sims, g))
    cust_global = np.repeat(np.arange(n_sims * g), n_units.ravel())
    m = cust_global.size
    ago = rng.uniform(0, HORIZON, m)
    lag = rng.gamma(2.5, 3.5, m)
    will_return = rng.random(m) < cust_p.ravel()[cust_global]
    seen = will_return & (lag <= ago)
    return {
        "sim": cust_global // g,
        "cust": cust_global,
        "arm": cust_arm.ravel()[cust_global],
        "ago": ago,
        "lag": lag,
        "seen": seen,
    }


def within_k_numpy(u: dict[str, np.ndarray], n_sims: int) -> tuple[np.ndarray, np.ndarray]:
    """The estimator of return_within_k_difference for every simulation at once."""
    g_all = n_sims * CUSTOMERS
    mature = u["ago"] >= K_DAYS
    hit = mature & u["seen"] & (u["lag"] <= K_DAYS)
    num = np.bincount(u["cust"], weights=hit, minlength=g_all)
    den = np.bincount(u["cust"], weights=mature, minlength=g_all)
    cust_sim = np.arange(g_all) // CUSTOMERS
    cust_arm = np.zeros(g_all, dtype=int)
    cust_arm[u["cust"]] = u["arm"]
    cell = cust_sim * 2 + cust_arm
    present = den > 0
    big_n = np.bincount(cell, weights=num, minlength=2 * n_sims)
    big_d = np.bincount(cell, weights=den, minlength=2 * n_sims)
    n_cust = np.bincount(cell, weights=present, minlength=2 * n_sims)
    ratio = big_n / big_d
    psi = (num - ratio[cell] * den) / big_d[cell] * np.sqrt(n_cust / (n_cust - 1))[cell]
    var_cell = np.bincount(cell, weights=np.where(present, psi**2, 0.0), minlength=2 * n_sims)
    diff = ratio[1::2] - ratio[0::2]
    se = np.sqrt(var_cell[0::2] + var_cell[1::2])
    return diff, se


def lag_frame(u: dict[str, np.ndarray], sim: int) -> pd.DataFrame:
    sel = u["sim"] == sim
    delivered = AS_OF - pd.to_timedelta(u["ago"][sel], unit="D")
    returned = pd.Series(delivered + pd.to_timedelta(u["lag"][sel], unit="D"))
    returned[~u["seen"][sel]] = pd.NaT
    return pd.DataFrame({
        "arm": np.where(u["arm"][sel] == 1, "treatment", "control"),
        "customer_id": u["cust"][sel],
        "delivered_ts": delivered,
        "returned_ts": returned.to_numpy(),
    })


def lag_miss_rate(n_sims: int, seed: int, n_checked: int) -> float:
    rng = np.random.default_rng(seed)
    misses, done = 0, 0
    batch = 250
    checked = 0
    while done < n_sims:
        b = min(batch, n_sims - done)
        u = simulate_lag(rng, b)
        diff, se = within_k_numpy(u, b)
        misses += int(np.sum(np.abs(diff) > Z95 * se))
        for s in range(min(b, n_checked - checked)):
            res = return_within_k_difference(lag_frame(u, s), AS_OF, K_DAYS)
            assert res.estimate == pytest.approx(diff[s], abs=1e-12)
            assert res.details["std_error"] == pytest.approx(se[s], rel=1e-9)
            checked += 1
        done += b
    return misses / n_sims


def test_return_within_k_interval_covers_95_percent_in_aa_tests_with_censoring():
    miss = lag_miss_rate(N_SIMS, LAG_SEED, n_checked=25)
    print(f"return-within-k A/A miss rate: {miss:.4f} ({N_SIMS} sims, seed {LAG_SEED})")
    assert BAND[0] <= miss <= BAND[1]


@pytest.mark.slow
def test_return_within_k_interval_covers_95_percent_slow():
    miss = lag_miss_rate(N_SIMS_SLOW, LAG_SEED + 1, n_checked=50)
    print(f"return-within-k A/A miss rate: {miss:.4f} ({N_SIMS_SLOW} sims, seed {LAG_SEED + 1})")
    assert BAND_SLOW[0] <= miss <= BAND_SLOW[1]


@pytest.mark.slow
def test_km_clustered_interval_covers_95_percent_in_aa_tests_slow():
    rng = np.random.default_rng(LAG_SEED + 2)
    misses = 0
    n_sims = 2_000
    for start in range(0, n_sims, 100):
        u = simulate_lag(rng, 100)
        for s in range(100):
            res = kaplan_meier_by_arm(lag_frame(u, s), AS_OF, k=K_DAYS).difference
            misses += not (res.ci_low <= 0.0 <= res.ci_high)
    miss = misses / n_sims
    print(f"km A/A miss rate: {miss:.4f} ({n_sims} sims, seed {LAG_SEED + 2})")
    assert BAND[0] <= miss <= BAND[1]


# ----------------------------------------------------------------------------- DiD
# Each simulated panel: 40 slices (20 treated) x 20 weeks, start at week 10; value =
# slice effect N(0, 1) + week effect N(0, 1) + AR(1) noise (rho = 0.6, unit variance)
# + true effect 0.3 on treated post cells; weights (volume) 50-500 per slice, fixed
# across simulations so the design matrix is reused. The interval must cover 0.3.
DID_SEED = 20240602
SLICES, WEEKS, START, RHO, EFFECT = 40, 20, 10, 0.6, 0.3


class DidDesign:
    """Fixed design: the within (FWL) transform and CRV1 pieces are computed once."""

    def __init__(self, rng: np.random.Generator):
        s, t = SLICES, WEEKS
        self.treated = np.arange(s) < s // 2
        self.slice_code = np.repeat(np.arange(s), t)
        self.week = np.tile(np.arange(t), s)
        n = s * t
        self.w = np.repeat(rng.integers(50, 500, s), t).astype(float)
        sw = np.sqrt(self.w)
        self.d_raw = (self.treated[self.slice_code] & (self.week >= START)).astype(float)
        fe = np.zeros((n, s + t - 1))
        fe[:, 0] = 1.0
        rows = np.arange(n)
        fe[rows[self.slice_code > 0], self.slice_code[self.slice_code > 0]] = 1.0
        fe[rows[self.week > 0], s - 1 + self.week[self.week > 0]] = 1.0
        self.q, _ = np.linalg.qr(fe * sw[:, None])
        self.sw = sw
        d = self.d_raw * sw
        self.d = d - self.q @ (self.q.T @ d)
        self.dd = float(self.d @ self.d)
        k = fe.shape[1] + 1
        self.c = s / (s - 1) * (n - 1) / (n - k)
        self.onehot = np.zeros((n, s))
        self.onehot[rows, self.slice_code] = 1.0

    def simulate(self, rng: np.random.Generator, n_sims: int) -> np.ndarray:
        s, t = SLICES, WEEKS
        a = rng.normal(0, 1, (n_sims, s, 1))
        g = rng.normal(0, 1, (n_sims, 1, t))
        e = np.empty((n_sims, s, t))
        e[:, :, 0] = rng.normal(0, 1, (n_sims, s))
        for j in range(1, t):
            shock = rng.normal(0, 1, (n_sims, s))
            e[:, :, j] = RHO * e[:, :, j - 1] + math.sqrt(1 - RHO**2) * shock
        y = (a + g + e).reshape(n_sims, s * t) + EFFECT * self.d_raw[None, :]
        return y

    def estimate(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ys = (y * self.sw[None, :]).T
        ys = ys - self.q @ (self.q.T @ ys)
        beta = self.d @ ys / self.dd
        resid = ys - np.outer(self.d, beta)
        scores = self.onehot.T @ (self.d[:, None] * resid)
        se = np.sqrt(self.c * np.sum(scores**2, axis=0)) / self.dd
        return beta, se

    def frame(self, y_row: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({
            "slice": self.slice_code, "week": self.week,
            "treated": self.treated[self.slice_code], "value": y_row, "weight": self.w,
        })


def did_miss_rate(n_sims: int, seed: int, n_checked: int) -> float:
    rng = np.random.default_rng(seed)
    design = DidDesign(rng)
    t_crit = stats.t.ppf(0.975, SLICES - 1)
    misses, done, checked = 0, 0, 0
    while done < n_sims:
        b = min(1_000, n_sims - done)
        y = design.simulate(rng, b)
        beta, se = design.estimate(y)
        misses += int(np.sum(np.abs(beta - EFFECT) > t_crit * se))
        for i in range(min(b, n_checked - checked)):
            res = difference_in_differences(design.frame(y[i]), START)
            assert res.method == "did-twfe-cluster"
            assert res.estimate == pytest.approx(beta[i], rel=1e-9)
            assert res.details["std_error"] == pytest.approx(se[i], rel=1e-9)
            assert res.ci_low == pytest.approx(beta[i] - t_crit * se[i], rel=1e-9)
            checked += 1
        done += b
    return misses / n_sims


def test_did_cluster_interval_covers_95_percent_with_40_slices():
    miss = did_miss_rate(N_SIMS, DID_SEED, n_checked=10)
    print(f"did-twfe-cluster miss rate: {miss:.4f} ({N_SIMS} sims, seed {DID_SEED})")
    assert BAND[0] <= miss <= BAND[1]


@pytest.mark.slow
def test_did_cluster_interval_covers_95_percent_slow():
    miss = did_miss_rate(N_SIMS_SLOW, DID_SEED + 1, n_checked=20)
    print(f"did-twfe-cluster miss rate: {miss:.4f} ({N_SIMS_SLOW} sims, seed {DID_SEED + 1})")
    assert BAND_SLOW[0] <= miss <= BAND_SLOW[1]


def _small_panel(rng: np.random.Generator, n_slices: int) -> pd.DataFrame:
    treated = np.arange(n_slices) < n_slices // 2
    a = rng.normal(0, 1, (n_slices, 1))
    g = rng.normal(0, 1, (1, WEEKS))
    e = np.empty((n_slices, WEEKS))
    e[:, 0] = rng.normal(0, 1, n_slices)
    for j in range(1, WEEKS):
        e[:, j] = RHO * e[:, j - 1] + math.sqrt(1 - RHO**2) * rng.normal(0, 1, n_slices)
    return pd.DataFrame({
        "slice": np.repeat(np.arange(n_slices), WEEKS),
        "week": np.tile(np.arange(WEEKS), n_slices),
        "treated": np.repeat(treated, WEEKS),
        "value": (a + g + e).ravel(),
        "weight": np.repeat(rng.integers(50, 500, n_slices), WEEKS).astype(float),
    })


@pytest.mark.slow
def test_wild_bootstrap_keeps_its_size_with_10_slices_slow():
    rng = np.random.default_rng(DID_SEED + 2)
    n_sims = 1_000
    rej_wild = rej_crv1 = 0
    for _ in range(n_sims):
        res = difference_in_differences(_small_panel(rng, 10), START, n_boot=399)
        rej_wild += res.p_value < 0.05
        rej_crv1 += res.details["cluster_p_value"] < 0.05
    print(f"10 slices: wild rejection {rej_wild / n_sims:.4f}, CRV1 {rej_crv1 / n_sims:.4f}")
    assert 0.025 <= rej_wild / n_sims <= 0.075


@pytest.mark.slow
def test_pre_trend_wild_wald_keeps_its_size_where_the_f_test_over_rejects_slow():
    rng = np.random.default_rng(DID_SEED + 3)
    n_sims = 1_000
    rej_wild = rej_f = 0
    for _ in range(n_sims):
        chk = pre_trend_check(_small_panel(rng, 40), START, n_boot=399)
        rej_wild += chk.p_value < 0.05
        rej_f += chk.details["cluster_F_p_value"] < 0.05
    print(f"pre-trend size: wild {rej_wild / n_sims:.4f}, F {rej_f / n_sims:.4f}")
    assert 0.025 <= rej_wild / n_sims <= 0.075
    assert rej_f / n_sims > 0.10
