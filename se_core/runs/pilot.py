"""The #15 pilot's selection rule as code: ``python -m se_core.pilot [--root data/pilot] [--stats] [--provenance]``.

The rule (``docs/training.md``, written before the first pilot run): per candidate, Δ = mean SE
held-out top-1 − mean vanilla held-out top-1, s.e. = σ·sqrt(1/n_se + 1/n_vanilla) with σ the seed
std pooled over every pilot model with two or more finished seeds; a candidate is admissible
when no SE block of any of its SE seeds is frozen on the held-out images
(:mod:`se_core.analysis.movement`); the winner is the cheapest admissible candidate with Δ ≥ 2 s.e., else
the admissible one with the largest Δ, else (none admissible) the one with the fewest frozen
blocks, then the largest Δ. A candidate in :data:`SHARED_VANILLA` takes its vanilla runs from
another candidate. Run names are ``<candidate>-<model>-s<seed>`` (``sweeps/pilot.sh``);
candidates are ranked by cost in the order of :data:`COST_ORDER`.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from se_core.analysis.stats import compute_stats, load_stats, provenance, save_stats
from se_core.config import REPO_ROOT, data_dir
from se_core.data.datasets import load_dataset
from se_core.models.build import build_from_checkpoint
from se_core.runs.history import RunError, list_runs, load_final
from se_core.util.docblock import fill_block

COST_ORDER = ("A", "C", "B")
"""Candidates, cheapest first (docs/training.md; C, added after A's first seed, costs what A costs)."""
SHARED_VANILLA = {"C": "A"}
"""Candidates whose vanilla twin is another candidate's (C changes only the SE units' weight decay, so its
vanilla network is A's ResNet-20, trained once)."""
VAL_STATS = "val-stats.npz"
"""Gate statistics of an SE run on the held-out images, in its run directory."""
_NAME = re.compile(r"^(?P<cand>[A-Za-z0-9]+)-(?P<model>.+)-s(?P<seed>\d+)$")


@dataclass(frozen=True)
class Choice:
    """The rule's outcome: the winning candidate (None while a candidate lacks finished runs) and why."""

    winner: str | None
    reason: str
    table: pd.DataFrame


def pilot_runs(root: str | Path) -> pd.DataFrame:
    """One row per pilot run: candidate, model, seed, se, finished, val_top1 (NaN until finished), frozen blocks."""
    rows = []
    for r in list_runs(root):
        m = _NAME.match(r.name)
        if not m:
            continue
        top1, frozen = math.nan, math.nan
        if r.finished and not r.problem:
            try:
                top1 = float(load_final(r.path)["final"]["top1"])
            except RunError:
                pass
        if (r.path / VAL_STATS).is_file():
            frozen = float(load_stats(r.path / VAL_STATS).movement_frame()["frozen"].sum())
        rows.append({"run": r.name, "candidate": m["cand"], "model": m["model"], "seed": int(m["seed"]),
                     "se": m["model"].startswith("se_"), "finished": r.finished, "epochs_done": r.epochs_done,
                     "epochs": r.epochs, "val_top1": top1, "frozen_blocks": frozen})
    return pd.DataFrame(rows, columns=["run", "candidate", "model", "seed", "se", "finished", "epochs_done", "epochs",
                                       "val_top1", "frozen_blocks"])


def pooled_sigma(runs: pd.DataFrame) -> tuple[float, int]:
    """(σ, dof) of held-out top-1 over seeds, pooled over every (candidate, model) with >= 2 finished seeds."""
    done = runs[runs["finished"]]
    g = done.groupby(["candidate", "model"])["val_top1"]
    n, var = g.count(), g.var(ddof=1)
    dof = int((n[n > 1] - 1).sum())
    return (math.sqrt(float(((n - 1) * var)[n > 1].sum()) / dof), dof) if dof else (math.nan, 0)


def candidates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per candidate: seeds, mean held-out top-1 of SE and vanilla, Δ, s.e., frozen blocks, admissible."""
    sigma, _ = pooled_sigma(runs)
    out = []
    for cand in [c for c in COST_ORDER if c in set(runs["candidate"])] + sorted(set(runs["candidate"]) - set(COST_ORDER)):
        done = runs[runs["finished"]]
        se = done[(done["candidate"] == cand) & done["se"]]
        van = done[(done["candidate"] == SHARED_VANILLA.get(cand, cand)) & ~done["se"]]
        delta = se["val_top1"].mean() - van["val_top1"].mean() if len(se) and len(van) else math.nan
        se_err = sigma * math.sqrt(1 / len(se) + 1 / len(van)) if len(se) and len(van) else math.nan
        frozen = se["frozen_blocks"]
        out.append({"candidate": cand, "se_seeds": len(se), "vanilla_seeds": len(van),
                    "se_top1": se["val_top1"].mean(), "vanilla_top1": van["val_top1"].mean(), "delta": delta,
                    "se_err": se_err, "frozen_blocks": frozen.sum() if frozen.notna().all() and len(frozen) else math.nan,
                    "admissible": bool(len(frozen) and frozen.notna().all() and (frozen == 0).all())})
    return pd.DataFrame(out, columns=["candidate", "se_seeds", "vanilla_seeds", "se_top1", "vanilla_top1", "delta",
                                      "se_err", "frozen_blocks", "admissible"])


def choose(runs: pd.DataFrame, planned: dict[str, int] | None = None) -> Choice:
    """Apply the rule once every planned candidate (default: all of :data:`COST_ORDER`) has its planned
    number of finished seeds of both models (default two); before that, a winner only where the
    missing runs cannot change it (:func:`_settled`)."""
    table = candidates(runs)
    planned = planned or {c: 2 for c in COST_ORDER}
    short = [c for c in planned if c not in set(table["candidate"])
             or min(table.set_index("candidate").loc[c, ["se_seeds", "vanilla_seeds"]]) < planned[c]]
    if short:
        early = _settled(runs, table, [c for c in table["candidate"] if c not in short], short)
        if early is not None:
            return Choice(early[0], early[1] + f" (candidate(s) {', '.join(short)} unfinished: no outcome of their "
                          "missing runs can change this)", table)
        return Choice(None, f"not finished: candidate(s) {', '.join(short)} lack finished seeds", table)
    if table["frozen_blocks"].isna().any():
        return Choice(None, f"gate statistics on the held-out images ({VAL_STATS}) missing for an SE run: --stats", table)
    adm = table[table["admissible"]]
    resolved = adm[adm["delta"] >= 2 * adm["se_err"]]
    if len(resolved):
        return Choice(resolved.iloc[0]["candidate"], "cheapest admissible candidate with Δ ≥ 2 s.e.", table)
    if len(adm):
        best = adm.sort_values("delta", ascending=False, kind="stable").iloc[0]
        return Choice(best["candidate"], "no admissible candidate has Δ ≥ 2 s.e.: the admissible one with the largest Δ",
                      table)
    best = table.sort_values(["frozen_blocks", "delta"], ascending=[True, False], kind="stable").iloc[0]
    return Choice(best["candidate"], "no candidate is admissible: the fewest frozen blocks, then the largest Δ", table)


def _settled(runs: pd.DataFrame, table: pd.DataFrame, complete: list[str], short: list[str]) -> tuple[str, str] | None:
    """The winner while some candidates lack runs, when their missing runs cannot change it: a
    frozen block in any finished SE seed makes a candidate inadmissible for good, and its frozen
    total can only grow. None when the outcome still depends on the missing runs."""
    se = runs[runs["se"] & runs["finished"]]
    known = {c: se.loc[se["candidate"] == c, "frozen_blocks"].fillna(0).sum() for c in short}
    if not all(known[c] > 0 for c in short):
        return None  # a short candidate may still be admissible
    done = table.set_index("candidate").loc[complete]
    if done["frozen_blocks"].isna().any():
        return None
    adm = done[done["admissible"]]
    if len(adm) == 1:
        return adm.index[0], "the only admissible candidate"
    if len(adm) or not len(done):
        return None  # several admissible ones: Δ and σ decide, and the missing runs change σ
    best = done["frozen_blocks"].min()
    fewest = done[done["frozen_blocks"] == best]
    if len(fewest) == 1 and all(known[c] > best for c in short):
        return fewest.index[0], "no candidate is admissible: the fewest frozen blocks"
    return None


def compute_val_stats(root: str | Path, spec: str = "cifar10-jpeg@val=5000") -> list[Path]:
    """Gate statistics of every finished SE pilot run on the held-out images, where not yet computed."""
    written = []
    runs = pilot_runs(root)
    for r in runs[runs["se"] & runs["finished"]].itertuples():
        out = Path(root) / r.run / VAL_STATS
        if out.is_file():
            continue
        ckpt = Path(root) / r.run / "model.safetensors"
        model, meta = build_from_checkpoint(ckpt)
        stats = compute_stats(model, load_dataset(spec, "test", tuple(meta.input_size)), meta.mean, meta.std)
        stats.meta["provenance"] = provenance(ckpt, role="se", arch=meta.arch,
                                              command=f"python -m se_core.pilot --root {root} --stats")
        written.append(save_stats(out, stats))
    return written


DOCS_BLOCK = "pilot"
"""The block of ``docs/training.md`` that ``--docs`` fills."""


def docs_lines(root: str | Path, planned: dict[str, int] | None = None) -> list[str]:
    """The pilot's state as Markdown, from the runs' own files: each run's held-out top-1 and frozen SE
    blocks (which ones), the pooled σ, each candidate's Δ ± s.e., and the rule's outcome."""
    runs = pilot_runs(root)
    lines = ["Written by `python -m se_core.pilot --docs` from `data/pilot/` (held-out top-1 on 5,000 training "
             "images, fp32 re-evaluation; frozen blocks from each SE run's `val-stats.npz`):", "",
             "| run | held-out top-1 | frozen SE blocks |", "| --- | --- | --- |"]
    for r in runs.itertuples():  # an unfinished run's epoch count is left out: the block changes when a run lands
        top1 = f"{r.val_top1:.2f}" if r.finished else "unfinished"
        frozen = "–"
        if r.se and (Path(root) / r.run / VAL_STATS).is_file():
            m = load_stats(Path(root) / r.run / VAL_STATS).movement_frame()
            which = ", ".join(m.loc[m["frozen"], "label"])
            frozen = f"{int(m['frozen'].sum())} of {len(m)}" + (f" ({which})" if which else "")
        lines.append(f"| {r.run} | {top1} | {frozen} |")
    sigma, dof = pooled_sigma(runs)
    choice = choose(runs, planned)
    lines += ["", f"Pooled seed std σ = {sigma:.3f} pt ({dof} dof). Per candidate (Δ = SE − vanilla mean held-out top-1):", ""]
    for c in choice.table.itertuples():
        delta = "no Δ yet" if math.isnan(c.delta) else f"Δ {c.delta:+.2f}" + (
            "" if math.isnan(c.se_err) else f" ± {c.se_err:.2f} pt")
        frozen = "?" if math.isnan(c.frozen_blocks) else int(c.frozen_blocks)
        lines.append(f"- {c.candidate}: {c.se_seeds} SE and {c.vanilla_seeds} vanilla seeds finished, {delta}, "
                     f"{frozen} frozen blocks, {'admissible' if c.admissible else 'not admissible'}.")
    lines += ["", f"Winner: {choice.winner or 'none yet'} ({choice.reason})."]
    return lines


PILOT_INTRO = ("A #15 pilot run (docs/training.md; data/pilot/PROVENANCE.md), written by this project's trainer; "
               "evaluated on the 5,000 held-out training images, never the test set. Resume the whole pilot, "
               "skipping finished runs: `bash sweeps/pilot.sh`.")


def write_provenance(root: str | Path) -> list[Path]:
    """``PROVENANCE.md`` of every pilot run (:func:`se_core.runs.release.run_provenance`, plus where its
    held-out gate statistics came from)."""
    from se_core.runs.release import run_provenance
    from se_core.util.files import atomic_write_bytes

    written = []
    for r in list_runs(root):
        if r.problem:
            continue
        text = run_provenance(r, PILOT_INTRO)
        if (r.path / VAL_STATS).is_file():
            pv = load_stats(r.path / VAL_STATS).meta.get("provenance", {})
            text += "\n".join([
                f"`{VAL_STATS}` (gate statistics on the held-out images, for the frozen-block test):", "",
                *(f"- {k}: {pv.get(k)}" for k in ("command", "commit", "date")),
                f"- checkpoint sha256: {pv.get('checkpoint', {}).get('sha256')}", "",
                "Re-compute it (delete the file first): `python -m se_core.pilot --stats`", ""])
        atomic_write_bytes(r.path / "PROVENANCE.md", text.encode())
        written.append(r.path / "PROVENANCE.md")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.pilot", description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(data_dir() / "pilot"))
    ap.add_argument("--stats", action="store_true", help=f"first compute {VAL_STATS} of finished SE runs that lack it")
    ap.add_argument("--candidates", default=",".join(COST_ORDER), help="the planned candidates (two seeds each)")
    ap.add_argument("--provenance", action="store_true", help="(re)write every run's PROVENANCE.md")
    ap.add_argument("--docs", nargs="?", const=str(REPO_ROOT / "docs" / "training.md"), default=None,
                    help=f"fill the {DOCS_BLOCK!r} block of docs/training.md (or the file given)")
    a = ap.parse_args(argv)
    if a.stats:
        for p in compute_val_stats(a.root):
            print(f"wrote {p}")
    if a.provenance:
        print(f"wrote {len(write_provenance(a.root))} PROVENANCE.md files")
    runs = pilot_runs(a.root)
    if runs.empty:
        print(f"error: no pilot runs under {a.root}", file=sys.stderr)
        return 2
    sigma, dof = pooled_sigma(runs)
    print(runs.drop(columns=["se"]).to_string(index=False))
    print(f"\npooled seed std σ = {sigma:.3f} pt ({dof} dof)")
    planned = {c: 2 for c in a.candidates.split(",") if c}
    choice = choose(runs, planned)
    print(choice.table.to_string(index=False))
    print(f"\nwinner: {choice.winner or '—'} ({choice.reason})")
    if a.docs:
        fill_block(a.docs, DOCS_BLOCK, docs_lines(a.root, planned))
        print(f"wrote the {DOCS_BLOCK} block of {a.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
