"""The one entry shape of a step of the weekly loop.

Every step module (``playbook.steps.baseline`` ... ``playbook.steps.review``) has
``analyse(snapshot, config, <earlier steps' typed sections>, <the analyst's choices>) -> result``,
and every result says what it writes and what it concludes::

    result = cohorts.analyse(run.snapshot, run.config)
    run.write(**result.sections)          # the typed summary.json sections of this step
    display(say(result.conclusion))       # one sentence the data fill in

so that a notebook stays a thin page over its step, and the weekly runner, a test or another
tool can run a step without the notebook.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class StepResult(Protocol):
    """What a step's ``analyse`` returns."""

    @property
    def sections(self) -> dict[str, Any]:
        """The summary.json sections this step writes, by name (typed section objects)."""
        ...

    @property
    def conclusion(self) -> str:
        """The step's finding in one sentence."""
        ...


# --- what each notebook of the cycle reads and writes ----------------------------------------------

@dataclass(frozen=True)
class StepIO:
    """What a notebook of the cycle takes from the week's run folder and what it leaves there.

    ``writes`` / ``reads``: summary.json sections (``report.summary``); ``stages`` / ``reads_staged``:
    the journal kinds whose entries it stages in the run folder (``journal.store.stage``) or reads
    from there (step 5's track record counts step 3's staged plan). The weekly runner derives from
    these which notebooks wait for which (``run.graph``): a notebook runs once every notebook that
    writes what it reads has finished, so steps 1, 2 and 4 can run at the same time. A read that is
    not declared here would see a section missing (or an earlier week's), and
    ``tests/test_step_graph.py`` checks the declarations against the notebooks' own text.
    """

    notebook: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    reads_staged: tuple[str, ...] = ()


#: The notebooks of the cycle in their numbered order, the order of a sequential run.
CYCLE: tuple[StepIO, ...] = (
    StepIO("01_baseline", writes=("baseline", "data_quality")),
    StepIO("02_weak_cohort", writes=("weak_cohort", "weak_cohort_candidates", "weak_cohort_set_aside")),
    StepIO("03_lever_design", writes=("lever",), reads=("weak_cohort", "weak_cohort_candidates"), stages=("plan",)),
    StepIO("04_comparison", writes=("comparisons", "overdue", "running")),
    # the review reads the baseline's money, step 2's cohort and candidates, step 3's lever and its staged
    # plan (the track record as it will be once the week is recorded), and step 4's comparisons
    StepIO("05_j7_review", writes=("review", "next_action", "track_record"),
           reads=("baseline", "weak_cohort", "weak_cohort_candidates", "lever", "comparisons"),
           stages=("verdict",), reads_staged=("plan",)),
)


def step_io(notebook: str) -> StepIO | None:
    """The declaration of the cycle's notebook ``notebook`` (its stem, ``03_lever_design``); None for another."""
    return next((s for s in CYCLE if s.notebook == notebook), None)
