"""Kept ablation checkpoints, and every kept SE trial as a model pair: ``ablation:<sweep>/<trial_id>``.

The ablation runner (:mod:`se_core.runs.ablate`) keeps each finished trial's final weights beside its result
table, compactly: ``<sweep>/<trial_id>.safetensors`` (float16, :func:`~se_core.models.checkpoints.save_compact`:
the checkpoint's own metadata, so :func:`~se_core.models.build.build_from_checkpoint` restores the fp32 model),
a sidecar ``<trial_id>.json`` saying what the trial is (axis, setting, seed, the sweep's vanilla trial of the
same seed) and where it came from (command, commit, hardware, date, the source file's SHA-256), and a
``PROVENANCE.md`` listing the folder. The sidecar is written after the weights, so a sidecar means a whole copy.

Pairs are read from :func:`se_core.config.ablations_dir` (default ``data/ablations``). A kept SE trial is the SE
model of a pair whose vanilla twin is the same sweep's baseline (``no SE``) trial of the same seed; a pair is
listed once both files are kept, and loading one whose twin is missing says which trial to run. A name is
matched against a strict pattern before any file is touched (one sweep folder, 12 hex digits), and the files
it leads to must lie inside the ablations folder, so no name reaches a file elsewhere.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from se_core.config import ablations_dir
from se_core.models.checkpoints import CheckpointError, save_compact
from se_core.models.pairs import PairSource, load_weights, pick_device, register_pair_source
from se_core.models.weights import LoadedPair, PairSpec, WeightsMissing, WeightsRef
from se_core.util.files import atomic_write_bytes, file_sha256, read_text

PREFIX = "ablation:"
SIDECAR_FORMAT = "se_lens.kept_trial"
BASELINE_AXIS = "baseline"
"""The axis of a sweep's vanilla trial (``se_core.runs.tables.BASELINE_AXIS``; this layer cannot import it)."""
SWEEP_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""A sweep name, as the spec parser allows it: one folder name, never ``..`` or a path."""
_SWEEP = re.compile(rf"^{SWEEP_PATTERN}$")
_TRIAL = re.compile(r"^[0-9a-f]{12}$")
_NAME = re.compile(rf"^{re.escape(PREFIX)}(?P<sweep>{SWEEP_PATTERN})/(?P<trial>[0-9a-f]{{12}})$")
MAX_SIDECAR_MB = 1.0
RUN_HINT = "python -m se_core.ablate run SPEC"


@dataclass(frozen=True)
class KeptTrial:
    """One kept trial: what it is (from its sidecar) and where its compact checkpoint lies."""

    folder: Path
    sweep: str
    trial_id: str
    axis: str
    setting: str
    seed: int
    arch: str
    index: int = 0
    axes: tuple[tuple[str, str], ...] = ()
    axis_title: str = ""
    twin: str = ""
    """Trial id of the sweep's vanilla trial with the same seed ("" when the sweep has none)."""
    info: Mapping = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return pair_name(self.sweep, self.trial_id)

    @property
    def path(self) -> Path:
        return kept_file(self.folder, self.trial_id)

    @property
    def is_baseline(self) -> bool:
        return self.axis == BASELINE_AXIS

    def setting_on(self, axis: str) -> str | None:
        """This trial's setting on ``axis`` (the default SE trial stands for every axis' default), or None."""
        return next((s for a, s in self.axes if a == axis), self.setting if self.axis == axis else None)

    @property
    def probe_data(self) -> str:
        """The data set the trial trained on, for probing it: only the built-in CIFAR-10 (``cifar10-jpeg``,
        optionally ``@val=N``). A sidecar is a file anyone could edit, so a path (an ImageFolder, or
        ``torchvision-cifar10:ROOT``, whose loader unpickles) is refused with a message naming the sidecar."""
        spec = str(self.info.get("data") or "cifar10-jpeg")
        if re.fullmatch(r"cifar10-jpeg(@val=\d+)?", spec):
            return spec
        raise ValueError(f"{sidecar_file(self.folder, self.trial_id)} names data {spec!r}; kept trials are compared "
                         "on the built-in CIFAR-10 (JPEG q75) only (cifar10-jpeg, optionally @val=N)")

    @property
    def label(self) -> str:
        """``Excitation gate: tanh, seed 2`` (the default SE trial: ``SE (default), seed 2``)."""
        what = f"{self.axis_title}: {self.setting}" if self.axis_title and not self.is_baseline else self.setting
        return f"{what}, seed {self.seed}"


