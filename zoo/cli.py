"""The ``zoo`` command: LightningCLI's fit/validate/test/predict plus ``models`` and ``info``.

``--model NAME`` picks a registered net: for each registry name this module offers an
:class:`ImageClassifier` subclass (``zoo.cli.<name>``) whose signature is the net builder's
arguments followed by the classifier's, so ``--model.hidden`` and ``--model.help NAME`` work and
the saved ``config.yaml`` names the class it re-runs. ``--data NAME`` picks a registered
DataModule; its ``num_classes``, ``in_chans``, ``image_size`` and ``class_names`` are linked into
the model.
"""

import argparse
import collections
import csv
import difflib
import importlib
import inspect
import json
import logging
import os
import re
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

# Lightning still calls jsonargparse APIs that jsonargparse deprecates: not the user's to fix.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import docstring_parser  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from lightning.pytorch.loggers.csv_logs import ExperimentWriter  # noqa: E402
from lightning.pytorch.loggers.logger import rank_zero_experiment  # noqa: E402

from zoo.atomic import atomic_path, output_file, output_folder
from zoo.classifier import ImageClassifier, read_checkpoint  # noqa: E402
from zoo.data import DATASETS  # noqa: E402
from zoo.errors import InputError, UnknownNameError, ZooError  # noqa: E402
from zoo.registry import MODELS, ModelEntry, list_models, model_info  # noqa: E402
from zoo.spreadsheet import safe_row  # noqa: E402

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
LINKED = ("num_classes", "in_chans", "image_size", "class_names")
DEFAULT_MODEL, DEFAULT_DATA = "lenet5", "digits"


# -- one ImageClassifier subclass per registered model ------------------------------------------


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def classifier_class(name: str) -> type[ImageClassifier]:
    """The ImageClassifier subclass for the registered model `name` (made once, then reused)."""
    ident = _identifier(name)
    cls = globals().get(ident)
    if isinstance(cls, type) and issubclass(cls, ImageClassifier):
        return cls
    entry = MODELS.get(name)
    cls = type(ident, (ImageClassifier,), {
        "__init__": _classifier_init(entry),
        "__module__": __name__,
        "__qualname__": ident,
        "__doc__": _merged_doc(entry),
        "registry_name": entry.name,
    })
    globals()[ident] = cls
    return cls


def _classifier_init(entry: ModelEntry) -> Any:
    builder_params = [p for p in inspect.signature(entry.builder).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    taken = {p.name for p in builder_params}
    classifier_params = [p for n, p in inspect.signature(ImageClassifier.__init__).parameters.items()
                         if n not in ("self", "model", "model_kwargs") and n not in taken]
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    params += [p.replace(kind=p.KEYWORD_ONLY) for p in builder_params + classifier_params]
    name = entry.name

    def __init__(self: ImageClassifier, **kwargs: Any) -> None:
        ImageClassifier.__init__(self, **{**kwargs, "model": name})

    __init__.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    __init__.__doc__ = _merged_doc(entry)
    return __init__


def _merged_doc(entry: ModelEntry) -> str:
    """The builder's docstring with the classifier's argument docs appended (for ``--help``)."""
    builder = docstring_parser.parse(inspect.getdoc(entry.builder) or entry.name)
    classifier = docstring_parser.parse(inspect.getdoc(ImageClassifier) or "")
    have = {p.arg_name for p in builder.params}
    builder.meta += [p for p in classifier.params if p.arg_name not in have | {"model", "**model_kwargs"}]
    return docstring_parser.compose(builder, style=docstring_parser.DocstringStyle.GOOGLE)


def __getattr__(attr: str) -> type[ImageClassifier]:
    """``zoo.cli.<model>`` for any registered model, so saved configs import their class."""
    for name in MODELS.names():
        if _identifier(name) == attr:
            return classifier_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# -- the Lightning subcommands -----------------------------------------------------------------


class RunLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed fit appends to its run's metrics.csv instead of deleting it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def next_run_folder(config: Any) -> Path:
    """``runs/<model>-<data>/version_N`` with the next free N: where a fit without a logger keeps its files.

    Lightning would put ``checkpoints/`` and ``config.yaml`` in the current folder (``--trainer.logger
    false`` has no log_dir); zoo keeps the same layout as with its logger.
    """
    model = config.model.class_path.rsplit(".", 1)[-1]
    root = Path("runs") / f"{model}-{_dataset_name(config.data.class_path)}"
    taken = [int(p.name.removeprefix("version_")) for p in root.glob("version_*")
             if p.name.removeprefix("version_").isdigit()]
    return root / f"version_{max(taken, default=-1) + 1}"


RESUMABLE = ("ckpt_path", "config", "trainer.max_epochs", "trainer.logger.init_args.version",  # may differ
             "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.callbacks",  # observers
             *(f"model.init_args.{key}" for key in LINKED))  # linked from the data, compared there


def config_differences(saved: Path, config: Any) -> list[str]:
    """``key: saved -> given`` for each option of `config` that differs from the run's saved config.yaml."""
    import yaml

    if not saved.is_file():
        return []

    def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(tree, dict):
            return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}{key}.").items()}
        return {prefix[:-1]: json.loads(json.dumps(tree, default=str))}

    before, now = flat(yaml.safe_load(saved.read_text()) or {}), flat(config.as_dict())
    return [f"{key}: {before.get(key)!r} -> {now.get(key)!r}" for key in sorted(set(before) | set(now))
            if not key.startswith(RESUMABLE) and before.get(key) != now.get(key)]


