"""The image input every image page shares: uploads plus a pick of the shipped CIFAR-10 samples.

Each upload is decoded by :func:`se_core.data.samples.decode_named` (i.e. ``decode_image``); a bad
file shows its own ``st.error`` (file name, what was wrong, what to do) and the other images
still work. Nothing here raises.
"""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from se_core.data.samples import NamedImage, decode_named, list_samples, read_sample

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]
DEFAULT_SAMPLES = ("cat_0000", "ship_0000")
MAX_IMAGES = 12


ImageInput = NamedImage
"""One usable image: the name the user knows, the SHA-256 of its raw bytes, the decoded RGB image, its source."""


@st.cache_resource(max_entries=32, show_spinner=False)
def _decode(name: str, data: bytes, source: str) -> tuple[list[NamedImage], list[tuple[str, str]]]:
    """Decode one file, cached by its bytes so reruns do not decode again. A resource cache: a hit returns
    the decoded images themselves (callers only read them) instead of unpickling a copy of every pixel,
    which for a large photo means copying tens of megabytes on every rerun."""
    images, problems = decode_named([(name, data)], source)
    return images, [(p.name, p.text()) for p in problems]


@st.cache_data(max_entries=64, show_spinner=False)
def _sample_bytes(name: str) -> bytes:
    return read_sample(name)


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name} ({k})", k + 1
    taken.add(out)
    return out


def image_inputs(key: str, default_samples: tuple[str, ...] = DEFAULT_SAMPLES,
                 max_images: int = MAX_IMAGES) -> list[ImageInput]:
    """Uploader + sample picker; returns uploads first, then the chosen samples (deduplicated)."""
    samples = list_samples()
    left, right = st.columns([3, 2])
    with left:
        files = st.file_uploader(
            "Upload images", type=UPLOAD_TYPES, accept_multiple_files=True, key=f"{key}_files",
            help="PNG, JPEG, WebP, BMP, TIFF or GIF (first frame). Any size: each model resizes it "
                 "to its own input size. Several files compare the images with each other.")
    with right:
        chosen = st.multiselect(
            "Shipped samples (CIFAR-10 test)", samples, default=[s for s in default_samples if s in samples],
            key=f"{key}_samples", placeholder="Choose sample images",
            help="The first CIFAR-10 test images of each class (data/samples). Shown together with "
                 "your uploads; remove them here to look at your images only.")
    if not samples:
        st.warning("No shipped sample images were found in data/samples; upload an image, or create the "
                   "samples with `python -m se_core.samples --out data/samples --per-class 3`.")

    out: list[ImageInput] = []
    seen: set[str] = set()
    names: set[str] = set()
    duplicates: list[str] = []
    for f in files or []:
        try:
            data = f.getvalue()
        except Exception:  # noqa: BLE001 - a vanished upload must not break the page
            st.error(f"'{f.name}' could not be read from the upload; upload it again.")
            continue
        images, problems = _decode(f.name, data, "upload")
        for _, text in problems:
            st.error(text)
        for im in images:
            if im.digest in seen:
                duplicates.append(f.name)
                continue
            seen.add(im.digest)
            out.append(replace(im, name=_unique(im.name, names)))
    for name in chosen:
        try:
            images, problems = _decode(name, _sample_bytes(name), "sample")
        except FileNotFoundError:
            st.error(f"Sample '{name}' is missing from data/samples; choose another one or recreate the "
                     "samples with `python -m se_core.samples --out data/samples --per-class 3`.")
            continue
        for _, text in problems:
            st.error(text)
        for im in images:
            if im.digest not in seen:
                seen.add(im.digest)
                out.append(replace(im, name=_unique(im.name, names)))
    if duplicates:
        st.caption(f"Skipped {len(duplicates)} file(s) identical to another image: {', '.join(duplicates)}.")
    if len(out) > max_images:
        st.warning(f"{len(out)} images given; only the first {max_images} are shown. Remove some uploads or "
                   "samples to see the others.")
        out = out[:max_images]
    return out
