"""Which channels each class turns up, and how much classes share them (Summit-style top channels,
ChannelExplorer-style Jaccard overlap, for SE gates).

Per class, the score of a channel is its class-mean value minus its all-class mean (for squeeze z,
divided by the channel's all-image std, since channels' scales differ); the class's top-k channels are
the k highest scores. Their overlap between two classes is the Jaccard index |A ∩ B| / |A ∪ B|.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TopChannels:
    """``channels`` K x k channel indices (best first; -1 for a class without images), ``score`` K x C."""

    classes: tuple[str, ...]
    k: int
    channels: np.ndarray
    score: np.ndarray

    def sets(self) -> list[frozenset[int]]:
        return [frozenset(int(c) for c in row if c >= 0) for row in self.channels]

    def jaccard(self) -> np.ndarray:
        """K x K Jaccard index of the classes' top-k sets (NaN where both are empty)."""
        sets = self.sets()
        out = np.full((len(sets), len(sets)), np.nan)
        for i, a in enumerate(sets):
            for j, b in enumerate(sets):
                if a or b:
                    out[i, j] = len(a & b) / len(a | b)
        return out

    def shared(self) -> list[int]:
        """Channels in every (non-empty) class's top k."""
        sets = [s for s in self.sets() if s]
        return sorted(frozenset.intersection(*sets)) if sets else []

    def unique(self) -> dict[str, list[int]]:
        """Class -> its top channels that are in no other class's top k."""
        sets = self.sets()
        return {cls: sorted(s - frozenset().union(*(o for j, o in enumerate(sets) if j != i)))
                for i, (cls, s) in enumerate(zip(self.classes, sets))}


def top_channels(x: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], k: int,
                 standardize: bool = False) -> TopChannels:
    """Top-``k`` channels per class of values ``x`` (N x C) with class ``labels`` (N)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    c = x.shape[1]
    if not 1 <= k <= c:
        raise ValueError(f"k must be between 1 and the block's {c} channels, got {k}")
    mean = x.mean(0)
    scale = x.std(0) if standardize else np.ones(c)
    scale = np.where(scale > 0, scale, np.inf)  # a channel that never varies scores 0 for every class
    score = np.full((len(classes), c), np.nan)
    chans = np.full((len(classes), k), -1, dtype=np.int64)
    for i in range(len(classes)):
        rows = labels == i
        if rows.any():
            score[i] = (x[rows].mean(0) - mean) / scale
            chans[i] = np.argsort(-score[i], kind="stable")[:k]
    return TopChannels(tuple(classes), k, chans, score)


__all__ = ["TopChannels", "top_channels"]
