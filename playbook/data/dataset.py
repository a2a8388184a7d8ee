"""Data access: open a source, load it once, validate it, cut it at the end of a week.

A source is a folder of ``<table>.csv``, ``<table>.csv.gz`` or ``<table>.parquet`` files, or
a database URL that ``ibis.connect`` understands (``postgres://user@host/db``,
``duckdb:///file.db``...). All further work happens in the engine through ibis, so the same
code runs on DuckDB (embedded default), PostgreSQL and warehouses; pandas only ever sees
aggregates.

A database password never travels as a parameter: papermill keeps the ``data`` parameter in the
executed notebooks kept under ``reports/<WEEK>/executed/``. A URL that carries one (``user:password@``
or a secret-looking query parameter) is refused; the password is read from the environment
variable ``PLAYBOOK_DB_PASSWORD``.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import ibis
import pandas as pd

from playbook.core.weeks import IsoWeek, completeness_note, latest_complete_week
from playbook.data import contract
from playbook.data.contract import OPTIONAL_TABLES
from playbook.data.validation import DataQualityWarning, validate

PASSWORD_ENV = "PLAYBOOK_DB_PASSWORD"
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


class SourceError(ValueError):
    """The source itself cannot be opened (missing folder, ambiguous files, bad URL)."""


def is_url(source: str) -> bool:
    return bool(_URL_RE.match(str(source)))


def redact(source: str | os.PathLike) -> str:
    """The source as it may appear in a report: a URL loses its password and secret-looking query values."""
    text = str(source)
    if not is_url(text):
        return text
    scheme, rest = text.split("://", 1)
    if "@" in rest and not rest.startswith("/"):
        # The user info ends at the last '@': a password pasted without escaping may hold '/', '?',
        # '#' or '@', which end the netloc of a standard parse and would leave the password in view.
        userinfo, host = rest.rsplit("@", 1)
        user = re.split(r"[:/?#]", userinfo, maxsplit=1)[0]
        text = f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    # Rebuilt by hand: urlunsplit would turn 'duckdb:///file.db' into 'duckdb:/file.db'.
    head, mark, tail = text.partition("?")
    query, hash_, fragment = tail.partition("#")
    # any parameter whose name contains a secret word: password, api_key, access_token, client_secret...
    query = re.sub(r"(?i)([^&=]*(?:password|passwd|pwd|secret|token|key)[^&=]*)=[^&]*", lambda m: f"{m.group(1)}=***", query)
    return f"{head}{mark}{query}{hash_}{fragment}"


_SECRET_NAME_RE = re.compile(r"(?i)password|passwd|pwd|secret|token|key")


def _secrets_in_url(url: str) -> list[str]:
    """Where ``url`` carries a secret: 'a password after the user name', 'query parameter NAME'.

    Read like ``redact`` reads it: the user info ends at the last '@', so that a password pasted
    without escaping ('/', '?', '#' or '@' in it) is found too.
    """
    found: list[str] = []
    scheme, rest = url.split("://", 1)
    if "@" in rest and not rest.startswith("/"):
        userinfo = rest.rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        # 'ana@host:5432/db?x=a@b': the ':' is the port's, after the host, not a password's
        if colon and password and not re.search(r"[@/?#]", user):
            found.append("a password after the user name")
    query = url.partition("?")[2].partition("#")[0]
    for item in query.split("&"):
        name = item.partition("=")[0]
        if _SECRET_NAME_RE.search(name):
            found.append(f"query parameter {name!r}")
    return found


def refuse_secrets(url: str) -> None:
    """Refuse a database URL that carries a password; the message never shows it."""
    found = _secrets_in_url(url) if is_url(url) else []
    if found:
        raise SourceError(
            f"the database URL {redact(url)} carries a secret ({', '.join(found)}): a URL is a notebook "
            f"parameter, and papermill keeps it in the executed notebooks under reports/<WEEK>/executed/. "
            f"Remove it from the URL and put the password in the environment variable {PASSWORD_ENV}"
        )


def _url_with_password(url: str) -> str:
    """``url`` with the password of ``PLAYBOOK_DB_PASSWORD`` (URL-encoded) after its user name."""
    refuse_secrets(url)
    password = os.environ.get(PASSWORD_ENV)
    parts = urlsplit(url)
    if not password or "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    userinfo = userinfo.split(":", 1)[0]  # 'ana:@host': an empty password is no password
    return urlunsplit((parts.scheme, f"{userinfo}:{quote(password, safe='')}@{host}", *parts[2:]))


def _table_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name in contract.ALL_TABLES:
        candidates = [folder / f"{name}{suffix}" for suffix in _FILE_SUFFIXES]
        present = [p for p in candidates if p.is_file()]
        if len(present) > 1:
            raise SourceError(
                f"table {name}: several files in {folder} ({', '.join(p.name for p in present)}); keep one"
            )
        if present:
            found[name] = present[0]
    return found


def load_tables(source: str | os.PathLike) -> tuple[ibis.BaseBackend, dict[str, ibis.Table]]:
    """Open ``source`` and return the connection and its raw contract tables (not yet validated).

    CSV files are loaded once into temporary tables (a CSV view would be re-parsed by every
    query); Parquet files are scanned in place.
    """
    text = str(source)
    if is_url(text):
        refuse_secrets(text)  # before anything else: the URL would be kept in the executed notebooks
        try:
            con = ibis.connect(_url_with_password(text))
        except Exception as exc:  # the message may echo the URL: never let the password through
            raise SourceError(f"cannot open {redact(text)}: {type(exc).__name__}") from None
        present = set(con.list_tables())
        return con, {name: con.table(name) for name in contract.ALL_TABLES if name in present}
    folder = Path(text)
    if not folder.is_dir():
        raise SourceError(f"data source {text!r} is neither a folder nor a database URL")
    con = ibis.duckdb.connect()
    tables: dict[str, ibis.Table] = {}
    for name, path in _table_files(folder).items():
        if path.suffix == ".parquet":
            tables[name] = con.read_parquet(path, table_name=name)
        else:
            raw = con.read_csv(path, table_name=f"_csv_{name}")
            tables[name] = con.create_table(name, raw, temp=True)
    return con, tables


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


def open_dataset(source: str | os.PathLike) -> Dataset:
    """Load and validate ``source``; raises ``ContractError`` (from validation) on a broken contract."""
    con, raw = load_tables(source)
    checked = validate(raw)
    # The validated tables are cast and cleaned views over the raw ones; materialize them once in
    # the engine so that every metric query does not redo the casts.
    # An optional table given without a row is treated as a missing one (validation warned about it):
    # a metric needing it is "not available (no <table> rows)", never computed as 0.
    empty = [n for n in OPTIONAL_TABLES if n in checked.tables and checked.row_counts.get(n) == 0]
    tables = {name: table.cache() for name, table in checked.tables.items() if name not in empty}
    if not is_url(str(source)):
        _drop_loaded_csv(con, raw)
    return Dataset(con, tables, checked.warnings, checked.missing_tables, redact(source), empty,
                   read_complete_through(source, con))


EXPORT_TABLE = "export"  # optional metadata: one row, column complete_through (date or timestamp)


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
        values = pd.read_csv(path, dtype=str, keep_default_na=False)
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


def _drop_loaded_csv(con: ibis.BaseBackend, raw: dict[str, ibis.Table]) -> None:
    """Free the raw copies of CSV tables once their validated copies are materialized.

    Only the embedded DuckDB of a folder source is touched (never a user's database): without this
    every CSV table is held twice in memory (docs/benchmarks.md).
    """
    present = set(con.list_tables())
    for name in raw:
        if name in present and f"_csv_{name}" in present:
            con.drop_table(name, force=True)
            con.drop_view(f"_csv_{name}", force=True)


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

    def derived(self, key: tuple, build) -> ibis.Table:
        """``build()`` materialized in the engine once per snapshot (e.g. the line facts for k days).

        Every step queries the same facts many times; rebuilding them from the raw tables in each
        query cost most of the weak-cohort and comparison time (see docs/benchmarks.md).
        """
        if key not in self._derived:
            self._derived[key] = build().cache()
        return self._derived[key]

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
