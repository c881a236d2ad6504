"""What reviews produce: the corrected dataset, and a round trip through Label Studio.

The corrected dataset is the examples file (or, without one, the logged ids and labels) with the columns of
:func:`consensus.resolve` joined on the id: ``label_reviewed``, ``verdict``, ``n_votes``, ``agreement``,
``unresolved``; examples nobody voted on keep their label (``verdict`` = ``unreviewed``). When the file's
``label`` holds class indices, ``label_reviewed_index`` gives the decided label as an index too (``label_reviewed``
is always a name). Removed examples are flagged (``removed`` = true) or dropped.

Label Studio (checked against ``label_studio_sdk``'s ``LabelInterface`` in the tests): :func:`ls_config` is
the labeling interface (a ``Text`` object ``text``, single-choice ``label`` over the classes, a ``flag``
choice for *ambiguous* / *not a valid example*, a ``comment`` text area); :func:`ls_tasks` gives one task per
example (``data``: text, example id, dataset, gold label, scores, region; ``predictions``: the model's label
with its probability); :func:`ls_import` reads Label Studio's JSON export back as verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import LogError, short, show_id
from ..ingest import Run, read_epoch
from ..stats import epoch_quantities
from .store import Verdict, check_verdict, utc_time

FLAG_AMBIGUOUS, FLAG_REMOVE = "ambiguous", "not a valid example"
REMOVED = ("flag", "drop")


def label_names_of(table: pa.Table, label_names: Sequence[str]) -> np.ndarray:
    """(N,) object: each row's gold label name, from ``label_name``, a string ``label``, or class indices."""
    if "label_name" in table.column_names:
        return table["label_name"].to_numpy(zero_copy_only=False).astype(object)
    column = table["label"]
    if pa.types.is_integer(column.type):
        names = np.asarray(label_names, dtype=object)
        out = np.full(len(column), None, dtype=object)
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        out[valid] = names[column.drop_null().to_numpy()]
        return out
    return column.to_numpy(zero_copy_only=False).astype(object)


def corrected_dataset(
    base: pa.Table,
    resolved: pd.DataFrame,
    label_names: Sequence[str],
    *,
    removed: str = "flag",
    logged: pa.Table | None = None,
) -> pa.Table:
    """``base`` (the examples file, or ``id`` and ``label`` of the log) with the reviews' columns (module
    docstring); ``removed``: ``"flag"`` adds a ``removed`` column, ``"drop"`` leaves those rows out. When
    ``base`` has no labels, ``logged`` (the log's ``id`` and ``label``) gives them (null for rows not logged)."""
    if removed not in REMOVED:
        raise LogError(f"removed={removed!r}: use one of {', '.join(REMOVED)}")
    if "label" not in base.column_names and "label_name" not in base.column_names:
        if logged is None:
            raise LogError("the examples have no label column; give the log's labels")
        at = pd.Index(logged["id"].to_pandas()).get_indexer(base["id"].to_pandas())
        labels = logged["label"].to_numpy()[np.maximum(at, 0)]
        base = base.append_column("label", pa.array(labels, mask=at < 0))
    ids = base["id"].to_pandas()
    at = pd.Index(resolved["example_id"]).get_indexer(ids) if len(resolved) else np.full(len(ids), -1)
    hit = at >= 0
    gold = label_names_of(base, label_names)

    def pick(col: str, fill) -> np.ndarray:
        values = resolved[col].to_numpy(dtype=object) if len(resolved) else np.empty(0, dtype=object)
        out = np.full(len(ids), fill, dtype=object)
        out[hit] = values[at[hit]]
        return out

    label_reviewed = np.where(hit, pick("label_reviewed", None), gold)
    verdict = pick("verdict", "unreviewed")
    out = base
    for name, values, type_ in (
        ("label_reviewed", label_reviewed, pa.string()),
        ("verdict", verdict, pa.string()),
        ("n_votes", pick("n_votes", 0), pa.int64()),
        ("agreement", pick("agreement", np.nan), pa.float64()),
        ("unresolved", pick("unresolved", False), pa.bool_()),
    ):
        if name in out.column_names:
            out = out.drop_columns([name])
        out = out.append_column(name, pa.array(list(values), type=type_, from_pandas=True))
    if pa.types.is_integer(out["label"].type):  # indices in the file: the decided label as an index too
        index = pd.Index(list(label_names)).get_indexer(pd.Series(label_reviewed, dtype=object))
        at_label = out.column_names.index("label_reviewed") + 1
        if "label_reviewed_index" in out.column_names:
            out = out.drop_columns(["label_reviewed_index"])
        out = out.add_column(at_label, "label_reviewed_index", pa.array(index, mask=index < 0, type=pa.int64()))
    is_removed = verdict == "removed"
    if removed == "drop":
        return out.filter(pa.array(~is_removed))
    return out.append_column("removed", pa.array(is_removed))


