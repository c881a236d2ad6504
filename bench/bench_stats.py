"""Benchmark ``stats`` against pyarrow's bare read of the same columns, and on allenai's JSONL layout.

Run by hand from the repository root (takes a few minutes, writes logs under bench/data/):

    python bench/bench_stats.py [--n 1000000] [--epochs 10] [--repeats 3]
    python bench/bench_stats.py --n 10000000 --log bench/data/traj_10000000x10 --repeats 1 --skip-allenai

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.
Results are appended to bench/results/stats.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"


def make_parquet_log(path: Path, n: int, epochs: int, k: int, seed: int = 0) -> Path:
    if (path / "dynamics" / f"epoch_{epochs - 1}.parquet").exists():
        return path
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    ids = rng.permutation(10 * n)[:n]  # sparse int64 ids
    (path / "dynamics").mkdir(parents=True, exist_ok=True)
    for e in range(epochs):
        order = rng.permutation(n)
        logits = (rng.normal(size=(n, k)) + e * 0.3 * np.eye(k)[labels]).astype(np.float32)[order]
        values = pa.array(logits.ravel())
        table = pa.table(
            {
                "id": ids[order],
                "label": labels[order],
                "logits": pa.FixedSizeListArray.from_arrays(values, k).cast(pa.list_(pa.float32())),
            }
        )
        pq.write_table(table, path / "dynamics" / f"epoch_{e}.parquet")
    return path


def make_allenai_log(path: Path, n: int, epochs: int, k: int, seed: int = 1) -> Path:
    d = path / "training_dynamics"
    if (d / f"dynamics_epoch_{epochs - 1}.jsonl").exists():
        return path
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    d.mkdir(parents=True, exist_ok=True)
    for e in range(epochs):
        logits = rng.normal(size=(n, k))
        with open(d / f"dynamics_epoch_{e}.jsonl", "w") as fh:
            for i in rng.permutation(n):
                fh.write(
                    json.dumps(
                        {
                            "guid": int(i),
                            f"logits_epoch_{e}": [round(float(v), 6) for v in logits[i]],
                            "gold": int(labels[i]),
                        }
                    )
                    + "\n"
                )
    return path


# (imports, timed work): imports are outside the timer for both
CHILD = {
    "read": (
        "import pyarrow.parquet as pq, pathlib, sys",
        "for f in sorted(pathlib.Path(sys.argv[1], 'dynamics').glob('epoch_*.parquet')):\n"
        "    pq.read_table(f, columns=['id', 'label', 'logits'])",
    ),
    "stats": ("import sys\nfrom cartography_core import compute_stats", "compute_stats(sys.argv[1])"),
    # the floor of the command's output: the statistics table (already computed) written as zstd parquet
    "write": (
        "import os, sys, tempfile, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1])\n"
        "out = os.path.join(tempfile.mkdtemp(), 'out.parquet')",
        "pq.write_table(t, out, compression='zstd')",
    ),
}


def timed(kind: str, log: Path) -> tuple[float, float]:
    """(seconds, peak MiB) of one child process doing ``kind`` on ``log``."""
    imports, work = CHILD[kind]
    code = (
        f"import resource, time\n{imports}\nt0 = time.perf_counter()\n{work}\n"
        "print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(log)], cwd=ROOT, capture_output=True, text=True, check=True)
    secs, mib = out.stdout.split()
    return float(secs), float(mib)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--allenai-n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--log", type=Path, help="an existing log of n x epochs x 3 classes instead of a generated one")
    ap.add_argument("--skip-allenai", action="store_true")
    args = ap.parse_args()
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} on {subprocess.getoutput('nproc')} cores\n"]

    log = args.log or make_parquet_log(DATA / f"parquet_{args.n}x{args.epochs}", args.n, args.epochs, 3)
    read, stats = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        read.append(timed("read", log))
        stats.append(timed("stats", log))
    r, s = statistics.median(t for t, _ in read), statistics.median(t for t, _ in stats)
    cli = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "cartography_core",
            "stats",
            str(log),
            "--out",
            str(DATA / "out.parquet"),
            "--force",
        ]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        cli.append(time.perf_counter() - t0)
    w = statistics.median(timed("write", DATA / "out.parquet")[0] for _ in range(args.repeats))
    c = statistics.median(cli)
    lines.append(
        f"- parquet {args.n:,} x {args.epochs} epochs x 3 classes: pyarrow read {r:.2f} s (median of {args.repeats}), "
        f"stats {s:.2f} s, ratio {s / r:.2f}; peak memory read {max(m for _, m in read):.0f} MiB, "
        f"stats {max(m for _, m in stats):.0f} MiB; whole CLI command (start-up, imports, writing parquet) "
        f"{c:.2f} s against a bare read plus a bare write of its output {r:.2f} + {w:.2f} s, ratio {c / (r + w):.2f}"
    )
    if not args.skip_allenai:
        log = make_allenai_log(DATA / f"allenai_{args.allenai_n}x5", args.allenai_n, 5, 3)
        runs = [timed("stats", log) for _ in range(args.repeats)]
        med = statistics.median(t for t, _ in runs)
        lines.append(
            f"- allenai JSONL {args.allenai_n:,} x 5 epochs x 3 classes: stats {med:.2f} s "
            f"(median of {args.repeats}), peak memory {max(m for _, m in runs):.0f} MiB"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "bench" / "results" / "stats.md", "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
