"""DataModules by name: ``zoo.data.create("digits")``, ``zoo.data.list_datasets()``."""

from typing import Any

import lightning as L

from zoo.pretrained import Weights, implied_arguments
from zoo.registry import DATASETS, check_arguments, datamodule_arguments, register_datamodule


def create(name: str, weights: Weights | None = None, **kwargs: Any) -> L.LightningDataModule:
    """The DataModule registered as `name`, built with `kwargs` (an argument it does not take is one error that
    names the closest it does).

    With zoo's `weights` (a :class:`zoo.weights.Weights`, e.g. ``zoo.weights.get_weights("lenet5",
    "fashion_mnist")``) the data is made as they expect, as torchvision's ``weights.transforms()`` prepares an
    image: resized to their image size (:func:`zoo.pretrained.implied_arguments` decides it, as for the net) and
    normalized with their mean and std, unless `kwargs` give ``image_size`` or ``normalize``.
    """
    cls = DATASETS.get(name)
    takes = datamodule_arguments(cls)
    check_arguments("dataset", name, takes, kwargs, "zoo data list")
    if weights is not None:
        if "image_size" in takes:
            given = {"image_size": kwargs.get("image_size")}
            kwargs["image_size"] = implied_arguments(weights.model, weights, given)["image_size"]
        if "normalize" in takes and kwargs.get("normalize") is None and weights.normalization is not None:
            kwargs["normalize"] = weights.normalization
    return cls(**kwargs)


def list_datasets(include: str = "*") -> list[str]:
    """Registered dataset names matching an fnmatch pattern."""
    return DATASETS.names(include)


# each module registers its DataModules
from zoo.data.base import ImageDataModule  # noqa: E402
from zoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule  # noqa: E402
from zoo.data.cluttered import ClutteredDigitsDataModule  # noqa: E402
from zoo.data.digits import DigitsDataModule  # noqa: E402
from zoo.data.fake import FakeDataModule  # noqa: E402
from zoo.data.folder import FolderDataModule  # noqa: E402
from zoo.data.mnist import FashionMNISTDataModule, MNISTDataModule  # noqa: E402

__all__ = ["DATASETS", "CIFAR10DataModule", "CIFAR100DataModule", "ClutteredDigitsDataModule", "DigitsDataModule",
           "FakeDataModule", "FashionMNISTDataModule", "FolderDataModule", "ImageDataModule", "MNISTDataModule",
           "create", "list_datasets", "register_datamodule"]
