"""Malformed tables: every loader of a result file gives its own error, naming the problem, and nothing else.

Loaders: ``se_core.analysis.stats.load_stats`` (StatsError), the run-history loaders of ``se_core.runs.history``
(RunError; ``list_runs`` records the problem instead), ``se_core.runs.tables.load_ablation_table``
(TableError) and ``se_core.analysis.knockout.load_table`` (KnockoutError). Each is fed wrong columns or
keys, wrong types, NaN, an empty file, a file over its size limit (a sparse file: nothing is
written to disk) and other encodings (UTF-16, Latin-1 bytes); hypothesis adds random bytes and
random JSON in random places. Then the Ablations, Class-wise and Models pages get malformed
files through their inputs and show an ``st.error`` while the rest of the page keeps working.
No trained weights or data sets needed: random-init models and random images only.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from PIL import Image
from streamlit.testing.v1 import AppTest

from se_core.analysis import knockout as ko
from se_core.analysis import stats as S
from se_core.data.datasets import ImageSet
from se_core.models.registry import get_spec
from se_core.runs import history as R
from se_core.runs import tables
from se_core.runs.history import RunError
from se_core.runs.tables import TableError, load_ablation_table
from se_core.runs.train import METRIC_FIELDS, TrainConfig

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
JSON = hs.recursive(hs.none() | hs.booleans() | hs.integers(-2**70, 2**70) | hs.floats() | hs.text(max_size=8),
                    lambda c: hs.lists(c, max_size=4) | hs.dictionaries(hs.text(max_size=6), c, max_size=4),
                    max_leaves=12)


def sparse(path: Path, mb: float) -> Path:
    """A file of ``mb`` megabytes that takes no disk space (a loader must refuse it by its size alone)."""
    with open(path, "wb") as f:
        f.truncate(int(mb * 1e6) + 1)
    return path


def mutate(doc: object, data, depth: int = 0) -> object:
    """``doc`` with one value somewhere inside replaced by random JSON (hypothesis picks where)."""
    if depth < 6 and isinstance(doc, (dict, list)) and doc and data.draw(hs.booleans()):
        keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
        k = data.draw(hs.sampled_from(keys))
        out = dict(doc) if isinstance(doc, dict) else list(doc)
        out[k] = mutate(doc[k], data, depth + 1)
        return out
    return data.draw(JSON)


# ============================================================================ statistics files
@pytest.fixture(scope="module")
def stats_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], dict]:
    """A real statistics file (random-init SE-ResNet-20 on 20 random images), its arrays and header."""
    tmp = tmp_path_factory.mktemp("stats")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = get_spec("se_resnet20_cifar").build().eval()
        images = torch.randint(0, 256, (20, 32, 32, 3), dtype=torch.uint8)
    data = ImageSet(images, torch.arange(20) % 4, ("a", "b", "c", "d"), "random20", "random20")
    stats = S.compute_stats(model, data, (0.5,) * 3, (0.25,) * 3, batch_size=10, bins=8)
    path = S.save_stats(tmp / "good.npz", stats, sidecar=False)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return path, arrays, json.loads(arrays["__header__"].tobytes())


def _npz(path: Path, arrays: dict[str, np.ndarray], header: dict | bytes | None = None, **replace) -> Path:
    a = dict(arrays, **replace)
    if header is not None:
        raw = header if isinstance(header, bytes) else json.dumps(header).encode()
        a["__header__"] = np.frombuffer(raw, dtype=np.uint8)
    np.savez(path, **a)
    return path


def _h(header: dict, **changes) -> dict:
    return json.loads(json.dumps(dict(header, **changes)))


def _site_h(header: dict, key: str, value) -> dict:
    h = json.loads(json.dumps(header))
    h["gate_sites"][0][key] = value
    return h


def test_good_stats_file_loads(stats_file) -> None:
    path, _, _ = stats_file
    assert S.load_stats(path).n_images == 20


STATS_CASES = {
    # wrong keys
    "no header": (lambda a, h: dict(a=a, drop="__header__"), ["foreign"]),
    "missing array": (lambda a, h: dict(a=a, drop="s_hist_2"), ["'s_hist_2'", "missing"]),
    "no classes": (lambda a, h: dict(a=a, header={k: v for k, v in h.items() if k != "classes"}), ["'classes'"]),
    "site lacks key": (lambda a, h: dict(a=a, header=json.loads(json.dumps(h).replace('"channels": 16', '"width": 16',
                                                                                      1))),
                       ["gate_sites[0]", "lacks ['channels']"]),
    # wrong types
    "classes int": (lambda a, h: dict(a=a, header=_h(h, classes=5)), ["'classes'", "list of class names"]),
    "bins string": (lambda a, h: dict(a=a, header=_h(h, bins="8")), ["'bins'", "'8'"]),
    "bins huge": (lambda a, h: dict(a=a, header=_h(h, bins=10**12)), ["'bins'"]),
    "sites dict": (lambda a, h: dict(a=a, header=_h(h, gate_sites={"a": 1})), ["'gate_sites'", "list"]),
    "site name list": (lambda a, h: dict(a=a, header=_site_h(h, "name", [1])), ["gate_sites[0].name", "string"]),
    "channels string": (lambda a, h: dict(a=a, header=_site_h(h, "channels", "16")), ["gate_sites[0].channels"]),
    "array dtype": (lambda a, h: dict(a=a, replace={"count": a["count"].astype(np.float32)}), ["'count'", "float32"]),
    "array shape": (lambda a, h: dict(a=a, replace={"s_sum_0": a["s_sum_0"][:, :, :3]}), ["'s_sum_0'", "expected"]),
    "header floats": (lambda a, h: dict(a=a, replace={"__header__": np.zeros(4)}), ["header array", "float64"]),
    # NaN and impossible values
    "NaN sum": (lambda a, h: dict(a=a, replace={"s_sum_1": np.where(np.arange(a["s_sum_1"].size).reshape(
        a["s_sum_1"].shape) == 3, np.nan, a["s_sum_1"])}), ["'s_sum_1'", "NaN"]),
    "NaN range": (lambda a, h: dict(a=a, header=_site_h(h, "hi", float("nan"))), ["gate_sites[0].hi", "finite"]),
    "negative count": (lambda a, h: dict(a=a, replace={"count": -a["count"]}), ["'count'", "negative"]),
    "hist vs count": (lambda a, h: dict(a=a, replace={"s_hist_0": a["s_hist_0"] * 2}), ["'s_hist_0'", "add up"]),
    # other encodings of the header
    "header UTF-16": (lambda a, h: dict(a=a, header=json.dumps(h).encode("utf-16")), ["not UTF-8", "0xff"]),
    "header Latin-1": (lambda a, h: dict(a=a, header=json.dumps(_h(h, classes=["\xe9t\xe9", "b", "c", "d"]),
                                                                ensure_ascii=False).encode("latin-1")),
                       ["not UTF-8", "0xe9"]),
    "header deep": (lambda a, h: dict(a=a, header=b"[" * 50_000 + b"]" * 50_000), ["not valid JSON"]),
}


@pytest.mark.parametrize("case", list(STATS_CASES))
def test_malformed_stats_files(stats_file, tmp_path: Path, case: str) -> None:
    _, arrays, header = stats_file
    make, needles = STATS_CASES[case]
    spec = make(arrays, header)
    a = {k: v for k, v in spec["a"].items() if k != spec.get("drop")}
    path = _npz(tmp_path / "bad.npz", a, spec.get("header"), **spec.get("replace", {}))
    with pytest.raises(S.StatsError) as e:
        S.load_stats(path)
    for n in ["bad.npz", *needles]:
        assert n in str(e.value), (n, str(e.value))


def test_stats_empty_huge_and_foreign_files(stats_file, tmp_path: Path) -> None:
    path, arrays, _ = stats_file
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(S.StatsError, match="empty.npz: empty file"):
        S.load_stats(tmp_path / "empty.npz")
    with pytest.raises(S.StatsError, match=rf"huge.npz is .* MB, over the {S.MAX_STATS_MB:g} MB limit"):
        S.load_stats(sparse(tmp_path / "huge.npz", S.MAX_STATS_MB))
    with pytest.raises(S.StatsError, match="over the 0.01 MB limit"):
        S.load_stats(path, max_mb=0.01)
    (tmp_path / "text.npz").write_text("classes,count\na,1\n", encoding="utf-16")
    with pytest.raises(S.StatsError, match="not a readable .npz"):
        S.load_stats(tmp_path / "text.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(S.StatsError, match="not a readable .npz"):
        S.load_stats(tmp_path / "plain.npy")
    # a zip bomb: a tiny compressed member that would expand to 160 MB is refused before it is read
    buf = io.BytesIO()
    np.savez_compressed(buf, __header__=arrays["__header__"], count=np.zeros(20_000_000, np.int64))
    (tmp_path / "bomb.npz").write_bytes(buf.getvalue())
    assert (tmp_path / "bomb.npz").stat().st_size < 1_000_000
    with pytest.raises(S.StatsError, match="'count' is int64\\[20000000\\], expected int64\\[4\\]"):
        S.load_stats(tmp_path / "bomb.npz")
    with pytest.raises(S.StatsError, match="expand to 160.0 MB, over the 100 MB limit"):
        S.load_stats(tmp_path / "bomb.npz", max_mb=100)


@FUZZ
@given(data=hs.data())
def test_stats_fuzz_never_raises_anything_else(stats_file, tmp_path: Path, data) -> None:
    path, arrays, header = stats_file
    kind = data.draw(hs.sampled_from(["bytes", "flip", "header"]))
    out = tmp_path / "fuzz.npz"
    if kind == "bytes":
        out.write_bytes(data.draw(hs.binary(max_size=2000)))
    elif kind == "flip":  # a few bytes of a good file overwritten
        raw = bytearray(path.read_bytes())
        for _ in range(data.draw(hs.integers(1, 4))):
            raw[data.draw(hs.integers(0, len(raw) - 1))] = data.draw(hs.integers(0, 255))
        out.write_bytes(bytes(raw))
    else:
        _npz(out, arrays, mutate(header, data))
    try:
        S.load_stats(out)
    except S.StatsError as e:
        assert "fuzz.npz" in str(e)


# ============================================================================ run files
CLASSES = [f"c{i}" for i in range(10)]


def write_run(d: Path) -> Path:
    """A complete, valid run directory as the trainer writes it (2 epochs, 2 SE blocks)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(TrainConfig(epochs=2, train_subset=64).to_dict()))
    rows = [dict(zip(METRIC_FIELDS, (e, 2.0 / e, 30.0 * e, 2.1 / e, 28.0 * e, 0.1 / e, 3.5, 120.0))) for e in (1, 2)]
    (d / "metrics.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    site = {"mean": 0.5, "std": 0.1, "selectivity": 0.2, "hist": [1, 2, 3, 4], "range": [0.0, 1.0]}
    (d / "gates.json").write_text(json.dumps([{"epoch": e, "sites": {"layer1.0.se": site, "layer2.0.se": site}}
                                              for e in (1, 2)]))
    (d / "final.json").write_text(json.dumps({
        "final": {"top1": 56.0, "top5": 90.0, "loss": 1.5, "n": 100, "per_class": {c: 50.0 for c in CLASSES}},
        "provenance": {"epochs": 2, "wall_time_s": 7.0, "date": "2026-01-01"}}))
    return d


LOADERS = {"config.json": R.load_config, "metrics.csv": R.load_metrics, "gates.json": R.load_gate_history,
           "final.json": R.load_final}
HEADER = ",".join(METRIC_FIELDS)
GATE = {"mean": 0.5, "std": 0.1, "selectivity": 0.2, "hist": [1, 2], "range": [0, 1]}
RUN_CASES = [
    # wrong columns / keys
    ("metrics.csv", "epoch,loss\n1,0.5\n", ["lacks column", "train_loss"]),
    ("gates.json", json.dumps([{"epoch": 1, "sites": {"s": {k: v for k, v in GATE.items() if k != "range"}}}]),
     ["missing 'range'", "epoch 1, s"]),
    ("final.json", json.dumps({"final": {"n": 5}, "provenance": {}}), ["lacks 'top1'"]),
    ("config.json", json.dumps({"arch": "se_resnet20_cifar", "lr_max": 1}), ["unknown train config field", "lr_max"]),
    # wrong types
    ("config.json", json.dumps({"arch": 5}), ["'arch' is 5", "string"]),
    ("config.json", json.dumps({"epochs": "ten"}), ["'epochs' is 'ten'", "whole number"]),
    ("config.json", json.dumps({"lr": "fast"}), ["'lr' is 'fast'"]),
    ("config.json", json.dumps({"se": "abc"}), ["'se' is 'abc'"]),
    ("config.json", json.dumps({"seed": 1.5}), ["'seed' is 1.5"]),
    ("config.json", json.dumps([1, 2]), ["JSON object", "list"]),
    ("metrics.csv", f"{HEADER}\n1,low,1,1,1,1,1,1\n", ["line 2", "train_loss='low'"]),
    ("gates.json", json.dumps([{"epoch": "1", "sites": {}}]), ["entry 0", "epoch='1'"]),
    ("gates.json", json.dumps([{"epoch": 1, "sites": {"s": dict(GATE, hist="many")}}]), ["'hist'", "epoch 1, s"]),
    ("final.json", json.dumps({"final": {"top1": "50", "n": 1}, "provenance": {}}), ["final.top1 is '50'"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": 1, "top5": "x"}, "provenance": {}}), ["final.top5"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": 2.5}, "provenance": {}}), ["final.n=2.5"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": 1}, "provenance": {"epochs": "x"}}), ["provenance.epochs"]),
    # NaN / infinite / impossible
    ("config.json", '{"epochs": NaN}', ["'epochs' is nan"]),
    ("metrics.csv", f"{HEADER}\n1,1,nan,1,1,1,1,1\n", ["line 2", "train_acc='nan'", "finite"]),
    ("metrics.csv", f"{HEADER}\nnan,1,1,1,1,1,1,1\n", ["line 2", "epoch='nan'"]),
    ("metrics.csv", f"{HEADER}\n1,1,1,1,1,inf,1,1\n", ["lr='inf'"]),
    ("gates.json", json.dumps([{"epoch": 1, "sites": {"s": dict(GATE, mean=float("nan"))}}]), ["mean is nan"]),
    ("gates.json", json.dumps([{"epoch": 1, "sites": {"s": dict(GATE, hist=[1, float("nan")])}}]), ["hist value is nan"]),
    ("gates.json", json.dumps([{"epoch": 1, "sites": {"s": dict(GATE, range=[0, float("inf")])}}]), ["range hi is inf"]),
    ("gates.json", json.dumps([{"epoch": 2, "sites": {}}, {"epoch": 2, "sites": {}}]), ["entry 1", "does not follow"]),
    ("final.json", json.dumps({"final": {"top1": float("nan"), "n": 1}, "provenance": {}}), ["final.top1 is nan"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": float("nan")}, "provenance": {}}), ["final.n is nan"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": -1}, "provenance": {}}), ["final.n=-1"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": 1, "per_class": {"a": float("nan")}}, "provenance": {}}),
     ["per_class['a'] is nan"]),
    ("final.json", json.dumps({"final": {"top1": 50, "n": 1, "per_class": {"a": 130}}, "provenance": {}}),
     ["per_class['a']=130", "percentage"]),
    # empty files, truncation, csv limits
    ("metrics.csv", "", ["empty file"]),
    ("config.json", "", ["not valid JSON"]),
    ("gates.json", '[{"epoch": 1, "sites": {"s": {"mean": 0.5', ["not valid JSON"]),
    ("gates.json", "[" * 100_000 + "]" * 100_000, ["not valid JSON", "nested too deeply"]),
    ("metrics.csv", f'{HEADER}\n1,"{"9" * 200_000}",1,1,1,1,1,1\n', ["not a readable CSV", "field"]),
]


