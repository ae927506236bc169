"""Inspect page (AppTest through dashboard/app.py): uploads, charts equal to direct probe calls, bad files."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from se_core.analysis.inspect import preprocess_for
from se_core.data.images import decode_image, to_tensor
from se_core.models.pairs import DEFAULT_PAIR, load_pair
from se_core.probe.sites import probe

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
_DTYPES = {"f4": np.float32, "f8": np.float64, "i1": np.int8, "u1": np.uint8, "i2": np.int16, "u2": np.uint16,
           "i4": np.int32, "u4": np.uint32}


def _png(seed: int = 5, size: tuple[int, int] = (48, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _array(v) -> np.ndarray:
    """Plotly JSON arrays: nested lists (None for NaN) or base64 typed arrays ({'dtype', 'bdata', 'shape'})."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=_DTYPES[v["dtype"]])
        if v.get("shape"):
            a = a.reshape([int(s) for s in str(v["shape"]).split(",")])
        return a.astype(np.float64)
    return np.array(_none_to_nan(v), dtype=np.float64)


def _none_to_nan(v):
    return [_none_to_nan(x) for x in v] if isinstance(v, list) else (np.nan if v is None else v)


def _charts(at: AppTest) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        out.setdefault(fig["layout"].get("meta", {}).get("chart", "?"), []).append(fig)
    return out


