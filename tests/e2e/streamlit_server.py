"""A real ``streamlit run dashboard/app.py`` on a free loopback port: started, health-checked, stopped.

Shared by the browser tests' ``app_server`` fixture (conftest.py) and the browser load bench (bench/load_sessions.py).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 90.0


class ServerError(RuntimeError):
    """The server exited or never became healthy; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            return r.status == 200 and r.read().decode().strip() == "ok"
    except (urllib.error.URLError, OSError):
        return False


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def launch(env: dict[str, str], log: Path, cpus: set[int] | None = None) -> tuple[subprocess.Popen, str]:
    """Start the app with ``env`` (its output to ``log``), on the cores ``cpus`` when given (Linux); (process,
    URL) once healthy, else ServerError."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           # files edited while the tests run must not put a "source changed" prompt over the pages
           "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while not healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {proc.returncode}" if proc.poll() is not None else \
                f"not healthy after {HEALTH_TIMEOUT_S:.0f} s"
            stop(proc)
            raise ServerError(f"streamlit server {state}; log tail:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return proc, url
