"""The statistics type: per-class moments and histograms of z and s at every SE site, and what is read from them."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from se_core.analysis.movement import is_frozen, still_share
from se_core.analysis.selectivity import selectivity_from_moments

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
    def _check_compatible(self, other: ExcitationStats) -> None:
        if self.classes != other.classes:
            raise StatsError("cannot merge statistics over different class lists")
        if self.gate_sites != other.gate_sites or self.z_sites != other.z_sites:
            raise StatsError("cannot merge statistics of different models (their sites differ)")
        if self.bins != other.bins:
            raise StatsError(f"cannot merge histograms with {self.bins} and {other.bins} bins")

    def merge(self, other: ExcitationStats) -> ExcitationStats:
        """Statistics of the union of both passes' images (exact: integer counts, grid-exact sums)."""
        self._check_compatible(other)

        def add(a: dict, b: dict) -> dict:
            return {k: a[k] + b[k] for k in a}

        return ExcitationStats(self.classes, self.count + other.count, self.gate_sites, self.z_sites,
                               add(self.s_sum, other.s_sum), add(self.s_sumsq, other.s_sumsq),
                               add(self.s_hist, other.s_hist), add(self.z_sum, other.z_sum),
                               add(self.z_sumsq, other.z_sumsq), self.bins,
                               {"merged": [self.meta.get("data", {}).get("name"), other.meta.get("data", {}).get("name")]})

    def __add__(self, other: ExcitationStats) -> ExcitationStats:
        return self.merge(other)

    def same_numbers(self, other: ExcitationStats) -> bool:
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
        images, the share of still channels and whether the block is frozen (:mod:`se_core.analysis.movement`)."""
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
