"""The registry as a table of measured costs, with SE overhead vs the vanilla counterpart (paper Table 2).

Parameters and multiply-adds come from :func:`spec_cost` (``FlopCounterMode``,
one image at the model's input size); nothing is typed in. ``FlopCounterMode`` counts
convolutions and matrix products only, so the SE unit's pooling, gating and channel scaling are
not in the FLOP figures (they are a few thousand operations per block).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import torch
from torch import nn

from se_core.models.registry import get_spec, list_models
from se_core.nn.se import SEConfig


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


COST_COLUMNS = ("model", "family", "has_se", "input", "params", "params_m", "gmacs", "vanilla",
                "se_params_pct", "se_gmacs_pct", "description")


def vanilla_counterpart(name: str) -> str | None:
    """The spec's declared no-SE twin when it is registered without SE; else ``None``."""
    base = get_spec(name).vanilla
    try:
        return base if base and not get_spec(base).has_se else None
    except KeyError:
        return None


def cost_table(names: list[str] | None = None) -> pd.DataFrame:
    """One row per registered model: family, input size, params, GMACs and SE overhead in % of the vanilla model."""
    names = list_models() if names is None else names
    rows = []
    for n in names:
        spec, cost = get_spec(n), spec_cost(n)
        van = vanilla_counterpart(n)
        pp = pf = math.nan
        if van is not None:
            vc = spec_cost(van)
            pp = 100.0 * (cost.params - vc.params) / vc.params
            pf = 100.0 * (cost.flops - vc.flops) / vc.flops
        rows.append({"model": n, "family": spec.family, "has_se": spec.has_se,
                     "input": f"{spec.input_size[0]}×{spec.input_size[1]}", "params": cost.params,
                     "params_m": cost.params / 1e6, "gmacs": cost.gmacs, "vanilla": van or "",
                     "se_params_pct": pp, "se_gmacs_pct": pf, "description": spec.description})
    df = pd.DataFrame(rows, columns=list(COST_COLUMNS))
    # Each vanilla model followed by its SE version, smallest first within a family.
    base = df["vanilla"].where(df["vanilla"] != "", df["model"])
    size = base.map(lambda b: spec_cost(b).params)
    order = df.assign(_b=base, _s=size).sort_values(["family", "_s", "_b", "has_se"]).index
    return df.loc[order].reset_index(drop=True)


__all__ = ["cost_table", "vanilla_counterpart"]
