"""Augmentation applied to whole batches after they reach the device (the GPU when there is one).

Per-image randomness, batch-level tensor ops: no per-sample Python in the data loader.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F

from zoo.errors import InputError


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad each image by `padding` pixels and crop it back at a random offset of its own.

    Args:
        x: images ``[N, C, H, W]``.
        padding: pixels added on every side; each image moves by up to this much.
    """
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=x.device)
    rows = dy + torch.arange(h, device=x.device)[None, :, None]
    cols = dx + torch.arange(w, device=x.device)[None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indexing puts C last


def preset(name: str, image_size: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The batch augmentation called `name` for images of `image_size` (None for "none").

    - ``none``: no augmentation;
    - ``crop``: random translation by up to 1/8 of the image size (pad and random crop, the
      small-image "standard" without the horizontal flip, which would turn digits into other shapes).
    """
    if name == "none":
        return None
    if name == "crop":
        padding = max(1, image_size // 8)
        return lambda x: random_crop(x, padding)
    raise InputError(f"unknown augment {name!r}; choose one of: none, crop")
