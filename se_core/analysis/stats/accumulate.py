"""One streaming pass over a data set that fills :class:`~se_core.analysis.stats.model.ExcitationStats` (exact integer-limb sums)."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from se_core.analysis.stats.model import (
    DEFAULT_BINS,
    LIMB_SCALES,
    N_LIMBS,
    RELU_MAX,
    ExcitationStats,
    Progress,
    SiteInfo,
    StatsCancelled,
    StatsError,
    StopCheck,
    gate_range,
)
from se_core.data.datasets import BatchStream, ImageSet
from se_core.probe.hooks import borrowed_view
from se_core.probe.sites import capture, describe_structure, find_sites


class _Accumulator:
    """Torch accumulators on the model's device; whole-batch vectorized updates."""

    def __init__(self, gate_sites: Sequence[SiteInfo], z_sites: Sequence[SiteInfo], k: int, bins: int,
                 device: torch.device) -> None:
        self.gate_sites, self.z_sites, self.k, self.bins, self.device = list(gate_sites), list(z_sites), k, bins, device
        f64 = dict(dtype=torch.float64, device=device)
        self.count = torch.zeros(k, dtype=torch.int64, device=device)
        self.s_sum = {s.name: torch.zeros(k, N_LIMBS, s.channels, **f64) for s in gate_sites}
        self.s_sumsq = {s.name: torch.zeros(k, N_LIMBS, s.channels, **f64) for s in gate_sites}
        self.s_hist = {s.name: torch.zeros(k, s.channels, bins + 2, dtype=torch.int64, device=device) for s in gate_sites}
        self.z_sum = {s.name: torch.zeros(k, N_LIMBS, s.channels, **f64) for s in z_sites}
        self.z_sumsq = {s.name: torch.zeros(k, N_LIMBS, s.channels, **f64) for s in z_sites}
        self._arange = {c: torch.arange(c, device=device) for c in {s.channels for s in gate_sites}}

    @staticmethod
    def _limbs(v: torch.Tensor) -> torch.Tensor:
        """N x C float64 -> N x L x C limbs on the grids 1, 2**-26, 2**-52 (each subtraction is exact)."""
        out, rest = [], v
        for scale in LIMB_SCALES:
            limb = torch.round(rest * scale).div_(scale)
            out.append(limb)
            rest = rest - limb
        return torch.stack(out, 1)

    @classmethod
    def _moments(cls, v: torch.Tensor, y: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor) -> None:
        v = v.double()  # float32 gates: v*v is exact in float64 (48 significant bits)
        total.index_add_(0, y, cls._limbs(v))
        total_sq.index_add_(0, y, cls._limbs(v * v))

    def update(self, s: Mapping[str, torch.Tensor], z: Mapping[str, torch.Tensor], y: torch.Tensor) -> None:
        ones = torch.ones_like(y)
        self.count.index_add_(0, y, ones)
        for st in self.gate_sites:
            v = s[st.name]
            self._moments(v, y, self.s_sum[st.name], self.s_sumsq[st.name])
            b = (v.double() - st.lo).mul_(self.bins / (st.hi - st.lo)).floor_().nan_to_num_(nan=float(self.bins))
            b = b.clamp_(-1, self.bins).long().add_(1)
            flat = (y[:, None] * st.channels + self._arange[st.channels][None, :]) * (self.bins + 2) + b
            self.s_hist[st.name].view(-1).index_add_(0, flat.view(-1), torch.ones_like(flat.view(-1)))
        for st in self.z_sites:
            self._moments(z[st.name], y, self.z_sum[st.name], self.z_sumsq[st.name])

    def tensors(self) -> list[torch.Tensor]:
        out = [self.count]
        for d in (self.s_sum, self.s_sumsq, self.s_hist, self.z_sum, self.z_sumsq):
            out += [d[k] for k in sorted(d)]
        return out

    def finish(self, classes: tuple[str, ...], meta: dict) -> ExcitationStats:
        def np_(d: dict) -> dict:
            return {k: v.cpu().numpy().copy() for k, v in d.items()}

        return ExcitationStats(classes, self.count.cpu().numpy().copy(), tuple(self.gate_sites), tuple(self.z_sites),
                               np_(self.s_sum), np_(self.s_sumsq), np_(self.s_hist), np_(self.z_sum),
                               np_(self.z_sumsq), self.bins, meta)


