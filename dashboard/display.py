"""Drawing on the page: :func:`show` puts a figure on it with PNG/SVG export, :func:`download_csv` a table's CSV.

The camera button of every chart downloads it in the format picked in the sidebar
(:func:`export_format_picker`: PNG at 2x scale or SVG), all offline (no kaleido). Figures come
from :mod:`dashboard.figures`; this module is their only way onto the page.
"""
from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

EXPORT_KEY = "chart_format"
EXPORT_FORMATS = ("png", "svg")


def export_format() -> str:
    """The format picked in the sidebar for chart downloads ('png' or 'svg')."""
    fmt = st.session_state.get(EXPORT_KEY, "png")
    return fmt if fmt in EXPORT_FORMATS else "png"


def export_format_picker() -> None:
    """Sidebar control for the format of every chart's camera (download) button."""
    st.radio("Chart download format", EXPORT_FORMATS, key=EXPORT_KEY, horizontal=True, format_func=str.upper,
             help="Format of the camera button in each chart's toolbar: PNG (2x scale) or SVG (vector, for papers).")


def plotly_config(filename: str, fmt: str | None = None) -> dict:
    """Plotly config: camera button downloads ``filename.png``/``.svg``; no logo; selection tools hidden."""
    fmt = fmt or export_format()
    return {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"],
            "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2 if fmt == "png" else 1}}


def show(fig: go.Figure, *, key: str, filename: str, data: pd.DataFrame | None = None) -> None:
    """Draw ``fig`` full width with PNG/SVG export; with ``data``, add a CSV download of its numbers."""
    filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", filename).strip("_") or "chart"
    st.plotly_chart(fig, width="stretch", theme=None, key=key, config=plotly_config(filename))
    if data is not None:
        download_csv(data, filename, key=f"{key}-csv")


def selected_customdata(fig: go.Figure, *, key: str, filename: str,
                        modes: tuple[str, ...] = ("points", "box", "lasso")) -> list:
    """Draw ``fig`` like :func:`show`, with selection (``modes``) that reruns the page (or its fragment); the
    ``customdata`` of each selected point, as plotly gives it (a value, or a list of them)."""
    filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", filename).strip("_") or "chart"
    config = dict(plotly_config(filename), modeBarButtonsToRemove=[])
    event = st.plotly_chart(fig, width="stretch", theme=None, key=key, config=config, on_select="rerun",
                            selection_mode=modes)
    return [p.get("customdata") for p in ((event or {}).get("selection") or {}).get("points", [])]


def show_selectable(fig: go.Figure, *, key: str, filename: str) -> list[int]:
    """Draw ``fig`` like :func:`show`, with box, lasso and click selection that rerun the page; the
    ``customdata`` of the selected points (non-negative integers: traces mark unselectable points with -1)."""
    out = []
    for data in selected_customdata(fig, key=key, filename=filename):
        data = data[0] if isinstance(data, (list, tuple)) and data else data
        if isinstance(data, (int, float)) and data >= 0:
            out.append(int(data))
    return list(dict.fromkeys(out))


def dotless_stem(text: str) -> str:
    """A file stem safe on every OS with no dots either (image names carry their own extension)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace(".", "-")).strip("_")


def download_csv(df: pd.DataFrame, name: str, *, key: str | None = None, label: str = "Download CSV") -> None:
    """A download button for ``df`` as ``name.csv`` (no rerun on click)."""
    st.download_button(label, df.to_csv(index=False).encode("utf-8"), file_name=f"{name}.csv", mime="text/csv",
                       key=key or f"csv-{name}", on_click="ignore", icon=":material/download:")


def lazy_expander(label: str, key: str) -> DeltaGenerator | None:
    """An expander (closed at first, then as the user left it) whose charts are built only while it is open,
    so a rerun after an upload builds just the essential charts. Its container, or None while closed.
    Keep ``label`` fixed: it is part of the expander's identity, and a new identity would close it."""
    box = st.expander(label, key=key, on_change="rerun", icon=":material/add_chart:")
    return box if box.open else None


__all__ = ["EXPORT_FORMATS", "EXPORT_KEY", "dotless_stem", "download_csv", "export_format", "export_format_picker",
           "lazy_expander", "plotly_config", "show", "show_selectable"]
