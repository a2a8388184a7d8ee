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
* every path is absolute and anchored at the repository, never the working directory.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill

from playbook.config.loader import load_config
from playbook.core.atomic import write_text
from playbook.core.paths import (
    DATA_SAMPLES_DIR,
    DEFAULT_CONFIG,
    JOURNAL_DIR,
    METHOD_PAGE,
    NOTEBOOKS_DIR,
    REPORTS_DIR,
    resolve,
)
from playbook.core.settings import ConfigError
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import (
    SNAPSHOT_SCHEMA_ENV,
    SnapshotLocation,
    SourceError,
    drop_snapshot,
    fingerprint,
    is_url,
    open_dataset,
    redact,
)
from playbook.data.validation import ContractError
from playbook.journal import store as decision_journal
from playbook.metrics.dictionary import known_metrics
from playbook.report.rendering import index_page, method_page, notebook_to_html
from playbook.report.summary import read_summary
from playbook.run.session import store_week

KERNEL = "python3"
#: The parameters the runner passes to every notebook; each must declare all of them.
COMMON_PARAMETERS = ("week", "data", "config", "run_dir", "journal", "snapshot")


class RunError(RuntimeError):
    """The weekly run failed; the message says which notebook, which cell and why."""


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


def _execute(path: Path, output: Path, parameters: dict, timeout: int) -> None:
    try:
        papermill.execute_notebook(
            str(path), str(output), parameters=parameters, kernel_name=KERNEL, progress_bar=False,
            cwd=str(path.parent), execution_timeout=timeout, report_mode=False,
            # the kernel's own start/stop chatter ("running over TCP", "KeyboardInterrupt caught" at
            # shutdown) would read as errors in a scheduled job's log; cell errors still fail the run
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except papermill.PapermillExecutionError as exc:
        raise RunError(
            f"{path.name} failed at cell {exc.exec_count} (index {exc.cell_index}): {exc.ename}: {exc.evalue}"
        ) from None
    except Exception as exc:  # a timeout or a dead kernel: papermill may leave a complete-looking notebook
        raise RunError(f"{path.name} did not finish: {type(exc).__name__}: {exc}") from None


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` so that a reader sees the old report or the new one, whole."""
    backup = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, backup)
    os.replace(staging, final)
    shutil.rmtree(backup, ignore_errors=True)


def run_week(
    week: str | None = None,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    journal: str | os.PathLike | None = None,
    notebooks: list[Path] | None = None,
    timeout: int = 900,
    log=lambda text: print(text, flush=True),
) -> Path:
    """Render the whole cycle of ``week`` into ``<out>/<week>/`` and return that folder."""
    data_text = str(data) if data and "://" in str(data) else str(resolve(data, DATA_SAMPLES_DIR))
    out_dir = resolve(out, REPORTS_DIR)
    config_path = resolve(config, DEFAULT_CONFIG)
    journal_path = resolve(journal, JOURNAL_DIR)
    cfg = load_config(config_path)  # a configuration mistake stops the run before any notebook (ConfigError)
    stamp = fingerprint(data_text)  # before the open: a file changed during the run is seen next time
    # validation first: a broken input stops before anything is written
    dataset = open_dataset(data_text, timezone=cfg.timezone, known_metrics=known_metrics(cfg.metrics))
    iso = dataset.check_week(week) if week else dataset.latest_complete_week()  # ValueError outside the data
    check_kernel()
    notebooks = notebooks or cycle_notebooks()
    final = out_dir / str(iso)
    run_id = uuid.uuid4().hex[:8]
    staging = out_dir / f".{iso}.staging-{run_id}"
    location = snapshot_location(data_text, out_dir, iso, run_id)
    parameters = {
        "week": str(iso), "data": data_text, "config": str(config_path),
        "run_dir": str(staging), "journal": str(journal_path), "snapshot": location.text() if location else "",
    }
    for nb in notebooks:
        check_parameters(nb, parameters)
    log(f"Week {iso} from {redact(data_text)} -> {final}. {dataset.completeness_note()}.")
    staging.mkdir(parents=True)
    runs: list[NotebookRun] = []
    try:
        if location is not None:
            # the one open of the run: every notebook attaches the cut tables and the shared facts
            store_week(dataset, iso, cfg.metrics.return_window_days, location, stamp)
        else:
            log(f"No {SNAPSHOT_SCHEMA_ENV} for this database: each notebook opens and validates the source itself.")
        # the runner would otherwise hold the whole shop in memory (and lock a DuckDB database file)
        # while the notebooks run
        dataset.close()
        del dataset
        for i, nb in enumerate(notebooks, 1):
            started = time.monotonic()
            log(f"[{i}/{len(notebooks)}] {nb.stem} ...")
            executed = staging / "executed" / nb.name
            executed.parent.mkdir(exist_ok=True)
            try:
                _execute(nb, executed, parameters, timeout)
            except RunError as exc:
                failed = _keep_failed(executed, out_dir, iso, exc)
                log(f"[{i}/{len(notebooks)}] {nb.stem} FAILED (the failed notebook and the error are in {failed})")
                raise
            runs.append(NotebookRun(nb.stem, notebook_title(nb), time.monotonic() - started))
            log(f"[{i}/{len(notebooks)}] {nb.stem} ok ({runs[-1].seconds:.1f} s)")
        for nb in notebooks:
            executed = staging / "executed" / nb.name
            notebook_to_html(executed, staging / f"{nb.stem}.html")
            notebook_to_html(executed, staging / "brief" / f"{nb.stem}.html", no_input=True)
        summary = read_summary(staging)
        links = [(r.title, f"{r.name}.html") for r in runs]
        write_text(staging / "index.html", index_page(summary, links))
        write_text(staging / "brief" / "index.html", index_page(summary, links, brief_dir=None))
        write_text(staging / METHOD_PAGE, method_page())
        _swap_in(staging, final)
        shutil.rmtree(out_dir / f"{iso}.failed", ignore_errors=True)  # this week now has a complete report
        # the plans and verdicts of the week enter the journal only with their complete report
        decision_journal.apply_staged(final, journal_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if location is not None:
            drop_snapshot(location)  # the shop's rows never outlive the run, nor sit in a report folder
    log(f"Report: {final / 'index.html'}")
    return final


def snapshot_location(data: str, out_dir: Path, iso: IsoWeek, run_id: str) -> SnapshotLocation | None:
    """Where this run stores its snapshot, or None when a database names no schema for it.

    A folder: a DuckDB file beside the reports, ``<out>/.<week>.snapshot-<id>.duckdb``, removed when
    the run ends (never inside the report folder that is swapped in). A database: tables prefixed
    ``pb_run_<id>_`` in the schema ``PLAYBOOK_SNAPSHOT_SCHEMA`` (temporary tables do not outlive
    the runner's connection, and each notebook has its own), dropped when the run ends.
    """
    if not is_url(data):
        return SnapshotLocation(str(out_dir / f".{iso}.snapshot-{run_id}.duckdb"))
    schema = os.environ.get(SNAPSHOT_SCHEMA_ENV, "")
    return SnapshotLocation(data, schema, f"pb_run_{run_id}_") if schema else None


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbook.run.weekly", description=__doc__.splitlines()[0])
    parser.add_argument("--week", default="", help="ISO week such as 2026-W47 (default: latest complete week)")
    parser.add_argument("--data", default="",
                        help="folder of CSV/Parquet files or database URL (password from PLAYBOOK_DB_PASSWORD)")
    parser.add_argument("--out", default="", help="reports folder (default: reports/)")
    parser.add_argument("--config", default="", help="YAML configuration (default: playbook/config/playbook.yaml)")
    parser.add_argument("--journal", default="", help="decision journal folder (default: journal/)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per notebook cell")
    args = parser.parse_args(argv)
    try:
        run_week(args.week or None, args.data or None, args.out or None, args.config or None,
                 args.journal or None, timeout=args.timeout)
    except ContractError as exc:
        print(f"\nThe data break the contract; nothing was written.\n{exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"\nThe configuration is broken; nothing was written.\n{exc}", file=sys.stderr)
        return 2
    except (SourceError, ValueError) as exc:
        print(f"\nCannot run: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"\nThe weekly run failed; the previous report of the week is untouched.\n{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
