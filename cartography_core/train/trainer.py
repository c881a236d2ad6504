"""Train a small text classifier on a labeled file and record its training dynamics.

    python -m cartography_core train DATA --text-col text --label-col label --out RUN [--epochs 6] [--seeds 0,1,2]

Model: TF-IDF over word 1-2 grams (scikit-learn, fitted on the training rows; ``features="tfidf+char"`` adds
character 2-5 grams) feeding a torch head: a linear layer, or (default) a small MLP, both as an ``EmbeddingBag``
over the sparse TF-IDF weights. Adam at a constant learning rate, or one falling linearly to 0 over the epochs
(``schedule="linear"``). With ``features="minilm"`` the head reads frozen all-MiniLM-L6-v2 sentence embeddings
instead (``features.py``). The training forward pass of every training example is logged each epoch
(``pass: train``, as allenai's code does). A fixed, stratified held-out split (``holdout``, chosen by
``split_seed``, the same for every seed) gives the held-out accuracy per epoch, stored in ``run.json``. The
same seed gives the same log, bit for bit.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_union
from torch import nn
from tqdm import tqdm

from ..errors import LogError, show_id
from ..examples import same_values
from ..io import atomic_write_parquet, read_table_file, row_place
from ..record.recorder import DynamicsRecorder, is_recorded_run, refuse_existing_run, refuse_foreign_run_json
from .config import TrainConfig, auto_batch_size, label_issue_rule, preset_of, resolved_weight_decay


@dataclass(frozen=True)
class LabeledData:
    """Rows of a labeled text file: ``ids`` (N,), ``texts`` (N,), ``labels`` (N,) int64 into ``label_names``, and
    the file's ``other_columns`` (N rows; written beside them in ``examples.parquet``)."""

    ids: np.ndarray
    texts: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    name: str
    other_columns: pa.Table | None = None
    holdout: np.ndarray | None = None  # (N,) bool: the file's own held-out rows (read_labeled's split_col)


@dataclass
class TrainResult:
    run_dir: Path
    holdout_accuracy: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)
    majority_accuracy: float = float("nan")
    best_epoch: int | None = None  # the epoch (0-based) of the best held-out accuracy
    warning: str = ""  # set when the model never beat the majority class, or was still improving at the end
    model: nn.Module | None = None  # the trained head, with its weights after the last epoch


FEATURE_NAMES = {
    "tfidf": "tfidf-1-2gram",
    "tfidf+char": "tfidf-1-2gram + char_wb-2-5gram",
    "minilm": "all-MiniLM-L6-v2 (frozen)",
}


