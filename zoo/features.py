"""Embeddings: the pooled vector a trained net's final layer reads (pre-logits), for every image of a dataset.

``zoo features`` writes them with the labels to a NumPy ``.npz`` for a linear probe or kNN elsewhere.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.atomic import atomic_path, output_file
from zoo.checkpoint import CheckpointRecord
from zoo.errors import InputError, check_count
from zoo.models.net import stage_probe


@torch.no_grad()
def embed(net: nn.Module, x: torch.Tensor, batch_size: int = 256, desc: str | None = None) -> torch.Tensor:
    """``forward_head(forward_features(x), pre_logits=True)`` of images `x` ``[N, C, H, W]``, in batches: ``[N, D]``."""
    from tqdm import tqdm

    check_count("batch_size", batch_size)
    if not hasattr(net, "forward_head"):
        raise InputError(f"{type(net).__name__} has no pre-logits features to embed with")
    was_training = net.training
    net.eval()
    try:
        vectors = [net.forward_head(net.forward_features(x[i:i + batch_size]), pre_logits=True).flatten(1)
                   for i in tqdm(range(0, len(x), batch_size), desc=desc, leave=False)]
    finally:
        net.train(was_training)
    return torch.cat(vectors) if vectors else torch.zeros(0, 0)


def dataset_features(ckpt: str | Path, data: str | None = None, arguments: dict[str, Any] | None = None,
                     splits: tuple[str, ...] = ("train", "val", "test"),
                     batch_size: int = 256, stage: int | None = None, out: str | Path | None = None,
                     overwrite: bool = False) -> tuple[str, dict[str, np.ndarray]]:
    """The checkpoint's net's embedding of each split of a dataset (default: the one it was trained on).

    With `stage`, the features of that stage of the net instead of what its final layer reads (see
    :func:`zoo.models.net.stage_probe`: the map average-pooled to at most 4,096 values).
    Returns the dataset's name and ``{"class_names", "model" (the net's registry name), "<split>_features" [N, D],
    "<split>_labels" [N]}``; with `out`, also writes them there as an ``.npz`` (:func:`save_features`), checked
    before any work and replaced only with `overwrite`.
    """
    path = None if out is None else output_file(out, overwrite, (".npz",))
    record = CheckpointRecord.read(ckpt)
    net = record.net()
    if stage is not None:
        net = stage_probe(net, stage, record.image_size)
    name, datamodule = record.datamodule(data, arguments, same_classes=False)
    found: dict[str, np.ndarray] = {"class_names": np.array(datamodule.class_names), "model": np.array(record.model)}
    for split in splits:
        x, y = datamodule.normalized(split)
        found[f"{split}_features"] = embed(net, x, batch_size, desc=split).numpy()
        found[f"{split}_labels"] = y.numpy()
    if path is not None:
        save_features(found, path)
    return name, found


def save_features(features: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write :func:`dataset_features`'s arrays as an ``.npz``, atomically."""
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, **features)
    return Path(path)
