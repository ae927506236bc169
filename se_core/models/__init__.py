"""Model definitions: CIFAR ResNets and torchvision ResNet-50, each with SE placed by SEConfig."""
from se_core.models.resnet import CifarResNet, SEBottleneck, add_se_to_resnet, cifar_resnet, resnet50

__all__ = ["CifarResNet", "SEBottleneck", "add_se_to_resnet", "cifar_resnet", "resnet50"]
