"""Find training-dynamics logs on disk and read them one epoch at a time, validated.

Layouts, chosen automatically by :func:`open_run` (details in ``docs/formats.md``):

- this project's: ``RUN/dynamics/epoch_<e>.{parquet,jsonl}`` or ``RUN/dynamics/epoch_<e>/part-*.{parquet,jsonl}``
  with columns ``id``, ``label``, ``logits`` (or ``probs``); optional ``RUN/run.json`` and
  ``RUN/examples.{parquet,jsonl,csv}`` (or one in the parent folder, shared by the runs of a dataset);
- allenai/cartography's: ``RUN/training_dynamics/dynamics_epoch_<e>.jsonl`` with keys ``guid``,
  ``logits_epoch_<e>``, ``gold``;
- several runs: a directory whose subdirectories are runs (:func:`find_runs`).

A run may also live behind an fsspec URL (``s3://bucket/logs/run``; :mod:`cartography_core.storage`): the
same layouts, read through that filesystem.

Symbols used throughout the package: N examples, E epochs, K classes, R runs.

Everything a log can get wrong is checked here, once, so that ``stats`` can assume valid arrays: missing
files, gaps in epoch numbering, duplicate ids within an epoch, gold labels that change, non-finite values,
rows of different lengths, labels outside ``[0, K)``, malformed JSON (with its line number), missing
columns, empty or truncated files, and probabilities that do not sum to 1. Memory grows with N, not N x E:
an epoch is read in batches of at most ``BATCH_ROWS`` rows, and the next epoch is read in the background
while one is processed, so at most two epochs are in memory at once.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from . import storage
from .errors import LogError, short, show_id
from .io import check_file_kind, file_kind, read_table_file
from .label_issues import check_rule

BATCH_ROWS = 1 << 20
MAX_EPOCH_DIGITS = 6  # an epoch number of more digits is refused (a name like epoch_99999999999999999999)
PROB_SUM_ATOL = 1e-3  # float32 probabilities from a softmax sum to 1 within ~1e-6; allow rounding in files

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
OURS, ALLENAI = "cartography", "allenai"
_OURS_FILE = re.compile(r"^epoch_(\d+)\.(parquet|jsonl)$")
_OURS_DIR = re.compile(r"^epoch_(\d+)$")
_PART_FILE = re.compile(r"^part-[^/]*\.(parquet|jsonl)$")
_ALLENAI_FILE = re.compile(r"^dynamics_epoch_(\d+)\.jsonl$")
EXAMPLES_NAMES = ("examples.parquet", "examples.jsonl", "examples.csv")


@dataclass(frozen=True)
class EpochFiles:
    """The files holding one epoch: one file, or the part files of one epoch folder."""

    epoch: int
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Run:
    """One training run found on disk (nothing is read but ``run.json``)."""

    path: Path  # a PurePosixPath inside ``fs`` for a run behind a URL
    layout: str  # OURS or ALLENAI
    epochs: tuple[EpochFiles, ...]
    meta: dict = field(default_factory=dict)  # run.json, {} when absent
    examples_path: Path | None = None
    fs: object | None = field(default=None, compare=False)  # the fsspec filesystem of a URL; None: local
    partial: tuple[int, int] | None = None  # (epoch, part files) of a last epoch some ranks never wrote: unread

    @property
    def location(self) -> str:
        """The run's local path or URL, as the user gives it to the command line."""
        return str(self.path) if self.fs is None else storage.url(self.fs, self.path)

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    @property
    def label_names(self) -> list[str] | None:
        names = self.meta.get("label_names")
        return [str(n) for n in names] if names else None

    @property
    def recording_notice(self) -> str | None:
        """What ``run.json`` says of a recording that did not end cleanly (``DynamicsRecorder.close``), else
        None; runs that do not record it (other recorders, older runs) say nothing. A last epoch that only some
        ranks wrote (:attr:`partial`) is always reported: it is left out of the scores."""
        if self.partial is not None:
            epoch, parts = self.partial
            return (
                f"epoch {epoch} holds the part files of {parts} of its {self.meta['world_size']} ranks (a rank is "
                f"still writing it, or stopped before its end_epoch()), so it is left out; its {self.n_epochs} "
                "complete epochs are scored"
            )
        if "ended" not in self.meta:
            return None
        if self.meta["ended"] is None:
            return (
                f"its recording has not ended: it is still being recorded, or its process was killed before the "
                f"recorder closed; its {self.n_epochs} complete epochs are scored"
            )
        stopped = self.meta.get("stopped_in_epoch")
        if stopped is not None:
            return f"its recording stopped during epoch {stopped}, whose rows were dropped; epochs before it are scored"
        return None

    def rel(self, path: Path) -> str:
        """``path`` relative to the run's parent folder, as error messages show it."""
        try:
            return str(path.relative_to(self.path.parent))
        except ValueError:
            return str(path)


TRAINING_KEYS = ("label_names", "model", "pass", "hyperparameters")  # run.json: what a run was trained on, and how


def training_differences(before: dict, after: dict) -> str:
    """How two runs' ``run.json`` (``before``, ``after``) say they were trained differently, in words ("" when
    alike): each of ``TRAINING_KEYS`` that differs, hyper-parameters by name."""
    out = []
    for key in TRAINING_KEYS:
        a, b = before.get(key), after.get(key)
        if a == b or (key == "label_names" and None in (a, b)):  # unnamed classes: not a difference
            continue
        if key == "hyperparameters" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k} {a.get(k)} -> {b.get(k)}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        else:
            out.append(f"{key} {'not recorded' if a is None else a} -> {'not recorded' if b is None else b}")
    return "; ".join(out)


def training_notice(before: dict, after: dict) -> str:
    """A sentence when two runs compared before and after relabeling were trained differently
    (:func:`training_differences` of their ``run.json``), else ""."""
    differ = training_differences(before, after)
    return (
        f"the runs were trained differently ({differ}), so the change mixes the relabeling with the change of "
        "training; retrain with the same settings to see the relabeling alone"
        if differ
        else ""
    )


