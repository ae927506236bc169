"""End-to-end set-up: one real ``streamlit run`` server and one headless Chromium for all browser tests.

The server reads the shipped checkpoints when both default-pair files exist in ``data/checkpoints``
(so screenshots show the trained models); otherwise a temp data dir with random-init
checkpoints written by :func:`tests.conftest.write_tiny_pair`. Either way the Class-wise page
gets a small ImageFolder (the shipped CIFAR-10 samples) inside its own data root, and computed
statistics go to a temp cache, so the tests never write into the repository.

Without Chromium or Playwright the tests are skipped, except when ``CI`` is set: there a
missing browser fails, so CI cannot pass by skipping them.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit_server as server
from browsing import CHROMIUM, CHROMIUM_ARGS
from support import REPO_ROOT, subprocess_env

SHIPPED = ("se_resnet20-s0.safetensors", "resnet20-s0.safetensors")
SHOTS_ENV = "SE_LENS_SCREENSHOTS"
CAPTION_START, CAPTION_END = "<!-- screenshots:source -->", "<!-- /screenshots:source -->"
IMAGE_FOLDER = "cifar_samples"  # the Class-wise page's data set, relative to its data root


@dataclass(frozen=True)
class AppServer:
    """A running dashboard: its URL and what it was started on."""

    url: str
    data_dir: Path
    data_root: Path
    trained: bool  # True: the shipped checkpoints; False: random-init tiny pair
    log: Path
    image_folder: str = IMAGE_FOLDER  # an ImageFolder under ``data_root`` for the Class-wise page

    @property
    def source_text(self) -> str:
        """One line for captions: which weights the pages show."""
        if self.trained:
            return ("the shipped trained checkpoints (`data/checkpoints/se_resnet20-s0.safetensors`, "
                    "`resnet20-s0.safetensors`)")
        return ("randomly initialised stand-in checkpoints written by `tests/conftest.py` (the trained "
                "checkpoints were not in `data/checkpoints` yet), so predictions and gates are not meaningful")


def _root_conftest():
    """tests/conftest.py as a module of its own name (both files are called conftest.py)."""
    spec = importlib.util.spec_from_file_location("se_lens_tests_support", REPO_ROOT / "tests" / "support.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _image_folder(root: Path) -> None:
    """root/<class>/<sample>.png from the shipped samples: a 30-image ImageFolder with CIFAR-10's classes."""
    for png in sorted((REPO_ROOT / "data" / "samples").glob("*.png")):
        cls = png.stem.rsplit("_", 1)[0]
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, root / cls / png.name)


@pytest.fixture(scope="session")
def browser_ok() -> None:
    """Skip (or, with ``CI`` set, fail) when the browser stack is missing; checked before a server starts."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package (pip install -r requirements-dev.txt)")
    if missing:
        why = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run them, not skip them", pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="session")
def app_server(browser_ok, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """``streamlit run dashboard/app.py`` on a free port, healthy before the first test; killed at the end."""
    tmp = tmp_path_factory.mktemp("e2e")
    ckpts = REPO_ROOT / "data" / "checkpoints"
    trained = all((ckpts / f).is_file() for f in SHIPPED)
    if trained:
        data_dir = REPO_ROOT / "data"
    else:
        data_dir = tmp / "data"
        _root_conftest().write_tiny_pair(data_dir)
        for sub in ("runs", "ablations"):  # read-only views: the Models page's curves, the Ablations page's tables
            if (REPO_ROOT / "data" / sub).is_dir():
                (data_dir / sub).symlink_to(REPO_ROOT / "data" / sub, target_is_directory=True)
    data_root = tmp / "roots"
    _image_folder(data_root / IMAGE_FOLDER)

    env = subprocess_env(SE_LENS_DATA_DIR=str(data_dir), SE_LENS_DATA_ROOTS=str(data_root),
                         SE_LENS_STATS_CACHE=str(tmp / "stats-cache"), SE_LENS_USER_DIR=str(tmp / "user"),
                         SE_LENS_ALLOW_DOWNLOAD="0", PYTHONUNBUFFERED="1")
    log = tmp / "streamlit.log"
    try:
        proc, url = server.launch(env, log)
    except server.ServerError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield AppServer(url, data_dir, data_root, trained, log)
    finally:
        server.stop(proc)


@pytest.fixture(scope="session")
def browser(browser_ok):
    """One headless Debian Chromium for the session (Playwright drives it; nothing is downloaded)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, app_server: AppServer):
    """A fresh browser context (own Streamlit session) per test, 1400 px wide like a laptop screen."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(120_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def write_screenshot_caption(readme: Path, text: str) -> bool:
    """Put ``text`` between the README's screenshot-source markers (if it has them); True when changed."""
    body = readme.read_text(encoding="utf-8")
    start, end = body.find(CAPTION_START), body.find(CAPTION_END)
    if start < 0 or end < start:
        return False
    new = body[:start + len(CAPTION_START)] + "\n" + text.strip() + "\n" + body[end:]
    if new != body:
        readme.write_text(new, encoding="utf-8")
    return new != body


@pytest.fixture(scope="session")
def shot_dir(app_server: AppServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where screenshots go: ``docs/img`` with ``SE_LENS_SCREENSHOTS=1``, else a temp dir (tracked files untouched).

    With ``SE_LENS_SCREENSHOTS=1`` the README's caption is rewritten to say which weights the
    screenshots show, so the text cannot go stale when they are retaken on the trained models.
    """
    if os.environ.get(SHOTS_ENV) != "1":
        yield tmp_path_factory.mktemp("screenshots")
        return
    d = REPO_ROOT / "docs" / "img"
    d.mkdir(parents=True, exist_ok=True)
    yield d
    write_screenshot_caption(REPO_ROOT / "README.md",
                             f"Screenshots taken in headless Chromium by `tests/e2e/test_browser_pages.py` "
                             f"(`SE_LENS_SCREENSHOTS=1`), showing {app_server.source_text}.")
