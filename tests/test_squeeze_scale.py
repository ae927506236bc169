"""The fused squeeze-and-scale backward (se_core.nn.squeeze_scale) against autograd on the plain formulation."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from se_core.nn.resnet import cifar_resnet
from se_core.nn.se import GATES, INTEGRATIONS, SQUEEZES, SEConfig, SqueezeExcite
from se_core.probe.sites import Intervention, capture, hook_count


def _plain(unit: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """The textbook unit through autograd: 1x1 convs on the pooled map, x * s."""
    pooled = {"avg": lambda t: t.mean((2, 3), keepdim=True), "max": lambda t: t.amax((2, 3), keepdim=True),
              "none": lambda t: t}[unit.config.squeeze](x)
    return x * unit.scale_activation(unit.fc2(unit.activation(unit.fc1(pooled))))


def _grads(fn, module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    out = fn(x)
    out.backward(g)
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in module.named_parameters()}


VARIANTS = ([SEConfig(reduction=4, squeeze=q, gate=gt) for q in SQUEEZES for gt in GATES]
            + [SEConfig(reduction=r) for r in (1, 2, 8, 32)])


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.label())
@pytest.mark.parametrize("channels_last", [False, True])
def test_unit_gradients_equal_autograd(cfg: SEConfig, channels_last: bool) -> None:
    torch.manual_seed(0)
    unit = SqueezeExcite(16, cfg)
    x = torch.randn(5, 16, 7, 6, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    unit = unit.double()
    g = torch.randn(5, 16, 7, 6, dtype=torch.float64)
    out_f, gx_f, gp_f = _grads(unit, unit, x, g)
    out_p, gx_p, gp_p = _grads(lambda t: _plain(unit, t), unit, x, g)
    torch.testing.assert_close(out_f, out_p)
    torch.testing.assert_close(gx_f, gx_p)
    for n in gp_p:
        torch.testing.assert_close(gp_f[n], gp_p[n], msg=f"grad of {n}")


def test_fused_path_is_taken_and_gradcheck_passes() -> None:
    torch.manual_seed(0)
    unit = SqueezeExcite(8, SEConfig(reduction=2)).double()
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    assert type(unit(x).grad_fn).__name__ == "SqueezeScaleBackward"
    assert torch.autograd.gradcheck(lambda t, *p: unit(t), (x, *unit.parameters()))


@pytest.mark.parametrize(("integration", "site"), [(i, "output") for i in INTEGRATIONS] + [("standard", "3x3")])
def test_network_gradients_equal_autograd(integration: str, site: str) -> None:
    """Whole SE-ResNet-8 with every placement: fused and plain units give the same gradients."""
    torch.manual_seed(0)
    net = cifar_resnet(8, SEConfig(reduction=4, integration=integration, site=site)).double().train()
    plain = copy.deepcopy(net)
    for m in plain.modules():
        if isinstance(m, SqueezeExcite):
            m.forward = (lambda u: (lambda t: _plain(u, t)))(m)
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    g = torch.randn(6, 10, dtype=torch.float64)
    out_f, gx_f, gp_f = _grads(net, net, x, g)
    out_p, gx_p, gp_p = _grads(plain, plain, x, g)
    torch.testing.assert_close(out_f, out_p)
    torch.testing.assert_close(gx_f, gx_p)
    assert gp_f.keys() == gp_p.keys()
    for n in gp_p:
        torch.testing.assert_close(gp_f[n], gp_p[n], msg=f"grad of {n}")


def test_bf16_autocast_close_to_fp32() -> None:
    """Under bf16 autocast (the trainer's CPU mode) the fused path agrees with the plain one to bf16 precision."""
    torch.manual_seed(0)
    unit = SqueezeExcite(32, SEConfig())
    x = torch.randn(8, 32, 8, 8).to(memory_format=torch.channels_last)
    g = torch.randn(8, 32, 8, 8)
    with torch.autocast("cpu", torch.bfloat16):
        res_f = _grads(unit, unit, x, g)
        res_p = _grads(lambda t: _plain(unit, t), unit, x, g)
    for a, b in zip(res_f[:2], res_p[:2]):
        torch.testing.assert_close(a.float(), b.float(), atol=3e-2, rtol=3e-2)
    for n in res_p[2]:
        torch.testing.assert_close(res_f[2][n], res_p[2][n], atol=3e-2, rtol=5e-2)


def test_intervention_under_grad_changes_gradient_and_leaves_no_hook() -> None:
    """A gate hook (an intervention) switches to the plain path, so gradients follow the replaced gates."""
    torch.manual_seed(0)
    net = cifar_resnet(8, SEConfig(reduction=4)).eval()
    site = "layer1.0.se"
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    with capture(net, None, [Intervention(site, "off")], keep_z=False, keep_s=False):
        off = torch.autograd.grad(net(x).sum(), x)[0]
    assert hook_count(net) == 0
    # the same function written out: that block's SE replaced by the identity
    ref = copy.deepcopy(net)
    ref.layer1[0].se = nn.Identity()
    torch.testing.assert_close(off, torch.autograd.grad(ref(x).sum(), x)[0])
    on = torch.autograd.grad(net(x).sum(), x)[0]
    assert not torch.allclose(on, off)


def test_frozen_se_weights_and_frozen_input() -> None:
    """Fine-tuning with the SE unit's weights frozen (or a frozen input) still trains through the fused path."""
    torch.manual_seed(0)
    unit = SqueezeExcite(8, SEConfig(reduction=2)).double()
    ref = copy.deepcopy(unit)
    unit.fc1.requires_grad_(False)
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    unit(x).square().sum().backward()
    assert unit.fc1.weight.grad is None and unit.fc2.weight.grad is not None
    xr = x.detach().clone().requires_grad_()
    _plain(ref, xr).square().sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(unit.fc2.weight.grad, ref.fc2.weight.grad)
    unit(torch.randn(3, 8, 4, 4, dtype=torch.float64)).sum().backward()  # input without grad: weights only


def test_backward_recompute_does_not_reach_hooks_installed_after_forward() -> None:
    """A probe hook installed (by another session) between forward and backward is not called by the
    backward's recomputation of the gates, and the gradient stays that of the forward that ran."""
    torch.manual_seed(0)
    unit = SqueezeExcite(8, SEConfig(reduction=2)).double()
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    out = unit(x)
    calls = []
    h = unit.scale_activation.register_forward_hook(lambda m, a, o: calls.append(1) or torch.ones_like(o))
    try:
        out.sum().backward()
    finally:
        h.remove()
    assert calls == []
    xr = x.detach().clone().requires_grad_()
    _plain(unit, xr).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.label())
