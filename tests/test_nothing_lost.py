"""Nothing is lost and nothing half-written is ever visible: SIGKILL at random moments, then resume.

The three long-running tools (the trainer ``python -m se_core.train``, the ablation runner
``python -m se_core.ablate run`` and the statistics pass ``python -m se_core.stats``) are each
killed with SIGKILL three times, at delays drawn from a seeded RNG after the process has started
real work, and then run to completion. The results must equal an uninterrupted run's:

- trainer: the final model's tensors bitwise (``--threads 1``), metrics except timing, gates;
- ablation runner: the result table except timing/date/invocation columns;
- statistics: every array of the ``.npz`` bitwise, its header and JSON sidecar except the date,
  wall time and code commit.

While the processes run, a watcher polls their output folders and fully parses every file under a
final name (not a hidden ``.tmp``; logs excepted) each time it changes: CSVs have all their columns
in every row, JSON loads, safetensors files load with every tensor, statistics files load.

Uses the shipped CIFAR-10 JPEG tarball for training (decoded once into ``.cache/``); random-init
checkpoints and a small ImageFolder of random images for the statistics pass.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from support import REPO_ROOT, needs_cifar, subprocess_env, tiny_sweep_spec, write_tiny_pair

from se_core.analysis import stats as S
from se_core.models.checkpoints import read_checkpoint
from se_core.runs import tables
from se_core.runs.train import METRIC_FIELDS, TrainConfig, train

SEED = 20260
KILLS = 3
MIN_LANDED = 2  # kills that must hit a running process (a kill drawn after the end is skipped)


# --------------------------------------------------------------------------- the watcher
def _parse_safetensors(data: bytes) -> None:
    from safetensors.torch import load

    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    for v in (header.get("__metadata__") or {}).values():
        if v.startswith(("{", "[")):
            json.loads(v)
    tensors = load(data)
    assert len(tensors) == len([k for k in header if k != "__metadata__"])


def _parse_csv(path: Path, text: str) -> None:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows, "empty CSV"
    header = rows[0]
    want = {"metrics.csv": METRIC_FIELDS}.get(path.name, tables.COLUMNS if path.parent.name == "tables" else ())
    assert not set(want) - set(header), f"columns missing: {set(want) - set(header)}"
    assert all(len(r) == len(header) for r in rows[1:] if r), "a row lacks columns"
    if len(rows) > 1 and path.parent.name == "tables":
        tables.load_ablation_table(path)


def check_file(path: Path) -> None:
    """Parse a file under a final name completely; raises when it is partial or corrupt."""
    data = path.read_bytes()
    if path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".csv":
        _parse_csv(path, data.decode("utf-8"))
    elif path.suffix == ".safetensors":
        _parse_safetensors(data)
    elif path.suffix == ".npz":
        S.load_stats(path)
    elif path.suffix == ".md":
        data.decode("utf-8")
    else:
        raise AssertionError(f"unexpected file {path.name}")


def final_files(dirs: list[Path]) -> list[Path]:
    out = []
    for d in dirs:
        if d.is_dir():
            out += [p for p in d.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".log"]
    return out


@dataclass
class Watcher:
    """Polls ``dirs`` in a thread and parses every final-named file whenever its (mtime, size) changes."""

    dirs: list[Path]
    parsed: int = 0
    problems: list[str] = field(default_factory=list)
    _seen: dict = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll()  # and once more at the end

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            time.sleep(0.01)

    def poll(self) -> None:
        for p in final_files(self.dirs):
            try:
                st = p.stat()
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                if self._seen.get(p) == key:
                    continue
                check_file(p)
            except FileNotFoundError:
                continue
            except Exception as e:  # noqa: BLE001 - recorded, asserted in the test
                self.problems.append(f"{p}: {type(e).__name__}: {e}")
                key = None
            self._seen[p] = key
            self.parsed += 1


def test_watcher_catches_a_file_written_in_place(tmp_path: Path) -> None:
    """The control: without an atomic rename, the watcher sees the partial file (so its silence means something)."""
    rows = "".join(f"{e},1,2,3,4,5,6,7\n" for e in range(1, 200))
    body = (",".join(METRIC_FIELDS) + "\n" + rows).encode()
    with Watcher([tmp_path]) as w:
        with open(tmp_path / "metrics.csv", "wb") as f:
            for i in range(0, len(body), 97):  # line-unaligned chunks, flushed one by one
                f.write(body[i:i + 97])
                f.flush()
                time.sleep(0.02)
    assert w.problems and all("metrics.csv" in p for p in w.problems)
    check_file(tmp_path / "metrics.csv")  # complete at the end


# --------------------------------------------------------------------------- kill-and-resume driver
@dataclass
class KillLog:
    landed: int = 0
    skipped: int = 0
    delays: list[float] = field(default_factory=list)


def run_with_kills(cmd: list[str], cwd: Path, started: Callable[[subprocess.Popen], bool], budget: Callable[[], float],
                   rng: random.Random, log: KillLog, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Launch ``cmd`` and SIGKILL it after ``started()`` plus a random share of ``budget()`` seconds until
    ``KILLS`` kills have landed (at most ``3 * KILLS`` tries); then once more to completion. Returns the last (complete) run."""
    scale = 1.0  # a kill drawn after the process ended narrows later draws, so KILLS kills land even on a noisy machine
    for _ in range(3 * KILLS):
        if log.landed >= KILLS:
            break
        before = budget() * scale
        proc = subprocess.Popen(cmd, cwd=cwd, env=subprocess_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not started(proc) and proc.poll() is None:
                assert time.monotonic() < deadline, "the process never started its work"
                time.sleep(0.002)
            delay = rng.uniform(0.05, 0.8) * before
            log.delays.append(round(delay, 2))
            try:
                proc.wait(timeout=delay)
                log.skipped += 1  # ended before the kill
                scale *= 0.5
                assert proc.returncode == 0, proc.stderr.read().decode()[-3000:]
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                log.landed += 1
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it started (trial processes die with it anyway)
            except (ProcessLookupError, PermissionError):
                pass
            proc.stderr.close()
    r = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _changed(p: Path) -> Callable[[], bool]:
    """True once ``p`` was (re)written after this call: the launch got past its set-up."""
    t0 = _mtime(p)
    return lambda: _mtime(p) != t0


# --------------------------------------------------------------------------- trainer
TRAIN = dict(arch="se_resnet20_cifar", epochs=3, train_subset=192, test_subset=50, probe_per_class=1, batch_size=64)


@needs_cifar
@pytest.mark.timeout(900)
def test_trainer_killed_three_times_ends_bitwise_equal(tmp_path: Path) -> None:
    cfg = TrainConfig(**TRAIN)
    ref = tmp_path / "ref"
    with torch.random.fork_rng(devices=[]):
        train(cfg, ref, threads=1, progress=False)
    t_ref = (_mtime(ref / "final.json") - _mtime(ref / "config.json")) / 1e9  # its training, after the set-up

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "se_core.train", "--out", str(out), "--threads", "1", "--no-progress",
           "--arch", cfg.arch, "--epochs", str(cfg.epochs), "--train-subset", str(cfg.train_subset),
           "--test-subset", str(cfg.test_subset), "--probe-per-class", str(cfg.probe_per_class),
           "--batch-size", str(cfg.batch_size)]

    def epochs_done() -> int:
        try:
            return len(pd.read_csv(out / "metrics.csv"))
        except (FileNotFoundError, pd.errors.EmptyDataError):
            return 0

    rng, kills = random.Random(SEED), KillLog()
    with Watcher([out]) as w:
        state = {}

        def started(proc: subprocess.Popen) -> bool:  # config.json is (re)written once data and model are ready
            return state["cfg"]()

        def budget() -> float:
            state["cfg"] = _changed(out / "config.json")
            return t_ref * max(1, cfg.epochs - epochs_done()) / cfg.epochs

        run_with_kills(cmd, REPO_ROOT, started, budget, rng, kills)
    assert not w.problems, w.problems[:5]
    assert w.parsed >= 6 and kills.landed >= MIN_LANDED, (w.parsed, kills)
    print(f"\ntrainer: reference {t_ref:.1f} s; kills landed {kills.landed}, after the end {kills.skipped}, "
          f"delays {kills.delays} s; {w.parsed} file versions parsed")

    a, _ = read_checkpoint(ref / "model.safetensors")
    b, _ = read_checkpoint(out / "model.safetensors")
    assert set(a) == set(b)
    assert [k for k in a if not (a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]))] == []
    timing = ["seconds", "img_per_s"]
    pd.testing.assert_frame_equal(pd.read_csv(ref / "metrics.csv").drop(columns=timing),
                                  pd.read_csv(out / "metrics.csv").drop(columns=timing))
    assert json.loads((ref / "gates.json").read_text()) == json.loads((out / "gates.json").read_text())
    assert json.loads((ref / "final.json").read_text())["final"] == json.loads((out / "final.json").read_text())["final"]
    for p in final_files([out]):
        check_file(p)


