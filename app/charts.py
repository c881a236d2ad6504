"""Altair charts of the dashboard. Presentation only: every number comes from ``cartography_core``."""

from __future__ import annotations

import altair as alt
import pandas as pd

from cartography_core.dashboard.datamap import CONF_MAX, VAR_MAX

BRUSH = "brush"
X = alt.X("variability:Q", title="variability", scale=alt.Scale(domain=[0, VAR_MAX]))
Y = alt.Y("confidence:Q", title="confidence", scale=alt.Scale(domain=[0, CONF_MAX]))
REGION_LABELS = pd.DataFrame(  # where the paper's figure names its regions
    {
        "variability": [0.03, 0.38, 0.03],
        "confidence": [0.97, 0.55, 0.03],
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


def data_map(points: pd.DataFrame, bins: pd.DataFrame | None, *, title: str, height: int = 430) -> alt.LayerChart:
    """Variability (x) against confidence (y), points coloured by correctness (or, when ``points`` has a
    ``verdict`` column, by the reviews' verdict, reviewed examples drawn on top), with a brush.

    ``bins`` (``datamap.density`` output) draws a grey density under the sampled points when the run has
    more examples than are drawn as points."""
    if "verdict" in points.columns:
        reviewed = (points["verdict"] != "unreviewed").to_numpy()
        points = pd.concat([points[~reviewed], points[reviewed]])  # reviewed ones drawn last, on top
        color = alt.Color(
            "verdict:N", scale=alt.Scale(domain=list(VERDICT_COLORS), range=list(VERDICT_COLORS.values()))
        )
        size = alt.condition("datum.verdict != 'unreviewed'", alt.value(60), alt.value(12))
        extra = {"size": size, "shape": alt.Shape("verdict:N", legend=None)}
    else:
        color = alt.Color("correctness:Q", scale=alt.Scale(scheme="plasma", domain=[0, 1]), title="correctness")
        extra = {"size": alt.value(18)}
    points_layer = (
        alt.Chart(points)
        .mark_circle(opacity=0.75)
        .encode(
            x=X,
            y=Y,
            color=color,
            tooltip=[t for t in TOOLTIP if t.split(":")[0] in points.columns],
            **extra,
        )
        .add_params(alt.selection_interval(name=BRUSH, encodings=["x", "y"]))
    )
    labels = (
        alt.Chart(REGION_LABELS)
        .mark_text(fontSize=13, fontWeight="bold", align="left", opacity=0.6)
        .encode(x="variability:Q", y="confidence:Q", text="name:N")
    )
    layers = [points_layer, labels]
    if bins is not None and len(bins):
        density = (
            alt.Chart(bins)
            .mark_rect(opacity=0.55)
            .encode(
                x=alt.X("var_lo:Q", scale=alt.Scale(domain=[0, VAR_MAX]), title="variability"),
                x2="var_hi:Q",
                y=alt.Y("conf_lo:Q", scale=alt.Scale(domain=[0, CONF_MAX]), title="confidence"),
                y2="conf_hi:Q",
                color=alt.Color(
                    "count:Q", scale=alt.Scale(type="log", scheme="greys"), legend=alt.Legend(title="examples per bin")
                ),
                tooltip=["count:Q"],
            )
        )
        layers.insert(0, density)
    return alt.layer(*layers).resolve_scale(color="independent").properties(title=title, height=height)


def histogram(hist: pd.DataFrame, title: str) -> alt.Chart:
    """Bars of a ``datamap.histogram`` table."""
    return (
        alt.Chart(hist)
        .mark_bar()
        .encode(
            x=alt.X("lo:Q", title=title, bin="binned"),
            x2="hi:Q",
            y=alt.Y("count:Q", title=None),
            tooltip=["lo:Q", "hi:Q", "count:Q"],
        )
        .properties(height=110)
    )


def class_panels(points: pd.DataFrame, columns: int = 3) -> alt.FacetChart:
    """One small data map per class (read-only)."""
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
        .facet(facet=alt.Facet("gold:N", title=None), columns=columns)
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
