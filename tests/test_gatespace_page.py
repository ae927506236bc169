"""Gate space page (AppTest, #20): computed once on the shipped pair and a small CIFAR-10 subset, its charts
equal to the library's numbers, a selection showing the images, one opened on Inspect with its gates."""
from __future__ import annotations

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support import REPO_ROOT, needs_cifar
from test_classwise_page import _array, _charts, _folder, _ok

from se_core.analysis import gates as G

APP = str(REPO_ROOT / "dashboard" / "app.py")
SHIPPED = REPO_ROOT / "data" / "checkpoints"
N = 100


@pytest.fixture
def env(tmp_path, monkeypatch):
    if not (SHIPPED / "se_resnet20-s0.safetensors").is_file():
        pytest.skip("the shipped checkpoints are not in data/checkpoints")
    monkeypatch.setenv("SE_LENS_DATA_DIR", str(REPO_ROOT / "data"))
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SE_LENS_DATA_ROOTS", str(tmp_path))
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path / "cache"


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("../pages/gatespace.py")
    at.run()
    return at


@needs_cifar
def test_gate_space_page_on_the_shipped_pair(env):
    at = _open()
    _ok(at)
    assert at.radio(key="gs_source").value == "cifar"  # no shipped per-image vectors: compute here
    at.number_input(key="gs_cifar_n").set_value(N)
    at.run()
    cmd = next(c.value for c in at.caption if "python -m se_core.gates" in c.value).split("`")[1]
    assert at.button(key="gs_compute") is not None and not at.get("plotly_chart")
    at.button(key="gs_compute").click()
    at.run()
    _ok(at)
    files = sorted(env.glob("gates-*.npz"))
    assert len(files) == 2  # SE and vanilla, keyed by checkpoint hash + data digest
    assert cmd == f"python -m se_core.gates --pair cifar10-resnet20 --data cifar10-jpeg --subset {N}"
    se = next(G.load_sample(f) for f in files if G.load_sample(f).gate_sites)
    assert se.n_images == N and {m.label: m.value for m in at.metric}["Images"] == str(N)
    charts = _charts(at)
    # the map: per class, the points are the library's PCA of the last block's gates
    (gmap,) = charts["gate_map"]
    site = gmap["layout"]["meta"]["site"]
    assert site == se.gate_sites[-1].name
    proj = G.pca(se.values("s", site), se.labels, se.num_classes)
    airplane = next(t for t in gmap["data"] if t["name"] == se.classes[0])
    np.testing.assert_allclose(_array(airplane["x"]), proj.coords[se.labels == 0, 0], rtol=1e-6, atol=1e-9)
    assert f"{proj.explained[0]:.1%}" in gmap["layout"]["xaxis"]["title"]["text"]
    # top channels: the Jaccard matrix of the library's top-8 sets
    (jac,) = charts["jaccard"]
    top = G.top_channels(se.values("s", site), se.labels, se.classes, 8)
    z = jac["data"][0]["z"]
    z = _array(z).reshape([int(d) for d in str(z["shape"]).split(",")]) if isinstance(z, dict) else _array(z)
    np.testing.assert_allclose(z, top.jaccard())
    # input dependence: the library's table, gates of the SE model and z of both models
    (depth,) = charts["input_vs_depth"]
    frame = G.dependence_frame(se, "s")
    solid = next(t for t in depth["data"] if t["name"] == "SE model · gates s: input-dependent")
    np.testing.assert_allclose(_array(solid["y"]), frame["input_share"], rtol=1e-6)
    assert {t["legendgroup"] for t in depth["data"]} == {"SE model · gates s", "SE model · squeeze z",
                                                         "vanilla model · squeeze z"}
    assert "variance_split" in charts and "top_channels" in charts
    # trained models: the squeeze of the last block is far more class-specific than that of the first, and
    # the shipped SE model has frozen blocks (docs/training.md), drawn grey
    zf = G.dependence_frame(se, "z")
    assert zf["between_share"].iloc[-1] > 2 * zf["between_share"].iloc[0]
    (spread,) = charts["gate_spread"]
    assert spread["data"][1]["text"] == ["frozen" if f else "" for f in frame["frozen"]] and frame["frozen"].any()
    # a selection on the map shows those images; one opens on Inspect, focused, with its gate heatmap
    key = f"gs_map_se:s_{site}"
    rows = list(np.flatnonzero(se.labels == 3)[:3])
    at.session_state[key] = {"selection": {"points": [{"customdata": int(r)} for r in rows] + [{"customdata": -1}],
                                           "point_indices": [], "box": [], "lasso": []}}
    at.run()
    _ok(at)
    assert any("3 image(s) selected" in m.value for m in at.markdown)
    (pictures,) = at.get("image")
    assert pictures.captions == [f"{se.classes[3]} · {int(se.index[r])}" for r in rows]
    pick = at.selectbox(key="gs_open_pick")
    assert pick.options and len(pick.options) == 3
    at.button(key="gs_open").click()
    at.run()
    _ok(at)
    name = f"{se.classes[3]}_{int(se.index[rows[0]]):05d}.png"
    assert at.title[0].value == "Inspect"
    focus = next(s for s in at.selectbox if s.label == "Image")
    assert focus.value == name
    heat = _charts(at)["gate_heatmap"]
    assert [h["layout"]["meta"]["image"] for h in heat] == [name]
    # a second session reads the disk cache: nothing computed again
    stamps = [f.stat().st_mtime_ns for f in files]
    at2 = _open()
    at2.number_input(key="gs_cifar_n").set_value(N)
    at2.run()
    _ok(at2)
    assert "gate_map" in _charts(at2) and not any(b.key == "gs_compute" for b in at2.button)
    assert [f.stat().st_mtime_ns for f in sorted(env.glob("gates-*.npz"))] == stamps


