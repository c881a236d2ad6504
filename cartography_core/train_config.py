"""Hyper-parameters of the built-in trainer (``train.py``), importable without torch."""

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the built-in trainer (stored in ``run.json``)."""

    epochs: int = 6
    model: str = "mlp"  # "mlp" or "linear"
    features: str = "tfidf"  # "tfidf" (word 1-2 grams) or "minilm" (frozen sentence encoder, features.py)
    hidden: int = 32
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    holdout: float = 0.1  # fraction of rows held out for accuracy; 0 logs every row
    split_seed: int = 0
    min_df: int = 2
    max_features: int = 20_000
