"""SE Lens Streamlit app: entry point (app.py), figures (figures/), and the helpers pages call: caches,
inputs, page sections and drawing (display)."""
