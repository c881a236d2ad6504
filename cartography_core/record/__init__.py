"""Writing training-dynamics logs from a training loop: ``DynamicsRecorder`` (any loop, numpy or torch) and thin
layers over it for PyTorch (``torch_loop.IndexedDataset``), Hugging Face ``transformers`` (``hf``) and PyTorch
Lightning (``lightning``). The frameworks are optional: each module imports its own and says what to install
when it is missing."""

from .recorder import DynamicsRecorder

__all__ = ["DynamicsRecorder"]
