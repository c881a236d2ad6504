"""Altair charts of the dashboard. Presentation only: every number comes from ``cartography_core``."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pyarrow as pa

from cartography_core.dashboard.datamap import CONF_MAX, VAR_MAX

BRUSH = "brush"
X = alt.X("variability:Q", title="variability", scale=alt.Scale(domain=[0, VAR_MAX]))
Y = alt.Y("confidence:Q", title="confidence", scale=alt.Scale(domain=[0, CONF_MAX]))
REGION_LABELS = pd.DataFrame(  # where the paper's figure names its regions
    {
        "variability": [0.03, 0.38, 0.03],
        "confidence": [0.97, 0.55, 0.04],
        "name": ["easy-to-learn", "ambiguous", "hard-to-learn"],
    }
)
TOOLTIP = ["id:N", "gold:N", "predicted:N", "verdict:N", "confidence:Q", "variability:Q", "correctness:Q", "text:N"]
VERDICT_COLORS = {  # the reviews' outcomes (cartography_core.reviews.OUTCOMES)
    "correct": "#1a9850",
    "relabeled": "#d73027",
    "ambiguous": "#fdae61",
    "removed": "#4d4d4d",
    "unresolved": "#8073ac",
    "unreviewed": "#c7c7c7",
}


def _field(name: str, kind: str, **extra) -> dict:
    return {"field": name, "type": kind, **extra}


X_SPEC = _field("variability", "quantitative", title="variability", scale={"domain": [0, VAR_MAX]})
Y_SPEC = _field("confidence", "quantitative", title="confidence", scale={"domain": [0, CONF_MAX]})
TOOLTIP_SPEC = [
    _field(t.split(":")[0], "nominal" if t.endswith(":N") else "quantitative") for t in TOOLTIP
]  # fmt: skip


def map_points(t: pa.Table, names: list[str], text_column: str | None) -> pd.DataFrame:
    """The rows of ``t`` (a statistics table, examples joined) as the map's points: id, gold and predicted class
    names, the three coordinates and colours, and the first 280 characters of the text for the tooltip."""
    lookup = np.asarray(names, dtype=object)
    frame = pd.DataFrame(
        {
            "id": t["id"].to_pandas().astype(str),
            "gold": lookup[t["label"].to_numpy()],
            "predicted": lookup[t["pred_label"].to_numpy()],
            "confidence": t["confidence"].to_numpy(),
            "variability": t["variability"].to_numpy(),
            "correctness": t["correctness"].to_numpy(),
        }
    )
    if text_column:
        frame["text"] = t[text_column].to_pandas().str.slice(0, 280)
    return frame


def data_map(points: pd.DataFrame, bins: pd.DataFrame | None, *, title: str, height: int = 430) -> dict:
    """Variability (x) against confidence (y), points coloured by correctness (or, when ``points`` has a
    ``verdict`` column, by the reviews' verdict, reviewed examples drawn on top), with a brush.

    ``bins`` (``datamap.density`` output) draws a grey density under the sampled points when the run has
    more examples than are drawn as points. A Vega-Lite spec as a plain dict with named datasets (for
    ``st.vega_lite_chart``): built on every rerun of every session, so it skips Altair's schema validation
    (~0.3 s of server time a page)."""
    if "verdict" in points.columns:
        reviewed = (points["verdict"] != "unreviewed").to_numpy()
        points = pd.concat([points[~reviewed], points[reviewed]])  # reviewed ones drawn last, on top
        extra = {
            "color": _field(
                "verdict", "nominal", scale={"domain": list(VERDICT_COLORS), "range": list(VERDICT_COLORS.values())}
            ),
            "size": {"condition": {"test": "datum.verdict != 'unreviewed'", "value": 60}, "value": 12},
            "shape": _field("verdict", "nominal", legend=None),
        }
    else:
        extra = {
            "color": _field(
                "correctness",
                "quantitative",
                title="correctness",
                scale={"scheme": "plasma", "domain": [0, 1]},
                legend={"gradientLength": 140},  # room for the density's legend above it: neither is clipped
            ),
            "size": {"value": 18},
        }
    layers = [
        {
            "name": "points",
            "data": {"name": "points"},
            "mark": {"type": "circle", "opacity": 0.75},
            "encoding": {
                "x": X_SPEC,
                "y": Y_SPEC,
                "tooltip": [t for t in TOOLTIP_SPEC if t["field"] in points.columns],
                **extra,
            },
        },
        *(
            {  # a white halo first, then the name: readable over dense points
                "data": {"name": "labels"},
                "mark": {"type": "text", "fontSize": 13, "fontWeight": "bold", "align": "left", **style},
                "encoding": {"x": X_SPEC, "y": Y_SPEC, "text": _field("name", "nominal")},
            }
            for style in ({"stroke": "white", "strokeWidth": 4, "fill": "white", "opacity": 0.85}, {"opacity": 0.8})
        ),
    ]
    datasets = {"points": points, "labels": REGION_LABELS}
    if bins is not None and len(bins):
        datasets["bins"] = bins
        layers.insert(
            0,
            {
                "data": {"name": "bins"},
                "mark": {"type": "rect", "opacity": 0.55},
                "encoding": {
                    "x": _field("var_lo", "quantitative", title="variability", scale={"domain": [0, VAR_MAX]}),
                    "x2": {"field": "var_hi"},
                    "y": _field("conf_lo", "quantitative", title="confidence", scale={"domain": [0, CONF_MAX]}),
                    "y2": {"field": "conf_hi"},
                    "color": _field(
                        "count",
                        "quantitative",
                        scale={"type": "log", "scheme": "greys"},
                        legend={"title": "examples per bin", "gradientLength": 110},
                    ),
                    "tooltip": [_field("count", "quantitative")],
                },
            },
        )
    return {
        "title": title,
        "height": height,
        "datasets": datasets,
        "params": [{"name": BRUSH, "select": {"type": "interval", "encodings": ["x", "y"]}, "views": ["points"]}],
        "layer": layers,
        "resolve": {"scale": {"color": "independent"}},
    }


def histograms(hists: dict[str, pd.DataFrame]) -> dict:
    """Bars of ``datamap.histogram`` tables, one above the other in one chart (one Vega view for all: each
    view costs every browser that opens the page its own set-up). A plain Vega-Lite spec, like ``data_map``."""
    return {
        "datasets": dict(hists),
        "vconcat": [
            {
                "data": {"name": name},
                "height": 110,
                "mark": {"type": "bar"},
                "encoding": {
                    "x": _field("lo", "quantitative", title=name, bin="binned"),
                    "x2": {"field": "hi"},
                    "y": _field("count", "quantitative", title=None),
                    "tooltip": [_field(c, "quantitative") for c in ("lo", "hi", "count")],
                },
            }
            for name in hists
        ],
    }


def class_panels(points: pd.DataFrame, columns: int = 3) -> alt.FacetChart:
    """One small data map per class (read-only), in the order the classes first appear in ``points`` (class index
    order from :func:`class_points`; Vega-Lite would sort the names)."""
    return (
        alt.Chart(points)
        .mark_circle(size=10, opacity=0.7)
        .encode(
            x=X,
            y=Y,
            color=alt.Color("correctness:Q", scale=alt.Scale(scheme="plasma", domain=[0, 1])),
            tooltip=[t for t in TOOLTIP if t.split(":")[0] in points.columns],
        )
        .properties(width=220, height=200)
        .facet(facet=alt.Facet("gold:N", title=None, sort=list(pd.unique(points["gold"]))), columns=columns)
    )


def trajectory(traj: pd.DataFrame) -> dict:
    """Gold-class probability per epoch (one line per run), a filled dot where the prediction was right.

    A Vega-Lite spec as a plain dict (for ``st.vega_lite_chart``): shown once per example reviewed, so it
    skips Altair's schema validation (~50 ms a chart)."""
    x = {"field": "epoch", "type": "ordinal", "title": "epoch"}
    y = {"field": "p_gold", "type": "quantitative", "title": "p(gold)", "scale": {"domain": [0, 1]}}
    color = {"field": "run", "type": "nominal", "title": "run"}
    shape = {
        "field": "correct",
        "type": "nominal",
        "title": "correct",
        "scale": {"domain": [True, False], "range": ["circle", "cross"]},
    }
    tooltip = [
        {"field": "run", "type": "nominal"},
        {"field": "epoch", "type": "ordinal"},
        {"field": "p_gold", "type": "quantitative"},
        {"field": "correct", "type": "nominal"},
        {"field": "predicted", "type": "nominal"},
    ]
    return {
        "height": 220,
        "layer": [
            {"mark": {"type": "line"}, "encoding": {"x": x, "y": y, "color": color}},
            {
                "mark": {"type": "point", "size": 70, "filled": True},
                "encoding": {"x": x, "y": y, "color": color, "shape": shape, "tooltip": tooltip},
            },
        ],
    }


def accuracy(meta_rows: pd.DataFrame) -> alt.Chart:
    """Held-out accuracy per epoch for each run."""
    return (
        alt.Chart(meta_rows)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:O"),
            y=alt.Y("accuracy:Q", title="held-out accuracy", scale=alt.Scale(zero=False)),
            color="run:N",
        )
        .properties(height=220)
    )
