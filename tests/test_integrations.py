"""Each integration trains a tiny model for a few epochs and writes a log that reads back correctly."""

import importlib
import re
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cartography_core import LogError, compute_stats, open_run
from cartography_core.record import DynamicsRecorder
from cartography_core.record.torch_loop import IndexedDataset

N, K = 120, 3


def blobs(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(N) % K
    x = torch.randn(N, 4, generator=g) * 0.7 + nn.functional.one_hot(y, 4).float() * 2
    return x, y


def learned(stats):
    """Mean confidence rose: the recorded trajectories are the model's, epoch by epoch."""
    return stats["correctness"].to_numpy().mean() > 0.6


def test_plain_torch_loop(tmp_path):
    torch.manual_seed(0)
    x, y = blobs()
    data = list(zip(x, y))
    ids = [f"ex-{i}" for i in range(N)]
    loader = torch.utils.data.DataLoader(IndexedDataset(data, ids), batch_size=16, shuffle=True)
    model, rec = nn.Linear(4, K), DynamicsRecorder(tmp_path / "run", label_names=["a", "b", "c"])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(4):
        for batch_ids, (xb, yb) in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log(list(batch_ids), logits, yb)
        rec.end_epoch()
    stats = compute_stats(tmp_path / "run", strict=True)
    assert stats["id"].to_pylist() == sorted(ids)
    assert stats["label"].to_pylist() == [int(y[int(i[3:])]) for i in sorted(ids)]
    assert learned(stats) and stats["n_epochs"].to_numpy().min() == 4


def sentences(n=96, seed=0):
    """Labeled sentences of different lengths (the label is written in a word), with string ids."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(40)]
    labels = np.arange(n) % 2
    texts = [" ".join([*rng.choice(words, size=rng.integers(3, 12)), ["bad", "good"][y]]) for y in labels]
    return [f"s-{i}" for i in range(n)], texts, labels


def hf_trainer(tmp_path, pass_="train", epochs=8, eval_ids=True, **record):
    transformers = pytest.importorskip("transformers")
    from cartography_core.record.hf import record_dynamics
    from tests.tiny_models import tiny_bert, tiny_tokenizer

    ids, texts, labels = sentences()
    tok = tiny_tokenizer(texts)
    train_set = [{"id": i, "labels": int(y), **tok(t)} for i, t, y in zip(ids, texts, labels)]
    model = tiny_bert(tok.vocab_size, 2)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=epochs,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="epoch",
        use_cpu=True,
        disable_tqdm=True,
        seed=7,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=train_set[:32]
        if eval_ids
        else [{k: v for k, v in r.items() if k != "id"} for r in train_set[:32]],
        data_collator=transformers.DataCollatorWithPadding(tok),  # pads each batch to its longest example
        compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
    )
    record_dynamics(trainer, tmp_path / "run", label_names=["neg", "pos"], pass_=pass_, **record)
    trainer.train()
    return trainer, model, tok, ids, texts, labels


@pytest.mark.parametrize("pass_", ["train", "eval"])
def test_hugging_face_trainer_with_a_padding_collator(tmp_path, pass_):
    trainer, model, tok, ids, texts, labels = hf_trainer(tmp_path, pass_)
    run = open_run(tmp_path / "run")
    assert run.n_epochs == 8 and run.meta["pass"] == pass_ and run.label_names == ["neg", "pos"]
    assert run.meta["seed"] == 7 and run.meta["learning_rate"] == 5e-3 and run.meta["epochs"] == 8
    assert run.meta["model"] == "BertForSequenceClassification" and "transformers" in run.meta["versions"]
    assert len(run.meta["holdout_accuracy"]) == 8 and learned(stats := compute_stats(run, strict=True))
    assert sorted(stats["id"].to_pylist()) == sorted(ids)
    assert stats["label"].to_pylist() == [int(labels[ids.index(i)]) for i in stats["id"].to_pylist()]
    if pass_ == "eval":  # the last epoch's logits are the trained model's, in eval mode, example by example
        model.eval()
        with torch.no_grad():
            want = np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in texts])
        import pyarrow.parquet as pq

        last = pq.read_table(tmp_path / "run" / "dynamics" / "epoch_007.parquet").to_pydict()
        got = np.array(last["logits"])[[last["id"].index(i) for i in ids]]
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_hugging_face_evaluation_and_prediction_sets_need_no_ids(tmp_path):
    trainer, model, tok, ids, texts, labels = hf_trainer(tmp_path, epochs=2, eval_ids=False)
    run = open_run(tmp_path / "run")
    assert run.n_epochs == 2 and len(run.meta["holdout_accuracy"]) == 2
    assert sorted(compute_stats(run, strict=True)["id"].to_pylist()) == sorted(ids)  # training rows only
    rows = [{"labels": int(labels[i]), **tok(texts[i])} for i in range(5)]
    model.eval()
    with torch.no_grad():
        want = np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in texts[:5]])
    np.testing.assert_allclose(trainer.predict(rows).predictions, want, atol=1e-4)


def test_hugging_face_dataset_without_ids_is_a_clear_error(tmp_path):
    transformers = pytest.importorskip("transformers")
    from cartography_core.record.hf import record_dynamics

    args = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), report_to=[], use_cpu=True)
    trainer = transformers.Trainer(model=nn.Linear(2, 2), args=args, train_dataset=[{"input_ids": [1, 2], "labels": 0}])
    with pytest.raises(
        LogError, match=re.escape("the training examples have no 'id' key (found ['input_ids', 'labels'])")
    ):
        record_dynamics(trainer, tmp_path / "run")


def quiet_trainer(pl, epochs, callback):
    """A CPU Lightning Trainer that writes nothing but what ``callback`` records."""
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )


def test_lightning_callback(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from cartography_core.record.lightning import CartographyCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, K)

        def training_step(self, batch, batch_idx):
            ids, (xb, yb) = batch
            logits = self.net(xb)
            return {"loss": F.cross_entropy(logits, yb), "logits": logits, "ids": ids, "labels": yb}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    pl.seed_everything(0, verbose=False)
    x, y = blobs(1)
    loader = torch.utils.data.DataLoader(IndexedDataset(list(zip(x, y)), ids=range(N)), batch_size=16, shuffle=True)
    quiet_trainer(pl, 3, CartographyCallback(tmp_path / "run")).fit(Tiny(), loader)
    run = open_run(tmp_path / "run")
    assert run.n_epochs == 3 and run.meta["pass"] == "train"
    stats = compute_stats(run, strict=True)
    assert stats["id"].to_pylist() == list(range(N)) and learned(stats)


def test_missing_framework_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "cartography_core.record.lightning", raising=False)
    with pytest.raises(ImportError, match="needs pytorch_lightning: pip install pytorch-lightning==2.6.6"):
        importlib.import_module("cartography_core.record.lightning")


def test_core_imports_without_the_frameworks():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
        "sys.modules['pytorch_lightning'] = None; import cartography_core, cartography_core.cli; print('ok')"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_lightning_step_returning_only_the_loss_fails_clearly_and_the_fixed_rerun_records(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from cartography_core.record.lightning import CartographyCallback

    class Tiny(pl.LightningModule):
        def __init__(self, full):
            super().__init__()
            self.net, self.full = nn.Linear(4, K), full

        def training_step(self, batch, batch_idx):
            ids, (xb, yb) = batch
            logits = self.net(xb)
            loss = F.cross_entropy(logits, yb)
            return {"loss": loss, "logits": logits, "ids": ids, "labels": yb} if self.full else loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    x, y = blobs(2)
    loader = torch.utils.data.DataLoader(IndexedDataset(list(zip(x, y)), ids=range(N)), batch_size=16)

    def fit(full):
        pl.seed_everything(3, verbose=False)
        quiet_trainer(pl, 2, CartographyCallback(tmp_path / "run")).fit(Tiny(full), loader)

    with pytest.raises(LogError, match="training_step must return a dict with 'loss', 'logits', 'ids' and 'labels'"):
        fit(full=False)
    fit(full=True)  # the same folder: no epoch was written, so the rerun is not refused
    run = open_run(tmp_path / "run")
    assert run.n_epochs == 2 and run.meta["seed"] == 3 and run.meta["learning_rate"] == 0.5
    assert run.meta["model"] == "Tiny" and run.meta["epochs"] == 2


def test_indexed_dataset_takes_a_series_of_ids_by_position():
    """A shuffled or filtered DataFrame's id column keeps its old index labels: row i's id is the i-th value."""
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(6)], "x": range(6)}).sample(frac=1, random_state=0)
    frame = frame[frame["x"] != 0]  # filtered: index label 0 is gone
    ds = IndexedDataset(frame["x"].tolist(), ids=frame["id"])
    assert [ds[i] for i in range(len(ds))] == list(zip(frame["id"], frame["x"]))
