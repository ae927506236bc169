"""The #15 pilot's selection rule (se_core.runs.pilot): every branch on synthetic tables, and once on real runs."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from support import needs_cifar

from se_core.analysis.stats import load_stats
from se_core.nn.se import SEConfig
from se_core.runs import pilot
from se_core.runs.train import TrainConfig, train

AB = {"A": 2, "B": 2}
"""Plan of the synthetic tables that have no candidate C."""


def _runs(spec: dict[str, tuple[list[float], list[float], list[float]]]) -> pd.DataFrame:
    """candidate -> (SE top-1 per seed, vanilla top-1 per seed, frozen blocks per SE seed)."""
    rows = []
    for cand, (se, van, frozen) in spec.items():
        for i, t in enumerate(se):
            rows.append({"run": f"{cand}-se_x-s{i}", "candidate": cand, "model": "se_x", "seed": i, "se": True,
                         "finished": True, "epochs_done": 30, "epochs": 30, "val_top1": t, "frozen_blocks": frozen[i]})
        for i, t in enumerate(van):
            rows.append({"run": f"{cand}-x-s{i}", "candidate": cand, "model": "x", "seed": i, "se": False,
                         "finished": True, "epochs_done": 30, "epochs": 30, "val_top1": t, "frozen_blocks": math.nan})
    return pd.DataFrame(rows)


def test_pooled_sigma_and_delta() -> None:
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [0, 0]), "B": ([91.0, 91.2], [90.0, 90.6], [0, 0])})
    sigma, dof = pilot.pooled_sigma(runs)
    # four models of two seeds: variances 0.08, 0.02, 0.02, 0.18 -> pooled sqrt(0.075)
    assert dof == 4 and sigma == pytest.approx(math.sqrt((0.08 + 0.02 + 0.02 + 0.18) / 4))
    t = pilot.candidates(runs).set_index("candidate")
    assert t.loc["A", "delta"] == pytest.approx(1.1) and t.loc["A", "se_err"] == pytest.approx(sigma)
    assert list(t.index) == ["A", "B"] and t["admissible"].all()


def test_shared_vanilla_twin() -> None:
    """Candidate C has no vanilla runs of its own: its Δ is against A's, which count once in σ."""
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [2, 1]), "C": ([90.6, 91.0], [], [0, 0]),
                  "B": ([91.0, 91.2], [90.0, 90.6], [0, 0])})
    t = pilot.candidates(runs).set_index("candidate")
    assert list(t.index) == ["A", "C", "B"] and t.loc["C", "vanilla_seeds"] == 2
    assert t.loc["C", "delta"] == pytest.approx(90.8 - 89.1) and t.loc["C", "admissible"]
    assert pilot.pooled_sigma(runs)[1] == 5  # A se, A vanilla, C se, B se, B vanilla: one dof each
    c = pilot.choose(runs)
    assert c.winner == "C" and "cheapest" in c.reason  # A is frozen; C resolves and is cheaper than B


def test_cheapest_resolved_admissible_candidate_wins() -> None:
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [0, 0]), "B": ([93.0, 93.2], [90.0, 90.6], [0, 0])})
    c = pilot.choose(runs, AB)
    assert c.winner == "A" and "cheapest" in c.reason  # B gains more, but A already resolves


def test_frozen_candidate_is_not_admissible() -> None:
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [0, 2]), "B": ([91.0, 91.2], [90.0, 90.6], [0, 0])})
    c = pilot.choose(runs, AB)
    assert c.winner == "B" and not c.table.set_index("candidate").loc["A", "admissible"]


def test_no_resolved_gain_gives_the_largest_delta_and_none_admissible_the_fewest_frozen() -> None:
    runs = _runs({"A": ([89.0, 89.9], [89.0, 89.9], [0, 0]), "B": ([89.5, 90.4], [89.0, 89.9], [0, 0])})
    c = pilot.choose(runs, AB)
    assert c.winner == "B" and "largest" in c.reason
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [3, 2]), "B": ([91.0, 91.2], [90.0, 90.6], [1, 1])})
    c = pilot.choose(runs, AB)
    assert c.winner == "B" and "fewest frozen" in c.reason


def test_unfinished_or_unmeasured_candidates_choose_nothing() -> None:
    runs = _runs({"A": ([90.0], [89.0, 89.2], [0]), "B": ([91.0, 91.2], [90.0, 90.6], [0, 0])})
    assert pilot.choose(runs, AB).winner is None and "A" in pilot.choose(runs, AB).reason
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [0, 0])})  # B not started: no early winner
    assert pilot.choose(runs).winner is None and "B" in pilot.choose(runs).reason
    assert pilot.choose(runs, {"A": 2}).winner == "A"
    runs = _runs({"A": ([90.0, 90.4], [89.0, 89.2], [0, math.nan])})
    assert pilot.choose(runs, {"A": 2}).winner is None and pilot.VAL_STATS in pilot.choose(runs, {"A": 2}).reason


