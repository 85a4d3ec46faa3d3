"""What Lightning and zoo add to a training step: a plain PyTorch loop, a bare Lightning Trainer, and zoo
as ``zoo fit`` runs it, timed in turn in one process, for two workloads.

- ``lenet5``: LeNet-5 on scikit-learn's digits at 32x32, batch 64, Adam (a few ms a step: overhead shows);
- ``resnet20``: ResNet-20 on real Fashion-MNIST at 28x28, batch 128, SGD with momentum (a long step).

All three read the same DataModule (uint8 batches, normalized on the device), start from the same
weights and use the same optimizer, in PyTorch's default memory layout (zoo's own default on a machine without a
GPU, channels-last, is faster there: benchmarks/layout.py). *plain* is forward, cross-entropy, backward, step.
*bare* is a LightningModule with only that in ``training_step``, under a Trainer with no logger, progress bar,
checkpoint, model summary or validation. *zoo* is ``zoo.fit``: ImageClassifier with its metrics, the
divergence check, zoo's progress bar (drawn as in a terminal, into a buffer), the CSV logger and the
checkpoints. Only training batches are timed (validation and checkpoint writing fall between
epochs); the first epoch of each round is a warm-up. The order of the three rotates from round to
round. The figures are the medians of the epochs' images/s, and the ratios are of those medians.

    python benchmarks/overhead.py                       # both workloads, 3 rounds
    python benchmarks/overhead.py --workloads lenet5 --rounds 5
    python benchmarks/overhead.py --workloads lenet5 --parts   # what each part of zoo's step costs

With ``--parts``, zoo's fit runs again with one part left out at a time (its progress bar, its CSV logger, its
checkpoint callback, and its checks: the divergence stop, the random-state record and the first-loss check,
left out in this process only), in turn with the whole of it, and each part's cost is the difference of the
median step times, in microseconds a step and as a share of the bare Lightning step.
"""

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F

import zoo
from zoo.bench.measure import EpochClock
from zoo.callbacks import ProgressBar


@dataclass(frozen=True)
class Workload:
    model: str
    data: str
    data_args: dict
    optimizer: str
    optimizer_args: dict
    steps: int  # training batches per epoch
    epochs: int  # per round, the first a warm-up


WORKLOADS = {
    "lenet5": Workload("lenet5", "digits", {"image_size": 32, "augment": "none", "batch_size": 64}, "Adam",
                       {"lr": 1e-3}, 20, 11),
    "resnet20": Workload("resnet20", "fashion_mnist", {"augment": "none", "batch_size": 128}, "SGD",
                         {"lr": 0.05, "momentum": 0.9}, 25, 3),
}


def datamodule(w: Workload) -> L.LightningDataModule:
    dm = zoo.data.create(w.data, **w.data_args)
    dm.setup("fit")
    return dm


def batches(dm: L.LightningDataModule, steps: int):
    for i, batch in enumerate(dm.train_dataloader()):
        if i == steps:
            return
        yield dm.on_after_batch_transfer(batch, 0)  # the same device-side normalization Lightning applies


def plain_epochs(w: Workload, net: torch.nn.Module, dm: L.LightningDataModule) -> list[float]:
    optimizer = getattr(torch.optim, w.optimizer)(net.parameters(), **w.optimizer_args)
    net.train()
    rates = []
    for _ in range(w.epochs):
        start, n = time.perf_counter(), 0
        for x, y in batches(dm, w.steps):
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += len(y)
        rates.append(n / (time.perf_counter() - start))
    return rates


class Bare(L.LightningModule):
    def __init__(self, net: torch.nn.Module, w: Workload) -> None:
        super().__init__()
        self.net, self.w = net, w

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return getattr(torch.optim, self.w.optimizer)(self.net.parameters(), **self.w.optimizer_args)


def bare_epochs(w: Workload, net: torch.nn.Module, dm: L.LightningDataModule) -> list[float]:
    clock = EpochClock()
    trainer = L.Trainer(max_epochs=w.epochs, limit_train_batches=w.steps, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        callbacks=[clock], accelerator="cpu")
    trainer.fit(Bare(net, w), dm)
    return [e["images"] / e["train_s"] for e in clock.epochs]


class Terminal(io.StringIO):
    """A buffer that says it is a terminal: zoo's progress bar draws into it as it would on screen."""

    def isatty(self) -> bool:
        return True


PARTS = {  # a part of zoo's step -> what leaves it out
    "progress bar": {"trainer.enable_progress_bar": False},
    "CSV logger": {"trainer.logger": False},
    "checkpoint callback": {"trainer.enable_checkpointing": False},
    "checks (divergence, random state, first loss)": "no_checks",
}


@contextlib.contextmanager
def without_checks():
    """ImageClassifier.configure_callbacks adds the checks every fit gets; here, for one fit, it adds none."""
    from zoo.classifier import ImageClassifier

    kept = ImageClassifier.configure_callbacks
    ImageClassifier.configure_callbacks = lambda self: []
    try:
        yield
    finally:
        ImageClassifier.configure_callbacks = kept


