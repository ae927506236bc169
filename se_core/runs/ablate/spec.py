"""A sweep spec (TOML) parsed and checked into trials: one TrainConfig per (axis setting, seed), ids by content hash."""
from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from se_core.config import REPO_ROOT
from se_core.models.registry import get_spec
from se_core.nn.se import GATES, INTEGRATIONS, SITES, SQUEEZES, SEConfig
from se_core.runs import tables
from se_core.runs.tables import BASELINE_AXIS, BASELINE_SETTING, DEFAULT_AXIS, DEFAULT_SETTING, setting_label
from se_core.runs.train import TrainConfig

RUNS_ROOT = REPO_ROOT / "runs" / "ablate"
SECTIONS = ("sweep", "train", "default_se", "axes", "resources")
RESOURCE_KEYS = ("cpus_per_trial", "gpus_per_trial", "workers_per_trial")
SWEEP_KEYS = ("name", "description", "seeds", "baseline", "allow_short", "keep_checkpoints")
SE_KEYS = ("reduction", "squeeze", "gate", "stages", "integration", "site")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("se", "seed"))
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SpecError(ValueError):
    """A sweep spec that cannot be run; the message names the file, key and value."""


@dataclass(frozen=True)
class Resources:
    """What one trial reserves on the Ray cluster; Ray never starts more trials than the reservations fit,
    and a fractional ``gpus`` lets several trials share one GPU. ``workers`` > 1 makes the trial
    data-parallel (Ray Train, one DDP rank per worker); ``cpus`` and ``gpus`` are then per worker."""

    cpus: float = 1.0
    gpus: float = 0.0
    workers: int = 1

    def __post_init__(self) -> None:
        if not self.cpus > 0 or self.gpus < 0 or (self.gpus > 1 and self.gpus != int(self.gpus)):
            raise SpecError(f"trial resources need cpus > 0 and gpus >= 0 (a fraction of one GPU, or whole GPUs), "
                            f"got cpus={self.cpus:g}, gpus={self.gpus:g}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise SpecError(f"workers per trial must be an integer >= 1, got {self.workers!r}")
        if self.workers > 1 and self.gpus not in (0, 1):  # one DDP rank per GPU (NCCL), on cuda:LOCAL_RANK
            raise SpecError(f"a data-parallel trial ({self.workers} workers) takes 0 or 1 whole GPU per worker, "
                            f"got gpus={self.gpus:g}")

    @property
    def threads(self) -> int:
        """Torch threads of a trial (of each worker): its reserved CPUs, at least one."""
        return max(1, int(self.cpus))

    def replace(self, cpus: float | None = None, gpus: float | None = None, workers: int | None = None) -> Resources:
        return Resources(self.cpus if cpus is None else cpus, self.gpus if gpus is None else gpus,
                         self.workers if workers is None else workers)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep spec."""

    name: str
    seeds: tuple[int, ...]
    base: TrainConfig
    se_arch: str
    default_se: SEConfig
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    baseline: bool = True
    description: str = ""
    source: str = ""
    spec_sha256: str = ""
    resources: Resources = Resources()
    spec: dict = field(default_factory=dict, compare=False, repr=False)
    keep_checkpoints: bool = True
    """Keep each finished trial's final weights (float16) in ``<table dir>/<sweep>/`` (:mod:`se_core.models.ablation_models`)."""


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep: a config, a seed, and every (axis, setting) it stands for."""

    index: int
    trial_id: str
    axis: str
    setting: str
    memberships: tuple[tuple[str, str], ...]
    config: TrainConfig

    @property
    def axes_text(self) -> str:
        return tables.format_axes(self.memberships)


def _type_name(f) -> str:
    return str(f.type).replace(" ", "")


def _check_value(where: str, v: Any, kind: str) -> Any:
    if kind in ("int", "int|None"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"{where}: expected an integer, got {v!r}")
        return v
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(f"{where}: expected a number, got {v!r}")
        return float(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise SpecError(f"{where}: expected true or false, got {v!r}")
        return v
    if not isinstance(v, str):
        raise SpecError(f"{where}: expected a string, got {v!r}")
    return v


def _axis_value(axis: str, v: Any, where: str) -> tuple[str, Any]:
    """(SEConfig field, value) for one axis entry, or SpecError naming it."""
    def choice(allowed: tuple[str, ...], what: str) -> str:
        if v not in allowed:
            raise SpecError(f"{where}: {v!r} is not {what}; choose from {', '.join(allowed)}")
        return v
    if axis == "reduction_ratio":
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"{where}: {v!r} is not a reduction ratio; use integers >= 1 such as 2, 4, 8, 16, 32")
        return "reduction", v
    if axis == "squeeze":
        return "squeeze", choice(SQUEEZES, "a squeeze operator")
    if axis == "no_squeeze":
        return "squeeze", choice(("avg", "none"), "a NoSqueeze setting")
    if axis == "excitation":
        return "gate", choice(GATES, "an excitation gate")
    if axis == "integration":
        return "integration", choice(INTEGRATIONS, "an integration strategy")
    if axis == "se_3x3":
        return "site", choice(SITES, "an SE site")
    if axis == "stages":
        if v == "all":
            return "stages", None
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return "stages", (v,)
        if isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v):
            return "stages", tuple(sorted(set(v)))
        raise SpecError(f"{where}: {v!r} is not a stage choice; use a 1-based stage index, a list of them, or \"all\"")
    raise SpecError(f"{where}: unknown axis")


def parse_spec(text: str, source: str = "<spec>") -> Sweep:
    """Validate a TOML sweep spec; every problem raises :class:`SpecError` naming the key and value."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{source}: not valid TOML ({e})") from None
    for k in raw:
        if k not in SECTIONS:
            raise SpecError(f"{source}: unknown section or key [{k}]; known sections: {', '.join(SECTIONS)}")
    for k in SECTIONS:
        if k in raw and not isinstance(raw[k], dict):
            raise SpecError(f"{source}: '{k}' must be a [{k}] table")
    sw, tr, ds, ax, rs = (raw.get(k, {}) for k in SECTIONS)
    for sec, keys, known in (("sweep", sw, SWEEP_KEYS), ("train", tr, TRAIN_KEYS), ("default_se", ds, SE_KEYS),
                             ("axes", ax, tuple(tables.AXES)), ("resources", rs, RESOURCE_KEYS)):
        for k in keys:
            if k not in known:
                hint = " (the seed comes from [sweep].seeds)" if k == "seed" else (
                    " (SE settings belong in [default_se] and [axes])" if k == "se" else "")
                raise SpecError(f"{source}: [{sec}] has unknown key '{k}'{hint}; known: {', '.join(known)}")

    name = sw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise SpecError(f"{source}: [sweep].name must be a short name of letters, digits, '-', '_' or '.', got {name!r}")
    seeds = sw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                                                       for s in seeds):
        raise SpecError(f"{source}: [sweep].seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"{source}: [sweep].seeds repeats a seed: {seeds!r}")
    baseline = _check_value(f"{source}: [sweep].baseline", sw.get("baseline", True), "bool")
    allow_short = _check_value(f"{source}: [sweep].allow_short", sw.get("allow_short", False), "bool")
    description = _check_value(f"{source}: [sweep].description", sw.get("description", ""), "str")
    keep = _check_value(f"{source}: [sweep].keep_checkpoints", sw.get("keep_checkpoints", True), "bool")

    amounts = [_check_value(f"{source}: [resources].{k}", rs.get(k, d), kind)
               for k, d, kind in zip(RESOURCE_KEYS, (1.0, 0.0, 1), ("float", "float", "int"))]
    try:
        resources = Resources(*amounts)
    except SpecError as e:
        raise SpecError(f"{source}: [resources]: {e}") from None

    kinds = {f.name: _type_name(f) for f in fields(TrainConfig)}
    train_kw = {k: _check_value(f"{source}: [train].{k}", v, kinds[k]) for k, v in tr.items()}
    train_kw.setdefault("arch", "resnet20_cifar")
    try:
        base = TrainConfig(**train_kw)
    except KeyError as e:
        raise SpecError(f"{source}: [train].arch: {e.args[0]}") from None
    except ValueError as e:
        raise SpecError(f"{source}: [train]: {e}") from None
    if base.epochs < tables.MIN_EPOCHS and not allow_short:
        raise SpecError(f"{source}: [train].epochs = {base.epochs} is too short for an ablation (its errors would be "
                        f"noise); use >= {tables.MIN_EPOCHS}, or set [sweep].allow_short = true for a smoke test")
    for k in ("train_subset", "test_subset"):
        v = getattr(base, k)
        if v is not None and v < 1:
            raise SpecError(f"{source}: [train].{k} must be >= 1 (omit it for the full set), got {v}")
    spec = get_spec(base.arch)
    if not spec.takes_se or spec.default_se is not None:
        raise SpecError(f"{source}: [train].arch = {base.arch!r} must name a vanilla network whose SE units the sweep "
                        "can place, e.g. 'resnet20_cifar' (SE trials use its 'se_' twin with each config)")
    se_arch = f"se_{base.arch}"
    try:
        get_spec(se_arch)
    except KeyError:
        se_arch = base.arch

    se_kw = {}
    for k, v in ds.items():
        where = f"{source}: [default_se].{k}"
        if k == "stages":
            se_kw[k] = _axis_value("stages", v, where)[1]
        elif k == "reduction":
            se_kw[k] = _axis_value("reduction_ratio", v, where)[1]
        else:
            se_kw[k] = _check_value(where, v, "str")
    try:
        default_se = SEConfig(**se_kw)
    except ValueError as e:
        raise SpecError(f"{source}: [default_se]: {e}") from None

    axes = []
    for axis, values in ax.items():
        if not isinstance(values, list):
            raise SpecError(f"{source}: [axes].{axis} must be a list of settings, got {values!r}")
        checked = []
        for i, v in enumerate(values):
            where = f"{source}: [axes].{axis}[{i}]"
            fld, val = _axis_value(axis, v, where)
            try:
                se = default_se.replace(**{fld: val})
            except ValueError as e:
                raise SpecError(f"{where}: {v!r} cannot be combined with [default_se] ({e})") from None
            if se.stages is not None:
                try:
                    spec.build(se)
                except ValueError as e:
                    raise SpecError(f"{where}: {e}") from None
            checked.append(v)
        axes.append((axis, tuple(checked)))
    if default_se.stages is not None:
        try:
            spec.build(default_se)
        except ValueError as e:
            raise SpecError(f"{source}: [default_se].stages: {e}") from None
    return Sweep(name=name, seeds=tuple(seeds), base=base, se_arch=se_arch, default_se=default_se, axes=tuple(axes),
                 baseline=baseline, description=description, source=source,
                 spec_sha256=hashlib.sha256(text.encode()).hexdigest(), resources=resources, spec=raw,
                 keep_checkpoints=keep)


def load_spec(path: str | os.PathLike) -> Sweep:
    """Read and validate the TOML spec at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{p}: cannot read the sweep spec ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: the sweep spec is not UTF-8 text") from None
    return parse_spec(text, str(path))


def trial_id(cfg: TrainConfig) -> str:
    """Stable id of a trial: 12 hex digits of the SHA-256 of its TrainConfig dict (which holds the seed)."""
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def plan(sweep: Sweep) -> list[Trial]:
    """All trials, seed-major (every config of seed 0, then seed 1...), identical configs merged."""
    configs: dict[str, dict] = {}

    def add(se: SEConfig | None, axis: str, setting: str) -> None:
        key = "vanilla" if se is None else se.to_json()
        if key not in configs:
            configs[key] = {"se": se, "axis": axis, "setting": setting, "members": [(axis, setting)]}
        elif (axis, setting) not in configs[key]["members"]:
            configs[key]["members"].append((axis, setting))

    if sweep.baseline:
        add(None, BASELINE_AXIS, BASELINE_SETTING)
    add(sweep.default_se, DEFAULT_AXIS, DEFAULT_SETTING)
    for axis, _ in sweep.axes:  # the default is every axis' reference point
        info = tables.AXES[axis]
        add(sweep.default_se, axis, setting_label(axis, _default_value(sweep.default_se, axis, info.field)))
    for axis, values in sweep.axes:
        for v in values:
            fld, val = _axis_value(axis, v, axis)
            add(sweep.default_se.replace(**{fld: val}), axis, setting_label(axis, v))
    trials = []
    for seed in sweep.seeds:
        for c in configs.values():
            se = c["se"]
            base = {k: getattr(sweep.base, k) for k in TRAIN_KEYS}
            cfg = TrainConfig(**{**base, "arch": sweep.base.arch if se is None else sweep.se_arch, "se": se,
                                 "seed": seed})
            trials.append(Trial(len(trials), trial_id(cfg), c["axis"], c["setting"], tuple(c["members"]), cfg))
    return trials


def _default_value(se: SEConfig, axis: str, fld: str) -> Any:
    v = getattr(se, fld)
    if axis == "stages":
        return "all" if v is None else (v[0] if len(v) == 1 else list(v))
    return v
