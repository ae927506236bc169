"""Gate space in 2-D: principal components of the images' gate (or squeeze) vectors at one block.

PCA by a thin SVD of the centred N x C matrix (numpy, float64): no new dependency, deterministic (each
component's sign is fixed so that its largest loading is positive), and its explained variance says how
much of the picture the 2-D map shows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Projection:
    """``coords`` N x d, ``components`` d x C (unit rows), ``mean`` C, ``explained`` d shares of the total
    variance (0 when nothing varies), ``centroids`` K x d class means in the map (NaN for absent classes)."""

    coords: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    explained: np.ndarray
    centroids: np.ndarray


def pca(x: np.ndarray, labels: np.ndarray, num_classes: int, dims: int = 2) -> Projection:
    """Project the rows of ``x`` (N x C) on their first ``dims`` principal components."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, c = x.shape
    mean = x.mean(0) if n else np.zeros(c)
    xc = x - mean
    comps = np.zeros((dims, c))
    explained = np.zeros(dims)
    total = float((xc**2).sum())
    if n > 1 and total > 0:
        _, sv, vt = np.linalg.svd(xc, full_matrices=False)
        m = min(dims, len(sv))
        comps[:m] = vt[:m]
        explained[:m] = sv[:m] ** 2 / total
        flip = np.sign(comps[np.arange(dims), np.abs(comps).argmax(1)])
        comps *= np.where(flip == 0, 1.0, flip)[:, None]
    coords = xc @ comps.T
    centroids = np.full((num_classes, dims), np.nan)
    for k in range(num_classes):
        if (labels == k).any():
            centroids[k] = coords[labels == k].mean(0)
    return Projection(coords, comps, mean, explained, centroids)


__all__ = ["Projection", "pca"]
