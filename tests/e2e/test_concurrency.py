"""Eight users on one server at once: each uploads a different image on Inspect and sees only its own.

One ``streamlit run`` server (the session's ``app_server``) and one headless Chromium with eight
browser contexts (eight Streamlit sessions), driven together with Playwright's async API: all
pages load, then all uploads start at the same moment, so the server runs eight Inspect scripts
concurrently on its shared, cached models (each probe on a pooled view of them,
``se_core.probe.hooks.borrowed_view``). Each page must then show its own upload's numbers: the SE model's gate heatmap
(read from the Plotly graph div) and both models' top-5 bars equal a direct
:func:`se_core.probe.sites.probe` of the same file through the same checkpoints, and differ from every
other user's image; no page names another user's upload; no exception, error box or traceback.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from browsing import CHARTS_JS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, chart_array, wait_idle
from PIL import Image
from support import REPO_ROOT

try:
    from playwright.async_api import async_playwright
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("browser tests need the playwright Python package (pip install -r requirements-dev.txt)",
                allow_module_level=True)

if TYPE_CHECKING:
    from conftest import AppServer

pytestmark = pytest.mark.browser
USERS = 8
SAMPLES = ("airplane_0001", "automobile_0001", "bird_0001", "deer_0001", "dog_0001", "frog_0001", "horse_0001",
           "truck_0001")  # none of them is a default sample of the page (cat_0000, ship_0000)
ATOL = 2e-4  # the page runs a batch of three images, the direct probe one: float32 batch-order rounding

@pytest.fixture(scope="module")
def user_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight different photos: eight shipped CIFAR-10 samples (random images if absent), enlarged to 64x64."""
    d = tmp_path_factory.mktemp("users")
    out = []
    for i, name in enumerate(SAMPLES):
        src = REPO_ROOT / "data" / "samples" / f"{name}.png"
        img = Image.open(src).convert("RGB") if src.is_file() else \
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB")
        p = d / f"user{i}_{name}.png"
        img.resize((64, 64), Image.NEAREST).save(p, format="PNG")
        out.append(p)
    return out


def _direct(server: AppServer, paths: list[Path]) -> list[dict]:
    """What each image must show: top-5 of both models and the SE gates, by se_core.probe.sites.probe."""
    from se_core.analysis import inspect as ops
    from se_core.data.images import decode_image
    from se_core.models.build import build_from_checkpoint
    from se_core.models.pairs import resize_for
    from se_core.models.weights import LoadedModel
    from se_core.probe.sites import probe

    models = {}
    for role, file in (("se", "se_resnet20-s0.safetensors"), ("vanilla", "resnet20-s0.safetensors")):
        model, meta = build_from_checkpoint(server.data_dir / "checkpoints" / file)
        models[role] = LoadedModel(meta.arch, model.eval(), meta, resize_for(meta, meta.arch), file)
    out = []
    for p in paths:
        img = decode_image(p.read_bytes())
        row = {}
        for role, lm in models.items():
            res = probe(lm.model, ops.batch_tensor([img], ops.preprocess_for(lm)))
            probs = torch.softmax(res.logits, 1)[0].double().numpy()
            top = np.argsort(-probs, kind="stable")[:5]
            row[role] = {"classes": [lm.meta.class_names[i] for i in top], "probs": probs[top],
                         "all": dict(zip(lm.meta.class_names, probs)), "sixth": float(np.sort(probs)[-6])}
            if role == "se":
                _, gates = res.gate_matrix(0)
                row["gates"] = ops.padded_matrix([g.double().numpy() for g in gates])
        out.append(row)
    return out


