"""The list of pages the Home page shows: each page file's title and first docstring line."""
from __future__ import annotations

import ast
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"


def page_summaries(pages_dir: str | Path = PAGES_DIR) -> list[tuple[str, str]]:
    """(title, first docstring line) of every page file, so the list follows the pages that exist."""
    out = []
    for p in sorted(Path(pages_dir).glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or ""
        except (OSError, SyntaxError, UnicodeDecodeError):
            doc = ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        title, _, rest = first.partition(":")
        if not rest:
            title, rest = p.stem.replace("_", " ").title(), first
        out.append((title.strip(), rest.strip()))
    return out
