"""The inputs real exports carry (issue 13): each is read correctly or refused naming the table, the
column, the rule, the count and examples, never read wrong.

Each test writes the tiny shop of ``conftest`` (or a few hand-written rows) as CSV files in one
dialect, opens it through the public path (``open_dataset``) and compares with values computed by
hand: a byte-order mark, semicolons, decimal commas, Windows line endings, quoted line breaks,
Latin-1 text, time zone offsets, dates without a time, a daylight-saving change inside a week.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from pathlib import Path

import ibis
import pandas as pd
import pytest
import yaml
from conftest import TINY_SHOP, write_shop

from playbook.config.loader import load_config
from playbook.core.paths import DEFAULT_CONFIG
from playbook.core.settings import ConfigError
from playbook.core.weeks import IsoWeek
from playbook.data.contract import TABLES
from playbook.data.dataset import open_dataset
from playbook.data.validation import ContractError, Violation, validate

PARIS = "Europe/Paris"
#: more rows than DuckDB's type detection samples (20,480): a value after them is not seen by it
PAST_THE_SAMPLE = 25_000


def write_table(folder: Path, name: str, rows: list[tuple], sep: str = ",", newline: str = "\n",
                encoding: str = "utf-8", bom: bool = False) -> Path:
    """``<name>.csv`` with the contract header, in the given dialect and encoding."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator=newline)
    writer.writerow(TABLES[name].column_names)
    writer.writerows(rows)
    path = folder / f"{name}.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode(encoding))
    return path


def shop(tmp_path: Path, **tables: list[tuple]) -> Path:
    """The tiny shop with some tables replaced by ``tables`` (written afterwards by the test)."""
    return write_shop(tmp_path / "shop", {**TINY_SHOP, **tables})


def rows_of(folder: Path, table: str, key: str, timezone: str = "UTC") -> dict[str, dict]:
    ds = open_dataset(folder, timezone=timezone)
    try:
        return {r[key]: r for r in ds.tables[table].to_pyarrow().to_pylist()}
    finally:
        ds.close()


def refused(folder: Path, timezone: str = "UTC") -> ContractError:
    with pytest.raises(ContractError) as info:
        open_dataset(folder, timezone=timezone)
    return info.value


def only(err: ContractError) -> Violation:
    assert len(err.violations) == 1, str(err)
    return err.violations[0]


def with_returns(change: dict[str, dict[int, object]]) -> list[tuple]:
    """TINY_SHOP's returns with some cells replaced: ``{return_id: {column index: value}}``."""
    out = []
    for row in TINY_SHOP["returns"]:
        cells = list(row)
        for i, value in change.get(row[0], {}).items():
            cells[i] = value
        out.append(tuple(cells))
    return out


# --------------------------------------------------------------------------- file formats


def test_a_utf8_byte_order_mark_is_dropped_from_the_first_column_name(tmp_path):
    folder = shop(tmp_path)
    write_table(folder, "orders", TINY_SHOP["orders"], bom=True)
    orders = rows_of(folder, "orders", "order_id")
    assert sorted(orders) == ["O1", "O2", "O3", "O4"]


def test_semicolon_separators_are_read_with_commas_kept_inside_the_text(tmp_path):
    folder = shop(tmp_path)
    rows = with_returns({"R1": {5: "runs small, one size up", 6: "20", 7: "5", 8: "2"}})
    write_table(folder, "returns", [tuple(str(c).replace(".0", "") for c in r) for r in rows], sep=";")
    returns = rows_of(folder, "returns", "return_id")
    assert returns["R1"]["reason_text"] == "runs small, one size up"
    assert (returns["R1"]["line_id"], returns["R1"]["refund_amount"]) == ("L1", 20.0)


def test_a_decimal_comma_in_a_semicolon_file_is_read_as_the_number(tmp_path):
    folder = shop(tmp_path)
    rows = [tuple(str(c).replace(".", ",") for c in r) for r in TINY_SHOP["order_lines"]]
    rows[0] = ("L1", "O1", "A", "knitwear", "2", "49,95", "10,5", "20,25")
    write_table(folder, "order_lines", rows, sep=";")
    line = rows_of(folder, "order_lines", "line_id")["L1"]
    assert (line["unit_price"], line["discount_amount"], line["unit_cost"], line["quantity"]) == (49.95, 10.5, 20.25, 2)


