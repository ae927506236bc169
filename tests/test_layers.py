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


LAYERS = {"config": 0, "util": 0, "nn": 1, "probe": 2, "data": 2, "models": 3, "analysis": 4, "runs": 5}
"""``se_core``'s layers, bottom up (docs/architecture.md): a module imports only its own layer or lower
ones. Top-level modules that are not layers (the package face, the ``python -m se_core.<name>`` commands)
sit above them all."""
TOP = max(LAYERS.values()) + 1


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(pkg: Path) -> dict[str, set[str]]:
    """Module -> the modules of package folder ``pkg`` it imports (``from pkg import sub`` counts as
    importing ``pkg.sub``), at any depth, inside functions too."""
    files = {_module_name(p, pkg.parent): p for p in sorted(pkg.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                names = [s for s in subs if s in files] or [node.module]
            graph[mod] |= {n for n in names if n in files and n != mod}
    return graph


def _layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 1 else TOP


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_the_library() -> None:
    graph = _graph(REPO_ROOT / "se_core")
    assert len(graph) > 30 and not _cycles(graph), _cycles(graph)


def test_library_imports_only_downward() -> None:
    graph = _graph(REPO_ROOT / "se_core")
    assert {m.split(".")[1] for m in graph if len(m.split(".")) > 2} <= set(LAYERS), "a layer folder is not in LAYERS"
    up = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})" for a, deps in graph.items() for b in deps
          if _layer(b) > _layer(a)]
    assert not up, up


def test_the_graph_checks_can_fail(tmp_path: Path) -> None:
    """A circle and an upward import, written out, are both found."""
    pkg = tmp_path / "se_core"
    (pkg / "nn").mkdir(parents=True)
    (pkg / "runs").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nn" / "a.py").write_text("from se_core.runs import b\n")
    (pkg / "runs" / "b.py").write_text("def f():\n    import se_core.nn.a\n")
    graph = _graph(pkg)
    assert _cycles(graph) == [["se_core.nn.a", "se_core.runs.b"]]
    assert [b for b in graph["se_core.runs.b"] if _layer(b) > _layer("se_core.runs.b")] == []
    assert [b for b in graph["se_core.nn.a"] if _layer(b) > _layer("se_core.nn.a")] == ["se_core.runs.b"]


def test_dashboard_never_imports_a_page() -> None:
    """Pages sit on top: the dashboard's modules (state, caches, sections, figures) never import one."""
    files = sorted((REPO_ROOT / "dashboard").rglob("*.py"))
    assert len(files) > 10
    bad = [f"{p.relative_to(REPO_ROOT)}:{line} imports {mod}" for p in files for line, mod in _imports(p)
           if mod.split(".")[0] == "pages"]
    assert not bad, bad
