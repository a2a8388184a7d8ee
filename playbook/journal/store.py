"""The decision journal: every plan and every verdict, kept across weeks in one CSV file.

Notebook 03 (lever design) records the week's plans, notebook 05 (J+7 review) the week's
verdicts (keep / adjust / stop). Both go to ``<journal_dir>/decisions.csv``, a plain CSV file a
person can open, read and diff. The journal folder is passed by the caller (default ``journal/``
at the repository root, never inside the reports folder, which is replaced on every run).

Rules of the file:

* ``record_week(dir, week, entries, kind)`` replaces the entries of that (week, kind) and
  nothing else: the plans and the verdicts of one week do not erase each other, re-running a
  week does not duplicate its rows, and every other row is kept byte for byte (the file is
  rewritten from the raw text of those rows, never re-formatted).
* The rewrite is atomic (temporary file in the same folder + ``os.replace``) and happens under
  an exclusive lock on ``decisions.lock`` beside the file (``core.atomic.exclusive_lock``), so two
  runs never lose each other's rows and a reader sees the old file or the new one, whole. A writer
  killed mid-way leaves the old file and a temporary file that the next writer removes; the lock
  dies with its process; a writer that waits more than ``LOCK_WAIT`` seconds gets ``LockBusy``
  naming the holder (pid, host, start time).
* A journal that cannot be parsed (bad quoting, wrong number of fields, missing columns, a
  week or a decision that means nothing) raises ``JournalError`` naming the file, the line and
  what is wrong; it is never rewritten.
* Text a spreadsheet would run as a formula (a lever or cohort starting with ``=``, ``+``, ``-``,
  ``@``, tab or carriage return; numbers such as ``-0.02`` excepted) is written behind a single
  quote (``playbook.core.csvsafe``); ``read_journal`` gives back the original text.

``read_journal`` returns the typed table; the entry type is in ``playbook.journal.entry`` and the
team's record over the last weeks in ``playbook.journal.track_record``.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from playbook.core.atomic import Lock, exclusive_lock, remove_stale_temps, write_bytes
from playbook.core.csvsafe import neutralise, restore
from playbook.core.vocabulary import DECISIONS
from playbook.core.weeks import IsoWeek
from playbook.journal.entry import (
    _KIND_ORDER,
    BASE_COLUMNS,
    COLUMNS,
    INT_COLUMNS,
    KINDS,
    LATER_COLUMNS,
    NUMBER_COLUMNS,
    PLAN,
    VERDICT,
    JournalEntry,
    JournalError,
    _timestamp_text,
)

JOURNAL_FILE = "decisions.csv"
LOCK_FILE = "decisions.lock"
#: seconds a journal write waits for another writer (a write takes milliseconds; longer means a stuck process)
LOCK_WAIT = 60.0
_LINE_END = "\n"


# --- the file ------------------------------------------------------------------------------

@dataclass
class _Row:
    raw: str            # the exact text of the record in the file (its line end included)
    values: dict[str, str]
    line: int           # first line of the record in the file (1 = header)

    @property
    def key(self) -> tuple[IsoWeek, int]:
        return IsoWeek.parse(self.values["week"]), _KIND_ORDER[self.values["kind"]]


@dataclass
class _Parsed:
    prefix: str         # a byte-order mark kept as it was, if any
    header_raw: str
    header: list[str]
    rows: list[_Row]


def journal_path(journal_dir: str | os.PathLike) -> Path:
    return Path(journal_dir) / JOURNAL_FILE


def _physical_lines(text: str) -> Iterator[str]:
    # newline="" splits on \n, \r and \r\n but leaves the line ends in place: the raw text of
    # every record is the concatenation of the lines the csv reader consumed for it.
    yield from io.StringIO(text, newline="")


def _parse(path: Path) -> _Parsed | None:
    """Parse and validate the journal file; None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JournalError(f"decision journal {path} is not UTF-8 text ({exc}); it was left untouched") from None
    prefix = ""
    if text.startswith("\ufeff"):
        prefix, text = "\ufeff", text[1:]
    if not text.strip():
        raise JournalError(f"decision journal {path} is empty (no header line); it was left untouched. "
                           f"Restore it from version control or delete it to start a new journal.")

    consumed: list[str] = []

    def feed() -> Iterator[str]:
        for line in _physical_lines(text):
            consumed.append(line)
            yield line

    reader = csv.reader(feed(), strict=True)
    records: list[tuple[str, list[str], int]] = []
    next_line = 1
    try:
        for values in reader:
            records.append(("".join(consumed), values, next_line))
            next_line += len(consumed)
            consumed.clear()
    except csv.Error as exc:
        raise JournalError(f"decision journal {path} is not a valid CSV file (record starting on line {next_line}): "
                           f"{exc}; it was left untouched") from None

    header_raw, header, _ = records[0]
    missing = [c for c in BASE_COLUMNS if c not in header]
    if missing:
        raise JournalError(f"decision journal {path} lacks the column(s) {', '.join(missing)} "
                           f"(header: {', '.join(header) or 'empty'}); it was left untouched")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise JournalError(f"decision journal {path} has the column(s) {', '.join(duplicated)} more than once; "
                           f"it was left untouched")

    rows: list[_Row] = []
    for raw, values, line in records[1:]:
        if not values:  # a blank line: not a record
            continue
        short = len(header) - len(values)
        if 0 < short <= len(LATER_COLUMNS) and all(c in LATER_COLUMNS for c in header[len(values):]):
            values = values + [""] * short  # a row written before the later columns: they are empty
        if len(values) != len(header):
            raise JournalError(f"decision journal {path}, line {line}: {len(values)} fields where the header has "
                               f"{len(header)}; it was left untouched")
        row = _Row(raw, dict(zip(header, values)), line)
        try:
            _check_row(path, row)
        except JournalError as exc:
            raise JournalError(f"{exc}; it was left untouched, fix that line by hand") from None
        rows.append(row)
    return _Parsed(prefix, header_raw, header, rows)


