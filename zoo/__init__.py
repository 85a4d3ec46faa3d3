"""zoo: a PyTorch Lightning model zoo for image classification.

>>> import zoo
>>> model = zoo.create("lenet5", num_classes=10, in_chans=1)   # a LightningModule
>>> net = zoo.create_model("mlp", num_classes=10)              # the plain nn.Module
"""

from typing import Any

from zoo import models  # noqa: F401  (registers the built-in families)
from zoo.classifier import ImageClassifier
from zoo.errors import ZooError
from zoo.registry import ModelInfo, create_model, list_models, model_info, register_model
from zoo.version import __version__


def create(model: str, **kwargs: Any) -> ImageClassifier:
    """A ready-to-train :class:`ImageClassifier` around the registered net `model`.

    Keyword arguments go to :class:`ImageClassifier` (loss, optimizer, ...) and the net's
    builder (num_classes, in_chans, image_size and the net's own arguments).
    """
    return ImageClassifier(model, **kwargs)


from zoo import data, weights  # noqa: E402  (after create: data modules may import zoo)


def __getattr__(name: str) -> Any:
    """``zoo.fit``: imported on first use (it brings in LightningCLI and jsonargparse)."""
    if name == "fit":
        from zoo.train import fit

        return fit
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = [
    "__version__",
    "ImageClassifier",
    "ModelInfo",
    "ZooError",
    "create",
    "create_model",
    "data",
    "fit",
    "list_models",
    "model_info",
    "register_model",
    "weights",
]
