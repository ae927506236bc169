"""The Ablations page's live view of a running sweep: the progress file the runner writes beside the table
(trials done / running / queued / failed, each running trial's epoch and current error), and how often the
page's results fragment re-reads it and the table, so rows chart as they land without user action."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.display import show
from dashboard.figures.ablations import progress_fig
from se_core.runs.ablate.progress import RUNNING, read_progress

REFRESH_S = 5.0
STALE_S = 60.0  # the runner rewrites the file every ~2 s; older than this, its driver is gone


def progress(table: Path | None) -> dict | None:
    """The progress document beside ``table`` (None for an upload, or when the table has none)."""
    return None if table is None else read_progress(table)


def is_live(prog: dict | None) -> bool:
    """A sweep whose driver is running now: state 'running' and rewritten within :data:`STALE_S`."""
    return bool(prog) and prog.get("state") == RUNNING and time.time() - float(prog.get("updated_unix") or 0) < STALE_S


def refresh_every(prog: dict | None) -> float | None:
    """``run_every`` of the results fragment: every few seconds while a sweep runs, else never."""
    return REFRESH_S if is_live(prog) else None


def panel(prog: dict | None) -> None:
    """Counts, the running trials' epochs and errors, and the failed trials with their error."""
    if not prog:
        return
    live = is_live(prog)
    total, done, running, failed = prog.get("total", 0), prog.get("done", 0), prog.get("running") or [], prog.get("failed") or []
    if live:
        st.info(f"Sweep **{prog.get('sweep', '?')}** running on {prog.get('cluster') or 'Ray'}: {done} of {total} trials "
                f"done, {len(running)} running, {prog.get('queued', 0)} queued, {len(failed)} failed (updated "
                f"{prog.get('updated', '?')}; this view refreshes every {REFRESH_S:g} s).")
    elif prog.get("state") == RUNNING:
        st.warning(f"The sweep's progress file was last updated {prog.get('updated', '?')} and its driver has stopped "
                   f"({done} of {total} trials done). Run the same `python -m se_core.ablate run` command again to "
                   "finish it; interrupted trials resume from their last epoch.")
    if running and (live or prog.get("state") == RUNNING):
        show(progress_fig(running), key="abl-progress", filename="ablation-progress")
    if failed:
        st.error(f"{len(failed)} trial(s) failed; running the sweep again retries them. See each trial's trial.log.")
        st.dataframe(pd.DataFrame(failed), hide_index=True, width="stretch")
