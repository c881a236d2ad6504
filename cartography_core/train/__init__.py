"""The built-in trainer (``python -m cartography_core train``): TF-IDF or frozen MiniLM features and a small
torch head, logging every training example's dynamics. ``config`` imports nothing heavy; ``trainer`` loads
torch and scikit-learn."""

from .config import FEATURES, MODELS, TrainConfig

__all__ = ["FEATURES", "MODELS", "TrainConfig"]
