"""#17 in a real browser: a user brings a torchvision SE model's state dict (random weights, no
metadata) and compares it with its natural twin on every page.

Upload on the Models page: the architecture is guessed from the file's keys, the natural twin
(torchvision's mobilenet_v2, untrained here: its weights are not on this machine) is preselected, the
pair registers with a note that the two preprocessings differ, the model card names the SE units;
Attributions attributes it (no refusal) and says how the inputs differ; an image uploaded on Inspect
is offered on Attributions; Class-wise offers to compute this pair's statistics (and the command that
does); a pickled whole model is refused under its own name in plain text; a fresh session's sidebar
lists the pair.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from test_browser_pages import assert_charts, assert_clean, expect, open_page, upload_file, upload_png, wait_idle  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from conftest import AppServer
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from se_core.models.registry import get_spec

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("own") / "mobilenet_v3_small-047dcff4.pth"  # named as torch.hub names it
    torch.save(get_spec("torchvision:mobilenet_v3_small").build().state_dict(), path)
    return path


def test_own_library_checkpoint_with_its_twin_on_every_page(page: Page, app_server: AppServer, mobilenet_file: Path,
                                                           upload_file: Path) -> None:
    open_page(page, app_server, "/models")
    page.get_by_role("tab", name="Your checkpoint").click()
    wait_idle(page)
    se_upload = page.locator("[data-testid=stFileUploader]").filter(has_text="SE model checkpoint").locator(
        "input[type=file]")
    # (5e) a pickled whole model: refused under the user's file name, in plain text, and nothing runs
    whole = mobilenet_file.with_name("my whole model.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), whole)
    se_upload.set_input_files(str(whole))
    wait_idle(page, settle_ms=1500)
    refusal = page.get_by_test_id("stAlertContentError").filter(has_text="my whole model.pt").inner_text()
    assert "weights_only" in refusal and "[1m" not in refusal and "\x1b" not in refusal, refusal
    se_upload.set_input_files(str(mobilenet_file))
    wait_idle(page, settle_ms=1500)
    expect(page.get_by_text("guessed from the file's keys")).to_be_visible()
    counterpart = page.get_by_role("combobox", name="Vanilla counterpart", exact=True)
    expect(counterpart).to_be_visible()
    expect(counterpart).to_have_value("torchvision:mobilenet_v2: random initialisation (untrained)")
    page.get_by_role("button", name="Check and compare").click()
    wait_idle(page, settle_ms=1500)
    expect(page.get_by_test_id("stAlertContentSuccess").filter(has_text="Registered")).to_be_visible()
    expect(page.get_by_test_id("stAlertContentWarning").filter(has_text="expect different input")).to_be_visible()
    assert_clean(page)

    page.get_by_role("tab", name="Selected pair").click()
    wait_idle(page)
    expect(page.get_by_text("SE units (SqueezeExcitation)").first).to_be_visible()
    assert "pair=user" in page.url

    page.get_by_test_id("stSidebar").get_by_role("link", name="Inspect").click()  # same session: in-app navigation
    wait_idle(page, settle_ms=1000)
    upload_png(page, upload_file)
    assert_charts(page, 2)
    assert_clean(page)

    page.get_by_test_id("stSidebar").get_by_role("link", name="Attributions").click()
    wait_idle(page, settle_ms=1000)
    expect(page.get_by_test_id("stAlertContentInfo").filter(has_text="expect different input")).to_be_visible()
    expect(page.get_by_text("Feed the image through")).to_be_visible()
    expect(page.get_by_text(upload_file.name).first).to_be_visible()  # the Inspect upload is offered here
    assert_charts(page, 2)
    assert_clean(page)

    # (4) Class-wise for a pair without shipped statistics: no dead end, a way to compute them for this pair
    page.get_by_test_id("stSidebar").get_by_role("link", name="Class-wise").click()
    wait_idle(page, settle_ms=1000)
    expect(page.get_by_text("only CIFAR-10").first).to_be_visible()
    expect(page.get_by_text("python -m se_core.stats --pair user:").first).to_be_visible()
    assert_clean(page)

    fresh = page.context.browser.new_page()
    try:
        open_page(fresh, app_server, "/")
        sidebar = fresh.get_by_test_id("stSidebar")
        sidebar.get_by_role("combobox").first.click()
        expect(fresh.get_by_role("option").filter(has_text="mobilenet_v3_small")).to_be_visible()
    finally:
        fresh.close()
