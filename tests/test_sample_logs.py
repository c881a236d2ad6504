"""The committed sample logs: real runs that every command reads."""

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cartography_core import compute_stats, find_runs, open_run, split_half_reliability

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
DATASETS = {"rotten_tomatoes": 12_808, "sms_spam": 5_574, "trec": 5_381}


def test_three_datasets_three_seeds_each():
    assert find_runs(SAMPLES) == [f"{d}/seed-{s}" for d in sorted(DATASETS) for s in range(3)]


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_each_run_reads_with_its_text(dataset):
    examples = pq.read_table(SAMPLES / dataset / "examples.parquet")
    assert examples.num_rows == DATASETS[dataset]
    train_ids = np.sort(examples.filter(pc.equal(examples["split"], "train"))["id"].to_numpy())
    for seed in range(3):
        run = open_run(SAMPLES / dataset / f"seed-{seed}")
        stats = compute_stats(run)
        assert run.n_epochs == 6 and run.meta["seed"] == seed
        np.testing.assert_array_equal(stats["id"].to_numpy(), train_ids)  # the full training set, every epoch
        assert (stats["n_epochs"].to_numpy() == 6).all()
        assert run.examples_path == SAMPLES / dataset / "examples.parquet"


def test_confidence_is_reliable_across_the_three_seeds():
    runs = [compute_stats(SAMPLES / "rotten_tomatoes" / f"seed-{s}") for s in range(3)]
    assert split_half_reliability(runs, "confidence").split_half > 0.8