def describe_sites(model: nn.Module, input_size: tuple[int, int], relu_max: float = RELU_MAX,
                   device: torch.device | str = "cpu") -> tuple[list[SiteInfo], list[SiteInfo]]:
    """(gate sites, z sites) of ``model`` with channel counts read from one dry forward of a zero image."""
    sites = find_sites(model)
    if not sites:
        raise StatsError(f"no SE unit or .se placeholder found in {type(model).__name__} "
                         f"({describe_structure(model)}); statistics need SE-style sites")
    with torch.no_grad(), borrowed_view(model) as view, capture(view, sites) as res:
        view(torch.zeros(1, 3, *input_size, device=device))
    modules = dict(model.named_modules())
    gates, zs = [], []
    for depth, st in enumerate(sites):
        if st.name not in res.z:
            continue
        c = int(res.z[st.name].shape[1])
        zs.append(SiteInfo(st.name, st.label, st.stage, st.block, depth, c))
        if st.gate and st.name in res.s:
            kind, lo, hi = gate_range(getattr(modules[st.name], st.gate), relu_max)
            gates.append(SiteInfo(st.name, st.label, st.stage, st.block, depth, int(res.s[st.name].shape[1]), kind, lo, hi))
    return gates, zs


@torch.no_grad()
def compute_stats(model: nn.Module, data: ImageSet, mean: Sequence[float], std: Sequence[float], *,
                  batch_size: int = 500, bins: int = DEFAULT_BINS, relu_max: float = RELU_MAX,
                  device: torch.device | str = "cpu", rank: int = 0, world: int = 1,
                  progress: Progress | None = None, should_stop: StopCheck | None = None,
                  channels_last: bool = False) -> ExcitationStats:
    """One pass of ``model`` over ``data`` (this rank's shard when ``world > 1``, all-reduced after).

    ``progress(done, total)`` is called after every batch; ``should_stop()`` is checked between
    batches and raises :class:`StatsCancelled` when true. The pass runs on a borrowed view in eval mode
    (shared weights, its own hooks), so the shared model is neither locked nor switched to eval.
    """
    if bins < 1:
        raise StatsError(f"bins must be >= 1, got {bins}")
    device = torch.device(device)
    t0 = time.perf_counter()
    h, w = int(data.images.shape[1]), int(data.images.shape[2])
    gate_sites, z_sites = describe_sites(model, (h, w), relu_max, device)
    k = len(data.classes)
    acc = _Accumulator(gate_sites, z_sites, k, bins, device)
    stream = BatchStream(data, batch_size, mean, std, train=False, rank=rank, world=world, channels_last=channels_last)
    total = len(stream)
    names = {s.name for s in z_sites}
    sites = [s for s in find_sites(model) if s.name in names]
    with borrowed_view(model) as view, capture(view, sites) as res:
        for i, (x, y) in enumerate(stream):
            if should_stop is not None and should_stop():
                raise StatsCancelled(f"stopped after {i} of {total} batches")
            view(x.to(device, non_blocking=True))
            acc.update(res.s, res.z, y.to(device))
            if progress is not None:
                progress(i + 1, total)
    if world > 1:
        import torch.distributed as dist
        for t in acc.tensors():
            dist.all_reduce(t)
    meta = {"data": {"name": data.name, "digest": data.digest, "n": len(data)}, "bins": bins, "relu_max": relu_max,
            "world": world, "device": str(device), "batch_size": batch_size,
            "wall_time_s": round(time.perf_counter() - t0, 3)}
    out = acc.finish(tuple(data.classes), meta)
    for what, sums in (("gates s", out.s_sum), ("gates s", out.s_sumsq), ("squeeze z", out.z_sum),
                       ("squeeze z", out.z_sumsq)):
        bad = [name for name, a in sums.items() if not np.isfinite(a).all()]
        if bad:  # such a file could never be loaded again (load_stats refuses non-finite sums)
            raise StatsError(f"the model produced NaN or infinite {what} at {bad[0]} (a diverged or damaged "
                             "checkpoint); statistics need finite values")
    out.meta["sums_exact"] = out.sums_exact
    return out


# --------------------------------------------------------------------------- provenance, save / load
