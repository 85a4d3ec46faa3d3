"""Benchmark leaderboards: run a suite, keep every result, render a ranked table and a page.

``zoo bench --suite benchmarks/suites/digits.yaml`` fits every model x dataset x seed of the suite
(each a plain ``zoo fit`` with the suite's recipe, in its own process so peak memory is its own),
then measures the best checkpoint: top-1/top-5 test accuracy, parameters, MACs, training and
inference throughput, batch-1 latency, peak memory, wall time and the epochs and training time
it took to reach the suite's target validation accuracy. Each finished entry is appended to
``results.csv`` (timm's column names where timm has one) and its validation curve to
``curves.csv``; nothing is ever overwritten, and a rerun skips the entries already done, so an
interrupted suite resumes where it stopped. ``zoo bench render`` turns the CSVs into
``leaderboard.md``, a static ``index.html`` (sortable table, scatter plots, curves) and the PNGs.
``zoo bench speed`` times forward and training steps in the manner of timm's benchmark.py against
the same architecture from torchvision (or timm), alternating in one process.

A suite is YAML::

    name: digits
    seeds: [0, 1, 2]
    target: 95.0                 # validation accuracy (%) for epochs_to_target and time_to_target_s
    recipe:                      # zoo fit options of every entry, as on the command line without "--"
      trainer.max_epochs: 30
      model.optimizer: adamw
    datasets:                    # name: its own options (or nothing)
      digits: {}
    models:                      # name: options for this model only, over the recipe (or nothing)
      lenet5:
      knn: {trainer.max_epochs: 1}
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch

from zoo.atomic import atomic_path
from zoo.errors import InputError, ZooError
from zoo.registry import count_macs
from zoo.spreadsheet import safe_dict

RESULTS, CURVES = "results.csv", "curves.csv"
REFERENCES = "references.json"  # a suite's published results, for the page
KEY = ("suite", "model", "dataset", "seed", "config")
COLUMNS = [
    *KEY, "status", "top1", "top1_err", "top5", "top5_err", "best_val", "param_count", "img_size", "infer_gmacs",
    "train_samples_per_sec", "train_batch_size", "infer_samples_per_sec", "infer_batch_size", "infer_latency_ms",
    "peak_mem_mb", "wall_s", "epochs", "target", "epochs_to_target", "time_to_target_s", "precision", "device",
    "python", "torch", "torchvision", "lightning", "zoo", "git", "finished",
]
CURVE_COLUMNS = [*KEY, "epoch", "val_acc", "train_s"]


# -- suites ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One fit of a suite: a model on a dataset with a seed and the options of its recipe."""

    suite: str
    model: str
    dataset: str
    seed: int
    options: tuple[str, ...]  # zoo fit arguments besides --model, --data and the seed
    target: float | None

    @property
    def config(self) -> str:
        """A short hash of what decides the result (model, dataset, options): a changed recipe is a new entry."""
        text = json.dumps([self.model, self.dataset, self.options])
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def key(self) -> tuple[str, ...]:
        return (self.suite, self.model, self.dataset, str(self.seed), self.config)

    @property
    def name(self) -> str:
        return f"{self.model}-{self.dataset}-seed{self.seed}"


