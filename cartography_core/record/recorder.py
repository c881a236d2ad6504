"""Record training dynamics from any training loop into this project's log layout (``docs/formats.md``).

The pattern for a plain PyTorch loop (the dataset yields each example's own id with its batch; ``examples``
writes the texts and labels of those same ids beside the log, so what the dashboard shows for an id is
that row)::

    rec = DynamicsRecorder("runs/my-run", label_names=["neg", "pos"], examples=df[["id", "text", "label"]])
    for epoch in range(epochs):
        for ids, (x, y) in loader:
            logits = model(x); loss = F.cross_entropy(logits, y); ...   # your step
            rec.log(ids, logits, y)
        rec.end_epoch()

``log`` takes numpy arrays or torch tensors (detached; any device). Every ``ROW_GROUP_ROWS`` rows become a
row group of ``dynamics/epoch_<e>.parquet``, encoded by a background thread into a hidden temporary file
that ``end_epoch`` renames into place once complete, so a crash leaves no file that ingest would read as an
epoch, and memory holds a few row groups of logits plus the epoch's ids and labels (checked at its end).

Claiming a run folder is atomic: rank 0 takes an exclusive lock (``.cartography.lock``, held while the
recorder lives), so a second process recording into the same folder fails with a clear message instead of
mixing its epochs in, with or without ``overwrite``. A folder that already holds a complete epoch is never
replaced unless ``overwrite=True``; one left by a run that crashed before its first epoch ended (a
``run.json`` and no epoch) is reused.

Distributed data-parallel: each rank writes ``dynamics/epoch_<e>/part-<rank>.parquet`` and ``run.json``
records ``world_size``, so ingest can tell an epoch with a missing part. ``rank`` and ``world_size`` default
to ``torch.distributed``'s when it is initialised, else to the ``RANK`` / ``WORLD_SIZE`` variables that
``torchrun`` sets; only rank 0 creates the run, and the others write nothing before their first epoch
ends. Rows that a distributed sampler repeats to pad the last batches are read once (``docs/formats.md``).
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import json
import math
import os
import shutil
import sys
import warnings
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import LogError, show_id
from ..ingest import EXAMPLES_NAMES, PROBS_AS_LOGITS, are_probabilities
from ..io import ParquetStream, atomic_write_parquet, file_kind, write_json
from ..label_issues import check_rule

FORMAT = "cartography-logs/1"
PASSES = ("train", "eval")
LOCK_NAME = ".cartography.lock"
EXAMPLES_FILE = "examples.parquet"
_HELD: dict[str, object] = {}  # resolved run folder -> open lock file, for the claims this process holds
_OPEN: weakref.WeakSet = weakref.WeakSet()  # recorders not closed yet


@atexit.register
def _close_open_recorders() -> None:
    for rec in list(_OPEN):
        rec.close()


ROW_GROUP_ROWS = 1 << 14  # rows held before they are written as a row group (also the rows a reader reads at once)


def _held_by_reference(t) -> bool:
    """Whether :func:`_hold` keeps tensor ``t`` by reference: on an accelerator, where a copy per step would
    sync the device."""
    return not t.is_cpu


def _hold(x) -> tuple:
    """A batch column as :meth:`DynamicsRecorder.log` keeps it until its row group is written: a tensor on an
    accelerator by reference (detached, with its version counter, so that a change in place after ``log()`` is
    caught, not recorded; copied to the CPU with its row group, so no device sync per step), anything else
    copied to numpy now (the caller may reuse its buffers, also through numpy views torch cannot see)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        if x.requires_grad:
            x = x.detach()
        if _held_by_reference(x):
            return x.detach(), x._version
        return _numpy(x).copy(), None
    return np.array(x), None


def _numpy(t) -> np.ndarray:
    """A CPU tensor as numpy, float16 / bfloat16 widened to float32 (numpy has no bfloat16)."""
    return (t.float() if t.is_floating_point() and t.element_size() < 4 else t).numpy()


def _first_step(held: list[tuple], row: int) -> int:
    """The index, among ``held`` batches, of the batch holding row ``row`` of their concatenation."""
    return int(np.searchsorted(np.cumsum([len(x) for x, _ in held]), row, side="right"))


