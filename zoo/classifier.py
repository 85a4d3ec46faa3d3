"""ImageClassifier: the one LightningModule that trains any registered net."""

import math
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics.classification import MulticlassAccuracy

from zoo.callbacks import DivergenceStop, RandomState
from zoo.checkpoint import AtomicCheckpointIO, read_checkpoint, zoo_entry
from zoo.errors import InputError
from zoo.losses import multiclass_hinge_loss, weight_penalty
from zoo.models.net import stage_probe
from zoo.registry import create_model
from zoo.schedules import Schedule

Loss = Literal["cross_entropy", "hinge"]
LOSSES: tuple[str, ...] = Loss.__args__
AUX_LOSS_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers, as in Szegedy et al. 2015


class ImageClassifier(L.LightningModule):
    """Trains, evaluates and predicts with any registered net.

    Args:
        model: registry name of the net (see ``zoo models``).
        num_classes: number of classes (linked from the data on the CLI).
        in_chans: image channels (linked from the data on the CLI).
        image_size: image height and width (linked from the data on the CLI).
        loss: ``cross_entropy`` or ``hinge`` (the multiclass SVM loss).
        label_smoothing: label smoothing for cross_entropy, in [0, 1).
        optimizer: the optimizer, as a callable taking the parameters.
        lr_scheduler: an optional LR scheduler, as a callable taking the optimizer; schedulers
            that need a metric (ReduceLROnPlateau) read ``val_loss``.
        class_names: class names in label order, kept in the checkpoint for predictions.
        log_grad_norm: log the total L2 norm of the gradients (``grad_norm``) at every step.
        weight_decay_norm_and_bias: apply the optimizer's weight decay to biases and normalization
            weights too (by default, as in timm, only weight matrices and convolution kernels decay).
        l1_penalty: strength of the L1 regularization ``sum |W|`` added to the loss
            (weights only, as weight decay); with `l2_penalty` too it is the elastic net.
        l2_penalty: strength of the L2 regularization ``sum W^2`` added to the loss.
        channels_last: train and evaluate in the channels-last memory layout (faster convolutions
            on recent GPUs, especially with mixed precision).
        compile: run the net through ``torch.compile`` (the first batches take longer while it compiles).
        weights: pretrained weights to start from: a zoo checkpoint (``.ckpt``), ``torchvision:IMAGENET1K_V1``,
            ``timm:resnet18.a1_in1k``, or a ``.pth``/``.safetensors`` state dict (see :mod:`zoo.finetune`); the
            final layer is new when the classes differ, the first convolution adapted to ``in_chans``.
        reset_head: with `weights`, start from a new final layer even when the weights' one fits (a new task
            with as many classes).
        probe_stage: a new final layer on the features of this stage of the net (1: the bottom one; see
            :func:`zoo.models.net.stage_probe`) instead of its own head, after `weights` are loaded; with
            ``Finetune("linear_probe")`` (``--finetune linear_probe``) a linear probe of that stage.
        **model_kwargs: the net's own arguments (e.g. ``hidden`` for ``mlp``).
    """

    def __init__(
        self,
        model: str = "lenet5",
        num_classes: int = 10,
        in_chans: int = 3,
        image_size: int = 32,
        loss: Loss = "cross_entropy",
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        class_names: list[str] | None = None,
        log_grad_norm: bool = False,
        weight_decay_norm_and_bias: bool = False,
        l1_penalty: float = 0.0,
        l2_penalty: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        weights: str | None = None,
        reset_head: bool = False,
        probe_stage: int | None = None,
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise InputError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
        if not 0.0 <= label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        for name, value in (("l1_penalty", l1_penalty), ("l2_penalty", l2_penalty)):
            if value < 0:
                raise InputError(f"{name} must not be negative, got {value!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise InputError(
                f"{len(class_names)} class names given for num_classes={num_classes}; give one name per class"
            )
        # One explicit dict, whoever builds us: under LightningCLI Lightning would otherwise store the
        # CLI's config (a class path, no registry name), which only the CLI can load again.
        self.save_hyperparameters({
            "model": model, "num_classes": num_classes, "in_chans": in_chans, "image_size": image_size,
            "loss": loss, "label_smoothing": label_smoothing, "class_names": class_names, **model_kwargs,
            **({"probe_stage": probe_stage} if probe_stage is not None else {}),
        })
        self.net = create_model(
            model, num_classes=num_classes, in_chans=in_chans, image_size=image_size, **model_kwargs
        )
        if weights:  # not a hyperparameter: the checkpoint holds the result, reloading it must not fetch them again
            from zoo.finetune import load_weights

            load_weights(self.net, weights, model, reset_head)
        if probe_stage is not None:
            self.net = stage_probe(self.net, probe_stage, image_size)
        # one image: Lightning's model summary then shows each layer's in/out sizes and the FLOPs ("0 Total Flops")
        self.example_input_array = torch.zeros(1, in_chans, image_size, image_size)
        min_size = getattr(self.net, "min_size", 1)
        if image_size < min_size:
            raise InputError(
                f"model {model!r} needs inputs of at least {min_size}x{min_size} pixels, got image_size={image_size}; "
                f"use images of {min_size} pixels or more (on the CLI: --data.image_size {min_size})"
            )
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.log_grad_norm = log_grad_norm
        # the epoch's training sums [loss x images, top-1 hits, top-5 hits, images], kept on the device
        self._train_sums: torch.Tensor | None = None
        self.weight_decay_norm_and_bias = weight_decay_norm_and_bias
        self.l1_penalty, self.l2_penalty = l1_penalty, l2_penalty
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # compiled lazily at the first call; kept outside the module tree so state_dict names stay the net's
        self.__dict__["_compiled"] = torch.compile(self.net) if compile else None
        top_k = (1, 5) if num_classes > 5 else (1,)
        for stage in ("val", "test"):
            for k in top_k:  # labels come from zoo's DataModules or the argmax of soft targets: no per-batch checks
                setattr(self, f"{stage}_acc{'' if k == 1 else k}",
                        MulticlassAccuracy(num_classes, top_k=k, average="micro", validate_args=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), ``[N, num_classes]``."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x) if self._compiled is None else self._compiled(x)

    def decayed_parameters(self, parameters: Any = None) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """The trainable parameters (or the given ones) split into (weights, biases and normalization weights),
        as timm does: parameters with one dimension or less do not decay (unless ``weight_decay_norm_and_bias``)."""
        weights, others = [], []
        for parameter in (p for p in self.net.parameters() if p.requires_grad) if parameters is None else parameters:
            (weights if parameter.ndim > 1 or self.weight_decay_norm_and_bias else others).append(parameter)
        return weights, others

    def penalty(self) -> torch.Tensor | None:
        """``l1_penalty * sum |W| + l2_penalty * sum W^2`` over the weights, or None when both are 0."""
        weights = [p for p in self.decayed_parameters()[0] if p.ndim > 1]
        return weight_penalty(weights, self.l1_penalty, self.l2_penalty)

    def loss(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "hinge":
            if target.dim() != 1:
                raise InputError("the hinge loss needs class labels; mixup and cutmix make soft targets: "
                                 "use loss=cross_entropy with them")
            return multiclass_hinge_loss(scores, target)
        return F.cross_entropy(scores, target, label_smoothing=self.hparams.label_smoothing)

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default: rewrites files in place
            strategy.checkpoint_io = AtomicCheckpointIO()
        data = getattr(self.trainer, "datamodule", None)
        for what in ("num_classes", "in_chans", "image_size"):
            want, have = self.hparams[what], getattr(data, what, None)
            if have is not None and have != want:
                raise InputError(
                    f"the data has {what}={have} but the model was built with {what}={want}; "
                    f"create the model with {what}={have} (the CLI links it from the data)"
                )

    def _step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int = -1) -> torch.Tensor:
        x, y = batch
        scores = self(x)
        aux = []
        if isinstance(scores, tuple):  # auxiliary classifiers (GoogLeNet), in training only
            scores, *aux = scores
        loss = self.loss(scores, y)
        y = y.argmax(dim=1) if y.dim() == 2 else y  # mixup/cutmix targets: the dominant class for accuracy
        if stage == "train" and batch_idx == 0 and self.current_epoch == 0:
            self._check_initial_loss(loss.item())  # the main head's loss, before any aux terms
        if aux:
            loss = loss + AUX_LOSS_WEIGHT * sum(self.loss(a, y) for a in aux)
        if stage == "train":
            self._add_training_sums(scores.detach(), y, loss.detach())
            if self._logs_this_step():
                self.log("train_loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        else:
            for name in ("acc", "acc5"):
                metric = getattr(self, f"{stage}_{name}", None)
                if metric is not None:
                    metric.update(scores.detach(), y)
                    self.log(f"{stage}_{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "acc")
            self.log(f"{stage}_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def _logs_this_step(self) -> bool:
        """Whether the logger writes this training step (every ``log_every_n_steps``; the first too, for the bar)."""
        every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        return self.global_step == 0 or (self.global_step + 1) % every == 0

    def _add_training_sums(self, scores: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a training batch's loss and hits to the epoch's sums, on the device, without a sync.

        Measured on LeNet/digits (benchmarks/overhead.py): a self.log call or a torchmetrics update per
        step each cost a few percent of a small step; these five tensor ops cost a fraction of that.
        """
        n = torch.tensor(len(y), device=scores.device, dtype=torch.float32)
        hits = scores.topk(min(5, scores.shape[1]), dim=1).indices == y[:, None]
        sums = torch.stack([loss * n, hits[:, 0].sum().float(), hits.any(dim=1).sum().float(), n])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums


    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._step("train", batch, batch_idx)
        penalty = self.penalty()
        if penalty is not None:
            if self._logs_this_step():
                self.log("train_penalty", penalty, on_step=True, on_epoch=False)
            loss = loss + penalty
        return loss

    def configure_callbacks(self) -> list[L.Callback]:
        """What every fit of a trained net needs, whatever Trainer runs it: a stop when the loss diverges, and
        the random states in each checkpoint (so a resumed fit continues as an uninterrupted one would).

        Lightning asks again for each ``fit``/``test`` of the same Trainer; the ones already there stay.
        """
        present = self._trainer.callbacks if self._trainer is not None else []
        return [kind() for kind in (DivergenceStop, RandomState) if not any(isinstance(c, kind) for c in present)]

    def _check_initial_loss(self, value: float) -> None:
        """The classic first sanity check: before training, the loss should be that of random scores."""
        c = self.hparams.num_classes
        if self.hparams.loss == "cross_entropy":
            chance, formula = math.log(c), f"ln({c})"
        else:
            chance, formula = c - 1.0, f"{c} - 1"  # hinge: every margin is about 1 when scores are near 0
        if self.hparams.label_smoothing == 0.0 and abs(value - chance) > 0.5 * chance:
            rank_zero_warn(
                f"the initial loss {value:.3f} is far from {formula} = {chance:.3f}, the loss of random scores; "
                "check the labels, the input normalization and the weight init scale before training longer"
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.log_grad_norm:
            from lightning.pytorch.utilities import grad_norm

            self.log("grad_norm", grad_norm(self.net, 2)["grad_2.0_norm_total"], on_step=True, on_epoch=False)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step("test", batch)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities, ``[N, num_classes]``; the batch may be images or (images, labels)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=1)

    def on_train_epoch_start(self) -> None:
        self._train_sums = None

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        loss, top1, top5, n = self.trainer.strategy.reduce(self._train_sums, reduce_op="sum")  # all processes
        # every rank holds the same totals now; sync_dist averages equal values (one scalar collective an
        # epoch) and tells Lightning the value is global, so DDP runs don't warn that it is one rank's
        self.log("train_loss_epoch", loss / n, prog_bar=True, sync_dist=True)
        self.log("train_acc", top1 / n, prog_bar=True, sync_dist=True)
        if self.hparams.num_classes > 5:
            self.log("train_acc5", top5 / n, sync_dist=True)

    def configure_optimizers(self) -> Any:
        finetune = self._finetune()
        # fine-tuning: a group per backbone stage and one for the head, frozen ones included (no gradients
        # until they thaw), each at its learning-rate factor; so unfreezing never adds a group
        stages = finetune.param_groups(self.net) if finetune else [(None, 1.0)]
        groups = []
        for parameters, scale in stages:
            weights, others = self.decayed_parameters(parameters)
            groups += [{"params": weights, "lr_scale": scale}] if weights else []
            groups += [{"params": others, "weight_decay": 0.0, "lr_scale": scale}] if others else []
        optimizer = self.optimizer(groups)
        for group in optimizer.param_groups:
            group["lr"] *= group.get("lr_scale", 1.0)
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        interval = "epoch"
        if isinstance(scheduler, Schedule):
            interval = scheduler.interval
            if scheduler.total is None and self._trainer is not None:
                total = self.trainer.estimated_stepping_batches if interval == "step" else self.trainer.max_epochs
                if total is not None and 0 < total < math.inf:  # else (max_epochs=-1) shapes that need it say so
                    scheduler.total = int(total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": "val_loss"}}

    def _finetune(self) -> Any:
        """The trainer's :class:`zoo.finetune.Finetune` callback with a strategy, if there is one."""
        from zoo.finetune import Finetune

        callbacks = self._trainer.callbacks if self._trainer is not None else []
        return next((c for c in callbacks if isinstance(c, Finetune) and c.strategy is not None), None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        entry = zoo_entry(self.hparams.model, getattr(self.trainer, "datamodule", None))
        checkpoint.setdefault("zoo", {}).update(entry)  # beside the random states RandomState put there

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: Any = None, **kwargs: Any
    ) -> "ImageClassifier":
        """Rebuild the net from its registry name and load its weights (``weights_only=True``).

        A path that does not exist, cannot be read, or was not written by zoo raises
        :class:`zoo.errors.CheckpointError`.
        """
        read_checkpoint(checkpoint_path)
        return super().load_from_checkpoint(
            checkpoint_path, map_location=map_location, weights_only=True, **kwargs
        )


class KNNClassifier(ImageClassifier):
    """The LightningModule of the kNN baseline, which memorizes instead of training.

    A fit is one pass: the training images go into the net's memory as the model sees images in evaluation
    (normalized, never augmented), then the fit stops. With a zoo DataModule the memory is its whole training
    split (``normalized("train")``), so each process of a multi-device fit holds all of it; with other data,
    the training batches as the loader gives them. No loss or gradients. Evaluation, prediction and
    checkpoints are :class:`ImageClassifier`'s (which the arguments are too: the training ones are unused).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False  # no loss, no backward: the steps are kNN's own
        self._memorized_split = False

    def on_train_epoch_start(self) -> None:
        data = getattr(self.trainer, "datamodule", None)
        if self.current_epoch == 0 and callable(getattr(data, "normalized", None)):
            x, y = data.normalized("train")
            for start in range(0, len(x), 4096):
                self.net.memorize(x[start:start + 4096].to(self.device), y[start:start + 4096].to(self.device))
            self._memorized_split = True

    def training_step(self, batch: Any, batch_idx: int) -> None:
        if self.current_epoch == 0 and not self._memorized_split:
            self.net.memorize(*batch)
        self.optimizers().step()  # counts the step (see configure_optimizers)

    def on_train_epoch_end(self) -> None:
        self.trainer.should_stop = True  # everything is memorized after one pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """An optimizer with nothing to optimize, stepped once a batch: Lightning then counts the pass's steps as
        for a trained net (``ModelCheckpoint`` writes only after a step)."""
        return torch.optim.SGD([torch.zeros((), requires_grad=True)], lr=0.0)

    def configure_callbacks(self) -> list[L.Callback]:
        return []  # no loss to diverge, no random state to resume with: one pass


def classifier_for(model: str) -> type[ImageClassifier]:
    """The LightningModule class that trains the registered net `model`: :class:`KNNClassifier` for the kNN family."""
    from zoo.registry import MODELS

    return KNNClassifier if MODELS.get(model).family == "knn" else ImageClassifier
