"""The review loop's core: the verdicts database, consensus and agreement (hand-worked), the corrected dataset,
Label Studio files (checked with Label Studio's own SDK), invite tokens."""

import json
import math
import re
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cartography_core import LogError
from cartography_core.reviews import (
    ReviewStore,
    Verdict,
    agreement,
    check_name,
    check_verdict,
    corrected_dataset,
    disagreements,
    invite_link,
    ls_config,
    ls_import,
    ls_tasks,
    resolve,
    sign,
    token_ok,
)
from cartography_core.reviews.consensus import AMBIGUOUS
from cartography_core.reviews.store import COMMENT_MAX, MIGRATIONS, check_db_location

NAMES = ["X", "Y", "Z"]
IDS = np.array([1, 2, 3, 4, 5, 6])


def v(example_id, annotator, verdict, new_label=None, gold="X", **kw):
    return Verdict("ds", example_id, annotator, verdict, new_label=new_label, gold=gold, **kw)


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path / "r.sqlite3") as s:
        yield s


def test_store_appends_and_the_latest_verdict_per_annotator_counts(store):
    assert store.add([v(1, "ann", "correct"), v(1, "bob", "wrong", "Y")]) == 2
    assert store.add(v(1, "ann", "wrong", "Z", comment="on second thought")) == 1
    history = store.history("ds")
    assert history.num_rows == 3 and history["seq"].to_pylist() == sorted(history["seq"].to_pylist())
    latest = store.latest("ds").to_pandas().set_index("annotator")
    assert latest.loc["ann", "verdict"] == "wrong" and latest.loc["ann", "new_label"] == "Z"
    assert latest.loc["ann", "comment"] == "on second thought"
    assert latest.loc["bob", "new_label"] == "Y"
    assert store.latest("ds", "bob").num_rows == 1
    assert store.latest("other").num_rows == 0
    assert store.history("ds")["example_id"].type == pa.int64()


def test_the_same_verdict_twice_is_stored_once(store):
    one = v(1, "ann", "correct")
    assert store.add(one) == 1
    assert store.add([one, one]) == 0
    assert store.history().num_rows == 1


def test_string_ids_keep_their_type(store):
    store.add(Verdict("ds2", "q-7", "ann", "remove"))
    store.add(Verdict("ds2", "7", "ann", "skip"))
    ids = store.history("ds2")["example_id"]
    assert ids.type == pa.string() and ids.to_pylist() == ["q-7", "7"]


def test_database_is_wal_with_a_schema_version(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == store.schema_version


def test_newer_schema_and_non_database_files_are_refused(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(LogError, match=r"newer.sqlite3: reviews database schema version 2 is newer"):
        ReviewStore(newer)
    text = tmp_path / "notes.txt"
    text.write_text("not a database, but the user's notes\n" * 100)
    with pytest.raises(LogError, match=r"notes.txt: not a usable reviews database"):
        ReviewStore(text)
    assert text.read_text().startswith("not a database")  # left as it was


def test_database_may_not_live_in_a_log_folder(tmp_path):
    logs = tmp_path / "logs"
    (logs / "run").mkdir(parents=True)
    with pytest.raises(LogError, match="may not live inside a log folder"):
        check_db_location(logs / "run" / "r.sqlite3", [logs])
    assert check_db_location(tmp_path / "r.sqlite3", [logs]) == tmp_path / "r.sqlite3"


@pytest.mark.parametrize(
    "bad, message",
    [
        (v(99, "ann", "correct"), r"example 99 by 'ann': no example with id 99 in dataset 'ds'"),
        (v("1", "ann", "correct"), r"no example with id '1'"),  # a string id in a dataset of numbers
        (v(1, "ann", "wrong", "W"), r"new label 'W' is not one of the 3 classes \(X, Y, Z\)"),
        (v(1, "ann", "wrong"), r"a new label goes with the verdict 'wrong' and only with it"),
        (v(1, "ann", "correct", "Y"), r"a new label goes with the verdict 'wrong'"),
        (v(1, "ann", "maybe"), r"unknown verdict 'maybe'"),
        (v(1, "ann", "correct", comment="x" * (COMMENT_MAX + 1)), r"comment has 2,001 characters; at most 2,000"),
        (v(1, "<b>ann</b>", "correct"), r"reviewer name '<b>ann</b>': use 1 to 64 letters"),
        (v(1, "[me](http://x)", "correct"), r"reviewer name"),
        (v(1, "", "correct"), r"reviewer name ''"),
    ],
)
def test_bad_verdicts_are_refused_and_nothing_is_written(store, bad, message):
    with pytest.raises(LogError, match=message):
        store.add(check_verdict(bad, IDS, NAMES))
    assert store.history().num_rows == 0


def test_names_of_any_script_are_accepted():
    assert check_name("  Zoë O'Brien-Łukasz ") == "Zoë O'Brien-Łukasz"
    assert check_name("ann_1@lab.org") == "ann_1@lab.org"


# ---------------------------------------------------------------------------------------------------------
# Consensus and agreement, worked by hand


def latest_of(rows) -> pa.Table:
    cols = ("example_id", "annotator", "verdict", "new_label", "gold")
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})


