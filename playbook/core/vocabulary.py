"""The playbook's vocabulary: statuses, verdicts, guardrail states, directions and designs, each defined once.

Every module that says "red", "keep", "not shown safe", "lower is better" or "pre/post" imports
the word from here. The enums are ``StrEnum``: a member is its word in JSON, in f-strings and in
comparisons with the plain string, so files written before the enums read back unchanged.
"""
from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Metric statuses of the weekly baseline (step 1), from the decision table."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    UNAVAILABLE = "not available"


GREEN, AMBER, RED, UNAVAILABLE = Status.GREEN, Status.AMBER, Status.RED, Status.UNAVAILABLE


class Decision(StrEnum):
    """The verdict words of the review: the one home of this vocabulary (the journal uses it).

    keep, adjust and stop are decisions (the seed's meanings: roll out; change the lever or its scope;
    roll back); continue and provisional are not yet decisions, each with the date of the next read.
    """

    KEEP = "keep"          # the effect is shown at the look's boundary and nothing blocks it: roll out
    ADJUST = "adjust"      # the planned read did not show the effect, or showed it with a blocker: change the lever or its scope
    STOP = "stop"          # harm shown (the primary past its harm boundary, or a guardrail breached): roll back
    CONTINUE = "continue"  # not conclusive yet at this share of the planned information: read again on a date
    PROVISIONAL = "provisional"  # the pre-registered window cannot be read yet: no keep, a date to read it

    @property
    def undecided(self) -> bool:
        """The test goes on: it is read again (continue, provisional)."""
        return self in (Decision.CONTINUE, Decision.PROVISIONAL)


KEEP, ADJUST, STOP, CONTINUE, PROVISIONAL = (Decision.KEEP, Decision.ADJUST, Decision.STOP, Decision.CONTINUE,
                                             Decision.PROVISIONAL)
DECISIONS: tuple[str, ...] = tuple(d.value for d in Decision)


class GuardrailState(StrEnum):
    """What a guardrail's interval says about harm beyond its tolerance (non-inferiority reading)."""

    SAFE = "safe"                      # the one-sided bound rules out harm beyond the tolerance
    NOT_SHOWN_SAFE = "not_shown_safe"  # the bound reaches past the tolerance, harm is not shown
    HARM_LIKELY = "harm_likely"        # the estimate is past the tolerance and harm is shown (bound past no effect)
    BREACHED = "breached"              # the whole interval is past the tolerance
    NOT_MEASURED = "not_measured"      # no interval (the reason goes with it)

    @property
    def words(self) -> str:
        """The state as people say it ("not shown safe yet", "harm likely")."""
        return "not shown safe yet" if self is GuardrailState.NOT_SHOWN_SAFE else self.value.replace("_", " ")


class Direction(StrEnum):
    """Which way a metric moves when things get better (or, for a guardrail's harm, worse)."""

    HIGHER = "higher"
    LOWER = "lower"

    @property
    def opposite(self) -> Direction:
        return Direction.LOWER if self is Direction.HIGHER else Direction.HIGHER

    def signed(self, change: float) -> float:
        """``change`` signed so that a move in this direction is positive."""
        return change if self is Direction.HIGHER else -change


class Design(StrEnum):
    """How a change is deployed and compared (notebook 04)."""

    RANDOMIZED = "randomized"  # A/B by customer: the comparison is between arms
    PRE_POST = "pre_post"      # not randomized: difference in differences against a control cohort

    @property
    def words(self) -> str:
        """The design as people say it ("pre/post")."""
        return self.value.replace("_", "/")
