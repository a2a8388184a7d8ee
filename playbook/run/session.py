"""The context every notebook of the cycle starts from: parameters resolved into one ``Run``.

Notebooks call ``start(week, data, config, run_dir, journal)`` with their papermill parameters.
Empty parameters take the defaults (the sample data, the default configuration, the latest
complete week, the scratch folder ``reports/interactive/<week>/``, ``journal/``; for another source its own
``reports/<source name>/interactive/<week>/`` and ``journal/<source name>/``), resolved against the repository root so that
JupyterLab (kernel in ``notebooks/``) and papermill (kernel in the caller's folder) agree.

The data come from a stored snapshot (``playbook.data.snapshot.attach_snapshot``): the weekly runner builds
one per run and passes it as the ``snapshot`` parameter; an interactive session (empty
``snapshot``) reuses the one in its cache folder (``snapshot_cache_dir``) while the source's
fingerprint, the week and the code's version match, and builds it otherwise.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from playbook.config.loader import for_source, load_config
from playbook.core.formats import date_text
from playbook.core.paths import DATA_SAMPLES_DIR, journal_dir_for, reports_dir_for, resolve
from playbook.core.settings import Config
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Dataset, Snapshot, open_dataset
from playbook.data.errors import SourceError
from playbook.data.facts import line_facts, order_facts
from playbook.data.snapshot import (
    SNAPSHOT_SCHEMA_ENV,
    SnapshotLocation,
    attach_snapshot,
    fingerprint,
    read_snapshot_meta,
    snapshot_version,
    store_snapshot,
)
from playbook.data.url_secrets import is_url, redact
from playbook.metrics.dictionary import known_metrics
from playbook.report.summary import update_summary


@dataclass
class Run:
    week: IsoWeek
    dataset: Dataset
    snapshot: Snapshot
    config: Config
    run_dir: Path
    journal_dir: Path

    @property
    def data_source(self) -> str:
        return self.dataset.source_label

    def describe(self) -> str:
        missing = ", ".join(self.dataset.missing_tables) or "none"
        empty = ", ".join(self.dataset.empty_tables)
        return (f"Week {self.week} ({date_text(self.week.monday)} to {date_text(self.week.sunday)}), data known up to "
                f"{self.week.end:%Y-%m-%d %H:%M:%S}, from {self.data_source}. Optional tables missing: {missing}."
                + (f" Optional tables without a row (treated as missing): {empty}." if empty else ""))

    def write(self, **sections) -> dict:
        """Add sections to this week's summary.json (with the run's identity)."""
        return update_summary(
            self.run_dir, week=str(self.week), data_source=self.data_source,
            as_of=f"{self.week.end:%Y-%m-%d %H:%M:%S}", **sections,
        )


def start(week: str = "", data: str = "", config: str = "", run_dir: str = "", journal: str = "",
          snapshot: str = "") -> Run:
    """Attach the week's snapshot (or open, validate and store it), resolve the week and the output folders.

    ``snapshot``: the location the weekly runner passes (``SnapshotLocation.text()``); empty in an
    interactive session, which reuses or builds a cached one (``interactive_snapshot``).
    """
    source = data if data and is_url(data) else str(resolve(data or None, DATA_SAMPLES_DIR))
    cfg = for_source(load_config(config or None), source)  # the source's shop.yaml wins (name, currency, zone)
    if snapshot:
        snap = attach_snapshot(snapshot)
        if redact(source) != snap.dataset.source_label:
            raise SourceError(f"the snapshot was built from {snap.dataset.source_label}, not from {redact(source)}")
        if week and IsoWeek.parse(week) != snap.week:
            raise ValueError(f"the snapshot is of week {snap.week}, not {IsoWeek.parse(week)}")
    else:
        snap = interactive_snapshot(source, week, cfg)
    iso = snap.week
    # an interactive run (no run_dir) works in a scratch folder: it never overwrites the published
    # report of the week, and its journal entries stay staged there (only `make weekly` records them)
    out = resolve(run_dir or None, reports_dir_for(source) / "interactive" / str(iso))
    out.mkdir(parents=True, exist_ok=True)
    return Run(iso, snap.dataset, snap, cfg, out, resolve(journal or None, journal_dir_for(source)))


def shared_facts(snap: Snapshot, k: int) -> None:
    """Materialize the facts every step shares (line and order facts for the return window k) on ``snap``."""
    line_facts(snap, k)
    order_facts(snap, k)


def store_week(dataset: Dataset, week: IsoWeek, k: int, location: SnapshotLocation, source_fingerprint: str) -> None:
    """Cut ``dataset`` at the end of ``week``, build the shared facts and store them at ``location``."""
    # the facts are built by the store: into a DuckDB file, straight from the stored cut (never in memory)
    store_snapshot(dataset.as_of(week), location, source_fingerprint, shared=lambda snap: shared_facts(snap, k))


# --- the interactive cache -----------------------------------------------------------------------

CACHE_ENV = "PLAYBOOK_CACHE_DIR"
CACHE_KEEP = 8  # snapshot files kept in the cache folder, the most recently used first


def snapshot_cache_dir() -> Path:
    """``$PLAYBOOK_CACHE_DIR``, else ``$XDG_CACHE_HOME/returns-playbook/snapshots`` (``~/.cache/...``).

    The user's cache folder, never under ``reports/``: a snapshot holds the shop's rows, which must
    not travel with a report folder that is shared or downloaded.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "returns-playbook" / "snapshots"


