"""The playbook on PostgreSQL: same validation, same metrics, same errors as on DuckDB.

The tiny shop (tests/conftest.py) is loaded into a fresh PostgreSQL database, once with typed
columns (as a warehouse holds them) and once with text columns (a CSV copied into a staging
schema), then opened through the public path, ``open_dataset("postgresql://...")``, and compared
with the DuckDB folder path. The server comes from tests/pg_server.py (PLAYBOOK_TEST_POSTGRES_URL
or a throwaway cluster); without one the tests are skipped, or fail when CI is set.
"""
from __future__ import annotations

import contextlib
import traceback
import uuid
from urllib.parse import quote

import ibis
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SHOP, write_shop
from pg_server import ENV_URL, PASSWORD_ROLE, postgres_server  # noqa: F401 - the session fixture

from playbook.core.settings import MetricSettings
from playbook.data.contract import TABLES
from playbook.data.dataset import open_dataset
from playbook.data.errors import SourceError
from playbook.data.indexes import create_recommended_indexes
from playbook.data.source import load_tables
from playbook.data.url_secrets import PASSWORD_ENV, redact
from playbook.data.validation import ContractError
from playbook.metrics.dictionary import compute_metrics

pytestmark = pytest.mark.postgres

WEEK = "2026-W47"
PASSWORD = "s3cr:t/@?#+ %&é"  # every character a URL must escape
BROKEN = {  # the tiny shop with three broken rules
    "orders": [("O2", "yesterday") + r[2:] if r[0] == "O2" else r for r in TINY_SHOP["orders"]],
    "order_lines": [r[:1] + ("O9",) + r[2:] if r[0] == "L5" else r for r in TINY_SHOP["order_lines"]],
    "returns": [r[:-1] + ("refnd",) if r[0] == "R2" else r for r in TINY_SHOP["returns"]],
}
BROKEN = {**TINY_SHOP, **BROKEN}
_OPENED: list[ibis.BaseBackend] = []  # PostgreSQL connections to close before the database is dropped


def _open(url: str):
    ds = open_dataset(url)
    _OPENED.append(ds.con)
    return ds


def _close_all() -> None:
    """Drop the cached (temporary) tables while the server still answers, then disconnect: left to the
    garbage collector they would be dropped after the database is gone, with tracebacks at exit."""
    while _OPENED:
        con = _OPENED.pop()
        for name in list(getattr(con, "_cache_name_to_entry", {})):
            with contextlib.suppress(Exception):
                con._finalize_cached_table(name)
        with contextlib.suppress(Exception):
            con.disconnect()


def _text_frame(rows: list[tuple], name: str) -> pd.DataFrame:
    """A table as a CSV copied into text columns: every value a string, empty fields NULL."""
    df = pd.DataFrame(rows, columns=list(TABLES[name].column_names)).astype(str)
    return df.replace("", None)


def _load(pg: ibis.BaseBackend, schema: str, source) -> None:
    """Create ``schema`` and one table per contract table: typed (ibis tables) or text (row lists)."""
    pg.raw_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"').close()
    for name, obj in source.items():
        if isinstance(obj, ibis.Table):
            pg.create_table(name, obj.to_pyarrow(), database=schema)
        else:
            schema_ = ibis.schema({c: "string" for c in TABLES[name].column_names})
            pg.create_table(name, _text_frame(obj, name), schema=schema_, database=schema)
    create_recommended_indexes(pg, schema)  # as docs/data_contract.md asks a user to


