"""What validation finds: broken rules (errors), data-quality warnings, the validated tables.

The types here are what callers see (``ContractError``, ``Violation``, ``DataQualityWarning``,
``ValidatedData``); the order constants say in which order the findings are reported (the order of
the rule list in ``docs/data_contract.md``), and the formatters say how a value appears in a message.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Callable, Collection

import ibis

from playbook.data.contract import ALL_TABLES, TABLES

#: How many example ids an error or warning lists.
N_EXAMPLES = 5


class Order(IntEnum):
    """Order of the violations in the error message (the order of the contract's rule list)."""

    TABLE = 0
    COLUMNS = 1
    ROWS = 2
    TYPE = 3
    NULL = 4
    UNIQUE = 5
    ALLOWED = 6
    MINIMUM = 7
    DISCOUNT = 8
    FOREIGN_KEY = 9
    REQUESTED = 10
    RETURN_QUANTITY = 11
    DELIVERED = 12
    EXPERIMENT = 13
    ASSIGNMENT = 14


class WarningOrder(IntEnum):
    """Order of the data-quality warnings in the report."""

    REASON = 0
    DELIVERY = 1
    EMPTY = 2
    MISSING = 3
    COST = 4
    CONTACT_ORDER = 5
    UNKNOWN_COLUMN = 6


@dataclass(frozen=True)
class Violation:
    """One broken contract rule.

    Attributes:
        table, column: where (column is None for a table-level rule).
        rule: the rule in words, e.g. ``"at most the line's quantity"``.
        n_rows: how many rows (or ``unit``) break it (0 for structural rules).
        examples: up to 5 example ids (the table's key) or compact row values.
        example_key: what the examples are (``"return_id"``, ``"date|channel|spend"``...).
        unit: what ``n_rows`` counts (``rows`` unless said otherwise, e.g. ``lines``).
        detail: free text (missing table / columns, number of duplicated values...).
        n_ids: how many distinct example ids exist when not one per counted row
            (duplicated values, lines); None means ``n_rows``.
    """

    table: str
    column: str | None
    rule: str
    n_rows: int
    examples: tuple[str, ...] = ()
    example_key: str | None = None
    unit: str = "rows"
    detail: str = ""
    n_ids: int | None = None

    @property
    def where(self) -> str:
        """``table.column``, or the table alone for a table-level rule."""
        return f"{self.table}.{self.column}" if self.column else self.table

    def __str__(self) -> str:
        text = f"{self.where}: rule '{self.rule}' broken"
        if self.n_rows:
            unit = self.unit[:-1] if self.n_rows == 1 and self.unit.endswith("s") else self.unit
            text += f" by {self.n_rows} {unit}"
        if self.examples:
            sep = "; " if self.example_key and "|" in self.example_key else ", "
            total = self.n_rows if self.n_ids is None else self.n_ids
            more = f"{sep}..." if total > len(self.examples) else ""
            label = f"{self.example_key}: " if self.example_key else ""
            text += f" ({label}{sep.join(self.examples)}{more})"
        if self.detail:
            text += f": {self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The fields, the examples as a list, and the message."""
        d = asdict(self)
        d["examples"] = list(self.examples)
        d["message"] = str(self)
        return d


@dataclass(frozen=True)
class DataQualityWarning:
    """Something worth reporting that does not stop the run."""

    table: str
    rule: str
    n_rows: int
    message: str
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (summary.json, the stored snapshot's metadata)."""
        return {
            "table": self.table,
            "rule": self.rule,
            "n_rows": int(self.n_rows),
            "message": self.message,
            "examples": list(self.examples),
        }

    def __str__(self) -> str:
        return f"{self.table}: {self.message}"


class ContractError(ValueError):
    """The input data break the contract. Raised once, with every violation found.

    ``violations`` lists them in the order of the checks; ``warnings`` holds the
    data-quality warnings computed before the error (possibly empty).
    """

    def __init__(self, violations: list[Violation], warnings: list[DataQualityWarning] | None = None):
        self.violations = list(violations)
        self.warnings = list(warnings or [])
        tables = sorted({v.table for v in self.violations}, key=table_order)
        n = len(self.violations)
        head = (
            f"The input data break the data contract: {n} violation{'s' if n != 1 else ''}"
            f" in {', '.join(tables)} (see docs/data_contract.md)."
        )
        super().__init__("\n".join([head, *(str(v) for v in self.violations)]))


@dataclass
class ValidatedData:
    """The tables, reduced to the contract columns and cast to the contract types.

    ``tables`` holds the required tables and the optional tables that were given (an
    empty optional table is kept, with its warning). ``returns`` has one more column,
    ``reason_code_raw``: the code as given; ``reason_code`` is mapped into the taxonomy.
    """

    tables: dict[str, ibis.Table]
    warnings: list[DataQualityWarning] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.tables

    def warnings_as_dicts(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self.warnings]


# --------------------------------------------------------------------------- ordering and formats


def table_order(name: str) -> int:
    """A table's rank in the contract (unknown tables last)."""
    return ALL_TABLES.index(name) if name in ALL_TABLES else len(ALL_TABLES)


def column_order(table: str, column: str | None) -> int:
    """A column's rank in its table (-1 for a table-level finding)."""
    if column is None or table not in TABLES:
        return -1
    names = TABLES[table].column_names
    return names.index(column) if column in names else len(names)


def fmt(value: Any) -> str:
    """A value as it should appear in a message (``2`` for 2.0, dates without a midnight time)."""
    if value is None:
        return "<empty>"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
    if hasattr(value, "isoformat"):
        text = value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
        return text.replace(" 00:00:00", "") if text.endswith(" 00:00:00") else text
    return str(value)


def count_noun(n: int, noun: str) -> str:
    """``3 returns``, ``1 return``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def quoted(value: Any) -> str:
    """A raw value in a message: text in quotes (so that blanks and spaces show), others formatted."""
    if value is None:
        return "<empty>"
    return repr(value) if isinstance(value, str) else fmt(value)


@dataclass(frozen=True)
class KnownMetrics:
    """The metric names an experiment's ``primary_metric`` may take, as the caller knows them.

    The data layer cannot read the metric dictionary (it sits above data), so the caller passes a
    test (``accepts``: a dictionary name, or a family member such as ``return_rate_7d``) and how to
    say the known names in a message (``described``).
    """

    accepts: Callable[[str], bool]
    described: str

    @classmethod
    def of(cls, names: Collection[str]) -> KnownMetrics:
        known = frozenset(names)
        return cls(known.__contains__, ", ".join(sorted(known)))
