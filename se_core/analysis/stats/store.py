"""Statistics on disk: the ``.npz`` format and its checked loader, provenance, the content-keyed cache and the shipped files."""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import shlex
import sys
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from se_core.analysis.stats.accumulate import compute_stats
from se_core.analysis.stats.model import (
    DEFAULT_BINS,
    DEFAULT_DATA,
    FORMAT,
    LIMB_SCALES,
    N_LIMBS,
    RELU_MAX,
    SCHEMA_VERSION,
    ExcitationStats,
    Progress,
    SiteInfo,
    StatsError,
    StopCheck,
)
from se_core.config import data_dir, stats_cache_dir
from se_core.data.datasets import ImageSet, load_dataset
from se_core.models import pairs
from se_core.models.pairs import load_pair
from se_core.util.files import atomic_write_bytes, file_sha256
from se_core.util.provenance import git_commit


def provenance(checkpoint: str | os.PathLike | None, *, role: str = "", arch: str = "",
               command: str | None = None) -> dict:
    """What produced a statistics file: checkpoint file + sha256, code commit, command, date, versions."""
    out = {"command": command if command is not None else " ".join(["python -m se_core.stats", *sys.argv[1:]]),
           "commit": git_commit(), "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "torch": torch.__version__, "schema": SCHEMA_VERSION, "role": role, "arch": arch}
    if checkpoint is not None:
        out["checkpoint"] = {"file": Path(checkpoint).name, "sha256": file_sha256(checkpoint)}
    return out


def from_other_checkpoint(stats: ExcitationStats, checkpoint_sha256: str) -> bool:
    """Whether ``stats`` record a checkpoint hash other than ``checkpoint_sha256`` (no record: not known to
    differ), i.e. the statistics describe different weights than the ones loaded."""
    recorded = stats.meta.get("provenance", {}).get("checkpoint", {}).get("sha256")
    return bool(recorded) and recorded != checkpoint_sha256


def _header(stats: ExcitationStats) -> dict:
    return {"format": FORMAT, "schema": SCHEMA_VERSION, "classes": list(stats.classes), "bins": stats.bins,
            "limb_scales": list(LIMB_SCALES), "gate_sites": [s.to_dict() for s in stats.gate_sites],
            "z_sites": [s.to_dict() for s in stats.z_sites], "meta": stats.meta}


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_stats(path: str | os.PathLike, stats: ExcitationStats, sidecar: bool = True) -> Path:
    """Write ``stats`` as a compressed ``.npz`` with its header (schema, sites, provenance) embedded
    as JSON, atomically; with ``sidecar``, the same header as ``<path>.json`` for people."""

    path = Path(path)
    header = json.dumps(_header(stats), default=_jsonable, sort_keys=True)
    arrays: dict[str, np.ndarray] = {"__header__": np.frombuffer(header.encode("utf-8"), dtype=np.uint8),
                                     "count": stats.count}
    for i, s in enumerate(stats.gate_sites):
        arrays[f"s_sum_{i}"], arrays[f"s_sumsq_{i}"], arrays[f"s_hist_{i}"] = (
            stats.s_sum[s.name], stats.s_sumsq[s.name], stats.s_hist[s.name])
    for i, s in enumerate(stats.z_sites):
        arrays[f"z_sum_{i}"], arrays[f"z_sumsq_{i}"] = stats.z_sum[s.name], stats.z_sumsq[s.name]
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    if sidecar:
        side = dict(json.loads(header))
        side["file"] = path.name
        side["n_images"] = stats.n_images
        atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(side, indent=1, sort_keys=True).encode())
    return path


_SITE_TYPES = {"name": "str", "label": "str", "stage": "int", "block": "int", "depth": "int", "channels": "int",
               "gate": "str?", "lo": "float", "hi": "float"}
_SITE_REQUIRED = ("name", "label", "stage", "block", "depth", "channels")


