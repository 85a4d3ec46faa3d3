"""Augmentation presets: per-image randomness, done on whole batches on the device where it can be.

The flow is one-directional: the DataModule hands out uint8 (or 0..1 float) batches; after they reach the
device (the GPU when there is one) :class:`BatchAugment` turns them into normalized float images, with
random crops, flips, random erasing and mixup/cutmix applied to the whole batch at once, each image with
its own random draw. Policies that torchvision implements per image (AutoAugment, RandAugment,
TrivialAugment, color jitter) and random-resized crops of large images run in the DataLoader on uint8
images (:func:`sample_transform`).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from zoo.data.files import normalize
from zoo.errors import InputError

LARGE = 64  # from this size up, a preset's random crop is random-resized (ImageNet style), not pad-and-crop


@dataclass(frozen=True)
class Preset:
    """What an augmentation preset does: the one place each preset is described.

    Attributes:
        crops: random crops: zero-padded by 1/8 of the size and cropped back on the device below :data:`LARGE`
            pixels, a random-resized crop in the DataLoader from there up (unless `pads_always`).
        pads_always: the padded crop at every size, never the random-resized one ("crop", for digits and scans).
        flips: random horizontal flips (not for digits: mirrored digits are other shapes).
        policy: torchvision's per-image policy (AutoAugment, RandAugment, TrivialAugment), or None.
    """

    crops: bool = False
    pads_always: bool = False
    flips: bool = False
    policy: Callable[[], v2.Transform] | None = None

    def resized_crop(self, image_size: int) -> bool:
        """Whether images of this size get the random-resized crop (in the DataLoader) instead of the padded one."""
        return self.crops and not self.pads_always and image_size >= LARGE

    def padding(self, image_size: int) -> int:
        """The padded crop's padding on the device: 1/8 of the size (4 pixels at 32), 0 when it does not pad."""
        return max(1, image_size // 8) if self.crops and not self.resized_crop(image_size) else 0


PRESET = {
    "none": Preset(),
    "crop": Preset(crops=True, pads_always=True),
    "standard": Preset(crops=True, flips=True),
    "autoaugment": Preset(crops=True, flips=True, policy=v2.AutoAugment),
    "randaugment": Preset(crops=True, flips=True, policy=v2.RandAugment),
    "trivialaugment": Preset(crops=True, flips=True, policy=v2.TrivialAugmentWide),
}
PRESETS = tuple(PRESET)


def preset(name: str) -> Preset:
    """The preset called `name`, or an InputError listing them."""
    if name not in PRESET:
        raise InputError(f"unknown augment {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESET[name]


def random_crop(x: torch.Tensor, padding: int, flip: bool | torch.Tensor = False) -> torch.Tensor:
    """Zero-pad each image by `padding` pixels and crop it back at a random offset of its own.

    With ``flip=True`` each image is also mirrored left-right with probability 1/2, in the same pass:
    one gather per batch, whatever the dtype.

    Args:
        x: images ``[N, C, H, W]``.
        padding: pixels added on every side; each image moves by up to this much.
        flip: random horizontal flips too; or a bool tensor ``[N]``: which images to mirror
            (:func:`alternating_flips`).
    """
    chosen = isinstance(flip, torch.Tensor)
    if padding <= 0 and not chosen and not flip:
        return x
    n, c, h, w = x.shape
    padding = max(padding, 0)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    width = w + 2 * padding
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=x.device)
    cols = torch.arange(w, device=x.device)[None, None, :].expand(n, 1, w)
    if chosen or flip:
        mirrored = flip.view(n, 1, 1) if chosen else torch.rand(n, 1, 1, device=x.device) < 0.5
        cols = torch.where(mirrored, w - 1 - cols, cols)
    rows = torch.arange(h, device=x.device)[None, :, None]
    index = ((dy + rows) * width + dx + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


def alternating_flips(x: torch.Tensor, epoch: int, key: torch.Tensor) -> torch.Tensor:
    """Which images of the batch `x` to mirror in `epoch` (from 0) under airbench's alternating flip (Jordan 2024):
    each image is mirrored in every other epoch, starting from a coin flip of its own.

    The coin is a hash of the image's pixels (their dot product with `key`, a random integer per pixel, modulo 2),
    so an image draws the same coin in every epoch without the batch saying which image it is; a new `key`
    draws new coins. Mirroring exactly half of the epochs, each image is seen both ways every two epochs,
    where random flips repeat a side by chance.

    Args:
        x: the batch's unaugmented images ``[N, C, H, W]``, uint8 (0..255) or float (0..1).
        epoch: the training epoch.
        key: int64 ``[C * H * W]`` (:func:`flip_key`).
    """
    pixels = x.flatten(1).long() if not x.is_floating_point() else (x.flatten(1) * 255).round().long()
    coin = (pixels @ key.to(x.device)) % 2 == 1
    return coin ^ (epoch % 2 == 1)


def flip_key(numel: int) -> torch.Tensor:
    """A random int64 per pixel for :func:`alternating_flips`, from torch's random state (so the seed decides it)."""
    return torch.randint(0, 2 ** 16, (numel,), dtype=torch.long)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    return random_crop(x, 0, flip=True)


def random_erasing(x: torch.Tensor, p: float, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Zhong et al. 2017, per image: with probability `p` a random box (area `scale`, aspect `ratio`) set to 0.

    On normalized images 0 is the mean colour, as torchvision's ``RandomErasing(value=0)`` after ``Normalize``.
    """
    if p <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device
    area = h * w * torch.empty(n, device=dev).uniform_(*scale)
    aspect = torch.exp(torch.empty(n, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    bh = (area * aspect).sqrt().round().clamp(1, h).long()
    bw = (area / aspect).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, device=dev) * (h - bh + 1)).long()
    left = (torch.rand(n, device=dev) * (w - bw + 1)).long()
    rows = torch.arange(h, device=dev)[None, :, None]
    cols = torch.arange(w, device=dev)[None, None, :]
    box = ((rows >= top[:, None, None]) & (rows < (top + bh)[:, None, None])
           & (cols >= left[:, None, None]) & (cols < (left + bw)[:, None, None]))
    erase = box & (torch.rand(n, 1, 1, device=dev) < p)
    return x.masked_fill(erase[:, None], 0.0)


@dataclass
class BatchAugment:
    """Everything done to a batch after it reaches the device: crop and flip (training), scale to 0..1 and
    normalize, then random erasing and mixup/cutmix (training).

    Args:
        mean: per-channel means (of the training split, on the 0..1 scale) to normalize with.
        std: per-channel standard deviations, likewise.
        padding: random-crop padding (0: none).
        flip: random horizontal flips.
        alternate_flips: with `flip`, airbench's alternating flip instead (:func:`alternating_flips`): each image
            mirrored in every other epoch.
        key: the alternating flips' key (:func:`flip_key`; drawn with the first training batch when None).
        erasing: probability of random erasing per image.
        mixup: mixup's Beta(alpha, alpha) parameter (0: off).
        cutmix: cutmix's Beta(alpha, alpha) parameter (0: off); with mixup too, each batch uses one of them.
        num_classes: for the soft targets mixup and cutmix make.
    """

    mean: Sequence[float]
    std: Sequence[float]
    padding: int = 0
    flip: bool = False
    alternate_flips: bool = False
    key: torch.Tensor | None = None
    erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    num_classes: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.erasing <= 1.0:
            raise InputError(f"erasing is a probability between 0 and 1, got {self.erasing!r}")
        if self.mixup < 0 or self.cutmix < 0:
            raise InputError(f"mixup and cutmix are Beta alphas >= 0 (0: off), got {self.mixup}, {self.cutmix}")
        mixers = [m(alpha=a, num_classes=self.num_classes)
                  for m, a in ((v2.MixUp, self.mixup), (v2.CutMix, self.cutmix)) if a > 0]
        self.mix: Callable | None = mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers) if mixers else None

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float (0..1) images -> normalized float images."""
        return normalize(x, self.mean, self.std)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, train: bool,
                 epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        if not train:
            return self.normalize(x), y
        flip: bool | torch.Tensor = self.flip
        if self.flip and self.alternate_flips:
            if self.key is None or len(self.key) != x[0].numel():
                self.key = flip_key(x[0].numel())
            flip = alternating_flips(x, epoch, self.key)
        x = random_crop(x, self.padding, flip)  # pads with black, as torchvision's RandomCrop(padding=...)
        x = random_erasing(self.normalize(x), self.erasing)
        if self.mix is not None:
            x, y = self.mix(x, y)
        return x, y


def sample_transform(name: str, image_size: int, color_jitter: float = 0.0) -> v2.Transform | None:
    """The per-image part of preset `name`, run in the DataLoader on uint8 images (None when there is none).

    Large images (from 64 pixels) get the random-resized crop of the ImageNet recipes and a flip here;
    small ones get their crop and flip on the device. Then the policy (AutoAugment, RandAugment,
    TrivialAugment) and color jitter, which torchvision draws per image.
    """
    chosen = preset(name)
    steps: list[v2.Transform] = []
    if chosen.resized_crop(image_size):
        steps += [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    if chosen.policy is not None:
        steps.append(chosen.policy())
    if color_jitter > 0:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
    return v2.Compose(steps) if steps else None
