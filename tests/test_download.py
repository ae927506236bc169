"""Weights on request (:mod:`se_core.models.zoo.download`), against a real HTTP server on 127.0.0.1.

:mod:`weights_server` plays the Hugging Face hub (``HF_ENDPOINT``) and download.pytorch.org
(``SE_LENS_TORCHVISION_URL_BASE``), serving random-weight files built here with the libraries'
builders. A success lands where :func:`weights_status` looks and loads; a truncated body, a wrong hash,
a 404, a stalled server, a cancel and an unloadable file each give one clear line and leave both
caches byte for byte as they were. Nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest
from support import REPO_ROOT, subprocess_env
from weights_server import REV, WeightsServer

from se_core.models import zoo
from se_core.models.pairs import PAIRS
from se_core.models.zoo import cli
from se_core.models.zoo.download import DownloadCancelled, DownloadError, fetch, fetch_all, plan_file, plan_pair

TV_PAIR = "imagenet-regnet400mf-tv"
TIMM_PAIR = "imagenet-regnet400mf-timm"
TIMM_SE = "regnety_004.pycls_in1k"


@pytest.fixture
def server() -> Iterator[WeightsServer]:
    with WeightsServer() as srv:
        yield srv


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: WeightsServer) -> dict[str, Path]:
    """Empty HF hub / torch hub caches and data dir made current, every download URL pointed at ``server``."""
    hf, th, data = tmp_path / "hf" / "hub", tmp_path / "torch", tmp_path / "data"
    for d in (hf, th, data):
        d.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("SE_LENS_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    monkeypatch.setenv("SE_LENS_TORCHVISION_URL_BASE", f"{server.base}/models")
    monkeypatch.setenv("SE_LENS_TIMM_URL_BASE", f"{server.base}/models")
    monkeypatch.setenv("SE_LENS_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setenv("TORCH_HOME", str(th))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("SE_LENS_DATA_DIR", str(data))
    return {"hf": hf, "torch": th, "data": data}


def tree(*roots: Path) -> dict[str, object]:
    """Every path under ``roots``: file bytes, link target or ``dir`` (so "unchanged" means byte for byte)."""
    out: dict[str, object] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = (f"-> {p.readlink()}" if p.is_symlink() else p.read_bytes() if p.is_file() else "dir")
    return out


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def tv_file(location: str, seed: int = 0) -> bytes:
    """Random weights of the torchvision model that ``location`` belongs to, as ``torch.save`` writes them."""
    from torchvision.models import get_model, get_model_weights, list_models

    w = zoo.tv_weights(location)
    name = next(n for n in list_models() if get_model_weights(n) is type(w))
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save(_state(get_model(name, weights=None)), buf)
    return buf.getvalue()


def timm_file(tag: str, seed: int = 0) -> bytes:
    import timm
    from safetensors.torch import save

    torch.manual_seed(seed)
    return save(_state(timm.create_model(tag, pretrained=False)))


def serve_tv(server: WeightsServer, monkeypatch: pytest.MonkeyPatch, location: str, data: bytes) -> str:
    """Serve ``data`` for torchvision ``location`` under a name carrying its own SHA-256 prefix (as torchvision's
    names do), that name patched into the weights' URL; the file name."""
    w = zoo.tv_weights(location)
    stem = Path(w.url).name.split("-")[0]
    fname = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setattr(w.value, "url", f"https://download.pytorch.org/models/{fname}")
    server.torch(fname, data)
    return fname


# --------------------------------------------------------------------------- success


