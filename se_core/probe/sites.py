"""Read the squeeze descriptors z and excitation gates s of every SE unit in one forward pass.

Works on this project's :class:`~se_core.nn.se.SqueezeExcite`, torchvision's
``SqueezeExcitation`` and timm's SE modules (``SEModule``, legacy ``senet.SEModule``,
EfficientNet ``SqueezeExcite``, ...) without editing their code: the SE unit is found by
structure (a reduce conv, an expand conv and a gate child), z is the spatial mean of the
unit's input, s is the output of its gate child.

Concurrency: a Streamlit server shares one cached model between all its sessions. :func:`probe` and
:func:`intervene` (like the analyses: inspect, knock-out, class-wise statistics, attributions) run on a
pooled view of it (:func:`~se_core.probe.hooks.borrowed_view`: the same weights, its own modules,
hooks and mode), so no session waits for another's computation and the shared model is never hooked
or switched to eval. :func:`capture` hooks whatever model it is given: hooks only record calls made
on the thread that installed them and are removed in ``finally``, so nothing is left behind after an
exception.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from se_core.probe.hooks import Hook, borrowed_view, hooked, model_lock

_GATE_NAMES = ("scale_activation", "gate", "sigmoid")
_REDUCE_NAMES = ("fc1", "conv_reduce", "reduce", "se_reduce")
_EXPAND_NAMES = ("fc2", "conv_expand", "expand", "se_expand")

@dataclass(frozen=True)
class Site:
    """One place where a network recalibrates channels (or, in a vanilla net, could).

    ``name`` is the module path; ``stage`` (1-based) and ``block`` are parsed from it when it
    follows a known convention (``layer{s}.{b}``, RegNet ``block{s}.block{s}-{b}``,
    EfficientNet ``features.{s}.{b}``, timm's 0-based ``blocks.{s}.{b}``/``stages.{s}.blocks.{b}``),
    else ``stage=0`` and ``block`` = running index. ``gate`` is the gate child's name; ``None`` marks a
    vanilla site (``nn.Identity`` at the SE position) where only z exists.

    ``capture`` says which tensor of the module holds z: ``input`` (an SE unit or ``.se``
    placeholder: z is the mean of what enters it) or ``output`` (a vanilla net without
    placeholders, e.g. timm's ResNet-50, whose site is the layer *after which* its SE twin
    recalibrates, such as ``layer1.0.bn3``; see :mod:`se_core.models.zoo`).
    """

    name: str
    stage: int
    block: int
    channels: int | None
    gate: str | None
    kind: str
    capture: Literal["input", "output"] = "input"

    @property
    def label(self) -> str:
        return f"s{self.stage}.b{self.block}" if self.stage else self.name


def _child(module: nn.Module, names: Sequence[str]) -> tuple[str, nn.Module] | None:
    for n in names:
        m = getattr(module, n, None)
        if isinstance(m, nn.Module):
            return n, m
    return None


def _channels(conv: nn.Module) -> int | None:
    return getattr(conv, "in_channels", None) or getattr(conv, "in_features", None)


# (pattern, offset added to the stage index so that stages are 1-based everywhere,
#  offset added to the block index so that blocks are 0-based everywhere)
_STAGE_PATTERNS: tuple[tuple[re.Pattern[str], int, int], ...] = (
    (re.compile(r"(?:^|\.)layer(\d+)\.(\d+)(?:\.|$)"), 0, 0),                        # torchvision/timm ResNets: layer1.0
    (re.compile(r"(?:^|\.)trunk_output\.block(\d+)\.block\1-(\d+)(?:\.|$)"), 0, 0),  # torchvision RegNet: block2.block2-1
    (re.compile(r"(?:^|\.)features\.(\d+)\.(\d+)(?:\.|$)"), 0, 0),                    # torchvision EfficientNet (features.0 = stem)
    (re.compile(r"(?:^|\.)(?:blocks|stages)\.(\d+)\.(?:blocks\.)?(\d+)(?:\.|$)"), 1, 0),  # timm, 0-based stages
    (re.compile(r"(?:^|\.)s(\d+)\.b(\d+)(?:\.|$)"), 0, -1),                            # timm RegNet: s1.b1 (1-based)
)

SITES_ATTR = "se_lens_sites"
"""Attribute under which :func:`attach_sites` stores a model's site list (read by :func:`find_sites`)."""


def _stage_block(name: str, index: int) -> tuple[int, int]:
    """(1-based stage, 0-based block) parsed from a module path, else ``(0, index)``."""
    for pattern, stage_offset, block_offset in _STAGE_PATTERNS:
        m = pattern.search(name)
        if m:
            return int(m.group(1)) + stage_offset, int(m.group(2)) + block_offset
    return 0, index


def attach_sites(model: nn.Module, sites: Sequence[Site]) -> nn.Module:
    """Fix ``model``'s sites to ``sites`` (every later :func:`find_sites` returns them).

    For models whose sites cannot be found by structure alone: a vanilla ImageNet net has no
    ``.se`` placeholders, so :mod:`se_core.models.zoo` names the layers where its SE twin recalibrates
    (``capture='output'``) and attaches them here; then every page, probe and statistic sees
    them without knowing where they came from. Every name must be a module of ``model``.
    """
    names = dict(model.named_modules())
    missing = [s.name for s in sites if s.name not in names]
    if missing:
        raise ValueError(f"{type(model).__name__} has no module(s) {missing[:5]}")
    object.__setattr__(model, SITES_ATTR, tuple(sites))
    return model


def find_sites(model: nn.Module, *, attached: bool = True) -> list[Site]:
    """Every SE unit of ``model`` (and ``.se`` Identity placeholders of vanilla nets), in order.

    A site list fixed by :func:`attach_sites` takes precedence over the structural search
    (``attached=False``: the structural search only).
    """
    preset = getattr(model, SITES_ATTR, None) if attached else None
    if preset is not None:
        return list(preset)
    sites: list[Site] = []
    for name, mod in model.named_modules():
        if not name:
            continue
        gate = _child(mod, _GATE_NAMES)
        red, exp = _child(mod, _REDUCE_NAMES), _child(mod, _EXPAND_NAMES)
        if gate is not None and red is not None and exp is not None:
            kind = f"{type(mod).__module__.split('.')[0]}.{type(mod).__name__}"
            stage, block = _stage_block(name, len(sites))
            sites.append(Site(name, stage, block, _channels(red[1]), gate[0], kind))
        elif isinstance(mod, nn.Identity) and name.rsplit(".", 1)[-1] == "se":
            stage, block = _stage_block(name, len(sites))
            sites.append(Site(name, stage, block, None, None, "identity"))
    return sites


def describe_structure(model: nn.Module, limit: int = 12) -> str:
    """Short listing of module types, for messages about models with no recognisable SE unit."""
    counts: dict[str, int] = {}
    for _, m in model.named_modules():
        counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{k} x{v}" for k, v in top)


GateMode = Literal["off", "constant", "vector", "scale"]


@dataclass(frozen=True)
class Intervention:
    """Replace the gates s of one site: ``off`` (s = 1, SE switched off), ``constant``
    (s = value), ``vector`` (s = per-channel tensor broadcast over the batch), ``scale``
    (s multiplied by value)."""

    site: str
    mode: GateMode = "off"
    value: float | torch.Tensor | None = None

    def apply(self, s: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return torch.ones_like(s)
        if self.mode == "constant":
            return torch.full_like(s, float(self.value))  # type: ignore[arg-type]
        if self.mode == "scale":
            return s * float(self.value)  # type: ignore[arg-type]
        if self.mode == "vector":
            v = torch.as_tensor(self.value, dtype=s.dtype, device=s.device).reshape(-1)
            if v.numel() != s.shape[1]:
                raise ValueError(f"gate vector for {self.site} has {v.numel()} values, the site has {s.shape[1]} channels")
            return v.view(1, -1, *([1] * (s.dim() - 2))).expand_as(s).clone()
        raise ValueError(f"unknown intervention mode {self.mode!r}")


@dataclass
class ProbeResult:
    """Logits plus, per site name, z (N x C channel means of the unit's input, or of the module's
    output for ``capture='output'`` sites) and s (N x C gates; for NoSqueeze units, whose gates
    are N x C x H x W, their spatial mean)."""

    logits: torch.Tensor
    sites: list[Site]
    z: dict[str, torch.Tensor] = field(default_factory=dict)
    s: dict[str, torch.Tensor] = field(default_factory=dict)

    def gate_matrix(self, index: int = 0) -> tuple[list[Site], list[torch.Tensor]]:
        """Per SE site the gate vector of sample ``index`` (rows of a blocks x channels heatmap)."""
        keep = [st for st in self.sites if st.name in self.s]
        return keep, [self.s[st.name][index] for st in keep]


def _channel_means(x: torch.Tensor) -> torch.Tensor:
    """z of a feature map: N x C means over H x W (other shapes pass through as float)."""
    return x.detach().float().mean(dim=(2, 3)) if x.dim() == 4 else x.detach().float()


@contextmanager
def capture(model: nn.Module, sites: Sequence[Site] | None = None,
            interventions: Sequence[Intervention] = (), keep_z: bool = True,
            keep_s: bool = True) -> Iterator[ProbeResult]:
    """Context in which forwards of ``model`` on this thread record z/s into the yielded result.

    Holds :func:`model_lock` for its whole duration; hooks are removed on exit, error or not.
    ``result.logits`` is left empty: the caller runs the forward (this lets training code probe
    its own forward, and Captum run under it).
    """
    sites = list(find_sites(model) if sites is None else sites)
    by_name = dict(model.named_modules())
    iv = {i.site: i for i in interventions}
    unknown = set(iv) - {st.name for st in sites if st.gate}
    if unknown:
        raise ValueError(f"no SE gate at {sorted(unknown)}; SE sites are {[s.name for s in sites if s.gate]}")
    result = ProbeResult(torch.empty(0), sites)
    hooks = []
    for st in sites:
        if keep_z and st.capture == "output":
            def z_out_hook(mod, args, out, name=st.name):
                if isinstance(out, torch.Tensor):
                    result.z[name] = _channel_means(out)
            hooks.append(Hook(st.name, "forward", z_out_hook))
        elif keep_z:
            def z_hook(mod, args, name=st.name):
                result.z[name] = _channel_means(args[0])
            hooks.append(Hook(st.name, "forward_pre", z_hook))
        if st.gate:
            def s_hook(mod, args, out, name=st.name):
                if name in iv:
                    out = iv[name].apply(out)
                if keep_s:
                    s = out.detach().float()
                    result.s[name] = s.mean(dim=(2, 3)) if s.dim() == 4 else s.reshape(s.shape[0], -1)
                return out if name in iv else None
            hooks.append(Hook(getattr(by_name[st.name], st.gate), "forward", s_hook))
    with hooked(model, hooks):
        yield result


@torch.no_grad()
def probe(model: nn.Module, x: torch.Tensor, sites: Sequence[Site] | None = None,
          interventions: Sequence[Intervention] = ()) -> ProbeResult:
    """One forward pass of ``model`` in eval mode returning logits and z/s of every site.

    Runs on a :func:`~se_core.probe.hooks.borrowed_view` (shared weights, its own hooks), so concurrent
    probes of one cached model neither wait for each other nor touch its hooks or mode."""
    with borrowed_view(model) as view, capture(view, sites, interventions) as res:
        res.logits = view(x).float()
    return res


@torch.no_grad()
def intervene(model: nn.Module, x: torch.Tensor, interventions: Sequence[Intervention]) -> torch.Tensor:
    """Logits (eval mode) with the gates of chosen sites replaced (see :class:`Intervention`), on a borrowed view."""
    with borrowed_view(model) as view, capture(view, None, interventions, keep_z=False, keep_s=False):
        return view(x).float()


def hook_count(model: nn.Module) -> int:
    """Number of hooks registered on ``model``'s modules (tests use it to catch leaks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def pair_sites(se_sites: Sequence[Site], vanilla_sites: Sequence[Site]) -> dict[str, str]:
    """Map SE site names to vanilla site names: same name first, else same (stage, block)."""
    names = {s.name for s in vanilla_sites}
    by_pos = {(s.stage, s.block): s.name for s in vanilla_sites}
    out = {}
    for s in se_sites:
        if s.name in names:
            out[s.name] = s.name
        elif (s.stage, s.block) in by_pos:
            out[s.name] = by_pos[(s.stage, s.block)]
    return out


__all__ = ["Site", "Intervention", "ProbeResult", "find_sites", "probe", "intervene", "capture",
           "model_lock", "hook_count", "pair_sites", "describe_structure", "attach_sites", "SITES_ATTR"]
