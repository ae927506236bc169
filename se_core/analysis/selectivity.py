"""Class selectivity of excitation: how much of a gate's variation is explained by the class.

For one SE block with gates s (N x C) and labels y, per channel c:

    selectivity_c = sum_k n_k (mean_k(s_c) - mean(s_c))^2 / sum_i (s_ic - mean(s_c))^2

i.e. the between-class share of the total variance (the correlation ratio eta^2 of a one-way
ANOVA). It lies in [0, 1]: 0 when every class has the same mean gate (class-agnostic, the
paper's early blocks), 1 when the class alone fixes the gate (class-specific, its later
blocks). The block's number is the mean over channels; channels whose gates do not vary
(e.g. saturated at 1) contribute 0. It needs only per-class counts, sums and sums of
squares, so streaming statistics compute it exactly.
"""
from __future__ import annotations

import torch


def variance_split_from_moments(count: torch.Tensor, total: torch.Tensor,
                                total_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel (between-class, within-class, total) sums of squared deviations from per-class moments
    ``count`` (K), ``total``/``total_sq`` (K x C): the law of total variance, between + within = total."""
    count = count.double()
    total, total_sq = total.double(), total_sq.double()
    n = count.sum()
    grand = total.sum(0) / n.clamp_min(1)
    class_mean = total / count.clamp_min(1)[:, None]
    between = (count[:, None] * (class_mean - grand) ** 2).sum(0)
    tot = (total_sq.sum(0) - n * grand**2).clamp_min(0)
    return between, (tot - between).clamp_min(0), tot


def selectivity_from_moments(count: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor,
                             eps: float = 1e-12) -> torch.Tensor:
    """Per-channel eta^2 from per-class moments: ``count`` (K), ``total``/``total_sq`` (K x C)."""
    between, _, tot = variance_split_from_moments(count, total, total_sq)
    n = count.double().sum()
    return torch.where(tot > eps * n, between / tot.clamp_min(eps), torch.zeros_like(tot)).clamp(0, 1)


def class_moments(s: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class (count K, sum K x C, sum of squares K x C) of values ``s`` (N x C), in float64."""
    s = s.double()
    count = torch.bincount(labels, minlength=num_classes)
    total = torch.zeros(num_classes, s.shape[1], dtype=torch.float64).index_add_(0, labels, s)
    total_sq = torch.zeros_like(total).index_add_(0, labels, s * s)
    return count, total, total_sq


def class_selectivity(s: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-channel eta^2 of gates ``s`` (N x C) against ``labels`` (N)."""
    return selectivity_from_moments(*class_moments(s, labels, num_classes))
