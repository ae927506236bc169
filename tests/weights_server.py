"""A local stand-in for the Hugging Face hub and download.pytorch.org: http.server on 127.0.0.1, in a thread.

It answers the way the real ones do, as far as SE Lens's downloader (and ``huggingface_hub``) looks:

- hub: ``HEAD/GET /{repo_id}/resolve/{revision}/{filename}`` -> ``302`` to ``/cdn/<sha256>`` (an absolute
  URL, like the hub's CDN redirect) with ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"`` and
  ``X-Linked-Size``; a missing file is ``404`` with ``X-Error-Code: EntryNotFound``;
- torch hub URLs: ``HEAD/GET /models/<file name>`` -> ``200`` with ``Content-Length``.

Each file has a ``mode``: ``ok``; ``truncate`` (``Content-Length`` says the whole file, the body stops
halfway); ``stall`` (headers and a first chunk, then silence until the server stops); ``badhash``
(hub only: the ETag of other bytes).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fake_hub import REV  # the commit id both fake caches use


@dataclass(frozen=True)
class Served:
    data: bytes
    mode: str = "ok"
    etag: str = ""


class WeightsServer:
    """``with WeightsServer() as srv:``; ``srv.hub(...)``, ``srv.torch(...)``; ``srv.base`` is its URL."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.hub_entries: dict[str, tuple[str, str]] = {}  # resolve path -> (cdn path, commit)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def hub(self, repo_id: str, filename: str, data: bytes, mode: str = "ok", commit: str = REV,
            revision: str = "main") -> str:
        """Serve ``data`` as ``repo_id``'s ``filename``; its SHA-256 (the LFS ETag)."""
        sha = hashlib.sha256(data).hexdigest()
        etag = hashlib.sha256(data + b"other").hexdigest() if mode == "badhash" else sha
        self.files[f"/cdn/{sha}"] = Served(data, mode, etag)
        self.hub_entries[f"/{repo_id}/resolve/{revision}/{filename}"] = (f"/cdn/{sha}", commit)
        return sha

    def torch(self, filename: str, data: bytes, mode: str = "ok") -> str:
        """Serve ``data`` at ``/models/<filename>``; the URL folder (for ``SE_LENS_*_URL_BASE``)."""
        self.files[f"/models/{filename}"] = Served(data, mode)
        return f"{self.base}/models"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002 - keep the test output clean
                pass

            def _answer(self, body: bool) -> None:
                srv.requests.append((self.command, self.path, dict(self.headers)))
                if self.path in srv.hub_entries:
                    cdn, commit = srv.hub_entries[self.path]
                    f = srv.files[cdn]
                    self.send_response(302)
                    self.send_header("Location", srv.base + cdn)
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("X-Linked-Etag", f'"{f.etag}"')
                    self.send_header("X-Linked-Size", str(len(f.data)))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                f = srv.files.get(self.path)
                if f is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(f.data)))
                self.send_header("Content-Type", "application/octet-stream")
                if f.etag:
                    self.send_header("ETag", f'"{f.etag}"')
                self.end_headers()
                if not body:
                    return
                if f.mode == "truncate":
                    self.wfile.write(f.data[: len(f.data) // 2])
                elif f.mode == "stall":
                    self.wfile.write(f.data[:1024])
                    self.wfile.flush()
                    srv.stop.wait(60)
                else:
                    self.wfile.write(f.data)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer(body=True)

        return Handler

    def __enter__(self) -> WeightsServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
