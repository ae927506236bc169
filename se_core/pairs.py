"""SE / vanilla model pairs the dashboard compares, and where their weights come from.

A :class:`PairSpec` names two registered architectures and a :class:`WeightsRef` for each.
:func:`load_pair` returns both models ready for inference, or raises :class:`WeightsMissing`
whose message says exactly which file is missing and how to get it; nothing is downloaded.
The shipped default is the project's own CIFAR-10 ResNet-20 pair in ``data/checkpoints``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from se_core.checkpoints import CheckpointError, CheckpointMeta
from se_core.registry import build_from_checkpoint, get_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SE_LENS_DATA_DIR", REPO_ROOT / "data"))
CHECKPOINT_DIR = DATA_DIR / "checkpoints"


class WeightsMissing(FileNotFoundError):
    """Trained weights are not on disk; the message names the file and how to get it."""


@dataclass(frozen=True)
class WeightsRef:
    """Where one model's weights live: ``file`` (a checkpoint path, relative to the data dir)."""

    kind: str
    location: str
    how_to_get: str = ""

    def path(self) -> Path:
        p = Path(self.location)
        return p if p.is_absolute() else DATA_DIR / p


@dataclass(frozen=True)
class PairSpec:
    name: str
    title: str
    se_arch: str
    vanilla_arch: str
    se_weights: WeightsRef
    vanilla_weights: WeightsRef
    dataset: str
    note: str = ""


@dataclass
class LoadedModel:
    """A model in eval mode with what is needed to feed and label it."""

    name: str
    model: nn.Module
    meta: CheckpointMeta
    resize: int | None = None
    source: str = ""

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta.class_names) or tuple(str(i) for i in range(self.meta.num_classes))


@dataclass
class LoadedPair:
    spec: PairSpec
    se: LoadedModel
    vanilla: LoadedModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


_HOW_TRAIN = ("python -m se_core.train --arch {arch} --seed 0 --epochs 60 --out data/runs/{run} "
              "&& cp data/runs/{run}/model.safetensors data/{file}")

PAIRS: dict[str, PairSpec] = {}


def register_pair(spec: PairSpec) -> PairSpec:
    if spec.name in PAIRS:
        raise ValueError(f"pair {spec.name!r} is already registered")
    PAIRS[spec.name] = spec
    return spec


DEFAULT_PAIR = register_pair(PairSpec(
    name="cifar10-resnet20",
    title="CIFAR-10 ResNet-20 vs SE-ResNet-20 (this project, shipped)",
    se_arch="se_resnet20_cifar", vanilla_arch="resnet20_cifar",
    se_weights=WeightsRef("file", "checkpoints/se_resnet20-s0.safetensors",
                          _HOW_TRAIN.format(arch="se_resnet20_cifar", run="se_resnet20-s0", file="checkpoints/se_resnet20-s0.safetensors")),
    vanilla_weights=WeightsRef("file", "checkpoints/resnet20-s0.safetensors",
                               _HOW_TRAIN.format(arch="resnet20_cifar", run="resnet20-s0", file="checkpoints/resnet20-s0.safetensors")),
    dataset="CIFAR-10 (JPEG q75)",
    note="Trained here by se_core.train (seed 0); provenance in data/checkpoints/PROVENANCE.md.",
)).name


def pick_device() -> torch.device:
    """GPU when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_weights(ref: WeightsRef, arch: str, device: torch.device | None = None) -> LoadedModel:
    """Build ``arch`` and load ``ref``'s weights; :class:`WeightsMissing` when not on disk."""
    if ref.kind != "file":
        raise ValueError(f"unknown weights kind {ref.kind!r}")
    path = ref.path()
    if not path.is_file():
        raise WeightsMissing(f"weights for {arch} not found: {path} is missing. "
                             + (f"Create it with: {ref.how_to_get}" if ref.how_to_get else "Put the file there."))
    model, meta = build_from_checkpoint(path)
    if meta.arch != arch:
        raise CheckpointError(f"{path.name} holds a {meta.arch}, expected {arch}")
    device = device or pick_device()
    return LoadedModel(arch, model.to(device).eval(), meta, get_spec(arch).resize, str(path))


def load_pair(name: str = DEFAULT_PAIR, device: torch.device | None = None) -> LoadedPair:
    """Both models of pair ``name`` on ``device`` (default: GPU if present, else CPU)."""
    try:
        spec = PAIRS[name]
    except KeyError:
        raise KeyError(f"unknown pair {name!r}; known: {', '.join(PAIRS)}") from None
    device = device or pick_device()
    return LoadedPair(spec, load_weights(spec.se_weights, spec.se_arch, device),
                      load_weights(spec.vanilla_weights, spec.vanilla_arch, device), device)
