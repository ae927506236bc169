"""Attributions page (AppTest): an uploaded PNG, four methods, charts equal to direct se_core calls."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from se_core.analysis.attribution import METHODS, AttributionConfig, attribute, predict
from se_core.analysis.inspect import preprocess_for
from se_core.data.images import decode_image, to_tensor
from se_core.models.pairs import DEFAULT_PAIR, load_pair

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
STEPS = 8
_DTYPES = {"f4": np.float32, "f8": np.float64, "i1": np.int8, "u1": np.uint8, "i2": np.int16, "u2": np.uint16,
           "i4": np.int32, "u4": np.uint32}


def _png() -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _array(v) -> np.ndarray:
    """Plotly JSON arrays: plain nested lists or base64 typed arrays ({'dtype', 'bdata', 'shape'})."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=_DTYPES[v["dtype"]])
        shape = v.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")])
        return a.astype(np.float64)
    return np.asarray(v, dtype=np.float64)


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _heatmaps(fig: dict) -> dict[str, dict]:
    return {t["name"]: t for t in fig["data"] if t.get("type") == "heatmap"}


@pytest.fixture
def app(tiny_data_dir) -> AppTest:
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("../pages/attributions.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_shows_maps_equal_to_direct_attribution(app):
    at = app
    png = _png()
    at.file_uploader[0].set_value(("probe.png", png, "image/png"))
    at.multiselect(key="attributions_samples").set_value([])
    at.number_input(key="attr_steps").set_value(STEPS)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]

    pair = load_pair(DEFAULT_PAIR)
    x = to_tensor(decode_image(png), preprocess_for(pair.se))
    target = int(np.argmax(predict(pair.se.model, x)))
    figs = _figures(at)
    pair_figs = [f for f in figs if {"SE", "vanilla"} <= set(_heatmaps(f))]
    diff_figs = [f for f in figs if "SE − vanilla" in _heatmaps(f)]
    assert len(pair_figs) == len(diff_figs) == len(METHODS)
    for method, fig, dfig in zip(METHODS, pair_figs, diff_figs):
        cfg = AttributionConfig(method, n_steps=STEPS, internal_batch_size=16, baseline="zero", occlusion_window=8,
                                occlusion_stride=4, layer="layer3")
        maps = {}
        for role, lm in (("SE", pair.se), ("vanilla", pair.vanilla)):
            direct = attribute(lm.model, x, target, cfg).map
            trace = _heatmaps(fig)[role]
            np.testing.assert_allclose(_array(trace["customdata"]), direct, rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(_array(trace["z"]), direct / np.abs(direct).max(), rtol=1e-4, atol=1e-6)
            maps[role] = direct / np.abs(direct).max()
        # one colour axis for both models; the difference map is centred on 0
        assert _heatmaps(fig)["SE"]["coloraxis"] == _heatmaps(fig)["vanilla"]["coloraxis"]
        np.testing.assert_allclose(_array(_heatmaps(dfig)["SE − vanilla"]["z"]), maps["SE"] - maps["vanilla"],
                                   atol=1e-5)
        assert dfig["layout"]["coloraxis"]["cmid"] == 0
        assert dfig["layout"]["coloraxis"]["cmin"] == -dfig["layout"]["coloraxis"]["cmax"]

    at.button(key="attr_quality_button").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert len(table) == 2 * len(METHODS)
    assert np.isfinite(table[["infidelity", "sensitivity_max"]].to_numpy()).all()


def test_page_default_sample_and_target_choice(app):
    at = app  # no upload: the uploads helper's default samples; the first one is attributed
    at.multiselect(key="attr_methods").set_value(["saliency"])
    at.run()
    assert not at.exception and not at.error
    from se_core.data.samples import read_sample

    first = at.multiselect(key="attributions_samples").value[0]
    pair = load_pair(DEFAULT_PAIR)
    x = to_tensor(decode_image(read_sample(first)), preprocess_for(pair.se))
    target = next(s for s in at.selectbox if s.label == "Target class")
    assert target.value == int(np.argmax(predict(pair.se.model, x)))  # default: the SE model's top-1
    other = 9 if target.value != 9 else 0
    target.set_value(other)
    at.run()
    assert not at.exception and not at.error
    (fig, _dfig) = _figures(at)
    direct = attribute(pair.se.model, x, other, AttributionConfig("saliency")).map
    np.testing.assert_allclose(_array(_heatmaps(fig)["SE"]["customdata"]), direct, rtol=1e-4, atol=1e-7)


def test_new_upload_becomes_the_chosen_image(app):
    at = app
    assert at.selectbox(key="attr_image").value == "cat_0000"  # default samples, first one chosen
    at.file_uploader[0].set_value(("mine.png", _png(), "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="attr_image").value == "mine.png"
    at.selectbox(key="attr_image").set_value("ship_0000").run()  # the user's own pick then sticks
    assert at.selectbox(key="attr_image").value == "ship_0000"


def test_faithfulness_section_shows_areas_and_curves(app):
    at = app  # default samples, the first one chosen; each model scored with its own map on its own input
    at.multiselect(key="attr_methods").set_value(["saliency", "layer_gradcam"])
    at.number_input(key="attr_faith_steps").set_value(8)
    at.run()
    assert not at.exception and not at.error
    assert not at.dataframe  # nothing costly before the click
    at.button(key="attr_faith_button").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (table,) = [d.value for d in at.dataframe]
    assert list(table.columns) == ["method", "model", "deletion_auc", "insertion_auc"]
    assert list(zip(table["method"], table["model"])) == [
        (m, r) for m in ("Saliency", "Layer Grad-CAM", "Random order") for r in ("SE", "vanilla")]
    aucs = table[["deletion_auc", "insertion_auc"]].to_numpy()
    assert np.isfinite(aucs).all() and ((aucs >= 0) & (aucs <= 1)).all()

    from se_core.analysis.faithfulness import deletion_insertion
    from se_core.data.samples import read_sample

    pair = load_pair(DEFAULT_PAIR)
    x = to_tensor(decode_image(read_sample(at.selectbox(key="attr_image").value)), preprocess_for(pair.se))
    target = next(s for s in at.selectbox if s.label == "Target class").value
    for role, lm in (("SE", pair.se), ("vanilla", pair.vanilla)):
        direct = deletion_insertion(lm.model, x, target, attribute(lm.model, x, target, AttributionConfig("saliency")).map,
                                    steps=8, batch_size=16)
        row = table[(table["method"] == "Saliency") & (table["model"] == role)].iloc[0]
        assert row["deletion_auc"] == pytest.approx(direct.deletion.auc, abs=1e-6)
        assert row["insertion_auc"] == pytest.approx(direct.insertion.auc, abs=1e-6)

    (fig,) = [f for f in _figures(at) if any(t.get("name") == "Random order" for t in f["data"])]
    assert len(fig["data"]) == 3 * 4  # three lines in each of the 2 x 2 plots
    assert {t["xaxis"] for t in fig["data"]} == {"x", "x2", "x3", "x4"}
    assert all(len(_array(t["x"])) == 9 for t in fig["data"])
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download AUC table (CSV)" in labels

    at.run()  # the click sticks until an input changes
    assert len(at.dataframe) == 1
    at.number_input(key="attr_faith_steps").set_value(4)
    at.run()
    assert not at.dataframe


def test_a_stopped_run_says_so_and_continues_from_what_is_cached(app):
    """#18: attributions run method by method and model by model with a Stop button; after a stop the page
    says so and computes nothing until Continue, then shows every method's maps."""
    at = app
    at.file_uploader[0].set_value(("probe.png", _png(), "image/png"))
    at.multiselect(key="attributions_samples").set_value([])
    at.multiselect(key="attr_methods").set_value(["saliency", "layer_gradcam"])
    at.run()
    assert not at.exception and [b.key for b in at.button if b.key == "attr_stop_button"]
    assert len([f for f in _figures(at) if {"SE", "vanilla"} <= set(_heatmaps(f))]) == 2
    at.button(key="attr_stop_button").click()  # the click's rerun would interrupt a run in progress
    at.run()
    assert any("Stopped" in str(i.value) for i in at.info) and not [f for f in _figures(at) if _heatmaps(f)]
    at.button(key="attr_continue").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len([f for f in _figures(at) if {"SE", "vanilla"} <= set(_heatmaps(f))]) == 2