def pair_name(sweep: str, trial_id: str) -> str:
    """``ablation:<sweep>/<trial_id>``."""
    return f"{PREFIX}{sweep}/{trial_id}"


def kept_file(folder: str | os.PathLike, trial_id: str) -> Path:
    return Path(folder) / f"{trial_id}.safetensors"


def sidecar_file(folder: str | os.PathLike, trial_id: str) -> Path:
    return Path(folder) / f"{trial_id}.json"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- writing (the runner)


def kept_matches(folder: str | os.PathLike, trial_id: str, source: str | os.PathLike) -> bool:
    """Whether ``folder`` already holds a whole kept copy of checkpoint ``source`` for ``trial_id``."""
    kt = _read(Path(folder), trial_id)
    return kt is not None and kt.path.is_file() and kt.info.get("source_sha256") == file_sha256(source)


def keep_trial(folder: str | os.PathLike, source: str | os.PathLike, info: Mapping, dtype: str = "float16") -> KeptTrial:
    """Keep checkpoint ``source`` of the trial ``info`` describes (``sweep``, ``trial_id``, ``axis``, ``setting``,
    ``seed``, ``arch``; optional ``index``, ``axes``, ``axis_title``, ``twin`` and provenance keys) in ``folder``:
    the compact copy, then its sidecar, then the folder's ``PROVENANCE.md``, each written atomically."""
    folder, source = Path(folder), Path(source)
    missing = [k for k in ("sweep", "trial_id", "axis", "setting", "seed", "arch") if k not in info]
    if missing:
        raise ValueError(f"a kept trial needs {', '.join(missing)}")
    if not _SWEEP.match(str(info["sweep"])) or not _TRIAL.match(str(info["trial_id"])):
        raise ValueError(f"not a sweep name and trial id: {info['sweep']!r}, {info['trial_id']!r}")
    tid = str(info["trial_id"])
    what = {k: info[k] for k in ("sweep", "trial_id", "axis", "setting", "seed")}
    meta = save_compact(source, kept_file(folder, tid), provenance={"ablation": what}, dtype=dtype)
    dst = kept_file(folder, tid)
    side = {"format": SIDECAR_FORMAT, **dict(info), "file": dst.name, "bytes": dst.stat().st_size,
            "sha256": file_sha256(dst), "dtype": dtype, "source_sha256": meta.provenance["compact"]["source_sha256"],
            "source_bytes": meta.provenance["compact"]["source_bytes"], "kept": _now(),
            "data_label": str(meta.provenance.get("data") or info.get("data") or "")}
    atomic_write_bytes(sidecar_file(folder, tid), json.dumps(side, indent=1, default=str).encode())
    write_provenance(folder)
    kt = _read(folder, tid)
    assert kt is not None
    return kt


def write_provenance(folder: str | os.PathLike) -> Path:
    """``PROVENANCE.md`` of a kept folder: one section per kept file, from the sidecars."""
    folder = Path(folder)
    trials = sorted(_scan(folder), key=lambda k: (k.seed, k.index, k.trial_id))
    lines = [f"# Kept checkpoints of sweep `{folder.name}`", "",
             "Each file is the final `model.safetensors` of one trial of `python -m se_core.ablate run`, copied in "
             "half precision by `se_core.models.checkpoints.save_compact` (its safetensors metadata keeps the "
             "architecture, SE config and training provenance, plus a `compact` record); `<trial_id>.json` beside it "
             "says what the trial is. The trial's row in the result table beside this folder has the same "
             "command, commit, seed, hardware and date. Open one as a pair: `ablation:<sweep>/<trial_id>`.", ""]
    for k in trials:
        i = k.info
        lines += [f"## {k.path.name}", "",
                  f"- trial: {k.trial_id} ({k.axis} = {k.setting}, seed {k.seed}; {k.arch})",
                  *(f"- {key}: {i[key]}" for key in ("axes", "twin", "command", "commit", "hardware", "date",
                                                     "precision", "epochs", "data", "top1_err", "test_n", "dtype",
                                                     "bytes", "sha256", "source", "source_sha256", "source_bytes",
                                                     "kept") if i.get(key) not in (None, "")), ""]
    path = folder / "PROVENANCE.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


