"""Transfer learning: pretrained weights into any zoo net, and the fine-tuning strategies as one callback.

Weights (:func:`load_weights`, ``zoo.create(..., weights=...)``, ``--model.weights``) come from

- zoo's own: ``zoo:fashion_mnist`` (:mod:`zoo.weights`; sha256-checked files from the zoo-weights package);
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

The strategies (:class:`Finetune`, ``--finetune STRATEGY`` on the CLI) follow the classic transfer-learning
table: little data and a similar domain: ``linear_probe``; more data: ``freeze_then_unfreeze`` or ``gradual``; a
different domain: ``full`` with discriminative learning rates. docs/transfer.md measures that table (from a
narrow source, a probe of an earlier stage, ``probe_stage``, beats one of the last; training from scratch
won or tied in every cell).
"""

import math
import re
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from zoo.errors import CheckpointError, InputError, ZooError
from zoo.models.net import backbone_stages, training_stages

Strategy = Literal["linear_probe", "full", "freeze_then_unfreeze", "gradual"]
STRATEGIES: tuple[str, ...] = Strategy.__args__
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
    rank_zero_info(f"zoo: loaded {source}" + (f" ({'; '.join(notes)})" if notes else ""))
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
        from zoo.weights import get_weights, read_weights

        return read_weights(get_weights(model, name))
    if kind == "torchvision" and name:
        return _torchvision_state_dict(model, name)
    if kind == "timm":
        return _timm_state_dict(model, name)
    path = Path(source)
    if path.suffix == ".ckpt":
        from zoo.checkpoint import read_checkpoint

        return read_checkpoint(path)["state_dict"]
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


# -- the strategies -----------------------------------------------------------------------------------------


