"""What a user's own run can get wrong at the command line: examples that are not the logged rows, class
names, outputs aimed at the logs, reliability over runs that differ, and a closed pipe."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cartography_core.cli import main
from tests.logs import write_log
from tests.test_cli import ROOT

NAMES = ["ABBR", "DESC", "NUM"]


def run_with_examples(tmp_path, examples: pd.DataFrame, layout="parquet"):
    """A 12-example run, id i with gold label i % 3, and ``examples`` beside it as CSV."""
    rows = [{"id": i, "label": i % 3, "logits": [0.0, 0.0, 0.0]} for i in range(12)]
    for r in rows:
        r["logits"][r["label"]] = 2.0
    run = write_log(tmp_path / "run", [rows, rows], layout)
    examples.to_csv(run / "examples.csv", index=False)
    return run


def shifted_examples(shift: int) -> pd.DataFrame:
    """The dataset's rows, but the log's id i points at row i + shift (ids that are positions in a split)."""
    label = (np.arange(12) + shift) % 3
    return pd.DataFrame({"id": np.arange(12), "text": [f"row {i + shift}" for i in range(12)], "label": label})


def shuffled_examples() -> pd.DataFrame:
    """The log's id i points at a row of the dataset that a shuffled split put there: labels do not match."""
    rows = np.array([3, 7, 1, 11, 0, 5, 9, 2, 8, 4, 10, 6])
    return pd.DataFrame({"id": np.arange(12), "text": [f"row {r}" for r in rows], "label": rows % 3})


