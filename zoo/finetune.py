"""Transfer learning: the fine-tuning strategies as one callback (the weights themselves load through
:func:`zoo.weights.load_weights`).

The strategies (:class:`Finetune`, ``--finetune STRATEGY`` on the CLI) follow the classic transfer-learning
table: little data and a similar domain: ``linear_probe``; more data: ``freeze_then_unfreeze`` or ``gradual``; a
different domain: ``full`` with discriminative learning rates. docs/transfer.md measures that table (from a
narrow source, a probe of an earlier stage, ``probe_stage``, beats one of the last; training from scratch
won or tied in every cell).
"""

from typing import Any, Literal

import lightning as L
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from zoo.errors import InputError
from zoo.log import note
from zoo.models.net import backbone_stages, training_stages

Strategy = Literal["linear_probe", "full", "freeze_then_unfreeze", "gradual"]
STRATEGIES: tuple[str, ...] = Strategy.__args__
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
        # DDPStrategy keeps its DistributedDataParallel arguments private (tests/test_lightning_contract.py)
        ddp = getattr(trainer.strategy, "_ddp_kwargs", None)
        if isinstance(ddp, dict) and self.strategy not in (None, "full"):
            ddp["find_unused_parameters"] = True  # frozen stages give no gradients; DDP must not wait for them
        if self.strategy is not None:  # the optimizer, built after setup, groups the net's stages as this says
            pl_module.parameter_stages = self.param_groups

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if getattr(pl_module, "parameter_stages", None) == self.param_groups:  # a later fit without this callback
            pl_module.parameter_stages = None                                     # trains as one stage again

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.strategy is None:
            return
        net = pl_module.net
        before = sum(p.requires_grad for p in net.parameters())
        self.apply(net, trainer.current_epoch)
        after = sum(p.requires_grad for p in net.parameters())
        if after != before or trainer.current_epoch == 0:
            total = sum(1 for _ in net.parameters())
            note(f"{self.strategy}, epoch {trainer.current_epoch}: {after} of {total} parameter tensors train")

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("strategy") not in (None, self.strategy):
            raise InputError(f"the checkpoint was fine-tuned with --finetune {state_dict['strategy']} but this fit "
                             f"uses {self.strategy}; resume with the same strategy")


__all__ = ["Finetune", "backbone_stages", "training_stages"]
