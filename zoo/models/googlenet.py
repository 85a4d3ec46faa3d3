"""GoogLeNet / Inception v1 (Szegedy et al. 2015): torchvision's net with the net protocol.

torchvision's layout (batch-normalized convolutions) and names, so its weights load unchanged.
With ``aux_logits=True`` the two auxiliary classifiers are built and, in training mode only, the
net returns ``(logits, aux1, aux2)``; ImageClassifier adds their losses with weight 0.3, as the
paper does. In eval mode the net returns only the logits.

The small-input form (``stem="cifar"``) makes the first convolution 3x3 stride 1 and drops the two
max-pools before the inception blocks, so a 32x32 image reaches inception5 as an 8x8 map.
"""

import torch
from torch import nn
from torchvision.models.googlenet import BasicConv2d
from torchvision.models.googlenet import GoogLeNet as TorchvisionGoogLeNet

from zoo.models.net import ZooNet, choose_stem, init_weights
from zoo.registry import register_model


class GoogLeNet(ZooNet, TorchvisionGoogLeNet):
    classifier_name = "fc"
    head_names = ("avgpool", "dropout", "fc", "aux1", "aux2")

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem: str = "imagenet", init: str = "normal",
                 aux_logits: bool = False, dropout: float = 0.2) -> None:
        TorchvisionGoogLeNet.__init__(self, num_classes, aux_logits=aux_logits, transform_input=False,
                                      init_weights=False, dropout=dropout)
        self.init_protocol(num_classes, in_chans, min_size=32 if stem == "imagenet" else 8)
        if stem == "cifar":
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
            self.maxpool2 = nn.Identity()
        elif in_chans != 3:
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.num_features = 1024
        init_weights(self, init)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        aux = self.aux_logits and self.training
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if aux else None
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x)), aux1, aux2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.avgpool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits; in training mode with ``aux_logits``, ``(logits, aux1, aux2)``."""
        self.check_input(x)
        features, aux1, aux2 = self._features(x)
        logits = self.forward_head(features)
        return logits if aux1 is None else (logits, aux1, aux2)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = nn.Linear(aux.fc2.in_features, max(num_classes, 1)).to(aux.fc2.weight.device)


@register_model(family="googlenet", paper="Szegedy et al. 2015, Going Deeper with Convolutions",
                min_size=8, cam_layer="inception5b", torchvision_weights=True)
def googlenet(
    num_classes: int = 1000,
    in_chans: int = 3,
    image_size: int = 224,
    stem: str | None = None,
    init: str = "normal",
    aux_logits: bool = False,
    dropout: float = 0.2,
) -> GoogLeNet:
    """GoogLeNet (Inception v1), 6.6M parameters without the auxiliary classifiers.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width; below 64 the small-input form is used unless `stem` is set.
        stem: ``imagenet`` (7x7/2 convolution and two max-pools) or ``cifar`` (3x3/1 convolution, no max-pools).
        init: weight initialisation: ``normal`` (torchvision's N(0, 0.01)), ``he`` or ``xavier``.
        aux_logits: build the two auxiliary classifiers (used in training only, loss weight 0.3).
        dropout: dropout rate before the classifier.
    """
    return GoogLeNet(num_classes, in_chans, choose_stem(stem, image_size), init, aux_logits, dropout)
