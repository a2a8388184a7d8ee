"""Every path the playbook uses, anchored at the repository, never at the current directory.

papermill starts the kernel in the caller's working directory while JupyterLab starts it
in the notebook's folder; anchoring here makes both read and write the same files.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # playbook/ (this file is playbook/core/paths.py)
REPO_ROOT = PACKAGE_DIR.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DATA_SAMPLES_DIR = REPO_ROOT / "data_samples"
REPORTS_DIR = REPO_ROOT / "reports"
METHOD_GUIDE = REPO_ROOT / "docs" / "method.md"
#: the method guide's page in a week's report folder (the notebooks link ../docs/method.md, which a
#: report folder does not have)
METHOD_PAGE = "method.html"
JOURNAL_DIR = REPO_ROOT / "journal"
CONFIG_DIR = PACKAGE_DIR / "config"
DEFAULT_CONFIG = CONFIG_DIR / "playbook.yaml"


def resolve(path: str | os.PathLike | None, default: Path) -> Path:
    """A user path made absolute against the repository root (not the working directory)."""
    if path is None or str(path) == "":
        return default
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()
