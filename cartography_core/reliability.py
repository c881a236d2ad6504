"""Several training runs of one dataset: pooled scores and how reliable they are (Kwok et al. 2024).

For R runs, each example's pooled score is the mean over the R_i runs that logged it, with standard error
``se = sd_r / sqrt(R_i)`` (sd_r with ddof=1; null when R_i = 1). In a run where the example was never
learned, ``first_learned_epoch`` / ``consistently_learned_epoch`` count as E_r, that run's number of epochs
(one past its last epoch), so "never" pools as the latest possible value rather than being left out.

Reliability of a score over runs::

    split-half r    Spearman rho between the score averaged over one random half of the runs and over the
                    other half, averaged over ``n_splits`` random splits (needs R >= 2)
    Spearman-Brown  reliability of an average of k times as many runs: k r / (1 + (k - 1) r); the R-run
                    reliability is the k = 2 case of the split-half r
    runs needed     the R giving a target reliability t: (R / 2) * t (1 - r) / (r (1 - t)), rounded up

Two groups of runs (e.g. two architectures, ``run.json``'s ``group``) are compared example by example with
Welch's t-test on the score over each group's runs, and Benjamini-Hochberg q-values across examples
(:func:`compare_groups`); the few most significant examples "fingerprint" a group (Kwok et al. 2024, Sec. 5).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import LogError, show_id
from .label_issues import FLAG, LATE, label_issue_mask, pooled_rule
from .scores import SCORES
from .stats import name_classes, table_meta


def pooled_meta(metas: list[dict], names: list[str]) -> dict:
    """The metadata of a table pooled from runs with table metadata ``metas`` named ``names``: the first run's
    E, K, kind, ..., no single ``run``, the ``runs``, the flag rule they agree on (``label_issues.pooled_rule``)
    and ``padding_rows`` summed over the runs."""
    padding = sum(m.get("padding_rows") or 0 for m in metas)
    return {**metas[0], "run": None, "runs": names, "label_issue_rule": pooled_rule(metas), "padding_rows": padding}


def pool_runs(tables: list[pa.Table], names: list[str] | None = None) -> pa.Table:
    """One row per example (sorted by id) over the union of ids of ``tables`` (one statistics table a run).

    Columns: ``id, label, n_runs``, then for every score in ``stats.SCORES`` its mean over runs and
    ``<score>_se``, ``never_learned`` (in every run that logged it), ``pred_label`` (the most frequent final
    prediction, ties to the lowest class), ``label_issue`` (from the pooled scores, by
    ``label_issues.label_issue_mask``; by late_margin when every run is judged late) and ``label_name`` /
    ``pred_label_name`` when the runs name classes.
    """
    if not tables:
        raise LogError("no runs to pool")
    names = names or [f"run {r}" for r in range(len(tables))]
    check_one_pass([table_meta(t).get("pass") for t in tables], names)
    ids = pd.Index(np.unique(np.concatenate([t["id"].to_numpy(zero_copy_only=False) for t in tables])))
    n, r_total = len(ids), len(tables)
    pos = [ids.get_indexer(t["id"].to_numpy(zero_copy_only=False)) for t in tables]  # per run: (N_r,)
    label = np.full(n, -1, dtype=np.int64)
    source = np.zeros(n, dtype=np.int64)  # the run that gave each label first, to name it
    for r, (p, t, name) in enumerate(zip(pos, tables, names)):
        lab = t["label"].to_numpy()
        clash = np.flatnonzero((label[p] >= 0) & (label[p] != lab))
        if clash.size:
            i = clash[0]
            raise LogError(
                f"{name}: id {t['id'][int(i)].as_py()!r} has gold label {lab[i]}, {names[source[p[i]]]} has "
                f"{label[p][i]} ({clash.size} ids differ); runs pooled as seeds must share their gold labels"
            )
        new = label[p] < 0
        source[p[new]] = r
        label[p] = lab
    present = np.zeros((r_total, n), dtype=bool)
    for r, p in enumerate(pos):
        present[r, p] = True
    n_runs = present.sum(axis=0)
    cols: dict[str, object] = {"id": pa.array(ids.to_numpy()), "label": label, "n_runs": n_runs.astype(np.int32)}
    for score in SCORES:
        mat = np.full((r_total, n), np.nan)  # (R, N) float64, NaN where a run did not log the example
        for r, (p, t) in enumerate(zip(pos, tables)):
            v = t[score].to_numpy(zero_copy_only=False).astype(np.float64)
            if score.endswith("_epoch") and np.isnan(v).any():  # never learned in run r: E_r (docs/scores.md)
                if "n_epochs" not in table_meta(t):
                    raise LogError(f"{names[r]}: a statistics table without its epoch count cannot pool {score}")
                v = np.where(np.isnan(v), float(table_meta(t)["n_epochs"]), v)
            mat[r, p] = v
        counted = (~np.isnan(mat)).sum(axis=0)  # (N,) the values averaged: runs that logged it (and define it)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (aum of probability logs) -> null
            cols[score] = pa.array(np.nanmean(mat, axis=0), from_pandas=True)
            sd = np.nanstd(mat, axis=0, ddof=1)  # NaN where fewer than 2 values
        cols[f"{score}_se"] = pa.array(np.where(counted >= 2, sd / np.sqrt(counted), np.nan), from_pandas=True)
    never = np.ones(n, dtype=bool)
    k = max(int(t["pred_label"].to_numpy().max()) for t in tables) + 1
    votes = np.zeros((n, max(k, int(label.max()) + 1)), dtype=np.int32)  # (N, K)
    for p, t in zip(pos, tables):
        never[p] &= t["never_learned"].to_numpy(zero_copy_only=False)
        votes[p, t["pred_label"].to_numpy()] += 1
    cols["never_learned"] = never
    cols["pred_label"] = votes.argmax(axis=1)
    meta = pooled_meta([table_meta(t) for t in tables], names)
    rule = meta["label_issue_rule"]
    late = cols["late_margin"].to_numpy(zero_copy_only=False) if rule == LATE else None
    cols[FLAG] = label_issue_mask(
        cols["aum"].to_numpy(zero_copy_only=False), cols["margin"].to_numpy(zero_copy_only=False), late
    )
    pooled = pa.table(cols).replace_schema_metadata({"cartography": json.dumps(meta)})
    return name_classes(pooled, meta["label_names"]) if meta.get("label_names") else pooled


@dataclass(frozen=True)
class Reliability:
    """Split-half reliability of one score over R runs."""

    score: str
    n_runs: int
    split_half: float  # mean Spearman rho between halves of R // 2 runs
    full: float  # Spearman-Brown reliability of the mean over all R runs

    def runs_needed(self, target: float = 0.9) -> int:
        """Runs for the mean to reach ``target`` reliability, by Spearman-Brown from the split-half r."""
        return runs_needed(self.split_half, self.n_runs // 2, target)


def spearman_brown(r: float, k: float) -> float:
    """Reliability of an average of k times as many runs: ``k r / (1 + (k - 1) r)``.

    >>> round(spearman_brown(0.5, 2), 6)
    0.666667
    """
    return k * r / (1 + (k - 1) * r)


def runs_needed(r: float, runs_per_half: int, target: float) -> int:
    """Smallest number of runs whose mean reaches ``target`` reliability, given r for ``runs_per_half`` runs."""
    if r <= 0:
        raise LogError(f"split-half reliability {r:.3f} is not positive: more runs cannot make this score reliable")
    k = target * (1 - r) / (r * (1 - target))
    return math.ceil(k * runs_per_half - 1e-9)


def check_one_pass(passes: list[str | None], names: list[str]) -> None:
    """Raise :class:`LogError` when runs recorded different logits (``run.json``'s ``pass``: the training
    forward pass or an eval pass): their scores measure different things and are not pooled or compared as
    seeds. Runs that do not say (None) are taken as they are."""
    said = [(name, p) for name, p in zip(names, passes) if p is not None]
    for name, p in said[1:]:
        if p != said[0][1]:
            raise LogError(
                f"{said[0][0]} records the logits of the {said[0][1]} pass but {name} those of the {p} pass "
                '(run.json "pass"); pool and compare runs recorded the same way'
            )


def check_same_labels(tables: list[pa.Table], names: list[str]) -> None:
    """Raise :class:`LogError` when runs that log the same ids (in the same order) give one a different gold
    label: their scores rate different labels (a retrain after relabeling is another dataset), and are
    neither compared as seeds nor pooled."""
    labels = [t["label"].to_numpy() for t in tables]
    raise_for_different_labels(labels, lambda i: tables[0]["id"][int(i)].as_py(), names)


def raise_for_different_labels(labels: list[np.ndarray], id_at, names: list[str], *, part: bool = False) -> None:
    """The check of :func:`check_same_labels` on ``labels``, the (n,) gold labels of each run ``names``, row i
    those of id ``id_at(i)``; ``part``: the rows are one part of the ids (the Dask engine checks each partition
    this way), so the count of differing ids is a lower bound."""
    differ = np.zeros(len(labels[0]), dtype=bool)
    for other in labels[1:]:  # a loop over runs, not examples; no (n, R) copy
        differ |= other != labels[0]
    if differ.any():
        i = int(np.flatnonzero(differ)[0])
        row = [int(x[i]) for x in labels]
        r = next(r for r, v in enumerate(row) if v != row[0])
        raise LogError(
            f"{names[r]}: id {show_id(id_at(i))} has gold label {row[r]}, {names[0]} has {row[0]} "
            f"({'at least ' if part else ''}{int(differ.sum())} ids differ); runs compared as seeds must share "
            "their gold labels"
        )


def split_half_reliability(
    tables: list[pa.Table], score: str, *, n_splits: int = 20, seed: int = 0, names: list[str] | None = None
) -> Reliability:
    """Split-half reliability of ``score`` over runs that log the same examples (Kwok et al. 2024, Sec. 3);
    ``names`` name the runs in the error for runs whose ids differ."""
    from scipy.stats import spearmanr  # imported here: scipy.stats is slow to import, and only this needs it

    r_total = len(tables)
    if r_total < 2:
        raise LogError(f"split-half reliability needs at least 2 runs, got {r_total}")
    names = names or [f"run {r}" for r in range(r_total)]
    check_one_pass([table_meta(t).get("pass") for t in tables], names)
    ids = tables[0]["id"]
    for name, t in zip(names[1:], tables[1:]):
        if not t["id"].equals(ids):
            only = len(set(t["id"].to_pylist()) ^ set(ids.to_pylist()))
            raise LogError(
                f"split-half reliability needs runs that log the same examples: {names[0]} ({len(ids)} ids) and "
                f"{name} ({len(t['id'])} ids) differ on {only} ids"
            )
    check_same_labels(tables, names)
    mat = np.stack([t[score].to_numpy(zero_copy_only=False).astype(np.float64) for t in tables])  # (R, N)
    rng = np.random.default_rng(seed)
    half = r_total // 2
    rhos = []
    for _ in range(n_splits):
        perm = rng.permutation(r_total)
        a, b = mat[perm[:half]].mean(axis=0), mat[perm[half : 2 * half]].mean(axis=0)
        rhos.append(spearmanr(a, b).statistic)
    r = float(np.mean(rhos))
    return Reliability(score, r_total, r, spearman_brown(r, r_total / half))


def _score_matrix(tables: list[pa.Table], score: str, ids: pa.ChunkedArray, what: str) -> np.ndarray:
    """(R, N) float64 of ``score``, runs that log exactly ``ids`` (in id order, as compute_stats sorts them) with
    the same gold labels within the group."""
    for r, t in enumerate(tables):
        if not t["id"].equals(ids):
            missing = len(set(ids.to_pylist()) ^ set(t["id"].to_pylist()))
            raise LogError(
                f"{what}, run {r}: logs other examples than the first run of group A ({missing} ids differ); "
                "every run of both groups must log the same examples to compare them"
            )
    check_same_labels(tables, [f"{what}, run {r}" for r in range(len(tables))])
    return np.stack([t[score].to_numpy(zero_copy_only=False).astype(np.float64) for t in tables])


def compare_groups(group_a: list[pa.Table], group_b: list[pa.Table], score: str) -> pa.Table:
    """Per example: ``mean_a``, ``mean_b``, ``diff = mean_b - mean_a``, Welch's ``t`` and two-sided ``p_value``
    (``scipy.stats.ttest_ind(equal_var=False)``), and Benjamini-Hochberg ``q_value`` across examples; sorted by
    p-value, then id. Each group needs at least 2 runs, all logging the same examples."""
    from scipy.stats import false_discovery_control, ttest_ind

    if len(group_a) < 2 or len(group_b) < 2:
        raise LogError(f"comparing groups needs at least 2 runs in each, got {len(group_a)} and {len(group_b)}")
    if score not in SCORES:
        raise LogError(f"unknown score {score!r}; choose from: {', '.join(SCORES)}")
    ids = group_a[0]["id"]
    a = _score_matrix(group_a, score, ids, "group A")
    b = _score_matrix(group_b, score, ids, "group B")
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's "precision loss" on identical scores: p is NaN
        test = ttest_ind(b, a, axis=0, equal_var=False)
    p = np.where(np.isnan(test.pvalue), 1.0, test.pvalue)  # identical constant scores: no evidence of a difference
    order = np.lexsort((np.arange(len(p)), p))
    table = pa.table(
        {
            "id": ids,
            "mean_a": a.mean(axis=0),
            "mean_b": b.mean(axis=0),
            "diff": b.mean(axis=0) - a.mean(axis=0),
            "t": pa.array(test.statistic, from_pandas=True),
            "p_value": p,
            "q_value": false_discovery_control(p, method="bh"),
        }
    )
    return table.take(pa.array(order))
