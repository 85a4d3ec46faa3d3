"""What ImageClassifier's own code adds to a plain PyTorch training step, without Lightning: LeNet-5 on
scikit-learn's digits (32x32, batch 64, Adam), one addition at a time, timed in turn in one process.

benchmarks/overhead.py times zoo's whole step against a bare Lightning one (and, with --parts, what each of zoo's
callbacks, logger and progress bar costs); this script splits the module's part of the difference:

- ``plain``: the net's forward, cross-entropy, zero_grad, backward, Adam over one parameter group;
- ``optimizer groups``: the optimizer ImageClassifier.configure_optimizers makes (weights apart from biases and
  norms, which do not decay: two groups);
- ``forward``: ImageClassifier's forward (memory format, compiled net) in place of the net's;
- ``criterion``: the module's loss (its criterion: cross-entropy with label smoothing 0);
- ``training sums``: the epoch's loss and top-1/top-5 hits kept on the device (ImageClassifier._add_training_sums);
- ``zoo``: all of them.

Each figure is the median step time of the rounds (the first a warm-up), the order rotated from round to round;
the differences are against ``plain``.

    python benchmarks/step_parts.py [--rounds 7] [--steps 200]
"""

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import zoo

PARTS = ("plain", "optimizer groups", "forward", "criterion", "training sums", "zoo")


def step_time(part: str, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int) -> float:
    """Microseconds a step of `part`, over `steps` steps of a fresh LeNet-5 (seeded: every part starts alike)."""
    torch.manual_seed(0)
    module = zoo.create("lenet5", num_classes=10, in_chans=1, image_size=32, channels_last=False)  # one layout
    every = part == "zoo"
    if every or part == "optimizer groups":
        optimizer = module.configure_optimizers()
    else:
        optimizer = torch.optim.Adam(module.net.parameters())  # the module's default: Adam, lr 1e-3
    forward = module if every or part == "forward" else module.net
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        scores = forward(x)
        loss = module.loss(scores, y) if every or part == "criterion" else F.cross_entropy(scores, y)
        if every or part == "training sums":
            module._add_training_sums(scores.detach(), y, loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of every part (default: 7, the first a warm-up)")
    parser.add_argument("--steps", type=int, default=200, help="steps a part a round (default: 200)")
    args = parser.parse_args()
    data = zoo.data.create("digits", image_size=32, augment="none", batch_size=64)
    data.setup("fit")
    loader = iter(data.train_dataloader())
    batches = [data.on_after_batch_transfer(next(loader), 0) for _ in range(20)]  # on the device, normalized
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    for r in range(args.rounds):
        for part in PARTS[r % len(PARTS):] + PARTS[: r % len(PARTS)]:
            times[part].append(step_time(part, batches, args.steps))
    print(f"LeNet-5, digits 32x32, batch 64, Adam; {platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; median of {args.rounds - 1} rounds of {args.steps} steps")
    plain = statistics.median(times["plain"][1:])
    for part in PARTS:
        median = statistics.median(times[part][1:])
        print(f"  {part:18s} {median:7.0f} us a step  {median - plain:+5.0f} us  ({100 * (median / plain - 1):+.1f} %)")


if __name__ == "__main__":
    main()
