"""Each kind of bad input gives a LogError whose message names the file, the line or id, and the problem."""

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartography_core import LogError, compute_stats
from tests.logs import write_log

A = {"id": 1, "label": 0, "logits": [2.0, 0.0]}
B = {"id": 2, "label": 1, "logits": [0.0, 1.0]}


def jsonl(tmp, *epochs, layout="jsonl"):
    return write_log(tmp, [list(e) for e in epochs], layout)


def raw(tmp, name, text):
    d = tmp / "dynamics"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return tmp


def parquet(tmp, name, table):
    d = tmp / "dynamics"
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, d / name)
    return tmp


def logits_table(values, ids=(1, 2), labels=(0, 1)):
    return pa.table({"id": list(ids), "label": list(labels), "logits": pa.array(values, pa.list_(pa.float32()))})


def line(obj):
    return json.dumps(obj) + "\n"


def two_runs(tmp):
    jsonl(tmp / "seed-0", [A, B])
    jsonl(tmp / "seed-1", [A, B])
    return tmp


def truncated_parquet(tmp):
    p = parquet(tmp, "epoch_0.parquet", logits_table([[1.0, 0.0], [0.0, 1.0]]))
    f = p / "dynamics" / "epoch_0.parquet"
    f.write_bytes(f.read_bytes()[:-20])
    return p


