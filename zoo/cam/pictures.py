"""Class activation maps as pictures: an overlay, a labelled grid of images beside their maps, and the methods side
by side on the same images (``zoo cam --method all``)."""

from collections.abc import Sequence

import numpy as np
import torch

from zoo.figures import as_written, drawing, save_figure


def overlay(image: torch.Tensor | np.ndarray, cam: torch.Tensor | np.ndarray, alpha: float = 0.5,
            colormap: str = "jet") -> np.ndarray:
    """A heatmap over an image: ``[H, W, 3]`` floats in [0, 1].

    Args:
        image: ``[C, H, W]`` (C = 1 or 3) or ``[H, W]`` with values in [0, 1] (not normalized).
        cam: ``[H, W]`` in [0, 1].
        alpha: weight of the heatmap.
        colormap: a matplotlib colormap name.
    """
    import matplotlib

    image = torch.as_tensor(image).detach().float().cpu()
    if image.dim() == 3:
        image = image.permute(1, 2, 0)
    else:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:2], 3)
    heat = matplotlib.colormaps[colormap](torch.as_tensor(cam).detach().cpu().numpy())[..., :3]
    return np.clip((1 - alpha) * image.clamp(0, 1).numpy() + alpha * heat, 0, 1)


@drawing
def save_grid(images: torch.Tensor, maps: torch.Tensor | None, titles: Sequence[str], path: str, columns: int = 8,
              boxes: torch.Tensor | None = None) -> None:
    """Save images (or each image beside its heatmap overlay) as a labelled PNG grid, written to a temporary name and
    renamed.

    With maps, each cell is the image and, beside it, the image under the map: a heatmap blended over thin strokes
    (a digit) hides them, and the image alone shows what the map covers.

    Args:
        images: ``[N, C, H, W]`` in [0, 1] (undo the normalization first).
        maps: ``[N, H, W]`` in [0, 1], or None for the images alone.
        titles: one caption per image (e.g. "pred 3 (0.97) / true 3").
        path: the PNG file to write.
        columns: cells per row (half as many with maps, whose cells are two pictures wide).
        boxes: optional ``[N, 4]`` boxes (x0, y0, x1, y1) drawn in white, e.g. the true object.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    pair = maps is not None
    columns = min(max(1, columns // 2) if pair else columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=((3.6 if pair else 1.9) * columns, 2.1 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = images[i].detach().cpu().float().clamp(0, 1)
        grey = image.expand(3, *image.shape[1:]) if image.shape[0] == 1 else image
        plain = grey.permute(1, 2, 0).numpy()
        width = image.shape[-1]
        gap = max(1, width // 16)  # a white line between the image and its map
        if pair:
            ax.imshow(np.concatenate([plain, np.ones((image.shape[-2], gap, 3)), overlay(image, maps[i])], axis=1))
        else:
            ax.imshow(plain)
        ax.set_title(as_written(titles[i]), fontsize=7)
        if boxes is not None:
            x0, y0, x1, y1 = boxes[i].tolist()
            for shift in (0, width + gap) if pair else (0,):  # on the image and on its map
                ax.add_patch(plt.Rectangle((x0 - 0.5 + shift, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           edgecolor="white", lw=1))
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


# -- localization ------------------------------------------------------------------------------


@drawing
def save_methods(images: torch.Tensor, maps: dict[str, torch.Tensor | None], titles: Sequence[str], path: str) -> None:
    """One row per image: the image, then its map under each method (a method that does not apply is a blank cell
    named so), written to a temporary name and renamed.

    Args:
        images: ``[N, C, H, W]`` in [0, 1].
        maps: method name to maps ``[N, H, W]`` in [0, 1], or None where the method does not apply to the net.
        titles: one caption per image (the prediction), over its first cell.
        path: the PNG file to write.
    """
    import matplotlib.pyplot as plt

    n, columns = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, columns, figsize=(1.25 * columns, 1.35 * n), squeeze=False)
    for i in range(n):
        image = images[i].detach().cpu().float().clamp(0, 1)
        plain = (image.expand(3, *image.shape[1:]) if image.shape[0] == 1 else image).permute(1, 2, 0).numpy()
        axes[i, 0].imshow(plain)
        axes[i, 0].set_title(as_written(titles[i]), fontsize=6)
        for j, (method, m) in enumerate(maps.items(), start=1):
            if m is not None:
                axes[i, j].imshow(overlay(image, m[i]))
            elif i == 0:
                axes[i, j].text(0.5, 0.5, "does not\napply", ha="center", va="center", fontsize=6)
            if i == 0:
                axes[i, j].set_title(method, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
