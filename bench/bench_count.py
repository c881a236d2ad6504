"""The ``label_issue`` flag's count against training length, for each preset of the built-in trainer.

    python bench/bench_count.py [--presets label-errors]   # from the repository root; ~5-10 minutes on 2 cores

For each real dataset of ``sample_logs/`` with 10% uniform flips (noise seeds 103 and 104), one run per preset
trained for the longest length without early stopping (``patience=0``); with a constant learning rate a
run's first E epochs are exactly a run trained E epochs, scored with ``compute_stats(max_epochs=E)``; a
schedule that depends on the length (``linear``) gets one run per length.
For each length: aum's average precision, and the flag's precision, recall and count (flagged / flipped - 1).
Results are appended to bench/results/detection.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_detection import DATASETS, load  # noqa: E402

from cartography_core import compute_stats  # noqa: E402
from cartography_core.evaluate import detection_scores, flag_quality, flip_labels  # noqa: E402
from cartography_core.label_issues import FLAG  # noqa: E402
from cartography_core.selftest import suspicion  # noqa: E402
from cartography_core.train.config import PRESETS  # noqa: E402
from cartography_core.train.trainer import train_run  # noqa: E402

LENGTHS = (3, 5, 10, 20, 30)
NOISE_SEEDS = (103, 104)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS), help="the trainer's presets to measure (a,b,...)")
    presets = parser.parse_args().presets.split(",")
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')}: the flag's count against training length, per preset "
        f"(10% uniform flips, noise seeds {', '.join(map(str, NOISE_SEEDS))}, trainer seed 0, no early stopping)\n",
        "Each cell: aum AP, flag precision / recall, count (flagged / flipped - 1), after E epochs.\n",
        "| data, seed, preset | " + " | ".join(f"E = {e}" for e in LENGTHS) + " |",
        "| --- |" + " --- |" * len(LENGTHS),
    ]
    print("\n".join(lines), flush=True)
    for folder in DATASETS:
        data = load(folder)
        for seed in NOISE_SEEDS:
            noisy, flipped = flip_labels(data.labels, len(data.label_names), 0.1, seed)
            for preset in presets:
                config = PRESETS[preset]
                cells = []
                with tempfile.TemporaryDirectory() as tmp:
                    for e in LENGTHS:
                        run = Path(tmp) / ("run" if config.schedule == "constant" else f"run-{e}")
                        if not run.exists():
                            length = max(LENGTHS) if config.schedule == "constant" else e
                            with contextlib.redirect_stderr(io.StringIO()):
                                train_run(
                                    replace(data, labels=noisy),
                                    run,
                                    seed=0,
                                    config=replace(config, epochs=length, patience=0),
                                    progress=False,
                                )
                        t = compute_stats(run, max_epochs=e)
                        rows = pd.Index(data.ids).get_indexer(t["id"].to_numpy(zero_copy_only=False))
                        d = detection_scores(flipped[rows], suspicion(t, "aum"))
                        q = flag_quality(flipped[rows], t[FLAG].to_numpy(zero_copy_only=False))
                        cells.append(
                            f"{d.average_precision:.3f}, {q.precision:.2f} / {q.recall:.2f}, "
                            f"{q.flagged / q.flipped - 1:+.0%}"
                        )
                line = f"| {folder} {seed}, {preset} | " + " | ".join(cells) + " |"
                lines.append(line)
                print(line, flush=True)
    with open(ROOT / "bench" / "results" / "detection.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
