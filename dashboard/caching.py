"""Models in ``st.cache_resource`` (shared by all sessions, bounded), results in ``st.cache_data``.

Cached models are shared between users: code using their hooks goes through ``se_core.probe``,
which holds the model's lock while hooks exist.
"""
from __future__ import annotations

import streamlit as st

from se_core.checkpoints import CheckpointError
from se_core.pairs import LoadedPair, WeightsMissing, load_pair


@st.cache_resource(max_entries=4, show_spinner="Loading models...")
def _pair(name: str) -> LoadedPair:
    return load_pair(name)


def get_pair(name: str) -> LoadedPair | None:
    """The loaded pair, or ``None`` after showing an ``st.error`` that says what to do."""
    try:
        return _pair(name)
    except WeightsMissing as e:
        st.error(f"Model weights are missing. {e}")
    except (CheckpointError, KeyError, ValueError) as e:
        st.error(f"The models of this pair cannot be loaded: {e}")
    return None


def try_pair(name: str) -> tuple[LoadedPair | None, str | None]:
    """The loaded pair and ``None``, or ``None`` and why it cannot be loaded (nothing shown).

    For pages that still have something to show without weights (Home, Models).
    """
    try:
        return _pair(name), None
    except WeightsMissing as e:
        return None, f"Model weights are missing. {e}"
    except (CheckpointError, KeyError, ValueError) as e:
        return None, f"The models of this pair cannot be loaded: {e}"
