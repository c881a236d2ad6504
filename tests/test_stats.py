"""Every score on hand-worked logs: the expected numbers are derived here, not read from the code."""

import math
import re

import numpy as np
import pytest

from cartography_core import COLUMNS, LogError, compute_stats, epoch_quantities
from tests.logs import LAYOUTS, write_log

L3 = math.log(3.0)  # softmax([0, ln 3]) = [1/4, 3/4]
RIGHT, WRONG, TIE = [0.0, L3], [L3, 0.0], [0.0, 0.0]  # for gold label 1

# name: (gold, logits per epoch)
CASES = {
    "easy": (1, [RIGHT] * 4),
    "tie_gold_high": (1, [TIE] * 4),  # exact tie with a lower index counts as wrong
    "tie_gold_low": (0, [TIE] * 4),  # ... and as right when gold is the lowest index
    "never": (0, [RIGHT] * 4),  # gold 0 but class 1 wins every epoch
    "late": (1, [WRONG, WRONG, RIGHT, RIGHT]),
    "oscillator": (1, [RIGHT, WRONG, RIGHT, WRONG]),
    "relearned": (1, [RIGHT, WRONG, RIGHT, RIGHT]),
}
IDS = {name: i for i, name in enumerate(CASES)}

H = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # entropy of (1/4, 3/4)
EL2N_Q = math.sqrt(2 * 0.25**2)  # ||(3/4, 1/4) - (0, 1)|| = ||(1/4, 1/4)|| in either order
EL2N_3Q = math.sqrt(2 * 0.75**2)

# name: {score: value}, worked by hand from g_e (gold probability) and acc_e per epoch
EXPECTED = {
    "easy": dict(
        confidence=0.75,
        variability=0.0,
        correctness=1.0,
        correct_count=4,
        threshold_closeness=0.1875,
        forgetting_events=0,
        never_learned=False,
        first_learned_epoch=0,
        consistently_learned_epoch=0,
        aum=L3,
        margin=0.5,
        el2n=EL2N_Q,
        entropy=H,
        loss=-math.log(0.75),
        data_iq_aleatoric=0.1875,
        pred_label=1,
    ),
    "tie_gold_high": dict(
        confidence=0.5,
        variability=0.0,
        correctness=0.0,
        correct_count=0,
        threshold_closeness=0.25,
        forgetting_events=0,
        never_learned=True,
        first_learned_epoch=None,
        consistently_learned_epoch=None,
        aum=0.0,
        margin=0.0,
        el2n=math.sqrt(0.5),
        entropy=math.log(2),
        loss=math.log(2),
        data_iq_aleatoric=0.25,
        pred_label=0,
    ),
    "tie_gold_low": dict(
        confidence=0.5,
        correctness=1.0,
        never_learned=False,
        first_learned_epoch=0,
        consistently_learned_epoch=0,
        aum=0.0,
        pred_label=0,
    ),
    "never": dict(
        confidence=0.25,
        variability=0.0,
        correctness=0.0,
        never_learned=True,
        forgetting_events=0,
        first_learned_epoch=None,
        consistently_learned_epoch=None,
        aum=-L3,
        margin=-0.5,
        el2n=EL2N_3Q,
        loss=-math.log(0.25),
        data_iq_aleatoric=0.1875,
        pred_label=1,
    ),
    "late": dict(
        confidence=0.5,
        variability=0.25,
        correctness=0.5,
        correct_count=2,
        threshold_closeness=0.25,
        forgetting_events=0,
        never_learned=False,
        first_learned_epoch=2,
        consistently_learned_epoch=2,
        aum=0.0,
        margin=0.0,
        el2n=(EL2N_3Q + EL2N_Q) / 2,
        entropy=H,
        loss=-(math.log(0.25) + math.log(0.75)) / 2,
        data_iq_aleatoric=0.1875,
        pred_label=1,
    ),
    "oscillator": dict(
        confidence=0.5,
        variability=0.25,
        correctness=0.5,
        forgetting_events=2,
        first_learned_epoch=0,
        consistently_learned_epoch=None,
        pred_label=0,
    ),
    "relearned": dict(
        confidence=0.625,
        variability=math.sqrt(3 * 0.125**2 + 0.375**2) / 2,
        correctness=0.75,
        forgetting_events=1,
        first_learned_epoch=0,
        consistently_learned_epoch=2,
        aum=L3 / 2,
        pred_label=1,
    ),
}


