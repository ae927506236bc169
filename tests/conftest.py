"""Shared test set-up: one torch thread and a tiny data dir (``pytest.ini`` puts the checkout and
``tests/`` first on ``sys.path``, so a second checkout tests its own code).

``tiny_data_dir`` writes randomly initialised SE / vanilla CIFAR ResNet-20 checkpoints (real
:class:`~se_core.models.checkpoints.CheckpointMeta`, CIFAR-10 class names and normalization) where the
default pair expects them, and points ``SE_LENS_DATA_DIR`` and ``se_core.models.pairs`` at that dir,
so dashboard and pair tests do not depend on the shipped weights.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support import REPO_ROOT, TINY_PAIR_FILES, subprocess_env, write_tiny_pair  # noqa: F401 (re-exported)

# The machine is shared with training jobs: tests use one intra-op thread (results do not depend on it).
torch.set_num_threads(1)


@pytest.fixture
def tiny_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp data dir holding the default pair's two checkpoints (random init), made current."""
    data_dir = tmp_path / "data"
    write_tiny_pair(data_dir)
    monkeypatch.setenv("SE_LENS_DATA_DIR", str(data_dir))
    return data_dir
