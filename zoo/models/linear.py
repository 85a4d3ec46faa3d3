"""The linear classifier of the classic CNN course: f(x, W) = Wx + b on the flattened pixels."""

import torch
from torch import nn

from zoo.errors import InputError
from zoo.models.net import ZooNet
from zoo.registry import register_model


class FixedSizeNet(ZooNet):
    """A net whose first layer reads every pixel, so it takes one image size only."""

    def __init__(self, num_classes: int, in_chans: int, image_size: int) -> None:
        super().__init__(num_classes, in_chans, min_size=image_size)
        self.image_size = image_size

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise InputError(
                f"{type(self).__name__} was built for {self.image_size}x{self.image_size} images and "
                f"reads every pixel, got {x.shape[-2]}x{x.shape[-1]}; create it with "
                f"image_size={x.shape[-1]} or resize the images"
            )


class Linear(FixedSizeNet):
    """Scores are a linear function of the pixels: ``s = W x + b``.

    The feature map is the image itself, so the backbone is empty and the head is the whole net.
    """

    classifier_name = "fc"
    head_names = ("fc",)

    def __init__(self, num_classes: int = 10, in_chans: int = 3, image_size: int = 32) -> None:
        super().__init__(num_classes, in_chans, image_size)
        self.num_features = in_chans  # the feature map is the image
        self.fc = nn.Linear(self.pre_logits_features, num_classes)

    @property
    def pre_logits_features(self) -> int:
        return self.in_chans * self.image_size * self.image_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(1)
        return x if pre_logits else self.fc(x)


@register_model(family="linear", paper="the linear score function f(x, W) = Wx + b of the classic curriculum")
def linear(num_classes: int = 10, in_chans: int = 3, image_size: int = 32) -> Linear:
    """Linear classifier on flattened pixels.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: height and width of the (square) images; the only size it takes.
    """
    return Linear(num_classes, in_chans, image_size)
