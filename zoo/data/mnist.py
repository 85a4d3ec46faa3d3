"""MNIST and Fashion-MNIST: 60,000 training and 10,000 test 28x28 grey images in the idx format.

zoo reads the published ``.gz`` idx files itself (a few lines of numpy: a header of big-endian sizes, then
bytes), so a read-only copy such as Debian's ``dataset-fashion-mnist`` package is used where it lies, with
nothing unpacked beside it. torchvision only downloads, with its mirrors and md5 checks.
"""

import gzip
import zlib
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torchvision import datasets

from zoo.data.base import DownloadedDataModule, resize, undone_on_failure
from zoo.errors import InputError, ZooError
from zoo.registry import register_datamodule

# The four published files of a split pair, without their ".gz" (either form is read).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x0803: unsigned bytes in 3 dimensions; 0x0801: in 1


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The array an idx file holds (``.gz`` or unpacked), after checking its magic number and its size.

    A truncated or corrupt file, a wrong magic number or a size that disagrees with the header is a
    ZooError naming the file.
    """
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path} cannot be read ({type(exc).__name__}: {exc}); the file is truncated or corrupt: "
                         "replace it with the published file") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise InputError(f"{path} is not an idx file of {'images' if ndim == 3 else 'labels'}: magic number {found}, "
                         f"expected {magic}; replace it with the published file")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise InputError(f"{path} holds {len(raw) - header} bytes of data, but its header announces "
                         f"{' x '.join(map(str, shape))} = {int(np.prod(shape))}; the file is truncated or corrupt: "
                         "replace it with the published file")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def idx_file(folder: Path, name: str) -> Path | None:
    """`name` or `name.gz` in `folder`, whichever exists (the unpacked file first: torchvision leaves both)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_split(folder: Path, split: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images ``[N, 1, H, W]`` uint8 and labels, checked against each other."""
    image_name, label_name = IDX_FILES[split]
    image_path, label_path = idx_file(folder, image_name), idx_file(folder, label_name)
    images, labels = read_idx(image_path, IMAGES_MAGIC), read_idx(label_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise InputError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels; "
                         "the two files come from different copies: replace them with the published files")
    if len(labels) and int(labels.max()) >= num_classes:
        raise InputError(f"{label_path} holds label {int(labels.max())}, but the dataset has {num_classes} classes; "
                         "replace it with the published file")
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


class MNISTLikeDataModule(DownloadedDataModule):
    """An idx-format dataset, found in the first of: ``<data_dir>/<Name>/raw`` (torchvision's layout),
    ``<data_dir>`` itself (the four published files side by side), a system-wide copy; or downloaded.
    """

    dataset: type = datasets.MNIST
    num_classes = 10
    in_chans = 1
    native_size = 28
    title = "MNIST"
    system_dir: str | None = None  # where a system package installs the files
    system_package: str | None = None  # the Debian package that does

    def __init__(self, data_dir: str, image_size: int | None, download: bool, classes: list[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, **kwargs)
        self.keep_classes(classes)
        self.save_arguments(classes=self.classes)

    def candidate_folders(self) -> list[Path]:
        folders = [Path(self.data_dir) / self.dataset.__name__ / "raw", Path(self.data_dir)]
        return folders + ([Path(self.system_dir)] if self.system_dir else [])

    def files_folder(self) -> Path | None:
        """The first folder that holds all four files, or None."""
        names = [name for pair in IDX_FILES.values() for name in pair]
        for folder in self.candidate_folders():
            if all(idx_file(folder, name) for name in names):
                return folder
        return None

    def ensure_files(self) -> Path:
        folder = self.files_folder()
        if folder is not None:
            return folder
        if self.download:
            try:
                with undone_on_failure(self.data_dir):
                    for train in (True, False):  # torchvision downloads into <data_dir>/<Name>/raw, md5-checked
                        self.dataset(self.data_dir, train=train, download=True)
            except Exception as exc:  # offline: URLError, timeouts, a mirror's HTTP error
                reason = f"it could not be downloaded ({type(exc).__name__}: {exc})"
            else:
                return self.candidate_folders()[0]
        else:
            reason = "download=False"
        self.raise_missing(reason)

    def raise_missing(self, reason: str) -> NoReturn:
        looked = ", ".join(str(folder) for folder in self.candidate_folders())
        files = ", ".join(f"{name}.gz" for pair in IDX_FILES.values() for name in pair)
        ways = [f"download=True (--data.download true) with a network (from {self.dataset.mirrors[0]})",
                f"put the four published files ({files}) in data_dir"]
        if self.system_package:
            ways.insert(0, f"apt-get install {self.system_package} (Debian/Ubuntu; installs {self.system_dir})")
        raise ZooError(f"no copy of {self.title} in {looked}, and {reason}; get one: "
                       + "; or ".join(f"({i}) {way}" for i, way in enumerate(ways, 1)))

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        folder = self.ensure_files()
        train_images, train_labels = read_split(folder, "train", type(self).num_classes)
        test_images, test_labels = read_split(folder, "test", type(self).num_classes)
        train_images, train_labels = self.kept(train_images, train_labels)
        test_images, test_labels = self.kept(test_images, test_labels)
        return (resize(train_images, self.image_size), train_labels, resize(test_images, self.image_size),
                test_labels)


@register_datamodule("mnist")
class MNISTDataModule(MNISTLikeDataModule):
    """MNIST (LeCun et al. 1998): handwritten digits; 60,000 training images (val taken from them), 10,000 test.

    Args:
        data_dir: folder holding ``MNIST/raw`` (torchvision's layout) or the four published files;
            downloaded into ``MNIST/raw`` when missing.
        image_size: height and width, resized once, in memory (default: 28, the original; with zoo's weights
            (``--model.weights zoo:TAG``) the size they were made at).
        download: download the files when they are missing.
        batch_size: images per batch.
        val_split: validation images taken from the 60,000 training images.
        augment: ``crop`` by default (shifts, no flip: a mirrored digit is another shape).
        classes: keep only these classes, labelled 0, 1, ... in the order given (e.g. ``[5, 6, 7, 8, 9]``).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    dataset = datasets.MNIST
    class_names = [str(d) for d in range(10)]

    def __init__(self, data_dir: str = "data", image_size: int | None = None, download: bool = True,
                 batch_size: int = 128, val_split: int | float = 5000, augment: str = "crop",
                 classes: list[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         classes=classes, **kwargs)


@register_datamodule("fashion_mnist")
class FashionMNISTDataModule(MNISTLikeDataModule):
    """Fashion-MNIST (Xiao et al. 2017): 28x28 clothing photos in 10 classes; 60,000 training, 10,000 test.

    Found without options when Debian's ``dataset-fashion-mnist`` package is installed
    (``/usr/share/datasets/fashion-mnist``).

    Args:
        data_dir: folder holding ``FashionMNIST/raw`` (torchvision's layout) or the four published files;
            searched before the system-wide copy; downloaded into ``FashionMNIST/raw`` when no copy exists.
        image_size: height and width (default: 28, the original; with zoo's weights (``--model.weights zoo:TAG``) the
            size they were made at).
        download: download the files when no copy exists.
        batch_size: images per batch.
        val_split: validation images taken from the 60,000 training images.
        augment: ``none`` by default: on 2 CPU cores' budgets no preset pays (LeNet-5, 5 epochs, real test
            set: none 85.8 %, crop 82.6 %, standard 80.4 %); give ``standard`` for long schedules.
        classes: keep only these classes, labelled 0, 1, ... in the order given (e.g. ``[5, 6, 7, 8, 9]``: Sandal,
            Shirt, Sneaker, Bag, Ankle boot).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    dataset = datasets.FashionMNIST
    title = "Fashion-MNIST"
    system_dir = "/usr/share/datasets/fashion-mnist"
    system_package = "dataset-fashion-mnist"
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]

    def __init__(self, data_dir: str = "data", image_size: int | None = None, download: bool = True,
                 batch_size: int = 128, val_split: int | float = 5000, augment: str = "none",
                 classes: list[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(data_dir, image_size, download, batch_size=batch_size, val_split=val_split, augment=augment,
                         classes=classes, **kwargs)