def hand_log(tmp_path, layout="jsonl"):
    epochs = [
        [{"id": IDS[n], "label": gold, "logits": logits[e]} for n, (gold, logits) in CASES.items()] for e in range(4)
    ]
    return write_log(tmp_path / layout, epochs, layout)


@pytest.fixture(scope="module")
def stats_by_id(tmp_path_factory):
    table = compute_stats(hand_log(tmp_path_factory.mktemp("hand")))
    rows = table.to_pylist()
    return {r["id"]: r for r in rows}, table


def test_columns_are_exactly_the_documented_ones(stats_by_id):
    assert stats_by_id[1].column_names == COLUMNS


@pytest.mark.parametrize("name", list(EXPECTED))
def test_hand_worked_scores(stats_by_id, name):
    row = stats_by_id[0][IDS[name]]
    assert row["n_epochs"] == 4
    for score, want in EXPECTED[name].items():
        got = row[score]
        if want is None or isinstance(want, (bool, int)) and not isinstance(want, float):
            assert got == want, (name, score)
        else:
            assert got == pytest.approx(want, abs=1e-12), (name, score)


def test_constant_logits_give_exactly_zero_variability(stats_by_id):
    for name in ("easy", "tie_gold_high", "never"):
        assert stats_by_id[0][IDS[name]]["variability"] == 0.0


def test_missing_epoch_counts_only_logged_epochs(tmp_path):
    # id 7 is logged in epochs 0 and 2 only: right then wrong -> one forgetting event over its own epochs
    full = [{"id": 1, "label": 1, "logits": RIGHT}]
    epochs = [full + [{"id": 7, "label": 1, "logits": RIGHT}], full, full + [{"id": 7, "label": 1, "logits": WRONG}]]
    row = {r["id"]: r for r in compute_stats(write_log(tmp_path, epochs, "jsonl")).to_pylist()}[7]
    assert row["n_epochs"] == 2
    assert row["confidence"] == pytest.approx(0.5)
    assert row["forgetting_events"] == 1
    assert row["consistently_learned_epoch"] is None
    assert row["pred_label"] == 0  # from epoch 2, its last logged epoch


def test_three_classes_margin_uses_the_best_other_class():
    z = np.array([[1.0, 3.0, 2.0]])
    q = epoch_quantities(z, np.array([2]))
    p = np.exp(z[0]) / np.exp(z[0]).sum()
    assert q.logit_margin[0] == pytest.approx(2.0 - 3.0)
    assert q.prob_margin[0] == pytest.approx(p[2] - p[1])
    assert q.entropy[0] == pytest.approx(-(p * np.log(p)).sum())
    assert q.el2n[0] == pytest.approx(math.sqrt(p[0] ** 2 + p[1] ** 2 + (1 - p[2]) ** 2))
    assert q.pred[0] == 1 and not q.correct[0]


def test_saturated_logits_stay_finite():
    q = epoch_quantities(np.array([[-30.0, 30.0], [800.0, -800.0]]), np.array([0, 0]))
    assert q.loss[0] == pytest.approx(60.0 + math.log1p(math.exp(-60)))
    assert q.loss[1] == 0.0 and q.p_gold[1] == 1.0
    assert np.isfinite(q.entropy).all()


