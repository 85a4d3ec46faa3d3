"""The ``zoo`` command: each subcommand parses its arguments, makes one library call and prints.

``fit``, ``validate`` and ``test`` are LightningCLI's (:mod:`zoo.train`); ``models``, ``info``, ``data``,
``cam``, ``features``, ``export``, ``predict``, ``cv``, ``search`` and ``bench`` are zoo's own.
"""

import os
import re
import sys
import textwrap
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.atomic import output_file, output_folder
from zoo.errors import InputError, UnknownNameError, disk_full, one_line, zoo_error_behind
from zoo.log import shown
from zoo.version import __version__

# Only the standard library and zoo's light modules load before a command has parsed its arguments, so
# `zoo --help` and `zoo COMMAND --help` answer at once; each command imports what it uses after parsing.
# The choices below are the library's (zoo.cam.METHODS, zoo.export.FORMATS; a test keeps them equal).
CAM_METHODS = ("cam", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "gradcamelementwise", "eigencam",
               "eigengradcam", "scorecam", "ablationcam")
EXPORT_FORMATS = ("onnx", "torchscript", "exported-program", "safetensors")


def __getattr__(attr: str) -> Any:
    """``zoo.cli.<model>`` and ``zoo.cli.RunLogger``: the class paths of configs saved before zoo.train existed."""
    if attr.startswith("__"):  # the import system asks for __path__ etc.: not a class path
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    import zoo.train

    try:
        return getattr(zoo.train, attr)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}") from None


# -- zoo models / zoo info ---------------------------------------------------------------------


def _human(n: int, unit: str = "") -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= factor:
            return f"{n / factor:.2f}{suffix}{unit}"
    return f"{n}{unit}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Rows as a plain-text table with aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines)


def cmd_models(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo models", description="List the registered models: parameters and MACs at the default input. "
        "Plugin models have a namespace (timm/resnet18, tv/efficientnet_b0) and are listed when a pattern "
        "names them, e.g. zoo models 'timm/resnet*'.")
    parser.add_argument("pattern", nargs="*", default=[],
                        help="fnmatch patterns, e.g. 'res*' (default: zoo's own models)")
    parser.add_argument("--exclude", nargs="*", default=[], help="fnmatch patterns to leave out")
    parser.add_argument("--family", help="only this family (e.g. resnet)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (as in docs/models.md)")
    parser.add_argument("--pretrained", action="store_true",
                        help="only models with zoo's own pretrained weights (zoo:TAG), with their test accuracy")
    args = parser.parse_args(argv)
    from zoo.registry import MODELS, list_models, list_weights, model_info

    names = list_models(args.pattern or "*", args.exclude + ([] if args.pattern else ["*/*"]), args.family)
    if args.pretrained:
        with_weights = {w.model for w in list_weights()}
        names = [n for n in names if n in with_weights]
        if not names:
            raise UnknownNameError("no model has zoo's pretrained weights; install them: pip install -e "
                                   "plugins/zoo-weights (in a checkout of zoo)")
    header = ["model", "family", "params", "MACs", "input", "min", "paper"]
    if args.pretrained:
        header = ["model", "weights", "dataset", "acc@1", "params", "input", "paper"]
    rows = []
    for name in names:
        info = model_info(name)
        paper = info.paper if args.markdown else cited(info.paper)
        if args.pretrained:
            for weights, meta in info.weights.items():
                if weights.startswith("zoo:"):
                    top1 = meta["acc@1"]
                    rows.append([name, weights, meta["dataset"] or "-", "-" if top1 is None else f"{top1:.2f}",
                                 _human(meta["params"] or info.params), meta["input"] or "-", paper])
            continue
        rows.append([name, info.family, _human(info.params), _human(info.macs),
                     "x".join(map(str, info.input_size)), str(info.min_size), paper])
    print(markdown_table(rows, header) if args.markdown else table(rows, header))
    plugins = MODELS.plugins()  # named, not loaded: importing timm alone takes seconds
    if not args.pattern and plugins and not args.markdown and not args.pretrained:
        print(f"\nplugins installed: {', '.join(plugins)}; list their models with e.g. zoo models '{plugins[0]}/*'")


