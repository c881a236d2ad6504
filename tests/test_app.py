"""The dashboard's wiring, run with Streamlit's AppTest on the sample logs and on small hand-made roots."""

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from cartography_core import RegionThresholds, compute_stats, region_codes, split_half_reliability
from tests.logs import write_log

APP = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def run_app(monkeypatch, root=None, **query) -> AppTest:
    monkeypatch.setenv("CARTOGRAPHY_CACHE", "off")
    if root is not None:
        monkeypatch.setenv("CARTOGRAPHY_LOGS", str(root))
    else:
        monkeypatch.delenv("CARTOGRAPHY_LOGS", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """What a Markdown element displays: the app escapes user strings with backslashes."""
    return re.sub(r"\\(.)", r"\1", markdown)


def table(at):
    """The examples table (its key names the rows it lists: ``table-<digest>``)."""
    (frame,) = [d.value for d in at.dataframe if getattr(d, "key", None) and d.key.startswith("table-")]
    return frame


def chart_rows(at, index=0):
    proto = at.get("vega_lite_chart")[index].proto
    return {d.name: pa.ipc.open_stream(d.data.data).read_all() for d in proto.datasets}, json.loads(proto.spec)


def test_default_view_is_the_first_sample_run_with_its_region_counts(monkeypatch):
    at = run_app(monkeypatch)
    assert shown(at.title[0].value) == "Data map: rotten_tomatoes/seed-0"
    stats = compute_stats(SAMPLES / "rotten_tomatoes" / "seed-0")
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), RegionThresholds())
    counts = at.dataframe[0].value.set_index("class")
    for c, name in enumerate(["fresh", "rotten"]):
        want = np.bincount(codes[stats["label"].to_numpy() == c], minlength=4)
        assert counts.loc[name, ["easy-to-learn", "ambiguous", "hard-to-learn", "other"]].tolist() == want.tolist()
    rows = table(at)
    assert len(rows) == min(500, int((codes == 2).sum())) and (rows["region"] == "hard-to-learn").all()
    assert rows["confidence"].is_monotonic_increasing  # hardest (lowest confidence) first


def test_the_map_receives_every_point_of_a_small_run(monkeypatch):
    at = run_app(monkeypatch)
    datasets, spec = chart_rows(at)
    sizes = sorted(t.num_rows for t in datasets.values())
    assert sizes[-1] == 11_527  # every example as a point (under the 20,000 cap), no density layer
    assert spec["params"][0]["name"] == "brush"


def test_query_params_seed_the_view(monkeypatch):
    at = run_app(monkeypatch, run="trec/seed-1", cls="HUM", subset="ambiguous", sort="variability", tab="Data map")
    assert shown(at.title[0].value) == "Data map: trec/seed-1"
    assert at.selectbox(key="cls").value == "HUM" and at.selectbox(key="sort").value == "variability"
    rows = table(at)
    assert (rows["gold"] == "HUM").all() and (rows["region"] == "ambiguous").all()
    assert rows["variability"].is_monotonic_decreasing  # hardest first: most variable first


def test_filters_reach_the_table(monkeypatch):
    at = run_app(monkeypatch)
    at.selectbox(key="subset").set_value("all").run()
    at.text_input(key="search").set_value("terrible").run()
    rows = table(at)
    assert len(rows) > 5 and rows["text"].str.lower().str.contains("terrible").all()
    at.slider(key="amb_var").set_value(0.1).run()
    at.selectbox(key="subset").set_value("ambiguous").run()
    stats = compute_stats(SAMPLES / "rotten_tomatoes" / "seed-0")
    assert (stats.to_pandas().set_index("id").loc[table(at)["id"].astype(int), "variability"] >= 0.1).all()


def test_brush_ranges_filter_the_table(monkeypatch):
    at = run_app(monkeypatch, subset="brush", var_range=["0.1", "0.15"], conf_range=["0.2", "0.4"])
    rows = table(at)
    assert len(rows) > 0
    assert rows["variability"].between(0.1, 0.15).all() and rows["confidence"].between(0.2, 0.4).all()


