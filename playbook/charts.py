"""Charts for the notebooks (seaborn / matplotlib). They draw; they compute nothing new."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from playbook.config import Config
from playbook.metrics import SHOP, MetricResults

_PERCENT_SCALE = {"percent": 100.0}


def _scale(fmt: str) -> float:
    return _PERCENT_SCALE.get(fmt, 1.0)


def metric_trends(results: MetricResults, config: Config, metrics: list[str] | None = None, cols: int = 3):
    """Weekly shop-wide trend of each metric, with its trailing-baseline band and decision thresholds.

    Weeks not mature yet (returns still arriving) are drawn hollow and labelled, never as a low value.
    """
    names = [m for m in (metrics or results.definitions) if m != "reason_mix" and m not in results.unavailable]
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        defn = results.definitions[name]
        s = results.series(name)
        k = _scale(defn.format)
        mature, young = s[s.mature], s[~s.mature]
        ax.plot(mature["week_start"], mature["value"] * k, marker="o", ms=3, color="#2b6cb0")
        if not young.empty:
            ax.plot(young["week_start"], young["value"] * k, marker="o", ms=4, ls="none", mfc="white", color="#a0aec0",
                    label="not mature yet")
        base = mature.tail(results.settings.baseline_weeks + 1).head(results.settings.baseline_weeks)
        if len(base) >= 3:
            mu, sd = base["value"].mean() * k, base["value"].std(ddof=1) * k
            ax.axhspan(mu - 2 * sd, mu + 2 * sd, color="#bee3f8", alpha=0.5, lw=0, label="baseline ±2 sd")
        row = config.row_for(name)
        if row and row.rule == "bands":
            ax.axhline(float(row.params["red_below"]) * k, color="#c53030", lw=1, ls="--", label="red below")
            if "amber_below" in row.params:
                ax.axhline(float(row.params["amber_below"]) * k, color="#b7791f", lw=1, ls=":", label="amber below")
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylabel({"percent": "%", "points": "points", "days": "days", "currency": "money"}.get(defn.format, ""), fontsize=8)
        if not young.empty or row:
            ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def reason_mix_by(results: MetricResults, slice_col: str = "category", weeks: int = 8):
    """Share of returned units per reason code for each value of ``slice_col`` over the last mature weeks."""
    mix = results.reason_mix
    mix = mix[(mix.slice == slice_col) & mix.mature]
    last = sorted(mix.week_start.unique())[-weeks:]
    mix = mix[mix.week_start.isin(last)]
    table = mix.pivot_table(index="slice_value", columns="reason_code", values="units", aggfunc="sum", fill_value=0)
    shares = table.div(table.sum(axis=1), axis=0) * 100
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(shares), 3) + 1.2))
    left = np.zeros(len(shares))
    palette = sns.color_palette("tab10", n_colors=len(shares.columns))
    for colour, reason in zip(palette, shares.columns):
        ax.barh(shares.index, shares[reason], left=left, color=colour, label=reason)
        left += shares[reason].to_numpy()
    ax.set_xlabel(f"% of returned units (mature delivery weeks {len(last)})")
    ax.legend(fontsize=7, ncol=3, bbox_to_anchor=(0, 1.02, 1, 0.2), loc="lower left")
    fig.tight_layout()
    return fig
