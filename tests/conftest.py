import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core (pyproject's addopts): each worker, and every zoo process it starts,
    # computes on one thread. With torch's default of one thread per core in each worker, the workers' OpenMP
    # threads fight over the cores and the suite took longer than it does serially (1,872 s against 1,377 s
    # on 2 cores)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # as the zoo command sets it


@pytest.fixture(autouse=True)
def _quiet_lightning():
    logging.getLogger("lightning").setLevel(logging.WARNING)


ZOO = Path(sys.executable).with_name("zoo")  # the console script pip installed beside this Python


def run_zoo(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `zoo` command, in a subprocess, as a user runs it (the console script: the working folder is not
    on its sys.path, as it would be with python -m zoo)."""
    return subprocess.run(
        [str(ZOO), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def zoo_here(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `zoo` command run in this process (``zoo.cli.main``), for tests of what a command does rather than of
    the process it runs in (those use :func:`run_zoo`: kills, signals, resumes of a killed run, the console script):
    it spares the fresh interpreter's import of torch and Lightning.

    Returns what :func:`run_zoo` does: the exit code (``SystemExit``'s; an exception that escapes: 1, with its
    traceback in stderr, as Python would print it), stdout and stderr, Lightning's log lines included. The working
    folder, environment, random states, warning display and Lightning's log streams are as they were afterwards.
    """
    import contextlib
    import io
    import traceback
    import warnings

    from zoo.checkpoint import restore_rng_states, rng_states
    from zoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    folder, environment, states, shown = os.getcwd(), dict(os.environ), rng_states(), warnings.showwarning
    lightning = logging.getLogger("lightning")
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    streams = [(h, h.stream) for logger in loggers for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    # Lightning prints its log lines through a handler of its own only when the root logger has none at its import;
    # under pytest they go to pytest's: here they go to the command's stderr, as in a fresh process
    printer = logging.StreamHandler(err) if not streams else None
    code = 0
    try:
        os.chdir(cwd)
        # as in a fresh process, the level Lightning's __init__ files set (the autouse fixture, or a script a test
        # ran, such as benchmarks/transfer_table.quiet, changed it)
        for logger in loggers:
            logger.setLevel(logging.INFO)
        for handler, _ in streams:
            handler.setStream(err)
        if printer is not None:
            lightning.addHandler(printer)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default", UserWarning)  # shown once per place in this run, as in a fresh process
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):  # sys.exit("...") prints it, as Python does
                    print(exc.code, file=err)
            except Exception:
                traceback.print_exc(file=err)
                code = 1
    finally:
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(environment)
        restore_rng_states(states)
        warnings.showwarning = shown
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if printer is not None:
            lightning.removeHandler(printer)
        for handler, stream in streams:
            handler.setStream(stream)
    return subprocess.CompletedProcess(["zoo", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def digits_lenet5(tmp_path_factory) -> Path:
    """One short LeNet-5 fit on digits by `zoo fit` (2 epochs, in this process), shared by the tests of every file
    that read a trained checkpoint (export, predict, cam, edited checkpoints); its best.ckpt. Read it, never write
    beside it: copy it first."""
    folder = tmp_path_factory.mktemp("digits_lenet5")
    result = zoo_here("fit", "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "runs" / "lenet5-digits" / "version_0" / "checkpoints" / "best.ckpt"


def _offline(*args, **kwargs):
    raise OSError("no network")


@pytest.fixture
def imagenet_resnet18(tmp_path, monkeypatch):
    """torchvision's resnet18 weights file, in the cache where torchvision:IMAGENET1K_V1 reads it.

    A seeded random torchvision resnet18 stands in for the download: the same file name, format and keys.
    """
    import torch
    import torchvision.models as tvm

    torch.manual_seed(0)
    reference = tvm.resnet18().eval()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / Path(tvm.ResNet18_Weights.IMAGENET1K_V1.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    return reference
