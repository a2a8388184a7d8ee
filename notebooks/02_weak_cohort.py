# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python (returns-playbook)
#     language: python
#     name: returns-playbook
# ---

# %% [markdown]
# # 2. Weak cohort: where money is really lost this week
#
# **Why this step exists.** A team can act on one thing at a time. This step finds the one cohort, a
# slice of the shop (a category, a channel, a region, first-time or repeat customers) crossed with a
# return reason, whose returns rose above its own normal level by more than chance allows, and ranks
# such cohorts by the money at stake. A tiny slice with 3 returns out of 8 units looks alarming but
# proves nothing; a large slice a few points above its norm costs real money.
#
# **How to read it.** Every slice x reason is compared over the latest delivery weeks that have had the
# full return window (the *window*) with its own rate over the weeks before (the *baseline*). The funnel
# plot shows observed / expected returns against the number expected: points outside the dashed curve
# are beyond what chance explains; the curves are wide on the left, where slices are small. With
# hundreds of slices tested, some pass by luck: the [q-value](../docs/method.md#q-value) (Benjamini-Hochberg [false discovery rate](../docs/method.md#false-discovery-rate))
# corrects for that, and *flagged* means a q-value below the run's false discovery rate (4 %) and above the 95 % limit. The shrunk rate pulls small
# slices towards their group (empirical Bayes), so a ranking is not led by noise. The *excess cost* is
# the returns above the slice's norm, valued at its return cost.
#
# Two checks stand between a flagged slice and a lever. **Does another slice explain it?** A spike in one
# category also lifts every channel, region and customer type that buys that category; a slice is
# *explained* by another when, without the other's units, its own rise is within chance. **Is it a few
# customers?** Units bought by one customer are not independent: the test counts customers, and a rise
# that one or a few accounts carry is an account to check, not a cohort to fix. The [weak cohort](../docs/method.md#weak-cohort) is the
# flagged slice with the largest excess cost that nothing else explains and that many customers carry.
#
# **New to the method?** The [method guide](../docs/method.md#step-2) explains step 2 of the weekly loop,
# the decision table and every term ([glossary](../docs/method.md#glossary)).

# %% tags=["parameters"]
# Parameters: papermill injects the weekly values; an empty value means the default.
# week: ISO week such as 2026-W47; empty means the latest complete week of the data.
# data: folder of CSV/Parquet files or database URL; empty means data_samples/.
#   A database password comes from PLAYBOOK_DB_PASSWORD, never from here.
# config: YAML configuration; empty means playbook/config/playbook.yaml.
# run_dir: where summary.json and artifacts go; empty means the scratch folder
#   reports/interactive/WEEK/ (make weekly writes reports/WEEK/ and records the journal).
# journal: decision journal folder; empty means journal/.
# snapshot: the weekly run's stored data (make weekly passes it); empty opens the data here,
#   reusing the cached snapshot of this week while the data files are unchanged.
week = ""
data = ""
config = ""
run_dir = ""
journal = ""
snapshot = ""
# window_weeks: mature delivery weeks compared; baseline_weeks: the weeks before them.
window_weeks = 4
baseline_weeks = 8

# %% tags=["analyst-only"]
from IPython.display import HTML, display

from playbook.report import charts
from playbook.report.rendering import html_table, say
from playbook.run import session
from playbook.steps import cohorts

run = session.start(week, data, config, run_dir, journal, snapshot)
analysis = cohorts.analyse(run.snapshot, run.config, window_weeks, baseline_weeks)
print(run.describe())
print(cohorts.describe(analysis))

# %% [markdown] tags=["analyst-only"]
# ## The slices ranked

# %% tags=["analyst-only"]
display(HTML(html_table(cohorts.ranking_display(analysis))))
fig = charts.funnel_plot(analysis)

# %% [markdown] tags=["analyst-only"]
# *How to read it:* a point above the dashed curve rose more than chance allows for a slice of its size;
# diamonds are flagged slices, the star is the weak cohort, and only the largest excess costs are labelled.

# %% [markdown] tags=["analyst-only"]
# ## What explains what, and who carries each rise
# Every slice that rose is listed with the money at stake, how many customers make 80 % of its excess, and
# whether a lever fits. The sentences below say which slices the weak cohort explains, which rises are real
# on their own, and which belong to a few accounts.

# %% tags=["analyst-only"]
display(HTML(html_table(cohorts.candidates_display(analysis))))
for sentence in cohorts.candidates_in_words(analysis):
    display(say(sentence))

# %% [markdown]
# ## The weak cohort: its reason mix, its trend, what customers say
# Customer comments are shown as text, exactly as typed (escaped, never interpreted as markup). The last
# table puts the cohort's reason in context: each slice of its dimension against the *shop's* rate,
# where structurally high slices (those that are always high) show up, and how many the binomial limits
# alone would flag when slices vary more than chance (overdispersion).

# %%
weak = analysis.weak
if weak is None:
    display(say(f"No cohort stands out this week: nothing is flagged at a {cohorts.FDR:.0%} false discovery rate."))

# %% tags=["analyst-only"]
if weak is not None:
    display(HTML(html_table(cohorts.cohort_reason_mix(analysis))))

# %% tags=["brief-only"]
from playbook.report import brief_tables
from playbook.report.pages import table_html

if weak is not None:
    display(HTML(table_html(brief_tables.reason_mix_table(cohorts.cohort_reason_mix(analysis)))))

# %%
if weak is not None:
    fig = charts.cohort_trend_chart(cohorts.cohort_trend(run.snapshot, run.config.metrics, weak),
                                    charts.cohort_trend_title(weak), weak.expected_rate, analysis.windows.window)
    display(HTML(html_table(cohorts.top_comments(run.snapshot, run.config.metrics, analysis))))

# %% tags=["analyst-only"]
if weak is not None:
    structural = cohorts.structural_view(analysis)
    display(say(f"Against the shop norm (overdispersion phi = {structural.attrs['phi']:.1f}):"))
    display(HTML(html_table(structural)))

# %% [markdown]
# *How to read the trend:* the line is the cohort's weekly rate for its reason, the dashed line its usual
# rate, the shaded weeks the window compared; hollow points are weeks whose returns are still arriving.

# %%
run.write(**analysis.sections)
display(say(analysis.conclusion, "Conclusion."))

# %% [markdown] tags=["analyst-only"]
# ## Try it
# - **Longer windows**: `window_weeks = 6` and `baseline_weeks = 12` compare six recent weeks against twelve
#   before them: smaller rises become visible and fewer slices are flagged by chance, but a new problem
#   takes longer to show.
# - **Shorter windows**: `window_weeks = 2` reacts faster, flags less (two weeks carry fewer units).
# - **Another week**: `week = "2026-W45"` shows which cohort the method would have chosen then.
