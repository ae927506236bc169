"""Ship the project's own pairs' training runs: checkpoints, results tables and provenance in ``data/``.

``python -m se_core.release`` (idempotent) reads, for every shipped pair
(:func:`se_core.models.pairs.shipped_pairs`), its runs folder ``data/<runs>/*`` and writes

- ``data/<runs>/<run>/PROVENANCE.md``: how the run was made (or, while it is unfinished, how far
  it got and the command that resumes it);
- ``data/checkpoints/<run>.safetensors`` for the pair's two seed-0 runs once finished (the weights the
  app loads) and ``data/checkpoints/PROVENANCE.md``;
- ``data/results/<stem>{,_summary,_per_class}.csv`` with ``data/results/PROVENANCE.md`` (a section per
  pair): every seed's test accuracy (fp32 re-evaluation on all 10,000 test images), mean ± std per
  model, per-class accuracy, params and FLOPs (``FlopCounterMode``);
- the pair's results block of ``docs/training.md`` (the same summary lines).

Every number comes from the runs' own files; nothing is typed in.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd

from se_core.config import REPO_ROOT
from se_core.models.costs import spec_cost
from se_core.models.pairs import shipped_pairs
from se_core.models.weights import PairSpec
from se_core.runs.history import list_runs, load_final, per_class_table, results_table, summary
from se_core.runs.train import TrainConfig, train_command
from se_core.util.docblock import fill_block
from se_core.util.files import atomic_write_bytes
from se_core.util.paths import repo_relative
from se_core.util.provenance import git_commit

DATA = REPO_ROOT / "data"
DOCS = REPO_ROOT / "docs" / "training.md"
RESULTS_HEADER = ("Written by `python -m se_core.release` from `data/results/` (CIFAR-10 JPEG q75 test set, "
                  "10,000 images, fp32 re-evaluation):")


def _resume_command(run) -> str:
    return train_command(TrainConfig.from_dict(run.config), repo_relative(run.path))


def run_provenance(run, intro: str = "Trained by this project's trainer on CIFAR-10 (JPEG q75); all files here "
                                    "were written by it.") -> str:
    """PROVENANCE.md text of one run directory (``intro``: its first paragraph)."""
    lines = [f"# {run.name}", "", intro, ""]
    if run.finished:
        prov = load_final(run.path)["provenance"]
        data = TrainConfig.from_dict(run.config).data
        lines += [f"- {k}: {json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in prov.items()]
        lines += ["", f"Re-compute the {'held-out' if '@val=' in data else 'test'} accuracy:", "",
                  "    " + shlex.join(["python", "-m", "se_core.evaluate", "--checkpoint", repo_relative(run.path / "model.safetensors"),
                                       *(["--data", data] if data != TrainConfig().data else [])]), ""]
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


def _checkpoint_runs(spec: PairSpec) -> list[str]:
    """The runs whose final weights are the pair's checkpoints (``checkpoints/<run>.safetensors``)."""
    return [Path(ref.location).stem for ref in (spec.se_weights, spec.vanilla_weights)]


def _remove_stale(path: Path, written: dict) -> None:
    """Remove a shipped output that no run backs any more (listed under ``written['removed']``)."""
    if path.exists():
        path.unlink()
        written["removed"].append(repo_relative(path))


