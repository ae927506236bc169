"""Every figure builder of dashboard/figures, called directly on small synthetic inputs (no AppTest, no Streamlit).

Builders skip plotly's validation (dict style, see dashboard/figures/style.py), so each figure
here is also checked against plotly's schema with ``go.Figure(fig.to_dict())``.
"""
from __future__ import annotations

import ast
import base64
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from support import REPO_ROOT

from dashboard.figures import ablations, attributions, classwise, common, gatespace, inspector, models, style
from se_core.analysis.movement import FROZEN_SHARE
from se_core.runs import tables

FIGURES = REPO_ROOT / "dashboard" / "figures"


def valid(fig: go.Figure) -> dict:
    """The figure as plotly.js JSON, after checking it against plotly's schema (raises on a misspelt name)."""
    assert isinstance(fig, go.Figure)
    go.Figure(fig.to_dict())
    return fig.to_dict()


def arr(v) -> np.ndarray:
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float)
    return np.asarray(v, dtype=float)


def ytitle(d: dict, axis: str = "yaxis") -> str:
    return d["layout"][axis]["title"]["text"]


# --------------------------------------------------------------------------- style and shared chart types


def test_style_helpers() -> None:
    assert style.colorscale("RdBu_r")[0][1] != style.colorscale("RdBu")[0][1]  # reversed, as a list plotly.js takes
    assert style.color_map(["b", "a", "b"], {"a": "#000"}) == {"b": style.PALETTE[0], "a": "#000"}
    assert style.rgba("#ff0080", 0.5) == "rgba(255,0,128,0.5)"
    assert style.integer_ticks([1, 2, 30]) == {"tickformat": "d", "dtick": 3} and style.integer_ticks([0.5, 1]) == {}
    shape, note = style.hline(0.5, {"dash": "dot"}, "half", "bottom right", font_color="#123")
    assert shape["y0"] == shape["y1"] == 0.5 and (note["x"], note["xanchor"], note["yanchor"]) == (1, "right", "top")
    lay = style.grid(2, 3, ["a", "b"])
    assert {"xaxis", "xaxis6", "yaxis6"} <= set(lay) and [a["text"] for a in lay["annotations"]] == ["a", "b"]
    lay["xaxis"]["type"] = "category"
    assert "type" not in style.grid(2, 3, ["a", "b"])["xaxis"]  # a copy: the cached layout is not changed
    assert style.cell_axes(0) == {"xaxis": "x", "yaxis": "y"} and style.cell_axes(4) == {"xaxis": "x5", "yaxis": "y5"}
    assert style.merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}, "d": 4}) == {"a": {"b": 3, "c": 2}, "d": 4}
    fig = style.figure([{"type": "bar", "y": [1]}], {"title": style.title("t")})
    assert valid(fig)["layout"]["template"]["layout"]["plot_bgcolor"] == "white"


def test_band_curves() -> None:
    df = pd.DataFrame({"epoch": [1, 2, 1, 2], "m": [0.1, 0.2, 0.3, 0.4], "s": [0.01] * 4, "site": ["a", "a", "b", "b"]})
    d = valid(common.band_curves(df, "epoch", "m", "s", "site", title="T", y_title="gate", colors={"b": "#000000"},
                                 layout={"meta": {"chart": "x"}}))
    assert [t.get("name") for t in d["data"]] == [None, "a", None, "b"]  # a band, then its line, per site
    assert d["data"][3]["line"]["color"] == "#000000" and d["data"][2]["fillcolor"] == "rgba(0,0,0,0.15)"
    assert ytitle(d) == "gate" and d["layout"]["title"]["text"] == "T" and d["layout"]["meta"] == {"chart": "x"}
    assert d["layout"]["xaxis"]["dtick"] == 1


def test_bar_compare() -> None:
    df = pd.DataFrame({"x": ["p", "q", "p"], "v": [1.0, 2.0, 3.0], "e": [0.5, np.nan, 0.1], "s": ["A", "A", "B"]})
    d = valid(common.bar_compare(df, "x", "v", "s", error="e", text_format="%{y:.1f}", y_range=(0, 5),
                                 layout={"xaxis": {"type": "category"}}))
    assert [t["type"] for t in d["data"]] == ["bar", "bar"] and [t["name"] for t in d["data"]] == ["A", "B"]
    assert d["data"][0]["error_y"]["array"] == [0.5, 0.0] and d["data"][0]["texttemplate"] == "%{y:.1f}"
    assert d["layout"]["xaxis"]["categoryarray"] == ["p", "q"] and d["layout"]["xaxis"]["type"] == "category"
    assert d["layout"]["yaxis"]["range"] == [0, 5] and d["layout"]["barmode"] == "group"
    assert "error_y" not in valid(common.bar_compare(df, "x", "v", "s"))["data"][0]


