"""Throughput of the class-wise statistics pass vs plain inference over the same loader.

Both sides run the same model over the same :class:`~se_core.data.datasets.BatchStream` batches; calls are
interleaved (A, B, A, B, ...) after warm-up and the median of each is reported, so both see the
same machine load. Both wall-clock and process CPU time are measured: on a shared, loaded machine
the CPU-time ratio (this process's own work) is the steadier estimate, the wall-clock ratio is the
throughput a user sees. The statistics pass must keep >= 0.9 of plain inference throughput.

    python bench/stats_throughput.py [--checkpoint FILE] [--images 2000] [--batch-size 500] [--repeats 5]

Last line: ``stats_vs_inference_ratio <stats images/s divided by inference images/s>`` (wall clock;
``--clock cpu`` bases it on process CPU time instead, meaningful for CPU runs only).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _common import machine

from se_core.analysis.evaluate import eval_subset_indices
from se_core.analysis.stats import DEFAULT_BINS, compute_stats
from se_core.data.constants import CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import BatchStream, load_dataset
from se_core.models.build import build_from_checkpoint
from se_core.models.registry import get_spec


def interleaved_clocks(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU seconds per call, calls interleaved A, B, A, B, ... after warm-up."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            w, c = time.perf_counter(), time.process_time()
            f()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - w)
    return {"wall": {k: statistics.median(v) for k, v in wall.items()},
            "cpu": {k: statistics.median(v) for k, v in cpu.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="model file (default: random-init SE-ResNet-20)")
    ap.add_argument("--arch", default="se_resnet20_cifar", help="architecture when no checkpoint is given")
    ap.add_argument("--images", type=int, default=2000, help="evenly spaced CIFAR-10 JPEG test images")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--bins", type=int, default=DEFAULT_BINS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="clock of the last line's ratio")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.checkpoint:
        model, meta = build_from_checkpoint(args.checkpoint)
        mean, std, what = meta.mean, meta.std, args.checkpoint
    else:
        torch.manual_seed(0)
        model, mean, std, what = get_spec(args.arch).build(), CIFAR10_MEAN, CIFAR10_STD, f"{args.arch} (random init)"
    device = torch.device(args.device)
    model = model.to(device).eval()
    data = load_dataset("cifar10-jpeg", "test")
    data = data.subset(eval_subset_indices(len(data), args.images))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    @torch.no_grad()
    def plain() -> None:
        for x, _ in BatchStream(data, args.batch_size, mean, std, train=False):
            model(x.to(device))
        sync()

    def stats() -> None:
        compute_stats(model, data, mean, std, batch_size=args.batch_size, bins=args.bins, device=device)
        sync()

    t = interleaved_clocks({"inference": plain, "stats": stats}, repeats=args.repeats, warmup=1)
    n = len(data)
    print(f"machine: {machine()}  torch threads: {torch.get_num_threads()}  device: {device}")
    print(f"model: {what}; {n} images, batch {args.batch_size}, {args.bins} bins, median of {args.repeats} interleaved runs")
    for clock in ("wall", "cpu"):
        c = t[clock]
        print(f"[{clock:4s}] plain inference {c['inference']:7.3f} s {n / c['inference']:8.1f} img/s | statistics pass "
              f"{c['stats']:7.3f} s {n / c['stats']:8.1f} img/s | ratio {c['inference'] / c['stats']:.3f}")
    c = t[args.clock]
    print(f"stats_vs_inference_ratio {c['inference'] / c['stats']:.3f}")


if __name__ == "__main__":
    main()
