"""The checkpoint format: what zoo stores in a checkpoint, reading it safely, writing it atomically.

A zoo checkpoint is Lightning's (``state_dict``, ``hyper_parameters``, loops, optimizers) plus a
``zoo`` entry: the version that wrote it, the registry name of the net, a description of its data
(registry name, arguments, normalization) and the random states of the fit. It loads with
``weights_only=True`` only, and is written to a temporary name, flushed and renamed into place.
"""

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from zoo.atomic import atomic_path
from zoo.errors import CheckpointError, InputError
from zoo.version import __version__


def zoo_entry(model: str, datamodule: Any) -> dict[str, Any]:
    """The ``zoo`` entry of a checkpoint written now: version, model name, data description.

    The random states (``rng``, :func:`rng_states`) join it through :class:`zoo.callbacks.RandomState`.
    """
    return {"version": __version__, "model": model, "data": data_description(datamodule)}


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


def checkpoint_datamodule(ckpt: str | Path, name: str | None = None, arguments: dict[str, Any] | None = None,
                          same_classes: bool = True) -> tuple[str, Any]:
    """The dataset `name` (default: the one the checkpoint `ckpt` was trained on, with its arguments), set up.

    `arguments` override the dataset's; returns the dataset's name and the DataModule after ``setup()``. Data
    whose channels or image size differ from the net's is an :class:`InputError` naming the option that fits;
    so is data with other classes (their number or names), unless `same_classes` is False (features of any data).
    """
    from zoo.data import create

    checkpoint = read_checkpoint(ckpt)
    described = checkpoint["zoo"].get("data") or {}
    name = name or described.get("name")
    if name is None:
        raise InputError(f"checkpoint {str(ckpt)!r} does not name its dataset; give --data NAME")
    own = described.get("arguments", {}) if name == described.get("name") else {}
    datamodule = create(name, **{**own, **(arguments or {})})
    hparams = checkpoint.get("hyper_parameters", {})
    for what in ("in_chans", "image_size"):
        have, want = getattr(datamodule, what, None), hparams.get(what)
        if None not in (have, want) and have != want:
            raise InputError(f"the data has {what}={have} but the model takes {want}; give data that fits the model "
                             f"(e.g. --set {what}={want})")
    datamodule.setup()
    if same_classes:
        _check_classes(hparams, datamodule)
    return name, datamodule


def _check_classes(hparams: dict[str, Any], datamodule: Any) -> None:
    """A model scored on labels of other classes: an accuracy that means nothing (75 % of a 2-class net on 3)."""
    trained, names = hparams.get("num_classes"), hparams.get("class_names")
    have, have_names = getattr(datamodule, "num_classes", None), getattr(datamodule, "class_names", None)
    differ = (None not in (trained, have) and trained != have) or (
        names and have_names and list(names) != list(have_names))

    def shown(count: Any, labels: Any) -> str:
        listed = ", ".join(map(str, labels[:6])) + (", ..." if len(labels) > 6 else "") if labels else ""
        return f"{count} classes" + (f" ({listed})" if listed else "")

    if differ:
        raise InputError(f"the model was trained on {shown(trained, names)} but the data has {shown(have, have_names)}"
                         "; its predictions score only on the classes it learned: give data with those classes, "
                         "or fine-tune it on this data first (docs/transfer.md)")


def net_from_checkpoint(path: str | Path) -> torch.nn.Module:
    """The trained net of a zoo checkpoint, rebuilt from its registry name and arguments (no LightningModule)."""
    from zoo.registry import build_model

    checkpoint = read_checkpoint(path)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    for key in ("loss", "label_smoothing", "class_names"):  # the classifier's, not the net's
        hparams.pop(key, None)
    stage = hparams.pop("probe_stage", None)
    net = build_model(hparams.pop("model"), **hparams)
    if stage is not None:
        from zoo.models.net import stage_probe

        net = stage_probe(net, stage, hparams["image_size"])
    state = {key.removeprefix("net."): value for key, value in checkpoint["state_dict"].items()
             if key.startswith("net.")}
    check_tensors(net.state_dict(), state, path)
    net.load_state_dict(state)
    return net


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
