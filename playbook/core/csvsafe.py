"""CSV cells a spreadsheet will not run as formulas (CSV / formula injection), and the way back.

A CSV file the run writes (the decision journal, ``experiments_plan.csv``) is opened by people in
Excel, LibreOffice or Google Sheets, and its text comes partly from the data (a lever, a cohort
named after a category, an experiment id). A spreadsheet runs a cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(...)`` can send other cells to a server,
``=cmd|...`` has started programs), and tab or carriage return first are read the same way by
some importers. Following the OWASP "CSV Injection" guidance (and ASVS 5.0 requirement 1.2.10,
which adds NUL), such a cell is written with a single quote in front: the spreadsheet shows it as
text and does not evaluate it.

Two choices, both said here once:

* A value that reads as a plain decimal number (``-0.02``, ``+3``, ``-1.0E-2``) is left as it is,
  so numbers stay numbers in the spreadsheet; a spreadsheet evaluates such a cell to that same
  number, nothing else. Anything more (``-2+3``, ``-inf``, ``-1_000``) is text and neutralised.
* The quote is reversible: :func:`restore` gives back the original text exactly. To keep the
  mapping one-to-one, a value whose dangerous first character is already behind one or more
  quotes (``'=x``) gets one more quote too, and :func:`restore` removes exactly one.

Reference: https://owasp.org/www-community/attacks/CSV_Injection
"""
from __future__ import annotations

import re
from typing import Any

#: First characters a spreadsheet may evaluate (OWASP CSV Injection; NUL from ASVS 1.2.10).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")
QUOTE = "'"
# a plain decimal number, as a spreadsheet reads one: optional sign, digits, optional fraction and exponent
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _is_plain_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def _needs_quote(text: str) -> bool:
    """Text that, once any leading quotes are removed, a spreadsheet would run (and is not a number)."""
    bare = text.lstrip(QUOTE)
    return bare.startswith(FORMULA_STARTS) and not _is_plain_number(bare)


def neutralise(value: Any) -> Any:
    """A cell value safe to open in a spreadsheet: dangerous text gets a leading ``'``.

    Non-text values (numbers, dates, None) are returned unchanged; so is text that starts with
    nothing dangerous or that is a plain number such as ``-0.02``.
    """
    if isinstance(value, str) and _needs_quote(value):
        return QUOTE + value
    return value


def restore(value: Any) -> Any:
    """The inverse of :func:`neutralise`: ``restore(neutralise(v)) == v`` for every text ``v``.

    Text that :func:`neutralise` never produces (no quote, or a quote before a harmless start)
    is returned unchanged, so a file written before neutralising reads as it was.
    """
    if isinstance(value, str) and value.startswith(QUOTE) and _needs_quote(value[1:]):
        return value[1:]
    return value


def neutralise_row(values: dict[str, Any]) -> dict[str, Any]:
    """Every value of one CSV row through :func:`neutralise` (keys, the column names, are ours)."""
    return {key: neutralise(value) for key, value in values.items()}
