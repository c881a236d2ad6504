"""Per-example scores from training dynamics: per-epoch quantities, folded over epochs by streaming accumulators.

Notation (``docs/scores.md`` holds the same table): for example i with gold label y over the E_i epochs it
was logged in, z_e are its logits (K values), ``p_e = softmax(z_e)`` computed stably, ``g_e = p_e[y]``, and
``acc_e = argmax(z_e) == y`` with ties broken towards the lowest class index (numpy's rule).

Each column's formula, direction, range and source is defined once, in ``cartography_core.scores``
(``SCORES``; ``docs/scores.md`` is generated from it). They are computed here as per-epoch quantities
(:func:`epoch_quantities`) folded over epochs by streaming accumulators; "e - 1" is the previous epoch in
which the example was logged. With ``variability_ci=True`` a column ``variability_ci = sqrt(v + v^2 / (E_i - 1))``
(v the population variance; Chang et al. 2017, allenai's ``--include_ci``) is added.

A log of probabilities (``probs``) instead of logits has no logits: ``aum`` is then null.

Precision: per-epoch kernels run in float32 for float32 logs with K <= 128, else in float64 (the bounds are in
:func:`kernel_dtype`); the folds over epochs are float64.
"""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .errors import LogError
from .ingest import DynamicsReader, Run, open_run
from .label_issues import label_issue_mask, uses_late_rule

CHUNK = 1 << 15  # rows per kernel call
THREADS = min(4, os.cpu_count() or 1)

COLUMNS = (
    "id label n_epochs confidence variability correctness correct_count threshold_closeness forgetting_events "
    "never_learned first_learned_epoch consistently_learned_epoch aum margin late_margin el2n entropy loss "
    "data_iq_aleatoric pred_label label_issue"
).split()


@dataclass(frozen=True)
class EpochQuantities:
    """Per-epoch quantities of n rows, each (n,)."""

    p_gold: np.ndarray  # float32 or float64 (kernel_dtype)
    correct: np.ndarray  # bool
    pred: np.ndarray  # int32 (int64 for K > 32)
    logit_margin: np.ndarray | None  # None for a probability log
    prob_margin: np.ndarray
    el2n: np.ndarray
    entropy: np.ndarray
    loss: np.ndarray


F32_MAX_CLASSES = 128  # float32 kernels up to this K: sums over K float32 terms stay within the bounds below


def kernel_dtype(stored: np.dtype, k: int) -> type:
    """The precision of the per-epoch kernels for K = ``k`` values stored as ``stored``: float32 for float32
    logs (as allenai computes; half the memory traffic, twice the SIMD lanes) with K <= 128, else float64.

    Epochs are folded in float64 either way. Against float64 kernels on the same float32 logits, a float32
    kernel's per-epoch values differ by at most 1e-6 (absolute) for g, the probability margin and EL2N, and
    2e-6 (relative) for entropy and loss; the logit margin (``aum``), argmax and correctness are the same
    (``tests/test_stats.py`` pins these bounds)."""
    return np.float32 if stored == np.float32 and k <= F32_MAX_CLASSES else np.float64


