"""The benchmark: how long and how much memory the weekly steps take as the shop grows.

``python -m playbook.dev.bench [--scales 1,5] [--format csv|parquet|csv,parquet] [--out .bench]
[--repeat 2] [--profile]`` (``make bench`` runs the defaults, a few minutes; ``--scales 1,5,20``
is the long run). See ``docs/benchmarks.md``.

Data: scale ``s`` is ``s`` copies of the 26-week sample shop (``generate_shop()``, default
seed). Copy 1 keeps its ids (scale 1 is the sample shop itself); copy ``i > 1`` suffixes every
order, line, return, contact and customer id with ``-x<i>`` (so orders, lines, returns,
contacts, customers and the assignments' customers are ``s`` times as many), while dates,
actions and the experiments stay identical, so the experiments still exist and are still due.
Sessions and marketing spend keep their rows and are multiplied by ``s``. Each scaled shop is
written once per format under ``<out>/shop-s<scale>-<format>-<hash>/`` and reused: the hash
covers the generator (``sample_data.py``), the contract it writes (``contract.py``) and the
version of the scaling below, so a changed generator builds new files.

Measurement: every sample is a fresh ``python -m playbook.dev.bench --child`` process, so no
stage inherits memory (or a warm DuckDB buffer) from another. A child imports the playbook,
runs ``open_dataset`` (load + validate + cache), then one stage on ``as_of(week)``:
``compute_metrics``, ``analyse_weak_cohorts`` or ``compare_due``. It times each step with
``time.perf_counter`` (imports and process start-up excluded) and reads its own peak resident
memory (``VmHWM`` of ``/proc/self/status`` on Linux, else ``ru_maxrss``) after the imports,
after the open and at the end.
So the seconds of a stage are its own (the open before it is timed apart), the RSS of
``open`` is the high-water mark right after it, and the RSS of a later stage is the peak of
the process that opened the data and ran that stage (open + stage: memory is cumulative,
which is what a notebook kernel lives with). The open is timed in every child, so its best
and median are over ``3 x repeat`` samples, the other stages' over ``repeat``. Peak RSS is
the largest over the samples.

(Not ``getrusage(RUSAGE_CHILDREN)`` in the parent: that is the maximum over every child ever
waited for, so after the first big child every later reading would repeat it. Not the child's
``ru_maxrss`` either: Linux carries the parent's high-water mark over fork and exec. The parent
imports no data library and builds the shops in a child of their own, so it stays small.)

The cycle (``--cycle-repeat``, default 1; ``--cycle-only`` skips the stages): the whole weekly run
of ``data_samples/`` (``python -m playbook.run.weekly``) in a fresh process, beside its floor, a fresh
process that executes and exports the five notebooks reduced to their imports exactly as the
runner does (``run_floor``). Both are wall seconds timed by the parent around the process, floor
and cycle alternated; their ratio says what the data work of a weekly run adds to the fixed cost
of starting five kernels, importing the stack and exporting ten pages.

Ten million lines (``--large [1000000,10000000]``, ``make bench-large``, issue 12): Parquet shops of that
many order lines (``playbook.dev.large_shop``, built block by block), and on each, in fresh processes,
the whole weekly cycle (``measure_cycle``), the steps (``measure``) and the heaviest aggregation of the
cycle on the engine beside plain pandas (``measure_aggregation``); ``<out>/large-results.json``.

PostgreSQL beside DuckDB (``--postgres [600000]``, issue 12): a Parquet shop of that many order lines,
copied into a fresh database of ``PLAYBOOK_TEST_POSTGRES_URL``'s server (else a throwaway one from
``tests/pg_server.py``) with its primary keys and the recommended indexes (``load_postgres``), and the
whole weekly run on each engine (``measure_postgres``), per notebook and in total, with the ratio against
the 1.5x target; ``<out>/postgres-results.json``.

Output: a plain table on stdout and ``<out>/results.json`` (written atomically) with the
machine, the versions, the date, every sample and the memory-versus-data ratios between
scales.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playbook.core.paths import PACKAGE_DIR, REPO_ROOT, resolve

STAGES = ("open", "metrics", "cohorts", "compare")
CHILD_STAGES = ("metrics", "cohorts", "compare")  # each child also opens (and times) the dataset
FORMATS = ("csv", "parquet")
DEFAULT_SCALES = (1, 5)
# Two samples per stage keep the default run (scales 1 and 5, 12 processes) within about five
# minutes on a shared two-core machine; the open gets 3 x repeat samples anyway.
DEFAULT_REPEAT = 2
DEFAULT_WEEK = "2026-W47"  # the sample shop's last complete week (both W46 experiments are due)
SCALER_VERSION = "1"  # bump when _scale_tables changes: the cached shops are rebuilt
CHILD_TIMEOUT_S = 3600
_ID_COLUMNS = {  # table -> id columns suffixed per copy
    "orders": ("order_id", "customer_id"),
    "order_lines": ("line_id", "order_id"),
    "returns": ("return_id", "line_id"),
    "contacts": ("contact_id", "order_id"),
    "assignments": ("customer_id",),
}
_TIME_ORDER = {"orders": "order_ts", "returns": "requested_ts", "contacts": "contact_ts", "assignments": "assigned_ts"}


# --- the scaled shops ---------------------------------------------------------------------

def data_hash() -> str:
    """Hash of what the scaled files are made from: the generator, the contract, the scaling."""
    h = hashlib.sha256(SCALER_VERSION.encode())
    for path in ("dev/sample_data.py", "data/contract.py"):
        h.update((PACKAGE_DIR / path).read_bytes())
    return h.hexdigest()[:12]


def shop_folder(out: Path, scale: int, fmt: str) -> Path:
    return out / f"shop-s{scale}-{fmt}-{data_hash()}"


def _scale_tables(tables: dict, scale: int) -> dict:
    """``scale`` copies of the shop, ids suffixed per copy; dates and experiments unchanged."""
    import numpy as np
    import pandas as pd

    out = {}
    for name, df in tables.items():
        if name in _ID_COLUMNS:
            copies = []
            for i in range(scale):
                c = df.copy()
                if i:
                    for col in _ID_COLUMNS[name]:
                        c[col] = c[col].where(c[col].isna(), c[col] + f"-x{i + 1}")
                copies.append(c)
            df = pd.concat(copies, ignore_index=True)
            if name in _TIME_ORDER and scale > 1:  # an export lists rows in time order, copies interleaved
                df = df.sort_values(_TIME_ORDER[name], kind="stable", ignore_index=True)
        elif name == "sessions":
            df = df.assign(sessions=df["sessions"] * scale)
        elif name == "marketing_spend":
            df = df.assign(spend=np.round(df["spend"] * scale, 2))
        out[name] = df
    if scale > 1:  # lines follow their orders
        position = pd.Series(np.arange(len(out["orders"])), index=out["orders"]["order_id"])
        lines = out["order_lines"]
        order = np.argsort(position.reindex(lines["order_id"]).to_numpy(), kind="stable")
        out["order_lines"] = lines.iloc[order].reset_index(drop=True)
    return out


def _write_parquet(tables: dict, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from playbook.data.contract import TABLES

    for name, df in tables.items():
        table = pa.Table.from_pandas(df, preserve_index=False)
        for col in TABLES[name].columns:  # dates as dates, as a warehouse export would have them
            if col.kind == "date":
                i = table.schema.get_field_index(col.name)
                table = table.set_column(i, col.name, table.column(i).cast(pa.timestamp("s")).cast(pa.date32()))
        pq.write_table(table, folder / f"{name}.parquet")


def build_shop(folder: Path, scale: int, fmt: str) -> tuple[Path, dict]:
    """The scaled shop in ``fmt`` in ``folder``, built unless already there; and its manifest."""
    out = folder.parent
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        return folder, json.loads(manifest_path.read_text())
    from playbook.core.atomic import write_json
    from playbook.dev.sample_data import DEFAULT_SEED, generate_shop, write_shop

    t0 = time.perf_counter()
    tables = _scale_tables(generate_shop(DEFAULT_SEED), scale)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=out))
    try:
        if fmt == "csv":
            write_shop(tables, tmp)
        else:
            _write_parquet(tables, tmp)
        manifest = {
            "scale": scale, "format": fmt, "hash": data_hash(), "seed": DEFAULT_SEED,
            "rows": {name: int(len(df)) for name, df in tables.items()},
            "bytes": sum(p.stat().st_size for p in tmp.iterdir()),
            "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - t0, 1),
        }
        write_json(tmp / "manifest.json", manifest)  # last: a folder without it is incomplete
        os.chmod(tmp, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder, manifest


# --- one measurement (the child process) ------------------------------------------------------

def _ru_maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def _maxrss_mib() -> float:
    """This process's peak resident memory so far, in MiB.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of the process's own
    address space, which starts afresh at ``exec``. ``ru_maxrss`` does not: Linux carries the
    parent's high-water mark over the fork and the exec, so a child started by a parent of
    450 MiB reports at least 450 MiB (measured here before this was fixed). Elsewhere,
    ``ru_maxrss`` (the parent is kept small, so the carried-over value stays below the child's).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _ru_maxrss_mib()


def run_child(stage: str, data: str, week: str, result: str, profile: str | None) -> None:
    """Open the dataset, run one stage, write timings and RSS marks to ``result`` (JSON)."""
    t0 = time.perf_counter()
    from playbook.config.loader import load_config
    from playbook.data.dataset import open_dataset
    from playbook.metrics.dictionary import compute_metrics
    from playbook.steps.cohorts import analyse_weak_cohorts
    from playbook.steps.experiments import compare_due

    config = load_config()
    out = {"stage": stage, "import_seconds": time.perf_counter() - t0, "rss_import_mib": _maxrss_mib()}

    def run(what):
        if not profile:
            return what()
        import cProfile
        import pstats

        prof = cProfile.Profile()
        value = prof.runcall(what)
        with open(f"{profile}.{'open' if what is do_open else stage}.txt", "w") as fh:
            stats = pstats.Stats(prof, stream=fh).strip_dirs().sort_stats("cumulative")
            stats.print_stats(45)
            fh.write("\n--- by own time ---\n")
            stats.sort_stats("tottime").print_stats(25)
        return value

    def do_open():
        return open_dataset(data)

    t = time.perf_counter()
    dataset = run(do_open)
    out["open_seconds"] = time.perf_counter() - t
    out["rss_open_mib"] = _maxrss_mib()

    def do_stage():
        snap = dataset.as_of(week)
        if stage == "metrics":
            r = compute_metrics(snap, config.metrics)
            return f"{len(r.frame)} metric rows, {len(r.reason_mix)} reason-mix rows"
        if stage == "cohorts":
            a = analyse_weak_cohorts(snap, config.metrics)
            return f"weak cohort: {a.weak.label if a.weak else 'none'} ({len(a.table)} slices)"
        comparisons = compare_due(snap, config)
        return "compared: " + (", ".join(c.experiment_id for c in comparisons) or "none")

    t = time.perf_counter()
    out["check"] = run(do_stage)
    out["stage_seconds"] = time.perf_counter() - t
    out["rss_end_mib"] = _maxrss_mib()
    out["ru_maxrss_end_mib"] = _ru_maxrss_mib()  # for the record: includes the parent's carried-over mark
    Path(result).write_text(json.dumps(out))


def build_in_child(out: Path, scale: int, fmt: str, log=print) -> tuple[Path, dict]:
    """``build_shop`` in a child process: the parent never holds the generated tables (their
    memory would stay in the parent, and on some systems be carried over to the children)."""
    folder = shop_folder(out, scale, fmt)  # named once: the parent keeps this folder for the whole run
    if not (folder / "manifest.json").is_file():
        log(f"building {folder.name} (scale {scale}, {fmt}) ...")
        cmd = [sys.executable, "-m", "playbook.dev.bench", "--build", str(scale), "--format", fmt,
               "--build-into", str(folder)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"building {folder.name} failed with code {proc.returncode}:\n{tail}")
        manifest = json.loads((folder / "manifest.json").read_text())
        log(f"  built in {manifest['build_seconds']} s: {manifest['rows']['order_lines']:,} order lines, "
            f"{manifest['bytes'] / 2**20:.1f} MiB")
    return folder, json.loads((folder / "manifest.json").read_text())


def measure(stage: str, folder: Path, week: str, profile: str | None = None) -> dict:
    """One fresh process running ``stage``; its report."""
    with tempfile.TemporaryDirectory(prefix="playbook-bench-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "playbook.dev.bench", "--child", stage, "--data", str(folder),
               "--week", week, "--result", str(result)]
        if profile:
            cmd += ["--profile-to", profile]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0 or not result.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"benchmark child ({stage} on {folder.name}) failed with code {proc.returncode}:\n{tail}")
        return json.loads(result.read_text())


