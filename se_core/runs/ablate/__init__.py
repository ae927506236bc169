"""Ablation sweeps over the SE design choices of paper Tables 10-16: ``python -m se_core.ablate``.

A TOML spec (``sweeps/default.toml``) gives the trainer settings, the seeds, and the axes; each
axis varies one field of the default SE config (r=16, avg squeeze, sigmoid gate, all stages,
standard integration, SE at the block output), like the paper's tables. Identical configs
across axes are trained once (the default SE config is one trial per seed, referenced by every
axis). Each trial (config x seed, id = hash of its ``TrainConfig``) is one
:func:`se_core.runs.train.train` run in ``runs/ablate/<sweep>/<trial_id>/`` and one row of a long CSV
table (schema: :mod:`se_core.runs.tables`), by default ``data/ablations/<sweep>.csv``, with a
provenance JSON beside it.

Resumable: killed at any moment (SIGKILL included) and started again, the runner skips trials in
the table, resumes the interrupted one from its ``last.safetensors``, and ends with the same
table. The table is rewritten whole to a temp file and renamed, so it never holds half a row.

Commands::

    python -m se_core.ablate run sweeps/default.toml [--jobs N] [--shard i/k] [--launcher torchrun --nproc P]
    python -m se_core.ablate plan sweeps/default.toml          # list the trials, train nothing
    python -m se_core.ablate merge A.csv B.csv -o out.csv      # join shard tables
    python -m se_core.ablate summary sweeps/default.toml [--docs docs/ablations.md]  # per-axis Markdown tables
"""
from __future__ import annotations

from se_core.runs.ablate.cli import SUMMARY_BLOCK, default_table, main, summary_lines
from se_core.runs.ablate.runner import (
    SweepResult,
    available_cores,
    make_row,
    run_sweep,
    run_trial,
    threads_per_trial,
    trial_command,
)
from se_core.runs.ablate.spec import (
    NAME_RE,
    RUNS_ROOT,
    SE_KEYS,
    SECTIONS,
    SWEEP_KEYS,
    TABLE_DIR,
    TRAIN_KEYS,
    SpecError,
    Sweep,
    Trial,
    load_spec,
    parse_shard,
    parse_spec,
    plan,
    trial_id,
)
from se_core.runs.ablate.table import merge_tables, provenance_path, read_provenance, read_rows, write_table

__all__ = ["read_provenance", "NAME_RE", "RUNS_ROOT", "SECTIONS", "SE_KEYS", "SUMMARY_BLOCK", "SWEEP_KEYS", "SpecError", "Sweep", "SweepResult", "TABLE_DIR", "TRAIN_KEYS", "Trial", "available_cores", "default_table", "load_spec", "main", "make_row", "merge_tables", "parse_shard", "parse_spec", "plan", "provenance_path", "read_rows", "run_sweep", "run_trial", "summary_lines", "threads_per_trial", "trial_command", "trial_id", "write_table"]
