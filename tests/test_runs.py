"""se_core.runs.history reads what se_core.runs.train writes: real (tiny) runs, in-progress runs and malformed files."""
from __future__ import annotations

import json
import math
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from se_core.data.datasets import DataError
from se_core.models.registry import get_spec
from se_core.nn.se import SEConfig
from se_core.probe.sites import find_sites
from se_core.runs.history import (
    RunError,
    all_metrics,
    fingerprint,
    gate_hist_long,
    list_runs,
    load_config,
    load_final,
    load_gate_history,
    load_metrics,
    per_class_summary,
    per_class_table,
    results_table,
    runs_table,
    summary,
)
from se_core.runs.train import METRIC_FIELDS, TrainConfig, parse_command, train, train_command

TINY = dict(epochs=1, train_subset=128, test_subset=50, probe_per_class=2, batch_size=64)


def make_runs(root: Path) -> dict[str, Path]:
    """Train one SE and one vanilla ResNet-20 for one epoch on 128 images, plus a second SE 'seed' made by
    copying the first run and editing its seed and final accuracy (so summaries have two runs to average)."""
    out = {}
    for name, arch in (("se_resnet20-s0", "se_resnet20_cifar"), ("resnet20-s0", "resnet20_cifar")):
        try:
            train(TrainConfig(arch=arch, **TINY), root / name, threads=1, progress=False)
        except DataError as e:
            pytest.skip(f"CIFAR-10 data not available here: {e}")
        out[name] = root / name
    s1 = root / "se_resnet20-s1"
    shutil.copytree(out["se_resnet20-s0"], s1)
    cfg = json.loads((s1 / "config.json").read_text())
    cfg["seed"] = 1
    (s1 / "config.json").write_text(json.dumps(cfg))
    fin = json.loads((s1 / "final.json").read_text())
    fin["final"]["top1"] = fin["final"]["top1"] + 4.0 if fin["final"]["top1"] <= 96 else fin["final"]["top1"] - 4.0
    fin["final"]["per_class"] = {k: 50.0 for k in fin["final"]["per_class"]}
    (s1 / "final.json").write_text(json.dumps(fin))
    out["se_resnet20-s1"] = s1
    return out


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_runs(root)
    return root


def _copy(runs_root: Path, tmp_path: Path, name: str = "se_resnet20-s0") -> Path:
    dst = tmp_path / "runs" / name
    shutil.copytree(runs_root / name, dst)
    return dst


def test_list_runs_reads_real_runs(runs_root: Path) -> None:
    runs = {r.name: r for r in list_runs(runs_root)}
    assert set(runs) == {"se_resnet20-s0", "se_resnet20-s1", "resnet20-s0"}
    se, van = runs["se_resnet20-s0"], runs["resnet20-s0"]
    assert se.finished and van.finished and se.problem is None
    assert (se.arch, se.model, se.seed, se.epochs, se.epochs_done) == ("se_resnet20_cifar", "se_resnet20_cifar", 0, 1, 1)
    assert se.se == get_spec("se_resnet20_cifar").default_se.label()
    assert van.se == "none" and van.status == "finished"
    assert runs["se_resnet20-s1"].seed == 1
    table = runs_table(list(runs.values()))
    assert list(table["status"]) == ["finished"] * 3
    assert load_config(runs_root / "se_resnet20-s0") == TrainConfig(arch="se_resnet20_cifar", **TINY)


def test_metrics_match_the_trainer(runs_root: Path) -> None:
    df = load_metrics(runs_root / "se_resnet20-s0")
    assert list(df.columns) == list(METRIC_FIELDS)
    assert list(df["epoch"]) == [1]
    with open(runs_root / "se_resnet20-s0" / "metrics.csv") as f:
        row = f.read().splitlines()[1].split(",")
    assert df.iloc[0]["test_acc"] == pytest.approx(float(row[METRIC_FIELDS.index("test_acc")]))
    allm = all_metrics(list_runs(runs_root))
    assert set(allm["run"]) == {"se_resnet20-s0", "se_resnet20-s1", "resnet20-s0"}
    assert list(allm.columns[:2]) == ["run", "model"]


