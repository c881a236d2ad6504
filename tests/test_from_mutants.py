"""Hand-worked cases added where mutation testing (bench/mutation.sh) showed a change no test noticed."""

import json
import re

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from cartography_core import LogError, RegionThresholds, rank_order, select_random, select_region, table_meta
from cartography_core.dashboard.datamap import RowFilter, filter_mask, histogram, sample_points
from cartography_core.regions import REGIONS, region_members
from cartography_core.reliability import (
    Reliability,
    compare_groups,
    pool_runs,
    runs_needed,
    spearman_brown,
    split_half_reliability,
)
from cartography_core.scores import SCORES
from cartography_core.select import top_fraction_members
from cartography_core.stats import TABLE_META_KEYS, name_classes
from tests.test_reliability import run_table


def scores_table(conf, var):
    return pa.table({"id": list(range(len(conf))), "confidence": conf, "variability": var})


def test_select_region_uses_the_thresholds_it_is_given():
    t = scores_table([0.55, 0.65, 0.3], [0.1, 0.1, 0.25])
    assert select_region(t, "easy-to-learn").tolist() == [0, 1]
    assert select_region(t, "easy-to-learn", RegionThresholds(0.3, 0.6, 0.6)).tolist() == [1]
    assert select_region(t, "ambiguous", RegionThresholds(0.3, 0.6, 0.6)).tolist() == []
    with pytest.raises(LogError, match=re.escape("unknown region 'nope'; choose one of: easy-to-learn, ambiguous")):
        select_region(t, "nope")


def test_a_random_baseline_never_repeats_an_example():
    rows = select_random(50, 50, seed=3)
    assert rows.tolist() == list(range(50))  # all 50, each once, sorted


def test_rank_order_is_hardest_first_by_default():
    t = scores_table([0.9, 0.1, 0.5], [0.0, 0.0, 0.0])
    assert rank_order(t, "confidence").tolist() == [1, 2, 0]
    with pytest.raises(LogError, match=re.escape("the statistics table has no column 'aum'")):
        rank_order(t, "aum")


def test_histogram_bins_span_the_range_given_not_the_values():
    h = histogram(np.array([0.5, 0.5, np.nan]))
    assert h.column_names == ["lo", "hi", "count"] and h.num_rows == 20
    assert h["lo"][0].as_py() == 0.0 and h["hi"][19].as_py() == 1.0
    assert h["count"].to_pylist()[10] == 2 and sum(h["count"].to_pylist()) == 2
    assert histogram(np.array([0.3]), bins=2, hi=0.5)["count"].to_pylist() == [0, 1]


def test_sample_points_keeps_every_row_up_to_the_cap_inclusive():
    conf, var = np.linspace(0, 1, 10), np.zeros(10)
    assert sample_points(conf, var, max_points=10, size=4).tolist() == list(range(10))
    picked = sample_points(conf, var, max_points=9, size=4)
    assert len(picked) == len(set(picked.tolist())) == 4


def test_filter_ranges_include_both_ends():
    t = pa.table({"id": [0, 1, 2, 3], "label": [0, 0, 0, 0], "confidence": [0.2, 0.5, 0.8, 0.5],
                  "variability": [0.1, 0.1, 0.1, 0.3]})  # fmt: skip
    f = RowFilter(var_range=(0.1, 0.3), conf_range=(0.2, 0.8))
    assert filter_mask(t, f).tolist() == [True, True, True, True]
    f = RowFilter(var_range=(0.1, 0.2), conf_range=(0.5, 0.5))
    assert filter_mask(t, f).tolist() == [False, True, False, False]
    members = region_members(np.array([0, 1, 2, 1], dtype=np.int8))
    assert filter_mask(t, RowFilter(region=1, conf_range=(0.5, 1.0)), members=members).tolist() == [0, 1, 0, 1]


