"""Atomic file writes and exclusive locks: a reader never sees a half-written report, summary or journal.

Writes go through a temporary file in the same folder and ``os.replace``; a process killed
mid-write leaves the old file whole and a ``.<name>.*.tmp`` file beside it (``remove_stale_temps``
removes those under the lock that guards the file).

Every file written here gets the mode of an ordinary file under the process's umask (0644 under
umask 0022, 0600 under 0077), and the folders created for it that of an ordinary folder (0755,
0700): the temporary file is created with ``os.open(..., 0o666)``, which the kernel masks with the
umask as it masks any new file. (``tempfile.mkstemp`` creates 0600 whatever the umask: reports and
journals written through it could not be read by anyone else, however the team had set its umask.)

``exclusive_lock`` is the one lock of the package (the decision journal and the weekly run's
week folder both use it). It is an ``flock`` on a small lock file that is never deleted
(deleting it would let two processes lock two different files of the same name). The kernel
releases the lock when its process ends, however it ends (SIGKILL included), so a dead
process never holds it; the file also carries a record of its holder (pid, host, start time,
what it does), written when the lock is taken and cleared when it is released, which only
serves to name the holder to a process that waits, and to recognise a holder that died.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    return write_bytes(path, text.encode(encoding))


#: flags of the temporary file: new (never an existing file or a symlink planted under its name), write only
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty ``.<name>.<random>.tmp`` beside ``path``, open for writing, with the umask's mode.

    Mode 0o666 is what ``open(..., "w")`` asks for: the kernel takes the umask off it (and a folder's
    default ACL applies), so the file ends with the mode every other new file of the user gets.
    """
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 2**32 names; a leftover of a killed write
            continue
    raise FileExistsError(f"no free temporary name beside {path}")  # pragma: no cover


def write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, ``os.replace``.

    The file (and any folder created for it) gets the mode of an ordinary new file under the umask;
    ``mode``, when given, sets the file's permission bits instead (a table replaced in a shared folder
    keeps its own).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """JSON with NaN refused (``allow_nan=False``): a NaN in a summary is a bug, not a value."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed ``write_bytes(path, ...)`` left beside ``path``.

    Call it only while holding the lock that guards ``path``: then no live writer owns them.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


# --- one writer at a time --------------------------------------------------------------------

@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock: enough to find the process and to judge whether it hangs."""

    pid: int
    host: str
    started: str  # ISO 8601, UTC, to the second
    what: str

    def describe(self) -> str:
        return f"{self.what} (pid {self.pid} on {self.host}, started {self.started})"

    @classmethod
    def me(cls, what: str) -> LockHolder:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return cls(os.getpid(), socket.gethostname(), now.isoformat().replace("+00:00", "Z"), what)

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["what"]))
        except (ValueError, KeyError, TypeError):
            return None

    def to_text(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started": self.started, "what": self.what})


class LockBusy(RuntimeError):
    """A live process held the lock for longer than the caller agreed to wait; the message names it."""

    def __init__(self, path: Path, holder: LockHolder | None, waited: float):
        self.path, self.holder, self.waited = path, holder, waited
        who = holder.describe() if holder else "another process (it has not written its name yet)"
        wait = f"after waiting {waited:.0f} s" if waited >= 1 else "without waiting"
        super().__init__(f"{path} is locked by {who}; gave up {wait}")


@dataclass(frozen=True)
class Lock:
    """A lock that is held: who holds it, and the record a dead previous holder left (None if it ended well)."""

    path: Path
    holder: LockHolder
    stale: LockHolder | None


def _read_record(fh) -> str:
    fh.seek(0)
    return fh.read().decode("utf-8", errors="replace").strip()


def _write_record(fh, text: str) -> None:
    fh.seek(0)
    fh.truncate()
    fh.write(text.encode("utf-8"))
    fh.flush()


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike,
    what: str,
    wait: float = 60.0,
    on_wait: Callable[[LockHolder | None], None] | None = None,
    poll: float = 0.1,
) -> Iterator[Lock]:
    """Hold an exclusive lock on the file ``path`` (created if absent) for the ``with`` block.

    ``what`` says what the holder does (it names this process to a waiting one). A process that
    finds the lock taken polls for up to ``wait`` seconds (``on_wait`` is called once with the
    holder), then raises ``LockBusy`` naming the holder. The yielded ``Lock.stale`` is the record
    of a previous holder that died holding the lock (its record was never cleared): the caller
    removes what that process left half-done.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = LockHolder.me(what)
    with open(path, "a+b") as fh:
        started = time.monotonic()
        told = False
        while not _try_lock(fh):
            holder = LockHolder.parse(_read_record(fh))
            waited = time.monotonic() - started
            if waited >= wait:
                raise LockBusy(path, holder, waited)
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            time.sleep(min(poll, max(wait - waited, 0.0)))
        try:
            stale = LockHolder.parse(_read_record(fh))
            _write_record(fh, me.to_text())
            yield Lock(path, me, stale)
        finally:
            with contextlib.suppress(OSError):  # a full disk must not keep the lock from being released
                _write_record(fh, "")
            _unlock(fh)


def _try_lock(fh) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    import msvcrt  # pragma: no cover - Windows: lock a byte far past the holder record

    try:  # pragma: no cover
        fh.seek(1 << 20)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError:  # pragma: no cover
        return False


def _unlock(fh) -> None:
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return
    import msvcrt  # pragma: no cover

    fh.seek(1 << 20)  # pragma: no cover
    msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # pragma: no cover
