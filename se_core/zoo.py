"""ImageNet SE / vanilla pairs from timm and torchvision, with weights found where those libraries keep them.

Nothing here downloads. Weights are looked up, in order, in

1. the library's own cache: timm's Hugging Face hub files under ``$HF_HUB_CACHE`` (else
   ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) as
   ``models--timm--<name>.<tag>/snapshots/<revision>/model.safetensors``, or, for timm weights
   without a hub copy and for every torchvision weight, torch hub's
   ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``;
2. ``<data dir>/weights/<same file name>``, for machines where the file was copied by hand.

When neither exists, :class:`~se_core.pairs.WeightsMissing` names both paths and the one-line
command that downloads the file on a machine with internet access. Files are read through
:mod:`se_core.checkpoints` (safetensors, or ``torch.load(weights_only=True)``), shapes are
compared key by key before loading, and torchvision files are checked against the SHA-256
prefix in their name, as torchvision itself does.

Class names come from the libraries' metadata (torchvision ``weights.meta['categories']``,
timm ``ImageNetInfo``) and preprocessing from their own eval transforms (timm
``create_transform(**resolve_model_data_config(model))``, torchvision ``weights.transforms()``).

Sites: a vanilla ImageNet net has no ``.se`` placeholders, so :func:`vanilla_sites` names, per
family, the layer whose *output* its SE twin recalibrates (timm ResNet: ``layerX.Y.bn3``;
RegNet: the 3x3 group conv, ``f.b`` / ``conv2``; MobileNet/MnasNet: the depthwise conv's
activated output) and :func:`prepare_sites` attaches them (see
:func:`se_core.probe.attach_sites`), so every page probes them like SE sites. Mobile families
are labelled by resolution (stage = log2 of the output stride, block = index at that stride),
so MobileNetV3 pairs with MobileNetV2 and EfficientNet-B0 with MnasNet where their blocks
really correspond.

Besides the catalog, any timm or torchvision model can be named as ``timm:<name>`` or
``torchvision:<builder>`` (e.g. ``timm:seresnet18``), which is how a checkpoint of another
project's model is loaded without code changes. timm and torchvision are imported on first
use only (each costs seconds).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence
from urllib.parse import urlparse

import torch
from torch import nn

from se_core.checkpoints import CheckpointError, CheckpointMeta, _check_zip, read_checkpoint
from se_core.probe import Site, _stage_block, attach_sites, find_sites, model_lock
from se_core.registry import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, register, register_resolver
from se_core.se import SEConfig

if TYPE_CHECKING:
    from se_core.pairs import LoadedModel, PairSpec, WeightsRef

Library = Literal["timm", "torchvision"]
LIBRARY_KINDS = ("timm", "torchvision")
VERIFY_TORCHVISION_HASH = True
"""Check torchvision files against the SHA-256 prefix in their name (tests with random weights turn it off)."""
PROBE_SIZE = 64
"""Side of the dummy input used once per built model to read site resolutions and channel counts."""
MOBILE_FAMILIES = ("tv_mobilenet", "tv_efficientnet", "tv_mnasnet", "mobile")


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class ZooModel:
    """One library architecture: registry name, library, the library's own name, site family."""

    arch: str
    library: Library
    name: str
    family: str
    site_family: str
    has_se: bool
    description: str
    se_config: SEConfig | None = None
    se_design: str = ""
    vanilla: str = ""


_RESNET_SE = ("timm SEModule after bn3 of every bottleneck (standard integration): avg squeeze, "
              "FC C→C/16, ReLU, FC C/16→C, sigmoid")
