"""Every page with an ImageNet pair (RegNetY/X-400MF, random weights in a fake torchvision cache), with
missing weights, and with the user's own checkpoint uploaded on the Models page and compared everywhere.

The RegNet 400MF pair is the cheapest ImageNet pair (0.4 GMACs per 224x224 image); the bigger pairs are
loaded and probed at the library level in test_zoo.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
import torch
from fake_hub import write_pair
from streamlit.testing.v1 import AppTest
from test_user_models import _Payload, _with_meta, user_dir  # noqa: F401 - fixture
from test_zoo import library_cache  # noqa: F401 - fixture

from dashboard.datasets import SOURCES
from se_core.models.registry import get_spec

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = Path(__file__).resolve().parents[1] / "pages"
PAIR = "imagenet-regnet400mf-tv"


def _app(pair: str | None = None) -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    if pair:
        at.query_params["pair"] = pair
    at.run()
    return at


def _goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, f"{page}: {at.exception}"
    return at


def _text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "code"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_every_page_shows_the_imagenet_pair(library_cache: dict[str, Path]) -> None:
    write_pair(PAIR, library_cache)
    at = _app(PAIR)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="pair").value == PAIR
    home = _text(at)
    assert "SE design of `regnet_y_400mf_tv`" in home and "SqueezeExcitation" in home  # the library's SE, described
    assert at.dataframe  # the unit table, widths measured on the loaded model

    _goto(at, "models")
    assert not at.error, [e.value for e in at.error]
    text = _text(at)
    assert "regnet_y_400mf-e6988f5f.pth" in text and "Radosavovic" in text  # selected pair's file, the justification
    assert any("tench" in str(t.value) for t in at.table)  # class names from torchvision's metadata

    _goto(at, "inspector")
    assert not at.error, [e.value for e in at.error]
    labels = at.select_slider[0].options
    assert labels[0] == "s1.b0" and "s4.b5" in labels  # RegNetY's 16 SE sites
    zblock = [e for e in at.get("plotly_chart") if e.key == "inspect_zblock"]
    assert zblock and "vanilla (regnet_x_400mf_tv)" in zblock[0].proto.spec  # vanilla z at the paired site

    at.session_state["attr_methods"] = ["saliency", "layer_gradcam"]  # keep it affordable at 224 px on a CPU
    _goto(at, "attributions")
    assert not at.error, [e.value for e in at.error]
    assert [m.value for m in at.metric if m.label == "Grad-CAM layer"] == ["trunk_output"]

    for extra in ("classwise", "ablations"):
        if (PAGES / f"{extra}.py").is_file():
            _goto(at, extra)  # these pages need CIFAR-10 data: they may explain so, but must not crash
            assert not at.error, (extra, [e.value for e in at.error])


def test_missing_library_weights_are_explained_on_every_page(library_cache: dict[str, Path]) -> None:
    pair = "imagenet-resnet50-rsb-a1"
    at = _app(pair)
    assert not at.exception
    assert "models--timm--seresnet50.a1_in1k" in _text(at)  # Home falls back to the registry and says why
    _goto(at, "models")
    text = _text(at)
    assert "python -c \"import timm; timm.create_model('seresnet50.a1_in1k', pretrained=True)\"" in text
    assert "weights missing" in " ".join(e.label for e in at.expander)
    for page in ("inspector", "attributions"):
        _goto(at, page)
        errors = " ".join(str(e.value) for e in at.error)
        assert "seresnet50.a1_in1k" in errors and "model.safetensors" in errors and "timm.create_model" in errors


def test_upload_own_checkpoint_registers_a_pair_used_by_every_page(user_dir: Path, tiny_data_dir: Path,
                                                                   tmp_path: Path) -> None:
    at = _app()
    _goto(at, "models")
    # 1. a pickle payload is refused with a message, and never runs
    sentinel = tmp_path / "SENTINEL"
    evil = tmp_path / "evil.pt"
    torch.save({"fc.weight": _Payload(sentinel)}, evil)
    at.file_uploader(key="models-user-se-upload").set_value(("evil.pt", evil.read_bytes(), "application/octet-stream"))
    at.run()
    assert any("weights_only" in str(e.value) for e in at.error) and not sentinel.exists()

    # 2. a file without metadata, declared as the wrong architecture: every mismatch named, nothing registered
    bare = tmp_path / "bare.pt"
    torch.manual_seed(0)
    torch.save(get_spec("se_resnet20_cifar").build().state_dict(), bare)
    at.file_uploader(key="models-user-se-upload").set_value(("bare.pt", bare.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception
    at.selectbox(key="models-user-se-arch").set_value("se_resnet32_cifar")
    at.run()
    at.button(key="models-user-register").click()
    at.run()
    assert any("missing layer1.3.conv1.weight" in str(e.value) for e in at.error)
    assert at.sidebar.selectbox(key="pair").value == "cifar10-resnet20"

    # 3. a good checkpoint with metadata, compared with the shipped ResNet-20: registered and selected
    good = _with_meta(tmp_path / "mine.safetensors")
    at.file_uploader(key="models-user-se-upload").set_value(("mine.safetensors", good.read_bytes(),
                                                             "application/octet-stream"))
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert "architecture **se_resnet20_cifar**" in _text(at)
    van = at.selectbox(key="models-user-vanilla-choice")
    assert van.value == 0 and van.options[0] == "resnet20_cifar: weights of pair 'cifar10-resnet20'"
    at.button(key="models-user-register").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    name = at.sidebar.selectbox(key="pair").value
    assert name.startswith("user:")
    assert at.sidebar.selectbox(key="pair").options[-1] == "Yours: se_resnet20_cifar (mine.safetensors) vs resnet20_cifar"
    assert any(name in str(s.value) for s in at.success)
    _goto(at, "home")
    assert not at.error and "Yours: se_resnet20_cifar (mine.safetensors) vs resnet20_cifar" in _text(at)
    _goto(at, "inspector")
    assert not at.error, [e.value for e in at.error]
    assert [e.key for e in at.get("plotly_chart")][:2] == ["inspect_top5_0", "inspect_top5_1"]


def test_library_upload_gets_its_natural_twin_and_a_cifar_counterpart_is_refused(user_dir: Path, tiny_data_dir: Path,
                                                                                   tmp_path: Path) -> None:
    """#17 (1): a torchvision mobilenet_v3_small upload is offered torchvision's mobilenet_v2 first (untrained
    here: its weights are not on this machine, so the preselected choice is one that can be built, with no
    warning before the user picks anything); the pair registers with a note that the two preprocessings
    differ; a CIFAR-10 counterpart is refused with both class counts named."""
    torch.manual_seed(0)
    f = tmp_path / "mnv3.pth"
    torch.save(get_spec("torchvision:mobilenet_v3_small").build().state_dict(), f)
    at = _app()
    _goto(at, "models")
    at.file_uploader(key="models-user-se-upload").set_value(("mnv3.pth", f.read_bytes(), "application/octet-stream"))
    at.run()
    at.selectbox(key="models-user-se-arch").set_value("another timm / torchvision model…")
    at.run()
    at.text_input(key="models-user-se-libarch").set_value("torchvision:mobilenet_v3_small")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    van = at.selectbox(key="models-user-vanilla-choice")
    assert van.options[0].startswith("torchvision:mobilenet_v2: the library's MobileNet_V2_Weights")
    assert van.options[van.value] == "torchvision:mobilenet_v2: random initialisation (untrained)"
    assert not at.warning, [w.value for w in at.warning]
    assert max(i for i, o in enumerate(van.options) if "cifar" in o) > max(
        i for i, o in enumerate(van.options) if o.startswith(("torchvision:", "regnet", "resnet50")))

    cifar = next(i for i, o in enumerate(van.options) if o == "resnet20_cifar: weights of pair 'cifar10-resnet20'")
    van.set_value(cifar)
    at.run()
    at.button(key="models-user-register").click()
    at.run()
    err = " ".join(str(e.value) for e in at.error)
    assert "cannot be compared" in err and "1000 outputs" in err, err
    assert at.sidebar.selectbox(key="pair").value == "cifar10-resnet20"

    at.selectbox(key="models-user-vanilla-choice").set_value(van.options.index(
        "torchvision:mobilenet_v2: random initialisation (untrained)"))
    at.run()
    at.button(key="models-user-register").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="pair").value.startswith("user:")
    notes = [str(w.value) for w in at.warning]
    assert len(notes) == 1 and "resize 256" in notes[0] and "resize 232" in notes[0], notes  # torchvision's two defaults


def test_attributions_for_a_pair_whose_models_expect_different_input(user_dir: Path, tiny_data_dir: Path,
                                                                      tmp_path: Path) -> None:
    """#17 (2): a pair whose two models have different default preprocessing (torchvision's mobilenet_v3_small
    resizes to 256, mobilenet_v2 to 232) is attributed, not refused: the page says how they differ and lets
    the user feed one shared preprocessing or each model its own; both give both models' maps."""
    from se_core.models.user_models import ModelRecipe, UserPairRecipe, register_user_pair

    name = register_user_pair(UserPairRecipe(ModelRecipe("random", "torchvision:mobilenet_v3_small"),
                                             ModelRecipe("random", "torchvision:mobilenet_v2")))
    at = _app(name)
    at.session_state["attr_methods"] = ["saliency"]
    _goto(at, "attributions")
    assert not at.error, [e.value for e in at.error]
    info = " ".join(str(i.value) for i in at.info)
    assert "expect different input" in info and "resize 256" in info and "resize 232" in info, info
    feed = at.radio(key="attr_feed")
    assert feed.value == "se" and len(feed.options) == 3
    charts = [c.key for c in at.get("plotly_chart")]
    assert "attr-pair-saliency" in charts and "attr-diff-saliency" in charts, charts
    feed.set_value("own")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "attr-pair-saliency" in [c.key for c in at.get("plotly_chart")]


