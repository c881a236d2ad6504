"""Each integration trains a tiny model for a few epochs and writes a log that reads back correctly."""

import importlib
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cartography_core import compute_stats, open_run
from cartography_core.integrations.torch_loop import IndexedDataset
from cartography_core.recorder import DynamicsRecorder

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


def test_hugging_face_trainer_callback(tmp_path):
    transformers = pytest.importorskip("transformers")
    from cartography_core.integrations.hf import CartographyCallback

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    tokens = rng.integers(3, 50, size=(64, 8))
    tokens[:, 1] = labels + 1  # the label is written in the second token
    train_set = [
        {
            "id": 1000 + i,
            "input_ids": torch.tensor(tokens[i]),
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": int(labels[i]),
        }
        for i in range(64)
    ]
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=2
    )
    model = transformers.BertForSequenceClassification(config)  # built from a config: nothing downloaded
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    cb = CartographyCallback(tmp_path / "run", train_set, label_names=["neg", "pos"], batch_size=16)
    transformers.Trainer(model=model, args=args, train_dataset=train_set, callbacks=[cb]).train()

    run = open_run(tmp_path / "run")
    assert run.n_epochs == 3 and run.meta["pass"] == "eval" and run.label_names == ["neg", "pos"]
    stats = compute_stats(run, strict=True)
    assert stats["id"].to_pylist() == list(range(1000, 1064))
    # the last epoch's logits are the trained model's, in eval mode
    model.eval()
    with torch.no_grad():
        want = model(input_ids=torch.tensor(tokens), attention_mask=torch.ones(64, 8, dtype=torch.long)).logits.numpy()
    import pyarrow.parquet as pq

    last = pq.read_table(tmp_path / "run" / "dynamics" / "epoch_002.parquet").to_pydict()
    got = np.array(last["logits"])[np.argsort(last["id"])]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_lightning_callback(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from cartography_core.integrations.lightning import CartographyCallback

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
    loader = torch.utils.data.DataLoader(IndexedDataset(list(zip(x, y))), batch_size=16, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[CartographyCallback(tmp_path / "run")],
    )
    trainer.fit(Tiny(), loader)
    run = open_run(tmp_path / "run")
    assert run.n_epochs == 3 and run.meta["pass"] == "train"
    stats = compute_stats(run, strict=True)
    assert stats["id"].to_pylist() == list(range(N)) and learned(stats)


def test_missing_framework_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "cartography_core.integrations.lightning", raising=False)
    with pytest.raises(ImportError, match="needs pytorch_lightning: pip install pytorch-lightning==2.6.6"):
        importlib.import_module("cartography_core.integrations.lightning")


def test_core_imports_without_the_frameworks():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
        "sys.modules['pytorch_lightning'] = None; import cartography_core, cartography_core.cli; print('ok')"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
