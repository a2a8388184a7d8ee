"""The Dataset: a validated source, how far it is complete, and its cut at the end of a week (``Snapshot``).

A source is opened in ``source.py``; the week's cut is stored once per weekly run and attached by every
notebook (``snapshot.py``).
"""
from __future__ import annotations

import datetime as dt
import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection

import ibis
import pandas as pd

from playbook.core.weeks import IsoWeek, completeness_note, latest_complete_week
from playbook.data.contract import EXPORT_TABLE, OPTIONAL_TABLES
from playbook.data.engines.postgres import gather_statistics
from playbook.data.errors import SourceError
from playbook.data.source import drop_loaded_csv, load_source
from playbook.data.url_secrets import is_url, redact
from playbook.data.validation import DataQualityWarning, KnownMetrics, validate


def unavailable(table: str, empty_tables: list[str] | tuple[str, ...] = ()) -> str:
    """Why a metric needing ``table`` is not shown: the table was not given, or it has no rows."""
    return f"not available (no {table} {'rows' if table in empty_tables else 'table'})"


@dataclass
class Dataset:
    """A validated source: contract tables typed and cleaned, plus its data-quality warnings.

    ``missing_tables``: optional tables not given. ``empty_tables``: optional tables given without
    a row; they are left out of ``tables`` so that nothing computes a 0 from them.
    """

    con: ibis.BaseBackend
    tables: dict[str, ibis.Table]
    warnings: list[DataQualityWarning]
    missing_tables: list[str]
    source_label: str
    empty_tables: list[str] = field(default_factory=list)
    #: the source's own statement of how far it is complete (``export`` table), else None
    complete_through: dt.datetime | dt.date | None = None

    def has(self, table: str) -> bool:
        return table in self.tables

    def missing(self, table: str) -> str:
        return unavailable(table, self.empty_tables)

    def first_timestamp(self) -> dt.datetime:
        return self.tables["orders"].order_ts.min().to_pyarrow().as_py()

    def last_timestamp(self) -> dt.datetime:
        """The latest order of the data (orders arrive all day long; returns and contacts lag behind)."""
        return self.tables["orders"].order_ts.max().to_pyarrow().as_py()

    def completeness(self) -> dt.datetime | dt.date:
        """How far the data are complete: the source's ``complete_through``, else the latest event."""
        return self.complete_through if self.complete_through is not None else self.last_timestamp()

    def first_week(self) -> IsoWeek:
        """The ISO week of the first order."""
        return IsoWeek.of(self.first_timestamp())

    def latest_complete_week(self) -> IsoWeek:
        """The latest week the data run to the end of (Sunday 23:00, or the source's ``complete_through``)."""
        return latest_complete_week(self.completeness())

    def completeness_note(self) -> str:
        """The latest complete week and why, in words (the first line of a weekly run)."""
        source = "the export says the data are complete through" if self.complete_through is not None else "the data run to"
        text = completeness_note(self.completeness(), source)
        return text[0].upper() + text[1:]

    def check_week(self, week: IsoWeek | str) -> IsoWeek:
        """``week`` if the data cover it (first week .. latest complete week), else a ValueError saying the range."""
        iso = IsoWeek.parse(week)
        first, last = self.first_week(), self.latest_complete_week()
        if iso < first:
            raise ValueError(f"week {iso} is before the data: they start in week {first}; "
                             f"weeks available: {first} .. {last}")
        if iso > last:
            raise ValueError(f"week {iso} is after the latest complete week of the data ({last}: the data "
                             f"end on {self.last_timestamp():%Y-%m-%d}); weeks available: {first} .. {last}")
        return iso

    def as_of(self, week: IsoWeek | str) -> "Snapshot":
        return Snapshot.cut(self, IsoWeek.parse(week))

    def close(self, disconnect: bool = True) -> None:
        """Drop the cached tables and disconnect (a DuckDB database file stays locked while open).

        The tables are released first so that ibis drops its cached copies while the connection
        still answers (left to the garbage collector, they fail at exit on a closed connection).
        ``disconnect=False`` keeps the connection for its owner (a Spark session the run serves).
        """
        self.tables.clear()
        gc.collect()
        if disconnect:
            self.con.disconnect()