# --- the run --------------------------------------------------------------------------------

# --- the weekly cycle and its floor ------------------------------------------------------------

def floor_notebook(path: Path) -> Any:  # an nbformat.NotebookNode (nbformat is imported where it is used)
    """``path`` with its code reduced to its imports: what a notebook costs before it touches data.

    The markdown cells and the parameters cell stay (the export renders the same narrative); each
    other code cell keeps only its ``import`` and ``from ... import`` lines.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            lines = cell.source.splitlines()
            cell.source = "\n".join(x for x in lines if x.startswith(("import ", "from "))) or "pass"
    return nb


def run_floor(folder: Path, week: str) -> None:
    """The floor of the weekly run, in this (fresh) process: the five floor notebooks executed and
    exported exactly as ``weekly.run_week`` does, with its imports, its kernel and its parameters."""
    import nbformat

    from playbook.config.loader import load_config
    from playbook.core.atomic import write_text
    from playbook.report.pages import Step, brief_page, index_page, notebook_to_html
    from playbook.run import weekly

    weekly.check_kernel()
    run_dir = folder / "report"
    (run_dir / "executed").mkdir(parents=True, exist_ok=True)
    parameters = {"week": week, "data": str(REPO_ROOT / "data_samples"), "config": "", "run_dir": str(run_dir),
                  "journal": str(folder / "journal"), "snapshot": ""}
    links = []
    for nb_path in weekly.cycle_notebooks():
        floor = folder / nb_path.name
        nbformat.write(floor_notebook(nb_path), str(floor))
        weekly.check_parameters(floor, parameters)
        executed = run_dir / "executed" / nb_path.name
        weekly._execute(floor, executed, parameters, 900)
        links.append(Step(nb_path.stem, weekly.notebook_title(floor)))
    for nb_path in weekly.cycle_notebooks():
        executed = run_dir / "executed" / nb_path.name
        step = Step(nb_path.stem, weekly.notebook_title(executed))
        notebook_to_html(executed, run_dir / f"{nb_path.stem}.html", step, links, week)
        notebook_to_html(executed, run_dir / "brief" / f"{nb_path.stem}.html", step, links, week, brief=True)
    write_text(run_dir / "index.html", index_page({"week": week}, links, load_config()))
    write_text(run_dir / "brief" / "index.html", brief_page({"week": week}, links, load_config()))


def _child_env() -> dict:
    """The environment of a cycle process: this checkout's package first, in the runner and in its
    kernels (a kernel starts in ``notebooks/`` and would otherwise import the installed package)."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT) + (os.pathsep + path if path else "")}


