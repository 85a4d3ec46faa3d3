"""The net protocol every zoo family implements (borrowed from timm), and the layers families share."""

import math
from typing import Any, ClassVar

import torch
from torch import nn

from zoo.errors import InputError
from zoo.models.stages import _has_parameters, backbone_stages, feature_info, forward_intermediates, module_outputs

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation layer by name (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise InputError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None


class ZooNet(nn.Module):
    """Base of every zoo net: the protocol that classifier, fine-tuning, CAM and kNN rely on.

    - ``forward_features(x)``: the last feature map, ``[N, C, H, W]`` for convolutional nets
      (``[N, D]`` for nets without a spatial map, such as the MLP);
    - ``forward_head(features, pre_logits=False)``: pooling and classifier; with
      ``pre_logits=True`` the vector the final linear layer reads;
    - ``reset_classifier(num_classes)``: a new final layer, the rest kept;
    - ``num_features``, ``num_classes``, ``in_chans``, ``min_size``;
    - ``head_modules()`` / ``backbone_modules()``: the split fine-tuning freezes by;
    - ``feature_info`` and ``forward_intermediates(x, indices)``: the map of every stage, as timm's;
    - optionally ``data_init(images)``: layers set from data (airbench's whitening), given the first training
      batch of a fresh fit by :class:`zoo.ImageClassifier`.

    Subclasses set ``classifier_name`` (the final ``nn.Linear``) and ``head_names`` (the child
    modules after the last feature map) and implement the two ``forward_*`` methods.
    """

    classifier_name: ClassVar[str]
    head_names: ClassVar[tuple[str, ...]]

    def __init__(self, num_classes: int, in_chans: int, min_size: int = 1) -> None:
        super().__init__()
        self.init_protocol(num_classes, in_chans, min_size)

    def init_protocol(self, num_classes: int, in_chans: int, min_size: int = 1) -> None:
        """Set the protocol attributes; for subclasses that initialise through a torchvision class.

        ``class ResNet(ZooNet, torchvision.models.ResNet)`` calls ``torchvision.models.ResNet.__init__``
        (which initialises ``nn.Module``) and then this.
        """
        for what, value in (("num_classes", num_classes), ("in_chans", in_chans)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{what} must be a positive integer, got {value!r}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.min_size = min_size
        self.num_features = getattr(self, "num_features", 0)  # set by the subclass

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    @property
    def feature_info(self) -> Any:
        """timm's ``feature_info``: each stage's channels, reduction and module name
        (:func:`zoo.models.stages.feature_info`)."""
        return feature_info(self)

    def forward_intermediates(self, x: torch.Tensor, indices: Any = None, stop_early: bool = False,
                              intermediates_only: bool = False) -> Any:
        """timm's ``forward_intermediates``: ``(forward_features(x), [the map of each stage in indices])``, or the
        maps alone (:func:`zoo.models.stages.forward_intermediates`)."""
        return forward_intermediates(self, x, indices, stop_early, intermediates_only)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`zoo.ZooError` for an input this net cannot take, before any layer fails."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise InputError(
                f"{type(self).__name__} takes images of shape [N, {self.in_chans}, H, W], got "
                f"{list(x.shape)}; create the model with in_chans={x.shape[1] if x.dim() == 4 else '?'} "
                "or give it images with the channels it was built for"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise InputError(
                f"{type(self).__name__} needs inputs of at least {self.min_size}x{self.min_size} "
                f"pixels, got {x.shape[-2]}x{x.shape[-1]}; resize the images (e.g. image_size="
                f"{self.min_size} for the data)"
            )

    def get_classifier(self) -> nn.Module:
        """The final layer (an ``nn.Linear``, or ``nn.Identity`` after ``reset_classifier(0)``)."""
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with `num_classes` outputs.

        ``num_classes=0`` leaves no final layer: the net then returns its pre-logits features.
        """
        if not isinstance(num_classes, int) or num_classes < 0:
            raise InputError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        old = self.get_classifier()
        new = nn.Linear(self.pre_logits_features, num_classes) if num_classes else nn.Identity()
        if num_classes and isinstance(old, nn.Linear):
            new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        self.set_submodule(self.classifier_name, new)
        self.num_classes = num_classes

    @property
    def pre_logits_features(self) -> int:
        """Width of the vector the final layer reads (``num_features`` unless the head has hidden layers)."""
        return self.num_features

    def head_modules(self) -> list[nn.Module]:
        """The child modules after the last feature map: pooling, hidden classifier layers, final layer."""
        return [m for m in (getattr(self, n, None) for n in self.head_names) if m is not None]

    def backbone_modules(self) -> list[nn.Module]:
        """Every other child module: what produces the feature map.

        Parameters held by the net itself (a ViT's class token in the plugins) belong to the backbone too.
        """
        return [m for n, m in self.named_children() if n not in self.head_names]


class FeaturesClassifierNet(ZooNet):
    """torchvision's plain layout: ``features``, ``avgpool``, then ``classifier`` ending in the final layer.

    LeNet, AlexNet and VGG share it; the pre-logits width is that of the classifier's last hidden layer, or
    ``num_features`` where the final layer reads the pooled map directly.
    """

    head_names = ("avgpool", "classifier")

    @property
    def classifier_name(self) -> str:  # type: ignore[override]
        return f"classifier.{len(self.classifier) - 1}"

    @property
    def pre_logits_features(self) -> int:
        hidden = [m for m in self.classifier[:-1] if isinstance(m, nn.Linear)]
        return hidden[-1].out_features if hidden else self.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[:-1](self.avgpool(x).flatten(1))
        return x if pre_logits else self.classifier[-1](x)


INITS = ("he", "xavier", "normal")
STEMS = ("imagenet", "cifar")
SMALL_INPUT = 64  # images smaller than this get the small-input ("cifar") form


def choose_stem(stem: str | None, image_size: int) -> str:
    """The form of the first layers: `stem` if given, else ``"cifar"`` below 64 pixels, ``"imagenet"`` from 64 up."""
    if stem is None:
        return "cifar" if image_size < SMALL_INPUT else "imagenet"
    if stem not in STEMS:
        raise InputError(f"unknown stem {stem!r}; choose one of: {', '.join(STEMS)} (or leave it unset to choose "
                         f"by image_size: cifar below {SMALL_INPUT} pixels)")
    return stem


def init_weights(net: nn.Module, scheme: str) -> None:
    """Re-initialise every convolution and linear layer; norm layers get weight 1 and bias 0 (batch norms fresh
    running statistics).

    - ``he``: Kaiming normal (He et al. 2015), fan-out for convolutions as in torchvision, fan-in for linear;
    - ``xavier``: Glorot uniform (Glorot & Bengio 2010);
    - ``normal``: N(0, 0.01), as in AlexNet.

    Biases start at 0.
    """
    if scheme not in INITS:
        raise InputError(f"unknown init {scheme!r}; choose one of: {', '.join(INITS)}")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "he":
                mode = "fan_out" if isinstance(m, nn.Conv2d) else "fan_in"
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()


def add_drop_path(blocks: list[nn.Module], rate: float) -> None:
    """Stochastic depth (Huang et al. 2016) on residual blocks, which apply ``self.drop_path`` to their branch.

    Block ``i`` of ``n`` drops its residual branch for a whole sample with probability
    ``rate * i / (n - 1)`` in training (the linear rule, as timm): the first block never, the last with `rate`.
    """
    if not 0.0 <= rate < 1.0:
        raise InputError(f"drop_path_rate must be in [0, 1), got {rate!r}")
    from torchvision.ops import StochasticDepth

    for i, block in enumerate(blocks):
        p = rate * i / max(1, len(blocks) - 1)
        block.drop_path = StochasticDepth(p, "row") if p > 0 else nn.Identity()


# -- stages, and probing one ---------------------------------------------------------------------------


def training_stages(net: nn.Module) -> tuple[list[list[nn.Module]], nn.Module | None]:
    """The stages fine-tuning freezes by, bottom to top, and the final layer, which always trains.

    The stages are :func:`backbone_stages`, plus the head's hidden layers as the top stage where the head
    has some (LeNet's, AlexNet's and VGG's fully connected layers): a linear probe trains the final layer alone.
    """
    stages = backbone_stages(net)
    final = net.get_classifier() if hasattr(net, "get_classifier") else None
    final = final if final is not None and _has_parameters(final) else None
    final_ids = {id(p) for p in final.parameters()} if final is not None else set()
    hidden = [m for m in getattr(net, "head_modules", list)() if any(id(p) not in final_ids for p in m.parameters())]
    return stages + ([hidden] if hidden else []), final


PROBE_FEATURES = 4096  # the most values an earlier stage's pooled map gives a probe


class StageProbe(ZooNet):
    """A net run up to the end of one of its stages, with a linear classifier on that stage's feature map.

    The map is average-pooled to the finest square grid that gives at most ``PROBE_FEATURES`` values (channels
    x g x g), flattened, and read by a new final layer ``fc``: a linear probe of an intermediate layer as Zhang,
    Isola & Efros (2016) made them (they pooled AlexNet's convolution maps to about 9,000 values). The net's
    layers above the stage stay in it (so its weights and checkpoints keep their names) but never run and are
    frozen. Build one with :func:`stage_probe`.
    """

    head_names = ("pool", "fc")
    classifier_name = "fc"

    def __init__(self, net: nn.Module, stage: int, image_size: int) -> None:
        super().__init__(net.num_classes, net.in_chans, getattr(net, "min_size", 1))
        names = {id(m): n for n, m in net.named_modules()}
        self.net, self.stage = net, stage
        self.stage_names = [names[id(m)] for s in training_stages(net)[0][:stage] for m in s]
        kept = {id(p) for n in self.stage_names for p in net.get_submodule(n).parameters()}
        for parameter in net.parameters():
            parameter.requires_grad_(id(parameter) in kept)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            shape = self.forward_features(torch.zeros(1, net.in_chans, image_size, image_size)).shape[1:]
        net.train(was_training)
        if len(shape) == 3:
            grid = max(1, min(shape[1], shape[2], math.isqrt(PROBE_FEATURES // shape[0])))
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(grid)
            self.num_features = shape[0] * grid * grid
        else:
            self.pool = nn.Flatten()
            self.num_features = math.prod(shape)
        self.fc = nn.Linear(self.num_features, net.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the stage's last layer: the net runs until it and stops there."""
        last = self.stage_names[-1]
        found = module_outputs(self.net, x, [last], stop_early=True)[1]
        if last in found:
            return found[last]
        raise InputError(f"{type(self.net).__name__}'s forward_features never ran {last!r}, the last "
                         f"layer of stage {self.stage}; this net cannot be probed by stage")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def backbone_modules(self) -> list[nn.Module]:
        """The net's modules of the stages up to the probed one (what fine-tuning may thaw)."""
        return [self.net.get_submodule(n) for n in self.stage_names]


def stage_probe(net: nn.Module, stage: int, image_size: int) -> nn.Module:
    """`net` with its final layer reading the features of `stage` (1: the bottom one, see :func:`training_stages`).

    The last stage is what the net's own final layer reads: `net` is returned as it is. An earlier one gives a
    :class:`StageProbe`. Raises :class:`zoo.ZooError` for a stage the net does not have, naming the valid ones.
    """
    stages = training_stages(net)[0]
    if isinstance(stage, bool) or not isinstance(stage, int) or not 1 <= stage <= len(stages):
        names = {id(m): n for n, m in net.named_modules()}
        listing = "; ".join(f"{i} ({', '.join(names[id(m)] for m in s)})" for i, s in enumerate(stages, 1))
        raise InputError(f"{type(net).__name__} has no stage {stage!r}; its stages, bottom to top: {listing or 'none'}"
                         f" (the last is what its final layer reads)")
    return net if stage == len(stages) else StageProbe(net, stage, image_size)
