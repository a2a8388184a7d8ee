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


#: the data complete a week when they run to this time of its Sunday (a Sunday-noon export does not)
WEEK_COMPLETE_FROM = dt.time(23, 0)


def latest_complete_week(last_timestamp: dt.datetime | dt.date) -> IsoWeek:
    """The latest ISO week the data cover to its end.

    A timestamp completes its week when it falls on the Sunday at or after 23:00 (an export taken
    on Sunday at noon leaves that Sunday's afternoon out: the week before is the latest complete
    one). A date without time (an explicit "complete through" day) completes its week when it is
    the Sunday. Otherwise the week before the timestamp's week is the latest complete one.
    """
    if isinstance(last_timestamp, dt.datetime):
        day, complete = last_timestamp.date(), last_timestamp.time() >= WEEK_COMPLETE_FROM
    else:
        day, complete = last_timestamp, True
    week = IsoWeek.of(day)
    return week if day.isoweekday() == 7 and complete else week.shift(-1)


def completeness_note(last_timestamp: dt.datetime | dt.date, source: str = "the data run to") -> str:
    """In words: which week is the latest complete one, and why (for the first line of a run)."""
    week = latest_complete_week(last_timestamp)
    timed = isinstance(last_timestamp, dt.datetime)
    when = f"{last_timestamp:%A %Y-%m-%d %H:%M}" if timed else f"{last_timestamp:%A %Y-%m-%d}"
    if week == IsoWeek.of(last_timestamp.date() if timed else last_timestamp):
        return f"{source} {when}: {week} is the latest complete week"
    return (f"{source} {when}, before Sunday {WEEK_COMPLETE_FROM:%H:%M} of that week: "
            f"{week} is the latest complete week")
