"""Click an example -> its trajectory: the disk cache's memory-mapped per-epoch arrays against reading every
epoch file for that one example (what the dashboard did above 50M example-epochs), and what keeping the
arrays costs the scoring pass.

    python bench/bench_trajectory.py [--n 10000000] [--epochs 10]     # ~10 minutes at 10M on 2 cores

Same run, same machine: scoring with ``compute_stats`` vs ``cached_stats`` into an empty cache (score + keep
the arrays + write), then for 7 random examples: ``trajectory`` (reads the logs) vs ``cached_epochs`` +
``Trajectories.from_matrix`` + ``.of`` (a fresh memory map each time, as a new server process would). Medians.
Appends to bench/results/trajectory.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_stats import DATA, make_parquet_log  # noqa: E402

from cartography_core import compute_stats, open_run  # noqa: E402
from cartography_core.dashboard.cache import cached_epochs, cached_stats, flush  # noqa: E402
from cartography_core.dashboard.datamap import Trajectories, trajectory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    run = open_run(make_parquet_log(DATA / f"traj_{args.n}x{args.epochs}", args.n, args.epochs, 3))
    t0 = time.perf_counter()
    table = compute_stats(run)
    t_stats = time.perf_counter() - t0
    cache = Path(tempfile.mkdtemp(prefix="traj-cache-", dir=DATA))
    try:
        t0 = time.perf_counter()
        cached_stats(run, cache)
        flush()  # the entry is written by a background thread: time the whole write
        t_cached = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in cache.glob("*.npy"))
        ids = table["id"].to_numpy()
        picks = np.random.default_rng(0).choice(ids, 7, replace=False)
        labels = table["label"].to_numpy()
        mapped, scanned = [], []
        for example in picks:
            t0 = time.perf_counter()
            got = Trajectories.from_matrix(cached_epochs(run, cache), ids, labels).of(example)
            mapped.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            want = trajectory(run, example)
            scanned.append(time.perf_counter() - t0)
            assert got["epoch"].equals(want["epoch"]) and got["pred"].equals(want["pred"])
    finally:
        shutil.rmtree(cache)
    logs = sum(p.stat().st_size for p in run.path.rglob("*.parquet"))
    line = (
        f"- {time.strftime('%Y-%m-%d %H:%M')}, {args.n:,} examples x {args.epochs} epochs x 3 classes "
        f"({logs / 1e9:.2f} GB of parquet logs): one example's trajectory, median of 7: memory-mapped from the "
        f"cache {statistics.median(mapped) * 1e3:.1f} ms (incl. the id lookup) vs reading every epoch file "
        f"{statistics.median(scanned):.2f} s; scoring {t_stats:.1f} s without the arrays, {t_cached:.1f} s into the "
        f"cache with them ({size / 1e6:.0f} MB of .npy)"
    )
    print(line)
    with open(ROOT / "bench" / "results" / "trajectory.md", "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
