"""One Spark session per weekly run: the runner's local session, served to the notebooks over Spark Connect.

A local Spark session is a JVM that takes 20 to 40 s to start; five notebook kernels each starting
their own spent most of a Spark run starting sessions (213 s for the sample week against 47 s on
DuckDB). The runner already holds a session (it opened, validated and stored the week's snapshot
with it), so it serves that session to the kernels instead: Spark Connect's gRPC service is started
on the running SparkContext (``SparkConnectService.start``, what Spark's own ``SparkConnectPlugin``
calls at start-up), bound to the loopback interface on a free port, and every kernel connects to
``sc://localhost:<port>`` in under a second.

Security: the service listens on 127.0.0.1 only and asks for a bearer token drawn for the run
(``secrets.token_urlsafe``). The token reaches the kernels through the environment they inherit
(``PLAYBOOK_DB_PASSWORD``, which ``connect_spark`` reads for any ``sc://`` source), never through a
notebook parameter, so it is in no executed notebook and no report. The host is the word
``localhost`` because PySpark sends a token over a plain channel only to that host (local channel
credentials); ``127.0.0.1`` would make it ask for TLS.

Reference: Spark Connect overview, https://spark.apache.org/docs/4.0.0/spark-connect-overview.html;
configuration keys ``spark.connect.grpc.binding.address``, ``spark.connect.grpc.binding.port``,
``spark.connect.authenticate.token`` (Spark 4.0, ``org.apache.spark.sql.connect.config.Connect``).
"""
from __future__ import annotations

import os
import secrets
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import ibis

from playbook.data.errors import SourceError
from playbook.data.url_secrets import PASSWORD_ENV

_SERVICE = "org.apache.spark.sql.connect.service.SparkConnectService"
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SharedSpark:
    """A Spark session served over Spark Connect for the length of a run."""

    url: str  # what a kernel connects to: sc://localhost:<port> (no token: that travels in the environment)
    port: int
    token: str = field(repr=False)


def free_loopback_port() -> int:
    """A port nothing listens on at this moment on 127.0.0.1 (the service binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        return probe.getsockname()[1]


def _session(con: ibis.BaseBackend):
    session = getattr(con, "_session", None)
    if session is None or not hasattr(session, "_jvm"):
        raise SourceError("only a local Spark session of this process can be shared (got "
                          f"{type(con).__name__}); a Spark Connect source is already shared by its server")
    return session


@contextmanager
def shared_spark(con: ibis.BaseBackend) -> Iterator[SharedSpark]:
    """Serve ``con``'s local Spark session on loopback over Spark Connect while the block runs.

    Inside the block, ``PLAYBOOK_DB_PASSWORD`` holds the run's token, so that processes started from
    this one (the notebook kernels) authenticate; the variable is restored when the block ends and
    the service stopped, whatever happened inside. The session itself stays open: its owner
    disconnects it.
    """
    session = _session(con)
    jvm = session._jvm
    token = secrets.token_urlsafe(32)
    port = free_loopback_port()
    conf = jvm.org.apache.spark.SparkEnv.get().conf()  # the live conf the service reads when it starts
    for key, value in (("spark.connect.grpc.binding.address", _LOOPBACK),
                       ("spark.connect.grpc.binding.port", str(port)),
                       ("spark.connect.authenticate.token", token)):
        conf.set(key, value)
    service = getattr(jvm, _SERVICE)
    try:
        service.start(session._jsc.sc())
    except Exception as exc:  # e.g. the port taken between the probe and the bind
        raise SourceError(f"could not serve the run's Spark session on {_LOOPBACK}:{port} over Spark Connect: "
                          f"{type(exc).__name__}") from None
    before = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = token
    try:
        yield SharedSpark(f"sc://localhost:{port}", port, token)
    finally:
        if before is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = before
        service.stop(jvm.scala.Option.empty(), jvm.scala.Option.empty())
        conf.remove("spark.connect.authenticate.token")
