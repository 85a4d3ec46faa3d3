"""Transfer on real data: pretrain on digits 0-4, then learn digits 5-9 from 10 training images per class.

Compares (a) training from scratch, (b) a linear probe on the pretrained features, (c) fine-tuning the
whole net, as mean +- std of the test accuracy (the 5-9 images of the fixed digits test split) over seeds.
Each method gets the same data, epochs and optimizer; only the starting weights and what trains differ.

    python benchmarks/transfer_digits.py --model resnet20 --seeds 0 1 2
"""

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch

import zoo
from zoo.finetune import Finetune

METHODS = {
    "scratch": None,
    "linear probe": Finetune("linear_probe"),
    "fine-tune": Finetune("full", backbone_lr_ratio=1.0),
}


def fit(model: zoo.ImageClassifier, data: L.LightningDataModule, epochs: int, folder: Path,
        callbacks: list[L.Callback]) -> float:
    """Train, keep the best validation checkpoint, and return its test accuracy."""
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(folder, monitor="val_acc", mode="max")
    trainer = L.Trainer(max_epochs=epochs, callbacks=[checkpoint, *callbacks], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, data)
    return trainer.test(model, data, ckpt_path="best", verbose=False)[0]["test_acc"]


def pretrain(model: str, epochs: int, folder: Path) -> Path:
    """The source task: digits 0-4 (all their training images)."""
    L.seed_everything(0, verbose=False)
    data = zoo.data.create("digits", classes=[0, 1, 2, 3, 4])
    net = zoo.create(model, num_classes=5, in_chans=1, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    acc = fit(net, data, epochs, folder, [])
    print(f"pretrained {model} on digits 0-4: test accuracy {100 * acc:.2f}%")
    return next(folder.glob("*.ckpt"))


def transfer(model: str, source: Path, method: str, seed: int, per_class: int, epochs: int, lr: float,
             folder: Path) -> float:
    """The target task: digits 5-9 from `per_class` training images each."""
    L.seed_everything(seed, verbose=False)
    data = zoo.data.create("digits", classes=[5, 6, 7, 8, 9], train_per_class=per_class, batch_size=10)
    weights = None if METHODS[method] is None else str(source)
    net = zoo.create(model, num_classes=5, in_chans=1, weights=weights, reset_head=True,
                     optimizer=lambda p: torch.optim.Adam(p, lr=lr))
    callbacks = [] if METHODS[method] is None else [METHODS[method]]
    return fit(net, data, epochs, folder, callbacks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = pretrain(args.model, args.pretrain_epochs, Path(tmp, "source"))
        print(f"\n| method | test accuracy on 5-9, {args.per_class} images per class (mean +- std, "
              f"{len(args.seeds)} seeds) | per seed |\n|---|---|---|")
        for method in METHODS:
            accs = [100 * transfer(args.model, source, method, s, args.per_class, args.epochs, args.lr,
                                   Path(tmp, f"{method}-{s}")) for s in args.seeds]
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"| {method} | {statistics.mean(accs):.2f} +- {spread:.2f} % | "
                  f"{', '.join(f'{a:.2f}' for a in accs)} |")
    print(f"\n{time.perf_counter() - start:.0f} s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
