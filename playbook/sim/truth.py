"""What is really true in a simulated season: each lever's real effect on each cohort, and the cohorts that really
went bad.

The weekly run never reads this: the simulator applies it to the shop's weeks (``sim.shop``) and the reveal
(``sim.reveal``) puts it beside the journal. An entry is keyed by cohort (category x return reason) and lever:

* ``works``: the lever cuts the reason's return propensity of the treated units by ``share`` (0.3 = 30 % of those
  returns never happen);
* ``nothing``: no effect at all;
* ``delays``: the same returns, only later: the days from delivery to the return request are multiplied by ``lag``
  (a K-day read sees fewer returns that are not prevented);
* ``contacts``: no effect on returns, but a treated order leads to a customer contact with ``share`` more probability
  (a guardrail harm);
* ``harms``: the lever raises the reason's return propensity by ``share`` (harm on the primary metric).

A lever with no entry for a cohort does nothing there. ``spikes`` are the weak cohorts the shop really has: a
reason's return propensity of a category multiplied by ``factor`` for orders from the season's week ``from_week``
(0 = the first week of history). ``load_truth`` reads the YAML form written by ``dump_truth``; ``default_truth``
is the sample-like shop's; ``random_truth(seed)`` draws one for the calibration.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from playbook.dev.sample_data import CATEGORIES, STACK

KINDS = ("works", "nothing", "delays", "contacts", "harms")
#: the kinds a team should stop (or never keep): the harmful ones
HARMFUL = ("contacts", "harms")
#: the categories the season's shop sells in volume (swimwear is the tiny noisy one)
MAIN_CATEGORIES = tuple(c for c in CATEGORIES if c != "swimwear")
#: the levers of the decision table (playbook/config/playbook.yaml) by the reason they answer
LEVER_OF_REASON = {
    "size_too_small": "fit_size_message", "size_too_large": "fit_size_message",
    "not_as_described": "clearer_description", "damaged_defective": "packaging_upgrade",
    "wrong_item": "picking_check", "late_delivery": "promise_recalculation",
    "changed_mind": "tighten_promo_eligibility", "quality": "supplier_review", "other": "reason_capture",
}


class TruthError(ValueError):
    """A truth table that does not read: the message says which entry and why."""


@dataclass(frozen=True)
class Effect:
    """A lever's real effect on one cohort (category x reason)."""

    kind: str = "nothing"
    share: float = 0.0  # works: share of returns prevented; harms: share added; contacts: added contact probability
    lag: float = 1.0  # delays: factor on the days from delivery to the return request

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TruthError(f"effect kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not 0.0 <= self.share <= 1.0:
            raise TruthError(f"effect share {self.share}: expected a share between 0 and 1")
        if self.lag < 1.0:
            raise TruthError(f"effect lag {self.lag}: a delay multiplies the days by 1 or more")

    @property
    def cut(self) -> float:
        """The share of the reason's returns prevented (negative when the lever adds returns)."""
        return self.share if self.kind == "works" else -self.share if self.kind == "harms" else 0.0

    @property
    def harmful(self) -> bool:
        return self.kind in HARMFUL and self.share > 0

    def words(self) -> str:
        if self.kind == "works":
            return f"works: prevents {self.share:.0%} of these returns"
        if self.kind == "delays":
            return f"only delays returns (they come {self.lag:.1f} times later), prevents none"
        if self.kind == "contacts":
            return f"prevents no return and raises contacts ({self.share:.0%} of treated orders more)"
        if self.kind == "harms":
            return f"harms: {self.share:.0%} more of these returns"
        return "does nothing"


@dataclass(frozen=True)
class TruthEntry:
    category: str
    reason: str
    lever: str
    effect: Effect


@dataclass(frozen=True)
class Spike:
    """A weak cohort the shop really has: ``reason`` returns of ``category`` multiplied by ``factor`` for orders
    from the start of week ``from_week`` (0 = the first week of the shop's history)."""

    category: str
    reason: str
    factor: float
    from_week: int


@dataclass(frozen=True)
class Truth:
    """The season's truth table (module docstring)."""

    name: str
    entries: tuple[TruthEntry, ...] = ()
    spikes: tuple[Spike, ...] = ()
    notes: str = ""
    _index: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for e in self.entries:
            if e.category not in CATEGORIES:
                raise TruthError(f"truth entry {e}: unknown category {e.category!r} (one of {', '.join(CATEGORIES)})")
            if e.reason not in STACK:
                raise TruthError(f"truth entry {e}: unknown reason {e.reason!r} (one of {', '.join(STACK)})")
            key = (e.category, e.reason, e.lever)
            if key in self._index:
                raise TruthError(f"truth entry {key} is given twice")
            self._index[key] = e.effect
        for s in self.spikes:
            if s.category not in CATEGORIES or s.reason not in STACK or s.factor <= 0 or s.from_week < 0:
                raise TruthError(f"spike {s}: a known category and reason, a positive factor and week")

    def effect(self, category: str, reason: str, lever: str) -> Effect:
        """The lever's real effect on the cohort (nothing when the table has no entry)."""
        return self._index.get((category, reason, lever), Effect())

    def effects(self, lever: str, category: str | None = None) -> list[TruthEntry]:
        """Every entry of ``lever`` (on ``category`` when given) that does something."""
        return [e for e in self.entries if e.lever == lever and e.effect.kind != "nothing"
                and (category is None or e.category == category)]

    def is_spike(self, category: str | None, reason: str | None) -> bool:
        """A cohort step 2 named is real when a spike of the truth is on it (its category and reason)."""
        return any(s.category == category and (reason is None or s.reason == reason) for s in self.spikes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "notes": self.notes,
                "entries": [{"category": e.category, "reason": e.reason, "lever": e.lever, **asdict(e.effect)}
                            for e in self.entries],
                "spikes": [asdict(s) for s in self.spikes]}


def truth_from_dict(data: dict[str, Any]) -> Truth:
    if not isinstance(data, dict):
        raise TruthError("a truth table is a mapping with 'entries' (and 'spikes', 'name', 'notes')")
    entries = []
    for i, raw in enumerate(data.get("entries") or []):
        try:
            entries.append(TruthEntry(str(raw["category"]), str(raw["reason"]), str(raw["lever"]),
                                      Effect(str(raw.get("kind", "nothing")), float(raw.get("share", 0.0)),
                                             float(raw.get("lag", 1.0)))))
        except (KeyError, TypeError, ValueError) as exc:
            raise TruthError(f"truth entry {i + 1} ({raw}): {exc}") from None
    spikes = []
    for i, raw in enumerate(data.get("spikes") or []):
        try:
            spikes.append(Spike(str(raw["category"]), str(raw["reason"]), float(raw["factor"]), int(raw["from_week"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise TruthError(f"spike {i + 1} ({raw}): {exc}") from None
    return Truth(str(data.get("name") or "truth table"), tuple(entries), tuple(spikes), str(data.get("notes") or ""))


def load_truth(path: str | Path) -> Truth:
    """The truth table of a YAML file (the form :func:`dump_truth` writes)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TruthError(f"cannot read the truth table {path}: {exc}") from None
    return truth_from_dict(data)


def dump_truth(truth: Truth) -> str:
    return yaml.safe_dump(truth.to_dict(), sort_keys=False, allow_unicode=True)


def default_truth() -> Truth:
    """The sample-like shop: knitwear's size_too_small returns triple from week 10 of its history (the weak
    cohort, as in the sample), shoes' size_too_small returns rise 2.5 times from week 14 and dresses'
    not_as_described returns triple from week 15. A fit message works on knitwear (cuts 45 % of those returns) but only delays its
    size_too_large returns, and does nothing on shoes; clearer descriptions work on dresses (35 %); sturdier
    packaging raises contacts (questions about the new box); the promise recalculation only delays returns; a
    supplier review of knitwear's quality harms (20 % more quality returns)."""
    E = Effect
    entries = (
        TruthEntry("knitwear", "size_too_small", "fit_size_message", E("works", 0.45)),
        TruthEntry("knitwear", "size_too_large", "fit_size_message", E("delays", 0.0, 1.6)),
        TruthEntry("shoes", "size_too_small", "fit_size_message", E("nothing")),
        TruthEntry("jeans", "size_too_small", "fit_size_message", E("works", 0.30)),
        TruthEntry("dresses", "not_as_described", "clearer_description", E("works", 0.35)),
        TruthEntry("tops", "changed_mind", "tighten_promo_eligibility", E("nothing")),
        TruthEntry("knitwear", "damaged_defective", "packaging_upgrade", E("contacts", 0.05)),
        TruthEntry("outerwear", "late_delivery", "promise_recalculation", E("delays", 0.0, 1.5)),
        TruthEntry("knitwear", "quality", "supplier_review", E("harms", 0.20)),
    )
    spikes = (Spike("knitwear", "size_too_small", 3.3, 10), Spike("shoes", "size_too_small", 2.5, 14),
              Spike("dresses", "not_as_described", 3.0, 15))
    return Truth("the sample-like shop", entries, spikes,
                 "Knitwear's size_too_small returns triple from week 10 of the history (the weak cohort); shoes' "
                 "size returns and dresses' descriptions go wrong later, inside the season.")


def random_truth(seed: int, history_weeks: int = 16) -> Truth:
    """A truth table drawn from ``seed``: one to two spikes (a main category's size or description reason, x2.5
    to x5, from a week of the last six of history: strong enough that step 3 can often power a plan, so that a
    season holds tests to measure) and, for every main category x reason, the
    reason's lever: works (35 %, cutting 15-60 %), does nothing (35 %), only delays (12 %, x1.3-2), raises
    contacts (9 %, +3-10 %) or harms (9 %, +10-40 %)."""
    rng = np.random.default_rng([seed, 20])
    entries = []
    kinds, p = ("works", "nothing", "delays", "contacts", "harms"), (0.35, 0.35, 0.12, 0.09, 0.09)
    for cat in MAIN_CATEGORIES:
        for reason in STACK:
            kind = str(rng.choice(kinds, p=p))
            share = {"works": rng.uniform(0.15, 0.60), "contacts": rng.uniform(0.03, 0.10),
                     "harms": rng.uniform(0.10, 0.40)}.get(kind, 0.0)
            lag = rng.uniform(1.3, 2.0) if kind == "delays" else 1.0
            entries.append(TruthEntry(cat, reason, LEVER_OF_REASON[reason], Effect(kind, round(float(share), 3),
                                                                                    round(float(lag), 2))))
    # a fit message is one lever for both size reasons: keep one entry per (category, reason, lever) as drawn
    spiky = ("size_too_small", "size_too_large", "not_as_described")
    spikes = []
    used = set()
    for _ in range(int(rng.integers(1, 3))):
        cat = str(rng.choice(MAIN_CATEGORIES[:6]))
        reason = str(rng.choice(spiky))
        if (cat, reason) in used:
            continue
        used.add((cat, reason))
        spikes.append(Spike(cat, reason, round(float(rng.uniform(2.5, 5.0)), 2),
                            int(rng.integers(history_weeks - 6, history_weeks - 2))))
    return Truth(f"random truth table (seed {seed})", tuple(entries), tuple(spikes))
