"""Running the trials: one Ray task per trial (a trial of several workers: a Ray Train ``TorchTrainer``
launched from that task, one DDP rank per worker), resumable, with rows and live progress written as trials land.

Ray does the supervising the runner used to do by hand: it starts no more trials than the
reserved CPUs/GPUs fit, kills a dead driver's trials, and re-runs a trial whose worker or node
died (``max_retries``); the re-run resumes from the trial's ``last.safetensors``, so at most the
epochs after the last checkpoint are redone. Trial folders live under the runs root, which every
node must see at the same path (one machine, or a cluster's shared file system).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from se_core import config
from se_core.models.ablation_models import keep_trial, kept_matches
from se_core.models.build import build_from_checkpoint
from se_core.models.costs import measure_cost
from se_core.models.registry import get_spec
from se_core.runs.ablate import progress as prog
from se_core.runs.ablate.spec import RUNS_ROOT, Resources, SpecError, Sweep, Trial, plan
from se_core.runs.ablate.table import _now, provenance_path, read_rows, write_table
from se_core.runs.tables import AXES, BASELINE_AXIS
from se_core.runs.train import TrainConfig, train
from se_core.util.files import atomic_write_bytes
from se_core.util.paths import repo_relative
from se_core.util.provenance import git_commit, hardware

KEPT_FROM = "model.safetensors"
"""The file of a finished trial that is kept: its final weights."""


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


def run_trial(trial_dir: str | os.PathLike, threads: int = 1, progress: bool = False) -> dict | None:
    """Train (or resume) the trial described by ``trial_dir/trial.json``; writes ``row.json`` and returns the row.

    In a data-parallel trial every rank calls this; rank 0, which writes the run's files, writes the
    row and returns it, the other ranks return ``None``."""
    d = Path(trial_dir)
    info = json.loads((d / "trial.json").read_text())
    cfg = TrainConfig.from_dict(info["config"])
    train(cfg, d, threads=threads, progress=progress)
    if config.dist().rank != 0:
        return None
    row = make_row(info, cfg, d)
    atomic_write_bytes(d / "row.json", json.dumps(row, indent=1).encode())
    return row


@contextlib.contextmanager
def _trial_log(d: Path, header: str) -> Iterator[None]:
    """This process's output appended to the trial's ``trial.log``, in a section of its own (``=== ``),
    so every attempt, and every rank of a data-parallel trial, is told apart."""
    with open(d / "trial.log", "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"\n=== {_now()} {header}", flush=True)
        yield


def _mark_running(d: Path, world: int = 1) -> str:
    """Write ``running.json`` (where the trial's training process runs, for the progress file); returns its node id."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    atomic_write_bytes(d / "running.json", json.dumps({
        "node_id": node, "node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(), "world_size": world,
        "started": _now(), "started_unix": time.time()}).encode())
    return node


def trial_task(trial_dir: str, res: Resources, progress: bool, max_retries: int = 0) -> dict:
    """The body of a trial's Ray task: a one-process trial trains here (saying where in ``running.json``,
    its output appended to ``trial.log``); a trial of several workers runs data-parallel through
    Ray Train (:func:`_fit_data_parallel`) and returns the row its rank 0 wrote."""
    d = Path(trial_dir)
    with _exclusive(d):
        if res.workers > 1:
            return _fit_data_parallel(d, res, progress, max_retries)
        node = _mark_running(d)
        with _trial_log(d, f"Ray task on node {node[:12]} pid {os.getpid()}"):
            row = run_trial(d, threads=res.threads, progress=progress)
    assert row is not None  # one process is rank 0
    return row


