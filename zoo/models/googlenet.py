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
                cam_layer="inception5b", torchvision_weights=True)
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


# The paper's Table 1, per inception module: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_WIDTHS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


class Inception(nn.Module):
    """The paper's four parallel branches, concatenated: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool then 1x1.

    (torchvision's module, which the ImageNet form keeps for its weights, has a 3x3 kernel in the 5x5 branch.)
    """

    def __init__(self, in_chans: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_chans, c1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_chans, c3r, kernel_size=1), BasicConv2d(c3r, c3, kernel_size=3,
                                                                                           padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_chans, c5r, kernel_size=1), BasicConv2d(c5r, c5, kernel_size=5,
                                                                                           padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), BasicConv2d(in_chans, pool_proj,
                                                                                       kernel_size=1))
        self.out_chans = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class SmallGoogLeNet(ZooNet):
    """GoogLeNet's nine inception modules at a quarter of the paper's widths, with a stem for 28-32 px images.

    Stem: 3x3 convolution, 1x1, 3x3 (the paper's 7x7/2, 1x1, 3x3 with stride 1) and one 3x3/2 max-pool, so a
    28x28 image meets inception 3a-3b at 14x14, 4a-4e at 7x7 and 5a-5b at 4x4 (the paper's 28, 14 and 7 at 224
    px); then global average pooling, dropout and one linear layer. No auxiliary classifiers.
    """

    classifier_name = "fc"
    head_names = ("avgpool", "dropout", "fc")

    def __init__(self, num_classes: int = 10, in_chans: int = 3, init: str = "he", dropout: float = 0.2) -> None:
        super().__init__(num_classes, in_chans, min_size=1)
        self.conv1 = BasicConv2d(in_chans, 16, kernel_size=3, padding=1)
        self.conv2 = BasicConv2d(16, 16, kernel_size=1)
        self.conv3 = BasicConv2d(16, 48, kernel_size=3, padding=1)
        chans = 48
        for name, widths in INCEPTION_WIDTHS.items():
            if name in ("3a", "4a", "5a"):
                self.add_module(f"maxpool{name[0]}", nn.MaxPool2d(3, stride=2, padding=1))
            module = Inception(chans, *(w // 4 for w in widths))
            self.add_module(f"inception{name}", module)
            chans = module.out_chans
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(chans, num_classes)
        self.num_features = chans
        init_weights(self, init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name in self.head_names:
                break
            x = module(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.avgpool(x).flatten(1))
        return x if pre_logits else self.fc(x)


@register_model(family="googlenet", paper="Szegedy et al. 2015, Going Deeper with Convolutions; small-input form: "
                "kuangliu/pytorch-cifar's GoogLeNet at a quarter of the widths, with a pooling stem",
                cam_layer="inception5b")
def googlenet_s(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, init: str = "he",
                dropout: float = 0.2) -> SmallGoogLeNet:
    """GoogLeNet's small-input form: nine inception modules at a quarter of the widths, 0.36M parameters.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width (any size; made for 28 and 32).
        init: weight initialisation: ``he`` (default), ``xavier`` or ``normal``.
        dropout: dropout rate before the classifier.
    """
    return SmallGoogLeNet(num_classes, in_chans, init, dropout)
