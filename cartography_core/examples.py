"""Join a statistics table with the examples file (text, labels, any columns), checking that its rows are the
rows that were logged, and naming the classes from it when the log has no names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import LogError, show_id
from .ingest import one_array
from .stats import name_classes, table_meta

LABEL_DISAGREEMENTS_ALLOWED = 5  # a few ids whose label was corrected in the examples file after training


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
    return joined_examples(stats, examples)[0]


def joined_examples(stats: pa.Table, examples: pa.Table | None) -> tuple[pa.Table, str]:
    """(:func:`with_examples`, :func:`checked_examples`' notice) from one alignment of the two tables."""
    if examples is None:
        return stats, ""
    stats, taken, differ, missing = _aligned(stats, examples)
    out = stats.select(["id"])
    for name in taken.column_names:
        col = taken[name]
        if name in stats.column_names:
            if same_values(col, stats[name]):
                continue
            name = f"{name}_examples"
        out = out.append_column(name, col)
    for name in stats.column_names[1:]:
        out = out.append_column(name, stats[name])
    return out.replace_schema_metadata(stats.schema.metadata), _notice(stats, differ, missing)


def checked_examples(stats: pa.Table, examples: pa.Table | None) -> tuple[pa.Table, str]:
    """(``stats`` with class names from ``examples`` when it has none, sentences naming the ids whose examples
    label differs from the logged one and the logged ids the file lacks, or ""), after checking that ``examples``
    describes the logged rows (the check :func:`with_examples` makes), from one alignment. Call it on the whole
    statistics table before selecting: a subset may hold too few disagreeing rows to show a mismatched file."""
    if examples is None:
        return stats, ""
    stats, _, differ, missing = _aligned(stats, examples)
    return stats, _notice(stats, differ, missing)


def never_logged(stats: pa.Table, examples: pa.Table) -> pa.ChunkedArray:
    """The ids of ``examples`` rows that no epoch logged: rows the data map cannot show (a sampler that drops
    the last batch, a filter before training, ...)."""
    ex_ids = examples["id"].cast(stats["id"].type)  # a mismatch is refused first by checked_examples
    return ex_ids.filter(pc.invert(pc.is_in(ex_ids, value_set=one_array(stats["id"]))))


def different_examples_notice(before: pa.Table, after: pa.Table) -> str:
    """A sentence when two runs' statistics tables logged different examples (their held-out accuracies are
    then measured on different rows), else ""."""
    a, b = one_array(before["id"]), one_array(after["id"])
    if a.type != b.type:  # integer ids against strings: no example in common
        only = [len(a), len(b)]
    else:
        only = [int(pc.sum(pc.invert(pc.is_in(x, value_set=y))).as_py() or 0) for x, y in ((a, b), (b, a))]
    if not any(only):
        return ""
    return (
        f"the runs logged different examples ({only[0]} only before, {only[1]} only after), so their held-out sets "
        "differ too: the accuracies are measured on different examples (train --split-col split keeps a run's "
        "held-out rows)"
    )


def _aligned(stats: pa.Table, examples: pa.Table) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray]:
    """(``stats`` checked and named, the examples' other columns with one row per ``stats`` row, (N,) bool:
    rows whose examples label differs from the logged one, (N,) bool: rows whose id the examples lack)."""
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
    stats, differ = _reconcile_labels(stats, taken, source)
    return stats, taken, differ, pos < 0


MISSING_IDS_SHOWN = 5


def _notice(stats: pa.Table, differ: np.ndarray, missing: np.ndarray) -> str:
    """Sentences naming the ids whose examples label differs from the logged one (all of them: at most
    ``LABEL_DISAGREEMENTS_ALLOWED``) and the logged ids the examples file lacks (the first few), or ""."""
    out = []
    if (rows := np.flatnonzero(differ)).size:
        ids = ", ".join(show_id(stats["id"][int(i)].as_py()) for i in rows)
        out.append(
            f"{rows.size} id{'s' * (rows.size > 1)} ({ids}) {'have' if rows.size > 1 else 'has'} another label in "
            "the examples file than in the log; the scores rate the logged label (downloads also carry the file's, "
            "as label_examples)"
        )
    if (rows := np.flatnonzero(missing)).size:
        ids = ", ".join(show_id(stats["id"][int(i)].as_py()) for i in rows[:MISSING_IDS_SHOWN])
        more = ", ..." if rows.size > MISSING_IDS_SHOWN else ""
        if rows.size == stats.num_rows:
            out.append(
                f"none of the {rows.size} logged ids is in the examples file ({ids}{more}): log the dataset's own ids, "
                "or give the file of the rows that were logged; the scores are shown without text"
            )
        else:
            out.append(
                f"{rows.size} logged id{'s are' if rows.size > 1 else ' is'} not in the examples file ({ids}{more}); "
                f"{'they have' if rows.size > 1 else 'it has'} scores but no text or other columns"
            )
    return ". ".join(out)


def _differ(
    stats: pa.Table, logged: np.ndarray, ex: np.ndarray, present: np.ndarray, by_name: bool
) -> tuple[np.ndarray, list[str] | None]:
    """((N,) bool: rows whose examples label ``ex`` (one per stats row, ``present`` where not null; class names
    when ``by_name``) differs from the ``logged`` one, the class names known from the log or the examples)."""
    names = table_meta(stats).get("label_names")
    if not by_name:
        return present & (ex.astype(np.float64) != logged), names
    names = names or _names_from(logged[present], ex[present])
    if names is None:  # a logged class carries several names: rows off their class's usual name differ
        return present & _inconsistent(logged, ex, present), None
    return present & (np.asarray(_complete(names, stats), dtype=object)[logged] != ex), names


def _reconcile_labels(stats: pa.Table, taken: pa.Table, source: str) -> tuple[pa.Table, np.ndarray]:
    """Check the examples' labels (``taken``: one row per stats row, null where absent) against the log's, and
    name the classes from them when the log has no names; returns (stats, (N,) bool rows whose label differs)."""
    if "label" not in taken.column_names:
        return stats, np.zeros(stats.num_rows, dtype=bool)
    logged = stats["label"].to_numpy()
    ex = taken["label"].to_numpy(zero_copy_only=False)
    present = ~pd.isna(ex)
    by_name = pa.types.is_string(taken["label"].type) or pa.types.is_large_string(taken["label"].type)
    differ, names = _differ(stats, logged, ex, present, by_name)
    n_bad = int(differ.sum())
    if n_bad > LABEL_DISAGREEMENTS_ALLOWED:
        rows = np.flatnonzero(differ)[:3]
        first = ", ".join(
            f"id {stats['id'][int(i)].as_py()!r} is {show_id(ex[i])} there but {logged[i]} in the log" for i in rows
        )
        raise LogError(
            f"{source}: the gold label of {n_bad} of {int(present.sum())} logged ids differs from the log's "
            f"({first}, ...): its rows are not the rows that were logged (ids that are positions in a split?), or "
            f"more than {LABEL_DISAGREEMENTS_ALLOWED} labels were corrected after training. Log the dataset's own "
            "ids, or let the recorder write the examples (examples=); for corrected labels, train again on them"
        )
    if "label_name" not in stats.column_names:
        if not by_name and "label_name" in taken.column_names:
            names = _names_from(logged[present], taken["label_name"].to_numpy(zero_copy_only=False)[present])
        if names:
            stats = name_classes(stats, _complete(names, stats))
    return stats, differ


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


def same_values(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Whether column ``a``, cast to ``b``'s type, equals ``b`` on every row (False when it cannot be cast)."""
    try:
        return a.cast(b.type).equals(b)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
