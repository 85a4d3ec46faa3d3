"""channels-last against the default memory layout on the CPU, for each family of zoo's Fashion-MNIST board.

zoo trains channels-last by default on a machine without a GPU (``ImageClassifier(channels_last=None)``); this
measures why. For each net, in its board form (benchmarks/results/fashion_mnist), in one process:

- training: ``zoo.fit`` on Fashion-MNIST, batch 128, with ``--model.channels_last false`` and ``true`` in turn (the
  order alternating from round to round), a few epochs of a fixed number of batches, the first a warm-up; the
  figure is the median of the epochs' training images/s (zoo's whole step);
- inference: the trained module's forward pass (no test-time augmentation) on 256 test images under
  ``torch.inference_mode``, the median of the rounds' best of 3 passes.

With ``--raw``, other nets too, each a ``NAME@SIZExBATCH`` (e.g. ``resnet18@224x16``; plugin nets included), as a
raw step outside Lightning (forward, cross-entropy, backward, SGD) and a forward pass of random images, the best of
3 alternating rounds.

Both layouts compute the same function (the outputs agree to 1e-5, tests/test_training.py); the ratio is
channels-last / default. ``lscpu``'s CPU is printed first: compare figures of one run only.

    python benchmarks/layout.py                             # every family, 3 rounds
    python benchmarks/layout.py --models googlenet_s --rounds 5 --json layout.json
    python benchmarks/layout.py --models "" --raw resnet18@64x32,resnet18@224x16
"""

import argparse
import contextlib
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

sys.path.insert(0, str(Path(__file__).parent))
from precision import cpu  # noqa: E402  (the sibling script's lscpu line)

MODELS = {  # the board's forms (zoo/bench/suites/fashion_mnist.yaml): LeNet-5 at 32x32
    "lenet5": {"data.image_size": 32, "model.activation": "relu", "model.pool": "max"},
    "alexnet_s": {}, "vgg16_bn_s": {}, "googlenet_s": {}, "resnet20": {}, "densenet_bc40_s": {},
}
LAYOUTS = (False, True)
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
    train: dict[bool, list[float]] = {layout: [] for layout in LAYOUTS}
    infer: dict[bool, list[float]] = {layout: [] for layout in LAYOUTS}
    for r in range(rounds):
        for layout in LAYOUTS[r % 2:] + LAYOUTS[:r % 2]:
            with tempfile.TemporaryDirectory() as root:
                rates, result = fit(model, layout, steps, epochs, root)
            train[layout] += rates
            data = result.datamodule
            batches = iter(data.test_dataloader())  # the test images as the module sees them (normalized)
            images = torch.cat([data.on_after_batch_transfer(next(batches), 0)[0] for _ in range(2)])
            infer[layout].append(inference(result.model, images))
        print(f"{model} round {r + 1}: training " + ", ".join(
            f"{'channels-last' if k else 'default'} {statistics.median(v):,.0f}" for k, v in train.items())
            + " img/s", file=sys.stderr, flush=True)
    return {"train": {("channels_last" if k else "default"): statistics.median(v) for k, v in train.items()},
            "infer": {("channels_last" if k else "default"): statistics.median(v) for k, v in infer.items()}}


def raw(spec: str, rounds: int = 3) -> dict[str, dict[str, float]]:
    """`spec` ``NAME@SIZExBATCH``: the best images/s of a raw training step and of a forward pass, in each layout."""
    name, _, shape = spec.partition("@")
    size, _, batch = shape.partition("x")
    found = {kind: dict.fromkeys(("default", "channels_last"), 0.0) for kind in ("train", "infer")}
    for r in range(rounds):
        for layout in LAYOUTS[r % 2:] + LAYOUTS[:r % 2]:
            torch.manual_seed(0)
            module = zoo.create(name, num_classes=10, in_chans=3, image_size=int(size), channels_last=layout)
            x, y = torch.randn(int(batch), 3, int(size), int(size)), torch.randint(0, 10, (int(batch),))
            optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
            key = "channels_last" if layout else "default"
            for i in range(5):  # 2 warm-up steps, then 3 timed
                if i == 2:
                    start = time.perf_counter()
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(module(x), y).backward()
                optimizer.step()
            found["train"][key] = max(found["train"][key], 3 * len(x) / (time.perf_counter() - start))
            found["infer"][key] = max(found["infer"][key], inference(module, x))
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
    parser.add_argument("--json", help="write the figures to this JSON file too")
    args = parser.parse_args()
    print(f"CPU: {cpu()}; torch {torch.__version__}", flush=True)
    found = {m: measure(m, args.rounds, args.steps, args.epochs) for m in args.models.split(",") if m}
    found |= {spec: raw(spec) for spec in args.raw.split(",") if spec}
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
