"""Record a Hugging Face ``transformers`` Trainer run.

    from cartography_core.record.hf import record_dynamics

    trainer = Trainer(model=model, args=args, train_dataset=train_set, data_collator=DataCollatorWithPadding(tok))
    record_dynamics(trainer, "runs/my-run", label_names=names, examples=df[["id", "text", "label"]])
    trainer.train()

Each training example carries the dataset's own id under ``id_column`` (``train_set[i]["id"]``; evaluation
and prediction sets need none: their batches are not logged). The
Trainer would drop that column (its model does not take it), so ``record_dynamics`` keeps it, wraps the
Trainer's own data collator (padding collators included) to carry the ids beside the batch, and takes them
off again in a forward pre-hook on the model, so the model never sees them.

``pass_="train"`` (the default) logs the logits of the training forward pass itself, as Swayamdipta et al.
2020 did (allenai/cartography's ``run_glue.py`` logs ``outputs[1]`` inside its training step): no extra
computation, dropout on and weights moving within the epoch. ``pass_="eval"`` runs the model in eval mode
over the training set after each epoch with the Trainer's collator: cleaner logits, one extra forward pass
over the data per epoch. Under distributed training each process logs its own part; ``run.json`` gets the
seed, learning rate, epochs, model name and framework versions, and ``holdout_accuracy`` whenever the
Trainer evaluates with a metric named ``accuracy``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LogError
from ._optional import require
from .recorder import DynamicsRecorder

transformers = require("transformers", __name__)
torch = require("torch", __name__)

PASSES = ("train", "eval")


def record_dynamics(
    trainer,
    run_dir: str | Path,
    *,
    label_names: list[str] | None = None,
    pass_: str = "train",
    id_column: str = "id",
    label_column: str = "labels",
    examples=None,
    overwrite: bool = False,
    meta: dict | None = None,
) -> CartographyCallback:
    """Make ``trainer`` log every training example's logits, every epoch, into ``run_dir``; returns the
    callback it adds. ``examples``: see :class:`~cartography_core.record.DynamicsRecorder` (texts shown
    beside the scores; checked against the logged ids and labels)."""
    if pass_ not in PASSES:
        raise LogError(f"pass_ must be one of {PASSES}, got {pass_!r}")
    data = trainer.train_dataset
    if data is None or len(data) == 0:
        raise LogError("record_dynamics: the Trainer has no train_dataset to record")
    first = data[0]
    if not hasattr(first, "keys") or id_column not in first.keys():
        keys = sorted(first.keys()) if hasattr(first, "keys") else type(first).__name__
        raise LogError(
            f"record_dynamics: the training examples have no {id_column!r} key (found {keys}); give each example "
            f"the dataset's own id (e.g. a column {id_column!r}), or name the key with id_column="
        )
    callback = CartographyCallback(
        run_dir, label_names=label_names, pass_=pass_, label_column=label_column, examples=examples,
        overwrite=overwrite, meta=meta, id_key=id_column,
    )  # fmt: skip
    trainer._set_signature_columns_if_needed()  # keep the id column: the Trainer drops what forward() does not take
    if id_column not in trainer._signature_columns:
        trainer._signature_columns.append(id_column)
    trainer.data_collator = _IdCollator(trainer.data_collator, id_column)
    model = trainer.model
    model.register_forward_pre_hook(callback._take_ids, with_kwargs=True)
    model.register_forward_hook(callback._log_outputs, with_kwargs=True)
    callback._trainer = trainer
    trainer.add_callback(callback)
    return callback


class _IdCollator:
    """The Trainer's collator, with each example's id taken out first and put back beside the batch."""

    def __init__(self, collate, id_key: str):
        self.collate, self.id_key = collate, id_key

    def __call__(self, features: list[dict]):
        has = [self.id_key in f for f in features]
        if not any(has):  # an evaluation or prediction set without ids: nothing of it is logged
            return self.collate(features)
        if not all(has):
            raise LogError(
                f"record_dynamics: example {has.index(False)} of a batch has no {self.id_key!r} key while others "
                "have one; give every training example the dataset's own id"
            )
        ids = [f[self.id_key] for f in features]
        batch = self.collate([{k: v for k, v in f.items() if k != self.id_key} for f in features])
        batch[self.id_key] = ids
        return batch


class CartographyCallback(transformers.TrainerCallback):
    """Created by :func:`record_dynamics`: owns the recorder, writes an epoch at each epoch's end."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        label_names: list[str] | None,
        pass_: str,
        label_column: str,
        examples,
        overwrite: bool,
        meta: dict | None,
        id_key: str,
    ):
        self.run_dir, self.label_names, self.pass_ = Path(run_dir), label_names, pass_
        self.label_column, self.examples, self.overwrite = label_column, examples, overwrite
        self.meta, self.id_key = meta or {}, id_key
        self.recorder: DynamicsRecorder | None = None
        self._trainer = None
        self._ids = None
        self._eval_pass = False
        self._accuracy: list[float] = []

    # the model's hooks: ids off the inputs, logits off the outputs
    def _take_ids(self, module, args, kwargs):
        self._ids = kwargs.pop(self.id_key, None)
        self._labels = kwargs.get(self.label_column)
        return args, kwargs

    def _log_outputs(self, module, args, kwargs, output):
        logging = self._eval_pass if self.pass_ == "eval" else module.training
        if not logging or self.recorder is None or self._ids is None:
            return
        if self._labels is None:
            raise LogError(f"record_dynamics: the batch has no {self.label_column!r} (the gold labels) to log")
        logits = output["logits"] if isinstance(output, dict) or hasattr(output, "keys") else output[0]
        self.recorder.log(self._ids, logits, self._labels)
        self._ids = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        config = getattr(model, "config", None)
        self.recorder = DynamicsRecorder(
            self.run_dir,
            label_names=self.label_names,
            pass_=self.pass_,
            rank=args.process_index,
            world_size=args.world_size,
            overwrite=self.overwrite,
            examples=self.examples,
            meta={
                "framework": f"transformers {transformers.__version__}",
                "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
                "model": getattr(config, "name_or_path", "") or type(model).__name__,
                "model_class": type(model).__name__,
                "seed": args.seed,
                "learning_rate": args.learning_rate,
                "epochs": args.num_train_epochs,
                "batch_size": args.per_device_train_batch_size,
                **self.meta,
            },
        )

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.pass_ == "eval":
            self._run_eval_pass(model)
        self.recorder.end_epoch()

    def _run_eval_pass(self, model) -> None:
        """The model in eval mode over the training set, through the Trainer's own collator and sharding."""
        trainer = self._trainer
        loader = trainer.get_eval_dataloader(trainer.train_dataset)
        was_training = model.training
        model.eval()
        self._eval_pass = True
        try:
            with torch.no_grad():
                for batch in loader:
                    model(**trainer._prepare_inputs(batch))
        finally:
            self._eval_pass = False
            model.train(was_training)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        acc = (metrics or {}).get("eval_accuracy")
        if acc is not None and self.recorder is not None:
            self._accuracy.append(round(float(acc), 6))
            self.recorder.update_meta(holdout_accuracy=self._accuracy)

    def on_train_end(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.close()
