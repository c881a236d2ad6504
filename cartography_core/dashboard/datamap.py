"""What a data-map view needs, in numpy: a binned density, a capped point sample, histograms, row filters,
the top rows by a score, and one example's per-epoch trajectory.

The map puts variability on x (range [0, 0.5]) and confidence on y ([0, 1]). Up to ``MAX_POINTS`` examples
are drawn as points; above that, :func:`density` bins them (``np.bincount`` over (group, x bin, y bin), all
classes of 10M examples in well under a second) and :func:`sample_points` keeps a capped sample that
over-samples the hard-to-learn corner (lowest ``confidence + variability``), so that the examples a user
looks for stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import LogError
from ..ingest import Run, read_epoch
from ..scores import CONFIDENCE_MAX, VARIABILITY_MAX
from ..stats import EpochMatrix, epoch_quantities

MAX_POINTS = 20_000
SAMPLE_POINTS = 5_000
HARD_SHARE = 0.4  # of the sample, taken from the hard-to-learn corner
BINS = 80
VAR_MAX, CONF_MAX = VARIABILITY_MAX, CONFIDENCE_MAX


def density(
    variability: np.ndarray, confidence: np.ndarray, groups: np.ndarray | None = None, *, bins: int = BINS
) -> pa.Table:
    """Counts of examples per (group, variability bin, confidence bin), non-empty bins only.

    Columns: ``group`` (int), ``var_lo``, ``var_hi``, ``conf_lo``, ``conf_hi`` (bin edges), ``count``. Bins are
    ``bins`` equal steps of [0, 0.5] x [0, 1]; the top edge belongs to the last bin.

    >>> density(np.array([0.0, 0.01, 0.5]), np.array([0.0, 0.0, 1.0]), bins=2)["count"].to_pylist()
    [2, 1]
    """
    g = np.zeros(len(variability), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    n_groups = int(g.max()) + 1 if g.size else 1
    return density_table(density_counts(variability, confidence, g, n_groups, bins=bins), bins=bins)


def density_counts(
    variability: np.ndarray, confidence: np.ndarray, groups: np.ndarray, n_groups: int, *, bins: int = BINS
) -> np.ndarray:
    """(n_groups * bins * bins,) int64 counts per (group, variability bin, confidence bin), flat; counts of
    several batches add up to the counts of their union."""
    ix = np.minimum((variability * (bins / VAR_MAX)).astype(np.int64), bins - 1)
    iy = np.minimum((confidence * (bins / CONF_MAX)).astype(np.int64), bins - 1)
    return np.bincount((groups * bins + ix) * bins + iy, minlength=n_groups * bins * bins)


def density_table(counts: np.ndarray, *, bins: int = BINS) -> pa.Table:
    """:func:`density_counts`' counts as :func:`density`'s table (non-empty bins only)."""
    nz = np.flatnonzero(counts)
    grp, rest = np.divmod(nz, bins * bins)
    bx, by = np.divmod(rest, bins)
    return pa.table(
        {
            "group": grp,
            "var_lo": bx * (VAR_MAX / bins),
            "var_hi": (bx + 1) * (VAR_MAX / bins),
            "conf_lo": by * (CONF_MAX / bins),
            "conf_hi": (by + 1) * (CONF_MAX / bins),
            "count": counts[nz],
        }
    )


def sample_points(
    confidence: np.ndarray,
    variability: np.ndarray,
    *,
    max_points: int = MAX_POINTS,
    size: int = SAMPLE_POINTS,
    seed: int = 0,
) -> np.ndarray:
    """Sorted row indices to draw as points: all rows when there are at most ``max_points``, else ``size`` rows:
    the ``HARD_SHARE`` of them with the lowest ``confidence + variability`` (the hard-to-learn corner), the rest
    uniformly at random (seeded) from the others."""
    n = len(confidence)
    if n <= max_points:
        return np.arange(n)
    n_hard = int(size * HARD_SHARE)
    hard = np.argpartition(confidence + variability, n_hard)[:n_hard]
    # ``size`` distinct rows hold at least size - n_hard outside ``hard``: a uniform sample of the others
    # without a pass over all N rows
    drawn = np.random.default_rng(seed).choice(n, size=size, replace=False)
    others = drawn[~np.isin(drawn, hard)][: size - n_hard]
    return np.sort(np.concatenate([hard, others]))


def histogram(values: np.ndarray, *, bins: int = 20, lo: float = 0.0, hi: float = 1.0) -> pa.Table:
    """Columns ``lo``, ``hi``, ``count`` of ``bins`` equal bins over [lo, hi] (NaN values are left out)."""
    counts, edges = np.histogram(values[~np.isnan(values)], bins=bins, range=(lo, hi))
    return pa.table({"lo": edges[:-1], "hi": edges[1:], "count": counts})


@dataclass(frozen=True)
class RowFilter:
    """Which rows a view shows: a region (an index into ``regions.REGIONS``), a brush, a class, a text search."""

    region: int | None = None
    var_range: tuple[float, float] | None = None
    conf_range: tuple[float, float] | None = None
    label: int | None = None
    search: str = ""
    label_issue: bool = False  # keep only rows flagged ``label_issue`` (``label_issues.py``)


def filter_mask(
    stats: pa.Table, f: RowFilter, *, members: np.ndarray | None = None, texts: pa.ChunkedArray | None = None
) -> np.ndarray:
    """(N,) bool: rows of ``stats`` that pass every part of ``f``; ``members`` is the (len(REGIONS), N) region
    membership (``regions.region_members`` or ``select.top_fraction_members``); the search is a
    case-insensitive substring of ``texts`` (or of the id when there is no text)."""
    mask = np.ones(stats.num_rows, dtype=bool)
    if f.region is not None:
        if members is None:
            raise LogError("a region filter needs the region membership")
        mask &= members[f.region]
    if f.var_range is not None:
        v = stats["variability"].to_numpy()
        mask &= (v >= f.var_range[0]) & (v <= f.var_range[1])
    if f.conf_range is not None:
        c = stats["confidence"].to_numpy()
        mask &= (c >= f.conf_range[0]) & (c <= f.conf_range[1])
    if f.label is not None:
        mask &= stats["label"].to_numpy() == f.label
    if f.label_issue:
        mask &= stats["label_issue"].to_numpy(zero_copy_only=False)
    if f.search:
        haystack = texts if texts is not None else pc.cast(stats["id"], pa.string())
        hit = pc.match_substring(haystack, f.search, ignore_case=True)
        mask &= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    return mask


def top_rows(order: np.ndarray, mask: np.ndarray, limit: int | None = None) -> np.ndarray:
    """The rows of ``order`` (e.g. :func:`select.rank_order`) that ``mask`` keeps, in order; the first ``limit``."""
    return order[mask[order]][:limit]


TRAJECTORY_INDEX_CELLS = 50_000_000  # N x E above which trajectories are read per example instead


@dataclass(frozen=True)
class Trajectories:
    """Every example's per-epoch gold probability and prediction, read once: (E, N) arrays aligned with
    ``ids`` (N,), so one example's trajectory is a column lookup, not a read of every epoch file.
    7 bytes per cell: kept only for N x E up to ``TRAJECTORY_INDEX_CELLS`` (350 MB)."""

    epochs: np.ndarray  # (E,) epoch numbers
    ids: pd.Index  # (N,) sorted, as a statistics table's ids are
    p_gold: np.ndarray  # (E, N) float32, NaN where the example was not logged in that epoch
    pred: np.ndarray  # (E, N) int16
    label: np.ndarray  # (N,) int64

    @classmethod
    def from_matrix(cls, matrix: EpochMatrix, ids, labels: np.ndarray) -> Trajectories:
        """From the arrays scored with the statistics (``stats.compute_stats_and_epochs``; memory-mapped from
        the dashboard's cache), rows aligned with ``ids`` and ``labels``: nothing is read from the logs."""
        return cls(np.asarray(matrix.epochs), pd.Index(ids), matrix.p_gold, matrix.pred, np.asarray(labels))

    @classmethod
    def read(cls, run: Run, ids, labels: np.ndarray) -> Trajectories:
        index = pd.Index(ids)
        e_n = (len(run.epochs), len(index))
        p_gold, pred = np.full(e_n, np.nan, dtype=np.float32), np.zeros(e_n, dtype=np.int16)
        for i, ef in enumerate(run.epochs):
            for b in read_epoch(run, ef):
                rows = index.get_indexer(b.ids)
                keep = rows >= 0
                q = epoch_quantities(b.values[keep], b.labels[keep], b.kind)
                p_gold[i, rows[keep]] = q.p_gold
                pred[i, rows[keep]] = q.pred
        return cls(np.array([ef.epoch for ef in run.epochs]), index, p_gold, pred, np.asarray(labels))

    def of(self, example_id) -> pa.Table:
        """:func:`trajectory`'s table for one example, from memory: a binary search of the sorted ids (no hash
        table over N ids to build on the first click)."""
        try:
            at = int(self.ids.searchsorted(example_id))
            found = at < len(self.ids) and self.ids[at] == example_id
        except TypeError:  # an id of the other type (a string for integer ids): not in this run
            found = False
        if not found:
            raise LogError(f"no example with id {example_id!r}")
        logged = ~np.isnan(self.p_gold[:, at])
        pred = self.pred[logged, at].astype(np.int64)
        return pa.table(
            {
                "epoch": self.epochs[logged].astype(np.int64),
                "p_gold": self.p_gold[logged, at].astype(np.float64),
                "correct": pred == self.label[at],
                "pred": pred,
            }
        )


def trajectory(run: Run, example_id) -> pa.Table:
    """Per-epoch ``epoch``, ``p_gold``, ``correct`` and ``pred`` of one example (the epochs it was logged in)."""
    rows = {"epoch": [], "p_gold": [], "correct": [], "pred": []}
    for ef in run.epochs:
        for b in read_epoch(run, ef):
            hit = np.flatnonzero(b.ids == example_id)
            if hit.size:
                q = epoch_quantities(b.values[hit], b.labels[hit], b.kind)
                rows["epoch"].append(ef.epoch)
                rows["p_gold"].append(float(q.p_gold[0]))
                rows["correct"].append(bool(q.correct[0]))
                rows["pred"].append(int(q.pred[0]))
    if not rows["epoch"]:
        raise LogError(f"{run.path}: no example with id {example_id!r}")
    return pa.table(rows)