class Finetune(L.Callback):
    """Which parts of a pretrained net train, and at which learning rate: one callback for every strategy.

    - ``linear_probe``: everything but the final layer stays frozen, BatchNorm layers in eval mode (their
      running statistics stay the pretrained ones; Lightning's BackboneFinetuning lets them drift, its issue
      #15062): a linear classifier on the pretrained features.
    - ``full``: everything trains from the start.
    - ``freeze_then_unfreeze``: the final layer alone until epoch `unfreeze_epoch`, then everything.
    - ``gradual``: the final layer alone, then at each of the `milestones` (epochs) one more stage from the top
      (:func:`training_stages`: the backbone cut where the feature map shrinks, and a head's hidden layers).

    The stages learn at ``backbone_lr_ratio`` times the final layer's learning rate, and with ``lr_decay < 1``
    each stage below the top at `lr_decay` times the one above it (discriminative learning rates). The
    optimizer gets one parameter group per stage from the start, frozen stages having no gradients, so
    unfreezing adds no group: the LR scheduler, a resumed fit and DDP all see the same groups throughout.
    Under DDP the strategy is told to allow unused parameters (frozen stages produce no gradients).

    Args:
        strategy: ``linear_probe``, ``full``, ``freeze_then_unfreeze`` or ``gradual``; None (the CLI's default
            when ``--finetune`` is not given): no fine-tuning, the callback does nothing.
        unfreeze_epoch: the epoch at which ``freeze_then_unfreeze`` unfreezes the backbone.
        milestones: the epochs at which ``gradual`` unfreezes the next stage from the top.
        backbone_lr_ratio: the backbone's learning rate as a fraction of the head's.
        lr_decay: each stage's learning rate as a fraction of the stage above it (1: all the same).
    """

    def __init__(
        self,
        strategy: Strategy | None = None,
        unfreeze_epoch: int = 5,
        milestones: list[int] | None = None,
        backbone_lr_ratio: float = 0.1,
        lr_decay: float = 1.0,
    ) -> None:
        if strategy is not None and strategy not in STRATEGIES:
            raise InputError(f"unknown fine-tuning strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if not isinstance(unfreeze_epoch, int) or unfreeze_epoch < 0:
            raise InputError(f"unfreeze_epoch must be an epoch number >= 0, got {unfreeze_epoch!r}")
        milestones = [5, 10, 15] if milestones is None else list(milestones)
        if any(not isinstance(m, int) or m < 0 for m in milestones) or milestones != sorted(milestones):
            raise InputError(f"milestones must be increasing epoch numbers >= 0, got {milestones!r}")
        if not 0.0 < backbone_lr_ratio:
            raise InputError(f"backbone_lr_ratio must be positive, got {backbone_lr_ratio!r}")
        if not 0.0 < lr_decay <= 1.0:
            raise InputError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
        self.strategy, self.unfreeze_epoch, self.milestones = strategy, unfreeze_epoch, milestones
        self.backbone_lr_ratio, self.lr_decay = backbone_lr_ratio, lr_decay

    def trainable_stages(self, epoch: int, n: int) -> int:
        """How many of the `n` stages (see :func:`training_stages`), counted from the top, train in `epoch`."""
        if self.strategy == "full":
            return n
        if self.strategy == "freeze_then_unfreeze":
            return n if epoch >= self.unfreeze_epoch else 0
        if self.strategy == "gradual":
            return min(n, sum(m <= epoch for m in self.milestones))
        return 0

    def lr_scales(self, n: int) -> list[float]:
        """The learning-rate factor of each of `n` stages, bottom to top (the head's is 1)."""
        return [self.backbone_lr_ratio * self.lr_decay ** (n - 1 - i) for i in range(n)]

    def param_groups(self, net: nn.Module) -> list[tuple[list[nn.Parameter], float]]:
        """Every parameter of `net` once, as (parameters, learning-rate factor): the stages, then the final layer.

        Not timm's ``param_groups_layer_decay``, which groups by a net's ``group_matcher``: timm's nets have one,
        zoo's and torchvision's do not; :func:`training_stages` is that grouping for every net."""
        stages, final = training_stages(net)
        final_ids = {id(p) for p in final.parameters()} if final is not None else set()
        seen = set(final_ids)
        groups = []
        for stage, scale in zip(stages, self.lr_scales(len(stages)), strict=True):
            params = [p for m in stage for p in m.parameters() if id(p) not in seen]
            seen.update(map(id, params))
            groups.append((params, scale))
        own = [p for p in net.parameters() if id(p) not in seen]  # held by the net itself (a ViT's class token)
        if own and groups:
            groups[0] = (own + groups[0][0], groups[0][1])  # belongs to the bottom stage
        elif own:
            groups.append((own, 1.0))
        groups.append(([p for p in net.parameters() if id(p) in final_ids], 1.0))
        return [(params, scale) for params, scale in groups if params]

    def apply(self, net: nn.Module, epoch: int) -> None:
        """Freeze and unfreeze `net`'s stages for `epoch`: requires_grad, and BatchNorm's mode."""
        stages, final = training_stages(net)
        trainable = self.trainable_stages(epoch, len(stages))
        for i, stage in enumerate(stages):
            train = i >= len(stages) - trainable
            for module in stage:
                module.requires_grad_(train)
                for m in module.modules():
                    if isinstance(m, _NormBase):
                        m.train(train and net.training)
        if final is not None:
            final.requires_grad_(True)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        ddp = getattr(trainer.strategy, "_ddp_kwargs", None)
        if isinstance(ddp, dict) and self.strategy not in (None, "full"):
            ddp["find_unused_parameters"] = True  # frozen stages give no gradients; DDP must not wait for them

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.strategy is None:
            return
        net = pl_module.net
        before = sum(p.requires_grad for p in net.parameters())
        self.apply(net, trainer.current_epoch)
        after = sum(p.requires_grad for p in net.parameters())
        if after != before or trainer.current_epoch == 0:
            total = sum(1 for _ in net.parameters())
            rank_zero_info(f"zoo: {self.strategy}, epoch {trainer.current_epoch}: {after} of {total} parameter "
                           "tensors train")

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("strategy") not in (None, self.strategy):
            raise InputError(f"the checkpoint was fine-tuned with --finetune {state_dict['strategy']} but this fit "
                             f"uses {self.strategy}; resume with the same strategy")


__all__ = ["Finetune", "adapt_input_conv", "backbone_stages", "load_weights", "read_state_dict", "training_stages"]
