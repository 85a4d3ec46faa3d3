"""DataModules by name: ``zoo.data.create("digits")``, ``zoo.data.list_datasets()``."""

from typing import Any

import lightning as L

from zoo.registry import DATASETS, check_arguments, datamodule_arguments, register_datamodule


def create(name: str, **kwargs: Any) -> L.LightningDataModule:
    """The DataModule registered as `name`, built with `kwargs` (an argument it does not take is one error that
    names the closest it does)."""
    cls = DATASETS.get(name)
    check_arguments("dataset", name, datamodule_arguments(cls), kwargs, "zoo data list")
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
