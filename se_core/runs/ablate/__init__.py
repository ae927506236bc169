"""Ablation sweeps over the SE design choices of paper Tables 10-16: ``python -m se_core.ablate``.

A TOML spec (``sweeps/default.toml``) gives the trainer settings, the seeds, and the axes; each
axis varies one field of the default SE config (r=16, avg squeeze, sigmoid gate, all stages,
standard integration, SE at the block output), like the paper's tables. Identical configs
across axes are trained once (the default SE config is one trial per seed, referenced by every
axis). Each trial (config x seed, id = hash of its ``TrainConfig``) is one
:func:`se_core.runs.train.train` run in ``runs/ablate/<sweep>/<trial_id>/`` and one row of a long CSV
table (schema: :mod:`se_core.runs.tables`), by default ``data/ablations/<sweep>.csv``, with a
provenance JSON beside it. Each finished trial's final weights are kept beside the table, compactly
(float16, ``<sweep>/<trial_id>.safetensors`` with a provenance sidecar; ``--no-keep-checkpoints`` or
``[sweep].keep_checkpoints = false`` turns it off), and open as pairs ``ablation:<sweep>/<trial_id>``
(:mod:`se_core.models.ablation_models`).

Runs on Ray: with no address an embedded local Ray sized to the machine (bound to 127.0.0.1,
token authentication on); ``--address auto|HOST:PORT|ray://HOST:10001`` joins a cluster. Each trial
is one Ray task reserving ``[resources]`` (or ``--cpus-per-trial``/``--gpus-per-trial``); Ray's
resource accounting decides how many run at once, and re-runs a trial whose worker or node died.

Resumable: the driver killed at any moment (SIGKILL included) and started again skips trials in
the table and resumes interrupted ones from their ``last.safetensors``, ending with the same table.
The table is rewritten whole to a temp file and renamed, so it never holds half a row; the live
state goes to ``<table>.progress.json`` beside it (read by the Ablations page).

Commands::

    python -m se_core.ablate run sweeps/default.toml [--address auto] [--cpus-per-trial 2] [--gpus-per-trial 0.25]
    python -m se_core.ablate plan sweeps/default.toml          # list the trials, train nothing
    python -m se_core.ablate summary sweeps/default.toml [--docs docs/ablations.md]  # per-axis Markdown tables
"""
from __future__ import annotations

from se_core.runs.ablate.cli import SUMMARY_BLOCK, default_table, main, summary_lines
from se_core.runs.ablate.cluster import Cluster, connect
from se_core.runs.ablate.progress import progress_path, read_progress
from se_core.runs.ablate.runner import SweepResult, make_row, run_sweep, run_trial, trial_task
from se_core.runs.ablate.spec import (
    NAME_RE,
    RESOURCE_KEYS,
    RUNS_ROOT,
    SE_KEYS,
    SECTIONS,
    SWEEP_KEYS,
    TRAIN_KEYS,
    Resources,
    SpecError,
    Sweep,
    Trial,
    load_spec,
    parse_spec,
    plan,
    trial_id,
)
from se_core.runs.ablate.table import provenance_path, read_provenance, read_rows, write_table

__all__ = ["Cluster", "NAME_RE", "RESOURCE_KEYS", "RUNS_ROOT", "Resources", "SECTIONS", "SE_KEYS", "SUMMARY_BLOCK",
           "SWEEP_KEYS", "SpecError", "Sweep", "SweepResult", "TRAIN_KEYS", "Trial", "connect",
           "default_table", "load_spec", "main", "make_row", "parse_spec", "plan", "progress_path", "provenance_path",
           "read_progress", "read_provenance", "read_rows", "run_sweep", "run_trial", "summary_lines", "trial_id",
           "trial_task", "write_table"]