@pytest.mark.parametrize("name, text, needles", RUN_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(RUN_CASES)])
def test_malformed_run_files(tmp_path: Path, name: str, text: str, needles: list[str]) -> None:
    run = write_run(tmp_path / "runs" / "r0")
    (run / name).write_text(text)
    with pytest.raises(RunError) as e:
        LOADERS[name](run)
    for n in [str(run / name), *needles]:
        assert n in str(e.value), (n, str(e.value))
    if name != "gates.json":  # gates are read lazily; the others are checked when listing
        [info] = R.list_runs(tmp_path / "runs")
        assert info.problem == str(e.value) and info.status == "unreadable"
        assert R.results_table(tmp_path / "runs").empty and R.per_class_table(tmp_path / "runs").empty


@pytest.mark.parametrize("name", list(LOADERS))
def test_run_files_in_other_encodings_or_too_large(tmp_path: Path, name: str) -> None:
    run = write_run(tmp_path / "runs" / "r0")
    good = (run / name).read_text()
    LOADERS[name](run)  # the valid file loads
    (run / name).write_bytes(good.encode("utf-16"))
    with pytest.raises(RunError, match=rf"{name}: not UTF-8 text \(byte 0 is 0xff\)"):
        LOADERS[name](run)
    (run / name).write_bytes((good + " \xe9").encode("latin-1"))
    with pytest.raises(RunError, match=rf"{name}: not UTF-8 text \(byte \d+ is 0xe9\)"):
        LOADERS[name](run)
    sparse(run / name, R.MAX_RUN_FILE_MB)
    with pytest.raises(RunError, match=rf"{name}: .* MB, over the {R.MAX_RUN_FILE_MB:g} MB limit"):
        LOADERS[name](run)
    assert R.list_runs(tmp_path / "runs")[0].status == ("unreadable" if name != "gates.json" else "finished")