class RunConfig(SaveConfigCallback):
    """LightningCLI's config.yaml, written so that it re-runs the job from the start.

    It is written without ``ckpt_path`` (a saved ``ckpt_path: last.ckpt`` made the advertised re-run
    train 0 epochs), and a resumed fit, whose options are the run's own (zoo checks), leaves it as it is.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        resuming = self.config.get("ckpt_path") is not None
        self.config = self.config.clone()
        self.config.ckpt_path = None
        if resuming and (Path(trainer.log_dir or ".") / self.config_filename).is_file():
            self.already_saved = True  # resuming in the run's folder: its config stays the one that started it
            return
        super().setup(trainer, pl_module, stage)


def keep_rows_before(path: Path, step: int) -> int:
    """Drop the rows of a run's metrics.csv logged at `step` or later (after the checkpoint a resume starts from).

    A fit killed after its last checkpoint had logged rows that the resumed fit logs again. Returns
    how many rows were dropped; the file is rewritten whole (atomically) only when there are some.
    """
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    if not table or "step" not in table[0]:
        return 0
    column = table[0].index("step")
    kept = [table[0]] + [row for row in table[1:] if not (row[column].isdigit() and int(row[column]) >= step)]
    if len(kept) < len(table):
        with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(kept)
    return len(table) - len(kept)


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):  # keep the rows; new ones follow under the same header
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ZooCLI(LightningCLI):
    """LightningCLI with zoo's links, checkpointing, logging and a final test of the best checkpoint."""

    user_chose_data = False  # --data or --config was given (else a checkpoint's own data is used)
    given: dict[str, str] = {}  # options given on the command line, --model.num_classes -> "5" (to check them)
    test_accuracy: float | None = None  # after fit: the best checkpoint's test accuracy
    test_metrics: dict[str, float] | None = None  # after fit: all its test metrics (test_acc, test_acc5, ...)

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

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        """``--trainer.enable_checkpointing false`` leaves out zoo's checkpoint callback.

        Lightning refuses a ModelCheckpoint together with enable_checkpointing=False; the fit's
        final test then uses the last weights.
        """
        if config.get("enable_checkpointing") is False:
            from lightning.pytorch.callbacks import ModelCheckpoint

            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        if self.subcommand == "fit" and config.get("logger") in (False, None) and not config.get("default_root_dir"):
            # the run folder, logger or not (not written into the saved config: a re-run gets a new folder)
            config = {**config, "default_root_dir": str(next_run_folder(self.config[self.subcommand]))}
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, rebuild the checkpoint's model: its registry name and arguments win.

        Replaces Lightning's version, which reads the hyperparameter layout LightningCLI writes;
        zoo checkpoints hold ImageClassifier's own arguments so they load without the CLI too.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
            return
        checkpoint = read_checkpoint(ckpt_path)
        hparams = dict(checkpoint.get("hyper_parameters", {}))
        name = hparams.pop("model")
        chosen = self.given.get("--model")
        if chosen is not None and chosen != name:
            raise InputError(f"the checkpoint {ckpt_path} holds a {name}, but --model {chosen} was given; leave "
                             f"--model out (the checkpoint's model is rebuilt) or give a checkpoint of a {chosen}")
        self.checkpoint_data = {key: hparams.pop(key, None) for key in LINKED}  # linked from the data
        update = {"model": {"class_path": f"{__name__}.{classifier_class(name).__qualname__}", "init_args": hparams}}
        data = checkpoint["zoo"].get("data") or {}
        if not self.user_chose_data and data.get("name") in DATASETS:  # the data it was trained on
            update["data"] = {"class_path": _data_class_path(data["name"]), "init_args": data.get("arguments", {})}
        self.config = self.parser.parse_object({subcommand: update}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        logger = config.trainer.get("logger")
        if getattr(logger, "init_args", None) is not None and logger.init_args.get("name") == "zoo":
            model = config.model.class_path.rsplit(".", 1)[-1]
            data = _dataset_name(config.data.class_path)
            logger.init_args.name = f"{model}-{data}"
        if self.subcommand == "fit" and config.get("ckpt_path") == "last":
            self._resume_last(config)
        if self.subcommand in ("test", "validate"):
            self._evaluate_beside_the_run(config)
        self._normalize_as_the_weights(config)

    def _normalize_as_the_weights(self, config: Any) -> None:
        """``--model.weights zoo:TAG``: the data normalizes as those weights expect, unless told otherwise."""
        weights = (config.model.get("init_args") or {}).get("weights")
        data_args = config.data.get("init_args")
        if not (isinstance(weights, str) and weights.startswith("zoo:")) or data_args is None or \
                "normalize" not in data_args or data_args.normalize is not None:
            return
        from zoo.weights import get_weights

        model = getattr(globals().get(config.model.class_path.rsplit(".", 1)[-1]), "registry_name", None)
        normalization = get_weights(model, weights.removeprefix("zoo:")).normalization if model else None
        if normalization is not None:
            data_args.normalize = normalization
            print(f"zoo: normalizing as {weights} expects (mean {normalization[0]}, std {normalization[1]})",
                  file=sys.stderr)

    def _evaluate_beside_the_run(self, config: Any) -> None:
        """``zoo test``/``validate`` of ``runs/NAME/version_K/checkpoints/X.ckpt`` log into ``.../version_K/test``.

        Not a new ``version_N`` among the training runs (zoo's Checkpoint callback skips restoring its
        state in an evaluation, so Lightning does not warn that its dirpath changed).
        """
        logger = config.trainer.get("logger")
        args = getattr(logger, "init_args", None)
        ckpt = config.get("ckpt_path")
        if not ckpt or Path(ckpt).parent.name != "checkpoints":
            return
        if args is not None and str(logger.class_path).endswith(RunLogger.__name__) and args.get("save_dir") == "runs":
            args.save_dir, args.name, args.version = str(Path(ckpt).parent.parent), self.subcommand, None

    def _resume_last(self, config: Any) -> None:
        """``fit --ckpt_path last``: continue the newest run of this name that has a ``last.ckpt``, in its folder.

        Lightning looks for ``last.ckpt`` only in the new run's own (empty) version folder, so a resumed
        fit would silently start from scratch; zoo looks in ``<save_dir>/<name>/version_*``.
        """
        logger = config.trainer.get("logger")
        args = getattr(logger, "init_args", None)
        if args is None or not str(logger.class_path).endswith(RunLogger.__name__):
            return  # another logger: Lightning's own search
        root = Path(args.get("save_dir") or "runs") / args.get("name", "")
        found = list(root.glob("version_*/checkpoints/last.ckpt"))
        if not found:
            print(f"zoo: no last.ckpt under {root}: starting a new fit", file=sys.stderr)
            config.ckpt_path = None
            return
        last = max(found, key=lambda p: p.stat().st_mtime)
        state = read_checkpoint(last)
        epochs = config.trainer.get("max_epochs")
        if epochs is not None and 0 <= epochs < state["epoch"] + 1:
            raise InputError(f"{last} holds the end of epoch {state['epoch'] + 1}, but --trainer.max_epochs is "
                             f"{epochs}; give at least {state['epoch'] + 1} to resume it")
        differences = config_differences(last.parent.parent / "config.yaml", config)
        if differences:
            raise InputError(f"resuming {last} with options that differ from its run's config.yaml ("
                             + "; ".join(differences) + "); a resume continues the same job: give the run's own "
                             f"options (zoo fit --config {last.parent.parent / 'config.yaml'} --ckpt_path last), "
                             "or start a new fit")
        if epochs is not None and epochs >= 0 and state["epoch"] + 1 >= epochs:
            print(f"zoo: {last} already holds the end of epoch {state['epoch'] + 1} of {epochs}: the run is "
                  f"finished, nothing to resume (give a larger --trainer.max_epochs to train on)", file=sys.stderr)
            sys.exit(0)
        args.version = last.parent.parent.name
        config.ckpt_path = str(last)
        dropped = keep_rows_before(last.parent.parent / "metrics.csv", state["global_step"])
        print(f"zoo: resuming {last}" + (f" ({dropped} metric rows logged after it dropped)" if dropped else ""),
              file=sys.stderr)

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        for key in ("num_classes", "in_chans", "image_size"):  # linked from the data: a value given must agree
            given, data_value = self.given.get(f"--model.{key}"), getattr(self.datamodule, key, None)
            if given is not None and data_value is not None and given != str(data_value):
                raise InputError(f"--model.{key} {given} contradicts the data, which gives {key}={data_value}; "
                                 f"the model takes {key} from the data: leave --model.{key} out, or choose data "
                                 f"with {key}={given}")
        for key, trained in getattr(self, "checkpoint_data", {}).items():
            given = getattr(self.datamodule, key, None)
            if trained is not None and given is not None and given != trained:
                raise InputError(
                    f"the checkpoint was trained with {key}={trained} but the data gives {key}={given}; "
                    f"use data that matches it (e.g. --data.{key} {trained} where the data has that option)"
                )

    def after_fit(self) -> None:
        trainer = self.trainer
        if trainer.interrupted or trainer.fast_dev_run:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        results = trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None,
                               verbose=False)
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank takes part, or rank 0 waits for a lost peer
        if not trainer.is_global_zero:
            return
        callback = trainer.checkpoint_callback
        if best:
            print(f"best validation accuracy: {100 * float(callback.best_model_score):.2f}%  "
                  f"checkpoint: {best}")
        if results:
            self.test_metrics = {key: float(value) for key, value in results[0].items()}
            self.test_accuracy = self.test_metrics["test_acc"]
            top5 = results[0].get("test_acc5")
            extra = f" (top-5 {100 * top5:.2f}%)" if top5 is not None else ""
            print(f"test accuracy: {100 * results[0]['test_acc']:.2f}%{extra}")
        if log_dir and (Path(log_dir) / "config.yaml").is_file():
            print(f"re-run: zoo fit --config {Path(log_dir) / 'config.yaml'}")

    def before_test(self) -> None:
        self._without_lightnings_table()

    def before_validate(self) -> None:
        self._without_lightnings_table()

    def _without_lightnings_table(self) -> None:
        """Lightning's results table prints fractions (0.99444); zoo prints percentages after it (--verbose: both)."""
        if not any(a.split("=", 1)[0] == "--verbose" for a in sys.argv[1:]):
            self.config_init[self.subcommand]["verbose"] = False

    def after_test(self) -> None:
        self._print_accuracy("test")

    def after_validate(self) -> None:
        self._print_accuracy("val")

    def _print_accuracy(self, stage: str) -> None:
        """``zoo test`` and ``zoo validate`` print as ``zoo fit`` does: percentages, not Lightning's fractions."""
        metrics = self.trainer.callback_metrics
        if not self.trainer.is_global_zero or f"{stage}_acc" not in metrics:
            return
        top5 = metrics.get(f"{stage}_acc5")
        extra = f" (top-5 {100 * float(top5):.2f}%)" if top5 is not None else ""
        loss = metrics.get(f"{stage}_loss")
        extra += f", loss {float(loss):.4f}" if loss is not None else ""
        print(f"{'test' if stage == 'test' else 'validation'} accuracy: {100 * float(metrics[f'{stage}_acc']):.2f}%"
              f"{extra}")


