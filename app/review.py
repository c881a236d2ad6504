"""The review page (``page=review``): one example of the link's subset at a time, and the annotator's verdict.

Presentation only: the queue is the subset the sidebar describes (computed in ``main``); verdicts are checked
and stored by ``cartography_core.reviews``; consensus and agreement come from there too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import streamlit as st

from app import state
from cartography_core import LogError
from cartography_core.dashboard.catalog import LoadedRun
from cartography_core.reviews import ReviewStore, Verdict, check_name, check_verdict
from cartography_core.reviews.store import COMMENT_MAX

FILTERS = ("unreviewed only", "all", "my verdicts")
BUTTONS = (  # verdict, label, keyboard shortcut
    ("correct", "Label is correct", "Y"),
    ("wrong", "Wrong label", "W"),
    ("ambiguous", "Ambiguous", "A"),
    ("remove", "Not a valid example", "X"),
    ("skip", "Skip", "S"),
)


@dataclass(frozen=True)
class Queue:
    """The examples under review: rows of the run's table in the subset's order, and the run's id index."""

    rows: np.ndarray  # (n,) row indices, hardest first (or as sorted)
    index: pd.Index  # (N,) the table's ids, their own type; built once per run and shared (its hash table too)

    def id_at(self, pos: int):
        """The id of the queue's ``pos``-th example, as a Python int or str."""
        value = self.index[int(self.rows[pos])]
        return value.item() if hasattr(value, "item") else value

    def marked(self, ids) -> np.ndarray:
        """(n,) bool: which queue positions hold one of ``ids`` (a few; looked up in the shared index)."""
        at = self.index.get_indexer(pd.Index(list(ids))) if len(ids) else np.empty(0, dtype=np.int64)
        hit = np.zeros(len(self.index), dtype=bool)
        hit[at[at >= 0]] = True
        return hit[self.rows]


def reviewer_gate(secret: bytes | None, scope_ok: Callable[[str], bool], token_ok: Callable[[str, str], bool]):
    """(name or None, whether verdicts may be stored, a notice or None): the name is asked once and kept in
    the URL; with an invite secret, only a valid token for that name (and the view it names) may store."""
    name = st.text_input(
        "Your name", key="reviewer", bind="query-params", max_chars=64, help="stored with each verdict you give"
    )
    if not name.strip():
        return None, False, "Enter your name above to review; it stays in this page's address."
    try:
        name = check_name(name)
    except LogError as exc:
        return None, False, str(exc)
    if secret is None:
        return name, True, None
    scope = st.query_params.get("scope", "")
    if not token_ok(name, st.query_params.get("token", "")):
        return (
            name,
            False,
            (
                "Read-only: this server accepts verdicts only from invite links, and this link carries no valid "
                f"invite for {name!r}. Ask whoever sent it for one (python -m cartography_core invite NAME)."
            ),
        )
    if not scope_ok(scope):
        return name, False, "Read-only: your invite is for another view; open the invite link again."
    return name, True, None


