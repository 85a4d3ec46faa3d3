"""The run folder of a fit: ``runs/<model>-<data>/version_N``, claimed, logged into, saved and resumed.

Plain functions and Lightning callbacks, each with one job, that :class:`zoo.train.ZooCLI` calls at its hooks:
:func:`claim_run_folder` (the next free ``version_N``, locked), :func:`resume_last` (``--ckpt_path last``: the
newest run's ``last.ckpt``, checked against the run's config), :func:`evaluate_beside_the_run` (``zoo test``
logs beside the run it tests), :class:`RunLogger` (metrics.csv kept across a resume), :class:`RunConfig`
(a config.yaml that re-runs the job), :func:`run_failures` (a run that ends early: what it left and how to resume).
"""

import contextlib
import csv
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from zoo.atomic import atomic_path
from zoo.checkpoint import LINKED, CheckpointRecord
from zoo.errors import InputError, StoppedError, TrainingError
from zoo.log import note
from zoo.registry import dataset_name
from zoo.runfolder import claim_next_version, held, lock_folder


def dataset_of(class_path: str) -> str:
    """The registry name of a DataModule class path ("data" for an unregistered class)."""
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    return dataset_name(cls) or "data"


def next_run_folder(config: Any) -> Path:
    """``runs/<model>-<data>/version_N`` with the next free N, made and locked: where a fit without a logger
    keeps its files.

    Lightning would put ``checkpoints/`` and ``config.yaml`` in the current folder (``--trainer.logger
    false`` has no log_dir); zoo keeps the same layout as with its logger. Only global rank 0 claims a folder
    (Lightning gives the other ranks rank 0's checkpoint folder).
    """
    model = config.model.class_path.rsplit(".", 1)[-1]
    root = Path("runs") / f"{model}-{dataset_of(config.data.class_path)}"
    if rank_zero_only.rank != 0:
        return root / "version_unused"
    folder = claim_next_version(root)
    lock_folder(folder, "zoo fit")
    return folder


def claim_run_folder(config: Any) -> str | None:
    """The fit's ``version_N``: the next free one made at once (not when Lightning first logs), then locked.

    One writer per run folder: a second fit into it (two resumes of one run, a requeued job beside the old
    one) stops with one line naming the first one's pid. Only global rank 0 writes the folder. Returns the
    ``version_N`` claimed (None when the user gave the version, or another process claims).
    """
    logger = config.trainer.get("logger")
    args = getattr(logger, "init_args", None)
    if args is None or not str(logger.class_path).endswith(RunLogger.__name__) or rank_zero_only.rank != 0:
        return None
    root = Path(args.get("save_dir") or "runs") / args.get("name", "")
    version = args.get("version")
    if version is not None:
        lock_folder(root / (version if isinstance(version, str) else f"version_{version}"), "zoo fit")
        return None
    folder = claim_next_version(root)
    args.version = folder.name
    lock_folder(folder, "zoo fit")
    return folder.name


def evaluate_beside_the_run(config: Any, subcommand: str) -> None:
    """``zoo test``/``validate`` of ``runs/NAME/version_K/checkpoints/X.ckpt`` log into ``.../version_K/test``,
    of published weights (or any other checkpoint) into ``runs/NAME/test``.

    Never a new ``version_N`` among the training runs, which would look like a run without checkpoints (zoo's
    Checkpoint callback skips restoring its state in an evaluation, so Lightning does not warn that its dirpath
    changed).
    """
    logger = config.trainer.get("logger")
    args = getattr(logger, "init_args", None)
    if args is None or not str(logger.class_path).endswith(RunLogger.__name__) or args.get("save_dir") != "runs":
        return
    ckpt = config.get("ckpt_path")
    if ckpt and Path(ckpt).parent.name == "checkpoints":
        args.save_dir, args.name, args.version = str(Path(ckpt).parent.parent), subcommand, None
    else:  # published weights or an untrained net: beside the training runs of that model and data, not among them
        args.save_dir, args.name, args.version = str(Path("runs") / args.get("name", "")), subcommand, None


