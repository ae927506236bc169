"""Home and Models pages (AppTest), the SE diagrams, the registry cost table and the chart helpers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import display, state
from dashboard.figures import common
from dashboard.figures import models as model_figs
from dashboard.figures.style import PAIR_COLORS
from se_core.analysis.diagram import integration_dot, integration_text, se_block_dot, se_widths
from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import DataError
from se_core.models import pairs
from se_core.models.checkpoints import CheckpointMeta, save_checkpoint
from se_core.models.costs import cost_table, spec_cost, vanilla_counterpart
from se_core.models.registry import get_spec
from se_core.models.weights import PairSpec, WeightsRef
from se_core.nn.se import SEConfig, se_param_count
from se_core.runs.train import TrainConfig, train

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
MODELS = "../pages/models.py"


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Cached pairs/results are keyed by name, not data dir: clear them around every test."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One-epoch SE and vanilla runs on 128 images (the real trainer's files)."""
    root = tmp_path_factory.mktemp("runs")
    for name, arch in (("se_resnet20-s0", "se_resnet20_cifar"), ("resnet20-s0", "resnet20_cifar")):
        try:
            train(TrainConfig(arch=arch, epochs=1, train_subset=128, test_subset=50, probe_per_class=2, batch_size=64),
                  root / name, threads=1, progress=False)
        except DataError as e:
            pytest.skip(f"CIFAR-10 data not available here: {e}")
    return root


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    monkeypatch.setenv("SE_LENS_DATA_DIR", str(d))
    return d


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def _dots(at: AppTest) -> list[str]:
    return [g.proto.spec for g in at.get("graphviz_chart")]


def _plotly_configs(at: AppTest) -> list[dict]:
    return [json.loads(p.proto.config) for p in at.get("plotly_chart")]


def _texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# --- pure helpers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("channels, r, hidden", [(64, 16, 4), (16, 16, 1), (64, 4, 16), (256, 16, 16)])
def test_se_block_dot_shows_real_widths(channels: int, r: int, hidden: int) -> None:
    dot = se_block_dot(SEConfig(reduction=r), channels)
    assert dot.startswith("digraph") and dot.count("{") == dot.count("}")
    assert f"{channels} → {hidden}" in dot and f"{hidden} → {channels}" in dot
    assert f"r = {r}, hidden = {hidden}" in dot
    assert "global average pooling" in dot and "sigmoid" in dot and "(0, 1)" in dot


def test_se_block_dot_variants() -> None:
    assert "global max pooling" in se_block_dot(SEConfig(squeeze="max"), 32)
    nosq = se_block_dot(SEConfig(squeeze="none", gate="tanh"), 32)
    assert "NoSqueeze" in nosq and "1×1 conv" in nosq and "(-1, 1)" in nosq
    assert 'title \\"x\\"' in se_block_dot(SEConfig(), 8, title='title "x"')  # quotes escaped
    with pytest.raises(ValueError):
        se_block_dot(SEConfig(), 0)


@pytest.mark.parametrize("cfg, edges", [
    (SEConfig(), ["tail -> se", "se -> sum"]),
    (SEConfig(integration="pre"), ["x -> se", "se -> head"]),
    (SEConfig(integration="post"), ["relu -> se", "se -> out"]),
    (SEConfig(integration="identity"), ["x -> se", "se -> sum", "tail -> sum"]),
    (SEConfig(site="3x3"), ["head -> se", "se -> tail"]),
])
def test_integration_dot_places_se_as_the_model_does(cfg: SEConfig, edges: list[str]) -> None:
    dot = integration_dot(cfg)
    for e in edges:
        assert f"  {e}" in dot
    assert dot.count("-> se") == 1 and dot.count("se ->") == 1  # exactly one SE on the path
    assert "conv 1×1" in integration_dot(cfg, block="bottleneck")
    assert "every stage" in integration_text(cfg) and "stage(s) 2, 3" in integration_text(cfg.replace(stages=(2, 3)))


