"""Files written whole or not at all, and hashed once: the two jobs every store in SE Lens shares."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; the folders it created, outermost first (so a failure can take them back)."""
    made = []
    for d in reversed([path, *path.parents]):
        if not d.exists():
            d.mkdir(exist_ok=True)
            made.append(d)
    return made


def remove_empty(dirs: list[Path]) -> None:
    """Remove the folders of :func:`make_dirs`, innermost first, where they are still empty."""
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            break


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[tuple[BinaryIO, Path]]:
    """A temp file beside ``path`` (``suffix`` ends its name), moved onto ``path`` only when the block ends
    without an exception; on any exception (a cancel too) the temp file and the folders made for it go."""
    path = Path(path)
    made = make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; give the mode open() would
            yield f, Path(tmp)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        remove_empty(made)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the final name never shows a partial file."""
    with atomic_file(path) as (f, _):
        f.write(data)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (SHA-256 unless ``algorithm`` says otherwise), read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def file_sha256(path: str | os.PathLike) -> str:
    """:func:`file_digest`, cached by path, size and modification time (pages ask for it on every rerun)."""
    p = Path(path)
    st = p.stat()
    return _sha256_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


def read_text(src: str | os.PathLike | bytes, *, label: str, max_mb: float, kind: str, error: type[Exception],
              join: str = " is ", missing: str = "no such file", large_hint: str = "", utf8_hint: str = "",
              encoding: str = "utf-8") -> str:
    """The text of a file (or an upload's bytes), refusing one over ``max_mb`` before reading it.

    Every refusal is an ``error`` that starts with ``label`` (what the user calls the file) and says
    what to do: missing, unreadable, too large for a ``kind`` file, not UTF-8 (with the byte).
    """
    def fail(what: str, hint: str = "") -> Exception:
        return error(f"{label}{what}" + (f"; {hint}" if hint else ""))

    def check(size: int) -> None:
        if size > max_mb * 1e6:
            raise fail(f"{join}{size / 1e6:.1f} MB, over the {max_mb:g} MB limit for {kind}", large_hint)

    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        check(len(data))
    else:
        p = Path(src)
        try:
            check(p.stat().st_size)
            data = p.read_bytes()
        except FileNotFoundError:
            raise fail(f": {missing}") from None
        except IsADirectoryError:
            raise fail(": is a folder, not a file") from None
        except OSError as e:
            raise fail(f": cannot read ({e.strerror or e})") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise fail(f"{join}not UTF-8 text (byte {e.start} is {data[e.start]:#04x})", utf8_hint) from None
