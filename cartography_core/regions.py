"""The data map's regions: easy-to-learn, ambiguous, hard-to-learn (Swayamdipta et al. 2020, Sec. 2-3).

Rule, applied in this order (``RegionThresholds`` holds the three numbers; defaults in brackets)::

    ambiguous       variability >= ambiguous_min_variability                       [0.2]
    easy-to-learn   variability <  ambiguous_min_variability and confidence >= easy_min_confidence  [0.5]
    hard-to-learn   variability <  ambiguous_min_variability and confidence <  hard_max_confidence  [0.5]
    other           everything else (only when hard_max_confidence < easy_min_confidence leaves a gap)

The paper's own subsets are "the top q% by a metric" instead, which may overlap: see
``cartography_core.select`` (``select_fraction`` and ``top_fraction_members``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import LogError
from .scores import VARIABILITY_MAX

EASY, AMBIGUOUS, HARD, OTHER = "easy-to-learn", "ambiguous", "hard-to-learn", "other"
REGIONS = (EASY, AMBIGUOUS, HARD, OTHER)


@dataclass(frozen=True)
class RegionThresholds:
    """Boundaries of the regions on the data map (confidence on y, variability on x)."""

    ambiguous_min_variability: float = 0.2
    easy_min_confidence: float = 0.5
    hard_max_confidence: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.ambiguous_min_variability <= VARIABILITY_MAX:
            raise LogError(
                f"ambiguous_min_variability must lie in [0, {VARIABILITY_MAX}], got {self.ambiguous_min_variability}"
            )
        for name in ("easy_min_confidence", "hard_max_confidence"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise LogError(f"{name} must lie in [0, 1], got {v}")
        if self.hard_max_confidence > self.easy_min_confidence:
            raise LogError(
                f"hard_max_confidence ({self.hard_max_confidence}) must not exceed easy_min_confidence "
                f"({self.easy_min_confidence}): an example cannot be both easy and hard"
            )

    @classmethod
    def lenient(cls, ambiguous: float, easy: float, hard: float) -> tuple[RegionThresholds, str | None]:
        """The thresholds a view can always draw: a hard-to-learn bound above easy-to-learn's is lowered to it
        (an example cannot be both), with a sentence saying so; the constructor itself refuses that case."""
        if hard <= easy:
            return cls(ambiguous, easy, hard), None
        note = f"Hard-to-learn's bound ({hard}) is above easy-to-learn's ({easy}); using {easy} for both."
        return cls(ambiguous, easy, easy), note


def region_codes(
    confidence: np.ndarray, variability: np.ndarray, thresholds: RegionThresholds = RegionThresholds()
) -> np.ndarray:
    """Region of each example as an index into ``REGIONS``, (N,) int8, by the rule in the module docstring.

    >>> region_codes(np.array([0.9, 0.5, 0.1, 0.4]), np.array([0.05, 0.3, 0.05, 0.1])).tolist()
    [0, 1, 2, 2]
    """
    t = thresholds
    easy = (confidence >= t.easy_min_confidence).view(np.int8)
    hard = (confidence < t.hard_max_confidence).view(np.int8)
    # not ambiguous: easy 0, else hard 2, else other 3 (easy and hard exclude each other: hard_max <= easy_min),
    # as arithmetic on int8 (three times np.select's speed)
    rest = 3 - 3 * easy - hard
    return np.where(~(variability < t.ambiguous_min_variability), np.int8(1), rest)  # NaN: ambiguous, as before


def region_names(codes: np.ndarray) -> np.ndarray:
    """(N,) object array of region names for ``region_codes``' output."""
    return np.asarray(REGIONS, dtype=object)[codes]


def region_members(codes: np.ndarray) -> np.ndarray:
    """(len(REGIONS), N) bool: row j marks the examples of region j (one region each, from ``region_codes``).
    The top-q% rule's regions may overlap (``select.top_fraction_members``)."""
    return codes[None, :] == np.arange(len(REGIONS), dtype=codes.dtype)[:, None]


def member_names(members: np.ndarray) -> np.ndarray:
    """(N,) object: each example's regions joined by "+" (e.g. "ambiguous+hard-to-learn"), "other" if none."""
    out = np.full(members.shape[1], "", dtype=object)
    for j, name in enumerate(REGIONS[:-1]):  # a loop over the three regions, not over examples
        out = np.where(members[j], np.where(out == "", name, out + "+" + name), out)
    return np.where(out == "", OTHER, out)


def region_counts(members: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None) -> pa.Table:
    """Examples per (class, region): a column ``class``, one column per region and ``total`` (the class's
    examples); a last row "all". ``members`` is :func:`region_codes`' (N,) output or a (len(REGIONS), N)
    membership matrix whose regions may overlap (then a class's regions can add up to more than its total).

    >>> region_counts(np.array([0, 2, 2]), np.array([1, 1, 0])).to_pylist()[0]
    {'class': '0', 'easy-to-learn': 0, 'ambiguous': 0, 'hard-to-learn': 1, 'other': 0, 'total': 1}
    """
    members = region_members(members) if members.ndim == 1 else members
    classes, label_at = _class_positions(labels)
    names = [label_names[c] if label_names else str(c) for c in classes]
    # (classes, regions): one count of each region's members' classes (a loop over regions, not examples)
    counts = np.stack([np.bincount(label_at[m], minlength=len(classes)) for m in members], axis=1)
    counts = np.vstack([counts, counts.sum(axis=0)])
    cols: dict[str, object] = {"class": names + ["all"]}
    cols.update({name: counts[:, j] for j, name in enumerate(REGIONS)})
    sizes = np.bincount(label_at, minlength=len(classes))
    cols["total"] = np.append(sizes, sizes.sum())
    return pa.table(cols)


def _class_positions(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct labels, sorted; each example's index into them): ``np.unique(labels, return_inverse=True)``
    without a sort of N labels for class indices, which are small non-negative integers."""
    if labels.size and labels.dtype.kind in "iu" and 0 <= labels.min() and labels.max() < 2**16:
        present = np.bincount(labels) > 0
        classes = np.flatnonzero(present)
        return classes, (np.cumsum(present) - 1)[labels]
    return np.unique(labels, return_inverse=True)
