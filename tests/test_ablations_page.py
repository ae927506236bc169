"""Ablations page (AppTest): no table (command shown, paper rows still drawn), the shipped table, an
uploaded table, a typed path, and malformed tables that give one st.error naming the column/row."""
from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support import run_tiny_sweep, tiny_sweep_spec

from se_core.runs import tables
from se_core.runs.ablate import provenance_path

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SPEC = tiny_sweep_spec("tiny-page", "[0, 1]", 1)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A result table made by a real tiny sweep (2 configs x 2 seeds x 1 epoch)."""
    tmp = tmp_path_factory.mktemp("abl_page")
    run_tiny_sweep(tmp, SPEC, tmp / "tiny-page.csv", 4)
    return tmp / "tiny-page.csv"


def _app(monkeypatch: pytest.MonkeyPatch, shipped_dir: Path, roots: Path | None = None) -> AppTest:
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(shipped_dir))
    if roots is not None:
        monkeypatch.setenv("SE_LENS_DATA_ROOTS", str(roots))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("../pages/ablations.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _array(v) -> list[float]:
    """Plotly JSON arrays: plain lists or base64 typed arrays ({'dtype', 'bdata'})."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(float).tolist()
    return [float(x) for x in v]


def _figures(at: AppTest) -> dict[str, dict]:
    out = {}
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        title = (fig.get("layout", {}).get("title") or {}).get("text", "")
        out[title] = fig
    return out


def _paper_titles(figs: dict[str, dict]) -> list[str]:
    return [t for t in figs if t.startswith("Reported by Hu et al. (TPAMI v4, Table ")]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_no_table_shows_the_command_and_the_paper_rows(tiny_data_dir, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, tmp_path / "empty")
    assert not _errors(at)
    assert any("python -m se_core.ablate run sweeps/default.toml" in i.value for i in at.info)
    figs = _figures(at)
    assert len(_paper_titles(figs)) == len(tables.AXES)  # one paper chart per axis, Tables 10-16
    ref = tables.load_reference()
    t13 = figs["Reported by Hu et al. (TPAMI v4, Table 13), SE-ResNet-50 on ImageNet"]
    assert _array(t13["data"][0]["y"]) == list(tables.reference_rows(ref, "stages")["top1_err"])
    assert any("conv5_x has no single-stage row" in m.value for m in at.markdown)


def test_shipped_table_draws_our_axis_beside_the_paper(tiny_data_dir, tiny_table: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "ablations"
    shipped.mkdir()
    shutil.copy(tiny_table, shipped / tiny_table.name)
    shutil.copy(provenance_path(tiny_table), shipped / provenance_path(tiny_table).name)
    at = _app(monkeypatch, shipped)
    assert not _errors(at)
    assert [m.value for m in at.metric][:3] == ["4", "2", "2"]  # trials, configs, seeds
    assert any("< 10" in w.value for w in at.warning)  # 1-epoch trials are flagged
    assert not any("in progress" in i.value for i in at.info)  # the tiny sweep finished
    sigma, dof = tables.pooled_seed_std(tables.load_ablation_table(tiny_table))
    assert dof == 2 and any(f"σ = {sigma:.2f} pt, 2 dof" in m.value for m in at.markdown)
    figs = _figures(at)
    ours = figs["Ours: Excitation gate, CIFAR-10 test top-1 error"]
    summary = tables.summarize_axis(tables.load_ablation_table(tiny_table), "excitation")
    assert ours["data"][0]["x"] == ["no SE", "sigmoid"]
    assert _array(ours["data"][0]["y"]) == pytest.approx(list(summary["top1_mean"]))
    assert len(_array(ours["data"][1]["y"])) == 4  # every seed as a point
    assert any(t.startswith("Ours: cost of each excitation gate setting") for t in figs)
    assert len(_paper_titles(figs)) == len(tables.AXES)
    # the Δ chart: our changes with ± s.e. whiskers, the paper's (one run per row) without
    delta = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]  # one per axis, all with one title
    exc = next(f for f in delta if f["layout"]["title"]["text"].startswith("Change in top-1 error")
               and any("sigmoid" in tr["x"] for tr in f["data"]))
    assert [tr["name"] for tr in exc["data"]] == list(tables.DELTA_SERIES)
    assert exc["layout"]["xaxis"]["categoryarray"] == ["no SE", "sigmoid", "tanh", "relu"]  # ours, then the paper's
    bars = {tr["name"]: tr for tr in exc["data"]}
    sig = summary.set_index("setting").loc["sigmoid"]
    whisk = bars["ours vs no SE"]["error_y"]
    assert bars["ours vs no SE"]["x"] == ["sigmoid"]  # no SE against itself is left out
    assert whisk["visible"] and _array(whisk["array"]) == pytest.approx([sig["d_vs_vanilla_se"]])
    assert not bars["paper vs ResNet-50"]["error_y"]["visible"]
    # the page offers the numbers as CSV downloads
    assert len(at.get("download_button")) >= 3


