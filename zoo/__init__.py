"""zoo: a PyTorch Lightning model zoo for image classification.

>>> import zoo
>>> model = zoo.create("lenet5", num_classes=10, in_chans=1)   # a LightningModule
>>> net = zoo.create_model("mlp", num_classes=10)              # the plain nn.Module

Everything here is imported on first use: ``import zoo`` loads nothing heavy, ``zoo.create_model``
loads PyTorch and the nets but not Lightning, and the ``zoo`` command answers ``--help`` at once.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from zoo.version import __version__

if TYPE_CHECKING:
    from zoo import data, weights
    from zoo.catalog import ModelInfo, list_models, model_info
    from zoo.classifier import ImageClassifier
    from zoo.errors import ZooError
    from zoo.models import create_model
    from zoo.registry import register_model
    from zoo.train import fit

_HOMES = {
    "ImageClassifier": "zoo.classifier",
    "ZooError": "zoo.errors",
    "ModelInfo": "zoo.catalog",
    "create_model": "zoo.models",
    "list_models": "zoo.catalog",
    "model_info": "zoo.catalog",
    "register_model": "zoo.registry",
    "fit": "zoo.train",
}
_SUBMODULES = ("data", "weights")  # the public ones; any other (zoo.schedules, zoo.cam) loads when asked too


def create(model: str, **kwargs: Any) -> "ImageClassifier":
    """A ready-to-train :class:`ImageClassifier` around the registered net `model` (for ``knn``, the
    :class:`~zoo.classifier.KNNClassifier` subclass, which memorizes instead of training).

    Keyword arguments go to :class:`ImageClassifier` (loss, optimizer, ...) and the net's
    builder (num_classes, in_chans, image_size and the net's own arguments). Those not given are the
    net's own, as :func:`create_model` builds it: ``zoo.create("resnet18")`` is a 1000-class net for
    224-pixel RGB images, ``zoo.create("lenet5")`` a 10-class one for 32-pixel grey images.
    """
    from zoo.classifier import classifier_for

    return classifier_for(model)(model, **kwargs)


def __getattr__(name: str) -> Any:
    """The public names, each imported from its module when first asked for (PEP 562)."""
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"zoo.{name}") is not None:
        value = importlib.import_module(f"zoo.{name}")  # zoo.data, zoo.schedules, zoo.cam, ...
    else:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, *_SUBMODULES})


__all__ = [
    "ImageClassifier",
    "ModelInfo",
    "ZooError",
    "__version__",
    "create",
    "create_model",
    "data",
    "fit",
    "list_models",
    "model_info",
    "register_model",
    "weights",
]
