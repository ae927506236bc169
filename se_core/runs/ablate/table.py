"""The sweep's long result table: rows written whole and atomically, read back, merged across shards."""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from se_core.runs import tables
from se_core.runs.tables import TableError
from se_core.util.files import atomic_write_bytes
from se_core.util.provenance import git_commit


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


# --------------------------------------------------------------------------------------------- trial


def merge_tables(paths: list[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Join shard tables into ``out``; a trial in two tables must agree on everything but
    :data:`se_core.runs.tables.VOLATILE` columns (timing, date, command, hardware, commit)."""
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
