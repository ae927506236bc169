"""Ablations page with kept checkpoints (AppTest, #20): a variant picked beside its chart (or by clicking its
seed's dot) opens as the sidebar's pair on Gate space; the axis' variants compared per block; a variant whose
vanilla twin is not kept says so; a table without kept checkpoints says how to make them."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support import run_tiny_sweep, tiny_sweep_spec
from test_classwise_page import _array, _charts

from se_core.analysis.gates import compare as C
from se_core.models.ablation_models import pair_name
from se_core.runs.ablate import plan, provenance_path

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SPEC = tiny_sweep_spec("tiny-var").replace('excitation = ["sigmoid"]', 'excitation = ["sigmoid", "tanh"]')


@pytest.fixture(scope="module")
def kept_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real tiny sweep (no SE, sigmoid = default SE, tanh; one seed, one epoch) with its kept checkpoints."""
    tmp = tmp_path_factory.mktemp("abl_var")
    table = tmp / "abl" / "tiny-var.csv"
    ids = {t.setting: t.trial_id for t in plan(run_tiny_sweep(tmp, SPEC, table, 3))}
    return {"table": table, "kept": table.parent / "tiny-var", "ids": ids}


def _app(monkeypatch: pytest.MonkeyPatch, shipped: Path, cache: Path) -> AppTest:
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(shipped))  # the tables and the kept checkpoints beside them
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(cache))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("../pages/ablations.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _shipped(kept_sweep: dict, tmp_path: Path, kept: bool = True) -> Path:
    """An ablations folder with the sweep's table and provenance, and (``kept``) its kept checkpoints."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for f in (kept_sweep["table"], provenance_path(kept_sweep["table"])):
        shutil.copy(f, shipped / f.name)
    if kept:
        shutil.copytree(kept_sweep["kept"], shipped / kept_sweep["kept"].name)
    return shipped


def test_kept_variants_open_as_pairs_and_compare_per_block(tiny_data_dir, kept_sweep: dict, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ids = kept_sweep["ids"]
    sig, tanh = pair_name("tiny-var", ids["SE (default)"]), pair_name("tiny-var", ids["tanh"])
    at = _app(monkeypatch, _shipped(kept_sweep, tmp_path), tmp_path / "cache")
    assert not at.error, [e.value for e in at.error]
    assert not any("No checkpoint of this table" in i.value for i in at.info)
    # the sidebar lists both variants (each vs the no-SE trial of its seed) after the built-in pairs
    side = at.selectbox(key="pair")
    assert "Ablation tiny-var: Excitation gate: tanh, seed 0 vs no SE" in side.options
    # the picker beside the chart: the axis' kept SE trials in the chart's order
    pick = at.selectbox(key="abl-excitation-variant")
    assert pick.value == sig and [o.split(" · ")[0] for o in pick.options] == ["sigmoid", "tanh"]
    # clicking the no-SE dot picks nothing (it is every variant's twin); clicking tanh's seed dot picks its trial
    at.session_state["abl-excitation-ours"] = {"selection": {"points": [{"customdata": [0, ids["no SE"]]}],
                                                             "point_indices": [], "box": [], "lasso": []}}
    at.run()
    assert any("every variant's vanilla twin" in c.value for c in at.caption)
    assert at.selectbox(key="abl-excitation-variant").value == sig
    at.session_state["abl-excitation-ours"] = {"selection": {"points": [{"customdata": [0, ids["tanh"]]}],
                                                             "point_indices": [], "box": [], "lasso": []}}
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="abl-excitation-variant").value == tanh
    # the comparison: computed once on a fixed probe set, the charts are the library's numbers
    at.number_input(key="abl-excitation-cmp-n").set_value(100)
    at.run()
    assert "variant_gates" not in _charts(at)
    at.button(key="abl-excitation-cmp-go").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    charts = _charts(at)
    (gates,), (dep,) = charts["variant_gates"], charts["variant_dependence"]
    data = C.probe_set("cifar10-jpeg", 100)
    vs = [C.Variant("sigmoid", kept_sweep["kept"] / f"{ids['SE (default)']}.safetensors", ids["SE (default)"]),
          C.Variant("tanh", kept_sweep["kept"] / f"{ids['tanh']}.safetensors", ids["tanh"])]
    frame = C.compare_variants(vs, data, compute=False)  # from the cache the page filled
    assert [t["name"] for t in gates["data"]] == ["sigmoid", "tanh"]
    np.testing.assert_allclose(_array(gates["data"][1]["median"]), frame.loc[frame["variant"] == "tanh", "q50"])
    solid = next(t for t in dep["data"] if t["name"] == "tanh: input-dependent")
    np.testing.assert_allclose(_array(solid["y"]), frame.loc[frame["variant"] == "tanh", "input_share"])
    assert "seed 0, 100 test images" in gates["layout"]["title"]["text"]
    # the picked variant opens on Gate space as the sidebar's pair
    at.button(key="abl-excitation-variant-gatespace").click()
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Gate space" and at.selectbox(key="pair").value == tanh
    assert not at.error, [e.value for e in at.error]


def test_a_variant_without_its_vanilla_twin_says_which_trial_is_missing(tiny_data_dir, kept_sweep: dict,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = kept_sweep["ids"]
    root = _shipped(kept_sweep, tmp_path)
    for suffix in (".safetensors", ".json"):
        (root / "tiny-var" / f"{ids['no SE']}{suffix}").unlink()
    at = _app(monkeypatch, root, tmp_path / "cache")
    assert not at.error
    assert at.selectbox(key="abl-excitation-variant").options  # still listed here, to be told why
    warn = next(w.value for w in at.warning if "cannot be opened as a pair yet" in w.value)
    assert ids["no SE"] in warn and "python -m se_core.ablate run" in warn
    assert at.button(key="abl-excitation-variant-inspect").disabled
    assert not [o for o in at.selectbox(key="pair").options if o.startswith("Ablation")]  # not offered in the sidebar
    # a link to it opens it, and every page says which trial is missing
    st.cache_resource.clear()
    link = AppTest.from_file(APP, default_timeout=240)
    link.query_params["pair"] = pair_name("tiny-var", ids["tanh"])
    link.run()
    link.switch_page("../pages/inspector.py")
    link.run()
    assert not link.exception and link.selectbox(key="pair").value == pair_name("tiny-var", ids["tanh"])
    err = " ".join(e.value for e in link.error)
    assert "Model weights are missing" in err and ids["no SE"] in err and "python -m se_core.ablate run" in err


def test_a_table_without_kept_checkpoints_says_how_to_make_them(tiny_data_dir, kept_sweep: dict, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, _shipped(kept_sweep, tmp_path, kept=False), tmp_path / "cache")
    assert not at.error
    note = next(i.value for i in at.info if "No checkpoint of this table" in i.value)
    assert "python -m se_core.ablate run sweeps/default.toml" in note and "tiny-var" in note
    assert not [s for s in at.selectbox if s.key == "abl-excitation-variant"]
    assert "variant_gates" not in _charts(at)


@pytest.mark.parametrize("page", ["home", "models", "inspector", "attributions", "classwise", "gatespace"])
def test_every_page_opens_a_kept_variant_from_its_link(page: str, tiny_data_dir, kept_sweep: dict, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    name = pair_name("tiny-var", kept_sweep["ids"]["tanh"])
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(kept_sweep["table"].parent))
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["pair"] = name
    at.run()
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="pair").value == name
