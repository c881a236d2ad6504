"""Statistics on a Dask cluster: the same columns as :func:`~cartography_core.stats.compute_stats`, for runs
too large for one process, written as a partitioned parquet dataset.

The fold over epochs needs every epoch of an example together, and a log holds one epoch per file. So:

1. **Read** (one task per unit: a parquet file's row groups up to ``unit_rows`` rows, or a whole JSONL file):
   the rows are validated as :mod:`~cartography_core.ingest` validates them (K, kind and id type against the
   run's first batch), and become a frame of ``id, label, epoch, at`` (the file and the row, for messages
   and the in-process order) and ``v0..v{K-1}`` (in the precision the in-process fold computes in,
   ``stats.kernel_dtype``: float32 for float32 logs of K <= 128, else float64).
2. **Shuffle** the frame by ``id`` (Dask's hash partitioning, peer-to-peer shuffle) into P partitions of about
   ``partition_rows`` examples each: every row of an example lands in one partition.
3. **Fold** each partition exactly as the in-process engine does (a :class:`~cartography_core.ingest.
   DynamicsReader` over its rows in file order, then :func:`~cartography_core.stats.fold`), and write
   ``part-<p>.parquet`` (rows sorted by id). Only small counts travel back to the client.

Bytes shuffled: ``24 + 4 K`` per logged row of a float32 log, else ``24 + 8 K`` (an int64 id; ``docs/scale.md``
has the arithmetic); memory per worker task grows with ``partition_rows`` x E, never with N. ``cartography.json``
beside the parts holds the table's metadata (the in-process table's schema metadata), written last: a folder
without it is not a result.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from . import storage
from .errors import LogError, show_id
from .ingest import (
    Batch,
    DynamicsReader,
    Run,
    check_like,
    check_padding,
    open_run,
    opened,
    parquet_file,
    read_file,
)
from .io import atomic_write
from .label_issues import pooled_rule
from .reliability import Reliability, check_one_pass, pooled_meta, raise_for_different_labels, spearman_brown
from .scores import SCORES
from .stats import TABLE_META_KEYS, fold, kernel_dtype, name_classes, row_order, table_meta_of, table_of

META_FILE = "cartography.json"
PART_ROWS = 1 << 19  # examples per shuffled partition: the setting that bounds a worker's memory
UNIT_ROWS = 1 << 20  # rows per read task (whole row groups; a JSONL file is one task)
_FILE_BITS = 40  # ``at`` = file index << 40 | row within the file


@dataclass(frozen=True)
class ClusterResult:
    """What :func:`compute_stats_dask` wrote and read."""

    out: str  # the dataset folder (a path or URL)
    n_examples: int
    n_partitions: int
    rows_read: int  # logged rows over all epochs, padding included
    bytes_shuffled: int  # the bytes of the rows the partitions received: 24 + 4K or 8K a row, plus string ids' lengths


@dataclass(frozen=True)
class _Unit:
    """One read task: some row groups of a parquet file (None: all), or a whole JSONL file."""

    epoch: int
    file: int  # index into the run's files, in reading order
    path: Path
    row_groups: tuple[int, ...] | None


@dataclass(frozen=True)
class _First:
    """The run's first batch, which every other batch must match."""

    k: int
    kind: str
    id_is_str: bool
    dtype: str  # the kernels' precision, float32 or float64 (stats.kernel_dtype of its values)


def compute_stats_dask(
    run: Run | str | Path,
    out: str | Path,
    *,
    client=None,
    max_epochs: int | None = None,
    strict: bool = False,
    partition_rows: int = PART_ROWS,
    unit_rows: int = UNIT_ROWS,
    overwrite: bool = False,
) -> ClusterResult:
    """Score ``run`` on the Dask cluster of ``client`` (None: the current client, else a new ``LocalCluster``)
    and write its statistics table to the folder ``out`` as ``part-<p>.parquet`` files plus ``cartography.json``.

    The columns and values are those of ``compute_stats(run, max_epochs=..., strict=...)``; the rows are
    spread over the parts by a hash of the id (read them back, sorted, with :func:`read_stats`).
    """
    if partition_rows < 1 or unit_rows < 1:
        raise LogError(f"partition_rows and unit_rows must be at least 1, got {partition_rows} and {unit_rows}")
    if max_epochs is not None and max_epochs < 1:
        raise LogError(f"max_epochs must be at least 1, got {max_epochs}")
    run = run if isinstance(run, Run) else open_run(run)
    out_fs, out_path = storage.locate(out)
    _prepare_out(out_fs, out_path, overwrite)
    epochs = run.epochs[:max_epochs] if max_epochs else run.epochs
    with _connected(client) as client:
        return _run(client, run, epochs, out_fs, out_path, str(out), strict, partition_rows, unit_rows)


