"""Model registry: name -> builder, labels, input size, normalization, and where weights come from.

Like torchvision's, it refuses duplicate names and lists models by glob pattern. Params and
FLOPs are measured by ``torch.utils.flop_counter.FlopCounterMode`` (never hand-counted).
"""
from __future__ import annotations

import fnmatch
import os
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from se_core.checkpoints import CheckpointError, CheckpointMeta, load_into, read_checkpoint
from se_core.se import SEConfig

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, feed and label one architecture.

    ``builder(num_classes=..., se=SEConfig|None)`` returns a randomly initialised model;
    ``takes_se`` says whether the builder honours ``se`` (our ResNets) or the architecture
    fixes it (timm/torchvision models). ``weights`` lists where trained weights come from.
    ``vanilla`` names the registered architecture that is this one without its SE units (empty
    when there is none; RegNetX is not RegNetY minus SE), so SE overhead is measured, not guessed.
    """

    name: str
    builder: Builder
    family: str
    num_classes: int
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    has_se: bool
    takes_se: bool = False
    default_se: SEConfig | None = None
    resize: int | None = None
    weights: tuple[str, ...] = ()
    description: str = ""
    vanilla: str = ""
    meta: dict = field(default_factory=dict)

    def build(self, se: SEConfig | None = None, num_classes: int | None = None) -> nn.Module:
        kw: dict = {"num_classes": num_classes or self.num_classes}
        if self.takes_se:
            kw["se"] = se if se is not None else self.default_se
        elif se is not None:
            raise ValueError(f"{self.name} fixes its own SE design; an SE config cannot be applied to it")
        return self.builder(**kw)


_REGISTRY: dict[str, ModelSpec] = {}
_RESOLVERS: list[Callable[[str], "ModelSpec | None"]] = []
_RESOLVE_LOCK = threading.Lock()


def register_resolver(fn: Callable[[str], "ModelSpec | None"]) -> None:
    """Add a function that makes specs on demand for names not registered up front (e.g. the zoo's
    ``timm:<name>`` / ``torchvision:<name>``); it returns ``None`` for names it does not handle."""
    _RESOLVERS.append(fn)


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec``; a second registration of the same name is an error, not an overwrite."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``: registered, or made by a resolver (then cached, but not listed)."""
    spec = _REGISTRY.get(name) or _DYNAMIC.get(name)
    if spec is not None:
        return spec
    for fn in _RESOLVERS:
        try:
            made = fn(name)
        except KeyError as e:
            raise KeyError(e.args[0] if e.args else str(e)) from None
        if made is not None:
            with _RESOLVE_LOCK:
                return _DYNAMIC.setdefault(name, made)
    raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))} "
                   "(any timm or torchvision classifier can be named as timm:<name> or torchvision:<name>)")


