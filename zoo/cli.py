"""The ``zoo`` command, as a table: one argparse parser whose subcommands each call one library function and print.

``fit``, ``validate`` and ``test`` are LightningCLI's (:mod:`zoo.train`; their options and errors are
:mod:`zoo.options`'); the rest are zoo's own, declared in :func:`parser`. The options several commands share are
declared once, as argparse parent parsers (the checkpoint, the dataset, the images, the output).
"""

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.atomic import output_file
from zoo.errors import InputError, UnknownNameError, disk_full, one_line, zoo_error_behind
from zoo.log import one_line_warnings, shown
from zoo.version import __version__

# Only the standard library and zoo's light modules load before a command has parsed its arguments, so
# `zoo --help` and `zoo COMMAND --help` answer at once; each command imports what it uses after parsing.
# The choices below are the library's (zoo.cam.METHODS, zoo.export.FORMATS; a test keeps them equal).
CAM_METHODS = ("cam", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "gradcamelementwise", "eigencam",
               "eigengradcam", "scorecam", "ablationcam")
EXPORT_FORMATS = ("onnx", "torchscript", "exported-program", "safetensors")
LIGHTNING = {"fit": "train a model, then test its best checkpoint: zoo fit --model lenet5 --data digits",
             "validate": "evaluate a checkpoint on the validation split: zoo validate --ckpt_path CKPT",
             "test": "evaluate a checkpoint on the test split: zoo test --ckpt_path CKPT"}


def __getattr__(attr: str) -> Any:
    """``zoo.cli.<model>`` and ``zoo.cli.RunLogger``: the class paths of configs saved before zoo.train existed."""
    if attr.startswith("__"):  # the import system asks for __path__ etc.: not a class path
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    import zoo.train

    try:
        return getattr(zoo.train, attr)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}") from None


# -- the options several commands share --------------------------------------------------------------------------


def _parent(*arguments: tuple[tuple[str, ...], dict[str, Any]]) -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(add_help=False)
    for flags, options in arguments:
        made.add_argument(*flags, **options)
    return made


def checkpoint() -> argparse.ArgumentParser:
    return _parent((("--ckpt_path",), {"required": True, "help": "a checkpoint written by zoo fit"}))


def dataset() -> argparse.ArgumentParser:
    return _parent((("--data",), {"help": "without --images: a registered dataset (default: the one the checkpoint "
                                          "was trained on; see zoo data list)"}))


def settings() -> argparse.ArgumentParser:
    return _parent((("--set",), {"nargs": "+", "action": "extend", "default": [], "metavar": "KEY=VALUE",
                                 "help": "arguments of the dataset, e.g. data_dir=./data classes=[5,6,7,8,9]"}))


def images() -> argparse.ArgumentParser:
    return _parent(
        (("--images",), {"nargs": "+", "help": "image files or folders (searched recursively), prepared as the model "
                                               "was trained; without them, a split of the dataset"}),
        (("--split",), {"choices": ["train", "val", "test"], "default": "test", "help": "(default: test)"}))


def output(default: str | None, what: str) -> argparse.ArgumentParser:
    """--out (required without a `default`) and --overwrite."""
    return _parent((("--out",), {"default": default, "required": default is None,
                                 "help": what + ("" if default is None else f" (default: {default})")}),
                   (("--overwrite",), {"action": "store_true", "help": "replace --out if it exists"}))


