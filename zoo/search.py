"""Hyperparameter search as the classic CNN course teaches it: a grid, random draws, or both; coarse first, then finer.

``zoo search --config base.yaml --grid model.optimizer.lr=0.1,0.03,0.01
--random model.weight_decay=loguniform:1e-5:1e-2 --trials 4`` fits every grid point ``trials``
times with fresh random draws, each fit in its own log folder, and keeps a table sorted by the
best validation accuracy (``results.csv``) and a plot of accuracy against each searched value
(``search.png``). Written here rather than with Optuna: grid x random needs about as many lines
as Optuna's configuration would, and every trial stays a plain ``zoo fit`` with its own config.yaml.
"""

import contextlib
import itertools
import math
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import InputError, StoppedError, ZooError
from zoo.figures import as_written, drawing, save_figure
from zoo.log import dropped
from zoo.results import append_rows, read_rows

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


@dataclass(frozen=True)
class Draw:
    """A random search dimension: ``uniform:a:b``, ``loguniform:a:b``, ``int:a:b`` or ``choice:x,y,z``."""

    key: str
    kind: str
    args: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "uniform":
            return float(rng.uniform(*self.args))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.args[0]), math.log(self.args[1]))))
        if self.kind == "int":
            return int(rng.integers(self.args[0], self.args[1] + 1))
        return self.args[int(rng.integers(len(self.args)))]


def _number(text: str) -> Any:
    """A command-line or CSV value: an int or float where it reads as one (1e-5 too), else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _split_values(text: str) -> list[str]:
    """``0.1,0.01`` -> two values; the commas inside brackets are a list's: ``[256],[512,256]`` is two lists."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    return [*values, text[start:]]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["model.optimizer.lr=0.1,0.01"]`` -> ``{"model.optimizer.lr": [0.1, 0.01]}``; a list value is
    written in brackets: ``model.hidden=[256],[512,256]``."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise InputError(f"--grid takes KEY=V1,V2,... (e.g. model.optimizer.lr=0.1,0.01), got {item!r}")
        grid[key] = [_number(v) for v in _split_values(values)]
    return grid


def parse_random(items: list[str]) -> list[Draw]:
    """``["model.weight_decay=loguniform:1e-5:1e-2"]`` -> the dimensions to draw."""
    draws = []
    for item in items:
        key, sep, spec = item.partition("=")
        kind, _, rest = spec.partition(":")
        example = "e.g. model.weight_decay=loguniform:1e-5:1e-2"
        if not sep or kind not in DISTRIBUTIONS or not rest:
            raise InputError(f"--random takes KEY=DIST:ARGS with DIST one of {', '.join(DISTRIBUTIONS)} ({example}), "
                             f"got {item!r}")
        if kind == "choice":
            draws.append(Draw(key, kind, tuple(_number(v) for v in rest.split(","))))
            continue
        bounds = [_number(v) for v in rest.split(":")]
        if len(bounds) != 2 or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in bounds) \
                or bounds[0] >= bounds[1]:
            raise InputError(f"--random {kind} takes two finite numbers LOW:HIGH with LOW < HIGH ({example}), "
                             f"got {item!r}")
        if kind == "loguniform" and bounds[0] <= 0:
            raise InputError(f"--random loguniform needs positive bounds, got {item!r}")
        draws.append(Draw(key, kind, tuple(bounds)))
    return draws