def resume_last(config: Any) -> None:
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
        note(f"no last.ckpt under {root}: starting a new fit")
        config.ckpt_path = None
        return
    last = max(found, key=lambda p: p.stat().st_mtime)
    record = CheckpointRecord.read(last)
    done = record.epochs_done
    mid_epoch = done == record.epoch  # Lightning's record: saved before its epoch's last batch
    epochs = config.trainer.get("max_epochs")
    if epochs is not None and 0 <= epochs < done:
        raise InputError(f"{last} holds the end of epoch {done}, but --trainer.max_epochs is "
                         f"{epochs}; give at least {done} to resume it")
    differences = config_differences(last.parent.parent / "config.yaml", config)
    if differences:
        raise InputError(f"resuming {last} with options that differ from its run's config.yaml ("
                         + "; ".join(differences) + "); a resume continues the same job: give the run's own "
                         f"options (zoo fit --config {last.parent.parent / 'config.yaml'} --ckpt_path last), "
                         "or start a new fit")
    if epochs is not None and epochs >= 0 and done >= epochs:
        note(f"{last} already holds the end of epoch {done} of {epochs}: the run is finished, nothing to resume "
             "(give a larger --trainer.max_epochs to train on)")
        sys.exit(0)
    if rank_zero_only.rank == 0:
        lock_folder(last.parent.parent, "zoo fit")  # before its metrics.csv is cut back
    args.version = last.parent.parent.name
    config.ckpt_path = str(last)
    dropped = keep_rows_before(last.parent.parent / "metrics.csv", record.global_step)
    note(f"resuming {last}" + (f" ({dropped} metric rows logged after it dropped)" if dropped else ""))
    if mid_epoch:
        progress = record.contents["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        note(f"{last.name} was saved in the middle of epoch {record.epoch + 1} (after batch "
             f"{progress['current']['completed']}): the rest of that epoch draws other batches than an uninterrupted "
             "fit would, so the weights end close to its, not equal; a resume from an epoch's end (the last.ckpt "
             "written after every epoch) is exact")


RESUMABLE = ("ckpt_path", "config", "trainer.max_epochs", "trainer.logger.init_args.version",  # may differ
             "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.callbacks",  # observers
             *(f"model.init_args.{key}" for key in (*LINKED, "class_names")))  # linked from the data, compared there


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


COUNTS_OR_FRACTIONS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches")
"""The Trainer's options that take a number of batches (a whole number) or a fraction (a float up to 1.0)."""


class RunConfig(SaveConfigCallback):
    """LightningCLI's config.yaml, written so that it re-runs the job from the start.

    It is written without ``ckpt_path`` (a saved ``ckpt_path: last.ckpt`` made the advertised re-run
    train 0 epochs) and without the ``version_N`` zoo claimed for the run (the re-run claims its own instead
    of writing into this run's folder), and a resumed fit, whose options are the run's own (zoo checks),
    leaves it as it is.
    """

    claimed: str | None = None  # the version zoo chose for the fit, set by ZooCLI; a version the user gave stays
    config_path: Path | None = None  # the run's config.yaml, found in setup (zoo's own name, not Lightning's)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        resuming = self.config.get("ckpt_path") is not None
        self.config = self.config.clone()
        self.config.ckpt_path = None
        args = getattr(self.config.trainer.get("logger"), "init_args", None)
        if self.claimed is not None and args is not None and args.get("version") == self.claimed:
            args.version = None
        # trainer.log_dir is a collective under DDP: read here, where every process is, for save_config (rank 0)
        self.config_path = Path(trainer.log_dir or ".") / self.config_filename
        if resuming and self.config_path.is_file():
            self.already_saved = True  # resuming in the run's folder: its config stays the one that started it
            return
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """After the file is written: a limit the Trainer took as one batch (``--trainer.limit_train_batches 1``,
        :func:`zoo.options.batch_counts`) is written ``1``, not jsonargparse's ``1.0``, which re-reads as every
        batch."""
        ones = [key for key in COUNTS_OR_FRACTIONS if type(getattr(trainer, key, None)) is int and
                getattr(trainer, key) == 1]
        if ones and self.config_path is not None and self.config_path.is_file():
            text = self.config_path.read_text()
            for key in ones:
                text = re.sub(rf"^(\s+{key}): 1\.0$", r"\1: 1", text, flags=re.M)
            with atomic_path(self.config_path) as temporary:
                temporary.write_text(text)


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


class RunLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed fit appends to its run's metrics.csv instead of deleting it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:  # CSVLogger's own private fields, as its experiment property uses them
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:  # private ExperimentWriter hook: tests/test_lightning_contract.py
        if self._fs.isfile(self.metrics_file_path):  # keep the rows; new ones follow under the same header
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])




@contextlib.contextmanager
def run_failures(subcommand: str) -> Iterator[None]:
    """A run that ends early as one line that says what it left and how to go on: its run folder deleted under it,
    SIGTERM (Lightning ends its loops with a SystemExit of code 0: not a finished run), another process of a
    distributed run gone."""
    try:
        yield
    except FileNotFoundError:
        gone = [folder for folder in held() if not folder.is_dir()]
        if not gone:
            raise
        raise TrainingError(f"the run folder {gone[0]} was deleted while the fit was writing into it; nothing of "
                            "this run is left to resume: start the fit again") from None
    except SIGTERMException:
        raise StoppedError(stopped_message(subcommand, held())) from None
    except RuntimeError as exc:
        if not peer_lost(exc):
            raise
        where = "; ".join(f"its checkpoints are in {folder}" for folder in held()) or "its checkpoints are where " \
            "global rank 0 runs"
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip().splitlines()[0])  # without Gloo's source path
        raise TrainingError(f"another process of this run stopped (the link to it failed: "
                            f"{reason.split('. ')[0][:160]}); {where}: once every machine is back, "
                            "run the same command on each with --ckpt_path last to resume") from None


def peer_lost(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another process of a distributed run went away."""
    return bool(re.search(r"Connection (closed|reset) by peer|NCCL communicator was aborted", str(exc)))


def stopped_message(subcommand: str, folders: list[Path]) -> str:
    """What a run stopped by SIGTERM left (its run folder's last checkpoint) and the command that resumes it."""
    if subcommand != "fit":
        return f"zoo {subcommand} was stopped by SIGTERM before it ended; nothing was scored: run it again"
    for folder in folders:
        last = folder / "checkpoints" / "last.ckpt"
        if last.is_file():
            return (f"the fit was stopped by SIGTERM before it ended; its last checkpoint is {last}: resume it with "
                    f"zoo fit --config {folder / 'config.yaml'} --ckpt_path last")
    return "the fit was stopped by SIGTERM before it wrote a checkpoint; run it again"
