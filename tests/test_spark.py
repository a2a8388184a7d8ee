"""The sample week on Apache Spark: the same notebooks and data layer, the same summary as on DuckDB (issue 12).

The sample shop (data_samples/) is written as Parquet files, one per table as loaded (the text columns
stay text, so validation's guarded casts run on Spark too), and the week is rendered through the weekly
runner from ``pyspark://<folder>?spark.master=local[2]``: a local session on loopback, no UI. Its
summary.json must equal the one rendered from the folder on DuckDB: every number to 1e-9, every status,
verdict and cohort. Without PySpark or a Java runtime (17 or newer) the Spark tests are skipped, or fail
when ``CI`` is set (CI must not silently stop testing Spark; ``.ci/run`` installs the runtime).

The runner serves its Spark session to the notebook kernels over Spark Connect (one JVM per run,
``playbook.data.engines.spark_share``): the run's time is printed with ``-s``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HISTORY
from conftest import SAMPLE_WEEK as WEEK
from pg_server import in_ci
from test_weekly_loop import summary_numbers

import playbook.data.engines.spark_share as spark_share
from playbook.core.paths import DATA_SAMPLES_DIR
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import open_dataset
from playbook.data.engines.spark import connect_spark, spark_conf
from playbook.data.errors import SourceError
from playbook.data.snapshot import SnapshotLocation
from playbook.data.source import load_tables
from playbook.data.url_secrets import PASSWORD_ENV, redact, refuse_secrets
from playbook.run.weekly import run_week, snapshot_location

MASTER = "local[2]"


def java_version() -> int | None:
    """The major version of the Java runtime PySpark would start (JAVA_HOME first, then PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").is_file() else shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def spark_unavailable() -> str | None:
    """Why Spark cannot run here (None when it can)."""
    if importlib.util.find_spec("pyspark") is None:
        return "PySpark is not installed: pip install -e '.[spark]'"
    version = java_version()
    if version is None:
        return "no Java runtime (PySpark 4 needs Java 17 or newer; Debian: apt-get install openjdk-17-jre-headless)"
    if version < 17:
        return f"Java {version} found; PySpark 4 needs Java 17 or newer"
    return None


@pytest.fixture(scope="module")
def spark_ready():
    why = spark_unavailable()
    if why:
        if in_ci():
            pytest.fail(f"CI is set and Spark cannot run: {why}", pytrace=False)
        pytest.skip(f"no Spark: {why}")


def spark_url(folder: Path) -> str:
    return f"pyspark://{folder}?spark.master={MASTER}"


@pytest.fixture(scope="module")
def weeks(spark_ready, sample_week, tmp_path_factory):
    """The sample week rendered from the folder on DuckDB (the session's render, tests/conftest.py) and
    from its Parquet copy on Spark, from the same journal."""
    base = tmp_path_factory.mktemp("spark")
    shop = base / "shop"
    shop.mkdir()
    con, raw = load_tables(DATA_SAMPLES_DIR)
    for name, table in raw.items():
        con.to_parquet(table, shop / f"{name}.parquet")
    con.disconnect()
    journal = base / "journal_spark"
    journal.mkdir()
    (journal / "decisions.csv").write_text(HISTORY, encoding="utf-8")
    lines: list[str] = []
    started = time.monotonic()
    url = spark_url(shop)
    token = "run-token-" + "7" * 30  # drawn by the run; fixed here so the report can be searched for it
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spark_share.secrets, "token_urlsafe", lambda n: token)
        report = run_week(WEEK, url, base / "reports_spark", journal=journal, log=lines.append)
    seconds = time.monotonic() - started
    print(f"\nspark: weekly run {seconds:.1f} s\n  " + "\n  ".join(lines))
    return {"duckdb": {"summary": sample_week["summary"]},
            "spark": {"report": report, "summary": json.loads((report / "summary.json").read_text()),
                      "seconds": seconds, "reports": base / "reports_spark", "url": url, "token": token,
                      "log": lines}}


