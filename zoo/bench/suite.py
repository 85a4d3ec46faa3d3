"""Running a suite: every model x dataset x seed a ``zoo fit`` in a child process, each finished entry appended.

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

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_path
from zoo.bench.measure import ChildJob
from zoo.configs import find
from zoo.errors import InputError
from zoo.results import append_rows, read_rows
from zoo.runfolder import lock_folder, release

RESULTS, CURVES = "results.csv", "curves.csv"
SUITES = Path(__file__).resolve().parent / "suites"  # the shipped suites: zoo bench --suite digits


def suite_file(value: str | Path) -> Path:
    """A suite's file: a path as it is, or a shipped suite by its name (``digits``, ``fashion_mnist``, ...)."""
    return find(str(value), SUITES, "suite")


REFERENCES = "references.json"  # a suite's published results, for the page
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


KEY = ("suite", "model", "dataset", "seed", "config")


COLUMNS = [
    *KEY, "status", "top1", "top1_err", "top5", "top5_err", "best_val", "param_count", "img_size", "infer_gmacs",
    "train_samples_per_sec", "train_batch_size", "infer_samples_per_sec", "infer_batch_size", "infer_latency_ms",
    "peak_mem_mb", "wall_s", "epochs", "target", "epochs_to_target", "time_to_target_s", "precision", "device",
    "python", "torch", "torchvision", "lightning", "zoo", "git", "finished",
]


CURVE_COLUMNS = [*KEY, "epoch", "val_acc", "train_s"]


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

    path = suite_file(path)
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
    if not SUITE_NAME.fullmatch(name):  # it names folders: runs/bench/NAME, its logs and run folders
        raise InputError(f"{path}: the suite's name {name!r} must be letters, digits, '.', '_' or '-' (it names the "
                         "folders its results and runs go to), starting with a letter or digit; e.g. name: digits")
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

    published = yaml.safe_load(suite_file(path).read_text()).get("published") or {}
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


def finished(rows: list[dict[str, str]]) -> set[tuple[str, ...]]:
    """The keys of the entries done (failed ones run again)."""
    return {tuple(row.get(k) or "" for k in KEY) for row in rows if row.get("status") == "done"}


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
    One bench at a time writes `out`: a second one stops at once, naming the first one's pid.
    """
    lock_folder(out, "zoo bench")  # a second bench into the same --out would run every entry twice
    try:
        return _run_entries(entries, out, runs, progress)
    finally:
        release(out)


def _run_entries(entries: list[Entry], out: Path, runs: Path, progress: bool) -> list[dict[str, Any]]:
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
    if folder.exists():  # a fit of this entry still running (another bench on the same --runs) stops this one
        lock_folder(folder, "zoo fit")
        release(folder)  # (a folder that held nothing else is gone)
    if folder.exists():  # an unfinished earlier try (not in results.csv): kept aside, the fit starts clean
        aside = folder.with_name(f"{folder.name}.unfinished-{datetime.now():%Y%m%d-%H%M%S}")
        folder.rename(aside)
        print(f"zoo bench: an unfinished try of {entry.name} moved to {aside}", file=sys.stderr, flush=True)
    job = ChildJob(*entry.key, list(entry.options), entry.target, str(runs), str(result))
    # -m puts the working folder first on sys.path: a file there named like a module (random.py, or an evil.py a
    # suite's class_path names) would be imported instead of the real one. PYTHONSAFEPATH (Python 3.11+) leaves it
    # out, for the child and the processes Lightning starts for DDP with the same command (zoo.bench's __main__
    # drops it on 3.10, once the package is imported).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"}
    with open(log, "w") as f:
        child = subprocess.Popen([sys.executable, "-m", "zoo.bench", json.dumps(asdict(job))], stdout=f,
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
