"""``python -m se_core.ablate``: run (on Ray), plan and summarise sweeps."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

import pandas as pd

from se_core import config
from se_core.config import REPO_ROOT
from se_core.runs import tables
from se_core.runs.ablate.runner import run_sweep
from se_core.runs.ablate.spec import RUNS_ROOT, SpecError, Sweep, load_spec, plan
from se_core.runs.tables import TableError
from se_core.util.docblock import fill_block
from se_core.util.paths import repo_relative

SUMMARY_BLOCK = "sweep-results"


def summary_lines(sweep: Sweep, table: str | os.PathLike, spec_path: str | os.PathLike) -> list[str]:
    """The Markdown summary of ``table`` (a run of ``sweep``): how many of the planned trials it holds,
    what they are, then :func:`se_core.runs.tables.summary_markdown` beside the paper's reported rows."""
    df = tables.load_ablation_table(table)
    try:
        ref = tables.load_reference()
    except TableError:
        ref = None
    ids = {t.trial_id for t in plan(sweep)}
    foreign = int((~df["trial_id"].isin(ids)).sum())
    head = (f"Written by `python -m se_core.ablate summary {repo_relative(spec_path)} --docs` from `{repo_relative(table)}`: "
            f"{len(df) - foreign} of {len(ids)} trials of `{sweep.name}` ({sweep.description})"
            + (f", plus {foreign} row(s) that are not trials of this spec" if foreign else "") + ". "
            f"Top-1 error in % on {_test_images(df)} (mean ± sample std over seeds). Δ in points ± its standard "
            f"error, from the seed-to-seed std pooled over all configs with two or more seeds: {_sigma(df)}. "
            + ("Paper columns: reported by Hu et al. (TPAMI v4), SE-ResNet-50 on ImageNet, for comparing trends only."
               if ref is not None else "Paper columns: the reference table data/reference/ablations.csv is absent."))
    return [head, "", *tables.summary_markdown(df, ref)]


def _sigma(df: pd.DataFrame) -> str:
    sigma, dof = tables.pooled_seed_std(df)
    return f"σ = {sigma:.2f} pt ({dof} degrees of freedom)" if dof else "none yet (no config has two seeds)"


def _test_images(df: pd.DataFrame) -> str:
    n = set(df["test_n"].dropna().astype(int)) if "test_n" in df else set()
    return f"the {n.pop():,} test images" if len(n) == 1 else "the test set (sizes differ between rows; see test_n)"


def default_table(sweep: Sweep) -> Path:
    """Where a sweep's table goes unless ``--out`` says otherwise: beside the app's shipped tables."""
    return config.ablations_dir() / f"{sweep.name}.csv"


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():  # SIGTERM (kill, a Slurm time limit) ->
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt -> finally: Ray shut down
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".toml"):
        argv = ["run", *argv]
    ap = argparse.ArgumentParser(prog="python -m se_core.ablate", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) a sweep on Ray")
    r.add_argument("spec", help="TOML sweep spec, e.g. sweeps/default.toml")
    r.add_argument("--table", help="result CSV (default data/ablations/<sweep>.csv)")
    r.add_argument("--runs-root", default=str(RUNS_ROOT),
                   help="trial run dirs go to RUNS_ROOT/<sweep>/<trial_id>/ (on a cluster: a path every node sees)")
    r.add_argument("--address", default=None,
                   help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default $SE_LENS_RAY_ADDRESS; "
                        "unset: an embedded local Ray on 127.0.0.1 with token auth)")
    r.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs Ray reserves per trial (default [resources] "
                   "in the spec, else 1); also the trial's torch threads")
    r.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial; a fraction (0.25) lets several trials share one GPU (default [resources], else 0)")
    r.add_argument("--workers-per-trial", type=int, default=None,
                   help="data-parallel workers per trial (Ray Train, one DDP rank each; --cpus/--gpus-per-trial are "
                        "then per worker; default [resources], else 1)")
    r.add_argument("--max-retries", type=int, default=3,
                   help="re-runs of a trial whose worker or node died (each resumes from its last checkpoint)")
    r.add_argument("--in-process", action="store_true", help="no Ray: train in this process, one trial at a time (debugging)")
    r.add_argument("--progress", action="store_true", help="per-batch progress bars in each trial's log")
    r.add_argument("--no-keep-checkpoints", dest="keep", action="store_false", default=None,
                   help="do not keep finished trials' final weights (float16) in <table dir>/<sweep>/ (default: "
                        "[sweep].keep_checkpoints, true)")
    p = sub.add_parser("plan", help="list the trials of a spec without training")
    p.add_argument("spec")
    sm = sub.add_parser("summary", help="per-axis Markdown tables of a sweep's results beside the paper's rows")
    sm.add_argument("spec")
    sm.add_argument("--table", help="result CSV (default data/ablations/<sweep>.csv)")
    sm.add_argument("--docs", nargs="?", const=str(REPO_ROOT / "docs" / "ablations.md"), default=None,
                    help=f"also write the <!-- {SUMMARY_BLOCK}:begin/end --> block of this Markdown file "
                         "(default docs/ablations.md)")
    a = ap.parse_args(argv)
    try:
        sweep = load_spec(a.spec)
        if a.cmd == "summary":
            lines = summary_lines(sweep, a.table or default_table(sweep), a.spec)
            print("\n".join(lines))
            if a.docs:
                fill_block(a.docs, SUMMARY_BLOCK, lines)
                print(f"wrote the {SUMMARY_BLOCK} block of {a.docs}", file=sys.stderr)
            return 0
        if a.cmd == "plan":
            trials = plan(sweep)
            for x in trials:
                print(f"{x.index:4d} {x.trial_id} seed={x.config.seed} {x.axis}={x.setting}  [{x.axes_text}]")
            n_cfg = len({json.dumps({**x.config.to_dict(), 'seed': 0}, sort_keys=True) for x in trials})
            print(f"{len(trials)} trial(s): {n_cfg} config(s) x {len(sweep.seeds)} seed(s), "
                  f"{sweep.base.epochs} epoch(s) each")
            return 0
        res = run_sweep(sweep, table=a.table or default_table(sweep), runs_root=a.runs_root,
                        resources=sweep.resources.replace(a.cpus_per_trial, a.gpus_per_trial,
                                                          a.workers_per_trial), address=a.address,
                        max_retries=a.max_retries, in_process=a.in_process, progress=a.progress,
                        keep_checkpoints=a.keep, command="python -m se_core.ablate " + shlex.join(argv))
    except (SpecError, TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"{res.done}/{res.total} trial(s) in {res.table}" + (f"; {len(res.failed)} failed: {', '.join(res.failed)}"
                                                              if res.failed else ""), file=sys.stderr)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
