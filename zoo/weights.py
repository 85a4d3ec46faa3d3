"""zoo's own pretrained weights: ``zoo.create("resnet20", weights="zoo:fashion_mnist")``.

As torchvision's ``Weights``, each :class:`Weights` carries what using it correctly needs: the builder
arguments it was trained with, the normalization the net expects, the dataset, its measured test accuracy,
the recipe and the data's licence. The files live in packages that register them through the
``zoo.weights`` entry point (``plugins/zoo-weights`` ships zoo's), or behind a URL (downloaded once into
``$TORCH_HOME/hub/checkpoints/zoo``). Either way a file's sha256 is checked before it is read, and it is
read as weights only (safetensors, or ``torch.load(weights_only=True)``).
"""

import hashlib
import os
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import CheckpointError, UnknownNameError, ZooError
from zoo.registry import Registry


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for one registered model.

    Attributes:
        model: the registry name of the net (``resnet20``).
        tag: what they were trained on (``fashion_mnist``); ``zoo:TAG`` names them.
        sha256: the file's SHA-256, checked before every read.
        file: the file, for weights shipped in a package (``.safetensors`` or ``.pth``)...
        url: ...or where to download it (https in practice).
        arguments: the builder arguments the weights fit (``num_classes``, ``in_chans``, ``image_size``).
        meta: ``dataset``, ``top1`` (these weights on the test set), ``leaderboard_top1`` (the recipe's mean
            over seeds), ``recipe`` (the config that trained them), ``params``, ``input_size``, ``mean`` and
            ``std`` (the normalization the net expects), ``class_names``, ``licence``.
    """

    model: str
    tag: str
    sha256: str
    file: str | None = None
    url: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"zoo:{self.tag}"

    @property
    def normalization(self) -> tuple[list[float], list[float]] | None:
        """The (mean, std) the net expects its images normalized with, or None if not recorded."""
        mean, std = self.meta.get("mean"), self.meta.get("std")
        return (list(mean), list(std)) if mean is not None and std is not None else None


WEIGHTS: Registry[Weights] = Registry("weights", "zoo models --pretrained", "zoo.weights")


def register_weights(weights: Weights) -> Weights:
    """Make `weights` loadable as ``zoo:TAG`` for its model (plugins call this when imported)."""
    if (weights.file is None) == (weights.url is None):
        raise ZooError(f"weights {weights.model}:{weights.tag} need exactly one of file and url")
    WEIGHTS.add(f"{weights.model}:{weights.tag}", weights)
    return weights


def list_weights(model: str | None = None) -> list[Weights]:
    """zoo's registered weights, of one model or of all, sorted by model and tag."""
    return [WEIGHTS.get(key) for key in WEIGHTS.names() if model is None or key.split(":")[0] == model]


def get_weights(model: str, tag: str) -> Weights:
    """The weights ``zoo:TAG`` of `model`; an error lists the ones that exist."""
    try:
        return WEIGHTS.get(f"{model}:{tag}")
    except UnknownNameError:
        have = [w.name for w in list_weights(model)]
        listed = f"{model} has: {', '.join(have)}" if have else (
            f"{model} has none; models with zoo weights: "
            f"{', '.join(sorted({w.model for w in list_weights()})) or 'none (pip install -e plugins/zoo-weights)'}")
        raise UnknownNameError(f"unknown weights 'zoo:{tag}' for {model!r}; {listed} (see: zoo models --pretrained)"
                               ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(weights: Weights) -> Path:
    """Where downloaded weights are kept: the torch hub cache (``TORCH_HOME`` sets it), under ``zoo/``."""
    suffix = Path(weights.url or "").suffix or ".safetensors"
    return Path(torch.hub.get_dir()) / "checkpoints" / "zoo" / f"{weights.model}-{weights.tag}-{weights.sha256[:8]}" \
        f"{suffix}"


def weights_file(weights: Weights) -> Path:
    """The checked file of `weights`: the package's own, or the cached download (downloaded when missing).

    A file whose sha256 is not the registered one is never read: a package file is an error, a download
    is deleted and nothing is cached.
    """
    if weights.file is not None:
        path = Path(weights.file)
        if not path.is_file():
            raise CheckpointError(f"the file of {weights.name} for {weights.model} is missing ({path}); "
                                  "reinstall the package that ships it (pip install -e plugins/zoo-weights)")
        _check(path, weights, "its package's file")
        return path
    path = cache_path(weights)
    if path.is_file():
        _check(path, weights, "the cached file", delete=True)
        return path
    return _download(weights, path)


def _check(path: Path, weights: Weights, what: str, delete: bool = False) -> None:
    found = sha256_of(path)
    if found != weights.sha256:
        if delete:
            path.unlink(missing_ok=True)
        raise CheckpointError(
            f"{what} for {weights.name} ({weights.model}) has sha256 {found}, but the weights are registered with "
            f"sha256 {weights.sha256}; it was refused{' and deleted' if delete else ''}: the file is damaged or "
            "not the published one")


def _download(weights: Weights, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    url = weights.url or ""
    where = f"or put the file from {url} at {path} (TORCH_HOME sets the folder)"
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
    except urllib.error.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise ZooError(f"cannot download {weights.name} for {weights.model}: {url} answered HTTP {exc.code} "
                       f"({exc.reason}); check the URL of the weights (zoo info {weights.model}), {where}") from None
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise ZooError(f"cannot download {weights.name} for {weights.model} from {url} ({reason}); connect to "
                       f"the network and try again, {where}") from None
    found = sha256_of(partial)
    if found != weights.sha256:
        partial.unlink(missing_ok=True)
        raise CheckpointError(
            f"the file downloaded from {url} has sha256 {found}, but {weights.name} for {weights.model} is "
            f"registered with sha256 {weights.sha256}; it was deleted and nothing was cached: the server holds "
            "another file (tampered, or a newer version)")
    partial.replace(path)
    return path


def read_weights(weights: Weights) -> dict[str, torch.Tensor]:
    """The state dict of `weights`, after the sha256 check, read as weights only."""
    path = weights_file(weights)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


__all__ = ["WEIGHTS", "Weights", "get_weights", "list_weights", "read_weights", "register_weights", "sha256_of",
           "weights_file"]
