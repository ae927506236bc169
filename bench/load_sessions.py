"""Eight browser sessions on one server and one cached SE-ResNet-50 pair: two attribute, six inspect.

A real ``streamlit run`` server on loopback (random weights for ``imagenet-resnet50-rsb-a1`` in temp
timm/torch hub caches, ``tests/fake_hub.py``; timing does not depend on the weights) and headless
Debian Chromium driven by Playwright's async API, one browser context (one Streamlit session) per user:

1. **Alone**: ``--alone`` Inspect sessions one after another, each uploading one 224x224 image next to the
   page's two default samples; upload -> the gate heatmap of that image drawn and the page settled.
2. **Under load**: two sessions on Attributions compute the four Captum methods for both models again
   and again (a new upload each time one finishes), and meanwhile six Inspect sessions each upload one
   image, staggered by ``--gap`` seconds (users do not all click at the same instant), timed as in 1.
3. **Burst**: the same six uploads at the same instant, still beside the two attributing sessions
   (a CPU-bound worst case: six probes' work on the cores there are).

Each Inspect session's gate heatmap is compared with a direct probe of its own image
(:func:`se_core.probe.sites.probe` on the same weights); any difference beyond float32 batch rounding
fails the run. The server runs its torch ops on ``--threads`` threads per session (``OMP_NUM_THREADS``).

The browser is a load generator that competes with the system under test: eight pages rendering in
software took 1.5-1.9 of this machine's two cores and starved the server (``top`` during a run,
session 9). ``--client protocol`` drives the same sessions through Streamlit's own websocket protocol
without rendering (``tests/e2e/stclient.py``): the server's latency as users on their own machines see it,
timed from the rerun request to the server's ``script_finished``. ``--split`` instead pins the server
to the upper half of the cores and the browser to the lower half (the single-user baseline under the
same split). ``--background-nice N`` sets the server's ``SE_LENS_BACKGROUND_NICE`` (0: attributions at
the pages' own priority).
Last line: ``inspect_under_load_ratio <slowest staggered Inspect rerun / median alone>`` (the issue's
goal: every rerun within 2x its time with one user).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, machine
from PIL import Image

sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
import stclient  # noqa: E402
from browsing import CHARTS_JS, CHROMIUM, CHROMIUM_ARGS, chart_array, wait_idle  # noqa: E402
from fake_hub import cache_env, write_pair  # noqa: E402
from streamlit_server import launch, stop  # noqa: E402
from support import subprocess_env  # noqa: E402

PAIR = "imagenet-resnet50-rsb-a1"
ATOL = 1e-3  # the page probes a batch of three images, the direct probe one: float32 batch-order rounding
DEFAULTS = ("cat_0000", "ship_0000")  # the Inspect page's default samples, beside each upload


def _sources() -> list[Path]:
    """Every shipped sample but the page's defaults, each a different photo."""
    return [p for p in sorted((ROOT / "data" / "samples").glob("*.png")) if p.stem not in DEFAULTS]


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and all its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)], cpu[int(d.name)] = int(f[1]), (int(f[11]) + int(f[12])) / tick
    kids: dict[int, list[int]] = {}
    for pid, pp in parent.items():
        kids.setdefault(pp, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += kids.get(pid, [])
    return total


class _Meter:
    """Cores used by the server and by everything else this bench started (the browser) between marks."""

    def __init__(self, server_pid: int) -> None:
        self.server, self.marks = server_pid, []

    def mark(self, label: str) -> None:
        srv, allcpu = _tree_cpu(self.server), _tree_cpu(os.getpid())
        self.marks.append((label, time.monotonic(), srv, allcpu - srv - time.process_time()))

    def phases(self) -> list[tuple[str, float, float, float]]:
        """(phase, seconds, server cores, browser cores) between consecutive marks."""
        return [(b[0], b[1] - a[1], (b[2] - a[2]) / (b[1] - a[1]), (b[3] - a[3]) / (b[1] - a[1]))
                for a, b in zip(self.marks, self.marks[1:])]


def _images(folder: Path, n: int, tag: str, start: int = 0) -> list[Path]:
    """``n`` different 224x224 photos (shipped CIFAR-10 samples ``start``, ``start + 1``, ... enlarged, mirrored
    once all are used; random pixels if there are none)."""
    sources, out = _sources(), []
    for i in range(start, start + n):
        if sources:
            src = sources[i % len(sources)]
            img, name = Image.open(src).convert("RGB"), src.stem
            if (i // len(sources)) % 2:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            img, name = Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)), "noise"
        p = folder / f"{tag}{i}_{name}.png"
        img.resize((224, 224), Image.BILINEAR).save(p, format="PNG")
        out.append(p)
    return out


async def _open(browser, url: str, frames: list[float] | None = None):
    """A new session on ``url``; ``frames`` collects the arrival times of the server's websocket messages."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    ctx.set_default_timeout(600_000)
    page = await ctx.new_page()
    if frames is not None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.monotonic())))
    await page.goto(url, wait_until="domcontentloaded")
    await wait_idle(page, 800, timeout_ms=600_000)
    return ctx, page


async def _inspect(browser, url: str, image: Path, go: asyncio.Event, delay: float) -> dict:
    """One Inspect session: open the page, wait for ``go`` (+ ``delay`` s), upload, time until drawn."""
    frames: list[float] = []  # when the server's messages (the rerun's deltas) reached the browser
    ctx, page = await _open(browser, f"{url}/inspect?pair={PAIR}", frames)
    try:
        await go.wait()
        await asyncio.sleep(delay)
        t0 = time.monotonic()
        await page.locator("input[type=file]").first.set_input_files(str(image))
        t_up = time.monotonic()
        await page.wait_for_function(
            "name => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.layout && g.layout.meta"
            " && g.layout.meta.chart === 'gate_heatmap' && g.layout.meta.image === name)", arg=image.name,
            timeout=600_000)
        t_drawn = time.monotonic()
        await wait_idle(page, timeout_ms=600_000)
        seconds = time.monotonic() - t0
        mine = [f - t0 for f in frames if f >= t_up]
        split = {"upload": t_up - t0, "first_delta": mine[0] if mine else float("nan"),
                 "last_delta": mine[-1] if mine else float("nan"), "drawn": t_drawn - t0}
        charts = await page.evaluate(CHARTS_JS)
        heat = [c for c in charts if c["meta"].get("chart") == "gate_heatmap"]
        top5 = [c for c in charts if c["meta"].get("chart") == "top5" and c["meta"].get("image") == image.name]
        return {"image": image, "seconds": seconds, "start": t0, "heat": heat, "top5": top5, "split": split,
                "errors": await page.get_by_test_id("stAlertContentError").all_inner_texts(),
                "exceptions": await page.get_by_test_id("stException").count()}
    finally:
        await ctx.close()


async def _attribute(browser, url: str, images: list[Path], rounds: list[float]) -> None:
    """One Attributions session computing again and again (a new upload each round) until cancelled;
    each finished round's seconds appended to ``rounds``."""
    ctx, page = await _open(browser, f"{url}/attributions?pair={PAIR}")  # the default sample's attributions
    try:
        for image in images:
            t0 = time.monotonic()
            await page.locator("input[type=file]").first.set_input_files(str(image))
            await wait_idle(page, 800, timeout_ms=600_000)
            rounds.append(time.monotonic() - t0)
            assert await page.get_by_test_id("stException").count() == 0, "exception on Attributions"
    finally:
        await ctx.close()


async def _inspect_protocol(url: str, image: Path, go: asyncio.Event, delay: float) -> dict:
    """One Inspect session through the protocol client: open, wait for ``go`` (+ ``delay`` s), upload, time
    from the upload's start until the server finished the rerun."""
    s = stclient.Session(url, "inspect", f"pair={PAIR}")
    try:
        first = await s.open()
        await go.wait()
        await asyncio.sleep(delay)
        t0 = time.monotonic()
        run = await s.upload(stclient.uploader_id(first), [image])
        assert run.status == "FINISHED_SUCCESSFULLY", run.status
        charts = run.charts()
        return {"image": image, "seconds": run.finished - t0, "start": t0, "bytes": run.bytes,
                "heat": [c for c in charts if c["meta"].get("chart") == "gate_heatmap"],
                "top5": [c for c in charts if c["meta"].get("chart") == "top5" and c["meta"].get("image") == image.name],
                "split": {"upload": run.asked - t0, "first_delta": run.first - t0, "last_delta": run.finished - t0,
                          "drawn": float("nan")},
                "errors": [e.alert.body for e in run.of_type("alert") if e.alert.format == 1],
                "exceptions": len(run.of_type("exception"))}
    finally:
        await s.close()


async def _attribute_protocol(url: str, images: list[Path], rounds: list[float]) -> None:
    """One Attributions session through the protocol client, computing again and again until cancelled."""
    s = stclient.Session(url, "attributions", f"pair={PAIR}")
    try:
        first = await s.open()
        uid = stclient.uploader_id(first)
        for image in images:
            t0 = time.monotonic()
            run = await s.upload(uid, [image])
            rounds.append(time.monotonic() - t0)
            assert not run.of_type("exception"), "exception on Attributions"
    finally:
        await s.close()


def _direct(images: list[Path]) -> dict[str, tuple[np.ndarray, dict[str, float]]]:
    """Each image's SE gates (padded as the page's heatmap pads them) and class probabilities, by a direct probe."""
    from se_core.analysis import inspect as ops
    from se_core.data.images import decode_image
    from se_core.models.pairs import load_pair
    from se_core.probe.sites import probe

    se = load_pair(PAIR).se
    out = {}
    for p in images:
        res = probe(se.model, ops.batch_tensor([decode_image(p.read_bytes())], ops.preprocess_for(se)))
        probs = res.logits.double().softmax(1)[0].numpy()
        out[p.name] = (ops.padded_matrix([g.double().numpy() for g in res.gate_matrix(0)[1]]),
                       dict(zip(se.meta.class_names, probs)))
    return out


def _check(results: list[dict], want: dict[str, tuple[np.ndarray, dict[str, float]]]) -> tuple[float, float]:
    """Every session shows its own image: its gate heatmap and SE top-5 equal a direct probe of that image, and
    the top-5 is closer to it than to any other image's (random weights keep the gates themselves nearly
    image-independent). (largest difference from its own probe, smallest from another image's)"""
    worst, closest = 0.0, float("inf")
    for r in results:
        me = r["image"].name
        assert r["exceptions"] == 0 and not r["errors"], (me, r["errors"])
        (heat,) = r["heat"]
        assert heat["meta"]["image"] == me, (me, heat["meta"])
        z = chart_array(heat["data"][0]["z"])
        gates, probs = want[me]
        assert z.shape == gates.shape, (me, z.shape, gates.shape)
        diff = float(np.nanmax(np.abs(z - gates)))
        (top5,) = r["top5"]
        se_trace = top5["data"][0]
        shown = chart_array(se_trace["x"])
        classes = list(se_trace["y"])
        diff = max(diff, float(np.max(np.abs(shown - [probs[c] for c in classes]))))
        assert diff <= ATOL, f"{me}: the page differs from a direct probe by {diff:.2e}"
        nearest = min(float(np.max(np.abs(shown - [w[1][c] for c in classes]))) for k, w in want.items() if k != me)
        assert diff < nearest, f"{me}: its top-5 is as close to another image's probabilities ({nearest:.2e})"
        worst, closest = max(worst, diff), min(closest, nearest)
    return worst, closest


@contextlib.asynccontextmanager
async def _clients(kind: str):
    """(inspect, attribute) session functions of the chosen client, the browser open while in use."""
    if kind == "protocol":
        yield _inspect_protocol, _attribute_protocol
        return
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield functools.partial(_inspect, browser), functools.partial(_attribute, browser)
        finally:
            await browser.close()


async def _main(url: str, folder: Path, a: argparse.Namespace, meter: _Meter) -> dict:
    alone_imgs = _images(folder, a.alone, "alone", 1)  # every Inspect upload a different photo
    stag_imgs, burst_imgs = _images(folder, 6, "stag", 1 + a.alone), _images(folder, 6, "burst", 7 + a.alone)
    attr_imgs = [_images(folder, 12, f"attr{k}_", 12 * k) for k in range(2)]
    async with _clients(a.client) as (inspect, attribute):
        now = asyncio.Event()
        now.set()
        warm = await inspect(url, _images(folder, 1, "warm", 0)[0], now, 0)  # models loaded and warm
        await attribute(url, [], [])  # the page's default sample attributed once, so that both attributing
        # sessions (which open on it) go straight to their own images instead of one waiting for the other
        meter.mark("start")
        alone = [await inspect(url, p, now, 0) for p in alone_imgs]
        meter.mark("one user on Inspect")

        rounds: list[float] = []
        attrs = [asyncio.create_task(attribute(url, imgs, rounds)) for imgs in attr_imgs]
        await asyncio.sleep(a.attr_head_start)  # both attributions under way
        go = asyncio.Event()
        tasks = [asyncio.create_task(inspect(url, p, go, i * a.gap)) for i, p in enumerate(stag_imgs)]
        go.set()
        meter.mark("two attributing, before the uploads")
        staggered = await asyncio.gather(*tasks)
        meter.mark("six staggered uploads")
        go2 = asyncio.Event()
        tasks = [asyncio.create_task(inspect(url, p, go2, 0)) for p in burst_imgs]
        go2.set()
        burst = await asyncio.gather(*tasks)
        meter.mark("six uploads at once")
        for t in attrs:  # the sessions on Attributions leave (their unfinished round is not counted)
            t.cancel()
        errors = [e for e in await asyncio.gather(*attrs, return_exceptions=True)
                  if not isinstance(e, asyncio.CancelledError)]
        assert not errors, errors
    return {"warm": warm, "alone": alone, "staggered": staggered, "burst": burst, "attr_rounds": rounds,
            "images": [warm["image"], *alone_imgs, *stag_imgs, *burst_imgs]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch threads per server session (OMP_NUM_THREADS)")
    ap.add_argument("--alone", type=int, default=3, help="single-user Inspect reruns (their median is the baseline)")
    ap.add_argument("--gap", type=float, default=4.0, help="seconds between the staggered Inspect uploads")
    ap.add_argument("--attr-head-start", type=float, default=5.0)
    ap.add_argument("--client", choices=("browser", "protocol"), default="browser",
                    help="real Chromium pages, or Streamlit's protocol without rendering (tests/e2e/stclient.py)")
    ap.add_argument("--split", action="store_true", help="server on the upper half of the cores, the browser on the rest")
    ap.add_argument("--background-nice", type=int, default=None,
                    help="the server's SE_LENS_BACKGROUND_NICE (default: the app's own default)")
    a = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = set(cores[len(cores) // 2:]) if a.split and len(cores) >= 2 else None
    if server_cpus:
        os.sched_setaffinity(0, set(cores) - server_cpus)  # this script, Playwright's driver and the browser
    with tempfile.TemporaryDirectory(prefix="se_lens_load_") as tmp:
        root = Path(tmp)
        env, cache = cache_env(root / "hub")
        os.environ.update(env)  # the direct probe in this process reads the same caches
        write_pair(PAIR, cache)
        server_env = subprocess_env(**env, SE_LENS_STATS_CACHE=str(root / "stats"), SE_LENS_USER_DIR=str(root / "user"),
                                    SE_LENS_ALLOW_DOWNLOAD="0", PYTHONUNBUFFERED="1")
        server_env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
        if a.background_nice is not None:
            server_env["SE_LENS_BACKGROUND_NICE"] = str(a.background_nice)
        (root / "img").mkdir()
        proc, url = launch(server_env, root / "streamlit.log", server_cpus)
        try:
            t0 = time.monotonic()
            meter = _Meter(proc.pid)
            res = asyncio.run(_main(url, root / "img", a, meter))
            wall = time.monotonic() - t0
        finally:
            stop(proc)
        log = (root / "streamlit.log").read_text(errors="replace")
        want = _direct(res["images"])

    base = statistics.median(r["seconds"] for r in res["alone"])
    stag = [r["seconds"] for r in res["staggered"]]
    burst = [r["seconds"] for r in res["burst"]]
    rounds = res["attr_rounds"]
    split = (f"server on cores {sorted(server_cpus)}, clients on {sorted(set(cores) - server_cpus)}" if server_cpus
             else "server and clients on all cores")
    nice = server_env.get("SE_LENS_BACKGROUND_NICE", "default")
    print(f"# machine: {machine()}; server torch threads per session {a.threads}; pair {PAIR} (random weights); "
          f"{a.client} clients; {split}; SE_LENS_BACKGROUND_NICE {nice}; whole run {wall:.0f} s")
    print(f"{'what':<58}{'median s':>9}{'max s':>8}{'x alone':>9}")
    alone_label = f"Inspect rerun after an upload, one user (n={len(res['alone'])})"
    print(f"{alone_label:<58}{base:>9.2f}"
          f"{max(r['seconds'] for r in res['alone']):>8.2f}{1:>9.2f}")
    for label, xs in ((f"... 6 users staggered by {a.gap:g} s, 2 attributing", stag),
                      ("... 6 users at the same instant, 2 attributing", burst)):
        print(f"{label:<58}{statistics.median(xs):>9.2f}{max(xs):>8.2f}{max(xs) / base:>9.2f}")
    print("# where an Inspect rerun's seconds go (median over the phase's sessions, seconds after the upload began):")
    print(f"{'phase':<14}{'upload done':>12}{'first delta':>12}{'last delta':>12}{'heatmap drawn':>14}{'settled':>9}")
    for label, rs in (("one user", res["alone"]), ("staggered", res["staggered"]), ("at once", res["burst"])):
        cols = [statistics.median(r["split"][k] for r in rs) for k in ("upload", "first_delta", "last_delta", "drawn")]
        print(f"{label:<14}" + "".join(f"{c:>12.2f}" for c in cols[:3]) + f"{cols[3]:>14.2f}"
              f"{statistics.median(r['seconds'] for r in rs):>9.2f}")
    sent = [r["bytes"] for r in res["alone"] if "bytes" in r]
    if sent:
        print(f"# the server sent {statistics.median(sent) / 1e6:.2f} MB per Inspect rerun (protobuf; what a browser parses)")
    if rounds:
        attr_label = f"Attributions page, 4 methods x 2 models (n={len(rounds)} rounds)"
        print(f"{attr_label:<58}"
              f"{statistics.median(rounds):>9.2f}{max(rounds):>8.2f}{'':>9}")
    assert "Traceback" not in log, log[-4000:]
    worst, closest = _check([res["warm"], *res["alone"], *res["staggered"], *res["burst"]], want)
    print(f"# every page's gates and top-5 equal a direct probe of its own image (largest difference {worst:.1e}, "
          f"tolerance {ATOL:g}; nearest other image's top-5 {closest:.1e}); no exception, error box or traceback")
    print(f"{'phase':<40}{'seconds':>9}{'server cores':>14}{'browser cores':>15}  (of {os.cpu_count()})")
    for label, secs, srv, brw in meter.phases():
        print(f"{label:<40}{secs:>9.1f}{srv:>14.2f}{brw:>15.2f}")
    print(f"inspect_burst_ratio {max(burst) / base:.2f}")
    print(f"inspect_under_load_ratio {max(stag) / base:.2f}")


if __name__ == "__main__":
    main()