def open_dataset(source: str | os.PathLike, timezone: str = "UTC",
                 known_metrics: KnownMetrics | Collection[str] | None = None) -> Dataset:
    """Load and validate ``source``; raises ``ContractError`` (from validation) on a broken contract.

    ``timezone``: the shop's IANA time zone (the configuration's ``timezone``); timestamps with an
    offset are converted to its clock, naive ones are its clock already. ``known_metrics``: the
    metric names an experiment's ``primary_metric`` may take (None: not checked here).
    """
    loaded = load_source(source)
    con, raw = loaded.con, loaded.tables
    checked = validate(raw, timezone=timezone, known_metrics=known_metrics, decimal_comma=loaded.decimal_comma)
    # The validated tables are cast and cleaned views over the raw ones; materialize them once in
    # the engine so that every metric query does not redo the casts. Not a Parquet file's: its
    # columns are typed already and a scan of it costs little, while a copy in memory is the whole
    # shop (2.5 GiB at ten million lines, docs/benchmarks.md); the weekly run reads it once more,
    # to store the week's cut in the snapshot file.
    # An optional table given without a row is treated as a missing one (validation warned about it):
    # a metric needing it is "not available (no <table> rows)", never computed as 0.
    empty = [n for n in OPTIONAL_TABLES if n in checked.tables and checked.row_counts.get(n) == 0]
    tables = {name: table if name in loaded.in_place else table.cache()
              for name, table in checked.tables.items() if name not in empty}
    if not is_url(str(source)):
        drop_loaded_csv(con, raw)
    return Dataset(con, tables, checked.warnings, checked.missing_tables, redact(source), empty,
                   read_complete_through(source, con))


def read_complete_through(source: str | os.PathLike, con: ibis.BaseBackend) -> dt.datetime | dt.date | None:
    """The source's own ``complete_through`` (table or file ``export``), or None when it says nothing.

    An export taken on Sunday at noon can say it is complete through the Saturday, or through
    the Sunday 23:59:59 if nothing happens in the afternoon; without it, the latest event decides.
    """
    text = str(source)
    if is_url(text):
        if EXPORT_TABLE not in con.list_tables():
            return None
        values = con.table(EXPORT_TABLE).to_pandas()
    else:
        path = Path(text) / f"{EXPORT_TABLE}.csv"
        if not path.is_file():
            return None
        values = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return _parse_complete_through(values)


def _parse_complete_through(values: pd.DataFrame) -> dt.datetime | dt.date:
    rule = f"table {EXPORT_TABLE}, column complete_through"
    if "complete_through" not in values.columns:
        raise SourceError(f"{rule}: column missing (columns: {', '.join(map(str, values.columns))})")
    cells = [str(v).strip() for v in values["complete_through"] if str(v).strip() not in ("", "None", "NaT", "nan")]
    if len(cells) != 1:
        raise SourceError(f"{rule}: exactly one value expected, {len(cells)} given "
                          f"(examples: {', '.join(repr(c) for c in cells[:3]) or 'none'})")
    try:
        stamp = pd.Timestamp(cells[0])
    except (ValueError, TypeError):
        raise SourceError(f"{rule}: {cells[0]!r} is not a date (YYYY-MM-DD) or a timestamp (YYYY-MM-DD HH:MM:SS)") from None
    if stamp.tzinfo is not None or pd.isna(stamp):
        raise SourceError(f"{rule}: {cells[0]!r}: give the shop's local time without a time zone")
    return stamp.date() if len(cells[0]) == 10 else stamp.to_pydatetime()


def derived_name(key: tuple) -> str:
    """The name a derived table is written under (``Snapshot.derived``'s key), in an engine or a stored snapshot."""
    return "derived__" + "__".join(str(part) for part in key)


