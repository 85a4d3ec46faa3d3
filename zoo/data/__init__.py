"""DataModules by name: ``zoo.data.create("digits")``, ``zoo.data.list_datasets()``."""

from collections.abc import Callable
from typing import Any, TypeVar

import lightning as L

from zoo.registry import Registry

DATASETS: Registry[type[L.LightningDataModule]] = Registry("dataset", "zoo data list")

D = TypeVar("D", bound=type[L.LightningDataModule])


def register_datamodule(name: str) -> Callable[[D], D]:
    """Register a LightningDataModule class under `name` (it then works as ``--data NAME``).

    The class should offer ``num_classes``, ``in_chans``, ``image_size`` and ``class_names``
    after ``__init__``: the CLI links them into the model.
    """

    def add(cls: D) -> D:
        DATASETS.add(name, cls)
        return cls

    return add


def create(name: str, **kwargs: Any) -> L.LightningDataModule:
    """The DataModule registered as `name`, built with `kwargs`."""
    return DATASETS.get(name)(**kwargs)


def list_datasets(include: str = "*") -> list[str]:
    """Registered dataset names matching an fnmatch pattern."""
    return DATASETS.names(include)


# each module registers its DataModules
from zoo.data.cifar import CIFAR10DataModule, CIFAR100DataModule  # noqa: E402
from zoo.data.cluttered import ClutteredDigitsDataModule  # noqa: E402
from zoo.data.digits import DigitsDataModule  # noqa: E402
from zoo.data.fake import FakeDataModule  # noqa: E402
from zoo.data.folder import FolderDataModule  # noqa: E402
from zoo.data.memory import ImageDataModule  # noqa: E402
from zoo.data.mnist import FashionMNISTDataModule, MNISTDataModule  # noqa: E402

__all__ = ["DATASETS", "CIFAR10DataModule", "CIFAR100DataModule", "ClutteredDigitsDataModule", "DigitsDataModule",
           "FakeDataModule", "FashionMNISTDataModule", "FolderDataModule", "ImageDataModule", "MNISTDataModule",
           "create", "list_datasets", "register_datamodule"]
