"""The label_issue flag and its counts, on hand-worked logs where aum and margin disagree."""

import numpy as np
import pytest

from cartography_core import compute_stats, pool_runs
from cartography_core.label_issues import flag_rule, issue_counts, label_issue_mask
from cartography_core.stats import table_meta
from tests.logs import write_log


def test_the_flag_reads_aum_for_logits_and_margin_for_probabilities(tmp_path):
    # id 1, gold 0, logits [0, 10], [4, 0], [4, 0]: aum = (-10 + 4 + 4) / 3 = -2/3 < 0 (flagged), but
    # margin = (tanh(-5) + 2 tanh(2)) / 3 = +0.31 > 0: a mean over logits is not a mean over probabilities
    z = [[0.0, 10.0], [4.0, 0.0], [4.0, 0.0]]
    clean = {"id": 2, "label": 1, "logits": [0.0, 1.0]}  # aum 1: never flagged
    logits = write_log(tmp_path / "z", [[{"id": 1, "label": 0, "logits": v}, clean] for v in z], "jsonl")
    t = compute_stats(logits)
    assert t["aum"][0].as_py() == pytest.approx(-2 / 3)
    assert t["margin"][0].as_py() == pytest.approx((np.tanh(-5) + 2 * np.tanh(2)) / 3)
    assert t["label_issue"].to_pylist() == [True, False]
    # the same example logged as probabilities: no aum, so the (positive) margin decides
    p = [(np.exp(v) / np.exp(v).sum()).tolist() for v in map(np.array, z)]
    probs = write_log(tmp_path / "p", [[{"id": 1, "label": 0, "probs": v}] for v in p], "jsonl")
    assert compute_stats(probs)["label_issue"].to_pylist() == [False]
    mask = label_issue_mask(np.array([np.nan, np.nan, -1.0]), np.array([-0.1, 0.2, 0.5]))
    assert mask.tolist() == [True, False, True]
    # a tie (0) is not a loss, on either scale; a small positive aum is not flagged
    zero = label_issue_mask(np.array([0.0, np.nan, 0.5]), np.array([-0.3, 0.0, -0.2]))
    assert zero.tolist() == [False, False, False]


def test_a_run_judged_late_flags_by_its_last_sixth_of_epochs(tmp_path):
    """A run.json with "label_issue_rule": "late_margin" (the label-errors preset's runs). 7 epochs:
    late_margin averages the last ceil(7/6) = 2. id 1 is wrong for 5 epochs and then right, id 2
    the reverse, id 3 is logged only in epochs 0-2 (no late value: the aum rule decides)."""
    wrong, right = [0.0, 3.0], [2.0, 0.0]
    epochs = [
        [{"id": 1, "label": 0, "logits": wrong if e < 5 else right}]
        + [{"id": 2, "label": 0, "logits": [3.0, 0.0] if e < 5 else [0.0, 1.0]}]
        + ([{"id": 3, "label": 0, "logits": [0.0, 1.0]}] if e < 3 else [])
        for e in range(7)
    ]
    le = compute_stats(write_log(tmp_path / "le", epochs, "jsonl", meta={"label_issue_rule": "late_margin"}))
    other = compute_stats(write_log(tmp_path / "map", epochs, "jsonl", meta={"label_issue_rule": "aum"}))
    # p[gold] - p[other] = tanh((z_gold - z_other) / 2)
    assert le["late_margin"].to_pylist()[:2] == pytest.approx([np.tanh(1.0), np.tanh(-0.5)])
    assert le["late_margin"][2].as_py() is None
    assert le["aum"].to_pylist() == pytest.approx([(5 * -3 + 2 * 2) / 7, (5 * 3 - 2) / 7, -1.0])
    assert le["label_issue"].to_pylist() == [False, True, True]
    assert other["label_issue"].to_pylist() == [True, False, True]  # aum < 0
    assert other["late_margin"].to_pylist()[:2] == le["late_margin"].to_pylist()[:2]  # defined for every log
    # pooled: the late rule only when every run is a label-errors run
    assert pool_runs([le, le])["label_issue"].to_pylist() == [False, True, True]
    mixed = pool_runs([le, other])
    assert mixed["label_issue"].to_pylist() == [True, False, True]
    # the pooled table names the rule it flagged by (the first run's would be wrong here)
    assert flag_rule(table_meta(mixed)) == flag_rule({}) != flag_rule(table_meta(pool_runs([le, le])))


def test_a_users_own_loop_opts_in_through_the_recorders_meta(tmp_path):
    """The README's promise: DynamicsRecorder(meta={"label_issue_rule": "late_margin"}) judges the run late."""
    from cartography_core import DynamicsRecorder

    z = np.array([[0.0, 3.0]] * 5 + [[2.0, 0.0]])  # gold 0: wrong 5 epochs, right in the last (6 epochs: 1 late)
    for name, meta in [("own", {"label_issue_rule": "late_margin"}), ("plain", None)]:
        rec = DynamicsRecorder(tmp_path / name, meta=meta)
        for e in range(6):
            rec.log(np.array([7]), z[e : e + 1], np.array([0]))
            rec.end_epoch()
        rec.close()
        t = compute_stats(tmp_path / name)
        assert t["late_margin"][0].as_py() == pytest.approx(np.tanh(1.0))
        assert t["label_issue"].to_pylist() == [meta is None]  # aum (5 * -3 + 2) / 6 < 0 flags the plain run


