"""Where the probes sit in a library model: its SE units, or the matching places of a model without them."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from se_core.models.zoo.catalog import MOBILE_FAMILIES, PROBE_SIZE
from se_core.probe.hooks import Hook, hooked
from se_core.probe.sites import Site, _stage_block, attach_sites, find_sites

_CONV_NORM_ACT = ("Conv2dNormActivation", "ConvNormAct", "ConvBnAct")
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.Identity)


def _depthwise_sites(model: nn.Module) -> list[str]:
    """The activated output of every depthwise conv (where an MBConv's SE unit would sit)."""
    out = []
    mods = dict(model.named_modules())
    for name, m in model.named_modules():
        if not (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels):
            continue
        parent_name, _, idx = name.rpartition(".")
        parent = mods.get(parent_name)
        if parent is None:
            continue
        if type(parent).__name__ in _CONV_NORM_ACT:
            out.append(parent_name)  # conv + norm + activation as one module: its output
            continue
        children = list(parent.named_children())
        i = [k for k, _ in children].index(idx)
        after = children[i + 1: i + 3]  # the norm, then (if it is one) the activation
        pick = after[1] if len(after) == 2 and isinstance(after[1][1], _ACTIVATIONS) else after[0] if after else None
        if pick is not None:
            out.append(f"{parent_name}.{pick[0]}" if parent_name else pick[0])
    return out


def detect_family(model: nn.Module) -> str | None:
    """Site family of a vanilla net by its module names: ResNet, RegNet (both libraries), mobile, or None."""
    names = [n for n, _ in model.named_modules()]
    if any(re.fullmatch(r"trunk_output\.block\d+\.block\d+-\d+\.f\.b", n) for n in names):
        return "tv_regnet"
    if any(re.fullmatch(r"s\d+\.b\d+\.conv2", n) for n in names):
        return "timm_regnet"
    if any(re.fullmatch(r"layer\d+\.\d+\.bn[23]", n) for n in names):
        return "timm_resnet"
    if _depthwise_sites(model):
        return "mobile"
    return None


def _vanilla_site_names(model: nn.Module, family: str | None) -> list[str]:
    names = [n for n, _ in model.named_modules()]
    family = family or detect_family(model)
    if family == "timm_resnet":
        blocks = [n for n in names if re.fullmatch(r"layer\d+\.\d+", n)]
        have = set(names)
        return [f"{b}.bn3" if f"{b}.bn3" in have else f"{b}.bn2" for b in blocks if f"{b}.bn3" in have or f"{b}.bn2" in have]
    if family == "tv_regnet":
        return [n for n in names if re.fullmatch(r"trunk_output\.block\d+\.block\d+-\d+\.f\.b", n)]
    if family == "timm_regnet":
        return [n for n in names if re.fullmatch(r"s\d+\.b\d+\.conv2", n)]
    if family in MOBILE_FAMILIES:
        return _depthwise_sites(model)
    return []


def _shapes(model: nn.Module, sites: Sequence[Site], size: int = PROBE_SIZE) -> dict[str, tuple[int, int]]:
    """(channels, height) of each site's z tensor on one dummy ``size`` x ``size`` input."""
    seen: dict[str, tuple[int, int]] = {}
    flags = [(m, m.training) for m in model.modules()]
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))

    def rec(t: Any, name: str) -> None:
        if isinstance(t, torch.Tensor) and t.dim() == 4:
            seen[name] = (int(t.shape[1]), int(t.shape[2]))

    hooks = [Hook(st.name, "forward", lambda m, a, o, n=st.name: rec(o, n)) if st.capture == "output"
             else Hook(st.name, "forward_pre", lambda m, a, n=st.name: rec(a[0], n)) for st in sites]
    with hooked(model, hooks):
        try:
            model.eval()
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size, device=dev))
        except Exception:  # noqa: BLE001 - a model that cannot run at this size keeps name-based labels
            seen.clear()
        finally:
            for m, t in flags:
                m.training = t
    return seen


def _structural(model: nn.Module) -> list[Site]:
    """SE units found by structure, ignoring any attached site list."""
    return [s for s in find_sites(model, attached=False) if s.gate]


def vanilla_sites(model: nn.Module, family: str | None = None) -> list[Site]:
    """Where a vanilla net of ``family`` (``None``: detected) would carry SE units: ``gate=None``,
    ``capture='output'`` (z = channel means of that module's output), labelled like its SE twin's."""
    mods = dict(model.named_modules())
    sites = [Site(n, *_stage_block(n, i), None, None, f"vanilla.{type(mods[n]).__name__}", "output")
             for i, n in enumerate(_vanilla_site_names(model, family))]
    return _labelled(model, sites, family)


def model_sites(model: nn.Module, family: str | None = None) -> list[Site]:
    """SE sites (found by structure) of an SE net, else :func:`vanilla_sites`; labelled and sized.

    Mobile families are relabelled by resolution: stage = log2(output stride), block = index
    at that stride, so blocks of two different mobile nets correspond by position.
    """
    se = _structural(model)
    return _labelled(model, se, family) if se else vanilla_sites(model, family)


def _labelled(model: nn.Module, sites: list[Site], family: str | None) -> list[Site]:
    if not sites:
        return []
    shapes = _shapes(model, sites)
    family = family or detect_family(model)
    out, per_stage = [], {}
    for s in sites:
        ch, h = shapes.get(s.name, (s.channels, 0))
        stage, block = s.stage, s.block
        if (family in MOBILE_FAMILIES or stage == 0) and h:
            stage = max(1, round(math.log2(PROBE_SIZE / h)))
            block = per_stage.get(stage, 0)
            per_stage[stage] = block + 1
        out.append(Site(s.name, stage, block, s.channels or ch, s.gate, s.kind, s.capture))
    return out


def prepare_sites(model: nn.Module, family: str | None = None) -> nn.Module:
    """Attach :func:`model_sites` to ``model`` (see :func:`se_core.probe.sites.attach_sites`)."""
    sites = model_sites(model, family)
    if sites:
        attach_sites(model, sites)
    return model


# --------------------------------------------------------------------------- registry