def trials(grid: dict[str, list[Any]], draws: list[Draw], repeats: int, seed: int) -> list[dict[str, Any]]:
    """Every grid point, `repeats` times, each with its own random draws (in a reproducible order)."""
    rng = np.random.default_rng(seed)
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] or [{}]
    return [{**point, **{d.key: d.sample(rng) for d in draws}} for point in points for _ in range(repeats)]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    return [{k: _number(v) if v != "" else None for k, v in row.items()} for row in read_rows(path)]


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished trials by best validation accuracy (highest first), failed ones last."""
    return sorted(rows, key=lambda r: -r["val_acc"] if isinstance(r.get("val_acc"), (int, float)) else math.inf)


def run_search(base: list[str], grid: dict[str, list[Any]], draws: list[Draw], repeats: int, seed: int,
               out: Path) -> list[dict[str, Any]]:
    """Fit every trial (``zoo fit`` with `base` plus the trial's values), logging under `out`.

    Rows are appended to ``out/results.csv`` after each trial (a search interrupted keeps what it
    finished; running again into the same folder adds trials after them, for coarse-to-fine).
    """
    from zoo.train import fit

    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.csv"
    rows = _read_rows(path)
    todo = trials(grid, draws, repeats, seed + len(rows))
    for n, values in enumerate(todo):
        index = len(rows)
        shown = "  ".join(f"{k}={format_value(v)}" for k, v in values.items())
        print(f"zoo search: trial {n + 1} of {len(todo)}: {shown}", flush=True)
        overrides = [a for k, v in values.items() for a in (f"--{k}", str(v))]
        start = time.perf_counter()
        row: dict[str, Any] = {"trial": index, **values}
        try:
            result = fit(options=[*base, *overrides, "--trainer.logger.init_args.save_dir", str(out),
                                  "--trainer.logger.init_args.name", f"trial_{index:03d}"])
            row |= {"val_acc": None if result.best_val_top1 is None else round(result.best_val_top1, 3),  # in %
                    "test_acc": None if result.test_top1 is None else round(result.test_top1, 3),
                    "epochs": result.epochs, "status": "done", "run": str(result.log_dir or "")}
        except StoppedError:  # SIGTERM stops the search, not only this trial
            raise
        except ZooError as exc:  # one bad trial (a diverging learning rate) does not end the search
            row |= {"val_acc": None, "test_acc": None, "epochs": None, "status": f"failed: {exc}", "run": ""}
            print(f"zoo search: trial {index} failed: {exc}", flush=True)
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        append_rows(path, list(row), [row])
    return rows


def search(base: list[str], grid_options: list[str], random_options: list[str], per_point: int | None, seed: int,
           out: Path) -> tuple[list[str], list[list[str]], Path]:
    """``zoo search``: parse ``--grid KEY=V1,V2`` and ``--random KEY=DIST:ARGS``, fit every trial
    (:func:`run_search`; `per_point` trials a grid point, by default 1, or 8 with random draws alone), and plot them to
    ``out/search.png``. Returns the table's header and rows (best validation accuracy first) and the plot."""
    grid, draws = parse_grid(grid_options), parse_random(random_options)
    if not grid and not draws:
        raise InputError("nothing to search: give --grid KEY=V1,V2 and/or --random KEY=DIST:ARGS (see zoo search -h)")
    repeats = per_point if per_point is not None else (8 if draws and not grid else 1)
    if repeats < 1:
        raise InputError(f"--trials must be 1 or more, got {repeats}")
    rows = run_search(base, grid, draws, repeats, seed, out)
    keys = [*grid, *(d.key for d in draws)]
    body = [[str(r["trial"]), *(format_value(r.get(k)) for k in keys),
             *(f"{r[m]:.2f}" if isinstance(r.get(m), (int, float)) else "-" for m in ("val_acc", "test_acc")),
             str(r.get("status", ""))[:60]] for r in ranked(rows)]
    picture = plot(rows, keys, out / "search.png", log_scaled(grid, draws))
    return ["trial", *keys, "val acc %", "test acc %", "status"], body, picture


def format_value(value: Any) -> str:
    """A searched value as the table shows it (floats to 4 significant digits)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@drawing
def plot(rows: list[dict[str, Any]], keys: list[str], path: Path, log_keys: set[str]) -> Path:
    """Validation accuracy against each searched value, one panel per value."""
    import matplotlib.pyplot as plt

    done = [r for r in rows if isinstance(r.get("val_acc"), (int, float))]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = [r.get(key) for r in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        x = values if numeric else [as_written(str(v)) for v in values]
        ax.scatter(x, [r["val_acc"] for r in done], alpha=0.8)
        if numeric and key in log_keys:
            ax.set_xscale("log")
        ax.set_xlabel(as_written(key))
        ax.set_ylabel("best validation accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"zoo search: {len(done)} trials")
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def log_scaled(grid: dict[str, list[Any]], draws: list[Draw]) -> set[str]:
    """The searched values best plotted on a log axis: log-uniform draws and positive grids spanning 10x or more."""
    keys = {d.key for d in draws if d.kind == "loguniform"}
    for key, values in grid.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(values) and min(numbers) > 0 and max(numbers) >= 10 * min(numbers):
            keys.add(key)
    return keys


@dataclass(frozen=True)
class Fold:
    """One fold of a cross-validation: best validation accuracy (on the held-out fold) and test accuracy, both in
    percent (as zoo prints them and as cv's results.csv holds them), and the best checkpoint."""

    fold: int
    val_top1: float
    test_top1: float
    checkpoint: str


FOLD_COLUMNS = tuple(f.name for f in fields(Fold))


def cross_validate(base: list[str], folds: int, folder: Path | None = None) -> list[Fold]:
    """k-fold cross-validation: ``zoo fit`` with `base` once per fold, each fold of the training images held out once.

    The test split stays untouched; the fits log under ``folder/<model>-<data>/fold<k>`` (by default
    ``runs/cv/<date-time>``, apart from the normal runs), and each finished fold is appended to
    ``folder/results.csv``.
    """
    from zoo.train import fit

    folder = folder or Path("runs") / "cv" / datetime.now().strftime("%Y%m%d-%H%M%S")

    if folds < 2:
        raise InputError(f"--folds must be 2 or more, got {folds}")
    done = []
    for fold in range(folds):
        # one numbering, the option's (0-based): the line, the folder and results.csv's fold column agree
        print(f"zoo cv: fold{fold} of fold0-fold{folds - 1} (--data.fold {fold})", flush=True)
        # the device banner and the model summary once, not once a fold (the user's own choice, given later, wins)
        again = ["--trainer.enable_model_summary", "false"] if fold else []
        with dropped("GPU available", "TPU available", "HPU available") if fold else contextlib.nullcontext():
            result = fit(options=[*again, *base, "--data.folds", str(folds), "--data.fold", str(fold),
                                  "--trainer.logger.init_args.save_dir", str(folder),
                                  "--trainer.logger.init_args.version", f"fold{fold}"])
        done.append(Fold(fold, result.best_val_top1 if result.best_val_top1 is not None else math.nan,
                         result.test_top1 if result.test_top1 is not None else math.nan, str(result.checkpoint or "")))
        append_rows(folder / "results.csv", list(FOLD_COLUMNS), [asdict(done[-1])])
    return done


def fold_rows(folds: list[Fold]) -> list[list[str]]:
    """Each fold's validation and test accuracy and checkpoint, then their mean +- std, as table rows."""
    val, test = [f.val_top1 for f in folds], [f.test_top1 for f in folds]
    rows = [[str(f.fold), f"{f.val_top1:.2f}", f"{f.test_top1:.2f}", f.checkpoint] for f in folds]
    return rows + [["mean +- std", f"{np.mean(val):.2f} +- {np.std(val, ddof=1):.2f}",
                    f"{np.mean(test):.2f} +- {np.std(test, ddof=1):.2f}", ""]]
