"""Claiming a run folder, recording the examples beside the log, and distributed sampler padding."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DistributedSampler

from cartography_core import LogError, compute_stats, open_run, read_examples
from cartography_core.record import DynamicsRecorder

REPO = Path(__file__).resolve().parent.parent
HOLDER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from cartography_core.record import DynamicsRecorder
    rec = DynamicsRecorder({run!r})
    print("claimed", flush=True)
    sys.stdin.readline()  # hold the run until the test says so
    rec.log([1, 2], [[2.0, 0.0], [0.0, 1.0]], [0, 1])
    rec.end_epoch()
    """
)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_second_process_cannot_record_into_a_run_being_recorded(tmp_path, overwrite):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(repo=str(REPO), run=str(run))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        message = f"another process (pid {holder.pid}) is recording into this run"
        with pytest.raises(LogError, match=re.escape(message)):
            DynamicsRecorder(run, overwrite=overwrite)
    finally:
        holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
    assert compute_stats(run)["id"].to_pylist() == [1, 2]  # the holder's run, unmixed
    # once the holder has ended, the run is an ordinary finished run: refused, or replaced when asked
    with pytest.raises(LogError, match="already holds a run"):
        DynamicsRecorder(run)
    DynamicsRecorder(run, overwrite=True).close()
    assert not list((run / "dynamics").iterdir())


def test_a_run_that_crashed_before_its_first_epoch_can_be_recorded_again(tmp_path):
    run = tmp_path / "run"
    DynamicsRecorder(run, meta={"seed": 1}).close()  # training_step failed: run.json, no epoch
    rec = DynamicsRecorder(run, meta={"seed": 2})
    rec.log([5], [[0.0, 1.0]], [1])
    rec.end_epoch()
    assert open_run(run).meta["seed"] == 2 and compute_stats(run)["id"].to_pylist() == [5]


def test_other_ranks_create_nothing_before_rank_0_claims(tmp_path):
    run = tmp_path / "run"
    rank1 = DynamicsRecorder(run, rank=1, world_size=2)  # constructed first
    assert not run.exists()
    rank0 = DynamicsRecorder(run, rank=0, world_size=2)
    for rec, ids in ((rank0, [1, 3]), (rank1, [2, 4])):
        rec.log(ids, [[1.0, 0.0]] * 2, [0, 0])
        rec.end_epoch()
    assert compute_stats(run)["id"].to_pylist() == [1, 2, 3, 4]


def test_rank_and_world_size_default_to_torchrun_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    rec = DynamicsRecorder(tmp_path / "run")
    assert (rec.rank, rec.world_size) == (1, 3)


EXAMPLES = pd.DataFrame({"id": ["a", "b", "c"], "text": ["good film", "dull", "fine"], "label": ["pos", "neg", "pos"]})


def test_examples_are_written_beside_the_log_with_label_indices(tmp_path):
    rec = DynamicsRecorder(tmp_path / "run", label_names=["neg", "pos"], examples=EXAMPLES)
    rec.log(["c", "a", "b"], [[0.0, 1.0], [0.0, 2.0], [1.0, 0.0]], [1, 1, 0])
    rec.end_epoch()
    run = open_run(tmp_path / "run")
    ex = read_examples(run).to_pandas()
    assert ex["id"].tolist() == ["a", "b", "c"] and ex["text"].tolist() == ["good film", "dull", "fine"]
    assert ex["label"].tolist() == [1, 0, 1] and ex["label_name"].tolist() == ["pos", "neg", "pos"]


@pytest.mark.parametrize(
    "ids, labels, message",
    [
        (["a", "x"], [1, 0], "id 'x' was logged in epoch 0 but is not an id of examples (1 logged ids are not)"),
        (["a", "b"], [1, 1], "id 'b' was logged with gold label 1 but examples gives 0 (1 ids differ in epoch 0)"),
    ],
)
def test_logged_rows_that_are_not_the_examples_rows_are_refused(tmp_path, ids, labels, message):
    rec = DynamicsRecorder(tmp_path / "run", label_names=["neg", "pos"], examples=EXAMPLES)
    rec.log(ids, [[0.0, 1.0], [1.0, 0.0]], labels)
    with pytest.raises(LogError, match=re.escape(message)):
        rec.end_epoch()
    assert not list((tmp_path / "run" / "dynamics").iterdir())  # nothing written for that epoch


