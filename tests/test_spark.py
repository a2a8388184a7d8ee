"""The sample week on Apache Spark: the same notebooks and data layer, the same summary as on DuckDB (issue 12).

The sample shop (data_samples/) is written as Parquet files, one per table as loaded (the text columns
stay text, so validation's guarded casts run on Spark too), and the week is rendered through the weekly
runner from ``pyspark://<folder>?spark.master=local[2]``: a local session on loopback, no UI. Its
summary.json must equal the one rendered from the folder on DuckDB: every number to 1e-9, every status,
verdict and cohort. Without PySpark or a Java runtime (17 or newer) the Spark tests are skipped, or fail
when ``CI`` is set (CI must not silently stop testing Spark; ``.ci/run`` installs the runtime).

Each notebook kernel starts its own Spark session (a JVM): the run's time is printed with ``-s``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import HISTORY
from conftest import SAMPLE_WEEK as WEEK
from pg_server import in_ci
from test_weekly_loop import summary_numbers

import playbook.data.dataset as pdata
from playbook.core.paths import DATA_SAMPLES_DIR
from playbook.data.dataset import SnapshotLocation, SourceError, redact, refuse_secrets, spark_conf
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
    con, raw = pdata.load_tables(DATA_SAMPLES_DIR)
    for name, table in raw.items():
        con.to_parquet(table, shop / f"{name}.parquet")
    con.disconnect()
    journal = base / "journal_spark"
    journal.mkdir()
    (journal / "decisions.csv").write_text(HISTORY, encoding="utf-8")
    lines: list[str] = []
    started = time.monotonic()
    url = spark_url(shop)
    report = run_week(WEEK, url, base / "reports_spark", journal=journal, log=lines.append)
    seconds = time.monotonic() - started
    print(f"\nspark: weekly run {seconds:.1f} s\n  " + "\n  ".join(lines))
    return {"duckdb": {"summary": sample_week["summary"]},
            "spark": {"report": report, "summary": json.loads((report / "summary.json").read_text()),
                      "seconds": seconds, "reports": base / "reports_spark", "url": url}}


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
    location = snapshot_location(url, tmp_path / "reports", pdata.IsoWeek.parse(WEEK), "abc")
    assert location.folder == str(tmp_path / "reports" / f".{WEEK}.snapshot-abc")
    assert SnapshotLocation.parse(location.text()) == location


def test_a_spark_connect_token_in_the_url_is_refused_and_never_echoed():
    url = "sc://spark.example.com:15002/;use_ssl=true;token=s3cret"
    with pytest.raises(SourceError, match="token") as err:
        refuse_secrets(url)
    assert "s3cret" not in str(err.value)
    assert redact(url) == "sc://spark.example.com:15002/;use_ssl=true;token=***"
