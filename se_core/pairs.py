"""SE / vanilla model pairs the dashboard compares, and where their weights come from.

A :class:`PairSpec` names two registered architectures and a :class:`WeightsRef` for each.
:func:`load_pair` returns both models ready for inference, or raises :class:`WeightsMissing`
whose message says exactly which file is missing and how to get it; nothing is downloaded.
The shipped default is the project's own CIFAR-10 ResNet-20 pair in ``data/checkpoints``;
ImageNet pairs from timm and torchvision are registered by :mod:`se_core.zoo` (weights from
those libraries' local caches), and pairs a user builds from their own checkpoints live in
:mod:`se_core.user_models` under names ``user:<id>``: ``PAIRS[name]`` resolves those too, but
they are not listed (each dashboard session lists its own).
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
    """Where one model's weights live, by ``kind``:

    - ``file``: a checkpoint path (relative to the data dir, or absolute);
    - ``timm``: timm pretrained weights ``name.tag`` (e.g. ``seresnet50.a1_in1k``), from timm's cache;
    - ``torchvision``: a torchvision weights enum member (e.g. ``RegNet_Y_400MF_Weights.IMAGENET1K_V2``);
    - ``random``: no weights, a random initialisation seeded by ``int(location)`` (labelled as untrained).
    """

    kind: str
    location: str
    how_to_get: str = ""

    def path(self) -> Path:
        """The file these weights are (or would be) read from."""
        if self.kind in ("timm", "torchvision"):
            from se_core.zoo import expected_path

            return expected_path(self)
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


class PairTable(dict):
    """Registered pairs; a lookup of an unregistered ``user:<id>`` name resolves the user pair's
    spec (:func:`se_core.user_models.user_pair_spec`) without listing it."""

    def __missing__(self, key: str) -> PairSpec:
        if isinstance(key, str) and key.startswith(USER_PREFIX):
            from se_core.user_models import user_pair_spec

            return user_pair_spec(key)
        raise KeyError(key)


USER_PREFIX = "user:"

_HOW_TRAIN = ("python -m se_core.train --arch {arch} --seed 0 --epochs 60 --out data/runs/{run} "
              "&& cp data/runs/{run}/model.safetensors data/{file}")

PAIRS: PairTable = PairTable()


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


def resize_for(meta: CheckpointMeta, arch: str) -> int | None:
    """Shorter-side resize before the centre crop: the checkpoint's (library transform), else the registry's."""
    r = (meta.extra or {}).get("resize")
    if isinstance(r, int) and r >= max(meta.input_size or (0,)):
        return r
    try:
        return get_spec(arch).resize
    except KeyError:
        return None


def random_model(arch: str, seed: int = 0, device: torch.device | None = None) -> LoadedModel:
    """``arch`` randomly initialised (seeded), labelled as untrained: a stand-in counterpart, not a result."""
    spec = get_spec(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build()
    lib_meta = spec.meta.get("library_meta")
    if lib_meta is not None:
        meta = lib_meta(model)
    else:
        import json
        se = spec.default_se
        meta = CheckpointMeta(arch=arch, se_config=None if se is None else json.loads(se.to_json()),
                              num_classes=spec.num_classes, class_names=spec.class_names, mean=spec.mean,
                              std=spec.std, input_size=spec.input_size)
    from dataclasses import replace
    meta = replace(meta, provenance={"weights": f"random initialisation, seed {seed}: NOT trained"})
    device = device or pick_device()
    return LoadedModel(arch, model.to(device).eval(), meta, resize_for(meta, arch), f"random init (seed {seed})")


def load_weights(ref: WeightsRef, arch: str, device: torch.device | None = None) -> LoadedModel:
    """Build ``arch`` and load ``ref``'s weights; :class:`WeightsMissing` when not on disk."""
    device = device or pick_device()
    if ref.kind in ("timm", "torchvision"):
        from se_core.zoo import load_library_model

        return load_library_model(ref, arch, device)
    if ref.kind == "random":
        return random_model(arch, int(ref.location or 0), device)
    if ref.kind != "file":
        raise ValueError(f"unknown weights kind {ref.kind!r}")
    path = ref.path()
    if not path.is_file():
        raise WeightsMissing(f"weights for {arch} not found: {path} is missing. "
                             + (f"Create it with: {ref.how_to_get}" if ref.how_to_get else "Put the file there."))
    model, meta = build_from_checkpoint(path)
    if meta.arch != arch:
        raise CheckpointError(f"{path.name} holds a {meta.arch}, expected {arch}")
    return LoadedModel(arch, model.to(device).eval(), meta, resize_for(meta, arch), str(path))


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered pair or a stored user pair."""
    if name in PAIRS:
        return True
    if isinstance(name, str) and name.startswith(USER_PREFIX):
        from se_core.user_models import user_pair_exists

        return user_pair_exists(name)
    return False


def load_pair(name: str = DEFAULT_PAIR, device: torch.device | None = None) -> LoadedPair:
    """Both models of pair ``name`` on ``device`` (default: GPU if present, else CPU)."""
    if isinstance(name, str) and name.startswith(USER_PREFIX) and name not in PAIRS:
        from se_core.user_models import load_user_pair

        return load_user_pair(name, device)
    try:
        spec = PAIRS[name]
    except KeyError:
        raise KeyError(f"unknown pair {name!r}; known: {', '.join(PAIRS)}") from None
    device = device or pick_device()
    return LoadedPair(spec, load_weights(spec.se_weights, spec.se_arch, device),
                      load_weights(spec.vanilla_weights, spec.vanilla_arch, device), device)


def _register_library_pairs() -> None:
    from se_core.zoo import imagenet_pairs

    for spec in imagenet_pairs():
        register_pair(spec)


_register_library_pairs()
