"""Callbacks that zoo's trainer defaults add."""

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, with ``last.ckpt`` written at the end of every epoch.

    With ``save_last=True`` Lightning 2.6 writes ``last.ckpt`` only when it also writes a top-k
    checkpoint, i.e. when the monitored metric improves: a fit killed later lost every epoch since, and
    resuming a finished fit retrained its last epochs. Here ``last.ckpt`` always holds the newest state.
    """

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


__all__ = ["Checkpoint"]
