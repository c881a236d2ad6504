"""Record training dynamics from any training loop into this project's log layout (``docs/formats.md``).

The 5-line pattern for a plain PyTorch loop (the dataset yields example ids with each batch)::

    rec = DynamicsRecorder("runs/my-run", label_names=["neg", "pos"], pass_="train")
    for epoch in range(epochs):
        for ids, x, y in loader:
            logits = model(x); loss = F.cross_entropy(logits, y); ...   # your step
            rec.log(ids, logits, y)
        rec.end_epoch()

``log`` takes numpy arrays or torch tensors (moved to the CPU and detached), keeps at most one epoch in
memory, and ``end_epoch`` writes ``dynamics/epoch_<e>.parquet`` atomically: the rows go to a hidden
temporary file that is renamed into place only once complete, so a crash leaves no file that ingest would
read as an epoch. With several processes (distributed data-parallel), each rank writes
``dynamics/epoch_<e>/part-<rank>.parquet`` and ``run.json`` records ``world_size``, so ingest can tell an
epoch with a missing part. An existing run is never overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import LogError, show_id

FORMAT = "cartography-logs/1"
PASSES = ("train", "eval")


def _snapshot(x, dtype: str | None = None) -> np.ndarray:
    """A numpy copy of ``x`` (the caller may reuse its buffers): one copy per batch, nothing else."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()  # float16 / bfloat16
        a = t.numpy()
    else:
        a = np.asarray(x)
    return a.astype(dtype) if dtype else a.copy()


def created_now() -> str:
    """ISO time for ``run.json``; ``SOURCE_DATE_EPOCH`` (reproducible builds) fixes it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="seconds")


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a hidden temporary file in the same folder, renamed when complete."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        # dictionary encoding buys nothing on logits and costs 2.5x the write time (bench/bench_recorder.py)
        pq.write_table(table, tmp, compression="zstd", use_dictionary=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def refuse_existing_run(run_dir: Path) -> None:
    """Raise :class:`LogError` if ``run_dir`` already holds a run (``dynamics/`` or ``run.json``)."""
    existing = [p for p in (run_dir / "dynamics", run_dir / "run.json") if p.exists()]
    if existing:
        raise LogError(
            f"{run_dir} already holds a run ({existing[0].name}); choose a new directory or pass "
            "overwrite=True (--force) to replace it"
        )


class DynamicsRecorder:
    """Collects per-example logits batch by batch and writes one epoch file per epoch.

    Parameters
    ----------
    run_dir : the run directory to create (``dynamics/`` and ``run.json`` go inside).
    label_names : class names, index k naming class k.
    pass_ : ``"train"`` when logits come from the training forward pass (dropout on, weights moving), or
        ``"eval"`` when from a separate evaluation pass at the end of each epoch; stored in ``run.json``.
    rank, world_size : this process's rank among ``world_size`` processes that each log part of every epoch.
    overwrite : replace an existing run's ``dynamics/`` and ``run.json`` (rank 0 only); otherwise refuse.
    meta : more ``run.json`` fields: dataset, model, seed, group, hyper-parameters, ...
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        label_names: list[str] | None = None,
        pass_: str = "train",
        rank: int = 0,
        world_size: int = 1,
        overwrite: bool = False,
        meta: dict | None = None,
    ):
        if pass_ not in PASSES:
            raise LogError(f"pass_ must be one of {PASSES}, got {pass_!r}")
        if not 0 <= rank < world_size:
            raise LogError(f"rank {rank} is outside 0..{world_size - 1} for world_size {world_size}")
        self.run_dir = Path(run_dir)
        self.dyn = self.run_dir / "dynamics"
        self.rank, self.world_size = rank, world_size
        self.label_names = list(label_names) if label_names is not None else None
        self.epoch = 0
        self._batches: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.meta = {
            "format": FORMAT,
            "pass": pass_,
            "world_size": world_size,
            "created": created_now(),
            **(meta or {}),
        }
        if self.label_names is not None:
            self.meta["label_names"] = self.label_names
        if rank == 0:
            self._claim(overwrite)
        self.dyn.mkdir(parents=True, exist_ok=True)

    def _claim(self, overwrite: bool) -> None:
        if not overwrite:
            refuse_existing_run(self.run_dir)
        if self.dyn.exists():
            shutil.rmtree(self.dyn)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "run.json", self.meta)

    def log(self, ids, logits, labels, loss=None) -> None:
        """Add one batch: ``ids`` (n,) ints or strings, ``logits`` (n, K), gold ``labels`` (n,), optional
        per-example ``loss`` (n,). Numpy arrays, torch tensors (any device; detached) or lists."""
        batch = (_snapshot(ids), _snapshot(logits, "float32"), _snapshot(labels, "int64"))
        ids_s, logits_s, labels_s = batch
        n = len(ids_s)
        if logits_s.ndim != 2 or logits_s.shape[0] != n or labels_s.shape != (n,):
            raise LogError(
                f"log(): ids {ids_s.shape}, logits {logits_s.shape} and labels {labels_s.shape} must be "
                "(n,), (n, K) and (n,)"
            )
        if self._batches and logits_s.shape[1] != self._batches[0][1].shape[1]:
            raise LogError(
                f"log(): logits have {logits_s.shape[1]} classes, earlier batches {self._batches[0][1].shape[1]}"
            )
        self._batches.append((*batch, None if loss is None else _snapshot(loss, "float32").reshape(n)))

    def end_epoch(self) -> Path:
        """Write the epoch's rows and start the next epoch; returns the file written."""
        if not self._batches:
            raise LogError(f"end_epoch(): nothing was logged in epoch {self.epoch}")
        ids = np.concatenate([b[0] for b in self._batches])
        if ids.dtype.kind in "US":
            ids = ids.astype(object)
        index = pd.Index(ids)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise LogError(f"end_epoch(): id {show_id(dup)} was logged twice in epoch {self.epoch}")
        logits = np.concatenate([b[1] for b in self._batches])
        k = logits.shape[1]
        cols = {
            "id": pa.array(ids, type=pa.string() if ids.dtype == object else pa.int64()),
            "label": pa.array(np.concatenate([b[2] for b in self._batches])),
            "logits": pa.ListArray.from_arrays(np.arange(0, logits.size + 1, k, dtype=np.int32), logits.ravel()),
        }
        if all(b[3] is not None for b in self._batches):
            cols["loss"] = pa.array(np.concatenate([b[3] for b in self._batches]))
        if self.world_size == 1:
            path = self.dyn / f"epoch_{self.epoch:03d}.parquet"
        else:
            (self.dyn / f"epoch_{self.epoch:03d}").mkdir(exist_ok=True)
            path = self.dyn / f"epoch_{self.epoch:03d}" / f"part-{self.rank}.parquet"
        atomic_write_parquet(pa.table(cols), path)
        self._batches = []
        self.epoch += 1
        return path

    def update_meta(self, **fields) -> None:
        """Add or replace ``run.json`` fields (rank 0 only), e.g. held-out accuracy after each epoch."""
        self.meta.update(fields)
        if self.rank == 0:
            write_json(self.run_dir / "run.json", self.meta)
