"""Benchmark ``stats --engine dask`` on a LocalCluster against the in-process engine, on the same log.

Run by hand from the repository root (the 10M log takes ~2 GB under bench/data/ and a few minutes to write):

    python bench/bench_cluster.py [--n 10000000] [--epochs 10] [--workers 2] [--partition-rows 524288 ...]

Measures, in one run: the in-process engine's wall time and peak resident memory (a fresh subprocess each);
for each ``--partition-rows``, the Dask engine's wall time, the peak resident memory of each worker process
(polled every 0.2 s), the bytes entering the shuffle, and that both engines give the same table. Results are
appended to bench/results/cluster.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_stats import DATA, make_parquet_log  # noqa: E402

DASHBOARD = """
import resource, sys, time
from cartography_core.dashboard.precomputed import open_dataset, overview, top_rows, with_texts
ds = open_dataset(sys.argv[1])
t = time.perf_counter(); ov = overview(ds); t_map = time.perf_counter() - t
t = time.perf_counter()
rows = top_rows(ds, "confidence", k=100, region="hard-to-learn")
t_page = time.perf_counter() - t
t = time.perf_counter(); traj = ds.trajectory(rows["id"][0].as_py()); t_traj = time.perf_counter() - t
print(t_map, t_page, t_traj, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

IN_PROCESS = """
import resource, sys, time
from cartography_core.stats import compute_stats
t = time.perf_counter()
table = compute_stats(sys.argv[1])
wall = time.perf_counter() - t
table.to_pandas()[["id"]].head()
import pyarrow.parquet as pq
pq.write_table(table, sys.argv[2])
print(wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def in_process(run: Path, out: Path) -> tuple[float, int]:
    res = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(run), str(out)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    wall, rss = res.stdout.split()
    return float(wall), int(rss)


def on_cluster(run: Path, out: Path, workers: int, partition_rows: int):
    import psutil
    from dask.distributed import Client, LocalCluster

    from cartography_core.cluster import compute_stats_dask

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(lambda: __import__("os").getpid())  # worker address -> pid
        peak = dict.fromkeys(pids, 0)
        done = threading.Event()

        def poll() -> None:
            procs = {a: psutil.Process(p) for a, p in pids.items()}
            while not done.is_set():
                for a, proc in procs.items():
                    try:
                        peak[a] = max(peak[a], proc.memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass
                time.sleep(0.2)

        base = {a: psutil.Process(p).memory_info().rss for a, p in pids.items()}
        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        t = time.perf_counter()
        result = compute_stats_dask(run, out, client=client, partition_rows=partition_rows, overwrite=True)
        wall = time.perf_counter() - t
        done.set()
        watcher.join()
    return wall, result, sorted(peak.values()), sorted(base.values())


def same(a_path: Path, b_dir: Path) -> bool:
    import numpy as np
    import pyarrow.parquet as pq

    from cartography_core.cluster import read_stats

    a, b = pq.read_table(a_path), read_stats(b_dir)
    for name in a.column_names:
        x, y = a[name], b[name]
        if x.null_count != y.null_count:
            return False
        if x.type in ("double", "float"):
            if not np.allclose(x.to_numpy(zero_copy_only=False), y.to_numpy(zero_copy_only=False), rtol=0, atol=1e-9):
                return False
        elif not x.equals(y):
            return False
    return True


def dashboard(out: Path) -> tuple[float, float, float, int]:
    """The dashboard's dataset page on a result, in a fresh process: (map scan s, page of 100 s, one
    trajectory s, peak RSS bytes)."""
    res = subprocess.run(
        [sys.executable, "-c", DASHBOARD, str(out)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    t_map, t_page, t_traj, rss = res.stdout.split()
    return float(t_map), float(t_page), float(t_traj), int(rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-rows", type=int, nargs="+", default=[1 << 19])
    ap.add_argument(
        "--p2p-buffer",
        default=None,
        help="the workers' distributed.p2p.comm.buffer (dask's default: 1 GiB), e.g. '256 MiB'",
    )
    args = ap.parse_args()
    if args.p2p_buffer:  # spawned workers read dask's configuration from the environment
        os.environ["DASK_DISTRIBUTED__P2P__COMM__BUFFER"] = args.p2p_buffer
    run = make_parquet_log(DATA / f"traj_{args.n}x{args.epochs}", args.n, args.epochs, 3)
    log_bytes = sum(p.stat().st_size for p in (run / "dynamics").iterdir())
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')}: {args.n:,} examples x {args.epochs} epochs x 3 classes "
        f"({log_bytes / 1e9:.2f} GB of parquet), LocalCluster of {args.workers} workers x 1 thread, "
        f"p2p comm buffer {args.p2p_buffer or '1 GiB (default)'}\n",
        "| engine | partition_rows | partitions | wall | peak RSS | bytes shuffled | same table |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        ref = Path(tmp) / "in_process.parquet"
        wall, rss = in_process(run, ref)
        lines.append(f"| in-process | | | {wall:.1f} s | {rss / 1e9:.2f} GB | | |")
        print(lines[-1], flush=True)
        for rows in args.partition_rows:
            out = Path(tmp) / f"dask_{rows}"
            wall, result, peaks, base = on_cluster(run, out, args.workers, rows)
            shown = " / ".join(f"{p / 1e9:.2f}" for p in peaks)
            lines.append(
                f"| dask | {rows:,} | {result.n_partitions} | {wall:.1f} s | {shown} GB per worker "
                f"(idle {base[0] / 1e9:.2f}) | {result.bytes_shuffled / 1e9:.2f} GB | {same(ref, out)} |"
            )
            print(lines[-1], flush=True)
        t_map, t_page, t_traj, rss = dashboard(out)  # the last result: the dashboard's page on a laptop
        lines.append(
            f"\ndashboard page on that result, one process: map, histograms and counts (one scan) {t_map:.1f} s, "
            f"a page of 100 hard-to-learn by confidence {t_page:.1f} s, one example's epochs {t_traj * 1000:.0f} ms; "
            f"peak RSS {rss / 1e9:.2f} GB"
        )
        print(lines[-1], flush=True)
    lines.append(f"\nclient process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    with open(ROOT / "bench" / "results" / "cluster.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    print(json.dumps({"written": "bench/results/cluster.md"}))


if __name__ == "__main__":
    main()