def test_inference_path_equals_the_module_formulation(cfg: SEConfig) -> None:
    torch.manual_seed(0)
    unit = SqueezeExcite(16, cfg).double().eval()
    x = torch.randn(4, 16, 5, 5, dtype=torch.float64).to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(unit(x), _plain(unit, x))


def test_hooks_on_any_child_get_the_module_formulation() -> None:
    """Backward hooks (Captum's DeepLift/GuidedBackprop style), pruning's forward pre-hook on fc1 and
    a layer hook on fc1 all see the unit run through its modules, as before the fused path existed."""
    from torch.nn.utils import prune

    torch.manual_seed(0)
    unit = SqueezeExcite(8, SEConfig(reduction=2)).double()
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    fired = []
    h = unit.scale_activation.register_full_backward_hook(lambda m, gi, go: fired.append("gate"))
    try:
        unit(x).sum().backward()
    finally:
        h.remove()
    assert fired == ["gate"]
    seen = []
    h = unit.fc1.register_forward_hook(lambda m, a, o: seen.append(tuple(o.shape)))
    try:
        unit(x)
    finally:
        h.remove()
    assert seen == [(3, 4, 1, 1)]
    prune.l1_unstructured(unit.fc1, "weight", amount=0.5)  # a forward pre-hook recomputes fc1.weight
    with torch.no_grad():
        torch.testing.assert_close(unit(x), x * torch.sigmoid(unit.fc2(torch.relu(unit.fc1(x.mean((2, 3), keepdim=True))))))
    assert type(unit(x).grad_fn).__name__ == "MulBackward0"


def test_weight_gradients_keep_the_parameters_strides() -> None:
    """channels_last 1x1 weights get gradients in their own strides (DDP's buckets expect them)."""
    torch.manual_seed(0)
    unit = SqueezeExcite(16, SEConfig()).to(memory_format=torch.channels_last)
    x = torch.randn(4, 16, 6, 6, requires_grad=True).to(memory_format=torch.channels_last)
    unit(x).sum().backward()
    for p in unit.parameters():
        assert p.grad.stride() == p.stride()
