"""Class activation maps for every zoo net: 11 methods, overlays, localization and faithfulness, as pictures and
tables from a checkpoint, and during training.

- :mod:`zoo.cam.methods`: :func:`compute_cam` and the methods (CAM, Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM,
  LayerCAM, Grad-CAM element-wise, EigenCAM, EigenGrad-CAM, Score-CAM, Ablation-CAM), on CNNs and transformers;
- :mod:`zoo.cam.metrics`: localization (pointing game, box IoU) and faithfulness (deletion and insertion AUC, ROAD,
  the model-randomization sanity check), :func:`evaluate_faithfulness` for every method at once;
- :mod:`zoo.cam.pictures`: overlays and grids;
- here: what ``zoo cam`` does with a checkpoint (:func:`draw_checkpoint`, :func:`evaluate_checkpoint`) and
  :class:`CAMLogger`, which draws during training.

The maps are computed in eval mode with gradients enabled even inside Lightning's ``inference_mode`` (validation,
test, predict), and every module's train/eval mode is put back; no parameter gets a gradient.
"""

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from zoo.atomic import atomic_path, output_file, output_folder
from zoo.cam.methods import MANY_PASSES, METHODS, PAPERS, CAMResult, check_method, compute_cam, transformer_layer
from zoo.cam.metrics import (
    FAITHFULNESS,
    box_iou,
    deletion_insertion,
    evaluate_faithfulness,
    largest_region_box,
    localization,
    pointing_game,
    randomized,
    rank_correlation,
    road,
)
from zoo.cam.pictures import overlay, save_grid, save_methods
from zoo.errors import ZooError
from zoo.figures import check_grid_count

__all__ = ["CAMLogger", "CAMResult", "FAITHFULNESS", "MANY_PASSES", "METHODS", "PAPERS", "SCORE_COLUMNS", "box_iou",
           "check_method", "compute_cam", "deletion_insertion", "draw_checkpoint", "evaluate_checkpoint",
           "evaluate_faithfulness", "largest_region_box", "localization", "overlay", "pointing_game", "randomized",
           "rank_correlation", "road", "save_grid", "save_methods", "save_scores", "score_rows", "transformer_layer"]

#: The columns of ``zoo cam --evaluate``'s table and CSV, after the method.
SCORE_COLUMNS = ("deletion", "insertion", "road", "sanity", "pointing_game", "box_iou", "seconds_per_image")


def score_rows(scores: dict[str, dict[str, float] | None], columns: Sequence[str] = SCORE_COLUMNS
               ) -> list[list[str]]:
    """:func:`evaluate_faithfulness`'s scores as rows ``[method, *columns]`` ("n/a": the method does not apply;
    "-": not measured, e.g. box scores without boxes)."""
    def cell(s: dict[str, float] | None, column: str) -> str:
        if s is None:
            return "n/a"
        value = s.get(column)
        return "-" if value is None else f"{value:.4f}" if column == "seconds_per_image" else f"{value:.3f}"

    return [[method, *(cell(s, c) for c in columns)] for method, s in scores.items()]


def save_scores(scores: dict[str, dict[str, float] | None], model: str, path: str | Path) -> Path:
    """The scores of :func:`evaluate_faithfulness` as a CSV (model, method, then :data:`SCORE_COLUMNS` and ROAD's
    two halves), atomically."""
    import csv

    from zoo.spreadsheet import safe_row

    columns = (*SCORE_COLUMNS, "road_morf", "road_lerf")
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        csv.writer(f).writerows([["model", "method", *columns]]
                                + [safe_row([model, *row]) for row in score_rows(scores, columns)])
    return Path(path)


# -- from a checkpoint -------------------------------------------------------------------------


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


def _images(ckpt_path: str | Path, images: Sequence[str] | None, data: str | None, split: str, n: int | None,
            arguments: dict[str, Any] | None) -> tuple[Any, Any, Any, Any, Any, list[str] | None]:
    """The model and its images: ``(model, x normalized, x shown, labels, boxes, file captions)``."""
    from zoo.data.files import denormalize, printable, read_images

    stamp = _stamp(ckpt_path)
    record, model = _record(*stamp), _model(*stamp)
    if images:
        x, shown, paths = read_images(images, record.image_size, record.in_chans, *record.normalization(), limit=n)
        return model, x, shown, None, None, [printable(p.name) for p in paths]
    name, datamodule = _datamodule(*stamp, data, json.dumps(arguments or {}, sort_keys=True))
    x, labels = datamodule.normalized(split, n)
    split_boxes = getattr(datamodule, "boxes", {}).get(split)
    boxes = split_boxes[:len(x)] if split_boxes is not None else None
    return model, x, denormalize(x, datamodule.mean, datamodule.std), labels, boxes, None


