"""Class-wise excitation statistics over a whole data set in one streaming pass (paper Sec. 7, Fig. 6/7).

For every class k, SE block and channel c the pass accumulates the count, sum and sum of
squares of the gate s (so class means and variances are exact) and a fixed-bin histogram of s
(so medians and quartiles are known to within half a bin), plus the count/sum/sum of squares of
the squeeze descriptor z at every site, including the ``.se`` Identity placeholders of vanilla
networks (so both models of a pair are compared on the same footing). Memory is
O(classes x channels x bins), never O(images).

Exactness. Each value v (and v**2, exact in float64 for float32 v) is split into three limbs,
v = a + b + c with a on the integer grid, b on the 2**-26 grid and c on the 2**-52 grid (the
rest, below 2**-53, is dropped), and each limb is summed separately in float64. Sums of values on
a common grid are integers in grid units, which float64 adds without rounding while they stay
below 2**53 units (``LIMB_LIMITS``: any class with fewer than 2**28 images and |v| < 2**53 / n),
so for given gate values the accumulated numbers do not depend on summation order, batching or
the number of ranks, and :meth:`ExcitationStats.merge` is exactly associative, bit for bit. (The
forward itself may round an image's gate differently, by a float32 ulp, in another batch
composition; one pass and a sharded pass agree to that rounding.) Means and variances are the
float64 values of these sums (error ~1e-16 relative). ``sums_exact`` records that no limb left its
exact range. Counts and histograms are integers.

Histograms. ``bins`` equal bins over the gate's range (sigmoid/hard-sigmoid [0, 1], tanh [-1, 1],
ReLU [0, ``relu_max``] with ``RELU_MAX`` = 8 by default, ReLU6 [0, 6], unknown gates
[0, relu_max]) plus one underflow and one overflow bin. A quantile is reported as the centre of
the bin holding the inverted-CDF sample quantile (the ceil(q n)-th smallest value), so it is
within half a bin width, (hi - lo) / (2 bins), of it: 1/512 ~ 0.002 for sigmoid gates with the
default 256 bins. An IQR (Q3 - Q1) is within one bin width. A quantile falling in the under- or
overflow bin is NaN (beyond the histogram's range).

CLI::

    python -m se_core.stats --pair cifar10-resnet20 [--data SPEC] [--out DIR]
    python -m se_core.stats --checkpoint FILE [--data SPEC] [--out FILE.npz]
    python -m se_core.stats --ship          # shipped stats of the default pair into data/stats/
    torchrun --nproc_per_node=2 -m se_core.stats ...   # each rank one shard, merged exactly
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import math
import os
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from se_core.data import BatchStream, ImageSet
from se_core.movement import STILL_STD, is_frozen, still_share
from se_core.probe import capture, find_sites
from se_core.selectivity import selectivity_from_moments

SCHEMA_VERSION = 1
FORMAT = "se_lens.excitation_stats"
DEFAULT_BINS = 256
RELU_MAX = 8.0
"""Upper histogram edge for ReLU (and unknown) gates; values above land in the overflow bin."""
LIMB_SCALES = (1.0, float(2 ** 26), float(2 ** 52))
"""Inverse grid steps of the limbs each value is split into before summation."""
LIMB_LIMITS = (float(2 ** 53), float(2 ** 27), 2.0)
"""Largest |sum| of each limb that float64 still holds exactly (2**53 grid units)."""
N_LIMBS = len(LIMB_SCALES)
DEFAULT_DATA = "cifar10-jpeg"

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]


class StatsError(ValueError):
    """A statistics file or request that cannot be used; ``str()`` says why and what to do."""


class StatsCancelled(RuntimeError):
    """The pass was stopped by its ``should_stop`` callback; nothing was returned or written."""


@dataclass(frozen=True)
class SiteInfo:
    """One site whose statistics are kept: module path, display label, depth position, width,
    gate kind (``None`` for z-only sites) and the histogram range ``[lo, hi]``."""

    name: str
    label: str
    stage: int
    block: int
    depth: int
    channels: int
    gate: str | None = None
    lo: float = 0.0
    hi: float = 1.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def gate_range(module: nn.Module, relu_max: float = RELU_MAX) -> tuple[str, float, float]:
    """(gate kind, lo, hi) of a gate module, used as the histogram range."""
    kind = type(module).__name__
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)) or kind.lower() in ("sigmoid", "hardsigmoid", "hard_sigmoid"):
        return kind, 0.0, 1.0
    if isinstance(module, (nn.Tanh, nn.Hardtanh)) and not isinstance(module, nn.ReLU6):
        return kind, -1.0, 1.0
    if isinstance(module, nn.ReLU6):
        return kind, 0.0, 6.0
    return kind, 0.0, float(relu_max)


# --------------------------------------------------------------------------- the statistics


def _empty(k: int, c: int) -> np.ndarray:
    return np.zeros((k, c), dtype=np.float64)


@dataclass
class ExcitationStats:
    """Per class x site x channel moments of the gates s and squeeze z of one model on one data set.

    ``s_sum``/``s_sumsq``/``z_sum``/``z_sumsq`` are K x L x C float64 limb sums (L = ``N_LIMBS``;
    the value is the sum over axis 1, see :meth:`total`), ``s_hist`` K x C x (bins + 2) int64
    (bin 0 = underflow, last = overflow), ``count`` K int64.
    ``meta`` holds provenance and is not part of the numbers compared by :meth:`same_numbers`.
    """

    classes: tuple[str, ...]
    count: np.ndarray
    gate_sites: tuple[SiteInfo, ...]
    z_sites: tuple[SiteInfo, ...]
    s_sum: dict[str, np.ndarray]
    s_sumsq: dict[str, np.ndarray]
    s_hist: dict[str, np.ndarray]
    z_sum: dict[str, np.ndarray]
    z_sumsq: dict[str, np.ndarray]
    bins: int = DEFAULT_BINS
    meta: dict = field(default_factory=dict)

    # ---- basic facts
    @property
    def n_images(self) -> int:
        return int(self.count.sum())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def site(self, name: str) -> SiteInfo:
        for s in self.gate_sites + self.z_sites:
            if s.name == name:
                return s
        raise KeyError(f"no site {name!r}; gate sites: {[s.name for s in self.gate_sites]}")

    def bin_width(self, site: str) -> float:
        s = self.site(site)
        return (s.hi - s.lo) / self.bins

    def quantile_error(self, site: str) -> float:
        """Bound on |reported quantile - inverted-CDF sample quantile|: half a bin width."""
        return self.bin_width(site) / 2

    @property
    def sums_exact(self) -> bool:
        """Whether every limb sum stayed in the range where float64 adds its grid values exactly."""
        arrays = [*self.s_sum.values(), *self.s_sumsq.values(), *self.z_sum.values(), *self.z_sumsq.values()]
        return all(float(np.abs(a[:, i]).max(initial=0.0)) < LIMB_LIMITS[i] for a in arrays for i in range(N_LIMBS))

    def total(self, field_name: str, site: str) -> np.ndarray:
        """K x C value of a limb-summed field (``s_sum``, ``s_sumsq``, ``z_sum`` or ``z_sumsq``)."""
        return getattr(self, field_name)[site].sum(1)

    # ---- means and variances
    def _n(self) -> np.ndarray:
        return np.maximum(self.count, 1).astype(np.float64)[:, None]

    def _class_moments(self, what: str, site: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.total(f"{what}_sum", site) / self._n()
        v = np.maximum(self.total(f"{what}_sumsq", site) / self._n() - m * m, 0.0)
        m[self.count == 0] = np.nan
        v[self.count == 0] = np.nan
        return m, v

    def _moments(self, what: str, site: str) -> tuple[np.ndarray, np.ndarray]:
        n = max(self.n_images, 1)
        m = self.total(f"{what}_sum", site).sum(0) / n
        return m, np.maximum(self.total(f"{what}_sumsq", site).sum(0) / n - m * m, 0.0)

    def class_mean(self, site: str) -> np.ndarray:
        """K x C mean gate per class (NaN rows for classes without images)."""
        return self._class_moments("s", site)[0]

    def mean(self, site: str) -> np.ndarray:
        """C class-agnostic mean gate (over all images)."""
        return self._moments("s", site)[0]

    def class_var(self, site: str) -> np.ndarray:
        """K x C population variance of the gate per class."""
        return self._class_moments("s", site)[1]

    def var(self, site: str) -> np.ndarray:
        """C population variance of the gate over all images."""
        return self._moments("s", site)[1]

    def z_class_mean(self, site: str) -> np.ndarray:
        return self._class_moments("z", site)[0]

    def z_mean(self, site: str) -> np.ndarray:
        return self._moments("z", site)[0]

    def z_class_var(self, site: str) -> np.ndarray:
        return self._class_moments("z", site)[1]

    def z_var(self, site: str) -> np.ndarray:
        return self._moments("z", site)[1]

    # ---- quantiles from the histograms
    def quantile(self, site: str, q: float, per_class: bool = True) -> np.ndarray:
        """K x C (or C over all classes) q-quantile: centre of the bin holding the ceil(q n)-th
        smallest value; within :meth:`quantile_error` of it; NaN when out of range or no data."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile q must be in [0, 1], got {q}")
        info = self.site(site)
        h = self.s_hist[site] if per_class else self.s_hist[site].sum(0, keepdims=True)
        cum = np.cumsum(h, axis=-1)
        n = cum[..., -1]
        rank = np.maximum(np.ceil(q * n - 1e-9), 1)
        b = (cum < rank[..., None]).sum(-1)
        w = (info.hi - info.lo) / self.bins
        out = info.lo + (b - 1 + 0.5) * w
        out = np.where((b >= 1) & (b <= self.bins) & (n > 0), out, np.nan)
        return out if per_class else out[0]

    def median(self, site: str, per_class: bool = True) -> np.ndarray:
        return self.quantile(site, 0.5, per_class)

    def iqr(self, site: str, per_class: bool = True) -> np.ndarray:
        """Q3 - Q1 (within one bin width of the sample IQR)."""
        return self.quantile(site, 0.75, per_class) - self.quantile(site, 0.25, per_class)

    # ---- class selectivity (eta^2)
    def selectivity_channels(self, site: str, what: str = "s") -> np.ndarray:
        """Per-channel eta^2: between-class share of the variance of s (or z)."""
        return selectivity_from_moments(torch.from_numpy(self.count), torch.from_numpy(self.total(f"{what}_sum", site)),
                                        torch.from_numpy(self.total(f"{what}_sumsq", site))).numpy()

    def selectivity(self, what: str = "s") -> dict[str, float]:
        """Site -> mean over channels of eta^2, in depth order (gate sites for s, all z sites for z)."""
        sites = self.gate_sites if what == "s" else self.z_sites
        return {st.name: float(self.selectivity_channels(st.name, what).mean()) for st in sites}

    # ---- merging
    def _check_compatible(self, other: "ExcitationStats") -> None:
        if self.classes != other.classes:
            raise StatsError("cannot merge statistics over different class lists")
        if self.gate_sites != other.gate_sites or self.z_sites != other.z_sites:
            raise StatsError("cannot merge statistics of different models (their sites differ)")
        if self.bins != other.bins:
            raise StatsError(f"cannot merge histograms with {self.bins} and {other.bins} bins")

    def merge(self, other: "ExcitationStats") -> "ExcitationStats":
        """Statistics of the union of both passes' images (exact: integer counts, grid-exact sums)."""
        self._check_compatible(other)

        def add(a: dict, b: dict) -> dict:
            return {k: a[k] + b[k] for k in a}

        return ExcitationStats(self.classes, self.count + other.count, self.gate_sites, self.z_sites,
                               add(self.s_sum, other.s_sum), add(self.s_sumsq, other.s_sumsq),
                               add(self.s_hist, other.s_hist), add(self.z_sum, other.z_sum),
                               add(self.z_sumsq, other.z_sumsq), self.bins,
                               {"merged": [self.meta.get("data", {}).get("name"), other.meta.get("data", {}).get("name")]})

    def __add__(self, other: "ExcitationStats") -> "ExcitationStats":
        return self.merge(other)

    def same_numbers(self, other: "ExcitationStats") -> bool:
        """Bit-for-bit equality of every accumulated number (provenance ignored)."""
        try:
            self._check_compatible(other)
        except StatsError:
            return False
        pairs = [(self.count, other.count)]
        for a, b in ((self.s_sum, other.s_sum), (self.s_sumsq, other.s_sumsq), (self.s_hist, other.s_hist),
                     (self.z_sum, other.z_sum), (self.z_sumsq, other.z_sumsq)):
            pairs += [(a[k], b[k]) for k in a]
        return all(np.array_equal(x, y) for x, y in pairs)

    # ---- tables
    def selectivity_frame(self, what: str = "s"):
        """DataFrame: site, label, stage, block, depth, selectivity (mean eta^2 over channels)."""
        import pandas as pd

        sites = self.gate_sites if what == "s" else self.z_sites
        sel = self.selectivity(what)
        return pd.DataFrame([{"site": s.name, "label": s.label, "stage": s.stage, "block": s.block, "depth": s.depth,
                              "selectivity": sel[s.name]} for s in sites],
                            columns=["site", "label", "stage", "block", "depth", "selectivity"])

    def movement_frame(self):
        """DataFrame per gate site: median and max over channels of each channel's gate std across
        images, the share of still channels and whether the block is frozen (:mod:`se_core.movement`)."""
        import pandas as pd

        rows = []
        for s in self.gate_sites:
            std = np.sqrt(np.maximum(self.var(s.name), 0.0))
            share = still_share(std)
            rows.append({"site": s.name, "label": s.label, "stage": s.stage, "block": s.block, "depth": s.depth,
                         "channels": s.channels, "median_std": float(np.median(std)), "max_std": float(std.max()),
                         "still_share": share, "frozen": is_frozen(share)})
        return pd.DataFrame(rows, columns=["site", "label", "stage", "block", "depth", "channels", "median_std",
                                           "max_std", "still_share", "frozen"])

    def channel_frame(self, site: str):
        """Long DataFrame of one gate site: class, channel, mean, std, median, q1, q3 (plus 'all')."""
        import pandas as pd

        mean, var = self.class_mean(site), self.class_var(site)
        q1, med, q3 = (self.quantile(site, q) for q in (0.25, 0.5, 0.75))
        rows = []
        for k, cls in enumerate(self.classes):
            for c in range(mean.shape[1]):
                rows.append((cls, c, mean[k, c], math.sqrt(var[k, c]) if var[k, c] == var[k, c] else float("nan"),
                             med[k, c], q1[k, c], q3[k, c]))
        am, av = self.mean(site), self.var(site)
        aq1, amed, aq3 = (self.quantile(site, q, per_class=False) for q in (0.25, 0.5, 0.75))
        rows += [("all", c, am[c], math.sqrt(av[c]), amed[c], aq1[c], aq3[c]) for c in range(len(am))]
        return pd.DataFrame(rows, columns=["class", "channel", "mean", "std", "median", "q1", "q3"])


