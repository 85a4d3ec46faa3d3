"""scikit-learn's digits: 1,797 real 8x8 scans of handwritten digits, shipped with scikit-learn."""

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from zoo.data.base import ImageDataModule, check_image_size, split_train_val
from zoo.errors import InputError
from zoo.registry import register_datamodule


@functools.cache
def _targets() -> np.ndarray:
    return load_digits().target


def _test_split(test_split: int | float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    y = _targets()
    try:
        return train_test_split(np.arange(len(y)), test_size=test_split, stratify=y, random_state=split_seed)
    except ValueError as exc:
        raise InputError(f"cannot split digits with test_split={test_split!r}: {exc}") from None


def digits_split(test_split: int | float = 0.2, val_split: int | float = 180,
                 split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into ``load_digits()`` of the train, val and test scans: stratified, fixed by `split_seed`."""
    rest, test = _test_split(test_split, split_seed)
    train, val = split_train_val(_targets()[rest], val_split, split_seed, folds=1, fold=0)
    return rest[train], rest[val], test


@register_datamodule("digits")
class DigitsDataModule(ImageDataModule):
    """scikit-learn's digits with a fixed, stratified train/val/test split.

    With the defaults the split is 1,257 train / 180 val / 360 test images, the same for every
    run (it depends on `split_seed` only). The 8x8 scans (values 0-16) are resized bilinearly
    to `image_size` and normalized with the mean and std of the training split.

    Args:
        image_size: height and width the 8x8 scans are resized to (default: 32, which suits LeNet and the CNNs;
            with zoo's weights (``--model.weights zoo:TAG``) the size they were made at).
        test_split: fraction (or count) of all images held out for testing.
        batch_size: images per batch.
        val_split: count (or fraction) of the remaining images used for validation.
        augment: ``crop`` (random shifts by up to 1/8 of the size, on the device) by default: a flip
            would turn digits into other shapes.
        classes: keep only these digits, labelled 0, 1, ... in the order given (e.g. ``[5, 6, 7, 8, 9]`` for a
            transfer task); the test images are those of the full split.
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    num_classes = 10
    in_chans = 1
    class_names = [str(d) for d in range(10)]

    def __init__(
        self,
        image_size: int | None = None,
        test_split: int | float = 0.2,
        batch_size: int = 64,
        val_split: int | float = 180,
        augment: str = "crop",
        classes: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, val_split=val_split, augment=augment, **kwargs)
        self.image_size, self.test_split = check_image_size(image_size, 32), test_split
        self.keep_classes(classes)
        self.split_indices()  # a bad split fails here, before a trainer writes anything
        self.save_arguments(image_size=self.image_size, test_split=test_split, classes=self.classes)

    def split_indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices into ``load_digits()`` of the train, val and test images."""
        return digits_split(self.test_split, self.val_split, self.split_seed)

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
        if self.image_size != 8:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        labels = torch.as_tensor(digits.target, dtype=torch.long)
        rest, test = (torch.as_tensor(i) for i in _test_split(self.test_split, self.split_seed))
        return (*self.kept(images[rest], labels[rest]), *self.kept(images[test], labels[test]))
