"""Secrets in a source's URL: refused, redacted, and the password read from the environment.

A database password never travels as a parameter: papermill keeps the ``data`` parameter in the
executed notebooks kept under ``reports/<WEEK>/executed/``. A URL that carries one (``user:password@``
or a secret-looking query parameter) is refused; the password is read from the environment
variable ``PLAYBOOK_DB_PASSWORD``.
"""
from __future__ import annotations

import os
import re
from urllib.parse import quote, urlsplit, urlunsplit

from playbook.data.errors import SourceError

PASSWORD_ENV = "PLAYBOOK_DB_PASSWORD"
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(source: str) -> bool:
    return bool(_URL_RE.match(str(source)))


def redact(source: str | os.PathLike) -> str:
    """The source as it may appear in a report: a URL loses its password and secret-looking query values."""
    text = str(source)
    if not is_url(text):
        return text
    scheme, rest = text.split("://", 1)
    if "@" in rest and not rest.startswith("/"):
        # The user info ends at the last '@': a password pasted without escaping may hold '/', '?',
        # '#' or '@', which end the netloc of a standard parse and would leave the password in view.
        userinfo, host = rest.rsplit("@", 1)
        user = re.split(r"[:/?#]", userinfo, maxsplit=1)[0]
        text = f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    # Rebuilt by hand: urlunsplit would turn 'duckdb:///file.db' into 'duckdb:/file.db'.
    head, mark, tail = text.partition("?")
    query, hash_, fragment = tail.partition("#")
    # any parameter whose name contains a secret word: password, api_key, access_token, client_secret...
    query = re.sub(r"(?i)([^&=]*(?:password|passwd|pwd|secret|token|key)[^&=]*)=[^&]*", lambda m: f"{m.group(1)}=***", query)
    # Spark Connect's parameters follow '/;', separated by ';': sc://host:15002/;token=...
    head = re.sub(r"(?i)(;[^;=/]*(?:password|passwd|pwd|secret|token|key)[^;=/]*)=[^;]*", lambda m: f"{m.group(1)}=***", head)
    return f"{head}{mark}{query}{hash_}{fragment}"


_SECRET_NAME_RE = re.compile(r"(?i)password|passwd|pwd|secret|token|key")


def _secrets_in_url(url: str) -> list[str]:
    """Where ``url`` carries a secret: 'a password after the user name', 'query parameter NAME'.

    Read like ``redact`` reads it: the user info ends at the last '@', so that a password pasted
    without escaping ('/', '?', '#' or '@' in it) is found too.
    """
    found: list[str] = []
    scheme, rest = url.split("://", 1)
    if "@" in rest and not rest.startswith("/"):
        userinfo = rest.rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        # 'ana@host:5432/db?x=a@b': the ':' is the port's, after the host, not a password's
        if colon and password and not re.search(r"[@/?#]", user):
            found.append("a password after the user name")
    query = url.partition("?")[2].partition("#")[0]
    items = query.split("&")
    if scheme.lower() == "sc":  # Spark Connect: sc://host:port/;token=...;user_id=...
        items += rest.partition("/;")[2].split(";")
    for item in items:
        name = item.partition("=")[0]
        if _SECRET_NAME_RE.search(name):
            found.append(f"query parameter {name!r}")
    return found


def refuse_secrets(url: str) -> None:
    """Refuse a database URL that carries a password; the message never shows it."""
    found = _secrets_in_url(url) if is_url(url) else []
    if found:
        raise SourceError(
            f"the database URL {redact(url)} carries a secret ({', '.join(found)}): a URL is a notebook "
            f"parameter, and papermill keeps it in the executed notebooks under reports/<WEEK>/executed/. "
            f"Remove it from the URL and put the password in the environment variable {PASSWORD_ENV}"
        )


def url_with_password(url: str) -> str:
    """``url`` with the password of ``PLAYBOOK_DB_PASSWORD`` (URL-encoded) after its user name."""
    refuse_secrets(url)
    password = os.environ.get(PASSWORD_ENV)
    parts = urlsplit(url)
    if not password or "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    userinfo = userinfo.split(":", 1)[0]  # 'ana:@host': an empty password is no password
    return urlunsplit((parts.scheme, f"{userinfo}:{quote(password, safe='')}@{host}", *parts[2:]))