def cited(paper: str) -> str:
    """A paper as a terminal table cites it: its authors and year (``Krizhevsky et al. 2012``), the title left to
    ``zoo info`` (whole, the table was about 240 characters wide)."""
    cite = re.match(r".*?\b(?:1[89]|20)\d\d\b", paper)  # up to the first year
    short = cite.group(0) if cite else textwrap.shorten(paper, 44, placeholder="...")
    return short + (" (small-input form)" if "small-input form" in paper else "")


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(r) + " |" for r in lines)


def cmd_info(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="zoo info", description="Show one registered model in full.")
    parser.add_argument("name", help="a registry name (see: zoo models)")
    args = parser.parse_args(argv)
    from zoo.registry import model_info

    info = model_info(args.name)
    rows = [
        ["name", info.name], ["family", info.family], ["paper", info.paper],
        ["params", f"{info.params:,}"], ["MACs", f"{info.macs:,}"],
        ["input size", "x".join(map(str, info.input_size))], ["minimum size", f"{info.min_size}x{info.min_size}"],
        ["CAM layer", info.cam_layer or "-"],
    ]
    rows += [[f"--model.{k}", repr(v)] for k, v in info.arguments.items()]
    print(textwrap.fill(info.summary, 100) + "\n")
    print(table(rows, ["", ""]).split("\n", 2)[2])
    if info.weights:
        keys = ["dataset", "acc@1", "leaderboard acc@1", "acc@5", "params", "input", "min_size", "recipe", "sha256"]
        keys = [k for k in keys if any(k in meta for meta in info.weights.values())]
        print("\npretrained weights:\n" + table(
            [[name, *(_weight_cell(meta.get(k)) for k in keys)] for name, meta in info.weights.items()],
            ["weights", *keys]))


def _weight_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and value >= 1000:
        return f"{value:,}"
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value))
    return str(value)


def cmd_cam(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo cam",
        description="Class activation maps of a trained model (a CNN or a vision transformer), drawn over the "
                    "images as a PNG grid. Images come from files (--images) or from a dataset split (by default "
                    "the checkpoint's own dataset). With --evaluate, scores how far each method's maps can be "
                    "trusted: deletion and insertion AUC, ROAD and the model-randomization sanity check, and on a "
                    "dataset with boxes (cluttered_digits) the pointing game and box IoU.",
        epilog="methods: " + ", ".join(CAM_METHODS) + "; see docs/cam.md for their papers and which to trust")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--images", nargs="+", help="image files or folders (prepared as the model was trained)")
    parser.add_argument("--data", help="a registered dataset (default: the one the checkpoint was trained on)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="without --images: arguments of the dataset, e.g. data_dir=./data")
    parser.add_argument("--split", choices=["train", "val", "test"], default="test", help="(default: test)")
    parser.add_argument("--n", type=int, default=32, help="how many images of the split to draw (default: 32)")
    parser.add_argument("--method", choices=(*CAM_METHODS, "all"), metavar="METHOD",
                        help="the method drawn (default: gradcam), or all of them side by side; with --evaluate, "
                             "the one method scored (default: every method)")
    parser.add_argument("--layer", help="a module name to read instead of the last feature map, e.g. layer3")
    parser.add_argument("--batch_size", type=int, default=32,
                        help="images a batch, and forward passes a batch for scorecam and ablationcam, which run the "
                             "net once per channel (default: 32)")
    parser.add_argument("--out", default="cams", help="output folder (default: cams)")
    parser.add_argument("--overwrite", action="store_true", help="replace the picture OUT/METHOD.png if it exists")
    parser.add_argument("--evaluate", nargs="?", type=int, const=0, metavar="N",
                        help="score the methods on the first N images of the split (all of it without N), targets "
                             "the true classes, into OUT/scores.csv")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.evaluate is not None and args.evaluate < 0):
        parser.error("--batch_size and --evaluate's N must be positive")
    from zoo import cam

    drawn = args.method or "gradcam"
    output_folder(args.out)
    output_file(Path(args.out) / f"{drawn}.png", args.overwrite, (".png",))  # as export, predict, data show
    arguments = _pairs(args.set)
    if args.evaluate is not None:
        methods = [args.method] if args.method not in (None, "all") else cam.METHODS
        scores, path, n = cam.evaluate_checkpoint(args.ckpt_path, args.data, args.split, args.evaluate or None,
                                                  methods, args.layer, args.out, arguments, args.batch_size)
        print(table(cam.score_rows(scores), ["method", *cam.SCORE_COLUMNS]))
        print(f"scores of {n} {args.split} images (targets: the true classes; n/a: does not apply to this net, -: "
              f"no boxes) -> {path}")
    path, n = cam.draw_checkpoint(args.ckpt_path, args.images, args.data, args.split, args.n, drawn, args.layer,
                                  args.out, arguments, args.batch_size)
    print(f"{drawn} maps of {n} images -> {path}")


