"""A metric as one object: what people read, which way is better, and how it is computed in each setting.

A :class:`Metric` declares its name, title and unit for people, its good direction, the tables it
needs, the slices it is cut by, its maturity rule, and one *form* per setting where it can be
computed (in the spirit of tea-tasting's metrics, which declare the aggregates they need and are
analysed on those aggregates only):

- ``weekly``: its value per ISO week and slice for the baseline (step 1);
- ``per_arm``: its treatment-versus-control comparison in a randomized experiment (notebook 04);
- ``panel``: its weekly values per slice cell of a cohort and its control, for a pre/post
  difference in differences (notebook 04);
- ``money``: what a change of it is worth per week on a cohort (the review and the track record).

A form left as None means "not computable in that setting", and every check (the config's
guardrails, the experiments table's primary metrics) asks the metric, never a list kept elsewhere.
The forms themselves live in :mod:`playbook.metrics.forms`; the metrics in
:mod:`playbook.metrics.dictionary`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from playbook.core.vocabulary import Design, Direction
from playbook.data.facts import Maturity
from playbook.metrics.forms import ArmForm, PanelForm, WeeklyForm


@dataclass(frozen=True)
class CohortWeek:
    """One average recent week of a cohort: units delivered, their gross value, cost per returned unit."""

    units: float
    gross: float
    cost_per_return: float | None
    weeks: tuple[dt.date, ...]


#: What a change of a metric (in its reported unit) is worth per week on a cohort; None: no money value.
MoneyForm = Callable[["Metric", float, CohortWeek], "float | None"]


@dataclass(frozen=True)
class Metric:
    """A documented metric: what is divided by what, over which weekly cohort, and its forms.

    ``format`` is how a value reads (percent, points, days, currency, number); ``scale`` turns the
    engine's fraction into the reported unit (100 for points); ``return_window_days`` is the k of a
    metric that counts returns within k days of delivery (None otherwise). A metric with neither a
    weekly form nor ``shares`` is read only in experiments (a guardrail such as net revenue per
    assigned customer).
    """

    name: str
    title: str
    numerator: str
    denominator: str
    window: str
    unit: str
    format: str
    good_direction: Direction
    needs: tuple[str, ...]
    slices: tuple[str, ...]
    maturity: Maturity = Maturity.NONE
    scale: float = 1.0
    weekly: WeeklyForm | None = None
    per_arm: ArmForm | None = None
    panel: PanelForm | None = None
    money: MoneyForm | None = None
    return_window_days: int | None = None
    #: a distribution (the reason mix: shares of reason codes), reported weekly beside the ratios
    shares: bool = False

    @property
    def weekly_reported(self) -> bool:
        """Whether the baseline reports it every week (an experiment-only metric is not)."""
        return self.weekly is not None or self.shares

    def computable_in(self, design: Design) -> bool:
        """Whether this metric can be compared in an experiment of this design."""
        return (self.per_arm if design == Design.RANDOMIZED else self.panel) is not None

    def money_per_week(self, change: float | None, week: CohortWeek) -> float | None:
        """Money saved per week on the whole cohort by ``change`` of the metric (in its reported unit).

        None when the metric has no money value or the change is unknown: such changes are never
        added to money.
        """
        if self.money is None or change is None or change != change:
            return None
        return self.money(self, change, week)


def returned_units_money(metric: Metric, change: float, week: CohortWeek) -> float | None:
    """A return rate: returned units avoided x the cohort's cost per returned unit."""
    if week.cost_per_return is None:
        return None
    return -(change / metric.scale) * week.units * week.cost_per_return


def discount_money(metric: Metric, change: float, week: CohortWeek) -> float | None:
    """Discount depth: the discount avoided on the cohort's gross value."""
    return -(change / metric.scale) * week.gross
