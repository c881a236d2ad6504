"""Noise injection and detection metrics (``evaluate.py``), on hand-worked cases."""

import numpy as np
import pytest

from cartography_core.evaluate import detection_scores, flag_quality, flip_labels, nearest_classes


def test_flip_labels_moves_exactly_the_rate_to_other_classes():
    labels = np.arange(1000) % 3
    noisy, flipped = flip_labels(labels, 3, 0.1, seed=1)
    assert flipped.sum() == 100
    assert (noisy[flipped] != labels[flipped]).all() and (noisy[~flipped] == labels[~flipped]).all()
    assert set(noisy[flipped]) == {0, 1, 2}


def test_detection_scores_by_hand():
    flipped = np.array([True, False, True, False])
    d = detection_scores(flipped, np.array([0.9, 0.8, 0.1, 0.2]))
    assert d.auroc == pytest.approx(0.5)  # pairs (flip, clean): (0.9>0.8) (0.9>0.2) (0.1<0.8) (0.1<0.2)
    assert d.precision_at_k == 0.5 and d.false_negative_rate_at_k == 0.5
    # ranking: flip(0.9), clean(0.8), clean(0.2), flip(0.1): precision 1 at recall 1/2, 1/2 at recall 1
    assert d.average_precision == pytest.approx(0.5 * 1 + 0.5 * 0.5)


def test_detection_scores_known_ranks_give_known_auroc_ap_and_top_shares():
    # 20 rows, flips at ranks 1, 2, 4 and 11 (1 = most suspect); suspicion = 20 - rank (no ties)
    flipped = np.zeros(20, dtype=bool)
    flipped[[0, 1, 3, 10]] = True
    d = detection_scores(flipped, 20.0 - np.arange(20))
    # AUROC: each flip outranks the clean rows below it: (16 + 16 + 15 + 9) / (4 * 16) = 56 / 64
    assert d.auroc == pytest.approx(56 / 64)
    # AP: mean over flips of precision at its rank: (1/1 + 2/2 + 3/4 + 4/11) / 4
    assert d.average_precision == pytest.approx((1 + 1 + 3 / 4 + 4 / 11) / 4)
    assert d.precision_at_k == pytest.approx(3 / 4)  # k = 4: ranks 1, 2, 4 among the top 4
    # hardest 1% of 20 = 0 rows, 5% = 1 row (1 flip of 4), 10% = 2 rows (2 of 4)
    assert d.found_in_top == {0.01: 0.0, 0.05: pytest.approx(0.25), 0.10: pytest.approx(0.5)}


