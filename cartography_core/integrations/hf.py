"""Record a Hugging Face ``transformers`` Trainer: an evaluation pass over the training set after each epoch.

    from cartography_core.integrations.hf import CartographyCallback

    trainer = Trainer(model=model, args=args, train_dataset=train_set,
                      callbacks=[CartographyCallback("runs/my-run", train_set, label_names=names)])
    trainer.train()

The Trainer drops dataset columns its model does not take (``id`` among them), so the callback reads the
ids itself: ``train_set[i]`` must be a dict holding ``id`` (``id_column``), the gold label (``labels``) and
the model's inputs. After every epoch it runs the model in eval mode over the training set (each process
over every ``world_size``-th example, writing its own part file) and writes one epoch; ``run.json`` says
``"pass": "eval"``.
"""

from __future__ import annotations

from pathlib import Path

from ..recorder import DynamicsRecorder
from ._optional import require

transformers = require("transformers", "cartography_core.integrations.hf")
torch = require("torch", "cartography_core.integrations.hf")


class CartographyCallback(transformers.TrainerCallback):
    """Log per-example logits of ``dataset`` after every training epoch into ``run_dir``."""

    def __init__(
        self,
        run_dir: str | Path,
        dataset,
        *,
        label_names: list[str] | None = None,
        id_column: str = "id",
        label_column: str = "labels",
        batch_size: int = 64,
        collate_fn=None,
        overwrite: bool = False,
        meta: dict | None = None,
    ):
        self.run_dir, self.dataset = Path(run_dir), dataset
        self.label_names, self.id_column, self.label_column = label_names, id_column, label_column
        self.batch_size, self.overwrite, self.meta = batch_size, overwrite, meta or {}
        self.collate_fn = collate_fn or transformers.default_data_collator
        self.recorder: DynamicsRecorder | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.recorder = DynamicsRecorder(
            self.run_dir,
            label_names=self.label_names,
            pass_="eval",
            rank=args.process_index,
            world_size=args.world_size,
            overwrite=self.overwrite,
            meta={"framework": f"transformers {transformers.__version__}", **self.meta},
        )

    def _collate(self, features: list[dict]):
        ids = [f[self.id_column] for f in features]
        batch = self.collate_fn([{k: v for k, v in f.items() if k != self.id_column} for f in features])
        return ids, batch

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        rows = range(args.process_index, len(self.dataset), args.world_size)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.dataset, list(rows)), batch_size=self.batch_size, collate_fn=self._collate
        )
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            for ids, batch in loader:
                labels = batch[self.label_column]
                inputs = {k: v.to(device) for k, v in batch.items() if k != self.label_column}
                self.recorder.log(ids, model(**inputs).logits, labels)
        model.train(was_training)
        self.recorder.end_epoch()
