"""Numbers behind the Inspect page (se_core.analysis.inspect), checked against independent computations."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from se_core.analysis import inspect as ops
from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from se_core.data.images import denormalize, to_tensor
from se_core.data.samples import SAMPLES_DIR, decode_named, list_samples, read_sample
from se_core.models.checkpoints import CheckpointMeta
from se_core.models.pairs import DEFAULT_PAIR, PAIRS
from se_core.models.registry import get_spec
from se_core.models.weights import LoadedModel, LoadedPair
from se_core.nn.se import SEConfig
from se_core.probe.sites import Intervention, hook_count, probe
from se_core.probe.sites import intervene as probe_intervene

torch.set_num_threads(1)


def _loaded(arch: str, seed: int) -> LoadedModel:
    torch.manual_seed(seed)
    spec = get_spec(arch)
    model = spec.build().eval()
    # Non-trivial BN statistics, so activations are not all standardised the same way.
    g = torch.Generator().manual_seed(seed + 100)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    se = {"reduction": 16} if spec.has_se else None
    meta = CheckpointMeta(arch=arch, se_config=se, class_names=CIFAR10_CLASSES, mean=CIFAR10_MEAN,
                          std=CIFAR10_STD, input_size=(32, 32))
    return LoadedModel(arch, model, meta, spec.resize, "test")


@pytest.fixture(scope="module")
def pair() -> LoadedPair:
    spec = PAIRS[DEFAULT_PAIR]
    return LoadedPair(spec, _loaded(spec.se_arch, 0), _loaded(spec.vanilla_arch, 1))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (45, 60, 3), dtype=np.uint8))
    grad = Image.fromarray(np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (32, 1))).convert("RGB")
    out = [noise, grad]
    if list_samples():
        out.append(Image.open(io.BytesIO(read_sample(list_samples()[0]))).convert("RGB"))
    return out


@pytest.fixture(scope="module")
def result(pair: LoadedPair, images: list[Image.Image]) -> ops.InspectResult:
    return ops.inspect(pair, images, [f"img{i}" for i in range(len(images))])


def _batch(lm: LoadedModel, images: list[Image.Image]) -> torch.Tensor:
    pre = ops.preprocess_for(lm)
    return torch.cat([to_tensor(im, pre) for im in images])


def test_preprocess_comes_from_meta(pair: LoadedPair, result: ops.InspectResult, images) -> None:
    pre = ops.preprocess_for(pair.se)
    assert pre.size == (32, 32) and pre.mean == CIFAR10_MEAN and pre.std == CIFAR10_STD and pre.resize is None
    for i, im in enumerate(images):
        np.testing.assert_array_equal(result.se.seen[i], denormalize(to_tensor(im, pre), pre))
        assert result.se.seen[i].shape == (32, 32, 3)


def test_heatmap_values_equal_direct_probe(pair: LoadedPair, result: ops.InspectResult, images) -> None:
    direct = probe(pair.se.model, _batch(pair.se, images))
    assert [s.name for s in result.se.gate_sites] == [s.name for s in direct.sites if s.gate]
    for i in range(len(images)):
        labels, mat = result.se.gate_matrix(i)
        assert labels == [s.label for s in direct.sites if s.gate]
        assert mat.shape == (len(labels), max(direct.s[s.name].shape[1] for s in result.se.gate_sites))
        for r, site in enumerate(result.se.gate_sites):
            s = direct.s[site.name][i].numpy()
            np.testing.assert_allclose(mat[r, : len(s)], s, rtol=0, atol=1e-6)
            assert np.isnan(mat[r, len(s):]).all()  # padding for narrower blocks
    np.testing.assert_allclose(result.se.probs, torch.softmax(direct.logits, 1).numpy(), atol=1e-6)


def test_z_equals_spatial_means_of_unit_input(pair: LoadedPair, result: ops.InspectResult, images) -> None:
    for mp, lm in ((result.se, pair.se), (result.vanilla, pair.vanilla)):
        seen: dict[str, torch.Tensor] = {}
        mods = dict(lm.model.named_modules())
        handles = [mods[s.name].register_forward_pre_hook(
            lambda m, a, name=s.name, seen=seen: seen.__setitem__(name, a[0].mean(dim=(2, 3)))) for s in mp.sites]
        try:
            with torch.no_grad():
                lm.model(_batch(lm, images))
        finally:
            for h in handles:
                h.remove()
        assert len(mp.sites) == 9  # ResNet-20: 3 stages x 3 blocks, in both models
        for s in mp.sites:
            np.testing.assert_allclose(mp.z[s.name], seen[s.name].numpy(), atol=1e-6)
    assert not result.vanilla.s  # a vanilla net has no gates
    assert set(result.site_map) == {s.name for s in result.se.sites}


def test_energy_after_is_energy_before_times_s_squared(result: ops.InspectResult, pair: LoadedPair) -> None:
    cfg = SEConfig.from_dict(pair.se.meta.se_config)
    assert cfg.squeeze == "avg" and cfg.integration == "standard"
    for site in result.se.gate_sites:
        eb, ea, s = result.se.energy_before[site.name], result.se.energy_after[site.name], result.se.s[site.name]
        assert (eb > 0).any()
        np.testing.assert_allclose(ea, eb * s**2, rtol=1e-5, atol=1e-7)
    for site in result.vanilla.sites:  # identity: nothing changes
        np.testing.assert_allclose(result.vanilla.energy_after[site.name], result.vanilla.energy_before[site.name])


def test_top5_is_sorted_softmax(result: ops.InspectResult) -> None:
    for mp in (result.se, result.vanilla):
        for i, top in enumerate(mp.top):
            assert len(top.classes) == ops.TOP_K
            assert list(top.probs) == sorted(top.probs, reverse=True)
            assert top.probs[0] == pytest.approx(float(mp.probs[i].max()))
            assert top.classes[0] == CIFAR10_CLASSES[int(mp.probs[i].argmax())]
        np.testing.assert_allclose(mp.probs.sum(1), 1.0, atol=1e-5)


def test_intervention_without_sites_equals_original(pair, result, images) -> None:
    plan = ops.switch_off([])
    iv = ops.intervene(pair, images, plan, result.names, result.se)
    np.testing.assert_array_equal(iv.changed.probs, iv.original.probs)
    fresh = ops.intervene(pair, images, plan, result.names)  # recomputed, not reused
    np.testing.assert_allclose(fresh.changed.probs, result.se.probs, atol=1e-6)
    assert not fresh.flipped.any() and fresh.table()["changed"].sum() == 0


def test_switch_off_matches_probe_intervene(pair, result, images) -> None:
    off = [s.name for s in result.se.gate_sites][::2]
    iv = ops.intervene(pair, images, ops.switch_off(off), result.names, result.se)
    logits = probe_intervene(pair.se.model, _batch(pair.se, images), [Intervention(s, "off") for s in off])
    np.testing.assert_allclose(iv.changed.probs, torch.softmax(logits, 1).numpy(), atol=1e-6)
    for s in off:  # SE off: gates are 1 and the unit passes its input unchanged
        np.testing.assert_array_equal(iv.changed.s[s], 1.0)
        np.testing.assert_allclose(iv.changed.energy_after[s], iv.changed.energy_before[s], rtol=1e-6)
    assert not np.allclose(iv.changed.probs, iv.original.probs)
    assert list(iv.table().columns)[:5] == ["image", "top-1 before", "p before", "top-1 after", "p after"]


def test_gate_vectors_plug_in(pair, result, images) -> None:
    sites = [s.name for s in result.se.gate_sites]
    ones = ops.gate_vectors({s: np.ones(result.se.s[s].shape[1]) for s in sites}, "all ones")
    off = ops.switch_off(sites)
    a = ops.intervene(pair, images, ones, result.names, result.se)
    b = ops.intervene(pair, images, off, result.names, result.se)
    np.testing.assert_allclose(a.changed.probs, b.changed.probs, atol=1e-6)
    assert all(i.mode == "vector" for i in ones.interventions) and ones.sites == tuple(sites)


def test_hooks_removed_even_on_error(pair, images) -> None:
    site = ops.probe_model(pair.se, images[:1]).gate_sites[0].name
    bad = ops.gate_vectors({site: np.ones(3)}, "wrong width")
    with pytest.raises(ValueError, match="channels"):
        ops.intervene(pair, images[:1], bad)
    assert hook_count(pair.se.model) == 0 and hook_count(pair.vanilla.model) == 0


def test_concurrent_inspects_agree(pair, images, result) -> None:
    outs: list[ops.InspectResult] = []
    threads = [threading.Thread(target=lambda: outs.append(ops.inspect(pair, images, result.names))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 3
    for o in outs:
        for s in result.se.gate_sites:
            np.testing.assert_allclose(o.se.s[s.name], result.se.s[s.name], atol=1e-6)
    assert hook_count(pair.se.model) == 0


def test_csv_frame_is_long_and_complete(result: ops.InspectResult) -> None:
    df = result.to_frame()
    assert tuple(df.columns) == ops.CSV_COLUMNS
    n = len(result.names)
    per_model = n * sum(result.se.z[s.name].shape[1] for s in result.se.sites)
    assert len(df) == 2 * per_model
    assert df.loc[df.model == result.vanilla.name, "s"].isna().all()
    assert df.loc[df.model == result.se.name, "s"].notna().all()
    site = result.se.gate_sites[-1]
    rows = df[(df.model == result.se.name) & (df.site == site.name) & (df.image == "img1")].sort_values("channel")
    np.testing.assert_allclose(rows.z.to_numpy(), result.se.z[site.name][1])
    np.testing.assert_allclose(rows.s.to_numpy(), result.se.s[site.name][1])
    assert set(rows.stage) == {site.stage} and set(rows.block) == {site.block}


def test_padded_matrix_and_display_image() -> None:
    m = ops.padded_matrix([np.array([1.0, 2.0]), np.array([3.0])])
    assert m.shape == (2, 2) and m[1, 0] == 3.0 and np.isnan(m[1, 1])
    small = ops.display_image(np.zeros((32, 32, 3), np.uint8), side=160)
    assert small.size == (160, 160)
    big = ops.display_image(Image.new("RGB", (2000, 1000)), side=160)
    assert big.size == (160, 80)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_decode_named_isolates_bad_files() -> None:
    good = _png(Image.new("RGB", (10, 12), (1, 2, 3)))
    imgs, problems = decode_named([("a.png", good), ("broken.jpg", b"\xff\xd8not a jpeg"), ("empty.png", b""),
                                   ("again.png", good)])
    assert [i.name for i in imgs] == ["a.png"] and imgs[0].image.size == (10, 12)
    assert [p.name for p in problems] == ["broken.jpg", "empty.png"]
    assert all(p.name in p.text() and p.message for p in problems)


def test_shipped_samples_present() -> None:
    names = list_samples()
    assert len(names) == 30 and "cat_0000" in names and "ship_0000" in names
    assert (SAMPLES_DIR / "PROVENANCE.md").is_file()
    img = Image.open(io.BytesIO(read_sample("cat_0000")))
    assert img.size == (32, 32)
    with pytest.raises(FileNotFoundError):
        read_sample("../PROVENANCE")


def test_se_in_some_stages_only(images) -> None:
    from se_core.nn.resnet import cifar_resnet

    torch.manual_seed(0)
    model = cifar_resnet(20, SEConfig(stages=(2,))).eval()
    meta = CheckpointMeta(arch="se_resnet20_cifar", se_config={"stages": [2]}, class_names=CIFAR10_CLASSES,
                          mean=CIFAR10_MEAN, std=CIFAR10_STD)
    mp = ops.probe_model(LoadedModel("se_resnet20_cifar", model, meta), images[:2])
    assert [s.stage for s in mp.gate_sites] == [2, 2, 2]
    assert len(mp.z) == 9 and set(mp.s) == {s.name for s in mp.gate_sites}
    labels, mat = mp.gate_matrix(0)
    assert labels == ["s2.b0", "s2.b1", "s2.b2"] and mat.shape == (3, 32)


def test_imagenet_resnet50_resize_and_crop() -> None:
    spec = get_spec("se_resnet50_tv")
    torch.manual_seed(0)
    model = spec.build().eval()
    meta = CheckpointMeta(arch=spec.name, se_config={"reduction": 16}, num_classes=1000, mean=spec.mean,
                          std=spec.std, input_size=spec.input_size)
    lm = LoadedModel(spec.name, model, meta, spec.resize)
    pre = ops.preprocess_for(lm)
    assert pre.size == (224, 224) and pre.resize == 256
    mp = ops.probe_model(lm, [Image.new("RGB", (300, 200), (120, 30, 200))])
    assert mp.seen.shape == (1, 224, 224, 3) and mp.top[0].classes[0].isdigit()  # no class names: indices
    labels, mat = mp.gate_matrix(0)
    assert len(labels) == 16 and mat.shape == (16, 2048) and np.isnan(mat[0, 256:]).all()
