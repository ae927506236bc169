"""Ablation result tables: schema, validating loader, per-axis summaries, and the paper's reference rows.

The runner (:mod:`se_core.runs.ablate`) writes one long CSV, one row per trial (config x seed). A
trial that several axes share (the default SE config belongs to every axis) is one row whose
``axes`` column lists each ``axis:setting`` it stands for; :func:`axis_rows` expands it.
:func:`load_ablation_table` checks a table made by anyone (runner, merge, or hand) and raises
:class:`TableError` naming the bad column or row. The paper's ImageNet rows (Hu et al., TPAMI
v4 Tables 10-16, SE-ResNet-50) come from ``data/reference/ablations.csv``, a copy of
``../shared/reference/ablations.csv``, and are mapped onto our axis/setting labels.

Pandas only: no torch, no Streamlit.
"""
from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from se_core import config
from se_core.config import REPO_ROOT
from se_core.util.files import read_text

REFERENCE_PATH = REPO_ROOT / "data" / "reference" / "ablations.csv"
SHARED_REFERENCE_PATH = REPO_ROOT.parent / "shared" / "reference" / "ablations.csv"
MAX_TABLE_MB = 20.0
MIN_EPOCHS = 10

BASELINE_AXIS, BASELINE_SETTING = "baseline", "no SE"
DEFAULT_AXIS, DEFAULT_SETTING = "default", "SE (default)"


class TableError(ValueError):
    """A result table that cannot be used; the message names the column or row and what to do."""


@dataclass(frozen=True)
class AxisInfo:
    """One ablation axis: the SEConfig field it varies, its default setting, and the paper table."""

    name: str
    title: str
    field: str
    default_setting: str
    paper_table: int
    order: tuple[str, ...] = ()


AXES: dict[str, AxisInfo] = {a.name: a for a in (
    AxisInfo("reduction_ratio", "Reduction ratio r", "reduction", "r=16", 10),
    AxisInfo("squeeze", "Squeeze operator", "squeeze", "avg", 11, ("avg", "max", "none")),
    AxisInfo("excitation", "Excitation gate", "gate", "sigmoid", 12, ("sigmoid", "tanh", "relu")),
    AxisInfo("stages", "Stages carrying SE", "stages", "all", 13),
    AxisInfo("integration", "Integration strategy", "integration", "standard", 14,
             ("standard", "pre", "post", "identity")),
    AxisInfo("se_3x3", "SE after the 3x3 conv (SE_3x3)", "site", "output", 15, ("output", "3x3")),
    AxisInfo("no_squeeze", "No squeeze (NoSqueeze)", "squeeze", "avg", 16, ("avg", "none")),
)}
KNOWN_AXES = (BASELINE_AXIS, DEFAULT_AXIS, *AXES)

# column -> kind. "int"/"float": numeric, required non-empty; "int?"/"float?": numeric, may be empty;
# "str": non-empty text; "str?": text, may be empty.
SCHEMA: dict[str, str] = {
    "sweep": "str?", "index": "int?", "trial_id": "str", "axis": "str", "setting": "str", "axes": "str?",
    "arch": "str", "reduction": "int?", "squeeze": "str?", "gate": "str?", "stages": "str?", "integration": "str?",
    "site": "str?", "seed": "int", "epochs": "int", "batch_size": "int?", "lr": "float?", "schedule": "str?",
    "data": "str?", "train_subset": "int?", "test_subset": "int?", "top1_err": "float", "top5_err": "float",
    "test_loss": "float?", "test_n": "int?", "params": "int", "flops": "int", "train_wall_s": "float?", "precision": "str?",
    "world_size": "int?", "command": "str?", "commit": "str?", "hardware": "str?", "date": "str?",
}
COLUMNS: tuple[str, ...] = tuple(SCHEMA)
REQUIRED: tuple[str, ...] = ("trial_id", "axis", "setting", "arch", "seed", "epochs", "top1_err", "top5_err",
                             "params", "flops")
"""Columns every table must have; the others of :data:`COLUMNS` are filled in empty when absent."""
VOLATILE: tuple[str, ...] = ("train_wall_s", "date", "command", "hardware", "commit")
"""Columns that legitimately differ between two runs of the same trial (time, place, invocation)."""


