"""Per-image gate vectors s and squeeze descriptors z of one model on a data set, in one streaming pass.

The class-wise statistics (:mod:`se_core.analysis.stats`) keep moments, never images; a map of gate space,
the per-image spread and top channels on a selection need each image's vector. They are kept compactly,
N x C float16 per site, for at most ``max_images`` evenly spaced images of the data set, so a sample's size
is bounded whatever the data set. float16 holds 3 significant digits, and a gate near 1 that moves by
1e-5 (a nearly frozen block) would round to a constant: so what is stored is each value's deviation from
a per-channel float32 offset (the first batch's mean), which keeps 3 digits of the deviation itself.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from se_core.analysis.stats.accumulate import describe_sites
from se_core.analysis.stats.model import Progress, SiteInfo, StatsCancelled, StatsError, StopCheck
from se_core.data.datasets import BatchStream, ImageSet
from se_core.probe.hooks import borrowed_view
from se_core.probe.sites import capture, find_sites

What = Literal["s", "z"]
MAX_SAMPLE_MB = 64.0
"""Largest size (float16 arrays) of one model's sample; more images than fit are thinned evenly."""
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class GateSample:
    """Per-image s (gate sites) and z (every site) of one model: ``index`` are the images' positions in the
    data set, ``labels`` their classes; ``s``/``z`` map a site name to an N x C float16 array of deviations
    from ``s_offset``/``z_offset`` (C float32 per site; absent: zero), see :meth:`values`."""

    classes: tuple[str, ...]
    index: np.ndarray
    labels: np.ndarray
    gate_sites: tuple[SiteInfo, ...]
    z_sites: tuple[SiteInfo, ...]
    s: Mapping[str, np.ndarray]
    z: Mapping[str, np.ndarray]
    s_offset: Mapping[str, np.ndarray] = field(default_factory=dict)
    z_offset: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(len(self.labels))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sites(self, what: What) -> tuple[SiteInfo, ...]:
        """The sites that have ``what`` (gate sites for s, every site for z), in depth order."""
        return self.gate_sites if what == "s" else self.z_sites

    def site(self, name: str) -> SiteInfo:
        for s in self.gate_sites + self.z_sites:
            if s.name == name:
                return s
        raise KeyError(f"no site {name!r}; sites: {[s.name for s in self.z_sites]}")

    def values(self, what: What, site: str) -> np.ndarray:
        """N x C float64 values of ``what`` at ``site`` (offset + stored deviation)."""
        out = np.asarray((self.s if what == "s" else self.z)[site], dtype=np.float64)
        offset = (self.s_offset if what == "s" else self.z_offset).get(site)
        return out if offset is None else out + np.asarray(offset, dtype=np.float64)

    @property
    def nbytes(self) -> int:
        arrays = (*self.s.values(), *self.z.values(), *self.s_offset.values(), *self.z_offset.values())
        return int(sum(a.nbytes for a in arrays))


def bytes_per_image(gate_sites: Sequence[SiteInfo], z_sites: Sequence[SiteInfo]) -> int:
    """float16 bytes one image adds to a sample."""
    return 2 * (sum(s.channels for s in gate_sites) + sum(s.channels for s in z_sites))


def sample_indices(n_total: int, per_image: int, max_images: int | None = None,
                   max_mb: float = MAX_SAMPLE_MB) -> np.ndarray:
    """Evenly spaced positions of the images kept: all of them when they fit ``max_mb`` (and ``max_images``)."""
    k = sample_size(n_total, per_image, max_images, max_mb)
    # linspace, not train's every-n//k-th-then-first-k (for k > n/2 that is the first k: a class-sorted
    # ImageFolder would lose its last classes)
    return np.unique(np.linspace(0, n_total - 1, k).round().astype(np.int64))


