"""The classic CNN course's learning-rate schedules as one scheduler: ``Schedule(optimizer, shape, warmup, ...)``.

Every shape multiplies each parameter group's base learning rate ``a0`` by a factor of ``t``, the
number of epochs or batches (``interval``) since the end of an optional linear warmup
(``multistep``'s milestones count from the start of the run):

=================  =================================================================
``constant``       ``a0``
``step``           ``a0 * gamma ** (t // step_size)``
``multistep``      ``a0 * gamma ** (number of milestones <= t)``
``exponential``    ``a0 * exp(-k t)``
``inverse_time``   ``a0 / (1 + k t)`` (the classic 1/t decay)
``inverse_sqrt``   ``a0 / sqrt(1 + k t)``
``cosine``         ``a0 * (final + (1 - final) * (1 + cos(pi t / T)) / 2)``
``linear``         ``a0 * (1 - (1 - final) * t / T)``
``one_cycle``      up from ``a0 / 25`` to ``a0`` over the warmup (default: 30 % of the run), then
                   cosine down to ``a0 / 25 / 1e4`` (the defaults of :class:`torch.optim.lr_scheduler.OneCycleLR`)
=================  =================================================================

``T`` is the length after warmup: ``total - warmup``. Inside :class:`zoo.ImageClassifier`,
``total`` defaults to the trainer's ``max_epochs`` (or to its number of optimizer steps with
``interval="step"``), so ``--model.lr_scheduler zoo.schedules.Schedule --model.lr_scheduler.shape cosine``
is all a cosine run needs.

Written here rather than chained from PyTorch's schedulers (``SequentialLR`` of ``LinearLR`` and the shape):
one scheduler with one set of arguments is what LightningCLI can set from the command line, and ``total``
is filled in from the trainer; PyTorch has no inverse-time or inverse-sqrt decay, and timm's schedulers step
with an epoch argument that Lightning's loop does not pass. The tests check each shape against PyTorch's own
scheduler where one exists.
"""

import bisect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch.optim.lr_scheduler import LRScheduler

from zoo.errors import InputError
from zoo.figures import drawing, save_figure

Shape = Literal["constant", "step", "multistep", "exponential", "inverse_time", "inverse_sqrt", "cosine", "linear",
                "one_cycle"]
SHAPES: tuple[str, ...] = Shape.__args__
NEEDS_TOTAL = ("cosine", "linear", "one_cycle")
ONE_CYCLE_START, ONE_CYCLE_END = 1 / 25, 1 / 25 / 1e4


