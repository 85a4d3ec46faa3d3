"""The base of DataModules whose images fit in memory as tensors: loaders and on-device batch augmentation."""

from typing import Any

import lightning as L
from torch.utils.data import DataLoader, TensorDataset

from zoo.data.augment import preset
from zoo.errors import InputError


class InMemoryDataModule(L.LightningDataModule):
    """Splits held as ``TensorDataset``s; augmentation applied to whole batches after they reach the device.

    Subclasses fill ``train_set``, ``val_set``, ``test_set``, ``mean`` and ``std`` in ``setup`` and set
    ``num_classes``, ``in_chans`` and ``class_names``; each saves its own arguments with
    ``save_hyperparameters(dict)``, so a checkpoint can make the same data again.
    """

    num_classes: int
    in_chans: int
    class_names: list[str]

    def __init__(self, batch_size: int, image_size: int, num_workers: int, augment: str) -> None:
        super().__init__()
        if image_size < 1:
            raise InputError(f"image_size must be a positive integer, got {image_size!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.image_size = image_size
        self.num_workers = num_workers
        self.augment = preset(augment, image_size)
        self.mean: float = 0.0
        self.std: float = 1.0
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            x, y = batch
            return self.augment(x), y
        return batch

    def _loader(self, dataset: TensorDataset | None, shuffle: bool = False) -> DataLoader:
        if dataset is None:
            raise InputError(f"{type(self).__name__} has no data yet: call setup() first (a Trainer does)")
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)
