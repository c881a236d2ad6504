"""The recorder writes logs that read back exactly, atomically, from one or several ranks."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from cartography_core import DynamicsReader, LogError, compute_stats, open_run
from cartography_core.record import DynamicsRecorder, recorder
from tests.e2e.server import REPO


def random_epochs(seed=0, n=300, k=4, epochs=3):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(10_000)[:n]
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(epochs, n, k)) * 3
    return ids, labels, logits


def feed(rec, ids, labels, logits_e, rng, *, rows=None, as_torch=False):
    rows = rng.permutation(len(ids)) if rows is None else rows
    for chunk in np.array_split(rows, 7):  # uneven random batches
        z = logits_e[chunk]
        if as_torch:
            z = torch.tensor(z, requires_grad=True) * 1.0  # a tensor with grad, as a model returns it
        rec.log(ids[chunk], z, labels[chunk])


@pytest.mark.parametrize("row_group_rows", [1 << 14, 50])
def test_shuffled_batches_read_back_exactly(tmp_path, monkeypatch, row_group_rows):
    monkeypatch.setattr(recorder, "ROW_GROUP_ROWS", row_group_rows)
    ids, labels, logits = random_epochs()
    rng = np.random.default_rng(1)
    rec = DynamicsRecorder(tmp_path / "run", label_names=list("abcd"), meta={"seed": 3})
    for e in range(3):
        feed(rec, ids, labels, logits[e], rng, as_torch=e == 1)
        rec.end_epoch()
    # row groups are written as the batches arrive: each holds the batches that reached row_group_rows
    sizes = [len(c) for c in np.array_split(np.arange(300), 7)]
    groups = pq.ParquetFile(tmp_path / "run" / "dynamics" / "epoch_001.parquet").metadata
    expected = [300] if row_group_rows > 300 else [sum(sizes[:2]), sum(sizes[2:4]), sum(sizes[4:6]), sizes[6]]
    assert [groups.row_group(g).num_rows for g in range(groups.num_row_groups)] == expected
    run = open_run(tmp_path / "run")
    assert run.meta["pass"] == "train" and run.meta["seed"] == 3 and run.label_names == list("abcd")
    reader = DynamicsReader(run)
    for b in reader:
        order = np.argsort(ids)
        where = order[np.searchsorted(ids[order], reader.ids[b.pos])]  # row of each logged id in the input
        np.testing.assert_array_equal(b.values, logits[b.epoch][where].astype(np.float32))
        np.testing.assert_array_equal(b.labels, labels[where])
    assert sorted(reader.ids.tolist()) == sorted(ids.tolist())


def test_two_ranks_equal_one_writer(tmp_path):
    ids, labels, logits = random_epochs(seed=2)
    rng = np.random.default_rng(0)
    one = DynamicsRecorder(tmp_path / "one")
    ranks = [DynamicsRecorder(tmp_path / "ddp", rank=r, world_size=2) for r in (0, 1)]
    for e in range(3):
        rows = rng.permutation(len(ids))
        feed(one, ids, labels, logits[e], rng, rows=rows)
        one.end_epoch()
        for r, rec in enumerate(ranks):  # a distributed sampler gives each rank every second row
            feed(rec, ids, labels, logits[e], rng, rows=rows[r::2])
            rec.end_epoch()
    assert (tmp_path / "ddp" / "dynamics" / "epoch_002" / "part-1.parquet").exists()
    assert compute_stats(tmp_path / "ddp").equals(compute_stats(tmp_path / "one"))


def test_a_missing_rank_part_is_detected(tmp_path):
    ids, labels, logits = random_epochs()
    rec = DynamicsRecorder(tmp_path / "ddp", rank=0, world_size=2)
    rec.log(ids, logits[0], labels)
    rec.end_epoch()  # rank 1 crashed before writing its part
    with pytest.raises(LogError, match=re.escape("epoch 0 has 1 part files but run.json says world_size 2")):
        open_run(tmp_path / "ddp")


def test_a_last_epoch_that_a_rank_never_wrote_is_left_out_with_a_notice(tmp_path, capsys, monkeypatch):
    from cartography_core.cli import main

    ids, labels, logits = random_epochs(epochs=3)
    halves = np.array_split(np.arange(len(ids)), 2)
    recs = [DynamicsRecorder(tmp_path / "ddp", rank=r, world_size=2) for r in (0, 1)]
    for e in range(2):
        for r, rec in enumerate(recs):
            if e == 1 and r == 1:
                continue  # rank 1 died after its last step of epoch 1, before end_epoch()
            rec.log(ids[halves[r]], logits[e][halves[r]], labels[halves[r]])
            rec.end_epoch()
    recs[0].close()  # rank 0 ends normally
    run = open_run(tmp_path / "ddp")
    assert run.n_epochs == 1 and run.partial == (1, 1)
    stats = compute_stats(run).to_pandas().set_index("id")
    z = logits[0] - logits[0].max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(stats.loc[ids, "confidence"], p[np.arange(len(ids)), labels], rtol=1e-5)
    assert main(["summary", str(tmp_path / "ddp")]) == 0
    err = capsys.readouterr().err
    assert "epoch 1 holds the part files of 1 of its 2 ranks" in err and "its 1 complete epochs are scored" in err
    from tests.test_app import run_app, shown

    page = run_app(monkeypatch, tmp_path, run="ddp")
    assert any("epoch 1 holds the part files of 1 of its 2 ranks" in shown(w.value) for w in page.warning)
    # an incomplete epoch before a complete one is no unfinished end: the log is refused
    dyn = tmp_path / "ddp" / "dynamics"
    shutil.copytree(dyn / "epoch_000", dyn / "epoch_002")
    with pytest.raises(LogError, match=re.escape("epoch 1 has 1 part files but run.json says world_size 2")):
        open_run(tmp_path / "ddp")


def test_an_interrupted_write_leaves_no_epoch_file(tmp_path, monkeypatch):
    ids, labels, logits = random_epochs()
    rec = DynamicsRecorder(tmp_path / "run")
    rec.log(ids, logits[0], labels)
    rec.end_epoch()
    rec.log(ids, logits[1], labels)

    def crash(self, table, *args, **kw):  # on the writer thread, with the temporary file opened
        raise KeyboardInterrupt

    monkeypatch.setattr(pq.ParquetWriter, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        rec.end_epoch()
    files = sorted(p.name for p in (tmp_path / "run" / "dynamics").iterdir())
    assert files == ["epoch_000.parquet"]  # and no temporary file either
    # a writer killed outright leaves its hidden temporary file behind: never read as an epoch
    (tmp_path / "run" / "dynamics" / ".epoch_001.parquet.tmp-999").write_bytes(b"PAR1 half")
    assert open_run(tmp_path / "run").n_epochs == 1
    # a half file under the final name (copied by hand, say) is reported, not read
    (tmp_path / "run" / "dynamics" / "epoch_001.parquet").write_bytes(b"PAR1 half")
    with pytest.raises(LogError, match="epoch_001.parquet: not a readable parquet file"):
        compute_stats(tmp_path / "run")


def test_existing_run_is_not_overwritten_unless_asked(tmp_path):
    ids, labels, logits = random_epochs()
    rec = DynamicsRecorder(tmp_path / "run")
    rec.log(ids, logits[0], labels)
    rec.end_epoch()
    with pytest.raises(LogError, match="already holds a run"):
        DynamicsRecorder(tmp_path / "run")
    assert (tmp_path / "run" / "dynamics" / "epoch_000.parquet").exists()
    DynamicsRecorder(tmp_path / "run", overwrite=True)
    assert list((tmp_path / "run" / "dynamics").iterdir()) == []


def test_bad_batches_are_refused(tmp_path):
    rec = DynamicsRecorder(tmp_path / "run")
    with pytest.raises(LogError, match=re.escape("must be (n,), (n, K) and (n,)")):
        rec.log([1, 2], np.zeros((3, 2)), [0, 1])
    rec.log([1, 2], np.zeros((2, 2)), [0, 1])
    rec.log([2], np.zeros((1, 2)), [0])
    with pytest.raises(LogError, match="id 2 was logged twice in epoch 0"):
        rec.end_epoch()


def test_a_tensor_changed_in_place_after_log_is_refused_not_recorded(tmp_path, monkeypatch):
    # tensors on an accelerator are held by reference until their row group is written; here CPU tensors take
    # that path (the device is the only difference)
    monkeypatch.setattr(recorder, "_held_by_reference", lambda t: True)
    monkeypatch.setattr(recorder, "ROW_GROUP_ROWS", 4)
    rec = DynamicsRecorder(tmp_path / "run")
    z = torch.zeros(3, 2)
    rec.log(torch.arange(3), torch.ones(3, 2), torch.zeros(3, dtype=torch.long))
    rec.log(torch.arange(3, 6), z, torch.zeros(3, dtype=torch.long))
    rec.end_epoch()  # held by reference, then copied when 4 rows were waiting: a later change is harmless
    z += 5
    values = np.concatenate([b.values for b in DynamicsReader(open_run(tmp_path / "run"))])
    np.testing.assert_array_equal(values, [[1, 1]] * 3 + [[0, 0]] * 3)

    rec.log(torch.arange(3), z, torch.zeros(3, dtype=torch.long))  # 3 rows wait: z is held by reference
    z.mul_(2)
    with pytest.raises(LogError, match=re.escape("the logits logged in step 0 of epoch 1 were changed in place")):
        rec.log(torch.arange(3, 6), torch.ones(3, 2), torch.zeros(3, dtype=torch.long))  # 6 rows: a row group
    labels = torch.zeros(2, dtype=torch.long)
    rec.log(torch.arange(2), torch.ones(2, 2), labels)
    labels[0] = 1  # a changed gold label would record the wrong class
    with pytest.raises(LogError, match=re.escape("the labels logged in step 0 of epoch 1 were changed in place")):
        rec.end_epoch()
    # the epoch is dropped whole: no file, no temporary file, and the epoch can be logged again
    assert sorted(p.name for p in (tmp_path / "run" / "dynamics").iterdir()) == ["epoch_000.parquet"]
    rec.log(torch.arange(6), torch.full((6, 2), 2.0), torch.zeros(6, dtype=torch.long))
    assert rec.end_epoch().name == "epoch_001.parquet"


def test_a_batch_unlike_the_epochs_others_is_refused(tmp_path):
    rec = DynamicsRecorder(tmp_path / "run")
    rec.log([1, 2], np.zeros((2, 2)), [0, 1], loss=[0.5, 0.1])
    with pytest.raises(LogError, match="a batch without loss after batches with it in epoch 0"):
        rec.log([3], np.zeros((1, 2)), [0])
    with pytest.raises(LogError, match=re.escape("loss (3,) must hold one value per example (2)")):
        rec.log([3, 4], np.zeros((2, 2)), [0, 1], loss=[1.0, 2.0, 3.0])
    with pytest.raises(LogError, match="logits have 3 classes, earlier batches of this epoch 2"):
        rec.log([3], np.zeros((1, 3)), [0], loss=[1.0])
    with pytest.raises(LogError, match="ids of this batch are strings but earlier ids of epoch 0 are integers"):
        rec.log(["a"], np.zeros((1, 2)), [0], loss=[1.0])
    rec.log(torch.tensor([3]), torch.zeros((1, 2)), [0], loss=torch.ones(1, 1))  # (n, 1) losses are one per row
    assert rec.end_epoch().name == "epoch_000.parquet"
    table = pq.read_table(tmp_path / "run" / "dynamics" / "epoch_000.parquet")
    assert table["id"].to_pylist() == [1, 2, 3] and table["loss"].to_pylist() == [0.5, pytest.approx(0.1), 1.0]


def test_probabilities_wrong_widths_and_labels_are_refused_before_a_second_epoch(tmp_path):
    ids, labels, logits = random_epochs(n=40, k=3, epochs=1)
    probs = torch.softmax(torch.tensor(logits[0]), dim=1)
    rec = DynamicsRecorder(tmp_path / "probs")
    rec.log(ids[:20], probs[:20], labels[:20])
    rec.log(ids[20:], probs[20:], labels[20:])
    with pytest.raises(LogError, match=r"values logged as logits in step 0 of epoch 0 and after are probabilities"):
        rec.end_epoch()
    assert not (tmp_path / "probs" / "dynamics" / "epoch_000.parquet").exists()
    rec.close()
    # what the message advises: their logarithms are logits whose softmax is the same probabilities
    with DynamicsRecorder(tmp_path / "log") as rec:
        rec.log(ids, torch.log(probs), labels)
        rec.end_epoch()
    conf = compute_stats(tmp_path / "log").to_pandas().set_index("id")["confidence"]
    np.testing.assert_allclose(conf.loc[ids], probs.numpy()[np.arange(40), labels], rtol=1e-5)

    # logits one class short of the names: refused at the first log, not after training
    rec = DynamicsRecorder(tmp_path / "width", label_names=list("abcd"))
    with pytest.raises(LogError, match=re.escape("logits have 3 columns but label_names names 4 classes")):
        rec.log(ids, logits[0], labels)
    # a label outside the logits' classes: named with its step at the row group's write (end of this epoch)
    bad = labels.copy()
    bad[25] = 3
    rec = DynamicsRecorder(tmp_path / "label")
    rec.log(ids[:20], logits[0][:20], bad[:20])
    rec.log(ids[20:], logits[0][20:], bad[20:])
    with pytest.raises(LogError, match=re.escape("labels logged in step 1 of epoch 0 hold 3, outside [0, 3)")):
        rec.end_epoch()


def test_cpu_tensors_and_arrays_are_copied_when_logged(tmp_path):
    """Changes torch cannot see (through .data, a numpy view, a numpy buffer behind torch.from_numpy) after
    log() never reach the file: CPU inputs are copied at once."""
    rec = DynamicsRecorder(tmp_path / "run")
    buf = np.zeros((4, 2), dtype=np.float32)
    z = torch.ones(4, 2, requires_grad=True) * 1.0
    rec.log(np.arange(4), z, torch.zeros(4, dtype=torch.long))
    z.data.mul_(3)
    np.multiply(z.detach().numpy(), 2, out=z.detach().numpy())
    buf[:] = 5
    rec.log(np.arange(4, 8), torch.from_numpy(buf), np.zeros(4, dtype=np.int64))
    buf[:] = 7  # refilled for the next step
    rec.end_epoch()
    values = pq.read_table(tmp_path / "run" / "dynamics" / "epoch_000.parquet")["logits"].to_pylist()
    assert values == [[1.0, 1.0]] * 4 + [[5.0, 5.0]] * 4


def test_values_that_cannot_be_scored_are_refused_at_log(tmp_path):
    rec = DynamicsRecorder(tmp_path / "run")
    with pytest.raises(LogError, match="ids must be integers or strings, found float64"):
        rec.log(np.array([0.4, 1.0]), np.zeros((2, 2)), [0, 1])
    rec.log([0, 1], np.zeros((2, 2)), np.array([0.0, 1.0]))  # whole-number float labels are class indices
    rec.log([2, 3], np.zeros((2, 2)), torch.tensor([1.0, 0.6]))
    whole = "labels logged in step 1 of epoch 0 must be class indices (whole numbers), found 0.6"
    with pytest.raises(LogError, match=re.escape(whole)):
        rec.end_epoch()
    rec.log([0, 1], np.zeros((2, 2)), [0, 1])
    rec.log([2, 3], np.array([[0.0, 1.0], [np.nan, 0.0]]), [0, 1])
    with pytest.raises(LogError, match=re.escape("logits logged in step 1 of epoch 0 hold NaN or infinity: [nan, 0")):
        rec.end_epoch()
    assert list((tmp_path / "run" / "dynamics").iterdir()) == []  # nothing written: the run stays readable


def test_an_unfinished_epoch_is_dropped_with_a_warning_and_a_closed_recorder_refuses(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder, "ROW_GROUP_ROWS", 2)
    rec = DynamicsRecorder(tmp_path / "run")
    rec.log([0, 1], np.zeros((2, 2)), [0, 1])
    rec.end_epoch()
    rec.log([0, 1, 2], np.zeros((3, 2)), [0, 1, 1])  # a row group already in the temporary file
    with pytest.warns(UserWarning, match="1 batches logged in epoch 1 were not written"):
        rec.close()
    assert [p.name for p in (tmp_path / "run" / "dynamics").iterdir()] == ["epoch_000.parquet"]
    with pytest.raises(LogError, match="this recorder was closed"):
        rec.log([0], np.zeros((1, 2)), [0])
    with pytest.raises(LogError, match="this recorder was closed"):
        rec.end_epoch()


def test_ids_of_another_type_than_the_examples_are_named(tmp_path):
    rec = DynamicsRecorder(tmp_path / "run", examples={"id": ["a", "b"], "label": [0, 1]})
    rec.log([0, 1], np.zeros((2, 2)), [0, 1])
    with pytest.raises(LogError, match="the logged ids are integers, the examples' ids strings"):
        rec.end_epoch()


@pytest.mark.parametrize("held", [False, True], ids=["cpu-copied", "held-as-on-a-gpu"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_stored_widened_exactly(tmp_path, monkeypatch, held, dtype):
    """Mixed-precision training logs bf16/fp16 logits: every value is stored as the float32 it equals."""
    monkeypatch.setattr(recorder, "_held_by_reference", lambda t: held)
    z = torch.tensor([[1.5, -2.25], [0.0078125, 3.0], [-0.5, 65504.0 if dtype == torch.float16 else 1e30]])
    rec = DynamicsRecorder(tmp_path / "run")
    rec.log(torch.arange(2), z[:2].to(dtype), torch.tensor([0, 1]))
    rec.log(torch.arange(2, 3), z[2:].to(dtype), torch.tensor([1]))
    rec.end_epoch()
    got = pq.read_table(tmp_path / "run" / "dynamics" / "epoch_000.parquet")["logits"].to_pylist()
    assert got == z.to(dtype).float().tolist()


KILLED_MID_EPOCH = """
import os, sys
import numpy as np
from cartography_core.record import DynamicsRecorder
rec = DynamicsRecorder(sys.argv[1], label_names=["a", "b"], examples={"id": list(range(6)), "label": [0, 1] * 3})
for epoch in range(3):
    for start in (0, 3):
        if epoch == 2 and start == 3:
            os._exit(0)  # killed in the middle of epoch 2: no close(), no exit handlers
        rows = np.arange(start, start + 3)
        rec.log(rows, np.eye(2)[rows % 2] * (epoch + 1), rows % 2)
    rec.end_epoch()
