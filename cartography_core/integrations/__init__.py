"""Thin layers over ``cartography_core.recorder.DynamicsRecorder`` for common training frameworks.

- ``torch_loop``: ``IndexedDataset``, so a plain PyTorch loop gets example ids with every batch;
- ``hf``: a Hugging Face ``transformers`` ``TrainerCallback`` (evaluation pass at the end of each epoch);
- ``lightning``: a PyTorch Lightning ``Callback`` (the training forward pass).

The frameworks are optional: each module imports its own and says what to install when it is missing.
"""
