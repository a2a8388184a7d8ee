"""Chart labels built from data are drawn as literal text, never as matplotlib mathtext (issue 13)."""
from __future__ import annotations

import io

import pandas as pd
from matplotlib import cbook

from playbook.report import charts

TREND = pd.DataFrame({"week_start": pd.date_range("2026-10-05", periods=3, freq="7D"),
                      "rate": [0.10, 0.20, 0.15], "mature": [True, True, False]})


def test_a_data_title_that_is_not_valid_tex_still_draws():
    fig = charts.cohort_trend_chart(TREND, r"knitwear $\frac{x$ x size_too_small")
    fig.savefig(io.BytesIO(), format="png")  # drawn as mathtext, this raised ParseSyntaxException


def test_a_data_title_with_two_dollar_signs_is_not_read_as_tex():
    fig = charts.cohort_trend_chart(TREND, "promo $5 off$ x changed_mind")
    assert not cbook.is_math_text(fig.axes[0].get_title())


def test_plain_keeps_a_text_without_dollar_signs_as_it_is():
    assert charts.plain("knitwear x size_too_small") == "knitwear x size_too_small"
