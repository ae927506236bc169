"""Checkpoints that are safe to open: safetensors with metadata; ``.pt``/``.pth`` only through
``torch.load(weights_only=True)``; nothing is ever unpickled otherwise.

A checkpoint's metadata (``CheckpointMeta``) names the architecture, SE config, class names,
normalization and provenance, so a file alone is enough to rebuild and label its model.

A leaf: it imports nothing of SE Lens, so every loader can use it (rebuilding the model a file
describes is :mod:`se_core.models.build`).
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from se_core.util.files import atomic_write_bytes, file_sha256
from se_core.util.text import first_meaningful_line

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""A safetensors header larger than this is refused before it is read (a real one is KBs)."""
MAX_UNZIPPED_BYTES = 4 * 1024**3
"""``.pt`` zip archives that would expand beyond this are refused (zip-bomb guard)."""
MAX_ZIP_RATIO = 200
"""...as are archives whose entries compress better than this ratio (tensors don't)."""
META_KEY = "se_lens"
COMPACT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
"""Half-precision formats of a compact copy (:func:`save_compact`)."""
_F16_MAX = float(torch.finfo(torch.float16).max)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; ``str()`` is a one-line reason with what to do."""


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint file says about its model (stored as JSON in the safetensors header)."""

    arch: str
    se_config: dict | None = None
    num_classes: int = 10
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    input_size: tuple[int, int] = (32, 32)
    provenance: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or not isinstance(d.get("arch"), str):
                raise ValueError("no 'arch' string")
            known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
            for k in ("class_names", "mean", "std", "input_size"):
                if k in known and known[k] is not None:
                    known[k] = tuple(known[k])
            return cls(**known)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"checkpoint metadata is malformed ({e}); re-save it with se_core.models.checkpoints.save_checkpoint") from None


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Atomically write a safetensors file (tensors made contiguous, CPU)."""
    from safetensors.torch import save

    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(clean, metadata=dict(metadata)))


def save_checkpoint(path: str | os.PathLike, model_or_state: nn.Module | Mapping[str, torch.Tensor],
                    meta: CheckpointMeta) -> None:
    """Save weights (a module's ``state_dict`` or a dict of tensors) with metadata, atomically."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    state = {k.removeprefix("module."): v for k, v in state.items()}
    save_tensors(path, state, {META_KEY: meta.to_json()})


def compact_state(state: Mapping[str, torch.Tensor], dtype: str = "float16") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Floating-point tensors in half precision, the rest (BatchNorm's step counters) unchanged: half the bytes.

    A float16 copy keeps 11 significant bits; a tensor with values beyond float16's range goes to bfloat16
    instead (its names are returned), so nothing turns infinite."""
    if dtype not in COMPACT_DTYPES:
        raise ValueError(f"compact dtype must be one of {', '.join(COMPACT_DTYPES)}, got {dtype!r}")
    out, widened = {}, []
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v
            continue
        want = COMPACT_DTYPES[dtype]
        if want == torch.float16 and v.numel() and float(v.detach().abs().max()) > _F16_MAX:
            want = torch.bfloat16
            widened.append(k)
        out[k] = v.detach().to(want)
    return out, widened


def save_compact(src: str | os.PathLike, dst: str | os.PathLike, provenance: Mapping | None = None,
                 dtype: str = "float16") -> CheckpointMeta:
    """Write a half-precision copy of checkpoint ``src`` to ``dst`` (atomically), keeping its metadata (architecture,
    SE config, classes, normalisation, provenance) plus ``provenance`` and a ``compact`` record of what was done.

    Loading it needs nothing special: :func:`load_into` copies each half-precision tensor into the model's float32
    parameters, so :func:`se_core.models.build.build_from_checkpoint` restores an fp32 model."""
    src = Path(src)
    state, meta = read_checkpoint(src)
    if meta is None:
        raise CheckpointError(f"{src.name} has no SE Lens metadata; a compact copy must say what model it holds")
    small, widened = compact_state(state, dtype)
    record = {"dtype": dtype, "source": src.name, "source_sha256": file_sha256(src),
              "source_bytes": src.stat().st_size, "restored_as": "float32 by load_into / build_from_checkpoint"}
    if widened:
        record["bfloat16_tensors"] = widened
    kept = replace(meta, provenance={**meta.provenance, **dict(provenance or {}), "compact": record})
    save_tensors(dst, small, {META_KEY: kept.to_json()})
    return kept


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path.name}: file is {size} bytes, too short for safetensors; the file is truncated or not a checkpoint")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path.name}: safetensors header claims {n:,} bytes (limit {MAX_HEADER_BYTES:,}); the file is corrupt or hostile")
        if 8 + n > size:
            raise CheckpointError(f"{path.name}: header runs past the end of the file ({size:,} bytes); the file is truncated")
        header = f.read(n)
    try:
        hdr = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path.name}: safetensors header is not valid JSON; the file is corrupt") from None
    if not isinstance(hdr, dict):
        raise CheckpointError(f"{path.name}: safetensors header is not a JSON object; the file is corrupt")
    meta = hdr.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name}: safetensors '__metadata__' is not a JSON object; the file is corrupt")
    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path.name}: safetensors payload is unreadable ({reason}); the file is truncated or corrupt") from None
    return tensors, {str(k): str(v) for k, v in meta.items()}


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            total = 0
            for info in zf.infolist():
                total += info.file_size
                if info.file_size > 1 << 20 and info.file_size / max(info.compress_size, 1) > MAX_ZIP_RATIO:
                    raise CheckpointError(f"{path.name}: archive entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f}x; refused as a zip bomb")
            if total > MAX_UNZIPPED_BYTES:
                raise CheckpointError(f"{path.name}: archive would expand to {total:,} bytes (limit {MAX_UNZIPPED_BYTES:,}); refused")
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path.name}: not a torch.save zip archive (legacy or truncated .pt files are refused); re-save with torch.save or convert to safetensors") from None


def read_torch_file(path: str | os.PathLike, *, allow_legacy: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (and SE Lens metadata) of a ``torch.save`` file, through ``torch.load(weights_only=True)`` only.

    Zip archives are checked against zip bombs first; legacy (non-zip) files are refused unless
    ``allow_legacy`` (library weight files, which torchvision still ships in that format). A state
    dict wrapped as ``{"state_dict": ...}``, ``{"model": ...}`` or ``{"model_state": ...}`` is unwrapped.
    """
    path = Path(path)
    if not allow_legacy or zipfile.is_zipfile(path):
        _check_zip(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure of the restricted unpickler is a refusal
        first = first_meaningful_line(str(e)) or type(e).__name__
        raise CheckpointError(f"{path.name}: refused by torch.load(weights_only=True): {first.rstrip('.')}; only plain "
                              "tensors/state dicts are accepted (a file saved with torch.save(model) holds pickled "
                              "code: save model.state_dict() instead)") from None
    meta: dict[str, str] = {}
    if isinstance(obj, dict) and isinstance(obj.get(META_KEY), str):
        meta[META_KEY] = obj[META_KEY]
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path.name}: holds no state dict of tensors (found {type(obj).__name__}); save model.state_dict()")
    return {k.removeprefix("module."): v for k, v in obj.items()}, meta


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CheckpointMeta | None]:
    """Read weights and metadata; raises :class:`CheckpointError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            tensors, meta = _read_safetensors(path)
        elif suffix in (".pt", ".pth"):
            tensors, meta = read_torch_file(path)
        else:
            raise CheckpointError(f"{path.name}: '{suffix or 'no extension'}' files are refused (they may hold pickled code); use .safetensors, or .pt/.pth state dicts")
    except OSError as e:
        raise CheckpointError(f"{path.name}: cannot read file ({e.strerror or e})") from None
    return tensors, (CheckpointMeta.from_json(meta[META_KEY]) if META_KEY in meta else None)


def _kind(t: torch.Tensor) -> str:
    return "complex" if t.is_complex() else "float" if t.is_floating_point() else "bool" if t.dtype == torch.bool else "integer"


def compare_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Key-by-key differences between ``model`` and ``state``: missing, unexpected, mis-shaped,
    and of the wrong kind of dtype (e.g. integers where the model has float weights; float16
    vs float32 is fine, ``load_state_dict`` converts it)."""
    own = model.state_dict()
    problems = [f"missing {k} {tuple(v.shape)}" for k, v in own.items() if k not in state]
    problems += [f"unexpected {k} {tuple(v.shape)}" for k, v in state.items() if k not in own]
    problems += [f"shape {k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems += [f"dtype {k}: file {state[k].dtype} vs model {v.dtype}"
                 for k, v in own.items() if k in state and _kind(state[k]) != _kind(v)]
    return problems


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], what: str = "checkpoint") -> nn.Module:
    """Load ``state`` into ``model`` after checking every key and shape; names each mismatch."""
    problems = compare_state(model, state)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"{what} does not fit {type(model).__name__}: {shown}")
    sd = OrderedDict(state)
    # Files read here carry no per-module version metadata (torch's ``_metadata``); give the model's own,
    # i.e. assume the file was written by the current code (torchvision's MNASNet refuses to load without it).
    sd._metadata = getattr(model.state_dict(), "_metadata", OrderedDict())  # type: ignore[attr-defined]
    model.load_state_dict(sd, strict=True)
    return model
