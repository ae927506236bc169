"""What the Inspect page computes, cached: both models on the images, gate interventions, display copies, the CSV.

Cache keys are the pair (:func:`pair_key`) and the images' digests, so a rerun with the same
images never runs a model again; the models and images themselves are passed unhashed.
"""
from __future__ import annotations

import io

import numpy as np
import streamlit as st

from se_core.analysis import inspect as ops
from se_core.models.weights import LoadedPair


def pair_key(pair: LoadedPair) -> str:
    """The identity of a loaded pair in cache keys: its name and both checkpoint files."""
    return f"{pair.spec.name}|{pair.se.source}|{pair.vanilla.source}"


@st.cache_data(max_entries=64, show_spinner="Running both models...")
def inspect(pair_key: str, digests: tuple[str, ...], names: tuple[str, ...], _pair: LoadedPair,
            _images: list) -> ops.InspectResult:
    """:func:`se_core.analysis.inspect.inspect`, once per (pair, images)."""
    return ops.inspect(_pair, _images, names)


@st.cache_data(max_entries=64, show_spinner="Running the SE model with gates changed...")
def intervene(pair_key: str, digests: tuple[str, ...], names: tuple[str, ...], off: tuple[str, ...],
              _pair: LoadedPair, _images: list, _original: ops.ModelProbe) -> ops.InterventionResult:
    """The SE model rerun with the gates of the ``off`` sites switched off, once per (pair, images, sites)."""
    return ops.intervene(_pair, _images, ops.switch_off(off), names, _original)


def csv_bytes(result: ops.InspectResult) -> bytes:
    """The long z/s/energy table as CSV bytes; built only when the download button is clicked."""
    return result.to_frame().to_csv(index=False).encode()


def csv_rows(result: ops.InspectResult) -> int:
    """Rows of :func:`csv_bytes` without building it: one per (image, model, site, channel)."""
    return sum(v.size for mp in (result.se, result.vanilla) for v in mp.z.values())


def _encoded(img, fmt: str) -> bytes:
    buf = io.BytesIO()
    ops.display_image(img).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buf.getvalue()


@st.cache_data(max_entries=128, show_spinner=False)
def thumb(digest: str, _img) -> bytes:
    """Display copy of an upload as JPEG bytes, shown with ``output_format="JPEG"`` so it is sent as is
    (large photos are not re-scaled or re-encoded on every rerun)."""
    return _encoded(_img, "JPEG")


@st.cache_data(max_entries=256, show_spinner=False)
def seen(pair_key: str, role: str, digest: str, _seen: np.ndarray) -> bytes:
    """What a model sees (its denormalized input) enlarged with nearest, as PNG bytes (lossless: the pixel
    grid stays crisp), cached per image and shown with ``output_format="PNG"`` so it is not re-encoded."""
    return _encoded(_seen, "PNG")
