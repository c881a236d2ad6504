"""Plain tests of what the dashboard computes through the core: binning, sampling, filters, URL state, exports."""

import io
import json
import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app import state
from cartography_core import LogError, compute_stats, open_run
from cartography_core.dashboard.cache import signature
from cartography_core.dashboard.catalog import load_run, run_ids, run_paths
from cartography_core.dashboard.datamap import (
    RowFilter,
    density,
    filter_mask,
    histogram,
    sample_points,
    top_rows,
    trajectory,
)
from cartography_core.io import table_bytes
from cartography_core.regions import region_members
from tests.logs import write_log


def test_density_matches_numpy_histogram2d():
    rng = np.random.default_rng(0)
    var, conf = rng.random(5000) * 0.5, rng.random(5000)
    var[:3], conf[:3] = 0.5, 1.0  # top edges fall in the last bin
    got = density(var, conf, bins=10).to_pandas()
    want, _, _ = np.histogram2d(var, conf, bins=10, range=[[0, 0.5], [0, 1]])
    grid = np.zeros((10, 10))
    grid[np.round(got["var_lo"] / 0.05).astype(int), np.round(got["conf_lo"] / 0.1).astype(int)] = got["count"]
    np.testing.assert_array_equal(grid, want)


def test_density_per_group_adds_up():
    var, conf, groups = np.array([0.1, 0.1, 0.3]), np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1])
    got = density(var, conf, groups, bins=4).to_pandas()
    assert got.groupby("group")["count"].sum().to_dict() == {0: 1, 1: 2}


def test_sample_points_keeps_all_small_runs_and_the_hard_corner_of_big_ones():
    rng = np.random.default_rng(1)
    conf, var = rng.random(100), rng.random(100) * 0.5
    assert sample_points(conf, var).tolist() == list(range(100))
    conf, var = rng.random(50_000), rng.random(50_000) * 0.5
    s = sample_points(conf, var, max_points=20_000, size=1000)
    assert len(s) == 1000 and len(set(s.tolist())) == 1000 and (np.diff(s) > 0).all()
    corner = np.argsort(conf + var)[:400]  # the 400 closest to the hard-to-learn corner are all drawn
    assert set(corner.tolist()) <= set(s.tolist())
    assert s.tolist() == sample_points(conf, var, max_points=20_000, size=1000).tolist()  # seeded
    # the other 600 are a uniform sample of the other 49,600 rows: mean row index and mean rank by conf + var
    # near the middle (the standard error of a mean of 600 uniform draws over 50,000 is about 590)
    others = np.setdiff1d(s, corner)
    rank = np.empty(50_000, dtype=np.int64)
    rank[np.argsort(conf + var)] = np.arange(50_000)
    assert len(others) == 600
    assert abs(others.mean() - 25_000) < 2_400 and abs(rank[others].mean() - 25_200) < 2_400


def test_histogram_counts():
    h = histogram(np.array([0.0, 0.1, 0.5, 1.0, np.nan]), bins=2).to_pydict()
    assert h["count"] == [2, 2] and h["lo"] == [0.0, 0.5]


def test_filter_mask_against_pandas():
    rng = np.random.default_rng(2)
    n = 300
    stats = pa.table(
        {
            "id": np.arange(n),
            "label": rng.integers(0, 3, n),
            "confidence": rng.random(n),
            "variability": rng.random(n) / 2,
        }
    )
    texts = pa.chunked_array([pa.array([f"Review {i} {'GREAT' if i % 7 == 0 else 'meh'}" for i in range(n)])])
    codes = rng.integers(0, 4, n).astype(np.int8)
    f = RowFilter(region=2, var_range=(0.1, 0.3), conf_range=(0.2, 0.9), label=1, search="great")
    got = filter_mask(stats, f, members=region_members(codes), texts=texts)
    df = stats.to_pandas()
    want = (
        (codes == 2)
        & df.variability.between(0.1, 0.3)
        & df.confidence.between(0.2, 0.9)
        & (df.label == 1)
        & (np.arange(n) % 7 == 0)
    )
    np.testing.assert_array_equal(got, want.to_numpy())
    with pytest.raises(LogError, match="needs the region membership"):
        filter_mask(stats, RowFilter(region=1))


