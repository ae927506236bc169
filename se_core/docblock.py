"""Generated blocks in Markdown docs: the text between ``<!-- name:begin -->`` and ``<!-- name:end -->``.

Result numbers in ``docs/`` are written by the command that computes them (``se_core.release``,
``se_core.ablate summary --docs``), never typed in, and tests compare the block with a fresh
computation, so a stale document fails CI.
"""
from __future__ import annotations

from pathlib import Path

from se_core.checkpoints import atomic_write_bytes


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def read_block(path: str | Path, name: str) -> str:
    """The current text of block ``name`` in ``path`` (without the markers)."""
    text = Path(path).read_text()
    begin, end = _markers(name)
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} block")
    return text.split(begin, 1)[1].split(end, 1)[0]


def block_body(lines: list[str]) -> str:
    """How a block's ``lines`` are laid out between the markers (blank line on each side)."""
    return "\n".join(["", *lines, ""]) + "\n"


def fill_block(path: str | Path, name: str, lines: list[str]) -> None:
    """Replace block ``name`` of ``path`` with ``lines``, atomically; the rest of the file is kept."""
    path = Path(path)
    read_block(path, name)  # raises when the markers are missing
    text = path.read_text()
    begin, end = _markers(name)
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    atomic_write_bytes(path, (head + begin + block_body(lines) + end + tail).encode())