def test_resolve_by_hand():
    latest = latest_of(
        [
            (1, "a", "correct", None, "X"),  # 1: X, Y, Y -> relabeled Y; pairs alike 1 of 3
            (1, "b", "wrong", "Y", "X"),
            (1, "c", "wrong", "Y", "X"),
            (2, "a", "correct", None, "X"),  # 2: X vs ambiguous -> unresolved, label kept
            (2, "b", "ambiguous", None, "X"),
            (3, "a", "remove", None, "Y"),  # 3: removed, one vote: agreement undefined
            (4, "a", "skip", None, "X"),  # 4: a skip is no vote
            (5, "a", "correct", None, "Z"),  # 5: both correct
            (5, "b", "correct", None, "Z"),
            (6, "a", "ambiguous", None, "Y"),  # 6: ambiguous twice, wrong once
            (6, "b", "ambiguous", None, "Y"),
            (6, "c", "wrong", "X", "Y"),
        ]
    )
    r = resolve(latest).set_index("example_id")
    assert list(r.index) == [1, 2, 3, 5, 6]
    assert r.loc[1, ["decision", "label_reviewed", "verdict", "n_votes"]].tolist() == ["Y", "Y", "relabeled", 3]
    assert r.loc[1, "agreement"] == pytest.approx(1 / 3)  # (2*1 + 1*0) / (3*2)
    assert r.loc[2, "unresolved"] and r.loc[2, "verdict"] == "unresolved" and r.loc[2, "label_reviewed"] == "X"
    assert r.loc[2, "agreement"] == 0
    assert r.loc[3, "verdict"] == "removed" and math.isnan(r.loc[3, "agreement"])
    assert r.loc[5, ["verdict", "agreement"]].tolist() == ["correct", 1.0]
    assert r.loc[6, "decision"] == AMBIGUOUS and r.loc[6, "label_reviewed"] == "Y"
    assert r.loc[6, "agreement"] == pytest.approx(1 / 3)
    assert r.loc[1, "votes"] == "a: X; b: Y; c: Y"
    d = disagreements(r.reset_index())
    assert d["example_id"].tolist() == [2, 1, 6]  # least agreement first, then by id


def test_cohen_kappa_for_two_annotators_by_hand():
    # a: X X Y Y, b: X Y Y Y -> observed 3/4; chance 0.5*0.25 + 0.5*0.75 = 0.5; kappa = 0.25/0.5
    rows = []
    for e, (va, vb) in enumerate([("X", "X"), ("X", "Y"), ("Y", "Y"), ("Y", "Y")]):
        rows += [(e, "a", "correct" if va == "X" else "wrong", None if va == "X" else va, "X")]
        rows += [(e, "b", "correct" if vb == "X" else "wrong", None if vb == "X" else vb, "X")]
    rows.append((9, "a", "correct", None, "X"))  # one vote only: left out
    ag = agreement(latest_of(rows))
    assert (ag.method, ag.n_examples, ag.n_annotators) == ("cohen_kappa", 4, 2)
    assert ag.value == pytest.approx(0.5)