def test_pool_keeps_class_names_run_names_and_never_learned_means_in_every_run():
    a = name_classes(run_table([1, 2], [0, 1], [0.2, 0.6], pred=[1, 1]), ["neg", "pos"])
    b = name_classes(run_table([1, 2], [0, 1], [0.4, 0.6], pred=[1, 0]), ["neg", "pos"])
    a = a.set_column(a.column_names.index("never_learned"), "never_learned", pa.array([False, True]))
    b = b.set_column(b.column_names.index("never_learned"), "never_learned", pa.array([True, True]))
    pooled = pool_runs([a, b], ["seed-0", "seed-1"])
    assert pooled["never_learned"].to_pylist() == [False, True]  # never in one run is not never
    assert pooled["label_name"].to_pylist() == ["neg", "pos"]
    assert pooled["pred_label_name"].to_pylist() == ["pos", "neg"]  # votes 1,1 -> pos; 1,0 tie -> neg
    assert table_meta(pooled)["runs"] == ["seed-0", "seed-1"] and table_meta(pooled)["run"] is None
    with pytest.raises(LogError, match="^no runs to pool$"):
        pool_runs([])


def test_pooling_a_never_learned_epoch_needs_the_runs_epoch_count():
    t = run_table([1], [0], [0.5])
    t = t.set_column(t.column_names.index("first_learned_epoch"), "first_learned_epoch", pa.array([None], pa.int64()))
    with pytest.raises(LogError, match=re.escape("seed-0: a statistics table without its epoch count cannot pool")):
        pool_runs([t, t], ["seed-0", "seed-1"])


def test_runs_needed_refuses_a_reliability_of_zero_and_defaults_to_0_9():
    with pytest.raises(LogError, match=re.escape("split-half reliability 0.000 is not positive")):
        runs_needed(0.0, 1, 0.9)
    rel = Reliability("confidence", 2, 0.5, spearman_brown(0.5, 2))
    assert rel.runs_needed() == rel.runs_needed(0.9) == 9


def test_split_half_against_a_second_implementation_with_an_odd_number_of_runs():
    """R = 5: halves of 2 runs (one left out each split), reliability of the mean of 5 = SB(r, 5/2)."""
    rng = np.random.default_rng(7)
    signal = rng.random(60)
    tables = [run_table(list(range(60)), [0] * 60, (signal + 0.5 * rng.random(60)).tolist()) for _ in range(5)]
    got = split_half_reliability(tables, "confidence")
    mat = np.stack([t["confidence"].to_numpy() for t in tables])
    splits = np.random.default_rng(0)
    rhos = []
    for _ in range(20):
        perm = splits.permutation(5)
        rhos.append(spearmanr(mat[perm[:2]].mean(0), mat[perm[2:4]].mean(0)).statistic)
    assert got.split_half == pytest.approx(np.mean(rhos), abs=1e-12) and got.n_runs == 5
    assert got.full == pytest.approx(spearman_brown(got.split_half, 2.5), abs=1e-12)
    assert got.score == "confidence"


def test_compare_groups_with_identical_constant_scores_finds_no_difference():
    a = [run_table([1, 2], [0, 0], [0.5, 0.5]) for _ in range(2)]
    b = [run_table([1, 2], [0, 0], [0.5, 0.9]) for _ in range(2)]
    result = compare_groups(a, b, "confidence").to_pydict()
    assert list(result)[:3] == ["id", "mean_a", "mean_b"]
    row = {k: v[result["id"].index(1)] for k, v in result.items()}
    assert row["p_value"] == 1.0 and row["q_value"] == 1.0 and row["t"] is None
    with pytest.raises(LogError, match=re.escape("unknown score 'nope'; choose from: " + ", ".join(SCORES))):
        compare_groups(a, b, "nope")


# ---------------------------------------------------------------------------------------------------------
# stats: the table's schema and metadata, and paths no small hand-worked case reaches


def _run(tmp_path, epochs, fmt="parquet", **meta):
    from tests.logs import write_log

    return write_log(tmp_path / "r", epochs, fmt, meta=meta or None)


