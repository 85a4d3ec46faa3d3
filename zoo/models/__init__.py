"""Plain ``nn.Module`` architectures, one file per family; importing this registers them all.

:func:`create_model` builds one by name, untrained or with pretrained weights (timm's ``create_model``).
"""

from collections.abc import Sequence
from typing import Any

from torch import nn

from zoo.errors import InputError
from zoo.models import airbench, alexnet, densenet, googlenet, knn, lenet, linear, mlp, resnet, vgg, wrn  # noqa: F401  (registration)
from zoo.models.net import ZooNet
from zoo.registry import build_model


def create_model(name: str, weights: str | None = None, pretrained: bool = False, features_only: bool = False,
                 out_indices: int | Sequence[int] | None = None, **kwargs: Any) -> nn.Module:
    """The plain ``nn.Module`` registered as `name`, e.g. ``create_model("mlp", num_classes=10)``.

    Args:
        name: a registered model (``zoo models``).
        weights: pretrained weights to load: ``zoo:TAG`` (zoo's own, ``zoo models --pretrained``), a checkpoint
            (``.ckpt``), a state dict file, ``torchvision:NAME`` or ``timm:NAME`` (see :mod:`zoo.weights`).
        pretrained: load the model's default weights (timm's convention): zoo's own, or for a ``timm/`` or ``tv/``
            net its library's (:func:`zoo.weights.pretrained_source`); ``weights`` names others.
        features_only: the net's stages as a backbone, as timm's: a :class:`zoo.models.stages.FeatureNet` whose
            forward gives the list of the maps of `out_indices` (every stage by default) and whose ``feature_info``
            says their channels and reductions.
        out_indices: with `features_only`, the stages (0 the bottom one; negative from the top; an int n: the top n).
        **kwargs: the builder's arguments (``zoo info NAME``). With zoo's weights, those left out are the
            weights' own (``num_classes``, ``in_chans``, ``image_size``); one given otherwise adapts them: a new
            final layer for other classes, the first convolution summed or repeated for other channels.

    The net records its weights in ``net.pretrained_cfg`` (timm's name; ``weights`` None without): the source, and
    for zoo's weights the normalization (``mean``, ``std``), ``class_names``, input size and test accuracy they come
    with; a net adapted to other classes has no ``class_names`` or ``top1`` of theirs.

    Example:
        >>> net = zoo.create_model("resnet20", pretrained=True)  # doctest: +SKIP
        >>> net.pretrained_cfg["top1"], net.in_chans  # doctest: +SKIP
        (93.90, 1)
    """
    from zoo.pretrained import implied_arguments
    from zoo.weights import load_weights, pretrained_cfg, pretrained_source

    if pretrained and weights is None:
        weights = pretrained_source(name)
    net = build_model(name, **implied_arguments(name, weights, kwargs))
    if weights:
        load_weights(net, weights, name)
    net.pretrained_cfg = pretrained_cfg(name, weights, net)
    if features_only:
        from zoo.models.stages import features_only as stages_of

        return stages_of(net, out_indices)
    if out_indices is not None:
        raise InputError("out_indices chooses the stages of features_only=True; give both, or neither")
    return net


__all__ = ["ZooNet", "create_model"]
