"""Generated blocks in Markdown docs: the text between ``<!-- name:begin -->`` and ``<!-- name:end -->``.

Result numbers in ``docs/`` are written by the command that computes them (``se_core.runs.release``,
``se_core.runs.ablate summary --docs``), never typed in, and tests compare the block with a fresh
computation, so a stale document fails CI.
"""
from __future__ import annotations

from pathlib import Path

from se_core.util.files import atomic_write_bytes


def _split(path: Path, name: str) -> tuple[str, str, str]:
    """(text up to and including the begin marker, the block, the end marker and what follows)."""
    text = path.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    body, tail = rest.split(end, 1)
    return head + begin, body, end + tail


def read_block(path: str | Path, name: str) -> str:
    """The current text of block ``name`` in ``path`` (without the markers)."""
    return _split(Path(path), name)[1]


def block_body(lines: list[str]) -> str:
    """How a block's ``lines`` are laid out between the markers (blank line on each side)."""
    return "\n".join(["", *lines, ""]) + "\n"


def fill_block(path: str | Path, name: str, lines: list[str]) -> None:
    """Replace block ``name`` of ``path`` with ``lines``, atomically; the rest of the file is kept."""
    head, _, tail = _split(Path(path), name)
    atomic_write_bytes(path, (head + block_body(lines) + tail).encode())
