"""The trainer: files it writes, SIGKILL-and-resume giving bitwise-identical weights, the
evaluate CLI agreeing with it, and a 2-rank DDP run on CPU.

Uses the shipped CIFAR-10 JPEG tarball (decoded once into ``.cache/``; ~10 s the first time).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import REPO_ROOT, needs_cifar, subprocess_env

from se_core.analysis.evaluate import eval_subset_indices
from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import load_dataset, normalize
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import read_checkpoint
from se_core.nn.se import SEConfig
from se_core.runs.train import (
    TrainConfig,
    compiler_available,
    gate_snapshot,
    lr_at,
    parse_se,
    probe_indices,
    train,
)

pytestmark = needs_cifar

COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "img_per_s"]
SITES = [f"layer{s}.{b}.se" for s in (1, 2, 3) for b in range(3)]
EPOCHS, TRAIN_N, TEST_N, PER_CLASS, BATCH = 3, 256, 100, 2, 64
CFG = TrainConfig(arch="se_resnet20_cifar", epochs=EPOCHS, train_subset=TRAIN_N, test_subset=TEST_N,
                  probe_per_class=PER_CLASS, batch_size=BATCH)
CLI_ARGS = ["--arch", "se_resnet20_cifar", "--epochs", str(EPOCHS), "--train-subset", str(TRAIN_N),
            "--test-subset", str(TEST_N), "--probe-per-class", str(PER_CLASS), "--batch-size", str(BATCH),
            "--threads", "1", "--no-progress"]


def _read_metrics(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def _parse(path: Path) -> None:
    """Parse a run file fully (raises on a partial/corrupt file)."""
    if path.suffix == ".safetensors":
        tensors, _ = read_checkpoint(path)
        assert tensors
        if path.name == "last.safetensors":
            from safetensors import safe_open
            with safe_open(str(path), "pt") as f:
                json.loads(f.metadata()["trainer"])
    elif path.suffix == ".json":
        json.loads(path.read_bytes())
    elif path.suffix == ".csv":
        header, rows = _read_metrics(path)
        assert header == COLUMNS and all(len(r) == len(COLUMNS) and None not in r.values() for r in rows)
    else:
        raise AssertionError(f"unexpected file {path.name}")


def _trainer_state(last: Path) -> dict:
    from safetensors import safe_open
    with safe_open(str(last), "pt") as f:
        return json.loads(f.metadata()["trainer"])


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted tiny run, in-process (global RNG state restored afterwards)."""
    out = tmp_path_factory.mktemp("run_a")
    with torch.random.fork_rng(devices=[]):
        res = train(CFG, out, threads=1, progress=False)
    assert res.final and res.resumed_from == 0
    return out


def test_run_files(run_a: Path) -> None:
    assert sorted(p.name for p in run_a.iterdir()) == ["config.json", "final.json", "gates.json", "last.safetensors",
                                                       "metrics.csv", "model.safetensors"]
    assert json.loads((run_a / "config.json").read_text()) == CFG.to_dict()
    header, rows = _read_metrics(run_a / "metrics.csv")
    assert header == COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    steps = TRAIN_N // BATCH
    for r in rows:
        e = int(r["epoch"])
        assert 0 <= float(r["train_acc"]) <= 100 and 0 <= float(r["test_acc"]) <= 100
        assert float(r["test_acc"]) * TEST_N / 100 == pytest.approx(round(float(r["test_acc"]) * TEST_N / 100))
        assert 0 < float(r["train_loss"]) < 5 and 0 < float(r["test_loss"]) < 10
        assert float(r["lr"]) == pytest.approx(lr_at(CFG, e * steps - 1, EPOCHS * steps), abs=1e-6)
        assert float(r["seconds"]) > 0 and float(r["img_per_s"]) > 0
    assert _trainer_state(run_a / "last.safetensors")["epoch"] == EPOCHS


