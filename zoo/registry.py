"""Registries: names to model builders, to DataModules (:mod:`zoo.data`) and to pretrained weights.

Models register with :func:`register_model`; installed packages can add their own through the
entry-point group ``zoo.models``. zoo's own families (:mod:`zoo.models`) register on the first
look-up; the plugins load when a name that is not zoo's own is asked for, or a listing includes theirs.

Listing and describing zoo's own models and datasets imports nothing heavy: ``catalog.json`` beside this module
holds what :func:`model_info` measures for each of them and each DataModule's summary, written by
:func:`write_catalog` and checked against the live registry by tests/test_registry.py. Building a net is what
imports PyTorch.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
import functools
import importlib.metadata
import inspect
import json
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from zoo.errors import InputError, UnknownNameError, ZooError

if TYPE_CHECKING:
    import lightning as L
    import torch
    from torch import nn

T = TypeVar("T")


KNOWN_PLUGINS = {"timm": "zoo-timm", "tv": "zoo-torchvision"}
"""zoo's own plugins by the namespace of their names (``timm/resnet18``), for an error that says what to install."""


class Registry(Generic[T]):
    """Names to entries, with close-match suggestions and entry-point discovery.

    Args:
        kind: what an entry is, for messages ("model", "dataset").
        hint: the command that lists the entries, for messages.
        group: the entry-point group whose plugins are loaded on first look-up.
        on_plugin: called with (entry-point name, loaded object) for each plugin object that is
            not a module, so the owner can register it.
        builtin: zoo's own module that registers the built-in entries, imported on first look-up too (so
            ``import zoo`` stays light: nothing is built or imported before a name is asked for).
        catalog: the section of catalog.json that names and describes the built-in entries: listing them then
            imports nothing; asking for one still imports `builtin`.
    """

    def __init__(
        self,
        kind: str,
        hint: str,
        group: str | None = None,
        on_plugin: Callable[[str, Any], None] | None = None,
        builtin: str | None = None,
        catalog: str | None = None,
    ) -> None:
        self.kind = kind
        self.hint = hint
        self.group = group
        self.on_plugin = on_plugin
        self._entries: dict[str, T] = {}
        self.builtin = builtin
        self._discovered = group is None
        self._builtin_loaded = builtin is None
        self.catalog = catalog

    def add(self, name: str, entry: T) -> None:
        if not isinstance(name, str) or not name:
            raise ZooError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ZooError(
                f"{self.kind} name {name!r} is already registered; pick another name "
                f"(see: {self.hint})"
            )
        self._entries[name] = entry

    def get(self, name: str) -> T:
        self._load_builtin()
        if name not in self._entries:  # zoo's own names answer without loading the plugins (timm is slow to import)
            self.discover()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            namespace = str(name).split("/", 1)[0] if "/" in str(name) else None
            if namespace in KNOWN_PLUGINS and namespace not in self.plugins():
                raise UnknownNameError(f"unknown {self.kind} {name!r}: {namespace}/ names come from the plugin "
                                       f"{KNOWN_PLUGINS[namespace]}, which is not installed; install it: pip install "
                                       f"-e plugins/{KNOWN_PLUGINS[namespace]} (in a checkout of zoo)") from None
            close = self.closest(str(name))
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}; {hint}see: {self.hint}") from None

    def closest(self, name: str, limit: int = 3) -> list[str]:
        """Names most like `name`: the best fuzzy matches (near-ties only), else names that start with it."""
        scores = {n: difflib.SequenceMatcher(None, name, n).ratio() for n in self._entries}
        best = max(scores.values(), default=0.0)
        if best >= 0.8:
            return sorted((n for n, s in scores.items() if s >= best - 0.05), key=lambda n: -scores[n])[:limit]
        return sorted(n for n in self._entries if n.startswith(name))[:limit]

    def names(self, include: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[str]:
        """Sorted names matching any `include` pattern and no `exclude` pattern (fnmatch).

        With ``*/*`` excluded (zoo's own names), the plugins are not loaded: their models are namespaced.
        """
        include = [include] if isinstance(include, str) else list(include)
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        if "*/*" not in exclude:
            self.discover()
        return sorted(
            n
            for n in {*self._entries, *self.described()}
            if any(fnmatch.fnmatchcase(n, p) for p in include)
            and not any(fnmatch.fnmatchcase(n, p) for p in exclude)
        )

    def __contains__(self, name: object) -> bool:
        self._load_builtin()
        if name not in self._entries:
            self.discover()
        return name in self._entries

    def described(self) -> dict[str, Any]:
        """The built-in entries as catalog.json describes them, by name, read instead of importing `builtin`.
        Without a catalog section, `builtin` is imported and nothing is described."""
        if self.catalog is None:
            self._load_builtin()
            return {}
        return catalog()[self.catalog]

    def is_described(self, name: str) -> bool:
        """Whether `name` is a built-in entry that catalog.json describes (not one registered before them)."""
        return self.catalog is not None and name in catalog()[self.catalog] and (
            self._builtin_loaded or name not in self._entries)

    def plugins(self) -> list[str]:
        """The names of the installed plugins of the entry-point group, without loading them."""
        return sorted({ep.name for ep in importlib.metadata.entry_points(group=self.group)}) if self.group else []

    def _load_builtin(self) -> None:
        if not self._builtin_loaded:
            self._builtin_loaded = True  # before importing: the module registers through us
            importlib.import_module(self.builtin)

    def discover(self) -> None:
        """Load the plugins of the entry-point group, once. A broken plugin warns, never breaks zoo."""
        if self._discovered:
            return
        self._discovered = True  # before loading: a plugin's import registers through us
        self._load_builtin()
        for ep in importlib.metadata.entry_points(group=self.group):
            try:
                obj = ep.load()
                if not isinstance(obj, types.ModuleType) and self.on_plugin is not None:
                    self.on_plugin(ep.name, obj)
            except Exception as exc:  # a plugin is someone else's code: report, go on
                warnings.warn(
                    f"zoo plugin {ep.name!r} ({ep.value}) could not be loaded and is skipped: {exc}",
                    stacklevel=2,
                )


@dataclass(frozen=True)
class ModelEntry:
    """A registered model builder and its metadata."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    input_size: tuple[int, int, int]
    min_size: int | None
    cam_layer: str | None
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    torchvision_weights: bool = False


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


def _register_plugin_builder(name: str, obj: Any) -> None:
    if any(e.builder is obj for e in MODELS._entries.values()):
        return  # the plugin registered it itself with @register_model
    if not callable(obj):
        raise ZooError(f"entry point {name!r} is neither a module nor a model builder: {obj!r}")
    register_model(obj, name=name, family="plugin")


MODELS: Registry[ModelEntry] = Registry("model", "zoo models", "zoo.models", _register_plugin_builder, "zoo.models",
                                        "models")


def register_model(
    builder: Callable[..., nn.Module] | None = None,
    *,
    name: str | None = None,
    family: str,
    paper: str = "",
    input_size: tuple[int, int, int] | None = None,
    min_size: int | None = None,
    cam_layer: str | None = None,
    weights: dict[str, dict[str, Any]] | None = None,
    torchvision_weights: bool = False,
    arguments: Callable[..., nn.Module] | None = None,
) -> Any:
    """Register a model builder, as a decorator (``@register_model(family=...)``) or a call.

    A builder takes ``num_classes``, ``in_chans`` and ``image_size`` (plus its own keyword
    arguments) and returns an ``nn.Module``; nets that follow the net protocol
    (:class:`zoo.models.ZooNet`) work with every zoo feature. A family's variants are short builders that
    fix the architecture and pass the rest on (``def resnet18(**kwargs): return imagenet_resnet(BasicBlock,
    [2, 2, 2, 2], **kwargs)``); `arguments` names the family's builder, whose keyword-only arguments, their
    defaults and their docs the variant then shows (``zoo info``, ``--model.help``).

    Args:
        builder: the function (or class) that builds the net.
        name: the registry name; defaults to the builder's ``__name__``.
        family: the architecture family ("resnet", "mlp", ...).
        paper: the reference, e.g. "LeCun et al. 1998".
        input_size: the default input as (channels, height, width); by default the builder's own defaults of
            ``in_chans`` and ``image_size`` (so the two never disagree), else (3, 224, 224).
        min_size: the smallest height/width the net accepts in any of its forms, for a net that cannot say;
            ``None`` (zoo's nets): the built net's ``min_size`` attribute, of the form the builder makes for
            the smallest ``image_size`` (a family whose stem follows the image size then takes its small form).
        cam_layer: the module name of the last spatial feature map (what CAM reads); plugins whose
            nets know it only once built set a ``cam_layer`` attribute on the net instead.
        weights: pretrained weights the builder can load, name -> metadata (``acc@1``, ``acc@5``,
            ``params``, ``min_size``, ``recipe``); ``zoo info`` shows them.
        torchvision_weights: torchvision's pretrained weights of the same name load into the net
            (``weights="torchvision:IMAGENET1K_V1"``); ``zoo info`` lists them with torchvision's metadata.
        arguments: the family builder whose keyword-only arguments the variant (``def name(**kwargs)``) takes.
    """

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if arguments is not None:
            _take_arguments_of(fn, arguments)
        defaults = builder_arguments(fn)
        chans, size = defaults.get("in_chans"), defaults.get("image_size")
        own = (chans if isinstance(chans, int) else 3, *(2 * [size if isinstance(size, int) else 224]))
        entry = ModelEntry(
            name=name or fn.__name__,
            builder=fn,
            family=family,
            paper=paper,
            input_size=tuple(input_size or own),
            min_size=min_size,
            cam_layer=cam_layer,
            weights=dict(weights or {}),
            torchvision_weights=torchvision_weights,
        )
        MODELS.add(entry.name, entry)
        return fn

    return add if builder is None else add(builder)


def _take_arguments_of(variant: Callable[..., Any], family: Callable[..., Any]) -> None:
    """Give `variant` (``def resnet18(**kwargs)``) the keyword-only arguments of `family` and their docs."""
    signature = inspect.signature(family)
    taken = [p for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY]
    variant.__signature__ = signature.replace(parameters=taken)  # type: ignore[attr-defined]
    doc = inspect.getdoc(family) or ""
    args = doc[doc.index("Args:"):] if "Args:" in doc else ""
    variant.__doc__ = f"{inspect.getdoc(variant) or variant.__name__}\n\n{args}".strip()


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the plain ``nn.Module`` registered as `name` with the builder's arguments, untrained.

    :func:`zoo.create_model` is the public way, with pretrained weights too.
    """
    entry = MODELS.get(name)
    _check_arguments(entry, kwargs)
    return entry.builder(**kwargs)


def default_arguments(name: str) -> dict[str, int | None]:
    """The net's own ``num_classes``, ``in_chans`` and ``image_size``: its builder's defaults, else (for the
    input) its registered ``input_size``; None where it has none. What :func:`create_model` builds without them."""
    entry = MODELS.get(name)
    given = builder_arguments(entry.builder)
    registered = {"num_classes": None, "in_chans": entry.input_size[0], "image_size": entry.input_size[1]}
    return {key: given[key] if isinstance(given.get(key), int) else registered[key] for key in registered}


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
    zoo_weights = {w.name: {"dataset": w.meta.get("dataset"), "acc@1": w.meta.get("top1"),
                            "leaderboard acc@1": w.meta.get("leaderboard_top1"), "params": w.meta.get("params"),
                            "input": "x".join(map(str, w.meta.get("input_size", []))) or None,
                            "sha256": w.sha256[:12]} for w in list_weights(name)}
    return dataclasses.replace(info, weights={**info.weights, **zoo_weights})


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


def summary(obj: Any) -> str:
    """The first paragraph of `obj`'s docstring, on one line."""
    return " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())


# -- catalog.json: zoo's own models and datasets, described without importing them --------------------------------

CATALOG = Path(__file__).with_name("catalog.json")


@functools.cache
def catalog() -> dict[str, Any]:
    """catalog.json: ``models`` (name -> :class:`ModelInfo` fields, default arguments as Python literals),
    ``datasets`` (name -> summary), and the ``torchvision`` version whose weights ``torchvision_models`` list."""
    return json.loads(CATALOG.read_text())


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
    """Rewrite catalog.json from the live registry: run ``python -c "import zoo.registry as r; r.write_catalog()"``
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


def builder_arguments(builder: Callable[..., Any]) -> dict[str, Any]:
    """The builder's keyword arguments and their defaults (``inspect.Parameter.empty`` if none)."""
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


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


def _check_arguments(entry: ModelEntry, kwargs: dict[str, Any]) -> None:
    signature = inspect.signature(entry.builder)
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    check_arguments("model", entry.name, list(signature.parameters), kwargs, f"zoo info {entry.name}")


def check_arguments(kind: str, name: str, takes: list[str], kwargs: dict[str, Any], see: str) -> None:
    """An :class:`InputError` naming the `kwargs` that `name` does not take, the closest one it does, and the rest."""
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        close = difflib.get_close_matches(unknown[0], takes, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"{kind} {name!r} has no argument {', '.join(map(repr, unknown))}; {hint}it takes: "
                         f"{', '.join(takes)} (see: {see})")


def datamodule_arguments(cls: type) -> list[str]:
    """The keyword arguments a DataModule class takes: its own, then its bases' while each passes on ``**kwargs``."""
    takes: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        takes += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name != "self" and p.name not in takes]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return takes


# -- datasets (zoo.data) -------------------------------------------------------------------

DATASETS: Registry[type[L.LightningDataModule]] = Registry("dataset", "zoo data list", builtin="zoo.data",
                                                          catalog="datasets")

D = TypeVar("D", bound=type)


def dataset_summary(name: str) -> str:
    """The first paragraph of the registered DataModule's documentation (zoo's own read from catalog.json)."""
    return DATASETS.described()[name] if DATASETS.is_described(name) else summary(DATASETS.get(name))


def dataset_name(cls: type) -> str | None:
    """The registry name of a DataModule class (None for a class that is not registered)."""
    return next((n for n in DATASETS.names() if DATASETS.get(n) is cls), None)


def register_datamodule(name: str) -> Callable[[D], D]:
    """Register a LightningDataModule class under `name` (it then works as ``--data NAME``).

    The class should offer ``num_classes``, ``in_chans``, ``image_size`` and ``class_names``
    after ``__init__``: the CLI links them into the model.
    """

    def add(cls: D) -> D:
        DATASETS.add(name, cls)
        return cls

    return add


# -- pretrained weights (zoo.weights reads the files) -------------------------------------------


@dataclass(frozen=True)
class Weights:
    """One set of pretrained weights for one registered model.

    Attributes:
        model: the registry name of the net (``resnet20``).
        tag: what they were trained on (``fashion_mnist``); ``zoo:TAG`` names them.
        sha256: the file's SHA-256, checked before every read.
        file: the file, for weights shipped in a package (``.safetensors`` or ``.pth``)...
        url: ...or where to download it (https in practice).
        arguments: the builder arguments the weights fit (``num_classes``, ``in_chans``, ``image_size``).
        meta: ``dataset``, ``top1`` (these weights on the test set), ``leaderboard_top1`` (the recipe's mean
            over seeds), ``recipe`` (the config that trained them), ``params``, ``input_size``, ``mean`` and
            ``std`` (the normalization the net expects), ``class_names``, ``licence``.
    """

    model: str
    tag: str
    sha256: str
    file: str | None = None
    url: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"zoo:{self.tag}"

    @property
    def normalization(self) -> tuple[list[float], list[float]] | None:
        """The (mean, std) the net expects its images normalized with, or None if not recorded."""
        mean, std = self.meta.get("mean"), self.meta.get("std")
        return (list(mean), list(std)) if mean is not None and std is not None else None

    def transforms(self) -> Callable[[Any], torch.Tensor]:
        """The preprocessing these weights expect, as torchvision's ``Weights.transforms()``: a PIL image or an
        image tensor (uint8 0..255 or float 0..1, ``[C, H, W]`` or a batch) to the normalized float tensor the net
        takes: converted to the weights' channels (grey or RGB), resized to their input size, normalized with their
        mean and std.

        Example:
            >>> preprocess = zoo.weights.get_weights("resnet20", "fashion_mnist").transforms()  # doctest: +SKIP
            >>> net(preprocess(PIL.Image.open("shoe.png")).unsqueeze(0))  # doctest: +SKIP
        """
        import torch
        from torchvision.transforms import v2

        size = self.arguments.get("image_size", 224)
        channels, height, width = self.meta.get("input_size") or (self.arguments.get("in_chans", 3), size, size)
        steps: list[Any] = [v2.ToImage(), v2.Grayscale(1) if channels == 1 else v2.RGB(),
                            v2.Resize((height, width), antialias=True), v2.ToDtype(torch.float32, scale=True)]
        if self.normalization is not None:
            steps.append(v2.Normalize(*self.normalization))
        return v2.Compose(steps)


WEIGHTS: Registry[Weights] = Registry("weights", "zoo models --pretrained", "zoo.weights")


def register_weights(weights: Weights) -> Weights:
    """Make `weights` loadable as ``zoo:TAG`` for its model (plugins call this when imported)."""
    if (weights.file is None) == (weights.url is None):
        raise ZooError(f"weights {weights.model}:{weights.tag} need exactly one of file and url")
    WEIGHTS.add(f"{weights.model}:{weights.tag}", weights)
    return weights


def list_weights(model: str | None = None) -> list[Weights]:
    """zoo's registered weights, of one model or of all, sorted by model and tag."""
    return [WEIGHTS.get(key) for key in WEIGHTS.names() if model is None or key.split(":")[0] == model]


def get_weights(model: str, tag: str) -> Weights:
    """The weights ``zoo:TAG`` of `model`; an error lists the ones that exist."""
    try:
        return WEIGHTS.get(f"{model}:{tag}")
    except UnknownNameError:
        have = [w.name for w in list_weights(model)]
        listed = f"{model} has: {', '.join(have)}" if have else (
            f"{model} has none; models with zoo weights: "
            f"{', '.join(sorted({w.model for w in list_weights()})) or 'none (pip install -e plugins/zoo-weights)'}")
        raise UnknownNameError(f"unknown weights 'zoo:{tag}' for {model!r}; {listed} (see: zoo models --pretrained)"
                               ) from None
