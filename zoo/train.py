"""Training as a library: ``zoo.fit(...)`` runs what ``zoo fit`` runs and returns what came of it.

``zoo fit`` and :func:`fit` share one LightningCLI subclass (:class:`ZooCLI`) and zoo's trainer
defaults: fit, then test the best checkpoint; ``runs/<model>-<data>/version_N`` with the
checkpoints, metrics.csv and a config.yaml that re-runs the job; resumes with ``ckpt_path last`` (the run
folder's jobs are :mod:`zoo.runs`' functions and callbacks, which :class:`ZooCLI` calls at its hooks).

``model`` picks a registered net: ``zoo.train.<name>`` is its :class:`ImageClassifier` subclass (made by
:func:`zoo.options.classifier_class`), the class a saved ``config.yaml`` names. ``data`` picks a registered
DataModule; its ``num_classes``, ``in_chans``, ``image_size`` and ``class_names`` are linked into the model.
"""

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI

from zoo.callbacks import zoo_trainer_arguments
from zoo.checkpoint import check_sizes
from zoo.classifier import ImageClassifier
from zoo.log import quiet_lightning
from zoo.options import (
    LIGHTNING_COMMANDS,
    LINKED,
    as_the_weights_were_made,
    batch_counts,
    check_config,
    check_linked,
    checkpoint_config,
    classifier_class,
    expand_shorthands,
    given_options,
    option_errors,
    saved_class,
)
from zoo.registry import MODELS
from zoo.runfolder import release
from zoo.runs import (
    RunConfig,
    RunLogger,  # configs saved before zoo.runs existed name zoo.train.RunLogger
    claim_run_folder,
    dataset_of,
    evaluate_beside_the_run,
    next_run_folder,
    resume_last,
    run_failures,
)

DESCRIPTION = ("Train and evaluate a registered model (--model NAME, --model.help NAME) on a "
               "registered DataModule (--data NAME), as LightningCLI does.")


def __getattr__(attr: str) -> type[ImageClassifier]:
    """``zoo.train.<model>`` for any registered model, so saved configs import their class."""
    return saved_class(__name__, attr)


# -- zoo.fit ---------------------------------------------------------------------------------


@dataclass
class FitResult:
    """What a fit left: its best validation accuracy, the test metrics of its best checkpoint, its files.

    One unit per name, as Lightning and torchmetrics give them: ``*_acc`` are fractions (``test_acc`` 0.986), the
    same as ``test_metrics``, which holds Lightning's logged values (``test_acc``, ``test_loss``, ``test_acc5`` where
    there are more than 5 classes; empty when the fit was interrupted); ``*_top1`` are the same accuracies in
    percent (98.6), as zoo prints them and as ``top1`` is in zoo's leaderboards and weights. ``trainer``, ``model``
    and ``datamodule`` are the live objects.
    """

    best_val_acc: float | None  # a fraction: the checkpoint callback's best val_acc
    test_metrics: dict[str, float]
    checkpoint: Path | None
    log_dir: Path | None
    epochs: int
    interrupted: bool
    trainer: L.Trainer = field(repr=False)
    model: L.LightningModule = field(repr=False)
    datamodule: L.LightningDataModule = field(repr=False)

    @property
    def test_acc(self) -> float | None:
        """Top-1 test accuracy of the best checkpoint, a fraction (None when there was no test)."""
        return self.test_metrics.get("test_acc")

    @property
    def test_top1(self) -> float | None:
        """Top-1 test accuracy of the best checkpoint, in percent (None when there was no test)."""
        return None if self.test_acc is None else 100 * self.test_acc

    @property
    def best_val_top1(self) -> float | None:
        """The best validation accuracy, in percent (None without validation)."""
        return None if self.best_val_acc is None else 100 * self.best_val_acc


