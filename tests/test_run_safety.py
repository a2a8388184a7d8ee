"""Runs that collide or die: two runs of one week, a run killed at any point, a folder that cannot be written.

The runs execute a one-cell notebook on the tiny shop, in real processes (``subprocess``) where a
lock or a kill is involved: the notebook writes the week's summary and stages a journal plan, both
labelled with the run that wrote them (``RUN_LABEL``), so that a report or a journal row says which
run it comes from, and it can hold still at a known point (``PAUSE_MARKER``) for the test to act.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from conftest import write_shop
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from playbook.core import atomic
from playbook.core.atomic import LockBusy, exclusive_lock
from playbook.core.weeks import IsoWeek
from playbook.journal import store as decision_journal
from playbook.journal.store import read_journal
from playbook.run import weekly
from playbook.run.weekly import RunBusy, RunError, run_week

REPO = Path(__file__).resolve().parent.parent
WEEK = "2026-W46"
PARAMS = 'week = ""\ndata = ""\nconfig = ""\nrun_dir = ""\njournal = ""\nsnapshot = ""\n'
BODY = textwrap.dedent("""\
    import os, pathlib, time
    from playbook.journal import store
    from playbook.journal.entry import JournalEntry
    from playbook.report.summary import update_summary
    label = os.environ.get("RUN_LABEL", "")
    update_summary(run_dir, week=week, data_source=label)
    store.stage(run_dir, week, [JournalEntry(week, "plan", "E1", why=label)], kind="plan")
    marker, release = os.environ.get("PAUSE_MARKER"), os.environ.get("PAUSE_RELEASE")
    if marker:
        pathlib.Path(marker).write_text("in the notebook")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (release and pathlib.Path(release).exists()):
            time.sleep(0.05)
""")

# The child process: one run_week, optionally held still (and killed by the test) at one point of the run.
CHILD = textwrap.dedent("""\
    import os, sys, time
    from pathlib import Path
    from playbook.run import weekly
    mode, shop, out, journal, notebook, week, wait = sys.argv[1:8]
    marker = os.environ.get("HOLD_MARKER", "")

    def hold(where):
        Path(marker).write_text(where)
        time.sleep(120)

    if mode == "swap-two-steps":  # a file system without an atomic exchange: killed between the two renames
        weekly._exchange = lambda a, b: False
        real_replace = os.replace
        def replace(src, dst):
            real_replace(src, dst)
            if ".old-" in os.fspath(dst):
                hold("between the two renames of the swap")
        os.replace = replace
    elif mode == "swap-exchange":  # killed right after the exchange, before the old report is removed
        real_exchange = weekly._exchange
        def exchange(a, b):
            done = real_exchange(a, b)
            hold("after the exchange")
            return done
        weekly._exchange = exchange
    elif mode == "journal":  # killed with the new journal written to its temporary file, not yet in place
        real_fsync = os.fsync
        def fsync(fd):
            real_fsync(fd)
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".decisions.csv."):
                hold("during the journal write")
        os.fsync = fsync
    try:
        weekly.run_week(week, shop, out, journal=journal, notebooks=[Path(notebook)], lock_wait=float(wait))
    except weekly.RunBusy as exc:
        print(exc, file=sys.stderr)
        sys.exit(weekly.EXIT_BUSY)
""")


def make_notebook(path: Path) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell("# Safety step"), params, new_code_cell(BODY)]
    nbformat.write(nb, str(path))
    return path


class Site:
    """A shop, a reports folder with a complete report of WEEK by the run labelled 'first', a journal."""

    def __init__(self, root: Path):
        self.root, self.shop, self.out, self.journal = root, root / "shop", root / "reports", root / "journal"
        self.notebook = root / "01_safe.ipynb"

    @property
    def report(self) -> Path:
        return self.out / WEEK

    def label(self, week: str = WEEK) -> str:
        return json.loads((self.out / week / "summary.json").read_text(encoding="utf-8"))["data_source"]

    def plans(self) -> dict[str, str]:
        frame = read_journal(self.journal)
        return dict(zip(frame["week"], frame["why"]))

    def leftovers(self) -> list[str]:
        """Anything beside the reports that is neither a week's report nor a lock file."""
        return sorted(p.name for p in self.out.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))

    def start(self, label: str, mode: str = "plain", week: str = WEEK, wait: float = 0.0, **env: str):
        variables = {**os.environ, "PYTHONPATH": str(REPO), "RUN_LABEL": label, **env}
        out = open(self.root / f"{label}.log", "w")
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, str(self.shop), str(self.out), str(self.journal), str(self.notebook),
             week, str(wait)],
            env=variables, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,  # killpg reaches the kernel
        )

    def log(self, label: str) -> str:
        return (self.root / f"{label}.log").read_text(encoding="utf-8")

    def run(self, label: str, week: str = WEEK) -> Path:
        os.environ["RUN_LABEL"] = label  # the kernel inherits the runner's environment
        try:
            return run_week(week, self.shop, self.out, journal=self.journal, notebooks=[self.notebook], log=lambda t: None)
        finally:
            del os.environ["RUN_LABEL"]


