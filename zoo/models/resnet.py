"""ResNet (He, Zhang, Ren & Sun 2016): the ImageNet nets of torchvision and the CIFAR nets of section 4.2.

The ImageNet nets (resnet18 ... resnet152, wide_resnet50_2, resnext50_32x4d) are torchvision's own
classes with the net protocol added, so torchvision weights load with ``strict=True`` and give the
same outputs. The CIFAR nets (resnet20 ... resnet110, 6n+2 layers) use the paper's option A
shortcuts: identity, with stride-2 subsampling and zero-padded extra channels, so they add no
parameters and the counts are the paper's Table 6.
"""

from typing import Any

import torch
import torch.nn.functional as F
import torchvision.models.resnet as tv
from torch import nn

from zoo.models.net import ZooNet, add_drop_path, choose_stem, init_weights
from zoo.registry import register_model

HE2016 = "He et al. 2016, Deep Residual Learning for Image Recognition"


class BasicBlock(tv.BasicBlock):
    """torchvision's basic block with stochastic depth on the residual branch (``drop_path``)."""

    drop_path: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(self.drop_path(out) + identity)


class Bottleneck(tv.Bottleneck):
    """torchvision's bottleneck block with stochastic depth on the residual branch (``drop_path``)."""

    drop_path: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        return self.relu(self.drop_path(out) + identity)


class ResNet(ZooNet, tv.ResNet):
    """torchvision's ResNet with the net protocol, any ``in_chans``, and a small-input stem.

    ``stem="cifar"`` replaces the 7x7 stride-2 convolution and the max-pool by one 3x3 stride-1
    convolution, so a 32x32 image reaches ``layer4`` as a 4x4 map instead of 1x1.
    """

    classifier_name = "fc"
    head_names = ("avgpool", "fc")

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        init: str = "he",
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        drop_path_rate: float = 0.0,
    ) -> None:
        tv.ResNet.__init__(self, block, layers, num_classes=num_classes, groups=groups, width_per_group=width_per_group)
        self.init_protocol(num_classes, in_chans, min_size=32 if stem == "imagenet" else 8)
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif in_chans != 3:
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.num_features = 512 * block.expansion
        add_drop_path([b for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for b in layer],
                      drop_path_rate)
        init_weights(self, init)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, tv.Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, tv.BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.fc(x)


def imagenet_resnet(
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    groups: int = 1,
    width_per_group: int = 64,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    image_size: int = 224,
    stem: str | None = None,
    init: str = "he",
    zero_init_residual: bool = False,
    drop_path_rate: float = 0.0,
) -> ResNet:
    """An ImageNet ResNet of `layers` `block`s per stage (the variants below fix the architecture).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width; below 64 the small-input stem is used unless `stem` is set.
        stem: ``imagenet`` (7x7/2 convolution + max-pool) or ``cifar`` (3x3/1 convolution); unset: by image_size.
        init: weight initialisation, ``he`` (the paper's), ``xavier`` or ``normal``.
        zero_init_residual: start each residual branch's last BatchNorm at 0, so each block starts as identity.
        drop_path_rate: stochastic depth: the last block's probability of dropping its residual branch in
            training, falling linearly to 0 for the first block.
    """
    return ResNet(block, layers, num_classes, in_chans, choose_stem(stem, image_size), init, zero_init_residual,
                  groups, width_per_group, drop_path_rate)


_imagenet_variant = register_model(family="resnet", paper=HE2016, cam_layer="layer4",
                                   torchvision_weights=True, arguments=imagenet_resnet)


@_imagenet_variant
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18, 11.7M parameters."""
    return imagenet_resnet(BasicBlock, [2, 2, 2, 2], **kwargs)


@_imagenet_variant
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34, 21.8M parameters."""
    return imagenet_resnet(BasicBlock, [3, 4, 6, 3], **kwargs)


@_imagenet_variant
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50, 25.6M parameters."""
    return imagenet_resnet(Bottleneck, [3, 4, 6, 3], **kwargs)


@_imagenet_variant
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101, 44.5M parameters."""
    return imagenet_resnet(Bottleneck, [3, 4, 23, 3], **kwargs)


