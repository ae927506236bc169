"""SE vs vanilla training step, side by side in one run: what an SE unit costs when training.

One bare SGD step (forward under bf16 autocast where the trainer would use it, channels_last,
cross-entropy, backward, Nesterov SGD) on random input, for each configuration below; calls
interleaved A, B, C, ... and medians taken (``_common.interleaved``), so all see the same load.

- CIFAR ResNet-20 at batch 128, 32x32, eager and under ``torch.compile``: vanilla; SE-ResNet-20
  (r = 16) as this project runs it (eager: :class:`se_core.nn.squeeze_scale.SqueezeScale`; compiled:
  inductor fuses the plain formulation); the old plain formulation (1x1 convs, autograd through
  mean and multiply); timm's ``SEModule`` in the same places with the same hidden widths.
- ResNet-50 at batch 8, 224x224, eager: vanilla, ours SE, timm's ``SEModule`` in our blocks.

Compile warm-up (the first steps) is reported apart from the steady-state step. The headline
compares each network in the configuration ``se_core.runs.train --compile auto`` picks for a full run
(compiled where a compiler exists, :func:`se_core.runs.train.resolve_compile`).

Last line: ``se_train_overhead <SE-ResNet-20 step / ResNet-20 step>``.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _common import interleaved, machine, plain, swap_se, timm_se
from torch import nn

from se_core.analysis.evaluate import autocast_ctx
from se_core.nn.resnet import cifar_resnet, resnet50
from se_core.nn.se import SEConfig
from se_core.runs.train import COMPILE_MIN_STEPS, resolve_compile, resolve_precision


def stepper(model: nn.Module, batch: int, size: int, classes: int, precision: str, compiled: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fwd = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,))
    dev = torch.device("cpu")

    def step() -> None:
        with autocast_ctx(precision, dev):
            out = fwd(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def warm(step: Callable[[], None], calls: int = 3) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        step()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-resnet50", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    precision = resolve_precision("auto", torch.device("cpu"))
    print(f"# machine: {machine()}")
    print(f"# {a.threads} torch threads, precision {precision}, channels_last; median of {a.repeats} interleaved repeats")

    r20, se = (lambda: cifar_resnet(20, None)), (lambda: cifar_resnet(20, SEConfig()))
    cifar = {
        "resnet20": r20, "se_resnet20": se, "se_resnet20 plain (before)": lambda: swap_se(se(), plain),
        "se_resnet20 timm SEModule": lambda: swap_se(se(), timm_se),
    }
    steps = {}
    for name, make in cifar.items():
        for mode in ("eager", "compiled"):
            if mode == "compiled" and name == "se_resnet20 plain (before)":
                continue  # under compile both formulations are the same graph
            steps[f"{name} {mode}"] = stepper(make(), 128, 32, 10, precision, mode == "compiled")
    for k, f in steps.items():
        print(f"# warm-up (3 steps, incl. compilation) {k}: {warm(f):.1f} s")
    t = interleaved(steps, a.repeats, warmup=1)
    auto = "compiled" if resolve_compile("auto", torch.device("cpu"), COMPILE_MIN_STEPS) else "eager"
    van = t[f"resnet20 {auto}"]
    print(f"| network (CIFAR, batch 128) | ms/step | img/s | / ResNet-20 {auto} |")
    print("| --- | --- | --- | --- |")
    for k, v in t.items():
        print(f"| {k} | {1e3 * v:.1f} | {128 / v:.0f} | {v / van:.3f} |")
    se_choice = t[f"se_resnet20 {auto}"]

    if not a.skip_resnet50:
        big = {"resnet50": resnet50(None), "se_resnet50 (ours)": resnet50(SEConfig()),
               "se_resnet50 timm SEModule": swap_se(resnet50(SEConfig()), timm_se)}
        bsteps = {k: stepper(m, 8, 224, 1000, precision, False) for k, m in big.items()}
        for f in bsteps.values():
            warm(f, 2)
        tb = interleaved(bsteps, max(5, a.repeats // 2), warmup=1)
        print("| network (ImageNet, batch 8, 224x224) | ms/step | img/s | / ResNet-50 |")
        print("| --- | --- | --- | --- |")
        for k, v in tb.items():
            print(f"| {k} | {1e3 * v:.1f} | {8 / v:.1f} | {v / tb['resnet50']:.3f} |")
        print(f"se_resnet50_train_overhead {tb['se_resnet50 (ours)'] / tb['resnet50']:.3f}")
    print(f"# the trainer's choice (--compile auto, a full run): {auto} for both")
    print(f"se_train_overhead {se_choice / van:.3f}")


if __name__ == "__main__":
    main()
