"""The shared model cache reloads a pair whose weight files changed under the same name."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import streamlit as st

from se_core.models.pairs import DEFAULT_PAIR, PAIRS, weights_stamp


def test_a_rewritten_checkpoint_is_loaded_again(tiny_data_dir: Path) -> None:
    from dashboard import caching

    st.cache_resource.clear()
    first = caching.get_pair(DEFAULT_PAIR)
    assert first is not None and caching.get_pair(DEFAULT_PAIR) is first  # cached while the files stay
    ckpt = PAIRS[DEFAULT_PAIR].se_weights.path()
    stamp = weights_stamp(DEFAULT_PAIR)
    shutil.copyfile(ckpt, ckpt.with_suffix(".tmp"))  # re-trained: same name, new file
    os.replace(ckpt.with_suffix(".tmp"), ckpt)
    st_ = ckpt.stat()
    os.utime(ckpt, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    assert weights_stamp(DEFAULT_PAIR) != stamp
    second = caching.get_pair(DEFAULT_PAIR)
    assert second is not None and second is not first
    st.cache_resource.clear()


def test_unknown_names_and_missing_files_have_stamps_too(tiny_data_dir: Path) -> None:
    assert weights_stamp("no-such-pair") == ()
    ckpt = PAIRS[DEFAULT_PAIR].vanilla_weights.path()
    ckpt.unlink()
    assert weights_stamp(DEFAULT_PAIR)[1][2:] == (None, None)
