"""The user's own checkpoints: storing uploads, loading any architecture safely, pairing, the CLI's ``--arch``.

Good, mismatched, truncated and pickle-payload files; files without metadata (architecture, SE config
and class names supplied); other projects' timm / torchvision SE models loaded by library name; and
user pairs registered, resolved through ``PAIRS``/``load_pair`` and persisted by content hash.
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from se_core.data.constants import CIFAR10_CLASSES
from se_core.models import pairs
from se_core.models import user_models as um
from se_core.models.build import build_from_checkpoint
from se_core.models.checkpoints import CheckpointError, CheckpointMeta, save_checkpoint
from se_core.models.pairs import PAIRS, is_known, load_pair
from se_core.models.registry import get_spec
from se_core.nn.se import SEConfig
from se_core.probe.sites import find_sites, hook_count, probe


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "user"
    monkeypatch.setenv(um.USER_DIR_ENV, str(d))
    monkeypatch.setattr(um, "_RECIPES", {})
    return d


def _plain_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def _with_meta(path: Path, arch: str = "se_resnet20_cifar", se: SEConfig | None = SEConfig()) -> Path:
    torch.manual_seed(0)
    model = get_spec(arch).build(se)
    meta = CheckpointMeta(arch=arch, se_config=None if se is None else json.loads(se.to_json()), num_classes=10,
                          class_names=CIFAR10_CLASSES, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                          provenance={"note": "test"})
    save_checkpoint(path, model, meta)
    return path


class _Payload:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


# --------------------------------------------------------------------------- files


def test_store_is_content_addressed_and_refuses_other_suffixes(user_dir: Path, tmp_path: Path) -> None:
    src = _with_meta(tmp_path / "mine.safetensors")
    a = um.store_bytes("mine.safetensors", src.read_bytes())
    b = um.store_file(src)
    assert a.path == b.path and a.path.parent == user_dir / "files" and a.path.name == f"{a.sha256}.safetensors"
    assert a.name == "mine.safetensors" and a.size == src.stat().st_size
    for bad in ("model.pkl", "model.bin", "model", "evil.py"):
        with pytest.raises(CheckpointError, match="refused"):
            um.store_bytes(bad, b"x")
    with pytest.raises(CheckpointError, match="empty"):
        um.store_bytes("empty.pt", b"")
    for bad in ("../x.safetensors", "abc.safetensors", "0" * 64 + ".pkl"):
        with pytest.raises(CheckpointError):
            um.stored_path(bad)


def test_good_file_with_metadata(user_dir: Path, tmp_path: Path) -> None:
    stored = um.store_file(_with_meta(tmp_path / "mine.safetensors"))
    rep = um.inspect_file(stored)
    assert rep.has_meta and rep.meta.arch == "se_resnet20_cifar" and rep.suggested_se is None
    lm = um.load_user_model(stored.path, require_se=True, device=torch.device("cpu"))
    assert lm.name == "se_resnet20_cifar" and lm.class_names == CIFAR10_CLASSES and lm.meta.mean == (0.5, 0.5, 0.5)
    res = probe(lm.model, torch.randn(2, 3, 32, 32))
    assert len(res.s) == 9 and all(v.shape == (2, get_spec("se_resnet20_cifar").build().layer1[0].se.channels)
                                   for k, v in res.s.items() if k.startswith("layer1"))
    assert hook_count(lm.model) == 0


def test_file_without_metadata_needs_and_takes_arch_se_and_class_names(user_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    se = SEConfig(reduction=8, stages=(2, 3))
    model = get_spec("se_resnet20_cifar").build(se, num_classes=7)
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    stored = um.store_file(path)
    rep = um.inspect_file(stored)
    assert not rep.has_meta and rep.suggested_se == SEConfig(reduction=8, stages=(2, 3))
    with pytest.raises(CheckpointError, match="choose its architecture"):
        um.load_user_model(stored.path)
    # the default SE config (r=16, every stage) does not fit: named key by key
    with pytest.raises(CheckpointError) as e:
        um.load_user_model(stored.path, "se_resnet20_cifar")
    assert "missing layer1.0.se.fc1.weight" in str(e.value) or "shape layer2.0.se.fc1.weight" in str(e.value)
    names = tuple(f"c{i}" for i in range(7))
    lm = um.load_user_model(stored.path, "se_resnet20_cifar", rep.suggested_se, names, require_se=True)
    assert lm.meta.num_classes == 7 and lm.class_names == names  # classifier rows read from the file
    assert SEConfig.from_dict(lm.meta.se_config) == se
    assert len([s for s in find_sites(lm.model) if s.gate]) == 6
    with pytest.raises(CheckpointError, match="3 class names given for a model with 7 outputs"):
        um.load_user_model(stored.path, "se_resnet20_cifar", se, ("a", "b", "c"))
    lm = um.load_user_model(stored.path, "se_resnet20_cifar", se)
    assert lm.class_names == tuple(str(i) for i in range(7))


def test_mismatched_file_names_every_difference(user_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    _with_meta(tmp_path / "r20.safetensors")

    st = load_file(tmp_path / "r20.safetensors")
    st["fc.weight"] = torch.zeros(10, 32)
    del st["layer3.2.bn2.running_var"]
    save_file(st, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError) as e:
        um.load_user_model(um.store_file(tmp_path / "broken.safetensors").path, "se_resnet20_cifar")
    msg = str(e.value)
    assert "missing layer3.2.bn2.running_var" in msg and "shape fc.weight: file (10, 32) vs model (10, 64)" in msg
    with pytest.raises(CheckpointError) as e:  # a ResNet-20 file is not a ResNet-32
        um.load_user_model(_bare(tmp_path), "resnet32_cifar")
    assert "missing layer1.3.conv1.weight" in str(e.value)


def _bare(tmp_path: Path) -> Path:
    torch.manual_seed(2)
    path = tmp_path / "bare20.safetensors"
    save_file(_plain_state(get_spec("resnet20_cifar").build()), path)
    return um.store_file(path).path


def test_truncated_and_pickle_payload_files_are_refused(user_dir: Path, tmp_path: Path) -> None:
    good = _with_meta(tmp_path / "good.safetensors").read_bytes()
    for cut in (4, 100, len(good) // 2, len(good) - 7):
        stored = um.store_bytes("cut.safetensors", good[:cut])
        with pytest.raises(CheckpointError, match="truncated|too short"):
            um.inspect_file(stored)
    sentinel = tmp_path / "SENTINEL"
    payloads = []
    for new_zip in (True, False):
        p = tmp_path / f"evil{int(new_zip)}.pt"
        torch.save({"fc.weight": _Payload(sentinel)}, p, _use_new_zipfile_serialization=new_zip)
        payloads.append(p.read_bytes())
    payloads.append(pickle.dumps(_Payload(sentinel)))
    for data in payloads:
        stored = um.store_bytes("evil.pt", data)
        with pytest.raises(CheckpointError):
            um.inspect_file(stored)
        with pytest.raises(CheckpointError):
            um.load_user_model(stored.path, "resnet20_cifar")
    with pytest.raises(CheckpointError, match="refused"):
        um.store_bytes("evil.pkl", payloads[-1])
    assert not sentinel.exists()


# --------------------------------------------------------------------------- other projects' models


def test_timm_and_torchvision_se_models_load_by_library_name(user_dir: Path, tmp_path: Path) -> None:
    import timm
    import torchvision

    torch.manual_seed(3)
    save_file(_plain_state(timm.create_model("seresnet18", num_classes=5)), tmp_path / "theirs.safetensors")
    lm = um.load_user_model(um.store_file(tmp_path / "theirs.safetensors").path, "timm:seresnet18", require_se=True)
    assert lm.meta.num_classes == 5 and lm.meta.input_size == (224, 224) and lm.resize >= 224
    res = probe(lm.model, torch.randn(1, 3, 64, 64))
    sites = [s for s in find_sites(lm.model) if s.gate]
    assert len(sites) == 8 and [s.label for s in sites][:2] == ["s1.b0", "s1.b1"]
    assert all(res.s[s.name].shape == (1, s.channels) and res.z[s.name].shape == (1, s.channels) for s in sites)

    save_file(_plain_state(torchvision.models.mobilenet_v3_small()), tmp_path / "mv3s.safetensors")
    lm = um.load_user_model(um.store_file(tmp_path / "mv3s.safetensors").path, "torchvision:mobilenet_v3_small",
                            require_se=True)
    assert len(lm.class_names) == 1000 and lm.class_names[0] == "tench"
    sites = [s for s in find_sites(lm.model) if s.gate]
    assert len(sites) == 9 and all(s.stage >= 1 for s in sites)  # labelled by resolution
    res = probe(lm.model, torch.randn(1, 3, 64, 64))
    assert all(res.s[s.name].shape == (1, s.channels) for s in sites)


def test_model_without_recognisable_se_units_is_described(user_dir: Path, tmp_path: Path) -> None:
    import torchvision

    save_file(_plain_state(torchvision.models.mobilenet_v2()), tmp_path / "mv2.safetensors")
    path = um.store_file(tmp_path / "mv2.safetensors").path
    with pytest.raises(CheckpointError) as e:
        um.load_user_model(path, "torchvision:mobilenet_v2", require_se=True, label="mv2.safetensors")
    msg = str(e.value)
    assert "no SE unit found" in msg and "InvertedResidual x17" in msg and "mv2.safetensors" in msg
    lm = um.load_user_model(path, "mobilenet_v2_tv")  # fine as a vanilla model, with its vanilla sites
    assert find_sites(lm.model)[0].name == "features.1.conv.0"


# --------------------------------------------------------------------------- user pairs


def test_user_pair_registered_resolved_loaded_and_persisted(user_dir: Path, tmp_path: Path,
                                                            tiny_data_dir: Path) -> None:
    stored = um.store_file(_with_meta(tmp_path / "mine.safetensors"))
    choices = um.vanilla_choices("se_resnet20_cifar")
    first = choices[0]
    assert first.recipe.source == "weights" and first.recipe.arch == "resnet20_cifar" and first.available
    assert any(c.recipe.source == "random" and c.recipe.arch == "resnet20_cifar" for c in choices)
    recipe = um.UserPairRecipe(um.ModelRecipe("upload", "se_resnet20_cifar", file=stored.path.name, label="mine"),
                               first.recipe)
    name = um.register_user_pair(recipe)
    assert name.startswith("user:") and len(name) == 17 and name == recipe.name
    assert um.register_user_pair(recipe) == name  # same content, same name
    assert is_known(name) and name not in list(PAIRS) and PAIRS[name].se_arch == "se_resnet20_cifar"
    assert "your file mine" in PAIRS[name].note
    pair = load_pair(name, torch.device("cpu"))
    assert pair.se.source == str(stored.path) and pair.vanilla.name == "resnet20_cifar"
    assert Path(pair.vanilla.source) == tiny_data_dir / "checkpoints" / "resnet20-s0.safetensors"
    # survives a restart: a fresh process memory reads the recipe back from disk
    um._RECIPES.clear()
    assert um.user_pair_recipe(name) == recipe and (user_dir / "pairs" / f"{name[5:]}.json").is_file()
    # random counterpart
    rnd = um.register_user_pair(um.UserPairRecipe(recipe.se, um.ModelRecipe("random", "resnet20_cifar", seed=3)))
    p2 = load_pair(rnd, torch.device("cpu"))
    assert "NOT trained" in p2.vanilla.meta.provenance["weights"] and "NOT trained" in PAIRS[rnd].note
    # names are validated before any file is touched
    for bad in ("user:../../etc", "user:ABCDEF123456", "user:0123", "cifar"):
        assert not is_known(bad)
        with pytest.raises(KeyError):
            um.user_pair_recipe(bad)
    # the SE side must have SE units
    van = um.store_file(_with_meta(tmp_path / "van.safetensors", "resnet20_cifar", None))
    bad = um.register_user_pair(um.UserPairRecipe(um.ModelRecipe("upload", "resnet20_cifar", file=van.path.name),
                                                  first.recipe))
    with pytest.raises(CheckpointError, match="no SE unit"):
        load_pair(bad)


def test_user_pair_with_missing_upload_says_so(user_dir: Path, tmp_path: Path) -> None:
    stored = um.store_file(_with_meta(tmp_path / "mine.safetensors"))
    name = um.register_user_pair(um.UserPairRecipe(
        um.ModelRecipe("upload", "se_resnet20_cifar", file=stored.path.name, label="mine.safetensors"),
        um.ModelRecipe("random", "resnet20_cifar")))
    stored.path.unlink()
    with pytest.raises(pairs.WeightsMissing, match="mine.safetensors is no longer"):
        load_pair(name)


# --------------------------------------------------------------------------- CLI


def test_evaluate_cli_takes_arch_for_files_without_metadata(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from se_core.analysis.evaluate import main

    torch.manual_seed(4)
    se = SEConfig(reduction=4)
    path = tmp_path / "bare.safetensors"
    save_file(_plain_state(get_spec("se_resnet20_cifar").build(se)), path)
    rng = np.random.default_rng(0)
    for c in CIFAR10_CLASSES[:3]:
        (tmp_path / "imgs" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / "0.png")
    assert main(["--checkpoint", str(path), "--data", str(tmp_path / "imgs")]) == 2
    assert "--arch" in capsys.readouterr().err
    assert main(["--checkpoint", str(path), "--arch", "se_resnet20_cifar", "--data", str(tmp_path / "imgs")]) == 2
    assert "shape layer1.0.se.fc1.weight: file (4, 16, 1, 1)" in capsys.readouterr().err  # default r=16 does not fit
    rc = main(["--checkpoint", str(path), "--arch", "se_resnet20_cifar", "--se-config", '{"reduction": 4}',
               "--data", str(tmp_path / "imgs"), "--batch-size", "3"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["n"] == 3
    model, meta = build_from_checkpoint(path, "se_resnet20_cifar", se)
    assert meta.arch == "se_resnet20_cifar" and SEConfig.from_dict(meta.se_config) == se


@pytest.mark.parametrize("se", [SEConfig(), SEConfig(min_hidden=8), SEConfig(reduction=32), SEConfig(reduction=4, stages=(3,))],
                         ids=lambda c: c.label())
def test_suggested_se_config_rebuilds_the_shapes(se: SEConfig) -> None:
    """The guess from a bare state dict builds a model with exactly its shapes, hidden-width floor included
    (an 8/8/8 bottleneck is r = 16 with min_hidden 8, not r = 2, 4 or 8 that fit one stage each)."""
    state = get_spec("se_resnet20_cifar").build(se).state_dict()
    guess = um.suggest_se_config(state)
    assert guess == se
    rebuilt = get_spec("se_resnet20_cifar").build(guess).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state.items()}


def test_natural_twin_first_and_pairs_checked_before_they_are_accepted() -> None:
    """#17 (1): counterparts are ordered twin first (same library, SE taken out), another data set's
    networks last; two models with different outputs or label sets are refused, different input noted."""
    from se_core.analysis import inspect as ops
    from se_core.models.pairs import random_model
    from se_core.models.zoo import twin_of

    assert twin_of("timm:seresnet18") == "timm:resnet18" and twin_of("timm:legacy_seresnet50") == "timm:resnet50"
    assert twin_of("timm:mobilenetv3_small_100") == "timm:tf_mobilenetv3_small_minimal_100"
    assert twin_of("torchvision:mobilenet_v3_small") == "torchvision:mobilenet_v2"
    assert twin_of("timm:efficientnet_b0") is None and twin_of("seresnet50_timm") == "resnet50_timm"
    labels = [c.label for c in um.vanilla_choices("timm:seresnet18")]
    assert labels[0] == "timm:resnet18: the library's resnet18.a1_in1k weights (natural twin) (not on disk)"
    assert labels[1] == "timm:resnet18: random initialisation (untrained)"
    cifar = [i for i, lab in enumerate(labels) if "cifar" in lab]
    imagenet = [i for i, lab in enumerate(labels) if "cifar" not in lab]
    assert cifar and min(cifar) > max(imagenet)  # a CIFAR net is never offered before an ImageNet one
    assert um.vanilla_choices("se_resnet20_cifar")[0].label == "resnet20_cifar: weights of pair 'cifar10-resnet20'"

    se = random_model("timm:seresnet18")
    assert ops.check_pair(se, random_model("timm:resnet18")).refusals == ()
    refused = ops.check_pair(se, random_model("resnet20_cifar")).refusals
    assert len(refused) == 1 and "1000 outputs" in refused[0] and "counterpart (resnet20_cifar) 10" in refused[0]
    same_n = random_model("resnet20_cifar")
    renamed = type(same_n)(same_n.name, same_n.model, replace(same_n.meta, class_names=tuple(f"c{i}" for i in range(10))))
    assert "class names differ" in ops.check_pair(random_model("se_resnet20_cifar"), renamed).refusals[0]
    warned = ops.check_pair(se, random_model("timm:resnet18")).warnings  # timm's crop_pct 0.875 vs 0.95
    assert len(warned) == 1 and "resize 256" in warned[0] and "resize 235" in warned[0], warned
    assert ops.check_pair(random_model("se_resnet20_cifar"), random_model("resnet20_cifar")) == ops.PairCheck()


# --------------------------------------------------------------------------- #17 (5): guesses and plain messages


def test_architecture_guessed_from_the_keys_of_a_file_without_metadata(user_dir: Path, tmp_path: Path) -> None:
    """#17 (5a): a bare state dict names its architecture by its keys and shapes; garbage names none."""
    import timm

    torch.manual_seed(0)
    f = tmp_path / "weights.pth"  # a name that says nothing: the keys decide
    torch.save(timm.create_model("seresnet18", pretrained=False).state_dict(), f)
    assert um.inspect_file(um.store_file(f)).guessed_arch == "timm:seresnet18"
    f20 = tmp_path / "bare.pt"
    torch.save(get_spec("se_resnet20_cifar").build().state_dict(), f20)
    assert um.inspect_file(um.store_file(f20)).guessed_arch == "se_resnet20_cifar"
    state = get_spec("se_resnet20_cifar").build(SEConfig(reduction=4)).state_dict()  # the suggested SE config is used
    assert um.guess_arch(state, "", um.suggest_se_config(state)) == "se_resnet20_cifar"
    assert um.guess_arch(get_spec("resnet20_cifar").build(num_classes=100).state_dict()) == "resnet20_cifar"
    tv = get_spec("torchvision:mobilenet_v3_small").build().state_dict()
    assert um.guess_arch(tv, "mobilenet_v3_small-047dcff4.pth") == "torchvision:mobilenet_v3_small"  # its file name
    junk = tmp_path / "junk.pt"
    torch.save({"a.weight": torch.zeros(3, 2), "b": torch.ones(4)}, junk)
    rep = um.inspect_file(um.store_file(junk))
    assert rep.guessed_arch is None and not rep.has_meta
    state.pop("fc.bias")
    assert um.guess_arch(state, "", um.suggest_se_config(state)) is None  # one key short: no exact match


