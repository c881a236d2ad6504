"""A log root holding broken runs beside a good one: each broken run gives a notice naming the run, and the
page never shows a traceback, an absolute server path or more than a fragment of a file (AppTest)."""

import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.logs import write_log
from tests.test_app import run_app

A = {"id": 1, "label": 0, "logits": [2.0, 0.0]}
B = {"id": 2, "label": 1, "logits": [0.0, 1.0]}
SECRET = "root:x:0:0:SECRET-LINE-OF-A-SYSTEM-FILE"


def good(run):
    return write_log(run, [[A, B], [A, B]], "parquet")


def dangling_epoch(run):
    good(run)
    (run / "dynamics" / "epoch_002.parquet").symlink_to(run / "nowhere.parquet")


def directory_epoch(run):
    good(run)
    (run / "dynamics" / "epoch_002.parquet").mkdir()


def fifo_epoch(run):
    good(run)
    os.mkfifo(run / "dynamics" / "epoch_002.parquet")


def fifo_examples(run):
    good(run)
    os.mkfifo(run / "examples.csv")


def truncated_parquet(run):
    good(run)
    f = run / "dynamics" / "epoch_001.parquet"
    f.write_bytes(f.read_bytes()[:-30])


def bad_csv(run):
    good(run)
    (run / "examples.csv").write_text(f'id,text\n1,"{SECRET}\n2,"fine"\n')


def csv_with_wrong_columns(run):
    good(run)
    (run / "examples.csv").write_text(f"id,text\n1,ok\n2,{SECRET},extra,fields\n")


def bad_run_json(run):
    good(run)
    (run / "run.json").write_text("{not json")


def examples_linked_outside(run, outside):
    good(run)
    (run / "examples.csv").symlink_to(outside)


def epoch_linked_outside(run, outside_run):
    good(run)
    (run / "dynamics" / "epoch_002.parquet").symlink_to(outside_run / "dynamics" / "epoch_000.parquet")


def ragged_logits(run):
    good(run)
    table = pa.table({"id": [1, 2], "label": [0, 1], "logits": pa.array([[1.0, 0.0], [1.0]], pa.list_(pa.float32()))})
    pq.write_table(table, run / "dynamics" / "epoch_002.parquet")


def examples_of_other_rows(run):
    """ids that are positions in a split: the examples file's rows are not the logged ones."""
    rows = [{"id": i, "label": i % 2, "logits": [1.0, 0.0]} for i in range(12)]
    write_log(run, [rows, rows], "parquet")
    labels = [(i + 1) % 2 for i in range(12)]
    (run / "examples.csv").write_text("id,text,label\n" + "".join(f"{i},row {i},{y}\n" for i, y in enumerate(labels)))


BROKEN = {
    "dangling": (dangling_epoch, "expected a regular file, found a symbolic link to a missing file"),
    "dir-epoch": (directory_epoch, "expected a regular file, found a directory"),
    "fifo-epoch": (fifo_epoch, "expected a regular file, found a FIFO"),
    "fifo-examples": (fifo_examples, "expected a regular file, found a FIFO"),
    "truncated": (truncated_parquet, "not a readable parquet file"),
    "bad-csv": (bad_csv, "a quoted field is never closed"),
    "csv-columns": (csv_with_wrong_columns, "cannot read csv file"),
    "bad-json": (bad_run_json, "run.json: not valid JSON"),
    "link-examples": (None, "a symbolic link to a place outside the log root"),
    "link-epoch": (None, "a symbolic link to a place outside the log root"),
    "ragged": (ragged_logits, "logits has 1 values, expected 2"),
    "other-rows": (examples_of_other_rows, "the gold label of 12 of 12 logged ids differs from the log's (id 0 is 1"),
}


@pytest.fixture(scope="module")
def broken_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("server")
    outside = base / "outside"
    outside.mkdir()
    (outside / "passwd.csv").write_text(f"id,text\n1,{SECRET}\n")
    outside_run = good(outside / "run")
    root = base / "logs"
    good(root / "good")
    for name, (build, _) in BROKEN.items():
        if name == "link-examples":
            examples_linked_outside(root / name, outside / "passwd.csv")
        elif name == "link-epoch":
            epoch_linked_outside(root / name, outside_run)
        else:
            build(root / name)
    (root / "escape").symlink_to(outside_run)  # a run outside the root, linked in: not listed
    (root / "zz-loop").symlink_to("zz-loop")  # a symbolic-link loop: skipped alone
    os.rename(good(base / "made-here"), bytes(root / "zz-bad-name-") + b"\xff\xfe")  # not UTF-8: skipped alone
    return root