def site_infos(rows: object, key: str, path: Path, redo: str) -> tuple[SiteInfo, ...]:
    """The header's ``key`` site list, every field type-checked (a file is data, not trusted code)."""
    if not isinstance(rows, list):
        raise StatsError(f"{path.name}: header key {key!r} is {type(rows).__name__}, expected a list of sites; {redo}")
    out, seen = [], set()
    for i, r in enumerate(rows):
        where = f"{path.name}: header {key}[{i}]"
        if not isinstance(r, dict):
            raise StatsError(f"{where} is {type(r).__name__}, expected an object; {redo}")
        missing = [f for f in _SITE_REQUIRED if f not in r]
        unknown = sorted(set(map(str, r)) - set(_SITE_TYPES))
        if missing or unknown:
            raise StatsError(f"{where} " + (f"lacks {missing}" if missing else f"has unknown key(s) {unknown}") +
                             f"; {redo}")
        for f, v in r.items():
            kind = _SITE_TYPES[f]
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            ok = {"str": isinstance(v, str), "str?": v is None or isinstance(v, str),
                  "int": number and float(v).is_integer() and v >= (1 if f == "channels" else 0),
                  "float": number and math.isfinite(v)}[kind]
            if not ok:
                want = {"str": "a string", "str?": "a string or null", "float": "a finite number",
                        "int": "a whole number >= 1" if f == "channels" else "a whole number >= 0"}[kind]
                raise StatsError(f"{where}.{f} is {v!r}, expected {want}; {redo}")
        site = SiteInfo(**{f: int(v) if _SITE_TYPES[f] == "int" else float(v) if _SITE_TYPES[f] == "float" else v
                           for f, v in r.items()})
        if not site.hi > site.lo:
            raise StatsError(f"{where}: histogram range [{site.lo}, {site.hi}] is empty; {redo}")
        if site.name in seen:
            raise StatsError(f"{where}: site {site.name!r} appears twice; {redo}")
        seen.add(site.name)
        out.append(site)
    return tuple(out)


MAX_STATS_MB = 1024.0
"""Largest statistics file :func:`load_stats` reads, and largest total of its arrays once decompressed
(a CIFAR-10 pair's file is ~0.1 MB; the bound keeps a damaged or hostile file from exhausting memory)."""
MAX_HEADER_BYTES = 16 * 2 ** 20
MAX_BINS = 1 << 16
_NPY_SLACK = 1 << 16  # bytes of a member beyond its array data: the .npy header


