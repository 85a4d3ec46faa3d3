"""Class activation maps for every zoo CNN: CAM, Grad-CAM and Grad-CAM++, plus overlays and localization metrics.

Built on the net protocol: the feature map is ``forward_features(x)`` and the class score comes
from ``forward_head``, so nothing is hooked into the model and no parameter gets a gradient.
The maps are computed in eval mode with gradients enabled even inside Lightning's
``inference_mode`` (validation, test, predict), and every module's train/eval mode is put back.

- CAM (Zhou et al. 2016): ``M_c = sum_k w_k^c A_k`` with ``w`` the final linear layer; only for
  heads that are global average pooling plus that one linear layer (ResNet, DenseNet, GoogLeNet, WRN).
- Grad-CAM (Selvaraju et al. 2017): ``w_k = mean_ij dS_c / dA_k``.
- Grad-CAM++ (Chattopadhyay et al. 2018): gradient weights with the paper's eq. 19 coefficients.

Each map is ReLU'd, scaled to [0, 1], upsampled bilinearly to the input size and scaled again,
the same sequence as pytorch-grad-cam.
"""

import contextlib
import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.atomic import atomic_path
from zoo.errors import InputError, ZooError
from zoo.figures import as_written, check_grid_count, drawing, save_figure

METHODS = ("cam", "gradcam", "gradcam++")


@dataclass
class CAMResult:
    """Maps ``[N, H, W]`` in [0, 1] at the input size, the class each map explains, and its probability."""

    maps: torch.Tensor
    targets: torch.Tensor
    probs: torch.Tensor


def _net(model: nn.Module) -> nn.Module:
    return getattr(model, "net", model)  # an ImageClassifier or a plain zoo net


@contextlib.contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _capture(net: nn.Module, layer: str | None) -> Iterator[dict[str, torch.Tensor]]:
    """Make the named layer's output a leaf that requires grad; the hook is removed on exit."""
    store: dict[str, torch.Tensor] = {}
    if layer is None:
        yield store
        return
    try:
        module = net.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in net.named_modules() if n]
        raise InputError(f"the model has no layer {layer!r}; layers include: {', '.join(names[-8:])}") from None

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        store["activations"] = output.detach().requires_grad_(True)
        return store["activations"]

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _is_gap_linear(net: nn.Module) -> bool:
    head = getattr(net, "get_classifier", None)
    return (head is not None and isinstance(head(), nn.Linear)
            and getattr(net, "pre_logits_features", None) == getattr(net, "num_features", None))


def _normalize(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    return (flat / (flat.max(dim=1, keepdim=True).values + 1e-7)).view_as(maps)


def compute_cam(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int] | torch.Tensor | None = None,
    method: str = "gradcam",
    layer: str | None = None,
) -> CAMResult:
    """Class activation maps for a batch, one target class per image (default: the predicted class).

    Args:
        model: an :class:`zoo.ImageClassifier` or a zoo net (anything with ``forward_features`` and
            ``forward_head``).
        images: normalized images ``[N, C, H, W]``, as the model takes them.
        targets: the class to explain per image; None for each image's predicted class.
        method: ``cam``, ``gradcam`` or ``gradcam++``.
        layer: a module name to read instead of the last feature map (e.g. ``"layer3"``); default:
            the output of ``forward_features``, the registry's CAM layer.
    """
    if method not in METHODS:
        raise InputError(f"unknown CAM method {method!r}; choose one of: {', '.join(METHODS)}")
    net = _net(model)
    if method == "cam" and (layer is not None or not _is_gap_linear(net)):
        raise ZooError(
            f"plain CAM needs a head of global average pooling and one linear layer, reading the last feature map; "
            f"{type(net).__name__}{f' at {layer!r}' if layer else ''} does not have one: use method='gradcam'"
        )
    with torch.inference_mode(False), torch.enable_grad(), _eval_mode(net), _capture(net, layer) as store:
        x = images.clone()  # a normal tensor, even if the batch was made under inference_mode
        if hasattr(net, "check_input"):
            net.check_input(x)
        if layer is None:
            with torch.no_grad():
                features = net.forward_features(x)
            activations = features.detach().requires_grad_(True)
            logits = net.forward_head(activations)
        else:
            logits = net(x)
            activations = store["activations"]
        if activations.dim() != 4:
            raise ZooError(f"{type(net).__name__} has no spatial feature map (its features are "
                           f"{list(activations.shape)}); class activation maps need a convolutional net")
        probs = logits.detach().softmax(1)
        if targets is None:
            targets = probs.argmax(1)
        targets = torch.as_tensor(targets, device=logits.device).long().view(-1)
        if targets.numel() != len(x):
            raise InputError(f"{targets.numel()} targets given for {len(x)} images; give one class per image")
        if method == "cam":
            weights = net.get_classifier().weight.detach()[targets]  # [N, K]
        else:
            # images are independent in eval mode, so one backward pass gives every image's gradient
            score = logits.gather(1, targets[:, None]).sum()
            grads = torch.autograd.grad(score, activations)[0]
            weights = _gradcam_weights(grads, activations.detach()) if method == "gradcam" else \
                _gradcam_plus_plus_weights(grads, activations.detach())
        maps = torch.relu((weights[:, :, None, None] * activations.detach()).sum(1))
        maps = F.interpolate(_normalize(maps)[:, None], size=images.shape[-2:], mode="bilinear",
                             align_corners=False)[:, 0]
    return CAMResult(_normalize(maps), targets, probs.gather(1, targets[:, None])[:, 0])


