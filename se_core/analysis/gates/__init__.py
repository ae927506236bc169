"""What the gates encode (issue #20): per-image gate and squeeze vectors of a model on a data set
(:mod:`.sample`, kept on disk by :mod:`.store`), their 2-D map (:mod:`.project`), each class's top channels
and the classes' overlap (:mod:`.topk`), how much a block's gates depend on the input (:mod:`.dependence`), and
several SE variants' gate distributions and input dependence side by side (:mod:`.compare`).

CLI: ``python -m se_core.gates --pair cifar10-resnet20 [--subset N]`` prints the input dependence per block.
"""
from __future__ import annotations

from se_core.analysis.gates.compare import PROBE_IMAGES, Variant, compare_variants, gate_quantiles, probe_set
from se_core.analysis.gates.dependence import COLUMNS, dependence_frame, image_spread, variance_split
from se_core.analysis.gates.project import Projection, pca
from se_core.analysis.gates.sample import (
    MAX_SAMPLE_MB,
    GateSample,
    What,
    bytes_per_image,
    collect_sample,
    sample_indices,
    sample_size,
    shared_max_images,
)
from se_core.analysis.gates.store import cache_key, cache_path, cached_sample, load_sample, save_sample
from se_core.analysis.gates.topk import TopChannels, top_channels

__all__ = ["COLUMNS", "MAX_SAMPLE_MB", "PROBE_IMAGES", "GateSample", "Projection", "TopChannels", "Variant", "What",
           "bytes_per_image", "cache_key", "cache_path", "cached_sample", "collect_sample", "compare_variants",
           "dependence_frame", "gate_quantiles", "image_spread", "probe_set",
           "load_sample", "pca", "sample_indices", "sample_size", "save_sample",
           "shared_max_images", "top_channels", "variance_split"]
