"""The catalog of models: what each registered net is and costs (parameters, MACs at its default input, its
smallest input, the layer CAM reads, its pretrained weights), the rows ``zoo models`` and ``zoo info`` print, and
catalog.json, which describes zoo's own models and datasets without importing them.

``catalog.json`` beside this module holds what :func:`model_info` measures for each of zoo's own models and each
DataModule's summary, written by :func:`write_catalog` and checked against the live registry by
tests/test_registry.py. Building a net (to measure one the catalog does not describe) is what imports PyTorch.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.metadata
import json
import re
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownNameError, ZooError
from zoo.pretrained import list_weights
from zoo.registry import CATALOG, DATASETS, MODELS, ModelEntry, builder_arguments, catalog, summary

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`model_info` reports: the entry's metadata plus measured size and cost.

    ``params`` and ``macs`` are for the builder's defaults at ``input_size``; MACs are counted
    by :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2). ``cam_layer`` is the registered one, else
    the built net's attribute of that name (plugins set it per net); ``min_size`` is the net's own, of the form
    built for the smallest images, unless the builder registered one.
    ``weights`` maps the names of pretrained weights to their metadata (``acc@1``, ``params``, ...).
    ``summary`` is the first paragraph of the builder's documentation.
    """

    name: str
    family: str
    paper: str
    input_size: tuple[int, int, int]
    min_size: int
    cam_layer: str | None
    params: int
    macs: int
    arguments: dict[str, Any]
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: str = ""


def list_models(
    include: str | Iterable[str] = "*",
    exclude: str | Iterable[str] = (),
    family: str | None = None,
    pretrained: bool = False,
) -> list[str]:
    """Registered model names matching fnmatch patterns (``"res*"``), optionally of one family, or (timm's
    ``pretrained=True``) only those with zoo weights (``zoo.create_model(name, pretrained=True)``)."""
    names = MODELS.names(include, exclude)
    if family is not None:
        names = [n for n in names
                 if (MODELS.described()[n]["family"] if MODELS.is_described(n) else MODELS.get(n).family) == family]
    if pretrained:
        have = {w.model for w in list_weights()}
        names = [n for n in names if n in have]
    return names


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model with its parameter count and MACs at the default input.

    zoo's own models are read from catalog.json (measured as below when it was written; nothing is imported);
    the rest are built on the meta device and measured, as are zoo's models that list torchvision's weights when
    the installed torchvision is not the one the catalog read them from."""
    described = MODELS.is_described(name) and not _torchvision_changed(name)
    info = _described_info(name) if described else measure_info(name)
    zoo_weights = {w.name: _zoo_weights_meta(w) for w in list_weights(name)}
    return dataclasses.replace(info, weights={**info.weights, **zoo_weights})


def _zoo_weights_meta(weights: Any) -> dict[str, Any]:
    """What ``zoo info`` and ``zoo models --pretrained`` show of one of zoo's weights (its record's figures)."""
    meta = weights.meta
    return {"dataset": meta.get("dataset"), "split": meta.get("split"), "acc@1": meta.get("top1"),
            "acc@5": meta.get("top5"), "tta": meta.get("tta"), "acc@1 tta": meta.get("top1_tta"),
            "acc@5 tta": meta.get("top5_tta"),
            "leaderboard acc@1": meta.get("leaderboard_top1"), "leaderboard std": meta.get("leaderboard_top1_std"),
            "leaderboard seeds": meta.get("leaderboard_seeds"),
            "params": meta.get("params"), "GMACs": meta.get("gmacs"), "file MB": meta.get("file_size_mb"),
            "input": "x".join(map(str, meta.get("input_size", []))) or None,
            "recipe": meta.get("recipe_command") or meta.get("recipe"), "sha256": weights.sha256[:12],
            "card": meta.get("card") and f"{_repository()}/blob/main/{meta['card']}", "card page": meta.get("card")}


@functools.cache
def _repository() -> str:
    """The project's home (its Homepage URL, as the installed package states it)."""
    try:
        urls = importlib.metadata.metadata("lightning-zoo").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        urls = []
    return next((u.split(", ", 1)[1] for u in urls if u.startswith("Homepage, ")), "https://github.com/lightning-zoo/zoo")