ZOO: dict[str, ZooModel] = {z.arch: z for z in (
    ZooModel("seresnet50_timm", "timm", "seresnet50", "resnet50", "timm_resnet", True,
             "timm SE-ResNet-50 (SE r=16 on every bottleneck)", SEConfig(), _RESNET_SE, "resnet50_timm"),
    ZooModel("resnet50_timm", "timm", "resnet50", "resnet50", "timm_resnet", False, "timm ResNet-50"),
    ZooModel("legacy_seresnet50_timm", "timm", "legacy_seresnet50", "resnet50", "timm_resnet", True,
             "SE-ResNet-50 of the SE paper's authors (Caffe weights ported by timm's legacy senet)", SEConfig(),
             "legacy senet SEModule after bn3 of every bottleneck: avg squeeze, FC C→C/16, ReLU, FC C/16→C, sigmoid"),
    ZooModel("regnety_004_timm", "timm", "regnety_004", "regnet", "timm_regnet", True, "timm RegNetY-400MF",
             se_design="timm SEModule between the 3×3 group conv and the last 1×1 conv: hidden = ¼ of the "
                       "block's input width, ReLU, sigmoid"),
    ZooModel("regnetx_004_timm", "timm", "regnetx_004", "regnet", "timm_regnet", False, "timm RegNetX-400MF"),
    ZooModel("regnet_y_400mf_tv", "torchvision", "regnet_y_400mf", "regnet", "tv_regnet", True,
             "torchvision RegNetY-400MF",
             se_design="torchvision SqueezeExcitation between the 3×3 group conv (f.b) and the last 1×1 conv "
                       "(f.c): hidden = ¼ of the block's input width, ReLU, sigmoid"),
    ZooModel("regnet_x_400mf_tv", "torchvision", "regnet_x_400mf", "regnet", "tv_regnet", False,
             "torchvision RegNetX-400MF"),
    ZooModel("mobilenet_v3_large_tv", "torchvision", "mobilenet_v3_large", "mobilenet", "tv_mobilenet", True,
             "torchvision MobileNetV3-Large (SE in 8 of 15 blocks)",
             se_design="torchvision SqueezeExcitation after the depthwise conv of 8 of the 15 inverted-residual "
                       "blocks: hidden = expanded width / 4 rounded to a multiple of 8, ReLU, hard-sigmoid gate"),
    ZooModel("mobilenet_v2_tv", "torchvision", "mobilenet_v2", "mobilenet", "tv_mobilenet", False,
             "torchvision MobileNetV2"),
    ZooModel("efficientnet_b0_tv", "torchvision", "efficientnet_b0", "efficientnet", "tv_efficientnet", True,
             "torchvision EfficientNet-B0 (SE in every MBConv)",
             se_design="torchvision SqueezeExcitation after the depthwise conv of every MBConv: hidden = ¼ of the "
                       "block's input width, SiLU, sigmoid"),
    ZooModel("mnasnet1_0_tv", "torchvision", "mnasnet1_0", "mnasnet", "tv_mnasnet", False,
             "torchvision MnasNet-B1 1.0 (no SE)"),
)}


def _tv_command(builder: str, location: str) -> str:
    enum = location.split(".")[0]
    return f'python -c "from torchvision.models import {builder}, {enum}; {builder}(weights={location})"'


def _timm_command(tag: str) -> str:
    return f"python -c \"import timm; timm.create_model('{tag}', pretrained=True)\""


@dataclass(frozen=True)
class ZooPair:
    """Catalog entry of an ImageNet pair (turned into a :class:`~se_core.pairs.PairSpec`)."""

    name: str
    title: str
    se_arch: str
    vanilla_arch: str
    se_weights: str
    vanilla_weights: str
    note: str