def npy_header(z, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an .npz member declares, read without loading (or allocating) its data."""
    with z.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"array {key!r} uses .npy format {version}")
    return tuple(shape), np.dtype(dtype)


def load_stats(path: str | os.PathLike, *, max_mb: float = MAX_STATS_MB) -> ExcitationStats:
    """Read a file written by :func:`save_stats`; :class:`StatsError` for anything else.

    The error names what is wrong: missing file, empty, over ``max_mb`` (on disk or decompressed),
    not an .npz, a header that is not UTF-8 JSON or lacks a key or has a wrong type, a missing
    array or one of the wrong dtype/shape (checked before it is read), negative counts, NaN or
    infinite sums, histograms that do not add up to the image counts.
    """
    path = Path(path)
    redo = "recompute it with 'python -m se_core.stats'"
    if not path.is_file():
        raise StatsError(f"{path}: no such statistics file; {redo}")
    size = path.stat().st_size
    if size == 0:
        raise StatsError(f"{path.name}: empty file (0 bytes); {redo}")
    if size > max_mb * 1e6:
        raise StatsError(f"{path.name} is {size / 1e6:.1f} MB, over the {max_mb:g} MB limit for statistics files; "
                         f"it is not a statistics file of a supported model, or {redo}")
    try:
        if not zipfile.is_zipfile(path):
            raise StatsError(f"{path.name}: not a readable .npz statistics file (not a zip archive); {redo}")
        with np.load(path, allow_pickle=False) as z:
            return _read_npz(z, path, max_mb, redo)
    except StatsError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError, RuntimeError,
            KeyError) as e:
        raise StatsError(f"{path.name}: not a readable .npz statistics file ({type(e).__name__}: "
                         f"{str(e)[:200]}); {redo}") from None


def _read_npz(z, path: Path, max_mb: float, redo: str) -> ExcitationStats:
    members = set(z.files)
    if "__header__" not in members:
        raise StatsError(f"{path.name}: an .npz without an SE Lens statistics header (a foreign file?); {redo}")
    expanded = sum(i.file_size for i in z.zip.infolist())
    if expanded > max_mb * 1e6:
        raise StatsError(f"{path.name}: its arrays expand to {expanded / 1e6:.1f} MB, over the {max_mb:g} MB limit "
                         f"for statistics files; {redo}")
    shape, dtype = npy_header(z, "__header__")
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES:
        raise StatsError(f"{path.name}: its header array is {dtype}{list(shape)}, expected up to "
                         f"{MAX_HEADER_BYTES} uint8 bytes of JSON; the file is corrupt; {redo}")
    raw = z["__header__"].tobytes()
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise StatsError(f"{path.name}: its statistics header is not UTF-8 text (byte {e.start} is "
                         f"{raw[e.start]:#04x}); the file is corrupt; {redo}") from None
    except (json.JSONDecodeError, RecursionError):
        raise StatsError(f"{path.name}: its statistics header is not valid JSON; the file is corrupt; {redo}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StatsError(f"{path.name}: header format is {header.get('format') if isinstance(header, dict) else '?'!r}, "
                         f"not {FORMAT!r} (a foreign file?); {redo}")
    if header.get("schema") != SCHEMA_VERSION:
        raise StatsError(f"{path.name}: written with statistics schema {header.get('schema')!r}, this code reads schema "
                         f"{SCHEMA_VERSION}; {redo}")
    if header.get("limb_scales") != list(LIMB_SCALES):
        raise StatsError(f"{path.name}: sums split on limb grids {header.get('limb_scales')}, this code uses "
                         f"{list(LIMB_SCALES)}; {redo}")
    classes = header.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise StatsError(f"{path.name}: header key 'classes' is {str(classes)[:80]!r}, expected a non-empty list of "
                         f"class names; {redo}")
    if len(set(classes)) != len(classes):
        raise StatsError(f"{path.name}: header key 'classes' names a class twice; {redo}")
    bins = header.get("bins")
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
        raise StatsError(f"{path.name}: header key 'bins' is {bins!r}, expected a whole number in 1..{MAX_BINS}; {redo}")
    gates = site_infos(header.get("gate_sites", []), "gate_sites", path, redo)
    zs = site_infos(header.get("z_sites", []), "z_sites", path, redo)
    classes = tuple(classes)
    k = len(classes)

    def get(key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        if key not in members:
            raise StatsError(f"{path.name}: array {key!r} is missing; the file is truncated or corrupt; {redo}")
        got_shape, got_dtype = npy_header(z, key)
        if got_shape != shape or got_dtype != np.dtype(dtype):
            raise StatsError(f"{path.name}: array {key!r} is {got_dtype}{list(got_shape)}, expected "
                             f"{np.dtype(dtype)}{list(shape)}; the file is corrupt; {redo}")
        a = z[key]
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise StatsError(f"{path.name}: array {key!r} holds NaN or infinite sums; the file is corrupt; {redo}")
        if a.dtype.kind == "i" and (a < 0).any():
            raise StatsError(f"{path.name}: array {key!r} holds negative counts; the file is corrupt; {redo}")
        return a

    count = get("count", (k,), np.int64)
    s_sum, s_sumsq, s_hist, z_sum, z_sumsq = {}, {}, {}, {}, {}
    for i, s in enumerate(gates):
        s_sum[s.name] = get(f"s_sum_{i}", (k, N_LIMBS, s.channels), np.float64)
        s_sumsq[s.name] = get(f"s_sumsq_{i}", (k, N_LIMBS, s.channels), np.float64)
        s_hist[s.name] = get(f"s_hist_{i}", (k, s.channels, bins + 2), np.int64)
        if not np.array_equal(s_hist[s.name].sum(-1), np.broadcast_to(count[:, None], (k, s.channels))):
            raise StatsError(f"{path.name}: array 's_hist_{i}' ({s.name}) does not add up to the image counts of "
                             f"'count'; the file is corrupt; {redo}")
    for i, s in enumerate(zs):
        z_sum[s.name] = get(f"z_sum_{i}", (k, N_LIMBS, s.channels), np.float64)
        z_sumsq[s.name] = get(f"z_sumsq_{i}", (k, N_LIMBS, s.channels), np.float64)
    meta = header.get("meta") if isinstance(header.get("meta"), dict) else {}
    return ExcitationStats(classes, count, gates, zs, s_sum, s_sumsq, s_hist, z_sum, z_sumsq, bins, meta)




def cache_key(checkpoint_sha256: str, data_digest: str, bins: int = DEFAULT_BINS, relu_max: float = RELU_MAX) -> str:
    """File stem identifying one (model file, data set, histogram layout): never computed twice."""
    d = hashlib.sha256(data_digest.encode()).hexdigest()[:16]
    return f"{checkpoint_sha256[:16]}-{d}-b{bins}-r{relu_max:g}-v{SCHEMA_VERSION}"


def cache_path(checkpoint: str | os.PathLike, data: ImageSet, bins: int = DEFAULT_BINS,
               relu_max: float = RELU_MAX, root: Path | None = None) -> Path:
    return (root or stats_cache_dir()) / f"{cache_key(file_sha256(checkpoint), data.digest, bins, relu_max)}.npz"


def cached_stats(checkpoint: str | os.PathLike, model: nn.Module, data: ImageSet, mean: Sequence[float],
                 std: Sequence[float], *, role: str = "", arch: str = "", bins: int = DEFAULT_BINS,
                 relu_max: float = RELU_MAX, batch_size: int = 500, device: torch.device | str = "cpu",
                 progress: Progress | None = None, should_stop: StopCheck | None = None,
                 command: str | None = None) -> tuple[ExcitationStats, Path, bool]:
    """(stats, file, computed_now): load from the disk cache, else compute, save and return."""
    path = cache_path(checkpoint, data, bins, relu_max)
    if path.is_file():
        try:
            return load_stats(path), path, False
        except StatsError:
            pass  # a stale or damaged cache entry is recomputed
    stats = compute_stats(model, data, mean, std, batch_size=batch_size, bins=bins, relu_max=relu_max, device=device,
                          progress=progress, should_stop=should_stop)
    stats.meta["provenance"] = provenance(checkpoint, role=role, arch=arch, command=command)
    save_stats(path, stats)
    return stats, path, True


def data_tag(spec: str, split: str, subset: int | None = None) -> str:
    """Short file-name tag of a data set, e.g. ``cifar10-jpeg-test``."""
    base = spec if spec in ("", DEFAULT_DATA) else hashlib.md5(spec.encode()).hexdigest()[:8]
    return f"{base or DEFAULT_DATA}-{split}" + (f"-sub{subset}" if subset else "")


def shipped_dir() -> Path:
    return data_dir() / "stats"


def shipped_paths(pair: str | None = None, root: Path | None = None) -> dict[str, Path]:
    """role -> shipped statistics file of ``pair`` (full CIFAR-10 JPEG test set); may not exist."""
    spec = pairs.PAIRS[pair or pairs.DEFAULT_PAIR]
    root = root or shipped_dir()
    tag = data_tag(DEFAULT_DATA, "test")
    return {role: root / f"{Path(ref.location).stem}.{tag}.npz"
            for role, ref in (("se", spec.se_weights), ("vanilla", spec.vanilla_weights))}


SHIP_COMMAND = "python -m se_core.stats --ship"


def has_shipped(pair: str) -> bool:
    """Whether ``pair`` is one of the project's own (``--ship`` computes its statistics), or its shipped files are there."""
    try:
        return pairs.PAIRS[pair].shipped is not None or all(p.is_file() for p in shipped_paths(pair).values())
    except KeyError:
        return False


def shippable_pairs() -> list[str]:
    """The project's own pairs whose checkpoints are in ``data/checkpoints`` (what ``--ship`` computes)."""
    return [p.name for p in pairs.shipped_pairs() if _made(p)]


def _made(p: pairs.PairSpec) -> bool:
    """Both checkpoints of own pair ``p`` are in data/checkpoints."""
    return all(ref.path().is_file() for ref in (p.se_weights, p.vanilla_weights))


def ship_targets(parser, args, allowed: set[str]) -> list[str]:
    """The own pairs a ``--ship`` run computes: every one whose checkpoints are made (printing the ones
    skipped), or the one ``args.pair`` names. Raises :class:`StatsError` when an option other than
    ``allowed`` is set (``--ship`` always means the full CIFAR-10 JPEG test set into ``data/stats/``), when
    ``--pair`` names a pair that is not the project's own or lacks its checkpoints, or when none has them."""
    changed = sorted(k for k, v in vars(args).items()
                     if k not in allowed | {"ship", "pair"} and v != parser.get_default(k))
    if changed:
        raise StatsError("--ship computes the project's own pairs on the full CIFAR-10 JPEG test set into data/stats/; "
                         "drop " + ", ".join("--" + k.replace("_", "-") for k in changed))
    own = pairs.shipped_pairs()
    wanted = getattr(args, "pair", None)
    if wanted is not None:
        if wanted not in {p.name for p in own}:
            raise StatsError(f"--ship is for the project's own pairs ({', '.join(p.name for p in own)}); {wanted} is "
                             "not one (without --ship, --out writes its results elsewhere)")
        own = [p for p in own if p.name == wanted]
    ready = [p.name for p in own if _made(p)]
    for p in own:
        if p.name not in ready:
            missing = [ref for ref in (p.se_weights, p.vanilla_weights) if not ref.path().is_file()]
            print(f"skipping {p.name}: {', '.join(str(r.path()) for r in missing)} not made yet "
                  f"({missing[0].how_to_get})", file=sys.stderr)
    if not ready:
        raise StatsError(f"{wanted} does not have its checkpoints in data/checkpoints yet; see the line above"
                         if wanted else "no own pair has its checkpoints in data/checkpoints yet; see the lines above")
    return ready


def pair_command(pair: str, data: str = DEFAULT_DATA, subset: int | None = None, split: str = "test") -> str:
    """The shell command computing both models' statistics of ``pair`` on ``data`` into the stats cache,
    the same files (same key) the dashboard's Class-wise page computes and reads."""
    parts = ["python -m se_core.stats", "--pair", shlex.quote(pair), "--data", shlex.quote(data)]
    if split != "test":
        parts += ["--split", shlex.quote(split)]
    if subset:
        parts += ["--subset", str(int(subset))]
    return " ".join(parts)


def compute_pair_stats(pair_name: str, data: ImageSet, *, out_dir: Path, tag: str, batch_size: int = 500,
                       bins: int = DEFAULT_BINS, relu_max: float = RELU_MAX, device: torch.device | None = None,
                       command: str | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Statistics of both models of a pair on ``data`` into ``out_dir/<checkpoint stem>.<tag>.npz`` (+ .json)."""
    pair = load_pair(pair_name, device)
    out = {}
    for role, lm in (("se", pair.se), ("vanilla", pair.vanilla)):
        stats = compute_stats(lm.model, data, lm.meta.mean, lm.meta.std, batch_size=batch_size, bins=bins,
                              relu_max=relu_max, device=pair.device)
        stats.meta["provenance"] = provenance(lm.source, role=role, arch=lm.name, command=command)
        out[role] = save_stats(Path(out_dir) / f"{Path(lm.source).stem}.{tag}.npz", stats)
        if progress:
            progress(f"{role}: {lm.name} on {stats.n_images} images -> {out[role]}")
    return out


def ship_pair_stats(pair_name: str | None = None, data: ImageSet | None = None, *, out_dir: Path | None = None,
                    batch_size: int = 500, device: torch.device | None = None, command: str | None = None,
                    progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The shipped statistics: both checkpoints of one of the project's own pairs (default: the default pair)
    on the full CIFAR-10 JPEG test set, into ``data/stats/`` with JSON sidecars, and the ``PROVENANCE.md``
    of every statistics file there.

    ``data`` replaces the test set (tests only; the provenance then names the data actually used).
    """
    pair_name = pair_name or pairs.DEFAULT_PAIR
    out_dir = Path(out_dir or shipped_dir())
    if command is None:
        command = SHIP_COMMAND if data is None else f"se_core.analysis.stats.ship_pair_stats(data={data.name!r}) from Python"
    data = data if data is not None else load_dataset(DEFAULT_DATA, "test")
    paths = compute_pair_stats(pair_name, data, out_dir=out_dir, tag=data_tag(DEFAULT_DATA, "test"),
                               batch_size=batch_size, device=device, command=command, progress=progress)
    shipped = sorted(out_dir.glob("*.npz"))
    write_provenance_md(out_dir, [load_stats(p) for p in shipped], shipped)
    return paths


def write_provenance_md(out_dir: Path, stats: Sequence[ExcitationStats], paths: Sequence[Path]) -> Path:
    """``PROVENANCE.md`` listing every shipped statistics file and what produced it."""

    lines = ["# Shipped excitation statistics", "",
             "Class-wise gate (s) and squeeze (z) statistics, written by `se_core.analysis.stats` (schema "
             f"{SCHEMA_VERSION}); each `.npz` embeds the same header as its `.json` sidecar. Means/variances are "
             "exact (order-independent limb sums in float64); medians/IQRs come from "
             f"{stats[0].bins if stats else DEFAULT_BINS}-bin histograms, within half a bin width.", "",
             "Regenerate: `" + SHIP_COMMAND + "` (after the checkpoints in `data/checkpoints/` change).", "",
             "| file | role | model | checkpoint (sha256) | data | digest | images | commit | date | wall time | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, p in zip(stats, paths):
        pv, d = s.meta.get("provenance", {}), s.meta.get("data", {})
        ck = pv.get("checkpoint", {})
        lines.append(f"| {p.name} | {pv.get('role', '')} | {pv.get('arch', '')} | {ck.get('file', '')} "
                     f"(`{ck.get('sha256', '')[:16]}…`) | {d.get('name', '')} | `{d.get('digest', '')}` | {s.n_images} | "
                     f"{pv.get('commit', '')} | {pv.get('date', '')} | {s.meta.get('wall_time_s', '')} s | "
                     f"`{pv.get('command', '')}` |")
    path = Path(out_dir) / "PROVENANCE.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------- CLI
