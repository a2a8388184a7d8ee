"""The queries each step sends to PostgreSQL join on keys: no per-row scan of the largest tables.

The sample shop (data_samples/, about 67,000 order lines) is copied into a fresh database with its
primary keys and the recommended indexes of docs/data_contract.md (``create_recommended_indexes``),
stored as a weekly run stores it (the snapshot in a schema), then each step runs on the attached
snapshot while every query it compiles is recorded. Each recorded query, and the shared facts the
run builds from the source's cut, is run again under ``EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON)`` with
parallel workers off, and the plan is read node by node.

The rule (``per_row_scans``): a plan node executed more than once (``Actual Loops`` > 1: the inner
side of a Nested Loop, a rescanned Materialize, a correlated SubPlan) must not read, itself or below
it, one of the largest relations: any relation holding at least as many rows as the week's returns
(the smallest of orders, order lines and returns), the source's tables, the snapshot's copies and
the facts tables alike. Such a node costs (outer rows) x (a large table): the shape of the nested
per-line query of issue 12 that ran for more than ten minutes. A node executed once, or repeated over
a small relation, is accepted. The rule is shown to catch both bad shapes (a nested loop forced over
order lines, a per-row subquery) before it is trusted on the steps.
"""
from __future__ import annotations

import contextlib
import json
import uuid

import ibis
import pytest
from pg_server import postgres_server  # noqa: F401 - the session fixture

from playbook.config.loader import load_config
from playbook.core.paths import REPO_ROOT
from playbook.data import facts
from playbook.data.dataset import open_dataset
from playbook.data.snapshot import SnapshotLocation, attach_snapshot, drop_snapshot
from playbook.dev.bench import load_postgres
from playbook.run.session import store_week
from playbook.steps import baseline, cohorts, experiments, levers, review