# --------------------------------------------------------------------------- #17 (4, 5): friction


def test_bare_file_architecture_guessed_and_refusals_name_the_file(user_dir: Path, library_cache: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    """#17 (5a, 5e): a state dict without metadata preselects the architecture its keys match (a registered one
    in the selectbox, a library one as 'another model' with its name typed in); a pickled whole model is refused
    under the uploaded name, in plain text."""
    import timm

    at = _app()
    _goto(at, "models")
    whole = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), whole)
    at.file_uploader(key="models-user-se-upload").set_value(("my_net.pt", whole.read_bytes(), "application/octet-stream"))
    at.run()
    (err,) = [str(e.value) for e in at.error]
    assert err.startswith("my_net.pt: refused by torch.load(weights_only=True): Unsupported global"), err
    assert "\x1b" not in err and "[1m" not in err and ".pt:" not in err.replace("my_net.pt:", "")

    torch.manual_seed(0)
    bare = tmp_path / "bare.pt"
    torch.save(get_spec("se_resnet56_cifar").build().state_dict(), bare)
    at.file_uploader(key="models-user-se-upload").set_value(("bare.pt", bare.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="models-user-se-arch").value == "se_resnet56_cifar"
    assert any("**se_resnet56_cifar**: guessed from the file's keys" in str(i.value) for i in at.info)

    f = tmp_path / "checkpoint.pth"
    torch.save(timm.create_model("seresnet18", pretrained=False).state_dict(), f)
    at.file_uploader(key="models-user-se-upload").set_value(("checkpoint.pth", f.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="models-user-se-arch").value == "another timm / torchvision model…"
    assert at.text_input(key="models-user-se-libarch").value == "timm:seresnet18"
    van = at.selectbox(key="models-user-vanilla-choice")
    assert van.options[0].startswith("timm:resnet18: the library's")
    van.set_value(0)  # weights of no pair: the warning gives the command that fetches them (#17 5f)
    at.run()
    assert at.button(key="models-user-register").disabled
    assert "timm.create_model('resnet18.a1_in1k', pretrained=True)" in " ".join(str(w.value) for w in at.warning)

    junk = tmp_path / "junk.pt"
    torch.save({"a.weight": torch.zeros(3, 2)}, junk)
    at.file_uploader(key="models-user-se-upload").set_value(("junk.pt", junk.read_bytes(), "application/octet-stream"))
    at.run()
    assert any("match no known architecture" in str(i.value) for i in at.info)


def test_counterpart_without_weights_shows_a_disabled_check_and_ways_out(user_dir: Path, library_cache: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """#17 (5f): a counterpart whose weights are missing keeps the check button, disabled with the reason; the
    warning says how to get the weights (the ImageNet pairs tab's Download button for a pair's weights, else the
    command) and offers the untrained twin, which enables the check."""
    torch.manual_seed(0)
    f = tmp_path / "mnv3.pth"
    torch.save(get_spec("torchvision:mobilenet_v3_small").build().state_dict(), f)
    at = _app()
    _goto(at, "models")
    at.file_uploader(key="models-user-se-upload").set_value(("mobilenet_v3_small.pth", f.read_bytes(),
                                                             "application/octet-stream"))
    at.run()
    assert at.text_input(key="models-user-se-libarch").value == "torchvision:mobilenet_v3_small"  # from its name
    van = at.selectbox(key="models-user-vanilla-choice")
    assert "(not on disk)" in van.options[0]
    van.set_value(0)
    at.run()
    button = at.button(key="models-user-register")
    assert button.disabled and "not on this machine" in button.help
    warn = " ".join(str(w.value) for w in at.warning)
    assert "not on this machine" in warn and "**Download** button for pair" in warn and "MobileNetV3" in warn, warn
    at.button(key="models-user-use-twin").click()
    at.run()
    van = at.selectbox(key="models-user-vanilla-choice")
    assert van.options[van.value] == "torchvision:mobilenet_v2: random initialisation (untrained)"
    assert not at.button(key="models-user-register").disabled and not at.warning


def test_fresh_session_lists_the_servers_user_pairs(user_dir: Path, tiny_data_dir: Path) -> None:
    """#17 (5d): pairs registered earlier on this server are listed after the built-in ones in a new session,
    without a ?pair= link."""
    from se_core.models.pairs import PAIRS
    from se_core.models.user_models import ModelRecipe, UserPairRecipe, register_user_pair

    names = [register_user_pair(UserPairRecipe(ModelRecipe("random", "se_resnet20_cifar", seed=s),
                                               ModelRecipe("random", "resnet20_cifar"))) for s in (0, 1)]
    at = _app()
    assert not at.exception
    box = at.sidebar.selectbox(key="pair")
    assert box.options[:len(PAIRS)] == [p.title for p in PAIRS.values()]
    assert box.options[len(PAIRS):] == [PAIRS[n].title for n in names]
    assert any("registered on this server" in str(c.value) for c in at.sidebar.caption)
    box.set_value(names[1])
    at.run()
    assert not at.exception and at.query_params["pair"] in (names[1], [names[1]])


def test_a_server_can_keep_each_sessions_pairs_to_itself(user_dir: Path, tiny_data_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """SE_LENS_LIST_USER_PAIRS=0: a new session lists only the built-in pairs, though others are saved here."""
    from se_core.models.pairs import PAIRS
    from se_core.models.user_models import ModelRecipe, UserPairRecipe, register_user_pair

    register_user_pair(UserPairRecipe(ModelRecipe("random", "se_resnet20_cifar"), ModelRecipe("random", "resnet20_cifar")))
    monkeypatch.setenv("SE_LENS_LIST_USER_PAIRS", "0")
    at = _app()
    assert not at.exception and at.sidebar.selectbox(key="pair").options == [p.title for p in PAIRS.values()]


def test_classwise_for_an_imagenet_pair_opens_on_an_image_folder(library_cache: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch) -> None:
    """#17 (4): no dead end for a pair without shipped statistics: an ImageNet pair opens on the ImageFolder
    input, says that no ImageNet data ships, and gives the command computing this pair's statistics."""
    roots = tmp_path / "roots"
    (roots / "mine" / "a").mkdir(parents=True)
    monkeypatch.setenv("SE_LENS_DATA_ROOTS", str(roots))
    write_pair(PAIR, library_cache)
    at = _app(PAIR)
    _goto(at, "classwise")
    radio = at.radio(key="cw_source")
    assert radio.value == "folder" and SOURCES["shipped"] not in radio.options
    text = _text(at)
    assert "no such data set ships with SE Lens" in text and "ImageNet validation set" in text
    assert f"python -m se_core.stats --pair {PAIR} --data PATH/TO/IMAGEFOLDER" in text
    at.text_input(key="cw_folder").input("mine")
    at.run()
    assert f"python -m se_core.stats --pair {PAIR} --data {roots / 'mine'}" in _text(at)
