"""Every ablation variant opened from its chart (#20): the compact checkpoints the runner keeps, the
``ablation:<sweep>/<trial_id>`` pairs they make, and the comparison of an axis' gates.

One tiny sweep (no SE, default SE = sigmoid, tanh; one seed, one epoch on 128 training images) runs in
this process; its kept files are the ones checked.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from support import REPO_ROOT, needs_cifar, tiny_sweep_spec

from se_core.analysis.gates import compare as C
from se_core.data.datasets import normalize
from se_core.models import ablation_models as AM
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import compact_state, read_checkpoint, save_checkpoint, save_compact
from se_core.models.pairs import PAIRS, is_known, listed_pairs, load_pair
from se_core.models.weights import WeightsMissing
from se_core.runs.ablate import load_spec, plan, read_rows, run_sweep, write_table

SPEC = tiny_sweep_spec("tiny-kept").replace('excitation = ["sigmoid"]', 'excitation = ["sigmoid", "tanh"]')


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("kept")
    spec = tmp / "tiny-kept.toml"
    spec.write_text(SPEC)
    sweep = load_spec(spec)
    table = tmp / "abl" / "tiny-kept.csv"
    logs: list[str] = []
    res = run_sweep(sweep, table=table, runs_root=tmp / "runs", in_process=True, command="pytest", log=logs.append)
    assert res.done == 3 and not res.failed
    return {"tmp": tmp, "spec": spec, "sweep": sweep, "table": table, "runs": tmp / "runs" / "tiny-kept",
            "kept": tmp / "abl" / "tiny-kept", "trials": plan(sweep), "logs": logs}


@pytest.fixture
def kept_env(kept_run: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(kept_run["table"].parent))
    return kept_run


def _trial(run: dict, axis: str, setting: str | None = None):
    return next(t for t in run["trials"] if t.axis == axis and (setting is None or t.setting == setting))


def _batch(n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    from se_core.analysis.evaluate import eval_subset_indices
    from se_core.data.constants import CIFAR10_MEAN, CIFAR10_STD
    from se_core.data.datasets import load_dataset
    data = load_dataset("cifar10-jpeg", "test")
    idx = eval_subset_indices(len(data), n)
    return normalize(data.images[idx], CIFAR10_MEAN, CIFAR10_STD), data.labels[idx]


# ----------------------------------------------------------------------------------- compact copies
def test_compact_state_halves_floats_keeps_integers_and_widens_what_float16_cannot_hold() -> None:
    state = {"w": torch.randn(4, 3), "big": torch.tensor([1e6, -2.0]), "n": torch.tensor(7)}
    small, widened = compact_state(state)
    assert small["w"].dtype == torch.float16 and small["n"].dtype == torch.int64 and small["n"].item() == 7
    assert small["big"].dtype == torch.bfloat16 and widened == ["big"] and torch.isfinite(small["big"].float()).all()
    assert compact_state(state, "bfloat16")[0]["w"].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="float16, bfloat16"):
        compact_state(state, "int8")


@needs_cifar
def test_the_kept_copy_restores_the_fp32_model_with_the_same_accuracy(kept_env: dict) -> None:
    t = _trial(kept_env, "default")
    full_path, small_path = kept_env["runs"] / t.trial_id / "model.safetensors", kept_env["kept"] / f"{t.trial_id}.safetensors"
    state, meta = read_checkpoint(small_path)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert small_path.stat().st_size < 0.55 * full_path.stat().st_size
    full, fmeta = build_from_checkpoint(full_path)
    small, smeta = build_from_checkpoint(small_path)  # the one loader: no special path for compact copies
    assert {p.dtype for p in small.parameters()} == {torch.float32}
    # the metadata is the checkpoint's own (architecture, SE config, classes, normalisation, provenance) ...
    assert (smeta.arch, smeta.se_config, smeta.class_names, smeta.mean, smeta.std) == (
        fmeta.arch, fmeta.se_config, fmeta.class_names, fmeta.mean, fmeta.std)
    assert {k: v for k, v in smeta.provenance.items() if k not in ("compact", "ablation")} == fmeta.provenance
    # ... plus what the copy is
    assert smeta.provenance["compact"]["dtype"] == "float16"
    assert smeta.provenance["ablation"] == {"sweep": "tiny-kept", "trial_id": t.trial_id, "axis": "default",
                                            "setting": "SE (default)", "seed": 0}
    x, y = _batch()
    with torch.no_grad():
        a, b = full(x), small(x)
    assert (a - b).abs().max().item() < 5e-3 * max(1.0, a.abs().max().item())
    acc_full, acc_small = (a.argmax(1) == y).float().mean().item(), (b.argmax(1) == y).float().mean().item()
    assert abs(acc_full - acc_small) <= 0.02  # at most 2 of 100 images change their top-1 class
    assert (a.argmax(1) == b.argmax(1)).float().mean().item() >= 0.97


@needs_cifar
@pytest.mark.parametrize("name", ["se_resnet20-s0", "resnet20-s0"])
def test_a_trained_networks_compact_copy_keeps_its_accuracy(name: str, tmp_path: Path) -> None:
    """The shipped 60-epoch checkpoints (88 % top-1): the float16 copy classifies 500 test images the same."""
    src = REPO_ROOT / "data" / "checkpoints" / f"{name}.safetensors"
    if not src.is_file():
        pytest.skip(f"{src} is not shipped in this checkout")
    save_compact(src, tmp_path / "small.safetensors")
    full, _ = build_from_checkpoint(src)
    small, _ = build_from_checkpoint(tmp_path / "small.safetensors")
    x, y = _batch(500)
    with torch.no_grad():
        a, b = full(x), small(x)
    acc_full, acc_small = (a.argmax(1) == y).float().mean().item(), (b.argmax(1) == y).float().mean().item()
    assert acc_full > 0.8 and abs(acc_full - acc_small) <= 0.004  # at most 2 of 500 images
    assert (a - b).abs().max().item() < 5e-3 * a.abs().max().item()


def test_a_compact_copy_needs_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="no SE Lens metadata"):
        save_compact(tmp_path / "bare.safetensors", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


# ------------------------------------------------------------------------------------------- runner
@needs_cifar
def test_the_runner_keeps_every_finished_trial_once_with_provenance(kept_env: dict) -> None:
    kept, rows = kept_env["kept"], {r["trial_id"]: r for r in read_rows(kept_env["table"])}
    base = _trial(kept_env, "baseline")
    for t in kept_env["trials"]:
        side = json.loads((kept / f"{t.trial_id}.json").read_text())
        row = rows[t.trial_id]
        twin = "" if t is base else base.trial_id
        assert (side["axis"], side["setting"], side["seed"], side["twin"]) == (t.axis, t.setting, 0, twin)
        for k in ("command", "commit", "hardware", "date", "top1_err"):
            assert side[k] == row[k] and side[k] not in ("", None), k
        assert side["sha256"] and side["source_sha256"] and side["dtype"] == "float16"
    md = (kept / "PROVENANCE.md").read_text()
    assert all(f"## {t.trial_id}.safetensors" in md for t in kept_env["trials"])
    assert sum("kept " in line for line in kept_env["logs"]) == 3
    # a re-run writes nothing again
    stamps = {p.name: p.stat().st_mtime_ns for p in kept.iterdir()}
    res = run_sweep(kept_env["sweep"], table=kept_env["table"], runs_root=kept_env["tmp"] / "runs", in_process=True,
                    log=lambda s: None)
    assert res.ran == [] and {p.name: p.stat().st_mtime_ns for p in kept.iterdir()} == stamps


@needs_cifar
def test_resume_paths_keep_what_is_missing_and_the_switch_turns_keeping_off(kept_env: dict, tmp_path: Path) -> None:
    runs = kept_env["tmp"] / "runs"
    # a table copied elsewhere, one row dropped (its trial finished: row.json) and no kept files at all
    table = tmp_path / "copy.csv"
    rows = read_rows(kept_env["table"])
    write_table(table, rows[:-1])
    res = run_sweep(kept_env["sweep"], table=table, runs_root=runs, in_process=True, log=lambda s: None)
    assert res.ran == [rows[-1]["trial_id"]]  # taken from its row.json, not trained again
    assert sorted(p.stem for p in (tmp_path / "tiny-kept").glob("*.safetensors")) == sorted(r["trial_id"] for r in rows)
    # keeping off: nothing beside the table
    off = tmp_path / "off" / "t.csv"
    run_sweep(kept_env["sweep"], table=off, runs_root=runs, in_process=True, keep_checkpoints=False, log=lambda s: None)
    assert off.is_file() and not (off.parent / "tiny-kept").exists()
    spec = kept_env["spec"].read_text().replace("allow_short = true", "allow_short = true\nkeep_checkpoints = false")
    from se_core.runs.ablate import parse_spec
    assert parse_spec(spec, "x.toml").keep_checkpoints is False and kept_env["sweep"].keep_checkpoints is True
    with pytest.raises(ValueError, match="keep_checkpoints"):
        parse_spec(spec.replace("keep_checkpoints = false", 'keep_checkpoints = "no"'), "x.toml")


# --------------------------------------------------------------------------------------- pair source
@needs_cifar
def test_every_kept_se_trial_is_a_pair_with_its_vanilla_twin(kept_env: dict) -> None:
    se, tanh, base = _trial(kept_env, "default"), _trial(kept_env, "excitation", "tanh"), _trial(kept_env, "baseline")
    names = [AM.pair_name("tiny-kept", t.trial_id) for t in (se, tanh)]
    assert listed_pairs() == names  # SE trials only, in plan order; the vanilla trial is no pair of its own
    assert is_known(names[1]) and not is_known(AM.pair_name("tiny-kept", base.trial_id))
    spec = PAIRS[names[1]]
    assert spec.title == "Ablation tiny-kept: Excitation gate: tanh, seed 0 vs no SE"
    assert (spec.se_arch, spec.vanilla_arch) == ("se_resnet20_cifar", "resnet20_cifar")
    assert PAIRS[names[0]].title == "Ablation tiny-kept: SE (default), seed 0 vs no SE"
    pair = load_pair(names[1], torch.device("cpu"))
    assert pair.se.meta.se_config["gate"] == "tanh" and pair.vanilla.meta.se_config is None
    assert {p.dtype for p in pair.se.model.parameters()} == {torch.float32}
    assert Path(pair.vanilla.source) == kept_env["kept"] / f"{base.trial_id}.safetensors"
    assert AM.twin_problem(names[1]) is None


@needs_cifar
def test_a_missing_twin_is_named_with_the_command_that_makes_it(kept_env: dict, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tanh, base = _trial(kept_env, "excitation", "tanh"), _trial(kept_env, "baseline")
    folder = tmp_path / "tiny-kept"
    folder.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(kept_env["kept"] / f"{tanh.trial_id}{suffix}", folder)
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(tmp_path))
    name = AM.pair_name("tiny-kept", tanh.trial_id)
    assert is_known(name) and listed_pairs() == []  # not offered while its twin is missing
    with pytest.raises(WeightsMissing) as e:
        load_pair(name, torch.device("cpu"))
    msg = str(e.value)
    assert base.trial_id in msg and "no SE, seed 0" in msg and "python -m se_core.ablate run" in msg
    assert AM.twin_problem(name) == msg


@pytest.mark.parametrize("name", [
    "ablation:../abl/0123456789ab", "ablation:tiny-kept/../../etc", "ablation:/etc/0123456789ab",
    "ablation:tiny-kept/0123456789AB", "ablation:tiny-kept/0123456789ab/x", "ablation:tiny-kept\\0123456789ab",
    "ablation:./0123456789ab", "ablation:tiny-kept/0123456789a", "ablation:", "ablation:a/" + "0" * 12 + "\n",
])
def test_names_that_could_leave_the_folder_are_refused(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(tmp_path))
    assert not is_known(name)
    with pytest.raises(KeyError):
        AM.kept_trial(name)


def test_a_sweep_folder_that_links_outside_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0123456789ab.json").write_text(json.dumps({"format": AM.SIDECAR_FORMAT, "trial_id": "0123456789ab",
                                                           "sweep": "s", "axis": "default", "setting": "x",
                                                           "seed": 0, "arch": "se_resnet20_cifar"}))
    (outside / "0123456789ab.safetensors").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "s").symlink_to(outside)
    monkeypatch.setenv("SE_LENS_ABLATIONS_DIR", str(root))
    with pytest.raises(KeyError, match="outside"):
        AM.kept_trial("ablation:s/0123456789ab")
    assert AM.list_kept() == [] and not is_known("ablation:s/0123456789ab")


# ---------------------------------------------------------------------------------------- comparison
def _constant_gate_copy(src: Path, dst: Path) -> np.ndarray:
    """``src`` with every SE unit's expand layer zeroed and its bias set: gates fixed per channel, whatever
    the image. Returns the last unit's gate values (sigmoid of the bias)."""
    model, meta = build_from_checkpoint(src)
    last = None
    for name, m in model.named_modules():
        if name.endswith(".se"):
            with torch.no_grad():
                m.fc2.weight.zero_()
                m.fc2.bias.copy_(torch.linspace(-2, 2, m.fc2.bias.numel()))
            last = torch.sigmoid(m.fc2.bias).detach().numpy()
    save_checkpoint(dst, model, meta)
    return last


