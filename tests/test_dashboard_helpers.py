"""The non-figure helpers the pages used to hold, called directly (no AppTest): the knock-out table kept on
disk, gate-histogram bin edges, the ablation table's provenance and config count, the Home page's list."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace as NS

import pandas as pd
from support import REPO_ROOT
from test_bad_tables import KO_GOOD

from dashboard import ablation_tables, knockout
from dashboard.page_index import page_summaries
from se_core.runs.history import hist_edges


def test_knockout_table_round_trip_and_damaged_entry_removed(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(KO_GOOD)
    df, problem = knockout.load_saved(good)
    assert problem is None and good.is_file()
    saved = tmp_path / "saved.csv"
    knockout.save_table(saved, df)
    again, problem = knockout.load_saved(saved)
    assert problem is None and again.equals(df)
    bad = tmp_path / "bad.csv"
    bad.write_text("target,kind\nx,y\n")
    df, problem = knockout.load_saved(bad)
    assert df is None and "bad.csv" in problem and not bad.exists()  # removed, so the next run measures again


def test_knockout_table_path_is_keyed_by_checkpoint_images_and_modes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path))
    ckpt = tmp_path / "se.safetensors"
    ckpt.write_bytes(b"weights")
    pair = NS(se=NS(source=str(ckpt)))
    a = knockout.table_path(pair, NS(digest="d1"), 50, ("off", "mean"))
    assert a.parent == tmp_path and a.name.startswith("knockout-") and a.suffix == ".csv"
    assert a == knockout.table_path(pair, NS(digest="d1"), 50, ("off", "mean"))
    assert len({a, knockout.table_path(pair, NS(digest="d2"), 50, ("off", "mean")),
                knockout.table_path(pair, NS(digest="d1"), 60, ("off", "mean")),
                knockout.table_path(pair, NS(digest="d1"), 50, ("off",))}) == 4


def test_hist_edges_follow_each_epochs_range() -> None:
    rows = pd.DataFrame({"lo": [0.0, 0.0], "hi": [1.0, 4.0], "hist": [[1, 1], [1, 2, 1, 0]]})
    assert hist_edges(rows) == [[0.0, 0.5, 1.0], [0.0, 1.0, 2.0, 3.0, 4.0]]


def test_ablation_provenance_and_config_count(tmp_path: Path) -> None:
    table = tmp_path / "sweep.csv"
    assert ablation_tables.provenance(table) is None and ablation_tables.provenance(None) is None
    (tmp_path / "sweep.provenance.json").write_text(json.dumps({"sweep": "s", "finished": False}))
    assert ablation_tables.provenance(table) == {"sweep": "s", "finished": False}
    (tmp_path / "sweep.provenance.json").write_text("{not json")
    assert ablation_tables.provenance(table) is None
    cfg = dict(arch="a", reduction=16, squeeze="avg", gate="sigmoid", stages="all", integration="standard", site="out")
    df = pd.DataFrame([{**cfg, "seed": 0}, {**cfg, "seed": 1}, {**cfg, "reduction": 8, "seed": 0}])
    assert ablation_tables.config_count(df) == 2


def test_page_summaries_follow_the_page_files(tmp_path: Path) -> None:
    (tmp_path / "a_page.py").write_text('"""Alpha: what it shows."""\n')
    (tmp_path / "b.py").write_text('"""No title here"""\n')
    (tmp_path / "c.py").write_text("def (:\n")
    assert page_summaries(tmp_path) == [("Alpha", "what it shows."), ("B", "No title here"), ("C", "")]
    titles = [t for t, _ in page_summaries()]
    assert len(titles) == len(list((REPO_ROOT / "pages").glob("*.py"))) and "Class-wise" in titles

