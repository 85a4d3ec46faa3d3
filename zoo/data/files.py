"""Image files from disk, prepared the way a checkpoint's model was trained (size, channels, mean/std)."""

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import InputError


class UnreadableImageError(InputError):
    """A file that does not open or decode as an image (not an image, damaged, or too large to decode safely)."""


def load_image(path: str | Path, mode: str) -> Any:
    """The image file `path` decoded in `mode` (``L`` or ``RGB``; see :func:`decoded`), its pixels read.

    Any failure of opening or decoding is :class:`UnreadableImageError` naming the file: PIL reports a damaged
    file as OSError, ValueError (a BMP's "invalid palette size" or a TIFF's "invalid extents", files that pass
    ``verify``), SyntaxError, struct.error and more, and one over twice its pixel limit as DecompressionBombError.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return decoded(image, mode)
    except MemoryError:
        raise
    except Exception as exc:  # the file's fault, whatever PIL's decoder raised for it
        raise UnreadableImageError(f"{printable(path)!r} is not a readable image ({type(exc).__name__}: "
                                   f"{exc})") from None


def image_paths(sources: Iterable[str | Path]) -> list[Path]:
    """Files given directly, and every file in the directories given (hidden ones aside), sorted.

    Files that are not images are kept here so that the reader can report them by name.
    """
    paths: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            paths += sorted(p for p in source.rglob("*")
                            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts))
        elif source.is_file():
            paths.append(source)
        else:
            raise InputError(f"{str(source)!r} is neither a file nor a directory; give image files or folders")
    return paths


def printable(path: str | Path) -> str:
    """A file's name as text that prints and writes anywhere: bytes that are not UTF-8 as ``\\xff``.

    Python keeps such bytes of a file name as lone surrogates, which stdout, CSV files and matplotlib refuse.
    """
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def decoded(image: Any, mode: str) -> Any:
    """A PIL image in `mode` (``L`` or ``RGB``), with 16-bit samples scaled to 8 bits by their bit depth and
    32-bit float samples in 0..1 scaled to 0..255.

    PIL's own ``convert`` clips a 16-bit PNG's samples (0..65535) at 255, turning most pixels white, and
    truncates a float image's 0..1 to two levels, black.
    """
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grey (PNG opens as I;16 or I)
        array = np.asarray(image, dtype=np.float64) / 257.0  # 65535 -> 255
        image = Image.fromarray(array.round().clip(0, 255).astype(np.uint8), "L")
    elif image.mode == "F":  # 32-bit float grey (TIFF): 0..1 as most tools write it, else 0..255 as PIL reads it
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if array.size and array.min() >= 0.0 and array.max() <= 1.0 else 1.0
        image = Image.fromarray((array * scale).round().clip(0, 255).astype(np.uint8), "L")
    return image.convert(mode)


def read_images(sources: Iterable[str | Path], image_size: int, in_chans: int, mean: float | list[float],
                std: float | list[float], limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[Path]]:
    """Load, convert (grayscale or RGB by `in_chans`), resize and normalize image files (the first `limit` readable
    ones, all without one: the files after them are not opened).

    Files that are not readable images are skipped with a warning that names them.

    Returns:
        the normalized batch ``[N, C, S, S]``, the same images in [0, 1], and the paths kept.
    """
    from PIL import Image

    images, kept = [], []
    for path in image_paths(sources):
        if limit is not None and len(images) >= limit:
            break
        try:
            image = load_image(path, "L" if in_chans == 1 else "RGB")
        except UnreadableImageError as exc:
            warnings.warn(f"skipping {exc}", stacklevel=2)
            continue
        array = np.asarray(image.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.float32) / 255
        tensor = torch.from_numpy(array)
        images.append(tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1))
        kept.append(path)
    if not images:
        raise InputError(f"no readable images in {', '.join(map(str, sources))}")
    raw = torch.stack(images)
    return normalize(raw, mean, std), raw, kept


def _per_channel(value: float | list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).view(-1, 1, 1)


def normalize(images: torch.Tensor, mean: float | list[float], std: float | list[float]) -> torch.Tensor:
    """``(images - mean) / std`` as float, with one value for all channels or one per channel.

    uint8 images (0..255) are scaled to 0..1 first; one fused multiply-add does it all.
    """
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    x = images.float()
    return torch.addcmul(-_per_channel(mean, x) / _per_channel(std, x), x, 1.0 / (scale * _per_channel(std, x)))


def denormalize(images: torch.Tensor, mean: float | list[float], std: float | list[float]) -> torch.Tensor:
    """The inverse of :func:`normalize`: back to pixels in [0, 1], e.g. to draw them."""
    return images * _per_channel(std, images) + _per_channel(mean, images)