def test_gate_movement_greys_frozen_blocks() -> None:
    frame = pd.DataFrame({"label": ["1.0", "2.0"], "still_share": [0.9, 0.2], "frozen": [True, False],
                          "site": ["layer1.0.se", "layer2.0.se"], "median_std": [0.001, 0.05]})
    d = valid(common.gate_movement(frame, title="M"))
    (bar,) = d["data"]
    assert bar["marker"]["color"] == [style.FROZEN_COLOR, style.PAIR_COLORS["se"]] and bar["text"] == ["frozen", ""]
    assert d["layout"]["shapes"][0]["y0"] == FROZEN_SHARE and d["layout"]["meta"] == {"chart": "gate_movement"}
    assert d["layout"]["title"]["text"] == "M" and "gate std" in ytitle(d)
    assert "customdata" not in valid(common.gate_movement(frame.iloc[:0]))["data"][0]  # empty frame still draws


def test_seed_points_and_histogram_compare() -> None:
    means = pd.DataFrame({"k": ["a", "b"], "m": [1.0, 2.0], "s": [0.1, np.nan], "n": [2, 1]})
    pts = pd.DataFrame({"k": ["a", "a", "b"], "y": [0.9, 1.1, 2.0], "seed": [0, 1, 0]})
    d = valid(common.seed_points(means, pts, x="k", mean="m", std="s", n="n", y="y", colors=["#111", "#222"],
                                 ref_lines=[(1.5, "ref", "#333", "top right")], title="S"))
    assert [t["name"] for t in d["data"]] == ["mean ± std over seeds", "single seeds"]
    assert d["data"][0]["error_y"]["array"] == [0.1, 0.0] and d["data"][0]["marker"]["color"] == ["#111", "#222"]
    assert d["layout"]["annotations"][0]["text"] == "ref" and d["layout"]["xaxis"]["type"] == "category"
    h = valid(common.histogram_compare({"SE": [0.1, 0.2], "vanilla": [0.3]}, colors={"SE": "#f00"}))
    assert [t["type"] for t in h["data"]] == ["histogram"] * 2 and h["data"][0]["marker"]["color"] == "#f00"


# --------------------------------------------------------------------------- Inspect


def _probe(role: str, name: str, rng: np.random.Generator) -> NS:
    sites = [NS(name="layer1.0.se", label="1.0"), NS(name="layer2.0.se", label="2.0")]
    classes = ["cat", "dog", "ship", "car", "frog", "bird"]
    probs = rng.dirichlet(np.ones(6), size=2)
    tops = [NS(classes=[classes[k] for k in np.argsort(-p)[:5]], probs=list(np.sort(p)[::-1][:5])) for p in probs]
    return NS(role=role, name=name, gate_sites=sites, top=tops, class_names=classes, probs=probs,
              s={s.name: rng.random((2, 4)) for s in sites}, z={s.name: rng.normal(size=(2, 4)) for s in sites},
              energy_before={s.name: rng.random((2, 4)) for s in sites},
              energy_after={s.name: rng.random((2, 4)) for s in sites},
              site=lambda n: next(s for s in sites if s.name == n))


@pytest.fixture
def result() -> NS:
    rng = np.random.default_rng(0)
    return NS(names=["a.png", "b.png"], se=_probe("se", "se_net", rng), vanilla=_probe("vanilla", "net", rng),
              vanilla_site=lambda site: site)