pytestmark = [
    pytest.mark.postgres,
    # ibis drops its cached tables from finalizers; after the test's connection is closed they are gone
    # with the session already, and psycopg's "connection is closed" there is not the test's concern
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

WEEK = "2026-W47"  # the sample shop's latest complete week: both W46 experiments are due
LARGEST = ("orders", "order_lines", "returns")


@pytest.fixture(scope="module")
def sample_db(postgres_server, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The sample shop in a fresh database, loaded as a user would: keys, recommended indexes, ANALYZE."""
    db = f"playbook_plans_{uuid.uuid4().hex[:10]}"
    with postgres_server.connect() as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    try:
        load_postgres(REPO_ROOT / "data_samples", postgres_server.url_for(db))
        yield postgres_server.url_for(db)
    finally:
        with postgres_server.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


# --- reading a plan ---------------------------------------------------------------------------------

def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _relations(node: dict) -> set[str]:
    """The relations a node reads, itself or below it, schema-qualified (``"schema"."table"``)."""
    return {f'"{n.get("Schema", "public")}"."{n["Relation Name"]}"' for n in _nodes(node) if "Relation Name" in n}


def explain(con: ibis.BaseBackend, sql: str) -> dict:
    """The executed plan of ``sql`` (its root node), run on ``con`` so its temporary tables are seen."""
    with contextlib.closing(con.raw_sql("SET max_parallel_workers_per_gather = 0")):
        pass
    with contextlib.closing(con.raw_sql(f"EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) {sql}")) as cur:
        value = cur.fetchone()[0]
    return (json.loads(value) if isinstance(value, str) else value)[0]["Plan"]


def large_relations(con: ibis.BaseBackend, names: set[str], threshold: int) -> set[str]:
    """Those of ``names`` (schema-qualified) holding at least ``threshold`` rows."""
    out = set()
    for name in names:
        with contextlib.closing(con.raw_sql(f"SELECT count(*) FROM {name}")) as cur:
            if cur.fetchone()[0] >= threshold:
                out.add(name)
    return out


def per_row_scans(plan: dict, large: set[str]) -> list[str]:
    """Nodes executed more than once that read a large relation: '<node> x<loops> over <relations>'."""
    found = []
    for node in _nodes(plan):
        loops = node.get("Actual Loops", 1)
        hit = _relations(node) & large
        if loops > 1 and hit:
            found.append(f"{node['Node Type']} x{loops} over {', '.join(sorted(h.split('.')[-1].strip(chr(34)) for h in hit))}")
    return found


class Recorder:
    """Every query the ibis PostgreSQL backend runs while it is patched (``monkeypatch.undo()`` ends it):
    what it compiles, and the query behind each table it creates (a ``.cache()``, a stored table). The
    temporary tables of ``.cache()`` are kept until the connection closes, so that a query reading one
    can be explained after the step let it go."""

    def __init__(self, monkeypatch):
        from ibis.backends.postgres import Backend

        self.queries: list[str] = []
        compile_, create, recorded = Backend.compile, Backend.create_table, self.queries

        def compile(self, expr, *args, **kwargs):
            sql = compile_(self, expr, *args, **kwargs)
            recorded.append(str(sql))
            return sql

        def create_table(self, name, obj=None, **kwargs):
            if isinstance(obj, ibis.Table):
                recorded.append(str(compile_(self, obj)))
            return create(self, name, obj, **kwargs)

        monkeypatch.setattr(Backend, "compile", compile)
        monkeypatch.setattr(Backend, "create_table", create_table)
        monkeypatch.setattr(Backend, "_drop_cached_table", lambda self, name: None)


def assert_no_per_row_scan(con: ibis.BaseBackend, sql: str, threshold: int) -> None:
    plan = explain(con, sql)
    bad = per_row_scans(plan, large_relations(con, _relations(plan), threshold))
    assert not bad, f"{bad} in\n{sql[:1500]}"


# --- the rule catches the bad shapes ------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw_con(sample_db):
    con = ibis.connect(sample_db)
    yield con
    con.disconnect()


def _returns_count(con) -> int:
    with contextlib.closing(con.raw_sql("SELECT count(*) FROM returns")) as cur:
        return cur.fetchone()[0]


def _set(con, *settings: str) -> None:
    for setting in settings:
        with contextlib.closing(con.raw_sql(setting)):
            pass


def test_the_rule_catches_a_nested_loop_over_order_lines(raw_con):
    """Hash and merge joins switched off: the planner must loop over one table once per row of the other."""
    sql = ("SELECT o.channel, sum(l.quantity) FROM orders o JOIN order_lines l ON l.order_id = o.order_id "
           "GROUP BY 1")
    threshold = _returns_count(raw_con)
    assert not per_row_scans(explain(raw_con, sql), {'"public"."orders"', '"public"."order_lines"'})  # its own plan
    _set(raw_con, "SET enable_hashjoin = off", "SET enable_mergejoin = off")
    try:
        plan = explain(raw_con, sql)
    finally:
        _set(raw_con, "RESET enable_hashjoin", "RESET enable_mergejoin")
    bad = per_row_scans(plan, large_relations(raw_con, _relations(plan), threshold))
    assert any(" x" in b and ("order_lines" in b or "orders" in b) for b in bad), bad


def test_the_rule_catches_a_per_row_subquery(raw_con):
    """A correlated subquery (the returned units of each line) runs once per line over returns."""
    sql = ("SELECT l.category, sum((SELECT coalesce(sum(r.quantity), 0) FROM returns r WHERE r.line_id = l.line_id)) "
           "FROM order_lines l GROUP BY 1")
    plan = explain(raw_con, sql)
    bad = per_row_scans(plan, large_relations(raw_con, _relations(plan), _returns_count(raw_con)))
    assert any("returns" in b for b in bad), bad


# --- the steps ----------------------------------------------------------------------------------------

def test_the_shared_facts_built_from_the_cut_join_on_keys(sample_db):
    """The run's one heavy build: line and order facts from the source's cut (the week's tables)."""
    ds = open_dataset(sample_db)
    try:
        snap = ds.as_of(WEEK)
        threshold = snap.tables["returns"].count().to_pyarrow().as_py()
        facts.line_facts(snap, 14)  # materializes the cut first, as the run does
        for build in (facts._line_facts(snap, 14), facts._order_facts(snap, 14)):
            assert_no_per_row_scan(ds.con, str(ds.con.compile(build)), threshold)
    finally:
        ds.close()


def _run_steps(snap, cfg, journal) -> None:
    """The five steps as the notebooks call them (their heavy calls), earlier sections handed on."""
    b = baseline.analyse(snap, cfg)
    a = cohorts.analyse(snap, cfg)
    if a.weak is not None:
        cohorts.cohort_trend(snap, cfg.metrics, a.weak)
        cohorts.top_comments(snap, cfg.metrics, a)
    s = a.sections
    lever = levers.analyse(snap, cfg, s["weak_cohort"], s["weak_cohort_candidates"])
    c = experiments.analyse(snap, cfg, journal)
    review.analyse(snap, cfg, c.sections["comparisons"], baseline=b.sections["baseline"], weak=s["weak_cohort"],
                   candidates=s["weak_cohort_candidates"], lever=lever.sections["lever"], journal_dir=journal,
                   week=snap.week)


def test_every_query_of_the_five_steps_joins_on_keys(sample_db, tmp_path, monkeypatch):
    cfg = load_config(None)
    ds = open_dataset(sample_db)
    location = SnapshotLocation(sample_db, "playbook_plans", f"pb_{uuid.uuid4().hex[:6]}_")
    store_week(ds, ds.check_week(WEEK), cfg.metrics.return_window_days, location, "plans")
    ds.close()
    try:
        snap = attach_snapshot(location)
        recorder = Recorder(monkeypatch)
        _run_steps(snap, cfg, tmp_path / "journal")
        monkeypatch.undo()
        selects = [q for q in dict.fromkeys(recorder.queries) if q.lstrip().upper().startswith(("SELECT", "WITH"))]
        assert len(selects) >= 30, len(selects)  # the steps' queries were seen (not a vacuous pass)
        threshold = snap.tables["returns"].count().to_pyarrow().as_py()
        assert threshold > 5_000
        failures = []
        for sql in selects:
            plan = explain(snap.dataset.con, sql)
            bad = per_row_scans(plan, large_relations(snap.dataset.con, _relations(plan), threshold))
            if bad:
                failures.append(f"{bad}: {sql[:600]}")
        assert not failures, "\n\n".join(failures)
        snap.dataset.con.disconnect()
    finally:
        drop_snapshot(location)
