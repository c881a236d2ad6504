"""Reading and writing files: whole tables (parquet, JSONL, CSV), atomic writes, the user's cache folder.

Every file this package writes goes through :func:`atomic_write`: the bytes go to a hidden temporary file in
the same folder, renamed into place only once complete, so a crash never leaves a half-written file that a
reader would take for a whole one. Every file it reads whole is checked to be a regular file first (a FIFO
would block the reader; a directory or a dangling link is reported by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from . import storage
from .errors import LogError, short

FORMATS = (".csv", ".jsonl", ".parquet")
# dictionary encoding buys nothing on logits and costs 2.5x the write time (bench/bench_recorder.py)
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": False}


def _temporary(path: Path) -> Path:
    """The hidden temporary file beside ``path`` that a write goes to before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, then rename it to ``path``."""
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` as zstd parquet, atomically."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS))


_STREAM_THREAD: list[ThreadPoolExecutor] = []  # one background writer thread for the process, made on first use


class ParquetStream:
    """A parquet file written one row group at a time by a background thread (pyarrow releases the GIL while
    it encodes and compresses), into the hidden temporary file of :func:`atomic_write`; :meth:`commit` renames
    it into place, so a reader never sees part of it. Row groups wait for the thread at most ``MAX_PENDING``
    at a time (``write`` blocks beyond that), so memory stays bounded when the disk is slower than the caller.
    A failure on the thread is raised by the next ``write`` or by ``commit``."""

    MAX_PENDING = 2

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.tmp = path, _temporary(path)
        # opened here, not on the thread: the thread runs only pyarrow's encoding, which releases the GIL, so it
        # never holds the GIL against the caller for a switch interval (5 ms)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, schema, **PARQUET_OPTIONS)
        self._pending: deque[Future] = deque()

    def write(self, table: pa.Table) -> None:
        """Queue ``table`` as the next row group."""
        self._submit(self._writer.write_table, table, max(1, table.num_rows))

    def _submit(self, fn, *args) -> None:
        if not _STREAM_THREAD:
            _STREAM_THREAD.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartography-writer"))
        while self._pending and (self._pending[0].done() or len(self._pending) >= self.MAX_PENDING):
            self._pending.popleft().result()  # in order: the first failure is the one raised
        self._pending.append(_STREAM_THREAD[0].submit(fn, *args))

    def commit(self) -> Path:
        """Wait for every row group, complete the file and rename it into place; returns ``path``."""
        while self._pending:
            self._pending.popleft().result()
        self._writer.close()
        self._writer = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Give the file up: nothing is left under ``path`` or the temporary name."""
        wait(self._pending)
        self._pending.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self.tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


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
    if path.suffix == ".parquet":  # encoded straight into the file: no copy of the whole output in memory
        atomic_write(path, lambda tmp: _write_parquet(table, tmp))
        return path
    data = table_bytes(table, path.suffix)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return path


def _write_parquet(table: pa.Table, where) -> None:
    """A table written as a command's or a download's ``.parquet`` (zstd, dictionaries kept for text columns)."""
    pq.write_table(table, where, compression="zstd")


def table_bytes(table: pa.Table, fmt: str) -> bytes:
    """The bytes of ``table`` as ``.csv``, ``.jsonl`` (one JSON object a line) or ``.parquet``."""
    sink = pa.BufferOutputStream()
    if fmt == ".csv":
        pacsv.write_csv(table, sink)
    elif fmt == ".parquet":
        _write_parquet(table, sink)
    elif fmt == ".jsonl":
        frame = table.to_pandas(types_mapper=pd.ArrowDtype)  # keeps nullable ints as ints
        text = frame.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
        return text.encode("utf-8")
    else:
        raise LogError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    return sink.getvalue().to_pybytes()


