"""Pooling over runs and split-half reliability (Kwok et al. 2024)."""

import math

import numpy as np
import pyarrow as pa
import pytest

from cartography_core import LogError, pool_runs, spearman_brown, split_half_reliability
from cartography_core.reliability import runs_needed
from cartography_core.stats import SCORES


def run_table(ids, label, conf, pred=None):
    n = len(ids)
    cols = {"id": ids, "label": label}
    for s in SCORES:
        cols[s] = conf
    cols["never_learned"] = [False] * n
    cols["pred_label"] = pred if pred is not None else label
    return pa.table(cols)


def test_pool_means_and_standard_errors_over_the_union_of_ids():
    a = run_table([1, 2], [0, 1], [0.2, 0.6], pred=[1, 1])
    b = run_table([1, 3], [0, 0], [0.4, 0.9], pred=[0, 0])
    c = run_table([1], [0], [0.9], pred=[1])
    t = pool_runs([a, b, c]).to_pylist()
    assert [r["id"] for r in t] == [1, 2, 3]
    assert t[0]["n_runs"] == 3 and t[0]["confidence"] == pytest.approx(0.5)
    assert t[0]["confidence_se"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1) / math.sqrt(3))
    assert t[1]["confidence_se"] is None  # one run: no spread to measure
    assert t[0]["pred_label"] == 1  # votes 1, 0, 1


def test_pool_refuses_conflicting_gold_labels():
    with pytest.raises(LogError, match="id 1 has gold label 1, another run has 0"):
        pool_runs([run_table([1], [0], [0.5]), run_table([1], [1], [0.5])], ["a", "b"])


def test_spearman_brown_closed_form_and_runs_needed():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.6, 1) == pytest.approx(0.6)
    # r = 0.5 for 2 runs; target 0.9 needs k = 0.9*0.5/(0.5*0.1) = 9 times 2 runs
    assert runs_needed(0.5, 2, 0.9) == 18


def test_split_half_is_one_for_identical_runs_and_low_for_noise():
    rng = np.random.default_rng(0)
    ids = list(range(200))
    same = [run_table(ids, [0] * 200, rng.random(200).tolist())] * 4
    assert split_half_reliability(same, "confidence").split_half == pytest.approx(1.0)
    noise = [run_table(ids, [0] * 200, rng.random(200).tolist()) for _ in range(4)]
    assert abs(split_half_reliability(noise, "confidence").split_half) < 0.2
    signal = rng.random(200)
    noisy = [run_table(ids, [0] * 200, (signal + 0.3 * rng.random(200)).tolist()) for _ in range(6)]
    rel = split_half_reliability(noisy, "confidence")
    assert 0.8 < rel.split_half < rel.full < 1