@contextlib.contextmanager
def _exclusive(d: Path) -> Iterator[None]:
    """Hold an exclusive lock on the trial folder: a retry or a second driver waits while a dead driver's
    orphaned attempt (which Ray stops only eventually) still writes there. Released when its process dies."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fit_data_parallel(d: Path, res: Resources, progress: bool, max_retries: int) -> dict:
    """Train the trial with Ray Train's ``TorchTrainer``: ``res.workers`` workers of ``res.cpus`` CPUs and
    ``res.gpus`` GPUs each, gloo on CPU and NCCL on GPU. Ray Train sets up the process group and
    ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, so each worker runs this project's trainer as one DDP rank
    (:func:`_train_worker`); a worker group that fails is restarted up to ``max_retries`` times, each
    restart resuming from ``last.safetensors``."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    d = d.absolute()
    per_worker = {"CPU": res.cpus, **({"GPU": res.gpus} if res.gpus else {})}
    trainer = TorchTrainer(
        _train_worker, train_loop_config={"trial_dir": str(d), "threads": res.threads, "progress": progress},
        scaling_config=ScalingConfig(num_workers=res.workers, use_gpu=res.gpus > 0, resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if res.gpus > 0 else "gloo"),
        run_config=RunConfig(name=d.name, storage_path=str(d / "ray_train"),
                             failure_config=FailureConfig(max_failures=max_retries)))
    with _trial_log(d, f"Ray task pid {os.getpid()}: data-parallel, {res.workers} Ray Train workers"):
        trainer.fit()
    return json.loads((d / "row.json").read_text())


def _train_worker(loop: dict) -> None:
    """One rank of a data-parallel trial, in a Ray Train worker (the process group is already up)."""
    d = Path(loop["trial_dir"])
    place = config.dist()
    node = _mark_running(d, place.world) if place.rank == 0 else ""
    with _trial_log(d, f"Ray Train worker rank {place.rank}/{place.world} {node[:12]} pid {os.getpid()}"):
        run_trial(d, threads=loop["threads"], progress=loop["progress"])


@dataclass
class SweepResult:
    table: Path
    done: int
    total: int
    ran: list[str]
    failed: list[str]
    errors: dict[str, str] = field(default_factory=dict)


def _describe(t: Trial) -> str:
    return f"{t.trial_id} {t.axis}={t.setting} seed {t.config.seed}"


def _error_text(e: BaseException) -> str:
    """One line for the log and the progress file: the trial's own exception if it raised one."""
    cause = getattr(e, "cause", None)
    src = cause if isinstance(cause, BaseException) else e
    lines = [ln for ln in str(src).strip().splitlines() if ln.strip()]
    return f"{type(src).__name__}: {lines[-1] if lines else ''}"[:500]


