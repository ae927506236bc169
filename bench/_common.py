"""Shared helpers for bench scripts: interleaved timing so both sides see the same machine load."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved A, B, A, B, ... after warm-up."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def machine() -> str:
    from se_core.util.provenance import hardware
    return hardware()


# ------------------------------------------------------------------ SE units to compare against ours
def _se_unit():
    from se_core.nn.se import SqueezeExcite

    return SqueezeExcite


def swap_se(model: nn.Module, make: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Replace every SqueezeExcite of ``model`` by ``make(unit)`` (same place, same widths)."""
    unit_type = _se_unit()
    for mod in list(model.modules()):
        for child_name, child in list(mod.named_children()):
            if type(child) is unit_type:
                setattr(mod, child_name, make(child))
    return model


def plain(unit: nn.Module) -> nn.Module:
    """Our unit in the formulation before ``se_core.nn.squeeze_scale``: its child modules (1x1 convs on
    N x C x 1 x 1), autograd through mean and x * s (same weights)."""
    class PlainSE(_se_unit()):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale_activation(self.fc2(self.activation(self.fc1(x.mean((2, 3), keepdim=True)))))

    new = PlainSE(unit.channels, unit.config)
    new.load_state_dict(unit.state_dict())
    return new


def timm_se(unit: nn.Module) -> nn.Module:
    """timm's ``SEModule`` with our unit's widths."""
    from timm.layers import SEModule

    return SEModule(unit.channels, rd_channels=unit.fc1.out_channels)