_DYNAMIC: dict[str, ModelSpec] = {}


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a glob ``pattern`` (e.g. ``'*resnet*'``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def _cifar(depth: int) -> Builder:
    def build(num_classes: int = 10, se: SEConfig | None = None) -> nn.Module:
        from se_core.models.resnet import cifar_resnet
        return cifar_resnet(depth, se, num_classes)
    return build


def _resnet50(num_classes: int = 1000, se: SEConfig | None = None) -> nn.Module:
    from se_core.models.resnet import resnet50
    return resnet50(se, num_classes)


for _d in (20, 32, 44, 56, 110):
    for _se in (False, True):
        register(ModelSpec(
            name=f"{'se_' if _se else ''}resnet{_d}_cifar", builder=_cifar(_d), family="cifar_resnet",
            num_classes=10, class_names=CIFAR10_CLASSES, input_size=(32, 32), mean=CIFAR10_MEAN,
            std=CIFAR10_STD, has_se=_se, takes_se=True, default_se=SEConfig() if _se else None,
            weights=("shipped file in data/checkpoints", "user upload"), vanilla=f"resnet{_d}_cifar" if _se else "",
            description=f"He et al. CIFAR ResNet-{_d} (option A shortcuts){', SE r=16 on every block' if _se else ''}"))
for _se in (False, True):
    register(ModelSpec(
        name=f"{'se_' if _se else ''}resnet50_tv", builder=_resnet50, family="resnet50", num_classes=1000,
        class_names=(), input_size=(224, 224), resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, has_se=_se,
        takes_se=True, default_se=SEConfig() if _se else None, weights=("user upload", "torchvision resnet50 weights (vanilla)"),
        vanilla="resnet50_tv" if _se else "",
        description="torchvision ResNet-50 with this project's SE unit" if _se else "torchvision ResNet-50"))


def build_from_checkpoint(path: str | os.PathLike, arch: str | None = None, se: SEConfig | None = None, *,
                          num_classes: int | None = None,
                          class_names: tuple[str, ...] | None = None) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode, CPU).

    The single entry point for checkpoint files (dashboard uploads, ``evaluate``/``stats`` CLIs).
    ``arch``/``se``/``num_classes``/``class_names`` fill in what a file without SE Lens metadata
    lacks: ``se`` defaults to the architecture's default SE design, ``num_classes`` to the row
    count of the file's classifier weight, class names and preprocessing to the architecture's
    (for timm/torchvision models: the library's metadata and eval transform). Shapes are checked
    before loading and every mismatch is named.
    """
    state, meta = read_checkpoint(path)
    name = os.path.basename(path)
    if meta is None:
        if arch is None:
            raise CheckpointError(f"{name} has no SE Lens metadata; choose its architecture (and SE config) "
                                  "explicitly (CLI: --arch NAME)")
        try:
            spec = get_spec(arch)
        except KeyError as e:
            raise CheckpointError(str(e.args[0])) from None
        if se is not None and not spec.takes_se:
            raise CheckpointError(f"{arch} fixes its own SE design; an SE config cannot be applied to it")
        se_used = (se if se is not None else spec.default_se) if spec.takes_se else None
        try:
            model = spec.build(se_used, num_classes=num_classes or spec.num_classes)
            n = num_classes or _classifier_rows(model, state)
            if n and n != _outputs(model):
                model = spec.build(se_used, num_classes=n)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{name}: {arch} cannot be built with these settings ({e})") from None
        n = _outputs(model) or spec.num_classes
        lib_meta = spec.meta.get("library_meta")
        if lib_meta is not None:
            meta = lib_meta(model)
        else:
            meta = CheckpointMeta(arch=arch, se_config=None if se_used is None else _se_dict(se_used), num_classes=n,
                                  class_names=spec.class_names if len(spec.class_names) == n else (),
                                  mean=spec.mean, std=spec.std, input_size=spec.input_size)
        if class_names is not None:
            if len(class_names) != meta.num_classes:
                raise CheckpointError(f"{name}: {len(class_names)} class names given for a model with "
                                      f"{meta.num_classes} outputs; give one name per output")
            meta = replace(meta, class_names=tuple(class_names))
        meta = replace(meta, provenance={"note": "file without SE Lens metadata; architecture, SE config and class "
                                                 "names chosen by the user", **meta.provenance})
    else:
        try:
            spec = get_spec(meta.arch)
        except KeyError as e:
            raise CheckpointError(str(e.args[0])) from None
        try:
            se_cfg = SEConfig.from_dict(meta.se_config) if meta.se_config else None
            model = spec.build(se_cfg if spec.takes_se else None, num_classes=meta.num_classes)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{name}: its metadata describes a model that cannot be built ({e}); "
                                  "re-save it with se_core.checkpoints.save_checkpoint") from None
    load_into(model, state, what=name)
    return model.eval(), meta


def _classifier(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` (the classifier of every registered architecture)."""
    found = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            found = (n, m)
    return found


def _outputs(model: nn.Module) -> int:
    c = _classifier(model)
    return int(c[1].out_features) if c else 0


def _classifier_rows(model: nn.Module, state: dict) -> int | None:
    """Rows of the file's classifier weight, when the file has the model's classifier key."""
    c = _classifier(model)
    w = state.get(f"{c[0]}.weight") if c else None
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() == 2 else None


def _se_dict(se: SEConfig) -> dict:
    import json
    return json.loads(se.to_json())


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int  # FlopCounterMode count (2 x multiply-adds)

    @property
    def gmacs(self) -> float:
        """Multiply-adds in billions, the unit the SE paper calls GFLOPs."""
        return self.flops / 2e9


def measure_cost(model: nn.Module, input_size: tuple[int, int]) -> Cost:
    """Parameters and forward FLOPs of one image, counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, 3, *input_size))
    model.train(was_training)
    return Cost(params, int(fc.get_total_flops()))


@lru_cache(maxsize=64)
def spec_cost(name: str, se_json: str | None = None) -> Cost:
    """Cached :func:`measure_cost` of a registered model (default or given SE config)."""
    spec = get_spec(name)
    se = SEConfig.from_json(se_json) if se_json else None
    return measure_cost(spec.build(se), spec.input_size)


# timm / torchvision ImageNet models (registered by the zoo; the libraries themselves load lazily)
import se_core.zoo  # noqa: E402,F401
