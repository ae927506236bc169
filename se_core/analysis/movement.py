"""Gate movement: does an SE unit recalibrate at all, or is it a constant?

An SE unit whose bottleneck ReLU never fires outputs s = gate(bias) for every image: a learned
constant scale, not attention. Per channel, the movement is the standard deviation of its gate
across images; a channel is *still* when that is below :data:`STILL_STD`, and a block is
*frozen* when more than :data:`FROZEN_SHARE` of its channels are still (issue #15's criterion,
written down in ``docs/training.md`` before the runs it judges).
"""
from __future__ import annotations

import numpy as np

STILL_STD = 0.01
"""A channel whose gate moves less than this (std across images) is still."""
FROZEN_SHARE = 0.5
"""A block with more than this share of still channels is frozen."""


def still_share(std: np.ndarray, threshold: float = STILL_STD) -> float:
    """Share of channels whose gate standard deviation across images is below ``threshold``."""
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    return float((std < threshold).mean()) if std.size else float("nan")


def is_frozen(share: float) -> bool:
    """Whether a block with ``share`` still channels counts as frozen."""
    return bool(share > FROZEN_SHARE)


__all__ = ["STILL_STD", "FROZEN_SHARE", "still_share", "is_frozen"]
