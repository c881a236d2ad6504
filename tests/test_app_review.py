"""The review page (``page=review``) through AppTest: the queue is the link's subset, verdicts reach the
database with what the annotator saw, the next example follows, invites gate writing."""

import numpy as np
import pyarrow as pa
import pytest

from cartography_core import RegionThresholds, compute_stats, rank_order, read_examples, region_codes
from cartography_core.ingest import open_run
from cartography_core.reviews import ReviewStore, invite_link, sign
from tests.test_app import SAMPLES, chart_rows, run_app, shown, table

RUN = "trec/seed-0"


def hard_queue() -> tuple[list[int], pa.Table]:
    """The hard-to-learn examples of trec/seed-0, hardest (lowest confidence) first, by the core directly."""
    stats = compute_stats(SAMPLES / RUN)
    codes = region_codes(stats["confidence"].to_numpy(), stats["variability"].to_numpy(), RegionThresholds())
    order = rank_order(stats, "confidence", hardest=True)
    rows = order[codes[order] == 2]  # REGIONS: easy-to-learn, ambiguous, hard-to-learn, other
    return stats["id"].to_numpy()[rows].tolist(), stats


def text_of(example_id) -> str:
    ex = read_examples(open_run(SAMPLES / RUN)).to_pandas().set_index("id")
    return ex.loc[example_id, "text"]


def verdict(at, name: str):
    """The verdict button of the example shown (their keys name the example: a stale key press cannot reach
    the next one)."""
    return next(b for b in at.button if b.key and b.key.startswith(f"verdict_{name}_"))


def review(monkeypatch, **query):
    return run_app(monkeypatch, run=RUN, subset="hard-to-learn", page="review", **query)


def test_queue_is_the_links_subset_and_a_verdict_is_stored_with_what_was_seen(monkeypatch, reviews_db):
    queue, stats = hard_queue()
    at = review(monkeypatch, reviewer="ann")
    assert shown(at.subheader[0].value).startswith(f"Example {queue[0]} (1 of {len(queue):,} in this queue)")
    assert at.text[0].value == text_of(queue[0])  # the text of the dataset's own row
    row = stats["id"].to_pylist().index(queue[0])
    names = stats.schema.metadata and ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    gold, pred = names[stats["label"][row].as_py()], names[stats["pred_label"][row].as_py()]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Gold label"] == gold and metrics["Model predicts"] == pred
    assert metrics["confidence"] == f"{stats['confidence'][row].as_py():.3f}"

    right = next(n for n in names if n != gold)
    at.selectbox(key=f"new_label_{queue[0]}").set_value(right)
    at.text_area(key="comment").set_value("a <b>place</b>, not a number")
    verdict(at, "wrong").click().run()
    assert not at.exception
    with ReviewStore(reviews_db) as store:
        rows = store.history("trec").to_pylist()
    assert len(rows) == 1
    r = rows[0]
    assert (r["example_id"], r["annotator"], r["verdict"], r["new_label"]) == (queue[0], "ann", "wrong", right)
    assert (r["gold"], r["predicted"], r["run"]) == (gold, pred, RUN)
    assert r["comment"] == "a <b>place</b>, not a number"
    assert r["confidence"] == pytest.approx(stats["confidence"][row].as_py())
    # the confirmation quotes the button pressed; the next unreviewed example follows, the progress counts it
    assert f"Saved: 'Wrong label' (the right class: {right}) for example {queue[0]}." in [
        shown(s.value) for s in at.success
    ]
    assert shown(at.subheader[0].value).startswith(f"Example {queue[1]} (2 of")
    assert f"You: 1 of {len(queue):,} reviewed" in at.get("progress")[0].proto.text


def test_changing_a_verdict_keeps_history_and_the_latest_counts(monkeypatch, reviews_db):
    queue, _ = hard_queue()
    at = review(monkeypatch, reviewer="ann", example=str(queue[3]))
    assert shown(at.subheader[0].value).startswith(f"Example {queue[3]} (4 of")
    verdict(at, "ambiguous").click().run()
    at = review(monkeypatch, reviewer="ann", example=str(queue[3]), review_filter="my verdicts")
    assert any("Your verdict: ambiguous" in shown(i.value) for i in at.info)
    verdict(at, "correct").click().run()
    with ReviewStore(reviews_db) as store:
        assert [r["verdict"] for r in store.history("trec").to_pylist()] == ["ambiguous", "correct"]
        assert store.latest("trec")["verdict"].to_pylist() == ["correct"]


