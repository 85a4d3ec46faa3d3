"""Pretrained weights into any zoo net: ``zoo.create_model("resnet20", weights="zoo:fashion_mnist")``.

A weights source (:func:`load_weights`, ``zoo.create(..., weights=...)``, ``--model.weights``) is one of

- zoo's own: ``zoo:fashion_mnist``. As torchvision's ``Weights``, each :class:`Weights` carries what using it
  correctly needs: the builder arguments it was trained with, the normalization the net expects, the class
  names, the dataset, its measured test accuracy, the recipe and the data's licence. The files live in packages
  that register them through the ``zoo.weights`` entry point (``plugins/zoo-weights`` ships zoo's), or behind a
  URL (downloaded once into ``$TORCH_HOME/hub/checkpoints/zoo``). Either way a file's sha256 is checked before
  it is read, and it is read as weights only (safetensors, or ``torch.load(weights_only=True)``);
- a zoo checkpoint: ``runs/.../best.ckpt``;
- torchvision: ``torchvision:IMAGENET1K_V1`` (or ``torchvision:DEFAULT``) for the nets torchvision has
  (zoo's resnet/vgg/alexnet/googlenet/densenet and the ``tv/`` plugin), downloaded into
  ``$TORCH_HOME/hub/checkpoints`` once and read from there offline;
- timm: ``timm:resnet18.a1_in1k`` (any timm pretrained name; ``timm:`` alone for a ``timm/`` model's own),
  through timm's loader and its Hugging Face cache;
- a local state dict: ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors``.

The final layer is kept when it fits the new ``num_classes`` (and ``reset_head`` is off), else the net keeps
its fresh one; the first convolution is adapted when the channels differ (:func:`adapt_input_conv`); any
other missing, unexpected or misshapen key is a :class:`zoo.ZooError` that lists them.
"""

import hashlib
import math
import os
import re
import urllib.error
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import CheckpointError, InputError, UnknownNameError, ZooError, disk_full
from zoo.pretrained import WEIGHTS, Weights, get_weights, list_weights, register_weights, zoo_weights


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
        full = disk_full(exc, path)
        if full is not None:  # not the network's fault
            raise full from None
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


# -- any weights source into a net ------------------------------------------------------------------

STATE_DICT_FILES = (".pth", ".pt", ".bin", ".safetensors")
_WRAPPERS = ("module.", "net.", "model.", "_orig_mod.")  # DDP, zoo's ImageClassifier, Lightning modules, compile
# torchvision's DenseNet files predate its module names (norm.1 -> norm1): torchvision renames them the same way
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


# -- weights ------------------------------------------------------------------------------------------------


