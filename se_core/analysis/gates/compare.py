"""Several SE variants' gates side by side (the Ablations page's comparison of one axis): per block, the
distribution of the gate values s over a fixed probe set (quantiles over images x channels) and the input
dependence of :mod:`.dependence` (static / between-class / within-class shares), against depth.

Each variant is one checkpoint (a kept ablation trial); its per-image gates come from the same disk cache as
the Gate space page (:func:`~se_core.analysis.gates.store.cached_sample`, keyed by checkpoint hash and data
digest), so a (variant, probe set) is passed over once, whoever asks. The probe set is fixed: evenly spaced
images of the test split (:func:`probe_set`), the same for every variant.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from se_core.analysis.evaluate import eval_subset_indices
from se_core.analysis.gates.dependence import COLUMNS as DEPENDENCE_COLUMNS
from se_core.analysis.gates.dependence import dependence_frame
from se_core.analysis.gates.sample import GateSample
from se_core.analysis.gates.store import cache_path, cached_sample, load_sample
from se_core.analysis.stats.model import DEFAULT_DATA, Progress, StatsError, StopCheck
from se_core.data.datasets import ImageSet, load_dataset
from se_core.models.build import build_from_checkpoint

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
PROBE_IMAGES = 1000
"""Probe images per variant by default: enough for every class (100 each on CIFAR-10) and seconds per model."""
COLUMNS = ["variant", "key", *DEPENDENCE_COLUMNS, "mean", *QUANTILE_COLUMNS]


@dataclass(frozen=True)
class Variant:
    """One model to compare: its label (the setting), a key (the trial id) and its checkpoint file."""

    label: str
    checkpoint: Path
    key: str = ""


def probe_set(data: str = DEFAULT_DATA, n: int = PROBE_IMAGES, size: tuple[int, int] = (32, 32)) -> ImageSet:
    """The fixed probe images: ``n`` evenly spaced images of ``data``'s test split (all when it has fewer)."""
    full = load_dataset(data or DEFAULT_DATA, "test", size)
    return full.subset(eval_subset_indices(len(full), n)) if 0 < n < len(full) else full


def gate_quantiles(sample: GateSample, quantiles: Sequence[float] = QUANTILES) -> pd.DataFrame:
    """Per gate site (depth order): the mean and ``quantiles`` of its gate values over all images and channels."""
    rows = []
    for st in sample.gate_sites:
        v = sample.values("s", st.name).ravel()
        qs = np.quantile(v, quantiles) if v.size else [np.nan] * len(quantiles)
        rows.append({"site": st.name, "mean": float(v.mean()) if v.size else np.nan,
                     **{f"q{round(q * 100):02d}": float(x) for q, x in zip(quantiles, qs)}})
    return pd.DataFrame(rows, columns=["site", "mean", *(f"q{round(q * 100):02d}" for q in quantiles)])


def variant_frame(sample: GateSample, variant: Variant) -> pd.DataFrame:
    """One row per SE block of one variant: :func:`dependence_frame` of its gates and their quantiles."""
    if not sample.gate_sites:
        raise StatsError(f"{variant.label}: the model has no SE gates to compare")
    frame = dependence_frame(sample, "s").merge(gate_quantiles(sample), on="site", how="left")
    frame.insert(0, "key", variant.key)
    frame.insert(0, "variant", variant.label)
    return frame[COLUMNS]


def missing(variants: Sequence[Variant], data: ImageSet) -> list[Variant]:
    """The variants whose gates on ``data`` are not in the disk cache yet."""
    return [v for v in variants if not cache_path(v.checkpoint, data).is_file()]


def _sample(v: Variant, data: ImageSet, compute: bool, batch_size: int, progress: Progress | None,
            should_stop: StopCheck | None, command: str | None) -> GateSample:
    path = cache_path(v.checkpoint, data)
    if path.is_file():
        try:
            return load_sample(path)
        except StatsError:
            if not compute:
                raise
    if not compute:
        raise StatsError(f"{v.label}: its gates on {data.name} are not computed yet")
    model, meta = build_from_checkpoint(v.checkpoint)
    sample, _, _ = cached_sample(v.checkpoint, model, data, meta.mean, meta.std, role="se", arch=meta.arch,
                                 batch_size=batch_size, progress=progress, should_stop=should_stop,
                                 command=command)
    return sample


def compare_variants(variants: Sequence[Variant], data: ImageSet, *, compute: bool = True, batch_size: int = 500,
                     progress: Progress | None = None, should_stop: StopCheck | None = None,
                     command: str | None = None) -> pd.DataFrame:
    """Every variant's per-block gate quantiles and input dependence on ``data`` (rows in variant then depth
    order). Gates come from the disk cache; with ``compute`` the missing ones are collected (and kept), else
    :class:`StatsError`. ``progress(done, total)`` counts batches over all variants to compute."""
    todo = {v.key or str(v.checkpoint) for v in missing(variants, data)} if compute else set()
    per = -(-len(data) // max(batch_size, 1))
    done = [0]

    def step(i: int, _total: int) -> None:
        if progress is not None:
            progress(done[0] + i, per * len(todo))
    parts = []
    for v in variants:
        fresh = (v.key or str(v.checkpoint)) in todo
        parts.append(variant_frame(_sample(v, data, compute, batch_size, step if fresh else None, should_stop,
                                           command), v))
        done[0] += per if fresh else 0
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def checkpoint_key(variants: Sequence[Variant]) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of each variant's checkpoint: a cache key that changes when a file does."""
    out = []
    for v in variants:
        st = os.stat(v.checkpoint)
        out.append((str(v.checkpoint), st.st_size, st.st_mtime_ns))
    return tuple(out)


__all__ = ["COLUMNS", "PROBE_IMAGES", "QUANTILES", "QUANTILE_COLUMNS", "Variant", "checkpoint_key",
           "compare_variants", "gate_quantiles", "missing", "probe_set", "variant_frame"]