def test_gates_json(run_a: Path) -> None:
    gates = json.loads((run_a / "gates.json").read_text())
    assert [g["epoch"] for g in gates] == [1, 2, 3]
    n_probe = PER_CLASS * 10
    for g in gates:
        assert list(g["sites"]) == SITES
        for name, st in g["sites"].items():
            channels = 16 * 2 ** (int(name[5]) - 1)
            assert set(st) >= {"mean", "std", "hist", "selectivity"}
            assert 0 < st["mean"] < 1 and st["std"] >= 0 and st["range"] == [0.0, 1.0]
            assert len(st["hist"]) == 20 and sum(st["hist"]) == n_probe * channels
            assert 0 <= st["selectivity"] <= 1 and 0 <= st["still"] <= 1
    assert gates[0]["sites"] != gates[-1]["sites"]  # gates evolve with training
    # the last snapshot is what the final weights give on the fixed probe batch
    model, meta = build_from_checkpoint(run_a / "model.safetensors")
    test = load_dataset("cifar10-jpeg", "test")
    test = test.subset(eval_subset_indices(len(test), TEST_N))
    idx = probe_indices(test, PER_CLASS)
    assert len(idx) == n_probe and test.labels[idx].bincount().tolist() == [PER_CLASS] * 10
    snap = gate_snapshot(model, normalize(test.images[idx], CIFAR10_MEAN, CIFAR10_STD), test.labels[idx], 10)
    for name in SITES:
        ours, logged = snap[name], gates[-1]["sites"][name]
        for k in ("mean", "std", "selectivity"):
            assert ours[k] == pytest.approx(logged[k], abs=1e-4), (name, k)
        channels = 16 * 2 ** (int(name[5]) - 1)
        assert ours["still"] == pytest.approx(logged["still"], abs=2 / channels)  # a channel or two at the threshold
        assert sum(abs(a - b) for a, b in zip(ours["hist"], logged["hist"])) <= 4


def test_final_model_and_provenance(run_a: Path) -> None:
    final = json.loads((run_a / "final.json").read_text())
    assert final["final"]["n"] == TEST_N
    model, meta = build_from_checkpoint(run_a / "model.safetensors")
    assert meta.arch == "se_resnet20_cifar" and meta.class_names == CIFAR10_CLASSES
    assert meta.mean == CIFAR10_MEAN and meta.se_config["reduction"] == 16
    prov = meta.provenance
    assert prov["test_top1_fp32"] == round(final["final"]["top1"], 2) and prov["test_n"] == TEST_N
    assert prov["seed"] == 0 and prov["epochs"] == EPOCHS and prov["world_size"] == 1
    assert prov["data"].startswith("CIFAR-10 (JPEG q75)") and len(prov["data_md5"]) == 32
    assert prov["commit"] and prov["hardware"] and prov["date"]
    assert TrainConfig.from_dict(meta.extra["train_config"]) == CFG


