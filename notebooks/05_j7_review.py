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
# # 5. J+7 review: keep, adjust, stop or provisional, with the proof in the journal
#
# **Why this step exists.** After a change, the team decides, by a rule written in advance rather than by
# the mood of the meeting, whether to keep it, adjust it or stop it, and writes the decision and its
# proof in the [decision journal](../docs/method.md#decision-journal), so that the [track record](../docs/method.md#track-record) of the team's levers builds up week after week.
#
# **How to read it.** The rule:
# - **stop** when a [guardrail](../docs/method.md#guardrail) is *breached* (its whole interval past its [tolerance](../docs/method.md#tolerance)) or the primary
#   metric's interval lies entirely on the bad side;
# - **provisional** when the [primary metric](../docs/method.md#primary-metric) cannot be read yet at the window registered in the plan
#   (for example 14 days after delivery): no keep before that date, which is given;
# - **keep** only when the improvement is shown at this look, the effect is at least as strong as the
#   range promised in step 3, the split is as planned, no guardrail is *harm likely* or *not measured*,
#   and nothing makes the read untrustworthy (few customers, a pre-trend); a guardrail *not shown safe*
#   is kept only with the date of its follow-up read, written in the journal;
# - **adjust** otherwise.
#
# Every review of an experiment is a *look*, numbered in the journal (look 1, 2, ...). Looking again
# and again raises the chance of a lucky good result, so the evidence a keep needs is spread over the
# planned looks: very strong at the first look, close to the usual 95 % at the last. A keep far outside
# the [expected range](../docs/method.md#expected-range) (more than twice its far end, or the opposite direction) carries the flag **check
# before rolling out**, with the likely reasons. The weekly review script then answers the four questions
# of the meeting, and the journal shows the last 8 weeks of verdicts.
#
# **New to the method?** The [method guide](../docs/method.md#step-6) explains steps 6 and 7 of the weekly loop,
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

from playbook.journal import store as decision_journal
from playbook.journal import track_record
from playbook.report import summary
from playbook.report.rendering import html_table, say
from playbook.run import session
from playbook.steps import review

run = session.start(week, data, config, run_dir, journal, snapshot)
week_summary = summary.load_summary(run.run_dir)
comparisons = summary.require_section(run.run_dir, "comparisons", "04_comparison")
# looks numbered from the journal, each effect in money per week, the next action
step = review.analyse(run.snapshot, run.config, comparisons, baseline=week_summary.baseline,
                      weak=week_summary.weak_cohort, candidates=week_summary.weak_cohort_candidates,
                      lever=week_summary.lever, journal_dir=run.journal_dir, week=run.week)
print(run.describe())

# %% [markdown]
# ## Verdicts

# %% tags=["analyst-only"]
display(HTML(html_table(review.verdict_table(step.verdicts), float_format="{:.4g}") if step.verdicts
             else "<p>No experiment was due for review this week.</p>"))

# %% tags=["brief-only"]
from playbook.report import brief_tables
from playbook.report.pages import table_html

display(HTML(table_html(brief_tables.verdict_table(step.verdicts, comparisons, run.config)) if step.verdicts
             else "<p>No experiment was due for review this week.</p>"))

# %%
_ = decision_journal.stage(run.run_dir, run.week, [v.journal_entry(str(run.week)) for v in step.verdicts], kind="verdict")

# %% [markdown]
# ## The weekly review, answered from the data

# %%
for question, answer in step.script:
    display(say(answer, question))

# %% [markdown]
# ## Track record: the last 8 weeks of verdicts in the decision journal

# %%
record = track_record.track_record_with_staged(run.journal_dir, run.week, run.run_dir)
display(say(record.summary(run.config.currency)))

# %% tags=["analyst-only"]
display(HTML(html_table(record.table(), float_format="{:.4g}")))

# %% tags=["brief-only"]
display(HTML(table_html(brief_tables.track_record_table(record, run.config))))

# %%
from playbook.report import charts

fig = charts.track_record_chart(record, run.config.currency)

# %% [markdown]
# *How to read it:* each marker is a reviewed lever's money per week with its interval (circle kept, X
# stopped, diamond adjusted), placed at its verdict's week; the step line is what the kept levers save each week.

# %%
run.write(**step.sections, track_record=record.section())
display(say(step.conclusion, "Conclusion."))

# %% [markdown] tags=["analyst-only"]
# ## Try it
# - **Another week**: `week = "2026-W46"` replays that week's review as it was known then; the journal is only
#   written by `make weekly`, never by a run in JupyterLab, so exploring changes no record.
# - **A fresh journal**: `journal` pointing to an empty folder numbers every verdict as look 1 and shows an
#   empty track record.
