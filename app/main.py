"""The dataset-cartography dashboard over a folder of training-dynamics logs.

    streamlit run app/main.py                      # the runs under sample_logs/
    streamlit run app/main.py -- --logs DIR        # or CARTOGRAPHY_LOGS=DIR streamlit run app/main.py
    streamlit run app/main.py -- --reviews-db FILE # annotators' verdicts (else CARTOGRAPHY_REVIEWS_DB, or
                                                   # reviews.sqlite3 in the user's data folder)
    streamlit run app/main.py -- --max-runs R      # runs held in memory at once (else CARTOGRAPHY_MAX_RUNS, 4)

Reads top to bottom: page set-up, cached loaders (all numbers come from ``cartography_core``), sidebar
controls and the subset they describe, then either the review page (``page=review``, ``app/review.py``) or
the tabs: the data map with its examples, per-class panels, the runs, and the reviews. Every control is
bound to a URL parameter, so the address bar (and the share link) carries the whole view.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import streamlit as st

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))  # `streamlit run app/main.py` from a clone, nothing installed

from app import charts, precomputed, review, state  # noqa: E402
from cartography_core import (  # noqa: E402
    REGIONS,
    SCORES,
    LogError,
    RegionThresholds,
    rank_order,
    region_codes,
    region_counts,
    split_half_reliability,
    table_meta,
)
from cartography_core.dashboard.cache import cached_epochs, signature  # noqa: E402
from cartography_core.dashboard.catalog import (  # noqa: E402
    LoadedRun,
    RunListing,
    list_runs,
    load_run,
    public_message,
)
from cartography_core.dashboard.datamap import (  # noqa: E402
    MAX_POINTS,
    TRAJECTORY_INDEX_CELLS,
    RowFilter,
    Trajectories,
    density,
    filter_mask,
    histogram,
    sample_points,
    top_rows,
    trajectory,
)
from cartography_core.examples import different_examples_notice  # noqa: E402
from cartography_core.ingest import training_notice  # noqa: E402
from cartography_core.io import cache_dir, table_bytes  # noqa: E402
from cartography_core.label_issues import count_note, flag_rule, issue_counts, map_note, unlearned_classes  # noqa: E402
from cartography_core.regions import member_names, region_members  # noqa: E402
from cartography_core.reviews import (  # noqa: E402
    OUTCOMES,
    ReviewStore,
    agreement,
    corrected_dataset,
    dataset_name,
    default_db_path,
    disagreements,
    load_secret,
    ls_config,
    ls_tasks,
    outcome_codes,
    resolve,
    token_ok,
)
from cartography_core.reviews.export import predicted_probability  # noqa: E402
from cartography_core.reviews.store import check_db_location, empty_verdicts  # noqa: E402
from cartography_core.scores import VARIABILITY_MAX  # noqa: E402
from cartography_core.select import top_fraction_members  # noqa: E402

log = logging.getLogger("cartography.app")
TABLE_ROWS = 500
PANEL_POINTS = 3_000

# a local image: a ":material/...:" icon would make every browser fetch it from a third-party font host
st.set_page_config(page_title="Dataset cartography", page_icon=str(ROOT_DIR / "app" / "icon.png"), layout="wide")


def server_options() -> tuple[Path, bool, Path, int]:
    """(log root, whether links out of it are followed, reviews database, runs kept in memory): ``--logs DIR``
    / ``CARTOGRAPHY_LOGS``, ``--follow-links`` / ``CARTOGRAPHY_FOLLOW_LINKS=1``, ``--reviews-db FILE`` /
    ``CARTOGRAPHY_REVIEWS_DB``, ``--max-runs R`` / ``CARTOGRAPHY_MAX_RUNS`` (default 4), set by whoever starts
    the server."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--logs")
    parser.add_argument("--follow-links", action="store_true")
    parser.add_argument("--reviews-db")
    parser.add_argument("--max-runs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    root = Path(args.logs or os.environ.get("CARTOGRAPHY_LOGS") or ROOT_DIR / "sample_logs").resolve()
    db = Path(args.reviews_db).expanduser() if args.reviews_db else default_db_path()
    follow = args.follow_links or os.environ.get("CARTOGRAPHY_FOLLOW_LINKS") == "1"
    raw = args.max_runs or os.environ.get("CARTOGRAPHY_MAX_RUNS") or "4"
    if not raw.isdigit() or int(raw) < 1:
        st.error(f"--max-runs / CARTOGRAPHY_MAX_RUNS must be a whole number of runs, at least 1; got {raw!r}.")
        st.stop()
    return root, follow, db, int(raw)


root, FOLLOW_LINKS, REVIEWS_DB, MAX_RUNS = server_options()
VIEW_TTL = 3600  # seconds: a view's shared results (rankings, regions, map layers) are dropped an hour after made


# ---------------------------------------------------------------------------------------------------------
# Cached loaders: keyed by (root, run id, signature of the files) strings; results are shared, read-only, by
# every session. Server memory is bounded by MAX_RUNS: at most MAX_RUNS runs are held, each with at most a few
# views' O(N) results (rankings, region memberships); results a view needs are dropped after VIEW_TTL.


@st.cache_resource(show_spinner="Reading the run and computing its scores...", max_entries=MAX_RUNS)
def load(root: str, run_id: str, sig: str) -> LoadedRun:
    paths = listing.paths(run_id)  # the listing of this rerun: the root is walked once per rerun
    return load_run(root, run_id, cache=cache_dir(), follow_links=FOLLOW_LINKS, paths=paths)


@st.cache_resource(max_entries=16 * MAX_RUNS, ttl=VIEW_TTL)
def map_layers(root: str, run_id: str, sig: str, cls: int | None) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """(points to draw, density bins or None, histograms) of one class (None: all classes)."""
    run = load(root, run_id, sig)
    t = run.table
    rows = None if cls is None else np.flatnonzero(t["label"].to_numpy() == cls)  # None: every row, no gather

    def column(name: str) -> np.ndarray:
        return t[name].to_numpy() if rows is None else t[name].to_numpy()[rows]

    conf, var = column("confidence"), column("variability")
    drawn = sample_points(conf, var)
    drawn = drawn if rows is None else rows[drawn]
    bins = density(var, conf).to_pandas() if conf.size > MAX_POINTS else None
    hists = {
        "confidence": histogram(conf).to_pandas(),
        "variability": histogram(var, hi=VARIABILITY_MAX).to_pandas(),
        "correctness": histogram(column("correctness"), bins=run.n_epochs + 1 if run.n_epochs < 20 else 20).to_pandas(),
    }
    return points_frame(run, drawn), bins, hists


def points_frame(run: LoadedRun, rows: np.ndarray) -> pd.DataFrame:
    frame = charts.map_points(run.table.take(pa.array(rows)), run.label_names, run.text_column)
    frame.insert(0, "row", rows)  # into the run's table: per-row overlays (the reviews' verdicts) join on it
    return frame


@st.cache_resource(max_entries=MAX_RUNS, ttl=VIEW_TTL)
def class_points(root: str, run_id: str, sig: str) -> pd.DataFrame:
    """Points of every class for the per-class panels, at most PANEL_POINTS a class."""
    run = load(root, run_id, sig)
    t = run.table
    labels, conf, var = t["label"].to_numpy(), t["confidence"].to_numpy(), t["variability"].to_numpy()
    rows = []
    for c in np.unique(labels):  # a loop over classes, not examples
        members = np.flatnonzero(labels == c)
        rows.append(members[sample_points(conf[members], var[members], max_points=PANEL_POINTS, size=PANEL_POINTS)])
    return points_frame(run, np.concatenate(rows))


@st.cache_resource
def background() -> ThreadPoolExecutor:
    """Threads shared by the server's sessions for work a page can draw other parts during (two: one session's
    long sort does not hold up another's)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="cartography-app")


@st.cache_resource(max_entries=4 * MAX_RUNS, ttl=VIEW_TTL)
def ranking(root: str, run_id: str, sig: str, metric: str, hardest: bool) -> Future:
    """``rank_order``, sorted on the background thread (seconds at 10M rows; numpy lets go of the GIL while it
    sorts), so that a first page draws its map meanwhile; ``.result()`` where the order is needed."""
    return background().submit(rank_order, load(root, run_id, sig).table, metric, hardest=hardest)


@st.cache_resource(max_entries=MAX_RUNS)
def id_index(root: str, run_id: str, sig: str) -> pd.Index:
    """The run's ids as an index (id -> table row), its hash table built once and shared by every session."""
    index = pd.Index(load(root, run_id, sig).table["id"].to_numpy(zero_copy_only=False))
    index.get_indexer(index[:1])  # build the hash table now, not in a session's rerun
    return index


@st.cache_resource(max_entries=4 * MAX_RUNS, ttl=VIEW_TTL)
def membership(root: str, run_id: str, sig: str, thresholds: RegionThresholds | None, q: int) -> np.ndarray:
    """(len(REGIONS), N) bool, shared by every session showing the same run and rule: one region per example
    under ``thresholds``, else the top-q% subsets, which may overlap."""
    t = load(root, run_id, sig).table
    if thresholds is not None:
        return region_members(region_codes(t["confidence"].to_numpy(), t["variability"].to_numpy(), thresholds))
    return top_fraction_members(t, q / 100)


@st.cache_resource(max_entries=16 * MAX_RUNS, ttl=VIEW_TTL)
def region_table(root: str, run_id: str, sig: str, thresholds: RegionThresholds | None, q: int) -> pd.DataFrame:
    """Examples per class and region under one rule, shared like ``membership``."""
    run = load(root, run_id, sig)
    members = membership(root, run_id, sig, thresholds, q)
    return region_counts(members, run.table["label"].to_numpy(), run.label_names).to_pandas()


@st.cache_resource(max_entries=MAX_RUNS)
def issue_table(root: str, run_id: str, sig: str) -> tuple[pd.DataFrame, str]:
    """Likely label errors per class (``label_issues.issue_counts``) and the warning about classes the model
    did not learn ("" if none), shared by every session."""
    run = load(root, run_id, sig)
    counts = issue_counts(run.table, run.label_names)
    return counts.to_pandas(), unlearned_classes(counts)


@st.cache_resource
def review_store(path: str) -> ReviewStore:
    """One connection to the verdicts database for every session (the store serialises its use)."""
    return ReviewStore(path)


def open_reviews() -> tuple[ReviewStore | None, str | None]:
    """(the verdicts database, None), or (None, one sentence) when it cannot be used."""
    try:
        return review_store(str(check_db_location(REVIEWS_DB, [root]))), None
    except (LogError, OSError) as exc:
        log.warning("reviews database %s cannot be used: %s", REVIEWS_DB, exc)
        return None, public_message(exc if isinstance(exc, LogError) else LogError(str(exc)), root)


@st.cache_resource(max_entries=8 * MAX_RUNS, show_spinner="Reading every epoch once, for the examples' trajectories...")
def trajectory_index(root: str, run_id: str, sig: str, k: int) -> Trajectories | None:
    """The ``k``-th run's trajectories of every example, shared by every session (see ``Trajectories``):
    memory-mapped from the disk cache, where scoring kept them; else read from the logs when N x E is at most
    ``TRAJECTORY_INDEX_CELLS``; else None (each example's epochs are then read alone)."""
    run = load(root, run_id, sig)
    t = run.per_run[k]
    ids, labels = t["id"].to_numpy(zero_copy_only=False), t["label"].to_numpy()
    matrix = cached_epochs(run.runs[k], cache_dir())
    if matrix is not None and matrix.p_gold.shape[1] == t.num_rows:
        return Trajectories.from_matrix(matrix, ids, labels)
    if t.num_rows * len(run.runs[k].epochs) <= TRAJECTORY_INDEX_CELLS:
        return Trajectories.read(run.runs[k], ids, labels)
    return None


@st.cache_data(max_entries=256, show_spinner="Reading the example's epochs...")
def trajectories(root: str, run_id: str, sig: str, example_id: int | str) -> pd.DataFrame:
    run = load(root, run_id, sig)
    names = np.asarray(run.label_names, dtype=object)
    frames = []
    for k, r in enumerate(run.runs):
        try:
            index = trajectory_index(root, run_id, sig, k)
            # without an index (too large for memory, no disk cache): read the epochs for this example alone
            traj = (index.of(example_id) if index is not None else trajectory(r, example_id)).to_pandas()
        except LogError as exc:  # one of several pooled runs did not log this example, or its files changed
            log.info("trajectory of %r in %s: %s", example_id, r.path, exc)
            continue
        traj["run"] = r.path.name
        traj["predicted"] = names[traj["pred"].to_numpy()]
        frames.append(traj)
    if not frames:
        raise LogError(f"the epochs of example {example_id!r} cannot be read (the run's files changed?)")
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------------------
# Empty and error states


if "raw_query" not in st.session_state:  # the link as opened, before bound widgets drop values they refuse
    st.session_state.raw_query = {k: st.query_params.get_all(k) for k in st.query_params}
listing: RunListing = list_runs(root, follow_links=FOLLOW_LINKS)  # once per rerun
ids = list(listing.ids)
for problem in listing.skipped:  # the operator's log names them; the page says only how many
    log.warning("under %s: %s", root, problem)
if not ids:
    st.title("Dataset cartography")
    st.info(
        (
            f"The log folder {state.md_escape(root.name)} does not exist"
            if not root.exists()
            else f"{state.md_escape(root.name)} is a file, not a folder of runs"
            if not root.is_dir()
            else f"No training-dynamics logs under the folder {state.md_escape(root.name)}"
        )
        + (
            f" ({len(listing.skipped)} folders could not be read; the server's log names them)"
            if listing.skipped
            else ""
        )
        + ". Point the app at a folder of runs with "
        "`streamlit run app/main.py -- --logs DIR` (or `CARTOGRAPHY_LOGS=DIR`); a run folder holds "
        "`dynamics/epoch_<e>.parquet` files or allenai's `training_dynamics/dynamics_epoch_<e>.jsonl`. "
        "`python -m cartography_core train` makes one from a labeled CSV."
    )
    st.stop()


# ---------------------------------------------------------------------------------------------------------
# Sidebar controls


def open_view(run_id: str) -> tuple[str, LoadedRun | None, str | None]:
    """(signature, loaded run, None), or (signature, None, one sentence for the browser) when it cannot be
    read: this is the boundary where any failure becomes a notice and the server's log gets the details."""
    sig = ""
    try:
        sig = signature(listing.paths(run_id))
        return sig, load(str(root), run_id, sig), None
    except Exception as exc:
        log.warning("run %r under %s cannot be read: %s", run_id, root, exc, exc_info=not isinstance(exc, LogError))
        return sig, None, public_message(exc, root)


with st.sidebar:
    # the URL holds the option itself (a format_func would put its label there): page=review
    page = st.radio("Page", state.PAGES, key="page", bind="query-params", horizontal=True)
    st.header("Run")
    run_id = st.selectbox(
        "Run",
        ids,
        key="run",
        bind="query-params",
        format_func=lambda r: root.name if r == "." else r,  # --logs names a run itself
        help="`<dataset>/*` is the mean over the dataset's runs",
        on_change=lambda: st.query_params.pop("example", None),  # another run's example is not this run's
    )
    run_name = root.name if run_id == "." else run_id
    if listing.skipped:
        st.caption(f"{len(listing.skipped)} folders under the log root could not be read; the server's log names them.")
    precomputed_view = run_id in listing.datasets  # statistics scored on a cluster: a page of its own
    sig, run, failure = ("", None, None) if precomputed_view else open_view(run_id)
if precomputed_view:
    if page != state.PAGES[0]:
        st.info("A precomputed statistics dataset has the map page only; reviews need the run's logs.")
    try:
        precomputed.show(str(root / run_id), signature(listing.paths(run_id)), run_name, ids)
    except Exception as exc:  # the boundary: a notice for the browser, the details for the server's log
        log.warning("dataset %r under %s cannot be read: %s", run_id, root, exc, exc_info=not isinstance(exc, LogError))
        st.error(
            f"Run {state.md_escape(run_id)} cannot be read: {state.md_escape(public_message(exc, root))} "
            "Choose another run in the sidebar; the server's log has the details."
        )
    st.stop()
if run is None:
    st.title(f"Data map: {state.md_escape(run_name)}")
    for notice in state.url_notices(st.session_state.pop("raw_query", {}), {"run": state.run_param(ids)}):
        st.warning(state.md_escape(notice))
    st.error(
        f"Run {state.md_escape(run_id)} cannot be read: {state.md_escape(failure)} "
        "Choose another run in the sidebar; the server's log has the details."
    )
    st.stop()


@dataclass(frozen=True)
class ViewState:
    """What the sidebar chose: the controls that shape the map, its regions and its brush."""

    spec: dict[str, state.Param]  # the URL parameters of this run's view
    sortable: list[str]  # the scores this run defines
    cls_name: str
    cls: int | None  # class index, None for all classes
    by_threshold: bool  # threshold rule, else the paper's top q%
    thresholds: RegionThresholds
    q: int
    var_range: tuple[float, float]
    conf_range: tuple[float, float]


def sidebar_controls(run: LoadedRun) -> ViewState:
    """The class, region and brush controls, each bound to its URL parameter."""
    sortable = [
        m for m in SCORES if m in run.table.column_names and (run.table[m].null_count == 0 or m.endswith("_epoch"))
    ]
    spec = state.params(ids, run.label_names, sortable)
    cls_name = st.selectbox("Class", spec["cls"].choices, key="cls", bind="query-params")

    st.header("Regions")
    by_threshold = st.radio("Rule", state.RULES, key="rule", bind="query-params", horizontal=True) == state.RULES[0]
    threshold_labels = {
        "amb_var": "Ambiguous: variability at least",
        "easy_conf": "Easy-to-learn: confidence at least",
        "hard_conf": "Hard-to-learn: confidence below",
    }
    amb_var, easy_conf, hard_conf = (
        st.slider(label, *spec[k].bounds, spec[k].default, 0.01, key=k, bind="query-params", disabled=not by_threshold)
        for k, label in threshold_labels.items()
    )
    q = st.slider(
        "Top q% by metric (the paper's subsets)",
        *spec["q"].bounds,
        spec["q"].default,
        1,
        key="q",
        bind="query-params",
        disabled=by_threshold,
    )
    thresholds, clamped = RegionThresholds.lenient(amb_var, easy_conf, hard_conf)
    if by_threshold and clamped:
        st.warning(clamped)

    st.header("Brush")
    st.caption("Drag a rectangle on the map, or set the ranges; choose the subset 'brush' to list it.")
    var_range, conf_range = (
        st.slider(
            label,
            *spec[k].bounds,
            step=0.005,
            key=k,
            bind="query-params",
            # a default only until a brush sets the value through Session State (both would be a warning)
            **({} if k in st.session_state else {"value": spec[k].default}),
        )
        for k, label in (("var_range", "Variability range"), ("conf_range", "Confidence range"))
    )
    cls = None if cls_name == state.ALL_CLASSES else run.label_names.index(cls_name)
    return ViewState(spec, sortable, cls_name, cls, by_threshold, thresholds, q, var_range, conf_range)


with st.sidebar:
    view_state = sidebar_controls(run)
    st.header("Examples")
    subset = st.selectbox("Subset", state.SUBSETS, key="subset", bind="query-params")
    metric = st.selectbox(
        "Sort by", view_state.sortable, key="sort", bind="query-params", help="docs/scores.md defines each score"
    )
    order = st.radio("Order", state.ORDERS, key="order", bind="query-params", horizontal=True)
    search = st.text_input(
        "Search the text", key="search", bind="query-params", placeholder="words in the example's text"
    )
    verdict_filter = st.selectbox(
        "Reviewed as", state.VERDICT_FILTERS, key="verdict", bind="query-params", help="the annotators' consensus"
    )
    color_by = st.radio("Colour the map by", state.COLORS, key="color", bind="query-params", horizontal=True)
spec = view_state.spec


def on_brush() -> None:
    """Copy the map's brush into the bound range sliders (so the URL carries it) and list the brushed rows."""
    box = st.session_state["map"].selection.get(charts.BRUSH) or {}
    if "variability" in box and "confidence" in box:
        for key, axis in (("var_range", "variability"), ("conf_range", "confidence")):
            lo, hi = sorted(box[axis])
            bottom, top = spec[key].bounds
            st.session_state[key] = (max(bottom, round(lo, 3)), min(top, round(hi, 3)))
        st.session_state["subset"] = "brush"


# ---------------------------------------------------------------------------------------------------------
# The subset the sidebar describes: the table's rows, the downloads and the review queue

table = run.table
rule = view_state.thresholds if view_state.by_threshold else None  # None: the top-q% subsets
members = membership(str(root), run_id, sig, rule, view_state.q)
store, store_problem = open_reviews()
dataset = dataset_name(listing.paths(run_id)[0])  # the folder holding the run: its runs share verdicts
latest = store.latest(dataset) if store is not None else None


@functools.cache  # per rerun (redefined each run): computed only where the verdicts' consensus is shown
def consensus() -> tuple[pd.DataFrame | None, np.ndarray | None]:
    """(resolved verdicts, (N,) outcome codes), or (None, None) without a database."""
    if latest is None:
        return None, None
    resolved = resolve(latest)
    return resolved, outcome_codes(id_index(str(root), run_id, sig), resolved)


row_filter = RowFilter(
    region=REGIONS.index(subset) if subset in REGIONS else None,
    var_range=view_state.var_range if subset == "brush" else None,
    conf_range=view_state.conf_range if subset == "brush" else None,
    label=view_state.cls,
    search=search.strip(),
    label_issue=subset == state.LIKELY_MISLABELED,
)
mask = filter_mask(table, row_filter, members=members, texts=run.texts())
if verdict_filter != "any" and consensus()[1] is not None:
    mask &= consensus()[1] == OUTCOMES.index(verdict_filter)
ranked = ranking(str(root), run_id, sig, metric, order == state.ORDERS[0])  # sorting from now on


@functools.cache  # per rerun, like consensus(): awaited where first needed
def subset_rows() -> np.ndarray:
    """Every match, hardest first: the table's head, the downloads, the review queue."""
    return top_rows(ranked.result(), mask)


view_values = {k: st.session_state.get(k) for k in spec}


def row_of(text: str) -> int | None:
    """The table row of the example whose id reads ``text`` in a URL (ids keep their type), or None."""
    ids = table["id"]
    if pa.types.is_integer(ids.type):
        try:
            value = pa.scalar(int(text), ids.type)
        except (ValueError, OverflowError, pa.ArrowInvalid):
            return None
    else:
        value = pa.scalar(text, ids.type)
    at = pc.index(ids, value).as_py()
    return at if at >= 0 else None


def show_trajectory(example_id: int | str) -> None:
    """The example's gold-class probability per epoch, or a notice when its epochs cannot be read."""
    try:
        traj = trajectories(str(root), run_id, sig, example_id)
        st.vega_lite_chart(traj, charts.trajectory(traj), width="stretch")
    except LogError as exc:
        log.warning("trajectory of %r in %s: %s", example_id, run_id, exc)
        st.warning(state.md_escape(public_message(exc, root)))


def on_pick(key: str, shown_ids: list[str]) -> None:
    """A row of the examples table ``key`` ticked or unticked: the URL's ``example=`` (the example shown below
    the table, and what the share link names) becomes the ticked row's id, or is removed."""
    picked = st.session_state[key].selection.rows
    if picked:
        st.query_params["example"] = shown_ids[picked[0]]
    else:
        st.query_params.pop("example", None)


@st.fragment
def examples_panel() -> None:
    """The examples table, the selected example, downloads and share links: a click on a row reruns this
    part of the page only, while the map, histograms and counts above stay as drawn."""
    st.subheader("Examples")
    rows, n_match = subset_rows()[:TABLE_ROWS], len(subset_rows())
    st.caption(
        f"{n_match:,} {'example matches' if n_match == 1 else 'examples match'}; showing the first {len(rows):,} "
        f"by {metric} ({SCORES[metric].harder} is harder; {order}). Text is shown as plain text."
    )
    shown_rows = table.take(pa.array(rows, type=pa.int64()))
    names = np.asarray(run.label_names, dtype=object)
    view = pd.DataFrame({"id": shown_rows["id"].to_pandas()})  # the ids' own type, to the trajectory
    if run.text_column:
        view["text"] = shown_rows[run.text_column].to_pandas()
    view["gold"] = names[shown_rows["label"].to_numpy()]
    view["predicted"] = names[shown_rows["pred_label"].to_numpy()]
    view["region"] = member_names(members[:, rows])
    for col in dict.fromkeys([metric, "confidence", "variability", "correctness", "forgetting_events", "aum"]):
        view[col] = shown_rows[col].to_pandas()
    # a table of other rows is another widget: a tick is never carried over to whatever row takes its place
    key = "table-" + hashlib.sha1(f"{run_id}\0{sig}\0".encode() + np.ascontiguousarray(rows).tobytes()).hexdigest()
    st.dataframe(
        view,
        hide_index=True,
        key=key,
        on_select=functools.partial(on_pick, key, [str(v) for v in view["id"]]),
        selection_mode="single-row",
        column_config={"text": st.column_config.TextColumn(width="large")},
    )

    example = st.query_params.get("example")  # the one example shown below the table: ticked, or the link's
    shown_row = None if example is None else row_of(example)
    if example is not None and shown_row is None:
        st.warning(state.md_escape(f"The link's example={example} is not in this run."))
    if shown_row is not None:
        example_id = table["id"][shown_row].as_py()  # a Python int or str
        gold_label = table["label"][shown_row].as_py()
        e = {
            "id": state.md_escape(example_id),
            "gold": state.md_escape(names[gold_label]),
            "predicted": state.md_escape(names[table["pred_label"][shown_row].as_py()]),
            "region": state.md_escape(member_names(members[:, [shown_row]])[0]),
        }
        filed = table["label_examples"][shown_row].as_py() if "label_examples" in table.column_names else None
        note = ""  # a label corrected in the examples file after training (the scores rate the logged one)
        if filed is not None and filed not in (gold_label, names[gold_label]):
            said = names[filed] if isinstance(filed, int) and 0 <= filed < len(names) else filed
            note = f" (the examples file says {state.md_escape(said)})"
        st.markdown(
            f"**Example {e['id']}**: gold **{e['gold']}**{note}, predicted **{e['predicted']}**, region {e['region']}"
        )
        if not mask[shown_row]:  # the subset's rows are those the mask keeps
            st.caption(
                f"This example is not among the {n_match:,} that match the view above (the view changed after it "
                "was selected, or the link named it). Select a row to show another."
            )
        if run.text_column:
            st.text(state.example_text(table[run.text_column][shown_row].as_py()))
        show_trajectory(example_id)
    else:
        st.caption("Select a row to see its text and its gold-class probability, epoch by epoch.")

    st.subheader("Download")
    desc = state.file_slug(
        run_id,
        view_state.cls_name if view_state.cls is not None else "",
        subset,
        f"top-{view_state.q}pct" if subset in REGIONS and not view_state.by_threshold else "",  # the paper's rule
        search.strip()[:30],
    )
    digest = hashlib.sha1(
        repr(
            (run_id, sig, view_state.by_threshold, view_state.thresholds, view_state.q, row_filter, metric, order)
        ).encode()
    ).hexdigest()[:8]

    def subset_table() -> pa.Table:
        out = table.take(pa.array(subset_rows(), type=pa.int64()))
        return out.append_column("region", pa.array(member_names(members[:, subset_rows()]), type=pa.string()))

    cols = st.columns(5)
    for col, fmt, mime in zip(
        cols[:3], (".csv", ".jsonl", ".parquet"), ("text/csv", "application/jsonl", "application/octet-stream")
    ):
        col.download_button(
            f"Subset ({n_match:,}) {fmt[1:]}",
            data=lambda fmt=fmt: table_bytes(subset_table(), fmt),  # built only when clicked
            file_name=f"{desc}_{digest}{fmt}",
            mime=mime,
            on_click="ignore",
            key=f"dl_subset{fmt}",
        )
    for col, fmt in zip(cols[3:], (".csv", ".parquet")):
        col.download_button(
            f"All scores {fmt[1:]}",
            data=lambda fmt=fmt: table_bytes(table, fmt),
            file_name=f"{state.file_slug(run_id, 'all-scores')}_{sig.split(':')[-1][-8:]}{fmt}",
            on_click="ignore",
            key=f"dl_all{fmt}",
        )

    st.subheader("Share this view")
    pairs = state.share_query(view_values, spec)
    if shown_row is not None:
        pairs.append(("example", example))
    base = (st.context.url or "").split("?")[0]
    review_pairs = [(k, v) for k, v in pairs if k not in ("page", "tab")] + [("page", "review")]
    # in a popover: its links are drawn (and the code block's highlighter loaded) only when it is opened,
    # not by every annotator's browser that opens the page
    with st.popover("Links to this view", width="stretch"):
        st.caption("The link opens this run, class, regions, brush, subset, sort, search and tab.")
        st.code(base + (f"?{urlencode(pairs)}" if pairs else ""), language=None)
        st.caption(
            "For annotators: this link opens the review page over the same examples, one at a time (each is "
            "asked for a name once; with an invite secret set, send `python -m cartography_core invite NAME` "
            "links)."
        )
        st.code(base + "?" + urlencode(review_pairs), language=None)


title = run_name if not run_id.endswith("/*") else f"{run_id[:-2]}: mean over {len(run.runs)} runs"

if page == "review":
    if "raw_query" in st.session_state:  # the review page refuses to file verdicts under a view the link did not name
        raw = st.session_state.pop("raw_query")
        st.session_state["link_problems"] = state.url_notices(raw, spec) + [
            f"The link's review_filter={v[-1]!r} is not one of the choices here; showing the default instead."
            for k, v in raw.items()
            if k == "review_filter" and v and v[-1] not in review.FILTERS
        ]
    secret = load_secret()
    review.page(
        run=run,
        run_label=title,
        dataset=dataset,
        queue=review.Queue(subset_rows(), id_index(str(root), run_id, sig)),
        store=store,
        store_problem=store_problem,
        latest=latest if latest is not None else empty_verdicts(),
        secret=secret,
        scope_ok=lambda scope: not scope or state.scope_matches(scope, view_values, spec),
        token_ok=lambda name, token: token_ok(secret, name, token, st.query_params.get("scope", "")),
        trajectory=show_trajectory,
        link_problems=st.session_state.get("link_problems", []),
        queue_text=(
            f"{len(subset_rows()):,} examples: {subset} of "
            + ("all classes" if view_state.cls is None else f"class {view_state.cls_name}")
            + f", sorted by {metric} ({order})"
            + (f", text matching {search.strip()!r}" if search.strip() else "")
            + (f", reviewed as {verdict_filter}" if verdict_filter != "any" else "")
            + "."
        ),
    )
    st.stop()

# ---------------------------------------------------------------------------------------------------------
# Header

st.title(f"Data map: {state.md_escape(title)}")
meta = run.runs[0].meta
spans = sorted({r.n_epochs for r in run.runs})  # pooled runs may differ (one stopped early)
facts = [
    f"{run.n:,} examples",
    f"{spans[0]}{f' to {spans[-1]}' if len(spans) > 1 else ''} epochs",
    f"{len(run.label_names)} classes",
]
if meta.get("pass"):
    facts.append(f"logits from the {meta['pass']} pass")
if meta.get("model"):
    facts.append(f"model {meta['model']}")
if not run.has_examples:
    facts.append("no examples file: ids only")
st.caption(state.md_escape(" · ".join(facts)))
if run.label_notice:
    st.warning(state.sentence(run.label_notice))
for r in run.runs:
    if r.recording_notice:
        st.warning(state.md_escape(f"{r.path.name if len(run.runs) > 1 else 'This run'}: {r.recording_notice}."))
for notice in state.url_notices(st.session_state.pop("raw_query", {}), spec):
    st.warning(state.md_escape(notice))

tab_map, tab_classes, tab_runs, tab_reviews = st.tabs(state.TABS, key="tab", bind="query-params")

# ---------------------------------------------------------------------------------------------------------
# Data map, counts and examples

with tab_map:
    if tab_map.open:  # lazy: only the tab shown runs (its key is bound to the URL)
        points, bins, hists = map_layers(str(root), run_id, sig, view_state.cls)
        left, right = st.columns([3, 1])
        with left:
            n_class = run.n if view_state.cls is None else int((table["label"].to_numpy() == view_state.cls).sum())
            outcomes = consensus()[1]
            if color_by == "verdict" and outcomes is not None:
                points = points.assign(verdict=np.asarray(OUTCOMES, dtype=object)[outcomes[points["row"].to_numpy()]])
            chart = charts.data_map(
                points, bins, title=f"{view_state.cls_name} ({len(points):,} of {n_class:,} examples as points)"
            )
            st.vega_lite_chart(chart, key="map", on_select=on_brush, selection_mode=charts.BRUSH, width="stretch")
        with right:
            st.vega_lite_chart(charts.histograms(hists), width="stretch")

        counts = region_table(str(root), run_id, sig, rule, view_state.q)
        rule_text = (
            f"variability >= {view_state.thresholds.ambiguous_min_variability} ambiguous; else confidence >= "
            f"{view_state.thresholds.easy_min_confidence} easy, < {view_state.thresholds.hard_max_confidence} hard"
            if view_state.by_threshold
            else f"each subset is floor({view_state.q}% x N) examples: lowest confidence (hard-to-learn, the rows of "
            f"`select --metric confidence --fraction {view_state.q / 100:g}`), highest confidence (easy-to-learn), "
            "highest variability (ambiguous); an example can be in two, so a class's subsets can add up to more than "
            "its total"
        )
        st.subheader("Regions per class")
        st.caption(
            rule_text + ". Ambiguous means the model's gold-class probability swung across epochs, not that people "
            "disagree: on human-rated data low confidence tracks rater disagreement, variability does not (README)."
            + (f" {note}" if (note := map_note(meta := table_meta(run.table))) else "")
        )
        st.dataframe(counts, hide_index=True, key="counts")

        issues, unlearned = issue_table(str(root), run_id, sig)
        total = int(issues["label_issues"].iloc[-1])
        st.subheader(f"Likely label errors: {total:,} of {run.n:,} examples")
        st.caption(
            f"Estimated count of wrong labels: examples flagged by {flag_rule(meta)}. Choose the subset 'likely "
            "mislabeled' to list, review or download them. `python -m cartography_core selftest` measures how "
            f"precise this is on your data; {count_note(meta)}."
        )
        st.dataframe(issues, hide_index=True)
        if unlearned:
            st.warning(state.sentence(unlearned))

        examples_panel()

# ---------------------------------------------------------------------------------------------------------
# Per-class panels

with tab_classes:
    if tab_classes.open:  # lazy: only the tab shown runs (its key is bound to the URL)
        st.altair_chart(charts.class_panels(class_points(str(root), run_id, sig)))
        st.caption(f"Up to {PANEL_POINTS:,} examples per class, the hard-to-learn corner over-sampled above that.")

# ---------------------------------------------------------------------------------------------------------
# Runs: held-out accuracy, and how reliable the scores are across runs

with tab_runs:
    if tab_runs.open:  # lazy: only the tab shown runs (its key is bound to the URL)
        others = [i for i in ids if i != run_id]
        versus = st.selectbox(
            "Compare with (e.g. the run trained after relabeling)",
            ["(none)", *others],
            key="vs",
            help="held-out accuracy per epoch and region counts of both (python -m cartography_core compare A B)",
        )
        shown_runs = [(run_name, run)]
        if versus != "(none)":
            _, other, problem = open_view(versus)
            if other is None:
                st.warning(f"Run {state.md_escape(versus)} cannot be read: {state.md_escape(problem)}")
            else:
                shown_runs.append((versus, other))
        acc = [
            {"run": f"{label}: {r.path.name}" if len(shown_runs) > 1 else r.path.name, "epoch": e, "accuracy": a}
            for label, loaded in shown_runs
            for r in loaded.runs
            for e, a in enumerate(r.meta.get("holdout_accuracy") or [])
        ]
        if acc:
            st.altair_chart(charts.accuracy(pd.DataFrame(acc)), width="stretch")
        if len(shown_runs) > 1 and (notice := different_examples_notice(*(v.table for _, v in shown_runs))):
            st.info(state.sentence(notice))
        if len(shown_runs) > 1 and (notice := training_notice(*(v.runs[0].meta for _, v in shown_runs))):
            st.info(state.sentence(notice))
        if len(shown_runs) > 1:
            th = view_state.thresholds
            st.dataframe(
                pd.DataFrame(
                    {
                        label: np.bincount(
                            region_codes(t["confidence"].to_numpy(), t["variability"].to_numpy(), th),
                            minlength=len(REGIONS),
                        )
                        for label, t in ((label, loaded.table) for label, loaded in shown_runs)
                    },
                    index=list(REGIONS),
                )
                .rename_axis("region (thresholds of the sidebar)")
                .reset_index(),
                hide_index=True,
            )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "run": r.path.name,
                        # as text: run.json may hold anything (a seed beyond 64 bits would break the table)
                        "model": str(r.meta.get("model", "")),
                        "seed": str(r.meta.get("seed", "")),
                        "pass": str(r.meta.get("pass", "")),
                        "epochs": r.n_epochs,
                    }
                    for r in run.runs
                ]
            ),
            hide_index=True,
        )
        if len(run.runs) >= 2:
            st.subheader("Reliability across runs (Kwok et al. 2024)")
            rel = [
                split_half_reliability(run.per_run, s)
                for s in ("confidence", "variability", "correctness", "aum", "forgetting_events", "el2n")
            ]
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "score": r.score,
                            "split-half rho": r.split_half,
                            f"reliability of the mean of {r.n_runs}": r.full,
                            "runs for 0.9": r.runs_needed(0.9) if r.split_half > 0 else None,
                        }
                        for r in rel
                    ]
                ),
                hide_index=True,
            )
        else:
            st.caption("Open `<dataset>/*` to see how reliable each score is across its runs.")

