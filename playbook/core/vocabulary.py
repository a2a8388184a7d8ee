"""The playbook's vocabulary: status words, verdict words and guardrail states, each defined once.

Every module that says "red", "keep" or "not shown safe" imports the word from here.
"""
from __future__ import annotations

from enum import Enum

#: Metric statuses of the weekly baseline (step 1), from the decision table.
GREEN, AMBER, RED, UNAVAILABLE = "green", "amber", "red", "not available"


class Decision(str, Enum):
    """The verdict words of the J+7 review: the one home of this vocabulary (the journal uses it)."""

    KEEP = "keep"
    ADJUST = "adjust"
    STOP = "stop"
    PROVISIONAL = "provisional"  # the pre-registered window cannot be read yet: no keep, a date to read it


KEEP, ADJUST, STOP, PROVISIONAL = (d.value for d in Decision)
DECISIONS: tuple[str, ...] = tuple(d.value for d in Decision)


class GuardrailState(str, Enum):
    """What a guardrail's interval says about harm beyond its tolerance (non-inferiority reading)."""

    SAFE = "safe"                      # the one-sided bound rules out harm beyond the tolerance
    NOT_SHOWN_SAFE = "not_shown_safe"  # the bound reaches past the tolerance, the estimate does not
    HARM_LIKELY = "harm_likely"        # the estimate is past the tolerance
    BREACHED = "breached"              # the whole interval is past the tolerance
    NOT_MEASURED = "not_measured"      # no interval (the reason goes with it)
