"""Every path the playbook uses, anchored at the repository, never at the current directory.

papermill starts the kernel in the caller's working directory while JupyterLab starts it
in the notebook's folder; anchoring here makes both read and write the same files.

Each data source renders into folders of its own by default: ``reports/<source name>/`` and
``journal/<source name>/`` (``source_name``), so that a real export's weeks and decisions never mix
with the sample's; the repository's sample (``data_samples/``) keeps ``reports/`` and ``journal/``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

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


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: names a source folder cannot take inside ``reports/``: the sample's own weeks, failure marks and scratch folder
_RESERVED = re.compile(r"^(\d{4}-W\d{2}.*|interactive|latest\.failed|index\.html|report\.css)$")


def source_name(source: str | os.PathLike | None) -> str | None:
    """The name of a data source's own reports and journal folders; None for the repository's sample.

    A folder: its name (``/srv/exports/online_retail`` -> ``online_retail``). A URL: the last part of its path
    without an extension (``postgresql://ana@db/shop`` -> ``shop``, ``duckdb:///data/shop.duckdb`` -> ``shop``,
    ``pyspark:///lake/shop?...`` -> ``shop``), else its host (``sc://spark.example.com:15002`` ->
    ``spark.example.com``). Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``; a name
    the sample's folders use (a week, ``interactive``) is prefixed with ``source-``.
    """
    if source is None or str(source) == "":
        return None
    text = str(source)
    if _URL.match(text):
        rest = text.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0].split("/;", 1)[0]
        host, _, path = rest.partition("/")
        parts = [p for p in unquote(path).split("/") if p]
        name = Path(parts[-1]).stem if parts else host.rsplit("@", 1)[-1].split(":", 1)[0]
    else:
        folder = Path(os.path.expanduser(text))
        folder = (folder if folder.is_absolute() else REPO_ROOT / folder).resolve()
        if folder == DATA_SAMPLES_DIR.resolve():
            return None
        name = folder.name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._") or "source"
    return f"source-{name}" if _RESERVED.match(name) else name


def reports_dir_for(source: str | os.PathLike | None) -> Path:
    """The default reports folder of ``source``: ``reports/<source name>/``, ``reports/`` for the sample."""
    name = source_name(source)
    return REPORTS_DIR / name if name else REPORTS_DIR


def journal_dir_for(source: str | os.PathLike | None) -> Path:
    """The default decision journal of ``source``: ``journal/<source name>/``, ``journal/`` for the sample."""
    name = source_name(source)
    return JOURNAL_DIR / name if name else JOURNAL_DIR