def krippendorff_nominal(units: list[list[str]]) -> float:
    """A second implementation, from the coincidence matrix: alpha = 1 - (n - 1) * D_o / D_e (nominal)."""
    cats = sorted({c for u in units for c in u})
    o = np.zeros((len(cats), len(cats)))
    for u in units:
        if len(u) < 2:
            continue
        for i, a in enumerate(u):
            for j, b in enumerate(u):
                if i != j:
                    o[cats.index(a), cats.index(b)] += 1 / (len(u) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    observed = o.sum() - np.trace(o)
    expected = (n * n - (n_c**2).sum()) / (n - 1)
    return 1 - observed / expected


def test_krippendorff_alpha_for_three_annotators_against_a_second_implementation():
    units = {1: ["X", "X", "Y"], 2: ["Y", "Y", "Y"], 3: ["X", AMBIGUOUS], 4: ["Z", "Z", "X"], 5: ["X", "X"]}
    annotators = ["a", "b", "c"]
    rows = []
    for e, vs in units.items():
        for ann, vote in zip(annotators, vs):
            if vote == AMBIGUOUS:
                rows.append((e, ann, "ambiguous", None, "X"))
            else:
                rows.append((e, ann, "correct" if vote == "X" else "wrong", None if vote == "X" else vote, "X"))
    ag = agreement(latest_of(rows))
    assert (ag.method, ag.n_examples, ag.n_annotators) == ("krippendorff_alpha", 5, 3)
    assert ag.value == pytest.approx(krippendorff_nominal(list(units.values())))


# ---------------------------------------------------------------------------------------------------------
# Corrected dataset


def test_corrected_dataset_flags_or_drops_removed_rows():
    base = pa.table({"id": [1, 2, 3, 7], "text": ["a", "b", "c", "held out"], "label": [0, 0, 1, 2]})
    resolved = resolve(
        latest_of([(1, "a", "wrong", "Y", "X"), (2, "a", "correct", None, "X"), (3, "a", "remove", None, "Y")])
    )
    flagged = corrected_dataset(base, resolved, NAMES).to_pandas()
    assert flagged["label_reviewed"].tolist() == ["Y", "X", "Y", "Z"]
    assert flagged["label_reviewed_index"].tolist() == [1, 0, 1, 2]  # NAMES = X, Y, Z: comparable with label
    assert flagged.columns.get_loc("label_reviewed_index") == flagged.columns.get_loc("label_reviewed") + 1
    assert flagged["verdict"].tolist() == ["relabeled", "correct", "removed", "unreviewed"]
    assert flagged["removed"].tolist() == [False, False, True, False]
    assert flagged["n_votes"].tolist() == [1, 1, 1, 0]
    assert flagged["text"].tolist() == ["a", "b", "c", "held out"]  # the examples' own columns are kept
    dropped = corrected_dataset(base, resolved, NAMES, removed="drop").to_pandas()
    assert dropped["id"].tolist() == [1, 2, 7] and "removed" not in dropped
    with pytest.raises(LogError, match="removed='keep'"):
        corrected_dataset(base, resolved, NAMES, removed="keep")


def test_corrected_dataset_with_string_labels_and_no_reviews():
    base = pa.table({"id": ["a", "b"], "label": ["pos", "neg"]})
    out = corrected_dataset(base, resolve(latest_of([])), ["neg", "pos"]).to_pandas()
    assert out["label_reviewed"].tolist() == ["pos", "neg"] and set(out["verdict"]) == {"unreviewed"}
    assert "label_reviewed_index" not in out  # names in, names out


# ---------------------------------------------------------------------------------------------------------
# Label Studio, checked with Label Studio's own SDK


def stats_rows():
    return pa.table(
        {
            "id": [1, 2],
            "text": ["what is <b>this</b>?", "where"],
            "label": [0, 1],
            "pred_label": [1, 1],
            "confidence": [0.1, 0.9],
            "variability": [0.05, 0.02],
            "correctness": [0.0, 1.0],
        }
    )


def test_label_studio_tasks_and_config_are_valid_for_label_studio():
    from label_studio_sdk.label_interface import LabelInterface

    names = ["X", 'Y "quoted" <&>', "Z"]
    li = LabelInterface(ls_config(names))
    assert set(li.get_control("label").labels) == set(names)
    tasks = ls_tasks(
        stats_rows(), dataset="ds", run="ds/seed-0", label_names=names, text_column="text",
        pred_score=np.array([0.7, 0.95]), regions=["hard-to-learn", "easy-to-learn"],
    )  # fmt: skip
    assert [t["data"]["example_id"] for t in tasks] == [1, 2]
    assert tasks[0]["data"]["gold"] == "X" and tasks[0]["data"]["region"] == "hard-to-learn"
    for t in tasks:
        assert li.validate_prediction(t["predictions"][0])
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == [names[1]]
    assert tasks[0]["predictions"][0]["score"] == 0.7
    json.dumps(tasks)  # serialisable as it is


def test_label_studio_export_round_trip(tmp_path, store):
    from label_studio_sdk.label_interface import LabelInterface

    li = LabelInterface(ls_config(NAMES))

    def annotation(ann_id, who, label=None, flag=None, comment=None, cancelled=False):
        result = []
        if label:
            result.append({"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}})
        if flag:
            result.append({"from_name": "flag", "to_name": "text", "type": "choices", "value": {"choices": [flag]}})
        if comment:
            result.append({"from_name": "comment", "to_name": "text", "type": "textarea", "value": {"text": [comment]}})
        a = {"id": ann_id, "completed_by": who, "result": result, "was_cancelled": cancelled}
        assert li.validate_annotation(a), a  # what Label Studio itself would accept
        return a

    export = [
        {"id": 11, "data": {"example_id": 1, "text": "a", "gold": "X"},
         "annotations": [annotation(101, 5, label="X"), annotation(102, {"id": 6, "email": "bo@lab"}, label="Z")]},
        {"id": 12, "data": {"example_id": 2, "text": "b", "gold": "Y"},
         "annotations": [annotation(103, 5, flag="not a valid example", comment="spam"),
                         annotation(104, 6, flag="ambiguous"), annotation(105, 7, cancelled=True)]},
    ]  # fmt: skip
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    verdicts = ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)
    got = [(x.example_id, x.annotator, x.verdict, x.new_label, x.comment) for x in verdicts]
    assert got == [
        (1, "label-studio-user-5", "correct", None, ""),
        (1, "bo@lab", "wrong", "Z", ""),
        (2, "label-studio-user-5", "remove", None, "spam"),
        (2, "label-studio-user-6", "ambiguous", None, ""),
        (2, "label-studio-user-7", "skip", None, ""),
    ]
    assert store.add(verdicts) == 5
    assert store.add(ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)) == 0  # imported twice: once


def test_label_studio_import_refuses_unknown_ids_and_classes(tmp_path):
    path = tmp_path / "export.json"
    task = {
        "id": 1,
        "data": {"example_id": 42, "gold": "X"},
        "annotations": [{"id": 1, "completed_by": 1, "result": []}],
    }
    path.write_text(json.dumps([task]))
    with pytest.raises(LogError, match=r"export.json task 0 annotation 0: neither a label nor a flag"):
        ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)
    task["annotations"][0]["result"] = [{"from_name": "label", "type": "choices", "value": {"choices": ["X"]}}]
    path.write_text(json.dumps([task]))
    with pytest.raises(LogError, match=r"no example with id 42 in dataset 'ds'"):
        ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)
    task["data"]["example_id"] = 1
    task["annotations"][0]["result"][0]["value"]["choices"] = ["Q"]
    path.write_text(json.dumps([task]))
    with pytest.raises(LogError, match=r"new label 'Q' is not one of the 3 classes"):
        ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)
    path.write_text("{not json")
    with pytest.raises(LogError, match=r"export.json: not a Label Studio JSON export"):
        ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)


