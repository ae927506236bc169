"""Model registry: name -> builder, labels, input size, normalization, and where weights come from.

Like timm's ``_registry.py`` it imports nothing but its own types: model families push themselves
in (:mod:`se_core.models.builtin`, :mod:`se_core.models.zoo`), and :mod:`se_core.models` (the
package) is the composition root that imports them. Like torchvision's, it refuses duplicate
names and lists models by glob pattern.
"""
from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from se_core.nn.se import SEConfig

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
    describe: Callable[[nn.Module], object] | None = None
    """How a built model of this spec describes itself (labels, preprocessing: a ``CheckpointMeta``) when
    no checkpoint does; ``None`` = from the fields above. Library models read their library's metadata."""

    def build(self, se: SEConfig | None = None, num_classes: int | None = None) -> nn.Module:
        kw: dict = {"num_classes": num_classes or self.num_classes}
        if self.takes_se:
            kw["se"] = se if se is not None else self.default_se
        elif se is not None:
            raise ValueError(f"{self.name} fixes its own SE design; an SE config cannot be applied to it")
        return self.builder(**kw)


_REGISTRY: dict[str, ModelSpec] = {}
_RESOLVERS: list[Callable[[str], ModelSpec | None]] = []
_RESOLVE_LOCK = threading.Lock()


def register_resolver(fn: Callable[[str], ModelSpec | None]) -> None:
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