def test_no_data_chosen_says_what_to_do(env):
    at = _open()
    at.radio(key="gs_source").set_value("folder")
    at.run()
    _ok(at)
    assert any("Type a folder" in i.value for i in at.info) and not at.get("plotly_chart")


@needs_cifar
def test_squeeze_of_the_vanilla_model_and_other_k(env):
    at = _open()
    at.number_input(key="gs_cifar_n").set_value(50)
    at.run()
    at.button(key="gs_compute").click()
    at.run()
    _ok(at)
    at.radio(key="gs_series").set_value("vanilla:z")
    at.run()
    _ok(at)
    van = next(G.load_sample(f) for f in env.glob("gates-*.npz") if not G.load_sample(f).gate_sites)
    charts = _charts(at)
    (gmap,) = charts["gate_map"]
    assert gmap["layout"]["meta"]["what"] == "z" and gmap["layout"]["meta"]["site"] == van.z_sites[-1].name
    site = van.z_sites[-1].name
    at.number_input(key=f"gs_top_k_{van.site(site).channels}").set_value(3)
    at.run()
    _ok(at)
    top = G.top_channels(van.values("z", site), van.labels, van.classes, 3, standardize=True)
    (jac,) = _charts(at)["jaccard"]
    assert jac["layout"]["meta"]["k"] == 3
    shown = next(m.value for m in at.markdown if m.value.startswith("In every class's top 3"))
    assert shown.startswith(f"In every class's top 3: {', '.join(map(str, top.shared())) or 'none'}.")
    for cls, own in top.unique().items():
        assert (f"**{cls}**: {', '.join(map(str, own))}" in shown) == bool(own)


def _compute_on_folder(root) -> AppTest:
    at = _open()
    at.radio(key="gs_source").set_value("folder")
    at.run()
    at.text_input(key="gs_folder").input(str(root))
    at.run()
    at.button(key="gs_compute").click()
    at.run()
    return at


def test_disk_size_and_an_unwritable_cache(env, tmp_path, monkeypatch):
    """"Kept on disk" is the .npz files' size; a cache folder that cannot be written is an error naming it."""
    _folder(tmp_path / "mine")
    at = _compute_on_folder("mine")
    _ok(at)
    files = sorted(env.glob("gates-*.npz"))
    assert len(files) == 2
    samples = [G.load_sample(f) for f in files]
    assert samples[0].n_images == samples[1].n_images == 18
    np.testing.assert_array_equal(samples[0].index, samples[1].index)
    size = sum(f.stat().st_size for f in files)
    kept = next(m for m in at.metric if m.label == "Kept on disk")
    assert kept.value == f"{size / 1e6:.1f} MB" and kept.help.startswith(f"{size:,} bytes:")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(blocked))
    at = _compute_on_folder("mine")
    assert not at.exception, at.exception
    msg = " ".join(e.value for e in at.error)
    assert "SE_LENS_STATS_CACHE to a writable folder" in msg and str(blocked) in msg, msg
