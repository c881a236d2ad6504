"""Label-error detection on real data: flip 10% of the labels, train, rank by confidence (lowest first).

    python bench/bench_noise.py      # from the repository root, after sample_logs/ exists; ~1 minute

For each sample dataset (its examples.parquet holds the real texts and labels) and seeds 0-2: AUROC and
average precision of ``-confidence`` against the flipped indicator, and precision at k = number flipped.
Results are appended to bench/results/noise.md; tests/test_train.py asserts bounds below these numbers.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cartography_core import compute_stats  # noqa: E402
from cartography_core.evaluate import Detection, detection_scores, flip_labels  # noqa: E402
from cartography_core.train.trainer import LabeledData, TrainConfig, train_run  # noqa: E402

CONFIGS = {"rotten_tomatoes": TrainConfig(), "sms_spam": TrainConfig(), "trec": TrainConfig(lr=5e-3, batch_size=32)}


def noisy_detection(data: LabeledData, config: TrainConfig, seed: int, rate: float = 0.1) -> Detection:
    noisy, flipped = flip_labels(data.labels, len(data.label_names), rate, seed)
    with tempfile.TemporaryDirectory() as tmp:
        train_run(replace(data, labels=noisy), Path(tmp) / "run", seed=seed, config=config, progress=False)
        stats = compute_stats(Path(tmp) / "run")
    is_flipped = flipped[np.searchsorted(data.ids, stats["id"].to_numpy())]  # training rows only
    return detection_scores(is_flipped, -stats["confidence"].to_numpy())


def load(folder: str) -> LabeledData:
    t = pq.read_table(ROOT / "sample_logs" / folder / "examples.parquet")
    names = [n for _, n in sorted(set(zip(t["label"].to_pylist(), t["label_name"].to_pylist())))]
    return LabeledData(
        t["id"].to_numpy(), t["text"].to_numpy(zero_copy_only=False), t["label"].to_numpy(), names, folder
    )


def main() -> None:
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')}: 10% uniform label flips, rank by lowest confidence\n"]
    for folder, config in CONFIGS.items():
        data = load(folder)
        res = [noisy_detection(data, config, seed) for seed in range(3)]
        fmt = {key: ", ".join(f"{getattr(r, key):.3f}" for r in res) for key in Detection.__dataclass_fields__}
        lines.append(
            f"- {folder}: AUROC {fmt['auroc']}; average precision {fmt['average_precision']}; "
            f"precision at k {fmt['precision_at_k']}"
        )
        print(lines[-1], flush=True)
    with open(ROOT / "bench" / "results" / "noise.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
