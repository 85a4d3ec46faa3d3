"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) in torchvision's single-tower layout, with the net protocol.

The small-input form (``stem="cifar"``) replaces the 11x11 stride-4 first convolution by a 3x3
stride-1 one, so 28x28 and 32x32 images keep enough resolution for the three max-pools; the
adaptive 6x6 pooling before the classifier (torchvision's) then takes any map size.
"""

from torch import nn
from torchvision.models.alexnet import AlexNet as TorchvisionAlexNet

from zoo.models.net import FeaturesClassifierNet, choose_stem, init_weights
from zoo.registry import register_model


class AlexNet(FeaturesClassifierNet, TorchvisionAlexNet):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem: str = "imagenet", init: str = "normal",
                 dropout: float = 0.5) -> None:
        TorchvisionAlexNet.__init__(self, num_classes, dropout=dropout)
        self.init_protocol(num_classes, in_chans, min_size=63 if stem == "imagenet" else 15)
        if stem == "cifar":
            self.features[0] = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1)
        elif in_chans != 3:
            self.features[0] = nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2)
        self.num_features = 256
        init_weights(self, init)


PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks"


@register_model(family="alexnet", paper=PAPER, cam_layer="features", torchvision_weights=True)
def alexnet(
    num_classes: int = 1000,
    in_chans: int = 3,
    image_size: int = 224,
    stem: str | None = None,
    init: str = "normal",
    dropout: float = 0.5,
) -> AlexNet:
    """AlexNet, 61.1M parameters.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width; below 64 the small-input form is used unless `stem` is set.
        stem: ``imagenet`` (11x11/4 first convolution, inputs from 63 up) or ``cifar`` (3x3/1, from 15 up).
        init: weight initialisation: ``normal`` (the paper's N(0, 0.01)), ``he`` or ``xavier``.
        dropout: dropout rate in the classifier.
    """
    return AlexNet(num_classes, in_chans, choose_stem(stem, image_size), init, dropout)


class SmallAlexNet(FeaturesClassifierNet):
    """AlexNet's layers for 28-32 px images: five 3x3 convolutions (three max-pools), three fully connected layers.

    torchvision's single-tower order (conv-pool-conv-pool-conv-conv-conv-pool, then dropout-linear-ReLU twice and
    the final layer) with every convolution 3x3 stride 1, half the convolution widths (32, 96, 192, 128, 128) and a
    quarter of the fully connected ones (1024). No normalization layers, as in the paper (local response
    normalization, which the paper had, is left out as in torchvision). A 28x28 image reaches the head as a 4x4 map
    (the last pool rounds up), which the 4x4 adaptive pooling then leaves as it is.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, init: str = "he", dropout: float = 0.5) -> None:
        super().__init__(num_classes, in_chans, min_size=8)
        a, b, c, d, e = 32, 96, 192, 128, 128
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, a, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(b, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(d, e, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(e * 4 * 4, 1024), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(1024, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, num_classes),
        )
        self.num_features = e
        init_weights(self, init)


@register_model(family="alexnet", paper=f"{PAPER}; small-input form: zoo's (torchvision's layer order, 3x3 "
                "convolutions, half the widths)", cam_layer="features")
def alexnet_s(
    num_classes: int = 10,
    in_chans: int = 1,
    image_size: int = 28,
    init: str = "he",
    dropout: float = 0.5,
) -> SmallAlexNet:
    """AlexNet's small-input form for 28-32 px images, 3.7M parameters (five convolutions, three linear layers).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size from 8 up; made for 28 and 32).
        init: weight initialisation: ``he`` (default: the paper's N(0, 0.01) leaves this BatchNorm-free net at
            chance for many steps), ``xavier`` or ``normal``.
        dropout: dropout rate before the two hidden fully connected layers.
    """
    return SmallAlexNet(num_classes, in_chans, init, dropout)