# ---------------------------------------------------------------------------------------------------------
# Invite tokens


def test_invite_token_is_an_hmac_of_name_and_scope():
    import hashlib
    import hmac
    from urllib.parse import parse_qsl, urlsplit

    secret = b"s3cret"
    expected = hmac.new(secret, b"cartography-invite\nann\n", hashlib.sha256).hexdigest()[:32]
    assert sign(secret, "ann") == expected
    view = [("subset", "hard-to-learn"), ("run", "trec/seed-0"), ("reviewer", "mallory")]
    link = invite_link("http://host:8501/?x=1", secret, "ann", view)
    assert link.startswith("http://host:8501/?")
    query = dict(parse_qsl(urlsplit(link).query))
    assert query["page"] == "review" and query["reviewer"] == "ann" and query["run"] == "trec/seed-0"
    assert query["scope"] == "run=trec%2Fseed-0&subset=hard-to-learn"  # sorted, without who and where
    by_hand = hmac.new(secret, f"cartography-invite\nann\n{query['scope']}".encode(), hashlib.sha256)
    assert query["token"] == by_hand.hexdigest()[:32]
    assert token_ok(secret, "ann", query["token"], query["scope"])
    assert not token_ok(secret, "ann", query["token"], "run=trec%2Fseed-0")  # another scope
    assert not token_ok(secret, "ann", query["token"], "")
    assert not token_ok(secret, "bob", query["token"], query["scope"])  # another name
    assert not token_ok(b"other", "ann", query["token"], query["scope"])
    anywhere = dict(parse_qsl(urlsplit(invite_link("http://h/", secret, "ann")).query))
    assert "scope" not in anywhere and token_ok(secret, "ann", anywhere["token"])
    assert not token_ok(secret, "ann", "") and not token_ok(secret, "ann", None)


