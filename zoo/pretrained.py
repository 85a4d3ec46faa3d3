"""zoo's pretrained weights by name (``zoo:fashion_mnist``): the :class:`Weights` record, its registry, and what a
weight implies for the net and its data. Light: nothing heavy at import, so listing weights loads no PyTorch;
:mod:`zoo.weights` reads the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownNameError, ZooError
from zoo.registry import Registry, default_arguments

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for one registered model.

    Attributes:
        model: the registry name of the net (``resnet20``).
        tag: what they were trained on (``fashion_mnist``); ``zoo:TAG`` names them.
        sha256: the file's SHA-256, checked before every read.
        file: the file, for weights shipped in a package (``.safetensors`` or ``.pth``)...
        url: ...or where to download it (https in practice).
        arguments: the builder arguments the weights fit (``num_classes``, ``in_chans``, ``image_size``).
        meta: as torchvision's ``Weights.meta``: ``dataset`` and ``split``, ``top1``/``top5`` (these weights alone
            on the whole split, %), ``tta`` and ``top1_tta``/``top5_tta`` (with the test-time augmentation the board
            tests with), ``leaderboard_top1``/``leaderboard_top1_std``/``leaderboard_seeds`` (the recipe's board),
            ``recipe`` and ``recipe_command`` (the board entry and seed that re-train them), ``params``, ``gmacs``,
            ``file_size_mb``, ``input_size``, ``mean`` and ``std`` (the normalization the net expects),
            ``class_names``, ``licence``.
    """

    model: str
    tag: str
    sha256: str
    file: str | None = None
    url: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"zoo:{self.tag}"

    @property
    def normalization(self) -> tuple[list[float], list[float]] | None:
        """The (mean, std) the net expects its images normalized with, or None if not recorded."""
        mean, std = self.meta.get("mean"), self.meta.get("std")
        return (list(mean), list(std)) if mean is not None and std is not None else None

    def transforms(self) -> Callable[[Any], torch.Tensor]:
        """The preprocessing these weights expect, as torchvision's ``Weights.transforms()``: a PIL image or an
        image tensor (uint8 0..255 or float 0..1, ``[C, H, W]`` or a batch) to the normalized float tensor the net
        takes: converted to the weights' channels (grey or RGB), resized to their input size, normalized with their
        mean and std.

        Example:
            >>> preprocess = zoo.weights.get_weights("resnet20", "fashion_mnist").transforms()  # doctest: +SKIP
            >>> net(preprocess(PIL.Image.open("shoe.png")).unsqueeze(0))  # doctest: +SKIP
        """
        import torch
        from torchvision.transforms import v2

        size = self.arguments.get("image_size", 224)
        channels, height, width = self.meta.get("input_size") or (self.arguments.get("in_chans", 3), size, size)
        steps: list[Any] = [v2.ToImage(), v2.Grayscale(1) if channels == 1 else v2.RGB(),
                            v2.Resize((height, width), antialias=True), v2.ToDtype(torch.float32, scale=True)]
        if self.normalization is not None:
            steps.append(v2.Normalize(*self.normalization))
        return v2.Compose(steps)


WEIGHTS: Registry[Weights] = Registry("weights", "zoo models --pretrained", "zoo.weights")


def register_weights(weights: Weights) -> Weights:
    """Make `weights` loadable as ``zoo:TAG`` for its model (plugins call this when imported)."""
    if (weights.file is None) == (weights.url is None):
        raise ZooError(f"weights {weights.model}:{weights.tag} need exactly one of file and url")
    WEIGHTS.add(f"{weights.model}:{weights.tag}", weights)
    return weights


def list_weights(model: str | None = None) -> list[Weights]:
    """zoo's registered weights, of one model or of all, sorted by model and tag."""
    return [WEIGHTS.get(key) for key in WEIGHTS.names() if model is None or key.split(":")[0] == model]


def get_weights(model: str, tag: str) -> Weights:
    """The weights ``zoo:TAG`` of `model`; an error lists the ones that exist."""
    try:
        return WEIGHTS.get(f"{model}:{tag}")
    except UnknownNameError:
        have = [w.name for w in list_weights(model)]
        listed = f"{model} has: {', '.join(have)}" if have else (
            f"{model} has none; models with zoo weights: "
            f"{', '.join(sorted({w.model for w in list_weights()})) or 'none (pip install -e plugins/zoo-weights)'}")
        raise UnknownNameError(f"unknown weights 'zoo:{tag}' for {model!r}; {listed} (see: zoo models --pretrained)"
                               ) from None


# -- what a weight implies: the one place that decides it --------------------------------------------------------


def zoo_weights(model: str, source: str | None) -> Weights | None:
    """The :class:`Weights` that `source` names (``zoo:TAG``) for `model`; None for other sources or none."""
    if not isinstance(source, str) or not source.startswith("zoo:"):
        return None
    return get_weights(model, source.removeprefix("zoo:"))


def implied_arguments(model: str, source: str | Weights | None,
                      given: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """The builder arguments to make `model` with for the weights `source` (a name, or zoo's :class:`Weights`
    record itself): each of `given` that is not None, else
    what zoo's weights were made with (classes, channels, image size and the net's own arguments: the converged
    LeNet-5's ReLU), else the net's own ``num_classes``, ``in_chans`` and ``image_size``. Arguments none of them
    sets are left out (the builder's defaults). Other sources (a checkpoint, torchvision's, timm's) record no
    arguments: only `given` and the net's defaults count.

    :func:`zoo.create_model`, :class:`zoo.ImageClassifier` and ``zoo fit`` (for the data's image size) ask this
    function; none decides on its own.
    """
    made = source if isinstance(source, Weights) else zoo_weights(model, source)
    decided = {**default_arguments(model), **(made.arguments if made is not None else {})}
    decided |= {key: value for key, value in given.items() if value is not None}
    return {key: value for key, value in decided.items() if value is not None}