def page(
    *,
    run: LoadedRun,
    run_label: str,
    dataset: str,
    queue: Queue,
    store: ReviewStore | None,
    store_problem: str | None,
    latest: pa.Table,
    secret: bytes | None,
    scope_ok: Callable[[str], bool],
    token_ok: Callable[[str, str], bool],
    trajectory: Callable[[object], None],
    queue_text: str,
    link_problems: list[str],
) -> None:
    st.title(f"Review: {state.md_escape(run_label)}")
    st.caption(state.md_escape(f"{queue_text} Verdicts are kept for the dataset '{dataset}', shared by its runs."))
    if store is None:
        st.error(state.md_escape(f"Reviews are off: {store_problem}"))
    for problem in link_problems:
        st.warning(state.md_escape(problem))
    name, may_store, notice = reviewer_gate(secret, scope_ok, token_ok)
    if link_problems and may_store:
        may_store, notice = (
            False,
            (
                "Read-only: this link names a view that is not here (above), so verdicts given here could be filed "
                "under another run or subset. Ask whoever sent it for a current link."
            ),
        )
    if notice:
        (st.info if name is None else st.warning)(state.md_escape(notice))
    if not len(queue.rows):
        st.info("No example matches this view: change the subset, class or search in the sidebar.")
        return

    for key, show in (("review_saved", st.success), ("review_error", st.error)):
        if key in st.session_state:
            show(state.md_escape(st.session_state.pop(key)))
    by_me = latest.filter(pa.compute.equal(latest["annotator"], name)) if name else latest.slice(0, 0)
    mine = dict(zip(by_me["example_id"].to_pylist(), by_me["verdict"].to_pylist()))
    votes = latest.filter(pa.compute.not_equal(latest["verdict"], "skip"))["example_id"].to_pandas()
    n = len(queue.rows)
    done_by_me = queue.marked([k for k, v in mine.items() if v != "skip"])
    all_done = int(queue.marked(votes.unique()).sum())
    st.progress(
        int(done_by_me.sum()) / n,
        text=f"You: {int(done_by_me.sum()):,} of {n:,} reviewed · everyone: {all_done:,} of {n:,}",
    )

    which = st.radio("Show", FILTERS, key="review_filter", bind="query-params", horizontal=True)
    allowed = {"unreviewed only": ~done_by_me, "all": np.ones(n, dtype=bool), "my verdicts": done_by_me}[which]
    positions = np.flatnonzero(allowed)
    pos = _current(queue, positions)
    if pos is None:
        st.success(f"Nothing left here: you have reviewed every example of this queue ({n:,}).")
        return
    current = queue.id_at(pos)
    row = int(queue.rows[pos])
    _example(run, row, pos, n, mine.get(current), by_me, current, trajectory)
    here = latest.filter(pa.compute.equal(latest["example_id"].cast(pa.string()), str(current)))
    if here.num_rows and (mine.get(current) is not None or not may_store):  # blind until one's own verdict
        st.caption("Verdicts on this example (each annotator's latest; names and comments as plain text):")
        st.dataframe(
            here.select(["annotator", "verdict", "new_label", "comment", "created_at"]).to_pandas(), hide_index=True
        )

    if name is None or not may_store or store is None:
        return
    gold, predicted = run.label_names[_at(run, "label", row)], run.label_names[_at(run, "pred_label", row)]
    others = [c for c in run.label_names if c != gold]
    st.selectbox(
        "The right class (for 'Wrong label')",
        others,
        index=None,  # no default: a suggestion would anchor the annotator
        placeholder="choose the class this example belongs to",
        key=f"new_label_{current}",
    )
    st.text_area("Comment (optional)", key="comment", max_chars=COMMENT_MAX, height=68)
    seen = {c: float(run.table[c][row].as_py()) for c in ("confidence", "variability", "correctness")}
    cols = st.columns(len(BUTTONS))
    for col, (verdict, label, key) in zip(cols, BUTTONS):
        v = Verdict(dataset, current, name, verdict, run=run.run_id, gold=gold, predicted=predicted, **seen)
        col.button(
            label,  # Streamlit shows the shortcut's key beside the label
            key=f"verdict_{verdict}_{current}",  # per example: a stale key press cannot reach the next one
            shortcut=key,
            on_click=_record,
            args=(store, v, f"new_label_{current}", run, queue, positions, pos),
            width="stretch",
        )
    nav = st.columns(6)
    nav[0].button("Previous", key="prev", shortcut="Left", on_click=_go, args=(queue, positions, pos, -1))
    nav[1].button("Next", key="next", shortcut="Right", on_click=_go, args=(queue, positions, pos, +1))
    st.caption(
        "Keys: " + ", ".join(f"{k} {label.lower()}" for _, label, k in BUTTONS) + "; ← and → move without a verdict."
    )


