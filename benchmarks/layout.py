"""channels-last against the default memory layout on the CPU, for each family of zoo's Fashion-MNIST board.

zoo trains channels-last by default on a machine without a GPU (``ImageClassifier(channels_last=None)``); this
measures why. For each net, in its board form (benchmarks/results/fashion_mnist), in one process:

- training: ``zoo.fit`` on Fashion-MNIST, batch 128, with ``--model.channels_last false`` and ``true`` in turn (the
  order alternating from round to round), a few epochs of a fixed number of batches, the first a warm-up; the
  figure is the median of the epochs' training images/s (zoo's whole step);
- inference: the trained module's forward pass (no test-time augmentation) on 256 test images under
  ``torch.inference_mode``, the median of the rounds' best of 3 passes.

With ``--raw``, other nets too, each a ``NAME@SIZExBATCH`` (e.g. ``resnet18@224x16``; plugin nets included): the
plain net with the same weights in each layout, a raw training step (forward, cross-entropy, backward, SGD) and a
forward pass of random images, timed in turn as ``zoo bench speed`` does (2 warm-up steps, then the median of
``--raw_steps``).

Both layouts compute the same function (the outputs agree to 1e-5, tests/test_training.py); the ratio is
channels-last / default. ``lscpu``'s CPU is printed first: compare figures of one run only.

    python benchmarks/layout.py                             # every family, 3 rounds
    python benchmarks/layout.py --models googlenet_s --rounds 5 --json layout.json
    python benchmarks/layout.py --models "" --raw resnet18@64x32,resnet18@224x16
"""

import argparse
import contextlib
import copy
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import zoo
from zoo.bench.measure import EpochClock
from zoo.bench.speed import _alternate, _step  # zoo bench speed's timed steps, taken in turn

sys.path.insert(0, str(Path(__file__).parent))
from precision import cpu  # noqa: E402  (the sibling script's lscpu line)

MODELS = {  # the board's forms (zoo/bench/suites/fashion_mnist.yaml): LeNet-5 at 32x32
    "lenet5": {"data.image_size": 32, "model.activation": "relu", "model.pool": "max"},
    "alexnet_s": {}, "vgg16_bn_s": {}, "googlenet_s": {}, "resnet20": {}, "densenet_bc40_s": {},
}
LAYOUTS = ("default", "channels_last")
RAW = ("resnet18@64x32", "resnet18@224x16", "resnet50@128x16", "densenet121@64x32", "vgg11_bn@64x32",
       "timm/vit_tiny_patch16_224@64x32", "tv/mobilenet_v3_small@64x32")


def fit(model: str, channels_last: bool, steps: int, epochs: int, root: str) -> tuple[list[float], object]:
    options = {**MODELS[model], "model.channels_last": channels_last, "data.batch_size": 128, "data.augment": "none",
               "trainer.max_epochs": epochs, "trainer.limit_train_batches": steps, "trainer.limit_val_batches": 2,
               "trainer.limit_test_batches": 2, "trainer.logger.init_args.save_dir": root,
               "trainer.enable_model_summary": False, "trainer.callbacks+": "zoo.bench.measure.EpochClock"}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = zoo.fit(model, "fashion_mnist", options)
    clock = next(c for c in result.trainer.callbacks if isinstance(c, EpochClock))
    return [e["images"] / e["train_s"] for e in clock.epochs[1:]], result


def inference(module: torch.nn.Module, images: torch.Tensor) -> float:
    module.eval()
    seconds = []
    with torch.inference_mode():
        module(images[:8])  # warm-up
        for _ in range(3):
            start = time.perf_counter()
            module(images)
            seconds.append(time.perf_counter() - start)
    return len(images) / min(seconds)


def measure(model: str, rounds: int, steps: int, epochs: int) -> dict[str, dict[str, float]]:
    train: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    infer: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for r in range(rounds):
        for layout in LAYOUTS[r % 2:] + LAYOUTS[:r % 2]:
            with tempfile.TemporaryDirectory() as root:
                rates, result = fit(model, layout == "channels_last", steps, epochs, root)
            train[layout] += rates
            data = result.datamodule
            batches = iter(data.test_dataloader())  # the test images as the module sees them (normalized)
            images = torch.cat([data.on_after_batch_transfer(next(batches), 0)[0] for _ in range(2)])
            infer[layout].append(inference(result.model, images))
        print(f"{model} round {r + 1}: training " + ", ".join(
            f"{layout} {statistics.median(v):,.0f}" for layout, v in train.items()) + " img/s", file=sys.stderr,
            flush=True)
    return {kind: {layout: statistics.median(v) for layout, v in found.items()}
            for kind, found in (("train", train), ("infer", infer))}


def raw(spec: str, steps: int) -> dict[str, dict[str, float]]:
    """`spec` ``NAME@SIZExBATCH``: images/s of a raw training step and of a forward pass of the net, the same weights
    in each layout, timed in turn as ``zoo bench speed`` times its nets (2 warm-up steps, then the median of
    `steps`)."""
    name, _, shape = spec.partition("@")
    size, batch = (int(v) for v in shape.split("x"))
    torch.manual_seed(0)
    net = zoo.create_model(name, num_classes=10, in_chans=3, image_size=size)
    nets = {"default": net, "channels_last": copy.deepcopy(net).to(memory_format=torch.channels_last)}
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    inputs = {"default": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    found = {}
    for kind in ("train", "infer"):
        timed = {layout: _step(n, inputs[layout], y, kind, contextlib.nullcontext) for layout, n in nets.items()}
        found[kind] = {layout: batch / seconds for layout, seconds in _alternate(timed, steps, 2, False).items()}
    print(f"{spec} done", file=sys.stderr, flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the two layouts (default: 3)")
    parser.add_argument("--steps", type=int, default=8, help="training batches an epoch (default: 8)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs a fit, the first a warm-up (default: 3)")
    parser.add_argument("--raw", default=",".join(RAW), help="other nets as NAME@SIZExBATCH, comma-separated, timed "
                        "as a raw step (default: %(default)s; \"\" for none)")
    parser.add_argument("--raw_steps", type=int, default=5, help="timed steps of each --raw net (default: 5)")
    parser.add_argument("--json", help="write the figures to this JSON file too")
    args = parser.parse_args()
    print(f"CPU: {cpu()}; torch {torch.__version__}", flush=True)
    found = {m: measure(m, args.rounds, args.steps, args.epochs) for m in args.models.split(",") if m}
    found |= {spec: raw(spec, args.raw_steps) for spec in args.raw.split(",") if spec}
    print(f"\n{'net':<32} {'train img/s':>12} {'channels-last':>14} {'ratio':>6} {'infer img/s':>12} "
          f"{'channels-last':>14} {'ratio':>6}")
    for model, f in found.items():
        print(f"{model:<32}" + "".join(f" {f[k]['default']:>12,.0f} {f[k]['channels_last']:>14,.0f} "
                                       f"{f[k]['channels_last'] / f[k]['default']:>6.2f}" for k in ("train", "infer")))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu(), "torch": torch.__version__, "batch_size": 128,
                                               "figures": found}, indent=1) + "\n")


if __name__ == "__main__":
    main()
