"""The page of a precomputed statistics dataset (``stats --engine dask``): a run scored on a cluster, browsed
here in bounded memory. The map, histograms, counts and the page of examples come from scans of the dataset
(``cartography_core.dashboard.precomputed``), an example's epochs from its trajectory file; no log is read
and no table of every example is held."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import charts, state
from cartography_core.dashboard.datamap import MAX_POINTS
from cartography_core.dashboard.precomputed import (
    Dataset,
    examples_file,
    examples_signature,
    open_dataset,
    overview,
    top_rows,
    with_texts,
)
from cartography_core.label_issues import class_counts, count_note, flag_rule, unlearned_classes
from cartography_core.regions import AMBIGUOUS, EASY, HARD, OTHER, REGIONS, RegionThresholds
from cartography_core.scores import SCORES

PAGE_ROWS = 100
MAX_PAGES = 1000  # a page k keeps k x PAGE_ROWS rows while scanning: deeper than 100,000 rows, use `select`
SUBSETS = (HARD, AMBIGUOUS, EASY, OTHER, state.LIKELY_MISLABELED, "all")  # as the map page orders them


@st.cache_resource(max_entries=8, show_spinner="Opening the statistics dataset...")
def dataset(location: str, sig: str) -> Dataset:
    return open_dataset(location)


@st.cache_resource(max_entries=32, ttl=3600, show_spinner="Scanning the statistics for the map...")
def cached_overview(location: str, sig: str, cls: int | None, thresholds: RegionThresholds):
    return overview(dataset(location, sig), thresholds, cls=cls)


@st.cache_resource(max_entries=64, ttl=3600, show_spinner="Scanning the statistics for the examples...")
def cached_page(
    location: str, sig: str, texts_sig: str, metric: str, hardest: bool, subset: str, thresholds, cls, page: int
) -> pd.DataFrame:
    """Rows ``(page - 1) x PAGE_ROWS`` to ``page x PAGE_ROWS`` of the subset's ranking, with their texts
    (``texts_sig``: the examples file's signature, which lies outside the dataset's folder)."""
    ds = dataset(location, sig)
    region = subset if subset in REGIONS else None
    flagged = subset == state.LIKELY_MISLABELED
    rows = top_rows(
        ds, metric, k=page * PAGE_ROWS, hardest=hardest, region=region, thresholds=thresholds, cls=cls, flagged=flagged
    )
    rows = rows.slice((page - 1) * PAGE_ROWS) if rows.num_rows else rows
    return with_texts(ds, rows).to_pandas() if rows.num_rows else pd.DataFrame()


def page_params(run_ids, names: list[str], sortable: list[str]) -> dict[str, state.Param]:
    """The URL parameters of this page (a link carries the whole view, as on the map page)."""
    full = state.params(run_ids, names, sortable)
    out = [full[k] for k in ("run", "cls", "amb_var", "easy_conf", "hard_conf", "sort", "order", "page")]
    out += [state.Param("dsubset", SUBSETS[0], choices=SUBSETS), state.Param("dpage", 1, bounds=(1, MAX_PAGES))]
    return {p.key: p for p in out}


def show(location: str, sig: str, name: str, run_ids: list[str]) -> None:
    """Draw the page (the caller has drawn the sidebar's page and run choosers)."""
    ds = dataset(location, sig)
    names = ds.label_names
    sortable = [m for m in SCORES if m != "aum" or ds.meta.get("kind") != "probs"]
    spec = page_params(run_ids, names, sortable)
    with st.sidebar:
        cls_name = st.selectbox("Class", spec["cls"].choices, key="cls", bind="query-params")
        st.header("Regions")
        labels = {
            "amb_var": "Ambiguous: variability at least",
            "easy_conf": "Easy-to-learn: confidence at least",
            "hard_conf": "Hard-to-learn: confidence below",
        }
        amb, easy, hard = (
            st.slider(label, *spec[k].bounds, spec[k].default, 0.01, key=k, bind="query-params")
            for k, label in labels.items()
        )
        thresholds, clamped = RegionThresholds.lenient(amb, easy, hard)
        if clamped:
            st.warning(clamped)
        st.header("Examples")
        subset = st.selectbox("Subset", SUBSETS, key="dsubset", bind="query-params")
        metric = st.selectbox(
            "Sort by", sortable, key="sort", bind="query-params", help="docs/scores.md defines each score"
        )
        order = st.radio("Order", state.ORDERS, key="order", bind="query-params", horizontal=True)
    cls = None if cls_name == state.ALL_CLASSES else names.index(cls_name)

    st.title(f"Data map: {state.md_escape(name)}")
    facts = [
        f"{ds.n:,} examples",
        f"{ds.meta['n_epochs']} epochs",
        f"{len(names)} classes",
        f"precomputed statistics ({ds.meta.get('partitions', '?')} partitions), read by scans in bounded memory; "
        "no logs are read",
    ]
    if examples_file(ds) is None:
        facts.append("no examples file (examples.parquet in its folder, the one above, or the run's own): ids only")
    st.caption(state.md_escape(" · ".join(facts)))
    for notice in state.url_notices(st.session_state.pop("raw_query", {}), spec):
        st.warning(state.md_escape(notice))
    ov = cached_overview(location, sig, cls, thresholds)
    n_class = int(ov.region_counts.sum() if cls is None else ov.region_counts[cls].sum())
    points = _points(ds, ov.sample, names)
    left, right = st.columns([3, 1])
    with left:
        bins = ov.density.to_pandas() if n_class > MAX_POINTS else None
        title = f"{cls_name} ({len(points):,} of {n_class:,} examples as points)"
        st.vega_lite_chart(charts.data_map(points, bins, title=title), key="map", width="stretch")
    with right:
        st.vega_lite_chart(charts.histograms({k: v.to_pandas() for k, v in ov.histograms.items()}), width="stretch")

    st.subheader("Regions per class")
    counts = pd.DataFrame(ov.region_counts, columns=list(REGIONS))
    counts.insert(0, "class", names)
    counts["total"] = counts[list(REGIONS)].sum(axis=1)
    counts = pd.concat([counts, pd.DataFrame([{"class": "all", **counts.drop(columns="class").sum()}])])
    st.dataframe(counts, hide_index=True)
    issues = ov.label_issues if cls is None else ov.label_issues[cls : cls + 1]
    st.subheader(f"Likely label errors: {int(issues.sum()):,} of {n_class:,} examples")
    st.caption(
        f"Estimated count of wrong labels: examples flagged by {flag_rule(ds.meta)}. The subset 'likely mislabeled' "
        f"lists them; {count_note(ds.meta)}."
    )
    if unlearned := unlearned_classes(class_counts(names, ov.region_counts.sum(axis=1), ov.label_issues)):
        st.warning(state.sentence(unlearned))

    hardest = order == state.ORDERS[0]
    counted = ov.region_counts if cls is None else ov.region_counts[cls : cls + 1]
    if subset == "all":
        size = int(counted.sum())
    elif subset == state.LIKELY_MISLABELED:
        size = int(ov.label_issues.sum() if cls is None else ov.label_issues[cls])
    else:
        size = int(counted[:, REGIONS.index(subset)].sum())
    pages = max(1, min(MAX_PAGES, -(-size // PAGE_ROWS)))
    number = int(st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="dpage", bind="query-params"))
    page = cached_page(location, sig, examples_signature(ds), metric, hardest, subset, thresholds, cls, number)
    first = (number - 1) * PAGE_ROWS
    st.subheader(f"Examples {first + 1:,} to {first + len(page):,} of {size:,} ({subset}), by {metric} ({order})")
    st.caption(
        f"Pages of {PAGE_ROWS}, each read by one scan of the parts (the first {MAX_PAGES:,} pages). Every row of a "
        "subset: `python -m cartography_core select` on the run's logs, or a filter on the dataset's parquet parts."
    )
    if page.empty:
        st.info("No examples in this subset.")
        return
    found = examples_file(ds)
    if found is not None and "text" in page.columns and page["text"].isna().all():
        st.warning(
            f"None of these ids is in {found[1].name}: its ids are other ids than the run logged (or typed "
            "differently: write the examples as parquet)."
        )
    lookup = np.asarray(names, dtype=object)
    front = {"id": page["id"].astype(str), "gold": lookup[page["label"].to_numpy()]}
    front["predicted"] = lookup[page["pred_label"].to_numpy()]
    rest = [c for c in page.columns if c not in ("id", "label_name", "pred_label_name")]
    shown = pd.concat([pd.DataFrame(front), page[rest]], axis=1)
    picked = st.dataframe(shown, hide_index=True, on_select="rerun", selection_mode="single-row", key="pre_table")
    rows = picked.selection.rows if picked is not None else []
    if rows:
        example_id = page["id"].iloc[rows[0]]
        traj = ds.trajectory(example_id.item() if hasattr(example_id, "item") else example_id).to_pandas()
        traj["predicted"] = np.asarray(names, dtype=object)[traj["pred"].fillna(0).astype(int).to_numpy()]
        st.subheader(f"Example {example_id}: gold-class probability per epoch")
        st.line_chart(traj.set_index("epoch")["p_gold"])
        st.dataframe(traj, hide_index=True)


def _points(ds: Dataset, sample, names: list[str]) -> pd.DataFrame:
    """The sampled rows as the map draws them, with their text when the dataset has examples beside it."""
    if not sample.num_rows:
        return pd.DataFrame({c: [] for c in ("id", "gold", "predicted", "confidence", "variability", "correctness")})
    rows = with_texts(ds, sample)
    return charts.map_points(rows, names, "text" if "text" in rows.column_names else None)