def test_gate_history_matches_sites_and_probe(runs_root: Path) -> None:
    gates = load_gate_history(runs_root / "se_resnet20-s0")
    model = get_spec("se_resnet20_cifar").build()
    sites = [s for s in find_sites(model) if s.gate]
    assert list(gates["site"]) == [s.name for s in sites]
    assert set(gates["epoch"]) == {1}
    raw = json.loads((runs_root / "se_resnet20-s0" / "gates.json").read_text())[0]["sites"]
    for r in gates.itertuples():
        assert r.mean == pytest.approx(raw[r.site]["mean"])
        assert (r.lo, r.hi) == (0.0, 1.0)  # sigmoid gates
        channels = next(s.channels for s in sites if s.name == r.site)
        assert sum(r.hist) == 10 * TINY["probe_per_class"] * channels  # 20 probe images x C gates, all in [0, 1]
        assert 0.0 <= r.selectivity <= 1.0
    long = gate_hist_long(gates, "layer3.2.se")
    assert len(long) == len(gates.iloc[0]["hist"])
    assert long["fraction"].sum() == pytest.approx(1.0)
    assert long["bin_lo"].iloc[0] == 0.0 and long["bin_hi"].iloc[-1] == pytest.approx(1.0)
    assert load_gate_history(runs_root / "resnet20-s0").empty  # vanilla: epochs without sites


def test_results_summary_and_per_class(runs_root: Path) -> None:
    res = results_table(runs_root)
    assert len(res) == 3
    finals = {n: load_final(runs_root / n)["final"] for n in res["run"]}
    for r in res.itertuples():
        assert r.top1 == pytest.approx(finals[r.run]["top1"])
        assert r.n_test == TINY["test_subset"]
        assert r.params == sum(p.numel() for p in get_spec(r.arch).build().parameters())
    summ = summary(res).set_index("model")
    se_top1 = [finals["se_resnet20-s0"]["top1"], finals["se_resnet20-s1"]["top1"]]
    row = summ.loc["se_resnet20_cifar"]
    assert row["runs"] == 2 and row["seeds"] == "0, 1"
    assert row["top1_mean"] == pytest.approx(np.mean(se_top1))
    assert row["top1_std"] == pytest.approx(np.std(se_top1, ddof=1))
    assert row["top1"] == f"{np.mean(se_top1):.2f} ± {np.std(se_top1, ddof=1):.2f}"
    assert row["delta_vs_vanilla"] == pytest.approx(np.mean(se_top1) - finals["resnet20-s0"]["top1"])
    assert math.isnan(row["delta_se"])  # one vanilla run: no spread to judge the difference by
    van = summ.loc["resnet20_cifar"]
    assert van["runs"] == 1 and math.isnan(van["top1_std"]) and math.isnan(van["delta_vs_vanilla"])
    pc = per_class_table(runs_root)
    assert len(pc) == 3 * 10
    pcs = per_class_summary(pc)
    assert len(pcs) == 2 * 10
    airplane = pcs[(pcs["model"] == "se_resnet20_cifar") & (pcs["class"] == "airplane")].iloc[0]
    assert airplane["acc_mean"] == pytest.approx((finals["se_resnet20-s0"]["per_class"]["airplane"] + 50.0) / 2)
    assert list(pcs[pcs["model"] == "resnet20_cifar"]["class"])[:2] == ["airplane", "automobile"]  # class order kept