def zoo_epochs(w: Workload, root: str, leave_out: dict | str | None = None) -> list[float]:
    options = {
        "trainer.max_epochs": w.epochs, "trainer.limit_train_batches": w.steps, "trainer.limit_val_batches": 2,
        "trainer.limit_test_batches": 1, "trainer.callbacks+": "zoo.bench.measure.EpochClock",
        "trainer.logger.init_args.save_dir": root, "model.optimizer": w.optimizer,
        "trainer.enable_model_summary": False,
        "model.channels_last": False,  # the layout of plain and bare: what zoo adds, not the layout's gain
        **{f"model.optimizer.{k}": v for k, v in w.optimizer_args.items()},
        **{f"data.{k}": v for k, v in w.data_args.items()},
    }
    options |= leave_out if isinstance(leave_out, dict) else {}
    checks = without_checks() if leave_out == "no_checks" else contextlib.nullcontext()
    with contextlib.redirect_stdout(Terminal()), contextlib.redirect_stderr(io.StringIO()), checks:
        result = zoo.fit(w.model, w.data, options)
    clock = next(c for c in result.trainer.callbacks if isinstance(c, EpochClock))
    if leave_out is None:
        assert isinstance(result.trainer.progress_bar_callback, ProgressBar)  # the bar a terminal shows
    return [e["images"] / e["train_s"] for e in clock.epochs]


def parts(name: str, rounds: int) -> None:
    """zoo's fit whole and with each part left out, in turn; each part's cost a step."""
    w = WORKLOADS[name]
    rates: dict[str, list[float]] = {"bare": [], "zoo": [], **{part: [] for part in PARTS}}
    dm = datamodule(w)
    for r in range(rounds):
        for column in list(rates)[r % len(rates):] + list(rates)[:r % len(rates)]:
            L.seed_everything(r, verbose=False)
            if column == "bare":
                net = zoo.create_model(w.model, num_classes=dm.num_classes, in_chans=dm.in_chans,
                                       image_size=dm.image_size)
                rates[column] += bare_epochs(w, net, dm)[1:]
                continue
            with tempfile.TemporaryDirectory() as root:
                rates[column] += zoo_epochs(w, root, PARTS.get(column))[1:]
        print(f"{name} round {r + 1} done", file=sys.stderr, flush=True)
    batch = w.data_args["batch_size"]
    step = {k: batch / statistics.median(v) * 1e6 for k, v in rates.items()}  # microseconds a step
    print(f"\n{name}: bare Lightning {step['bare']:,.0f} us a step, zoo {step['zoo']:,.0f} us "
          f"(zoo/bare {step['bare'] / step['zoo']:.3f})")
    for part in PARTS:
        cost = step["zoo"] - step[part]
        print(f"  {part:<48} {cost:>7,.0f} us a step  ({100 * cost / step['bare']:+.1f} % of the bare step)")


def run(name: str, rounds: int) -> dict[str, float]:
    w = WORKLOADS[name]
    rates: dict[str, list[float]] = {"plain": [], "bare": [], "zoo": []}
    dm = datamodule(w)
    for r in range(rounds):
        torch.manual_seed(r)
        reference = zoo.create_model(w.model, num_classes=dm.num_classes, in_chans=dm.in_chans,
                                     image_size=dm.image_size)
        state = reference.state_dict()
        for column in list(rates)[r % 3:] + list(rates)[:r % 3]:  # each column first, second, third in turn
            L.seed_everything(r, verbose=False)
            net = zoo.create_model(w.model, num_classes=dm.num_classes, in_chans=dm.in_chans, image_size=dm.image_size)
            net.load_state_dict(state)
            if column == "plain":
                got = plain_epochs(w, net, dm)
            elif column == "bare":
                got = bare_epochs(w, net, dm)
            else:
                with tempfile.TemporaryDirectory() as root:
                    got = zoo_epochs(w, root)  # zoo fit's own weights (seed 0): the speed is the same
            rates[column] += got[1:]
        print(f"{name} round {r + 1}: " + ", ".join(f"{k} {statistics.median(v):,.0f} img/s" for k, v in rates.items()),
              file=sys.stderr, flush=True)
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="lenet5,resnet20", help="comma-separated: lenet5, resnet20")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the three (default: 6, a multiple of 3)")
    parser.add_argument("--parts", action="store_true", help="what each part of zoo's step costs, instead")
    args = parser.parse_args()
    if args.parts:
        for name in args.workloads.split(","):
            parts(name, args.rounds)
        return
    results = {name: run(name, args.rounds) for name in args.workloads.split(",")}
    print(f"\n{'workload':<10} {'plain img/s':>12} {'bare img/s':>11} {'zoo img/s':>10} {'bare/plain':>11} "
          f"{'zoo/bare':>9} {'zoo/plain':>10}")
    for name, r in results.items():
        print(f"{name:<10} {r['plain']:>12,.0f} {r['bare']:>11,.0f} {r['zoo']:>10,.0f} {r['bare'] / r['plain']:>11.3f} "
              f"{r['zoo'] / r['bare']:>9.3f} {r['zoo'] / r['plain']:>10.3f}")
    print("goals: zoo/bare >= 0.98 on lenet5; zoo/plain >= 0.97 on resnet20")


if __name__ == "__main__":
    main()
