"""Which architecture a state dict without SE Lens metadata belongs to, read from its keys and shapes.

An uploaded ``torch.save(model.state_dict())`` says nothing about its model, but its keys and
shapes do: the guess is the first candidate whose own state dict has exactly the file's keys with
the same shapes (the classifier may have another number of rows). Candidates are every
registered architecture, then library names the file suggests: its file name (``seresnet18.pth``,
torchvision's ``resnet18-f37072fd.pth``) and timm/torchvision ResNet key patterns (blocks per
stage, bottlenecks, ``se``/``se_module`` units). Candidates are built on the ``meta`` device (no
memory, no initialisation) and their signatures cached, so a guess costs milliseconds once warm.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from se_core.models.registry import get_spec, list_models
from se_core.models.zoo.library import _timm, _tv_models
from se_core.nn.se import SEConfig

Shapes = dict[str, tuple[int, ...]]

_RESNET_KEY = re.compile(r"^layer([1-4])\.(\d+)\.conv(\d)\.weight$")
_RESNET_DEPTHS = {((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), False): 34, ((3, 4, 6, 3), True): 50,
                  ((3, 4, 23, 3), True): 101, ((3, 8, 36, 3), True): 152}
_HASH_TAIL = re.compile(r"-[0-9a-f]{6,}$")
_LOCK = threading.Lock()
_SIGNATURES: dict[tuple[str, str], _Signature | None] = {}


@dataclass(frozen=True)
class _Signature:
    """A built candidate's keys and shapes; ``classifier``: the keys of its last ``nn.Linear``."""

    shapes: Shapes
    classifier: frozenset[str]


def _shapes(state: Mapping[str, torch.Tensor]) -> Shapes:
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _signature(arch: str, se: SEConfig | None) -> _Signature | None:
    """``arch``'s signature (built once per (arch, SE config)); None when it cannot be built."""
    key = (arch, se.to_json() if se else "")
    with _LOCK:
        if key in _SIGNATURES:
            return _SIGNATURES[key]
    try:
        spec = get_spec(arch)
        with torch.device("meta"):
            model = spec.build(se if spec.takes_se else None)
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        cls = frozenset(f"{linear[-1]}.{p}" for p in ("weight", "bias")) if linear else frozenset()
        sig = _Signature(_shapes(model.state_dict()), cls)
    except Exception:  # noqa: BLE001 - a candidate that cannot be built is simply not the answer
        sig = None
    with _LOCK:
        _SIGNATURES[key] = sig
    return sig


def _matches(file: Shapes, sig: _Signature) -> bool:
    if len(file) != len(sig.shapes) or file.keys() != sig.shapes.keys():
        return False
    for k, shape in file.items():
        want = sig.shapes[k]
        if shape != want and not (k in sig.classifier and shape[1:] == want[1:]):
            return False
    return True


def _library_names(name: str) -> list[str]:
    """``timm:<name>`` / ``torchvision:<name>`` where the library has a model of that name."""
    out = []
    try:
        if _timm().is_model(name):
            out.append(f"timm:{name}")
    except ImportError:
        pass
    try:
        if name in _tv_models().list_models():
            out.append(f"torchvision:{name}")
    except ImportError:
        pass
    return out


def _named_candidates(file_name: str) -> list[str]:
    """Library models the file name names: ``seresnet18.a1_in1k.pth`` → seresnet18, ``resnet18-f37072fd.pth`` → resnet18."""
    stem = Path(file_name).name.split(".")[0] if file_name else ""
    stem = _HASH_TAIL.sub("", stem)
    return _library_names(stem) if stem else []


def _resnet_candidates(keys: set[str]) -> list[str]:
    """timm / torchvision ResNets (with or without SE) whose block layout the keys show."""
    blocks: dict[int, set[int]] = {}
    bottleneck = False
    for k in keys:
        m = _RESNET_KEY.match(k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            bottleneck |= m.group(3) == "3"
    layout = tuple(len(blocks.get(s, ())) for s in (1, 2, 3, 4))
    depth = _RESNET_DEPTHS.get((layout, bottleneck))
    if depth is None:
        return []
    if any(".se_module." in k for k in keys):
        names = [f"legacy_seresnet{depth}"]
    elif any(".se." in k for k in keys):
        names = [f"seresnet{depth}"]
    else:
        names = [f"resnet{depth}"]
    return [c for n in names for c in _library_names(n)]


def guess_arch(state: Mapping[str, torch.Tensor], file_name: str = "", se: SEConfig | None = None) -> str | None:
    """The architecture whose state dict matches ``state`` exactly (keys, shapes; any classifier width),
    or None. Registered architectures first (this project's SE ResNets built with ``se``, the SE config
    the shapes suggest), then the library models the file name and the key layout point to."""
    file = _shapes(state)
    if not file:
        return None
    for arch in list_models():
        spec = get_spec(arch)
        sig = _signature(arch, se if spec.takes_se and spec.has_se else None)
        if sig is not None and _matches(file, sig):
            return arch
    seen: set[str] = set()
    for arch in _named_candidates(file_name) + _resnet_candidates(set(file)):
        if arch in seen:
            continue
        seen.add(arch)
        sig = _signature(arch, None)
        if sig is not None and _matches(file, sig):
            return arch
    return None