ZOO_PAIRS: tuple[ZooPair, ...] = (
    ZooPair("imagenet-regnet400mf-tv", "ImageNet RegNetY-400MF vs RegNetX-400MF (torchvision)",
            "regnet_y_400mf_tv", "regnet_x_400mf_tv",
            "RegNet_Y_400MF_Weights.IMAGENET1K_V2", "RegNet_X_400MF_Weights.IMAGENET1K_V2",
            "Radosavovic et al. (2020) define RegNetY as RegNetX plus an SE unit after the 3×3 group conv, so this is "
            "the closest SE / no-SE pair from one design space. Caveat: each 400MF model is the best member of its "
            "own design space, so widths and depths differ too (X: 22 blocks, widths 32–400; Y: 16 blocks, widths "
            "48–440) and the difference is not the SE unit alone. Both are torchvision's V2 weights, trained with its "
            "2021 'new recipe' (X's adds FixRes; links below). The smallest pair: use it to try every page."),
    ZooPair("imagenet-regnet400mf-timm", "ImageNet RegNetY-400MF vs RegNetX-400MF (timm, original pycls weights)",
            "regnety_004_timm", "regnetx_004_timm", "regnety_004.pycls_in1k", "regnetx_004.pycls_in1k",
            "The RegNet paper's own weights (facebookresearch/pycls), ported by timm: both models trained with the "
            "same pycls recipe. Same caveat as the torchvision pair: RegNetY-400MF differs from RegNetX-400MF in "
            "widths and depth as well as in its SE units."),
    ZooPair("imagenet-resnet50-rsb-a1", "ImageNet SE-ResNet-50 vs ResNet-50 (timm, same A1 recipe)",
            "seresnet50_timm", "resnet50_timm", "seresnet50.a1_in1k", "resnet50.a1_in1k",
            "The cleanest SE comparison here: identical ResNet-50 architectures, except for SE units (r = 16) after "
            "bn3 of every bottleneck, both trained by timm with the same 'ResNet strikes back' A1 procedure "
            "(Wightman et al. 2021, arXiv:2110.00476). This is the paper's Table 2 comparison with a modern recipe."),
    ZooPair("imagenet-resnet50-paper", "ImageNet SE-ResNet-50 (the SE authors' weights) vs ResNet-50 (torchvision)",
            "legacy_seresnet50_timm", "resnet50_timm", "legacy_seresnet50.in1k", "resnet50.tv_in1k",
            "legacy_seresnet50 holds the SE paper authors' original SE-ResNet-50 weights (trained in Caffe, converted "
            "by Cadene's pretrainedmodels, ported by timm). No vanilla ResNet-50 from the same training setup was "
            "released, so its counterpart is torchvision's original ResNet-50 (resnet50.tv_in1k, the classic 90-epoch "
            "SGD recipe). Same architecture apart from SE, but different training code and recipes: read accuracy "
            "differences with that in mind."),
    ZooPair("imagenet-mobilenetv3-tv", "ImageNet MobileNetV3-Large (SE) vs MobileNetV2 (torchvision)",
            "mobilenet_v3_large_tv", "mobilenet_v2_tv",
            "MobileNet_V3_Large_Weights.IMAGENET1K_V2", "MobileNet_V2_Weights.IMAGENET1K_V2",
            "MobileNetV3 (Howard et al. 2019) is built from MobileNetV2's inverted-residual (MBConv) block and adds SE "
            "(hard-sigmoid gate) to 8 of its 15 blocks; MobileNetV2 is that block without SE, the nearest vanilla "
            "model. Other differences: h-swish instead of ReLU6 in later layers, 5×5 kernels in some blocks, searched "
            "widths/depths and a lighter head. Both are torchvision V2 weights from the same recipe family. Blocks "
            "are paired by resolution (stage = output stride), where both nets have the same number of stages."),
    ZooPair("imagenet-efficientnet-b0-tv", "ImageNet EfficientNet-B0 (SE) vs MnasNet-B1 1.0 (torchvision)",
            "efficientnet_b0_tv", "mnasnet1_0_tv",
            "EfficientNet_B0_Weights.IMAGENET1K_V1", "MNASNet1_0_Weights.IMAGENET1K_V1",
            "EfficientNet-B0 (Tan & Le 2019) was found by the MnasNet architecture search with SE in every MBConv "
            "block; torchvision's mnasnet1_0 is MnasNet-B1, the same search family's model without SE, with the same "
            "stage layout at similar cost. Other differences: SiLU vs ReLU, per-stage depths and widths (96 vs 112 "
            "channels in one stage), and training (EfficientNet-B0 weights ported from timm, MnasNet trained by "
            "1e100/mnasnet_trainer). Their eval resizing differs (bicubic vs bilinear), so the Attributions page, "
            "which feeds one tensor to both, declines this pair."),
)


# --------------------------------------------------------------------------- library access


def _timm():
    import timm

    return timm


def _tv_models():
    import torchvision.models as tvm

    return tvm


def tv_weights(location: str) -> Any:
    """The torchvision weights enum member named ``location`` (e.g. ``RegNet_Y_400MF_Weights.IMAGENET1K_V2``)."""
    try:
        return _tv_models().get_weight(location)
    except (ValueError, KeyError, AttributeError) as e:
        raise KeyError(f"torchvision has no weights {location!r} ({e})") from None


