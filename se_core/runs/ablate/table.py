"""The sweep's long result table: rows written whole and atomically, and read back."""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from se_core.runs import tables
from se_core.util.files import atomic_write_bytes


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
    key = lambda r: (int(r["index"]) if _fmt(r.get("index")) else 1 << 30, str(r["trial_id"]))
    for r in sorted(rows, key=key):
        w.writerow({k: _fmt(r.get(k)) for k in w.fieldnames})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of an existing table as dicts (validated by :func:`se_core.runs.tables.load_ablation_table`)."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if len(lines) <= 1:  # absent rows (or a header only): nothing finished yet
        return []
    df = tables.load_ablation_table(path)
    return [{k: (None if v is pd.NA or (isinstance(v, float) and v != v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]


def provenance_path(table: str | os.PathLike) -> Path:
    p = Path(table)
    return p.with_name(p.stem + ".provenance.json")


def read_provenance(table: str | os.PathLike) -> dict | None:
    """The sweep provenance written beside ``table`` (:func:`provenance_path`), or None (none, or unreadable)."""
    f = provenance_path(table)
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except (OSError, ValueError):
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