def test_resolve_returns_frame_types():
    r = resolve(latest_of([(1, "a", "correct", None, "X")]))
    assert isinstance(r, pd.DataFrame) and r["n_votes"].tolist() == [1]


def test_docs_list_the_database_columns():
    from pathlib import Path

    from cartography_core.reviews.store import COLUMNS

    docs = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()
    section = docs[docs.index("## Reviews database") :]
    listed = re.findall(r"^\| (`[^|]+`) \|", section, flags=re.M)
    names = [n.strip("` ") for cell in listed for n in cell.split(",")]
    assert sorted(names) == sorted(COLUMNS)


# ---------------------------------------------------------------------------------------------------------
# The command line


def cli(*args) -> tuple[int, str, str]:
    import contextlib
    import io

    from cartography_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_cli_refuses_a_database_inside_the_run_and_bad_imports_write_nothing(tmp_path):
    from tests.logs import write_log

    rows = [{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 1, "logits": [0.0, 1.0]}]
    run = write_log(tmp_path / "ds" / "seed-0", [rows, rows], "parquet", meta={"label_names": ["X", "Y"]})
    code, _, err = cli("reviews", "summary", run, "--reviews-db", run / "r.sqlite3")
    assert code == 2 and "may not live inside a log folder" in err and not (run / "r.sqlite3").exists()
    export = tmp_path / "ls.json"
    choice = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["Y"]}}
    tasks = [
        {"id": 1, "data": {"example_id": 1}, "annotations": [{"id": 1, "completed_by": 3, "result": [choice]}]},
        {"id": 2, "data": {"example_id": 99}, "annotations": [{"id": 2, "completed_by": 3, "result": [choice]}]},
    ]
    export.write_text(json.dumps(tasks))
    db = tmp_path / "reviews.sqlite3"
    code, _, err = cli("reviews", "import", export, run, "--reviews-db", db)
    assert code == 2 and "ls.json task 1: no example with id 99 in dataset 'ds'" in err
    assert not db.exists() or ReviewStore(db).history().num_rows == 0  # the good task was not stored either
    export.write_text(json.dumps(tasks[:1]))
    code, out, _ = cli("reviews", "import", export, run, "--reviews-db", db)
    assert code == 0 and "ls.json: 1; new: 1, stored already: 0" in out
    with ReviewStore(db) as store:
        row = store.history("ds").to_pylist()[0]
    assert (row["example_id"], row["verdict"], row["new_label"], row["gold"]) == (1, "wrong", "Y", "X")
    code, out, _ = cli(
        "reviews", "export", run, "--reviews-db", db, "--out", tmp_path / "fixed.csv", "--removed", "drop"
    )
    fixed = pd.read_csv(tmp_path / "fixed.csv")
    assert code == 0 and fixed["label_reviewed"].tolist() == ["Y", "Y"] and fixed["verdict"].tolist()[0] == "relabeled"


def test_an_old_label_studio_verdict_imported_later_does_not_replace_a_newer_one(tmp_path, store):
    store.add(v(1, "alice", "wrong", "Y", created_at="2026-11-23T19:42:00.000+00:00"))
    choice = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["X"]}}
    annotation = {"id": 70, "completed_by": {"id": 3, "email": "alice"}, "updated_at": "2026-10-01T10:00:00Z"}
    old = [{"id": 7, "data": {"example_id": 1, "gold": "X"}, "annotations": [{**annotation, "result": [choice]}]}]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    imported = ls_import(path, dataset="ds", ids=IDS, label_names=NAMES)
    assert imported[0].created_at == "2026-10-01T10:00:00.000+00:00"
    store.add(imported)
    latest = store.latest("ds").to_pylist()
    assert [(r["verdict"], r["new_label"]) for r in latest] == [("wrong", "Y")]  # the newer verdict counts
    assert store.history("ds").num_rows == 2  # both kept