def test_inspect_figures(result: NS) -> None:
    top = valid(inspector.top5(result, 1))
    assert [t["marker"]["color"] for t in top["data"]] == [inspector.SE_COLOR, inspector.VANILLA_COLOR]
    assert [t["yaxis"] for t in top["data"]] == ["y", "y2"] and top["layout"]["meta"] == {"chart": "top5", "image": "b.png"}
    assert list(arr(top["data"][0]["x"])) == pytest.approx(result.se.top[1].probs[::-1])
    heat = valid(inspector.block_heatmap(["1.0", "2.0"], np.array([[0.2, 0.9], [0.5, np.nan]]), "G", "s", "gate_heatmap",
                                         "a.png", bounded=True))["data"][0]
    assert (heat["zmin"], heat["zmax"]) == (0.0, 1.0) and heat["colorscale"] == style.colorscale("Viridis")
    signed = valid(inspector.block_heatmap(["1.0"], np.array([[-1.0, 2.0]]), "Z", "z", "z_heatmap_se", "a.png"))
    assert signed["data"][0]["zmid"] == 0.0 and signed["layout"]["height"] == 148
    box = valid(inspector.gate_box(result))
    assert [t["name"] for t in box["data"]] == result.names and len(arr(box["data"][0]["y"])) == 8  # 2 blocks x 4 channels
    cmp = valid(inspector.compare_images(result, "layer2.0.se", "z", "Z at 2.0"))
    assert cmp["layout"]["meta"] == {"chart": "compare_z", "site": "layer2.0.se"} and ytitle(cmp) == "z"
    zp = valid(inspector.z_pair(result, "layer1.0.se", 0))
    assert [t["name"] for t in zp["data"]] == ["SE (se_net)", "vanilla (net)"]
    en = valid(inspector.energy(result.se, "layer1.0.se", 0, "a.png"))
    assert [t["name"] for t in en["data"]] == ["before SE (unit input)", "after SE (recalibrated)"]
    assert en["layout"]["meta"]["chart"] == "energy"


def test_intervention_figure(result: NS) -> None:
    iv = NS(original=result.se, changed=_probe("se", "se_net", np.random.default_rng(1)), plan_label="SE off at 1.0",
            names=result.names)
    d = valid(inspector.intervention(iv, 0))
    assert [t["name"] for t in d["data"]] == ["original", "SE off at 1.0"]
    assert set(result.se.top[0].classes) <= set(d["data"][0]["x"]) and d["layout"]["meta"]["chart"] == "intervention"


# --------------------------------------------------------------------------- Class-wise


class FakeStats:
    """What the Class-wise figures read of an ExcitationStats: two gate sites of 3 channels, 3 classes."""

    classes = ["cat", "dog", "owl"]

    def __init__(self) -> None:
        self.gate_sites = [NS(name=f"layer{i}.0.se", label=f"{i}.0", channels=3, lo=0.0, hi=1.0, gate=True, stage=i)
                           for i in (1, 2)]

    def site(self, name: str) -> NS:
        return next(s for s in self.gate_sites if s.name == name)

    def class_mean(self, site: str) -> np.ndarray:
        return np.arange(9, dtype=float).reshape(3, 3) / 10

    def mean(self, site: str) -> np.ndarray:
        return np.full(3, 0.4)

    def quantile(self, site: str, q: float) -> np.ndarray:
        return np.full((3, 3), q)

    def median(self, site: str, per_class: bool = True) -> np.ndarray:
        return np.full(3, 0.5)


def test_classwise_fig6_and_fig7() -> None:
    stats = FakeStats()
    d = valid(classwise.fig6_block(stats, "layer2.0.se", ["dog", "owl"]))
    assert [t["name"] for t in d["data"]] == ["dog", "owl", "all classes"]
    assert list(arr(d["data"][0]["y"])) == pytest.approx([0.3, 0.4, 0.5]) and d["layout"]["yaxis"]["range"] == [0.0, 1.0]
    assert d["layout"]["meta"] == {"chart": "fig6", "site": "layer2.0.se"} and ytitle(d) == "mean gate s"
    a = valid(classwise.fig6_all(stats, ["cat"]))
    assert [t["yaxis"] for t in a["data"]] == ["y", "y", "y2", "y2"] and a["layout"]["height"] == 340
    assert [n["text"] for n in a["layout"]["annotations"]] == ["1.0", "2.0"]
    f7 = valid(classwise.fig7_block(stats, "layer1.0.se", "owl"))
    assert [t["name"] for t in f7["data"]] == ["Q3", "IQR (Q1-Q3)", "median, owl", "median, all classes"]
    assert f7["data"][1]["fill"] == "tonexty" and f7["layout"]["meta"]["class"] == "owl"


