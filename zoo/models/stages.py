"""The feature map of every stage, in timm's conventions: ``feature_info``, ``forward_intermediates()`` and
``create_model(name, features_only=True, out_indices=...)``, for every zoo net with feature maps.

The stages are :func:`backbone_stages` (a new stage where the map shrinks), the ones fine-tuning
freezes by and ``zoo features --stage`` probes; a stage's map is the output of its last module in the net's own
forward pass, read with a forward hook, so no family repeats its forward code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.errors import InputError


def backbone_stages(net: nn.Module) -> list[list[nn.Module]]:
    """The backbone cut into stages, bottom to top: a new stage starts where the feature map shrinks.

    The backbone is the net's ``backbone_modules()`` (a single ``nn.Sequential`` such as VGG's
    ``features`` is read layer by layer); a module starts a stage when it holds a pooling layer or a convolution with
    a stride above 1. So a ResNet gives ``(stem) (max-pool, layer1) (layer2) (layer3) (layer4)``, a VGG one stage per
    block between its max-pools, a DenseNet one per dense block with its transition. Stages without
    parameters are left out.
    """
    modules = list(net.backbone_modules()) if hasattr(net, "backbone_modules") else []
    with_params = [m for m in modules if _has_parameters(m)]
    if len(with_params) == 1 and isinstance(with_params[0], nn.Sequential) and len(with_params[0]) > 1:
        modules = list(with_params[0])
    stages: list[list[nn.Module]] = []
    for module in modules:
        if not stages or _downsamples(module):
            stages.append([])
        stages[-1].append(module)
    return [s for s in stages if any(_has_parameters(m) for m in s)]


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _downsamples(module: nn.Module) -> bool:
    for m in module.modules():
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Conv2d)):
            stride = m.stride if isinstance(m.stride, (tuple, list)) else (m.stride,)
            if max(stride) > 1:  # GoogLeNet's inception branches pool with stride 1: not a new stage
                return True
    return False


class FeatureInfo(list):
    """One dict per stage, bottom to top: ``num_chs`` (channels), ``reduction`` (the input's size over the map's),
    ``module`` (the name of the stage's last module, what a forward hook or torchvision's feature extractor reads)
    and ``index``; with timm's accessors."""

    def channels(self, idx: int | None = None) -> Any:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | None = None) -> Any:
        return self._get("reduction", idx)

    def module_name(self, idx: int | None = None) -> Any:
        return self._get("module", idx)

    def _get(self, key: str, idx: int | None) -> Any:
        return [info[key] for info in self] if idx is None else self[idx][key]


def stage_ends(net: nn.Module) -> list[str]:
    """The name of each stage's last module, bottom to top; :class:`zoo.ZooError` for a net without stages."""
    names = {id(m): n for n, m in net.named_modules()}
    stages = backbone_stages(net)
    if not any(isinstance(m, nn.Conv2d) for stage in stages for module in stage for m in module.modules()):
        raise InputError(f"{type(net).__name__} has no stages of feature maps (a linear map or an MLP reads the "
                         "pixels at once); features_only and forward_intermediates need a convolutional net")
    return [names[id(stage[-1])] for stage in stages]