def epoch_quantities(values: np.ndarray, labels: np.ndarray, kind: str = "logits") -> EpochQuantities:
    """Per-epoch quantities from logits (or probabilities) ``values`` (n, K) and gold ``labels`` (n,),
    computed in :func:`kernel_dtype` of ``values``.

    >>> q = epoch_quantities(np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([1, 0]))
    >>> q.p_gold.tolist(), q.correct.tolist(), q.logit_margin.tolist()   # tie -> lowest index wins
    ([0.5, 0.8807970779778823], [False, True], [0.0, 2.0])
    """
    # Work on the (K, n) transpose: reductions over classes become elementwise passes over long rows,
    # several times faster than axis=1 reductions over short rows of (n, K).
    dtype = kernel_dtype(values.dtype, values.shape[1])
    vt = np.ascontiguousarray(values.T, dtype=dtype)  # (K, n)
    gold = labels.astype(np.intp) * vt.shape[1] + np.arange(vt.shape[1])  # (n,) flat index of (y_i, i) in (K, n)
    z_gold = vt.take(gold)
    pred, top = _argmax0(vt)
    if kind == "logits":
        with np.errstate(over="ignore"):  # logits further apart than the type's range: -inf, clamped next
            shifted = vt - top  # (K, n), max 0: exp cannot overflow
        if float(top.max()) - float(vt.min()) > float(np.finfo(dtype).max):  # (ingest refuses non-finite logits)
            np.maximum(shifted, np.finfo(dtype).min, out=shifted)  # finite, so p log p is 0 where p is 0
        p = np.exp(shifted)
        sum_exp = p.sum(axis=0)  # (n,) in [1, K]
        p /= sum_exp
        log_sum = np.log(sum_exp)
        # -sum_k p_k log p_k with log p_k = shifted_k - log_sum and sum_k p_k = 1: no (K, n) log-softmax
        entropy = log_sum - np.einsum("ij,ij->j", p, shifted)
        # -log g = (max z - z_y) + log sum exp: the logit difference in float64 (exact for float32 logits)
        loss = (top.astype(np.float64) - z_gold) + log_sum
    else:
        p = vt
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.log(p)  # -inf where p == 0
            entropy = -np.where(p > 0, p * logp, 0.0).sum(axis=0)
        loss = -logp.take(gold)
    p_gold = p.take(gold)
    others = p.copy()
    others.reshape(-1)[gold] = 0.0  # (K, n) p with the gold class zeroed: p >= 0, so its max is the best other
    z_others = vt.copy()
    z_others.reshape(-1)[gold] = -np.inf  # (an index assignment: ~2x faster than put)
    # ||p - onehot(y)||^2 = sum_{k != y} p_k^2 + (1 - p_y)^2, with 1 - p_y summed from the others: accurate
    # even when p_y is within 1e-16 of 1, where 1 - p_y itself would round to 0
    miss = others.sum(axis=0)
    return EpochQuantities(
        p_gold=p_gold,
        correct=pred == labels,
        pred=pred,
        logit_margin=z_gold.astype(np.float64) - z_others.max(axis=0) if kind == "logits" else None,
        prob_margin=p_gold - others.max(axis=0),
        el2n=np.sqrt(np.einsum("ij,ij->j", others, others) + miss * miss),
        entropy=entropy,
        loss=loss,
    )