CASES = {
    "missing directory": (lambda t: t / "nope", "nope: no such directory"),
    "no epoch files": (lambda t: raw(t, "notes.txt", "hi"), "dynamics: no epoch files"),
    "gap in epochs": (
        lambda t: (jsonl(t, [A, B], [A, B], [A, B]), (t / "dynamics" / "epoch_1.jsonl").unlink(), t)[-1],
        "epoch numbering has a gap: epochs 1 are missing (found 0, 2; epochs are numbered from 0)",
    ),
    "epoch twice": (
        lambda t: (jsonl(t, [A, B]), raw(t, "epoch_000.jsonl", line(A)))[-1],
        "epoch 0 is given twice (epoch_0.jsonl and dynamics/epoch_000.jsonl)",
    ),
    "duplicate id": (lambda t: jsonl(t, [A, B, A]), "epoch_0.jsonl line 3: id 1 appears 2 times in epoch 0 (first at"),
    "duplicate id across parts": (
        lambda t: jsonl(t, [A, B, A, dict(B, id=3)], layout="parts"),
        "part-1.parquet row 0: id 1 appears again in epoch 0",
    ),
    "gold label changes": (
        lambda t: jsonl(t, [A, B], [A, dict(B, label=0)]),
        "epoch_1.jsonl line 2: gold label of id 2 is 0 in epoch 1 but 1 in an earlier epoch",
    ),
    "nan logits": (
        lambda t: parquet(t, "epoch_0.parquet", logits_table([[1.0, 0.0], [np.nan, 1.0]])),
        "epoch_0.parquet row 1: logits contains NaN or infinity",
    ),
    "infinite logits": (
        lambda t: parquet(t, "epoch_0.parquet", logits_table([[np.inf, 0.0], [0.0, 1.0]])),
        "epoch_0.parquet row 0: logits contains NaN or infinity",
    ),
    "ragged logits": (
        lambda t: jsonl(t, [A, dict(B, logits=[0.0, 1.0, 2.0])]),
        "epoch_0.jsonl line 2: logits has 3 values, expected 2",
    ),
    "K changes between epochs": (
        lambda t: jsonl(t, [A, B], [dict(A, logits=[1.0, 2.0, 3.0]), dict(B, logits=[1.0, 2.0, 3.0])]),
        "epoch_1.jsonl line 1: logits has 3 values, expected 2 (K from the first row of epoch 0)",
    ),
    "label too large": (lambda t: jsonl(t, [A, dict(B, label=2)]), "line 2: label 2 is outside [0, 2) for 2 classes"),
    "negative label": (lambda t: jsonl(t, [dict(A, label=-1), B]), "line 1: label -1 is outside [0, 2)"),
    "non-integer label": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + line(dict(B, label="pos"))),
        "line 2: label must be a whole class index, found 'pos'",
    ),
    "malformed json": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + '{"id": 2, "label": 1,\n'),
        "epoch_0.jsonl line 2: malformed JSON",
    ),
    "truncated jsonl": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + line(B)[:15]),
        "epoch_0.jsonl line 2: malformed JSON",
    ),
    "ids of mixed type": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + line(dict(B, id="b"))),
        "line 2: id 'b' is a str, earlier ids are int",
    ),
    "ids change type between epochs": (
        lambda t: jsonl(t, [A, B], [dict(A, id="1"), dict(B, id="2")]),
        "ids are strings but earlier ids are integers",
    ),
    "missing key": (
        lambda t: raw(t, "epoch_0.jsonl", line({"id": 1, "logits": [1.0, 0.0]})),
        "epoch_0.jsonl: missing key label",
    ),
    "missing column": (
        lambda t: parquet(t, "epoch_0.parquet", logits_table([[1.0, 0.0], [0.0, 1.0]]).drop_columns(["label"])),
        "epoch_0.parquet: missing column label; found columns ['id', 'logits']",
    ),
    "null logits": (
        lambda t: parquet(t, "epoch_0.parquet", logits_table([[1.0, 0.0], None])),
        "epoch_0.parquet row 1: logits is missing (null)",
    ),
    "empty jsonl": (lambda t: raw(t, "epoch_0.jsonl", ""), "epoch_0.jsonl: file is empty"),
    "parquet without rows": (
        lambda t: parquet(
            t,
            "epoch_0.parquet",
            logits_table([], ids=[], labels=[]).cast(
                pa.schema([("id", pa.int64()), ("label", pa.int64()), ("logits", pa.list_(pa.float32()))])
            ),
        ),
        "epoch_0.parquet: file holds no rows",
    ),
    "zero-byte parquet": (lambda t: raw(t, "epoch_0.parquet", ""), "epoch_0.parquet: not a readable parquet file"),
    "truncated parquet": (truncated_parquet, "epoch_0.parquet: not a readable parquet file"),
    "probabilities off": (
        lambda t: raw(t, "epoch_0.jsonl", line({"id": 1, "label": 0, "probs": [0.5, 0.6]})),
        "epoch_0.jsonl line 1: probs [0.5, 0.6] sum to 1.1; probabilities must be >= 0 and sum to 1",
    ),
    "allenai wrong logits key": (
        lambda t: (
            write_log(t, [[A, B], [A, B]], "allenai"),
            (t / "training_dynamics" / "dynamics_epoch_1.jsonl").write_text(
                line({"guid": 1, "logits_epoch_0": [1.0, 0.0], "gold": 0})
            ),
            t,
        )[-1],
        "dynamics_epoch_1.jsonl: missing key logits_epoch_1 (or probs)",
    ),
    "several runs": (two_runs, "holds 2 runs (seed-0, seed-1); give one run directory"),
    "bad run.json": (
        lambda t: (jsonl(t, [A, B]), (t / "run.json").write_text("{oops"), t)[-1],
        "run.json: not valid JSON",
    ),
    "label_names of wrong length": (
        lambda t: (jsonl(t, [A, B]), (t / "run.json").write_text('{"label_names": ["a", "b", "c"]}'), t)[-1],
        "run.json: label_names has 3 names but the logs have 2 classes",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_named(tmp_path, name):
    build, message = CASES[name]
    path = build(tmp_path / "run")
    with pytest.raises(LogError, match=re.escape(message)):
        compute_stats(path)


def test_missing_id_is_counted_by_default_and_an_error_with_strict(tmp_path):
    run = jsonl(tmp_path, [A, B], [A])
    assert compute_stats(run)["n_epochs"].to_pylist() == [2, 1]
    with pytest.raises(LogError, match=re.escape("epoch_1.jsonl: id 2 is missing from epoch 1 (1 ids missing)")):
        compute_stats(run, strict=True)


def test_id_first_seen_late_is_an_error_with_strict(tmp_path):
    run = jsonl(tmp_path, [A], [A, B])
    with pytest.raises(LogError, match=re.escape("id 2 is logged in 1 of 2 epochs")):
        compute_stats(run, strict=True)


def test_stray_files_are_ignored(tmp_path):
    run = jsonl(tmp_path, [A, B])
    for name in ("README.md", "epoch_0.parquet.tmp", ".epoch_1.jsonl.partial", "checkpoint.pt"):
        (run / "dynamics" / name).write_text("not a log")
    assert compute_stats(run).num_rows == 2