def _dataset_name(class_path: str) -> str:
    """The registry name of a DataModule class path ("data" for an unregistered class)."""
    import importlib

    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    return next((n for n in DATASETS.names() if DATASETS.get(n) is cls), "data")


def _data_class_path(name: str) -> str:
    cls = DATASETS.get(name)
    return f"{cls.__module__}.{cls.__qualname__}"


def _looks_like_path_or_yaml(value: str) -> bool:
    return any(c in value for c in ".{:/\n") or Path(value).exists()


def expand_shorthands(argv: list[str]) -> list[str]:
    """Replace ``--model NAME`` and ``--data NAME`` (registry names) by their class paths, and
    ``--finetune STRATEGY`` by ``--finetune.strategy STRATEGY``.

    Without ``--model``/``--data`` (and without ``--config``), fit/validate/test/predict get lenet5 and
    digits. They are added as arguments, not parser defaults: jsonargparse would carry a default
    class's arguments over to the class the user picks.
    """
    out = list(argv)
    given = {a.split("=", 1)[0] for a in out}
    asks_help = any(a in ("-h", "--help") or a.endswith(".help") for a in given)
    if out and out[0] in LIGHTNING_COMMANDS and "--config" not in given and not asks_help:
        defaults = ([] if "--model" in given else ["--model", DEFAULT_MODEL]) + \
            ([] if "--data" in given else ["--data", DEFAULT_DATA])
        out = [out[0], *defaults, *out[1:]]  # first: later --model.x / --data.x options apply to them
    for i, arg in enumerate(out):  # --finetune STRATEGY: the callback's first argument
        if arg == "--finetune" and i + 1 < len(out) and not _looks_like_path_or_yaml(out[i + 1]):
            out[i] = "--finetune.strategy"
        elif arg.startswith("--finetune=") and not _looks_like_path_or_yaml(arg.split("=", 1)[1]):
            out[i] = "--finetune.strategy=" + arg.split("=", 1)[1]
    for i, arg in enumerate(out):
        for key, registry, resolve in (
            ("--model", MODELS, lambda n: f"{__name__}.{_identifier(n)}"),
            ("--data", DATASETS, _data_class_path),
        ):
            if arg == key and i + 1 < len(out):
                j, value = i + 1, out[i + 1]
            elif arg.startswith(key + "="):
                j, value = i, arg.split("=", 1)[1]
            else:
                continue
            if value in registry:
                expanded = resolve(value)
            elif _looks_like_path_or_yaml(value):
                continue
            else:
                registry.get(value)  # raises UnknownNameError with suggestions
            out[j] = expanded if j != i else f"{key}={expanded}"
    return out


