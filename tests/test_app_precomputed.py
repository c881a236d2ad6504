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
from cartography_core.stats import class_names
from tests.test_app import SAMPLES, chart_rows, run_app, shown


@pytest.fixture(scope="module")
def root(tmp_path_factory, client):
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
    names = class_names(stats)  # the run's own: ABBR, DESC, ENTY, HUM, LOC, NUM
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


def test_a_link_carries_the_class_subset_sort_and_page(monkeypatch, root):
    at = run_app(monkeypatch, root, run="seed-1-stats", cls="HUM", dsubset="ambiguous", sort="variability")
    assert at.selectbox(key="dsubset").value == "ambiguous" and at.selectbox(key="sort").value == "variability"
    page = at.dataframe[1].value
    stats = compute_stats(SAMPLES / "trec" / "seed-1")
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), RegionThresholds())
    keep = (codes == 1) & (stats["label"].to_numpy() == 3)
    sub = stats.filter(pa.array(keep))
    order = rank_order(sub, "variability")
    assert page["id"].astype(int).tolist() == sub.take(pa.array(order[:100]))["id"].to_pylist()
    assert (page["gold"] == "HUM").all() and page["variability"].is_monotonic_decreasing
    datasets, _ = chart_rows(at)
    assert max(t.num_rows for t in datasets.values()) == int((stats["label"].to_numpy() == 3).sum())
    at = run_app(monkeypatch, root, run="seed-1-stats", cls="HUM", dsubset="ambiguous", sort="variability", dpage="2")
    second = at.dataframe[1].value  # the next hundred of the same ranking
    assert second["id"].astype(int).tolist() == sub.take(pa.array(order[100:200]))["id"].to_pylist()
    at = run_app(monkeypatch, root, run="seed-1-stats", dsubset="brush", amb_var="0.9")
    notices = " ".join(shown(w.value) for w in at.warning)
    assert "dsubset='brush' is not one of the choices here" in notices and "amb_var='0.9'" in notices


def test_the_likely_mislabeled_subset_lists_the_flagged_examples(monkeypatch, root):
    at = run_app(monkeypatch, root, run="seed-1-stats", dsubset="likely mislabeled", sort="aum")
    stats = compute_stats(SAMPLES / "trec" / "seed-1")
    flagged = stats.filter(stats["label_issue"])
    heading = " ".join(shown(h.value) for h in at.subheader)
    assert f"Likely label errors: {flagged.num_rows:,} of {stats.num_rows:,} examples" in heading
    page = at.dataframe[1].value
    assert page["id"].astype(int).tolist() == flagged.take(pa.array(rank_order(flagged, "aum")[:100]))["id"].to_pylist()


def test_examples_as_csv_with_padded_string_ids_and_an_unfinished_result(monkeypatch, tmp_path, client):
    from tests.logs import write_log
    from tests.test_cluster import messy_epochs

    root = tmp_path / "logs"
    epochs = messy_epochs(n=50, epochs=2, string_ids=True)
    epochs = [[{**r, "id": f"00{r['id'][3:]}"} for r in e] for e in epochs]  # ids such as "00517"
    run = write_log(tmp_path / "run", epochs, "parquet")
    compute_stats_dask(run, root / "ds" / "stats", client=client)
    ids = sorted({r["id"] for r in epochs[0]})
    (root / "ds" / "examples.csv").write_text("id,text\n" + "".join(f"{i},text {i}\n" for i in ids))
    compute_stats_dask(run, root / "ds" / "broken", client=client)
    (root / "ds" / "broken" / "cartography.json").unlink()  # a scoring that did not finish
    at = run_app(monkeypatch, root, run="ds/stats", dsubset="all")
    page = at.dataframe[1].value
    assert (page["text"] == "text " + page["id"]).all() and page["id"].str.startswith("00").all()
    assert "1 folders under the log root could not be read" in " ".join(shown(c.value) for c in at.caption)
    assert at.selectbox(key="run").options == ["ds/stats"]
    (root / "ds" / "examples.csv").unlink()
    at = run_app(monkeypatch, root, run="ds/stats")
    assert any("ids only" in shown(c.value) for c in at.caption)


def test_a_broken_dataset_is_a_notice_not_a_traceback(monkeypatch, tmp_path, root):
    broken = tmp_path / "logs"
    shutil.copytree(root / "seed-1-stats", broken / "seed-1-stats")
    part = sorted((broken / "seed-1-stats").glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])  # a truncated upload
    at = run_app(monkeypatch, broken, run="seed-1-stats")
    assert len(at.error) == 1 and "seed-1-stats cannot be read" in shown(at.error[0].value)
    assert str(tmp_path) not in at.error[0].value  # no server path reaches the browser


def test_without_an_examples_file_beside_it_the_runs_own_gives_the_texts(monkeypatch, tmp_path, root):
    alone = tmp_path / "logs"
    shutil.copytree(root / "seed-1-stats", alone / "seed-1-stats")  # no examples file here or above
    at = run_app(monkeypatch, alone, run="seed-1-stats")
    examples = pd.read_parquet(SAMPLES / "trec" / "examples.parquet").set_index("id")
    page = at.dataframe[1].value
    assert (page["text"].to_numpy() == examples.loc[page["id"].astype(int), "text"].to_numpy()).all()


def test_texts_follow_an_edited_examples_file_of_the_run(monkeypatch, tmp_path, client):
    """The run's own examples file lies outside the dataset's folder: editing it must not leave old texts cached."""
    shutil.copytree(SAMPLES / "trec" / "seed-1", tmp_path / "trec" / "seed-1")
    shutil.copy(SAMPLES / "trec" / "examples.parquet", tmp_path / "trec" / "examples.parquet")
    compute_stats_dask(tmp_path / "trec" / "seed-1", tmp_path / "logs" / "seed-1-stats", client=client)
    at = run_app(monkeypatch, tmp_path / "logs", run="seed-1-stats")
    examples = pd.read_parquet(tmp_path / "trec" / "examples.parquet")
    ids = at.dataframe[1].value["id"].astype(int)
    assert (at.dataframe[1].value["text"].to_numpy() == examples.set_index("id").loc[ids, "text"].to_numpy()).all()
    examples["text"] = "NEW " + examples["text"]
    examples.to_parquet(tmp_path / "trec" / "examples.parquet", index=False)
    page = run_app(monkeypatch, tmp_path / "logs", run="seed-1-stats").dataframe[1].value
    assert page["id"].astype(int).tolist() == ids.tolist()
    assert (page["text"].to_numpy() == examples.set_index("id").loc[ids, "text"].to_numpy()).all()
