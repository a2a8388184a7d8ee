"""The order in which the rules run, and ``validate``: one call from the tables as read to the
validated tables, or one ``ContractError`` listing every broken rule."""
from __future__ import annotations

from typing import Any, Collection, Mapping

from playbook.data.contract import ALL_TABLES, OPTIONAL_TABLES
from playbook.data.validation import cross_rules, quality, table_rules
from playbook.data.validation.convert import check_timezone
from playbook.data.validation.engine import Run
from playbook.data.validation.findings import ContractError, KnownMetrics, ValidatedData


def _register_rules(run: Run) -> None:
    """Every rule counted in the engine, in the order of the rule list (counts run at ``flush``)."""
    table_rules.check_presence(run)
    for name in ALL_TABLES:
        if name in run.raw:
            table_rules.prepare_table(run, name)
    quality.warn_unknown_columns(run)
    for name in ALL_TABLES:
        if name in run.out:
            table_rules.check_single_table(run, name)
    cross_rules.check_foreign_keys(run)
    cross_rules.check_order_pass(run)
    cross_rules.check_assignments_pass(run)
    cross_rules.check_experiments(run)


def run_rules(run: Run) -> ValidatedData:
    """Count every rule, read the examples of the broken ones; the validated data or a ContractError."""
    _register_rules(run)
    run.flush()
    quality.warn_optional_tables(run)
    violations, warnings = run.sorted_violations(), run.sorted_warnings()
    if violations:
        raise ContractError(violations, warnings)
    missing = [n for n in OPTIONAL_TABLES if n not in run.raw]
    return ValidatedData(dict(run.out), warnings, missing, dict(run.row_counts))


def validate(tables: Mapping[str, Any], timezone: str = "UTC",
             known_metrics: KnownMetrics | Collection[str] | None = None,
             decimal_comma: Collection[str] = ()) -> ValidatedData:
    """Check ``tables`` (name -> ibis table, as read) against the data contract.

    Returns the validated tables (contract columns, contract order, contract types) and the
    data-quality warnings. Raises :class:`ContractError` listing every violation. Tables not
    named in the contract are ignored; extra columns are dropped.

    ``timezone`` is the shop's IANA time zone: timestamps written with an offset (or ``Z``) and
    columns typed with a time zone are converted to its clock; naive ones are read as its clock
    already. ``known_metrics``, when given, are the metric names an experiment's ``primary_metric``
    may take (the data layer does not know the metric dictionary); None skips that rule.
    ``decimal_comma`` names the tables whose numbers written as text take a decimal comma
    (``12,5``: the tables read from semicolon-separated files).
    """
    known = known_metrics if known_metrics is None or isinstance(known_metrics, KnownMetrics) \
        else KnownMetrics.of(known_metrics)
    return run_rules(Run.of(tables, check_timezone(timezone), known, frozenset(decimal_comma)))


def validate_table(name: str, table: Any, timezone: str = "UTC",
                   known_metrics: KnownMetrics | Collection[str] | None = None,
                   decimal_comma: bool = False) -> ValidatedData:
    """Check one contract table by the rules it states by itself, without the other tables: its columns, types,
    empties, keys, allowed values, minimums, the rules within a row, the columns the contract does not know
    (warnings) and, for ``experiments``, its cohort filters and (when ``known_metrics`` is given) its primary
    metric. What a change to that table alone can break (``playbook experiments add`` checks the table it is
    about to write with it); the references to other tables are left to :func:`validate`.

    ``table``: an ibis table or anything ``ibis.memtable`` takes. Raises :class:`ContractError`.
    """
    known = known_metrics if known_metrics is None or isinstance(known_metrics, KnownMetrics) \
        else KnownMetrics.of(known_metrics)
    run = Run.of({name: table}, check_timezone(timezone), known, frozenset([name] if decimal_comma else []))
    if name not in run.raw:
        raise ValueError(f"{name!r} is not a table of the data contract")
    table_rules.prepare_table(run, name)
    quality.warn_unknown_columns(run)
    table_rules.check_single_table(run, name)
    cross_rules.check_experiments(run)
    run.flush()
    violations, warnings = run.sorted_violations(), run.sorted_warnings()
    if violations:
        raise ContractError(violations, warnings)
    return ValidatedData(dict(run.out), warnings, [], dict(run.row_counts))