#: Runs ``argv[1:]`` and prints the largest resident memory of any process of its tree: a process's
#: ``RUSAGE_CHILDREN`` high-water mark covers its waited-for descendants (the runner and its kernels).
_PEAK_WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def measure_cycle(kind: str, week: str, data: Path | str | None = None, env: dict | None = None) -> dict:
    """Wall seconds and peak memory of one fresh process: the weekly run (``cycle``) of ``data``
    (default ``data_samples/``) or its ``floor``.

    Timed from the parent around the whole process (start-up, imports, kernels, exports included),
    in a temporary folder for the reports and the journal (the repository's are never touched).
    Peak memory is the largest resident set of any one process of the run (the runner or one of its
    kernels; the kernels run one after the other), read by a small wrapper process.
    """
    data = data or REPO_ROOT / "data_samples"
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        if kind == "cycle":
            cmd = [sys.executable, "-m", "playbook.run.weekly", "--week", week, "--data", str(data),
                   "--out", str(Path(tmp) / "reports"), "--journal", str(Path(tmp) / "journal")]
        else:
            cmd = [sys.executable, "-m", "playbook.dev.bench", "--floor-into", tmp, "--week", week]
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *cmd], cwd=str(REPO_ROOT),
                              env={**_child_env(), **(env or {})}, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark {kind} failed with code {proc.returncode}:\n{proc.stderr[-2000:]}")
        peak_kib = int(proc.stderr.strip().splitlines()[-1])
        pages = len(list(Path(tmp).rglob("*.html")))
    return {"kind": kind, "seconds": round(seconds, 2), "peak_rss_mib": round(peak_kib / 1024), "html_pages": pages,
            "log": proc.stdout}  # the runner's log: its per-notebook seconds (notebook_seconds)


def summarise_cycle(samples: list[dict]) -> dict:
    """Best and median seconds and peak memory per kind (``floor``, ``cycle s1``, ``cycle s20``...),
    each cycle's ratio to the floor, and its data cost (cycle - floor) against the first scale's."""
    kinds = list(dict.fromkeys(s["kind"] for s in samples))
    out: dict[str, Any] = {}
    for k in kinds:
        secs = sorted(s["seconds"] for s in samples if s["kind"] == k)
        out[k] = {"best": secs[0], "median": round(statistics.median(secs), 2), "n": len(secs),
                  "peak_rss_mib": max(s.get("peak_rss_mib", 0) for s in samples if s["kind"] == k)}
    cycles = [k for k in kinds if k.startswith("cycle")]
    if "floor" in out and cycles:
        floor = out["floor"]
        base_cost = out[cycles[0]]["best"] - floor["best"]
        for k in cycles:
            out[k]["ratio_best"] = round(out[k]["best"] / floor["best"], 2)
            out[k]["ratio_median"] = round(out[k]["median"] / floor["median"], 2)
            out[k]["data_cost_s"] = round(out[k]["best"] - floor["best"], 1)
            out[k]["data_cost_vs_first"] = round(out[k]["data_cost_s"] / base_cost, 2) if base_cost > 0 else None
    return out


def format_cycle(c: dict) -> str:
    lines = ["measurement | best s | median s | samples | peak RSS MiB | / floor (best, median) | data cost s | x first"]
    for k, v in c.items():
        ratio = f"{v['ratio_best']:.2f}, {v['ratio_median']:.2f}" if "ratio_best" in v else ""
        cost = f"{v['data_cost_s']:.1f}" if "data_cost_s" in v else ""
        times = f"{v['data_cost_vs_first']:.2f}" if v.get("data_cost_vs_first") is not None else ""
        lines.append(f"{k} | {v['best']:.1f} | {v['median']:.1f} | {v['n']} | {v['peak_rss_mib']} | {ratio} | {cost} | {times}")
    lines.append("targets: cycle s1 / floor <= 1.0 (issue 22: the notebooks along their graph; 1.5 before); "
                 "data cost at s20 <= 3 x s1; peak RSS < 2048 MiB")
    return "\n".join(lines)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def code_version() -> dict:
    """The commit measured, and the playbook files that differed from it (read-only git calls)."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--", "playbook") or ""
    return {"commit": (git("rev-parse", "--short", "HEAD") or "").strip() or None,
            "uncommitted": [line[3:] for line in status.splitlines() if len(line) > 3]}


def machine() -> dict:
    """The machine and the versions (read from the installed metadata: the parent imports no
    data library, so that it stays small while it starts the children)."""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        total = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "nproc": nproc, "total_memory_gib": round(total, 1) if total else None, "cpu": cpu,
        "platform": platform.platform(), "python": platform.python_version(), "duckdb": _version("duckdb"),
        "ibis": _version("ibis-framework"), "pandas": _version("pandas"), "pyarrow": _version("pyarrow"),
        "numpy": _version("numpy"), "scipy": _version("scipy"),
    }


def summarise(samples: dict, manifests: dict) -> list[dict]:
    """One row per (format, scale, stage) with best/median seconds and peak RSS."""
    rows = []
    for (fmt, scale), runs in samples.items():
        lines = manifests[(fmt, scale)]["rows"]["order_lines"]
        base = max(r["rss_import_mib"] for r in runs)
        for stage in STAGES:
            if stage == "open":
                secs = [r["open_seconds"] for r in runs]
                rss = [r["rss_open_mib"] for r in runs]
                check = f"{len(runs)} opens"
            else:
                mine = [r for r in runs if r["stage"] == stage]
                secs = [r["stage_seconds"] for r in mine]
                rss = [r["rss_end_mib"] for r in mine]
                check = mine[-1]["check"]
            rows.append({
                "format": fmt, "scale": scale, "stage": stage, "order_lines": lines, "n": len(secs),
                "seconds_best": round(min(secs), 3), "seconds_median": round(statistics.median(secs), 3),
                "seconds": [round(s, 3) for s in secs],
                "peak_rss_mib": round(max(rss), 1), "rss_after_imports_mib": round(base, 1),
                "cumulative": stage != "open", "check": check,
            })
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Per stage and format: data, time and memory of each scale relative to the smallest one."""
    out = []
    for fmt in sorted({r["format"] for r in rows}):
        for stage in STAGES:
            rs = sorted((r for r in rows if r["format"] == fmt and r["stage"] == stage), key=lambda r: r["scale"])
            if len(rs) < 2:
                continue
            a = rs[0]
            for b in rs[1:]:
                above_a = a["peak_rss_mib"] - a["rss_after_imports_mib"]
                above_b = b["peak_rss_mib"] - b["rss_after_imports_mib"]
                out.append({
                    "format": fmt, "stage": stage, "from_scale": a["scale"], "to_scale": b["scale"],
                    "data_ratio": round(b["order_lines"] / a["order_lines"], 2),
                    "time_ratio": round(b["seconds_median"] / a["seconds_median"], 2) if a["seconds_median"] else None,
                    "peak_rss_ratio": round(b["peak_rss_mib"] / a["peak_rss_mib"], 2),
                    "rss_above_imports_ratio": round(above_b / above_a, 2) if above_a > 0 else None,
                    # the marginal memory: MiB of peak RSS per 100,000 more order lines
                    "rss_mib_per_100k_lines": round((b["peak_rss_mib"] - a["peak_rss_mib"])
                                                    / ((b["order_lines"] - a["order_lines"]) / 1e5), 1),
                })
    return out


