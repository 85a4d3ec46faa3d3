"""VGG (Simonyan & Zisserman 2015): torchvision's nets with the net protocol and a small-input form.

torchvision already pools the last feature map adaptively to 7x7 before the classifier, so any
input from 32x32 up works. The small-input form (``stem="cifar"``) rounds the max-pools up
(``ceil_mode``), so odd sizes such as 28x28 (7 -> 4 -> 2 -> 1) pass all five pools too; the
parameters are the same.
"""

from typing import Any

import torch
from torch import nn
from torchvision.models.vgg import VGG as TorchvisionVGG
from torchvision.models.vgg import cfgs, make_layers

from zoo.models.net import FeaturesClassifierNet, choose_stem, init_weights
from zoo.registry import register_model

PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition"
CONFIGS = {11: "A", 13: "B", 16: "D", 19: "E"}


class VGG(FeaturesClassifierNet, TorchvisionVGG):
    def __init__(self, depth: int, batch_norm: bool = False, num_classes: int = 1000, in_chans: int = 3,
                 stem: str = "imagenet", init: str = "xavier", dropout: float = 0.5) -> None:
        # made on the meta device, then given memory: init_weights below sets every weight, so the layers' own
        # initialisation (1 s for VGG's 120M classifier weights) and torchvision's would be thrown away
        with torch.device("meta"):
            TorchvisionVGG.__init__(self, make_layers(cfgs[CONFIGS[depth]], batch_norm), num_classes,
                                    init_weights=False, dropout=dropout)
        self.to_empty(device=torch.empty(0).device)  # the default device outside (meta where zoo.catalog measures)
        self.init_protocol(num_classes, in_chans, min_size=32 if stem == "imagenet" else 8)
        if in_chans != 3:
            self.features[0] = nn.Conv2d(in_chans, 64, kernel_size=3, padding=1)
        if stem == "cifar":
            for m in self.features:
                if isinstance(m, nn.MaxPool2d):
                    m.ceil_mode = True
        self.num_features = 512
        init_weights(self, init)


def vgg(
    depth: int,
    batch_norm: bool,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    image_size: int = 224,
    stem: str | None = None,
    init: str = "xavier",
    dropout: float = 0.5,
) -> VGG:
    """VGG-`depth` (11, 13, 16 or 19), with or without batch normalization (the variants below fix them).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width; below 64 the small-input form is used unless `stem` is set.
        stem: ``imagenet`` (torchvision's layout, inputs from 32 up) or ``cifar`` (ceil-mode pools, from 8 up).
        init: weight initialisation: ``xavier`` (the paper's for training from scratch), ``he`` or ``normal``.
        dropout: dropout rate in the classifier.
    """
    return VGG(depth, batch_norm, num_classes, in_chans, choose_stem(stem, image_size), init, dropout)


_variant = register_model(family="vgg", paper=PAPER, cam_layer="features", torchvision_weights=True,
                          arguments=vgg)


@_variant
def vgg11(**kwargs: Any) -> VGG:
    """VGG-11 (configuration A)."""
    return vgg(11, False, **kwargs)


@_variant
def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 with batch normalization (configuration A)."""
    return vgg(11, True, **kwargs)


@_variant
def vgg13(**kwargs: Any) -> VGG:
    """VGG-13 (configuration B)."""
    return vgg(13, False, **kwargs)


@_variant
def vgg13_bn(**kwargs: Any) -> VGG:
    """VGG-13 with batch normalization (configuration B)."""
    return vgg(13, True, **kwargs)


@_variant
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (configuration D)."""
    return vgg(16, False, **kwargs)


@_variant
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with batch normalization (configuration D)."""
    return vgg(16, True, **kwargs)


@_variant
def vgg19(**kwargs: Any) -> VGG:
    """VGG-19 (configuration E)."""
    return vgg(19, False, **kwargs)


@_variant
def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19 with batch normalization (configuration E)."""
    return vgg(19, True, **kwargs)


class SmallVGG(FeaturesClassifierNet):
    """VGG-16's thirteen 3x3 convolutions with BatchNorm at a quarter of the widths (16 to 128), for small images.

    The five max-pools round up, so a 28x28 image leaves the last as 1x1 (32x32 too); global average pooling and
    one linear layer follow, as in the CIFAR VGGs of kuangliu/pytorch-cifar, where the ImageNet nets have three
    fully connected layers of 4096.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, init: str = "he") -> None:
        super().__init__(num_classes, in_chans, min_size=1)
        layers: list[nn.Module] = list(make_layers([v if v == "M" else v // 4 for v in cfgs["D"]], batch_norm=True))
        if in_chans != 3:
            layers[0] = nn.Conv2d(in_chans, layers[0].out_channels, kernel_size=3, padding=1)
        for m in layers:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 128
        self.classifier = nn.Sequential(nn.Linear(self.num_features, num_classes))
        init_weights(self, init)


@register_model(family="vgg", paper=f"{PAPER}; small-input form: kuangliu/pytorch-cifar's VGG at a quarter of the "
                "widths", cam_layer="features.42")
def vgg16_bn_s(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, init: str = "he") -> SmallVGG:
    """VGG-16 with batch normalization, small-input form: 13 convolutions of 16-128 channels, 0.92M parameters.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size; made for 28 and 32).
        init: weight initialisation: ``he`` (default, for the BatchNorm net), ``xavier`` or ``normal``.
    """
    return SmallVGG(num_classes, in_chans, init)
