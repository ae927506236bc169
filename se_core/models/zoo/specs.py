"""Library models as registry specs: preprocessing and labels from the library's own metadata, built on demand."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from se_core.data.constants import IMAGENET_MEAN, IMAGENET_STD
from se_core.models.checkpoints import CheckpointMeta
from se_core.models.registry import ModelSpec, register, register_resolver
from se_core.models.weights import PairSpec, WeightsRef
from se_core.models.zoo.catalog import LIBRARY_KINDS, ZOO, ZOO_PAIRS, ZooModel, _timm_command, _tv_command
from se_core.models.zoo.library import _build_library, _timm, _tv_models, tv_weights
from se_core.models.zoo.sites import detect_family, prepare_sites
from se_core.nn.se import SEConfig
from se_core.probe.sites import find_sites


def _builder(library: str, name: str, site_family: str | None):
    def build(num_classes: int = 1000, se: SEConfig | None = None) -> nn.Module:
        return prepare_sites(_build_library(library, name, num_classes), site_family)
    return build


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    """Names made unique by appending the class index to repeats (ImageNet has two 'crane's)."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return tuple(n if counts[n] == 1 else f"{n} [{i}]" for i, n in enumerate(names))


def _interp_name(v: Any) -> str:
    s = str(getattr(v, "value", v)).lower()
    return s if s in ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos") else "bilinear"


def _side(v: Any) -> int:
    if isinstance(v, (list, tuple)):
        return int(max(v))
    return int(v)


@dataclass(frozen=True)
class LibraryPreprocess:
    """Eval preprocessing read from a library transform: resize shorter side, centre crop, normalize."""

    size: tuple[int, int]
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    source: str


def timm_preprocess(model: nn.Module) -> LibraryPreprocess:
    """From timm's eval transform for ``model``'s pretrained config."""
    from timm.data import create_transform, resolve_model_data_config

    cfg = resolve_model_data_config(model)
    t = create_transform(**cfg, is_training=False)
    resize = crop = None
    interp = cfg.get("interpolation", "bilinear")
    mean, std = cfg["mean"], cfg["std"]
    for step in getattr(t, "transforms", []):
        kind = type(step).__name__
        if kind == "Resize":
            resize, interp = _side(step.size), _interp_name(step.interpolation)
        elif kind == "CenterCrop":
            crop = tuple(int(v) for v in (step.size if isinstance(step.size, (list, tuple)) else (step.size, step.size)))
        elif kind == "Normalize":
            mean, std = step.mean, step.std
    size = crop or tuple(int(v) for v in cfg["input_size"][1:])
    return LibraryPreprocess(size, max(resize or max(size), max(size)),  # type: ignore[arg-type]
                             tuple(float(v) for v in mean), tuple(float(v) for v in std),  # type: ignore[arg-type]
                             _interp_name(interp), f"timm create_transform({cfg})")


def tv_preprocess(weights: Any) -> LibraryPreprocess:
    """From torchvision's ``weights.transforms()`` (ImageClassification)."""
    t = weights.transforms()
    crop = _side(t.crop_size)
    return LibraryPreprocess((crop, crop), max(_side(t.resize_size), crop), tuple(float(v) for v in t.mean),  # type: ignore[arg-type]
                             tuple(float(v) for v in t.std), _interp_name(t.interpolation),  # type: ignore[arg-type]
                             f"torchvision {type(weights).__name__}.{weights.name}.transforms()")