def fit(model: str | None = None, data: str | None = None,
        options: Mapping[str, Any] | Sequence[str] = (), config: str | Path | None = None) -> FitResult:
    """Train as ``zoo fit`` does, then test the best checkpoint, and return what came of it.

    Args:
        model: a registered model name (default: lenet5, or the config's).
        data: a registered dataset name (default: digits, or the config's).
        options: any option of ``zoo fit``, as dotted keys (``{"trainer.max_epochs": 5,
            "model.optimizer.lr": 0.05}``) or as its command-line arguments.
        config: a config file, e.g. a run's ``config.yaml`` or ``zoo/configs/digits.yaml``.

    Raises:
        zoo.errors.StoppedError: SIGTERM stopped the fit (its message names the checkpoint that resumes it).
        zoo.ZooError: an option or the data was wrong (one line saying what to do).

    Example:
        >>> result = zoo.fit("lenet5", "digits", {"trainer.max_epochs": 2})  # doctest: +SKIP
        >>> result.test_acc, result.test_top1, result.checkpoint  # doctest: +SKIP
        (0.939, 93.9, PosixPath('runs/lenet5-digits/version_0/checkpoints/best.ckpt'))
    """
    argv = ["fit"] + (["--config", str(config)] if config is not None else [])
    argv += (["--model", model] if model else []) + (["--data", data] if data else [])
    if isinstance(options, Mapping):
        for key, value in options.items():
            argv += [f"--{key.removeprefix('--')}", value if isinstance(value, str) else json.dumps(value)]
    else:
        argv += list(options)
    cli = run_lightning(argv)
    if cli.result is None:
        raise RuntimeError("the fit ended without a result (see the messages above)")
    return cli.result


# -- the Lightning subcommands -----------------------------------------------------------------


class ZooCLI(LightningCLI):
    """LightningCLI with zoo's links, checkpointing, logging and a final test of the best checkpoint."""

    def __init__(self, argv: list[str], *args: Any, **kwargs: Any) -> None:
        """`argv`: the command line as the user gave it, before zoo's shorthands (what zoo checks against);
        the other arguments are LightningCLI's, which parses ``sys.argv``."""
        self.running = {argv[0]} if argv and argv[0] in LIGHTNING_COMMANDS else set(LIGHTNING_COMMANDS)
        self.given = given_options(argv)  # --model.num_classes -> "5", to check against the data
        keys = {a.split("=", 1)[0] for a in argv}
        self.user_chose_data = bool({"--data", "--config", "-c"} & keys)  # else a checkpoint's own data is used
        self.verbose = "--verbose" in keys  # Lightning's results table too
        self.result: FitResult | None = None  # after fit: what came of it
        self.claimed: str | None = None  # the run folder's version_N that zoo.runs.claim_run_folder chose
        self.batch_limits: dict[str, int] = {}  # whole-number --trainer.limit_*_batches (options.batch_counts)
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]  (Lightning calls it on the instance)
        """The command being run alone (fit, validate or test), so that only its parser is built; ``zoo predict`` is
        zoo's own command, which writes what it predicts."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k in LIGHTNING_COMMANDS and k in self.running}

    def add_arguments_to_parser(self, parser: Any) -> None:
        for key in LINKED:
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        if "checkpoint" not in parser.groups:
            from zoo.callbacks import Checkpoint

            parser.add_lightning_class_args(Checkpoint, "checkpoint")  # last.ckpt after every epoch
        if "finetune" not in parser.groups:
            from zoo.finetune import Finetune

            parser.add_lightning_class_args(Finetune, "finetune")  # --finetune STRATEGY (see expand_shorthands)
        parser.set_defaults({
            "checkpoint.monitor": "val_acc",
            "checkpoint.mode": "max",
            "checkpoint.filename": "best",
            "checkpoint.save_last": True,
        })

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:  # private: contract test
        """The Trainer with zoo's callbacks and plugins (:func:`zoo.callbacks.zoo_trainer_arguments`), writing a fit
        without a logger into its run folder."""
        config, callbacks = zoo_trainer_arguments({**config, **self.batch_limits}, callbacks)
        if self.subcommand == "fit" and config.get("logger") in (False, None) and not config.get("default_root_dir"):
            # the run folder, logger or not (not written into the saved config: a re-run gets a new folder)
            config = {**config, "default_root_dir": str(next_run_folder(self.config[self.subcommand]))}
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:  # private LightningCLI hook: tests/test_lightning_contract.py
        """With ``--ckpt_path``, rebuild the checkpoint's model (:func:`zoo.options.checkpoint_config`); replaces
        Lightning's version, which reads the hyperparameter layout LightningCLI writes."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
            return
        update, self.checkpoint_data = checkpoint_config(ckpt_path, self.given, self.user_chose_data)
        self.config = self.parser.parse_object({subcommand: update}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        check_config(config)
        self.batch_limits = batch_counts(config, self.given)
        logger = config.trainer.get("logger")
        if getattr(logger, "init_args", None) is not None and logger.init_args.get("name") == "zoo":
            model = config.model.class_path.rsplit(".", 1)[-1]
            data = dataset_of(config.data.class_path)
            logger.init_args.name = f"{model}-{data}"
        as_the_weights_were_made(config, self.given)
        if self.subcommand == "fit" and config.get("ckpt_path") == "last":
            resume_last(config)
        if self.subcommand == "fit":
            self.claimed = claim_run_folder(config)
        if self.subcommand in ("test", "validate"):
            evaluate_beside_the_run(config, self.subcommand)

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunConfig):
                callback.claimed = self.claimed
        check_linked(self.given, self.datamodule)
        check_sizes(self.datamodule, getattr(self, "checkpoint_data", {}),
                    "use data that matches the checkpoint (e.g. --data.{what} {want} where the data has that option)")

    def after_fit(self) -> None:
        trainer = self.trainer
        callback = trainer.checkpoint_callback
        best = callback.best_model_path if callback else ""
        self.result = FitResult(
            best_val_acc=float(callback.best_model_score) if best and callback.best_model_score is not None
            else None, test_metrics={}, checkpoint=Path(best) if best else None,
            log_dir=Path(trainer.log_dir) if trainer.log_dir else None, epochs=trainer.current_epoch,
            interrupted=trainer.interrupted, trainer=trainer, model=self.model, datamodule=self.datamodule)
        if trainer.interrupted or trainer.fast_dev_run:
            return
        results = trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None,
                               verbose=False)  # zoo.callbacks.Results prints it
        if results:
            self.result.test_metrics.update({key: float(value) for key, value in results[0].items()})

    def before_test(self) -> None:
        self._without_lightnings_table()

    def before_validate(self) -> None:
        self._without_lightnings_table()

    def _without_lightnings_table(self) -> None:
        """Lightning's results table prints fractions (0.99444); zoo prints percentages (zoo.callbacks.Results;
        --verbose: both)."""
        if not self.verbose:
            self.config_init[self.subcommand]["verbose"] = False


