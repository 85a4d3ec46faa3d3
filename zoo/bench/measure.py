"""Measuring one fitted entry: accuracy, size, MACs, training and inference throughput, latency, peak memory."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch

from zoo.catalog import count_macs
from zoo.errors import ZooError


class EpochClock(L.Callback):
    """Training time and images of each epoch (validation excluded) and the validation accuracy after it."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._start: float | None = None
        self._seconds = 0.0
        self._images = 0
        self._val: float | None = None

    def _now(self, trainer: L.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._seconds, self._images, self._val = self._now(trainer), 0.0, 0, None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._images += len(batch[0])

    def _stop(self, trainer: L.Trainer) -> None:
        if self._start is not None:
            self._seconds += self._now(trainer) - self._start
            self._start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop(trainer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_acc")
        if not trainer.sanity_checking and value is not None:
            self._val = 100 * float(value)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(trainer)
        self.epochs.append({"epoch": trainer.current_epoch + 1, "val_acc": self._val, "train_s": self._seconds,
                            "images": self._images})

    def train_samples_per_sec(self) -> float | None:
        """Images per second of training, the first epoch (warm-up) left out when there are more."""
        steady = self.epochs[1:] or self.epochs
        seconds = sum(e["train_s"] for e in steady)
        return sum(e["images"] for e in steady) / seconds if seconds > 0 else None


class Stopwatch(L.Callback):
    """A fit's time to result: from its first training batch to the end of its test (the last prediction of the
    test set, test-time augmentation included), as speed records count it; ``setup_s`` is what came before the
    first batch (reading the data into memory, building the net)."""

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.first_batch: float | None = None
        self.test_end: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.first_batch is None:
            self.first_batch = time.perf_counter()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.test_end = time.perf_counter()

    @property
    def seconds(self) -> float | None:
        """First training batch to the end of the test; None before both happened."""
        return None if self.first_batch is None or self.test_end is None else self.test_end - self.first_batch

    @property
    def setup_s(self) -> float | None:
        return None if self.first_batch is None else self.first_batch - self.created


def _median_time(step: Callable[[], Any], rounds: int, cuda: bool) -> float:
    times = []
    for _ in range(rounds):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_speed(module: torch.nn.Module, shape: tuple[int, ...], batch: int, device: torch.device,
                    context: Callable[[], Any], rounds: int = 20) -> tuple[float, float]:
    """Batch-1 latency (ms) and batched throughput (images/s): the median of `rounds` forwards of one image and of
    a quarter as many (at least 3) of a batch, each after up to 3 forwards of warm-up."""
    module.eval()
    cuda = device.type == "cuda"
    results = []
    for n, repeat in ((1, rounds), (batch, max(min(3, rounds), rounds // 4))):
        x = torch.randn(n, *shape, device=device)
        with torch.inference_mode(), context():
            for _ in range(min(3, rounds)):
                module(x)
            results.append(_median_time(lambda x=x: module(x), repeat, cuda))
    return 1000 * results[0], batch / results[1]


def _macs_or_none(net: torch.nn.Module, shape: tuple[int, ...], device: torch.device) -> int | None:
    try:
        return count_macs(net, shape, device)
    except Exception:  # noqa: BLE001 - a net the counter cannot trace still gets its other figures
        return None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads, {platform.machine()})"


def _peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most memory tensors held; CPU: the process's peak resident set (Python and libraries included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_entry(job: ChildJob) -> dict[str, Any]:
    """In the child process: fit one entry, test its best checkpoint, measure it; the row and curve as a dict."""
    import lightning
    import torchvision

    from zoo.train import fit
    from zoo.version import __version__

    suite, model, dataset, seed, config, options, target = (job.suite, job.model, job.dataset, job.seed, job.config,
                                                            job.options, job.target)
    start = time.perf_counter()
    result = fit(model, dataset, [
        "--trainer.enable_progress_bar=false", *options,
        "--seed_everything", str(seed), f"--trainer.callbacks+={EpochClock.__module__}.EpochClock",
        "--trainer.logger.init_args.save_dir", job.runs,
        "--trainer.logger.init_args.name", f"{suite}/{model}-{dataset}",
        "--trainer.logger.init_args.version", f"seed{seed}-{config}",
    ])
    wall = time.perf_counter() - start
    trainer, module = result.trainer, result.model
    if result.interrupted or not result.test_metrics:
        raise ZooError(f"{model} on {dataset} did not finish its fit and test")
    device = trainer.strategy.root_device
    peak = _peak_memory_mb(device)
    clock = next(c for c in trainer.callbacks if isinstance(c, EpochClock))
    images = next(iter(result.datamodule.test_dataloader()))[0]
    shape = tuple(images.shape[1:])
    batch = int(getattr(result.datamodule, "batch_size", 64) or 64)
    module.to(device)
    latency, throughput = inference_speed(module, shape, batch, device, trainer.precision_plugin.forward_context,
                                          job.speed_rounds)
    macs = _macs_or_none(module.net, shape, device)
    top1 = 100 * result.test_metrics["test_acc"]
    top5 = result.test_metrics.get("test_acc5")
    curve = [{"epoch": e["epoch"], "val_acc": None if e["val_acc"] is None else round(e["val_acc"], 3),
              "train_s": round(e["train_s"], 3)} for e in clock.epochs]
    reached = next((e for e in clock.epochs if target is not None and e["val_acc"] is not None
                    and e["val_acc"] >= target), None)
    best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    speed = clock.train_samples_per_sec()
    return {
        "top1": round(top1, 3), "top1_err": round(100 - top1, 3),
        "top5": None if top5 is None else round(100 * top5, 3),
        "top5_err": None if top5 is None else round(100 - 100 * top5, 3),
        "best_val": None if best is None else round(100 * float(best), 3),
        "param_count": _significant(sum(p.numel() for p in module.net.parameters()) / 1e6),
        "img_size": shape[-1], "infer_gmacs": None if macs is None else _significant(macs / 1e9),
        "train_samples_per_sec": None if speed is None else round(speed, 1), "train_batch_size": batch,
        "infer_samples_per_sec": round(throughput, 1), "infer_batch_size": batch,
        "infer_latency_ms": round(latency, 3), "peak_mem_mb": round(peak, 1), "wall_s": round(wall, 1),
        "epochs": len(clock.epochs), "epochs_to_target": None if reached is None else reached["epoch"],
        "time_to_target_s": None if reached is None else round(sum(
            e["train_s"] for e in clock.epochs[: reached["epoch"]]), 1),
        "precision": str(trainer.precision), "device": _device_name(device),
        "python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__,
        "zoo": __version__, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torchvision": torchvision.__version__, "curve": _cumulative(curve),
    }


def _significant(value: float) -> float:
    """Millions of parameters or billions of MACs to 9 significant digits (a linear model's 6.4e-07 GMACs too)."""
    return float(f"{value:.9g}")


def _cumulative(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    total = 0.0
    for point in curve:
        total += point["train_s"]
        point["train_s"] = round(total, 3)
    return curve


@dataclass(frozen=True)
class ChildJob:
    """What the child process of one entry gets (as JSON on its command line): the entry and where to write."""

    suite: str
    model: str
    dataset: str
    seed: int
    config: str
    options: list[str]
    target: float | None
    runs: str
    result: str
    speed_rounds: int = 20  # forwards timed for the inference speed (a smoke run needs its figures, not their truth)


def child_main(argv: list[str]) -> None:
    """``python -m zoo.bench JOB``: fit, test and measure one entry, write its row to the job's result file."""
    from zoo.log import shown

    if argv and not argv[0].startswith("{"):  # Lightning starting another DDP rank: `python -m zoo.bench fit ...`
        from zoo.train import run_lightning

        with shown():
            run_lightning(argv)  # the same fit and test as rank 0, which measures and reports
        return
    job = ChildJob(**json.loads(argv[0]))
    with shown():  # zoo's notes in the entry's log, as the zoo command shows them
        row = run_entry(job)
    Path(job.result).write_text(json.dumps(row))
