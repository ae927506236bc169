"""Confine paths typed by a dashboard user to configured data roots.

A path typed into a text box must not reach files outside the folders the operator shared:
:func:`resolve_user_path` refuses ``..`` components, absolute paths outside every root, and
paths (or symlinks along them) that resolve outside every root. :func:`check_tree` does the
same for the entries of a folder that will be read (an ImageFolder's class folders and
images), so a symlinked image cannot leak a file from elsewhere.

Roots come from the environment variable ``SE_LENS_DATA_ROOTS`` (``os.pathsep``-separated),
defaulting to the repository's ``data/`` and the sibling ``shared/data`` folder.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePath

from se_core.config import REPO_ROOT, ROOTS_ENV, data_roots


def repo_relative(p: str | os.PathLike) -> str:
    """``p`` relative to the repository when it lies inside it (how commands and files are quoted in
    provenance and docs, the same on every checkout), else its resolved absolute path."""
    p = Path(p).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)


class PathError(ValueError):
    """A typed path that is refused; ``str()`` says why and what is allowed."""


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _roots_text(roots: Sequence[Path]) -> str:
    return ", ".join(str(r) for r in roots) or "(none configured)"


def resolve_user_path(text: str, roots: Sequence[str | os.PathLike] | None = None, *, must_exist: bool = True) -> Path:
    """The real path ``text`` names, guaranteed to lie inside one of ``roots``.

    Relative paths are looked up under each root in order (the first that exists wins).
    Raises :class:`PathError` for empty input, ``..`` components, absolute paths outside the
    roots, symlinks leading outside, and (with ``must_exist``) paths that do not exist.
    """
    roots = tuple(Path(r) for r in (data_roots() if roots is None else roots))
    real_roots = tuple(r.resolve() for r in roots)
    text = (text or "").strip()
    if not text:
        raise PathError(f"no path given; type a folder inside one of the data roots: {_roots_text(roots)}")
    if "\x00" in text:
        raise PathError("the path contains a NUL character; type a plain folder path")
    parts = PurePath(text).parts
    if ".." in parts:
        raise PathError(f"'..' is not allowed in paths ({text!r}); type a path inside one of the data roots: "
                        f"{_roots_text(roots)}")
    if not real_roots:
        raise PathError(f"no data roots are configured; set {ROOTS_ENV} to the folders users may read")
    p = Path(text)
    if p.is_absolute():
        candidates = [p]
        if not _inside(Path(os.path.abspath(p)), roots + real_roots):
            raise PathError(f"{text} is outside the allowed data roots ({_roots_text(roots)}); copy the data into "
                            f"one of them or add its folder to {ROOTS_ENV}")
    else:
        candidates = [r / p for r in roots]
    existing = [c for c in candidates if c.exists()]
    if not existing:
        if must_exist:
            where = "" if p.is_absolute() else f" under any data root ({_roots_text(roots)})"
            raise PathError(f"{text} does not exist{where}; check the spelling")
        chosen = candidates[0]
    else:
        chosen = existing[0]
    real = chosen.resolve()
    if not _inside(real, real_roots):
        raise PathError(f"{text} leads outside the allowed data roots (it resolves to {real}, e.g. through a "
                        f"symlink); use a folder that really lies inside {_roots_text(roots)}")
    return real


def check_tree(folder: str | os.PathLike, roots: Sequence[str | os.PathLike] | None = None, depth: int = 2,
               limit: int = 200_000) -> int:
    """Check that every entry under ``folder`` (``depth`` levels) resolves inside ``roots``; returns the count.

    Raises :class:`PathError` naming the first entry (e.g. a symlinked image) that leads outside.
    """
    real_roots = tuple(Path(r).resolve() for r in (data_roots() if roots is None else roots))
    n = 0
    level = [Path(folder)]
    for _ in range(depth):
        nxt = []
        for d in level:
            for e in d.iterdir():
                n += 1
                if n > limit:
                    raise PathError(f"{folder} holds more than {limit:,} entries; use a smaller folder")
                real = e.resolve()
                if not _inside(real, real_roots):
                    raise PathError(f"{e} leads outside the allowed data roots (to {real}); remove that link")
                if real.is_dir():
                    nxt.append(e)
        level = nxt
    return n


__all__ = ["PathError", "ROOTS_ENV", "check_tree", "data_roots", "resolve_user_path"]
