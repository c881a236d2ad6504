"""Measure label-error detection: inject label noise, then score rankings and flags against it.

Noise at rate r replaces exactly ``round(r * N)`` labels, chosen at random, by another class:

    uniform      a uniformly random other class
    confusable   the class most like the gold one (``nearest_classes``: highest cosine similarity between
                 class centroids of TF-IDF rows), so flips land where a model and a person would confuse them

A ranking (higher ``suspicion`` = more likely mislabeled) is scored against the flipped indicator by:

    auroc                 P(a flipped row outranks a clean row), ties counting 1/2 (scikit-learn)
    average_precision     sum_n (R_n - R_{n-1}) P_n over the ranking's thresholds (scikit-learn)
    precision_at_k        flipped share of the k highest rows, k = number flipped (ties by row order); at this
                          k precision equals recall
    found_in_top[q]       share of all flips among the floor(q * N) highest rows, q in ``TOP_FRACTIONS``

and a set of flagged rows by its precision, recall and size against the number flipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import LogError

NOISE_KINDS = ("uniform", "confusable")
TOP_FRACTIONS = (0.01, 0.05, 0.10)


def nearest_classes(texts: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) for each class the other class whose TF-IDF centroid (word 1-2 grams) is most cosine-similar."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from .train.config import TrainConfig  # the built-in trainer's TF-IDF settings (no torch import)

    d = TrainConfig()
    x = TfidfVectorizer(ngram_range=(1, 2), min_df=d.min_df, sublinear_tf=True, max_features=d.max_features)
    x = x.fit_transform(texts)
    onehot = np.zeros((n_classes, len(labels)))
    onehot[labels, np.arange(len(labels))] = 1.0
    centroids = np.asarray(onehot @ x)  # (K, V) class sums
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    sim = centroids @ centroids.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def flip_labels(
    labels: np.ndarray, n_classes: int, rate: float, seed: int, *, targets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped mask), both (N,): ``round(rate * N)`` rows moved to another class, uniformly
    at random, or to ``targets[label]`` (K,) when given (confusable noise)."""
    if not 0 <= rate <= 1 or n_classes < 2:
        raise LogError(f"flip_labels needs 0 <= rate <= 1 and at least 2 classes, got rate {rate}, {n_classes} classes")
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[rng.choice(len(labels), size=round(rate * len(labels)), replace=False)] = True
    noisy = np.array(labels, copy=True)
    if targets is None:
        noisy[flipped] = (noisy[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    else:
        noisy[flipped] = np.asarray(targets)[noisy[flipped]]
    return noisy, flipped


@dataclass(frozen=True)
class Detection:
    auroc: float
    average_precision: float
    precision_at_k: float  # k = number of flipped labels; ties in the score broken by row order
    false_negative_rate_at_k: float
    found_in_top: dict[float, float] = field(default_factory=dict)  # q -> share of flips in the top floor(q N)


def detection_scores(flipped: np.ndarray, suspicion: np.ndarray) -> Detection:
    """How well ``suspicion`` (N,), higher = more likely mislabeled, ranks the ``flipped`` (N,) rows first."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # scikit-learn loads only for metrics

    k, n = int(flipped.sum()), len(flipped)
    if k in (0, n):
        raise LogError("detection_scores needs both flipped and clean rows")
    ranked = flipped[np.argsort(-suspicion, kind="stable")]  # (N,) flipped indicator, most suspect first
    found = np.cumsum(ranked)  # found[j - 1]: flips among the j most suspect rows
    top = {q: float(found[int(q * n) - 1] / k) if int(q * n) else 0.0 for q in TOP_FRACTIONS}
    return Detection(
        auroc=float(roc_auc_score(flipped, suspicion)),
        average_precision=float(average_precision_score(flipped, suspicion)),
        precision_at_k=float(found[k - 1] / k),
        false_negative_rate_at_k=float(1 - found[k - 1] / k),
        found_in_top=top,
    )


@dataclass(frozen=True)
class FlagQuality:
    flagged: int  # rows flagged (the estimated number of label errors)
    flipped: int  # rows truly flipped
    precision: float  # flipped share of the flagged rows (0 when none flagged)
    recall: float  # flagged share of the flipped rows


def flag_quality(flipped: np.ndarray, flags: np.ndarray) -> FlagQuality:
    """Precision and recall of the flagged rows ``flags`` (N,) bool against ``flipped`` (N,) bool."""
    hits, n_flag, k = int((flags & flipped).sum()), int(flags.sum()), int(flipped.sum())
    return FlagQuality(n_flag, k, hits / n_flag if n_flag else 0.0, hits / k if k else 0.0)