def _column(held: list[tuple], dtype: str | None, what: str, where) -> np.ndarray:
    """The held values of one column, concatenated as numpy (``dtype``, or as they are); tensors are joined on
    their device and copied to the CPU once (one device sync per row group, not per step)."""
    for i, (x, version) in enumerate(held):
        if version is not None and x._version != version:
            raise LogError(
                f"log(): the {what} logged {where(i)} were changed in place after log(); log a copy "
                "(tensor.clone()) or log after changing them"
            )
    xs = [x for x, _ in held]
    if all(v is not None for _, v in held) and len({x.device for x in xs}) == 1:
        t = sys.modules["torch"].cat(xs)
        xs = [t]
    arrays = [_numpy(x.cpu()) if hasattr(x, "detach") else x for x in xs]
    a = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return a.astype(dtype, copy=False) if dtype else a


def created_now() -> str:
    """ISO time for ``run.json``; ``SOURCE_DATE_EPOCH`` (reproducible builds) fixes it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="seconds")


def has_epochs(run_dir: Path) -> bool:
    """Whether ``run_dir/dynamics`` holds anything named like an epoch (a complete epoch file or folder)."""
    dyn = run_dir / "dynamics"
    return dyn.is_dir() and any(e.name.startswith("epoch_") for e in os.scandir(dyn))


def refuse_existing_run(run_dir: Path) -> None:
    """Raise :class:`LogError` if ``run_dir`` already holds a recorded epoch (a ``run.json`` whose run
    crashed before its first epoch ended does not count: that run can be recorded again)."""
    if has_epochs(run_dir):
        raise LogError(
            f"{run_dir} already holds a run (dynamics/); choose a new directory, or replace it: --force on the "
            "command line, overwrite=True in Python"
        )


def is_recorded_run(run_dir: Path) -> bool:
    """Whether ``run_dir/run.json`` is one this library's recorder wrote (it carries our ``format``)."""
    return _read_meta(run_dir).get("format") == FORMAT


def refuse_foreign_run_json(run_dir: Path) -> None:
    """Raise :class:`LogError` if ``run_dir/run.json`` exists but is not one this library wrote (no ``format``
    of ours): recording there would replace a file of the user's."""
    if (run_dir / "run.json").exists() and not is_recorded_run(run_dir):
        raise LogError(
            f"{run_dir / 'run.json'} exists and is not the run.json of a recorded run; recording here would replace "
            "it: move it, or record into another folder"
        )


