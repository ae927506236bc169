"""timm and torchvision, imported only when first used (the dashboard starts without them)."""
from __future__ import annotations

from typing import Any

from torch import nn


def _timm():
    import timm

    return timm


def _tv_models():
    import torchvision.models as tvm

    return tvm


def tv_weights(location: str) -> Any:
    """The torchvision weights enum member named ``location`` (e.g. ``RegNet_Y_400MF_Weights.IMAGENET1K_V2``)."""
    try:
        return _tv_models().get_weight(location)
    except (ValueError, KeyError, AttributeError) as e:
        raise KeyError(f"torchvision has no weights {location!r} ({e})") from None


def timm_cfg(tag: str) -> Any:
    """timm's pretrained config of ``name.tag`` (no network: it is part of timm's code)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(tag)
    if cfg is None:
        raise KeyError(f"timm has no pretrained weights named {tag!r}; see timm.list_pretrained()")
    return cfg


def _build_library(library: str, name: str, num_classes: int) -> nn.Module:
    """A randomly initialised library model (never ``pretrained=True``/``weights=...``)."""
    if library == "timm":
        return _timm().create_model(name, pretrained=False, num_classes=num_classes)
    return _tv_models().get_model(name, weights=None, num_classes=num_classes)


# --------------------------------------------------------------------------- sites
