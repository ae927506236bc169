"""Probed vs plain forward, side by side in one run (median of interleaved repeats).

CIFAR ResNet-20 pair at batch 256 (32x32) and ResNet-50 vs SE-ResNet-50 at batch 8 (224x224),
random weights (timing does not depend on them). Last line: ``probe_overhead_ratio <worst>``.
"""
from __future__ import annotations

import argparse

import torch
from _common import interleaved, machine

from se_core.nn.resnet import cifar_resnet, resnet50
from se_core.nn.se import SEConfig
from se_core.probe.sites import probe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"# machine: {machine()}")
    cases = [("resnet20", cifar_resnet(20), 256, 32), ("se_resnet20", cifar_resnet(20, SEConfig()), 256, 32),
             ("resnet50", resnet50(), 8, 224), ("se_resnet50", resnet50(SEConfig()), 8, 224)]
    worst = 0.0
    print(f"{'model':<14}{'batch':>6}{'plain ms':>11}{'probed ms':>11}{'ratio':>8}")
    for name, model, batch, size in cases:
        model.eval()
        x = torch.randn(batch, 3, size, size)
        reps = a.repeats if size == 32 else max(5, a.repeats // 3)

        def plain(model: torch.nn.Module = model, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                model(x)

        t = interleaved({"plain": plain, "probed": lambda model=model, x=x: probe(model, x)}, reps)
        ratio = t["probed"] / t["plain"]
        worst = max(worst, ratio)
        print(f"{name:<14}{batch:>6}{1e3 * t['plain']:>11.1f}{1e3 * t['probed']:>11.1f}{ratio:>8.3f}")
    print(f"probe_overhead_ratio {worst:.3f}")


if __name__ == "__main__":
    main()
