"""Validation of input tables against the data contract (playbook.data.validation).

Fixtures are written as CSV files and read back with DuckDB's auto-typing, the path a real
folder source takes (a bad value in a timestamp column turns the column into VARCHAR, an
empty field is NULL). One test per rule: the fixture breaks exactly that rule.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import ibis
import pandas as pd
import pytest

from playbook.data import contract, validation
from playbook.data.validation import ContractError, ValidatedData, Violation, engine, table_rules, validate

# --------------------------------------------------------------------------- fixtures

_ORDERS = [
    # order_id, order_ts, customer_id, channel, region, promised, delivered_ts, shipping_cost
    ("O1", "2024-01-01 10:00:00", "C1", "web", "north", "2024-01-04", "2024-01-03 12:00:00", "4.5"),
    ("O2", "2024-01-02 11:30:00", "C2", "app", "south", "2024-01-05", "2024-01-05 09:00:00", "0"),
    ("O3", "2024-01-03 08:15:00", "C1", "web", "north", "2024-01-06", "2024-01-06 17:45:00", "4.5"),
    ("O4", "2024-01-04 19:00:00", "C3", "web", "east", "2024-01-08", "2024-01-07 10:00:00", "6"),
]
_LINES = [
    # line_id, order_id, sku, category, quantity, unit_price, discount_amount, unit_cost
    ("L1", "O1", "SKU-1", "knitwear", "1", "49.9", "0", "20"),
    ("L2", "O1", "SKU-2", "shoes", "2", "80", "10", "35.5"),
    ("L3", "O2", "SKU-1", "knitwear", "1", "49.9", "4.99", "20"),
    ("L4", "O3", "SKU-3", "dresses", "3", "30", "0", "12"),
    ("L5", "O4", "SKU-2", "shoes", "1", "80", "0", "35.5"),
]
_RETURNS = [
    # return_id, line_id, requested_ts, quantity, reason_code, reason_text, refund, ship, proc, resolution
    ("R1", "L1", "2024-01-05 09:00:00", "1", "size_too_small", "too tight", "49.9", "5", "2", "refund"),
    ("R2", "L2", "2024-01-06 10:00:00", "1", "damaged_defective", "", "75", "5", "2", "exchange"),
    ("R3", "L4", "2024-01-08 14:00:00", "2", "changed_mind", "", "60", "0", "2", "store_credit"),
]


def valid_data() -> dict[str, dict]:
    """A small source honouring every rule, with every table present (no warning)."""
    return {
        "orders": {
            "columns": ["order_id", "order_ts", "customer_id", "channel", "region",
                        "promised_delivery_date", "delivered_ts", "shipping_cost"],
            "rows": [list(r) for r in _ORDERS],
        },
        "order_lines": {
            "columns": ["line_id", "order_id", "sku", "category", "quantity", "unit_price",
                        "discount_amount", "unit_cost"],
            "rows": [list(r) for r in _LINES],
        },
        "returns": {
            "columns": ["return_id", "line_id", "requested_ts", "quantity", "reason_code",
                        "reason_text", "refund_amount", "return_shipping_cost", "processing_cost",
                        "resolution"],
            "rows": [list(r) for r in _RETURNS],
        },
        "sessions": {
            "columns": ["date", "channel", "category", "sessions"],
            "rows": [["2024-01-01", "web", "knitwear", "120"], ["2024-01-01", "app", "shoes", "80"],
                     ["2024-01-02", "web", "shoes", "0"]],
        },
        "contacts": {
            "columns": ["contact_id", "contact_ts", "order_id", "cause", "cost"],
            "rows": [["K1", "2024-01-03 09:00:00", "O1", "wismo", "3.5"],
                     ["K2", "2024-01-05 10:00:00", "", "billing", "2"],
                     ["K3", "2024-01-06 11:00:00", "O2", "return", "3.5"]],
        },
        "actions": {
            "columns": ["action_id", "week", "owner", "description", "status", "closed_ts"],
            "rows": [["A1", "2024-W01", "ops", "fix size chart for SKU-1", "closed", "2024-01-10 12:00:00"],
                     ["A2", "2024-W02", "cx", "call carrier about late parcels", "open", ""]],
        },
        "marketing_spend": {
            "columns": ["date", "channel", "spend"],
            "rows": [["2024-01-01", "web", "100.5"], ["2024-01-01", "app", "50"]],
        },
        "experiments": {
            "columns": ["experiment_id", "lever", "cohort", "design", "control_cohort",
                        "primary_metric", "expected_low", "expected_high", "start_date",
                        "review_date"],
            "rows": [["E1", "size_guidance", "category=knitwear", "randomized", "", "return_rate",
                      "-0.05", "-0.01", "2024-01-01", "2024-02-01"],
                     ["E2", "packaging", "category=shoes;channel=web", "pre_post", "category=shoes;channel=app",
                      "damage_rate", "-0.02", "0", "2024-01-08", "2024-03-01"]],
        },
        "assignments": {
            "columns": ["experiment_id", "customer_id", "variant", "assigned_ts"],
            "rows": [["E1", "C1", "control", "2024-01-01 00:00:00"],
                     ["E1", "C2", "treatment", "2024-01-01 00:00:00"],
                     ["E1", "C3", "treatment", "2024-01-02 08:00:00"]],
        },
    }


def set_value(data: dict, table: str, row_id: str, column: str, value: str) -> dict:
    """Change one cell; the row is found by its first column's value."""
    t = data[table]
    j = t["columns"].index(column)
    for row in t["rows"]:
        if row[0] == row_id:
            row[j] = value
            return data
    raise KeyError(row_id)