# --------------------------------------------------------------------------- reading


def _read(folder: Path, trial_id: str) -> KeptTrial | None:
    """The kept trial whose sidecar is ``folder/<trial_id>.json``, or None (absent, unreadable or inconsistent)."""
    if not _TRIAL.match(trial_id):
        return None
    try:
        d = json.loads(read_text(sidecar_file(folder, trial_id), label=trial_id, max_mb=MAX_SIDECAR_MB,
                                 kind="sidecars", error=ValueError))
        if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT or d.get("trial_id") != trial_id:
            return None
        twin = str(d.get("twin") or "")
        axes = tuple((str(a), str(s)) for a, s in d.get("axes_list") or ())
        return KeptTrial(folder, str(d["sweep"]), trial_id, str(d["axis"]), str(d["setting"]), int(d["seed"]),
                         str(d["arch"]), int(d.get("index") or 0), axes, str(d.get("axis_title") or ""),
                         twin if _TRIAL.match(twin) else "", d)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def _scan(folder: Path) -> list[KeptTrial]:
    try:
        names = sorted(p.stem for p in folder.glob("*.json"))
    except OSError:
        return []
    return [k for k in (_read(folder, n) for n in names) if k is not None]


def _sweep_folder(sweep: str, root: Path | None = None) -> Path:
    """``<root>/<sweep>``, refused unless ``sweep`` is one folder name that stays inside the root."""
    if not isinstance(sweep, str) or not _SWEEP.match(sweep):
        raise KeyError(f"{sweep!r} is not a sweep name (letters, digits, '-', '_', '.')")
    base = (root or ablations_dir())
    folder = base / sweep
    try:
        if not folder.resolve().is_relative_to(base.resolve()):
            raise KeyError(f"{sweep!r} leads outside the ablations folder {base}; refused")
    except OSError:
        raise KeyError(f"the ablations folder {base} cannot be read") from None
    return folder


def list_kept(sweep: str | None = None, root: str | os.PathLike | None = None) -> list[KeptTrial]:
    """Kept trials (whole copies: sidecar and weights) of ``sweep`` (default: every sweep), by sweep, seed, index."""
    base = Path(root) if root is not None else ablations_dir()
    if sweep is None:
        try:
            sweeps = sorted(p.name for p in base.iterdir() if p.is_dir() and _SWEEP.match(p.name))
        except OSError:
            return []
    else:
        sweeps = [sweep]
    out = []
    for s in sweeps:
        try:
            folder = _sweep_folder(s, base)
        except KeyError:
            continue
        out += [k for k in _scan(folder) if k.sweep == s and k.path.is_file()]
    return sorted(out, key=lambda k: (k.sweep, k.seed, k.index, k.trial_id))


def kept_trial(name: str) -> KeptTrial:
    """The kept trial pair ``name`` refers to; ``KeyError`` saying why not (checked before any file is read)."""
    m = _NAME.match(name) if isinstance(name, str) else None
    if m is None:
        raise KeyError(f"{name!r} is not an ablation pair name ({PREFIX}<sweep>/<12 hex digit trial id>)")
    folder = _sweep_folder(m["sweep"])
    kt = _read(folder, m["trial"])
    if kt is None or kt.sweep != m["sweep"] or not kt.path.is_file():
        raise KeyError(f"no kept checkpoint for trial {m['trial']} of sweep {m['sweep']} in {folder}; it is kept when "
                       f"the trial finishes ({RUN_HINT})")
    return kt


def twin_of(kt: KeptTrial) -> KeptTrial | None:
    """The kept vanilla trial of ``kt``'s sweep and seed, or None (not kept yet, or the sweep has none)."""
    twin = _read(kt.folder, kt.twin) if kt.twin else None
    return twin if twin is not None and twin.path.is_file() and twin.is_baseline else None


