"""MNIST and Fashion-MNIST through torchvision: 60,000 training and 10,000 test 28x28 grey images."""

import gzip
import shutil
from pathlib import Path
from typing import Any

import torch
from torchvision import datasets

from zoo.data import register_datamodule
from zoo.data.memory import DownloadedDataModule, resize
from zoo.errors import ZooError


def torchvision_split(cls: type, data_dir: str, train: bool, download: bool, folder: Path, files: list[str],
                      source: str) -> Any:
    """A torchvision dataset from `data_dir`, downloaded when missing if allowed; else a ZooError: what to put where."""
    try:
        return cls(data_dir, train=train, download=False)
    except RuntimeError:
        pass
    if download:
        try:
            return cls(data_dir, train=train, download=True)
        except Exception as exc:  # offline: URLError, timeouts, a mirror's HTTP error
            reason = f"it could not be downloaded ({type(exc).__name__}: {exc})"
    else:
        reason = "download=False"
    raise ZooError(f"{cls.__name__} is not in {folder} and {reason}; put these files there: {', '.join(files)} "
                   f"(from {source}), or run once with a network")


class MNISTLikeDataModule(DownloadedDataModule):
    """The idx-format datasets torchvision reads from ``<data_dir>/<Name>/raw`` (``.gz`` files are unpacked)."""

    dataset: type = datasets.MNIST
    num_classes = 10
    in_chans = 1

    @property
    def raw_folder(self) -> Path:
        return Path(self.data_dir) / self.dataset.__name__ / "raw"

    def _unpack(self) -> None:
        """torchvision reads the unpacked idx files; users often drop the published ``.gz`` files."""
        for packed in self.raw_folder.glob("*.gz"):
            target = packed.with_suffix("")
            if not target.exists():
                with gzip.open(packed, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)

    def ensure_files(self) -> None:
        self._splits()

    def _splits(self) -> list[Any]:
        """torchvision's training and test datasets, after unpacking or downloading what is missing."""
        self._unpack()
        files = [name for name, _ in self.dataset.resources]
        source = self.dataset.mirrors[0]
        return [torchvision_split(self.dataset, self.data_dir, train, self.download, self.raw_folder, files, source)
                for train in (True, False)]

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        train, test = self._splits()
        return (resize(train.data[:, None], self.image_size), train.targets.long(),
                resize(test.data[:, None], self.image_size), test.targets.long())


@register_datamodule("mnist")
class MNISTDataModule(MNISTLikeDataModule):
    """MNIST (LeCun et al. 1998): handwritten digits; 60,000 training images (val taken from them), 10,000 test.

    Args:
        data_dir: folder holding ``MNIST/raw`` (torchvision's layout); downloaded there when missing.
        image_size: height and width (28 is the original; resized once, in memory).
        download: download the files when they are missing.
        batch_size: images per batch.
        val_split: validation images taken from the 60,000 training images.
        augment: ``crop`` by default (shifts, no flip: a mirrored digit is another shape).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.memory.ImageDataModule`).
    """

    dataset = datasets.MNIST
    class_names = [str(d) for d in range(10)]

    def __init__(self, data_dir: str = "data", image_size: int = 28, download: bool = True, batch_size: int = 128,
                 val_split: int | float = 5000, augment: str = "crop", **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         **kwargs)


@register_datamodule("fashion_mnist")
class FashionMNISTDataModule(MNISTLikeDataModule):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 clothing photos in 10 classes; 60,000 training, 10,000 test.

    Args:
        data_dir: folder holding ``FashionMNIST/raw`` (torchvision's layout); downloaded there when missing.
        image_size: height and width (28 is the original).
        download: download the files when they are missing.
        batch_size: images per batch.
        val_split: validation images taken from the 60,000 training images.
        augment: ``standard`` by default (shifts and left-right flips).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.memory.ImageDataModule`).
    """

    dataset = datasets.FashionMNIST
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]

    def __init__(self, data_dir: str = "data", image_size: int = 28, download: bool = True, batch_size: int = 128,
                 val_split: int | float = 5000, augment: str = "standard", **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         **kwargs)
