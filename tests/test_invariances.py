"""Invariances every score in the registry must have (sklearn's test_common habit): shifting an example's
logits by a constant, permuting the classes consistently, shuffling rows, and leaving inputs unmodified."""

import numpy as np
import pytest

from cartography_core import SCORES, compute_stats, epoch_quantities
from tests.logs import epoch_rows, write_log

N, K, E = 40, 4, 5


def random_log(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, N)
    logits = rng.normal(size=(E, N, K)) * 2 + 1.5 * np.eye(K)[labels] * np.linspace(0, 2, E)[:, None, None]
    return np.arange(N), labels, logits  # continuous values: no argmax ties, so the class order is irrelevant


def stats_of(tmp_path, name, ids, labels, logits, order=None):
    epochs = []
    for e in range(E):
        rows = epoch_rows(ids, labels, logits[e])
        epochs.append([rows[i] for i in (order[e] if order is not None else range(N))])
    return compute_stats(write_log(tmp_path / name, epochs, "jsonl")).to_pandas().set_index("id")


def assert_scores_equal(a, b):
    for score in SCORES:
        np.testing.assert_allclose(a[score].to_numpy(float), b[score].to_numpy(float), atol=1e-9, err_msg=score)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adding_a_constant_to_an_examples_logits_changes_no_score(tmp_path, seed):
    ids, labels, logits = random_log(seed)
    shift = np.random.default_rng(seed + 10).normal(size=(E, N, 1)) * 5  # per example and epoch
    a = stats_of(tmp_path, "a", ids, labels, logits)
    b = stats_of(tmp_path, "b", ids, labels, logits + shift)
    assert_scores_equal(a, b)
    assert (a["pred_label"] == b["pred_label"]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuting_classes_consistently_changes_no_score(tmp_path, seed):
    ids, labels, logits = random_log(seed)
    perm = np.random.default_rng(seed + 20).permutation(K)  # class c becomes class perm[c]
    moved = np.empty_like(logits)
    moved[..., perm] = logits
    a = stats_of(tmp_path, "a", ids, labels, logits)
    b = stats_of(tmp_path, "b", ids, perm[labels], moved)
    assert_scores_equal(a, b)
    assert (perm[a["pred_label"].to_numpy()] == b["pred_label"].to_numpy()).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_row_order_within_epochs_changes_nothing(tmp_path, seed):
    ids, labels, logits = random_log(seed)
    rng = np.random.default_rng(seed + 30)
    a = stats_of(tmp_path, "a", ids, labels, logits)
    b = stats_of(tmp_path, "b", ids, labels, logits, order=[rng.permutation(N) for _ in range(E)])
    assert a.equals(b)


def test_epoch_quantities_leave_their_inputs_unmodified():
    _, labels, logits = random_log(3)
    for kind, values in (("logits", logits[0]), ("probs", np.exp(logits[0]) / np.exp(logits[0]).sum(1, keepdims=True))):
        before_v, before_y = values.copy(), labels.copy()
        epoch_quantities(values, labels, kind)
        assert np.array_equal(values, before_v) and np.array_equal(labels, before_y)
