"""Shared test set-up: the repo root on ``sys.path``, one torch thread, and a tiny data dir.

``tiny_data_dir`` writes randomly initialised SE / vanilla CIFAR ResNet-20 checkpoints (real
:class:`~se_core.checkpoints.CheckpointMeta`, CIFAR-10 class names and normalization) where the
default pair expects them, and points ``SE_LENS_DATA_DIR`` and ``se_core.pairs`` at that dir,
so dashboard and pair tests run without the trained weights (which are not shipped yet).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The machine is shared with training jobs: tests use one intra-op thread (results do not depend on it).
torch.set_num_threads(1)

TINY_PAIR_FILES = {"se_resnet20_cifar": "checkpoints/se_resnet20-s0.safetensors",
                   "resnet20_cifar": "checkpoints/resnet20-s0.safetensors"}


def write_tiny_pair(data_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write random-init SE / vanilla ResNet-20 checkpoints under ``data_dir``; returns arch -> path."""
    from se_core.checkpoints import CheckpointMeta, save_checkpoint
    from se_core.registry import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, get_spec

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


@pytest.fixture
def tiny_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp data dir holding the default pair's two checkpoints (random init), made current."""
    import se_core.pairs as pairs

    data_dir = tmp_path / "data"
    write_tiny_pair(data_dir)
    monkeypatch.setenv("SE_LENS_DATA_DIR", str(data_dir))
    monkeypatch.setattr(pairs, "DATA_DIR", data_dir)
    monkeypatch.setattr(pairs, "CHECKPOINT_DIR", data_dir / "checkpoints")
    return data_dir


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m se_core...`` subprocesses: repo importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env
