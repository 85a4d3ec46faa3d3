"""ImageClassifier: the one LightningModule that trains any registered net."""

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from zoo.callbacks import DivergenceStop, InitialLossCheck, PretrainedNormalization, RandomState
from zoo.checkpoint import LINKED, CheckpointRecord, check_sizes, check_tensors, zoo_entry
from zoo.errors import InputError
from zoo.log import note
from zoo.losses import multiclass_hinge_loss, weight_penalty
from zoo.models.net import stage_probe
from zoo.pretrained import implied_arguments, zoo_weights
from zoo.registry import build_model, own_arguments
from zoo.schedules import Schedule
from zoo.weights import load_weights, pretrained_cfg

Loss = Literal["cross_entropy", "hinge"]
LOSSES: tuple[str, ...] = Loss.__args__
TTA = Literal["none", "flip", "flip_shift"]
TTAS: tuple[str, ...] = TTA.__args__
AUX_LOSS_WEIGHT = 0.3  # GoogLeNet's auxiliary classifiers, as in Szegedy et al. 2015


class ImageClassifier(L.LightningModule):
    """Trains, evaluates and predicts with any registered net.

    Args:
        model: registry name of the net (see ``zoo models``).
        num_classes: number of classes (linked from the data on the CLI); default: the net's own, as
            :func:`zoo.create_model` builds it (10 for the small-input nets, 1000 for the ImageNet ones).
        in_chans: image channels (linked from the data on the CLI); default: the net's own (1 for lenet5, else 3).
        image_size: image height and width (linked from the data on the CLI); default: the net's own
            (32 for the small-input nets, 224 for the ImageNet ones; see ``zoo info NAME``).
        loss: ``cross_entropy`` or ``hinge`` (the multiclass SVM loss).
        label_smoothing: label smoothing for cross_entropy, in [0, 1).
        optimizer: the optimizer, as a callable taking the parameters.
        lr_scheduler: an optional LR scheduler, as a callable taking the optimizer; schedulers
            that need a metric (ReduceLROnPlateau) read ``val_loss``.
        class_names: class names in label order, kept in the checkpoint for predictions.
        log_grad_norm: log the total L2 norm of the gradients (``grad_norm``) at every step.
        weight_decay_norm_and_bias: apply the optimizer's weight decay to biases and normalization
            weights too (by default, as in timm, only weight matrices and convolution kernels decay).
        bias_lr_scale: learning-rate factor of the parameters that do not decay (biases and normalization
            weights); airbench (Jordan 2024) trains its BatchNorm biases 64 times faster than its weights.
        tta: test-time augmentation in validation, test and prediction: ``none``; ``flip``: the mean of the
            scores of the image and its mirror image; ``flip_shift``: as airbench, half that and half the same
            for the image shifted by one pixel up-left and down-right (six passes). Only for data whose mirror
            images are of the same class (not digits).
        l1_penalty: strength of the L1 regularization ``sum |W|`` added to the loss
            (weights only, as weight decay); with `l2_penalty` too it is the elastic net.
        l2_penalty: strength of the L2 regularization ``sum W^2`` added to the loss.
        channels_last: train and evaluate in the channels-last memory layout (faster convolutions on
            CPUs, and on recent GPUs with mixed precision). None (the default): channels-last for a net with
            convolutions on a machine without a GPU, where it was measured faster for most nets (every net of
            the Fashion-MNIST board; not ResNet-18 at 64x64: docs/scale.md); the default layout where there is
            a GPU.
        compile: run the net through ``torch.compile`` (the first batches take longer while it compiles).
        weights: pretrained weights to start from: a zoo checkpoint (``.ckpt``), ``torchvision:IMAGENET1K_V1``,
            ``timm:resnet18.a1_in1k``, or a ``.pth``/``.safetensors`` state dict (see :mod:`zoo.weights`); the
            final layer is new when the classes differ, the first convolution adapted to ``in_chans``. With zoo's
            weights (``zoo:TAG``), what is left unset (classes, channels, image size, class names, the net's own
            arguments) is what they were made for, and the data normalizes as they expect.
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
        num_classes: int | None = None,
        in_chans: int | None = None,
        image_size: int | None = None,
        loss: Loss = "cross_entropy",
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        class_names: list[str] | None = None,
        log_grad_norm: bool = False,
        weight_decay_norm_and_bias: bool = False,
        bias_lr_scale: float = 1.0,
        tta: TTA = "none",
        l1_penalty: float = 0.0,
        l2_penalty: float = 0.0,
        channels_last: bool | None = None,
        compile: bool = False,
        weights: str | None = None,
        reset_head: bool = False,
        probe_stage: int | None = None,
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        made = zoo_weights(model, weights)  # resolved once: None for other sources
        model_kwargs = implied_arguments(model, made, {"num_classes": num_classes, "in_chans": in_chans,
                                                       "image_size": image_size, **model_kwargs})
        num_classes, in_chans = model_kwargs.pop("num_classes", None), model_kwargs.pop("in_chans")
        image_size = model_kwargs.pop("image_size")
        # every argument the net is built with, its builder's defaults included: a reload builds the same net
        model_kwargs = {**own_arguments(model), **model_kwargs}
        if class_names is None and made is not None and num_classes == made.arguments.get("num_classes"):
            class_names = made.meta.get("class_names")
        if num_classes is None:
            raise InputError(f"model {model!r} has no default number of classes; give num_classes")
        if loss not in LOSSES:
            raise InputError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
        if not 0.0 <= label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if tta not in TTAS:
            raise InputError(f"unknown tta {tta!r}; choose one of: {', '.join(TTAS)}")
        if bias_lr_scale <= 0:
            raise InputError(f"bias_lr_scale must be positive, got {bias_lr_scale!r}")
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
        try:  # now, on a stand-in parameter: a negative learning rate is one line before anything is written
            optimizer([torch.zeros(1, requires_grad=True)])
        except (ValueError, TypeError) as exc:
            raise InputError(f"the optimizer refuses its arguments: {exc}; see its options in zoo fit --help") from None
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.log_grad_norm = log_grad_norm
        # the epoch's training sums [loss x images, top-1 hits, top-5 hits], kept on the device, and its images
        self._train_sums: torch.Tensor | None = None
        self._train_images = 0
        self.weight_decay_norm_and_bias = weight_decay_norm_and_bias
        self.bias_lr_scale, self.tta = bias_lr_scale, tta
        self.l1_penalty, self.l2_penalty = l1_penalty, l2_penalty
        self.channels_last = channels_last
        # how the optimizer groups the net's parameters, each stage with its learning-rate factor; None: one stage.
        # Set by whoever decides it (zoo.finetune.Finetune, at setup), read once by configure_optimizers: the module
        # never looks through its trainer's callbacks for it
        self.parameter_stages: Callable[[torch.nn.Module], list[tuple[list[torch.nn.Parameter], float]]] | None = None
        self.configure_models(model_kwargs, weights, reset_head, probe_stage, compile)
        self.configure_losses()
        self.configure_metrics()

    def configure_models(self, model_kwargs: dict[str, Any], weights: str | None = None, reset_head: bool = False,
                         probe_stage: int | None = None, compile: bool = False) -> None:
        """The net (``self.net``): built by registry name with the net's own `model_kwargs`, its `weights` loaded,
        a stage probe put on top."""
        hp = self.hparams
        self.net = build_model(hp.model, num_classes=hp.num_classes, in_chans=hp.in_chans, image_size=hp.image_size,
                               **model_kwargs)
        self.starts_from_weights = bool(weights)
        if weights:  # not a hyperparameter: the checkpoint holds the result, reloading it must not fetch them again
            notes = load_weights(self.net, weights, hp.model, reset_head)
            note(f"loaded {weights}" + (f" ({'; '.join(notes)})" if notes else ""))
        self.net.pretrained_cfg = self.pretrained_cfg = pretrained_cfg(hp.model, weights, self.net)
        if probe_stage is not None:
            self.net = stage_probe(self.net, probe_stage, hp.image_size)
        # one image: Lightning's model summary then shows each layer's in/out sizes and the FLOPs ("0 Total Flops")
        self.example_input_array = torch.zeros(1, hp.in_chans, hp.image_size, hp.image_size)
        min_size = getattr(self.net, "min_size", 1)
        if hp.image_size < min_size:
            raise InputError(
                f"model {hp.model!r} needs inputs of at least {min_size}x{min_size} pixels, got "
                f"image_size={hp.image_size}; use images of {min_size} pixels or more (on the CLI: "
                f"--data.image_size {min_size})"
            )
        if self.channels_last is None:
            self.channels_last = channels_last_by_default(self.net)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        # compiled lazily at the first call; kept outside the module tree so state_dict names stay the net's
        self.__dict__["_compiled"] = torch.compile(self.net) if compile else None

    def configure_losses(self) -> None:
        """The criterion (``self.criterion(scores, target)``): cross-entropy with label smoothing, or the hinge loss."""
        if self.hparams.loss == "hinge":
            self.criterion = multiclass_hinge_loss
        else:
            self.criterion = functools.partial(F.cross_entropy, label_smoothing=self.hparams.label_smoothing)

    def configure_metrics(self) -> None:
        """Top-1 (``acc``) and, with more than 5 classes, top-5 (``acc5``) accuracy: one collection, cloned for
        validation (``val_acc``, ...) and test (``test_acc``, ...). Training counts its own (see
        :meth:`_add_training_sums`)."""
        # labels come from zoo's DataModules or the argmax of soft targets: no per-batch checks
        metrics = MetricCollection(
            {f"acc{'' if k == 1 else k}": MulticlassAccuracy(self.hparams.num_classes, top_k=k, average="micro",
                                                              validate_args=False)
             for k in ((1, 5) if self.hparams.num_classes > 5 else (1,))},
            compute_groups=False,  # top-1 and top-5 keep different states
        )
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), ``[N, num_classes]``."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x) if self._compiled is None else self._compiled(x)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores for evaluation: :meth:`forward`, averaged over the `tta` views of each image."""
        if self.tta == "none":
            return self(x)
        scores = (self(x) + self(x.flip(-1))) / 2
        if self.tta == "flip_shift":
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            h, w = x.shape[-2:]
            shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
            scores = scores / 2 + sum((self(s) + self(s.flip(-1))) / 2 for s in shifted) / 4
        return scores

    def decayed_parameters(self, parameters: Any = None) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """The trainable parameters (or the given ones) split into (weights, biases and normalization weights),
        as timm does: parameters with one dimension or less do not decay (unless ``weight_decay_norm_and_bias``).

        Not timm's ``param_groups_weight_decay``: it leaves out parameters that need no gradient, and fine-tuning's
        frozen stages must be in the optimizer from the start, since they thaw later without a new group."""
        weights, others = [], []
        for parameter in (p for p in self.net.parameters() if p.requires_grad) if parameters is None else parameters:
            (weights if parameter.ndim > 1 or self.weight_decay_norm_and_bias else others).append(parameter)
        return weights, others

    def penalty(self) -> torch.Tensor | None:
        """``l1_penalty * sum |W| + l2_penalty * sum W^2`` over the weights, or None when both are 0."""
        if not (self.l1_penalty or self.l2_penalty):
            return None  # asked at every step: no walk over the parameters when there is nothing to add
        weights = [p for p in self.decayed_parameters()[0] if p.ndim > 1]
        return weight_penalty(weights, self.l1_penalty, self.l2_penalty)

    def loss(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The criterion's loss of `scores` for `target` (class labels, or soft targets for cross-entropy)."""
        if self.hparams.loss == "hinge" and target.dim() != 1:
            raise InputError("the hinge loss needs class labels; mixup and cutmix make soft targets: "
                             "use loss=cross_entropy with them")
        return self.criterion(scores, target)

    def chance_loss(self) -> tuple[float, str] | None:
        """The loss of random scores (all about 0) and its formula: what the first training loss should be near
        (:class:`zoo.callbacks.InitialLossCheck`). Cross-entropy, with or without label smoothing: ln(C); the
        hinge loss: C - 1 (each of the C - 1 margins is about 1). None for a net that starts from pretrained
        weights, whose first loss may rightly be far lower."""
        if self.starts_from_weights:
            return None
        c = self.hparams.num_classes
        return (math.log(c), f"ln({c})") if self.hparams.loss == "cross_entropy" else (c - 1.0, f"{c} - 1")

    def setup(self, stage: str) -> None:
        check_sizes(getattr(self.trainer, "datamodule", None), {key: self.hparams[key] for key in LINKED},
                    "create the model with {what}={have} (the CLI links it from the data)")

    def _step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's loss, and the main head's loss alone (without GoogLeNet's auxiliary heads)."""
        x, y = batch
        scores = self(x) if stage == "train" else self.evaluate(x)
        aux = []
        if isinstance(scores, tuple):  # auxiliary classifiers (GoogLeNet), in training only
            scores, *aux = scores
        head_loss = self.loss(scores, y)
        y = y.argmax(dim=1) if y.dim() == 2 else y  # mixup/cutmix targets: the dominant class for accuracy
        loss = head_loss + AUX_LOSS_WEIGHT * sum(self.loss(a, y) for a in aux) if aux else head_loss
        if stage == "train":
            self._add_training_sums(scores.detach(), y, loss.detach())
            if self._logs_this_step():
                self.log("train_loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        else:
            metrics = self.val_metrics if stage == "val" else self.test_metrics
            metrics.update(scores.detach(), y)
            for name, metric in metrics.items():
                self.log(name, metric, on_step=False, on_epoch=True, prog_bar=name == f"{stage}_acc")
            self.log(f"{stage}_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss, head_loss

    def _logs_this_step(self) -> bool:
        """Whether the logger writes this training step (every ``log_every_n_steps``; the first too, for the bar)."""
        every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        return self.global_step == 0 or (self.global_step + 1) % every == 0

    def _add_training_sums(self, scores: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        """Add a training batch's loss and hits to the epoch's sums, on the device, without a sync.

        Measured on LeNet/digits (benchmarks/overhead.py): a self.log call or a torchmetrics update per
        step each cost a few percent of a small step; these few tensor ops cost a fraction of that (the image count
        is a Python int).
        """
        hits = (scores.topk(min(5, scores.shape[1]), dim=1).indices == y[:, None]).float()  # one hit a row at most
        sums = torch.stack([loss.float() * len(y), hits[:, 0].sum(), hits.sum()])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        self._train_images += len(y)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """The loss to minimize (``loss``) and the main head's loss alone (``head_loss``, for the callbacks)."""
        loss, head_loss = self._step("train", batch)
        penalty = self.penalty()
        if penalty is not None:
            if self._logs_this_step():
                self.log("train_penalty", penalty, on_step=True, on_epoch=False)
            loss = loss + penalty
        return {"loss": loss, "head_loss": head_loss.detach()}

    def configure_callbacks(self) -> list[L.Callback]:
        """What every fit of a trained net needs, whatever Trainer runs it: a stop when the loss diverges, the
        random states in each checkpoint (so a resumed fit continues as an uninterrupted one would), and a warning
        when the first loss is far from that of random scores.

        Lightning asks again for each ``fit``/``test`` of the same Trainer; the ones already there stay.
        With zoo's pretrained weights, the data normalizes as they expect unless it was told otherwise
        (:class:`~zoo.callbacks.PretrainedNormalization`).
        """
        present = self._trainer.callbacks if self._trainer is not None else []
        kinds = (DivergenceStop, RandomState, InitialLossCheck)
        callbacks: list[L.Callback] = [kind() for kind in kinds if not any(isinstance(c, kind) for c in present)]
        cfg = getattr(self, "pretrained_cfg", None) or {}
        if cfg.get("mean") is not None and cfg.get("std") is not None and not any(
                isinstance(c, PretrainedNormalization) for c in present):  # a test after the fit: already there
            callbacks.append(PretrainedNormalization(cfg["weights"], cfg["mean"], cfg["std"]))
        return callbacks

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
        return self.evaluate(x).softmax(dim=1)

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_images = None, 0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """A net with a ``data_init(images)`` method (airbench's whitening) sees the first training batch of a
        fresh fit, as the net sees it (on the device, augmented, normalized). A resumed fit keeps what its
        checkpoint holds; a net started from weights keeps theirs."""
        init = getattr(self.net, "data_init", None)
        if init is not None and self.global_step == 0 and batch_idx == 0 and not self.starts_from_weights:
            init(batch[0])

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:
            return
        sums = torch.cat([self._train_sums, self._train_sums.new_tensor([self._train_images])])
        loss, top1, top5, n = self.trainer.strategy.reduce(sums, reduce_op="sum")  # all processes
        # every rank holds the same totals now; sync_dist averages equal values (one scalar collective an
        # epoch) and tells Lightning the value is global, so DDP runs don't warn that it is one rank's
        self.log("train_loss_epoch", loss / n, prog_bar=True, sync_dist=True)
        self.log("train_acc", top1 / n, prog_bar=True, sync_dist=True)
        if self.hparams.num_classes > 5:
            self.log("train_acc5", top5 / n, sync_dist=True)

    def configure_optimizers(self) -> Any:
        # fine-tuning: a group per backbone stage and one for the head, frozen ones included (no gradients
        # until they thaw), each at its learning-rate factor; so unfreezing never adds a group
        stages = self.parameter_stages(self.net) if self.parameter_stages else [(None, 1.0)]
        groups = []
        for parameters, scale in stages:
            weights, others = self.decayed_parameters(parameters)
            groups += [{"params": weights, "lr_scale": scale}] if weights else []
            if others:
                groups += [{"params": others, "weight_decay": 0.0, "lr_scale": scale * self.bias_lr_scale}]
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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_tensors(self.state_dict(), checkpoint.get("state_dict", {}))  # before Lightning loads it

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        optimizers = trainer.optimizers if trainer is not None and self.automatic_optimization else []
        entry = zoo_entry(self.hparams.model, getattr(trainer, "datamodule", None),
                          optimizers[0] if optimizers else None)
        checkpoint.setdefault("zoo", {}).update(entry)  # beside the random states RandomState put there

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: "str | Path | CheckpointRecord", map_location: Any = None, strict: bool = True,
        **kwargs: Any,
    ) -> "ImageClassifier":
        """The trained classifier of a zoo checkpoint (a path, or a :class:`~zoo.checkpoint.CheckpointRecord`
        already read): built from the net's registry name and arguments, `kwargs` overriding them, its weights
        loaded (read once, ``weights_only=True``), in training mode as Lightning's own loader leaves it.

        The class is the one that trains the net (:func:`classifier_for`: kNN's for a kNN) unless called on a
        subclass of that. A path that does not exist, cannot be read, or was not written by zoo raises
        :class:`zoo.errors.CheckpointError`. Lightning's loader is not used: it would read the file again,
        after zoo's check, and accept pickled objects.
        """
        record = checkpoint_path if isinstance(checkpoint_path, CheckpointRecord) else CheckpointRecord.read(
            checkpoint_path)
        trains = classifier_for(record.model)
        kind = cls if issubclass(cls, trains) else trains
        model = kind(**{**record.hyper_parameters, **kwargs})
        model.on_load_checkpoint(record.contents)
        model.load_state_dict(record.state_dict, strict=strict)
        return model.to(map_location) if map_location is not None else model


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


def channels_last_by_default(net: torch.nn.Module) -> bool:
    """Whether `net` trains channels-last when the layout is not chosen: where it has convolutions and the machine
    no GPU. Measured on 2 Intel Xeon cores (benchmarks/layout.py): for each net of zoo's Fashion-MNIST board a
    training step 1.1-1.6x faster in channels-last and inference 1.1-2.8x (GoogLeNet's most: PyTorch's CPU max
    pooling is slow in the default layout), and faster for most ImageNet-form nets too; ResNet-18 at 64x64 was
    slower (0.9x), a ViT the same. On a GPU the layout stays the default: there it pays mainly under mixed
    precision, which the user chooses."""
    on_cpu = not torch.cuda.is_available() and not torch.backends.mps.is_available()
    return on_cpu and any(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def classifier_for(model: str) -> type[ImageClassifier]:
    """The LightningModule class that trains the registered net `model`: :class:`KNNClassifier` for the kNN family."""
    from zoo.registry import MODELS

    return KNNClassifier if MODELS.get(model).family == "knn" else ImageClassifier