@pytest.mark.spark
@pytest.mark.notebooks
def test_the_sample_week_on_spark_has_every_number_status_verdict_and_cohort_of_duckdb(weeks):
    spark, duck = summary_numbers(weeks["spark"]["summary"]), summary_numbers(weeks["duckdb"]["summary"])
    assert set(spark) == set(duck)
    differ = {k: (duck[k], v) for k, v in spark.items()
              if v != (pytest.approx(duck[k], rel=1e-9, abs=1e-12) if isinstance(v, float) else duck[k])}
    assert not differ, differ


@pytest.mark.spark
@pytest.mark.notebooks
def test_the_spark_report_names_its_source_and_leaves_no_snapshot_beside_it(weeks):
    spark = weeks["spark"]
    assert spark["summary"]["data_source"] == redact(spark["url"])
    assert not list(spark["reports"].glob(".*snapshot*"))


@pytest.mark.spark
@pytest.mark.notebooks
def test_every_notebook_of_a_spark_run_reads_through_the_runners_session(weeks):
    executed = sorted((weeks["spark"]["report"] / "executed").glob("*.ipynb"))
    assert len(executed) == 5
    for path in executed:
        snapshot = json.loads(path.read_text())["metadata"]["papermill"]["parameters"]["snapshot"]
        assert re.fullmatch(r"parquet:.+\|sc://localhost:\d+", snapshot), (path.name, snapshot)


@pytest.mark.spark
@pytest.mark.notebooks
def test_the_token_of_the_served_session_is_in_no_file_of_the_report(weeks):
    spark = weeks["spark"]
    leaked = [p for p in spark["reports"].rglob("*") if p.is_file() and spark["token"].encode() in p.read_bytes()]
    assert not leaked
    assert PASSWORD_ENV not in os.environ or os.environ[PASSWORD_ENV] != spark["token"]  # restored after the run


# --- a served session, on its own --------------------------------------------------------------------

#: a kernel's route: the playbook's own connection (the token from the environment), then one query
_CLIENT = """
import sys
from playbook.data.engines.spark import connect_spark
con = connect_spark(sys.argv[1], source_tables=False)
print(con.sql("SELECT 40 + 2 AS answer").to_pandas()["answer"].iloc[0])
"""
#: an intruder's attempts, each with a fresh client: a wrong token, then none
_INTRUDER = """
import sys
from pyspark.sql import SparkSession
for remote in (sys.argv[1] + "/;token=not-the-token", sys.argv[1]):
    try:
        SparkSession.builder.remote(remote).create().sql("SELECT 1").collect()
        print("ANSWERED", remote)
    except Exception as exc:
        print("REFUSED", "UNAUTHENTICATED" in str(exc))
"""