@pytest.fixture(scope="module")
def shop(postgres_server, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The DuckDB folder and its PostgreSQL copies: public (typed), text_cols (text), broken (text)."""
    server = postgres_server
    db = f"playbook_test_{uuid.uuid4().hex[:10]}"
    with server.connect() as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    try:
        folder = write_shop(tmp_path_factory.mktemp("pg") / "shop")
        broken_folder = write_shop(tmp_path_factory.mktemp("pg") / "broken", BROKEN)
        _, raw = load_tables(folder)  # DuckDB's auto-typing of the CSV files
        pg = ibis.connect(server.url_for(db))
        _load(pg, "public", raw)
        _load(pg, "text_cols", TINY_SHOP)
        _load(pg, "broken", BROKEN)
        pg.disconnect()
        yield {"server": server, "db": db, "folder": folder, "broken_folder": broken_folder}
    finally:
        _close_all()
        with server.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{PASSWORD_ROLE}"')


@pytest.fixture(scope="module")
def duck(shop):
    ds = open_dataset(shop["folder"])
    return ds, compute_metrics(ds.as_of(WEEK), MetricSettings())


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys).reset_index(drop=True)


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    assert list(got.columns) == list(want.columns)
    got, want = _sorted(got, keys), _sorted(want, keys)
    assert len(got) == len(want), (len(got), len(want))
    for col in want.columns:
        g, w = got[col], want[col]
        if pd.api.types.is_numeric_dtype(w) and not pd.api.types.is_bool_dtype(w):
            assert pd.api.types.is_numeric_dtype(g), (col, g.dtype, w.dtype)
            gv, wv = g.to_numpy(dtype=float), w.to_numpy(dtype=float)
            bad = ~(np.isclose(gv, wv, rtol=0, atol=1e-9) | (np.isnan(gv) & np.isnan(wv)))
            assert not bad.any(), (col, got[bad], want[bad])
        else:
            assert g.dtype.kind == w.dtype.kind, (col, g.dtype, w.dtype)
            assert g.tolist() == w.tolist(), col


@pytest.mark.parametrize("schema", [None, "text_cols"], ids=["typed-columns", "text-columns"])
def test_same_warnings_and_metrics_as_duckdb(shop, duck, schema):
    duck_ds, duck_res = duck
    url = shop["server"].url_for(shop["db"], schema=schema)
    ds = _open(url)
    assert ds.con.name == "postgres"
    assert [w.to_dict() for w in ds.warnings] == [w.to_dict() for w in duck_ds.warnings]
    assert len(duck_ds.warnings) >= 4  # the tiny shop has several: the comparison means something
    assert ds.missing_tables == duck_ds.missing_tables
    assert ds.last_timestamp() == duck_ds.last_timestamp()
    res = compute_metrics(ds.as_of(WEEK), MetricSettings())
    assert res.unavailable == duck_res.unavailable
    assert_same_frame(res.frame, duck_res.frame, ["metric", "slice", "slice_value", "week_start"])
    assert_same_frame(res.reason_mix, duck_res.reason_mix, ["slice", "slice_value", "week_start", "reason_code"])
    assert len(res.frame) > 50


def test_postgres_scheme_is_accepted_too(shop):
    url = shop["server"].url_for(shop["db"], scheme="postgres")
    assert url.startswith("postgres://")
    assert _open(url).con.name == "postgres"


def test_broken_table_gives_the_same_contract_error(shop):
    with pytest.raises(ContractError) as on_duckdb:
        open_dataset(shop["broken_folder"])
    with pytest.raises(ContractError) as on_pg:
        open_dataset(shop["server"].url_for(shop["db"], schema="broken"))
    assert str(on_pg.value) == str(on_duckdb.value)
    assert "order_lines.order_id: rule 'references orders.order_id' broken by 1 row (line_id: L5" in str(on_pg.value)
    assert len(on_pg.value.violations) == 3
    assert [w.to_dict() for w in on_pg.value.warnings] == [w.to_dict() for w in on_duckdb.value.warnings]


# --------------------------------------------------------------------------- the password


@pytest.fixture(scope="module")
def password_role(shop):
    """A role that must log in with PASSWORD (scram-sha-256 on a throwaway server)."""
    server, db = shop["server"], shop["db"]
    with server.connect() as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{PASSWORD_ROLE}"')
        admin.execute("SET password_encryption = 'scram-sha-256'")
        admin.execute(f"CREATE ROLE \"{PASSWORD_ROLE}\" LOGIN PASSWORD '{PASSWORD.replace(chr(39), chr(39) * 2)}'")
    with server.connect(db) as con:
        con.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{PASSWORD_ROLE}"')
    url = server.url_for(db, user=PASSWORD_ROLE)
    try:  # does the server ask this role for a password? (a given server may trust everyone)
        ibis.connect(url.replace("@", ":wrong@", 1)).disconnect()
        enforced = False
    except Exception:  # noqa: BLE001
        enforced = True
    if not enforced:
        assert not server.managed, "the throwaway server must ask playbook_pw for a password"
        pytest.skip(f"the server at {ENV_URL} does not ask {PASSWORD_ROLE} for a password")
    return url


def _no_password(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor the traceback as printed (in a notebook, a log) shows a secret."""
    printed = "".join(traceback.format_exception(exc))
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), secret.split("/")[0], secret.split("?")[0]}:
            assert form not in str(exc) and form not in printed, form


