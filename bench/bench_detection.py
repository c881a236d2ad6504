"""Label-error detection against cleanlab, side by side in one run: flip 10% of the labels, then rank.

    pip install cleanlab==2.9.0            # benchmark-only; not a runtime dependency
    python bench/bench_detection.py        # from the repository root; ~30 minutes on 2 cores
    python bench/bench_detection.py --presets label-errors --noise-seeds 103,104,105 --runs 3

For each real dataset of ``sample_logs/`` (its examples.parquet holds the texts and true labels), each noise
kind (uniform; confusable: to the nearest class, the same as uniform for 2 classes) and noise seeds 100-102
(not the self-test's defaults):

- ours: the built-in trainer with each preset (``train.config.PRESETS``: map, the default, and label-errors),
  one run, ranked by every score; the ``label_issue`` flag's precision, recall and count; pooled over 1, 3
  and 5 runs (trainer seeds 0-4, same noisy labels; uniform);
- cleanlab: 5-fold cross-validated probabilities of logistic regression on the same features (each feature
  set a measured preset uses: TF-IDF word 1-2 grams, and with character 2-5 grams) and the same training
  rows, ranked by self-confidence, and ``find_label_issues``.

Results are appended to bench/results/detection.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cartography_core import compute_stats, pool_runs  # noqa: E402
from cartography_core.evaluate import detection_scores, flag_quality, flip_labels, nearest_classes  # noqa: E402
from cartography_core.label_issues import FLAG  # noqa: E402
from cartography_core.selftest import suspicion  # noqa: E402
from cartography_core.train.config import PRESETS  # noqa: E402
from cartography_core.train.trainer import LabeledData, TrainConfig, featurize, train_run  # noqa: E402

DATASETS = ("trec", "sms_spam", "rotten_tomatoes")
NOISE_SEEDS = (100, 101, 102)
SHOWN = ("aum", "margin", "confidence", "loss")


def load(folder: str) -> LabeledData:
    t = pq.read_table(ROOT / "sample_logs" / folder / "examples.parquet")
    names = [n for _, n in sorted(set(zip(t["label"].to_pylist(), t["label_name"].to_pylist())))]
    return LabeledData(
        t["id"].to_numpy(), t["text"].to_numpy(zero_copy_only=False), t["label"].to_numpy(), names, folder
    )


def cleanlab_side(data: LabeledData, rows: np.ndarray, flipped: np.ndarray, features: str) -> dict:
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, _, _ = featurize(data, rows, rows[:0], TrainConfig(features=features), False)
    y = data.labels[rows]
    probs = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=5, method="predict_proba")
    d = detection_scores(flipped, -probs[np.arange(len(y)), y])
    q = flag_quality(flipped, find_label_issues(y, probs))
    return {"auroc": d.auroc, "ap": d.average_precision, "flag": q}


def ours(data: LabeledData, flipped_all: np.ndarray, n_runs: int, config: TrainConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tables = []
        for s in range(n_runs):
            train_run(data, Path(tmp) / f"seed-{s}", seed=s, config=config, progress=False)
            tables.append(compute_stats(Path(tmp) / f"seed-{s}"))
    out = {}
    for r in sorted({1, min(3, n_runs), n_runs}):
        t = tables[0] if r == 1 else pool_runs(tables[:r])
        rows = pd.Index(data.ids).get_indexer(t["id"].to_numpy(zero_copy_only=False))
        flipped = flipped_all[rows]
        out[r] = {
            "scores": {n: detection_scores(flipped, suspicion(t, n)) for n in SHOWN},
            "flag": flag_quality(flipped, t[FLAG].to_numpy(zero_copy_only=False)),
            "rows": rows,
        }
    return out


def fmt_flag(q) -> str:
    return (
        f"P/R {q.precision:.3f}/{q.recall:.3f}, {q.flagged} flagged for {q.flipped} ({q.flagged / q.flipped - 1:+.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS), help="the trainer's presets to measure (a,b,...)")
    parser.add_argument("--noise-seeds", default=",".join(map(str, NOISE_SEEDS)), help="seeds of the flips (a,b,...)")
    parser.add_argument("--runs", type=int, default=5, help="runs pooled at most (uniform flips; 1, 3 and this)")
    args = parser.parse_args()
    args.presets = args.presets.split(",")
    noise_seeds = [int(x) for x in args.noise_seeds.split(",")]
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')}: 10% label flips, ours (presets {', '.join(args.presets)}) vs "
        "cleanlab (5-fold)\n"
    ]

    def say(text: str) -> None:
        lines.append(text)
        print(text, flush=True)

    for folder in DATASETS:
        data = load(folder)
        k = len(data.label_names)
        kinds = {"uniform": None}
        if k > 2:
            kinds["confusable"] = nearest_classes(data.texts, data.labels, k)
        for kind, targets in kinds.items():
            agg: dict[str, list] = {}
            for seed in noise_seeds:
                noisy, flipped = flip_labels(data.labels, k, 0.1, seed, targets=targets)
                noisy_data = replace(data, labels=noisy)
                rows = None
                for preset in args.presets:
                    t0 = time.perf_counter()
                    res = ours(noisy_data, flipped, args.runs if kind == "uniform" else 1, PRESETS[preset])
                    t_ours = time.perf_counter() - t0
                    rows = res[1]["rows"] if rows is None else rows
                    if not np.array_equal(rows, res[1]["rows"]):
                        raise SystemExit("the presets logged different rows; their rankings are not comparable")
                    one = res[1]
                    say(
                        f"- {folder} {kind} seed {seed}, preset {preset}: "
                        + "; ".join(f"{n} {d.auroc:.3f}/{d.average_precision:.3f}" for n, d in one["scores"].items())
                        + f" | flags: {fmt_flag(one['flag'])}"
                        + (
                            " | pooled aum "
                            + ", ".join(
                                f"{r} runs {v['scores']['aum'].auroc:.3f}/{v['scores']['aum'].average_precision:.3f}"
                                for r, v in res.items()
                            )
                            if len(res) > 1
                            else ""
                        )
                        + f" ({t_ours:.0f} s incl. pooling)"
                    )
                    for r, v in res.items():
                        a = v["scores"]["aum"]
                        agg.setdefault(f"{preset}, aum, {r} run{'s' * (r > 1)}", []).append(
                            (
                                a.auroc,
                                a.average_precision,
                                v["flag"].precision,
                                v["flag"].recall,
                                v["flag"].flagged / v["flag"].flipped,
                            )
                        )
                # cleanlab on every feature set a measured preset uses: the same inputs as ours
                for features in dict.fromkeys(PRESETS[p].features for p in args.presets):
                    t0 = time.perf_counter()
                    cl = cleanlab_side(noisy_data, rows, flipped[rows], features)
                    say(
                        f"- {folder} {kind} seed {seed}, cleanlab on {features}: self-confidence "
                        f"{cl['auroc']:.3f}/{cl['ap']:.3f} | flags: {fmt_flag(cl['flag'])} "
                        f"({time.perf_counter() - t0:.0f} s)"
                    )
                    agg.setdefault(f"cleanlab on {features}", []).append(
                        (
                            cl["auroc"],
                            cl["ap"],
                            cl["flag"].precision,
                            cl["flag"].recall,
                            cl["flag"].flagged / cl["flag"].flipped,
                        )
                    )
            seeds = ", ".join(map(str, noise_seeds))
            say(f"\n| {folder}, {kind}, seeds {seeds} | AUROC | AP | flag precision | flag recall | flagged/flipped |")
            say("| --- | --- | --- | --- | --- | --- |")
            for name, vals in agg.items():
                m = np.mean(vals, axis=0)
                say(f"| {name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} | {m[4]:.2f} |")
            say("")
    with open(ROOT / "bench" / "results" / "detection.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
