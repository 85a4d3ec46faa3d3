"""Cluttered digits: scikit-learn's real digits placed at random on a larger canvas among fragments of other digits.

A localization benchmark with known answers: each image holds one whole digit (the label) and
its bounding box, plus clutter cut from other digits of the same split, so a class activation
map can be scored by whether it points at the digit rather than at the clutter.
"""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from zoo.data.base import ImageDataModule, TensorImages, channel_stats
from zoo.data.digits import DigitsDataModule, digits_split
from zoo.errors import InputError
from zoo.registry import register_datamodule


@register_datamodule("cluttered_digits")
class ClutteredDigitsDataModule(ImageDataModule):
    """Digits on a `canvas_size` canvas with `clutter` fragments of other digits; labels and boxes, seeded.

    The digits split is the one of ``digits`` (1,257 / 180 / 360 scans); each scan appears
    `copies` times in its split, at different places among different clutter. ``boxes[split]`` holds
    each image's digit box ``(x0, y0, x1, y1)`` in pixels (x1, y1 exclusive), tight around the ink.

    Args:
        batch_size: images per batch.
        canvas_size: height and width of the images.
        digit_size: size the 8x8 scans are scaled to before placing.
        clutter: fragments of other digits per image.
        fragment_size: side of each square fragment, in pixels.
        copies: placements of each scan (per split).
        seed: seed of the placements and clutter.
        augment: ``none`` (the default: placement is the augmentation) or another preset.
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`),
            but not ``folds`` or ``val_split``: the split is the digits one.
    """

    def __init__(
        self,
        batch_size: int = 64,
        canvas_size: int = 64,
        digit_size: int = 24,
        clutter: int = 4,
        fragment_size: int = 8,
        copies: int = 2,
        seed: int = 0,
        augment: str = "none",
        **kwargs: Any,
    ) -> None:
        if not 0 < digit_size <= canvas_size or not 0 < fragment_size <= digit_size:
            raise InputError(f"need 0 < fragment_size ({fragment_size}) <= digit_size ({digit_size}) <= "
                             f"canvas_size ({canvas_size})")
        super().__init__(batch_size=batch_size, augment=augment, **kwargs)
        if self.folds > 1:
            raise InputError("cluttered_digits keeps the digits split; it has no folds")
        self.image_size = self.canvas_size = canvas_size
        self.digit_size = digit_size
        self.clutter, self.fragment_size = clutter, fragment_size
        self.copies, self.seed = copies, seed
        self.boxes: dict[str, torch.Tensor] = {}
        self.save_arguments(canvas_size=canvas_size, digit_size=digit_size, clutter=clutter,
                            fragment_size=fragment_size, copies=copies, seed=seed)

    num_classes = DigitsDataModule.num_classes
    in_chans = DigitsDataModule.in_chans
    class_names = DigitsDataModule.class_names

    def make_split(self, indices: np.ndarray, offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (0..1, not normalized), labels and boxes made from the scans at `indices`."""
        h = self
        rng = np.random.default_rng([h.seed, offset])
        digits = load_digits()
        scans = torch.as_tensor(digits.images[indices], dtype=torch.float32)[:, None] / 16.0
        scans = F.interpolate(scans, size=h.digit_size, mode="bilinear", align_corners=False).clamp(0, 1)[:, 0]
        n = len(indices) * h.copies
        canvas = torch.zeros(n, h.canvas_size, h.canvas_size)
        boxes = torch.zeros(n, 4, dtype=torch.long)
        labels = torch.as_tensor(digits.target[indices]).repeat(h.copies)
        for i in range(n):
            for _ in range(h.clutter):  # fragments of other scans of this split, under the digit
                other = scans[rng.integers(len(scans))]
                fy, fx = rng.integers(0, h.digit_size - h.fragment_size + 1, size=2)
                fragment = other[fy:fy + h.fragment_size, fx:fx + h.fragment_size]
                y, x = rng.integers(0, h.canvas_size - h.fragment_size + 1, size=2)
                region = canvas[i, y:y + h.fragment_size, x:x + h.fragment_size]
                torch.maximum(region, fragment, out=region)
            digit = scans[i % len(scans)]
            y, x = rng.integers(0, h.canvas_size - h.digit_size + 1, size=2)
            region = canvas[i, y:y + h.digit_size, x:x + h.digit_size]
            torch.maximum(region, digit, out=region)
            ys, xs = torch.nonzero(digit > 0.1, as_tuple=True)
            boxes[i] = torch.tensor([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1])
        return canvas[:, None], labels, boxes

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits = zip(("train", "val", "test"), digits_split(split_seed=self.split_seed), strict=True)
        made = {name: self.make_split(idx, offset) for offset, (name, idx) in enumerate(splits)}
        self.mean, self.std = self.normalization(lambda: channel_stats(made["train"][0]))
        transform = self.sample_transform()
        for name, (images, labels, boxes) in made.items():
            setattr(self, f"{name}_set", TensorImages(images, labels, transform if name == "train" else None))
            self.boxes[name] = boxes
