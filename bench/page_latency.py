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


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    weights = _ensure_weights()

    from streamlit.testing.v1 import AppTest

    from se_core.analysis import inspect as ops
    from se_core.data.images import decode_image
    from se_core.data.samples import read_sample
    from se_core.models.pairs import DEFAULT_PAIR, load_pair

    print(f"# machine: {machine()}; torch threads {torch.get_num_threads()}; {weights}")

    def ok(app: AppTest) -> None:
        assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("../pages/inspector.py")
    at.run()  # loads the models (st.cache_resource) and computes the default samples
    ok(at)
    samples = [decode_image(read_sample(n)) for n in at.multiselect(key="inspect_samples").value]
    pair = load_pair(DEFAULT_PAIR)
    floor = AppTest.from_file(str(_floor_app()), default_timeout=300)
    floor.run()
    floor.switch_page("../pages/inspector.py")
    floor.run()
    ok(floor)
    bare = AppTest.from_string("import streamlit as st\n\nst.write('x')\n", default_timeout=60)
    bare.run()

    seed = iter(range(1000, 100000))

    def upload_rerun(app: AppTest) -> tuple[float, float]:
        app.file_uploader[0].set_value((f"upload_{next(seed)}.png", _png(next(seed)), "image/png"))
        dt = _timed(app.run)
        ok(app)
        return dt

    def compute() -> tuple[float, float]:
        imgs = [decode_image(_png(next(seed)))] + samples
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
    n_img = 1 + len(samples)
    n_charts = len(at.get("plotly_chart"))
    print(f"# {n_img} images (1 fresh upload + {len(samples)} default samples), {n_charts} charts on the page "
          f"(default view), median of {a.repeats} interleaved repeats")
    print(f"{'what':<46}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'cpu ms':>9}")
    med, cpu = {}, {}
    for k, v in times.items():
        wall = [w for w, _ in v]
        med[k], cpu[k] = statistics.median(wall), statistics.median(c for _, c in v)
        print(f"{k:<46}{1e3 * med[k]:>10.1f}{1e3 * min(wall):>9.1f}{1e3 * max(wall):>9.1f}{1e3 * cpu[k]:>9.1f}")
    page, comp = "page rerun after an upload (AppTest)", "raw compute: inspect_ops.inspect (2 models)"
    print(f"page_vs_compute_cpu_ratio {cpu[page] / cpu[comp]:.2f}")
    print(f"page_vs_compute_ratio {med[page] / med[comp]:.2f}")


if __name__ == "__main__":
    main()