def test_statistics_table_schema_is_pinned(tmp_path):
    from cartography_core import compute_stats

    rows = [{"id": 5, "label": 1, "logits": [0.0, 1.0]}, {"id": 2, "label": 0, "logits": [0.0, 1.0]}]
    t = compute_stats(_run(tmp_path, [rows, rows[:1], rows]), variability_ci=True)
    want = {
        "id": pa.int64(), "label": pa.int64(), "n_epochs": pa.int32(), "confidence": pa.float64(),
        "variability": pa.float64(), "correctness": pa.float64(), "correct_count": pa.int32(),
        "threshold_closeness": pa.float64(), "forgetting_events": pa.int32(), "never_learned": pa.bool_(),
        "first_learned_epoch": pa.int32(), "consistently_learned_epoch": pa.int32(), "aum": pa.float64(),
        "margin": pa.float64(), "late_margin": pa.float64(), "el2n": pa.float64(), "entropy": pa.float64(),
        "loss": pa.float64(),
        "data_iq_aleatoric": pa.float64(), "pred_label": pa.int32(), "label_issue": pa.bool_(),
        "variability_ci": pa.float64(),
    }  # fmt: skip
    assert {f.name: f.type for f in t.schema} == want
    assert t["label_issue"].to_pylist() == [True, False]  # id 2: aum = 0 - 1 < 0; id 5: aum = 1 - 0 > 0
    # two ids given in descending order come out sorted, with their own rows
    assert t["id"].to_pylist() == [2, 5] and t["label"].to_pylist() == [0, 1] and t["n_epochs"].to_pylist() == [2, 3]
    conf = np.array(t["confidence"].to_pylist())
    assert t["threshold_closeness"].to_pylist() == pytest.approx(conf * (1 - conf))
    # variability_ci is defined from two epochs on: sqrt(v + v^2 / (E - 1)), here with v = 0
    assert t["variability_ci"].to_pylist() == pytest.approx([0.0, 0.0])
    one = compute_stats(_run(tmp_path / "b", [rows[:1], rows]), variability_ci=True)
    assert one["variability_ci"].to_pylist() == [None, 0.0]  # id 2: logged once


def test_statistics_metadata_is_pinned(tmp_path):
    from cartography_core import compute_stats

    rows = [{"id": "a", "label": 1, "logits": [0.0, 1.0]}, {"id": "b", "label": 0, "logits": [0.0, 1.0]}]
    t = compute_stats(_run(tmp_path, [rows, rows], label_names=["neg", "pos"]))
    assert table_meta(t) == {
        "run": "r", "layout": "cartography", "n_epochs": 2, "n_classes": 2, "kind": "logits", "pass": None,
        "preset": None, "label_issue_rule": None, "label_names": ["neg", "pos"], "padding_rows": 0,
    }  # fmt: skip
    assert tuple(table_meta(t)) == TABLE_META_KEYS  # the key list the Dask engine keeps for its tables
    assert t["id"].type == pa.string()
    assert t["label_name"].to_pylist() == ["pos", "neg"] and t["pred_label_name"].to_pylist() == ["pos", "pos"]


def test_label_names_of_the_wrong_length_name_run_json(tmp_path):
    from cartography_core import compute_stats

    rows = [{"id": 1, "label": 1, "logits": [0.0, 1.0]}]
    with pytest.raises(LogError, match=r"r/run.json: label_names has 3 names but the logs have 2 classes"):
        compute_stats(_run(tmp_path, [rows], label_names=["a", "b", "c"]))


def test_name_classes_replaces_names_and_checks_their_count():
    t = pa.table({"id": [1, 2], "label": [0, 0], "pred_label": [0, 0]})
    once = name_classes(t, ["only"])  # one class: the highest index is 0
    assert once["label_name"].to_pylist() == ["only", "only"] and once["label_name"].type == pa.string()
    twice = name_classes(name_classes(pa.table({"id": [1], "label": [1], "pred_label": [0]}), ["a", "b"]), [7, 8])
    assert twice.column_names.count("label_name") == 1 and twice.column_names.count("pred_label_name") == 1
    assert twice["label_name"].to_pylist() == ["8"] and twice["pred_label_name"].to_pylist() == ["7"]
    assert twice["pred_label_name"].type == pa.string() and table_meta(twice)["label_names"] == ["7", "8"]
    with pytest.raises(LogError, match=r"^1 class names given, but label goes up to 1$"):
        name_classes(pa.table({"id": [1], "label": [1], "pred_label": [0]}), ["a"])


def test_an_exact_zero_probability_adds_nothing_to_entropy(tmp_path):
    from cartography_core import compute_stats

    rows = [{"id": 1, "label": 0, "probs": [1.0, 0.0]}, {"id": 2, "label": 1, "probs": [0.5, 0.5]}]
    t = compute_stats(_run(tmp_path, [rows], fmt="jsonl"))
    assert t["entropy"].to_pylist() == pytest.approx([0.0, np.log(2)])