class _DropAdvertisement(logging.Filter):
    """Lightning advertises a cloud logger on every run; zoo's users did not ask for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_DROP_ADVERTISEMENT = _DropAdvertisement()


def run_lightning(argv: list[str]) -> ZooCLI:
    # deprecations inside Lightning's own calls of torch and jsonargparse: nothing a zoo user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    for handler_logger in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch"):
        logging.getLogger(handler_logger).addFilter(_DROP_ADVERTISEMENT)  # a no-op if already there
    ZooCLI.user_chose_data = bool({"--data", "--config"} & {a.split("=", 1)[0] for a in argv})
    ZooCLI.given = given_options(argv)

    # short class names in YAML configs (model: lenet5) resolve too; plugin names (timm/x) are not
    # identifiers: their classes are made when --model or a config's class_path asks (zoo.cli.timm_x)
    for name in MODELS.names(exclude="*/*"):
        classifier_class(name)
    saved, sys.argv = sys.argv, [sys.argv[0], *expand_shorthands(argv)]
    try:
        cli = _zoo_cli()
    except (argparse.ArgumentError, ValueError) as exc:  # the parser's (exit_on_error=False), not the fit's
        message = str(exc)
        if _zoo_error(exc) is not None:  # zoo's own error, raised while the parser built a class: as it is
            raise
        if isinstance(exc, argparse.ArgumentError) or "Requirement '" in message or "Does not validate" in message:
            raise InputError(explain_option_error(message, argv[0] if argv else "fit")) from None
        raise
    finally:
        sys.argv = saved
    # Lightning leaves a DDP run's process group alive; Gloo's worker threads then abort the process
    # (SIGABRT, "terminate called without an active exception") when Python exits after a peer has gone.
    # Only after success: tearing down while another rank is inside a collective can deadlock.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return cli


def given_options(argv: list[str]) -> dict[str, str]:
    """The ``--key value`` and ``--key=value`` pairs of a command line, the last of each key winning."""
    given = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            key, sep, value = arg.partition("=")
            if sep:
                given[key] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                given[key] = argv[i + 1]
    return given


def explain_option_error(message: str, subcommand: str) -> str:
    """One line for the parser's error: the option, the closest valid one, and where to look.

    jsonargparse reports an unknown option of a class as a nested union error of a dozen lines, and
    a logger whose package is missing as a traceback; a zoo user gets the gist.
    """
    help_hint = f"see: zoo {subcommand} --help"
    required = re.search(r"Requirement '([^']+)' not met", message)
    if required:
        owner = re.search(r"class_path '([\w.]+)'", message)
        what = owner.group(1).rsplit(".", 1)[-1] if owner else "the class you chose"
        return f"{what} needs the package {required.group(1)}: pip install '{required.group(1)}'"
    option = re.search(r"Option '(\w+)' is not accepted", message)
    keys = re.findall(r'Parser key "([\w.]+)"', message)
    owner = re.search(r"class_path '([\w.]+)'", message)
    if option and keys:
        flag = "--" + ".".join([*keys, option.group(1)])
        valid: list[str] = []
        if owner and len(keys) == 1:
            module, _, name = owner.group(1).rpartition(".")
            cls = getattr(importlib.import_module(module), name, None)
            valid = [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")] if cls else []
        close = difflib.get_close_matches(option.group(1), valid, n=1)
        owner_name = owner.group(1).rsplit(".", 1)[-1] if owner and len(keys) == 1 else keys[-1]
        hint = f"did you mean --{keys[0]}.{close[0]}? " if close else ""
        return f"{flag} is not an option of {owner_name}; {hint}{help_hint}"
    if keys:  # a value of the wrong type: the line after the innermost key says what was expected
        lines = [line.strip() for line in message.splitlines()]
        last = max(i for i, line in enumerate(lines) if line.startswith(f'Parser key "{keys[-1]}"'))
        detail = next((line for line in lines[last + 1:] if line), "not accepted")
        if detail.startswith("Does not validate"):  # a union: say which types it takes and what was given
            subtypes = next((line for line in lines[last:] if line.startswith("Subtypes:")), "")
            given = next((line for line in lines[last:] if line.startswith("Given value:")), "")
            detail = (f"expected one of {subtypes.removeprefix('Subtypes:').strip()}, "
                      f"got {given.split(':', 1)[-1].strip()}")
        detail = re.sub(r"<class '([\w.]+)'>", r"\1", detail).rstrip(".")
        return f"--{'.'.join(keys)}: {detail}; {help_hint}"
    unknown = re.search(r"unrecognized arguments: (--[\w.]+)", message)
    if unknown:
        flag = unknown.group(1)
        group, _, name = flag[2:].rpartition(".")
        valid = [p for p in inspect.signature(L.Trainer).parameters] if group == "trainer" else []
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"did you mean --{group}.{close[0]}? " if close else ""
        return f"unknown option {flag}; {hint}{help_hint}"
    return f"{message.strip().splitlines()[0]}; {help_hint}"


def _zoo_cli() -> ZooCLI:
    """LightningCLI on sys.argv (passing args instead would make Lightning warn about sys.argv)."""
    return ZooCLI(
        ImageClassifier,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={
            "max_epochs": 60,
            "log_every_n_steps": 10,
            "logger": {"class_path": f"{__name__}.RunLogger",
                       "init_args": {"save_dir": "runs", "name": "zoo"}},
        },
        save_config_callback=RunConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": __doc__, "exit_on_error": False},
    )


# -- zoo models / zoo info ---------------------------------------------------------------------


def _human(n: int, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= factor:
            return f"{n / factor:.2f}{suffix}{unit}"
    return f"{n}{unit}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Rows as a plain-text table with aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines)


def cmd_models(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo models", description="List the registered models: parameters and MACs at the default input. "
        "Plugin models have a namespace (timm/resnet18, tv/efficientnet_b0) and are listed when a pattern "
        "names them, e.g. zoo models 'timm/resnet*'.")
    parser.add_argument("pattern", nargs="*", default=[],
                        help="fnmatch patterns, e.g. 'res*' (default: zoo's own models)")
    parser.add_argument("--exclude", nargs="*", default=[], help="fnmatch patterns to leave out")
    parser.add_argument("--family", help="only this family (e.g. resnet)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (as in docs/models.md)")
    parser.add_argument("--pretrained", action="store_true",
                        help="only models with zoo's own pretrained weights (zoo:TAG), with their test accuracy")
    args = parser.parse_args(argv)
    names = list_models(args.pattern or "*", args.exclude + ([] if args.pattern else ["*/*"]), args.family)
    if args.pretrained:
        from zoo.weights import list_weights

        with_weights = {w.model for w in list_weights()}
        names = [n for n in names if n in with_weights]
        if not names:
            raise UnknownNameError("no model has zoo's pretrained weights; install them: pip install -e "
                                   "plugins/zoo-weights (in a checkout of zoo)")
    header = ["model", "family", "params", "MACs", "input", "min", "paper"]
    if args.pretrained:
        header = ["model", "weights", "dataset", "acc@1", "params", "input", "paper"]
    rows = []
    for name in names:
        info = model_info(name)
        if args.pretrained:
            for weights, meta in info.weights.items():
                if weights.startswith("zoo:"):
                    rows.append([name, weights, meta["dataset"] or "-", _weight_cell(meta["acc@1"]),
                                 _human(meta["params"] or info.params), meta["input"] or "-", info.paper])
            continue
        rows.append([name, info.family, _human(info.params), _human(info.macs),
                     "x".join(map(str, info.input_size)), str(info.min_size), info.paper])
    print(markdown_table(rows, header) if args.markdown else table(rows, header))
    namespaces = collections.Counter(n.split("/", 1)[0] for n in list_models("*/*"))
    if not args.pattern and namespaces and not args.markdown and not args.pretrained:
        listed = ", ".join(f"{ns}/* ({count})" for ns, count in sorted(namespaces.items()))
        print(f"\nplugins add {sum(namespaces.values())} more: {listed}; list them with e.g. "
              f"zoo models '{min(namespaces)}/*'")


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(r) + " |" for r in lines)


def cmd_info(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="zoo info", description="Show one registered model in full.")
    parser.add_argument("name", help="a registry name (see: zoo models)")
    args = parser.parse_args(argv)
    info = model_info(args.name)
    doc = inspect.getdoc(MODELS.get(args.name).builder) or ""
    rows = [
        ["name", info.name], ["family", info.family], ["paper", info.paper],
        ["params", f"{info.params:,}"], ["MACs", f"{info.macs:,}"],
        ["input size", "x".join(map(str, info.input_size))], ["minimum size", f"{info.min_size}x{info.min_size}"],
        ["CAM layer", info.cam_layer or "-"],
    ]
    rows += [[f"--model.{k}", repr(v)] for k, v in info.arguments.items()]
    print(doc.split("\n\n")[0] + "\n")
    print(table(rows, ["", ""]).split("\n", 2)[2])
    if info.weights:
        keys = ["dataset", "acc@1", "leaderboard acc@1", "acc@5", "params", "input", "min_size", "recipe", "sha256"]
        keys = [k for k in keys if any(k in meta for meta in info.weights.values())]
        print("\npretrained weights:\n" + table(
            [[name, *(_weight_cell(meta.get(k)) for k in keys)] for name, meta in info.weights.items()],
            ["weights", *keys]))


def _weight_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and value >= 1000:
        return f"{value:,}"
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value))
    return str(value)


def cmd_cam(argv: list[str]) -> None:
    import argparse
    import csv
    import os

    from tqdm import tqdm

    from zoo import cam
    from zoo.data.files import denormalize, read_images

    parser = argparse.ArgumentParser(
        prog="zoo cam",
        description="Class activation maps of a trained model, drawn over the images as a PNG grid. "
                    "Images come from files (--images) or from a dataset split (by default the checkpoint's "
                    "own dataset). With --evaluate, scores how well each method localizes the object on a "
                    "dataset with boxes (cluttered_digits): the pointing game and the box IoU.")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--images", nargs="+", help="image files or folders (prepared as the model was trained)")
    parser.add_argument("--data", help="a registered dataset (default: the one the checkpoint was trained on)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="test", help="(default: test)")
    parser.add_argument("--n", type=int, default=32, help="how many images of the split to draw (default: 32)")
    parser.add_argument("--method", choices=cam.METHODS, default="gradcam", help="(default: gradcam)")
    parser.add_argument("--layer", help="a module name to read instead of the last feature map, e.g. layer3")
    parser.add_argument("--out", default="cams", help="output folder (default: cams)")
    parser.add_argument("--evaluate", action="store_true",
                        help="score every method on the whole split; needs a dataset with boxes")
    args = parser.parse_args(argv)

    checkpoint_data = read_checkpoint(args.ckpt)["zoo"].get("data") or {}
    model = ImageClassifier.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    h = model.hparams
    names = h.class_names or [str(i) for i in range(h.num_classes)]
    output_folder(args.out)
    if args.images:
        mean, std = checkpoint_data.get("mean"), checkpoint_data.get("std")
        if mean is None or std is None:
            raise InputError(f"checkpoint {args.ckpt!r} does not say how its images were normalized; "
                             "use --data instead of --images")
        x, shown, paths = read_images(args.images, h.image_size, h.in_chans, mean, std)
        labels, boxes, captions = None, None, [p.name for p in paths]
    else:
        name, datamodule = checkpoint_datamodule(args.ckpt, checkpoint_data, args.data)
        split_x, split_y = datamodule.normalized(args.split)
        all_boxes = getattr(datamodule, "boxes", {}).get(args.split)
        if args.evaluate:
            if all_boxes is None:
                raise InputError(f"dataset {name!r} has no object boxes to score against; use cluttered_digits")
            rows = []
            for method in cam.METHODS:
                maps = []
                for i in tqdm(range(0, len(split_x), 64), desc=method, leave=False):
                    try:
                        maps.append(cam.compute_cam(model, split_x[i:i + 64], split_y[i:i + 64], method,
                                                    args.layer).maps)
                    except ZooError:
                        break  # plain CAM on a head that has no GAP + linear form
                if len(maps) * 64 >= len(split_x):
                    scores = cam.localization(torch.cat(maps), all_boxes)
                    rows.append([method, f"{scores['pointing_game']:.3f}", f"{scores['box_iou']:.3f}"])
                else:
                    rows.append([method, "n/a", "n/a"])
            print(table(rows, ["method", "pointing_game", "box_iou"]))
            path = os.path.join(args.out, "localization.csv")
            with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
                csv.writer(f).writerows([["model", "method", "pointing_game", "box_iou"]] +
                                        [safe_row([h.model, *r]) for r in rows])
            print(f"scores of {len(split_x)} {args.split} images (targets: the true classes) -> {path}")
        x, labels = split_x[:args.n], split_y[:args.n]
        boxes = all_boxes[:args.n] if all_boxes is not None else None
        shown = denormalize(x, datamodule.mean, datamodule.std)
        captions = None
    result = cam.compute_cam(model, x, method=args.method, layer=args.layer)
    titles = []
    for i, (target, prob) in enumerate(zip(result.targets.tolist(), result.probs.tolist(), strict=True)):
        head = captions[i] + ": " if captions else ""
        truth = f" / true {names[labels[i]]}" if labels is not None else ""
        titles.append(f"{head}{names[target]} ({prob:.2f}){truth}")
    path = os.path.join(args.out, f"{args.method}.png")
    cam.save_grid(shown, result.maps, titles, path, boxes=boxes)
    print(f"{args.method} maps of {len(x)} images -> {path}")


def checkpoint_datamodule(ckpt: str, checkpoint_data: dict[str, Any], name: str | None = None,
                          arguments: dict[str, Any] | None = None) -> tuple[str, Any]:
    """The dataset `name` (default: the one the checkpoint was trained on, with its arguments), set up."""
    from zoo import data

    name = name or checkpoint_data.get("name")
    if name is None:
        raise InputError(f"checkpoint {ckpt!r} does not name its dataset; give --data NAME")
    own = checkpoint_data.get("arguments", {}) if name == checkpoint_data.get("name") else {}
    datamodule = data.create(name, **{**own, **(arguments or {})})
    datamodule.setup()
    return name, datamodule


def cmd_features(argv: list[str]) -> None:
    import argparse

    import numpy as np
    import yaml
    from tqdm import tqdm

    parser = argparse.ArgumentParser(
        prog="zoo features", description="Embed a dataset with a trained model's net: the pooled vector its final "
        "layer reads (pre-logits), for each image of each split, saved with the labels as a NumPy .npz "
        "(train_features, train_labels, val_..., test_..., class_names) for a linear probe or kNN elsewhere.",
        epilog="example: zoo features --ckpt runs/lenet5-digits/version_0/checkpoints/best.ckpt --data digits "
               "--data-arg classes=[5,6,7,8,9] --out digits59.npz")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--data", help="a registered dataset (default: the one the checkpoint was trained on)")
    parser.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="an argument of the dataset, e.g. classes=[5,6,7,8,9] (repeatable)")
    parser.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    parser.add_argument("--batch-size", type=int, default=256, help="images embedded at once (default: 256)")
    parser.add_argument("--out", default="features.npz", help="the .npz file to write (default: features.npz)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    path = output_file(args.out, args.overwrite, (".npz",))
    arguments = {}
    for item in args.data_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--data-arg takes KEY=VALUE, got {item!r}")
        arguments[key] = yaml.safe_load(value)
    model = ImageClassifier.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    net = model.net
    if not hasattr(net, "forward_head"):
        raise InputError(f"model {model.hparams.model!r} has no pre-logits features to embed with")
    name, datamodule = checkpoint_datamodule(args.ckpt, read_checkpoint(args.ckpt)["zoo"].get("data") or {},
                                             args.data, arguments)
    if datamodule.in_chans != model.hparams.in_chans:
        raise InputError(f"the data has in_chans={datamodule.in_chans} but the model takes "
                         f"{model.hparams.in_chans}; give data with the model's channels")
    out: dict[str, Any] = {"class_names": np.array(datamodule.class_names)}
    for split in args.splits:
        x, y = datamodule.normalized(split)
        vectors = []
        with torch.no_grad():
            for i in tqdm(range(0, len(x), args.batch_size), desc=split, leave=False):
                vectors.append(net.forward_head(net.forward_features(x[i:i + args.batch_size]), pre_logits=True)
                               .flatten(1))
        out[f"{split}_features"] = torch.cat(vectors).numpy() if vectors else np.zeros((0, 0), np.float32)
        out[f"{split}_labels"] = y.numpy()
        print(f"{split}: {len(y)} images -> {out[f'{split}_features'].shape[1]} features")
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, **out)
    print(f"features of {name} by {model.hparams.model} -> {path}")


def cmd_export(argv: list[str]) -> None:
    import argparse

    from zoo.export import FORMATS, export

    parser = argparse.ArgumentParser(
        prog="zoo export",
        description="Export a trained model's net, with its class names and preprocessing as metadata. The file is "
                    "reloaded and checked against PyTorch on a batch (largest difference <= 1e-4) before it is "
                    "put in place. Formats: onnx (runs in ONNX Runtime), torchscript, exported-program "
                    "(torch.export, .pt2) and safetensors (weights; rebuild with zoo.create_model).")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, help="the file to write, e.g. model.onnx (its suffix must fit "
                        "the format: .onnx, .pt, .pt2, .safetensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    print(export(args.ckpt, args.format, args.out, args.overwrite))


def cmd_predict_files(argv: list[str]) -> None:
    import argparse

    from zoo.predict import predict_files

    parser = argparse.ArgumentParser(
        prog="zoo predict",
        description="Top-k classes and probabilities for image files, written to a CSV; images are converted, "
                    "resized and normalized as the checkpoint's model was trained. (Without --ckpt/--images, "
                    "`zoo predict` is LightningCLI's predict loop over a DataModule.)")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--images", required=True, nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--topk", type=int, help="classes per image (default: 3, or all of a model with fewer)")
    parser.add_argument("--out", default="predictions.csv", help="the CSV to write (default: predictions.csv)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    done, skipped = predict_files(args.ckpt, args.images, args.out, args.topk, args.batch_size, args.overwrite)
    print(f"{done} images -> {args.out}" + (f"; {len(skipped)} files skipped (not images)" if skipped else ""))


def _value(text: str) -> Any:
    """A command-line value as Python: numbers and booleans parsed (YAML rules), anything else a string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def cmd_data(argv: list[str]) -> None:
    import argparse

    from zoo import data
    from zoo.cam import save_grid

    parser = argparse.ArgumentParser(
        prog="zoo data", description="Look at the data: the registered datasets, or a grid of training images "
        "exactly as the model sees them (after the augmentation), labelled with their class names.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the registered datasets")
    show = sub.add_parser("show", help="save a grid of augmented training images: zoo data show cifar10 "
                                       "--augment standard --out grid.png")
    show.add_argument("name", help="a registered dataset (zoo data list)")
    show.add_argument("--augment", help="an augmentation preset (default: the dataset's)")
    show.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                      help="other dataset arguments, e.g. data_dir=./data mixup=0.2")
    show.add_argument("--n", type=int, default=32, help="how many images (default: 32)")
    show.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")
    show.add_argument("--out", default="grid.png", help="the PNG to write (default: grid.png)")
    show.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if args.action == "list":
        rows = [[n, " ".join((inspect.getdoc(DATASETS.get(n)) or "").split("\n\n")[0].split())]  # the summary, whole
                for n in DATASETS.names()]
        print(table(rows, ["dataset", "what"]))
        return
    output_file(args.out, args.overwrite, (".png",))
    kwargs = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set takes KEY=VALUE pairs, got {item!r}")
        kwargs[key] = _value(value)
    if args.augment:
        kwargs["augment"] = args.augment
    try:
        datamodule = data.create(args.name, **kwargs)
    except TypeError as exc:
        raise InputError(f"dataset {args.name!r}: {exc}") from None
    images, captions = datamodule.augmented_batch(args.n, args.seed)
    save_grid(images, None, captions, args.out)
    print(f"{len(images)} training images of {args.name} (augment {datamodule.augment}) -> {args.out}")


