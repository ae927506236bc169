"""What the gates encode (se_core.analysis.gates, #20): gate samples against a plain probe, their disk cache,
and PCA / top-k / Jaccard / variance split against direct computations on synthetic data with a known class
structure (a constant gate must read as input-independent; the variance parts must add up to the total)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support import REPO_ROOT, needs_cifar

from se_core.analysis import gates as G
from se_core.analysis.selectivity import class_selectivity
from se_core.analysis.stats import SiteInfo, StatsCancelled, StatsError
from se_core.data.constants import CIFAR10_MEAN, CIFAR10_STD
from se_core.data.datasets import ImageSet, normalize
from se_core.models.checkpoints import CheckpointMeta, save_checkpoint
from se_core.models.registry import get_spec
from se_core.probe.sites import hook_count, probe

MEAN, STD = CIFAR10_MEAN, CIFAR10_STD


def _images(n: int = 24, k: int = 3) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8)
    return ImageSet(x, torch.arange(n) % k, tuple(f"c{i}" for i in range(k)), f"random{n}", f"gs-{n}-{k}")


def _model(arch: str = "se_resnet20_cifar") -> torch.nn.Module:
    torch.manual_seed(0)
    m = get_spec(arch).build().eval()
    with torch.no_grad():  # random BN statistics, so gates spread instead of sitting at one value
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return m


def _synthetic(x: np.ndarray, labels: np.ndarray, k: int, what: str = "s") -> G.GateSample:
    """A one-block sample holding ``x`` as its gates (or squeeze)."""
    site = SiteInfo("layer1.0.se", "s1.b0", 1, 0, 0, x.shape[1], "Sigmoid" if what == "s" else None)
    v = {site.name: x.astype(np.float16)}
    return G.GateSample(tuple(f"c{i}" for i in range(k)), np.arange(len(x)), labels, (site,) if what == "s" else (),
                        (site,), v if what == "s" else {}, v)


def _clusters(n_per: int = 40, c: int = 12, noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose gates sit at three distinct points in channel space, plus small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, (3, c))
    labels = np.repeat(np.arange(3), n_per)
    return centres[labels] + rng.normal(0, noise, (len(labels), c)), labels


# --------------------------------------------------------------------------- the streaming pass


def test_sample_equals_a_plain_probe_and_leaves_no_hooks():
    model, data = _model(), _images()
    seen = []
    sample = G.collect_sample(model, data, MEAN, STD, batch_size=10, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and hook_count(model) == 0
    res = probe(model, normalize(data.images, MEAN, STD))
    assert [s.name for s in sample.gate_sites] == list(res.s) and len(sample.gate_sites) == 9
    for name, s in res.s.items():
        assert sample.s[name].dtype == np.float16 and sample.s[name].shape == tuple(s.shape)
        np.testing.assert_allclose(sample.values("s", name), s.numpy(), rtol=1e-3, atol=1e-4)
    for name, z in res.z.items():
        np.testing.assert_allclose(sample.values("z", name), z.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(sample.labels, data.labels.numpy())
    np.testing.assert_array_equal(sample.index, np.arange(len(data)))
    vanilla = G.collect_sample(_model("resnet20_cifar"), data, MEAN, STD)
    assert not vanilla.gate_sites and len(vanilla.z_sites) == 9 and not vanilla.s


@needs_cifar
def test_nearly_frozen_trained_blocks_keep_their_variation():
    """The shipped SE model has blocks whose gates move by ~1e-5 near one value: float16 of the values would
    round them to constants; the stored deviations keep their variance split."""
    from se_core.data.datasets import load_dataset
    from se_core.models.build import build_from_checkpoint

    ckpt = REPO_ROOT / "data" / "checkpoints" / "se_resnet20-s0.safetensors"
    if not ckpt.is_file():
        pytest.skip("the shipped checkpoints are not in data/checkpoints")
    model, meta = build_from_checkpoint(ckpt)
    data = load_dataset("cifar10-jpeg", "test").subset(range(0, 10_000, 50))
    sample = G.collect_sample(model, data, meta.mean, meta.std, batch_size=100)
    exact = probe(model.eval(), normalize(data.images, meta.mean, meta.std)).s
    tiny = 0
    for st in sample.gate_sites:
        got, want = (G.variance_split(v, sample.labels, 10) for v in (sample.values("s", st.name), exact[st.name].numpy()))
        for part in ("total", "between_class", "within_class", "selectivity"):
            assert got[part] == pytest.approx(want[part], rel=2e-2, abs=1e-14), (st.label, part)
        tiny += 0 < want["between_class"] + want["within_class"] < 1e-8
    assert tiny  # such a block is there to test


def test_size_bound_thins_evenly_and_stop_cancels():
    model, data = _model(), _images(40)
    one = G.collect_sample(model, data, MEAN, STD, max_images=1)
    assert one.n_images == 1
    per = G.bytes_per_image(one.gate_sites, one.z_sites)
    assert per == 2 * 2 * (3 * (16 + 32 + 64))  # s and z, float16, nine blocks
    sample = G.collect_sample(model, data, MEAN, STD, max_mb=per * 10 / 1e6)
    assert sample.n_images == 10 and sample.nbytes == per * 10 + 2 * per  # + one float32 offset per channel
    np.testing.assert_array_equal(sample.index, [0, 4, 9, 13, 17, 22, 26, 30, 35, 39])  # first to last
    np.testing.assert_array_equal(sample.labels, data.labels.numpy()[sample.index])
    with pytest.raises(StatsCancelled):
        G.collect_sample(model, data, MEAN, STD, batch_size=10, should_stop=lambda: True)
    assert hook_count(model) == 0


def test_sample_spans_a_class_sorted_data_set():
    """ImageFolder data is sorted by class: keeping more than half the images must not keep only the first ones."""
    labels = np.repeat(np.arange(10), 200)  # n = 2000, sorted by class
    per = 2 * 2 * 15_104  # an SE-ResNet-50's s and z: 1,059 images fit 64 MB
    idx = G.sample_indices(len(labels), per)
    assert len(idx) == 1059 == G.sample_size(len(labels), per) and len(np.unique(idx)) == len(idx)
    assert idx[0] == 0 and idx[-1] == len(labels) - 1 and np.diff(idx).max() <= 2
    assert set(labels[idx]) == set(range(10))
    assert np.bincount(labels[idx]).min() >= 105  # about 106 of each class


def test_both_models_of_a_pair_sample_the_same_images():
    """The SE model has gates as well as squeezes, so fewer of its images fit: the vanilla model is given its count."""
    se, vanilla, data = _model(), _model("resnet20_cifar"), _images(40)
    one = G.collect_sample(se, data, MEAN, STD, max_images=1)
    per_se = G.bytes_per_image(one.gate_sites, one.z_sites)
    max_mb = per_se * 10 / 1e6  # 10 SE images, 20 vanilla ones
    assert G.shared_max_images([se, vanilla], data, max_mb=max_mb) == 10
    assert G.shared_max_images([se, vanilla], data) is None  # all fit: the cache key stays "all"
    k = G.shared_max_images([se, vanilla], data, max_mb=max_mb)
    a, b = (G.collect_sample(m, data, MEAN, STD, max_images=k, max_mb=max_mb) for m in (se, vanilla))
    np.testing.assert_array_equal(a.index, b.index)
    assert G.collect_sample(vanilla, data, MEAN, STD, max_mb=max_mb).n_images == 20  # what it was without


def test_disk_cache_once_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    model, data = _model(), _images(12)
    spec = get_spec("se_resnet20_cifar")
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, model, CheckpointMeta(arch="se_resnet20_cifar", num_classes=10, mean=MEAN, std=STD,
                                                input_size=(32, 32), se_config=None if spec.default_se is None else
                                                json.loads(spec.default_se.to_json())))
    a, path, fresh = G.cached_sample(ckpt, model, data, MEAN, STD, role="se")
    assert fresh and path.parent == tmp_path / "cache" and path.name.startswith("gates-")
    b, path2, fresh2 = G.cached_sample(ckpt, model, data, MEAN, STD, should_stop=lambda: True)  # would cancel
    assert not fresh2 and path2 == path and b.meta["provenance"]["role"] == "se"
    for name in a.s:
        np.testing.assert_array_equal(a.s[name], b.s[name])
    bad = tmp_path / "bad.npz"
    for content in (b"", b"not a zip", path.read_bytes()[:200]):
        bad.write_bytes(content)
        with pytest.raises(StatsError, match="bad.npz"):
            G.load_sample(bad)
    np.savez(bad, labels=np.zeros(3, dtype=np.int64))
    with pytest.raises(StatsError, match="header"):
        G.load_sample(bad)
    broken = G.GateSample(a.classes, a.index, a.labels, a.gate_sites, a.z_sites,
                          {k: v[:, :3] for k, v in a.s.items()}, a.z)
    G.save_sample(bad, broken)
    with pytest.raises(StatsError, match="s_0"):
        G.load_sample(bad)


# --------------------------------------------------------------------------- the analyses on known structure


def test_pca_finds_the_classes_and_equals_the_covariance_eigenvectors():
    x, labels = _clusters()
    p = G.pca(x, labels, 3)
    cov = np.cov(x.T, bias=True)
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1][:2]
    np.testing.assert_allclose(p.explained, w[order] / w.sum(), rtol=1e-9)
    for d in range(2):
        direct = (x - x.mean(0)) @ v[:, order[d]]
        np.testing.assert_allclose(np.abs(np.corrcoef(direct, p.coords[:, d])[0, 1]), 1.0, atol=1e-9)
        assert p.components[d, np.abs(p.components[d]).argmax()] > 0  # the sign convention
    assert p.explained.sum() > 0.95  # three points in space span a plane
    # each image is nearer its own class's centroid than any other
    dist = np.linalg.norm(p.coords[:, None, :] - p.centroids[None], axis=-1)
    assert (dist.argmin(1) == labels).all()
    np.testing.assert_allclose(p.centroids[1], p.coords[labels == 1].mean(0))
    flat = G.pca(np.full((10, 4), 0.5), np.zeros(10, dtype=int), 2)
    assert (flat.explained == 0).all() and (flat.coords == 0).all() and np.isnan(flat.centroids[1]).all()


def _boosted(n_per: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Class i (of 3) raises channels 2i and 2i+1 by 0.5; channel 6 is the same for everyone."""
    labels = np.repeat(np.arange(3), n_per)
    x = np.full((len(labels), 7), 0.3) + np.random.default_rng(1).normal(0, 0.01, (len(labels), 7))
    x[:, 6] = 0.3
    for i in range(3):
        x[labels == i, 2 * i:2 * i + 2] += 0.5
    return x, labels


