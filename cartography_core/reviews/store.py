"""Annotators' verdicts in a SQLite database: append-only, one row per verdict, safe under many writers.

Each verdict is a row of ``verdicts``: the dataset and example id it is about, the annotator, the verdict
(:data:`VERDICTS`), the new label for *wrong*, a comment, the time, and what the annotator saw (run, gold
and predicted label, confidence, variability, correctness). A changed verdict is a new row: history is
kept, and the latest row per (dataset, example, annotator) is the one that counts (:meth:`ReviewStore.latest`).

The database runs in WAL mode with a busy timeout and ``synchronous=FULL``, so many processes can write at
once and every verdict :meth:`ReviewStore.add` has returned from survives a crash of the writer. Each row
carries a unique ``uid``: adding the same verdict twice (a retry, a Label Studio file imported again) keeps
one row. The schema's version is SQLite's ``user_version``; :data:`MIGRATIONS` brings an older file up to
date and a newer one is refused.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import LogError, short, show_id
from ..ingest import EXAMPLES_NAMES, find_runs

VERDICTS = ("correct", "wrong", "ambiguous", "remove", "skip")
"""*label is correct*, *wrong label* (with the right class), *ambiguous* (could be either), *not a valid
example* (remove it), *skip* (kept in the history; not a vote)."""
COMMENT_MAX = 2_000  # characters
NAME_MAX = 64
_NAME = re.compile(r"^\w[\w .@'-]*$")  # letters and digits of any script, and . @ ' - _ and spaces inside

MIGRATIONS = (
    """
    CREATE TABLE verdicts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        uid TEXT NOT NULL UNIQUE,
        dataset TEXT NOT NULL,
        example_id ANY NOT NULL,
        annotator TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('correct', 'wrong', 'ambiguous', 'remove', 'skip')),
        new_label TEXT CHECK ((verdict = 'wrong') = (new_label IS NOT NULL)),
        comment TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT 'app',
        run TEXT NOT NULL DEFAULT '',
        gold TEXT NOT NULL DEFAULT '',
        predicted TEXT NOT NULL DEFAULT '',
        confidence REAL,
        variability REAL,
        correctness REAL
    ) STRICT;
    CREATE INDEX verdicts_latest ON verdicts (dataset, example_id, annotator, seq);
    """,
)
"""Schema version ``i + 1`` is ``MIGRATIONS[i]`` applied to version ``i``; append, never edit."""
COLUMNS = (
    "seq", "uid", "dataset", "example_id", "annotator", "verdict", "new_label", "comment", "created_at", "source",
    "run", "gold", "predicted", "confidence", "variability", "correctness",
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """One annotator's verdict on one example, and what the annotator saw when giving it."""

    dataset: str
    example_id: int | str
    annotator: str
    verdict: str
    new_label: str | None = None  # the right class's name, for "wrong"
    comment: str = ""
    source: str = "app"
    run: str = ""
    gold: str = ""
    predicted: str = ""
    confidence: float | None = None
    variability: float | None = None
    correctness: float | None = None
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: utc_time(datetime.now(UTC)))


def utc_time(when: datetime | str) -> str:
    """``when`` as UTC ISO 8601 with milliseconds (``2026-11-23T19:42:00.000+00:00``): one format, so that
    comparing the strings compares the times. A time without a zone is taken as UTC."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def check_name(name: str) -> str:
    """``name`` stripped, or a :class:`LogError` saying why it cannot name an annotator: 1 to NAME_MAX letters,
    digits, spaces and ``. @ ' - _`` (no markup: names are shown to other annotators)."""
    name = str(name).strip()
    if not name or len(name) > NAME_MAX or not _NAME.match(name):
        raise LogError(
            f"reviewer name {short(name, 40)!r}: use 1 to {NAME_MAX} letters, digits, spaces and . @ ' - _ "
            "(starting with a letter or digit)"
        )
    return name


