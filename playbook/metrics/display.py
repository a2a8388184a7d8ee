"""How numbers read, on every page and in every sentence: names, units, currency and plain words.

One home for display: the status sentences of the rules, the notebooks' tables and the report's
pages all format a metric through here, never by hand. A metric's ``format`` (percent, points,
days, currency, number) says how its value reads, and a difference of a percent metric reads in
percentage points ("-6.5 points (-8.8 to -4.1)"); money carries the shop's currency (``currency``
in the configuration) and its period ("EUR 5,161 over 4 weeks"). Ids stay in summary.json; the
pages show the metric's title. Every function returns plain text: the caller escapes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from playbook.core.formats import NOT_AVAILABLE, date_text, finite, money_text, signed
from playbook.core.settings import MetricSettings
from playbook.metrics.dictionary import metric_named

__all__ = ["NOT_AVAILABLE", "Display", "chance_words", "change_parts", "change_text", "date_text", "money_text",
           "signed", "value_text"]

#: how likely an excess or an effect is to be chance, in words, by its q- or p-value (upper bounds)
_CHANCE_WORDS = ((0.001, "very unlikely to be chance"), (0.01, "unlikely to be chance"),
                 (0.05, "probably not chance"), (0.2, "could well be chance"), (math.inf, "likely chance"))


def chance_words(q: float | None) -> str:
    """A q-value (or p-value) in words only: the value itself is the analyst's (their tables show it).

    The bands follow the usual reading of false-discovery levels (Benjamini & Hochberg 1995 use 5 %):
    below 0.001 "very unlikely to be chance", below 0.05 "probably not chance", above 0.2 "likely chance".
    """
    if not finite(q):
        return NOT_AVAILABLE
    return next(w for bound, w in _CHANCE_WORDS if q < bound)


def value_text(v: float | None, fmt: str, currency: str = "", beside: tuple[float | None, ...] = ()) -> str:
    """A value in its format: "14.9 %", "11.6 points", "2.8 days", "EUR 1,449", "0.0123"; money shown with
    the values ``beside`` it in one sentence takes their decimals (:func:`playbook.core.formats.money_text`)."""
    if not finite(v):
        return NOT_AVAILABLE
    if fmt == "percent":
        return f"{v * 100:.1f} %"
    if fmt == "points":
        return f"{v:.1f} points"
    if fmt == "days":
        return f"{v:.1f} days"
    if fmt == "currency":
        return money_text(v, currency, beside=beside)
    return f"{v:,.3g}"


def change_parts(d: float, fmt: str, currency: str = "", beside: tuple[float | None, ...] = ()) -> tuple[str, str]:
    """A signed difference as (number, unit): ("-6.5", "points") for a percent metric, ("+EUR 805", "")."""
    size = abs(d)
    if fmt == "currency":
        return money_text(d, currency, sign=True, beside=beside), ""
    if fmt in ("percent", "points", "days"):
        shown = size * 100 if fmt == "percent" else size
        return signed(d, f"{shown:.1f}"), "days" if fmt == "days" else "points"
    return signed(d, f"{size:,.3g}"), ""


def change_text(d: float | None, fmt: str, currency: str = "", beside: tuple[float | None, ...] = ()) -> str:
    """A difference, signed; a percent metric's in percentage points ("-6.5 points")."""
    if not finite(d):
        return NOT_AVAILABLE
    number, unit = change_parts(d, fmt, currency, beside)
    return f"{number} {unit}" if unit else number


@dataclass(frozen=True)
class Display:
    """The report's number formats for one shop: its currency and its metric settings (the return window)."""

    currency: str = "EUR"
    settings: MetricSettings = MetricSettings()

    def title(self, metric: str) -> str:
        """The metric's name for people ("Return rate within 14 days of delivery"); its id if unknown."""
        found = metric_named(metric, self.settings)
        return found.title if found is not None else metric

    def format_of(self, metric: str) -> str:
        found = metric_named(metric, self.settings)
        return found.format if found is not None else "number"

    def money(self, amount: float | None, period: str | None = None, sign: bool = False,
              beside: tuple[float | None, ...] = ()) -> str:
        """An amount in the shop's currency: "EUR 5,161 over 4 weeks"."""
        return money_text(amount, self.currency, period, sign, beside)

    def value(self, metric: str, v: float | None, beside: tuple[float | None, ...] = ()) -> str:
        """A metric's value in its unit: "14.9 %", "11.6 points", "2.8 days", "EUR 1,449"."""
        return value_text(v, self.format_of(metric), self.currency, beside)

    def change(self, metric: str, d: float | None, beside: tuple[float | None, ...] = ()) -> str:
        """A difference of a metric, signed: a percent metric's in percentage points ("-6.5 points")."""
        return change_text(d, self.format_of(metric), self.currency, beside)

    def bounds(self, metric: str, low: float | None, high: float | None, beside: tuple[float | None, ...] = ()) -> str:
        """An interval's bounds in the metric's unit, without repeating it: "(-8.8 to -4.1)"."""
        if not (finite(low) and finite(high)):
            return ""
        fmt, near = self.format_of(metric), (low, high, *beside)
        return f"({change_parts(low, fmt, self.currency, near)[0]} to {change_parts(high, fmt, self.currency, near)[0]})"

    def interval(self, metric: str, estimate: float | None, low: float | None, high: float | None) -> str:
        """An effect and its interval: "-6.5 points (-8.8 to -4.1)"; the unit written once."""
        if not finite(estimate):
            return NOT_AVAILABLE
        bounds = self.bounds(metric, low, high, (estimate,))
        change = self.change(metric, estimate, (low, high))
        return f"{change} {bounds}" if bounds else change

    def scale_of(self, metric: str) -> int:
        """What a stored value is multiplied by to read as shown (100 for a percent metric, else 1)."""
        return 100 if self.format_of(metric) == "percent" else 1
