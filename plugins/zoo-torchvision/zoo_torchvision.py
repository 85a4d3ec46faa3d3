"""zoo-torchvision: torchvision's classification models that zoo's core does not have, as ``tv/<name>``.

EfficientNet (v1, v2), MobileNet (v2, v3), ConvNeXt, RegNet, ShuffleNet v2, MNASNet, Inception v3,
ResNeXt-101, Wide ResNet-101, ViT, Swin (v1, v2) and MaxViT. The net is torchvision's own object (its
``state_dict`` keeps torchvision's names, so torchvision's weights load as they are); this plugin
adds zoo's net protocol on top: ``forward_features`` (the last feature map), ``forward_head``,
``reset_classifier``, the backbone/head split and ``cam_layer``. Each entry lists its torchvision
weights with their metadata (``zoo info tv/efficientnet_b0``); ``weights="torchvision:DEFAULT"`` (or a
weights name) loads them, through zoo.finetune like any source.

    >>> import zoo
    >>> model = zoo.create("tv/efficientnet_b0", num_classes=10)   # zoo fit --model tv/efficientnet_b0
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

from zoo import list_models, register_model
from zoo.errors import InputError
from zoo.models.net import ZooNet

NAMESPACE = "tv"
Net = Any  # a torchvision model


@dataclass(frozen=True)
class Layout:
    """How a torchvision class splits into zoo's protocol.

    features: the input to the last feature map; pre_logits: that map to the vector the final layer
    reads; classifier: the final ``nn.Linear``'s module name; head: top-level children after the map.
    """

    features: Callable[[Net, torch.Tensor], torch.Tensor]
    pre_logits: Callable[[Net, torch.Tensor], torch.Tensor]
    classifier: str
    head: tuple[str, ...]
    cam_layer: str | None


def _vit_tokens(net: Net, x: torch.Tensor) -> torch.Tensor:
    x = net._process_input(x)
    return net.encoder(torch.cat([net.class_token.expand(x.shape[0], -1, -1), x], dim=1))


_INCEPTION = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
              "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
              "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")
_RESNET = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_SHUFFLENET = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")


def _chain(names: tuple[str, ...]) -> Callable[[Net, torch.Tensor], torch.Tensor]:
    def run(net: Net, x: torch.Tensor) -> torch.Tensor:
        for name in names:
            x = getattr(net, name)(x)
        return x

    return run


def _chain_list(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


def _pooled(net: Net, x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(net.avgpool(x), 1)


LAYOUTS: dict[type[nn.Module], Layout] = {
    tvm.EfficientNet: Layout(lambda n, x: n.features(x), lambda n, x: n.classifier[0](_pooled(n, x)),
                             "classifier.1", ("avgpool", "classifier"), "features"),
    tvm.MobileNetV2: Layout(lambda n, x: n.features(x), lambda n, x: n.classifier[0](x.mean((2, 3))),
                            "classifier.1", ("classifier",), "features"),
    tvm.MobileNetV3: Layout(lambda n, x: n.features(x), lambda n, x: n.classifier[:-1](_pooled(n, x)),
                            "classifier.3", ("avgpool", "classifier"), "features"),
    tvm.ConvNeXt: Layout(lambda n, x: n.features(x), lambda n, x: n.classifier[:-1](n.avgpool(x)),
                         "classifier.2", ("avgpool", "classifier"), "features"),
    tvm.RegNet: Layout(lambda n, x: n.trunk_output(n.stem(x)), _pooled, "fc", ("avgpool", "fc"), "trunk_output"),
    tvm.ShuffleNetV2: Layout(_chain(_SHUFFLENET), lambda n, x: x.mean((2, 3)), "fc", ("fc",), "conv5"),
    tvm.MNASNet: Layout(lambda n, x: n.layers(x), lambda n, x: n.classifier[0](x.mean((2, 3))),
                        "classifier.1", ("classifier",), "layers"),
    tvm.Inception3: Layout(_chain(_INCEPTION), lambda n, x: n.dropout(_pooled(n, x)), "fc",
                           ("avgpool", "dropout", "fc"), "Mixed_7c"),
    tvm.ResNet: Layout(_chain(_RESNET), _pooled, "fc", ("avgpool", "fc"), "layer4"),
    tvm.VisionTransformer: Layout(_vit_tokens, lambda n, x: n.heads[:-1](x[:, 0]), "heads.head", ("heads",), None),
    tvm.SwinTransformer: Layout(lambda n, x: n.permute(n.norm(n.features(x))), lambda n, x: n.flatten(n.avgpool(x)),
                                "head", ("avgpool", "flatten", "head"), "permute"),
    tvm.MaxVit: Layout(lambda n, x: _chain_list(n.blocks, n.stem(x)), lambda n, x: n.classifier[:-1](x), "classifier.5",
                       ("classifier",), "blocks"),
}


class TorchvisionProtocol:
    """Mixed into a built torchvision net's class: zoo's net protocol, by the class's :class:`Layout`."""

    layout: Layout
    check_input = ZooNet.check_input
    get_classifier = ZooNet.get_classifier
    reset_classifier = ZooNet.reset_classifier
    head_modules = ZooNet.head_modules
    backbone_modules = ZooNet.backbone_modules

    @property
    def classifier_name(self) -> str:
        return self.layout.classifier

    @property
    def head_names(self) -> tuple[str, ...]:
        return self.layout.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layout.features(self, x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.layout.pre_logits(self, x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))