def test_top_rows_keeps_the_order():
    assert top_rows(np.array([4, 2, 0, 3, 1]), np.array([True, False, True, True, False]), 2).tolist() == [2, 0]


def test_trajectory_of_one_example(tmp_path):
    rows = lambda z: [{"id": "a", "label": 1, "logits": z}, {"id": "b", "label": 0, "logits": [0.0, 0.0]}]  # noqa: E731
    run = write_log(tmp_path / "r", [rows([0.0, 0.0]), rows([0.0, np.log(3.0)])], "jsonl")
    t = trajectory(open_run(run), "a").to_pydict()
    assert t["epoch"] == [0, 1] and t["correct"] == [False, True] and t["pred"] == [0, 1]
    assert t["p_gold"] == pytest.approx([0.5, 0.75])
    with pytest.raises(LogError, match="no example with id 'zz'"):
        trajectory(open_run(run), "zz")


def test_trajectories_read_once_equal_the_per_example_read(tmp_path):
    """The in-memory index against the per-example scan, on an example missing from one epoch."""
    from cartography_core.dashboard.datamap import Trajectories

    e0 = [{"id": 7, "label": 1, "logits": [0.0, 0.0]}, {"id": 3, "label": 0, "logits": [2.0, 1.0, 0.0][:2]}]
    e1 = [{"id": 3, "label": 0, "logits": [0.0, np.log(3.0)]}]
    e2 = [{"id": 7, "label": 1, "logits": [0.0, 1.0]}, {"id": 3, "label": 0, "logits": [1.0, 1.0]}]
    run = open_run(write_log(tmp_path / "r", [e0, e1, e2], "parquet"))
    index = Trajectories.read(run, np.array([3, 7]), np.array([0, 1]))
    for example in (3, 7):
        got, want = index.of(example).to_pydict(), trajectory(run, example).to_pydict()
        assert got["p_gold"] == pytest.approx(want["p_gold"], abs=1e-7)  # float32 in memory
        assert [got[k] for k in ("epoch", "correct", "pred")] == [want[k] for k in ("epoch", "correct", "pred")]
    assert index.of(7).to_pydict()["epoch"] == [0, 2]  # not logged in epoch 1
    assert index.of(3).to_pydict()["p_gold"] == pytest.approx([1 / (1 + np.exp(-1)), 0.25, 0.5])
    with pytest.raises(LogError, match="no example with id 5"):
        index.of(5)


def test_trajectories_kept_by_the_cache_equal_the_per_example_read(tmp_path):
    """Scoring into the disk cache keeps every example's epochs (one read of the logs); they come back
    memory-mapped and equal the per-example scan, including an id missing from one epoch."""
    from cartography_core.dashboard import cache as disk
    from cartography_core.dashboard.datamap import Trajectories

    e0 = [{"id": 7, "label": 1, "logits": [0.0, 0.0]}, {"id": 3, "label": 0, "logits": [2.0, 1.0]}]
    e1 = [{"id": 3, "label": 0, "logits": [0.0, np.log(3.0)]}]
    e2 = [{"id": 7, "label": 1, "logits": [0.0, 1.0]}, {"id": 3, "label": 0, "logits": [1.0, 1.0]}]
    run = open_run(write_log(tmp_path / "r", [e0, e1, e2], "parquet"))
    assert disk.cached_epochs(run, tmp_path / "cache") is None  # nothing scored yet
    table = disk.cached_stats(run, tmp_path / "cache")
    matrix = disk.cached_epochs(run, tmp_path / "cache")
    assert isinstance(matrix.p_gold, np.memmap) and matrix.p_gold.shape == (3, 2)
    index = Trajectories.from_matrix(matrix, table["id"].to_numpy(), table["label"].to_numpy())
    for example in (3, 7):
        got, want = index.of(example).to_pydict(), trajectory(run, example).to_pydict()
        assert got["p_gold"] == pytest.approx(want["p_gold"], abs=1e-7)
        assert [got[k] for k in ("epoch", "correct", "pred")] == [want[k] for k in ("epoch", "correct", "pred")]
    assert index.of(7).to_pydict()["epoch"] == [0, 2]
    assert disk.cached_epochs(run, None) is None