def _argmax0(vt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, max) over axis 0 of (K, n), ties to the lowest index (as ``np.argmax``), as K elementwise
    passes."""
    if vt.shape[0] > 32:
        return vt.argmax(axis=0), vt.max(axis=0)
    best, pred = vt[0].copy(), np.zeros(vt.shape[1], dtype=np.int32)  # int32: half int64's traffic
    for k in range(1, vt.shape[0]):  # a loop over classes, not examples
        better = vt[k] > best  # strict: an equal later class does not win
        pred += better * (k - pred)  # arithmetic, not np.where: random masks make branches mispredict
        np.maximum(best, vt[k], out=best)
    return pred, best


LATE_SHARE = 6  # late_margin averages the last ceil(E / LATE_SHARE) epochs: the last 5 of 30


def late_epochs(n_epochs: int) -> int:
    """How many of a run's last epochs ``late_margin`` averages: ``ceil(n_epochs / 6)`` (1 for runs of up to 6
    epochs, 5 for 30)."""
    return -(-n_epochs // LATE_SHARE)


class _Accumulator:
    """Streaming per-example folds over epochs; memory is a few arrays of length N."""

    _FLOAT = ("mean_g", "m2_g", "aum", "margin", "el2n", "entropy", "loss", "late_margin")
    _EPOCH_INT = ("count", "n_correct", "forgets", "first_learned", "streak_start", "late_count")  # counts, epochs
    _INT = _EPOCH_INT + ("last_pred",)  # last_pred: int32
    _MISSING_IS_MINUS_ONE = ("first_learned", "streak_start", "last_pred")

    def __init__(self, epochs: list[int], *, keep_epochs: bool = False, el2n_epoch: int | None = None) -> None:
        """``epochs``: the run's epoch numbers; with ``keep_epochs``, every example's per-epoch gold probability
        and prediction are kept as (E, N) arrays (``epoch_p`` float32, NaN where not logged; ``epoch_pred``
        int16). ``el2n_epoch``: keep that epoch's EL2N (``el2n_at``, NaN where not logged).
        Counts and epoch numbers are int16 when every epoch number fits (less memory to fault in and stream
        through each epoch), else int32."""
        self.n = 0
        self.late = frozenset(epochs[len(epochs) - late_epochs(len(epochs)) :])  # late_margin's epochs
        self._float = self._FLOAT + (("el2n_at",) if el2n_epoch is not None else ())
        self.epoch_row = {e: i for i, e in enumerate(epochs)} if keep_epochs else None
        self.epoch_p = np.empty((len(epochs) if keep_epochs else 0, 0), dtype=np.float32)
        self.epoch_pred = np.empty(self.epoch_p.shape, dtype=np.int16)
        for name in self._float:
            setattr(self, name, np.empty(0))
        small = max(epochs, default=0) < np.iinfo(np.int16).max and len(epochs) < np.iinfo(np.int16).max
        for name in self._INT:
            setattr(self, name, np.empty(0, dtype=np.int16 if small and name in self._EPOCH_INT else np.int32))

    def grow(self, n: int) -> None:
        extra = n - self.n
        if extra <= 0:
            return
        for name in self._float + self._INT:
            fill = np.nan if name == "el2n_at" else -1 if name in self._MISSING_IS_MINUS_ONE else 0
            old = getattr(self, name)
            # zeros come from the system as untouched pages: no fill pass, and the first epoch's parallel
            # chunks fault them in (about 1 GB of accumulators at 10M examples)
            new = np.zeros(n, dtype=old.dtype) if fill == 0 else np.full(n, fill, dtype=old.dtype)
            new[: self.n] = old
            setattr(self, name, new)
        if self.epoch_row is not None:  # usually once: the reader knows N from the first epoch
            p = np.full((len(self.epoch_row), n), np.nan, dtype=np.float32)
            pred = np.zeros(p.shape, dtype=np.int16)
            p[:, : self.n], pred[:, : self.n] = self.epoch_p, self.epoch_pred
            self.epoch_p, self.epoch_pred = p, pred
        self.n = n

    def update(self, epoch: int, pos: np.ndarray | slice, q: EpochQuantities, *, el2n_epoch: int | None) -> None:
        """Fold one epoch's rows into the running values: ``pos`` holds their distinct positions, as an index
        array or a slice. Every right-hand side is a new array, so a slice (a view) never aliases what it is
        assigned to."""
        count = self.count[pos] + 1
        self.count[pos] = count
        # Welford's update, with whole arrays: delta uses the mean before the update, (g - new mean) after (a
        # variance from sums of g and g^2 would lose ~1e-16 to cancellation: 1e-11 of a variability of 1e-6)
        mean = self.mean_g[pos]
        delta = q.p_gold - mean
        new_mean = mean + delta / count
        self.m2_g[pos] += delta * (q.p_gold - new_mean)
        self.mean_g[pos] = new_mean

        correct = q.correct.astype(self.n_correct.dtype)
        self.n_correct[pos] += correct
        # start of the current run of correct epochs; -1 after a wrong one (or before the first logged epoch)
        streak = self.streak_start[pos]
        self.forgets[pos] += (streak >= 0) & ~q.correct  # correct before, wrong now: Toneva et al. 2019, Sec. 3
        # branch-free forms of np.where (a random mask makes np.where's branches mispredict, ~5x slower):
        first = self.first_learned[pos]  # first learned := epoch where not learned before and correct now
        self.first_learned[pos] = first + ((first < 0) & q.correct) * (epoch - first)
        started = streak + (streak < 0) * (epoch - streak)
        self.streak_start[pos] = correct * (started + 1) - 1
        self.last_pred[pos] = q.pred

        if q.logit_margin is not None:
            self.aum[pos] += q.logit_margin
        else:
            self.aum[pos] = np.nan
        self.margin[pos] += q.prob_margin
        if epoch in self.late:
            self.late_margin[pos] += q.prob_margin
            self.late_count[pos] += 1
        self.el2n[pos] += q.el2n
        self.entropy[pos] += q.entropy
        self.loss[pos] += q.loss
        if el2n_epoch == epoch:
            self.el2n_at[pos] = q.el2n
        if self.epoch_row is not None:
            row = self.epoch_row[epoch]
            self.epoch_p[row, pos] = q.p_gold
            self.epoch_pred[row, pos] = q.pred


def compute_stats(
    run: Run | str | Path,
    *,
    max_epochs: int | None = None,
    strict: bool = False,
    variability_ci: bool = False,
    el2n_epoch: int | None = None,
) -> pa.Table:
    """One row per example, sorted by id, with the columns ``COLUMNS`` (see the module docstring).

    Parameters
    ----------
    run : a :class:`Run` or a run directory.
    max_epochs : use only epochs ``0..max_epochs-1`` (allenai's ``--burn_out``).
    strict : an id missing from some epoch is an error (otherwise it is allowed and ``n_epochs`` counts).
    variability_ci : add ``variability_ci = sqrt(v + v^2 / (E_i - 1))``, null where E_i = 1.
    el2n_epoch : add ``el2n_epoch_<e>``, the EL2N score of that one epoch (Paul et al. 2021), null for
        examples not logged in it.

    The table's schema metadata ``cartography`` (JSON) records the run, E, K, layout and label names.
    """
    return _score(run, max_epochs, strict, variability_ci, el2n_epoch, keep_epochs=False)[0]


@dataclass(frozen=True)
class EpochMatrix:
    """Per-epoch values of every example, rows aligned with the statistics table (sorted by id)."""

    epochs: np.ndarray  # (E,) epoch numbers
    p_gold: np.ndarray  # (E, N) float32 g_e, NaN where the example was not logged in epoch e
    pred: np.ndarray  # (E, N) int16 argmax z_e (0 where not logged)


def compute_stats_and_epochs(
    run: Run | str | Path, *, max_epochs: int | None = None, strict: bool = False
) -> tuple[pa.Table, EpochMatrix]:
    """:func:`compute_stats` and, from the same single read of the logs, the per-epoch gold probability and
    prediction of every example: 6 bytes per example and epoch (the dashboard's trajectories)."""
    return _score(run, max_epochs, strict, False, None, keep_epochs=True)


def _score(run, max_epochs, strict, variability_ci, el2n_epoch, *, keep_epochs: bool):
    run = run if isinstance(run, Run) else open_run(run)
    reader = DynamicsReader(run, max_epochs=max_epochs, strict=strict)
    if el2n_epoch is not None and not 0 <= el2n_epoch < len(reader.epochs):
        raise LogError(f"el2n_epoch {el2n_epoch} is outside the run's epochs 0..{len(reader.epochs) - 1}")
    acc = fold(reader, el2n_epoch=el2n_epoch, keep_epochs=keep_epochs)
    table = table_of(run, reader, acc, variability_ci=variability_ci, el2n_epoch=el2n_epoch)
    if not keep_epochs:
        return table, None
    order = row_order(reader.ids)  # usually a slice: the arrays are returned as they are, not copied
    epochs = np.array(list(acc.epoch_row), dtype=np.int64)
    return table, EpochMatrix(epochs, acc.epoch_p[:, order], acc.epoch_pred[:, order])


def fold(reader: DynamicsReader, *, el2n_epoch: int | None = None, keep_epochs: bool = False) -> _Accumulator:
    """Every batch of ``reader`` folded into a new :class:`_Accumulator`, epoch after epoch.

    An epoch's batches (parquet batches, file parts) are folded together in position order: chunks of
    consecutive positions gather their rows, so the running values are read and written sequentially however
    the rows were shuffled or split, and examples missing from the epoch are skipped. An epoch read in several
    batches is joined into one copy first (memory: one more epoch of logits)."""
    acc = _Accumulator([ef.epoch for ef in reader.epochs], keep_epochs=keep_epochs, el2n_epoch=el2n_epoch)
    row_at = arange = np.empty(0, dtype=np.int32)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for epoch, group in itertools.groupby(reader, key=lambda b: b.epoch):
            batches = list(group)
            acc.grow(reader.n)
            labels = reader.position_labels  # after the epoch's batches are checked (may be a new array)
            kind = batches[0].kind
            if len(batches) == 1:
                b = batches[0]
                pos, values = b.pos, b.values
            else:  # one copy of the epoch: a gather from one array is several times faster than from many
                pos = np.concatenate([b.pos for b in batches])
                values = np.concatenate([b.values for b in batches])
            del batches
            values = values.astype(kernel_dtype(reader.dtype, reader.k), copy=False)  # one precision for the run
            # row_at[j]: the epoch's row holding position j, -1 if none (int32 while it fits: half the traffic);
            # one buffer for every epoch, refilled: a new one would fault in N x 4 fresh bytes an epoch
            dtype = np.int32 if pos.size < 2**31 else np.int64
            if row_at.size != acc.n or row_at.dtype != dtype:
                row_at = np.empty(acc.n, dtype=dtype)
            if arange.size < pos.size or arange.dtype != dtype:
                arange = np.arange(pos.size, dtype=dtype)  # kept too, like row_at
            row_at.fill(-1)
            row_at[pos] = arange[: pos.size]

            def fold_chunk(c0: int, values=values, labels=labels, row_at=row_at, kind=kind, epoch=epoch) -> None:
                rows = row_at[c0 : c0 + CHUNK]
                present = rows >= 0
                if present.all():
                    sel = slice(c0, c0 + rows.size)
                else:
                    sel = c0 + np.flatnonzero(present)
                    rows = rows[present]
                if rows.size:  # take: ~4x fancy indexing; the labels by position (checked by the reader): no gather
                    q = epoch_quantities(np.take(values, rows, axis=0), labels[sel], kind)
                    acc.update(epoch, sel, q, el2n_epoch=el2n_epoch)

            # Chunks touch disjoint positions, so they fold in parallel (numpy releases the GIL); small chunks
            # also keep temporaries in cache, reused rather than faulted in.
            list(pool.map(fold_chunk, range(0, acc.n, CHUNK)))
    return acc


def row_order(ids: np.ndarray) -> slice | np.ndarray:
    """The table's rows sorted by id: positions are usually in id order already (ingest sorts new ids), then
    no gather at all."""
    in_order = len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1]))
    return slice(None) if in_order else np.argsort(ids, kind="stable")