def test_cli_messages_for_a_users_slips(tmp_path, monkeypatch):
    from tests.logs import write_log

    rows = [{"id": 1, "label": 0, "logits": [1.0, 0.0]}, {"id": 2, "label": 1, "logits": [0.0, 1.0]}]
    run = write_log(tmp_path / "ds" / "seed-0", [rows, rows], "parquet", meta={"label_names": ["X", "Y"]})
    tasks = tmp_path / "tasks.json"
    code, _, _ = cli(
        "reviews", "export", run, "--format", "label-studio", "--out", tasks, "--reviews-db", tmp_path / "r"
    )
    assert code == 0 and not (tmp_path / "r").exists()  # tasks need no database
    code, _, err = cli("reviews", "import", tasks, run, "--reviews-db", tmp_path / "r.db")
    assert code == 2 and "no task has annotations: this looks like the tasks file" in err
    other = write_log(tmp_path / "other" / "seed-0", [rows, rows], "parquet", meta={"label_names": ["X", "Y"]})
    done = json.loads(tasks.read_text())
    done[0]["annotations"] = [
        {"id": 1, "completed_by": 2, "result": [{"from_name": "flag", "value": {"choices": ["ambiguous"]}}]}
    ]
    tasks.write_text(json.dumps(done))
    code, _, err = cli("reviews", "import", tasks, other, "--reviews-db", tmp_path / "r.db")
    assert code == 2 and "made for dataset 'ds', not 'other'" in err
    code, _, err = cli("reviews", "summary", run, "--reviews-db", tmp_path / "none.db")
    assert code == 2 and "no reviews database there" in err
    code, _, err = cli("train", tmp_path / "x.csv", "--text-col", "t", "--label-col", "l", "--out", run / "inner")
    assert code == 2 and "is inside the run folder" in err and not (run / "inner").exists()
    monkeypatch.setenv("CARTOGRAPHY_INVITE_SECRET", "s")
    code, _, err = cli("invite", "ann", "--url", "localhost:8501")
    assert code == 2 and "with its scheme, e.g. http://localhost:8501" in err
    shifted = write_log(tmp_path / "ds" / "seed-1", [rows[:1], rows[:1]], "parquet")
    code, out, _ = cli("compare", run, shifted)
    assert code == 0 and "note: the runs logged different examples (1 only before, 0 only after)" in out
    assert "the runs were trained differently" not in out  # neither run.json says how: nothing to compare
    assert f"note: before: {run}/run.json records no held-out accuracy" in out


def test_compare_says_when_two_runs_were_trained_differently(tmp_path, capsys, monkeypatch):
    from cartography_core.cli import main
    from cartography_core.ingest import training_differences
    from tests.logs import write_log

    rows = [{"id": i, "label": i % 2, "logits": [1.0, 0.0] if i % 2 == 0 else [0.0, 1.0]} for i in range(4)]
    hp = {"lr": 0.005, "epochs": 6, "features": "tfidf"}
    mine = {"model": "my-embedding-bag", "pass": "train", "holdout_accuracy": [0.8, 0.9]}
    a = write_log(tmp_path / "a", [rows], meta=mine)
    b = write_log(tmp_path / "b", [rows], meta={"model": "tfidf+mlp", "pass": "train", "hyperparameters": hp})
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "note: the runs were trained differently (model my-embedding-bag -> tfidf+mlp; hyperparameters not " in out
    assert "note: before:" not in out and f"note: after: {b}/run.json records no held-out accuracy" in out
    assert "epoch,held_out_accuracy_before,held_out_accuracy_after\n0,0.8000,\n1,0.9000,\n" in out
    # the dashboard's Runs tab says so too when one is compared with the other
    from tests.test_app import run_app, shown

    at = run_app(monkeypatch, tmp_path, run="a", tab="Runs")
    at.selectbox(key="vs").set_value("b").run()
    assert any("trained differently (model my-embedding-bag -> tfidf+mlp" in shown(i.value) for i in at.info)
    assert not any("logged different examples" in shown(i.value) for i in at.info)  # the same four rows
    write_log(tmp_path / "c", [rows[:2]], meta=mine)
    at = run_app(monkeypatch, tmp_path, run="a", tab="Runs")
    at.selectbox(key="vs").set_value("c").run()
    assert any("The runs logged different examples (2 only before, 0 only after)" in shown(i.value) for i in at.info)
    # hyper-parameters are compared by name; what is alike is not mentioned
    same = {"model": "m", "pass": "train", "hyperparameters": hp}
    assert training_differences(same, same) == ""
    later = {**same, "hyperparameters": {**hp, "lr": 0.001, "dropout": 0.1}}
    assert training_differences(same, later) == "dropout None -> 0.1; lr 0.005 -> 0.001"
    other_data = {**same, "label_names": ["neg", "pos"]}  # runs of another dataset: its classes differ
    assert training_differences({**same, "label_names": ["a", "b", "c"]}, other_data).startswith(
        "label_names ['a', 'b', 'c'] -> ['neg', 'pos']"
    )


