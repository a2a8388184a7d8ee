"""Overdispersion on real data: cancellation rates of the 37 countries of UCI Online Retail.

Definition used (measured once, asserted with a tolerant range):

- rows with a CustomerID only (406,829 lines; the anonymous quarter of the file has almost
  no cancellations and would mix two populations);
- per Country: events = cancellation lines (InvoiceNo starting with "C"), units = all lines
  (cancellation + sale lines), so the rate is a proportion in [0, 1];
- z-scores against the pooled rate 2.19 %, winsorised at the 10th/90th percentiles,
  phi = mean(z_w^2) (Spiegelhalter 2005 §6.3).

Measured: 37 countries, phi = 13.47 (the unwinsorised mean of z^2 is 69), tau = 1.08
points; 8 countries lie above the unadjusted 99.8 % limit but only 4 above the
overdispersion-adjusted one (USA, Japan, Malta, Czech Republic). Countries are not
binomial draws around one rate: a binomial funnel would send a team after eight of them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from playbook.stats.funnel import funnel_table, overdispersion


@pytest.fixture(scope="module")
def countries(online_retail_path: Path) -> pd.DataFrame:
    df = pd.read_csv(online_retail_path, dtype={"InvoiceNo": str, "StockCode": str},
                     usecols=["InvoiceNo", "CustomerID", "Country"])
    d = df[df["CustomerID"].notna()]
    cancel = d["InvoiceNo"].str.startswith("C")
    return pd.DataFrame({
        "events": cancel.groupby(d["Country"]).sum(),
        "units": d.groupby("Country").size(),
    }).reset_index()


def test_countries_are_heavily_overdispersed(countries):
    od = overdispersion(countries)
    assert od.n_slices == 37
    assert od.overall_rate == pytest.approx(0.02189, abs=5e-5)
    assert 12.5 < od.phi < 14.5  # measured 13.47
    assert od.applied and od.p_value < 1e-20
    assert 0.9e-4 < od.tau2 < 1.5e-4  # measured 1.17e-4, i.e. tau = 1.08 points


def test_unadjusted_limits_flag_twice_as_many_countries_as_adjusted_ones(countries):
    t = funnel_table(countries)
    unadjusted = int(t["above_99_8_unadjusted"].sum())
    adjusted = int(t["above_99_8"].sum())
    assert unadjusted == 8 and adjusted == 4  # measured
    assert set(t.loc[t["above_99_8"], "Country"]) == {"USA", "Japan", "Malta", "Czech Republic"}
    # Germany: z = 17 against the binomial, an ordinary country once tau is accounted for
    germany = t.set_index("Country").loc["Germany"]
    assert germany["above_99_8_unadjusted"] and not germany["flagged"]


def test_usa_is_the_first_weak_cohort_by_excess_events(countries):
    t = funnel_table(countries)
    assert t.loc[0, "Country"] == "USA" and t.loc[0, "rank"] == 1
    assert t["flagged"].sum() == 4
