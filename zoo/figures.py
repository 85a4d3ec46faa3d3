"""Pictures as zoo draws them with matplotlib: off-screen, names as written, a size a person can look at, saved whole.

Every name zoo draws (a class, file, model, suite or option name) passes through :func:`as_written`: matplotlib
reads the text between two dollar signs as math, and a name such as ``cost_$5^$.png`` that is not valid math ended
the command in a traceback. (Turning math off for the whole figure would break the log axes' tick labels, which
are math.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from zoo.atomic import atomic_path
from zoo.errors import InputError, check_count

P = ParamSpec("P")
R = TypeVar("R")

MAX_GRID = 256
"""The most images one grid draws (16 x 16): more is more than a person looks at, and memory grows with each
(3,000 images made a 172-megapixel PNG with 3.5 GB)."""


def drawing(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, which draws with ``matplotlib.pyplot``, run on the off-screen Agg backend (no window, no display
    needed)."""

    @functools.wraps(function)
    def draw(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        matplotlib.use("Agg")
        return function(*args, **kwargs)

    return draw


def as_written(text: str) -> str:
    """`text` for a matplotlib title, label or annotation, drawn as written: each ``$`` escaped, so no math."""
    return str(text).replace("$", r"\$")


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write `fig` as a PNG under a temporary name, rename it to `path`, and close the figure."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def check_grid_count(n: int) -> int:
    """`n` if it is a count of images one grid can draw (1 to :data:`MAX_GRID`); else one error saying so."""
    check_count("n", n)
    if n > MAX_GRID:
        raise InputError(f"n={n} images are more than one picture shows ({MAX_GRID} at most, a 16 x 16 grid); give "
                         f"--n {MAX_GRID} or fewer")
    return n
