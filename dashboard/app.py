"""SE Lens entry point: ``streamlit run dashboard/app.py``.

Pages live in the top-level ``pages/`` folder, one file each whose ``render()`` lays out what
``se_core`` computes and ``dashboard.figures`` draws (the file ends by calling it: ``st.navigation``
runs a page file as a script, as in Streamlit's hello app). The sidebar's model pair is kept in
session state and in the URL.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import state

PAGES = Path(__file__).resolve().parents[1] / "pages"

st.set_page_config(page_title="SE Lens", page_icon=":material/tune:", layout="wide")

page = st.navigation([
    st.Page(str(PAGES / "home.py"), title="Home", icon=":material/home:", default=True),
    st.Page(str(PAGES / "models.py"), title="Models", icon=":material/table_chart:", url_path="models"),
    st.Page(str(PAGES / "inspector.py"), title="Inspect", icon=":material/visibility:", url_path="inspect"),
    st.Page(str(PAGES / "attributions.py"), title="Attributions", icon=":material/gradient:", url_path="attributions"),
    st.Page(str(PAGES / "classwise.py"), title="Class-wise", icon=":material/stacked_bar_chart:", url_path="classwise"),
    st.Page(str(PAGES / "gatespace.py"), title="Gate space", icon=":material/scatter_plot:", url_path="gatespace"),
    st.Page(str(PAGES / "ablations.py"), title="Ablations", icon=":material/science:", url_path="ablations"),
])
state.sidebar()
page.run()
