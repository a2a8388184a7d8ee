"""The input data contract, v1: which tables, which columns, which rules.

This module is the single machine-readable statement of the contract documented in
``docs/data_contract.md``. Validation (``playbook.data.validation``) and the sample-data generator
read it from here; the as-of cut (``playbook.data.dataset.Snapshot.cut``) states which time column
makes each table's rows known.
"""
from __future__ import annotations

from dataclasses import dataclass

from playbook.core.vocabulary import Design

REASON_CODES: tuple[str, ...] = (
    "size_too_small",
    "size_too_large",
    "not_as_described",
    "damaged_defective",
    "wrong_item",
    "late_delivery",
    "changed_mind",
    "quality",
    "other",
)
RESOLUTIONS = ("refund", "exchange", "store_credit")
CONTACT_CAUSES = ("wismo", "return", "product_question", "damaged", "billing", "other")
ACTION_STATUSES = ("open", "closed", "dropped")
DESIGNS = tuple(d.value for d in Design)
VARIANTS = ("control", "treatment")

#: The experiments table's optional columns: the delivery weeks step 2 read when it chose the cohort
#: (the first week read, its baseline's first; the window's first; the last week read, the window's
#: last), written by step 3's plan. Step 4's pre/post pre-period ends before the first of them; a row
#: without them (a hand-entered experiment, an older plan) has them reconstructed from its start date.
SELECTION_COLUMNS = ("selection_first_week", "selection_window_week", "selection_last_week")

#: The experiments table's optional columns of the plan's sequential design (``stats.sequential``): the
#: weekly reads it counts on, the last at ``review_date`` (``planned_looks``), and the information it was
#: sized for (``planned_information``: mature customers per arm of the K-day read at the review date).
#: A row without them is one planned look at its review date, at the nominal level.
PLAN_COLUMNS = ("planned_looks", "planned_information")

#: The experiments table's optional columns of a test closed before its verdict (an overdue or abandoned
#: review): the date and why, given together (``playbook experiments close``). A closed test is no longer
#: read, listed as running or overdue.
CLOSE_COLUMNS = ("closed_on", "closed_reason")

#: The experiments table's optional columns of a test extended before its review (``playbook experiments
#: extend``): the review date and the planned information it had before, given together. The looks read before
#: the extension keep the alpha they spent, their information now counted against the new plan.
EXTENSION_COLUMNS = ("original_review_date", "original_planned_information")

REQUIRED_TABLES = ("orders", "order_lines", "returns")
OPTIONAL_TABLES = (
    "sessions",
    "contacts",
    "actions",
    "marketing_spend",
    "experiments",
    "assignments",
)
ALL_TABLES = REQUIRED_TABLES + OPTIONAL_TABLES
EXPORT_TABLE = "export"  # optional metadata: one row, column complete_through (date or timestamp)


@dataclass(frozen=True)
class Column:
    """One contract column.

    kind is one of ``str``, ``int``, ``float``, ``date``, ``timestamp``, ``isoweek``.
    """

    name: str
    kind: str
    nullable: bool = False
    unique: bool = False
    minimum: float | None = None
    allowed: tuple[str, ...] | None = None
    references: tuple[str, str] | None = None  # (table, column) this one points to


