"""Callbacks that zoo's trainer defaults add (checkpoint, progress bar) or that every ImageClassifier brings."""

import contextlib
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks import ProgressBar as ProgressBarBase
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from zoo.atomic import remove_stale_temporaries
from zoo.checkpoint import AtomicCheckpointIO, restore_rng_states, rng_states
from zoo.errors import TrainingError
from zoo.log import note
from zoo.precision import BF16WhereNative


class DivergenceStop(Callback):
    """Stops training with a :class:`~zoo.errors.TrainingError` when the training loss diverges.

    Diverged means: not a number (NaN or infinite) at any step, stopped at once; or above `factor`
    times its first value for `patience` steps in a row (a huge learning rate can keep the loss finite,
    1.6e31 for LeNet-5 at lr 1e12, while nothing is learned). :class:`zoo.ImageClassifier` adds it to any
    Trainer through ``configure_callbacks``.
    """

    def __init__(self, factor: float = 10.0, patience: int = 10) -> None:
        self.factor, self.patience = factor, patience
        self.first: float | None = None
        self.above = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:  # a step that returned no loss (manual optimization)
            return
        value = float(loss)  # one scalar sync a step: a NaN must stop training at once, not an epoch later
        if not math.isfinite(value):
            where, hint = self._where_and_hint(trainer)
            raise TrainingError(f"the training loss became {value} {where}; {hint}")
        if self.first is None:
            self.first = value
        self.above = self.above + 1 if value > self.factor * self.first else 0
        if self.above >= self.patience:
            where, hint = self._where_and_hint(trainer)
            raise TrainingError(f"the training loss diverged: {value:.3g} {where}, above {self.factor:g} times its "
                                f"first value ({self.first:.3g}) for {self.patience} steps; {hint}")

    @staticmethod
    def _where_and_hint(trainer: L.Trainer) -> tuple[str, str]:
        """The step and what to do, written only when training stops (not at every step)."""
        optimizers = trainer.optimizers
        return (f"at step {trainer.global_step} (epoch {trainer.current_epoch})",
                f"lower the learning rate (--model.optimizer.lr, now "
                f"{optimizers[0].param_groups[0]['lr'] if optimizers else None}) or clip gradients "
                "(--trainer.gradient_clip_val 1)")


class InitialLossCheck(Callback):
    """Warns when the loss of the first training batch is far from that of random scores: the classic first
    sanity check before training longer (a wrong label, input normalization or init scale shows there).

    Reads the step's ``head_loss`` (the main classifier's loss, before auxiliary heads and penalties) and the
    module's ``chance_loss()`` (the loss of random scores and its formula, ``ln(C)`` for cross-entropy);
    warns when they differ by more than `tolerance` times the chance loss. A module without them, or whose
    ``chance_loss()`` is None (a net starting from pretrained weights), is not checked.
    :class:`zoo.ImageClassifier` adds it to any Trainer through ``configure_callbacks``.
    """

    def __init__(self, tolerance: float = 0.5) -> None:
        self.tolerance = tolerance

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if batch_idx != 0 or trainer.current_epoch != 0 or not isinstance(outputs, dict) or "head_loss" not in outputs:
            return
        expected = pl_module.chance_loss() if callable(getattr(pl_module, "chance_loss", None)) else None
        if expected is None:
            return
        (chance, formula), value = expected, float(outputs["head_loss"])
        if abs(value - chance) > self.tolerance * chance:
            rank_zero_warn(
                f"the initial loss {value:.3f} is far from {formula} = {chance:.3f}, the loss of random scores; "
                "check the labels, the input normalization and the weight init scale before training longer"
            )


class RandomState(Callback):
    """Keeps the random states of torch, numpy and Python in each checkpoint; a resumed fit continues with them.

    So the shuffling, augmentation and dropout of the resumed epochs are those of an uninterrupted fit
    (Lightning restores weights, optimizer and loops but not the random generators). They are stored as
    tensors and lists (``checkpoint["zoo"]["rng"]``), which ``weights_only`` loading reads.
    :class:`zoo.ImageClassifier` adds it to any Trainer through ``configure_callbacks``.
    """

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("zoo", {})["rng"] = rng_states()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("zoo", {}).get("rng")
        if rng is not None and trainer.state.fn == "fit":
            restore_rng_states(rng)


