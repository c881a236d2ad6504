"""Recorder overhead: a small MLP trained on CPU with and without ``DynamicsRecorder``.

    python bench/bench_recorder.py     # from the repository root; ~1 minute

Epochs alternate between recorded and bare runs of the same loop (same data, same model size), in pairs
whose order alternates too, so both see the same machine load; the overhead is the median over pairs of
(recorded / bare - 1), ``end_epoch`` (the parquet write) included. CPU time of the whole process (all
threads: torch's, the writer's) is compared the same way. The time spent inside ``log`` and ``end_epoch``
themselves (what stalls the loop; the background writer thread is not in it) is reported too: on a shared
machine it is far less noisy than the wall-clock difference. Appends to bench/results/recorder.md.
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

N, D, H, K, BATCH, EPOCHS = 20_000, 256, 256, 10, 64, 24


def epoch(model, opt, x, y, rec=None) -> tuple[float, float, float]:
    """(wall seconds of the epoch, seconds inside the recorder's calls, CPU seconds of the process)."""
    t0, c0, inside = time.perf_counter(), time.process_time(), 0.0
    for rows in torch.randperm(N).split(BATCH):
        target = y[rows]
        logits = model(x[rows])
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            t1 = time.perf_counter()
            rec.log(rows, logits, target)
            inside += time.perf_counter() - t1
    if rec is not None:
        t1 = time.perf_counter()
        rec.end_epoch()
        inside += time.perf_counter() - t1
    return time.perf_counter() - t0, inside, time.process_time() - c0


def main() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(N, D), torch.randint(0, K, (N,))
    model = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, K))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    bare, recorded, inside, cpu = [], [], [], {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        rec = DynamicsRecorder(Path(tmp) / "run")
        epoch(model, opt, x, y)  # warm-up
        epoch(model, opt, x, y, rec)
        for i in range(EPOCHS):
            for recording in (False, True) if i % 2 else (True, False):
                wall, spent, used = epoch(model, opt, x, y, rec if recording else None)
                (recorded if recording else bare).append(wall)
                cpu[recording].append(used)
                if recording:
                    inside.append(spent)
    b, r = statistics.median(bare), statistics.median(recorded)
    pair = statistics.median(rb / bb - 1 for rb, bb in zip(recorded, bare))
    cpu_pair = statistics.median(rb / bb - 1 for rb, bb in zip(cpu[True], cpu[False]))
    steps = N / BATCH
    line = (
        f"- {time.strftime('%Y-%m-%d %H:%M')}: MLP {D}-{H}-{H}-{K}, {N:,} examples, batches of {BATCH}, "
        f"torch {torch.__version__} on {torch.get_num_threads()} threads: epoch {b:.3f} s bare, {r:.3f} s recorded "
        f"(medians of {EPOCHS}); overhead {100 * pair:.1f}% (median of pairs), CPU time of all threads "
        f"{100 * cpu_pair:+.1f}%; inside log and end_epoch "
        f"{1e6 * statistics.median(inside) / steps:.0f} us per step, {100 * statistics.median(inside) / b:.1f}% of "
        "a bare epoch"
    )
    print(line)
    with open(ROOT / "bench" / "results" / "recorder.md", "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
