"""Is an attribution map faithful to the model? Deletion and insertion curves, as in Petsiuk, Das and
Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018, section 4.

Pixels are ranked by the map, most important first. The **deletion** curve replaces them, in that order,
by a baseline and records the target's softmax probability at each fraction removed (0..1): a map that
finds what the model uses makes it fall fast (low area under the curve is better). The **insertion**
curve starts from the baseline and reveals the image's pixels in the same order: it should rise fast
(high area is better). The area is the trapezoid over the fractions actually used (``k / H·W``).

Removed pixels take the baseline's value (all three channels), the kinds of
:func:`se_core.analysis.attribution.make_baseline` (zero = the training mean colour, blur, mean). A
seeded random order gives a reference: a method that does not beat it says little about the model.

Concurrency: like :mod:`se_core.analysis.attribution`, a call runs on a borrowed view of the model
(the same weights, its own flags) in eval mode under ``torch.inference_mode``, so it holds no lock
while it computes, leaves the shared model's flags as they were, registers no hooks and touches no
parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from se_core.analysis.attribution import Baseline, _check_target, _prepare, _private, make_baseline

Order = Literal["attribution", "random"]
ORDERS: tuple[str, ...] = ("attribution", "random")
#: Steps of each curve by default: 33 points, i.e. 32 pixels a step on a 32x32 CIFAR image.
FAITHFULNESS_STEPS = 32
#: Seed of the random reference order.
FAITHFULNESS_SEED = 0


@dataclass(frozen=True)
class Curve:
    """The target's probability at each fraction of pixels removed (deletion) or revealed (insertion),
    fractions increasing from 0 to 1, and the trapezoid area under it."""

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: float


@dataclass(frozen=True)
class Faithfulness:
    """Both curves of one map (or of the random reference order) for one model and target."""

    target: int
    order: str
    baseline: str
    deletion: Curve
    insertion: Curve


def area(fractions: np.ndarray, probabilities: np.ndarray) -> float:
    """Trapezoid area under ``probabilities`` over ``fractions`` (what RISE reports as AUC)."""
    f, p = np.asarray(fractions, np.float64), np.asarray(probabilities, np.float64)
    return float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(f)))


def pixel_order(amap: np.ndarray, order: Order = "attribution", seed: int = FAITHFULNESS_SEED) -> np.ndarray:
    """Flat pixel indices, most important first: decreasing map value, ties by pixel index (a stable sort,
    so the curves are reproducible), or a permutation seeded with ``seed`` for ``order='random'``."""
    a = np.asarray(amap, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected an H x W attribution map, got shape {a.shape}")
    if order == "random":
        return np.random.default_rng(seed).permutation(a.size)
    if order != "attribution":
        raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    if not np.isfinite(a).all():
        raise ValueError("the attribution map has NaN or infinite values; it cannot rank pixels")
    return np.argsort(-a.ravel(), kind="stable")


def _counts(n_pixels: int, steps: int) -> np.ndarray:
    """Pixels perturbed at each of the ``steps + 1`` points, 0 to all, as evenly spaced as whole pixels allow."""
    return np.unique(np.rint(np.linspace(0, n_pixels, steps + 1)).astype(np.int64))


def _probabilities(model: nn.Module, start: torch.Tensor, end: torch.Tensor, rank: torch.Tensor, counts: np.ndarray,
                   target: int, batch_size: int) -> np.ndarray:
    """p(target) for inputs that take ``end``'s value at the ``k`` first-ranked pixels and ``start``'s
    elsewhere, for each ``k`` in ``counts``, ``batch_size`` inputs a forward."""
    out = []
    for i in range(0, len(counts), batch_size):
        k = torch.as_tensor(counts[i:i + batch_size], device=rank.device)
        mask = (rank[None] < k[:, None, None]).unsqueeze(1)  # b x 1 x H x W, broadcast over channels
        batch = torch.where(mask, end, start)
        out.append(torch.softmax(model(batch).float(), dim=-1)[:, target].cpu())
    return torch.cat(out).numpy().astype(np.float64)


def deletion_insertion(model: nn.Module, x: torch.Tensor, target: int, amap: np.ndarray, *,
                       baseline: Baseline = "zero", steps: int = FAITHFULNESS_STEPS, batch_size: int = 32,
                       order: Order = "attribution", seed: int = FAITHFULNESS_SEED) -> Faithfulness:
    """Deletion and insertion curves of ``model``'s class ``target`` on one normalized image ``x`` (1x3xHxW),
    pixels ranked by ``amap`` (H x W, e.g. :attr:`AttributionResult.map`) or at random (see the module
    docstring). ``steps`` intervals from 0 to all pixels; ``batch_size`` perturbed inputs per forward."""
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    x = _prepare(model, x)
    h, w = x.shape[-2:]
    if np.shape(amap) != (h, w):
        raise ValueError(f"the attribution map is {np.shape(amap)} but the input is {h}x{w}; use the map made on "
                         "this model's own input")
    ranked = pixel_order(amap, order, seed)
    rank = torch.empty(h * w, dtype=torch.int64)
    rank[torch.from_numpy(ranked)] = torch.arange(h * w)
    rank = rank.reshape(h, w).to(x.device)
    counts = _counts(h * w, int(steps))
    fractions = counts / (h * w)
    base = make_baseline(x, baseline)
    with _private(model, grad=False) as view:
        target = _check_target(view(x), target)
        deleted = _probabilities(view, x, base, rank, counts, target, int(batch_size))
        inserted = _probabilities(view, base, x, rank, counts, target, int(batch_size))
    return Faithfulness(target=target, order=order, baseline=baseline,
                        deletion=Curve(fractions, deleted, area(fractions, deleted)),
                        insertion=Curve(fractions, inserted, area(fractions, inserted)))


__all__ = ["Curve", "FAITHFULNESS_SEED", "FAITHFULNESS_STEPS", "Faithfulness", "ORDERS", "area", "deletion_insertion",
           "pixel_order"]