def _gradcam_weights(grads: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    return grads.mean(dim=(2, 3))


def _gradcam_plus_plus_weights(grads: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    g2 = grads ** 2
    g3 = g2 * grads
    total = activations.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + total * g3 + 1e-6)  # eq. 19, with the exponential score
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (torch.relu(grads) * alpha).sum(dim=(2, 3))


# -- pictures ----------------------------------------------------------------------------------


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


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per image, whether the map's peak lies inside the box ``(x0, y0, x1, y1)`` (x1, y1 exclusive)."""
    n, h, w = maps.shape
    peak = maps.flatten(1).argmax(1)
    y, x = peak // w, peak % w
    b = boxes.to(maps.device)
    return (x >= b[:, 0]) & (x < b[:, 2]) & (y >= b[:, 1]) & (y < b[:, 3])


def largest_region_box(cam: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """The box around the largest connected region above `threshold` x the map's maximum (the CAM paper's rule)."""
    from scipy import ndimage

    values = cam.detach().cpu().numpy()
    labels, count = ndimage.label(values >= threshold * values.max())
    if count == 0:
        return torch.zeros(4, dtype=torch.long)
    sizes = ndimage.sum(np.ones_like(values), labels, index=range(1, count + 1))
    ys, xs = np.nonzero(labels == 1 + int(np.argmax(sizes)))
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``[N, 4]`` against boxes ``[N, 4]``, pairwise by row (x1, y1 exclusive)."""
    import torchvision

    return torchvision.ops.box_iou(a.float(), b.float()).diagonal()


def localization(maps: torch.Tensor, boxes: torch.Tensor, threshold: float = 0.2) -> dict[str, float]:
    """Pointing-game accuracy and mean box IoU (largest region above `threshold` of the maximum)."""
    predicted = torch.stack([largest_region_box(m, threshold) for m in maps])
    return {
        "pointing_game": pointing_game(maps, boxes).float().mean().item(),
        "box_iou": box_iou(predicted, boxes.cpu()).mean().item(),
    }


def evaluate_localization(model: nn.Module, x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor,
                          layer: str | None = None, batch_size: int = 64) -> dict[str, dict[str, float] | None]:
    """Every method's :func:`localization` scores on images `x` (targets: their true classes `y`).

    A method that does not apply to the net (plain CAM on a head that is not GAP + linear) scores None.
    Shows a progress bar per method.
    """
    from tqdm import tqdm

    scores: dict[str, dict[str, float] | None] = {}
    for method in METHODS:
        maps = []
        try:
            for i in tqdm(range(0, len(x), batch_size), desc=method, leave=False):
                maps.append(compute_cam(model, x[i:i + batch_size], y[i:i + batch_size], method, layer).maps)
        except ZooError:
            scores[method] = None
            continue
        scores[method] = localization(torch.cat(maps), boxes)
    return scores


def localization_rows(scores: dict[str, dict[str, float] | None]) -> list[list[str]]:
    """:func:`evaluate_localization`'s scores as rows ``[method, pointing_game, box_iou]`` (n/a: does not apply)."""
    return [[method, *(("n/a", "n/a") if s is None else (f"{s['pointing_game']:.3f}", f"{s['box_iou']:.3f}"))]
            for method, s in scores.items()]


def save_localization(scores: dict[str, dict[str, float] | None], model: str, path: str | Path) -> Path:
    """The scores of :func:`evaluate_localization` as a CSV (model, method, pointing_game, box_iou), atomically."""
    import csv

    from zoo.spreadsheet import safe_row

    with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        csv.writer(f).writerows([["model", "method", "pointing_game", "box_iou"]]
                                + [safe_row([model, *row]) for row in localization_rows(scores)])
    return Path(path)


# -- during training ---------------------------------------------------------------------------


def _stamp(ckpt_path: str | Path) -> tuple[str, int]:
    """The checkpoint's absolute path and modification time: what the loaders below are cached by."""
    path = Path(ckpt_path).resolve()
    return str(path), path.stat().st_mtime_ns if path.is_file() else -1


@functools.lru_cache(maxsize=1)
def _record(path: str, _mtime: int) -> Any:
    from zoo.checkpoint import CheckpointRecord

    return CheckpointRecord.read(path)


@functools.lru_cache(maxsize=1)
def _model(path: str, _mtime: int) -> Any:
    from zoo.classifier import ImageClassifier

    return ImageClassifier.load_from_checkpoint(_record(path, _mtime), map_location="cpu").eval()


@functools.lru_cache(maxsize=1)
def _datamodule(path: str, _mtime: int, data: str | None, arguments: str) -> tuple[str, Any]:
    return _record(path, _mtime).datamodule(data, json.loads(arguments))


# ``zoo cam --evaluate`` scores and draws with the same checkpoint and dataset: the last one of each is kept
# (for an unchanged file), so that loading and setting up the data happen once.


def draw_checkpoint(ckpt_path: str | Path, images: Sequence[str] | None = None, data: str | None = None,
                    split: str = "test", n: int = 32, method: str = "gradcam", layer: str | None = None,
                    out: str | Path = "cams", arguments: dict[str, Any] | None = None) -> tuple[Path, int]:
    """Class activation maps of a trained model drawn over its images, as ``OUT/METHOD.png``.

    The images are the first `n` readable files (`images`, prepared as the model was trained; at most
    :data:`zoo.figures.MAX_GRID`) or the first `n` of a dataset's `split`
    (`data`, by default the checkpoint's own, `arguments` overriding its arguments as ``--set`` does; its boxes
    drawn where it has them). Each title names the predicted
    class and its probability, and the file or the true class. Returns the picture's path and the image count.
    """
    from zoo.data.files import denormalize, printable, read_images

    check_grid_count(n)
    stamp = _stamp(ckpt_path)
    record, model = _record(*stamp), _model(*stamp)
    names = record.labels
    labels, boxes, captions = None, None, None
    if images:
        x, shown, paths = read_images(images, record.image_size, record.in_chans, *record.normalization(), limit=n)
        captions = [printable(p.name) for p in paths]
    else:
        _, datamodule = _datamodule(*stamp, data, json.dumps(arguments or {}, sort_keys=True))
        x, labels = datamodule.normalized(split, n)
        split_boxes = getattr(datamodule, "boxes", {}).get(split)
        boxes = split_boxes[:n] if split_boxes is not None else None
        shown = denormalize(x, datamodule.mean, datamodule.std)
    result = compute_cam(model, x, method=method, layer=layer)
    titles = [(f"{captions[i]}: " if captions else "") + f"{names[target]} ({prob:.2f})"
              + (f" / true {names[labels[i]]}" if labels is not None else "")
              for i, (target, prob) in enumerate(zip(result.targets.tolist(), result.probs.tolist(), strict=True))]
    path = Path(out) / f"{method}.png"
    save_grid(shown, result.maps, titles, str(path), boxes=boxes)
    return path, len(x)


def evaluate_checkpoint(ckpt_path: str | Path, data: str | None = None, split: str = "test",
                        layer: str | None = None, out: str | Path = "cams", arguments: dict[str, Any] | None = None
                        ) -> tuple[dict[str, dict[str, float] | None], Path, int]:
    """Score every CAM method's localization by a trained model on a dataset with boxes (the whole `split`; the
    dataset's `arguments` as in :func:`draw_checkpoint`).

    Writes ``OUT/localization.csv``; returns the scores (:func:`evaluate_localization`), its path and the image count.
    """
    stamp = _stamp(ckpt_path)
    model = _model(*stamp)
    name, datamodule = _datamodule(*stamp, data, json.dumps(arguments or {}, sort_keys=True))
    boxes = getattr(datamodule, "boxes", {}).get(split)
    if boxes is None:
        raise InputError(f"dataset {name!r} has no object boxes to score against; use cluttered_digits")
    x, y = datamodule.normalized(split)
    scores = evaluate_localization(model, x, y, boxes, layer)
    return scores, save_localization(scores, model.hparams.model, Path(out) / "localization.csv"), len(x)


class CAMLogger(L.Callback):
    """Every `every_n_epochs`, a CAM grid of the same validation images, as PNG and to TensorBoard.

    The PNG goes to ``<log_dir>/cams/epoch_<n>.png``; a TensorBoard logger also gets it as an image.
    On the command line: ``zoo fit ... --trainer.callbacks+=zoo.cam.CAMLogger``.

    Args:
        every_n_epochs: how often (in epochs) to draw.
        n: how many validation images (the first of the validation set, the same every time).
        method: ``gradcam``, ``gradcam++`` or ``cam``.
    """

    def __init__(self, every_n_epochs: int = 5, n: int = 16, method: str = "gradcam") -> None:
        if method not in METHODS:
            raise InputError(f"unknown CAM method {method!r}; choose one of: {', '.join(METHODS)}")
        self.every_n_epochs, self.n, self.method = every_n_epochs, n, method
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.written: list[str] = []

    def on_validation_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if self.batch is None or len(self.batch[0]) < self.n:
            x, y = batch[0].detach().cpu(), batch[1].detach().cpu()
            if self.batch is not None:
                x, y = torch.cat([self.batch[0], x]), torch.cat([self.batch[1], y])
            self.batch = (x[:self.n], y[:self.n])

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        due = (epoch + 1) % self.every_n_epochs == 0
        if trainer.sanity_checking or self.batch is None or not due or not trainer.is_global_zero:
            return
        import os

        from zoo.data.files import denormalize

        x, y = self.batch
        result = compute_cam(module, x.to(module.device), method=self.method)
        data = trainer.datamodule
        mean, std = getattr(data, "mean", 0.0), getattr(data, "std", 1.0)
        shown = denormalize(x, mean, std)
        names = getattr(data, "class_names", None) or [str(i) for i in range(module.net.num_classes)]
        titles = [f"{names[p]} ({q:.2f}) / {names[t]}" for p, q, t in
                  zip(result.targets.tolist(), result.probs.tolist(), y.tolist(), strict=True)]
        folder = os.path.join(trainer.log_dir or trainer.default_root_dir, "cams")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"epoch_{epoch:03d}.png")
        save_grid(shown, result.maps.cpu(), titles, path)
        self.written.append(path)
        for logger in trainer.loggers:
            if type(logger).__name__ == "TensorBoardLogger":
                from PIL import Image

                picture = np.asarray(Image.open(path).convert("RGB"))
                logger.experiment.add_image(f"cam/{self.method}", picture, epoch, dataformats="HWC")