def test_pooled_runs_and_reliability(monkeypatch):
    at = run_app(monkeypatch, run="sms_spam/*", tab="Runs")
    assert shown(at.title[0].value) == "Data map: sms_spam: mean over 3 runs"
    rel = at.dataframe[-1].value.set_index("score")
    runs = [compute_stats(SAMPLES / "sms_spam" / f"seed-{s}") for s in range(3)]
    for score in ("confidence", "aum"):
        want = split_half_reliability(runs, score)
        assert rel.loc[score, "split-half rho"] == pytest.approx(want.split_half)
        assert rel.loc[score, "runs for 0.9"] == want.runs_needed(0.9)


def test_an_invalid_link_value_opens_at_its_default_with_a_notice(monkeypatch):
    at = run_app(monkeypatch, run="../../etc/passwd", amb_var="7")
    assert shown(at.title[0].value) == "Data map: rotten_tomatoes/seed-0"
    notices = [shown(w.value) for w in at.warning]
    assert any("run='../../etc/passwd' is not one of the choices here" in n for n in notices)
    assert any("amb_var='7' is outside 0.0 to 0.5" in n for n in notices)


def test_empty_root_says_what_to_do(monkeypatch, tmp_path):
    at = run_app(monkeypatch, tmp_path)
    assert "No training-dynamics logs under" in at.info[0].value
    # a mistyped --logs: the page says the folder does not exist, not that it holds no logs
    at = run_app(monkeypatch, tmp_path / "nope")
    assert "The log folder nope does not exist" in at.info[0].value and "--logs DIR" in at.info[0].value
    (tmp_path / "file").write_text("x")
    assert "file is a file, not a folder of runs" in run_app(monkeypatch, tmp_path / "file").info[0].value


def test_a_malformed_log_shows_the_core_error(monkeypatch, tmp_path):
    write_log(
        tmp_path / "broken",
        [[{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 1, "label": 0, "logits": [1.0, 0.0]}]],
        "jsonl",
    )
    at = run_app(monkeypatch, tmp_path)
    assert "id 1 appears 2 times in epoch 0" in at.error[0].value


def test_a_run_without_examples_shows_ids(monkeypatch, tmp_path):
    rows = [{"id": i, "label": i % 2, "logits": [float(i % 3), 1.0]} for i in range(30)]
    write_log(tmp_path / "plain", [rows, rows], "parquet")
    at = run_app(monkeypatch, tmp_path, subset="all")
    assert "no examples file: ids only" in shown(at.caption[0].value)
    assert "text" not in table(at).columns and len(table(at)) == 30


def test_markdown_in_a_link_value_is_shown_as_text(monkeypatch):
    at = run_app(monkeypatch, search="x", cls="![p](http://evil.example/p.png)")
    notice = [w.value for w in at.warning if "cls=" in w.value][0]
    assert r"\!\[p\]\(http\://evil\.example/p\.png\)" in notice


def test_top_q_rule_counts_the_papers_subsets(monkeypatch):
    at = run_app(monkeypatch, run="trec/seed-0", rule="top q%", q="10")
    counts = at.dataframe[0].value.set_index("class")
    df = compute_stats(SAMPLES / "trec" / "seed-0").to_pandas()
    k = len(df) // 10
    amb = set(df.sort_values(["variability", "id"], ascending=[False, True]).id[:k])  # pandas, not the core
    hard = set(df.sort_values(["confidence", "id"]).id[:k])
    assert counts.loc["all", "total"] == len(df)
    assert counts.loc["all", ["ambiguous", "hard-to-learn", "easy-to-learn"]].tolist() == [k, k, k]
    assert amb & hard  # the subsets overlap on this run: both counts hold the shared examples
    assert counts.loc["all", "other"] == len(df) - len(amb | hard | set(df.sort_values("confidence").id[-k:]))
    # the hard-to-learn table lists exactly the rows `select --metric confidence --fraction 0.1` writes
    at.selectbox(key="subset").set_value("hard-to-learn").run()
    assert set(table(at)["id"].astype(int)) == hard
    assert "select --metric confidence --fraction 0.1" in at.caption[1].value.replace("\\", "")


def test_a_probability_log_with_string_ids_offers_no_aum(monkeypatch, tmp_path):
    rows = [{"id": f"q-{i}", "label": i % 2, "probs": [0.2, 0.8] if i % 3 else [0.9, 0.1]} for i in range(12)]
    write_log(tmp_path / "probs", [rows, rows], "jsonl")
    at = run_app(monkeypatch, tmp_path, subset="all", sort="aum")
    assert "aum" not in at.selectbox(key="sort").options
    assert any("sort='aum' is not one of the choices here" in shown(w.value) for w in at.warning)
    assert sorted(table(at)["id"]) == sorted(f"q-{i}" for i in range(12))


