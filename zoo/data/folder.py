"""Your own images in the ImageFolder layout, decoded per sample in the DataLoader."""

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from zoo.atomic import atomic_path
from zoo.data.augment import preset
from zoo.data.base import ImageDataModule, channel_stats, check_image_size, split_train_val
from zoo.data.files import UnreadableImageError, load_image, printable
from zoo.errors import InputError
from zoo.registry import register_datamodule

STATS_FILE = ".zoo-stats.json"


def scan(root: Path, strict: bool) -> tuple[list[Path], list[str]]:
    """The image files under root/<class>/ and the class names (sorted); unreadable files skipped with a warning."""
    if not root.is_dir():
        raise InputError(f"image folder {root} does not exist; the layout is {root}/<class>/<image files>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    looped = [name for name in classes if root.resolve().is_relative_to((root / name).resolve())]
    if looped:  # a link such as all -> . would make a class of every image
        warnings.warn(f"skipping class folder(s) {', '.join(printable(root / n) for n in looped)}: a link to {root} "
                      "or a folder above it, not a class of its own", stacklevel=2)
        classes = [name for name in classes if name not in looped]
    files, bad = [], []
    for name in classes:
        found = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        for path in found:
            if path.suffix.lower() not in IMG_EXTENSIONS or not readable(path):
                bad.append(path)
            else:
                files.append(path)
    if bad:
        listed = ", ".join(printable(p) for p in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        if strict:
            raise InputError(f"{len(bad)} file(s) in {root} are not readable images: {listed}; remove them "
                             "(or use strict=False to skip them)")
        warnings.warn(f"skipping {len(bad)} file(s) in {root} that are not readable images: {listed}", stacklevel=2)
    return files, classes


def readable(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:
        return False


class ImageFiles(Dataset):
    """Image files and labels; each decoded to RGB (or grey), transformed to a uint8 tensor ``[C, S, S]``."""

    def __init__(self, files: list[Path], labels: torch.Tensor, transform: v2.Transform, in_chans: int) -> None:
        self.files, self.labels, self.transform, self.mode = files, labels, transform, "L" if in_chans == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        for j in range(len(self.files)):  # a file that fails to decode (verify passed at the scan): the next one
            k = (i + j) % len(self.files)
            try:
                image = load_image(self.files[k], self.mode)
            except UnreadableImageError as exc:
                warnings.warn(f"skipping {exc}", stacklevel=2)
                continue
            return self.transform(image), self.labels[k]
        raise InputError("no image in the folder could be read")

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self[i] for i in indices]


@register_datamodule("folder")
class FolderDataModule(ImageDataModule):
    """Images in class folders: ``data_dir/train/<class>/*`` with optional ``val/`` and ``test/`` next to it,
    or ``data_dir/<class>/*`` alone, split into train / val / test by stratified fractions.

    Images are decoded with PIL, resized (shorter side) and center-cropped to `image_size` for evaluation;
    training images go through the preset (a random-resized crop from 64 pixels up). Mean and std come from
    the training images, computed once and cached in ``data_dir/.zoo-stats.json``. A file that is not a
    readable image is skipped with a warning that names it (``strict=True``: an error instead).

    Args:
        data_dir: the root folder.
        image_size: height and width the model sees (default: 224; with zoo's weights (``--model.weights zoo:TAG``) the
            size they were made at).
        in_chans: 3 (RGB) or 1 (grey).
        test_split: without a ``test/`` folder, the fraction (or count) of images held out for testing.
        strict: stop at the first unreadable file instead of skipping it.
        batch_size: images per batch.
        val_split: without a ``val/`` folder, the validation images taken from the training images.
        num_workers: DataLoader worker processes that decode images (use the CPU cores you have).
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    def __init__(self, data_dir: str = "images", image_size: int | None = None, in_chans: int = 3,
                 test_split: int | float = 0.1, strict: bool = False, batch_size: int = 32,
                 val_split: int | float = 0.1, num_workers: int = 2, **kwargs: Any) -> None:
        super().__init__(batch_size=batch_size, val_split=val_split, num_workers=num_workers, **kwargs)
        if in_chans not in (1, 3):
            raise InputError(f"in_chans must be 1 (grey) or 3 (RGB), got {in_chans!r}")
        self.data_dir, self.image_size, self.in_chans = Path(data_dir), check_image_size(image_size, 224), in_chans
        self.test_split, self.strict = test_split, strict
        root = self.data_dir / "train" if (self.data_dir / "train").is_dir() else self.data_dir
        self.splits = {"train": scan(root, strict)}
        for name in ("val", "test"):
            if root != self.data_dir and (self.data_dir / name).is_dir():
                self.splits[name] = scan(self.data_dir / name, strict)
        files, self.class_names = self.splits["train"]
        counts = {c: 0 for c in self.class_names}
        for path in files:
            counts[path.relative_to(root).parts[0]] += 1
        if len(self.class_names) < 2:
            raise InputError(f"{root} needs at least two class folders with images, found {self.class_names or 'none'}")
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise InputError(f"class folder(s) {', '.join(empty)} in {root} have no images; add images or remove them")
        for name, (_, classes) in self.splits.items():
            if classes != self.class_names:
                raise InputError(f"{self.data_dir / name} has classes {classes}, train has {self.class_names}")
        self.num_classes = len(self.class_names)
        self.root = root
        self.save_arguments(data_dir=str(data_dir), image_size=self.image_size, in_chans=in_chans,
                            test_split=test_split, strict=strict)

    def _labelled(self, split: str) -> tuple[list[Path], np.ndarray]:
        files, classes = self.splits[split]
        base = self.root if split == "train" else self.data_dir / split
        index = {c: i for i, c in enumerate(classes)}
        return files, np.array([index[p.relative_to(base).parts[0]] for p in files])

    def _eval_transform(self) -> v2.Transform:
        size = self.image_size
        return v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def _train_transform(self) -> v2.Transform:
        extra = self.sample_transform()
        if preset(self.augment).resized_crop(self.image_size):
            return v2.Compose([v2.PILToTensor(), extra])  # the preset crops (random-resized) to image_size
        return v2.Compose([self._eval_transform(), *([extra] if extra else [])])

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        files, labels = self._labelled("train")
        parts: dict[str, tuple[list[Path], np.ndarray]] = {}
        if "test" not in self.splits:
            keep, test = split_train_val(labels, self.test_split, self.split_seed, folds=1, fold=0)
            parts["test"] = [files[i] for i in test], labels[test]
            files, labels = [files[i] for i in keep], labels[keep]
        else:
            parts["test"] = self._labelled("test")
        if "val" not in self.splits or self.folds > 1:
            train, val = split_train_val(labels, self.val_split, self.split_seed, self.folds, self.fold)
            parts["val"] = [files[i] for i in val], labels[val]
            files, labels = [files[i] for i in train], labels[train]
        else:
            parts["val"] = self._labelled("val")
        self.mean, self.std = self.normalization(lambda: self._stats(files))
        self.train_set = self._dataset(files, labels, self._train_transform())
        self.val_set = self._dataset(*parts["val"], self._eval_transform())
        self.test_set = self._dataset(*parts["test"], self._eval_transform())

    def _dataset(self, files: list[Path], labels: np.ndarray, transform: v2.Transform) -> "ImageFiles":
        return ImageFiles(files, torch.as_tensor(labels, dtype=torch.long), transform, self.in_chans)

    def _stats(self, files: list[Path], sample: int = 2000) -> tuple[list[float], list[float]]:
        """Mean and std of (up to `sample` of) the training images at image_size, cached by the file list."""
        key = hashlib.sha1(b"\n".join(os.fsencode(p) + f":{p.stat().st_size}".encode() for p in files)).hexdigest()
        key = f"{key}:{self.image_size}:{self.in_chans}"
        cache = self.data_dir / STATS_FILE
        try:
            cached = json.loads(cache.read_text())
        except (OSError, ValueError):
            cached = {}
        if not isinstance(cached, dict):
            cached = {}
        if self._usable_stats(cached.get(key)):  # the file is anyone's to edit: what it holds is checked
            return cached[key]["mean"], cached[key]["std"]
        picked = np.random.default_rng(0).permutation(len(files))[:sample]
        dataset = self._dataset([files[i] for i in picked], np.zeros(len(picked)), self._eval_transform())
        mean, std = channel_stats(torch.stack([dataset[i][0] for i in range(len(dataset))]))
        cached[key] = {"mean": mean, "std": std}
        try:
            with atomic_path(cache) as temporary:
                temporary.write_text(json.dumps(cached))
        except OSError:  # a read-only folder: compute again next time
            pass
        return mean, std

    def _usable_stats(self, entry: Any) -> bool:
        """Whether a cached entry holds a finite mean and a positive, finite std for each channel (else they are
        computed again: a string mean was a TypeError, a zero std a NaN loss)."""
        if not isinstance(entry, dict):
            return False
        values = [entry.get("mean"), entry.get("std")]
        if not all(isinstance(v, list) and len(v) == self.in_chans for v in values):
            return False
        numbers = [x for v in values for x in v]
        return all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers) \
            and all(x > 0 for x in values[1])

    def normalized(self, split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.setup()
        dataset = getattr(self, f"{split}_set")
        count = len(dataset) if n is None else min(n, len(dataset))  # only the files asked for are decoded
        x = torch.stack([dataset[i][0] for i in range(count)])
        return self.batch_augment.normalize(x), dataset.labels[:count]