def interactive_snapshot(source: str, week: str, cfg: Config) -> Snapshot:
    """The snapshot of ``week`` (empty: the latest complete week), reused when still valid, else built.

    Valid means: same source fingerprint (``data.fingerprint``), same week, same code version
    (``data.snapshot_version``), the same time zone, and the facts for this k. A folder source is cached as a DuckDB
    file in ``snapshot_cache_dir()``; a database source in the schema ``PLAYBOOK_SNAPSHOT_SCHEMA``
    when it is set, else it is opened and validated in this kernel as before (nothing stored).
    """
    k = cfg.metrics.return_window_days
    schema = os.environ.get(SNAPSHOT_SCHEMA_ENV, "") if is_url(source) else ""
    if is_url(source) and not schema:
        dataset = _open(source, cfg)
        return dataset.as_of(dataset.check_week(week) if week else dataset.latest_complete_week())
    stamp = fingerprint(source)
    # the time zone decides which week an order falls in: a snapshot cut in another zone is another one
    key = hashlib.sha256(f"{source}\n{stamp}\n{snapshot_version()}\n{k}\n{cfg.timezone}".encode()).hexdigest()[:16]
    known = IsoWeek.parse(week) if week else _remembered_week(key)
    if known is not None:
        location = _cache_location(source, schema, key, known)
        meta = read_snapshot_meta(location) if _exists(location) else None
        if meta is not None and (meta.fingerprint, meta.week, meta.version) == (stamp, str(known), snapshot_version()):
            _touch(location)
            return attach_snapshot(location)
    dataset = _open(source, cfg)  # a URL carrying a password is refused (SourceError)
    # a week the data do not cover would show empty or half-filled numbers as if they were real
    iso = dataset.check_week(week) if week else dataset.latest_complete_week()
    location = _cache_location(source, schema, key, iso)
    store_week(dataset, iso, k, location, stamp)
    if not week:
        _remember_week(key, iso)
    _prune(location)
    dataset.close()
    return attach_snapshot(location)


def _open(source: str, cfg: Config) -> Dataset:
    return open_dataset(source, timezone=cfg.timezone, known_metrics=known_metrics(cfg.metrics))


def _cache_location(source: str, schema: str, key: str, week: IsoWeek) -> SnapshotLocation:
    name = f"{key}_{str(week).replace('-', '_').lower()}"
    if schema:
        return SnapshotLocation(source, schema, f"pb_{name}_")
    return SnapshotLocation(str(snapshot_cache_dir() / f"{name}.duckdb"))


def _exists(location: SnapshotLocation) -> bool:
    return Path(location.target).is_file() if location.is_file else True


def _touch(location: SnapshotLocation) -> None:
    if location.is_file:
        os.utime(location.target)


def _remembered_week(key: str) -> IsoWeek | None:
    """The latest complete week of this very content (it is a function of the data), if known."""
    path = snapshot_cache_dir() / f"{key}.latest"
    try:
        return IsoWeek.parse(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _remember_week(key: str, week: IsoWeek) -> None:
    folder = snapshot_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.latest").write_text(str(week), encoding="utf-8")


def _prune(keep: SnapshotLocation) -> None:
    """Keep the ``CACHE_KEEP`` most recently used snapshot files (a database schema is left to its owner)."""
    if not keep.is_file:
        return
    folder = snapshot_cache_dir()
    files = sorted(folder.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[CACHE_KEEP:]:
        if old != Path(keep.target):
            old.unlink(missing_ok=True)
    # the latest-week markers are a few bytes each; forget those not written for a month
    for marker in folder.glob("*.latest"):
        if time.time() - marker.stat().st_mtime > 30 * 86400:
            marker.unlink(missing_ok=True)
