"""The Streamlit dashboard (``streamlit run app/main.py``): presentation only, numbers from cartography_core."""
