"""Data access: redaction of secrets, refusing ambiguous or missing sources, the as-of cut on the
tiny shop, and the same metrics from .csv, .csv.gz and .parquet files."""
from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_SHOP, write_shop

from playbook.core.settings import MetricSettings
from playbook.core.weeks import IsoWeek
from playbook.data.contract import TABLES
from playbook.data.dataset import open_dataset
from playbook.data.errors import SourceError
from playbook.data.source import load_tables
from playbook.data.url_secrets import PASSWORD_ENV, redact, url_with_password
from playbook.metrics.dictionary import compute_metrics


@pytest.fixture(autouse=True)
def _snapshot_cache(tmp_path, monkeypatch):
    """session.start caches its snapshot: in the test's folder, never in the user's cache."""
    monkeypatch.setenv("PLAYBOOK_CACHE_DIR", str(tmp_path / "snapshot-cache"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return open_dataset(write_shop(tmp_path_factory.mktemp("tiny") / "shop"))


def ids(snap, table: str, column: str) -> list[str]:
    return sorted(snap.tables[table].select(column).to_pandas()[column])


def one(snap, table: str, key: str, value: str) -> pd.Series:
    df = snap.tables[table].to_pandas()
    row = df[df[key] == value]
    assert len(row) == 1, f"{table} {key}={value}: {len(row)} rows"
    return row.iloc[0]


# --- redact --------------------------------------------------------------------------------------

def test_redact_removes_the_password_and_keeps_the_user_and_host():
    assert redact("postgres://ana:s3cret@db.example.com:5432/shop") == "postgres://ana@db.example.com:5432/shop"


def test_redact_removes_a_password_containing_an_at_sign():
    out = redact("postgres://ana:p@ss@db.example.com/shop")
    assert out == "postgres://ana@db.example.com/shop" and "p@ss" not in out


def test_redact_removes_a_password_without_user():
    assert redact("postgres://:s3cret@host/db") == "postgres://host/db"


@pytest.mark.parametrize("name", ["password", "PASSWORD", "passwd", "pwd", "secret", "token", "key"])
def test_redact_masks_secret_query_values(name):
    out = redact(f"postgres://ana@host/db?sslmode=require&{name}=hunter2&application_name=pb")
    assert "hunter2" not in out
    assert f"{name}=***" in out and "sslmode=require" in out and "application_name=pb" in out


@pytest.mark.parametrize("name", ["api_key", "access_token", "client_secret"])
def test_redact_masks_secret_query_values_with_a_prefix(name):
    assert "hunter2" not in redact(f"postgres://ana@host/db?{name}=hunter2")


def test_redact_leaves_a_url_without_secrets_and_a_folder_unchanged():
    assert redact("duckdb:///data/shop.db") == "duckdb:///data/shop.db"
    assert redact("postgres://ana@host/db?sslmode=require") == "postgres://ana@host/db?sslmode=require"
    assert redact(Path("/data/shop")) == "/data/shop"


def test_the_password_from_the_environment_is_added_url_encoded(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "p@ss w/rd")
    assert url_with_password("postgres://ana@host/db") == "postgres://ana:p%40ss%20w%2Frd@host/db"


def test_a_password_written_in_the_url_is_refused_even_with_the_variable_set(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    with pytest.raises(SourceError, match=PASSWORD_ENV) as e:
        url_with_password("postgres://ana:inline@host/db")
    assert "inline" not in str(e.value)


def test_no_password_is_added_without_a_user_or_without_the_variable(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert url_with_password("duckdb:///x.db") == "duckdb:///x.db"
    monkeypatch.delenv(PASSWORD_ENV)
    assert url_with_password("postgres://ana@host/db") == "postgres://ana@host/db"


def test_a_url_that_cannot_be_opened_is_a_source_error_without_the_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "topsecret")
    with pytest.raises(SourceError) as e:
        load_tables("postgres://ana@127.0.0.1:1/db")
    assert "topsecret" not in str(e.value)
    assert str(e.value).startswith("cannot open postgres://ana@127.0.0.1:1/db")


# --- refusing a password in the URL (papermill keeps the `data` parameter in reports/<WEEK>/executed/)

SECRET = "Hunter2pw"


@pytest.mark.parametrize("url", [
    f"postgres://ana:{SECRET}@127.0.0.1:1/db",
    f"postgresql://ana:{SECRET}%2F%40@127.0.0.1:1/db",  # escaped
    f"postgresql://ana:{SECRET}/x?y#z@127.0.0.1:1/db",  # not escaped: '/', '?', '#' end a standard netloc
    f"postgres://ana:{SECRET}@x@127.0.0.1:1/db",  # an '@' in the password
    f"postgresql://:{SECRET}@127.0.0.1:1/db",  # no user
])
def test_a_url_with_a_password_after_the_user_is_refused_without_echoing_it(url):
    with pytest.raises(SourceError, match=PASSWORD_ENV) as e:
        load_tables(url)
    assert SECRET not in str(e.value) and "carries a secret" in str(e.value)


@pytest.mark.parametrize("name", ["password", "PASSWORD", "passwd", "pwd", "secret", "token", "key", "api_key",
                                  "access_token", "client_secret"])
def test_a_url_with_a_secret_query_parameter_is_refused_without_echoing_it(name):
    with pytest.raises(SourceError, match=PASSWORD_ENV) as e:
        load_tables(f"postgres://ana@127.0.0.1:1/db?sslmode=disable&{name}={SECRET}")
    assert SECRET not in str(e.value) and repr(name) in str(e.value)


def test_a_secret_query_parameter_is_refused_on_a_duckdb_url_too(tmp_path):
    with pytest.raises(SourceError, match=PASSWORD_ENV):
        load_tables(f"duckdb:///{tmp_path}/shop.db?motherduck_token={SECRET}")


def test_a_port_after_an_at_sign_in_the_query_is_not_read_as_a_password():
    with pytest.raises(SourceError) as e:  # refused only because nothing listens on port 1
        load_tables("postgres://ana@127.0.0.1:1/db?application_name=a@b")
    assert str(e.value).startswith("cannot open ") and PASSWORD_ENV not in str(e.value)


def test_an_empty_password_after_the_user_is_not_a_secret(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert url_with_password("postgres://ana:@host/db") == "postgres://ana:from-env@host/db"


def test_session_start_refuses_a_url_with_a_password(tmp_path):
    from playbook.run import session

    with pytest.raises(SourceError, match=PASSWORD_ENV) as e:
        session.start("2026-W46", f"postgres://ana:{SECRET}@127.0.0.1:1/db", run_dir=str(tmp_path / "run"))
    assert SECRET not in str(e.value)
    assert not (tmp_path / "run").exists()


# --- refusing sources ---------------------------------------------------------------------------------

def test_a_missing_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="neither a folder nor a database URL"):
        load_tables(tmp_path / "nowhere")


def test_a_file_instead_of_a_folder_is_a_source_error(tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text("x\n")
    with pytest.raises(SourceError):
        load_tables(f)


def test_a_table_in_both_csv_and_parquet_is_refused_naming_both_files(tmp_path):
    folder = write_shop(tmp_path / "shop")
    pd.read_csv(folder / "orders.csv").to_parquet(folder / "orders.parquet")
    with pytest.raises(SourceError, match="table orders") as e:
        load_tables(folder)
    assert "orders.csv" in str(e.value) and "orders.parquet" in str(e.value)


def test_a_table_in_both_csv_and_csv_gz_is_refused(tmp_path):
    folder = write_shop(tmp_path / "shop")
    with open(folder / "returns.csv", "rb") as src, gzip.open(folder / "returns.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    with pytest.raises(SourceError, match="table returns"):
        load_tables(folder)


# --- empty optional tables ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_contacts(tmp_path_factory):
    """The tiny shop with a contacts.csv holding only its header."""
    return open_dataset(write_shop(tmp_path_factory.mktemp("empty") / "shop", {**TINY_SHOP, "contacts": []}))


def test_an_empty_optional_table_is_left_out_like_a_missing_one(no_contacts):
    assert not no_contacts.has("contacts") and not no_contacts.as_of("2026-W46").has("contacts")


def test_an_empty_optional_table_is_recorded_as_empty_not_as_missing(no_contacts):
    assert no_contacts.empty_tables == ["contacts"] and "contacts" not in no_contacts.missing_tables


def test_an_empty_optional_table_says_no_rows_and_a_missing_one_no_table(no_contacts):
    snap = no_contacts.as_of("2026-W46")
    assert snap.missing("contacts") == "not available (no contacts rows)"
    assert snap.missing("sessions") == "not available (no sessions table)"


def test_an_empty_optional_table_keeps_its_validation_warning(no_contacts):
    assert [w.rule for w in no_contacts.warnings if w.table == "contacts"] == ["optional table empty"]


def test_the_label_of_a_folder_source_is_its_path(dataset):
    label = Path(dataset.source_label)
    assert label.name == "shop" and label.is_dir()


# --- the as-of cut ----------------------------------------------------------------------------------

def test_the_latest_complete_week_is_the_week_before_the_last_order_unless_it_falls_on_sunday(dataset):
    # last order O4 on Friday 2026-11-20 (W47): W47 is not complete
    assert dataset.last_timestamp() == dt.datetime(2026, 11, 20, 9, 0)
    assert dataset.latest_complete_week() == IsoWeek(2026, 46)


def test_the_first_week_is_the_week_of_the_first_order(dataset):
    assert dataset.first_week() == IsoWeek(2026, 45)  # O1 on Monday 2026-11-02


def test_a_week_inside_the_data_is_accepted(dataset):
    assert dataset.check_week("2026-W45") == IsoWeek(2026, 45)
    assert dataset.check_week("2026-W46") == IsoWeek(2026, 46)


def test_a_week_after_the_latest_complete_week_is_refused_naming_the_range(dataset):
    with pytest.raises(ValueError, match="week 2026-W47 is after") as e:
        dataset.check_week("2026-W47")
    assert "2026-W45 .. 2026-W46" in str(e.value)


def test_a_week_before_the_data_is_refused_naming_the_range(dataset):
    with pytest.raises(ValueError, match="week 2026-W44 is before the data") as e:
        dataset.check_week("2026-W44")
    assert "2026-W45 .. 2026-W46" in str(e.value)


def test_session_start_refuses_a_week_outside_the_data(tiny_shop, tmp_path):
    from playbook.run import session

    with pytest.raises(ValueError, match=r"2026-W50.*2026-W45 \.\. 2026-W46"):
        session.start("2026-W50", str(tiny_shop), run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_session_start_accepts_the_latest_complete_week(tiny_shop, tmp_path):
    from playbook.run import session

    run = session.start("2026-W46", str(tiny_shop), run_dir=str(tmp_path / "run"), journal=str(tmp_path / "j"))
    assert run.week == IsoWeek(2026, 46) and run.snapshot.week == IsoWeek(2026, 46)


def test_orders_placed_after_the_cut_are_dropped_with_their_lines(dataset):
    snap = dataset.as_of("2026-W46")  # ends Sunday 2026-11-15
    assert ids(snap, "orders", "order_id") == ["O1", "O2", "O3"]
    assert ids(snap, "order_lines", "line_id") == ["L1", "L2", "L3", "L4"]


def test_returns_requested_after_the_cut_are_dropped(dataset):
    # R1 (11-10) and R4 (11-14) are known at the end of W46; R3 (11-20) and R2 (11-25) are not
    assert ids(dataset.as_of("2026-W46"), "returns", "return_id") == ["R1", "R4"]
    assert ids(dataset.as_of("2026-W47"), "returns", "return_id") == ["R1", "R3", "R4"]


def test_an_action_closed_after_the_cut_is_open_at_the_cut(dataset):
    a2 = one(dataset.as_of("2026-W45"), "actions", "action_id", "A2")  # closed on 2026-11-10, in W46
    assert a2["status"] == "open" and pd.isna(a2["closed_ts"])
    a2 = one(dataset.as_of("2026-W46"), "actions", "action_id", "A2")
    assert a2["status"] == "closed" and a2["closed_ts"] == pd.Timestamp("2026-11-10 10:00:00")


def test_an_action_closed_before_the_cut_stays_closed(dataset):
    a1 = one(dataset.as_of("2026-W45"), "actions", "action_id", "A1")
    assert a1["status"] == "closed" and a1["closed_ts"] == pd.Timestamp("2026-11-06 10:00:00")


def test_actions_planned_for_later_weeks_are_not_in_the_cut(dataset):
    assert ids(dataset.as_of("2026-W45"), "actions", "action_id") == ["A1", "A2", "A3"]


def test_sessions_spend_and_contacts_are_cut_at_the_end_of_the_week(dataset):
    snap = dataset.as_of("2026-W45")
    assert snap.tables["sessions"].count().execute() == 2  # both on 2026-11-03
    assert snap.tables["marketing_spend"].count().execute() == 2
    assert ids(snap, "contacts", "contact_id") == ["K1"]  # K2 on 2026-11-09 is in W46


@pytest.fixture(scope="module")
def late_delivery(tmp_path_factory):
    """The tiny shop with O1 delivered one microsecond-ish before the end of W45 and O2 just after it."""
    tables = {k: list(v) for k, v in TINY_SHOP.items()}
    o1, o2 = tables["orders"][0], tables["orders"][1]
    tables["orders"][0] = o1[:6] + ("2026-11-08 23:59:59",) + o1[7:]
    tables["orders"][1] = o2[:6] + ("2026-11-09 00:00:00",) + o2[7:]
    return open_dataset(write_shop(tmp_path_factory.mktemp("late") / "shop", tables))


def test_a_delivery_after_the_cut_is_empty_at_the_cut(late_delivery):
    o2 = one(late_delivery.as_of("2026-W45"), "orders", "order_id", "O2")
    assert pd.isna(o2["delivered_ts"])
    o2 = one(late_delivery.as_of("2026-W46"), "orders", "order_id", "O2")
    assert o2["delivered_ts"] == pd.Timestamp("2026-11-09 00:00:00")


def test_a_delivery_on_the_last_second_of_the_week_is_in_the_cut(late_delivery):
    o1 = one(late_delivery.as_of("2026-W45"), "orders", "order_id", "O1")
    assert o1["delivered_ts"] == pd.Timestamp("2026-11-08 23:59:59")


# --- file formats -----------------------------------------------------------------------------------

def typed(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A CSV table with the contract's types, as a warehouse export to Parquet would carry them."""
    out = frame.copy()
    for col in TABLES[table].columns:
        if col.kind == "timestamp":
            out[col.name] = pd.to_datetime(out[col.name])
        elif col.kind == "date":
            out[col.name] = pd.to_datetime(out[col.name]).dt.date
        elif col.kind in ("str", "isoweek"):
            out[col.name] = out[col.name].astype("string")
    return out


@pytest.fixture(scope="module")
def metrics_by_format(tmp_path_factory):
    base = tmp_path_factory.mktemp("formats")
    csv = write_shop(base / "csv")
    gz, pq = base / "gz", base / "parquet"
    gz.mkdir()
    pq.mkdir()
    for f in csv.glob("*.csv"):
        with open(f, "rb") as src, gzip.open(gz / f"{f.name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        typed(pd.read_csv(f), f.stem).to_parquet(pq / f"{f.stem}.parquet", index=False)
    out = {}
    for name, folder in (("csv", csv), ("csv.gz", gz), ("parquet", pq)):
        assert sorted(p.name.split(".")[0] for p in folder.iterdir()) == sorted(TINY_SHOP)
        out[name] = compute_metrics(open_dataset(folder).as_of("2026-W47"), MetricSettings()).frame
    return out


def test_csv_gz_files_give_the_same_metrics_as_csv(metrics_by_format):
    pd.testing.assert_frame_equal(metrics_by_format["csv.gz"], metrics_by_format["csv"])


def test_parquet_files_give_the_same_metrics_as_csv(metrics_by_format):
    pd.testing.assert_frame_equal(metrics_by_format["parquet"], metrics_by_format["csv"])


def test_the_format_comparison_is_not_empty(metrics_by_format):
    f = metrics_by_format["csv"]
    rr = f[(f.metric == "return_rate_14d") & (f.slice == "all") & (f.week_start == dt.date(2026, 11, 2))]
    assert list(rr["value"]) == [pytest.approx(0.25)]  # 1 of 4 units of W45 (see test_metrics)


# --- how far the data are complete -------------------------------------------------------------------

def _sunday_noon_shop(folder: Path) -> Path:
    tables = {k: list(v) for k, v in TINY_SHOP.items()}
    tables["orders"].append(("O9", "2026-11-22 12:00:00", "C9", "web", "north", "2026-11-25", "", 3.0))
    tables["order_lines"].append(("L9", "O9", "B", "shoes", 1, 80.0, 0.0, 30.0))
    return write_shop(folder, tables)


def test_a_sunday_noon_export_leaves_that_week_incomplete_and_says_so(tmp_path):
    ds = open_dataset(_sunday_noon_shop(tmp_path / "shop"))
    assert ds.latest_complete_week() == IsoWeek(2026, 46)
    assert ds.completeness_note() == ("The data run to Sunday 2026-11-22 12:00, before Sunday 23:00 of that week: "
                                      "2026-W46 is the latest complete week")


def test_an_explicit_complete_through_in_the_source_decides(tmp_path):
    folder = _sunday_noon_shop(tmp_path / "shop")
    (folder / "export.csv").write_text("complete_through\n2026-11-22 23:59:59\n", encoding="utf-8")
    ds = open_dataset(folder)
    assert ds.complete_through == dt.datetime(2026, 11, 22, 23, 59, 59)
    assert ds.latest_complete_week() == IsoWeek(2026, 47)
    assert ds.completeness_note().startswith("The export says the data are complete through Sunday 2026-11-22 23:59")


@pytest.mark.parametrize("text, message", [
    ("complete_through\n", "exactly one value expected, 0 given"),
    ("complete_through\n2026-11-21\n2026-11-22\n", "exactly one value expected, 2 given"),
    ("complete_through\nlast sunday\n", "is not a date"),
    ("when\n2026-11-22\n", "column missing"),
])
def test_a_broken_export_table_is_refused_with_the_rule(tmp_path, text, message):
    folder = _sunday_noon_shop(tmp_path / "shop")
    (folder / "export.csv").write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match=message) as err:
        open_dataset(folder)
    assert "table export, column complete_through" in str(err.value)