def claim_run(run_dir: Path) -> None:
    """Take ``run_dir`` for this process: an exclusive lock on ``run_dir/.cartography.lock``, held until the
    process ends or :func:`release_run`. Another process holding it is a :class:`LogError`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    release_run(run_dir)  # this process recording the same folder again (a notebook cell re-run)
    fh = open(run_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise LogError(
            f"{run_dir}: another process (pid {holder}) is recording into this run; give each run its own directory"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _HELD[key] = fh


def release_run(run_dir: Path) -> None:
    """Let go of the claim this process holds on ``run_dir`` (nothing if it holds none)."""
    fh = _HELD.pop(str(Path(run_dir).resolve()), None)
    if fh is not None:
        fh.close()  # closing the file releases the lock


def _distributed() -> tuple[int, int]:
    """(rank, world_size) of ``torch.distributed`` when initialised, else ``RANK`` / ``WORLD_SIZE`` (torchrun)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def examples_table(examples, label_names: list[str] | None) -> pa.Table:
    """``examples`` (a pandas DataFrame, a pyarrow Table or a dict of columns) as a table with a unique ``id``
    column, checked; a ``label`` of class names becomes indices into ``label_names`` (kept as
    ``label_name``)."""
    if isinstance(examples, pd.DataFrame):
        table = pa.Table.from_pandas(examples, preserve_index=False).replace_schema_metadata(None)
    elif isinstance(examples, pa.Table):
        table = examples
    else:
        table = pa.table(examples)
    missing = [c for c in ("id", "label") if c not in table.column_names]
    if missing:
        raise LogError(
            f"examples: needs columns id (the ids passed to log()) and label (each row's gold label, a class index "
            f"or name, checked against every logged label); missing {', '.join(missing)} in {table.column_names}"
        )
    id_type = table.schema.field("id").type
    if table["id"].null_count:
        row = int(np.flatnonzero(table["id"].is_null().to_numpy(zero_copy_only=False))[0])
        raise LogError(f"examples: row {row} has no id (null or NaN); every row needs the id it is logged with")
    if pa.types.is_floating(id_type):  # a pandas column of whole numbers that once held a NaN
        try:
            table = table.set_column(table.column_names.index("id"), "id", table["id"].cast(pa.int64()))
        except pa.ArrowInvalid:
            raise LogError("examples: id holds numbers that are not whole; ids are integers or strings") from None
    elif not (pa.types.is_integer(id_type) or pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
        raise LogError(f"examples: id must hold integers or strings (the ids passed to log()), found {id_type}")
    ids = table["id"].to_numpy(zero_copy_only=False)
    index = pd.Index(ids)
    if not index.is_unique:
        raise LogError(f"examples: id {show_id(index[index.duplicated()][0])} appears more than once")
    label_type = table.schema.field("label").type
    if pa.types.is_string(label_type) or pa.types.is_large_string(label_type):
        if label_names is None:
            raise LogError("examples: label holds class names; pass label_names= so they map to class indices")
        names = table["label"].to_numpy(zero_copy_only=False)
        codes = pd.Index(label_names).get_indexer(names)
        if (codes < 0).any():
            bad = names[np.flatnonzero(codes < 0)[0]]
            raise LogError(f"examples: label {bad!r} is not one of label_names {label_names}")
        i = table.column_names.index("label")
        table = table.set_column(i, "label", pa.array(codes, type=pa.int64()))
        if "label_name" not in table.column_names:
            table = table.append_column("label_name", pa.array(names, type=pa.string()))
    elif not pa.types.is_integer(label_type):
        raise LogError(f"examples: label must hold class indices or names, found {label_type}")
    return table


class DynamicsRecorder:
    """Collects per-example logits batch by batch and writes one epoch file per epoch.

    Parameters
    ----------
    run_dir : the run directory to create (``dynamics/``, ``run.json`` and ``examples.parquet`` go inside).
    label_names : class names, index k naming class k.
    pass_ : ``"train"`` when logits come from the training forward pass (dropout on, weights moving; what
        Swayamdipta et al. 2020 logged), or ``"eval"`` when from a separate evaluation pass at the end of each
        epoch; stored in ``run.json``.
    rank, world_size : this process's rank among ``world_size`` processes that each log part of every epoch;
        default: ``torch.distributed``'s, else the ``RANK`` / ``WORLD_SIZE`` variables, else 0 and 1.
    overwrite : replace a run that holds recorded epochs (rank 0 only); otherwise refuse. Never replaces a
        run that another process is recording.
    meta : more ``run.json`` fields: dataset, model, seed, group, hyper-parameters, ...
    examples : the rows being logged, with their ``id`` (the ids given to :meth:`log`), their gold ``label``
        (indices, or names with ``label_names``) and any columns to show beside the scores (``text``, ...): a
        pandas DataFrame, a pyarrow Table or a dict of columns, written to ``examples.parquet``. Every logged id
        must be one of its ids with the same gold label; :meth:`end_epoch` raises otherwise, so texts can never
        be shown against the wrong rows.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        label_names: list[str] | None = None,
        pass_: str = "train",
        rank: int | None = None,
        world_size: int | None = None,
        overwrite: bool = False,
        meta: dict | None = None,
        examples=None,
    ):
        if pass_ not in PASSES:
            raise LogError(f"pass_ must be one of {PASSES}, got {pass_!r}")
        auto_rank, auto_world = _distributed()
        rank = auto_rank if rank is None else rank
        world_size = auto_world if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise LogError(f"rank {rank} is outside 0..{world_size - 1} for world_size {world_size}")
        self.run_dir = Path(run_dir)
        self.dyn = self.run_dir / "dynamics"
        self.rank, self.world_size = rank, world_size
        self.label_names = list(label_names) if label_names is not None else None
        self.epoch = 0
        self._file: ParquetStream | None = None  # the epoch being written
        self._held: list[list[tuple]] = []  # batches not yet written, as _hold keeps them
        self._held_rows = self._steps = 0
        self._k, self._has_loss, self._str_ids = 0, False, False
        self._closed = False
        self._epoch_ids: list[np.ndarray] = []  # the epoch's ids and labels, checked at its end
        self._epoch_labels: list[np.ndarray] = []
        table = examples_table(examples, self.label_names) if examples is not None else None
        self._examples_index = None if table is None else pd.Index(table["id"].to_numpy(zero_copy_only=False))
        self._examples_labels = None if table is None else table["label"].to_numpy()
        check_rule((meta or {}).get("label_issue_rule"), "DynamicsRecorder(meta=...)")  # before training, not after
        self.meta = {
            "format": FORMAT,
            "pass": pass_,
            "world_size": world_size,
            "created": created_now(),
            "ended": None,  # set by close(): a run.json whose "ended" stays null was killed, or is still running
            **(meta or {}),
        }
        if self.label_names is not None:
            self.meta["label_names"] = self.label_names
        if table is not None:
            self.meta["examples"] = EXAMPLES_FILE
        self._claim_key: str | None = None  # rank 0: the claim this recorder took (_HELD's key)
        if rank == 0:
            self._claim(overwrite, table)
            self._claim_key = str(self.run_dir.resolve())
        self._lock = _HELD.get(self._claim_key) if self._claim_key else None
        _OPEN.add(self)  # once whole, closed at exit: an unfinished epoch leaves no temporary file, and a warning
        # the other ranks create nothing until their first end_epoch, which under data-parallel training cannot
        # come before rank 0's first gradient step, so before its claim (no barrier: a recorder made on rank 0
        # alone must not wait for ranks that never make one)

    def _claim(self, overwrite: bool, examples: pa.Table | None) -> None:
        claim_run(self.run_dir)
        try:
            refuse_foreign_run_json(self.run_dir)  # even with overwrite: it is not a run this library wrote
            if not overwrite:
                refuse_existing_run(self.run_dir)
            # an examples file an earlier recording of this (reusable or replaced) run wrote is ours to replace
            own = _read_meta(self.run_dir).get("examples")
            theirs = [n for n in EXAMPLES_NAMES if (self.run_dir / n).exists() and n != own]
            if examples is not None and theirs:
                raise LogError(
                    f"{self.run_dir / theirs[0]} exists; the recorder would write examples.parquet beside it. "
                    "Remove one, or leave examples= out to keep yours"
                )
            if self.dyn.exists():
                shutil.rmtree(self.dyn)
            self.dyn.mkdir()
            if examples is not None:
                atomic_write_parquet(examples, self.run_dir / EXAMPLES_FILE)
            elif own in EXAMPLES_NAMES:
                (self.run_dir / own).unlink(missing_ok=True)
            write_json(self.run_dir / "run.json", self.meta)
        except BaseException:
            release_run(self.run_dir)
            raise

    def close(self) -> None:
        """End the recording: ``run.json`` gets its ``ended`` time (and ``stopped_in_epoch`` when rows logged
        since the last ``end_epoch()`` are dropped, with a warning, never written as an epoch), and the run
        folder is released. Also done when the process ends; a process killed before it leaves ``ended`` null,
        which ``summary`` and the dashboard report."""
        if self._closed:
            return
        if self._steps:
            warnings.warn(
                f"{self.run_dir}: {self._steps} batches logged in epoch {self.epoch} were not written (no end_epoch() "
                f"after them); the run holds {f'epochs 0..{self.epoch - 1}' if self.epoch else 'no epoch'}",
                stacklevel=2,
            )
            self.meta["stopped_in_epoch"] = self.epoch
        self._closed = True
        self._drop_epoch()
        _OPEN.discard(self)
        # only while the claim is still this recorder's: a later recorder of the same folder in this process (a
        # notebook cell run again) took it over, with its own run.json, which this one must not overwrite
        if self._lock is not None and _HELD.get(self._claim_key) is self._lock:
            if (self.run_dir / "run.json").is_file():  # not a folder removed since
                self.meta["ended"] = created_now()
                write_json(self.run_dir / "run.json", self.meta)
            release_run(self.run_dir)

    def __enter__(self) -> DynamicsRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log(self, ids, logits, labels, loss=None) -> None:
        """Add one batch: ``ids`` (n,) ints or strings, ``logits`` (n, K), gold ``labels`` (n,), optional
        per-example ``loss`` (n,) (give it for every batch of an epoch or for none). Numpy arrays, torch tensors
        (any device; detached) or lists.

        Tensors on an accelerator are held by reference until ``ROW_GROUP_ROWS`` rows are waiting, then joined
        on their device and copied to the CPU at once: no device sync per step. One changed in place in the
        meantime is an error, never recorded. CPU tensors and other inputs are copied at once."""
        if self._closed:
            raise LogError("log(): this recorder was closed; make a new DynamicsRecorder to record again")
        held = (_hold(ids), _hold(logits), _hold(labels)) + (() if loss is None else (_hold(loss),))
        x0, x1, x2 = held[0][0], held[1][0], held[2][0]
        on_device = held[0][1] is not None
        if x0.is_floating_point() if on_device else x0.dtype.kind in "fc":
            raise LogError(f"log(): ids must be integers or strings, found {x0.dtype} values; log each row's own id")
        n = x0.shape[0] if x0.ndim == 1 else -1
        if x1.ndim != 2 or x1.shape[0] != n or x2.shape != (n,):
            raise LogError(
                f"log(): ids {tuple(x0.shape)}, logits {tuple(x1.shape)} and labels {tuple(x2.shape)} must be "
                "(n,), (n, K) and (n,)"
            )
        if loss is not None and math.prod(held[3][0].shape) != n:
            raise LogError(f"log(): loss {tuple(held[3][0].shape)} must hold one value per example ({n})")
        str_ids = not on_device and x0.dtype.kind in "USO"
        if self._steps == 0:
            if self.label_names is not None and x1.shape[1] != len(self.label_names):
                raise LogError(
                    f"log(): logits have {x1.shape[1]} columns but label_names names {len(self.label_names)} "
                    f"classes ({self.label_names}); one logit per class"
                )
            self._k, self._has_loss, self._str_ids = x1.shape[1], loss is not None, str_ids
        elif str_ids != self._str_ids:
            kinds = ("strings", "integers") if str_ids else ("integers", "strings")
            raise LogError(
                f"log(): ids of this batch are {kinds[0]} but earlier ids of epoch {self.epoch} are {kinds[1]}; use "
                "one type"
            )
        elif x1.shape[1] != self._k:
            raise LogError(f"log(): logits have {x1.shape[1]} classes, earlier batches of this epoch {self._k}")
        elif (loss is not None) != self._has_loss:
            this, earlier = ("without", "with") if self._has_loss else ("with", "without")
            raise LogError(
                f"log(): a batch {this} loss after batches {earlier} it in epoch {self.epoch}; give loss for "
                "every batch of an epoch or for none"
            )
        self._held.append(held)
        self._steps += 1
        self._held_rows += n
        if self._held_rows >= ROW_GROUP_ROWS:
            try:
                self._write_held()
            except BaseException:
                self._drop_epoch()
                raise

    def _write_held(self) -> None:
        """Convert the held batches to one row group and hand it to the epoch file's background writer."""
        step0 = self._steps - len(self._held)

        def where(i: int) -> str:
            return f"in step {step0 + i} of epoch {self.epoch}"

        cols = list(zip(*self._held))
        ids = _column(cols[0], None, "ids", where)
        if self._str_ids:
            ids = ids.astype(object)
        labels = _column(cols[2], None, "labels", where)
        if labels.dtype.kind not in "iub":
            off = labels != np.round(labels) if labels.dtype.kind == "f" else np.ones(labels.size, dtype=bool)
            if off.any():
                i = np.flatnonzero(off)[0]
                v = labels[i].item()
                raise LogError(
                    f"log(): the labels logged {where(_first_step(cols[2], i))} must be class indices (whole "
                    f"numbers), found {f'{v:g}' if isinstance(v, float) else repr(v)}"
                )
        labels = labels.astype(np.int64, copy=False)
        logits = _column(cols[1], "float32", "logits", where)
        if not np.isfinite(logits.sum(dtype=np.float64)):
            row = np.flatnonzero(~np.isfinite(logits).all(axis=1))[0]
            raise LogError(
                f"log(): the logits logged {where(_first_step(cols[1], row))} hold NaN or infinity: "
                f"{logits[row].tolist()}; a diverged step cannot be scored"
            )
        if self._file is None and are_probabilities(logits):  # the epoch's first row group: once is enough
            raise LogError(f"log(): the values logged as logits {where(0)} and after are {PROBS_AS_LOGITS}")
        out = (labels < 0) | (labels >= self._k)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            names = f" and {len(self.label_names)} label_names" if self.label_names is not None else ""
            raise LogError(
                f"log(): the labels logged {where(_first_step(cols[2], i))} hold {labels[i]}, outside [0, {self._k}) "
                f"for logits of {self._k} classes{names}"
            )
        table = {
            "id": pa.array(ids, type=pa.string() if ids.dtype == object else pa.int64()),
            "label": pa.array(labels),
            "logits": pa.ListArray.from_arrays(
                np.arange(0, logits.size + 1, self._k, dtype=np.int32), logits.reshape(-1)
            ),
        }
        if self._has_loss:
            table["loss"] = pa.array(_column([(x.reshape(-1), v) for x, v in cols[3]], "float32", "loss", where))
        table = pa.table(table)
        if self._file is None:
            self._file = ParquetStream(self._epoch_path(), table.schema)
        self._file.write(table)
        self._epoch_ids.append(ids)
        self._epoch_labels.append(labels)
        self._held, self._held_rows = [], 0

    def _epoch_path(self) -> Path:
        if self.world_size == 1:
            return self.dyn / f"epoch_{self.epoch:03d}.parquet"
        (self.dyn / f"epoch_{self.epoch:03d}").mkdir(parents=True, exist_ok=True)
        return self.dyn / f"epoch_{self.epoch:03d}" / f"part-{self.rank}.parquet"

    def end_epoch(self) -> Path:
        """Check the epoch's ids, complete its file and start the next epoch; returns the file written.

        The rows were written as they arrived; only the last row group is written here. On an error the epoch
        is dropped: no file is left, and the next ``log()`` starts the same epoch again."""
        if self._closed:
            raise LogError("end_epoch(): this recorder was closed; make a new DynamicsRecorder to record again")
        if self._steps == 0:
            raise LogError(f"end_epoch(): nothing was logged in epoch {self.epoch}")
        try:
            if self._held:
                self._write_held()
            ids = np.concatenate(self._epoch_ids)
            index = pd.Index(ids)
            if not index.is_unique:
                dup = index[index.duplicated()][0]
                raise LogError(f"end_epoch(): id {show_id(dup)} was logged twice in epoch {self.epoch}")
            self._check_examples(index, np.concatenate(self._epoch_labels))
            path = self._file.commit()
        except BaseException:
            self._drop_epoch()
            raise
        self._file = None
        self._drop_epoch()
        self.epoch += 1
        return path

    def _drop_epoch(self) -> None:
        """Forget the epoch's rows; an epoch file not yet committed is removed."""
        if self._file is not None:
            self._file.abort()
            self._file = None
        self._held, self._held_rows, self._steps = [], 0, 0
        self._epoch_ids, self._epoch_labels = [], []

    def _check_examples(self, ids: pd.Index, labels: np.ndarray) -> None:
        """Every logged id is a row of ``examples`` with the same gold label (one vectorised lookup)."""
        if self._examples_index is None:
            return
        rows = self._examples_index.get_indexer(ids)
        if (rows < 0).any():
            i = np.flatnonzero(rows < 0)[0]
            kinds = [
                ("integers" if pd.api.types.is_integer_dtype(ix.dtype) else "strings")
                for ix in (ids, self._examples_index)
            ]
            hint = f": the logged ids are {kinds[0]}, the examples' ids {kinds[1]}" if kinds[0] != kinds[1] else ""
            raise LogError(
                f"end_epoch(): id {show_id(ids[i])} was logged in epoch {self.epoch} but is not an id of "
                f"examples ({(rows < 0).sum()} logged ids are not{hint}); log the dataset's own ids"
            )
        if self._examples_labels is not None:
            differ = np.flatnonzero(self._examples_labels[rows] != labels)
            if differ.size:
                i = differ[0]
                raise LogError(
                    f"end_epoch(): id {show_id(ids[i])} was logged with gold label {labels[i]} but examples "
                    f"gives {self._examples_labels[rows[i]]} ({differ.size} ids differ in epoch {self.epoch}); the "
                    "ids passed to log() must be the examples' ids"
                )

    def update_meta(self, **fields) -> None:
        """Add or replace ``run.json`` fields (rank 0 only), e.g. held-out accuracy after each epoch."""
        self.meta.update(fields)
        if self.rank == 0:
            write_json(self.run_dir / "run.json", self.meta)


def _read_meta(run_dir: Path) -> dict:
    """``run.json`` of a folder being claimed, {} when absent or unreadable (it is about to be replaced)."""
    if file_kind(run_dir / "run.json") != "file":
        return {}
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}