def page_texts(at) -> list[str]:
    """Every element of the page, as the text of its message (all strings the browser receives)."""

    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return [str(n.proto) for n in walk(at._tree) if getattr(n, "proto", None) is not None]


def test_the_root_lists_every_run_inside_it_and_no_linked_run_outside_it(monkeypatch, broken_root):
    at = run_app(monkeypatch, broken_root)
    assert at.selectbox(key="run").options == sorted(["good", *BROKEN])
    assert any("2 folders under the log root could not be read" in c.value for c in at.caption)
    assert at.title[0].value.replace("\\", "") == "Data map: bad-csv"  # first run, broken: a notice, no title crash


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_broken_run_gives_one_notice_and_no_leak(monkeypatch, broken_root, name, alarm):
    at = run_app(monkeypatch, broken_root, run=name)
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"Run {name} cannot be read: ")
    assert BROKEN[name][1] in errors[0]
    texts = "\n".join(page_texts(at)).replace("\\", "")  # Markdown escapes and proto escapes removed
    assert str(broken_root.parent) not in texts and str(broken_root.resolve().parent) not in texts
    assert SECRET not in texts and "Traceback" not in texts
    # the good run still opens in the same session
    at.selectbox(key="run").set_value("good").run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Data map: good"


def test_follow_links_lets_the_operator_open_linked_runs(monkeypatch, broken_root):
    monkeypatch.setenv("CARTOGRAPHY_FOLLOW_LINKS", "1")
    at = run_app(monkeypatch, broken_root, run="escape")
    assert not at.error and at.title[0].value == "Data map: escape"
    assert re.search(r"2 examples", at.caption[0].value)


def test_a_root_that_is_itself_a_run_is_titled_by_its_folder(monkeypatch, broken_root):
    at = run_app(monkeypatch, broken_root / "good")
    assert at.title[0].value == "Data map: good"


def test_a_link_to_a_missing_run_says_so_even_when_the_default_run_is_broken(monkeypatch, broken_root):
    at = run_app(monkeypatch, broken_root, run="not-a-run")
    assert at.selectbox(key="run").value == "bad-csv"  # the default: the first run, which is broken
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert warnings == [
        "The link's run='not-a-run' is not one of the choices here; showing the default (bad-csv) instead."
    ]
    assert len(at.error) == 1


def test_an_unreadable_folder_is_skipped_alone_and_the_operator_is_told(monkeypatch, tmp_path, caplog):
    from cartography_core import ingest

    good(tmp_path / "a" / "seed-0")
    good(tmp_path / "b" / "seed-0")
    real = os.scandir

    def scandir(path):  # what a folder of another user (mode 700) does to a server not running as root
        if Path(path).name == "a":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(ingest.os, "scandir", scandir)
    skipped = []
    assert ingest.find_runs(tmp_path, skipped=skipped) == ["b/seed-0"]
    assert skipped == ["a: skipped, cannot be read (Permission denied)"]
    at = run_app(monkeypatch, tmp_path)
    assert at.selectbox(key="run").options == ["b/seed-0"] and not at.exception
    assert "a: skipped, cannot be read (Permission denied)" in caplog.text


def test_empty_root_message_names_the_folder_not_its_server_path(monkeypatch, tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    at = run_app(monkeypatch, tmp_path)
    message = at.info[0].value.replace("\\", "")
    assert f"No training-dynamics logs under the folder {tmp_path.name} (1 folders could not be read" in message
    assert str(tmp_path.parent) not in "\n".join(page_texts(at)).replace("\\", "")


def test_run_json_values_of_any_size_show_in_the_runs_tab(monkeypatch, tmp_path):
    run = good(tmp_path / "r")
    meta = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    meta["seed"] = 10**30
    (run / "run.json").write_text(json.dumps(meta))
    at = run_app(monkeypatch, tmp_path, tab="Runs")
    assert not at.exception
    assert str(10**30) in at.dataframe[-1].value["seed"].tolist()