def test_password_from_the_environment_is_accepted(password_role, duck, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    ds = _open(password_role)
    assert [w.to_dict() for w in ds.warnings] == [w.to_dict() for w in duck[0].warnings]
    assert PASSWORD_ROLE in ds.source_label and PASSWORD not in ds.source_label
    assert ds.source_label == password_role


def test_without_or_with_a_wrong_password_the_error_does_not_echo_it(password_role, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(SourceError) as info:
        open_dataset(password_role)
    assert str(info.value) == f"cannot open {password_role}: OperationalError"
    wrong = "Wr0ng/pa?ss#word"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    with pytest.raises(SourceError) as info:
        open_dataset(password_role)
    _no_password(info.value, wrong)


def test_a_password_written_in_the_url_is_refused_and_never_echoed(password_role, monkeypatch):
    """papermill keeps the `data` parameter in reports/<WEEK>/executed/: a URL must not carry the password,
    even a right one; the refusal names PLAYBOOK_DB_PASSWORD and never shows the password."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    user, rest = password_role.split("//", 1)[1].split("@", 1)
    for bad in (
        f"postgresql://{user}:{quote(PASSWORD, safe='')}@{rest}",  # escaped, and right
        f"postgresql://{user}@{rest}?password={quote(PASSWORD, safe='')}&sslmode=disable",  # in the query
        f"postgresql://{user}:{PASSWORD}@{rest}",  # not escaped: '/', '?', '#', '@' break the URL
        f"postgresql://{user}:{PASSWORD}@127.0.0.1:notaport/db",
        f"postgresql://{user}:{quote(PASSWORD, safe='')}@127.0.0.1:1/db",  # nothing listens
        f"postgresql://{user}@{rest}?password=Wr0ng%2Fs3cr",
    ):
        assert PASSWORD not in redact(bad) and "s3cr" not in redact(bad), redact(bad)
        with pytest.raises(SourceError, match=PASSWORD_ENV) as info:
            open_dataset(bad)
        assert "carries a secret" in str(info.value)
        _no_password(info.value, PASSWORD)
        assert "s3cr" not in str(info.value)


@pytest.mark.parametrize("url,label", [
    ("postgresql://u:pa/ss@h:5432/db", "postgresql://u@h:5432/db"),  # unescaped '/', '?', '#', '@'
    ("postgresql://u:pa?ss@h/db", "postgresql://u@h/db"),
    ("postgresql://u:pa#ss@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
    ("postgres://u:p@ss@h/db", "postgres://u@h/db"),
    ("postgresql://u@h/db?password=x%26y&token=t#f", "postgresql://u@h/db?password=***&token=***#f"),
    ("postgresql://:pw@h/db", "postgresql://h/db"),
    ("duckdb:///data/shop@2026.duckdb", "duckdb:///data/shop@2026.duckdb"),  # no netloc: kept as is
    ("/data/shop", "/data/shop"),
])
def test_redact_without_a_server(url, label):
    """No server needed: the label of a URL never shows a password, escaped or not."""
    assert redact(url) == label
