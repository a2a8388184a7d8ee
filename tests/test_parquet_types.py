"""What people write reads on every engine: the Parquet schema read before an engine opens a file.

pandas' and pyarrow's defaults (timestamps in nanoseconds, large strings, categories as dictionaries) are
found in the footer; the types Spark 4 has no type for are named with what to write instead. The Spark
side itself (the session reading nanoseconds, the same values and types as DuckDB) is in tests/test_spark.py.
"""
from __future__ import annotations

import datetime as dt
import decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_SHOP, write_shop

from playbook.data.contract import TABLES
from playbook.data.dataset import open_dataset
from playbook.data.engines import parquet_types
from playbook.data.errors import SourceError


def columns_of(tmp_path, **arrays) -> list[parquet_types.ParquetColumn]:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(arrays), path)
    return parquet_types.parquet_columns(path)


def test_timestamps_in_nanoseconds_are_found_naive_or_instants_and_others_are_not(tmp_path):
    found = columns_of(tmp_path, ns=pa.array([0], pa.timestamp("ns")), utc=pa.array([0], pa.timestamp("ns", "UTC")),
                       us=pa.array([0], pa.timestamp("us")), n=pa.array([0], pa.int64()),
                       nested=pa.array([{"at": 0}], pa.struct([("at", pa.timestamp("ns"))])))
    assert parquet_types.nanos_columns(found) == [("ns", False), ("utc", True)]
    assert found[0].type_text() == "INT64 (TIMESTAMP(NANOS,false))"  # as Spark's own error names it


def test_what_pandas_writes_by_default_is_all_readable_by_spark(tmp_path):
    frame = pd.DataFrame({"order_ts": pd.to_datetime(["2026-11-02 10:00:00"]).astype("datetime64[ns]"),
                          "channel": pd.Categorical(["web"]), "region": pd.Series(["north"], dtype="str"),
                          "customer_id": pd.Series(["C1"], dtype=pd.ArrowDtype(pa.large_string())),
                          "units": pd.Series([3], dtype="uint32")})
    frame.to_parquet(tmp_path / "orders.parquet", index=False)
    found = parquet_types.parquet_columns(tmp_path / "orders.parquet")
    assert parquet_types.spark_unreadable(found) == []
    assert parquet_types.nanos_columns(found) == [("order_ts", False)]


def test_the_types_spark_has_no_type_for_are_named_with_what_to_write_instead(tmp_path):
    found = columns_of(tmp_path, at=pa.array([dt.time(10)], pa.time64("us")), half=pa.array([1.5], pa.float16()),
                       id=pa.array([b"a" * 16], pa.uuid()),
                       big=pa.array([decimal.Decimal("1.5")], pa.decimal256(50, 2)),
                       ok=pa.array([decimal.Decimal("1.5")], pa.decimal128(10, 2)))
    bad = {u.column: u for u in parquet_types.spark_unreadable(found)}
    assert sorted(bad) == ["at", "big", "half", "id"]
    assert bad["at"].type_text == "INT64 (TIME(MICROS,false))" and "as a timestamp" in bad["at"].advice
    assert "float64" in bad["half"].advice and "as text" in bad["id"].advice and "38" in bad["big"].advice


def test_a_folder_of_part_files_is_read_from_its_first_part_file(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000.parquet.crc").write_bytes(b"x")
    pq.write_table(pa.table({"order_ts": pa.array([0], pa.timestamp("ns"))}), folder / "part-00000.snappy.parquet")
    assert parquet_types.parquet_file_of(folder) == folder / "part-00000.snappy.parquet"
    assert parquet_types.nanos_columns(parquet_types.parquet_columns(folder)) == [("order_ts", False)]
    assert parquet_types.parquet_columns(tmp_path / "nothing") == []


# --- DuckDB: a file it cannot read is named with its table, never a bare exception ----------------

def test_a_parquet_file_duckdb_cannot_read_stops_with_the_table_and_the_file(tmp_path):
    folder = write_shop(tmp_path / "shop")
    (folder / "orders.csv").unlink()
    (folder / "orders.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(SourceError, match=r"^table orders: DuckDB cannot read .*orders.parquet: \S"):
        open_dataset(folder)


def test_a_contract_column_of_a_type_duckdb_does_not_know_is_named_with_what_to_write(tmp_path):
    folder = write_shop(tmp_path / "shop")
    orders = pd.read_csv(folder / "orders.csv").drop(columns="delivered_ts")
    (folder / "orders.csv").unlink()
    table = pa.Table.from_pandas(orders, preserve_index=False).append_column(
        "delivered_ts", pa.array([0] * len(orders), pa.time64("ns")))
    pq.write_table(table, folder / "orders.parquet")
    with pytest.raises(SourceError) as err:
        open_dataset(folder)
    assert str(err.value).startswith("table orders: DuckDB cannot read column delivered_ts of ")
    assert str(err.value).endswith("write it as a timestamp (date and time)")


def test_pandas_default_parquet_reads_on_duckdb_as_the_csv_does(tmp_path):
    """The same tiny shop from pandas' Parquet (nanoseconds, categories) and from CSV: the same validated tables."""
    csv = write_shop(tmp_path / "csv")
    folder = tmp_path / "parquet"
    folder.mkdir()
    for name in TINY_SHOP:
        frame = pd.read_csv(csv / f"{name}.csv", keep_default_na=False, na_values=[""])
        for column in TABLES[name].all_columns:
            if column.name in frame and column.kind in ("date", "timestamp"):
                frame[column.name] = pd.to_datetime(frame[column.name]).astype("datetime64[ns]")
            elif column.name in frame and column.kind == "str" and frame[column.name].notna().all():
                frame[column.name] = frame[column.name].astype(str).astype("category")
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    from_csv, from_parquet = open_dataset(csv), open_dataset(folder)
    for name, table in from_csv.tables.items():
        kinds = lambda t: {column: type(dtype) for column, dtype in t.schema().items()}  # a CSV's cut is timestamp(6)
        assert kinds(from_parquet.tables[name]) == kinds(table), name
        pd.testing.assert_frame_equal(from_parquet.tables[name].to_pandas(), table.to_pandas(), check_dtype=False)