def test_run_ids_pool_folders_of_several_runs_and_refuse_others(tmp_path):
    rows = [{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 1, "logits": [0.0, 1.0]}]
    for name in ("a/seed-0", "a/seed-1", "b/only", "c"):
        write_log(tmp_path / name, [rows], "jsonl")
    assert run_ids(tmp_path) == ["a/seed-0", "a/seed-1", "a/*", "b/only", "c"]
    assert run_paths(tmp_path, "a/*") == [tmp_path / "a/seed-0", tmp_path / "a/seed-1"]
    for bad in ("../etc", "/etc/passwd", "a", "b/*"):
        with pytest.raises(LogError, match="no run"):
            run_paths(tmp_path, bad)
    pooled = load_run(tmp_path, "a/*")
    assert pooled.table["n_runs"].to_pylist() == [2, 2] and len(pooled.runs) == 2


def test_signature_changes_when_a_file_changes(tmp_path):
    rows = [{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 1, "logits": [0.0, 1.0]}]
    run = write_log(tmp_path / "r", [rows], "jsonl")
    before = signature([run])
    time.sleep(0.01)
    with open(run / "dynamics" / "epoch_0.jsonl", "a") as fh:
        fh.write(json.dumps({"id": 3, "label": 0, "logits": [2.0, 0.0]}) + "\n")
    os.utime(run / "dynamics" / "epoch_0.jsonl")
    assert signature([run]) != before


