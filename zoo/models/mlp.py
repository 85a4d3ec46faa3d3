"""Multi-layer perceptron on flattened pixels."""

from collections.abc import Sequence

import torch
from torch import nn

from zoo.errors import InputError
from zoo.models.linear import FixedSizeNet
from zoo.models.net import activation as make_activation
from zoo.registry import register_model


class MLP(FixedSizeNet):
    """Fully connected layers, each followed by an activation and dropout, then the classifier.

    ``forward_features`` returns the last hidden layer's output, ``[N, hidden[-1]]``.
    """

    classifier_name = "fc"
    head_names = ("fc",)

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        image_size: int = 32,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_chans, image_size)
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout!r}")
        if any(not isinstance(h, int) or h < 1 for h in hidden):
            raise InputError(f"hidden must be positive layer widths, got {list(hidden)!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_chans * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), make_activation(activation)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)
        self.num_features = width
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)


@register_model(family="mlp", paper="Rumelhart et al. 1986 (back-propagation)")
def mlp(
    num_classes: int = 10,
    in_chans: int = 3,
    image_size: int = 32,
    hidden: list[int] = [256, 128],  # noqa: B006 - shown as a list on the CLI, never mutated
    activation: str = "relu",
    dropout: float = 0.0,
) -> MLP:
    """Multi-layer perceptron on flattened pixels.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: height and width of the (square) images; the only size it takes.
        hidden: widths of the hidden layers, input side first; [] gives the linear classifier.
        activation: relu, tanh, sigmoid, gelu, leaky_relu or elu.
        dropout: dropout rate after each hidden layer.
    """
    return MLP(num_classes, in_chans, image_size, tuple(hidden), activation, dropout)