def test_torchvision_pair_downloads_into_torch_hub_and_loads(caches: dict[str, Path], server: WeightsServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PAIRS[TV_PAIR]
    names = [serve_tv(server, monkeypatch, ref.location, tv_file(ref.location, i))
             for i, ref in enumerate((spec.se_weights, spec.vanilla_weights))]
    plans = plan_pair(TV_PAIR)
    assert [p.dest.name for p in plans] == names
    assert all(p.size == len(server.files[f"/models/{n}"].data) for p, n in zip(plans, names, strict=True))
    assert not any(r[0] == "GET" for r in server.requests)  # the size probe downloads nothing
    seen: list[tuple[int, int | None]] = []
    paths = fetch_all(plans, progress=lambda d, t: seen.append((d, t)))
    total = sum(p.size for p in plans)
    assert seen[-1] == (total, total) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert paths == [caches["torch"] / "hub" / "checkpoints" / n for n in names]
    for (arch, ref), path in zip(((spec.se_arch, spec.se_weights), (spec.vanilla_arch, spec.vanilla_weights)), paths,
                                 strict=True):
        assert zoo.weights_status(ref, arch).found == path
        zoo.verify_hash(path)
    assert plan_pair(TV_PAIR) == []  # ready now: nothing left to fetch
    assert sorted(p.name for p in (caches["torch"] / "hub" / "checkpoints").iterdir()) == sorted(names)  # no temp files


def test_timm_weights_land_in_the_hub_cache_layout(caches: dict[str, Path], server: WeightsServer) -> None:
    data = timm_file(TIMM_SE)
    sha = server.hub(f"timm/{TIMM_SE}", "model.safetensors", data)
    ref = PAIRS[TIMM_PAIR].se_weights
    plan = plan_file(ref, "regnety_004_timm")
    assert plan.size == len(data) and plan.sha256 == sha
    path = fetch(plan)
    repo = caches["hf"] / f"models--timm--{TIMM_SE}"
    assert path == repo / "snapshots" / REV / "model.safetensors"
    assert path.is_symlink() and path.readlink() == Path("../../blobs") / sha  # the hub's relative link
    assert (repo / "blobs" / sha).read_bytes() == data and (repo / "refs" / "main").read_text() == REV
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache(f"timm/{TIMM_SE}", "model.safetensors", cache_dir=str(caches["hf"])) == str(path)
    assert zoo.weights_status(ref, "regnety_004_timm").found == path
    head = next(h for m, p, h in server.requests if m == "HEAD")
    assert head.get("Accept-Encoding") == "identity" and "hf_hub" in head.get("User-Agent", "")  # the hub's headers


# --------------------------------------------------------------------------- failures leave the caches unchanged


def _fail(caches: dict[str, Path], ref, arch: str, timeout: float | None = None,  # noqa: ANN001
          exc: type[DownloadError] = DownloadError, **kw) -> str:
    before = tree(*caches.values())
    with pytest.raises(exc) as e:
        fetch(plan_file(ref, arch, timeout), timeout=timeout, **kw)
    assert tree(*caches.values()) == before
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("mode, words", [("truncate", "bytes (the connection closed early)"),
                                         ("badhash", "does not match the published"),
                                         ("stall", "stalled")])
def test_hub_failures_leave_the_cache_unchanged(caches: dict[str, Path], server: WeightsServer, mode: str,
                                                words: str) -> None:
    data = bytes(range(256)) * 16384  # 4 MB: failures happen before anything is read
    server.hub(f"timm/{TIMM_SE}", "model.safetensors", data, mode=mode)
    msg = _fail(caches, PAIRS[TIMM_PAIR].se_weights, "regnety_004_timm", timeout=1.0)
    assert words in msg and server.base in msg and "nothing was saved" in msg, msg


@pytest.mark.parametrize("mode, words", [("truncate", "bytes (the connection closed early)"),
                                         ("badhash", "does not match the published e6988f5f"),
                                         ("stall", "sent nothing for 1 s (stalled)")])
def test_torchvision_failures_leave_the_cache_unchanged(caches: dict[str, Path], server: WeightsServer, mode: str,
                                                        words: str) -> None:
    # the real file name (hash prefix e6988f5f): random bytes under it fail the hash check, as they should
    server.torch("regnet_y_400mf-e6988f5f.pth", bytes(range(256)) * 16384, mode="ok" if mode == "badhash" else mode)
    msg = _fail(caches, PAIRS[TV_PAIR].se_weights, "regnet_y_400mf_tv", timeout=1.0)
    assert words in msg and "regnet_y_400mf-e6988f5f.pth" in msg, msg


def test_404_names_the_url_and_the_settings(caches: dict[str, Path], server: WeightsServer) -> None:
    before = tree(*caches.values())
    for ref, arch in ((PAIRS[TV_PAIR].se_weights, "regnet_y_400mf_tv"), (PAIRS[TIMM_PAIR].se_weights, "regnety_004_timm")):
        with pytest.raises(DownloadError, match="HTTP 404 .not found.") as e:
            plan_file(ref, arch)
        assert server.base in str(e.value) and "HF_ENDPOINT" in str(e.value)
    # timm asks for model.safetensors, then pytorch_model.bin, as timm does
    assert [p for m, p, _ in server.requests if m == "HEAD"][-2:] == [
        f"/timm/{TIMM_SE}/resolve/main/model.safetensors", f"/timm/{TIMM_SE}/resolve/main/pytorch_model.bin"]
    assert tree(*caches.values()) == before


def test_cancel_and_an_unloadable_file_leave_the_cache_unchanged(caches: dict[str, Path], server: WeightsServer) -> None:
    from safetensors.torch import save

    server.hub(f"timm/{TIMM_SE}", "model.safetensors", bytes(range(256)) * 16384)
    msg = _fail(caches, PAIRS[TIMM_PAIR].se_weights, "regnety_004_timm", exc=DownloadCancelled, cancel=lambda: True)
    assert "stopped; nothing was saved" in msg
    # a complete, correctly hashed file that fits no RegNetY: placed, then taken back by the ready check
    server.hub(f"timm/{TIMM_SE}", "model.safetensors", save({"stem.conv.weight": torch.zeros(3)}))
    msg = _fail(caches, PAIRS[TIMM_PAIR].se_weights, "regnety_004_timm")
    assert "cannot be used" in msg and "nothing was kept" in msg, msg


def test_switched_off_and_offline_refuse_before_any_request(caches: dict[str, Path], server: WeightsServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_ALLOW_DOWNLOAD", "0")
    with pytest.raises(DownloadError, match="SE_LENS_ALLOW_DOWNLOAD=0"):
        plan_pair(TV_PAIR)
    monkeypatch.setenv("SE_LENS_ALLOW_DOWNLOAD", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        plan_pair(TIMM_PAIR)
    assert server.requests == []


# --------------------------------------------------------------------------- command line


def test_cli_download_prints_size_progress_and_path(caches: dict[str, Path], server: WeightsServer,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    spec = PAIRS[TV_PAIR]
    for i, ref in enumerate((spec.se_weights, spec.vanilla_weights)):
        serve_tv(server, monkeypatch, ref.location, tv_file(ref.location, i))
    assert cli.main(["download", TV_PAIR]) == 0
    out, err = capsys.readouterr()
    assert "2 file(s) to download" in out and " MB from " in out and "100 % of" in err
    assert out.count("ready (read and loaded): ") == 2 and str(caches["torch"]) in out
    assert cli.main(["download", TV_PAIR]) == 0 and "already on this machine" in capsys.readouterr().out
    assert cli.main(["download", "imagenet-mobilenetv3-tv"]) == 2  # not served: a 404
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "HTTP 404" in err[0]


def test_python_m_se_core_zoo_download_spelling() -> None:
    r = subprocess.run([sys.executable, "-m", "se_core.zoo", "download", TV_PAIR], cwd=REPO_ROOT, capture_output=True,
                       text=True, env=subprocess_env(SE_LENS_ALLOW_DOWNLOAD="0"), timeout=300)
    assert r.returncode == 2 and "SE_LENS_ALLOW_DOWNLOAD=0" in r.stderr, r.stderr


# --------------------------------------------------------------------------- the Models page


def _models_page() -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO_ROOT / "dashboard" / "app.py"), default_timeout=300)
    at.query_params["pair"] = TV_PAIR
    at.run()
    at.switch_page("../pages/models.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _click(at: AppTest, key: str) -> AppTest:
    next(b for b in at.button if b.key == key).click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_models_page_downloads_a_pair_on_click(caches: dict[str, Path], server: WeightsServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PAIRS[TV_PAIR]
    names = [serve_tv(server, monkeypatch, ref.location, tv_file(ref.location, i))
             for i, ref in enumerate((spec.se_weights, spec.vanilla_weights))]
    at = _models_page()
    assert server.requests == []  # nothing reaches the network before a click
    _click(at, f"models-zoo-size-{TV_PAIR}")
    assert {m for m, _, _ in server.requests} == {"HEAD"}
    button = next(b for b in at.button if b.key == f"models-zoo-download-{TV_PAIR}")
    total = sum(len(server.files[f"/models/{n}"].data) for n in names)
    assert button.label == f"Download ({total / 1e6:.1f} MB)"
    _click(at, f"models-zoo-download-{TV_PAIR}")
    assert not at.error, [e.value for e in at.error]
    assert any("Downloaded, read and loaded" in str(s.value) for s in at.success)
    assert any(e.label.endswith(": ready") and "RegNetY-400MF vs RegNetX-400MF (torchvision)" in e.label
               for e in at.expander)
    assert all((caches["torch"] / "hub" / "checkpoints" / n).is_file() for n in names)


def test_models_page_failures_show_an_error_and_switch_off_hides_the_buttons(
        caches: dict[str, Path], server: WeightsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PAIRS[TV_PAIR]
    se_name = serve_tv(server, monkeypatch, spec.se_weights.location, tv_file(spec.se_weights.location))
    fname = serve_tv(server, monkeypatch, spec.vanilla_weights.location, tv_file(spec.vanilla_weights.location, 1))
    server.files[f"/models/{fname}"] = replace(server.files[f"/models/{fname}"], mode="truncate")
    at = _models_page()
    before = tree(caches["torch"])
    _click(at, f"models-zoo-size-{TV_PAIR}")
    _click(at, f"models-zoo-download-{TV_PAIR}")
    errors = [str(e.value) for e in at.error]
    assert any(e.startswith("The download failed: ") and fname in e and "closed early" in e for e in errors), errors
    hub = caches["torch"] / "hub"
    assert before == {} and set(tree(caches["torch"])) == {str(hub), str(hub / "checkpoints"),
                                                           str(hub / "checkpoints" / se_name)}  # no temp file left
    _click(at, "models-zoo-size-imagenet-mobilenetv3-tv")  # not served: a 404 at the size check
    assert any("cannot be fetched" in str(e.value) and "HTTP 404" in str(e.value) for e in at.error)

    monkeypatch.setenv("SE_LENS_ALLOW_DOWNLOAD", "0")
    at.run()
    assert not [b for b in at.button if b.key.startswith("models-zoo-size-")]
    assert "SE_LENS_ALLOW_DOWNLOAD=0" in " ".join(str(m.value) for m in at.markdown)
