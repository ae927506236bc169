"""The image input every image page shares: uploads plus a pick of the shipped CIFAR-10 samples.

Uploads are kept for the session (:data:`SHARED_KEY`, the newest :data:`MAX_SHARED`), so an image
uploaded on Inspect is there on Attributions and back (Streamlit empties a page's uploader when the
user leaves it): each page lists the session's uploads beyond its uploader's in its own multiselect
(``<key>_shared``), all selected but those the user took out on that page, so each page still
chooses among them. Each upload is decoded by :func:`se_core.data.samples.decode_named` (i.e. ``decode_image``); a bad
file shows its own ``st.error`` (file name, what was wrong, what to do) and the other images
still work. Nothing here raises.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

import streamlit as st

from se_core.data.samples import NamedImage, decode_named, list_samples, read_sample

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]
DEFAULT_SAMPLES = ("cat_0000", "ship_0000")
MAX_IMAGES = 12
SHARED_KEY = "uploaded_images"
MAX_SHARED = 24


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


def _shared() -> dict[str, tuple[str, bytes]]:
    """The session's uploads from every page: SHA-256 of the bytes -> (file name, bytes), oldest first."""
    return st.session_state.setdefault(SHARED_KEY, {})


def _keep(name: str, data: bytes) -> str:
    """Add one upload that decodes to the session's shared list (the newest MAX_SHARED are kept); its digest."""
    pool, digest = _shared(), hashlib.sha256(data).hexdigest()
    if not _decode(name, data, "upload")[0]:
        return digest  # its error is shown on the page it was uploaded on, not on every page
    pool.pop(digest, None)
    pool[digest] = (name, data)
    while len(pool) > MAX_SHARED:
        pool.pop(next(iter(pool)))
    return digest


def share(name: str, data: bytes) -> str:
    """Put an image into this session's uploads, as if uploaded (how another page hands one to the image pages);
    its digest. Also puts it back on the pages where the user had taken it out."""
    digest = _keep(name, data)
    for key in [k for k in st.session_state if str(k).endswith("_shared_off")]:
        st.session_state[key] = set(st.session_state[key]) - {digest}
    return digest


def _from_other_pages(key: str, here: set[str], removed: set[str]) -> list[tuple[str, bytes]]:
    """The session's uploads not in this page's uploader, in a multiselect of this page's own: all selected
    except those the user took out here (from the multiselect, or from this page's uploader)."""
    pool, pick_key, shown_key, off_key = _shared(), f"{key}_shared", f"{key}_shared_shown", f"{key}_shared_off"
    off: set[str] = st.session_state.get(off_key, set()) | removed
    if pick_key in st.session_state:  # the widget's value from the last run, with the user's change in it
        current = set(st.session_state[pick_key])
        off = (off | (set(st.session_state.get(shown_key, ())) - current)) - current
    options = [d for d in pool if d not in here]
    st.session_state[off_key], st.session_state[shown_key] = off, options
    if not options:
        return []
    st.session_state[pick_key] = [d for d in options if d not in off]
    picked = st.multiselect("Uploaded earlier in this session", options, key=pick_key, format_func=lambda d: pool[d][0],
                            help="Images uploaded on this or another page in this session; remove them here to "
                                 "leave them out of this page.")
    return [pool[d] for d in picked]


def image_inputs(key: str, default_samples: tuple[str, ...] = DEFAULT_SAMPLES,
                 max_images: int = MAX_IMAGES) -> list[ImageInput]:
    """Uploader + the session's uploads from other pages + sample picker; returns uploads first, then the chosen
    samples (deduplicated)."""
    samples = list_samples()
    continuing = f"{key}_files" in st.session_state  # False after coming from another page: the uploader is empty then
    left, right = st.columns([3, 2])
    with left:
        files = st.file_uploader(
            "Upload images", type=UPLOAD_TYPES, accept_multiple_files=True, key=f"{key}_files",
            help="PNG, JPEG, WebP, BMP, TIFF or GIF (first frame). Any size: each model resizes it "
                 "to its own input size. Several files compare the images with each other. Uploads stay "
                 "available on the other image pages for this session.")
        given: list[tuple[str, bytes]] = []
        for f in files or []:
            try:
                given.append((f.name, f.getvalue()))
            except Exception:  # noqa: BLE001 - a vanished upload must not break the page
                st.error(f"'{f.name}' could not be read from the upload; upload it again.")
        here = {_keep(name, data) for name, data in given}
        removed = st.session_state.get(f"{key}_here", set()) - here if continuing else set()
        st.session_state[f"{key}_here"] = here
        given += _from_other_pages(key, here, removed)
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
    for fname, data in given:
        images, problems = _decode(fname, data, "upload")
        for _, text in problems:
            st.error(text)
        for im in images:
            if im.digest in seen:
                duplicates.append(fname)
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