def predicted_probability(runs: Sequence[Run], stats: pa.Table) -> np.ndarray:
    """(N,) the probability of each row's ``pred_label`` at the last epoch of each run, averaged over
    ``runs`` (NaN where no run logged the example in its last epoch): the score of the model's label that
    :func:`ls_tasks` exports. Reads one epoch per run."""
    index = pd.Index(stats["id"].to_pandas())
    pred = stats["pred_label"].to_numpy()
    total, count = np.zeros(len(index)), np.zeros(len(index))
    for run in runs:
        for b in read_epoch(run, run.epochs[-1]):
            rows = index.get_indexer(b.ids)
            keep = rows >= 0
            p = epoch_quantities(b.values[keep], pred[rows[keep]], b.kind).p_gold  # p of the given class
            np.add.at(total, rows[keep], p)
            np.add.at(count, rows[keep], 1)
    with np.errstate(invalid="ignore"):
        return total / count


def ls_config(label_names: Sequence[str]) -> str:
    """Label Studio's labeling interface for reviewing ``label_names`` (module docstring)."""
    choices = "\n".join(f"    <Choice value={quoteattr(str(n))}/>" for n in label_names)
    return (
        "<View>\n"
        '  <Text name="text" value="$text"/>\n'
        '  <Header value="Gold label: $gold (model: confidence $confidence, variability $variability)"/>\n'
        '  <Choices name="label" toName="text" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        '  <Choices name="flag" toName="text" choice="single">\n'
        f'    <Choice value="{FLAG_AMBIGUOUS}"/>\n'
        f'    <Choice value="{FLAG_REMOVE}"/>\n'
        "  </Choices>\n"
        '  <TextArea name="comment" toName="text" rows="2"/>\n'
        "</View>\n"
    )


def ls_tasks(
    table: pa.Table,
    *,
    dataset: str,
    run: str,
    label_names: Sequence[str],
    text_column: str | None,
    pred_score: np.ndarray,
    regions: Sequence[str] | None = None,
) -> list[dict]:
    """One Label Studio task per row of ``table`` (statistics joined with the examples): ``pred_score`` is
    the probability of the predicted class (``pred_label``) for each row."""
    names = np.asarray(label_names, dtype=object)
    gold = names[table["label"].to_numpy()]
    pred = names[table["pred_label"].to_numpy()]
    cols = {c: table[c].to_pylist() for c in ("id", "confidence", "variability", "correctness")}
    texts = table[text_column].to_pylist() if text_column else [str(i) for i in cols["id"]]
    tasks = []
    for i in range(table.num_rows):  # building JSON objects, one per exported task: not a scoring path
        data = {
            "text": texts[i],
            "example_id": cols["id"][i],
            "dataset": dataset,
            "gold": gold[i],
            "confidence": round(cols["confidence"][i], 4),
            "variability": round(cols["variability"][i], 4),
            "correctness": round(cols["correctness"][i], 4),
        }
        if regions is not None:
            data["region"] = regions[i]
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [pred[i]]}}]
        tasks.append(
            {"data": data, "predictions": [{"model_version": run, "score": _score(pred_score[i]), "result": result}]}
        )
    return tasks


def _score(p: float) -> float | None:
    return None if np.isnan(p) else round(float(p), 4)


