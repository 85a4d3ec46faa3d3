"""zoo's notes to its user ("loaded zoo:fashion_mnist", "normalizing as the weights expect", "resuming ..."):
logged, not printed, so that a program decides.

The library logs them on the ``zoo`` logger at INFO, from global rank zero only; Python shows none of them unless
the program configures logging (``logging.basicConfig(level=logging.INFO)``). The ``zoo`` command shows them on
stderr as ``zoo: ...`` lines while it runs (:func:`shown`). Light: no torch or Lightning at import.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

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
