"""Models in ``st.cache_resource`` (shared by all sessions, bounded), results in ``st.cache_data``.

Cached models are shared between users: every computation on them runs on a pooled view
(``se_core.probe.hooks.borrowed_view``: shared weights, its own hooks and mode), never on the model itself.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from se_core.analysis import stats as S
from se_core.analysis.diagram import SEWidth, se_widths
from se_core.config import data_dir
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import PAIRS, load_pair, weights_stamp
from se_core.models.registry import get_spec
from se_core.models.user_models import ModelRecipe
from se_core.models.weights import LoadedModel, LoadedPair, WeightsMissing
from se_core.nn.se import SEConfig
from se_core.runs import history


@st.cache_resource(max_entries=4, show_spinner="Loading models...")
def _pair(name: str, stamp: tuple) -> LoadedPair:
    """``stamp`` (:func:`se_core.models.pairs.weights_stamp`) keys the cache by the files too, so a pair
    re-trained or shipped under the same name while the server runs is loaded again."""
    return load_pair(name)


def get_pair(name: str) -> LoadedPair | None:
    """The loaded pair, or ``None`` after showing an ``st.error`` that says what to do."""
    try:
        return _pair(name, weights_stamp(name))
    except WeightsMissing as e:
        st.error(f"Model weights are missing. {e}")
    except (CheckpointError, KeyError, ValueError, RuntimeError, ImportError) as e:
        st.error(f"The models of this pair cannot be loaded: {_one_line(e)}")
    return None


def try_pair(name: str) -> tuple[LoadedPair | None, str | None]:
    """The loaded pair and ``None``, or ``None`` and why it cannot be loaded (nothing shown).

    For pages that still have something to show without weights (Home, Models).
    """
    try:
        return _pair(name, weights_stamp(name)), None
    except WeightsMissing as e:
        return None, f"Model weights are missing. {e}"
    except (CheckpointError, KeyError, ValueError, RuntimeError, ImportError) as e:
        return None, f"The models of this pair cannot be loaded: {_one_line(e)}"


def _one_line(e: BaseException) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return (str(text).strip().splitlines() or [type(e).__name__])[0]


@st.cache_data(ttl=30, show_spinner=False)
def library_weights() -> list[dict]:
    """Where each ImageNet pair's weights are (or are expected), re-checked every 30 s."""
    from se_core.models.zoo import availability

    return availability()


@st.cache_resource(max_entries=4, show_spinner="Checking your checkpoint...")
def _user_model(file: str, arch: str | None, se_json: str | None, class_names: tuple[str, ...], label: str,
                require_se: bool) -> LoadedModel:
    from se_core.models.user_models import load_user_model, stored_path

    return load_user_model(stored_path(file), arch, SEConfig.from_json(se_json) if se_json else None,
                           class_names or None, require_se=require_se, label=label)


def user_model(file: str, arch: str | None, se_json: str | None, class_names: tuple[str, ...], label: str,
               require_se: bool) -> tuple[LoadedModel | None, str | None]:
    """A stored upload loaded (shapes checked), or ``None`` and the reason; cached by its settings."""
    try:
        return _user_model(file, arch, se_json, class_names, label, require_se), None
    except (CheckpointError, KeyError, ValueError, RuntimeError, ImportError) as e:
        return None, _one_line(e)


@st.cache_resource(max_entries=8, show_spinner="Loading the counterpart...")
def _recipe_model(key: str, _recipe: ModelRecipe) -> LoadedModel:
    return _recipe.load("vanilla")


def recipe_model(recipe: ModelRecipe) -> tuple[LoadedModel | None, str | None]:
    """A counterpart from library weights or a random initialisation, or ``None`` and the reason; shared."""
    try:
        return _recipe_model(repr(recipe), recipe), None
    except (CheckpointError, WeightsMissing, KeyError, ValueError, RuntimeError, ImportError) as e:
        return None, _one_line(e)


@st.cache_data(max_entries=8, show_spinner=False)
def _movement(path: str, mtime_ns: int) -> pd.DataFrame:
    return S.load_stats(path).movement_frame()


def shipped_movement(pair_name: str) -> tuple[pd.DataFrame | None, str]:
    """(gate movement per block of the pair's SE model from its shipped statistics, or None; the file's name or why not)."""
    try:
        path = S.shipped_paths(pair_name)["se"]
    except KeyError:
        return None, "this pair has no shipped statistics"
    if not path.is_file():
        return None, f"{path.name} is not shipped yet"
    try:
        return _movement(str(path), path.stat().st_mtime_ns), path.name
    except S.StatsError as e:
        return None, f"{path.name} cannot be read: {e}"


def own_pairs_results(names: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`se_core.runs.history.own_pairs_results` of pairs ``names``, cached per state of their runs folders."""
    specs = [PAIRS[n] for n in names]
    return _own_pairs_results(names, tuple(history.fingerprint(data_dir() / p.shipped.runs) for p in specs))


@st.cache_data(max_entries=4, show_spinner=False)
def _own_pairs_results(names: tuple[str, ...], fps: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    return history.own_pairs_results([PAIRS[n] for n in names], data_dir())


@st.cache_data(max_entries=8, show_spinner="Measuring parameters and multiply-adds...")
def costs(names: tuple[str, ...]) -> pd.DataFrame:
    """Parameters and multiply-adds of the registered architectures ``names`` (:func:`se_core.models.costs.cost_table`)."""
    from se_core.models.costs import cost_table

    return cost_table(list(names))


@st.cache_data(max_entries=1, show_spinner=False)
def hardware() -> str:
    """A one-line description of this machine (:func:`se_core.runs.train.hardware`)."""
    from se_core.util.provenance import hardware as describe

    return describe()


@st.cache_data(max_entries=16, show_spinner=False)
def registry_widths(arch: str, se_json: str) -> list[SEWidth]:
    """SE widths of ``arch`` built (random init) with the given config: for when weights are missing."""
    spec = get_spec(arch)
    return se_widths(spec.build(SEConfig.from_json(se_json) if se_json and spec.takes_se else None))