# ---------------------------------------------------------------------------------------------------------
# Reviews: the annotators' verdicts on this dataset, agreement, and the corrected dataset

with tab_reviews:
    if tab_reviews.open:  # lazy: only the tab shown runs (its key is bound to the URL)
        resolved, outcomes = consensus()
        if store is None:
            st.error(state.md_escape(f"Reviews are off: {store_problem}"))
        else:
            n_votes = len(resolved)
            st.caption(
                state.md_escape(
                    f"Verdicts on the dataset '{dataset}' (shared by its runs): {latest.num_rows:,} counting "
                    f"(each annotator's latest), {n_votes:,} examples with a vote."
                )
            )
            if n_votes:
                region_of = np.asarray(member_names(members), dtype=object)
                names = np.asarray(run.label_names, dtype=object)
                per = pd.DataFrame(
                    {
                        "region": region_of,
                        "class": names[table["label"].to_numpy()],
                        "verdict": np.asarray(OUTCOMES, dtype=object)[outcomes],
                    }
                )
                per = per[per["verdict"] != "unreviewed"]
                st.subheader("Verdicts per region and class")
                st.dataframe(
                    per.pivot_table(
                        index=["region", "class"], columns="verdict", aggfunc="size", fill_value=0
                    ).reset_index(),
                    hide_index=True,
                )
                ag = agreement(latest)
                st.subheader("Agreement")
                if ag.method == "none":
                    st.caption("Agreement needs two or more examples with votes from two or more annotators.")
                else:
                    label = {"cohen_kappa": "Cohen's kappa", "krippendorff_alpha": "Krippendorff's alpha"}[ag.method]
                    st.metric(label, "undefined" if np.isnan(ag.value) else f"{ag.value:.3f}")
                    st.caption(f"over {ag.n_examples:,} examples with two or more votes, {ag.n_annotators} annotators")
                commented = latest.filter(pc.not_equal(latest["comment"], ""))
                if commented.num_rows:
                    st.subheader(f"Comments ({commented.num_rows:,})")
                    st.dataframe(
                        commented.select(["example_id", "annotator", "verdict", "new_label", "comment"]).to_pandas(),
                        hide_index=True,
                    )
                disagree = disagreements(resolved)
                st.subheader(f"Disagreements ({len(disagree):,})")
                st.dataframe(disagree, hide_index=True, key="disagreements")
            st.subheader("Corrected dataset")
            removed_how = st.radio("Removed examples", ("flag", "drop"), horizontal=True, key="removed_how")
            logged = table.select(["id", "label"])
            base_rows = run.examples if run.examples is not None else logged

            def corrected(fmt: str) -> bytes:
                return table_bytes(
                    corrected_dataset(base_rows, resolved, run.label_names, removed=removed_how, logged=logged), fmt
                )

            cols = st.columns(5)
            for col, fmt in zip(cols[:3], (".csv", ".jsonl", ".parquet")):
                col.download_button(
                    f"Corrected {fmt[1:]}",
                    data=lambda fmt=fmt: corrected(fmt),
                    file_name=f"{state.file_slug(dataset, 'reviewed', 'removed-' + removed_how)}{fmt}",
                    on_click="ignore",
                    key=f"dl_corrected{fmt}",
                )

            def tasks_json() -> bytes:
                rows = table.take(pa.array(subset_rows(), type=pa.int64()))
                tasks = ls_tasks(
                    rows, dataset=dataset, run=run_id, label_names=run.label_names, text_column=run.text_column,
                    pred_score=predicted_probability(run.runs, rows), regions=member_names(members[:, subset_rows()]),
                )  # fmt: skip
                return json.dumps(tasks, ensure_ascii=False).encode()

            cols[3].download_button(
                f"Label Studio tasks ({len(subset_rows()):,})",
                data=tasks_json,
                file_name=f"{state.file_slug(run_id, subset)}_label-studio.json",
                mime="application/json",
                on_click="ignore",
                key="dl_ls_tasks",
                help="this view's subset; import them into a Label Studio project made with the interface",
            )
            cols[4].download_button(
                "Label Studio interface",
                data=ls_config(run.label_names),
                file_name=f"{state.file_slug(dataset)}_label_config.xml",
                on_click="ignore",
                key="dl_ls_config",
            )
            st.caption(
                "Retrain on the corrected file: `python -m cartography_core train FILE --text-col text --label-col "
                "label_reviewed --id-col id --split-col split --out RUN` (`--split-col split` when the file has "
                "the run's split column: the same rows held out); Label Studio's JSON export comes back with "
                "`python -m cartography_core reviews import EXPORT RUN`."
            )