def format_table(rows: list[dict]) -> str:
    head = ("format", "scale", "stage", "order_lines", "best s", "median s", "peak RSS MiB", "check")
    body = [(r["format"], str(r["scale"]), r["stage"] + ("" if r["stage"] == "open" else " (+open)"),
             f"{r['order_lines']:,}", f"{r['seconds_best']:.2f}", f"{r['seconds_median']:.2f}",
             f"{r['peak_rss_mib']:.0f}", r["check"]) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    right = {1, 3, 4, 5, 6}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(b) for b in body)])


def format_ratios(rs: list[dict]) -> str:
    return "\n".join(
        f"{r['format']} {r['stage']:<8} scale {r['from_scale']} -> {r['to_scale']}: data x{r['data_ratio']:g}, "
        f"median time x{r['time_ratio']:g}, peak RSS x{r['peak_rss_ratio']:g} "
        f"(above the imports: x{r['rss_above_imports_ratio']:g}; {r['rss_mib_per_100k_lines']:g} MiB "
        f"per 100k more order lines)"
        for r in rs
    )


# --- ten million lines (make bench-large) -----------------------------------------------------------
#
# ``--large 1000000,10000000``: seeded shops of that many order lines as Parquet (playbook.dev.large_shop,
# built block by block in a child), then on each, every measurement in a fresh process: the whole weekly
# cycle (``measure_cycle``), the steps one by one (``measure``: open, metrics, cohorts, compare), and the
# heaviest aggregation of the cycle (order lines x orders x returns by week x category x reason) on the
# engine and in plain pandas. See docs/benchmarks.md, "Ten million order lines".

LARGE_SIZES = (1_000_000, 10_000_000)
LARGE_VERSION = "1"  # bump when the large measurements change meaning
#: issue 12's targets on this machine
TARGET_CYCLE_SECONDS = 60.0
TARGET_CYCLE_PEAK_MIB = 2048.0
TARGET_SPEED_RATIO = 4.0
TARGET_MEMORY_RATIO = 5.0
TARGET_TIME_GROWTH = 3.0  # 10x more lines cost at most 3x the time
_NOTEBOOK_OK = re.compile(r"^\[(\d+)/(\d+)\] (\S+) ok \(([\d.]+) s\)$", re.MULTILINE)


def size_label(order_lines: int) -> str:
    """``1M``, ``10M``, ``250k``: the nominal size in a folder name or a table."""
    if order_lines >= 1_000_000 and order_lines % 1_000_000 == 0:
        return f"{order_lines // 1_000_000}M"
    if order_lines >= 1_000 and order_lines % 1_000 == 0:
        return f"{order_lines // 1_000}k"
    return str(order_lines)


def large_folder(out: Path, order_lines: int) -> Path:
    """Where the shop of ``order_lines`` lives: named by the hash of the generator, the block writer
    and the contract, so a changed generator builds new files (read as bytes: the parent imports
    no data library)."""
    h = hashlib.sha256(LARGE_VERSION.encode())
    for name in ("dev/sample_data.py", "dev/large_shop.py", "data/contract.py"):
        h.update((PACKAGE_DIR / name).read_bytes())
    return out / f"large-{size_label(order_lines)}-{h.hexdigest()[:12]}"


def build_large_in_child(out: Path, order_lines: int, log=print) -> tuple[Path, dict]:
    """The large shop, built in a child process unless its ``manifest.json`` is there; and the manifest."""
    folder = large_folder(out, order_lines)
    if not (folder / "manifest.json").is_file():
        log(f"building {folder.name} ({order_lines:,} order lines, block by block) ...")
        cmd = [sys.executable, "-m", "playbook.dev.large_shop", "--lines", str(order_lines), "--into", str(folder)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"building {folder.name} failed with code {proc.returncode}:\n{tail}")
        log("  " + proc.stdout.strip().splitlines()[-1])
    return folder, json.loads((folder / "manifest.json").read_text())


def notebook_seconds(log: str) -> dict[str, float]:
    """Each notebook's seconds as the weekly runner logs them (``[2/5] 02_weak_cohort ok (8.1 s)``)."""
    return {m.group(3): float(m.group(4)) for m in _NOTEBOOK_OK.finditer(log)}


def _aggregate_engine(data: Path) -> Any:  # a pandas DataFrame (pandas is imported in the child only)
    """The heaviest aggregation of the cycle on the engine: the playbook's DuckDB connection (its
    limits included) scans the Parquet files in place; only the grouped rows reach pandas."""
    from playbook.data.engines.duckdb import connect_duckdb

    con = connect_duckdb()
    lines = con.read_parquet(data / "order_lines.parquet").select("line_id", "order_id", "category", "quantity")
    o = con.read_parquet(data / "orders.parquet")
    orders = o.select("order_id", week=o.order_ts.truncate("W").date())
    r = con.read_parquet(data / "returns.parquet")
    returns = r.select(r_line_id=r.line_id, reason=r.reason_code, returned=r.quantity)
    j = lines.join(orders, "order_id").left_join(returns, lines.line_id == returns.r_line_id)
    g = j.group_by(["week", "category", "reason"]).agg(lines=j.count(), units=j.quantity.sum(),
                                                       returned_units=j.returned.sum())
    return g.to_pandas()


