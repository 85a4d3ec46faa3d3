"""scikit-learn's digits: 1,797 real 8x8 scans of handwritten digits, shipped with scikit-learn."""

import functools
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from zoo.data import register_datamodule
from zoo.data.memory import InMemoryDataModule
from zoo.errors import InputError


@functools.cache
def _targets() -> np.ndarray:
    return load_digits().target


def digits_split(test_split: int | float = 0.2, val_split: int | float = 180,
                 split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into ``load_digits()`` of the train, val and test scans: stratified, fixed by `split_seed`."""
    y = _targets()
    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=test_split, stratify=y, random_state=split_seed)
        train, val = train_test_split(rest, test_size=val_split, stratify=y[rest], random_state=split_seed)
    except ValueError as exc:
        raise InputError(f"cannot split digits with test_split={test_split!r}, val_split={val_split!r}: {exc}") \
            from None
    return train, val, test


@register_datamodule("digits")
class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's digits with a fixed, stratified train/val/test split.

    With the defaults the split is 1,257 train / 180 val / 360 test images, the same for every
    run (it depends on `split_seed` only). The 8x8 scans (values 0-16) are resized bilinearly
    to `image_size` and normalized with the mean and std of the training split.

    Args:
        batch_size: images per batch.
        image_size: height and width the 8x8 scans are resized to (32 suits LeNet and the CNNs).
        test_split: fraction (or count) of all images held out for testing.
        val_split: count (or fraction) of the remaining images used for validation.
        split_seed: seed of the split; change it only to study the split itself.
        num_workers: DataLoader worker processes (0 is fastest for this small in-memory set).
        augment: ``crop`` (random shifts by up to 1/8 of the size, on the device) or ``none``.
    """

    num_classes = 10
    in_chans = 1
    class_names = [str(d) for d in range(10)]

    def __init__(
        self,
        batch_size: int = 64,
        image_size: int = 32,
        test_split: int | float = 0.2,
        val_split: int | float = 180,
        split_seed: int = 0,
        num_workers: int = 0,
        augment: Literal["none", "crop"] = "crop",
    ) -> None:
        super().__init__(batch_size, image_size, num_workers, augment)
        self.test_split, self.val_split, self.split_seed = test_split, val_split, split_seed
        self.split_indices()  # a bad split fails here, before a trainer writes anything
        self.save_hyperparameters({"batch_size": batch_size, "image_size": image_size, "test_split": test_split,
                                   "val_split": val_split, "split_seed": split_seed, "num_workers": num_workers,
                                   "augment": augment})

    def split_indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices into ``load_digits()`` of the train, val and test images."""
        return digits_split(self.test_split, self.val_split, self.split_seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
        if self.image_size != 8:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        labels = torch.as_tensor(digits.target, dtype=torch.long)
        train, val, test = (torch.as_tensor(i) for i in self.split_indices())
        self.mean, self.std = images[train].mean().item(), images[train].std().item()
        images = (images - self.mean) / self.std
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[val], labels[val])
        self.test_set = TensorDataset(images[test], labels[test])