def _release_pair(spec: PairSpec, data: Path, docs: Path | None, written: dict, ckpt_lines: list[str],
                  results_text: list[str]) -> None:
    """One shipped pair's part of :func:`release`: appends to ``written`` and the two PROVENANCE texts."""
    assert spec.shipped is not None
    runs_root = data / spec.shipped.runs
    runs = list_runs(runs_root) if runs_root.is_dir() else []
    for r in runs:
        if r.problem:
            print(f"skipping {r.name}: {r.problem}", file=sys.stderr)
            continue
        atomic_write_bytes(r.path / "PROVENANCE.md", run_provenance(r).encode())
        written["provenance"].append(repo_relative(r.path))
    by_name = {r.name: r for r in runs if not r.problem and r.finished}
    for name in _checkpoint_runs(spec):
        r = by_name.get(name)
        dst = data / "checkpoints" / f"{name}.safetensors"
        if r is None:  # shipped outputs are a function of the runs: a checkpoint whose run is gone goes too
            _remove_stale(dst, written)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r.path / "model.safetensors", dst)
        prov = load_final(r.path)["provenance"]
        written["checkpoints"].append(repo_relative(dst))
        ckpt_lines += [f"## {dst.name}", "", f"- pair: {spec.name} ({spec.title})",
                       f"- run: `{repo_relative(r.path)}` (see its PROVENANCE.md)"]
        ckpt_lines += [f"- {k}: {v}" for k, v in prov.items()]
        ckpt_lines += ["", f"Re-compute: `python -m se_core.evaluate --checkpoint {repo_relative(dst)}`", ""]
    stem = spec.shipped.results
    results_text += [f"## {spec.title}", ""]
    res = results_table(runs_root) if runs else pd.DataFrame()
    out = data / "results"
    if res.empty:
        none_yet = f"No finished run in `{repo_relative(runs_root)}` yet."
        results_text += [none_yet, ""]
        for suffix in ("", "_summary", "_per_class"):
            _remove_stale(out / f"{stem}{suffix}.csv", written)
        if docs is not None and docs.is_file():
            fill_block(docs, spec.shipped.docs_block, [none_yet])
            written["results"].append(repo_relative(docs))
        return
    out.mkdir(parents=True, exist_ok=True)
    res["gmacs"] = [spec_cost(a, None).gmacs for a in res["arch"]]
    summ = summary(res)
    tables = {f"{stem}.csv": res, f"{stem}_summary.csv": summ, f"{stem}_per_class.csv": per_class_table(runs_root)}
    for name, df in tables.items():
        atomic_write_bytes(out / name, df.to_csv(index=False).encode())
        written["results"].append(repo_relative(out / name))
    results_text += [
        f"From the finished runs in `{repo_relative(runs_root)}/` (each run's PROVENANCE.md gives its command, "
        "commit, seed, hardware, date and wall time).", "",
        f"- `{stem}.csv`: one row per run; top1/top5 are the fp32 re-evaluation of the final weights on "
        f"all 10,000 test images (`python -m se_core.evaluate --checkpoint {repo_relative(runs_root)}/<run>/model.safetensors` "
        "re-computes each); params and gmacs (multiply-adds, the paper's GFLOPs) from FlopCounterMode.",
        f"- `{stem}_summary.csv`: mean ± sample std over seeds per model, and the SE-minus-vanilla "
        "difference of means with its standard error.",
        f"- `{stem}_per_class.csv`: per-class test accuracy of every run.", "",
        "Runs included: " + ", ".join(res["run"]), "", "Summary (test top-1 %, from the table above):", "",
        *summary_lines(res, summ), ""]
    if docs is not None and docs.is_file():
        fill_block(docs, spec.shipped.docs_block, [RESULTS_HEADER, "", *summary_lines(res, summ)])
        written["results"].append(repo_relative(docs))


def release(data: Path = DATA, docs: Path | None = DOCS, pairs: list[PairSpec] | None = None) -> dict:
    """Write everything listed in the module docstring for every shipped pair (default: all of
    :func:`se_core.models.pairs.shipped_pairs`); returns what was written."""
    written: dict[str, list[str]] = {"provenance": [], "checkpoints": [], "results": [], "removed": []}
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    ckpt_lines = ["# Shipped checkpoints", "",
                  "The project's own pairs. Each file is the final `model.safetensors` of a seed-0 run in `data/`, "
                  "copied unchanged; its safetensors metadata carries the same provenance.", ""]
    results_text = ["# Results of the project's own pairs on CIFAR-10 (JPEG q75)", "",
                    f"Made by `python -m se_core.release` at commit {git_commit()} on {now}.", ""]
    for spec in pairs if pairs is not None else shipped_pairs():
        _release_pair(spec, data, docs, written, ckpt_lines, results_text)
    if written["checkpoints"] or any("checkpoints/" in p for p in written["removed"]):
        atomic_write_bytes(data / "checkpoints" / "PROVENANCE.md", "\n".join(ckpt_lines).encode())
    if any(p.startswith(repo_relative(data / "results")) for p in written["results"] + written["removed"]):
        atomic_write_bytes(data / "results" / "PROVENANCE.md", "\n".join(results_text).encode())
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.release", description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="the data folder: its runs folders in, checkpoints and results out")
    a = ap.parse_args(argv)
    w = release(Path(a.data))
    for k, v in w.items():
        print(f"{k}: {len(v)}" + (f" ({', '.join(v)})" if v else ""))
    return 0


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    sys.exit(main())