def test_se_widths_read_the_model() -> None:
    model = get_spec("se_resnet20_cifar").build()
    w = se_widths(model)
    assert [x.channels for x in w] == [16] * 3 + [32] * 3 + [64] * 3
    assert [x.hidden for x in w] == [1] * 3 + [2] * 3 + [4] * 3
    assert sum(x.params for x in w) == sum(se_param_count(c, SEConfig()) for c in [16] * 3 + [32] * 3 + [64] * 3)
    assert sum(x.params for x in w) == (sum(p.numel() for p in model.parameters())
                                        - sum(p.numel() for p in get_spec("resnet20_cifar").build().parameters()))
    assert se_widths(get_spec("resnet20_cifar").build()) == []
    pre = se_widths(get_spec("se_resnet20_cifar").build(SEConfig(integration="pre", reduction=4)))
    assert pre[3].channels == 16 and pre[4].channels == 32 and pre[4].hidden == 8  # first block of stage 2 sees 16


def test_cost_table_matches_models() -> None:
    df = cost_table(["resnet20_cifar", "se_resnet20_cifar", "resnet32_cifar"]).set_index("model")
    n20 = sum(p.numel() for p in get_spec("resnet20_cifar").build().parameters())
    n20se = sum(p.numel() for p in get_spec("se_resnet20_cifar").build().parameters())
    assert df.loc["resnet20_cifar", "params"] == n20 and df.loc["se_resnet20_cifar", "params"] == n20se
    assert df.loc["se_resnet20_cifar", "se_params_pct"] == pytest.approx(100 * (n20se - n20) / n20)
    assert df.loc["resnet20_cifar", "gmacs"] == pytest.approx(spec_cost("resnet20_cifar").gmacs)
    assert np.isnan(df.loc["resnet20_cifar", "se_params_pct"])
    assert list(df.index) == ["resnet20_cifar", "se_resnet20_cifar", "resnet32_cifar"]  # vanilla, its SE, next size
    assert vanilla_counterpart("se_resnet50_tv") == "resnet50_tv" and vanilla_counterpart("resnet50_tv") is None


def test_zoo_twins_get_se_overhead_only_when_the_architecture_is_the_same() -> None:
    import se_core.models.zoo  # noqa: F401  registers the library models

    assert vanilla_counterpart("seresnet50_timm") == "resnet50_timm"
    # Not twins: RegNetY differs from RegNetX in widths and depth; the legacy SENet strides its 1x1 conv.
    for se_arch in ("regnety_004_timm", "regnet_y_400mf_tv", "legacy_seresnet50_timm", "mobilenet_v3_large_tv"):
        assert vanilla_counterpart(se_arch) is None
    row = cost_table(["resnet50_timm", "seresnet50_timm"]).set_index("model").loc["seresnet50_timm"]
    assert row["vanilla"] == "resnet50_timm"
    assert row["se_params_pct"] == pytest.approx(100 * (28_088_024 - 25_557_032) / 25_557_032)  # paper: +10 %


