"""Probes: sites found in ours/torchvision/timm nets, z/s correct, thread safety, no hook leaks,
and gate interventions that do exactly what they say."""
from __future__ import annotations

import copy
import threading

import pytest
import timm
import torch
import torchvision.models as tvm
from timm.layers.squeeze_excite import SEModule as TimmSEModule
from timm.models._efficientnet_blocks import SqueezeExcite as TimmEffSE
from timm.models.senet import SEModule as TimmLegacySEModule
from torch import nn
from torchvision.ops.misc import SqueezeExcitation as TVSqueezeExcitation

from se_core.nn.resnet import cifar_resnet
from se_core.nn.se import SEConfig, SqueezeExcite
from se_core.probe.hooks import model_lock
from se_core.probe.sites import Intervention, capture, find_sites, hook_count, intervene, pair_sites, probe

CIFAR_SITES = [f"layer{s}.{b}.se" for s in (1, 2, 3) for b in range(3)]


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=g)
            m.bias.data = torch.randn(c, generator=g) * 0.3
            m.running_mean = torch.randn(c, generator=g) * 0.1
            m.running_var = 0.5 + torch.rand(c, generator=g)


def _se_net(cfg: SEConfig | None = SEConfig(), seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = cifar_resnet(20, cfg).eval()
    _randomize_bn(model, seed)
    return model


def _lock_is_free(model: nn.Module) -> bool:
    """Try the model's lock from another thread (an RLock is re-entrant on this one)."""
    got: list[bool] = []

    def attempt() -> None:
        lock = model_lock(model)
        ok = lock.acquire(timeout=2)
        got.append(ok)
        if ok:
            lock.release()

    t = threading.Thread(target=attempt)
    t.start()
    t.join()
    return got == [True]


def _unit_inputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs of the named modules during one plain forward (own hooks, not the probe's)."""
    seen: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(n).register_forward_pre_hook(
        lambda m, a, n=n: seen.__setitem__(n, a[0].detach().clone())) for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def _manual_gate(unit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """s recomputed from the unit's layers, per implementation; N x C."""
    p = x.mean((2, 3), keepdim=True)
    if isinstance(unit, SqueezeExcite):
        s = unit.scale(x)
    elif isinstance(unit, TVSqueezeExcitation):
        s = unit.scale_activation(unit.fc2(unit.activation(unit.fc1(p))))
    elif isinstance(unit, TimmSEModule):
        assert not unit.add_maxpool
        s = unit.gate(unit.fc2(unit.act(unit.bn(unit.fc1(p)))))
    elif isinstance(unit, TimmLegacySEModule):
        s = unit.sigmoid(unit.fc2(torch.relu(unit.fc1(p))))
    elif isinstance(unit, TimmEffSE):
        s = unit.gate(unit.conv_expand(unit.act1(unit.conv_reduce(p))))
    else:
        raise AssertionError(f"no manual gate for {type(unit)}")
    return s.mean((2, 3))


# --------------------------------------------------------------------------------- find_sites

def test_find_sites_cifar_se_and_vanilla() -> None:
    se_sites, van_sites = find_sites(_se_net()), find_sites(cifar_resnet(20))
    for sites in (se_sites, van_sites):
        assert [s.name for s in sites] == CIFAR_SITES
        assert [(s.stage, s.block) for s in sites] == [(st, b) for st in (1, 2, 3) for b in range(3)]
        assert [s.label for s in sites][:2] == ["s1.b0", "s1.b1"]
    assert [s.channels for s in se_sites] == [16] * 3 + [32] * 3 + [64] * 3
    assert all(s.gate == "scale_activation" and s.kind == "se_core.SqueezeExcite" for s in se_sites)
    assert all(s.gate is None and s.kind == "identity" and s.channels is None for s in van_sites)
    assert pair_sites(se_sites, van_sites) == {n: n for n in CIFAR_SITES}
    # SE only in stage 3: still 9 sites, 3 with gates
    part = find_sites(cifar_resnet(20, SEConfig(stages=(3,))))
    assert len(part) == 9 and [s.name for s in part if s.gate] == CIFAR_SITES[6:]


EXTERNAL = {
    "tv_mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(weights=None), 9, TVSqueezeExcitation),
    "tv_efficientnet_b0": (lambda: tvm.efficientnet_b0(weights=None), 16, TVSqueezeExcitation),
    "tv_regnet_y_400mf": (lambda: tvm.regnet_y_400mf(weights=None), 16, TVSqueezeExcitation),
    "timm_seresnet50": (lambda: timm.create_model("seresnet50", pretrained=False), 16, TimmSEModule),
    "timm_legacy_seresnet18": (lambda: timm.create_model("legacy_seresnet18", pretrained=False), 8, TimmLegacySEModule),
    "timm_efficientnet_b0": (lambda: timm.create_model("efficientnet_b0", pretrained=False), 16, TimmEffSE),
}


@pytest.mark.parametrize("name", sorted(EXTERNAL))
def test_external_models(name: str) -> None:
    build, n_sites, unit_type = EXTERNAL[name]
    torch.manual_seed(0)
    model = build().eval()
    sites = find_sites(model)
    assert len(sites) == n_sites
    assert all(isinstance(model.get_submodule(s.name), unit_type) and s.gate for s in sites)
    # positions are distinct (vanilla/SE pairing and heatmap rows rely on it)
    assert len({(s.stage, s.block) for s in sites}) == n_sites
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
    inputs = _unit_inputs(model, [s.name for s in sites], x)
    res = probe(model, x)
    assert hook_count(model) == 0
    assert torch.equal(res.logits, plain)  # probing does not change the forward
    for s in sites:
        unit, inp = model.get_submodule(s.name), inputs[s.name]
        c = inp.shape[1]
        assert s.channels == c
        assert res.z[s.name].shape == (2, c) and res.s[s.name].shape == (2, c)
        assert torch.equal(res.z[s.name], inp.mean((2, 3)))
        with torch.no_grad():
            torch.testing.assert_close(res.s[s.name], _manual_gate(unit, inp), rtol=1e-5, atol=1e-6)


def test_stage_block_parsing_of_external_names() -> None:
    reg = find_sites(tvm.regnet_y_400mf(weights=None))
    assert (reg[1].name, reg[1].stage, reg[1].block) == ("trunk_output.block2.block2-0.f.se", 2, 0)
    assert (reg[2].stage, reg[2].block) == (2, 1)
    eff = find_sites(timm.create_model("efficientnet_b0", pretrained=False))
    assert (eff[0].name, eff[0].stage, eff[0].block) == ("blocks.0.0.se", 1, 0)  # timm is 0-based
    leg = find_sites(timm.create_model("legacy_seresnet18", pretrained=False))
    assert [(s.stage, s.block) for s in leg] == [(st, b) for st in (1, 2, 3, 4) for b in (0, 1)]


def test_model_without_se() -> None:
    model = timm.create_model("resnet18", pretrained=False).eval()
    assert find_sites(model) == []
    res = probe(model, torch.randn(1, 3, 64, 64))
    assert res.z == {} and res.s == {} and res.logits.shape == (1, 1000)


def test_vanilla_sites_record_z_only() -> None:
    model = _se_net(None)
    x = torch.randn(2, 3, 32, 32)
    inputs = _unit_inputs(model, CIFAR_SITES, x)
    res = probe(model, x)
    assert res.s == {}
    for n in CIFAR_SITES:
        assert torch.equal(res.z[n], inputs[n].mean((2, 3)))


def test_no_squeeze_probe_reports_spatial_mean_of_gates() -> None:
    model = _se_net(SEConfig(squeeze="none"))
    x = torch.randn(2, 3, 32, 32)
    inputs = _unit_inputs(model, CIFAR_SITES, x)
    res = probe(model, x)
    for n in CIFAR_SITES:
        gates = model.get_submodule(n).scale(inputs[n])
        assert gates.dim() == 4 and gates.shape[2:] == inputs[n].shape[2:]
        torch.testing.assert_close(res.s[n], gates.mean((2, 3)).detach())


# -------------------------------------------------------------------------------- concurrency

def test_concurrent_probes_on_one_shared_model() -> None:
    model = _se_net()
    n_probe, n_interv, n_plain, repeats = 10, 2, 2, 4
    gens = [torch.Generator().manual_seed(100 + i) for i in range(n_probe)]
    xs = [torch.randn(2 + i % 3, 3, 32, 32, generator=g) for i, g in enumerate(gens)]
    ref = [probe(model, x) for x in xs]
    off = [Intervention(n, "off") for n in CIFAR_SITES]
    with torch.no_grad():
        plain_ref = [model(x) for x in xs]
    ref_off = [intervene(model, x, off) for x in xs]
    assert not torch.equal(ref_off[0], plain_ref[0])
    for i in range(1, n_probe):
        assert not torch.equal(ref[i].s[CIFAR_SITES[0]][:1], ref[0].s[CIFAR_SITES[0]][:1])

    errors: list[str] = []
    barrier = threading.Barrier(n_probe + n_interv + n_plain)

    def prober(i: int) -> None:
        barrier.wait()
        for _ in range(repeats):
            r = probe(model, xs[i])
            if not torch.equal(r.logits, ref[i].logits):
                errors.append(f"probe {i}: logits differ")
            for n in CIFAR_SITES:
                if not (torch.equal(r.z[n], ref[i].z[n]) and torch.equal(r.s[n], ref[i].s[n])):
                    errors.append(f"probe {i}: z/s of {n} differ")

    def intervener(i: int) -> None:
        barrier.wait()
        for _ in range(repeats):
            if not torch.equal(intervene(model, xs[i], off), ref_off[i]):
                errors.append(f"intervene {i}: logits differ")

    def plain(i: int) -> None:  # a forward outside any probe must see neither hooks nor interventions
        barrier.wait()
        for _ in range(3 * repeats):
            with torch.no_grad():
                if not torch.equal(model(xs[i]), plain_ref[i]):
                    errors.append(f"plain {i}: logits differ")

    threads = [threading.Thread(target=prober, args=(i,)) for i in range(n_probe)]
    threads += [threading.Thread(target=intervener, args=(i,)) for i in range(n_interv)]
    threads += [threading.Thread(target=plain, args=(i,)) for i in range(n_plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert hook_count(model) == 0 and _lock_is_free(model)


# ------------------------------------------------------------------------ cleanup on error

def test_no_hook_left_after_exception_in_forward() -> None:
    model = _se_net()
    with pytest.raises(RuntimeError):
        probe(model, torch.randn(2, 5, 32, 32))  # wrong channel count
    assert hook_count(model) == 0 and _lock_is_free(model)
    # an error raised inside a hook, mid-forward, after earlier sites were recorded
    with pytest.raises(ValueError, match=r"layer2\.1\.se"):
        probe(model, torch.randn(2, 3, 32, 32), interventions=[Intervention("layer2.1.se", "vector", torch.ones(7))])
    assert hook_count(model) == 0 and _lock_is_free(model)
    with pytest.raises(KeyError):
        with capture(model):
            model(torch.randn(1, 3, 32, 32))
            raise KeyError("caller error")
    assert hook_count(model) == 0 and _lock_is_free(model)
    # and the model still works normally afterwards
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(probe(model, x).logits, model(x))


# ---------------------------------------------------------------------------- interventions

class _Fixed(nn.Module):
    """x * g with a fixed per-channel (or scalar) gate g, or x * s(x) * k."""

    def __init__(self, g: torch.Tensor | None = None, unit: nn.Module | None = None, k: float = 1.0) -> None:
        super().__init__()
        self.g, self.unit, self.k = g, unit, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unit is not None:
            return x * (self.unit.scale(x) * self.k)
        return x * self.g


def _with_se(model: nn.Module, replace: dict[str, nn.Module]) -> nn.Module:
    m = copy.deepcopy(model)
    for name, new in replace.items():
        parent, child = name.rsplit(".", 1)
        setattr(m.get_submodule(parent), child, new)
    return m


@torch.no_grad()
def test_intervention_off_equals_se_removed() -> None:
    model = _se_net()
    x = torch.randn(3, 3, 32, 32)
    out = intervene(model, x, [Intervention(n, "off") for n in CIFAR_SITES])
    no_se = _with_se(model, {n: nn.Identity() for n in CIFAR_SITES})
    assert torch.equal(out, no_se(x))
    assert not torch.allclose(out, model(x))
    assert hook_count(model) == 0


@torch.no_grad()
def test_intervention_constant_vector_scale() -> None:
    model = _se_net()
    x = torch.randn(3, 3, 32, 32)
    site = "layer2.1.se"
    c = 32
    const = intervene(model, x, [Intervention(site, "constant", 0.3)])
    assert torch.equal(const, _with_se(model, {site: _Fixed(torch.full((1, c, 1, 1), 0.3))})(x))
    v = torch.linspace(0, 2, c)
    vec = intervene(model, x, [Intervention(site, "vector", v)])
    assert torch.equal(vec, _with_se(model, {site: _Fixed(v.view(1, c, 1, 1))})(x))
    sc = intervene(model, x, [Intervention(site, "scale", 0.5)])
    assert torch.equal(sc, _with_se(model, {site: _Fixed(unit=model.get_submodule(site), k=0.5)})(x))
    assert hook_count(model) == 0
    # the probe reports the replaced gates, and sites upstream are untouched
    res, base = probe(model, x, interventions=[Intervention(site, "constant", 0.3)]), probe(model, x)
    assert torch.equal(res.s[site], torch.full((3, c), 0.3))
    for n in CIFAR_SITES[:4]:
        assert torch.equal(res.s[n], base.s[n]) and torch.equal(res.z[n], base.z[n])
    assert not torch.equal(res.z["layer2.2.se"], base.z["layer2.2.se"])
    assert torch.equal(res.logits, const)


@torch.no_grad()
def test_vector_intervention_on_no_squeeze_gates() -> None:
    model = _se_net(SEConfig(squeeze="none"))
    x = torch.randn(2, 3, 32, 32)
    v = torch.linspace(0.5, 1.5, 16)
    out = intervene(model, x, [Intervention("layer1.0.se", "vector", v)])
    assert torch.equal(out, _with_se(model, {"layer1.0.se": _Fixed(v.view(1, 16, 1, 1))})(x))


def test_bad_interventions() -> None:
    model = _se_net()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"layer3\.0\.se.*5 values.*64 channels"):
        intervene(model, x, [Intervention("layer3.0.se", "vector", torch.ones(5))])
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="no SE gate"):
        intervene(model, x, [Intervention("layer9.0.se", "off")])
    with pytest.raises(ValueError, match="no SE gate"):
        intervene(model, x, [Intervention("layer1.0.se.fc1", "off")])
    with pytest.raises(ValueError, match="no SE gate"):  # a vanilla net has no gates to set
        intervene(cifar_resnet(20).eval(), x, [Intervention("layer1.0.se", "off")])
    with pytest.raises(ValueError, match="unknown intervention mode"):
        intervene(model, x, [Intervention("layer1.0.se", "zero")])  # type: ignore[arg-type]
    assert hook_count(model) == 0 and _lock_is_free(model)
