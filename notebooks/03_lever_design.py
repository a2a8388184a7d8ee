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
# # 3. Lever and expected impact: one change, decided before acting
#
# **Why this step exists.** A team that changes five things at once learns nothing. This step picks one
# corrective lever for the [weak cohort](../docs/method.md#weak-cohort) found in step 2, one [primary metric](../docs/method.md#primary-metric), and writes down, *before*
# acting, the impact range it expects and the [guardrails](../docs/method.md#guardrail) it will not trade away. Writing the range first
# is what makes the [J+7](../docs/method.md#j7) review honest: the result is judged against a promise, not rationalised after.
#
# **How to read it.** The default lever is the decision table's lever for the cohort's dominant return
# reason (a fit/size message for size reasons, a clearer description for *not as described*, packaging
# for *damaged*...); the analyst can name another through the `lever` parameter. The [expected range](../docs/method.md#expected-range) is
# an absolute change of the cohort's [return rate](../docs/method.md#return-rate) (negative is better); by default the lever is expected
# to remove 30 % to 70 % of the cohort's excess. The power section is computed for the read the review will
# really make: the return rate within the metric's window (K days, 14 by default) among the units delivered at least
# that long before the review date, with customers as clusters (one customer's lines move together).
# The review date is the first weekly review at which that read has 80 % power; the J+7 look checks the
# split, the guardrails and the early trend, and can stop a harmful change but never keep one. A plan
# that cannot reach power within the configured maximum (`experiments.max_weeks`) lists its
# alternatives (the wider parent slice, pooled with the next flagged cohort, a bigger lever, a longer
# run), each with its power and duration, and the ready row takes the first that reaches power. When
# none does, no row is written: running it would only produce an inconclusive verdict. The plan ends
# as an entry in the [decision journal](../docs/method.md#decision-journal) and, when it can reach power, a ready row for the `experiments` table.
#
# **New to the method?** The [method guide](../docs/method.md#step-3) explains steps 3 and 4 of the weekly loop,
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
# lever: empty means the decision table's lever for the cohort's dominant reason.
lever = ""
# design: randomized (A/B by customer) or pre_post (before/after against a control cohort).
design = "randomized"
# expected_low / expected_high: absolute change of the primary metric; None means the default range.
expected_low = None
expected_high = None
# cohort: empty means step 2's weak cohort; else any slice, e.g. "channel=app" or
#   "category=shoes;reason_code=size_too_small" (default reason: the weak cohort's).
cohort = ""

# %% tags=["analyst-only"]
from IPython.display import HTML, display

from playbook.journal import store as decision_journal
from playbook.journal import under_test
from playbook.report import summary
from playbook.report.rendering import html_table, say
from playbook.run import session
from playbook.steps import levers

run = session.start(week, data, config, run_dir, journal, snapshot)
weak = summary.require_section(run.run_dir, "weak_cohort", "02_weak_cohort")
candidates = summary.read_section(run.run_dir, "weak_cohort_candidates") or []
print(run.describe())

# %%
step = levers.analyse(run.snapshot, run.config, weak, candidates, lever=lever, design=design,
                      expected_low=expected_low, expected_high=expected_high, cohort=cohort,
                      under_way=under_test.cohorts_in_test(run.snapshot, run.journal_dir))
plan = step.plan
if plan is not None:
    for title, text in levers.describe(plan):
        display(say(text, title))

# %% [markdown]
# ## Guardrails, power and duration

# %% tags=["analyst-only"]
if plan is not None:
    display(HTML(html_table(levers.guardrail_table(plan))))
    display(say(plan.power_message, "Power."))
    display(HTML(html_table(levers.options_table(plan))))
    display(HTML(html_table(levers.experiments_table(plan))))

# %% tags=["brief-only"]
from playbook.report import brief_tables
from playbook.report.pages import table_html

if plan is not None:
    for table in (brief_tables.guardrail_table(plan, run.config), brief_tables.options_table(plan, run.config),
                  brief_tables.plan_table(plan, run.config)):
        display(HTML(table_html(table)))

# %%
from playbook.report import charts

if plan is not None:
    fig = charts.power_curve(plan)

# %% [markdown]
# *How to read it:* each curve is the chance that the review's read detects the planned change after that
# many weeks; the review is set at the first week a curve crosses the dashed 80 % line (dotted line, dated).

# %% tags=["analyst-only"]
entries = [levers.journal_entry(plan, str(run.week))] if plan is not None else []
if plan is not None:
    print(levers.write_experiments_row(plan, run.run_dir).message)
_ = decision_journal.stage(run.run_dir, run.week, entries, kind="plan")  # recorded with the report

# %%
run.write(**step.sections)
display(say(step.conclusion, "Conclusion."))

# %% [markdown] tags=["analyst-only"]
# ## Try it
# - **Another lever**: `lever = "size_guide"` plans your lever instead of the decision table's (the plan,
#   its expected range and the journal record say it was the analyst's choice).
# - **No randomization possible**: `design = "pre_post"` plans a before/after against a [control cohort](../docs/method.md#control-cohort);
#   the whole cohort is exposed, so the same effect is read sooner, but the read is weaker evidence.
# - **Your own expected range**: `expected_low = -0.03` and `expected_high = -0.01` (absolute change of the
#   return rate); a smaller weaker end needs a longer run to reach power, and the power table says how long.
# - **Another cohort**: `cohort = "channel=app"` plans the lever for any slice, read over the same weeks as
#   step 2's window against the weeks before them (add `;reason_code=...` for another reason).
# - In a weekly run, put the same lines in a file and run `make weekly PARAMS=choices.yaml`.