def test_a_users_own_examples_file_is_never_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "examples.csv").write_text("id,text\na,mine\n")
    with pytest.raises(LogError, match=re.escape("examples.csv exists; the recorder would write examples.parquet")):
        DynamicsRecorder(run, label_names=["neg", "pos"], examples=EXAMPLES, overwrite=True)
    assert (run / "examples.csv").read_text() == "id,text\na,mine\n"


@pytest.mark.parametrize("n", [11, 13])
def test_distributed_sampler_padding_is_read_once(tmp_path, n):
    """DistributedSampler's default (drop_last=False) repeats examples so every rank gets as many: the run
    reads back with every example once, each repeat's first occurrence (part order) kept."""
    world, epochs, k = 3, 2, 3
    rng = np.random.default_rng(n)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(epochs, world, n, k))  # what rank r computed for example i in epoch e
    recs = [DynamicsRecorder(tmp_path / "run", rank=r, world_size=world) for r in range(world)]
    kept = np.full((epochs, n, k), np.nan)
    for e in range(epochs):
        for r, rec in enumerate(recs):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=True, seed=0)
            sampler.set_epoch(e)
            rows = np.array(list(sampler))
            rec.log(rows, logits[e, r, rows], labels[rows])
            first = np.isnan(kept[e, rows, 0])
            kept[e, rows[first]] = logits[e, r, rows[first]]
            rec.end_epoch()
    stats = compute_stats(tmp_path / "run")
    assert stats["id"].to_pylist() == list(range(n)) and (stats["n_epochs"].to_numpy() == epochs).all()
    p = np.exp(kept) / np.exp(kept).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(stats["confidence"].to_numpy(), p[:, np.arange(n), labels].mean(axis=0), rtol=1e-6)
    padded = world * -(-n // world) - n
    assert padded > 0 and pq.read_schema(tmp_path / "run" / "dynamics" / "epoch_000" / "part-0.parquet")
    from cartography_core import table_meta

    assert table_meta(stats)["padding_rows"] == padded * epochs


def test_every_rank_logging_every_example_is_not_padding(tmp_path):
    for r in range(2):
        rec = DynamicsRecorder(tmp_path / "run", rank=r, world_size=2)
        rec.log(np.arange(6), torch.zeros(6, 2), torch.zeros(6, dtype=torch.long))
        rec.end_epoch()
    with pytest.raises(LogError, match=re.escape("6 rows of epoch 0 repeat examples already logged in another part")):
        compute_stats(tmp_path / "run")


def test_examples_without_a_label_column_are_refused(tmp_path):
    with pytest.raises(LogError, match=re.escape("examples: needs columns id (the ids passed to log()) and label")):
        DynamicsRecorder(tmp_path / "run", examples=EXAMPLES.rename(columns={"label": "y"}))
    assert not (tmp_path / "run").exists() or not (tmp_path / "run" / "run.json").exists()


def test_a_crashed_run_that_wrote_its_examples_can_be_recorded_again(tmp_path):
    run = tmp_path / "run"
    DynamicsRecorder(run, label_names=["neg", "pos"], examples=EXAMPLES).close()  # crashed before epoch 0 ended
    fixed = EXAMPLES.assign(text=["good film!", "dull", "fine"])
    rec = DynamicsRecorder(run, label_names=["neg", "pos"], examples=fixed)
    rec.log(["a"], [[0.0, 1.0]], [1])
    rec.end_epoch()
    assert read_examples(open_run(run)).to_pandas()["text"].tolist() == ["good film!", "dull", "fine"]
