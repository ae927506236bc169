"""channels_last against contiguous (NCHW) for one training step, in the precision the trainer would pick here.

The trainer trains in channels_last (``TrainConfig.channels_last``), chosen on a CPU with AVX-512 and
bf16. On a CPU without them the trainer runs fp32, where oneDNN's preferred layout may differ; this
measures both layouts side by side (interleaved steps, same model, same batch), per architecture.
Last line: ``channels_last_speedup <median over archs of contiguous step time / channels_last step time>``.
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from _common import interleaved, machine

from se_core.analysis.evaluate import autocast_ctx
from se_core.models.registry import get_spec
from se_core.runs.train import resolve_precision


def step_fn(arch: str, channels_last: bool, precision: str, batch: int):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = get_spec(arch).build().to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with autocast_ctx(precision, torch.device("cpu")):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="resnet20_cifar,se_resnet20_cifar")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    precision = resolve_precision("auto", torch.device("cpu"))
    print(f"# machine: {machine()}; precision {precision}; {a.threads} thread(s); batch {a.batch}")
    ratios = []
    for arch in a.archs.split(","):
        t = interleaved({"channels_last": step_fn(arch, True, precision, a.batch),
                         "contiguous": step_fn(arch, False, precision, a.batch)}, a.repeats)
        ratios.append(t["contiguous"] / t["channels_last"])
        print(f"{arch}: channels_last {a.batch / t['channels_last']:.0f} img/s, contiguous "
              f"{a.batch / t['contiguous']:.0f} img/s (median of {a.repeats} interleaved steps)")
    print(f"channels_last_speedup {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
