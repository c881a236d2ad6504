"""The dashboard on a precomputed statistics dataset (a run scored with ``stats --engine dask``): what the page
shows against the in-memory statistics and the examples file's rows."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cartography_core import RegionThresholds, compute_stats, region_codes
from cartography_core.cluster import compute_stats_dask
from cartography_core.select import rank_order
from tests.test_app import SAMPLES, chart_rows, run_app, shown
from tests.test_cluster import client  # noqa: F401  (the LocalCluster fixture)


@pytest.fixture(scope="module")
def root(tmp_path_factory, client):  # noqa: F811
    """A log root holding a dataset's examples file and one run scored on the cluster, without its logs."""
    root = tmp_path_factory.mktemp("precomputed")
    shutil.copy(SAMPLES / "trec" / "examples.parquet", root / "examples.parquet")
    compute_stats_dask(SAMPLES / "trec" / "seed-1", root / "seed-1-stats", client=client, partition_rows=1000)
    return root


def test_the_page_shows_the_runs_counts_points_and_examples_with_their_own_texts(monkeypatch, root):
    at = run_app(monkeypatch, root, run="seed-1-stats")
    assert shown(at.title[0].value) == "Data map: seed-1-stats"
    assert not at.error
    stats = compute_stats(SAMPLES / "trec" / "seed-1")
    names = stats.schema.metadata and ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), RegionThresholds())
    counts = at.dataframe[0].value.set_index("class")
    for c, name in enumerate(names):
        want = np.bincount(codes[stats["label"].to_numpy() == c], minlength=4)
        assert counts.loc[name, ["easy-to-learn", "ambiguous", "hard-to-learn", "other"]].tolist() == want.tolist()
    assert counts.loc["all", "total"] == stats.num_rows

    examples = pd.read_parquet(SAMPLES / "trec" / "examples.parquet").set_index("id")
    datasets, _ = chart_rows(at)
    points = max(datasets.values(), key=lambda t: t.num_rows).to_pandas()
    assert len(points) == stats.num_rows  # under the 20,000 cap: every example is a point
    ids = points["id"].astype(int)
    assert (points["text"].to_numpy() == examples.loc[ids, "text"].str.slice(0, 280).to_numpy()).all()
    assert (
        points["gold"].to_numpy()
        == np.asarray(names)[stats["label"].to_numpy()[np.searchsorted(stats["id"].to_numpy(), ids)]]
    ).all()

    page = at.dataframe[1].value  # hard-to-learn, by confidence, hardest first
    hard = stats.filter(pa.array(codes == 2))
    want = hard.take(pa.array(rank_order(hard, "confidence")[:100]))
    assert page["id"].astype(int).tolist() == want["id"].to_pylist()
    assert (page["text"].to_numpy() == examples.loc[page["id"].astype(int), "text"].to_numpy()).all()


def test_a_class_and_a_sort_of_the_sidebar_shape_the_page(monkeypatch, root):
    at = run_app(monkeypatch, root, run="seed-1-stats", cls="HUM")
    at.selectbox(key="pre_subset").set_value("ambiguous")
    at.selectbox(key="sort").set_value("variability")
    at.run()
    page = at.dataframe[1].value
    stats = compute_stats(SAMPLES / "trec" / "seed-1")
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), RegionThresholds())
    keep = (codes == 1) & (stats["label"].to_numpy() == 3)
    sub = stats.filter(pa.array(keep))
    want = sub.take(pa.array(rank_order(sub, "variability")[:100]))
    assert page["id"].astype(int).tolist() == want["id"].to_pylist()
    assert page["variability"].is_monotonic_decreasing  # hardest first: most variable first
    at.number_input(key="pre_page").set_value(2)
    at.run()
    second = at.dataframe[1].value  # the next 100 of the same ranking
    assert (
        second["id"].astype(int).tolist()
        == sub.take(pa.array(rank_order(sub, "variability")[100:200]))["id"].to_pylist()
    )
    datasets, _ = chart_rows(at)
    assert max(t.num_rows for t in datasets.values()) == int((stats["label"].to_numpy() == 3).sum())


def test_a_broken_dataset_is_a_notice_not_a_traceback(monkeypatch, tmp_path, root):
    broken = tmp_path / "logs"
    shutil.copytree(root / "seed-1-stats", broken / "seed-1-stats")
    part = sorted((broken / "seed-1-stats").glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])  # a truncated upload
    at = run_app(monkeypatch, broken, run="seed-1-stats")
    assert len(at.error) == 1 and "seed-1-stats cannot be read" in shown(at.error[0].value)
    assert str(tmp_path) not in at.error[0].value  # no server path reaches the browser
