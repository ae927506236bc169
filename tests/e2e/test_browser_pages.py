"""Every dashboard page in a real headless Chromium, as a user sees it (``streamlit run`` + Playwright).

One server and one browser serve the whole file (see ``conftest.py``); each test opens its own
session. Checks: the page's heading, rendered Plotly charts with data, numbers, no exception box,
no "Traceback", no error box; on Inspect and Attributions an uploaded PNG goes through both
models; the main controls (block, class, image, method selectors) are used once each.
Screenshots go to a temp dir, or to ``docs/img`` with ``SE_LENS_SCREENSHOTS=1``.
"""
from __future__ import annotations

import ast
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image
from support import REPO_ROOT

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("CI"):
        raise  # CI must run the browser tests: a collection error, not a skip
    pytest.skip("browser tests need the playwright Python package (pip install -r requirements-dev.txt)",
                allow_module_level=True)

if TYPE_CHECKING:
    from conftest import AppServer  # tests/e2e/conftest.py: the app_server fixture's type


pytestmark = pytest.mark.browser

# a busy 2-core machine: reruns can take many seconds (SE_LENS_E2E_TIMEOUT_S shortens it when debugging)
TIMEOUT_MS = int(float(os.environ.get("SE_LENS_E2E_TIMEOUT_S", "120")) * 1000)
expect.set_options(timeout=TIMEOUT_MS)
WIDTH = 1400
MAX_SHOT_HEIGHT = 9000
NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?")


def registered_pages() -> dict[str, str]:
    """url path -> page file of every ``st.Page`` in dashboard/app.py (the default page is ``/``)."""
    tree = ast.parse((REPO_ROOT / "dashboard" / "app.py").read_text())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Page":
            kw = {k.arg: k.value for k in node.keywords}
            src = node.args[0] if node.args else kw.get("page")
            file = next((n.value for n in ast.walk(src) if isinstance(n, ast.Constant)), "?") if src else "?"
            if isinstance(kw.get("default"), ast.Constant) and kw["default"].value:
                path = ""
            elif "url_path" in kw:
                path = kw["url_path"].value
            else:
                path = Path(file).stem
            out["/" + path] = file
    return out


PAGES = registered_pages()
HEADINGS = {"home.py": "SE Lens", "models.py": "Models", "inspector.py": "Inspect", "attributions.py": "Attributions",
            "classwise.py": "Class-wise excitation", "gatespace.py": "Gate space", "ablations.py": "Ablations"}


# --------------------------------------------------------------------------- helpers


def wait_idle(page: Page, settle_ms: int = 400) -> None:
    """Wait until Streamlit is connected, the script has finished, nothing spins and the page stops changing.

    The script state turns ``notRunning`` a moment before the last elements are drawn, so the page
    must also look the same on two checks in a row (element count and chart count).
    """
    page.wait_for_timeout(settle_ms)  # let a rerun triggered by the last action begin
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    last = None
    while True:
        page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']"
                               "[data-test-script-state='notRunning']", state="attached", timeout=TIMEOUT_MS)
        page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=TIMEOUT_MS)
        page.wait_for_selector("[data-testid='stSpinner']", state="detached", timeout=TIMEOUT_MS)
        now = page.evaluate("""() => [document.querySelectorAll('[data-testid=stMain] *').length,
                                      document.querySelectorAll('.js-plotly-plot .main-svg').length,
                                      document.querySelectorAll('[data-stale=true]').length]""")
        if now == last and now[2] == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not settle within {TIMEOUT_MS / 1000:.0f} s")
        last = now
        page.wait_for_timeout(300)


def open_page(page: Page, server: AppServer, path: str) -> None:
    page.goto(server.url + path, wait_until="domcontentloaded")
    wait_idle(page, settle_ms=800)