def test_valid_run_reads_completely(tmp_path: Path) -> None:
    run = write_run(tmp_path / "runs" / "r0")
    [info] = R.list_runs(tmp_path / "runs")
    assert info.finished and not info.problem and info.epochs_done == 2
    assert len(R.load_gate_history(run)) == 4
    res = R.results_table(tmp_path / "runs")
    assert list(res["top1"]) == [56.0] and list(res["n_test"]) == [100] and list(res["epochs"]) == [2]
    # JSON integers written as floats (3.0) are still whole numbers
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(cfg, epochs=2.0)))
    assert R.load_config(run).epochs == 2 and isinstance(R.load_config(run).epochs, int)


@FUZZ
@given(data=hs.data())
def test_run_files_fuzz_never_raise_anything_else(tmp_path: Path, data) -> None:
    root = tmp_path / f"fuzz{data.draw(hs.integers(0, 10**9))}"
    run = write_run(root / "r0")
    name = data.draw(hs.sampled_from(list(LOADERS)))
    if data.draw(hs.booleans()):
        (run / name).write_bytes(data.draw(hs.binary(max_size=300)))
    elif name == "metrics.csv":
        lines = (run / name).read_text().splitlines()
        i = data.draw(hs.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        cells[data.draw(hs.integers(0, len(cells) - 1))] = data.draw(hs.text(max_size=6))
        lines[i] = ",".join(cells)
        (run / name).write_text("\n".join(lines) + "\n")
    else:
        (run / name).write_text(json.dumps(mutate(json.loads((run / name).read_text()), data)))
    for loader in LOADERS.values():
        try:
            loader(run)
        except RunError as e:
            assert str(run) in str(e)
    infos = R.list_runs(root)  # never raises: problems are recorded
    assert len(infos) == 1
    for f in (R.results_table, R.per_class_table):
        f(root)
    try:
        R.all_metrics(infos)
    except RunError:
        pass


# ============================================================================ ablation tables
GOOD = (
    "trial_id,axis,setting,axes,arch,seed,epochs,top1_err,top5_err,params,flops\n"
    "a1,baseline,no SE,baseline:no SE,resnet20_cifar,0,10,9.5,0.4,269722,81102080\n"
    "b2,default,SE (default),default:SE (default);excitation:sigmoid,se_resnet20_cifar,0,10,9.0,0.3,272095,81106112\n"
)
TABLE_CASES = [
    (GOOD.replace("top5_err", "top_5"), ["'top5_err'", "lacks the required column"]),
    (GOOD.replace(",0,10,9.0", ",zero,10,9.0"), ["'seed'", "row 2", "'zero'", "not a number"]),
    (GOOD.replace("9.5,0.4", "NaN,0.4"), ["'top1_err'", "NaN", "row 1"]),
    (GOOD.replace("272095", "inf"), ["'params'", "row 2", "not finite"]),
    (GOOD.replace("272095", "272095.5"), ["'params'", "row 2", "whole number"]),
    ("", ["empty"]),
    ("\n\n  \n", ["empty"]),
    (GOOD.splitlines()[0] + "\n", ["no rows"]),
]


@pytest.mark.parametrize("text, needles", TABLE_CASES)
def test_malformed_ablation_tables_from_a_path(tmp_path: Path, text: str, needles: list[str]) -> None:
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(TableError) as e:
        load_ablation_table(p)
    for n in ["t.csv", *needles]:
        assert n in str(e.value), (n, str(e.value))


def test_ablation_table_encodings_and_size(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(GOOD)
    assert len(load_ablation_table(p)) == 2
    p.write_bytes(GOOD.encode("utf-16"))
    with pytest.raises(TableError, match=r"t.csv is not UTF-8 text \(byte 0 is 0xff\)"):
        load_ablation_table(p)
    p.write_bytes(GOOD.replace("no SE", "no SE \xe9").encode("latin-1"))
    with pytest.raises(TableError, match=r"t.csv is not UTF-8 text \(byte \d+ is 0xe9\)"):
        load_ablation_table(p)
    with pytest.raises(TableError, match=rf"huge.csv is .* MB, over the {tables.MAX_TABLE_MB:g} MB limit"):
        load_ablation_table(sparse(tmp_path / "huge.csv", tables.MAX_TABLE_MB))
    p.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())  # a UTF-8 byte-order mark (Excel) is fine
    assert len(load_ablation_table(p)) == 2


@FUZZ
@given(data=hs.data())
def test_ablation_table_fuzz_never_raises_anything_else(data) -> None:
    if data.draw(hs.booleans()):
        raw = data.draw(hs.binary(max_size=400))
    else:  # one cell or line of a good table replaced
        lines = GOOD.splitlines()
        i = data.draw(hs.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        cells[data.draw(hs.integers(0, len(cells) - 1))] = data.draw(hs.text(max_size=8))
        lines[i] = ",".join(cells)
        raw = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    try:
        df = load_ablation_table(raw, name="fuzz.csv")
    except TableError as e:
        assert "fuzz.csv" in str(e) or "uploaded table" in str(e)
    else:
        tables.table_problems(df)
        for axis in tables.axes_present(df):
            tables.summarize_axis(df, axis)


# ============================================================================ knock-out tables
KO_GOOD = ("target,kind,stage,depth,sites,mode,top1,delta,loss,n\n"
           "none,baseline,0,-1,,baseline,60.0,0.0,1.2,100\n"
           "1.0,block,1,0,layer1.0.se,off,55.0,-5.0,1.4,100\n")
KO_CASES = [
    (KO_GOOD.replace(",delta", ",change"), ["'delta'", "lacks"]),
    (KO_GOOD.replace("55.0,-5.0", "high,-5.0"), ["'top1'", "row 2", "'high'"]),
    (KO_GOOD.replace("55.0,-5.0", "nan,-5.0"), ["'top1'", "row 2", "'nan'"]),
    (KO_GOOD.replace("55.0,-5.0", "155.0,-5.0"), ["'top1'", "percentage"]),
    (KO_GOOD.replace(",off,", ",sideways,"), ["'mode'", "sideways"]),
    (KO_GOOD.replace("none,baseline", "none,block"), ["'kind'", "exactly one 'baseline'"]),
    ("", ["empty"]),
    ('target,kind\n"a,b\n', ["not a readable CSV"]),
]


@pytest.mark.parametrize("text, needles", KO_CASES)
def test_malformed_knockout_tables(tmp_path: Path, text: str, needles: list[str]) -> None:
    p = tmp_path / "ko.csv"
    p.write_text(text)
    with pytest.raises(ko.KnockoutError) as e:
        ko.load_table(p)
    for n in ["ko.csv", *needles]:
        assert n in str(e.value), (n, str(e.value))


def test_knockout_table_good_encodings_and_size(tmp_path: Path) -> None:
    p = tmp_path / "ko.csv"
    p.write_text(KO_GOOD)
    df = ko.load_table(p)
    assert list(df.columns) == ko.COLUMNS and df["n"].dtype == "int64" and df.loc[0, "sites"] == ""
    p.write_bytes(KO_GOOD.encode("utf-16"))
    with pytest.raises(ko.KnockoutError, match=r"not UTF-8 text \(byte 0 is 0xff\)"):
        ko.load_table(p)
    p.write_bytes(KO_GOOD.replace("layer1", "l\xe9").encode("latin-1"))
    with pytest.raises(ko.KnockoutError, match="not UTF-8"):
        ko.load_table(p)
    with pytest.raises(ko.KnockoutError, match=rf"over the {ko.MAX_TABLE_MB:g} MB limit"):
        ko.load_table(sparse(tmp_path / "big.csv", ko.MAX_TABLE_MB))


# ============================================================================ pages
def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _titles(at: AppTest) -> list[str]:
    out = []
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        out.append((fig.get("layout", {}).get("title") or {}).get("text", ""))
    return out


def _open(page: str, timeout: int = 120) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    at.switch_page(f"../pages/{page}")
    at.run()
    assert not at.exception, at.exception
    return at


def test_ablations_page_malformed_tables_then_a_good_one(tiny_data_dir, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "utf16.csv").write_bytes(GOOD.encode("utf-16"))
    sparse(root / "huge.csv", tables.MAX_TABLE_MB)
    (root / "good.csv").write_text(GOOD)
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SE_LENS_DATA_ROOTS", str(root))
    st.cache_data.clear()
    at = _open("ablations.py")
    n_paper = sum(t.startswith("Reported by Hu et al.") for t in _titles(at))
    assert n_paper == len(tables.AXES)

    at.radio(key="abl_source").set_value("Upload a CSV").run()
    for name, data, needle in (("nan.csv", GOOD.replace("9.5,0.4", "nan,0.4").encode(), "NaN"),
                               ("empty.csv", b"", "empty"),
                               ("latin.csv", GOOD.replace("no SE", "no SE \xe9").encode("latin-1"), "not UTF-8"),
                               ("cols.csv", GOOD.replace("arch", "net").encode(), "'arch'")):
        at.file_uploader(key="abl_upload").set_value((name, data, "text/csv"))
        at.run()
        assert not at.exception, (name, at.exception)
        errs = _errors(at)
        assert len(errs) == 1 and needle in errs[0] and name in errs[0], (name, errs)
        titles = _titles(at)
        assert sum(t.startswith("Reported by Hu et al.") for t in titles) == n_paper  # the paper's rows still show
        assert not any(t.startswith("Ours:") for t in titles)
    at.file_uploader(key="abl_upload").set_value(("good.csv", GOOD.encode(), "text/csv"))
    at.run()
    assert not at.exception and not _errors(at)
    assert "Ours: Excitation gate, CIFAR-10 test top-1 error" in _titles(at)

    at.radio(key="abl_source").set_value("Path on this machine").run()
    for name, needle in (("utf16.csv", "not UTF-8"), ("huge.csv", f"over the {tables.MAX_TABLE_MB:g} MB limit")):
        at.text_input(key="abl_path").input(name).run()
        assert not at.exception, (name, at.exception)
        assert len(_errors(at)) == 1 and needle in _errors(at)[0], _errors(at)
    at.text_input(key="abl_path").input("good.csv").run()
    assert not at.exception and not _errors(at)
    assert "Ours: Excitation gate, CIFAR-10 test top-1 error" in _titles(at)


@pytest.fixture
def cw_env(tiny_data_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    roots = tmp_path / "roots"
    roots.mkdir()
    monkeypatch.setenv("SE_LENS_DATA_ROOTS", str(roots))
    st.cache_data.clear()
    st.cache_resource.clear()
    return {"data": tiny_data_dir, "roots": roots}


def test_classwise_page_malformed_statistics_and_folders(cw_env) -> None:
    from se_core.data.constants import CIFAR10_CLASSES
    from se_core.models.pairs import DEFAULT_PAIR

    data = ImageSet(torch.randint(0, 256, (20, 32, 32, 3), dtype=torch.uint8,
                                  generator=torch.Generator().manual_seed(3)),
                    torch.arange(20) % 10, tuple(CIFAR10_CLASSES), "random20", "random20")
    paths = S.shipped_paths(DEFAULT_PAIR)
    paths["se"].parent.mkdir(parents=True, exist_ok=True)
    paths["se"].write_bytes("SE statistics, UTF-16".encode("utf-16"))  # shipped statistics: not an .npz
    paths["vanilla"].write_bytes(b"")
    at = _open("classwise.py")
    errs = _errors(at)
    assert len(errs) == 1 and "shipped statistics cannot be read" in errs[0] and paths["se"].name in errs[0], errs

    # the page keeps working: a typed ImageFolder with only garbage images -> st.error; a good one -> statistics
    bad = cw_env["roots"] / "garbage" / "cls"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"not a png")
    (bad / "y.jpg").write_bytes("\xff\xd8 latin-1 \xe9".encode("latin-1"))
    good = cw_env["roots"] / "mine"
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (good / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(good / c / f"{i}.png")
    at.radio(key="cw_source").set_value("folder").run()
    at.text_input(key="cw_folder").input("garbage").run()
    assert not at.exception and len(_errors(at)) == 1 and "no readable images" in _errors(at)[0], _errors(at)
    at.text_input(key="cw_folder").input("mine").run()
    assert not at.exception and not _errors(at)
    at.button(key="cw_compute").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any(m.label == "Images" and m.value == "8" for m in at.metric)

    # valid shipped statistics but a malformed shipped knock-out table: only the Knock-out tab shows an error
    S.ship_pair_stats(DEFAULT_PAIR, data, batch_size=10)
    ko_path = ko.shipped_path(DEFAULT_PAIR)
    ko_path.write_text(KO_GOOD.replace(",delta", ",change"))
    st.cache_data.clear()
    at = _open("classwise.py")
    errs = _errors(at)
    assert len(errs) == 1 and "knock-out table cannot be used" in errs[0] and "'delta'" in errs[0], errs
    assert any(m.label == "Images" and m.value == "20" for m in at.metric)
    kinds = {(json.loads(el.proto.spec)["layout"].get("meta") or {}).get("chart") for el in at.get("plotly_chart")}
    assert {"fig6", "fig7", "selectivity"} <= kinds, kinds
    ko_path.write_text(KO_GOOD)  # repaired: the chart appears, no error
    at = _open("classwise.py")
    assert not _errors(at) and "knockout" in {(json.loads(el.proto.spec)["layout"].get("meta") or {}).get("chart")
                                              for el in at.get("plotly_chart")}


def test_models_page_lists_malformed_runs_with_an_error(tiny_data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tiny_data_dir / "runs"
    write_run(runs / "good-s0")
    bad = write_run(runs / "bad-config")
    (bad / "config.json").write_text(json.dumps({"arch": 5}))  # used to raise AttributeError out of list_runs
    nan = write_run(runs / "nan-final")
    (nan / "final.json").write_text(json.dumps({"final": {"top1": 50, "n": float("nan")}, "provenance": {}}))
    huge = write_run(runs / "huge-metrics")
    sparse(huge / "metrics.csv", R.MAX_RUN_FILE_MB)
    st.cache_data.clear()
    at = _open("models.py")
    errs = " | ".join(_errors(at))
    assert not at.exception
    for needle in ("bad-config", "'arch' is 5", "nan-final", "final.n is nan", "huge-metrics", "MB limit"):
        assert needle in errs, (needle, errs)
    assert "Loss" in _titles(at)  # the good run's curves are still drawn