def test_unfinished_sweep_says_how_far_it_got(tiny_data_dir, tiny_table: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "ablations"
    shipped.mkdir()
    shutil.copy(tiny_table, shipped / tiny_table.name)
    prov = json.loads(provenance_path(tiny_table).read_text())
    prov.update(trials_in_sweep=34, trials_done=4, finished=None)
    provenance_path(shipped / tiny_table.name).write_text(json.dumps(prov))
    at = _app(monkeypatch, shipped)
    assert not _errors(at)
    assert any(i.value.startswith("Sweep in progress: 4 of 34 trials") for i in at.info)


def test_uploaded_tables_good_and_malformed(tiny_data_dir, tiny_table: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, tmp_path / "empty")
    at.radio(key="abl_source").set_value("Upload a CSV").run()
    at.file_uploader(key="abl_upload").set_value((tiny_table.name, tiny_table.read_bytes(), "text/csv"))
    at.run()
    assert not at.exception and not _errors(at)
    assert "Ours: Excitation gate, CIFAR-10 test top-1 error" in _figures(at)

    lines = tiny_table.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("top1_err")] = "lots"
    bad = "\n".join([lines[0], lines[1], ",".join(cells), *lines[3:]]) + "\n"
    at.file_uploader(key="abl_upload").set_value(("bad.csv", bad.encode(), "text/csv"))
    at.run()
    assert not at.exception
    errs = _errors(at)
    assert len(errs) == 1 and "'top1_err'" in errs[0] and "row 2" in errs[0] and "'lots'" in errs[0]
    figs = _figures(at)
    assert len(_paper_titles(figs)) == len(tables.AXES)  # the paper's rows still show
    assert not any(t.startswith("Ours:") for t in figs)

    no_col = "\n".join(",".join(c for i, c in enumerate(ln.split(",")) if i != header.index("flops"))
                       for ln in lines) + "\n"
    at.file_uploader(key="abl_upload").set_value(("nocol.csv", no_col.encode(), "text/csv"))
    at.run()
    assert not at.exception and len(_errors(at)) == 1 and "'flops'" in _errors(at)[0]

    at.file_uploader(key="abl_upload").set_value(("latin.csv", "a,\xe9\n".encode("latin-1"), "text/csv"))
    at.run()
    assert not at.exception and "not UTF-8" in _errors(at)[0]