def ls_import(
    path: str | Path, *, dataset: str, ids, label_names: Sequence[str], gold_of: dict | None = None
) -> list[Verdict]:
    """Verdicts from a Label Studio JSON export of tasks made by :func:`ls_tasks`: per annotation, the
    ``label`` choice (equal to gold: *correct*, else *wrong*), or the ``flag`` choice (*ambiguous*,
    *remove*), and the comment; a cancelled annotation is a *skip*. The annotator is the annotation's
    ``completed_by`` (its email when exported as an object, else ``label-studio-user-<id>``). Each verdict's
    uid is built from the task and annotation ids, so importing the same file twice adds nothing.
    ``gold_of`` maps example ids to gold label names when the tasks do not carry them. Every verdict is
    checked (:func:`store.check_verdict`) before any is returned."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = (
            exc.strerror
            if isinstance(exc, OSError) and exc.strerror
            else f"not a Label Studio JSON export ({short(exc, 120)})"
        )
        raise LogError(f"{path}: {what}") from exc
    if not isinstance(tasks, list):
        raise LogError(f"{path}: a Label Studio JSON export is a list of tasks, found {type(tasks).__name__}")
    out = []
    if tasks and not any(isinstance(t, dict) and t.get("annotations") for t in tasks):
        raise LogError(
            f"{path}: no task has annotations: this looks like the tasks file, not Label Studio's export of "
            "the annotated project (Export > JSON)"
        )
    for t, task in enumerate(tasks):
        where = f"{path} task {t}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "example_id" not in data:
            raise LogError(f"{where}: no data.example_id (export tasks made by 'reviews export --format label-studio')")
        example_id = data["example_id"]
        if data.get("dataset") not in (None, dataset):
            raise LogError(
                f"{where}: made for dataset {short(data['dataset'], 60)!r}, not {dataset!r}; import it into one of "
                f"that dataset's runs (or pass --dataset {short(data['dataset'], 60)} to file it there)"
            )
        gold = data.get("gold") if gold_of is None else gold_of.get(example_id)
        if gold is None and gold_of is not None:
            raise LogError(f"{where}: no example with id {show_id(example_id)} in dataset {dataset!r}")
        if gold is None:
            raise LogError(f"{where}: no gold label for example {show_id(example_id)}")
        for a, ann in enumerate(task.get("annotations") or []):
            uid = f"label-studio:{task.get('id', t)}:{ann.get('id', a)}"
            v = _verdict(
                ann, where=f"{where} annotation {a}", uid=uid, dataset=dataset, example_id=example_id, gold=gold
            )
            out.append(check_verdict(v, ids, label_names))
    return out


def _verdict(ann: dict, *, where: str, uid: str, dataset: str, example_id, gold: str) -> Verdict:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or f"label-studio-user-{who.get('id')}"
    elif who is not None:
        who = f"label-studio-user-{who}"
    if not who:
        raise LogError(f"{where}: no completed_by")
    picked = {"label": None, "flag": None, "comment": ""}
    for r in ann.get("result") or []:
        value, name = r.get("value") or {}, r.get("from_name")
        if name in ("label", "flag") and value.get("choices"):
            picked[name] = value["choices"][0]
        elif name == "comment" and value.get("text"):
            picked["comment"] = "\n".join(value["text"])
    common = {"dataset": dataset, "example_id": example_id, "annotator": str(who), "gold": gold}
    common |= {"comment": picked["comment"], "source": "label-studio", "uid": uid}
    when = ann.get("updated_at") or ann.get("created_at")
    if when:  # the time the annotator gave it, not the time of the import
        try:
            common["created_at"] = utc_time(str(when))
        except ValueError as exc:
            raise LogError(f"{where}: created_at {short(when, 40)!r} is not an ISO 8601 time") from exc
    if ann.get("was_cancelled"):
        return Verdict(verdict="skip", **common)
    if picked["flag"] == FLAG_REMOVE:
        return Verdict(verdict="remove", **common)
    if picked["flag"] == FLAG_AMBIGUOUS:
        return Verdict(verdict="ambiguous", **common)
    if picked["flag"] is not None:
        raise LogError(f"{where}: unknown flag {short(picked['flag'], 40)!r}")
    if picked["label"] is None:
        raise LogError(f"{where}: neither a label nor a flag was chosen")
    if picked["label"] == gold:
        return Verdict(verdict="correct", **common)
    return Verdict(verdict="wrong", new_label=picked["label"], **common)