def test_refused_whole_model_file_is_named_as_uploaded_in_plain_text(user_dir: Path, tmp_path: Path) -> None:
    """#17 (5e): a pickled whole model is refused under the user's file name, without ANSI codes, with torch's
    one meaningful line (which class is pickled), not its advice."""
    whole = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), whole)
    stored = um.store_bytes("my model.pt", whole.read_bytes())
    with pytest.raises(CheckpointError) as e:
        um.inspect_file(stored)
    msg = str(e.value)
    assert msg.startswith("my model.pt: refused by torch.load(weights_only=True)"), msg
    assert stored.sha256 not in msg and "\x1b" not in msg and "[1m" not in msg and "\n" not in msg
    assert "torch.nn.modules.container.Sequential" in msg and "model.state_dict()" in msg
    assert "In PyTorch 2.6" not in msg


def test_plain_text_of_library_messages() -> None:
    from se_core.util.text import first_meaningful_line, strip_ansi

    assert strip_ansi("a \x1b[1mbold\x1b[0m word") == "a bold word"
    torch_text = ("Weights only load failed. Two options, \x1b[1mdo those steps only if you trust it\x1b[0m. \n\t(1) "
                  "Re-run.\n\tWeightsUnpickler error: Unsupported global: GLOBAL x.Y was not an allowed global by "
                  "default. Please use `add_safe_globals([x.Y])`.\n\nCheck the documentation.")
    assert first_meaningful_line(torch_text) == ("Unsupported global: GLOBAL x.Y was not an allowed global by default. "
                                                 "Please use `add_safe_globals([x.Y])`.")
    assert first_meaningful_line("\n\n  \x1b[31mboom\x1b[0m\nmore") == "boom"
    long = "word " * 100
    assert len(first_meaningful_line(long, limit=50)) <= 50