@pytest.fixture(scope="module")
def first_site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("site"))
    write_shop(site.shop)
    make_notebook(site.notebook)
    site.run("first")
    return site


@pytest.fixture
def site(first_site: Site, tmp_path: Path) -> Site:
    """A copy of the site with its first complete report, for a test to break."""
    copy = Site(tmp_path / "site")
    shutil.copytree(first_site.root, copy.root)
    return copy


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before reaching the point to test")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run did not reach {path.name} within {seconds} s")
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def wait_until(predicate, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- the lock itself ---------------------------------------------------------------------------

LOCK_HOLDER = textwrap.dedent("""\
    import sys, time
    from playbook.core.atomic import exclusive_lock
    with exclusive_lock(sys.argv[1], what="a test holder", wait=0):
        open(sys.argv[2], "w").close()
        time.sleep(120)
""")


def hold_lock(path: Path, ready: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), str(ready)],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    wait_for(ready, holder, 60)
    return holder


def test_a_busy_lock_names_its_holder_by_pid_host_and_start_time(tmp_path):
    holder = hold_lock(tmp_path / "x.lock", tmp_path / "ready")
    try:
        with pytest.raises(LockBusy) as busy, exclusive_lock(tmp_path / "x.lock", what="me", wait=0.3):
            pass
    finally:
        kill(holder)
    message = str(busy.value)
    assert f"pid {holder.pid}" in message and socket.gethostname() in message and "a test holder" in message
    assert busy.value.holder.started[:4].isdigit() and busy.value.waited >= 0.3


def test_the_lock_of_a_killed_process_is_free_and_its_record_reads_as_stale(tmp_path):
    holder = hold_lock(tmp_path / "x.lock", tmp_path / "ready")
    kill(holder)
    with exclusive_lock(tmp_path / "x.lock", what="me", wait=0) as lock:
        assert lock.stale is not None and lock.stale.pid == holder.pid
    with exclusive_lock(tmp_path / "x.lock", what="me again", wait=0) as lock:
        assert lock.stale is None  # a holder that ended well clears its record


# --- two runs of the same week -----------------------------------------------------------------

def test_a_second_run_of_the_same_week_stops_at_once_naming_the_first(site):
    marker, release = site.root / "paused", site.root / "release"
    first = site.start("second", PAUSE_MARKER=str(marker), PAUSE_RELEASE=str(release))
    try:
        wait_for(marker, first)
        other = site.start("third", wait=0)
        assert other.wait(timeout=120) == weekly.EXIT_BUSY
    finally:
        release.touch()
    assert first.wait(timeout=120) == 0
    message = site.log("third")
    assert f"another run of week {WEEK} is in progress" in message
    assert f"pid {first.pid} on {socket.gethostname()}" in message and "started 20" in message
    assert site.label() == "second" and site.plans() == {WEEK: "second"}  # the stopped run wrote nothing
    assert site.leftovers() == []


def test_a_second_run_of_the_same_week_waits_for_the_first_then_renders_whole(site):
    marker, release = site.root / "paused", site.root / "release"
    first = site.start("second", PAUSE_MARKER=str(marker), PAUSE_RELEASE=str(release))
    try:
        wait_for(marker, first)
        other = site.start("third", wait=120)
        wait_until(lambda: "waiting up to 120 s" in site.log("third"))
        assert f"pid {first.pid}" in site.log("third")
    finally:
        release.touch()
    assert first.wait(timeout=120) == 0
    assert other.wait(timeout=120) == 0
    assert site.label() == "third" and site.plans() == {WEEK: "third"}
    assert site.leftovers() == []