def find_runs(
    root: str | Path, *, max_depth: int = 4, follow_links: bool = False, skipped: list[str] | None = None
) -> list[str]:
    """Relative paths (``/``-separated, sorted) of every run directory at or below ``root``.

    A run directory is one holding ``dynamics/`` or ``training_dynamics/``; the search does not descend into
    a run, nor into hidden folders. A symbolic link to a folder outside ``root`` is skipped unless
    ``follow_links``. A folder that cannot be read (permissions, a symbolic-link loop) or whose name is not
    valid UTF-8 is skipped alone, never the folders beside it; ``skipped`` (if given) receives one sentence
    for each, with its path relative to ``root``.
    """
    fs, root = storage.locate(root)
    if fs is not None:
        return _find_remote_runs(fs, root, max_depth)
    real_root = root.resolve()
    found: list[str] = []

    def skip(d: Path, why: str) -> None:
        if skipped is not None:
            skipped.append(f"{d.relative_to(root).as_posix()}: {why}")

    def walk(d: Path, depth: int) -> None:
        try:
            if not follow_links and not _inside(d, real_root):
                return
            if is_run_dir(d):
                found.append(d.relative_to(root).as_posix() or ".")
                return
            if depth >= max_depth:
                return
            entries = list(os.scandir(d))
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic-link loop, from Path.resolve
            skip(d, f"skipped, cannot be read ({getattr(exc, 'strerror', None) or exc})")
            return
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            try:
                e.name.encode("utf-8")
                is_dir = e.is_dir()
            except UnicodeEncodeError:
                skip(d / e.name.encode("utf-8", "replace").decode(), "skipped, its name is not valid UTF-8")
                continue
            except OSError as exc:
                skip(d / e.name, f"skipped, cannot be read ({exc.strerror})")
                continue
            if is_dir:
                walk(d / e.name, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return found


def _find_remote_runs(fs, root: PurePosixPath, max_depth: int) -> list[str]:
    """:func:`find_runs` in an fsspec filesystem (no links there to follow)."""
    found: list[str] = []

    def walk(d: PurePosixPath, depth: int) -> None:
        listed = storage.entries(fs, d)
        if any(name in ("dynamics", "training_dynamics") and k == "directory" for name, k in listed):
            found.append(d.relative_to(root).as_posix() if d != root else ".")
            return
        if depth < max_depth:
            for name, k in listed:
                if k == "directory" and not name.startswith("."):
                    walk(d / name, depth + 1)

    if storage.kind(fs, root) == "directory":
        walk(root, 0)
    return found


def run_folder(rel: str) -> str:
    """The folder that holds a run (``find_runs``' relative path): ``"trec"`` for ``"trec/seed-0"``. The runs
    of one folder are the runs of one dataset: what pooling averages over, in the CLI and the dashboard."""
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _inside(path: Path, real_root: Path) -> bool:
    """Whether ``path``, links resolved, lies at or below ``real_root`` (already resolved)."""
    real = path.resolve()
    return real == real_root or real_root in real.parents


def is_run_dir(d: Path) -> bool:
    return (d / "dynamics").is_dir() or (d / "training_dynamics").is_dir()


def open_run(path: str | Path, *, confine_to: str | Path | None = None) -> Run:
    """Locate the epoch files, ``run.json`` and examples file of the run at ``path``.

    Raises :class:`LogError` for a missing folder, a folder with no epoch files, a gap in the epoch
    numbering, an epoch given twice, an entry named like a log file that is not a regular file (a
    directory, a dangling link, a FIFO: never opened, so nothing blocks), a malformed ``run.json`` or two
    examples files; a folder holding several runs is refused with their names. With ``confine_to``, a file
    or folder of the run that a symbolic link places outside that folder is refused (the dashboard's
    log root).
    """
    fs, path = storage.locate(path)
    shown = path if fs is None else storage.url(fs, path)
    what = file_kind(path) if fs is None else storage.kind(fs, path)
    if what == "missing":
        raise LogError(f"{shown}: no such directory")
    if what != "directory":
        raise LogError(f"{shown}: not a directory; give the run directory that holds dynamics/")
    if _kind(fs, path / "dynamics") == "directory":
        layout, dyn = OURS, path / "dynamics"
    elif _kind(fs, path / "training_dynamics") == "directory":
        layout, dyn = ALLENAI, path / "training_dynamics"
    else:
        runs = find_runs(path if fs is None else shown)
        if runs:
            shown = ", ".join(runs[:5]) + (", ..." if len(runs) > 5 else "")
            raise LogError(
                f"{path} holds {len(runs)} run{'s' if len(runs) > 1 else ''} ({shown}); give one run directory, "
                f"e.g. {path / runs[0]}"
                + (", or average them: --pool on the command line, pool_runs in Python" if len(runs) > 1 else "")
            )
        raise LogError(
            f"{shown}: no training-dynamics log found; expected dynamics/epoch_<e>.parquet or .jsonl "
            "(this project's layout) or training_dynamics/dynamics_epoch_<e>.jsonl (allenai/cartography)"
        )
    epochs = _list_epochs(fs, dyn, layout)
    examples = _find_examples(fs, path)
    if confine_to is not None and fs is None:
        _check_confined(path, epochs, examples, Path(confine_to).resolve())
    meta = _read_run_json(fs, path / "run.json")
    world = meta.get("world_size", 1)
    if type(world) is not int or world < 1:  # bool is an int subclass: true is not a world size
        raise LogError(f"{path / 'run.json'}: world_size must be a whole number >= 1, found {world!r}")
    partial = None
    if world > 1 and len(epochs) > 1 and len(epochs[-1].paths) < world:  # a rank still writing it, or dead
        partial, epochs = (epochs[-1].epoch, len(epochs[-1].paths)), epochs[:-1]
    for ef in epochs:
        if world > 1 and len(ef.paths) != world:
            raise LogError(
                f"{ef.paths[0].parent}: epoch {ef.epoch} has {len(ef.paths)} part files but run.json says "
                f"world_size {world}: a rank's write did not finish"
            )
    return Run(path=path, layout=layout, epochs=epochs, meta=meta, examples_path=examples, fs=fs, partial=partial)


def _kind(fs, path) -> str:
    """'file', 'directory', 'missing' or what else a local path is (links followed; never opens it)."""
    return file_kind(path) if fs is None else storage.kind(fs, path)


def _entries(fs, folder, keep) -> list[tuple[str, str]]:
    """``(name, kind)`` of the entries of a folder whose name ``keep(name)`` accepts, sorted by name; kinds as
    :func:`_kind` names them (a local entry is examined only when kept)."""
    if fs is not None:
        return [(name, k) for name, k in storage.entries(fs, folder) if keep(name)]
    names = sorted(e.name for e in os.scandir(folder))
    return [(name, file_kind(folder / name)) for name in names if keep(name)]


def _check_file(fs, path, shown: str) -> None:
    """:func:`check_regular_file` for a local path or a path in an fsspec filesystem."""
    check_file_kind(_kind(fs, path), shown)


def _list_epochs(fs, dyn: Path, layout: str) -> tuple[EpochFiles, ...]:
    found: dict[int, EpochFiles] = {}
    file_re = _ALLENAI_FILE if layout == ALLENAI else _OURS_FILE
    dir_re = _OURS_DIR if layout == OURS else None
    # anything else is not an epoch file: README, checkpoints, temporary files of a writer, ...
    for name, kind in _entries(fs, dyn, lambda n: bool(file_re.match(n) or (dir_re and dir_re.match(n)))):
        m_file = file_re.match(name)
        m_dir = dir_re.match(name) if dir_re else None
        path = dyn / name
        if m_file:
            check_file_kind(kind, f"{dyn.name}/{name}")
            files = (path,)
        else:
            if kind != "directory":
                raise LogError(f"{dyn.name}/{name}: an epoch folder name, but {kind}; expected a folder of parts")
            parts = _entries(fs, path, lambda n: bool(_PART_FILE.match(n)))
            if not parts:
                raise LogError(f"{dyn.name}/{name}: epoch folder holds no part-*.parquet or part-*.jsonl files")
            for part, part_kind in parts:
                check_file_kind(part_kind, f"{dyn.name}/{name}/{part}")
            files = tuple(path / part for part, _ in parts)
        digits = (m_file or m_dir).group(1)
        if len(digits.lstrip("0")) > MAX_EPOCH_DIGITS:
            raise LogError(f"{dyn.name}/{name}: epoch number {digits} is too large; epochs are numbered from 0")
        e = int(digits)
        if e in found:
            a, b = found[e].paths[0], files[0]
            raise LogError(f"{dyn}: epoch {e} is given twice ({a.relative_to(dyn)} and {b.relative_to(dyn)})")
        found[e] = EpochFiles(e, files)
    if not found:
        pattern = (
            "dynamics_epoch_<e>.jsonl" if layout == ALLENAI else "epoch_<e>.parquet, epoch_<e>.jsonl or epoch_<e>/"
        )
        raise LogError(f"{dyn}: no epoch files ({pattern})")
    numbers = sorted(found)
    if numbers[-1] != len(numbers) - 1:
        present = np.asarray(numbers)
        gaps = [(a + 1, b - 1) for a, b in zip([-1, *numbers[:-1]], numbers) if b > a + 1]
        missing = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps)
        one = len(gaps) == 1 and gaps[0][0] == gaps[0][1]
        raise LogError(
            f"{dyn}: epoch numbering has a gap: epoch{'' if one else 's'} {missing} {'is' if one else 'are'} missing "
            f"(found {_ranges(present.tolist())}; epochs are numbered from 0)"
        )
    return tuple(found[e] for e in numbers)