@pytest.mark.parametrize("as_names", [False, True])
def test_examples_whose_labels_disagree_with_the_log_are_an_error(tmp_path, capsys, as_names):
    ex = shuffled_examples()
    if as_names:
        ex["label"] = np.asarray(NAMES, dtype=object)[ex["label"]]
    run = run_with_examples(tmp_path, ex)
    code = main(["select", str(run), "--region", "easy-to-learn", "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "x.csv").exists()
    n_bad = int((ex["label"] != np.arange(12) % 3).sum()) if not as_names else None
    assert re.search(r"run/examples.csv: the gold label of (\d+) of 12 logged ids differs from the log's", err)
    assert n_bad is None or f"the gold label of {n_bad} of 12" in err
    first = int(np.flatnonzero(ex["label"].to_numpy() != np.asarray(NAMES, dtype=object)[np.arange(12) % 3])[0])
    if not as_names:
        first = int(np.flatnonzero(ex["label"].to_numpy() != np.arange(12) % 3)[0])
        assert f"(id {first} is {ex['label'][first]} there but {first % 3} in the log" in err
    assert "Log the dataset's own ids" in err


def test_a_few_corrected_labels_are_kept_beside_the_logged_ones(tmp_path, capsys, monkeypatch):
    from tests.test_app import run_app, shown

    ex = shifted_examples(0)
    ex.loc[[2, 7], "label"] = [0, 0]  # two labels fixed after training
    run = run_with_examples(tmp_path, ex)
    assert main(["select", str(run), "--region", "easy-to-learn", "--out", str(tmp_path / "x.csv")]) == 0
    got = pd.read_csv(tmp_path / "x.csv").set_index("id")
    assert got["label_examples"].to_dict() == {i: (0 if i in (2, 7) else i % 3) for i in range(12)}
    assert (got["label"] == got.index % 3).all()
    # summary and the dashboard say which ids differ: the map scores the logged labels, not the file's
    notice = "2 ids (2, 7) have another label in the examples file than in the log"
    assert main(["summary", str(run)]) == 0
    assert f"warning: {notice}" in capsys.readouterr().err  # on stderr, for every command reading the run
    assert any(notice in shown(w.value) for w in run_app(monkeypatch, tmp_path, run=run.name).warning)
    # the example's detail shows both labels for a corrected row, and one for the others
    for example, want in (("2", "gold 2 (the examples file says 0), predicted"), ("3", "gold 0, predicted")):
        page = [shown(m.value) for m in run_app(monkeypatch, tmp_path, run=run.name, example=example).markdown]
        assert any(want in m.replace("**", "") for m in page if m.startswith(f"**Example {example}**")), page
    ex.loc[[2, 7], "label"] = [2, 1]  # the logged labels again: nothing to say
    run = run_with_examples(tmp_path / "same", ex)
    assert main(["summary", str(run)]) == 0 and "another label" not in capsys.readouterr().err
    assert not any("another label" in w.value for w in run_app(monkeypatch, tmp_path / "same", run=run.name).warning)


def test_logged_ids_missing_from_the_examples_file_are_named_and_shown_without_text(tmp_path, capsys, monkeypatch):
    from tests.test_app import run_app, shown

    ex = shifted_examples(0)
    run = run_with_examples(tmp_path, ex.drop(index=[4, 9]))  # two logged rows the file lacks
    assert main(["summary", str(run)]) == 0
    notice = "2 logged ids are not in the examples file (4, 9); they have scores but no text or other columns"
    assert f"warning: {notice}" in capsys.readouterr().err
    assert any(notice in shown(w.value) for w in run_app(monkeypatch, tmp_path, run=run.name).warning)
    page = run_app(monkeypatch, tmp_path, run=run.name, example="4")
    assert [t.value for t in page.text] == ["(no text for this id in the examples file)"]
    assert [t.value for t in run_app(monkeypatch, tmp_path, run=run.name, example="5").text] == ["row 5"]
    # a file of other ids (positions against dataset ids): every logged id is named as missing
    other = ex.assign(id=ex["id"] + 100)
    run = run_with_examples(tmp_path / "other", other)
    assert main(["summary", str(run)]) == 0
    err = capsys.readouterr().err
    assert "none of the 12 logged ids is in the examples file (0, 1, 2, 3, 4, ...): log the dataset's own ids" in err


def test_class_names_come_from_the_examples_file_for_an_allenai_log(tmp_path):
    ex = shifted_examples(0)
    ex["label_name"] = np.asarray(NAMES, dtype=object)[ex["label"]]
    run = run_with_examples(tmp_path, ex, layout="allenai")
    assert main(["stats", str(run), "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["select", str(run), "--region", "easy-to-learn", "--out", str(tmp_path / "x.csv")]) == 0
    got = pd.read_csv(tmp_path / "x.csv").set_index("id")
    assert got["label_name"].tolist() == [NAMES[i % 3] for i in got.index]
    assert got["pred_label_name"].tolist() == [NAMES[i % 3] for i in got.index]  # every one predicted right


def test_label_names_option_names_classes(tmp_path):
    run = run_with_examples(tmp_path, shifted_examples(0).drop(columns="label"))
    assert main(["stats", str(run), "--label-names", "a, b,c", "--out", str(tmp_path / "s.csv")]) == 0
    got = pd.read_csv(tmp_path / "s.csv")
    assert got["label_name"].tolist() == ["abc"[i % 3] for i in got["id"]]
    assert main(["stats", str(run), "--label-names", "a,b", "--out", str(tmp_path / "t.csv")]) == 2


@pytest.mark.parametrize(
    "target",
    [
        "dynamics/epoch_001.parquet",
        "dynamics/new.parquet",
        "dynamics/sub/x.csv",
        "run.json",
        "examples.parquet",
        "hard.csv",
        "dynamics/../../run/hard.csv",
    ],
)
def test_outputs_inside_a_runs_logs_are_refused_even_with_force(tmp_path, capsys, target):
    run = run_with_examples(tmp_path, shifted_examples(0))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = run / target
    assert main(["stats", str(run), "--out", str(out), "--force"]) == 2
    assert "is inside the run folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_an_output_named_like_the_shared_examples_file_of_runs_is_refused(tmp_path, capsys):
    run_with_examples(tmp_path, shifted_examples(0))
    out = tmp_path / "examples.csv"  # beside the run: it would become the examples file of runs without one
    assert main(["select", str(tmp_path / "run"), "--region", "easy-to-learn", "--out", str(out)]) == 2
    assert "would become the examples file of the runs in" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["summary"],
        ["stats", "--out", "S.csv"],
        ["select", "--metric", "confidence", "--fraction", "0.1", "--out", "S.csv"],
    ],
)
def test_a_mismatched_examples_file_is_caught_however_few_rows_are_written(tmp_path, capsys, command):
    """select --fraction 0.1 writes 1 row, whose label may happen to agree: the whole table is checked."""
    run = run_with_examples(tmp_path, shuffled_examples())
    argv = [command[0], str(run), *[a.replace("S.csv", str(tmp_path / "s.csv")) for a in command[1:]]]
    assert main(argv) == 2
    assert "the gold label of 6 of 12 logged ids differs from the log's" in capsys.readouterr().err


def test_reliability_names_the_runs_whose_ids_differ(tmp_path, capsys):
    rows = [{"id": i, "label": 0, "logits": [1.0, 0.0]} for i in range(5)]
    write_log(tmp_path / "runs" / "seed-0", [rows, rows])
    write_log(tmp_path / "runs" / "seed-1", [rows[:4], rows[:4]])
    assert main(["reliability", str(tmp_path / "runs")]) == 2
    assert "seed-0 (5 ids) and seed-1 (4 ids) differ on 1 ids" in capsys.readouterr().err


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    rows = [{"id": i, "label": i % 2, "logits": [1.0, 0.0]} for i in range(40_000)]
    write_log(tmp_path / "a" / "seed-0", [rows])
    write_log(tmp_path / "b" / "seed-0", [rows])
    write_log(tmp_path / "a" / "seed-1", [rows])
    write_log(tmp_path / "b" / "seed-1", [rows])
    cmd = f"{sys.executable} -m cartography_core compare {tmp_path / 'a'} {tmp_path / 'b'} --top 40000 | head -2"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True, text=True)
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr == "" and done.returncode == 0, done.stderr
    assert re.match(r"confidence: 2 runs in A", done.stdout)


def test_pooling_takes_the_runs_of_one_dataset_folder_as_the_dashboard_does(tmp_path, capsys):
    rows = [{"id": i, "label": 0, "logits": [1.0, 0.0]} for i in range(3)]
    for name in ("a/seed-0", "a/seed-1", "b/seed-0"):
        write_log(tmp_path / name, [rows])
    assert main(["stats", str(tmp_path), "--pool", "--out", str(tmp_path / "p.csv")]) == 2
    assert f"the runs below it sit in 2 folders ({tmp_path / 'a'}, {tmp_path / 'b'}); give one of them" in (
        capsys.readouterr().err
    )
    assert main(["stats", str(tmp_path / "a"), "--pool", "--out", str(tmp_path / "p.csv")]) == 0
    assert pd.read_csv(tmp_path / "p.csv")["n_runs"].tolist() == [2, 2, 2]


def test_summary_counts_examples_never_logged(tmp_path, capsys):
    """A sampler that dropped rows in every epoch: those rows have no scores, and summary says how many."""
    ids = [*range(12), 40, 41, 57]  # 12 logged, 3 never logged
    examples = pd.DataFrame({"id": ids, "label": [i % 3 for i in ids], "text": [f"t{i}" for i in ids]})
    run = run_with_examples(tmp_path, examples)
    main(["summary", str(run)])
    out = capsys.readouterr().out
    assert "examples:  12\n" in out
    assert "unlogged:  3 rows of the examples file are in no epoch (held out from training, or dropped by a " in out
    assert "sampler; e.g. id 40): they have no scores" in out
    run2 = run_with_examples(tmp_path / "all", examples[examples["id"] < 12])
    main(["summary", str(run2)])
    assert "unlogged" not in capsys.readouterr().out
