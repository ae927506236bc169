"""Residual networks whose blocks carry an SE unit placed by :class:`SEConfig`.

Every block has a ``.se`` child: an SE unit, or ``nn.Identity`` in a vanilla network, so SE and
vanilla models share module names and probe sites line up one to one. The placement logic
(paper Fig. 5 and Table 15) lives once, in :meth:`SEBlockMixin._residual`.

- :class:`CifarResNet`: He et al. 2016 §4.2 ResNet-(6n+2), 16/32/64 channels, shortcut
  option A (parameter-free: stride-2 subsampling plus zero-padded channels), as in the paper
  whose ResNet-20 has 0.27M parameters.
- :func:`se_resnet50`: torchvision's ``resnet50`` with its bottlenecks rebuilt as
  :class:`SEBottleneck` (same submodules and state-dict keys, plus ``.se``), so torchvision
  ResNet-50 weights load into it unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from se_core.nn.se import SEConfig, create_se

if TYPE_CHECKING:
    from torchvision.models import resnet as tv_resnet


def _tv_resnet():
    """torchvision's resnet module, imported on first use: importing torchvision costs ~1 s
    (it pulls in torch._dynamo), which CIFAR-only callers (CLIs, dashboard start-up) skip."""
    from torchvision.models import resnet

    return resnet


def check_stages(se: SEConfig | None, n_stages: int, net: str) -> None:
    """Refuse an SE config naming stages the network lacks (it would silently build a vanilla net)."""
    if se is not None and se.stages is not None and max(se.stages) > n_stages:
        raise ValueError(f"SE stages {se.stages} do not exist in {net}, which has stages 1..{n_stages}")


class SEBlockMixin:
    """Applies ``self.se`` where ``self.integration``/``self.site`` say (Fig. 5, Table 15)."""

    se: nn.Module
    integration: str
    site: str

    def _make_se(self, config: SEConfig | None, stage: int, in_ch: int, out_ch: int, mid_ch: int) -> None:
        carries = config is not None and config.in_stage(stage)
        self.integration = config.integration if carries else "standard"
        self.site = config.site if carries else "output"
        channels = {"pre": in_ch}.get(self.integration, mid_ch if self.site == "3x3" else out_ch)
        self.se = create_se("se" if carries else None, channels, config)
        self.se_channels = channels

    def _residual(self, x: torch.Tensor, branch_head, branch_tail, shortcut, relu) -> torch.Tensor:
        """``branch_head`` runs up to (and incl.) the 3x3 conv's activation, ``branch_tail`` the rest."""
        identity = shortcut(x)
        out = branch_head(self.se(x) if self.integration == "pre" else x)
        if self.site == "3x3":
            out = self.se(out)
        out = branch_tail(out)
        if self.integration == "standard" and self.site == "output":
            out = self.se(out)
        if self.integration == "identity":
            identity = self.se(identity)
        out = relu(out + identity)
        if self.integration == "post":
            out = self.se(out)
        return out


class ShortcutA(nn.Module):
    """He et al. option A: subsample by ``stride`` and zero-pad new channels (no parameters)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x


class BasicBlock(SEBlockMixin, nn.Module):
    """Two 3x3 convs; SE site ``3x3`` means after the first conv+BN+ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, se: SEConfig | None, stage: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = ShortcutA(in_ch, out_ch, stride) if (stride != 1 or in_ch != out_ch) else nn.Identity()
        self._make_se(se, stage, in_ch, out_ch, out_ch)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._residual(x, self._head, self._tail, self.shortcut, self.relu)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; ``se=None`` gives the vanilla network."""

    stage_channels = (16, 32, 64)

    def __init__(self, depth: int = 20, se: SEConfig | None = None, num_classes: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, 110, ...), got {depth}")
        check_stages(se, len(self.stage_channels), f"CIFAR ResNet-{depth}")
        n = (depth - 2) // 6
        self.depth, self.se_config = depth, se
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=False)
        in_ch = 16
        for i, ch in enumerate(self.stage_channels, start=1):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 1 and b == 0) else 1
                blocks.append(BasicBlock(in_ch, ch, stride, se, i))
                in_ch = ch
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SEBottleneck(SEBlockMixin, nn.Module):
    """A torchvision ``Bottleneck`` with an SE unit; keeps its submodules and state-dict keys."""

    def __init__(self, block: tv_resnet.Bottleneck, se: SEConfig | None, stage: int) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu", "downsample"):
            setattr(self, name, getattr(block, name))
        self.stride = block.stride
        width = block.conv1.out_channels
        self._make_se(se, stage, block.conv1.in_channels, block.conv3.out_channels, width)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn3(self.conv3(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._residual(x, self._head, self._tail, self._shortcut, self.relu)


def add_se_to_resnet(model: tv_resnet.ResNet, se: SEConfig | None) -> tv_resnet.ResNet:
    """Rebuild every bottleneck of a torchvision ResNet in place; stage i is ``layer{i}``.

    The paper's conv2_x..conv5_x are ``layer1``..``layer4`` (stages 1..4), so its
    SE_Stage_2/3/4 are ``SEConfig(stages=(1,))``/``(2,)``/``(3,)``.
    """
    check_stages(se, 4, "ResNet-50")
    bottleneck = _tv_resnet().Bottleneck
    for i in range(1, 5):
        layer: nn.Sequential = getattr(model, f"layer{i}")
        for j, block in enumerate(list(layer)):
            if not isinstance(block, bottleneck):
                raise TypeError(f"layer{i}.{j} is {type(block).__name__}, expected torchvision Bottleneck")
            layer[j] = SEBottleneck(block, se, i)
    model.se_config = se
    return model


def resnet50(se: SEConfig | None = None, num_classes: int = 1000) -> tv_resnet.ResNet:
    """torchvision ResNet-50 (random init) with SE placed by ``se`` (``None``: vanilla)."""
    return add_se_to_resnet(_tv_resnet().resnet50(weights=None, num_classes=num_classes), se)


def cifar_resnet(depth: int = 20, se: SEConfig | None = None, num_classes: int = 10) -> CifarResNet:
    """He et al. CIFAR ResNet-``depth`` (``se=None``: vanilla)."""
    return CifarResNet(depth, se, num_classes)
