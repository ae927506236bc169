"""A running sweep's live state, ``<table>.progress.json`` beside the table: trials done, running
(each with its epoch and current test error), queued and failed. The runner rewrites it atomically
every few seconds; the Ablations page polls it, so it never has to talk to Ray."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from se_core.util.files import atomic_write_bytes

RUNNING, FINISHED, STOPPED = "running", "finished", "stopped"


def progress_path(table: str | os.PathLike) -> Path:
    p = Path(table)
    return p.with_name(p.stem + ".progress.json")


def trial_epoch(trial_dir: Path) -> tuple[int, float | None]:
    """(epochs finished, test top-1 error in % after the last of them) from the trainer's ``metrics.csv``."""
    try:
        rows = list(csv.DictReader((trial_dir / "metrics.csv").read_text().splitlines()))
    except (OSError, csv.Error):
        return 0, None
    if not rows:
        return 0, None
    try:
        return int(rows[-1]["epoch"]), round(100.0 - float(rows[-1]["test_acc"]), 3)
    except (KeyError, TypeError, ValueError):
        return 0, None


def attempt_info(trial_dir: Path) -> dict:
    """What the trial's Ray task wrote when it (last) started: node, pid, start time."""
    try:
        return json.loads((trial_dir / "running.json").read_text())
    except (OSError, ValueError):
        return {}


def write_progress(path: Path, state: dict) -> None:
    """Write the whole progress document at once (temp file + rename: a reader never sees half of it)."""
    atomic_write_bytes(path, json.dumps(state, indent=1, default=str).encode())


def read_progress(table: str | os.PathLike) -> dict | None:
    """The progress document beside ``table``, or None (none yet, or unreadable)."""
    f = progress_path(table)
    try:
        doc = json.loads(f.read_text()) if f.is_file() else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
