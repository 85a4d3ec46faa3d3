"""The private names of Lightning (and torch) that zoo still relies on, each checked to exist as zoo uses it.

A private name can change in any Lightning release without a deprecation; zoo would then break silently (an
override never called, an attribute read as missing). Each name below has a comment at its use in zoo saying why
no public one serves; this test fails first when Lightning changes one, naming it.
"""

import inspect

import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies import DDPStrategy

# (owner, name, what zoo does with it)
METHODS = [
    (ModelCheckpoint, "_save_last_checkpoint", "zoo.callbacks.Checkpoint saves last.ckpt after validation too"),
    (ModelCheckpoint, "_monitor_candidates", "the metrics that last.ckpt's save is given"),
    (ModelCheckpoint, "_should_save_on_train_epoch_end", "where Lightning saves, so zoo saves last.ckpt after it"),
    (ModelCheckpoint, "_should_skip_saving_checkpoint", "no save in sanity checks, fast_dev_run, twice a step"),
    (TQDMProgressBar, "_should_update", "overridden: redraws limited by time, not by batches"),
    (ExperimentWriter, "_check_log_dir_exists", "overridden: a resumed run appends to its metrics.csv"),
    (LightningCLI, "_instantiate_trainer", "overridden: zoo's trainer defaults and callbacks"),
    (LightningCLI, "_parse_ckpt_path", "overridden: a checkpoint's own model and data, checked against the given"),
    (torch.nn.Module, "_load_from_state_dict", "overridden by kNN: buffers whose size the checkpoint sets"),
]

ATTRIBUTES = [
    (lambda: ModelCheckpoint(), "_last_global_step_saved", "whether last.ckpt is behind"),
    (lambda: ModelCheckpoint(), "_every_n_epochs", "the checkpoint settings a resumed run compares"),
    (lambda: ModelCheckpoint(), "_every_n_train_steps", "the checkpoint settings a resumed run compares"),
    (lambda: ModelCheckpoint(), "_train_time_interval", "the checkpoint settings a resumed run compares"),
    (lambda: TQDMProgressBar(), "_enabled", "epoch lines only while the bar is enabled"),
    (lambda: CSVLogger("."), "_experiment", "zoo's RunLogger makes the appending writer"),
    (lambda: CSVLogger("."), "_fs", "the logger's file system (local or remote)"),
    (lambda: LightningModule(), "_trainer", "the trainer or None: the public property raises when detached"),
    (lambda: DDPStrategy(), "_ddp_kwargs", "Finetune needs find_unused_parameters for frozen layers"),
]


@pytest.mark.parametrize("owner, name, why", METHODS, ids=[f"{o.__name__}.{n}" for o, n, _ in METHODS])
def test_the_private_methods_zoo_uses_or_overrides_exist(owner, name, why):
    assert callable(getattr(owner, name, None)), f"{owner.__qualname__}.{name} is gone ({why})"


@pytest.mark.parametrize("make, name, why", ATTRIBUTES, ids=[n for _, n, _ in ATTRIBUTES])
def test_the_private_attributes_zoo_reads_exist(make, name, why, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hasattr(make(), name), f"{name} is gone ({why})"


def test_the_overrides_keep_lightnings_signatures():
    """An override whose parameters no longer match is called wrongly or not at all."""
    from zoo.callbacks import ProgressBar
    from zoo.runs import _AppendingWriter

    for ours, theirs in ((ProgressBar._should_update, TQDMProgressBar._should_update),
                         (_AppendingWriter._check_log_dir_exists, ExperimentWriter._check_log_dir_exists)):
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters)
