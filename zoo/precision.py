"""bfloat16 where the CPU multiplies it in hardware, float32 elsewhere: one config that is fast on every CPU.

``bf16-mixed`` pays on a CPU only where the matrix units take bfloat16 (Intel AMX, from Sapphire Rapids on):
there it doubled the speed record's images/s at the same accuracy, while small nets (LeNet-5) ran 5 % slower
(docs/scale.md has the figures). A config meant for CPUs names :class:`BF16WhereNative` as its Trainer plugin
instead of a fixed ``precision``, as zoo's speed record does; ``--trainer.precision`` on the command line
still wins (zoo drops the plugin then).
"""

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.precision import MixedPrecision
from torch.nn import Module
from torch.optim import Optimizer

from zoo.log import note


@cache
def cpu_multiplies_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bfloat16 matrix units: ``amx_bf16`` among the flags Linux lists in `cpuinfo`.

    AVX-512 BF16 alone (AMD EPYC Zen 4) is not counted: bf16 was not measured to pay there.
    """
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:  # not Linux: no flags to read, no claim
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in lines)


class BF16WhereNative(MixedPrecision):
    """Lightning's ``bf16-mixed`` on a CPU with bfloat16 matrix units (:func:`cpu_multiplies_bf16`), ``32-true``
    elsewhere; the choice is logged. For training on the CPU: autocast is the CPU's, so on a GPU it is float32.

    In a config: ``trainer: {plugins: [{class_path: zoo.precision.BF16WhereNative}]}``.
    """

    def __init__(self) -> None:
        super().__init__("bf16-mixed", "cpu")
        if not cpu_multiplies_bf16():
            self.precision = "32-true"  # type: ignore[assignment]  # what Trainer.precision reports
        self.announced = False  # zoo's own attribute: the choice is logged once, at the first connect

    def connect(self, model: Module, optimizers: list[Optimizer], lr_schedulers: list[Any]
                ) -> tuple[Module, list[Optimizer], list[Any]]:
        """Lightning's hook as the Trainer starts its work: where the choice is logged, once. A model that is not
        on the CPU trains in float32: the plugin's autocast is the CPU's."""
        if not self.announced:
            self.announced = True
            parameter = next(model.parameters(), None)
            device = "cpu" if parameter is None else parameter.device.type
            if device != "cpu" and self.precision == "bf16-mixed":
                self.precision = "32-true"  # type: ignore[assignment]
                note(f"32-true: BF16WhereNative chooses for the CPU, and the model is on {device}; give "
                     f"--trainer.precision (bf16-mixed, 16-mixed) for that device")
            else:
                note("bf16-mixed: this CPU multiplies bfloat16 in hardware (AMX); --trainer.precision 32-true "
                     "keeps float32" if self.precision == "bf16-mixed" else
                     "32-true: this CPU has no bfloat16 matrix units (AMX), where bf16-mixed would pay")
        return super().connect(model, optimizers, lr_schedulers)

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        if self.precision == "32-true":
            yield
        else:
            with self.autocast_context_manager():
                yield


__all__ = ["BF16WhereNative", "cpu_multiplies_bf16"]