def file_kind(path: Path) -> str:
    """'file', 'directory', or what else ``path`` is, in words (links followed; never opens it)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a symbolic link to a missing file" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file"


def check_regular_file(path: Path, shown: str) -> None:
    """Raise :class:`LogError` unless ``path`` is a regular file, so that reading it cannot block (a FIFO) or
    fail half-way (a directory, a dangling link). ``shown`` is the name the message uses."""
    check_file_kind(file_kind(path), shown)


def check_file_kind(kind: str, shown: str) -> None:
    """Raise :class:`LogError` unless ``kind`` (as :func:`file_kind` names it) is 'file'."""
    if kind == "missing":
        raise LogError(f"{shown}: no such file")
    if kind != "file":
        raise LogError(f"{shown}: expected a regular file, found {'a directory' if kind == 'directory' else kind}")


def read_table_file(path: Path, shown: str | None = None, fs=None, id_type: pa.DataType | None = None) -> pa.Table:
    """A whole ``.parquet``, ``.jsonl`` or ``.csv`` file as a table; a clear error when it cannot be read.
    ``fs``: the fsspec filesystem ``path`` lies in (:mod:`cartography_core.storage`), None for a local file.
    ``id_type``: the type a CSV file's ``id`` column is read as (string ids such as "00255" stay strings)."""
    path = Path(path) if fs is None else path
    convert = pacsv.ConvertOptions(column_types={"id": id_type}) if id_type is not None else None
    readers = {
        ".parquet": pq.read_table,
        ".jsonl": pajson.read_json,
        ".csv": lambda src: pacsv.read_csv(src, convert_options=convert),
    }
    shown = shown or str(path)
    if path.suffix not in readers:
        raise LogError(f"{shown}: unknown file type {path.suffix!r}; use .parquet, .jsonl or .csv")
    if fs is None:
        check_regular_file(path, shown)
    else:
        check_file_kind(storage.kind(fs, path), shown)
    try:
        if fs is None:
            table = readers[path.suffix](path)
        else:
            with storage.open_binary(fs, path) as fh:
                table = readers[path.suffix](pa.BufferReader(fh.read()))
    except (pa.ArrowException, OSError) as exc:
        # pyarrow quotes the offending row whole: keep only its start
        what, _, row = str(exc).splitlines()[0].partition(" columns, got ")
        problem = f"{what} columns, got {short(row, 32)}" if row else short(what)
        raise LogError(f"{shown}: cannot read {path.suffix[1:]} file: {problem}") from None
    if path.suffix == ".csv":
        _check_csv_quotes(path if fs is None else storage.open_binary(fs, path), shown)
    return table


def row_place(path: Path, row: int, n_rows: int) -> str:
    """Where row ``row`` (0-based) of the ``n_rows``-row table :func:`read_table_file` read from the local file
    ``path`` is, as its user finds it: "line L" of a CSV (after its header) or JSONL file whose lines are its
    rows, else "record R" (1-based; a quoted text spans lines); "row R" (0-based) of a parquet file."""
    if path.suffix == ".parquet":
        return f"row {row}"
    header = path.suffix == ".csv"
    with open(path, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return f"line {row + 1 + header}" if lines == n_rows + header else f"record {row + 1}"


def _check_csv_quotes(src, shown: str) -> None:
    """A quoted CSV field that is never closed swallows every later row into one value, and pyarrow reads
    that without complaint: in a well-formed file the double quotes pair up (an escaped quote is ``""``), so
    an odd count is an error naming the line where the open field starts. ``src``: a local path, or a file
    opened for reading (closed here)."""
    with open(src, "rb") if isinstance(src, Path) else src as fh:
        count = sum(chunk.count(b'"') for chunk in iter(lambda: fh.read(1 << 24), b""))
        if count % 2 == 0:
            return
        fh.seek(0)
        open_at, inside = 0, False
        for lineno, line in enumerate(fh, 1):
            if line.count(b'"') % 2:
                inside = not inside
                open_at = lineno if inside else open_at
    raise LogError(f"{shown} line {open_at}: a quoted field is never closed (unbalanced double quote)")


def cache_dir() -> Path | None:
    """Where computed tables are kept between processes: ``$CARTOGRAPHY_CACHE``, else ``~/.cache/cartography``;
    ``CARTOGRAPHY_CACHE=off`` keeps nothing."""
    env = os.environ.get("CARTOGRAPHY_CACHE")
    if env == "off":
        return None
    return Path(env) if env else Path.home() / ".cache" / "cartography"
