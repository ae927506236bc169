"""Gate samples on disk: a checked ``.npz`` (float16 arrays + JSON header) and the content-keyed cache.

A sample is keyed like the class-wise statistics (checkpoint SHA-256 + data digest + size bound), so one
(model file, data set) is never passed over twice, by the dashboard or anyone else.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from se_core.analysis.gates.sample import MAX_SAMPLE_MB, GateSample, collect_sample
from se_core.analysis.stats.model import Progress, StatsError, StopCheck
from se_core.analysis.stats.store import npy_header, provenance, site_infos
from se_core.config import stats_cache_dir
from se_core.data.datasets import ImageSet
from se_core.util.files import atomic_write_bytes, file_sha256

FORMAT = "se_lens.gate_sample"
SCHEMA_VERSION = 2
REDO = "delete it; the Gate space page (or collect_sample) computes it again"


def save_sample(path: str | os.PathLike, sample: GateSample) -> Path:
    """Write ``sample`` as a compressed ``.npz`` with its header embedded as JSON, atomically."""
    path = Path(path)
    header = {"format": FORMAT, "schema": SCHEMA_VERSION, "classes": list(sample.classes),
              "gate_sites": [s.to_dict() for s in sample.gate_sites], "z_sites": [s.to_dict() for s in sample.z_sites],
              "meta": dict(sample.meta)}
    arrays = {"__header__": np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8),
              "index": sample.index, "labels": sample.labels}
    arrays.update({f"s_{i}": sample.s[s.name] for i, s in enumerate(sample.gate_sites)})
    arrays.update({f"z_{i}": sample.z[s.name] for i, s in enumerate(sample.z_sites)})
    arrays.update({f"s_off_{i}": _offset(sample.s_offset, s) for i, s in enumerate(sample.gate_sites)})
    arrays.update({f"z_off_{i}": _offset(sample.z_offset, s) for i, s in enumerate(sample.z_sites)})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _offset(offsets, site) -> np.ndarray:
    return np.asarray(offsets.get(site.name, np.zeros(site.channels)), dtype=np.float32)


def load_sample(path: str | os.PathLike, *, max_mb: float = 4 * MAX_SAMPLE_MB) -> GateSample:
    """Read a file written by :func:`save_sample`; :class:`StatsError` saying what is wrong for anything else."""
    path = Path(path)
    if not path.is_file():
        raise StatsError(f"{path}: no such gate sample; {REDO}")
    if path.stat().st_size > max_mb * 1e6:
        raise StatsError(f"{path.name} is over the {max_mb:g} MB limit for gate samples; {REDO}")
    try:
        if not zipfile.is_zipfile(path):
            raise StatsError(f"{path.name}: not an .npz gate sample (not a zip archive); {REDO}")
        with np.load(path, allow_pickle=False) as z:
            return _read(z, path, max_mb)
    except StatsError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError, RuntimeError) as e:
        raise StatsError(f"{path.name}: not a readable gate sample ({type(e).__name__}: {str(e)[:200]}); {REDO}") from None


def _read(z, path: Path, max_mb: float) -> GateSample:
    if "__header__" not in z.files:
        raise StatsError(f"{path.name}: an .npz without a gate-sample header (a foreign file?); {REDO}")
    if sum(i.file_size for i in z.zip.infolist()) > max_mb * 1e6:
        raise StatsError(f"{path.name}: its arrays expand beyond {max_mb:g} MB; {REDO}")
    try:
        header = json.loads(z["__header__"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise StatsError(f"{path.name}: its header is not JSON text; the file is corrupt; {REDO}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("schema") != SCHEMA_VERSION:
        raise StatsError(f"{path.name}: not a schema-{SCHEMA_VERSION} {FORMAT!r} file; {REDO}")
    classes = header.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise StatsError(f"{path.name}: header key 'classes' is not a list of class names; {REDO}")
    gates = site_infos(header.get("gate_sites"), "gate_sites", path, REDO)
    zs = site_infos(header.get("z_sites"), "z_sites", path, REDO)

    def get(key: str, dtype, cols: int | None = None, n: int | None = None) -> np.ndarray:
        """Array ``key``, checked before it is read: dtype, shape ([n] or [n, cols], or [cols] when n < 0)."""
        if key not in z.files:
            raise StatsError(f"{path.name}: array {key!r} is missing; the file is truncated; {REDO}")
        shape, got = npy_header(z, key)
        want = (cols,) if n is not None and n < 0 else None
        ok = got == np.dtype(dtype) and (shape == want if want else len(shape) == (1 if cols is None else 2) and
                                         (n is None or shape[0] == n) and (cols is None or shape[1] == cols))
        if not ok:
            expected = f"[{cols}]" if want else f"[{n if n is not None else 'N'}{'' if cols is None else f', {cols}'}]"
            raise StatsError(f"{path.name}: array {key!r} is {got}{list(shape)}, expected {np.dtype(dtype)} "
                             f"{expected}; {REDO}")
        a = z[key]
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise StatsError(f"{path.name}: array {key!r} holds NaN or infinite values; {REDO}")
        return a

    labels = get("labels", np.int64)
    n = len(labels)
    index = get("index", np.int64, n=n)
    if n and (labels.min() < 0 or labels.max() >= len(classes) or index.min() < 0):
        raise StatsError(f"{path.name}: labels or image positions out of range; the file is corrupt; {REDO}")
    s = {st.name: get(f"s_{i}", np.float16, st.channels, n) for i, st in enumerate(gates)}
    zz = {st.name: get(f"z_{i}", np.float16, st.channels, n) for i, st in enumerate(zs)}
    s_off = {st.name: get(f"s_off_{i}", np.float32, st.channels, -1) for i, st in enumerate(gates)}
    z_off = {st.name: get(f"z_off_{i}", np.float32, st.channels, -1) for i, st in enumerate(zs)}
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    return GateSample(tuple(classes), index, labels, gates, zs, s, zz, s_off, z_off, meta)


def cache_key(checkpoint_sha256: str, data_digest: str, max_images: int | None = None,
              max_mb: float = MAX_SAMPLE_MB) -> str:
    """File stem of one (model file, data set, size bound)."""
    d = hashlib.sha256(data_digest.encode()).hexdigest()[:16]
    return f"gates-{checkpoint_sha256[:16]}-{d}-n{max_images or 'all'}-m{max_mb:g}-v{SCHEMA_VERSION}"


def cache_path(checkpoint: str | os.PathLike, data: ImageSet, max_images: int | None = None,
               max_mb: float = MAX_SAMPLE_MB, root: Path | None = None) -> Path:
    return (root or stats_cache_dir()) / f"{cache_key(file_sha256(checkpoint), data.digest, max_images, max_mb)}.npz"


def cached_sample(checkpoint: str | os.PathLike, model: nn.Module, data: ImageSet, mean: Sequence[float],
                  std: Sequence[float], *, role: str = "", arch: str = "", max_images: int | None = None,
                  max_mb: float = MAX_SAMPLE_MB, batch_size: int = 500, device: torch.device | str = "cpu",
                  progress: Progress | None = None, should_stop: StopCheck | None = None,
                  command: str | None = None) -> tuple[GateSample, Path, bool]:
    """(sample, file, computed_now): from the disk cache, else collected, saved and returned."""
    path = cache_path(checkpoint, data, max_images, max_mb)
    if path.is_file():
        try:
            return load_sample(path), path, False
        except StatsError:
            pass  # a damaged entry is computed again
    sample = collect_sample(model, data, mean, std, max_images=max_images, max_mb=max_mb, batch_size=batch_size,
                            device=device, progress=progress, should_stop=should_stop)
    meta = dict(sample.meta, provenance=provenance(checkpoint, role=role, arch=arch, command=command))
    sample = replace(sample, meta=meta)
    save_sample(path, sample)
    return sample, path, True