@_imagenet_variant
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152, 60.2M parameters."""
    return imagenet_resnet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model(family="resnet", paper="Zagoruyko & Komodakis 2016, Wide Residual Networks",
                cam_layer="layer4", torchvision_weights=True, arguments=imagenet_resnet)
def wide_resnet50_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-50-2, 68.9M parameters."""
    return imagenet_resnet(Bottleneck, [3, 4, 6, 3], width_per_group=128, **kwargs)


@register_model(family="resnet", paper="Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks",
                cam_layer="layer4", torchvision_weights=True, arguments=imagenet_resnet)
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d, 25.0M parameters."""
    return imagenet_resnet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


# -- CIFAR ResNets (section 4.2) ----------------------------------------------------------------


class ShortcutA(nn.Module):
    """Option A: identity; where the block halves the map, subsample by 2 and zero-pad the new channels."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class CifarBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        changes = stride != 1 or inplanes != planes
        self.shortcut = ShortcutA(planes - inplanes) if changes else nn.Identity()
        self.drop_path: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.drop_path(self.bn2(self.conv2(out))) + self.shortcut(x))


class CifarResNet(ZooNet):
    """6n+2 layers: a 3x3 convolution (16), three stages of n basic blocks (16, 32, 64), pool, linear."""

    classifier_name = "fc"
    head_names = ("avgpool", "fc")

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3, init: str = "he",
                 zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> None:
        super().__init__(num_classes, in_chans, min_size=4)
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        widths, inplanes = (16, 32, 64), 16
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(CifarBasicBlock(inplanes, planes, stride=2 if i > 0 and j == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self.num_features = 64
        add_drop_path([b for layer in (self.layer1, self.layer2, self.layer3) for b in layer], drop_path_rate)
        init_weights(self, init)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, CifarBasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.fc(x)


def cifar_resnet(
    depth: int,
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    image_size: int = 32,
    init: str = "he",
    zero_init_residual: bool = False,
    drop_path_rate: float = 0.0,
) -> CifarResNet:
    """A CIFAR ResNet of `depth` = 6n+2 layers (the variants below fix it).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size from 4 up; the paper's is 32).
        init: weight initialisation, ``he`` (the paper's), ``xavier`` or ``normal``.
        zero_init_residual: start each block's last BatchNorm at 0.
        drop_path_rate: stochastic depth: the last block's probability of dropping its residual branch in
            training, falling linearly to 0 for the first block.
    """
    return CifarResNet(depth, num_classes, in_chans, init, zero_init_residual, drop_path_rate)


_cifar_variant = register_model(family="resnet", paper=HE2016 + ", section 4.2", cam_layer="layer3",
                                arguments=cifar_resnet)


@_cifar_variant
def resnet20(**kwargs: Any) -> CifarResNet:
    """ResNet-20 for CIFAR (20 layers, option A shortcuts), 0.27M parameters."""
    return cifar_resnet(20, **kwargs)


@_cifar_variant
def resnet32(**kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR (32 layers, option A shortcuts), 0.46M parameters."""
    return cifar_resnet(32, **kwargs)


@_cifar_variant
def resnet44(**kwargs: Any) -> CifarResNet:
    """ResNet-44 for CIFAR (44 layers, option A shortcuts), 0.66M parameters."""
    return cifar_resnet(44, **kwargs)


@_cifar_variant
def resnet56(**kwargs: Any) -> CifarResNet:
    """ResNet-56 for CIFAR (56 layers, option A shortcuts), 0.85M parameters."""
    return cifar_resnet(56, **kwargs)


@_cifar_variant
def resnet110(**kwargs: Any) -> CifarResNet:
    """ResNet-110 for CIFAR (110 layers, option A shortcuts), 1.7M parameters."""
    return cifar_resnet(110, **kwargs)


__all__ = ["CifarResNet", "ResNet", "cifar_resnet", "imagenet_resnet"]