def _aggregate_pandas(data: Path) -> Any:
    """The same aggregation in plain pandas: the three files read (only the columns it needs, which
    is kind to pandas), merged on their keys, grouped."""
    import pandas as pd

    lines = pd.read_parquet(data / "order_lines.parquet", columns=["line_id", "order_id", "category", "quantity"])
    orders = pd.read_parquet(data / "orders.parquet", columns=["order_id", "order_ts"])
    returns = pd.read_parquet(data / "returns.parquet", columns=["line_id", "reason_code", "quantity"])
    returns = returns.rename(columns={"reason_code": "reason", "quantity": "returned"})
    ts = orders.pop("order_ts")
    orders["week"] = (ts.dt.normalize() - pd.to_timedelta(ts.dt.day_of_week, unit="D")).dt.date  # ISO Monday
    m = lines.merge(orders, on="order_id").merge(returns, on="line_id", how="left")
    return (m.groupby(["week", "category", "reason"], dropna=False)
            .agg(lines=("line_id", "size"), units=("quantity", "sum"), returned_units=("returned", "sum"))
            .reset_index())


def _digest(df: Any) -> str:
    """The grouped result in one canonical text (sorted, no reason = '', sums as integers), hashed:
    the engine and pandas must agree to the unit."""
    import pandas as pd

    out = pd.DataFrame({
        "week": pd.to_datetime(df["week"]).dt.strftime("%Y-%m-%d"),
        "category": df["category"].astype(str),
        "reason": df["reason"].astype(object).where(df["reason"].notna(), "").astype(str),
        "lines": df["lines"].astype("int64"),
        "units": df["units"].astype("int64"),
        "returned_units": df["returned_units"].fillna(0).astype("int64"),
    }).sort_values(["week", "category", "reason"], ignore_index=True)
    return hashlib.sha256(out.to_csv(index=False).encode()).hexdigest()[:16]


def run_aggregation(kind: str, data: str, result: str) -> None:
    """In this (fresh) process: the heaviest aggregation on ``engine`` or in ``pandas``; seconds (imports
    excluded), the process's peak RSS and the result's digest to ``result`` (JSON)."""
    t0 = time.perf_counter()
    import pandas  # noqa: F401  (both need it: the engine hands its grouped rows to pandas)

    if kind == "engine":
        import ibis  # noqa: F401

        import playbook.data.dataset  # noqa: F401
    out = {"kind": kind, "import_seconds": time.perf_counter() - t0, "rss_import_mib": _maxrss_mib()}
    t = time.perf_counter()
    df = (_aggregate_engine if kind == "engine" else _aggregate_pandas)(Path(data))
    out["seconds"] = time.perf_counter() - t
    out["peak_rss_mib"] = _maxrss_mib()
    out.update(groups=len(df), lines=int(df["lines"].sum()), returned_units=int(df["returned_units"].fillna(0).sum()),
               digest=_digest(df))
    Path(result).write_text(json.dumps(out))


def measure_aggregation(kind: str, folder: Path) -> dict:
    """One fresh process running the aggregation ``kind`` (``engine`` or ``pandas``) on ``folder``."""
    with tempfile.TemporaryDirectory(prefix="playbook-bench-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "playbook.dev.bench", "--aggregate", kind, "--data", str(folder),
               "--result", str(result)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0 or not result.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"aggregation {kind} on {folder.name} failed with code {proc.returncode}:\n{tail}")
        return json.loads(result.read_text())


