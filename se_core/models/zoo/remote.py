"""HTTP for library weights: a size probe (HEAD) and a streamed, cancellable, time-limited GET.

Plain ``urllib``, so every failure becomes one :class:`DownloadError` line that names the URL and
says what to do, and a stalled server costs one timeout, not a retry loop. Nothing here writes to
a cache: :mod:`se_core.models.zoo.download` decides where the bytes go.
"""
from __future__ import annotations

import hashlib
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlparse

CHUNK = 1 << 20
Progress = Callable[[int, int | None], None]
"""``(done_bytes, total_bytes or None)``, called after every chunk."""
Cancel = Callable[[], bool]
"""Returns True when the user asked to stop; checked before every chunk."""


class DownloadError(RuntimeError):
    """A download that did not happen: one line naming the URL or file and what to do."""


class DownloadCancelled(DownloadError):
    """The user stopped the download; nothing was saved."""


@dataclass(frozen=True)
class Head:
    """A HEAD answer: the URL that answered, its status and (lower-cased) headers."""

    url: str
    status: int
    headers: dict[str, str]

    @property
    def redirect(self) -> str | None:
        """The absolute ``Location`` of a 3xx answer, else None."""
        loc = self.headers.get("location")
        return urljoin(self.url, loc) if 300 <= self.status < 400 and loc else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 - urllib's signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _fail(url: str, e: BaseException, timeout: float) -> DownloadError:
    """The one-line message for a network failure at ``url``."""
    if isinstance(e, urllib.error.HTTPError):
        if e.code == 404:
            return DownloadError(f"{url} answered HTTP 404 (not found): this file is not published there; check "
                                 "HF_ENDPOINT / SE_LENS_TORCHVISION_URL_BASE / SE_LENS_TIMM_URL_BASE and the library version")
        if e.code in (401, 403):
            return DownloadError(f"{url} answered HTTP {e.code} ({e.reason}): access refused; a gated or private file "
                                 "needs a token (HF_TOKEN), else download it on a machine that has access")
        return DownloadError(f"{url} answered HTTP {e.code} ({e.reason}); try again later")
    if isinstance(e, (TimeoutError, socket.timeout)) or "timed out" in str(e):
        return DownloadError(f"{url}: the server sent nothing for {timeout:g} s (stalled); nothing was saved; try again "
                             "later or raise SE_LENS_DOWNLOAD_TIMEOUT")
    reason = getattr(e, "reason", None) or e
    return DownloadError(f"cannot reach {url} ({reason}); check the internet connection (or proxy), or download the "
                         "file on another machine and copy it here")


def head(url: str, headers: dict[str, str], timeout: float, follow: str = "all", hops: int = 8) -> Head:
    """HEAD ``url``, following redirects: ``all`` of them (torch hub URLs), or only ``relative`` ones,
    as ``huggingface_hub`` does (a hub file's absolute redirect points at its CDN copy and its
    ``X-Linked-*`` headers describe that copy)."""
    for _ in range(hops):
        req = urllib.request.Request(url, headers={"Accept-Encoding": "identity", **headers}, method="HEAD")
        try:
            with _OPENER.open(req, timeout=timeout) as r:
                return Head(r.geturl(), r.status, {k.lower(): v for k, v in r.headers.items()})
        except urllib.error.HTTPError as e:
            if not 300 <= e.code < 400:
                raise _fail(url, e, timeout) from None
            ans = Head(url, e.code, {k.lower(): v for k, v in e.headers.items()})
        except (OSError, ValueError) as e:
            raise _fail(url, e, timeout) from None
        nxt = ans.redirect
        if nxt is None or (follow == "relative" and urlparse(ans.headers["location"]).netloc):
            return ans
        url = nxt
    raise DownloadError(f"{url}: more than {hops} redirects; check the URL")


def stream(url: str, out: BinaryIO, headers: dict[str, str], timeout: float, size: int | None,
           progress: Progress | None = None, cancel: Cancel | None = None) -> str:
    """GET ``url`` (redirects followed) into ``out`` chunk by chunk; the SHA-256 hex of what was written.

    Raises :class:`DownloadError` on any failure, a short body included (fewer bytes than
    ``size`` or than ``Content-Length``), and :class:`DownloadCancelled` when ``cancel()`` says so.
    """
    req = urllib.request.Request(url, headers={"Accept-Encoding": "identity", **headers})
    sha = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            length = r.headers.get("Content-Length")
            total = size if size is not None else (int(length) if length and length.isdigit() else None)
            if progress:
                progress(0, total)
            while True:
                if cancel is not None and cancel():
                    raise DownloadCancelled(f"download of {url} stopped; nothing was saved")
                chunk = r.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except DownloadError:
        raise
    except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts, resets
        raise _fail(url, e, timeout) from None
    except Exception as e:  # noqa: BLE001 - http.client's IncompleteRead and other protocol errors
        raise DownloadError(f"{url}: the connection broke after {done} bytes ({type(e).__name__}); nothing was "
                            "saved; try again") from None
    expected = size if size is not None else total
    if expected is not None and done != expected:
        raise DownloadError(f"{url} sent {done:,} of {expected:,} bytes (the connection closed early); nothing was "
                            "saved; try again")
    return sha.hexdigest()