def read_labeled(
    path: str | Path, text_col: str, label_col: str, id_col: str | None = None, split_col: str | None = None
) -> LabeledData:
    """Read a CSV, JSONL or parquet file of labeled text. Labels may be class names or whole numbers; names
    are sorted (numbers numerically). Ids come from ``id_col`` (default ``id`` when present) or the row number.
    ``split_col`` names a column of ``train`` / ``holdout`` values that fixes the held-out rows (a run's own
    ``split``, which ``reviews export`` carries: a retrained run then holds out the same rows)."""
    path = Path(path)
    table = read_table_file(path)
    id_col = id_col or ("id" if "id" in table.column_names else None)
    for col in [text_col, label_col] + ([id_col] if id_col else []) + ([split_col] if split_col else []):
        if col not in table.column_names:
            raise LogError(f"{path}: no column {col!r} (columns: {', '.join(table.column_names)})")
        empty = table[col].is_null()
        if pa.types.is_string(table[col].type) or pa.types.is_large_string(table[col].type):
            blank = pc.equal(pc.utf8_trim_whitespace(table[col]), "")  # a CSV's "" cell
            empty = pc.fill_null(pc.or_kleene(empty, blank), True)
        if pc.any(empty).as_py():
            row = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
            raise LogError(f"{path} {row_place(path, row, table.num_rows)}: {col} is empty")
    raw = table[label_col].to_numpy(zero_copy_only=False)
    names, labels = np.unique(raw, return_inverse=True)
    if len(names) < 2:
        raise LogError(f"{path}: column {label_col!r} holds one class ({names[0]!r}); need at least 2")
    ids = table[id_col].to_numpy(zero_copy_only=False) if id_col else np.arange(table.num_rows)
    if id_col and pc.count_distinct(table[id_col]).as_py() != table.num_rows:
        _, first, counts = np.unique(ids, return_index=True, return_counts=True)
        repeated = np.flatnonzero(ids == ids[first[np.argmax(counts > 1)]])
        lines = " and ".join(row_place(path, int(r), table.num_rows) for r in repeated[:2])
        raise LogError(
            f"{path}: column {id_col!r} repeats ids ({int((counts > 1).sum())} ids more than once), e.g. id "
            f"{show_id(ids[repeated[0]])} at {lines}; ids must be unique"
        )
    texts = table[text_col].cast(pa.string()).to_numpy(zero_copy_only=False)
    holdout = None
    if split_col:
        values = table[split_col].cast(pa.string()).to_numpy(zero_copy_only=False)
        odd = np.flatnonzero(~np.isin(values, SPLITS))
        if odd.size:
            raise LogError(
                f"{path} {row_place(path, int(odd[0]), table.num_rows)}: {split_col} is {values[odd[0]]!r}; "
                f"--split-col takes a column of {' or '.join(SPLITS)}"
            )
        holdout = values == SPLITS[1]
    others = table.drop_columns(list(dict.fromkeys(c for c in (text_col, label_col, id_col) if c)))
    return LabeledData(ids, texts, labels.astype(np.int64), [str(n) for n in names], path.name, others, holdout)


class Head(nn.Module):
    """``logits = W2 relu(W1 x + b1) + b2`` (mlp) or ``logits = W1 x + b1`` (linear). ``x`` is a sparse
    TF-IDF row (``W1 x`` as an ``EmbeddingBag`` over its non-zero weights) or a dense embedding."""

    def __init__(self, n_features: int, n_classes: int, config: TrainConfig, *, sparse: bool):
        super().__init__()
        width = config.hidden if config.model == "mlp" else n_classes
        self.sparse = sparse
        if sparse:
            self.first = nn.EmbeddingBag(n_features, width, mode="sum")
            nn.init.normal_(self.first.weight, std=0.01)
        else:
            self.first = nn.Linear(n_features, width, bias=False)
        self.bias = nn.Parameter(torch.zeros(width))
        self.top = (
            nn.Sequential(nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(width, n_classes))
            if config.model == "mlp"
            else nn.Identity()
        )

    def forward(self, rows: sp.csr_matrix | np.ndarray) -> torch.Tensor:
        if self.sparse:
            indices = torch.from_numpy(rows.indices.astype(np.int64))
            offsets = torch.from_numpy(rows.indptr[:-1].astype(np.int64))
            weights = torch.from_numpy(rows.data.astype(np.float32))
            hidden = self.first(indices, offsets, per_sample_weights=weights)
        else:
            hidden = self.first(torch.from_numpy(rows))
        return self.top(hidden + self.bias)


def featurize(data: LabeledData, train_rows: np.ndarray, test_rows: np.ndarray, config: TrainConfig, progress: bool):
    """(train features, held-out features or None, number of features) for ``config.features``."""
    if config.features == "minilm":
        from .features import sentence_embeddings

        emb = sentence_embeddings(data.texts, progress=progress)  # (N, 384), cached on disk
        return emb[train_rows], (emb[test_rows] if test_rows.size else None), emb.shape[1]
    vectorizers = [("word", (1, 2))] + ([("char_wb", (2, 5))] if config.features == "tfidf+char" else [])
    vec = make_union(
        *(
            TfidfVectorizer(
                analyzer=analyzer,
                ngram_range=ngrams,
                min_df=config.min_df,
                sublinear_tf=True,
                max_features=config.max_features,
                dtype=np.float32,
            )
            for analyzer, ngrams in vectorizers
        )
    )
    try:
        x_train = vec.fit_transform(data.texts[train_rows]).tocsr()
    except ValueError as exc:  # scikit-learn's "empty vocabulary" / "no terms remain"
        raise LogError(
            f"{data.name}: no words to build TF-IDF features from (words must appear in at least "
            f"{config.min_df} training texts): {exc}"
        ) from None
    x_test = vec.transform(data.texts[test_rows]).tocsr() if test_rows.size else None
    return x_train, x_test, x_train.shape[1]