def cmd_cv(argv: list[str]) -> None:
    import argparse

    import numpy as np

    parser = argparse.ArgumentParser(
        prog="zoo cv", description="k-fold cross-validation: fit the run once per fold (each fold of the training "
        "images validates once; the test split stays untouched) and print each fold and the mean +- std.")
    parser.add_argument("--config", help="a run's config.yaml (e.g. runs/lenet5-digits/version_0/config.yaml)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    args, rest = parser.parse_known_args(argv)
    if args.folds < 2:
        raise InputError(f"--folds must be 2 or more, got {args.folds}")
    base = (["--config", args.config] if args.config else []) + rest
    folder = Path("runs") / "cv" / datetime.now().strftime("%Y%m%d-%H%M%S")  # the folds apart from the normal runs
    rows, val, test = [], [], []
    for fold in range(args.folds):
        print(f"zoo cv: fold {fold + 1} of {args.folds}", flush=True)
        cli = run_lightning(["fit", *base, "--data.folds", str(args.folds), "--data.fold", str(fold),
                             "--trainer.logger.init_args.save_dir", str(folder),
                             "--trainer.logger.init_args.version", f"fold{fold}"])
        callback = cli.trainer.checkpoint_callback
        val.append(100 * float(callback.best_model_score))
        test.append(100 * cli.test_accuracy if cli.test_accuracy is not None else float("nan"))
        rows.append([str(fold), f"{val[-1]:.2f}", f"{test[-1]:.2f}", callback.best_model_path])
    rows.append(["mean +- std", f"{np.mean(val):.2f} +- {np.std(val, ddof=1):.2f}",
                 f"{np.mean(test):.2f} +- {np.std(test, ddof=1):.2f}", ""])
    print(table(rows, ["fold", "val acc (held-out fold) %", "test acc %", "best checkpoint"]))


def cmd_search(argv: list[str]) -> None:
    import argparse

    from zoo import search

    parser = argparse.ArgumentParser(
        prog="zoo search", description="Hyperparameter search: fit every --grid point --trials times, each time with "
        "fresh --random draws, each fit in its own folder under --out; print the trials sorted by best validation "
        "accuracy and write OUT/results.csv and OUT/search.png. Other options go to every zoo fit (e.g. "
        "--trainer.max_epochs 20). Searching again into the same --out adds trials (coarse, then fine).",
        epilog="example: zoo search --config base.yaml --grid model.optimizer.lr=0.1,0.03,0.01 "
               "--random model.optimizer.weight_decay=loguniform:1e-5:1e-2 --trials 4")
    parser.add_argument("--config", help="the base run's config (e.g. a run's config.yaml)")
    parser.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2",
                        help="values to try, every combination, e.g. model.optimizer.lr=0.1,0.01")
    parser.add_argument("--random", nargs="*", default=[], metavar="KEY=DIST:ARGS",
                        help="values to draw: uniform:LOW:HIGH, loguniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,C")
    parser.add_argument("--trials", type=int, default=None,
                        help="fits per grid point, each with new random draws (default: 1, or 8 with --random alone)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
    parser.add_argument("--out", default="runs/search", help="folder of the trials and results (default: runs/search)")
    args, rest = parser.parse_known_args(argv)
    grid, draws = search.parse_grid(args.grid), search.parse_random(args.random)
    if not grid and not draws:
        raise InputError("nothing to search: give --grid KEY=V1,V2 and/or --random KEY=DIST:ARGS (see zoo search -h)")
    repeats = args.trials if args.trials is not None else (8 if draws and not grid else 1)
    if repeats < 1:
        raise InputError(f"--trials must be 1 or more, got {repeats}")
    out = Path(args.out)
    rows = search.run_search((["--config", args.config] if args.config else []) + rest, grid, draws, repeats,
                             args.seed, out)
    keys = [*grid, *(d.key for d in draws)]
    body = [[str(r["trial"]), *(search.format_value(r.get(k)) for k in keys),
             *(f"{r[m]:.2f}" if isinstance(r.get(m), (int, float)) else "-" for m in ("val_acc", "test_acc")),
             str(r.get("status", ""))[:60]] for r in search.ranked(rows)]
    print(table(body, ["trial", *keys, "val acc %", "test acc %", "status"]))
    picture = search.plot(rows, keys, out / "search.png", search.log_scaled(grid, draws))
    print(f"\n{len(rows)} trials -> {out / 'results.csv'}, {picture}")


def cmd_bench(argv: list[str]) -> None:
    if argv and argv[0] == "render":
        return _bench_render(argv[1:])
    if argv and argv[0] == "speed":
        return _bench_speed(argv[1:])
    import argparse

    from zoo import bench

    parser = argparse.ArgumentParser(
        prog="zoo bench", description="Benchmark leaderboards. zoo bench --suite SUITE.yaml fits every model x "
        "dataset x seed of the suite (a zoo fit each, in its own process), tests the best checkpoint and measures "
        "size, speed and memory; each finished entry is appended to OUT/results.csv (validation curves to "
        "OUT/curves.csv) and never overwritten. Running it again skips the finished entries, so an interrupted "
        "suite resumes. Then it renders OUT/leaderboard.md and OUT/index.html. "
        "Also: zoo bench render OUT (the page again), zoo bench speed (timm-style speed against torchvision).",
        epilog="examples: zoo bench --suite benchmarks/suites/digits.yaml --out benchmarks/results/digits\n"
               "          zoo bench --suite benchmarks/suites/cifar10.yaml --data fake --set trainer.max_epochs=1 "
               "--seeds 0   (a quick smoke run)")
    parser.add_argument("--suite", required=True, help="a suite file (shipped: benchmarks/suites/*.yaml)")
    parser.add_argument("--out", help="folder of results.csv, curves.csv and the page (default: runs/bench/SUITE)")
    parser.add_argument("--runs", default="runs/bench", help="where the fits and their logs go (default: runs/bench)")
    parser.add_argument("--models", help="only these of the suite's models, comma-separated")
    parser.add_argument("--data", help="run on these datasets instead of the suite's, comma-separated (e.g. fake)")
    parser.add_argument("--seeds", help="these seeds instead of the suite's, comma-separated")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="zoo fit options for every entry, over the recipe (e.g. trainer.max_epochs=1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in a log file)")
    args = parser.parse_args(argv)

    def listed(text: str | None) -> list[str] | None:
        return [t.strip() for t in text.split(",") if t.strip()] if text else None

    try:
        seeds = [int(s) for s in listed(args.seeds)] if args.seeds else None
    except ValueError:
        raise InputError(f"--seeds takes integers separated by commas, got {args.seeds!r}") from None
    entries = bench.load_suite(args.suite, listed(args.models), listed(args.data), seeds, args.set)
    out = Path(args.out or Path("runs/bench") / entries[0].suite)
    bench.write_references(out, bench.suite_references(args.suite))
    try:
        added = bench.run_suite(entries, out, Path(args.runs), progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\nzoo bench: interrupted; the finished entries are in {out / bench.RESULTS}. "
              f"Run the same command again to resume.", file=sys.stderr)
        sys.exit(130)
    failed = [row for row in added if row["status"] != "done"]
    done = bench.finished(bench.read_rows(out / bench.RESULTS))
    pages = ", ".join(map(str, bench.render(out))) if done else "none yet (no entry has finished)"
    print(f"{len(added) - len(failed)} entries run, {len(failed)} failed -> {out / bench.RESULTS}; "
          f"leaderboard: {pages}")
    if failed:
        sys.exit(1)


