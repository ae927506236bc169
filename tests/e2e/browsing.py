"""Driving the app in Debian's Chromium: the browser's path and flags, whether a page has settled, its charts' data.

Shared by the concurrency test (tests/e2e/test_concurrency.py) and the browser load bench
(bench/load_sessions.py); test_browser_pages.wait_idle is the synchronous twin of :func:`wait_idle`.
"""
from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import numpy as np

CHROMIUM = Path(os.environ.get("SE_LENS_CHROMIUM", "/usr/bin/chromium"))  # Debian's package; override elsewhere
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = int(float(os.environ.get("SE_LENS_E2E_TIMEOUT_S", "150")) * 1000)

CHARTS_JS = """() => {
  const conv = v => {
    if (v == null) return null;
    if (v.bdata !== undefined) return {bdata: v.bdata, dtype: v.dtype, shape: v.shape === undefined ? null : String(v.shape)};
    if (typeof v === 'object' && v.length !== undefined)
      return Array.from(v, r => (r != null && typeof r === 'object' && r.length !== undefined) ? Array.from(r) : r);
    return v;
  };
  return [...document.querySelectorAll('.js-plotly-plot')].map(g => ({
    meta: (g.layout && g.layout.meta) || {},
    data: (g.data || []).map(t => ({name: t.name || '', x: conv(t.x), y: conv(t.y), z: conv(t.z)})),
  }));
}"""


def chart_array(v) -> np.ndarray:
    """A trace array from the page: a plain (nested) list, or plotly's base64 typed-array spec."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).astype(np.float64)
        shape = [int(s) for s in re.findall(r"\d+", v.get("shape") or "")]
        return a.reshape(shape) if shape else a
    return np.asarray([[np.nan if c is None else c for c in r] if isinstance(r, list) else
                       (np.nan if r is None else r) for r in v], dtype=np.float64)


async def wait_idle(page, settle_ms: int = 400, timeout_ms: int = TIMEOUT_MS) -> None:
    """The script stopped, no spinner, the page stable twice in a row."""
    await page.wait_for_timeout(settle_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    last = None
    while True:
        await page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']"
                                     "[data-test-script-state='notRunning']", state="attached", timeout=timeout_ms)
        await page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=timeout_ms)
        await page.wait_for_selector("[data-testid='stSpinner']", state="detached", timeout=timeout_ms)
        now = await page.evaluate("""() => [document.querySelectorAll('[data-testid=stMain] *').length,
                                            document.querySelectorAll('.js-plotly-plot .main-svg').length,
                                            document.querySelectorAll('[data-stale=true]').length]""")
        if now == last and now[2] == 0:
            return
        assert time.monotonic() < deadline, f"the page did not settle within {timeout_ms / 1000:.0f} s"
        last = now
        await page.wait_for_timeout(300)