def _check_row(path: Path, row: _Row) -> None:
    v = row.values
    where = f"decision journal {path}, line {row.line}"
    try:
        IsoWeek.parse(v["week"])
    except ValueError as exc:
        raise JournalError(f"{where}: {exc}") from None
    if v["kind"] not in KINDS:
        raise JournalError(f"{where}: kind {v['kind']!r} is not one of {', '.join(KINDS)}")
    if v["kind"] == VERDICT and v["decision"] not in DECISIONS:
        raise JournalError(f"{where}: decision {v['decision']!r} of a verdict is not one of {', '.join(DECISIONS)}")
    if not v["experiment_id"].strip():
        raise JournalError(f"{where}: experiment_id is empty")
    for name in NUMBER_COLUMNS:
        text = v.get(name, "").strip()  # a column added later may be absent from an older file
        if text:
            try:
                float(text)
            except ValueError:
                raise JournalError(f"{where}: {name} {v[name]!r} is not a number") from None
    for name in INT_COLUMNS:
        text = v.get(name, "").strip()
        if text and not (text.isdigit() and int(text) >= 1):
            raise JournalError(f"{where}: {name} {v[name]!r} is not a whole number >= 1")
    if v["recorded_at"].strip():
        try:
            _timestamp_text(v["recorded_at"])
        except ValueError as exc:
            raise JournalError(f"{where}: {exc}") from None


def _with_look_columns(parsed: _Parsed) -> _Parsed:
    """A journal written before ``LATER_COLUMNS`` gets them appended to its header; its rows stay byte for
    byte (a row without the trailing fields reads them as empty)."""
    missing = [c for c in LATER_COLUMNS if c not in parsed.header]
    if not missing:
        return parsed
    body = parsed.header_raw.rstrip("\r\n")
    header_raw = body + "".join("," + c for c in missing) + (parsed.header_raw[len(body):] or _LINE_END)
    return _Parsed(parsed.prefix, header_raw, parsed.header + missing, parsed.rows)


