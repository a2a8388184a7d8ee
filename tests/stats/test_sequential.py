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

from playbook.stats.sequential import keep_critical_value, obf_boundaries, obf_spending


@pytest.mark.parametrize("looks, published", [
    (1, (1.9600,)),
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