def draw_checkpoint(ckpt_path: str | Path, images: Sequence[str] | None = None, data: str | None = None,
                    split: str = "test", n: int = 32, method: str = "gradcam", layer: str | None = None,
                    out: str | Path = "cams", arguments: dict[str, Any] | None = None,
                    batch_size: int = 64, overwrite: bool = False) -> tuple[Path, int]:
    """Class activation maps of a trained model drawn over its images, as ``OUT/METHOD.png``.

    The images are the first `n` readable files (`images`, prepared as the model was trained; at most
    :data:`zoo.figures.MAX_GRID`) or the first `n` of a dataset's `split`
    (`data`, by default the checkpoint's own, `arguments` overriding its arguments as ``--set`` does; its boxes
    drawn where it has them). Each title names the predicted
    class and its probability, and the file or the true class. ``method="all"`` draws every method side by side,
    one row per image, as ``OUT/all.png``; `out` is made if missing, and an existing picture is replaced only with
    `overwrite`. Returns the picture's path and the image count.
    """
    if method != "all":
        check_method(method)
    check_grid_count(n)
    path = output_file(output_folder(out) / f"{method}.png", overwrite, (".png",))  # before any work, as export's
    model, x, shown, labels, boxes, captions = _images(ckpt_path, images, data, split, n, arguments)
    names = _record(*_stamp(ckpt_path)).labels
    if method == "all":
        maps: dict[str, Any] = {}
        for each in METHODS:
            try:
                result = compute_cam(model, x, method=each, layer=layer, batch_size=batch_size)
                maps[each] = result.maps
            except ZooError:
                maps[each] = None  # plain CAM on a head that is not GAP + linear
        # every method's result names the same predicted classes and probabilities: the last one serves the titles
    else:
        result = compute_cam(model, x, method=method, layer=layer, batch_size=batch_size)
    titles = [(f"{captions[i]}: " if captions else "") + f"{names[target]} ({prob:.2f})"
              + (f" / true {names[labels[i]]}" if labels is not None else "")
              for i, (target, prob) in enumerate(zip(result.targets.tolist(), result.probs.tolist(), strict=True))]
    if method == "all":
        save_methods(shown, maps, titles, str(path))
    else:
        save_grid(shown, result.maps, titles, str(path), boxes=boxes)
    return path, len(x)


def evaluate_checkpoint(ckpt_path: str | Path, data: str | None = None, split: str = "test", n: int | None = None,
                        methods: Sequence[str] = METHODS, layer: str | None = None, out: str | Path = "cams",
                        arguments: dict[str, Any] | None = None, batch_size: int = 64, overwrite: bool = False
                        ) -> tuple[dict[str, dict[str, float] | None], Path, int]:
    """Score each method's maps by a trained model on the first `n` images of a dataset's `split` (all of it when
    None; targets: the true classes): faithfulness always (:func:`evaluate_faithfulness`), and where the dataset
    has object boxes (cluttered_digits) the pointing game and box IoU. `data` and `arguments` as in
    :func:`draw_checkpoint`.

    Writes ``OUT/scores.csv`` (replacing one only with `overwrite`); returns the scores, its path and the image count.
    """
    path = output_file(output_folder(out) / "scores.csv", overwrite, (".csv",))
    model, x, _, labels, boxes, _ = _images(ckpt_path, None, data, split, n, arguments)
    scores = evaluate_faithfulness(model, x, labels, methods, layer, batch_size, boxes=boxes)
    return scores, save_scores(scores, model.hparams.model, path), len(x)


class CAMLogger(L.Callback):
    """Every `every_n_epochs`, a CAM grid of the same validation images, as PNG and to TensorBoard.

    The PNG goes to ``<log_dir>/cams/epoch_<n>.png``; a TensorBoard logger also gets it as an image.
    On the command line: ``zoo fit ... --trainer.callbacks+=zoo.cam.CAMLogger``.

    Args:
        every_n_epochs: how often (in epochs) to draw.
        n: how many validation images (the first of the validation set, the same every time).
        method: one of :data:`METHODS`.
    """

    def __init__(self, every_n_epochs: int = 5, n: int = 16, method: str = "gradcam") -> None:
        check_method(method)
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
