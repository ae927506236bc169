"""The SE unit's maths and every placement of paper Fig. 5 / Table 15, checked functionally."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv_resnet

from se_core.nn.resnet import BasicBlock, SEBottleneck, cifar_resnet, resnet50
from se_core.nn.se import SEConfig, SqueezeExcite, create_se, se_param_count
from se_core.probe.sites import find_sites, probe


def _randomize_bn(module: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial affine/running stats so 'before BN' and 'after BN' differ."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=g)
            m.bias.data = torch.randn(c, generator=g) * 0.3
            m.running_mean = torch.randn(c, generator=g) * 0.2
            m.running_var = 0.5 + torch.rand(c, generator=g)


class Recorder(nn.Module):
    """Wraps the SE unit of a block: records what it receives and returns."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        self.inputs.append(x.detach().clone())
        self.outputs.append(y.detach().clone())
        return y


def _manual_gate(se: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """Recompute s from the weights, fc layers as matrix products (independent of the module's forward)."""
    cfg = se.config
    pooled = {"avg": x.mean((2, 3)), "max": x.amax((2, 3))}[cfg.squeeze]
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    h = torch.relu(pooled @ w1.T + b1)
    pre = h @ w2.T + b2
    gate = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[cfg.gate]
    return gate(pre)[:, :, None, None]


# ----------------------------------------------------------------------------------- unit maths

@pytest.mark.parametrize("squeeze", ["avg", "max"])
@pytest.mark.parametrize("gate", ["sigmoid", "tanh", "relu"])
def test_output_is_x_times_gates(squeeze: str, gate: str) -> None:
    torch.manual_seed(0)
    se = SqueezeExcite(32, SEConfig(reduction=4, squeeze=squeeze, gate=gate)).eval()
    x = torch.randn(3, 32, 7, 5)
    s = se.scale(x)
    assert s.shape == (3, 32, 1, 1)
    torch.testing.assert_close(s, _manual_gate(se, x), rtol=1e-5, atol=1e-6)
    assert torch.equal(se(x), x * s.expand_as(x))


def test_max_squeeze_uses_spatial_max() -> None:
    torch.manual_seed(1)
    se = SqueezeExcite(8, SEConfig(reduction=2, squeeze="max"))
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(se.pool(x).flatten(1), x.amax((2, 3)))
    avg = SqueezeExcite(8, SEConfig(reduction=2, squeeze="avg"))
    avg.load_state_dict(se.state_dict())
    assert not torch.allclose(avg.scale(x), se.scale(x))  # the squeeze really differs


def test_no_squeeze_gates_are_per_pixel() -> None:
    torch.manual_seed(2)
    se = SqueezeExcite(12, SEConfig(reduction=4, squeeze="none"))
    x = torch.randn(2, 12, 5, 4)
    s = se.scale(x)
    assert s.shape == (2, 12, 5, 4)
    # fc1/fc2 act as 1x1 convs at every position: recompute pixel by pixel
    pix = x.permute(0, 2, 3, 1).reshape(-1, 12)
    h = torch.relu(pix @ se.fc1.weight.flatten(1).T + se.fc1.bias)
    manual = torch.sigmoid(h @ se.fc2.weight.flatten(1).T + se.fc2.bias).reshape(2, 5, 4, 12).permute(0, 3, 1, 2)
    torch.testing.assert_close(s, manual, rtol=1e-5, atol=1e-6)
    assert torch.equal(se(x), x * s)
    # gates vary over space (a squeezing unit's would not)
    assert s.std(dim=(2, 3)).min() > 0


def test_z_from_probe_is_channel_mean_standalone() -> None:
    torch.manual_seed(3)
    net = nn.Sequential(SqueezeExcite(16, SEConfig(reduction=4))).eval()
    x = torch.randn(4, 16, 9, 9)
    res = probe(net, x)
    assert [s.name for s in res.sites] == ["0"]
    assert torch.equal(res.z["0"], x.mean((2, 3)))
    assert torch.equal(res.s["0"], net[0].scale(x).flatten(1))
    assert torch.equal(res.logits, net(x))


def test_z_from_probe_is_channel_mean_in_cifar_net() -> None:
    torch.manual_seed(4)
    model = cifar_resnet(20, SEConfig()).eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, 32, 32)
    seen: dict[str, torch.Tensor] = {}
    handles = [getattr(model, f"layer{i}")[b].se.register_forward_pre_hook(
        lambda m, a, name=f"layer{i}.{b}.se": seen.__setitem__(name, a[0].detach().clone()))
        for i in (1, 2, 3) for b in range(3)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    res = probe(model, x)
    assert set(res.z) == set(seen) and len(seen) == 9
    for name, inp in seen.items():
        assert torch.equal(res.z[name], inp.mean((2, 3))), name
        unit = model.get_submodule(name)
        assert torch.equal(res.s[name], unit.scale(inp).flatten(1)), name


@pytest.mark.parametrize("channels", [3, 16, 64, 100, 256, 2048])
@pytest.mark.parametrize("r", [1, 2, 4, 16, 32, 128])
def test_parameters_per_unit(channels: int, r: int) -> None:
    cfg = SEConfig(reduction=r)
    h = max(1, channels // r)
    expected = 2 * channels * h + h + channels  # the paper's 2C^2/r plus biases
    se = SqueezeExcite(channels, cfg)
    assert se.fc1.out_channels == h
    assert sum(p.numel() for p in se.parameters()) == expected
    assert se_param_count(channels, cfg) == expected


def test_hidden_width_never_below_one() -> None:
    cfg = SEConfig(reduction=32)
    assert cfg.hidden(16) == 1 and cfg.hidden(31) == 1 and cfg.hidden(64) == 2
    assert SqueezeExcite(16, cfg).fc1.out_channels == 1


@pytest.mark.parametrize("cfg", [SEConfig(), SEConfig(reduction=4), SEConfig(reduction=32), SEConfig(integration="pre"),
                                 SEConfig(integration="identity"), SEConfig(integration="post"), SEConfig(site="3x3"),
                                 SEConfig(stages=(2,)), SEConfig(squeeze="none")])
def test_parameters_added_per_block_cifar(cfg: SEConfig) -> None:
    vanilla = sum(p.numel() for p in cifar_resnet(20).parameters())
    model = cifar_resnet(20, cfg)
    added = sum(p.numel() for p in model.parameters()) - vanilla
    expected = 0
    for i, ch in zip((1, 2, 3), (16, 32, 64)):
        for b in range(3):
            block = getattr(model, f"layer{i}")[b]
            if not cfg.in_stage(i):
                assert isinstance(block.se, nn.Identity)
                continue
            # pre: SE sees the block input (16 channels for the first block of stage 2, ...)
            c = (16 if i == 1 else (ch // 2 if b == 0 else ch)) if cfg.integration == "pre" else ch
            assert block.se.channels == c
            expected += 2 * c * cfg.hidden(c) + cfg.hidden(c) + c
    assert added == expected


# ------------------------------------------------------------------------------ configuration

@pytest.mark.parametrize("kw", [
    {"reduction": 0}, {"reduction": -4}, {"reduction": 1.5}, {"reduction": True}, {"reduction": "16"},
    {"gate": "softmax"}, {"gate": "Sigmoid"}, {"squeeze": "min"}, {"squeeze": None},
    {"integration": "middle"}, {"site": "1x1"},
    {"site": "3x3", "integration": "pre"}, {"site": "3x3", "integration": "post"},
    {"site": "3x3", "integration": "identity"},
    {"stages": ()}, {"stages": (0,)}, {"stages": (-1, 2)}, {"stages": 2}, {"stages": ("a",)},
])
def test_config_validation(kw: dict) -> None:
    with pytest.raises(ValueError):
        SEConfig(**kw)


def test_config_normalises_and_round_trips() -> None:
    cfg = SEConfig(reduction=8, gate="tanh", stages=[3, 2, 3], integration="identity")
    assert cfg.stages == (2, 3)
    assert SEConfig.from_json(cfg.to_json()) == cfg
    assert SEConfig(site="3x3", integration="standard").site == "3x3"
    with pytest.raises(ValueError, match="unknown SE config field"):
        SEConfig.from_dict({"reduction": 4, "ratio": 2})
    assert isinstance(create_se(None, 8), nn.Identity) and isinstance(create_se("", 8), nn.Identity)
    assert isinstance(create_se("se", 8), SqueezeExcite)
    with pytest.raises(ValueError):
        create_se("cbam", 8)


def test_gate_ranges() -> None:
    torch.manual_seed(5)
    x = torch.randn(64, 32, 4, 4) * 3
    outs = {}
    for gate in ("sigmoid", "tanh", "relu"):
        se = SqueezeExcite(32, SEConfig(reduction=4, gate=gate))
        outs[gate] = s = se.scale(x)
        assert torch.isfinite(s).all()
    assert (outs["sigmoid"] > 0).all() and (outs["sigmoid"] < 1).all()
    assert (outs["tanh"] > -1).all() and (outs["tanh"] < 1).all() and (outs["tanh"] < 0).any()
    assert (outs["relu"] >= 0).all() and (outs["relu"] == 0).any() and (outs["relu"] > 0).any()


def test_stages_put_se_only_where_asked() -> None:
    model = cifar_resnet(20, SEConfig(stages=(2,)))
    kinds = {n: type(m).__name__ for n, m in model.named_modules() if n.endswith(".se")}
    assert len(kinds) == 9
    for n, k in kinds.items():
        assert k == ("SqueezeExcite" if n.startswith("layer2.") else "Identity"), n
    assert [s.name for s in find_sites(model) if s.gate] == [f"layer2.{b}.se" for b in range(3)]
    r50 = resnet50(SEConfig(stages=(1, 4)))
    for i, n in zip(range(1, 5), (3, 4, 6, 3)):
        for b in range(n):
            se = getattr(r50, f"layer{i}")[b].se
            assert isinstance(se, SqueezeExcite if i in (1, 4) else nn.Identity), (i, b)
    with pytest.raises(ValueError, match="stages"):
        cifar_resnet(20, SEConfig(stages=(4,)))  # ResNet-20 has 3 stages
    with pytest.raises(ValueError, match="stages"):
        resnet50(SEConfig(stages=(5,)))


def test_vanilla_and_se_share_names() -> None:
    se_keys = set(cifar_resnet(20, SEConfig()).state_dict())
    van_keys = set(cifar_resnet(20).state_dict())
    assert van_keys < se_keys
    assert all(".se." in k for k in se_keys - van_keys)
    # torchvision ResNet-50 weights load into the SE version unchanged
    tv_keys = set(tv_resnet.resnet50(weights=None).state_dict())
    assert tv_keys == set(resnet50(None).state_dict())
    assert tv_keys < set(resnet50(SEConfig()).state_dict())


# ---------------------------------------------------------------------- integration (Fig. 5)

def _basic(integration: str, site: str = "output", stride: int = 2, cin: int = 16, cout: int = 32) -> BasicBlock:
    torch.manual_seed(6)
    block = BasicBlock(cin, cout, stride, SEConfig(reduction=4, integration=integration, site=site), 1).eval()
    _randomize_bn(block)
    block.se = Recorder(block.se)
    return block


def _bottleneck(integration: str, site: str = "output") -> SEBottleneck:
    torch.manual_seed(7)
    down = nn.Sequential(nn.Conv2d(32, 64, 1, 2, bias=False), nn.BatchNorm2d(64))
    block = SEBottleneck(tv_resnet.Bottleneck(32, 16, stride=2, downsample=down),
                         SEConfig(reduction=4, integration=integration, site=site), 1).eval()
    _randomize_bn(block)
    block.se = Recorder(block.se)
    return block


def _parts(block: nn.Module, x: torch.Tensor):
    """(head, tail, shortcut) computed straight from the block's layers, not its forward."""
    if isinstance(block, BasicBlock):
        head = lambda t: torch.relu(block.bn1(block.conv1(t)))
        tail = lambda t: block.bn2(block.conv2(t))
        sc = block.shortcut(x)
    else:
        head = lambda t: torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(t))))))
        tail = lambda t: block.bn3(block.conv3(t))
        sc = block.downsample(x)
    return head, tail, sc