@dataclass
class Snapshot:
    """The dataset as it was known at the end of ``week``.

    Rows time-stamped after the cut are dropped; a delivery or an action closure after the
    cut is treated as not happened yet.
    """

    dataset: Dataset
    week: IsoWeek
    tables: dict[str, ibis.Table] = field(default_factory=dict)
    #: derived tables materialized once in the engine and shared by every step (see ``derived``)
    _derived: dict = field(default_factory=dict, repr=False)
    #: whether the cut's large tables are materialized (``_materialize_cut``); a stored one needs not
    _cut_cached: bool = field(default=False, repr=False)
    #: where ``derived`` writes its tables instead of the engine's memory: (name, expression) -> the
    #: written table (``_store_file`` writes them straight into the snapshot file); None: ``.cache()``
    _write: Callable[[str, ibis.Table], ibis.Table] | None = field(default=None, repr=False)

    def derived(self, key: tuple, build) -> ibis.Table:
        """``build()`` materialized in the engine once per snapshot (e.g. the line facts for k days).

        Every step queries the same facts many times; rebuilding them from the raw tables in each
        query cost most of the weak-cohort and comparison time (see docs/benchmarks.md).
        """
        if key not in self._derived:
            if self._write is not None:
                self._derived[key] = self._write(derived_name(key), build())
                return self._derived[key]
            self._materialize_cut()
            con = self.dataset.con if self.dataset is not None else None  # None: a snapshot built by hand (tests)
            self._derived[key] = gather_statistics(con, build().cache())
        return self._derived[key]

    #: the event tables every shared fact joins: materialized once before the first fact is built
    _CUT_MATERIALIZED = ("orders", "order_lines", "returns")

    def _materialize_cut(self) -> None:
        """Cache the cut's large tables once (a database's temporary tables) before the facts are built.

        The cut is a filter and two semi-joins over the source; left as sub-selects, a database re-plans
        them inside every fact (line facts nest the orders three times) and, without statistics on
        them, picks sort-merge joins that spill (PostgreSQL: line facts of 600,000 lines in 20-29 s,
        10 s from cached cut tables; docs/benchmarks.md, "PostgreSQL"). DuckDB plans the nested cut as
        one pipeline and holds its tables in memory: a cached copy would only double that memory, so
        it keeps the cut as a view. A stored snapshot's tables are plain tables already.
        """
        if self._cut_cached or self.dataset is None or self.dataset.con.name == "duckdb":
            return
        for name in self._CUT_MATERIALIZED:
            if name in self.tables:
                self.tables[name] = gather_statistics(self.dataset.con, self.tables[name].cache())
        self._cut_cached = True

    @property
    def cutoff(self) -> dt.datetime:
        return self.week.end

    def first_week(self) -> IsoWeek:
        """The ISO week of the snapshot's first order (its own week when it has no order)."""
        first = self.tables["orders"].order_ts.min().to_pyarrow().as_py()
        return IsoWeek.of(first) if first is not None else self.week

    def has(self, table: str) -> bool:
        return table in self.tables

    def missing(self, table: str) -> str:
        """Why a metric needing ``table`` is not shown ('no contacts table', or 'no contacts rows' if empty)."""
        if self.dataset is None:  # a snapshot built by hand (tests) has no dataset to ask
            return f"not available (no {table} table)"
        return self.dataset.missing(table)

    @classmethod
    def cut(cls, dataset: Dataset, week: IsoWeek) -> "Snapshot":
        end = ibis.literal(week.end)
        last_day = ibis.literal(week.sunday)
        src = dataset.tables
        out: dict[str, ibis.Table] = {}

        orders = src["orders"].filter(src["orders"].order_ts <= end)
        orders = orders.mutate(
            delivered_ts=ibis.ifelse(orders.delivered_ts <= end, orders.delivered_ts, ibis.null("timestamp"))
        )
        out["orders"] = orders
        lines = src["order_lines"]
        out["order_lines"] = lines.semi_join(orders, lines.order_id == orders.order_id)
        returns = src["returns"].filter(src["returns"].requested_ts <= end)
        out["returns"] = returns.semi_join(out["order_lines"], returns.line_id == out["order_lines"].line_id)
        for name, column in (("sessions", "date"), ("marketing_spend", "date"), ("experiments", "start_date")):
            if name in src:
                out[name] = src[name].filter(src[name][column] <= last_day)
        if "contacts" in src:
            out["contacts"] = src["contacts"].filter(src["contacts"].contact_ts <= end)
        if "assignments" in src:
            out["assignments"] = src["assignments"].filter(src["assignments"].assigned_ts <= end)
        if "actions" in src:
            actions = src["actions"].filter(src["actions"].week <= str(week))
            # An action closed after the cut was still open at the end of the week; a closed
            # action with no closure time cannot be dated and keeps its status.
            late = actions.closed_ts.notnull() & (actions.closed_ts > end)
            out["actions"] = actions.mutate(
                closed_ts=ibis.ifelse(late, ibis.null("timestamp"), actions.closed_ts),
                status=ibis.ifelse((actions.status == "closed") & late, ibis.literal("open"), actions.status),
            )
        return cls(dataset, week, out)
