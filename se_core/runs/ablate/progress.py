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


_NUMBERS = ("updated_unix", "total", "done", "queued")
_TRIAL_KEYS = ("axis", "setting", "seed", "trial_id")


def _number_or_none(v: object) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _valid(doc: object) -> bool:
    """The shape the page reads: numbers where it computes, lists of trial dicts with their labels."""
    if not isinstance(doc, dict) or not isinstance(doc.get("state", ""), str):
        return False
    if not all(_number_or_none(doc.get(k)) for k in _NUMBERS):
        return False
    running, failed = doc.get("running") or [], doc.get("failed") or []
    if not isinstance(running, list) or not isinstance(failed, list):
        return False
    return all(isinstance(r, dict) and all(k in r for k in _TRIAL_KEYS)
               and all(_number_or_none(r.get(k)) for k in ("epoch", "epochs", "top1_err")) for r in running)


def read_progress(table: str | os.PathLike) -> dict | None:
    """The progress document beside ``table``, or None (none yet, unreadable, or not of the runner's shape)."""
    f = progress_path(table)
    try:
        doc = json.loads(f.read_text()) if f.is_file() else None
    except (OSError, ValueError):
        return None
    return doc if _valid(doc) else None
