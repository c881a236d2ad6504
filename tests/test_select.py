"""Subsets: exact sizes, directions, id tie-breaks, regions, random baselines, joins and writing."""

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartography_core import (
    LogError,
    RegionThresholds,
    region_codes,
    region_counts,
    select_fraction,
    select_random,
    select_region,
    subset_size,
    with_examples,
    write_table,
)
from cartography_core.io import table_bytes
from cartography_core.regions import member_names, region_members
from cartography_core.select import top_fraction_members


def stats(conf, var, ids=None, **extra):
    n = len(conf)
    cols = {"id": ids if ids is not None else list(range(n)), "label": [0] * n, "confidence": conf, "variability": var}
    cols.update(extra)
    return pa.table(cols)


@pytest.mark.parametrize(
    "f, n, want", [(0.29, 100, 29), (0.33, 100, 33), (0.1, 7, 0), (0.5, 7, 3), (1.0, 9, 9), (0.07, 100, 7)]
)
def test_subset_size_is_floor_of_the_written_decimal(f, n, want):
    assert subset_size(f, n) == want


@pytest.mark.parametrize("f", [0, -0.1, 1.5])
def test_subset_size_rejects_bad_fractions(f):
    with pytest.raises(LogError, match=re.escape("fraction must lie in (0, 1]")):
        subset_size(f, 10)


def test_hardest_by_confidence_is_lowest_with_ties_by_id():
    t = stats([0.5, 0.1, 0.1, 0.9, 0.1], [0.0] * 5, ids=[10, 40, 20, 30, 30 + 5])
    # three tied at 0.1: ids 40, 20, 35 -> by id 20, 35, 40
    assert select_fraction(t, "confidence", 0.6).tolist() == [2, 4, 1]
    assert select_fraction(t, "confidence", 0.4, hardest=False).tolist() == [3, 0]


def test_hardest_by_variability_is_highest_and_ties_by_id_in_both_directions():
    t = stats([0.5] * 4, [0.3, 0.1, 0.3, 0.2], ids=[9, 8, 7, 6])
    assert select_fraction(t, "variability", 0.5).tolist() == [2, 0]  # 0.3 twice: id 7 before id 9
    assert select_fraction(t, "variability", 0.5, hardest=False).tolist() == [1, 3]


def test_both_ends_takes_ceil_half_from_the_chosen_end():
    t = stats([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.0] * 10)
    assert select_fraction(t, "confidence", 0.5, both_ends=True).tolist() == [0, 1, 2, 9, 8]


def test_never_learned_ranks_latest_for_learned_epoch():
    t = stats([0.5] * 3, [0.0] * 3, first_learned_epoch=pa.array([2, None, 0], pa.int32()))
    assert select_fraction(t, "first_learned_epoch", 1.0).tolist() == [1, 0, 2]


def test_unknown_metric_lists_the_choices():
    with pytest.raises(LogError, match="unknown metric 'conf'; choose one of: confidence, variability"):
        select_fraction(stats([0.5], [0.1]), "conf", 0.5)


def test_regions_follow_the_documented_rule_and_leave_other_in_a_gap():
    conf = np.array([0.9, 0.9, 0.1, 0.6, 0.5])
    var = np.array([0.05, 0.25, 0.05, 0.05, 0.2])
    assert region_codes(conf, var).tolist() == [0, 1, 2, 0, 1]  # 0.2 is ambiguous: >= threshold
    gap = RegionThresholds(0.2, easy_min_confidence=0.7, hard_max_confidence=0.3)
    assert region_codes(conf, var, gap).tolist() == [0, 1, 2, 3, 1]
    t = stats(conf.tolist(), var.tolist())
    assert select_region(t, "hard-to-learn").tolist() == [2]


