"""Computed statistics kept on disk between dashboard processes, so a restarted server skips the scoring.

The key is the run's resolved path, :func:`signature` of its files and a hash of the code that computes the
statistics: a changed log or a changed scorer is never served stale. Nothing is written into a log folder;
the folder is ``io.cache_dir()`` (``CARTOGRAPHY_CACHE``).

An entry is the table as an uncompressed Arrow IPC file, memory-mapped when read (no decoding: a restarted
server has a 10M-example table at once, where zstd parquet took 2.5 s to read), and the per-epoch arrays as
``.npy``. A new entry is written by a background thread at the lowest CPU priority while the dashboard draws
the page (7 s at 10M examples); a later read of the same entry in this process waits for that write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import ingest as ingest_module
from .. import stats as stats_module
from ..ingest import EXAMPLES_NAMES, Run
from ..io import atomic_write
from ..stats import EpochMatrix, compute_stats, compute_stats_and_epochs


def signature(paths: list[Path], files: list[Path] = ()) -> str:
    """A cache key that changes when any file of the run folders ``paths`` (their examples files beside them
    included) or any of ``files`` changes: a hash of each file's path, size, modification time, status-change
    time and inode. The status-change time (ctime) is set by the system on every write, rename or ``utime`` and
    cannot be set back, so a file rewritten with its old size and mtime (``rsync -a``, ``cp -p``, ``tar x`` of
    same-size logs) still changes the key."""
    found = (
        {os.path.join(folder, name) for path in paths for folder, _, names in os.walk(path) for name in names}
        | {str(path.parent / name) for path in paths for name in EXAMPLES_NAMES}
        | {str(f) for f in files}
    )
    h = hashlib.sha256()
    for p in sorted(found):
        try:
            st = os.stat(p)
        except OSError:  # absent, or a dangling link: the link itself (open_run reports the problem)
            try:
                st = os.lstat(p)
            except OSError:
                continue
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()[:32]


def _code_version() -> str:
    """Changes whenever the code that computes the statistics changes, so a cached table is never stale."""
    h = hashlib.sha256()
    for module in (ingest_module, stats_module):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:16]


def _entry(run: Run, cache: Path) -> Path:
    """The cache entry's path stem for ``run``: ``stats-<run>-<version>``, ``<run>`` a hash of its resolved
    path, ``<version>`` one of the code version and :func:`signature`. Entries of the same run share
    ``stats-<run>-``, so a new version of a run replaces the old one (:func:`_prune`)."""
    run_key = hashlib.sha256(str(run.path.resolve()).encode()).hexdigest()[:16]
    version = hashlib.sha256(f"{_code_version()}|{signature([run.path])}".encode()).hexdigest()[:16]
    return cache / f"stats-{run_key}-{version}"


STALE_TEMPORARY_S = 3600  # a hidden temporary this old was left by a write that was killed
_LEGACY = re.compile(r"stats-[0-9a-f]{32}\.")  # entries of versions before stats-<run>-<version>: never read now


def _prune(stem: Path) -> None:
    """Remove the files of the run's other (older) entries beside ``stem``, entries named as earlier versions
    of this module named them, and hidden temporaries of the run's entries left by a write killed over an hour
    ago (a younger one may be another server's write in flight).
    A file another process has memory-mapped stays readable to it until it lets go."""
    prefix = stem.name[: stem.name.rindex("-") + 1]  # stats-<run>-
    now = time.time()
    for p in stem.parent.iterdir():
        name = p.name
        if (name.startswith(prefix) and not name.startswith(stem.name + ".")) or _LEGACY.match(name):
            p.unlink(missing_ok=True)
        elif name.startswith("." + prefix) and ".tmp-" in name:
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > STALE_TEMPORARY_S:
                    p.unlink(missing_ok=True)


EPOCH_ARRAYS = ("epochs", "p_gold", "pred")  # EpochMatrix fields, one .npy file each beside the table


def _yield_cpu() -> None:
    """Lower the calling thread's CPU priority to the least (nice 19), on Linux, where priority is per thread:
    the cache writer then takes no core from the page being drawn, and still runs whenever one is idle."""
    if sys.platform.startswith("linux"):  # elsewhere a thread id is not a process id setpriority knows
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartography-cache", initializer=_yield_cpu)
_PENDING: dict[str, Future] = {}  # entry stem -> its write in flight
_PENDING_LOCK = threading.Lock()


def cached_stats(run: Run, cache: Path | None) -> pa.Table:
    """:func:`stats.compute_stats` of ``run``, read back from ``cache`` when the run's files and the code are
    unchanged. A miss scores the run once and keeps, beside the table, its per-epoch gold probabilities and
    predictions (``stats.EpochMatrix``, 6 bytes per example and epoch) for :func:`cached_epochs`. Nothing is
    written into the run."""
    if cache is None:
        return compute_stats(run)
    stem = _entry(run, cache)
    _wait(stem)
    path = stem.with_suffix(".arrow")
    if path.exists():
        try:
            return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        except (pa.ArrowException, OSError):
            pass  # a damaged cache file is recomputed and replaced
    table, matrix = compute_stats_and_epochs(run)
    with _PENDING_LOCK:
        _PENDING[str(stem)] = _WRITER.submit(_write_entry, stem, table, matrix)
    return table


def _write_entry(stem: Path, table: pa.Table, matrix: EpochMatrix) -> None:
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for name in EPOCH_ARRAYS:  # the arrays first: a table in the cache means its arrays are there too
            atomic_write(Path(f"{stem}.{name}.npy"), lambda tmp, a=getattr(matrix, name): np.save(tmp, a))
        atomic_write(stem.with_suffix(".arrow"), lambda tmp: _write_ipc(table, tmp))
        _prune(stem)
    except (OSError, pa.ArrowException):
        pass  # a read-only or full cache folder only costs the recomputation next time
    finally:
        with _PENDING_LOCK:
            _PENDING.pop(str(stem), None)


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def flush() -> None:
    """Block until every cache write in flight in this process is done."""
    with _PENDING_LOCK:
        pending = list(_PENDING.values())
    for write in pending:
        write.result()


def _wait(stem: Path) -> None:
    """Block until this process's write of the entry ``stem``, if one is in flight, is done."""
    with _PENDING_LOCK:
        pending = _PENDING.get(str(stem))
    if pending is not None:
        pending.result()


def cached_epochs(run: Run, cache: Path | None) -> EpochMatrix | None:
    """The per-epoch arrays :func:`cached_stats` kept for ``run``, memory-mapped (one example's trajectory
    reads E values, not the logs), or None when they are not in the cache."""
    if cache is None:
        return None
    stem = _entry(run, cache)
    _wait(stem)
    try:
        arrays = {name: np.load(f"{stem}.{name}.npy", mmap_mode="r") for name in EPOCH_ARRAYS}
    except (OSError, ValueError):  # absent (an older entry, no cache yet) or damaged
        return None
    return EpochMatrix(**arrays)
