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


@register_model(family="alexnet", paper="Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional "
                "Neural Networks", min_size=15, cam_layer="features", torchvision_weights=True)
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