def test_classwise_selectivity_z_and_knockout() -> None:
    rows = [{"depth": d, "label": f"{d}.0", "selectivity": 0.1 * d, "series": s}
            for s in ("gates s (SE)", "squeeze z (SE)", "squeeze z (vanilla)") for d in (1, 2)]
    d = valid(classwise.selectivity(pd.DataFrame(rows)))
    assert [t["name"] for t in d["data"]] == ["gates s (SE)", "squeeze z (SE)", "squeeze z (vanilla)"]
    assert d["layout"]["xaxis"]["ticktext"] == ["1.0", "2.0"] and d["data"][2]["line"]["color"] == style.PAIR_COLORS["vanilla"]
    zdf = pd.DataFrame({"channel": [0, 1, 0, 1], "mean": [1.0, 2, 3, 4], "std": [0.1] * 4,
                        "model": ["SE", "SE", "vanilla", "vanilla"]})
    z = valid(classwise.z_block(zdf, "layer3.2.se", "3.2"))
    assert z["layout"]["meta"] == {"chart": "z_block", "site": "layer3.2.se"} and "3.2" in z["layout"]["title"]["text"]
    assert z["data"][1]["line"]["color"] == style.PAIR_COLORS["se"]
    ko = pd.DataFrame({"kind": ["baseline", "block", "block", "stage"], "target": ["-", "1.0", "1.0", "stage 1"],
                       "mode": ["-", "off", "mean", "off"], "delta": [0.0, -1.0, -0.5, -2.0]})
    k = valid(classwise.knockout(ko))
    assert [t["name"] for t in k["data"]] == ["off", "mean"] and k["layout"]["meta"] == {"chart": "knockout"}
    assert k["layout"]["xaxis"]["categoryarray"] == ["1.0", "stage 1"] and k["layout"]["xaxis"]["type"] == "category"


# --------------------------------------------------------------------------- Attributions


def test_attribution_figures() -> None:
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(4, 4)), rng.random((4, 4))
    res = NS(se=NS(map=m1), vanilla=NS(map=m2), se_norm=m1 / abs(m1).max(), vanilla_norm=m2 / m2.max())
    res.diff = res.se_norm - res.vanilla_norm
    seen = rng.integers(0, 255, (4, 4, 3)).astype(np.uint8)
    p = valid(attributions.pair_maps(res, seen, "IG · class 'cat'", 0.6))
    assert [t["type"] for t in p["data"]] == ["image", "heatmap"] * 2 and [t["xaxis"] for t in p["data"]] == ["x", "x", "x2", "x2"]
    assert p["layout"]["coloraxis"]["cmin"] == -1.0 and p["layout"]["coloraxis"]["colorscale"] == style.colorscale("RdBu_r")
    assert p["layout"]["yaxis2"]["scaleanchor"] == "x2" and p["data"][1]["opacity"] == 0.6
    assert [a["text"] for a in p["layout"]["annotations"]] == ["SE model", "vanilla model"]
    d = valid(attributions.difference(res, seen, "SE − vanilla", 0.5))
    assert d["layout"]["coloraxis"]["cmid"] == 0 and d["layout"]["coloraxis"]["cmin"] == -d["layout"]["coloraxis"]["cmax"]
    assert d["data"][1]["name"] == "SE − vanilla"


def test_faithfulness_curves_figure() -> None:
    f = np.linspace(0, 1, 5)
    rows = [pd.DataFrame({"method": method, "model": model, "curve": curve, "fraction": f, "probability": p,
                          "auc": np.trapezoid(p, f)})
            for method in ("Saliency", "Random order") for model in ("SE", "vanilla") for curve in ("deletion", "insertion")
            for p in [1 - f if curve == "deletion" else f]]
    points = pd.concat(rows, ignore_index=True)
    d = valid(attributions.faithfulness_curves(points, "Deletion and insertion · class 'cat'"))
    assert len(d["data"]) == 8 and [t["showlegend"] for t in d["data"]] == [True, True] + [False] * 6
    assert [(t["name"], t["xaxis"]) for t in d["data"][:4]] == [("Saliency", "x"), ("Random order", "x"),
                                                              ("Saliency", "x2"), ("Random order", "x2")]
    rnd = d["data"][1]
    assert rnd["line"]["dash"] == "dash" and rnd["line"]["color"] == style.FROZEN_COLOR
    assert d["data"][0]["line"]["color"] == style.PALETTE[0] and "dash" not in d["data"][0]["line"]
    np.testing.assert_allclose(arr(d["data"][4]["y"]), f)  # the third plot: SE insertion
    assert "AUC 0.500" in d["data"][0]["hovertemplate"]
    assert [a["text"] for a in d["layout"]["annotations"]][::2] == ["SE · deletion (lower AUC is better)",
                                                                   "SE · insertion (higher AUC is better)"]
    assert d["layout"]["xaxis3"]["title"]["text"] == "fraction of pixels revealed" and d["layout"]["yaxis"]["range"][0] == 0
    empty = valid(attributions.faithfulness_curves(points.iloc[:0], "none"))
    assert empty["data"] == [] or empty["data"] == ()


