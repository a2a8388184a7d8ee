"""Alpha spending across looks (playbook.stats.sequential).

References: O'Brien-Fleming-type Lan-DeMets boundaries, one-sided alpha 0.025, equally spaced looks,
as tabulated by gsDesign (``gsDesign(k, test.type = 1, sfu = sfLDOF)``): k = 3: 3.7103, 2.5114,
1.9930; k = 4: 4.3326, 2.9631, 2.3590, 2.0141. The calibration simulates the canonical joint
distribution directly (a Brownian motion read at the looks), independent of the numerical integration.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from playbook.stats.sequential import (
    design_power,
    keep_critical_value,
    look_boundary,
    obf_boundaries,
    obf_spending,
    spending_boundaries,
)


@pytest.mark.parametrize("looks, published", [
    (1, (1.9600,)),
    (2, (2.9626, 1.9686)),
    (3, (3.7103, 2.5114, 1.9930)),
    (4, (4.3326, 2.9631, 2.3590, 2.0141)),
])
def test_boundaries_match_the_published_obrien_fleming_lan_demets_values(looks, published):
    assert obf_boundaries(looks) == pytest.approx(published, abs=2e-3)


def test_the_spending_function_spends_all_of_alpha_at_the_end_and_little_early():
    assert float(obf_spending(1.0)) == pytest.approx(0.025, abs=1e-12)
    assert float(obf_spending(0.25)) < 0.0001


def _keep_rate(bounds, reps: int, seed: int) -> float:
    """Share of no-effect experiments whose z crosses the boundary at any of m equally spaced looks."""
    m = len(bounds)
    rng = np.random.default_rng(seed)
    score = np.cumsum(rng.standard_normal((reps, m)), axis=1)   # S_j, information j
    z = score / np.sqrt(np.arange(1, m + 1))
    return float(np.mean(np.any(z >= np.asarray(bounds), axis=1)))


@pytest.mark.parametrize("reps", [200_000, pytest.param(2_000_000, marks=pytest.mark.slow)])
def test_four_looks_with_spending_keep_no_effect_at_the_nominal_one_sided_rate(reps):
    rate = _keep_rate(obf_boundaries(4), reps, seed=20261201)
    se = math.sqrt(0.025 * 0.975 / reps)
    assert abs(rate - 0.025) <= 3 * se, rate


def test_four_looks_at_the_fixed_level_would_inflate_the_keep_rate():
    # the failure the spending fixes: 1.96 at each of 4 looks keeps about 6.3 % of no-effect tests
    rate = _keep_rate((1.96,) * 4, 200_000, seed=7)
    assert rate > 0.06


def test_a_look_beyond_the_plan_cannot_keep():
    assert math.isinf(keep_critical_value(5, 4))
    assert keep_critical_value(4, 4) == pytest.approx(2.0141, abs=2e-3)


# --- looks by information: unequal fractions, the final look spending what is left ------------------
# Reference: gsdesign (PyPI), a port of gsDesign's own C integration routines (gridpts, h1, hupdate),
# written independently of this module's recursion.

def _gsdesign_crossings(bounds, information, theta):
    """Per-look upper crossing probabilities by gsDesign's recursion (lower bound -inf)."""
    gs = pytest.importorskip("gsdesign")
    out, prev = [], None
    for j, (b, info) in enumerate(zip(bounds, information)):
        if prev is None:
            cross = gs.h1(r=32, theta=theta, info=info, a=b, b=np.inf)
            prev = gs.h1(r=32, theta=theta, info=info, a=-np.inf, b=b)
            prev_info = info
        else:
            cross = gs.hupdate(32, theta, info, b, np.inf, theta, prev_info, prev)
            prev = gs.hupdate(32, theta, info, -np.inf, b, theta, prev_info, prev)
            prev_info = info
        out.append(float(np.sum(cross[2])))
    return out


@pytest.mark.parametrize("fractions", [(0.2, 0.45, 0.8, 1.0), (0.5, 1.0), (0.1, 0.3, 1.0)])
def test_unequal_looks_spend_the_obf_increments_by_gsdesigns_integration(fractions):
    bounds = spending_boundaries(fractions)
    crossings = _gsdesign_crossings(bounds, fractions, 0.0)
    increments = np.diff(np.concatenate([[0.0], obf_spending(np.asarray(fractions))]))
    assert crossings == pytest.approx(increments, abs=2e-5)


def test_a_final_look_short_of_its_information_spends_what_is_left():
    # looks at 30 % and 60 %, the review date's read at 90 % of the planned information: all of alpha is spent
    information = (0.3, 0.6, 0.9)
    bounds = spending_boundaries((0.3, 0.6, 1.0), information)
    assert sum(_gsdesign_crossings(bounds, information, 0.0)) == pytest.approx(0.025, abs=2e-5)
    assert look_boundary([0.3, 0.6], 0.9, final=True).boundary == pytest.approx(bounds[-1], abs=1e-6)


@pytest.mark.parametrize("fractions, drift", [((0.25, 0.5, 0.75, 1.0), 2.8), ((0.4, 1.0), 2.5), ((1.0,), 2.0)])
def test_design_power_matches_gsdesigns_integration(fractions, drift):
    bounds = spending_boundaries(fractions)
    theta = drift  # information of the final look is 1: its expected z is theta
    assert design_power(bounds, fractions, drift) == pytest.approx(sum(_gsdesign_crossings(bounds, fractions, theta)),
                                                                  abs=2e-4)


def test_four_looks_cost_little_power_against_one():
    # OBF-type spending keeps the last boundary near 1.96: four looks lower the power by a few points only
    one = design_power((1.96,), (1.0,), 2.8016)
    four = design_power(obf_boundaries(4), (0.25, 0.5, 0.75, 1.0), 2.8016)
    assert one == pytest.approx(0.80, abs=1e-3)
    assert 0.77 < four < one


def test_a_look_that_adds_no_information_spends_nothing():
    b = look_boundary([0.5, 0.8], 0.8, final=False)
    assert math.isinf(b.boundary) and b.alpha == 0.0


def test_nothing_is_left_after_a_final_look():
    assert math.isinf(look_boundary([0.5, 1.0], 1.2, final=True).boundary)


def test_a_single_look_at_the_review_date_is_read_at_the_nominal_level():
    assert look_boundary([], 0.7, final=True).boundary == pytest.approx(1.95996, abs=1e-4)


def test_a_look_that_reaches_the_planned_information_before_the_review_date_is_final():
    b = look_boundary([0.5], 1.1, final=False)
    assert b.final and b.spent_fraction == 1.0
