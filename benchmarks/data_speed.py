"""The in-memory fast path against the per-sample torchvision v2 DataLoader pipeline, in one run.

Both feed the same CIFAR-sized uint8 images (32x32x3) with the same augmentation: pad-4 random crop,
horizontal flip, scaling to 0..1 and per-channel normalization. The per-sample path is what a
torchvision user writes: a Dataset applying ``v2.Compose`` image by image in DataLoader workers. The
fast path is zoo's: one tensor index per batch, then the batch transform (here on the CPU, as it would
run on the GPU after the transfer). Rounds alternate, and the ratio of images/s is printed.

    python benchmarks/data_speed.py            # --images 20000 --rounds 3 --workers 2
"""

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import zoo

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


class PerSample(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


def per_sample_epoch(loader: DataLoader) -> float:
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - start)


def fast_epoch(dm: zoo.data.ImageDataModule, augment: zoo.data.augment.BatchAugment) -> float:
    start, n = time.perf_counter(), 0
    for x, y in dm.train_dataloader():
        x, _ = augment(x, y, train=True)
        n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-sample path")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    dm = zoo.data.create("fake", train_size=args.images, test_size=10, val_split=0, batch_size=args.batch,
                         augment="standard")
    dm.setup()
    augment = dm.batch_augment
    per_sample = DataLoader(PerSample(dm.train_set.images, dm.train_set.labels), batch_size=args.batch,
                            shuffle=True, num_workers=args.workers, persistent_workers=args.workers > 0)
    per_sample_epoch(per_sample), fast_epoch(dm, augment)  # warm-up: workers start, caches fill
    slow, fast = [], []
    for _ in range(args.rounds):
        slow.append(per_sample_epoch(per_sample))
        fast.append(fast_epoch(dm, augment))
    s, f = statistics.median(slow), statistics.median(fast)
    print(f"per-sample v2 DataLoader ({args.workers} workers): {s:,.0f} images/s")
    print(f"zoo in-memory batch path (0 workers):       {f:,.0f} images/s")
    print(f"ratio fast/per-sample: {f / s:.1f}x  (goal >= 5x; {torch.get_num_threads()} threads, "
          f"{args.images} images of 3x32x32, batch {args.batch}, median of {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