def test_a_decimal_dot_in_a_semicolon_file_is_refused_as_ambiguous(tmp_path):
    folder = shop(tmp_path)
    rows = [tuple(str(c).replace(".", ",") for c in r) for r in TINY_SHOP["order_lines"]]
    rows[1] = ("L2", "O1", "B", "shoes", "1", "1.000", "0", "30")  # a thousand, or one?
    write_table(folder, "order_lines", rows, sep=";")
    v = only(refused(folder))
    assert (v.table, v.column, v.n_rows, v.examples) == ("order_lines", "unit_price", 1, ("L2 ('1.000')",))
    assert v.rule == "value is a number with a decimal comma (12,5), no thousands separator"


def test_a_decimal_comma_in_a_comma_separated_file_is_refused(tmp_path):
    folder = shop(tmp_path)
    write_table(folder, "returns", with_returns({"R2": {6: "36,5"}}))  # quoted by the writer
    v = only(refused(folder))
    assert (v.table, v.column, v.rule, v.n_rows, v.examples) == (
        "returns", "refund_amount", "value is a number", 1, ("R2 ('36,5')",))


def test_windows_line_endings_leave_no_carriage_return_in_the_last_column(tmp_path):
    folder = shop(tmp_path)
    write_table(folder, "returns", TINY_SHOP["returns"], newline="\r\n")
    returns = rows_of(folder, "returns", "return_id")
    assert {k: r["resolution"] for k, r in returns.items()} == {
        "R1": "refund", "R2": "refund", "R3": "store_credit", "R4": "exchange"}


def test_quoted_fields_with_line_breaks_keep_their_rows_and_their_text(tmp_path):
    folder = shop(tmp_path)
    text = 'too tight,\nsaid "size up"\r\nthen left'
    write_table(folder, "returns", with_returns({"R3": {5: text}}), newline="\r\n")
    returns = rows_of(folder, "returns", "return_id")
    assert sorted(returns) == ["R1", "R2", "R3", "R4"]
    assert returns["R3"]["reason_text"] == text and returns["R3"]["resolution"] == "store_credit"


def test_latin1_text_is_refused_naming_the_column_the_rows_and_the_file(tmp_path):
    folder = shop(tmp_path)
    rows = with_returns({"R1": {5: "trop étroit"}, "R3": {5: "déçu"}})
    write_table(folder, "returns", rows, encoding="latin-1")
    v = only(refused(folder))
    assert (v.table, v.column, v.rule, v.n_rows) == ("returns", "reason_text", "text encoded as UTF-8", 2)
    assert v.examples == ("R1 ('trop étroit')", "R3 ('déçu')") and v.example_key == "return_id"
    assert "returns.csv is not UTF-8" in v.detail and "Latin-1" in v.detail


def test_latin1_text_past_the_sampled_rows_is_refused_too(tmp_path):
    folder = shop(tmp_path)
    rows = [(f"A{i}", "2026-W45", "ana", "fix size chart", "open", "") for i in range(PAST_THE_SAMPLE)]
    rows.append(("AZ", "2026-W45", "José", "étiquettes", "open", ""))
    write_table(folder, "actions", rows, encoding="latin-1")
    err = refused(folder)
    assert [(v.column, v.n_rows, v.examples) for v in err.violations] == [
        ("owner", 1, ("AZ ('José')",)), ("description", 1, ("AZ ('étiquettes')",))]


def test_a_bad_number_past_the_sampled_rows_is_named_by_validation(tmp_path):
    folder = shop(tmp_path)
    rows = [("2026-11-03", "web", "knitwear", 10)] * PAST_THE_SAMPLE + [("2026-11-04", "web", "shoes", "lots")]
    write_table(folder, "sessions", rows)
    v = only(refused(folder))
    assert (v.table, v.column, v.rule, v.n_rows) == ("sessions", "sessions", "value is an integer", 1)
    assert v.examples == ("2026-11-04|web|shoes|lots ('lots')",)


