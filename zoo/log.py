"""zoo's notes to its user ("loaded zoo:fashion_mnist", "normalizing as the weights expect", "resuming ..."):
logged, not printed, so that a program decides.

The library logs them on the ``zoo`` logger at INFO, from global rank zero only; Python shows none of them unless
the program configures logging (``logging.basicConfig(level=logging.INFO)``). The ``zoo`` command shows them on
stderr as ``zoo: ...`` lines while it runs (:func:`shown`). Light: no torch or Lightning at import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("zoo")


def note(message: str) -> None:
    """Log `message` for the user (INFO on the ``zoo`` logger), from global rank zero only."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        LOGGER.info(message)


class _Holding(logging.Filter):
    def __init__(self, texts: tuple[str, ...]) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch")
"""Where Lightning logs its lines (rank_zero_info's logger, and the package's)."""


@contextlib.contextmanager
def dropped(*texts: str, loggers: tuple[str, ...] = LIGHTNING_LOGGERS) -> Iterator[None]:
    """While the context lasts, the lines of `loggers` that hold any of `texts` are not shown (for one call, never
    for the process)."""
    holding = _Holding(texts)
    for name in loggers:
        logging.getLogger(name).addFilter(holding)
    try:
        yield
    finally:
        for name in loggers:
            logging.getLogger(name).removeFilter(holding)


@contextlib.contextmanager
def shown() -> Iterator[None]:
    """While the context lasts, the ``zoo`` logger's notes print on stderr as ``zoo: ...`` lines (the command's)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("zoo: %(message)s"))
    level, propagate = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False  # a program's root handler would print each line a second time
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """While the context lasts (a ``zoo fit``), what Lightning says that a zoo user cannot act on is not shown."""
    environment = os.environ.get("JSONARGPARSE_DEPRECATION_WARNINGS")
    # Lightning still calls jsonargparse APIs that jsonargparse deprecates: not the user's to fix
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    try:
        with warnings.catch_warnings(), dropped("litlogger"):  # Lightning advertises a cloud logger on every run
            # deprecations inside Lightning's own calls of torch and jsonargparse
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            # val_split=0 (no validation, as the speed record trains) leaves an empty validation loader, on purpose
            warnings.filterwarnings("ignore", message=r"Total length of `DataLoader` across ranks is zero")
            # "first make it overfit" (--trainer.overfit_batches 1): Lightning stops the shuffling itself, and zoo's
            # epoch lines and metrics.csv report every epoch whatever the logging interval
            for message in (r"You requested to overfit but enabled train dataloader shuffling",
                            r"The number of training batches \(\d+\) is smaller than the logging"):
                warnings.filterwarnings("ignore", message=message)
            # bf16-mixed keeps float32 weights: the summary's 32-bit size, which it warns it falls back to, is right
            warnings.filterwarnings("ignore", message=r"Precision bf16-mixed is not supported by the model summary")
            yield
    finally:
        if environment is None:
            os.environ.pop("JSONARGPARSE_DEPRECATION_WARNINGS", None)


def one_line_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """Python's warning display (`show`) with zoo's own warnings as one line, ``zoo: warning: ...``; other libraries'
    warnings as Python shows them."""
    from zoo.errors import one_line

    package = Path(__file__).resolve().parent

    def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                     line: Any = None) -> None:
        if Path(filename).resolve().is_relative_to(package):
            print(f"zoo: warning: {one_line(str(message))}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning
