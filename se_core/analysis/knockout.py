"""Knock-out of SE blocks: test accuracy with chosen blocks' gates switched off or made class-agnostic.

Paper Sec. 7 remarks that the last-stage SE blocks of SE-ResNet-50, whose gates are nearly
saturated and class-agnostic, can be removed at little cost in accuracy. This measures the same
thing for any SE model: for every SE block (and for sets such as a whole stage or all blocks)
its gates s are replaced by

- ``off``: s = 1 (the block's SE unit does nothing), or
- ``mean``: the class-agnostic mean gate vector over a data set (from :mod:`se_core.analysis.stats`),

and the top-1 accuracy is compared with the unmodified model on the same images.

CLI: ``python -m se_core.knockout --pair cifar10-resnet20 [--data SPEC] [--subset N] [--stats FILE]
[--out CSV]``; ``--ship`` writes each of the project's own pairs' result (or ``--pair``'s) on the full
CIFAR-10 JPEG test set to ``data/stats/`` with a JSON provenance sidecar.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from se_core.analysis.evaluate import eval_subset_indices, evaluate
from se_core.analysis.stats import (
    DEFAULT_DATA,
    StatsError,
    cache_key,
    compute_stats,
    data_tag,
    load_stats,
    provenance,
    ship_targets,
    shipped_dir,
    shipped_paths,
)
from se_core.config import stats_cache_dir
from se_core.data.datasets import DataError, ImageSet, load_dataset
from se_core.models import pairs
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import DEFAULT_PAIR, PAIRS, load_pair
from se_core.models.weights import WeightsMissing
from se_core.probe.hooks import borrowed_view
from se_core.probe.sites import Intervention, Site, capture, find_sites
from se_core.util.files import atomic_write_bytes, read_text

MODES = ("off", "mean")
COLUMNS = ["target", "kind", "stage", "depth", "sites", "mode", "top1", "delta", "loss", "n"]

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]


class KnockoutError(ValueError):
    """A knock-out request that cannot run; the message says what to do."""


class KnockoutCancelled(RuntimeError):
    """Stopped by ``should_stop``; partial results are discarded."""


def gate_sites(model: nn.Module) -> list[Site]:
    return [s for s in find_sites(model) if s.gate]


def default_sets(model: nn.Module) -> list[tuple[str, str, tuple[str, ...]]]:
    """(target label, kind, site names): every SE block, every stage with SE, and all SE blocks."""
    sites = gate_sites(model)
    out = [(s.label, "block", (s.name,)) for s in sites]
    stages = sorted({s.stage for s in sites if s.stage})
    if len(stages) > 1:
        out += [(f"stage {k}", "stage", tuple(s.name for s in sites if s.stage == k)) for k in stages]
    if len(sites) > 1:
        out.append(("all SE blocks", "all", tuple(s.name for s in sites)))
    return out


def _interventions(names: Sequence[str], mode: str, mean_gates: Mapping[str, np.ndarray] | None) -> list[Intervention]:
    if mode == "off":
        return [Intervention(n, "off") for n in names]
    if mode == "mean":
        if mean_gates is None:
            raise KnockoutError("mode 'mean' needs the class-agnostic mean gates: pass mean_gates (e.g. from "
                                "ExcitationStats.mean(site) of se_core.analysis.stats)")
        missing = [n for n in names if n not in mean_gates]
        if missing:
            raise KnockoutError(f"no mean gate vector for {missing}; compute statistics of this model first")
        return [Intervention(n, "vector", torch.as_tensor(np.asarray(mean_gates[n]), dtype=torch.float32)) for n in names]
    raise KnockoutError(f"unknown knock-out mode {mode!r}; use one of {MODES}")


@torch.no_grad()
def accuracy(model: nn.Module, data: ImageSet, mean: Sequence[float], std: Sequence[float], *,
             interventions: Sequence[Intervention] = (), batch_size: int = 500, device: torch.device | str = "cpu",
             should_stop: StopCheck | None = None) -> dict:
    """Top-1 (%), mean loss and n of ``model`` on ``data`` with ``interventions`` applied, on a
    borrowed view of it (the shared model is neither hooked nor locked for the pass)."""
    device = torch.device(device)
    names = {i.site for i in interventions}
    sites = [s for s in find_sites(model) if s.name in names]

    def stop() -> None:
        if should_stop is not None and should_stop():
            raise KnockoutCancelled("knock-out stopped")

    with borrowed_view(model) as view, capture(view, sites, interventions, keep_z=False, keep_s=False):
        r = evaluate(view, data, mean, std, batch_size=batch_size, device=device, before_batch=stop)
    return {"top1": r["top1"], "loss": r["loss"], "n": r["n"]}


def knockout(model: nn.Module, data: ImageSet, mean: Sequence[float], std: Sequence[float], *,
             sets: Sequence[tuple[str, str, Sequence[str]]] | None = None, modes: Sequence[str] = MODES,
             mean_gates: Mapping[str, np.ndarray] | None = None, batch_size: int = 500,
             device: torch.device | str = "cpu", progress: Progress | None = None,
             should_stop: StopCheck | None = None) -> pd.DataFrame:
    """Accuracy with each set's gates replaced, per mode, plus the baseline row (``target='none'``).

    ``sets`` are (label, kind, site names); default :func:`default_sets`. ``delta`` is top-1 minus the
    baseline's, in percentage points, on the same images. An empty ``sets`` gives the baseline only.
    """
    sets = default_sets(model) if sets is None else [(a, b, tuple(c)) for a, b, c in sets]
    modes = tuple(modes)
    for m in modes:
        if m not in MODES:
            raise KnockoutError(f"unknown knock-out mode {m!r}; use one of {MODES}")
    depth = {s.name: i for i, s in enumerate(find_sites(model))}
    stage = {s.name: s.stage for s in find_sites(model)}
    plans = [(label, kind, names, mode, _interventions(names, mode, mean_gates))
             for label, kind, names in sets for mode in modes]
    total = 1 + len(plans)
    base = accuracy(model, data, mean, std, batch_size=batch_size, device=device, should_stop=should_stop)
    rows = [{"target": "none", "kind": "baseline", "stage": 0, "depth": -1, "sites": "", "mode": "baseline",
             "top1": base["top1"], "delta": 0.0, "loss": base["loss"], "n": base["n"]}]
    if progress:
        progress(1, total)
    for i, (label, kind, names, mode, ivs) in enumerate(plans):
        r = accuracy(model, data, mean, std, interventions=ivs, batch_size=batch_size, device=device,
                     should_stop=should_stop)
        stages = {stage.get(n, 0) for n in names}
        rows.append({"target": label, "kind": kind, "stage": stages.pop() if len(stages) == 1 else 0,
                     "depth": min((depth.get(n, -1) for n in names), default=-1) if kind == "block" else -1,
                     "sites": ",".join(names), "mode": mode, "top1": r["top1"], "delta": r["top1"] - base["top1"],
                     "loss": r["loss"], "n": r["n"]})
        if progress:
            progress(i + 2, total)
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------- shipping and CLI


def shipped_path(pair: str | None = None) -> Path:
    """Where a pair's shipped knock-out table lives (may not exist; default: the default pair's)."""
    spec = pairs.PAIRS[pair or pairs.DEFAULT_PAIR]
    return shipped_dir() / f"knockout-{Path(spec.se_weights.location).stem}.{data_tag(DEFAULT_DATA, 'test')}.csv"


SHIP_COMMAND = "python -m se_core.knockout --ship"


def cache_path(checkpoint_sha256: str, data: ImageSet, n: int, modes: Sequence[str]) -> Path:
    """Where a computed knock-out table of (SE checkpoint, images, first ``n`` of them, modes) is kept:
    in the statistics cache, keyed by content so it is never computed twice."""
    key = cache_key(checkpoint_sha256, f"{data.digest}|{n}|{','.join(modes)}")
    return stats_cache_dir() / f"knockout-{key}.csv"


def save_table(path: Path, df: pd.DataFrame, provenance: dict) -> Path:
    """The table as CSV plus ``<path>.json`` with its provenance, both atomically."""
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
    atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(provenance, indent=1, sort_keys=True).encode())
    return path


MAX_TABLE_MB = 20.0
"""Largest knock-out table :func:`load_table` reads (a real one has a few dozen rows)."""
_NUMERIC = ("stage", "depth", "top1", "delta", "loss", "n")


def load_table(path: str | os.PathLike, *, max_mb: float = MAX_TABLE_MB) -> pd.DataFrame:
    """A knock-out table written by :func:`save_table` (shipped or cached), checked.

    Raises :class:`KnockoutError` naming the problem: missing, empty, too large, not UTF-8, not
    CSV, a missing column, a non-numeric or non-finite value (with its row), an unknown mode, or
    not exactly one baseline row.
    """
    p = Path(path)
    text = read_text(p, label=p.name, max_mb=max_mb, kind="knock-out tables", error=KnockoutError,
                     missing="no such knock-out table")
    if not text.strip():
        raise KnockoutError(f"{p.name} is empty")
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"target": str, "kind": str, "sites": str, "mode": str},
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise KnockoutError(f"{p.name} is not a readable CSV ({str(e).strip()[:200]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise KnockoutError(f"{p.name} lacks the column(s) {', '.join(map(repr, missing))}; a knock-out table has "
                            f"{', '.join(COLUMNS)}")
    for c in _NUMERIC:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.argmax(bad))
            raise KnockoutError(f"{p.name}: column '{c}' at row {i + 1} holds {df[c].iloc[i]!r}, not a finite number")
        df[c] = num
    if ((df["top1"] < 0) | (df["top1"] > 100)).any() or (df["n"] < 0).any() or (df["n"] % 1 != 0).any():
        raise KnockoutError(f"{p.name}: column 'top1' must be a percentage and 'n' a count of images")
    modes = set(df["mode"]) - {"baseline", *MODES}
    if modes:
        raise KnockoutError(f"{p.name}: column 'mode' holds {sorted(modes)}; known modes are baseline, {', '.join(MODES)}")
    if int((df["kind"] == "baseline").sum()) != 1:
        raise KnockoutError(f"{p.name}: column 'kind' must mark exactly one 'baseline' row, found "
                            f"{int((df['kind'] == 'baseline').sum())}")
    return df.astype({"n": "int64"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.knockout", description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default=None, help=f"one of {', '.join(PAIRS)} (its SE model is knocked out; default "
                    f"{DEFAULT_PAIR})")
    ap.add_argument("--data", default=DEFAULT_DATA, help="cifar10-jpeg | torchvision-cifar10:ROOT | ImageFolder path")
    ap.add_argument("--split", default="test")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of off,mean")
    ap.add_argument("--stats", default=None, help="statistics file whose all-class mean gates 'mean' mode uses "
                                                  "(default: the shipped ones, else computed on the same data)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--out", default=None, help="CSV path (default: print only)")
    ap.add_argument("--ship", action="store_true", help="the project's own pairs whose checkpoints are in data/checkpoints "
                    "(or the one --pair names), full CIFAR-10 JPEG test set, into data/stats/")
    args = ap.parse_args(argv)
    argv = list(argv if argv is not None else sys.argv[1:])
    try:
        if args.ship:
            names = ship_targets(ap, args, {"batch_size"})
            if args.pair is None:
                return max(main([*argv, "--pair", n]) for n in names)
    except (KnockoutError, StatsError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    args.pair = args.pair or DEFAULT_PAIR
    command = " ".join(["python -m se_core.knockout", *argv])
    try:
        pair = load_pair(args.pair)
        se = pair.se
        data = load_dataset(args.data, args.split, tuple(se.meta.input_size))
        if args.subset:
            data = data.subset(eval_subset_indices(len(data), args.subset))
        modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
        mean_gates, stats_src = None, None
        if "mean" in modes:
            path = Path(args.stats) if args.stats else shipped_paths(args.pair)["se"]
            if path.is_file():
                st = load_stats(path)
                stats_src = str(path)
            else:
                st = compute_stats(se.model, data, se.meta.mean, se.meta.std, batch_size=args.batch_size,
                                   device=pair.device)
                stats_src = f"computed on {data.name}"
            mean_gates = {s.name: st.mean(s.name) for s in st.gate_sites}
        t0 = time.perf_counter()
        df = knockout(se.model, data, se.meta.mean, se.meta.std, modes=modes, mean_gates=mean_gates,
                      batch_size=args.batch_size, device=pair.device,
                      progress=lambda i, n: print(f"  {i}/{n} evaluations", file=sys.stderr))
        wall = time.perf_counter() - t0
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(df.drop(columns=["sites"]).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        out = shipped_path(args.pair) if args.ship else (Path(args.out) if args.out else None)
        if out is not None:
            prov = provenance(se.source, role="se", arch=se.name, command=command)
            prov.update(data={"name": data.name, "digest": data.digest, "n": len(data)}, mean_gates_from=stats_src,
                        wall_time_s=round(wall, 2), modes=list(modes))
            save_table(out, df, prov)
            print(f"wrote {out}")
        return 0
    except (KnockoutError, StatsError, CheckpointError, DataError, WeightsMissing, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
