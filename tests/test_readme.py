"""Every code block of README.md, run as a new user would from a clone, and what the dashboard then shows
for the runs the README records (plain loop, Lightning, Hugging Face Trainer with a padding collator,
torchrun with 2 processes on an odd number of examples) checked row by row against the dataset."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartography_core import compute_stats, open_run
from cartography_core.dashboard.catalog import load_run, run_ids
from cartography_core.label_issues import FLAT_MAP_NOTE
from tests.e2e.server import start_streamlit
from tests.logs import assert_same_table
from tests.test_app import run_app, table

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
DATASET = pd.read_parquet(REPO / "sample_logs" / "trec" / "examples.parquet").set_index("id")
HF_ROWS = 300  # the Hugging Face block trains a tiny BERT on the first rows only, to keep CI short

# what the README's Hugging Face block calls "yours": a tokenizer and a model, made here without a download
HF_PRELUDE = f"""
from tests.tiny_models import tiny_bert, tiny_tokenizer
df = df.head({HF_ROWS})
tokenizer = tiny_tokenizer(df["text"])
model = tiny_bert(tokenizer.vocab_size, len(names))
"""


def blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCKS if kind == lang]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A user's folder: the clone's sample logs and scripts beside it, nothing installed but requirements."""
    work = tmp_path_factory.mktemp("user")
    for name in ("sample_logs", "examples", "app"):
        (work / name).symlink_to(REPO / name)
    return work


@pytest.fixture(scope="module")
def env(workdir):
    return {**os.environ, "PYTHONPATH": str(REPO), "CARTOGRAPHY_CACHE": "off"}


def test_the_readme_has_the_blocks_this_module_runs():
    assert [kind for kind, _ in BLOCKS] == [
        "bash", "bash", "python", "python", "python", "bash", "bash", "bash", "bash", "python", "bash", "bash",
    ]  # fmt: skip


def test_install_block_pins_are_what_is_installed_and_the_app_serves():
    install = blocks("bash")[0].splitlines()
    assert install[0] == "pip install -r requirements.txt"
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            name = name.split("[")[0]  # moto[server]: the package, with the extra's dependencies
            assert importlib.metadata.version(name).split("+")[0] == version, name  # 2.13.0+cpu is 2.13.0
    assert install[1].startswith("streamlit run app/main.py")
    proc, url = start_streamlit()  # the same command on a free port; healthy means the page is served
    proc.terminate()
    proc.wait(10)
    assert url.startswith("http://127.0.0.1:")