@dataclass(frozen=True)
class TableSpec:
    """One contract table. ``columns`` must all be given; ``optional_columns`` may be left out of a
    source (older exports, hand-kept tables) and are validated like the others when given."""

    name: str
    required: bool
    columns: tuple[Column, ...]
    key: str | None = None  # the id used in error messages as examples
    optional_columns: tuple[Column, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns every source must give (the optional ones are not among them)."""
        return tuple(c.name for c in self.columns)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + self.optional_columns

    def column(self, name: str) -> Column:
        for c in self.all_columns:
            if c.name == name:
                return c
        raise KeyError(name)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "orders",
            True,
            (
                Column("order_id", "str", unique=True),
                Column("order_ts", "timestamp"),
                Column("customer_id", "str"),
                Column("channel", "str"),
                Column("region", "str"),
                Column("promised_delivery_date", "date"),
                Column("delivered_ts", "timestamp", nullable=True),
                Column("shipping_cost", "float", minimum=0),
            ),
            key="order_id",
        ),
        TableSpec(
            "order_lines",
            True,
            (
                Column("line_id", "str", unique=True),
                Column("order_id", "str", references=("orders", "order_id")),
                Column("sku", "str"),
                Column("category", "str"),
                Column("quantity", "int", minimum=1),
                Column("unit_price", "float", minimum=0),
                Column("discount_amount", "float", minimum=0),
                Column("unit_cost", "float", minimum=0),
            ),
            key="line_id",
        ),
        TableSpec(
            "returns",
            True,
            (
                Column("return_id", "str", unique=True),
                Column("line_id", "str", references=("order_lines", "line_id")),
                Column("requested_ts", "timestamp"),
                Column("quantity", "int", minimum=1),
                Column("reason_code", "str"),  # outside the taxonomy -> 'other' + warning
                Column("reason_text", "str", nullable=True),
                Column("refund_amount", "float", minimum=0),
                Column("return_shipping_cost", "float", minimum=0),
                Column("processing_cost", "float", minimum=0),
                Column("resolution", "str", allowed=RESOLUTIONS),
            ),
            key="return_id",
        ),
        TableSpec(
            "sessions",
            False,
            (
                Column("date", "date"),
                Column("channel", "str"),
                Column("category", "str"),
                Column("sessions", "int", minimum=0),
            ),
        ),
        TableSpec(
            "contacts",
            False,
            (
                Column("contact_id", "str", unique=True),
                Column("contact_ts", "timestamp"),
                Column("order_id", "str", nullable=True),
                Column("cause", "str", allowed=CONTACT_CAUSES),
                Column("cost", "float", nullable=True, minimum=0),
            ),
            key="contact_id",
        ),
        TableSpec(
            "actions",
            False,
            (
                Column("action_id", "str", unique=True),
                Column("week", "isoweek"),
                Column("owner", "str"),
                Column("description", "str"),
                Column("status", "str", allowed=ACTION_STATUSES),
                Column("closed_ts", "timestamp", nullable=True),
            ),
            key="action_id",
        ),
        TableSpec(
            "marketing_spend",
            False,
            (
                Column("date", "date"),
                Column("channel", "str"),
                Column("spend", "float", minimum=0),
            ),
        ),
        TableSpec(
            "experiments",
            False,
            (
                Column("experiment_id", "str", unique=True),
                Column("lever", "str"),
                Column("cohort", "str"),
                Column("design", "str", allowed=DESIGNS),
                Column("control_cohort", "str", nullable=True),
                Column("primary_metric", "str"),
                Column("expected_low", "float"),
                Column("expected_high", "float"),
                Column("start_date", "date"),
                Column("review_date", "date"),
            ),
            key="experiment_id",
            optional_columns=(
                *(Column(name, "isoweek", nullable=True) for name in SELECTION_COLUMNS),
                Column("planned_looks", "int", nullable=True, minimum=1),
                Column("planned_information", "float", nullable=True, minimum=0),
                Column("closed_on", "date", nullable=True),
                Column("closed_reason", "str", nullable=True),
                Column("original_review_date", "date", nullable=True),
                Column("original_planned_information", "float", nullable=True, minimum=0),
            ),
        ),
        TableSpec(
            "assignments",
            False,
            (
                Column("experiment_id", "str", references=("experiments", "experiment_id")),
                Column("customer_id", "str"),
                Column("variant", "str", allowed=VARIANTS),
                Column("assigned_ts", "timestamp"),
            ),
            key="customer_id",
        ),
    )
}


def parse_cohort(text: str | None) -> dict[str, str]:
    """``'category=knitwear;channel=web'`` -> ``{'category': 'knitwear', 'channel': 'web'}``.

    An empty text is the empty filter (everything). Raises ValueError on a malformed part.
    """
    if text is None or (isinstance(text, float) and text != text) or str(text).strip() == "":
        return {}  # None, NaN (an empty CSV field read by pandas) or blank: the empty filter
    out: dict[str, str] = {}
    for part in str(text).split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"cohort filter {text!r}: part {part!r} is not of the form column=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if not key or not value:
            raise ValueError(f"cohort filter {text!r}: part {part!r} has an empty column or value")
        out[key] = value
    return out


def format_cohort(filters: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in filters.items())


def cohorts_overlap(a: str | None, b: str | None) -> bool:
    """Two cohort filters share customers for sure: equal, or one's conditions a subset of the other's (the
    narrower is inside the wider). An empty filter is the whole shop and overlaps every cohort. Filters on
    different columns (``category=shoes`` and ``channel=app``) are not counted as overlapping."""
    x, y = parse_cohort(a).items(), parse_cohort(b).items()
    return x <= y or y <= x