BLOCKS = {"basic": (_basic, 16), "bottleneck": (_bottleneck, 32)}


@pytest.fixture(params=sorted(BLOCKS))
def block_kind(request):
    return request.param


def _run(block_kind: str, integration: str, site: str = "output"):
    make, cin = BLOCKS[block_kind]
    block = make(integration, site)
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        out = block(x)
        head, tail, sc = _parts(block, x)
    rec: Recorder = block.se
    assert len(rec.inputs) == 1, "the SE unit must run exactly once per forward"
    assert isinstance(rec.inner, SqueezeExcite)
    assert not torch.allclose(rec.outputs[0], rec.inputs[0])  # the unit really recalibrates
    return block, x, out, head, tail, sc, rec.inputs[0], rec.outputs[0]


@torch.no_grad()
def test_standard_integration(block_kind: str) -> None:
    block, x, out, head, tail, sc, se_in, se_out = _run(block_kind, "standard")
    branch = tail(head(x))
    torch.testing.assert_close(se_in, branch)  # input: the branch output (last BN) before the sum
    torch.testing.assert_close(out, torch.relu(se_out + sc))


@torch.no_grad()
def test_pre_integration(block_kind: str) -> None:
    block, x, out, head, tail, sc, se_in, se_out = _run(block_kind, "pre")
    assert torch.equal(se_in, x)  # input: the block input itself
    torch.testing.assert_close(out, torch.relu(tail(head(se_out)) + sc))  # shortcut uses the raw x
    assert not torch.allclose(out, torch.relu(tail(head(se_out)) + _parts(block, se_out)[2]))