def test_region_counts_per_class():
    counts = region_counts(np.array([0, 1, 2, 2, 0]), np.array([1, 1, 0, 1, 0]), ["neg", "pos"]).to_pylist()
    assert counts[0] == {"class": "neg", "easy-to-learn": 1, "ambiguous": 0, "hard-to-learn": 1, "other": 0, "total": 2}
    assert counts[1]["hard-to-learn"] == 1 and counts[1]["easy-to-learn"] == 1 and counts[1]["ambiguous"] == 1
    assert counts[2]["class"] == "all" and counts[2]["total"] == 5
    # a class with no example has no row; the others keep their own names (class 2 is "c", not the second)
    gap = region_counts(np.array([1, 0, 3, 0]), np.array([2, 0, 2, 2]), ["a", "b", "c"]).to_pylist()
    assert [(r["class"], r["easy-to-learn"], r["ambiguous"], r["other"], r["total"]) for r in gap] == [
        ("a", 1, 0, 0, 1),
        ("c", 1, 1, 1, 3),
        ("all", 2, 1, 1, 4),
    ]


def test_inconsistent_thresholds_are_refused():
    with pytest.raises(LogError, match="must not exceed easy_min_confidence"):
        RegionThresholds(0.2, easy_min_confidence=0.3, hard_max_confidence=0.6)


def test_top_fraction_members_is_the_papers_rule():
    t = stats([0.1, 0.2, 0.5, 0.8, 0.9, 0.5], [0.0, 0.01, 0.4, 0.02, 0.0, 0.3])
    # q = 1/3 of 6 = 2 each: hardest conf ids 0,1; easiest 4,3; most variable 2,5; none left for "other"
    m = top_fraction_members(t, 1 / 3 + 1e-12)
    assert [np.flatnonzero(row).tolist() for row in m] == [[3, 4], [2, 5], [0, 1], []]


def test_top_fraction_subsets_overlap_and_equal_select_fraction():
    """The hard one-third holds the lowest-confidence third even where it is also the most variable third."""
    t = stats([0.1, 0.2, 0.3, 0.8, 0.9, 0.95], [0.4, 0.3, 0.0, 0.02, 0.0, 0.01])
    m = top_fraction_members(t, 0.5)  # 3 each
    assert np.flatnonzero(m[2]).tolist() == [0, 1, 2] == sorted(select_fraction(t, "confidence", 0.5).tolist())
    assert np.flatnonzero(m[1]).tolist() == [0, 1, 3]  # ambiguous overlaps hard-to-learn on ids 0 and 1
    assert member_names(m).tolist() == [
        "ambiguous+hard-to-learn",
        "ambiguous+hard-to-learn",
        "hard-to-learn",
        "easy-to-learn+ambiguous",
        "easy-to-learn",
        "easy-to-learn",
    ]
    counts = region_counts(m, np.array([0, 0, 0, 1, 1, 1])).to_pylist()
    assert counts[0] == {"class": "0", "easy-to-learn": 0, "ambiguous": 2, "hard-to-learn": 3, "other": 0, "total": 3}
    assert counts[2]["total"] == 6 and counts[2]["ambiguous"] == 3


