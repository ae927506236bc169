"""What batching Integrated Gradients' steps and running Occlusion without autograd gain, side by side.

Random-weight SE-ResNet-20 (32x32) and SE-ResNet-50 (224x224; this project's SE unit on torchvision's
ResNet-50; timing does not depend on the weights), one image each, the page's defaults otherwise
(32 IG steps). Interleaved, median of ``--repeats``:

- Integrated Gradients with ``internal_batch_size`` 1, 4, 16 (the default) and 32: Captum runs the
  32 interpolation points that many at a time through forward and backward.
- Occlusion (forward passes only) with autograd on around the whole method (as
  :func:`se_core.analysis.attribution.attribute` ran it before) against the same call under
  ``torch.inference_mode`` (as it runs now).

Last line: ``ig_internal_batch16_speedup <seconds at 1 / seconds at 16>`` (SE-ResNet-50).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _common import interleaved, machine

from se_core.analysis import attribution as A
from se_core.nn.resnet import cifar_resnet, resnet50
from se_core.nn.se import SEConfig


def _occlusion(model: torch.nn.Module, x: torch.Tensor, cfg: A.AttributionConfig, grad: bool) -> Callable[[], object]:
    """The Captum call of :func:`A.attribute` alone, in a private view with autograd on or in inference mode."""
    def run() -> object:
        with A._private(model, grad=grad) as view:
            return A._captum(view, x.clone(), 0, cfg)
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    models = {"SE-ResNet-20 (32x32)": (cifar_resnet(20, SEConfig()).eval(), torch.randn(1, 3, 32, 32), 8, 4),
              "SE-ResNet-50 (224x224)": (resnet50(SEConfig()).eval(), torch.randn(1, 3, 224, 224), 32, 16)}
    print(f"# machine: {machine()}; torch threads {torch.get_num_threads()}; median of {a.repeats} interleaved runs")
    print(f"{'model':<24}{'what':<44}{'seconds':>9}{'x':>7}")
    speedup = {}
    for label, (model, x, win, stride) in models.items():
        ig = {f"IG, internal_batch_size {b}": (lambda b=b, m=model, x=x: A.attribute(
            m, x, 0, A.AttributionConfig("integrated_gradients", internal_batch_size=b))) for b in (1, 4, 16, 32)}
        occ_cfg = A.AttributionConfig("occlusion", occlusion_window=win, occlusion_stride=stride)
        occ = {f"Occlusion {win}/{stride}, autograd on": _occlusion(model, x, occ_cfg, True),
               f"Occlusion {win}/{stride}, torch.inference_mode (as attribute)": _occlusion(model, x, occ_cfg, False)}
        for name, group in (("ig", ig), ("occ", occ)):
            t = interleaved(group, a.repeats, warmup=1)
            first = next(iter(t.values()))
            for k, v in t.items():
                print(f"{label:<24}{k:<44}{v:>9.3f}{first / v:>7.2f}")
            if name == "ig":
                speedup[label] = first / t["IG, internal_batch_size 16"]
    print(f"ig_internal_batch16_speedup {speedup['SE-ResNet-50 (224x224)']:.2f}")


if __name__ == "__main__":
    main()