def load_weights(net: nn.Module, source: str, model: str = "", reset_head: bool = False) -> list[str]:
    """Load pretrained weights from `source` into `net` (built for its new task); returns what was adapted.

    Args:
        net: the built net (any ``num_classes`` and ``in_chans``).
        source: a ``.ckpt``, ``torchvision:NAME``, ``timm:NAME``, or a ``.pth``/``.safetensors`` file.
        model: the net's registry name (picks torchvision's or timm's weights for it).
        reset_head: keep the net's fresh final layer even when the source's has the same shape (a new
            task with as many classes).

    Raises:
        ZooError: the source cannot be read (offline and not cached: the message names the file and the
            folder to put it in), or keys other than the final layer and the first convolution's channels
            do not match (the message lists them).
    """
    state = read_state_dict(source, model)
    own = net.state_dict()
    state = _unwrap(state, own)
    notes: list[str] = []
    head = _classifier_name(net)
    head_keys = {k for k in own if head and k.startswith(head + ".")}
    fits = all(k in state and state[k].shape == own[k].shape for k in head_keys)
    if head_keys and (reset_head or not fits):
        for key in head_keys:
            state.pop(key, None)
        state.update({k: own[k] for k in head_keys})
        notes.append(f"new final layer {head} ({_classes(own, head)} classes)")
    first = next((k for k, v in own.items() if v.dim() == 4), None)
    if first is not None and first in state and state[first].shape != own[first].shape:
        have, want = state[first].shape, own[first].shape
        if have[0] == want[0] and have[2:] == want[2:]:
            state[first] = adapt_input_conv(state[first], want[1])
            notes.append(f"first convolution {first} adapted from {have[1]} to {want[1]} input channels")
    optional = ("num_batches_tracked",)  # old files lack BatchNorm's counter
    missing = [k for k in own if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in own]
    misshapen = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                 if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or misshapen:
        problems = [f"{what}: {_listing(keys)}" for what, keys in
                    (("missing", missing), ("unexpected", unexpected), ("other shapes (weights vs net)", misshapen))
                    if keys]
        raise ZooError(f"the weights {source!r} do not fit {model or type(net).__name__} beyond the final layer and "
                       f"the first convolution's channels; {'; '.join(problems)}. Build the net as the weights "
                       "were made (its arguments, e.g. --model.stem imagenet for ImageNet weights), or load them "
                       "into the architecture they were trained with")
    net.load_state_dict({**{k: v for k, v in own.items() if k not in state}, **state}, strict=True)
    return notes


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first convolution's kernels ``[out, c, kh, kw]`` for `in_chans` input channels.

    One channel: the sum over the source's channels (a grey image through RGB kernels gives the same
    response). More: the source's channels repeated in order and scaled by ``c / in_chans``. When
    `in_chans` is a multiple of ``c`` every source channel is repeated equally often, so the response to
    an image with every channel alike stays the same; otherwise some are repeated once more and it does
    not (from RGB kernels: it holds for 1, 3, 6, ... channels, not for 2 or 4). For an RGB source this
    is timm's ``adapt_input_conv`` rule; it works from any number of source channels (a 1-channel net too).
    """
    c = weight.shape[1]
    if in_chans == c:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    return weight.repeat(1, math.ceil(in_chans / c), 1, 1)[:, :in_chans] * (c / in_chans)


def read_state_dict(source: str, model: str = "") -> dict[str, torch.Tensor]:
    """The state dict a weights source names (see :func:`load_weights`), read safely (no pickled code)."""
    kind, _, name = source.partition(":")
    if kind == "zoo" and name:
        return read_weights(get_weights(model, name))
    if kind == "torchvision" and name:
        return _torchvision_state_dict(model, name)
    if kind == "timm":
        return _timm_state_dict(model, name)
    path = Path(source)
    if path.suffix == ".ckpt":
        from zoo.checkpoint import CheckpointRecord

        return CheckpointRecord.read(path).state_dict
    if path.suffix not in STATE_DICT_FILES:
        raise InputError(f"unknown weights {source!r}; give zoo:TAG (e.g. zoo:fashion_mnist, see zoo models "
                         "--pretrained), a zoo checkpoint (.ckpt), a state dict file "
                         f"({', '.join(STATE_DICT_FILES)}), torchvision:WEIGHTS (e.g. torchvision:IMAGENET1K_V1) "
                         "or timm:MODEL.TAG (e.g. timm:resnet18.a1_in1k)")
    if not path.is_file():
        raise CheckpointError(f"weights file {source!r} does not exist; give the path of a {path.suffix} file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"weights file {source!r} cannot be read safely ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); give a state dict saved with "
                              "torch.save(net.state_dict(), path) or safetensors") from None
    for key in ("state_dict", "model", "model_state_dict", "net"):  # training scripts wrap it in a dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {source!r} holds no state dict (name -> tensor)")
    return state


def _torchvision_state_dict(model: str, name: str) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    arch = model.removeprefix("tv/")
    try:
        weights_enum = tvm.get_model_weights(arch)
    except ValueError:
        raise InputError(f"torchvision has no weights for {model!r}; torchvision weights fit zoo's ImageNet nets "
                         "(resnet18, vgg16_bn, densenet121, ...) and the tv/ plugin's") from None
    choices = ["DEFAULT", *(w.name for w in weights_enum)]
    if name not in choices:
        raise InputError(f"unknown weights {name!r} for {weights_enum.__name__}; choose one of: {', '.join(choices)}")
    weights = weights_enum.DEFAULT if name == "DEFAULT" else weights_enum[name]
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=True,
                                                   check_hash=True, weights_only=True)
    except OSError as exc:  # URLError included: offline and not in the cache
        raise ZooError(f"cannot download the weights {weights} ({exc}); offline, put the file {weights.url} "
                       f"at {cache} (TORCH_HOME sets the folder)") from None
    return {_DENSENET_KEY.sub(r"\1\2", k): v for k, v in state.items()}


def _timm_state_dict(model: str, name: str) -> dict[str, torch.Tensor]:
    import timm

    name = name or (model.removeprefix("timm/") if model.startswith("timm/") else "")
    if not name:
        raise InputError(f"say which timm weights to load into {model!r}: timm:MODEL.TAG, e.g. timm:resnet18.a1_in1k "
                         "(timm's ResNets and VGGs share torchvision's names, so they fit zoo's)")
    try:
        source = timm.create_model(name, pretrained=True)
    except RuntimeError as exc:
        raise InputError(f"timm cannot make pretrained {name!r}: {exc}") from None
    except Exception as exc:  # offline and not in the Hugging Face cache (huggingface_hub's and timm's errors)
        cfg = timm.models.get_pretrained_cfg(name.split(".")[0])
        where = (cfg.hf_hub_id if cfg else None) or "timm's hub"
        raise ZooError(f"cannot fetch timm's pretrained weights {name!r} from {where} ({type(exc).__name__}); "
                       "offline, download them once where there is a network (they land in the Hugging Face "
                       "cache, HF_HOME) and set HF_HUB_OFFLINE=1, or save them to a .safetensors file") from None
    return source.state_dict()


def _unwrap(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the prefixes that wrappers add (``net.`` of a zoo checkpoint, ``module.`` of DDP, ...)."""
    state = dict(state)
    changed = True
    while changed and state:
        changed = False
        for prefix in _WRAPPERS:
            if all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in own):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                changed = True
    return state