def sample_size(n_total: int, per_image: int, max_images: int | None = None, max_mb: float = MAX_SAMPLE_MB) -> int:
    """How many images a sample keeps: all, or as many as fit ``max_mb`` (and ``max_images``)."""
    cap = max(1, int(max_mb * 1e6 // max(per_image, 1)))
    return min(n_total, cap, max_images or n_total)


def shared_max_images(models: Sequence[nn.Module], data: ImageSet, max_images: int | None = None,
                      max_mb: float = MAX_SAMPLE_MB) -> int | None:
    """The ``max_images`` giving every model of a pair the same images (the SE model, with gates as well as
    squeezes, fits fewer in ``max_mb`` than its vanilla twin; comparing the two needs the same images):
    ``max_images`` itself when every model keeps that many (or all)."""
    h, w = int(data.images.shape[1]), int(data.images.shape[2])
    k = len(data)
    for m in models:
        device = next(m.parameters()).device
        k = min(k, sample_size(len(data), bytes_per_image(*describe_sites(m, (h, w), device=device)),
                               max_images, max_mb))
    return max_images if k == min(len(data), max_images or len(data)) else k


def _deviation_f16(v: torch.Tensor, offsets: dict[str, np.ndarray], what: str, site: str) -> np.ndarray:
    """float16 deviation of ``v`` (N x C) from the site's offset, set from this batch's mean when it has none."""
    a = v.detach().double().cpu().numpy()
    if site not in offsets and len(a):
        offsets[site] = a.mean(0).astype(np.float32)
    a = a - offsets[site].astype(np.float64)
    if not np.isfinite(a).all() or np.abs(a).max(initial=0.0) > FLOAT16_MAX:
        raise StatsError(f"the model produced {what} at {site} that are NaN, infinite or spread beyond float16's "
                         f"range (|v - mean| > {FLOAT16_MAX:g}); a diverged or damaged checkpoint cannot be mapped")
    return a.astype(np.float16)


@torch.no_grad()
def collect_sample(model: nn.Module, data: ImageSet, mean: Sequence[float], std: Sequence[float], *,
                   max_images: int | None = None, max_mb: float = MAX_SAMPLE_MB, batch_size: int = 500,
                   device: torch.device | str = "cpu", progress: Progress | None = None,
                   should_stop: StopCheck | None = None) -> GateSample:
    """One pass of ``model`` over (an evenly spaced, size-bounded part of) ``data`` keeping every image's s and z.

    Runs on a borrowed view in eval mode (shared weights, own hooks: the shared model is neither locked nor
    switched to eval); hooks go through :func:`se_core.probe.sites.capture` (this thread only, removed on exit);
    ``progress(done, total)`` after each batch, ``should_stop()`` between batches (raises
    :class:`~se_core.analysis.stats.StatsCancelled`).
    """
    if len(data) == 0:
        raise StatsError(f"{data.name} holds no images; choose a data set with at least one image")
    device = torch.device(device)
    t0 = time.perf_counter()
    h, w = int(data.images.shape[1]), int(data.images.shape[2])
    gate_sites, z_sites = describe_sites(model, (h, w), device=device)
    idx = sample_indices(len(data), bytes_per_image(gate_sites, z_sites), max_images, max_mb)
    part = data if len(idx) == len(data) else data.subset(idx)
    names = {s.name for s in z_sites}
    sites = [s for s in find_sites(model) if s.name in names]
    s_out: dict[str, list[np.ndarray]] = {s.name: [] for s in gate_sites}
    z_out: dict[str, list[np.ndarray]] = {s.name: [] for s in z_sites}
    s_off: dict[str, np.ndarray] = {}
    z_off: dict[str, np.ndarray] = {}
    stream = BatchStream(part, batch_size, mean, std, train=False)
    total = len(stream)
    with borrowed_view(model) as view, capture(view, sites) as res:
        for i, (x, _) in enumerate(stream):
            if should_stop is not None and should_stop():
                raise StatsCancelled(f"stopped after {i} of {total} batches")
            view(x.to(device, non_blocking=True))
            for st in gate_sites:
                s_out[st.name].append(_deviation_f16(res.s[st.name], s_off, "gates s", st.name))
            for st in z_sites:
                z_out[st.name].append(_deviation_f16(res.z[st.name], z_off, "squeeze z", st.name))
            if progress is not None:
                progress(i + 1, total)
    meta = {"data": {"name": data.name, "digest": data.digest, "n": len(data)}, "device": str(device),
            "batch_size": batch_size, "max_images": max_images, "max_mb": max_mb,
            "wall_time_s": round(time.perf_counter() - t0, 3)}
    return GateSample(tuple(data.classes), idx.astype(np.int64), part.labels.numpy().astype(np.int64),
                      tuple(gate_sites), tuple(z_sites), {k: np.concatenate(v) for k, v in s_out.items()},
                      {k: np.concatenate(v) for k, v in z_out.items()}, s_off, z_off, meta)