def test_pooled_runs_flag_from_the_pooled_aum_not_a_vote(tmp_path):
    run_a = write_log(tmp_path / "a", [[{"id": 1, "label": 0, "logits": [0.0, 1.0]}]], "jsonl")  # aum -1
    run_b = write_log(tmp_path / "b", [[{"id": 1, "label": 0, "logits": [3.0, 0.0]}]], "jsonl")  # aum +3
    tables = [compute_stats(run_a), compute_stats(run_b)]
    assert [t["label_issue"][0].as_py() for t in tables] == [True, False]
    pooled = pool_runs(tables)
    assert pooled["aum"][0].as_py() == pytest.approx(1.0) and pooled["label_issue"].to_pylist() == [False]


def test_issue_counts_per_class_and_total(tmp_path):
    rows = [
        {"id": i, "label": lab, "logits": z}
        for i, (lab, z) in enumerate([(0, [0.0, 2.0]), (0, [2.0, 0.0]), (0, [2.0, 0.0]), (1, [2.0, 0.0])])
    ]
    t = compute_stats(write_log(tmp_path / "r", [rows], "jsonl"))
    counts = issue_counts(t, ["neg", "pos"]).to_pydict()
    assert counts["class"] == ["neg", "pos", "total"]
    assert counts["examples"] == [3, 1, 4] and counts["label_issues"] == [1, 1, 2]
    assert counts["share"] == pytest.approx([1 / 3, 1.0, 0.5])
    # a named class that no example has (e.g. a run logged on part of the data): a row of zeros, not a shift
    counts = issue_counts(t, ["neg", "pos", "unused"]).to_pydict()
    assert counts["class"] == ["neg", "pos", "unused", "total"]
    assert counts["examples"] == [3, 1, 0, 4] and counts["label_issues"] == [1, 1, 0, 2]
    assert counts["share"] == pytest.approx([1 / 3, 1.0, 0.0, 0.5])


def test_select_label_issues_writes_the_flagged_examples_likeliest_first(tmp_path, capsys):
    import pandas as pd

    from cartography_core.cli import main

    z = {1: [0.0, 1.5], 2: [0.0, 3.0], 3: [1.0, 0.0], 4: [0.0, 1.5]}  # gold 0: aum -1.5, -3, +1, -1.5
    run = write_log(tmp_path / "r", [[{"id": i, "label": 0, "logits": v} for i, v in z.items()]], "jsonl")
    assert main(["select", str(run), "--label-issues", "--out", str(tmp_path / "issues.csv")]) == 0
    out = pd.read_csv(tmp_path / "issues.csv")
    assert out["id"].tolist() == [2, 1, 4] and out["rank"].tolist() == [1, 2, 3]  # the tie -1.5: id order
    assert "wrote 3 of 4 examples (likely label errors (flagged by aum < 0, or margin" in capsys.readouterr().out
    (run / "run.json").write_text('{"label_issue_rule": "late_margin"}')  # one epoch: late_margin = mean margin
    assert main(["select", str(run), "--label-issues", "--out", str(tmp_path / "late.csv")]) == 0
    assert "(likely label errors (flagged by late_margin < 0), ordered lowest aum first" in capsys.readouterr().out
    bad = ["select", str(run), "--label-issues", "--fraction", "0.5", "--out", str(tmp_path / "x.csv")]
    assert main(bad) == 2 and "--fraction and --both-ends go with --metric" in capsys.readouterr().err


def test_a_class_flagged_in_the_main_is_named_as_not_learned(tmp_path, capsys):
    """More than half of a class flagged cannot be an estimate of wrong labels (the flag assumes most labels
    are right): summary names that class (hand-made counts, then a log where class 2 is never predicted)."""
    from cartography_core.cli import main
    from cartography_core.label_issues import class_counts, unlearned_classes

    counts = class_counts(["a", "b", "c", "d"], np.array([10, 4, 6, 0]), np.array([1, 3, 3, 0]))
    assert counts["share"].to_pylist()[:4] == [0.1, 0.75, 0.5, 0.0]
    warning = unlearned_classes(counts)
    assert "class b (3 of 4) flagged" in warning and "c (" not in warning  # exactly half is not "more than"
    assert unlearned_classes(class_counts(["a", "b"], np.array([5, 5]), np.array([2, 1]))) == ""

    rows = [{"id": i, "label": i % 3, "logits": [2.0, 0.0, 0.0] if i % 3 != 1 else [0.0, 2.0, 0.0]} for i in range(9)]
    write_log(tmp_path / "run", [rows, rows], "parquet")
    assert main(["summary", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "warning: more than half of class 2 (3 of 3) flagged: the model did not learn it" in out
    assert "note: the count depends on how long the model trained" in out  # measured: detection.md


def test_a_misspelt_label_issue_rule_is_refused_not_read_as_aum(tmp_path):
    """A hand-written "label_issue_rule" that is not one of the two rules would silently flag by aum: refused,
    naming run.json, and by the recorder before any epoch is trained."""
    from cartography_core import DynamicsRecorder, LogError

    rows = [[{"id": 1, "label": 0, "logits": [0.0, 1.0]}]]
    run = write_log(tmp_path / "r", rows, "jsonl", meta={"label_issue_rule": "late"})
    want = r"r/run.json: label_issue_rule must be one of 'late_margin', 'aum', found 'late'"
    with pytest.raises(LogError, match=want):
        compute_stats(run)
    with pytest.raises(LogError, match=r"DynamicsRecorder\(meta=...\): label_issue_rule must be one of"):
        DynamicsRecorder(tmp_path / "rec", meta={"label_issue_rule": "late_margins"})
    assert not (tmp_path / "rec" / "run.json").exists()