def _client(code: str, url: str, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (PASSWORD_ENV, "SPARK_CONNECT_AUTHENTICATE_TOKEN")}
    if token is not None:
        env[PASSWORD_ENV] = token
    return subprocess.run([sys.executable, "-c", code, url], env=env, capture_output=True, text=True, timeout=300)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket of ``port`` listens on, from Linux's /proc/net/tcp and tcp6.

    Addresses are hex in the kernel's byte order (32-bit words little-endian); a JVM's IPv4 socket
    may show in tcp6 as ::ffff:a.b.c.d, read as a.b.c.d.
    """
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) != port or fields[3] != "0A":  # 0A: LISTEN
                continue
            raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, len(address), 8))
            if len(raw) == 4:
                found.add(socket.inet_ntop(socket.AF_INET, raw))
            else:
                text = socket.inet_ntop(socket.AF_INET6, raw)
                found.add(text.removeprefix("::ffff:") if text.startswith("::ffff:") and "." in text else text)
    return found


def _port_refuses(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def served(spark_ready, tmp_path_factory):
    """A local session served while three clients connect; what the environment and the port were after."""
    con = connect_spark(spark_url(tmp_path_factory.mktemp("served")), source_tables=False)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(PASSWORD_ENV, "the analyst's own")
            with spark_share.shared_spark(con) as shared:
                seen = {"shared": shared, "answer": _client(_CLIENT, shared.url, shared.token),
                        "intruder": _client(_INTRUDER, shared.url, None),
                        "listening": _listening_addresses(shared.port) if Path("/proc/net/tcp").is_file() else None,
                        "env": os.environ.get(PASSWORD_ENV)}
            seen["env_after"] = os.environ.get(PASSWORD_ENV)
            seen["refused_after"] = _port_refuses(shared.port)
            seen["session_after"] = con.sql("SELECT 1 AS one").to_pandas()["one"].iloc[0]
    finally:
        con.disconnect()
    return seen


@pytest.mark.spark
def test_a_served_session_answers_another_process_that_holds_the_token(served):
    assert served["answer"].returncode == 0, served["answer"].stderr[-2000:]
    assert served["answer"].stdout.strip().splitlines()[-1] == "42"


@pytest.mark.spark
def test_a_served_session_refuses_a_wrong_or_missing_token(served):
    assert served["intruder"].stdout.split() == ["REFUSED", "True", "REFUSED", "True"], served["intruder"].stderr[-2000:]


@pytest.mark.spark
def test_a_served_session_listens_on_loopback_only(served):
    if served["listening"] is None:
        pytest.skip("no /proc/net/tcp (not Linux): the listening address cannot be read")
    assert served["listening"] == {"127.0.0.1"}


@pytest.mark.spark
def test_the_kernels_get_the_token_through_the_environment_not_the_url(served):
    shared = served["shared"]
    assert served["env"] == shared.token
    assert shared.token not in shared.url and shared.token not in repr(shared)


@pytest.mark.spark
def test_when_the_run_ends_the_service_stops_the_environment_is_restored_and_the_session_stays(served):
    assert served["refused_after"]
    assert served["env_after"] == "the analyst's own"
    assert served["session_after"] == 1  # the owner disconnects it, not the service


# --- the source and snapshot forms, without a session ---------------------------------------------

def test_a_local_session_listens_on_loopback_without_ui_and_counts_in_utc():
    folder, conf = spark_conf("pyspark:///data/shop?spark.master=local[2]&spark.sql.session.timeZone=Europe/Paris")
    assert folder == Path("/data/shop")
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.session.timeZone"] == "UTC"  # naive timestamps are the shop's clock, as on DuckDB
    assert conf["spark.sql.warehouse.dir"] == "/data/shop"


def test_a_local_session_shuffles_into_one_partition_per_core_unless_told():
    assert spark_conf("pyspark:///x?spark.master=local[3]")[1]["spark.sql.shuffle.partitions"] == "3"
    told = spark_conf("pyspark:///x?spark.master=local[3]&spark.sql.shuffle.partitions=50")[1]
    assert told["spark.sql.shuffle.partitions"] == "50"


def test_a_cluster_master_gets_no_loopback_default():
    _, conf = spark_conf("pyspark:///lake?spark.master=spark://10.0.0.5:7077")
    assert "spark.driver.bindAddress" not in conf and "spark.ui.enabled" not in conf
    assert "spark.sql.shuffle.partitions" not in conf


def test_a_local_spark_run_stores_its_snapshot_as_parquet_beside_the_reports(tmp_path):
    url = spark_url(tmp_path / "shop")
    location = snapshot_location(url, tmp_path / "reports", IsoWeek.parse(WEEK), "abc")
    assert location.folder == str(tmp_path / "reports" / f".{WEEK}.snapshot-abc")
    assert SnapshotLocation.parse(location.text()) == location


def test_a_spark_connect_token_in_the_url_is_refused_and_never_echoed():
    url = "sc://spark.example.com:15002/;use_ssl=true;token=s3cret"
    with pytest.raises(SourceError, match="token") as err:
        refuse_secrets(url)
    assert "s3cret" not in str(err.value)
    assert redact(url) == "sc://spark.example.com:15002/;use_ssl=true;token=***"


# --- what people write: pandas' Parquet (nanoseconds, large strings, categories) reads as on DuckDB --

#: the key of each sample table, to compare the engines' rows in one order
KEYS = {"orders": ["order_id"], "order_lines": ["line_id"], "returns": ["return_id"], "contacts": ["contact_id"],
        "actions": ["action_id"], "experiments": ["experiment_id"], "assignments": ["experiment_id", "customer_id"],
        "sessions": ["date", "channel", "category"], "marketing_spend": ["date", "channel"]}


def pandas_parquet_copy(folder: Path) -> Path:
    """data_samples/ read with pandas and written with ``DataFrame.to_parquet``, as an analyst would: timestamps
    and dates as ``datetime64[ns]`` (pandas 2's default, nanoseconds in the file), text as large strings, the
    slice columns as categories (dictionary columns)."""
    import pandas as pd
    import pyarrow as pa

    from playbook.data.contract import TABLES

    folder.mkdir()
    for path in sorted(DATA_SAMPLES_DIR.glob("*.csv.gz")):
        name = path.name.removesuffix(".csv.gz")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        for column in TABLES[name].all_columns:
            if column.name not in frame:
                continue
            if column.kind in ("date", "timestamp"):
                frame[column.name] = pd.to_datetime(frame[column.name]).astype("datetime64[ns]")
            elif column.kind in ("int", "float"):
                frame[column.name] = pd.to_numeric(frame[column.name])
            elif column.name in ("channel", "category", "region", "reason_code", "variant"):
                frame[column.name] = frame[column.name].astype("category")
            else:
                frame[column.name] = frame[column.name].astype(pd.ArrowDtype(pa.large_string()))
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def pandas_shop(spark_ready, tmp_path_factory):
    """The pandas-written copy opened and validated on Spark and on DuckDB, each table as both engines read it."""
    folder = pandas_parquet_copy(tmp_path_factory.mktemp("pandas") / "shop")
    import pyarrow.parquet as pq

    assert "timestamp[ns]" in str(pq.read_schema(folder / "orders.parquet").field("order_ts").type)
    duck = open_dataset(folder)
    spark = open_dataset(spark_url(folder))
    try:
        raw_order_ts = spark.con.table("orders").schema()["order_ts"]
        tables = {name: (spark.tables[name].schema(), spark.tables[name].to_pandas(), duck.tables[name].schema(),
                         duck.tables[name].to_pandas()) for name in duck.tables}
    finally:
        spark.close()
        duck.close()
    return {"folder": folder, "tables": tables, "raw_order_ts": raw_order_ts}


@pytest.mark.spark
def test_pandas_parquet_reads_on_spark_with_the_types_and_values_duckdb_reads(pandas_shop):
    """The data layer's read (validated tables), not the whole render: the parity render of the sample week
    (tests/test_spark.py above) costs about four minutes on two cores; this file's render was checked by hand."""
    import pandas as pd

    assert pandas_shop["raw_order_ts"].is_timestamp()  # the nanoseconds are turned back into timestamps
    assert set(pandas_shop["tables"]) == set(KEYS)
    for name, (spark_schema, spark_rows, duck_schema, duck_rows) in pandas_shop["tables"].items():
        assert spark_schema == duck_schema, name
        rows = [frame.sort_values(KEYS[name]).reset_index(drop=True) for frame in (spark_rows, duck_rows)]
        for frame in rows:  # to_pandas gives nanoseconds from Spark and microseconds from DuckDB: the same instants
            for column in frame.columns[frame.dtypes.map(pd.api.types.is_datetime64_any_dtype)]:
                frame[column] = frame[column].astype("datetime64[us]")
        pd.testing.assert_frame_equal(rows[0], rows[1], check_dtype=False, obj=name)


@pytest.mark.spark
def test_a_column_spark_cannot_read_stops_with_the_table_the_column_the_type_and_what_to_do(pandas_shop, tmp_path):
    import datetime as dt

    import pandas as pd

    folder = tmp_path / "shop"
    shutil.copytree(pandas_shop["folder"], folder)
    orders = pd.read_parquet(folder / "orders.parquet")
    orders["pickup_time"] = dt.time(10, 30)
    orders.to_parquet(folder / "orders.parquet", index=False)
    with pytest.raises(SourceError) as err:
        open_dataset(spark_url(folder))
    message = str(err.value)
    assert message.startswith(f"table orders: Spark cannot read {folder / 'orders.parquet'}: column pickup_time is "
                              "INT64 (TIME(MICROS,false)), a time of day without its date: write it as a timestamp")
    assert "DuckDB reads it" in message and "Exception" not in message
    (folder / "orders.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    with pytest.raises(SourceError, match=r"^table orders: .*orders.parquet is not a readable Parquet file: \S"):
        open_dataset(spark_url(folder))
