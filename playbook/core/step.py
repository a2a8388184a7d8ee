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
