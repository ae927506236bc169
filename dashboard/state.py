"""Session state shared by the pages: the chosen model pair, mirrored in the URL query string.

The sidebar lists the registered pairs, then the pairs the pair sources list (every kept ablation trial
with its vanilla twin, ``ablation:<sweep>/<trial_id>``, see :mod:`se_core.models.ablation_models`), then the user pairs (``user:<id>``, see
:mod:`se_core.models.user_models`) saved in this server's store (so a fresh session finds them
without a ``?pair=`` link) and any this session registered or opened by link. A page switches the sidebar to a new user pair with
:func:`add_user_pair` (applied on the next rerun, before the sidebar widget exists). Also the
Stop flags of long passes (:func:`request_stop`, :func:`stopper`).
"""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import display
from se_core import config
from se_core.models.ablation_models import PREFIX as ABLATION_PREFIX
from se_core.models.pairs import DEFAULT_PAIR, PAIRS, is_known, listed_pairs
from se_core.models.user_models import list_user_pairs
from se_core.models.weights import USER_PREFIX

PAIR_KEY = "pair"
USER_PAIRS_KEY = "user_pairs"
_PENDING_KEY = "_pair_pending"


def _user_pairs() -> list[str]:
    return st.session_state.setdefault(USER_PAIRS_KEY, [])


def current_pair() -> str:
    """The pair this session looks at: session state, else the URL's ``?pair=``, else the default."""
    if PAIR_KEY not in st.session_state:
        wanted = st.query_params.get(PAIR_KEY, DEFAULT_PAIR)
        ok = is_known(wanted)
        if ok and wanted.startswith(USER_PREFIX) and wanted not in _user_pairs():
            _user_pairs().append(wanted)
        st.session_state[PAIR_KEY] = wanted if ok else DEFAULT_PAIR
    return st.session_state[PAIR_KEY]


def select_pair(name: str) -> None:
    """Select pair ``name`` in the sidebar on the next rerun (call ``st.rerun()`` after it)."""
    st.session_state[_PENDING_KEY] = name


def add_user_pair(name: str, switch: bool = True) -> None:
    """List user pair ``name`` in this session's sidebar and (with ``switch``) select it on the next rerun."""
    if name not in _user_pairs():
        _user_pairs().append(name)
    if switch:
        select_pair(name)


def user_pair_options() -> list[str]:
    """The user pairs saved on this server (oldest first; unless ``SE_LENS_LIST_USER_PAIRS=0``), then this
    session's others that still exist."""
    saved = list_user_pairs() if config.list_user_pairs() else []
    return saved + [n for n in _user_pairs() if n not in saved and is_known(n)]


def source_pair_options() -> list[str]:
    """The pairs the pair sources list for everyone (kept ablation variants), then this session's own choice of
    such a pair when it is not listed (a link to a variant whose twin is missing: the page says why it cannot load)."""
    listed = [n for n in listed_pairs() if n not in PAIRS]
    mine = st.session_state.get(PAIR_KEY)
    if isinstance(mine, str) and mine.startswith(ABLATION_PREFIX) and mine not in listed and is_known(mine):
        listed.append(mine)
    return listed


def pair_options() -> list[str]:
    """Registered pairs, then the listed source pairs (:func:`source_pair_options`), then the user pairs
    (:func:`user_pair_options`)."""
    listed = source_pair_options()
    return list(PAIRS) + listed + [n for n in user_pair_options() if n not in listed]


def _title(name: str) -> str:
    try:
        return PAIRS[name].title
    except KeyError:
        return name


def _sync_url() -> None:
    st.query_params[PAIR_KEY] = st.session_state[PAIR_KEY]


def sidebar() -> None:
    """The model-pair picker shown on every page."""
    pending = st.session_state.pop(_PENDING_KEY, None)
    if pending is not None and is_known(pending):
        st.session_state[PAIR_KEY] = pending
    current_pair()
    options = pair_options()
    if st.session_state[PAIR_KEY] not in options:
        st.session_state[PAIR_KEY] = DEFAULT_PAIR
    with st.sidebar:
        st.selectbox("Model pair", options, key=PAIR_KEY, format_func=_title,
                     on_change=_sync_url, help="SE model and its vanilla counterpart; the choice is kept in the URL. "
                                               "The built-in pairs come first, then the kept ablation variants "
                                               "(each vs its sweep's no-SE trial of the same seed), then the pairs "
                                               "registered on this server from uploaded checkpoints (Models page).")
        n_kept = sum(n.startswith(ABLATION_PREFIX) for n in options)
        n_user = len(options) - len(PAIRS) - n_kept
        parts = ([f"{n_kept} kept ablation variant(s) (“Ablation …”, opened from the Ablations page)"] if n_kept else []) + \
                ([f"{n_user} registered on this server (“Yours: …”)"] if n_user else [])
        if parts:
            st.caption(f"{len(PAIRS)} built-in pairs, then " + ", then ".join(parts) + ".")
        display.export_format_picker()
    if st.query_params.get(PAIR_KEY) != st.session_state[PAIR_KEY]:
        _sync_url()


def request_stop(key: str) -> None:
    """Stop button callback. The click also reruns the page, which interrupts the running pass at its next
    progress update; the flag covers the rest (it is read between batches and shown after the rerun)."""
    st.session_state[key] = True


def stopper(key: str) -> Callable[[], bool]:
    """``should_stop`` for a long pass: true once :func:`request_stop` set ``key``."""
    return lambda: bool(st.session_state.get(key, False))
