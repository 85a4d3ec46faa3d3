"""Random images of any shape and class count: for benchmarks and smoke tests, no files needed."""

from typing import Any

import torch

from zoo.data.base import ImageDataModule, check_image_size
from zoo.errors import InputError
from zoo.registry import register_datamodule


@register_datamodule("fake")
class FakeDataModule(ImageDataModule):
    """Uniform random uint8 images with random labels, made from `seed` (nothing to learn: chance accuracy).

    Args:
        num_classes: number of classes.
        image_size: height and width (default: 32; with zoo's weights (``--model.weights zoo:TAG``) the size they were
            made at).
        in_chans: channels.
        train_size: training images (the validation split is taken from them).
        test_size: test images.
        seed: seed of the images and labels.
        **kwargs: the arguments every zoo DataModule takes (see :class:`zoo.data.base.ImageDataModule`).
    """

    def __init__(self, num_classes: int = 10, image_size: int | None = None, in_chans: int = 3, train_size: int = 1000,
                 test_size: int = 200, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value in (("num_classes", num_classes), ("in_chans", in_chans),
                            ("train_size", train_size), ("test_size", test_size)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        self.num_classes, self.image_size, self.in_chans = num_classes, check_image_size(image_size, 32), in_chans
        self.train_size, self.test_size, self.seed = train_size, test_size, seed
        self.class_names = [f"class_{i}" for i in range(num_classes)]
        self.save_arguments(num_classes=num_classes, image_size=self.image_size, in_chans=in_chans,
                            train_size=train_size, test_size=test_size, seed=seed)

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        out = []
        for n in (self.train_size, self.test_size):
            out.append(torch.randint(0, 256, (n, self.in_chans, self.image_size, self.image_size), generator=g,
                                     dtype=torch.uint8))
            out.append(torch.arange(n) % self.num_classes)  # every class present, for stratified splits
        return tuple(out)  # type: ignore[return-value]
