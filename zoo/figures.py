"""Pictures as zoo draws them with matplotlib: off-screen, text as written, a size a person can look at, saved whole.

Every zoo picture (CAM grids, ``zoo data show``, the leaderboard's plots, search and schedule plots) is made inside
:func:`drawing`, so that a class, file, model or suite name holding ``$`` (``cost_$5^$.png``) is drawn as written:
matplotlib's default reads the text between two dollar signs as math, and a name that is not valid math ended the
command in a traceback.
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
    """`function`, which draws with ``matplotlib.pyplot``, run on the off-screen Agg backend with the math parsing
    of text off (``$`` drawn as written) for the call."""

    @functools.wraps(function)
    def draw(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with plt.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return draw


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
