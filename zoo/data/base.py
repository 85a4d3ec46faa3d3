"""The base of zoo's DataModules: splits, loaders, and the batch step on the device.

Every DataModule hands out uint8 (or 0..1 float) images; :class:`zoo.data.augment.BatchAugment`
normalizes them, and augments training batches, after they reach the device. Images that fit in memory
are indexed a whole batch at a time (no per-sample Python); a folder decodes its files per sample.
"""

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from zoo.data.augment import LARGE, BatchAugment, preset, sample_transform
from zoo.errors import InputError, check_count


class TensorImages(Dataset):
    """Images and labels held as tensors; a DataLoader fetches a whole batch with one indexing.

    `transform` (a per-image torchvision v2 transform on uint8 images), when given, runs image by image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[i]
        return (self.transform(image) if self.transform else image), self.labels[i]

    def __getitems__(self, indices: list[int]) -> Any:
        if self.transform is not None:
            return [self[i] for i in indices]
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


def collate(batch: Any) -> Any:
    """Stack per-sample items; a batch that ``__getitems__`` already made passes through."""
    if isinstance(batch, tuple):
        return batch
    return torch.utils.data.default_collate(batch)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images (uint8 0..255 or float 0..1) on the 0..1 scale."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].double()
        x = x / 255.0 if images.dtype == torch.uint8 else x
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images resized (bilinear, antialiased) to size x size, keeping their dtype."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else out.clamp(0, 1)


def split_train_val(labels: np.ndarray, val_split: int | float, split_seed: int, folds: int, fold: int,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images of a training pool: stratified, fixed by `split_seed`.

    With ``folds > 1`` the pool is cut into that many stratified folds and fold `fold` validates.
    """
    idx = np.arange(len(labels))
    if folds > 1:
        if not 0 <= fold < folds:
            raise InputError(f"fold must be in 0..{folds - 1} for folds={folds}, got {fold}")
        try:
            train, val = list(StratifiedKFold(folds, shuffle=True, random_state=split_seed).split(idx, labels))[fold]
        except ValueError as exc:
            raise InputError(f"cannot cut the training images into {folds} stratified folds: {exc}") from None
        return train, val
    if not val_split:
        return idx, idx[:0]
    try:
        return train_test_split(idx, test_size=val_split, stratify=labels, random_state=split_seed)
    except ValueError as exc:
        raise InputError(f"cannot take val_split={val_split!r} from {len(idx)} training images: {exc}") from None


MAX_IMAGE_SIZE = 1024  # digits alone at 100,000 px asked for 40 GB before anything said why


def check_image_size(image_size: int | None, native: int | None = None) -> int:
    """`image_size` if it is a side length zoo can hold images at (1 to MAX_IMAGE_SIZE pixels), `native` if it is
    None (unset: ``zoo fit`` sets it to what zoo's weights were made at); else one error."""
    image_size = native if image_size is None else image_size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise InputError(f"image_size must be an integer from 1 to {MAX_IMAGE_SIZE} (pixels a side), "
                         f"got {image_size!r}")
    return image_size