def test_the_log_root_is_walked_once_per_rerun(monkeypatch):
    from cartography_core.dashboard import catalog

    calls = []
    real = catalog.find_runs
    monkeypatch.setattr(catalog, "find_runs", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = run_app(monkeypatch, run="trec/*")
    assert len(calls) == 1  # first load: list, sign and load the pooled runs from one listing
    at.slider(key="amb_var").set_value(0.3).run()
    assert len(calls) == 2 and not at.exception


def test_an_unknown_link_parameter_is_named_and_ignored(monkeypatch):
    at = run_app(monkeypatch, **{"class": "HUM"})
    assert any("The link's class='HUM' is not a setting of this page" in shown(w.value) for w in at.warning)


def test_likely_mislabeled_subset_lists_the_examples_whose_gold_class_lost_on_average(monkeypatch, tmp_path):
    # aum = mean over epochs of z[y] - max other z, worked by hand:
    logits = {0: ([1, 0], [1, 0]), 1: ([0, 2], [0, 1]), 2: ([0, 1], [1, 0]), 3: ([3, 0], [0, 1]), 4: ([0, 5], [0, 5])}
    labels = {0: 0, 1: 0, 2: 1, 3: 1, 4: 1}  # aum: 1, -1.5, 0 (a tie is not a loss), -1, 5
    epochs = [[{"id": i, "label": labels[i], "logits": z[e]} for i, z in logits.items()] for e in range(2)]
    write_log(tmp_path / "run", epochs, "jsonl")
    at = run_app(monkeypatch, tmp_path, subset="likely mislabeled")
    assert sorted(table(at)["id"].astype(int)) == [1, 3]
    issues = [d.value for d in at.dataframe if "label_issues" in d.value.columns][0].set_index("class")
    assert issues["examples"].tolist() == [2, 3, 5] and issues["label_issues"].tolist() == [1, 1, 2]
    assert issues.loc["total", "share"] == pytest.approx(2 / 5)
    assert any("Likely label errors: 2 of 5" in shown(h.value) for h in at.subheader)


def test_a_share_link_keeps_opening_its_run_after_a_dataset_that_sorts_first_is_added(monkeypatch, tmp_path):
    from urllib.parse import parse_qsl, urlsplit

    rows = [{"id": i, "label": i % 2, "logits": [float(i), 1.0][:: 1 - 2 * (i % 2)]} for i in range(6)]
    write_log(tmp_path / "rt" / "seed-0", [rows, rows], "jsonl")
    at = run_app(monkeypatch, tmp_path, subset="likely mislabeled")
    assert shown(at.title[0].value) == "Data map: rt/seed-0"  # the default: the only run
    view_link, review_link = (c.value for c in at.code[:2])
    write_log(tmp_path / "aa" / "seed-0", [rows, rows], "jsonl")  # now the first run, the new default
    for link, heading in [(view_link, "Data map: rt/seed-0"), (review_link, "rt/seed-0")]:
        query = dict(parse_qsl(urlsplit(link).query))
        assert query["run"] == "rt/seed-0"
        at = run_app(monkeypatch, tmp_path, **query)
        assert heading in shown(at.title[0].value) and not at.warning


def test_a_class_the_model_did_not_learn_is_named_beside_the_label_error_count(monkeypatch, tmp_path):
    rows = [{"id": i, "label": i % 3, "logits": [2.0, 0.0, 0.0] if i % 3 != 1 else [0.0, 2.0, 0.0]} for i in range(9)]
    write_log(tmp_path / "d" / "seed-0", [rows, rows], "parquet")
    at = run_app(monkeypatch, tmp_path)
    notices = [shown(w.value) for w in at.warning]
    assert notices == [
        "More than half of class 2 (3 of 3) flagged: the model did not learn it, so these flags do not count wrong "
        "labels (train longer, add examples of the class, or pool several runs)."
    ]
    # a class name is the user's text: shown as written, never rendered as Markdown (an image link here)
    evil = "![p](http://e.vil/p.png)"
    write_log(tmp_path / "d" / "seed-0", [rows, rows], "parquet", meta={"label_names": ["a", "b", evil]})
    (warning,) = run_app(monkeypatch, tmp_path).warning
    assert f"class {evil} (3 of 3)" in shown(warning.value) and "](http" not in warning.value


@pytest.mark.parametrize("max_runs, reads", [(1, 3), (2, 2)])
def test_max_runs_bounds_the_runs_the_server_holds(monkeypatch, tmp_path, max_runs, reads):
    """Opening runs a, b, then a again: with --max-runs 1 the server dropped a to hold b, and reads it again;
    with 2 it still holds both. Every session shares the same held runs."""
    import streamlit as st

    from cartography_core.dashboard import catalog

    rows = [{"id": i, "label": i % 2, "logits": [0.1 * i, -0.1 * i]} for i in range(6)]
    for name in ("a", "b"):
        write_log(tmp_path / "d" / name, [rows, rows])
    calls = []
    real = catalog.load_run
    monkeypatch.setattr(catalog, "load_run", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    monkeypatch.setenv("CARTOGRAPHY_MAX_RUNS", str(max_runs))
    st.cache_resource.clear()
    try:
        for run in ("d/a", "d/b", "d/a"):
            run_app(monkeypatch, tmp_path, run=run)
    finally:
        st.cache_resource.clear()  # the next tests decorate the loaders with the default again
    assert calls == ["d/a", "d/b", "d/a"][:reads]


def test_sessions_opening_one_link_share_the_work(monkeypatch):
    """Eight annotators open the same link: the scores' rankings, region memberships, map layers and counts are
    computed by the first session only; the others read them from the shared caches."""
    import streamlit as st

    import cartography_core
    from cartography_core import label_issues, select
    from cartography_core.dashboard import datamap

    calls: dict[str, int] = {}

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module, name in [
        (datamap, "sample_points"),
        (datamap, "density"),
        (datamap, "histogram"),
        (cartography_core, "rank_order"),
        (cartography_core, "region_counts"),
        (select, "top_fraction_members"),
        (label_issues, "issue_counts"),
    ]:
        counted(module, name)
    st.cache_resource.clear()
    link = {"run": "trec/seed-0", "rule": "top q%", "q": "10", "subset": "hard-to-learn"}
    for _ in range(8):
        at = run_app(monkeypatch, **link)
    assert table(at)["region"].str.contains("hard-to-learn").all()
    # one map: a point sample; three histograms; one ranking, one top-q% membership, one count of each
    assert calls == {
        "sample_points": 1,
        "histogram": 3,
        "rank_order": 1,
        "top_fraction_members": 1,
        "region_counts": 1,
        "issue_counts": 1,
    }


@pytest.mark.parametrize("bad", ["four", "0", "-2"])
def test_a_bad_max_runs_setting_is_named_not_a_traceback(monkeypatch, bad):
    monkeypatch.setenv("CARTOGRAPHY_MAX_RUNS", bad)
    at = run_app(monkeypatch)
    assert [e.value for e in at.error] == [
        f"--max-runs / CARTOGRAPHY_MAX_RUNS must be a whole number of runs, at least 1; got {bad!r}."
    ]
    assert not at.title  # nothing else is drawn


def test_per_class_panels_follow_the_class_order_not_the_alphabet(monkeypatch, tmp_path):
    names = ["tech", "food", "sports"]
    rows = [{"id": i, "label": i % 3, "logits": [0.0, 0.0, 0.0]} for i in range(9)]
    for r in rows:
        r["logits"][r["label"]] = 1.5
    write_log(tmp_path / "run", [rows, rows], meta={"label_names": names})
    at = run_app(monkeypatch, tmp_path, run="run", tab="Per class")
    data, spec = chart_rows(at, -1)
    assert spec["facet"]["sort"] == names
    (points,) = data.values()
    assert sorted(set(points["gold"].to_pylist())) == sorted(names)


def test_choosing_another_run_drops_the_example_of_the_one_before(monkeypatch):
    """ids are per run: the example shown for trec/seed-0 must not be looked up in (or linked from) another run."""
    example = compute_stats(SAMPLES / "trec" / "seed-0")["id"][0].as_py()
    at = run_app(monkeypatch, run="trec/seed-0", example=str(example))
    assert any(shown(m.value).startswith(f"**Example {example}**:") for m in at.markdown)
    at.selectbox(key="run").set_value("rotten_tomatoes/seed-0").run()
    assert not at.exception
    assert "example" not in at.query_params
    assert not any(shown(m.value).startswith("**Example ") for m in at.markdown)
    assert not any("is not in this run" in shown(w.value) for w in at.warning)