@torch.no_grad()
def test_post_integration(block_kind: str) -> None:
    block, x, out, head, tail, sc, se_in, se_out = _run(block_kind, "post")
    torch.testing.assert_close(se_in, torch.relu(tail(head(x)) + sc))  # after the sum and ReLU
    assert torch.equal(out, se_out)  # and the block returns the SE output


@torch.no_grad()
def test_identity_integration(block_kind: str) -> None:
    block, x, out, head, tail, sc, se_in, se_out = _run(block_kind, "identity")
    torch.testing.assert_close(se_in, sc)  # on the shortcut, parallel to the branch
    torch.testing.assert_close(out, torch.relu(tail(head(x)) + se_out))


@torch.no_grad()
def test_site_3x3(block_kind: str) -> None:
    block, x, out, head, tail, sc, se_in, se_out = _run(block_kind, "standard", "3x3")
    torch.testing.assert_close(se_in, head(x))  # after the 3x3 conv + BN + ReLU
    torch.testing.assert_close(out, torch.relu(tail(se_out) + sc))
    if block_kind == "bottleneck":
        assert block.se.inner.channels == block.conv2.out_channels == 16  # bottleneck width, not 4x


def test_integration_variants_give_different_functions() -> None:
    """Same weights, different placement -> different outputs (placement is not a no-op)."""
    torch.manual_seed(8)
    x = torch.randn(2, 32, 8, 8)
    outs = []
    base = SEBottleneck(tv_resnet.Bottleneck(32, 8, downsample=nn.Sequential(nn.Conv2d(32, 32, 1), nn.BatchNorm2d(32))),
                        None, 1).eval()
    for integ in ("standard", "post", "identity"):
        blk = copy.deepcopy(base)
        blk.integration, blk.site = integ, "output"
        torch.manual_seed(9)
        blk.se = SqueezeExcite(32, SEConfig(reduction=4))
        with torch.no_grad():
            outs.append(blk(x))
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(outs[i], outs[j])
    # and with SE replaced by identity, every placement is the plain block
    with torch.no_grad():
        ref = base(x)
    assert torch.equal(ref, F.relu(base.bn3(base.conv3(torch.relu(base.bn2(base.conv2(torch.relu(base.bn1(base.conv1(x))))))))
                                   + base.downsample(x)))