@pytest.fixture
def page(tiny_data_dir) -> AppTest:
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.switch_page("../pages/inspector.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


ESSENTIAL = ("top5", "gate_heatmap", "z_block")  # built on every rerun
MORE = {"inspect_more_gates": ("gate_box",), "inspect_more_z": ("z_heatmap_se", "z_heatmap_vanilla"),
        "inspect_more_compare": ("compare_s", "compare_z"), "inspect_more_energy": ("energy",)}


def _open(at: AppTest, *keys: str) -> None:
    """Open the lazy expanders ``keys`` (what a click does: their state is True) and rerun."""
    for k in keys or MORE:
        at.session_state[k] = True
    at.run()
    assert not at.exception, at.exception


def _plain(v):
    """A Plotly JSON value with typed arrays decoded, so plotly's validating constructor can read it."""
    if isinstance(v, dict) and "bdata" in v:
        return _array(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return [_plain(x) for x in v] if isinstance(v, list) else v


def test_default_samples_fill_the_page(page: AppTest) -> None:
    charts = _charts(page)
    assert page.multiselect(key="inspect_samples").value == ["cat_0000", "ship_0000"]
    assert sorted(charts) == sorted(ESSENTIAL), "the default view builds only the essential charts"
    assert len(charts["top5"]) == 2
    assert len(page.expander) == len(MORE) and all(not e.proto.expanded for e in page.expander)
    assert any(b.label.startswith("Download z, s") for b in page.get("download_button"))

    _open(page)  # every secondary chart is one click away
    charts = _charts(page)
    for kind in ESSENTIAL + tuple(k for kinds in MORE.values() for k in kinds):
        assert kind in charts, f"missing chart {kind}; have {sorted(charts)}"
    assert [t["name"] for t in charts["compare_s"][0]["data"]] == ["cat_0000", "ship_0000"]
    box = charts["gate_box"][0]["data"]
    assert [t["name"] for t in box] == ["cat_0000", "ship_0000"] and len(box[0]["x"]) == len(_array(box[0]["y"]))

    # charts are built from plain dicts without validation: every one must pass plotly's schema
    for figs in charts.values():
        for fig in figs:
            go.Figure(_plain(fig))
    # ... and an open expander stays open after a new upload
    page.file_uploader[0].set_value(("mine.png", _png(), "image/png"))
    page.run()
    assert "energy" in _charts(page) and len(_charts(page)["top5"]) == 3


def test_csv_download_is_built_on_click(page: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.runtime.media_file_manager import MediaFileManager

    deferred = {}
    add = MediaFileManager.add_deferred

    def spy(self, fn, mimetype, coordinates, file_name=None, **kw):
        deferred[file_name] = fn
        return add(self, fn, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    page.run()
    (name, make), = ((k, v) for k, v in deferred.items() if k.startswith("se_lens_inspect_"))
    from se_core.analysis.inspect import inspect
    from se_core.data.samples import read_sample
    res = inspect(load_pair(DEFAULT_PAIR), [decode_image(read_sample(n)) for n in ("cat_0000", "ship_0000")],
                  ["cat_0000", "ship_0000"])
    direct = res.to_frame()
    got = pd.read_csv(io.BytesIO(make()))
    assert list(got.columns) == list(direct.columns) and len(got) == len(direct)
    np.testing.assert_allclose(got["z"], direct["z"], rtol=1e-6, atol=1e-7)
    assert f"{len(direct):,} rows" in " ".join(c.value for c in page.caption)

    # the energy summary is on the default view (its per-channel chart is one click away)
    eb, ea = (float(e["layer3.0.se"][0].sum()) for e in (res.se.energy_before, res.se.energy_after))
    assert [m.value for m in page.metric] == [f"{eb:.4g}", f"{ea:.4g}", f"{ea / eb:.1%}"]


def test_upload_heatmap_equals_direct_probe(page: AppTest) -> None:
    at = page
    png = _png()
    at.file_uploader[0].set_value(("mine.png", png, "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    charts = _charts(at)
    assert len(charts["top5"]) == 3  # the upload first, then the two default samples
    heat = charts["gate_heatmap"][0]
    assert heat["layout"]["meta"]["image"] == "mine.png"  # a new upload becomes the focus image

    pair = load_pair(DEFAULT_PAIR)
    x = to_tensor(decode_image(png), preprocess_for(pair.se))
    direct = probe(pair.se.model, x)
    gates = [s for s in direct.sites if s.gate]
    trace = heat["data"][0]
    assert list(trace["y"]) == [s.label for s in gates]
    mat = _array(trace["z"])
    for r, site in enumerate(gates):
        s = direct.s[site.name][0].numpy()
        np.testing.assert_allclose(mat[r, : len(s)], s, rtol=0, atol=1e-6)
        assert np.isnan(mat[r, len(s):]).all()

    # the SE model's top-5 bars are its softmax
    probs = torch.softmax(direct.logits, 1)[0].numpy()
    bars = charts["top5"][0]["data"][0]
    np.testing.assert_allclose(sorted(_array(bars["x"]), reverse=True), np.sort(probs)[::-1][:5], atol=1e-6)


def test_bad_file_with_good_one(page: AppTest) -> None:
    at = page
    at.file_uploader[0].set_value([("good.png", _png(7), "image/png"),
                                   ("broken.png", b"this is not an image at all", "image/png")])
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "broken.png" in errors[0] and "upload" in errors[0].lower()
    assert next(s for s in at.selectbox if s.label == "Image").options == ["good.png", "cat_0000", "ship_0000"]
    assert [f["layout"]["meta"]["image"] for f in _charts(at)["top5"]] == ["good.png", "cat_0000", "ship_0000"]


def test_intervention_and_block_controls(page: AppTest) -> None:
    at = page
    at.multiselect(key="inspect_samples").set_value(["cat_0000"])
    at.select_slider(key=f"inspect_block_{DEFAULT_PAIR}").set_value("s1.b1")
    at.multiselect(key=f"inspect_off_{DEFAULT_PAIR}").set_value(["s1.b0", "s3.b2"])
    _open(at, "inspect_more_energy")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    charts = _charts(at)
    assert charts["energy"][0]["layout"]["meta"]["site"] == "layer1.1.se"
    assert "intervention" in charts
    table = at.dataframe[0].value
    assert list(table["image"]) == ["cat_0000"] and {"top-1 before", "top-1 after", "changed"} <= set(table.columns)

    pair = load_pair(DEFAULT_PAIR)
    from se_core.data.samples import read_sample
    from se_core.probe.sites import Intervention, intervene
    x = to_tensor(decode_image(read_sample("cat_0000")), preprocess_for(pair.se))
    logits = intervene(pair.se.model, x, [Intervention("layer1.0.se"), Intervention("layer3.2.se")])
    changed = charts["intervention"][0]["data"][1]
    classes = pair.se.class_names
    p = torch.softmax(logits, 1)[0].numpy()
    np.testing.assert_allclose(_array(changed["y"]), [p[classes.index(c)] for c in changed["x"]], atol=1e-6)


def test_no_images_and_missing_weights(page: AppTest, tiny_data_dir) -> None:
    at = page
    at.multiselect(key="inspect_samples").set_value([])
    at.run()
    assert not at.exception and not at.error
    assert any("Upload an image" in i.value for i in at.info)
    assert not at.get("plotly_chart")

    (tiny_data_dir / "checkpoints" / "resnet20-s0.safetensors").unlink()
    st.cache_resource.clear()
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "resnet20-s0.safetensors" in at.error[0].value



def test_uploads_carry_over_between_image_pages(page: AppTest) -> None:
    """#17 (5c): an image uploaded on Inspect is on Attributions (and the one uploaded there back on Inspect,
    whose uploader Streamlit empties on leaving); each page keeps its own choice among them."""
    at = page
    at.file_uploader[0].set_value(("mine.png", _png(5), "image/png"))
    at.run()
    assert len(_charts(at)["top5"]) == 3
    at.session_state["attr_methods"] = ["saliency"]
    at.switch_page("../pages/attributions.py")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shared = at.multiselect(key="attributions_shared")
    assert [shared.format_func(d) for d in shared.value] == ["mine.png"]  # selected, and shown first
    assert at.selectbox(key="attr_image").value == "mine.png"
    at.file_uploader[0].set_value(("other.png", _png(6), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="attr_image").options[:2] == ["other.png", "mine.png"]

    at.switch_page("../pages/inspector.py")
    at.run()
    assert not at.exception and not at.error
    shared = at.multiselect(key="inspect_shared")
    assert sorted(shared.format_func(d) for d in shared.value) == ["mine.png", "other.png"]
    assert len(_charts(at)["top5"]) == 4
    shared.unselect(next(d for d in shared.value if shared.format_func(d) == "other.png"))
    at.run()  # taken out here: gone from Inspect, still on Attributions
    assert len(_charts(at)["top5"]) == 3
    at.run()
    assert [at.multiselect(key="inspect_shared").format_func(d) for d in at.multiselect(key="inspect_shared").value] \
        == ["mine.png"]
    at.switch_page("../pages/attributions.py")
    at.run()
    assert not at.exception
    assert set(at.selectbox(key="attr_image").options) >= {"mine.png", "other.png"}
