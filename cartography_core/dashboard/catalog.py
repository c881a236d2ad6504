"""The runs under a root folder, addressed by relative ids, and everything a view loads for one of them.

Ids are ``/``-separated paths relative to the root (``rotten_tomatoes/seed-0``); ``<dataset>/*`` names the
mean over the runs of a folder that holds two or more (``reliability.pool_runs``). Only ids that
:func:`run_ids` lists are accepted, so an id can never reach a path outside the root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..errors import LogError, short
from ..examples import joined_examples
from ..ingest import Run, find_runs, open_run, read_examples, run_folder
from ..reliability import pool_runs
from ..stats import class_names, table_meta
from .cache import cached_stats
from .precomputed import is_dataset

POOLED = "*"


@dataclass(frozen=True)
class RunListing:
    """The runs under a root, listed once: the run folders and the ids a view may open."""

    root: Path
    runs: tuple[str, ...]  # find_runs' relative paths
    ids: tuple[str, ...]  # the runs, and ``<folder>/*`` after the last run of a folder holding two or more
    skipped: tuple[str, ...] = ()  # folders that could not be read, one sentence each (find_runs)
    datasets: tuple[str, ...] = ()  # statistics datasets (``stats --engine dask``), also in ``ids``

    def paths(self, run_id: str) -> list[Path]:
        """The run directories behind ``run_id`` (several for a pooled id); an id not listed is refused."""
        if run_id not in self.ids:
            raise LogError(f"no run {run_id!r} in the log folder")
        if run_id in self.datasets:
            return [self.root / run_id]
        if run_id.endswith("/" + POOLED):
            parent = run_folder(run_id)
            return [self.root / r for r in self.runs if run_folder(r) == parent]
        return [self.root / run_id]


def list_runs(root: str | Path, *, follow_links: bool = False) -> RunListing:
    """One walk of ``root`` (links to folders outside it skipped unless ``follow_links``) for runs, and one for
    statistics datasets."""
    skipped: list[str] = []
    runs = find_runs(root, follow_links=follow_links, skipped=skipped)
    datasets = find_datasets(root, follow_links=follow_links, skipped=skipped)
    parents = [run_folder(r) for r in runs]
    last = {p: i for i, p in enumerate(parents)}
    ids: list[str] = []
    for i, (rel, parent) in enumerate(zip(runs, parents)):
        ids.append(rel)
        if parent and last[parent] == i and parents.count(parent) >= 2:
            ids.append(f"{parent}/{POOLED}")
    ids += [d for d in datasets if d not in ids]
    return RunListing(Path(root), tuple(runs), tuple(ids), tuple(skipped), tuple(datasets))


def find_datasets(
    root: str | Path, *, max_depth: int = 4, follow_links: bool = False, skipped: list[str] | None = None
) -> list[str]:
    """Relative paths (sorted) of the statistics datasets of one run (``precomputed.is_dataset``) at or below
    ``root``; the walk does not enter hidden folders, runs' log folders or a dataset. A folder of statistics
    parts without ``cartography.json`` (a scoring that did not finish) is named in ``skipped``."""
    root = Path(root)
    real_root = root.resolve()
    found: list[str] = []

    def walk(d: Path, depth: int) -> None:
        if is_dataset(d):
            found.append(d.relative_to(root).as_posix() or ".")
            return
        if skipped is not None and any(d.glob("part-*.parquet")) and not (d / "cartography.json").exists():
            skipped.append(
                f"{d.relative_to(root).as_posix()}: statistics parts without cartography.json (a scoring that did "
                "not finish); skipped"
            )
        if depth >= max_depth:
            return
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return  # find_runs names unreadable folders
        for e in entries:
            if e.name.startswith(".") or e.name in ("dynamics", "training_dynamics"):
                continue
            try:
                sub = d / e.name
                if e.is_dir() and (follow_links or sub.resolve() == real_root or real_root in sub.resolve().parents):
                    walk(sub, depth + 1)
            except (OSError, RuntimeError):
                continue

    if root.is_dir():
        walk(root, 0)
    return found


def run_ids(root: str | Path, *, follow_links: bool = False) -> list[str]:
    """Every run id under ``root`` (:class:`RunListing`'s ``ids``)."""
    return list(list_runs(root, follow_links=follow_links).ids)


def run_paths(root: str | Path, run_id: str, *, follow_links: bool = False) -> list[Path]:
    """The run directories behind ``run_id`` (:meth:`RunListing.paths`)."""
    return list_runs(root, follow_links=follow_links).paths(run_id)


@dataclass(frozen=True)
class LoadedRun:
    """One run (or the mean of several): scores joined with the examples' columns, and what describes it."""

    run_id: str
    runs: list[Run]
    per_run: list[pa.Table]  # one statistics table per run (one entry for a single run)
    table: pa.Table  # statistics (pooled over runs when several) joined with the examples file
    has_examples: bool
    examples: pa.Table | None  # the examples file as read (every row, held-out ones too), or None
    text_column: str | None
    label_names: list[str]
    n_epochs: int
    label_notice: str = ""  # examples.joined_examples: ids whose examples label is not the logged one

    @property
    def n(self) -> int:
        return self.table.num_rows

    def texts(self) -> pa.ChunkedArray | None:
        return self.table[self.text_column] if self.text_column else None


def load_run(
    root: str | Path,
    run_id: str,
    *,
    cache: Path | None = None,
    follow_links: bool = False,
    paths: list[Path] | None = None,
) -> LoadedRun:
    """Open, score and join one run id (see the module docstring); ``cache``: see :func:`cached_stats`.
    A file that a link places outside ``root`` is refused unless ``follow_links``. ``paths``: the run
    folders when the caller has listed them already (:meth:`RunListing.paths`)."""
    confine = None if follow_links else root
    paths = paths if paths is not None else run_paths(root, run_id, follow_links=follow_links)
    runs = [open_run(p, confine_to=confine) for p in paths]
    per_run = [cached_stats(r, cache) for r in runs]
    stats = per_run[0] if len(per_run) == 1 else pool_runs(per_run, [r.path.name for r in runs])
    examples = read_examples(runs[0])
    table, label_notice = joined_examples(stats, examples)
    text_column = _text_column(examples)
    meta = table_meta(table)
    names = class_names(table)  # from the log, else from the examples file
    return LoadedRun(
        run_id=run_id,
        runs=runs,
        per_run=per_run,
        table=table,
        has_examples=examples is not None,
        examples=examples.replace_schema_metadata(None) if examples is not None else None,
        text_column=text_column,
        label_names=names,
        n_epochs=int(meta["n_epochs"]),
        label_notice=label_notice,
    )


def _text_column(examples: pa.Table | None) -> str | None:
    """``text`` if present, else the examples' first string column other than id and label names."""
    if examples is None:
        return None
    if "text" in examples.column_names:
        return "text"
    for name in examples.column_names:
        if name not in ("id", "label_name", "split") and pa.types.is_string(examples[name].type):
            return name
    return None


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[^\s:'\"(),]+")


def public_message(exc: BaseException, root: str | Path) -> str:
    """What a browser may be told of ``exc``: a :class:`LogError`'s sentence with paths relative to ``root``
    (any other absolute path replaced by ``<path>``), at most 300 characters; for any other exception only
    its kind, since its text may hold anything (the server logs the details)."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"cannot read {exc.filename} ({exc.strerror})."
    elif not isinstance(exc, LogError):
        return f"an unexpected error ({type(exc).__name__}) while reading it."
    else:
        text = str(exc)
    for prefix in {str(Path(root)), str(Path(root).resolve())}:
        text = text.replace(prefix.rstrip("/") + "/", "")
    text = short(_ABSOLUTE_PATH.sub("<path>", text), 300)
    return text if text.endswith((".", "?", "!")) else text + "."  # a sentence: the page goes on after it
