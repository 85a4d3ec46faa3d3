"""VGG (Simonyan & Zisserman 2015): torchvision's nets with the net protocol and a small-input form.

torchvision already pools the last feature map adaptively to 7x7 before the classifier, so any
input from 32x32 up works. The small-input form (``stem="cifar"``) rounds the max-pools up
(``ceil_mode``), so odd sizes such as 28x28 (7 -> 4 -> 2 -> 1) pass all five pools too; the
parameters are the same.
"""

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
        TorchvisionVGG.__init__(self, make_layers(cfgs[CONFIGS[depth]], batch_norm), num_classes, dropout=dropout)
        self.init_protocol(num_classes, in_chans, min_size=32 if stem == "imagenet" else 8)
        if in_chans != 3:
            self.features[0] = nn.Conv2d(in_chans, 64, kernel_size=3, padding=1)
        if stem == "cifar":
            for m in self.features:
                if isinstance(m, nn.MaxPool2d):
                    m.ceil_mode = True
        self.num_features = 512
        init_weights(self, init)


def _register(depth: int, batch_norm: bool) -> None:
    def builder(
        num_classes: int = 1000,
        in_chans: int = 3,
        image_size: int = 224,
        stem: str | None = None,
        init: str = "xavier",
        dropout: float = 0.5,
    ) -> VGG:
        return VGG(depth, batch_norm, num_classes, in_chans, choose_stem(stem, image_size), init, dropout)

    name = f"vgg{depth}{'_bn' if batch_norm else ''}"
    builder.__name__ = builder.__qualname__ = name
    with_bn = " with batch normalization" if batch_norm else ""
    builder.__doc__ = f"""VGG-{depth}{with_bn} (configuration {CONFIGS[depth]}).

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width; below 64 the small-input form is used unless `stem` is set.
        stem: ``imagenet`` (torchvision's layout, inputs from 32 up) or ``cifar`` (ceil-mode pools, from 8 up).
        init: weight initialisation: ``xavier`` (the paper's for training from scratch), ``he`` or ``normal``.
        dropout: dropout rate in the classifier.
    """
    register_model(builder, family="vgg", paper=PAPER, input_size=(3, 224, 224), min_size=8, cam_layer="features")


for _depth in CONFIGS:
    for _bn in (False, True):
        _register(_depth, _bn)
