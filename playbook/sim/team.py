"""What the team does after a week's run, as the method says (docs/method.md, "How the loop carries across weeks").

Pure decisions on what the run produced (its verdicts, its overdue list, its plan), so that they are tested
without notebooks (tests/test_season.py); the season (``sim.season``) carries them out with the hand-off's own
functions (``playbook experiments add / close``) and the shop's levers (``sim.shop.Intervention``):

* a plan ready (``reports/<WEEK>/experiments_plan.csv``) is started: its row added to the experiments table, its
  customers drawn 50/50 from the cohort's (the shop writes the assignments), the lever on for the treatment arm
  from its start date;
* keep: the test ends and the lever is rolled out to the whole cohort from the next Monday;
* stop or adjust: the test ends and the lever is rolled back from the next Monday; the same lever on the same
  cohort is not started again unchanged (an analyst would choose another lever or scope), nor a kept one;
* continue or provisional: the test goes on (read again at its next look);
* a review that shows as overdue (its review date passed with no verdict, because the team skipped that week's
  run) is closed (``playbook experiments close``) and its lever rolled back.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from playbook.core.vocabulary import Decision
from playbook.sim.shop import Intervention


@dataclass(frozen=True)
class Action:
    """One thing the team did, for the season's log and the reveal."""

    week: str
    what: str  # start | keep | roll back | continue | close overdue | skip run | refused
    experiment_id: str
    text: str


def next_monday(sunday: dt.date) -> dt.date:
    return sunday + dt.timedelta(days=1)


def on_verdict(interventions: list[Intervention], experiment_id: str, decision: str, sunday: dt.date
               ) -> tuple[list[Intervention], str]:
    """The levers after a verdict of ``decision`` on ``experiment_id`` read in the week ending ``sunday``, and
    what the team did (keep, roll back, continue)."""
    d = Decision(decision)
    if d.undecided:
        return interventions, "continue"
    monday = next_monday(sunday)
    out, what = [], "roll back"
    for iv in interventions:
        if iv.experiment_id == experiment_id and iv.end is None:
            out.append(replace(iv, end=monday))
            if d == Decision.KEEP:
                out.append(Intervention(iv.lever, iv.cohort, monday))
                what = "keep"
        else:
            out.append(iv)
    return out, what


def on_close(interventions: list[Intervention], experiment_id: str, sunday: dt.date) -> list[Intervention]:
    """The levers after closing a test: its lever rolled back from the next Monday."""
    monday = next_monday(sunday)
    return [replace(iv, end=monday) if iv.experiment_id == experiment_id and iv.end is None else iv
            for iv in interventions]


def on_start(interventions: list[Intervention], experiment_id: str, lever: str, cohort: str, start: dt.date,
             design: str) -> list[Intervention]:
    """The levers after starting a test: randomized, on its treatment arm; pre/post, on the whole cohort."""
    return [*interventions, Intervention(lever, cohort, start, None, experiment_id, whole_cohort=design != "randomized")]


def forgets(draw: float, share: float, looks_due: list[str], reviewed_before: set[str]) -> bool:
    """The team forgets this week's run (away, busy) with probability ``share`` when a test's review falls due
    this week and that test has never been read: the review becomes overdue next week."""
    return draw < share and any(e not in reviewed_before for e in looks_due)