def feature_info(net: nn.Module) -> FeatureInfo:
    """The stages of `net` (see :class:`FeatureInfo`), measured once by two forward passes of empty images at two
    sizes: a stage's reduction is the growth of the input over that of its map (exact for padding-free convolutions
    too, as LeNet's), its channels those of the map."""
    cached = net.__dict__.get("_zoo_feature_info")
    if cached is not None:
        return cached
    names = stage_ends(net)
    size = 32 * max(2, -(-getattr(net, "min_size", 1) // 32))
    shapes = []
    was_training = net.training
    net.eval()
    try:
        for side in (size, 2 * size):
            parameter = next(net.parameters())
            x = torch.zeros(1, net.in_chans, side, side, device=parameter.device, dtype=parameter.dtype)
            with torch.no_grad():
                shapes.append([tuple(m.shape) for m in _stage_maps(net, x, names)[1]])
    finally:
        net.train(was_training)
    found = FeatureInfo(
        {"num_chs": big[1], "reduction": round(size / (big[-1] - small[-1])) if big[-1] > small[-1] else size,
         "module": name, "index": i}
        for i, (name, small, big) in enumerate(zip(names, *shapes, strict=True)))
    net.__dict__["_zoo_feature_info"] = found  # not a module attribute: state_dict and copies stay as they were
    return found


def _indices(count: int, indices: int | Sequence[int] | None) -> list[int]:
    """timm's rule: None is every stage, an int n the last n, a sequence those (negative from the end)."""
    if indices is None:
        chosen = list(range(count))
    elif isinstance(indices, int):
        if not 0 < indices <= count:
            raise InputError(f"indices={indices}: the net has {count} stages; give 1 to {count}")
        chosen = list(range(count - indices, count))
    else:
        chosen = [i + count if i < 0 else i for i in indices]
    if any(not 0 <= i < count for i in chosen) or len(set(chosen)) != len(chosen):
        raise InputError(f"indices {indices!r}: the net has {count} stages, 0 to {count - 1} (or -1 to -{count}), "
                         "each once")
    return sorted(chosen)


class _Reached(Exception):  # noqa: N818  (control flow, not an error: the last module asked for has run)
    pass


def module_outputs(net: nn.Module, x: torch.Tensor, names: list[str],
                   stop_early: bool = False) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """``net.forward_features(x)`` and the outputs of its modules `names` (bottom to top), read with forward hooks;
    with `stop_early` the net stops once the last of them has run (and gives no final output). A module the forward
    never ran is missing from the dict: the caller says what that means."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            seen[name] = output
            if stop_early and name == names[-1]:
                raise _Reached
        return hook

    handles = [net.get_submodule(name).register_forward_hook(keep(name)) for name in names]
    final = None
    try:
        final = net.forward_features(x)
    except _Reached:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return final, seen


def _stage_maps(net: nn.Module, x: torch.Tensor, names: list[str],
                stop_early: bool = False) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """:func:`module_outputs` of the stage ends `names`, as a list; :class:`zoo.ZooError` if one never ran."""
    final, seen = module_outputs(net, x, names, stop_early)
    missing = [name for name in names if name not in seen]
    if missing:
        raise InputError(f"{type(net).__name__}'s forward_features never ran {missing[0]!r}, the end of a stage; "
                         "this net cannot give its stages' maps")
    return final, [seen[name] for name in names]


def forward_intermediates(net: nn.Module, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                          stop_early: bool = False, intermediates_only: bool = False) -> Any:
    """timm's ``forward_intermediates``: the maps of the chosen stages (see :func:`_indices`), and unless
    `intermediates_only` the net's ``forward_features`` output first, as ``(final, [maps])``. With `stop_early` (and
    `intermediates_only`) the net stops after the last chosen stage."""
    names = stage_ends(net)
    wanted = [names[i] for i in _indices(len(names), indices)]
    if hasattr(net, "check_input"):
        net.check_input(x)
    final, maps = _stage_maps(net, x, wanted, stop_early and intermediates_only)
    return maps if intermediates_only else (final, maps)


class FeatureNet(nn.Module):
    """A net's stages as a backbone (timm's ``features_only=True``): ``forward(x)`` is the list of the maps of
    ``out_indices``, and ``feature_info`` describes those. The net's layers above the last chosen stage are kept (its
    weights load by their names) but never run."""

    def __init__(self, net: nn.Module, out_indices: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.net = net
        info = feature_info(net)
        self.out_indices = _indices(len(info), out_indices)
        self.feature_info = FeatureInfo(info[i] for i in self.out_indices)
        self.in_chans = net.in_chans

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_intermediates(self.net, x, self.out_indices, stop_early=True, intermediates_only=True)


def features_only(net: nn.Module, out_indices: int | Sequence[int] | None = None) -> FeatureNet:
    """`net` as a :class:`FeatureNet` of the stages `out_indices` (all of them by default)."""
    return FeatureNet(net, out_indices)