def write_csvs(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in data.items():
        with open(folder / f"{name}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(t["columns"])
            w.writerows(t["rows"])
    return folder


_CON = None


def duckdb_con() -> ibis.BaseBackend:
    """One in-memory DuckDB for the module (a connection costs more than a test's queries)."""
    global _CON
    if _CON is None:
        _CON = ibis.duckdb.connect()
    return _CON


def load_csvs(folder: Path, prefix: str = "t", con: ibis.BaseBackend | None = None) -> dict[str, ibis.Table]:
    """Read every ``<table>.csv`` with ``con.read_csv`` (DuckDB's auto-typing), then keep it as
    a temporary table as ``playbook.data.dataset`` does (a CSV view is parsed again by every query)."""
    con = con or duckdb_con()
    tables = {}
    for p in sorted(folder.glob("*.csv")):
        name = p.name[: -len(".csv")]
        con.read_csv(p, table_name=f"{prefix}_csv_{name}")
        con.raw_sql(f'CREATE TEMP TABLE "{prefix}_{name}" AS SELECT * FROM "{prefix}_csv_{name}"')
        tables[name] = con.table(f"{prefix}_{name}")
    return tables


@pytest.fixture
def load(tmp_path):
    counter = iter(range(1000))

    def _load(data: dict) -> dict[str, ibis.Table]:
        i = next(counter)
        prefix = f"{tmp_path.name.replace('-', '_')}_{i}"
        return load_csvs(write_csvs(tmp_path / f"src{i}", data), prefix)

    return _load


def broken(load, data: dict) -> ContractError:
    with pytest.raises(ContractError) as info:
        validate(load(data))
    return info.value


def assert_single(err: ContractError, table, column, rule, n, examples, key=None) -> Violation:
    """Exactly one violation, with these fields, all named in the message."""
    assert len(err.violations) == 1, str(err)
    v = err.violations[0]
    assert (v.table, v.column, v.rule, v.n_rows) == (table, column, rule, n), str(err)
    msg = str(err)
    where = f"{table}.{column}" if column else table
    assert f"{where}: rule '{rule}' broken by {n} " in msg
    for ex in examples:
        assert any(e == ex or e.startswith(f"{ex} ") for e in v.examples), (ex, v.examples)
        assert ex in msg
    if key:
        assert v.example_key == key
        assert f"({key}: " in msg
    assert msg.splitlines()[0].startswith("The input data break the data contract: 1 violation in")
    return v


# --------------------------------------------------------------------------- valid data


def test_valid_fixture_passes_without_warning(load):
    out = validate(load(valid_data()))
    assert isinstance(out, ValidatedData)
    assert out.warnings == []
    assert out.missing_tables == []
    assert set(out.tables) == set(contract.ALL_TABLES)
    assert out.row_counts["orders"] == 4 and out.row_counts["returns"] == 3


def test_validated_tables_have_contract_columns_types_and_values(load):
    data = valid_data()
    data["orders"]["columns"].append("notes")  # an extra column: ignored
    for row in data["orders"]["rows"]:
        row.append("free text")
    data["unrelated_table"] = {"columns": ["x"], "rows": [["1"]]}  # an extra table: ignored
    data["contacts"]["columns"] = [c.upper() for c in data["contacts"]["columns"]]  # case-insensitive
    # accepted variants: ISO 'T' and 'Z', date-only timestamps, minutes without seconds
    set_value(data, "orders", "O1", "order_ts", "2024-01-01T10:00:00Z")
    set_value(data, "orders", "O2", "order_ts", "2024-01-02")
    set_value(data, "assignments", "E1", "assigned_ts", "2024-01-01 00:00")
    set_value(data, "returns", "R1", "reason_text", "")  # nullable columns may be empty
    out = validate(load(data))
    # the extra column is dropped with a warning (never silently); the extra table and upper-case names are not
    assert [(w.table, w.rule, w.examples) for w in out.warnings] == [("orders", "column not in the contract", ("notes",))]
    kinds = {"str": "string", "int": "int64", "float": "float64", "date": "date",
             "timestamp": "timestamp", "isoweek": "string"}
    for name, t in out.tables.items():
        spec = contract.TABLES[name]
        expected = list(spec.column_names) + (["reason_code_raw"] if name == "returns" else [])
        assert list(t.columns) == expected, name
        for col in spec.columns:
            assert str(t.schema()[col.name]) == kinds[col.kind], (name, col.name, t.schema()[col.name])
    assert "unrelated_table" not in out.tables
    orders = {r["order_id"]: r for r in out.tables["orders"].to_pyarrow().to_pylist()}
    assert str(orders["O1"]["order_ts"]) == "2024-01-01 10:00:00"
    assert str(orders["O2"]["order_ts"]) == "2024-01-02 00:00:00"
    assert orders["O1"]["shipping_cost"] == 4.5
    assert str(orders["O1"]["promised_delivery_date"]) == "2024-01-04"
    lines = {r["line_id"]: r for r in out.tables["order_lines"].to_pyarrow().to_pylist()}
    assert lines["L4"]["quantity"] == 3
    actions = out.tables["actions"].order_by("action_id").to_pyarrow().to_pylist()
    assert actions[1]["closed_ts"] is None and actions[0]["week"] == "2024-W01"
    returns = {r["return_id"]: r for r in out.tables["returns"].to_pyarrow().to_pylist()}
    assert returns["R1"]["reason_text"] is None and returns["R2"]["reason_text"] is None
    assert out.tables["contacts"].count().to_pyarrow().as_py() == 3


def test_parquet_written_by_pandas(tmp_path):
    data = valid_data()
    con = duckdb_con()
    tables = {}
    for name, t in data.items():
        df = pd.DataFrame(t["rows"], columns=t["columns"]).replace("", None)
        for col in contract.TABLES[name].columns:
            if col.kind == "float":
                df[col.name] = pd.to_numeric(df[col.name])
            elif col.kind == "int":
                df[col.name] = df[col.name].astype("int64")
            elif col.kind == "timestamp":
                df[col.name] = pd.to_datetime(df[col.name])
            elif col.kind == "date":
                df[col.name] = pd.to_datetime(df[col.name]).dt.date
        if name == "order_lines":  # a float quantity that is not whole breaks the int rule
            df["quantity"] = df["quantity"].astype("float64")
            df.loc[df.line_id == "L5", "quantity"] = 1.5
        path = tmp_path / f"{name}.parquet"
        df.to_parquet(path)
        tables[name] = con.read_parquet(path, table_name=f"pq_{name}")
    assert str(tables["orders"].schema()["order_ts"]).startswith("timestamp")
    assert str(tables["order_lines"].schema()["quantity"]) == "float64"
    with pytest.raises(ContractError) as info:
        validate(tables)
    assert_single(info.value, "order_lines", "quantity", "value is an integer", 1, ["L5"], "line_id")
    assert info.value.violations[0].examples == ("L5 (1.5)",)


def test_a_date_column_written_by_pandas_from_datetime64_reads_as_dates(load, tmp_path):
    t = valid_data()["experiments"]
    frame = pd.DataFrame(t["rows"], columns=t["columns"]).replace("", None)
    frame[["expected_low", "expected_high"]] = frame[["expected_low", "expected_high"]].astype(float)
    frame["start_date"] = pd.to_datetime(frame["start_date"])  # datetime64: a timestamp column in the file
    frame.to_parquet(tmp_path / "experiments.parquet")
    tables = load(valid_data())
    tables["experiments"] = duckdb_con().read_parquet(tmp_path / "experiments.parquet", table_name="pq_dates")
    assert str(tables["experiments"].schema()["start_date"]).startswith("timestamp")
    rows = validate(tables).tables["experiments"].order_by("experiment_id").to_pyarrow().to_pylist()
    assert [str(r["start_date"]) for r in rows] == ["2024-01-01", "2024-01-08"]


def test_one_table_is_checked_by_its_own_rules_without_the_others(load):
    tables = load(set_value(valid_data(), "experiments", "E1", "design", "ab_test"))
    with pytest.raises(ContractError) as info:
        validation.validate_table("experiments", tables["experiments"])
    assert_single(info.value, "experiments", "design", "one of randomized, pre_post", 1, ["E1"], "experiment_id")
    assert validation.validate_table("orders", tables["orders"]).row_counts == {"orders": 4}


# --------------------------------------------------------------------------- structure


def test_required_table_missing(load):
    data = valid_data()
    del data["orders"]
    err = broken(load, data)
    assert len(err.violations) == 1, str(err)
    v = err.violations[0]
    assert (v.table, v.column, v.rule) == ("orders", None, "required table present")
    assert "orders: rule 'required table present' broken: no table 'orders'" in str(err)
    assert "order_lines" in str(err)  # the tables found are listed


def test_missing_columns_name_the_columns_present(load):
    data = valid_data()
    t = data["order_lines"]
    j = t["columns"].index("unit_cost")
    t["columns"].pop(j)
    for row in t["rows"]:
        row.pop(j)
    err = broken(load, data)
    assert len(err.violations) == 1, str(err)
    v = err.violations[0]
    assert (v.table, v.column, v.rule) == ("order_lines", None, "has the contract columns")
    line = str(err).splitlines()[1]
    assert line.startswith("order_lines: rule 'has the contract columns' broken: missing unit_cost")
    assert "columns present: line_id, order_id, sku, category, quantity, unit_price, discount_amount" in line


def test_empty_required_table(load):
    data = valid_data()
    data["returns"]["rows"] = []
    err = broken(load, data)
    assert [(v.table, v.rule) for v in err.violations] == [("returns", "has rows")]


# --------------------------------------------------------------------------- types

TS_RULE = "value is a timestamp (YYYY-MM-DD HH:MM:SS)"
TYPE_CASES = [
    # table, row, column, bad value, rule, key
    ("orders", "O2", "order_ts", "yesterday", TS_RULE, "order_id"),
    ("orders", "O3", "promised_delivery_date", "2024-02-30", "value is a date (YYYY-MM-DD)", "order_id"),
    ("order_lines", "L2", "quantity", "1.5", "value is an integer", "line_id"),
    ("returns", "R2", "quantity", "two", "value is an integer", "return_id"),
    ("order_lines", "L3", "unit_price", "12,50", "value is a number", "line_id"),
    ("actions", "A2", "week", "2024-W54", "value is an ISO week (YYYY-Www, week 01-53)", "action_id"),
]


@pytest.mark.parametrize("table,row,column,value,rule,key", TYPE_CASES)
def test_type_rule(load, table, row, column, value, rule, key):
    err = broken(load, set_value(valid_data(), table, row, column, value))
    v = assert_single(err, table, column, rule, 1, [row], key)
    assert value in v.examples[0]  # the offending value is shown


def test_type_rule_counts_every_bad_value(load):
    data = valid_data()
    for oid in ("O1", "O3", "O4"):
        set_value(data, "orders", oid, "delivered_ts", "soon")
    err = broken(load, data)
    assert_single(err, "orders", "delivered_ts", TS_RULE, 3, ["O1", "O3", "O4"], "order_id")
    assert "(order_id: O1 ('soon'), O3 ('soon'), O4 ('soon'))" in str(err)


def test_type_rule_nan_and_short_week(load):
    data = valid_data()
    set_value(data, "contacts", "K3", "cost", "nan")  # DuckDB reads the column as DOUBLE with a NaN
    set_value(data, "actions", "A1", "week", "2024-1")
    err = broken(load, data)
    got = {(v.table, v.column, v.rule, v.n_rows, v.examples) for v in err.violations}
    assert got == {
        ("contacts", "cost", "value is a number", 1, ("K3 (nan)",)),
        ("actions", "week", "value is an ISO week (YYYY-Www, week 01-53)", 1, ("A1 ('2024-1')",)),
    }


# --------------------------------------------------------------------------- emptiness


def test_not_empty_rule(load):
    data = set_value(valid_data(), "orders", "O3", "customer_id", "")
    set_value(data, "orders", "O4", "customer_id", "   ")  # blank counts as empty
    err = broken(load, data)
    assert_single(err, "orders", "customer_id", "not empty", 2, ["O3", "O4"], "order_id")


def test_white_space_of_any_kind_counts_as_empty():
    """Tabs, line breaks, vertical tabs and form feeds are blank as spaces are (what ``strip`` removes);
    a value with white space around a character is not."""
    actions = pd.DataFrame({
        "action_id": ["A1", "A2", "A3", "A4"], "week": ["2024-W01"] * 4,
        "owner": ["\t \n", "\x0b\x0c\r", " ops ", "x"], "description": ["d"] * 4,
        "status": ["open"] * 4, "closed_ts": [None] * 4,
    })
    with pytest.raises(ContractError) as info:
        validation.validate_table("actions", actions)
    (v,) = info.value.violations
    assert (v.column, v.rule, v.n_rows, v.examples) == ("owner", "not empty", 2, ("A1", "A2"))


def test_empty_key_shows_row_values(load):
    err = broken(load, set_value(valid_data(), "contacts", "K2", "contact_id", ""))
    v = assert_single(err, "contacts", "contact_id", "not empty", 1, [])
    assert v.example_key == "contact_id|contact_ts|order_id|cause"
    assert v.examples == ("<empty>|2024-01-05 10:00:00|<empty>|billing",)


# --------------------------------------------------------------------------- unique


def test_unique_rule(load):
    data = valid_data()
    data["returns"]["rows"].append(["R1", "L4", "2024-01-09 10:00:00", "1", "quality", "", "30", "0", "2",
                                    "refund"])
    err = broken(load, data)
    v = assert_single(err, "returns", "return_id", "unique", 2, ["R1"], "return_id")
    assert v.examples == ("R1 (x2)",)
    assert str(err).endswith("(return_id: R1 (x2)): 1 value appears more than once")


# --------------------------------------------------------------------------- allowed values


@pytest.mark.parametrize("table,row,column,value,rule,key", [
    ("returns", "R2", "resolution", "refnd", "one of refund, exchange, store_credit", "return_id"),
    ("assignments", "E1", "variant", "B", "one of control, treatment", "customer_id"),
    ("experiments", "E1", "design", "ab_test", "one of randomized, pre_post", "experiment_id"),
])
def test_allowed_values_rule(load, table, row, column, value, rule, key):
    err = broken(load, set_value(valid_data(), table, row, column, value))
    expected_id = "C1" if table == "assignments" else row
    v = assert_single(err, table, column, rule, 1, [expected_id], key)
    assert repr(value) in v.examples[0]


# --------------------------------------------------------------------------- minimums


@pytest.mark.parametrize("table,row,column,value,rule,key", [
    ("orders", "O2", "shipping_cost", "-1", "at least 0", "order_id"),
    ("order_lines", "L5", "quantity", "0", "at least 1", "line_id"),
])
def test_minimum_rule(load, table, row, column, value, rule, key):
    err = broken(load, set_value(valid_data(), table, row, column, value))
    v = assert_single(err, table, column, rule, 1, [row], key)
    assert v.examples == (f"{row} ({value})",)


def test_minimum_rule_on_a_table_without_key_shows_the_row(load):
    data = valid_data()
    data["sessions"]["rows"][1][3] = "-5"
    err = broken(load, data)
    v = assert_single(err, "sessions", "sessions", "at least 0", 1, [])
    assert v.example_key == "date|channel|category|sessions"
    assert "(date|channel|category|sessions: 2024-01-01|app|shoes|-5 (-5))" in str(err)


# --------------------------------------------------------------------------- rules across columns and tables


def test_discount_at_most_quantity_times_price(load):
    data = valid_data()
    set_value(data, "order_lines", "L2", "discount_amount", "160.01")  # 2 x 80 = 160
    set_value(data, "order_lines", "L4", "discount_amount", "90")  # 3 x 30 = 90: allowed
    err = broken(load, data)
    assert_single(err, "order_lines", "discount_amount", "at most quantity x unit_price", 1, ["L2"], "line_id")


def test_foreign_key_order_lines_to_orders(load):
    err = broken(load, set_value(valid_data(), "order_lines", "L5", "order_id", "O9"))
    v = assert_single(err, "order_lines", "order_id", "references orders.order_id", 1, ["L5"], "line_id")
    assert v.examples == ("L5 (O9)",)


def test_foreign_key_returns_to_lines(load):
    data = valid_data()
    set_value(data, "returns", "R1", "line_id", "L9")
    set_value(data, "returns", "R3", "line_id", "L99")
    err = broken(load, data)
    assert_single(err, "returns", "line_id", "references order_lines.line_id", 2, ["R1", "R3"], "return_id")


def test_foreign_key_assignments_to_experiments(load):
    data = valid_data()
    data["assignments"]["rows"][2][0] = "E9"
    err = broken(load, data)
    assert_single(err, "assignments", "experiment_id", "references experiments.experiment_id", 1, ["C3"],
                  "customer_id")


def test_assignments_without_experiments_table(load):
    data = valid_data()
    del data["experiments"]
    err = broken(load, data)
    assert_single(err, "assignments", "experiment_id", "references experiments.experiment_id", 3,
                  ["C1", "C2", "C3"], "customer_id")
    assert "the table experiments is missing" in str(err)


def test_orphans_sharing_a_missing_key_are_counted_one_by_one(load):
    """The passes count a reference's orphans per row, though they reduce returns to one row per line,
    contacts to one per order and assignments to one per experiment and customer."""
    data = valid_data()
    set_value(data, "returns", "R1", "line_id", "L9")
    set_value(data, "returns", "R3", "line_id", "L9")  # two returns of one missing line
    set_value(data, "contacts", "K1", "order_id", "O9")
    set_value(data, "contacts", "K3", "order_id", "O9")  # two contacts of one missing order
    data["assignments"]["rows"][2][0] = "E9"
    data["assignments"]["rows"].append(["E9", "C3", "treatment", "2024-01-02 00:00:00"])  # twice the same pair
    err = broken(load, data)
    got = [(v.table, v.column, v.rule, v.n_rows, v.examples) for v in err.violations]
    assert got == [
        ("returns", "line_id", "references order_lines.line_id", 2, ("R1 (L9)", "R3 (L9)")),
        ("assignments", "experiment_id", "references experiments.experiment_id", 2, ("C3 (E9)", "C3 (E9)")),
    ]
    (w,) = [w for w in err.warnings if w.rule == "contact order_id not in orders"]
    assert (w.n_rows, w.examples) == (2, ("K1 (O9)", "K3 (O9)"))


def test_every_rule_between_orders_lines_and_returns_broken_at_once(load):
    """One pass screens them all; each broken one keeps its own count and examples."""
    data = valid_data()
    set_value(data, "order_lines", "L5", "order_id", "O9")  # a line of no order
    set_value(data, "returns", "R1", "line_id", "L9")  # a return of no line
    set_value(data, "returns", "R3", "requested_ts", "2024-01-02 00:00:00")  # before O3 (2024-01-03)
    set_value(data, "returns", "R3", "quantity", "4")  # L4 has 3
    for rid in ("R4", "R5"):  # with R2, 3 units of L2, which has 2: each return fits, the total does not
        data["returns"]["rows"].append([rid, "L2", "2024-01-07 10:00:00", "1", "quality", "", "70", "5", "2",
                                        "refund"])
    err = broken(load, data)
    got = [(v.table, v.column, v.rule, v.n_rows, v.examples) for v in err.violations]
    assert got == [
        ("order_lines", "order_id", "references orders.order_id", 1, ("L5 (O9)",)),
        ("returns", "line_id", "references order_lines.line_id", 1, ("R1 (L9)",)),
        ("returns", "requested_ts", "not before the order's order_ts", 1, ("R3 (2024-01-02)",)),
        ("returns", "quantity", "at most the line's quantity", 1, ("R3 (4)",)),
        ("returns", "quantity", "total returned per line at most the line's quantity", 1, ("L2 (3 > 2)",)),
    ]


def test_a_cross_table_count_stays_per_joined_row_when_a_key_is_duplicated(load):
    """A pass only screens the rules over matched rows: a broken one is counted by its own join, so a
    duplicated line (reported by its uniqueness rule) counts its too-large return once per copy, as
    the rule always did."""
    data = valid_data()
    data["order_lines"]["rows"].append(["L2", "O2", "SKU-2", "shoes", "2", "80", "10", "35.5"])
    set_value(data, "returns", "R2", "quantity", "3")  # L2 (both copies) has 2
    err = broken(load, data)
    got = [(v.table, v.column, v.rule, v.n_rows) for v in err.violations]
    assert got == [("order_lines", "line_id", "unique", 2), ("returns", "quantity", "at most the line's quantity", 2)]


def test_return_requested_before_its_order(load):
    err = broken(load, set_value(valid_data(), "returns", "R3", "requested_ts", "2024-01-02 00:00:00"))
    assert_single(err, "returns", "requested_ts", "not before the order's order_ts", 1, ["R3"], "return_id")


def test_return_quantity_at_most_line_quantity(load):
    err = broken(load, set_value(valid_data(), "returns", "R2", "quantity", "3"))  # L2 has 2
    v = assert_single(err, "returns", "quantity", "at most the line's quantity", 1, ["R2"], "return_id")
    assert v.examples == ("R2 (3)",)


def test_total_returned_per_line_at_most_line_quantity(load):
    data = valid_data()
    for rid in ("R4", "R5"):  # L2 has quantity 2; R2 already returns 1
        data["returns"]["rows"].append([rid, "L2", "2024-01-07 10:00:00", "1", "quality", "", "70", "5", "2",
                                        "refund"])
    err = broken(load, data)
    v = assert_single(err, "returns", "quantity", "total returned per line at most the line's quantity", 1,
                      ["L2"], "line_id")
    assert v.unit == "lines" and v.examples == ("L2 (3 > 2)",)
    assert "broken by 1 line (line_id: L2 (3 > 2))" in str(err)


def test_delivered_not_before_ordered(load):
    err = broken(load, set_value(valid_data(), "orders", "O4", "delivered_ts", "2024-01-04 18:59:59"))
    assert_single(err, "orders", "delivered_ts", "not before order_ts", 1, ["O4"], "order_id")


def test_review_date_not_before_start_date(load):
    err = broken(load, set_value(valid_data(), "experiments", "E2", "review_date", "2024-01-07"))
    assert_single(err, "experiments", "review_date", "not before start_date", 1, ["E2"], "experiment_id")


def test_expected_low_at_most_expected_high(load):
    err = broken(load, set_value(valid_data(), "experiments", "E1", "expected_low", "0.02"))
    assert_single(err, "experiments", "expected_low", "at most expected_high", 1, ["E1"], "experiment_id")


COHORT_RULE = "a filter column=value;... on category, channel, region, customer_type, sku"


@pytest.mark.parametrize("column,value", [
    ("cohort", "knitwear"),  # not column=value
    ("control_cohort", "channel=app;colour=red"),  # colour is not a slice column
])
def test_cohort_filters_parse_on_known_slice_columns(load, column, value):
    err = broken(load, set_value(valid_data(), "experiments", "E2", column, value))
    v = assert_single(err, "experiments", column, COHORT_RULE, 1, ["E2"], "experiment_id")
    assert repr(value) in v.examples[0]


def test_primary_metric_among_the_metrics_the_caller_knows(load):
    data = set_value(valid_data(), "experiments", "E2", "primary_metric", "damage_rte")
    with pytest.raises(ContractError) as info:
        validate(load(data), known_metrics={"return_rate", "damage_rate"})
    v = assert_single(info.value, "experiments", "primary_metric", "a known metric", 1, ["E2"], "experiment_id")
    assert v.examples == ("E2 (damage_rte)",)
    assert v.detail == "known metrics: damage_rate, return_rate"


def test_primary_metric_unchecked_when_the_caller_names_no_metric(load):
    data = set_value(valid_data(), "experiments", "E2", "primary_metric", "damage_rte")
    assert validate(load(data)).row_counts["experiments"] == 2


def with_experiment_columns(data: dict, **by_column: dict[str, str]) -> dict:
    """The experiments table with optional columns added: ``closed_on={"E1": "2024-01-20"}`` (others empty)."""
    t = data["experiments"]
    for column, values in by_column.items():
        t["columns"].append(column)
        for row in t["rows"]:
            row.append(values.get(row[0], ""))
    return data


CLOSE_TOGETHER = "closed_on and closed_reason given together (both or neither)"


def test_closed_on_with_its_reason_after_the_start_passes(load):
    data = with_experiment_columns(valid_data(), closed_on={"E1": "2024-01-20"},
                                   closed_reason={"E1": "abandoned: the page change was rolled back"})
    out = validate(load(data))
    rows = {r["experiment_id"]: r for r in out.tables["experiments"].to_pyarrow().to_pylist()}
    assert str(rows["E1"]["closed_on"]) == "2024-01-20" and rows["E2"]["closed_on"] is None
    assert rows["E1"]["closed_reason"] == "abandoned: the page change was rolled back"


def test_closed_on_without_its_reason_is_refused_naming_table_column_rows_and_ids(load):
    data = with_experiment_columns(valid_data(), closed_on={"E1": "2024-01-20", "E2": "2024-02-01"},
                                   closed_reason={"E2": "overdue"})
    err = broken(load, data)
    v = assert_single(err, "experiments", "closed_on", CLOSE_TOGETHER, 1, ["E1"], "experiment_id")
    assert v.examples == ("E1 (2024-01-20)",)


def test_a_closed_reason_without_a_closed_on_column_is_refused(load):
    data = with_experiment_columns(valid_data(), closed_reason={"E1": "overdue", "E2": "abandoned"})
    err = broken(load, data)
    assert_single(err, "experiments", "closed_reason", CLOSE_TOGETHER, 2, ["E1", "E2"], "experiment_id")


def test_closed_on_before_the_start_date_is_refused(load):
    data = with_experiment_columns(valid_data(), closed_on={"E2": "2024-01-07"}, closed_reason={"E2": "overdue"})
    err = broken(load, data)
    v = assert_single(err, "experiments", "closed_on", "not before start_date", 1, ["E2"], "experiment_id")
    assert v.examples == ("E2 (2024-01-07)",)


def test_closed_on_that_is_not_a_date_is_refused_with_the_value(load):
    data = with_experiment_columns(valid_data(), closed_on={"E1": "last week"}, closed_reason={"E1": "overdue"})
    err = broken(load, data)
    v = assert_single(err, "experiments", "closed_on", "value is a date (YYYY-MM-DD)", 1, ["E1"], "experiment_id")
    assert v.examples == ("E1 ('last week')",)


def test_planned_looks_and_information_are_read_as_their_types(load):
    data = with_experiment_columns(valid_data(), planned_looks={"E1": "4"}, planned_information={"E1": "1250.5"})
    rows = {r["experiment_id"]: r for r in validate(load(data)).tables["experiments"].to_pyarrow().to_pylist()}
    assert (rows["E1"]["planned_looks"], rows["E1"]["planned_information"]) == (4, 1250.5)
    assert (rows["E2"]["planned_looks"], rows["E2"]["planned_information"]) == (None, None)


def test_a_text_in_planned_looks_is_refused_naming_the_value(load):
    data = with_experiment_columns(valid_data(), planned_looks={"E1": "four", "E2": "2"})
    err = broken(load, data)
    v = assert_single(err, "experiments", "planned_looks", "value is an integer", 1, ["E1"], "experiment_id")
    assert v.examples == ("E1 ('four')",)


@pytest.mark.parametrize("column,value,rule", [
    ("planned_looks", "0", "at least 1"),
    ("planned_looks", "2.5", "value is an integer"),
    ("planned_information", "-3", "at least 0"),
    ("planned_information", "many", "value is a number"),
])
def test_planned_columns_break_their_kind_or_minimum(load, column, value, rule):
    err = broken(load, with_experiment_columns(valid_data(), **{column: {"E2": value}}))
    assert_single(err, "experiments", column, rule, 1, ["E2"], "experiment_id")


def test_one_variant_per_experiment_and_customer(load):
    data = valid_data()
    data["assignments"]["rows"].append(["E1", "C1", "treatment", "2024-01-03 00:00:00"])
    data["assignments"]["rows"].append(["E1", "C2", "treatment", "2024-01-03 00:00:00"])  # same variant: ok
    err = broken(load, data)
    v = assert_single(err, "assignments", "variant", "one variant per experiment and customer", 1, ["C1"],
                      "customer_id")
    assert v.examples == ("C1 (E1)",)


# --------------------------------------------------------------------------- all at once


def several_violations() -> dict:
    data = valid_data()
    set_value(data, "orders", "O2", "order_ts", "yesterday")  # type
    set_value(data, "order_lines", "L5", "order_id", "O9")  # foreign key
    set_value(data, "returns", "R2", "resolution", "refnd")  # allowed values
    set_value(data, "returns", "R1", "quantity", "5")  # return quantity > line quantity
    set_value(data, "sessions", "2024-01-02", "sessions", "-1")  # minimum
    set_value(data, "returns", "R3", "reason_code", "sizing")  # a warning, not a violation
    del data["marketing_spend"]  # a warning, not a violation
    return data


def test_several_violations_reported_in_one_error(load):
    err = broken(load, several_violations())
    rules = [(v.table, v.column, v.rule) for v in err.violations]
    assert rules == [  # in the order of the checks
        ("orders", "order_ts", TS_RULE),
        ("returns", "resolution", "one of refund, exchange, store_credit"),
        ("sessions", "sessions", "at least 0"),
        ("order_lines", "order_id", "references orders.order_id"),
        ("returns", "quantity", "at most the line's quantity"),
    ]
    lines = str(err).splitlines()
    assert lines[0] == ("The input data break the data contract: 5 violations in orders, order_lines, "
                        "returns, sessions (see docs/data_contract.md).")
    assert len(lines) == 6
    assert lines[5] == "returns.quantity: rule 'at most the line's quantity' broken by 1 row (return_id: R1 (5))"
    assert isinstance(err, ValueError)
    assert [v.to_dict()["message"] for v in err.violations] == lines[1:]
    # the warnings found on the way travel with the error
    assert [w.rule for w in err.warnings] == ["reason code outside the taxonomy", "optional table missing"]


# --------------------------------------------------------------------------- warnings


def test_unknown_reason_codes_become_other_and_are_counted_per_code(load):
    data = valid_data()
    data["returns"]["rows"].append(["R4", "L3", "2024-01-07 10:00:00", "1", "xx", "", "40", "5", "2",
                                    "refund"])
    set_value(data, "returns", "R1", "reason_code", "sizing")
    set_value(data, "returns", "R3", "reason_code", "sizing")
    set_value(data, "returns", "R2", "reason_code", " Damaged_Defective")  # case / spaces: a known code
    out = validate(load(data))
    ws = [w for w in out.warnings if w.rule == "reason code outside the taxonomy"]
    assert len(ws) == 2 and len(out.warnings) == 2
    assert [(w.table, w.n_rows, w.examples) for w in ws] == [("returns", 2, ("R1", "R3")), ("returns", 1, ("R4",))]
    assert ws[0].message == "2 returns with reason_code 'sizing', outside the taxonomy: counted as 'other'"
    assert ws[0].to_dict() == {"table": "returns", "rule": "reason code outside the taxonomy", "n_rows": 2,
                               "message": ws[0].message, "examples": ["R1", "R3"]}
    rows = {r["return_id"]: r for r in out.tables["returns"].to_pyarrow().to_pylist()}
    assert rows["R1"]["reason_code"] == "other" and rows["R1"]["reason_code_raw"] == "sizing"
    assert rows["R4"]["reason_code"] == "other" and rows["R4"]["reason_code_raw"] == "xx"
    assert rows["R2"]["reason_code"] == "damaged_defective"
    assert rows["R2"]["reason_code_raw"] == " Damaged_Defective"
    assert rows["R3"]["reason_code"] == "other"


def test_each_warning_with_its_count(load):
    data = valid_data()
    set_value(data, "orders", "O3", "delivered_ts", "")  # never delivered: 2
    set_value(data, "orders", "O4", "delivered_ts", "")
    data["actions"]["rows"] = []  # an empty optional table
    del data["sessions"]  # missing optional tables
    del data["marketing_spend"]
    set_value(data, "contacts", "K1", "cost", "")  # contacts without cost: 2
    set_value(data, "contacts", "K2", "cost", "")
    set_value(data, "contacts", "K3", "order_id", "O42")  # a contact with an unknown order: 1
    out = validate(load(data))
    got = [(w.table, w.rule, w.n_rows, w.examples) for w in out.warnings]
    assert got == [
        ("orders", "not delivered", 2, ()),
        ("actions", "optional table empty", 0, ()),
        ("sessions", "optional table missing", 0, ()),
        ("marketing_spend", "optional table missing", 0, ()),
        ("contacts", "contact cost empty", 2, ("K1", "K2")),
        ("contacts", "contact order_id not in orders", 1, ("K3 (O42)",)),
    ]
    messages = {w.rule: w.message for w in out.warnings}
    assert messages["not delivered"].startswith("2 orders without delivered_ts")
    assert "default cost per contact" in messages["contact cost empty"]
    assert [w.message for w in out.warnings if w.rule == "optional table missing"] == [
        "not available (no sessions table)", "not available (no marketing_spend table)"]
    assert out.missing_tables == ["sessions", "marketing_spend"]
    assert "sessions" not in out.tables
    assert "actions" in out.tables  # an empty table is kept, with its contract columns
    assert list(out.tables["actions"].columns) == list(contract.TABLES["actions"].column_names)
    assert all(set(w.to_dict()) == {"table", "rule", "n_rows", "message", "examples"} for w in out.warnings)


def test_an_unknown_column_is_a_warning_naming_the_table_and_the_column_and_saying_it_is_ignored(load):
    data = with_experiment_columns(valid_data(), owner_note={"E1": "ask Ana"})
    out = validate(load(data))
    (w,) = out.warnings
    assert (w.table, w.rule, w.n_rows, w.examples) == ("experiments", "column not in the contract", 0, ("owner_note",))
    assert w.message == "column 'owner_note' of the experiments table is not in the data contract: ignored"
    assert "owner_note" not in out.tables["experiments"].columns


def test_a_misspelt_optional_column_gets_a_did_you_mean_hint(load):
    data = with_experiment_columns(valid_data(), planned_look={"E1": "4"})
    (w,) = validate(load(data)).warnings
    assert w.message == ("column 'planned_look' of the experiments table is not in the data contract: ignored "
                         "(did you mean planned_looks?)")


def test_several_unknown_columns_make_one_warning_per_table_with_a_hint_for_each_close_one(load):
    data = with_experiment_columns(valid_data(), Closed_Reasn={"E1": ""}, notes={"E1": "x"}, planned_information={})
    data["sessions"]["columns"].append("source")
    for row in data["sessions"]["rows"]:
        row.append("ga4")
    out = validate(load(data))
    assert [(w.table, w.examples) for w in out.warnings] == [
        ("sessions", ("source",)), ("experiments", ("Closed_Reasn", "notes"))]
    assert out.warnings[1].message == (
        "columns 'Closed_Reasn', 'notes' of the experiments table are not in the data contract: ignored "
        "(Closed_Reasn: did you mean closed_reason?)")


def test_a_contract_column_given_is_not_suggested_for_an_unknown_one(load):
    data = with_experiment_columns(valid_data(), planned_looks={"E1": "4"}, planned_look={"E1": "4"})
    (w,) = validate(load(data)).warnings
    assert "did you mean" not in w.message


def test_a_missing_column_names_the_misspelt_one_it_may_be(load):
    data = valid_data()
    data["experiments"]["columns"][data["experiments"]["columns"].index("review_date")] = "reveiw_date"
    err = broken(load, data)
    assert [(v.table, v.rule) for v in err.violations] == [("experiments", "has the contract columns")]
    assert str(err).splitlines()[1].startswith("experiments: rule 'has the contract columns' broken: missing review_date")
    assert str(err).endswith("; did you mean review_date for 'reveiw_date'?")
    assert [w.message for w in err.warnings] == [
        "column 'reveiw_date' of the experiments table is not in the data contract: ignored (did you mean "
        "review_date?)"]


# --------------------------------------------------------------------------- engine, portability


def test_queries_are_aggregates_and_compile_for_postgres(load, monkeypatch):
    """Every query the validation runs compiles to PostgreSQL SQL (no TRY_CAST there) and
    fetches an aggregate or at most 5 example rows (the experiments table excepted)."""
    compiled, sizes = [], []
    real_rows = engine.rows

    def rows(expr):
        compiled.append(ibis.to_sql(expr, dialect="postgres"))
        result = real_rows(expr)
        sizes.append((len(result), sorted(result[0]) if result else []))
        return result

    monkeypatch.setattr(engine, "rows", rows)
    data = several_violations()
    for i in range(20):
        data["orders"]["rows"].append([f"X{i:02d}", "bad", "C1", "web", "north", "2024-01-01", "", "1"])
    tables = load(data)
    with pytest.raises(ContractError) as info:
        validate(tables)
    v = info.value.violations[0]
    assert (v.column, v.n_rows, len(v.examples)) == ("order_ts", 21, 5)
    assert str(v).endswith("(order_id: O2 ('yesterday'), X00 ('bad'), X01 ('bad'), X02 ('bad'), X03 ('bad'), ...)")
    prepared = engine.Run.of(tables)
    for name in tables:
        table_rules.prepare_table(prepared, name)
        compiled.append(ibis.to_sql(prepared.out[name], dialect="postgres"))
    assert len(compiled) > 10
    assert not any("TRY_CAST" in sql.upper() for sql in compiled)
    assert max(n for n, cols in sizes if "cohort" not in cols) <= validation.N_EXAMPLES


def test_a_clean_source_is_read_in_one_query_per_table_and_one_per_pass(tmp_path):
    """Counted by DuckDB itself (its query log): one aggregate per table for its own rules, one pass over
    orders, lines, returns and contacts, one over assignments and experiments, one fetch of the
    experiments' filters; no rule runs a query of its own when nothing is broken (18 queries before
    the passes, 12 now)."""
    con = ibis.duckdb.connect()
    tables = load_csvs(write_csvs(tmp_path / "src", valid_data()), con=con)
    con.raw_sql("CALL enable_logging('QueryLog')")
    validate(tables)
    queries = [m for (m,) in con.raw_sql("SELECT message FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()
               if m.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(tables) == 9
    assert len(queries) == 9 + 2 + 1, "\n".join(q[:120] for q in queries)


def _postgres():
    url = os.environ.get("PLAYBOOK_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    try:
        return ibis.connect(url)
    except Exception as exc:  # no server: the test is skipped
        pytest.skip(f"no PostgreSQL server at {url}: {type(exc).__name__}")


@pytest.mark.postgres
@pytest.mark.parametrize("typed", [True, False], ids=["typed-columns", "text-columns"])
def test_same_result_on_postgres(load, typed):
    """The rules run in PostgreSQL (set PLAYBOOK_TEST_POSTGRES_URL); with text columns the
    casts must not fail on bad values (PostgreSQL has no TRY_CAST)."""
    pg = _postgres()
    data = several_violations()
    set_value(data, "orders", "O3", "promised_delivery_date", "2024-02-30")
    data["assignments"]["rows"].append(["E1", "C1", "treatment", "2024-01-03 00:00:00"])
    duck = load(data)
    prefix = f"pbv_{os.getpid()}_{int(typed)}"
    tables = {}
    try:
        for name, t in duck.items():
            if typed:
                obj, schema = t.to_pyarrow(), None
            else:
                obj = pd.DataFrame(data[name]["rows"], columns=data[name]["columns"], dtype=object).replace("", None)
                schema = ibis.schema({c: "string" for c in data[name]["columns"]})
            tables[name] = pg.create_table(f"{prefix}_{name}", obj, schema=schema, overwrite=True)
        with pytest.raises(ContractError) as on_pg:
            validate(tables)
        with pytest.raises(ContractError) as on_duckdb:
            validate(duck)
        assert str(on_pg.value) == str(on_duckdb.value)
        assert [w.to_dict() for w in on_pg.value.warnings] == [w.to_dict() for w in on_duckdb.value.warnings]
    finally:
        for name in tables:
            pg.drop_table(f"{prefix}_{name}", force=True)
