"""Weights on request on the Models page: per ImageNet pair, the size first, then Download, a progress bar and Stop.

Nothing touches the network before a click: the first button asks the servers for the sizes (HEAD
only), the second downloads (:mod:`se_core.models.zoo.download`). Stop works the Streamlit way:
its click reruns the page, which interrupts the running download inside its progress update; the
downloader's temp file goes with the interruption, so nothing half-written is left. With
``SE_LENS_ALLOW_DOWNLOAD=0`` none of this is shown.
"""
from __future__ import annotations

import streamlit as st

from dashboard import caching
from se_core.config import downloads_allowed
from se_core.models.zoo.download import DownloadError, Planned, fetch_all, plan_pair, size_text, total_size

PLANS_KEY = "models-zoo-plans"
NOTE_KEY = "models-zoo-download-note"


def _stopped(pair: str) -> None:
    st.session_state.setdefault(PLANS_KEY, {}).pop(pair, None)
    st.session_state[NOTE_KEY] = (pair, "info", "Download stopped; nothing half-written was kept. The files "
                                                "finished before the stop stay, checked.")


def _progress(bar, total: int | None):  # noqa: ANN001, ANN202 - a Streamlit progress element; a callback
    """A progress callback redrawing ``bar`` at most once per percent."""
    last = [-1]

    def update(done: int, _total: int | None) -> None:
        pct = int(100 * done / total) if total else 0
        if pct != last[0]:
            last[0] = pct
            bar.progress(min(pct, 100) / 100, text=f"{size_text(done)} of {size_text(total)}")

    return update


def _download(pair: str, plans: list[Planned]) -> None:
    """Run the download under a Stop button and a progress bar; remember the outcome for the next run."""
    st.button("Stop", key=f"models-zoo-stop-{pair}", icon=":material/stop:", on_click=_stopped, args=(pair,))
    bar = st.progress(0.0, text="Starting the download…")
    st.session_state[PLANS_KEY].pop(pair, None)
    try:
        paths = fetch_all(plans, progress=_progress(bar, total_size(plans)))
    except DownloadError as e:
        st.error(f"The download failed: {e}", icon=":material/error:")
        caching.library_weights.clear()
        return
    caching.library_weights.clear()
    st.session_state[NOTE_KEY] = (pair, "success", "Downloaded, read and loaded: " + ", ".join(f"`{p}`" for p in paths))
    st.rerun()


def take_note(pair: str) -> tuple[str, str] | None:
    """The outcome of ``pair``'s last download (kind, text), once; the page opens the pair's expander for it."""
    note = st.session_state.get(NOTE_KEY)
    if not note or note[0] != pair:
        return None
    del st.session_state[NOTE_KEY]
    return note[1], note[2]


def pair_download(pair: str, ready: bool, note: tuple[str, str] | None = None) -> None:
    """The download controls of one ImageNet pair whose weights are missing (none when switched off)."""
    if note:
        (st.success if note[0] == "success" else st.info)(note[1])
    if ready or not downloads_allowed():
        return
    plans_by_pair = st.session_state.setdefault(PLANS_KEY, {})
    plans = plans_by_pair.get(pair)
    if plans is None:
        if not st.button("Check the download size", key=f"models-zoo-size-{pair}", icon=":material/cloud_download:",
                         help="Asks the Hugging Face hub / download.pytorch.org how big the missing files are; "
                              "downloads nothing yet."):
            return
        try:
            plans = plans_by_pair[pair] = plan_pair(pair)
        except DownloadError as e:
            st.error(f"The files cannot be fetched: {e}", icon=":material/error:")
            return
    if not plans:
        st.info("Every file of this pair is on this machine now.")
        return
    for p in plans:
        st.caption(f"{p.label}: {size_text(p.size)} from {p.url} → `{p.dest}`")
    if st.button(f"Download ({size_text(total_size(plans))})", key=f"models-zoo-download-{pair}", type="primary",
                 icon=":material/download:", help="Into the libraries' own caches; the hash is checked before the "
                                                 "file is kept, and the model is loaded before it counts as ready."):
        _download(pair, plans)
