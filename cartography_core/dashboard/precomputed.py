"""A statistics dataset (the folder ``cluster.compute_stats_dask`` writes) browsed in bounded memory.

Every figure comes from pyarrow dataset scans of the columns it needs, batch by batch (``SCAN_ROWS`` rows),
never from one table of all the examples. Memory is one batch plus what a figure keeps: the binned density
and histograms (fixed sizes), the counts per class and region, a point sample of ``SAMPLE_POINTS`` rows and
the ``k`` rows of a page. The numbers are those of the in-memory functions of :mod:`.datamap`,
:mod:`~cartography_core.regions` and :mod:`~cartography_core.select` on the whole table (the tests compare
them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from .. import storage
from ..cluster import dataset_meta, finished_meta, part_names, read_trajectory
from ..errors import LogError
from ..examples import with_examples
from ..ingest import EXAMPLES_NAMES
from ..io import read_table_file
from ..regions import REGIONS, RegionThresholds, region_codes
from ..scores import SCORES, VARIABILITY_MAX
from .cache import signature
from .datamap import BINS, HARD_SHARE, MAX_POINTS, SAMPLE_POINTS, density_counts, density_table, histogram

SCAN_ROWS = 1 << 20
HISTOGRAMS = ("confidence", "variability", "correctness")


@dataclass(frozen=True)
class Dataset:
    """A statistics dataset folder: its metadata and part files (nothing else is read when it is opened)."""

    location: str | Path
    meta: dict
    parts: tuple[str, ...]
    fs: object | None

    @property
    def n(self) -> int:
        return int(self.meta["n_examples"])

    @property
    def label_names(self) -> list[str]:
        return self.meta.get("label_names") or [str(k) for k in range(int(self.meta["n_classes"]))]

    def scan(self, columns: list[str], filter: pc.Expression | None = None) -> Iterator[pa.RecordBatch]:
        """The dataset's rows, ``columns`` only, in batches of at most ``SCAN_ROWS``."""
        data = pads.dataset(list(self.parts), format="parquet", filesystem=self.fs)
        # one batch ahead, one file at a time: pyarrow's default read-ahead holds up to 16 batches of 4 files
        yield from data.to_batches(
            columns=columns, filter=filter, batch_size=SCAN_ROWS, batch_readahead=1, fragment_readahead=1
        )

    def trajectory(self, example_id) -> pa.Table:
        """One example's per-epoch gold probability and prediction (one row group of one file)."""
        return read_trajectory(self.location, example_id, self.meta)