def _current(queue: Queue, positions: np.ndarray) -> int | None:
    """The queue position of the example the URL names, else of the first the filter allows."""
    if "review_example" not in st.session_state:  # a link to one example (example=ID), read once
        st.session_state["review_example"] = st.query_params.get("example")
    if "review_goto" in st.session_state:
        st.session_state["review_example"] = st.session_state.pop("review_goto")
    wanted = st.session_state["review_example"]
    if wanted is not None:
        key = wanted
        if queue.index.dtype.kind in "iu":
            key = int(wanted) if wanted.lstrip("-").isdigit() else None
        row = queue.index.get_indexer([key])[0] if key is not None else -1
        hit = np.flatnonzero(queue.rows == row) if row >= 0 else []
        if len(hit):
            return int(hit[0])
        st.warning(state.md_escape(f"Example {wanted} is not in this view's queue; showing the next one instead."))
    return int(positions[0]) if positions.size else None


def _at(run: LoadedRun, column: str, row: int) -> int:
    return int(run.table[column][row].as_py())


def _example(run, row, pos, n, my_verdict, by_me, current, trajectory) -> None:
    t = run.table
    gold, predicted = run.label_names[_at(run, "label", row)], run.label_names[_at(run, "pred_label", row)]
    st.subheader(f"Example {state.md_escape(current)} ({pos + 1:,} of {n:,} in this queue)")
    if run.text_column:
        st.text(state.example_text(t[run.text_column][row].as_py()))
    else:
        st.caption("This run has no examples file: only the id is known.")
    c = st.columns(5)
    c[0].metric("Gold label", gold)
    c[1].metric("Model predicts", predicted)
    for col, score in zip(c[2:], ("confidence", "variability", "correctness")):
        col.metric(score, f"{t[score][row].as_py():.3f}")
    if my_verdict is not None:
        mine = by_me.filter(pa.compute.equal(by_me["example_id"], pa.scalar(current, by_me["example_id"].type)))
        label = mine["new_label"][0].as_py()
        st.info(
            state.md_escape(
                f"Your verdict: {my_verdict}" + (f" -> {label}" if label else "") + "; a new one replaces it."
            )
        )
    trajectory(current)


def _record(store: ReviewStore, v: Verdict, label_key: str, run: LoadedRun, queue: Queue, positions, pos: int) -> None:
    """Button callback: check and store the verdict, with the class and comment as the widgets hold them at
    the click, then go to the next example of the filtered queue."""
    new_label = st.session_state.get(label_key) if v.verdict == "wrong" else None
    if v.verdict == "wrong" and new_label is None:
        st.session_state["review_error"] = "Choose the right class first, then 'Wrong label'."
        return
    v = replace(v, new_label=new_label, comment=st.session_state.get("comment") or "")
    try:
        store.add(check_verdict(v, run.table["id"], run.label_names))
    except LogError as exc:
        st.session_state["review_error"] = str(exc)
        return
    said = dict((verdict, label) for verdict, label, _ in BUTTONS)[v.verdict]  # the words of the button pressed
    relabel = f" (the right class: {new_label})" if new_label is not None else ""
    st.session_state["review_saved"] = f"Saved: '{said}'{relabel} for example {v.example_id}."
    st.session_state["comment"] = ""
    _go(queue, positions, pos, +1)


def _go(queue: Queue, positions: np.ndarray, pos: int, step: int) -> None:
    """Move to the next (or previous) example of the filtered queue after queue position ``pos``."""
    ahead = positions[positions > pos] if step > 0 else positions[positions < pos][::-1]
    # where one is in the queue lives in Session State, not in the URL: rewriting the URL on each verdict made
    # the browser rerun the page with the key press again (a second verdict, for the next example)
    if ahead.size:
        st.session_state["review_goto"] = str(queue.id_at(int(ahead[0])))
    elif step > 0:
        st.session_state["review_goto"] = None  # the first one left, if any