def run_bash_block(code: str, workdir: Path, env: dict) -> None:
    for line in code.splitlines():
        if line.strip() and not line.startswith("#"):
            done = subprocess.run(line, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"


def test_command_line_block(workdir, env):
    run_bash_block(blocks("bash")[1], workdir, env)
    hard = pd.read_csv(workdir / "hard.csv").set_index("id")
    assert len(hard) > 0 and (hard["text"] == DATASET.loc[hard.index, "text"]).all()
    assert (hard["region"] == "hard-to-learn").all() and (hard["confidence"] < 0.5).all()
    lowest = pd.read_json(workdir / "lowest_conf.jsonl", lines=True)
    stats = pd.read_parquet(workdir / "stats.parquet")
    assert len(lowest) == len(stats) // 10
    assert set(lowest["id"]) == set(stats.sort_values(["confidence", "id"]).head(len(stats) // 10)["id"])


@pytest.fixture(scope="module")
def recorded(workdir, env):
    """Run the README's Python blocks in order, in one namespace, as a notebook would; then its torchrun
    and train commands."""
    namespace: dict = {}
    python = blocks("python")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        exec(compile(python[0], "README plain loop", "exec"), namespace)
        exec(compile(python[1], "README Lightning", "exec"), namespace)
        exec(compile(HF_PRELUDE + python[2], "README Hugging Face", "exec"), namespace)
    finally:
        os.chdir(cwd)
    run_bash_block(blocks("bash")[2], workdir, env)
    return workdir / "runs"


EXPECTED_ROWS = {"trec-loop": None, "trec-lightning": None, "trec-hf": HF_ROWS, "trec-ddp": 2001}


@pytest.mark.parametrize("run_id", list(EXPECTED_ROWS))
def test_what_the_app_loads_for_each_recorded_run_is_the_datasets_rows(recorded, run_id):
    train = DATASET[DATASET["split"] == "train"]
    n = EXPECTED_ROWS[run_id] or len(train)
    assert run_id in run_ids(recorded)
    run = load_run(recorded, run_id)
    table = run.table.to_pandas().set_index("id")
    assert len(table) == n and set(table.index) == set(train.index[:n])  # every example once
    assert run.n_epochs >= 3 and run.text_column == "text"
    rows = DATASET.loc[table.index]
    assert (table["text"] == rows["text"]).all()
    assert (table["label"] == rows["label"]).all() and (table["label_name"] == rows["label_name"]).all()
    assert run.label_names == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_the_dashboard_shows_each_examples_own_text_and_gold_label(monkeypatch, recorded):
    """The page itself, on the torchrun run: every row of the examples table against the dataset."""
    at = run_app(monkeypatch, recorded, run="trec-ddp", subset="all")
    view = table(at)
    assert len(view) == 500
    ids = view["id"].astype(int)
    assert (view["text"].to_numpy() == DATASET.loc[ids, "text"].to_numpy()).all()
    assert (view["gold"].to_numpy() == DATASET.loc[ids, "label_name"].to_numpy()).all()


def test_train_block_and_library_block(workdir, env):
    run_bash_block(blocks("bash")[3], workdir, env)
    assert sorted(p.name for p in (workdir / "runs" / "sms").iterdir()) == ["examples.parquet", "seed-0", "seed-1"]
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        exec(compile(blocks("python")[3], "README library", "exec"), namespace)
    finally:
        os.chdir(cwd)
    table = namespace["table"].to_pandas()
    assert len(table) == namespace["stats"].num_rows // 10
    assert (table["text"].to_numpy() == DATASET.loc[table["id"], "text"].to_numpy()).all()
    assert np.all(np.diff(table["confidence"]) >= 0)  # hardest (lowest confidence) first


def test_label_errors_block(workdir, env, monkeypatch):
    run_bash_block(blocks("bash")[4], workdir, env)
    run = open_run(workdir / "runs" / "trec-errors")
    hyper = run.meta["hyperparameters"]
    assert (hyper["model"], hyper["patience"], hyper["epochs"]) == ("linear", 0, 30)
    assert hyper["weight_decay"] == 1 / run.meta["n_train"]  # "auto", resolved
    stats = compute_stats(run).to_pandas().set_index("id")
    suspects = pd.read_csv(workdir / "trec-suspects.csv")
    flagged = stats.index[stats["label_issue"]]
    assert sorted(suspects["id"]) == sorted(flagged) and len(flagged) > 100  # every flagged example, once
    assert np.all(np.diff(stats.loc[suspects["id"], "aum"]) >= 0)  # lowest aum first
    assert (suspects["text"].to_numpy() == DATASET.loc[suspects["id"], "text"].to_numpy()).all()
    assert (suspects["label"].to_numpy() == DATASET.loc[suspects["id"], "label"].to_numpy()).all()
    # the dashboard's "likely mislabeled" subset of that run: the same examples, with their own texts
    at = run_app(monkeypatch, workdir / "runs", run="trec-errors", subset="likely mislabeled")
    assert not at.warning, [w.value for w in at.warning]
    assert any("trained with --preset label-errors" in c.value for c in at.caption)  # what its count means
    assert any(FLAT_MAP_NOTE in c.value for c in at.caption)  # and why its map is flat
    view = table(at)
    assert sorted(view["id"].astype(int)) == sorted(flagged)
    assert (view["text"].to_numpy() == DATASET.loc[view["id"].astype(int), "text"].to_numpy()).all()


def test_selftest_block(workdir, env):
    run_bash_block(blocks("bash")[5], workdir, env)
    report = json.loads((workdir / "selftest-sms" / "selftest.json").read_text())
    seed = report["seeds"][0]
    # SMS: 5,574 rows, 10% held out (stratified), 10% of all rows flipped: about 502 of the 5,016 scored
    assert seed["rows"] == 5016 and 450 < seed["flipped"] < 555
    assert seed["scores"]["aum"]["auroc"] > 0.98  # bench/results/detection.md: 0.993-0.996
    assert (workdir / "selftest-sms" / "selftest.png").stat().st_size > 10_000


def label_studio_export(workdir: Path) -> dict:
    """What a user gets from Label Studio after two annotators worked on the README's exported tasks: three
    hard examples relabeled by both, one removed by both, one where they disagree. Returns {id: expected}."""
    import json

    ids = DATASET.index[DATASET["split"] == "train"][:5].tolist()
    names = sorted(DATASET["label_name"].unique())
    other = {i: next(n for n in names if n != DATASET.loc[i, "label_name"]) for i in ids}

    def choice(name, value):
        return {"from_name": name, "to_name": "text", "type": "choices", "value": {"choices": [value]}}

    tasks = []
    for t, i in enumerate(ids):
        gold = DATASET.loc[i, "label_name"]
        if t < 3:
            results = [[choice("label", other[i])], [choice("label", other[i])]]
        elif t == 3:
            results = [[choice("flag", "not a valid example")], [choice("flag", "not a valid example")]]
        else:
            results = [[choice("label", gold)], [choice("label", other[i])]]
        annotations = [{"id": 100 * t + a, "completed_by": a + 1, "result": r} for a, r in enumerate(results)]
        tasks.append(
            {"id": t, "data": {"example_id": int(i), "text": DATASET.loc[i, "text"]}, "annotations": annotations}
        )
    (workdir / "label-studio-export.json").write_text(json.dumps(tasks))
    return {i: ("relabeled", other[i]) for i in ids[:3]} | {ids[3]: ("removed", None), ids[4]: ("unresolved", None)}


def test_review_loop_block(workdir, env):
    """The README's review loop, run whole as one shell script (its export carries through the lines)."""
    expected = label_studio_export(workdir)
    done = subprocess.run(
        ["bash", "-e", "-c", blocks("bash")[6]], cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    link = next(line for line in done.stdout.splitlines() if line.startswith("http://localhost:8501/?"))
    assert "page=review" in link and "reviewer=ann" in link and "token=" in link
    assert "label-studio-export.json: 10; new: 10, stored already: 0" in done.stdout
    assert "cohen_kappa" in done.stdout
    corrected = pd.read_csv(workdir / "trec-reviewed.csv").set_index("id")
    for i, (verdict, label) in expected.items():
        if verdict == "removed":
            assert i not in corrected.index
            continue
        assert corrected.loc[i, "verdict"] == verdict
        assert corrected.loc[i, "label_reviewed"] == (label or DATASET.loc[i, "label_name"])
    assert len(corrected) == len(DATASET) - 1
    unreviewed = corrected[corrected["verdict"] == "unreviewed"]
    assert (unreviewed["label_reviewed"] == DATASET.loc[unreviewed.index, "label_name"]).all()
    retrained = load_run(workdir / "runs", "trec-reviewed")
    labels = np.asarray(retrained.label_names, dtype=object)[retrained.table["label"].to_numpy()]
    ids = retrained.table["id"].to_numpy()
    assert (labels == corrected.loc[ids, "label_reviewed"].to_numpy()).all()  # trained on the corrected labels
    assert "region,before,after" in done.stdout and "epoch,held_out_accuracy_before" in done.stdout


def test_cluster_block_gives_the_in_process_tables(workdir, env):
    from cartography_core.cluster import read_stats
    from cartography_core.reliability import pool_runs
    from cartography_core.stats import compute_stats

    run_bash_block(blocks("bash")[7], workdir, env)
    sample = REPO / "sample_logs" / "trec"
    one, want = read_stats(workdir / "trec-stats"), compute_stats(sample / "seed-0")
    assert one.column_names == want.column_names and all(one[c].equals(want[c]) for c in want.column_names)
    names = sorted(p.name for p in sample.iterdir() if p.is_dir())
    pooled = read_stats(workdir / "trec-pooled")
    assert_same_table(pooled, pool_runs([compute_stats(sample / n) for n in names], names))


@pytest.mark.parametrize("run_id", list(EXPECTED_ROWS))
def test_each_recorded_run_scored_on_a_cluster_is_the_in_process_table(recorded, run_id, client, tmp_path):
    """The README's own recordings (a Hugging Face padding collator; torchrun with a DistributedSampler that
    pads an odd count) through ``stats --engine dask``: the table the in-process engine gives."""
    from cartography_core.cluster import compute_stats_dask, read_stats
    from cartography_core.stats import compute_stats

    compute_stats_dask(recorded / run_id, tmp_path / "out", client=client, partition_rows=500)
    got, want = read_stats(tmp_path / "out"), compute_stats(recorded / run_id)
    assert_same_table(got, want)
    assert (
        json.loads((tmp_path / "out" / "cartography.json").read_text())["padding_rows"]
        == (json.loads(want.schema.metadata[b"cartography"])["padding_rows"])
    )


def test_every_import_the_package_shows_in_its_docstrings_resolves():
    """Usage examples in module docstrings are what a reader copies: each ``from cartography_core... import
    name`` line written there (and in docs/) must import."""
    sources = [*(REPO / "cartography_core").rglob("*.py"), *(REPO / "docs").glob("*.md")]
    shown = {
        (mod, name.strip())
        for path in sources
        for mod, names in re.findall(r"^\s*from (cartography_core[\w.]*) import ([\w, ]+)$", path.read_text(), re.M)
        for name in names.split(",")
    }
    assert len(shown) >= 4  # the recorder and its three framework layers show theirs

    def imports(mod: str, name: str) -> bool:
        try:
            return hasattr(importlib.import_module(mod), name)
        except ModuleNotFoundError:
            return False

    wrong = [f"from {mod} import {name}" for mod, name in sorted(shown) if not imports(mod, name)]
    assert not wrong, wrong