def measure_info(name: str) -> ModelInfo:
    """:func:`model_info` without zoo's own pretrained weights, measured now (builds the net on the meta device)."""
    entry = MODELS.get(name)
    params, macs, cam_layer, min_size = _measure(name)
    return ModelInfo(
        name=entry.name,
        family=entry.family,
        paper=entry.paper,
        input_size=entry.input_size,
        min_size=min_size if entry.min_size is None else entry.min_size,
        cam_layer=entry.cam_layer or cam_layer,
        params=params,
        macs=macs,
        arguments=builder_arguments(entry.builder),
        weights={**entry.weights, **(_torchvision_weights(name) if entry.torchvision_weights else {})},
        summary=summary(entry.builder),
    )






@functools.cache
def _torchvision_version() -> str | None:
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


def _torchvision_changed(name: str) -> bool:
    """Whether model `name` lists torchvision's weights, read by catalog.json from another torchvision than this."""
    return name in catalog()["torchvision_models"] and catalog()["torchvision"] != _torchvision_version()


def _described_info(name: str) -> ModelInfo:
    record = dict(catalog()["models"][name])
    record["input_size"] = tuple(record["input_size"])
    record["arguments"] = {k: ast.literal_eval(v) for k, v in record["arguments"].items()}
    return ModelInfo(**record)


def live_catalog() -> dict[str, Any]:
    """What catalog.json should hold, measured from the live registry (imports and builds every own model)."""
    MODELS._load_builtin()
    DATASETS._load_builtin()
    models = {}
    for name, entry in sorted(MODELS._entries.items()):
        if entry.builder.__module__.startswith("zoo.models."):
            record = asdict(measure_info(name))
            for key, value in record["arguments"].items():
                if ast.literal_eval(repr(value)) != value:
                    raise ZooError(f"model {name!r}: the default {key}={value!r} is no Python literal; the catalog "
                                   "cannot hold it")
                record["arguments"][key] = repr(value)
            models[name] = record
    datasets = {name: summary(cls) for name, cls in sorted(DATASETS._entries.items())
                if cls.__module__.startswith("zoo.data.")}
    return {"models": models, "datasets": datasets, "torchvision": _torchvision_version(),
            "torchvision_models": [name for name in models if MODELS._entries[name].torchvision_weights]}


def write_catalog() -> None:
    """Rewrite catalog.json from the live registry: run ``python -c "import zoo.catalog as c; c.write_catalog()"``
    after adding or changing one of zoo's own models or datasets (tests/test_registry.py says when)."""
    CATALOG.write_text(json.dumps(live_catalog(), indent=1) + "\n")
    catalog.cache_clear()


def _torchvision_weights(name: str) -> dict[str, dict[str, Any]]:
    """torchvision's pretrained weights for the net `name`, with torchvision's own metadata (ImageNet-1K)."""
    import torchvision.models as tvm

    found = {}
    for weights in tvm.get_model_weights(name):
        imagenet = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
        found[f"torchvision:{weights.name}"] = {
            "dataset": "ImageNet-1K", "acc@1": _number(imagenet.get("acc@1")), "acc@5": _number(imagenet.get("acc@5")),
            "params": weights.meta.get("num_params"), "recipe": weights.meta.get("recipe"),
        }
    return found


def _number(value: float | None) -> float | None:
    """None for a figure torchvision lists as NaN (weights for features only, never scored)."""
    return None if value is None or value != value else value