def test_random_baseline_is_seeded_sorted_and_distinct():
    a, b = select_random(100, 10, seed=3), select_random(100, 10, seed=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 10 and (np.diff(a) > 0).all()
    assert select_random(100, 10, seed=4).tolist() != a.tolist()


def test_with_examples_joins_by_id_and_keeps_order():
    s = stats([0.1, 0.2, 0.3], [0.0] * 3, ids=[3, 1, 2])
    ex = pa.table({"id": ["1", "2", "9"], "text": ["one", "two", "nine"], "label": [0, 1, 0]})
    out = with_examples(s, ex)
    assert out["text"].to_pylist() == [None, "one", "two"]
    assert out.column_names[:3] == ["id", "text", "label_examples"]  # label differs for id 2: kept apart


def test_write_refuses_to_overwrite_and_round_trips(tmp_path):
    t = stats([0.25, 0.5], [0.0, 0.1], first_learned_epoch=pa.array([None, 1], pa.int32()))
    p = write_table(t, tmp_path / "s.parquet")
    assert pq.read_table(p).equals(t)
    with pytest.raises(LogError, match="already exists; choose another name or pass --force"):
        write_table(t, p)
    write_table(t, tmp_path / "s.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert rows[1] == {"id": 1, "label": 0, "confidence": 0.5, "variability": 0.1, "first_learned_epoch": 1}
    assert rows[0]["first_learned_epoch"] is None
    assert table_bytes(t, ".csv").decode().splitlines()[1] == "0,0,0.25,0,"


def test_examples_ids_that_cannot_match_name_the_file(tmp_path):
    from cartography_core import open_run, read_examples
    from tests.logs import write_log

    run = write_log(
        tmp_path / "r",
        [[{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 1, "logits": [0.0, 1.0]}]],
        "jsonl",
    )
    pa.table({"id": ["a", "b"], "text": ["x", "y"]}).to_pandas().to_csv(run / "examples.csv", index=False)
    stats = pa.table({"id": pa.array([1, 2], pa.int64()), "confidence": [0.5, 0.5]})
    with pytest.raises(
        LogError, match=re.escape("r/examples.csv: ids (string) cannot be matched to the log's ids (int64)")
    ):
        with_examples(stats, read_examples(open_run(run)))


def test_lenient_thresholds_lower_hard_to_easy_and_say_so():
    t, note = RegionThresholds.lenient(0.2, 0.4, 0.6)
    assert (t.easy_min_confidence, t.hard_max_confidence) == (0.4, 0.4)
    assert note == "Hard-to-learn's bound (0.6) is above easy-to-learn's (0.4); using 0.4 for both."
    assert RegionThresholds.lenient(0.2, 0.6, 0.4) == (RegionThresholds(0.2, 0.6, 0.4), None)


def test_values_exactly_on_a_threshold():
    """variability == 0.2 is ambiguous (>=); confidence == 0.5 is easy (>=), not hard (<); with a gap,
    confidence == the hard bound is other, just below it hard."""
    conf = np.array([0.5, 0.5, 0.9, 0.3, 0.3 - 1e-12, 0.4])
    var = np.array([0.0, 0.2, 0.2 - 1e-12, 0.0, 0.0, 0.0])
    assert region_codes(conf, var).tolist() == [0, 1, 0, 2, 2, 2]
    gap = RegionThresholds(0.2, easy_min_confidence=0.6, hard_max_confidence=0.3)
    assert region_codes(conf, var, gap).tolist() == [3, 1, 0, 3, 2, 3]


@pytest.mark.parametrize(
    "args, message",
    [
        ((0.5 + 1e-9, 0.5, 0.5), "ambiguous_min_variability must lie in [0, 0.5], got 0.500000001"),
        ((-1e-9, 0.5, 0.5), "ambiguous_min_variability must lie in [0, 0.5], got -1e-09"),
        ((0.2, 1 + 1e-9, 0.5), "easy_min_confidence must lie in [0, 1], got 1.000000001"),
        ((0.2, 0.5, -1e-9), "hard_max_confidence must lie in [0, 1], got -1e-09"),
    ],
)
def test_threshold_bounds_are_closed_intervals(args, message):
    with pytest.raises(LogError, match=re.escape(message)):
        RegionThresholds(*args)


def test_thresholds_on_the_interval_ends_are_accepted():
    for args in [(0.0, 0.0, 0.0), (0.5, 1.0, 1.0), (0.0, 1.0, 0.0)]:
        assert RegionThresholds(*args) == RegionThresholds(*args)


def test_examples_in_no_region_are_named_other_and_counts_are_integers():
    codes = np.array([3, 0, 3], dtype=np.int8)
    assert member_names(region_members(codes)).tolist() == ["other", "easy-to-learn", "other"]
    assert member_names(np.zeros((4, 2), dtype=bool)).tolist() == ["other", "other"]
    counts = region_counts(region_members(codes), np.array([0, 0, 1]))
    assert all(pa.types.is_integer(counts[c].type) for c in ("easy-to-learn", "other", "total"))
    assert counts.to_pylist()[0]["other"] == 1 and counts.to_pylist()[2]["other"] == 2