# --------------------------------------------------------------------------- Models


def test_model_figures() -> None:
    costs = pd.DataFrame({"model": ["resnet", "se_resnet"], "vanilla": ["", "resnet"], "has_se": [False, True],
                          "params_m": [1.0, 1.1], "se_params_pct": [0.0, 10.0]})
    p = valid(models.registry_params(costs))
    assert [t["name"] for t in p["data"]] == ["vanilla", "SE"] and p["layout"]["xaxis"]["categoryarray"] == ["resnet"]
    o = valid(models.registry_overhead(costs))
    assert [t["name"] for t in o["data"]] == ["SE"] and list(arr(o["data"][0]["y"])) == [10.0]
    metrics = pd.DataFrame({"run": ["r0", "r0"], "model": ["m", "m"], "epoch": [1, 2], "train_loss": [2.0, 1.0],
                            "test_loss": [2.1, 1.2], "train_acc": [40.0, 60], "test_acc": [38.0, 55], "lr": [0.1, 0.05]})
    loss = valid(models.loss_curves(metrics))
    assert [t["name"] for t in loss["data"]] == ["r0 · train", "r0 · test"] and loss["data"][1]["line"]["dash"] == "dash"
    assert ytitle(valid(models.accuracy_curves(metrics))) == "accuracy (%)"
    assert ytitle(valid(models.line_curves(metrics, "epoch", "lr", "run", y_title="learning rate"))) == "learning rate"
    sc = pd.DataFrame({"metric": ["test_acc"] * 2 + ["train_loss"] * 2, "epoch": [1, 2] * 2, "mean": [1.0] * 4,
                       "std": [0.1] * 4, "model": ["m"] * 4})
    s = valid(models.seed_curve(sc, "test_acc", "Test", "acc", {"m": "#000000"}))
    assert s["layout"]["title"]["text"] == "Test, mean ± std over seeds" and len(s["data"]) == 2
    gates = pd.DataFrame({"epoch": [1, 2], "site": ["layer1.0.se"] * 2, "mean": [0.5, 0.6], "std": [0.1, 0.1],
                          "selectivity": [0.1, 0.2], "still_share": [0.0, 0.5]})
    assert len(valid(models.gate_mean(gates))["data"]) == 2
    assert ytitle(valid(models.gate_selectivity(gates))) == "mean η² over channels"
    assert "frozen above" in valid(models.gate_still(gates))["layout"]["title"]["text"]