def test_strict_reading_reaches_the_reader(tmp_path):
    from cartography_core import compute_stats

    rows = [{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 0, "logits": [1.0, 0.0]}]
    run = _run(tmp_path, [rows, rows[:1]])
    assert compute_stats(run)["n_epochs"].to_pylist() == [2, 1]
    with pytest.raises(LogError, match="id 2"):
        compute_stats(run, strict=True)


def test_chunked_folding_equals_one_chunk(tmp_path, monkeypatch):
    """Batches longer than CHUNK are folded in chunks: the same table as a single chunk."""
    from cartography_core import compute_stats, stats

    rng = np.random.default_rng(3)
    epochs = [
        [{"id": int(i), "label": int(i % 3), "logits": rng.normal(size=3).tolist()} for i in rng.permutation(40)]
        for _ in range(3)
    ]
    run = _run(tmp_path, epochs)
    whole = compute_stats(run)
    monkeypatch.setattr(stats, "CHUNK", 7)
    chunked = compute_stats(run)
    assert chunked.equals(whole)


# ---------------------------------------------------------------------------------------------------------
# data map, selection and pooling: cases the first triage left


def test_histogram_edges_do_not_follow_the_values():
    h = histogram(np.array([0.2, 0.4]), bins=4)
    assert h["lo"].to_pylist() == [0.0, 0.25, 0.5, 0.75] and h["count"].to_pylist() == [1, 1, 0, 0]


def test_density_bin_edges():
    from cartography_core.dashboard.datamap import density

    d = density(np.array([0.3, 0.0]), np.array([0.6, 0.0]), np.array([1, 0]), bins=4).to_pydict()
    assert d == {
        "group": [0, 1],
        "var_lo": [0.0, 0.25],
        "var_hi": [0.125, 0.375],
        "conf_lo": [0.0, 0.5],
        "conf_hi": [0.25, 0.75],
        "count": [1, 1],
    }


def test_search_without_texts_looks_in_the_ids_and_never_matches_a_missing_text():
    stats = pa.table({"id": [10, 21, 32], "label": [0, 0, 0], "confidence": [0.1] * 3, "variability": [0.1] * 3})
    assert filter_mask(stats, RowFilter(search="2")).tolist() == [False, True, True]
    texts = pa.chunked_array([["a cat", None, "dog"]])
    assert filter_mask(stats, RowFilter(search="a"), texts=texts).tolist() == [True, False, False]


def test_trajectory_of_a_probability_log(tmp_path):
    from cartography_core import open_run
    from cartography_core.dashboard.datamap import trajectory
    from tests.logs import write_log

    rows = [{"id": 1, "label": 1, "probs": [0.25, 0.75]}]
    run = open_run(write_log(tmp_path / "r", [rows], "jsonl"))
    assert trajectory(run, 1).to_pydict()["p_gold"] == [0.75]  # read as probabilities, not as logits


def test_sample_points_default_seed_is_zero():
    conf, var = np.random.default_rng(1).random(50), np.zeros(50)
    assert sample_points(conf, var, max_points=10, size=6).tolist() == (
        sample_points(conf, var, max_points=10, size=6, seed=0).tolist()
    )


def test_top_fraction_members_put_the_rest_in_other():
    t = scores_table(np.array([0.1, 0.5, 0.9, 0.5]), np.array([0.0, 0.0, 0.0, 0.3]))
    m = top_fraction_members(t, 0.25)  # one example per subset
    assert m[REGIONS.index("other")].tolist() == [False, True, False, False]


def test_rank_order_says_how_many_examples_lack_the_score():
    t = pa.table({"id": [1, 2, 3], "aum": pa.array([0.5, None, None], type=pa.float64())})
    with pytest.raises(LogError, match=r"^aum is undefined for 2 examples \(a log of probabilities has no aum\)$"):
        rank_order(t, "aum")


