"""SE overhead in forward time: ResNet-50 vs SE-ResNet-50, ours and timm's, side by side.

Four models with random weights (timing does not depend on them): this project's ResNet-50 and
SE-ResNet-50 (``se_core.models.resnet50``, r = 16), and timm's ``resnet50`` / ``seresnet50``. One
interleaved timing loop (median of repeats, see ``_common.interleaved``) at batch 8, 224x224, on
the device present (GPU if any, else CPU), so all four see the same machine load. Parameters and
FLOPs come from ``FlopCounterMode`` (one image; it counts convolutions and matrix products, so the
SE unit's two FC layers (1x1 convs) are counted but its pooling, gating and channel scaling are
not). The SE overhead is compared with the paper's (``../shared/reference/overhead.csv``), which
timed one image on an unnamed CPU.

Last line: ``se_overhead_ratio <our SE-ResNet-50 time / our ResNet-50 time>``.
"""
from __future__ import annotations

import argparse
import csv
import time

import torch
from _common import ROOT, interleaved, machine, plain, swap_se

from se_core.models.costs import measure_cost
from se_core.nn.resnet import resnet50
from se_core.nn.se import SEConfig

REFERENCE = ROOT.parent / "shared" / "reference" / "overhead.csv"


def paper_overhead() -> dict[str, tuple[float, float]]:
    """(ResNet-50, SE-ResNet-50) of the paper's CPU time and GFLOPs rows, read from the reference CSV."""
    out: dict[str, tuple[float, float]] = {}
    try:
        with open(REFERENCE, newline="") as f:
            for row in csv.DictReader(f):
                if row["quantity"] in ("cpu_inference_time_224", "gflops_forward_224") and row["resnet50"]:
                    out[row["quantity"]] = (float(row["resnet50"]), float(row["se_resnet50"]))
    except (OSError, KeyError, ValueError):
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    import timm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev_text = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"# machine: {machine()}")
    print(f"# device: {dev_text}; batch {a.batch}, {a.size}x{a.size}, fp32, eval, no_grad; median of {a.repeats} "
          "interleaved repeats after 2 warm-ups")
    torch.manual_seed(0)
    models = {"ours resnet50": resnet50(None), "ours se_resnet50": resnet50(SEConfig()),
              "ours se_resnet50 plain": swap_se(resnet50(SEConfig()), plain),
              "timm resnet50": timm.create_model("resnet50", pretrained=False),
              "timm seresnet50": timm.create_model("seresnet50", pretrained=False)}
    costs = {k: measure_cost(m, (a.size, a.size)) for k, m in models.items()}
    x = torch.randn(a.batch, 3, a.size, a.size, device=device)
    fns, seen = {}, {k: [] for k in models}
    for k, m in models.items():
        m.to(device).eval()

        def fn(m=m, k=k) -> None:
            t0 = time.perf_counter()
            with torch.no_grad():
                m(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seen[k].append(time.perf_counter() - t0)
        fns[k] = fn
    t = interleaved(fns, a.repeats)

    print(f"{'model':<24}{'params':>12}{'GMACs/img':>11}{'ms/batch':>10}{'ms/img':>9}{'min ms':>9}{'max ms':>9}")
    for k in models:
        c, runs = costs[k], seen[k][2:]  # the timed repeats, after the warm-ups
        print(f"{k:<24}{c.params:>12,}{c.gmacs:>11.4f}{1e3 * t[k]:>10.1f}{1e3 * t[k] / a.batch:>9.2f}"
              f"{1e3 * min(runs):>9.1f}{1e3 * max(runs):>9.1f}")

    def pct(new: float, old: float) -> float:
        return 100.0 * (new - old) / old

    print("SE overhead (SE-ResNet-50 vs ResNet-50):")
    for who in ("ours", "timm"):
        v, s = f"{who} resnet50", f"{who} se_resnet50" if who == "ours" else f"{who} seresnet50"
        print(f"  {who:<5} time {t[s] / t[v]:.3f}x ({pct(t[s], t[v]):+.2f}%), params {pct(costs[s].params, costs[v].params):+.2f}%, "
              f"FLOPs {pct(costs[s].flops, costs[v].flops):+.3f}%")
    print(f"  ours vs the same unit before se_core.nn.squeeze_scale (1x1 convs): "
          f"{t['ours se_resnet50'] / t['ours se_resnet50 plain']:.3f}x")
    print(f"  ours vs timm SE-ResNet-50 time: {t['ours se_resnet50'] / t['timm seresnet50']:.3f}x; "
          f"params equal: {costs['ours se_resnet50'].params == costs['timm seresnet50'].params}")
    ref = paper_overhead()
    if "cpu_inference_time_224" in ref:
        r, s = ref["cpu_inference_time_224"]
        print(f"  paper (CPU, one 224x224 image, CPU unnamed): {r:g} vs {s:g} ms = {s / r:.3f}x ({pct(s, r):+.2f}%)")
    if "gflops_forward_224" in ref:
        r, s = ref["gflops_forward_224"]
        print(f"  paper GFLOPs: {r:g} vs {s:g} = {pct(s, r):+.2f}% (the text says about +0.26%)")
    print(f"se_overhead_ratio {t['ours se_resnet50'] / t['ours resnet50']:.3f}")


if __name__ == "__main__":
    main()
