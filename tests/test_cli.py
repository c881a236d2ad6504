"""The command line, run in-process and as ``python -m cartography_core`` from the repository root."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartography_core.cli import main
from tests.logs import write_log

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "allenai_reference_small"
REF = pd.read_csv(FIXTURE / "allenai_metrics.csv")


def test_stats_writes_one_row_per_example(tmp_path, capsys):
    assert main(["stats", str(FIXTURE), "--out", str(tmp_path / "s.csv")]) == 0
    out = pd.read_csv(tmp_path / "s.csv")
    assert sorted(out["id"]) == sorted(REF["guid"])
    assert "wrote 400 examples" in capsys.readouterr().out


def test_select_hardest_fraction_matches_reference_ranking(tmp_path):
    assert (
        main(["select", str(FIXTURE), "--metric", "confidence", "--fraction", "0.1", "--out", str(tmp_path / "h.csv")])
        == 0
    )
    got = pd.read_csv(tmp_path / "h.csv")
    want = REF.sort_values(["confidence", "guid"]).head(40)["guid"]  # lowest confidence, from allenai's numbers
    assert len(got) == 40
    assert set(got["id"]) == set(want)
    assert got["rank"].tolist() == list(range(1, 41))


def test_select_region_with_examples_file(tmp_path):
    rows = [{"id": i, "label": i % 2, "logits": [0.0, 3.0] if i < 3 else [3.0, 0.0]} for i in range(6)]
    run = write_log(tmp_path / "run", [rows, rows], "jsonl")
    pd.DataFrame({"id": range(6), "text": [f"text {i}" for i in range(6)]}).to_csv(run / "examples.csv", index=False)
    assert main(["select", str(run), "--region", "hard-to-learn", "--out", str(tmp_path / "hard.jsonl")]) == 0
    got = pd.read_json(tmp_path / "hard.jsonl", lines=True)
    # gold 0 predicted 1 (ids 0, 2) and gold 1 predicted 0 (ids 3, 5): confidence ~0.05, variability 0
    assert got["id"].tolist() == [0, 2, 3, 5]
    assert got["text"].tolist() == ["text 0", "text 2", "text 3", "text 5"]
    assert (got["region"] == "hard-to-learn").all()


def test_random_baseline_has_the_same_size(tmp_path):
    args = ["select", str(FIXTURE), "--metric", "variability", "--fraction", "0.25", "--random-seed", "1"]
    assert main(args + ["--out", str(tmp_path / "r.csv")]) == 0
    got = pd.read_csv(tmp_path / "r.csv")
    assert len(got) == 100 and got["id"].is_unique


def test_summary_counts_regions_per_class(capsys):
    assert main(["summary", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    amb = REF["variability"] >= 0.2
    easy = (~amb & (REF["confidence"] >= 0.5)).sum()
    assert "examples:  400" in out and "epochs:    6" in out
    last = [line for line in out.splitlines() if line.startswith("all,")][0]
    assert last == f"all,{easy},{amb.sum()},{400 - easy - amb.sum()},0,400"


def test_pool_over_runs(tmp_path, capsys):
    rows = [{"id": i, "label": 1, "logits": [0.0, float(i)]} for i in range(4)]
    for seed in range(2):
        write_log(tmp_path / "data" / f"seed-{seed}", [rows, rows], "parquet")
    assert main(["stats", str(tmp_path / "data"), "--pool", "--out", str(tmp_path / "p.parquet")]) == 0
    got = pd.read_parquet(tmp_path / "p.parquet")
    np.testing.assert_allclose(got["confidence"], 1 / (1 + np.exp(-np.arange(4.0))), atol=1e-7)
    assert (got["n_runs"] == 2).all() and (got["confidence_se"] == 0).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["stats", "nowhere", "--out", "x.csv"], "error: nowhere: no such directory"),
        (["select", str(FIXTURE), "--metric", "confidence", "--out", "x.csv"], "error: --metric needs --fraction"),
        (["stats", str(FIXTURE), "--out", "x.xlsx"], "error: x.xlsx: unknown output format '.xlsx'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_existing_output_is_kept(tmp_path, capsys):
    out = tmp_path / "keep.csv"
    out.write_text("my annotations")
    assert main(["stats", str(FIXTURE), "--out", str(out)]) == 2
    assert out.read_text() == "my annotations"
    assert "already exists" in capsys.readouterr().err
    assert main(["stats", str(FIXTURE), "--out", str(out), "--force"]) == 0


def test_module_runs_from_the_repository_root(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cartography_core", "summary", "tests/fixtures/missing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: tests/fixtures/missing: no such directory\n"
    help_ = subprocess.run(
        [sys.executable, "-m", "cartography_core", "select", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert help_.returncode == 0 and "--both-ends" in help_.stdout


def test_reliability_prints_the_library_values(capsys):
    from cartography_core import compute_stats, split_half_reliability

    samples = ROOT / "sample_logs" / "trec"
    assert main(["reliability", str(samples), "--scores", "confidence,aum", "--target", "0.95"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "score,split_half_rho,reliability_of_mean_of_3,runs_for_0.95"
    tables = [compute_stats(samples / f"seed-{s}") for s in range(3)]
    for line, score in zip(lines[2:], ["confidence", "aum"]):
        r = split_half_reliability(tables, score)
        assert line == f"{score},{r.split_half:.4f},{r.full:.4f},{r.runs_needed(0.95)}"


def test_reliability_needs_two_runs(capsys):
    assert main(["reliability", str(FIXTURE)]) == 2
    assert "reliability needs at least 2 runs below it, found 1" in capsys.readouterr().err


def test_compare_two_groups_of_runs(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for group, shift in (("a", 0.0), ("b", 4.0)):
        for seed in range(3):
            rows = [
                {"id": i, "label": 1, "logits": [0.0, float(rng.normal()) * 0.1 + (shift if i == 7 else 0.0)]}
                for i in range(20)
            ]
            write_log(tmp_path / group / f"seed-{seed}", [rows, rows], "parquet")
    args = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--top", "1", "--out", str(tmp_path / "c.csv")]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    written = pd.read_csv(tmp_path / "c.csv")
    n_sig = int((written["q_value"] < 0.05).sum())
    assert out[0].startswith("confidence: 3 runs in A") and f"{n_sig} of 20 examples differ at q < 0.05" in out[0]
    assert out[1].startswith("id,mean_a,mean_b,diff,t,p_value,q_value") and out[2].startswith("7,")
    assert len(written) == 20 and written["id"].iloc[0] == 7 and written["q_value"].iloc[0] < 0.05
    # groups whose run.json say they were trained differently get a note first
    for group, model in (("a", "mlp32"), ("b", "mlp4")):
        for seed in range(3):
            (tmp_path / group / f"seed-{seed}" / "run.json").write_text(json.dumps({"model": model, "seed": seed}))
    assert main(args + ["--force"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "note: the groups were trained differently (model mlp32 -> mlp4; their first runs' run.json)"
    assert out[1].startswith("confidence: 3 runs in A")


def test_the_console_command_is_the_module_command():
    """pyproject's `cartography` script runs the same CLI as `python -m cartography_core`."""
    import tomllib

    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["cartography"]
    module, func = target.split(":")
    argv = ["summary", str(ROOT / "sample_logs" / "trec" / "seed-0")]
    code = f"import sys; sys.argv = ['cartography', *{argv!r}]; from {module} import {func}; {func}()"
    via_script = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    via_module = subprocess.run(
        [sys.executable, "-m", "cartography_core", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert via_script.returncode == via_module.returncode == 0
    assert via_script.stdout == via_module.stdout and "examples:  4842" in via_script.stdout


def test_max_epochs_beyond_the_run_says_that_every_epoch_is_used(tmp_path, capsys):
    rows = [{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 1, "logits": [0.0, 2.0]}]
    run = write_log(tmp_path / "run", [rows, rows, rows])
    assert main(["stats", str(run), "--max-epochs", "10", "--out", str(tmp_path / "s.csv")]) == 0
    assert "--max-epochs 10, but the run has 3 epochs; all 3 are used" in capsys.readouterr().err
    assert main(["stats", str(run), "--max-epochs", "2", "--out", str(tmp_path / "t.csv")]) == 0
    assert "--max-epochs" not in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "t.csv")["n_epochs"].tolist() == [2, 2]
