"""Every Streamlit cache in dashboard/ and pages/ is bounded (``max_entries`` or ``ttl``).

One server shares its caches between all users, so an unbounded ``st.cache_data`` keyed by an
upload's bytes or digest grows with every new image; ``bench/memory_soak.py`` measures the
server's memory over 100 uploads, and this AST scan keeps an unbounded cache from coming back.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import REPO_ROOT

FILES = sorted([*(REPO_ROOT / "dashboard").glob("*.py"), *(REPO_ROOT / "pages").glob("*.py")])
CACHES = ("cache_data", "cache_resource")


def _cache_name(node: ast.AST) -> str | None:
    """``cache_data``/``cache_resource`` when ``node`` names one (``st.cache_data`` or a bare import)."""
    if isinstance(node, ast.Attribute) and node.attr in CACHES:
        return node.attr
    if isinstance(node, ast.Name) and node.id in CACHES:
        return node.id
    return None


def unbounded_caches(source: str, filename: str = "<src>") -> list[str]:
    """``file:line name`` of every cache use without a non-None ``max_entries`` or ``ttl``."""
    tree = ast.parse(source, filename)
    bad = []
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _cache_name(node.func):
            kw = {k.arg: k.value for k in node.keywords}
            bounded = any(k in kw and not (isinstance(kw[k], ast.Constant) and kw[k].value is None)
                          for k in ("max_entries", "ttl"))
            if not bounded:
                bad.append(f"{filename}:{node.lineno} {_cache_name(node.func)}(...) without max_entries or ttl")
        elif _cache_name(node) and id(node) not in calls and id(node) not in bases:  # not st.cache_data.clear
            bad.append(f"{filename}:{node.lineno} bare {_cache_name(node)} (unbounded)")
    return bad


def test_scanner_finds_unbounded_caches() -> None:
    src = ("import streamlit as st\nfrom streamlit import cache_resource\n"
           "@st.cache_data\ndef a(): ...\n"
           "@st.cache_data(show_spinner=False)\ndef b(): ...\n"
           "@st.cache_data(max_entries=None)\ndef c(): ...\n"
           "@cache_resource()\ndef d(): ...\n"
           "e = st.cache_data(lambda: 1)\n"
           "@st.cache_data(max_entries=8)\ndef ok1(): ...\n"
           "@st.cache_resource(ttl=30, show_spinner=False)\ndef ok2(): ...\n"
           "st.cache_data.clear()\n")
    found = unbounded_caches(src)
    assert [f.split(":")[1].split()[0] for f in found] == ["3", "5", "7", "9", "11"], found


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO_ROOT)) for p in FILES])
def test_every_cache_is_bounded(path: Path) -> None:
    found = unbounded_caches(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))
    assert not found, "add max_entries (or ttl) to: " + "; ".join(found)


def test_the_scan_sees_the_caches() -> None:
    n = sum(source.count("st.cache_") for source in (p.read_text(encoding="utf-8") for p in FILES))
    assert len(FILES) >= 8 and n >= 20  # the scan ran over the real dashboard, not an empty folder
