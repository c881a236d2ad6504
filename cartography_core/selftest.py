"""A noise self-test on the user's own data: flip a known share of labels, train, and measure how well every
score finds the flips (``python -m cartography_core selftest``).

For each seed s: ``flip_labels`` (uniform or confusable, ``evaluate.py``) with seed s, one run of the built-in
trainer with seed s, ``compute_stats``; then for every ranking score of ``scores.SCORES`` the metrics of
``evaluate.detection_scores`` on the logged (training) rows, and the ``label_issue`` flag's precision and
recall. Scores are read in their "harder" direction; a null learned epoch (never learned) is the hardest.
The report holds every seed's numbers and their mean; ``write_plot`` draws precision-recall curves.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from .errors import LogError
from .evaluate import (
    TOP_FRACTIONS,
    Detection,
    FlagQuality,
    detection_scores,
    flag_quality,
    flip_labels,
    nearest_classes,
)
from .io import atomic_write, write_json
from .label_issues import FLAG, flag_rule
from .scores import SCORES
from .stats import compute_stats
from .train.config import TrainConfig, label_issue_rule


def suspicion(table: pa.Table, score: str) -> np.ndarray | None:
    """(N,) higher = more likely mislabeled, from ``score`` in its "harder" direction; None when the score is
    null for every row (aum of a probability log). A null learned epoch ranks above every epoch."""
    v = table[score].to_numpy(zero_copy_only=False).astype(np.float64)
    if np.isnan(v).all():
        return None
    v = v if SCORES[score].harder == "higher" else -v
    return np.where(np.isnan(v), np.nanmax(v) + 1.0, v)


@dataclass(frozen=True)
class SeedResult:
    seed: int
    flipped: int
    rows: int
    scores: dict[str, Detection]
    flag: FlagQuality
    best_epoch: int | None
    epochs: int
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # score -> (precision, recall); not written to JSON


@dataclass(frozen=True)
class SelftestReport:
    data: str
    noise: float
    kind: str
    config: dict
    seeds: list[SeedResult]

    def mean(self, score: str, metric: str) -> float:
        return float(np.mean([getattr(s.scores[score], metric) for s in self.seeds]))

    def ranked_scores(self) -> list[str]:
        """Scores present in every seed, by mean average precision, best first."""
        names = set.intersection(*(set(s.scores) for s in self.seeds))
        return sorted(names, key=lambda n: (-self.mean(n, "average_precision"), n))

    def to_json(self) -> dict:
        def det(d: Detection) -> dict:
            return {**asdict(d), "found_in_top": {f"{q:.0%}": v for q, v in d.found_in_top.items()}}

        summary = {
            n: {
                m: self.mean(n, m) for m in ("auroc", "average_precision", "precision_at_k", "false_negative_rate_at_k")
            }
            | {
                f"found_in_top_{q:.0%}": float(np.mean([s.scores[n].found_in_top[q] for s in self.seeds]))
                for q in self.seeds[0].scores[n].found_in_top
            }
            for n in self.ranked_scores()
        }
        return {
            "data": self.data,
            "noise": self.noise,
            "kind": self.kind,
            "trainer": self.config,
            "recommended_score": self.ranked_scores()[0],
            "mean_over_seeds": summary,
            "label_issue_flag": {
                m: float(np.mean([getattr(s.flag, m) for s in self.seeds]))
                for m in ("flagged", "flipped", "precision", "recall")
            },
            "seeds": [
                {
                    "seed": s.seed,
                    "rows": s.rows,
                    "flipped": s.flipped,
                    "epochs": s.epochs,
                    "best_epoch": s.best_epoch,
                    "scores": {n: det(d) for n, d in s.scores.items()},
                    "label_issue_flag": asdict(s.flag),
                }
                for s in self.seeds
            ],
        }


def evaluate_run(table: pa.Table, flipped: np.ndarray) -> tuple[dict[str, Detection], FlagQuality, dict]:
    """Metrics of every score and of the flag of one statistics table against ``flipped`` (aligned rows)."""
    from sklearn.metrics import precision_recall_curve

    found, curves = {}, {}
    for name in SCORES:
        s = suspicion(table, name)
        if s is not None:
            found[name] = detection_scores(flipped, s)
            precision, recall, _ = precision_recall_curve(flipped, s)
            curves[name] = (precision, recall)
    return found, flag_quality(flipped, table[FLAG].to_numpy(zero_copy_only=False)), curves


def run_selftest(
    data,
    *,
    noise: float = 0.1,
    kind: str = "uniform",
    seeds: list[int] = (0, 1, 2),
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
) -> SelftestReport:
    """Flip ``noise`` of ``data``'s labels (a ``train.trainer.LabeledData``) per seed, train, and measure."""
    from .train.trainer import train_run

    targets = nearest_classes(data.texts, data.labels, len(data.label_names)) if kind == "confusable" else None
    results = []
    for seed in tqdm(list(seeds), desc="self-test runs", disable=not progress):
        noisy, flipped = flip_labels(data.labels, len(data.label_names), noise, seed, targets=targets)
        with tempfile.TemporaryDirectory() as tmp:
            res = train_run(replace(data, labels=noisy), Path(tmp) / "run", seed=seed, config=config, progress=progress)
            table = compute_stats(Path(tmp) / "run")
        rows = pd.Index(data.ids).get_indexer(table["id"].to_numpy(zero_copy_only=False))  # logged rows
        scores, flag, curves = evaluate_run(table, flipped[rows])
        epochs = len(res.seconds_per_epoch)
        results.append(
            SeedResult(seed, int(flipped[rows].sum()), rows.size, scores, flag, res.best_epoch, epochs, curves)
        )
    return SelftestReport(data.name, noise, kind, asdict(config), results)


