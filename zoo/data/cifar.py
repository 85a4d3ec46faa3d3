"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 50,000 training and 10,000 test 32x32 colour photos.

The python-pickle files are read here (ten lines) rather than through ``torchvision.datasets.CIFAR10``,
which refuses any file whose md5 differs from the published archive's; downloads still go through
torchvision (checksummed).
"""

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import download_and_extract_archive

from zoo.data import register_datamodule
from zoo.data.memory import DownloadedDataModule, resize
from zoo.errors import ZooError


def read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ZooError(f"cannot read {path} ({type(exc).__name__}: {exc}); delete it and download again") from None


class CIFARDataModule(DownloadedDataModule):
    """The CIFAR layout torchvision downloads: ``<data_dir>/<folder>/`` with pickled batches and a meta file."""

    source: type = CIFAR10
    label_key = "labels"
    names_key = "label_names"
    in_chans = 3

    @property
    def folder(self) -> Path:
        return Path(self.data_dir) / self.source.base_folder

    def _files(self) -> list[str]:
        return [name for name, _ in self.source.train_list + self.source.test_list] + [self.source.meta["filename"]]

    def ensure_files(self) -> None:
        missing = [f for f in self._files() if not (self.folder / f).is_file()]
        if not missing:
            return
        reason = "download=False"
        if self.download:
            try:
                download_and_extract_archive(self.source.url, self.data_dir, filename=self.source.filename,
                                             md5=self.source.tgz_md5)
                return
            except Exception as exc:  # offline
                reason = f"it could not be downloaded ({type(exc).__name__}: {exc})"
        raise ZooError(f"{self.source.__name__} is not in {self.folder} and {reason}; put {', '.join(missing)} there "
                       f"(unpack {self.source.url} into {self.data_dir}), or run once with a network")

    def _read(self, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for name in names:
            batch = read_pickle(self.folder / name)
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += list(batch[self.label_key])
        x = torch.from_numpy(np.concatenate(images))
        return resize(x, self.image_size), torch.as_tensor(labels, dtype=torch.long)

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.ensure_files()
        train = self._read([n for n, _ in self.source.train_list])
        test = self._read([n for n, _ in self.source.test_list])
        names = read_pickle(self.folder / self.source.meta["filename"])[self.names_key]
        if list(names) != self.class_names:
            raise ZooError(f"{self.folder} holds other classes than {self.source.__name__}'s: {names[:5]}...")
        return (*train, *test)


_CIFAR100 = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
_CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@register_datamodule("cifar10")
class CIFAR10DataModule(CIFARDataModule):
    """CIFAR-10: 32x32 photos of 10 classes; 50,000 training images (val taken from them), 10,000 test.

    Args:
        data_dir: folder holding ``cifar-10-batches-py`` (torchvision's layout); downloaded there when missing.
        image_size: height and width (32 is the original; resized once, in memory).
        download: download the archive when files are missing.
        batch_size: images per batch.
        val_split: validation images taken from the 50,000 training images.
        augment: ``standard`` by default (pad-4 random crop + horizontal flip).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.memory.ImageDataModule`).
    """

    source = CIFAR10
    num_classes = 10
    class_names = _CIFAR10

    def __init__(self, data_dir: str = "data", image_size: int = 32, download: bool = True, batch_size: int = 128,
                 val_split: int | float = 5000, augment: str = "standard", **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         **kwargs)


@register_datamodule("cifar100")
class CIFAR100DataModule(CIFARDataModule):
    """CIFAR-100: 32x32 photos of 100 fine classes; 50,000 training images (val taken from them), 10,000 test.

    Args:
        data_dir: folder holding ``cifar-100-python`` (torchvision's layout); downloaded there when missing.
        image_size: height and width (32 is the original).
        download: download the archive when files are missing.
        batch_size: images per batch.
        val_split: validation images taken from the 50,000 training images.
        augment: ``standard`` by default (pad-4 random crop + horizontal flip).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.memory.ImageDataModule`).
    """

    source = CIFAR100
    label_key = "fine_labels"
    names_key = "fine_label_names"
    num_classes = 100
    class_names = _CIFAR100

    def __init__(self, data_dir: str = "data", image_size: int = 32, download: bool = True, batch_size: int = 128,
                 val_split: int | float = 5000, augment: str = "standard", **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         **kwargs)
