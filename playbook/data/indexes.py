"""The indexes a database source should have (docs/data_contract.md, "Indexes for a database source").

A folder of files needs none. In a database, the weekly run joins order lines to orders, returns to
order lines and assignments to customers, and cuts every event table at the end of the week: an
index on each join key and each time stamp lets the engine read only what a week needs and join
on keys instead of scanning a large table once per row. Many exports arrive with primary keys only;
``create_statements`` gives the rest as plain SQL (PostgreSQL; most databases accept the same form),
which ``create_recommended_indexes`` runs for the tables a source has (the PostgreSQL tests do, as
a user would), followed by ``ANALYZE`` so the planner knows the tables' sizes.
"""
from __future__ import annotations

from dataclasses import dataclass

import ibis


@dataclass(frozen=True)
class Index:
    """One recommended index: ``table(columns...)``. Never unique: the contract's validation reports a
    duplicated id in words, where a unique index would refuse the load."""

    table: str
    columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"playbook_{self.table}_{'_'.join(self.columns)}"

    def statement(self, schema: str | None = None) -> str:
        table = f'"{schema}"."{self.table}"' if schema else f'"{self.table}"'
        columns = ", ".join(f'"{c}"' for c in self.columns)
        return f"CREATE INDEX IF NOT EXISTS {self.name} ON {table} ({columns});"


#: ids first (redundant beside a primary key, which has its own index), then the join keys, then the time stamps of the cut
RECOMMENDED_INDEXES: tuple[Index, ...] = (
    Index("orders", ("order_id",)),
    Index("order_lines", ("line_id",)),
    Index("returns", ("return_id",)),
    Index("order_lines", ("order_id",)),
    Index("returns", ("line_id",)),
    Index("orders", ("customer_id",)),
    Index("assignments", ("experiment_id", "customer_id")),
    Index("contacts", ("order_id",)),
    Index("orders", ("order_ts",)),
    Index("returns", ("requested_ts",)),
    Index("contacts", ("contact_ts",)),
    Index("assignments", ("assigned_ts",)),
)


def create_statements(schema: str | None = None, tables: set[str] | None = None) -> list[str]:
    """The ``CREATE INDEX`` statements of ``RECOMMENDED_INDEXES`` (only for ``tables`` when given)."""
    return [i.statement(schema) for i in RECOMMENDED_INDEXES if tables is None or i.table in tables]


def create_recommended_indexes(con: ibis.BaseBackend, schema: str | None = None) -> list[str]:
    """Create the recommended indexes on the contract tables present in ``schema``, then ``ANALYZE``
    them; returns the statements run. For a database the user owns (never the embedded DuckDB)."""
    present = set(con.list_tables(database=schema) if schema else con.list_tables())
    statements = create_statements(schema, present)
    statements += [f'ANALYZE "{schema}"."{t}";' if schema else f'ANALYZE "{t}";'
                   for t in dict.fromkeys(i.table for i in RECOMMENDED_INDEXES) if t in present]
    for sql in statements:
        cursor = con.raw_sql(sql)
        if hasattr(cursor, "close"):
            cursor.close()
    return statements