class Schedule(LRScheduler):
    """A learning-rate schedule, stepped every epoch or every batch, with an optional linear warmup.

    Args:
        optimizer: the optimizer whose learning rates it sets.
        shape: ``constant``, ``step``, ``multistep``, ``exponential``, ``inverse_time`` (1/t),
            ``inverse_sqrt``, ``cosine``, ``linear`` or ``one_cycle``.
        warmup: epochs (or batches) of linear warmup from ``a0 / (warmup + 1)`` up to ``a0``; for
            ``one_cycle`` the length of its rise (0: 30 % of the run).
        interval: ``epoch`` or ``step`` (one optimizer step): the unit of `t`, `warmup`, `total`,
            `step_size` and `milestones`.
        total: length of the run in `interval` units; cosine, linear and one_cycle need it (zoo's
            classifier fills it in from the trainer).
        step_size: ``step``: epochs (or batches) between two multiplications by `gamma`.
        milestones: ``multistep``: the epochs (or batches) at which the rate is multiplied by `gamma`.
        gamma: ``step`` and ``multistep``: the factor at each drop.
        k: ``exponential``, ``inverse_time`` and ``inverse_sqrt``: the decay rate.
        final: ``cosine`` and ``linear``: the last rate as a fraction of ``a0``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        shape: Shape = "cosine",
        warmup: int = 0,
        interval: Literal["epoch", "step"] = "epoch",
        total: int | None = None,
        step_size: int = 30,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        k: float = 0.05,
        final: float = 0.0,
    ) -> None:
        if shape not in SHAPES:
            raise InputError(f"unknown schedule shape {shape!r}; choose one of: {', '.join(SHAPES)}")
        if interval not in ("epoch", "step"):
            raise InputError(f"interval must be 'epoch' or 'step', got {interval!r}")
        for name, value in (("warmup", warmup), ("k", k), ("gamma", gamma)):
            if value < 0:
                raise InputError(f"{name} must not be negative, got {value!r}")
        if step_size < 1:
            raise InputError(f"step_size must be 1 or more, got {step_size!r}")
        if not 0.0 <= final <= 1.0:
            raise InputError(f"final must be a fraction of the initial rate in [0, 1], got {final!r}")
        self.shape, self.warmup, self.interval, self.total = shape, warmup, interval, total
        self.step_size, self.milestones, self.gamma, self.k, self.final = step_size, sorted(milestones), gamma, k, final
        if total is not None and shape in NEEDS_TOTAL:
            self._length()  # a warmup as long as the run fails here, not epochs later
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = self.factor(self.last_epoch)
        return [base * factor for base in self.base_lrs]

    def _length(self) -> int:
        """``total - warmup``: the length of the decay, for the shapes that end somewhere."""
        if self.total is None:
            raise InputError(f"the {self.shape} schedule needs the run's length: set total= (in {self.interval}s), "
                             "or let zoo.ImageClassifier take it from the trainer")
        if self.total - self.warmup < 1:
            raise InputError(f"warmup={self.warmup} leaves nothing of total={self.total} for the {self.shape} "
                             "schedule; make the warmup shorter than the run")
        return self.total - self.warmup

    def factor(self, t: int) -> float:
        """The multiplier of the base learning rate at epoch (or batch) `t`."""
        if self.shape == "one_cycle":
            return self._one_cycle(t)
        if t < self.warmup:
            return (t + 1) / (self.warmup + 1)
        t -= self.warmup
        if self.shape == "constant" or t == 0:
            return 1.0
        if self.shape == "step":
            return self.gamma ** (t // self.step_size)
        if self.shape == "multistep":
            return self.gamma ** bisect.bisect_right(self.milestones, t + self.warmup)
        if self.shape == "exponential":
            return math.exp(-self.k * t)
        if self.shape == "inverse_time":
            return 1.0 / (1.0 + self.k * t)
        if self.shape == "inverse_sqrt":
            return 1.0 / math.sqrt(1.0 + self.k * t)
        progress = min(t / self._length(), 1.0)
        if self.shape == "cosine":
            return self.final + (1.0 - self.final) * (1.0 + math.cos(math.pi * progress)) / 2
        return 1.0 - (1.0 - self.final) * progress  # linear

    def _one_cycle(self, t: int) -> float:
        if t == 0:
            return ONE_CYCLE_START
        total = self._length() + self.warmup
        rise = self.warmup or max(1.0, 0.3 * total - 1)  # step counts as OneCycleLR's: the peak at 0.3 * total - 1
        if t <= rise:
            return ONE_CYCLE_START + (1.0 - ONE_CYCLE_START) * (1 - math.cos(math.pi * t / rise)) / 2
        progress = min((t - rise) / max(1.0, total - 1 - rise), 1.0)
        return ONE_CYCLE_END + (1.0 - ONE_CYCLE_END) * (1.0 + math.cos(math.pi * progress)) / 2


@drawing
def plot(path: str | Path, total: int = 100, warmup: int = 5, lr: float = 0.1) -> Path:
    """Draw every shape over `total` epochs (with and without `warmup`) into one PNG at `path`."""
    import matplotlib.pyplot as plt

    options = {"step": {"step_size": 30}, "multistep": {"milestones": [50, 75]}}
    fig, axes = plt.subplots(3, 3, figsize=(11, 8), sharex=True)
    for ax, shape in zip(axes.flat, SHAPES, strict=True):
        for w, style in ((0, "-"), (warmup, "--")):
            if shape == "one_cycle" and w:
                continue  # one_cycle has its own rise
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
            scheduler = Schedule(optimizer, shape, warmup=w, total=total, **options.get(shape, {}))
            rates = []
            for _ in range(total):
                rates.append(scheduler.get_last_lr()[0])
                scheduler.optimizer.step()
                scheduler.step()
            ax.plot(range(total), rates, style, label=f"warmup {w}" if w else "no warmup")
        ax.set_title(shape)
        ax.set_ylim(0, lr * 1.05)
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("learning rate")
    fig.suptitle(f"zoo.schedules.Schedule shapes (a0 = {lr}, total = {total}, k = 0.05, gamma = 0.1)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, dpi=80)