def test_unreviewed_only_skips_what_i_reviewed_but_not_what_others_did(monkeypatch, reviews_db):
    queue, _ = hard_queue()
    with ReviewStore(reviews_db) as store:
        from cartography_core.reviews import Verdict

        store.add([Verdict("trec", queue[0], "ann", "correct"), Verdict("trec", queue[1], "bob", "remove")])
    at = review(monkeypatch, reviewer="ann")
    assert shown(at.subheader[0].value).startswith(f"Example {queue[1]} (2 of")
    assert f"everyone: 2 of {len(queue):,}" in at.get("progress")[0].proto.text


def test_no_name_or_markup_in_the_name_stores_nothing(monkeypatch, reviews_db):
    at = review(monkeypatch)
    assert any("Enter your name" in shown(i.value) for i in at.info)
    assert not [b for b in at.button if b.key and b.key.startswith("verdict_")]
    at = review(monkeypatch, reviewer="<img src=x>")
    assert any("reviewer name" in shown(w.value) for w in [*at.info, *at.warning])
    assert not [b for b in at.button if b.key and b.key.startswith("verdict_")]


def test_with_a_secret_only_a_valid_invite_may_store(monkeypatch, reviews_db):
    monkeypatch.setenv("CARTOGRAPHY_INVITE_SECRET", "team-secret")
    at = review(monkeypatch, reviewer="ann")  # no token
    assert any("Read-only" in shown(w.value) for w in at.warning)
    assert not [b for b in at.button if b.key and b.key.startswith("verdict_")]
    at = review(monkeypatch, reviewer="ann", token=sign(b"team-secret", "bob"))  # bob's token
    assert any("Read-only" in shown(w.value) for w in at.warning)
    at = review(monkeypatch, reviewer="ann", token=sign(b"team-secret", "ann"))
    assert not at.warning and [b for b in at.button if b.key and b.key.startswith("verdict_correct_")]
    # an invite limited to the hard-to-learn subset of this run: valid there, read-only elsewhere
    link = invite_link("http://h/", b"team-secret", "ann", [("run", RUN), ("subset", "hard-to-learn")])
    from urllib.parse import parse_qsl, urlsplit

    q = dict(parse_qsl(urlsplit(link).query))
    at = review(monkeypatch, reviewer="ann", token=q["token"], scope=q["scope"])
    assert not at.warning and [b for b in at.button if b.key and b.key.startswith("verdict_correct_")]
    at = run_app(monkeypatch, run=RUN, subset="ambiguous", page="review", reviewer="ann", **{
        "token": q["token"], "scope": q["scope"]})  # fmt: skip
    assert any("your invite is for another view" in shown(w.value) for w in at.warning)


def test_reviews_tab_counts_agreement_and_export(monkeypatch, reviews_db):
    queue, _ = hard_queue()
    from cartography_core.reviews import Verdict

    with ReviewStore(reviews_db) as store:
        store.add(
            [
                Verdict("trec", queue[0], "ann", "wrong", new_label="NUM", gold="x"),
                Verdict("trec", queue[0], "bob", "wrong", new_label="NUM", gold="x"),
                Verdict("trec", queue[1], "ann", "remove"),
                Verdict("trec", queue[1], "bob", "correct", gold="y"),
            ]
        )
    at = run_app(monkeypatch, run="trec/*", tab="Reviews")
    assert at.metric[0].label == "Cohen's kappa"
    dis = next(d.value for d in at.dataframe if "votes" in d.value.columns)  # the disagreements
    assert dis["example_id"].tolist() == [queue[1]]
    assert np.isfinite(float(at.metric[0].value))
    assert not [c for c in at.get("vega_lite_chart")]  # only the tab shown runs
    # the verdict filter reaches the table: the one relabeled example
    at = run_app(monkeypatch, run="trec/*", verdict="relabeled", subset="all", color="verdict")
    assert table(at)["id"].tolist() == [queue[0]]
    # the map coloured by verdict: every drawn point carries its example's consensus
    datasets, _ = chart_rows(at)
    drawn = next(t for t in datasets.values() if "verdict" in t.column_names).to_pandas().set_index("id")
    assert drawn.loc[str(queue[0]), "verdict"] == "relabeled"
    assert drawn.loc[str(queue[1]), "verdict"] == "unresolved"
    assert (drawn.drop(index=[str(queue[0]), str(queue[1])])["verdict"] == "unreviewed").all()