def count_macs(net: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu") -> int:
    """Multiply-accumulates of one forward pass of one input of `input_shape` (FlopCounterMode's FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(torch.zeros(1, *input_shape, device=device))
    return counter.get_total_flops() // 2


@functools.cache
def _measure(name: str) -> tuple[int, int, str | None, int]:
    """Parameters and MACs at the default input, on the meta device, and the net's own ``cam_layer`` and
    ``min_size`` (of its smallest form)."""
    import torch

    entry = MODELS.get(name)
    try:
        with torch.device("meta"):
            net = entry.builder()
            params = sum(p.numel() for p in net.parameters())
            macs = count_macs(net, entry.input_size, "meta")
    except Exception as exc:
        raise ZooError(
            f"model {name!r} fails with its default arguments on a {'x'.join(map(str, entry.input_size))} input "
            f"({type(exc).__name__}: {exc}); fix its builder or its registered input_size"
        ) from exc
    return params, macs, getattr(net, "cam_layer", None), _smallest_input(entry, net)


def _smallest_input(entry: ModelEntry, net: Any) -> int:
    """The ``min_size`` of the net's form for the smallest images (the net owns the figure; the registry asks it):
    the builder's net at ``image_size=1``, if it takes an input of the size it claims (on the meta device: shapes
    only), else `net`'s, the defaults' form (a builder without ``image_size``, or a net of a fixed input size)."""
    import torch

    if "image_size" not in builder_arguments(entry.builder):
        return getattr(net, "min_size", 1)
    try:
        with torch.device("meta"):
            small = entry.builder(image_size=1)
            size = getattr(small, "min_size", 1)
            small.eval()(torch.empty(1, entry.input_size[0], size, size))
    except Exception:  # noqa: BLE001 - no small form: the defaults' is the net's only one
        return getattr(net, "min_size", 1)
    return size


# -- the rows zoo models and zoo info print ----------------------------------------------------------------------


def model_rows(patterns: list[str], exclude: list[str], family: str | None, pretrained: bool,
               markdown: bool) -> tuple[list[str], list[list[str]]]:
    """``zoo models``: the header and a row per model (zoo's own without `patterns`), or with `pretrained` a row per
    zoo weight; papers cited short unless for `markdown` (docs/models.md)."""
    names = list_models(patterns or "*", exclude + ([] if patterns else ["*/*"]), family, pretrained)
    if pretrained and not names:
        raise UnknownNameError("no model has zoo's pretrained weights; install them: pip install -e "
                               "plugins/zoo-weights (in a checkout of zoo)")
    if pretrained:
        header = ["model", "weights", "dataset", "acc@1", "acc@5", "acc@1 TTA", "board acc@1", "params", "MACs",
                  "MB", "input"]
    else:
        header = ["model", "family", "params", "MACs", "input", "min", "paper"]
    rows = []
    for name in names:
        info = model_info(name)
        if pretrained:
            for weights, meta in info.weights.items():
                if weights.startswith("zoo:"):
                    board, std, macs, size = (meta[k] for k in ("leaderboard acc@1", "leaderboard std", "GMACs",
                                                                 "file MB"))
                    card = meta["card page"] and meta["card page"].removeprefix("docs/")  # beside docs/weights.md
                    rows.append([f"[{name}]({card})" if markdown and card else name, weights, meta["dataset"] or "-",
                                 *(_fixed(meta[k]) for k in ("acc@1", "acc@5", "acc@1 tta")),
                                 _fixed(board) + ("" if std is None else f"±{std:.2f}"),
                                 _human(meta["params"] or info.params),
                                 "-" if macs is None else _human(round(macs * 1e9)), _fixed(size),
                                 meta["input"] or "-"])
        else:
            rows.append([name, info.family, _human(info.params), _human(info.macs), "x".join(map(str, info.input_size)),
                         str(info.min_size), info.paper if markdown else cited(info.paper)])
    return header, rows


def info_rows(name: str) -> tuple[str, list[list[str]], tuple[list[str], list[list[str]]]]:
    """``zoo info NAME``: the model's summary, its facts as (key, value) rows, and its weights' header and rows."""
    info = model_info(name)
    rows = [
        ["name", info.name], ["family", info.family], ["paper", info.paper],
        ["params", f"{info.params:,}"], ["MACs", f"{info.macs:,}"],
        ["input size", "x".join(map(str, info.input_size))], ["minimum size", f"{info.min_size}x{info.min_size}"],
        ["CAM layer", info.cam_layer or "-"],
    ]
    rows += [[f"--model.{k}", repr(v)] for k, v in info.arguments.items()]
    keys = ["dataset", "split", "acc@1", "acc@5", "tta", "acc@1 tta", "acc@5 tta", "leaderboard acc@1",
            "leaderboard std", "leaderboard seeds", "params", "GMACs", "file MB", "input", "min_size", "recipe",
            "sha256", "card"]
    keys = [k for k in keys if any(meta.get(k) is not None for meta in info.weights.values())]
    weights = [[key, *(_cell(meta.get(key)) for meta in info.weights.values())] for key in keys]  # a column a weight
    return textwrap.fill(info.summary, 100), rows, (["", *info.weights], weights)


def cited(paper: str) -> str:
    """A paper as a terminal table cites it: its authors and year (``Krizhevsky et al. 2012``), the title left to
    ``zoo info`` (whole, the table was about 240 characters wide)."""
    cite = re.match(r".*?\b(?:1[89]|20)\d\d\b", paper)  # up to the first year
    short = cite.group(0) if cite else textwrap.shorten(paper, 44, placeholder="...")
    return short + (" (small-input form)" if "small-input form" in paper else "")


def _human(n: int) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= factor:
            return f"{n / factor:.2f}{suffix}"
    return f"{n}"


def _fixed(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and value >= 1000:
        return f"{value:,}"
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value))
    return str(value)
