"""Inspect page: rerun after an upload (AppTest, whole page) vs the raw compute behind it, in one run.

Each repeat uploads a *new* image (fresh bytes, so nothing is served from ``st.cache_data``)
next to the two default samples, and times ``AppTest.run()``; interleaved with it, the raw
compute on the same three images: :func:`se_core.inspect_ops.inspect` (both probed forwards,
z, s, energy). Also reported: a rerun with nothing changed (everything cached). Uses the
shipped weights if present, else random-init checkpoints in a temp dir (timing does not depend
on the weights). Last line: ``page_vs_compute_ratio <median page rerun / median compute>``.
"""
from __future__ import annotations

import argparse
import atexit
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, machine
from PIL import Image


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _ensure_weights() -> str:
    """The data dir to use: the real one if the default pair's weights exist, else a temp random-init one."""
    import se_core.pairs as pairs
    from se_core.checkpoints import CheckpointMeta, save_checkpoint
    from se_core.registry import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, get_spec

    spec = pairs.PAIRS[pairs.DEFAULT_PAIR]
    if spec.se_weights.path().is_file() and spec.vanilla_weights.path().is_file():
        return f"trained weights in {pairs.DATA_DIR}"
    tmp = Path(tempfile.mkdtemp(prefix="se_lens_bench_"))
    atexit.register(shutil.rmtree, tmp, True)
    torch.manual_seed(0)
    for arch, ref in ((spec.se_arch, spec.se_weights), (spec.vanilla_arch, spec.vanilla_weights)):
        s = get_spec(arch)
        meta = CheckpointMeta(arch=arch, se_config=None if s.default_se is None else json.loads(s.default_se.to_json()),
                              class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD, input_size=(32, 32))
        save_checkpoint(tmp / ref.location, s.build(), meta)
    pairs.DATA_DIR = tmp
    os.environ["SE_LENS_DATA_DIR"] = str(tmp)
    return "random-init weights in a temp dir (trained ones not found)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    weights = _ensure_weights()

    from streamlit.testing.v1 import AppTest

    from se_core import inspect_ops as ops
    from se_core.images import decode_image
    from se_core.pairs import DEFAULT_PAIR, load_pair
    from se_core.samples import read_sample

    print(f"# machine: {machine()}; torch threads {torch.get_num_threads()}; {weights}")
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("../pages/inspector.py")
    at.run()  # loads the models (st.cache_resource) and computes the default samples
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    samples = [decode_image(read_sample(n)) for n in at.multiselect(key="inspect_samples").value]
    pair = load_pair(DEFAULT_PAIR)

    seed = iter(range(1000, 100000))
    page_t, compute_t, cached_t = [], [], []

    def page_rerun() -> float:
        at.file_uploader[0].set_value((f"upload_{next(seed)}.png", _png(next(seed)), "image/png"))
        t = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
        return dt

    def compute() -> float:
        imgs = [decode_image(_png(next(seed)))] + samples
        t = time.perf_counter()
        ops.inspect(pair, imgs, [f"img{i}" for i in range(len(imgs))])
        return time.perf_counter() - t

    def cached_rerun() -> float:
        t = time.perf_counter()
        at.run()
        return time.perf_counter() - t

    for _ in range(2):  # warm-up
        page_rerun(), compute(), cached_rerun()
    for _ in range(a.repeats):
        page_t.append(page_rerun())
        compute_t.append(compute())
        cached_t.append(cached_rerun())
    n_img = 1 + len(samples)
    n_charts = len(at.get("plotly_chart"))
    med = {k: statistics.median(v) for k, v in (("page", page_t), ("compute", compute_t), ("cached", cached_t))}
    print(f"# {n_img} images (1 fresh upload + {len(samples)} default samples), {n_charts} charts on the page, "
          f"median of {a.repeats} interleaved repeats")
    print(f"{'what':<44}{'median ms':>10}{'min ms':>9}{'max ms':>9}")
    for label, key, v in (("page rerun after an upload (AppTest)", "page", page_t),
                          ("raw compute: inspect_ops.inspect (2 models)", "compute", compute_t),
                          ("page rerun, nothing changed (cached)", "cached", cached_t)):
        print(f"{label:<44}{1e3 * med[key]:>10.1f}{1e3 * min(v):>9.1f}{1e3 * max(v):>9.1f}")
    print(f"page_vs_compute_ratio {med['page'] / med['compute']:.2f}")


if __name__ == "__main__":
    main()
