"""Ablation sweeps over the SE design choices of paper Tables 10-16: ``python -m se_core.ablate``.

A TOML spec (``sweeps/default.toml``) gives the trainer settings, the seeds, and the axes; each
axis varies one field of the default SE config (r=16, avg squeeze, sigmoid gate, all stages,
standard integration, SE at the block output), like the paper's tables. Identical configs
across axes are trained once (the default SE config is one trial per seed, referenced by every
axis). Each trial (config x seed, id = hash of its ``TrainConfig``) is one
:func:`se_core.train.train` run in ``runs/ablate/<sweep>/<trial_id>/`` and one row of a long CSV
table (schema: :mod:`se_core.tables`), by default ``data/ablations/<sweep>.csv``, with a
provenance JSON beside it.

Resumable: killed at any moment (SIGKILL included) and started again, the runner skips trials in
the table, resumes the interrupted one from its ``last.safetensors``, and ends with the same
table. The table is rewritten whole to a temp file and renamed, so it never holds half a row.

Commands::

    python -m se_core.ablate run sweeps/default.toml [--jobs N] [--shard i/k] [--launcher torchrun --nproc P]
    python -m se_core.ablate plan sweeps/default.toml          # list the trials, train nothing
    python -m se_core.ablate merge A.csv B.csv -o out.csv      # join shard tables
    python -m se_core.ablate summary sweeps/default.toml [--docs docs/ablations.md]  # per-axis Markdown tables
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from se_core import tables
from se_core.checkpoints import atomic_write_bytes
from se_core.docblock import fill_block
from se_core.paths import repo_relative
from se_core.se import GATES, INTEGRATIONS, SITES, SQUEEZES, SEConfig
from se_core.tables import BASELINE_AXIS, BASELINE_SETTING, DEFAULT_AXIS, DEFAULT_SETTING, TableError, setting_label
from se_core.train import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS_ROOT = REPO_ROOT / "runs" / "ablate"
TABLE_DIR = REPO_ROOT / "data" / "ablations"
SECTIONS = ("sweep", "train", "default_se", "axes")
SWEEP_KEYS = ("name", "description", "seeds", "baseline", "allow_short")
SE_KEYS = ("reduction", "squeeze", "gate", "stages", "integration", "site")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in ("se", "seed"))
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SpecError(ValueError):
    """A sweep spec that cannot be run; the message names the file, key and value."""


# ---------------------------------------------------------------------------------------------- spec
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
    spec: dict = field(default_factory=dict, compare=False, repr=False)


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
    sw, tr, ds, ax = (raw.get(k, {}) for k in SECTIONS)
    for sec, keys, known in (("sweep", sw, SWEEP_KEYS), ("train", tr, TRAIN_KEYS), ("default_se", ds, SE_KEYS),
                             ("axes", ax, tuple(tables.AXES))):
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
    from se_core.registry import get_spec
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
                 spec_sha256=hashlib.sha256(text.encode()).hexdigest(), spec=raw)


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


def parse_shard(text: str) -> tuple[int, int]:
    """``'1/4'`` -> (1, 4); the runner then runs trials with ``index % 4 == 1``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise SpecError(f"--shard must be i/k with 0 <= i < k, got {text!r}")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------------------------- table