def check_verdict(v: Verdict, ids: np.ndarray | pa.ChunkedArray | pa.Array, label_names: Sequence[str]) -> Verdict:
    """``v`` if it can be stored for a dataset whose examples are ``ids`` and classes ``label_names``, else a
    :class:`LogError` naming the example and what is wrong (nothing is written)."""
    check_name(v.annotator)
    where = f"verdict on example {show_id(v.example_id)} by {v.annotator!r}"
    if v.verdict not in VERDICTS:
        raise LogError(f"{where}: unknown verdict {short(v.verdict, 40)!r}; use one of {', '.join(VERDICTS)}")
    if not _contains(ids, v.example_id):
        raise LogError(f"{where}: no example with id {show_id(v.example_id)} in dataset {v.dataset!r}")
    if (v.verdict == "wrong") != (v.new_label is not None):
        raise LogError(f"{where}: a new label goes with the verdict 'wrong' and only with it")
    if v.new_label is not None and v.new_label not in label_names:
        raise LogError(
            f"{where}: new label {short(v.new_label, 40)!r} is not one of the {len(label_names)} classes "
            f"({', '.join(label_names[:10])}{', ...' if len(label_names) > 10 else ''})"
        )
    if len(v.comment) > COMMENT_MAX:
        raise LogError(f"{where}: the comment has {len(v.comment):,} characters; at most {COMMENT_MAX:,} are kept")
    return v


def _contains(ids, example_id) -> bool:
    arr = ids.to_numpy(zero_copy_only=False) if isinstance(ids, (pa.ChunkedArray, pa.Array)) else np.asarray(ids)
    if arr.dtype.kind in "iu":
        return isinstance(example_id, (int, np.integer)) and bool((arr == example_id).any())
    return isinstance(example_id, str) and bool((arr == example_id).any())


