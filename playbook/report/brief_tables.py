"""The step pages' tables in the brief's words: the one home of what a stakeholder reads on a step page.

A step page comes in two editions (:func:`playbook.report.pages.notebook_to_html`): the analyst's full
page keeps the step's raw table (ids, method codes, ``ci_low``/``ci_high``, p-values: what an analyst
checks), the brief edition shows the table built here instead (the notebook's cell tagged ``brief-only``).
These tables speak as the index does (:mod:`playbook.report.story`): metrics by their titles, changes in
their unit ("-5.1 points"), intervals as "-9.4 to -0.8 points", money in the shop's currency, methods and
chance in words, a change tested as its lever's description on its cohort in words.

Every builder returns a :class:`playbook.report.pages.Table` (a card per row on a phone); cells are plain
text escaped by the table's template, or Markup whose data parts were escaped where they were built.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from playbook.core.formats import date_text
from playbook.core.settings import Config
from playbook.core.vocabulary import Design, Direction, GuardrailState
from playbook.journal.track_record import TrackRecord
from playbook.metrics.display import Display, chance_words, cohort_words, lever_words, method_words, plain
from playbook.report import story
from playbook.report.pages import Column, Table, display_for
from playbook.report.pages import verdict_table as index_verdict_table
from playbook.steps.experiments import Comparison, ComparisonSection, MetricComparison
from playbook.steps.levers import LeverPlan
from playbook.steps.review import ExperimentVerdict, review_section

#: how a metric is read in a comparison, by its role
ROLE_WORDS = {"primary": "main metric", "guardrail": "guardrail"}


def change_tested(lever: str | None, cohort: str | None, config: Config) -> str:
    """A change as the index names it: "size guide on the product page on dresses"."""
    return f"{lever_words(lever, config)} on {cohort_words(cohort or '')}"


def harm_line(metric: str, tolerance: float | None, bad: Direction, d: Display) -> str:
    """A guardrail's tolerance as the harm it stands for: "harm beyond +1.0 points" (a rise is harm),
    "harm beyond -EUR 2" (a fall is)."""
    if tolerance is None:
        return "no tolerance registered"
    return f"harm beyond {d.change(metric, tolerance if bad == Direction.HIGHER else -tolerance)}"


def _state_words(m: MetricComparison) -> str:
    """What the read says: a guardrail's state (with its follow-up date), the main metric's window."""
    if m.role == "guardrail":
        words = GuardrailState(m.state).words
        return words + (f" (read again on {date_text(m.follow_up_on)})" if m.follow_up_on else "")
    w = m.window
    if w is None:
        return "read"
    if w.readable:
        return f"read at {w.k_read} days"
    return f"not readable at {w.k_registered} days yet" + (
        f" (readable on {date_text(w.readable_on)})" if w.readable_on else "")


def _expected_words(m: MetricComparison, d: Display) -> str:
    if m.role == "guardrail":
        return harm_line(m.metric, m.tolerance, m.good_direction.opposite, d)
    if m.expected_low is None or m.expected_high is None:
        return "no range registered"
    return d.span(m.metric, *sorted((m.expected_low, m.expected_high)))


COMPARISON_COLUMNS = (Column("change tested"), Column("metric"), Column("read as"), Column("effect", number=True),
                      Column("95 % interval", number=True), Column("chance"), Column("expected"), Column("result"),
                      Column("method"), Column("note"))


def comparison_table(comparisons: Iterable[Comparison], config: Config) -> Table:
    """Step 4's comparisons in words: one row per metric read (the main metric, each guardrail, a
    shorter-window view under its own name), its effect and interval in its unit, the chance in words,
    the range expected or the guardrail's harm line, the result and the method in words."""
    d = display_for(config)
    rows = []
    for c in comparisons:
        change = change_tested(c.experiment.get("lever"), c.experiment.get("cohort"), config)
        for m in (c.primary, *c.guardrails):
            e = m.estimate
            note = e.error or (str(c.views.get("pre_period", "")) if c.design == Design.PRE_POST and m.role == "primary"
                               else "")
            rows.append((change, d.title(m.metric), ROLE_WORDS.get(m.role, plain(m.role)), d.change(m.metric, e.estimate),
                         d.span(m.metric, e.ci_low, e.ci_high), chance_words(e.p_value), _expected_words(m, d),
                         _state_words(m), method_words(e.method), note))
        short = c.views.get("shorter_window")
        if short is not None:
            e, metric = short["estimate"], short["metric"]
            rows.append((change, d.title(metric), "shorter-window view, not the registered metric",
                         d.change(metric, e.estimate), d.span(metric, e.ci_low, e.ci_high), chance_words(e.p_value),
                         "not compared", "shown for information", method_words(e.method), e.error or ""))
    return Table(COMPARISON_COLUMNS, tuple(rows))


