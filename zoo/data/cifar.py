"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 50,000 training and 10,000 test 32x32 colour photos.

The python-pickle files are read here rather than through ``torchvision.datasets.CIFAR10``, which
unpickles them with plain ``pickle.load``: a pickle can run any code, so a planted ``data_batch_1`` would
run it. zoo checks each file's md5 against the published one first (``verify=False`` skips that, for
files you made yourself), then unpickles with an unpickler that builds only what the format holds
(dicts, lists, str, bytes, numbers and numpy arrays). Downloads still go through torchvision (checksummed).
"""

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import download_and_extract_archive

from zoo.data.base import DownloadedDataModule, resize, undone_on_failure
from zoo.errors import InputError, ZooError
from zoo.registry import register_datamodule


class FormatUnpickler(pickle.Unpickler):
    """Builds only the objects of CIFAR's format: containers and numpy arrays; any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no CIFAR file holds")


def read_pickle(path: Path, md5: str | None = None) -> dict:
    """A CIFAR pickle's dict: its md5 checked first when given, then unpickled by :class:`FormatUnpickler`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path} ({type(exc).__name__}: {exc})") from None
    if md5 is not None and hashlib.md5(raw).hexdigest() != md5:
        raise InputError(f"{path} is not the published file (md5 {hashlib.md5(raw).hexdigest()}, published {md5}); "
                         "delete it and download again, or give verify=False (--data.verify false) for files you "
                         "made yourself")
    try:
        content = FormatUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... from a foreign or damaged file
        raise InputError(f"{path} is not a CIFAR file: {exc}; delete it and download again") from None
    if not isinstance(content, dict):
        raise InputError(f"{path} is not a CIFAR file: it holds a {type(content).__name__}, not a dict; "
                         "delete it and download again")
    return content


class CIFARDataModule(DownloadedDataModule):
    """The CIFAR layout torchvision downloads: ``<data_dir>/<folder>/`` with pickled batches and a meta file.

    CIFAR-10 and CIFAR-100 take the same arguments; their own docstrings document them.
    """

    source: type = CIFAR10
    label_key = "labels"
    names_key = "label_names"
    in_chans = 3
    native_size = 32

    def __init__(self, data_dir: str = "data", image_size: int | None = None, download: bool = True,
                 verify: bool = True, batch_size: int = 128, val_split: int | float = 5000, augment: str = "standard",
                 **kwargs: Any) -> None:
        self.verify = verify
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         **kwargs)
        self.hparams["verify"] = verify  # beside the common arguments: a checkpoint makes the same data

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
                with undone_on_failure(self.data_dir):
                    download_and_extract_archive(self.source.url, self.data_dir, filename=self.source.filename,
                                                 md5=self.source.tgz_md5)
                return
            except Exception as exc:  # offline
                reason = f"it could not be downloaded ({type(exc).__name__}: {exc})"
        raise ZooError(f"{self.source.__name__} is not in {self.folder} and {reason}; put {', '.join(missing)} there "
                       f"(unpack {self.source.url} into {self.data_dir}), or run once with a network")

    def _read(self, files: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for name, md5 in files:
            path = self.folder / name
            batch = read_pickle(path, md5 if self.verify else None)
            data, targets = batch.get("data"), batch.get(self.label_key)
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or \
                    data.shape[1] != 3 * 32 * 32 or not isinstance(targets, list) or len(targets) != len(data) or \
                    not all(isinstance(t, (int, np.integer)) and 0 <= t < self.num_classes for t in targets):
                raise InputError(f"{path} is not a {self.source.__name__} batch (a dict with 'data', N x 3072 uint8, "
                                 f"and '{self.label_key}', N labels below {self.num_classes}); delete it and "
                                 "download again")
            images.append(data.reshape(-1, 3, 32, 32))
            labels += [int(t) for t in targets]
        x = torch.from_numpy(np.concatenate(images))
        return resize(x, self.image_size), torch.as_tensor(labels, dtype=torch.long)

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.ensure_files()
        train = self._read(self.source.train_list)
        test = self._read(self.source.test_list)
        meta = self.source.meta
        names = read_pickle(self.folder / meta["filename"], meta["md5"] if self.verify else None).get(self.names_key)
        if names is None or list(names) != self.class_names:
            raise ZooError(f"{self.folder} holds other classes than {self.source.__name__}'s: {(names or [])[:5]}...")
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
        image_size: height and width, resized once, in memory (default: 32, the original; with zoo's weights
            (``--model.weights zoo:TAG``) the size they were made at).
        download: download the archive when files are missing.
        verify: check each file's md5 against the published one before reading it (False: files you made).
        batch_size: images per batch.
        val_split: validation images taken from the 50,000 training images.
        augment: ``standard`` by default (pad-4 random crop + horizontal flip).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    source = CIFAR10
    num_classes = 10
    class_names = _CIFAR10


@register_datamodule("cifar100")
class CIFAR100DataModule(CIFARDataModule):
    """CIFAR-100: 32x32 photos of 100 fine classes; 50,000 training images (val taken from them), 10,000 test.

    Args:
        data_dir: folder holding ``cifar-100-python`` (torchvision's layout); downloaded there when missing.
        image_size: height and width (default: 32, the original; with zoo's weights (``--model.weights zoo:TAG``) the
            size they were made at).
        download: download the archive when files are missing.
        verify: check each file's md5 against the published one before reading it (False: files you made).
        batch_size: images per batch.
        val_split: validation images taken from the 50,000 training images.
        augment: ``standard`` by default (pad-4 random crop + horizontal flip).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    source = CIFAR100
    label_key = "fine_labels"
    names_key = "fine_label_names"
    num_classes = 100
    class_names = _CIFAR100
