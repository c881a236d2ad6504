"""Measure label-error detection: inject uniform label noise, then score a ranking against it.

Uniform noise at rate r replaces exactly ``round(r * N)`` labels, chosen at random, by a random *other*
class. A ranking score (higher = more suspect, e.g. ``-confidence``) is compared with the flipped
indicator by AUROC, average precision, and precision and false-negative rate at k = number flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from .errors import LogError


def flip_labels(labels: np.ndarray, n_classes: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped mask), both (N,): ``round(rate * N)`` labels moved to a uniformly random other class."""
    if not 0 <= rate <= 1 or n_classes < 2:
        raise LogError(f"flip_labels needs 0 <= rate <= 1 and at least 2 classes, got rate {rate}, {n_classes} classes")
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[rng.choice(len(labels), size=round(rate * len(labels)), replace=False)] = True
    noisy = np.array(labels, copy=True)
    noisy[flipped] = (noisy[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return noisy, flipped


@dataclass(frozen=True)
class Detection:
    auroc: float
    average_precision: float
    precision_at_k: float  # k = number of flipped labels; ties in the score broken by row order
    false_negative_rate_at_k: float


def detection_scores(flipped: np.ndarray, suspicion: np.ndarray) -> Detection:
    """How well ``suspicion`` (N,), higher = more likely mislabeled, ranks the ``flipped`` (N,) rows first."""
    k = int(flipped.sum())
    if k in (0, len(flipped)):
        raise LogError("detection_scores needs both flipped and clean rows")
    top = flipped[np.argsort(-suspicion, kind="stable")[:k]]
    return Detection(
        auroc=float(roc_auc_score(flipped, suspicion)),
        average_precision=float(average_precision_score(flipped, suspicion)),
        precision_at_k=float(top.mean()),
        false_negative_rate_at_k=float(1 - top.sum() / k),
    )
