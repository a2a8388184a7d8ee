"""PostgreSQL: the statistics of a table just materialized, so that its planner joins it sensibly."""
from __future__ import annotations

import ibis


def gather_statistics(con: ibis.BaseBackend | None, table: ibis.Table) -> ibis.Table:
    """``table`` (a table just materialized in the engine), after the engine has counted it.

    PostgreSQL never analyzes a temporary table and analyzes a new one only later: until then its
    planner assumes 200 distinct keys and a handful of matching rows, and nests the join of a
    filtered table (an experiment's lines) around a scan of returns repeated once per line
    (tests/test_postgres_plans.py found it). ``ANALYZE`` samples the table (a fraction of a second
    for 600,000 lines). Other engines plan from the data they read: nothing to do.
    """
    if con is None or con.name != "postgres":
        return table
    op = table.op()
    schema = getattr(getattr(op, "namespace", None), "database", None)
    name = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, op.name) if part)
    cursor = con.raw_sql(f"ANALYZE {name}")
    cursor.close()
    return table
