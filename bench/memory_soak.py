"""Server memory over many uploads: does one shared Streamlit server stay bounded? (not a timed test)

Starts ``streamlit run dashboard/app.py`` in its own process, then uploads ``--uploads`` distinct
images (random 64x64 PNGs, fresh bytes each time, so every one misses the caches) on the Inspect
page through headless Chromium (Playwright), waiting each time until the page shows that image's
gate heatmap. ``--mode sessions`` (default) opens each upload in a new Streamlit session (the page is
reloaded: a new user each time; the old session closes, and Streamlit keeps a disconnected session for
``server.disconnectedSessionTTL``, 120 s by default, so it can reconnect: ``--session-ttl`` changes it);
``--mode replace`` keeps one session and removes the previous file before the next upload. The
resident memory (VmRSS from ``/proc/<pid>/status``, the server and its child processes summed) is
sampled after a warm-up of ``--warmup`` uploads, every 10 uploads and after the last one; every
cache in dashboard/ and pages/ is bounded (``tests/test_cache_bounds.py``), so what grows after the
warm-up is what the bounded caches fill up to, the sessions kept for a reconnect, and allocator
noise. Uses the shipped weights if present, else random-init checkpoints in a
temp dir. Last line: ``rss_growth_mb <after - after warm-up>``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from _common import ROOT, machine
from PIL import Image

CHROMIUM = os.environ.get("SE_LENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
SHIPPED = ("se_resnet20-s0.safetensors", "resnet20-s0.safetensors")


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and all its descendants, in MB (1e6 bytes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / 1e6


def data_dir(tmp: Path) -> tuple[Path, str]:
    """The shipped data dir when both default-pair checkpoints exist, else a temp one with random-init ones."""
    real = ROOT / "data"
    if all((real / "checkpoints" / f).is_file() for f in SHIPPED):
        return real, "trained checkpoints in data/checkpoints"
    import torch

    from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
    from se_core.models.checkpoints import CheckpointMeta, save_checkpoint
    from se_core.models.registry import get_spec

    torch.manual_seed(0)
    for arch, f in (("se_resnet20_cifar", SHIPPED[0]), ("resnet20_cifar", SHIPPED[1])):
        s = get_spec(arch)
        meta = CheckpointMeta(arch=arch, se_config=None if s.default_se is None else s.default_se.to_dict(),
                              num_classes=10, class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                              input_size=(32, 32))
        save_checkpoint(tmp / "data" / "checkpoints" / f, s.build(), meta)
    return tmp / "data", "random-init checkpoints in a temp dir (trained ones not found)"


def png(seed: int, path: Path) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(path, format="PNG")
    return path


def start_server(data: Path, tmp: Path, threads: int, session_ttl: int | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SE_LENS_DATA_DIR=str(data), SE_LENS_STATS_CACHE=str(tmp / "stats"),
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    if session_ttl is not None:
        cmd += ["--server.disconnectedSessionTTL", str(session_ttl)]
    log = open(tmp / "streamlit.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server did not start; log: {(tmp / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.5)


def wait_idle(page, timeout_ms: int) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']"
                           "[data-test-script-state='notRunning']", state="attached", timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=timeout_ms)


def upload(page, path: Path, url: str, mode: str, timeout_ms: int) -> None:
    if mode == "sessions":
        page.goto(url + "/inspect", wait_until="domcontentloaded")
        wait_idle(page, timeout_ms)
    else:
        delete = page.get_by_test_id("stFileChipDeleteBtn")
        while delete.count():
            delete.first.click()
            wait_idle(page, timeout_ms)
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_function("name => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.layout && "
                           "g.layout.meta && g.layout.meta.chart === 'gate_heatmap' && g.layout.meta.image === name)",
                           arg=path.name, timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    if page.get_by_test_id("stException").count():
        raise SystemExit(f"exception on the page after {path.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=100, help="uploads measured after the warm-up")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--mode", choices=("sessions", "replace"), default="sessions")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per upload before giving up")
    ap.add_argument("--session-ttl", type=int, default=None,
                    help="server.disconnectedSessionTTL in seconds (default: Streamlit's, 120 s: a closed session's "
                         "state and uploads are kept that long for a reconnect)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="se_lens_soak_"))
    proc = None
    try:
        data, source = data_dir(tmp)
        print(f"machine: {machine()}\nweights: {source}\nmode: {args.mode}, {args.warmup} warm-up + "
              f"{args.uploads} measured uploads of distinct 64x64 PNGs on /inspect; disconnected-session TTL "
              f"{'120 s (default)' if args.session_ttl is None else f'{args.session_ttl} s'}", flush=True)
        proc, url = start_server(data, tmp, args.threads, args.session_ttl)
        print(f"server rss at start (no session yet): {rss_mb(proc.pid):.1f} MB", flush=True)
        timeout_ms = int(args.timeout * 1000)
        samples: list[tuple[int, float]] = []
        t0 = time.monotonic()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            ctx.set_default_timeout(timeout_ms)
            page = ctx.new_page()
            if args.mode == "replace":
                page.goto(url + "/inspect", wait_until="domcontentloaded")
                wait_idle(page, timeout_ms)
            if args.warmup == 0:
                samples.append((0, rss_mb(proc.pid)))
            for i in range(args.warmup + args.uploads):
                upload(page, png(1000 + i, tmp / f"soak_{i:04d}.png"), url, args.mode, timeout_ms)
                n = i + 1
                if n == args.warmup or n % 10 == 0 or n == args.warmup + args.uploads:
                    samples.append((n, rss_mb(proc.pid)))
                    print(f"after {n:4d} uploads: rss {samples[-1][1]:.1f} MB ({time.monotonic() - t0:.0f} s)",
                          flush=True)
            ctx.close()
            browser.close()
        time.sleep(5)  # closed sessions are dropped by the server
        settled = rss_mb(proc.pid)
        base = dict(samples)[args.warmup]
        last = samples[-1][1]
        growth = last - base
        print(f"after the browser closed: rss {settled:.1f} MB")
        print(f"growth over {args.uploads} uploads after a {args.warmup}-upload warm-up: {growth:+.1f} MB "
              f"({growth / max(args.uploads, 1) * 1000:+.0f} kB per upload); "
              f"{(time.monotonic() - t0) / (args.warmup + args.uploads):.1f} s per upload")
        log = (tmp / "streamlit.log").read_text(errors="replace")
        if "Traceback" in log:
            print("WARNING: the server log holds a traceback:\n" + log[-3000:])
        print(f"rss_growth_mb {growth:.1f}")
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
