"""Weights on request: fetch a pair's missing library files into the libraries' own caches.

Only on an explicit call (the Models page's button, ``python -m se_core.zoo download PAIR``) and only
while :func:`se_core.config.downloads_allowed`. Each file is planned first (:func:`plan_file`: a HEAD
that gives its size), then fetched (:func:`fetch`):

- timm weights on the Hugging Face hub: ``$HF_ENDPOINT/<repo>/resolve/<revision>/<file>``, read the
  way ``huggingface_hub`` reads it (its URL and headers; commit, ETag and size from ``X-Repo-Commit``,
  ``X-Linked-Etag``, ``X-Linked-Size``), stored in its cache layout (``blobs/<etag>``, the snapshot file
  a relative symlink to it, ``refs/<revision>``), so the hub, timm and :func:`weights_status` find it;
  the LFS ETag is the file's SHA-256 and is checked (``huggingface_hub`` itself checks only the size);
- torchvision weights (and timm's URL-only ones) from the weights' URL into
  ``torch.hub.get_dir()/checkpoints/<file name>``, the SHA-256 prefix in the name checked as
  ``torch.hub.download_url_to_file(..., hash_prefix=...)`` checks it.

The body streams into a temp file beside its destination and is moved there (``os.replace``) only
after size, hash and a read of its tensors pass; then the pair's model is built and the file loaded
into it (:func:`load_library_model`) before it counts as ready, and if that fails what was placed is
taken back. Any failure or cancel leaves the caches as they were.
"""
from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from se_core.config import (
    download_timeout,
    downloads_allowed,
    hf_endpoint,
    hf_hub_cache,
    hf_offline,
    weights_url_base,
)
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import PAIRS
from se_core.models.weights import WeightsRef
from se_core.models.zoo.catalog import ZOO_PAIRS
from se_core.models.zoo.files import read_library_file, torch_hub_checkpoints, weights_status
from se_core.models.zoo.library import timm_cfg, tv_weights
from se_core.models.zoo.load import load_library_model
from se_core.models.zoo.remote import Cancel, DownloadCancelled, DownloadError, Progress, head, stream
from se_core.util.files import atomic_file, atomic_write_bytes, make_dirs, remove_empty

