"""Choose subsets of examples from a statistics table, and write them out joined with the examples' text.

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
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import LogError
from .regions import AMBIGUOUS, EASY, HARD, OTHER, REGIONS, RegionThresholds, region_codes
from .stats import SCORES

FORMATS = (".csv", ".jsonl", ".parquet")


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


def select_random(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct row indices out of ``n_total``, sorted, from ``numpy.random.default_rng(seed)``."""
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def top_fraction_codes(table: pa.Table, fraction: float) -> np.ndarray:
    """The paper's regions as codes into ``REGIONS``: top q by variability is ambiguous, lowest q confidence
    hard-to-learn, highest q confidence easy-to-learn (in that precedence where they overlap); rest "other"."""
    codes = np.full(table.num_rows, REGIONS.index(OTHER), dtype=np.int8)
    for region, metric, hardest in [
        (EASY, "confidence", False),
        (HARD, "confidence", True),
        (AMBIGUOUS, "variability", True),
    ]:
        codes[select_fraction(table, metric, fraction, hardest=hardest)] = REGIONS.index(region)
    return codes


# ----------------------------------------------------------------------------------------------------------
# Joining with the examples file, and writing


def with_examples(stats: pa.Table, examples: pa.Table | None) -> pa.Table:
    """``stats`` (order kept) with the examples' columns after ``id``; rows of ids absent from it get nulls.

    A column both tables hold (e.g. ``label``) is kept once when equal on every row, else the examples'
    copy is kept as ``<name>_examples``.
    """
    if examples is None:
        return stats
    ex_ids = examples["id"]
    try:
        ex_ids = ex_ids.cast(stats["id"].type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        source = (examples.schema.metadata or {}).get(b"source", b"examples file").decode()
        raise LogError(
            f"{source}: ids ({ex_ids.type}) cannot be matched to the log's ids ({stats['id'].type})"
        ) from None
    pos = pd.Index(ex_ids.to_numpy(zero_copy_only=False)).get_indexer(stats["id"].to_numpy(zero_copy_only=False))
    taken = examples.drop_columns(["id"]).take(pa.array(pos, mask=pos < 0))
    out = stats.select(["id"])
    for name in taken.column_names:
        col = taken[name]
        if name in stats.column_names:
            if _same(col, stats[name]):
                continue
            name = f"{name}_examples"
        out = out.append_column(name, col)
    for name in stats.column_names[1:]:
        out = out.append_column(name, stats[name])
    return out.replace_schema_metadata(stats.schema.metadata)


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    try:
        return a.cast(b.type).equals(b)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def write_table(table: pa.Table, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``table`` as CSV, JSONL or parquet (by the suffix), atomically; an existing file is kept unless
    ``overwrite``."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise LogError(f"{path}: unknown output format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.exists() and not overwrite:
        raise LogError(f"{path} already exists; choose another name or pass --force to overwrite it")
    if not path.parent.exists():
        raise LogError(f"{path.parent}: no such directory")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(table_bytes(table, path.suffix))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def table_bytes(table: pa.Table, fmt: str) -> bytes:
    """The bytes of ``table`` as ``.csv``, ``.jsonl`` (one JSON object a line) or ``.parquet``."""
    sink = pa.BufferOutputStream()
    if fmt == ".csv":
        pacsv.write_csv(table, sink)
    elif fmt == ".parquet":
        pq.write_table(table, sink, compression="zstd")
    elif fmt == ".jsonl":
        frame = table.to_pandas(types_mapper=pd.ArrowDtype)  # keeps nullable ints as ints
        text = frame.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
        return text.encode("utf-8")
    else:
        raise LogError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    return sink.getvalue().to_pybytes()
