"""Which tests hold which cohorts this week: the experiments table read with the decision journal.

One test per cohort: step 3 plans on no cohort a test still holds and step 5 names none as the next
action; step 4 reads the same states (closed, decided, undecided) to know what is due. Both steps read
this module, so the rule is written once.
"""
from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from playbook.core.formats import date_text
from playbook.core.vocabulary import Decision
from playbook.core.weeks import IsoWeek
from playbook.data.contract import cohorts_overlap
from playbook.data.dataset import Snapshot
from playbook.journal.entry import VERDICT
from playbook.journal.store import read_journal


def closed(exp: dict[str, Any], on: dt.date) -> bool:
    """The test was closed (``contract.CLOSE_COLUMNS``) on or before ``on``: no longer read or listed."""
    value = exp.get("closed_on")
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value) or str(value).strip() == "":
        return False
    return pd.Timestamp(value).date() <= on


def experiments_table(snap: Snapshot) -> pd.DataFrame:
    out = snap.tables["experiments"].order_by("experiment_id").to_pandas()
    for col in ("start_date", "review_date"):
        out[col] = pd.to_datetime(out[col]).dt.date
    out["control_cohort"] = out["control_cohort"].fillna("").astype(str)
    return out


def latest_verdicts(journal_dir: str | os.PathLike, before: IsoWeek) -> dict[str, tuple[str, int]]:
    """Per experiment, its latest verdict before ``before`` and how many weeks it was read."""
    j = read_journal(journal_dir)
    j = j[(j["kind"] == VERDICT) & j["week"].map(lambda w: IsoWeek.parse(w) < before)]
    out = {}
    for exp_id, g in j.groupby("experiment_id"):
        g = g.assign(_week=g["week"].map(IsoWeek.parse)).sort_values("_week", kind="stable")
        out[str(exp_id)] = (str(g["decision"].iloc[-1]), int(g["week"].nunique()))
    return out


@dataclass(frozen=True)
class CohortInTest:
    """A test that holds its cohort this week: open (not closed, not yet decided) or kept at last week's
    review (its lever is being rolled out). No second test is planned on a cohort overlapping it."""

    experiment_id: str
    cohort: str
    review_date: dt.date
    state: str  # "open" | "kept"

    def words(self, cohort: str) -> str:
        if self.state == "kept":
            return f"{cohort or 'the whole shop'} was just kept by {self.experiment_id} (its lever is being rolled out)"
        return f"{cohort or 'the whole shop'} is being tested by {self.experiment_id}, read on {date_text(self.review_date)}"


def cohorts_in_test(snap: Snapshot, journal_dir: str | os.PathLike | None = None) -> list[CohortInTest]:
    """The tests that hold their cohort in the analysed week: started by its end, not closed, and either not
    yet decided (review date from this week on, or the latest verdict continue or provisional) or kept at
    last week's review. Step 3 plans on no cohort overlapping them and step 5 names none as the next
    action (``contract.cohorts_overlap``): both read this one list."""
    if not snap.has("experiments"):
        return []
    table = experiments_table(snap)
    latest = latest_verdicts(journal_dir, snap.week) if journal_dir is not None else {}
    last_week = _verdicts_in(journal_dir, snap.week.shift(-1)) if journal_dir is not None else {}
    out = []
    for exp in table.to_dict("records"):
        eid = str(exp["experiment_id"])
        if exp["start_date"] > snap.week.sunday or closed(exp, snap.week.sunday):
            continue
        seen = latest.get(eid)
        decided = seen is not None and not Decision(seen[0]).undecided
        if not decided and (exp["review_date"] >= snap.week.monday or seen is not None):
            out.append(CohortInTest(eid, str(exp["cohort"]), exp["review_date"], "open"))
        elif last_week.get(eid) == Decision.KEEP:
            out.append(CohortInTest(eid, str(exp["cohort"]), exp["review_date"], "kept"))
    return out


def holding_test(cohort: str, under_way: list[CohortInTest]) -> CohortInTest | None:
    """The first test under way whose cohort overlaps ``cohort`` (None: it is free)."""
    return next((t for t in under_way if cohorts_overlap(t.cohort, cohort)), None)


def _verdicts_in(journal_dir: str | os.PathLike, week: IsoWeek) -> dict[str, str]:
    j = read_journal(journal_dir)
    j = j[(j["kind"] == VERDICT) & (j["week"] == str(week))]
    return {str(r.experiment_id): str(r.decision) for r in j.itertuples(index=False)}


