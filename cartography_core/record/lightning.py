"""Record a PyTorch Lightning training run from the training forward pass.

    from cartography_core.record.lightning import CartographyCallback

    class Model(pl.LightningModule):
        def training_step(self, batch, batch_idx):
            ids, (x, y) = batch  # a DataLoader over IndexedDataset(train_set, ids=...)
            logits = self(x)
            return {"loss": F.cross_entropy(logits, y), "logits": logits, "ids": ids, "labels": y}

    cb = CartographyCallback("runs/my-run", label_names=names, examples=df[["id", "text", "label"]])
    pl.Trainer(max_epochs=6, callbacks=[cb]).fit(Model(), loader)

``training_step`` returns the batch's logits, ids and gold labels beside the loss; the callback logs them
after every batch and writes one epoch file (one part file per process under DDP) at the end of each
training epoch; ``run.json`` says ``"pass": "train"`` and records the seed, learning rate, epochs, model class
and framework versions, and ``holdout_accuracy`` when validation logs a metric named ``val_acc`` or
``val_accuracy``. A ``training_step`` that returns only the loss fails at the first batch with a message,
and the fixed rerun may reuse the folder (no epoch was written).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LogError
from ._optional import require
from .recorder import DynamicsRecorder

pl = require("pytorch_lightning", __name__)
torch = require("torch", __name__)

KEYS = ("logits", "ids", "labels")


class CartographyCallback(pl.Callback):
    """Log the logits that ``training_step`` returns, every batch, into ``run_dir``."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        label_names: list[str] | None = None,
        overwrite: bool = False,
        meta: dict | None = None,
        examples=None,
    ):
        self.run_dir, self.label_names, self.overwrite, self.meta = Path(run_dir), label_names, overwrite, meta or {}
        self.examples = examples
        self.recorder: DynamicsRecorder | None = None
        self._accuracy: list[float] = []

    def on_train_start(self, trainer, pl_module):
        optimizers = trainer.optimizers
        lr = optimizers[0].param_groups[0]["lr"] if optimizers else None
        self.recorder = DynamicsRecorder(
            self.run_dir,
            label_names=self.label_names,
            pass_="train",
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            overwrite=self.overwrite,
            examples=self.examples,
            meta={
                "framework": f"pytorch-lightning {pl.__version__}",
                "versions": {"pytorch-lightning": pl.__version__, "torch": torch.__version__},
                "model": type(pl_module).__name__,
                "seed": int(os.environ["PL_GLOBAL_SEED"]) if "PL_GLOBAL_SEED" in os.environ else None,
                "learning_rate": lr,
                "epochs": trainer.max_epochs,
                **self.meta,
            },
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not isinstance(outputs, dict) or any(k not in outputs for k in KEYS):
            found = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise LogError(
                f"CartographyCallback: training_step must return a dict with 'loss', 'logits', 'ids' and "
                f"'labels'; it returned {found}"
            )
        self.recorder.log(outputs["ids"], outputs["logits"], outputs["labels"])

    def on_train_epoch_end(self, trainer, pl_module):
        self.recorder.end_epoch()

    def on_validation_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        acc = next((metrics[k] for k in ("val_acc", "val_accuracy") if k in metrics), None)
        if acc is not None and self.recorder is not None and not trainer.sanity_checking:
            self._accuracy.append(round(float(acc), 6))
            self.recorder.update_meta(holdout_accuracy=self._accuracy)

    def on_fit_end(self, trainer, pl_module):
        if self.recorder is not None:
            self.recorder.close()