def test_a_row_with_a_field_too_many_in_a_small_file_is_refused(tmp_path):
    folder = shop(tmp_path)
    path = write_table(folder, "returns", TINY_SHOP["returns"])
    path.write_text(path.read_text() + "R5,L5,2026-11-21 10:00:00,1,quality,,80.0,5.0,2.0,refund,extra\n")
    v = only(refused(folder))
    assert (v.table, v.column, v.rule) == ("returns", None, "a CSV file whose rows have the header's fields")
    assert "returns.csv: the header names return_id, line_id" in v.detail


def test_a_row_with_a_field_too_many_past_the_sampled_rows_is_refused_naming_the_line(tmp_path):
    folder = shop(tmp_path)
    rows = [("2026-11-03", "web", "knitwear", 10)] * PAST_THE_SAMPLE + [("2026-11-04", "web", "shoes", 3, 4)]
    write_table(folder, "sessions", rows)
    v = only(refused(folder))
    assert (v.table, v.rule, v.examples) == ("sessions", "a CSV file whose rows have the header's fields",
                                             (f"line {PAST_THE_SAMPLE + 2}",))
    assert v.detail == "sessions.csv: Expected Number of Columns: 4 Found: 5"


# --------------------------------------------------------------------------- time


def test_an_offset_timestamp_is_converted_to_the_shop_time_zone(tmp_path):
    folder = shop(tmp_path)
    orders = [("O1", "2026-11-02T10:00:00-05:00", *TINY_SHOP["orders"][0][2:]), *TINY_SHOP["orders"][1:]]
    write_table(folder, "orders", orders)
    # 10:00 at UTC-5 is 15:00 UTC, 16:00 in Paris (UTC+1 in November)
    assert rows_of(folder, "orders", "order_id", PARIS)["O1"]["order_ts"] == dt.datetime(2026, 11, 2, 16, 0)


def test_a_z_timestamp_is_converted_to_the_shop_time_zone(tmp_path):
    folder = shop(tmp_path)
    orders = [("O1", "2026-11-02T10:00:00Z", *TINY_SHOP["orders"][0][2:]), *TINY_SHOP["orders"][1:]]
    write_table(folder, "orders", orders)
    assert rows_of(folder, "orders", "order_id", PARIS)["O1"]["order_ts"] == dt.datetime(2026, 11, 2, 11, 0)


def test_naive_timestamps_beside_offset_ones_stay_shop_local_time(tmp_path):
    folder = shop(tmp_path)
    orders = [("O1", "2026-11-02T10:00:00Z", *TINY_SHOP["orders"][0][2:]), *TINY_SHOP["orders"][1:]]
    write_table(folder, "orders", orders)
    # O2 is written '2026-11-03 12:00:00': the shop's clock, whatever the other rows carry
    assert rows_of(folder, "orders", "order_id", PARIS)["O2"]["order_ts"] == dt.datetime(2026, 11, 3, 12, 0)


def test_utc_stays_the_default_for_offset_timestamps(tmp_path):
    folder = shop(tmp_path)
    orders = [("O1", "2026-11-02T10:00:00+01:00", *TINY_SHOP["orders"][0][2:]), *TINY_SHOP["orders"][1:]]
    write_table(folder, "orders", orders)
    assert rows_of(folder, "orders", "order_id")["O1"]["order_ts"] == dt.datetime(2026, 11, 2, 9, 0)


def test_an_offset_past_the_sampled_rows_is_still_converted(tmp_path):
    folder = shop(tmp_path)
    rows = [(f"K{i}", "2026-11-05 10:00:00", "", "wismo", 1.0) for i in range(PAST_THE_SAMPLE)]
    rows.append(("KZ", "2026-11-05T10:00:00-05:00", "", "wismo", 1.0))
    write_table(folder, "contacts", rows)
    contacts = rows_of(folder, "contacts", "contact_id", PARIS)
    assert contacts["KZ"]["contact_ts"] == dt.datetime(2026, 11, 5, 16, 0)
    assert contacts["K0"]["contact_ts"] == dt.datetime(2026, 11, 5, 10, 0)


