"""Which notebooks of a weekly run wait for which, derived from what each declares it reads and writes.

The declarations are the cycle's (``core.step.CYCLE``): a notebook waits for the notebooks of the
run that write a summary section it reads, or stage a journal kind it reads. For the sample's
cycle: 01, 02 and 04 read nothing from each other; 03 reads step 2's cohort; 05 reads the
sections of 01 to 04 and step 3's staged plan. A notebook the cycle does not declare (a team's own
step, a test's) may read anything written before it: it waits for every notebook before it, and
every notebook after it waits for it, as in a sequential run.

How many notebooks run at once: ``PLAYBOOK_JOBS`` (default: the machine's cores; 1 runs them one
after the other in their numbered order, as a sequential run does).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from playbook.core.step import step_io

JOBS_ENV = "PLAYBOOK_JOBS"


@dataclass(frozen=True)
class StepNode:
    """A notebook of the run, its place in the sequential order (1-based) and the notebooks it waits for."""

    path: Path
    number: int
    after: tuple[str, ...]

    @property
    def stem(self) -> str:
        return self.path.stem


def step_graph(notebooks: Sequence[Path]) -> list[StepNode]:
    """The run's notebooks, in their given (sequential) order, each with the stems of those it waits for.

    Assumes ``notebooks`` is a sequential order that works: a declared read of a section that only a
    later notebook of the run writes is refused (ValueError naming both), never silently reordered.
    """
    nodes: list[StepNode] = []
    for i, path in enumerate(notebooks):
        before = [p.stem for p in notebooks[:i]]
        io = step_io(path.stem)
        if io is None:  # undeclared: reads whatever was written before it
            nodes.append(StepNode(path, i + 1, tuple(before)))
            continue
        wanted = set(io.reads) | {f"staged {kind}" for kind in io.reads_staged}
        after = []
        for j, other in enumerate(notebooks):
            theirs = step_io(other.stem)
            if theirs is None:
                if j < i:
                    after.append(other.stem)
                continue
            given = wanted & (set(theirs.writes) | {f"staged {kind}" for kind in theirs.stages})
            if given and j >= i:
                raise ValueError(f"{path.name} reads {', '.join(sorted(given))}, which {other.name} writes after it in "
                                 f"this run's order; list {other.name} before {path.name}")
            if given:
                after.append(other.stem)
        nodes.append(StepNode(path, i + 1, tuple(after)))
    return nodes


def describe(nodes: Sequence[StepNode]) -> str:
    """The run's order in one line: ``01_baseline, 02_weak_cohort, 04_comparison at once; 03_lever_design after
    02_weak_cohort; ...``."""
    first = [n.stem for n in nodes if not n.after]
    parts = [f"{', '.join(first)} at once" if len(first) > 1 else f"{first[0]} first"] if first else []
    parts += [f"{n.stem} after {', '.join(n.after)}" for n in nodes if n.after]
    return "; ".join(parts)


def jobs_from_env(env: Mapping[str, str] = os.environ) -> int:
    """``PLAYBOOK_JOBS`` as a number of notebooks run at once; the machine's cores when unset or empty."""
    text = env.get(JOBS_ENV, "").strip()
    if not text:
        return cores()
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(f"{JOBS_ENV}={text!r}: give a whole number of notebooks to run at once, 1 or more "
                         f"(1 runs them one after the other; unset: the {cores()} cores of this machine)")
    return jobs


def cores() -> int:
    """The cores this process may use (its CPU affinity where the system tells it, else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
