"""This project's own architectures in the registry: CIFAR ResNets (20-110) and torchvision ResNet-50,
each with and without the SE unit of :mod:`se_core.nn.se`."""
from __future__ import annotations

from torch import nn

from se_core.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from se_core.models.registry import Builder, ModelSpec, register
from se_core.nn.resnet import cifar_resnet, resnet50
from se_core.nn.se import SEConfig


def _cifar(depth: int) -> Builder:
    def build(num_classes: int = 10, se: SEConfig | None = None) -> nn.Module:
        return cifar_resnet(depth, se, num_classes)
    return build


def _resnet50(num_classes: int = 1000, se: SEConfig | None = None) -> nn.Module:
    return resnet50(se, num_classes)


for _d in (20, 32, 44, 56, 110):
    for _se in (False, True):
        register(ModelSpec(
            name=f"{'se_' if _se else ''}resnet{_d}_cifar", builder=_cifar(_d), family="cifar_resnet",
            num_classes=10, class_names=CIFAR10_CLASSES, input_size=(32, 32), mean=CIFAR10_MEAN,
            std=CIFAR10_STD, has_se=_se, takes_se=True, default_se=SEConfig() if _se else None,
            weights=("shipped file in data/checkpoints", "user upload"), vanilla=f"resnet{_d}_cifar" if _se else "",
            description=f"He et al. CIFAR ResNet-{_d} (option A shortcuts){', SE r=16 on every block' if _se else ''}"))
for _se in (False, True):
    register(ModelSpec(
        name=f"{'se_' if _se else ''}resnet50_tv", builder=_resnet50, family="resnet50", num_classes=1000,
        class_names=(), input_size=(224, 224), resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, has_se=_se,
        takes_se=True, default_se=SEConfig() if _se else None, weights=("user upload", "torchvision resnet50 weights (vanilla)"),
        vanilla="resnet50_tv" if _se else "",
        description="torchvision ResNet-50 with this project's SE unit" if _se else "torchvision ResNet-50"))