def test_model_histograms_and_results() -> None:
    rows = pd.DataFrame({"epoch": [1, 2], "hist": [[1, 3], [2, 2]]})
    h = valid(models.gate_hist_lines([[0, 0.5, 1], [0, 1, 2]], rows, "layer1.0.se"))
    assert [t["name"] for t in h["data"]] == ["epoch 1", "epoch 2"] and max(arr(h["data"][1]["x"])) == 2
    hl = pd.DataFrame({"epoch": [1, 1, 2, 2], "bin_center": [0.25, 0.75] * 2, "fraction": [0.25, 0.75, 0.5, 0.5]})
    hm = valid(models.gate_hist_heatmap(hl, "layer1.0.se"))["data"][0]
    assert hm["y"] == ["1", "2"] and arr(hm["z"]).ravel().tolist() == [0.25, 0.75, 0.5, 0.5]
    hm2 = valid(models.heatmap([[0, 1]], ["a", "b"], ["r"], zmid=0.5, colorscale="RdBu_r"))["data"][0]
    assert hm2["zmid"] == 0.5 and "zmin" not in hm2 and hm2["colorscale"] == style.colorscale("RdBu_r")
    summ = pd.DataFrame({"model": ["se", "other"], "top1_mean": [90.0, 89.0], "top1_std": [0.5, 0.4], "runs": [2, 2]})
    res = pd.DataFrame({"model": ["se", "se"], "top1": [89.5, 90.5], "seed": [0, 1], "run": ["a", "b"]})
    t = valid(models.top1_per_seed(summ, res, {"se": "#d9480f"}))
    assert t["data"][0]["marker"]["color"] == ["#d9480f", style.PALETTE[-1]] and t["layout"]["height"] == 340
    pc = pd.DataFrame({"class": ["cat", "cat"], "model": ["se", "other"], "acc_mean": [90.0, 80], "acc_std": [1.0, 2]})
    b = valid(models.per_class_accuracy(pc, {"se": "#d9480f"}))
    assert b["layout"]["yaxis"]["range"] == [0, 100] and b["data"][1]["error_y"]["array"] == [2.0]


# --------------------------------------------------------------------------- Ablations


def test_ablation_figures() -> None:
    summary = pd.DataFrame({"setting": ["no SE", "sigmoid", "tanh"], "is_default": [False, True, False],
                            "is_baseline": [True, False, False], "top1_mean": [8.0, 7.5, 7.8], "top1_std": [0.1, 0.2, np.nan],
                            "n": [2, 2, 1], "params": [100, 110, 110], "flops": [1e6, 1.1e6, 1.1e6],
                            "params_added": [0, 10, 10], "flops_added_pct": [0.0, 1.0, 1.0]})
    rows = pd.DataFrame({"setting": ["no SE", "sigmoid", "tanh"], "top1_err": [8.0, 7.5, 7.8], "seed": [0, 0, 0],
                         "trial_id": ["a", "b", "c"]})
    ours = valid(ablations.ours_fig(summary, rows, "excitation"))
    assert ours["data"][0]["marker"]["color"] == [style.PAIR_COLORS["vanilla"], style.PAIR_COLORS["se"], ablations.OTHER_COLOR]
    assert [a["text"] for a in ours["layout"]["annotations"]] == ["no SE", "default SE"]
    cost = valid(ablations.cost_fig(summary, "excitation"))
    assert [t["xaxis"] for t in cost["data"]] == ["x", "x2"] and cost["layout"]["xaxis2"]["type"] == "category"
    assert cost["layout"]["annotations"][0]["text"] == "parameters added over no SE"
    absolute = valid(ablations.cost_fig(summary.assign(params_added=np.nan), "excitation"))
    assert absolute["layout"]["annotations"][1]["text"] == "FLOPs per image (millions)"
    ref = tables.reference_rows(tables.load_reference(tables.REFERENCE_PATH), "excitation")
    paper = valid(ablations.paper_fig(ref, "excitation"))
    assert list(arr(paper["data"][0]["y"])) == list(ref["top1_err"]) and paper["data"][0]["marker"]["color"] == ablations.PAPER_COLOR
    cmp = pd.DataFrame({"setting": ["sigmoid", "tanh"], "delta": [-0.5, 0.2], "se": [0.1, np.nan],
                        "series": [tables.DELTA_SERIES[0]] * 2})
    delta = valid(ablations.delta_fig(cmp))
    assert delta["data"][0]["marker"]["color"] == ablations.DELTA_COLORS[tables.DELTA_SERIES[0]]
    assert delta["layout"]["xaxis"]["type"] == "category" and ablations.setting_color("no SE", False) == style.PAIR_COLORS["vanilla"]


# --------------------------------------------------------------------------- the package's rules


TESTED = {"common": {"band_curves", "bar_compare", "gate_movement", "seed_points", "histogram_compare"},
          "inspector": {"top5", "block_heatmap", "gate_box", "compare_images", "z_pair", "energy", "intervention"},
          "classwise": {"fig6_block", "fig6_all", "fig7_block", "selectivity", "z_block", "knockout"},
          "attributions": {"pair_maps", "difference", "faithfulness_curves"},
          "models": {"line_curves", "heatmap", "histogram_stack", "registry_params", "registry_overhead", "seed_curve",
                     "loss_curves", "accuracy_curves", "gate_mean", "gate_selectivity", "gate_still", "gate_hist_lines",
                     "gate_hist_heatmap", "top1_per_seed", "per_class_accuracy"},
          "ablations": {"ours_fig", "paper_fig", "delta_fig", "cost_fig", "setting_color", "variant_gates_fig",
                        "variant_dependence_fig"},
          "gatespace": {"gate_map", "jaccard", "top_channels", "variance_split", "input_vs_depth", "spread_vs_depth"}}