def _missing_twin(kt: KeptTrial) -> str:
    if not kt.twin:
        return (f"sweep {kt.sweep} has no vanilla (no SE) trial to pair {kt.label} with: set [sweep].baseline = true "
                f"in its spec and run it again ({RUN_HINT})")
    return (f"the vanilla twin of {kt.label} (trial {kt.twin}: no SE, seed {kt.seed}, sweep {kt.sweep}) has no kept "
            f"checkpoint in {kt.folder}; it is kept when that trial finishes: run the sweep again ({RUN_HINT}, "
            "which resumes it), or open the pair once it is there")


def ablation_pair_spec(name: str) -> PairSpec:
    """The pair of kept SE trial ``name`` and its sweep's vanilla trial of the same seed."""
    kt = kept_trial(name)
    if kt.is_baseline:
        raise KeyError(f"{name} is sweep {kt.sweep}'s vanilla trial (no SE); choose one of its SE trials")
    how = f"kept when trial {kt.twin} of sweep {kt.sweep} finishes ({RUN_HINT})"
    twin = twin_of(kt)
    van_arch = twin.arch if twin is not None else str(kt.info.get("twin_arch") or "")
    i = kt.info
    data = str(i.get("data_label") or i.get("data") or "")
    note = (f"Kept by the ablation runner: trial {kt.trial_id} of sweep {kt.sweep} ({kt.axis} = {kt.setting}, seed "
            f"{kt.seed}, {i.get('epochs', '?')} epochs, top-1 error {i.get('top1_err', '?')} %), a "
            f"{i.get('dtype', 'float16')} copy; its vanilla twin is trial {kt.twin or 'none'} (no SE, seed {kt.seed}). "
            f"Provenance: {kt.folder / 'PROVENANCE.md'}.")
    return PairSpec(kt.name, f"Ablation {kt.sweep}: {kt.label} vs no SE", kt.arch, van_arch,
                    WeightsRef("file", str(kt.path), f"kept when trial {kt.trial_id} finishes ({RUN_HINT})"),
                    WeightsRef("file", str(kept_file(kt.folder, kt.twin or "none")), how), data, note)


def ablation_pair_exists(name: str) -> bool:
    try:
        ablation_pair_spec(name)
        return True
    except KeyError:
        return False


def load_ablation_pair(name: str, device: torch.device | None = None) -> LoadedPair:
    """Both models of ablation pair ``name`` (fp32, from the compact copies); :class:`WeightsMissing` saying
    which trial to run when the vanilla twin is not kept."""
    spec = ablation_pair_spec(name)
    kt = kept_trial(name)
    if twin_of(kt) is None:
        raise WeightsMissing(_missing_twin(kt))
    device = device or pick_device()
    try:
        return LoadedPair(spec, load_weights(spec.se_weights, spec.se_arch, device),
                          load_weights(spec.vanilla_weights, spec.vanilla_arch, device), device)
    except CheckpointError as e:
        raise CheckpointError(f"{spec.title}: {e}") from None


def twin_problem(name: str) -> str | None:
    """Why pair ``name`` cannot be opened (no such kept trial, or its vanilla twin is not kept), or None."""
    try:
        kt = kept_trial(name)
    except KeyError as e:
        return str(e.args[0])
    if kt.is_baseline:
        return f"{name} is the vanilla trial; choose an SE trial"
    return None if twin_of(kt) is not None else _missing_twin(kt)


def listed_ablation_pairs() -> list[str]:
    """Every kept SE trial whose vanilla twin is kept too (the pairs the sidebar lists)."""
    return [k.name for k in list_kept() if not k.is_baseline and twin_of(k) is not None]


register_pair_source(PREFIX, PairSource(ablation_pair_spec, ablation_pair_exists, load_ablation_pair,
                                        listed_ablation_pairs))

__all__ = ["BASELINE_AXIS", "KeptTrial", "PREFIX", "SIDECAR_FORMAT", "ablation_pair_exists", "ablation_pair_spec",
           "keep_trial", "kept_file", "kept_matches", "kept_trial", "list_kept", "listed_ablation_pairs",
           "load_ablation_pair", "pair_name", "sidecar_file", "twin_of", "twin_problem", "write_provenance"]
