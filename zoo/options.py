"""What ``zoo fit``, ``validate`` and ``test`` accept, in the user's words and back (:mod:`zoo.train` runs them).

- The classes ``--model NAME`` picks: one :class:`ImageClassifier` subclass per registered net, whose signature is
  the builder's arguments followed by the classifier's, so ``--model.hidden`` and ``--model.help NAME`` exist and a
  saved config names its class (``zoo.train.lenet5``: :mod:`zoo.train` answers for them, as configs saved since
  the first release expect).
- The shorthands: registry names for ``--model``/``--data``, ``--finetune STRATEGY``, a shipped ``--config NAME``,
  and zoo's defaults (lenet5 on digits).
- What zoo's weights imply for the config (:func:`as_the_weights_were_made`), what a checkpoint rebuilds
  (:func:`checkpoint_config`), and the checks of a parsed config.
- An option error as one line with the closest valid option; ``--help``'s first screen.
"""

import argparse
import contextlib
import difflib
import importlib
import inspect
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docstring_parser
import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException

from zoo.checkpoint import CheckpointRecord
from zoo.classifier import ImageClassifier, classifier_for
from zoo.configs import config_argument
from zoo.errors import InputError, zoo_error_behind
from zoo.pretrained import implied_arguments, zoo_weights
from zoo.registry import DATASETS, MODELS, ModelEntry, builder_arguments
from zoo.runs import COUNTS_OR_FRACTIONS

LIGHTNING_COMMANDS = ("fit", "validate", "test")  # zoo predict is zoo's own (zoo/predict.py)
LINKED = ("num_classes", "in_chans", "image_size", "class_names")  # data -> model
DEFAULT_MODEL, DEFAULT_DATA = "lenet5", "digits"
CLASS_MODULE = "zoo.train"  # where saved configs find the classes (zoo.train.lenet5)
_CLASSES: dict[str, type[ImageClassifier]] = {}


# -- one ImageClassifier subclass per registered model ------------------------------------------


def class_identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def classifier_class(name: str) -> type[ImageClassifier]:
    """The ImageClassifier subclass for the registered model `name` (made once, then reused)."""
    ident = class_identifier(name)
    if ident in _CLASSES:
        return _CLASSES[ident]
    entry = MODELS.get(name)
    cls = type(ident, (classifier_for(name),), {
        "__init__": _classifier_init(entry),
        "__module__": CLASS_MODULE,
        "__qualname__": ident,
        "__doc__": _merged_doc(entry),
        "registry_name": entry.name,
    })
    _CLASSES[ident] = cls
    return cls


def saved_class(module: str, attr: str) -> type[ImageClassifier]:
    """``<module>.<attr>`` for a registered model (``zoo.train.lenet5``, ``zoo.train.timm_resnet18``): the class a
    saved config names, for :mod:`zoo.train`'s ``__getattr__``.

    zoo's own names answer without loading the plugins; the import system's questions (``__path__``, asked by every
    ``from zoo.train import ...``) are not model names and never load them.
    """
    if not attr.startswith("__"):
        if attr in MODELS:  # zoo's own names (identifiers already)
            return classifier_class(attr)
        for name in MODELS.names("*/*"):  # plugin names: timm/resnet18 is zoo.train.timm_resnet18
            if class_identifier(name) == attr:
                return classifier_class(name)
    raise AttributeError(f"module {module!r} has no attribute {attr!r}")


