"""What every provenance record names: the code's commit and the machine it ran on."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from se_core.config import REPO_ROOT


def git_commit() -> str:
    """Commit hash of the code that runs (``+dirty`` when the tree has uncommitted changes)."""
    try:
        h = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "se_core"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (h or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> str:
    """One line naming the machine: CPU model, core count, threads, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} threads={torch.get_num_threads()}{gpu}"
