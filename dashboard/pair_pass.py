"""One streaming pass of both models of a pair over a data set, run from a page: which models have weights
to key a cache by, the Compute button, the Stop button and the progress bar, and the messages when a pass
is stopped or fails. The Class-wise statistics and the Gate space samples both run through it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import streamlit as st

from dashboard import state
from se_core.analysis import stats as S
from se_core.analysis.stats import Progress, StopCheck
from se_core.config import stats_cache_dir
from se_core.data.datasets import ImageSet
from se_core.models.weights import LoadedModel, LoadedPair

Roles = tuple[tuple[str, LoadedModel], ...]
Compute = Callable[[str, LoadedModel, Progress, StopCheck], object]
T = TypeVar("T")


def cached_pass(pair: LoadedPair, data: ImageSet, *, what: str, key: str, path_of: Callable[[LoadedModel], Path],
                load: Callable[[Path], T], compute: Compute) -> dict[str, T] | None:
    """Every model's result on ``data`` from its disk cache file (``path_of``, read by ``load``), else the
    Compute controls of :func:`compute_both` (``None`` until the page reruns with the files written)."""
    roles = model_roles(pair, what)
    if roles is None:
        return None
    try:
        paths = {role: path_of(lm) for role, lm in roles}
    except OSError as e:  # a checkpoint gone since it was listed: no hash to key the cache by
        cache_error(what, e)
        return None
    except S.StatsError as e:  # a key that needs the model (the gate samples' size) and a model without sites
        st.error(f"The {what} cannot be computed for this model: {e}")
        return None
    if all(p.is_file() for p in paths.values()):
        try:
            return {role: load(p) for role, p in paths.items()}
        except S.StatsError:
            pass  # damaged cache entries are computed again below
    compute_both(roles, data, compute, what=what, key=key)
    return None


def model_roles(pair: LoadedPair, what: str) -> Roles | None:
    """(role, model) of the pair's models with a checkpoint file (a cache needs one), or None after saying why."""
    roles = tuple((role, lm) for role, lm in (("se", pair.se), ("vanilla", pair.vanilla)) if Path(lm.source).is_file())
    if not roles or roles[0][0] != "se":
        st.info(f"The SE model is {pair.se.source}: with no checkpoint file there are no {what} to keep; choose a "
                "pair whose SE model has weights.")
        return None
    if len(roles) == 1:
        st.caption(f"The vanilla model is {pair.vanilla.source} (an untrained stand-in): only the SE model's "
                   f"{what} are computed.")
    return roles


def compute_both(roles: Roles, data: ImageSet, compute: Compute, *, what: str, key: str) -> None:
    """Offer to compute ``what`` for every role on ``data`` with ``compute(role, model, progress, should_stop)``
    (which saves to the disk cache); reruns the page once all are done, so it redraws from the cache."""
    stop_key = f"{key}_stop_stats"
    if st.session_state.pop(stop_key, False):
        st.warning(f"Stopped: nothing was saved. Press **Compute {what}** to start again.")
    st.info(f"{data.name}: {len(data):,} images, {len(data.classes)} classes. The {what} for this model pair and data "
            "set have not been computed yet; they are kept on disk once done.")
    if not st.button(f"Compute {what}", key=f"{key}_compute", type="primary"):
        return
    st.button("Stop", key=f"{key}_stop_button", on_click=state.request_stop, args=(stop_key,),
              help="Stops between batches; nothing is saved.")
    bar = st.progress(0.0, text="Starting...")
    try:
        for i, (role, lm) in enumerate(roles):
            def prog(done: int, total: int, i: int = i, role: str = role) -> None:
                bar.progress((i + done / max(total, 1)) / len(roles), text=f"{role} model: batch {done}/{total}")

            compute(role, lm, prog, state.stopper(stop_key))
    except S.StatsCancelled:
        bar.empty()
        st.warning("Stopped: nothing was saved for the unfinished model.")
        return
    except S.StatsError as e:
        bar.empty()
        st.error(f"The {what} cannot be computed for this model: {e}")
        return
    except OSError as e:
        bar.empty()
        cache_error(what, e)
        return
    st.rerun()  # redraw from the disk cache, without the compute controls


def cache_error(what: str, e: OSError) -> None:
    """Say which file or folder failed (a read-only or full cache, a vanished checkpoint) instead of a traceback."""
    st.error(f"The {what} cannot be read or saved: {e.strerror or type(e).__name__}: {e.filename or e}. They are "
             f"kept in {stats_cache_dir()}; set SE_LENS_STATS_CACHE to a writable folder (and check that the "
             "checkpoint files are still there).")
