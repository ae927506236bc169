"""Checkpoints: round trips, and hostile or broken files refused with one line, never executed."""
from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from support import REPO_ROOT, subprocess_env

from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from se_core.models import checkpoints
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import CheckpointError, CheckpointMeta, compare_state, load_into, read_checkpoint, save_checkpoint
from se_core.nn.resnet import cifar_resnet
from se_core.nn.se import SEConfig


def _meta(arch: str = "se_resnet20_cifar", se: SEConfig | None = SEConfig()) -> CheckpointMeta:
    return CheckpointMeta(arch=arch, se_config=None if se is None else json.loads(se.to_json()), num_classes=10,
                          class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD, input_size=(32, 32),
                          provenance={"seed": 0, "note": "test"}, extra={"k": [1, 2]})


@pytest.fixture
def se_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return cifar_resnet(20, SEConfig()).eval()


@pytest.fixture
def good_file(tmp_path: Path, se_model: torch.nn.Module) -> Path:
    p = tmp_path / "good.safetensors"
    save_checkpoint(p, se_model, _meta())
    return p


class _Payload:
    """Unpickling this calls ``open(path, 'w')``: it creates a file, i.e. runs code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _ShellPayload:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


# ----------------------------------------------------------------------------- round trips

def test_safetensors_round_trip(good_file: Path, se_model: torch.nn.Module) -> None:
    tensors, meta = read_checkpoint(good_file)
    assert meta == _meta()
    own = se_model.state_dict()
    assert set(tensors) == set(own)
    assert all(torch.equal(tensors[k], own[k]) and tensors[k].dtype == own[k].dtype for k in own)
    model, meta2 = build_from_checkpoint(good_file)
    assert meta2 == meta and not model.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), se_model(x))
    # no temp file is left next to it
    assert [p.name for p in good_file.parent.iterdir()] == ["good.safetensors"]


def test_save_strips_ddp_prefix(tmp_path: Path, se_model: torch.nn.Module) -> None:
    p = tmp_path / "ddp.safetensors"
    save_checkpoint(p, {f"module.{k}": v for k, v in se_model.state_dict().items()}, _meta())
    tensors, _ = read_checkpoint(p)
    assert set(tensors) == set(se_model.state_dict())


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module"])
def test_torch_state_dict_files(tmp_path: Path, se_model: torch.nn.Module, suffix: str, wrap: str) -> None:
    sd = se_model.state_dict()
    obj = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3},
           "module": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    p = tmp_path / f"w{suffix}"
    torch.save(obj, p)
    tensors, meta = read_checkpoint(p)
    assert meta is None
    assert set(tensors) == set(sd) and all(torch.equal(tensors[k], sd[k]) for k in sd)
    with pytest.raises(CheckpointError, match="no SE Lens metadata"):
        build_from_checkpoint(p)
    model, meta = build_from_checkpoint(p, arch="se_resnet20_cifar")
    assert meta.arch == "se_resnet20_cifar" and meta.class_names == CIFAR10_CLASSES
    assert all(torch.equal(model.state_dict()[k], sd[k]) for k in sd)


# ------------------------------------------------------------------------- code execution

def test_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """Sanity: the payload used below is dangerous (so refusing it means something)."""
    sentinel = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(str(sentinel)))).close()
    assert sentinel.exists()


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl"])
@pytest.mark.parametrize("payload", [_Payload, _ShellPayload])
def test_pickled_code_is_refused(tmp_path: Path, how: str, suffix: str, payload: type) -> None:
    sentinel = tmp_path / "pwned"
    obj = {"conv1.weight": torch.zeros(2), "evil": payload(str(sentinel))}
    p = tmp_path / f"evil{suffix}"
    if how == "torch.save":
        torch.save(obj, p)
    else:
        p.write_bytes(pickle.dumps(obj))
    with pytest.raises(CheckpointError) as ei:
        read_checkpoint(p)
    assert "\n" not in str(ei.value)
    with pytest.raises(CheckpointError):
        build_from_checkpoint(p, arch="se_resnet20_cifar")
    assert not sentinel.exists()


# ---------------------------------------------------------------------------- broken files

def _bad_files(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    files = {
        "truncated_payload": data[: len(data) // 2],
        "truncated_header": data[: 8 + n // 2],
        "tiny": b"\x01\x02",
        "empty": b"",
        "huge_header": struct.pack("<Q", 10**12) + b'{"a": 1}',
        "header_not_json": struct.pack("<Q", 6) + b"\xff\xfe\x00abc" + b"\x00" * 16,
        "header_not_object": struct.pack("<Q", 2) + b"[]",
        "metadata_not_object": struct.pack("<Q", 20) + b'{"__metadata__": []}',
        "garbage": bytes(range(256)) * 40,
    }
    out = {k: tmp / f"{k}.safetensors" for k in files}
    for k, b in files.items():
        out[k].write_bytes(b)
    out["garbage_pt"] = tmp / "garbage.pt"
    out["garbage_pt"].write_bytes(os.urandom(4096))
    out["no_extension"] = tmp / "weights"
    out["no_extension"].write_bytes(data)
    return out


def test_broken_files_refused(tmp_path: Path, good_file: Path) -> None:
    for name, p in _bad_files(tmp_path, good_file).items():
        with pytest.raises(CheckpointError) as ei:
            read_checkpoint(p)
        msg = str(ei.value)
        assert "\n" not in msg and p.name in msg, (name, msg)
    with pytest.raises(CheckpointError, match="10.*header|header.*1,000,000,000,000"):
        read_checkpoint(tmp_path / "huge_header.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.safetensors")


def test_malformed_metadata(tmp_path: Path, se_model: torch.nn.Module) -> None:
    from se_core.models.checkpoints import META_KEY, save_tensors

    for i, text in enumerate(["not json", json.dumps({"num_classes": 10}), json.dumps([1, 2])]):
        p = tmp_path / f"m{i}.safetensors"
        save_tensors(p, se_model.state_dict(), {META_KEY: text})
        with pytest.raises(CheckpointError, match="metadata"):
            read_checkpoint(p)
    # metadata naming an unknown arch or an impossible SE config: refused when building
    for i, meta in enumerate([CheckpointMeta(arch="resnet999"),
                              CheckpointMeta(arch="se_resnet20_cifar", se_config={"reduction": 0}),
                              CheckpointMeta(arch="se_resnet20_cifar", se_config={"ratio": 4})]):
        p = tmp_path / f"a{i}.safetensors"
        save_checkpoint(p, se_model, meta)
        with pytest.raises(CheckpointError):
            build_from_checkpoint(p)


def test_mismatched_state_names_every_key(tmp_path: Path) -> None:
    se = cifar_resnet(20, SEConfig())
    vanilla = cifar_resnet(20)
    # vanilla weights into the SE net: every SE parameter is missing
    with pytest.raises(CheckpointError) as ei:
        load_into(se, vanilla.state_dict(), what="van.safetensors")
    msg = str(ei.value)
    assert msg.startswith("van.safetensors does not fit CifarResNet")
    assert "missing layer1.0.se.fc1.weight (1, 16, 1, 1)" in msg and "more" in msg
    assert len(compare_state(se, vanilla.state_dict())) == 9 * 4
    # SE weights into the vanilla net: unexpected keys
    probs = compare_state(vanilla, se.state_dict())
    assert len(probs) == 36 and all(p.startswith("unexpected layer") and ".se." in p for p in probs)
    # shape: a 100-class head
    sd = dict(se.state_dict())
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(100, 64), torch.zeros(100)
    assert compare_state(se, sd) == ["shape fc.weight: file (100, 64) vs model (10, 64)",
                                     "shape fc.bias: file (100,) vs model (10,)"]
    # dtype: integer tensor where the model has float weights (float16 would be fine)
    sd = dict(se.state_dict())
    sd["conv1.weight"] = sd["conv1.weight"].to(torch.int32)
    sd["fc.weight"] = sd["fc.weight"].half()
    assert compare_state(se, sd) == ["dtype conv1.weight: file torch.int32 vs model torch.float32"]
    # and through a file: the message names the keys
    p = tmp_path / "wrong.safetensors"
    save_checkpoint(p, sd, _meta())
    with pytest.raises(CheckpointError, match=r"wrong\.safetensors.*dtype conv1\.weight"):
        build_from_checkpoint(p)
    before = {k: v.clone() for k, v in se.state_dict().items()}
    with pytest.raises(CheckpointError):
        load_into(se, sd)
    assert all(torch.equal(before[k], v) for k, v in se.state_dict().items())  # nothing half-loaded


def _zip_with(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def test_zip_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "bomb.pt"
    _zip_with(p, {"archive/data.pkl": b"\x80\x02}q\x00.", "archive/data/0": b"\0" * (16 << 20)})
    assert p.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match="zip bomb"):
        read_checkpoint(p)
    # the total-size guard, independent of the ratio
    q = tmp_path / "big.pt"
    _zip_with(q, {"archive/data/0": os.urandom(3 << 20)}, zipfile.ZIP_STORED)
    monkeypatch.setattr(checkpoints, "MAX_UNZIPPED_BYTES", 2 << 20)
    with pytest.raises(CheckpointError, match="expand"):
        read_checkpoint(q)


def test_atomic_write_never_shows_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.bin"
    checkpoints.atomic_write_bytes(target, b"old")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        checkpoints.atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


# ------------------------------------------------------------------------------------- CLI

def _cli(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "se_core.checkpoints", "check", str(path)], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)


def test_cli(tmp_path: Path, good_file: Path) -> None:
    r = _cli(good_file)
    assert r.returncode == 0, r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ok se_resnet20_cifar"), lines
    assert "params=" in lines[0]
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": _ShellPayload(str(sentinel))}, evil)
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps(_Payload(str(sentinel))))
    bad = _bad_files(tmp_path, good_file)
    wrong = tmp_path / "wrong_arch.safetensors"
    save_checkpoint(wrong, cifar_resnet(20).state_dict(), _meta())  # says SE, holds vanilla weights
    bomb = tmp_path / "bomb.pt"
    _zip_with(bomb, {"archive/data/0": b"\0" * (16 << 20)})
    # one file per way of failing (each is also checked in-process above); every run costs an interpreter start
    paths = (evil, pkl, bad["truncated_payload"], bad["garbage_pt"], wrong, bomb)
    with ThreadPoolExecutor(max_workers=2) as pool:  # each run is mostly interpreter start-up
        results = list(pool.map(_cli, paths))
    for p, r in zip(paths, results):
        out = r.stdout + r.stderr
        assert r.returncode == 2, (p.name, out)
        assert len(out.strip().splitlines()) == 1, (p.name, out)
        assert "Traceback" not in out and out.startswith("error:"), (p.name, out)
    assert not sentinel.exists()


def test_se_is_named_wherever_the_probe_finds_it(tmp_path: Path) -> None:
    """#17: a library SE model without SE Lens metadata is not called vanilla: the CLI and the model card
    name the SE units the probe finds; our own checkpoints keep their recorded config; a vanilla net says so."""
    from se_core.models.build import se_label
    from se_core.models.registry import get_spec

    spec = get_spec("timm:seresnet18")
    model = spec.build()
    torch.save(model.state_dict(), tmp_path / "seresnet18.pth")
    r = subprocess.run([sys.executable, "-m", "se_core.checkpoints", "check", str(tmp_path / "seresnet18.pth"),
                        "--arch", "timm:seresnet18"], cwd=REPO_ROOT, env=subprocess_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok timm:seresnet18 SE 8 SE units (SEModule)") and "vanilla" not in r.stdout, r.stdout
    meta = spec.describe(model)
    assert se_label(model, meta) == "8 SE units (SEModule), design fixed by the architecture"
    ours = get_spec("se_resnet20_cifar")
    m = ours.build()
    from se_core.models.build import spec_meta
    assert se_label(m, spec_meta(ours, m, ours.default_se)) == "r=16 avg sigmoid stages=all standard (9 SE units)"
    van = get_spec("resnet20_cifar")
    v = van.build()
    assert se_label(v, spec_meta(van, v, None)) == "none (vanilla)"
