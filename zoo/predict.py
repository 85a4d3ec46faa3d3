"""Top-k predictions for image files or a dataset's split, prepared with the checkpoint's own preprocessing."""

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from zoo.atomic import atomic_path, output_file
from zoo.checkpoint import CheckpointRecord
from zoo.classifier import ImageClassifier
from zoo.data.files import image_paths, printable, read_images
from zoo.errors import InputError, check_count
from zoo.spreadsheet import safe_row


def predict_files(checkpoint_path: str | Path, sources: Iterable[str | Path], out: str | Path, topk: int | None = None,
                  batch_size: int = 64, overwrite: bool = False) -> tuple[int, list[Path]]:
    """Write ``file, class_1, prob_1, ..., class_k, prob_k`` per image to the CSV `out`.

    `topk` defaults to 3, or every class of a model with fewer. Files that are not readable images are
    skipped with a warning and returned. An existing `out` is replaced only with `overwrite`. The CSV is written
    under a temporary name and renamed when complete. The model scores as in its test (with its test-time
    augmentation).

    Returns:
        the number of images predicted and the paths skipped.
    """
    check_count("batch_size", batch_size)
    out = output_file(out, overwrite, (".csv",))
    record = CheckpointRecord.read(checkpoint_path)
    model, topk = _model(record, topk)
    mean, std = record.normalization()
    paths = image_paths(sources)
    if not paths:
        raise InputError(f"no files in {', '.join(map(str, sources))}")
    skipped: list[Path] = []

    def batches() -> Iterator[tuple[list[list[str]], torch.Tensor]]:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            try:  # unreadable files are reported by read_images and left out of `kept`
                x, _, kept = read_images(chunk, record.image_size, record.in_chans, mean, std)
            except InputError:  # nothing readable in this chunk
                x, kept = None, []
            skipped.extend(p for p in chunk if p not in kept)
            if x is not None:
                yield [[printable(p)] for p in kept], x

    top1 = _write_csv(out, model, record.labels, topk, ["file"], batches(), -(-len(paths) // batch_size),
                      f"no readable images in {', '.join(map(str, sources))}")
    return len(top1), skipped


def predict_split(checkpoint_path: str | Path, out: str | Path, data: str | None = None, split: str = "test",
                  arguments: dict[str, Any] | None = None, topk: int | None = None, batch_size: int = 256,
                  overwrite: bool = False) -> tuple[str, int, float]:
    """Write ``index, label, class_1, prob_1, ..., class_k, prob_k`` for each image of a dataset's split to the
    CSV `out`: by default the test split of the dataset the checkpoint was trained on, prepared as in training.

    `arguments` override the dataset's (as ``--set``); `index` is the image's place in the split, `label` its true
    class. `topk`, `overwrite` and the scoring are as in :func:`predict_files`.

    Returns:
        the dataset's name, the number of images and the top-1 accuracy (%) of the predictions.
    """
    check_count("batch_size", batch_size)
    out = output_file(out, overwrite, (".csv",))
    record = CheckpointRecord.read(checkpoint_path)
    model, topk = _model(record, topk)
    name, datamodule = record.datamodule(data, arguments)
    x, y = datamodule.normalized(split)
    labels = datamodule.class_names

    def batches() -> Iterator[tuple[list[list[str]], torch.Tensor]]:
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            yield [[str(i), labels[int(y[i])]] for i in range(start, stop)], x[start:stop]

    top1 = _write_csv(out, model, record.labels, topk, ["index", "label"], batches(), -(-len(x) // batch_size),
                      f"the {split} split of {name} has no images")
    return name, len(top1), 100 * (torch.tensor(top1) == y).float().mean().item()


def _model(record: CheckpointRecord, topk: int | None) -> tuple[ImageClassifier, int]:
    model = ImageClassifier.load_from_checkpoint(record, map_location="cpu").eval()
    classes = record.num_classes
    topk = min(3, classes) if topk is None else topk  # a 2-class model: both
    if not 1 <= topk <= classes:
        raise InputError(f"--topk must be between 1 and the {classes} classes, got {topk}")
    return model, topk


def _write_csv(out: Path, model: ImageClassifier, names: list[str], topk: int, keys: list[str],
               batches: Iterable[tuple[list[list[str]], torch.Tensor]], total: int, empty: str) -> list[int]:
    """One row per image, ``*keys, class_1, prob_1, ...``: the batches' key cells, then the model's top-k classes
    (with its test-time augmentation). Written under a temporary name, renamed when complete; `empty` is the error
    when no batch came (no file is left); `names` are the class names. Returns each row's top class, in order."""
    top1: list[int] = []
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys + [f"{c}_{i}" for i in range(1, topk + 1) for c in ("class", "prob")])
        for cells, x in tqdm(batches, desc="predict", unit="batch", total=total, disable=total == 1):
            with torch.no_grad():
                probs, classes = model.evaluate(x).softmax(1).topk(topk, dim=1)
            for key, p, c in zip(cells, probs.tolist(), classes.tolist(), strict=True):
                writer.writerow(safe_row(key + [v for i in range(topk) for v in (names[c[i]], f"{p[i]:.6f}")]))
            top1 += classes[:, 0].tolist()
        if not top1:  # leaves no file
            raise InputError(empty)
    return top1
