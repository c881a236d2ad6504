"""What the dashboard (``app/``) needs beyond the scoring pipeline, testable without Streamlit: the runs under a
log root and how a view loads one (``catalog``), the scores kept on disk between server restarts (``cache``),
and the data map's binning, sampling, filters and trajectories (``datamap``)."""