# --------------------------------------------------------------------------- accumulation


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
        from se_core.probe import describe_structure
        raise StatsError(f"no SE unit or .se placeholder found in {type(model).__name__} "
                         f"({describe_structure(model)}); statistics need SE-style sites")
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, sites) as res:
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        model.train(was)
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
    batches and raises :class:`StatsCancelled` when true. The model's lock is held for the pass.
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
    was = model.training
    model.eval()
    try:
        with capture(model, sites) as res:
            for i, (x, y) in enumerate(stream):
                if should_stop is not None and should_stop():
                    raise StatsCancelled(f"stopped after {i} of {total} batches")
                model(x.to(device, non_blocking=True))
                acc.update(res.s, res.z, y.to(device))
                if progress is not None:
                    progress(i + 1, total)
    finally:
        model.train(was)
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


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (cached by path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    return _sha256_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


def provenance(checkpoint: str | os.PathLike | None, *, role: str = "", arch: str = "",
               command: str | None = None) -> dict:
    """What produced a statistics file: checkpoint file + sha256, code commit, command, date, versions."""
    from se_core.train import git_commit

    out = {"command": command if command is not None else " ".join(["python -m se_core.stats", *sys.argv[1:]]),
           "commit": git_commit(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "torch": torch.__version__, "schema": SCHEMA_VERSION, "role": role, "arch": arch}
    if checkpoint is not None:
        out["checkpoint"] = {"file": Path(checkpoint).name, "sha256": file_sha256(checkpoint)}
    return out


def _header(stats: ExcitationStats) -> dict:
    return {"format": FORMAT, "schema": SCHEMA_VERSION, "classes": list(stats.classes), "bins": stats.bins,
            "limb_scales": list(LIMB_SCALES), "gate_sites": [s.to_dict() for s in stats.gate_sites],
            "z_sites": [s.to_dict() for s in stats.z_sites], "meta": stats.meta}


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_stats(path: str | os.PathLike, stats: ExcitationStats, sidecar: bool = True) -> Path:
    """Write ``stats`` as a compressed ``.npz`` with its header (schema, sites, provenance) embedded
    as JSON, atomically; with ``sidecar``, the same header as ``<path>.json`` for people."""
    from se_core.checkpoints import atomic_write_bytes

    path = Path(path)
    header = json.dumps(_header(stats), default=_jsonable, sort_keys=True)
    arrays: dict[str, np.ndarray] = {"__header__": np.frombuffer(header.encode("utf-8"), dtype=np.uint8),
                                     "count": stats.count}
    for i, s in enumerate(stats.gate_sites):
        arrays[f"s_sum_{i}"], arrays[f"s_sumsq_{i}"], arrays[f"s_hist_{i}"] = (
            stats.s_sum[s.name], stats.s_sumsq[s.name], stats.s_hist[s.name])
    for i, s in enumerate(stats.z_sites):
        arrays[f"z_sum_{i}"], arrays[f"z_sumsq_{i}"] = stats.z_sum[s.name], stats.z_sumsq[s.name]
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    if sidecar:
        side = dict(json.loads(header))
        side["file"] = path.name
        side["n_images"] = stats.n_images
        atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(side, indent=1, sort_keys=True).encode())
    return path


_SITE_TYPES = {"name": "str", "label": "str", "stage": "int", "block": "int", "depth": "int", "channels": "int",
               "gate": "str?", "lo": "float", "hi": "float"}
_SITE_REQUIRED = ("name", "label", "stage", "block", "depth", "channels")


def _site_infos(rows: object, key: str, path: Path, redo: str) -> tuple[SiteInfo, ...]:
    """The header's ``key`` site list, every field type-checked (a file is data, not trusted code)."""
    if not isinstance(rows, list):
        raise StatsError(f"{path.name}: header key {key!r} is {type(rows).__name__}, expected a list of sites; {redo}")
    out, seen = [], set()
    for i, r in enumerate(rows):
        where = f"{path.name}: header {key}[{i}]"
        if not isinstance(r, dict):
            raise StatsError(f"{where} is {type(r).__name__}, expected an object; {redo}")
        missing = [f for f in _SITE_REQUIRED if f not in r]
        unknown = sorted(set(map(str, r)) - set(_SITE_TYPES))
        if missing or unknown:
            raise StatsError(f"{where} " + (f"lacks {missing}" if missing else f"has unknown key(s) {unknown}") +
                             f"; {redo}")
        for f, v in r.items():
            kind = _SITE_TYPES[f]
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            ok = {"str": isinstance(v, str), "str?": v is None or isinstance(v, str),
                  "int": number and float(v).is_integer() and v >= (1 if f == "channels" else 0),
                  "float": number and math.isfinite(v)}[kind]
            if not ok:
                want = {"str": "a string", "str?": "a string or null", "float": "a finite number",
                        "int": "a whole number >= 1" if f == "channels" else "a whole number >= 0"}[kind]
                raise StatsError(f"{where}.{f} is {v!r}, expected {want}; {redo}")
        site = SiteInfo(**{f: int(v) if _SITE_TYPES[f] == "int" else float(v) if _SITE_TYPES[f] == "float" else v
                           for f, v in r.items()})
        if not site.hi > site.lo:
            raise StatsError(f"{where}: histogram range [{site.lo}, {site.hi}] is empty; {redo}")
        if site.name in seen:
            raise StatsError(f"{where}: site {site.name!r} appears twice; {redo}")
        seen.add(site.name)
        out.append(site)
    return tuple(out)


MAX_STATS_MB = 1024.0
"""Largest statistics file :func:`load_stats` reads, and largest total of its arrays once decompressed
(a CIFAR-10 pair's file is ~0.1 MB; the bound keeps a damaged or hostile file from exhausting memory)."""
MAX_HEADER_BYTES = 16 * 2 ** 20
MAX_BINS = 1 << 16
_NPY_SLACK = 1 << 16  # bytes of a member beyond its array data: the .npy header


def _npy_header(z, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an .npz member declares, read without loading (or allocating) its data."""
    with z.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"array {key!r} uses .npy format {version}")
    return tuple(shape), np.dtype(dtype)


def load_stats(path: str | os.PathLike, *, max_mb: float = MAX_STATS_MB) -> ExcitationStats:
    """Read a file written by :func:`save_stats`; :class:`StatsError` for anything else.

    The error names what is wrong: missing file, empty, over ``max_mb`` (on disk or decompressed),
    not an .npz, a header that is not UTF-8 JSON or lacks a key or has a wrong type, a missing
    array or one of the wrong dtype/shape (checked before it is read), negative counts, NaN or
    infinite sums, histograms that do not add up to the image counts.
    """
    path = Path(path)
    redo = "recompute it with 'python -m se_core.stats'"
    if not path.is_file():
        raise StatsError(f"{path}: no such statistics file; {redo}")
    size = path.stat().st_size
    if size == 0:
        raise StatsError(f"{path.name}: empty file (0 bytes); {redo}")
    if size > max_mb * 1e6:
        raise StatsError(f"{path.name} is {size / 1e6:.1f} MB, over the {max_mb:g} MB limit for statistics files; "
                         f"it is not a statistics file of a supported model, or {redo}")
    try:
        if not zipfile.is_zipfile(path):
            raise StatsError(f"{path.name}: not a readable .npz statistics file (not a zip archive); {redo}")
        with np.load(path, allow_pickle=False) as z:
            return _read_npz(z, path, max_mb, redo)
    except StatsError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError, RuntimeError,
            KeyError) as e:
        raise StatsError(f"{path.name}: not a readable .npz statistics file ({type(e).__name__}: "
                         f"{str(e)[:200]}); {redo}") from None


def _read_npz(z, path: Path, max_mb: float, redo: str) -> ExcitationStats:
    members = set(z.files)
    if "__header__" not in members:
        raise StatsError(f"{path.name}: an .npz without an SE Lens statistics header (a foreign file?); {redo}")
    expanded = sum(i.file_size for i in z.zip.infolist())
    if expanded > max_mb * 1e6:
        raise StatsError(f"{path.name}: its arrays expand to {expanded / 1e6:.1f} MB, over the {max_mb:g} MB limit "
                         f"for statistics files; {redo}")
    shape, dtype = _npy_header(z, "__header__")
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES:
        raise StatsError(f"{path.name}: its header array is {dtype}{list(shape)}, expected up to "
                         f"{MAX_HEADER_BYTES} uint8 bytes of JSON; the file is corrupt; {redo}")
    raw = z["__header__"].tobytes()
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StatsError(f"{path.name}: its statistics header is not UTF-8 text (byte {e.start} is "
                         f"{raw[e.start]:#04x}); the file is corrupt; {redo}") from None
    except (json.JSONDecodeError, RecursionError):
        raise StatsError(f"{path.name}: its statistics header is not valid JSON; the file is corrupt; {redo}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StatsError(f"{path.name}: header format is {header.get('format') if isinstance(header, dict) else '?'!r}, "
                         f"not {FORMAT!r} (a foreign file?); {redo}")
    if header.get("schema") != SCHEMA_VERSION:
        raise StatsError(f"{path.name}: written with statistics schema {header.get('schema')!r}, this code reads schema "
                         f"{SCHEMA_VERSION}; {redo}")
    if header.get("limb_scales") != list(LIMB_SCALES):
        raise StatsError(f"{path.name}: sums split on limb grids {header.get('limb_scales')}, this code uses "
                         f"{list(LIMB_SCALES)}; {redo}")
    classes = header.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise StatsError(f"{path.name}: header key 'classes' is {str(classes)[:80]!r}, expected a non-empty list of "
                         f"class names; {redo}")
    if len(set(classes)) != len(classes):
        raise StatsError(f"{path.name}: header key 'classes' names a class twice; {redo}")
    bins = header.get("bins")
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
        raise StatsError(f"{path.name}: header key 'bins' is {bins!r}, expected a whole number in 1..{MAX_BINS}; {redo}")
    gates = _site_infos(header.get("gate_sites", []), "gate_sites", path, redo)
    zs = _site_infos(header.get("z_sites", []), "z_sites", path, redo)
    classes = tuple(classes)
    k = len(classes)

    def get(key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        if key not in members:
            raise StatsError(f"{path.name}: array {key!r} is missing; the file is truncated or corrupt; {redo}")
        got_shape, got_dtype = _npy_header(z, key)
        if got_shape != shape or got_dtype != np.dtype(dtype):
            raise StatsError(f"{path.name}: array {key!r} is {got_dtype}{list(got_shape)}, expected "
                             f"{np.dtype(dtype)}{list(shape)}; the file is corrupt; {redo}")
        a = z[key]
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise StatsError(f"{path.name}: array {key!r} holds NaN or infinite sums; the file is corrupt; {redo}")
        if a.dtype.kind == "i" and (a < 0).any():
            raise StatsError(f"{path.name}: array {key!r} holds negative counts; the file is corrupt; {redo}")
        return a

    count = get("count", (k,), np.int64)
    s_sum, s_sumsq, s_hist, z_sum, z_sumsq = {}, {}, {}, {}, {}
    for i, s in enumerate(gates):
        s_sum[s.name] = get(f"s_sum_{i}", (k, N_LIMBS, s.channels), np.float64)
        s_sumsq[s.name] = get(f"s_sumsq_{i}", (k, N_LIMBS, s.channels), np.float64)
        s_hist[s.name] = get(f"s_hist_{i}", (k, s.channels, bins + 2), np.int64)
        if not np.array_equal(s_hist[s.name].sum(-1), np.broadcast_to(count[:, None], (k, s.channels))):
            raise StatsError(f"{path.name}: array 's_hist_{i}' ({s.name}) does not add up to the image counts of "
                             f"'count'; the file is corrupt; {redo}")
    for i, s in enumerate(zs):
        z_sum[s.name] = get(f"z_sum_{i}", (k, N_LIMBS, s.channels), np.float64)
        z_sumsq[s.name] = get(f"z_sumsq_{i}", (k, N_LIMBS, s.channels), np.float64)
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    return ExcitationStats(classes, count, gates, zs, s_sum, s_sumsq, s_hist, z_sum, z_sumsq, bins, meta)


# --------------------------------------------------------------------------- caching and shipping


def stats_cache_dir() -> Path:
    """Where computed statistics are kept: ``$SE_LENS_STATS_CACHE``, else ``<cache>/stats``."""
    from se_core.data import CACHE_DIR

    env = os.environ.get("SE_LENS_STATS_CACHE")
    return Path(env) if env else CACHE_DIR / "stats"


def cache_key(checkpoint_sha256: str, data_digest: str, bins: int = DEFAULT_BINS, relu_max: float = RELU_MAX) -> str:
    """File stem identifying one (model file, data set, histogram layout): never computed twice."""
    d = hashlib.sha256(data_digest.encode()).hexdigest()[:16]
    return f"{checkpoint_sha256[:16]}-{d}-b{bins}-r{relu_max:g}-v{SCHEMA_VERSION}"


def cache_path(checkpoint: str | os.PathLike, data: ImageSet, bins: int = DEFAULT_BINS,
               relu_max: float = RELU_MAX, root: Path | None = None) -> Path:
    return (root or stats_cache_dir()) / f"{cache_key(file_sha256(checkpoint), data.digest, bins, relu_max)}.npz"


def cached_stats(checkpoint: str | os.PathLike, model: nn.Module, data: ImageSet, mean: Sequence[float],
                 std: Sequence[float], *, role: str = "", arch: str = "", bins: int = DEFAULT_BINS,
                 relu_max: float = RELU_MAX, batch_size: int = 500, device: torch.device | str = "cpu",
                 progress: Progress | None = None, should_stop: StopCheck | None = None,
                 command: str | None = None) -> tuple[ExcitationStats, Path, bool]:
    """(stats, file, computed_now): load from the disk cache, else compute, save and return."""
    path = cache_path(checkpoint, data, bins, relu_max)
    if path.is_file():
        try:
            return load_stats(path), path, False
        except StatsError:
            pass  # a stale or damaged cache entry is recomputed
    stats = compute_stats(model, data, mean, std, batch_size=batch_size, bins=bins, relu_max=relu_max, device=device,
                          progress=progress, should_stop=should_stop)
    stats.meta["provenance"] = provenance(checkpoint, role=role, arch=arch, command=command)
    save_stats(path, stats)
    return stats, path, True


def data_tag(spec: str, split: str, subset: int | None = None) -> str:
    """Short file-name tag of a data set, e.g. ``cifar10-jpeg-test``."""
    base = spec if spec in ("", DEFAULT_DATA) else hashlib.md5(spec.encode()).hexdigest()[:8]
    return f"{base or DEFAULT_DATA}-{split}" + (f"-sub{subset}" if subset else "")


def shipped_dir() -> Path:
    from se_core import pairs

    return pairs.DATA_DIR / "stats"


def shipped_paths(pair: str | None = None, root: Path | None = None) -> dict[str, Path]:
    """role -> shipped statistics file of ``pair`` (full CIFAR-10 JPEG test set); may not exist."""
    from se_core import pairs

    spec = pairs.PAIRS[pair or pairs.DEFAULT_PAIR]
    root = root or shipped_dir()
    tag = data_tag(DEFAULT_DATA, "test")
    return {role: root / f"{Path(ref.location).stem}.{tag}.npz"
            for role, ref in (("se", spec.se_weights), ("vanilla", spec.vanilla_weights))}


SHIP_COMMAND = "python -m se_core.stats --ship"


def compute_pair_stats(pair_name: str, data: ImageSet, *, out_dir: Path, tag: str, batch_size: int = 500,
                       bins: int = DEFAULT_BINS, relu_max: float = RELU_MAX, device: torch.device | None = None,
                       command: str | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Statistics of both models of a pair on ``data`` into ``out_dir/<checkpoint stem>.<tag>.npz`` (+ .json)."""
    from se_core.pairs import load_pair

    pair = load_pair(pair_name, device)
    out = {}
    for role, lm in (("se", pair.se), ("vanilla", pair.vanilla)):
        stats = compute_stats(lm.model, data, lm.meta.mean, lm.meta.std, batch_size=batch_size, bins=bins,
                              relu_max=relu_max, device=pair.device)
        stats.meta["provenance"] = provenance(lm.source, role=role, arch=lm.name, command=command)
        out[role] = save_stats(Path(out_dir) / f"{Path(lm.source).stem}.{tag}.npz", stats)
        if progress:
            progress(f"{role}: {lm.name} on {stats.n_images} images -> {out[role]}")
    return out


def ship_pair_stats(pair_name: str | None = None, data: ImageSet | None = None, *, out_dir: Path | None = None,
                    batch_size: int = 500, device: torch.device | None = None, command: str | None = None,
                    progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The shipped statistics: both checkpoints of the default pair on the full CIFAR-10 JPEG test set,
    into ``data/stats/`` with JSON sidecars and a ``PROVENANCE.md`` generated from them.

    ``data`` replaces the test set (tests only; the provenance then names the data actually used).
    """
    from se_core import pairs
    from se_core.data import load_dataset

    pair_name = pair_name or pairs.DEFAULT_PAIR
    out_dir = Path(out_dir or shipped_dir())
    if command is None:
        command = SHIP_COMMAND if data is None else f"se_core.stats.ship_pair_stats(data={data.name!r}) from Python"
    data = data if data is not None else load_dataset(DEFAULT_DATA, "test")
    paths = compute_pair_stats(pair_name, data, out_dir=out_dir, tag=data_tag(DEFAULT_DATA, "test"),
                               batch_size=batch_size, device=device, command=command, progress=progress)
    write_provenance_md(out_dir, [load_stats(p) for p in paths.values()], list(paths.values()))
    return paths


def write_provenance_md(out_dir: Path, stats: Sequence[ExcitationStats], paths: Sequence[Path]) -> Path:
    """``PROVENANCE.md`` listing every shipped statistics file and what produced it."""
    from se_core.checkpoints import atomic_write_bytes

    lines = ["# Shipped excitation statistics", "",
             "Class-wise gate (s) and squeeze (z) statistics, written by `se_core.stats` (schema "
             f"{SCHEMA_VERSION}); each `.npz` embeds the same header as its `.json` sidecar. Means/variances are "
             "exact (order-independent limb sums in float64); medians/IQRs come from "
             f"{stats[0].bins if stats else DEFAULT_BINS}-bin histograms, within half a bin width.", "",
             "Regenerate: `" + SHIP_COMMAND + "` (after the checkpoints in `data/checkpoints/` change).", "",
             "| file | role | model | checkpoint (sha256) | data | digest | images | commit | date | wall time | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, p in zip(stats, paths):
        pv, d = s.meta.get("provenance", {}), s.meta.get("data", {})
        ck = pv.get("checkpoint", {})
        lines.append(f"| {p.name} | {pv.get('role', '')} | {pv.get('arch', '')} | {ck.get('file', '')} "
                     f"(`{ck.get('sha256', '')[:16]}…`) | {d.get('name', '')} | `{d.get('digest', '')}` | {s.n_images} | "
                     f"{pv.get('commit', '')} | {pv.get('date', '')} | {s.meta.get('wall_time_s', '')} s | "
                     f"`{pv.get('command', '')}` |")
    path = Path(out_dir) / "PROVENANCE.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------- CLI


def summary(stats: ExcitationStats) -> str:
    """A few lines: data, images, sites, class selectivity and gate movement per block."""
    d = stats.meta.get("data", {})
    lines = [f"{d.get('name', '?')}: {stats.n_images} images, {stats.num_classes} classes, "
             f"{len(stats.gate_sites)} SE blocks, {len(stats.z_sites)} z sites, {stats.bins} bins, "
             f"wall {stats.meta.get('wall_time_s', '?')} s, sums exact: {stats.sums_exact}"]
    if stats.gate_sites:
        sel = stats.selectivity("s")
        lines.append("class selectivity eta^2 of the gates per block (mean over channels):")
        mv = stats.movement_frame().set_index("site")
        lines += [f"  {s.label:>8s} {s.name:<16s} C={s.channels:<5d} mean s={stats.mean(s.name).mean():.4f} "
                  f"eta^2={sel[s.name]:.4f} still={mv.loc[s.name, 'still_share']:.2f}"
                  + (" FROZEN" if mv.loc[s.name, "frozen"] else "") for s in stats.gate_sites]
        lines.append(f"frozen blocks (most channels' gate std across images < {STILL_STD}): "
                     f"{int(mv['frozen'].sum())} of {len(mv)}")
    zsel = stats.selectivity("z")
    lines.append("z selectivity per site: " + " ".join(f"{stats.site(k).label}={v:.3f}" for k, v in zsel.items()))
    return "\n".join(lines)


def _dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            dist.init_process_group("nccl")
            return rank, world, torch.device("cuda", local)
        dist.init_process_group("gloo")
        return rank, world, torch.device("cpu")
    from se_core.pairs import pick_device
    return 0, 1, pick_device()


def main(argv: list[str] | None = None) -> int:
    from se_core.checkpoints import CheckpointError
    from se_core.data import DataError, load_dataset
    from se_core.evaluate import eval_subset_indices
    from se_core.pairs import PAIRS, WeightsMissing

    ap = argparse.ArgumentParser(prog="python -m se_core.stats", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pair", help=f"a registered pair ({', '.join(PAIRS)}): both models")
    src.add_argument("--checkpoint", help="one checkpoint file (.safetensors, or .pt/.pth state dict)")
    ap.add_argument("--arch", default=None, help="registered architecture of a --checkpoint without SE Lens metadata")
    src.add_argument("--ship", action="store_true", help="default pair, full CIFAR-10 JPEG test set, into data/stats/")
    ap.add_argument("--data", default=DEFAULT_DATA, help="cifar10-jpeg | torchvision-cifar10:ROOT | ImageFolder path")
    ap.add_argument("--split", default="test")
    ap.add_argument("--subset", type=int, default=None, help="every n//N-th image only (as evaluate --test-subset)")
    ap.add_argument("--bins", type=int, default=DEFAULT_BINS)
    ap.add_argument("--relu-max", type=float, default=RELU_MAX, help="histogram top for ReLU gates")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--out", default=None, help="output .npz (--checkpoint) or folder (--pair); default: the stats cache")
    args = ap.parse_args(argv)
    command = " ".join(["python -m se_core.stats", *(argv if argv is not None else sys.argv[1:])])
    rank, world, device = _dist_setup()
    try:
        if args.ship:
            if world > 1:
                raise StatsError("--ship runs on one process; drop torchrun")
            paths = ship_pair_stats(device=device, batch_size=args.batch_size, command=command, progress=print)
            for p in paths.values():
                print(summary(load_stats(p)))
            print(f"wrote {', '.join(str(p) for p in paths.values())} and {shipped_dir() / 'PROVENANCE.md'}")
            return 0
        if args.checkpoint:
            from se_core.registry import build_from_checkpoint
            model, meta = build_from_checkpoint(args.checkpoint, arch=args.arch)
            models = [("model", model.to(device), meta, args.checkpoint)]
            size = tuple(meta.input_size)
        else:
            from se_core.pairs import load_pair
            pair = load_pair(args.pair, device)
            models = [(role, lm.model, lm.meta, lm.source) for role, lm in (("se", pair.se), ("vanilla", pair.vanilla))]
            size = tuple(pair.se.meta.input_size)
        data = load_dataset(args.data, args.split, size)
        if args.subset:
            data = data.subset(eval_subset_indices(len(data), args.subset))
        written = []
        for role, model, meta, ckpt in models:
            stats = compute_stats(model, data, meta.mean, meta.std, batch_size=args.batch_size, bins=args.bins,
                                  relu_max=args.relu_max, device=device, rank=rank, world=world)
            if rank != 0:
                continue
            stats.meta["provenance"] = provenance(ckpt, role=role, arch=meta.arch, command=command)
            if args.out and args.checkpoint:
                out = Path(args.out)
            elif args.out:
                out = Path(args.out) / f"{Path(ckpt).stem}.{data_tag(args.data, args.split, args.subset)}.npz"
            else:
                out = cache_path(ckpt, data, args.bins, args.relu_max)
            save_stats(out, stats)
            print(f"[{role}] {meta.arch}")
            print(summary(stats))
            written.append(out)
        if rank == 0:
            print("wrote " + " ".join(str(p) for p in written))
        return 0
    except (StatsError, CheckpointError, DataError, WeightsMissing, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        if world > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