def test_typed_path_is_confined_to_the_data_roots(tiny_data_dir, tiny_table: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(tiny_table, root / "mine.csv")
    (root / "broken.csv").write_text("trial_id,axis,setting\nx,default,SE\n")
    at = _app(monkeypatch, tmp_path / "empty", roots=root)
    at.radio(key="abl_source").set_value("Path on this machine").run()
    at.text_input(key="abl_path").input("mine.csv").run()
    assert not at.exception and not _errors(at)
    assert "Ours: Excitation gate, CIFAR-10 test top-1 error" in _figures(at)

    at.text_input(key="abl_path").input(str(tiny_table)).run()  # real file, but outside the roots
    assert not at.exception and "outside the allowed data roots" in _errors(at)[0]
    at.text_input(key="abl_path").input("../mine.csv").run()
    assert not at.exception and "'..'" in _errors(at)[0]
    at.text_input(key="abl_path").input("broken.csv").run()
    assert not at.exception and "lacks the required column" in _errors(at)[0] and "'arch'" in _errors(at)[0]
    assert len(_paper_titles(_figures(at))) == len(tables.AXES)


def test_a_running_sweep_shows_its_live_progress(tiny_data_dir, tiny_table: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The progress file the runner writes beside the table drives a panel that refreshes itself
    (st.fragment with run_every while the file is fresh), and a stale one says the driver stopped."""
    import time

    from dashboard import sweep_progress
    from se_core.runs.ablate import progress_path

    shipped = tmp_path / "ablations"
    shipped.mkdir()
    shutil.copy(tiny_table, shipped / tiny_table.name)
    running = [{"trial_id": "abcdef123456", "index": 4, "axis": "excitation", "setting": "tanh", "seed": 2,
                "epoch": 3, "epochs": 10, "top1_err": 41.5, "node_ip": "127.0.0.1", "node_id": "n1", "pid": 1,
                "started": "now"}]
    doc = {"sweep": "tiny-page", "state": "running", "cluster": "embedded local Ray (127.0.0.1)", "total": 6,
           "done": 4, "running": running, "queued": 1, "updated": "just now", "updated_unix": time.time(),
           "failed": [{"trial_id": "fff000fff000", "axis": "excitation", "setting": "relu", "seed": 2,
                       "error": "ValueError: boom"}]}
    progress_path(shipped / tiny_table.name).write_text(json.dumps(doc))
    assert sweep_progress.refresh_every(doc) == sweep_progress.REFRESH_S
    at = _app(monkeypatch, shipped)
    assert not at.exception
    assert any("running on embedded local Ray (127.0.0.1): 4 of 6 trials done, 1 running, 1 queued, 1 failed" in i.value
               for i in at.info)
    fig = _figures(at)["Running trials: epochs done, current test top-1 error"]
    assert _array(fig["data"][0]["x"]) == [3.0] and fig["data"][0]["text"] == ["41.5% err"]
    assert any("1 trial(s) failed" in e for e in _errors(at))
    assert "Ours: Excitation gate, CIFAR-10 test top-1 error" in _figures(at)  # the rows so far, charted

    doc.update(updated_unix=time.time() - 3600)  # the driver died an hour ago
    assert sweep_progress.refresh_every(doc) is None
    progress_path(shipped / tiny_table.name).write_text(json.dumps(doc))
    at = _app(monkeypatch, shipped)
    assert not at.exception and any("driver has stopped" in w.value for w in at.warning)


@pytest.mark.parametrize("bad", [
    {"state": "running", "updated_unix": "yesterday"},  # not a number
    {"state": "running", "running": [{"epoch": 1}]},  # a running trial without its labels
    {"state": "running", "running": [{"trial_id": "a", "axis": "x", "setting": "y", "seed": 0, "epoch": "one"}]},
    {"state": "running", "running": "all of them"},
    ["not", "a", "document"],
])
def test_a_malformed_progress_file_is_ignored_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tiny_table: Path, bad) -> None:
    from se_core.runs.ablate import progress_path
    from se_core.runs.ablate.progress import read_progress

    shipped = tmp_path / "ablations"
    shipped.mkdir()
    shutil.copy(tiny_table, shipped / tiny_table.name)
    progress_path(shipped / tiny_table.name).write_text(json.dumps(bad))
    assert read_progress(shipped / tiny_table.name) is None
    at = _app(monkeypatch, shipped)
    assert not at.exception and "Ours: Excitation gate, CIFAR-10 test top-1 error" in _figures(at)
