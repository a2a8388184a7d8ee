"""Files people can share: what the run, the journal and the adapters write has the mode of an ordinary file.

Under umask 0022 a file is 0644 and a folder 0755 (a colleague, a web server or a backup reads them);
under 0077, 0600 and 0700 (the user asked for privacy). ``tempfile.mkstemp`` made every file 0600
whatever the umask; the atomic writes now create their temporary file as ``open()`` does.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from playbook.adapters import online_retail
from playbook.core import atomic
from playbook.journal import store as journal
from playbook.journal.entry import JournalEntry

UMASKS = [0o022, 0o077, 0o002]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:04o}")
def umask(request):
    """The process's umask set for the test, and restored after it."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def file_mode(mask: int) -> int:
    return 0o666 & ~mask


def folder_mode(mask: int) -> int:
    return 0o777 & ~mask


def modes_under(*roots: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``roots`` (the roots included): path -> (kind, mode)."""
    found = {}
    for root in roots:
        found[str(root)] = ("folder", mode(root))
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                found[os.path.join(folder, name)] = ("folder", mode(Path(folder, name)))
            for name in files:
                found[os.path.join(folder, name)] = ("file", mode(Path(folder, name)))
    return found


def wrong_modes(found: dict[str, tuple[str, int]], mask: int) -> list[str]:
    expected = {"file": file_mode(mask), "folder": folder_mode(mask)}
    return [f"{path}: {kind} {m:04o}, expected {expected[kind]:04o}"
            for path, (kind, m) in sorted(found.items()) if m != expected[kind]]


# --- the atomic helpers (every report page, summary, journal and adapter table goes through them) ------

def test_the_atomic_helpers_write_files_and_folders_with_the_umask_mode(tmp_path, umask):
    written = [
        atomic.write_text(tmp_path / "week" / "index.html", "<html></html>\n"),
        atomic.write_bytes(tmp_path / "week" / "brief" / "chart.png", b"\x89PNG"),
        atomic.write_json(tmp_path / "week" / "summary.json", {"week": "2026-W47"}),
    ]
    assert [mode(p) for p in written] == [file_mode(umask)] * 3
    assert mode(tmp_path / "week") == folder_mode(umask)  # the folders created for them are ordinary too
    assert mode(tmp_path / "week" / "brief") == folder_mode(umask)
    assert not list(tmp_path.rglob("*.tmp"))


def test_rewriting_a_private_file_gives_it_the_umask_mode(tmp_path, umask):
    """A report or journal written by the old code (0600) becomes shareable at its next write."""
    path = tmp_path / "decisions.csv"
    path.write_text("old\n")
    path.chmod(0o600)
    atomic.write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert mode(path) == file_mode(umask)


def test_the_write_is_still_atomic_through_a_complete_temporary_file_in_the_same_folder(tmp_path, umask, monkeypatch):
    """os.replace moves a temporary file of the same folder, already complete, fsynced and with its final mode."""
    seen = []
    real_replace, real_fsync = os.replace, os.fsync
    fsynced = []

    def fsync(fd):
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real_fsync(fd)

    def replace(src, dst):
        seen.append((Path(src), Path(dst), Path(src).read_bytes(), mode(Path(src))))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "summary.json"
    atomic.write_text(target, "{}\n")
    [(src, dst, content, src_mode)] = seen
    assert dst == target and src.parent == target.parent and src.name.startswith(".summary.json.")
    assert src.name.endswith(".tmp") and content == b"{}\n" and src_mode == file_mode(umask)
    assert fsynced  # the data reach the disk before the rename
    assert not src.exists()


def test_the_lock_files_get_the_umask_mode(tmp_path, umask):
    with atomic.exclusive_lock(tmp_path / "reports" / ".2026-W47.lock", what="a test"):
        pass
    assert mode(tmp_path / "reports" / ".2026-W47.lock") == file_mode(umask)
    assert mode(tmp_path / "reports") == folder_mode(umask)


def test_the_journal_its_lock_and_its_folder_get_the_umask_mode(tmp_path, umask):
    entry = JournalEntry("2026-W47", "plan", "E1", lever="size chart", cohort="knitwear", primary_metric="return_rate",
                         design="A/B 50/50", expected_low=-0.02, expected_high=-0.005, why="a test")
    folder = tmp_path / "journal"
    path = journal.record_week(folder, "2026-W47", [entry], "plan")
    path = journal.record_week(folder, "2026-W47", [entry], "plan")  # the rewrite of an existing journal too
    assert wrong_modes(modes_under(folder), umask) == []
    assert {p.name for p in folder.iterdir()} == {journal.JOURNAL_FILE, journal.LOCK_FILE}
    assert mode(path) == file_mode(umask)


def test_the_adapter_writes_its_tables_with_the_umask_mode(tmp_path, umask):
    folder = tmp_path / "retail"
    paths = online_retail.write_tables({"orders": pd.DataFrame({"order_id": ["A1"]})}, folder)
    assert [mode(p) for p in paths] == [file_mode(umask)]
    assert mode(folder) == folder_mode(umask)


# --- as another user ---------------------------------------------------------------------------------

# Run as ``nobody`` with open folders inherited as file descriptors: it reads every file under each,
# relative to the descriptor. The folders' own ancestors are then not in the way (pytest's temporary
# folders are 0700 on purpose); what is checked is the modes of what the playbook wrote, and nothing else.
READER = textwrap.dedent("""\
    import json, os, sys
    result = {"read": [], "denied": []}
    for fd in map(int, sys.argv[1:]):
        def refused(exc, fd=fd):
            result["denied"].append(f"{fd}:{exc.filename}: {exc.strerror}")
        try:  # a folder below that cannot be listed goes to refused(); the top one raises
            for top, dirs, files, top_fd in os.fwalk(".", dir_fd=fd, onerror=refused):
                for name in files:
                    try:
                        f = os.open(name, os.O_RDONLY, dir_fd=top_fd)
                        os.read(f, 1)
                        os.close(f)
                        result["read"].append(f"{fd}:{os.path.normpath(os.path.join(top, name))}")
                    except OSError as exc:
                        result["denied"].append(f"{fd}:{os.path.join(top, name)}: {exc.strerror}")
        except OSError as exc:
            refused(exc)
    print(json.dumps(result))
""")


def read_as_another_user(*folders: Path) -> dict[str, list[str]]:
    """What the user ``nobody`` (no group of ours) can read under ``folders``: {"read": [...], "denied": [...]},
    each entry ``<n>:<path relative to the n-th folder>`` (n counts from 0)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("reading as another user needs root (to start a process as nobody); run the tests as root to check it")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this system has no user 'nobody' to read as")
    # the reader needs only the standard library: any Python that nobody may run (this one may sit in /root)
    pythons = dict.fromkeys(p for p in (sys.executable, getattr(sys, "_base_executable", None), "/usr/bin/python3",
                                        shutil.which("python3")) if p)
    fds = [os.open(folder, os.O_RDONLY | os.O_DIRECTORY) for folder in folders]
    proc, refused = None, []
    try:
        for python in pythons:
            try:
                proc = subprocess.run([python, "-I", "-S", "-c", READER, *map(str, fds)], pass_fds=fds, cwd="/",
                                      user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], capture_output=True,
                                      text=True, timeout=60)
                break
            except PermissionError as exc:  # an interpreter nobody may not run, or no CAP_SETUID (a container)
                refused.append(f"{python}: {exc.strerror}")
    finally:
        for fd in fds:
            os.close(fd)
    if proc is None:
        pytest.skip(f"cannot start a Python process as nobody here ({'; '.join(refused)})")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    index = {str(fd): str(i) for i, fd in enumerate(fds)}  # the descriptors' numbers -> the folders' places
    for key in ("read", "denied"):
        result[key] = [f"{index[e.split(':', 1)[0]]}:{e.split(':', 1)[1]}" for e in result[key]]
    return result