def _format_record(values: list[str]) -> str:
    """One CSV record; text a spreadsheet would run as a formula is quoted (``core.csvsafe``, undone on read)."""
    buffer = io.StringIO()
    # "\r\n" as the writer's terminator makes it quote a field holding a lone "\r" too (with "\n" alone it
    # does not, and the reader would split the record there); the record then ends with the file's "\n"
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow([neutralise(v) for v in values])
    return buffer.getvalue()[:-2] + _LINE_END


def _locked(folder: Path) -> contextlib.AbstractContextManager[Lock]:
    """Exclusive lock on ``decisions.lock``: one writer at a time reads, merges and replaces.

    A writer that waits longer than ``LOCK_WAIT`` seconds gets ``LockBusy`` naming the holder
    (pid, host, start time); a holder that was killed releases the lock with its process.
    """
    return exclusive_lock(folder / LOCK_FILE, what=f"a decision journal write ({folder / JOURNAL_FILE})", wait=LOCK_WAIT)


def _check_folder(journal_dir: Path) -> None:
    from playbook.core.paths import REPORTS_DIR

    resolved = journal_dir.resolve()
    reports = REPORTS_DIR.resolve()
    if resolved == reports or reports in resolved.parents:
        raise ValueError(f"journal folder {journal_dir} is inside the reports folder {REPORTS_DIR}, whose week "
                         f"folders are replaced on every run; keep the journal outside it (default: journal/)")


def record_week(
    journal_dir: str | os.PathLike,
    week: str | IsoWeek,
    entries: Iterable[JournalEntry],
    kind: str,
    *,
    now: dt.datetime | None = None,
) -> Path:
    """Replace the ``kind`` entries of ``week`` in the journal by ``entries``; return the file.

    Rows of other weeks, and rows of the other kind of the same week, are kept byte for byte.
    New rows go where that (week, kind) belongs in time (before the first later row), so a journal
    written week after week stays in chronological order. ``recorded_at`` of entries that have
    none is set to ``now`` (default: the current UTC time). An empty ``entries`` removes that
    week's entries of that kind.

    Raises ValueError (naming the field) when an entry's week or kind differs from the call's,
    or when two entries share an experiment_id; JournalError when the existing file is corrupt
    (it is then left untouched).
    """
    iso = IsoWeek.parse(week)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    stamp = _timestamp_text(now or dt.datetime.now(dt.timezone.utc))
    checked: list[JournalEntry] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, JournalEntry):
            raise ValueError(f"entry {i} is a {type(entry).__name__}, not a JournalEntry")
        if entry.week != str(iso):
            raise ValueError(f"entry {i} ({entry.experiment_id}): week is {entry.week}, but this run records {iso}")
        if entry.kind != kind:
            raise ValueError(f"entry {i} ({entry.experiment_id}): kind is {entry.kind!r}, but this call records {kind!r}")
        if kind == VERDICT and entry.decision not in DECISIONS:  # already refused by JournalEntry; kept explicit
            raise ValueError(f"entry {i} ({entry.experiment_id}): decision must be one of {', '.join(DECISIONS)}")
        if entry.experiment_id in seen:
            raise ValueError(f"entry {i}: experiment_id {entry.experiment_id!r} appears twice in the {kind}s of {iso}")
        seen.add(entry.experiment_id)
        checked.append(entry if entry.recorded_at else replace(entry, recorded_at=stamp))

    folder = Path(journal_dir)
    _check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / JOURNAL_FILE
    with _locked(folder):
        remove_stale_temps(path)  # a write killed mid-way left its temporary file; the journal itself is whole
        parsed = _parse(path)
        if parsed is None:
            parsed = _Parsed("", _format_record(list(COLUMNS)), list(COLUMNS), [])
        parsed = _with_look_columns(parsed)
        header_raw = parsed.header_raw
        if not header_raw.endswith(("\n", "\r")):
            header_raw += _LINE_END
        new_records = []
        for entry in checked:
            values = dict(zip(COLUMNS, entry._row()))
            new_records.append(_format_record([values.get(c, "") for c in parsed.header]))
        key = (iso, _KIND_ORDER[kind])
        kept = [row for row in parsed.rows if row.key != key]
        position = next((i for i, row in enumerate(kept) if row.key > key), len(kept))
        raws = [row.raw for row in kept]
        if position > 0 and not raws[position - 1].endswith(("\n", "\r")):
            raws[position - 1] += _LINE_END  # the last row of a hand-edited file may lack its line end
        raws[position:position] = new_records
        write_bytes(path, (parsed.prefix + header_raw + "".join(raws)).encode("utf-8"))
    return path


