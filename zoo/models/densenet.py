"""DenseNet (Huang, Liu, van der Maaten & Weinberger 2017), ImageNet and CIFAR forms, one class.

Written here rather than taken from torchvision because torchvision's dense layers always have
the 1x1 bottleneck and its transitions always halve the channels, while the CIFAR DenseNet-40 of
the paper has neither. The module and parameter names are torchvision's, so its DenseNet-121/
161/169/201 weights load with ``strict=True`` and give the same outputs.
"""

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn

from zoo.models.net import ZooNet, choose_stem, init_weights
from zoo.registry import register_model

PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks"


class DenseLayer(nn.Module):
    """BN-ReLU-Conv(3x3) producing `growth_rate` maps; with a bottleneck, BN-ReLU-Conv(1x1) first (DenseNet-B)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int | None, drop_rate: float,
                 memory_efficient: bool) -> None:
        super().__init__()
        width = in_channels
        if bn_size:
            self.norm1 = nn.BatchNorm2d(in_channels)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=False)
            width = bn_size * growth_rate
        self.bottleneck = bool(bn_size)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat(inputs, 1)
        return self.conv1(self.relu1(self.norm1(x))) if self.bottleneck else x

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and self.training and any(t.requires_grad for t in inputs):
            # recompute the concatenation in the backward pass instead of keeping it: memory linear in depth
            x = cp.checkpoint(self._bottleneck, *inputs, use_reentrant=False)
        else:
            x = self._bottleneck(*inputs)
        x = self.conv2(self.relu2(self.norm2(x)))
        return F.dropout(x, p=self.drop_rate, training=self.training) if self.drop_rate else x


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int | None, drop_rate: float,
                 memory_efficient: bool) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate, memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            pool=nn.AvgPool2d(kernel_size=2, stride=2),
        ))


class DenseNet(ZooNet):
    """Stem, dense blocks joined by transitions, a final BatchNorm, ReLU, global pooling and a linear layer.

    Stems: ``imagenet`` is 7x7/2 convolution, BN, ReLU, 3x3/2 max-pool; ``cifar`` a 3x3/1 convolution,
    BN and ReLU without the pool (for the ImageNet nets on small inputs); ``pooled`` the same with the
    3x3/2 max-pool (zoo's small-input forms: the dense blocks start at half the image's size); ``plain``
    the paper's CIFAR stem, one 3x3 convolution alone.
    """

    classifier_name = "classifier"
    head_names = ("classifier",)

    def __init__(self, growth_rate: int, block_config: tuple[int, ...], num_init_features: int,
                 bn_size: int | None = 4, compression: float = 0.5, drop_rate: float = 0.0, num_classes: int = 1000,
                 in_chans: int = 3, stem: str = "imagenet", init: str = "he", memory_efficient: bool = False) -> None:
        halvings = len(block_config) - 1 + (stem == "pooled")  # transitions, and the pooled stem's max-pool
        super().__init__(num_classes, in_chans, min_size=32 if stem == "imagenet" else 2 ** halvings)
        if stem == "imagenet":
            layers = [("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                      ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
                      ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))]
        else:
            layers = [("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=3, stride=1, padding=1, bias=False))]
            if stem in ("cifar", "pooled"):
                layers += [("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True))]
            if stem == "pooled":
                layers += [("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))]
        self.features = nn.Sequential(OrderedDict(layers))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate, memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                out = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out))
                channels = out
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.features.add_module("relu5", nn.ReLU())  # no parameters: torchvision's keys stay; CAM hooks `features`
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels
        init_weights(self, init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.classifier(x)


def imagenet_densenet(
    growth_rate: int,
    block_config: tuple[int, ...],
    num_init_features: int,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    image_size: int = 224,
    stem: str | None = None,
    init: str = "he",
    drop_rate: float = 0.0,
    memory_efficient: bool = False,
) -> DenseNet:
    """An ImageNet DenseNet-BC of `growth_rate`, `block_config` layers per dense block (the variants below fix them).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width; below 64 the small-input stem is used unless `stem` is set.
        stem: ``imagenet`` (7x7/2 convolution + max-pool) or ``cifar`` (3x3/1 convolution, no pool).
        init: weight initialisation: ``he`` (the paper's), ``xavier`` or ``normal``.
        drop_rate: dropout after each dense layer.
        memory_efficient: recompute the concatenations in the backward pass (checkpointing): much less
            memory, somewhat slower.
    """
    return DenseNet(growth_rate, block_config, num_init_features, 4, 0.5, drop_rate, num_classes, in_chans,
                    choose_stem(stem, image_size), init, memory_efficient)


_imagenet_variant = register_model(family="densenet", paper=PAPER, cam_layer="features",
                                   torchvision_weights=True, arguments=imagenet_densenet)


@_imagenet_variant
def densenet121(**kwargs: Any) -> DenseNet:
    """DenseNet-121 (DenseNet-BC, growth rate 32), 8.0M parameters."""
    return imagenet_densenet(32, (6, 12, 24, 16), 64, **kwargs)


@_imagenet_variant
def densenet161(**kwargs: Any) -> DenseNet:
    """DenseNet-161 (DenseNet-BC, growth rate 48), 28.7M parameters."""
    return imagenet_densenet(48, (6, 12, 36, 24), 96, **kwargs)


@_imagenet_variant
def densenet169(**kwargs: Any) -> DenseNet:
    """DenseNet-169 (DenseNet-BC, growth rate 32), 14.1M parameters."""
    return imagenet_densenet(32, (6, 12, 32, 32), 64, **kwargs)


@_imagenet_variant
def densenet201(**kwargs: Any) -> DenseNet:
    """DenseNet-201 (DenseNet-BC, growth rate 32), 20.0M parameters."""
    return imagenet_densenet(32, (6, 12, 48, 32), 64, **kwargs)


_CIFAR_ARGS = """
    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size from 4 up; the paper's is 32).
        init: weight initialisation: ``he`` (the paper's), ``xavier`` or ``normal``.
        drop_rate: dropout after each dense layer (the paper uses 0.2 without data augmentation).
        memory_efficient: recompute the concatenations in the backward pass (checkpointing).
"""


@register_model(family="densenet", paper=PAPER + ", CIFAR (L=40, k=12)", cam_layer="features")
def densenet40(num_classes: int = 10, in_chans: int = 3, image_size: int = 32, init: str = "he",
               drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    return DenseNet(12, (12, 12, 12), 16, None, 1.0, drop_rate, num_classes, in_chans, "plain", init, memory_efficient)


@register_model(family="densenet", paper=PAPER + ", CIFAR DenseNet-BC (L=100, k=12)",
                cam_layer="features")
def densenet_bc100(num_classes: int = 10, in_chans: int = 3, image_size: int = 32, init: str = "he",
                   drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    return DenseNet(12, (16, 16, 16), 24, 4, 0.5, drop_rate, num_classes, in_chans, "plain", init, memory_efficient)


@register_model(family="densenet", paper=PAPER + "; small-input form: zoo's DenseNet-BC (L=40, k=16) with a pooling "
                "stem", cam_layer="features")
def densenet_bc40_s(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, init: str = "he",
                    drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    return DenseNet(16, (6, 6, 6), 32, 4, 0.5, drop_rate, num_classes, in_chans, "pooled", init, memory_efficient)


densenet40.__doc__ = "DenseNet for CIFAR, 40 layers, growth rate 12, no bottleneck or compression, 1.0M parameters.\n"
densenet40.__doc__ += _CIFAR_ARGS
densenet_bc100.__doc__ = "DenseNet-BC for CIFAR, 100 layers, growth rate 12, 0.8M parameters.\n" + _CIFAR_ARGS
densenet_bc40_s.__doc__ = ("DenseNet-BC's small-input form: 40 layers, growth rate 16, a 3x3 convolution and a 3x3/2 "
                           "max-pool before the three dense blocks (so they run at 14, 7 and 4 px on 28x28 images), "
                           "0.31M parameters.\n" + _CIFAR_ARGS.replace("any size from 4 up; the paper's is 32",
                                                                      "any size; made for 28 and 32"))