async def _user(browser, url: str, path: Path, ready: asyncio.Barrier) -> dict:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        page = await ctx.new_page()
        await page.goto(url + "/inspect", wait_until="domcontentloaded")
        await wait_idle(page, 800)
        await asyncio.wait_for(ready.wait(), TIMEOUT_MS / 1000)  # every user uploads at the same moment
        t0 = time.monotonic()
        await page.locator("input[type=file]").first.set_input_files(str(path))
        await page.wait_for_function(
            "name => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.layout && g.layout.meta"
            " && g.layout.meta.chart === 'gate_heatmap' && g.layout.meta.image === name)", arg=path.name,
            timeout=TIMEOUT_MS)
        await wait_idle(page)
        seconds = time.monotonic() - t0
        return {"charts": await page.evaluate(CHARTS_JS), "seconds": seconds,
                "exceptions": await page.get_by_test_id("stException").count(),
                "errors": await page.get_by_test_id("stAlertContentError").all_inner_texts(),
                "text": await page.get_by_test_id("stApp").inner_text(),
                "chips": await page.get_by_test_id("stFileChipName").all_inner_texts()}
    finally:
        await ctx.close()


def _run_users(chromium: str, args: list[str], url: str, paths: list[Path]) -> list[dict | BaseException]:
    """All users in one asyncio loop on a thread of its own (the session's sync Playwright owns this one)."""
    out: list = []

    async def main() -> None:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, headless=True, args=args)
            try:
                ready = asyncio.Barrier(len(paths))
                out.extend(await asyncio.gather(*(_user(browser, url, q, ready) for q in paths),
                                                return_exceptions=True))
            finally:
                await browser.close()

    th = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    th.start()
    th.join(timeout=TIMEOUT_MS / 1000 * 3)
    assert not th.is_alive(), "the concurrent users did not finish in time"
    return out


