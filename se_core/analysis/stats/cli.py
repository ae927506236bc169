"""``python -m se_core.stats``: compute, summarise or ship statistics (``torchrun`` shards the data set)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from se_core.analysis.evaluate import eval_subset_indices
from se_core.analysis.movement import STILL_STD
from se_core.analysis.stats.accumulate import compute_stats
from se_core.analysis.stats.model import DEFAULT_BINS, DEFAULT_DATA, RELU_MAX, ExcitationStats, StatsError
from se_core.analysis.stats.store import (
    cache_path,
    data_tag,
    load_stats,
    provenance,
    save_stats,
    ship_pair_stats,
    ship_targets,
    shipped_dir,
)
from se_core.config import dist
from se_core.data.datasets import DataError, load_dataset
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import PAIRS, load_pair, pick_device
from se_core.models.weights import WeightsMissing


def summary(stats: ExcitationStats) -> str:
    """A few lines: data, images, sites, class selectivity and gate movement per block."""
    d = stats.meta.get("data", {})
    lines = [f"{d.get('name', '?')}: {stats.n_images} images, {stats.num_classes} classes, "
             f"{len(stats.gate_sites)} SE blocks, {len(stats.z_sites)} z sites, {stats.bins} bins, "
             f"wall {stats.meta.get('wall_time_s', '?')} s, sums exact: {stats.sums_exact}"]
    if stats.gate_sites:
        sel = stats.selectivity("s")
        lines.append("class selectivity eta^2 of the gates per block (mean over channels):")
        mv = stats.movement_frame().set_index("site")
        lines += [f"  {s.label:>8s} {s.name:<16s} C={s.channels:<5d} mean s={stats.mean(s.name).mean():.4f} "
                  f"eta^2={sel[s.name]:.4f} still={mv.loc[s.name, 'still_share']:.2f}"
                  + (" FROZEN" if mv.loc[s.name, "frozen"] else "") for s in stats.gate_sites]
        lines.append(f"frozen blocks (most channels' gate std across images < {STILL_STD}): "
                     f"{int(mv['frozen'].sum())} of {len(mv)}")
    zsel = stats.selectivity("z")
    lines.append("z selectivity per site: " + " ".join(f"{stats.site(k).label}={v:.3f}" for k, v in zsel.items()))
    return "\n".join(lines)


def _dist_setup() -> tuple[int, int, torch.device]:
    d = dist()
    rank, world = d.rank, d.world
    if world > 1:
        import torch.distributed as tdist
        if torch.cuda.is_available():
            local = d.local_rank
            torch.cuda.set_device(local)
            tdist.init_process_group("nccl")
            return rank, world, torch.device("cuda", local)
        tdist.init_process_group("gloo")
        return rank, world, torch.device("cpu")
    return 0, 1, pick_device()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.stats", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--pair", help=f"a registered pair ({', '.join(PAIRS)}) or a user pair user:<id> registered on "
                                    "the Models page: both models, into the stats cache the dashboard reads")
    src.add_argument("--checkpoint", help="one checkpoint file (.safetensors, or .pt/.pth state dict)")
    ap.add_argument("--arch", default=None, help="registered architecture of a --checkpoint without SE Lens metadata")
    ap.add_argument("--ship", action="store_true", help="the project's own pairs whose checkpoints are in data/checkpoints "
                    "(or the one --pair names), full CIFAR-10 JPEG test set, into data/stats/")
    ap.add_argument("--data", default=DEFAULT_DATA, help="cifar10-jpeg | torchvision-cifar10:ROOT | ImageFolder path")
    ap.add_argument("--split", default="test")
    ap.add_argument("--subset", type=int, default=None, help="every n//N-th image only (as evaluate --test-subset)")
    ap.add_argument("--bins", type=int, default=DEFAULT_BINS)
    ap.add_argument("--relu-max", type=float, default=RELU_MAX, help="histogram top for ReLU gates")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--out", default=None, help="output .npz (--checkpoint) or folder (--pair); default: the stats cache")
    args = ap.parse_args(argv)
    if not (args.ship or args.pair or args.checkpoint):
        ap.error("one of --pair, --checkpoint or --ship is required")
    if args.ship and args.checkpoint:
        ap.error("--ship computes the project's own pairs; a --checkpoint goes without it (and --out)")
    command = " ".join(["python -m se_core.stats", *(argv if argv is not None else sys.argv[1:])])
    rank, world, device = _dist_setup()
    try:
        if args.ship:
            if world > 1:
                raise StatsError("--ship runs on one process; drop torchrun")
            for name in ship_targets(ap, args, {"batch_size"}):
                paths = ship_pair_stats(name, device=device, batch_size=args.batch_size, command=command, progress=print)
                for p in paths.values():
                    print(summary(load_stats(p)))
                print(f"{name}: wrote {', '.join(str(p) for p in paths.values())} and {shipped_dir() / 'PROVENANCE.md'}")
            return 0
        if args.checkpoint:
            model, meta = build_from_checkpoint(args.checkpoint, arch=args.arch)
            models = [("model", model.to(device), meta, args.checkpoint)]
            size = tuple(meta.input_size)
        else:
            pair = load_pair(args.pair, device)
            models = [(role, lm.model, lm.meta, lm.source) for role, lm in (("se", pair.se), ("vanilla", pair.vanilla))
                      if Path(lm.source).is_file()]
            for role, lm in (("se", pair.se), ("vanilla", pair.vanilla)):
                if not Path(lm.source).is_file():
                    print(f"[{role}] {lm.name}: {lm.source}, no checkpoint file: skipped (an untrained stand-in)")
            size = tuple(pair.se.meta.input_size)
        data = load_dataset(args.data, args.split, size)
        if args.subset:
            data = data.subset(eval_subset_indices(len(data), args.subset))
        written = []
        for role, model, meta, ckpt in models:
            stats = compute_stats(model, data, meta.mean, meta.std, batch_size=args.batch_size, bins=args.bins,
                                  relu_max=args.relu_max, device=device, rank=rank, world=world)
            if rank != 0:
                continue
            stats.meta["provenance"] = provenance(ckpt, role=role, arch=meta.arch, command=command)
            if args.out and args.checkpoint:
                out = Path(args.out)
            elif args.out:
                out = Path(args.out) / f"{Path(ckpt).stem}.{data_tag(args.data, args.split, args.subset)}.npz"
            else:
                out = cache_path(ckpt, data, args.bins, args.relu_max)
            save_stats(out, stats)
            print(f"[{role}] {meta.arch}")
            print(summary(stats))
            written.append(out)
        if rank == 0:
            print("wrote " + " ".join(str(p) for p in written))
        return 0
    except (StatsError, CheckpointError, DataError, WeightsMissing, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        if world > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
