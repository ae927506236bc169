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
    python -m se_core.stats --ship          # shipped stats of every own pair into data/stats/ (--pair: one)
    torchrun --nproc_per_node=2 -m se_core.stats ...   # each rank one shard, merged exactly
"""
from __future__ import annotations

from se_core.analysis.stats.accumulate import compute_stats, describe_sites
from se_core.analysis.stats.cli import main, summary
from se_core.analysis.stats.model import (
    DEFAULT_BINS,
    DEFAULT_DATA,
    FORMAT,
    LIMB_LIMITS,
    LIMB_SCALES,
    N_LIMBS,
    RELU_MAX,
    SCHEMA_VERSION,
    ExcitationStats,
    Progress,
    SiteInfo,
    StatsCancelled,
    StatsError,
    StopCheck,
    gate_range,
)
from se_core.analysis.stats.store import (
    MAX_BINS,
    MAX_HEADER_BYTES,
    MAX_STATS_MB,
    SHIP_COMMAND,
    cache_key,
    cache_path,
    cached_stats,
    compute_pair_stats,
    data_tag,
    from_other_checkpoint,
    has_shipped,
    load_stats,
    pair_command,
    provenance,
    save_stats,
    ship_pair_stats,
    ship_targets,
    shippable_pairs,
    shipped_dir,
    shipped_paths,
    write_provenance_md,
)

__all__ = [
    "from_other_checkpoint",
    "DEFAULT_BINS",
    "DEFAULT_DATA",
    "ExcitationStats",
    "FORMAT",
    "LIMB_LIMITS",
    "LIMB_SCALES",
    "MAX_BINS",
    "MAX_HEADER_BYTES",
    "MAX_STATS_MB",
    "N_LIMBS",
    "Progress",
    "RELU_MAX",
    "SCHEMA_VERSION",
    "SHIP_COMMAND",
    "SiteInfo",
    "StatsCancelled",
    "StatsError",
    "StopCheck",
    "cache_key",
    "cache_path",
    "cached_stats",
    "compute_pair_stats",
    "compute_stats",
    "data_tag",
    "describe_sites",
    "gate_range",
    "has_shipped",
    "load_stats",
    "main",
    "pair_command",
    "provenance",
    "save_stats",
    "ship_pair_stats",
    "ship_targets",
    "shippable_pairs",
    "shipped_dir",
    "shipped_paths",
    "summary",
    "write_provenance_md",
]