def table_of(run: Run, reader: DynamicsReader, acc: _Accumulator, *, variability_ci=False, el2n_epoch=None) -> pa.Table:
    """The statistics table of a folded run. The accumulator's sums become means in place (``acc`` is spent):
    with rows already in id order, the table's float columns are the accumulator's own memory, not copies."""
    ids = reader.ids
    order = row_order(ids)  # (N,) rows sorted by id: usually a slice, so a[order] is a view
    count = acc.count[order].astype(np.float64)
    conf = acc.mean_g[order]
    var = acc.m2_g[order]
    var /= count  # population variance

    def mean(a: np.ndarray) -> np.ndarray:
        a = a[order]
        a /= count
        return a

    def maybe_null(a: np.ndarray) -> pa.Array:
        a = a[order]
        return pa.array(a, type=pa.int32(), mask=a < 0)

    aum, margin = mean(acc.aum), mean(acc.margin)
    with np.errstate(invalid="ignore", divide="ignore"):
        late = acc.late_margin[order]
        late /= acc.late_count[order]  # NaN: logged in none of the late epochs
    late_rule = uses_late_rule(run.meta)

    cols: dict[str, pa.Array] = {
        "id": pa.array(ids[order], type=pa.string() if ids.dtype == object else pa.int64()),
        "label": pa.array(reader.labels[order]),
        "n_epochs": pa.array(acc.count[order], type=pa.int32()),
        "confidence": pa.array(conf),
        "variability": pa.array(np.sqrt(var)),
        "correctness": pa.array(acc.n_correct[order] / count),
        "correct_count": pa.array(acc.n_correct[order], type=pa.int32()),
        "threshold_closeness": pa.array(conf * (1.0 - conf)),
        "forgetting_events": pa.array(acc.forgets[order], type=pa.int32()),
        "never_learned": pa.array(acc.n_correct[order] == 0),
        "first_learned_epoch": maybe_null(acc.first_learned),
        "consistently_learned_epoch": maybe_null(acc.streak_start),
        "aum": pa.array(aum, from_pandas=True),  # NaN -> null for a probability log
        "margin": pa.array(margin),
        "late_margin": pa.array(late, from_pandas=True),
        "el2n": pa.array(mean(acc.el2n)),
        "entropy": pa.array(mean(acc.entropy)),
        "loss": pa.array(mean(acc.loss)),
        # mean g (1 - g) = mean g - mean g^2 = conf - (var + conf^2): no sum of its own
        "data_iq_aleatoric": pa.array(np.maximum(conf - var - conf * conf, 0.0)),
        "pred_label": pa.array(acc.last_pred[order]),
        "label_issue": pa.array(label_issue_mask(aum, margin, late if late_rule else None)),
    }
    names = run.label_names
    if names is not None and len(names) != reader.k:
        raise LogError(
            f"{run.path / 'run.json'}: label_names has {len(names)} names but the logs have {reader.k} classes"
        )
    if variability_ci:
        with np.errstate(divide="ignore", invalid="ignore"):
            ci = np.sqrt(var + var * var / (count - 1.0))
        cols["variability_ci"] = pa.array(ci, mask=count < 2)
    if el2n_epoch is not None:
        cols[f"el2n_epoch_{el2n_epoch}"] = pa.array(acc.el2n_at[order], from_pandas=True)
    meta = table_meta_of(run, len(reader.epochs), reader.k, reader.kind, reader.padding_rows)
    table = pa.table(cols).replace_schema_metadata({"cartography": json.dumps(meta)})
    return table if names is None else name_classes(table, names)


