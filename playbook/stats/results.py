"""Small typed results shared by every statistical function.

Style after tea-tasting / statsmodels: a function takes data and returns a result with
``estimate``, ``ci_low``, ``ci_high``, ``p_value``, ``method`` and ``n``. After gbstats, a
result computed on degenerate input (empty arm, zero variance, zero baseline...) carries
its own explanation in ``error`` instead of raising or passing NaN on silently.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any


def clean_number(x: Any) -> Any:
    """float NaN/inf -> None, numpy scalars -> Python scalars, so JSON stays strict."""
    if x is None:
        return None
    if isinstance(x, (dt.date, dt.datetime)):  # also pandas.Timestamp, a datetime subclass
        return x.isoformat()
    if hasattr(x, "item") and not isinstance(x, (list, dict, str)):
        try:
            x = x.item()
        except (AttributeError, ValueError):
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def jsonable(obj: Any) -> Any:
    """A strict-JSON copy: dict keys as text, NaN/inf -> None, numpy scalars -> Python, dates -> ISO,
    DataFrames -> lists of records, objects with ``to_dict`` -> their dict."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a DataFrame, without importing pandas here
        return jsonable(obj.to_dict(orient="records"))
    if hasattr(obj, "to_dict") and callable(obj.to_dict) and not isinstance(obj, type):
        return jsonable(obj.to_dict())
    return clean_number(obj)


_clean = jsonable  # the name the modules of this package import


@dataclass(frozen=True)
class Estimate:
    """One estimated quantity with its interval.

    Attributes:
        estimate: point estimate (None when it cannot be computed; see ``error``).
        ci_low, ci_high: bounds of the ``confidence`` interval (None when no interval exists).
        p_value: two-sided p-value against ``null_value`` (None when not applicable).
        method: short name of the method (``newcombe``, ``delta``, ``fieller``, ``welch``...).
        n: number of independent units behind the estimate (customers, slices...).
        null_value: the value meaning "no effect" (0 for differences, 1 for ratios).
        confidence: interval level.
        error: why no estimate or no interval exists, in words (None when all is well).
        details: small extra numbers worth reporting (arm sizes, phi, k...).
    """

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    n: int
    p_value: float | None = None
    null_value: float = 0.0
    confidence: float = 0.95
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("estimate", "ci_low", "ci_high", "p_value"):
            object.__setattr__(self, name, clean_number(getattr(self, name)))
        if self.error is None and self.estimate is None:
            object.__setattr__(self, "error", "no estimate could be computed")

    @classmethod
    def unavailable(cls, method: str, n: int, error: str, **details: Any) -> "Estimate":
        """A result that says why nothing could be estimated."""
        return cls(None, None, None, method, int(n), error=error, details=details)

    @property
    def ok(self) -> bool:
        return self.error is None and self.ci_low is not None and self.ci_high is not None

    @property
    def ci(self) -> tuple[float | None, float | None]:
        return (self.ci_low, self.ci_high)

    def excludes_null(self) -> bool:
        """True when the whole interval lies on one side of ``null_value``."""
        if not self.ok:
            return False
        return self.ci_low > self.null_value or self.ci_high < self.null_value

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))

    def __str__(self) -> str:
        if self.estimate is None:
            return f"{self.method}: not available ({self.error}), n={self.n}"
        text = f"{self.method}: {self.estimate:.4g}"
        if self.ok:
            text += f" [{self.ci_low:.4g}, {self.ci_high:.4g}] ({self.confidence:.0%} CI)"
        else:
            text += f" (no interval: {self.error})"
        if self.p_value is not None:
            text += f", p={self.p_value:.3g}"
        return text + f", n={self.n}"

    def _repr_html_(self) -> str:
        import html

        return f"<code>{html.escape(str(self))}</code>"