def test_a_run_that_finds_its_week_locked_raises_run_busy_before_writing(site):
    before = snapshot(site.out)
    holder = hold_lock(site.out / f".{WEEK}.lock", site.root / "ready")
    try:
        with pytest.raises(RunBusy, match=f"another run of week {WEEK} is in progress: a test holder") as busy:
            site.run("second")
    finally:
        kill(holder)
    assert busy.value.holder.pid == holder.pid
    assert snapshot(site.out) == before | {f".{WEEK}.lock": (site.out / f".{WEEK}.lock").read_bytes()}


# --- a run killed at any point -----------------------------------------------------------------

def test_a_run_killed_during_the_notebooks_leaves_the_previous_report_and_the_next_run_cleans_up(site):
    marker = site.root / "paused"
    run = site.start("second", PAUSE_MARKER=str(marker))
    wait_for(marker, run)
    kill(run)
    assert site.label() == "first" and site.plans() == {WEEK: "first"}
    assert any(".staging-" in name for name in site.leftovers())  # what the dead run left

    site.run("third")
    assert site.label() == "third" and site.plans() == {WEEK: "third"}
    assert site.leftovers() == []


def test_a_run_killed_between_the_two_renames_of_a_swap_gets_its_previous_report_back(site):
    marker = site.root / "held"
    run = site.start("second", "swap-two-steps", HOLD_MARKER=str(marker))
    wait_for(marker, run)
    kill(run)
    assert not site.report.exists()  # the worst moment: the old report aside, the new one not yet in place
    assert site.plans() == {WEEK: "first"}

    # what the next run of the week does first, under the week's lock (which the dead run no longer holds)
    with exclusive_lock(site.out / f".{WEEK}.lock", what="the next run", wait=0) as lock:
        assert lock.stale is not None and lock.stale.pid == run.pid
        weekly._clean_after_dead_runs(site.out, IsoWeek.parse(WEEK), lock, lambda text: None)
    assert site.label() == "first" and site.leftovers() == []

    site.run("third")
    assert site.label() == "third" and site.plans() == {WEEK: "third"}


def test_a_run_killed_right_after_an_atomic_swap_leaves_a_whole_report_and_its_journal_entries_pending(site):
    marker = site.root / "held"
    run = site.start("second", "swap-exchange", HOLD_MARKER=str(marker))
    wait_for(marker, run)
    kill(run)
    assert site.label() == "second" and (site.report / "index.html").is_file()  # the new report, whole
    assert site.plans() == {WEEK: "first"}  # its journal write never started
    assert decision_journal.pending_journal(site.report) == site.journal.resolve()

    site.run("third", week="2026-W45")  # the next run, of another week, records what the dead run could not
    assert site.plans() == {"2026-W45": "third", WEEK: "second"}
    assert decision_journal.pending_journal(site.report) is None
    assert site.leftovers() == []  # the dead run's staging folder (holding the old report) is gone too


def test_a_run_killed_during_the_journal_write_leaves_a_readable_journal_finished_by_the_next_run(site):
    marker = site.root / "held"
    run = site.start("second", "journal", HOLD_MARKER=str(marker))
    wait_for(marker, run)
    kill(run)
    assert site.plans() == {WEEK: "first"}  # readable, and still the journal before the dead write
    assert any(p.name.startswith(".decisions.csv.") for p in site.journal.iterdir())  # its temporary file

    site.run("third", week="2026-W45")
    assert site.plans() == {"2026-W45": "third", WEEK: "second"}
    assert not any(p.name.startswith(".decisions.csv.") for p in site.journal.iterdir())


# --- a folder that cannot take the report ------------------------------------------------------