def _dependence_table() -> pd.DataFrame:
    rows = []
    for series in ("SE model · gates s", "vanilla model · squeeze z"):
        for i, (st, bt, wt) in enumerate([(0.9, 0.02, 0.08), (0.5, 0.3, 0.2), (0.1, 0.6, 0.3)]):
            rows.append({"series": series, "label": f"s{i + 1}.b0", "static_share": st, "between_share": bt,
                         "within_share": wt, "input_share": bt + wt, "frozen": i == 0, "spread_q1": 0.01 * i,
                         "spread_median": 0.02 * i, "spread_q3": 0.03 * i})
    return pd.DataFrame(rows)


def test_gatespace_map_keeps_image_ids_and_centroids() -> None:
    coords = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    labels = np.array([0, 1, 0, 1])
    cent = np.array([[1.0, 1.5], [2.0, 0.5], [np.nan, np.nan]])
    d = valid(gatespace.gate_map(coords, labels, ("a", "b", "c"), cent, np.array([0.6, 0.25]), np.arange(4) + 10,
                                 title_text="t", site="layer3.2.se", what="s"))
    a, b, centroids = d["data"]  # class c has no images: no trace, no centroid
    assert (a["name"], b["name"]) == ("a", "b") and list(arr(a["customdata"])) == [10, 12]
    assert list(arr(a["x"])) == [0.0, 2.0] and list(arr(b["y"])) == [0.0, 1.0]
    assert list(centroids["text"]) == ["a", "b"] and list(arr(centroids["customdata"])) == [-1, -1]
    assert d["layout"]["dragmode"] == "select" and "60.0%" in ytitle(d, "xaxis") and "25.0%" in ytitle(d)
    assert d["layout"]["meta"] == {"chart": "gate_map", "site": "layer3.2.se", "what": "s"}


def test_gatespace_overlap_figures() -> None:
    m = np.array([[1.0, 0.2], [0.2, 1.0]])
    d = valid(gatespace.jaccard(m, ("a", "b"), title_text="t", site="x", k=3))
    assert d["data"][0]["text"] == [["1.00", "0.20"], ["0.20", "1.00"]] and d["layout"]["meta"]["k"] == 3
    assert (d["data"][0]["zmin"], d["data"][0]["zmax"]) == (0, 1)
    score = np.array([[0.3, -0.1], [-0.2, 0.4]])
    d = valid(gatespace.top_channels(score, [[True, False], [False, True]], ("a", "b"), [4, 7], title_text="t",
                                     site="x", score_name="s"))
    assert d["data"][0]["text"] == [["●", ""], ["", "●"]] and d["data"][0]["x"] == ["4", "7"]
    assert d["data"][0]["zmax"] == pytest.approx(0.4) and d["data"][0]["zmin"] == pytest.approx(-0.4)


def test_gatespace_dependence_figures() -> None:
    table = _dependence_table()
    one = table[table["series"] == "SE model · gates s"]
    d = valid(gatespace.variance_split(one, title_text="t"))
    assert [t["name"] for t in d["data"]] == [name for _, name, _ in gatespace.PARTS] and d["layout"]["barmode"] == "stack"
    np.testing.assert_allclose(sum(arr(t["y"]) for t in d["data"]), 1.0)
    d = valid(gatespace.input_vs_depth(table))
    assert len(d["data"]) == 4 and d["data"][0]["legendgroup"] == "SE model · gates s"
    np.testing.assert_allclose(arr(d["data"][0]["y"]), one["input_share"])
    np.testing.assert_allclose(arr(d["data"][1]["y"]), one["between_share"])
    d = valid(gatespace.spread_vs_depth(one, title_text="t", threshold=0.01))
    band, med = d["data"]
    np.testing.assert_allclose(arr(med["y"]), one["spread_median"])
    assert med["text"] == ["frozen", "", ""] and d["layout"]["shapes"][0]["y0"] == 0.01
    assert list(band["y"]) == [0.0, 0.03, 0.06, 0.02, 0.01, 0.0]