def test_flag_quality_by_hand():
    flipped = np.array([True, True, False, False, True])
    q = flag_quality(flipped, np.array([True, False, True, False, True]))
    assert (q.flagged, q.flipped, q.precision, q.recall) == (3, 3, pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert flag_quality(flipped, np.zeros(5, dtype=bool)).precision == 0.0


def test_nearest_classes_compare_centroid_directions_not_sizes():
    # class 1 is large and shares "beta" with class 0; class 2 is small and shares "alpha beta" and "delta":
    # a raw dot product of class sums picks the big class 1 for class 0, the cosine picks class 2
    texts = np.array(
        ["alpha beta", "alpha beta delta"]
        + [f"gamma beta word{i} word{i}" for i in range(8)] + ["gamma beta"] * 8
        + ["alpha beta", "alpha delta"]
    )  # fmt: skip
    labels = np.array([0, 0] + [1] * 16 + [2, 2])
    assert nearest_classes(texts, labels, 3).tolist() == [2, 0, 0]


def test_confusable_noise_moves_each_class_to_its_nearest_class():
    texts = np.array(
        ["cheap pills buy now", "buy cheap pills", "win cash prize now", "win a cash prize",
         "see you at lunch", "lunch at noon then", "meeting at noon", "see you at the meeting"]
    )  # fmt: skip
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    near = nearest_classes(texts, labels, 4)
    # classes 0 and 1 share "now"; 2 and 3 share "see you", "at" and "noon"; 0/1 share nothing with 2/3
    assert near.tolist() == [1, 0, 3, 2]
    noisy, flipped = flip_labels(labels, 4, 0.5, seed=3, targets=near)
    assert flipped.sum() == 4 and (noisy[flipped] == near[labels[flipped]]).all()
    assert (noisy[~flipped] == labels[~flipped]).all()


def test_detection_needs_both_kinds_of_rows_and_accepts_a_single_flip():
    from cartography_core import LogError

    with pytest.raises(LogError, match="detection_scores needs both flipped and clean rows"):
        detection_scores(np.zeros(4, dtype=bool), np.arange(4.0))
    with pytest.raises(LogError, match="needs both flipped and clean rows"):
        detection_scores(np.ones(4, dtype=bool), np.arange(4.0))
    d = detection_scores(np.array([False, False, True]), np.array([0.1, 0.2, 0.9]))  # k = 1, ranked first
    assert (d.auroc, d.average_precision, d.precision_at_k, d.false_negative_rate_at_k) == (1.0, 1.0, 1.0, 0.0)


def test_false_negative_rate_at_k_counts_the_flips_outside_the_top_k():
    flipped = np.zeros(20, dtype=bool)
    flipped[[0, 1, 3, 10]] = True  # ranks 1, 2, 4, 11: 3 of the 4 flips in the top 4
    assert detection_scores(flipped, 20.0 - np.arange(20)).false_negative_rate_at_k == pytest.approx(0.25)


def test_flag_quality_without_flips_or_flags_is_zero_not_a_division_error():
    q = flag_quality(np.zeros(3, dtype=bool), np.array([True, False, False]))
    assert (q.flagged, q.flipped, q.precision, q.recall) == (1, 0, 0.0, 0.0)


def test_flip_labels_checks_its_arguments_and_spreads_each_class_over_every_other():
    from cartography_core import LogError

    for rate, k in [(-0.1, 3), (1.5, 3), (0.1, 1)]:
        with pytest.raises(LogError, match="needs 0 <= rate <= 1 and at least 2 classes"):
            flip_labels(np.zeros(10, dtype=int), k, rate, seed=0)
    noisy, flipped = flip_labels(np.arange(30) % 3, 3, 0.0, seed=0)  # rate 0 is allowed: nothing moves
    assert not flipped.any() and (noisy == np.arange(30) % 3).all()
    labels = np.zeros(3000, dtype=int)  # one source class: its flips must reach both other classes
    noisy, flipped = flip_labels(labels, 3, 0.2, seed=4)
    share = np.bincount(noisy[flipped], minlength=3) / flipped.sum()
    assert share[0] == 0 and 0.4 < share[1] < 0.6 and 0.4 < share[2] < 0.6


def test_flip_labels_is_reproducible_and_works_for_two_classes_and_rate_one():
    labels = np.arange(200) % 2
    a, fa = flip_labels(labels, 2, 0.1, seed=7)
    b, fb = flip_labels(labels, 2, 0.1, seed=7)
    assert (a == b).all() and (fa == fb).all() and not (fa == flip_labels(labels, 2, 0.1, seed=8)[1]).all()
    assert fa.sum() == 20 and (a[fa] == 1 - labels[fa]).all()  # two classes: a flip is the other class
    everything, flipped = flip_labels(labels, 2, 1.0, seed=0)
    assert flipped.all() and (everything == 1 - labels).all()


def test_ties_in_the_score_are_broken_by_row_order():
    flipped = np.zeros(40, dtype=bool)
    flipped[30:] = True  # the flips come last; every row has the same score
    d = detection_scores(flipped, np.zeros(40))
    assert d.auroc == 0.5 and d.precision_at_k == 0.0  # the 10 "hardest" are rows 0-9, all clean
