"""Registries: names to model builders, to DataModules (:mod:`zoo.data`) and to pretrained weights.

Models register with :func:`register_model`; installed packages can add their own through the
entry-point group ``zoo.models``. zoo's own families (:mod:`zoo.models`) register on the first
look-up; the plugins load when a name that is not zoo's own is asked for, or a listing includes theirs.

Listing zoo's own models and datasets imports nothing heavy: their names and descriptions are read from
catalog.json (:mod:`zoo.catalog`, which also measures and describes each model). Pretrained weights have their own
registry (:mod:`zoo.pretrained`). Building a net is what imports PyTorch.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib.metadata
import inspect
import json
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from zoo.errors import InputError, UnknownNameError, ZooError

if TYPE_CHECKING:
    import lightning as L
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


def own_arguments(name: str) -> dict[str, Any]:
    """The net's own builder arguments (not classes, channels or image size) that have a default other than None,
    with it: what a net built without them gets."""
    return {key: value for key, value in builder_arguments(MODELS.get(name).builder).items()
            if key not in ("num_classes", "in_chans", "image_size") and value not in (None, inspect.Parameter.empty)}


CATALOG = Path(__file__).with_name("catalog.json")


@functools.cache
def catalog() -> dict[str, Any]:
    """catalog.json (:mod:`zoo.catalog` writes it): ``models`` (name -> :class:`zoo.catalog.ModelInfo` fields,
    default arguments as Python literals), ``datasets`` (name -> summary), and the ``torchvision`` version whose
    weights ``torchvision_models`` list."""
    return json.loads(CATALOG.read_text())


def summary(obj: Any) -> str:
    """The first paragraph of `obj`'s docstring, on one line."""
    return " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())





















def builder_arguments(builder: Callable[..., Any]) -> dict[str, Any]:
    """The builder's keyword arguments and their defaults (``inspect.Parameter.empty`` if none)."""
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }








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