def timm_cfg(tag: str) -> Any:
    """timm's pretrained config of ``name.tag`` (no network: it is part of timm's code)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(tag)
    if cfg is None:
        raise KeyError(f"timm has no pretrained weights named {tag!r}; see timm.list_pretrained()")
    return cfg


def _build_library(library: str, name: str, num_classes: int) -> nn.Module:
    """A randomly initialised library model (never ``pretrained=True``/``weights=...``)."""
    if library == "timm":
        return _timm().create_model(name, pretrained=False, num_classes=num_classes)
    return _tv_models().get_model(name, weights=None, num_classes=num_classes)


# --------------------------------------------------------------------------- sites


_CONV_NORM_ACT = ("Conv2dNormActivation", "ConvNormAct", "ConvBnAct")
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.Identity)


def _depthwise_sites(model: nn.Module) -> list[str]:
    """The activated output of every depthwise conv (where an MBConv's SE unit would sit)."""
    out = []
    mods = dict(model.named_modules())
    for name, m in model.named_modules():
        if not (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels):
            continue
        parent_name, _, idx = name.rpartition(".")
        parent = mods.get(parent_name)
        if parent is None:
            continue
        if type(parent).__name__ in _CONV_NORM_ACT:
            out.append(parent_name)  # conv + norm + activation as one module: its output
            continue
        children = list(parent.named_children())
        i = [k for k, _ in children].index(idx)
        after = children[i + 1: i + 3]  # the norm, then (if it is one) the activation
        pick = after[1] if len(after) == 2 and isinstance(after[1][1], _ACTIVATIONS) else after[0] if after else None
        if pick is not None:
            out.append(f"{parent_name}.{pick[0]}" if parent_name else pick[0])
    return out


def detect_family(model: nn.Module) -> str | None:
    """Site family of a vanilla net by its module names: ResNet, RegNet (both libraries), mobile, or None."""
    names = [n for n, _ in model.named_modules()]
    if any(re.fullmatch(r"trunk_output\.block\d+\.block\d+-\d+\.f\.b", n) for n in names):
        return "tv_regnet"
    if any(re.fullmatch(r"s\d+\.b\d+\.conv2", n) for n in names):
        return "timm_regnet"
    if any(re.fullmatch(r"layer\d+\.\d+\.bn[23]", n) for n in names):
        return "timm_resnet"
    if _depthwise_sites(model):
        return "mobile"
    return None


def _vanilla_site_names(model: nn.Module, family: str | None) -> list[str]:
    names = [n for n, _ in model.named_modules()]
    family = family or detect_family(model)
    if family == "timm_resnet":
        blocks = [n for n in names if re.fullmatch(r"layer\d+\.\d+", n)]
        have = set(names)
        return [f"{b}.bn3" if f"{b}.bn3" in have else f"{b}.bn2" for b in blocks if f"{b}.bn3" in have or f"{b}.bn2" in have]
    if family == "tv_regnet":
        return [n for n in names if re.fullmatch(r"trunk_output\.block\d+\.block\d+-\d+\.f\.b", n)]
    if family == "timm_regnet":
        return [n for n in names if re.fullmatch(r"s\d+\.b\d+\.conv2", n)]
    if family in MOBILE_FAMILIES:
        return _depthwise_sites(model)
    return []


def _shapes(model: nn.Module, sites: Sequence[Site], size: int = PROBE_SIZE) -> dict[str, tuple[int, int]]:
    """(channels, height) of each site's z tensor on one dummy ``size`` x ``size`` input."""
    mods = dict(model.named_modules())
    seen: dict[str, tuple[int, int]] = {}
    handles = []
    flags = [(m, m.training) for m in model.modules()]
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    with model_lock(model):
        try:
            for st in sites:
                def rec(t: Any, name: str = st.name) -> None:
                    if isinstance(t, torch.Tensor) and t.dim() == 4:
                        seen[name] = (int(t.shape[1]), int(t.shape[2]))
                if st.capture == "output":
                    handles.append(mods[st.name].register_forward_hook(lambda m, a, o, f=rec: f(o)))
                else:
                    handles.append(mods[st.name].register_forward_pre_hook(lambda m, a, f=rec: f(a[0])))
            model.eval()
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size, device=dev))
        except Exception:  # noqa: BLE001 - a model that cannot run at this size keeps name-based labels
            seen.clear()
        finally:
            for h in handles:
                h.remove()
            for m, t in flags:
                m.training = t
    return seen


def _structural(model: nn.Module) -> list[Site]:
    """SE units found by structure, ignoring any attached site list."""
    return [s for s in find_sites(model, attached=False) if s.gate]


def vanilla_sites(model: nn.Module, family: str | None = None) -> list[Site]:
    """Where a vanilla net of ``family`` (``None``: detected) would carry SE units: ``gate=None``,
    ``capture='output'`` (z = channel means of that module's output), labelled like its SE twin's."""
    mods = dict(model.named_modules())
    sites = [Site(n, *_stage_block(n, i), None, None, f"vanilla.{type(mods[n]).__name__}", "output")
             for i, n in enumerate(_vanilla_site_names(model, family))]
    return _labelled(model, sites, family)


def model_sites(model: nn.Module, family: str | None = None) -> list[Site]:
    """SE sites (found by structure) of an SE net, else :func:`vanilla_sites`; labelled and sized.

    Mobile families are relabelled by resolution: stage = log2(output stride), block = index
    at that stride, so blocks of two different mobile nets correspond by position.
    """
    se = _structural(model)
    return _labelled(model, se, family) if se else vanilla_sites(model, family)


