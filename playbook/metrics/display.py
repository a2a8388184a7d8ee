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

from playbook.core.settings import MetricSettings
from playbook.metrics.dictionary import metric_named

NOT_AVAILABLE = "not available"

#: how likely an excess or an effect is to be chance, in words, by its q- or p-value (upper bounds)
_CHANCE_WORDS = ((0.001, "very unlikely to be chance"), (0.01, "unlikely to be chance"),
                 (0.05, "probably not chance"), (0.2, "could well be chance"), (math.inf, "likely chance"))


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def chance_words(q: float | None) -> str:
    """A q-value (or p-value) in words, with the value to two significant figures.

    The bands follow the usual reading of false-discovery levels (Benjamini & Hochberg 1995 use 5 %):
    below 0.001 "very unlikely to be chance", below 0.05 "probably not chance", above 0.2 "likely chance".
    """
    if not _finite(q):
        return NOT_AVAILABLE
    words = next(w for bound, w in _CHANCE_WORDS if q < bound)
    return f"{words} (q = {q:.2g})"


def signed(v: float, text: str) -> str:
    """``text`` (an absolute value already formatted) with the sign of ``v`` (a true minus sign is not used:
    pages and CSV exports read "-" everywhere). A change that rounds to zero carries no sign ("0.0", not "-0.0")."""
    if not any(ch in "123456789" for ch in text):
        return text
    return f"+{text}" if v > 0 else (f"-{text}" if v < 0 else text)


def money_text(amount: float | None, currency: str = "", period: str | None = None, sign: bool = False) -> str:
    """An amount: "EUR 5,161 over 4 weeks" (cents only under 1,000); without a currency, the number alone."""
    if not _finite(amount):
        return NOT_AVAILABLE
    size = abs(amount)
    number = f"{size:,.0f}" if size >= 1000 else f"{size:,.2f}"
    text = f"{currency} {number}" if currency else number
    text = signed(amount, text) if sign else (f"-{text}" if amount < 0 else text)
    return f"{text} {period}" if period else text


def value_text(v: float | None, fmt: str, currency: str = "") -> str:
    """A value in its format: "14.9 %", "11.6 points", "2.8 days", "EUR 1,449", "0.0123"."""
    if not _finite(v):
        return NOT_AVAILABLE
    if fmt == "percent":
        return f"{v * 100:.1f} %"
    if fmt == "points":
        return f"{v:.1f} points"
    if fmt == "days":
        return f"{v:.1f} days"
    if fmt == "currency":
        return money_text(v, currency)
    return f"{v:,.3g}"


def change_parts(d: float, fmt: str, currency: str = "") -> tuple[str, str]:
    """A signed difference as (number, unit): ("-6.5", "points") for a percent metric, ("+EUR 805", "")."""
    size = abs(d)
    if fmt == "currency":
        return money_text(d, currency, sign=True), ""
    if fmt in ("percent", "points", "days"):
        shown = size * 100 if fmt == "percent" else size
        return signed(d, f"{shown:.1f}"), "days" if fmt == "days" else "points"
    return signed(d, f"{size:,.3g}"), ""


def change_text(d: float | None, fmt: str, currency: str = "") -> str:
    """A difference, signed; a percent metric's in percentage points ("-6.5 points")."""
    if not _finite(d):
        return NOT_AVAILABLE
    number, unit = change_parts(d, fmt, currency)
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

    def money(self, amount: float | None, period: str | None = None, sign: bool = False) -> str:
        """An amount in the shop's currency: "EUR 5,161 over 4 weeks"."""
        return money_text(amount, self.currency, period, sign)

    def value(self, metric: str, v: float | None) -> str:
        """A metric's value in its unit: "14.9 %", "11.6 points", "2.8 days", "EUR 1,449"."""
        return value_text(v, self.format_of(metric), self.currency)

    def change(self, metric: str, d: float | None) -> str:
        """A difference of a metric, signed: a percent metric's in percentage points ("-6.5 points")."""
        return change_text(d, self.format_of(metric), self.currency)

    def bounds(self, metric: str, low: float | None, high: float | None) -> str:
        """An interval's bounds in the metric's unit, without repeating it: "(-8.8 to -4.1)"."""
        if not (_finite(low) and _finite(high)):
            return ""
        fmt = self.format_of(metric)
        return f"({change_parts(low, fmt, self.currency)[0]} to {change_parts(high, fmt, self.currency)[0]})"

    def interval(self, metric: str, estimate: float | None, low: float | None, high: float | None) -> str:
        """An effect and its interval: "-6.5 points (-8.8 to -4.1)"; the unit written once."""
        if not _finite(estimate):
            return NOT_AVAILABLE
        bounds = self.bounds(metric, low, high)
        return f"{self.change(metric, estimate)} {bounds}" if bounds else self.change(metric, estimate)

    def scale_of(self, metric: str) -> int:
        """What a stored value is multiplied by to read as shown (100 for a percent metric, else 1)."""
        return 100 if self.format_of(metric) == "percent" else 1
