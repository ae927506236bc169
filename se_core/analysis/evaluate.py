"""Test accuracy of a model or checkpoint, overall and per class.

CLI: ``python -m se_core.evaluate --checkpoint FILE [--arch NAME [--se-config JSON]] [--data SPEC]
[--test-subset N]``; the last line printed is JSON with ``top1``, ``top5``, ``n``, ``loss`` and
``per_class`` (accuracies in %). ``--arch``/``--se-config`` describe a checkpoint without SE Lens
metadata (a registry name, or ``timm:<name>`` / ``torchvision:<name>``).
``--test-subset N`` picks the same N images as ``train --test-subset N``, so the two agree.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from se_core.data.datasets import BatchStream, DataError, ImageSet, load_dataset
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import CheckpointError
from se_core.nn.se import SEConfig


def autocast_ctx(precision: str, device: torch.device):
    """bf16 autocast context for ``precision='bf16'``, else a no-op."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def eval_subset_indices(n_total: int, k: int) -> torch.Tensor:
    """The fixed ``k``-image test subset used by ``train --test-subset k`` (every ``n//k``-th image),
    so a checkpoint can be re-evaluated on exactly the images its trainer reported."""
    return torch.arange(n_total)[:: max(1, n_total // k)][:k]


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, mean: Sequence[float], std: Sequence[float], *,
             batch_size: int = 500, precision: str = "fp32", rank: int = 0, world: int = 1,
             device: torch.device | str = "cpu", channels_last: bool = False,
             before_batch: Callable[[], None] | None = None) -> dict:
    """Summed loss/top-1/top-5 counts and per-class accuracy on ``data`` (all-reduced over ranks).

    The one accuracy loop: the trainer, the ``evaluate`` CLI and the knock-out (under its gate
    interventions) all count here. ``before_batch`` runs before each batch, e.g. to raise when a
    user stops a long run.
    """
    device = torch.device(device)
    was = model.training
    model.eval()
    k = len(data.classes)
    sums = torch.zeros(3, dtype=torch.float64)  # loss, top1, top5
    per = torch.zeros(2, k, dtype=torch.float64)  # correct, count
    stream = BatchStream(data, batch_size, mean, std, train=False, rank=rank, world=world, channels_last=channels_last)
    try:
        for x, y in stream:
            if before_batch is not None:
                before_batch()
            x, y = x.to(device), y.to(device)
            with autocast_ctx(precision, device):
                logits = model(x)
            logits = logits.float()
            sums[0] += F.cross_entropy(logits, y, reduction="sum").item()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hit1 = (top[:, 0] == y)
            sums[1] += hit1.sum().item()
            sums[2] += (top == y[:, None]).any(1).sum().item()
            per[0].index_add_(0, y.cpu(), hit1.double().cpu())
            per[1].index_add_(0, y.cpu(), torch.ones_like(y, dtype=torch.float64).cpu())
    finally:
        model.train(was)
    if world > 1:
        import torch.distributed as dist
        dist.all_reduce(sums)
        dist.all_reduce(per)
    n = int(per[1].sum().item())
    return {
        "n": n,
        "loss": sums[0].item() / max(n, 1),
        "top1": 100.0 * sums[1].item() / max(n, 1),
        "top5": 100.0 * sums[2].item() / max(n, 1),
        "per_class": {c: (100.0 * per[0, i].item() / per[1, i].item() if per[1, i] else float("nan"))
                      for i, c in enumerate(data.classes)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.evaluate", description="Re-compute test accuracy from a checkpoint.")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--arch", default=None,
                    help="architecture of a checkpoint without SE Lens metadata (registry name, timm:<name> or "
                         "torchvision:<name>); ignored when the file has metadata")
    ap.add_argument("--se-config", default=None,
                    help="SE config of such a file as JSON, e.g. '{\"reduction\": 8}' (default: the architecture's)")
    ap.add_argument("--data", default="cifar10-jpeg", help="cifar10-jpeg | torchvision-cifar10:ROOT | ImageFolder path; with @val=N, split "
                         "'test' is the N held-out training images a 'train --data ...@val=N' run reports on")
    ap.add_argument("--split", default="test")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--test-subset", type=int, default=None,
                    help="evaluate on the same N-image subset that 'train --test-subset N' reports on")
    args = ap.parse_args(argv)
    try:
        try:
            se = SEConfig.from_json(args.se_config) if args.se_config else None
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"--se-config is not a valid SE config ({e})") from None
        model, meta = build_from_checkpoint(args.checkpoint, args.arch, se)
        data = load_dataset(args.data, args.split, tuple(meta.input_size))
    except (CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.test_subset:
        data = data.subset(eval_subset_indices(len(data), args.test_subset))
    t0 = time.perf_counter()
    res = evaluate(model, data, meta.mean, meta.std, batch_size=args.batch_size, precision=args.precision)
    res.update(checkpoint=args.checkpoint, data=data.name, seconds=round(time.perf_counter() - t0, 2))
    for c, a in res["per_class"].items():
        print(f"{c:>12s} {a:6.2f}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
