"""The Dask engine against the in-process engine, on a real LocalCluster of two worker processes; logs
behind fsspec URLs for both engines."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartography_core.cli import main
from cartography_core.cluster import (
    compute_stats_dask,
    partition_of,
    pool_runs_dask,
    read_stats,
    read_trajectory,
    split_half_reliability_dask,
)
from cartography_core.errors import LogError
from cartography_core.ingest import find_runs, open_run, read_examples
from cartography_core.reliability import pool_runs, split_half_reliability
from cartography_core.stats import compute_stats, table_meta
from tests.logs import assert_same_table, write_log


def messy_epochs(n=300, epochs=4, k=3, seed=0, string_ids=False, probs=False):
    """Rows of ``epochs`` epochs: argmax ties (equal logits), examples missing from some epochs, rows in random
    order per epoch, ids not contiguous; string ids or probabilities on request."""
    examples = np.random.default_rng(n)  # the same examples for every seed: the runs of one dataset
    ids = examples.choice(10 * n, size=n, replace=False)
    labels = examples.integers(0, k, size=n)
    rng = np.random.default_rng(seed)
    out = []
    for e in range(epochs):
        z = rng.normal(size=(n, k)).round(1)  # rounding makes ties common
        z[::7] = 0.5  # all classes tied: argmax goes to class 0
        keep = rng.random(n) > 0.15 if e else np.ones(n, dtype=bool)  # some examples miss later epochs
        order = rng.permutation(np.flatnonzero(keep))
        rows = []
        for i in order:
            row = {"id": f"ex-{ids[i]}" if string_ids else int(ids[i]), "label": int(labels[i])}
            if probs:
                p = np.exp(z[i]) / np.exp(z[i]).sum()
                row["probs"] = p.tolist()
            else:
                row["logits"] = z[i].tolist()
            rows.append(row)
        out.append(rows)
    return out


def write_probs_log(root, epochs):
    """The JSONL layout with a ``probs`` key instead of ``logits``."""
    d = root / "dynamics"
    d.mkdir(parents=True)
    for e, rows in enumerate(epochs):
        (d / f"epoch_{e}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


CASES = {
    "parquet, int ids": dict(layout="parquet"),
    "parts, string ids": dict(layout="parts", string_ids=True),
    "jsonl": dict(layout="jsonl"),
    "allenai": dict(layout="allenai"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_dask_engine_gives_the_in_process_numbers(tmp_path, client, case):
    opts = dict(CASES[case])
    layout = opts.pop("layout")
    run = write_log(tmp_path / "run", messy_epochs(**opts), layout, meta={"label_names": ["a", "b", "c"]})
    want = compute_stats(run)
    # partitions of ~40 examples and read units of one row group: many partitions, several tasks per file
    result = compute_stats_dask(run, tmp_path / "out", client=client, partition_rows=40)
    assert result.n_examples == want.num_rows == 300
    # 24 bytes of id, label, epoch and position plus 4 per class of float32 logs (parquet), 8 of float64 ones
    # (JSONL); a string id adds its length ("ex-123")
    per_row = result.bytes_shuffled / result.rows_read
    row = 24 + (4 if layout in ("parquet", "parts") else 8) * 3
    assert per_row == row if not opts.get("string_ids") else per_row > row
    # parquet footers give the rows of epoch 0 (300: ceil(300 / 40) partitions); JSONL an upper bound of them
    assert result.n_partitions == 8 if layout in ("parquet", "parts") else result.n_partitions > 8
    got = read_stats(tmp_path / "out")
    assert_same_table(got, want)
    assert table_meta(got) == table_meta(want)
    assert 1 < len(list((tmp_path / "out").glob("part-*.parquet"))) <= result.n_partitions


def test_probability_logs_and_several_row_groups_per_file(tmp_path, client):
    epochs = messy_epochs(n=500, probs=True, seed=3)
    run = write_probs_log(tmp_path / "run", epochs)
    want = compute_stats(run)
    assert want["aum"].null_count == want.num_rows
    result = compute_stats_dask(run, tmp_path / "out", client=client, partition_rows=100)
    assert_same_table(read_stats(tmp_path / "out"), want)
    # the shuffle carries each logged row once: 24 bytes of id, label, epoch and position, 8 per class
    assert result.rows_read == sum(len(e) for e in epochs)
    assert result.bytes_shuffled == result.rows_read * (24 + 8 * 3)

    # a parquet file read as several units (row groups of 64 rows, units of 128): row numbers in messages stay
    # those of the file
    run2 = tmp_path / "run2"
    (run2 / "dynamics").mkdir(parents=True)
    rows = [dict(id=i, label=i % 2, logits=[float(i % 3), 0.0]) for i in range(1000)]
    for e in range(2):
        table = pa.table(
            {"id": [r["id"] for r in rows], "label": [r["label"] for r in rows], "logits": [r["logits"] for r in rows]}
        )
        pq.write_table(table, run2 / "dynamics" / f"epoch_{e}.parquet", row_group_size=64)
    assert_same_table(
        read_stats_of(compute_stats_dask(run2, tmp_path / "o2", client=client, unit_rows=128)), compute_stats(run2)
    )
    rows[700]["logits"] = [float("nan"), 0.0]
    table = pa.table(
        {"id": [r["id"] for r in rows], "label": [r["label"] for r in rows], "logits": [r["logits"] for r in rows]}
    )
    pq.write_table(table, run2 / "dynamics" / "epoch_1.parquet", row_group_size=64)
    with pytest.raises(LogError, match=r"run2/dynamics/epoch_1.parquet row 700: logits contains NaN"):
        compute_stats_dask(run2, tmp_path / "o3", client=client, unit_rows=128)


def read_stats_of(result):
    return read_stats(result.out)


def ddp_run(run):
    """Two ranks of a DDP run, 3 epochs: the sampler pads rank 1 with example 0 again (1 padding row an epoch)."""
    for e in range(3):
        d = run / "dynamics" / f"epoch_{e}"
        d.mkdir(parents=True)
        ids = list(range(101))
        halves = [ids[:51], ids[51:] + [0]]  # 102 rows: 101 examples + 1 padding row
        for r, part in enumerate(halves):  # the padding row's logits differ: which copy is kept shows
            z = [[float((i * (e + 1)) % 5) + 10 * r, 1.0] for i in part]
            pq.write_table(pa.table({"id": part, "label": [i % 2 for i in part], "logits": z}), d / f"part-{r}.parquet")
    (run / "run.json").write_text(json.dumps({"world_size": 2}))
    return run


def test_pooled_padding_rows_are_every_runs_together(tmp_path, client):
    names = ["seed-0", "seed-1"]
    runs = [ddp_run(tmp_path / "ds" / n) for n in names]
    local = pool_runs([compute_stats(r) for r in runs], names)
    assert table_meta(local)["padding_rows"] == 6  # 3 epochs x 1 row x 2 runs
    pool_runs_dask(runs, tmp_path / "out", names=names, client=client, partition_rows=40)
    assert json.loads((tmp_path / "out" / "cartography.json").read_text())["padding_rows"] == 6


def test_distributed_sampler_padding_is_read_once_and_judged_over_every_partition(tmp_path, client):
    run = ddp_run(tmp_path / "ddp")
    want = compute_stats(run)
    compute_stats_dask(run, tmp_path / "out", client=client, partition_rows=10)
    got = read_stats(tmp_path / "out")
    assert_same_table(got, want)
    assert table_meta(got)["padding_rows"] == 3
    # rank 1 logs rank 0's examples again: 51 of 102 rows repeat, more than a sampler pads (under 1/world),
    # though each partition alone sees only a few of them
    for e in range(3):
        d = run / "dynamics" / f"epoch_{e}"
        part = list(range(51))
        pq.write_table(
            pa.table({"id": part, "label": [i % 2 for i in part], "logits": [[0.0, 1.0]] * 51}), d / "part-1.parquet"
        )
    for score in (compute_stats, lambda r: compute_stats_dask(r, tmp_path / "o2", client=client, partition_rows=10)):
        with pytest.raises(LogError, match="ddp/dynamics/epoch_0: 51 rows of epoch 0 repeat examples"):
            score(run)


def test_bad_rows_are_named_by_file_and_line_from_the_workers(tmp_path, client):
    epochs = messy_epochs(n=50, epochs=3)
    epochs[2][10]["label"] = (epochs[2][10]["label"] + 1) % 3  # the gold label changes in epoch 2
    run = write_log(tmp_path / "run", epochs, "jsonl")
    with pytest.raises(LogError) as want:
        compute_stats(run)
    with pytest.raises(LogError) as got:
        compute_stats_dask(run, tmp_path / "out", client=client, partition_rows=10)
    assert str(got.value) == str(want.value)
    assert "run/dynamics/epoch_2.jsonl line 11: gold label of id" in str(got.value)
    assert not (tmp_path / "out" / "cartography.json").exists()  # a failed scoring leaves no result
    with pytest.raises(LogError, match="no cartography.json"):
        read_stats(tmp_path / "out")


def test_strict_and_max_epochs(tmp_path, client):
    run = write_log(tmp_path / "run", messy_epochs(n=80), "parquet")
    assert_same_table(
        read_stats_of(compute_stats_dask(run, tmp_path / "a", client=client, max_epochs=2, partition_rows=20)),
        compute_stats(run, max_epochs=2),
    )
    with pytest.raises(LogError, match="is missing from epoch 1"):
        compute_stats_dask(run, tmp_path / "b", client=client, strict=True, partition_rows=20)


def test_the_output_folder_of_a_user_is_never_clobbered(tmp_path, client):
    run = write_log(tmp_path / "run", messy_epochs(n=30), "parquet")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(LogError, match="folder holds notes.txt; .* --force"):
        compute_stats_dask(run, out, client=client)
    compute_stats_dask(run, out, client=client, overwrite=True, partition_rows=10)
    compute_stats_dask(run, out, client=client, overwrite=True, partition_rows=20)  # fewer parts than before
    assert (out / "notes.txt").read_text() == "mine"
    assert len(list(out.glob("part-*.parquet"))) == 2  # the three parts of the first result are gone
    assert_same_table(read_stats(out), compute_stats(run))
    # a finished result is kept without --force; an unfinished one (a scoring that failed) is replaced
    fresh = tmp_path / "fresh"
    compute_stats_dask(run, fresh, client=client, partition_rows=10)
    with pytest.raises(LogError, match="folder holds a finished result; .* --force"):
        compute_stats_dask(run, fresh, client=client)
    (fresh / "cartography.json").unlink()
    compute_stats_dask(run, fresh, client=client, partition_rows=30)
    assert len(list(fresh.glob("part-*.parquet"))) == len(list(fresh.glob("traj-*.parquet"))) == 1
    assert_same_table(read_stats(fresh), compute_stats(run))


def test_a_run_behind_an_fsspec_url_reads_as_the_local_copy(tmp_path):
    import fsspec

    local = write_log(tmp_path / "logs" / "ds" / "seed-0", messy_epochs(n=60, string_ids=True), "parts")
    write_log(tmp_path / "logs" / "ds" / "seed-1", messy_epochs(n=60, seed=1), "jsonl")
    (tmp_path / "logs" / "ds" / "examples.csv").write_text("id,text\nex-1,one\n")
    fs = fsspec.filesystem("memory")
    fs.put(str(tmp_path / "logs"), "/t-url/logs", recursive=True)
    try:
        assert find_runs("memory://t-url/logs") == ["ds/seed-0", "ds/seed-1"] == find_runs(tmp_path / "logs")
        run = open_run("memory://t-url/logs/ds/seed-0")
        assert run.location == "memory://t-url/logs/ds/seed-0"
        assert_same_table(compute_stats(run), compute_stats(local))
        assert read_examples(run).to_pylist() == [{"id": "ex-1", "text": "one"}]
        with fs.open("/t-url/logs/ds/seed-1/dynamics/epoch_1.jsonl", "ab") as fh:
            fh.write(b'{"id": 5, "label": 0, "logits": [1, 2]\n')
        with pytest.raises(LogError, match=r"^seed-1/dynamics/epoch_1.jsonl line \d+: malformed JSON"):
            compute_stats("memory://t-url/logs/ds/seed-1")
        with pytest.raises(LogError, match="memory://t-url/logs/nothing: no such directory"):
            open_run("memory://t-url/logs/nothing")
    finally:
        fs.rm("/t-url", recursive=True)


def test_file_urls_work_for_both_engines(tmp_path, client):
    run = write_log(tmp_path / "run", messy_epochs(n=40), "parquet")
    want = compute_stats(run)
    assert_same_table(compute_stats(f"file://{run}"), want)
    compute_stats_dask(f"file://{run}", f"file://{tmp_path / 'out'}", client=client)
    assert_same_table(read_stats(f"file://{tmp_path / 'out'}"), want)
    shutil.rmtree(tmp_path / "out")


def test_pooling_runs_on_the_cluster_gives_the_in_process_pool(tmp_path, client):
    # three runs of one dataset that log overlapping examples (ids missing from some runs) and string ids
    root = tmp_path / "ds"
    for seed in range(3):
        epochs = messy_epochs(n=120, epochs=3 + seed, seed=seed, string_ids=True)
        epochs = [[r for r in e if (int(r["id"][3:]) + seed) % 5] for e in epochs] if seed else epochs
        write_log(root / f"seed-{seed}", epochs, "parquet", meta={"label_names": ["a", "b", "c"]})
    names = find_runs(root)
    want = pool_runs([compute_stats(root / n) for n in names], names)
    result = pool_runs_dask([root / n for n in names], tmp_path / "out", names=names, client=client, partition_rows=25)
    got = read_stats(tmp_path / "out")
    assert result.n_examples == want.num_rows
    assert_same_table(got, want)
    assert table_meta(got) == table_meta(want)
    # each run's own statistics are kept beside the pool
    assert_same_table(read_stats(tmp_path / "out" / "runs" / "seed-1"), compute_stats(root / "seed-1"))


def test_the_command_line_scores_on_a_scheduler_and_pools(tmp_path, client):
    root = tmp_path / "logs" / "ds"
    for seed in range(2):
        write_log(root / f"seed-{seed}", messy_epochs(n=90, seed=seed), "parts")
    address = client.scheduler.address
    assert (
        main(
            ["stats", str(root / "seed-0"), "--engine", "dask", "--scheduler", address, "--out", str(tmp_path / "one")]
        )
        == 0
    )
    assert_same_table(read_stats(tmp_path / "one"), compute_stats(root / "seed-0"))
    argv = ["stats", str(root), "--pool", "--engine", "dask", "--scheduler", address, "--out", str(tmp_path / "pool")]
    assert main([*argv, "--partition-rows", "30"]) == 0
    names = ["seed-0", "seed-1"]
    assert_same_table(read_stats(tmp_path / "pool"), pool_runs([compute_stats(root / n) for n in names], names))
    assert main(argv) == 2  # the folder now holds a result: kept without --force
    assert main([*argv, "--force"]) == 0


def test_the_command_line_names_what_it_cannot_do(tmp_path, capsys):
    run = write_log(tmp_path / "run", messy_epochs(n=20), "parquet")
    cases = {
        ("--engine", "dask", "--out", str(tmp_path / "s.parquet")): "writes a folder of parquet parts",
        ("--engine", "dask", "--out", str(tmp_path / "o"), "--el2n-epoch", "1"): "apply to --engine local only",
        ("--out", str(tmp_path / "s.parquet"), "--scheduler", "tcp://x:1"): "--scheduler needs --engine dask",
        ("--out", str(tmp_path), "--force"): "the local engine writes one file (.csv, .jsonl, .parquet)",
        ("--out", str(tmp_path / "stats")): "--engine dask writes a folder",
        ("--engine", "dask", "--out", str(run / "dynamics" / "o")): "inside a run folder",
        ("--engine", "dask", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")): "cannot reach the Dask",
        ("--engine", "dask", "--scheduler", "htp://oops:1", "--out", str(tmp_path / "o")): "unknown address scheme",
    }
    import dask

    for extra, message in cases.items():
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            assert main(["stats", str(run), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["stats", str(tmp_path / "typo"), "--pool", "--engine", "dask", "--out", str(tmp_path / "o")]) == 2
    assert "typo: no such directory" in capsys.readouterr().err


@pytest.mark.parametrize("string_ids", [False, True])
def test_each_example_sits_in_the_partition_its_id_hashes_to_and_its_trajectory_is_one_read(
    tmp_path, client, monkeypatch, string_ids
):
    import cartography_core.cluster as cluster
    from cartography_core.stats import compute_stats_and_epochs

    run = write_log(tmp_path / "run", messy_epochs(n=200, string_ids=string_ids), "parts")
    compute_stats_dask(run, tmp_path / "out", client=client, partition_rows=30)
    n_parts = json.loads((tmp_path / "out" / "cartography.json").read_text())["partitions"]
    for part in (tmp_path / "out").glob("part-*.parquet"):
        ids = pq.read_table(part)["id"].to_pylist()
        assert set(partition_of(ids, n_parts)) == {int(part.stem.split("-")[1])}, part.name

    table, epochs = compute_stats_and_epochs(run)
    ids = table["id"].to_pylist()
    missing = int(np.flatnonzero(np.isnan(epochs.p_gold).any(axis=0))[0])  # missing from some epoch
    opened = []
    real = pq.read_table
    monkeypatch.setattr(cluster.pq, "read_table", lambda src, **kw: opened.append(src) or real(src, **kw))
    for i in (0, missing, len(ids) - 1):
        traj = read_trajectory(tmp_path / "out", ids[i])
        want = epochs.p_gold[:, i].astype(np.float64)
        assert traj["epoch"].to_pylist() == list(range(4))
        assert traj["p_gold"].to_pylist() == [None if np.isnan(v) else v for v in want]
        got_pred = traj["pred"].to_pylist()
        assert got_pred == [None if np.isnan(v) else int(p) for v, p in zip(want, epochs.pred[:, i])]
    assert len(opened) == 3  # one partition file per lookup
    for absent in ("nope", "ex-x1", "zz") if string_ids else (10**9, -5, 7):  # some fall in empty partitions
        with pytest.raises(LogError, match="no example with id"):
            read_trajectory(tmp_path / "out", absent)
    for traj in (tmp_path / "out").glob("traj-*.parquet"):
        traj.unlink()  # a result written before trajectories were
    with pytest.raises(LogError, match="holds no trajectories .* score it again"):
        read_trajectory(tmp_path / "out", ids[0])


@pytest.mark.parametrize("score", ["confidence", "forgetting_events", "correctness"])
def test_split_half_reliability_on_the_cluster_is_the_in_process_figure(tmp_path, client, score):
    # 5 runs of the same examples; forgetting_events and correctness take few distinct values: many tied ranks
    root = tmp_path / "ds"
    for seed in range(5):
        write_log(root / f"seed-{seed}", messy_epochs(n=150, epochs=4, seed=seed), "parquet")
    names = find_runs(root)
    want = split_half_reliability([compute_stats(root / n) for n in names], score, n_splits=7, seed=3)
    pool_runs_dask([root / n for n in names], tmp_path / "out", names=names, client=client, partition_rows=40)
    got = split_half_reliability_dask(
        [tmp_path / "out" / "runs" / n for n in names], score, n_splits=7, seed=3, client=client, partition_rows=40
    )
    assert got.n_runs == want.n_runs == 5
    assert abs(got.split_half - want.split_half) < 1e-9 and abs(got.full - want.full) < 1e-9
    assert 0 < got.split_half < 1


def test_split_half_reliability_on_the_cluster_needs_the_same_examples(tmp_path, client):
    root = tmp_path / "ds"
    for seed in range(2):
        epochs = messy_epochs(n=60, epochs=2, seed=seed)
        gone = epochs[0][0]["id"]  # seed-0 never logs this example
        write_log(
            root / f"seed-{seed}", epochs if seed else [[r for r in e if r["id"] != gone] for e in epochs], "parquet"
        )
    names = find_runs(root)
    pool_runs_dask([root / n for n in names], tmp_path / "out", names=names, client=client)
    with pytest.raises(LogError, match=r"the same examples: seed-0 \(59 ids\), seed-1 \(60 ids\)"):
        split_half_reliability_dask([tmp_path / "out" / "runs" / n for n in names], "confidence", names=names)
    # as many examples, not the same ones: named by an id that one run lacks
    for seed in range(2):
        epochs = messy_epochs(n=60, epochs=2, seed=seed)
        gone = epochs[0][seed]["id"]
        write_log(root / f"seed-{seed}", [[r for r in e if r["id"] != gone] for e in epochs], "parquet")
    pool_runs_dask([root / n for n in names], tmp_path / "out2", names=names, client=client)
    with pytest.raises(LogError, match=r"the same examples: id \d+ is not in seed-[01]"):
        split_half_reliability_dask([tmp_path / "out2" / "runs" / n for n in names], "confidence", names=names)


def test_the_command_line_gives_reliability_from_a_pool_on_the_cluster(tmp_path, client, capsys):
    root = tmp_path / "ds"
    for seed in range(4):
        write_log(root / f"seed-{seed}", messy_epochs(n=80, epochs=3, seed=seed), "parquet")
    address = client.scheduler.address
    assert main(["reliability", str(root), "--scores", "confidence,aum", "--splits", "5"]) == 0
    local = capsys.readouterr().out
    argv = ["--engine", "dask", "--scheduler", address]
    assert main(["stats", str(root), "--pool", *argv, "--out", str(tmp_path / "pool")]) == 0
    capsys.readouterr()
    assert main(["reliability", str(tmp_path / "pool"), "--scores", "confidence,aum", "--splits", "5", *argv]) == 0
    assert capsys.readouterr().out == local  # the same runs, splits and figures, to the 4 printed decimals
    assert main(["reliability", str(root), *argv]) == 2
    assert "not the folder of a pool of 2 or more runs" in capsys.readouterr().err


def test_a_partition_whose_rows_arrive_out_of_order_folds_as_in_process(tmp_path):
    # the shuffle keeps the read units' order today; a partition in any order must give the same table
    import cartography_core.cluster as cluster

    run_dir = tmp_path / "ddp"
    for e in range(3):
        d = run_dir / "dynamics" / f"epoch_{e}"
        d.mkdir(parents=True)
        for r, part in enumerate([list(range(0, 40)), list(range(40, 79)) + [0]]):  # id 0 padded on rank 1
            z = [[float((i * (e + 1)) % 5) + 10 * r, 1.0, 0.5] for i in part]
            pq.write_table(pa.table({"id": part, "label": [i % 3 for i in part], "logits": z}), d / f"part-{r}.parquet")
    (run_dir / "run.json").write_text(json.dumps({"world_size": 2}))
    run = open_run(run_dir)
    first = cluster._First(3, "logits", False, "float64")  # the files hold float64 logits
    files = [(ef.epoch, path) for ef in run.epochs for path in ef.paths]
    units = [cluster._Unit(epoch, i, path, None) for i, (epoch, path) in enumerate(files)]
    frame = pd.concat([cluster._read_unit(u, run, first) for u in units], ignore_index=True)
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    out = tmp_path / "out"
    out.mkdir()
    n, counts, size = cluster._fold_part(shuffled, 0, run, run.epochs, False, first, None, out)
    assert size == len(shuffled) * (24 + 8 * 3)
    assert n == 79 and counts[:, 1].tolist() == [1, 1, 1]  # one padding row per epoch, dropped
    got = pq.read_table(out / "part-00000.parquet")
    assert_same_table(got.replace_schema_metadata(None), compute_stats(run).replace_schema_metadata(None))


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 endpoint on localhost (moto's server) with test credentials in the environment, as a user's cloud
    configuration would give them: nothing on the command line."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(100):  # up within ~10 s
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield env
    finally:
        server.terminate()
        server.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_runs_in_an_s3_bucket_are_read_by_both_engines_and_the_workers(tmp_path, client, s3):
    import s3fs

    local = tmp_path / "logs" / "ds"
    for seed in range(2):  # per-rank part files, string ids, several runs of one dataset
        write_log(local / f"seed-{seed}", messy_epochs(n=120, seed=seed, string_ids=True), "parts")
    fs = s3fs.S3FileSystem()
    fs.mkdir("carto")
    fs.put(str(tmp_path / "logs"), "carto/logs", recursive=True)
    client.run(lambda env=s3: os.environ.update(env))  # the workers' own cloud configuration
    try:
        assert find_runs("s3://carto/logs") == ["ds/seed-0", "ds/seed-1"]
        want = compute_stats(local / "seed-0")
        assert_same_table(compute_stats("s3://carto/logs/ds/seed-0"), want)
        compute_stats_dask("s3://carto/logs/ds/seed-0", "s3://carto/out/one", client=client, partition_rows=50)
        assert_same_table(read_stats("s3://carto/out/one"), want)
        names = ["seed-0", "seed-1"]
        runs = [f"s3://carto/logs/ds/{n}" for n in names]
        pool_runs_dask(runs, "s3://carto/out/pool", names=names, client=client, partition_rows=50)
        assert_same_table(
            read_stats("s3://carto/out/pool"), pool_runs([compute_stats(local / n) for n in names], names)
        )
        with pytest.raises(LogError, match="folder holds a finished result"):
            compute_stats_dask(runs[0], "s3://carto/out/one", client=client)
    finally:
        client.run(lambda keys=tuple(s3): [os.environ.pop(k, None) for k in keys])


def test_runs_recorded_from_different_passes_are_refused_before_any_scoring(tmp_path):
    rows = [{"id": i, "label": i % 2, "logits": [float(i % 3), 1.0]} for i in range(8)]
    for name, recorded in (("a", "train"), ("b", "eval")):
        write_log(tmp_path / name, [rows, rows], "parquet", meta={"pass": recorded})
    with pytest.raises(LogError, match="a records the logits of the train pass but b those of the eval pass"):
        pool_runs_dask([tmp_path / "a", tmp_path / "b"], tmp_path / "out", names=["a", "b"], client=None)
    assert not (tmp_path / "out").exists()  # refused before a cluster was started or anything written


def test_split_half_reliability_on_the_cluster_refuses_runs_with_other_gold_labels(tmp_path, client):
    root = tmp_path / "ds"
    for seed in range(3):
        epochs = messy_epochs(n=60, epochs=2, seed=seed)
        if seed == 2:  # a retrain after relabeling one example
            moved = epochs[0][5]["id"]
            epochs = [[{**r, "label": (r["label"] + 1) % 3} if r["id"] == moved else r for r in e] for e in epochs]
        write_log(root / f"seed-{seed}", epochs, "parquet")
    names = find_runs(root)
    for n in names:
        compute_stats_dask(root / n, tmp_path / "out" / n, client=client, partition_rows=20)
    datasets = [tmp_path / "out" / n for n in names]
    with pytest.raises(LogError, match=rf"seed-2: id {moved} has gold label \d, seed-0 has \d"):
        split_half_reliability_dask(datasets, "confidence", names=names, client=client, partition_rows=20)
    assert split_half_reliability_dask(datasets[:2], "confidence", names=names[:2], client=client).n_runs == 2
