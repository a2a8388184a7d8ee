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
# # 4. Comparison: treatment against control, with confidence intervals
#
# **Why this step exists.** A lever is only kept when the data show it worked, and showing it needs a
# fair comparison. For every experiment whose review date falls in this week, this step compares the
# treated group with its control and gives each difference a 95 % [confidence interval](../docs/method.md#confidence-interval): the range of
# effects compatible with the data.
#
# **How to read it.** *Randomized* tests (A/B by customer) first check the split twice: among all
# assigned customers and among the exposed customers that are analysed (a [sample ratio mismatch](../docs/method.md#srm) in
# either means the comparison cannot be trusted). Returns arrive days after delivery, so the [return rate](../docs/method.md#return-rate)
# is read **at the window registered in the plan** (a 14-day metric at 14 days), with the Kaplan-Meier
# method that uses every unit up to the end of the week. When too few customers have had that many days
# yet, the metric is **not readable**: the table says when it will be, and a shorter-window view may be
# shown under its own name (for example the return rate within 3 days), never as the registered metric. Customers, not
# lines, were randomized, so intervals are computed on per-customer sums. *Pre/post* changes, which were
# not randomized, compare the cohort's weekly change with its [control cohort](../docs/method.md#control-cohort)'s ([difference-in-differences](../docs/method.md#difference-in-differences)).
#
# **[Guardrails](../docs/method.md#guardrail)** are read against their [tolerance](../docs/method.md#tolerance): *safe* (the interval rules out harm beyond the
# tolerance), *not shown safe* (the interval still reaches past it: a dated follow-up read is given),
# *harm likely* (the estimate is past it), *breached* (the whole interval is past it), or *not measured*
# (with the reason). In the forest plot, the green band is the range expected in step 3; a red dashed
# line is a guardrail's tolerance.
#
# **New to the method?** The [method guide](../docs/method.md#step-5) explains steps 5 and 6 of the weekly loop,
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

from playbook.report import charts, rendering
from playbook.report.rendering import html_table, say
from playbook.run import session
from playbook.steps import experiments

run = session.start(week, data, config, run_dir, journal, snapshot)
step = experiments.analyse(run.snapshot, run.config, run.journal_dir)  # open ones read again
comparisons = step.comparisons
print(run.describe())
print(f"{len(comparisons)} experiment(s) due for review this week.")

# %% [markdown]
# ## Estimates and intervals

# %% tags=["analyst-only"]
if comparisons:
    display(HTML(html_table(experiments.comparison_table(comparisons), float_format="{:.4g}")))

# %% tags=["brief-only"]
from playbook.report import brief_tables
from playbook.report.pages import table_html

if comparisons:
    display(HTML(table_html(brief_tables.comparison_table(comparisons, run.config))))

# %%
if comparisons:
    fig = charts.forest_plot(comparisons, run.config)

# %% [markdown]
# *How to read it:* each dot is an effect with its 95 % interval; panels of one metric share a scale, the
# hatched band is the range the plan expected, the shaded side is harm beyond a guardrail's tolerance.

# %% [markdown] tags=["analyst-only"]
# ## Checks behind each estimate
# Split check, the follow-up window chosen, warnings, and the return curves (randomized) or the event
# study (pre/post).

# %% tags=["analyst-only"]
for c in comparisons:
    display(HTML(rendering.comparison_checks(c)))
    fig = charts.kaplan_meier_chart(c) if c.design == "randomized" else charts.event_study_chart(c, run.config)

# %% [markdown] tags=["analyst-only"]
# *How to read them:* return curves show the share of units returned by day since delivery in each arm (a
# lower curve returns less); an event study's grey weeks before the change should hover around zero.

# %% [markdown]
# ## Overdue reviews
# An experiment whose review date passed without any verdict in the journal was never read: its result
# is unknown and its cohort stays blocked for new levers. It is listed here until the team reads it (by
# setting its review date to this week) or closes it.

# %%
for item in step.overdue:
    display(say(item.text))
if not step.overdue:
    display(say("No review is overdue."))

# %%
run.write(**step.sections)
display(say(step.conclusion, "Conclusion."))

# %% [markdown] tags=["analyst-only"]
# ## Try it
# - **A later week**: `week = "2026-W48"` (once the data reach it) reads the same experiments with one more
#   week of returns: the Kaplan-Meier read at the registered window becomes possible for more customers.
# - **Another journal**: `journal` pointing to an empty folder shows every experiment as if never read before
#   (look 1), which is how a first look is judged.
