"""The checkpoint format: what zoo stores in a checkpoint, reading it safely, writing it atomically.

A zoo checkpoint is Lightning's (``state_dict``, ``hyper_parameters``, loops, optimizers) plus a
``zoo`` entry: the version that wrote it, the registry name of the net, a description of its data
(registry name, arguments, normalization), the optimizer (class and arguments) and the random states
of the fit. It loads with ``weights_only=True`` only, and is written to a temporary name, flushed and
renamed into place. Everything zoo reads from one goes through :class:`CheckpointRecord`, read once.
"""

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from zoo.atomic import atomic_path
from zoo.errors import CheckpointError, InputError
from zoo.version import __version__

LINKED = ("num_classes", "in_chans", "image_size")
"""The sizes a net and its data agree on: the CLI links them from the data, a checkpoint's data is checked on them."""
CLASSIFIER_ARGUMENTS = ("loss", "label_smoothing", "class_names", "probe_stage")
"""The saved arguments of :class:`zoo.classifier.ImageClassifier` that are not the net's (``model``, the linked
sizes and the net's own arguments are the rest)."""


def zoo_entry(model: str, datamodule: Any, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """The ``zoo`` entry of a checkpoint written now: version, model name, data and optimizer description.

    The random states (``rng``, :func:`rng_states`) join it through :class:`zoo.callbacks.RandomState`.
    """
    return {"version": __version__, "model": model, "data": data_description(datamodule),
            "optimizer": optimizer_description(optimizer)}


def optimizer_description(optimizer: torch.optim.Optimizer | None) -> dict[str, Any] | None:
    """The optimizer's class path and the arguments its groups started from (``lr`` before any group's factor):
    ``{"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1, "momentum": 0.9, ...}}``; None without one.

    Only plain values (numbers, strings, booleans, tuples of them), which ``weights_only`` loading reads."""
    if optimizer is None:
        return None
    plain = (bool, int, float, str, type(None))
    kind = type(optimizer)
    module = "torch.optim" if kind.__module__.startswith("torch.optim.") else kind.__module__
    return {"class_path": f"{module}.{kind.__qualname__}",
            "init_args": {key: value for key, value in optimizer.defaults.items()
                          if isinstance(value, plain) or (isinstance(value, tuple)
                                                          and all(isinstance(v, plain) for v in value))}}


@dataclass(frozen=True)
class DataRecord:
    """What a checkpoint says of its data (:func:`data_description`): enough to prepare images for its net and to
    make the data again."""

    name: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    mean: list[float] | None = None
    std: list[float] | None = None
    image_size: int | None = None
    in_chans: int | None = None
    class_names: list[str] | None = None


@dataclass(frozen=True)
class CheckpointRecord:
    """One zoo checkpoint, read once (:meth:`read`), as every part of zoo sees it.

    Attributes:
        path: the file it was read from.
        model: the registry name of the net.
        num_classes, in_chans, image_size: the net's sizes (:data:`LINKED`).
        net_arguments: the net's own arguments beyond its sizes (e.g. ``hidden`` for ``mlp``).
        probe_stage: the stage the net's head reads, for a stage probe (None: its own head).
        class_names: the class names in label order, or None.
        hyper_parameters: :class:`~zoo.classifier.ImageClassifier`'s arguments as saved (model, sizes, loss,
            label smoothing, class names, the net's own arguments).
        data: the data it was trained on, as :class:`DataRecord`.
        optimizer: the optimizer (:func:`optimizer_description`), None in checkpoints before zoo 0.9 and for kNN.
        version: the zoo version that wrote it.
        epoch, global_step: Lightning's counters when it was saved.
        state_dict: the classifier's tensors (the net's under ``net.``).
        contents: everything the file holds (loops, callbacks' states, optimizer states), for what Lightning resumes.
    """

    path: Path
    model: str
    num_classes: int
    in_chans: int
    image_size: int
    net_arguments: dict[str, Any]
    probe_stage: int | None
    class_names: list[str] | None
    hyper_parameters: dict[str, Any]
    data: DataRecord
    optimizer: dict[str, Any] | None
    version: str | None
    epoch: int
    global_step: int
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    contents: dict[str, Any] = field(repr=False)

    @classmethod
    def read(cls, path: str | Path) -> "CheckpointRecord":
        """Read a zoo checkpoint (weights only) or raise :class:`~zoo.errors.CheckpointError` saying what is wrong."""
        contents = read_checkpoint(path)
        hparams, entry, state_dict = (contents.get(key, {}) for key in ("hyper_parameters", "zoo", "state_dict"))
        for key, value in (("hyper_parameters", hparams), ("zoo", entry), ("state_dict", state_dict)):
            if not isinstance(value, dict):
                raise _edited(path, f"its {key!r} entry is a {type(value).__name__}, not a mapping")
        hparams = dict(hparams)
        model = hparams.get("model") or entry.get("model")
        if model is None or any(hparams.get(key) is None for key in LINKED):
            raise CheckpointError(f"checkpoint {str(path)!r} does not name its model and sizes (hyper_parameters "
                                  f"model, {', '.join(LINKED)}); it was edited or written by another program: "
                                  "train again with zoo fit")
        _check_values(path, model, hparams, state_dict)
        described = entry.get("data") or {}
        if not isinstance(described, dict):
            raise _edited(path, f"its description of the data is a {type(described).__name__}, not a mapping")
        fields = DataRecord.__dataclass_fields__
        return cls(
            path=Path(path), model=model, **{key: hparams[key] for key in LINKED},
            net_arguments={k: v for k, v in hparams.items() if k not in ("model", *LINKED, *CLASSIFIER_ARGUMENTS)},
            probe_stage=hparams.get("probe_stage"), class_names=hparams.get("class_names"),
            hyper_parameters=hparams,
            data=DataRecord(**{k: v for k, v in described.items() if k in fields and v is not None}),
            optimizer=entry.get("optimizer"), version=entry.get("version"),
            epoch=contents.get("epoch", 0), global_step=contents.get("global_step", 0),
            state_dict=state_dict, contents=contents,
        )

    @property
    def labels(self) -> list[str]:
        """The class names, or the class indices as text when it has none."""
        return list(self.class_names or self.data.class_names or [str(i) for i in range(self.num_classes)])

    @property
    def epochs_done(self) -> int:
        """The training epochs finished when a fit saved it (``last.ckpt``, ``best.ckpt``: Lightning's ``epoch`` is the
        epoch it was saved in, at its end or, for a save before its last batch, in its middle)."""
        progress = self.contents.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        mid_epoch = progress.get("is_last_batch") is False  # saved before its epoch's last batch
        return self.epoch + (0 if mid_epoch else 1)

    def normalization(self) -> tuple[list[float], list[float]]:
        """The mean and std its images were normalized with, or an InputError when it does not say."""
        if self.data.mean is None or self.data.std is None:
            raise InputError(f"checkpoint {str(self.path)!r} does not say how its images were normalized; "
                             "give a dataset (--data) instead of image files")
        return self.data.mean, self.data.std

    def net(self) -> torch.nn.Module:
        """The trained net, rebuilt from its registry name and arguments and loaded (no LightningModule)."""
        from zoo.registry import build_model

        net = build_model(self.model, **{key: getattr(self, key) for key in LINKED}, **self.net_arguments)
        if self.probe_stage is not None:
            from zoo.models.net import stage_probe

            net = stage_probe(net, self.probe_stage, self.image_size)
        state = {key.removeprefix("net."): value for key, value in self.state_dict.items() if key.startswith("net.")}
        check_tensors(net.state_dict(), state, self.path)
        net.load_state_dict(state)
        return net

    def datamodule(self, name: str | None = None, arguments: dict[str, Any] | None = None,
                   same_classes: bool = True) -> tuple[str, Any]:
        """The dataset `name` (default: the one it was trained on, with its arguments), set up.

        `arguments` override the dataset's; returns the dataset's name and the DataModule after ``setup()``. Data
        whose channels or image size differ from the net's is an :class:`InputError` naming the option that fits;
        so is data with other classes (their number or names), unless `same_classes` is False (features of any
        data).
        """
        from zoo.data import create

        name = name or self.data.name
        if name is None:
            raise InputError(f"checkpoint {str(self.path)!r} does not name its dataset; give --data NAME")
        own = self.data.arguments if name == self.data.name else {}
        datamodule = create(name, **{**own, **(arguments or {})})
        check_sizes(datamodule, {"in_chans": self.in_chans, "image_size": self.image_size},
                    "give data that fits the model (e.g. --set {what}={want})")
        datamodule.setup()
        if same_classes:
            self._check_classes(datamodule)
        return name, datamodule

    def _check_classes(self, datamodule: Any) -> None:
        """A model scored on labels of other classes: an accuracy that means nothing (75 % of a 2-class net on 3)."""
        trained, names = self.num_classes, self.class_names
        have, have_names = getattr(datamodule, "num_classes", None), getattr(datamodule, "class_names", None)
        differ = (have is not None and trained != have) or (
            names and have_names and list(names) != list(have_names))

        def shown(count: Any, labels: Any) -> str:
            listed = ", ".join(map(str, labels[:6])) + (", ..." if len(labels) > 6 else "") if labels else ""
            return f"{count} classes" + (f" ({listed})" if listed else "")

        if differ:
            raise InputError(f"the model was trained on {shown(trained, names)} but the data has "
                             f"{shown(have, have_names)}; its predictions score only on the classes it learned: give "
                             "data with those classes, or fine-tune it on this data first (docs/transfer.md)")


MAX_CLASSES, MAX_CHANNELS = 1_000_000, 1024  # far above any real net; a value past them is an edited file


def _edited(path: str | Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r} is damaged or was edited: {what}; use another checkpoint "
                           "(last.ckpt, best.ckpt) or train again with zoo fit")


