"""Class-wise page (AppTest): no shipped stats, shipped stats on a random pair, a typed ImageFolder, knock-out."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest
from support import needs_cifar

from dashboard.datasets import SOURCES
from se_core.analysis import stats as S
from se_core.data.datasets import load_dataset
from se_core.models.pairs import DEFAULT_PAIR

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
_DTYPES = {"f4": np.float32, "f8": np.float64, "i1": np.int8, "u1": np.uint8, "i2": np.int16, "u2": np.uint16,
           "i4": np.int32, "u4": np.uint32}


def _array(v) -> np.ndarray:
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=_DTYPES[v["dtype"]]).astype(np.float64)
    return np.asarray(v, dtype=np.float64)


def _charts(at: AppTest) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        out.setdefault((fig["layout"].get("meta") or {}).get("chart", "?"), []).append(fig)
    return out


def _ok(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def env(tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    roots = tmp_path / "roots"
    roots.mkdir()
    monkeypatch.setenv("SE_LENS_DATA_ROOTS", str(roots))
    st.cache_data.clear()
    st.cache_resource.clear()
    return {"data": tiny_data_dir, "roots": roots, "cache": tmp_path / "cache", "tmp": tmp_path}


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("../pages/classwise.py")
    at.run()
    return at


def test_no_shipped_stats_gives_the_command(env):
    at = _open()
    _ok(at)
    assert any(S.SHIP_COMMAND in i.value for i in at.info), [i.value for i in at.info]
    assert not at.get("plotly_chart")


@needs_cifar
def test_shipped_stats_views_and_knockout(env):
    data = load_dataset("cifar10-jpeg", "test").subset(range(0, 10_000, 50))
    S.ship_pair_stats(DEFAULT_PAIR, data, batch_size=100)
    se = S.load_stats(S.shipped_paths()["se"])
    van = S.load_stats(S.shipped_paths()["vanilla"])
    at = _open()
    _ok(at)
    charts = _charts(at)
    # Fig. 6, one block (default: the last SE block): the chosen classes' means and the all-class mean
    (f6,) = charts["fig6"]
    site = f6["layout"]["meta"]["site"]
    assert site == se.gate_sites[-1].name
    traces = {t["name"]: _array(t["y"]) for t in f6["data"]}
    for k, cls in enumerate(se.classes[:4]):
        np.testing.assert_allclose(traces[cls], se.class_mean(site)[k], rtol=1e-6)
    np.testing.assert_allclose(traces["all classes"], se.mean(site), rtol=1e-6)
    # Fig. 7: one chart per last block of each stage, median trace equal to the histogram median
    f7 = charts["fig7"]
    assert [f["layout"]["meta"]["site"] for f in f7] == ["layer1.2.se", "layer2.2.se", "layer3.2.se"]
    med = next(t for t in f7[-1]["data"] if t["name"].startswith("median, airplane"))
    np.testing.assert_allclose(_array(med["y"]), se.median("layer3.2.se")[0], equal_nan=True)
    # selectivity vs depth: gates of the SE model, z of both models
    (sel,) = charts["selectivity"]
    series = {t["name"]: _array(t["y"]) for t in sel["data"]}
    np.testing.assert_allclose(series["gates s (SE)"], list(se.selectivity().values()), rtol=1e-6)
    np.testing.assert_allclose(series["squeeze z (vanilla)"], list(van.selectivity("z").values()), rtol=1e-6)
    assert "z_block" in charts
    # gate movement per block (#15): the share of still channels, frozen blocks marked
    (mov,) = charts["gate_movement"]
    frame = se.movement_frame()
    np.testing.assert_allclose(_array(mov["data"][0]["y"]), frame["still_share"])
    assert [t == "frozen" for t in mov["data"][0]["text"]] == list(frame["frozen"])
    # all blocks as small multiples
    at.radio(key="cw_f6_layout").set_value("all")
    at.run()
    _ok(at)
    assert "fig6_all" in _charts(at)
    # knock-out on a small subset: run on button, then cached on disk
    at.number_input(key="cw_ko_n").set_value(60)
    at.button(key="cw_ko_run").click()
    at.run()
    _ok(at)
    table = at.dataframe[0].value
    assert len(table) == 1 + (9 + 3 + 1) * 2 and set(table["mode"]) == {"baseline", "off", "mean"}
    assert (table["n"] == 60).all()
    base = table[table["mode"] == "baseline"]["top1"].iloc[0]
    np.testing.assert_allclose(table["delta"], table["top1"] - base, atol=1e-9)
    assert "knockout" in _charts(at)
    assert len(list(env["cache"].glob("knockout-*.csv"))) == 1
    # the Models page shows the same gate movement for the selected pair, from the shipped statistics
    at.switch_page("../pages/models.py")
    at.run()
    _ok(at)
    (mov,) = _charts(at)["gate_movement"]
    np.testing.assert_allclose(_array(mov["data"][0]["y"]), frame["still_share"])
    assert any(f"{int(frame['frozen'].sum())} of {len(frame)} blocks" in c.value for c in at.caption)


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs", "owls"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8), "RGB").save(root / c / f"{i}.png")
    return root


def test_typed_image_folder_computed_once(env):
    _folder(env["roots"] / "mine")
    at = _open()
    at.radio(key="cw_source").set_value("folder")
    at.run()
    _ok(at)
    assert any("Type a folder" in i.value for i in at.info)
    at.text_input(key="cw_folder").input("../outside")
    at.run()
    assert not at.exception
    assert any("'..' is not allowed" in e.value for e in at.error)
    at.text_input(key="cw_folder").input(str(env["tmp"]))
    at.run()
    assert any("outside the allowed data roots" in e.value for e in at.error)
    at.text_input(key="cw_folder").input("mine")
    at.run()
    _ok(at)
    assert at.button(key="cw_compute") is not None and not at.get("plotly_chart")
    at.button(key="cw_compute").click()
    at.run()
    _ok(at)
    files = sorted(env["cache"].glob("*.npz"))
    assert len(files) == 2  # SE and vanilla, keyed by checkpoint hash + data digest
    charts = _charts(at)
    (f6,) = charts["fig6"]
    assert {t["name"] for t in f6["data"]} == {"cats", "dogs", "owls", "all classes"}
    stamps = [f.stat().st_mtime_ns for f in files]
    at.run()  # a rerun (and a new session) reads the disk cache: nothing is computed again
    _ok(at)
    assert not any(b.key == "cw_compute" for b in at.button)
    st.cache_data.clear()
    at2 = _open()
    at2.radio(key="cw_source").set_value("folder")
    at2.run()
    at2.text_input(key="cw_folder").input("mine")
    at2.run()
    _ok(at2)
    assert "fig6" in _charts(at2)
    assert [f.stat().st_mtime_ns for f in sorted(env["cache"].glob("*.npz"))] == stamps


@needs_cifar
def test_pair_without_shipped_stats_computes_and_its_command_fills_the_same_cache(env, monkeypatch):
    """#17 (4): a CIFAR-shaped pair other than the default one opens on computing on the CIFAR-10 test set (no
    shipped option, no dead end); the command the page prints computes this pair's statistics into the cache
    the page reads, so the page then draws them without computing."""
    import shlex

    from se_core.models import user_models as um
    from se_core.models.pairs import PAIRS

    monkeypatch.setenv(um.USER_DIR_ENV, str(env["tmp"] / "user"))
    monkeypatch.setattr(um, "_RECIPES", {})
    stored = um.store_file(env["data"] / "checkpoints" / "se_resnet20-s0.safetensors")
    van = PAIRS[DEFAULT_PAIR].vanilla_weights
    name = um.register_user_pair(um.UserPairRecipe(
        um.ModelRecipe("upload", "se_resnet20_cifar", file=stored.path.name, label="mine.safetensors"),
        um.ModelRecipe("weights", "resnet20_cifar", weights=(van.kind, van.location))))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["pair"] = name
    at.run()
    at.switch_page("../pages/classwise.py")
    at.run()
    _ok(at)
    radio = at.radio(key="cw_source")
    assert radio.value == "cifar" and SOURCES["shipped"] not in radio.options
    assert any("No shipped statistics for this pair" in i.value for i in at.info)
    at.number_input(key="cw_cifar_n").set_value(50)
    at.run()
    _ok(at)
    cmd = next(c.value for c in at.caption if "python -m se_core.stats" in c.value).split("`")[1]
    assert cmd == f"python -m se_core.stats --pair {name} --data cifar10-jpeg --subset 50"
    assert at.button(key="cw_compute") is not None and not at.get("plotly_chart")
    assert S.main(shlex.split(cmd)[3:]) == 0
    assert len(list(env["cache"].glob("*.npz"))) == 2
    at.run()
    _ok(at)
    assert "fig6" in _charts(at) and not any(b.key == "cw_compute" for b in at.button)
