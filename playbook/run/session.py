"""The context every notebook of the cycle starts from: parameters resolved into one ``Run``.

Notebooks call ``start(week, data, config, run_dir, journal)`` with their papermill parameters.
Empty parameters take the defaults (the sample data, the default configuration, the latest
complete week, the scratch folder ``reports/interactive/<week>/``, ``journal/``), resolved against the repository root so that
JupyterLab (kernel in ``notebooks/``) and papermill (kernel in the caller's folder) agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playbook.config.loader import load_config
from playbook.core.paths import DATA_SAMPLES_DIR, JOURNAL_DIR, REPORTS_DIR, resolve
from playbook.core.settings import Config
from playbook.core.weeks import IsoWeek
from playbook.data.dataset import Dataset, Snapshot, is_url, open_dataset
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
        return (f"Week {self.week} ({self.week.monday:%d %b} - {self.week.sunday:%d %b %Y}), data known up to "
                f"{self.week.end:%Y-%m-%d %H:%M:%S}, from {self.data_source}. Optional tables missing: {missing}."
                + (f" Optional tables without a row (treated as missing): {empty}." if empty else ""))

    def write(self, **sections) -> dict:
        """Add sections to this week's summary.json (with the run's identity)."""
        return update_summary(
            self.run_dir, week=str(self.week), data_source=self.data_source,
            as_of=f"{self.week.end:%Y-%m-%d %H:%M:%S}", **sections,
        )


def start(week: str = "", data: str = "", config: str = "", run_dir: str = "", journal: str = "") -> Run:
    """Open and validate the data, resolve the week and the output folders."""
    source = data if data and is_url(data) else str(resolve(data or None, DATA_SAMPLES_DIR))
    dataset = open_dataset(source)  # a URL carrying a password is refused (SourceError)
    # a week the data do not cover would show empty or half-filled numbers as if they were real
    iso = dataset.check_week(week) if week else dataset.latest_complete_week()
    cfg = load_config(config or None)
    # an interactive run (no run_dir) works in a scratch folder: it never overwrites the published
    # report of the week, and its journal entries stay staged there (only `make weekly` records them)
    out = resolve(run_dir or None, REPORTS_DIR / "interactive" / str(iso))
    out.mkdir(parents=True, exist_ok=True)
    return Run(iso, dataset, dataset.as_of(iso), cfg, out, resolve(journal or None, JOURNAL_DIR))