__all__ = ["DownloadCancelled", "DownloadError", "HubFile", "Planned", "fetch", "fetch_all", "plan_file",
           "plan_pair", "size_text", "total_size"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class HubFile:
    """A file's place in the Hugging Face hub cache."""

    repo_folder: Path
    revision: str
    commit: str
    filename: str
    etag: str

    @property
    def blob(self) -> Path:
        return self.repo_folder / "blobs" / self.etag

    @property
    def snapshot(self) -> Path:
        return self.repo_folder / "snapshots" / self.commit / self.filename


@dataclass(frozen=True)
class Planned:
    """One file to fetch: from where, how big, where it lands, what its SHA-256 must be."""

    arch: str
    ref: WeightsRef
    url: str
    size: int | None
    dest: Path
    sha256: str = ""
    sha256_prefix: str = ""
    hub: HubFile | None = None

    @property
    def label(self) -> str:
        return f"{self.arch} ({self.ref.kind} {self.ref.location})"

    @property
    def target(self) -> Path:
        """The file the bytes are written to (a hub blob, else ``dest`` itself)."""
        return self.hub.blob if self.hub else self.dest


def size_text(size: int | None) -> str:
    """``12.3 MB``, or ``size unknown`` when the server did not say."""
    return "size unknown" if size is None else f"{size / 1e6:.1f} MB"


def total_size(plans: list[Planned]) -> int | None:
    """The bytes of all ``plans``; None when a server did not say one's size."""
    sizes = [p.size for p in plans]
    return None if None in sizes else sum(s for s in sizes if s is not None)


def _refuse_if_disabled() -> None:
    if not downloads_allowed():
        raise DownloadError("downloads are switched off here (SE_LENS_ALLOW_DOWNLOAD=0); ask the server's "
                            "administrator, or copy the files in as the Models page describes")


def _hub_headers() -> dict[str, str]:
    """The headers ``huggingface_hub`` sends (user agent; a token only where the user configured one)."""
    try:
        from huggingface_hub.utils import build_hf_headers

        return dict(build_hf_headers(library_name="se-lens"))
    except Exception:  # noqa: BLE001 - no hub library, or no readable token: anonymous, like a browser
        return {"user-agent": "se-lens"}


def _with_base(url: str, base: str) -> str:
    """``url`` with its folder replaced by ``base`` (keeps the file name, which carries the hash prefix)."""
    return f"{base}/{Path(urlparse(url).path).name}" if base else url


def _plan_url(ref: WeightsRef, arch: str, url: str, timeout: float) -> Planned:
    fname = Path(urlparse(url).path).name
    m = torch.hub.HASH_REGEX.search(fname)
    ans = head(url, {"user-agent": "se-lens"}, timeout)
    length = ans.headers.get("content-length", "")
    return Planned(arch, ref, url, int(length) if length.isdigit() else None, torch_hub_checkpoints() / fname,
                   sha256_prefix=m.group(1) if m and m.group(1) else "")


def _plan_hub(ref: WeightsRef, arch: str, repo_id: str, names: list[str], timeout: float) -> Planned:
    if hf_offline():
        raise DownloadError(f"HF_HUB_OFFLINE is set, so {repo_id} cannot be fetched from the hub; unset it to download")
    from huggingface_hub import hf_hub_url

    revision = "main"
    for i, name in enumerate(names):
        url = hf_hub_url(repo_id, name, revision=revision, endpoint=hf_endpoint())
        try:
            ans = head(url, _hub_headers(), timeout, follow="relative")
        except DownloadError as e:
            if "HTTP 404" in str(e) and i + 1 < len(names):
                continue  # timm falls back from model.safetensors to pytorch_model.bin too
            raise
        h = ans.headers
        commit = h.get("x-repo-commit", "")
        etag = (h.get("x-linked-etag") or h.get("etag") or "").removeprefix("W/").strip('"')
        if not commit or not etag:
            raise DownloadError(f"{url} is not a Hugging Face hub answer (no X-Repo-Commit / ETag header); check HF_ENDPOINT")
        size = h.get("x-linked-size") or (None if ans.redirect else h.get("content-length"))
        hub = HubFile(hf_hub_cache() / ("models--" + repo_id.replace("/", "--")), revision, commit, name, etag)
        return Planned(arch, ref, url, int(size) if size and size.isdigit() else None,
                       hub.snapshot, sha256=etag if _SHA256.fullmatch(etag) else "", hub=hub)
    raise AssertionError("unreachable")


def plan_file(ref: WeightsRef, arch: str, timeout: float | None = None) -> Planned:
    """Where ``ref``'s file comes from and its size (one HEAD request); nothing is written."""
    _refuse_if_disabled()
    timeout = download_timeout() if timeout is None else timeout
    if ref.kind == "torchvision":
        return _plan_url(ref, arch, _with_base(tv_weights(ref.location).url, weights_url_base("torchvision")), timeout)
    if ref.kind != "timm":
        raise DownloadError(f"{ref.kind} weights are not library weights; SE Lens downloads only timm and torchvision files")
    cfg = timm_cfg(ref.location)
    if cfg.hf_hub_id:
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        return _plan_hub(ref, arch, cfg.hf_hub_id, names, timeout)
    if cfg.url:
        return _plan_url(ref, arch, _with_base(cfg.url, weights_url_base("timm")), timeout)
    raise DownloadError(f"timm publishes no file for {ref.location} (neither a hub id nor a URL)")


def pair_files(name: str) -> list[tuple[str, WeightsRef]]:
    """The (arch, weights) of catalog pair ``name`` whose files are not on this machine."""
    if name not in {p.name for p in ZOO_PAIRS} or name not in PAIRS:
        raise DownloadError(f"{name!r} is not an ImageNet pair; choose one of: {', '.join(p.name for p in ZOO_PAIRS)}")
    spec = PAIRS[name]
    return [(arch, ref) for arch, ref in ((spec.se_arch, spec.se_weights), (spec.vanilla_arch, spec.vanilla_weights))
            if not weights_status(ref, arch).ok]


def plan_pair(name: str, timeout: float | None = None) -> list[Planned]:
    """The missing files of catalog pair ``name``, each with its size (an empty list: nothing to fetch)."""
    _refuse_if_disabled()
    return [plan_file(ref, arch, timeout) for arch, ref in pair_files(name)]


class _Placed:
    """What a fetch added to a cache, so a failed ready-check can take it back."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self.refs: list[tuple[Path, bytes | None]] = []

    def undo(self) -> None:
        for p in reversed(self.files):
            p.unlink(missing_ok=True)
        for p, old in reversed(self.refs):
            if old is None:
                p.unlink(missing_ok=True)
            else:
                atomic_write_bytes(p, old)
        remove_empty(self.dirs)


def _download(plan: Planned, progress: Progress | None, cancel: Cancel | None, timeout: float) -> None:
    """Stream ``plan.url`` into ``plan.target``: size, hash and a tensor read are checked before the move."""
    suffix = Path(plan.hub.filename if plan.hub else plan.dest.name).suffix
    with atomic_file(plan.target, suffix=suffix) as (f, tmp):
        digest = stream(plan.url, f, {"user-agent": "se-lens"}, timeout, plan.size, progress, cancel)
        f.flush()
        want = plan.sha256 or plan.sha256_prefix
        if want and not digest.startswith(want):
            raise DownloadError(f"{plan.url}: the file's SHA-256 {digest[:12]}… does not match the published "
                                f"{want[:12]}…, so the download is corrupt or was changed; nothing was saved; try again")
        try:
            read_library_file(tmp)
        except CheckpointError as e:
            raise DownloadError(f"{plan.url} is not a readable weight file ({e}); nothing was saved") from None


def _link_snapshot(hub: HubFile, placed: _Placed) -> None:
    """``snapshots/<commit>/<file>`` -> ``../../blobs/<etag>`` and ``refs/<revision>``, as the hub writes them."""
    snap = hub.snapshot
    placed.dirs += make_dirs(snap.parent)
    if not snap.exists():
        tmp = snap.with_name(f".{snap.name}.{uuid.uuid4().hex[:12]}.link.tmp")  # unique: two sessions may race
        tmp.symlink_to(os.path.relpath(hub.blob, snap.parent))
        os.replace(tmp, snap)
        placed.files.append(snap)
    if hub.revision != hub.commit:
        ref = hub.repo_folder / "refs" / hub.revision
        old = ref.read_bytes() if ref.is_file() else None
        if old != hub.commit.encode():
            placed.dirs += make_dirs(ref.parent)
            placed.refs.append((ref, old))
            atomic_write_bytes(ref, hub.commit.encode())


def fetch(plan: Planned, progress: Progress | None = None, cancel: Cancel | None = None,
          timeout: float | None = None) -> Path:
    """Download ``plan``'s file into its library cache and check it loads; the path the zoo now finds.

    Raises :class:`DownloadError` (:class:`DownloadCancelled` on a cancel) with the caches unchanged.
    """
    _refuse_if_disabled()
    timeout = download_timeout() if timeout is None else timeout
    placed = _Placed()
    try:
        if not plan.target.is_file():
            placed.dirs += make_dirs(plan.target.parent)
            _download(plan, progress, cancel, timeout)
            placed.files.append(plan.target)
        if plan.hub:
            _link_snapshot(plan.hub, placed)
        status = weights_status(plan.ref, plan.arch)
        if status.found is None:
            raise DownloadError(f"{plan.target} was saved but the zoo does not find it at {status.expected[0]}; "
                                "this is a bug in SE Lens, please report it")
        load_library_model(plan.ref, plan.arch)
        return status.found
    except DownloadError:
        placed.undo()
        raise
    except Exception as e:  # noqa: BLE001 - the ready check failed: take the file back and say why
        placed.undo()
        raise DownloadError(f"{plan.url} was downloaded but cannot be used ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); nothing was kept") from None
    except BaseException:
        placed.undo()
        raise


def fetch_all(plans: list[Planned], progress: Progress | None = None, cancel: Cancel | None = None,
              timeout: float | None = None) -> list[Path]:
    """:func:`fetch` each plan in turn, ``progress`` counting over all of them; the paths found.

    A failure stops there: files fetched before it stay (each is complete and checked)."""
    total = total_size(plans)
    out: list[Path] = []
    offset = 0
    for plan in plans:
        def each(done: int, _total: int | None, base: int = offset) -> None:
            if progress:
                progress(base + done, total)

        out.append(fetch(plan, each, cancel, timeout))
        offset += plan.size or 0
    return out
