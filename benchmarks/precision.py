"""bf16 on the CPU: ``zoo fit --trainer.precision bf16-mixed`` against ``32-true``, in one process, for the speed
record's net, ResNet-20 and LeNet-5.

Speed: each round fits each workload at both precisions in turn (the order alternating from round to round), a
few epochs of a fixed number of training batches, the first epoch a warm-up; the figure is the median of the
epochs' training images/s (zoo's whole step: autocast, the metrics, the progress bar), and the ratio bf16/fp32 is
of those medians. Accuracy (``--accuracy``): one whole fit of each workload's recipe at each precision, seed 0,
tested on the test set as ``zoo fit`` tests it.

- ``record``: ``zoo fit --config fashion_mnist_fast`` (airbench's net, batch 512, channels_last, flip-shift TTA);
  its accuracy fit is the record itself, 16 epochs on all 60,000 images.
- ``resnet20``: ResNet-20 on Fashion-MNIST, batch 128, SGD; accuracy after 3 epochs.
- ``lenet5``: LeNet-5 on the digits at 32x32, batch 64, Adam; accuracy after 20 epochs.

A CPU with AMX (Intel Sapphire Rapids and later) runs bf16 matrix products in hardware; ``lscpu`` says which CPU
measured (printed first).

    python benchmarks/precision.py                      # speed, 4 rounds
    python benchmarks/precision.py --accuracy           # and the accuracy each precision reaches
"""

import argparse
import contextlib
import io
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import torch

import zoo
from zoo.bench.measure import EpochClock

PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class Workload:
    model: str | None
    data: str | None
    config: str | None  # a shipped config's name, or None
    options: dict = field(default_factory=dict)  # the recipe
    steps: int = 20  # training batches per epoch, for the speed
    accuracy_epochs: int = 0  # 0: the recipe's own


WORKLOADS = {
    "record": Workload(None, None, "fashion_mnist_fast", {}, steps=12),
    "resnet20": Workload("resnet20", "fashion_mnist", None, {
        "data.augment": "none", "data.batch_size": 128, "model.optimizer": "SGD", "model.optimizer.lr": 0.05,
        "model.optimizer.momentum": 0.9}, steps=25, accuracy_epochs=3),
    "lenet5": Workload("lenet5", "digits", None, {"data.image_size": 32, "data.augment": "none", "data.batch_size": 64},
                       steps=20, accuracy_epochs=20),
}


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
        flags = next((line for line in out.splitlines() if line.startswith("Flags")), "")
        extras = [f for f in ("amx_bf16", "avx512_bf16") if f in flags.split()]
        return f"{name} ({', '.join(extras) or 'no bf16 instructions'}), {torch.get_num_threads()} threads"
    except (OSError, StopIteration, subprocess.TimeoutExpired):
        return platform.processor() or "unknown CPU"


def fit(w: Workload, precision: str, root: str, options: dict) -> zoo.train.FitResult:
    options = {**w.options, **options, "trainer.precision": precision, "trainer.logger.init_args.save_dir": root,
               "trainer.enable_model_summary": False}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return zoo.fit(w.model, w.data, options, config=w.config)


def speed(name: str, rounds: int, epochs: int) -> dict[str, float]:
    w = WORKLOADS[name]
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for r in range(rounds):
        for precision in PRECISIONS[r % 2:] + PRECISIONS[:r % 2]:
            with tempfile.TemporaryDirectory() as root:
                result = fit(w, precision, root, {
                    "trainer.max_epochs": epochs, "trainer.limit_train_batches": w.steps,
                    "trainer.limit_val_batches": 2, "trainer.limit_test_batches": 2,  # (1 reads as 1.0: all)
                    "trainer.callbacks+": "zoo.bench.measure.EpochClock"})
            clock = next(c for c in result.trainer.callbacks if isinstance(c, EpochClock))
            rates[precision] += [e["images"] / e["train_s"] for e in clock.epochs[1:]]
        print(f"{name} round {r + 1}: " + ", ".join(f"{p} {statistics.median(v):,.0f} img/s" for p, v in rates.items()),
              file=sys.stderr, flush=True)
    return {p: statistics.median(v) for p, v in rates.items()}


def accuracy(name: str) -> dict[str, float]:
    w = WORKLOADS[name]
    found = {}
    for precision in PRECISIONS:
        options = {"trainer.max_epochs": w.accuracy_epochs} if w.accuracy_epochs else {}
        with tempfile.TemporaryDirectory() as root:
            found[precision] = fit(w, precision, root, options).test_top1
        print(f"{name} {precision}: test top-1 {found[precision]:.2f} %", file=sys.stderr, flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="record,resnet20,lenet5",
                        help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=4, help="rounds of the two precisions (default: 4)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs a round, the first a warm-up (default: 4)")
    parser.add_argument("--accuracy", action="store_true", help="also fit each recipe whole at both precisions")
    parser.add_argument("--json", help="write the figures to this JSON file too")
    args = parser.parse_args()
    names = args.workloads.split(",")
    print(f"CPU: {cpu()}; torch {torch.__version__}", flush=True)
    speeds = {name: speed(name, args.rounds, args.epochs) for name in names}
    accuracies = {name: accuracy(name) for name in names} if args.accuracy else {}
    print(f"\n{'workload':<10} {'fp32 img/s':>11} {'bf16 img/s':>11} {'bf16/fp32':>10}"
          + (f" {'fp32 top-1':>11} {'bf16 top-1':>11}" if accuracies else ""))
    for name in names:
        s = speeds[name]
        line = f"{name:<10} {s['32-true']:>11,.0f} {s['bf16-mixed']:>11,.0f} {s['bf16-mixed'] / s['32-true']:>10.3f}"
        if accuracies:
            line += f" {accuracies[name]['32-true']:>10.2f}% {accuracies[name]['bf16-mixed']:>10.2f}%"
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu(), "torch": torch.__version__, "speed": speeds, "accuracy": accuracies}, f, indent=1)


if __name__ == "__main__":
    main()
