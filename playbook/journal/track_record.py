"""The team's own record: the latest verdict of each experiment over the last weeks, counted, and the
kept levers in money per week (the only unit in which effects on different cohorts and metrics add up)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from playbook.core.formats import money_text
from playbook.core.jsonmodel import from_json
from playbook.core.vocabulary import ADJUST, CONTINUE, DECISIONS, KEEP, PROVISIONAL, STOP
from playbook.core.weeks import IsoWeek
from playbook.journal.entry import VERDICT
from playbook.journal.store import apply_staged, journal_path, read_journal
from playbook.stats.results import clean_number, jsonable

# "why" stays in the journal file; the report's table keeps to what fits on a line
_TABLE_COLUMNS = ("week", "experiment_id", "lever", "cohort", "primary_metric", "expected_low", "expected_high",
                  "estimate", "ci_low", "ci_high", "decision", "money_per_week")


@dataclass(frozen=True, eq=False)
class TrackRecord:
    """The team's own record over the last ``weeks`` weeks up to ``week``.

    Attributes:
        week, weeks, first_week: the window (``first_week`` .. ``week``, both included).
        verdicts: the latest verdict of each experiment reviewed in the window, newest first.
        counts: number of levers kept / adjusted / stopped / continuing / provisional.
        money_per_week: what the kept levers save per week, summed in money (the only unit in which
            effects on different cohorts and metrics add up), with ``money_ci`` its interval: the
            half-widths combined as independent (root of the sum of squares; asymmetric sides kept).
        kept_without_money: kept levers whose effect has no money value (not in the sum).
    """

    week: str
    weeks: int
    first_week: str
    verdicts: pd.DataFrame
    counts: dict[str, int]
    money_per_week: float | None
    money_ci: tuple[float, float] | None
    kept_without_money: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_reviewed(self) -> int:
        return int(len(self.verdicts))

    def table(self) -> pd.DataFrame:
        """One row per reviewed experiment (newest first), for display in the report."""
        return self.verdicts.loc[:, list(_TABLE_COLUMNS)].reset_index(drop=True)

    def money_words(self, currency: str = "") -> str:
        """What the kept levers save, in the shop's ``currency``: "about EUR 2,152 a week (EUR 1,221 to
        EUR 3,083)"; empty when no kept lever has a money value."""
        if self.money_per_week is None:
            return ""
        low, high = self.money_ci or (None, None)
        near = (self.money_per_week, low, high)
        text = f"about {money_text(self.money_per_week, currency, beside=near)} a week"
        if low is not None and high is not None:
            text += f" ({money_text(low, currency, beside=near)} to {money_text(high, currency, beside=near)})"
        return text

    def summary(self, currency: str = "") -> str:
        """The record in one sentence, money in the shop's ``currency``."""
        window = f"{self.first_week} to {self.week}"
        if not self.n_reviewed:
            return f"No lever reviewed from {window} yet."
        c = self.counts
        text = (f"From {window}: {self.n_reviewed} lever(s) reviewed, {c[KEEP]} kept, {c[ADJUST]} adjusted, "
                f"{c[STOP]} stopped" + (f", {c[CONTINUE]} continuing (not conclusive yet)" if c.get(CONTINUE) else "")
                + (f", {c[PROVISIONAL]} provisional (pre-registered window not readable yet)"
                   if c.get(PROVISIONAL) else "") + ".")
        if self.money_per_week is not None:
            text += f" The kept levers save {self.money_words(currency)} in return costs and discounts."
        if self.kept_without_money:
            text += f" Kept, with no money value (not summed): {', '.join(self.kept_without_money)}."
        return text

    def section(self) -> TrackRecordSection:
        """The record as the ``track_record`` section of summary.json."""
        return from_json(TrackRecordSection, jsonable(self.to_dict()), "track_record")

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "weeks": self.weeks,
            "first_week": self.first_week,
            "n_reviewed": self.n_reviewed,
            "counts": dict(self.counts),
            "money_per_week": clean_number(self.money_per_week),
            "money_ci": [clean_number(v) for v in self.money_ci] if self.money_ci else None,
            "kept_without_money": list(self.kept_without_money),
            "verdicts": [
                {k: clean_number(v) for k, v in record.items()}
                for record in self.table().to_dict("records")
            ],
        }