SPLITS = ("train", "holdout")  # the values of examples.parquet's split column


def split(data: LabeledData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): the file's own (``data.holdout``), else stratified, fixed by
    ``config.split_seed``."""
    rows = np.arange(len(data.labels))
    if data.holdout is not None:
        if data.holdout.all():
            raise LogError(f"{data.name}: the split column marks every row holdout; no row is left to train on")
        return rows[~data.holdout], rows[data.holdout]
    if config.holdout == 0:
        return rows, rows[:0]
    try:
        train, test = train_test_split(
            rows, test_size=config.holdout, stratify=data.labels, random_state=config.split_seed
        )
    except ValueError as exc:  # scikit-learn: a class with one row, or fewer held-out rows than classes
        counts = np.bincount(data.labels, minlength=len(data.label_names))
        raise LogError(
            f"{data.name}: cannot hold out {config.holdout:g} of {len(rows)} rows with every one of the "
            f"{len(counts)} classes on both sides (smallest class: {counts.min()} rows); add rows, or train "
            f"with --holdout 0 (no held-out accuracy, no early stopping) ({exc})"
        ) from None
    return np.sort(train), np.sort(test)


def train_run(
    data: LabeledData,
    out: str | Path,
    *,
    seed: int = 0,
    config: TrainConfig = TrainConfig(),
    overwrite: bool = False,
    examples: bool = True,
    progress: bool | None = None,
) -> TrainResult:
    """Train one model with ``seed`` and write the run directory ``out`` (dynamics, run.json, examples)."""
    progress = sys.stderr.isatty() if progress is None else progress
    preset, rule = preset_of(config), label_issue_rule(config)  # of the config as given, before it is resolved
    train_rows, test_rows = split(data, config)
    config = replace(
        config,
        batch_size=config.batch_size or auto_batch_size(train_rows.size),
        weight_decay=resolved_weight_decay(config, train_rows.size),
    )
    if not test_rows.size and config.patience:
        print(
            f"{Path(out).name}: no held-out rows (holdout 0): nothing to stop early on, so all {config.epochs} "
            "epochs run and no underfitting warning is possible; choose --epochs yourself",
            file=sys.stderr,
        )
    out = Path(out)
    refuse_foreign_files(out, dataset_folder=False, examples=examples)  # before any work, even with overwrite
    if not overwrite:
        refuse_existing_run(out)  # before any work; the recorder creates the run only once features exist
    x_train, x_test, n_features = featurize(data, train_rows, test_rows, config, progress)
    rec = DynamicsRecorder(
        out,
        label_names=data.label_names,
        pass_=config.record,
        overwrite=overwrite,
        meta={
            "dataset": data.name,
            "model": f"{FEATURE_NAMES[config.features]}+{config.model}"
            + (f"{config.hidden}" if config.model == "mlp" else ""),
            "group": f"{config.features}-{config.model}",
            "seed": seed,
            "preset": preset,
            "label_issue_rule": rule,
            "hyperparameters": asdict(config),
            "n_train": int(train_rows.size),
            "n_holdout": int(test_rows.size),
            "holdout_rows": "the file's split column" if data.holdout is not None else "stratified (split_seed)",
            "n_features": int(n_features),
        },
    )
    y_train = torch.from_numpy(data.labels[train_rows])
    ids = data.ids[train_rows]

    torch.manual_seed(seed)
    model = Head(n_features, len(data.label_names), config, sparse=config.features != "minilm")
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    steps = config.epochs * max(1, -(-len(train_rows) // config.batch_size))  # every step of every epoch
    decay = torch.optim.lr_scheduler.LinearLR(
        opt, start_factor=1.0, end_factor=0.0 if config.schedule == "linear" else 1.0, total_iters=steps
    )
    counts = np.bincount(data.labels[test_rows], minlength=len(data.label_names)) if test_rows.size else None
    result = TrainResult(out, majority_accuracy=float(counts.max() / counts.sum()) if counts is not None else np.nan)
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_rows), generator=gen).numpy()
        batches = np.array_split(order, max(1, -(-len(order) // config.batch_size)))
        total = 0.0
        for rows in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False):
            logits = model(x_train[rows])
            losses = F.cross_entropy(logits, y_train[rows], reduction="none")
            opt.zero_grad()
            losses.mean().backward()
            opt.step()
            decay.step()
            total += float(losses.detach().sum())
            if config.record == "train":
                rec.log(ids[rows], logits, y_train[rows], losses)
        if config.record == "eval":
            record_eval_pass(model, x_train, y_train, ids, rec)
        rec.end_epoch()
        result.seconds_per_epoch.append(time.perf_counter() - t0)
        acc = ""
        if x_test is not None:
            model.eval()
            with torch.no_grad():
                pred = model(x_test).argmax(dim=1).numpy()
            result.holdout_accuracy.append(float((pred == data.labels[test_rows]).mean()))
            result.best_epoch = int(np.argmax(result.holdout_accuracy))  # the first best
            rec.update_meta(
                holdout_accuracy=[round(a, 6) for a in result.holdout_accuracy], best_epoch=result.best_epoch
            )
            acc = f", held-out accuracy {result.holdout_accuracy[-1]:.3f}"
        print(
            f"{out.name} epoch {epoch + 1}/{config.epochs}: train loss {total / len(order):.4f}{acc} "
            f"({result.seconds_per_epoch[-1]:.2f} s)",
            file=sys.stderr,
        )
        if config.patience and result.best_epoch is not None and epoch - result.best_epoch >= config.patience:
            print(
                f"{out.name}: stopping after epoch {epoch + 1}, no better held-out accuracy for {config.patience} "
                f"epochs (best {max(result.holdout_accuracy):.3f} at epoch {result.best_epoch + 1} of this count, "
                f"dynamics/epoch_{result.best_epoch:03d} in the logs and the dashboard)",
                file=sys.stderr,
            )
            break
    result.model = model
    result.warning = "; ".join(w for w in (not_learned(result), still_rising(result.holdout_accuracy, config)) if w)
    if result.warning:
        print(f"{out.name}: warning: {result.warning}", file=sys.stderr)
        rec.update_meta(warning=result.warning)
    rec.close()
    if examples:
        write_examples(data, out / "examples.parquet", test_rows)
    return result


EVAL_BATCH = 4096  # rows per forward pass of the eval pass (no gradients: large batches are cheap)


def record_eval_pass(model: Head, x_train, y_train: torch.Tensor, ids: np.ndarray, rec: DynamicsRecorder) -> None:
    """Log the logits and losses of every training row with the model in eval mode (dropout off), as the
    weights stand after the epoch; the model is left in eval mode."""
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ids), EVAL_BATCH):
            rows = np.arange(start, min(start + EVAL_BATCH, len(ids)))
            logits = model(x_train[rows])
            rec.log(ids[rows], logits, y_train[rows], F.cross_entropy(logits, y_train[rows], reduction="none"))


def not_learned(result: TrainResult) -> str:
    """A warning when no epoch's held-out accuracy beat always answering the majority class: the model learned
    nothing, and every score of the run is noise."""
    if not result.holdout_accuracy or max(result.holdout_accuracy) > result.majority_accuracy:
        return ""
    return (
        f"the model never beat the majority class on the held-out rows (best held-out accuracy "
        f"{max(result.holdout_accuracy):.3f}, majority class {result.majority_accuracy:.3f}): it learned nothing, so "
        f"its scores and label_issue flags are noise; check the label column, or train with a smaller --lr or "
        f"--weight-decay"
    )


def still_rising(accuracy: list[float], config: TrainConfig) -> str:
    """A warning when every epoch ran and the held-out accuracy of the last one is the best so far and above
    the one before it: the model has not converged, and underfitting reads as difficulty on the map."""
    if len(accuracy) < 2 or len(accuracy) < config.epochs or accuracy[-1] <= max(accuracy[:-1]):
        return ""
    return (
        f"held-out accuracy was still rising at the last epoch ({accuracy[-2]:.3f} -> {accuracy[-1]:.3f}); "
        f"the model may be underfit, so hard-to-learn examples may only be not-yet-learned: train for more "
        f"epochs (--epochs) or with a larger learning rate (--lr)"
    )


def write_examples(data: LabeledData, path: Path, holdout_rows: np.ndarray) -> None:
    """``examples.parquet``: id, text, label, label_name, split ("train" or "holdout"), then the file's other
    columns (one whose name is taken gets ``_original``, such as a file's own ``label`` numbering beside
    ``--label-col label_name``, unless it equals the column written)."""
    split_col = np.full(len(data.labels), SPLITS[0], dtype=object)
    split_col[holdout_rows] = SPLITS[1]
    table = pa.table(
        {
            "id": data.ids,
            "text": pa.array(data.texts, type=pa.string()),
            "label": data.labels,
            "label_name": pa.array(np.asarray(data.label_names, dtype=object)[data.labels], type=pa.string()),
            "split": pa.array(split_col, type=pa.string()),
        }
    )
    others = data.other_columns if data.other_columns is not None else pa.table({})
    for name, column in zip(others.column_names, others.columns):
        if name not in table.column_names:
            table = table.append_column(name, column)
        elif not same_values(column, table[name]):
            table = table.append_column(f"{name}_original", column)  # kept once when equal on every row
    atomic_write_parquet(table, path)


def refuse_foreign_files(out: Path, *, dataset_folder: bool, examples: bool) -> None:
    """Raise :class:`LogError` when the trainer would replace a file at ``out`` that no run of this library
    wrote: ``out`` itself as a file, a ``run.json`` that is not a recorded run's, or an ``examples.parquet``
    beside no recorded run (``out`` for one run; ``out/seed-*`` for a dataset folder of seeds)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LogError(f"{out}: is a file; the trainer writes a folder there (a new or empty one, or a run of its own)")
    if not dataset_folder:
        refuse_foreign_run_json(out)
    mine = out / "examples.parquet"
    runs = sorted(out.glob("seed-*")) if dataset_folder else [out]
    if examples and mine.exists() and not any(is_recorded_run(r) for r in runs):
        raise LogError(
            f"{mine} exists and no run recorded here wrote it; the trainer would replace it with the examples it "
            "trains on: move it, or choose another --out"
        )


def train_seeds(
    data: LabeledData,
    out: str | Path,
    seeds: list[int],
    *,
    config: TrainConfig = TrainConfig(),
    overwrite: bool = False,
    progress: bool | None = None,
) -> list[TrainResult]:
    """One run per seed in ``out/seed-<s>``, with one ``out/examples.parquet`` shared by them."""
    out = Path(out)
    refuse_foreign_files(out, dataset_folder=True, examples=True)
    if len(set(seeds)) < len(seeds):
        raise LogError(f"seeds {', '.join(map(str, seeds))}: each seed once (one run per seed, in seed-<s>)")
    out.mkdir(parents=True, exist_ok=True)
    results = [
        train_run(
            data, out / f"seed-{s}", seed=s, config=config, overwrite=overwrite, examples=False, progress=progress
        )
        for s in seeds
    ]
    write_examples(data, out / "examples.parquet", split(data, config)[1])
    return results