def test_a_date_without_time_is_midnight_of_that_day(tmp_path):
    folder = shop(tmp_path)
    orders = [("O1", "2026-11-02", *TINY_SHOP["orders"][0][2:]), *TINY_SHOP["orders"][1:]]
    write_table(folder, "orders", orders)
    assert rows_of(folder, "orders", "order_id", PARIS)["O1"]["order_ts"] == dt.datetime(2026, 11, 2, 0, 0)


def test_a_date_column_given_as_an_instant_takes_the_shop_local_date(tmp_path):
    folder = shop(tmp_path)
    o1 = list(TINY_SHOP["orders"][0])
    o1[5] = "2026-11-04T23:30:00Z"  # promised_delivery_date: 00:30 on the 5th in Paris
    write_table(folder, "orders", [tuple(o1), *TINY_SHOP["orders"][1:]])
    assert rows_of(folder, "orders", "order_id", PARIS)["O1"]["promised_delivery_date"] == dt.date(2026, 11, 5)


def test_an_unknown_time_zone_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Pariss'"):
        open_dataset(write_shop(tmp_path / "shop"), timezone="Europe/Pariss")


def test_the_configuration_names_the_shop_time_zone(tmp_path):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    path = tmp_path / "paris.yaml"
    path.write_text(yaml.safe_dump({**config, "timezone": PARIS}), encoding="utf-8")
    assert load_config(path).timezone == PARIS