def trainer_line(config: dict) -> str:
    """The trainer a report measured, in words: model, features, learning rate, penalty, epochs."""
    stop = f", early stopping (patience {config['patience']})" if config["patience"] else ", no early stopping"
    return (
        f"{config['model']} on {config['features']}, lr {config['lr']:g} ({config['schedule']}), "
        f"weight decay {config['weight_decay']}, "
        f"at most {config['epochs']} epochs{stop}"
    )


def format_table(report: SelftestReport) -> str:
    """The terminal table: one row per score, means over seeds, best average precision first."""
    n = len(report.seeds)
    head = (
        f"{report.data}: {report.noise:.0%} {report.kind} flips, {n} seed{'s' * (n > 1)}, "
        f"{report.seeds[0].rows} rows scored, {report.seeds[0].flipped} flipped (seed {report.seeds[0].seed})\n"
        f"trainer: {trainer_line(report.config)}\n"
    )
    summary = report.to_json()  # the means the JSON file holds, printed as they are written
    lines = [f"{'score':28} {'AUROC':>6} {'AP':>6} {'P@k':>6} {'top1%':>6} {'top5%':>6} {'top10%':>6}"]
    for name, m in summary["mean_over_seeds"].items():  # best average precision first
        tops = [m[f"found_in_top_{q:.0%}"] for q in TOP_FRACTIONS]
        lines.append(
            f"{name:28} {m['auroc']:6.3f} {m['average_precision']:6.3f} {m['precision_at_k']:6.3f} "
            + " ".join(f"{t:6.3f}" for t in tops)
        )
    flag = summary["label_issue_flag"]
    lines.append(
        f"\nlabel_issue flag ({flag_rule({'label_issue_rule': label_issue_rule(TrainConfig(**report.config))})}): "
        f"{flag['flagged']:.0f} flagged for {flag['flipped']:.0f} flipped: "
        f"precision {flag['precision']:.3f}, recall {flag['recall']:.3f}"
    )
    lines.append(
        f"Scored: the training split (the trainer holds out {report.config['holdout']:.0%} of the rows for its "
        "held-out accuracy).\n"
        "P@k: precision among the k hardest rows, k = number flipped (there it equals recall); topq: share of all "
        "flips found among the hardest q of the rows (recall).\n"
        "Labels that were already wrong before the flips count here as false positives: on noisy data the "
        "flag's precision is a lower bound, and 'flagged' estimates flips plus the labels already wrong.\n"
        f"Highest average precision on this data: {summary['recommended_score']}: rank by it to review the likeliest "
        "errors first (the label_issue flag keeps its own rule, above)."
    )
    return head + "\n".join(lines)


def write_plot(report: SelftestReport, path: Path, top: int = 6) -> None:
    """Precision-recall curves of the ``top`` best scores (first seed), PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = report.seeds[0]
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    for name in report.ranked_scores()[:top]:
        precision, recall = seed.curves[name]
        ax.plot(recall, precision, label=f"{name} (AP {seed.scores[name].average_precision:.3f})", lw=1.4)
    q = seed.flag
    ax.scatter([q.recall], [q.precision], color="black", zorder=3, label=f"label_issue flag ({q.flagged} flagged)")
    ax.axhline(seed.flipped / seed.rows, color="grey", ls=":", lw=1, label="chance")
    ax.set(xlabel="recall (share of flips found)", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"{report.data}: {report.noise:.0%} {report.kind} flips, seed {seed.seed}", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


REPORT_FILES = ("selftest.json", "selftest.png")


def check_report_folder(out: Path, *, overwrite: bool) -> None:
    """Refuse ``out`` when it is not a folder, or holds a report and ``overwrite`` is not set."""
    if out.exists() and not out.is_dir():
        raise LogError(f"{out}: exists and is not a folder; --out names the folder for {' and '.join(REPORT_FILES)}")
    there = [name for name in REPORT_FILES if (out / name).exists()]
    if there and not overwrite:
        raise LogError(f"{out}: already holds {', '.join(there)}; use --force to replace, or another --out")


def write_report(report: SelftestReport, out: Path) -> tuple[Path, Path]:
    """``out/selftest.json`` and ``out/selftest.png``."""
    out.mkdir(parents=True, exist_ok=True)
    js, png = out / "selftest.json", out / "selftest.png"
    write_json(js, report.to_json())
    atomic_write(png, lambda tmp: write_plot(report, tmp))
    return js, png