def test_top_channels_jaccard_shared_and_unique_equal_direct_sets():
    x, labels = _boosted()
    top = G.top_channels(x, labels, ("a", "b", "c"), k=3)
    assert top.sets() == [frozenset({0, 1, 6}), frozenset({2, 3, 6}), frozenset({4, 5, 6})]
    mean = x.mean(0)
    for i in range(3):  # the score is the class mean minus the all-class mean
        np.testing.assert_allclose(top.score[i], x[labels == i].mean(0) - mean)
    sets = top.sets()
    direct = np.array([[len(a & b) / len(a | b) for b in sets] for a in sets])
    np.testing.assert_allclose(top.jaccard(), direct)
    assert top.jaccard()[0, 1] == pytest.approx(1 / 5) and (np.diag(top.jaccard()) == 1).all()
    assert top.shared() == [6] and top.unique() == {"a": [0, 1], "b": [2, 3], "c": [4, 5]}
    # standardized scores (squeeze z) do not depend on a channel's scale
    scaled = x * np.array([100, 1, 1, 1, 1, 1, 1])
    assert G.top_channels(scaled, labels, ("a", "b", "c"), 2, standardize=True).sets() == \
        G.top_channels(x, labels, ("a", "b", "c"), 2, standardize=True).sets()
    with pytest.raises(ValueError, match="between 1 and"):
        G.top_channels(x, labels, ("a", "b", "c"), 8)
    missing = G.top_channels(x[labels < 2], labels[labels < 2], ("a", "b", "c"), 2)
    assert missing.sets()[2] == frozenset() and np.isnan(missing.jaccard()[2, 2])