def _check_confined(run: Path, epochs: tuple[EpochFiles, ...], examples: Path | None, real_root: Path) -> None:
    """Refuse a run whose folders or files a symbolic link places outside ``real_root``."""
    paths = [run, *(p for ef in epochs for p in ef.paths), run / "run.json"]
    if examples is not None:
        paths.append(examples)
    for p in paths:
        if (p.exists() or p.is_symlink()) and not _inside(p, real_root):
            shown = p.relative_to(run.parent) if p != run else p.name
            raise LogError(
                f"{shown}: a symbolic link to a place outside the log root; it is not followed "
                "(start the dashboard with --follow-links to allow links out of the root)"
            )


def _ranges(xs: list[int]) -> str:
    out, start = [], xs[0]
    for a, b in zip(xs, xs[1:] + [None]):
        if b != a + 1:
            out.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def _read_run_json(fs, p: Path) -> dict:
    kind = _kind(fs, p)
    if kind == "missing":
        return {}
    shown = f"{p.parent.name}/{p.name}"
    check_file_kind(kind, shown)
    try:
        meta = json.loads(_read_bytes(fs, p).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LogError(f"{shown}: not valid JSON: {exc}") from None
    except RecursionError:
        raise LogError(f"{shown}: JSON nested too deeply to read") from None
    if not isinstance(meta, dict):
        raise LogError(f"{shown}: expected a JSON object, found {type(meta).__name__}")
    names = meta.get("label_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, (str, int)) for n in names)):
        raise LogError(f"{shown}: label_names must be a list of class names, found {short(repr(names))}")
    check_rule(meta.get("label_issue_rule"), shown)
    return meta


def _read_bytes(fs, p: Path) -> bytes:
    if fs is None:
        return p.read_bytes()
    with storage.open_binary(fs, p) as fh:
        return fh.read()


def _find_examples(fs, run: Path) -> Path | None:
    """The run's examples file, else one in its parent folder shared by several runs of a dataset."""
    for folder in (run, run.parent):
        present = [folder / n for n in EXAMPLES_NAMES if _kind(fs, folder / n) != "missing"]
        if len(present) > 1:
            raise LogError(f"{folder}: several examples files ({', '.join(p.name for p in present)}); keep one")
        if present:
            return present[0]
    return None


# ----------------------------------------------------------------------------------------------------------
# Reading one file into validated batches


@dataclass(frozen=True)
class Batch:
    """Rows of one epoch file, converted and checked on their own (cross-epoch checks come later)."""

    epoch: int
    source: str  # file name as shown in messages
    row0: int  # index of the first row within the file
    ids: np.ndarray  # (n,) int64 or object (str)
    labels: np.ndarray  # (n,) int64
    values: np.ndarray  # (n, K) float32 or float64 as stored: logits, or probabilities when kind == "probs"
    kind: str  # "logits" or "probs"
    jsonl: bool
    rows: np.ndarray | None = None  # (n,) each row's number within the file, when not row0, row0 + 1, ...

    def where(self, i: int) -> str:
        return _where(self.source, self.jsonl, int(self.rows[i]) if self.rows is not None else self.row0 + int(i))


def _where(source: str, jsonl: bool, row: int) -> str:
    """'file line L' for JSONL (1-based, one object a line), 'file row R' (0-based) for parquet."""
    return f"{source} line {row + 1}" if jsonl else f"{source} row {row}"


def _columns(layout: str, epoch: int) -> tuple[str, str, str]:
    """(id, label, logits) column names of an epoch file."""
    return ("guid", "gold", f"logits_epoch_{epoch}") if layout == ALLENAI else ("id", "label", "logits")


def read_epoch(run: Run, ef: EpochFiles, k_expected: int | None = None) -> Iterator[Batch]:
    """The validated batches of one epoch's files (checks within a file; ``DynamicsReader`` adds the rest)."""
    for path in ef.paths:
        for batch in read_file(run, path, ef.epoch, k_expected):
            k_expected = batch.values.shape[1]
            yield batch


def read_file(
    run: Run, path: Path, epoch: int, k_expected: int | None = None, row_groups: list[int] | None = None
) -> Iterator[Batch]:
    """The validated batches of one epoch file, or of some of a parquet file's ``row_groups`` (their rows keep
    their numbers within the file, for messages)."""
    source = run.rel(path)
    _check_file(run.fs, path, source)  # again: the folder may have changed since open_run listed it
    jsonl = path.suffix == ".jsonl"
    rows = 0
    with opened(run.fs, path) as src:
        if jsonl:
            tables, row0 = _read_jsonl(run, src, path, epoch), 0
        else:
            f = parquet_file(run, src, path)
            row0 = sum(f.metadata.row_group(g).num_rows for g in range(min(row_groups or [0])))
            tables = _read_parquet(run, f, path, epoch, row_groups)
        for table in tables:
            batch = _to_batch(table, epoch, source, row0 + rows, jsonl, k_expected)
            k_expected = batch.values.shape[1]
            rows += table.num_rows
            yield batch
    if rows == 0 and not row_groups:
        raise LogError(f"{source}: file holds no rows")


@contextmanager
def opened(fs, path: Path):
    """A local path as it is (pyarrow opens it), or a file of an fsspec filesystem opened for the block."""
    if fs is None:
        yield path
        return
    with storage.open_binary(fs, path) as fh:
        yield fh


def parquet_file(run: Run, src, path: Path) -> pq.ParquetFile:
    """``src`` (a local path or an open file) as a :class:`pq.ParquetFile`; a clear error if it is not one."""
    try:
        return pq.ParquetFile(src)
    except (pa.ArrowException, OSError) as exc:
        raise LogError(f"{run.rel(path)}: not a readable parquet file (empty or truncated?): {short(exc)}") from None


def _read_parquet(run: Run, f: pq.ParquetFile, path: Path, epoch: int, row_groups=None) -> Iterator[pa.Table]:
    source = run.rel(path)
    names = set(f.schema_arrow.names)
    id_col, label_col, logit_col = _columns(run.layout, epoch)
    value_col = logit_col if logit_col in names else "probs" if "probs" in names else None
    missing = [c for c in (id_col, label_col) if c not in names] + ([] if value_col else [f"{logit_col} (or probs)"])
    if missing:
        raise LogError(f"{source}: missing column {', '.join(missing)}; found columns {sorted(names)}")
    try:
        for rb in f.iter_batches(batch_size=BATCH_ROWS, row_groups=row_groups, columns=[id_col, label_col, value_col]):
            yield pa.Table.from_batches([rb])
    except (pa.ArrowException, OSError) as exc:
        raise LogError(f"{source}: cannot read parquet data (truncated file?): {short(exc)}") from None


def _read_jsonl(run: Run, src, path: Path, epoch: int) -> Iterator[pa.Table]:
    source = run.rel(path)
    if (path.stat().st_size if run.fs is None else run.fs.size(str(path))) == 0:
        raise LogError(f"{source}: file is empty")
    id_col, label_col, logit_col = _columns(run.layout, epoch)
    schema = pa.schema(
        [(label_col, pa.int64()), (logit_col, pa.list_(pa.float64())), ("probs", pa.list_(pa.float64()))]
    )
    try:
        table = pajson.read_json(src, parse_options=pajson.ParseOptions(explicit_schema=schema))
    except pa.ArrowInvalid as exc:
        _raise_jsonl_error(run.fs, path, source, (id_col, label_col, logit_col), exc)
    names = set(table.column_names)
    if id_col in names and not (pa.types.is_integer(table[id_col].type) or pa.types.is_string(table[id_col].type)):
        _raise_jsonl_error(run.fs, path, source, (id_col, label_col, logit_col), None)  # e.g. an id too large
    value_col = logit_col if logit_col in names and table[logit_col].null_count < table.num_rows else "probs"
    missing = [c for c in (id_col, label_col) if c not in names or table[c].null_count == table.num_rows]
    if value_col not in names or table[value_col].null_count == table.num_rows:
        missing.append(f"{logit_col} (or probs)")
    if missing:
        raise LogError(f"{source}: missing key {', '.join(missing)} (keys found: {sorted(names)})")
    table = table.select([id_col, label_col, value_col])
    for start in range(0, table.num_rows, BATCH_ROWS):
        yield table.slice(start, BATCH_ROWS)


def _raise_jsonl_error(fs, path: Path, source: str, keys: tuple[str, str, str], exc: Exception | None) -> None:
    """pyarrow's message has no line number: find the first offending line with a plain scan (error path only)."""
    id_key, label_key, logit_key = keys
    id_type = None
    raw = open(path, "rb") if fs is None else storage.open_binary(fs, path)
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LogError(f"{source} line {lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise LogError(f"{source} line {lineno}: expected a JSON object, found {type(obj).__name__}")
            if id_key in obj and type(obj[id_key]) not in (int, str):
                raise LogError(
                    f"{source} line {lineno}: {id_key} must be a whole number or a string, found "
                    f"{short(json.dumps(obj[id_key]), 40)}"
                )
            if id_key in obj and id_type is None:
                id_type = type(obj[id_key])
            if id_key in obj and type(obj[id_key]) is not id_type:
                raise LogError(
                    f"{source} line {lineno}: {id_key} {short(repr(obj[id_key]), 40)} is a "
                    f"{type(obj[id_key]).__name__}, earlier ids are {id_type.__name__}; use one type for all ids"
                )
            if type(obj.get(id_key)) is int and not INT64_MIN <= obj[id_key] <= INT64_MAX:
                raise LogError(f"{source} line {lineno}: {id_key} {obj[id_key]} does not fit a 64-bit integer")
            if label_key in obj and type(obj[label_key]) is not int:
                raise LogError(
                    f"{source} line {lineno}: {label_key} must be a whole class index, found "
                    f"{short(repr(obj[label_key]), 40)}"
                )
            if label_key in obj and not INT64_MIN <= obj[label_key] <= INT64_MAX:
                raise LogError(f"{source} line {lineno}: {label_key} {obj[label_key]} is not a class index")
            for key in (logit_key, "probs"):
                v = obj.get(key)
                if v is not None and not (isinstance(v, list) and all(type(x) in (int, float) for x in v)):
                    raise LogError(
                        f"{source} line {lineno}: {key} must be a list of numbers, found {short(json.dumps(v), 60)}"
                    )
    raise LogError(f"{source}: cannot read JSON lines: {short(exc or 'unreadable values')}")


def _to_batch(table: pa.Table, epoch: int, source: str, row0: int, jsonl: bool, k_expected: int | None) -> Batch:
    id_col, label_col, value_col = table.column_names
    kind = "probs" if value_col == "probs" else "logits"

    def where(i: int) -> str:
        return _where(source, jsonl, row0 + int(i))

    for col in (id_col, label_col, value_col):
        if table[col].null_count:
            i = int(np.flatnonzero(table[col].is_null().to_numpy(zero_copy_only=False))[0])
            raise LogError(f"{where(i)}: {col} is missing (null)")
    id_arr = one_array(table[id_col])
    if pa.types.is_integer(id_arr.type):
        ids = _to_int64(id_arr, id_col, where, "does not fit a 64-bit integer; write ids as int64 or strings")
    elif pa.types.is_string(id_arr.type) or pa.types.is_large_string(id_arr.type):
        ids = id_arr.to_numpy(zero_copy_only=False).astype(object)
    else:
        raise LogError(f"{source}: column {id_col} must hold integers or strings, found {id_arr.type}")
    lab = one_array(table[label_col])
    if not pa.types.is_integer(lab.type):
        raise LogError(f"{source}: column {label_col} must hold whole class indices, found {lab.type}")
    labels = _to_int64(lab, label_col, where, "is not a class index")

    lists = one_array(table[value_col])
    if not (
        pa.types.is_list(lists.type) or pa.types.is_large_list(lists.type) or pa.types.is_fixed_size_list(lists.type)
    ):
        raise LogError(f"{source}: column {value_col} must hold lists of numbers, found {lists.type}")
    # from the offsets (no nulls here): a pass over n + 1 offsets, half the time of list_value_length
    lengths = (
        pc.list_value_length(lists).to_numpy() if pa.types.is_fixed_size_list(lists.type) else np.diff(lists.offsets)
    )
    k = int(k_expected if k_expected is not None else lengths[0])
    bad = np.flatnonzero(lengths != k)
    if bad.size:
        i = bad[0]
        origin = "K from the first row of epoch 0" if k_expected is not None else f"K from {where(0)}"
        raise LogError(f"{where(i)}: {value_col} has {lengths[i]} values, expected {k} ({origin})")
    if k < 2:
        raise LogError(f"{where(0)}: {value_col} has {k} value(s); a classifier needs at least 2 classes")
    flat = pc.list_flatten(lists)
    if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)):
        raise LogError(f"{source}: column {value_col} must hold numbers, found {flat.type}")
    if not pa.types.is_floating(flat.type):
        flat = flat.cast(pa.float64())
    values = flat.to_numpy(zero_copy_only=False).reshape(-1, k)  # (n, K) float32 or float64, as stored
    if values.dtype == np.float16:
        values = values.astype(np.float32)  # half precision widened exactly; computed as float32 logs are

    # cheap on the happy path (summed in float64: float32 values near their maximum do not overflow the sum);
    # locate the row only on failure
    if not np.isfinite(values.sum(dtype=np.float64)):
        i = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise LogError(f"{where(i)}: {value_col} contains NaN or infinity: {short(values[i].tolist())}")
    out = np.flatnonzero((labels < 0) | (labels >= k))
    if out.size:
        i = out[0]
        raise LogError(f"{where(i)}: {label_col} {labels[i]} is outside [0, {k}) for {k} classes")
    if kind == "logits" and row0 == 0 and are_probabilities(values):
        raise LogError(f"{source}: column {value_col} holds {PROBS_AS_LOGITS}, or name the column 'probs'")
    if kind == "probs":
        sums = values.sum(axis=1, dtype=np.float64)
        off = np.flatnonzero((np.abs(sums - 1.0) > PROB_SUM_ATOL) | (values < 0).any(axis=1))
        if off.size:
            i = off[0]
            raise LogError(
                f"{where(i)}: probs {values[i].tolist()} sum to {values[i].sum():.6g}; probabilities must be "
                f">= 0 and sum to 1 (within {PROB_SUM_ATOL}); write raw logits to the 'logits' column instead"
            )
    return Batch(epoch, source, row0, ids, labels, values, kind, jsonl)


PROBS_AS_LOGITS = (
    "probabilities, not logits: every row lies in [0, 1] and sums to 1. Scored as logits they would go through "
    "softmax a second time, which squeezes every confidence toward 1/K and marks the whole map hard-to-learn. Log "
    "the model's raw outputs (before softmax), or np.log(probs) when probabilities are all you have (softmax gives "
    "them back exactly)"
)


PROBE_ROWS = 1024  # rows are_probabilities looks at: conclusive, and a constant cost whatever a batch holds


def are_probabilities(values: np.ndarray) -> bool:
    """Whether ``values`` (n, K) with n >= 2 rows look like softmax outputs, judged on the first ``PROBE_ROWS``:
    every value in [0, 1], every row summing to 1 within ``PROB_SUM_ATOL``, and not every value exactly 0 or 1.
    Real logits of two or more examples practically never do; one-hot rows are left alone (hand-written test
    logs; a softmax is never exactly one-hot on every row of a batch unless the model is saturated on all of
    them)."""
    values = values[:PROBE_ROWS]
    if values.shape[0] < 2 or values.min() < 0 or values.max() > 1:
        return False
    sums_to_one = (np.abs(values.sum(axis=1, dtype=np.float64) - 1.0) <= PROB_SUM_ATOL).all()
    return bool(sums_to_one and ((values > 0) & (values < 1)).any())


def check_like(b: Batch, kind: str, id_is_str: bool) -> None:
    """Raise :class:`LogError` unless batch ``b`` holds ``kind`` (logits or probs) and ids of the same type as
    the run's first batch."""
    if b.kind != kind:
        raise LogError(f"{b.source}: holds {b.kind} but epoch 0 holds {kind}; use one in every epoch")
    is_str = b.ids.dtype == object
    if is_str != id_is_str:
        kinds = ("strings", "integers")
        raise LogError(f"{b.where(0)}: ids are {kinds[not is_str]} but earlier ids are {kinds[is_str]}; use one type")


def check_padding(run: Run, ef: EpochFiles, kept: int, padded: int) -> None:
    """Raise :class:`LogError` when more rows of an epoch repeat examples of another part (``padded``, besides
    the ``kept`` rows) than a distributed sampler pads: fewer than one per process, and under 1/world."""
    world = run.meta.get("world_size", 1)
    if padded >= max(world, (kept + padded) / world):
        raise LogError(
            f"{run.rel(ef.paths[0].parent)}: {padded} rows of epoch {ef.epoch} repeat examples already "
            f"logged in another part, more than a distributed sampler pads ({world} processes); does every "
            "rank log every example?"
        )


def one_array(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array: its only chunk as it is (``combine_chunks`` copies even a single chunk: 28 MB
    of ids, labels and logits an epoch of 1M rows), else its chunks joined."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _to_int64(arr: pa.Array, col: str, where, problem: str) -> np.ndarray:
    """An integer column as (n,) int64; an unsigned value above the int64 range is a clear error."""
    try:
        return arr.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        big = np.flatnonzero(arr.to_numpy(zero_copy_only=False) > INT64_MAX)
        i = int(big[0]) if big.size else 0
        raise LogError(f"{where(i)}: {col} {arr[i].as_py()} {problem}") from None


# ----------------------------------------------------------------------------------------------------------
# Reading a whole run: ids mapped to positions, cross-epoch checks


class _IdIndex:
    """Ids -> positions ``0..n-1``, each added batch of new ids in sorted order after those before it.

    Integer ids within a span of at most ``LUT_SPAN_PER_ID`` x n values use a lookup table (one gather per
    epoch); other ids (strings, sparse integers such as hashes) a pandas hash index.
    """

    LUT_SPAN_PER_ID = 16

    def __init__(self) -> None:
        self.ids = np.empty(0, dtype=np.int64)
        self._lut: np.ndarray | None = None  # (span,) int32 position of id lo + j, -1 if none
        self._lo = 0
        self._hash: pd.Index | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """(n,) positions of ``ids`` (int32 from the lookup table, int64 from the hash index), -1 for ids not
        added yet."""
        if self._lut is None:
            return self._hash.get_indexer(ids) if self._hash is not None else np.full(len(ids), -1, dtype=np.int64)
        rel = ids - self._lo if self._lo else ids  # (a table from 0: no N x 8 bytes of offsets an epoch)
        if not ids.size or (int(ids.min()) >= self._lo and int(ids.max()) - self._lo < self._lut.size):
            return self._lut.take(rel)  # take: faster than fancy indexing
        inside = (rel >= 0) & (rel < self._lut.size)
        pos = np.full(len(ids), -1, dtype=np.int32)
        pos[inside] = self._lut[rel[inside]]
        return pos

    def add(self, new_ids: np.ndarray) -> None:
        """Append ids (distinct, none added before) at positions ``len(self)...``."""
        if len(self.ids) == 0 and new_ids.dtype == object:
            self.ids = np.empty(0, dtype=object)
        self.ids = np.concatenate([self.ids, new_ids])
        if self.ids.dtype != object:
            lo, hi = int(self.ids.min()), int(self.ids.max())
            limit = max(self.LUT_SPAN_PER_ID * len(self.ids), 1 << 16)
            lo = 0 if 0 <= lo and hi < limit else lo  # usual ids (0.. or 1..): a table from 0, looked up as they are
            if hi - lo < limit:
                self._lo, self._lut = lo, np.full(hi - lo + 1, -1, dtype=np.int32)
                self._lut[self.ids - lo] = np.arange(len(self.ids), dtype=np.int32)
                return
        self._lut = None
        self._hash = pd.Index(self.ids)


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    """The distinct ``ids``, sorted: integers within a span of ``LUT_SPAN_PER_ID`` x n by marking them in a
    table of the span (a counting sort: 10 ms against 70 ms for 1M ids), others by one sort (numpy 2's
    ``np.unique`` hashes first: 13 s against 3 s for 10M random ids), strings by hashing first (sorting Python
    strings is slow)."""
    if ids.dtype == object:
        return np.sort(pd.unique(ids))
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo < _IdIndex.LUT_SPAN_PER_ID * ids.size:
            seen = np.zeros(hi - lo + 1, dtype=bool)
            seen[ids - lo] = True
            return np.flatnonzero(seen) + lo
    ids = np.sort(ids)
    return ids[np.concatenate([[True], ids[1:] != ids[:-1]])] if ids.size else ids


@dataclass(frozen=True)
class IndexedBatch:
    """A validated batch whose rows are mapped to example positions ``pos`` in ``0..N-1``."""

    epoch: int
    pos: np.ndarray  # (n,) int32 or int64, distinct within an epoch
    labels: np.ndarray  # (n,) int64
    values: np.ndarray  # (n, K) float32 or float64 as stored (the kernels' precision: stats.kernel_dtype)
    kind: str


class DynamicsReader:
    """Iterate a run's epochs in order as :class:`IndexedBatch` es, checking what spans epochs.

    Example ids are mapped to positions (the first epoch's in sorted id order); after iteration, ``ids`` holds
    the id of every position, ``labels`` the gold label (int64) and ``seen`` the number of epochs each example
    was logged in.
    Raises :class:`LogError` for a duplicate id within an epoch, a gold label that changes, ids of another
    type, a change of K or of logits/probs between epochs, and (``strict=True``) an id missing from an epoch.
    """

    def __init__(
        self,
        run: Run,
        *,
        max_epochs: int | None = None,
        strict: bool = False,
        batches: Iterable[tuple[EpochFiles, list[Batch]]] | None = None,
    ):
        """``batches``: each epoch's validated batches, in epoch order, when they come from elsewhere than the
        run's files (the Dask engine's shuffled rows of some of the examples); then the check that an epoch's
        padding stays within a sampler's is left to the caller (:func:`check_padding` on ``epoch_rows``),
        which sees every example."""
        if max_epochs is not None and max_epochs < 1:
            raise LogError(f"max_epochs must be at least 1, got {max_epochs}")
        self.run = run
        self.epochs = run.epochs[:max_epochs] if max_epochs else run.epochs
        self.strict = strict
        self._batches = batches
        self.epoch_rows: list[tuple[int, int]] = []  # per epoch: (rows kept, padding rows dropped)
        self.k: int | None = None
        self.kind: str | None = None
        self.dtype: np.dtype | None = None  # the first batch's values' dtype (the run's precision; see stats)
        self._index = _IdIndex()
        self._id_is_str: bool | None = None
        self._labels = np.empty(0, dtype=np.int8)  # (N,) gold label, -1 until logged; the narrowest type for K
        self.seen = np.empty(0, dtype=np.int32)
        self.padding_rows = 0  # rows ignored as a distributed sampler's padding, over all epochs
        self._done = False

    @property
    def n(self) -> int:
        return len(self._index)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64: the gold label at each position, -1 for none yet."""
        return self._labels.astype(np.int64)

    @property
    def position_labels(self) -> np.ndarray:
        """(N,) the gold label at each position in the narrowest integer type for K (int8 for K < 128), -1 for
        none yet: the array the reader keeps and checks every batch against (not a copy; do not write)."""
        return self._labels

    @property
    def ids(self) -> np.ndarray:
        """(N,) int64 or object: the id at each position."""
        return self._index.ids

    def __iter__(self) -> Iterator[IndexedBatch]:
        if self._done:
            raise RuntimeError("a DynamicsReader can be iterated once")
        self._done = True
        world = self.run.meta.get("world_size", 1)
        for ef, batches in self._prefetched() if self._batches is None else self._batches:
            if self.n == 0:
                self._add_first_ids(batches)
            in_epoch = np.zeros(self.n, dtype=bool)
            n_in_epoch = padded = 0
            for b in batches:
                self._check_kind(b)
                pos = self._positions(b)
                if self.n > in_epoch.size:
                    in_epoch = np.concatenate([in_epoch, np.zeros(self.n - in_epoch.size, dtype=bool)])
                keep = self._check_unique(b, pos, in_epoch, n_in_epoch, allow_padding=len(ef.paths) > 1 and world > 1)
                self._check_labels(b, pos)
                if keep is not None:  # rows repeating an example of an earlier part: sampler padding, read once
                    padded += pos.size - int(keep.sum())
                    rows = b.rows[keep] if b.rows is not None else None
                    kept = (b.ids[keep], b.labels[keep], b.values[keep])
                    b = Batch(b.epoch, b.source, b.row0, *kept, b.kind, b.jsonl, rows)
                    pos = pos[keep]
                n_in_epoch += pos.size
                yield IndexedBatch(ef.epoch, pos, b.labels, b.values, b.kind)
            if self._batches is None:
                check_padding(self.run, ef, n_in_epoch, padded)
            self.epoch_rows.append((n_in_epoch, padded))
            self.padding_rows += padded
            self.seen += in_epoch  # a sequential pass, not a scatter over random positions
            if self.strict and n_in_epoch < self.n:
                self._raise_missing(ef, in_epoch)
        if self.strict:
            late = np.flatnonzero(self.seen < len(self.epochs))
            if late.size:
                i = late[0]
                raise LogError(
                    f"{self.run.path}: id {show_id(self.ids[i])} is logged in {self.seen[i]} of "
                    f"{len(self.epochs)} epochs "
                    f"({late.size} examples are missing from some epochs; drop --strict to allow this)"
                )

    def _prefetched(self) -> Iterator[tuple[EpochFiles, list[Batch]]]:
        """Each epoch's batches; the next epoch is read by a background thread meanwhile (pyarrow releases
        the GIL), so reading overlaps computing. At most two epochs are held at once."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            batches = list(read_epoch(self.run, self.epochs[0]))
            k = batches[0].values.shape[1]
            for i, ef in enumerate(self.epochs):
                later = self.epochs[i + 1 : i + 2]
                nxt = pool.submit(lambda e: list(read_epoch(self.run, e, k)), later[0]) if later else None
                yield ef, batches
                batches = nxt.result() if nxt is not None else []

    def _check_kind(self, b: Batch) -> None:
        if self.k is None:
            self.k, self.kind, self._id_is_str = b.values.shape[1], b.kind, b.ids.dtype == object
            self.dtype = b.values.dtype
        check_like(b, self.kind, self._id_is_str)

    def _add_first_ids(self, batches: list[Batch]) -> None:
        """Positions for every id of the first epoch at once, in id order across all its batches: one index
        build, and the table's rows need no reordering (later epochs' new ids, if any, come after)."""
        for b in batches:
            self._check_kind(b)  # one id type before they are mixed
        if batches:
            self._add_ids(_sorted_unique(np.concatenate([b.ids for b in batches])))

    def _add_ids(self, new_ids: np.ndarray) -> None:
        """Append distinct ids not seen before at positions ``n...``."""
        self._index.add(new_ids)
        # a narrow type (int8 for K < 128) keeps the per-epoch gather in _check_labels within the CPU's caches
        narrow = np.promote_types(np.min_scalar_type(-1), np.min_scalar_type(self.k))
        self._labels = np.concatenate([self._labels, np.full(new_ids.size, -1, dtype=narrow)])
        self.seen = np.concatenate([self.seen, np.zeros(new_ids.size, dtype=np.int32)])

    def _positions(self, b: Batch) -> np.ndarray:
        pos = self._index.lookup(b.ids)  # (n,) int64, -1 for ids not seen before
        new = pos < 0
        if new.any():
            self._add_ids(_sorted_unique(b.ids[new]))  # positions in id order: usually the final order already
            pos[new] = self._index.lookup(b.ids[new])
        return pos

    def _check_unique(
        self, b: Batch, pos: np.ndarray, in_epoch: np.ndarray, n_before: int, *, allow_padding: bool
    ) -> np.ndarray | None:
        """None when every row is a new id of this epoch; with ``allow_padding`` (a multi-part epoch of a
        distributed run), the (n,) bool mask of rows to keep when some repeat ids of an earlier part.
        Raises for an id twice within one batch, or repeated across parts of a run not marked distributed."""
        # (n,) bool: id already met in an earlier batch or part of this epoch (none before the epoch's first batch:
        # no gather over N positions for an epoch read in one batch)
        again = in_epoch.take(pos) if n_before else np.zeros(pos.size, dtype=bool)
        in_epoch[pos] = True
        n_new = pos.size - np.count_nonzero(again)
        if np.count_nonzero(in_epoch) == n_before + n_new:  # no id twice within this batch
            if not again.any():
                return None
            if allow_padding:
                return ~again
            i = np.flatnonzero(again)[0]
            raise LogError(
                f"{b.where(i)}: id {show_id(b.ids[i])} appears again in epoch {b.epoch} (also in an earlier part or "
                "batch of this epoch); ids must be unique within an epoch (a distributed run recorded with "
                "world_size in run.json may repeat a few ids as sampler padding)"
            )
        counts = np.bincount(pos, minlength=self.n)
        rows = np.flatnonzero(pos == pos[np.flatnonzero(counts[pos] > 1)[0]])
        raise LogError(
            f"{b.where(rows[1])}: id {show_id(b.ids[rows[0]])} appears {rows.size} times in epoch {b.epoch} "
            f"(first at {b.where(rows[0])}); ids must be unique within an epoch"
        )

    def _check_labels(self, b: Batch, pos: np.ndarray) -> None:
        known = self._labels.take(pos)
        if np.array_equal(known, b.labels):  # every id known, with the same label: one pass
            return
        changed = np.flatnonzero((known >= 0) & (known != b.labels))
        if changed.size:
            i = changed[0]
            raise LogError(
                f"{b.where(i)}: gold label of id {show_id(b.ids[i])} is {b.labels[i]} in epoch {b.epoch} but "
                f"{known[i]} in an earlier epoch; the gold label must be the same in every epoch"
            )
        new = known < 0
        self._labels[pos[new]] = b.labels[new]

    def _raise_missing(self, ef: EpochFiles, in_epoch: np.ndarray) -> None:
        absent = np.flatnonzero(~in_epoch[: self.n])
        raise LogError(
            f"{self.run.rel(ef.paths[0])}: id {show_id(self.ids[absent[0]])} is missing from epoch {ef.epoch} "
            f"({absent.size} ids missing); drop --strict to allow examples missing from some epochs"
        )


# ----------------------------------------------------------------------------------------------------------
# Examples file


def read_examples(run: Run) -> pa.Table | None:
    """The run's examples file (``id`` plus any columns: text, label, ...), or None when it has none.

    Raises :class:`LogError` for an unreadable file, a missing ``id`` column or a repeated id.
    """
    p = run.examples_path
    if p is None:
        return None
    source = run.rel(p)
    table = read_table_file(p, source, fs=run.fs)
    if "id" not in table.column_names:
        raise LogError(f"{source}: missing column id (columns found: {table.column_names})")
    ids = table["id"]
    if ids.null_count:
        raise LogError(f"{source}: {ids.null_count} rows have no id")
    if pc.count_distinct(ids).as_py() != len(ids):
        vc = pc.value_counts(ids)
        dup = vc.filter(pc.greater(vc.field("counts"), 1))[0]["values"].as_py()
        raise LogError(f"{source}: id {dup!r} appears more than once; ids must be unique")
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"source": source.encode()})