class _Sweep:
    """One invocation of a sweep: the table, its provenance and its progress file, kept in step."""

    def __init__(self, sweep: Sweep, table: Path, runs: Path, command: str, invocation: dict,
                 log: Callable[[str], None], keep: bool = True) -> None:
        self.sweep, self.table, self.runs, self.command, self.log = sweep, table, runs, command, log
        self.kept_dir = table.parent / sweep.name if keep else None
        self.trials = plan(sweep)
        by_id = {t.trial_id: t for t in self.trials}
        self.rows: dict[str, dict] = {}
        if table.exists():
            for r in read_rows(table):  # a broken table raises TableError: never overwrite it
                if r["trial_id"] not in by_id:
                    raise SpecError(f"{table} holds trial {r['trial_id']} ({r['axis']}={r['setting']}, seed {r['seed']}) "
                                    "that is not in this sweep; use another --table, or remove that row if the spec "
                                    "changed on purpose")
                t = by_id[r["trial_id"]]  # labels follow the current plan (e.g. an axis added to the spec)
                self.rows[r["trial_id"]] = {**r, "sweep": sweep.name, "index": t.index, "axis": t.axis,
                                            "setting": t.setting, "axes": t.axes_text}
        for stale in table.parent.glob(f".{table.name}.*.tmp"):  # temp files of a killed writer
            stale.unlink(missing_ok=True)
        self.ran: list[str] = []
        self.errors: dict[str, str] = {}
        self.started_unix = time.time()
        prov_file = provenance_path(table)
        old: dict = {}
        if prov_file.is_file():
            try:
                old = json.loads(prov_file.read_text())
            except (OSError, ValueError):
                old = {}
        same = old.get("spec_sha256") == sweep.spec_sha256
        self.prov = {"what": "SE ablation sweep results; one row per trial in the CSV beside this file",
                     "sweep": sweep.name, "description": sweep.description, "spec_file": sweep.source,
                     "spec_sha256": sweep.spec_sha256, "spec": sweep.spec, "table": table.name, "runs_dir": str(runs),
                     "trials_in_sweep": len(self.trials),
                     "started": old.get("started", invocation["started"]) if same else invocation["started"],
                     "invocations": (old.get("invocations", []) if same else []) + [invocation]}

    def trial_dir(self, t: Trial) -> Path:
        return self.runs / t.trial_id

    def prepare(self, t: Trial) -> Path:
        d = self.trial_dir(t)
        info = {"trial_id": t.trial_id, "index": t.index, "sweep": self.sweep.name, "axis": t.axis,
                "setting": t.setting, "axes": t.axes_text, "config": t.config.to_dict(), "command": self.command}
        atomic_write_bytes(d / "trial.json", json.dumps(info, indent=1).encode())
        return d

    def finished_row(self, t: Trial) -> dict | None:
        """The row a trial wrote when it finished (a run killed between the trial and the table write)."""
        f = self.trial_dir(t) / "row.json"
        try:
            row = json.loads(f.read_text()) if f.is_file() else None
        except (OSError, ValueError):
            return None
        if row and row.get("trial_id") == t.trial_id:
            return {**row, "command": row.get("command") or self.command}
        return None

    def keep(self, t: Trial, row: dict) -> None:
        """Keep the trial's final weights compactly beside the table (``<sweep>/<trial_id>.safetensors`` and its
        sidecar), once: a whole copy of the same file is left as it is. Called for every row that lands, fresh or
        taken from ``row.json`` on a resume, before the table is written, so a row in the table has its copy; a
        row of an earlier run without one gets it on the next run while the trial folder still has the file.
        A copy that cannot be written is logged, never fatal: the row still lands."""
        if self.kept_dir is None:
            return
        src = self.trial_dir(t) / KEPT_FROM
        try:
            if not src.is_file() or kept_matches(self.kept_dir, t.trial_id, src):
                return
            twin = next((x for x in self.trials if x.axis == BASELINE_AXIS and x.config.seed == t.config.seed
                         and x is not t), None)  # the vanilla trial of the seed (none for itself)
            se = t.config.se_config()
            info = {"sweep": self.sweep.name, "trial_id": t.trial_id, "index": t.index, "axis": t.axis,
                    "setting": t.setting, "axes": t.axes_text, "axes_list": [list(m) for m in t.memberships],
                    "axis_title": AXES[t.axis].title if t.axis in AXES else "", "seed": t.config.seed,
                    "arch": t.config.arch, "se_config": None if se is None else se.to_dict(),
                    "twin": twin.trial_id if twin else "", "twin_arch": twin.config.arch if twin else "",
                    "table": self.table.name, "source": repo_relative(src),
                    **{k: row.get(k) for k in ("command", "commit", "hardware", "date", "precision", "world_size",
                                               "epochs", "data", "top1_err", "test_n")}}
            k = keep_trial(self.kept_dir, src, info)
            self.log(f"kept {_describe(t)} as {repo_relative(k.path)} ({k.info.get('bytes', 0):,} bytes)")
        except (OSError, ValueError) as e:  # CheckpointError is a ValueError
            self.log(f"warning: could not keep the checkpoint of {_describe(t)} ({e}); the next run tries again")

    def record(self, t: Trial, row: dict, t0: float) -> None:
        self.keep(t, row)
        self.rows[t.trial_id] = row
        self.ran.append(t.trial_id)
        self.errors.pop(t.trial_id, None)
        self.save()
        self.log(f"[{len(self.rows)}/{len(self.trials)}] {_describe(t)}: top-1 err {row['top1_err']:.2f}% "
                 f"({time.perf_counter() - t0:.0f} s)")

    def fail(self, t: Trial, e: BaseException) -> None:
        self.errors[t.trial_id] = _error_text(e)
        self.log(f"FAILED {_describe(t)}: {self.errors[t.trial_id]}; log {self.trial_dir(t) / 'trial.log'}")
        self.save()

    def save(self) -> None:
        """The table (rows whole, atomically) and the provenance beside it."""
        if self.rows or self.table.exists():
            write_table(self.table, list(self.rows.values()))
        self.prov.update(trials_done=len(self.rows), updated=_now(),
                         finished=_now() if len(self.rows) == len(self.trials) else None, failed=sorted(self.errors))
        atomic_write_bytes(provenance_path(self.table), json.dumps(self.prov, indent=2, default=str).encode())

    def write_progress(self, state: str, pending: list[Trial], cluster: str) -> None:
        running, queued = [], 0
        for t in pending:
            d = self.trial_dir(t)
            at = prog.attempt_info(d)
            if at.get("started_unix", 0) < self.started_unix - 1:  # not started by this invocation yet
                queued += 1
                continue
            epoch, err = prog.trial_epoch(d)
            running.append({"trial_id": t.trial_id, "index": t.index, "axis": t.axis, "setting": t.setting,
                            "seed": t.config.seed, "epoch": epoch, "epochs": t.config.epochs, "top1_err": err,
                            "node_ip": at.get("node_ip"), "node_id": (at.get("node_id") or "")[:12],
                            "pid": at.get("pid"), "started": at.get("started")})
        by_id = {t.trial_id: t for t in self.trials}
        prog.write_progress(prog.progress_path(self.table), {
            "sweep": self.sweep.name, "table": self.table.name, "state": state, "cluster": cluster,
            "driver_pid": os.getpid(), "updated": _now(), "updated_unix": time.time(), "total": len(self.trials),
            "done": len(self.rows), "running": running, "queued": queued,
            "failed": [{"trial_id": k, "axis": by_id[k].axis, "setting": by_id[k].setting, "seed": by_id[k].config.seed,
                        "error": v} for k, v in self.errors.items()]})


