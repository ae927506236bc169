"""The natural vanilla twin of a library SE model, and the library's own weights for a model.

A user who brings ``timm:seresnet18`` expects ``timm:resnet18`` beside it, not a CIFAR network:
the same library, the same family, the SE units taken out. The mapping follows the libraries'
naming (timm's ``se``/``legacy_se`` prefixes, MobileNetV3's ``minimal`` variants without SE);
where a library has no such twin, none is claimed.
"""
from __future__ import annotations

import re

from se_core.models.weights import WeightsRef
from se_core.models.zoo.catalog import ZOO, _timm_command, _tv_command
from se_core.models.zoo.library import _timm, _tv_models

_TIMM_RULES = (
    (re.compile(r"^legacy_se(res(?:net|next)\w*)$"), r"\1"),
    (re.compile(r"^se(res(?:net|next)\w*)$"), r"\1"),
    (re.compile(r"^(?:tf_)?mobilenetv3_(small|large)_\d+$"), r"tf_mobilenetv3_\1_minimal_100"),
)
_TV_TWINS = {"mobilenet_v3_small": "mobilenet_v2", "mobilenet_v3_large": "mobilenet_v2"}


def twin_of(arch: str) -> str | None:
    """The registry name of ``arch``'s vanilla twin (``timm:seresnet18`` → ``timm:resnet18``), or None."""
    if arch in ZOO:
        return ZOO[arch].vanilla or None
    lib, _, name = arch.partition(":")
    if lib == "timm":
        timm = _timm()
        for pattern, repl in _TIMM_RULES:
            if pattern.match(name):
                twin = pattern.sub(repl, name)
                return f"timm:{twin}" if timm.is_model(twin) else None
    elif lib == "torchvision" and name in _TV_TWINS and _TV_TWINS[name] in _tv_models().list_models():
        return f"torchvision:{_TV_TWINS[name]}"
    return None


def default_weights(arch: str) -> WeightsRef | None:
    """The library's default ImageNet weights of a ``timm:``/``torchvision:`` model (what its
    ``pretrained=True`` would load), or None when the library publishes none."""
    lib, _, name = arch.partition(":")
    if lib == "timm":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        tag = getattr(cfg, "tag", None) if cfg is not None else None
        if not tag:
            return None
        return WeightsRef("timm", f"{name}.{tag}", _timm_command(f"{name}.{tag}"))
    if lib == "torchvision":
        try:
            enum = _tv_models().get_model_weights(name)
        except (ValueError, KeyError):
            return None
        w = enum.DEFAULT
        loc = f"{type(w).__name__}.{w.name}"
        return WeightsRef("torchvision", loc, _tv_command(name, loc))
    return None
