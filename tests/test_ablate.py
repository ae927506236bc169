"""The ablation runner (``se_core.runs.ablate``) and the result-table loader (``se_core.runs.tables``).

A tiny sweep (no-SE + default SE, 2 seeds, 1 epoch on 128 training / 50 test images) runs end to
end in this process (``in_process``: no Ray). The runs on Ray, with the driver and a worker node
killed mid-sweep, are tests/test_ablate_ray.py.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support import REPO_ROOT, needs_cifar, tiny_sweep_spec

from se_core.runs import ablate, tables
from se_core.runs.ablate import Resources, SpecError, load_spec, parse_spec, plan, run_sweep
from se_core.runs.tables import TableError, load_ablation_table


def tiny_spec(tmp: Path, seeds: str = "[0, 1]", epochs: int = 1, name: str = "tiny.toml") -> Path:
    p = tmp / name
    p.write_text(tiny_sweep_spec(seeds=seeds, epochs=epochs))
    return p


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("ablate")
    spec = tiny_spec(tmp)
    sweep = load_spec(spec)
    table = tmp / "tiny.csv"
    res = run_sweep(sweep, table=table, runs_root=tmp / "runs", in_process=True, command="pytest",
                    log=lambda s: None)
    return {"tmp": tmp, "spec": spec, "sweep": sweep, "table": table, "res": res, "runs": tmp / "runs"}


# ------------------------------------------------------------------------------------------ spec
def test_default_spec_plan_dedups_configs_and_ids_are_stable() -> None:
    sweep = load_spec(REPO_ROOT / "sweeps" / "default.toml")
    trials = plan(sweep)
    n_seeds = len(sweep.seeds)
    assert sweep.base.epochs >= tables.MIN_EPOCHS
    # vanilla + default + r (2,4,8,32) + max + tanh,relu + 3 single stages + pre,post,identity + 3x3 + none
    assert len(trials) == 17 * n_seeds
    assert len({t.trial_id for t in trials}) == len(trials)
    assert [t.index for t in trials] == list(range(len(trials)))
    assert all(t.trial_id == ablate.trial_id(t.config) for t in trials)
    assert plan(load_spec(REPO_ROOT / "sweeps" / "default.toml"))[5].trial_id == trials[5].trial_id
    defaults = [t for t in trials if t.axis == tables.DEFAULT_AXIS]
    assert len(defaults) == n_seeds
    assert {a for a, _ in defaults[0].memberships} == {tables.DEFAULT_AXIS, *tables.AXES}
    assert dict(defaults[0].memberships)["reduction_ratio"] == "r=16"
    assert dict(defaults[0].memberships)["stages"] == "all"
    vanilla = [t for t in trials if t.axis == tables.BASELINE_AXIS]
    assert len(vanilla) == n_seeds and all(t.config.arch == "resnet20_cifar" and t.config.se is None for t in vanilla)
    by = {(t.axis, t.setting): t for t in trials if t.config.seed == sweep.seeds[0]}
    assert by[("stages", "stage 2")].config.se.stages == (2,)
    assert by[("se_3x3", "3x3")].config.se.site == "3x3"
    assert by[("no_squeeze", "none")].config.se.squeeze == "none"
    assert by[("excitation", "tanh")].config.arch == "se_resnet20_cifar"


def test_identical_configs_across_axes_train_once(tmp_path: Path) -> None:
    text = tiny_sweep_spec(seeds="[3]", epochs=1).replace('excitation = ["sigmoid"]',
                                                       'squeeze = ["avg", "max", "none"]\nno_squeeze = ["none"]')
    trials = plan(parse_spec(text))
    none = [t for t in trials if t.config.se is not None and t.config.se.squeeze == "none"]
    assert len(none) == 1 and set(none[0].memberships) == {("squeeze", "none"), ("no_squeeze", "none")}
    assert len(trials) == 4  # vanilla, default (avg), max, none
    assert all(t.config.seed == 3 for t in trials)


@pytest.mark.parametrize("patch, needles", [
    (("[axes]", "[axis]"), ["unknown section", "[axis]"]),
    (("batch_size = 64", "batch_size = 64\nlrr = 0.1"), ["[train]", "'lrr'"]),
    (("batch_size = 64", "batch_size = 64\nseed = 1"), ["[train]", "'seed'", "[sweep].seeds"]),
    (("batch_size = 64", 'batch_size = "big"'), ["[train].batch_size", "'big'"]),
    (('excitation = ["sigmoid"]', 'excitation = ["sigmoid", "swish"]'), ["[axes].excitation[1]", "'swish'",
                                                                          "sigmoid, tanh, relu"]),
    (('excitation = ["sigmoid"]', "stages = [1, 4]"), ["[axes].stages[1]", "(4,)", "1..3"]),
    (('excitation = ["sigmoid"]', 'colour = ["red"]'), ["[axes]", "'colour'"]),
    (('excitation = ["sigmoid"]', 'reduction_ratio = [0]'), ["[axes].reduction_ratio[0]", "0"]),
    (('excitation = ["sigmoid"]', 'se_3x3 = "3x3"'), ["[axes].se_3x3", "list"]),
    (("allow_short = true", "allow_short = false"), ["[train].epochs = 1", "allow_short"]),
    (('arch = "resnet20_cifar"', 'arch = "se_resnet20_cifar"'), ["[train].arch", "se_resnet20_cifar", "vanilla"]),
    (('arch = "resnet20_cifar"', 'arch = "resnet21"'), ["[train].arch", "resnet21"]),
    (("seeds = [0, 1]", "seeds = [0, 0]"), ["[sweep].seeds", "repeats"]),
    (('name = "tiny"', 'name = "../up"'), ["[sweep].name", "../up"]),
    (("[axes]", '[default_se]\nintegration = "pre"\n[axes]\nse_3x3 = ["3x3"]'), ["[axes].se_3x3[0]", "3x3",
                                                                                  "integration"]),
    (("[axes]", "[axes\n"), ["not valid TOML"]),
])
def test_spec_errors_name_the_key_and_value(patch: tuple[str, str], needles: list[str]) -> None:
    text = tiny_sweep_spec(seeds="[0, 1]", epochs=1).replace(*patch)
    with pytest.raises(SpecError) as e:
        parse_spec(text, "bad.toml")
    msg = str(e.value)
    assert msg.startswith("bad.toml")
    for n in needles:
        assert n in msg, (n, msg)


def test_cli_reports_spec_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(tiny_sweep_spec(seeds="[0]", epochs=1).replace("batch_size = 64", "batch_size = -1"))
    assert ablate.main(["run", str(p), "--table", str(tmp_path / "t.csv")]) == 2
    assert "error:" in capsys.readouterr().err
    assert ablate.main(["plan", str(tmp_path / "missing.toml")]) == 2
    good = tmp_path / "good.toml"
    good.write_text(tiny_sweep_spec(seeds="[0]", epochs=1))
    assert ablate.main(["run", str(good), "--table", str(tmp_path / "t.csv"), "--cpus-per-trial", "0"]) == 2
    assert "cpus > 0" in capsys.readouterr().err
    assert ablate.main(["run", str(good), "--table", str(tmp_path / "t.csv"), "--workers-per-trial", "2",
                        "--in-process"]) == 2
    assert "needs Ray" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()


def test_resources_come_from_the_spec_and_flags_override_them(monkeypatch: pytest.MonkeyPatch) -> None:
    text = tiny_sweep_spec(seeds="[0]", epochs=1)
    assert parse_spec(text).resources == Resources(1.0, 0.0)
    sweep = parse_spec(text + "[resources]\ncpus_per_trial = 2\ngpus_per_trial = 0.25\n", "r.toml")
    assert sweep.resources == Resources(2.0, 0.25) and sweep.resources.threads == 2
    assert sweep.resources.replace(None, 0.5) == Resources(2.0, 0.5)
    assert Resources(0.5).threads == 1  # half a core still trains on one thread
    dp = parse_spec(text + "[resources]\nworkers_per_trial = 2\ngpus_per_trial = 1\n", "r.toml").resources
    assert dp == Resources(1.0, 1.0, 2) and dp.replace(workers=4) == Resources(1.0, 1.0, 4)
    for bad, needle in (("cpus_per_trial = 0", "cpus > 0"), ("gpus_per_trial = 1.5", "fraction of one GPU"),
                        ("cpus_per_trial = \"two\"", "[resources].cpus_per_trial"), ("memory = 1", "'memory'"),
                        ("workers_per_trial = 0", "integer >= 1"), ("workers_per_trial = 1.5", "expected an integer"),
                        ("workers_per_trial = 2\ngpus_per_trial = 0.5", "0 or 1 whole GPU per worker"),
                        ("workers_per_trial = 2\ngpus_per_trial = 2", "0 or 1 whole GPU per worker")):
        with pytest.raises(SpecError, match="r.toml") as e:
            parse_spec(text + f"[resources]\n{bad}\n", "r.toml")
        assert needle in str(e.value), (needle, str(e.value))
    # the embedded Ray never starts with authentication off
    from se_core.runs.ablate import connect
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(SpecError, match="RAY_AUTH_MODE=disabled"), connect(""):
        pass


def test_joining_retries_only_a_failed_ray_client_session_start() -> None:
    """Ray Client's per-driver server on the head failing to start is retried on a fresh connection
    (logged); a wrong address or token fails at once, and the last failure is raised as it came."""
    from se_core.runs.ablate.cluster import JOIN_ATTEMPTS, _join

    transient = ConnectionAbortedError("Initialization failure from server:\nRuntimeError: Starting Ray client "
                                       "server failed. See ray_client_server_23000.err for detailed logs.")

    def flaky(failures: list[Exception]):
        calls = {"init": 0, "reset": 0}

        def init() -> None:
            calls["init"] += 1
            if failures:
                raise failures.pop(0)

        return init, lambda: calls.__setitem__("reset", calls["reset"] + 1), calls

    logs: list[str] = []
    no_channel = ConnectionAbortedError("Initialization failure from server:\nRuntimeError: Proxy failed to Connect "
                                        "to backend! Check `ray_client_server.err`")
    init, reset, calls = flaky([transient, no_channel])
    _join(init, reset, logs.append)
    assert calls == {"init": 3, "reset": 2} and len(logs) == 2 and "attempt 2 of 3" in logs[1]
    init, reset, calls = flaky([transient] * JOIN_ATTEMPTS)
    with pytest.raises(ConnectionAbortedError, match="Starting Ray client server failed"):
        _join(init, reset, logs.append)
    assert calls["init"] == JOIN_ATTEMPTS
    for other in (ConnectionError("failed to connect to all addresses"), ValueError("bad address")):
        init, reset, calls = flaky([other])
        with pytest.raises(type(other)):
            _join(init, reset, logs.append)
        assert calls == {"init": 1, "reset": 0}


# ----------------------------------------------------------------------------------------- runner
@needs_cifar
def test_tiny_sweep_end_to_end(tiny_run: dict) -> None:
    df = load_ablation_table(tiny_run["table"])
    trials = plan(tiny_run["sweep"])
    assert len(trials) == 4 and tiny_run["res"].failed == []
    assert list(df["trial_id"]) == [t.trial_id for t in trials]
    assert list(df["index"]) == [0, 1, 2, 3]
    assert list(df["axis"]) == ["baseline", "default"] * 2 and list(df["seed"]) == [0, 0, 1, 1]
    se = df[df["axis"] == "default"].iloc[0]
    assert (se["arch"], se["reduction"], se["squeeze"], se["gate"], se["stages"], se["integration"], se["site"]) == (
        "se_resnet20_cifar", 16, "avg", "sigmoid", "all", "standard", "output")
    assert "excitation:sigmoid" in se["axes"]
    van = df[df["axis"] == "baseline"].iloc[0]
    assert van["arch"] == "resnet20_cifar" and pd.isna(van["reduction"]) and van["squeeze"] == ""
    assert (df["test_n"] == 50).all() and (df["epochs"] == 1).all()
    assert df["top1_err"].between(0, 100).all() and (df["top5_err"] <= df["top1_err"]).all()
    assert (se["params"] > van["params"]) and (se["flops"] > van["flops"]) and van["flops"] > 1e7
    for col in ("command", "commit", "hardware", "date"):
        assert (df[col].astype(str) != "").all(), col
    prov = __import__("json").loads(ablate.provenance_path(tiny_run["table"]).read_text())
    assert prov["spec_sha256"] == tiny_run["sweep"].spec_sha256 and prov["trials_done"] == 4 and prov["finished"]
    # Each trial is a full run directory of the trainer.
    for t in trials:
        d = tiny_run["runs"] / "tiny" / t.trial_id
        assert (d / "last.safetensors").is_file() and (d / "row.json").is_file() and (d / "trial.json").is_file()
    # Summaries: the default SE trial stands for the excitation axis' 'sigmoid' setting.
    s = tables.summarize_axis(df, "excitation")
    assert list(s["setting"]) == ["no SE", "sigmoid"] and list(s["n"]) == [2, 2]
    assert s.loc[1, "is_default"] and s.loc[0, "is_baseline"]
    assert s.loc[0, "d_vs_vanilla"] == 0 and s.loc[1, "d_vs_default"] == 0
    assert s.loc[1, "d_vs_vanilla"] == pytest.approx(s.loc[1, "top1_mean"] - s.loc[0, "top1_mean"])
    assert tables.axes_present(df) == ["excitation"]


@needs_cifar
def test_rerun_skips_finished_trials_and_keeps_the_table(tiny_run: dict, tmp_path: Path) -> None:
    before = tiny_run["table"].read_bytes()
    res = run_sweep(tiny_run["sweep"], table=tiny_run["table"], runs_root=tiny_run["runs"], in_process=True, command="pytest", log=lambda s: None)
    assert res.ran == [] and res.done == 4
    assert tiny_run["table"].read_bytes() == before
    # An axis added to the spec that needs no new trial relabels the existing rows, trains nothing.
    wider = tmp_path / "wider.csv"
    wider.write_bytes(before)
    sweep2 = parse_spec(tiny_run["spec"].read_text() + 'squeeze = ["avg"]\n', "wider.toml")
    res = run_sweep(sweep2, table=wider, runs_root=tiny_run["runs"], in_process=True, log=lambda s: None)
    assert res.ran == []
    df = load_ablation_table(wider)
    assert all("squeeze:avg" in a for a in df.loc[df["axis"] == "default", "axes"])
    assert tables.axes_present(df) == ["squeeze", "excitation"]


@needs_cifar
def test_a_table_with_trials_of_another_sweep_is_not_extended(tiny_run: dict, tmp_path: Path) -> None:
    other = parse_spec(tiny_run["spec"].read_text().replace("seeds = [0, 1]", "seeds = [5]"), "other.toml")
    with pytest.raises(SpecError, match="not in this sweep"):
        run_sweep(other, table=tiny_run["table"], runs_root=tmp_path, in_process=True, log=lambda s: None)
    # an in-process run leaves a finished progress file (no stale "running" one from an earlier Ray run)
    from se_core.runs.ablate.progress import read_progress
    assert read_progress(tiny_run["table"])["state"] == "finished"


# ------------------------------------------------------------------------------------------ loader
GOOD = (
    "trial_id,axis,setting,axes,arch,seed,epochs,top1_err,top5_err,params,flops\n"
    "a1,baseline,no SE,baseline:no SE,resnet20_cifar,0,10,9.5,0.4,269722,81102080\n"
    "b2,default,SE (default),default:SE (default);excitation:sigmoid,se_resnet20_cifar,0,10,9.0,0.3,272095,81106112\n"
)


def test_minimal_table_loads_with_all_columns() -> None:
    df = load_ablation_table(GOOD.encode(), name="mini.csv")
    assert list(df.columns) == list(tables.COLUMNS)
    assert df["seed"].dtype == "Int64" and df["top1_err"].dtype == float and df["reduction"].isna().all()
    assert tables.axes_present(df) == ["excitation"]
    s = tables.summarize_axis(df, "excitation")
    assert list(s["setting"]) == ["no SE", "sigmoid"] and s.loc[1, "d_vs_vanilla"] == pytest.approx(-0.5)


@pytest.mark.parametrize("data, needles", [
    (b"", ["empty"]),
    (b"trial_id,axis,setting,arch,seed,epochs,top1_err,top5_err,params,flops\n", ["no rows"]),
    (GOOD.replace(",flops", "").replace(",81102080", "").replace(",81106112", "").encode(), ["'flops'"]),
    (GOOD.replace("9.0,0.3", "abc,0.3").encode(), ["'top1_err'", "row 2", "trial b2", "'abc'", "not a number"]),
    (GOOD.replace("9.5,0.4", "nan,0.4").encode(), ["'top1_err'", "NaN", "row 1", "trial a1"]),
    (GOOD.replace("9.5,0.4", ",0.4").encode(), ["'top1_err'", "empty", "row 1"]),
    (GOOD.replace(",0,10,9.0", ",0.5,10,9.0").encode(), ["'seed'", "row 2", "whole number"]),
    (GOOD.replace("9.0,0.3", "109.0,0.3").encode(), ["'top1_err'", "row 2", "0-100"]),
    (GOOD.replace("b2,default", "a1,default").encode(), ["'a1'", "twice", "row 1", "row 2"]),
    (GOOD.replace("b2,default", "b2,colour").encode(), ["'axis'", "row 2", "'colour'"]),
    (GOOD.replace(";excitation:sigmoid", ";excitation").encode(), ["'axes'", "row 2", "malformed"]),
    (GOOD.encode("utf-16"), ["not UTF-8"]),
    (GOOD.replace("no SE", "no SE\xe9").encode("latin-1"), ["not UTF-8", "byte"]),
    (b'trial_id,axis\n"a,b\n', ["not a readable CSV"]),
    (GOOD.replace("\na1,", "\n,a1,").encode(), ["first row has more fields than the header", "11 columns"]),
])
def test_table_errors_name_the_column_or_row(data: bytes, needles: list[str]) -> None:
    with pytest.raises(TableError) as e:
        load_ablation_table(data, name="t.csv")
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_table_size_limit_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="over the 0.0001 MB limit"):
        load_ablation_table(GOOD.encode(), max_mb=0.0001)
    p = tmp_path / "t.csv"
    p.write_text(GOOD)
    with pytest.raises(TableError, match="t.csv is .* over the"):
        load_ablation_table(p, max_mb=0.0001)
    assert len(load_ablation_table(p)) == 2
    with pytest.raises(TableError, match="no such file"):
        load_ablation_table(tmp_path / "nope.csv")


def test_table_problems_flag_mixed_and_short_runs() -> None:
    df = load_ablation_table(GOOD.replace(",0,10,9.0", ",0,5,9.0").encode())
    probs = " ".join(tables.table_problems(df))
    assert "'epochs'" in probs and "< 10" in probs and "'arch'" not in probs  # SE twin of the same network


# --------------------------------------------------------------------------------------- reference
def test_reference_rows_are_all_mapped_to_our_labels() -> None:
    ref = tables.load_reference()
    assert len(ref) == 25 and ref["our_axis"].notna().all() and ref["our_setting"].notna().all()
    assert set(ref["ablation"]) == set(tables.AXES)
    assert set(ref["table"]) == {a.paper_table for a in tables.AXES.values()}
    row = ref[(ref["ablation"] == "stages") & (ref["setting"] == "SE_Stage_2")].iloc[0]
    assert (row["our_axis"], row["our_setting"]) == ("stages", "stage 1")
    se_rows = ref[ref["d_vs_se"] == 0]
    assert set(se_rows["ablation"]) == set(tables.AXES)  # every table has its default SE row
    base = ref[ref["our_axis"] == tables.BASELINE_AXIS]
    assert (base["d_vs_vanilla"] == 0).all()
    tanh = ref[ref["setting"] == "Tanh"].iloc[0]
    assert tanh["d_vs_vanilla"] == pytest.approx(tanh["top1_err"] - base["top1_err"].iloc[0])
    assert tables.paper_label("stages") == "reported by Hu et al. (TPAMI v4, Table 13), SE-ResNet-50 on ImageNet"
    rr = tables.reference_rows(ref, "reduction_ratio")
    assert list(rr["our_setting"]) == ["no SE", "r=2", "r=4", "r=8", "r=16", "r=32"]


@pytest.mark.skipif(not tables.SHARED_REFERENCE_PATH.is_file(), reason="shared/ not present")
def test_shipped_reference_copy_matches_shared() -> None:
    assert tables.REFERENCE_PATH.read_bytes() == tables.SHARED_REFERENCE_PATH.read_bytes()
    assert (tables.REFERENCE_PATH.parent / "README.md").is_file()


def test_diff_se_needs_two_seeds_on_both_sides() -> None:
    assert tables.diff_se(0.3, 2, 0.4, 2) == pytest.approx((0.09 / 2 + 0.16 / 2) ** 0.5)
    assert tables.diff_se(0.3, 1, 0.4, 2) != tables.diff_se(0.3, 1, 0.4, 2)  # NaN: one seed has no spread
    assert tables.diff_se(float("nan"), 2, 0.4, 2) != tables.diff_se(float("nan"), 2, 0.4, 2)


TWO_SEEDS = GOOD + (
    "a2,baseline,no SE,baseline:no SE,resnet20_cifar,1,10,9.7,0.4,269722,81102080\n"
    "b3,default,SE (default),default:SE (default);excitation:sigmoid,se_resnet20_cifar,1,10,9.4,0.3,272095,81106112\n"
    "c1,excitation,tanh,excitation:tanh,se_resnet20_cifar,0,10,10.0,0.3,272095,81106112\n")


def test_pooled_seed_std_and_the_standard_errors_built_on_it() -> None:
    df = load_ablation_table(TWO_SEEDS.encode(), name="two.csv")
    sigma, dof = tables.pooled_seed_std(df)
    # no SE 9.5/9.7 (var 0.02), default 9.0/9.4 (var 0.08), tanh one seed (no spread to pool)
    assert dof == 2 and sigma == pytest.approx(((0.02 + 0.08) / 2) ** 0.5)
    s = tables.summarize_axis(df, "excitation")
    assert list(s["setting"]) == ["no SE", "sigmoid", "tanh"]
    van, sig, tanh = (s.iloc[i] for i in range(3))
    assert sig["d_vs_vanilla"] == pytest.approx(9.2 - 9.6) and sig["d_vs_vanilla_se"] == pytest.approx(sigma)
    assert tanh["d_vs_default"] == pytest.approx(10.0 - 9.2)
    assert tanh["d_vs_default_se"] == pytest.approx(sigma * 1.5 ** 0.5)  # one seed against two
    assert sig["d_vs_default_se"] != sig["d_vs_default_se"] and van["d_vs_vanilla_se"] != van["d_vs_vanilla_se"]
    one_seed = tables.summarize_axis(load_ablation_table(GOOD.encode(), name="one.csv"), "excitation")
    assert one_seed["d_vs_vanilla_se"].isna().all() and tables.pooled_seed_std(load_ablation_table(
        GOOD.encode(), name="one.csv"))[1] == 0  # nothing to pool: no error bar rather than a made-up one


def test_compare_axis_carries_our_standard_errors_and_none_for_the_paper() -> None:
    df = load_ablation_table(TWO_SEEDS.encode(), name="two.csv")
    summ = tables.summarize_axis(df, "excitation")
    cmp = tables.compare_axis(summ, tables.reference_rows(tables.load_reference(), "excitation"))
    assert list(dict.fromkeys(cmp["setting"])) == ["no SE", "sigmoid", "tanh", "relu"]  # ours first, then the paper's
    ours = cmp[cmp["series"].isin(tables.DELTA_SERIES[:2])].set_index(["setting", "series"])
    tanh = summ.set_index("setting").loc["tanh"]
    assert ours.loc[("tanh", "ours vs default SE"), "delta"] == pytest.approx(tanh["d_vs_default"])
    assert ours.loc[("tanh", "ours vs default SE"), "se"] == pytest.approx(tanh["d_vs_default_se"])
    assert ours.loc[("tanh", "ours vs no SE"), "se"] == pytest.approx(tanh["d_vs_vanilla_se"])
    assert ("no SE", "ours vs no SE") not in ours.index and ("sigmoid", "ours vs default SE") not in ours.index
    assert ("no SE", "ours vs default SE") in ours.index  # the baseline against the default SE stays
    paper = cmp[cmp["series"].isin(tables.DELTA_SERIES[2:])]
    assert len(paper) and paper["se"].isna().all()  # one run per paper row: no whisker is drawn for it


def test_summary_markdown_puts_ours_beside_the_papers_rows() -> None:
    df = load_ablation_table(TWO_SEEDS.encode(), name="two.csv")
    ref = tables.load_reference()
    lines = tables.summary_markdown(df, ref)
    assert lines[0] == "**Excitation gate** (paper Table 12)"
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in lines if ln.startswith("| ") and "---" not in ln}
    paper = tables.reference_rows(ref, "excitation").set_index("our_setting")
    assert f"| {paper.loc['tanh', 'top1_err']:.2f} | {paper.loc['tanh', 'd_vs_vanilla']:+.2f} |" in rows["tanh"]
    assert rows["sigmoid (default)"].startswith("| sigmoid (default) | 0 1 | 9.20 ± 0.28 | -0.40 ± 0.22 | – |")
    bare = [ln for ln in tables.summary_markdown(df) if ln.startswith("| tanh")]
    assert bare == ["| tanh | 0 | 10.00 | +0.40 ± 0.27 | +0.80 ± 0.27 | +2,373 | +0.005 % | – | – |"]  # no paper


def test_summary_cli_writes_only_its_docs_block(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tiny_spec(tmp_path)
    table = tmp_path / "t.csv"
    table.write_text(TWO_SEEDS)
    doc = tmp_path / "doc.md"
    doc.write_text("# D\n\n<!-- sweep-results:begin -->\nstale\n<!-- sweep-results:end -->\n\ntail\n")
    assert ablate.main(["summary", str(spec), "--table", str(table), "--docs", str(doc)]) == 0
    out = capsys.readouterr().out
    text = doc.read_text()
    assert "stale" not in text and text.startswith("# D\n") and text.endswith("tail\n")
    assert out.strip() in text and "0 of 4 trials of `tiny`" in out and "plus 5 row(s) that are not" in out
    assert "**Excitation gate** (paper Table 12)" in text and "σ = 0.22 pt (2 degrees of freedom)" in text
    doc.write_text("no block here\n")
    with pytest.raises(ValueError, match="sweep-results:begin"):
        ablate.main(["summary", str(spec), "--table", str(table), "--docs", str(doc)])
