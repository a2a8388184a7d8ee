"""Money and dates as people read them: the one home of both formats, for every page, sentence and alert.

* **Money** carries the shop's currency code before the number ("EUR 1,449") and shows the currency's
  minor units (cents) only where they matter: below :data:`MINOR_UNITS_BELOW` (100 units), where a
  rounding to whole units would change the reading ("EUR 3.80" per visitor), never beside a larger
  amount (``beside``: the other amounts of the same sentence decide too, so "EUR 1,449 vs EUR 645" and
  not "EUR 1,449 vs EUR 644.60"). The number of minor units is the currency's (ISO 4217: none for JPY,
  three for KWD; two for the others).
* **Dates** read as ISO 8601 ("2026-11-25"): the form of the data, the plan, the journal and the
  alerts, and the one no reader misreads as day/month or month/day.

Plain text out; the caller escapes it. Lowest layer (core): stats, steps, the journal and the pages
all format through here.
"""
from __future__ import annotations

import datetime as dt
import math

NOT_AVAILABLE = "not available"
#: below this size an amount shows its minor units (cents); from it on, whole units
MINOR_UNITS_BELOW = 100
#: ISO 4217 currencies whose minor unit is not the cent (the others have two decimals)
_MINOR_UNITS = {"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
                "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
                "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3}


def finite(v: object) -> bool:
    """A real number (not None, not NaN, not infinite; a bool is not a number here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def minor_units(currency: str) -> int:
    """Decimals of the currency's minor unit (ISO 4217): 2 for EUR, 0 for JPY, 3 for KWD."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def signed(v: float, text: str) -> str:
    """``text`` (an absolute value already formatted) with the sign of ``v`` (a true minus sign is not used:
    pages and CSV exports read "-" everywhere). A change that rounds to zero carries no sign ("0.0", not "-0.0")."""
    if not any(ch in "123456789" for ch in text):
        return text
    return f"+{text}" if v > 0 else (f"-{text}" if v < 0 else text)


def money_text(amount: float | None, currency: str = "", period: str | None = None, sign: bool = False,
               beside: tuple[float | None, ...] = ()) -> str:
    """An amount: "EUR 5,161 over 4 weeks"; "EUR 3.80" (minor units below 100, unless an amount ``beside``
    it is 100 or more); without a currency, the number alone. ``sign``: "+EUR 805" for a gain."""
    if not finite(amount):
        return NOT_AVAILABLE
    largest = max([abs(amount)] + [abs(b) for b in beside if finite(b)])
    decimals = minor_units(currency) if largest < MINOR_UNITS_BELOW else 0
    number = f"{abs(amount):,.{decimals}f}"
    text = f"{currency} {number}" if currency else number
    text = signed(amount, text) if sign else (f"-{text}" if amount < 0 and number.strip("0.,") else text)
    return f"{text} {period}" if period else text


def date_text(day: dt.date | dt.datetime | str | None) -> str:
    """A day as every page and message writes it: "2026-11-25" (a datetime or an ISO text gives its day)."""
    if day is None:
        return NOT_AVAILABLE
    if isinstance(day, str):
        day = dt.date.fromisoformat(day[:10])
    return f"{day:%Y-%m-%d}"