@needs_cifar
def test_comparison_per_block_matches_the_samples_and_a_constant_gate_reads_input_independent(
        kept_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    se, tanh = _trial(kept_env, "default"), _trial(kept_env, "excitation", "tanh")
    const = tmp_path / "constant.safetensors"
    gates = _constant_gate_copy(kept_env["kept"] / f"{se.trial_id}.safetensors", const)
    variants = [C.Variant("sigmoid", kept_env["kept"] / f"{se.trial_id}.safetensors", se.trial_id),
                C.Variant("tanh", kept_env["kept"] / f"{tanh.trial_id}.safetensors", tanh.trial_id),
                C.Variant("constant", const, "const")]
    data = C.probe_set("cifar10-jpeg", 100)
    assert len(data) == 100 and C.missing(variants, data) == variants
    with pytest.raises(Exception, match="not computed yet"):
        C.compare_variants(variants, data, compute=False)
    seen: list[tuple[int, int]] = []
    frame = C.compare_variants(variants, data, batch_size=50, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (6, 6) and C.missing(variants, data) == []
    assert list(frame.columns) == C.COLUMNS and list(frame["variant"].unique()) == ["sigmoid", "tanh", "constant"]
    assert (frame.groupby("variant", sort=False).size() == 9).all()  # 9 SE blocks each, in depth order
    # the numbers are the gate sample's: quantiles over images x channels, the dependence split
    from se_core.analysis.gates import cache_path, dependence_frame, load_sample
    sample = load_sample(cache_path(variants[1].checkpoint, data))
    rows = frame[frame["variant"] == "tanh"]
    site = sample.gate_sites[4].name
    v = sample.values("s", site).ravel()
    np.testing.assert_allclose(rows.loc[rows["site"] == site, ["q05", "q50", "q95"]].to_numpy()[0],
                               np.quantile(v, [0.05, 0.5, 0.95]))
    np.testing.assert_allclose(rows["input_share"], dependence_frame(sample, "s")["input_share"])
    assert rows["q05"].min() < 0 < rows["q95"].max()  # tanh gates go negative, sigmoid ones never do
    assert frame.loc[frame["variant"] == "sigmoid", "q05"].min() > 0
    # the constant gate: all of its variance is static, none depends on the image; frozen; its quantiles
    # are those of the fixed per-channel values
    c = frame[frame["variant"] == "constant"]
    assert (c["static_share"] > 0.999999).all() and (c["input_share"] < 1e-6).all() and c["frozen"].all()
    np.testing.assert_allclose(c.iloc[-1][["q05", "q50", "q95"]].astype(float), np.quantile(gates, [0.05, 0.5, 0.95]),
                               atol=2e-3)
    trained = frame[frame["variant"] == "sigmoid"]  # one epoch: gates still near their start, but they do move
    assert (trained["input_share"] > 1e-3).all() and (trained["image_std"].to_numpy() > 1e3 * c["image_std"].to_numpy()).all()
    # a second call reads the cache only
    again = C.compare_variants(variants, data, compute=False)
    np.testing.assert_allclose(again["q50"], frame["q50"])


def test_a_model_without_gates_is_refused_by_name(tmp_path: Path) -> None:
    from se_core.analysis.gates.sample import GateSample
    empty = GateSample(("a",), np.zeros(0, np.int64), np.zeros(0, np.int64), (), (), {}, {})
    with pytest.raises(Exception, match="no SE gates"):
        C.variant_frame(empty, C.Variant("no SE", tmp_path / "x.safetensors"))


@needs_cifar
def test_the_cli_switch_turns_keeping_off(kept_env: dict, tmp_path: Path) -> None:
    from se_core.runs.ablate import main
    table = tmp_path / "t.csv"
    shutil.copy(kept_env["table"], table)  # every row there: nothing to train, only copies to keep
    args = ["run", str(kept_env["spec"]), "--table", str(table), "--runs-root", str(kept_env["tmp"] / "runs"),
            "--in-process"]
    assert main([*args, "--no-keep-checkpoints"]) == 0 and not (tmp_path / "tiny-kept").exists()
    assert main(args) == 0  # by default the rows' checkpoints are kept, from their trial folders
    assert len(list((tmp_path / "tiny-kept").glob("*.safetensors"))) == 3


@pytest.mark.parametrize(("data", "ok"), [(None, True), ("cifar10-jpeg", True), ("cifar10-jpeg@val=5000", True),
                                          ("torchvision-cifar10:/tmp/x", False), ("/etc", False),
                                          ("cifar10-jpeg/../../etc", False)])
def test_a_sidecar_names_only_the_built_in_data_set(data: str | None, ok: bool, tmp_path: Path) -> None:
    """The comparison probes a kept trial on the data its sidecar names; a sidecar is editable, so a path
    (which would leave the data roots, or make torchvision unpickle) is refused, naming the sidecar."""
    kept = AM.KeptTrial(folder=tmp_path, sweep="s", trial_id="abc123", axis="excitation", setting="tanh", seed=0,
                        arch="se_resnet20_cifar", info={} if data is None else {"data": data})
    if ok:
        assert kept.probe_data == (data or "cifar10-jpeg")
    else:
        with pytest.raises(ValueError, match="abc123.json"):
            _ = kept.probe_data


def test_the_model_layer_names_the_baseline_axis_as_the_tables_do() -> None:
    """ablation_models sits below se_core.runs and keeps its own copy of the name; the two must agree."""
    from se_core.models import ablation_models
    from se_core.runs import tables

    assert ablation_models.BASELINE_AXIS == tables.BASELINE_AXIS