TABLE_META_KEYS = (
    "run", "layout", "n_epochs", "n_classes", "kind", "pass", "preset", "label_issue_rule", "label_names",
    "padding_rows",
)  # fmt: skip


def table_meta_of(run: Run, n_epochs: int, n_classes: int, kind: str, padding_rows: int) -> dict:
    """A statistics table's ``cartography`` metadata (``TABLE_META_KEYS``), for either engine."""
    return {
        "run": run.path.name,  # no server path travels with a downloaded table
        "layout": run.layout,
        "n_epochs": n_epochs,
        "n_classes": n_classes,
        "kind": kind,
        "pass": run.meta.get("pass"),  # which logits the recorder logged (train or eval), when run.json says
        "preset": run.meta.get("preset"),  # the built-in trainer's preset, when it trained the run with one
        "label_issue_rule": run.meta.get("label_issue_rule"),  # "late_margin": judged late (label_issues.py)
        "label_names": run.label_names,
        "padding_rows": padding_rows,
    }


def name_classes(table: pa.Table, names: list[str]) -> pa.Table:
    """``table`` with ``label_name`` and ``pred_label_name`` (class k is ``names[k]``), replacing any there,
    and the names recorded in its metadata."""
    named = np.asarray([str(n) for n in names], dtype=object)
    for col in ("label", "pred_label"):
        top = int(table[col].to_numpy().max(initial=0))
        if top >= len(named):
            raise LogError(f"{len(named)} class names given, but {col} goes up to {top}")
    for col in ("label_name", "pred_label_name"):
        if col in table.column_names:
            table = table.drop_columns([col])
    meta = {**table_meta(table), "label_names": named.tolist()}
    table = table.append_column("label_name", pa.array(named[table["label"].to_numpy()], type=pa.string()))
    table = table.append_column("pred_label_name", pa.array(named[table["pred_label"].to_numpy()], type=pa.string()))
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"cartography": json.dumps(meta).encode()})


def class_names(table: pa.Table) -> list[str]:
    """The class names of a statistics table: from its metadata (the log's or the examples file's), else
    ``"0"``, ``"1"``, ... for every class the metadata counts or the labels and predictions reach."""
    meta = table_meta(table)
    top = max(int(table[c].to_numpy().max(initial=0)) for c in ("label", "pred_label")) + 1
    return meta.get("label_names") or [str(c) for c in range(max(top, meta.get("n_classes") or top))]


def table_meta(table: pa.Table) -> dict:
    """The ``cartography`` metadata that :func:`compute_stats` stores in its table's schema."""
    raw = (table.schema.metadata or {}).get(b"cartography")
    return json.loads(raw) if raw else {}