def _labelled(model: nn.Module, sites: list[Site], family: str | None) -> list[Site]:
    if not sites:
        return []
    shapes = _shapes(model, sites)
    family = family or detect_family(model)
    out, per_stage = [], {}
    for s in sites:
        ch, h = shapes.get(s.name, (s.channels, 0))
        stage, block = s.stage, s.block
        if (family in MOBILE_FAMILIES or stage == 0) and h:
            stage = max(1, round(math.log2(PROBE_SIZE / h)))
            block = per_stage.get(stage, 0)
            per_stage[stage] = block + 1
        out.append(Site(s.name, stage, block, s.channels or ch, s.gate, s.kind, s.capture))
    return out


def prepare_sites(model: nn.Module, family: str | None = None) -> nn.Module:
    """Attach :func:`model_sites` to ``model`` (see :func:`se_core.probe.attach_sites`)."""
    sites = model_sites(model, family)
    if sites:
        attach_sites(model, sites)
    return model


# --------------------------------------------------------------------------- registry


def _builder(library: str, name: str, site_family: str | None):
    def build(num_classes: int = 1000, se: SEConfig | None = None) -> nn.Module:
        return prepare_sites(_build_library(library, name, num_classes), site_family)
    return build


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    """Names made unique by appending the class index to repeats (ImageNet has two 'crane's)."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return tuple(n if counts[n] == 1 else f"{n} [{i}]" for i, n in enumerate(names))


def _interp_name(v: Any) -> str:
    s = str(getattr(v, "value", v)).lower()
    return s if s in ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos") else "bilinear"


def _side(v: Any) -> int:
    if isinstance(v, (list, tuple)):
        return int(max(v))
    return int(v)


@dataclass(frozen=True)
class LibraryPreprocess:
    """Eval preprocessing read from a library transform: resize shorter side, centre crop, normalize."""

    size: tuple[int, int]
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    source: str


def timm_preprocess(model: nn.Module) -> LibraryPreprocess:
    """From timm's eval transform for ``model``'s pretrained config."""
    from timm.data import create_transform, resolve_model_data_config

    cfg = resolve_model_data_config(model)
    t = create_transform(**cfg, is_training=False)
    resize = crop = None
    interp = cfg.get("interpolation", "bilinear")
    mean, std = cfg["mean"], cfg["std"]
    for step in getattr(t, "transforms", []):
        kind = type(step).__name__
        if kind == "Resize":
            resize, interp = _side(step.size), _interp_name(step.interpolation)
        elif kind == "CenterCrop":
            crop = tuple(int(v) for v in (step.size if isinstance(step.size, (list, tuple)) else (step.size, step.size)))
        elif kind == "Normalize":
            mean, std = step.mean, step.std
    size = crop or tuple(int(v) for v in cfg["input_size"][1:])
    return LibraryPreprocess(size, max(resize or max(size), max(size)),  # type: ignore[arg-type]
                             tuple(float(v) for v in mean), tuple(float(v) for v in std),  # type: ignore[arg-type]
                             _interp_name(interp), f"timm create_transform({cfg})")


def tv_preprocess(weights: Any) -> LibraryPreprocess:
    """From torchvision's ``weights.transforms()`` (ImageClassification)."""
    t = weights.transforms()
    crop = _side(t.crop_size)
    return LibraryPreprocess((crop, crop), max(_side(t.resize_size), crop), tuple(float(v) for v in t.mean),  # type: ignore[arg-type]
                             tuple(float(v) for v in t.std), _interp_name(t.interpolation),  # type: ignore[arg-type]
                             f"torchvision {type(weights).__name__}.{weights.name}.transforms()")


def timm_class_names(model: nn.Module) -> tuple[str, ...]:
    """ImageNet class names for a timm model, from timm's own label metadata (first synonym)."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if not subset:
        return ()
    return _unique([d.split(",")[0].strip() for d in ImageNetInfo(subset).label_descriptions()])


def library_meta(arch: str, model: nn.Module, weights: str | None = None, *, num_classes: int | None = None,
                 provenance: dict | None = None) -> CheckpointMeta:
    """Class names and preprocessing of a library model from the library's metadata and transforms."""
    zm = zoo_model(arch)
    n = num_classes or _num_outputs(model)
    extra: dict = {"library": zm.library, "library_name": zm.name}
    names: tuple[str, ...] = ()
    try:
        if zm.library == "timm":
            pre = timm_preprocess(model)
            names = timm_class_names(model)
        else:
            w = tv_weights(weights) if weights else _tv_models().get_model_weights(zm.name).DEFAULT
            pre = tv_preprocess(w)
            names = _unique(w.meta.get("categories") or ())
    except Exception as e:  # noqa: BLE001 - a model without library metadata still loads, with ImageNet defaults
        pre = LibraryPreprocess((224, 224), 256, IMAGENET_MEAN, IMAGENET_STD, "bilinear",
                                f"SE Lens ImageNet defaults ({zm.library} metadata unavailable: {type(e).__name__})")
    if len(names) != n:
        names = ()
    extra.update(interpolation=pre.interpolation, resize=pre.resize, preprocessing=pre.source)
    if zm.se_design:
        extra["se_design"] = zm.se_design
    return CheckpointMeta(arch=arch, se_config=_se_dict(zm.se_config), num_classes=n, class_names=names,
                          mean=pre.mean, std=pre.std, input_size=pre.size, provenance=dict(provenance or {}),
                          extra=extra)


