"""The dashboard's bounded-memory figures over a statistics dataset against the in-memory functions on the
whole table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import cartography_core.dashboard.precomputed as precomputed
from cartography_core.cluster import compute_stats_dask, read_stats
from cartography_core.dashboard.datamap import density, histogram
from cartography_core.errors import LogError
from cartography_core.regions import REGIONS, RegionThresholds, region_codes
from cartography_core.select import rank_order
from tests.logs import write_log
from tests.test_cluster import messy_epochs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, client):
    root = tmp_path_factory.mktemp("pre")
    run = write_log(
        root / "ds" / "run", messy_epochs(n=900, epochs=4, seed=5), "parquet", meta={"label_names": ["a", "b", "c"]}
    )
    ids = [r["id"] for r in messy_epochs(n=900, epochs=1, seed=5)[0]]
    pa_examples = pa.table({"id": ids, "text": [f"text of {i}" for i in ids]})
    import pyarrow.parquet as pq

    pq.write_table(pa_examples, root / "ds" / "examples.parquet")
    compute_stats_dask(run, root / "ds" / "stats", client=client, partition_rows=100)
    return root / "ds" / "stats"


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(precomputed, "SCAN_ROWS", 64)  # many batches: what is summed or merged across them


@pytest.mark.parametrize("cls", [None, 1])
def test_overview_is_the_in_memory_figures(dataset, cls):
    t = read_stats(dataset)
    ds = precomputed.open_dataset(dataset)
    th = RegionThresholds(0.15, 0.6, 0.4)
    got = precomputed.overview(ds, th, cls=cls)
    mine = np.ones(t.num_rows, dtype=bool) if cls is None else t["label"].to_numpy() == cls
    conf, var, label = (t[c].to_numpy() for c in ("confidence", "variability", "label"))
    assert got.density.to_pylist() == density(var[mine], conf[mine]).to_pylist()
    # the map page's histograms: variability over [0, 0.5], correctness one bin per value of 4 epochs
    for name, bins, hi in (("confidence", 20, 1.0), ("variability", 20, 0.5), ("correctness", 5, 1.0)):
        want_hist = histogram(t[name].to_numpy()[mine], bins=bins, hi=hi)
        assert got.histograms[name].to_pylist() == want_hist.to_pylist(), name
    want = np.zeros((3, len(REGIONS)), dtype=np.int64)
    np.add.at(want, (label, region_codes(conf, var, th)), 1)
    assert got.region_counts.tolist() == want.tolist()
    assert got.sample["id"].to_pylist() == sorted(t["id"].to_numpy()[mine].tolist())  # under MAX_POINTS: all


def test_the_sample_above_max_points_keeps_the_hard_corner(dataset, monkeypatch):
    monkeypatch.setattr(precomputed, "MAX_POINTS", 100)
    t = read_stats(dataset)
    got = precomputed.overview(precomputed.open_dataset(dataset), size=50)
    ids = got.sample["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 50 and ids == sorted(ids)
    score = t["confidence"].to_numpy() + t["variability"].to_numpy()
    hard = set(t["id"].to_numpy()[np.argsort(score, kind="stable")[:20]].tolist())  # HARD_SHARE 0.4 of 50
    assert hard <= set(ids)
    assert set(ids) <= set(t["id"].to_pylist())


@pytest.mark.parametrize(
    "metric, hardest, region, cls",
    [("confidence", True, None, None), ("aum", False, "hard-to-learn", None), ("forgetting_events", True, None, 2),
     ("first_learned_epoch", True, "ambiguous", 0)],
)  # fmt: skip
def test_top_rows_are_the_first_of_the_in_memory_ranking(dataset, metric, hardest, region, cls):
    t = read_stats(dataset)
    th = RegionThresholds()
    keep = np.ones(t.num_rows, dtype=bool)
    if region is not None:
        keep &= region_codes(t["confidence"].to_numpy(), t["variability"].to_numpy(), th) == REGIONS.index(region)
    if cls is not None:
        keep &= t["label"].to_numpy() == cls
    sub = t.filter(pa.array(keep))
    want = sub.take(pa.array(rank_order(sub, metric, hardest=hardest)[:25]))
    got = precomputed.top_rows(precomputed.open_dataset(dataset), metric, k=25, hardest=hardest, region=region, cls=cls)
    assert got["id"].to_pylist() == want["id"].to_pylist()
    assert got.select(want.column_names).to_pylist() == want.to_pylist()


def test_texts_come_from_the_examples_beside_the_dataset_and_errors_are_named(dataset, tmp_path):
    ds = precomputed.open_dataset(dataset)
    rows = precomputed.top_rows(ds, "confidence", k=5)
    joined = precomputed.with_texts(ds, rows)
    assert joined["text"].to_pylist() == [f"text of {i}" for i in rows["id"].to_pylist()]
    assert joined["label"].to_pylist() == rows["label"].to_pylist()
    with pytest.raises(LogError, match="unknown metric"):
        precomputed.top_rows(ds, "nope")
    with pytest.raises(LogError, match="no cartography.json"):
        precomputed.open_dataset(tmp_path)
    assert precomputed.is_dataset(dataset) and not precomputed.is_dataset(tmp_path)
