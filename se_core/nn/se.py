"""The Squeeze-and-Excitation unit (Hu et al., TPAMI 2020) and every variant the paper ablates.

One frozen :class:`SEConfig` describes a variant; :func:`create_se` turns it into a module.
Submodule names follow ``torchvision.ops.SqueezeExcitation`` (``pool``/``fc1``/``activation``/
``fc2``/``scale_activation``) so the same probe code reads ours, torchvision's and timm's.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _nn_module

from se_core.nn.squeeze_scale import SqueezeScale

Squeeze = Literal["avg", "max", "none"]
Gate = Literal["sigmoid", "tanh", "relu"]
Integration = Literal["standard", "pre", "post", "identity"]
Site = Literal["output", "3x3"]

SQUEEZES = ("avg", "max", "none")
GATES = ("sigmoid", "tanh", "relu")
INTEGRATIONS = ("standard", "pre", "post", "identity")
SITES = ("output", "3x3")


@dataclass(frozen=True)
class SEConfig:
    """Where and how SE units are placed in a residual network.

    - ``reduction``: ratio r of paper Table 10. Hidden width is ``max(min_hidden, C // r)``:
      floor division, never below ``min_hidden`` units (nor above C), so with the default
      ``min_hidden=1`` C=16 with r=16 or r=32 both give 1 hidden unit.
    - ``min_hidden``: a floor on the hidden width, timm's convention (its ``rd_divisor=8`` gives
      SE-ResNets at least 8 units): a 1- or 2-unit bottleneck whose ReLU never fires is a
      constant gate, which ``min_hidden=8`` makes unlikely. Left out of the JSON at its default,
      so configs written before it existed (shipped checkpoints, trial ids) stay the same.
    - ``squeeze``: ``avg`` (paper default), ``max`` (Table 11), or ``none`` (NoSqueeze,
      Table 16: fc1/fc2 act as 1x1 convs on the full H x W map, no pooling).
    - ``gate``: the excitation non-linearity of Table 12 (``sigmoid``/``tanh``/``relu``).
    - ``stages``: 1-based indices of the network stages carrying SE (``None`` = all). For
      ResNet-50, stage 1 is conv2_x, so the paper's SE_Stage_2/3/4 are ``(1,)``/``(2,)``/``(3,)``.
    - ``integration``: Fig. 5 placement: ``standard`` (on the residual branch before the sum),
      ``pre`` (at the start of the residual branch), ``post`` (after sum and ReLU),
      ``identity`` (on the shortcut, in parallel with the residual branch).
    - ``site``: ``output`` (after the block's last conv+BN) or ``3x3`` (after the 3x3 conv of a
      bottleneck, Table 15; after the first 3x3 conv+BN+ReLU of a basic block). ``3x3`` is
      only defined with ``standard`` integration.
    """

    reduction: int = 16
    min_hidden: int = 1
    squeeze: Squeeze = "avg"
    gate: Gate = "sigmoid"
    stages: tuple[int, ...] | None = None
    integration: Integration = "standard"
    site: Site = "output"

    def __post_init__(self) -> None:
        if not isinstance(self.reduction, int) or isinstance(self.reduction, bool) or self.reduction < 1:
            raise ValueError(f"reduction must be an int >= 1, got {self.reduction!r}")
        if not isinstance(self.min_hidden, int) or isinstance(self.min_hidden, bool) or self.min_hidden < 1:
            raise ValueError(f"min_hidden must be an int >= 1, got {self.min_hidden!r}")
        for name, allowed in (("squeeze", SQUEEZES), ("gate", GATES),
                              ("integration", INTEGRATIONS), ("site", SITES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.stages is not None:
            try:
                stages = tuple(int(s) for s in self.stages)
            except (TypeError, ValueError):
                raise ValueError(f"stages must be a tuple of 1-based stage indices, got {self.stages!r}") from None
            if not stages or any(s < 1 for s in stages):
                raise ValueError(f"stages must be 1-based stage indices, got {self.stages!r}")
            object.__setattr__(self, "stages", tuple(sorted(set(stages))))
        if self.site == "3x3" and self.integration != "standard":
            raise ValueError("site='3x3' is only defined with integration='standard'")

    def hidden(self, channels: int) -> int:
        """Width of the bottleneck: ``max(min_hidden, channels // reduction)``, at most ``channels``."""
        return min(channels, max(self.min_hidden, channels // self.reduction))

    def in_stage(self, stage: int) -> bool:
        """Whether 1-based ``stage`` carries SE units."""
        return self.stages is None or stage in self.stages

    def to_dict(self) -> dict:
        """The one plain (JSON) form of a config, as checkpoints, run configs and tables store it:
        ``stages`` a list, ``min_hidden`` only when set (see the class docstring)."""
        d = asdict(self)
        if d["stages"] is not None:
            d["stages"] = list(d["stages"])
        if d["min_hidden"] == 1:
            del d["min_hidden"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> SEConfig:
        known = {k: d[k] for k in ("reduction", "min_hidden", "squeeze", "gate", "stages", "integration", "site") if k in d}
        if known.get("stages") is not None:
            known["stages"] = tuple(known["stages"])
        unknown = set(d) - set(known) - {"stages"}
        if unknown:
            raise ValueError(f"unknown SE config field(s): {sorted(unknown)}")
        return cls(**known)

    @classmethod
    def from_json(cls, s: str) -> SEConfig:
        return cls.from_dict(json.loads(s))

    def replace(self, **kw) -> SEConfig:
        return replace(self, **kw)

    def label(self) -> str:
        """Short human label, e.g. ``r=16 avg sigmoid all standard``."""
        st = "all" if self.stages is None else "+".join(map(str, self.stages))
        floor = f" h>={self.min_hidden}" if self.min_hidden > 1 else ""
        lab = f"r={self.reduction}{floor} {self.squeeze} {self.gate} stages={st} {self.integration}"
        return lab + (" 3x3" if self.site == "3x3" else "")


class GlobalPool(nn.Module):
    """Squeeze over H x W: ``mean`` or ``amax`` with keepdim.

    Faster than ``nn.AdaptiveAvgPool2d(1)`` on CPU (measured 25x on 8x256x56x56 fp32 here),
    which matters because the squeeze runs in every block.
    """

    def __init__(self, op: str = "avg") -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True) if self.op == "avg" else x.amax((2, 3), keepdim=True)

    def extra_repr(self) -> str:
        return self.op


_GATE_LAYERS: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hooked(modules) -> bool:
    """Whether any hook (forward or backward, a module's own or a global one) could observe or change
    what these modules compute; then only calling them as modules keeps that hook's meaning."""
    return bool(_nn_module._global_forward_hooks or _nn_module._global_forward_pre_hooks
                or _nn_module._global_backward_hooks or _nn_module._global_backward_pre_hooks
                or any(getattr(m, d) for m in modules for d in _HOOK_DICTS))


class SqueezeExcite(nn.Module):
    """SE unit: s = gate(fc2(relu(fc1(squeeze(x))))); returns x * s.

    fc1/fc2 are 1x1 convolutions (as in torchvision), which equal fully connected layers on
    the pooled C x 1 x 1 descriptor and become the paper's NoSqueeze 1x1 convs on the full
    map when ``squeeze='none'``. Parameters: 2*C*h weights + (h + C) biases, h = C // r.

    Speed: on the pooled descriptor the 1x1 convs run as matrix products on N x C (``F.linear``
    on their weights viewed as h x C: same parameters, same state-dict keys), and an average
    squeeze trains through :class:`~se_core.nn.squeeze_scale.SqueezeScale`. While any hook (forward
    or backward) sits on a child, plain autograd runs through the children called as modules, so
    the hook sees and changes what it always did and gradients follow what the forward computed.
    """

    def __init__(self, channels: int, config: SEConfig = SEConfig()) -> None:
        super().__init__()
        hidden = config.hidden(channels)
        self.channels = channels
        self.config = config
        self.pool: nn.Module = nn.Identity() if config.squeeze == "none" else GlobalPool(config.squeeze)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.activation = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.scale_activation = _GATE_LAYERS[config.gate]()

    def excite(self, z: torch.Tensor, *, hooks: bool = True) -> torch.Tensor:
        """Gates N x C x 1 x 1 from pooled descriptors z (N x C), the FC layers as matrix products.

        The activations are called as modules, so probe hooks on the gate read s and interventions
        replace it with the numbers unchanged; fc1/fc2 run as their 1x1 convs only while hooked
        (pruning, a layer hook). ``hooks=False`` is the pure function of z and the weights that
        :class:`SqueezeScale` re-runs in backward, where no hook installed since may be reached.
        """
        def call(m: nn.Module, t: torch.Tensor) -> torch.Tensor:
            return m(t) if hooks else m.forward(t)

        def fc(conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
            if hooks and _hooked((conv,)):
                return conv(t[:, :, None, None]).flatten(1)
            return F.linear(t, conv.weight.flatten(1), conv.bias)

        s = fc(self.fc2, call(self.activation, fc(self.fc1, z)))
        return call(self.scale_activation, s.view(*s.shape, 1, 1))

    def _excite_pure(self, z: torch.Tensor) -> torch.Tensor:
        return self.excite(z, hooks=False)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """The gates s that :meth:`forward` multiplies x by (N x C x 1 x 1; N x C x H x W for NoSqueeze)."""
        if self.config.squeeze == "none":
            return self.scale_activation(self.fc2(self.activation(self.fc1(x))))
        return self.excite(self.pool(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.config.squeeze == "avg" and torch.is_grad_enabled() and not torch.compiler.is_compiling()
                and not _hooked(self.children())):
            return SqueezeScale.apply(x, self._excite_pure, self.fc1.weight, self.fc1.bias, self.fc2.weight,
                                      self.fc2.bias)
        return x * self.scale(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, {self.config.label()}"


def create_se(kind: str | None, channels: int, config: SEConfig | None = None) -> nn.Module:
    """String factory in the spirit of ``timm.layers.create_attn``: ``'se'`` or ``None``/``''``.

    ``None`` gives ``nn.Identity`` so vanilla and SE networks share module names (``.se``)
    and probe sites line up one to one.
    """
    if not kind:
        return nn.Identity()
    if kind == "se":
        return SqueezeExcite(channels, config or SEConfig())
    raise ValueError(f"unknown attention kind {kind!r}; known: 'se', None")


def se_param_count(channels: int, config: SEConfig = SEConfig()) -> int:
    """Analytic parameter count of one SE unit: 2*C*h + h + C (weights + biases)."""
    h = config.hidden(channels)
    return 2 * channels * h + h + channels


__all__ = ["SEConfig", "SqueezeExcite", "create_se", "se_param_count"]