def _option_value(value: Any) -> str:
    """A YAML value as the command line takes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _options(mapping: Any, where: str) -> list[str]:
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        raise InputError(f"{where} must map option names to values (e.g. trainer.max_epochs: 10), got {mapping!r}")
    return [a for key, value in mapping.items() for a in (f"--{str(key).removeprefix('--')}", _option_value(value))]


def _names(value: Any, what: str, where: str) -> dict[str, Any]:
    if isinstance(value, list):
        value = {name: None for name in value}
    if not isinstance(value, dict) or not value:
        raise InputError(f"{where}: '{what}' must list at least one name (a list, or a mapping name: options)")
    return value


def load_suite(path: str | Path, models: list[str] | None = None, datasets: list[str] | None = None,
               seeds: list[int] | None = None, options: list[str] | None = None) -> list[Entry]:
    """The entries of a suite file, optionally narrowed to some models/seeds, on other datasets, or with extra options.

    ``datasets`` replaces the suite's datasets (their own options are dropped: they belong to the
    suite's datasets); ``options`` (``KEY=VALUE``) come last, over the recipe.
    """
    import yaml

    from zoo.registry import DATASETS, MODELS

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no suite file {str(path)!r}; the shipped ones are in benchmarks/suites/")
    try:
        suite = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(suite, dict):
        raise InputError(f"{path} must be a mapping with name, seeds, recipe, datasets and models")
    unknown = sorted(set(suite) - {"name", "description", "seeds", "target", "recipe", "datasets", "models",
                                   "published"})
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)}; a suite has name, description, seeds, "
                         f"target, recipe, datasets, models and published (reference results)")
    name = str(suite.get("name") or path.stem)
    all_models = _names(suite.get("models"), "models", str(path))
    all_data = _names(suite.get("datasets"), "datasets", str(path))
    for model in models or []:
        if model not in all_models:
            raise InputError(f"model {model!r} is not in {path}; it has: {', '.join(all_models)}")
    chosen_models = {m: all_models[m] for m in models} if models else all_models
    chosen_data = {d: None for d in datasets} if datasets else all_data
    for model in chosen_models:
        MODELS.get(model)  # unknown names raise with suggestions
    for dataset in chosen_data:
        DATASETS.get(dataset)
    seed_list = seeds if seeds is not None else suite.get("seeds", [0])
    if not isinstance(seed_list, list) or not seed_list or not all(isinstance(s, int) for s in seed_list):
        raise InputError(f"{path}: seeds must be a list of integers, got {seed_list!r}")
    target = suite.get("target")
    if target is not None and not isinstance(target, (int, float)):
        raise InputError(f"{path}: target must be a validation accuracy in %, got {target!r}")
    extra = []
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set takes KEY=VALUE (e.g. trainer.max_epochs=1), got {item!r}")
        extra += [f"--{key.removeprefix('--')}", value]
    recipe = _options(suite.get("recipe"), f"{path}: recipe")
    return [
        Entry(name, model, dataset, seed,
              (*recipe, *_options(data_options, f"{path}: dataset {dataset}"),
               *_options(model_options, f"{path}: model {model}"), *extra), target)
        for dataset, data_options in chosen_data.items()
        for model, model_options in chosen_models.items()
        for seed in seed_list
    ]


def suite_references(path: str | Path) -> dict[str, dict[str, Any]]:
    """A suite's ``published`` results: model -> ``{"top1": %, "what": "the published net and recipe"}``."""
    import yaml

    published = yaml.safe_load(Path(path).read_text()).get("published") or {}
    if not isinstance(published, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("top1"), (int, float)) for v in published.values()):
        raise InputError(f"{path}: published must map model names to {{top1: accuracy in %, what: text}}")
    return {str(model): {"top1": float(ref["top1"]), "what": str(ref.get("what", ""))}
            for model, ref in published.items()}


def write_references(out: Path, references: dict[str, dict[str, Any]]) -> None:
    """Keep a suite's published results beside its results (``references.json``), for the page."""
    if references:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / REFERENCES) as temporary:
            temporary.write_text(json.dumps(references, indent=1, sort_keys=True) + "\n")