def _classifier_init(entry: ModelEntry) -> Any:
    builder_params = [p for p in inspect.signature(entry.builder).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    taken = {p.name for p in builder_params}
    classifier_params = [p for n, p in inspect.signature(ImageClassifier.__init__).parameters.items()
                         if n not in ("self", "model", "model_kwargs") and n not in taken]
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    params += [_unset(p) for p in builder_params] + [p.replace(kind=p.KEYWORD_ONLY) for p in classifier_params]
    name, base = entry.name, classifier_for(entry.name)

    def __init__(self: ImageClassifier, **kwargs: Any) -> None:
        base.__init__(self, **{**kwargs, "model": name})

    __init__.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    __init__.__doc__ = _merged_doc(entry)
    return __init__


def _unset(param: inspect.Parameter) -> inspect.Parameter:
    """A builder argument as the command line takes it: None (unset) by default, so that a config and the command
    line can leave it to zoo's weights (the converged LeNet-5's ReLU) or to the builder's own default, which the help
    states (:func:`_merged_doc`). LightningCLI passes every argument it has, so a real default here would read as
    the user's choice."""
    if param.default is param.empty or param.default is None:
        return param.replace(kind=param.KEYWORD_ONLY)
    annotation = param.annotation if param.annotation is param.empty else param.annotation | None
    return param.replace(kind=param.KEYWORD_ONLY, default=None, annotation=annotation)


def _merged_doc(entry: ModelEntry) -> str:
    """The builder's docstring, each argument with its default, and the classifier's argument docs appended (for
    ``--help``: the generated signature defaults the builder's arguments to None, :func:`_unset`)."""
    builder = docstring_parser.parse(inspect.getdoc(entry.builder) or entry.name)
    classifier = docstring_parser.parse(inspect.getdoc(ImageClassifier) or "")
    defaults = builder_arguments(entry.builder)
    for param in builder.params:
        default = defaults.get(param.arg_name)
        if default not in (None, inspect.Parameter.empty) and "default" not in (param.description or "").lower():
            unset = f"(unset: {default}, or what zoo's weights were made with)"
            param.description = f"{param.description or ''} {unset}".strip()
    have = {p.arg_name for p in builder.params}
    builder.meta += [p for p in classifier.params if p.arg_name not in have | {"model", "**model_kwargs"}]
    return docstring_parser.compose(builder, style=docstring_parser.DocstringStyle.GOOGLE)


# -- the shorthands ------------------------------------------------------------------------------


def data_class_path(name: str) -> str:
    cls = DATASETS.get(name)
    return f"{cls.__module__}.{cls.__qualname__}"


def _looks_like_path_or_yaml(value: str) -> bool:
    return any(c in value for c in ".{:/\n") or Path(value).exists()


def refuse_names_read_as_files(config: str) -> None:
    """An InputError for a config (a path or YAML text) whose ``model: NAME`` or ``data: NAME`` names a file or
    folder of the working folder: the parser (jsonargparse) reads a value that is a path as that file's contents, so a
    file named ``lenet5`` beside the config would replace the registered lenet5 with no word."""
    import yaml

    try:
        text = config if "\n" in config or config.lstrip().startswith("{") else Path(config).read_text()
        loaded = yaml.safe_load(text)
    except (OSError, UnicodeError, yaml.YAMLError):
        return  # the parser says what is wrong with it
    if not isinstance(loaded, dict):
        return
    for section in (loaded, *(loaded.get(c) for c in LIGHTNING_COMMANDS)):
        for key, registry in (("model", MODELS), ("data", DATASETS)):
            value = section.get(key) if isinstance(section, dict) else None
            if isinstance(value, str) and value in registry and Path(value).exists():
                kind = "folder" if Path(value).is_dir() else "file"
                raise InputError(f"the config gives {key}: {value}, and this folder has a {kind} named {value!r}, "
                                 f"which the config parser would read in place of the registered {key}; rename or "
                                 f"move that {kind}, or run from another folder")


def expand_shorthands(argv: list[str]) -> list[str]:
    """Replace ``--model NAME`` and ``--data NAME`` (registry names) by their class paths,
    ``--finetune STRATEGY`` by ``--finetune.strategy STRATEGY``, and ``--config NAME`` by the shipped config's path.

    Without ``--model``/``--data`` (and without ``--config``), fit/validate/test get lenet5 and
    digits. They are added as arguments, not parser defaults: jsonargparse would carry a default
    class's arguments over to the class the user picks.
    """
    out = list(argv)
    for i, arg in enumerate(out):  # --config NAME: a shipped config (zoo/configs/NAME.yaml); a missing file said so
        if arg in ("--config", "-c") and i + 1 < len(out):
            out[i + 1] = config_argument(out[i + 1])
            refuse_names_read_as_files(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = "--config=" + config_argument(arg.split("=", 1)[1])
            refuse_names_read_as_files(out[i].removeprefix("--config="))
    given = {a.split("=", 1)[0] for a in out}
    asks_help = any(a in ("-h", "--help") or a.endswith(".help") for a in given)
    if out and out[0] in LIGHTNING_COMMANDS and not {"--config", "-c"} & given and not asks_help:
        defaults = ([] if "--model" in given else ["--model", DEFAULT_MODEL]) + \
            ([] if "--data" in given else ["--data", DEFAULT_DATA])
        out = [out[0], *defaults, *out[1:]]  # first: later --model.x / --data.x options apply to them
    for i, arg in enumerate(out):  # --finetune STRATEGY: the callback's first argument
        if arg == "--finetune" and i + 1 < len(out) and not _looks_like_path_or_yaml(out[i + 1]):
            out[i] = "--finetune.strategy"
        elif arg.startswith("--finetune=") and not _looks_like_path_or_yaml(arg.split("=", 1)[1]):
            out[i] = "--finetune.strategy=" + arg.split("=", 1)[1]
    for i, arg in enumerate(out):
        for key, registry, resolve in (
            ("--model", MODELS, lambda n: f"{CLASS_MODULE}.{class_identifier(n)}"),
            ("--data", DATASETS, data_class_path),
        ):
            if arg == key and i + 1 < len(out):
                j, value = i + 1, out[i + 1]
            elif arg.startswith(key + "="):
                j, value = i, arg.split("=", 1)[1]
            else:
                continue
            if value in registry:
                expanded = resolve(value)
            elif _looks_like_path_or_yaml(value):
                continue
            else:
                registry.get(value)  # raises UnknownNameError with suggestions
            out[j] = expanded if j != i else f"{key}={expanded}"
    return out


def as_the_weights_were_made(config: Any, given: Mapping[str, str]) -> None:
    """With zoo's weights (``--model.weights zoo:TAG``) the data is sized as they expect, as torchvision's
    ``weights.transforms()`` resizes: data with an ``image_size`` it was not given (``--data.image_size`` on the
    command line or in a config; ``--model.image_size``) takes the size :func:`zoo.pretrained.implied_arguments`
    decides, and the link carries it into the model. The net's own arguments need nothing here: the generated
    classes leave them None until given (:func:`_unset`), and :class:`ImageClassifier` asks the same function."""
    init = config.model.get("init_args")
    data = config.data.get("init_args") if config.get("data") else None
    if init is None or data is None or "image_size" not in data or "--model.image_size" in given:
        return
    module, _, name = config.model.class_path.rpartition(".")
    model = getattr(getattr(importlib.import_module(module), name), "registry_name", None) or init.get("model")
    made = zoo_weights(model, init.get("weights"))
    if made is not None and data["image_size"] is None:  # only zoo's weights record what they were made with
        data["image_size"] = implied_arguments(model, made)["image_size"]


def checkpoint_config(ckpt_path: str, given: Mapping[str, str], chose_data: bool) -> tuple[dict, dict]:
    """With ``--ckpt_path``, the config that rebuilds the checkpoint's model (its registry name and arguments win:
    a ``--model`` naming another net is refused) and, unless the user chose data, names the data it was trained
    on; and the values linked from the data (``num_classes``, ...) the checkpoint holds, to check the data against.
    zoo checkpoints hold ImageClassifier's own arguments, not LightningCLI's layout, so they load without the CLI."""
    record = CheckpointRecord.read(ckpt_path)
    hparams = dict(record.hyper_parameters)
    name, chosen = hparams.pop("model"), given.get("--model")
    if chosen is not None and chosen != name:
        raise InputError(f"the checkpoint {ckpt_path} holds a {name}, but --model {chosen} was given; leave "
                         f"--model out (the checkpoint's model is rebuilt) or give a checkpoint of a {chosen}")
    linked = {key: hparams.pop(key, None) for key in LINKED}
    update = {"model": {"class_path": f"{CLASS_MODULE}.{classifier_class(name).__qualname__}", "init_args": hparams}}
    if not chose_data and record.data.name in DATASETS:  # the data it was trained on
        update["data"] = {"class_path": data_class_path(record.data.name), "init_args": record.data.arguments}
    return update, linked


def check_config(config: Any) -> None:
    """A parsed config names a model and data, and neither of LightningCLI's own ``--optimizer`` and
    ``--lr_scheduler``, which would replace zoo's optimizer setup."""
    for key, where in (("model", "zoo models"), ("data", "zoo data list")):  # a config without one (zoo adds
        if config.get(key) is None:                                       # lenet5/digits only without --config)
            raise InputError(f"no {key} given: the config names none; add --{key} NAME (see: {where}) or a "
                             f"{key}: section to the config")
    for key in ("optimizer", "lr_scheduler"):
        chosen = config.get(key)
        if chosen is not None:
            name = str(getattr(chosen, "class_path", chosen)).rsplit(".", 1)[-1]
            raise InputError(f"--{key} is LightningCLI's and would replace zoo's optimizer setup (its parameter "
                             "groups: no weight decay on biases and norms, fine-tuning's rates, bias_lr_scale); "
                             f"give --model.{key} {name} instead")


def check_linked(given: Mapping[str, str], datamodule: Any) -> None:
    """A ``--model.num_classes`` (``in_chans``, ``image_size``) given must agree with the data it is linked from."""
    for key in ("num_classes", "in_chans", "image_size"):
        value, data_value = given.get(f"--model.{key}"), getattr(datamodule, key, None)
        if value is not None and data_value is not None and value != str(data_value):
            raise InputError(f"--model.{key} {value} contradicts the data, which gives {key}={data_value}; the model "
                             f"takes {key} from the data: leave --model.{key} out, or choose data with {key}={value}")


def given_options(argv: list[str]) -> dict[str, str]:
    """The ``--key value`` and ``--key=value`` pairs of a command line, the last of each key winning."""
    given = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            key, sep, value = arg.partition("=")
            if sep:
                given[key] = value
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                given[key] = argv[i + 1]
    return given


def batch_counts(config: Any, given: Mapping[str, str]) -> dict[str, int]:
    """A whole number given for ``--trainer.limit_*_batches`` is a number of batches, as ``Trainer(
    limit_train_batches=1)`` takes it, and ``1.0`` is all of them. jsonargparse tries the annotation's types in
    order, and typing's cache makes Lightning's ``Optional[Union[int, float]]`` read ``Union[float, int, None]``
    once any module has spelt it that way (Lightning issue 21259): "1" then meant 1.0, a whole epoch, from the
    command line, ``zoo.fit``'s options and a YAML config alike, and one batch could not be asked for. The value as
    written decides: the command line's (`given`), else the last config file that sets it. Returns the counts, for
    the Trainer's arguments (jsonargparse's instantiation reads them as floats again), and sets them in `config`
    (the run's saved config.yaml)."""
    import yaml

    files = [yaml.safe_load(Path(str(f)).read_text()) for f in (config.get("config") or [])]
    counts = {}
    for key in COUNTS_OR_FRACTIONS:
        written: Any = given.get(f"--trainer.{key}")
        if written is None:
            written = next((f["trainer"][key] for f in reversed(files) if isinstance(f, dict) and
                            isinstance(f.get("trainer"), dict) and key in f["trainer"]), None)
        if isinstance(written, str) and written.strip().isdigit():
            written = int(written)
        if type(written) is int and config.trainer.get(key) == written:  # a YAML `true` is no count
            config.trainer[key] = counts[key] = written
    return counts


TOP_LEVEL_OPTIONS = ("config", "print_config", "seed_everything", "trainer", "model", "data", "ckpt_path",
                     "checkpoint", "finetune", "verbose")
"""The first parts of ``zoo fit``'s options (--model, --trainer.max_epochs, ...), for "did you mean"."""


def _closest(name: str, valid: Sequence[str]) -> str | None:
    """The valid name `name` begins (``--seed`` for ``--seed_everything``: what argparse's abbreviations took), else
    the one most like it."""
    close = [v for v in valid if name and v.startswith(name)] or difflib.get_close_matches(name, valid, n=1)
    return close[0] if close else None


def explain_option_error(message: str, subcommand: str, argv: Sequence[str] = ()) -> str:
    """One line for the parser's error: the option, the closest valid one, and where to look.

    jsonargparse reports an unknown option of a class as a nested union error of a dozen lines, and
    a logger whose package is missing as a traceback; a zoo user gets the gist.
    """
    help_hint = f"see: zoo {subcommand} --help"
    required = re.search(r"Requirement '([^']+)' not met", message)
    if required:
        owner = re.search(r"class_path '([\w.]+)'", message)
        what = owner.group(1).rsplit(".", 1)[-1] if owner else "the class you chose"
        return f"{what} needs the package {required.group(1)}: pip install '{required.group(1)}'"
    option = re.search(r"Option '(\w+)' is not accepted", message)
    keys = re.findall(r'Parser key "([\w.]+)"', message)
    owner = re.search(r"class_path '([\w.]+)'", message)
    if option and keys:
        flag = "--" + ".".join([*keys, option.group(1)])
        valid: list[str] = []
        if owner and len(keys) == 1:
            module, _, name = owner.group(1).rpartition(".")
            cls = getattr(importlib.import_module(module), name, None)
            valid = [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")] if cls else []
        owner_name = owner.group(1).rsplit(".", 1)[-1] if owner and len(keys) == 1 else keys[-1]
        later = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == f"--{keys[0]}" and flag in argv[:i]]
        if owner_name == ImageClassifier.__name__ and later and later[0] in MODELS:  # --model.x before --model NAME
            close = _closest(option.group(1), list(inspect.signature(classifier_class(later[0])).parameters))
            hint = f" (did you mean --{keys[0]}.{close}?)" if close else ""
            return f"{flag} comes before --{keys[0]} {later[0]}: give --{keys[0]} first{hint}; {help_hint}"
        close = _closest(option.group(1), valid)
        hint = f"did you mean --{keys[0]}.{close}? " if close else ""
        return f"{flag} is not an option of {owner_name}; {hint}{help_hint}"
    if keys:  # a value of the wrong type: the line after the innermost key says what was expected
        # (a callable's error repeats the whole value after its own: "... Got value: Namespace(class_path=...)")
        lines = [re.sub(r"\. Got value: Namespace\(.*$", "", line.strip().removeprefix("- "))
                 for line in message.splitlines()]
        # the innermost key may end a line (a callable's init_args: "... expects a function ...: Parser key "lr":")
        last = max((i for i, line in enumerate(lines) if f'Parser key "{keys[-1]}"' in line), default=0)
        detail = next((line for line in lines[last + 1:]  # not jsonargparse's try of the value as a config file
                       if line and not line.startswith("Expected a path but")), "not accepted")
        if detail.startswith("Does not validate"):  # a union: say which types it takes and what was given
            subtypes = next((line for line in lines[last:] if line.startswith("Subtypes:")), "")
            given = next((line for line in lines[last:] if line.startswith("Given value:")), "")
            detail = (f"expected one of {subtypes.removeprefix('Subtypes:').strip()}, "
                      f"got {given.split(':', 1)[-1].strip()}")
        detail = re.sub(r"<class '([\w.]+)'>", r"\1", detail).rstrip(".")
        return f"--{'.'.join(keys)}: {detail}; {help_hint}"
    unknown = re.search(r"unrecognized arguments: (--[\w.]+)", message)
    if unknown:
        flag = unknown.group(1)
        group, _, name = flag[2:].rpartition(".")
        valid = list(inspect.signature(L.Trainer).parameters) if group == "trainer" else \
            list(TOP_LEVEL_OPTIONS) if not group else []
        close = _closest(name, valid)
        hint = f"did you mean --{group + '.' if group else ''}{close}? " if close else ""
        return f"unknown option {flag}; {hint}{help_hint}"
    return f"{message.strip().splitlines()[0]}; {help_hint}"


# -- --help: the first screen --------------------------------------------------------------------

USUAL_TRAINER = ("max_epochs", "precision", "accelerator", "devices", "strategy", "num_nodes", "logger", "callbacks",
                 "default_root_dir", "accumulate_grad_batches", "gradient_clip_val", "limit_train_batches",
                 "fast_dev_run", "overfit_batches", "deterministic")


HELP_GROUPS = {  # an option's first part -> the heading of its group on the first screen, in this order
    "-h": "options", "-c": "options", "--seed_everything": "options",
    "--trainer": "Lightning's Trainer: the usual options (every one: --help_all)",
    "--model": "the model", "--data": "the data", "--finetune": "fine-tuning pretrained weights (docs/transfer.md)",
    "--ckpt_path": "resuming",
}


HEADINGS = {
    "A DataModule standardizes": "the data: a registered dataset (--data NAME):",
    "Base class for all optimizers": "LightningCLI's --optimizer, which zoo refuses: give --model.optimizer:",
    "(<class 'torch.optim.lr_scheduler.LRScheduler'>": "LightningCLI's --lr_scheduler, which zoo refuses: give "
                                                      "--model.lr_scheduler:",
}


def help_screen(text: str, subcommand: str, full: bool) -> str:
    """The parser's help `text` with zoo's group headings; unless `full`, cut to :func:`first_screen`."""
    for heading, ours in HEADINGS.items():  # jsonargparse titles groups with a base class's docstring or its repr
        text = re.sub(f"^{re.escape(heading)}.*:$", ours, text, flags=re.M)
    return text if full or not text.startswith("usage:") else first_screen(text, subcommand)


def first_screen(text: str, subcommand: str) -> str:
    """The parser's help cut to zoo's groups and the usual Trainer options, the registries' names in place of the
    class paths argparse lists, and where the rest is."""
    from zoo.registry import DATASETS, MODELS

    groups: dict[str, list[str]] = {heading: [] for heading in HELP_GROUPS.values()}
    entry: list[str] | None = None
    for line in text.split("\n\n", 1)[-1].splitlines():  # after the usage lines
        if line.startswith("  -"):
            name = line.split()[0].rstrip(",").split("=")[0]
            group = HELP_GROUPS.get(name.split(".")[0] if name.startswith("--") else name)
            wanted = group is not None and (not name.startswith("--trainer.") or
                                            name.removeprefix("--trainer.") in USUAL_TRAINER)
            wanted = wanted and name not in ("--model", "--data", "--trainer", "--finetune", "--weights_only")
            entry = [line] if wanted else None
            if entry is not None:
                groups[group].append(entry)  # type: ignore[index]  (shortened below)
        elif line.startswith("   ") and entry is not None:
            entry.append(line)
        else:
            entry = None
    groups[HELP_GROUPS["--model"]][:0] = [
        ["  --model NAME", f"a registered model (default lenet5): {', '.join(MODELS.names(exclude='*/*'))}; the "
         "timm/ and tv/ plugins' too (zoo models lists them)"],
        ["  --model.weights SOURCE", "pretrained weights: zoo:fashion_mnist, torchvision:IMAGENET1K_V1, timm:NAME, "
         "a .ckpt (docs/transfer.md)"],
        ["  --model.optimizer NAME, --model.optimizer.lr LR, --model.lr_scheduler NAME",
         "zoo's optimizer setup: SGD, AdamW, ...; zoo.schedules.Schedule (docs/training.md)"]]
    groups[HELP_GROUPS["--data"]][:0] = [
        ["  --data NAME", f"a registered dataset (default digits): {', '.join(DATASETS.names())} (zoo data list)"]]
    body = [f"{heading}:\n" + "\n".join(_short_entry(e) for e in entries)
            for heading, entries in groups.items() if entries]
    return (f"usage: zoo {subcommand} [--config CONFIG] [--model NAME] [--data NAME] [--OPTION VALUE ...]\n\n"
            + "\n\n".join(body) + f"\n\nEvery option, Lightning's Trainer, checkpointing and the rest: zoo "
            f"{subcommand} --help_all. A model's own options: --model.help NAME (e.g. --model.help resnet20).")


def _short_entry(lines: list[str]) -> str:
    """One option of the help in a few lines: its first two sentences and its default, not jsonargparse's type and
    list of every known subclass."""
    option, _, first = lines[0].strip().partition("  ")
    text = " ".join([first.strip(), *(line.strip() for line in lines[1:])]).strip()
    default = re.search(r"default: ([^,()]+)[,)]", text)
    text = re.sub(r"\s*\(type: .*$", "", text)  # the default said below is zoo's (max_epochs 60), not Lightning's
    sentences = re.split(r"(?<=\.) ", text)
    text = " ".join(([s for s in sentences if "efault" not in s] or sentences)[:2])
    if default and default.group(1).strip() not in ("null", "None"):
        text += f" (default: {default.group(1).strip()})"
    if len(option) < 21:  # on the option's line, as argparse does
        return textwrap.fill(text, 116, initial_indent=f"  {option}".ljust(24), subsequent_indent=" " * 24)
    return f"  {option}\n" + textwrap.fill(text, 116, initial_indent=" " * 24, subsequent_indent=" " * 24)


@contextlib.contextmanager
def option_errors(argv: Sequence[str]) -> Iterator[None]:
    """The parser's errors (LightningCLI's, with ``exit_on_error=False``) and Lightning's check of a value
    (``--trainer.max_epochs -5``) as one :class:`InputError` line; zoo's own errors raised while the parser built a
    class pass as they are; never a traceback."""
    subcommand = argv[0] if argv else "fit"
    try:
        yield
    except MisconfigurationException as exc:
        raise InputError(str(exc).strip().splitlines()[0]) from None
    except (argparse.ArgumentError, ValueError) as exc:  # the parser's, not the fit's
        message = str(exc)
        if zoo_error_behind(exc) is not None:
            raise
        if isinstance(exc, argparse.ArgumentError) or "Requirement '" in message or "Does not validate" in message:
            try:
                explained = explain_option_error(message, subcommand, argv)
            except Exception:  # jsonargparse worded it in a way not met before: its first line, never a traceback
                explained = f"{message.strip().splitlines()[0]}; see: zoo {subcommand} --help"
            raise InputError(explained) from None
        raise