@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` read-only for this process: mode 0555, or the immutable flag when running as root."""
    folder.chmod(0o555)
    immutable = False
    try:
        try:
            (folder / ".probe").touch()
        except OSError:
            pass
        else:  # root ignores the mode
            (folder / ".probe").unlink()
            if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
                pytest.skip("cannot make a folder read-only here (root without chattr)")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("which", ["out", "journal"])
def test_a_read_only_output_folder_stops_the_run_before_anything_is_written(site, which):
    before_reports, before_journal = snapshot(site.out), snapshot(site.journal)
    with read_only(getattr(site, which)), pytest.raises(RunError, match="cannot be written") as failed:
        site.run("second")
    assert str(getattr(site, which)) in str(failed.value)
    assert snapshot(site.out) == before_reports and snapshot(site.journal) == before_journal


def test_too_little_free_space_stops_the_run_before_anything_is_written(site, monkeypatch):
    monkeypatch.setattr(weekly, "free_bytes", lambda folder: 10 * 2**20)
    before = snapshot(site.out)
    with pytest.raises(RunError, match=r"has 10 MB free; a run of this week needs \d+ MB"):
        site.run("second")
    assert snapshot(site.out) == before and site.plans() == {WEEK: "first"}


def test_a_disk_full_during_the_report_fails_clearly_and_leaves_the_previous_report(site, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(atomic, "write_bytes", full)  # every report page the runner writes goes through it
    before = snapshot(site.out)
    with pytest.raises(RunError) as failed:
        site.run("second")
    message = str(failed.value)
    assert os.strerror(errno.ENOSPC) in message and f"previous report of {WEEK} is untouched" in message
    assert snapshot(site.out) == before and site.plans() == {WEEK: "first"}


def test_a_disk_full_during_the_journal_write_keeps_the_entries_for_the_next_run(site, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(decision_journal, "write_bytes", full)
    with pytest.raises(RunError, match="could not be recorded in the journal"):
        site.run("second")
    assert site.label() == "second" and site.plans() == {WEEK: "first"}
    monkeypatch.undo()

    site.run("third", week="2026-W45")
    assert site.plans() == {"2026-W45": "third", WEEK: "second"}


def test_a_swap_whose_second_rename_fails_puts_the_previous_report_back(tmp_path, monkeypatch):
    final, staging = tmp_path / WEEK, tmp_path / f".{WEEK}.staging-x"
    final.mkdir()
    (final / "index.html").write_text("previous")
    staging.mkdir()
    (staging / "index.html").write_text("new")
    real_replace = os.replace

    def replace(src, dst):
        if Path(src) == staging:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        real_replace(src, dst)

    monkeypatch.setattr(weekly, "_exchange", lambda a, b: False)  # the two-step swap of other systems
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        weekly._swap_in(staging, final)
    monkeypatch.undo()
    assert (final / "index.html").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([final.name, staging.name])


def test_the_atomic_exchange_swaps_two_folders_where_the_system_offers_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "which").write_text("a")
    (b / "which").write_text("b")
    if not weekly._exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the two-step swap is used")
    assert (a / "which").read_text() == "b" and (b / "which").read_text() == "a"


def test_main_exits_3_when_the_week_is_busy_and_passes_its_wait_on(monkeypatch, capsys):
    seen = {}

    def busy(*args, lock_wait, **kwargs):
        seen["wait"] = lock_wait
        raise RunBusy("another run of week 2026-W46 is in progress: the weekly run of 2026-W46 (pid 12)", None)

    monkeypatch.setattr(weekly, "run_week", busy)
    assert weekly.main(["--week", WEEK, "--wait", "30"]) == 4  # EXIT_BUSY
    assert seen == {"wait": 30.0} and "(pid 12)" in capsys.readouterr().err


def test_applying_staged_entries_to_another_journal_keeps_the_pending_mark(tmp_path):
    from playbook.journal.entry import JournalEntry

    report = tmp_path / WEEK
    decision_journal.stage(report, WEEK, [JournalEntry(WEEK, "plan", "E1", why="x")], kind="plan")
    decision_journal.mark_pending(report, tmp_path / "journal")
    decision_journal.apply_staged(report, tmp_path / "scratch")  # e.g. the track record's scratch copy
    assert decision_journal.pending_journal(report) == (tmp_path / "journal").resolve()
    decision_journal.apply_staged(report, tmp_path / "journal")
    assert decision_journal.pending_journal(report) is None
    assert list(read_journal(tmp_path / "journal")["why"]) == ["x"]