def assert_clean(page: Page, errors_allowed: bool = False) -> None:
    """No exception element, no traceback text and (unless allowed) no st.error box anywhere in the app."""
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()
    text = page.get_by_test_id("stApp").inner_text()
    assert "Traceback" not in text
    if not errors_allowed:
        errors = page.get_by_test_id("stAlertContentError")
        assert errors.count() == 0, errors.all_inner_texts()


def charts(page: Page) -> list[dict]:
    """Every rendered Plotly chart: title, meta, trace types, and whether each trace carries data."""
    return page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(g => ({
        title: (g.layout && g.layout.title && (g.layout.title.text ?? g.layout.title)) || '',
        meta: (g.layout && g.layout.meta) || {},
        types: (g.data || []).map(t => t.type || 'scatter'),
        filled: (g.data || []).map(t => ['x', 'y', 'z', 'source'].some(k => t[k] != null &&
            (typeof t[k] === 'string' ? t[k].length > 0 : (t[k].length ?? Object.keys(t[k]).length) > 0))),
        width: g.getBoundingClientRect().width,
        rendered: !!g.querySelector('.main-svg'),
    }))""")


def visible_charts(page: Page) -> list[dict]:
    """Charts laid out on screen (hidden tabs have zero width)."""
    return [c for c in charts(page) if c["width"] > 0]


def assert_charts(page: Page, at_least: int = 1, timeout_s: float = 60.0) -> list[dict]:
    """The visible charts, once at least ``at_least`` have drawn (Plotly renders after Streamlit goes idle)."""
    deadline = time.monotonic() + timeout_s
    cs = visible_charts(page)
    while (len(cs) < at_least or not all(c["rendered"] for c in cs)) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        cs = visible_charts(page)
    assert len(cs) >= at_least, f"expected >= {at_least} charts, got {[c['title'] for c in cs]}"
    for c in cs:
        assert c["rendered"], f"chart {c['title']!r} has no SVG"
        assert c["types"] and any(c["filled"]), f"chart {c['title']!r} is empty"
    return cs


def chart_titles(page: Page) -> list[str]:
    return [c["title"] for c in visible_charts(page)]


def metrics(page: Page) -> dict[str, str]:
    """label -> value text of every st.metric on the page."""
    out = {}
    for m in page.get_by_test_id("stMetric").all():
        label = m.get_by_test_id("stMetricLabel").inner_text().strip()
        out[label] = m.get_by_test_id("stMetricValue").inner_text().strip()
    return out


def options(page: Page, label: str):
    """Open the selectbox or multiselect labelled ``label``; returns its option list."""
    box = page.get_by_role("combobox", name=label, exact=True)
    listbox = page.locator(f'[role=listbox][aria-label="{label}"]')
    box.scroll_into_view_if_needed()
    for _ in range(3):  # the popup closes when the page scrolls or re-renders under it: try again
        box.click()
        if box.get_attribute("aria-expanded") != "true":
            box.press("ArrowDown")
        try:
            expect(listbox).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            page.keyboard.press("Escape")
    expect(listbox).to_be_visible()
    return listbox.get_by_role("option")


def choose(page: Page, label: str, option: str | None = None, avoid: str | None = None) -> str:
    """Choose ``option`` (else the first option not containing ``avoid``) in the widget labelled ``label``."""
    opts = options(page, label)
    target = opts.filter(has_text=option).first if option else opts.filter(has_not_text=avoid).first
    text = target.inner_text().strip()
    target.click()
    if page.locator(f'[role=listbox][aria-label="{label}"]').count():  # multiselects stay open
        page.keyboard.press("Escape")
    wait_idle(page)
    return text


def slide(page: Page, label: str, key: str = "ArrowLeft") -> None:
    """Move the (select_)slider labelled ``label`` one step with the keyboard."""
    page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider").first.press(key)
    wait_idle(page)


def open_expanders(page: Page) -> int:
    """Open every visible closed expander, one at a time (some rerun the script to build their charts)."""
    n = 0
    closed = page.locator("[data-testid=stExpander] details:not([open]) > summary").filter(visible=True)
    while closed.count() and n < 50:
        closed.first.click()
        wait_idle(page)
        n += 1
    return n


def upload_png(page: Page, path: Path) -> None:
    page.locator("input[type=file]").first.set_input_files(str(path))
    wait_idle(page, settle_ms=800)
    expect(page.get_by_test_id("stFileChipName").filter(has_text=path.name)).to_be_visible()


def compute_on_folder(page: Page, server: AppServer, button: str) -> int:
    """Choose the server's ImageFolder (the shipped samples) as the page's data set and press ``button``
    (a pass over both models); returns how many images the folder holds."""
    page.get_by_test_id("stRadioOption").filter(has_text="ImageFolder folder").click()
    wait_idle(page)
    box = page.get_by_role("textbox", name="ImageFolder path (one sub-folder per class)")
    box.fill(server.image_folder)
    box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=button).click()
    wait_idle(page, settle_ms=1000)
    return len(list(server.data_root.joinpath(server.image_folder).glob("*/*.png")))


def screenshot(page: Page, shot_dir: Path, name: str) -> Path:
    """The whole page (the main area scrolls inside the app, so the viewport is grown to its height)."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": int(min(max(height, 900), MAX_SHOT_HEIGHT))})
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no focus ring
    page.mouse.move(1, 1)  # no hover label or chart toolbar
    page.wait_for_timeout(700)  # charts re-layout to the new viewport
    wait_idle(page, settle_ms=100)
    out = shot_dir / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 900})
    return out


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo-like PNG the pages do not offer as a sample: a shipped CIFAR-10 test image, enlarged to 64x64."""
    src = REPO_ROOT / "data" / "samples" / "dog_0001.png"
    img = Image.open(src).convert("RGB") if src.is_file() else \
        Image.fromarray(np.random.default_rng(7).integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB")
    path = tmp_path_factory.mktemp("upload") / "my_dog.png"
    img.resize((64, 64), Image.NEAREST).save(path, format="PNG")
    return path


def _se_model(server: AppServer):
    from se_core.models.build import build_from_checkpoint

    return build_from_checkpoint(server.data_dir / "checkpoints" / "se_resnet20-s0.safetensors")


# --------------------------------------------------------------------------- every page


def test_app_registers_the_expected_pages() -> None:
    assert "/" in PAGES and len(PAGES) >= 2, PAGES
    for path, file in PAGES.items():
        assert (REPO_ROOT / "pages" / file).is_file(), f"{path}: {file} missing"


@pytest.mark.parametrize("path", list(PAGES))
def test_page_loads_clean(page: Page, app_server: AppServer, path: str) -> None:
    open_page(page, app_server, path)
    heading = HEADINGS.get(PAGES[path])
    h1 = page.locator("h1").first
    expect(h1).to_be_visible()
    if heading:
        expect(h1).to_have_text(heading)
    # expect() waits: under load the sidebar can be drawn a moment after the page body settles (CI saw 0 once)
    expect(page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model pair")).to_have_count(1)
    assert_clean(page)
    open_expanders(page)  # what they hold must render cleanly too
    assert_clean(page)


# --------------------------------------------------------------------------- page by page


def test_home(page: Page, app_server: AppServer, shot_dir: Path) -> None:
    from se_core.analysis.diagram import se_widths

    open_page(page, app_server, "/")
    expect(page.locator("h1")).to_have_text("SE Lens")
    expect(page.get_by_test_id("stGraphVizChart").locator("svg")).to_have_count(2)
    widths = se_widths(_se_model(app_server)[0])
    m = metrics(page)
    assert m["SE units"] == str(len(widths))
    assert m["SE parameters"] == f"{sum(w.params for w in widths):,}"
    assert NUMBER.fullmatch(m["Reduction r"])
    # block selector: draw the first stage's unit instead of the last one
    first = widths[0]
    choose(page, "Block to draw", f"stage {first.stage}:")
    expect(page.get_by_test_id("stGraphVizChart").first).to_contain_text(f"C = {first.channels}")
    assert_clean(page)
    screenshot(page, shot_dir, "home")


def test_models(page: Page, app_server: AppServer, shot_dir: Path) -> None:
    open_page(page, app_server, "/models")
    expect(page.locator("h1")).to_have_text("Models")
    expect(page.get_by_text("Inference device:")).to_be_visible()
    # st.dataframe's grid is a lazily loaded chunk that can land after the page looks settled: wait for it
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    titles = [c["title"] for c in assert_charts(page, 2)]
    assert "Parameters" in titles and "SE parameter overhead" in titles
    assert_clean(page)
    screenshot(page, shot_dir, "models")

    page.get_by_role("tab", name="Selected pair").click()
    model = _se_model(app_server)[0]
    panel = page.get_by_role("tabpanel").filter(has_text="Provenance")
    expect(panel.get_by_text("SE model:")).to_be_visible()
    expect(panel.get_by_test_id("stTable").first).to_contain_text(f"{sum(p.numel() for p in model.parameters()):,}")

    page.get_by_role("tab", name="Training runs").click()
    wait_idle(page, settle_ms=200)
    runs = app_server.data_dir / "runs"
    if runs.is_dir() and any(runs.glob("*/metrics.csv")):
        expect(page.get_by_role("heading", name="Training curves")).to_be_visible()
        page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                               ".some(g => g.getBoundingClientRect().width > 0 && g.layout.title"
                               " && (g.layout.title.text || '') === 'Loss')", timeout=TIMEOUT_MS)
        titles = [c["title"] for c in assert_charts(page, 2)]
        assert "Loss" in titles and "Top-1 accuracy" in titles
        assert_clean(page)
        screenshot(page, shot_dir, "models-runs")


def test_inspect_upload_and_controls(page: Page, app_server: AppServer, shot_dir: Path, upload_file: Path) -> None:
    open_page(page, app_server, "/inspect")
    expect(page.locator("h1")).to_have_text("Inspect")
    upload_png(page, upload_file)
    name = upload_file.name
    expect(page.get_by_text(f"{name} (64×64)")).to_be_visible()

    cs = assert_charts(page, 4)
    top5 = [c for c in cs if c["meta"].get("chart") == "top5"]
    assert name in [c["meta"].get("image") for c in top5]  # the upload, beside the default samples
    notes = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                          ".filter(g => (g.layout.meta || {}).chart === 'top5')"
                          ".map(g => g.layout.annotations.map(a => a.text).join(' | '))")
    assert len(notes) == len(top5) and all("SE" in n and "vanilla" in n for n in notes), notes
    bar_text = page.locator(".js-plotly-plot .bars text").all_text_contents()
    assert any(re.fullmatch(r"\d+(\.\d)?%", t.strip()) for t in bar_text), bar_text[:10]
    gates = [c for c in cs if c["meta"].get("chart") == "gate_heatmap"]
    assert len(gates) == 1 and gates[0]["types"] == ["heatmap"] and gates[0]["meta"]["image"] == name

    # image selector: the single-image charts follow the chosen image
    other = next(c["meta"]["image"] for c in top5 if c["meta"]["image"] != name)
    choose(page, "Image", other)
    heatmap_images = lambda: [c["meta"].get("image") for c in charts(page) if c["meta"].get("chart") == "gate_heatmap"]
    deadline = time.monotonic() + 60  # the rerun may start just after the idle check
    while heatmap_images() != [other] and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert heatmap_images() == [other]

    # block selector: one step towards the input moves the per-block charts
    before = next(c["meta"]["site"] for c in charts(page) if c["meta"].get("chart") == "z_block")
    slide(page, "Block")
    after = next(c["meta"]["site"] for c in charts(page) if c["meta"].get("chart") == "z_block")
    assert after != before
    assert any(NUMBER.search(v) for v in metrics(page).values())

    # switch one SE block off: the intervention summary and chart appear
    off = choose(page, "Blocks to switch off", avoid="Select all")
    expect(page.get_by_text(re.compile(rf"Top-1 changed for \d+ of \d+ image.*at {re.escape(off)}"))).to_be_visible()
    assert any(c["meta"].get("chart") == "intervention" for c in assert_charts(page, 4))
    assert_clean(page)
    screenshot(page, shot_dir, "inspect")

    # the charts kept in expanders draw when opened
    open_expanders(page)
    kinds = {c["meta"].get("chart") for c in assert_charts(page, 6)}
    assert {"gate_box", "compare_s", "compare_z", "energy"} <= kinds, kinds
    assert_clean(page)


def test_attributions_upload_and_controls(page: Page, app_server: AppServer, shot_dir: Path,
                                          upload_file: Path) -> None:
    open_page(page, app_server, "/attributions")
    expect(page.locator("h1")).to_have_text("Attributions")
    upload_png(page, upload_file)
    # image selector: attribute the upload (the selector keeps the image chosen before the upload)
    choose(page, "Image", upload_file.name)
    expect(page.get_by_role("combobox", name="Image", exact=True)).to_have_value(upload_file.name)

    # method selector: drop Occlusion (the slowest) and see its section go
    page.get_by_test_id("stMultiSelect").filter(has_text="Methods").get_by_role("button", name="Remove Occlusion").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Occlusion", exact=True)).to_have_count(0)
    pairs = [c for c in assert_charts(page, 2) if " · class '" in c["title"]]
    assert {c["title"].split(" · ")[0] for c in pairs} == {"Integrated Gradients", "Saliency", "Layer Grad-CAM"}
    for c in pairs:  # both models: image + heatmap each
        assert c["types"].count("heatmap") == 2 and c["types"].count("image") == 2
    assert NUMBER.search(metrics(page)["SE time"]) and NUMBER.search(metrics(page)["SE IG delta"])

    # class selector: attribute another class than the SE model's top-1
    current = pairs[0]["title"].split("class '")[1].rstrip("'")
    new = choose(page, "Target class", avoid=f"{current} (").split(" (")[0]
    page.wait_for_function("cls => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.layout.title"
                           " && (g.layout.title.text || '').endsWith(`class '${cls}'`))", arg=new, timeout=TIMEOUT_MS)
    assert all(t.endswith(f"class '{new}'") for t in chart_titles(page) if " · class '" in t)
    assert_charts(page, 6)
    assert_clean(page)
    screenshot(page, shot_dir, "attributions")


def test_classwise(page: Page, app_server: AppServer, shot_dir: Path) -> None:
    open_page(page, app_server, "/classwise")
    expect(page.locator("h1")).to_have_text("Class-wise excitation")
    n_images = None
    if "Images" not in metrics(page):  # no shipped statistics: compute them on the 30 shipped samples
        n_images = compute_on_folder(page, app_server, "Compute statistics")
    expect(page.get_by_test_id("stMetric").filter(has_text="SE blocks")).to_be_visible()
    m = metrics(page)
    if n_images is not None:
        assert m["Images"] == f"{n_images:,}" and m["Classes"] == "10"
    assert NUMBER.search(m["Quantile error"])
    cs = assert_charts(page, 1)
    before = next(c["meta"]["site"] for c in cs if c["meta"].get("chart") == "fig6")

    # block selector (Fig. 6): one block towards the input
    slide(page, "Block (depth order)")
    assert next(c["meta"]["site"] for c in visible_charts(page) if c["meta"].get("chart") == "fig6") != before
    assert_clean(page)
    screenshot(page, shot_dir, "classwise")

    # class selector (Fig. 7)
    page.get_by_role("tab", name="Fig. 7: median & IQR").click()
    choose(page, "Class", "dog")
    fig7 = [c for c in visible_charts(page) if c["meta"].get("chart") == "fig7"]
    assert fig7 and all(c["meta"]["class"] == "dog" for c in fig7)
    page.get_by_role("tab", name="Selectivity vs depth").click()
    page.wait_for_timeout(500)
    assert any(c["meta"].get("chart") == "selectivity" for c in assert_charts(page, 1))
    assert_clean(page)


def test_gatespace_select_points_and_open_on_inspect(page: Page, app_server: AppServer, shot_dir: Path) -> None:
    """#20: compute the gate samples on the 30 shipped samples, drag a box over the map, see the images, open
    one on Inspect and find it there with its gates."""
    open_page(page, app_server, "/gatespace")
    expect(page.locator("h1")).to_have_text("Gate space")
    n_images = compute_on_folder(page, app_server, "Compute gate samples")
    expect(page.get_by_test_id("stMetric").filter(has_text="SE blocks")).to_be_visible()
    assert metrics(page)["Images"] == str(n_images)
    assert_charts(page, 1)
    kinds = [c["meta"].get("chart") for c in charts(page)]
    assert "gate_map" in kinds
    assert_clean(page)
    screenshot(page, shot_dir, "gatespace")

    # drag a box over the whole plot area: every image is selected and drawn below the map
    plot = page.locator(".js-plotly-plot").nth(kinds.index("gate_map"))
    plot.scroll_into_view_if_needed()
    area = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + 2, area["y"] + 2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2, steps=5)
    page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] - 2, steps=5)
    page.mouse.up()
    wait_idle(page, settle_ms=1000)
    expect(page.get_by_text(re.compile(r"\d+ image\(s\) selected"))).to_be_visible()
    selected = int(re.search(r"(\d+) image", page.get_by_text(re.compile(r"image\(s\) selected")).inner_text())[1])
    assert 1 <= selected <= n_images
    expect(page.get_by_test_id("stImageContainer")).to_have_count(min(selected, 24))
    name = page.get_by_role("combobox", name="Image to open on Inspect", exact=True).input_value().split(" (")[0]
    assert name.endswith(".png")
    assert_clean(page)

    page.get_by_role("button", name="Open on Inspect").click()
    wait_idle(page, settle_ms=1000)
    expect(page.locator("h1")).to_have_text("Inspect")
    expect(page.get_by_role("combobox", name="Image", exact=True)).to_have_value(name)
    deadline = time.monotonic() + 60
    heat = []
    while heat != [name] and time.monotonic() < deadline:
        heat = [c["meta"].get("image") for c in charts(page) if c["meta"].get("chart") == "gate_heatmap"]
        page.wait_for_timeout(250)
    assert heat == [name]
    assert_clean(page)


def test_ablations(page: Page, app_server: AppServer, shot_dir: Path) -> None:
    open_page(page, app_server, "/ablations")
    expect(page.locator("h1")).to_have_text("Ablations")
    tabs = page.get_by_role("tab")
    assert tabs.count() >= 2
    cs = assert_charts(page, 1)
    assert any(c["title"].startswith("Reported by Hu et al.") for c in cs)
    ticks = page.locator(".js-plotly-plot .ytick text").all_text_contents()
    assert any(NUMBER.fullmatch(t.strip().replace("−", "-")) for t in ticks)
    tabs.nth(1).click()
    page.wait_for_timeout(500)
    assert any(c["title"].startswith("Reported by Hu et al.") for c in assert_charts(page, 1))
    tabs.nth(0).click()
    page.wait_for_timeout(300)
    assert_clean(page)
    screenshot(page, shot_dir, "ablations")


def test_server_log_has_no_traceback(app_server: AppServer) -> None:
    """Last: errors that never reach a page (callbacks, websocket handlers) still show in the server log."""
    log = app_server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