def _se_dict(se: SEConfig | None) -> dict | None:
    import json

    return None if se is None else json.loads(se.to_json())


def _num_outputs(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return int(last[-1].out_features) if last else int(getattr(model, "num_classes", 1000))


def _spec(zm: ZooModel) -> ModelSpec:
    return ModelSpec(name=zm.arch, builder=_builder(zm.library, zm.name, zm.site_family), family=zm.family,
                     num_classes=1000, class_names=(), input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     has_se=zm.has_se, takes_se=False, default_se=None, resize=None,
                     weights=(f"{zm.library} pretrained weights from its local cache", "user upload"),
                     description=zm.description, vanilla=zm.vanilla,
                     meta={"library": zm.library, "library_name": zm.name, "site_family": zm.site_family,
                           "se_design": zm.se_design,
                           "library_meta": lambda model, arch=zm.arch: library_meta(arch, model)})


_DYNAMIC_LOCK = threading.Lock()
_DYNAMIC: dict[str, ZooModel] = {}


def zoo_model(arch: str) -> ZooModel:
    """The catalog entry of ``arch``, or one made for a ``timm:<name>`` / ``torchvision:<name>`` arch."""
    if arch in ZOO:
        return ZOO[arch]
    with _DYNAMIC_LOCK:
        if arch in _DYNAMIC:
            return _DYNAMIC[arch]
    lib, _, name = arch.partition(":")
    if lib not in LIBRARY_KINDS or not name:
        raise KeyError(f"{arch!r} is not a library model; use timm:<name> or torchvision:<name>")
    if lib == "timm":
        if not _timm().is_model(name):
            raise KeyError(f"timm has no model {name!r}; see timm.list_models()")
    elif name not in _tv_models().list_models():
        raise KeyError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
    model = _build_library(lib, name, 1000)  # to learn whether it carries SE units
    has_se = any(s.gate for s in find_sites(model))
    zm = ZooModel(arch, lib, name, lib, detect_family(model) or "", has_se,  # type: ignore[arg-type]
                  f"{lib} {name} (named by the user)")
    with _DYNAMIC_LOCK:
        _DYNAMIC[arch] = zm
    return zm


def _resolve_dynamic(arch: str) -> ModelSpec | None:
    """Registry hook: a spec for ``timm:<name>`` / ``torchvision:<name>``, else None."""
    if arch.partition(":")[0] not in LIBRARY_KINDS:
        return None
    return _spec(zoo_model(arch))


for _zm in ZOO.values():
    register(_spec(_zm))
register_resolver(_resolve_dynamic)


def imagenet_pairs() -> list["PairSpec"]:
    """The catalog's pairs as :class:`~se_core.pairs.PairSpec` (called by :mod:`se_core.pairs` to register them)."""
    from se_core.pairs import PairSpec, WeightsRef

    out = []
    for p in ZOO_PAIRS:
        refs = []
        for arch, loc in ((p.se_arch, p.se_weights), (p.vanilla_arch, p.vanilla_weights)):
            zm = ZOO[arch]
            cmd = _timm_command(loc) if zm.library == "timm" else _tv_command(zm.name, loc)
            refs.append(WeightsRef(zm.library, loc, cmd))
        out.append(PairSpec(p.name, p.title, p.se_arch, p.vanilla_arch, refs[0], refs[1], "ImageNet-1k", p.note))
    return out


# --------------------------------------------------------------------------- weights on disk


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment now (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface" / "hub"


def torch_hub_checkpoints() -> Path:
    """``torch.hub.get_dir()/checkpoints``, where torchvision (and timm's URL weights) are cached."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def local_weights_dir() -> Path:
    """``<data dir>/weights``: hand-copied library weight files, by their library file name."""
    from se_core import pairs

    return Path(pairs.DATA_DIR) / "weights"


@dataclass(frozen=True)
class WeightsStatus:
    """Where a library weight file is (``found``), or where it was looked for and how to get it."""

    arch: str
    library: str
    weights: str
    found: Path | None
    expected: tuple[Path, ...]
    command: str
    info: dict

    @property
    def ok(self) -> bool:
        return self.found is not None

    def message(self) -> str:
        """The WeightsMissing text: which file, where to put it, how to download it elsewhere."""
        where = " or ".join(str(p) for p in self.expected)
        repo = self.expected[0]
        folder = next((q for q in repo.parents if q.name.startswith("models--")), None)
        copy = (f"copy the folder {folder.name} into {folder.parent}" if folder is not None
                else f"copy {repo.name} into {repo.parent}")
        return (f"weights for {self.arch} ({self.library} {self.weights}) are not on this machine: expected "
                f"{where}. On a machine with internet access run `{self.command}`, then {copy} here "
                f"(or put the file at {self.expected[-1]}). SE Lens never downloads.")


def _hf_lookup(repo_id: str, filenames: Sequence[str]) -> tuple[Path | None, Path]:
    """(cached file or None, the path it would have) in the HF hub cache, without network."""
    cache = hf_hub_cache()
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    for fn in filenames:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(repo_id, fn, cache_dir=str(cache))
        except Exception:  # noqa: BLE001 - a broken cache is a missing file
            hit = None
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit), Path(hit)
        snaps = sorted((folder / "snapshots").glob(f"*/{fn}"), key=lambda p: p.stat().st_mtime if p.exists() else 0)
        snaps = [p for p in snaps if p.is_file()]
        if snaps:
            return snaps[-1], snaps[-1]
    ref = folder / "refs" / "main"
    rev = ref.read_text().strip() if ref.is_file() else "<revision>"
    return None, folder / "snapshots" / rev / filenames[0]


def weights_status(ref: "WeightsRef", arch: str) -> WeightsStatus:
    """Look for ``ref``'s file in the library cache, then in ``data/weights``; never downloads."""
    zm = zoo_model(arch)
    local = local_weights_dir()
    if ref.kind == "torchvision":
        w = tv_weights(ref.location)
        fname = Path(urlparse(w.url).path).name
        cached = torch_hub_checkpoints() / fname
        expected = (cached, local / fname)
        info = {"url": w.url, "recipe": w.meta.get("recipe", ""),
                "reported_top1": (w.meta.get("_metrics", {}).get("ImageNet-1K", {}) or {}).get("acc@1")}
        command = ref.how_to_get or _tv_command(zm.name, ref.location)
    elif ref.kind == "timm":
        cfg = timm_cfg(ref.location)
        info = {"hf_hub_id": cfg.hf_hub_id or "", "url": cfg.url or "", "license": cfg.license or "",
                "paper": ", ".join(cfg.paper_ids) if isinstance(cfg.paper_ids, (list, tuple)) else (cfg.paper_ids or ""),
                "origin_url": cfg.origin_url or ""}
        command = ref.how_to_get or _timm_command(ref.location)
        if cfg.hf_hub_id:
            names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
            hit, where = _hf_lookup(cfg.hf_hub_id, names)
            localp = local / f"{ref.location}.safetensors"
            if hit is not None:
                return WeightsStatus(arch, "timm", ref.location, hit, (where, localp), command, info)
            expected = (where, localp)
        elif cfg.url:
            fname = Path(urlparse(cfg.url).path).name
            expected = (torch_hub_checkpoints() / fname, local / fname)
        else:
            raise KeyError(f"timm weights {ref.location!r} have neither a hub id nor a URL")
    else:
        raise ValueError(f"not a library weights kind: {ref.kind!r}")
    found = next((p for p in expected if p.is_file()), None)
    return WeightsStatus(arch, zm.library, ref.location, found, expected, command, info)


def expected_path(ref: "WeightsRef") -> Path:
    """The library-cache path of ``ref``'s file (what :meth:`~se_core.pairs.WeightsRef.path` shows)."""
    arch = next((p.se_arch if p.se_weights == ref.location else p.vanilla_arch for p in ZOO_PAIRS
                 if ref.location in (p.se_weights, p.vanilla_weights)), None)
    if arch is None:
        return Path(ref.location)
    st = weights_status(ref, arch)
    return st.found or st.expected[0]


_HASH_OK: dict[tuple[str, int, int], bool] = {}
_HASH_LOCK = threading.Lock()


def verify_hash(path: Path) -> None:
    """Raise :class:`CheckpointError` when ``path``'s SHA-256 does not start with the hex in its name (torch hub rule)."""
    m = torch.hub.HASH_REGEX.search(path.name)
    if not m or not m.group(1):
        return
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if _HASH_OK.get(key):
            return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    if not h.hexdigest().startswith(m.group(1)):
        raise CheckpointError(f"{path} does not match the SHA-256 prefix {m.group(1)} in its name: the file is "
                              "corrupt or truncated; delete it and download it again")
    with _HASH_LOCK:
        _HASH_OK[key] = True


def read_library_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a library weight file: safetensors, or ``torch.load(weights_only=True)`` (zip or legacy format)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return read_checkpoint(path)[0]
    if zipfile.is_zipfile(path):
        _check_zip(path)  # zip-bomb guard; legacy (non-zip) torch.save files go to the same restricted unpickler
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the restricted unpickler refusing is a refusal
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path.name}: refused by torch.load(weights_only=True): {first}") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path.name}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_library_model(ref: "WeightsRef", arch: str, device: torch.device | None = None) -> "LoadedModel":
    """Build ``arch`` (random init), load ``ref``'s cached file into it, attach its sites.

    Raises :class:`~se_core.pairs.WeightsMissing` (file not found: names it and the download
    command) or :class:`CheckpointError` (file unusable: says why, key by key for shapes).
    """
    from se_core.checkpoints import load_into
    from se_core.pairs import LoadedModel, WeightsMissing

    zm = zoo_model(arch)
    status = weights_status(ref, arch)
    if status.found is None:
        raise WeightsMissing(status.message())
    path = status.found
    if ref.kind == "torchvision" and VERIFY_TORCHVISION_HASH:
        verify_hash(path)
    state = read_library_file(path)
    build_name = ref.location if zm.library == "timm" else zm.name
    model = _build_library(zm.library, build_name, 1000)
    load_into(model, state, what=str(path))
    prepare_sites(model, zm.site_family)
    prov = {"source": f"{zm.library} {ref.location}", "file": str(path), "library_version": _version(zm.library),
            **{k: v for k, v in status.info.items() if v not in (None, "")}}
    if "reported_top1" in prov:
        prov["reported_top1"] = f"{prov['reported_top1']} % (torchvision's metadata, not measured here)"
    meta = library_meta(arch, model, ref.location if zm.library == "torchvision" else None, provenance=prov)
    device = device or torch.device("cpu")
    return LoadedModel(arch, model.to(device).eval(), meta, int(meta.extra["resize"]), str(path))


def _version(library: str) -> str:
    if library == "timm":
        return f"timm {_timm().__version__}"
    import torchvision

    return f"torchvision {torchvision.__version__}"


def availability() -> list[dict]:
    """One row per catalog pair and role: model, weights, found file or the missing path and command."""
    from se_core.pairs import PAIRS

    rows = []
    for p in ZOO_PAIRS:
        spec = PAIRS.get(p.name)
        if spec is None:
            continue
        for role, arch, ref in (("SE", spec.se_arch, spec.se_weights), ("vanilla", spec.vanilla_arch, spec.vanilla_weights)):
            try:
                st = weights_status(ref, arch)
                rows.append({"pair": p.name, "role": role, "model": arch, "weights": f"{ref.kind} {ref.location}",
                             "available": st.ok, "file": str(st.found or st.expected[0]),
                             "command": "" if st.ok else st.command, "message": "" if st.ok else st.message(),
                             "recipe": st.info.get("recipe", "") or st.info.get("origin_url", "")})
            except (KeyError, ValueError, ImportError) as e:
                rows.append({"pair": p.name, "role": role, "model": arch, "weights": f"{ref.kind} {ref.location}",
                             "available": False, "file": "", "command": ref.how_to_get,
                             "message": f"cannot resolve {ref.location}: {e}", "recipe": ""})
    return rows


def state_dict_keys_hint(state: dict[str, torch.Tensor], limit: int = 8) -> str:
    """A few keys of a state dict, for messages about files that fit no architecture."""
    keys = list(state)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} keys)" if len(keys) > limit else "")


__all__ = ["ZOO", "ZOO_PAIRS", "ZooModel", "ZooPair", "WeightsStatus", "LibraryPreprocess", "availability",
           "detect_family", "expected_path", "hf_hub_cache", "imagenet_pairs", "library_meta", "load_library_model",
           "local_weights_dir", "model_sites", "prepare_sites", "read_library_file", "timm_class_names",
           "timm_preprocess", "torch_hub_checkpoints", "tv_preprocess", "tv_weights", "vanilla_sites",
           "verify_hash", "weights_status", "zoo_model"]