def test_an_unknown_time_zone_in_the_configuration_is_a_config_error(tmp_path):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    path = tmp_path / "mars.yaml"
    path.write_text(yaml.safe_dump({**config, "timezone": "Mars/Olympus"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Olympus'"):
        load_config(path)


# The week 2026-W43 (Monday 19 .. Sunday 25 October) ends with the change from summer time
# (UTC+2) to winter time (UTC+1) on Sunday 25 October at 03:00 in Paris.
DST_ORDERS = [
    ("O1", "2026-10-18T22:30:00Z", "C1", "web", "north", "2026-10-22", "", 5.0),  # Monday 19, 00:30 (UTC+2)
    ("O2", "2026-10-25T21:30:00Z", "C2", "web", "north", "2026-10-28", "", 5.0),  # Sunday 25, 22:30 (UTC+1)
    ("O3", "2026-10-25T23:30:00Z", "C3", "web", "north", "2026-10-29", "", 5.0),  # Monday 26, 00:30 (UTC+1)
]


@pytest.fixture(scope="module")
def dst_week(tmp_path_factory):
    folder = write_shop(tmp_path_factory.mktemp("dst") / "shop", {
        "orders": DST_ORDERS,
        "order_lines": [(f"L{i}", f"O{i}", "A", "knitwear", 1, 50.0, 0.0, 20.0) for i in (1, 2, 3)],
        "returns": [("R1", "L1", "2026-10-20 10:00:00", 1, "quality", "", 50.0, 5.0, 2.0, "refund")],
    })
    ds = open_dataset(folder, timezone=PARIS)
    cut = ds.as_of("2026-W43").tables["orders"].to_pyarrow().to_pylist()
    yield {r["order_id"]: r["order_ts"] for r in cut}
    ds.close()


def test_an_order_in_the_first_local_hour_of_a_dst_week_belongs_to_it(dst_week):
    assert dst_week["O1"] == dt.datetime(2026, 10, 19, 0, 30)
    assert IsoWeek.of(dst_week["O1"]) == IsoWeek.parse("2026-W43")  # read as UTC it would be Sunday of W42


def test_an_order_in_the_last_local_hours_of_a_dst_week_belongs_to_it(dst_week):
    assert dst_week["O2"] == dt.datetime(2026, 10, 25, 22, 30)


def test_an_order_after_local_sunday_midnight_of_a_dst_week_is_the_next_week(dst_week):
    assert "O3" not in dst_week  # Monday 00:30 in Paris, though still Sunday 23:30 in UTC


# --------------------------------------------------------------------------- the same on PostgreSQL


@pytest.fixture()
def pg(postgres_server):
    db = f"playbook_tz_{uuid.uuid4().hex[:10]}"
    with postgres_server.connect() as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    con = ibis.connect(postgres_server.url_for(db))
    yield con
    con.disconnect()
    with postgres_server.connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def pg_tables(con, orders: pd.DataFrame) -> dict:
    """The tiny shop in PostgreSQL: text columns, except ``orders`` as given."""
    tables = {}
    for name in ("order_lines", "returns"):
        frame = pd.DataFrame(TINY_SHOP[name], columns=list(TABLES[name].column_names)).astype(str)
        tables[name] = con.create_table(name, frame)
    tables["orders"] = con.create_table("orders", orders)
    return tables


@pytest.mark.postgres
def test_offset_text_timestamps_are_converted_on_postgres_too(pg):
    orders = pd.DataFrame(TINY_SHOP["orders"], columns=list(TABLES["orders"].column_names)).astype(str)
    orders.loc[0, "order_ts"] = "2026-11-02T10:00:00-05:00"
    out = validate(pg_tables(pg, orders), timezone=PARIS)
    o1 = out.tables["orders"].filter(ibis._.order_id == "O1").to_pyarrow().to_pylist()[0]
    assert (o1["order_ts"], o1["promised_delivery_date"]) == (dt.datetime(2026, 11, 2, 16, 0), dt.date(2026, 11, 5))


@pytest.mark.postgres
def test_a_timestamptz_column_is_converted_on_postgres(pg):
    orders = pd.DataFrame(TINY_SHOP["orders"], columns=list(TABLES["orders"].column_names))
    orders["order_ts"] = pd.to_datetime(orders["order_ts"]).dt.tz_localize("UTC")  # 10:00 UTC is 11:00 in Paris
    orders["delivered_ts"] = pd.to_datetime(orders["delivered_ts"].replace("", None))
    out = validate(pg_tables(pg, orders), timezone=PARIS)
    o1 = out.tables["orders"].filter(ibis._.order_id == "O1").to_pyarrow().to_pylist()[0]
    assert o1["order_ts"] == dt.datetime(2026, 11, 2, 11, 0)


def test_tab_separators_are_read(tmp_path):
    folder = shop(tmp_path)
    write_table(folder, "returns", with_returns({"R1": {5: "runs small, one size up"}}), sep="\t")
    returns = rows_of(folder, "returns", "return_id")
    assert (returns["R1"]["reason_text"], returns["R1"]["refund_amount"]) == ("runs small, one size up", 20.0)


def test_an_export_table_with_a_byte_order_mark_is_read(tmp_path):
    folder = shop(tmp_path)
    (folder / "export.csv").write_bytes(b"\xef\xbb\xbfcomplete_through\r\n2026-11-22\r\n")
    ds = open_dataset(folder)
    assert ds.complete_through == dt.date(2026, 11, 22)
    ds.close()


def test_a_separator_ending_every_line_adds_no_column_and_loses_no_row(tmp_path):
    folder = shop(tmp_path)
    path = write_table(folder, "returns", TINY_SHOP["returns"])
    path.write_text("".join(line + ",\n" for line in path.read_text().splitlines()))
    returns = rows_of(folder, "returns", "return_id")
    assert sorted(returns) == ["R1", "R2", "R3", "R4"] and returns["R4"]["resolution"] == "exchange"


def test_a_separator_ending_every_line_gives_no_unknown_column_warning(tmp_path):
    folder = shop(tmp_path)
    path = write_table(folder, "returns", TINY_SHOP["returns"])
    path.write_text("".join(line + ",\n" for line in path.read_text().splitlines()))
    ds = open_dataset(folder)
    assert [w for w in ds.warnings if w.table == "returns" and w.rule == "column not in the contract"] == []
    ds.close()


def test_an_unnamed_column_holding_values_is_named_in_the_unknown_column_warning(tmp_path):
    folder = shop(tmp_path)
    path = write_table(folder, "returns", TINY_SHOP["returns"])
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + ",\n" + "".join(line + ",x\n" for line in lines[1:]))
    ds = open_dataset(folder)
    (w,) = [w for w in ds.warnings if w.rule == "column not in the contract"]
    assert w.table == "returns" and len(w.examples) == 1 and "ignored" in w.message
    ds.close()
