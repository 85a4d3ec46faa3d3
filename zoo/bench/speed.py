"""Speed in the manner of timm's benchmark.py: zoo's net against the same architecture from torchvision (or timm).

Warm-up, then the median of timed steps, the two nets timed in turn in one process; rows use timm's
column names and are appended to a CSV.
"""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from zoo.bench.measure import _device_name, _macs_or_none, _median_time, _significant
from zoo.bench.suite import git_commit
from zoo.errors import InputError

SPEED_COLUMNS = [
    "model", "reference", "precision", "channels_last", "device", "infer_batch_size", "infer_img_size",
    "infer_samples_per_sec", "infer_step_time", "ref_infer_samples_per_sec", "infer_ratio_vs_reference",
    "train_batch_size", "train_img_size", "train_samples_per_sec", "train_step_time", "ref_train_samples_per_sec",
    "train_ratio_vs_reference", "param_count", "infer_gmacs", "torch", "zoo", "git", "finished",
]


DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def reference_net(name: str) -> tuple[str, torch.nn.Module] | None:
    """The same architecture from torchvision (or else timm) under the same name, if one of them has it."""
    import torchvision

    if name in torchvision.models.list_models(module=torchvision.models):
        kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        return f"torchvision:{name}", torchvision.models.get_model(name, weights=None, **kwargs)
    import timm

    if timm.is_model(name):
        return f"timm:{name}", timm.create_model(name)
    return None


def measure_speed(models: list[str], batches: list[int], precisions: list[str], channels_last: bool = False,
          image_size: int | None = None, device: str | None = None, rounds: int = 10, warmup: int = 3,
          bench: str = "both", progress: Callable[[str, int, int], None] | None = None) -> Iterator[dict[str, Any]]:
    """One row per model, precision and batch size: median step times of zoo's net and the reference's.

    Forward steps (``torch.inference_mode``) and training steps (forward, cross-entropy, backward,
    SGD step) alternate between the two nets, `rounds` times after `warmup` steps each, so drift in
    the machine hits both alike. Mixed precision is ``torch.autocast`` with the dtype. A model with
    an ImageNet reference is built with ``stem="imagenet"`` (the same layers). `progress` is called after each
    step with what is timed (``"resnet18 fp32 batch 64 train"``), the steps done and the steps it takes.
    """
    from zoo.registry import MODELS, build_model, builder_arguments
    from zoo.version import __version__

    for precision in precisions:
        if precision not in DTYPES:
            raise InputError(f"--precision takes {', '.join(DTYPES)}, got {precision!r}")
    if bench not in ("infer", "train", "both"):
        raise InputError(f"--bench takes infer, train or both, got {bench!r}")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    commit = git_commit()
    for name in models:
        entry = MODELS.get(name)
        found = reference_net(name)
        kwargs = {"stem": "imagenet"} if found and "stem" in builder_arguments(entry.builder) else {}
        ours = build_model(name, **kwargs)
        nets = {"zoo": ours} | ({"reference": found[1]} if found else {})
        chans, height, _ = entry.input_size
        size = image_size or height
        memory = torch.channels_last if channels_last else torch.contiguous_format
        for net in nets.values():
            net.to(target, memory_format=memory)
        macs = _macs_or_none(ours, (chans, size, size), target)
        for precision in precisions:
            dtype = DTYPES[precision]

            def context(dtype: torch.dtype | None = dtype) -> Any:
                return torch.autocast(target.type, dtype=dtype, enabled=dtype is not None)

            for batch in batches:
                x = torch.randn(batch, chans, size, size, device=target).contiguous(memory_format=memory)
                y = torch.randint(0, ours.num_classes, (batch,), device=target)
                row: dict[str, Any] = {
                    "model": name, "reference": found[0] if found else "", "precision": precision,
                    "channels_last": channels_last, "device": _device_name(target), "infer_batch_size": batch,
                    "infer_img_size": size, "train_batch_size": batch, "train_img_size": size,
                    "param_count": _significant(sum(p.numel() for p in ours.parameters()) / 1e6),
                    "infer_gmacs": None if macs is None else _significant(macs / 1e9), "torch": torch.__version__,
                    "zoo": __version__, "git": commit}
                kinds = ("infer", "train") if bench == "both" else (bench,)
                for kind in kinds:
                    steps = {label: _step(net, x, y, kind, context) for label, net in nets.items()}
                    try:
                        what = f"{name} {precision} batch {batch} {kind}"
                        times = _alternate(steps, rounds, warmup, target.type == "cuda",
                                           None if progress is None else functools.partial(progress, what))
                    except (RuntimeError, ValueError) as exc:  # e.g. out of memory, a 1x1 map in training BatchNorm
                        raise InputError(
                            f"{name}: a {kind} step at batch {batch}, {size}x{size}, {precision} failed: "
                            f"{str(exc).splitlines()[0]} (try another --batch_size or --image_size)") from None
                    row[f"{kind}_samples_per_sec"] = round(batch / times["zoo"], 2)
                    row[f"{kind}_step_time"] = round(1000 * times["zoo"], 3)
                    if "reference" in times:
                        row[f"ref_{kind}_samples_per_sec"] = round(batch / times["reference"], 2)
                        row[f"{kind}_ratio_vs_reference"] = round(times["reference"] / times["zoo"], 3)
                row["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                yield row


def _step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str,
          context: Callable[[], Any]) -> Callable[[], Any]:
    if kind == "infer":
        net.eval()

        def infer() -> None:
            with torch.inference_mode(), context():
                net(x)

        return infer
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)

    def train() -> None:
        with context():
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return train