def verdict_table(verdicts: list[ExperimentVerdict], comparisons: list[ComparisonSection], config: Config,
                  root: str = "../") -> Table:
    """Step 5's verdicts as the index shows them (the same lines, :func:`playbook.report.story.verdict_line`):
    the change tested, the decision, the effect against the range expected, the money per week in the
    shop's currency, the guardrails and the next step. ``root`` leads from the page to the week's folder."""
    d = display_for(config)
    compared = {c.experiment_id: c for c in comparisons}
    lines = [story.verdict_line(i, r, compared.get(r.experiment_id), d, config)
             for i, r in enumerate(review_section(verdicts))]
    return index_verdict_table(lines, root)


TRACK_RECORD_COLUMNS = (Column("week"), Column("change tested"), Column("decision"), Column("effect (95 % interval)"),
                        Column("expected"), Column("money per week", number=True))


def track_record_table(record: TrackRecord, config: Config) -> Table:
    """The last weeks' verdicts in words: the change, the decision, the effect with its interval in the
    metric's unit, the range expected and the money per week in the shop's currency."""
    d = display_for(config)
    rows = []
    for r in record.table().to_dict("records"):
        metric = str(r.get("primary_metric") or "")
        low, high = r.get("expected_low"), r.get("expected_high")
        effect = d.interval(metric, _number(r.get("estimate")), _number(r.get("ci_low")), _number(r.get("ci_high")))
        expected = d.span(metric, *sorted((low, high))) if _number(low) is not None and _number(high) is not None \
            else "no range registered"
        money = _number(r.get("money_per_week"))
        rows.append((str(r.get("week", "")), change_tested(r.get("lever"), r.get("cohort"), config),
                     story.decision_words(str(r.get("decision", "")), short=True),
                     f"{d.title(metric)}: {effect}" if metric else effect, expected,
                     d.money(money) if money is not None else ""))
    return Table(TRACK_RECORD_COLUMNS, tuple(rows))


def _number(v: object) -> float | None:
    """A cell of a journal table as a number (None for an empty or missing one)."""
    return None if v is None or pd.isna(v) else float(v)


def guardrail_table(plan: LeverPlan, config: Config) -> Table:
    """Step 3's guardrails in words: the metric's title, the harm it must not show and what it watches."""
    d = display_for(config)
    return Table((Column("guardrail"), Column("must not show"), Column("what it watches")),
                 tuple((d.title(g.metric), harm_line(g.metric, g.tolerance, g.bad_direction, d), g.description)
                       for g in plan.guardrails))


def options_table(plan: LeverPlan, config: Config) -> Table:
    """Step 3's planned run and its alternatives in words: what, where, the change it is powered for in
    the main metric's unit, the weeks to 80 % power and the power it reaches within the longest run."""
    d = display_for(config)
    metric = plan.primary_metric
    rows = tuple((o.description, cohort_words(o.cohort), d.change(metric, o.expected_change),
                  f"{o.weeks_uncapped}" if o.weeks_uncapped else "beyond any run",
                  f"{o.power:.0%}" if o.power is not None else "not computable",
                  "yes: the plan" if o.kind == plan.chosen_option else "no", o.note) for o in plan.options)
    return Table((Column("option"), Column("cohort"), Column("powered for", number=True),
                  Column("weeks to 80 % power", number=True), Column(f"power within {plan.max_weeks} weeks", number=True),
                  Column("chosen"), Column("note")), rows)


def plan_table(plan: LeverPlan, config: Config) -> Table:
    """The experiment written for the week (the ready experiments row) in words: the change, the design,
    the main metric and the range expected in its unit, the dates and the looks; empty when not ready."""
    row = plan.experiments_row()
    if row is None:
        return Table((Column("plan"),), (("not ready: no experiment is written this week",),))
    d = display_for(config)
    design = Design(plan.design).words if plan.design in set(Design) else plain(plan.design)
    cells = (("change tested", change_tested(plan.lever, plan.cohort, config)), ("design", design),
             ("main metric", d.title(plan.primary_metric)),
             ("expected change", d.span(plan.primary_metric, *sorted((plan.expected_low, plan.expected_high)))),
             ("starts", date_text(plan.start_date)), ("first look", date_text(plan.first_look_date)),
             ("review", date_text(plan.review_date)), ("weekly reads", str(plan.planned_looks)))
    if plan.control_cohort:
        cells += (("compared with", cohort_words(plan.control_cohort)),)
    return Table(tuple(Column(label) for label, _ in cells), (tuple(value for _, value in cells),))


def reason_mix_table(mix: pd.DataFrame) -> Table:
    """Step 2's reason mix of the weak cohort's slice (``steps.cohorts.cohort_reason_mix``: shares and
    rates in percent) in words: each reason as people say it, its share of the returns and the share of
    units returned for it, over the window against usual."""
    def pct(v: object) -> str:
        return "" if v is None or pd.isna(v) else f"{float(v):.1f} %"

    rows = tuple((plain(r["reason"]), pct(r["window %"]), pct(r["baseline %"]), pct(r["window rate %"]),
                  pct(r["baseline rate %"])) for r in mix.to_dict("records"))
    return Table((Column("reason"), Column("share of returns, recent weeks", number=True),
                  Column("share of returns, usually", number=True),
                  Column("units returned for it, recent weeks", number=True),
                  Column("units returned for it, usually", number=True)), rows)
