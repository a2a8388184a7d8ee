"""The weekly run: execute the numbered notebooks with papermill, export HTML, swap the report in.

``python -m playbook.run.weekly --week 2026-W47 --data data_samples --out reports`` (what ``make
weekly`` calls). The run closes the known traps of papermill and nbconvert:

* parameters go through the API (no ``-p`` strings changing type), and are checked against
  ``papermill.inspect_notebook``: an unknown or missing parameter, or a notebook without a cell
  tagged ``parameters``, stops the run instead of running silently on defaults;
* the kernel is the environment's own ``python3``; a user kernel spec that shadows it is refused;
* HTML is exported only from a run that succeeded, without the injected-parameters cell;
* the report is built in a staging folder and swapped in whole: a failing notebook leaves the
  previous complete report of that week untouched, and the run exits non-zero naming the
  notebook and the failing cell;
* every path is absolute and anchored at the repository, never the working directory;
* notebooks that read nothing from each other run at the same time (steps 1, 2 and 4; 3 after 2, 5
  after all), up to ``PLAYBOOK_JOBS`` at once (default: the cores; 1: one after the other), on kernels
  started and warmed while the source is opened (``run.graph``, ``run.kernels``); the report and the
  journal are those of a sequential run, and a failing notebook stops the others.

Runs that collide or die (README, "What happens when..."):

* one run per week at a time: a lock on ``<out>/.<week>.lock`` (``core.atomic.exclusive_lock``);
  a second run of the same week waits up to ``lock_wait`` seconds, then stops naming the first
  (pid, host, start time), before writing anything; the journal has its own lock per write;
* a run killed at any point leaves the previous complete report: the lock dies with its process,
  and the next run of the week removes what the dead run left (staging folder, snapshot, the
  old report of an interrupted swap, which it puts back if the swap did not finish); journal
  entries of a report swapped in whose journal write did not finish are recorded by the next run;
* an output folder that cannot be written (read-only, no space) stops the run before the
  notebooks, and a write that fails later (disk full) stops it with the previous report in place.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import nbformat
import papermill

from playbook.config.loader import for_source, load_config, shop_note
from playbook.core.atomic import Lock, LockBusy, LockHolder, exclusive_lock, write_text
from playbook.core.paths import (
    DATA_SAMPLES_DIR,
    DEFAULT_CONFIG,
    NOTEBOOKS_DIR,
    journal_dir_for,
    reports_dir_for,
    resolve,
)
from playbook.core.settings import ConfigError
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import open_dataset
from playbook.data.engines.spark import is_local_spark
from playbook.data.engines.spark_share import shared_spark
from playbook.data.snapshot import SNAPSHOT_SCHEMA_ENV, SnapshotLocation, drop_snapshot, fingerprint
from playbook.data.url_secrets import is_url, redact
from playbook.data.validation import ContractError
from playbook.journal import store as decision_journal
from playbook.journal.entry import JournalError
from playbook.metrics.dictionary import known_metrics
from playbook.report.pages import (
    BRIEF_DIR,
    CSS,
    Step,
    brief_page,
    index_page,
    notebook_to_html,
    report_files,
    stylesheet,
    write_guides,
    write_weeks_index,
)
from playbook.report.summary import ChoiceEntry, in_cycle_order, read_summary, update_summary
from playbook.run.choices import Choice, for_notebook, resolve_choices
from playbook.run.graph import JOBS_ENV, StepNode, describe, jobs_from_env, step_graph
from playbook.run.kernels import Kernels, StepFailed
from playbook.run.session import store_week

KERNEL = "python3"
#: the kernel's own start/stop chatter ("running over TCP", "KeyboardInterrupt caught" at shutdown) would read
#: as errors in a scheduled job's log; cell errors still fail the run
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
#: The parameters the runner passes to every notebook; each must declare all of them.
COMMON_PARAMETERS = ("week", "data", "config", "run_dir", "journal", "snapshot")
#: free space the reports folder needs beyond twice the week's previous report (the notebooks, the
#: snapshot and the HTML of a week weigh a few MB on the sample shop, tens on a large one)
MIN_FREE_BYTES = 64 * 2**20
#: errors that mean "this folder cannot take the report": said in words, never as a traceback
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class RunError(RuntimeError):
    """The weekly run failed; the message says which notebook, which cell and why."""


class RunBusy(RunError):
    """Another run of the same week holds its lock; the message names it (pid, host, start time)."""

    def __init__(self, message: str, holder: LockHolder | None):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class NotebookRun:
    name: str
    title: str
    seconds: float


def cycle_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks of the cycle, in order (``01_baseline.ipynb``, ``02_...``)."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise RunError(f"no numbered notebook in {folder}")
    return found


def notebook_title(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def check_parameters(path: Path, parameters: dict) -> None:
    """Refuse a notebook without a ``parameters`` cell, or parameters it does not declare."""
    nb = nbformat.read(str(path), as_version=4)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise RunError(f"{path.name}: no cell tagged 'parameters'; papermill would run it on its defaults")
    declared = set(papermill.inspect_notebook(str(path)))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise RunError(f"{path.name}: parameter(s) {unknown} are not declared in its parameters cell "
                       f"(declared: {sorted(declared)})")
    missing = sorted(set(COMMON_PARAMETERS) - declared)
    if missing:
        raise RunError(f"{path.name}: its parameters cell lacks {missing}, which every notebook of the cycle takes")


def check_kernel() -> None:
    """The ``python3`` kernel must be this environment's interpreter, not a shadowing user spec."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise RunError("no 'python3' kernel: install ipykernel in this environment") from None
    interpreter = spec.argv[0]
    if interpreter in ("python", "python3", "{python}"):
        return  # the native spec of this environment
    if Path(interpreter).resolve() != Path(sys.executable).resolve():
        raise RunError(
            f"the 'python3' kernel spec at {spec.resource_dir} runs {interpreter}, not this environment's "
            f"{sys.executable}; remove that spec (it was probably installed with --user)"
        )


