"""The noise self-test, end to end through the command line on real texts (sample_logs' SMS rows)."""

import json
import struct

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from cartography_core.cli import main
from cartography_core.scores import SCORES
from cartography_core.selftest import suspicion
from tests.test_train import load


def test_selftest_reports_every_score_the_flag_and_a_plot(tmp_path, capsys):
    data = load("sms_spam", 1500)
    pd.DataFrame({"msg": data.texts, "kind": np.asarray(data.label_names)[data.labels]}).to_csv(
        tmp_path / "sms.csv", index=False
    )
    args = ["selftest", str(tmp_path / "sms.csv"), "--text-col", "msg", "--label-col", "kind"]
    assert main(args + ["--seeds", "3", "--noise", "0.1", "--out", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "st" / "selftest.json").read_text())
    seed = report["seeds"][0]
    # 10% of 1,500 rows flipped; the 90% training split is scored: about 135 of its 1,350 rows are flips
    assert seed["rows"] == 1350 and 100 < seed["flipped"] < 170
    assert set(seed["scores"]) == set(SCORES)  # a log of logits defines every score
    aum = seed["scores"]["aum"]
    assert aum["auroc"] > 0.95 and aum["average_precision"] > 0.8  # spam flips are easy to see
    assert aum["precision_at_k"] == pytest.approx(1 - aum["false_negative_rate_at_k"])
    assert aum["found_in_top"]["1%"] <= aum["found_in_top"]["5%"] <= aum["found_in_top"]["10%"] <= 1
    # found in the hardest 1% = 13 rows: at most 13 of the flips
    assert aum["found_in_top"]["1%"] <= 13 / seed["flipped"] + 1e-12
    flag = seed["label_issue_flag"]
    assert flag["flipped"] == seed["flipped"] and 0 < flag["precision"] <= 1 and 0 < flag["recall"] <= 1
    assert report["recommended_score"] in SCORES and report["noise"] == 0.1 and report["kind"] == "uniform"
    # the terminal table has a row for every score in the JSON, best average precision first
    rows = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in SCORES]
    assert rows == sorted(rows, key=lambda n: -report["mean_over_seeds"][n]["average_precision"])
    assert set(rows) == set(seed["scores"])
    png = (tmp_path / "st" / "selftest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (780, 540)  # 6.5 x 4.5 in at 120 dpi
    assert report["trainer"]["model"] == "mlp" and report["trainer"]["weight_decay"] == 0  # the map preset
    trainer = "mlp on tfidf, lr 0.001 (constant), weight decay 0.0, at most 30 epochs, early stopping (patience 2)"
    assert f"trainer: {trainer}" in out

    # the same flips, trained with the label-errors preset: the report says which trainer it measured
    args += ["--seeds", "3", "--preset", "label-errors", "--epochs", "10", "--out", str(tmp_path / "le")]
    assert main(args) == 0
    report = json.loads((tmp_path / "le" / "selftest.json").read_text())
    assert report["trainer"]["model"] == "linear" and report["trainer"]["weight_decay"] == "auto"
    assert report["trainer"]["epochs"] == 10 and report["seeds"][0]["epochs"] == 10  # patience 0
    assert report["seeds"][0]["flipped"] == seed["flipped"]  # seed 3's flips, as above
    assert report["seeds"][0]["scores"]["aum"]["auroc"] > 0.95
    out = capsys.readouterr().out
    trainer = "linear on tfidf+char, lr 0.02 (linear), weight decay auto, at most 10 epochs, no early stopping"
    assert f"trainer: {trainer}" in out


def test_suspicion_reads_each_score_in_its_harder_direction():
    t = pa.table(
        {
            "confidence": [0.9, 0.1, 0.5],
            "variability": [0.0, 0.1, 0.3],
            "first_learned_epoch": pa.array([0, None, 2], type=pa.int32()),
            "aum": pa.array([None, None, None], type=pa.float64()),
        }
    )
    assert suspicion(t, "confidence").tolist() == [-0.9, -0.1, -0.5]  # lower confidence is more suspect
    assert suspicion(t, "variability").tolist() == [0.0, 0.1, 0.3]
    assert suspicion(t, "first_learned_epoch").tolist() == [0.0, 3.0, 2.0]  # never learned: above every epoch
    assert suspicion(t, "aum") is None  # a probability log has no aum
    flipped = np.array([False, True, False])
    assert roc_auc_score(flipped, suspicion(t, "confidence")) == 1.0


def test_selftest_refuses_a_noise_rate_outside_0_1(tmp_path, capsys):
    args = ["selftest", "x.csv", "--text-col", "t", "--label-col", "y", "--out", str(tmp_path), "--noise", "1.5"]
    assert main(args) == 2
    assert "--noise must lie strictly between 0 and 1, got 1.5" in capsys.readouterr().err


def test_selftest_never_replaces_a_report_without_force_and_checks_out_before_training(tmp_path, capsys):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "selftest.json").write_text("{}")
    (tmp_path / "file.csv").write_text("kept")
    args = ["selftest", str(tmp_path / "missing.csv"), "--text-col", "t", "--label-col", "y", "--out"]
    assert main(args + [str(tmp_path / "st")]) == 2  # refused before the (missing) data is even read
    assert "already holds selftest.json; use --force" in capsys.readouterr().err
    assert (tmp_path / "st" / "selftest.json").read_text() == "{}"
    assert main(args + [str(tmp_path / "file.csv")]) == 2
    assert "file.csv: exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "file.csv").read_text() == "kept"
    assert main(args + [str(tmp_path / "st"), "--force"]) == 2  # --force gets past the folder check, to the data
    assert "missing.csv: no such file" in capsys.readouterr().err


def test_too_few_rows_to_hold_out_every_class_is_a_clear_error(tmp_path, capsys):
    pd.DataFrame({"t": [f"text {i}" for i in range(20)], "y": list("abcde") * 4}).to_csv(tmp_path / "d.csv")
    args = ["selftest", str(tmp_path / "d.csv"), "--text-col", "t", "--label-col", "y", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "d.csv: cannot hold out 0.1 of 20 rows with every one of the 5 classes on both sides" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("column", ["t", "y"])
def test_an_empty_text_or_label_cell_is_named(tmp_path, capsys, column):
    df = pd.DataFrame({"t": [f"text {i}" for i in range(40)], "y": list("ab") * 20})
    df.loc[7, column] = ""
    df.to_csv(tmp_path / "d.csv", index=False)
    args = ["selftest", str(tmp_path / "d.csv"), "--text-col", "t", "--label-col", "y", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert f"d.csv line 9: {column} is empty" in capsys.readouterr().err  # row 7 below the header
