"""Random weights written where timm and torchvision would cache the real ones, so ImageNet pairs load offline.

The caches are laid out exactly as the libraries lay theirs out, computed from the libraries' own
metadata (not from se_core.models.zoo): timm's Hugging Face hub cache
(``models--timm--<tag>/{blobs,refs/main,snapshots}``, snapshot files symlinked to blobs) and torch
hub's ``checkpoints/<file name of the URL>``. Used by the zoo tests (through ``library_cache``) and by
the ImageNet benches (timing does not depend on the weights).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import torch

REV = "0123456789abcdef0123456789abcdef01234567"


def cache_env(root: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """Empty HF hub, torch hub and data folders under ``root``: (environment to point at them, the folders)."""
    hf, th, data = root / "hf" / "hub", root / "torch", root / "data"
    for d in (hf, th, data):
        d.mkdir(parents=True, exist_ok=True)
    env = {"HF_HUB_CACHE": str(hf), "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(th),
           "SE_LENS_DATA_DIR": str(data)}
    return env, {"hf": hf, "torch_hub": th / "hub", "data": data}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def write_library_weights(kind: str, location: str, cache: dict[str, Path], seed: int = 0,
                          legacy: bool = False) -> tuple[Path, dict[str, torch.Tensor]]:
    """Random weights for ``location`` written where the library itself would cache them; (file, state)."""
    torch.manual_seed(seed)
    if kind == "timm":
        import timm
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(location)
        state = _state(timm.create_model(location, pretrained=False))
        if cfg.hf_hub_id:
            from safetensors.torch import save

            data = save(state)
            repo = cache["hf"] / ("models--" + cfg.hf_hub_id.replace("/", "--"))
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            cfg_blob = repo / "blobs" / "cfg0"
            cfg_blob.write_text(json.dumps({"architecture": location.split(".")[0], "num_classes": 1000}))
            snap = repo / "snapshots" / REV
            snap.mkdir(parents=True)
            (snap / "model.safetensors").symlink_to(os.path.relpath(blob, snap))
            (snap / "config.json").symlink_to(os.path.relpath(cfg_blob, snap))
            (repo / "refs").mkdir()
            (repo / "refs" / "main").write_text(REV)
            return snap / "model.safetensors", state
        url = cfg.url
    else:
        from torchvision.models import get_model, get_model_weights, get_weight, list_models

        w = get_weight(location)
        name = next(n for n in list_models() if get_model_weights(n) is type(w))  # the builder of these weights
        state = _state(get_model(name, weights=None))
        url = w.url
    path = cache["torch_hub"] / "checkpoints" / Path(urlparse(url).path).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path, state


def write_pair(name: str, cache: dict[str, Path]) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    """Random weights for both models of the registered pair ``name``: {role: (file, state)}."""
    from se_core.models.pairs import PAIRS

    spec = PAIRS[name]
    return {role: write_library_weights(ref.kind, ref.location, cache, seed=i)
            for i, (role, ref) in enumerate((("se", spec.se_weights), ("vanilla", spec.vanilla_weights)))}
