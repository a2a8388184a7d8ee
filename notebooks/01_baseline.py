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
# # 1. Baseline: this week against its trailing baseline
#
# **Why this step exists.** Dashboards can improve while the business quietly degrades: return costs
# climb in one category, promotions deepen, deliveries slip. Every week starts by capturing a few key
# metrics against their own trailing 8-week baseline, with red triggers written in advance in the
# decision table (`playbook/config/playbook.yaml`), so nobody argues about thresholds after the fact.
#
# **How to read it.** Each metric gets a status, green, amber or red, with the reason in words and, for
# red, the action the decision table prescribes. Metrics that count returns are shown for the latest
# delivery week that has had the full return window (returns arrive days after delivery): a week still
# collecting returns is *[not mature](../docs/method.md#maturity)* and is never shown as a low rate. A metric whose table is missing
# from the data is reported as *not available*, never as zero.
#
# **New to the method?** The [method guide](../docs/method.md#step-1) explains step 1 of the weekly loop,
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

# %% tags=["analyst-only"]
from IPython.display import HTML, display

from playbook.report import charts
from playbook.report.rendering import html_table, say
from playbook.run import session
from playbook.steps import baseline

run = session.start(week, data, config, run_dir, journal, snapshot)
print(run.describe())

# %% [markdown] tags=["analyst-only"]
# ## Data quality
# Validation ran before any metric: a broken contract would have stopped here with the table, the
# column, the rule and example ids. What remains are warnings the team should know about.

# %% tags=["analyst-only"]
warnings = baseline.warnings_table(run.dataset)
display(HTML(html_table(warnings, max_rows=100)) if len(warnings) else say("No data-quality warning."))

# %% [markdown]
# ## Statuses of the week

# %%
step = baseline.analyse(run.snapshot, run.config)
display(HTML(html_table(baseline.status_table(step.statuses, run.config.currency), max_rows=100)))

# %% [markdown]
# ## Trends with their baseline band and thresholds
# Blue points are mature weeks; hollow grey points are weeks whose returns are still arriving. The band
# is the trailing baseline's mean plus or minus two standard deviations; dashed lines are the decision
# table's thresholds.

# %%
fig = charts.metric_trends(step.results, run.config, step.statuses)

# %% [markdown]
# *How to read it:* red metrics come first, framed, with an X on their week and "RED" in their title; the
# shaded band is the usual range, dashed and dotted lines are the decision table's red and amber lines.

# %% [markdown]
# ## Reason mix by category
# Share of returned units by reason over the last mature delivery weeks: where a category's bar is
# dominated by one reason, the weak-cohort step (notebook 02) will test whether it is really weak or
# just small.

# %%
fig = charts.reason_mix_by(step.results, "category")

# %% [markdown]
# *How to read it:* each bar is one category's returns split by reason; the hatched first segment is the
# reason whose share rose most this week, so its share can be compared across categories at a glance.

# %%
run.write(**step.sections)
display(say(step.conclusion, "Conclusion."))

# %% [markdown] tags=["analyst-only"]
# ## Try it
# - **Another week**: set `week = "2026-W45"` in the parameters cell and run all. Every number is the one
#   known at the end of that week (Sunday 23:59:59): returns and orders recorded later are left out.
# - **Other thresholds**: copy `playbook/config/playbook.yaml`, change a red line of the decision table,
#   and set `config` to your copy: the statuses and their actions change, the metric values do not.
# - **Another shop**: set `data` to a folder of CSV or Parquet files (see docs/data_contract.md); a broken
#   file stops at the first cell with the table, the column, the rule and example ids.