def run_sweep(sweep: Sweep, *, table: str | os.PathLike, runs_root: str | os.PathLike = RUNS_ROOT,
              resources: Resources | None = None, address: str | None = None, max_retries: int = 3,
              in_process: bool = False, progress: bool = False, command: str = "", poll_s: float = 2.0,
              keep_checkpoints: bool | None = None,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> SweepResult:
    """Run the trials not yet in ``table`` on Ray (an embedded local instance, or the cluster at
    ``address``), resuming interrupted ones, writing each finished trial's row as it lands and the
    live state to ``<table>.progress.json``. Failed trials are reported, not fatal; running again retries them.

    Each finished trial's final weights are kept (float16) in ``<table dir>/<sweep>/<trial_id>.safetensors``
    unless ``keep_checkpoints`` (default: the spec's ``[sweep].keep_checkpoints``, true) is false."""
    from se_core.runs.ablate.cluster import connect

    res = resources or sweep.resources
    if max_retries < 0:
        raise SpecError(f"--max-retries must be >= 0, got {max_retries}")
    if in_process and res.workers > 1:
        raise SpecError(f"--in-process trains in one process; a trial of {res.workers} workers needs Ray "
                        "(drop --in-process, or use --workers-per-trial 1)")
    table = Path(table)
    invocation = {"command": command, "commit": git_commit(), "hardware": hardware(), "started": _now(),
                  "cpus_per_trial": res.cpus, "gpus_per_trial": res.gpus, "workers_per_trial": res.workers,
                  "in_process": in_process,
                  "address": address or ""}
    keep = sweep.keep_checkpoints if keep_checkpoints is None else keep_checkpoints
    invocation["keep_checkpoints"] = keep
    s = _Sweep(sweep, table, Path(runs_root) / sweep.name, command, invocation, log, keep=keep)
    todo = []
    for t in s.trials:
        if t.trial_id in s.rows:
            s.keep(t, s.rows[t.trial_id])  # a row of an earlier run (or one killed before its copy): kept now
            continue
        s.prepare(t)
        row = s.finished_row(t)
        if row is not None:
            s.record(t, row, time.perf_counter())
        else:
            todo.append(t)
    log(f"sweep {sweep.name}: {len(s.trials)} trial(s), {len(s.rows)} in {table}, {len(todo)} to run "
        f"({res.cpus:g} CPU(s), {res.gpus:g} GPU(s) per trial"
        + (f" worker, {res.workers} data-parallel workers per trial)" if res.workers > 1 else ")"))
    s.save()
    if in_process:
        for t in todo:
            t0 = time.perf_counter()
            row = run_trial(s.trial_dir(t), threads=res.threads, progress=progress)
            assert row is not None  # one process is rank 0
            s.record(t, row, t0)
        s.write_progress(prog.FINISHED, [], "in process")  # no stale "running" file from an earlier Ray run
        return SweepResult(table, len(s.rows), len(s.trials), s.ran, [], {})
    if not todo:
        s.write_progress(prog.FINISHED, [], "")
        return SweepResult(table, len(s.rows), len(s.trials), s.ran, [], {})

    import ray

    state, label = prog.STOPPED, ""
    pending: list[Trial] = []
    with connect(address, log=log) as cluster:
        label = cluster.label
        s.prov["invocations"][-1]["cluster"] = label
        _check_fits(res, address or "", log)
        log(f"on {label}")
        # A data-parallel trial's task only waits on its Ray Train workers, which hold the trial's reservation.
        own = (res.cpus, res.gpus) if res.workers == 1 else (0, 0)
        # Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for a task that reserves no GPU: hide them, or every CPU
        # trial (and its Ray Train workers, which inherit the task's runtime env) would use GPU 0 unreserved.
        hide = {} if res.gpus else {"runtime_env": {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}}
        task = ray.remote(trial_task).options(num_cpus=own[0], num_gpus=own[1], max_retries=max_retries,
                                              retry_exceptions=False, name="se-lens-trial", **hide)
        t0 = {t.trial_id: time.perf_counter() for t in todo}
        refs = {task.remote(str(s.trial_dir(t)), res, progress, max_retries): t for t in todo}
        pending = list(todo)
        try:
            while refs:
                s.write_progress(prog.RUNNING, pending, label)
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=poll_s)
                for ref in ready:
                    t = refs.pop(ref)
                    pending.remove(t)
                    try:
                        s.record(t, ray.get(ref), t0[t.trial_id])
                    except ray.exceptions.RayError as e:  # the trial raised, or ran out of retries
                        s.fail(t, e)
            state = prog.FINISHED
        finally:
            s.write_progress(state, pending, label)
    failed = [t.trial_id for t in s.trials if t.trial_id in s.errors]
    return SweepResult(table, len(s.rows), len(s.trials), s.ran, failed, dict(s.errors))


def _check_fits(res: Resources, address: str, log: Callable[[str], None]) -> None:
    """Refuse (embedded) or warn (cluster, which may scale up) when the cluster cannot hold one trial
    (all its workers at once): Ray would wait forever."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    slots = sum(int(min(n.get("CPU", 0) / res.cpus, n.get("GPU", 0) / res.gpus if res.gpus else float("inf")))
                for n in nodes)
    if slots >= res.workers:
        return
    have = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes) or "no nodes"
    what = (f"the Ray nodes cannot hold a trial of {res.workers} workers of {res.cpus:g} CPU(s) and {res.gpus:g} GPU(s)"
            " each" if res.workers > 1 else f"no Ray node can hold a trial of {res.cpus:g} CPU(s) and {res.gpus:g} GPU(s)")
    msg = (f"{what} (nodes: {have}); lower --cpus-per-trial/--gpus-per-trial/--workers-per-trial or [resources] "
           "in the spec")
    if not address:
        raise SpecError(msg)
    log(f"warning: {msg}; trials wait until such a node joins")