def _execute(path: Path, output: Path, parameters: dict, timeout: int, km: Any = None) -> None:
    """Run the notebook at ``path`` into ``output`` with papermill; RunError naming the cell when it fails.

    ``km``: a kernel manager whose kernel is already started (``run.kernels``, in the notebook's folder);
    None starts one here, in the notebook's folder.
    """
    where = {"km": km} if km is not None else {"cwd": str(path.parent), "extra_arguments": KERNEL_ARGUMENTS}
    try:
        papermill.execute_notebook(
            str(path), str(output), parameters=parameters, kernel_name=KERNEL, progress_bar=False,
            execution_timeout=timeout, report_mode=False, **where,
        )
    except papermill.PapermillExecutionError as exc:
        raise RunError(
            f"{path.name} failed at cell {exc.exec_count} (index {exc.cell_index}): {exc.ename}: {exc.evalue}"
        ) from None
    except Exception as exc:  # a timeout or a dead kernel: papermill may leave a complete-looking notebook
        raise RunError(f"{path.name} did not finish: {type(exc).__name__}: {exc}") from None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where it is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc older than glibc 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # the kernel or the file system cannot
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` so that a reader sees the old report or the new one, whole.

    Where the system swaps two folders in one step, ``final`` never stops existing and ``staging``
    ends up holding the old report. Elsewhere the old report is first moved aside to
    ``.<week>.old-<id>``: a run killed between the two renames leaves no ``final``, and the next run
    of the week puts that backup back (``_clean_after_dead_runs``).
    """
    if final.exists() and _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # the old report
        return
    backup = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, backup)
    try:
        os.replace(staging, final)
    except OSError:
        if backup.exists():
            os.replace(backup, final)  # a rename that fails leaves the previous report where it was
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _week_lock_path(out_dir: Path, iso: IsoWeek | str) -> Path:
    return out_dir / f".{iso}.lock"


@contextlib.contextmanager
def _week_lock(out_dir: Path, iso: IsoWeek, wait: float, log) -> Iterator[Lock]:
    """Hold the week's lock, or raise RunBusy naming the run that holds it after ``wait`` seconds."""
    def told(holder: LockHolder | None) -> None:
        who = holder.describe() if holder else "another process"
        log(f"Week {iso} is being rendered by {who}; waiting up to {wait:.0f} s for it to finish.")

    with contextlib.ExitStack() as stack:
        try:  # only the taking of the lock: a LockBusy of the journal inside the run is not this
            lock = stack.enter_context(exclusive_lock(_week_lock_path(out_dir, iso), what=f"the weekly run of {iso}",
                                                      wait=wait, on_wait=told))
        except LockBusy as exc:
            who = exc.holder.describe() if exc.holder else "another process (it has not written its name yet)"
            raise RunBusy(
                f"another run of week {iso} is in progress: {who}; this run stopped (after waiting {exc.waited:.0f} "
                f"s) without writing anything. Let that run finish, or give this one a longer wait (--wait "
                f"SECONDS). Lock file: {exc.path}", exc.holder) from None
        yield lock


def _clean_after_dead_runs(out_dir: Path, iso: IsoWeek, lock: Lock, log) -> None:
    """Remove what killed runs of ``iso`` left beside the reports; put back a report a killed swap moved aside.

    Runs only under the week's lock: no live run of this week owns any of these paths.
    """
    final = out_dir / str(iso)
    backups = sorted(out_dir.glob(f".{iso}.old-*"), key=lambda p: p.stat().st_mtime)
    if not final.exists() and backups:
        os.replace(backups[-1], final)
        log(f"Restored the previous report of {iso}, which a run killed during its swap had moved aside.")
    leftovers = [p for pattern in (f".{iso}.staging-*", f".{iso}.old-*", f".{iso}.snapshot-*")
                 for p in out_dir.glob(pattern)]
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    if leftovers or lock.stale:
        who = lock.stale.describe() if lock.stale else "a run"
        log(f"{who} did not finish; removed what it left: {', '.join(p.name for p in leftovers) or 'nothing'}.")


def _finish_pending_journal(report: Path, journal_dir: Path, log) -> None:
    """Record the journal entries of a report swapped in by a run killed before its journal write ended.

    Only for this run's journal: entries pending for another journal are left to that journal's runs.
    """
    target = decision_journal.pending_journal(report)
    if target is None:
        return
    if target != journal_dir.resolve():
        log(f"The report {report} has journal entries pending for another journal ({target}); left for its runs.")
        return
    try:
        decision_journal.apply_staged(report, journal_dir)
    except (OSError, LockBusy) as exc:
        raise RunError(f"the plans and verdicts of {report.name}, left pending by a run killed after its report was "
                       f"in place, cannot be recorded in the journal {journal_dir}: {exc}. The run stopped before "
                       f"writing anything; the journal is unchanged") from exc
    log(f"Recorded the journal entries of {report.name}, whose run was killed after its report was in place.")


def _weeks_to_recover(out_dir: Path) -> set[IsoWeek]:
    """Weeks with leftovers of a dead run beside the reports, or a report whose journal entries are pending."""
    found = set()
    for path in out_dir.iterdir() if out_dir.is_dir() else ():
        leftover = path.name.startswith(".") and any(f".{k}-" in path.name for k in ("staging", "old", "snapshot"))
        try:  # interactive/, <week>.failed/ and the lock files name no week here
            week = IsoWeek.parse(path.name[1:].split(".")[0] if leftover else path.name)
        except ValueError:
            continue
        if leftover or (path.is_dir() and decision_journal.pending_journal(path) is not None):
            found.add(week)
    return found


def _recover(out_dir: Path, iso: IsoWeek, lock: Lock, journal_dir: Path, log) -> None:
    """Finish or undo what killed runs left, for this week (whose lock this run holds) and any other.

    Another week is recovered only under its own lock, and skipped while a live run of that week
    holds it (that run recovers it itself).
    """
    for week in sorted(_weeks_to_recover(out_dir) | {iso}):
        with contextlib.ExitStack() as stack:
            held = lock
            if week != iso:
                try:
                    held = stack.enter_context(
                        exclusive_lock(_week_lock_path(out_dir, week), what=f"the recovery of {week}", wait=0))
                except LockBusy:
                    continue
            _clean_after_dead_runs(out_dir, week, held, log)
            _finish_pending_journal(out_dir / str(week), journal_dir, log)


def free_bytes(folder: Path) -> int:
    """Free space of the file system holding ``folder`` (a function of its own so that tests can shrink it)."""
    return shutil.disk_usage(folder).free


def _check_writable(folder: Path, what: str) -> None:
    """Create, write and remove a small file in ``folder``: a read-only or full folder stops the run here."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise RunError(f"the {what} {folder} cannot be written ({exc.strerror or exc}); the run stopped before "
                       f"writing anything") from None


def _check_free_space(out_dir: Path, final: Path) -> None:
    previous = sum(p.stat().st_size for p in final.rglob("*") if p.is_file()) if final.is_dir() else 0
    needed = MIN_FREE_BYTES + 2 * previous
    free = free_bytes(out_dir)
    if free < needed:
        raise RunError(f"the reports folder {out_dir} has {free / 2**20:.0f} MB free; a run of this week needs "
                       f"{needed / 2**20:.0f} MB (twice its previous report, plus {MIN_FREE_BYTES // 2**20} MB). "
                       f"The run stopped before writing anything; the previous report is untouched")


def _write_failure(exc: OSError, iso: IsoWeek) -> RunError:
    where = f" writing {exc.filename}" if exc.filename else ""
    return RunError(f"cannot write the report of {iso}{where}: {exc.strerror or exc}. Nothing was swapped in: the "
                    f"previous report of {iso} is untouched and the journal unchanged")


def source_text(data: str | os.PathLike | None) -> str:
    """The source as the run names it: a URL as given, a folder absolute (relative: from the repository root)."""
    return str(data) if data and "://" in str(data) else str(resolve(data, DATA_SAMPLES_DIR))


def run_week(
    week: str | None = None,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    journal: str | os.PathLike | None = None,
    notebooks: list[Path] | None = None,
    timeout: int = 900,
    log=lambda text: print(text, flush=True),
    lock_wait: float = 0.0,
    choices: dict[str, Any] | None = None,
    jobs: int | None = None,
) -> Path:
    """Render the whole cycle of ``week`` into ``<out>/<week>/`` and return that folder.

    ``out`` and ``journal`` default to the source's own folders (``core.paths.reports_dir_for``): ``reports/``
    and ``journal/`` for the repository's sample, ``reports/<source name>/`` and ``journal/<source name>/``
    for any other source.

    ``lock_wait``: seconds to wait for another run of the same week to finish before stopping
    with ``RunBusy`` naming it (0: stop at once). ``choices``: the analyst's parameters
    (``run.choices``), passed to the notebooks that declare them and written to summary.json.
    ``jobs``: notebooks run at once, each once those it reads from have finished (``run.graph``;
    None: ``PLAYBOOK_JOBS``, else the machine's cores; 1: one after the other, in their numbered order).
    The report and the journal are the same whatever ``jobs``.
    """
    data_text = source_text(data)
    # by default each source has its own reports and journal (reports/<source>/, journal/<source>/); the sample's
    # are reports/ and journal/
    out_dir = resolve(out, reports_dir_for(data_text))
    config_path = resolve(config, DEFAULT_CONFIG)
    journal_path = resolve(journal, journal_dir_for(data_text))
    # a configuration mistake, or the source's shop.yaml's, stops the run before any notebook (ConfigError);
    # the source's name, currency and time zone win over the configuration's
    cfg = for_source(load_config(config_path), data_text)
    check_kernel()
    notebooks = notebooks or cycle_notebooks()
    chosen = resolve_choices(choices or {}, notebooks, COMMON_PARAMETERS)  # an unknown choice stops here
    nodes = step_graph(notebooks)
    with Kernels(nodes, jobs or jobs_from_env(), KERNEL, KERNEL_ARGUMENTS) as kernels:
        # the kernels start and import the stack while the source is opened and validated; a kernel inherits
        # the runner's environment when it starts, and a served Spark session puts its token there only later
        if not is_local_spark(data_text):
            kernels.start()
        stamp = fingerprint(data_text)  # before the open: a file changed during the run is seen next time
        # validation first: a broken input stops before anything is written
        dataset = open_dataset(data_text, timezone=cfg.timezone, known_metrics=known_metrics(cfg.metrics))
        iso = dataset.check_week(week) if week else dataset.latest_complete_week()  # ValueError outside the data
        _check_writable(out_dir, "reports folder")
        _check_writable(journal_path, "journal folder")
        final = out_dir / str(iso)
        with _week_lock(out_dir, iso, lock_wait, log) as lock:
            _recover(out_dir, iso, lock, journal_path, log)
            _check_free_space(out_dir, final)
            _render(dataset, iso, data_text, stamp, cfg, config_path, out_dir, journal_path, kernels, timeout, log,
                    chosen)
    log(f"Report: {final / 'index.html'}")
    return final


def _render(dataset, iso: IsoWeek, data_text: str, stamp, cfg, config_path: Path, out_dir: Path, journal_path: Path,
            kernels: Kernels, timeout: int, log, chosen: list[Choice]) -> None:
    """Under the week's lock: notebooks into a staging folder, HTML, swap in, then the journal."""
    final = out_dir / str(iso)
    run_id = uuid.uuid4().hex[:8]
    staging = out_dir / f".{iso}.staging-{run_id}"
    location = snapshot_location(data_text, out_dir, iso, run_id)
    parameters = {
        "week": str(iso), "data": data_text, "config": str(config_path),
        "run_dir": str(staging), "journal": str(journal_path), "snapshot": location.text() if location else "",
    }
    notebooks = [node.path for node in kernels.nodes]
    for nb in notebooks:
        check_parameters(nb, parameters)
    log(f"Week {iso} from {redact(data_text)} -> {final}. {dataset.completeness_note()}.")
    log(f"Shop: {shop_note(cfg)}.")
    served = contextlib.ExitStack()  # the run's Spark session served to the kernels, stopped when the run ends
    try:
        staging.mkdir(parents=True)
        if chosen:  # said at the top of the report: the run is not the defaults
            update_summary(staging, choices=[ChoiceEntry(c.name, c.value, c.default, c.notebooks) for c in chosen])
        if location is not None and location.schema:
            _drop_dead_run_tables(dataset.con, location, out_dir, iso, log)
        if location is not None:
            # the one open of the run: every notebook attaches the cut tables and the shared facts
            store_week(dataset, iso, cfg.metrics.return_window_days, location, stamp)
        else:
            log(f"No {SNAPSHOT_SCHEMA_ENV} for this database: each notebook opens and validates the source itself.")
        if location is not None and location.folder:
            # one Spark session per run: the kernels connect to the runner's instead of starting their own
            served.callback(dataset.con.disconnect)  # last: after the service has stopped
            shared = served.enter_context(shared_spark(dataset.con))
            parameters["snapshot"] = SnapshotLocation(shared.url, folder=location.folder).text()
            log(f"The run's Spark session is served to the notebooks at {shared.url} (loopback, token).")
        # the runner would otherwise hold the whole shop in memory (and lock a DuckDB database file)
        # while the notebooks run; a served Spark session stays open (its cached tables are released)
        dataset.close(disconnect=not location or not location.folder)
        del dataset
        runs = _run_notebooks(kernels, staging, {nb.stem: {**parameters, **for_notebook(chosen, nb.stem)}
                                                 for nb in notebooks}, timeout, out_dir, iso, log)
        steps = [Step(r.name, r.title) for r in runs]
        for step in steps:
            executed = staging / "executed" / f"{step.stem}.ipynb"
            notebook_to_html(executed, staging / f"{step.stem}.html", step, steps, str(iso), shop=cfg.shop_name)
            notebook_to_html(executed, staging / BRIEF_DIR / f"{step.stem}.html", step, steps, str(iso), brief=True,
                             shop=cfg.shop_name)
        summary = read_summary(staging)
        write_text(staging / "index.html", index_page(summary, steps, cfg, report_files(staging)))
        write_text(staging / BRIEF_DIR / "index.html", brief_page(summary, steps, cfg))
        write_guides(staging, steps)
        write_text(staging / CSS, stylesheet())
        # the mark travels with the report: a run killed before the journal write is finished by the next run
        decision_journal.mark_pending(staging, journal_path)
        _swap_in(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno in _WRITE_ERRNOS:
            raise _write_failure(exc, iso) from exc
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        served.close()
        if location is not None:
            drop_snapshot(location)  # the shop's rows never outlive the run, nor sit in a report folder
    shutil.rmtree(out_dir / f"{iso}.failed", ignore_errors=True)  # this week now has a complete report
    try:  # the list of weeks is a convenience: the week's report is in place whatever happens to it
        write_weeks_index(out_dir, cfg)
    except OSError as exc:
        log(f"The list of weeks {out_dir / 'index.html'} could not be rewritten ({exc}); the week's report is complete.")
    # the plans and verdicts of the week enter the journal only with their complete report
    try:
        decision_journal.apply_staged(final, journal_path)
    except (OSError, LockBusy) as exc:
        raise RunError(f"the report of {iso} is in place, but its plans and verdicts could not be recorded in the "
                       f"journal {journal_path}: {exc}. The journal is unchanged and readable; the entries wait in "
                       f"{final / decision_journal.STAGED_DIR} and the next run records them") from exc


def _run_notebooks(kernels: Kernels, staging: Path, parameters: dict[str, dict], timeout: int, out_dir: Path,
                   iso: IsoWeek, log) -> list[NotebookRun]:
    """Execute the notebooks into ``staging/executed/`` along their graph; the runs in the numbered order.

    A failing notebook is kept in ``<week>.failed/`` and raised as a RunError naming it and its cell, once
    the other notebooks have stopped. summary.json ends with its sections in the order a sequential
    run writes them, whatever order the notebooks finished in.
    """
    executed = staging / "executed"
    executed.mkdir(exist_ok=True)
    total = len(kernels.nodes)
    if kernels.jobs > 1 and any(len(n.after) < n.number - 1 for n in kernels.nodes):
        log(f"Up to {kernels.jobs} notebooks at once ({JOBS_ENV}): {describe(kernels.nodes)}.")

    def execute(nb: Path, km: Any) -> None:
        _execute(nb, executed / nb.name, parameters[nb.stem], timeout, km)

    def failed(node: StepNode, error: BaseException) -> None:
        kept = _keep_failed(executed / node.path.name, out_dir, iso, _step_error(node, error))
        log(f"[{node.number}/{total}] {node.stem} FAILED (the failed notebook and the error are in {kept})")

    try:
        done = kernels.run(execute, log, failed)
    except StepFailed as exc:
        raise _step_error(exc.node, exc.error) from None
    in_cycle_order(staging, [n.stem for n in kernels.nodes])
    return [NotebookRun(d.node.stem, notebook_title(d.node.path), d.seconds)
            for d in sorted(done, key=lambda d: d.node.number)]


def _step_error(node: StepNode, error: BaseException) -> RunError:
    """The error of a notebook as the run says it: a RunError names its cell; a kernel that did not start is said so."""
    if isinstance(error, RunError):
        return error
    return RunError(f"{node.path.name} did not start: its kernel failed ({type(error).__name__}: {error})")


def snapshot_location(data: str, out_dir: Path, iso: IsoWeek, run_id: str) -> SnapshotLocation | None:
    """Where this run stores its snapshot, or None when a database names no schema for it.

    A folder: a DuckDB file beside the reports, ``<out>/.<week>.snapshot-<id>.duckdb``, removed when
    the run ends (never inside the report folder that is swapped in). A database: tables prefixed
    ``pb_run_<folder tag>_<week>_<id>_`` (``run_tables_prefix``) in the schema ``PLAYBOOK_SNAPSHOT_SCHEMA``
    (temporary tables do not outlive the runner's connection, and each notebook has its own), dropped
    when the run ends, or by the next run when it was killed. A local
    Spark session (``pyspark://`` with a local master): Parquet folders beside the reports,
    ``<out>/.<week>.snapshot-<id>/``, read by the kernels through the runner's session, which the run
    serves to them over Spark Connect (``data.engines.spark_share``).
    """
    if not is_url(data):
        return SnapshotLocation(str(out_dir / f".{iso}.snapshot-{run_id}.duckdb"))
    if is_local_spark(data):
        return SnapshotLocation(data, folder=str(out_dir / f".{iso}.snapshot-{run_id}"))
    schema = os.environ.get(SNAPSHOT_SCHEMA_ENV, "")
    return SnapshotLocation(data, schema, f"{run_tables_prefix(out_dir, iso)}{run_id}_") if schema else None


def run_tables_prefix(out_dir: Path, iso: IsoWeek) -> str:
    """The prefix of the snapshot tables every run of ``iso`` into ``out_dir`` writes in a database schema:
    ``pb_run_<folder tag>_<week>_``, so that the week's lock (a file in ``out_dir``) covers exactly them.

    The tag is a hash of the reports folder: two teams' folders writing the same schema never take
    each other's tables for a dead run's.
    """
    tag = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:6]
    return f"pb_run_{tag}_{str(iso).lower().replace('-', '')}_"


def _drop_dead_run_tables(con, location: SnapshotLocation, out_dir: Path, iso: IsoWeek, log) -> None:
    """Drop the snapshot tables that killed runs into ``out_dir`` left in the schema (the shop's rows).

    A run that dies cannot drop its tables; the next run finds them by their prefix. This week's are
    dropped under the lock this run holds; another week's only under that week's lock, taken without
    waiting (a live run of that week owns them, and they are skipped).
    """
    if location.schema not in con.list_databases():
        return
    family = run_tables_prefix(out_dir, iso).rsplit("_", 2)[0] + "_"  # pb_run_<tag>_
    by_week: dict[IsoWeek, list[str]] = {}
    for name in con.list_tables(database=location.schema):
        token = name[len(family):].split("_", 1)[0] if name.startswith(family) else ""
        try:
            week = IsoWeek.parse(f"{token[:4]}-W{token[5:]}")
        except ValueError:
            continue
        if not name.startswith(location.prefix):
            by_week.setdefault(week, []).append(name)
    for week, names in sorted(by_week.items()):
        with contextlib.ExitStack() as stack:
            if week != iso:
                try:
                    stack.enter_context(exclusive_lock(_week_lock_path(out_dir, week), what=f"the recovery of {week}",
                                                       wait=0))
                except LockBusy:
                    continue
            for name in names:
                con.drop_table(name, database=location.schema, force=True)
            log(f"Dropped {len(names)} snapshot table(s) that a killed run of {week} left in the schema "
                f"{location.schema}.")


def _keep_failed(executed: Path, out_dir: Path, iso: IsoWeek, error: Exception) -> Path:
    """Keep the failed notebook and its error beside the week's report, visibly marked as failed.

    The week's report itself stays the previous complete one; ``<WEEK>.failed/`` says a run failed,
    which notebook, which cell and why, and holds the notebook as far as it got (never as HTML,
    so that a half-run notebook cannot pass for a report).
    """
    target = out_dir / f"{iso}.failed"
    target.mkdir(parents=True, exist_ok=True)
    if executed.exists():
        shutil.copyfile(executed, target / executed.name)
    write_text(target / "error.txt", f"{time.strftime('%Y-%m-%d %H:%M:%S')} {error}\n")
    return target


#: The exit codes of a weekly run (``python -m playbook.run.weekly`` and ``playbook weekly``).
EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_RED, EXIT_BUSY = 0, 1, 2, 3, 4


def classify(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and the message of a run that raised ``exc``; None for an error the runner does not know."""
    if isinstance(exc, RunBusy):
        return EXIT_BUSY, f"Another run of this week is in progress; nothing was written.\n{exc}"
    if isinstance(exc, RunError):
        return EXIT_FAILED, f"The weekly run failed; the previous report of the week is untouched.\n{exc}"
    if isinstance(exc, JournalError):  # raised while recording the week, after the notebooks ran
        return EXIT_FAILED, f"The decision journal cannot be read; the week's plans and verdicts are not recorded.\n{exc}"
    if isinstance(exc, ContractError):
        return EXIT_REFUSED, f"The data break the contract; no report was written.\n{exc}"
    if isinstance(exc, ConfigError):
        return EXIT_REFUSED, f"The configuration is broken; no report was written.\n{exc}"
    if isinstance(exc, ValueError):  # SourceError included: a source, URL or week the run cannot take
        return EXIT_REFUSED, f"Cannot run: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbook.run.weekly", description=__doc__.splitlines()[0])
    parser.add_argument("--week", default="", help="ISO week such as 2026-W47 (default: latest complete week)")
    parser.add_argument("--data", default="",
                        help="folder of CSV/Parquet files or database URL (password from PLAYBOOK_DB_PASSWORD)")
    parser.add_argument("--out", default="", help="reports folder (default: reports/, reports/<source name>/ for "
                                                   "a source other than data_samples/)")
    parser.add_argument("--config", default="", help="YAML configuration (default: playbook/config/playbook.yaml)")
    parser.add_argument("--journal", default="", help="decision journal folder (default: journal/, "
                                                       "journal/<source name>/ for a source other than data_samples/)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per notebook cell")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds to wait for another run of the same week to finish (default: stop at once)")
    args = parser.parse_args(argv)
    try:
        run_week(args.week or None, args.data or None, args.out or None, args.config or None,
                 args.journal or None, timeout=args.timeout, lock_wait=args.wait)
    except Exception as exc:
        known = classify(exc)
        if known is None:
            raise
        print(f"\n{known[1]}", file=sys.stderr)
        return known[0]
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
