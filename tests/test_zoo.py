"""ImageNet pairs from timm / torchvision: registration, weight discovery, metadata, loading and probing.

Weights are random (``pretrained=False`` / ``weights=None``), written by :mod:`fake_hub` into temporary caches laid
out exactly as the libraries lay theirs out, computed here from the libraries' own metadata (not
from se_core.models.zoo): timm's Hugging Face hub cache (``models--timm--<tag>/{blobs,refs/main,snapshots}``,
snapshot files symlinked to blobs) and torch hub's ``checkpoints/<file name of the URL>``. Nothing is
downloaded: the environment points both caches at empty temp folders, and one test checks that timm
itself, offline, reads the cache we wrote.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fake_hub import cache_env, write_library_weights, write_pair
from support import REPO_ROOT, subprocess_env

from se_core.models import zoo
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import PAIRS, load_pair
from se_core.models.registry import get_spec
from se_core.models.weights import WeightsMissing
from se_core.probe.sites import Site, capture, find_sites, hook_count, pair_sites, probe

# --------------------------------------------------------------------------- fake library caches


@pytest.fixture
def library_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty HF hub and torch hub caches (and data dir) made current; torchvision hash check off (random weights)."""
    env, cache = cache_env(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(zoo.load, "VERIFY_TORCHVISION_HASH", False)
    return cache


# --------------------------------------------------------------------------- catalog


def test_catalog_pairs_registered_with_notes_and_commands() -> None:
    names = [p.name for p in zoo.ZOO_PAIRS]
    assert len(names) == 6 and all(n in PAIRS for n in names)
    for p in zoo.ZOO_PAIRS:
        spec = PAIRS[p.name]
        assert spec.dataset == "ImageNet-1k" and len(spec.note) > 150
        assert get_spec(spec.se_arch).has_se and not get_spec(spec.vanilla_arch).has_se
        for ref in (spec.se_weights, spec.vanilla_weights):
            assert ref.kind in ("timm", "torchvision")
            if ref.kind == "timm":
                assert ref.how_to_get == f"python -c \"import timm; timm.create_model('{ref.location}', pretrained=True)\""
            else:
                enum = ref.location.split(".")[0]
                assert ref.how_to_get.startswith('python -c "from torchvision.models import ')
                assert f", {enum}; " in ref.how_to_get and f"(weights={ref.location})" in ref.how_to_get
    # RSB pair: both timm weights from the same A1 recipe
    rsb = PAIRS["imagenet-resnet50-rsb-a1"]
    assert rsb.se_weights.location.endswith(".a1_in1k") and rsb.vanilla_weights.location.endswith(".a1_in1k")
    import timm
    assert rsb.se_weights.location in timm.list_pretrained("seresnet50*")
    assert rsb.vanilla_weights.location in timm.list_pretrained("resnet50*")


def test_missing_weights_messages_name_file_and_command(library_cache: dict[str, Path]) -> None:
    cases = {"imagenet-resnet50-rsb-a1": ("models--timm--seresnet50.a1_in1k", "model.safetensors"),
             "imagenet-resnet50-paper": ("checkpoints", "se_resnet50-ce0d4300.pth"),
             "imagenet-regnet400mf-tv": ("checkpoints", "regnet_y_400mf-e6988f5f.pth")}
    for name, (folder, fname) in cases.items():
        with pytest.raises(WeightsMissing) as e:
            load_pair(name)
        msg = str(e.value)
        ref = PAIRS[name].se_weights
        assert folder in msg and fname in msg, msg
        assert ref.how_to_get in msg and "downloads only on request" in msg and "se_core.zoo download" in msg
        assert str(library_cache["data"] / "weights") in msg
        root = library_cache["hf"] if ref.kind == "timm" and "models--" in folder else library_cache["torch_hub"]
        assert str(root) in msg
    # WeightsRef.path() shows the library-cache file, not a data-dir path
    assert PAIRS["imagenet-regnet400mf-tv"].se_weights.path() == \
        library_cache["torch_hub"] / "checkpoints" / "regnet_y_400mf-e6988f5f.pth"
    rows = zoo.availability()
    assert len(rows) == 12 and not any(r["available"] for r in rows)
    assert all(r["command"] and r["file"] for r in rows)


def test_weights_copied_into_data_weights_are_found(library_cache: dict[str, Path]) -> None:
    path, _ = write_library_weights("torchvision", "RegNet_X_400MF_Weights.IMAGENET1K_V2", library_cache)
    dest = library_cache["data"] / "weights" / path.name
    dest.parent.mkdir()
    path.rename(dest)
    st = zoo.weights_status(PAIRS["imagenet-regnet400mf-tv"].vanilla_weights, "regnet_x_400mf_tv")
    assert st.found == dest


def test_class_names_and_preprocessing_come_from_the_libraries() -> None:
    from timm.data import ImageNetInfo
    from torchvision.models import RegNet_Y_400MF_Weights

    tv = get_spec("regnet_y_400mf_tv").build()
    w = RegNet_Y_400MF_Weights.IMAGENET1K_V2
    meta = zoo.library_meta("regnet_y_400mf_tv", tv, "RegNet_Y_400MF_Weights.IMAGENET1K_V2")
    t = w.transforms()
    assert meta.input_size == (t.crop_size[0], t.crop_size[0]) and meta.extra["resize"] == t.resize_size[0]
    assert meta.mean == tuple(t.mean) and meta.std == tuple(t.std) and meta.extra["interpolation"] == "bilinear"
    assert len(meta.class_names) == 1000 and len(set(meta.class_names)) == 1000
    assert [n.split(" [")[0] for n in meta.class_names] == list(w.meta["categories"])

    import timm
    from timm.data import create_transform, resolve_model_data_config

    m = timm.create_model("seresnet50.a1_in1k", pretrained=False)
    meta = zoo.library_meta("seresnet50_timm", m)
    tf = create_transform(**resolve_model_data_config(m))
    resize = next(s for s in tf.transforms if type(s).__name__ == "Resize")
    assert meta.extra["resize"] == resize.size and meta.extra["interpolation"] == "bicubic"
    assert meta.input_size == (224, 224)
    first = [d.split(",")[0].strip() for d in ImageNetInfo().label_descriptions()]
    assert [n.split(" [")[0] for n in meta.class_names] == first and meta.class_names[0] == "tench"
    assert meta.se_config == json.loads(get_spec("se_resnet20_cifar").default_se.to_json())


# --------------------------------------------------------------------------- loading and probing every pair


@pytest.mark.parametrize("name", [p.name for p in zoo.ZOO_PAIRS])
def test_pair_loads_from_library_caches_and_probes(name: str, library_cache: dict[str, Path]) -> None:
    written = write_pair(name, library_cache)
    pair = load_pair(name, torch.device("cpu"))
    x = torch.randn(2, 3, 64, 64)
    n_se = 0
    for role, lm in (("se", pair.se), ("vanilla", pair.vanilla)):
        path, state = written[role]
        assert Path(lm.source) == path or Path(lm.source).resolve() == path.resolve()
        assert lm.meta.num_classes == 1000 and len(lm.class_names) == 1000
        assert lm.resize is not None and lm.resize >= lm.meta.input_size[0]
        assert lm.meta.provenance["file"] == lm.source
        own = lm.model.state_dict()
        k = next(iter(state))
        assert torch.equal(own[k], state[k])  # the file's weights, not a fresh init
        sites = find_sites(lm.model)
        assert sites, f"{role}: no sites"
        res = probe(lm.model, x)
        assert res.logits.shape == (2, 1000)
        for s in sites:
            assert res.z[s.name].shape == (2, s.channels), (role, s)
        if role == "se":
            gated = [s for s in sites if s.gate]
            n_se = len(gated)
            assert gated and all(res.s[s.name].shape == (2, s.channels) for s in gated)
            assert all(((res.s[s.name] >= 0) & (res.s[s.name] <= 1)).all() for s in gated)
        else:
            assert all(s.gate is None and s.capture == "output" for s in sites) and not res.s
        assert hook_count(lm.model) == 0
    matched = pair_sites(find_sites(pair.se.model), find_sites(pair.vanilla.model))
    assert len(matched) >= 0.8 * n_se


def test_vanilla_site_z_is_the_output_channel_mean(library_cache: dict[str, Path]) -> None:
    model = get_spec("resnet50_timm").build().eval()
    sites = find_sites(model)
    assert [s.name for s in sites[:2]] == ["layer1.0.bn3", "layer1.1.bn3"] and sites[0].label == "s1.b0"
    seen = {}
    h = model.layer1[0].bn3.register_forward_hook(lambda m, a, o: seen.update(out=o.mean((2, 3))))
    x = torch.randn(1, 3, 64, 64)
    with capture(model, sites) as res, torch.no_grad():
        model(x)
    h.remove()
    assert torch.allclose(res.z["layer1.0.bn3"], seen["out"])
    # the SE twin's unit sits right there: z of seresnet50 at layer1.0.se is its input = bn3 output
    assert [s.name for s in find_sites(get_spec("seresnet50_timm").build())][:1] == ["layer1.0.se"]
    # Site stays constructible positionally (capture defaults to the input)
    assert Site("a", 1, 0, 4, None, "identity").capture == "input"


def test_vanilla_sites_per_family() -> None:
    first = {"regnet_x_400mf_tv": "trunk_output.block1.block1-0.f.b", "regnetx_004_timm": "s1.b1.conv2",
             "mobilenet_v2_tv": "features.1.conv.0", "mnasnet1_0_tv": "layers.5"}
    for arch, name in first.items():
        model = get_spec(arch).build()
        sites = zoo.vanilla_sites(model)
        assert sites[0].name == name and sites[0].stage == 1 and sites[0].block == 0, (arch, sites[0])
        assert all(s.gate is None and s.capture == "output" and s.channels for s in sites)
    # an SE net's own sites are its SE units (found by structure), never the vanilla layers
    assert all(s.gate for s in zoo.model_sites(get_spec("seresnet50_timm").build()))


# --------------------------------------------------------------------------- cache layout fidelity and file safety


def test_timm_itself_reads_the_cache_we_lay_out(library_cache: dict[str, Path]) -> None:
    """timm, offline, loads our fake hub cache: the layout is the real one (and zoo finds the same file)."""
    path, state = write_library_weights("timm", "regnetx_004.pycls_in1k", library_cache)
    out = library_cache["data"] / "w.pt"
    code = ("import timm, torch, sys; m = timm.create_model('regnetx_004.pycls_in1k', pretrained=True); "
            f"torch.save(m.state_dict(), {str(out)!r})")
    env = subprocess_env(HF_HUB_CACHE=str(library_cache["hf"]), HF_HUB_OFFLINE="1", TORCH_HOME=str(library_cache["torch_hub"].parent))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    theirs = torch.load(out, weights_only=True)
    assert all(torch.equal(theirs[k], state[k]) for k in state)
    st = zoo.weights_status(PAIRS["imagenet-regnet400mf-timm"].vanilla_weights, "regnetx_004_timm")
    assert st.found is not None and st.found.resolve() == path.resolve()


def test_torch_hub_reads_the_torchvision_file_we_lay_out(library_cache: dict[str, Path]) -> None:
    from torch.hub import load_state_dict_from_url
    from torchvision.models import MobileNet_V2_Weights

    path, state = write_library_weights("torchvision", "MobileNet_V2_Weights.IMAGENET1K_V2", library_cache)
    got = load_state_dict_from_url(MobileNet_V2_Weights.IMAGENET1K_V2.url, check_hash=False, weights_only=True)
    assert set(got) == set(state)  # found in the cache: torch hub would have had to download otherwise


def test_torchvision_hash_prefix_is_verified(tmp_path: Path) -> None:
    data = b"not really weights"
    good = tmp_path / f"model-{hashlib.sha256(data).hexdigest()[:10]}.pth"
    good.write_bytes(data)
    zoo.verify_hash(good)
    bad = tmp_path / "regnet_y_400mf-e6988f5f.pth"
    bad.write_bytes(data)
    with pytest.raises(CheckpointError, match="SHA-256 prefix e6988f5f"):
        zoo.verify_hash(bad)


class _Payload:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_library_files_legacy_format_read_and_pickles_refused(tmp_path: Path) -> None:
    state = {"w": torch.ones(2, 3)}
    legacy = tmp_path / "legacy-0000.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(zoo.read_library_file(legacy)["w"], state["w"])
    sentinel = tmp_path / "SENTINEL"
    for i, new_zip in enumerate((True, False)):
        evil = tmp_path / f"evil{i}.pth"
        torch.save({"w": _Payload(sentinel)}, evil, _use_new_zipfile_serialization=new_zip)
        with pytest.raises(CheckpointError, match="weights_only"):
            zoo.read_library_file(evil)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(pickle.dumps(_Payload(sentinel)))
    with pytest.raises(CheckpointError):
        zoo.read_library_file(raw)
    assert not sentinel.exists()


def test_library_models_by_name() -> None:
    spec = get_spec("timm:seresnet18")
    assert spec.has_se and spec.meta["library"] == "timm"
    assert len([s for s in find_sites(spec.build()) if s.gate]) == 8
    van = get_spec("torchvision:resnet18").build()
    assert [s.name for s in find_sites(van)][:1] == ["layer1.0.bn2"]
    with pytest.raises(KeyError, match="timm has no model"):
        get_spec("timm:no_such_net")
    with pytest.raises(KeyError, match="unknown model"):
        get_spec("nonsense")
    assert "timm:seresnet18" not in __import__("se_core.models.registry", fromlist=["x"]).list_models()


def test_zoo_and_pairs_import_without_the_libraries() -> None:
    """Registering the catalog must not import timm or torchvision (each costs seconds at start-up)."""
    code = ("import sys; import se_core.models.pairs, se_core.models.registry, se_core.models.zoo; "
            "print('timm' in sys.modules, 'torchvision' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=300, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["False", "False"]
