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
from pathlib import Path

import torch

from zoo.errors import CheckpointError, ZooError
from zoo.registry import WEIGHTS, Weights, get_weights, list_weights, register_weights

__all__ = ["WEIGHTS", "Weights", "get_weights", "list_weights", "read_weights", "register_weights"]


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
