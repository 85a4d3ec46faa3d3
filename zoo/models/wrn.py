"""Wide ResNet for CIFAR (Zagoruyko & Komodakis 2016): pre-activation basic blocks, widened k times.

WRN-d-k has (d - 4) / 6 blocks in each of three groups of widths 16k, 32k and 64k. Written here
because torchvision has only the ImageNet bottleneck form (``wide_resnet50_2``, in resnet.py).
"""

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.net import ZooNet, add_drop_path, init_weights
from zoo.registry import register_model


class WideBasic(nn.Module):
    """BN-ReLU-Conv3x3-BN-ReLU-(dropout)-Conv3x3, plus the input (a 1x1 convolution where the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        changes = stride != 1 or in_planes != planes
        self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False) if changes else None
        self.drop_path: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(o)  # as the authors' code: shares the pre-activation
        out = F.relu(self.bn2(self.conv1(o)))
        out = F.dropout(out, p=self.drop_rate, training=self.training) if self.drop_rate else out
        return self.drop_path(self.conv2(out)) + shortcut


class WideResNet(ZooNet):
    classifier_name = "fc"
    head_names = ("fc",)

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, init: str = "he", drop_path_rate: float = 0.0) -> None:
        super().__init__(num_classes, in_chans, min_size=4)
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        in_planes = 16
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(WideBasic(in_planes, planes, 2 if i > 0 and j == 0 else 1, drop_rate))
                in_planes = planes
            setattr(self, f"block{i + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()  # a module, so that CAM can hook the final map (forward_features' output)
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes
        add_drop_path([b for group in (self.block1, self.block2, self.block3) for b in group], drop_path_rate)
        init_weights(self, init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.relu(self.bn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.fc(x)


@register_model(family="wide_resnet", paper="Zagoruyko & Komodakis 2016, Wide Residual Networks",
                cam_layer="relu")
def wrn28_10(num_classes: int = 10, in_chans: int = 3, image_size: int = 32, drop_rate: float = 0.0,
             init: str = "he", drop_path_rate: float = 0.0) -> WideResNet:
    """WRN-28-10, 36.5M parameters.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size from 4 up; the paper's is 32).
        drop_rate: dropout between the two convolutions of each block (the paper's best: 0.3).
        init: weight initialisation: ``he`` (the paper's), ``xavier`` or ``normal``.
        drop_path_rate: stochastic depth (not in the paper): the last block's probability of dropping its
            residual branch in training, falling linearly to 0 for the first block.
    """
    return WideResNet(28, 10, num_classes, in_chans, drop_rate, init, drop_path_rate)