def setting_label(axis: str, value: object) -> str:
    """Our setting label for ``value`` of ``axis``: ``r=16``, ``stage 2``, ``stages 2+3``, ``all``, ``max``..."""
    if axis == "reduction_ratio":
        return f"r={int(value)}"  # type: ignore[arg-type]
    if axis == "stages":
        if value is None or value == "all":
            return "all"
        st = (value,) if isinstance(value, int) else tuple(value)  # type: ignore[arg-type]
        return f"stage {st[0]}" if len(st) == 1 else "stages " + "+".join(map(str, sorted(st)))
    return str(value)


def format_axes(memberships: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> str:
    """``[('squeeze','avg'), ('excitation','sigmoid')]`` -> ``'squeeze:avg;excitation:sigmoid'``."""
    return ";".join(f"{a}:{s}" for a, s in memberships)


def parse_axes(text: str) -> list[tuple[str, str]]:
    """Inverse of :func:`format_axes`; malformed parts raise ``ValueError``."""
    out = []
    for part in (p.strip() for p in str(text).split(";")):
        if not part:
            continue
        a, sep, s = part.partition(":")
        if not sep or not a.strip() or not s.strip():
            raise ValueError(f"{part!r} is not 'axis:setting'")
        out.append((a.strip(), s.strip()))
    return out


# ------------------------------------------------------------------------------------------ loading
def _read_source(src: str | os.PathLike | bytes, max_mb: float, name: str | None) -> tuple[str, str]:
    upload = isinstance(src, (bytes, bytearray, memoryview))
    label = name or ("uploaded table" if upload else Path(src).name)
    text = read_text(src, label=label, max_mb=max_mb, kind="result tables", error=TableError, encoding="utf-8-sig",
                     missing=f"no such file ({src}); give the path of an ablation CSV.",
                     large_hint="load a smaller table (one row per trial).", utf8_hint="save it as UTF-8 CSV.")
    return text, label


def load_ablation_table(src: str | os.PathLike | bytes, *, max_mb: float = MAX_TABLE_MB,
                        name: str | None = None) -> pd.DataFrame:
    """Read and check an ablation table (a path or the raw bytes of an upload).

    Returns a DataFrame with every column of :data:`COLUMNS` (absent optional ones empty), numeric
    columns as numbers. Raises :class:`TableError` naming the problem: too large, not UTF-8, empty,
    unparseable CSV, a missing required column, a non-numeric value or an empty required cell
    (with its row), an unknown axis, a malformed ``axes`` cell, or a repeated trial.
    """
    text, label = _read_source(src, max_mb, name)
    if not text.strip():
        raise TableError(f"{label} is empty; an ablation table needs a header and one row per trial.")
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise TableError(f"{label} is not a readable CSV ({str(e).strip()}); check its separators and quoting.") from None
    if not isinstance(raw.index, pd.RangeIndex):  # pandas took the first column(s) as an index
        raise TableError(f"{label}: the first row has more fields than the header ({len(raw.columns)} columns); "
                         "check for an extra separator in that row or a missing column name.")
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise TableError(f"{label} lacks the required column(s) {', '.join(repr(c) for c in missing)}; "
                         f"an ablation table needs {', '.join(REQUIRED)}.")
    if raw.empty:
        raise TableError(f"{label} has a header but no rows; run the sweep first.")
    df = raw.fillna("").map(lambda v: v.strip() if isinstance(v, str) else v)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = ""

    def where(i: int) -> str:
        tid = df.at[i, "trial_id"] if "trial_id" in df.columns else ""
        return f"row {i + 1} (line {i + 2}{', trial ' + tid if tid else ''})"

    for col, kind in SCHEMA.items():
        vals = df[col]
        required = not kind.endswith("?")
        base = kind.rstrip("?")
        if required:
            empty = vals.eq("")
            if empty.any():
                raise TableError(f"{label}: column '{col}' is empty at {where(int(empty.idxmax()))}; "
                                 f"every row needs a {col}.")
        if base == "str":
            continue
        is_nan = vals.str.lower().isin(("nan", "na", "n/a", "null", "none"))
        num = pd.to_numeric(vals.where(vals.ne("") & ~is_nan, None), errors="coerce")
        bad = num.isna() & vals.ne("") & ~is_nan
        if bad.any():
            i = int(bad.idxmax())
            raise TableError(f"{label}: column '{col}' at {where(i)} holds {vals[i]!r}, which is not a number.")
        if required and is_nan.any():
            raise TableError(f"{label}: column '{col}' is NaN at {where(int(is_nan.idxmax()))}; "
                             "every row needs a number there.")
        finite = num.dropna()
        if (~finite.map(math.isfinite)).any():
            i = int(finite[~finite.map(math.isfinite)].index[0])
            raise TableError(f"{label}: column '{col}' at {where(i)} is not finite ({vals[i]!r}).")
        if base == "int":
            frac = finite[finite != finite.round()]
            if len(frac):
                i = int(frac.index[0])
                raise TableError(f"{label}: column '{col}' at {where(i)} holds {vals[i]!r}; it must be a whole number.")
            df[col] = num.astype("Int64")
        else:
            df[col] = num.astype(float)
    for col in ("top1_err", "top5_err"):
        out = df[(df[col] < 0) | (df[col] > 100)]
        if len(out):
            i = int(out.index[0])
            raise TableError(f"{label}: column '{col}' at {where(i)} is {df.at[i, col]}, outside 0-100 (it is an "
                             "error rate in %).")
    unknown = df[~df["axis"].isin(KNOWN_AXES)]
    if len(unknown):
        i = int(unknown.index[0])
        raise TableError(f"{label}: column 'axis' at {where(i)} is {df.at[i, 'axis']!r}; known axes are "
                         f"{', '.join(KNOWN_AXES)}.")
    for i, cell in df["axes"].items():
        try:
            for a, _ in parse_axes(cell):
                if a not in KNOWN_AXES:
                    raise ValueError(f"unknown axis {a!r}")
        except ValueError as e:
            raise TableError(f"{label}: column 'axes' at {where(int(i))} is malformed ({e}); write it as "
                             "'axis:setting;axis:setting'.") from None
    dup = df[df.duplicated(["trial_id"], keep="first")]
    if len(dup):
        i = int(dup.index[0])
        first = int(df.index[df["trial_id"] == df.at[i, "trial_id"]][0])
        raise TableError(f"{label}: trial {df.at[i, 'trial_id']!r} appears twice ({where(first)} and {where(i)}); "
                         "keep one of the two rows.")
    extra = [c for c in df.columns if c not in SCHEMA]
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def table_problems(df: pd.DataFrame) -> list[str]:
    """Warnings about a valid table whose rows do not compare cleanly (mixed schedules, short runs)."""
    out = []
    base = df.assign(arch=df["arch"].astype(str).str.removeprefix("se_"))  # SE twin of the same network
    for col in ("arch", "epochs", "data", "train_subset", "test_subset", "batch_size", "lr"):
        vals = base[col].dropna()
        vals = vals[vals.astype(str) != ""]
        if vals.nunique() > 1:
            out.append(f"rows differ in '{col}' ({', '.join(map(str, sorted(vals.astype(str).unique())))}); "
                       "settings trained differently do not compare cleanly.")
    short = int(df["epochs"].min())
    if short < MIN_EPOCHS:
        out.append(f"some trials ran only {short} epoch(s) (< {MIN_EPOCHS}); their errors are mostly noise.")
    if not (df["axis"] == BASELINE_AXIS).any():
        out.append("no vanilla baseline row (axis 'baseline'); changes relative to no SE cannot be shown.")
    return out


# ---------------------------------------------------------------------------------------- summaries
def memberships(row: pd.Series) -> list[tuple[str, str]]:
    """Every (axis, setting) a table row stands for: its ``axes`` cell, else its own axis/setting."""
    got = parse_axes(row["axes"]) if isinstance(row.get("axes"), str) and row["axes"] else []
    own = (row["axis"], row["setting"])
    return got if own in got else [own, *got]


def _setting_key(axis: str, setting: str) -> tuple:
    if axis == BASELINE_AXIS:
        return (-1, 0, "")
    if axis == "reduction_ratio":
        m = re.fullmatch(r"r=(\d+)", setting)
        return (0, int(m.group(1)), "") if m else (1, 0, setting)
    if axis == "stages":
        if setting == "all":
            return (2, 0, "")
        nums = [int(n) for n in re.findall(r"\d+", setting)]
        return (0 if len(nums) == 1 else 1, nums[0] if nums else 0, setting)
    order = AXES[axis].order if axis in AXES else ()
    return (0, order.index(setting), "") if setting in order else (1, 0, setting)


def axis_rows(df: pd.DataFrame, axis: str, with_baseline: bool = True) -> pd.DataFrame:
    """The trial rows of ``axis`` (one per trial and membership), ``setting`` set to the setting on
    this axis, plus the vanilla baseline rows (setting ``'no SE'``) when asked. Ordered by setting."""
    rows = []
    for _, r in df.iterrows():
        for a, s in memberships(r):
            if a == axis:
                rows.append({**r.to_dict(), "axis": axis, "setting": s})
                break
        else:
            if with_baseline and r["axis"] == BASELINE_AXIS:
                rows.append({**r.to_dict(), "setting": BASELINE_SETTING})
    out = pd.DataFrame(rows, columns=df.columns)
    if out.empty:
        return out
    keys = out["setting"].map(lambda s: _setting_key(BASELINE_AXIS if s == BASELINE_SETTING else axis, s))
    return out.assign(_k=keys).sort_values(["_k", "seed"], kind="stable").drop(columns="_k").reset_index(drop=True)


def axes_present(df: pd.DataFrame) -> list[str]:
    """Known ablation axes that have at least one trial in ``df``, in paper-table order."""
    seen = {a for _, r in df.iterrows() for a, _ in memberships(r)}
    return [a for a in AXES if a in seen]


SUMMARY_COLUMNS = ("setting", "n", "seeds", "top1_mean", "top1_std", "top5_mean", "top5_std", "params", "flops",
                   "d_vs_vanilla", "d_vs_vanilla_se", "d_vs_default", "d_vs_default_se", "params_added",
                   "flops_added_pct", "is_default", "is_baseline")


def diff_se(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    """Standard error of a difference of two independent means, sqrt(s_a²/n_a + s_b²/n_b); NaN unless
    both sides have a sample std (two or more seeds), so a single seed never looks certain."""
    if min(n_a, n_b) < 2 or math.isnan(std_a) or math.isnan(std_b):
        return float("nan")
    return math.sqrt(std_a ** 2 / n_a + std_b ** 2 / n_b)


def pooled_seed_std(df: pd.DataFrame) -> tuple[float, int]:
    """(sigma, dof): the seed-to-seed std of top-1 error pooled over every config of ``df`` (one config =
    one ``axis``/``setting``) that has two or more seeds, sqrt(sum (n_i - 1) s_i² / sum (n_i - 1)).
    Every config shares network and recipe, so one noise level fits them all, and two seeds per
    config estimate it far better pooled than each on its own (two equal results would claim none)."""
    g = df.groupby(["axis", "setting"], sort=False)["top1_err"]
    n, var = g.count(), g.var(ddof=1)
    dof = int((n[n > 1] - 1).sum())
    if dof == 0:
        return float("nan"), 0
    return math.sqrt(float(((n - 1) * var)[n > 1].sum()) / dof), dof


def summarize_axis(df: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per setting of ``axis`` (baseline first): seeds, mean/std top-1 and top-5 error, params,
    FLOPs, the change of mean top-1 error (percentage points) vs no SE and vs the default SE with
    the standard error of each change (sigma * sqrt(1/n_a + 1/n_b), sigma from
    :func:`pooled_seed_std` over the whole table, so one-seed settings get one too), and the
    parameters / FLOPs (%) added over no SE."""
    rows = axis_rows(df, axis)
    if rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    # The default SE trial's setting on this axis (from the data), else the paper's default.
    dflt_rows = [s for _, r in df[df["axis"] == DEFAULT_AXIS].iterrows() for a, s in memberships(r) if a == axis]
    default = dflt_rows[0] if dflt_rows else (AXES[axis].default_setting if axis in AXES else None)
    out = []
    for s, g in rows.groupby("setting", sort=False):
        out.append({"setting": s, "n": len(g), "seeds": " ".join(str(int(v)) for v in sorted(g["seed"])),
                    "top1_mean": float(g["top1_err"].mean()),
                    "top1_std": float(g["top1_err"].std(ddof=1)) if len(g) > 1 else float("nan"),
                    "top5_mean": float(g["top5_err"].mean()),
                    "top5_std": float(g["top5_err"].std(ddof=1)) if len(g) > 1 else float("nan"),
                    "params": int(g["params"].iloc[0]), "flops": int(g["flops"].iloc[0]),
                    "is_default": s == default, "is_baseline": s == BASELINE_SETTING})
    derived = ("d_vs_vanilla", "d_vs_vanilla_se", "d_vs_default", "d_vs_default_se", "params_added",
               "flops_added_pct")
    res = pd.DataFrame(out, columns=[c for c in SUMMARY_COLUMNS if c not in derived])
    van = res[res["is_baseline"]]
    nan = float("nan")
    sigma = pooled_seed_std(df)[0]
    for col, ref in (("d_vs_vanilla", van), ("d_vs_default", res[res["is_default"]])):
        b = ref.iloc[0] if len(ref) else None
        res[col] = res["top1_mean"] - float(b["top1_mean"]) if b is not None else nan
        res[col + "_se"] = [nan if b is None or r.setting == b["setting"] else sigma * math.sqrt(1 / r.n + 1 / b["n"])
                            for r in res.itertuples()]
    res["params_added"] = res["params"] - int(van["params"].iloc[0]) if len(van) else nan
    res["flops_added_pct"] = 100.0 * (res["flops"] / int(van["flops"].iloc[0]) - 1) if len(van) else nan
    return res[list(SUMMARY_COLUMNS)]


# ---------------------------------------------------------------------------------------- reference
PAPER_SETTING_MAP: dict[tuple[str, str], tuple[str, str]] = {
    **{("reduction_ratio", f"r={r}"): ("reduction_ratio", f"r={r}") for r in (2, 4, 8, 16, 32)},
    ("reduction_ratio", "ResNet-50 (original)"): (BASELINE_AXIS, BASELINE_SETTING),
    ("squeeze", "Max"): ("squeeze", "max"), ("squeeze", "Avg"): ("squeeze", "avg"),
    ("excitation", "ReLU"): ("excitation", "relu"), ("excitation", "Tanh"): ("excitation", "tanh"),
    ("excitation", "Sigmoid"): ("excitation", "sigmoid"),
    ("stages", "ResNet-50"): (BASELINE_AXIS, BASELINE_SETTING),
    ("stages", "SE_Stage_2"): ("stages", "stage 1"), ("stages", "SE_Stage_3"): ("stages", "stage 2"),
    ("stages", "SE_Stage_4"): ("stages", "stage 3"), ("stages", "SE_All"): ("stages", "all"),
    ("integration", "SE"): ("integration", "standard"), ("integration", "SE-PRE"): ("integration", "pre"),
    ("integration", "SE-POST"): ("integration", "post"), ("integration", "SE-Identity"): ("integration", "identity"),
    ("se_3x3", "SE"): ("se_3x3", "output"), ("se_3x3", "SE_3x3"): ("se_3x3", "3x3"),
    ("no_squeeze", "ResNet-50"): (BASELINE_AXIS, BASELINE_SETTING), ("no_squeeze", "NoSqueeze"): ("no_squeeze", "none"),
    ("no_squeeze", "SE"): ("no_squeeze", "avg"),
}
"""(paper table's ``ablation``, ``setting``) -> (our axis, our setting). The paper's SE_Stage_2/3/4 are
ResNet-50's conv2_x/conv3_x/conv4_x = its stages 1/2/3 of 4; our CIFAR ResNet-20 has 3 stages, so
our 'stage 3' is the last stage while the paper's conv4_x is not (conv5_x has no single-stage row)."""

STAGE_NOTE = {"stage 1": "SE_Stage_2: conv2_x, stage 1 of 4 (ours: stage 1 of 3, 16 channels)",
              "stage 2": "SE_Stage_3: conv3_x, stage 2 of 4 (ours: stage 2 of 3, 32 channels)",
              "stage 3": "SE_Stage_4: conv4_x, stage 3 of 4 (ours: stage 3 of 3 = the last, 64 channels)",
              "all": "SE_All: every stage (ours: all 3 stages)"}
REFERENCE_COLUMNS = ("ablation", "setting", "top1_err", "top5_err", "gflops", "params_m", "source_table", "verified")


def paper_label(axis: str) -> str:
    """Caption for the paper's rows of ``axis``."""
    return (f"reported by Hu et al. (TPAMI v4, Table {AXES[axis].paper_table}), SE-ResNet-50 on ImageNet")


def load_reference(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's ablation rows with our labels: columns of the CSV plus ``table`` (int), ``our_axis``,
    ``our_setting``, ``d_vs_vanilla`` and ``d_vs_se`` (change of top-1 error in points vs the paper's
    ResNet-50 and vs its default SE-ResNet-50, both from the ablation tables' shared schedule)."""
    p = Path(path) if path is not None else REFERENCE_PATH
    if not p.is_file():
        raise TableError(f"paper reference table not found at {p}; copy ../shared/reference/ablations.csv "
                         "to data/reference/ablations.csv.")
    try:
        df = pd.read_csv(p, dtype={"ablation": str, "setting": str, "source_table": str, "verified": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise TableError(f"{p.name} is not a readable CSV ({e}).") from None
    missing = [c for c in REFERENCE_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(f"{p.name} lacks the column(s) {', '.join(missing)}.")
    for c in ("top1_err", "top5_err", "gflops", "params_m"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["table"] = df["source_table"].str.extract(r"Table\s+(\d+)", expand=False).astype("Int64")
    mapped = [PAPER_SETTING_MAP.get((a, s), (None, None)) for a, s in zip(df["ablation"], df["setting"])]
    df["our_axis"] = [m[0] for m in mapped]
    df["our_setting"] = [m[1] for m in mapped]
    # ResNet-50 in the ablation schedule: the table's own row, else the one other tables print.
    base_all = df.loc[df["our_axis"] == BASELINE_AXIS, "top1_err"]
    d_van, d_se = [], []
    for abl, g in df.groupby("ablation", sort=False):
        base = g.loc[g["our_axis"] == BASELINE_AXIS, "top1_err"]
        b = float(base.iloc[0]) if len(base) else (float(base_all.iloc[0]) if len(base_all) else float("nan"))
        info = AXES.get(abl)
        se = g.loc[g["our_setting"] == (info.default_setting if info else None), "top1_err"]
        s = float(se.iloc[0]) if len(se) else float("nan")
        for i in g.index:
            d_van.append((i, df.at[i, "top1_err"] - b))
            d_se.append((i, df.at[i, "top1_err"] - s))
    df["d_vs_vanilla"] = pd.Series(dict(d_van))
    df["d_vs_se"] = pd.Series(dict(d_se))
    return df


def reference_rows(ref: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The paper's rows for ``axis`` (its own table), ordered like ours (baseline first)."""
    g = ref[ref["ablation"] == axis].copy()
    if g.empty:
        return g
    g["_k"] = [_setting_key(a, s) if isinstance(a, str) else (9, 0, "")
               for a, s in zip(g["our_axis"], g["our_setting"])]
    return g.sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)


DELTA_SERIES = ("ours vs no SE", "ours vs default SE", "paper vs ResNet-50", "paper vs default SE")


def compare_axis(summary: pd.DataFrame, ref_rows: pd.DataFrame) -> pd.DataFrame:
    """Long table of each setting's change in mean top-1 error (points) relative to its own network's
    baselines: ours vs no SE and vs our default SE, the paper's vs its ResNet-50 and its default SE.
    Columns ``setting``, ``series`` (categorical, ordered as :data:`DELTA_SERIES`), ``delta`` and ``se``,
    the standard error of our changes (NaN for the paper's, which reports one run per row); settings in
    our order. A baseline against itself is left out (zero by definition), as the paper's rows do."""
    nan = float("nan")
    rows = []
    for _, r in summary.iterrows():
        for series, col, itself in zip(DELTA_SERIES[:2], ("d_vs_vanilla", "d_vs_default"), ("is_baseline", "is_default")):
            if not r[itself]:
                rows.append({"setting": r["setting"], "series": series, "delta": r[col], "se": r[col + "_se"]})
    for _, r in ref_rows.iterrows():
        if isinstance(r.get("our_setting"), str):
            for series, col in zip(DELTA_SERIES[2:], ("d_vs_vanilla", "d_vs_se")):
                rows.append({"setting": r["our_setting"], "series": series, "delta": r[col], "se": nan})
    out = pd.DataFrame(rows, columns=["setting", "series", "delta", "se"]).dropna(subset=["delta"])
    out["series"] = pd.Categorical(out["series"], categories=DELTA_SERIES)
    order = list(dict.fromkeys([*summary.get("setting", []), *[s for s in ref_rows.get("our_setting", [])
                                                                if isinstance(s, str)]]))
    if out.empty:
        return out
    out["_o"] = out["setting"].map(order.index)
    return out.sort_values(["_o", "series"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _pm(mean: float, err: float, sign: bool = False) -> str:
    if math.isnan(mean):
        return "–"
    m = f"{mean:+.2f}" if sign else f"{mean:.2f}"
    return m if math.isnan(err) else f"{m} ± {err:.2f}"


def summary_markdown(df: pd.DataFrame, ref: pd.DataFrame | None = None) -> list[str]:
    """Markdown lines: one table per axis of ``df`` with each setting's seeds, top-1 error mean ± std,
    its change vs no SE and vs the default SE (± standard error), the cost added over no SE, and the
    paper's top-1 error and change vs ResNet-50 for the same setting (when ``ref`` is given)."""
    lines: list[str] = []
    for axis in axes_present(df):
        summ = summarize_axis(df, axis)
        paper = reference_rows(ref, axis) if ref is not None else pd.DataFrame()
        by_setting = {r["our_setting"]: r for _, r in paper.iterrows() if isinstance(r.get("our_setting"), str)}
        info = AXES[axis]
        lines += [f"**{info.title}** (paper Table {info.paper_table})", "",
                  "| setting | seeds | top-1 err % (mean ± std) | Δ vs no SE (pt ± s.e.) | Δ vs default SE (pt ± s.e.) "
                  "| params added | FLOPs added | paper top-1 err % | paper Δ vs ResNet-50 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in summ.itertuples():
            p = by_setting.get(r.setting)
            d_van = "–" if r.is_baseline else _pm(r.d_vs_vanilla, r.d_vs_vanilla_se, sign=True)
            d_def = "–" if r.is_default else _pm(r.d_vs_default, r.d_vs_default_se, sign=True)
            added = "–" if math.isnan(r.params_added) else f"{int(r.params_added):+,}"
            flops = "–" if math.isnan(r.flops_added_pct) else f"{r.flops_added_pct:+.3f} %"
            p_err = "–" if p is None else _pm(float(p["top1_err"]), float("nan"))
            p_d = "–" if p is None or r.is_baseline else _pm(float(p["d_vs_vanilla"]), float("nan"), sign=True)
            name = f"{r.setting} (default)" if r.is_default else r.setting
            lines.append(f"| {name} | {r.seeds} | {_pm(r.top1_mean, r.top1_std)} | {d_van} | {d_def} | {added} "
                         f"| {flops} | {p_err} | {p_d} |")
        lines.append("")
    return lines[:-1]


def shipped_tables(root: str | os.PathLike | None = None) -> list[Path]:
    """Ablation CSVs shipped in :func:`se_core.config.ablations_dir` (``data/ablations``; name order)."""
    d = Path(root) if root is not None else config.ablations_dir()
    return sorted(p for p in d.glob("*.csv") if p.is_file()) if d.is_dir() else []


__all__ = ["AXES", "AxisInfo", "BASELINE_AXIS", "BASELINE_SETTING", "COLUMNS", "DEFAULT_AXIS",
           "DEFAULT_SETTING", "KNOWN_AXES", "MAX_TABLE_MB", "MIN_EPOCHS", "PAPER_SETTING_MAP", "REFERENCE_PATH",
           "REQUIRED", "SCHEMA", "SHARED_REFERENCE_PATH", "STAGE_NOTE", "SUMMARY_COLUMNS", "TableError", "VOLATILE",
           "DELTA_SERIES", "axes_present", "diff_se", "pooled_seed_std", "axis_rows", "compare_axis", "format_axes", "load_ablation_table", "load_reference", "memberships",
           "paper_label", "parse_axes", "reference_rows", "setting_label", "shipped_tables", "summarize_axis", "summary_markdown",
           "table_problems"]
