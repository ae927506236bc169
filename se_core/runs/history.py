"""Read the training run directories that :func:`se_core.runs.train.train` writes, as pandas tables.

A run directory ``data/runs/<run>/`` holds ``config.json`` (``TrainConfig.to_dict()``),
``metrics.csv`` (one row per finished epoch, columns ``METRIC_FIELDS``), ``gates.json`` (per
epoch, per SE block: mean, std, histogram, range and class selectivity of the gates on the fixed
probe batch) and, once training ended, ``final.json`` (fp32 test evaluation and provenance).
Runs may be in progress: everything here reads what exists. Malformed files (wrong keys or
types, non-finite numbers where a number must be finite, not UTF-8, over ``MAX_RUN_FILE_MB``)
raise :class:`RunError` whose message names the file and what is wrong; :func:`list_runs`
records such problems per run instead of failing, so one broken run never hides the others.
Losses alone may be NaN or infinite (a diverged run records them so).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import pandas as pd

from se_core.models.registry import get_spec
from se_core.nn.se import SEConfig
from se_core.runs.tables import diff_se
from se_core.runs.train import METRIC_FIELDS, TrainConfig
from se_core.util.files import read_text

MAX_RUN_FILE_MB = 64.0
"""Largest run file read (config, metrics, gates, final); real ones are well under 1 MB."""
GATE_COLUMNS = ("epoch", "site", "mean", "std", "selectivity", "lo", "hi", "hist", "still_share")
RESULT_COLUMNS = ("run", "model", "arch", "se", "seed", "epochs", "top1", "top5", "loss", "n_test", "params",
                  "wall_time_s", "precision", "hardware", "date", "commit")
SUMMARY_COLUMNS = ("model", "arch", "se", "runs", "seeds", "top1_mean", "top1_std", "top1_min", "top1_max",
                   "top1", "delta_vs_vanilla", "delta_se", "params", "wall_time_s_mean")


class RunError(ValueError):
    """A run file that cannot be used; ``str()`` names the file, the problem and what to do."""


@dataclass(frozen=True)
class RunInfo:
    """One run directory: what it trains, how far it got, and any problem reading it."""

    name: str
    path: Path
    arch: str = "?"
    se: str = "none"
    model: str = "?"
    seed: int | None = None
    epochs: int = 0
    epochs_done: int = 0
    finished: bool = False
    has_gates: bool = False
    problem: str | None = None
    config: dict = field(default_factory=dict, compare=False)

    @property
    def status(self) -> str:
        if self.problem:
            return "unreadable"
        if self.finished:
            return "finished"
        return f"running ({self.epochs_done}/{self.epochs} epochs)" if self.epochs_done else "started"


def _read_text(path: Path, missing: str = "missing") -> str:
    """The file as UTF-8 text, refusing files over ``MAX_RUN_FILE_MB`` before reading them."""
    return read_text(path, label=str(path), max_mb=MAX_RUN_FILE_MB, kind="run files", error=RunError, join=": ",
                     missing=missing, large_hint="it is not a file the trainer wrote, delete or move it",
                     utf8_hint="the file is corrupt or was saved in another encoding, re-run or delete the run")


def _read_json(path: Path) -> object:
    text = _read_text(path)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        why = e if isinstance(e, json.JSONDecodeError) else "nested too deeply"
        raise RunError(f"{path}: not valid JSON ({why}); the file is truncated or corrupt, re-run or delete the run") from None


def _config_type_problem(d: dict) -> str | None:
    """Why a ``config.json`` field has the wrong JSON type for :class:`TrainConfig`, or ``None``."""
    for f in fields(TrainConfig):
        if f.name not in d:
            continue
        v, kind = d[f.name], str(f.type).replace(" ", "")
        if f.name == "se":
            ok, want = v is None or isinstance(v, dict), "an object of SE config fields or null"
        else:
            base = kind.removesuffix("|None")
            if v is None and kind.endswith("|None"):
                continue
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            ok, want = {"str": (isinstance(v, str), "a string"), "bool": (isinstance(v, bool), "true or false"),
                        "int": (number and float(v).is_integer(), "a whole number"),
                        "float": (number and math.isfinite(v), "a finite number")}.get(base, (True, ""))
            if kind.endswith("|None"):
                want += " or null"
        if not ok:
            return f"'{f.name}' is {v!r}, expected {want}"
    return None


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The run's :class:`TrainConfig` from ``config.json`` (validated by ``TrainConfig`` itself)."""
    path = Path(run_dir) / "config.json"
    d = _read_json(path)
    if not isinstance(d, dict):
        raise RunError(f"{path}: expected a JSON object of TrainConfig fields, found {type(d).__name__}")
    problem = _config_type_problem(d)
    if problem:
        raise RunError(f"{path}: invalid train config ({problem})")
    ints = {f.name for f in fields(TrainConfig) if str(f.type).startswith("int")}
    d = {k: int(v) if k in ints and isinstance(v, float) else v for k, v in d.items()}  # 3.0 -> 3
    try:
        return TrainConfig.from_dict(d)
    except KeyError as e:
        raise RunError(f"{path}: {e.args[0]}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise RunError(f"{path}: invalid train config ({e})") from None


def model_label(cfg: TrainConfig) -> str:
    """Name that groups runs of the same model: the arch, plus the SE config when it is not the arch's default."""
    if cfg.se is None or cfg.se == get_spec(cfg.arch).default_se:
        return cfg.arch
    return f"{cfg.arch} [{cfg.se.label()}]"


def se_label(cfg: TrainConfig) -> str:
    se = cfg.se_config()
    return "none" if se is None else se.label()


def load_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``metrics.csv`` as a DataFrame with columns ``METRIC_FIELDS`` (no rows before epoch 1 ends)."""
    path = Path(run_dir) / "metrics.csv"
    text = _read_text(path, "missing; the run has not written its first epoch yet or is not a training run")
    try:
        return _parse_metrics(path, text)
    except csv.Error as e:  # e.g. a field over csv's size limit
        raise RunError(f"{path}: not a readable CSV ({e})") from None


def _parse_metrics(path: Path, text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise RunError(f"{path}: empty file; expected the header {','.join(METRIC_FIELDS)}")
    missing = [f for f in METRIC_FIELDS if f not in header]
    if missing:
        raise RunError(f"{path}: header lacks column(s) {missing}; expected {','.join(METRIC_FIELDS)}")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise RunError(f"{path}: line {lineno} has {len(row)} fields, the header has {len(header)}")
        rec = dict(zip(header, row))
        try:
            vals = {f: float(rec[f]) for f in METRIC_FIELDS}
        except ValueError:
            bad = next(f for f in METRIC_FIELDS if not _is_float(rec[f]))
            raise RunError(f"{path}: line {lineno}: {bad}={rec[bad]!r} is not a number") from None
        bad = next((f for f in METRIC_FIELDS if f not in LOSS_FIELDS and not math.isfinite(vals[f])), None)
        if bad:
            raise RunError(f"{path}: line {lineno}: {bad}={rec[bad]!r} is not a finite number")
        if not vals["epoch"].is_integer() or vals["epoch"] < 1:
            raise RunError(f"{path}: line {lineno}: epoch={rec['epoch']!r} is not a positive integer")
        vals["epoch"] = int(vals["epoch"])
        if rows and vals["epoch"] <= rows[-1]["epoch"]:
            raise RunError(f"{path}: line {lineno}: epoch {vals['epoch']} does not follow epoch {rows[-1]['epoch']}")
        rows.append(vals)
    df = pd.DataFrame(rows, columns=list(METRIC_FIELDS))
    return df.astype({"epoch": "int64"})


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


LOSS_FIELDS = ("train_loss", "test_loss")
"""Metrics that may be NaN or infinite: a diverged run records its loss so."""


def _num(x: object, where: str, finite: bool = True) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RunError(f"{where} is {x!r}, expected a number")
    if finite and not math.isfinite(x):
        raise RunError(f"{where} is {x!r}, expected a finite number")
    return float(x)


def load_gate_history(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``gates.json`` as one row per (epoch, SE block): mean, std, selectivity, histogram range and counts.

    ``hist`` holds the bin counts (a list); ``lo``/``hi`` the histogram range, so bin ``i`` covers
    ``lo + i*(hi-lo)/len(hist)`` onwards. A vanilla run has epochs with no sites: zero rows.
    """
    path = Path(run_dir) / "gates.json"
    data = _read_json(path)
    if not isinstance(data, list):
        raise RunError(f"{path}: expected a list of per-epoch snapshots, found {type(data).__name__}")
    rows, last = [], 0
    for i, snap in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(snap, dict) or not isinstance(snap.get("sites"), dict):
            raise RunError(f"{where}: expected {{'epoch': int, 'sites': {{...}}}}")
        epoch = snap.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise RunError(f"{where}: epoch={epoch!r} is not a positive integer")
        if epoch <= last:
            raise RunError(f"{where}: epoch {epoch} does not follow epoch {last}")
        last = epoch
        for site, st in snap["sites"].items():
            w = f"{where} (epoch {epoch}, {site})"
            if not isinstance(st, dict):
                raise RunError(f"{w}: expected an object with mean/std/hist/range/selectivity")
            for k in ("mean", "std", "selectivity", "hist", "range"):
                if k not in st:
                    raise RunError(f"{w}: missing '{k}'")
            hist, rng = st["hist"], st["range"]
            if not isinstance(hist, list) or not hist:
                raise RunError(f"{w}: 'hist' must be a non-empty list of counts")
            counts = [_num(v, f"{w}: hist value") for v in hist]
            if any(v < 0 for v in counts):
                raise RunError(f"{w}: 'hist' has negative counts")
            if not isinstance(rng, list) or len(rng) != 2:
                raise RunError(f"{w}: 'range' must be [lo, hi]")
            lo, hi = _num(rng[0], f"{w}: range lo"), _num(rng[1], f"{w}: range hi")
            if not hi > lo:
                raise RunError(f"{w}: range [{lo}, {hi}] is empty")
            rows.append({"epoch": epoch, "site": str(site), "mean": _num(st["mean"], f"{w}: mean"),
                         "std": _num(st["std"], f"{w}: std"), "selectivity": _num(st["selectivity"], f"{w}: selectivity"),
                         "lo": lo, "hi": hi, "hist": counts,
                         "still_share": _num(st["still"], f"{w}: still") if "still" in st else float("nan")})
    return pd.DataFrame(rows, columns=list(GATE_COLUMNS)).astype({"epoch": "int64"})


def hist_edges(rows: pd.DataFrame) -> list[list[float]]:
    """Bin edges of each gate-history row (:func:`load_gate_history`): its histogram spans that epoch's
    [lo, hi] (a ReLU gate's range follows that epoch's largest gate), in equal bins."""
    return [[r.lo + i * (r.hi - r.lo) / len(r.hist) for i in range(len(r.hist) + 1)] for r in rows.itertuples()]


def gate_hist_long(gates: pd.DataFrame, site: str) -> pd.DataFrame:
    """One block's histograms in long form: epoch, bin_lo, bin_hi, bin_center, count, fraction."""
    rows = []
    for r in gates[gates["site"] == site].sort_values("epoch").itertuples():
        n, total = len(r.hist), sum(r.hist) or 1.0
        width = (r.hi - r.lo) / n
        for i, c in enumerate(r.hist):
            lo = r.lo + i * width
            rows.append({"epoch": r.epoch, "bin_lo": lo, "bin_hi": lo + width, "bin_center": lo + width / 2,
                         "count": c, "fraction": c / total})
    return pd.DataFrame(rows, columns=["epoch", "bin_lo", "bin_hi", "bin_center", "count", "fraction"])


def load_final(run_dir: str | os.PathLike) -> dict:
    """``final.json``: ``{'final': {'top1', 'top5', 'loss', 'n', 'per_class'}, 'provenance': {...}}``, validated."""
    path = Path(run_dir) / "final.json"
    d = _read_json(path)
    if not isinstance(d, dict) or not isinstance(d.get("final"), dict) or not isinstance(d.get("provenance"), dict):
        raise RunError(f"{path}: expected an object with 'final' and 'provenance' objects")
    fin = d["final"]
    for k in ("top1", "n"):
        if k not in fin:
            raise RunError(f"{path}: 'final' lacks '{k}'")
        _num(fin[k], f"{path}: final.{k}")
    for k in ("top1", "top5"):
        if k in fin and not 0 <= _num(fin[k], f"{path}: final.{k}") <= 100:
            raise RunError(f"{path}: final.{k}={fin[k]} is not a percentage")
    if not float(fin["n"]).is_integer() or fin["n"] < 0:
        raise RunError(f"{path}: final.n={fin['n']!r} is not a count of test images")
    if "loss" in fin:
        _num(fin["loss"], f"{path}: final.loss", finite=False)
    pc = fin.get("per_class", {})
    if not isinstance(pc, dict):
        raise RunError(f"{path}: final.per_class must map class names to accuracies")
    for c, v in pc.items():
        if v is not None and not 0 <= _num(v, f"{path}: final.per_class[{c!r}]") <= 100:
            raise RunError(f"{path}: final.per_class[{c!r}]={v} is not a percentage")
    prov = d["provenance"]
    if "epochs" in prov and not float(_num(prov["epochs"], f"{path}: provenance.epochs")).is_integer():
        raise RunError(f"{path}: provenance.epochs={prov['epochs']!r} is not a whole number")
    if "wall_time_s" in prov:
        _num(prov["wall_time_s"], f"{path}: provenance.wall_time_s")
    return d


def list_runs(root: str | os.PathLike) -> list[RunInfo]:
    """Every run directory (a folder with ``config.json``) under ``root``, sorted by name.

    Unreadable files do not raise: the run is listed with ``problem`` set to the reason.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (d / "config.json").is_file():
            continue
        try:
            cfg = load_config(d)
            info = dict(arch=cfg.arch, se=se_label(cfg), model=model_label(cfg), seed=cfg.seed, epochs=cfg.epochs,
                        config=cfg.to_dict())
        except RunError as e:
            out.append(RunInfo(d.name, d, problem=str(e)))
            continue
        problem = None
        done = 0
        try:
            if (d / "metrics.csv").is_file():
                done = len(load_metrics(d))
            if (d / "final.json").is_file():
                load_final(d)
        except RunError as e:
            problem = str(e)
        out.append(RunInfo(d.name, d, finished=(d / "final.json").is_file() and problem is None,
                           epochs_done=done, has_gates=(d / "gates.json").is_file(), problem=problem, **info))
    return out


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """Overview of :func:`list_runs`: run, model, SE config, seed, progress, status, problem."""
    return pd.DataFrame([{"run": r.name, "model": r.model, "se": r.se, "seed": r.seed, "epochs_done": r.epochs_done,
                          "epochs": r.epochs, "status": r.status, "problem": r.problem or ""} for r in runs],
                        columns=["run", "model", "se", "seed", "epochs_done", "epochs", "status", "problem"])


def fingerprint(root: str | os.PathLike) -> tuple:
    """(path, mtime, size) of every run file under ``root``: a cache key that changes when a run advances."""
    root = Path(root)
    if not root.is_dir():
        return ()
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for name in ("config.json", "metrics.csv", "gates.json", "final.json"):
            p = d / name
            try:
                s = p.stat()
                out.append((str(p), s.st_mtime_ns, s.st_size))
            except OSError:
                pass
    return tuple(out)


def all_metrics(runs: list[RunInfo]) -> pd.DataFrame:
    """Metrics of every readable run stacked, with ``run`` and ``model`` columns (for curves by run)."""
    frames = []
    for r in runs:
        if r.problem or not (r.path / "metrics.csv").is_file():
            continue
        df = load_metrics(r.path)
        if len(df):
            frames.append(df.assign(run=r.name, model=r.model))
    cols = ["run", "model", *METRIC_FIELDS]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def seed_curves(metrics: pd.DataFrame, columns: tuple[str, ...] = ("test_acc", "test_loss", "train_acc", "train_loss")
                ) -> pd.DataFrame:
    """Per model and epoch: mean and sample std over the runs (seeds) that reached that epoch, and how many did.

    Long form (``model, epoch, metric, mean, std, n``); std is 0 where one run contributes, so a band
    simply vanishes there."""
    cols = ["model", "epoch", "metric", "mean", "std", "n"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    long = metrics.melt(id_vars=["model", "epoch", "run"], value_vars=list(columns), var_name="metric")
    g = long.groupby(["model", "metric", "epoch"], sort=False)["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out[cols].sort_values(["model", "metric", "epoch"], ignore_index=True)


@lru_cache(maxsize=64)
def _param_count(arch: str, se_json: str | None) -> int:
    spec = get_spec(arch)
    se = SEConfig.from_json(se_json) if se_json else None
    return sum(p.numel() for p in spec.build(se if spec.takes_se else None).parameters())


def results_table(root: str | os.PathLike, *, strict: bool = False) -> pd.DataFrame:
    """One row per finished run (``final.json`` present): model, seed, fp32 test top-1/top-5, params, wall time.

    Runs with unreadable files are skipped (see :func:`list_runs` for why), or raise with ``strict``.
    """
    rows = []
    for r in list_runs(root):
        if r.problem and strict:
            raise RunError(r.problem)
        if not r.finished:
            continue
        d = load_final(r.path)
        fin, prov = d["final"], d["provenance"]
        cfg = TrainConfig.from_dict(r.config)
        se = cfg.se_config()
        rows.append({"run": r.name, "model": r.model, "arch": r.arch, "se": r.se, "seed": r.seed,
                     "epochs": int(prov.get("epochs", r.epochs)), "top1": float(fin["top1"]),
                     "top5": float(fin.get("top5", math.nan)), "loss": float(fin.get("loss", math.nan)),
                     "n_test": int(fin["n"]), "params": _param_count(r.arch, None if se is None else se.to_json()),
                     "wall_time_s": float(prov.get("wall_time_s", math.nan)), "precision": str(prov.get("precision", "")),
                     "hardware": str(prov.get("hardware", "")), "date": str(prov.get("date", "")),
                     "commit": str(prov.get("commit", ""))})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _vanilla_of(arch: str) -> str | None:
    try:
        return get_spec(arch).vanilla or None
    except KeyError:
        return None


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per model: number of runs, seeds, top-1 mean ± sample std (ddof=1; NaN for one run), min, max, and
    the difference of mean top-1 to the vanilla twin (the spec's ``vanilla``) when both were trained, with
    its standard error (:func:`se_core.runs.tables.diff_se`) when both have two or more seeds, so a gain can be
    read against seed noise."""
    if results.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    rows = []
    for model, g in results.groupby("model", sort=True):
        mean, std = float(g["top1"].mean()), float(g["top1"].std(ddof=1)) if len(g) > 1 else math.nan
        rows.append({"model": model, "arch": g["arch"].iloc[0], "se": g["se"].iloc[0], "runs": len(g),
                     "seeds": ", ".join(str(s) for s in sorted(g["seed"])), "top1_mean": mean, "top1_std": std,
                     "top1_min": float(g["top1"].min()), "top1_max": float(g["top1"].max()),
                     "top1": f"{mean:.2f} ± {std:.2f}" if not math.isnan(std) else f"{mean:.2f} (1 run)",
                     "delta_vs_vanilla": math.nan, "delta_se": math.nan, "params": int(g["params"].iloc[0]),
                     "wall_time_s_mean": float(g["wall_time_s"].mean())})
    df = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    base = {r.model: r for r in df.itertuples() if r.model == r.arch}
    for i, r in df.iterrows():
        v = base.get(_vanilla_of(r["arch"]) or "")
        if v is not None:
            df.at[i, "delta_vs_vanilla"] = r["top1_mean"] - v.top1_mean
            df.at[i, "delta_se"] = diff_se(r["top1_std"], r["runs"], v.top1_std, v.runs)
    return df


def own_pairs_results(specs: list, data: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The project's own pairs side by side: (:func:`summary` rows with ``pair`` and ``role`` columns,
    :func:`results_table` rows with ``pair`` and ``role``), from each pair's runs folder under ``data``
    (:attr:`se_core.models.weights.PairSpec.shipped`). A pair without finished runs has no rows."""
    summaries, results = [], []
    for spec in specs:
        root = Path(data) / spec.shipped.runs
        res = results_table(root) if root.is_dir() else pd.DataFrame(columns=list(RESULT_COLUMNS))
        if res.empty:
            continue
        summ = summary(res)
        roles = {spec.se_arch: "se", spec.vanilla_arch: "vanilla"}
        if not set(summ["arch"]) <= set(roles) or summ["arch"].duplicated().any():
            raise RunError(f"{root}: the runs of pair {spec.name} must be one {spec.se_arch} and one "
                           f"{spec.vanilla_arch} model; found {', '.join(summ['model'])}")
        for df in (res, summ):
            df.insert(0, "role", [roles[a] for a in df["arch"]])
            df.insert(0, "pair", spec.name)
        results.append(res)
        summaries.append(summ)
    if not summaries:
        return (pd.DataFrame(columns=["pair", "role", *SUMMARY_COLUMNS]),
                pd.DataFrame(columns=["pair", "role", *RESULT_COLUMNS]))
    return pd.concat(summaries, ignore_index=True), pd.concat(results, ignore_index=True)


def pairs_overview(specs: list, summary: pd.DataFrame, movement: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """One row per own pair for people: vanilla and SE top-1 (mean ± std), Δ ± s.e. and whether it is
    resolved (|Δ| ≥ 2 s.e.), frozen SE blocks from ``movement[pair]`` (a gate-movement frame, None when unknown)."""
    rows = []
    for p in specs:
        mine = summary[summary["pair"] == p.name].set_index("role")
        top1 = {role: mine.loc[role, "top1"] if role in mine.index else "no finished run" for role in ("vanilla", "se")}
        delta = mine.loc["se", "delta_vs_vanilla"] if "se" in mine.index else math.nan
        err = mine.loc["se", "delta_se"] if "se" in mine.index else math.nan
        d = "—" if math.isnan(delta) else f"{delta:+.2f}" + (
            "" if math.isnan(err) else f" ± {err:.2f}" + (" (resolved)" if delta >= 2 * err else
                                                          " (resolved: SE worse)" if delta <= -2 * err else " (not resolved)"))
        m = movement.get(p.name)
        f = None if m is None else (int(m["frozen"].sum()), len(m))
        rows.append({"pair": p.title, "vanilla top-1": top1["vanilla"], "SE top-1": top1["se"], "Δ (pt)": d,
                     "frozen SE blocks": "—" if f is None else f"{f[0]} of {f[1]}", "runs folder": f"data/{p.shipped.runs}"})
    return pd.DataFrame(rows, columns=["pair", "vanilla top-1", "SE top-1", "Δ (pt)", "frozen SE blocks", "runs folder"])


def per_class_table(root: str | os.PathLike) -> pd.DataFrame:
    """Per finished run and class: test accuracy in % from ``final.json`` (long form)."""
    rows = []
    for r in list_runs(root):
        if not r.finished:
            continue
        for cls, acc in load_final(r.path)["final"].get("per_class", {}).items():
            rows.append({"run": r.name, "model": r.model, "seed": r.seed, "class": cls,
                         "acc": math.nan if acc is None else float(acc)})
    return pd.DataFrame(rows, columns=["run", "model", "seed", "class", "acc"])


def per_class_summary(per_class: pd.DataFrame) -> pd.DataFrame:
    """Per model and class: mean and sample std of accuracy over seeds (class order kept)."""
    if per_class.empty:
        return pd.DataFrame(columns=["model", "class", "acc_mean", "acc_std", "runs"])
    order = list(dict.fromkeys(per_class["class"]))
    g = per_class.groupby(["model", "class"], sort=False)["acc"]
    out = pd.DataFrame({"acc_mean": g.mean(), "acc_std": g.std(ddof=1), "runs": g.size()}).reset_index()
    out["class"] = pd.Categorical(out["class"], categories=order, ordered=True)
    return out.sort_values(["model", "class"]).reset_index(drop=True).astype({"class": "str"})


__all__ = ["RunError", "RunInfo", "all_metrics", "fingerprint", "gate_hist_long", "list_runs", "load_config",
           "hist_edges", "load_final", "load_gate_history", "load_metrics", "model_label", "per_class_summary", "per_class_table",
           "results_table", "runs_table", "se_label", "seed_curves", "summary"]
