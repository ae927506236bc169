"""Library weights on disk: the hub caches and data/weights searched, the status of each file, hash checks, safe reads."""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from se_core.config import data_dir, downloads_allowed, hf_hub_cache
from se_core.models.checkpoints import CheckpointError, read_checkpoint, read_torch_file
from se_core.models.weights import WeightsRef
from se_core.models.zoo.catalog import ZOO_PAIRS, _timm_command, _tv_command
from se_core.models.zoo.library import timm_cfg, tv_weights
from se_core.models.zoo.specs import zoo_model
from se_core.util.files import file_digest


def torch_hub_checkpoints() -> Path:
    """``torch.hub.get_dir()/checkpoints``, where torchvision (and timm's URL weights) are cached."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def local_weights_dir() -> Path:
    """``<data dir>/weights``: hand-copied library weight files, by their library file name."""
    return data_dir() / "weights"


@dataclass(frozen=True)
class WeightsStatus:
    """Where a library weight file is (``found``), or where it was looked for and how to get it."""

    arch: str
    library: str
    weights: str
    found: Path | None
    expected: tuple[Path, ...]
    command: str
    info: dict

    @property
    def ok(self) -> bool:
        return self.found is not None

    def message(self) -> str:
        """The WeightsMissing text: which file, where to put it, how to download it elsewhere."""
        where = " or ".join(str(p) for p in self.expected)
        repo = self.expected[0]
        folder = next((q for q in repo.parents if q.name.startswith("models--")), None)
        copy = (f"copy the folder {folder.name} into {folder.parent}" if folder is not None
                else f"copy {repo.name} into {repo.parent}")
        return (f"weights for {self.arch} ({self.library} {self.weights}) are not on this machine: expected "
                f"{where}. On a machine with internet access run `{self.command}`, then {copy} here "
                f"(or put the file at {self.expected[-1]}). " + (
                    "SE Lens downloads only on request: the Models page's Download button, or "
                    "`python -m se_core.zoo download PAIR`." if downloads_allowed() else
                    "Downloads are switched off here (SE_LENS_ALLOW_DOWNLOAD=0)."))


def _hf_lookup(repo_id: str, filenames: Sequence[str]) -> tuple[Path | None, Path]:
    """(cached file or None, the path it would have) in the HF hub cache, without network."""
    cache = hf_hub_cache()
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    for fn in filenames:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(repo_id, fn, cache_dir=str(cache))
        except Exception:  # noqa: BLE001 - a broken cache is a missing file
            hit = None
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit), Path(hit)
        snaps = sorted((folder / "snapshots").glob(f"*/{fn}"), key=lambda p: p.stat().st_mtime if p.exists() else 0)
        snaps = [p for p in snaps if p.is_file()]
        if snaps:
            return snaps[-1], snaps[-1]
    ref = folder / "refs" / "main"
    rev = ref.read_text().strip() if ref.is_file() else "<revision>"
    return None, folder / "snapshots" / rev / filenames[0]


def weights_status(ref: WeightsRef, arch: str) -> WeightsStatus:
    """Look for ``ref``'s file in the library cache, then in ``data/weights``; never touches the network."""
    zm = zoo_model(arch)
    local = local_weights_dir()
    if ref.kind == "torchvision":
        w = tv_weights(ref.location)
        fname = Path(urlparse(w.url).path).name
        cached = torch_hub_checkpoints() / fname
        expected = (cached, local / fname)
        info = {"url": w.url, "recipe": w.meta.get("recipe", ""),
                "reported_top1": (w.meta.get("_metrics", {}).get("ImageNet-1K", {}) or {}).get("acc@1")}
        command = ref.how_to_get or _tv_command(zm.name, ref.location)
    elif ref.kind == "timm":
        cfg = timm_cfg(ref.location)
        info = {"hf_hub_id": cfg.hf_hub_id or "", "url": cfg.url or "", "license": cfg.license or "",
                "paper": ", ".join(cfg.paper_ids) if isinstance(cfg.paper_ids, (list, tuple)) else (cfg.paper_ids or ""),
                "origin_url": cfg.origin_url or ""}
        command = ref.how_to_get or _timm_command(ref.location)
        if cfg.hf_hub_id:
            names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
            hit, where = _hf_lookup(cfg.hf_hub_id, names)
            localp = local / f"{ref.location}.safetensors"
            if hit is not None:
                return WeightsStatus(arch, "timm", ref.location, hit, (where, localp), command, info)
            expected = (where, localp)
        elif cfg.url:
            fname = Path(urlparse(cfg.url).path).name
            expected = (torch_hub_checkpoints() / fname, local / fname)
        else:
            raise KeyError(f"timm weights {ref.location!r} have neither a hub id nor a URL")
    else:
        raise ValueError(f"not a library weights kind: {ref.kind!r}")
    found = next((p for p in expected if p.is_file()), None)
    return WeightsStatus(arch, zm.library, ref.location, found, expected, command, info)


def expected_path(ref: WeightsRef) -> Path:
    """The library-cache path of ``ref``'s file (what :meth:`~se_core.models.pairs.WeightsRef.path` shows)."""
    arch = next((p.se_arch if p.se_weights == ref.location else p.vanilla_arch for p in ZOO_PAIRS
                 if ref.location in (p.se_weights, p.vanilla_weights)), None)
    if arch is None:
        return Path(ref.location)
    st = weights_status(ref, arch)
    return st.found or st.expected[0]


_HASH_OK: dict[tuple[str, int, int], bool] = {}
_HASH_LOCK = threading.Lock()


def verify_hash(path: Path) -> None:
    """Raise :class:`CheckpointError` when ``path``'s SHA-256 does not start with the hex in its name (torch hub rule)."""
    m = torch.hub.HASH_REGEX.search(path.name)
    if not m or not m.group(1):
        return
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if _HASH_OK.get(key):
            return
    if not file_digest(path).startswith(m.group(1)):
        raise CheckpointError(f"{path} does not match the SHA-256 prefix {m.group(1)} in its name: the file is "
                              "corrupt or truncated; delete it and download it again")
    with _HASH_LOCK:
        _HASH_OK[key] = True


def read_library_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a library weight file: safetensors, or ``torch.load(weights_only=True)`` (zip or legacy format)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return read_checkpoint(path)[0]
    return read_torch_file(path, allow_legacy=True)[0]
