"""Every setting SE Lens reads from the environment, read here and at call time (tests and servers
change the environment after import).

| variable | meaning | default |
| --- | --- | --- |
| ``SE_LENS_DATA_DIR`` | shipped data: checkpoints, tables, statistics | ``<repo>/data`` |
| ``SE_LENS_ABLATIONS_DIR`` | the ablation tables (``<sweep>.csv``, where ``ablate run`` writes them by default and the Ablations page lists them) and their kept checkpoints, ``<sweep>/<trial_id>.safetensors`` (the ``ablation:`` pairs) | ``<data dir>/ablations`` |
| ``SE_LENS_CIFAR_TARBALL`` | the CIFAR-10 JPEG tarball | ``<repo>/../shared/data/cifar10-jpeg.tar.gz`` |
| ``SE_LENS_CACHE`` | decoded data sets | ``<repo>/.cache`` |
| ``SE_LENS_STATS_CACHE`` | computed class-wise statistics | ``<cache>/stats`` |
| ``SE_LENS_USER_DIR`` | uploaded checkpoints and user pair recipes | ``<repo>/.cache/user`` |
| ``SE_LENS_DATA_ROOTS`` | folders a dashboard user may type paths under | the repo's ``data/`` and the shared data |
| ``HF_HUB_CACHE``, ``HF_HOME``, ``XDG_CACHE_HOME`` | where downloaded timm weights are looked for | the hub's defaults |
| ``HF_ENDPOINT`` | the Hugging Face hub that timm weights are downloaded from | ``https://huggingface.co`` |
| ``HF_HUB_OFFLINE`` | ``1``: no hub download (the hub's own switch) | unset |
| ``SE_LENS_LIST_USER_PAIRS`` | ``0``: each session's sidebar lists only the pairs it registered itself | every pair saved on this server |
| ``SE_LENS_ALLOW_DOWNLOAD`` | ``0``: no Download button, and ``python -m se_core.zoo download`` refuses | allowed |
| ``SE_LENS_TORCHVISION_URL_BASE`` | where torchvision weight files are downloaded from (the URL's folder) | torchvision's own URL |
| ``SE_LENS_TIMM_URL_BASE`` | the same for timm weights published only by URL (no hub copy) | timm's own URL |
| ``SE_LENS_DOWNLOAD_TIMEOUT`` | seconds without a byte before a download is given up | ``30`` |
| ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` | the distributed set-up of ``torchrun`` or of Ray Train's workers | one process |
| ``SE_LENS_RAY_ADDRESS`` | the Ray cluster ``ablate run`` joins (``auto``, ``host:port``, ``ray://host:10001``); ``--address`` wins | an embedded local Ray |
| ``SE_LENS_RAY_TMPDIR`` | the embedded Ray's session files (logs, sockets) | Ray's own (``/tmp/ray``) |
| ``RAY_AUTH_MODE`` | Ray's token authentication; ``disabled`` is refused for the embedded instance | ``token`` for the embedded instance |
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


def ablations_dir() -> Path:
    """The ablation tables and, beside them, their kept checkpoints (``<sweep>/<trial_id>.safetensors``)."""
    return Path(env("SE_LENS_ABLATIONS_DIR", str(data_dir() / "ablations")))


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


def hf_endpoint() -> str:
    """The Hugging Face hub to download from (``HF_ENDPOINT``, as the hub reads it), without a trailing slash."""
    return env("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true value: the hub's own "no network" switch."""
    return any(env(k).upper() in ("1", "ON", "YES", "TRUE") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def list_user_pairs() -> bool:
    """Whether every session's sidebar lists all user pairs saved on this server (``SE_LENS_LIST_USER_PAIRS=0``:
    only a session's own, for servers whose users should not see each other's uploads)."""
    return env("SE_LENS_LIST_USER_PAIRS", "1").lower() not in ("0", "false", "no", "off")


def downloads_allowed() -> bool:
    """Whether library weights may be downloaded on request (``SE_LENS_ALLOW_DOWNLOAD=0`` says no)."""
    return env("SE_LENS_ALLOW_DOWNLOAD", "1").lower() not in ("0", "false", "no", "off")


def weights_url_base(library: str) -> str:
    """``SE_LENS_TORCHVISION_URL_BASE`` / ``SE_LENS_TIMM_URL_BASE``: the folder weight URLs of ``library``
    are fetched from instead of the library's own (a mirror, or a local test server); empty: the library's URL."""
    return env(f"SE_LENS_{library.upper()}_URL_BASE").rstrip("/")


def download_timeout() -> float:
    """Seconds a download waits for the server (connecting, or between two reads) before giving up."""
    return float(env("SE_LENS_DOWNLOAD_TIMEOUT", "30"))


def background_nice() -> int:
    """How much lower than a page's own work a server runs long computations such as attributions
    (``SE_LENS_BACKGROUND_NICE``, a nice increment 0-19; 0 runs them on the page's thread at its priority)."""
    return max(0, min(19, int(env("SE_LENS_BACKGROUND_NICE", "10"))))


@dataclass(frozen=True)
class Dist:
    """This process's place in a ``torchrun`` job or a Ray Train worker group (rank 0 of 1 outside one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0


def dist() -> Dist:
    return Dist(int(env("RANK", "0")), int(env("WORLD_SIZE", "1")), int(env("LOCAL_RANK", "0")))


def ray_address() -> str:
    """The Ray cluster a sweep joins (``SE_LENS_RAY_ADDRESS``); empty: start an embedded local instance."""
    return env("SE_LENS_RAY_ADDRESS")


def ray_temp_dir() -> str:
    """Where the embedded Ray keeps its session files (``SE_LENS_RAY_TMPDIR``); empty: Ray's default."""
    return env("SE_LENS_RAY_TMPDIR")


def ray_auth_mode() -> str:
    """Ray's own ``RAY_AUTH_MODE`` as set (lower case), empty when unset; the runner keeps token auth on."""
    return env("RAY_AUTH_MODE").lower()