def is_dataset(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished statistics dataset of one run (not a pool of runs)."""
    meta = dataset_meta(folder)
    return bool(meta) and meta.get("engine") == "dask" and "runs" not in meta


def open_dataset(location: str | Path) -> Dataset:
    """The dataset at ``location`` (a path or URL); a clear error when it is not a finished one."""
    fs, path = storage.locate(location)
    meta = finished_meta(location)
    parts = tuple(str(path / n) for n in part_names(fs, path))
    return Dataset(location, meta, parts, fs)


@dataclass(frozen=True)
class Overview:
    """What the map page draws, for one class or all."""

    density: pa.Table  # datamap.density of the class's rows (group 0)
    histograms: dict[str, pa.Table]  # datamap.histogram of each of HISTOGRAMS (ranges: histogram_ranges)
    region_counts: np.ndarray  # (K, len(REGIONS)) examples per class and region
    label_issues: np.ndarray  # (K,) examples flagged label_issue per class
    sample: pa.Table  # up to SAMPLE_POINTS rows: id, label, confidence, variability, correctness, label_issue


def overview(
    ds: Dataset,
    thresholds: RegionThresholds = RegionThresholds(),
    *,
    cls: int | None = None,
    bins: int = BINS,
    size: int = SAMPLE_POINTS,
    seed: int = 0,
) -> Overview:
    """One scan: the binned density and the histograms of class ``cls`` (all when None), the counts
    per class and region of every class, and the points to draw, as ``datamap.sample_points`` picks them: every
    row of the class when it has at most ``MAX_POINTS``, else ``size`` rows, the ``HARD_SHARE`` with the
    lowest ``confidence + variability`` and the rest uniformly at random (a seeded random key per row)."""
    k = len(ds.label_names)
    dens = np.zeros(bins * bins, dtype=np.int64)
    ranges = histogram_ranges(int(ds.meta["n_epochs"]))
    hist = {name: np.zeros(ranges[name][0], dtype=np.int64) for name in HISTOGRAMS}
    regions = np.zeros(k * len(REGIONS), dtype=np.int64)
    flagged = np.zeros(k, dtype=np.int64)
    n_hard = int(size * HARD_SHARE)
    every: pa.Table | None = None  # all the class's rows while they are at most MAX_POINTS
    hard = rand = None  # the n_hard rows of smallest confidence + variability; the size rows of smallest key
    shown = 0
    rng = np.random.default_rng(seed)
    for batch in ds.scan(["id", "label", "pred_label", "confidence", "variability", "correctness", "label_issue"]):
        label = batch["label"].to_numpy()
        conf, var = batch["confidence"].to_numpy(), batch["variability"].to_numpy()
        regions += np.bincount(label * len(REGIONS) + region_codes(conf, var, thresholds), minlength=regions.size)
        flagged += np.bincount(label[batch["label_issue"].to_numpy(zero_copy_only=False)], minlength=k)
        mine = np.ones(len(label), dtype=bool) if cls is None else label == cls
        dens += density_counts(var[mine], conf[mine], np.zeros(int(mine.sum()), dtype=np.int64), 1, bins=bins)
        for name in HISTOGRAMS:
            n_bins, hi = ranges[name]
            values = batch[name].to_numpy(zero_copy_only=False)[mine]
            hist[name] += histogram(values, bins=n_bins, hi=hi)["count"].to_numpy()
        rows = pa.Table.from_batches([batch]).filter(pa.array(mine))
        shown += rows.num_rows
        if shown <= MAX_POINTS:
            every = rows if every is None else pa.concat_tables([every, rows])
        else:
            every = None
        rows = rows.append_column("_hard", pa.array(conf[mine] + var[mine]))
        rows = rows.append_column("_key", pa.array(rng.random(rows.num_rows)))
        hard, rand = _smallest(hard, rows, "_hard", n_hard), _smallest(rand, rows, "_key", size)
    if shown <= MAX_POINTS:
        sample = every if every is not None else pa.table({"id": pa.array([], pa.int64())})
    else:  # rand holds size rows; at most n_hard of them are among the hard ones
        others = rand.filter(pc.invert(pc.is_in(rand["id"], hard["id"])))
        sample = pa.concat_tables([hard, others.slice(0, size - n_hard)]).drop_columns(["_hard", "_key"])
    edges = {name: np.linspace(0.0, hi, n_bins + 1) for name, (n_bins, hi) in ranges.items()}
    return Overview(
        density=density_table(dens, bins=bins),
        histograms={
            name: pa.table({"lo": edges[name][:-1], "hi": edges[name][1:], "count": c}) for name, c in hist.items()
        },
        region_counts=regions.reshape(k, len(REGIONS)),
        label_issues=flagged,
        sample=sample.sort_by("id"),
    )


def histogram_ranges(n_epochs: int) -> dict[str, tuple[int, float]]:
    """(bins, upper edge) of each histogram the map page draws: variability over [0, 0.5], correctness one bin
    per possible value when there are under 20 epochs."""
    return {
        "confidence": (20, 1.0),
        "variability": (20, VARIABILITY_MAX),
        "correctness": (n_epochs + 1 if n_epochs < 20 else 20, 1.0),
    }


def _smallest(kept: pa.Table | None, new: pa.Table, key: str, n: int) -> pa.Table:
    """The ``n`` rows of ``kept`` and ``new`` with the smallest ``key``."""
    rows = new if kept is None else pa.concat_tables([kept, new])
    if rows.num_rows <= n:
        return rows
    return rows.take(pa.array(np.sort(np.argpartition(rows[key].to_numpy(), n - 1)[:n])))


def top_rows(
    ds: Dataset,
    metric: str,
    *,
    k: int = 100,
    hardest: bool = True,
    region: str | None = None,
    thresholds: RegionThresholds = RegionThresholds(),
    cls: int | None = None,
    flagged: bool = False,
) -> pa.Table:
    """The ``k`` rows (every column) from the hardest (or easiest) end of ``metric``, ties by id ascending,
    among the rows of ``region`` and class ``cls`` (all when None), only those flagged ``label_issue`` when
    ``flagged``: ``select.rank_order``'s first ``k``."""
    if metric not in SCORES:
        raise LogError(f"unknown metric {metric!r}; choose one of: {', '.join(SCORES)}")
    if region is not None and region not in REGIONS:
        raise LogError(f"unknown region {region!r}; choose one of: {', '.join(REGIONS)}")
    flip = (SCORES[metric].harder == "lower") != hardest  # sort descending
    columns = ["id", metric] + (["confidence", "variability"] if region is not None else [])
    columns += (["label"] if cls is not None else []) + (["label_issue"] if flagged else [])
    kept: pa.Table | None = None  # the k best (id, key) so far: the scan reads only the columns it ranks by
    for batch in ds.scan(list(dict.fromkeys(columns))):
        rows = pa.Table.from_batches([batch])
        mask = np.ones(rows.num_rows, dtype=bool)
        if region is not None:
            codes = region_codes(rows["confidence"].to_numpy(), rows["variability"].to_numpy(), thresholds)
            mask &= codes == REGIONS.index(region)
        if cls is not None:
            mask &= rows["label"].to_numpy() == cls
        if flagged:
            mask &= rows["label_issue"].to_numpy(zero_copy_only=False)
        rows = rows.filter(pa.array(mask))
        values = rows[metric].to_numpy(zero_copy_only=False).astype(np.float64)
        if np.isnan(values).any() and not metric.endswith("_epoch"):
            raise LogError(f"{metric} is undefined for some examples (a log of probabilities has no aum)")
        values = np.where(np.isnan(values), np.inf, values)  # never learned: later than any epoch
        rows = pa.table({"id": rows["id"], "_v": pa.array(-values if flip else values)})
        both = rows if kept is None else pa.concat_tables([kept, rows])
        order = pc.sort_indices(both, sort_keys=[("_v", "ascending"), ("id", "ascending")])
        kept = both.take(order.slice(0, k))
    if kept is None or kept.num_rows == 0:
        return pa.table({})
    # then the whole rows of those k ids only, in their rank
    full = pa.concat_tables([pa.Table.from_batches([b]) for b in ds.scan(None, filter=pc.field("id").isin(kept["id"]))])
    position = pc.index_in(kept["id"], value_set=full["id"])
    return full.take(position)


def examples_file(ds: Dataset):
    """``(filesystem, path)`` of the examples file: one in the dataset's folder or the one above, else the
    run's own (``examples`` in ``cartography.json``) while it can still be read; None when there is none."""
    fs, path = storage.locate(ds.location)
    for folder in (path, path.parent):
        for name in EXAMPLES_NAMES:
            candidate = folder / name
            if candidate.exists() if fs is None else storage.kind(fs, candidate) == "file":
                return fs, candidate
    recorded = ds.meta.get("examples")
    if recorded:
        fs, path = storage.locate(recorded)
        if path.exists() if fs is None else storage.kind(fs, path) == "file":
            return fs, path
    return None


def examples_signature(ds: Dataset) -> str:
    """A value that changes with the examples file :func:`with_texts` reads (a cache key for texts: the run's
    own examples file lies outside the dataset's folder): :func:`~.cache.signature` of a local file, fsspec's
    checksum of a remote one, "" when there is none."""
    found = examples_file(ds)
    if found is None:
        return ""
    fs, path = found
    return signature([], files=[path]) if fs is None else f"{path}:{fs.checksum(str(path))}"


def with_texts(ds: Dataset, rows: pa.Table) -> pa.Table:
    """``rows`` joined with :func:`examples_file`, reading only the examples of ``rows`` from a parquet file;
    a CSV or JSONL file is read whole, its ids typed as the dataset's. ``rows`` unchanged when there is none."""
    found = examples_file(ds)
    if found is None:
        return rows
    fs, path = found
    if path.suffix == ".parquet":
        examples = pads.dataset(str(path), format="parquet", filesystem=fs).to_table(
            filter=pc.field("id").isin(rows["id"])
        )
    else:
        id_type = rows.schema.field("id").type
        examples = read_table_file(path, path.name, fs=fs, id_type=id_type)
    return with_examples(rows.replace_schema_metadata({"cartography": json.dumps(ds.meta)}), examples)