@contextmanager
def _connected(client):
    """``client``; else the current Dask client; else a new ``LocalCluster`` (workers and threads by the
    machine's cores), closed on leaving."""
    from dask.distributed import Client, LocalCluster, get_client

    if client is not None:
        yield client
        return
    try:
        current = get_client()
    except ValueError:
        current = None
    if current is not None:
        yield current
        return
    # its workers' own logs stay quiet: a bad row reaches the caller as one LogError, not a worker's traceback
    with (
        LocalCluster(dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster,
        Client(cluster) as own,
        _quiet("distributed.shuffle", "distributed.worker", "distributed.core"),
    ):
        yield own


@contextmanager
def _quiet(*loggers: str):
    """These loggers at ERROR and above only, while inside (the shuffle's INFO-like warnings)."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _run(client, run, epochs, out_fs, out_path, out, strict, partition_rows, unit_rows) -> ClusterResult:
    import dask
    import dask.dataframe as dd

    files = [(ef.epoch, path) for ef in epochs for path in ef.paths]
    plans = client.gather(client.map(_plan_file, [run] * len(files), files, [unit_rows] * len(files), pure=False))
    first = plans[0][2]
    units = [
        _Unit(epoch, i, path, rg)
        for i, ((epoch, path), (_, groups, _)) in enumerate(zip(files, plans))
        for rg in groups
    ]
    rows_epoch = [sum(p[0] for (e, _), p in zip(files, plans) if e == ef.epoch) for ef in epochs]
    n_parts = max(1, math.ceil(max(rows_epoch) / partition_rows))
    frames = dd.from_map(_read_unit, units, run=run, first=first, meta=_frame_meta(first), enforce_metadata=False)
    with dask.config.set({"dataframe.shuffle.method": "p2p"}):
        shuffled = frames.shuffle(on="id", npartitions=n_parts)
        parts = shuffled.to_delayed()
    folds = [
        dask.delayed(_fold_part, pure=False)(part, p, run, epochs, strict, first, out_fs, out_path)
        for p, part in enumerate(parts)
    ]
    counts = dask.compute(*folds)
    per_epoch = np.sum([c[1] for c in counts], axis=0)  # (E, 2): rows kept, padding rows
    for ef, (kept, padded) in zip(epochs, per_epoch):
        check_padding(run, ef, int(kept), int(padded))
    n = int(sum(c[0] for c in counts))
    meta = {
        **table_meta_of(run, len(epochs), first.k, first.kind, int(per_epoch[:, 1].sum())),
        "n_examples": n,
        "partitions": n_parts,
        "engine": "dask",
        "examples": _location_of(run, run.examples_path),  # where the texts are, for the dashboard
    }
    _write_bytes(out_fs, out_path / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    rows_read = int(per_epoch.sum())
    return ClusterResult(out, n, n_parts, rows_read, int(sum(c[2] for c in counts)))


def _location_of(run: Run, path) -> str | None:
    """A file of ``run`` as an absolute local path or a URL (None stays None)."""
    if path is None:
        return None
    return str(Path(path).resolve()) if run.fs is None else storage.url(run.fs, path)


def _plan_file(run: Run, file: tuple[int, Path], unit_rows: int):
    """(rows, read units as row-group tuples, the first batch's :class:`_First` for the run's first file)."""
    epoch, path = file
    first = None
    if path == run.epochs[0].paths[0]:
        b = next(read_file(run, path, epoch))
        k = b.values.shape[1]
        first = _First(k, b.kind, b.ids.dtype == object, np.dtype(kernel_dtype(b.values.dtype, k)).name)
    if path.suffix == ".jsonl":  # no row count without parsing: an upper bound (no log line is under 32 bytes)
        size = path.stat().st_size if run.fs is None else run.fs.size(str(path))
        return size // 32, [None], first
    with opened(run.fs, path) as src:
        meta = parquet_file(run, src, path).metadata
    groups, unit, size = [], [], 0
    for g in range(meta.num_row_groups):
        rows = meta.row_group(g).num_rows
        if unit and size + rows > unit_rows:
            groups.append(tuple(unit))
            unit, size = [], 0
        unit.append(g)
        size += rows
    groups.append(tuple(unit) if unit else None)  # a file without row groups: read whole, to name its emptiness
    return meta.num_rows, groups, first


def _frame_meta(first: _First) -> pd.DataFrame:
    cols = {
        "id": pd.Series([], dtype="str" if first.id_is_str else "int64"),
        "label": pd.Series([], dtype="int32"),
        "epoch": pd.Series([], dtype="int32"),
        "at": pd.Series([], dtype="int64"),
    }
    cols.update({f"v{j}": pd.Series([], dtype=first.dtype) for j in range(first.k)})
    return pd.DataFrame(cols)


def _read_unit(unit: _Unit, run: Run, first: _First) -> pd.DataFrame:
    """The validated rows of one read unit as a frame (see the module docstring)."""
    frames = []
    groups = list(unit.row_groups) if unit.row_groups is not None else None
    for b in read_file(run, unit.path, unit.epoch, first.k, groups):
        check_like(b, first.kind, first.id_is_str)
        rows = b.rows if b.rows is not None else b.row0 + np.arange(len(b.ids), dtype=np.int64)
        cols = {
            "id": pd.Series(b.ids, dtype="str" if first.id_is_str else "int64"),
            "label": b.labels.astype(np.int32),  # checked to lie in [0, K)
            "epoch": np.full(len(b.ids), unit.epoch, dtype=np.int32),
            "at": (np.int64(unit.file) << _FILE_BITS) | rows,
        }
        values = b.values.astype(first.dtype, copy=False)  # as the in-process fold casts them
        cols.update({f"v{j}": values[:, j] for j in range(first.k)})
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True) if frames else _frame_meta(first)


def _fold_part(frame: pd.DataFrame, p: int, run: Run, epochs, strict, first: _First, out_fs, out_path):
    """Fold one partition's rows and write its ``part-<p>.parquet``; returns (examples, (E, 2) row counts, the
    bytes of the rows it received)."""
    files = [path for ef in epochs for path in ef.paths]
    epoch = frame["epoch"].to_numpy()
    at = frame["at"].to_numpy()
    # the order the in-process engine reads rows in: usually the shuffle's own (it keeps the read units' order),
    # then the columns are used as they are, with no sorted copy of the partition
    ahead = (epoch[1:] > epoch[:-1]) | ((epoch[1:] == epoch[:-1]) & (at[1:] > at[:-1]))
    order = slice(None) if ahead.all() else np.lexsort((at, epoch))
    epoch, at = epoch[order], at[order]
    ids = frame["id"].to_numpy(dtype=object if first.id_is_str else np.int64)[order]
    labels = frame["label"].to_numpy(np.int64)[order]
    # (K, n) rows of one class each, viewed as (n, K): the kernels work on the (K, n) layout without a copy
    values = np.stack([frame[f"v{j}"].to_numpy(first.dtype)[order] for j in range(first.k)]).T
    file = at >> _FILE_BITS

    def batches():
        for ef in epochs:
            lo, hi = np.searchsorted(epoch, [ef.epoch, ef.epoch + 1])
            out = []
            cuts = np.flatnonzero(np.diff(file[lo:hi])) + lo + 1
            for a, b in zip([lo, *cuts], [*cuts, hi]):
                f = files[int(file[a])]
                rows = at[a:b] & ((1 << _FILE_BITS) - 1)
                source = run.rel(f)
                out.append(
                    Batch(
                        ef.epoch, source, 0, ids[a:b], labels[a:b], values[a:b], first.kind, f.suffix == ".jsonl", rows
                    )
                )
            yield ef, out

    reader = DynamicsReader(run, strict=strict, batches=batches(), max_epochs=len(epochs))
    acc = fold(reader, keep_epochs=True)
    counts = np.array(reader.epoch_rows, dtype=np.int64).reshape(len(epochs), 2)
    if reader.n:
        table = table_of(run, reader, acc)
        _write_table(out_fs, out_path / f"part-{p:05d}.parquet", table)
        _write_table(out_fs, out_path / f"traj-{p:05d}.parquet", _trajectories(table["id"], reader.ids, acc), 8192)
    return reader.n, counts, int(frame.memory_usage(index=False, deep=True).sum())


def pool_runs_dask(
    runs: list[Run | str | Path],
    out: str | Path,
    *,
    names: list[str] | None = None,
    client=None,
    max_epochs: int | None = None,
    strict: bool = False,
    partition_rows: int = PART_ROWS,
    overwrite: bool = False,
) -> ClusterResult:
    """Score each of ``runs`` on the cluster into ``out/runs/<name>/``, then pool them (R runs x N examples,
    :func:`~cartography_core.reliability.pool_runs`' columns and numbers) into ``out``'s own parts: the runs'
    statistics are shuffled by id once more, so each partition holds every run's rows of its examples."""
    import dask
    import dask.dataframe as dd

    runs = [r if isinstance(r, Run) else open_run(r) for r in runs]
    names = names or [r.path.name for r in runs]
    if len(set(names)) != len(names):
        raise LogError(f"runs to pool need distinct names, got {names}")
    check_one_pass([r.meta.get("pass") for r in runs], names)  # before any scoring
    out_fs, out_path = storage.locate(out)
    _prepare_out(out_fs, out_path, overwrite)
    if out_fs is None:
        run_dirs = [out_path / "runs" / n for n in names]
    else:
        run_dirs = [storage.url(out_fs, out_path / "runs" / n) for n in names]
    with _connected(client) as client:
        results = [
            compute_stats_dask(
                r, d, client=client, max_epochs=max_epochs, strict=strict, partition_rows=partition_rows, overwrite=True
            )
            for r, d in zip(runs, run_dirs)
        ]
        metas = [finished_meta(d) for d in run_dirs]
        rule = pooled_rule(metas)  # over every run: a partition missing one must not decide otherwise
        metas = [{**m, "label_issue_rule": rule} for m in metas]
        frames = [
            dd.read_parquet(_part_files(*storage.locate(d)), dtype_backend="pyarrow").assign(_run=np.int32(r))
            for r, d in enumerate(run_dirs)
        ]
        n_parts = max(1, math.ceil(max(res.n_examples for res in results) / partition_rows))
        with dask.config.set({"dataframe.shuffle.method": "p2p"}):
            parts = dd.concat(frames).shuffle(on="id", npartitions=n_parts).to_delayed()
        pool = dask.delayed(_pool_part, pure=False)
        counts = dask.compute(*(pool(part, p, names, metas, out_fs, out_path) for p, part in enumerate(parts)))
    n = int(sum(counts))
    meta = {**_table_meta(pooled_meta(metas, names)), "n_examples": n, "partitions": n_parts}
    _write_bytes(out_fs, out_path / META_FILE, (json.dumps({**meta, "engine": "dask"}, indent=2) + "\n").encode())
    read, shuffled = sum(r.rows_read for r in results), sum(r.bytes_shuffled for r in results)
    return ClusterResult(str(out), n, n_parts, read, shuffled)


def _pool_part(frame: pd.DataFrame, p: int, names: list[str], metas: list[dict], out_fs, out_path) -> int:
    """Pool one partition's rows of every run and write its ``part-<p>.parquet``; returns its examples."""
    from .reliability import pool_runs

    present = sorted(int(r) for r in frame["_run"].unique())
    if not present:
        return 0
    tables = []
    for r in present:
        rows = frame[frame["_run"] == r].drop(columns="_run")
        t = pa.Table.from_pandas(rows, preserve_index=False)
        tables.append(t.replace_schema_metadata({"cartography": json.dumps(_table_meta(metas[r]))}))
    table = pool_runs(tables, [names[r] for r in present])
    _write_table(out_fs, out_path / f"part-{p:05d}.parquet", table)
    return table.num_rows


def _names(fs, path) -> list[str]:
    """The names in a folder, sorted."""
    return sorted(p.name for p in Path(path).iterdir()) if fs is None else [n for n, _ in storage.entries(fs, path)]


def part_names(fs, path) -> list[str]:
    """The names of the ``part-*.parquet`` files of a statistics dataset folder, sorted."""
    return [n for n in _names(fs, path) if n.startswith("part-") and n.endswith(".parquet")]


def _part_files(fs, path) -> list[str]:
    """The ``part-*.parquet`` files of a statistics dataset folder as local paths or URLs."""
    return [str(path / n) if fs is None else storage.url(fs, path / n) for n in part_names(fs, path)]


def _read_bytes(fs, path, name: str) -> bytes:
    return (path / name).read_bytes() if fs is None else fs.cat_file(str(path / name))


def _trajectories(sorted_ids: pa.ChunkedArray, ids: np.ndarray, acc) -> pa.Table:
    """One row per example, in the statistics' order (by id): ``p_gold`` and ``pred``, one value per epoch
    (float32 and int16; NaN and 0 where the example was not logged)."""
    order = row_order(ids)
    e = acc.epoch_p.shape[0]
    p_gold = np.ascontiguousarray(acc.epoch_p[:, order].T).ravel()
    pred = np.ascontiguousarray(acc.epoch_pred[:, order].T).ravel()
    return pa.table(
        {
            "id": sorted_ids,
            "p_gold": pa.FixedSizeListArray.from_arrays(pa.array(p_gold, type=pa.float32()), e),
            "pred": pa.FixedSizeListArray.from_arrays(pa.array(pred, type=pa.int16()), e),
        }
    )


def partition_of(ids, n_partitions: int) -> np.ndarray:
    """The partition each id is shuffled to: Dask's hash partitioning (numbers hashed as float64, a one-column
    frame without its index, modulo the partition count). ``tests/test_cluster.py`` checks every part."""
    frame = pd.Series(np.asarray(ids)).to_frame()
    if frame.dtypes.iloc[0].kind in "iuf":
        frame = frame.astype(np.float64)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy() % n_partitions


def read_trajectory(location: str | Path, example_id, meta: dict | None = None) -> pa.Table:
    """The per-epoch gold-class probability and prediction of one example of a dataset written by
    :func:`compute_stats_dask`: ``epoch``, ``p_gold`` (null where not logged) and ``pred``. Reads one row
    group of one partition's ``traj-<p>.parquet``, never the logs; ``meta``: the dataset's ``cartography.json``
    when the caller holds it already."""
    fs, path = storage.locate(location)
    meta = meta if meta is not None else finished_meta(location)
    if "runs" in meta:
        raise LogError(f"{location}: a pool of runs; read a trajectory from one run's folder ({location}/runs/<run>)")
    p = int(partition_of([example_id], meta["partitions"])[0])
    name = f"traj-{p:05d}.parquet"
    try:
        with opened(fs, path / name) as src:
            rows = pq.read_table(src, filters=[("id", "==", example_id)])
    except FileNotFoundError:
        if not any(n.startswith("traj-") for n in _names(fs, path)):
            raise LogError(
                f"{location}: holds no trajectories (traj-*.parquet); it was written by an older version: "
                "score it again with --force"
            ) from None
        rows = pa.table({"id": []})  # the example's partition holds no examples
    if rows.num_rows != 1:
        raise LogError(f"{location}: no example with id {example_id!r}")
    p_gold = rows["p_gold"][0].values.to_numpy(zero_copy_only=False)
    pred = rows["pred"][0].values.to_numpy(zero_copy_only=False)
    logged = ~np.isnan(p_gold)
    return pa.table(
        {
            "epoch": np.arange(len(p_gold)),
            "p_gold": pa.array(p_gold.astype(np.float64), mask=~logged),
            "pred": pa.array(pred.astype(np.int64), mask=~logged),
        }
    )


def _prepare_out(fs, path, overwrite: bool) -> None:
    """Create the output folder. A finished result there (``cartography.json``) or files this module did not
    write are refused unless ``overwrite``; an unfinished result (parts without ``cartography.json``: a
    scoring that failed) is replaced. Only this module's files are ever removed, nothing else a user put there."""
    shown = path if fs is None else storage.url(fs, path)
    if fs is None and path.exists() and not path.is_dir():
        raise LogError(f"{shown}: exists and is not a folder; --out names a folder for the dataset")
    exists = path.exists() if fs is None else storage.kind(fs, path) == "directory"
    present = _names(fs, path) if exists else []
    foreign = [name for name in present if not _ours(name)]
    if (foreign or META_FILE in present) and not overwrite:
        what = f"holds {', '.join(foreign[:3])}" if foreign else "holds a finished result"
        raise LogError(f"{shown}: folder {what}; choose another or pass --force to replace its statistics")
    gone = [name for name in present if _ours(name) and name != "runs"]  # a pool's runs/ are replaced run by run
    if fs is None:
        for name in gone:
            (path / name).unlink()
        path.mkdir(parents=True, exist_ok=True)
    else:
        for name in gone:
            fs.rm(str(path / name))
        fs.makedirs(str(path), exist_ok=True)


def _ours(name: str) -> bool:
    """Whether a file name is one this module writes in a dataset folder."""
    return name in (META_FILE, "runs") or (name.startswith(("part-", "traj-")) and name.endswith(".parquet"))


def _write_table(fs, path, table: pa.Table, row_group_size: int | None = None) -> None:
    """``table`` as zstd parquet; a local file atomically (an object store's upload appears whole when closed)."""

    def write(dest) -> None:
        pq.write_table(table, dest, compression="zstd", use_dictionary=False, row_group_size=row_group_size)

    if fs is None:
        atomic_write(path, write)
    else:
        with fs.open(str(path), "wb") as fh:
            write(fh)


def _write_bytes(fs, path, data: bytes) -> None:
    if fs is None:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
    else:
        with fs.open(str(path), "wb") as fh:
            fh.write(data)


def dataset_meta(location: str | Path) -> dict:
    """The ``cartography.json`` of a statistics dataset folder; {} when there is none (not a finished result)."""
    fs, path = storage.locate(location)
    try:
        return json.loads(_read_bytes(fs, path, META_FILE))
    except (FileNotFoundError, NotADirectoryError):
        return {}


def finished_meta(location: str | Path) -> dict:
    """:func:`dataset_meta`, or a :class:`LogError` naming ``location`` when it is not a finished dataset."""
    meta = dataset_meta(location)
    if not meta:
        fs, path = storage.locate(location)
        is_file = Path(path).is_file() if fs is None else storage.kind(fs, path) == "file"
        raise LogError(
            f"{location}: no {META_FILE}; not a statistics dataset, or its scoring did not finish"
            + (" (a file, not a folder)" if is_file else "")
        )
    return meta


def read_stats(location: str | Path) -> pa.Table:
    """A statistics dataset written by :func:`compute_stats_dask`, whole and sorted by id, with the metadata
    of :func:`~cartography_core.stats.compute_stats`'s table."""
    meta = finished_meta(location)
    fs, path = storage.locate(location)
    parts = [str(path / n) for n in part_names(fs, path)]
    table = pads.dataset(parts, format="parquet", filesystem=fs).to_table()
    if table.num_rows != meta["n_examples"]:
        raise LogError(f"{location}: holds {table.num_rows} examples but {META_FILE} says {meta['n_examples']}")
    table = table.sort_by("id").replace_schema_metadata({"cartography": json.dumps(_table_meta(meta))})
    return table if not meta.get("label_names") else name_classes(table, meta["label_names"])


def _table_meta(meta: dict) -> dict:
    """The in-process table's metadata keys of a dataset's ``cartography.json``."""
    return {k: meta[k] for k in (*TABLE_META_KEYS, "runs") if k in meta}


def split_half_reliability_dask(
    datasets: list[str | Path],
    score: str,
    *,
    n_splits: int = 20,
    seed: int = 0,
    names: list[str] | None = None,
    client=None,
    partition_rows: int = PART_ROWS,
) -> Reliability:
    """:func:`~cartography_core.reliability.split_half_reliability` of ``score`` over the runs whose statistics
    datasets are ``datasets`` (written by :func:`compute_stats_dask`), computed on the cluster: the same random
    splits, the same half means, and Spearman's rho as the Pearson correlation of average ranks (ties share
    their mean rank, as scipy's), exact.

    Three shuffles: the runs' scores by id (each example's R values together, then every split's two half
    means), and the half means twice by value bucket, so that each one's rank is its bucket's offset plus its
    rank inside the bucket (equal values share a bucket). Rows shuffled: ``n_splits`` x N, twice.
    """
    import dask
    import dask.dataframe as dd

    r_total = len(datasets)
    if r_total < 2:
        raise LogError(f"split-half reliability needs at least 2 runs, got {r_total}")
    if score not in SCORES:
        raise LogError(f"unknown score {score!r}; choose from: {', '.join(SCORES)}")
    names = names or [f"run {r}" for r in range(r_total)]
    rng = np.random.default_rng(seed)  # the in-process engine's splits, drawn in its order
    perms = np.array([rng.permutation(r_total) for _ in range(n_splits)])
    located = [storage.locate(d) for d in datasets]
    sizes = [finished_meta(d)["n_examples"] for d in datasets]
    if len(set(sizes)) > 1:
        raise LogError(
            "split-half reliability needs runs that log the same examples: "
            + ", ".join(f"{name} ({n} ids)" for name, n in zip(names, sizes))
        )
    n = sizes[0]
    frames = [
        dd.read_parquet(_part_files(fs, path), columns=["id", "label", score], dtype_backend="pyarrow").assign(
            _run=np.int32(r)
        )
        for r, (fs, path) in enumerate(located)
    ]
    n_parts = max(1, math.ceil(n / partition_rows))
    n_buckets = max(1, math.ceil(n / partition_rows))  # per split: the value buckets of the rank shuffles
    meta_halves = pd.DataFrame(
        {"split": pd.Series([], dtype="int32"), **dict.fromkeys("ab", pd.Series([], dtype=float))}
    )
    with _connected(client) as client, dask.config.set({"dataframe.shuffle.method": "p2p"}):
        halves = (
            dd.concat(frames)
            .shuffle(on="id", npartitions=n_parts)
            .map_partitions(_half_means, score, perms, names, meta=meta_halves)
            .persist()
        )
        ranked = halves
        for col in ("a", "b"):
            # splitters from a sample; exactness does not depend on them, only the buckets' balance
            splitters = _splitters(ranked.map_partitions(_sample_values, col, n_splits).compute(), n_splits, n_buckets)
            keyed = ranked.map_partitions(_with_key, col, splitters, meta=ranked._meta.assign(key=np.int64(0)))
            counts = keyed.map_partitions(_key_counts, n_splits * n_buckets, meta={"c": "int64"}).compute()
            totals = counts["c"].to_numpy().reshape(-1, n_splits, n_buckets).sum(axis=0)  # (splits, buckets)
            offsets = (np.cumsum(totals, axis=1) - totals).ravel()  # rows of the same split in lower buckets
            ranked = (
                keyed.shuffle(on="key", npartitions=n_splits * n_buckets)
                .map_partitions(_rank, col, offsets, meta=ranked._meta)
                .persist()
            )
        sums = ranked.map_partitions(_rank_sums, n, n_splits, meta={c: "float64" for c in ("aa", "bb", "ab")}).compute()
    total = sums.to_numpy().reshape(-1, n_splits, 3).sum(axis=0)  # (splits, 3)
    rhos = total[:, 2] / np.sqrt(total[:, 0] * total[:, 1])
    r = float(np.mean(rhos))
    return Reliability(score, r_total, r, spearman_brown(r, r_total / (r_total // 2)))


def _half_means(frame: pd.DataFrame, score: str, perms: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Each example's score over one half of the runs and over the other, for every split (as in-process)."""
    r_total = perms.shape[1]
    half = r_total // 2
    frame = frame.sort_values(["id", "_run"], kind="stable")
    ids = frame["id"].to_numpy()
    runs = frame["_run"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, len(ids)])
    bad = np.flatnonzero(counts != r_total)
    if bad.size:
        i = starts[bad[0]]
        have = set(runs[i : i + counts[bad[0]]].tolist())
        missing = [names[r] for r in range(r_total) if r not in have]
        raise LogError(
            f"split-half reliability needs runs that log the same examples: id {show_id(ids[i])} is not in "
            f"{', '.join(missing)}"
        )
    labels = frame["label"].to_numpy().reshape(-1, r_total)  # (n, R)
    raise_for_different_labels(list(labels.T), lambda i: ids[starts[i]], names, part=True)
    mat = frame[score].to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, r_total).T  # (R, n) as in-process
    out = []
    for s, perm in enumerate(perms):  # a loop over splits, not examples
        a, b = mat[perm[:half]].mean(axis=0), mat[perm[half : 2 * half]].mean(axis=0)
        out.append(pd.DataFrame({"split": np.full(len(a), s, dtype=np.int32), "a": a, "b": b}))
    return pd.concat(out, ignore_index=True)


def _sample_values(frame: pd.DataFrame, col: str, n_splits: int, per_split: int = 256) -> pd.DataFrame:
    """Up to ``per_split`` evenly spaced values of ``col`` of every split (for the bucket splitters)."""
    out = []
    for s in range(n_splits):
        v = np.sort(frame[col].to_numpy()[frame["split"].to_numpy() == s])
        take = v[np.linspace(0, len(v) - 1, min(per_split, len(v))).astype(int)] if len(v) else v
        out.append(pd.DataFrame({"split": np.full(len(take), s, dtype=np.int32), "v": take}))
    return pd.concat(out, ignore_index=True)


def _splitters(sample: pd.DataFrame, n_splits: int, n_buckets: int) -> np.ndarray:
    """(splits, buckets - 1) bucket boundaries per split: quantiles of the sampled values."""
    q = np.arange(1, n_buckets) / n_buckets
    values = [sample["v"].to_numpy()[sample["split"].to_numpy() == s] for s in range(n_splits)]
    return np.stack([np.quantile(v, q) if len(v) else np.zeros(n_buckets - 1) for v in values])


def _key_counts(frame: pd.DataFrame, n_keys: int) -> pd.DataFrame:
    return pd.DataFrame({"c": np.bincount(frame["key"].to_numpy(), minlength=n_keys)})


def _with_key(frame: pd.DataFrame, col: str, splitters: np.ndarray) -> pd.DataFrame:
    """``key = split x buckets + bucket of col``; equal values get the same bucket."""
    split = frame["split"].to_numpy()
    v = frame[col].to_numpy()
    n_buckets = splitters.shape[1] + 1
    bucket = np.zeros(len(v), dtype=np.int64)
    for s in range(splitters.shape[0]):  # a loop over splits, not examples
        rows = split == s
        bucket[rows] = np.searchsorted(splitters[s], v[rows], side="right")
    return frame.assign(key=split.astype(np.int64) * n_buckets + bucket)


def _rank(frame: pd.DataFrame, col: str, offsets: np.ndarray) -> pd.DataFrame:
    """``col`` replaced by its average rank (1-based) within its split: the bucket's offset plus its average
    rank among the bucket's values (ties share the mean of their ranks)."""
    key = frame["key"].to_numpy()
    v = frame[col].to_numpy()
    order = np.lexsort((v, key))
    k, x = key[order], v[order]
    new_key = np.r_[True, k[1:] != k[:-1]]
    group_start = np.maximum.accumulate(np.where(new_key, np.arange(len(k)), 0))
    tie_start = np.r_[True, new_key[1:] | (x[1:] != x[:-1])]
    tie_id = np.cumsum(tie_start) - 1
    first = np.flatnonzero(tie_start)
    last = np.r_[first[1:], len(k)] - 1
    avg = (first + last)[tie_id] / 2.0 - group_start + 1.0  # average 1-based rank within the bucket
    ranks = np.empty(len(k))
    ranks[order] = avg + offsets[k]
    return frame.drop(columns="key").assign(**{col: ranks})


def _rank_sums(frame: pd.DataFrame, n: int, n_splits: int) -> pd.DataFrame:
    """Per split: sums of the centred ranks' squares and product (the mean rank is exactly (n + 1) / 2)."""
    split = frame["split"].to_numpy()
    ca = frame["a"].to_numpy() - (n + 1) / 2.0
    cb = frame["b"].to_numpy() - (n + 1) / 2.0
    return pd.DataFrame(
        {
            "aa": np.bincount(split, ca * ca, minlength=n_splits),
            "bb": np.bincount(split, cb * cb, minlength=n_splits),
            "ab": np.bincount(split, ca * cb, minlength=n_splits),
        }
    )