def _check_values(path: str | Path, model: Any, hparams: dict[str, Any], state_dict: dict[str, Any]) -> None:
    """The values every reader of a checkpoint relies on, of the types and sizes zoo writes: an edited one is one
    :class:`CheckpointError`, not a traceback from where it is used (an ``image_size`` of 100,000 asked for 40 GB)."""
    from zoo.data.base import MAX_IMAGE_SIZE

    if not isinstance(model, str):
        raise _edited(path, f"its model is {model!r}, not a registry name")
    for key, most in (("num_classes", MAX_CLASSES), ("in_chans", MAX_CHANNELS), ("image_size", MAX_IMAGE_SIZE)):
        value = hparams[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise _edited(path, f"its {key} is {value!r}, not an integer from 1 to {most:,}")
    names = hparams.get("class_names")
    if names is not None and (not isinstance(names, (list, tuple)) or len(names) != hparams["num_classes"]
                              or not all(isinstance(n, str) for n in names)):
        raise _edited(path, f"its class_names are not {hparams['num_classes']} names")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise _edited(path, "its state_dict holds values other than named tensors")


def check_sizes(data: Any, want: dict[str, Any], remedy: str) -> None:
    """The one check that data fits a net: each of `want` (``{"in_chans": 1, ...}``, None: any) against the
    data's attribute of that name (None or missing: not known). A difference is an :class:`InputError` ending
    with `remedy`, formatted with ``what``, ``have`` and ``want``."""
    for what, wanted in want.items():
        have = getattr(data, what, None)
        if None not in (have, wanted) and have != wanted:
            raise InputError(f"the data has {what}={have} but the model takes {what}={wanted}; "
                             + remedy.format(what=what, have=have, want=wanted))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it, flushes it to disk, then renames it into place.

    A fit killed while saving leaves the previous ``last.ckpt`` whole (Lightning's default writes
    through a temporary file in the system's temp folder and moves it, which is a copy, not an
    atomic rename, when that folder is on another file system). zoo's trainer (``zoo fit``, :func:`zoo.fit`)
    passes it as a plugin; with a Trainer of your own, pass ``plugins=[AtomicCheckpointIO()]``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, sync=True) as temporary, open(temporary, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Every checkpoint the Trainer opens (``--ckpt_path last`` and ``best`` too) goes through
        :func:`read_checkpoint`: weights only, whatever ``weights_only`` asks."""
        return read_checkpoint(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a zoo checkpoint's contents (``weights_only=True``, memory-mapped) or raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        where = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"checkpoint {str(path)!r} {where}; give the path of a .ckpt file "
            "(runs/<name>/version_<n>/checkpoints/best.ckpt after zoo fit)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: it is truncated or corrupt ({exc}); "
                                  "give a .ckpt file written by zoo fit") from None
        found = re.search(r"GLOBAL ([\w.]+)|global ([\w.]+)", str(exc))
        what = f" (it asks for {next(g for g in found.groups() if g)})" if found else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds Python objects other than tensors{what}; zoo loads weights only, "
            "because unpickling objects can run any code. If you trust the file, load it yourself with "
            "torch.load(path, weights_only=False) and save its state_dict, which zoo loads"
        ) from None
    except Exception:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read: it is truncated, corrupt or not a PyTorch "
            "checkpoint; give a .ckpt file written by zoo fit"
        ) from None
    if not isinstance(checkpoint, dict) or "zoo" not in checkpoint:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was not written by zoo (it has no 'zoo' entry); "
            "train with zoo fit, or load plain weights into zoo.create_model(...).load_state_dict"
        )
    return checkpoint


def data_description(data: Any) -> dict[str, Any] | None:
    """What a checkpoint keeps of its data: the registry name and arguments, and the preprocessing.

    ``{"name", "arguments", "mean", "std", "image_size", "in_chans", "class_names"}``, so images can be
    prepared for the model (and its data made again) from the checkpoint alone.
    """
    from zoo.registry import dataset_name

    if data is None:
        return None
    return {
        "name": dataset_name(type(data)),
        "arguments": dict(getattr(data, "hparams", {})),
        **{key: getattr(data, key, None) for key in ("mean", "std", "image_size", "in_chans", "class_names")},
    }


def rng_states() -> dict[str, Any]:
    """The random states of torch (CPU and CUDA), numpy and Python, as tensors and lists (weights_only-safe)."""
    import random

    import numpy as np

    _, keys, position, has_gauss, gauss = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(state), "gauss_next": gauss_next},
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the random states saved by :func:`rng_states`."""
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["gauss"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def check_tensors(own: dict[str, torch.Tensor], state: dict[str, Any], path: str | Path | None = None) -> None:
    """A checkpoint's tensors against the net's: a missing, extra or reshaped one is one CheckpointError.

    torch's own error prints every key in a traceback; this names the first few and what it means.
    """
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    reshaped = [key for key in own if key in state and own[key].numel()  # empty: sized by what it loads (kNN)
                and tuple(state[key].shape) != tuple(own[key].shape)]
    problems = [f"{what} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''} ({len(keys)})"
                for what, keys in (("lacks", missing), ("has extra", unexpected), ("has reshaped", reshaped)) if keys]
    if problems:
        where = f"checkpoint {str(path)!r}" if path is not None else "the checkpoint"
        raise CheckpointError(f"{where} does not fit its model: it {'; it '.join(problems)}; it is damaged or "
                              "was edited: use another checkpoint (last.ckpt, best.ckpt) or train again")
