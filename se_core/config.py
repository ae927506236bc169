"""Every setting SE Lens reads from the environment, read here and at call time (tests and servers
change the environment after import).

| variable | meaning | default |
| --- | --- | --- |
| ``SE_LENS_DATA_DIR`` | shipped data: checkpoints, tables, statistics | ``<repo>/data`` |
| ``SE_LENS_CIFAR_TARBALL`` | the CIFAR-10 JPEG tarball | ``<repo>/../shared/data/cifar10-jpeg.tar.gz`` |
| ``SE_LENS_CACHE`` | decoded data sets | ``<repo>/.cache`` |
| ``SE_LENS_STATS_CACHE`` | computed class-wise statistics | ``<cache>/stats`` |
| ``SE_LENS_USER_DIR`` | uploaded checkpoints and user pair recipes | ``<repo>/.cache/user`` |
| ``SE_LENS_DATA_ROOTS`` | folders a dashboard user may type paths under | the repo's ``data/`` and the shared data |
| ``HF_HUB_CACHE``, ``HF_HOME``, ``XDG_CACHE_HOME`` | where downloaded timm weights are looked for | the hub's defaults |
| ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` | ``torchrun``'s distributed set-up | one process |
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def env(name: str, default: str = "") -> str:
    """One environment variable, stripped; ``default`` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or default


def data_dir() -> Path:
    """The shipped data folder (checkpoints, tables, statistics)."""
    return Path(env("SE_LENS_DATA_DIR", str(REPO_ROOT / "data")))


def cifar_tarball() -> Path:
    return Path(env("SE_LENS_CIFAR_TARBALL", str(REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")))


def cache_dir() -> Path:
    return Path(env("SE_LENS_CACHE", str(REPO_ROOT / ".cache")))


def stats_cache_dir() -> Path:
    """Computed class-wise statistics: ``$SE_LENS_STATS_CACHE``, else ``<cache>/stats``."""
    return Path(env("SE_LENS_STATS_CACHE", str(cache_dir() / "stats")))


USER_DIR_ENV = "SE_LENS_USER_DIR"
ROOTS_ENV = "SE_LENS_DATA_ROOTS"


def user_dir() -> Path:
    """Uploaded checkpoints and user pair recipes."""
    return Path(env(USER_DIR_ENV, str(REPO_ROOT / ".cache" / "user_models"))).expanduser()


def data_roots() -> tuple[Path, ...]:
    """Folders a dashboard user may type paths under: ``$SE_LENS_DATA_ROOTS`` (``os.pathsep``-separated)
    if set, else ``<repo>/data`` and ``<repo>/../shared/data``."""
    parts = [p for p in env(ROOTS_ENV).split(os.pathsep) if p.strip()]
    if parts:
        return tuple(Path(p).expanduser() for p in parts)
    return (REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data")


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE``, ``HF_HOME``, ``XDG_CACHE_HOME``), as the hub resolves it."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env(key):
            return Path(env(key)).expanduser()
    if env("HF_HOME"):
        return Path(env("HF_HOME")).expanduser() / "hub"
    return Path(env("XDG_CACHE_HOME", str(Path.home() / ".cache"))).expanduser() / "huggingface" / "hub"


@dataclass(frozen=True)
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 outside one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0


def dist() -> Dist:
    return Dist(int(env("RANK", "0")), int(env("WORLD_SIZE", "1")), int(env("LOCAL_RANK", "0")))