def _protocol_class(cls: type[nn.Module]) -> type[nn.Module]:
    """torchvision's class with the protocol mixed in, importable as ``zoo_torchvision.Zoo<Name>`` (nets pickle)."""
    return globals()[f"Zoo{cls.__name__}"]


for _cls, _layout in LAYOUTS.items():  # one importable class per torchvision class: pickle finds them by name
    globals()[f"Zoo{_cls.__name__}"] = type(f"Zoo{_cls.__name__}", (TorchvisionProtocol, _cls),
                                            {"__module__": __name__, "layout": _layout})


def _set_in_chans(net: nn.Module, in_chans: int) -> None:
    """A first convolution for `in_chans` channels (pretrained kernels are adapted by zoo.finetune when loaded)."""
    name, conv = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None)
    net.set_submodule(name, new)


def _builder(name: str, weights_enum: Any, size: int, min_size: int) -> Callable[..., nn.Module]:
    fixed = name.startswith(("vit_", "maxvit_"))  # position embeddings / window grid fixed by the input size

    def build(
        num_classes: int = 1000,
        in_chans: int = 3,
        image_size: int = size,
    ) -> nn.Module:
        extra: dict[str, Any] = {}
        if fixed and image_size != size:
            if name.startswith("vit_"):
                extra["image_size"] = image_size
            else:
                extra["input_size"] = (image_size, image_size)  # MaxViT
        if name == "inception_v3":
            extra.update(aux_logits=False, init_weights=True)
        try:
            net = tvm.get_model(name, weights=None, num_classes=num_classes, **extra)
        except ValueError as exc:  # MaxViT's window grid, e.g.: an input size the architecture cannot take
            raise InputError(f"torchvision's {name} cannot be built for image_size={image_size}: {exc}") from None
        net.__class__ = _protocol_class(type(net))
        net.pre_logits_features = net.get_classifier().in_features
        # the feature map's width is what the head's first linear layer reads (all layouts: pool, norm, linear)
        net.num_features = next(m for h in net.head_modules() for m in h.modules() if isinstance(m, nn.Linear)
                                ).in_features
        if in_chans != 3:
            _set_in_chans(net, in_chans)
        net.num_classes, net.in_chans = num_classes, in_chans
        net.min_size = image_size if fixed else min_size
        net.cam_layer = net.layout.cam_layer
        return net

    build.__name__ = build.__qualname__ = name
    names = ", ".join(["DEFAULT", *(w.name for w in weights_enum)])
    build.__doc__ = f"""torchvision's ``{name}``, with zoo's net protocol.

    Pretrained weights: ``weights="torchvision:NAME"`` (``--model.weights``) with NAME one of {names};
    downloaded once into TORCH_HOME, read from its cache offline.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width{' (the model is built for it)' if fixed else ''}.
    """
    return build


def _weights_metadata(weights_enum: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for w in weights_enum:
        metrics = next(iter(w.meta.get("_metrics", {}).values()), {})
        out[w.name] = {**metrics, "params": w.meta.get("num_params"), "min_size": w.meta.get("min_size"),
                       "recipe": w.meta.get("recipe"), "url": w.url}
    return out


def register_all() -> None:
    core = set(list_models())
    layouts = {cls.__module__: cls for cls in LAYOUTS}  # each torchvision family has its own module
    for name in tvm.list_models(module=tvm):
        cls = layouts.get(tvm.get_model_builder(name).__module__)
        if name in core or cls is None:
            continue  # zoo has it already, or no layout yet (SqueezeNet: its classifier is a convolution)
        weights_enum = tvm.get_model_weights(name)
        size = weights_enum.DEFAULT.transforms.keywords.get("crop_size", 224)  # what the weights were made for
        register_model(
            _builder(name, weights_enum, size, weights_enum.DEFAULT.meta.get("min_size", (1, 1))[0]),
            name=f"{NAMESPACE}/{name}",
            family=f"{NAMESPACE}/{cls.__name__.lower()}",
            paper="torchvision " + weights_enum.DEFAULT.meta.get("recipe", ""),
            input_size=(3, size, size),
            min_size=None,  # the built net's: from the weights' metadata, or its input size for ViT and MaxViT
            weights=_weights_metadata(weights_enum),
        )


register_all()