def test_outcome_codes_by_hand():
    from cartography_core.reviews import OUTCOMES, outcome_codes

    resolved = resolve(
        latest_of([(30, "a", "wrong", "Y", "X"), (10, "a", "remove", None, "X"), (99, "a", "correct", None, "X")])
    )
    codes = outcome_codes(pd.Index([10, 20, 30]), resolved)
    assert [OUTCOMES[c] for c in codes] == ["removed", "unreviewed", "relabeled"]  # id 99 is not in this run
    assert [OUTCOMES[c] for c in outcome_codes(pd.Index(["a"]), resolve(latest_of([])))] == ["unreviewed"]


def test_label_studio_tasks_of_the_likely_mislabeled_only_likeliest_first(tmp_path):
    from tests.logs import write_log

    # gold 0 everywhere: aum = z0 - z1 over one epoch; ids 1, 3 and 4 flagged (aum < 0), 4 the likeliest
    z = {1: [0.0, 1.0], 2: [2.0, 0.0], 3: [0.0, 0.5], 4: [0.0, 3.0], 5: [1.0, 0.0]}
    rows = [{"id": i, "label": 0, "logits": v} for i, v in z.items()]
    run = write_log(tmp_path / "ds" / "seed-0", [rows], "jsonl", meta={"label_names": ["X", "Y"]})
    tasks = tmp_path / "tasks.json"
    code, out, _ = cli("reviews", "export", run, "--format", "label-studio", "--label-issues", "--out", tasks)
    assert code == 0 and "wrote 3 Label Studio tasks" in out
    assert [t["data"]["example_id"] for t in json.loads(tasks.read_text())] == [4, 1, 3]


def test_verdicts_never_pass_between_datasets_that_share_a_folder(tmp_path):
    from cartography_core.record import DynamicsRecorder
    from cartography_core.reviews.store import dataset_name

    def record(run, names, texts):
        ex = {"id": ["doc-1", "doc-2"], "text": texts, "label": [0, 1]}
        with DynamicsRecorder(run, label_names=names, examples=ex) as rec:
            rec.log(["doc-1", "doc-2"], np.array([[2.0, 0.0], [0.0, 2.0]]), [0, 1])
            rec.end_epoch()
        return run

    # two datasets side by side in runs/, with overlapping ids: each is its own dataset
    tickets = record(tmp_path / "runs" / "tickets", ["billing", "returns"], ["refund please", "box arrived"])
    sentiment = record(tmp_path / "runs" / "sentiment", ["neg", "pos"], ["awful", "lovely"])
    assert (dataset_name(tickets), dataset_name(sentiment)) == ("runs/tickets", "runs/sentiment")
    # seeds of one dataset (the same classes and examples) share the folder's verdicts, as do runs beside a
    # shared examples file
    seeds = [record(tmp_path / "mine" / f"seed-{s}", ["neg", "pos"], ["awful", "lovely"]) for s in (0, 1)]
    assert [dataset_name(r) for r in seeds] == ["mine", "mine"]
    (tmp_path / "runs" / "examples.parquet").write_bytes((tickets / "examples.parquet").read_bytes())
    assert dataset_name(sentiment) == "runs"
    (tmp_path / "runs" / "examples.parquet").unlink()
    # a verdict on the tickets dataset is not one on the sentiment dataset
    db = tmp_path / "r.db"
    with ReviewStore(db) as store:
        store.add([Verdict(dataset_name(tickets), "doc-1", "ann", "wrong", new_label="returns", gold="billing")])
    code, out, _ = cli("reviews", "summary", tickets, "--reviews-db", db)
    assert code == 0 and "dataset:    runs/tickets" in out and "easy-to-learn,billing,1" in out
    code, _, err = cli("reviews", "summary", sentiment, "--reviews-db", db)
    assert code == 2 and "no verdicts for dataset 'runs/sentiment'" in err
