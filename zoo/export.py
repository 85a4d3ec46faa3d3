"""Export a trained model to ONNX, TorchScript, a torch.export program or safetensors, with a parity check.

Every exported file carries zoo's metadata as JSON: the model, class names and the preprocessing
(input size, channels, mean and std), so whoever runs it can prepare images the way it was trained.
The file is written under a temporary name and only renamed into place when the reloaded export
gives the same outputs as the PyTorch model (largest absolute difference within 1e-4).
"""

import inspect
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.atomic import atomic_path, output_file
from zoo.checkpoint import CheckpointRecord
from zoo.errors import InputError, ZooError, enough_space
from zoo.registry import MODELS, builder_arguments

FORMATS = ("onnx", "torchscript", "exported-program", "safetensors")
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts"), "exported-program": (".pt2",),
            "safetensors": (".safetensors",)}
TOLERANCE = 1e-4


@dataclass
class ExportReport:
    """Where the export went and how closely the reloaded file reproduced the model."""

    path: Path
    format: str
    max_abs_diff: float
    images: int

    def __str__(self) -> str:
        return (f"{self.format} -> {self.path}: parity on {self.images} images, largest difference "
                f"{self.max_abs_diff:.2e} (tolerance {TOLERANCE:.0e}): ok")


def metadata(checkpoint: "str | Path | CheckpointRecord") -> dict[str, Any]:
    """The metadata stored in every export: model, classes and preprocessing."""
    from zoo.version import __version__

    record = checkpoint if isinstance(checkpoint, CheckpointRecord) else CheckpointRecord.read(checkpoint)
    defaults = builder_arguments(MODELS.get(record.model).builder)  # every argument, so a later zoo rebuilds it
    arguments = {k: v for k, v in defaults.items()
                 if k not in ("num_classes", "in_chans", "image_size") and v is not inspect.Parameter.empty}
    arguments.update(record.net_arguments)
    size = record.image_size
    return {
        "zoo_version": __version__, "model": record.model, "num_classes": record.num_classes,
        "class_names": record.labels, "model_arguments": arguments,
        **({"probe_stage": record.probe_stage} if record.probe_stage is not None else {}),
        "input": {"shape": ["N", record.in_chans, size, size], "dtype": "float32",
                  "mean": record.data.mean, "std": record.data.std, "range": "pixels in [0, 1] before mean/std"},
        "output": "logits [N, num_classes]; softmax gives probabilities",
    }


def _example(record: CheckpointRecord, n: int = 8) -> torch.Tensor:
    """A batch for the parity check: real images from the checkpoint's data when it can be made, else noise."""
    from zoo.data import DATASETS, create

    if record.data.name in DATASETS:
        try:
            return create(record.data.name, **record.data.arguments).normalized("test")[0][:n]
        except Exception:  # data that cannot be made here (not downloaded): noise still tests the numerics
            pass
    c, s = record.in_chans, record.image_size
    return torch.randn(n, c, s, s, generator=torch.Generator().manual_seed(0))


def export(checkpoint_path: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> ExportReport:
    """Export the net of a zoo checkpoint as `fmt` to `out`, after checking the reloaded file against PyTorch.

    `out` must end as the format's files do (``.onnx``, ``.pt``, ``.pt2``, ``.safetensors``); an existing
    file is replaced only with `overwrite`.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = output_file(out, overwrite, SUFFIXES[fmt])
    record = CheckpointRecord.read(checkpoint_path)
    meta = metadata(record)
    net = record.net().eval()
    if getattr(net, "memorizes", False) and fmt != "safetensors":
        raise InputError(f"a kNN cannot be exported as {fmt}: its prediction loops over the memorized images in "
                         "Python chunks and sorts distances, which tracing fixes to one batch size (a file that "
                         "works at batch 8 only). Export its memory with --format safetensors, or export the "
                         "feature net it compares (--model.features) instead")
    x = _example(record)
    with torch.no_grad():
        expected = net(x)
    # TorchScript's and torch.export's savers abort the whole process on a full disk: check first (the file holds
    # the tensors and the graph; twice the tensors and a megabyte is a safe bound for every format here)
    tensors = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    enough_space(out, 2 * tensors + 2**20)
    with atomic_path(out) as tmp:
        try:
            reloaded = _WRITERS[fmt](net, x, tmp, json.dumps(meta))
            diff = 0.0
            for batch in (x, x[:3]):  # also a batch size other than the traced one: a fixed batch never passes
                with torch.no_grad():
                    got = torch.as_tensor(reloaded(batch))
                if got.shape != expected[:len(batch)].shape:
                    raise ZooError(f"the {fmt} export works at batch size {len(x)} only (batch {len(batch)} gave "
                                   f"shape {tuple(got.shape)}); nothing was written to {str(out)!r}")
                diff = max(diff, (got - expected[:len(batch)]).abs().max().item())
            if not diff <= TOLERANCE:
                raise ZooError(f"the {fmt} export gives different outputs (largest difference {diff:.2e} > "
                               f"{TOLERANCE:.0e}); nothing was written to {str(out)!r}")
        finally:
            tmp.with_name(tmp.name + ".data").unlink(missing_ok=True)
    return ExportReport(out, fmt, diff, len(x))


def _onnx(net: nn.Module, x: torch.Tensor, path: Path, meta: str) -> Any:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ZooError("ONNX export needs onnx, onnxscript and onnxruntime: pip install -e '.[export]' in a checkout "
                       "of zoo, or pip install onnx onnxscript onnxruntime") \
            from None
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), verbose=False, external_data=False)  # one file to move
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"zoo": meta})
    onnx.save(model, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images.numpy()})[0]


def _torchscript(net: nn.Module, x: torch.Tensor, path: Path, meta: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream; the format still loads everywhere
        traced = torch.jit.trace(net, x)
        torch.jit.save(traced, str(path), _extra_files={"zoo.json": meta})
        return torch.jit.load(str(path))


def _exported_program(net: nn.Module, x: torch.Tensor, path: Path, meta: str) -> Any:
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, str(path), extra_files={"zoo.json": meta})
    return torch.export.load(str(path)).module()


def _safetensors(net: nn.Module, x: torch.Tensor, path: Path, meta: str) -> Any:
    from safetensors.torch import load_file, save_file

    from zoo.registry import build_model

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata={"zoo": meta})
    info = json.loads(meta)
    _, c, s, _ = info["input"]["shape"]
    twin = build_model(info["model"], num_classes=info["num_classes"], in_chans=c, image_size=s,
                        **info["model_arguments"])
    twin.load_state_dict(load_file(str(path)), strict=True)
    return twin.eval()


_WRITERS = {"onnx": _onnx, "torchscript": _torchscript, "exported-program": _exported_program,
            "safetensors": _safetensors}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The zoo metadata of an exported file of any of the four formats."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props["zoo"])
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()["zoo"])
    if path.suffix == ".pt2":
        extra = {"zoo.json": ""}
        torch.export.load(str(path), extra_files=extra)
        return json.loads(extra["zoo.json"])
    extra = {"zoo.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["zoo.json"])
