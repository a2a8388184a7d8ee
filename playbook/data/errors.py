"""The data layer's error for a source that cannot be opened (``SourceError``)."""
from __future__ import annotations


class SourceError(ValueError):
    """The source itself cannot be opened (missing folder, ambiguous files, bad URL)."""