@pytest.mark.timeout(600)
def test_eight_users_upload_at_once_and_each_sees_only_their_own(app_server: AppServer,
                                                                 user_images: list[Path]) -> None:
    t0 = time.monotonic()
    results = _run_users(str(CHROMIUM), list(CHROMIUM_ARGS), app_server.url, user_images)
    wall = time.monotonic() - t0
    failed = [(p.name, r) for p, r in zip(user_images, results) if isinstance(r, BaseException)]
    assert not failed, failed

    want = _direct(app_server, user_images)
    names = [p.name for p in user_images]
    for i, (res, exp) in enumerate(zip(results, want)):
        me = names[i]
        assert res["exceptions"] == 0 and not res["errors"] and "Traceback" not in res["text"], (me, res["errors"])
        # the uploader holds this user's file only (long names are shortened in the middle: 'user0_a...0001.png')
        assert len(res["chips"]) == 1 and res["chips"][0].startswith(f"user{i}_"), (me, res["chips"])
        shown = {c["meta"].get("image") for c in res["charts"] if c["meta"].get("image")}
        others = set(names) - {me}
        assert me in shown and not shown & others, (me, shown)
        assert me in res["text"] and not any(o in res["text"] for o in others), me

        # the gate heatmap: this user's image, every gate equal to the direct probe's
        (heat,) = [c for c in res["charts"] if c["meta"].get("chart") == "gate_heatmap"]
        assert heat["meta"]["image"] == me
        z = chart_array(heat["data"][0]["z"])
        assert z.shape == exp["gates"].shape, (z.shape, exp["gates"].shape)
        np.testing.assert_array_equal(np.isnan(z), np.isnan(exp["gates"]))
        np.testing.assert_allclose(z, exp["gates"], atol=ATOL, equal_nan=True, err_msg=me)
        for j, other in enumerate(want):  # and it could not be anyone else's
            if j != i:
                assert np.nanmax(np.abs(z - other["gates"])) > 20 * ATOL, (me, names[j])

        # the top-5 bars of both models for this image
        (top5,) = [c for c in res["charts"] if c["meta"].get("chart") == "top5" and c["meta"].get("image") == me]
        for trace, role in zip(top5["data"], ("se", "vanilla")):
            classes, probs = list(trace["y"])[::-1], chart_array(trace["x"])[::-1]
            assert len(set(classes)) == 5 and list(probs) == sorted(probs, reverse=True), (me, role)
            np.testing.assert_allclose(probs, [exp[role]["all"][c] for c in classes], atol=ATOL, err_msg=f"{me} {role}")
            assert probs[-1] >= exp[role]["sixth"] - ATOL, (me, role)  # no class left out of the top 5
            if np.min(np.abs(np.diff(exp[role]["probs"]))) > ATOL:  # no near-tie: the exact order is fixed
                assert classes == exp[role]["classes"], (me, role)

    secs = sorted(r["seconds"] for r in results)
    print(f"\n{USERS} concurrent users on {'trained' if app_server.trained else 'random-init'} weights: "
          f"upload -> settled page {secs[0]:.1f}-{secs[-1]:.1f} s (median {secs[len(secs) // 2]:.1f} s); "
          f"whole test {wall:.0f} s")
    log = app_server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def _protocol_users(url: str, paths: list[Path], attribute: list[Path]) -> tuple[list, list]:
    """Inspect sessions uploading ``paths`` at once through Streamlit's protocol (no rendering, tests/e2e/stclient.py),
    while one session per image in ``attribute`` computes attributions on the same cached models."""
    import stclient

    async def inspect(p: Path, ready: asyncio.Barrier):
        s = stclient.Session(url, "inspect")
        try:
            first = await s.open()
            await asyncio.wait_for(ready.wait(), TIMEOUT_MS / 1000)
            return await s.upload(stclient.uploader_id(first), [p])
        finally:
            await s.close()

    async def attributions(p: Path):
        s = stclient.Session(url, "attributions")
        try:
            return await s.upload(stclient.uploader_id(await s.open()), [p])
        finally:
            await s.close()

    async def main():
        ready = asyncio.Barrier(len(paths))
        attr = [asyncio.create_task(attributions(p)) for p in attribute]
        runs = await asyncio.gather(*(inspect(p, ready) for p in paths), return_exceptions=True)
        return runs, await asyncio.gather(*attr, return_exceptions=True)

    out: list = []  # on a thread of its own: the session's sync Playwright owns this thread's event loop
    th = threading.Thread(target=lambda: out.append(asyncio.run(asyncio.wait_for(main(), TIMEOUT_MS / 1000 * 3))),
                          daemon=True)
    th.start()
    th.join(timeout=TIMEOUT_MS / 1000 * 3 + 30)
    assert out, "the protocol sessions did not finish in time (or raised: see the thread's output)"
    return out[0]


@pytest.mark.timeout(600)
def test_protocol_sessions_beside_attributions_each_see_only_their_own(app_server: AppServer,
                                                                       user_images: list[Path]) -> None:
    """The same check without a browser's rendering, while two more sessions run Captum on the same models:
    attributions run on pooled views at background priority, and no Inspect session sees another's numbers."""
    inspect_runs, attr_runs = _protocol_users(app_server.url, user_images[2:], user_images[:2])
    want = _direct(app_server, user_images[2:])
    for run in attr_runs:
        assert not isinstance(run, BaseException), run
        assert run.status == "FINISHED_SUCCESSFULLY" and not run.of_type("exception")
        assert run.of_type("plotly_chart"), "the attributions page drew no chart"
    for i, (run, path, exp) in enumerate(zip(inspect_runs, user_images[2:], want)):
        assert not isinstance(run, BaseException), (path.name, run)
        assert run.status == "FINISHED_SUCCESSFULLY" and not run.of_type("exception"), path.name
        (heat,) = [c for c in run.charts() if c["meta"].get("chart") == "gate_heatmap"]
        assert heat["meta"]["image"] == path.name
        z = chart_array(heat["data"][0]["z"])
        np.testing.assert_allclose(z, exp["gates"], atol=ATOL, equal_nan=True, err_msg=path.name)
        for j, other in enumerate(want):
            if j != i:
                assert np.nanmax(np.abs(z - other["gates"])) > 20 * ATOL, (path.name, j)
    log = app_server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