# -- the CSV files (append-only) ---------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results or curves CSV ([] if it does not exist yet)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Add rows at the end of a CSV (with the header if the file is new), in one write, flushed to disk.

    A kill during the write can at worst leave a partial last line: :func:`finished` does not count
    it, and the next append starts on a new line so that it stays a row of its own.
    """
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    new = not path.is_file() or path.stat().st_size == 0
    if new:
        writer.writeheader()
    else:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                buffer.write("\n")
    writer.writerows(safe_dict({k: "" if v is None else v for k, v in row.items()}) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())


def finished(rows: list[dict[str, str]]) -> set[tuple[str, ...]]:
    """The keys of the entries done (failed ones run again)."""
    return {tuple(row.get(k) or "" for k in KEY) for row in rows if row.get("status") == "done"}


# -- running a suite ---------------------------------------------------------------------------


def git_commit() -> str:
    """``git describe --always --dirty`` of the zoo source tree ("" when it is not a git checkout)."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def run_suite(entries: list[Entry], out: Path, runs: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Run the entries not yet in ``out/results.csv``; each finished one is appended at once.

    Each entry is a ``zoo fit`` in a child process (its output in ``RUNS/SUITE/logs/MODEL-DATASET-seedN-CONFIG.log``,
    its run folder ``RUNS/SUITE/MODEL-DATASET/seedN-CONFIG``). A failing entry is recorded as
    ``failed ...`` and the suite goes on; it runs again next time. Returns the rows this call added.
    """
    from tqdm.auto import tqdm

    done = finished(read_rows(out / RESULTS))
    todo = [e for e in entries if e.key not in done]
    skipped = len(entries) - len(todo)
    if skipped:
        print(f"zoo bench: {skipped} of {len(entries)} entries already in {out / RESULTS}; running the other "
              f"{len(todo)}", flush=True)
    commit = git_commit()
    added = []
    bar = tqdm(todo, desc="zoo bench", unit="fit", disable=not progress, dynamic_ncols=True)
    for entry in bar:
        bar.set_postfix_str(entry.name)
        row = _run_child(entry, out, runs, commit)
        added.append(row)
        status = "done" if row["status"] == "done" else "FAILED"
        shown = f"top-1 {row['top1']:.2f}%  {row['wall_s']:.0f} s" if status == "done" else row["status"]
        bar.write(f"{entry.name}: {shown}")
    bar.close()
    return added


def _die_with_parent(parent: int) -> None:
    """In the child, before it runs: ask Linux to kill it when zoo bench dies (even by SIGKILL).

    Otherwise a killed ``zoo bench`` left its fit running, and a rerun started the same entry beside it.
    Linux only; elsewhere Ctrl-C still stops the child through :func:`_run_child`.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the request: nothing would kill us later
        os._exit(1)