class ReviewStore:
    """The verdicts database at ``path`` (created with its folder if absent). Thread-safe: one connection
    behind a lock, shared by the dashboard's sessions; each process opens its own."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LogError(f"{self.path}: not a usable reviews database ({exc})") from exc
        if mode.lower() != "wal":
            raise LogError(f"{self.path}: cannot use write-ahead logging here (journal mode {mode})")
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise LogError(
                f"{self.path}: reviews database schema version {version} is newer than this program's "
                f"({len(MIGRATIONS)}); upgrade cartography_core"
            )
        for target in range(version + 1, len(MIGRATIONS) + 1):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute("PRAGMA user_version").fetchone()[0] < target:  # another process won
                    for statement in MIGRATIONS[target - 1].split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {target}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def add(self, verdicts: Verdict | Iterable[Verdict]) -> int:
        """Append ``verdicts`` in one transaction; returns how many rows were new (a ``uid`` already stored is
        kept once). Returns only once the rows are on disk."""
        rows = [verdicts] if isinstance(verdicts, Verdict) else list(verdicts)
        values = [tuple(_sql_value(asdict(v)[c]) for c in COLUMNS[1:]) for v in rows]
        sql = f"INSERT OR IGNORE INTO verdicts ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * len(COLUMNS[1:]))})"
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                self._conn.executemany(sql, values)
                added = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return added

    def history(self, dataset: str | None = None) -> pa.Table:
        """Every row (of ``dataset``, or all), oldest first."""
        where, args = ("WHERE dataset = ?", (dataset,)) if dataset is not None else ("", ())
        return self._query(f"SELECT {', '.join(COLUMNS)} FROM verdicts {where} ORDER BY seq", args)

    def latest(self, dataset: str, annotator: str | None = None) -> pa.Table:
        """The row that counts per (example, annotator) of ``dataset``: the one given last (``created_at``,
        then ``seq``), so a verdict imported later but given earlier (an old Label Studio export) does not
        replace a newer one. Oldest first."""
        extra, args = ("AND annotator = ?", (dataset, annotator)) if annotator else ("", (dataset,))
        return self._query(
            f"SELECT {', '.join(COLUMNS)} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY example_id, annotator "
            f"ORDER BY created_at DESC, seq DESC) AS rank FROM verdicts WHERE dataset = ? {extra}) "
            "WHERE rank = 1 ORDER BY created_at, seq",
            args,
        )

    def datasets(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT dataset FROM verdicts ORDER BY dataset")]

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def _query(self, sql: str, args: tuple) -> pa.Table:
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        cols = list(zip(*rows)) if rows else [()] * len(COLUMNS)
        arrays = {}
        for name, values in zip(COLUMNS, cols):
            if name == "example_id":
                kinds = {type(x) for x in values}
                arrays[name] = pa.array(values, type=pa.int64() if kinds <= {int} and values else pa.string())
                if kinds - {int, str}:
                    raise LogError(f"{self.path}: example ids of unexpected types {sorted(k.__name__ for k in kinds)}")
                if len(kinds) > 1:
                    raise LogError(f"{self.path}: example ids mix numbers and text in one dataset")
            else:
                arrays[name] = pa.array(values, type=_TYPES.get(name, pa.string()))
        return pa.table(arrays)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def empty_verdicts() -> pa.Table:
    """A verdicts table with no rows (:data:`COLUMNS`), for a view without a database."""
    return pa.table({c: pa.array([], type=_TYPES.get(c, pa.string())) for c in COLUMNS})


_TYPES = {"seq": pa.int64(), "confidence": pa.float64(), "variability": pa.float64(), "correctness": pa.float64()}


def _sql_value(x):
    """numpy scalars as the Python values sqlite3 binds (an id stays an INTEGER or TEXT)."""
    return x.item() if isinstance(x, np.generic) else x


def default_db_path() -> Path:
    """``CARTOGRAPHY_REVIEWS_DB``, else ``reviews.sqlite3`` in the user's data folder (``$XDG_DATA_HOME``
    or ``~/.local/share``, then ``cartography/``)."""
    if os.environ.get("CARTOGRAPHY_REVIEWS_DB"):
        return Path(os.environ["CARTOGRAPHY_REVIEWS_DB"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "cartography" / "reviews.sqlite3"


def dataset_name(run_dir: str | Path) -> str:
    """The dataset a run's verdicts belong to, so that every run of a dataset, and their pooled view, share one
    set of verdicts: the name of the folder that holds the run (``trec`` for ``logs/trec/seed-0``) when that
    folder holds one dataset's runs, that is when it holds their shared examples file, or when all its runs
    name the same classes and hold examples files of the same size (or none), as seeds of one dataset do.
    A run in a folder of runs of several datasets (``runs/`` beside ``runs/tickets`` and ``runs/sentiment``)
    is a dataset of its own, ``runs/tickets``: verdicts never pass from one dataset to another. Only
    ``run.json`` files are read, and file sizes."""
    run = Path(run_dir).resolve()
    folder = run.parent
    if any((folder / name).is_file() for name in EXAMPLES_NAMES):
        return folder.name
    runs = [folder / r for r in find_runs(folder, max_depth=1)]  # the runs beside it (unreadable ones skipped)
    if len({_dataset_identity(d) for d in runs}) <= 1:
        return folder.name
    return f"{folder.name}/{run.name}"


def _dataset_identity(run: Path) -> tuple:
    """(class names from ``run.json``, the size of the run's own examples file): equal for seeds of one dataset."""
    try:
        names = json.loads((run / "run.json").read_text()).get("label_names")
    except (OSError, ValueError, AttributeError):  # absent, unreadable or malformed: the readers report it
        names = None
    try:
        size = next((f.stat().st_size for f in map(run.joinpath, EXAMPLES_NAMES) if f.is_file()), None)
    except OSError:
        size = None
    return (tuple(map(str, names)) if isinstance(names, list) else None, size)


def check_db_location(db: Path, log_folders: Iterable[Path]) -> Path:
    """``db`` unless it lies inside one of ``log_folders`` (a log folder holds only what the recorder
    wrote: nothing else may be added to it)."""
    real = Path(db).expanduser().resolve()
    for folder in log_folders:
        f = Path(folder).resolve()
        if real == f or f in real.parents:
            raise LogError(
                f"{db}: a reviews database may not live inside a log folder ({folder}); choose a path outside it "
                "(--reviews-db or CARTOGRAPHY_REVIEWS_DB)"
            )
    return Path(db).expanduser()
