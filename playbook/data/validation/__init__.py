"""Validation of the input tables against the data contract (``playbook.data.contract``).

Every check is an ibis expression aggregated in the backend: one pass per table for the
single-table rules (types, empties, uniqueness, allowed values, minimums, ordering of
dates...), one pass joining orders, order lines, returns and contacts for the rules between
them and one over the assignments and experiments (full outer joins: the orphans of each side are
the references' counts, the other rules screens), and, for the rules that are broken only, their
own count and ``.limit(5)`` queries for their example ids. Nothing fetches a whole table to the
client, except four columns of the small experiments table, whose cohort filters are parsed in
Python with ``contract.parse_cohort`` and whose primary metrics are tested with the caller's
``KnownMetrics``.

The same code runs on DuckDB (files) and on PostgreSQL / warehouses through ibis: it only
uses portable operations (casts guarded by a regular expression, ``re_search``,
``isnull``, ``isin``, anti-joins, full outer joins, group-by/aggregate, ``timezone(zone, timestamptz)``).

The pieces, one job each:

* ``findings``: what is found (``Violation``, ``ContractError``, ``DataQualityWarning``,
  ``ValidatedData``), in which order it is reported, how values appear in messages;
* ``convert``: one raw column read as its contract kind (the guarded casts, the shop's time zone);
* ``engine``: the state of a run and its querying, counts first and examples after;
* ``table_rules``, ``cross_rules``, ``quality``: the rules within a table, between tables, and the
  data-quality warnings;
* ``runner``: the order of the rules, ``validate`` and ``validate_table`` (one table by its own rules).

Usage::

    from playbook.data.validation import validate, ContractError

    try:
        data = validate(tables)          # tables: dict[str, ibis.Table] as read
    except ContractError as err:
        print(err)                       # one line per broken rule, with counts and ids
        raise
    data.tables["returns"]               # contract columns, contract types
    data.warnings                        # data-quality warnings for the report
    data.missing_tables                  # optional tables not given
"""
from __future__ import annotations

from playbook.data.validation.cross_rules import SLICE_COLUMNS
from playbook.data.validation.findings import (
    N_EXAMPLES,
    ContractError,
    DataQualityWarning,
    KnownMetrics,
    ValidatedData,
    Violation,
)
from playbook.data.validation.runner import validate, validate_table

__all__ = [
    "ContractError",
    "DataQualityWarning",
    "KnownMetrics",
    "N_EXAMPLES",
    "SLICE_COLUMNS",
    "ValidatedData",
    "Violation",
    "validate",
    "validate_table",
]