class PretrainedNormalization(Callback):
    """Data that normalizes as the pretrained weights the model started from expect, unless told otherwise.

    :class:`zoo.ImageClassifier` built with zoo's weights (``weights="zoo:TAG"``) brings this callback along
    (Lightning's ``configure_callbacks``): a zoo DataModule without its own ``normalize`` then uses the weights'
    mean and std instead of its training images' statistics.
    """

    def __init__(self, weights: str, mean: list[float], std: list[float]) -> None:
        self.weights, self.mean, self.std = weights, list(mean), list(std)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from zoo.data.base import ImageDataModule

        data = trainer.datamodule
        if isinstance(data, ImageDataModule) and data.normalize is None:
            data.use_normalization(self.mean, self.std)
            note(f"normalizing as {self.weights} expects (mean {_rounded(self.mean)}, std {_rounded(self.std)})")


def _rounded(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, with ``last.ckpt`` written at the end of every epoch; without validation
    images nothing is monitored (the best checkpoint is the newest).

    With ``save_last=True`` Lightning 2.6 writes ``last.ckpt`` only when it also writes a top-k
    checkpoint, i.e. when the monitored metric improves: a fit killed later lost every epoch since, and
    resuming a finished fit retrained its last epochs. Here ``last.ckpt`` always holds the newest state.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.stage = stage
        val_set = getattr(getattr(trainer, "datamodule", None), "val_set", None)
        if stage == "fit" and self.monitor and val_set is not None and len(val_set) == 0:
            self.monitor = None  # no validation images (val_split=0): "best" is the newest epoch
        if stage == "fit" and self.dirpath and trainer.is_global_zero:
            remove_stale_temporaries(self.dirpath)  # a killed fit's half-written checkpoints

    @property
    def state_key(self) -> str:
        """Lightning's key, kept until the settings it names change: Lightning asks for it at every hook of every
        step (to name the profiler's action) and builds it with a ``repr`` each time."""
        # ModelCheckpoint's settings have no public names (tests/test_lightning_contract.py checks them)
        settings = (self.monitor, self.mode, self._every_n_train_steps, self._every_n_epochs, self._train_time_interval)
        if getattr(self, "_state_key", (None, ""))[0] != settings:
            self._state_key = (settings, super().state_key)
        return self._state_key[1]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restored for fitting only: an evaluation (``zoo test``) saves nothing and keeps its own folder."""
        if getattr(self, "stage", "fit") == "fit":
            super().load_state_dict(state_dict)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def _save_last_if_behind(self, trainer: L.Trainer) -> None:
        # Lightning saves last.ckpt only where it saves the monitored one and has no public way to ask for it
        # (tests/test_lightning_contract.py checks the private names used here)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer) and \
                self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class _HoldBack(logging.Filter):
    """Keeps Lightning's ```Trainer.fit` stopped: ...`` line, logged before the last epoch's hooks end, for later."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("`Trainer.fit` stopped"):
            self.held.append(record)
            return False
        return True


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar that stays readable: short fixed-width metrics, redrawn at most 10 times a second,
    and one line per epoch when the output is not a terminal (a log file, a pipe).

    Lightning's bar redraws at every batch and shows every logged name in full (``v_num=0,
    train_loss_step=1.250, ...``): at 120 columns the bar itself shrank to one character, and in a
    file every redraw added a line. Here the bar shows the latest step's ``loss`` and the last
    ``val_acc``, so that it keeps about 10 characters of bar at 80 columns; the epoch lines, the logger
    and ``metrics.csv`` have the rest.
    """

    def __init__(self, refresh_seconds: float = 0.1, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(refresh_rate=1, process_position=process_position, leave=leave)
        self.leave = leave
        self.stop_line: _HoldBack | None = None  # a public name of zoo's: none of Lightning's private ones
        self.refresh_seconds = refresh_seconds
        self.terminal = sys.stdout.isatty()
        self._drawn = -math.inf
        self._epoch_start: float | None = None
        self._epoch_seconds = 0.0

    @property
    def is_disabled(self) -> bool:  # off a terminal: no bars, the epoch lines only
        return super().is_disabled or not self.terminal

    def _should_update(self, current: int, total: int) -> bool:  # Lightning's hook (tests/test_lightning_contract.py)
        now = time.monotonic()
        if current == total or now - self._drawn >= self.refresh_seconds:
            self._drawn = now
            return self.is_enabled
        return False

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        shown = {"loss": f"{float(metrics['train_loss_step']):.3f}"} if "train_loss_step" in metrics else {}
        return shown | ({"val_acc": f"{100 * float(metrics['val_acc']):.2f}%"} if "val_acc" in metrics else {})

    # Lightning logs "`Trainer.fit` stopped: `max_epochs=N` reached." as its fit loop ends, before the hook where the
    # last epoch's line can be printed (and, in a terminal, onto the bar's line): it is held back for the fit's
    # length (on the logger Lightning's rank_zero_info writes to) and let through after the last epoch's line.
    _LIGHTNING_LOG = "lightning.pytorch.utilities.rank_zero"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.stop_line = _HoldBack()
        logging.getLogger(self._LIGHTNING_LOG).addFilter(self.stop_line)

    def _let_through(self) -> None:
        hold, self.stop_line = self.stop_line, None
        if hold is not None:
            logger = logging.getLogger(self._LIGHTNING_LOG)
            logger.removeFilter(hold)
            for record in hold.held:
                logger.handle(record)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._let_through()

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self._epoch_start is not None and trainer.current_epoch > 0:
            self._print_epoch(trainer, trainer.current_epoch - 1)
        self._epoch_start = time.monotonic()
        # TQDMProgressBar's, with zoo's label: its own drew "Epoch 0" for the first epoch (counted from 0)
        if self.leave:
            self.train_progress_bar = self.init_train_tqdm()
        total = self.total_train_batches
        self.train_progress_bar.reset(total=None if total == math.inf else total)
        self.train_progress_bar.initial = 0
        self.train_progress_bar.set_description(self._epoch_label(trainer, trainer.current_epoch))  # as printed

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_seconds = time.monotonic() - (self._epoch_start or time.monotonic())
        super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self._epoch_start is not None:  # the last epoch: the module has logged its train metrics by now
            self._print_epoch(trainer, trainer.current_epoch - 1)
            self._epoch_start = None
        self._let_through()

    @staticmethod
    def _epoch_label(trainer: L.Trainer, epoch: int) -> str:
        """``epoch 3/30``: counted from 1, the bar and the printed lines alike."""
        return f"epoch {epoch + 1}/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 \
            else f"epoch {epoch + 1}"

    def _print_epoch(self, trainer: L.Trainer, epoch: int) -> None:
        """``epoch 3/30  63.2 s  train loss 0.4121 acc 85.21 %  val loss 0.3802 acc 86.40 %`` (off a terminal)."""
        if self.terminal or not trainer.is_global_zero or not self._enabled:
            return
        metrics = trainer.callback_metrics
        parts = [self._epoch_label(trainer, epoch), f"{self._epoch_seconds:.1f} s"]
        for stage in ("train", "val"):
            loss = metrics.get("train_loss_epoch" if stage == "train" else "val_loss")
            acc = metrics.get(f"{stage}_acc")
            if loss is not None or acc is not None:
                parts.append(f"{stage}" + (f" loss {float(loss):.4f}" if loss is not None else "")
                             + (f" acc {100 * float(acc):.2f} %" if acc is not None else ""))
        print("  ".join(parts), flush=True)


__all__ = ["Checkpoint", "DivergenceStop", "InitialLossCheck", "ProgressBar", "RandomState"]


class Results(Callback):
    """What ``zoo fit``, ``zoo test`` and ``zoo validate`` print, in percent as zoo's leaderboards and weights give
    accuracy (Lightning's results table prints fractions): after a fit's test of its best checkpoint, the best
    validation accuracy and its checkpoint, the test accuracy and the command that re-runs the fit; after a test or
    a validation alone, the accuracy and the loss."""

    def __init__(self) -> None:
        self.fitted = False  # the test that follows is the fit's own

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fitted = True

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir if self.fitted else None  # a broadcast under DDP: every rank takes part
        if not trainer.is_global_zero:
            return
        callback = trainer.checkpoint_callback
        best = callback.best_model_path if callback is not None and self.fitted else ""
        if best and callback.best_model_score is not None:
            print(f"best validation accuracy: {100 * float(callback.best_model_score):.2f}%  checkpoint: {best}")
        elif best:
            print(f"checkpoint: {best}")
        _print_accuracy(trainer, "test", with_loss=not self.fitted)
        if log_dir and (Path(log_dir) / "config.yaml").is_file():
            print(f"re-run: zoo fit --config {Path(log_dir) / 'config.yaml'}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING and trainer.is_global_zero:  # zoo validate, not a fit's epochs
            _print_accuracy(trainer, "val", with_loss=True)


def _print_accuracy(trainer: L.Trainer, stage: str, with_loss: bool) -> None:
    metrics = trainer.callback_metrics
    if f"{stage}_acc" not in metrics:
        return
    top5, loss = metrics.get(f"{stage}_acc5"), metrics.get(f"{stage}_loss")
    extra = f" (top-5 {100 * float(top5):.2f}%)" if top5 is not None else ""
    extra += f", loss {float(loss):.4f}" if loss is not None and with_loss else ""
    print(f"{'test' if stage == 'test' else 'validation'} accuracy: {100 * float(metrics[f'{stage}_acc']):.2f}%{extra}")


class NoProfiler(PassThroughProfiler):
    """Lightning's default profiler, which records nothing, without its cost: Lightning opens a
    ``profile(action)`` context at each hook of the module, the strategy and every callback (about 120 a
    training step with zoo's callbacks, 46 for a bare Trainer), and the pass-through profiler makes each a
    new generator-based context manager. Here they are one shared no-op."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return self._nothing


def zoo_trainer_arguments(config: dict[str, Any], callbacks: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """What zoo adds to the Trainer's arguments (`config`) and callbacks that LightningCLI built from the options.

    ``enable_checkpointing false`` leaves out zoo's checkpoint callback (Lightning refuses a ModelCheckpoint with
    it; the fit's final test then uses the last weights); zoo's :class:`ProgressBar` is added unless the bar is off
    or the user chose another, :class:`Results` always; checkpoints are written atomically
    (:class:`zoo.checkpoint.AtomicCheckpointIO`) unless the user chose another checkpoint plugin; nothing is
    profiled (:class:`NoProfiler`) unless ``profiler`` asks; a ``precision`` given replaces a config's
    :class:`zoo.precision.BF16WhereNative` (Lightning refuses both).
    """
    if config.get("enable_checkpointing") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    chosen = config.get("callbacks") or []
    if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBarBase) for c in (chosen if isinstance(chosen, list) else [chosen])):
        callbacks = [*callbacks, ProgressBar()]  # unless the user chose a bar of their own
    callbacks = [*callbacks, Results()]
    plugins = config.get("plugins") or []
    plugins = plugins if isinstance(plugins, list) else [plugins]
    if config.get("precision") is not None:  # --trainer.precision wins over a config's BF16WhereNative
        plugins = [p for p in plugins if not isinstance(p, BF16WhereNative)]
        config = {**config, "plugins": plugins}
    if not any(isinstance(p, CheckpointIO) for p in plugins):  # unless the user chose their own
        config = {**config, "plugins": [*plugins, AtomicCheckpointIO()]}
    if config.get("profiler") is None:
        config = {**config, "profiler": NoProfiler()}
    return config, callbacks