def test_probability_logs_give_null_aum_and_same_other_scores(tmp_path):
    rows = lambda kind: [  # noqa: E731
        [{"id": i, "label": 1, kind: v} for i, v in enumerate([[0.25, 0.75], [0.75, 0.25]])] for _ in range(2)
    ]
    probs = compute_stats(write_log(tmp_path / "p", rows("probs"), "jsonl"))
    logits_rows = [[{"id": r["id"], "label": 1, "logits": list(np.log(r["probs"]))} for r in e] for e in rows("probs")]
    logits = compute_stats(write_log(tmp_path / "l", logits_rows, "jsonl"))
    assert probs["aum"].null_count == 2
    for col in ("confidence", "variability", "margin", "el2n", "entropy", "loss", "correctness"):
        np.testing.assert_allclose(probs[col].to_numpy(), logits[col].to_numpy(), atol=1e-12)


def test_max_epochs_uses_the_first_epochs_only(tmp_path):
    row = {r["id"]: r for r in compute_stats(hand_log(tmp_path), max_epochs=2).to_pylist()}[IDS["late"]]
    assert row["n_epochs"] == 2 and row["confidence"] == pytest.approx(0.25) and row["never_learned"]


def test_variability_ci_and_el2n_epoch(tmp_path):
    t = compute_stats(hand_log(tmp_path), variability_ci=True, el2n_epoch=1)
    row = {r["id"]: r for r in t.to_pylist()}[IDS["late"]]
    v = 0.25**2
    assert row["variability_ci"] == pytest.approx(math.sqrt(v + v * v / 3))
    assert row["el2n_epoch_1"] == pytest.approx(EL2N_3Q)


def test_label_names_column(tmp_path):
    log = hand_log(tmp_path)
    (log / "run.json").write_text('{"label_names": ["neg", "pos"]}')
    t = compute_stats(log)
    assert t["label_name"].to_pylist() == [["neg", "pos"][y] for y in t["label"].to_pylist()]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_identical_statistics(tmp_path, layout):
    rng = np.random.default_rng(0)
    n, k, e = 50, 3, 4
    ids = np.arange(100, 100 + n)
    labels = rng.integers(0, k, n)
    epochs = []
    for _ in range(e):
        order = rng.permutation(n)  # shuffled differently each epoch
        logits = np.round(rng.normal(size=(n, k)) * 8) / 8  # exact in float32 and in JSON
        epochs.append([{"id": int(ids[i]), "label": int(labels[i]), "logits": logits[i].tolist()} for i in order])
    got = compute_stats(write_log(tmp_path / layout, epochs, layout))
    # an independent computation from the rows written, not another layout read back by the same code
    z = np.zeros((e, n, k))
    for ep, rows in enumerate(epochs):
        for r in rows:
            z[ep, r["id"] - 100] = r["logits"]
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    gold = p[:, np.arange(n), labels]  # (E, N)
    others = np.where(np.arange(k) == labels[:, None], -np.inf, z).max(axis=2)  # (E, N)
    assert got["id"].to_pylist() == ids.tolist()
    # parquet holds float32 logits, computed in float32 per epoch (stats.kernel_dtype's bound); JSON float64
    tol = 1e-6 if layout in ("parquet", "parts") else 1e-12
    np.testing.assert_allclose(got["confidence"].to_numpy(), gold.mean(axis=0), rtol=0, atol=tol)
    np.testing.assert_allclose(got["variability"].to_numpy(), gold.std(axis=0), rtol=0, atol=tol)
    np.testing.assert_array_equal(got["correct_count"].to_numpy(), (z.argmax(axis=2) == labels).sum(axis=0))
    np.testing.assert_allclose(got["aum"].to_numpy(), (z[:, np.arange(n), labels] - others).mean(axis=0), atol=1e-12)
    np.testing.assert_array_equal(got["pred_label"].to_numpy(), z[-1].argmax(axis=1))


