"""Ship finished training runs: checkpoints, results tables and provenance in ``data/``.

``python -m se_core.release`` (idempotent) reads ``data/runs/*`` and writes

- ``data/runs/<run>/PROVENANCE.md``: how the run was made (or, while it is unfinished, how far
  it got and the command that resumes it);
- ``data/checkpoints/<run>.safetensors`` for every finished seed-0 run (the app's default pair)
  and ``data/checkpoints/PROVENANCE.md``;
- ``data/results/cifar10_resnet20{,_summary,_per_class}.csv`` with ``data/results/PROVENANCE.md``:
  every seed's test accuracy (fp32 re-evaluation on all 10,000 test images), mean ± std per
  model, per-class accuracy, params and FLOPs (``FlopCounterMode``);
- the results block of ``docs/training.md`` (the same summary lines).

Every number comes from the runs' own files; nothing is typed in.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import shutil
import sys
from pathlib import Path

import pandas as pd

from se_core.config import REPO_ROOT
from se_core.models.costs import spec_cost
from se_core.runs.history import list_runs, load_final, per_class_table, results_table, summary
from se_core.util.docblock import fill_block
from se_core.util.files import atomic_write_bytes
from se_core.util.paths import repo_relative
from se_core.util.provenance import git_commit

DATA = REPO_ROOT / "data"
RESULTS_STEM = "cifar10_resnet20"
DOCS = REPO_ROOT / "docs" / "training.md"
RESULTS_BLOCK = "results"
RESULTS_HEADER = ("Written by `python -m se_core.release` from `data/results/` (CIFAR-10 JPEG q75 test set, "
                  "10,000 images, fp32 re-evaluation):")


def _resume_command(run) -> str:
    cfg = run.config
    return (f"python -m se_core.train --arch {cfg['arch']} --seed {cfg['seed']} --epochs {cfg['epochs']} "
            f"--threads 1 --out {repo_relative(run.path)}")


def run_provenance(run) -> str:
    """PROVENANCE.md text of one run directory."""
    lines = [f"# {run.name}", ""]
    if run.finished:
        prov = load_final(run.path)["provenance"]
        lines += ["Trained by this project's trainer on CIFAR-10 (JPEG q75); all files here were written by it.", ""]
        lines += [f"- {k}: {v}" for k, v in prov.items()]
        lines += ["", "Re-compute the test accuracy:", "",
                  f"    python -m se_core.evaluate --checkpoint {repo_relative(run.path / 'model.safetensors')}", ""]
    else:
        lines += [f"In progress: {run.epochs_done} of {run.config['epochs']} epochs done (metrics.csv, gates.json "
                  "are the trainer's per-epoch records so far).", "",
                  "Resume (continues from last.safetensors; with the same code and thread count it ends with the same weights as an uninterrupted run):", "",
                  f"    {_resume_command(run)}", ""]
    lines += ["Files: config.json (TrainConfig), metrics.csv (per epoch), gates.json (per-epoch gate statistics on the "
              "fixed probe batch: 50 test images per class)" + (", final.json, model.safetensors" if run.finished else ""), ""]
    return "\n".join(lines)


def summary_lines(res: pd.DataFrame, summ: pd.DataFrame) -> list[str]:
    """Markdown bullets: each run's top-1 per model, mean ± std, and the difference to vanilla ± its s.e."""
    lines = []
    for r in summ.itertuples():
        seeds = ", ".join(f"{t:.2f} (seed {s})" for s, t in res[res["model"] == r.model][["seed", "top1"]].itertuples(index=False))
        delta = "" if math.isnan(r.delta_vs_vanilla) else f"; Δ vs vanilla {r.delta_vs_vanilla:+.2f} pt" + (
            "" if math.isnan(r.delta_se) else f" ± {r.delta_se:.2f} (s.e.)")
        lines.append(f"- {r.model}: {r.top1} over seeds {r.seeds}{delta}. Runs: {seeds}.")
    return lines


