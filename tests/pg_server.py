"""A PostgreSQL server for the tests marked ``postgres``: the one given, or a throwaway one.

Order of preference:

1. ``PLAYBOOK_TEST_POSTGRES_URL`` (a superuser URL, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``)
   when it is set and the server answers;
2. else a throwaway cluster: ``initdb`` + ``pg_ctl`` (from PATH or ``/usr/lib/postgresql/*/bin``) in a
   temporary folder, listening on 127.0.0.1 on a free port, trust authentication except for the role
   ``PASSWORD_ROLE`` (scram-sha-256), unix socket in the same folder; stopped and removed at the end.
   As root the commands run as the ``postgres`` user (PostgreSQL refuses to run as root);
3. else the tests are skipped, or fail when ``CI`` is set (CI must not silently stop testing PostgreSQL).

The fixture ``postgres_server`` gives a :class:`Server`; while it is alive the environment variable
``PLAYBOOK_TEST_POSTGRES_URL`` points at it, so other ``postgres`` tests (``tests/test_validation.py``)
use the same server. Registered as a plugin (``pytest_plugins = ["pg_server"]`` in tests/conftest.py),
the autouse fixture below gives every test marked ``postgres`` the server.

By hand: ``python tests/pg_server.py`` starts a server, prints its URL and waits for Ctrl-C.
"""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_URL = "PLAYBOOK_TEST_POSTGRES_URL"
#: The only role that must give a password (scram-sha-256) on a throwaway server.
PASSWORD_ROLE = "playbook_pw"
OS_USER = "postgres"  # who runs the server when the tests run as root


class Unavailable(RuntimeError):
    """No PostgreSQL server can be had (the reason is the message)."""


@dataclass
class Server:
    url: str  # a superuser URL
    managed: bool  # started here: its pg_hba.conf is known (PASSWORD_ROLE needs a password)
    workdir: Path | None = None
    bindir: Path | None = None
    _run_as: dict = field(default_factory=dict, repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 5432

    @property
    def user(self) -> str:
        return urlsplit(self.url).username or "postgres"

    def url_for(self, database: str, user: str | None = None, schema: str | None = None,
                scheme: str = "postgresql") -> str:
        """A URL to ``database`` (and ``schema``, the ibis form ``/db/schema``) as ``user``, no password."""
        path = f"/{database}" + (f"/{schema}" if schema else "")
        return urlunsplit((scheme, f"{user or self.user}@{self.host}:{self.port}", path, "", ""))

    def connect(self, database: str | None = None):
        """A psycopg connection (autocommit) as the superuser."""
        import psycopg

        url = self.url if database is None else self.url_for(database)
        return psycopg.connect(url, autocommit=True, connect_timeout=5)

    def stop(self) -> None:
        if not self.managed or self.workdir is None:
            return
        data = self.workdir / "data"
        if (data / "postmaster.pid").exists():
            _run([str(self.bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30"],
                 self._run_as, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None


def answers(url: str) -> str | None:
    """None when a server answers at ``url``, else the reason (without the URL's password)."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as con:
            con.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
        return type(exc).__name__


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then the distributions' usual places."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin") + ["/usr/local/pgsql/bin"]

    def version(path: str) -> tuple:
        digits = "".join(c if c.isdigit() else " " for c in path).split()
        return tuple(int(d) for d in digits)

    for d in sorted(candidates, key=version, reverse=True):
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], run_as: dict, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **run_as)
    if check and out.returncode != 0:
        raise Unavailable(f"{' '.join(cmd[:2])} failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-800:]}")
    return out


def start_throwaway() -> Server:
    bindir = find_bindir()
    if bindir is None:
        raise Unavailable("PostgreSQL's initdb/pg_ctl not found (PATH, /usr/lib/postgresql/*/bin); "
                          "install it (Debian: apt-get install postgresql) or set " + ENV_URL)
    run_as: dict = {}
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam(OS_USER)
        except KeyError:
            raise Unavailable(f"running as root and there is no '{OS_USER}' user to run PostgreSQL") from None
        owner = (pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    # /tmp when root: the postgres user must reach the folder (a TMPDIR under /root it cannot)
    workdir = Path(tempfile.mkdtemp(prefix="playbook-pg-", dir="/tmp" if owner else None))
    if owner:
        os.chown(workdir, *owner)
    run_as["cwd"] = str(workdir)  # the postgres user may not be able to enter the current folder
    run_as["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    server = Server("", True, workdir, bindir, run_as)
    atexit.register(server.stop)  # a safety net; the fixture stops it first
    data = workdir / "data"
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
              "--locale=C", "--no-sync"], run_as)
        (data / "pg_hba.conf").write_text(
            "# written by tests/pg_server.py: trust, except one role that must give a password\n"
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        last = ""
        for _ in range(3):  # the free port may be taken between the check and the start
            port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{workdir}'"
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                    " -c password_encryption=scram-sha-256")
            out = _run([str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-t", "60",
                        "-l", str(workdir / "server.log"), "-o", opts], run_as, check=False)
            if out.returncode == 0:
                server.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
                return server
            log = workdir / "server.log"
            last = (log.read_text(errors="replace") if log.exists() else out.stderr)[-800:]
        raise Unavailable(f"pg_ctl start failed three times; server log: {last.strip()}")
    except BaseException:
        server.stop()
        raise


def get_server() -> Server:
    """The server given by ENV_URL if it answers, else a throwaway one (raises Unavailable)."""
    url = os.environ.get(ENV_URL)
    why = ""
    if url:
        problem = answers(url)
        if problem is None:
            return Server(url, managed=False)
        why = f"{ENV_URL} does not answer ({problem}); "
    try:
        return start_throwaway()
    except Unavailable as exc:
        raise Unavailable(why + str(exc)) from None


# --------------------------------------------------------------------------- pytest

_ACTIVE: Server | None = None
_USERS = 0
_SAVED_URL: str | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def acquire() -> Server:
    """The session's server (started once, shared by every fixture instance)."""
    global _ACTIVE, _USERS, _SAVED_URL
    if _ACTIVE is None:
        _ACTIVE = get_server()
        _SAVED_URL = os.environ.get(ENV_URL)
        os.environ[ENV_URL] = _ACTIVE.url
    _USERS += 1
    return _ACTIVE


def release() -> None:
    global _ACTIVE, _USERS
    _USERS -= 1
    if _USERS <= 0 and _ACTIVE is not None:
        _ACTIVE.stop()
        _ACTIVE = None
        if _SAVED_URL is None:
            os.environ.pop(ENV_URL, None)
        else:
            os.environ[ENV_URL] = _SAVED_URL


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session; skipped when none can be had, a failure under CI."""
    try:
        server = acquire()
    except Unavailable as exc:
        if in_ci():
            pytest.fail(f"CI is set and no PostgreSQL server is available: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        release()


@pytest.fixture(autouse=True)
def _postgres_for_marked_tests(request):
    """Active only when this module is registered as a plugin: tests marked postgres get the server."""
    if request.node.get_closest_marker("postgres") is not None:
        request.getfixturevalue("postgres_server")


if __name__ == "__main__":
    import time

    s = get_server()
    print(s.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()
