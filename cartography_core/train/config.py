"""Hyper-parameters of the built-in trainer (``train.py``), importable without torch."""

import math
from dataclasses import dataclass

from ..errors import LogError
from ..label_issues import AUM, LATE

MODELS = ("mlp", "linear")
FEATURES = ("tfidf", "tfidf+char", "minilm")
RECORDS = ("train", "eval")
SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the built-in trainer (stored in ``run.json``); checked when made."""

    epochs: int = 30  # the most epochs; training stops earlier once held-out accuracy stops improving (patience)
    patience: int = 2  # stop after this many epochs without a better held-out accuracy; 0: train every epoch
    model: str = "mlp"  # "mlp" or "linear"
    # "tfidf": word 1-2 grams; "tfidf+char": those and character 2-5 grams inside word boundaries (spelling
    # variants, word pieces, punctuation: max_features of each); "minilm": a frozen sentence encoder (features.py)
    features: str = "tfidf"
    hidden: int = 32
    dropout: float = 0.5
    lr: float = 1e-3
    # "constant", or "linear": the learning rate falls step by step from lr to 0 at the last of ``epochs``, so
    # the weights settle at the optimum instead of hovering around it (Adam at a constant rate keeps moving)
    schedule: str = "constant"
    # L2 penalty (Adam's weight_decay, on every parameter); "auto": 1 / (training rows), which makes the linear
    # model's objective logistic regression's with C = 1: mean cross-entropy + ||W||^2 / (2 n)
    weight_decay: float | str = 0.0
    batch_size: int | None = None  # None: auto_batch_size(number of training rows)
    holdout: float = 0.1  # fraction of rows held out for accuracy; 0 logs every row
    split_seed: int = 0
    min_df: int = 2
    max_features: int = 20_000
    # which logits are recorded: "train", those of the training forward pass itself (dropout on, before each
    # example's own step: what Swayamdipta et al. and Pleiss et al.'s AUM use), or "eval", the model in eval mode
    # (dropout off) over every training row after the epoch's steps (one more forward pass an epoch; ranks
    # flipped labels slightly better and flags fewer, more precisely: bench/results/detection.md)
    record: str = "train"

    def __post_init__(self) -> None:
        problems = [
            f"epochs must be at least 1, got {self.epochs}" if self.epochs < 1 else "",
            f"model must be one of {', '.join(MODELS)}, got {self.model!r}" if self.model not in MODELS else "",
            f"features must be one of {', '.join(FEATURES)}, got {self.features!r}"
            if self.features not in FEATURES
            else "",
            f"hidden must be at least 1, got {self.hidden}" if self.hidden < 1 else "",
            f"dropout must lie in [0, 1), got {self.dropout}" if not 0 <= self.dropout < 1 else "",
            f"lr must be positive and finite, got {self.lr}" if not 0 < self.lr < math.inf else "",
            f"batch size must be at least 1, got {self.batch_size}"
            if self.batch_size is not None and self.batch_size < 1
            else "",
            f"patience must be at least 0, got {self.patience}" if self.patience < 0 else "",
            f"holdout must lie in [0, 1), got {self.holdout}" if not 0 <= self.holdout < 1 else "",
            f"weight_decay must be a finite number >= 0 or 'auto', got {self.weight_decay!r}"
            if not (self.weight_decay == "auto" or _finite_nonnegative(self.weight_decay))
            else "",
            f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            if self.schedule not in SCHEDULES
            else "",
            f"record must be one of {', '.join(RECORDS)}, got {self.record!r}" if self.record not in RECORDS else "",
        ]
        problems = [p for p in problems if p]
        if problems:
            raise LogError("; ".join(problems))


def _finite_nonnegative(x) -> bool:
    """A number in [0, inf) (a string, NaN or infinity is not)."""
    return not isinstance(x, str) and 0 <= x < math.inf


PRESETS = {
    # the data map: a small MLP trained until the held-out accuracy stops improving
    "map": TrainConfig(),
    # ranking and flagging wrong labels: logistic regression (linear, L2 as scikit-learn's C = 1) on word and
    # character n-grams, trained to convergence. The penalty keeps the model from memorizing flipped labels, so
    # from one run the ranking is at least as good as cleanlab's 5-fold cross-validation and the flag's count
    # does not shrink with more epochs; the map is flatter (little variability). bench/results/detection.md.
    "label-errors": TrainConfig(
        model="linear", features="tfidf+char", lr=2e-2, schedule="linear", weight_decay="auto", patience=0, epochs=30
    ),
}


LATE_RULE_FIELDS = ("model", "weight_decay", "schedule", "patience")


def label_issue_rule(config: TrainConfig) -> str:
    """Which epochs judge a run's ``label_issue`` flag (``label_issues.py``): ``"late_margin"`` for a model that is
    penalized and trained to convergence like the label-errors preset (the same model, weight decay, schedule
    and no early stopping; the epochs, rate or features may differ), else ``"aum"``."""
    le = PRESETS["label-errors"]
    return LATE if all(getattr(config, f) == getattr(le, f) for f in LATE_RULE_FIELDS) else AUM


def preset_of(config: TrainConfig) -> str | None:
    """The name of the preset that ``config`` is exactly, or None (a config of one's own: a changed flag)."""
    return next((name for name, c in PRESETS.items() if c == config), None)


def resolved_weight_decay(config: TrainConfig, n_train: int) -> float:
    """The L2 penalty the optimizer gets: ``config.weight_decay``, or 1 / ``n_train`` for "auto"."""
    return 1.0 / max(n_train, 1) if config.weight_decay == "auto" else float(config.weight_decay)


STEPS_PER_EPOCH = 300  # the auto batch size aims at about this many optimizer steps per epoch


def auto_batch_size(n_rows: int) -> int:
    """The power of two nearest ``n_rows / STEPS_PER_EPOCH``, within [16, 512]: small datasets get small
    batches (enough optimizer steps to learn in a few epochs), large ones large batches (speed)."""
    return int(min(512, max(16, 2 ** round(math.log2(max(n_rows, 1) / STEPS_PER_EPOCH)))))
