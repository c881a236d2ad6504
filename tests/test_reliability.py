"""Pooling over runs and split-half reliability (Kwok et al. 2024)."""

import math

import numpy as np
import pyarrow as pa
import pytest

from cartography_core import LogError, compute_stats, pool_runs, spearman_brown, split_half_reliability, table_meta
from cartography_core.reliability import runs_needed
from cartography_core.scores import SCORES
from tests.logs import write_log


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
    with pytest.raises(LogError, match=r"b: id 1 has gold label 1, a has 0 \(1 ids differ\)"):
        pool_runs([run_table([1], [0], [0.5]), run_table([1], [1], [0.5])], ["a", "b"])
    # the run named is the one that logged the id: here only c shares id 2 with d
    a, c, d = run_table([1], [0], [0.5]), run_table([1, 2], [0, 1], [0.5, 0.5]), run_table([2], [0], [0.5])
    with pytest.raises(LogError, match=r"d: id 2 has gold label 0, c has 1"):
        pool_runs([a, c, d], ["a", "c", "d"])


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


def bh(p):
    """Benjamini-Hochberg q-values, written out: q_(i) = min_{j >= i} p_(j) m / j."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p)
    q_sorted = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1)
    return q


def test_compare_groups_finds_the_shifted_examples_and_matches_welch_by_hand():
    from scipy.stats import t as student_t

    from cartography_core import compare_groups

    rng = np.random.default_rng(0)
    ids = list(range(50))
    base = rng.random(50) * 0.5 + 0.25
    shift = np.where(np.arange(50) < 5, 0.3, 0.0)
    a = [run_table(ids, [0] * 50, (base + 0.02 * rng.standard_normal(50)).tolist()) for _ in range(4)]
    b = [run_table(ids, [0] * 50, (base + shift + 0.03 * rng.standard_normal(50)).tolist()) for _ in range(5)]
    out = compare_groups(a, b, "confidence").to_pandas()
    assert sorted(out["id"][:5]) == [0, 1, 2, 3, 4] and (out["q_value"][:5] < 0.05).all()
    assert (out["q_value"][5:] > 0.05).all()
    np.testing.assert_allclose(out["q_value"], bh(out["p_value"]), rtol=1e-12)

    row = out.set_index("id").loc[7]  # Welch's t and its p by hand for one example
    xa = np.array([t["confidence"][7].as_py() for t in a])
    xb = np.array([t["confidence"][7].as_py() for t in b])
    va, vb = xa.var(ddof=1) / 4, xb.var(ddof=1) / 5
    t_stat = (xb.mean() - xa.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)
    assert row["t"] == pytest.approx(t_stat) and row["p_value"] == pytest.approx(2 * student_t.sf(abs(t_stat), df))
    assert row["diff"] == pytest.approx(xb.mean() - xa.mean())


def test_compare_groups_needs_two_runs_each_and_the_same_examples():
    from cartography_core import compare_groups

    one = [run_table([1, 2], [0, 0], [0.5, 0.6])]
    with pytest.raises(LogError, match="at least 2 runs in each, got 1 and 2"):
        compare_groups(one, one * 2, "confidence")
    with pytest.raises(LogError, match=r"group B, run 1: logs other examples than the first run of group A \(2 ids"):
        compare_groups(one * 2, [one[0], run_table([1, 3], [0, 0], [0.5, 0.6])], "confidence")


def test_pooled_learned_epochs_count_never_as_E_and_average_what_they_count(tmp_path):
    """first_learned_epoch of id 3: 0, never, 2 over three 4-epoch runs -> (0 + 4 + 2) / 3 = 2 with standard
    error sd([0, 4, 2]) / sqrt(3) = 2 / sqrt(3); id 4, logged in two runs (1 and 3) -> 2 with se
    sd([1, 3]) / sqrt(2) = 1; id 5, logged in one run -> no standard error."""
    right, wrong = [1.0, 0.0], [0.0, 1.0]

    def rows(pattern, i):
        return [{"id": i, "label": 0, "logits": right if ok else wrong} for ok in pattern]

    per_run = {
        "seed-0": {3: [1, 0, 0, 0], 4: [0, 1, 1, 1]},
        "seed-1": {3: [0, 0, 0, 0], 5: [0, 0, 1, 1]},
        "seed-2": {3: [0, 0, 1, 1], 4: [0, 0, 0, 1]},
    }
    tables = []
    for name, examples in per_run.items():
        epochs = [[rows(p, i)[e] for i, p in examples.items()] for e in range(4)]
        tables.append(compute_stats(write_log(tmp_path / name, epochs)))
    pooled = pool_runs(tables, list(per_run)).to_pandas().set_index("id")
    assert pooled.loc[3, "first_learned_epoch"] == pytest.approx(2.0)
    assert pooled.loc[3, "first_learned_epoch_se"] == pytest.approx(2 / np.sqrt(3))
    assert pooled.loc[4, "first_learned_epoch"] == pytest.approx(2.0)
    assert pooled.loc[4, "first_learned_epoch_se"] == pytest.approx(1.0)
    assert pooled.loc[4, "n_runs"] == 2 and np.isnan(pooled.loc[5, "first_learned_epoch_se"])
    assert pooled.loc[5, "first_learned_epoch"] == 2.0
    # consistently learned: id 3 at 0? no (wrong later) -> never (4), never (4), 2 -> 10 / 3
    assert pooled.loc[3, "consistently_learned_epoch"] == pytest.approx(10 / 3)
    assert bool(pooled.loc[3, "never_learned"]) is False


def test_runs_needed_rounds_up_and_uses_runs_per_half():
    """r = 0.8 for halves of 1 run: k = 0.9 * 0.2 / (0.8 * 0.1) = 2.25 runs -> 3 (up, not to the nearest);
    halves of 3 runs: 6.75 -> 7; from a Reliability of 7 runs the halves hold 3."""
    assert runs_needed(0.8, 1, 0.9) == 3
    assert runs_needed(0.8, 3, 0.9) == 7
    from cartography_core.reliability import Reliability

    assert Reliability("confidence", 7, 0.8, spearman_brown(0.8, 7 / 3)).runs_needed(0.9) == 7
    assert spearman_brown(0.8, 7 / 3) == pytest.approx((7 / 3) * 0.8 / (1 + (4 / 3) * 0.8))


def test_pooled_prediction_ties_go_to_the_lowest_class():
    a = run_table([1, 2], [0, 0], [0.5, 0.5], pred=[2, 1])
    b = run_table([1, 2], [0, 0], [0.5, 0.5], pred=[1, 2])
    assert pool_runs([a, b])["pred_label"].to_pylist() == [1, 1]  # one vote each: the lower class
    c = run_table([1, 2], [0, 0], [0.5, 0.5], pred=[2, 2])
    assert pool_runs([a, b, c])["pred_label"].to_pylist() == [2, 2]  # a majority wins


def test_runs_recorded_from_different_passes_are_not_pooled_or_compared(tmp_path, capsys):
    """run.json's "pass" (training steps or an eval pass) travels with the table; pooling or comparing a
    train-pass run with an eval-pass run is refused by name, while runs that do not say are taken as they are."""
    from cartography_core.cli import main

    rows = [{"id": i, "label": i % 2, "logits": [float(i % 3), 1.0]} for i in range(8)]
    for name, meta in (("a", {"pass": "train"}), ("b", {"pass": "eval"}), ("c", {}), ("d", {"pass": "train"})):
        write_log(tmp_path / name, [rows, rows], "parquet", meta=meta)
    a, b, c, d = (compute_stats(tmp_path / name) for name in "abcd")
    assert table_meta(a)["pass"] == "train" and table_meta(b)["pass"] == "eval" and table_meta(c)["pass"] is None
    for call in (
        lambda: pool_runs([a, b], ["a", "b"]),
        lambda: split_half_reliability([a, c, b], "aum", names=["a", "c", "b"]),
    ):
        with pytest.raises(LogError, match="a records the logits of the train pass but b those of the eval pass"):
            call()
    assert pool_runs([a, c, d], ["a", "c", "d"]).num_rows == 8  # c does not say: allowed
    assert main(["summary", str(tmp_path / "b")]) == 0
    assert "from an eval pass after each epoch" in capsys.readouterr().out


def test_runs_with_different_gold_labels_are_not_compared_as_seeds(tmp_path, capsys):
    """A retrain after relabeling logs the same ids with other gold labels: its scores rate other labels, so
    split-half reliability (function and command) and group comparison refuse it, naming an id."""
    from cartography_core import compare_groups
    from cartography_core.cli import main

    rng = np.random.default_rng(0)
    ids, labels = list(range(50)), rng.integers(0, 2, 50)
    fixed = labels.copy()
    fixed[[7, 30]] = 1 - fixed[[7, 30]]
    runs = [run_table(ids, labels.tolist(), rng.random(50).tolist()) for _ in range(3)]
    relabeled = run_table(ids, fixed.tolist(), rng.random(50).tolist())
    want = rf"retrain: id 7 has gold label {fixed[7]}, seed-0 has {labels[7]} \(2 ids differ\)"
    with pytest.raises(LogError, match=want):
        split_half_reliability(runs + [relabeled], "confidence", names=["seed-0", "seed-1", "seed-2", "retrain"])
    with pytest.raises(LogError, match=r"group B, run 1: id 7 has gold label"):
        compare_groups(runs[:2], [runs[2], relabeled], "confidence")
    assert split_half_reliability(runs + [runs[0]], "confidence").n_runs == 4  # the same labels: accepted

    rows = [{"id": i, "label": int(labels[i]), "logits": [float(i % 3), 1.0]} for i in ids]
    moved = [{**r, "label": int(fixed[r["id"]])} for r in rows]
    for name, epoch in (("a", rows), ("b", rows), ("c", moved)):
        write_log(tmp_path / "ds" / name, [epoch, epoch], "parquet")
    assert main(["reliability", str(tmp_path / "ds"), "--scores", "confidence"]) == 2
    out, err = capsys.readouterr()
    assert "c: id 7 has gold label" in err and out == ""  # no table header before the refusal
