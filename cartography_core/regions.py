"""The data map's regions: easy-to-learn, ambiguous, hard-to-learn (Swayamdipta et al. 2020, Sec. 2-3).

Rule, applied in this order (``RegionThresholds`` holds the three numbers; defaults in brackets)::

    ambiguous       variability >= ambiguous_min_variability                       [0.2]
    easy-to-learn   variability <  ambiguous_min_variability and confidence >= easy_min_confidence  [0.5]
    hard-to-learn   variability <  ambiguous_min_variability and confidence <  hard_max_confidence  [0.5]
    other           everything else (only when hard_max_confidence < easy_min_confidence leaves a gap)

The paper's own subsets are "the top q% by a metric" instead: see ``cartography_core.select``
(``select_fraction`` and ``top_fraction_codes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import LogError

EASY, AMBIGUOUS, HARD, OTHER = "easy-to-learn", "ambiguous", "hard-to-learn", "other"
REGIONS = (EASY, AMBIGUOUS, HARD, OTHER)


@dataclass(frozen=True)
class RegionThresholds:
    """Boundaries of the regions on the data map (confidence on y, variability on x)."""

    ambiguous_min_variability: float = 0.2
    easy_min_confidence: float = 0.5
    hard_max_confidence: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.ambiguous_min_variability <= 0.5:
            raise LogError(f"ambiguous_min_variability must lie in [0, 0.5], got {self.ambiguous_min_variability}")
        for name in ("easy_min_confidence", "hard_max_confidence"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise LogError(f"{name} must lie in [0, 1], got {v}")
        if self.hard_max_confidence > self.easy_min_confidence:
            raise LogError(
                f"hard_max_confidence ({self.hard_max_confidence}) must not exceed easy_min_confidence "
                f"({self.easy_min_confidence}): an example cannot be both easy and hard"
            )


def region_codes(
    confidence: np.ndarray, variability: np.ndarray, thresholds: RegionThresholds = RegionThresholds()
) -> np.ndarray:
    """Region of each example as an index into ``REGIONS``, (N,) int8, by the rule in the module docstring.

    >>> region_codes(np.array([0.9, 0.5, 0.1, 0.4]), np.array([0.05, 0.3, 0.05, 0.1])).tolist()
    [0, 1, 2, 2]
    """
    t = thresholds
    low_var = variability < t.ambiguous_min_variability
    return np.select(
        [~low_var, confidence >= t.easy_min_confidence, confidence < t.hard_max_confidence],
        [np.int8(1), np.int8(0), np.int8(2)],
        default=np.int8(3),
    ).astype(np.int8)


def region_names(codes: np.ndarray) -> np.ndarray:
    """(N,) object array of region names for ``region_codes``' output."""
    return np.asarray(REGIONS, dtype=object)[codes]


def region_counts(codes: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None) -> pa.Table:
    """Examples per (class, region): a column ``class``, one column per region and ``total``; a last row "all".

    ``codes`` are :func:`region_codes`' output and ``labels`` the gold class indices, both (N,).
    """
    classes = np.unique(labels)
    names = [label_names[c] if label_names else str(c) for c in classes]
    cls = np.searchsorted(classes, labels)
    r = len(REGIONS)
    counts = np.bincount(cls * r + codes, minlength=len(classes) * r).reshape(-1, r)  # (classes, regions)
    counts = np.vstack([counts, counts.sum(axis=0)])
    cols: dict[str, object] = {"class": names + ["all"]}
    cols.update({name: counts[:, j] for j, name in enumerate(REGIONS)})
    cols["total"] = counts.sum(axis=1)
    return pa.table(cols)
