"""Helpers shared by test modules (import as ``from support import ...``; a module named
``conftest`` is ambiguous because tests/e2e has its own)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def cifar_skip_reason() -> str | None:
    """Why tests that read the real CIFAR-10 JPEG tarball must skip, or None. Never under
    ``SE_LENS_REQUIRE_DATA=1`` (set by .ci/run): there they run and fail, so CI cannot pass by skipping."""
    from se_core.config import cifar_tarball
    if cifar_tarball().is_file() or os.environ.get("SE_LENS_REQUIRE_DATA") == "1":
        return None
    return f"CIFAR-10 JPEG tarball {cifar_tarball()} is absent (set SE_LENS_CIFAR_TARBALL)"


_CIFAR_SKIP = cifar_skip_reason()
needs_cifar = pytest.mark.skipif(_CIFAR_SKIP is not None, reason=_CIFAR_SKIP or "")

TINY_PAIR_FILES = {"se_resnet20_cifar": "checkpoints/se_resnet20-s0.safetensors",
                   "resnet20_cifar": "checkpoints/resnet20-s0.safetensors"}


def write_tiny_pair(data_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write random-init SE / vanilla ResNet-20 checkpoints under ``data_dir``; returns arch -> path."""
    from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
    from se_core.models.checkpoints import CheckpointMeta, save_checkpoint
    from se_core.models.registry import get_spec

    out = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for arch, rel in TINY_PAIR_FILES.items():
            spec = get_spec(arch)
            model = spec.build()
            se = spec.default_se
            meta = CheckpointMeta(arch=arch, se_config=None if se is None else json.loads(se.to_json()),
                                  num_classes=10, class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                                  input_size=(32, 32), provenance={"note": "random init written by tests/conftest.py",
                                                                   "seed": seed})
            save_checkpoint(data_dir / rel, model, meta)
            out[arch] = data_dir / rel
    return out


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m se_core...`` subprocesses: repo importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


_TINY_SWEEP = """
[sweep]
name = "{name}"
seeds = {seeds}
allow_short = true
[train]
arch = "resnet20_cifar"
epochs = {epochs}
batch_size = 64
train_subset = 128
test_subset = 50
probe_per_class = 1
precision = "fp32"
[axes]
excitation = ["sigmoid"]
"""


def tiny_sweep_spec(name: str = "tiny", seeds: str = "[0]", epochs: int = 1) -> str:
    """TOML of a seconds-long sweep (one SE config plus the baseline, 128 training images)."""
    return _TINY_SWEEP.format(name=name, seeds=seeds, epochs=epochs)


def run_tiny_sweep(tmp: Path, spec_text: str, table: Path, trials: int):
    """Run a sweep spec (:func:`tiny_sweep_spec`, possibly edited) in this process into ``table``; skips
    without the CIFAR-10 tarball, fails unless all ``trials`` finished. Returns the loaded spec."""
    from se_core.runs.ablate import load_spec, run_sweep

    if reason := cifar_skip_reason():
        pytest.skip(reason)
    spec = tmp / f"{table.stem}.toml"
    spec.write_text(spec_text)
    res = run_sweep(load_spec(spec), table=table, runs_root=tmp / "runs", in_process=True, command="pytest",
                    log=lambda s: None)
    assert res.done == trials and not res.failed
    return load_spec(spec)
