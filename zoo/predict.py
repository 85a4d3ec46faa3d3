"""Top-k predictions for image files, prepared with the checkpoint's own preprocessing."""

import csv
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from zoo.atomic import atomic_path, output_file
from zoo.checkpoint import read_checkpoint
from zoo.classifier import ImageClassifier
from zoo.data.files import image_paths, read_images
from zoo.errors import InputError
from zoo.spreadsheet import safe_row


def predict_files(checkpoint_path: str | Path, sources: Iterable[str | Path], out: str | Path, topk: int | None = None,
                  batch_size: int = 64, overwrite: bool = False) -> tuple[int, list[Path]]:
    """Write ``file, class_1, prob_1, ..., class_k, prob_k`` per image to the CSV `out`.

    `topk` defaults to 3, or every class of a model with fewer. Files that are not readable images are
    skipped with a warning and returned. An existing `out` is replaced only with `overwrite`. The CSV is written
    under a temporary name and renamed when complete.

    Returns:
        the number of images predicted and the paths skipped.
    """
    out = output_file(out, overwrite, (".csv",))
    model = ImageClassifier.load_from_checkpoint(checkpoint_path, map_location="cpu").eval()
    h = model.hparams
    data = read_checkpoint(checkpoint_path)["zoo"].get("data") or {}
    if data.get("mean") is None:
        raise InputError(f"checkpoint {str(checkpoint_path)!r} does not say how its images were normalized")
    topk = min(3, h.num_classes) if topk is None else topk  # a 2-class model: both
    if not 1 <= topk <= h.num_classes:
        raise InputError(f"--topk must be between 1 and the {h.num_classes} classes, got {topk}")
    names = h.class_names or [str(i) for i in range(h.num_classes)]
    paths = image_paths(sources)
    if not paths:
        raise InputError(f"no files in {', '.join(map(str, sources))}")
    out = Path(out)
    done, skipped = 0, []
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file"] + [f"{c}_{i}" for i in range(1, topk + 1) for c in ("class", "prob")])
        batches = range(0, len(paths), batch_size)
        for start in tqdm(batches, desc="predict", unit="batch", disable=len(batches) == 1):
            chunk = paths[start:start + batch_size]
            try:  # unreadable files are reported by read_images and left out of `kept`
                x, _, kept = read_images(chunk, h.image_size, h.in_chans, data["mean"], data["std"])
            except InputError:  # nothing readable in this chunk
                x, kept = None, []
            skipped += [p for p in chunk if p not in kept]
            if x is None:
                continue
            with torch.no_grad():
                probs, classes = model.evaluate(x).softmax(1).topk(topk, dim=1)  # with its test-time augmentation
            for path, p, c in zip(kept, probs.tolist(), classes.tolist(), strict=True):
                writer.writerow(safe_row([str(path)] + [v for i in range(topk) for v in (names[c[i]], f"{p[i]:.6f}")]))
            done += len(kept)
        if done == 0:  # leaves no file
            raise InputError(f"no readable images in {', '.join(map(str, sources))}")
    return done, skipped
