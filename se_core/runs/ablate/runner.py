"""Running the trials: one trainer process each, resumable, several at once on the cores there are, rows as they finish."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from se_core.config import REPO_ROOT, dist
from se_core.models.build import build_from_checkpoint
from se_core.models.costs import measure_cost
from se_core.models.registry import get_spec
from se_core.runs.ablate.spec import RUNS_ROOT, SpecError, Sweep, Trial, plan
from se_core.runs.ablate.table import _now, provenance_path, read_rows, write_table
from se_core.runs.train import TrainConfig, train
from se_core.util.files import atomic_write_bytes
from se_core.util.provenance import git_commit, hardware


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
    d = Path(trial_dir)
    info = json.loads((d / "trial.json").read_text())
    cfg = TrainConfig.from_dict(info["config"])
    rank = dist().rank
    with _trial_lock(d, rank):
        train(cfg, d, threads=threads, progress=progress)
        if rank != 0:
            return None
        row = make_row(info, cfg, d)
        atomic_write_bytes(d / "row.json", json.dumps(row, indent=1).encode())
    return row


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
        for _, proc, _, _ in running.values():
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _, _ in running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            logf.close()
    return SweepResult(table, len(rows), len(trials), ran, failed)