def test_a_log_rewritten_with_its_old_size_and_mtime_is_not_served_from_the_cache(tmp_path):
    """rsync -a / cp -p / tar x of a same-size log keep size and mtime: the cached scores must still be dropped."""
    from cartography_core.dashboard import cache as catalog

    rows = [{"id": i, "label": 0, "logits": [float(i), 0.0]} for i in range(4)]
    run_dir = write_log(tmp_path / "r", [rows, rows], "parquet")
    epoch1 = run_dir / "dynamics" / "epoch_001.parquet"

    def write_plain(rows, path):  # uncompressed, no dictionary: the size depends on the row count only
        table = pa.table({k: [r[k] for r in rows] for k in ("id", "label", "logits")})
        pq.write_table(table, path, compression="NONE", use_dictionary=False)

    write_plain(rows, epoch1)
    cache = tmp_path / "cache"
    before = catalog.cached_stats(open_run(run_dir), cache)
    catalog.flush()
    assert signature([run_dir]) == signature([run_dir])  # reading changes nothing
    old = os.stat(epoch1)
    swapped = [{**r, "logits": rows[3 - r["id"]]["logits"]} for r in rows]  # same values, other examples
    write_plain(swapped, tmp_path / "new.parquet")
    os.replace(tmp_path / "new.parquet", epoch1)  # as rsync does: a new file moved into place
    os.utime(epoch1, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(epoch1).st_size == old.st_size and os.stat(epoch1).st_mtime_ns == old.st_mtime_ns
    after = catalog.cached_stats(open_run(run_dir), cache)
    assert after.equals(compute_stats(run_dir)) and not after.equals(before)
    # id 0: g = softmax([0, 0])[0] = 0.5 in epoch 0, softmax([3, 0])[0] in epoch 1
    want = (0.5 + 1 / (1 + np.exp(-3.0))) / 2
    assert after["confidence"][0].as_py() == pytest.approx(want, abs=1e-7)


def test_url_notices_name_each_bad_value():
    spec = state.params(["ds/seed-0", "ds/seed-1"], ["neg", "pos"])
    query = {
        "run": ["../../etc"],
        "cls": ["pos"],
        "amb_var": ["0.9"],
        "q": ["x"],
        "var_range": ["0.3", "0.1"],
        "other": ["kept"],
    }
    notes = state.url_notices(query, spec)
    assert len(notes) == 5
    assert notes[4] == "The link's other='kept' is not a setting of this page; it is ignored."
    assert notes[0].startswith(
        "The link's run='../../etc' is not one of the choices here; showing the default (ds/seed-0)"
    )
    assert "amb_var='0.9' is outside 0.0 to 0.5" in notes[1]
    assert "q='x' is not a number" in notes[2]
    assert "var_range='0.3, 0.1' has its low value above its high value" in notes[3]


def test_share_query_leaves_out_defaults_but_always_names_the_run_and_repeats_ranges():
    spec = state.params(["ds/seed-0", "ds/seed-1"], ["neg", "pos"])
    values = {k: p.default for k, p in spec.items()}
    # the default run is only the first under the root today: a link must name it, or an added dataset that
    # sorts first ("aa/seed-0") would silently take its place
    assert state.share_query(values, spec) == [("run", "ds/seed-0")]
    values.update(run="ds/seed-1", amb_var=0.25, var_range=(0.1, 0.35), search="great film")
    assert state.share_query(values, spec) == [
        ("run", "ds/seed-1"),
        ("amb_var", "0.25"),
        ("var_range", "0.1"),
        ("var_range", "0.35"),
        ("search", "great film"),
    ]


def test_file_slug():
    assert (
        state.file_slug("rotten_tomatoes/*", "", "hard-to-learn", "bad movie")
        == "rotten_tomatoes_hard-to-learn_bad-movie"
    )


@pytest.mark.parametrize("fmt", [".csv", ".jsonl", ".parquet"])
def test_export_bytes_round_trip(fmt):
    stats = compute_stats("tests/fixtures/allenai_reference_small").slice(0, 25)
    data = table_bytes(stats, fmt)
    if fmt == ".csv":
        back = pd.read_csv(io.BytesIO(data))
    elif fmt == ".jsonl":
        back = pd.read_json(io.BytesIO(data), lines=True)
    else:
        back = pq.read_table(io.BytesIO(data)).to_pandas()
    assert back["id"].tolist() == stats["id"].to_pylist()
    np.testing.assert_allclose(back["confidence"], stats["confidence"].to_numpy(), rtol=1e-12)


def test_md_escape_neutralises_markdown_from_users():
    planted = "![x](http://evil.example/x.png) **bold** `code` <b> :red[R] see https://10/x &#x202e; a\u202eb"
    escaped = state.md_escape(planted)
    assert escaped == (
        r"\!\[x\]\(http\://evil\.example/x\.png\) \*\*bold\*\* \`code\` \<b\> \:red\[R\] see https\://10/x "
        "\\&\\#x202e; a\ufffdb"
    )


def test_cached_stats_are_reused_until_a_log_file_changes(tmp_path, monkeypatch):
    from cartography_core import io
    from cartography_core.dashboard import cache as catalog

    rows = [{"id": i, "label": i % 2, "logits": [float(i), 1.0]} for i in range(6)]
    run_dir = write_log(tmp_path / "runs" / "r", [rows, rows], "parquet")
    cache = tmp_path / "cache"
    first = catalog.cached_stats(open_run(run_dir), cache)
    catalog.flush()  # the entry is written by a background thread
    assert first.equals(compute_stats(run_dir)) and len(list(cache.glob("stats-*.arrow"))) == 1

    def no_recompute(run):
        raise AssertionError("recomputed")

    monkeypatch.setattr(catalog, "compute_stats_and_epochs", no_recompute)
    again = catalog.cached_stats(open_run(run_dir), cache)
    assert again.equals(first) and again.schema.metadata == first.schema.metadata
    monkeypatch.undo()
    time.sleep(0.01)
    old_files = sorted(p.name for p in cache.iterdir())
    assert len(old_files) == 4  # the table and the three per-epoch arrays
    prefix = old_files[0][: old_files[0].rindex("-") + 1]  # stats-<run>-: every entry of this run
    for age, name in ((7200, "killed"), (60, "in-flight")):  # hidden temporaries of writes into this run's entries
        tmp = cache / f".{prefix}{name}.arrow.tmp-1.arrow"
        tmp.write_bytes(b"partial")
        os.utime(tmp, (time.time() - age, time.time() - age))
    other_run = cache / "stats-0123456789abcdef-0123456789abcdef.arrow"  # another run's entry
    other_run.write_bytes(b"kept")
    legacy = cache / f"stats-{'ab' * 16}.parquet"  # named as before entries were stats-<run>-<version>
    legacy.write_bytes(b"never read again")
    write_log(run_dir, [rows, rows[:3]], "parquet")  # the log changes: a new key, computed afresh
    assert catalog.cached_stats(open_run(run_dir), cache)["n_epochs"].to_pylist() == [2, 2, 2, 1, 1, 1]
    catalog.flush()
    # the run's older entry and the temporary of a write killed an hour ago are gone; the rest stays
    left = sorted(p.name for p in cache.iterdir())
    assert not set(old_files) & set(left) and other_run.name in left and legacy.name not in left
    assert f".{prefix}in-flight.arrow.tmp-1.arrow" in left and f".{prefix}killed.arrow.tmp-1.arrow" not in left
    assert len([n for n in left if n.startswith(prefix)]) == 4
    assert not any(p.name.startswith("stats") for p in run_dir.rglob("*"))  # nothing written into the run
    monkeypatch.setenv("CARTOGRAPHY_CACHE", "off")
    assert io.cache_dir() is None


def test_a_read_while_the_entry_is_being_written_waits_for_it(tmp_path, monkeypatch):
    """The cache entry is written by a background thread; asking for the same run meanwhile (another session,
    or the trajectories after the map) waits for that write and reads it, rather than scoring again."""
    import threading

    from cartography_core.dashboard import cache as disk

    rows = [{"id": i, "label": i % 2, "logits": [float(i), 1.0]} for i in range(6)]
    run_dir = write_log(tmp_path / "r", [rows, rows], "parquet")
    release = threading.Event()
    write_ipc = disk._write_ipc

    def slow_write(table, path):
        assert release.wait(10)
        write_ipc(table, path)

    monkeypatch.setattr(disk, "_write_ipc", slow_write)
    first = disk.cached_stats(open_run(run_dir), tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("stats-*.arrow"))  # still being written

    def no_recompute(run):
        raise AssertionError("recomputed")

    monkeypatch.setattr(disk, "compute_stats_and_epochs", no_recompute)
    threading.Timer(0.2, release.set).start()
    again = disk.cached_stats(open_run(run_dir), tmp_path / "cache")
    assert again.equals(first)
    matrix = disk.cached_epochs(open_run(run_dir), tmp_path / "cache")
    assert matrix is not None and matrix.p_gold.shape == (2, 6)


def test_an_invites_scope_matches_the_view_it_names_and_no_other():
    spec = state.params(["trec/seed-0", "trec/seed-1"], ["ABBR", "NUM"])
    defaults = {k: p.default for k, p in spec.items()}
    view = {**defaults, "run": "trec/seed-1", "subset": "ambiguous", "amb_var": 0.25, "tab": "Runs", "page": "review"}
    scope = "amb_var=0.250&run=trec%2Fseed-1&subset=ambiguous"  # numbers as numbers: 0.250 is 0.25
    assert state.scope_matches(scope, view, spec)
    assert state.scope_matches(scope, {**view, "tab": "Per class", "color": "verdict"}, spec)  # drawing only
    assert not state.scope_matches(scope, {**view, "cls": "NUM"}, spec)  # a parameter the scope left at default
    assert not state.scope_matches(scope, {**view, "amb_var": 0.3}, spec)
    assert not state.scope_matches(scope, {**view, "run": "trec/seed-0"}, spec)
    assert not state.scope_matches(scope + "&nonsense=1", view, spec)
    assert state.scope_matches("", defaults, spec) and not state.scope_matches("", view, spec)


def test_corrected_dataset_download_carries_no_server_path(tmp_path):
    from cartography_core.dashboard.catalog import load_run
    from cartography_core.io import table_bytes
    from cartography_core.reviews import corrected_dataset, resolve
    from cartography_core.reviews.store import empty_verdicts

    rows = [{"id": i, "label": i % 2, "logits": [float(i), 1.0]} for i in range(6)]
    run_dir = write_log(tmp_path / "logs" / "ds" / "r", [rows, rows], "parquet")
    pa.csv.write_csv(pa.table({"id": list(range(6)), "text": list("abcdef")}), run_dir / "examples.csv")
    loaded = load_run(tmp_path / "logs", "ds/r")
    out = corrected_dataset(
        loaded.examples, resolve(empty_verdicts()), loaded.label_names, logged=loaded.table.select(["id", "label"])
    )
    assert out["label_reviewed"].to_pylist() == ["0", "1", "0", "1", "0", "1"]
    for fmt in (".csv", ".jsonl", ".parquet"):
        data = table_bytes(out, fmt)
        assert str(tmp_path).encode() not in data and b"examples.csv" not in data
