"""Trainer vs a bare hand-written loop: same model, same cached data, same precision, one run.

Each round trains one epoch on a fixed subset with ``se_core.runs.train.train`` (its training-phase
img/s from metrics.csv, evaluation excluded) and one epoch with a minimal loop (index the uint8
cache, normalize, forward/backward/step), alternating so both see the same machine load.
Last line: ``trainer_vs_bare_ratio <median trainer img/s / median bare img/s>``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _common import machine

from se_core.analysis.evaluate import autocast_ctx
from se_core.data.datasets import cifar10_jpeg, normalize
from se_core.models.registry import get_spec
from se_core.runs.train import TrainConfig, resolve_precision, train


def bare_epoch(cfg: TrainConfig, n: int) -> float:
    spec = get_spec(cfg.arch)
    data = cifar10_jpeg("train")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(1234))[:n]
    images, labels = data.images[idx], data.labels[idx]
    torch.manual_seed(cfg.seed)
    model = spec.build(cfg.se_config()).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    precision = resolve_precision(cfg.precision, torch.device("cpu"))
    t0, seen = time.perf_counter(), 0
    for i in range(n // cfg.batch_size):
        sl = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
        x = normalize(images[sl], spec.mean, spec.std, channels_last=True)
        with autocast_ctx(precision, torch.device("cpu")):
            out = model(x)
        loss = F.cross_entropy(out.float(), labels[sl], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="se_resnet20_cifar")
    ap.add_argument("--images", type=int, default=6400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"# machine: {machine()}")
    cfg = TrainConfig(arch=a.arch, epochs=1, train_subset=a.images, test_subset=200, probe_per_class=2)
    trainer, bare = [], []
    for r in range(a.rounds):
        with tempfile.TemporaryDirectory() as d:
            res = train(cfg, d, progress=True)
        trainer.append(res.metrics[-1]["img_per_s"])
        bare.append(bare_epoch(cfg, a.images))
        print(f"round {r + 1}: trainer {trainer[-1]:.0f} img/s, bare loop {bare[-1]:.0f} img/s")
    t, b = statistics.median(trainer), statistics.median(bare)
    print(f"{a.arch}: trainer {t:.0f} img/s vs bare {b:.0f} img/s (median of {a.rounds})")
    print(f"trainer_vs_bare_ratio {t / b:.3f}")


if __name__ == "__main__":
    main()