def _listed(text: str | None, kind: Callable[[str], Any] = str, what: str = "") -> list[Any] | None:
    """A comma-separated option as a list (None when not given)."""
    if not text:
        return None
    try:
        return [kind(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--{what} takes integers separated by commas, got {text!r}") from None  # int: str cannot fail


def _pairs(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE ...`` as a dict; values as Python by YAML's rules (numbers, booleans, lists), else strings."""
    import yaml

    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set takes KEY=VALUE pairs, got {item!r}")
        try:
            pairs[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            pairs[key] = value
    return pairs


def table(rows: list[list[str]], header: list[str]) -> str:
    """Rows as a plain-text table with aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines)


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(r) + " |" for r in lines)


# -- the commands: what each calls and prints ----------------------------------------------------------------------


def models(args: argparse.Namespace) -> None:
    from zoo.catalog import model_rows
    from zoo.registry import MODELS

    header, rows = model_rows(args.pattern, args.exclude, args.family, args.pretrained, args.markdown)
    print(markdown_table(rows, header) if args.markdown else table(rows, header))
    if args.pretrained and not args.markdown:
        print("\nknn has no weights file: it memorizes its training images (zoo fit --model knn --data fashion_mnist, "
              "one epoch). Each record in full: zoo info NAME; docs/weights.md")
    plugins = MODELS.plugins()  # named, not loaded: importing timm alone takes seconds
    if not args.pattern and plugins and not args.markdown and not args.pretrained:
        print(f"\nplugins installed: {', '.join(plugins)}; list their models with e.g. zoo models '{plugins[0]}/*'")


def info(args: argparse.Namespace) -> None:
    from zoo.catalog import info_rows

    summary, rows, (header, weights) = info_rows(args.name)
    print(summary + "\n")
    print(table(rows, ["", ""]).split("\n", 2)[2])
    if weights:
        print("\npretrained weights:\n" + table(weights, header))


def cam(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or (args.evaluate is not None and args.evaluate < 0):
        raise InputError("--batch_size and --evaluate's N must be positive")
    from zoo import cam

    drawn, arguments = args.method or "gradcam", _pairs(args.set)
    path, n = cam.draw_checkpoint(args.ckpt_path, args.images, args.data, args.split, args.n, drawn, args.layer,
                                  args.out, arguments, args.batch_size, args.overwrite)
    print(f"{drawn} maps of {n} images -> {path}")
    if args.evaluate is not None:  # after the picture, which takes seconds: the scores take minutes
        methods = [args.method] if args.method not in (None, "all") else cam.METHODS
        scores, path, n = cam.evaluate_checkpoint(args.ckpt_path, args.data, args.split, args.evaluate or None,
                                                  methods, args.layer, args.out, arguments, args.batch_size,
                                                  args.overwrite)
        print(table(cam.score_rows(scores), ["method", *cam.SCORE_COLUMNS]))
        print(f"scores of {n} {args.split} images (targets: the true classes; n/a: does not apply to this net, -: "
              f"no boxes) -> {path}")


def features(args: argparse.Namespace) -> None:
    from zoo.features import dataset_features

    name, found = dataset_features(args.ckpt_path, args.data, _pairs(args.set), tuple(args.splits), args.batch_size,
                                   args.stage, args.out, args.overwrite)
    for split in args.splits:
        vectors = found[f"{split}_features"]
        print(f"{split}: {len(vectors)} images -> {vectors.shape[1]} features")
    stage = "" if args.stage is None else f" (stage {args.stage})"
    print(f"features of {name} by {found['model']}{stage} -> {args.out}")


def export(args: argparse.Namespace) -> None:
    from zoo.export import export

    print(export(args.ckpt_path, args.format, args.out, args.overwrite))


def predict(args: argparse.Namespace) -> None:
    from zoo import predict

    if args.images:
        if args.data or args.set:
            raise InputError("--data and --set choose a dataset to predict; with --images the files are predicted")
        done, skipped = predict.predict_files(args.ckpt_path, args.images, args.out, args.topk, args.batch_size,
                                              args.overwrite)
        print(f"{done} images -> {args.out}" + (f"; {len(skipped)} files skipped (not images)" if skipped else ""))
        return
    name, done, accuracy = predict.predict_split(args.ckpt_path, args.out, args.data, args.split, _pairs(args.set),
                                                 args.topk, args.batch_size, args.overwrite)
    print(f"{done} {args.split} images of {name} -> {args.out}; top-1 accuracy {accuracy:.2f} %")


def data(args: argparse.Namespace) -> None:
    if args.action == "list":
        from zoo.registry import DATASETS, dataset_summary

        print(table([[n, dataset_summary(n)] for n in DATASETS.names()], ["dataset", "what"]))
        return
    from zoo import data
    from zoo.cam import save_grid

    output_file(args.out, args.overwrite, (".png",))
    arguments = _pairs(args.set) | ({"augment": args.augment} if args.augment else {})  # --augment over --set's
    try:
        datamodule = data.create(args.name, **arguments)
    except TypeError as exc:
        raise InputError(f"dataset {args.name!r}: {exc}") from None
    images, captions = datamodule.augmented_batch(args.n, args.seed)
    save_grid(images, None, captions, args.out)
    print(f"{len(images)} training images of {args.name} (augment {datamodule.augment}) -> {args.out}")


def cv(args: argparse.Namespace) -> None:
    from zoo.search import cross_validate, fold_rows

    folds = cross_validate((["--config", args.config] if args.config else []) + args.rest, args.folds)
    print(table(fold_rows(folds), ["fold", "val acc (held-out fold) %", "test acc %", "best checkpoint"]))


def search(args: argparse.Namespace) -> None:
    from zoo.search import search

    header, rows, picture = search((["--config", args.config] if args.config else []) + args.rest, args.grid,
                                   args.random, args.trials, args.seed, Path(args.out))
    print(table(rows, header))
    print(f"\n{len(rows)} trials -> {Path(args.out) / 'results.csv'}, {picture}")


def bench(args: argparse.Namespace) -> None:
    from zoo.bench import RESULTS, bench_suite

    if args.suite is None:
        raise InputError("zoo bench needs --suite SUITE (or: zoo bench render OUT, zoo bench speed; see zoo bench -h)")
    out, added, pages = bench_suite(args.suite, _listed(args.models), _listed(args.data),
                                    _listed(args.seeds, int, "seeds"), args.set, args.out, Path(args.runs),
                                    progress=not args.no_progress)
    failed = [row for row in added if row["status"] != "done"]
    print(f"{len(added) - len(failed)} entries run, {len(failed)} failed -> {out / RESULTS}; "
          f"leaderboard: {', '.join(map(str, pages)) or 'none yet (no entry has finished)'}")
    if failed:
        sys.exit(1)


def bench_render(args: argparse.Namespace) -> None:
    from zoo import bench

    print(f"leaderboard: {', '.join(map(str, bench.render(Path(args.folder))))}")


def bench_speed(args: argparse.Namespace) -> None:
    from zoo.bench.speed import shown_line, speed_table

    print(shown_line(None), flush=True)
    doubts = 0
    for row, doubt in speed_table(_listed(args.models) or [], _listed(args.batch_size, int, "batch_size") or [],
                                  _listed(args.precision) or [], args.channels_last, args.image_size, args.device,
                                  args.rounds, args.warmup, args.bench, Path(args.out)):
        print(shown_line(row), flush=True)  # each row once, as it is measured
        if doubt:
            doubts += 1
            print(f"zoo: warning: {doubt}", file=sys.stderr)
    print(f"\nratio = zoo images/s / reference images/s, timed in turn in this process -> {args.out}")
    if doubts:
        print(f"{doubts} row(s) cannot be right (see the warnings): time them again on an idle machine")


# -- the table ---------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The ``zoo`` command: every subcommand, its options and its help (fit/validate/test are listed here and parsed
    by LightningCLI)."""
    top = argparse.ArgumentParser(
        prog="zoo", description="Train, evaluate and inspect image classifiers from the zoo registry.",
        epilog="`zoo fit` alone trains lenet5 on scikit-learn's digits into runs/lenet5-digits/version_<n>/ "
               "(checkpoints/best.ckpt, metrics.csv, config.yaml). `zoo COMMAND --help` says more of each.")
    top.add_argument("-V", "--version", action="store_true", help="print zoo's version and exit")
    commands = top.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], None], summary: str, description: str = "",
                parents: tuple[argparse.ArgumentParser, ...] = (), into: Any = commands,
                **kwargs: Any) -> argparse.ArgumentParser:
        made = into.add_parser(name, help=summary, description=description or summary, parents=parents, **kwargs)
        made.set_defaults(run=run)
        return made

    for name, summary in LIGHTNING.items():
        command(name, run_fit, summary, add_help=False)

    p = command("models", models, "list the registered models: zoo models 'res*'",
                "List the registered models: parameters and MACs at the default input. Plugin models have a "
                "namespace (timm/resnet18, tv/efficientnet_b0) and are listed when a pattern names them, e.g. "
                "zoo models 'timm/resnet*'.")
    p.add_argument("pattern", nargs="*", default=[], help="fnmatch patterns, e.g. 'res*' (default: zoo's own models)")
    p.add_argument("--exclude", nargs="*", default=[], help="fnmatch patterns to leave out")
    p.add_argument("--family", help="only this family (e.g. resnet)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (as in docs/models.md)")
    p.add_argument("--pretrained", action="store_true",
                   help="only models with zoo's own pretrained weights (zoo:TAG), with their test accuracy")

    p = command("info", info, "one registered model in full: zoo info lenet5")
    p.add_argument("name", help="a registered name (see: zoo models)")

    p = command("data", data, "the datasets: zoo data list; augmented samples: zoo data show cifar10",
                "Look at the data: the registered datasets, or a grid of training images exactly as the model sees "
                "them (after the augmentation), labelled with their class names.")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the registered datasets")
    p = actions.add_parser("show", parents=[settings(), output("grid.png", "the PNG to write")],
                           help="save a grid of augmented training images: zoo data show cifar10 --augment standard "
                                "--out grid.png")
    p.add_argument("name", help="a registered dataset (zoo data list)")
    p.add_argument("--augment", help="an augmentation preset (default: the dataset's)")
    p.add_argument("--n", type=int, default=32, help="how many images (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")

    methods = ", ".join(CAM_METHODS)
    p = command("cam", cam, "class activation maps as pictures, and how far to trust them: zoo cam --ckpt_path CKPT",
                "Class activation maps of a trained model (a CNN or a vision transformer), drawn over the images as "
                "a PNG grid. Images come from files (--images) or from a dataset split (by default the checkpoint's "
                "own dataset). With --evaluate, scores how far each method's maps can be trusted: deletion and "
                "insertion AUC, ROAD and the model-randomization sanity check, and on a dataset with boxes "
                "(cluttered_digits) the pointing game and box IoU.",
                (checkpoint(), images(), dataset(), settings(), output("cams", "output folder")),
                epilog=f"methods: {methods}; see docs/cam.md for their papers and which to trust")
    p.add_argument("--n", type=int, default=32, help="how many images of the split to draw (default: 32)")
    p.add_argument("--method", choices=(*CAM_METHODS, "all"), metavar="METHOD",
                   help="the method drawn (default: gradcam), or all of them side by side; with --evaluate, the one "
                        "method scored (default: every method)")
    p.add_argument("--layer", help="a module name to read instead of the last feature map, e.g. layer3")
    p.add_argument("--batch_size", type=int, default=32, help="images a batch, and forward passes a batch for "
                   "scorecam and ablationcam, which run the net once per channel (default: 32)")
    p.add_argument("--evaluate", nargs="?", type=int, const=0, metavar="N",
                   help="score the methods on the first N images of the split (all of it without N), targets the "
                        "true classes, into OUT/scores.csv")

    p = command("features", features, "embeddings of a dataset by a trained net, as .npz (for a probe or kNN)",
                "Embed a dataset with a trained model's net: the pooled vector its final layer reads (pre-logits), "
                "for each image of each split, saved with the labels as a NumPy .npz (train_features, train_labels, "
                "val_..., test_..., class_names) for a linear probe or kNN elsewhere.",
                (checkpoint(), dataset(), settings(), output("features.npz", "the .npz file to write")),
                epilog="example: zoo features --ckpt_path runs/lenet5-digits/version_0/checkpoints/best.ckpt --data "
                       "digits --set classes=[5,6,7,8,9] --out digits59.npz")
    p.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    p.add_argument("--stage", type=int, help="embed with the features of this stage of the net instead (1: the "
                   "bottom one; the map average-pooled to at most 4,096 values), for a probe of an earlier stage")
    p.add_argument("--batch_size", type=int, default=256, help="images embedded at once (default: 256)")

    p = command("export", export, "onnx, torchscript, exported-program or safetensors, parity-checked",
                "Export a trained model's net, with its class names and preprocessing as metadata. The file is "
                "reloaded and checked against PyTorch on a batch (largest difference <= 1e-4) before it is put in "
                "place. Formats: onnx (runs in ONNX Runtime), torchscript, exported-program (torch.export, .pt2) "
                "and safetensors (weights; rebuild with zoo.create_model). --out's suffix must fit the format: "
                ".onnx, .pt, .pt2, .safetensors.", (checkpoint(), output(None, "the file to write, e.g. model.onnx")))
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)

    p = command("predict", predict, "top-k classes of image files, or of a dataset's split, to a CSV",
                "Top-k classes and probabilities, one CSV row per image, scored as the model's test was (with its "
                "test-time augmentation): image files (--images; converted, resized and normalized as the model "
                "was trained), or else a dataset's split (by default the test split of the dataset the checkpoint "
                "was trained on), with each image's true label and the top-1 accuracy.",
                (checkpoint(), images(), dataset(), settings(), output("predictions.csv", "the CSV to write")),
                epilog="examples: zoo predict --ckpt_path CKPT --images ./scans --out predictions.csv; "
                       "zoo predict --ckpt_path CKPT --split test --topk 1")
    p.add_argument("--topk", type=int, help="classes per image (default: 3, or all of a model with fewer)")
    p.add_argument("--batch_size", type=int, default=64, help="images scored at once (default: 64)")

    p = command("cv", cv, "k-fold cross-validation of a run: zoo cv --config CONFIG --folds 5",
                "k-fold cross-validation: fit the run once per fold (each fold of the training images validates "
                "once; the test split stays untouched) and print each fold and the mean +- std. Other options go to "
                "every zoo fit.")
    p.add_argument("--config", help="a run's config.yaml (e.g. runs/lenet5-digits/version_0/config.yaml)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")

    p = command("search", search, "hyperparameter search: zoo search --config CONFIG --grid KEY=V1,V2",
                "Hyperparameter search: fit every --grid point --trials times, each time with fresh --random draws, "
                "each fit in its own folder under --out; print the trials sorted by best validation accuracy and "
                "write OUT/results.csv and OUT/search.png. Other options go to every zoo fit (e.g. "
                "--trainer.max_epochs 20). Searching again into the same --out adds trials (coarse, then fine).",
                epilog="example: zoo search --config base.yaml --grid model.optimizer.lr=0.1,0.03,0.01 "
                       "--random model.optimizer.weight_decay=loguniform:1e-5:1e-2 --trials 4")
    p.add_argument("--config", help="the base run's config (e.g. a run's config.yaml)")
    p.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2", help="values to try, every combination, "
                   "e.g. model.optimizer.lr=0.1,0.01 or model.hidden=[256],[512,256] (a list in brackets)")
    p.add_argument("--random", nargs="*", default=[], metavar="KEY=DIST:ARGS",
                   help="values to draw: uniform:LOW:HIGH, loguniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,C")
    p.add_argument("--trials", type=int, default=None,
                   help="fits per grid point, each with new random draws (default: 1, or 8 with --random alone)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
    p.add_argument("--out", default="runs/search", help="folder of the trials and results (default: %(default)s)")

    p = command("bench", bench, "leaderboards: zoo bench --suite digits; zoo bench render OUT; zoo bench speed",
                "Benchmark leaderboards. zoo bench --suite SUITE fits every model x dataset x seed of the suite (a "
                "zoo fit each, in its own process), tests the best checkpoint and measures size, speed and memory; "
                "each finished entry is appended to OUT/results.csv (validation curves to OUT/curves.csv) and never "
                "overwritten. Running it again skips the finished entries, so an interrupted suite resumes. Then it "
                "renders OUT/leaderboard.md and OUT/index.html.",
                epilog="examples: zoo bench --suite digits --out benchmarks/results/digits; zoo bench --suite "
                       "cifar10 --data fake --set trainer.max_epochs=1 --seeds 0 (a quick smoke run)")
    p.add_argument("--suite", help="a shipped suite's name (digits, fashion_mnist, fashion_mnist_5min, mnist, "
                   "cifar10, cifar100; their files are in zoo/bench/suites/) or a suite file's path")
    p.add_argument("--out", help="folder of results.csv, curves.csv and the page (default: runs/bench/SUITE)")
    p.add_argument("--runs", default="runs/bench", help="where the fits and their logs go (default: %(default)s)")
    p.add_argument("--models", help="only these of the suite's models, comma-separated")
    p.add_argument("--data", help="run on these datasets instead of the suite's, comma-separated (e.g. fake)")
    p.add_argument("--seeds", help="these seeds instead of the suite's, comma-separated")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="zoo fit options for every entry, over the recipe (e.g. trainer.max_epochs=1)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar (e.g. in a log file)")
    more = p.add_subparsers(title="also", metavar="ACTION")
    r = command("render", bench_render, "the page again: zoo bench render OUT", into=more,
                description="Write OUT/leaderboard.md, OUT/index.html (sortable table) and the plots (accuracy vs "
                            "parameters and vs throughput, validation curves) from OUT/results.csv and curves.csv.")
    r.add_argument("folder", metavar="OUT", help="a folder holding results.csv (e.g. benchmarks/results/digits)")
    s = command("speed", bench_speed, "step speed against torchvision: zoo bench speed --models resnet18", into=more,
                description="Inference and training step speed in the manner of timm's benchmark.py (warm-up, then "
                            "the median of --rounds steps), with each model's ratio against the same architecture "
                            "from torchvision (or timm), the two timed in turn in this process. Rows are appended "
                            "to --out (timm's column names).",
                epilog="example: zoo bench speed --models resnet18,resnet50 --batch_size 1,64 --precision fp32,bf16 "
                       "--channels_last")
    s.add_argument("--models", required=True, help="registry names, comma-separated")
    s.add_argument("--batch_size", default="1,64", help="batch sizes, comma-separated (default: %(default)s)")
    s.add_argument("--precision", default="fp32", help="fp32, bf16 and/or fp16, comma-separated (autocast)")
    s.add_argument("--channels_last", action="store_true", help="channels-last memory format")
    s.add_argument("--image_size", type=int, help="input height and width (default: the model's own)")
    s.add_argument("--bench", default="both", choices=["infer", "train", "both"], help="what to time")
    s.add_argument("--rounds", type=int, default=10, help="timed steps of each net (default: %(default)s)")
    s.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    s.add_argument("--out", default="runs/bench/speed.csv", help="CSV to append to (default: %(default)s)")
    top.set_defaults(commands=dict(commands.choices))  # name -> its parser
    return top