def measure_large(folder: Path, manifest: dict, week: str, stages: bool, log=print) -> dict:
    """Every measurement of one large shop, each in a fresh process: the cycle, the steps, the aggregations."""
    lines = manifest["rows"]["order_lines"]
    name = size_label(manifest["nominal_order_lines"])
    out: dict[str, Any] = {"size": name, "order_lines": lines, "folder": folder.name,
                           "load_average_1m_before": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    cycle = measure_cycle("cycle", week, folder)
    out["cycle"] = {"seconds": cycle["seconds"], "peak_rss_mib": cycle["peak_rss_mib"], "html_pages": cycle["html_pages"],
                    "notebooks": notebook_seconds(cycle["log"])}
    out["cycle"]["notebooks_summed_seconds"] = round(sum(out["cycle"]["notebooks"].values()), 2)
    log(f"{name} cycle: {cycle['seconds']:.1f} s, peak RSS {cycle['peak_rss_mib']} MiB, notebooks "
        + ", ".join(f"{k} {v:.1f} s" for k, v in out["cycle"]["notebooks"].items()))
    out["stages"] = []
    for stage in (CHILD_STAGES if stages else ()):
        r = measure(stage, folder, week)
        out["stages"].append(r)
        log(f"{name} {stage:<8}: open {r['open_seconds']:.1f} s (peak RSS {r['rss_open_mib']:.0f} MiB), "
            f"stage {r['stage_seconds']:.1f} s (peak RSS {r['rss_end_mib']:.0f} MiB) ({r['check']})")
    for kind in ("engine", "pandas"):
        a = measure_aggregation(kind, folder)
        a["rows_per_second"] = round(lines / a["seconds"]) if a["seconds"] > 0 else None
        out[f"aggregation_{kind}"] = a
        log(f"{name} aggregation {kind}: {a['seconds']:.2f} s, {a['rows_per_second']:,} lines/s, "
            f"peak RSS {a['peak_rss_mib']:.0f} MiB, digest {a['digest']}")
    e, p = out["aggregation_engine"], out["aggregation_pandas"]
    out["aggregation"] = {
        "same_result": e["digest"] == p["digest"],
        "speed_ratio": round(p["seconds"] / e["seconds"], 2) if e["seconds"] > 0 else None,
        "memory_ratio": round(p["peak_rss_mib"] / e["peak_rss_mib"], 2),
        "memory_ratio_above_imports": round((p["peak_rss_mib"] - p["rss_import_mib"])
                                            / max(e["peak_rss_mib"] - e["rss_import_mib"], 1.0), 2),
    }
    out["load_average_1m_after"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return out


def large_targets(results: list[dict]) -> list[dict]:
    """Issue 12's targets, each with its measured value and whether it holds (the largest shop; growth
    from the smallest to the largest)."""
    if not results:
        return []
    big, small = results[-1], results[0]
    c, agg = big["cycle"], big["aggregation"]
    rows = [
        {"target": f"{big['size']}: whole cycle < {TARGET_CYCLE_SECONDS:g} s wall", "value": c["seconds"],
         "holds": c["seconds"] < TARGET_CYCLE_SECONDS},
        {"target": f"{big['size']}: whole cycle < {TARGET_CYCLE_PEAK_MIB:g} MiB peak RSS", "value": c["peak_rss_mib"],
         "holds": c["peak_rss_mib"] < TARGET_CYCLE_PEAK_MIB},
        {"target": f"{big['size']}: aggregation >= {TARGET_SPEED_RATIO:g}x faster than pandas", "value": agg["speed_ratio"],
         "holds": agg["speed_ratio"] is not None and agg["speed_ratio"] >= TARGET_SPEED_RATIO},
        {"target": f"{big['size']}: aggregation >= {TARGET_MEMORY_RATIO:g}x less peak RSS than pandas",
         "value": agg["memory_ratio"], "holds": agg["memory_ratio"] >= TARGET_MEMORY_RATIO},
    ]
    if big is not small:
        growth = round(c["seconds"] / small["cycle"]["seconds"], 2)
        data = round(big["order_lines"] / small["order_lines"], 1)
        rows.append({"target": f"{small['size']} -> {big['size']} (x{data:g} lines): cycle time <= "
                               f"{TARGET_TIME_GROWTH:g}x", "value": growth, "holds": growth <= TARGET_TIME_GROWTH})
    return rows


def format_large(results: list[dict], targets: list[dict]) -> str:
    """The tables of ``make bench-large``: per shop, the stages and the total; the aggregation beside pandas."""
    out = ["shop | order lines | stage | wall s | peak RSS MiB | lines/s"]
    for r in results:
        n = f"{r['order_lines']:,}"
        c = r["cycle"]
        out.append(f"{r['size']} | {n} | cycle: the notebooks' own time, summed (they run side by side) | "
                   f"{c['notebooks_summed_seconds']:.1f} | | ")
        out += [f"{r['size']} | {n} | cycle: {k} | {v:.1f} | | " for k, v in c["notebooks"].items()]
        out.append(f"{r['size']} | {n} | **whole weekly cycle** | {c['seconds']:.1f} | {c['peak_rss_mib']} | ")
        for s in r["stages"]:
            if s["stage"] == CHILD_STAGES[0]:
                out.append(f"{r['size']} | {n} | step: open (load + validate + cache) | {s['open_seconds']:.1f} | "
                           f"{s['rss_open_mib']:.0f} | ")
            out.append(f"{r['size']} | {n} | step: {s['stage']} (+ open) | {s['stage_seconds']:.1f} | "
                       f"{s['rss_end_mib']:.0f} | ")
        for kind in ("engine", "pandas"):
            a = r[f"aggregation_{kind}"]
            out.append(f"{r['size']} | {n} | aggregation, {kind} | {a['seconds']:.2f} | {a['peak_rss_mib']:.0f} | "
                       f"{a['rows_per_second']:,}")
    out.append("")
    out.append("shop | engine s | pandas s | speed ratio | engine MiB | pandas MiB | memory ratio (above imports) | same result")
    for r in results:
        e, p, a = r["aggregation_engine"], r["aggregation_pandas"], r["aggregation"]
        out.append(f"{r['size']} | {e['seconds']:.2f} | {p['seconds']:.2f} | {a['speed_ratio']} | {e['peak_rss_mib']:.0f} | "
                   f"{p['peak_rss_mib']:.0f} | {a['memory_ratio']} ({a['memory_ratio_above_imports']}) | "
                   f"{'yes' if a['same_result'] else 'NO'}")
    out.append("")
    out += [f"{'holds' if t['holds'] else 'MISSED'}: {t['target']} (measured {t['value']})" for t in targets]
    return "\n".join(out)


def run_large(sizes: list[int], week: str, out: Path, stages: bool = True, log=print) -> dict:
    """``make bench-large``: build the shops, measure each, write ``<out>/large-results.json``; the payload."""
    from playbook.core.atomic import write_json

    started = time.perf_counter()
    host, code = machine(), code_version()
    shops = [build_large_in_child(out, n, log) for n in sizes]  # all built first: building is not measured
    results = [measure_large(folder, manifest, week, stages, log) for folder, manifest in shops]
    # what any weekly run costs before it touches data (five kernels, imports, ten exports): the part of
    # the cycle's wall time no engine setting can remove
    floor = measure_cycle("floor", week)
    floor.pop("log", None)
    log(f"floor: {floor['seconds']:.1f} s, peak RSS {floor['peak_rss_mib']} MiB")
    payload = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": host, "code": code,
        "week": week, "shops": [m for _, m in shops], "results": results, "targets": large_targets(results),
        "floor": floor,
        "load_average_1m_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "method": ("every number from a fresh process: the cycle is `python -m playbook.run.weekly` timed by the "
                   "parent (peak RSS = the largest process of its tree); steps as in `make bench`; the aggregation "
                   "(lines x orders x returns by week x category x reason) timed inside its process, imports "
                   "excluded, peak RSS = the process's VmHWM (imports included)"),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out / "large-results.json", payload)
    return payload


# --- PostgreSQL beside DuckDB (issue 12) --------------------------------------------------------

POSTGRES_ENV = "PLAYBOOK_TEST_POSTGRES_URL"  # a superuser URL of a server the bench may create databases on
TARGET_POSTGRES_RATIO = 1.5  # issue 22 (issue 12 asked 3x): the weekly run on PostgreSQL within 1.5x DuckDB
POSTGRES_LINES = 600_000  # issue 12 measured a held-out shop of 620,000 lines; a run of both takes minutes
#: the primary keys a typical export carries (the only keys a loaded shop has before the recommended indexes)
PRIMARY_KEYS = {"orders": "order_id", "order_lines": "line_id", "returns": "return_id", "contacts": "contact_id"}


def load_postgres(folder: Path, url: str, indexes: bool = True) -> dict[str, int]:
    """Copy the shop of ``folder`` into the (empty) database at ``url``: typed tables as DuckDB reads the
    files, each table's primary key, and (``indexes``) the recommended indexes of docs/data_contract.md;
    row counts per table. ``COPY`` through psycopg: ibis's inserts take minutes for 600,000 lines."""
    import ibis

    from playbook.data.indexes import create_recommended_indexes
    from playbook.data.source import load_tables

    duck, raw = load_tables(folder)
    pg = ibis.connect(url)
    rows = {}
    try:
        for name, table in raw.items():
            arrow = table.to_pyarrow()
            pg.create_table(name, schema=table.schema(), overwrite=True)
            columns = ", ".join(f'"{c}"' for c in arrow.column_names)
            with pg.con.cursor() as cur, pg.con.transaction():
                with cur.copy(f'COPY "{name}" ({columns}) FROM STDIN') as copy:
                    for batch in arrow.to_batches(100_000):
                        for row in zip(*(c.to_pylist() for c in batch.columns)):
                            copy.write_row(row)
            rows[name] = arrow.num_rows
            if name in PRIMARY_KEYS:
                pg.raw_sql(f'ALTER TABLE "{name}" ADD PRIMARY KEY ("{PRIMARY_KEYS[name]}")').close()
        if indexes:
            create_recommended_indexes(pg)
        else:
            pg.raw_sql("ANALYZE").close()
    finally:
        pg.disconnect()
        duck.disconnect()
    return rows