# --------------------------------------------------------------------------- ablation runner
SPEC = tiny_sweep_spec("lost", "[0]", 2)


@needs_cifar
@pytest.mark.timeout(900)
def test_ablation_runner_killed_three_times_gives_the_same_table(tmp_path: Path) -> None:
    spec = tmp_path / "lost.toml"
    spec.write_text(SPEC)

    def cmd(base: Path) -> list[str]:
        return [sys.executable, "-m", "se_core.ablate", "run", str(spec), "--table", str(base / "tables" / "t.csv"),
                "--runs-root", str(base / "runs"), "--cpus-per-trial", "1"]

    t0 = time.perf_counter()
    r = subprocess.run(cmd(tmp_path / "ref"), cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    want = tables.load_ablation_table(tmp_path / "ref" / "tables" / "t.csv")
    n_trials = len(want)
    # kills are timed from a trial's start, so the budget is the trials' training time (what the reference
    # run's epochs took, trials running side by side on the cores), not the Ray start-up before it
    epochs = sum(pd.read_csv(m)["seconds"].sum() for m in (tmp_path / "ref" / "runs").glob("*/*/metrics.csv"))
    t_ref = min(time.perf_counter() - t0, max(1.0, epochs / max(1, os.cpu_count() or 1)))

    base = tmp_path / "killed"
    table = base / "tables" / "t.csv"
    logs = base / "runs" / "lost"

    def launches() -> int:  # the runner appends '=== <date> <command>' to a trial's log when it starts it
        return sum(p.read_text(errors="replace").count("\n=== ") for p in logs.glob("*/trial.log"))

    def rows() -> int:
        try:
            return len(tables.load_ablation_table(table))
        except tables.TableError:
            return 0

    rng, kills, state = random.Random(SEED + 1), KillLog(), {}

    def budget() -> float:
        n = launches()
        state["started"] = lambda: launches() > n
        return t_ref * max(1, n_trials - rows()) / n_trials

    with Watcher([base / "tables", base / "runs"]) as w:
        run_with_kills(cmd(base), REPO_ROOT, lambda proc: state["started"](), budget, rng, kills)
    assert not w.problems, w.problems[:5]
    assert w.parsed >= 8 and kills.landed >= MIN_LANDED, (w.parsed, kills)
    print(f"\nablation runner: reference {t_ref:.1f} s; kills landed {kills.landed}, after the end {kills.skipped}, "
          f"delays {kills.delays} s; {w.parsed} file versions parsed")

    got = tables.load_ablation_table(table)
    assert list(got["trial_id"]) == list(want["trial_id"])
    stable = lambda df: df.drop(columns=list(tables.VOLATILE)).reset_index(drop=True)
    pd.testing.assert_frame_equal(stable(got), stable(want))
    prov = json.loads((base / "tables" / "t.provenance.json").read_text())
    assert prov["trials_done"] == n_trials and prov["finished"] and len(prov["invocations"]) >= 2
    for p in final_files([base]):
        check_file(p)


# --------------------------------------------------------------------------- statistics pass
def _folder(root: Path, per_class: int = 150) -> Path:
    rng = np.random.default_rng(5)
    for c in ("ants", "bees", "cows", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(root / c / f"{i}.png")
    return root


def reads_from(proc: subprocess.Popen, roots: tuple[str, ...]) -> bool:
    """Whether ``proc`` has a file under one of ``roots`` open right now (it started reading its inputs)."""
    try:
        fds = os.listdir(f"/proc/{proc.pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(roots):
                return True
        except OSError:
            continue
    return False


VOLATILE_META = (("wall_time_s",), ("provenance", "date"), ("provenance", "commit"))


def _stable_header(h: dict) -> dict:
    h = json.loads(json.dumps(h))
    for path in VOLATILE_META:
        d = h.get("meta", h)
        for k in path[:-1]:
            d = d.get(k, {})
        d.pop(path[-1], None)
    return h


def _stats_contents(npz: Path) -> tuple[dict, dict, dict]:
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    header = _stable_header(json.loads(arrays.pop("__header__").tobytes()))
    side = json.loads(npz.with_suffix(".npz.json").read_text())
    side_meta = _stable_header(side)
    return arrays, header, side_meta


@pytest.mark.timeout(600)
def test_stats_pass_killed_three_times_writes_the_same_file(tmp_path: Path) -> None:
    ckpt = write_tiny_pair(tmp_path / "data")["se_resnet20_cifar"]
    folder = _folder(tmp_path / "images")
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    cmd = [sys.executable, "-m", "se_core.stats", "--checkpoint", str(ckpt), "--data", str(folder), "--out",
           "stats.npz", "--batch-size", "8"]

    # the reference pass, timed from the moment it opens its inputs (its real work) to its end
    inputs = (str(ckpt), str(folder) + os.sep)
    t_launch = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ref, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_start = None
    while proc.poll() is None:
        if t_start is None and reads_from(proc, inputs):
            t_start = time.monotonic()
        time.sleep(0.001)
    t_end = time.monotonic()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 0, err[-3000:]
    # On a quiet machine the tiny pass can open and close its inputs between two polls: then time it from
    # launch (a longer window, so some kills land before the real work; run_with_kills retries until enough land).
    t_ref = t_end - (t_start if t_start is not None else t_launch)

    rng, kills = random.Random(SEED + 2), KillLog()

    with Watcher([run]) as w:
        run_with_kills(cmd, run, lambda proc: reads_from(proc, inputs), lambda: t_ref, rng, kills)
    assert not w.problems, w.problems[:5]
    assert w.parsed >= 2 and kills.landed >= MIN_LANDED, (w.parsed, kills)
    print(f"\nstats pass: reference {t_ref:.1f} s; kills landed {kills.landed}, after the end {kills.skipped}, "
          f"delays {kills.delays} s; {w.parsed} file versions parsed")

    a_arrays, a_header, a_side = _stats_contents(ref / "stats.npz")
    b_arrays, b_header, b_side = _stats_contents(run / "stats.npz")
    assert list(a_arrays) == list(b_arrays)
    assert all(a_arrays[k].dtype == b_arrays[k].dtype and np.array_equal(a_arrays[k], b_arrays[k]) for k in a_arrays)
    assert a_header == b_header and a_side == b_side
    assert S.load_stats(run / "stats.npz").n_images == 600
    assert sorted(p.name for p in final_files([run])) == ["stats.npz", "stats.npz.json"]
