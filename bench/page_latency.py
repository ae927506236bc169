"""Inspect page: rerun after an upload (AppTest, whole page) vs the raw compute behind it, in one run.

Each repeat uploads a *new* image (fresh bytes, so nothing is served from ``st.cache_data``)
next to the two default samples, and times ``AppTest.run()``; interleaved with it, the raw
compute on the same three images: :func:`se_core.analysis.inspect.inspect` (both probed forwards,
z, s, energy). Also reported: a rerun with nothing changed (everything cached), and two floors
that say how much of a rerun is AppTest and the app shell rather than the page: the same app
with an Inspect page that only reads the upload (sidebar, navigation, uploader, decode), and a
bare one-line AppTest script. Each row gives wall time and CPU time (process CPU, all threads):
the machine is shared, so wall time also counts waiting for a core. Uses the shipped weights
if present, else random-init checkpoints in a temp dir (timing does not depend on the weights).
Last line: ``page_vs_compute_ratio <median page rerun / median compute>`` (wall time).

``--imagenet``: the same for the SE-ResNet-50 pair (``imagenet-resnet50-rsb-a1``, random weights in
temp timm/torch hub caches laid out as the libraries lay them out, ``tests/fake_hub.py``), with the
shipped samples cleared and three fresh 224x224 uploads per rerun; last line
``page_vs_compute_ratio_imagenet <ratio>``.
"""
from __future__ import annotations

import argparse
import atexit
import io
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, machine
from PIL import Image

IMAGENET_PAIR = "imagenet-resnet50-rsb-a1"  # timm's SE-ResNet-50 / ResNet-50 (A1 recipe)