def test_in_progress_and_empty(runs_root: Path, tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nope") == [] and fingerprint(tmp_path / "nope") == ()
    assert results_table(tmp_path / "nope").empty and summary(results_table(tmp_path / "nope")).empty
    run = _copy(runs_root, tmp_path)
    (run / "final.json").unlink()
    (run / "metrics.csv").write_text(",".join(METRIC_FIELDS) + "\n")  # header only: before epoch 1 ends
    (tmp_path / "runs" / "not-a-run").mkdir()  # no config.json: ignored
    [info] = list_runs(tmp_path / "runs")
    assert not info.finished and info.epochs_done == 0 and info.status == "started"
    assert load_metrics(run).empty and list(load_metrics(run).columns) == list(METRIC_FIELDS)
    assert results_table(tmp_path / "runs").empty
    fp1 = fingerprint(tmp_path / "runs")
    shutil.copy(runs_root / "se_resnet20-s0" / "metrics.csv", run / "metrics.csv")
    assert fingerprint(tmp_path / "runs") != fp1
    assert list_runs(tmp_path / "runs")[0].status == "running (1/1 epochs)"


@pytest.mark.parametrize("name, text, match", [
    ("metrics.csv", "epoch,train_loss\n1,0.5\n", "lacks column"),
    ("metrics.csv", ",".join(METRIC_FIELDS) + "\n1,abc,1,1,1,1,1,1\n", "train_loss='abc' is not a number"),
    ("metrics.csv", ",".join(METRIC_FIELDS) + "\n2,1,1,1,1,1,1,1\n1,1,1,1,1,1,1,1\n", "does not follow"),
    ("metrics.csv", ",".join(METRIC_FIELDS) + "\n1,1,1\n", "has 3 fields"),
    ("metrics.csv", "", "empty file"),
    ("gates.json", '[{"epoch": 1, "sites": {"a": {"mean": 0.5', "not valid JSON"),
    ("gates.json", '{"epoch": 1}', "expected a list"),
    ("gates.json", '[{"epoch": 0, "sites": {}}]', "not a positive integer"),
    ("gates.json", '[{"epoch": 1, "sites": {"a": {"mean": 0.5, "std": 0.1, "selectivity": 0.1, "range": [0, 1]}}}]',
     "missing 'hist'"),
    ("gates.json", '[{"epoch": 1, "sites": {"a": {"mean": 0.5, "std": 0.1, "selectivity": 0.1, "range": [0, 1], '
                   '"hist": [1, -2]}}}]', "negative counts"),
    ("gates.json", '[{"epoch": 1, "sites": {"a": {"mean": "x", "std": 0.1, "selectivity": 0.1, "range": [0, 1], '
                   '"hist": [1]}}}]', "expected a number"),
    ("gates.json", '[{"epoch": 1, "sites": {"a": {"mean": 0.5, "std": 0.1, "selectivity": 0.1, "range": [1, 1], '
                   '"hist": [1]}}}]', "is empty"),
    ("final.json", '{"final": {"top1": 120, "n": 5}, "provenance": {}}', "not a percentage"),
    ("final.json", '{"final": {"n": 5}, "provenance": {}}', "lacks 'top1'"),
    ("final.json", '[1, 2]', "'final' and 'provenance'"),
    ("config.json", '{"arch": "se_resnet20_cifar", "learning_rate": 1}', "unknown train config field"),
    ("config.json", '{"arch": "no_such_net"}', "unknown model 'no_such_net'"),
    ("config.json", '{"arch": "se_resnet20_cifar", "epochs": 0}', "epochs and batch_size must be >= 1"),
    ("config.json", '', "not valid JSON"),
])
def test_malformed_files_raise_clear_errors(runs_root: Path, tmp_path: Path, name: str, text: str, match: str) -> None:
    run = _copy(runs_root, tmp_path)
    (run / name).write_text(text)
    loader = {"metrics.csv": load_metrics, "gates.json": load_gate_history, "final.json": load_final,
              "config.json": load_config}[name]
    with pytest.raises(RunError, match=match) as exc:
        loader(run)
    assert name in str(exc.value)  # the message names the file
    if name != "gates.json":  # gates are read lazily; the other files are checked when listing
        [info] = list_runs(tmp_path / "runs")
        assert info.problem and name in info.problem and info.status == "unreadable" and not info.finished
        assert results_table(tmp_path / "runs").empty
        with pytest.raises(RunError, match=match):
            results_table(tmp_path / "runs", strict=True)


def test_missing_files(runs_root: Path, tmp_path: Path) -> None:
    run = _copy(runs_root, tmp_path)
    for name, loader in (("metrics.csv", load_metrics), ("gates.json", load_gate_history), ("final.json", load_final)):
        (run / name).unlink()
        with pytest.raises(RunError, match="missing"):
            loader(run)


def test_summary_difference_and_its_standard_error() -> None:
    res = pd.DataFrame({"model": ["resnet20_cifar"] * 3 + ["se_resnet20_cifar"] * 3,
                        "arch": ["resnet20_cifar"] * 3 + ["se_resnet20_cifar"] * 3, "se": ["none"] * 3 + ["r=16"] * 3,
                        "seed": [0, 1, 2] * 2, "top1": [88.0, 88.5, 89.0, 89.0, 89.2, 89.4],
                        "params": [1] * 6, "wall_time_s": [1.0] * 6})
    row = summary(res).set_index("model").loc["se_resnet20_cifar"]
    assert row["delta_vs_vanilla"] == pytest.approx(89.2 - 88.5)
    assert row["delta_se"] == pytest.approx(math.sqrt(0.5 ** 2 / 3 + 0.2 ** 2 / 3))


def test_release_ships_seed0_checkpoints_tables_and_provenance(runs_root: Path, tmp_path: Path) -> None:
    from se_core.models.pairs import DEFAULT_PAIR, PAIRS, SE8_PAIR
    from se_core.runs.release import release

    data = tmp_path / "data"
    runs = data / "runs"  # the default pair's runs folder; the other shipped pair's has none yet
    shutil.copytree(runs_root, runs)
    half = runs / "resnet20-s1"  # an unfinished run: provenance says how to resume; no results row
    half.mkdir()
    shutil.copy(runs / "resnet20-s0" / "config.json", half / "config.json")
    cfg = json.loads((half / "config.json").read_text())
    cfg["seed"] = 1
    (half / "config.json").write_text(json.dumps(cfg))
    (half / "metrics.csv").write_text(",".join(METRIC_FIELDS) + "\n")
    doc = tmp_path / "training.md"
    doc.write_text("# T\n\n<!-- results:begin -->\nstale\n<!-- results:end -->\n\n<!-- results-se8:begin -->\n"
                   "<!-- results-se8:end -->\nafter\n")
    written = release(data, doc)
    assert sorted(Path(p).name for p in written["checkpoints"]) == ["resnet20-s0.safetensors", "se_resnet20-s0.safetensors"]
    for name in ("resnet20-s0", "se_resnet20-s0"):
        assert (data / "checkpoints" / f"{name}.safetensors").read_bytes() == (runs / name / "model.safetensors").read_bytes()
    resume = next(line.strip() for line in (half / "PROVENANCE.md").read_text().splitlines() if "se_core.train" in line)
    assert resume.startswith("python -m se_core.train --arch resnet20_cifar") and "--seed 1" in resume
    res = pd.read_csv(data / "results" / "cifar10_resnet20.csv")
    assert sorted(res["run"]) == ["resnet20-s0", "se_resnet20-s0", "se_resnet20-s1"]
    for r in res.itertuples():
        assert r.top1 == pytest.approx(load_final(runs / r.run)["final"]["top1"])
    summ = pd.read_csv(data / "results" / "cifar10_resnet20_summary.csv").set_index("model")
    prov = (data / "results" / "PROVENANCE.md").read_text()
    se = summ.loc["se_resnet20_cifar"]
    assert f"- se_resnet20_cifar: {se['top1']} over seeds 0, 1; Δ vs vanilla {se['delta_vs_vanilla']:+.2f} pt" in prov
    assert f"## {PAIRS[SE8_PAIR].title}\n\nNo finished run" in prov and f"## {PAIRS[DEFAULT_PAIR].title}" in prov
    assert len(pd.read_csv(data / "results" / "cifar10_resnet20_per_class.csv")) == 3 * 10
    text = doc.read_text()
    assert "stale" not in text and text.startswith("# T\n") and text.endswith("after\n")
    assert f"- se_resnet20_cifar: {se['top1']} over seeds 0, 1" in text  # the same lines as PROVENANCE.md
    assert "<!-- results-se8:begin -->\nNo finished run in" in text
    assert release(data, doc) == written and doc.read_text() == text  # idempotent
    doc.write_text("no block\n")
    with pytest.raises(ValueError, match="results:begin"):
        release(data, doc)


def test_release_removes_outputs_no_run_backs_any_more(runs_root: Path, tmp_path: Path) -> None:
    """A run that is withdrawn (re-trained in another precision, say) takes its shipped checkpoint,
    results tables and docs lines with it on the next release."""
    from se_core.models.pairs import DEFAULT_PAIR, PAIRS
    from se_core.runs.release import release

    data = tmp_path / "data"
    shutil.copytree(runs_root, data / "runs")
    doc = tmp_path / "training.md"
    doc.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    first = release(data, doc, pairs=[PAIRS[DEFAULT_PAIR]])
    assert first["removed"] == [] and len(first["checkpoints"]) == 2
    shutil.rmtree(data / "runs" / "resnet20-s0")
    second = release(data, doc, pairs=[PAIRS[DEFAULT_PAIR]])
    assert [Path(p).name for p in second["removed"]] == ["resnet20-s0.safetensors"]
    assert not (data / "checkpoints" / "resnet20-s0.safetensors").exists()
    assert "## resnet20-s0.safetensors" not in (data / "checkpoints" / "PROVENANCE.md").read_text()
    for run in ("se_resnet20-s0", "se_resnet20-s1"):
        shutil.rmtree(data / "runs" / run)
    third = release(data, doc, pairs=[PAIRS[DEFAULT_PAIR]])
    assert sorted(Path(p).name for p in third["removed"]) == ["cifar10_resnet20.csv", "cifar10_resnet20_per_class.csv",
                                                              "cifar10_resnet20_summary.csv", "se_resnet20-s0.safetensors"]
    assert not list((data / "results").glob("*.csv")) and "No finished run" in doc.read_text()


def test_seed_curves_average_runs_per_model_and_epoch() -> None:
    from se_core.runs.history import seed_curves

    m = pd.DataFrame({"run": ["a-s0", "a-s0", "a-s1", "a-s1", "b-s0"], "model": ["a", "a", "a", "a", "b"],
                      "epoch": [1, 2, 1, 2, 1], "test_acc": [10.0, 20.0, 14.0, 30.0, 50.0]})
    sc = seed_curves(m, ("test_acc",)).set_index(["model", "epoch"])
    assert sc.loc[("a", 1), "mean"] == 12.0 and sc.loc[("a", 2), "mean"] == 25.0
    assert sc.loc[("a", 1), "std"] == pytest.approx(np.std([10.0, 14.0], ddof=1)) and sc.loc[("a", 1), "n"] == 2
    assert sc.loc[("b", 1), "std"] == 0.0 and sc.loc[("b", 1), "n"] == 1  # one seed: no band


def test_pairs_overview_reads_delta_against_its_standard_error() -> None:
    from se_core.models.pairs import DEFAULT_PAIR, PAIRS, SE8_PAIR
    from se_core.runs.history import pairs_overview

    specs = [PAIRS[DEFAULT_PAIR], PAIRS[SE8_PAIR]]
    summ = pd.DataFrame({"pair": [DEFAULT_PAIR] * 2 + [SE8_PAIR] * 2, "role": ["vanilla", "se"] * 2,
                         "top1": ["88.31 ± 0.04", "88.13 ± 0.16", "88.00 ± 0.10", "88.60 ± 0.10"],
                         "delta_vs_vanilla": [math.nan, -0.18, math.nan, 0.60], "delta_se": [math.nan, 0.0923, math.nan, 0.08]})
    movement = pd.DataFrame({"frozen": [True] * 5 + [False] * 4})
    t = pairs_overview(specs, summ, {DEFAULT_PAIR: movement, SE8_PAIR: None}).set_index("pair")
    old, new = t.loc[PAIRS[DEFAULT_PAIR].title], t.loc[PAIRS[SE8_PAIR].title]
    assert old["Δ (pt)"] == "-0.18 ± 0.09 (not resolved)" and old["frozen SE blocks"] == "5 of 9"
    worse = pairs_overview(specs[:1], summ.assign(delta_vs_vanilla=-0.5), {}).iloc[0]
    assert worse["Δ (pt)"] == "-0.50 ± 0.09 (resolved: SE worse)"
    assert new["Δ (pt)"] == "+0.60 ± 0.08 (resolved)" and new["frozen SE blocks"] == "—"
    one = pairs_overview(specs[1:], summ[summ["role"] == "se"].assign(delta_vs_vanilla=math.nan), {})
    assert one.iloc[0]["vanilla top-1"] == "no finished run" and one.iloc[0]["Δ (pt)"] == "—"


@pytest.mark.parametrize("cfg", [
    TrainConfig(arch="resnet20_cifar", epochs=30, precision="fp32", seed=2),
    TrainConfig(se=SEConfig(min_hidden=8), data="cifar10-jpeg@val=5000", se_weight_decay=0.0),
    TrainConfig(se=SEConfig(), nesterov=False, channels_last=False, lr=0.05, train_subset=100),
    TrainConfig(se=SEConfig(stages=(2, 3), gate="tanh", reduction=8), cutout=16, schedule="cosine"),
    TrainConfig(arch="resnet20_cifar", data="/data/my images@val=100", train_subset=7),  # a path with a space
])
def test_train_command_round_trips(cfg: TrainConfig) -> None:
    """The resume command a run's PROVENANCE.md prints parses back to the run's own config (else the
    trainer's same-config check would refuse it)."""
    cmd = train_command(cfg, "data/runs/x")
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "se_core.train"] and argv[-2:] == ["--out", "data/runs/x"]
    back, _ = parse_command(argv[3:])
    assert back == cfg and back.to_dict() == cfg.to_dict()
