"""torch.hub entry points: each of zoo's models by its registry name, with zoo's weights if asked.

    net = torch.hub.load("path/to/zoo", "resnet20", source="local", weights="zoo:fashion_mnist")
    net = torch.hub.load("path/to/zoo", "resnet20", source="local", pretrained=True)   # the same weights

Each entry point is :func:`zoo.create_model` for that name: it takes the same arguments (``weights``,
``pretrained``, ``num_classes``, ...) and returns the plain ``nn.Module``. zoo's own weights come from the
zoo-weights plugin when it is installed, else from this checkout's ``plugins/zoo-weights``.
"""

import importlib.util
import sys
from pathlib import Path
from typing import Any

dependencies = ["torch", "torchvision", "safetensors"]  # what torch.hub checks before importing zoo

_HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("zoo_weights") is None:  # not installed: this checkout's files, registered on import
    sys.path.insert(0, str(_HERE / "plugins" / "zoo-weights"))
    import zoo_weights  # noqa: F401

import zoo  # noqa: E402

_NAMES = [name for name in zoo.list_models(exclude="*/*") if name.isidentifier()]


def _entry(name: str) -> Any:
    def create(**kwargs: Any) -> Any:
        return zoo.create_model(name, **kwargs)

    create.__name__ = name
    create.__doc__ = f"zoo.create_model({name!r}, **kwargs): {zoo.model_info(name).summary}"
    return create


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return _entry(name)
    raise AttributeError(f"zoo's hubconf has no entry point {name!r}; see torch.hub.list or zoo models")


def __dir__() -> list[str]:
    return ["dependencies", *_NAMES]
