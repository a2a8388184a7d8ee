"""The embedded engine (DuckDB) and its own limits: memory, spill folder, threads."""
from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import ibis

from playbook.data.errors import SourceError

MEMORY_LIMIT_ENV = "PLAYBOOK_DUCKDB_MEMORY_LIMIT"  # e.g. "4GiB" (DuckDB's units); default DEFAULT_MEMORY_LIMIT_MIB
#: DuckDB's memory limit unless ``MEMORY_LIMIT_ENV`` says otherwise (or half the usable memory, if that is
#: less): the ten-million-line weekly run within 2 GiB per process, its tables on disk (docs/benchmarks.md)
DEFAULT_MEMORY_LIMIT_MIB = 1024
TEMP_DIR_ENV = "PLAYBOOK_DUCKDB_TEMP_DIR"  # the folder under which each connection spills
THREADS_ENV = "PLAYBOOK_DUCKDB_THREADS"  # default: the cores this process may run on
_TEMP_SERIAL = itertools.count()


def _usable_memory_bytes() -> int | None:
    """Physical memory, or the cgroup's limit when a container sets a lower one (None when unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def duckdb_settings() -> dict[str, str | int]:
    """The limits of an embedded DuckDB connection: ``memory_limit``, ``temp_directory``, ``threads``.

    Defaults sized for a laptop shared with a browser and a notebook server: 1 GiB
    (``DEFAULT_MEMORY_LIMIT_MIB``; half the usable memory when that is less; DuckDB's own default is
    80 %), spilling under the system's temporary folder, one thread per core this process may run on.
    The weekly run keeps its tables on disk (the source's files, the snapshot file) and DuckDB's
    buffer pool holds what a query needs: at ten million order lines the runner peaks at 1.7 GiB
    with it, against 3 GiB at half of 23.5 GiB, for about a fifth more time (docs/benchmarks.md).
    Each overrides through its environment variable (``MEMORY_LIMIT_ENV``, ``TEMP_DIR_ENV``,
    ``THREADS_ENV``). Each connection spills into a folder of its own under the
    temporary folder (process id and a serial): DuckDB names its spill files alike in every instance
    and removes the folder when it closes, so two kernels sharing one folder would corrupt or delete
    each other's files (duckdb/duckdb#15173, #5878).
    """
    settings: dict[str, str | int] = {}
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    usable = _usable_memory_bytes()
    if limit:
        settings["memory_limit"] = limit
    else:
        half = usable // 2 // 2**20 if usable else DEFAULT_MEMORY_LIMIT_MIB
        settings["memory_limit"] = f"{min(half, DEFAULT_MEMORY_LIMIT_MIB)}MiB"
    base = os.environ.get(TEMP_DIR_ENV, "").strip() or tempfile.gettempdir()
    settings["temp_directory"] = str(Path(base) / f"playbook-duckdb-{os.getpid()}-{next(_TEMP_SERIAL)}")
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads and not (threads.isdigit() and int(threads) > 0):
        raise SourceError(f"{THREADS_ENV}={threads!r}: give a whole number of threads, 1 or more")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    settings["threads"] = int(threads) if threads else cores
    return settings


def connect_duckdb() -> ibis.BaseBackend:
    """An in-memory DuckDB connection with the playbook's limits (``duckdb_settings``)."""
    return ibis.duckdb.connect(**duckdb_settings())
