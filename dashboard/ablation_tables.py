"""The tables of the Ablations page: the result table the user picks (shipped, uploaded, or a path inside the
data roots), the paper's reference rows, and the provenance JSON the sweep runner writes beside a table.

Loads are cached by file identity (path, modification time, size) or upload bytes; problems with
the picked table become ``st.error``/``st.info`` and the page goes on with the paper's rows.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from se_core.runs import tables
from se_core.runs.ablate.table import read_provenance
from se_core.runs.tables import TableError
from se_core.util.paths import PathError, data_roots, resolve_user_path

SOURCES = ("Shipped table", "Upload a CSV", "Path on this machine")
RUN_COMMAND = "python -m se_core.ablate run sweeps/default.toml"
CONFIG_COLUMNS = ["arch", "reduction", "squeeze", "gate", "stages", "integration", "site"]


@st.cache_data(max_entries=16, show_spinner=False)
def _load_path(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    return tables.load_ablation_table(path)


@st.cache_data(max_entries=8, show_spinner=False)
def _load_bytes(data: bytes, name: str) -> pd.DataFrame:
    return tables.load_ablation_table(data, name=name)


@st.cache_data(max_entries=4, show_spinner=False)
def _reference(path: str, mtime_ns: int) -> pd.DataFrame:
    return tables.load_reference(path)


def reference() -> pd.DataFrame:
    """The paper's reference rows (raises TableError or OSError when data/reference/ablations.csv is unusable)."""
    return _reference(str(tables.REFERENCE_PATH), tables.REFERENCE_PATH.stat().st_mtime_ns)


def _from_path(p: Path) -> pd.DataFrame:
    stt = p.stat()
    return _load_path(str(p), stt.st_mtime_ns, stt.st_size)


def table_source() -> tuple[pd.DataFrame | None, str | None, Path | None]:
    """The result table the user picked: (table, label, file path if any). Problems become st.error/info."""
    source = st.radio("Result table", SOURCES, horizontal=True, key="abl_source",
                      help="The shipped sweep in data/ablations, a CSV you upload, or a CSV inside the data roots.")
    try:
        if source == SOURCES[0]:
            shipped = tables.shipped_tables()
            if not shipped:
                st.info("No ablation table is shipped yet (data/ablations/ is empty). Produce it with\n\n"
                        f"```\n{RUN_COMMAND}\n```\n\nwhich writes `data/ablations/resnet20-cifar10.csv` and its "
                        "provenance JSON (resumable; see docs/ablations.md for running on a Ray cluster). "
                        "The paper's reference rows are shown below meanwhile.")
                return None, None, None
            names = [p.name for p in shipped]
            pick = st.selectbox("Shipped table", names, key="abl_shipped")
            p = shipped[names.index(pick)]
            return _from_path(p), f"data/ablations/{p.name}", p
        if source == SOURCES[1]:
            up = st.file_uploader("Ablation table (CSV written by python -m se_core.ablate)", type=["csv"],
                                  key="abl_upload", help=f"At most {tables.MAX_TABLE_MB:g} MB; columns as in "
                                                         "docs/ablations.md.")
            if up is None:
                st.caption("Upload a table to see it here; the paper's rows are shown below meanwhile.")
                return None, None, None
            return _load_bytes(up.getvalue(), up.name), up.name, None
        roots = ", ".join(str(r) for r in data_roots())
        text = st.text_input("Path to an ablation CSV", key="abl_path", placeholder="ablations/resnet20-cifar10.csv",
                             help=f"Absolute, or relative to a data root ({roots}).")
        if not text.strip():
            st.caption(f"Type the path of a CSV inside the data roots ({roots}).")
            return None, None, None
        p = resolve_user_path(text)
        if not p.is_file():
            raise PathError(f"{text} is a folder; type the path of a CSV file in it")
        return _from_path(p), str(p), p
    except (TableError, PathError) as e:
        st.error(f"This result table cannot be used: {str(e).rstrip('.')}. The paper's reference rows are still shown below.")
        return None, None, None
    except OSError as e:
        st.error(f"The table could not be read ({e.strerror or e}); check the file and try again.")
        return None, None, None


def reread(p: Path | None, df: pd.DataFrame | None) -> pd.DataFrame | None:
    """Table file ``p`` as it is now (a running sweep adds rows); ``df`` (what was shown) for an upload,
    or while the file cannot be read; a table that turned invalid is reported, and ``df`` kept."""
    if p is None:
        return df
    try:
        return _from_path(p)
    except (TableError, OSError) as e:
        st.warning(f"The table changed and cannot be re-read right now ({e}); showing the rows read before.")
        return df


def provenance(p: Path | None) -> dict | None:
    """The sweep provenance JSON beside table ``p``, or None (no table, no file, or not readable)."""
    return None if p is None else read_provenance(p)


def config_count(df: pd.DataFrame) -> int:
    """Distinct configurations (architecture and SE settings) among the table's trials."""
    return df.drop_duplicates(CONFIG_COLUMNS).shape[0]
