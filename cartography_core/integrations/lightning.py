"""Record a PyTorch Lightning training run from the training forward pass.

    from cartography_core.integrations.lightning import CartographyCallback

    class Model(pl.LightningModule):
        def training_step(self, batch, batch_idx):
            ids, x, y = batch
            logits = self(x)
            return {"loss": F.cross_entropy(logits, y), "logits": logits, "ids": ids, "labels": y}

    pl.Trainer(max_epochs=6, callbacks=[CartographyCallback("runs/my-run", label_names=names)]).fit(Model(), loader)

``training_step`` returns the batch's logits, ids and gold labels beside the loss; the callback logs them
after every batch and writes one epoch file (one part file per process under DDP) at the end of each
training epoch; ``run.json`` says ``"pass": "train"``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LogError
from ..recorder import DynamicsRecorder
from ._optional import require

pl = require("pytorch_lightning", "cartography_core.integrations.lightning")

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
    ):
        self.run_dir, self.label_names, self.overwrite, self.meta = Path(run_dir), label_names, overwrite, meta or {}
        self.recorder: DynamicsRecorder | None = None

    def on_train_start(self, trainer, pl_module):
        self.recorder = DynamicsRecorder(
            self.run_dir,
            label_names=self.label_names,
            pass_="train",
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            overwrite=self.overwrite,
            meta={"framework": f"pytorch-lightning {pl.__version__}", **self.meta},
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