def test_pooled_aum_of_probability_logs_is_null_not_nan():
    tables = [run_table([1, 2], [0, 1], [0.2 + shift, 0.7]) for shift in (0.0, 0.1)]
    tables = [t.set_column(t.column_names.index("aum"), "aum", pa.array([None, None], pa.float64())) for t in tables]
    pooled = pool_runs(tables, ["a", "b"])
    assert pooled["aum"].null_count == 2 and pooled["aum_se"].null_count == 2
    assert pooled["confidence"].to_pylist() == pytest.approx([0.25, 0.7])


def test_compare_groups_names_the_group_missing_an_example():
    full = pa.table({"id": [1, 2], "confidence": [0.1, 0.2]})
    part = pa.table({"id": [1], "confidence": [0.1]})
    with pytest.raises(LogError, match="group A"):
        compare_groups([full, part], [full, full], "confidence")


@pytest.mark.parametrize("later", [[1, 2, 3], [1, 3, 2]])
def test_ids_first_seen_in_a_later_epoch(tmp_path, later):
    """Epoch 0 logs ids 1 and 3 (or 1 and 2), epoch 1 adds the third: rows come out sorted by id, each with
    its own epoch count."""
    from cartography_core import compute_stats

    first = [1, 3] if later == [1, 2, 3] else [1, 2]
    row = lambda i: {"id": i, "label": i % 2, "logits": [float(i), 0.0]}  # noqa: E731
    t = compute_stats(_run(tmp_path, [[row(i) for i in first], [row(i) for i in later]]))
    assert t["id"].to_pylist() == [1, 2, 3]
    counts = {i: 2 if i in first else 1 for i in (1, 2, 3)}
    assert t["n_epochs"].to_pylist() == [counts[1], counts[2], counts[3]]
    assert t["label"].to_pylist() == [1, 0, 1]


def test_messages_of_misused_helpers_are_exact():
    stats = pa.table({"id": [1], "label": [0], "confidence": [0.1], "variability": [0.1]})
    with pytest.raises(LogError, match="^a region filter needs the region membership$"):
        filter_mask(stats, RowFilter(region=0))
    with pytest.raises(LogError, match="^split-half reliability needs at least 2 runs, got 1$"):
        split_half_reliability([run_table([1, 2], [0, 0], [0.5, 0.6])], "confidence")


def test_filter_mask_leaves_the_shared_membership_unmodified():
    stats = pa.table({"id": [1, 2, 3], "label": [0, 1, 0], "confidence": [0.1] * 3, "variability": [0.1] * 3})
    members = np.zeros((len(REGIONS), 3), dtype=bool)
    members[0] = True
    before = members.copy()
    assert filter_mask(stats, RowFilter(region=0, label=0), members=members).tolist() == [True, False, True]
    assert (members == before).all()  # cached and shared by every session: never written


def test_empty_inputs_give_empty_results():
    from cartography_core.dashboard.datamap import density

    assert density(np.array([]), np.array([])).num_rows == 0
    empty = pa.table(
        {"id": pa.array([], pa.int64()), "label": pa.array([], pa.int64()), "pred_label": pa.array([], pa.int64())}
    )
    assert name_classes(empty, ["a"])["label_name"].to_pylist() == []


def test_compare_groups_message_is_exact():
    full = pa.table({"id": [1, 2], "confidence": [0.1, 0.2]})
    part = pa.table({"id": [1], "confidence": [0.1]})
    want = (
        r"^group A, run 1: logs other examples than the first run of group A \(1 ids differ\); every run of both "
        r"groups must log the same examples to compare them$"
    )
    with pytest.raises(LogError, match=want):
        compare_groups([full, part], [full, full], "confidence")


def test_pooled_metadata_is_the_first_runs_with_every_runs_padding():
    a, b = run_table([1, 2], [0, 1], [0.2, 0.7]), run_table([1, 2], [0, 1], [0.3, 0.6])

    def meta(e, padding):
        return {b"cartography": json.dumps({"n_epochs": e, "layout": "cartography", "padding_rows": padding}).encode()}

    pooled = pool_runs([a.replace_schema_metadata(meta(3, 2)), b.replace_schema_metadata(meta(5, 3))], ["a", "b"])
    want = {"n_epochs": 3, "layout": "cartography", "run": None, "runs": ["a", "b"], "label_issue_rule": "aum"}
    assert table_meta(pooled) == {**want, "padding_rows": 5}  # the flag's rule: the pooled one; padding: both runs
