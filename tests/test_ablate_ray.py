"""Ablation sweeps on a real Ray, no mocks: the embedded local instance (loopback only, token auth on),
the driver SIGKILLed and re-run, and a two-node cluster started here with ``ray start --head`` plus
worker nodes joining it, one of which is killed mid-trial. Each fault ends with the same table as an
uninterrupted run, and each interrupted trial resumed from its last checkpoint.

Lean by design: 2 tiny trials of 3 epochs (128 training images), one CPU per node, every Ray
process started by a test killed by its session id in ``finally``, session files in a temp dir.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from support import REPO_ROOT, needs_cifar, subprocess_env, tiny_sweep_spec

from se_core.runs import tables
from se_core.runs.ablate import connect, load_spec, plan, read_progress, run_sweep
from se_core.runs.tables import load_ablation_table

pytestmark = [needs_cifar, pytest.mark.timeout(900)]
RAY = str(Path(sys.executable).with_name("ray"))
TOKEN = secrets.token_hex(16)
# Ray nices its workers to 15; on a machine busy with other work that starves the trials for minutes.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "RAY_worker_niceness": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    return subprocess_env(**RAY_ENV, **extra)


def _processes() -> dict[int, list[str]]:
    """Every process now: pid -> the fields of its ``/proc/<pid>/stat`` after the name (state, ppid, pgrp, session, ...)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return out


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a Ray node, or a driver with its embedded Ray): all of
    them were started by this test in a session of their own."""
    for pid, fields in _processes().items():
        if int(fields[3]) == sid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _session_alive(sid: int) -> bool:
    return any(int(fields[3]) == sid and fields[0] != "Z" for fields in _processes().values())


def _pid_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait(cond: Callable[[], bool], what: str, proc: subprocess.Popen | None = None, timeout: float = 300.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the driver ended early (exit {proc.returncode})")
        assert time.monotonic() - t0 < timeout, f"{what}: not reached in {timeout:.0f} s"
        time.sleep(0.05)


def _epochs(d: Path) -> int:
    try:
        return max(0, len((d / "metrics.csv").read_text().strip().splitlines()) - 1)
    except OSError:
        return 0


def _mid_trial(d: Path) -> bool:
    """A checkpoint exists and the trial has not finished: the moment a kill costs the most."""
    return _epochs(d) >= 1 and (d / "last.safetensors").is_file() and not (d / "final.json").is_file()


def _segments(d: Path) -> list[int]:
    """The epochs each training call of a finished trial started from (one per attempt that trained)."""
    return [s["start_epoch"] for s in json.loads((d / "final.json").read_text())["provenance"]["segments"]]


def stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=list(tables.VOLATILE)).reset_index(drop=True)


@pytest.fixture(scope="module")
def work() -> Iterator[dict]:
    """The spec, an uninterrupted reference table (no Ray), and a short temp dir (Ray's socket paths are length-limited)."""
    tmp = Path(tempfile.mkdtemp(prefix="selray", dir="/tmp"))
    try:
        spec = tmp / "tiny.toml"
        spec.write_text(tiny_sweep_spec(seeds="[0]", epochs=3))
        sweep = load_spec(spec)
        ref = tmp / "ref.csv"
        run_sweep(sweep, table=ref, runs_root=tmp / "ref_runs", in_process=True, command="ref", log=lambda s: None)
        yield {"tmp": tmp, "spec": spec, "sweep": sweep, "ref": ref, "trials": plan(sweep)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _driver(work: dict, name: str, *extra: str, **env: str) -> subprocess.Popen:
    tmp = work["tmp"]
    return subprocess.Popen([sys.executable, "-m", "se_core.ablate", "run", str(work["spec"]), "--table",
                             str(tmp / f"{name}.csv"), "--runs-root", str(tmp / f"{name}_runs"), *extra],
                            cwd=REPO_ROOT, env=_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 400.0) -> str:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        _kill_session(proc.pid)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return err.decode(errors="replace")


def _kill_driver(proc: subprocess.Popen) -> None:
    _kill_session(proc.pid)  # the driver and, embedded, its whole Ray instance
    proc.wait(timeout=30)
    proc.stderr.close()
    _wait(lambda: not _session_alive(proc.pid), "driver's processes gone", timeout=30)


def _assert_same_table(work: dict, table: Path) -> None:
    got, want = load_ablation_table(table), load_ablation_table(work["ref"])
    assert list(got["trial_id"]) == [t.trial_id for t in work["trials"]]
    pd.testing.assert_frame_equal(stable(got), stable(want))


def test_embedded_ray_listens_on_loopback_only_with_token_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in RAY_ENV.items():
        monkeypatch.setenv(k, v)
    import ray
    from ray._private.services import node_ip_address_from_perspective

    outward = node_ip_address_from_perspective()
    tmp = tempfile.mkdtemp(prefix="selray", dir="/tmp")
    monkeypatch.setenv("SE_LENS_RAY_TMPDIR", tmp)
    try:
        with connect("", cpus=1) as cluster:
            assert cluster.address == "" and cluster.nodes == 1 and cluster.cpus == 1
            assert ray.util.get_node_ip_address() == "127.0.0.1"
            host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
            assert host == "127.0.0.1"
            socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
            if outward != "127.0.0.1":  # the GCS is not reachable from the network
                with pytest.raises(OSError):
                    socket.create_connection((outward, int(port)), timeout=5).close()
            assert os.environ["RAY_AUTH_MODE"] == "token"
            # a client without the token is refused (Ray keeps retrying, so watch its log, then stop it)
            log = Path(tmp) / "intruder.log"
            with open(log, "wb") as f:
                intruder = subprocess.Popen([sys.executable, "-c", f"import ray; ray.init(address='127.0.0.1:{port}'); "
                                             "print('joined', flush=True)"], env={**_env(), "RAY_AUTH_TOKEN": "wrong", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
                                            stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                _wait(lambda: "InvalidAuthToken" in log.read_text(errors="replace") or intruder.poll() is not None,
                      "the intruder refused", timeout=120)
            finally:
                _kill_session(intruder.pid)
                intruder.wait(timeout=30)
            text = log.read_text(errors="replace")
            assert "InvalidAuthToken" in text and "joined" not in text
            # a trial larger than every node is refused up front instead of waiting forever
            from se_core.runs.ablate import Resources, SpecError
            work_dir = Path(tmp) / "big"
            spec = work_dir / "tiny.toml"
            work_dir.mkdir()
            spec.write_text(tiny_sweep_spec(seeds="[0]", epochs=1))
            with pytest.raises(SpecError, match="no Ray node can hold a trial of 4 CPU"):
                run_sweep(load_spec(spec), table=work_dir / "t.csv", runs_root=work_dir, resources=Resources(4.0),
                          log=lambda s: None)
            with pytest.raises(SpecError, match="cannot hold a trial of 2 workers of 1 CPU"):  # all its workers at once
                run_sweep(load_spec(spec), table=work_dir / "t.csv", runs_root=work_dir,
                          resources=Resources(1.0, 0.0, 2), log=lambda s: None)
        assert not ray.is_initialized()
        assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ  # not left to this process's later children
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_driver_sigkill_and_rerun_on_embedded_ray(work: dict) -> None:
    table, runs = work["tmp"] / "emb.csv", work["tmp"] / "emb_runs" / "tiny"
    first, second = (runs / t.trial_id for t in work["trials"])
    ray_tmp = tempfile.mkdtemp(prefix="selray", dir="/tmp")
    try:
        p = _driver(work, "emb", "--cpus-per-trial", "1", SE_LENS_RAY_TMPDIR=ray_tmp)
        _wait(lambda: _mid_trial(first) or _mid_trial(second), "a trial mid-way", p)
        killed = first if _mid_trial(first) else second
        at = _epochs(killed)
        prog = read_progress(table)
        assert prog and prog["state"] == "running" and prog["total"] == 2
        _kill_driver(p)
        assert not table.exists() or len(load_ablation_table(table)) <= 1
        err = _finish(_driver(work, "emb", "--cpus-per-trial", "1", SE_LENS_RAY_TMPDIR=ray_tmp))
        assert "2/2 trial(s)" in err
        _assert_same_table(work, table)
        starts = _segments(killed)
        assert len(starts) >= 2 and starts[-1] >= at, starts  # resumed from its checkpoint, not from scratch
        prog = read_progress(table)
        assert prog["state"] == "finished" and prog["done"] == 2 and prog["running"] == [] and prog["failed"] == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    """A real local Ray cluster: a head with no CPUs (trials only run on worker nodes) on 127.0.0.1,
    worker nodes joined on demand by ``add_node``; every process killed at the end."""
    tmp = tempfile.mkdtemp(prefix="selray", dir="/tmp")
    port, client_port = _free_port(), _free_port()  # ephemeral ports: outside Ray's worker port range
    sessions: list[int] = []
    try:
        head = subprocess.Popen([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                                 "--ray-client-server-port", str(client_port), "--num-cpus", "0", "--temp-dir", tmp,
                                 "--include-dashboard", "false", "--disable-usage-stats"],
                                # the head's Ray Client server waits 30 s for a client's server process by default:
                                # too short on two cores busy with the suite and training
                                env=_env(RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S="300"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        sessions.append(head.pid)
        _, err = head.communicate(timeout=180)
        assert head.returncode == 0, err.decode(errors="replace")[-2000:]

        def add_node(cpus: int) -> int:
            node = subprocess.Popen([RAY, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", str(cpus), "--block",
                                     "--disable-usage-stats"], env=_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            sessions.append(node.pid)
            return node.pid

        yield {"address": f"127.0.0.1:{port}", "client": f"ray://127.0.0.1:{client_port}", "add_node": add_node,
               "tmp": Path(tmp)}
    finally:
        for sid in sessions:
            _kill_session(sid)
        shutil.rmtree(tmp, ignore_errors=True)


def test_worker_node_and_driver_killed_on_a_two_node_cluster(work: dict, cluster: dict) -> None:
    table, runs = work["tmp"] / "clu.csv", work["tmp"] / "clu_runs" / "tiny"
    dirs = [runs / t.trial_id for t in work["trials"]]
    node_a = cluster["add_node"](1)
    args = ("--address", cluster["address"], "--cpus-per-trial", "1")
    p = _driver(work, "clu", *args)
    try:
        # 1) the worker node dies mid-trial; a second node joins; Ray re-runs the trial there
        _wait(lambda: any(map(_mid_trial, dirs)), "a trial mid-way on node A", p)
        victim = next(d for d in dirs if _mid_trial(d))
        at_node_kill = _epochs(victim)
        prog = read_progress(table)
        assert prog and prog["state"] == "running" and "Ray cluster" in prog["cluster"]
        _kill_session(node_a)
        cluster["add_node"](2)

        # 2) the driver dies while a trial runs on the new node (its progress entry shows the epoch reached)
        def running_mid() -> Path | None:
            prog = read_progress(table) or {}
            for r in prog.get("running", []):
                d = runs / r["trial_id"]
                if r["epoch"] >= 1 and r["top1_err"] is not None and r["node_ip"] and _mid_trial(d) and (
                        d != victim or _epochs(d) > at_node_kill):
                    return d
            return None

        _wait(lambda: running_mid() is not None, "a trial mid-way on node B, in the progress file", p)
        second = running_mid()
        assert second is not None
        at_driver_kill = _epochs(second)
        orphan = json.loads((second / "running.json").read_text())["pid"]
        _kill_driver(p)
        # Ray stops a dead driver's trials: no orphan keeps training beside the re-run
        _wait(lambda: _pid_gone(orphan), "the dead driver's trial stopped", timeout=120)
        # 3) the same command again finishes the sweep
        p = _driver(work, "clu", *args)
        assert "2/2 trial(s)" in _finish(p)
    finally:
        _kill_session(p.pid)
    _assert_same_table(work, table)
    starts = _segments(victim)  # every re-run of the node's victim started from its checkpoint or later
    assert len(starts) >= 2 and all(s >= at_node_kill for s in starts[1:]), starts
    starts = _segments(second)
    assert len(starts) >= 2 and starts[-1] >= at_driver_kill, starts
    assert (victim / "trial.log").read_text().count("=== ") >= 2  # one section per attempt


def test_sweep_through_ray_client(work: dict, cluster: dict) -> None:
    """``--address ray://host:port`` (Ray Client, the ``ray[client]`` extra) runs the sweep on the cluster
    from outside it and gives the same table."""
    cluster["add_node"](1)
    p = _driver(work, "client", "--address", cluster["client"], "--cpus-per-trial", "1")
    try:
        err = _finish(p)
    except AssertionError as e:  # the head's Ray Client logs say why a session's server did not start
        logs = sorted((cluster["tmp"] / "session_latest" / "logs").glob("ray_client_server*.err"))
        raise AssertionError("\n".join([str(e), *(f"--- {f.name}:\n{f.read_text(errors='replace')[-2000:]}"
                                                    for f in logs)])) from None
    assert "2/2 trial(s)" in err
    _assert_same_table(work, work["tmp"] / "client.csv")
    assert "Ray cluster ray://" in json.loads((work["tmp"] / "client.provenance.json").read_text())["invocations"][-1]["cluster"]


def _descendants(pid: int) -> list[int]:
    """Living (not zombie) processes below ``pid``."""
    parent = {p: int(f[1]) for p, f in _processes().items() if f[0] != "Z"}
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def test_data_parallel_trial_through_ray_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial of 2 workers runs as 2 DDP ranks (gloo) under Ray Train's TorchTrainer on the embedded Ray,
    resuming the epoch a one-process attempt checkpointed; its row lands with world size 2 and its checkpoint loads."""
    import ray
    import torch

    from se_core.models.build import build_from_checkpoint
    from se_core.runs.train import train

    for k, v in {**RAY_ENV, "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SE_LENS_RAY_ADDRESS", raising=False)
    before = set(_descendants(os.getpid()))  # e.g. the module's cluster, torn down after the last test
    tmp = Path(tempfile.mkdtemp(prefix="selray", dir="/tmp"))
    monkeypatch.setenv("SE_LENS_RAY_TMPDIR", str(tmp / "ray"))
    try:
        spec = tmp / "dp.toml"
        spec.write_text(tiny_sweep_spec(name="dp", epochs=2).replace("allow_short = true", "allow_short = true\n"
                        "baseline = false") + "[resources]\nworkers_per_trial = 2\n")
        sweep = load_spec(spec)
        assert sweep.resources.workers == 2
        (trial,) = plan(sweep)
        d = tmp / "runs" / "dp" / trial.trial_id
        train(trial.config, d, threads=1, progress=False, stop_after_epochs=1)  # an attempt killed after epoch 1
        table = tmp / "dp.csv"
        res = run_sweep(sweep, table=table, runs_root=tmp / "runs", log=lambda s: None)
        assert (res.done, res.failed) == (1, []), res.errors
        assert not ray.is_initialized()
        row = load_ablation_table(table).iloc[0]
        assert row["trial_id"] == trial.trial_id and int(row["world_size"]) == 2
        prov = json.loads((d / "final.json").read_text())["provenance"]
        assert prov["world_size"] == 2
        assert [(s["start_epoch"], s["world_size"]) for s in prov["segments"]] == [(0, 1), (1, 2)]  # resumed
        log = (d / "trial.log").read_text()
        assert "Ray Train worker rank 0/2" in log and "Ray Train worker rank 1/2" in log  # both ranks trained
        assert json.loads((d / "running.json").read_text())["world_size"] == 2
        model, meta = build_from_checkpoint(d / "model.safetensors")
        assert meta.arch == trial.config.arch
        with torch.no_grad():
            assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        prog = read_progress(table)
        assert prog["state"] == "finished" and prog["done"] == 1 and prog["failed"] == []
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    # the embedded Ray and its Train workers are gone
    _wait(lambda: not set(_descendants(os.getpid())) - before, "no process left by the trial", timeout=30)
