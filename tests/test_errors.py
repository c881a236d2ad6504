"""Each kind of bad input gives a LogError whose message names the file, the line or id, and the problem."""

import json
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartography_core import LogError, compute_stats, find_runs, open_run, read_examples
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


def one_run_below(tmp):
    jsonl(tmp / "seed-0", [A, B])
    return tmp


def truncated_parquet(tmp):
    p = parquet(tmp, "epoch_0.parquet", logits_table([[1.0, 0.0], [0.0, 1.0]]))
    f = p / "dynamics" / "epoch_0.parquet"
    f.write_bytes(f.read_bytes()[:-20])
    return p


def fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def with_extra(build, extra):
    """A good log built by ``build``, then ``extra(run)`` adds the bad entry; returns the run."""

    def make(t):
        build(t)
        extra(t)
        return t

    return make


def one_epoch(t):
    return jsonl(t, [A, B])


def u64_table(ids, labels):
    return pa.table(
        {
            "id": pa.array(ids, pa.uint64()),
            "label": pa.array(labels, pa.uint64()),
            "logits": pa.array([[1.0, 0.0], [0.0, 1.0]], pa.list_(pa.float32())),
        }
    )


CASES = {
    "missing directory": (lambda t: t / "nope", "nope: no such directory"),
    "no epoch files": (lambda t: raw(t, "notes.txt", "hi"), "dynamics: no epoch files"),
    "gap in epochs": (
        lambda t: (jsonl(t, [A, B], [A, B], [A, B]), (t / "dynamics" / "epoch_1.jsonl").unlink(), t)[-1],
        "epoch numbering has a gap: epoch 1 is missing (found 0, 2; epochs are numbered from 0)",
    ),
    "gap of two epochs": (
        lambda t: (
            jsonl(t, [A, B], [A, B], [A, B], [A, B]),
            *((t / "dynamics" / f"epoch_{e}.jsonl").unlink() for e in (1, 2)),
            t,
        )[-1],
        "epoch numbering has a gap: epochs 1-2 are missing (found 0, 3; epochs are numbered from 0)",
    ),
    "epoch twice as a file and a folder": (
        lambda t: (jsonl(t, [A, B]), jsonl(t, [A, B], layout="parts"))[-1],
        "epoch 0 is given twice (epoch_0/part-0.parquet and epoch_0.jsonl)",
    ),
    "epoch twice": (
        lambda t: (jsonl(t, [A, B]), raw(t, "epoch_000.jsonl", line(A)))[-1],
        "epoch 0 is given twice (epoch_0.jsonl and epoch_000.jsonl)",
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
    "several runs, pooled": (two_runs, "or average them: --pool on the command line, pool_runs in Python"),
    "one run below": (one_run_below, "holds 1 run (seed-0); give one run directory"),
    "bad run.json": (
        lambda t: (jsonl(t, [A, B]), (t / "run.json").write_text("{oops"), t)[-1],
        "run.json: not valid JSON",
    ),
    "label_names of wrong length": (
        lambda t: (jsonl(t, [A, B]), (t / "run.json").write_text('{"label_names": ["a", "b", "c"]}'), t)[-1],
        "run.json: label_names has 3 names but the logs have 2 classes",
    ),
    # entries named like log files that are not regular files: reported, never opened (a FIFO would block)
    "epoch file is a directory": (
        with_extra(one_epoch, lambda t: (t / "dynamics" / "epoch_1.parquet").mkdir()),
        "dynamics/epoch_1.parquet: expected a regular file, found a directory",
    ),
    "epoch file is a dangling link": (
        with_extra(one_epoch, lambda t: (t / "dynamics" / "epoch_1.jsonl").symlink_to(t / "gone.jsonl")),
        "dynamics/epoch_1.jsonl: expected a regular file, found a symbolic link to a missing file",
    ),
    "epoch file is a FIFO": (
        with_extra(one_epoch, lambda t: fifo(t / "dynamics" / "epoch_1.jsonl")),
        "dynamics/epoch_1.jsonl: expected a regular file, found a FIFO (named pipe)",
    ),
    "part file is a FIFO": (
        with_extra(lambda t: jsonl(t, [A, B], layout="parts"), lambda t: fifo(t / "dynamics/epoch_0/part-2.parquet")),
        "dynamics/epoch_0/part-2.parquet: expected a regular file, found a FIFO (named pipe)",
    ),
    "epoch folder is a FIFO": (
        with_extra(one_epoch, lambda t: fifo(t / "dynamics" / "epoch_1")),
        "dynamics/epoch_1: an epoch folder name, but a FIFO (named pipe); expected a folder of parts",
    ),
    "run.json is a FIFO": (
        with_extra(one_epoch, lambda t: fifo(t / "run.json")),
        "run/run.json: expected a regular file, found a FIFO (named pipe)",
    ),
    "run.json is a directory": (
        with_extra(one_epoch, lambda t: (t / "run.json").mkdir()),
        "run/run.json: expected a regular file, found a directory",
    ),
    "examples file is a FIFO": (
        with_extra(one_epoch, lambda t: fifo(t / "examples.csv")),
        "run/examples.csv: expected a regular file, found a FIFO (named pipe)",
    ),
    "epoch number too large": (
        with_extra(one_epoch, lambda t: raw(t, "epoch_" + "9" * 30 + ".jsonl", line(A))),
        "epoch number " + "9" * 30 + " is too large",
    ),
    "nested run.json": (
        with_extra(one_epoch, lambda t: (t / "run.json").write_text("[" * 100_000 + "]" * 100_000)),
        "run/run.json: JSON nested too deeply to read",
    ),
    "world_size true": (
        with_extra(one_epoch, lambda t: (t / "run.json").write_text('{"world_size": true}')),
        "run.json: world_size must be a whole number >= 1, found True",
    ),
    "uint64 id above int64": (
        lambda t: parquet(t, "epoch_0.parquet", u64_table([1, 2**64 - 1], [0, 1])),
        "epoch_0.parquet row 1: id 18446744073709551615 does not fit a 64-bit integer",
    ),
    "uint64 label above int64": (
        lambda t: parquet(t, "epoch_0.parquet", u64_table([1, 2], [0, 2**63])),
        "epoch_0.parquet row 1: label 9223372036854775808 is not a class index",
    ),
    "jsonl id too large": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + line(dict(B, id=10**20))),
        "epoch_0.jsonl line 2: id 100000000000000000000 does not fit a 64-bit integer",
    ),
    "jsonl label bool": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + line(dict(B, label=True))),
        "epoch_0.jsonl line 2: label must be a whole class index, found True",
    ),
    "jsonl logits bool": (
        lambda t: raw(t, "epoch_0.jsonl", line(A) + line(dict(B, logits=[True, 0.0]))),
        "epoch_0.jsonl line 2: logits must be a list of numbers, found [true, 0.0]",
    ),
    "examples csv with an unclosed quote": (
        with_extra(one_epoch, lambda t: (t / "examples.csv").write_text('id,text\n1,fine\n2,"never closed\n')),
        "run/examples.csv line 3: a quoted field is never closed",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_named(tmp_path, name, alarm):
    build, message = CASES[name]
    path = build(tmp_path / "run")
    with pytest.raises(LogError, match=re.escape(message)):
        stats = compute_stats(path)
        read_examples(open_run(path))  # the examples file is read by the CLI and the app beside the stats
        del stats


@pytest.mark.parametrize(
    "dtype, values",
    [(pa.float16(), [[1.0, 0.5], [0.25, 2.0]]), (pa.float32(), [[3.4e38, 3.4e38], [-3.4e38, 3.4e38]])],
)
def test_extreme_but_valid_logits_are_scored(tmp_path, dtype, values):
    """float16 logs and float32 logits near the type's maximum (further apart than float32's range, in the
    float32 kernels): scores within the float32 kernels' bound, aum and loss exact, no overflow anywhere."""
    table = pa.table({"id": [1, 2], "label": [0, 1], "logits": pa.array(values, pa.list_(dtype))})
    stats = compute_stats(parquet(tmp_path, "epoch_0.parquet", table))
    z = np.asarray(values, dtype=dtype.to_pandas_dtype()).astype(np.float64)  # as stored
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(stats["confidence"].to_numpy(), [p[0, 0], p[1, 1]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(stats["aum"].to_numpy(), [z[0, 0] - z[0, 1], z[1, 1] - z[1, 0]], rtol=1e-12)
    loss = z.max(axis=1) - z[[0, 1], [0, 1]] + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
    np.testing.assert_allclose(stats["loss"].to_numpy(), loss, rtol=1e-6)
    assert np.isfinite(stats["entropy"].to_numpy()).all()


def test_a_link_out_of_the_root_is_refused_only_when_confined(tmp_path):
    outside = jsonl(tmp_path / "outside", [A, B])
    root = tmp_path / "root"
    run = jsonl(root / "run", [A, B])
    (run / "examples.csv").symlink_to(outside / "dynamics" / "epoch_0.jsonl")
    assert open_run(run).examples_path is not None  # the CLI reads what the user names
    with pytest.raises(LogError, match=re.escape("run/examples.csv: a symbolic link to a place outside the log root")):
        open_run(run, confine_to=root)
    (root / "linked").symlink_to(outside)
    assert find_runs(root) == ["run"]
    assert find_runs(root, follow_links=True) == ["linked", "run"]


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


def test_probabilities_written_as_logits_are_refused_and_accepted_as_probs(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3)) * 2
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = [0, 1, 2, 0, 1, 2]

    def rows(values, key="logits"):
        return [{"id": i, "label": labels[i], key: values[i].tolist()} for i in range(6)]

    for layout in ("jsonl", "parquet"):
        run = write_log(tmp_path / layout, [rows(p)], layout)
        with pytest.raises(
            LogError, match=rf"{layout}/dynamics/epoch_0+\.{layout}: column logits holds probabilities, not logits"
        ):
            compute_stats(run)
    # the same values as probs, or their logarithms as logits, are the same confidences: softmax(log p) = p
    as_probs = compute_stats(write_log(tmp_path / "probs", [rows(p, "probs")], "jsonl"))
    as_log = compute_stats(write_log(tmp_path / "log", [rows(np.log(p))], "jsonl"))
    expected = p[np.arange(6), labels]
    np.testing.assert_allclose(as_probs["confidence"].to_numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(as_log["confidence"].to_numpy(), expected, rtol=1e-6)
    # logits that happen to lie in [0, 1] but do not sum to 1, and hand-written one-hot rows, are logits
    compute_stats(write_log(tmp_path / "unit", [rows(p * 0.9)], "jsonl"))
    one_hot = np.eye(3)[labels]
    t = compute_stats(write_log(tmp_path / "onehot", [rows(one_hot)], "jsonl"))
    np.testing.assert_allclose(t["confidence"].to_numpy(), np.e / (np.e + 2), rtol=1e-6)


def test_a_batch_sliced_from_a_larger_table_reads_its_own_rows():
    """Batches of a JSONL file past its first are slices (list offsets not starting at 0): lengths, values, ids
    and labels must be those of the sliced rows, and a bad length is named by the file's own row number."""
    import pyarrow as pa

    from cartography_core.ingest import _to_batch

    logits = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]
    table = pa.table({"id": [10, 11, 12, 13, 14], "label": [0, 1, 0, 1, 0], "logits": logits})
    b = _to_batch(table.slice(3, 2), 0, "epoch_0.jsonl", 3, True, None)
    assert b.ids.tolist() == [13, 14] and b.labels.tolist() == [1, 0]
    assert b.values.tolist() == [[7.0, 8.0], [9.0, 10.0]]
    with pytest.raises(LogError, match=r"epoch_0\.jsonl line 3: logits has 3 values, expected 2"):
        _to_batch(table.slice(1, 3), 0, "epoch_0.jsonl", 1, True, 2)
