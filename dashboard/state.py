"""Session state shared by the pages: the chosen model pair, mirrored in the URL query string."""
from __future__ import annotations

import streamlit as st

from dashboard import charts
from se_core.pairs import DEFAULT_PAIR, PAIRS

PAIR_KEY = "pair"


def current_pair() -> str:
    """The pair this session looks at: session state, else the URL's ``?pair=``, else the default."""
    if PAIR_KEY not in st.session_state:
        wanted = st.query_params.get(PAIR_KEY, DEFAULT_PAIR)
        st.session_state[PAIR_KEY] = wanted if wanted in PAIRS else DEFAULT_PAIR
    return st.session_state[PAIR_KEY]


def _sync_url() -> None:
    st.query_params[PAIR_KEY] = st.session_state[PAIR_KEY]


def sidebar() -> None:
    """The model-pair picker shown on every page."""
    current_pair()
    with st.sidebar:
        st.selectbox("Model pair", list(PAIRS), key=PAIR_KEY, format_func=lambda n: PAIRS[n].title,
                     on_change=_sync_url, help="SE model and its vanilla counterpart; the choice is kept in the URL.")
        charts.export_format_picker()
    if st.query_params.get(PAIR_KEY) != st.session_state[PAIR_KEY]:
        _sync_url()
