"""Streaming class-wise statistics (se_core.analysis.stats), knock-out (se_core.analysis.knockout), path confinement (se_core.util.paths)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import needs_cifar

from se_core.analysis import stats as S
from se_core.analysis.knockout import KnockoutError, accuracy, default_sets, knockout
from se_core.data.constants import CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import ImageSet, load_dataset
from se_core.models.build import build_from_checkpoint
from se_core.models.registry import get_spec
from se_core.nn.se import SEConfig
from se_core.probe.sites import Intervention, find_sites, intervene, probe
from se_core.util.files import file_sha256
from se_core.util.paths import PathError, check_tree, data_roots, resolve_user_path
from tests.conftest import REPO_ROOT, subprocess_env

MEAN, STD = CIFAR10_MEAN, CIFAR10_STD


def _images(n: int, k: int, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % k
    return ImageSet(x, y, tuple(f"c{i}" for i in range(k)), f"random{n}", f"rand-{seed}-{n}-{k}")


def _model(se: SEConfig | None = SEConfig(), seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    arch = "se_resnet20_cifar" if se is not None else "resnet20_cifar"
    m = get_spec(arch).build(se).eval()
    # random BN statistics so gates spread over their range instead of sitting at one value
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.normal_(1, 0.3)
    return m


@pytest.fixture(scope="module")
def data() -> ImageSet:
    return _images(90, 3)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return _model()


def _brute(model, data):
    """Gates and z of every image by a plain probe, no streaming."""
    from se_core.data.datasets import normalize

    res = probe(model, normalize(data.images, MEAN, STD))
    return res.s, res.z


def _inverted_cdf(v: np.ndarray, q: float) -> float:
    return float(np.quantile(v, q, method="inverted_cdf"))


# --------------------------------------------------------------------------- statistics vs brute force


@pytest.mark.parametrize("gate,relu_max", [("sigmoid", S.RELU_MAX), ("tanh", S.RELU_MAX), ("relu", 0.6)])
def test_stats_equal_brute_force(data, gate, relu_max):
    model = _model(SEConfig(gate=gate)) if gate != "sigmoid" else _model()
    st = S.compute_stats(model, data, MEAN, STD, batch_size=16, bins=64, relu_max=relu_max)
    s, z = _brute(model, data)
    y = data.labels.numpy()
    assert st.n_images == len(data) and list(st.count) == [30, 30, 30]
    assert [g.name for g in st.gate_sites] == [x.name for x in find_sites(model) if x.gate]
    for info in st.gate_sites:
        v = s[info.name].double().numpy()
        assert (info.lo, info.hi) == {"sigmoid": (0, 1), "tanh": (-1, 1), "relu": (0, relu_max)}[gate]
        err = st.quantile_error(info.name)
        assert err == pytest.approx((info.hi - info.lo) / 128)
        q = {p: st.quantile(info.name, p) for p in (0.25, 0.5, 0.75)}
        for k in range(3):
            vk = v[y == k]
            np.testing.assert_allclose(st.class_mean(info.name)[k], vk.mean(0), atol=1e-7, rtol=0)
            np.testing.assert_allclose(st.class_var(info.name)[k], vk.var(0), atol=1e-6, rtol=0)
            for c in range(vk.shape[1]):
                for p in (0.25, 0.5, 0.75):
                    exact = _inverted_cdf(vk[:, c], p)
                    if exact >= info.hi:  # beyond the histogram's range: reported as NaN, never a wrong number
                        assert np.isnan(q[p][k, c])
                    else:
                        assert abs(q[p][k, c] - exact) <= err + 1e-9, (info.name, k, c, p)
                q1, q3 = _inverted_cdf(vk[:, c], 0.25), _inverted_cdf(vk[:, c], 0.75)
                if q3 < info.hi:  # IQR within one bin width
                    assert abs(st.iqr(info.name)[k, c] - (q3 - q1)) <= 2 * err + 1e-9
                else:
                    assert np.isnan(st.iqr(info.name)[k, c])
        np.testing.assert_allclose(st.mean(info.name), v.mean(0), atol=1e-7, rtol=0)
        np.testing.assert_allclose(st.var(info.name), v.var(0), atol=1e-6, rtol=0)
        assert st.s_hist[info.name].sum() == v.size
        med_all = st.median(info.name, per_class=False)
        for c in range(v.shape[1]):
            exact = _inverted_cdf(v[:, c], 0.5)
            assert np.isnan(med_all[c]) if exact >= info.hi else abs(med_all[c] - exact) <= err + 1e-9
        # selectivity equals the direct per-image computation
        from se_core.analysis.selectivity import class_selectivity
        direct = class_selectivity(s[info.name], data.labels, 3).numpy()
        np.testing.assert_allclose(st.selectivity_channels(info.name), direct, atol=1e-6)
    for info in st.z_sites:
        v = z[info.name].double().numpy()
        for k in range(3):
            np.testing.assert_allclose(st.z_class_mean(info.name)[k], v[y == k].mean(0), atol=1e-6, rtol=1e-6)
            np.testing.assert_allclose(st.z_class_var(info.name)[k], v[y == k].var(0), atol=1e-5, rtol=1e-5)
    if gate == "relu":  # the overflow bin is used and counted
        assert sum(int(h[..., -1].sum()) for h in st.s_hist.values()) > 0
    assert st.sums_exact and st.meta["sums_exact"]
    sel = st.selectivity()
    assert list(sel) == [g.name for g in st.gate_sites] and all(0 <= v <= 1 for v in sel.values())


def test_vanilla_model_has_z_only(data):
    st = S.compute_stats(_model(None), data, MEAN, STD, batch_size=45, bins=8)
    assert st.gate_sites == () and len(st.z_sites) == 9
    assert st.selectivity() == {} and len(st.selectivity("z")) == 9
    s, z = _brute(_model(None), data)
    assert not s
    name = st.z_sites[-1].name
    np.testing.assert_allclose(st.z_mean(name), z[name].double().numpy().mean(0), atol=1e-6, rtol=1e-6)


def test_batch_size_and_merge_are_exact(model, data):
    one = S.compute_stats(model, data, MEAN, STD, batch_size=90, bins=32)
    other = S.compute_stats(model, data, MEAN, STD, batch_size=7, bins=32)
    a, b, c = (S.compute_stats(model, data.subset(idx), MEAN, STD, batch_size=11, bins=32)
               for idx in (range(0, 20), range(20, 61), range(61, 90)))
    left, right = (a + b) + c, a.merge(b.merge(c))
    assert left.same_numbers(right)  # associative bit for bit (grid sums are integers in float64)
    for st in (other, left):
        assert np.array_equal(st.count, one.count)
        for name in one.s_sum:
            np.testing.assert_allclose(st.total("s_sum", name), one.total("s_sum", name), atol=1e-6, rtol=0)
            assert np.abs(st.s_hist[name] - one.s_hist[name]).sum() <= 0.001 * one.s_hist[name].sum()
        for name in one.z_sum:
            np.testing.assert_allclose(st.total("z_sumsq", name), one.total("z_sumsq", name), rtol=1e-6, atol=1e-6)
    with pytest.raises(S.StatsError, match="bins"):
        one.merge(S.compute_stats(model, data, MEAN, STD, batch_size=90, bins=16))
    with pytest.raises(S.StatsError, match="different models"):
        one.merge(S.compute_stats(_model(None), data, MEAN, STD, batch_size=90, bins=32))


def test_cancel_and_progress(model, data, tmp_path, monkeypatch):
    seen = []
    S.compute_stats(model, data, MEAN, STD, batch_size=30, bins=8, progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    calls = iter([False, True])
    with pytest.raises(S.StatsCancelled):
        S.compute_stats(model, data, MEAN, STD, batch_size=30, bins=8, should_stop=lambda: next(calls))
    # a cancelled cached pass writes nothing
    ckpt = _save(tmp_path, model)
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(S.StatsCancelled):
        S.cached_stats(ckpt, model, data, MEAN, STD, should_stop=lambda: True)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    st, path, fresh = S.cached_stats(ckpt, model, data, MEAN, STD, bins=8)
    assert fresh and path.is_file()
    st2, path2, fresh2 = S.cached_stats(ckpt, model, data, MEAN, STD, bins=8, should_stop=lambda: True)
    assert not fresh2 and path2 == path and st2.same_numbers(st)  # never computed twice
    assert path.name.startswith(file_sha256(ckpt)[:16])


# --------------------------------------------------------------------------- save / load


def _save(tmp_path: Path, model: torch.nn.Module, name: str = "m.safetensors") -> Path:
    from se_core.models.checkpoints import CheckpointMeta, save_checkpoint

    meta = CheckpointMeta(arch="se_resnet20_cifar" if any(s.gate for s in find_sites(model)) else "resnet20_cifar",
                          se_config=json.loads(SEConfig().to_json()) if any(s.gate for s in find_sites(model)) else None,
                          num_classes=10, mean=MEAN, std=STD, input_size=(32, 32))
    save_checkpoint(tmp_path / name, model, meta)
    return tmp_path / name


def test_save_load_roundtrip_and_provenance(model, data, tmp_path):
    st = S.compute_stats(model, data, MEAN, STD, batch_size=45, bins=16)
    ckpt = _save(tmp_path, model)
    st.meta["provenance"] = S.provenance(ckpt, role="se", arch="se_resnet20_cifar", command="test")
    path = S.save_stats(tmp_path / "s.npz", st)
    back = S.load_stats(path)
    assert back.same_numbers(st) and back.gate_sites == st.gate_sites and back.classes == st.classes
    assert back.meta["provenance"]["checkpoint"]["sha256"] == file_sha256(ckpt)
    side = json.loads((tmp_path / "s.npz.json").read_text())
    for key in ("command", "commit", "date", "schema"):
        assert key in side["meta"]["provenance"]
    assert side["meta"]["data"] == {"name": data.name, "digest": data.digest, "n": len(data)}
    assert side["schema"] == S.SCHEMA_VERSION and "wall_time_s" in side["meta"]


def test_malformed_and_foreign_files_rejected(model, data, tmp_path):
    st = S.compute_stats(model, data.subset(range(10)), MEAN, STD, batch_size=10, bins=4)
    good = S.save_stats(tmp_path / "good.npz", st, sidecar=False)
    with pytest.raises(S.StatsError, match="no such statistics file"):
        S.load_stats(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file at all")
    with pytest.raises(S.StatsError, match="not a readable .npz"):
        S.load_stats(tmp_path / "junk.npz")
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(S.StatsError, match="not a readable|truncated|corrupt"):
        S.load_stats(tmp_path / "trunc.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(S.StatsError, match="foreign"):
        S.load_stats(tmp_path / "foreign.npz")
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["__header__"].tobytes())

    def rewrite(name: str, **changes) -> Path:
        h = dict(header, **changes)
        a = dict(arrays, __header__=np.frombuffer(json.dumps(h).encode(), dtype=np.uint8))
        np.savez(tmp_path / name, **a)
        return tmp_path / name

    with pytest.raises(S.StatsError, match="schema 99"):
        S.load_stats(rewrite("future.npz", schema=99))
    with pytest.raises(S.StatsError, match="foreign"):
        S.load_stats(rewrite("other.npz", format="someone.else"))
    with pytest.raises(S.StatsError, match="missing"):
        np.savez(tmp_path / "hole.npz", **{k: v for k, v in arrays.items() if k != "s_hist_3"})
        S.load_stats(tmp_path / "hole.npz")
    bad = dict(arrays, count=arrays["count"][:2])
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(S.StatsError, match="expected"):
        S.load_stats(tmp_path / "shape.npz")
    a = dict(arrays, __header__=np.frombuffer(b"{not json", dtype=np.uint8))
    np.savez(tmp_path / "badjson.npz", **a)
    with pytest.raises(S.StatsError, match="not valid JSON"):
        S.load_stats(tmp_path / "badjson.npz")
    np.savez(tmp_path / "pickled.npz", __header__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(S.StatsError):
        S.load_stats(tmp_path / "pickled.npz")  # never unpickled


# --------------------------------------------------------------------------- CLI, shipping, torchrun


def _image_folder(root: Path, per_class: int = 10, classes=("ant", "bee", "cow", "dog")) -> Path:
    rng = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(root / c / f"{i:03d}.png")
    return root


def test_cli_checkpoint_and_errors(model, tmp_path, capsys):
    ckpt = _save(tmp_path, model)
    folder = _image_folder(tmp_path / "imgs", per_class=5)
    out = tmp_path / "out.npz"
    assert S.main(["--checkpoint", str(ckpt), "--data", str(folder), "--out", str(out), "--batch-size", "8",
                   "--bins", "16"]) == 0
    text = capsys.readouterr().out
    assert "eta^2" in text and str(out) in text.splitlines()[-1]
    st = S.load_stats(out)
    assert st.classes == ("ant", "bee", "cow", "dog") and st.n_images == 20
    assert st.meta["provenance"]["command"].startswith("python -m se_core.stats --checkpoint")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 4)
    assert S.main(["--checkpoint", str(tmp_path / "bad.safetensors"), "--data", str(folder)]) == 2
    assert "error:" in capsys.readouterr().err


@needs_cifar
def test_ship_pair_stats_and_pair_cli(tiny_data_dir, tmp_path, capsys):
    from se_core.models.pairs import DEFAULT_PAIR

    data = load_dataset("cifar10-jpeg", "test").subset(range(0, 10_000, 250))
    paths = S.ship_pair_stats(DEFAULT_PAIR, data, batch_size=40)
    assert paths == S.shipped_paths(DEFAULT_PAIR)
    se, van = S.load_stats(paths["se"]), S.load_stats(paths["vanilla"])
    assert len(se.gate_sites) == 9 and van.gate_sites == () and len(van.z_sites) == 9
    prov = (tiny_data_dir / "stats" / "PROVENANCE.md").read_text()
    assert S.SHIP_COMMAND in prov and se.meta["provenance"]["checkpoint"]["sha256"][:16] in prov
    assert se.meta["provenance"]["checkpoint"]["sha256"] == file_sha256(tiny_data_dir / "checkpoints/se_resnet20-s0.safetensors")
    folder = _image_folder(tmp_path / "imgs", per_class=3)
    assert S.main(["--pair", DEFAULT_PAIR, "--data", str(folder), "--out", str(tmp_path / "o"), "--bins", "8"]) == 0
    assert len(list((tmp_path / "o").glob("*.npz"))) == 2
    assert S.main(["--pair", "no-such-pair", "--data", str(folder)]) == 2
    # every own pair whose checkpoints exist ships beside the default, under one PROVENANCE.md
    from se_core.analysis import knockout as ko
    from se_core.models.pairs import PAIRS, SE8_PAIR

    assert S.shippable_pairs() == [DEFAULT_PAIR] and S.has_shipped(SE8_PAIR)
    for ref, src in ((PAIRS[SE8_PAIR].se_weights, "se_resnet20-s0"), (PAIRS[SE8_PAIR].vanilla_weights, "resnet20-s0")):
        ref.path().write_bytes((tiny_data_dir / "checkpoints" / f"{src}.safetensors").read_bytes())
    assert S.shippable_pairs() == [DEFAULT_PAIR, SE8_PAIR]
    second = S.ship_pair_stats(SE8_PAIR, data, batch_size=40)
    prov = (tiny_data_dir / "stats" / "PROVENANCE.md").read_text()
    assert all(p.name in prov for p in [*paths.values(), *second.values()])
    capsys.readouterr()
    assert ko.main(["--ship", "--subset", "5"]) == 2 and "drop --subset" in capsys.readouterr().err
    assert S.main(["--ship", "--data", "x", "--subset", "5"]) == 2 and "drop --data, --subset" in capsys.readouterr().err
    assert ko.main(["--ship", "--pair", "no-such-pair"]) == 2 and S.main(["--ship", "--pair", "no-such-pair"]) == 2
    assert "no-such-pair is not one" in capsys.readouterr().err
    for bad in (["--ship", "--checkpoint", "x.safetensors"], []):
        with pytest.raises(SystemExit):
            S.main(bad)
    PAIRS[DEFAULT_PAIR].se_weights.path().unlink()  # --pair narrows --ship to one own pair
    assert S.main(["--ship", "--pair", DEFAULT_PAIR]) == 2 and ko.main(["--ship", "--pair", DEFAULT_PAIR]) == 2
    err = capsys.readouterr().err
    assert f"skipping {DEFAULT_PAIR}: " in err and SE8_PAIR not in err and f"{DEFAULT_PAIR} does not have its checkpoints" in err
    PAIRS[SE8_PAIR].se_weights.path().unlink()  # no own pair has its checkpoints
    assert S.main(["--ship"]) == 2 and ko.main(["--ship"]) == 2
    err = capsys.readouterr().err
    assert f"skipping {SE8_PAIR}: " in err and "bash sweeps/final_e30.sh se:0" in err and "no own pair has its checkpoints" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_equal_one_rank(model, tmp_path):
    ckpt = _save(tmp_path, model)
    folder = _image_folder(tmp_path / "imgs", per_class=9, classes=("a", "b", "c"))  # 27 images: uneven shards
    one = tmp_path / "one.npz"
    assert S.main(["--checkpoint", str(ckpt), "--data", str(folder), "--out", str(one), "--batch-size", "5",
                   "--bins", "32"]) == 0
    two = tmp_path / "two.npz"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "se_core.stats", "--checkpoint", str(ckpt), "--data", str(folder), "--out", str(two),
           "--batch-size", "5", "--bins", "32"]
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(GLOO_SOCKET_IFNAME="lo"), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = S.load_stats(one), S.load_stats(two)
    assert b.meta["world"] == 2 and a.meta["world"] == 1
    assert a.n_images == b.n_images == 27 and np.array_equal(a.count, b.count)
    # equal to one pass up to the forward's own float32 rounding (a batch's BLAS blocking can move a gate by an ulp)
    for name in a.s_sum:
        np.testing.assert_allclose(b.total("s_sum", name), a.total("s_sum", name), atol=1e-6, rtol=0)
        np.testing.assert_allclose(b.class_var(name), a.class_var(name), atol=1e-7, rtol=0)
        assert np.abs(a.s_hist[name] - b.s_hist[name]).sum() <= 0.001 * a.s_hist[name].sum()
    for name in a.z_sum:
        np.testing.assert_allclose(b.total("z_sumsq", name), a.total("z_sumsq", name), rtol=1e-6, atol=1e-6)
    # ...and the all_reduce merge itself is exact: each rank's shard, computed here on the same batches, merged
    from se_core.data.datasets import BatchStream

    model2, meta = build_from_checkpoint(ckpt)
    data = load_dataset(str(folder), "test", (32, 32))
    shards = [S.compute_stats(model2, data.subset(BatchStream(data, 5, MEAN, STD, train=False, rank=r, world=2).order),
                              MEAN, STD, batch_size=5, bins=32) for r in range(2)]
    assert (shards[0] + shards[1]).same_numbers(b), "all_reduce of the rank partials is not exact"


# --------------------------------------------------------------------------- knock-out


def test_knockout_without_sites_equals_baseline(model, data):
    from se_core.analysis.evaluate import evaluate

    base = evaluate(model, data, MEAN, STD, batch_size=45)
    df = knockout(model, data, MEAN, STD, sets=[], batch_size=45)
    assert list(df["mode"]) == ["baseline"] and df["top1"].iloc[0] == pytest.approx(base["top1"])
    df = knockout(model, data, MEAN, STD, sets=[("nothing", "block", ())], modes=("off",), batch_size=45)
    assert df["top1"].iloc[1] == pytest.approx(base["top1"]) and df["delta"].iloc[1] == 0.0


def test_knockout_matches_direct_interventions(model, data):
    from se_core.data.datasets import normalize

    st = S.compute_stats(model, data, MEAN, STD, batch_size=45, bins=8)
    mean_gates = {s.name: st.mean(s.name) for s in st.gate_sites}
    sets = default_sets(model)
    assert [k for _, k, _ in sets].count("block") == 9 and ("all SE blocks", "all", tuple(mean_gates)) in sets
    assert [lab for lab, k, _ in sets if k == "stage"] == ["stage 1", "stage 2", "stage 3"]
    df = knockout(model, data, MEAN, STD, sets=[s for s in sets if s[1] != "block"], mean_gates=mean_gates,
                  batch_size=30)
    assert len(df) == 1 + 4 * 2
    x, y = normalize(data.images, MEAN, STD), data.labels
    for _, row in df[df["kind"] != "baseline"].iterrows():
        names = row["sites"].split(",")
        ivs = [Intervention(n, "off") if row["mode"] == "off" else
               Intervention(n, "vector", torch.as_tensor(mean_gates[n], dtype=torch.float32)) for n in names]
        direct = 100.0 * float((intervene(model, x, ivs).argmax(1) == y).float().mean())
        assert row["top1"] == pytest.approx(direct)
        assert row["delta"] == pytest.approx(row["top1"] - df["top1"].iloc[0])
    with pytest.raises(KnockoutError, match="mean gates"):
        knockout(model, data, MEAN, STD, modes=("mean",))
    with pytest.raises(KnockoutError, match="unknown knock-out mode"):
        knockout(model, data, MEAN, STD, modes=("zero",))
    assert accuracy(model, data, MEAN, STD)["n"] == len(data)


# --------------------------------------------------------------------------- paths


def test_paths_confined(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "sets" / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    roots = [root]
    assert resolve_user_path("sets", roots) == (root / "sets").resolve()
    assert resolve_user_path(str(root / "sets" / "a"), roots) == (root / "sets" / "a").resolve()
    with pytest.raises(PathError, match=r"'\.\.' is not allowed"):
        resolve_user_path("sets/../../outside", roots)
    with pytest.raises(PathError, match=r"'\.\.' is not allowed"):
        resolve_user_path(str(root / ".." / "outside"), roots)
    with pytest.raises(PathError, match="outside the allowed data roots"):
        resolve_user_path(str(outside), roots)
    with pytest.raises(PathError, match="outside the allowed data roots"):
        resolve_user_path("/etc", roots)
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathError, match="leads outside"):
        resolve_user_path("link", roots)
    with pytest.raises(PathError, match="leads outside"):
        resolve_user_path(str(root / "link"), roots)
    with pytest.raises(PathError, match="does not exist"):
        resolve_user_path("nope", roots)
    with pytest.raises(PathError, match="no path"):
        resolve_user_path("  ", roots)
    # a symlinked image inside an otherwise fine folder is caught before anything reads it
    (root / "sets" / "a" / "img.png").symlink_to(outside / "secret.png")
    with pytest.raises(PathError, match="img.png leads outside"):
        check_tree(root / "sets", roots)
    (root / "sets" / "a" / "img.png").unlink()
    assert check_tree(root / "sets", roots) == 1
    # roots from the environment, relative paths tried under each root in order
    second = tmp_path / "second"
    (second / "only_here").mkdir(parents=True)
    monkeypatch.setenv("SE_LENS_DATA_ROOTS", os.pathsep.join([str(root), str(second)]))
    assert data_roots() == (root, second)
    assert resolve_user_path("only_here") == (second / "only_here").resolve()
    monkeypatch.delenv("SE_LENS_DATA_ROOTS")
    assert data_roots()[0] == REPO_ROOT / "data" and data_roots()[1] == REPO_ROOT.parent / "shared" / "data"