def read_journal(journal_dir: str | os.PathLike) -> pd.DataFrame:
    """The journal as a typed table, in file order.

    Numbers are floats (NaN when empty), ``recorded_at`` a UTC datetime (NaT when empty), the
    other columns text ("" when empty, e.g. the decision of a plan). Columns of the file that
    are not journal columns follow the journal columns, as text. An absent file gives an empty
    table with the columns; a corrupt one raises JournalError.
    """
    path = journal_path(journal_dir)
    parsed = _parse(path)
    extra = [c for c in (parsed.header if parsed else []) if c not in COLUMNS]
    columns = list(COLUMNS) + extra
    # the file keeps formula-like text behind a quote for spreadsheet users; the table has the original text
    records = [[restore(row.values.get(c, "")) for c in columns] for row in (parsed.rows if parsed else [])]
    frame = pd.DataFrame(records, columns=columns, dtype=object)
    for name in NUMBER_COLUMNS:
        frame[name] = pd.to_numeric(frame[name].replace("", None), errors="raise").astype("float64")
    for name in INT_COLUMNS:
        frame[name] = pd.to_numeric(frame[name].replace("", None), errors="raise").astype("Int64")
    frame["recorded_at"] = pd.to_datetime(
        frame["recorded_at"].map(lambda t: _timestamp_text(t) if str(t).strip() else None), utc=True, format="ISO8601"
    )
    return frame.reset_index(drop=True)


def read_entries(journal_dir: str | os.PathLike) -> list[JournalEntry]:
    """The journal as JournalEntry objects, in file order."""
    entries = []
    for record in read_journal(journal_dir).to_dict("records"):
        stamp = record["recorded_at"]
        record["recorded_at"] = None if pd.isna(stamp) else stamp.to_pydatetime()
        for name in INT_COLUMNS:
            record[name] = None if pd.isna(record[name]) else int(record[name])
        entries.append(JournalEntry(**{c: record[c] for c in COLUMNS}))
    return entries


def next_look(journal_dir: str | os.PathLike, experiment_id: str, week: str | IsoWeek) -> int:
    """The number of this week's look at an experiment: 1 + the weeks before ``week`` with a verdict on it.

    Every read counts, whatever its verdict (a provisional or inconclusive read is a look too); a
    re-run of the same week replaces that week's verdict and keeps its number.
    """
    iso = IsoWeek.parse(week)
    journal = read_journal(journal_dir)
    mine = journal[(journal["kind"] == VERDICT) & (journal["experiment_id"] == str(experiment_id))]
    earlier = {w for w in mine["week"] if IsoWeek.parse(w) < iso}
    return len(earlier) + 1


@dataclass(frozen=True)
class EarlierLook:
    """A verdict of an experiment in an earlier week, as the spending of its next look needs it."""

    week: IsoWeek
    decision: str
    information_fraction: float | None
    boundary: float | None  # None: the look spent nothing


def earlier_looks(journal_dir: str | os.PathLike, experiment_id: str, week: str | IsoWeek) -> list[EarlierLook]:
    """The verdicts of ``experiment_id`` in the weeks before ``week``, oldest first (one per week: a re-run
    of a week replaced its verdict)."""
    iso = IsoWeek.parse(week)
    journal = read_journal(journal_dir)
    mine = journal[(journal["kind"] == VERDICT) & (journal["experiment_id"] == str(experiment_id))]
    out = {}
    for row in mine.to_dict("records"):
        w = IsoWeek.parse(row["week"])
        if w < iso:
            out[w] = EarlierLook(w, str(row["decision"]), _float_or_none(row.get("information_fraction")),
                                 _float_or_none(row.get("boundary")))
    return [out[w] for w in sorted(out)]