def _png(seed: int, size: tuple[int, int] = (128, 96)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _imagenet_weights() -> str:
    """Random weights for the SE-ResNet-50 pair in temp library caches made current (nothing is downloaded)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from fake_hub import cache_env, write_pair

    tmp = Path(tempfile.mkdtemp(prefix="se_lens_bench_hub_"))
    atexit.register(shutil.rmtree, tmp, True)
    env, cache = cache_env(tmp)
    os.environ.update(env)
    torch.hub._hub_dir = None  # re-read TORCH_HOME
    write_pair(IMAGENET_PAIR, cache)
    return f"{IMAGENET_PAIR} with random weights in temp timm/torch hub caches"


def _ensure_weights() -> str:
    """The data dir to use: the real one if the default pair's weights exist, else a temp random-init one."""
    import se_core.models.pairs as pairs
    from se_core.config import data_dir
    from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
    from se_core.models.checkpoints import CheckpointMeta, save_checkpoint
    from se_core.models.registry import get_spec

    spec = pairs.PAIRS[pairs.DEFAULT_PAIR]
    if spec.se_weights.path().is_file() and spec.vanilla_weights.path().is_file():
        return f"trained weights in {data_dir()}"
    tmp = Path(tempfile.mkdtemp(prefix="se_lens_bench_"))
    atexit.register(shutil.rmtree, tmp, True)
    torch.manual_seed(0)
    for arch, ref in ((spec.se_arch, spec.se_weights), (spec.vanilla_arch, spec.vanilla_weights)):
        s = get_spec(arch)
        meta = CheckpointMeta(arch=arch, se_config=None if s.default_se is None else s.default_se.to_dict(),
                              class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD, input_size=(32, 32))
        save_checkpoint(tmp / ref.location, s.build(), meta)
    os.environ["SE_LENS_DATA_DIR"] = str(tmp)
    return "random-init weights in a temp dir (trained ones not found)"


def _floor_app() -> Path:
    """The real app (same navigation and sidebar) whose Inspect page only reads the upload: the floor."""
    tmp = Path(tempfile.mkdtemp(prefix="se_lens_floor_"))
    atexit.register(shutil.rmtree, tmp, True)
    pages = tmp / "pages"
    pages.mkdir()
    src = (ROOT / "dashboard" / "app.py").read_text()
    for name in re.findall(r'PAGES / "([\w.]+\.py)"', src):
        (pages / name).write_text("import streamlit as st\n")
    (pages / "inspector.py").write_text(
        "import streamlit as st\nfrom dashboard import state\nfrom dashboard.caching import get_pair\n"
        "from dashboard.uploads import image_inputs\n\nst.title('Inspect')\npair = get_pair(state.current_pair())\n"
        "st.write(f\"{len(image_inputs('inspect'))} images\")\n")
    line = 'PAGES = Path(__file__).resolve().parents[1] / "pages"'
    patched = src.replace(line, f"PAGES = Path({str(pages)!r})")
    assert patched != src, f"dashboard/app.py no longer defines {line}; update the floor app"
    (tmp / "app").mkdir()
    (tmp / "app" / "app.py").write_text(patched)
    return tmp / "app" / "app.py"


def _timed(fn) -> tuple[float, float]:
    """(wall s, process CPU s) of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--imagenet", action="store_true", help=f"the {IMAGENET_PAIR} pair, three 224x224 uploads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    weights = _imagenet_weights() if a.imagenet else _ensure_weights()
    pair_name = IMAGENET_PAIR if a.imagenet else None

    from streamlit.testing.v1 import AppTest

    from se_core.analysis import inspect as ops
    from se_core.data.images import decode_image
    from se_core.data.samples import read_sample
    from se_core.models.pairs import DEFAULT_PAIR, load_pair

    pair_name = pair_name or DEFAULT_PAIR

    print(f"# machine: {machine()}; torch threads {torch.get_num_threads()}; {weights}")

    def ok(app: AppTest) -> None:
        assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])

    def inspect_page(app_file: Path) -> AppTest:
        app = AppTest.from_file(str(app_file), default_timeout=300)
        app.query_params["pair"] = pair_name
        app.run()
        app.switch_page("../pages/inspector.py")
        app.run()  # loads the models (st.cache_resource) and computes the default samples
        ok(app)
        if a.imagenet and app.multiselect:  # three uploads of the model's own input size, no samples
            app.multiselect(key="inspect_samples").set_value([])
            app.run()
            ok(app)
        return app

    at = inspect_page(ROOT / "dashboard" / "app.py")
    samples = [] if a.imagenet else [decode_image(read_sample(n)) for n in at.multiselect(key="inspect_samples").value]
    pair = load_pair(pair_name)
    floor = inspect_page(_floor_app())
    bare = AppTest.from_string("import streamlit as st\n\nst.write('x')\n", default_timeout=60)
    bare.run()

    seed = iter(range(1000, 100000))

    n_up, size = (3, (224, 224)) if a.imagenet else (1, (128, 96))

    def upload_rerun(app: AppTest) -> tuple[float, float]:
        app.file_uploader[0].set_value([(f"upload_{next(seed)}.png", _png(next(seed), size), "image/png")
                                        for _ in range(n_up)])
        dt = _timed(app.run)
        ok(app)
        return dt

    def compute() -> tuple[float, float]:
        imgs = [decode_image(_png(next(seed), size)) for _ in range(n_up)] + samples
        return _timed(lambda: ops.inspect(pair, imgs, [f"img{i}" for i in range(len(imgs))]))

    rows = {  # label -> timed call, all interleaved
        "page rerun after an upload (AppTest)": lambda: upload_rerun(at),
        "raw compute: inspect_ops.inspect (2 models)": compute,
        "page rerun, nothing changed (cached)": lambda: _timed(at.run),
        "floor: app + page that only reads the upload": lambda: upload_rerun(floor),
        "floor: bare AppTest one-line script": lambda: _timed(bare.run),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
    for _ in range(2):  # warm-up
        for fn in rows.values():
            fn()
    for _ in range(a.repeats):
        for k, fn in rows.items():
            times[k].append(fn())
    n_charts = len(at.get("plotly_chart"))
    print(f"# {pair_name}: {n_up + len(samples)} images ({n_up} fresh {size[0]}x{size[1]} uploads + {len(samples)} "
          f"default samples), {n_charts} charts on the page (default view), median of {a.repeats} interleaved repeats")
    print(f"{'what':<46}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'cpu ms':>9}")
    med, cpu = {}, {}
    for k, v in times.items():
        wall = [w for w, _ in v]
        med[k], cpu[k] = statistics.median(wall), statistics.median(c for _, c in v)
        print(f"{k:<46}{1e3 * med[k]:>10.1f}{1e3 * min(wall):>9.1f}{1e3 * max(wall):>9.1f}{1e3 * cpu[k]:>9.1f}")
    page, comp = "page rerun after an upload (AppTest)", "raw compute: inspect_ops.inspect (2 models)"
    tail = "_imagenet" if a.imagenet else ""
    print(f"page_vs_compute_cpu_ratio{tail} {cpu[page] / cpu[comp]:.2f}")
    print(f"page_vs_compute_ratio{tail} {med[page] / med[comp]:.2f}")


if __name__ == "__main__":
    main()
