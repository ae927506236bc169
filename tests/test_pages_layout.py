"""Pages only lay out (read from the source, no AppTest): each ``pages/*.py`` is a ``render()`` of at most
150 lines, called at the end of the file (``st.navigation`` runs a page file as a script), with no
Streamlit cache and no plotly of its own: computation lives in ``dashboard``/``se_core``, figures in
``dashboard.figures``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import REPO_ROOT

PAGES = sorted((REPO_ROOT / "pages").glob("*.py"))
MAX_RENDER_LINES = 150


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def render_lines(tree: ast.Module) -> int:
    """Lines of the body of the module's top-level ``render`` function (docstring included)."""
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "render"]
    return fn.end_lineno - fn.body[0].lineno + 1


def runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    skip = {id(x) for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
            for x in ast.walk(n)}
    out = []
    for n in ast.walk(tree):
        if id(n) in skip:
            continue
        if isinstance(n, ast.Import):
            out += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            out.append(n.module or "")
    return out


def test_there_are_pages() -> None:
    assert len(PAGES) >= 6


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_is_a_short_render_called_at_the_end(path: Path) -> None:
    tree = _tree(path)
    assert render_lines(tree) <= MAX_RENDER_LINES, f"{path.name}: render() has {render_lines(tree)} lines"
    last = tree.body[-1]
    assert ast.unparse(last) == "render()", f"{path.name} must end with render()"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_has_no_cache_and_no_figure_code(path: Path) -> None:
    src = path.read_text(encoding="utf-8")
    assert "cache_data" not in src and "cache_resource" not in src, f"{path.name}: caches belong in dashboard/"
    assert not [m for m in runtime_imports(_tree(path)) if m.split(".")[0] == "plotly"], \
        f"{path.name}: figures belong in dashboard/figures"


def test_the_line_count_sees_the_body(tmp_path: Path) -> None:
    tree = ast.parse('def render():\n    """Doc."""\n    a = 1\n\n    b = 2\n\n\nrender()\n')
    assert render_lines(tree) == 4
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import plotly\nimport json\n")
    assert runtime_imports(tree) == ["typing", "json"]
