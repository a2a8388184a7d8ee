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
from playbook.core.settings import Config, MetricSettings
from playbook.data.contract import parse_cohort as contract_cohort
from playbook.metrics.dictionary import metric_named

__all__ = ["NOT_AVAILABLE", "Display", "chance_words", "change_parts", "change_text", "cohort_words", "date_text",
           "lever_words", "method_words", "metric_title", "money_text", "parse_cohort", "plain", "signed", "value_text"]

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


def metric_title(metric: str, settings: MetricSettings = MetricSettings()) -> str:
    """A metric's name for people ("Contact rate", "Return rate within 14 days of delivery"); its id if unknown.

    The titles do not depend on the settings (a return rate's window is in its id), so sentences built
    without the configuration (the verdict rule's reasons and follow-ups) name metrics the same way.
    """
    found = metric_named(metric, settings)
    return found.title if found is not None else metric


#: the comparison methods of ``playbook.stats`` (an :class:`Estimate`'s ``method``) in words, by code prefix
_METHOD_WORDS = (
    ("did-cohort-week", "difference in differences, cohort-weeks"),
    ("did-twfe-wild-bootstrap", "difference in differences, slice-weeks (bootstrap interval)"),
    ("did-twfe", "difference in differences, slice-weeks"),
    ("km", "return curves (Kaplan-Meier), per customer"),
    ("return-within-k", "share returned within the window, per customer"),
    ("cuped-", "difference per customer, adjusted for their earlier orders"),
    ("delta", "difference of per-customer totals"),
    ("welch", "difference of means per customer"),
    ("logrank", "return curves compared"),
    ("cox", "return curves compared"),
)


def method_words(code: str | None) -> str:
    """A comparison method's code ("km", "did-cohort-week-t") in words for a reader who does not know the
    code; an unknown code reads "see the full page" (the analyst's table names it)."""
    code = str(code or "")
    return next((words for prefix, words in _METHOD_WORDS if code.startswith(prefix)), "see the full page")


def plain(code: str) -> str:
    """An id of the data in words: ``size_too_small`` -> "size too small"."""
    return str(code).replace("_", " ")


def parse_cohort(text: str) -> dict[str, str]:
    """A cohort as filters, from the experiments table's form (``category=knitwear;channel=web``, read by
    the data contract) or a candidate's label (``channel=app x size_too_small``, its reason after " x ")."""
    where, _, reason = str(text).partition(" x ")
    try:
        filters = contract_cohort(where)
    except ValueError:  # not a filter: shown as written
        filters = {"cohort": where.strip()}
    return {**filters, "reason_code": reason.strip()} if reason.strip() else filters


#: the customer types of the data (``facts.orders_with_weeks``) as a reader says them
CUSTOMER_TYPE_WORDS = {"first_time": "first-time customers", "repeat": "repeat customers"}


def slice_words(dimension: str, value: str) -> str:
    """One filter in words: a category, channel or region by its value ("knitwear", "app"), a customer type
    as people say it ("repeat customers"), any other dimension with its name ("size band 38-40")."""
    if dimension == "customer_type":
        return CUSTOMER_TYPE_WORDS.get(str(value), plain(value))
    return plain(value) if dimension in ("category", "channel", "region", "cohort") else f"{plain(dimension)} {value}"


def cohort_words(filters: dict[str, str] | str) -> str:
    """A cohort in words: {"category": "knitwear", "reason_code": "size_too_small"} -> 'knitwear returned
    as "size too small"'; a text filter ``category=knitwear;channel=app`` reads "knitwear, app";
    ``customer_type=repeat`` "repeat customers"; empty: "the whole shop"."""
    if isinstance(filters, str):
        filters = parse_cohort(filters)
    reason = filters.get("reason_code")
    where = ", ".join(slice_words(k, v) for k, v in filters.items() if k != "reason_code") or "the whole shop"
    return f'{where} returned as "{plain(reason)}"' if reason else where


def lever_words(lever: str | None, config: Config) -> str:
    """A lever id as the configuration describes it ("fit/size message block on the product page")."""
    for entry in config.levers.values():
        if entry.get("lever") == lever and entry.get("description"):
            return entry["description"]
    return plain(lever or "a change")


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
        return metric_title(metric, self.settings)

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

    def span(self, metric: str, low: float | None, high: float | None) -> str:
        """A range of changes of a metric, its unit written once: "-9.4 to -0.8 points", "-EUR 3.62 to +EUR 3.67"
        (an interval, an expected range); "not available" without both ends."""
        if not (finite(low) and finite(high)):
            return NOT_AVAILABLE
        fmt = self.format_of(metric)
        (lo, unit), (hi, _) = (change_parts(v, fmt, self.currency, (low, high)) for v in (low, high))
        return f"{lo} to {hi} {unit}" if unit else f"{lo} to {hi}"

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
