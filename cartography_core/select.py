"""Choose subsets of examples from a statistics table: a region, the top fraction by a score, a random baseline.

Counts are exact: a fraction f of N examples selects ``n = floor(f * N)`` rows, with f taken as the decimal
it was written (``Fraction(str(f))``), so 0.29 of 100 examples is 29 rows (not 28, and not allenai's
``int(f * N) + 1``). With ``both_ends``, the n rows are ``ceil(n / 2)`` from the chosen end and
``floor(n / 2)`` from the other. Ranking ties break by id, ascending, whatever the direction.

"Hardest" follows each score's direction in ``stats.SCORES``: lowest confidence (hard-to-learn), highest
variability (ambiguous), lowest aum, ...; "easiest" is the other end. A null learned epoch means "never
learned" and ranks as later than every epoch.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa

from .errors import LogError
from .regions import AMBIGUOUS, EASY, HARD, OTHER, REGIONS, RegionThresholds, region_codes
from .scores import SCORES


def subset_size(fraction: float, n: int) -> int:
    """``floor(fraction * n)`` with ``fraction`` read as the decimal it was written.

    >>> subset_size(0.29, 100), subset_size(0.33, 10), subset_size(1, 7)
    (29, 3, 7)
    """
    if not 0 < fraction <= 1:
        raise LogError(f"fraction must lie in (0, 1], got {fraction}")
    return math.floor(Fraction(str(fraction)) * n)


def _id_rank(table: pa.Table) -> np.ndarray:
    ids = table["id"].to_numpy(zero_copy_only=False)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    return rank


def rank_order(table: pa.Table, metric: str, *, hardest: bool = True) -> np.ndarray:
    """Row indices of ``table`` from the hardest (or easiest) end of ``metric``; ties by id ascending."""
    if metric not in SCORES:
        raise LogError(f"unknown metric {metric!r}; choose one of: {', '.join(SCORES)}")
    if metric not in table.column_names:
        raise LogError(f"the statistics table has no column {metric!r}")
    col = table[metric]
    values = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
    if col.null_count:
        if not metric.endswith("_epoch"):
            raise LogError(f"{metric} is undefined for {col.null_count} examples (a log of probabilities has no aum)")
        values = np.where(np.isnan(values), np.inf, values)  # never learned: later than any epoch
    key = values if SCORES[metric].harder == "lower" else -values
    if not hardest:
        key = -key
    return np.lexsort((_id_rank(table), key))


def select_fraction(
    table: pa.Table, metric: str, fraction: float, *, hardest: bool = True, both_ends: bool = False
) -> np.ndarray:
    """Row indices of the ``floor(fraction * N)`` examples at the hardest (or easiest) end of ``metric``."""
    n = subset_size(fraction, table.num_rows)
    order = rank_order(table, metric, hardest=hardest)
    if not both_ends:
        return order[:n]
    near, far = math.ceil(n / 2), n // 2
    return np.concatenate([order[:near], order[len(order) - far :][::-1]])


def select_region(table: pa.Table, region: str, thresholds: RegionThresholds = RegionThresholds()) -> np.ndarray:
    """Row indices (in table order) of the examples in ``region`` under ``thresholds``."""
    if region not in REGIONS:
        raise LogError(f"unknown region {region!r}; choose one of: {', '.join(REGIONS)}")
    codes = region_codes(table["confidence"].to_numpy(), table["variability"].to_numpy(), thresholds)
    return np.flatnonzero(codes == REGIONS.index(region))


def select_label_issues(table: pa.Table) -> np.ndarray:
    """Row indices of the examples flagged ``label_issue``, likeliest first: by aum (margin for a log of
    probabilities, which has no aum), lowest first, ties by id."""
    metric = "aum" if table["aum"].null_count < table.num_rows else "margin"
    order = rank_order(table, metric)
    return order[table["label_issue"].to_numpy(zero_copy_only=False)[order]]


def select_random(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct row indices out of ``n_total``, sorted, from ``numpy.random.default_rng(seed)``."""
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def top_fraction_members(table: pa.Table, fraction: float) -> np.ndarray:
    """The paper's subsets as a (len(REGIONS), N) bool membership matrix: hard-to-learn is the
    ``floor(fraction * N)`` lowest confidence, easy-to-learn the highest confidence, ambiguous the highest
    variability (each exactly :func:`select_fraction`'s rows, so ``select --metric confidence --fraction F``
    lists the same hard-to-learn examples); they may overlap, and "other" is in none of them."""
    members = np.zeros((len(REGIONS), table.num_rows), dtype=bool)
    for region, metric, hardest in [
        (EASY, "confidence", False),
        (HARD, "confidence", True),
        (AMBIGUOUS, "variability", True),
    ]:
        members[REGIONS.index(region), select_fraction(table, metric, fraction, hardest=hardest)] = True
    members[REGIONS.index(OTHER)] = ~members.any(axis=0)
    return members
