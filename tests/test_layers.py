"""The library's one-way rule, read from the source: se_core never imports Streamlit, the dashboard or a page."""
from __future__ import annotations

import ast
from pathlib import Path

from support import REPO_ROOT

FORBIDDEN = ("streamlit", "dashboard", "pages")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import``/``from ... import`` in ``path`` names, at any depth (inside functions too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return out


def test_library_never_imports_the_app() -> None:
    files = sorted((REPO_ROOT / "se_core").rglob("*.py"))
    assert len(files) > 20
    bad = [f"{p.relative_to(REPO_ROOT)}:{line} imports {mod}" for p in files for line, mod in _imports(p)
           if mod.split(".")[0] in FORBIDDEN]
    assert not bad, bad


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import streamlit as st\n    from dashboard.charts import show\n")
    assert [m for _, m in _imports(f)] == ["streamlit", "dashboard.charts"]