def _run_child(entry: Entry, out: Path, runs: Path, commit: str) -> dict[str, Any]:
    logs = runs / entry.suite / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{entry.name}-{entry.config}.log"  # as its run folder: a new config keeps the old log
    result = logs / f"{entry.name}-{entry.config}.json"
    result.unlink(missing_ok=True)
    folder = runs / entry.suite / f"{entry.model}-{entry.dataset}" / f"seed{entry.seed}-{entry.config}"
    if folder.exists():  # an unfinished earlier try (not in results.csv): kept aside, the fit starts clean
        aside = folder.with_name(f"{folder.name}.unfinished-{datetime.now():%Y%m%d-%H%M%S}")
        folder.rename(aside)
        print(f"zoo bench: an unfinished try of {entry.name} moved to {aside}", file=sys.stderr, flush=True)
    spec = {"entry": list(entry.key) + [list(entry.options), entry.target], "runs": str(runs), "result": str(result)}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as f:
        child = subprocess.Popen([sys.executable, "-m", "zoo.bench", json.dumps(spec)], stdout=f,
                                 stderr=subprocess.STDOUT, env=env,
                                 preexec_fn=functools.partial(_die_with_parent, os.getpid())
                                 if sys.platform.startswith("linux") else None)  # prctl: Linux only
        try:
            code = child.wait()
        except BaseException:  # Ctrl-C: stop the fit too, record nothing for it
            child.kill()
            child.wait()
            raise
    base = dict(zip(KEY, entry.key, strict=True)) | {"target": entry.target, "git": commit}
    if code != 0 or not result.is_file():
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        row = base | {"status": f"failed (exit {code}; see {log}): {reason[:200]}",
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        append_rows(out / RESULTS, COLUMNS, [row])
        return row
    measured = json.loads(result.read_text())
    curve = measured.pop("curve")
    row = base | measured | {"status": "done"}
    append_rows(out / CURVES, CURVE_COLUMNS, [dict(zip(KEY, entry.key, strict=True)) | point for point in curve])
    append_rows(out / RESULTS, COLUMNS, [row])  # last: a row marked done always has its curve
    return row


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
    """Batch-1 latency (ms) and batched throughput (images/s): median of `rounds` forwards after warm-up."""
    module.eval()
    cuda = device.type == "cuda"
    results = []
    for n, repeat in ((1, rounds), (batch, max(3, rounds // 4))):
        x = torch.randn(n, *shape, device=device)
        with torch.inference_mode(), context():
            for _ in range(3):
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


def run_entry(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child process: fit one entry, test its best checkpoint, measure it; the row and curve as a dict."""
    import lightning
    import torchvision

    from zoo.train import fit
    from zoo.version import __version__

    suite, model, dataset, seed, config, options, target = spec["entry"]
    start = time.perf_counter()
    result = fit(model, dataset, [
        "--trainer.enable_progress_bar=false", *options,
        "--seed_everything", str(seed), f"--trainer.callbacks+={EpochClock.__module__}.EpochClock",
        "--trainer.logger.init_args.save_dir", spec["runs"],
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
    latency, throughput = inference_speed(module, shape, batch, device, trainer.precision_plugin.forward_context)
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


# -- the leaderboard ---------------------------------------------------------------------------

SHOWN = [  # (column, heading, digits); top1/top5 get "mean +- std"
    ("top1", "top-1 %", 2), ("top5", "top-5 %", 2), ("param_count", "params (M)", 3), ("infer_gmacs", "GMACs", 4),
    ("train_samples_per_sec", "train img/s", 0), ("infer_samples_per_sec", "infer img/s", 0),
    ("infer_latency_ms", "latency ms (batch 1)", 2), ("peak_mem_mb", "peak MB", 0),
    ("epochs", "epochs", 0), ("epochs_to_target", "epochs to target", 1), ("time_to_target_s", "s to target", 1),
    ("wall_s", "wall s", 0),
]


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def leaderboard(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Finished rows grouped by suite, dataset and model (the latest row of each seed), ranked by top-1.

    A model whose options changed (a new config) is shown with its newest config only; the older
    rows stay in the CSV. Each group gives the mean over its seeds of every measured column, and the
    sample std of top-1 and top-5; ``epochs_to_target`` and ``time_to_target_s`` average the seeds
    that reached the target (``reached`` counts them).
    """
    latest: dict[tuple[str, ...], dict[str, str]] = {}
    for row in rows:
        if row.get("status") == "done":
            latest[tuple(row.get(k) or "" for k in KEY)] = row
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for key, row in latest.items():
        groups.setdefault((key[0], key[2], key[1], key[4]), []).append(row)
    finished_at = {group: max(r.get("finished") or "" for r in seeds) for group, seeds in groups.items()}
    newest = {group[:3]: group for group in sorted(groups, key=finished_at.__getitem__)}  # later configs win
    groups = {group: groups[group] for group in newest.values()}
    board = []
    for (suite, dataset, model, config), seeds in groups.items():
        entry: dict[str, Any] = {"suite": suite, "dataset": dataset, "model": model, "config": config,
                                 "seeds": len(seeds), "reached": sum(_float(r.get("epochs_to_target")) is not None
                                                                     for r in seeds)}
        for column, _, _ in SHOWN:
            values = [v for v in (_float(r.get(column)) for r in seeds) if v is not None]
            entry[column] = statistics.fmean(values) if values else None
            if column in ("top1", "top5"):
                entry[column + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
        for column in ("precision", "device", "target", "torch", "lightning", "zoo", "git"):
            entry[column] = ", ".join(sorted({r.get(column) or "" for r in seeds} - {""}))
        board.append(entry)
    return sorted(board, key=lambda e: (e["suite"], e["dataset"], -(e["top1"] if e["top1"] is not None else -1)))


def _cell(entry: dict[str, Any], column: str, digits: int) -> str:
    value = entry.get(column)
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    if column in ("top1", "top5") and entry["seeds"] > 1:
        text += f" ± {entry[column + '_std']:.{digits}f}"
    if column in ("epochs_to_target", "time_to_target_s") and entry["reached"] < entry["seeds"]:
        text += f" ({entry['reached']}/{entry['seeds']})"
    return text


def _sections(board: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    sections: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in board:
        sections.setdefault((entry["suite"], entry["dataset"]), []).append(entry)
    return sections


def _about(entries: list[dict[str, Any]]) -> str:
    def joined(column: str) -> str:
        return "; ".join(sorted({e[column] for e in entries if e[column]})) or "-"

    seeds = sorted({e["seeds"] for e in entries})
    commits = sorted({c for e in entries for c in e["git"].split(", ") if c})
    return (f"{len(entries)} models, {'/'.join(map(str, seeds))} seed{'' if seeds == [1] else 's'} each; target "
            f"{joined('target')} % validation accuracy; precision {joined('precision')}; device {joined('device')}; "
            f"torch {joined('torch')}, lightning {joined('lightning')}, zoo {joined('zoo')}; "
            f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits) or '-'}")


def _label_offsets(ax: Any, points: list[tuple[float, float]], height: float = 11.0) -> list[tuple[int, int]]:
    """Text offsets (in points) that keep the labels of nearby markers apart: each label takes the first
    of above, below, two lines above, two below, ... where no label placed before lies within a line's
    height and a name's width."""
    ax.figure.canvas.draw()  # the axes' scales, so that distances are measured as drawn
    placed: list[tuple[float, float]] = []
    offsets = []
    for x, y in points:
        px, py = ax.transData.transform((x, y))
        for step in range(12):
            dy = 4.0 + height * ((step + 1) // 2) * (1 if step % 2 == 0 else -1) - (height if step % 2 else 0)
            if not any(abs(px - qx) < 70 and abs(py + dy - qy) < height for qx, qy in placed):
                break
        placed.append((px, py + dy))
        offsets.append((4, int(dy)))
    return offsets


def plot_section(entries: list[dict[str, Any]], curves: list[dict[str, str]], stem: Path) -> list[Path]:
    """Accuracy against parameters and against inference throughput, and the validation curves, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for column, label, name in (("param_count", "parameters (millions, log scale)", "accuracy_vs_params"),
                                ("infer_samples_per_sec", "inference images/s (batched, log scale)",
                                 "accuracy_vs_throughput")):
        shown = [e for e in entries if (e[column] or 0) > 0 and e["top1"] is not None]
        fig, ax = plt.subplots(figsize=(8, 5.5))
        ax.errorbar([e[column] for e in shown], [e["top1"] for e in shown], yerr=[e["top1_std"] for e in shown],
                    fmt="o", capsize=3)
        for e, offset in zip(shown, _label_offsets(ax, [(e[column], e["top1"]) for e in shown]), strict=True):
            ax.annotate(e["model"], (e[column], e["top1"]), textcoords="offset points", xytext=offset, fontsize=9,
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6} if offset[1] != 4 else None)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 test accuracy (%), mean ± std")
        what = {"param_count": "no parameters", "infer_samples_per_sec": "no measured throughput"}[column]
        left_out = [e["model"] for e in entries if e not in shown]
        ax.set_title(f"{entries[0]['dataset']}: top-1 vs {label.split(' (')[0]}"
                     + (f"\n({', '.join(left_out)}: {what}, not shown)" if left_out else ""), fontsize=11)
        ax.margins(x=0.12, y=0.08)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(stem.with_name(f"{stem.name}_{name}.png"))
        with atomic_path(paths[-1]) as temporary:
            fig.savefig(temporary, dpi=100, format="png")
        plt.close(fig)
    latest: dict[tuple[str, ...], float] = {}  # an entry run again (it failed after its curve) counts once
    for row in curves:
        value = _float(row.get("val_acc"))
        if value is not None and (row.get("epoch") or "").isdigit():
            latest[(*(row.get(k) or "" for k in KEY), row["epoch"])] = value
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for e in entries:
        points: dict[int, list[float]] = {}
        for (suite, model, dataset, _, config, epoch), value in latest.items():
            if (suite, dataset, model, config) == (e["suite"], e["dataset"], e["model"], e["config"]):
                points.setdefault(int(epoch), []).append(value)
        if points:
            epochs = sorted(points)
            ax.plot(epochs, [statistics.fmean(points[k]) for k in epochs], marker="." if len(epochs) < 40 else None,
                    label=e["model"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%), mean over seeds")
    ax.set_title(f"{entries[0]['dataset']}: validation curves", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(stem.with_name(f"{stem.name}_curves.png"))
    with atomic_path(paths[-1]) as temporary:
        fig.savefig(temporary, dpi=100, format="png")
    plt.close(fig)
    return paths


def render(out: Path) -> list[Path]:
    """``out/leaderboard.md``, ``out/index.html`` and the plots, from ``out/results.csv`` and ``out/curves.csv``."""
    import html

    board = leaderboard(read_rows(out / RESULTS))
    if not board:
        raise InputError(f"no finished entries in {out / RESULTS}; run a suite first: zoo bench --suite SUITE.yaml "
                         f"--out {out}")
    curves = read_rows(out / CURVES)
    references = json.loads((out / REFERENCES).read_text()) if (out / REFERENCES).is_file() else {}
    for entry in board:
        reference = references.get(entry["model"])
        entry["published"] = None if reference is None else reference["top1"]
        entry["published_what"] = "" if reference is None else reference["what"]
    shown = SHOWN[:1] + [("published", "published %", 1)] + SHOWN[1:] if references else SHOWN
    md = ["# Leaderboard", "",
          f"Made by `zoo bench` from `{RESULTS}` ({len(board)} rows); top-1 and top-5 are test accuracy, "
          "mean ± std over seeds, of the best-validation checkpoint. Throughput and latency are from the machine "
          "named below; compare them within one table only."
          + (" *published* is the reference result a suite names for the same architecture (its footnotes say "
             "which net and recipe): a long schedule, not zoo's budget." if references else ""), ""]
    page = []
    headings = ["#", "model", *(h for _, h, _ in shown), "seeds"]
    for (suite, dataset), entries in _sections(board).items():
        pictures = plot_section(entries, curves, out / f"{suite}_{dataset}")
        rows = [[str(i), e["model"], *(_cell(e, c, d) for c, _, d in shown), str(e["seeds"])]
                for i, e in enumerate(entries, 1)]
        notes = [f"{e['model']}: {e['published_what']}" for e in entries if e.get("published_what")]
        md += [f"## {dataset} (suite {suite})", "", _about(entries), "",
               "| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|",
               *("| " + " | ".join(r) + " |" for r in rows), "",
               *([f"Published: {'; '.join(notes)}.", ""] if notes else []),
               *(f"![{p.stem}]({p.name})" for p in pictures), ""]
        body = "\n".join(
            "<tr>" + f'<td data-value="{i}">{i}</td><td data-value="{html.escape(e["model"])}">'
            f'{html.escape(e["model"])}</td>'
            + "".join(f'<td data-value="{"" if e[c] is None else e[c]}"'
                      + (f' title="{html.escape(e["published_what"])}"' if c == "published" else "")
                      + f'>{html.escape(_cell(e, c, d))}</td>' for c, _, d in shown)
            + f'<td data-value="{e["seeds"]}">{e["seeds"]}</td></tr>'
            for i, e in enumerate(entries, 1))
        head = "".join(f'<th data-type="{"text" if h == "model" else "number"}" aria-sort="none">{html.escape(h)}'
                       f'</th>' for h in headings)
        page += [f"<h2>{html.escape(dataset)} <small>(suite {html.escape(suite)})</small></h2>",
                 f"<p>{html.escape(_about(entries))}</p>",
                 f'<div class="scroll"><table class="leaderboard"><thead><tr>{head}</tr></thead><tbody>\n{body}\n'
                 '</tbody></table></div>',
                 '<div class="plots">' + "".join(f'<img src="{p.name}" alt="{p.stem}">' for p in pictures) + "</div>"]
    for name, text in (("leaderboard.md", "\n".join(md)), ("index.html", PAGE.replace("{body}", "\n".join(page)))):
        with atomic_path(out / name) as temporary:
            temporary.write_text(text)
    return [out / "leaderboard.md", out / "index.html"]


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo leaderboard</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { width: 100%; }
th, td { padding: 4px 6px; border-bottom: 1px solid #ddd; text-align: right; }
td { white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; font-weight: 600; }
th:nth-child(2), td:nth-child(2) { text-align: left; }
th { cursor: pointer; background: #f3f3f3; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:hover { background: #f7fbff; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1em; margin-top: 1em; }
.plots img { width: 100%; height: auto; }
p { max-width: 70em; }
</style></head><body>
<h1>zoo leaderboard</h1>
<p>Test accuracy (mean &plusmn; std over seeds) of the best-validation checkpoint, with size, cost and speed.
Click a column heading to sort by it; click again to reverse.</p>
{body}
<script>
for (const table of document.querySelectorAll("table.leaderboard")) {
  const headings = [...table.tHead.rows[0].cells];
  headings.forEach((th, column) => th.addEventListener("click", () => {
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    headings.forEach(h => h.setAttribute("aria-sort", "none"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const numeric = th.dataset.type === "number";
    const value = row => row.cells[column].dataset.value;
    const rows = [...table.tBodies[0].rows];
    rows.sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === "" || y === "") return (x === "") - (y === "");  // empty cells last either way
      const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return ascending ? order : -order;
    });
    table.tBodies[0].append(...rows);
  }));
}
</script>
</body></html>
"""


# -- speed, in the manner of timm's benchmark.py ----------------------------------------------

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


def speed(models: list[str], batches: list[int], precisions: list[str], channels_last: bool = False,
          img_size: int | None = None, device: str | None = None, rounds: int = 10, warmup: int = 3,
          bench: str = "both") -> Iterator[dict[str, Any]]:
    """One row per model, precision and batch size: median step times of zoo's net and the reference's.

    Forward steps (``torch.inference_mode``) and training steps (forward, cross-entropy, backward,
    SGD step) alternate between the two nets, `rounds` times after `warmup` steps each, so drift in
    the machine hits both alike. Mixed precision is ``torch.autocast`` with the dtype. A model with
    an ImageNet reference is built with ``stem="imagenet"`` (the same layers).
    """
    from zoo.registry import MODELS, builder_arguments, create_model
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
        ours = create_model(name, **kwargs)
        nets = {"zoo": ours} | ({"reference": found[1]} if found else {})
        chans, height, _ = entry.input_size
        size = img_size or height
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
                        times = _alternate(steps, rounds, warmup, target.type == "cuda")
                    except (RuntimeError, ValueError) as exc:  # e.g. out of memory, a 1x1 map in training BatchNorm
                        raise InputError(
                            f"{name}: a {kind} step at batch {batch}, {size}x{size}, {precision} failed: "
                            f"{str(exc).splitlines()[0]} (try another --batch or --img-size)") from None
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


def _alternate(steps: dict[str, Callable[[], Any]], rounds: int, warmup: int, cuda: bool) -> dict[str, float]:
    """Median seconds per step of each, the steps taken in turn (a, b, a, b, ...) after `warmup` of each."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            times[label].append(_median_time(step, 1, cuda))
    return {label: statistics.median(values) for label, values in times.items()}


def _child_main(argv: list[str]) -> None:
    if argv and not argv[0].startswith("{"):  # Lightning starting another DDP rank: `python -m zoo.bench fit ...`
        from zoo.train import run_lightning

        run_lightning(argv)  # the same fit and test as rank 0, which measures and reports
        return
    spec = json.loads(argv[0])
    row = run_entry(spec)
    path = Path(spec["result"])
    path.write_text(json.dumps(row))


if __name__ == "__main__":  # the child of run_suite: zoo.bench's own classes, not a second copy in __main__
    from zoo.bench import _child_main as child_main

    child_main(sys.argv[1:])
