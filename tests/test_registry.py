"""Model registry, measured cost, checkpoint rebuilding and the default pair's loading."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import se_core.models.pairs as pairs
from se_core.models import costs, registry
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import CheckpointError, save_checkpoint
from se_core.models.costs import measure_cost
from se_core.models.registry import ModelSpec, get_spec, list_models, register
from se_core.nn.resnet import cifar_resnet
from se_core.nn.se import SEConfig, se_param_count
from se_core.probe.sites import find_sites


def test_duplicate_registration_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep the real one clean
    with pytest.raises(ValueError, match="already registered"):
        register(get_spec("resnet20_cifar"))
    spec = ModelSpec(name="tiny_test_net", builder=lambda num_classes=10: torch.nn.Linear(4, num_classes),
                     family="test", num_classes=10, class_names=(), input_size=(2, 2), mean=(0, 0, 0),
                     std=(1, 1, 1), has_se=False)
    register(spec)
    assert get_spec("tiny_test_net") is spec and list_models("tiny_*") == ["tiny_test_net"]
    with pytest.raises(ValueError, match="already registered"):
        register(spec)
    with pytest.raises(ValueError, match="fixes its own SE design"):
        spec.build(SEConfig())
    assert get_spec("tiny_test_net") is spec


def test_list_and_get() -> None:
    assert list_models("*resnet20*") == ["resnet20_cifar", "se_resnet20_cifar"]
    assert list_models("se_*") == sorted(n for n in list_models() if n.startswith("se_"))
    assert list_models("nothing*") == []
    with pytest.raises(KeyError, match="unknown model 'resnet21'.*resnet20_cifar"):
        get_spec("resnet21")
    spec = get_spec("se_resnet20_cifar")
    assert spec.has_se and spec.takes_se and spec.default_se == SEConfig() and spec.input_size == (32, 32)
    assert len(spec.class_names) == 10 and not get_spec("resnet20_cifar").has_se


def test_measure_cost_counts_parameters_and_restores_mode() -> None:
    model = cifar_resnet(20, SEConfig()).train()
    cost = measure_cost(model, (32, 32))
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert model.training
    # He et al.: ResNet-20 has 0.27M parameters and ~41M multiply-adds
    van = measure_cost(cifar_resnet(20), (32, 32))
    assert round(van.params / 1e6, 2) == 0.27
    assert 0.040 < van.gmacs < 0.042
    assert cost.flops > van.flops


@pytest.mark.parametrize("cfg", [SEConfig(), SEConfig(reduction=4), SEConfig(reduction=32, stages=(1, 3)),
                                 SEConfig(integration="pre"), SEConfig(site="3x3"), SEConfig(gate="tanh")])
def test_se_adds_exactly_its_units(cfg: SEConfig) -> None:
    van = measure_cost(cifar_resnet(20), (32, 32)).params
    model = cifar_resnet(20, cfg)
    blocks = [b for i in (1, 2, 3) for b in getattr(model, f"layer{i}")]
    expected = sum(se_param_count(b.se_channels, cfg) for b in blocks if not isinstance(b.se, torch.nn.Identity))
    assert expected > 0
    assert measure_cost(model, (32, 32)).params - van == expected
    # registry build honours the config
    assert sum(p.numel() for p in get_spec("se_resnet20_cifar").build(cfg).parameters()) == van + expected


def test_spec_cost_cached_and_consistent() -> None:
    a = costs.spec_cost("se_resnet20_cifar")
    assert a is costs.spec_cost("se_resnet20_cifar")
    b = costs.spec_cost("resnet20_cifar", SEConfig(reduction=8).to_json())
    assert b.params == measure_cost(cifar_resnet(20, SEConfig(reduction=8)), (32, 32)).params


def test_build_from_checkpoint_without_metadata_needs_arch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = cifar_resnet(20, SEConfig(reduction=8)).eval()
    p = tmp_path / "plain.pt"
    torch.save(model.state_dict(), p)
    with pytest.raises(CheckpointError, match="no SE Lens metadata.*architecture"):
        build_from_checkpoint(p)
    with pytest.raises(CheckpointError, match="does not fit"):  # default SE r=16 has other shapes
        build_from_checkpoint(p, arch="se_resnet20_cifar")
    rebuilt, meta = build_from_checkpoint(p, arch="se_resnet20_cifar", se=SEConfig(reduction=8))
    assert meta.se_config["reduction"] == 8 and meta.arch == "se_resnet20_cifar"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_load_pair_without_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_LENS_DATA_DIR", str(tmp_path))
    with pytest.raises(pairs.WeightsMissing) as ei:
        pairs.load_pair()
    msg = str(ei.value)
    assert str(tmp_path / "checkpoints" / "se_resnet20-s0.safetensors") in msg
    assert "python -m se_core.train --arch se_resnet20_cifar" in msg
    assert isinstance(ei.value, FileNotFoundError)
    with pytest.raises(KeyError, match="unknown pair"):
        pairs.load_pair("imagenet-nope")


def test_load_pair_from_tiny_data_dir(tiny_data_dir: Path) -> None:
    pair = pairs.load_pair(device=torch.device("cpu"))
    assert pair.spec.name == pairs.DEFAULT_PAIR
    assert pair.se.source == str(tiny_data_dir / "checkpoints" / "se_resnet20-s0.safetensors")
    assert pair.se.class_names[0] == "airplane" and pair.vanilla.meta.arch == "resnet20_cifar"
    assert not pair.se.model.training and not pair.vanilla.model.training
    assert len([s for s in find_sites(pair.se.model) if s.gate]) == 9
    assert all(s.gate is None for s in find_sites(pair.vanilla.model))
    with torch.no_grad():
        assert pair.se.model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_load_pair_wrong_arch(tiny_data_dir: Path) -> None:
    # vanilla weights where the SE model should be: named, not silently loaded
    ck = tiny_data_dir / "checkpoints"
    (ck / "se_resnet20-s0.safetensors").write_bytes((ck / "resnet20-s0.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="holds a resnet20_cifar, expected se_resnet20_cifar"):
        pairs.load_pair()


def test_checkpoint_of_unregistered_arch(tmp_path: Path) -> None:
    from se_core.models.checkpoints import CheckpointMeta

    p = tmp_path / "x.safetensors"
    save_checkpoint(p, cifar_resnet(20), CheckpointMeta(arch="resnet21_cifar"))
    with pytest.raises(CheckpointError, match="unknown model 'resnet21_cifar'"):
        build_from_checkpoint(p)
