"""Callbacks that zoo's trainer defaults add (the checkpoint) or that every ImageClassifier brings (divergence)."""

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from zoo.atomic import remove_stale_temporaries
from zoo.errors import TrainingError


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
        if loss is None:  # kNN memorizes: no loss
            return
        value = float(loss)  # one scalar sync a step: a NaN must stop training at once, not an epoch later
        where = f"at step {trainer.global_step} (epoch {trainer.current_epoch})"
        optimizers = trainer.optimizers
        hint = (f"lower the learning rate (--model.optimizer.lr, now "
                f"{optimizers[0].param_groups[0]['lr'] if optimizers else None}) or clip gradients "
                "(--trainer.gradient_clip_val 1)")
        if not math.isfinite(value):
            raise TrainingError(f"the training loss became {value} {where}; {hint}")
        if self.first is None:
            self.first = value
        self.above = self.above + 1 if value > self.factor * self.first else 0
        if self.above >= self.patience:
            raise TrainingError(f"the training loss diverged: {value:.3g} {where}, above {self.factor:g} times its "
                                f"first value ({self.first:.3g}) for {self.patience} steps; {hint}")


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, with ``last.ckpt`` written at the end of every epoch.

    With ``save_last=True`` Lightning 2.6 writes ``last.ckpt`` only when it also writes a top-k
    checkpoint, i.e. when the monitored metric improves: a fit killed later lost every epoch since, and
    resuming a finished fit retrained its last epochs. Here ``last.ckpt`` always holds the newest state.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.stage = stage
        if stage == "fit" and self.dirpath and trainer.is_global_zero:
            remove_stale_temporaries(self.dirpath)  # a killed fit's half-written checkpoints

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
        if self.save_last and not self._should_skip_saving_checkpoint(trainer) and \
                self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


__all__ = ["Checkpoint", "DivergenceStop"]