def _classifier_name(net: nn.Module) -> str:
    get = getattr(net, "get_classifier", None)
    if get is None:
        return ""
    layer = get()
    return next((n for n, m in net.named_modules() if m is layer and n), "")


def _classes(own: dict[str, torch.Tensor], head: str) -> int:
    weight = own.get(head + ".weight")
    return int(weight.shape[0]) if weight is not None else 0


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# -- zoo's weights: what they were made with ------------------------------------------------------------


def default_weights(model: str) -> Weights:
    """The weights ``pretrained=True`` means for `model`: its first zoo weights (``zoo:fashion_mnist`` today)."""
    found = list_weights(model)
    if not found:
        have = sorted({w.model for w in list_weights()})
        raise UnknownNameError(f"{model!r} has no pretrained zoo weights; models that have: "
                               f"{', '.join(have) or 'none (pip install -e plugins/zoo-weights)'} (see: zoo models "
                               "--pretrained); or give weights= a file, a checkpoint, torchvision:NAME or timm:NAME")
    return found[0]


def pretrained_source(model: str) -> str:
    """What ``pretrained=True`` loads into `model` (timm's convention): a ``timm/`` net's own timm weights, a ``tv/``
    net's torchvision ``DEFAULT`` ones, else zoo's weights of the model (:func:`default_weights`)."""
    if model.startswith("timm/"):
        return "timm:"
    if model.startswith("tv/"):
        return "torchvision:DEFAULT"
    return default_weights(model).name


def pretrained_cfg(model: str, source: str | None, net: nn.Module) -> dict[str, Any]:
    """What a net records of the weights it was built with, `source` (None: none), as timm's ``net.pretrained_cfg``,
    which every net has.

    For zoo's weights: their name, file hash, the arguments and input size they were made for, the normalization
    (``mean``, ``std``) and ``class_names`` they expect, their test accuracy, dataset, recipe and licence. A net
    adapted to other classes or channels (a new head, a summed first convolution) is not the net those describe:
    its ``class_names`` (other classes) and ``top1`` are None and ``adapted`` names what changed. For other
    sources: the source alone; without weights, ``weights`` is None.
    """
    weights = zoo_weights(model, source) if source else None
    cfg: dict[str, Any] = {"weights": source or None, "model": model}
    if weights is not None:
        meta = weights.meta
        cfg |= {"sha256": weights.sha256, **weights.arguments, "input_size": tuple(meta.get("input_size", ())),
                "mean": meta.get("mean"), "std": meta.get("std"), "class_names": meta.get("class_names"),
                "top1": meta.get("top1"), "dataset": meta.get("dataset"), "recipe": meta.get("recipe"),
                "licence": meta.get("licence")}
        adapted = [key for key in ("num_classes", "in_chans")
                   if key in weights.arguments and getattr(net, key, weights.arguments[key]) != weights.arguments[key]]
        if adapted:
            cfg |= {"adapted": adapted, "top1": None}
            if "num_classes" in adapted:
                cfg["class_names"] = None
    cfg["num_classes"] = getattr(net, "num_classes", cfg.get("num_classes"))
    cfg["in_chans"] = getattr(net, "in_chans", cfg.get("in_chans"))
    return cfg


__all__ = ["WEIGHTS", "Weights", "adapt_input_conv", "default_weights", "get_weights", "list_weights", "load_weights",
           "pretrained_cfg", "pretrained_source", "read_state_dict", "read_weights", "register_weights", "sha256_of",
           "weights_file"]