def _bench_render(argv: list[str]) -> None:
    import argparse

    from zoo import bench

    parser = argparse.ArgumentParser(
        prog="zoo bench render", description="Write OUT/leaderboard.md, OUT/index.html (sortable table) and the "
        "plots (accuracy vs parameters and vs throughput, validation curves) from OUT/results.csv and curves.csv.")
    parser.add_argument("out", help="a folder holding results.csv (e.g. benchmarks/results/digits)")
    args = parser.parse_args(argv)
    pages = bench.render(Path(args.out))
    print(f"leaderboard: {', '.join(map(str, pages))}")


def _bench_speed(argv: list[str]) -> None:
    import argparse

    from zoo import bench

    parser = argparse.ArgumentParser(
        prog="zoo bench speed", description="Inference and training step speed in the manner of timm's "
        "benchmark.py (warm-up, then the median of --rounds steps), with each model's ratio against the same "
        "architecture from torchvision (or timm), the two timed in turn in this process. Rows are appended to --out "
        "(timm's column names).",
        epilog="example: zoo bench speed --models resnet18,resnet50 --batch 1,64 --precision fp32,bf16 "
               "--channels_last")
    parser.add_argument("--models", required=True, help="registry names, comma-separated")
    parser.add_argument("--batch", default="1,64", help="batch sizes, comma-separated (default: 1,64)")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 and/or fp16, comma-separated (autocast)")
    parser.add_argument("--channels_last", action="store_true", help="channels-last memory format")
    parser.add_argument("--img-size", type=int, help="input height and width (default: the model's own)")
    parser.add_argument("--bench", default="both", choices=["infer", "train", "both"], help="what to time")
    parser.add_argument("--rounds", type=int, default=10, help="timed steps of each net (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--out", default="runs/bench/speed.csv", help="CSV to append to (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        raise InputError(f"--batch takes integers separated by commas, got {args.batch!r}") from None
    if min(batches) < 1 or args.rounds < 1 or args.warmup < 0:
        raise InputError("--batch and --rounds must be 1 or more, --warmup 0 or more")
    shown = [("model", "model"), ("reference", "reference"), ("precision", "precision"),
             ("infer_batch_size", "batch"), ("infer_samples_per_sec", "infer img/s"),
             ("infer_ratio_vs_reference", "infer ratio"), ("train_samples_per_sec", "train img/s"),
             ("train_ratio_vs_reference", "train ratio")]
    rows = []
    for row in bench.speed(args.models.split(","), batches, args.precision.split(","), args.channels_last,
                           args.img_size, args.device, args.rounds, args.warmup, args.bench):
        bench.append_rows(Path(args.out), bench.SPEED_COLUMNS, [row])
        rows.append(row)
        print("  ".join(f"{label} {row.get(key, '-')}" for key, label in shown), flush=True)
    print()
    print(table([[str(r.get(k, "-")) for k, _ in shown] for r in rows], [label for _, label in shown]))
    print(f"\nratio = zoo images/s / reference images/s, timed in turn in this process -> {args.out}")


COMMANDS = {"models": cmd_models, "info": cmd_info, "cam": cmd_cam, "export": cmd_export, "data": cmd_data,
            "cv": cmd_cv, "search": cmd_search, "features": cmd_features, "bench": cmd_bench}


def _is_file_predict(argv: list[str]) -> bool:
    return argv[0] == "predict" and any(a.split("=", 1)[0] in ("--ckpt", "--images") for a in argv[1:])

OVERVIEW = """usage: zoo COMMAND [options]

Train, evaluate and inspect image classifiers from the zoo registry.

Lightning commands (LightningCLI; `zoo COMMAND --help` lists every option):
  fit        train a model: zoo fit --model lenet5 --data digits
             fine-tune one: zoo fit --model resnet18 --model.weights torchvision:IMAGENET1K_V1 --finetune linear_probe
  validate   evaluate on the validation split: zoo validate --config CONFIG --ckpt_path CKPT
  test       evaluate on the test split:       zoo test --config CONFIG --ckpt_path CKPT
  predict    class probabilities for the data's predict split (LightningCLI), or for image files:
             zoo predict --ckpt CKPT --images DIR --topk 3 --out predictions.csv

  cv         k-fold cross-validation of a run: zoo cv --config CONFIG --folds 5
  search     hyperparameter search: zoo search --config CONFIG --grid model.optimizer.lr=0.1,0.01
             --random model.optimizer.weight_decay=loguniform:1e-5:1e-2 --trials 4
  bench      leaderboards: zoo bench --suite benchmarks/suites/digits.yaml (-> results.csv, leaderboard.md,
             index.html); zoo bench render OUT; speed vs torchvision: zoo bench speed --models resnet18

Registry and data:
  models     list the registered models: zoo models 'res*'
  info       one model in full: zoo info lenet5
  data       the datasets: zoo data list; augmented samples: zoo data show cifar10 --augment standard

Looking inside and shipping:
  cam        class activation maps as pictures: zoo cam --ckpt CKPT --images DIR --method gradcam
  features   embeddings of a dataset by a trained net (.npz, for a linear probe or kNN):
             zoo features --ckpt CKPT --data digits --out features.npz
  export     onnx, torchscript, exported-program or safetensors, parity-checked:
             zoo export --ckpt CKPT --format onnx --out model.onnx

Defaults: `zoo fit` alone trains lenet5 on scikit-learn's digits and writes runs/<model>-<data>/version_<n>/
(checkpoints/best.ckpt, metrics.csv, config.yaml). --model.help NAME shows a model's own options.
"""


_show_warning = warnings.showwarning


def _show_zoo_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                      line: Any = None) -> None:
    """zoo's own warnings as one line (``zoo: warning: ...``); other libraries' as Python shows them."""
    if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent):
        print(f"zoo: warning: {message}", file=sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.showwarning = _show_zoo_warning
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(OVERVIEW)
        elif argv[0] in COMMANDS:
            COMMANDS[argv[0]](argv[1:])
        elif _is_file_predict(argv):
            cmd_predict_files(argv[1:])
        else:
            if argv[0] not in LIGHTNING_COMMANDS and not argv[0].startswith("-"):
                raise UnknownNameError(f"unknown command {argv[0]!r}; choose one of: "
                                       f"{', '.join((*LIGHTNING_COMMANDS, *COMMANDS))} (see: zoo --help)")
            run_lightning(argv)
    except Exception as exc:
        cause = _zoo_error(exc)
        if cause is None:
            raise
        print(f"zoo: error: {cause}", file=sys.stderr)
        sys.exit(2)


def _zoo_error(exc: BaseException | None) -> ZooError | None:
    """The ZooError behind `exc`: jsonargparse and Lightning re-raise errors wrapped in their own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ZooError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
