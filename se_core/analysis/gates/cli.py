"""``python -m se_core.gates``: both models' gate samples of a pair into the cache the Gate space page reads,
and their input dependence per block printed as a table."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

from se_core.analysis.evaluate import eval_subset_indices
from se_core.analysis.gates.dependence import dependence_frame
from se_core.analysis.gates.sample import shared_max_images
from se_core.analysis.gates.store import cached_sample
from se_core.analysis.stats.model import DEFAULT_DATA, StatsError
from se_core.data.datasets import DataError, load_dataset
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import DEFAULT_PAIR, load_pair
from se_core.models.weights import WeightsMissing

SHOWN = ["label", "channels", "static_share", "between_share", "within_share", "selectivity", "image_std",
         "frozen", "spread_median"]


def command(pair: str, data: str = DEFAULT_DATA, subset: int | None = None, split: str = "test") -> str:
    """The shell command filling the same cache entries as the page for these choices."""
    parts = ["python -m se_core.gates", "--pair", shlex.quote(pair), "--data", shlex.quote(data)]
    if split != "test":
        parts += ["--split", shlex.quote(split)]
    return " ".join(parts + (["--subset", str(int(subset))] if subset else []))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--subset -5`` would slice off the last 5, ``--subset 0`` mean all)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not an integer >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.gates", description=__doc__)
    ap.add_argument("--pair", default=DEFAULT_PAIR)
    ap.add_argument("--data", default=DEFAULT_DATA, help="cifar10-jpeg | torchvision-cifar10:ROOT | ImageFolder path")
    ap.add_argument("--split", default="test")
    ap.add_argument("--subset", type=positive_int, default=None, help="every n//N-th image only (N >= 1)")
    ap.add_argument("--batch-size", type=positive_int, default=500)
    args = ap.parse_args(argv)
    cmd = " ".join(["python -m se_core.gates", *(argv if argv is not None else sys.argv[1:])])
    try:
        pair = load_pair(args.pair)
        data = load_dataset(args.data, args.split, tuple(pair.se.meta.input_size))
        if args.subset and args.subset < len(data):
            data = data.subset(eval_subset_indices(len(data), args.subset))
        max_images = shared_max_images([pair.se.model, pair.vanilla.model], data)  # the same images for both
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
            for role, lm in (("se", pair.se), ("vanilla", pair.vanilla)):
                if not Path(lm.source).is_file():
                    print(f"[{role}] {lm.name}: no checkpoint file, skipped")
                    continue
                sample, path, _ = cached_sample(lm.source, lm.model, data, lm.meta.mean, lm.meta.std, role=role,
                                                arch=lm.name, max_images=max_images, batch_size=args.batch_size,
                                                device=pair.device, command=cmd)
                print(f"[{role}] {lm.name} on {sample.n_images} images of {data.name} -> {path}")
                for what in ("s", "z") if sample.gate_sites else ("z",):
                    print(f"  {'gates s' if what == 's' else 'squeeze z'}:")
                    print(dependence_frame(sample, what)[SHOWN].to_string(index=False))
        return 0
    except (StatsError, CheckpointError, DataError, WeightsMissing, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