PASSED_ON = ("cv", "search")  # the options these do not know go to every zoo fit they run


def run_fit(args: argparse.Namespace) -> None:
    """``zoo fit|validate|test``: LightningCLI's, on the whole command line (zoo.train)."""
    from zoo.train import run_lightning

    if {"-h", "--help", "--help_all"} & set(args.argv[1:]):
        return fit_help(args.argv)
    run_lightning(args.argv)


def fit_help(argv: list[str]) -> None:
    """``zoo fit --help``: the options a user reaches for first, from the parser's own help (``--help_all``: all of
    it, Lightning's Trainer, checkpointing and optimizer groups included; ``--model.help NAME``: a model's own)."""
    import contextlib
    import io

    from zoo.options import help_screen
    from zoo.train import run_lightning

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        run_lightning([a if a != "--help_all" else "--help" for a in argv])
    print(help_screen(out.getvalue(), argv[0], "--help_all" in argv))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings(), shown():  # the display, filters and zoo's notes last this command, not the process
        warnings.showwarning = one_line_warnings(warnings.showwarning)
        _run(argv)


def _run(argv: list[str]) -> None:
    try:
        top = parser()
        if argv and argv[0] in LIGHTNING:  # LightningCLI parses its own
            run_fit(argparse.Namespace(argv=argv))
        elif argv and not argv[0].startswith("-") and argv[0] not in top.get_default("commands"):
            raise UnknownNameError(f"unknown command {argv[0]!r}; choose one of: "
                                   f"{', '.join(top.get_default('commands'))} (see: zoo --help)")
        elif not argv:
            top.print_help()
        else:
            args, rest = top.parse_known_args(argv)
            if args.version:
                print(f"zoo {__version__} (lightning-zoo; Python {sys.version.split()[0]})")
                return
            if "run" not in args:
                top.error("give a COMMAND (see: zoo --help)")
            if rest and argv[0] not in PASSED_ON:  # argparse's error, as the command's own parser words it
                top.get_default("commands")[argv[0]].error(f"unrecognized arguments: {' '.join(rest)}")
            args.rest = rest
            args.run(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at Python's exit
    except BrokenPipeError:  # the reader went away (zoo models | head): stop quietly, as a Unix tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's final flush would fail again
        sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a tool ended by a closed pipe
    except Exception as exc:
        cause = zoo_error_behind(exc) or disk_full(exc)  # a full disk anywhere: one line, not torch's traceback
        if cause is None:
            raise
        print(f"zoo: error: {one_line(str(cause))}", file=sys.stderr)
        sys.exit(getattr(cause, "exit_code", 2))
