"""zoo-timm: every timm architecture in zoo's registry as ``timm/<name>``.

timm's models already speak the net protocol zoo borrowed from timm (``forward_features``,
``forward_head``, ``reset_classifier``, ``num_features``); this plugin adds the rest on top of the
timm net itself, so its ``state_dict`` keeps timm's names: the input check, ``in_chans`` and
``min_size``, the backbone/head split fine-tuning freezes by, and ``cam_layer`` (the module of the
last feature map, from timm's ``feature_info``).

    >>> import zoo
    >>> model = zoo.create("timm/resnet18", num_classes=10)   # then: zoo fit --model timm/resnet18
"""

import functools
import importlib
from typing import Any

import timm
from torch import nn

from zoo import register_model
from zoo.models.net import ZooNet

NAMESPACE = "timm"
PREFIX = "Zoo__"  # zoo_timm.Zoo__resnet__ResNet: timm.models.resnet.ResNet with the protocol
HEAD_CHILDREN = ("global_pool", "head_drop", "fc_norm", "head", "fc", "classifier")


class TimmProtocol:
    """Mixed into a built timm net's class: what zoo's protocol adds to timm's own."""

    check_input = ZooNet.check_input
    head_modules = ZooNet.head_modules
    backbone_modules = ZooNet.backbone_modules

    @property
    def head_names(self) -> tuple[str, ...]:
        """The top-level children after the last feature map: timm's classifier and pooling."""
        classifier = self.pretrained_cfg.get("classifier") or "fc"
        classifier = classifier[0] if isinstance(classifier, (list, tuple)) else classifier
        names = {classifier.split(".")[0], *HEAD_CHILDREN}
        return tuple(n for n, _ in self.named_children() if n in names)

    def forward(self, x: Any) -> Any:
        self.check_input(x)
        return super().forward(x)


@functools.cache
def _protocol_class(cls: type[nn.Module]) -> type[nn.Module]:
    """timm's class with the protocol mixed in, importable as ``zoo_timm.<name>`` so that the nets pickle."""
    name = f"{PREFIX}{cls.__module__.removeprefix('timm.models.').replace('.', '__')}__{cls.__name__}"
    made = type(name, (TimmProtocol, cls), {"__module__": __name__, "__qualname__": name})
    globals()[name] = made
    return made


def __getattr__(name: str) -> type[nn.Module]:
    """The protocol class of a timm class, made on demand: what unpickling a net in a new process asks for."""
    if name.startswith(PREFIX) and "__" in name[len(PREFIX):]:
        module, _, cls = name[len(PREFIX):].rpartition("__")
        found = getattr(importlib.import_module("timm.models." + module.replace("__", ".")), cls, None)
        if isinstance(found, type) and issubclass(found, nn.Module):
            return _protocol_class(found)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _builder(name: str, module: str) -> Any:
    cfg = timm.models.get_pretrained_cfg(name)
    size = cfg.input_size[-1]

    def build(
        num_classes: int = cfg.num_classes or 1000,
        in_chans: int = 3,
        image_size: int = size,
        drop_rate: float = 0.0,
        drop_path_rate: float | None = None,
    ) -> nn.Module:
        kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate}
        if drop_path_rate is not None:
            kwargs["drop_path_rate"] = drop_path_rate
        if cfg.fixed_input_size and image_size != size:
            kwargs["img_size"] = image_size  # transformers fix their grid of patches to the input size
        net = timm.create_model(name, **kwargs)
        info = getattr(net, "feature_info", None)
        last = info[-1] if isinstance(info, list) and info else {}
        net.__class__ = _protocol_class(type(net))
        net.in_chans = in_chans
        net.min_size = image_size if cfg.fixed_input_size else int(last.get("reduction", 1))
        net.cam_layer = last.get("module")
        return net

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"""timm's ``{name}`` (``timm.models.{module}``), built by ``timm.create_model``.

    Pretrained weights: ``weights="timm:"`` (``--model.weights timm:``) loads timm's default ones
    ({cfg.tag or 'default'} tag; ``timm:{name}.TAG`` another), downloaded once into the Hugging Face
    cache and read from it offline.

    Args:
        num_classes: number of classes.
        in_chans: image channels.
        image_size: input height and width{' (the patch grid is built for it)' if cfg.fixed_input_size else ''}.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth rate, for the nets that have it (timm's default if unset).
    """
    return build


def _paper(cfg: Any) -> str:
    ids = cfg.paper_ids
    return cfg.paper_name or (", ".join(ids) if isinstance(ids, (list, tuple)) else ids or "")


def register_all() -> None:
    modules = {n: m for m in timm.list_modules() for n in timm.list_models(module=m)}
    for name in timm.list_models():
        cfg = timm.models.get_pretrained_cfg(name)
        module = modules.get(name, "other")
        register_model(
            _builder(name, module),
            name=f"{NAMESPACE}/{name}",
            family=f"{NAMESPACE}/{module}",
            paper=_paper(cfg),
            input_size=tuple(cfg.input_size),
            min_size=None,  # the built net's: the stride of its last feature map
        )


register_all()