def postgres_database(admin_url: str, name: str) -> str:
    """A fresh database ``name`` (dropped first if there) on the server of ``admin_url``; its URL."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def drop_postgres_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_server(log=print) -> tuple[str, Any]:
    """A superuser URL: ``PLAYBOOK_TEST_POSTGRES_URL`` when set, else a throwaway server started by the
    tests' helper (``tests/pg_server.py``: initdb + pg_ctl on a free port); and the server to stop (or None)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url, None
    import importlib.util

    spec = importlib.util.spec_from_file_location("pg_server", REPO_ROOT / "tests" / "pg_server.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"no PostgreSQL: set {POSTGRES_ENV} (tests/pg_server.py is absent)")
    helper = importlib.util.module_from_spec(spec)
    sys.modules["pg_server"] = helper  # its dataclasses look their module up while it loads
    spec.loader.exec_module(helper)
    server = helper.get_server()
    log(f"started a throwaway PostgreSQL at {server.url}")
    return server.url, server


def measure_postgres(folder: Path, manifest: dict, admin_url: str, week: str, repeat: int, log=print) -> dict:
    """The whole weekly run on DuckDB (the Parquet folder) and on PostgreSQL (the same shop copied in,
    primary keys and the recommended indexes, the snapshot in a schema), alternated, each in a fresh
    process timed by the parent; per notebook seconds from the runner's log; the ratio of the bests."""
    from playbook.data.snapshot import SNAPSHOT_SCHEMA_ENV

    name = f"playbook_bench_{size_label(manifest['nominal_order_lines']).lower()}"
    url = postgres_database(admin_url, name)
    try:
        started = time.perf_counter()
        rows = load_postgres(folder, url)
        load_seconds = round(time.perf_counter() - started, 1)
        log(f"loaded {rows['order_lines']:,} order lines into PostgreSQL in {load_seconds} s (keys and indexes included)")
        samples = []
        for rep in range(repeat):
            for engine, data, env in (("duckdb", folder, {}), ("postgres", url, {SNAPSHOT_SCHEMA_ENV: "playbook_bench"})):
                c = measure_cycle("cycle", week, data, env)
                samples.append({"engine": engine, "seconds": c["seconds"], "peak_rss_mib": c["peak_rss_mib"],
                                "notebooks": notebook_seconds(c["log"])})
                log(f"{engine} cycle {rep + 1}/{repeat}: {c['seconds']:.1f} s, notebooks "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in samples[-1]["notebooks"].items()))
    finally:
        drop_postgres_database(admin_url, name)
    best = {e: min((s for s in samples if s["engine"] == e), key=lambda s: s["seconds"]) for e in ("duckdb", "postgres")}
    ratio = round(best["postgres"]["seconds"] / best["duckdb"]["seconds"], 2)
    return {"order_lines": manifest["rows"]["order_lines"], "load_seconds": load_seconds, "samples": samples,
            "best": best, "ratio": ratio, "target": TARGET_POSTGRES_RATIO, "holds": ratio <= TARGET_POSTGRES_RATIO}


def format_postgres(r: dict) -> str:
    """The side-by-side table: per notebook and in total, DuckDB and PostgreSQL, and their ratio."""
    d, p = r["best"]["duckdb"], r["best"]["postgres"]
    out = [f"weekly run, {r['order_lines']:,} order lines | DuckDB s | PostgreSQL s | ratio"]
    for nb in d["notebooks"]:
        a, b = d["notebooks"][nb], p["notebooks"].get(nb)
        out.append(f"{nb} | {a:.1f} | {b:.1f} | {b / a:.2f}" if b is not None else f"{nb} | {a:.1f} | | ")
    # the notebooks run side by side (issue 22): their times overlap, so the runner's share is not the whole
    # run minus their sum; the sum is shown as the work the notebooks did
    sum_d, sum_p = sum(d["notebooks"].values()), sum(p["notebooks"].values())
    out.append(f"the notebooks' own time, summed (they run side by side) | {sum_d:.1f} | {sum_p:.1f} | "
               f"{sum_p / sum_d:.2f}")
    out.append(f"**whole weekly run** | {d['seconds']:.1f} | {p['seconds']:.1f} | {r['ratio']:.2f}")
    out.append(f"{'holds' if r['holds'] else 'MISSED'}: PostgreSQL within {r['target']:g}x DuckDB (measured "
               f"{r['ratio']:.2f}x; loading the shop into PostgreSQL, not counted: {r['load_seconds']} s)")
    return "\n".join(out)


def run_postgres(order_lines: int, week: str, out: Path, repeat: int, log=print) -> dict:
    """``make bench BENCH_ARGS=--postgres``: the shop built, copied into PostgreSQL, both weekly runs
    measured; ``<out>/postgres-results.json``; the payload."""
    from playbook.core.atomic import write_json

    started = time.perf_counter()
    host, code = machine(), code_version()
    folder, manifest = build_large_in_child(out, order_lines, log)
    admin_url, server = postgres_server(log)
    try:
        result = measure_postgres(folder, manifest, admin_url, week, repeat, log)
    finally:
        if server is not None:
            server.stop()
    payload = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": host, "code": code,
               "week": week, "shop": manifest, "result": result,
               "load_average_1m_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
               "method": ("each sample a fresh `python -m playbook.run.weekly` timed by the parent, DuckDB on the Parquet "
                          "folder and PostgreSQL on the same shop copied in (primary keys and the recommended indexes, "
                          "the snapshot in the schema PLAYBOOK_SNAPSHOT_SCHEMA), alternated; the best of each"),
               "total_seconds": round(time.perf_counter() - started, 1)}
    write_json(out / "postgres-results.json", payload)
    return payload


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("scales are whole numbers >= 1")
    return sorted(set(values))


