"""The data-set input of the Class-wise page: the shipped statistics, the CIFAR-10 test set, or a typed folder.

Typed paths are confined to the configured data roots (:mod:`se_core.util.paths`; every entry of a
folder is checked once per modification time). Loaded data sets are kept in a bounded resource
cache. Problems become ``st.error``/``st.info``; nothing here raises.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from se_core.analysis import stats as S
from se_core.analysis.evaluate import eval_subset_indices
from se_core.data.datasets import DataError, ImageSet, load_dataset
from se_core.models.weights import LoadedPair
from se_core.util.paths import PathError, check_tree, data_roots, resolve_user_path

SOURCES = {"shipped": "Shipped: CIFAR-10 JPEG test set (full)",
           "cifar": "CIFAR-10 JPEG test set (compute here)",
           "folder": "ImageFolder folder (typed path)",
           "torchvision": "torchvision CIFAR-10 root (typed path)"}


@st.cache_resource(max_entries=4, show_spinner="Loading the data set...")
def dataset(spec: str, split: str, size: tuple[int, int], subset: int | None, stamp: int) -> ImageSet:
    """The data set ``spec`` at the model's input size, optionally an evenly spaced ``subset``;
    ``stamp`` (a folder's modification time) makes a changed folder load again."""
    data = load_dataset(spec, split, size)
    if subset and subset < len(data):
        data = data.subset(eval_subset_indices(len(data), subset))
    return data


@st.cache_data(max_entries=32, show_spinner=False)
def _check_tree(path: str, mtime_ns: int, roots: tuple[str, ...]) -> int:
    """Confinement check of a typed folder's entries, once per (folder, modification time, roots)."""
    return check_tree(path, roots)


def _folder_stamp(path: Path) -> int:
    """Latest modification time of a folder and its class sub-folders (changes when images come or go)."""
    return max([path.stat().st_mtime_ns] + [d.stat().st_mtime_ns for d in path.iterdir() if d.is_dir()])


def _typed_path(label: str, key: str, placeholder: str) -> Path | None:
    roots = data_roots()
    text = st.text_input(label, key=key, placeholder=placeholder,
                         help="Relative paths are looked up under each data root; absolute paths must lie inside one. "
                              "Allowed roots: " + ", ".join(str(r) for r in roots) + " (set SE_LENS_DATA_ROOTS to change).")
    st.caption("Allowed data roots: " + ", ".join(f"`{r}`" for r in roots))
    if not text.strip():
        st.info("Type a folder inside one of the data roots to use it.")
        return None
    try:
        path = resolve_user_path(text, roots)
        if not path.is_dir():
            raise PathError(f"{text} is a file; type the folder that holds the data")
        _check_tree(str(path), _folder_stamp(path), tuple(str(r) for r in roots))
    except PathError as e:
        st.error(f"That path cannot be used: {e}")
        return None
    except OSError as e:
        st.error(f"That folder cannot be read ({e.strerror or e}); check its permissions.")
        return None
    return path


def cifar_shaped(pair: LoadedPair) -> bool:
    """Whether the pair takes CIFAR-10's 32x32 images and 10 classes (the shipped JPEG test set fits it)."""
    return tuple(pair.se.meta.input_size) == (32, 32) and pair.se.meta.num_classes == 10


def _sources(pair: LoadedPair, pair_name: str, shipped: bool = True) -> list[str]:
    """The data choices for this pair, the one to open on first: the shipped statistics when this pair has
    them (and the page can use them), else computing here on the data set that fits it (CIFAR-10 test set, or
    a typed ImageFolder)."""
    fit = ["cifar", "folder", "torchvision"] if cifar_shaped(pair) else ["folder", "cifar", "torchvision"]
    return (["shipped"] if shipped and S.has_shipped(pair_name) else []) + fit


Command = Callable[[str, str, "int | None", str], str]


def _command_hint(command: Command, pair_name: str, spec: str, subset: int | None, split: str = "test") -> None:
    st.caption("The same from a shell (written to the same disk cache, so this page then shows it): "
               f"`{command(pair_name, spec, subset, split)}`")


def choose_data(pair: LoadedPair, pair_name: str, *, prefix: str = "cw", shipped: bool = True,
                command: Command = S.pair_command) -> tuple[str, ImageSet | None]:
    """(source key, data set to compute on, or None for the shipped statistics / nothing chosen). ``prefix``
    keys the widgets (one choice per page), ``shipped=False`` leaves out the shipped class-wise statistics
    (pages that need per-image values), ``command`` is the shell command printed for each choice."""
    options = _sources(pair, pair_name, shipped)
    key = f"{prefix}_source"
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    source = st.radio("Data", options, format_func=SOURCES.get, key=key, horizontal=True,
                      help="Computed once per (checkpoint, data set) and kept on disk.")
    size = tuple(pair.se.meta.input_size)
    spec, split, subset, stamp = None, "test", None, 0
    if source == "shipped":
        return source, None
    if shipped and "shipped" not in options and source == options[0]:
        st.info("No shipped statistics for this pair (SE Lens ships them for the CIFAR-10 ResNet-20 pair only): "
                "compute them here, once; they are kept on disk.")
    if source == "cifar":
        subset = int(st.number_input("Images (evenly spaced subset of the 10,000 test images)", 50, 10_000, 2_000,
                                     step=500, key=f"{prefix}_cifar_n"))
        spec = S.DEFAULT_DATA
        _command_hint(command, pair_name, spec, subset if subset < 10_000 else None)
    elif source == "folder":
        if not cifar_shaped(pair):
            st.info(f"This pair takes {size[0]}x{size[1]} images of {pair.se.meta.num_classes} classes; no such data "
                    "set ships with SE Lens (only CIFAR-10). Type the path of an ImageFolder on this machine: one "
                    "sub-folder per class, e.g. the ImageNet validation set sorted into class folders.")
        path = _typed_path("ImageFolder path (one sub-folder per class)", f"{prefix}_folder", "e.g. my_images")
        if path is None:
            _command_hint(command, pair_name, "PATH/TO/IMAGEFOLDER", None)
            return source, None
        spec, stamp = str(path), _folder_stamp(path)
        _command_hint(command, pair_name, spec, None)
    else:
        path = _typed_path("Folder holding torchvision's cifar-10-batches-py", f"{prefix}_tv_root", "e.g. torchvision")
        if path is None:
            return source, None
        split = st.radio("Split", ["test", "train"], key=f"{prefix}_tv_split", horizontal=True)
        spec = f"torchvision-cifar10:{path}"
        _command_hint(command, pair_name, spec, None, split)
    try:
        return source, dataset(spec, split, size, subset, stamp)
    except DataError as e:
        st.error(f"The data set cannot be loaded: {e}")
        return source, None
