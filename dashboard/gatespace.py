"""The per-image gate samples the Gate space page draws, its tables, and the selected images with their way
to Inspect.

Samples are kept on disk by :func:`se_core.analysis.gates.cached_sample`, keyed by checkpoint hash and data
digest (the same key as ``python -m se_core.gates``), read once per file version into a resource cache
(the page only reads them), and computed through :mod:`dashboard.pair_pass` (progress, Stop).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import handoff, pair_pass
from se_core.analysis import gates as G
from se_core.analysis import stats as S
from se_core.data.datasets import ImageSet
from se_core.models.weights import LoadedModel, LoadedPair
from se_core.util.files import file_sha256

SERIES = {"se:s": "SE model · gates s", "se:z": "SE model · squeeze z", "vanilla:z": "vanilla model · squeeze z"}
MAX_SHOWN = 24
"""Selected images drawn at most (the rest are counted)."""


@st.cache_resource(max_entries=8, show_spinner=False)
def _load(path: str, mtime_ns: int) -> G.GateSample:
    return G.load_sample(path)


@st.cache_data(max_entries=32, show_spinner=False)
def _shared_max_images(models_key: tuple[str, ...], data_digest: str, _pair: LoadedPair, _data: ImageSet) -> int | None:
    """:func:`se_core.analysis.gates.shared_max_images` once per (checkpoints, data set): it runs a dry forward."""
    return G.shared_max_images([_pair.se.model, _pair.vanilla.model], _data)


def computed(pair: LoadedPair, data: ImageSet) -> dict[str, G.GateSample] | None:
    """Both models' samples on ``data`` (the same images) from the disk cache, else a Compute button (with Stop
    and progress)."""
    def max_images() -> int | None:
        key = tuple(file_sha256(lm.source) if Path(lm.source).is_file() else str(lm.source)
                    for lm in (pair.se, pair.vanilla))
        return _shared_max_images(key, data.digest, pair, data)

    def compute(role: str, lm: LoadedModel, progress: S.Progress, should_stop: S.StopCheck) -> None:
        G.cached_sample(lm.source, lm.model, data, lm.meta.mean, lm.meta.std, role=role, arch=lm.name,
                        max_images=max_images(), device=next(lm.model.parameters()).device, progress=progress,
                        should_stop=should_stop, command="dashboard page Gate space")

    return pair_pass.cached_pass(pair, data, what="gate samples", key="gs",
                                 path_of=lambda lm: G.cache_path(lm.source, data, max_images()),
                                 load=lambda p: _load(str(p), p.stat().st_mtime_ns), compute=compute)


def disk_bytes(samples: dict[str, G.GateSample], pair: LoadedPair, data: ImageSet) -> int:
    """Bytes the samples' ``.npz`` files take on disk (compressed: less than the arrays in memory)."""
    models = {"se": pair.se, "vanilla": pair.vanilla}
    return sum(G.cache_path(models[role].source, data, s.meta.get("max_images")).stat().st_size
               for role, s in samples.items())


def series_options(samples: dict[str, G.GateSample]) -> list[str]:
    """The vector kinds there are: the SE model's gates and squeeze, the vanilla model's squeeze."""
    return [k for k in SERIES if k.split(":")[0] in samples and samples[k.split(":")[0]].sites(k.split(":")[1])]


def series_of(samples: dict[str, G.GateSample], series: str) -> tuple[G.GateSample, G.What]:
    role, what = series.split(":")
    return samples[role], what  # type: ignore[return-value]


def dependence_table(samples: dict[str, G.GateSample]) -> pd.DataFrame:
    """:func:`se_core.analysis.gates.dependence_frame` of every series, one ``series`` column naming it."""
    parts = []
    for key in series_options(samples):
        frame = G.dependence_frame(*series_of(samples, key))
        frame.insert(0, "series", SERIES[key])
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def map_table(sample: G.GateSample, proj: G.Projection) -> pd.DataFrame:
    """The map's points: sample row, image position in the data set, class, PC1, PC2 (its CSV)."""
    return pd.DataFrame({"row": np.arange(sample.n_images), "image": sample.index,
                         "class": [sample.classes[k] for k in sample.labels], "pc1": proj.coords[:, 0],
                         "pc2": proj.coords[:, 1]})


def overlap_text(top: G.TopChannels) -> str:
    """Markdown: the channels in every class's top k, and each class's own."""
    shared = ", ".join(map(str, top.shared())) or "none"
    own = "; ".join(f"**{cls}**: {', '.join(map(str, ch))}" for cls, ch in top.unique().items() if ch) or "none"
    return f"In every class's top {top.k}: {shared}.  \nIn one class's top {top.k} only: {own}."


def image_name(sample: G.GateSample, row: int) -> str:
    """The name an image of the data set goes to Inspect under: its class and position in the data set."""
    return f"{sample.classes[sample.labels[row]]}_{int(sample.index[row]):05d}.png"


def selected_images(sample: G.GateSample, data: ImageSet, rows: list[int]) -> None:
    """The selected images (the first :data:`MAX_SHOWN`) and a button opening one on Inspect with its gates."""
    if sample.meta.get("data", {}).get("digest") != data.digest:
        st.error("These gate samples belong to another data set than the one chosen; choose it again above.")
        return
    rows = [r for r in rows if 0 <= r < sample.n_images]
    st.markdown(f"**{len(rows)} image(s) selected**" + (f" (the first {MAX_SHOWN} shown)" if len(rows) > MAX_SHOWN else ""))
    shown = rows[:MAX_SHOWN]
    pictures = [np.kron(data.images[int(sample.index[r])].numpy(), np.ones((2, 2, 1), dtype=np.uint8)) for r in shown]
    st.image(pictures, caption=[f"{sample.classes[sample.labels[r]]} · {int(sample.index[r])}" for r in shown],
             width=72)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    row = c1.selectbox("Image to open on Inspect", shown, key="gs_open_pick",
                       format_func=lambda r: f"{image_name(sample, r)} ({data.name})")
    if c2.button("Open on Inspect", key="gs_open", icon=":material/visibility:",
                 help="Adds the image to this session's uploads and shows it on Inspect: its gates in every "
                      "block, both models' predictions and squeeze descriptors."):
        handoff.open_on_inspect(image_name(sample, row), data.images[int(sample.index[row])].numpy())
