"""A probe while another thread attributes: on the same cached model, and on a separate copy, side by side.

Random-weight SE-ResNet-50 (this project's SE unit on torchvision's ResNet-50; timing does not
depend on the weights), one 224x224 image. A background thread runs Integrated Gradients (``--steps``)
again and again, either on the very model the probe uses (what a shared Streamlit server does) or
on a deep copy of it (nothing shared: the floor, the same CPU sharing without any coordination).
The probe's median latency is measured under each, alternating, after one probe alone for
reference. Last line: ``probe_during_attribution_ratio <same model / copy>`` (1.0: sharing the
model costs a probe nothing beyond the CPU it shares).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import threading
import time

import torch
from _common import machine

from se_core.analysis.attribution import AttributionConfig, attribute
from se_core.nn.resnet import resnet50
from se_core.nn.se import SEConfig
from se_core.probe.sites import probe


def _probe_ms(model: torch.nn.Module, x: torch.Tensor, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        probe(model, x)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _during(probed: torch.nn.Module, attributed: torch.nn.Module, x: torch.Tensor, cfg: AttributionConfig,
            n: int) -> float:
    """Median probe latency (ms) on ``probed`` while a thread keeps attributing ``attributed``."""
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            attribute(attributed, x, 0, cfg)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    time.sleep(1.0)  # the attribution is under way
    try:
        return _probe_ms(probed, x, n)
    finally:
        stop.set()
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps of the background attribution")
    ap.add_argument("--probes", type=int, default=7, help="probes timed under each condition, per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"# machine: {machine()}")
    torch.manual_seed(0)
    model = resnet50(SEConfig()).eval()
    twin = copy.deepcopy(model)
    x = torch.randn(1, 3, 224, 224)
    cfg = AttributionConfig("integrated_gradients", n_steps=a.steps, internal_batch_size=8)
    probe(model, x)  # warm-up
    alone = _probe_ms(model, x, a.probes)
    same, separate = [], []
    for _ in range(a.rounds):
        same.append(_during(model, model, x, cfg, a.probes))
        separate.append(_during(model, twin, x, cfg, a.probes))
    s, c = statistics.median(same), statistics.median(separate)
    print(f"{'condition':<42}{'probe ms':>10}")
    print(f"{'alone':<42}{alone:>10.1f}")
    print(f"{'during IG on the same model':<42}{s:>10.1f}")
    print(f"{'during IG on a copy (nothing shared)':<42}{c:>10.1f}")
    print(f"probe_during_attribution_ratio {s / c:.3f}")


if __name__ == "__main__":
    main()