def _variant_frame() -> pd.DataFrame:
    """Rows of se_core.analysis.gates.compare: 'all' has three blocks, 'stage 3' only the last one."""
    rows = []
    for variant, blocks in (("stage 3", [2]), ("all", [0, 1, 2])):
        for d in blocks:
            rows.append({"variant": variant, "key": variant, "label": f"s{d + 1}.b0", "depth": d, "input_share": 0.1 * d,
                         "between_share": 0.05 * d, "mean": 0.5, "q05": 0.1 + d, "q25": 0.3 + d, "q50": 0.5 + d,
                         "q75": 0.7 + d, "q95": 0.9 + d})
    return pd.DataFrame(rows)


def test_variant_figures_line_up_blocks_in_depth_order() -> None:
    frame = _variant_frame()
    d = valid(ablations.variant_gates_fig(frame, title_text="t"))
    stage3, every = d["data"]
    assert (stage3["type"], stage3["name"], every["name"]) == ("box", "stage 3", "all")
    assert list(stage3["x"]) == ["s3.b0"] and list(arr(every["median"])) == [0.5, 1.5, 2.5]
    assert list(arr(every["lowerfence"])) == [0.1, 1.1, 2.1] and list(arr(every["upperfence"])) == [0.9, 1.9, 2.9]
    assert list(arr(every["q1"])) == [0.3, 1.3, 2.3] and list(arr(every["q3"])) == [0.7, 1.7, 2.7]
    assert stage3["marker"]["color"] != every["marker"]["color"] and d["layout"]["boxmode"] == "group"
    # the variant with fewer blocks comes first, yet the axis runs in depth order
    assert d["layout"]["xaxis"]["categoryarray"] == ["s1.b0", "s2.b0", "s3.b0"]
    assert d["layout"]["meta"] == {"chart": "variant_gates"}
    d = valid(ablations.variant_dependence_fig(frame, title_text="Input dependence: excitation"))
    assert [t["name"] for t in d["data"]] == ["stage 3: input-dependent", "stage 3: between classes",
                                              "all: input-dependent", "all: between classes"]
    np.testing.assert_allclose(arr(d["data"][2]["y"]), [0.0, 0.1, 0.2])
    assert d["layout"]["xaxis"]["categoryarray"] == ["s1.b0", "s2.b0", "s3.b0"]
    assert d["layout"]["meta"] == {"chart": "variant_dependence"} and d["layout"]["title"]["text"].endswith("excitation")


def test_every_builder_is_tested_here() -> None:
    mods = {"common": common, "inspector": inspector, "classwise": classwise, "attributions": attributions,
            "models": models, "ablations": ablations, "gatespace": gatespace}
    for name, mod in mods.items():
        public = {n for n in mod.__all__ if callable(getattr(mod, n))}
        assert public == TESTED[name], f"dashboard/figures/{name}.py: untested {public - TESTED[name]}"


@pytest.mark.parametrize("path", sorted(FIGURES.glob("*.py")), ids=lambda p: p.name)
def test_figures_never_touch_streamlit(path: Path) -> None:
    names = [a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.split(".")[0] == "streamlit" or m.startswith("dashboard.") and "figures" not in m]


def test_progress_fig_shows_each_running_trials_epochs_and_error() -> None:
    running = [{"trial_id": "abcdef123456", "axis": "excitation", "setting": "tanh", "seed": 1, "epoch": 3, "epochs": 10,
                "top1_err": 41.25},
               {"trial_id": "0123456789ab", "axis": "baseline", "setting": "no SE", "seed": 0, "epoch": 0, "epochs": 10,
                "top1_err": None}]
    fig = valid(ablations.progress_fig(running))
    done, togo = fig["data"]
    assert list(arr(done["x"])) == [3, 0] and list(arr(togo["x"])) == [7, 10]
    assert done["text"] == ["41.2% err", "–"] and done["y"][0] == "excitation=tanh s1 (abcdef)"
    assert fig["layout"]["barmode"] == "stack" and fig["layout"]["xaxis"]["range"] == [0, 10.0]
    assert valid(ablations.progress_fig([]))["data"][0]["y"] == []