@dataclass(frozen=True)
class TrackRecordVerdict:
    """One reviewed experiment of the ``track_record`` section (its latest verdict in the window)."""

    week: str
    experiment_id: str
    lever: str | None
    cohort: str | None
    primary_metric: str | None
    expected_low: float | None
    expected_high: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    decision: str
    money_per_week: float | None


@dataclass(frozen=True)
class TrackRecordSection:
    """The ``track_record`` section of summary.json: the verdicts of the last ``weeks`` weeks, counted,
    and the kept levers' saving in money per week with its interval (None: no kept lever has a money value)."""

    week: str
    weeks: int
    first_week: str
    n_reviewed: int
    counts: dict[str, int]
    money_per_week: float | None
    money_ci: tuple[float, ...] | None
    kept_without_money: tuple[str, ...]
    verdicts: tuple[TrackRecordVerdict, ...]


def _money_sum(kept: pd.DataFrame) -> tuple[float | None, tuple[float, float] | None]:
    """Sum of the kept levers' money per week, and its interval from independent half-widths."""
    valued = kept[kept["money_per_week"].notna()]
    if valued.empty:
        return None, None
    total = float(valued["money_per_week"].sum())
    below = (valued["money_per_week"] - valued["money_ci_low"]).fillna(0.0)
    above = (valued["money_ci_high"] - valued["money_per_week"]).fillna(0.0)
    return total, (total - math.sqrt(float((below ** 2).sum())), total + math.sqrt(float((above ** 2).sum())))


def track_record(journal_dir: str | os.PathLike, week: str | IsoWeek, weeks: int = 8) -> TrackRecord:
    """Verdicts of the ``weeks`` weeks up to and including ``week``, counted, and the kept ones in money.

    An experiment reviewed more than once in the window counts once, with its latest verdict
    (latest week, then latest ``recorded_at``, then last in the file).
    """
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise ValueError(f"weeks must be a positive whole number, got {weeks!r}")
    iso = IsoWeek.parse(week)
    first = iso.shift(-(weeks - 1))
    journal = read_journal(journal_dir)
    window = {str(first.shift(i)) for i in range(weeks)}
    verdicts = journal[(journal["kind"] == VERDICT) & journal["week"].isin(window)].copy()
    verdicts["_order"] = range(len(verdicts))
    verdicts["_week"] = verdicts["week"].map(lambda w: IsoWeek.parse(w))
    verdicts = verdicts.sort_values(["_week", "recorded_at", "_order"], na_position="first", kind="stable")
    latest = verdicts.drop_duplicates("experiment_id", keep="last")
    latest = latest.iloc[::-1].drop(columns=["_order", "_week"]).reset_index(drop=True)

    counts = {d: int((latest["decision"] == d).sum()) for d in DECISIONS}
    kept = latest[latest["decision"] == KEEP]
    money, interval = _money_sum(kept)
    missing = tuple(kept.loc[kept["money_per_week"].isna(), "experiment_id"])
    return TrackRecord(str(iso), weeks, str(first), latest, counts, money, interval, missing)


def track_record_with_staged(journal_dir: str | os.PathLike, week: str | IsoWeek, run_dir: str | os.PathLike,
                             weeks: int = 8) -> TrackRecord:
    """The track record as it will be once this run's staged entries are recorded (the journal is untouched)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        source = journal_path(journal_dir)
        if source.is_file():
            shutil.copyfile(source, journal_path(scratch))
        apply_staged(run_dir, scratch)
        return track_record(scratch, week, weeks)