def test_evaluate_cli_matches_trainer(run_a: Path) -> None:
    final = json.loads((run_a / "final.json").read_text())["final"]
    r = subprocess.run([sys.executable, "-m", "se_core.evaluate", "--checkpoint", str(run_a / "model.safetensors"),
                        "--test-subset", str(TEST_N)], cwd=REPO_ROOT, env=subprocess_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["n"] == final["n"] == TEST_N
    assert res["top1"] == pytest.approx(final["top1"], abs=1e-9)
    assert res["top5"] == pytest.approx(final["top5"], abs=1e-9)
    assert res["loss"] == pytest.approx(final["loss"], rel=1e-4)
    assert set(res["per_class"]) == set(CIFAR10_CLASSES)
    bad = subprocess.run([sys.executable, "-m", "se_core.evaluate", "--checkpoint", str(run_a / "nope.safetensors")],
                         cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error:")


def test_resume_refuses_other_config(run_a: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(run_a, out)
    other = TrainConfig(**{**CFG.__dict__, "lr": 0.05})
    with pytest.raises(ValueError, match="different config"):
        train(other, out, threads=1, progress=False)


def test_config_helpers() -> None:
    se = parse_se("reduction=8,gate=tanh,stages=2+3,integration=pre")
    assert (se.reduction, se.gate, se.stages, se.integration) == (8, "tanh", (2, 3), "pre")
    assert parse_se("") is None
    cfg = TrainConfig(se=se, epochs=5)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ({"schedule": "step"}, {"precision": "fp16"}, {"epochs": 0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(KeyError):
        TrainConfig(arch="resnet21_cifar")
    # one-cycle: starts at lr/25, peaks at lr after warm-up, ends near 0
    assert lr_at(cfg, 0, 1000) == pytest.approx(cfg.lr / 25)
    assert lr_at(cfg, 150, 1000) == pytest.approx(cfg.lr)
    assert lr_at(cfg, 999, 1000) < 1e-5 and not math.isnan(lr_at(cfg, 1000, 1000))


@pytest.mark.timeout(600)
def test_sigkill_and_resume_is_bitwise_identical(run_a: Path, tmp_path: Path) -> None:
    out = tmp_path / "run_b"
    cmd = [sys.executable, "-m", "se_core.train", *CLI_ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen: dict[str, tuple[int, int]] = {}
    parsed = 0
    deadline = time.monotonic() + 400
    try:
        while True:
            assert time.monotonic() < deadline, "trainer never wrote its first checkpoint"
            assert proc.poll() is None, f"trainer ended before it could be killed: {proc.stdout.read().decode()[-2000:]}"
            if out.is_dir():
                for p in out.iterdir():  # every file under a final name is complete at every moment
                    if p.name.startswith("."):
                        continue
                    try:
                        st = p.stat()
                    except FileNotFoundError:
                        continue
                    key = (st.st_mtime_ns, st.st_size)
                    if seen.get(p.name) != key:
                        _parse(p)
                        seen[p.name] = key
                        parsed += 1
            if (out / "last.safetensors").exists():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and proc.returncode is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert parsed >= 2
    killed_at = _trainer_state(out / "last.safetensors")["epoch"]
    assert 1 <= killed_at < EPOCHS, "the kill came too late to test resuming"
    assert not (out / "model.safetensors").exists()
    for p in out.iterdir():
        if not p.name.startswith("."):
            _parse(p)

    r = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["top1"] == json.loads((run_a / "final.json").read_text())["final"]["top1"]

    a, _ = read_checkpoint(run_a / "model.safetensors")
    b, meta_b = read_checkpoint(out / "model.safetensors")
    assert set(a) == set(b)
    differ = [k for k in a if not (a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]))]
    assert differ == [], f"resumed weights differ from the uninterrupted run: {differ[:5]}"
    _, rows_a = _read_metrics(run_a / "metrics.csv")
    _, rows_b = _read_metrics(out / "metrics.csv")
    timing = {"seconds", "img_per_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in timing} for r in rows_b]
    assert json.loads((run_a / "gates.json").read_text()) == json.loads((out / "gates.json").read_text())
    assert _trainer_state(out / "last.safetensors")["epoch"] == EPOCHS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(900)
def test_ddp_two_ranks_cpu(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "se_core.train", "--arch", "resnet20_cifar", "--epochs", "1",
           "--train-subset", "128", "--test-subset", "50", "--probe-per-class", "1", "--batch-size", "64",
           "--threads", "1", "--no-progress", "--out", str(out)]
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=850)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert "terminate called" not in log and "Traceback" not in log, log[-4000:]
    header, rows = _read_metrics(out / "metrics.csv")
    assert header == COLUMNS and [int(x["epoch"]) for x in rows] == [1]
    model, meta = build_from_checkpoint(out / "model.safetensors")
    assert meta.arch == "resnet20_cifar" and meta.provenance["world_size"] == 2
    assert json.loads((out / "final.json").read_text())["final"]["n"] == 50
    gates = json.loads((out / "gates.json").read_text())
    assert gates[0]["sites"] == {}  # vanilla: no gates to log
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_holdout_run_reports_validation_not_test(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """With --data cifar10-jpeg@val=N the run evaluates on N held-out training images, says so,
    and evaluate re-computes that number from the checkpoint."""
    from se_core.analysis.evaluate import main as evaluate_main

    cfg = TrainConfig(arch="resnet20_cifar", epochs=1, train_subset=TRAIN_N, probe_per_class=PER_CLASS,
                      batch_size=BATCH, data="cifar10-jpeg@val=100")
    res = train(cfg, tmp_path / "run", threads=1, progress=False)
    prov = json.loads((tmp_path / "run" / "final.json").read_text())["provenance"]
    assert "test_top1_fp32" not in prov and prov["val_n"] == 100 == res.final["n"]
    assert prov["val_top1_fp32"] == round(res.final["top1"], 2)
    assert "validation (100 held-out training images)" in prov["eval_set"] and prov["data"] == "CIFAR-10 (JPEG q75)"
    assert evaluate_main(["--checkpoint", str(tmp_path / "run" / "model.safetensors"),
                          "--data", "cifar10-jpeg@val=100"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n"] == 100 and out["top1"] == pytest.approx(res.final["top1"])


def test_added_fields_keep_old_configs_and_resume_working(tmp_path: Path) -> None:
    """cutout came after runs were shipped: left at 0 it is not written, so old configs, sweep trial ids and
    resume checks are unchanged; set, it round-trips and trains."""
    from se_core.runs.ablate import trial_id

    assert "cutout" not in CFG.to_dict() and TrainConfig.from_dict(CFG.to_dict()) == CFG
    cut = TrainConfig(**{**CFG.__dict__, "cutout": 8, "epochs": 1})
    assert cut.to_dict()["cutout"] == 8 and TrainConfig.from_dict(cut.to_dict()) == cut
    assert trial_id(cut) != trial_id(TrainConfig(**{**CFG.__dict__, "epochs": 1}))
    with pytest.raises(ValueError, match="cutout"):
        TrainConfig(cutout=-1)
    res = train(cut, tmp_path / "cut", threads=1, progress=False)
    assert res.final["n"] == TEST_N
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["cutout"] == 8


def test_resolve_compile() -> None:
    from se_core.runs.train import COMPILE_MIN_STEPS, compiler_available, resolve_compile

    cpu = torch.device("cpu")
    assert resolve_compile("on", cpu, 1) and not resolve_compile("off", cpu, 10**6)
    assert not resolve_compile("auto", cpu, COMPILE_MIN_STEPS - 1)  # a short run never wins compilation back
    assert resolve_compile("auto", cpu, COMPILE_MIN_STEPS) == compiler_available(cpu)
    with pytest.raises(ValueError, match="compile"):
        resolve_compile("yes", cpu, 1)


@pytest.mark.timeout(600)
@pytest.mark.skipif(not compiler_available(torch.device("cpu")), reason="torch.compile needs a C++ compiler on CPU")
def test_compiled_run_trains_and_records_it(tmp_path: Path) -> None:
    """``--compile on``: the training forward runs under torch.compile (one graph: training streams drop
    the last partial batch, so no recompilation), the provenance says so and the warm-up is reported
    apart from the epoch's img/s; the losses match an eager run of the same config closely."""
    from torch._dynamo.utils import counters

    cfg = TrainConfig(arch="se_resnet20_cifar", epochs=1, train_subset=200, test_subset=TEST_N,
                      probe_per_class=PER_CLASS, batch_size=BATCH)
    counters.clear()
    with torch.random.fork_rng(devices=[]):
        comp = train(cfg, tmp_path / "c", threads=1, progress=False, compile="on")
        assert counters["stats"]["unique_graphs"] == 1
        eager = train(cfg, tmp_path / "e", threads=1, progress=False, compile="off")
    seg_c = json.loads((tmp_path / "c" / "final.json").read_text())["provenance"]["segments"][-1]
    seg_e = json.loads((tmp_path / "e" / "final.json").read_text())["provenance"]["segments"][-1]
    assert seg_c["compile"] == "on: on" and seg_c["compile_warmup_s"] > 0
    assert seg_e["compile"] == "off: off" and "compile_warmup_s" not in seg_e
    from se_core.runs.train import resolve_precision
    assert seg_c["precision"] == seg_e["precision"] == resolve_precision("auto", torch.device("cpu"))  # as resolved
    assert comp.metrics[0]["img_per_s"] > 0
    assert abs(comp.metrics[0]["train_loss"] - eager.metrics[0]["train_loss"]) < 0.05
    assert comp.final["n"] == eager.final["n"] == TEST_N


def test_min_hidden_floor_trains_and_keeps_old_configs(tmp_path: Path) -> None:
    """``min_hidden`` (#15): absent from the JSON at its default (shipped configs, trial ids unchanged),
    parsed from ``--se``, and the model built with it has 8-unit bottlenecks in every stage."""
    from se_core.runs.ablate import trial_id

    assert "min_hidden" not in json.loads(SEConfig().to_json())
    se = parse_se("min_hidden=8")
    assert se == SEConfig(min_hidden=8) and SEConfig.from_json(se.to_json()) == se and "h>=8" in se.label()
    assert [se.hidden(c) for c in (16, 32, 64, 256)] == [8, 8, 8, 16] and SEConfig(min_hidden=64).hidden(16) == 16
    floor = TrainConfig(**{**CFG.__dict__, "se": se, "epochs": 1})
    assert trial_id(floor) != trial_id(TrainConfig(**{**CFG.__dict__, "epochs": 1}))
    with pytest.raises(ValueError, match="min_hidden"):
        SEConfig(min_hidden=0)
    train(floor, tmp_path / "h8", threads=1, progress=False, compile="off")
    model, meta = build_from_checkpoint(tmp_path / "h8" / "model.safetensors")
    assert meta.se_config["min_hidden"] == 8
    assert {m.fc1.out_channels for m in model.modules() if hasattr(m, "fc1")} == {8}


def test_se_weight_decay_groups_only_the_se_units(tmp_path: Path) -> None:
    """``se_weight_decay`` (#15, candidate C): the SE units' parameters, and only they, get their own decay;
    one SGD step on zero gradients shrinks every other weight by lr*wd and leaves the SE weights as they
    were. Absent from the JSON at its default, so shipped configs and trial ids are unchanged."""
    from se_core.models.registry import get_spec
    from se_core.nn.se import SqueezeExcite
    from se_core.runs.ablate import trial_id
    from se_core.runs.train import param_groups

    assert "se_weight_decay" not in CFG.to_dict()
    cfg = TrainConfig(**{**CFG.__dict__, "se_weight_decay": 0.0, "epochs": 1})
    assert cfg.to_dict()["se_weight_decay"] == 0.0 and TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert trial_id(cfg) != trial_id(TrainConfig(**{**CFG.__dict__, "epochs": 1}))
    with pytest.raises(ValueError, match="se_weight_decay"):
        TrainConfig(se_weight_decay=-1.0)

    model = get_spec("se_resnet20_cifar").build(None, num_classes=10)
    se_params = {id(p) for m in model.modules() if isinstance(m, SqueezeExcite) for p in m.parameters()}
    groups = param_groups(model, cfg)
    assert [len(g["params"]) for g in groups] == [sum(1 for _ in model.parameters()) - len(se_params), len(se_params)]
    assert {id(p) for p in groups[1]["params"]} == se_params and groups[1]["weight_decay"] == 0.0
    assert len(param_groups(model, CFG)) == 1
    vanilla = get_spec("resnet20_cifar").build(None, num_classes=10)
    assert len(param_groups(vanilla, cfg)) == 1  # nothing to single out

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(groups, lr=0.5, momentum=0.0, weight_decay=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        want = before[n] if id(p) in se_params else before[n] * (1 - 0.5 * 0.1)
        assert torch.allclose(p.detach(), want), n

    res = train(cfg, tmp_path / "wd", threads=1, progress=False, compile="off")
    assert res.final["n"] == TEST_N
    assert json.loads((tmp_path / "wd" / "config.json").read_text())["se_weight_decay"] == 0.0