"""


def test_a_run_killed_mid_training_says_so_in_summary_and_dashboard(tmp_path, monkeypatch, capsys):
    """run.json's "ended" stays null when the recording process is killed: the two complete epochs are scored,
    and summary and the dashboard say the recording did not end; a closed run says nothing, and one closed
    with rows of an unfinished epoch names that epoch."""
    import shutil
    import subprocess
    import sys

    from cartography_core.cli import main
    from tests.test_app import run_app, shown

    root = tmp_path / "logs"
    subprocess.run([sys.executable, "-c", KILLED_MID_EPOCH, str(root / "killed")], check=True, cwd=REPO)
    assert json.loads((root / "killed" / "run.json").read_text())["ended"] is None
    assert main(["summary", str(root / "killed")]) == 0
    out, err = capsys.readouterr()
    assert "epochs:    2" in out and f"warning: {root / 'killed'}: its recording has not ended" in err

    with DynamicsRecorder(root / "closed") as rec:
        rec.log([0, 1], np.eye(2), [0, 1])
        rec.end_epoch()
    meta = json.loads((root / "closed" / "run.json").read_text())
    assert meta["ended"] is not None and "stopped_in_epoch" not in meta
    assert open_run(root / "closed").recording_notice is None

    rec = DynamicsRecorder(root / "stopped")
    rec.log([0, 1], np.eye(2), [0, 1])
    rec.end_epoch()
    rec.log([0], np.eye(2)[:1], [0])
    with pytest.warns(UserWarning, match="1 batches logged in epoch 1 were not written"):
        rec.close()
    assert "stopped during epoch 1" in open_run(root / "stopped").recording_notice
    # pooled on the command line, each such run is named: its scores cover fewer epochs than the others'
    assert main(["stats", str(root), "--pool", "--out", str(tmp_path / "pooled.csv")]) == 0
    err = capsys.readouterr().err
    assert "warning: killed: its recording has not ended" in err and "warning: stopped: its recording stopped" in err
    assert "closed:" not in err

    at = run_app(monkeypatch, root, run="killed")
    assert any("This run: its recording has not ended" in shown(w.value) for w in at.warning)
    assert not any("recording" in w.value for w in run_app(monkeypatch, root, run="closed").warning)
    # pooled with the 1-epoch runs beside it, the page names both the killed run and the span of epochs
    for name in ("killed", "closed"):
        shutil.copytree(root / name, tmp_path / "pooled" / "ds" / name)
    at = run_app(monkeypatch, tmp_path / "pooled", run="ds/*")
    assert any("killed: its recording has not ended" in shown(w.value) for w in at.warning)
    assert "1 to 2 epochs" in shown(at.caption[0].value)


def test_closing_an_older_recorder_of_the_same_folder_leaves_the_newer_ones_run(tmp_path):
    """A notebook cell run again makes a second recorder of the same folder in the same process; closing the
    first one later must neither write its stale run.json over the second's nor release the second's claim."""
    first = DynamicsRecorder(tmp_path / "run", meta={"attempt": 1})
    second = DynamicsRecorder(tmp_path / "run", meta={"attempt": 2})
    second.log([0, 1], np.eye(2), [0, 1])
    second.end_epoch()
    first.close()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["attempt"] == 2 and meta["ended"] is None  # the second is still recording
    assert str((tmp_path / "run").resolve()) in recorder._HELD  # and still holds the folder
    second.close()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["attempt"] == 2 and meta["ended"] is not None
    assert str((tmp_path / "run").resolve()) not in recorder._HELD


def test_a_recorder_refused_at_construction_leaves_nothing_to_close_at_exit(tmp_path):
    code = (
        "from cartography_core.record import DynamicsRecorder\n"
        f"DynamicsRecorder({str(tmp_path / 'run')!r}, examples={{'id': [1, 1], 'label': [0, 1]}})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "examples: id 1 appears more than once" in done.stderr
    assert "Exception ignored" not in done.stderr and done.stderr.count("Traceback") == 1
    assert not (tmp_path / "run").exists()


def test_examples_ids_that_are_missing_or_not_whole_are_named_and_whole_floats_are_ids(tmp_path):
    import pandas as pd

    nan_id = pd.DataFrame({"id": [1.0, np.nan, 3.0], "label": [0, 1, 0]})
    with pytest.raises(LogError, match=re.escape("examples: row 1 has no id (null or NaN)")):
        DynamicsRecorder(tmp_path / "a", examples=nan_id)
    with pytest.raises(LogError, match="examples: id holds numbers that are not whole"):
        DynamicsRecorder(tmp_path / "b", examples=nan_id.fillna(2.5))
    # whole numbers in a float column (a NaN dropped earlier) are the integer ids logged
    with DynamicsRecorder(tmp_path / "c", examples=nan_id.fillna(2.0)) as rec:
        rec.log([1, 2, 3], np.eye(2)[[0, 1, 0]] * 2.0, [0, 1, 0])
        rec.end_epoch()
    assert pq.read_table(tmp_path / "c" / "examples.parquet")["id"].to_pylist() == [1, 2, 3]
