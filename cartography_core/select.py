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

from .errors import LogError, show_id
from .regions import AMBIGUOUS, EASY, HARD, OTHER, REGIONS, RegionThresholds, region_codes
from .scores import SCORES
from .stats import name_classes, table_meta

FORMATS = (".csv", ".jsonl", ".parquet")
LABEL_DISAGREEMENTS_ALLOWED = 5  # a few ids whose label was corrected in the examples file after training


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


# ----------------------------------------------------------------------------------------------------------
# Joining with the examples file, and writing


def with_examples(stats: pa.Table, examples: pa.Table | None) -> pa.Table:
    """``stats`` (order kept) with the examples' columns after ``id``; rows of ids absent from it get nulls.

    The examples file must describe the rows that were logged: when it has a ``label`` column (class indices,
    or class names) that disagrees with the logged gold label on more than ``LABEL_DISAGREEMENTS_ALLOWED``
    ids, that is a :class:`LogError` with the count and the first ids (typically a log whose ids are
    positions in a split, not the dataset's ids). A few disagreements are kept as ``label_examples``. Class
    names come from the log, else from the examples' ``label_name`` or string ``label`` column
    (``label_name`` and ``pred_label_name`` are then added). Any other column both tables hold is kept once
    when equal on every row, else the examples' copy is kept as ``<name>_examples``.
    """
    if examples is None:
        return stats
    source = (examples.schema.metadata or {}).get(b"source", b"examples file").decode()
    ex_ids = examples["id"]
    try:
        ex_ids = ex_ids.cast(stats["id"].type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise LogError(
            f"{source}: ids ({ex_ids.type}) cannot be matched to the log's ids ({stats['id'].type})"
        ) from None
    pos = pd.Index(ex_ids.to_numpy(zero_copy_only=False)).get_indexer(stats["id"].to_numpy(zero_copy_only=False))
    taken = examples.drop_columns(["id"]).take(pa.array(pos, mask=pos < 0))
    stats = _reconcile_labels(stats, taken, source)
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


def _reconcile_labels(stats: pa.Table, taken: pa.Table, source: str) -> pa.Table:
    """Check the examples' labels (``taken``: one row per stats row, null where absent) against the log's, and
    name the classes from them when the log has no names."""
    if "label" not in taken.column_names:
        return stats
    logged = stats["label"].to_numpy()
    ex = taken["label"].to_numpy(zero_copy_only=False)
    present = ~pd.isna(ex)
    names = table_meta(stats).get("label_names")
    by_name = pa.types.is_string(taken["label"].type) or pa.types.is_large_string(taken["label"].type)
    if not by_name:
        differ = present & (ex.astype(np.float64) != logged)
    else:
        names = names or _names_from(logged[present], ex[present])
        if names is None:  # a logged class carries several names: rows off their class's usual name differ
            differ = present & _inconsistent(logged, ex, present)
        else:
            differ = present & (np.asarray(_complete(names, stats), dtype=object)[logged] != ex)
    n_bad = int(differ.sum())
    if n_bad > LABEL_DISAGREEMENTS_ALLOWED:
        rows = np.flatnonzero(differ)[:3]
        first = ", ".join(
            f"id {stats['id'][int(i)].as_py()!r} is {show_id(ex[i])} there but {logged[i]} in the log" for i in rows
        )
        raise LogError(
            f"{source}: the gold label of {n_bad} of {int(present.sum())} logged ids differs from the log's "
            f"({first}, ...): its rows are not the rows that were logged (ids that are positions in a split?). "
            "Log the dataset's own ids, or let the recorder write the examples (examples=)"
        )
    if "label_name" not in stats.column_names:
        if not by_name and "label_name" in taken.column_names:
            names = _names_from(logged[present], taken["label_name"].to_numpy(zero_copy_only=False)[present])
        if names:
            stats = name_classes(stats, _complete(names, stats))
    return stats


def _names_from(indices: np.ndarray, names: np.ndarray) -> list[str] | None:
    """Class names by index when every index carries one name in ``names``, else None."""
    pairs = pd.DataFrame({"k": indices, "name": names}).drop_duplicates()
    if pairs["k"].duplicated().any() or pairs["name"].duplicated().any():
        return None
    mapping = dict(zip(pairs["k"].tolist(), pairs["name"].astype(str).tolist()))
    return [mapping.get(k, str(k)) for k in range(max(mapping) + 1)] if mapping else None


def _inconsistent(logged: np.ndarray, ex: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose name is not the most common name of their logged class."""
    frame = pd.DataFrame({"k": logged[present], "name": ex[present]})
    usual = frame.groupby("k")["name"].agg(lambda s: s.value_counts().index[0])
    out = np.zeros(len(logged), dtype=bool)
    out[present] = frame["name"].to_numpy() != usual.reindex(frame["k"]).to_numpy()
    return out


def _complete(names: list[str], stats: pa.Table) -> list[str]:
    k = max(len(names), int(stats["pred_label"].to_numpy().max(initial=0)) + 1, table_meta(stats).get("n_classes") or 0)
    return list(names) + [str(c) for c in range(len(names), k)]


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