def _alternate(steps: dict[str, Callable[[], Any]], rounds: int, warmup: int, cuda: bool,
               progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Median seconds per step of each, the steps taken in turn (a, b, a, b, ...) after `warmup` of each."""
    total, done = (warmup + rounds) * len(steps), 0
    for step in steps.values():
        for _ in range(warmup):
            step()
            done += 1
            if progress is not None:
                progress(done, total)
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            times[label].append(_median_time(step, 1, cuda))
            done += 1
            if progress is not None:
                progress(done, total)
    return {label: statistics.median(values) for label, values in times.items()}


def implausible(row: dict[str, Any]) -> str | None:
    """Why a row's figures cannot be right, or None: a training step (forward, backward and an optimizer step)
    is never faster than a forward alone at the same batch; when it is, the machine was busy while it was timed."""
    infer, train = row.get("infer_samples_per_sec"), row.get("train_samples_per_sec")
    if infer is not None and train is not None and train > infer:
        return (f"{row['model']} at batch {row['infer_batch_size']}: training ({train} img/s) timed faster than "
                f"inference ({infer} img/s), which cannot be: something else was running; time it again on an "
                "idle machine (more --rounds and --warmup steady the medians)")
    return None


SHOWN = [("model", "model"), ("reference", "reference"), ("precision", "precision"), ("infer_batch_size", "batch"),
         ("infer_samples_per_sec", "infer img/s"), ("infer_ratio_vs_reference", "infer ratio"),
         ("train_samples_per_sec", "train img/s"), ("train_ratio_vs_reference", "train ratio")]
"""The columns ``zoo bench speed`` prints, and their headings."""
WIDTHS = [max(len(label), 30 if key in ("model", "reference") else 11) for key, label in SHOWN]


def shown_line(row: dict[str, Any] | None) -> str:
    """A row of the table ``zoo bench speed`` prints as it measures (None: the heading), in fixed-width columns."""
    cells = [label if row is None else str(row.get(key, "-")) for key, label in SHOWN]
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, WIDTHS, strict=True)).rstrip()


def speed_table(models: list[str], batches: list[int], precisions: list[str], channels_last: bool,
                image_size: int | None, device: str | None, rounds: int, warmup: int, bench: str,
                out: Path) -> Iterator[tuple[dict[str, Any], str | None]]:
    """``zoo bench speed``: :func:`measure_speed` with a progress bar for each timed part (a line as each starts,
    off a terminal), each row appended to `out` as it is measured; yields it and what makes it implausible."""
    from tqdm import tqdm

    from zoo.results import append_rows

    if not models or not batches or not precisions:
        raise InputError("--models, --batch_size and --precision each take one value or more, separated by commas")
    if min(batches) < 1 or rounds < 1 or warmup < 0:
        raise InputError("--batch_size and --rounds must be 1 or more, --warmup 0 or more")
    parts = len(models) * len(precisions) * len(batches) * (2 if bench == "both" else 1)
    bars: dict[str, Any] = {}

    def progress(what: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():  # a log: a line as each part starts, not a minute of silence
            if what not in bars:
                bars[what] = None
                print(f"zoo bench speed: [{len(bars)}/{parts}] timing {what}", file=sys.stderr, flush=True)
            return
        bar = bars.get(what) or bars.setdefault(what, tqdm(total=total, desc=f"[{len(bars) + 1}/{parts}] {what}",
                                                           unit="step", leave=False))
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    for row in measure_speed(models, batches, precisions, channels_last, image_size, device, rounds, warmup, bench,
                             progress):
        append_rows(out, SPEED_COLUMNS, [row])
        yield row, implausible(row)