def test_chart_builders_are_pure_figures() -> None:
    df = pd.DataFrame({"epoch": [1, 2, 1, 2], "v": [1.0, 2.0, 3.0, 4.0], "e": [0.1] * 4, "run": ["a", "a", "b", "b"],
                       "split": ["train", "test"] * 2})
    fig = model_figs.line_curves(df, "epoch", "v", "run", title="t", x_title="epoch", y_title="v")
    assert isinstance(fig, go.Figure) and [t.name for t in fig.data] == ["a", "b"]
    assert fig.layout.xaxis.dtick == 1  # whole epochs
    fig = model_figs.line_curves(df, "epoch", "v", "run", dash="split")
    assert len(fig.data) == 4 and {t.line.dash for t in fig.data} == {"solid", "dash"}
    assert len(common.band_curves(df, "epoch", "v", "e", "run").data) == 4  # band + line per run
    fig = common.bar_compare(df, "split", "v", "run", error="e", colors={"a": "#000000"}, y_range=(0, 100))
    assert fig.data[0].marker.color == "#000000" and list(fig.data[0].error_y.array) == [0.1, 0.1]
    # x keeps the rows' order and a categorical colour column its categories', though series "a" lacks "x1"
    gap = pd.DataFrame({"x": ["x1", "x2", "x3", "x2"], "v": [1.0, 2.0, 3.0, 4.0],
                        "s": pd.Categorical(["b", "b", "b", "a"], categories=["a", "b"])})
    fig = common.bar_compare(gap, "x", "v", "s")
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.layout.xaxis.categoryarray) == ["x1", "x2", "x3"]
    hm = model_figs.heatmap([[0, 1], [2, 3]], ["x1", "x2"], ["y1", "y2"], zmin=0, zmax=3)
    assert hm.data[0].zmax == 3 and list(hm.data[0].y) == ["y1", "y2"]
    hs = model_figs.histogram_stack([0, 0.5, 1], [[1, 3], [2, 2]], ["e1", "e2"])
    assert len(hs.data) == 2 and max(hs.data[0].y) == pytest.approx(0.75)
    hs2 = model_figs.histogram_stack([[0, 1, 2], [0, 2, 4]], [[1, 1], [1, 1]], ["e1", "e2"])  # per-row ranges
    assert max(hs2.data[1].x) == 4
    with pytest.raises(ValueError):
        model_figs.histogram_stack([0, 1], [[1, 2]], ["bad"])
    assert len(common.histogram_compare({"SE": [0.1, 0.2], "vanilla": [0.3]}).data) == 2
    summ = pd.DataFrame({"pair": ["p", "p"], "role": ["vanilla", "se"], "top1_mean": [88.0, 88.5],
                         "top1_std": [0.1, float("nan")], "runs": [2, 1]})
    res = pd.DataFrame({"pair": ["p"] * 3, "role": ["vanilla", "vanilla", "se"], "top1": [87.9, 88.1, 88.5],
                        "seed": [0, 1, 0], "run": ["v0", "v1", "s0"]})
    own = model_figs.own_pairs_top1(summ, res)
    assert list(own.data[0].x) == ["p · vanilla", "p · se"] and list(own.data[0].error_y.array) == [0.1, 0.0]
    assert list(own.data[0].marker.color) == [PAIR_COLORS["vanilla"], PAIR_COLORS["se"]] and len(own.data[1].x) == 3
    cfg = display.plotly_config("f", "svg")
    assert cfg["toImageButtonOptions"] == {"format": "svg", "filename": "f", "scale": 1} and not cfg["displaylogo"]


# --- pages -----------------------------------------------------------------------------------------

def test_home_shows_the_loaded_config(tiny_data_dir: Path) -> None:
    at = _app()
    _ok(at)
    assert at.title[0].value == "SE Lens"
    dots = _dots(at)
    assert len(dots) == 2
    assert "r = 16, hidden = 4" in dots[0] and "64 → 4" in dots[0]  # default block: stage 3, C = 64
    assert "tail -> se" in dots[1]
    assert "metadata of the loaded checkpoint" in _texts(at) and "TPAMI" in _texts(at)
    assert [m.value for m in at.metric][:3] == ["16", "avg pool", "sigmoid"]
    assert not at.info
    at.selectbox(key="home-se-block").select(0).run()
    _ok(at)
    assert "C = 16, r = 16, hidden = 1" in _dots(at)[0]
    # the page list follows the page files present
    assert "**Models**" in _texts(at)


