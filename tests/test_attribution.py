"""se_core.analysis.attribution: Captum maps on random CIFAR ResNet-20s (SE and vanilla), CPU, small settings."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from se_core.analysis.attribution import (
    BASELINES,
    METHODS,
    AttributionConfig,
    attribute,
    compare,
    default_layer,
    make_baseline,
    quality,
)
from se_core.models.registry import get_spec
from se_core.probe.sites import hook_count

FAST = dict(n_steps=8, internal_batch_size=8)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"se": get_spec("se_resnet20_cifar").build().eval(), "vanilla": get_spec("resnet20_cifar").build().eval()}


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("which", ["se", "vanilla"])
def test_each_method_gives_a_finite_input_sized_map(models, x, method, which):
    model = models[which]
    r = attribute(model, x, 3, AttributionConfig(method, **FAST))
    assert r.map.shape == (32, 32) and r.map.dtype == np.float32
    assert np.isfinite(r.map).all() and np.abs(r.map).max() > 0
    assert r.method == method and r.target == 3 and r.seconds >= 0
    assert (r.delta is not None) == (method == "integrated_gradients")
    if method == "layer_gradcam":
        assert r.layer == "layer3" and tuple(r.raw.shape) == (1, 1, 8, 8)
        assert (r.map >= 0).all()  # ReLU, as in Grad-CAM
    else:
        assert tuple(r.raw.shape) == (1, 3, 32, 32)
    assert hook_count(model) == 0


@pytest.mark.parametrize("baseline", BASELINES)
def test_baselines_have_input_shape_and_work_for_occlusion(models, x, baseline):
    b = make_baseline(x, baseline)
    assert b.shape == x.shape and torch.isfinite(b).all()
    r = attribute(models["se"], x, 0, AttributionConfig("occlusion", baseline=baseline))
    assert np.isfinite(r.map).all()


def test_ig_delta_is_small_with_enough_steps(models, x):
    model = models["se"]  # the sigmoid gates make it non-linear along the IG path
    r = attribute(model, x, 5, AttributionConfig("integrated_gradients", n_steps=64, internal_batch_size=64))
    assert r.delta is not None and r.output_gap is not None
    assert abs(r.delta) < 0.01 * abs(r.output_gap) + 1e-5
    # completeness: the channel-summed map adds up to f(x) - f(baseline) - delta
    assert r.map.sum() == pytest.approx(r.output_gap + r.delta, abs=1e-4)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x)))[0, 5].item()
    assert r.output_gap == pytest.approx(gap, abs=1e-5)


def test_saliency_equals_abs_autograd_gradient(models, x):
    model = models["se"]
    r = attribute(model, x, 7, AttributionConfig("saliency"))
    xi = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xi)[0, 7], xi)
    torch.testing.assert_close(r.raw, grad.abs(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r.map, grad.abs().sum(1)[0].numpy(), rtol=1e-5, atol=1e-7)


def test_no_hooks_and_state_restored_after_success_and_errors(models, x):
    model = models["se"]
    model.train()  # flags must come back as they were, parameters keep requires_grad
    try:
        grads = [p.requires_grad for p in model.parameters()]
        for method in METHODS:
            attribute(model, x, 1, AttributionConfig(method, **FAST))
            assert hook_count(model) == 0
        with pytest.raises(ValueError, match="out of range"):
            attribute(model, x, 10, AttributionConfig("layer_gradcam"))
        with pytest.raises(ValueError, match="no module"):
            attribute(model, x, 1, AttributionConfig("layer_gradcam", layer="nope"))
        assert hook_count(model) == 0
        assert all(m.training for m in model.modules())
        assert [p.requires_grad for p in model.parameters()] == grads
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_no_hooks_left_when_the_model_fails_inside_captum(x):
    torch.manual_seed(2)
    model = get_spec("se_resnet20_cifar").build().eval()
    calls = {"n": 0}
    original = model.layer3.forward

    def flaky(inp):
        calls["n"] += 1
        if calls["n"] > 1:  # the first call is the prediction; fail inside Captum's hooked pass
            raise RuntimeError("boom")
        return original(inp)

    model.layer3.forward = flaky
    with pytest.raises(RuntimeError, match="boom"):
        attribute(model, x, 0, AttributionConfig("layer_gradcam"))
    assert calls["n"] == 2 and hook_count(model) == 0


def test_concurrent_threads_match_sequential(models, x):
    model = models["se"]
    jobs = [(m, t) for m in ("integrated_gradients", "layer_gradcam") for t in (0, 4)]
    expected = {j: attribute(model, x, j[1], AttributionConfig(j[0], **FAST)).map for j in jobs}
    got: dict = {}
    errors: list = []

    def run(job):
        try:
            for _ in range(2):
                got.setdefault(job, []).append(attribute(model, x, job[1], AttributionConfig(job[0], **FAST)).map)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for j in jobs:
        for m in got[j]:
            np.testing.assert_allclose(m, expected[j], rtol=1e-5, atol=1e-7)
    assert hook_count(model) == 0


def test_compare_puts_both_maps_on_one_scale(models, x):
    p = compare(models["se"], models["vanilla"], x, 2, AttributionConfig("integrated_gradients", **FAST))
    for n, r, s in ((p.se_norm, p.se, p.se_scale), (p.vanilla_norm, p.vanilla, p.vanilla_scale)):
        assert np.abs(n).max() == pytest.approx(1.0)
        np.testing.assert_allclose(n * s, r.map, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p.diff, p.se_norm - p.vanilla_norm)
    assert p.se.target == p.vanilla.target == 2


@pytest.mark.parametrize("method", METHODS)
def test_quality_is_finite_and_deterministic(models, x, method):
    cfg = AttributionConfig(method, **FAST)
    q = quality(models["vanilla"], x, 3, cfg)
    assert set(q) == {"infidelity", "sensitivity"}
    assert all(np.isfinite(v) and v >= 0 for v in q.values())
    assert quality(models["vanilla"], x, 3, cfg) == q
    assert hook_count(models["vanilla"]) == 0


def test_default_layer_and_config_validation(models):
    from torchvision.models import resnet18

    assert default_layer(models["se"]) == "layer3"
    assert default_layer(resnet18()) == "layer4"
    with pytest.raises(ValueError):
        default_layer(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)))
    for bad in (dict(method="lime"), dict(method="saliency", n_steps=0), dict(method="saliency", baseline="black")):
        with pytest.raises(ValueError):
            AttributionConfig(**bad)
    with pytest.raises(ValueError):
        attribute(models["se"], torch.zeros(2, 3, 32, 32), 0, AttributionConfig("saliency"))


def test_accepts_inference_mode_and_unbatched_inputs(models, x):
    with torch.inference_mode():
        xi = x.clone()
    a = attribute(models["se"], xi, 1, AttributionConfig("saliency")).map
    b = attribute(models["se"], x[0], 1, AttributionConfig("saliency")).map
    np.testing.assert_allclose(a, b)


def test_attribution_runs_on_a_view_so_a_probe_of_the_shared_model_does_not_wait() -> None:
    """#18: an attribution on a shared model holds no lock across its run (it works on a view that shares
    the weights), so a probe of the same model on another thread finishes while Integrated Gradients is
    still running, with the numbers of a probe alone; nothing is left on the model."""
    from se_core.nn.resnet import cifar_resnet
    from se_core.nn.se import SEConfig
    from se_core.probe.hooks import model_lock, model_view
    from se_core.probe.sites import probe

    torch.manual_seed(0)
    model = cifar_resnet(20, SEConfig()).eval()
    view = model_view(model)
    assert all(a is b for a, b in zip(model.parameters(), view.parameters()))
    assert all(a is b for a, b in zip(model.buffers(), view.buffers()))
    view.train()
    assert not any(m.training for m in model.modules()) and hook_count(view) == 0
    x = torch.randn(1, 3, 32, 32)
    alone = probe(model, x)
    cfg = AttributionConfig("integrated_gradients", n_steps=512, internal_batch_size=16)
    t = threading.Thread(target=attribute, args=(model, x, 0, cfg))
    t.start()
    try:
        time.sleep(0.3)
        lock = model_lock(model)
        assert lock.acquire(timeout=1.0)  # free while the attribution runs
        lock.release()
        during = probe(model, x)
        assert t.is_alive(), "the attribution finished too soon to show anything; raise n_steps"
    finally:
        t.join()
    assert torch.equal(during.logits, alone.logits)
    assert all(torch.equal(during.s[k], alone.s[k]) for k in alone.s)
    assert hook_count(model) == 0