def few_per_class(indices: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` of the `indices` of each class (all of a class that has fewer), picked at random by `seed`, in order."""
    order = np.random.default_rng(seed).permutation(len(indices))
    kept = np.concatenate([order[labels[order] == c][:n] for c in np.unique(labels)])
    return indices[np.sort(kept)]


class ImageDataModule(L.LightningDataModule):
    """Common arguments and behaviour of zoo's DataModules (each subclass adds where its images come from).

    The validation split is taken out of the training images (stratified, fixed by `split_seed`); an
    official test split stays untouched.

    Args:
        batch_size: images per batch.
        val_split: validation images taken from the training images: a count, or a fraction of them.
        split_seed: seed of the validation split (and the folds); the training seed is separate
            (``seed_everything``).
        num_workers: DataLoader worker processes (0 is fastest for data held in memory).
        pin_memory: page-locked batches, for faster copies to a GPU.
        drop_last: drop the last, smaller, training batch.
        augment: the preset: ``none``; ``crop`` (random shifts by 1/8 of the size, no flip); ``standard``
            (pad-and-crop + flip below 64 pixels, random-resized crop + flip from 64 up);
            ``autoaugment``, ``randaugment``, ``trivialaugment`` (standard + that policy).
        erasing: probability of random erasing per training image.
        alternate_flips: mirror each training image in every other epoch, from a coin flip of its own, instead of
            at random in each (airbench's alternating flip; with ``augment="standard"`` below 64 pixels, without
            color_jitter or a transform).
        color_jitter: brightness, contrast and saturation jitter strength (0: off).
        mixup: mixup's Beta alpha (0: off; 0.2 is common).
        cutmix: cutmix's Beta alpha (0: off; 1.0 is common).
        folds: cut the training images into this many folds for cross-validation (1: a plain val split).
        fold: which fold validates (0 .. folds-1).
        train_per_class: keep only this many training images of each class (a few-shot task; chosen by
            `split_seed`, after the validation split); None: all.
        transform: a custom per-image transform on uint8 tensors, run in the DataLoader after the preset's.
        normalize: the (mean, std) per channel, on the 0..1 scale, to normalize with instead of the training
            images' own: what pretrained weights expect (``zoo.weights.get_weights(...).normalization``;
            ``zoo fit --model.weights zoo:TAG`` sets it).
    """

    num_classes: int
    in_chans: int
    image_size: int
    class_names: list[str]

    def __init__(
        self,
        batch_size: int = 128,
        val_split: int | float = 0.1,
        split_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        augment: str = "standard",
        erasing: float = 0.0,
        alternate_flips: bool = False,
        color_jitter: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        folds: int = 1,
        fold: int = 0,
        train_per_class: int | None = None,
        transform: Callable | None = None,
        normalize: tuple[list[float], list[float]] | None = None,
    ) -> None:
        super().__init__()
        check_count("batch_size", batch_size)
        check_count("num_workers", num_workers, minimum=0)
        if train_per_class is not None and train_per_class < 1:
            raise InputError(f"train_per_class must be a positive integer (or unset for all), got {train_per_class!r}")
        if folds < 1:
            raise InputError(f"folds must be 1 (no cross-validation) or more, got {folds!r}")
        preset(augment)  # a name it knows, before anything is loaded
        if alternate_flips and (augment != "standard" or color_jitter or transform is not None):
            raise InputError("alternate_flips needs augment 'standard' without color_jitter or a transform (an image "
                             "must reach the batch unchanged to draw its own coin every epoch)")
        self.common_arguments = {
            "batch_size": batch_size, "val_split": val_split, "split_seed": split_seed, "num_workers": num_workers,
            "pin_memory": pin_memory, "drop_last": drop_last, "augment": augment, "erasing": erasing,
            "alternate_flips": alternate_flips,
            "color_jitter": color_jitter, "mixup": mixup, "cutmix": cutmix, "folds": folds, "fold": fold,
            "train_per_class": train_per_class, "normalize": normalize,
        }
        for key, value in self.common_arguments.items():
            setattr(self, key, value)
        self.transform = transform
        self.flip_key: torch.Tensor | None = None  # alternate_flips' coins: drawn once, kept in checkpoints
        self.classes: list[int] | None = None  # all of the dataset's; a subclass may keep some (keep_classes)
        self.mean: list[float] = [0.0]
        self.std: list[float] = [1.0]
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        BatchAugment([0.0], [1.0], erasing=erasing, mixup=mixup, cutmix=cutmix, num_classes=2)  # checks them now

    def keep_classes(self, classes: list[int] | None) -> None:
        """Keep only these classes (numbers in the full dataset), labelled 0, 1, ... in the order given.

        Call in a subclass's ``__init__`` (after its ``num_classes`` and ``class_names`` are known); its
        :meth:`load` then passes the images through :meth:`kept`.
        """
        self.classes = None if classes is None else list(classes)
        if classes is None:
            return
        every = self.num_classes
        if not classes or len(set(classes)) != len(classes) or any(c not in range(every) for c in classes):
            raise InputError(f"classes must be distinct class numbers 0-{every - 1}, got {classes!r}")
        self.class_names = [self.class_names[c] for c in classes]
        self.num_classes = len(classes)
        self._relabel = torch.full((every,), -1, dtype=torch.long)
        self._relabel[self.classes] = torch.arange(len(classes))

    def kept(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images of the kept classes (see :meth:`keep_classes`) and their new labels; all when none were chosen."""
        if self.classes is None:
            return images, labels
        labels = self._relabel[labels]
        keep = labels >= 0
        return images[keep], labels[keep]

    def save_arguments(self, **own: Any) -> None:
        """Record the subclass's own arguments with the common ones: a checkpoint makes the same data again."""
        self.save_hyperparameters({**own, **self.common_arguments})

    # -- what a subclass provides -----------------------------------------------------------------

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pool and test split as ``(train_images, train_labels, test_images, test_labels)``.

        Images are ``[N, C, H, W]`` uint8 (0..255) or float (0..1) at `image_size`.
        """
        raise NotImplementedError

    # -- splits and loaders -----------------------------------------------------------------------

    def normalization(self, training_stats: Callable[[], tuple[list[float], list[float]]],
                      ) -> tuple[list[float], list[float]]:
        """The (mean, std) to normalize with: `normalize` when given, else the training images' own.

        Given for other channels than the images have, as pretrained weights adapted to them are (see
        :func:`zoo.weights.adapt_input_conv`): one channel's values serve every channel, and grey images
        take the mean of the channels' values.
        """
        if self.normalize is None:
            return training_stats()
        mean, std = (list(map(float, v)) for v in self.normalize)
        if len(mean) == len(std) == 1 and self.in_chans > 1:
            mean, std = mean * self.in_chans, std * self.in_chans
        elif len(mean) == len(std) and self.in_chans == 1:
            mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
        if not len(mean) == len(std) == self.in_chans:
            raise InputError(f"normalize gives {len(mean)} means and {len(std)} stds for {self.in_chans}-channel "
                             f"images; give one of each per channel")
        return mean, std

    def use_normalization(self, mean: list[float], std: list[float]) -> None:
        """Normalize with this (mean, std) from now on, as if given as `normalize` (pretrained weights' own).

        Works before or after :meth:`setup`; the checkpoint's record of the data says it too.
        """
        self.normalize = (list(mean), list(std))
        self.hparams["normalize"] = self.normalize
        self.mean, self.std = self.normalization(lambda: self.normalize)  # per channel, as setup makes them
        self._augment = None

    def sample_transform(self) -> Callable | None:
        """The per-image part of the training augmentation: the preset's, then the custom `transform`."""
        steps = [t for t in (sample_transform(self.augment, self.image_size, self.color_jitter), self.transform) if t]
        return v2.Compose(steps) if len(steps) > 1 else steps[0] if steps else None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels, test_images, test_labels = self.load()
        train, val = split_train_val(labels.numpy(), self.val_split, self.split_seed, self.folds, self.fold)
        if self.train_per_class is not None:
            train = few_per_class(train, labels.numpy()[train], self.train_per_class, self.split_seed)
        train, val = torch.as_tensor(train), torch.as_tensor(val)
        self.mean, self.std = self.normalization(lambda: channel_stats(images[train]))
        self.train_set = TensorImages(images[train], labels[train], self.sample_transform())
        self.val_set = TensorImages(images[val], labels[val])
        self.test_set = TensorImages(test_images, test_labels)

    @property
    def batch_augment(self) -> BatchAugment:
        chosen = preset(self.augment)
        large = chosen.resized_crop(self.image_size)  # cropped and flipped in the DataLoader (sample_transform)
        if large and self.alternate_flips:
            raise InputError(f"alternate_flips flips on the batch, below {LARGE} pixels; these images are "
                             f"{self.image_size} (drop alternate_flips, or give a smaller image_size)")
        return BatchAugment(
            self.mean, self.std, padding=chosen.padding(self.image_size), flip=chosen.flips and not large,
            alternate_flips=self.alternate_flips, key=self.flip_key, erasing=self.erasing, mixup=self.mixup,
            cutmix=self.cutmix, num_classes=self.num_classes,
        )

    def state_dict(self) -> dict[str, Any]:
        """What Lightning keeps of the data in a checkpoint: the alternating flips' key, so that a resumed fit mirrors
        each image as the uninterrupted one would."""
        return {} if self.flip_key is None else {"flip_key": self.flip_key}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("flip_key") is not None:
            self.flip_key = state_dict["flip_key"]
            self._augment = None  # made again with the key

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        training = self.trainer is not None and self.trainer.training
        augment = getattr(self, "_augment", None)
        if augment is None:
            augment = self._augment = self.batch_augment
        if y is None:
            return augment.normalize(x)
        batch = augment(x, y, train=training, epoch=self.trainer.current_epoch if training else 0)
        # alternate_flips' key, drawn with the first training batch (not with Lightning's summary of the model, which
        # passes an example through this hook first), kept in checkpoints (state_dict)
        self.flip_key = augment.key
        return batch

    def normalized(self, split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A split as normalized float images and labels (what the model sees, unaugmented): its first `n` images,
        or all of it without `n`."""
        self.setup()
        dataset = getattr(self, f"{split}_set")
        x, y = dataset.images[:n], dataset.labels[:n]
        return self.batch_augment.normalize(x), y

    def augmented_batch(self, n: int = 32, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
        """`n` training images as the model sees them in training, back in 0..1 for drawing, with captions.

        Captions are class names; mixed images (mixup, cutmix) name the two classes and their shares.
        """
        from zoo.data.files import denormalize
        from zoo.figures import check_grid_count

        check_grid_count(n)

        self.setup()
        torch.manual_seed(seed)
        dataset = self.train_set
        picked = torch.randperm(len(dataset))[:n].tolist()
        x, y = collate(dataset.__getitems__(picked))
        x, y = self.batch_augment(x, y, train=True)
        captions = []
        for target in y:
            if target.dim() == 0:
                captions.append(self.class_names[int(target)])
                continue
            top = target.topk(2)
            parts = [(self.class_names[int(i)], float(v)) for v, i in zip(top.values, top.indices, strict=True)
                     if v > 0.005]
            captions.append(" + ".join(f"{name} {share:.2f}" for name, share in parts) if len(parts) > 1
                            else parts[0][0])
        return denormalize(x, self.mean, self.std).clamp(0, 1), captions

    def _loader(self, dataset: Dataset | None, train: bool = False, sampler: Sampler | None = None) -> DataLoader:
        if dataset is None:
            raise InputError(f"{type(self).__name__} has no data yet: call setup() first (a Trainer does)")
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=train, drop_last=train and self.drop_last,
                          sampler=sampler, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          collate_fn=collate, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        count = len(self.train_set) if self.train_set is not None else None
        if count is not None and (count == 0 or (self.drop_last and count < self.batch_size)):
            why = f"and batch_size={self.batch_size} with drop_last=True" if count else "left after the splits"
            raise InputError(f"an epoch would have no training batch: {count} training images {why}; lower "
                             f"--data.batch_size (to {count} at most) or set --data.drop_last false")
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, sampler=self._test_shard())

    def _test_shard(self) -> Sampler | None:
        """Under DDP, this rank's share of the test set, each image in exactly one share.

        Lightning's own DistributedSampler pads the shares to equal length with repeated images, which
        counts those twice in the test accuracy whenever the test set does not divide by the ranks.
        Testing runs no DistributedDataParallel forward (no buffer sync), so unequal shares are safe.
        """
        trainer, dataset = self.trainer, self.test_set
        if trainer is None or trainer.world_size < 2 or dataset is None or len(dataset) < trainer.world_size:
            return None
        return UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                            shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)


@contextlib.contextmanager
def undone_on_failure(data_dir: str | os.PathLike) -> Iterator[None]:
    """Remove what a failed download made in `data_dir`: the folder itself (and its parents) if it did not exist,
    else the entries new in it (a half-written archive, an empty ``cifar-10-batches-py``). Nothing that was there
    before is touched; a failed ``zoo fit --data cifar10`` offline leaves no empty ``./data``."""
    root = Path(data_dir)
    made = [p for p in (root, *root.parents) if not p.exists()]
    before = set(os.listdir(root)) if not made else set()
    try:
        yield
    except BaseException:
        if made:
            shutil.rmtree(made[-1], ignore_errors=True)  # the outermost folder this download made
        else:
            for name in set(os.listdir(root)) - before:
                path = root / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise


class DownloadedDataModule(ImageDataModule):
    """A dataset whose files live in `data_dir` and can be downloaded: checked (and fetched) in one place.

    Subclasses implement :meth:`ensure_files`: return when the files are there, download them if
    ``download`` allows, else raise a ZooError that says which files to put where.
    """

    native_size: int  # the files' own height and width: the image size when none is given

    def __init__(self, data_dir: str, image_size: int | None, download: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_dir, self.download = data_dir, download
        self.image_size = check_image_size(image_size, self.native_size)
        self.save_arguments(data_dir=data_dir, image_size=self.image_size, download=download)
        if not download:
            self.ensure_files()  # missing files fail here, before a trainer writes anything

    def ensure_files(self) -> None:
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Download when files are missing (Lightning calls this on one process per node)."""
        self.ensure_files()


__all__ = ["DownloadedDataModule", "ImageDataModule", "TensorImages", "channel_stats", "resize", "split_train_val",
           "undone_on_failure"]
