"""Plain text from other libraries' messages: users see a sentence, not terminal escapes or a wall of advice."""
from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.+)")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (torch marks words bold with ``\\x1b[1m``)."""
    return _ANSI.sub("", text)


def first_meaningful_line(text: str, limit: int = 300) -> str:
    """The line that says what went wrong, plain: for torch's ``weights_only`` refusals the
    ``WeightsUnpickler error`` line (the first line is only advice), else the first non-empty line;
    cut at the end of its first sentence when that is long, and at ``limit`` characters."""
    text = strip_ansi(text)
    m = _UNPICKLER.search(text)
    line = m.group(1) if m else next((ln for ln in (x.strip() for x in text.splitlines()) if ln), "")
    line = line.strip()
    if len(line) > limit:
        end = line.find(". ")
        line = line[:end + 1] if 0 < end < limit else line[:limit - 1].rstrip() + "…"
    return line
