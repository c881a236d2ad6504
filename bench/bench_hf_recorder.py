"""Overhead of recording a Hugging Face Trainer run: the training-pass hooks and the eval pass.

    python bench/bench_hf_recorder.py     # from the repository root; ~2 minutes

A small BERT (2 layers, hidden 64, built from a config: nothing downloaded) trains with
``DataCollatorWithPadding`` on TREC's training texts; the same training runs bare, with
``record_dynamics(pass_="train")`` and with ``record_dynamics(pass_="eval")``, in alternation, ``REPEATS``
times each, so all three see the same machine load. Reports median ``trainer.train()`` wall times and the
overheads as ratios. Appends to bench/results/recorder.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cartography_core.record.hf import record_dynamics  # noqa: E402
from tests.tiny_models import tiny_tokenizer  # noqa: E402

N, EPOCHS, BATCH, REPEATS = 2000, 3, 32, 7


def train(df, tok, pass_: str | None, tmp: Path) -> float:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=128, num_labels=6,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    data = [{"id": i, "labels": y, **tok(t, truncation=True)} for i, t, y in zip(df["id"], df["text"], df["label"])]
    args = transformers.TrainingArguments(
        str(tmp / "hf"), num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH, learning_rate=1e-3,
        save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, data_collator=transformers.DataCollatorWithPadding(tok)
    )
    if pass_ is not None:
        record_dynamics(trainer, tmp / f"run-{pass_}-{time.perf_counter_ns()}", pass_=pass_)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def main() -> None:
    df = pd.read_parquet(ROOT / "sample_logs" / "trec" / "examples.parquet").query("split == 'train'").head(N)
    tok = tiny_tokenizer(df["text"])
    times: dict[str, list[float]] = {"bare": [], "train": [], "eval": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(REPEATS):
            for kind in times:
                times[kind].append(train(df, tok, None if kind == "bare" else kind, Path(tmp)))
    med = {k: statistics.median(v) for k, v in times.items()}
    line = (
        f"- {time.strftime('%Y-%m-%d %H:%M')}: HF Trainer, BERT 2x64 from a config, {N:,} TREC texts, {EPOCHS} "
        f"epochs, batches of {BATCH}, DataCollatorWithPadding, torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads: train() {med['bare']:.2f} s bare, {med['train']:.2f} s recording the "
        f"training pass ({100 * (med['train'] / med['bare'] - 1):+.1f}%), {med['eval']:.2f} s with the eval pass "
        f"({100 * (med['eval'] / med['bare'] - 1):+.1f}%) (medians of {REPEATS}, alternating)"
    )
    print(line)
    with open(ROOT / "bench" / "results" / "recorder.md", "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
