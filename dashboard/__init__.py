"""SE Lens Streamlit app: entry point (app.py) and helpers (state, caching, charts)."""