def test_comments_and_names_are_plain_text_and_a_link_names_one_example(monkeypatch, reviews_db):
    queue, _ = hard_queue()
    from cartography_core.reviews import Verdict

    planted = "**bold** [x](http://evil.example) <script>alert(1)</script>"
    with ReviewStore(reviews_db) as store:
        store.add(Verdict("trec", queue[2], "bob", "ambiguous", comment=planted))
    at = run_app(monkeypatch, run=RUN, tab="Reviews")  # the owner's table of comments
    comments = next(d.value for d in at.dataframe if "comment" in d.value.columns)
    assert comments["comment"].tolist() == [planted] and comments["annotator"].tolist() == ["bob"]
    # the map page shows the example a link names, and its share link keeps it
    at = run_app(monkeypatch, run=RUN, example=str(queue[2]))
    assert at.text[0].value == text_of(queue[2])
    assert f"example={queue[2]}" in at.code[0].value
    at = run_app(monkeypatch, run=RUN, example="999999")
    assert any("example=999999 is not in this run" in shown(w.value) for w in at.warning)


def test_a_one_megabyte_comment_is_refused_whole(reviews_db):
    from cartography_core import LogError
    from cartography_core.reviews import Verdict, check_verdict

    with pytest.raises(LogError, match=r"comment has 1,048,576 characters; at most 2,000 are kept"):
        check_verdict(Verdict("trec", 1, "ann", "correct", comment="x" * 2**20), np.array([1]), ["a", "b"])


def test_a_link_naming_a_view_that_is_not_here_is_read_only(monkeypatch, reviews_db):
    at = run_app(monkeypatch, run="trec/seed-7", subset="hard-to-learn", page="review", reviewer="zed")
    assert any("run='trec/seed-7' is not one of the choices" in shown(w.value) for w in at.warning)
    assert any("Read-only: this link names a view that is not here" in shown(w.value) for w in at.warning)
    assert not [b for b in at.button if b.key and b.key.startswith("verdict_")]
    at = review(monkeypatch, reviewer="zed", review_filter="zzz")
    assert any("review_filter='zzz'" in shown(w.value) for w in at.warning)


def test_review_is_blind_until_ones_own_verdict_and_next_records_nothing(monkeypatch, reviews_db):
    queue, _ = hard_queue()
    from cartography_core.reviews import Verdict

    with ReviewStore(reviews_db) as store:
        store.add(Verdict("trec", queue[0], "ann", "remove", comment="ann's reason"))
    at = review(monkeypatch, reviewer="bob")
    assert not [d for d in at.dataframe if "comment" in d.value.columns]  # ann's verdict is not shown yet
    verdict(at, "wrong").click().run()  # no class chosen: refused, nothing stored
    assert any("Choose the right class first" in shown(e.value) for e in at.error)
    at.button(key="next").click().run()
    assert shown(at.subheader[0].value).startswith(f"Example {queue[1]} (2 of")
    with ReviewStore(reviews_db) as store:
        assert store.history("trec")["annotator"].to_pylist() == ["ann"]
    at = review(monkeypatch, reviewer="bob", example=str(queue[0]))
    verdict(at, "correct").click().run()
    at = review(monkeypatch, reviewer="bob", example=str(queue[0]), review_filter="my verdicts")
    comments = next(d.value for d in at.dataframe if "comment" in d.value.columns)
    assert sorted(comments["annotator"]) == ["ann", "bob"] and "ann's reason" in comments["comment"].tolist()