def release(runs_root: Path = DATA / "runs", data: Path = DATA, docs: Path | None = DOCS) -> dict:
    """Write everything listed in the module docstring; returns what was written."""
    runs = list_runs(runs_root)
    written: dict[str, list[str]] = {"provenance": [], "checkpoints": [], "results": []}
    for r in runs:
        if r.problem:
            print(f"skipping {r.name}: {r.problem}", file=sys.stderr)
            continue
        atomic_write_bytes(r.path / "PROVENANCE.md", run_provenance(r).encode())
        written["provenance"].append(repo_relative(r.path))
    ckpt_dir = data / "checkpoints"
    shipped = [r for r in runs if not r.problem and r.finished and r.seed == 0]
    if shipped:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# Shipped checkpoints", "",
                 "The app's default pair. Each file is the final `model.safetensors` of a run in `data/runs/`, "
                 "copied unchanged; its safetensors metadata carries the same provenance.", ""]
        for r in shipped:
            dst = ckpt_dir / f"{r.name}.safetensors"
            shutil.copyfile(r.path / "model.safetensors", dst)
            prov = load_final(r.path)["provenance"]
            written["checkpoints"].append(repo_relative(dst))
            lines += [f"## {dst.name}", "", f"- run: `{repo_relative(r.path)}` (see its PROVENANCE.md)"]
            lines += [f"- {k}: {v}" for k, v in prov.items()]
            lines += ["", f"Re-compute: `python -m se_core.evaluate --checkpoint {repo_relative(dst)}`", ""]
        atomic_write_bytes(ckpt_dir / "PROVENANCE.md", "\n".join(lines).encode())
    res = results_table(runs_root)
    if not res.empty:
        out = data / "results"
        out.mkdir(parents=True, exist_ok=True)
        res["gmacs"] = [spec_cost(a, None).gmacs for a in res["arch"]]
        summ = summary(res)
        tables = {f"{RESULTS_STEM}.csv": res, f"{RESULTS_STEM}_summary.csv": summ,
                  f"{RESULTS_STEM}_per_class.csv": per_class_table(runs_root)}
        for name, df in tables.items():
            atomic_write_bytes(out / name, df.to_csv(index=False).encode())
            written["results"].append(repo_relative(out / name))
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        text = ["# Results: ResNet-20 vs SE-ResNet-20 on CIFAR-10 (JPEG q75)", "",
                f"Made by `python -m se_core.release` at commit {git_commit()} on {now} from the finished runs in "
                "`data/runs/` (each run's PROVENANCE.md gives its command, commit, seed, hardware, date and wall time).", "",
                f"- `{RESULTS_STEM}.csv`: one row per run; top1/top5 are the fp32 re-evaluation of the final weights on "
                "all 10,000 test images (`python -m se_core.evaluate --checkpoint data/runs/<run>/model.safetensors` "
                "re-computes each); params and gmacs (multiply-adds, the paper's GFLOPs) from FlopCounterMode.",
                f"- `{RESULTS_STEM}_summary.csv`: mean ± sample std over seeds per model, and the SE-minus-vanilla "
                "difference of means with its standard error.",
                f"- `{RESULTS_STEM}_per_class.csv`: per-class test accuracy of every run.", "",
                "Runs included: " + ", ".join(res["run"]), "", "Summary (test top-1 %, from the table above):", "",
                *summary_lines(res, summ), ""]
        atomic_write_bytes(out / "PROVENANCE.md", "\n".join(text).encode())
        if docs is not None and docs.is_file():
            fill_block(docs, RESULTS_BLOCK, [RESULTS_HEADER, "", *summary_lines(res, summ)])
            written["results"].append(repo_relative(docs))
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.release", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(DATA / "runs"))
    ap.add_argument("--data", default=str(DATA))
    a = ap.parse_args(argv)
    w = release(Path(a.runs), Path(a.data))
    for k, v in w.items():
        print(f"{k}: {len(v)}" + (f" ({', '.join(v)})" if v else ""))
    return 0


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    sys.exit(main())
