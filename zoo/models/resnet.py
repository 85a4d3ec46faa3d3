"""ResNet (He, Zhang, Ren & Sun 2016): the ImageNet nets of torchvision and the CIFAR nets of section 4.2.

The ImageNet nets (resnet18 ... resnet152, wide_resnet50_2, resnext50_32x4d) are torchvision's own
classes with the net protocol added, so torchvision weights load with ``strict=True`` and give the
same outputs. The CIFAR nets (resnet20 ... resnet110, 6n+2 layers) use the paper's option A
shortcuts: identity, with stride-2 subsampling and zero-padded extra channels, so they add no
parameters and the counts are the paper's Table 6.
"""

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


def _imagenet_resnet(block, layers, num_classes, in_chans, image_size, stem, init, zero_init_residual, drop_path_rate,
                     **kw) -> ResNet:
    return ResNet(block, layers, num_classes, in_chans, choose_stem(stem, image_size), init, zero_init_residual,
                  drop_path_rate=drop_path_rate, **kw)


_ARGS_DOC = """
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


def _register_imagenet(name: str, block, layers: list[int], summary: str, paper: str = HE2016, **kw) -> None:
    def builder(
        num_classes: int = 1000,
        in_chans: int = 3,
        image_size: int = 224,
        stem: str | None = None,
        init: str = "he",
        zero_init_residual: bool = False,
        drop_path_rate: float = 0.0,
    ) -> ResNet:
        return _imagenet_resnet(block, layers, num_classes, in_chans, image_size, stem, init, zero_init_residual,
                                drop_path_rate, **kw)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = summary + "\n" + _ARGS_DOC
    register_model(builder, family="resnet", paper=paper, input_size=(3, 224, 224), min_size=8, cam_layer="layer4")


_register_imagenet("resnet18", BasicBlock, [2, 2, 2, 2], "ResNet-18, 11.7M parameters.")
_register_imagenet("resnet34", BasicBlock, [3, 4, 6, 3], "ResNet-34, 21.8M parameters.")
_register_imagenet("resnet50", Bottleneck, [3, 4, 6, 3], "ResNet-50, 25.6M parameters.")
_register_imagenet("resnet101", Bottleneck, [3, 4, 23, 3], "ResNet-101, 44.5M parameters.")
_register_imagenet("resnet152", Bottleneck, [3, 8, 36, 3], "ResNet-152, 60.2M parameters.")
_register_imagenet("wide_resnet50_2", Bottleneck, [3, 4, 6, 3], "Wide ResNet-50-2, 68.9M parameters.",
                   paper="Zagoruyko & Komodakis 2016, Wide Residual Networks", width_per_group=128)
_register_imagenet("resnext50_32x4d", Bottleneck, [3, 4, 6, 3], "ResNeXt-50 32x4d, 25.0M parameters.",
                   paper="Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks",
                   groups=32, width_per_group=4)


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


def _register_cifar(depth: int, params: str) -> None:
    def builder(
        num_classes: int = 10,
        in_chans: int = 3,
        image_size: int = 32,
        init: str = "he",
        zero_init_residual: bool = False,
        drop_path_rate: float = 0.0,
    ) -> CifarResNet:
        return CifarResNet(depth, num_classes, in_chans, init, zero_init_residual, drop_path_rate)

    name = f"resnet{depth}"
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"""ResNet-{depth} for CIFAR ({depth} layers, option A shortcuts), {params} parameters.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size from 4 up; the paper's is 32).
        init: weight initialisation, ``he`` (the paper's), ``xavier`` or ``normal``.
        zero_init_residual: start each block's last BatchNorm at 0.
        drop_path_rate: stochastic depth: the last block's probability of dropping its residual branch in
            training, falling linearly to 0 for the first block.
    """
    register_model(builder, family="resnet", paper=HE2016 + ", section 4.2", input_size=(3, 32, 32),
                   min_size=4, cam_layer="layer3")


for _depth, _params in ((20, "0.27M"), (32, "0.46M"), (44, "0.66M"), (56, "0.85M"), (110, "1.7M")):
    _register_cifar(_depth, _params)

__all__ = ["CifarResNet", "ResNet"]