def _fmt(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return repr(v)
    if hasattr(v, "item"):  # numpy scalars
        return _fmt(v.item())
    return str(v)


def write_table(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write ``rows`` (sorted by trial index) as the whole CSV, atomically."""
    buf = io.StringIO()
    extra = sorted({k for r in rows for k in r} - set(tables.COLUMNS))
    w = csv.DictWriter(buf, fieldnames=[*tables.COLUMNS, *extra], lineterminator="\n")
    w.writeheader()
    key = lambda r: (int(r["index"]) if _fmt(r.get("index")) else 1 << 30, str(r["trial_id"]))  # noqa: E731
    for r in sorted(rows, key=key):
        w.writerow({k: _fmt(r.get(k)) for k in w.fieldnames})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of an existing table as dicts (validated by :func:`se_core.tables.load_ablation_table`)."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if len(lines) <= 1:  # absent rows (or a header only): nothing finished yet
        return []
    df = tables.load_ablation_table(path)
    return [{k: (None if v is pd.NA or (isinstance(v, float) and v != v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]


def provenance_path(table: str | os.PathLike) -> Path:
    p = Path(table)
    return p.with_name(p.stem + ".provenance.json")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------- trial
def _trial_lock(trial_dir: Path, rank: int):
    """An exclusive lock on the trial dir, so an orphaned trial process and its restart never train
    the same run at once (the second waits)."""
    import contextlib

    @contextlib.contextmanager
    def lock():
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        trial_dir.mkdir(parents=True, exist_ok=True)
        with open(trial_dir / f".lock.{rank}", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    return lock()


def make_row(info: dict, cfg: TrainConfig, trial_dir: Path) -> dict:
    """The table row of a finished trial: config, errors, measured cost and provenance."""
    from se_core.registry import build_from_checkpoint, get_spec, measure_cost

    final = json.loads((trial_dir / "final.json").read_text())
    prov, ev = final["provenance"], final["final"]
    model, _ = build_from_checkpoint(trial_dir / "model.safetensors")
    cost = measure_cost(model, get_spec(cfg.arch).input_size)
    se = cfg.se_config()
    return {
        "sweep": info.get("sweep", ""), "index": info["index"], "trial_id": info["trial_id"], "axis": info["axis"],
        "setting": info["setting"], "axes": info["axes"], "arch": cfg.arch,
        "reduction": None if se is None else se.reduction, "squeeze": "" if se is None else se.squeeze,
        "gate": "" if se is None else se.gate,
        "stages": "" if se is None else ("all" if se.stages is None else "+".join(map(str, se.stages))),
        "integration": "" if se is None else se.integration, "site": "" if se is None else se.site,
        "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "schedule": cfg.schedule,
        "data": cfg.data, "train_subset": cfg.train_subset, "test_subset": cfg.test_subset,
        "top1_err": round(100.0 - ev["top1"], 4), "top5_err": round(100.0 - ev["top5"], 4),
        "test_loss": round(ev["loss"], 6), "test_n": ev["n"],
        "params": cost.params, "flops": cost.flops, "train_wall_s": prov.get("wall_time_s"),
        "precision": prov.get("precision", ""), "world_size": prov.get("world_size", 1),
        "command": info.get("command", ""), "commit": prov.get("commit", ""), "hardware": prov.get("hardware", ""),
        "date": prov.get("date", ""),
    }


def run_trial(trial_dir: str | os.PathLike, threads: int | None = None, progress: bool = False) -> dict | None:
    """Train (or resume) the trial described by ``trial_dir/trial.json``; rank 0 writes ``row.json``
    and returns the row (other ranks of a torchrun job return None)."""
    from se_core.train import train

    d = Path(trial_dir)
    info = json.loads((d / "trial.json").read_text())
    cfg = TrainConfig.from_dict(info["config"])
    rank = int(os.environ.get("RANK", "0"))
    with _trial_lock(d, rank):
        train(cfg, d, threads=threads, progress=progress)
        if rank != 0:
            return None
        row = make_row(info, cfg, d)
        atomic_write_bytes(d / "row.json", json.dumps(row, indent=1).encode())
    return row


# -------------------------------------------------------------------------------------------- runner
def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_trial(jobs: int, nproc: int = 1, cores: int | None = None) -> int:
    """Torch threads for each process so ``jobs`` trials of ``nproc`` processes never oversubscribe the cores."""
    return max(1, (cores or available_cores()) // max(1, jobs * nproc))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the trial process gets SIGKILL when the runner dies, so no orphan keeps training."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def trial_command(trial_dir: Path, threads: int, launcher: str, nproc: int, progress: bool) -> list[str]:
    """The command that runs one trial: ``python -m se_core.ablate trial DIR`` (wrapped in
    ``python -m torch.distributed.run --standalone --nproc_per_node P`` for ``launcher='torchrun'``)."""
    tail = ["-m", "se_core.ablate", "trial", str(trial_dir), "--threads", str(threads)] + (["--progress"] if progress else [])
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *tail]
    return [sys.executable, *tail]


@dataclass
class SweepResult:
    table: Path
    done: int
    total: int
    ran: list[str]
    failed: list[str]


def run_sweep(sweep: Sweep, *, table: str | os.PathLike, runs_root: str | os.PathLike = RUNS_ROOT, jobs: int = 1,
              shard: tuple[int, int] = (0, 1), launcher: str = "none", nproc: int = 1, threads: int | None = None,
              in_process: bool = False, progress: bool = False, command: str = "",
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> SweepResult:
    """Run the trials of ``shard`` not yet in ``table`` (resuming an interrupted one), writing each
    finished trial's row into the table as it completes. Failed trials are reported, not fatal."""
    from se_core.train import git_commit, hardware

    if jobs < 1 or nproc < 1:
        raise SpecError("--jobs and --nproc must be >= 1")
    if launcher not in ("none", "torchrun"):
        raise SpecError(f"--launcher must be 'none' or 'torchrun', got {launcher!r}")
    table, runs = Path(table), Path(runs_root) / sweep.name
    i, k = shard
    trials = [t for t in plan(sweep) if t.index % k == i]
    by_id = {t.trial_id: t for t in trials}
    rows: dict[str, dict] = {}
    if table.exists():
        for r in read_rows(table):  # a broken table raises TableError: never overwrite it
            if r["trial_id"] not in by_id:
                raise SpecError(f"{table} holds trial {r['trial_id']} ({r['axis']}={r['setting']}, seed {r['seed']}) "
                                f"that is not in this sweep{'' if k == 1 else f' shard {i}/{k}'}; use another --table, "
                                "or remove that row if the spec changed on purpose")
            t = by_id[r["trial_id"]]  # labels follow the current plan (e.g. an axis added to the spec)
            rows[r["trial_id"]] = {**r, "sweep": sweep.name, "index": t.index, "axis": t.axis, "setting": t.setting,
                                   "axes": t.axes_text}
    for stale in table.parent.glob(f".{table.name}.*.tmp"):  # temp files of a killed writer
        stale.unlink(missing_ok=True)
    todo = [t for t in trials if t.trial_id not in rows]
    threads = threads or threads_per_trial(jobs, nproc if launcher == "torchrun" else 1)
    prov_file = provenance_path(table)
    prov: dict = {}
    if prov_file.is_file():
        try:
            prov = json.loads(prov_file.read_text())
        except (OSError, ValueError):
            prov = {}
    invocation = {"command": command, "commit": git_commit(), "hardware": hardware(), "started": _now(),
                  "jobs": jobs, "threads_per_trial": threads, "launcher": launcher, "nproc": nproc,
                  "in_process": in_process}
    prov = {"what": "SE ablation sweep results; one row per trial in the CSV beside this file",
            "sweep": sweep.name, "description": sweep.description, "spec_file": sweep.source,
            "spec_sha256": sweep.spec_sha256, "spec": sweep.spec, "table": table.name, "shard": f"{i}/{k}",
            "runs_dir": str(runs), "trials_in_shard": len(trials),
            "started": prov.get("started", invocation["started"]) if prov.get("spec_sha256") == sweep.spec_sha256
            else invocation["started"],
            "invocations": (prov.get("invocations", []) if prov.get("spec_sha256") == sweep.spec_sha256 else [])
            + [invocation]}

    def save() -> None:
        if rows or table.exists():
            write_table(table, list(rows.values()))
        prov.update(trials_done=len(rows), updated=_now(), finished=_now() if len(rows) == len(trials) else None,
                    failed=failed)
        atomic_write_bytes(prov_file, json.dumps(prov, indent=2, default=str).encode())

    ran: list[str] = []
    failed: list[str] = []
    log(f"sweep {sweep.name}: {len(trials)} trial(s) in shard {i}/{k}, {len(rows)} already in {table}, "
        f"{len(todo)} to run ({jobs} job(s) x {threads} thread(s))")
    save()

    def describe(t: Trial) -> str:
        return f"{t.trial_id} {t.axis}={t.setting} seed {t.config.seed}"

    def prepare(t: Trial) -> Path:
        d = runs / t.trial_id
        info = {"trial_id": t.trial_id, "index": t.index, "sweep": sweep.name, "axis": t.axis, "setting": t.setting,
                "axes": t.axes_text, "config": t.config.to_dict(), "command": command}
        atomic_write_bytes(d / "trial.json", json.dumps(info, indent=1).encode())
        return d

    def finished_row(t: Trial, d: Path) -> dict | None:
        f = d / "row.json"
        if f.is_file():
            try:
                row = json.loads(f.read_text())
            except ValueError:
                return None
            if row.get("trial_id") == t.trial_id:
                return {**row, "command": row.get("command") or command}
        return None

    def record(t: Trial, row: dict, t0: float) -> None:
        rows[t.trial_id] = row
        ran.append(t.trial_id)
        save()
        log(f"[{len(rows)}/{len(trials)}] {describe(t)}: top-1 err {row['top1_err']:.2f}% "
            f"({time.perf_counter() - t0:.0f} s)")

    pending = list(todo)
    if in_process:
        import torch
        torch.set_num_threads(threads)
        for t in pending:
            d, t0 = prepare(t), time.perf_counter()
            row = finished_row(t, d) or run_trial(d, threads=threads, progress=progress)
            assert row is not None
            record(t, row, t0)
        return SweepResult(table, len(rows), len(trials), ran, failed)

    ngpu = 0
    if launcher == "none":
        try:
            import torch
            ngpu = torch.cuda.device_count()
        except Exception:  # noqa: BLE001
            ngpu = 0
    running: dict[int, tuple[Trial, subprocess.Popen, float, Any]] = {}  # slot -> ...
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        while pending or running:
            while pending and len(running) < jobs:
                t = pending.pop(0)
                d, t0 = prepare(t), time.perf_counter()
                row = finished_row(t, d)
                if row is not None:
                    record(t, row, t0)
                    continue
                slot = min(set(range(jobs)) - set(running))
                cenv = dict(env)
                if ngpu > 1:
                    cenv["CUDA_VISIBLE_DEVICES"] = str(slot % ngpu)
                logf = open(d / "trial.log", "ab")
                logf.write(f"\n=== {_now()} {command}\n".encode())
                logf.flush()
                cmd = trial_command(d, threads, launcher, nproc, progress)
                proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=cenv,
                                        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
                running[slot] = (t, proc, t0, logf)
                log(f"start {describe(t)} (slot {slot}): {shlex.join(cmd)}")
            time.sleep(0.1)
            for slot, (t, proc, t0, logf) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[slot]
                logf.close()
                d = runs / t.trial_id
                row = finished_row(t, d) if proc.returncode == 0 else None
                if row is None:
                    failed.append(t.trial_id)
                    tail = (d / "trial.log").read_text(errors="replace").strip().splitlines()[-15:]
                    log(f"FAILED {describe(t)} (exit {proc.returncode}); log {d / 'trial.log'}:\n  " + "\n  ".join(tail))
                    save()
                else:
                    record(t, row, t0)
    finally:
        for t, proc, _, logf in running.values():
            if proc.poll() is None:
                proc.terminate()
        for t, proc, _, logf in running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            logf.close()
    return SweepResult(table, len(rows), len(trials), ran, failed)


# --------------------------------------------------------------------------------------------- merge
def merge_tables(paths: list[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Join shard tables into ``out``; a trial in two tables must agree on everything but
    :data:`se_core.tables.VOLATILE` columns (timing, date, command, hardware, commit)."""
    if not paths:
        raise TableError("merge needs at least one table")
    frames = []
    for p in paths:
        df = tables.load_ablation_table(p)
        frames.append(df.assign(_src=str(p), _row=range(1, len(df) + 1)))
    allr = pd.concat(frames, ignore_index=True)
    keep = []
    compare = [c for c in tables.COLUMNS if c not in tables.VOLATILE]
    for tid, g in allr.groupby("trial_id", sort=False):
        first = g.iloc[0]
        for _, other in g.iloc[1:].iterrows():
            for c in compare:
                a, b = first[c], other[c]
                same = (pd.isna(a) and pd.isna(b)) if (pd.isna(a) or pd.isna(b)) else a == b
                if not same:
                    raise TableError(f"trial {tid} conflicts: {first['_src']} row {first['_row']} has {c}={a!r} but "
                                     f"{other['_src']} row {other['_row']} has {c}={b!r}; keep one of the two tables' rows")
        keep.append(g.index[0])
    merged = allr.loc[keep].drop(columns=["_src", "_row"])
    write_table(out, merged.to_dict("records"))
    from se_core.train import git_commit
    inputs = []
    for p in paths:
        pp = provenance_path(p)
        inputs.append({"table": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest(),
                       "provenance": json.loads(pp.read_text()) if pp.is_file() else None})
    atomic_write_bytes(provenance_path(out), json.dumps({
        "what": "merged SE ablation table", "rows": len(merged), "inputs": inputs, "date": _now(),
        "command": "python -m se_core.ablate " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["merge"] else "",
        "commit": git_commit()}, indent=2, default=str).encode())
    return tables.load_ablation_table(out)


# ----------------------------------------------------------------------------------------------- CLI
SUMMARY_BLOCK = "sweep-results"


def summary_lines(sweep: Sweep, table: str | os.PathLike, spec_path: str | os.PathLike) -> list[str]:
    """The Markdown summary of ``table`` (a run of ``sweep``): how many of the planned trials it holds,
    what they are, then :func:`se_core.tables.summary_markdown` beside the paper's reported rows."""
    df = tables.load_ablation_table(table)
    try:
        ref = tables.load_reference()
    except TableError:
        ref = None
    ids = {t.trial_id for t in plan(sweep)}
    foreign = int((~df["trial_id"].isin(ids)).sum())
    head = (f"Written by `python -m se_core.ablate summary {repo_relative(spec_path)} --docs` from `{repo_relative(table)}`: "
            f"{len(df) - foreign} of {len(ids)} trials of `{sweep.name}` ({sweep.description})"
            + (f", plus {foreign} row(s) that are not trials of this spec" if foreign else "") + ". "
            f"Top-1 error in % on {_test_images(df)} (mean ± sample std over seeds). Δ in points ± its standard "
            f"error, from the seed-to-seed std pooled over all configs with two or more seeds: {_sigma(df)}. "
            + ("Paper columns: reported by Hu et al. (TPAMI v4), SE-ResNet-50 on ImageNet, for comparing trends only."
               if ref is not None else "Paper columns: the reference table data/reference/ablations.csv is absent."))
    return [head, "", *tables.summary_markdown(df, ref)]


def _sigma(df: pd.DataFrame) -> str:
    sigma, dof = tables.pooled_seed_std(df)
    return f"σ = {sigma:.2f} pt ({dof} degrees of freedom)" if dof else "none yet (no config has two seeds)"


def _test_images(df: pd.DataFrame) -> str:
    n = set(df["test_n"].dropna().astype(int)) if "test_n" in df else set()
    return f"the {n.pop():,} test images" if len(n) == 1 else "the test set (sizes differ between rows; see test_n)"


def default_table(sweep: Sweep, shard: tuple[int, int]) -> Path:
    i, k = shard
    return TABLE_DIR / (f"{sweep.name}.csv" if k == 1 else f"{sweep.name}.shard{i}of{k}.csv")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".toml"):
        argv = ["run", *argv]
    ap = argparse.ArgumentParser(prog="python -m se_core.ablate", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) a sweep")
    r.add_argument("spec", help="TOML sweep spec, e.g. sweeps/default.toml")
    r.add_argument("--table", help="result CSV (default data/ablations/<sweep>.csv, .shardIofK.csv with --shard)")
    r.add_argument("--runs-root", default=str(RUNS_ROOT), help="trial run dirs go to RUNS_ROOT/<sweep>/<trial_id>/")
    r.add_argument("--jobs", type=int, default=1, help="trials in parallel, each a separate process")
    r.add_argument("--threads", type=int, default=None, help="torch threads per trial (default cores // (jobs*nproc))")
    r.add_argument("--shard", default="0/1", help="i/k: run only trials with index %% k == i")
    r.add_argument("--launcher", default="none", choices=("none", "torchrun"),
                   help="torchrun: wrap each trial in python -m torch.distributed.run")
    r.add_argument("--nproc", type=int, default=1, help="processes per trial with --launcher torchrun")
    r.add_argument("--in-process", action="store_true", help="train in this process, one trial at a time (debugging)")
    r.add_argument("--progress", action="store_true", help="per-batch progress bars in each trial's log")
    p = sub.add_parser("plan", help="list the trials of a spec without training")
    p.add_argument("spec")
    p.add_argument("--shard", default="0/1")
    m = sub.add_parser("merge", help="merge shard tables, refusing conflicting duplicates")
    m.add_argument("tables", nargs="+")
    m.add_argument("-o", "--out", required=True)
    sm = sub.add_parser("summary", help="per-axis Markdown tables of a sweep's results beside the paper's rows")
    sm.add_argument("spec")
    sm.add_argument("--table", help="result CSV (default data/ablations/<sweep>.csv)")
    sm.add_argument("--docs", nargs="?", const=str(REPO_ROOT / "docs" / "ablations.md"), default=None,
                    help=f"also write the <!-- {SUMMARY_BLOCK}:begin/end --> block of this Markdown file "
                         "(default docs/ablations.md)")
    t = sub.add_parser("trial", help="(internal) run one prepared trial directory")
    t.add_argument("dir")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "trial":
            run_trial(a.dir, threads=a.threads, progress=a.progress)
            return 0
        if a.cmd == "merge":
            df = merge_tables(a.tables, a.out)
            print(f"merged {len(a.tables)} table(s) into {a.out}: {len(df)} trial(s)")
            return 0
        sweep = load_spec(a.spec)
        if a.cmd == "summary":
            lines = summary_lines(sweep, a.table or default_table(sweep, (0, 1)), a.spec)
            print("\n".join(lines))
            if a.docs:
                fill_block(a.docs, SUMMARY_BLOCK, lines)
                print(f"wrote the {SUMMARY_BLOCK} block of {a.docs}", file=sys.stderr)
            return 0
        shard = parse_shard(a.shard)
        if a.cmd == "plan":
            trials = [x for x in plan(sweep) if x.index % shard[1] == shard[0]]
            for x in trials:
                print(f"{x.index:4d} {x.trial_id} seed={x.config.seed} {x.axis}={x.setting}  [{x.axes_text}]")
            n_cfg = len({json.dumps({**x.config.to_dict(), 'seed': 0}, sort_keys=True) for x in trials})
            print(f"{len(trials)} trial(s): {n_cfg} config(s) x {len(sweep.seeds)} seed(s), "
                  f"{sweep.base.epochs} epoch(s) each")
            return 0
        res = run_sweep(sweep, table=a.table or default_table(sweep, shard), runs_root=a.runs_root, jobs=a.jobs,
                        shard=shard, launcher=a.launcher, nproc=a.nproc, threads=a.threads, in_process=a.in_process,
                        progress=a.progress, command="python -m se_core.ablate " + shlex.join(argv))
    except (SpecError, TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"{res.done}/{res.total} trial(s) in {res.table}" + (f"; {len(res.failed)} failed: {', '.join(res.failed)}"
                                                              if res.failed else ""), file=sys.stderr)
    return 1 if res.failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM -> KeyboardInterrupt -> children stopped
    sys.exit(main())