def test_pair_from_query_string(tiny_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``?pair=`` picks a registered pair; its SE config (r=4) comes from the checkpoint's metadata."""
    se_cfg = SEConfig(reduction=4)
    for arch, rel, se in (("se_resnet20_cifar", "checkpoints/se_r4.safetensors", se_cfg),
                          ("resnet20_cifar", "checkpoints/van_r4.safetensors", None)):
        model = get_spec(arch).build(se)
        meta = CheckpointMeta(arch=arch, se_config=None if se is None else json.loads(se.to_json()), num_classes=10,
                              class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD, input_size=(32, 32),
                              provenance={"note": "test pair"})
        save_checkpoint(tiny_data_dir / rel, model, meta)
    spec = PairSpec("test-r4", "Test pair r=4", "se_resnet20_cifar", "resnet20_cifar",
                    WeightsRef("file", "checkpoints/se_r4.safetensors"), WeightsRef("file", "checkpoints/van_r4.safetensors"),
                    "CIFAR-10")
    monkeypatch.setitem(pairs.PAIRS, "test-r4", spec)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["pair"] = "test-r4"
    at.run()
    _ok(at)
    assert at.session_state["pair"] == "test-r4"
    assert "r = 4, hidden = 16" in _dots(at)[0] and "64 → 16" in _dots(at)[0]
    assert at.metric[0].value == "4"
    at.switch_page(MODELS).run()
    _ok(at)
    assert "Test pair r=4" in [s.value for s in at.subheader]
    # an unknown pair in the URL falls back to the default
    at2 = AppTest.from_file(APP, default_timeout=120)
    at2.query_params["pair"] = "no-such-pair"
    at2.run()
    _ok(at2)
    assert at2.session_state["pair"] == pairs.DEFAULT_PAIR


def test_models_page_with_pair_and_runs(tiny_data_dir: Path, trained_runs: Path) -> None:
    shutil.copytree(trained_runs, tiny_data_dir / "runs")
    at = _app()
    at.switch_page(MODELS).run()
    _ok(at)
    frames = [d.value for d in at.dataframe]
    reg = next(f for f in frames if "gmacs" in f.columns).set_index("model")
    assert reg.loc["resnet20_cifar", "params"] == sum(p.numel() for p in get_spec("resnet20_cifar").build().parameters())
    assert "resnet50_tv" not in reg.index  # ImageNet-size models only on request
    assert reg.loc["se_resnet20_cifar", "vanilla"] == "resnet20_cifar"
    runs = next(f for f in frames if "status" in f.columns)
    assert sorted(runs["run"]) == ["resnet20-s0", "se_resnet20-s0"] and set(runs["status"]) == {"finished"}
    summ = next(f for f in frames if "top1_mean" in f.columns).set_index("model")
    final = json.loads((tiny_data_dir / "runs" / "se_resnet20-s0" / "final.json").read_text())["final"]
    assert summ.loc["se_resnet20_cifar", "top1_mean"] == pytest.approx(final["top1"])
    seeds = next(json.loads(p.proto.spec) for p in at.get("plotly_chart")
                 if "every seed" in json.dumps(json.loads(p.proto.spec)["layout"].get("title", "")))
    dots = next(t for t in seeds["data"] if t["name"] == "single seeds")
    assert sorted(dots["x"]) == ["resnet20_cifar", "se_resnet20_cifar"]  # one dot per finished run
    # the own pairs side by side: the default pair's seeds; the second pair has no finished run here
    own = next(f for f in frames if "frozen SE blocks" in f.columns).set_index("pair")
    assert own.loc[pairs.PAIRS[pairs.DEFAULT_PAIR].title, "SE top-1"] == f"{final['top1']:.2f} (1 run)"
    assert own.loc[pairs.PAIRS[pairs.SE8_PAIR].title, "SE top-1"] == "no finished run"
    sides = next(json.loads(p.proto.spec) for p in at.get("plotly_chart")
                 if "Own pairs side by side" in json.dumps(json.loads(p.proto.spec)["layout"].get("title", "")))
    assert sorted(next(t for t in sides["data"] if t["name"] == "single seeds")["x"]) == [
        "cifar10-resnet20 · se", "cifar10-resnet20 · vanilla"]
    # provenance of the loaded pair, from the checkpoint's metadata
    tables = pd.concat([t.value for t in at.table])
    assert "random init written by tests/conftest.py" in set(tables["value"])
    # gate movement over epochs, from the run's gates.json (the trainer records it per block)
    still = next(json.loads(p.proto.spec) for p in at.get("plotly_chart")
                 if "Still channels" in json.dumps(json.loads(p.proto.spec)["layout"].get("title", "")))
    assert still["data"] and all(t["y"] for t in still["data"])  # one curve per block shown
    # no shipped class-wise statistics for this pair: the gate-movement view says where to get them
    assert any("Gate movement needs class-wise statistics" in i.value for i in at.info)
    assert "CPU" in _texts(at) or "GPU" in _texts(at)
    # a second seed of the SE model: curves can be averaged over seeds per model
    s1 = tiny_data_dir / "runs" / "se_resnet20-s1"
    shutil.copytree(tiny_data_dir / "runs" / "se_resnet20-s0", s1)
    (s1 / "config.json").write_text(json.dumps({**json.loads((s1 / "config.json").read_text()), "seed": 1}))
    at.run()
    at.toggle(key="models-curves-seeds").set_value(True).run()
    _ok(at)
    band = next(json.loads(p.proto.spec) for p in at.get("plotly_chart")
                if "over seeds" in json.dumps(json.loads(p.proto.spec)["layout"].get("title", "")))
    assert {t["name"] for t in band["data"] if t.get("showlegend") is not False} == {"resnet20_cifar", "se_resnet20_cifar"}
    at.toggle(key="models-curves-seeds").set_value(False).run()
    # every chart exports; the format follows the sidebar picker
    cfgs = _plotly_configs(at)
    assert len(cfgs) >= 8 and all(c["toImageButtonOptions"]["format"] == "png" for c in cfgs)
    at.radio(key=display.EXPORT_KEY).set_value("svg").run()
    _ok(at)
    assert all(c["toImageButtonOptions"]["format"] == "svg" for c in _plotly_configs(at))
    at.toggle(key="models-large").set_value(True).run()
    _ok(at)
    reg = next(d.value for d in at.dataframe if "gmacs" in d.value.columns).set_index("model")
    assert reg.loc["resnet50_tv", "params"] == spec_cost("resnet50_tv").params
    # the second own pair, once it has a finished run: its row fills in, and selecting it shows its own runs
    shutil.copytree(trained_runs / "se_resnet20-s0", tiny_data_dir / "runs-e30" / "se8-s0")
    at.selectbox(key=state.PAIR_KEY).set_value(pairs.SE8_PAIR).run()
    _ok(at)
    own = next(d.value for d in at.dataframe if "frozen SE blocks" in d.value.columns).set_index("pair")
    assert own.loc[pairs.PAIRS[pairs.SE8_PAIR].title, "SE top-1"].endswith("(1 run)")
    runs = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert list(runs["run"]) == ["se8-s0"]


def test_pages_render_with_empty_data_dir(empty_data_dir: Path) -> None:
    at = _app()
    _ok(at)
    assert any("weights are missing" in i.value for i in at.info)
    assert "r = 16, hidden = 4" in _dots(at)[0]  # registry default config, drawn anyway
    assert "registry default" in _texts(at)
    at.switch_page(MODELS).run()
    _ok(at)
    infos = " ".join(i.value for i in at.info)
    assert "weights are missing" in infos and "No training runs" in infos
    assert any("gmacs" in d.value.columns for d in at.dataframe)


def test_models_page_with_broken_and_unfinished_runs(tiny_data_dir: Path, trained_runs: Path) -> None:
    runs = tiny_data_dir / "runs"
    shutil.copytree(trained_runs / "se_resnet20-s0", runs / "se-running")
    (runs / "se-running" / "final.json").unlink()
    shutil.copytree(trained_runs / "resnet20-s0", runs / "broken")
    (runs / "broken" / "metrics.csv").write_text("epoch,oops\n1,2\n")
    at = _app()
    at.switch_page(MODELS).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "broken" in errors[0] and "metrics.csv" in errors[0]
    assert any("No run has finished yet" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) >= 4  # curves and gate charts of the running SE run
