"""The state of one validation run and its two-phase querying: counts first, examples after.

Every rule contributes a count to a one-row aggregate with a handler: one aggregate per table for
all its single-table rules, and one per *pass* for the rules between tables (a pass joins the tables
those rules relate once, and counts each rule as a screen: non-zero exactly when the rule is broken).
``flush`` runs the aggregates and hands each count to its handler; only a broken rule runs more,
small queries: its own exact count when its screen is not one, and its examples (``.limit(N_EXAMPLES)``).
A clean source is therefore read in one query per table and one per pass. Nothing fetches a whole
table to the client. Every fetch goes through ``rows`` (one place to watch what is read: see the
portability test).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import ibis

from playbook.data.contract import TABLES
from playbook.data.validation.convert import Converted
from playbook.data.validation.findings import (
    N_EXAMPLES,
    DataQualityWarning,
    KnownMetrics,
    Violation,
    column_order,
    fmt,
    quoted,
    table_order,
)

#: what a rule does with its count once the aggregates ran
Handler = Callable[[int], None]


def rows(expr: ibis.Table) -> list[dict[str, Any]]:
    """The rows of a (small) query: an aggregate or a handful of examples."""
    return expr.to_pyarrow().to_pylist()


def scalar_int(expr: ibis.Expr) -> int:
    """A count computed in the engine (NULL is 0)."""
    value = expr.to_pyarrow().as_py()
    return int(value or 0)


def count_flag(cond: ibis.BooleanValue) -> ibis.Expr:
    """Number of rows where ``cond`` is true (NULL counts as false); portable."""
    return ibis.ifelse(cond, 1, 0).sum()


@dataclass
class Check:
    """A single-table rule: ``bad`` flags the rows breaking it."""

    order: int
    column: str
    rule: str
    bad: ibis.BooleanValue
    show: str | None = None  # print next to the id the value "raw" (as given) or "value" (validated)


@dataclass(frozen=True)
class Count:
    """A rule counted by its own query: ``metric`` aggregated over ``source``; ``report`` records the
    rule from that count (and reads its examples when it is broken)."""

    source: ibis.Table
    metric: ibis.Value
    report: Handler

    @classmethod
    def rows_of(cls, rows_: ibis.Table, report: Handler) -> "Count":
        """Every row of ``rows_`` breaks the rule."""
        return cls(rows_, rows_.count(), report)


@dataclass(frozen=True)
class Screen:
    """A rule counted inside a shared pass: ``metric`` over the pass is non-zero exactly when the rule
    is broken; when ``exact``, it is the rule's count too, otherwise ``count`` is run for a broken rule.

    (A pass joins several tables at once, so a row of one table may appear once per match in another:
    an anti-join's orphans appear once, a flag over matched rows may be repeated when a key is
    duplicated, which the uniqueness rule reports; the rule's own query keeps its count as it was.)
    """

    metric: ibis.Value
    count: Count
    exact: bool = False


@dataclass
class Run:
    """One validation run: the tables as given, as validated, and the findings so far.

    ``colmap`` maps contract columns to the actual ones; ``conv`` holds each column read as its kind;
    ``values`` the validated columns (expressions over the raw table); ``out`` the validated tables.
    """

    raw: dict[str, ibis.Table]
    given_names: list[str]
    timezone: str = "UTC"
    known_metrics: KnownMetrics | None = None
    #: tables whose numbers written as text take a decimal comma (semicolon-separated files)
    decimal_comma: frozenset[str] = frozenset()
    violations: list[tuple[tuple, Violation]] = field(default_factory=list)
    warnings: list[tuple[tuple, DataQualityWarning]] = field(default_factory=list)
    colmap: dict[str, dict[str, str]] = field(default_factory=dict)
    conv: dict[str, dict[str, Converted]] = field(default_factory=dict)
    values: dict[str, dict[str, ibis.Value]] = field(default_factory=dict)
    out: dict[str, ibis.Table] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    _aggs: list[ibis.Table] = field(default_factory=list)
    _handlers: list[tuple[str, Handler]] = field(default_factory=list)

    @classmethod
    def of(cls, tables: Mapping[str, Any], timezone: str = "UTC", known_metrics: KnownMetrics | None = None,
           decimal_comma: frozenset[str] = frozenset()) -> "Run":
        """A run over ``tables`` (ibis tables or anything ``ibis.memtable`` takes); extra tables are ignored."""
        raw = {name: t if isinstance(t, ibis.Table) else ibis.memtable(t) for name, t in tables.items() if name in TABLES}
        return cls(raw, sorted(str(n) for n in tables), timezone, known_metrics, decimal_comma)

    # ---- recording

    def violate(self, order: int, v: Violation) -> None:
        """Record a broken rule (reported in the order of the rule list, then table, column, arrival)."""
        key = (order, table_order(v.table), column_order(v.table, v.column), len(self.violations))
        self.violations.append((key, v))

    def warn(self, order: int, table: str, rule: str, n_rows: int, message: str, examples=()) -> None:
        """Record a data-quality warning."""
        key = (order, table_order(table), len(self.warnings))
        self.warnings.append((key, DataQualityWarning(table, rule, int(n_rows), message, tuple(examples))))

    def sorted_violations(self) -> list[Violation]:
        return [v for _, v in sorted(self.violations, key=lambda kv: kv[0])]

    def sorted_warnings(self) -> list[DataQualityWarning]:
        return [w for _, w in sorted(self.warnings, key=lambda kv: kv[0])]

    # ---- the validated tables

    def has(self, table: str, *columns: str) -> bool:
        """The table was given and validated, with these contract columns."""
        return table in self.out and all(c in self.colmap[table] for c in columns)

    def view(self, table: str, *columns: str, **renamed: str) -> ibis.Table:
        """The validated table reduced to ``columns`` (plus ``new_name=column``) and its key.

        Cross-table rules use these narrow projections: smaller expressions compile faster.
        """
        v = self.values[table]
        key = TABLES[table].key
        cols = list(dict.fromkeys(([key] if key in v else []) + list(columns)))
        if key not in v:
            cols = list(dict.fromkeys(cols + [c for c in TABLES[table].column_names if c in v][:4]))
        return self.raw[table].select(**{c: v[c] for c in cols}, **{k: v[c] for k, c in renamed.items()})

    # ---- counting first, examples after

    def add_counts(self, source: ibis.Table, metrics: list[tuple[ibis.Value, Handler]]) -> None:
        """Aggregate ``metrics`` over ``source``; each handler gets its count after :meth:`flush`."""
        named = {}
        for metric, handler in metrics:
            name = f"n{len(self._handlers)}_"
            self._handlers.append((name, handler))
            named[name] = metric
        if named:
            self._aggs.append(source.aggregate(**named))

    def add_row_count(self, rows_: ibis.Table, handler: Handler) -> None:
        """Count the rows of ``rows_`` (every one breaks a rule) for ``handler``."""
        self.add_count(Count.rows_of(rows_, handler))

    def add_count(self, count: Count) -> None:
        """A rule counted by its own aggregate."""
        self.add_counts(count.source, [(count.metric, count.report)])

    def add_pass(self, source: ibis.Table, screens: list[Screen]) -> None:
        """Several rules counted in one aggregate over ``source`` (a join of the tables they relate)."""
        self.add_counts(source, [(s.metric, s.count.report if s.exact else partial(self._recount, s.count))
                                 for s in screens])

    def _recount(self, count: Count, screened: int) -> None:
        """A broken rule's own count (its screen only said it is broken), then its report."""
        if screened:
            count.report(int(rows(count.source.aggregate(n_=count.metric))[0]["n_"] or 0))

    def flush(self) -> None:
        """Run the registered aggregates (one query each) and hand each count to its handler.

        (One query per aggregate rather than a cross join of all of them: ibis compiles the
        pieces as fast as the whole, and a failing piece names its own SQL.)
        """
        if not self._aggs:
            return
        values: dict[str, Any] = {}
        for agg in self._aggs:
            values.update(rows(agg)[0])
        handlers, self._aggs, self._handlers = self._handlers, [], []
        for name, handler in handlers:
            handler(int(values[name] or 0))

    # ---- examples

    def example_spec(self, table: str, about: str | None = None) -> tuple[str, list[str]]:
        """(label, contract columns used as example ids): the key, or the first columns."""
        spec = TABLES[table]
        if spec.key and spec.key in self.colmap[table] and spec.key != about:
            return spec.key, [spec.key]
        cols = [c for c in spec.column_names if c in self.colmap[table]][:4]
        return "|".join(cols), cols

    def examples_raw(self, table: str, bad: ibis.BooleanValue, column: str, show: str | None,
                     about: str | None) -> tuple[str, tuple[str, ...]]:
        """Examples for a single-table rule, read from the raw table (bad values visible)."""
        raw = self.raw[table]
        label, cols = self.example_spec(table, about)
        key = TABLES[table].key
        sel: dict[str, ibis.Value] = {}
        for i, c in enumerate(cols):
            sel[f"e{i}_"] = self.values[table][c] if c == key and len(cols) == 1 else raw[self.colmap[table][c]]
        if show == "raw":
            sel["v_"] = raw[self.colmap[table][column]]
        elif show == "value":
            sel["v_"] = self.values[table][column]
        q = raw.filter(bad).select(**sel).order_by(list(sel)[: len(cols)]).limit(N_EXAMPLES)
        out = []
        for row in rows(q):
            ident = "|".join(fmt(row[f"e{i}_"]) for i in range(len(cols)))
            out.append(f"{ident} ({quoted(row['v_'])})" if show else ident)
        return label, tuple(out)

    def examples_of(self, rows_: ibis.Table, table: str, extra: str | None = None) -> tuple[str, tuple[str, ...]]:
        """Examples from a table carrying the validated columns of ``table`` (and ``extra`` shown beside)."""
        label, cols = self.example_spec(table)
        q = rows_.select(*cols, *([extra] if extra else [])).order_by(cols).limit(N_EXAMPLES)
        out = []
        for row in rows(q):
            ident = "|".join(fmt(row[c]) for c in cols)
            out.append(f"{ident} ({fmt(row[extra])})" if extra else ident)
        return label, tuple(out)

    def rows_rule(self, order: int, table: str, column: str, rule: str, rows_: ibis.Table,
                  extra: str | None = None, detail: str = "") -> Count:
        """A rule broken by every row of ``rows_`` (validated columns of ``table``)."""

        def handler(n: int) -> None:
            if n:
                label, ex = self.examples_of(rows_, table, extra)
                self.violate(order, Violation(table, column, rule, n, ex, label, detail=detail))

        return Count.rows_of(rows_, handler)

    def count_rows(self, order: int, table: str, column: str, rule: str, rows_: ibis.Table,
                   extra: str | None = None, detail: str = "") -> None:
        """:meth:`rows_rule` counted by its own aggregate."""
        self.add_count(self.rows_rule(order, table, column, rule, rows_, extra, detail))
