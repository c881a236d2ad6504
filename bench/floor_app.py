"""The floor of a dashboard page: the same kinds of Streamlit elements as the data map's first screen (sidebar
widgets, tabs, a Vega-Lite chart, tables), with ten rows of data, and a selected row's heading and
trajectory. ``bench_app.py`` times it beside the app, so the app's figures can be read against what
Streamlit's own page costs this browser and machine."""

import numpy as np
import pandas as pd
import streamlit as st

st.set_page_config(layout="wide")
with st.sidebar:
    st.radio("Page", ["map", "review"])
    st.selectbox("Run", ["run"])
    st.slider("Threshold", 0.0, 1.0, 0.5)
st.title("Floor")
tab, _ = st.tabs(["Data map", "Other"])
with tab:
    frame = pd.DataFrame({"variability": np.linspace(0, 0.5, 10), "confidence": np.linspace(0, 1, 10)})
    spec = {
        "params": [{"name": "brush", "select": {"type": "interval", "encodings": ["x", "y"]}}],
        "mark": "circle",
        "encoding": {
            "x": {"field": "variability", "type": "quantitative"},
            "y": {"field": "confidence", "type": "quantitative"},
        },
    }
    st.vega_lite_chart(frame, spec, width="stretch", key="map", on_select="rerun", selection_mode="brush")
    st.dataframe(frame, hide_index=True)
    picked = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="single-row", key="rows")
    if picked.selection.rows:  # what a click on an example draws: a heading and its trajectory
        row = picked.selection.rows[0]
        st.markdown(f"**Example {row}**: gold a, predicted b")
        traj = pd.DataFrame({"epoch": range(5), "p": np.linspace(0.1, 0.9, 5) * frame["confidence"][row]})
        line = {"mark": {"type": "line", "point": True}, "encoding": {"x": {"field": "epoch"}, "y": {"field": "p"}}}
        st.vega_lite_chart(traj, line, width="stretch")