def cmd_features(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo features", description="Embed a dataset with a trained model's net: the pooled vector its final "
        "layer reads (pre-logits), for each image of each split, saved with the labels as a NumPy .npz "
        "(train_features, train_labels, val_..., test_..., class_names) for a linear probe or kNN elsewhere.",
        epilog="example: zoo features --ckpt_path runs/lenet5-digits/version_0/checkpoints/best.ckpt --data digits "
               "--set classes=[5,6,7,8,9] --out digits59.npz")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--data", help="a registered dataset (default: the one the checkpoint was trained on)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="arguments of the dataset, e.g. classes=[5,6,7,8,9]")
    parser.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    parser.add_argument("--stage", type=int, help="embed with the features of this stage of the net instead (1: the "
                        "bottom one; the map average-pooled to at most 4,096 values), for a probe of an earlier stage")
    parser.add_argument("--batch_size", type=int, default=256, help="images embedded at once (default: 256)")
    parser.add_argument("--out", default="features.npz", help="the .npz file to write (default: features.npz)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    from zoo.features import dataset_features, save_features

    path = output_file(args.out, args.overwrite, (".npz",))
    arguments = _pairs(args.set)
    name, features = dataset_features(args.ckpt_path, args.data, arguments, tuple(args.splits), args.batch_size,
                                      args.stage)
    for split in args.splits:
        vectors = features[f"{split}_features"]
        print(f"{split}: {len(vectors)} images -> {vectors.shape[1]} features")
    save_features(features, path)
    stage = "" if args.stage is None else f" (stage {args.stage})"
    print(f"features of {name} by {features['model']}{stage} -> {path}")


def cmd_export(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo export",
        description="Export a trained model's net, with its class names and preprocessing as metadata. The file is "
                    "reloaded and checked against PyTorch on a batch (largest difference <= 1e-4) before it is "
                    "put in place. Formats: onnx (runs in ONNX Runtime), torchscript, exported-program "
                    "(torch.export, .pt2) and safetensors (weights; rebuild with zoo.create_model).")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("--out", required=True, help="the file to write, e.g. model.onnx (its suffix must fit "
                        "the format: .onnx, .pt, .pt2, .safetensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    from zoo.export import export

    print(export(args.ckpt_path, args.format, args.out, args.overwrite))


def cmd_predict(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo predict",
        description="Top-k classes and probabilities, one CSV row per image, scored as the model's test was (with its "
                    "test-time augmentation): image files (--images; converted, resized and normalized as the model "
                    "was trained), or else a dataset's split (by default the test split of the dataset the checkpoint "
                    "was trained on), with each image's true label and the top-1 accuracy.",
        epilog="examples: zoo predict --ckpt_path CKPT --images ./scans --out predictions.csv\n"
               "          zoo predict --ckpt_path CKPT --split test --topk 1")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by zoo fit")
    parser.add_argument("--images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--data", help="without --images: a registered dataset (default: the checkpoint's own)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="test",
                        help="without --images: the split to predict (default: test)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="without --images: arguments of the dataset, e.g. data_dir=./data")
    parser.add_argument("--topk", type=int, help="classes per image (default: 3, or all of a model with fewer)")
    parser.add_argument("--out", default="predictions.csv", help="the CSV to write (default: predictions.csv)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--batch_size", type=int, default=64, help="images scored at once (default: 64)")
    args = parser.parse_args(argv)
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


def cmd_data(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo data", description="Look at the data: the registered datasets, or a grid of training images "
        "exactly as the model sees them (after the augmentation), labelled with their class names.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the registered datasets")
    show = sub.add_parser("show", help="save a grid of augmented training images: zoo data show cifar10 "
                                       "--augment standard --out grid.png")
    show.add_argument("name", help="a registered dataset (zoo data list)")
    show.add_argument("--augment", help="an augmentation preset (default: the dataset's)")
    show.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                      help="other dataset arguments, e.g. data_dir=./data mixup=0.2")
    show.add_argument("--n", type=int, default=32, help="how many images (default: 32)")
    show.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")
    show.add_argument("--out", default="grid.png", help="the PNG to write (default: grid.png)")
    show.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if args.action == "list":
        from zoo.registry import DATASETS, dataset_summary

        print(table([[n, dataset_summary(n)] for n in DATASETS.names()], ["dataset", "what"]))
        return
    from zoo import data
    from zoo.cam import save_grid

    output_file(args.out, args.overwrite, (".png",))
    kwargs = _pairs(args.set)
    if args.augment:
        kwargs["augment"] = args.augment
    try:
        datamodule = data.create(args.name, **kwargs)
    except TypeError as exc:
        raise InputError(f"dataset {args.name!r}: {exc}") from None
    images, captions = datamodule.augmented_batch(args.n, args.seed)
    save_grid(images, None, captions, args.out)
    print(f"{len(images)} training images of {args.name} (augment {datamodule.augment}) -> {args.out}")


def cmd_cv(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo cv", description="k-fold cross-validation: fit the run once per fold (each fold of the training "
        "images validates once; the test split stays untouched) and print each fold and the mean +- std.")
    parser.add_argument("--config", help="a run's config.yaml (e.g. runs/lenet5-digits/version_0/config.yaml)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    args, rest = parser.parse_known_args(argv)
    import numpy as np

    from zoo.search import cross_validate

    folder = Path("runs") / "cv" / datetime.now().strftime("%Y%m%d-%H%M%S")  # the folds apart from the normal runs
    folds = cross_validate((["--config", args.config] if args.config else []) + rest, args.folds, folder)
    val, test = [f.val_top1 for f in folds], [f.test_top1 for f in folds]
    rows = [[str(f.fold), f"{f.val_top1:.2f}", f"{f.test_top1:.2f}", f.checkpoint] for f in folds]
    rows.append(["mean +- std", f"{np.mean(val):.2f} +- {np.std(val, ddof=1):.2f}",
                 f"{np.mean(test):.2f} +- {np.std(test, ddof=1):.2f}", ""])
    print(table(rows, ["fold", "val acc (held-out fold) %", "test acc %", "best checkpoint"]))


def cmd_search(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo search", description="Hyperparameter search: fit every --grid point --trials times, each time with "
        "fresh --random draws, each fit in its own folder under --out; print the trials sorted by best validation "
        "accuracy and write OUT/results.csv and OUT/search.png. Other options go to every zoo fit (e.g. "
        "--trainer.max_epochs 20). Searching again into the same --out adds trials (coarse, then fine).",
        epilog="example: zoo search --config base.yaml --grid model.optimizer.lr=0.1,0.03,0.01 "
               "--random model.optimizer.weight_decay=loguniform:1e-5:1e-2 --trials 4")
    parser.add_argument("--config", help="the base run's config (e.g. a run's config.yaml)")
    parser.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2",
                        help="values to try, every combination, e.g. model.optimizer.lr=0.1,0.01 or "
                        "model.hidden=[256],[512,256] (a list in brackets)")
    parser.add_argument("--random", nargs="*", default=[], metavar="KEY=DIST:ARGS",
                        help="values to draw: uniform:LOW:HIGH, loguniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,C")
    parser.add_argument("--trials", type=int, default=None,
                        help="fits per grid point, each with new random draws (default: 1, or 8 with --random alone)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
    parser.add_argument("--out", default="runs/search", help="folder of the trials and results (default: runs/search)")
    args, rest = parser.parse_known_args(argv)
    from zoo import search

    grid, draws = search.parse_grid(args.grid), search.parse_random(args.random)
    if not grid and not draws:
        raise InputError("nothing to search: give --grid KEY=V1,V2 and/or --random KEY=DIST:ARGS (see zoo search -h)")
    repeats = args.trials if args.trials is not None else (8 if draws and not grid else 1)
    if repeats < 1:
        raise InputError(f"--trials must be 1 or more, got {repeats}")
    out = Path(args.out)
    rows = search.run_search((["--config", args.config] if args.config else []) + rest, grid, draws, repeats,
                             args.seed, out)
    keys = [*grid, *(d.key for d in draws)]
    body = [[str(r["trial"]), *(search.format_value(r.get(k)) for k in keys),
             *(f"{r[m]:.2f}" if isinstance(r.get(m), (int, float)) else "-" for m in ("val_acc", "test_acc")),
             str(r.get("status", ""))[:60]] for r in search.ranked(rows)]
    print(table(body, ["trial", *keys, "val acc %", "test acc %", "status"]))
    picture = search.plot(rows, keys, out / "search.png", search.log_scaled(grid, draws))
    print(f"\n{len(rows)} trials -> {out / 'results.csv'}, {picture}")


def cmd_bench(argv: list[str]) -> None:
    if argv and argv[0] == "render":
        return _bench_render(argv[1:])
    if argv and argv[0] == "speed":
        return _bench_speed(argv[1:])
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo bench", description="Benchmark leaderboards. zoo bench --suite SUITE fits every model x "
        "dataset x seed of the suite (a zoo fit each, in its own process), tests the best checkpoint and measures "
        "size, speed and memory; each finished entry is appended to OUT/results.csv (validation curves to "
        "OUT/curves.csv) and never overwritten. Running it again skips the finished entries, so an interrupted "
        "suite resumes. Then it renders OUT/leaderboard.md and OUT/index.html. "
        "Also: zoo bench render OUT (the page again), zoo bench speed (timm-style speed against torchvision).",
        epilog="examples: zoo bench --suite digits --out benchmarks/results/digits\n"
               "          zoo bench --suite cifar10 --data fake --set trainer.max_epochs=1 "
               "--seeds 0   (a quick smoke run)")
    parser.add_argument("--suite", required=True, help="a shipped suite's name (digits, fashion_mnist, "
                        "fashion_mnist_5min, mnist, cifar10, cifar100; their files are in zoo/bench/suites/) or a "
                        "suite file's path")
    parser.add_argument("--out", help="folder of results.csv, curves.csv and the page (default: runs/bench/SUITE)")
    parser.add_argument("--runs", default="runs/bench", help="where the fits and their logs go (default: runs/bench)")
    parser.add_argument("--models", help="only these of the suite's models, comma-separated")
    parser.add_argument("--data", help="run on these datasets instead of the suite's, comma-separated (e.g. fake)")
    parser.add_argument("--seeds", help="these seeds instead of the suite's, comma-separated")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="zoo fit options for every entry, over the recipe (e.g. trainer.max_epochs=1)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar (e.g. in a log file)")
    args = parser.parse_args(argv)
    from zoo import bench

    def listed(text: str | None) -> list[str] | None:
        return [t.strip() for t in text.split(",") if t.strip()] if text else None

    try:
        seeds = [int(s) for s in listed(args.seeds)] if args.seeds else None
    except ValueError:
        raise InputError(f"--seeds takes integers separated by commas, got {args.seeds!r}") from None
    entries = bench.load_suite(args.suite, listed(args.models), listed(args.data), seeds, args.set)
    out = Path(args.out or Path("runs/bench") / entries[0].suite)
    bench.write_references(out, bench.suite_references(args.suite))
    try:
        added = bench.run_suite(entries, out, Path(args.runs), progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\nzoo bench: interrupted; the finished entries are in {out / bench.RESULTS}. "
              f"Run the same command again to resume.", file=sys.stderr)
        sys.exit(130)
    failed = [row for row in added if row["status"] != "done"]
    done = bench.finished(bench.read_rows(out / bench.RESULTS))
    pages = ", ".join(map(str, bench.render(out))) if done else "none yet (no entry has finished)"
    print(f"{len(added) - len(failed)} entries run, {len(failed)} failed -> {out / bench.RESULTS}; "
          f"leaderboard: {pages}")
    if failed:
        sys.exit(1)


def _bench_render(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo bench render", description="Write OUT/leaderboard.md, OUT/index.html (sortable table) and the "
        "plots (accuracy vs parameters and vs throughput, validation curves) from OUT/results.csv and curves.csv.")
    parser.add_argument("out", help="a folder holding results.csv (e.g. benchmarks/results/digits)")
    args = parser.parse_args(argv)
    from zoo import bench

    pages = bench.render(Path(args.out))
    print(f"leaderboard: {', '.join(map(str, pages))}")


def _bench_speed(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo bench speed", description="Inference and training step speed in the manner of timm's "
        "benchmark.py (warm-up, then the median of --rounds steps), with each model's ratio against the same "
        "architecture from torchvision (or timm), the two timed in turn in this process. Rows are appended to --out "
        "(timm's column names).",
        epilog="example: zoo bench speed --models resnet18,resnet50 --batch_size 1,64 --precision fp32,bf16 "
               "--channels_last")
    parser.add_argument("--models", required=True, help="registry names, comma-separated")
    parser.add_argument("--batch_size", default="1,64", help="batch sizes, comma-separated (default: 1,64)")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 and/or fp16, comma-separated (autocast)")
    parser.add_argument("--channels_last", action="store_true", help="channels-last memory format")
    parser.add_argument("--image_size", type=int, help="input height and width (default: the model's own)")
    parser.add_argument("--bench", default="both", choices=["infer", "train", "both"], help="what to time")
    parser.add_argument("--rounds", type=int, default=10, help="timed steps of each net (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--out", default="runs/bench/speed.csv", help="CSV to append to (default: %(default)s)")
    args = parser.parse_args(argv)
    from zoo import bench

    try:
        batches = [int(b) for b in args.batch_size.split(",")]
    except ValueError:
        raise InputError(f"--batch_size takes integers separated by commas, got {args.batch_size!r}") from None
    if min(batches) < 1 or args.rounds < 1 or args.warmup < 0:
        raise InputError("--batch_size and --rounds must be 1 or more, --warmup 0 or more")
    shown = [("model", "model"), ("reference", "reference"), ("precision", "precision"),
             ("infer_batch_size", "batch"), ("infer_samples_per_sec", "infer img/s"),
             ("infer_ratio_vs_reference", "infer ratio"), ("train_samples_per_sec", "train img/s"),
             ("train_ratio_vs_reference", "train ratio")]
    from tqdm import tqdm

    from zoo.bench.speed import implausible

    bars: dict[str, Any] = {}
    models, precisions = args.models.split(","), args.precision.split(",")
    parts = len(models) * len(precisions) * len(batches) * (2 if args.bench == "both" else 1)

    def progress(what: str, done: int, total: int) -> None:  # in a terminal, a bar for each timed part, its time left
        if not sys.stderr.isatty():  # a log: a line as each part starts, not a minute of silence
            if what not in bars:
                bars[what] = None
                print(f"zoo bench speed: [{len(bars)}/{parts}] timing {what}", file=sys.stderr, flush=True)
            return
        bar = bars.get(what) or bars.setdefault(what, tqdm(total=total, desc=f"[{len(bars) + 1}/{parts}] {what}",
                                                           unit="step", leave=False))
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    widths = [max(len(label), 30 if key in ("model", "reference") else 11) for key, label in shown]
    print("  ".join(label.ljust(w) for (_, label), w in zip(shown, widths, strict=True)).rstrip(), flush=True)
    doubts = []
    for row in bench.measure_speed(models, batches, precisions, args.channels_last, args.image_size, args.device,
                                   args.rounds, args.warmup, args.bench, progress):
        bench.append_rows(Path(args.out), bench.SPEED_COLUMNS, [row])
        print("  ".join(str(row.get(key, "-")).ljust(w) for (key, _), w in zip(shown, widths, strict=True)).rstrip(),
              flush=True)  # each row once, as it is measured
        doubt = implausible(row)
        if doubt:
            doubts.append(doubt)
            print(f"zoo: warning: {doubt}", file=sys.stderr)
    print(f"\nratio = zoo images/s / reference images/s, timed in turn in this process -> {args.out}")
    if doubts:
        print(f"{len(doubts)} row(s) cannot be right (see the warnings): time them again on an idle machine")


COMMANDS = {"models": cmd_models, "info": cmd_info, "cam": cmd_cam, "export": cmd_export, "data": cmd_data,
            "cv": cmd_cv, "search": cmd_search, "features": cmd_features, "bench": cmd_bench, "predict": cmd_predict}


RENAMED = {"--ckpt": "--ckpt_path", "--batch-size": "--batch_size", "--batch": "--batch_size",
           "--img-size": "--image_size", "--data-arg": "--set", "--no-progress": "--no_progress"}


def current_spellings(argv: list[str]) -> list[str]:
    """zoo's own commands spell every flag as Lightning does (``--ckpt_path``, ``--batch_size``); the old
    spellings still work in this release, with a warning."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key in RENAMED:
            warnings.warn(f"{key} is now spelled {RENAMED[key]}; the old spelling goes in the next release",
                          FutureWarning, stacklevel=2)
            arg = RENAMED[key] + sep + value
        out.append(arg)
    return out


OVERVIEW = """usage: zoo COMMAND [options]

Train, evaluate and inspect image classifiers from the zoo registry.

Lightning commands (LightningCLI; `zoo COMMAND --help` lists every option):
  fit        train a model: zoo fit --model lenet5 --data digits
             fine-tune one: zoo fit --model resnet18 --model.weights torchvision:IMAGENET1K_V1 --finetune linear_probe
  validate   evaluate on the validation split: zoo validate --config CONFIG --ckpt_path CKPT
  test       evaluate on the test split:       zoo test --config CONFIG --ckpt_path CKPT

  cv         k-fold cross-validation of a run: zoo cv --config CONFIG --folds 5
  search     hyperparameter search: zoo search --config CONFIG --grid model.optimizer.lr=0.1,0.01
             --random model.optimizer.weight_decay=loguniform:1e-5:1e-2 --trials 4
  bench      leaderboards: zoo bench --suite digits (-> results.csv, leaderboard.md,
             index.html); zoo bench render OUT; speed vs torchvision: zoo bench speed --models resnet18

Registry and data:
  models     list the registered models: zoo models 'res*'
  info       one model in full: zoo info lenet5
  data       the datasets: zoo data list; augmented samples: zoo data show cifar10 --augment standard

Looking inside and shipping:
  cam        class activation maps as pictures: zoo cam --ckpt_path CKPT --images DIR --method gradcam
  features   embeddings of a dataset by a trained net (.npz, for a linear probe or kNN):
             zoo features --ckpt_path CKPT --data digits --out features.npz
  export     onnx, torchscript, exported-program or safetensors, parity-checked:
             zoo export --ckpt_path CKPT --format onnx --out model.onnx
  predict    top-k classes of image files, or of a dataset's split, to a CSV:
             zoo predict --ckpt_path CKPT --images DIR --topk 3 --out predictions.csv

Defaults: `zoo fit` alone trains lenet5 on scikit-learn's digits and writes runs/<model>-<data>/version_<n>/
(checkpoints/best.ckpt, metrics.csv, config.yaml). --model.help NAME shows a model's own options.
"""


# -- zoo fit --help: the first screen ------------------------------------------------------------

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


def lightning_help(argv: list[str]) -> None:
    """``zoo fit --help``: the options a user reaches for first, from the parser's own help (``--help_all``: all of
    it, Lightning's Trainer, checkpointing and optimizer groups included; ``--model.help NAME``: a model's own)."""
    import contextlib
    import io

    from zoo.train import run_lightning

    full = "--help_all" in argv
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        run_lightning([a if a != "--help_all" else "--help" for a in argv])
    text = out.getvalue()
    for heading, ours in HEADINGS.items():  # jsonargparse titles groups with a base class's docstring or its repr
        text = re.sub(f"^{re.escape(heading)}.*:$", ours, text, flags=re.M)
    print(text if full or not text.startswith("usage:") else first_screen(text, argv[0]))


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


def _one_line_for_zoo(show: Callable[..., None]) -> Callable[..., None]:
    """Python's warning display with zoo's own warnings as one line (``zoo: warning: ...``); other libraries'
    warnings go to `show`, as Python shows them."""
    package = Path(__file__).resolve().parent

    def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                     line: Any = None) -> None:
        if Path(filename).resolve().is_relative_to(package):
            print(f"zoo: warning: {one_line(str(message))}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings(), shown():  # the display, filters and zoo's notes last this command, not the process
        warnings.showwarning = _one_line_for_zoo(warnings.showwarning)
        _run(argv)


def _run(argv: list[str]) -> None:
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(OVERVIEW)
        elif argv[0] in ("-V", "--version"):
            print(f"zoo {__version__} (lightning-zoo; Python {sys.version.split()[0]})")
        elif argv[0] in COMMANDS:
            COMMANDS[argv[0]](current_spellings(argv[1:]))
        else:
            from zoo.train import LIGHTNING_COMMANDS, run_lightning

            if argv[0] not in LIGHTNING_COMMANDS and not argv[0].startswith("-"):
                raise UnknownNameError(f"unknown command {argv[0]!r}; choose one of: "
                                       f"{', '.join((*LIGHTNING_COMMANDS, *COMMANDS))} (see: zoo --help)")
            if {"-h", "--help", "--help_all"} & set(argv[1:]):
                lightning_help(argv)
            else:
                run_lightning(argv)
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
