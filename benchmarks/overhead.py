"""Lightning overhead: zoo's training loop against a hand-written PyTorch loop, in one run.

Both train LeNet-5 on the digits (1,257 training images at 32x32, batch 64, 20 steps an epoch) with
the same initial weights, the same batches in the same order (the same DataLoader), the same
normalization and the same optimizer (Adam, lr 1e-3). The plain loop is forward, cross-entropy,
backward, step. The zoo side is what ``zoo fit`` runs: ImageClassifier under a Lightning Trainer
with the progress bar, the CSV logger, per-step loss logging, accuracy metrics and checkpoints.
Rounds alternate; each round times its training batches only (validation and checkpoint writing
fall between epochs) after one warm-up epoch, and the ratio of steady-state images/s is printed.

    python benchmarks/overhead.py              # --rounds 5 --epochs 6
"""

import argparse
import statistics
import sys
import tempfile
import time

import lightning as L
import torch
import torch.nn.functional as F

import zoo


def plain_epochs(net: torch.nn.Module, dm: zoo.data.ImageDataModule, epochs: int) -> list[float]:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    normalize = dm.batch_augment.normalize
    rates = []
    net.train()
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for x, y in dm.train_dataloader():
            loss = F.cross_entropy(net(normalize(x)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += len(y)
        rates.append(n / (time.perf_counter() - start))
    return rates


class EpochTimer(L.Callback):
    """Images/s of each epoch's training batches (from the epoch's start to its last batch's end)."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start, self.n = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.n += len(batch[1])
        if batch_idx == trainer.num_training_batches - 1:
            self.rates.append(self.n / (time.perf_counter() - self.start))


def zoo_epochs(model: zoo.ImageClassifier, dm: zoo.data.ImageDataModule, epochs: int, root: str) -> list[float]:
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, default_root_dir=root, logger=L.pytorch.loggers.CSVLogger(root),
                        log_every_n_steps=10, callbacks=[timer], enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, dm)
    return timer.rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per round; the first is a warm-up")
    args = parser.parse_args()

    plain, ours = [], []
    for round_ in range(args.rounds):
        torch.manual_seed(round_)
        model = zoo.create("lenet5", num_classes=10, in_chans=1, image_size=32)
        net = zoo.create_model("lenet5", num_classes=10, in_chans=1, image_size=32)
        net.load_state_dict(model.net.state_dict())
        dm = zoo.data.create("digits", image_size=32, augment="none", batch_size=64)
        dm.setup("fit")
        L.seed_everything(round_, verbose=False)
        plain += plain_epochs(net, dm, args.epochs)[1:]
        L.seed_everything(round_, verbose=False)
        with tempfile.TemporaryDirectory() as root:
            ours += zoo_epochs(model, dm, args.epochs, root)[1:]
        print(f"round {round_ + 1}: plain {statistics.median(plain):,.0f} img/s, "
              f"zoo {statistics.median(ours):,.0f} img/s", file=sys.stderr)
    p, z = statistics.median(plain), statistics.median(ours)
    print(f"plain PyTorch loop: {p:,.0f} img/s (median of {len(plain)} epochs)")
    print(f"zoo (Lightning):    {z:,.0f} img/s (median of {len(ours)} epochs)")
    print(f"ratio zoo/plain: {z / p:.3f}   (goal >= 0.97)")


if __name__ == "__main__":
    main()
