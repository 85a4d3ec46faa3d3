"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998)."""

from torch import nn

from zoo.errors import InputError
from zoo.models.net import FeaturesClassifierNet
from zoo.models.net import activation as make_activation
from zoo.registry import register_model


class LeNet5(FeaturesClassifierNet):
    """C1 conv 5x5 (6) - S2 pool - C3 conv 5x5 (16) - S4 pool - C5 (120) - F6 (84) - output.

    Differences from the paper, as in most modern re-implementations: C3 connects to all six S2
    maps (the paper's sparse table had 1,516 weights, here 2,416), S2/S4 are plain average (or
    max) pooling without the trainable coefficient, and the output is a linear layer instead of
    Euclidean RBF units. C5 reads a 5x5 map as in the paper; inputs larger or smaller than 32x32
    are adaptively pooled to 5x5 first, so the net takes any size from 16x16 up.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        activation: str = "tanh",
        pool: str = "avg",
    ) -> None:
        super().__init__(num_classes, in_chans, min_size=16)
        pools = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
        if pool not in pools:
            raise InputError(f"unknown pool {pool!r}; choose one of: {', '.join(pools)}")
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5),  # C1
            make_activation(activation),
            pools[pool](2),  # S2
            nn.Conv2d(6, 16, kernel_size=5),  # C3
            make_activation(activation),
            pools[pool](2),  # S4
        )
        self.avgpool = nn.AdaptiveAvgPool2d(5)
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5: a 5x5 convolution over a 5x5 map
            make_activation(activation),
            nn.Linear(120, 84),  # F6
            make_activation(activation),
            nn.Linear(84, num_classes),  # output
        )
        self.num_features = 16


@register_model(family="lenet", paper="LeCun et al. 1998, Gradient-based learning applied to "
                "document recognition", cam_layer="features")
def lenet5(
    num_classes: int = 10,
    in_chans: int = 1,
    image_size: int = 32,
    activation: str = "tanh",
    pool: str = "avg",
) -> LeNet5:
    """LeNet-5, about 61.7k parameters at 32x32x1.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size >= 16 works; 32 is the paper's).
        activation: tanh (the paper's squashing function), relu, ...
        pool: avg (the paper's subsampling) or max.
    """
    return LeNet5(num_classes, in_chans, activation, pool)
