"""One entry of the decision journal: a plan (step 3) or a verdict (step 5), its columns and their checks."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from playbook.core.vocabulary import DECISIONS
from playbook.core.weeks import IsoWeek
from playbook.stats.results import clean_number

PLAN, VERDICT = "plan", "verdict"
KINDS = (PLAN, VERDICT)
#: Columns every journal file has.
BASE_COLUMNS = (
    "week", "kind", "experiment_id", "lever", "cohort", "primary_metric", "design",
    "expected_low", "expected_high", "estimate", "ci_low", "ci_high",
    "decision", "why", "recorded_at",
)
#: Columns added with counted looks: ``look`` (1, 2, ... per experiment, one per review week),
#: ``k_read`` (the return window in days the estimate was actually read at) and ``follow_ups``
#: (dated reads a keep depends on). A journal written before them gains them in its header on its next
#: write; its older rows are kept byte for byte and read with those fields empty.
LOOK_COLUMNS = ("look", "k_read", "follow_ups")
#: Columns added with the track record in money: a verdict's effect as money per week for the whole
#: cohort (positive: saved), with its interval; empty when the metric has no money value.
MONEY_COLUMNS = ("money_per_week", "money_ci_low", "money_ci_high")
#: Column added with the analyst's recorded choices: the parameters of a plan set by the analyst instead
#: of the defaults (``lever=size_guide; design=pre_post``), empty for a plan on the defaults and for verdicts.
CHOICE_COLUMNS = ("chosen_by_analyst",)
#: Columns added with looks by information (``stats.sequential``): a verdict's information read over the
#: information planned, and the z boundary its look spent alpha at (empty: the look spent nothing, e.g.
#: a provisional read); the next looks' boundaries are computed from the earlier looks' fractions.
SPENDING_COLUMNS = ("information_fraction", "boundary")
#: Column added with the valuation on the settled window: the return window (days) of the read a verdict's
#: money was valued on (longer than ``k_read`` when a longer window was readable; empty: no money value).
VALUATION_COLUMNS = ("money_window_days",)
#: Columns appended after the first version of the journal, in the order they came.
LATER_COLUMNS = LOOK_COLUMNS + MONEY_COLUMNS + CHOICE_COLUMNS + SPENDING_COLUMNS + VALUATION_COLUMNS
COLUMNS = BASE_COLUMNS + LATER_COLUMNS
NUMBER_COLUMNS = ("expected_low", "expected_high", "estimate", "ci_low", "ci_high") + MONEY_COLUMNS + SPENDING_COLUMNS
INT_COLUMNS = ("look", "k_read", "money_window_days")
TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in NUMBER_COLUMNS + INT_COLUMNS)

_KIND_ORDER = {PLAN: 0, VERDICT: 1}


class JournalError(ValueError):
    """The journal file cannot be read as a decision journal (the message names file and line)."""


# --- one entry -----------------------------------------------------------------------------

def _number(name: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not a boolean ({value!r})")
    value = clean_number(value)
    if value is None:  # NaN / inf
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _whole(name: str, value: Any) -> int | None:
    """A whole number >= 1 (look, k_read) or None."""
    number = _number(name, value)
    if number is None:
        return None
    if number != int(number) or number < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(number)


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__} {value!r}")
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character")
    return value


@dataclass(frozen=True)
class JournalEntry:
    """One plan (notebook 03) or one verdict (notebook 05) of one experiment.

    Attributes:
        week: ISO week of the run that wrote the entry (``2026-W47``).
        kind: ``plan`` or ``verdict``.
        experiment_id: stable identifier of the experiment across weeks (plan and verdict share it).
        lever, cohort, primary_metric, design: what is tested, on whom, judged on what, how.
        expected_low, expected_high: the expected impact range on the primary metric (plans).
        estimate, ci_low, ci_high: the measured effect and its interval (verdicts).
        decision: ``keep`` / ``adjust`` / ``stop`` / ``continue`` / ``provisional`` for verdicts, empty for plans.
        why: the reason in words (may contain commas, quotes, newlines; never customer text).
        recorded_at: UTC timestamp ``YYYY-MM-DDTHH:MM:SSZ``; filled by ``record_week`` when None.
    """

    week: str
    kind: str
    experiment_id: str
    lever: str = ""
    cohort: str = ""
    primary_metric: str = ""
    design: str = ""
    expected_low: float | None = None
    expected_high: float | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    decision: str = ""
    why: str = ""
    recorded_at: str | None = None
    look: int | None = None
    k_read: int | None = None
    follow_ups: str = ""
    money_per_week: float | None = None
    money_ci_low: float | None = None
    money_ci_high: float | None = None
    chosen_by_analyst: str = ""
    information_fraction: float | None = None
    boundary: float | None = None
    money_window_days: int | None = None

    def __post_init__(self) -> None:
        try:
            week = str(IsoWeek.parse(self.week))
        except ValueError as exc:
            raise ValueError(f"week: {exc}") from None
        object.__setattr__(self, "week", week)
        for name in ("kind", "experiment_id", "lever", "cohort", "primary_metric", "design", "decision", "why",
                     "follow_ups", "chosen_by_analyst"):
            object.__setattr__(self, name, _text(name, getattr(self, name)))
        for name in NUMBER_COLUMNS:
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        for name in INT_COLUMNS:
            object.__setattr__(self, name, _whole(name, getattr(self, name)))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.experiment_id.strip():
            raise ValueError("experiment_id is empty: plans and verdicts are matched on it")
        if self.kind == VERDICT and self.decision not in DECISIONS:
            raise ValueError(f"decision of a verdict must be one of {', '.join(DECISIONS)}, got {self.decision!r}")
        if self.kind == PLAN and self.decision:
            raise ValueError(f"decision must be empty for a plan (decisions are verdicts), got {self.decision!r}")
        if self.recorded_at is not None:
            object.__setattr__(self, "recorded_at", _timestamp_text(self.recorded_at))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict in column order (numbers as floats or None)."""
        return {name: clean_number(getattr(self, name)) for name in COLUMNS}

    def _row(self) -> list[str]:
        row = []
        for name in COLUMNS:
            value = getattr(self, name)
            if name in NUMBER_COLUMNS:
                row.append("" if value is None else repr(float(value)))
            elif name in INT_COLUMNS:
                row.append("" if value is None else str(int(value)))
            else:
                row.append("" if value is None else str(value))
        return row


def _timestamp_text(value: Any) -> str:
    """A UTC timestamp as ``YYYY-MM-DDTHH:MM:SSZ`` (naive datetimes are taken as UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"recorded_at {value!r} is not an ISO timestamp") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"recorded_at must be a datetime or an ISO timestamp, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