def test_a_winner_is_named_early_only_when_the_missing_runs_cannot_change_it() -> None:
    """The session-8 pilot: A and B each have one SE seed, already frozen; C is complete."""
    def pilot_state(c_frozen: list[float], c_top1: list[float] | None = None) -> pd.DataFrame:
        runs = _runs({"A": ([86.5], [86.8, 86.94], [5]), "C": (c_top1 or [86.64, 86.7], [], c_frozen),
                      "B": ([87.92], [], [13])})
        return runs
    c = pilot.choose(pilot_state([0, 0]))
    assert c.winner == "C" and "only admissible" in c.reason and "A, B unfinished" in c.reason
    c = pilot.choose(pilot_state([0, 4]))  # nothing admissible: C's 4 < A's 5 or more < B's 13 or more
    assert c.winner == "C" and "fewest frozen" in c.reason
    assert pilot.choose(pilot_state([0, 5])).winner is None  # A's missing seed could tie or beat C
    assert pilot.choose(pilot_state([0], [86.64])).winner is None  # C itself incomplete
    runs = _runs({"A": ([86.5], [86.8, 86.94], [0]), "C": ([86.64, 86.7], [], [0, 0])})
    assert pilot.choose(runs, {"A": 2, "C": 2}).winner is None  # A may still be admissible
    # a candidate with runs counts even when not planned: the full rule would weigh it too
    runs = _runs({"A": ([86.5], [86.8, 86.94], [5]), "C": ([86.64, 86.7], [], [0, 0]),
                  "D": ([88.0, 88.2], [86.0, 86.1], [0, 0])})
    assert pilot.choose(runs, {"A": 2, "C": 2}).winner is None


@needs_cifar
@pytest.mark.timeout(600)
def test_real_runs_stats_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Tiny real runs named as sweeps/pilot.sh names them: held-out gate statistics are computed once,
    frozen blocks read from them, and the CLI prints the rule's outcome."""
    spec = "cifar10-jpeg@val=100"
    for name, arch, se in (("A-se_resnet20_h8-s0", "se_resnet20_cifar", SEConfig(min_hidden=8)),
                           ("A-se_resnet20_h8-s1", "se_resnet20_cifar", SEConfig(min_hidden=8)),
                           ("A-resnet20-s0", "resnet20_cifar", None), ("A-resnet20-s1", "resnet20_cifar", None)):
        seed = int(name[-1])
        with torch.random.fork_rng(devices=[]):
            train(TrainConfig(arch=arch, se=se, epochs=1, seed=seed, train_subset=128, probe_per_class=2, batch_size=64,
                              data=spec), tmp_path / name, threads=1, progress=False, compile="off")
    written = pilot.compute_val_stats(tmp_path, spec)
    assert sorted(p.parent.name for p in written) == ["A-se_resnet20_h8-s0", "A-se_resnet20_h8-s1"]
    assert pilot.compute_val_stats(tmp_path, spec) == []  # computed once
    runs = pilot.pilot_runs(tmp_path).set_index("run")
    stats = load_stats(tmp_path / "A-se_resnet20_h8-s0" / pilot.VAL_STATS)
    assert stats.n_images == 100
    assert runs.loc["A-se_resnet20_h8-s0", "frozen_blocks"] == stats.movement_frame()["frozen"].sum()
    assert runs["finished"].all() and runs["val_top1"].notna().all()
    assert pilot.main(["--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "winner: — (not finished: candidate(s) C, B" in out and "pooled seed std" in out  # C and B are planned too
    assert pilot.main(["--root", str(tmp_path), "--candidates", "A"]) == 0
    assert "winner: A" in capsys.readouterr().out
    assert pilot.main(["--root", str(tmp_path), "--provenance"]) == 0
    text = (tmp_path / "A-se_resnet20_h8-s0" / "PROVENANCE.md").read_text()
    assert text.startswith("# A-se_resnet20_h8-s0\n\n" + pilot.PILOT_INTRO)
    assert f"--data {spec}" in text and pilot.VAL_STATS in text and stats.meta["provenance"]["commit"] in text
    doc = tmp_path / "training.md"
    doc.write_text("# T\n<!-- pilot:begin -->\nstale\n<!-- pilot:end -->\n")
    assert pilot.main(["--root", str(tmp_path), "--docs", str(doc)]) == 0
    text = doc.read_text()
    assert "stale" not in text and f"| A-se_resnet20_h8-s0 | {runs.loc['A-se_resnet20_h8-s0', 'val_top1']:.2f} |" in text
    assert "Winner: none yet (not finished: candidate(s) C, B" in text