def run_lightning(argv: list[str]) -> ZooCLI:
    """``zoo fit|validate|test`` with `argv`; what Lightning says that a zoo user cannot act on is silenced for the
    call only (:func:`zoo.log.quiet_lightning`)."""
    with quiet_lightning():
        return _run_lightning(argv)


def _run_lightning(argv: list[str]) -> ZooCLI:
    # short class names in YAML configs (model: lenet5) resolve too; plugin names (timm/x) are not
    # identifiers: their classes are made when --model or a config's class_path asks (zoo.cli.timm_x)
    for name in MODELS.names(exclude="*/*"):
        classifier_class(name)
    saved, sys.argv = sys.argv, [sys.argv[0], *expand_shorthands(argv)]
    try:
        with run_failures(argv[0] if argv else "fit"), option_errors(argv):  # each as one line
            cli = _zoo_cli(argv)
    finally:
        sys.argv = saved
        release()  # the run folder's lock (zoo.fit may run again in this process)
    # Lightning leaves a DDP run's process group alive; Gloo's worker threads then abort the process
    # (SIGABRT, "terminate called without an active exception") when Python exits after a peer has gone.
    # Only after success: tearing down while another rank is inside a collective can deadlock.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return cli


def _zoo_cli(argv: list[str]) -> ZooCLI:
    """LightningCLI on sys.argv, which holds `argv` with zoo's shorthands expanded. Not on ``args=``: Lightning's
    subprocess launcher (DDP on several devices) starts each other process with ``sys.argv``, so it must be the
    fit's own command line also when :func:`zoo.fit` runs inside another program (zoo bench's child)."""
    return ZooCLI(
        argv,
        ImageClassifier,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={
            "max_epochs": 60,
            "log_every_n_steps": 10,
            "logger": {"class_path": f"{RunLogger.__module__}.RunLogger",
                       "init_args": {"save_dir": "runs", "name": "zoo"}},
        },
        save_config_callback=RunConfig,
        save_config_kwargs={"overwrite": True},
        # allow_abbrev: argparse's default takes --trainer.max_epoch for --trainer.max_epochs; a misspelt option
        # must be an error with a suggestion, never a guess
        parser_kwargs={"description": DESCRIPTION, "exit_on_error": False, "allow_abbrev": False},
    )