def _float_or_none(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# --- staging: a weekly run's entries land only with its report ------------------------------

STAGED_DIR = "journal_entries"


def stage(run_dir: str | os.PathLike, week: str | IsoWeek, entries: Iterable[JournalEntry], kind: str) -> Path:
    """Keep a notebook's plan or verdict entries in the week's run folder, not yet in the journal.

    The weekly runner applies them (``apply_staged``) once the whole report has been swapped in,
    so a run that fails half-way leaves no journal row for a report that never appeared, and an
    interactive exploration never rewrites the journal of record.
    """
    if kind not in (PLAN, VERDICT):
        raise ValueError(f"kind: {kind!r} is not one of {PLAN!r}, {VERDICT!r}")
    week = str(IsoWeek.parse(week))
    rows = []
    for e in entries:
        if e.week != week or e.kind != kind:
            raise ValueError(f"entry {e.experiment_id}: week/kind {e.week}/{e.kind} differ from {week}/{kind}")
        rows.append(e.to_dict())
    from playbook.core.atomic import write_json

    return write_json(Path(run_dir) / STAGED_DIR / f"{kind}.json", {"week": week, "kind": kind, "entries": rows})


def _staged(run_dir: str | os.PathLike) -> list[tuple[str, str, list[JournalEntry]]]:
    import json

    out = []
    for path in sorted((Path(run_dir) / STAGED_DIR).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [JournalEntry(**{k: v for k, v in e.items() if k in COLUMNS}) for e in data["entries"]]
        out.append((data["week"], data["kind"], entries))
    return out


def apply_staged(run_dir: str | os.PathLike, journal_dir: str | os.PathLike) -> list[Path]:
    """Record every staged (week, kind) of ``run_dir`` in the journal (each replaces that week's kind).

    Then the run folder's pending mark (``mark_pending``) is removed if it names this journal (a copy
    such as ``track_record_with_staged``'s scratch journal leaves it): applying twice gives the same
    journal, so a process killed half-way is finished by applying again.
    """
    written = [record_week(journal_dir, week, entries, kind) for week, kind, entries in _staged(run_dir)]
    if pending_journal(run_dir) == Path(journal_dir).resolve():
        with contextlib.suppress(FileNotFoundError):
            (Path(run_dir) / STAGED_DIR / PENDING_FILE).unlink()
    return written


PENDING_FILE = "pending.mark"  # JSON, but not a "*.json" staged file


def mark_pending(run_dir: str | os.PathLike, journal_dir: str | os.PathLike) -> Path | None:
    """Mark ``run_dir``'s staged entries as still to be recorded in ``journal_dir``; None when none are staged.

    The weekly runner marks its staging folder before swapping it in and ``apply_staged`` clears the
    mark: a run killed between the swap and the end of the journal write leaves a report whose mark
    says so, and the next run finishes the write (``pending_journal``). A report without the mark
    (all reports written before it existed among them) is never re-applied.
    """
    if not _staged(run_dir):
        return None
    from playbook.core.atomic import write_json

    return write_json(Path(run_dir) / STAGED_DIR / PENDING_FILE, {"journal": str(Path(journal_dir).resolve())})


def pending_journal(run_dir: str | os.PathLike) -> Path | None:
    """The journal folder ``run_dir``'s staged entries still have to reach, or None when they are recorded."""
    import json

    try:
        data = json.loads((Path(run_dir) / STAGED_DIR / PENDING_FILE).read_text(encoding="utf-8"))
        return Path(data["journal"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):  # a mark killed mid-write cannot be: it is written atomically
        raise JournalError(f"{Path(run_dir) / STAGED_DIR / PENDING_FILE} is not a pending mark; remove it by hand") from None