def _formats(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in FORMATS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"format must be csv, parquet or csv,parquet (got {text!r})")
    return list(dict.fromkeys(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbook.dev.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=_ints, default=list(DEFAULT_SCALES),
                        help="comma-separated copies of the sample shop (default: 1,5; the long run: 1,5,20)")
    parser.add_argument("--format", type=_formats, default=["csv"], dest="formats",
                        help="files to read: csv (csv.gz, as the sample shop), parquet, or csv,parquet (default: csv)")
    parser.add_argument("--out", default=".bench",
                        help="cache and results folder; a relative path is taken from the repository root (default: .bench)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help=f"fresh processes per stage and scale (default: {DEFAULT_REPEAT}; the open is timed in "
                             "every one of them)")
    parser.add_argument("--week", default=DEFAULT_WEEK, help=f"the analysed week (default: {DEFAULT_WEEK})")
    parser.add_argument("--profile", action="store_true",
                        help="also run one cProfile'd child per stage at the largest scale; "
                             "writes <out>/profile-s<scale>-<format>.<stage>.txt")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--build-into", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=CHILD_STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--cycle-repeat", type=int, default=1,
                        help="fresh weekly runs of the sample (and as many floors), alternated (default: 1; 0 skips)")
    parser.add_argument("--cycle-only", action="store_true", help="measure only the weekly cycle and its floor")
    parser.add_argument("--cycle-scales", type=_ints, default=[1],
                        help="shops the weekly cycle runs on, as copies of the sample (default: 1; issue 9's "
                             "target: 1,20)")
    parser.add_argument("--floor-into", help=argparse.SUPPRESS)
    parser.add_argument("--large", type=_ints, nargs="?", const=list(LARGE_SIZES), default=None,
                        help="instead of the above: shops of this many order lines as Parquet (default 1000000,10000000), "
                             "the whole weekly cycle, the steps and the heaviest aggregation against pandas on each "
                             "(make bench-large)")
    parser.add_argument("--large-no-steps", action="store_true",
                        help="with --large: skip the step-by-step processes (open, metrics, cohorts, compare)")
    parser.add_argument("--aggregate", choices=("engine", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--postgres", type=int, nargs="?", const=POSTGRES_LINES, default=None, metavar="LINES",
                        help=f"instead of the above: the weekly run on PostgreSQL beside DuckDB on a shop of LINES order "
                             f"lines (default {POSTGRES_LINES:,}), with the ratio (server: {POSTGRES_ENV}, else a "
                             "throwaway one from tests/pg_server.py); --cycle-repeat samples of each")
    args = parser.parse_args(argv)
    if args.aggregate:
        run_aggregation(args.aggregate, args.data, args.result)
        return 0
    if args.floor_into:
        run_floor(Path(args.floor_into), args.week)
        return 0

    if args.child:
        run_child(args.child, args.data, args.week, args.result, args.profile_to)
        return 0
    if args.build:
        build_shop(Path(args.build_into), args.build, args.formats[0])
        return 0
    out = resolve(args.out, REPO_ROOT / ".bench")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.postgres:
        payload = run_postgres(args.postgres, args.week, out, max(args.cycle_repeat, 1), log=log)
        m, code = payload["machine"], payload["code"]
        print(f"{payload['date']}  {m['nproc']} cores, {m['total_memory_gib']} GiB, {m['cpu']}; week {args.week}; "
              f"load average {m['load_average_1m']} before, {payload['load_average_1m_after']} after; code {code['commit']}"
              + (f" + uncommitted changes in {len(code['uncommitted'])} file(s)" if code["uncommitted"] else ""))
        print(format_postgres(payload["result"]))
        print(f"\nwritten {out / 'postgres-results.json'} ({payload['total_seconds']:.0f} s)")
        return 0
    if args.large:
        payload = run_large(args.large, args.week, out, stages=not args.large_no_steps, log=log)
        m, code = payload["machine"], payload["code"]
        print(f"{payload['date']}  {m['nproc']} cores, {m['total_memory_gib']} GiB, {m['cpu']}, Python {m['python']}, "
              f"duckdb {m['duckdb']}, ibis {m['ibis']}, pandas {m['pandas']}; week {args.week}; load average "
              f"{m['load_average_1m']} before, {payload['load_average_1m_after']} after; code {code['commit']}"
              + (f" + uncommitted changes in {len(code['uncommitted'])} file(s)" if code["uncommitted"] else ""))
        print(format_large(payload["results"], payload["targets"]))
        print(f"floor of the cycle (five import-only notebooks, same execution and export): "
              f"{payload['floor']['seconds']:.1f} s, peak RSS {payload['floor']['peak_rss_mib']} MiB")
        print(f"\nwritten {out / 'large-results.json'} ({payload['total_seconds']:.0f} s)")
        return 0
    started = time.perf_counter()
    host = machine()  # with the load average before the run (the machine may be shared)
    code = code_version()
    manifests, samples, folders = {}, {}, {}
    cycle_samples = []
    cycle_data = {s: (REPO_ROOT / "data_samples" if s == 1 else build_in_child(out, s, "csv", log)[0])
                  for s in (args.cycle_scales if args.cycle_repeat else [])}
    for rep in range(args.cycle_repeat):  # floor first, then the cycles: a burst of load hits them alike
        for kind, data in [("floor", None), *((f"cycle s{s}", d) for s, d in cycle_data.items())]:
            sample = measure_cycle("floor" if data is None else "cycle", args.week, data)
            cycle_samples.append(dict(sample, kind=kind))
            log(f"{kind} run {rep + 1}/{args.cycle_repeat}: {sample['seconds']:.1f} s, peak RSS "
                f"{sample['peak_rss_mib']} MiB ({sample['html_pages']} pages)")
    cycle = summarise_cycle(cycle_samples)
    for fmt in ([] if args.cycle_only else args.formats):
        for scale in ([] if args.cycle_only else args.scales):
            folder, manifests[(fmt, scale)] = build_in_child(out, scale, fmt, log)
            folders[(fmt, scale)] = folder
            runs = []
            for rep in range(args.repeat):
                for stage in CHILD_STAGES:
                    r = measure(stage, folder, args.week)
                    runs.append(r)
                    log(f"{fmt} scale {scale} {stage:<8} run {rep + 1}/{args.repeat}: open {r['open_seconds']:.2f} s, "
                        f"stage {r['stage_seconds']:.2f} s, peak RSS {r['rss_end_mib']:.0f} MiB ({r['check']})")
            samples[(fmt, scale)] = runs
    profiles = []
    if args.profile:
        for fmt in args.formats:
            scale = max(args.scales)
            prefix = out / f"profile-s{scale}-{fmt}"
            for stage in CHILD_STAGES:
                try:
                    measure(stage, folders[(fmt, scale)], args.week, profile=str(prefix))
                except (RuntimeError, subprocess.SubprocessError) as exc:  # the measurements stand without it
                    log(f"profile of {stage} failed: {exc}")
            profiles += sorted(str(p) for p in out.glob(f"{prefix.name}.*.txt"))

    rows = summarise(samples, manifests)
    rel = ratios(rows)
    from playbook.core.atomic import write_json

    payload = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": host,
        "code": code,
        "load_average_1m_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "settings": {"scales": args.scales, "formats": args.formats, "repeat": args.repeat, "week": args.week,
                     "data_hash": sorted({m["hash"] for m in manifests.values()})},
        "method": ("one fresh process per sample; seconds by time.perf_counter inside the child, imports excluded; "
                   "open = open_dataset (load + validate + cache), timed in every child; metrics/cohorts/compare "
                   "timed alone after the open; peak RSS = the child's own high-water mark (VmHWM, else ru_maxrss), "
                   "right after the open for 'open', at the end (open + stage) for the others; largest over the "
                   "samples"),
        "shops": [manifests[k] for k in manifests],
        "results": rows,
        "ratios": rel,
        "samples": [dict(r, format=f, scale=s) for (f, s), runs in samples.items() for r in runs],
        "profiles": profiles,
        "cycle": dict(cycle, samples=cycle_samples,
                      method="wall seconds of a fresh process timed by the parent: `python -m playbook.run.weekly` on "
                             "data_samples/ (cycle), and the five notebooks reduced to their imports, executed and "
                             "exported the same way (floor)"),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    results = write_json(out / "results.json", payload)
    m = payload["machine"]
    print(f"{payload['date']}  {m['nproc']} cores, {m['total_memory_gib']} GiB, Python {m['python']}, "
          f"duckdb {m['duckdb']}, ibis {m['ibis']}; repeat {args.repeat}, week {args.week}; "
          f"load average {m['load_average_1m']} before, {payload['load_average_1m_after']} after; "
          f"code {code['commit']}"
          + (f" + uncommitted changes in {len(code['uncommitted'])} file(s)" if code["uncommitted"] else ""))
    if cycle:
        print(format_cycle(cycle))
        print()
    if rows:
        print(format_table(rows))
    if rel:
        print()
        print(format_ratios(rel))
    print(f"\nwritten {results} ({payload['total_seconds']:.0f} s)" + "".join(f"\nprofile {p}" for p in profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
