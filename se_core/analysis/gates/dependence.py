"""Does a block's gate depend on the input at all, and if so on the class or on the image? (GCNet's question.)

All values of one block (images i, channels c) have a variance that splits exactly (law of total variance,
twice) into

    total = static + between-class + within-class

- static: the variance over channels of each channel's mean gate, a fixed per-channel scale the same for
  every image (what a constant gate is);
- between-class: mean over channels of the variance of the class means (the numerator of the class
  selectivity eta^2 of :mod:`se_core.analysis.selectivity`, computed by the same function);
- within-class: mean over channels of the variance among images of one class.

Their shares say whether the block is input-independent (static share near 1, or, in absolute terms,
gates that move less than :data:`~se_core.analysis.movement.STILL_STD` across images: a frozen block),
class-specific or image-specific. The per-image spread is each image's distance from the block's mean
gate, RMS over channels; its mean square is the across-image part, between + within.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from se_core.analysis.gates.sample import GateSample, What
from se_core.analysis.movement import is_frozen, still_share
from se_core.analysis.selectivity import class_moments, selectivity_from_moments, variance_split_from_moments

COLUMNS = ["site", "label", "stage", "block", "depth", "channels", "total", "static", "between_class",
           "within_class", "static_share", "between_share", "within_share", "input_share", "selectivity",
           "image_std", "still_share", "frozen", "spread_q1", "spread_median", "spread_q3"]


def variance_split(x: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Per-value variances of one block's N x C values: total, static, between_class, within_class
    (population variances; static + between_class + within_class = total) and the mean eta^2 over channels."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape
    moments = class_moments(torch.from_numpy(x), torch.from_numpy(np.asarray(labels, dtype=np.int64)), num_classes)
    between, within, tot = (t.numpy() / max(n, 1) for t in variance_split_from_moments(*moments))
    static = float(x.mean(0).var()) if n else 0.0
    return {"total": static + float(tot.mean()), "static": static, "between_class": float(between.mean()),
            "within_class": float(within.mean()), "selectivity": float(selectivity_from_moments(*moments).mean())}


def image_spread(x: np.ndarray) -> np.ndarray:
    """Per image (N), the RMS over channels of its deviation from the mean vector of all images."""
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(((x - x.mean(0)) ** 2).mean(1))


def dependence_frame(sample: GateSample, what: What = "s") -> pd.DataFrame:
    """One row per site (depth order): the variance split, its shares, eta^2, the across-image std (RMS over
    channels), the share of still channels and frozen flag, and quartiles of the per-image spread."""
    rows = []
    for st in sample.sites(what):
        x = sample.values(what, st.name)
        v = variance_split(x, sample.labels, sample.num_classes)
        tot = v["total"]

        def share(a: float, tot: float = tot) -> float:
            return a / tot if tot > 0 else 0.0
        std = x.std(0)
        still = still_share(std)
        q1, med, q3 = np.quantile(image_spread(x), [0.25, 0.5, 0.75]) if len(x) else (np.nan,) * 3
        rows.append({"site": st.name, "label": st.label, "stage": st.stage, "block": st.block, "depth": st.depth,
                     "channels": st.channels, **v, "static_share": share(v["static"]),
                     "between_share": share(v["between_class"]), "within_share": share(v["within_class"]),
                     "input_share": share(v["between_class"] + v["within_class"]),
                     "image_std": float(np.sqrt(v["between_class"] + v["within_class"])),
                     "still_share": still, "frozen": is_frozen(still) if what == "s" else False,
                     "spread_q1": float(q1), "spread_median": float(med), "spread_q3": float(q3)})
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out[[c for c in COLUMNS if c in out.columns]]


__all__ = ["COLUMNS", "dependence_frame", "image_spread", "variance_split"]
