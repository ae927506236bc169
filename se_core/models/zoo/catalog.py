"""The ImageNet models and pairs SE Lens knows by name, with the command that fetches each one's weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from se_core.nn.se import SEConfig

Library = Literal["timm", "torchvision"]
LIBRARY_KINDS = ("timm", "torchvision")
PROBE_SIZE = 64
"""Side of the dummy input used once per built model to read site resolutions and channel counts."""
MOBILE_FAMILIES = ("tv_mobilenet", "tv_efficientnet", "tv_mnasnet", "mobile")




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
    """Catalog entry of an ImageNet pair (turned into a :class:`~se_core.models.pairs.PairSpec`)."""

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