def test_variance_split_adds_up_and_equals_direct_computation():
    x, labels = _clusters(noise=0.05)
    v = G.variance_split(x, labels, 3)
    assert v["static"] + v["between_class"] + v["within_class"] == pytest.approx(v["total"], rel=1e-12)
    assert v["total"] == pytest.approx(x.var(), rel=1e-12)  # the variance of every value in the block
    means = np.stack([x[labels == k].mean(0) for k in range(3)])
    counts = np.bincount(labels)
    between = (counts[:, None] * (means - x.mean(0)) ** 2).sum(0) / len(x)
    within = np.mean([((x[labels == k] - means[k]) ** 2).sum(0) for k in range(3)], axis=0) * 3 / len(x)
    assert v["between_class"] == pytest.approx(between.mean(), rel=1e-9)
    assert v["within_class"] == pytest.approx(within.mean(), rel=1e-9)
    assert v["static"] == pytest.approx(x.mean(0).var(), rel=1e-12)
    eta = class_selectivity(torch.from_numpy(x), torch.from_numpy(labels), 3).numpy()
    assert v["selectivity"] == pytest.approx(eta.mean(), rel=1e-9)  # the same eta^2 as the Class-wise page


def test_constant_gate_reads_input_independent_and_class_structure_reads_class_specific():
    profile = np.linspace(0.1, 0.9, 12)
    labels = np.arange(30) % 3
    const = G.dependence_frame(_synthetic(np.tile(profile, (30, 1)), labels, 3)).iloc[0]
    assert const["static_share"] == pytest.approx(1.0) and const["input_share"] == 0.0
    assert const["image_std"] == 0.0 and const["frozen"] and const["spread_median"] == 0.0
    x, labels = _clusters(noise=0.002)
    row = G.dependence_frame(_synthetic(x, labels, 3)).iloc[0]
    assert row["between_share"] > 10 * row["within_share"] and row["selectivity"] > 0.9 and not row["frozen"]
    assert row[["static_share", "between_share", "within_share"]].sum() == pytest.approx(1.0, abs=1e-6)
    # image-specific: noise only, no class structure, far above the still threshold
    rng = np.random.default_rng(2)
    noisy = G.dependence_frame(_synthetic(0.5 + rng.normal(0, 0.1, (300, 12)), np.arange(300) % 3, 3)).iloc[0]
    assert noisy["within_share"] > 0.9 and noisy["selectivity"] < 0.05
    # spread: each image's RMS distance from the mean vector
    s = G.image_spread(x)
    np.testing.assert_allclose(s, np.sqrt(((x - x.mean(0)) ** 2).mean(1)))
    assert np.mean(s**2) == pytest.approx(row["between_class"] + row["within_class"], rel=1e-3)  # float16 storage
    zrow = G.dependence_frame(_synthetic(np.tile(profile, (30, 1)), np.arange(30) % 3, 3, "z"), "z").iloc[0]
    assert not zrow["frozen"]  # the absolute still threshold is for gates only


def test_cli_fills_the_page_cache_and_reports_errors(tiny_data_dir, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from se_core.analysis.gates import cli

    monkeypatch.setenv("SE_LENS_STATS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (tmp_path / "folder" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "folder" / c / f"{i}.png")
    assert cli.main(["--data", str(tmp_path / "folder")]) == 0
    out = capsys.readouterr().out
    assert "[se] se_resnet20_cifar on 6 images" in out and "gates s:" in out and "[vanilla]" in out
    assert "s3.b2" in out and "static_share" in out
    assert len(list((tmp_path / "cache").glob("gates-*.npz"))) == 2
    assert cli.main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli.command("p", "d", 50) == "python -m se_core.gates --pair p --data d --subset 50"
    for bad in (["--subset", "-5"], ["--subset", "0"], ["--batch-size", "0"], ["--subset", "x"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["--data", str(tmp_path / "folder"), *bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and ("is not an integer >= 1" in err or "'x' is not an integer" in err), err