def timm_class_names(model: nn.Module) -> tuple[str, ...]:
    """ImageNet class names for a timm model, from timm's own label metadata (first synonym)."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if not subset:
        return ()
    return _unique([d.split(",")[0].strip() for d in ImageNetInfo(subset).label_descriptions()])


def library_meta(arch: str, model: nn.Module, weights: str | None = None, *, num_classes: int | None = None,
                 provenance: dict | None = None) -> CheckpointMeta:
    """Class names and preprocessing of a library model from the library's metadata and transforms."""
    zm = zoo_model(arch)
    n = num_classes or _num_outputs(model)
    extra: dict = {"library": zm.library, "library_name": zm.name}
    names: tuple[str, ...] = ()
    try:
        if zm.library == "timm":
            pre = timm_preprocess(model)
            names = timm_class_names(model)
        else:
            w = tv_weights(weights) if weights else _tv_models().get_model_weights(zm.name).DEFAULT
            pre = tv_preprocess(w)
            names = _unique(w.meta.get("categories") or ())
    except Exception as e:  # noqa: BLE001 - a model without library metadata still loads, with ImageNet defaults
        pre = LibraryPreprocess((224, 224), 256, IMAGENET_MEAN, IMAGENET_STD, "bilinear",
                                f"SE Lens ImageNet defaults ({zm.library} metadata unavailable: {type(e).__name__})")
    if len(names) != n:
        names = ()
    extra.update(interpolation=pre.interpolation, resize=pre.resize, preprocessing=pre.source)
    if zm.se_design:
        extra["se_design"] = zm.se_design
    return CheckpointMeta(arch=arch, se_config=None if zm.se_config is None else zm.se_config.to_dict(), num_classes=n, class_names=names,
                          mean=pre.mean, std=pre.std, input_size=pre.size, provenance=dict(provenance or {}),
                          extra=extra)


def _num_outputs(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return int(last[-1].out_features) if last else int(getattr(model, "num_classes", 1000))


def _spec(zm: ZooModel) -> ModelSpec:
    return ModelSpec(name=zm.arch, builder=_builder(zm.library, zm.name, zm.site_family), family=zm.family,
                     num_classes=1000, class_names=(), input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     has_se=zm.has_se, takes_se=False, default_se=None, resize=None,
                     weights=(f"{zm.library} pretrained weights from its local cache", "user upload"),
                     description=zm.description, vanilla=zm.vanilla,
                     meta={"library": zm.library, "library_name": zm.name, "site_family": zm.site_family,
                           "se_design": zm.se_design},
                     describe=partial(library_meta, zm.arch))


_DYNAMIC_LOCK = threading.Lock()
_DYNAMIC: dict[str, ZooModel] = {}


def zoo_model(arch: str) -> ZooModel:
    """The catalog entry of ``arch``, or one made for a ``timm:<name>`` / ``torchvision:<name>`` arch."""
    if arch in ZOO:
        return ZOO[arch]
    with _DYNAMIC_LOCK:
        if arch in _DYNAMIC:
            return _DYNAMIC[arch]
    lib, _, name = arch.partition(":")
    if lib not in LIBRARY_KINDS or not name:
        raise KeyError(f"{arch!r} is not a library model; use timm:<name> or torchvision:<name>")
    if lib == "timm":
        if not _timm().is_model(name):
            raise KeyError(f"timm has no model {name!r}; see timm.list_models()")
    elif name not in _tv_models().list_models():
        raise KeyError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
    model = _build_library(lib, name, 1000)  # to learn whether it carries SE units
    has_se = any(s.gate for s in find_sites(model))
    zm = ZooModel(arch, lib, name, lib, detect_family(model) or "", has_se,  # type: ignore[arg-type]
                  f"{lib} {name} (named by the user)")
    with _DYNAMIC_LOCK:
        _DYNAMIC[arch] = zm
    return zm


def _resolve_dynamic(arch: str) -> ModelSpec | None:
    """Registry hook: a spec for ``timm:<name>`` / ``torchvision:<name>``, else None."""
    if arch.partition(":")[0] not in LIBRARY_KINDS:
        return None
    return _spec(zoo_model(arch))


for _zm in ZOO.values():
    register(_spec(_zm))
register_resolver(_resolve_dynamic)


def imagenet_pairs() -> list[PairSpec]:
    """The catalog's pairs as :class:`~se_core.models.weights.PairSpec` (registered when this module loads)."""
    out = []
    for p in ZOO_PAIRS:
        refs = []
        for arch, loc in ((p.se_arch, p.se_weights), (p.vanilla_arch, p.vanilla_weights)):
            zm = ZOO[arch]
            cmd = _timm_command(loc) if zm.library == "timm" else _tv_command(zm.name, loc)
            refs.append(WeightsRef(zm.library, loc, cmd))
        out.append(PairSpec(p.name, p.title, p.se_arch, p.vanilla_arch, refs[0], refs[1], "ImageNet-1k", p.note))
    return out


# --------------------------------------------------------------------------- weights on disk
