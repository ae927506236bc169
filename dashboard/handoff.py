"""Opening something on another page: an image of a data set on the Inspect page with its gates (another page
puts the image into the session's uploads (:func:`dashboard.uploads.share`), leaves its digest here and switches
page; Inspect, on its next run, makes that image the one its single-image charts (the gate heatmap first) show),
or a model pair on any page (:func:`open_pair`: the sidebar selects it on the next run, before its widget exists)."""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import state, uploads

INSPECT_PAGE = "../pages/inspector.py"
"""The Inspect page, relative to the main script ``dashboard/app.py`` (how ``st.switch_page`` names it)."""
GATESPACE_PAGE = "../pages/gatespace.py"
"""The Gate space page, named the same way."""
PENDING_KEY = "inspect_handoff"


def png_bytes(image: np.ndarray) -> bytes:
    """An H x W x 3 uint8 image as lossless PNG bytes (the digest Inspect keys its charts by)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def open_on_inspect(name: str, image: np.ndarray) -> None:
    """Hand ``image`` to Inspect under ``name`` and go there (does not return)."""
    st.session_state[PENDING_KEY] = uploads.share(name, png_bytes(image))
    st.switch_page(INSPECT_PAGE)


def focus_handed_over(digests: Sequence[str], names: Sequence[str], focus_key: str) -> None:
    """On Inspect, before its image selector (key ``focus_key``) exists: select the image handed over, if any."""
    digest = st.session_state.pop(PENDING_KEY, None)
    if digest in digests:
        st.session_state[focus_key] = names[list(digests).index(digest)]


def open_pair(name: str, page: str = INSPECT_PAGE) -> None:
    """Make pair ``name`` the sidebar's choice and go to ``page`` (does not return)."""
    state.select_pair(name)
    st.switch_page(page)
