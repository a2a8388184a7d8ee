"""ISO weeks: the playbook's unit of time.

A run for week W uses only what was known at the end of W (Sunday 23:59:59.999999), so that
re-rendering a past week gives the same numbers whatever was added to the data since.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str | "IsoWeek") -> "IsoWeek":
        """Parse ``2026-W47``; raises ValueError naming the expected form."""
        if isinstance(text, IsoWeek):
            return text
        m = _WEEK_RE.match(str(text).strip())
        if not m:
            raise ValueError(f"week {text!r} is not an ISO week of the form YYYY-Www (e.g. 2026-W47)")
        year, week = int(m.group(1)), int(m.group(2))
        try:
            dt.date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ValueError(f"week {text!r} does not exist: {year} has no ISO week {week}") from None
        return cls(year, week)

    @classmethod
    def of(cls, day: dt.date | dt.datetime) -> "IsoWeek":
        iso = day.isocalendar()
        return cls(iso[0], iso[1])

    @property
    def monday(self) -> dt.date:
        return dt.date.fromisocalendar(self.year, self.week, 1)

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.monday, dt.time.min)

    @property
    def end(self) -> dt.datetime:
        """The last instant of the week: everything known at this instant is in the run."""
        return dt.datetime.combine(self.sunday, dt.time.max)

    def shift(self, weeks: int) -> "IsoWeek":
        return IsoWeek.of(self.monday + dt.timedelta(weeks=weeks))

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def latest_complete_week(last_timestamp: dt.datetime | dt.date) -> IsoWeek:
    """The latest ISO week whose Sunday the data reach.

    Data whose last record falls on a Sunday complete that week; otherwise the week before
    the last record's week is the latest complete one.
    """
    day = last_timestamp.date() if isinstance(last_timestamp, dt.datetime) else last_timestamp
    week = IsoWeek.of(day)
    return week if day.isoweekday() == 7 else week.shift(-1)