@pytest.mark.parametrize("mask, readable", [(0o022, True), (0o077, False)], ids=["umask0022", "umask0077"])
def test_another_user_reads_what_umask_0022_wrote_and_not_what_0077_wrote(tmp_path, mask, readable):
    """The check below can tell a shareable folder from a private one (its own control)."""
    old = os.umask(mask)
    try:
        atomic.write_text(tmp_path / "reports" / "2026-W47" / "index.html", "<html></html>\n")
    finally:
        os.umask(old)
    seen = read_as_another_user(tmp_path / "reports")
    if readable:
        assert seen == {"read": ["0:2026-W47/index.html"], "denied": []}
    else:
        assert seen["read"] == [] and len(seen["denied"]) == 1 and "Permission denied" in seen["denied"][0]


# --- a rendered week (the session's sample week of tests/conftest.py, rendered once for every test using it) ---

def test_every_file_and_folder_of_a_rendered_week_and_its_journal_has_the_umask_mode(sample_week):
    reports = sample_week["report"].parent
    found = modes_under(reports, sample_week["journal"])
    assert len(found) > 20 and str(sample_week["report"] / "index.html") in found
    assert wrong_modes(found, current_umask()) == []


def test_another_user_reads_every_file_of_a_rendered_week(sample_week):
    """reports/<WEEK>/index.html, every page, summary.json and the journal, opened as nobody."""
    if current_umask() & 0o004:
        pytest.skip(f"this umask ({current_umask():04o}) keeps files from other users on purpose")
    reports, week = sample_week["report"].parent, sample_week["report"].name
    seen = read_as_another_user(reports, sample_week["journal"])
    assert seen["denied"] == []
    assert {f"0:{week}/index.html", f"0:{week}/brief/index.html", f"0:{week}/summary.json", "0:index.html",
            f"1:{journal.JOURNAL_FILE}"} <= set(seen["read"])
