"""Recorder overhead: a small MLP trained on CPU with and without ``DynamicsRecorder``.

    python bench/bench_recorder.py     # from the repository root; ~1 minute

Epochs alternate between recorded and bare runs of the same loop (same data, same model size), so both
see the same machine load; the overhead is the ratio of median epoch times, ``end_epoch`` (the parquet
write) included. Appends to bench/results/recorder.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cartography_core.record import DynamicsRecorder  # noqa: E402

N, D, H, K, BATCH, EPOCHS = 20_000, 256, 256, 10, 64, 12


def epoch(model, opt, x, y, rec=None) -> float:
    t0 = time.perf_counter()
    for rows in torch.randperm(N).split(BATCH):
        logits = model(x[rows])
        loss = F.cross_entropy(logits, y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.log(rows, logits, y[rows])
    if rec is not None:
        rec.end_epoch()
    return time.perf_counter() - t0


def main() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(N, D), torch.randint(0, K, (N,))
    model = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, K))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    bare, recorded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        rec = DynamicsRecorder(Path(tmp) / "run")
        epoch(model, opt, x, y)  # warm-up
        for _ in range(EPOCHS):
            bare.append(epoch(model, opt, x, y))
            recorded.append(epoch(model, opt, x, y, rec))
    b, r = statistics.median(bare), statistics.median(recorded)
    line = (
        f"- {time.strftime('%Y-%m-%d %H:%M')}: MLP {D}-{H}-{H}-{K}, {N:,} examples, batches of {BATCH}, "
        f"torch {torch.__version__} on {torch.get_num_threads()} threads: epoch {b:.3f} s bare, {r:.3f} s recorded "
        f"(medians of {EPOCHS}); overhead {100 * (r / b - 1):.1f}% ({1e6 * (r - b) / (N / BATCH):.0f} us per step)"
    )
    print(line)
    with open(ROOT / "bench" / "results" / "recorder.md", "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