@pytest.mark.parametrize("k, scale", [(2, 1.0), (3, 8.0), (10, 0.01), (128, 0.01), (128, 30.0), (5, 1e4)])
def test_float32_kernels_stay_within_their_stated_bounds(k, scale):
    """float32 logs are computed in float32 per epoch (K <= 128): against a float64 log-softmax written here,
    g, the probability margin and EL2N within 1e-6, entropy and loss within 2e-6 relative, the logit margin
    and argmax exact (the bounds stats.kernel_dtype states)."""
    rng = np.random.default_rng(k)
    z32 = (rng.normal(size=(20_000, k)) * scale).astype(np.float32)
    y = rng.integers(0, k, len(z32))
    q = epoch_quantities(z32, y)
    assert q.p_gold.dtype == np.float32
    z = z32.astype(np.float64)
    rows = np.arange(len(z))
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    p_other = np.where(np.arange(k) == y[:, None], -1.0, p).max(axis=1)
    z_other = np.where(np.arange(k) == y[:, None], -np.inf, z).max(axis=1)
    np.testing.assert_allclose(q.p_gold, p[rows, y], rtol=0, atol=1e-6)
    np.testing.assert_allclose(q.prob_margin, p[rows, y] - p_other, rtol=0, atol=1e-6)
    np.testing.assert_allclose(q.el2n, np.linalg.norm(p - np.eye(k)[y], axis=1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(q.entropy, -(p * logp).sum(axis=1), rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(q.loss, -logp[rows, y], rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(q.logit_margin, z[rows, y] - z_other)
    np.testing.assert_array_equal(q.pred, z.argmax(axis=1))


def test_float64_logs_and_many_classes_keep_float64_kernels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(100, 129))
    y = rng.integers(0, 129, 100)
    assert epoch_quantities(z.astype(np.float32), y).p_gold.dtype == np.float64  # K > 128
    assert epoch_quantities(z[:, :3], y % 3).p_gold.dtype == np.float64
    assert epoch_quantities(z[:, :3].astype(np.float16), y % 3).p_gold.dtype == np.float64  # float32 only


def test_el2n_keeps_its_precision_when_the_gold_class_saturates():
    # p = (e^-40, 1 - e^-40): 1 - p_gold rounds to 0 in float64, yet ||p - onehot|| = sqrt(2) e^-40 / (1 + e^-40)
    q = epoch_quantities(np.array([[0.0, 40.0]]), np.array([1]))
    assert q.el2n[0] == pytest.approx(math.sqrt(2) * math.exp(-40) / (1 + math.exp(-40)), rel=1e-12)
    assert q.prob_margin[0] == pytest.approx(1 - 2 * math.exp(-40), rel=1e-15)


@pytest.mark.parametrize("k", [2, 5, 32, 33, 40])
def test_argmax_and_ties_on_either_side_of_the_many_class_path(k):
    """epoch_quantities' argmax takes one path up to 32 classes and numpy's above: both give numpy's answer,
    ties to the lowest index (rows 0-1 tie on purpose)."""
    rng = np.random.default_rng(k)
    z = rng.integers(-3, 4, size=(60, k)).astype(float)  # many exact ties
    z[0, :] = 1.0
    z[1, [0, k - 1]] = 9.0
    labels = rng.integers(0, k, 60)
    q = epoch_quantities(z, labels)
    np.testing.assert_array_equal(q.pred, z.argmax(axis=1))
    np.testing.assert_array_equal(q.correct, z.argmax(axis=1) == labels)


def test_a_probability_that_underflows_to_zero_gives_finite_scores():
    """softmax([0, -1000]) = [1, 0] exactly: entropy 0 (0 log 0 = 0), loss 0 for gold 0, never a NaN."""
    q = epoch_quantities(np.array([[0.0, -1000.0], [-1000.0, 0.0]]), np.array([0, 0]))
    assert q.entropy.tolist() == [0.0, 0.0]
    assert q.loss[0] == 0.0 and q.loss[1] == pytest.approx(1000.0)
    assert q.p_gold.tolist() == [1.0, 0.0]


def test_el2n_of_one_epoch_is_null_for_an_example_missing_from_it_and_its_bounds(tmp_path):
    a, b = {"id": 1, "label": 0, "logits": [0.0, L3]}, {"id": 2, "label": 1, "logits": [0.0, L3]}
    run = write_log(tmp_path / "run", [[a, b], [a]], "jsonl")
    assert compute_stats(run, el2n_epoch=1)["el2n_epoch_1"].to_pylist() == [pytest.approx(0.75 * 2**0.5), None]
    assert compute_stats(run, el2n_epoch=0)["el2n_epoch_0"].null_count == 0
    with pytest.raises(LogError, match=re.escape("el2n_epoch 2 is outside the run's epochs 0..1")):
        compute_stats(run, el2n_epoch=2)


def test_ids_get_positions_in_sorted_order_by_either_path():
    """New ids are sorted once, by a counting pass over their span when it is small (at most 16 x n values),
    else by a sort: both give numpy's sorted distinct ids, for dense, sparse, negative and extreme ids."""
    from cartography_core.ingest import _sorted_unique

    rng = np.random.default_rng(0)
    cases = [
        rng.permutation(1000)[:300],  # dense: counting
        rng.integers(-50, 50, 400),  # negative, repeated: counting
        rng.integers(0, 2**62, 500),  # sparse: sort
        np.array([-(2**63), 2**63 - 1, 0, 0]),  # the int64 extremes: sort
        np.array([5]),
        np.array([], dtype=np.int64),
    ]
    for ids in cases:
        got = _sorted_unique(ids)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, np.unique(ids))


def test_ids_at_the_int64_extremes_met_in_a_later_epoch(tmp_path):
    """Later epochs' new ids may lie far outside the first epoch's span (here the int64 extremes): they get
    positions of their own, with no overflow in the lookup table's range checks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "run" / "dynamics"
    d.mkdir(parents=True)
    first = {"id": [-5, 0, 3], "label": [0, 1, 0], "logits": [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]}
    pq.write_table(pa.table(first), d / "epoch_0.parquet")
    for e, new_id in enumerate([2**63 - 1, -(2**63)], start=1):  # one far above the span, then one far below
        later = {k: v + extra for (k, v), extra in zip(first.items(), ([new_id], [1], [[0.0, 1.0]]))}
        pq.write_table(pa.table(later), d / f"epoch_{e}.parquet")
    got = compute_stats(tmp_path / "run")
    assert got["id"].to_pylist() == [-(2**63), -5, 0, 3, 2**63 - 1]
    assert got["n_epochs"].to_pylist() == [1, 3, 3, 3, 1]
    assert got["correct_count"].to_pylist() == [1, 3, 3, 3, 1]


@pytest.mark.parametrize("epochs", [[0, 1, 2], [0, 40_000, 40_001]])
def test_the_fold_keeps_epoch_numbers_beyond_int16(epochs):
    # counts and epoch numbers are folded as int16 when every epoch number fits, else int32
    from cartography_core.stats import _Accumulator

    acc = _Accumulator(epochs)
    acc.grow(2)
    logits, labels = np.array([[0.0, 1.0], [2.0, 0.0]]), np.array([0, 0])  # wrong, right
    for e in epochs:
        acc.update(
            e, slice(None), epoch_quantities(logits if e != epochs[-1] else logits[::-1], labels), el2n_epoch=None
        )
    # example 0: wrong, wrong, right; example 1: right, right, wrong (one forgetting event)
    assert acc.first_learned.tolist() == [epochs[2], epochs[0]]
    assert acc.streak_start.tolist() == [epochs[2], -1]
    assert acc.forgets.tolist() == [0, 1] and acc.count.tolist() == [3, 3] and acc.n_correct.tolist() == [1, 2]
